"""Beyond the thesis: does learning *where* the synapses are let two cortices align with fewer of them?

:func:`compute` runs the rewiring rules × N × K (fixed in-degree) × seed grid, the K × seeds of each (rule, N)
in as few compiled programs as padding to the largest K's slots allows (:func:`olfacto.engine.devices.groups`),
and keeps the learning curves of the alignment and of the rewiring's record
(:func:`olfacto.model.rewiring.measure`), with the two theory references per point: the online Hebbian
steady state of a fixed random mask and the best-partners alignment
(:func:`olfacto.model.theory.hebbian_best_partners_alignment`).
"""

from __future__ import annotations

import itertools

import numpy as np
import xarray as xr

from ..config import key_attrs
from ..config.loading import set_dotted
from ..engine import loop, programs
from ..engine import progress as progress_mod
from ..engine.devices import groups
from ..model import theory
from .chapter2 import _configs

CURVES = ("alignment", "tuning_alignment", "partner_correlation", "random_partner_correlation", "rewiring_survival",
          "rewiring_turnover")
RULE, N, K = "rule", "n_cortex", "in_degree"


def _point(base: dict, n: int, deg: int) -> dict:
    """``base`` at N = ``n`` with in-degree K = ``deg`` (p = K/N)."""
    return set_dotted(set_dotted(base, "circuit.n_cortex", n), "circuit.connection_prob", float(f"{deg / n:.10g}"))


def compute(base: dict, grid: dict, options: dict, progress: bool = False) -> xr.Dataset:
    """Learning curves over ``rewiring.rule`` (grid) × ``n_cortex`` × ``in_degree`` (options) × ``seed`` (grid)."""
    rules, seeds = list(grid["rewiring.rule"]), list(grid["seed"])
    ns, ks = list(options["n_cortex"]), list(options["in_degree"])
    data: dict[str, np.ndarray] = {}
    breaths = None
    points = list(itertools.product(range(len(rules)), range(len(ns)), range(len(ks)), range(len(seeds))))
    configs = [_configs(_point(base, ns[j], ks[k]), {"rewiring.rule": [rules[i]], "seed": [seeds[s]]})[0]
               for i, j, k, s in points]
    # the K of one (rule, N) in as few batches as padding allows (a padded run rewires as alone,
    # tests/test_padding.py) — one compile instead of one per K: at N = 2,000 the four K took 16.5 s in one
    # batch against 34.3 s apart, 26 s of which compiling (docs/benchmarks.md §16)
    bar = progress_mod.bar(len(groups(configs)), "rewiring", "batch", disable=not progress, delay=3.0)
    for members, result in loop.run_groups(configs, progress=False, stop_on_divergence=False):
        bar.update(1)
        programs.release(result.spec)  # one Spec per batch, never reused here: keep LLVM's code memory bounded
        ds = result.dataset
        if breaths is None:
            breaths = ds.breath.values
            data = {name: np.full((*map(len, (rules, ns, ks, seeds)), len(breaths)), np.nan) for name in CURVES}
        where = tuple(np.array([points[m] for m in members]).T)  # (rule, N, K, seed) of each run
        for name in CURVES:
            if name in ds:
                data[name][where] = ds[name].values
    bar.close()
    cfg = _configs(base, {"seed": seeds[:1]})[0]
    lrn, m = cfg.learning, cfg.circuit.n_glomeruli
    n_grid, k_grid = np.meshgrid(np.asarray(ns, float), np.asarray(ks, float), indexing="ij")
    fixed = theory.hebbian_steady_state_alignment(lrn.lr, lrn.decay, n_grid, m, k_grid / n_grid, cfg.odors.noise,
                                                  mask="fixed_indegree")
    best = theory.hebbian_best_partners_alignment(n_grid, m, k_grid)
    coords = {RULE: rules, N: ns, K: ks, "seed": seeds, "breath": breaths}
    dims = (RULE, N, K, "seed", "breath")
    out = xr.Dataset({name: (dims, v, {"long_name": name.replace("_", " ")}) for name, v in data.items()},
                     coords=coords)
    out["alignment_fixed_theory"] = ((N, K), fixed, {"long_name": "online Hebbian steady state, fixed random mask"})
    out["alignment_best_partners"] = ((N, K), best, {"long_name": "Hebbian fixed point on each neuron's K best "
                                                                  "partners (theory)"})
    out[RULE].attrs.update(key_attrs("rewiring.rule"))
    out[N].attrs.update(key_attrs("circuit.n_cortex"))
    out[K].attrs.update({"long_name": "in-degree K (synapses per neuron)"})
    out.attrs["target_alignment"] = float(options.get("target_alignment", 0.5))
    return out
