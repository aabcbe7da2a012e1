"""The numbers of the ``inverse_scaling`` figure: p*(N) and the log–log slope d log p*/d log N with its interval.

p* is read off per seed (:func:`olfacto.analysis.chapter1.p_star_table`: the final alignment interpolated
log-linearly in log p between the K of the grid). The slope is the least-squares line through the
seed means of log p* at each N (every N weighs the same); its standard error propagates each N's
seed spread (s.e.m. of the mean log p*) through that line, and the interval is Student's t with the
Welch–Satterthwaite degrees of freedom (:func:`slope_fit`). The seeds are independent networks, so
this is the interval a new set of networks would reproduce the slope within; curvature of the true
log p*(log N) is not part of it — ``chi2_per_dof`` (the means' scatter about the line in units of
their s.e.m.) says whether a line describes them.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import stats

from .chapter1 import p_star_table, theory_alignment, theory_p_star_same_grid
from .common import N_DIM, P_COORD, RULE_DIM, SEED, Summary, config_of, final, loglog_slope, mean_sem

__all__ = ["LEVEL", "TARGET", "fit_table", "slope_fit", "summary"]

TARGET = 0.5
"""The target alignment A* of the fitted slope (K* ≈ 17 for M = 50)."""

LEVEL = 0.95
"""The confidence level of the slope's interval."""


def slope_fit(x, y, level: float = LEVEL) -> dict:
    """The slope of log y against log x, from samples ``y`` of shape (len(x), samples) (NaN: missing).

    Least squares through the mean of log y at each x; standard error
    se² = Σ_i c_i² sem_i² with c_i = (u_i − ū)/Σ(u − ū)² (u = log x) and sem_i the standard error
    of the mean log y at x_i; the interval slope ± t_ν se with ν the Welch–Satterthwaite degrees
    of freedom ν = se⁴ / Σ_i (c_i² sem_i²)² / (n_i − 1). An x with fewer than two samples has no
    spread to give: it is left out. Returns slope, intercept, se, ci (low, high), dof, chi2_per_dof
    (the means' scatter about the line over their sem², per n_x − 2 degrees of freedom; NaN
    when undefined), and the per-x mean, sem and count of log y.
    """
    x = np.asarray(x, float)
    with np.errstate(invalid="ignore", divide="ignore"):  # a non-positive sample is missing
        ly = np.log(np.asarray(y, float).reshape(x.size, -1))
    ly[~np.isfinite(ly)] = np.nan
    n = np.sum(np.isfinite(ly), axis=1)
    keep = n >= 2
    if keep.sum() < 2:
        raise ValueError(f"slope_fit: need two x with two finite, positive samples each; got counts {n.tolist()}")
    u = np.log(x[keep])
    mean = np.nanmean(ly[keep], axis=1)
    sem = np.nanstd(ly[keep], axis=1, ddof=1) / np.sqrt(n[keep])
    du = u - u.mean()
    c = du / np.sum(du**2)
    slope = float(np.sum(c * mean))
    intercept = float(mean.mean() - slope * u.mean())
    var_parts = c**2 * sem**2
    se = float(np.sqrt(var_parts.sum()))
    if se > 0:
        dof = float(se**4 / np.sum(var_parts**2 / (n[keep] - 1)))
        half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    else:  # no spread (noise-free samples): the slope is exact
        dof, half = float("inf"), 0.0
    resid = mean - (intercept + slope * u)
    chi2 = float(np.sum(resid**2 / sem**2) / (u.size - 2)) if u.size > 2 and np.all(sem > 0) else float("nan")
    return {"slope": slope, "intercept": intercept, "se": se, "ci": (slope - half, slope + half), "dof": dof,
            "level": level, "chi2_per_dof": chi2, "x": x[keep].tolist(), "mean_log": mean.tolist(),
            "sem_log": sem.tolist(), "count": n[keep].tolist()}


def fit_table(ds: xr.Dataset, target: float = TARGET, rule: str = "hebbian") -> tuple[xr.DataArray, dict]:
    """p* per (N, seed) at ``target`` and :func:`slope_fit` of it against N."""
    table = p_star_table(ds, [target], [rule]).isel({RULE_DIM: 0, "target": 0})
    return table, slope_fit(ds[N_DIM].values, table.transpose(N_DIM, SEED).values)


def summary(ds: xr.Dataset) -> Summary:
    """``inverse_scaling_exponent`` (fitted slope at A* = TARGET) and ``inverse_scaling_exponent_ci95`` per rule,
    against the theory (mean field −1; the local slope at the smallest and largest N; the same fit applied to the
    theory's p* interpolated on the simulated grid), p* per N with its s.e.m., and the largest |simulated −
    mean-field| final alignment over the (N, K) grid as a theory deviation."""
    from ..model import theory

    cfg = config_of(ds)
    m, mask = cfg.circuit.n_glomeruli, cfg.circuit.mask
    ns = ds[N_DIM].values.astype(float)
    t_end = float(ds.breath.values[-1])
    rules = [str(r) for r in ds[RULE_DIM].values]
    values = {"inverse_scaling_exponent": {}, "inverse_scaling_exponent_ci95": {}}
    th = {"inverse_scaling_exponent": {}, "inverse_scaling_exponent_ci95": {}}
    details = {"inverse_scaling_fit": {}, "p_star": {}, "p_star_theory": {}, "k_star": {}, "k_star_sem": {},
               "target_alignment": TARGET}
    gaps = []
    a_mean, _ = mean_sem(final(ds.alignment))
    for rule in rules:
        table, fit = fit_table(ds, TARGET, rule)
        values["inverse_scaling_exponent"][rule] = fit["slope"]
        values["inverse_scaling_exponent_ci95"][rule] = list(fit["ci"])
        same_grid = loglog_slope(ns, theory_p_star_same_grid(ds, [TARGET], rule)[:, 0])
        th["inverse_scaling_exponent"][rule] = {
            "mean_field": theory.inverse_scaling_exponent(),
            "local_at_smallest_N": float(theory.inverse_scaling_exponent(TARGET, ns.min(), m, rule, mask)),
            "local_at_largest_N": float(theory.inverse_scaling_exponent(TARGET, ns.max(), m, rule, mask)),
            "same_fit_on_theory": same_grid}
        th["inverse_scaling_exponent_ci95"][rule] = theory.inverse_scaling_exponent()  # the slope it may contain
        details["inverse_scaling_fit"][rule] = {k: fit[k] for k in ("slope", "se", "ci", "dof", "chi2_per_dof")}
        inside = lambda v: "yes" if fit["ci"][0] <= v <= fit["ci"][1] else "no"  # noqa: E731 - not a 1.0 in json
        details["inverse_scaling_fit"][rule]["ci_contains_mean_field"] = inside(theory.inverse_scaling_exponent())
        details["inverse_scaling_fit"][rule]["ci_contains_same_fit_on_theory"] = inside(same_grid)
        details["inverse_scaling_fit"][rule].update(n_values=[f"N={int(n)}" for n in ns],
                                                     seeds=f"{ds.sizes[SEED]} per N", level=LEVEL)
        mean, sem = mean_sem(table, SEED)
        details["p_star"][rule] = {f"N={int(n)}": float(mean.isel({N_DIM: i})) for i, n in enumerate(ns)}
        details["k_star_sem"][rule] = {f"N={int(n)}": float(sem.isel({N_DIM: i})) * n for i, n in enumerate(ns)}
        details["p_star_theory"][rule] = {f"N={int(n)}": float(theory.p_star(TARGET, n, m, rule, mask)) for n in ns}
        details["k_star"][rule] = {f"N={int(n)}": float(mean.isel({N_DIM: i})) * n for i, n in enumerate(ns)}
        for i, n in enumerate(ns):
            p = ds[P_COORD].isel({N_DIM: i}).values
            sim = a_mean.sel({RULE_DIM: rule}).isel({N_DIM: i}).values
            gaps.append(np.abs(sim - theory_alignment(rule, n, p, cfg, t_end)))
    return Summary(values=values, theory=th, details=details,
                   deviations={"inverse_scaling: Hebbian alignment, final breath":
                               float(np.nanmax(np.concatenate(gaps)))})
