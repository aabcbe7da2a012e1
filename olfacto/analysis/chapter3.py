"""Beyond the thesis (chapter 3): the numbers of the rewiring figures, Dataset → :class:`Summary`.

``rewiring_alignment``: the final alignment of each rule (mean over seeds) at the largest N and the K
closest to the base config's; ``rewiring_synapse_saving``: per rule and N, the K a fixed random mask needs
to reach the target alignment (interpolated in log K on the measured curve of rule ``none``) over the K the
rule needs, against the best-partners saving of the theory
(:func:`olfacto.model.theory.best_partners_synapse_saving`, a reference, not a prediction of online
rewiring). The fixed mask's final alignment against the online Hebbian steady state is the one exact
comparison (``max_theory_deviation``).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..model import theory
from .common import SEED, Summary, config_of

RULE, N, K = "rule", "n_cortex", "in_degree"


def final_alignment(ds: xr.Dataset) -> xr.DataArray:
    """The final alignment, mean over seeds, (rule, n_cortex, in_degree)."""
    return ds.alignment.isel(breath=-1).mean(SEED)


def in_degree_at(alignment: np.ndarray, degrees: np.ndarray, target: float) -> float:
    """K at which a curve of final alignment over K reaches ``target`` (linear in log K between the grid points
    that bracket it; NaN outside the measured range)."""
    a, k = np.asarray(alignment, float), np.asarray(degrees, float)
    for i in range(len(k) - 1):
        lo, hi = a[i], a[i + 1]
        if np.isfinite(lo) and np.isfinite(hi) and lo <= target <= hi and hi > lo:
            f = (target - lo) / (hi - lo)
            return float(np.exp(np.log(k[i]) + f * (np.log(k[i + 1]) - np.log(k[i]))))
    return float("nan")


def synapse_saving(ds: xr.Dataset, target: float | None = None) -> xr.DataArray:
    """Per rule and N: K needed by the fixed mask (rule ``none``) over K needed by the rule, at ``target``."""
    target = float(ds.attrs.get("target_alignment", 0.5)) if target is None else target
    fin = final_alignment(ds)
    ks = ds[K].values
    out = np.full((ds.sizes[RULE], ds.sizes[N]), np.nan)
    for j in range(ds.sizes[N]):
        k_fixed = in_degree_at(fin.sel({RULE: "none"}).isel({N: j}).values, ks, target) \
            if "none" in ds[RULE].values else float("nan")
        for i in range(ds.sizes[RULE]):
            out[i, j] = k_fixed / in_degree_at(fin.isel({RULE: i, N: j}).values, ks, target)
    return xr.DataArray(out, dims=(RULE, N), coords={RULE: ds[RULE].values, N: ds[N].values},
                        attrs={"long_name": f"synapse saving at alignment {target:g}"})


def summary_rewiring(ds: xr.Dataset) -> Summary:
    cfg = config_of(ds)
    fin = final_alignment(ds)
    k_base = ds[K].values[np.argmin(np.abs(ds[K].values - cfg.circuit.connection_prob * cfg.circuit.n_cortex))]
    at = fin.sel({K: k_base}).isel({N: -1})
    values = {"rewiring_alignment": {str(r): float(at.sel({RULE: r})) for r in ds[RULE].values}}
    theory_ = {"rewiring_alignment": {"none": float(ds.alignment_fixed_theory.sel({K: k_base}).isel({N: -1})),
                                      "best_partners": float(ds.alignment_best_partners.sel({K: k_base}).isel({N: -1}))}}
    saving = synapse_saving(ds)
    target = float(ds.attrs.get("target_alignment", 0.5))
    values["rewiring_synapse_saving"] = {str(r): {int(n): float(saving.sel({RULE: r, N: n})) for n in ds[N].values}
                                         for r in ds[RULE].values if r != "none"}
    theory_["rewiring_synapse_saving"] = {"best_partners": {
        int(n): float(theory.best_partners_synapse_saving(target, n, cfg.circuit.n_glomeruli)) for n in ds[N].values}}
    deviations = {}
    if "none" in ds[RULE].values:
        dev = np.abs(fin.sel({RULE: "none"}) - ds.alignment_fixed_theory)
        deviations["rewiring_fixed_mask_vs_theory"] = float(dev.max())
    details = {"rewiring_final_alignment": {str(r): {int(n): {int(k): float(fin.sel({RULE: r, N: n, K: k}))
                                                              for k in ds[K].values} for n in ds[N].values}
                                            for r in ds[RULE].values}}
    return Summary(values, theory_, details, deviations)
