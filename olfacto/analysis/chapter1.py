"""The numbers behind the chapter-1 figures, computed from stored results.

Pure functions of xarray Datasets (and numpy arrays): the connection probability p*
that reaches a target alignment, the small-p exponent, the relaxation time of the
weights, the exact Hebbian fixed point of a simulated network, the update-alignment
chance level, and — per figure — the numbers that go into ``summary.json``
(``summary_*`` functions, each returning a :class:`~olfacto.analysis.common.Summary`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ..config import Config
from .common import (DECAY_DIM, KIND_DIM, LR_DIM, N_DIM, P_COORD, RULE_DIM, SEED, Summary, config_of, crossing,
                     final, loglog_slope, mean_sem, steady_state, theory_args)

__all__ = ["TARGET", "chance_level", "fit_relaxation_time", "linear_regime", "p_star_table",
           "relaxation_model", "small_p_exponent", "speed_accuracy_table", "summary_alignment_vs_p",
           "summary_experiment_comparison", "summary_hebbian_vs_sgd",
           "summary_learning_curves", "summary_speed_accuracy", "summary_update_alignment", "theory_alignment",
           "theory_p_star_same_grid", "tuning_correlation_theory_samples"]

# -- alignment vs p, inverse scaling ---------------------------------------------------


def p_star_table(ds: xr.Dataset, targets, rules=None) -> xr.DataArray:
    """p* per (rule, N, target, seed): the p where the final alignment reaches each target.

    ``ds`` has dims (learning.rule, circuit.n_cortex, in_degree, seed, breath) and a
    2-D coordinate ``circuit.connection_prob`` (n_cortex × in_degree).
    """
    rules = list(ds[RULE_DIM].values) if rules is None else list(rules)
    targets = list(np.atleast_1d(targets).astype(float))
    a = final(ds.alignment)
    out = np.full((len(rules), ds.sizes[N_DIM], len(targets), ds.sizes[SEED]), np.nan)
    for r, rule in enumerate(rules):
        for n in range(ds.sizes[N_DIM]):
            p = ds[P_COORD].isel({N_DIM: n}).values
            for s in range(ds.sizes[SEED]):
                y = a.sel({RULE_DIM: rule}).isel({N_DIM: n, SEED: s}).values
                for t, target in enumerate(targets):
                    out[r, n, t, s] = crossing(p, y, target)
    return xr.DataArray(out, dims=(RULE_DIM, N_DIM, "target", SEED),
                        coords={RULE_DIM: rules, N_DIM: ds[N_DIM].values, "target": targets,
                                SEED: ds[SEED].values}, name="p_star")


def theory_p_star_same_grid(ds: xr.Dataset, targets, rule: str) -> np.ndarray:
    """p* found by the same log–log interpolation, applied to the theory at the simulated grid points.

    Separates the interpolation error of a coarse grid from a real deviation.
    Shape (n_cortex, target).
    """
    cfg = config_of(ds)
    t_end = float(ds.breath.values[-1])
    out = np.full((ds.sizes[N_DIM], len(np.atleast_1d(targets))), np.nan)
    for n, big_n in enumerate(ds[N_DIM].values):
        p = ds[P_COORD].isel({N_DIM: n}).values
        y = theory_alignment(rule, big_n, p, cfg, t_end if rule == "hebbian" else None)
        for t, target in enumerate(np.atleast_1d(targets)):
            out[n, t] = crossing(p, y, float(target))
    return out


def theory_alignment(rule: str, n_cortex, connection_prob, cfg: Config, t_end: float | None = None):
    """Mean-field alignment for the simulated rule: Hebbian after ``t_end`` breaths (or at its
    fixed point when ``t_end`` is None), SGD at its optimum."""
    from ..model import theory

    kw = theory_args(cfg)
    if rule == "hebbian":
        if t_end is None:
            return theory.hebbian_alignment(n_cortex, kw["n_glomeruli"], connection_prob, kw["mask"])
        return theory.hebbian_learning_curve(t_end, cfg.learning.lr, cfg.learning.decay, n_cortex,
                                             kw["n_glomeruli"], connection_prob, kw["noise"], kw["mask"])
    return theory.sgd_alignment(n_cortex, kw["n_glomeruli"], connection_prob, kw["mask"], kw["noise"])


def small_p_exponent(ds: xr.Dataset, rule: str = "hebbian", max_k_over_m: float = 0.2) -> tuple[float, float]:
    """Log–log slope of the final alignment vs p where K = pN ≤ ``max_k_over_m``·M, with one
    intercept per N; returns (simulation, the same fit applied to the theory).

    Since A depends on N and p only through K, a common slope with per-N intercepts is
    the slope of log A against log K pooled over N.
    """
    cfg = config_of(ds)
    m = cfg.circuit.n_glomeruli
    a, _ = mean_sem(final(ds.alignment.sel({RULE_DIM: rule})))
    t_end = float(ds.breath.values[-1])
    xs, ys, ts = [], [], []
    for n, big_n in enumerate(ds[N_DIM].values):
        p = ds[P_COORD].isel({N_DIM: n}).values
        keep = p * big_n <= max_k_over_m * m
        xs.append(p[keep] * big_n)
        ys.append(a.isel({N_DIM: n}).values[keep])
        ts.append(np.asarray(theory_alignment(rule, big_n, p[keep], cfg, t_end), float))
    x, y, th = (np.concatenate(v) if v else np.array([]) for v in (xs, ys, ts))
    return loglog_slope(x, y), loglog_slope(x, th)


# -- online Hebbian dynamics -----------------------------------------------------------


def relaxation_model(t, tau: float, noise_factor: float):
    """Root-mean-square weight relative to the Hebbian fixed point's, from W = 0 (exact in expectation):

    rms(t)/rms(W_H) = sqrt((1 − ρ^t)² + ε (1 − ρ^{2t}) (sM + 1)),  ρ = e^{−1/τ},  ε = (1 − ρ)/(1 + ρ).
    ``noise_factor`` is sM + 1.
    """
    rho = np.exp(-1.0 / tau)
    eps = (1.0 - rho) / (1.0 + rho)
    t = np.asarray(t, float)
    return np.sqrt((1.0 - rho**t) ** 2 + eps * (1.0 - rho ** (2 * t)) * noise_factor)


def fit_relaxation_time(t, rms, noise_factor: float, rms_fixed_point: float | None = None) -> float:
    """Relaxation time τ (breaths) of the inter-hemispheric weights, fitted to a weight-rms curve.

    Fits :func:`relaxation_model` (τ and, unless given, the fixed point's rms) by least
    squares in log space over the records after breath 0.
    """
    from scipy import optimize

    t, rms = np.asarray(t, float), np.asarray(rms, float)
    ok = (t > 0) & np.isfinite(rms) & (rms > 0)
    t, rms = t[ok], rms[ok]
    if t.size < 3:
        return float("nan")
    plateau = float(np.mean(rms[-max(1, t.size // 4):]))
    tau0 = float(np.interp((1 - np.exp(-1)) * plateau, rms, t)) if rms[0] < (1 - np.exp(-1)) * plateau else t[0] / 2

    def resid(theta):
        tau = np.exp(theta[0])
        scale = rms_fixed_point if rms_fixed_point is not None else np.exp(theta[1])
        return np.log(scale * relaxation_model(t, tau, noise_factor)) - np.log(rms)

    theta0 = [np.log(max(tau0, 1.0)), np.log(plateau)]
    sol = optimize.least_squares(resid, theta0, bounds=([np.log(0.1), -np.inf], [np.log(1e8), np.inf]))
    return float(np.exp(sol.x[0]))


def speed_accuracy_table(ds: xr.Dataset, start_fraction: float = 0.5) -> xr.Dataset:
    """Per (η, seed): steady-state alignment (mean over breaths ≥ start_fraction·T), deficit
    below the network's own fixed point, and the fitted relaxation time of the weights.

    ``ds`` has dims (learning.lr, seed, breath) and variables ``fixed_point_alignment`` and
    ``fixed_point_weight_rms`` (per seed) from :func:`hebbian_fixed_point`.
    """
    cfg = config_of(ds)
    s = (1.0 + cfg.odors.noise**2) ** 2
    factor = s * cfg.circuit.n_glomeruli + 1.0
    start = start_fraction * float(ds.breath.values[-1])
    a_ss = steady_state(ds.alignment, start)
    deficit = ds["fixed_point_alignment"] - a_ss
    tau = xr.full_like(a_ss, np.nan)
    for i in range(ds.sizes[LR_DIM]):
        for j in range(ds.sizes[SEED]):
            rms = ds.weight_rms.isel({LR_DIM: i, SEED: j}).values
            tau[i, j] = fit_relaxation_time(ds.breath.values, rms, factor,
                                            float(ds["fixed_point_weight_rms"].isel({SEED: j})))
    return xr.Dataset({"steady_alignment": a_ss, "deficit": deficit, "relaxation_time": tau},
                      attrs={"window_start": start})


def linear_regime(lr, decay, cfg: Config, max_noise_to_signal: float = 0.3) -> np.ndarray:
    """Which learning rates keep the stationary weight noise-to-signal ε(sM+1) below the bound
    (where the deficit is linear in η); the speed–accuracy slope is fitted there."""
    from ..model import theory

    r = theory.hebbian_weight_noise_to_signal(np.asarray(lr, float), decay, cfg.circuit.n_glomeruli, cfg.odors.noise)
    return np.asarray(r) <= max_noise_to_signal


# -- update alignment --------------------------------------------------------------------


def chance_level(ds: xr.Dataset) -> float:
    """E|cos| of two independent random directions over the existing synapses, ≈ sqrt(2/(π D))."""
    cfg = config_of(ds)
    d = 2.0 * cfg.circuit.n_cortex * max(1.0, cfg.circuit.connection_prob * cfg.circuit.n_cortex)
    return float(np.sqrt(2.0 / (np.pi * d)))



# -- comparison with the experiment ------------------------------------------------------


def tuning_correlation_theory_samples(cfg: Config, n_probe: int, size: int = 200_000, seed: int = 0) -> np.ndarray:
    """Per-neuron tuning correlations at the Hebbian fixed point, as measured with ``n_probe`` probes.

    Mean field: for a neuron with K_i inputs, r² ~ Beta(K_i/2, (M−1)/2) (docs/theory.md §2);
    K_i = K (fixed in-degree) or Binomial(N, p) (neurons with K_i = 0 excluded). A sample
    correlation over P probes scatters around r: atanh r̂ ≈ atanh r + N(0, 1/(P−3)).
    """
    rng = np.random.default_rng(seed)
    n, m, p = cfg.circuit.n_cortex, cfg.circuit.n_glomeruli, cfg.circuit.connection_prob
    if cfg.circuit.mask == "fixed_indegree":
        k = np.full(size, max(1, round(p * n)))
    else:
        k = rng.binomial(n, p, size=size * 2)
        k = k[k > 0][:size]
    r = np.sqrt(rng.beta(k / 2.0, (m - 1) / 2.0))
    z = np.arctanh(np.clip(r, 0, 1 - 1e-9)) + rng.normal(0.0, 1.0 / np.sqrt(max(n_probe - 3, 1)), r.size)
    return np.tanh(z)


# -- the chapter-1 figures' numbers for summary.json ------------------------------------------

TARGET = 0.5
"""The target alignment A* of the summary's inverse-scaling exponent and p* ratio."""


def summary_alignment_vs_p(ds: xr.Dataset) -> Summary:
    """Small-p exponent of the Hebbian alignment (and the same fit on the theory); the largest
    |simulation − theory| of the final Hebbian alignment over the (N, p) grid."""
    from ..model import theory

    cfg = config_of(ds)
    t_end = float(ds.breath.values[-1])
    slope, slope_th = small_p_exponent(ds, "hebbian")
    out = Summary(values={"alignment_vs_p_exponent": slope},
                  theory={"alignment_vs_p_exponent": {"small_p_limit": theory.alignment_power_law_exponent(),
                                                      "same_fit_on_theory": slope_th}})
    a_mean, _ = mean_sem(final(ds.alignment))
    gaps = []
    for i, n in enumerate(ds[N_DIM].values):
        p = ds[P_COORD].isel({N_DIM: i}).values
        sim = a_mean.sel({RULE_DIM: "hebbian"}).isel({N_DIM: i}).values
        gaps.append(np.abs(sim - theory_alignment("hebbian", n, p, cfg, t_end)))
    out.deviations["alignment_vs_p: Hebbian, final breath"] = float(np.nanmax(np.concatenate(gaps)))
    return out


def summary_hebbian_vs_sgd(ds: xr.Dataset) -> Summary:
    """p*_Hebbian / p*_SGD at A* = TARGET (mean over N of the per-seed ratios) and its theory; the
    largest |SGD − optimum| where K ≤ M/2."""
    from ..model import theory

    cfg = config_of(ds)
    m, mask = cfg.circuit.n_glomeruli, cfg.circuit.mask
    ns = ds[N_DIM].values.astype(float)
    table = p_star_table(ds, [TARGET])
    ratio = table.sel({RULE_DIM: "hebbian"}) / table.sel({RULE_DIM: "sgd"})
    per_n = ratio.mean(SEED).isel(target=0).values
    a_mean, _ = mean_sem(final(ds.alignment))
    gaps = []
    for i, n in enumerate(ds[N_DIM].values):
        p = ds[P_COORD].isel({N_DIM: i}).values
        keep = p * n <= m / 2
        sim = a_mean.sel({RULE_DIM: "sgd"}).isel({N_DIM: i}).values[keep]
        gaps.append(np.abs(sim - theory_alignment("sgd", n, p[keep], cfg)))
    return Summary(
        values={"p_star_ratio_hebbian_over_sgd": float(np.nanmean(per_n)),
                "max_theory_deviation_sgd": float(np.nanmax(np.concatenate(gaps)))},
        theory={"p_star_ratio_hebbian_over_sgd": float(theory.p_star_ratio(TARGET, m, n_cortex=ns.max(), mask=mask)),
                "max_theory_deviation_sgd": ("online SGD at finite η sits below the optimum by ≈ ηM/4 "
                                             "(relative) plus unconverged slow modes; compared where K ≤ M/2")},
        details={"p_star_ratio_per_N": {f"N={int(n)}": float(v) for n, v in zip(ns, per_n)}})


def _hebbian_args(cfg: Config) -> tuple:
    kw = theory_args(cfg)
    return cfg.circuit.n_cortex, kw["n_glomeruli"], cfg.circuit.connection_prob, kw["noise"], kw["mask"]


def summary_learning_curves(ds: xr.Dataset) -> Summary:
    """The largest |simulation − mean-field learning curve| over η and t ≥ 10(s + 1)."""
    from ..model import theory

    cfg = config_of(ds)
    args, lam = _hebbian_args(cfg), cfg.learning.decay
    b = ds.breath.values
    mean, _ = mean_sem(ds.alignment)
    s = (1 + cfg.odors.noise**2) ** 2
    keep = b >= 10 * (s + 1)  # where the learning-curve formula applies (docs/theory.md §5)
    worst = 0.0
    for lr in ds[LR_DIM].values:
        curve = theory.hebbian_learning_curve(b[keep], lr, lam, *args)
        worst = max(worst, float(np.nanmax(np.abs(mean.sel({LR_DIM: lr}).values[keep] - curve))))
    return Summary(deviations={"learning_curves: t ≥ 10(s+1)": worst})


def summary_speed_accuracy(ds: xr.Dataset) -> Summary:
    """Slope of log deficit vs log η in the linear regime (and the same fit on the theory),
    relaxation times, deficit × τ; the largest |steady state − theory| over η."""
    from ..model import theory

    cfg = config_of(ds)
    args, lam = _hebbian_args(cfg), cfg.learning.decay
    table = speed_accuracy_table(ds)
    lrs = ds[LR_DIM].values
    lin = linear_regime(lrs, lam, cfg)
    d_mean, _ = mean_sem(table.deficit)
    tau_mean, _ = mean_sem(table.relaxation_time)
    start = float(table.attrs["window_start"])
    window = ds.breath.values[ds.breath.values >= start]
    worst = 0.0
    for lr in lrs:
        th_mean = float(np.mean(theory.hebbian_learning_curve(window, lr, lam, *args)))
        worst = max(worst, abs(float(table.steady_alignment.sel({LR_DIM: lr}).mean()) - th_mean))
    return Summary(
        values={"speed_accuracy_slope": loglog_slope(lrs[lin], d_mean.values[lin])},
        theory={"speed_accuracy_slope": {
            "small_eta_limit": 1.0,
            "same_fit_on_theory": loglog_slope(lrs[lin], theory.hebbian_steady_state_deficit(lrs[lin], lam, *args))}},
        details={"speed_accuracy": {
            "learning_rates": lrs.tolist(), "fitted_on": lrs[lin].tolist(),
            "deficit": d_mean.values.tolist(),
            "deficit_theory": np.asarray(theory.hebbian_steady_state_deficit(lrs, lam, *args)).tolist(),
            "relaxation_time": tau_mean.values.tolist(),
            "relaxation_time_theory": np.asarray(theory.hebbian_relaxation_time(lrs, lam)).tolist(),
            "deficit_times_tau": (d_mean.values * tau_mean.values).tolist(),
            "speed_accuracy_constant_theory": float(theory.speed_accuracy_constant(*args)),
        }},
        deviations={"speed_accuracy: steady state": worst})


def summary_update_alignment(ds: xr.Dataset) -> Summary:
    """Mean, minimum and final cosine between the Hebbian and SGD updates along learning (t > 0),
    per trajectory (rule) and Hebbian gain g = K/(Mλ); the random-direction level; along Hebbian
    learning, the mean-field curve (theory.hebbian_update_alignment) and its largest deviation."""
    from ..model import theory

    cfg = config_of(ds)
    c = cfg.circuit
    k_over_m = c.connection_prob * c.n_cortex / c.n_glomeruli
    after = ds.update_alignment.sel(breath=slice(1, None)).mean(SEED)
    table: dict[str, Any] = {}
    final_theory: dict[str, float] = {}
    worst = 0.0
    for rule in [str(r) for r in ds[RULE_DIM].values]:
        for lam in ds[DECAY_DIM].values:
            curve = after.sel({RULE_DIM: rule, DECAY_DIM: lam})
            key = f"hebbian, g={k_over_m / lam:g} (λ={lam:g})" if rule == "hebbian" else f"{rule}, λ={lam:g}"
            table[key] = {"mean": float(curve.mean()), "min": float(curve.min()), "final": float(curve[-1])}
            if rule == "hebbian":
                th = theory.hebbian_update_alignment(c.n_cortex, c.n_glomeruli, c.connection_prob, float(lam),
                                                     lr=cfg.learning.lr, noise=cfg.odors.noise,
                                                     t=curve.breath.values, mask=c.mask)
                final_theory[key] = float(th[-1])
                table[key]["theory_final"] = float(th[-1])
                worst = max(worst, float(np.max(np.abs(curve.values - th))))
    return Summary(
        values={"update_alignment_mean": {key: row["mean"] for key, row in table.items()},
                "update_alignment_min": {key: row["min"] for key, row in table.items()},
                "update_alignment_final": {key: row["final"] for key, row in table.items()}},
        theory={"update_alignment_final": final_theory,
                "update_alignment_mean": {"random_directions": chance_level(ds),
                                          "note": "mean field along Hebbian learning: theory.hebbian_update_alignment "
                                                  "(sign of 1 − g at stationarity); none along SGD learning"}},
        details={"update_alignment": {"along learning (t > 0), mean over seeds": table}},
        deviations={"update_alignment_hebbian": worst})


def summary_experiment_comparison(ds: xr.Dataset) -> Summary:
    """Per rule and odor environment: tuning-correlation mean, median and fraction positive, decoding
    transfer and alignment at the end; for Hebbian, gaussian odors: the fixed-point theory."""
    from ..model import theory

    cfg = config_of(ds)
    kinds = [str(k) for k in ds[KIND_DIM].values]
    rules = [str(r) for r in ds[RULE_DIM].values] if RULE_DIM in ds.dims else ["hebbian"]
    comp: dict[str, Any] = {"chance_decoding": 1.0 / cfg.run.n_probe}
    out = Summary()
    for rule in rules:
        for kind in kinds:
            sub = ds.sel({KIND_DIM: kind})
            sub = sub.sel({RULE_DIM: rule}) if RULE_DIM in ds.dims else sub
            r = sub.tuning_correlation.values.ravel()
            r = r[np.isfinite(r)]
            comp[f"{rule}, {kind}"] = {
                "tuning_correlation_mean": float(r.mean()), "tuning_correlation_median": float(np.median(r)),
                "fraction_positive": float((r > 0).mean()),
                "decoding_transfer": float(final(sub.decoding_transfer).mean()),
                "alignment": float(final(sub.alignment).mean())}
    if "gaussian" in kinds and "hebbian" in rules and cfg.circuit.activation == "linear":
        cfg_g = cfg.model_copy(update={"odors": cfg.odors.model_copy(update={"kind": "gaussian"})})
        n, m, p, sigma, mask = _hebbian_args(cfg_g)
        curve = float(theory.hebbian_learning_curve(float(ds.breath.values[-1]), cfg.learning.lr,
                                                    cfg.learning.decay, n, m, p, sigma, mask))
        comp["hebbian, gaussian: theory"] = {
            "tuning_correlation_mean_fixed_point": float(theory.hebbian_tuning_alignment(n, m, p, mask)),
            "tuning_correlation_mean_with_P_probes": float(tuning_correlation_theory_samples(
                cfg_g, cfg.run.n_probe).mean()),
            "alignment": curve}
        out.deviations["experiment_comparison: Hebbian, gaussian, final alignment"] = abs(
            comp["hebbian, gaussian"]["alignment"] - curve)
    out.details["experiment_comparison"] = comp
    return out
