"""The real-odor puzzle's runs (figure ``real_odors``): each remedy with the measured glomerular odors, and
the dense-limit prediction of transfer decoding from the odors' second moment
(:mod:`olfacto.analysis.real_odors` reads the numbers off)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..analysis.common import SEED, final
from ..analysis.real_odors import REMEDIES
from ..model import theory


def _odor_statistics(cfg, batch=None, seed_key: int = 3, n: int = 8192):
    """Second moment S and covariance of the run's (bulb-transformed) odors, and its probes: those of the run of
    ``batch`` (a :class:`olfacto.engine.result.Result` or a built batch) with ``cfg``'s seed, else of ``cfg``'s
    network drawn here (the init program of a batch of one: a compile of its own, 4.5 s per remedy)."""
    import jax

    from ..engine import loop
    from ..model import odors

    runs = [i for i, c in enumerate(batch.configs) if c.seed == cfg.seed] if batch is not None else []
    if not runs:
        batch, runs = loop.build([cfg]), [0]
    world = jax.tree.map(lambda a: a[runs[0]], batch.world)
    params = jax.tree.map(lambda a: a[runs[0]], batch.params)
    x = np.asarray(odors.sample_odors(jax.random.key(seed_key), world.env, params.odors, n), float)
    return x.T @ x / n, np.cov(x, rowvar=False), np.asarray(world.probes, float)


def compute(base: dict, grid: dict, options: dict, progress: bool = False) -> xr.Dataset:
    """Final decoding transfer, tuning alignment and alignment of each remedy (× seeds), the dense-limit
    Hebbian prediction from the odors' second moment (covariance for the covariance rule; 1 for SGD,
    whose regression undoes the filter), and the effective dimension of each odor statistics."""
    from ..config import set_dotted, validate
    from ..engine import loop
    from ..engine.devices import map_batches
    from ..sweeps.grid import expand

    remedies = {name: REMEDIES[name] for name in options.get("remedies", list(REMEDIES))}
    lr_sgd = options.get("lr_sgd", 0.002)
    seeds = grid.get("seed", [0])
    names = ["decoding_transfer", "tuning_alignment", "alignment"]
    sim = np.full((len(remedies), len(seeds), len(names)), np.nan)
    predicted, d_second, d_cov = [], [], []
    subs = []
    for over in remedies.values():
        sub = base
        for key, value in over.items():
            sub = set_dotted(sub, key, value)
        subs.append(set_dotted(sub, "learning.lr", lr_sgd) if over.get("learning.rule") == "sgd" else sub)

    def simulate(sub: dict) -> tuple[xr.Dataset, tuple]:
        configs = [p.config for p in expand(sub, {"seed": seeds})]
        result = loop.run_batch(configs, progress=progress, stop_on_divergence=False)
        return final(result.dataset), _odor_statistics(validate(sub), result)  # the odors of the network it drew

    for i, (over, sub, (last, stats)) in enumerate(zip(remedies.values(), subs, map_batches(simulate, subs))):
        sim[i] = np.stack([last[n].values for n in names], axis=-1)  # the remedies several at once on a CPU
        second, cov, probes = stats
        d_second.append(theory.effective_dimension(second))
        d_cov.append(theory.effective_dimension(cov))
        linear = validate(sub).circuit.activation == "linear"
        rule = over.get("learning.rule", "hebbian")
        predicted.append(1.0 if rule == "sgd" else theory.hebbian_filtered_decoding(
            probes, cov if rule == "covariance" else second) if linear else np.nan)
    coords = {"remedy": list(remedies), SEED: seeds}
    ds = xr.Dataset({n: (("remedy", SEED), sim[..., k], {"long_name": f"final {n}"}) for k, n in enumerate(names)},
                    coords=coords)
    ds["decoding_transfer_theory"] = ("remedy", np.array(predicted, float), {
        "long_name": "dense-limit prediction: argmax_b cos(S x_a, x_b) (S: the learned second moment)"})
    ds["effective_dimension"] = ("remedy", np.array(d_second), {"long_name": "(tr S)²/tr S², S = E[x xᵀ]"})
    ds["effective_dimension_covariance"] = ("remedy", np.array(d_cov), {"long_name": "the same for Cov(x)"})
    ds.attrs["chance"] = 1.0 / validate(base).run.n_probe
    return ds


