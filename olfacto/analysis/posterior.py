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


def log_likelihood(model: xr.DataArray, data: xr.DataArray, cov: np.ndarray) -> xr.DataArray:
    """log L(θ) at every grid point of one region (see the module doc).

    ``model``: (…grid…, seed, measure) — the model's measures; ``data``: (measure,); ``cov``: Σ_boot
    (measure, measure) in ``model``'s measure order. Returns (…grid…); −inf where a seed diverged.
    """
    n_seeds = model.sizes["seed"]
    mu = model.mean("seed", skipna=False)
    var = model.var("seed", ddof=1, skipna=False) if n_seeds > 1 else xr.zeros_like(mu)
    order = [d for d in mu.dims if d != "measure"] + ["measure"]
    mu_v = mu.transpose(*order).values
    var_v = var.transpose(*order).values
    d = np.asarray(data.sel(measure=mu["measure"].values).values, float)
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
    return xr.DataArray(out.reshape(mu_v.shape[:-1]), dims=grid_dims, coords={k: mu[k] for k in grid_dims})


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
    mu = model.mean("seed", skipna=False)
    var = model.var("seed", ddof=1, skipna=False) if n_seeds > 1 else xr.zeros_like(mu)
    order = list(post.dims) + ["measure"]
    mu_v = mu.transpose(*order).values.reshape(-1, mu.sizes["measure"])
    var_v = var.transpose(*order).values.reshape(mu_v.shape)
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
