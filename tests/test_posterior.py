"""The grid posterior of the fit (olfacto.analysis.posterior) against the linear-Gaussian case it must reproduce.

With μ(θ) = a + bθ over a fine uniform grid, a flat prior and Σ = Σ_boot + diag(s²)/S the same at every θ, the
posterior is Gaussian with precision bᵀΣ⁻¹b and mean bᵀΣ⁻¹(d − a)/bᵀΣ⁻¹b, and the evidence is the closed-form
integral over the prior's width 2L: these pin the likelihood, the normalisation, the credible intervals, the
predictive and the evidence, each to a stated tolerance. Fixed seeds throughout.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from olfacto.analysis import posterior

MEASURES = ["m0", "m1", "m2", "m3"]
A = np.array([0.3, 0.2, 0.5, 0.6])
B = np.array([0.05, 0.02, -0.03, 0.01])
COV = np.array([[4.0, 1.0, 0.5, 0.0], [1.0, 3.0, 0.2, 0.1], [0.5, 0.2, 2.0, 0.3], [0.0, 0.1, 0.3, 1.0]]) * 1e-3
SEED_SD = np.array([0.02, 0.01, 0.03, 0.015])  # the model's spread over its S = 2 seeds, the same at every θ


def _grid(half_width: float = 5.0, step: float = 0.01) -> xr.DataArray:
    theta = np.round(np.arange(-half_width, half_width + step / 2, step), 10)
    mu = A[None] + theta[:, None] * B[None]
    seeds = np.stack([mu - SEED_SD / math.sqrt(2), mu + SEED_SD / math.sqrt(2)], axis=1)  # var over 2 seeds = SD²
    return xr.DataArray(seeds, dims=("theta", "seed", "measure"),
                        coords={"theta": theta, "seed": [0, 1], "measure": MEASURES})


def _sigma() -> np.ndarray:
    return COV + np.diag(SEED_SD**2 / 2)


def _data(theta: float, rng=None) -> xr.DataArray:
    d = A + theta * B
    if rng is not None:
        d = rng.multivariate_normal(d, _sigma())
    return xr.DataArray(d, dims="measure", coords={"measure": MEASURES})


def _analytic(d: np.ndarray) -> tuple[float, float]:
    inv = np.linalg.inv(_sigma())
    precision = B @ inv @ B
    return float(B @ inv @ (d - A) / precision), float(1 / math.sqrt(precision))


def test_the_grid_posterior_is_the_conjugate_gaussian():
    """Posterior mean and s.d. on the grid equal the closed form to 1e-3 of the s.d."""
    model, data = _grid(), _data(0.7, np.random.default_rng(1))
    post = posterior.weights(posterior.log_likelihood(model, data, COV))
    theta = post["theta"].values
    mean = float(np.sum(post.values * theta))
    sd = math.sqrt(float(np.sum(post.values * (theta - mean) ** 2)))
    want_mean, want_sd = _analytic(data.values)
    assert abs(post.values.sum() - 1) < 1e-12
    assert abs(mean - want_mean) < 1e-3 * want_sd and abs(sd - want_sd) < 1e-3 * want_sd, (mean, sd, want_mean, want_sd)
    m = posterior.marginals(post)["theta"]
    assert abs(m["median"] - want_mean) <= 0.01 + 1e-9  # one grid step
    assert abs(m["low"] - (want_mean - 1.959964 * want_sd)) <= 0.011 and \
        abs(m["high"] - (want_mean + 1.959964 * want_sd)) <= 0.011, m


def test_credible_intervals_cover_the_truth_at_the_nominal_rate():
    """400 datasets drawn at θ* = −1.3: the 95 % interval covers θ* in 0.95 ± 0.033 (3 binomial s.d.)."""
    rng = np.random.default_rng(7)
    model = _grid(step=0.02)
    hits = 0
    for _ in range(400):
        m = posterior.marginals(posterior.weights(posterior.log_likelihood(model, _data(-1.3, rng), COV)))["theta"]
        hits += m["low"] <= -1.3 <= m["high"]
    assert abs(hits / 400 - 0.95) <= 0.033, hits


def test_the_evidence_is_the_prior_mean_likelihood_and_pays_for_width():
    """log Z equals the closed-form ∫ N(d; a + bθ, Σ) dθ / 2L (to 1e-4), and doubling the prior's width costs
    log 2 (Occam); a family of one point has log Z = log L there."""
    data = _data(0.4, np.random.default_rng(3))
    d = data.values
    inv = np.linalg.inv(_sigma())
    r = d - A
    precision = B @ inv @ B
    _, logdet = np.linalg.slogdet(2 * math.pi * _sigma())
    integral = -0.5 * (r @ inv @ r - (B @ inv @ r) ** 2 / precision) - 0.5 * logdet + 0.5 * math.log(2 * math.pi / precision)
    for half in (5.0, 10.0):
        ll = posterior.log_likelihood(_grid(half), data, COV)
        want = integral - math.log(2 * half + 0.01)  # the grid's points span 2L plus one step
        assert abs(posterior.log_evidence(ll) - want) < 1e-4, (half, posterior.log_evidence(ll), want)
    narrow, wide = (posterior.log_evidence(posterior.log_likelihood(_grid(h), data, COV)) for h in (5.0, 10.0))
    assert abs((narrow - wide) - math.log(20.01 / 10.01)) < 1e-4
    ll = posterior.log_likelihood(_grid(), data, COV)
    assert posterior.log_evidence(ll, {"theta": 0.4}) == pytest.approx(float(ll.sel(theta=0.4)), abs=1e-12)


def test_the_predictive_of_a_known_point_is_its_gaussian():
    """A grid of one point: predictive mean μ and 95 % interval μ ± 1.96 √Σ_mm, within 4000 draws' error."""
    model = _grid().sel(theta=[0.0])
    post = posterior.weights(posterior.log_likelihood(model, _data(0.0), COV))
    pred = posterior.predictive(model, post, COV, np.random.default_rng(0))
    sd = np.sqrt(np.diag(_sigma()))
    assert np.all(np.abs(pred["mean"] - A) <= 4 * sd / math.sqrt(4000)), (pred["mean"], A)
    np.testing.assert_allclose(pred["interval"][:, 1] - pred["interval"][:, 0], 2 * 1.959964 * sd, rtol=0.06)


def test_a_diverged_seed_has_no_weight_and_no_point_is_an_error():
    model = _grid(step=0.5).copy()
    model[3, 1, 0] = np.nan
    ll = posterior.log_likelihood(model, _data(0.0), COV)
    assert ll.values[3] == -math.inf and np.isfinite(np.delete(ll.values, 3)).all()
    assert posterior.weights(ll).values[3] == 0.0
    with pytest.raises(ValueError, match="no grid point has a likelihood"):
        posterior.weights(posterior.log_likelihood(model * np.nan, _data(0.0), COV))


def test_bootstrap_covariance_leaves_undefined_resamples_out():
    rng = np.random.default_rng(0)
    samples = rng.multivariate_normal(np.zeros(4), COV, size=20000)
    with_nan = np.vstack([samples, np.full((5, 4), np.nan)])
    np.testing.assert_allclose(posterior.covariance(with_nan), COV, atol=4e-4)  # ~ 3 s.e. of 20,000 draws
    with pytest.raises(ValueError, match="need at least 2"):
        posterior.covariance(np.full((3, 4), np.nan))
