"""The held-out checks of the fit (olfacto.recordings.checks): each against an independent computation or the value
its synthetic population was built with. Fixed seeds; tolerances stated per test."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from olfacto.recordings import checks, protocol


def _population(rng, n=400, n_odors=15, n_trials=7, signal=1.0, noise=1.0, gain_sd=0.0, shared=1.0):
    """Neurons with odor tuning u (the same on both sides when ``shared`` = 1), a per-neuron gain, trial noise."""
    u = rng.normal(size=(n, n_odors))
    v = shared * u + math.sqrt(1 - shared**2) * rng.normal(size=(n, n_odors))
    g = np.exp(gain_sd * rng.normal(size=(n, 1)))
    means = np.stack([u, v], axis=-1) * signal * g[..., None]  # (n, odor, side)
    response = 5.0 + means[..., None] + noise * rng.normal(size=(n, n_odors, 2, n_trials))
    blank = 5.0 + noise * rng.normal(size=(n, 2, n_trials))
    return response, blank


def test_anova_equals_scipy_f_oneway():
    rng = np.random.default_rng(0)
    response, _ = _population(rng, n=20, signal=0.3)
    p = checks.anova_p(response)
    for i in range(20):
        for s in range(2):
            want = stats.f_oneway(*response[i, :, s, :]).pvalue
            assert abs(p[i, s] - want) < 1e-12, (i, s, p[i, s], want)


def test_pure_noise_is_responsive_at_the_rate_alpha_squared():
    """No tuning: each side's ANOVA rejects at α, independently, so both at α² = 0.0025 (± 3 binomial s.d.)."""
    rng = np.random.default_rng(1)
    response, _ = _population(rng, n=20000, signal=0.0)
    rate = checks.responsive(response).mean()
    assert abs(rate - 0.0025) < 3 * math.sqrt(0.0025 * 0.9975 / 20000), rate


def test_snr_is_the_ratio_of_signal_and_noise_sd():
    """Odor means of s.d. 2 and trial noise of s.d. 1: the median SNR ≈ 2 (within 5 %: 15 odors, 7 trials; the
    ratio of two s.d. estimates is biased by a few per cent, less than this)."""
    rng = np.random.default_rng(2)
    response, blank = _population(rng, n=4000, signal=2.0, noise=1.0)
    assert abs(checks.summary(response, blank)["snr_median"] / 2.0 - 1) < 0.05


def test_response_size_cv_follows_the_gain_spread():
    """Noise-free neurons with lognormal gains g (σ = 0.8): s_i ∝ g_i, so CV → √(exp(σ²) − 1) = 0.947 (within 0.05
    for 20,000 neurons; the per-neuron mean |m| over 30 values adds a few per cent of spread)."""
    rng = np.random.default_rng(3)
    response, blank = _population(rng, n=20000, noise=0.0, gain_sd=0.8)
    want = math.sqrt(math.exp(0.8**2) - 1)
    assert abs(checks.summary(response, blank)["response_size_cv"] - want) < 0.05


def test_bilateral_among_responsive_counts_only_responsive_neurons():
    """Half the neurons tuned alike on both sides, half pure noise: the responsive are (almost all) the tuned,
    which are all bilateral — the fraction among responsive ≈ 1, among all ≈ 0.5 + 0.5·α."""
    rng = np.random.default_rng(4)
    tuned = _population(rng, n=1000, signal=2.0)
    silent = _population(rng, n=1000, signal=0.0)
    response = np.concatenate([tuned[0], silent[0]])
    blank = np.concatenate([tuned[1], silent[1]])
    values = checks.summary(response, blank)
    assert values["fraction_bilateral_responsive"] > 0.99
    assert abs(protocol.summary(response, blank)["fraction_bilateral"] - 0.525) < 0.03


def test_undefined_populations_and_batches():
    rng = np.random.default_rng(5)
    response, blank = _population(rng, n=50)
    batch_r, batch_b = np.stack([response, response]), np.stack([blank, blank])
    batch_r[1, 3, 0, 0, 0] = np.nan
    values = checks.summary(batch_r, batch_b)
    one = checks.summary(response, blank)
    for name in checks.CHECKS:
        assert values[name][0] == one[name] and np.isnan(values[name][1]), name


def test_resampled_checks_of_the_identity_draw_are_the_summary():
    """Every neuron drawn once: the weighted checks equal :func:`checks.summary` (to 1e-12); a neuron drawn twice
    equals the population with that neuron duplicated."""
    rng = np.random.default_rng(6)
    response, blank = _population(rng, n=300, signal=0.7, gain_sd=0.5)
    once = checks.resampled(response, blank, np.ones((1, 300), np.int64))
    twice_counts = np.ones((1, 300), np.int64)
    twice_counts[0, :40] = 2
    twice = checks.resampled(response, blank, twice_counts)
    dup = np.concatenate([response, response[:40]]), np.concatenate([blank, blank[:40]])
    for name, value in once.items():
        assert abs(value[0] - checks.summary(response, blank)[name]) < 1e-12, name
        assert abs(twice[name][0] - checks.summary(*dup)[name]) < 1e-12, name
