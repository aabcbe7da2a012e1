"""A posterior over the fit's grid: synthetic likelihood in units of the data's bootstrap error.

The fit (:mod:`.fit`) simulates the model under the recordings' protocol on a grid of parameters θ
(K, η, trial noise, and the protocol's model terms when given: gain spread, sparseness, α-mix), S seeds
per point, and measures the four fitted measures m. This module turns that grid into a posterior:

- **likelihood** (Gaussian synthetic likelihood, Wood 2010): the recorded measures d of a region are one
  draw of an experiment whose sampling error the hierarchical bootstrap of the recordings estimates
  (Σ_boot, mice then neurons then trials: :mod:`olfacto.recordings.bootstrap`); the model predicts the
  mean μ(θ) = mean over seeds, itself known to within its seed variance s²_m(θ)/S. So

      log L(θ) = −½ (d − μ(θ))ᵀ Σ(θ)⁻¹ (d − μ(θ)) − ½ log det 2πΣ(θ),   Σ(θ) = Σ_boot + diag(s²(θ))/S

  — distances in units of the data's bootstrap error, not of seed error. A point where a seed diverged
  has no μ and no weight;
- **prior**: uniform over the grid's points, i.e. over each axis's values as the grid spaces them
  (log-spaced K and η: log-uniform priors on them), independent between axes;
- **posterior** p(θ | d) ∝ L(θ) on the grid; per parameter its marginal over the axis's values, the
  posterior median and the central 95 % credible interval read off the marginal's CDF (as grid values: the
  interval's resolution is the grid's), and the mass on the axis's first and last value (a posterior
  piled at an edge says the grid is too narrow, not that the parameter is known);
- **posterior predictive** of each measure: the mixture over θ of N(μ(θ), Σ(θ)) — its mean and central 95 %
  interval, sampled — against which the data, and the measures not fitted, are checked;
- **evidence** Z = Σ_θ p(θ) L(θ), the prior-weighted mean likelihood, of the whole grid or of a family
  (a sub-grid: homogeneous neurons = gain spread 0, the article's fixed mix, …). Ratios of Z are Bayes
  factors; a family's extra parameter is paid for by the prior mass it spreads over worse fits (Occam's
  razor without counting parameters).

Pure NumPy/xarray on the fit's Datasets.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

LEVEL = 0.95
EDGE_MASS = 0.05  # posterior mass on an axis's first or last value above which the axis is "at its edge"


def _logsumexp(a: np.ndarray) -> float:
    a = np.asarray(a, float)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return -math.inf
    top = finite.max()
    return float(top + np.log(np.sum(np.exp(finite - top))))


def covariance(samples: np.ndarray) -> np.ndarray:
    """Σ_boot, the measures' covariance over bootstrap resamples (resample, measure) → (measure, measure);
    resamples where a measure is undefined are left out."""
    s = np.asarray(samples, float)
    s = s[np.all(np.isfinite(s), axis=1)]
    if s.shape[0] < 2:
        raise ValueError(f"covariance: {s.shape[0]} finite resample(s); need at least 2")
    return np.cov(s, rowvar=False, ddof=1).reshape(s.shape[1], s.shape[1])


def _seed_moments(model: xr.DataArray, order: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The model's mean μ(θ) and variance s²(θ) over seeds (ddof 1; 0 with one seed), NaN where a seed is NaN,
    as arrays in the dimension ``order``."""
    mu = model.mean("seed", skipna=False)
    var = model.var("seed", ddof=1, skipna=False) if model.sizes["seed"] > 1 else xr.zeros_like(mu)
    return mu.transpose(*order).values, var.transpose(*order).values


def log_likelihood(model: xr.DataArray, data: xr.DataArray, cov: np.ndarray) -> xr.DataArray:
    """log L(θ) at every grid point of one region (see the module doc).

    ``model``: (…grid…, seed, measure) — the model's measures; ``data``: (measure,); ``cov``: Σ_boot
    (measure, measure) in ``model``'s measure order. Returns (…grid…); −inf where a seed diverged.
    """
    n_seeds = model.sizes["seed"]
    order = [d for d in model.dims if d not in ("seed", "measure")] + ["measure"]
    mu_v, var_v = _seed_moments(model, order)
    d = np.asarray(data.sel(measure=model["measure"].values).values, float)
    n_m = d.size
    sigma = np.asarray(cov, float)[None] + np.eye(n_m)[None] * (var_v.reshape(-1, n_m) / n_seeds)[:, :, None]
    r = d[None] - mu_v.reshape(-1, n_m)
    ok = np.all(np.isfinite(r), axis=1) & np.all(np.isfinite(sigma), axis=(1, 2))
    out = np.full(r.shape[0], -math.inf)
    if ok.any():
        sign, logdet = np.linalg.slogdet(2 * math.pi * sigma[ok])
        quad = np.einsum("pi,pi->p", r[ok], np.linalg.solve(sigma[ok], r[ok][:, :, None])[:, :, 0])
        out[ok] = np.where(sign > 0, -0.5 * quad - 0.5 * logdet, -math.inf)
    grid_dims = order[:-1]
    return xr.DataArray(out.reshape(mu_v.shape[:-1]), dims=grid_dims, coords={k: model[k] for k in grid_dims})


def weights(loglik: xr.DataArray) -> xr.DataArray:
    """The posterior p(θ | d) on the grid (uniform prior over its points): exp(log L − log Σ L)."""
    z = _logsumexp(loglik.values)
    if not math.isfinite(z):
        raise ValueError("posterior: no grid point has a likelihood (every point has a diverged seed)")
    return np.exp(loglik - z)


def _quantile(values: np.ndarray, pmf: np.ndarray, q: float) -> float:
    """The smallest grid value whose CDF reaches q (values ascending)."""
    cdf = np.cumsum(pmf)
    return float(values[min(int(np.searchsorted(cdf, q - 1e-12)), values.size - 1)])


def marginals(post: xr.DataArray, level: float = LEVEL) -> dict[str, dict[str, Any]]:
    """Per parameter (grid axis): its marginal pmf over the axis's values, median, central credible interval at
    ``level`` (grid values), MAP value of the joint posterior, and the mass on the axis's two edges."""
    flat = int(np.argmax(post.values))
    where = dict(zip(post.dims, np.unravel_index(flat, post.shape)))
    out = {}
    for dim in post.dims:
        pmf = post.sum([d for d in post.dims if d != dim]).sortby(dim)
        values, p = np.asarray(pmf[dim].values, float), np.asarray(pmf.values, float)
        tail = (1 - level) / 2
        out[str(dim)] = {"values": values, "pmf": p, "median": _quantile(values, p, 0.5),
                         "low": _quantile(values, p, tail), "high": _quantile(values, p, 1 - tail),
                         "map": float(post[dim].values[where[dim]]),
                         "edge_mass": (float(p[0]), float(p[-1])) if values.size > 1 else (0.0, 0.0)}
    return out


def predictive(model: xr.DataArray, post: xr.DataArray, cov: np.ndarray, rng: np.random.Generator,
               n_draws: int = 4000, level: float = LEVEL) -> dict[str, np.ndarray]:
    """Posterior predictive of the measures: draws of θ ~ p(θ | d), then m ~ N(μ(θ), Σ(θ)) (Σ as in the
    likelihood). Returns ``draws`` (n_draws, measure), ``mean`` and ``interval`` (measure, 2)."""
    n_seeds = model.sizes["seed"]
    mu_v, var_v = _seed_moments(model, list(post.dims) + ["measure"])
    mu_v, var_v = mu_v.reshape(-1, model.sizes["measure"]), var_v.reshape(-1, model.sizes["measure"])
    p = np.nan_to_num(post.values.reshape(-1), nan=0.0)
    pick = rng.choice(p.size, size=n_draws, p=p / p.sum())
    n_m = mu_v.shape[1]
    draws = np.empty((n_draws, n_m))
    for point in np.unique(pick):
        rows = np.flatnonzero(pick == point)
        sigma = np.asarray(cov, float) + np.diag(var_v[point] / n_seeds)
        draws[rows] = rng.multivariate_normal(mu_v[point], sigma, size=rows.size, method="cholesky")
    tail = 100 * (1 - level) / 2
    return {"draws": draws, "mean": draws.mean(axis=0),
            "interval": np.stack([np.percentile(draws, tail, axis=0), np.percentile(draws, 100 - tail, axis=0)], 1)}


def log_evidence(loglik: xr.DataArray, family: dict[str, Any] | None = None) -> float:
    """log Z of the grid, or of the sub-grid ``family`` (``{axis: value or list of values}``): the log of the
    mean likelihood over its points (uniform prior). Differences are log Bayes factors."""
    sub = loglik
    for dim, value in (family or {}).items():
        values = value if isinstance(value, (list, tuple, np.ndarray)) else [value]
        sub = sub.sel({dim: list(values)})
    return _logsumexp(sub.values) - math.log(sub.size)


def mahalanobis(data: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> float:
    """(d − μ)ᵀ Σ⁻¹ (d − μ): the distance of two measure vectors in units of Σ (χ² with as many degrees of
    freedom as measures when d ~ N(μ, Σ))."""
    r = np.asarray(data, float) - np.asarray(mean, float)
    return float(r @ np.linalg.solve(np.asarray(cov, float), r))


def _moments(values: xr.DataArray, post: xr.DataArray) -> tuple[float, float]:
    """Posterior mean and variance of one measure's model value: the mixture over θ of its seed distribution,
    E = Σ w μ(θ), Var = Σ w (μ(θ) − E)² + Σ w s²(θ) (s² the variance over seeds); points where the measure is
    undefined are left out and the weights renormalised."""
    mu, var = _seed_moments(values, list(post.dims))
    w = np.where(np.isfinite(mu) & np.isfinite(var), post.values, 0.0)
    if w.sum() <= 0:
        return math.nan, math.nan
    w = w / w.sum()
    mean = float(np.sum(w * np.nan_to_num(mu)))
    return mean, float(np.sum(w * (np.nan_to_num(mu) - mean) ** 2) + np.sum(w * np.nan_to_num(var)))


def passes(data: float, mean: float, var_data: float, var_model: float) -> bool:
    """The held-out criterion: |data − predictive mean| ≤ 1.96 √(var_boot + var_pred)."""
    return bool(abs(data - mean) <= 1.959964 * math.sqrt(var_data + var_model))


def of_fit(model: xr.DataArray, data: xr.DataArray, uncertainty: xr.Dataset, rng: np.random.Generator,
           fitted: tuple[str, ...], level: float = LEVEL) -> xr.Dataset:
    """The posterior of every region of a fit, its predictive and its checks, as a Dataset.

    ``model``: (region, …grid…, seed, measure) with the ``fitted`` measures and the held-out checks along
    ``measure``; ``data``: (region, measure) of the fitted measures; ``uncertainty``: the data's bootstrap
    (:func:`olfacto.experiments.fit.data_uncertainty`: ``data_cov``, ``check_data``, ``check_var``).
    """
    fitted = list(fitted)
    regions = [str(r) for r in model.region.values]
    checks = [str(c) for c in uncertainty.check.values]
    grid_dims = [d for d in model.dims if d not in ("region", "seed", "measure")]
    out = xr.Dataset(coords={"region": regions, "measure": fitted, "check": checks, "bound": ["low", "high"],
                             **{d: model[d].values for d in grid_dims}})
    lls, posts = [], []
    per: dict[str, list] = {k: [] for k in ("evidence", "pred_mean", "pred_interval", "fit_pass", "fit_mean",
                                            "fit_sd", "check_mean", "check_sd", "check_pass", "mahalanobis")}
    marg: dict[str, dict[str, list]] = {d: {k: [] for k in ("pmf", "median", "low", "high", "map", "edge")}
                                        for d in grid_dims}
    for region in regions:
        m_r = model.sel(region=region)
        cov = uncertainty["data_cov"].sel(region=region, measure=fitted, measure_b=fitted).values
        d_r = data.sel(region=region, measure=fitted)
        ll = log_likelihood(m_r.sel(measure=fitted), d_r, cov).transpose(*grid_dims)
        post = weights(ll)
        lls.append(ll.values)
        posts.append(post.values)
        per["evidence"].append(log_evidence(ll))
        for d, v in marginals(post, level).items():
            for key in ("pmf", "median", "low", "high", "map"):
                marg[d][key].append(v[key])
            marg[d]["edge"].append(v["edge_mass"])
        pred = predictive(m_r.sel(measure=fitted), post, cov, rng, level=level)
        per["pred_mean"].append(pred["mean"])
        per["pred_interval"].append(pred["interval"])
        fp, fm, fs = [], [], []
        for k, name in enumerate(fitted):
            mean, var = _moments(m_r.sel(measure=name), post)
            fp.append(passes(float(d_r.sel(measure=name)), mean, float(cov[k, k]), var))
            fm.append(mean)
            fs.append(math.sqrt(var))
        per["fit_pass"].append(fp)
        per["fit_mean"].append(fm)
        per["fit_sd"].append(fs)
        best = {dim: marg[dim]["map"][-1] for dim in grid_dims}
        mu_map = m_r.sel(measure=fitted, **best).mean("seed").values
        per["mahalanobis"].append(mahalanobis(d_r.values, mu_map, cov))
        cm, cs, cp = [], [], []
        for c in checks:
            mean, var = _moments(m_r.sel(measure=c), post)
            d_c = float(uncertainty["check_data"].sel(region=region, check=c))
            v_c = float(uncertainty["check_var"].sel(region=region, check=c))
            cm.append(mean)
            cs.append(math.sqrt(var) if math.isfinite(var) else math.nan)
            cp.append(passes(d_c, mean, v_c, var) if math.isfinite(mean) and math.isfinite(v_c) else False)
        per["check_mean"].append(cm)
        per["check_sd"].append(cs)
        per["check_pass"].append(cp)
    dims = ("region", *grid_dims)
    out["log_likelihood"] = (dims, np.array(lls), {"long_name": "Gaussian synthetic log-likelihood of the fitted "
                                                               "measures (Σ_boot + seed error of the model mean)"})
    out["posterior"] = (dims, np.array(posts), {"long_name": "posterior probability of the grid point (uniform "
                                                             "prior over the grid's points)"})
    for d in grid_dims:
        out[f"posterior_{d}"] = (("region", d), np.array(marg[d]["pmf"]), {"long_name": f"marginal posterior of {d}"})
        out[f"median_{d}"] = ("region", np.array(marg[d]["median"]), {"long_name": f"posterior median of {d}"})
        out[f"map_{d}"] = ("region", np.array(marg[d]["map"]), {"long_name": f"{d} at the joint posterior's mode"})
        out[f"credible_{d}"] = (("region", "bound"), np.stack([marg[d]["low"], marg[d]["high"]], 1),
                                {"long_name": f"central {level:.0%} credible interval of {d} (grid values)"})
        out[f"edge_mass_{d}"] = (("region", "bound"), np.array(marg[d]["edge"]),
                                 {"long_name": f"posterior mass on the smallest and largest grid value of {d}"})
    out["log_evidence"] = ("region", np.array(per["evidence"]),
                           {"long_name": "log mean likelihood over the grid (log evidence, uniform prior)"})
    out["mahalanobis_map"] = ("region", np.array(per["mahalanobis"]),
                              {"long_name": "(d − μ)ᵀ Σ_boot⁻¹ (d − μ) at the posterior mode (χ² with 4 d.o.f. if "
                                            "the model is right)"})
    out["predictive_mean"] = (("region", "measure"), np.array(per["pred_mean"]),
                              {"long_name": "posterior predictive mean"})
    out["predictive_interval"] = (("region", "measure", "bound"), np.array(per["pred_interval"]),
                                  {"long_name": f"posterior predictive {level:.0%} interval (with Σ_boot)"})
    out["posterior_model"] = (("region", "measure"), np.array(per["fit_mean"]),
                              {"long_name": "posterior mean of the model's measure (θ and seeds)"})
    out["posterior_model_sd"] = (("region", "measure"), np.array(per["fit_sd"]),
                                 {"long_name": "posterior s.d. of the model's measure (θ and seeds; no Σ_boot)"})
    out["fitted_pass"] = (("region", "measure"), np.array(per["fit_pass"]),
                          {"long_name": "|data − predictive mean| ≤ 1.96 √(var_boot + var_pred)"})
    out["check_model"] = (("region", "check"), np.array(per["check_mean"]),
                          {"long_name": "posterior predictive mean of the held-out check"})
    out["check_model_sd"] = (("region", "check"), np.array(per["check_sd"]),
                             {"long_name": "posterior predictive s.d. of the model's check (θ and seeds)"})
    out["check_pass"] = (("region", "check"), np.array(per["check_pass"]),
                         {"long_name": "|data − predictive mean| ≤ 1.96 √(var_boot + var_pred)"})
    return out


def families(result: xr.Dataset, off: dict[str, float]) -> dict[str, dict[str, float]]:
    """Per region, the log evidence of the whole grid and of each sub-family where one axis of ``off`` (e.g.
    ``{"gain_spread": 0, "alpha_mix": 1}``, the plain model) is held at each of its values: ``{region: {"all":
    log Z, "gain_spread=0": log Z, …}}`` — differences are log Bayes factors."""
    out = {}
    for region in result.region.values:
        ll = result["log_likelihood"].sel(region=region)
        entry = {"all": log_evidence(ll)}
        for dim in off:
            if dim in ll.dims:
                for value in ll[dim].values:
                    entry[f"{dim}={float(value):g}"] = log_evidence(ll, {dim: value})
        out[str(region)] = entry
    return out


def table(result: xr.Dataset) -> str:
    """Per region: each parameter's posterior median and 95 % credible interval, the log evidence and the
    distance at the mode in units of the data's bootstrap error; then each fitted measure and held-out check,
    data against the posterior predictive, passed (✓) or not (✗) by the criterion of :func:`passes`."""
    if "posterior" not in result:
        return ""
    dims = [d for d in result["posterior"].dims if d != "region"]
    lines = ["posterior (uniform prior over the grid; 95 % credible intervals on grid values):"]
    for region in result.region.values:
        r = result.sel(region=region)
        params = ", ".join(f"{d} {float(r[f'median_{d}']):g} [{float(r[f'credible_{d}'][0]):g}–"
                           f"{float(r[f'credible_{d}'][1]):g}]" for d in dims)
        lines.append(f"{region}: {params}; log Z = {float(r.log_evidence):.1f}, "
                     f"χ² at the mode = {float(r.mahalanobis_map):.1f} (4 measures, Σ_boot)")
        fitted = "  ".join(f"{m} {float(r.data.sel(measure=m)):.3f} vs "
                           f"{float(r.predictive_mean.sel(measure=m)):.3f} "
                           f"[{float(r.predictive_interval.sel(measure=m)[0]):.3f}–"
                           f"{float(r.predictive_interval.sel(measure=m)[1]):.3f}] "
                           f"{'✓' if bool(r.fitted_pass.sel(measure=m)) else '✗'}" for m in r.measure.values)
        lines.append(f"    fitted: {fitted}")
        held = "  ".join(f"{c} {float(r.check_data.sel(check=c)):.3f} vs {float(r.check_model.sel(check=c)):.3f}"
                         f"±{float(r.check_model_sd.sel(check=c)):.3f} {'✓' if bool(r.check_pass.sel(check=c)) else '✗'}"
                         for c in r.check.values)
        lines.append(f"    held out: {held}")
    return "\n".join(lines)


def summary(result: xr.Dataset) -> dict[str, Any]:
    """Per region: each parameter's posterior median, 95 % credible interval and edge mass; the log evidence; χ²
    at the mode; each held-out check's data (with its bootstrap interval), model (posterior mean and 95 % spread)
    and whether it passes."""
    dims = [d for d in result["posterior"].dims if d != "region"]
    out: dict[str, Any] = {}
    for region in result.region.values:
        r = result.sel(region=region)
        out[str(region)] = {
            "parameters": {d: {"median": float(r[f"median_{d}"]),
                               "credible_95": [float(v) for v in r[f"credible_{d}"].values],
                               "edge_mass": [round(float(v), 4) for v in r[f"edge_mass_{d}"].values]} for d in dims},
            "log_evidence": round(float(r.log_evidence), 3),
            "chi2_at_mode": round(float(r.mahalanobis_map), 3),
            "checks": {str(c): {"data": round(float(r.check_data.sel(check=c)), 4),
                                "data_ci": [round(float(v), 4) for v in r.check_ci.sel(check=c).values],
                                "model": round(float(r.check_model.sel(check=c)), 4),
                                "model_ci": [round(float(r.check_model.sel(check=c) - 1.96 * r.check_model_sd.sel(check=c)), 4),
                                             round(float(r.check_model.sel(check=c) + 1.96 * r.check_model_sd.sel(check=c)), 4)],
                                "passes": bool(r.check_pass.sel(check=c))} for c in r.check.values}}
    return out


def figure_summary(ds: xr.Dataset):
    """``experiment_posterior`` for ``summary.json``: :func:`summary` per region."""
    from .common import Summary

    return Summary({"experiment_posterior": summary(ds)}, {}, {})
