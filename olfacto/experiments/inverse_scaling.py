"""Result 3 at scale: the connection probability p* that reaches a target alignment, over N = 10³ … 10⁵.

:func:`compute` runs the Hebbian rule (linear cortex: its exact chunked, factored update — one chunk of
``run.n_breaths`` breaths costs about what a few breaths per synapse cost) at every N of ``options["n_cortex"]``
and every in-degree K of ``options["in_degree"]`` (p = K/N), for the seeds of the grid, and keeps the final
population alignment. Its Dataset has the layout of the ``alignment_vs_p`` scaling sweep (dims learning rule,
N, K, seed, breath; the 2-D coordinate p), so :func:`olfacto.analysis.chapter1.p_star_table` reads p* from it.

One compiled program per N: every (K, seed) of one N runs with the synapse slots of the largest K
(K_max, :func:`olfacto.model.sparse.slots`), so the K do not each compile. A mask's synapses do not depend on
its slot count (:func:`olfacto.model.sparse.sample_mask`), so each point's network is the one ``olfacto run``
draws for that seed and p; for one seed the masks of the K are drawn from the same candidates (a row's
first K_i of one sequence) — common random numbers, which make each seed's A(K) smooth to interpolate.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ..analysis.common import K_DIM, N_DIM, P_COORD, RULE_DIM, SEED
from ..config import key_attrs, replace, set_dotted, validate
from ..engine import programs, runtime
from ..engine import progress as progress_mod
from ..engine.devices import place_batch, stack
from ..engine.records import End, Record, Variable
from ..model import measures, network
from ..model.circuit import DIRECTIONS

__all__ = ["ALIGNMENT", "compute", "run_points"]


def _alignment(spec, world, params, state) -> dict[str, jax.Array]:
    views = network.views(spec, world, params, state)
    return {"alignment": sum(measures.alignment(v.y_post, v.y_hat) for v in views.values()) / len(DIRECTIONS)}


ALIGNMENT = Record("inverse_scaling_alignment", End(), _alignment,
                   lambda spec, configs: {"alignment": Variable((), measures.attrs()["alignment"])})
"""The population alignment only (both directions averaged, as the recorded ``alignment``): at N = 10⁵ the
other measures (decoders, update alignment) cost several times the learning."""


def run_points(configs: list, slots: int) -> np.ndarray:
    """The final alignment of each config (they differ only in seed and traced keys, e.g. p), run as one
    vmapped batch whose masks have ``slots`` synapse slots per row (at least each config's own K_max)."""
    runtime.ensure()
    own = max(network.spec_of(c).projection.slots for c in configs)
    if slots < own:
        raise ValueError(f"run_points: {slots} slots per row; these configs need {own}")
    spec = network.spec_of(configs[0], {"projection.slots": slots})
    params = stack(configs)
    keys = jnp.stack([jax.random.key_data(jax.random.key(c.seed)) for c in configs])
    params, keys = place_batch((params, keys))
    keys = jax.vmap(jax.random.wrap_key_data)(keys)
    world, state = programs.init(spec)(keys, params, None, None)
    every = spec.run.record_every
    for _ in range(configs[0].run.n_breaths // every):
        state = programs.advance(spec)(world, params, state)
    values, ok = programs.record(spec, ALIGNMENT)(world, params, state)
    out = np.asarray(values["alignment"], float)
    return np.where(np.asarray(ok, bool), out, np.nan)


def compute(base: dict, grid: dict, options: dict, progress: bool = False) -> xr.Dataset:
    """Final Hebbian alignment over ``options["n_cortex"]`` × ``options["in_degree"]`` × the grid's seeds.

    ``options["batch"]``: runs per vmapped batch (default: every K of one seed), which bounds the memory
    (≈ 0.4 GB per run at N = 10⁵, K_max ≈ 80). Each N's wall time is kept (``compute_time_per_n_s``).
    """
    cfg0 = validate(base)
    if cfg0.learning.rule != "hebbian" or cfg0.circuit.activation != "linear":
        raise ValueError("inverse_scaling: made for learning.rule=hebbian with circuit.activation=linear "
                         "(its chunked, factored path); got "
                         f"{cfg0.learning.rule}, {cfg0.circuit.activation}")
    if cfg0.run.n_breaths % cfg0.run.record_every:
        raise ValueError("inverse_scaling: run.n_breaths must be a multiple of run.record_every")
    seeds = [int(s) for s in grid.get("seed", [cfg0.seed])]
    ns = [int(n) for n in options["n_cortex"]]
    ks = [float(k) for k in options["in_degree"]]
    per_batch = int(options.get("batch", len(ks)))
    align = np.full((1, len(ns), len(ks), len(seeds), 1), np.nan)
    probs = np.full((len(ns), len(ks)), np.nan)
    slots, times = [], []
    points = [(s, k) for s in range(len(seeds)) for k in range(len(ks))]
    bar = progress_mod.bar(len(ns) * len(points), "inverse scaling (N, K, seed)", "run", disable=not progress,
                           delay=3.0)
    for i, n in enumerate(ns):
        start = time.perf_counter()
        sub = set_dotted(base, "circuit.n_cortex", n)
        probs[i] = [float(f"{k / n:.10g}") for k in ks]
        if probs[i].max() > 1.0:
            raise ValueError(f"inverse_scaling: K = {max(ks):g} > N = {n}")
        cfg_n = validate(sub)
        k_max = max(network.spec_of(replace(cfg_n, **{"circuit.connection_prob": p})).projection.slots
                    for p in probs[i])
        slots.append(k_max)
        for lo in range(0, len(points), per_batch):
            chunk = points[lo:lo + per_batch]
            configs = [replace(cfg_n, seed=seeds[s], **{"circuit.connection_prob": float(probs[i, k])})
                       for s, k in chunk]
            values = run_points(configs, k_max)
            for (s, k), v in zip(chunk, values):
                align[0, i, k, s, 0] = v
            bar.update(len(chunk))
        programs.clear()  # one Spec per N, never reused here
        times.append(round(time.perf_counter() - start, 1))
    bar.close()
    dims = (RULE_DIM, N_DIM, K_DIM, SEED, "breath")
    ds = xr.Dataset(
        {"alignment": (dims, align, measures.attrs()["alignment"])},
        coords={RULE_DIM: [cfg0.learning.rule], N_DIM: ns, K_DIM: ks, SEED: seeds,
                "breath": [cfg0.run.n_breaths], P_COORD: ((N_DIM, K_DIM), probs)})
    ds[RULE_DIM].attrs.update(key_attrs("learning.rule"))
    ds[N_DIM].attrs.update(key_attrs("circuit.n_cortex"))
    ds[P_COORD].attrs.update(key_attrs("circuit.connection_prob"))
    ds[K_DIM].attrs.update({"long_name": "in-degree K = pN (synapses per neuron)", "units": "1"})
    ds["slots"] = (N_DIM, np.asarray(slots), {"long_name": "synapse slots per row (K_max of the largest K)"})
    ds["compute_time_per_n_s"] = (N_DIM, np.asarray(times), {"long_name": "wall time of each N", "units": "s"})
    ds.attrs["plasticity"] = network.plans(network.spec_of(replace(cfg0, **{"circuit.n_cortex": ns[-1],
                                                                           "circuit.connection_prob": probs[-1, -1]})))[
        "projection"]
    return ds
