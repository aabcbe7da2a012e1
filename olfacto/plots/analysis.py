"""The numbers behind the chapter-1 figures, computed from stored results.

Pure functions of xarray Datasets (and numpy arrays): seed statistics, steady
states, the connection probability p* that reaches a target alignment, log–log
slopes, the relaxation time of the weights, and the exact Hebbian fixed point
of a simulated network. The figures (:mod:`olfacto.plots`) and
``DIR/summary.json`` (:mod:`olfacto.figures`) both use them, so a number in the
summary is the number drawn in the figure.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
import yaml

from ..config import Config, validate

SEED = "seed"
N_DIM = "circuit.n_cortex"
K_DIM = "in_degree"
P_COORD = "circuit.connection_prob"
RULE_DIM = "learning.rule"
LR_DIM = "learning.lr"
DECAY_DIM = "learning.decay"
KIND_DIM = "odors.kind"


def config_of(ds: xr.Dataset) -> Config:
    """The (base) config a result was made from, as stored in its attributes."""
    return validate(yaml.safe_load(ds.attrs["config"]))


def theory_args(cfg: Config) -> dict:
    """Keyword arguments of the :mod:`olfacto.theory` functions for a config (M, σ, mask)."""
    return {"n_glomeruli": cfg.circuit.n_glomeruli, "noise": cfg.odors.noise, "mask": cfg.circuit.mask}


def mean_sem(da: xr.DataArray, dim: str = SEED) -> tuple[xr.DataArray, xr.DataArray]:
    """Mean and standard error of the mean over ``dim`` (NaNs skipped; s.e.m. 0 for one value)."""
    n = da.count(dim)
    mean = da.mean(dim)
    sd = da.std(dim, ddof=1) if da.sizes[dim] > 1 else xr.zeros_like(mean)
    sem = (sd / np.sqrt(n.where(n > 0))).fillna(0.0)
    return mean, sem


def final(da: xr.DataArray) -> xr.DataArray:
    """The value at the last recorded breath."""
    return da.isel(breath=-1)


def steady_state(da: xr.DataArray, start: float) -> xr.DataArray:
    """Time average over the records at breaths ≥ ``start``."""
    return da.sel(breath=slice(start, None)).mean("breath")


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x over the finite, positive pairs (NaN if < 2)."""
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if np.unique(x[ok]).size < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def crossing(x, y, target: float) -> float:
    """The x at which y first rises through ``target``, interpolating log y linearly in log x.

    Used for p*: the alignment grows as a power of p where it is low, so log–log
    interpolation between neighbouring grid points is nearly exact. NaN when the
    target is not bracketed by the grid.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    ok = np.isfinite(y) & (y > 0) & (x > 0)
    x, y = x[ok], y[ok]
    if x.size < 2:
        return float("nan")
    lx, ly, lt = np.log(x), np.log(y), np.log(target)
    for i in range(x.size - 1):
        lo, hi = ly[i] - lt, ly[i + 1] - lt
        if lo <= 0.0 <= hi and hi > lo:
            f = -lo / (hi - lo)
            return float(np.exp(lx[i] + f * (lx[i + 1] - lx[i])))
    return float("nan")


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
    from .. import theory

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


def hebbian_fixed_point(cfg: Config, seeds) -> dict[str, np.ndarray]:
    """The exact Hebbian fixed point W_H = C ⊙ J_R J_Lᵀ / λ of each seed's simulated network.

    Draws the very networks and probe odors the simulator uses for these seeds and
    returns, per seed, the population alignment of W_H on the probes (both
    directions averaged, as the recorded ``alignment``) and the rms of W_H over the
    existing synapses. Valid for linear φ (then E[y_R y_Lᵀ] = J_R E[x xᵀ] J_Lᵀ with
    E[x xᵀ] = I for gaussian odors).
    """
    import jax
    import jax.numpy as jnp

    from .. import config as config_mod
    from .. import metrics, simulate

    if cfg.circuit.activation != "linear" or cfg.odors.kind != "gaussian":
        raise ValueError("hebbian_fixed_point: needs circuit.activation=linear and odors.kind=gaussian")
    cfgs = [config_mod.replace(cfg, seed=int(s)) for s in seeds]
    spec = simulate.spec_of(cfgs[0])
    prog = simulate.programs(spec)
    padded = simulate.pad_to_devices(cfgs)
    params = simulate.stack_params(padded)
    keys = jnp.stack([jax.random.key_data(jax.random.key(c.seed)) for c in padded])
    params, keys = simulate.shard_batch((params, keys))
    keys = jax.vmap(jax.random.wrap_key_data)(keys)
    world, _ = prog["init"](keys, params, None)
    world = jax.device_get(world)
    decay = cfg.learning.decay
    align, rms = [], []
    for b in range(len(cfgs)):
        c = world.circuit
        j_l, j_r = np.asarray(c.J_L[b], np.float64), np.asarray(c.J_R[b], np.float64)
        probes = np.asarray(world.probes[b], np.float64)
        y = {"L": probes @ j_l.T, "R": probes @ j_r.T}
        values, squares, count = [], 0.0, 0
        for post, pre, mask in (("R", "L", c.mask_rl), ("L", "R", c.mask_lr)):
            j_post, j_pre = (j_r, j_l) if post == "R" else (j_l, j_r)
            idx, valid = np.asarray(mask.idx[b]), np.asarray(mask.valid[b])
            w = np.where(valid, np.einsum("im,ikm->ik", j_post, j_pre[idx]), 0.0) / decay
            y_hat = np.einsum("ik,pik->pi", w, y[pre][:, idx])
            values.append(float(metrics.alignment(jnp.asarray(y[post]), jnp.asarray(y_hat))))
            squares += float(np.sum(w**2))
            count += int(valid.sum())
        align.append(np.mean(values))
        rms.append(np.sqrt(squares / max(count, 1)))
    return {"alignment": np.asarray(align), "weight_rms": np.asarray(rms)}


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
    from .. import theory

    r = theory.hebbian_weight_noise_to_signal(np.asarray(lr, float), decay, cfg.circuit.n_glomeruli, cfg.odors.noise)
    return np.asarray(r) <= max_noise_to_signal


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
