"""The held-out checks of the fit: measures of the recordings the fit never sees (docs/experiment.md, "The
posterior, and the checks it is held to"), computed by one code path for data and model.

Arrays as in :mod:`.protocol`: ``response`` (..., neuron, odor, side, trial), ``blank`` (..., neuron, side,
trial); leading dimensions are batch dimensions. Per neuron i (O odors, T trials, m = trial mean − blank mean):

- **responsive** on side s: a one-way ANOVA of the trial responses r_{i,o,s,t} across the O odors,
  F = [T Σ_o (r̄_o − r̄)² / (O − 1)] / [Σ_o Σ_t (r_{o,t} − r̄_o)² / (O (T − 1))], p = P(F_{O−1, O(T−1)} > F) ≤ α;
  a neuron is responsive when it is on both sides;
- **signal-to-noise** SNR_i = s.d._o(r̄_{i,o,ipsi}) / mean_o s.d._t(r_{i,o,ipsi,t}) (ddof 1 both);
- **response size** s_i = mean over odors and sides of |m_{i,o,s}|.

Population measures (:data:`CHECKS`): within-side decoding (:func:`.protocol.decoding_within`), the fraction
bilateral (:func:`.protocol.fraction_bilateral`'s test) among responsive neurons, the s.d. over neurons of the
tuning correlation r, the median SNR, and the coefficient of variation of s over neurons (s.d./mean).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from . import protocol

CHECKS = {
    "decoding_within": "odor decoding within a side (leave one trial out)",
    "fraction_bilateral_responsive": "fraction bilateral among neurons responsive on both sides (ANOVA p ≤ 0.05)",
    "tuning_correlation_sd": "s.d. over neurons of the ipsi–contra tuning correlation r",
    "snr_median": "median over neurons of the ipsilateral signal-to-noise ratio",
    "response_size_cv": "coefficient of variation over neurons of the response size mean |m|",
}


def anova_p(response: np.ndarray) -> np.ndarray:
    """Per neuron and side, the one-way ANOVA p-value across odors: (..., neuron, odor, side, trial) →
    (..., neuron, side); NaN where the trials do not vary within odors."""
    r = np.asarray(response, np.float64)
    n_odors, n_trials = r.shape[-3], r.shape[-1]
    means = r.mean(axis=-1)  # (..., neuron, odor, side)
    between = n_trials * ((means - means.mean(axis=-2, keepdims=True)) ** 2).sum(axis=-2) / (n_odors - 1)
    within = ((r - means[..., None]) ** 2).sum(axis=(-3, -1)) / (n_odors * (n_trials - 1))
    ok = within > 0
    f = np.where(ok, between / np.where(ok, within, 1.0), np.nan)
    return np.where(ok, special.fdtrc(n_odors - 1, n_odors * (n_trials - 1), f), np.nan)


def responsive(response: np.ndarray, alpha: float = protocol.ALPHA) -> np.ndarray:
    """Per neuron: responsive across odors (ANOVA p ≤ α) on both sides."""
    p = np.nan_to_num(anova_p(response), nan=np.inf)
    return (p <= alpha).all(axis=-1)


def snr(response: np.ndarray) -> np.ndarray:
    """Per neuron: s.d. over odors of the ipsilateral trial means / mean over odors of their trial s.d.
    (NaN where the trials do not vary)."""
    ipsi = np.asarray(response, np.float64)[..., protocol.IPSI, :]  # (..., neuron, odor, trial)
    noise = ipsi.std(axis=-1, ddof=1).mean(axis=-1)
    signal = ipsi.mean(axis=-1).std(axis=-1, ddof=1)
    return np.where(noise > 0, signal / np.where(noise > 0, noise, 1.0), np.nan)


def response_size(response: np.ndarray, blank: np.ndarray) -> np.ndarray:
    """Per neuron: mean over odors and sides of |trial mean − blank mean|."""
    return np.abs(protocol.trial_means(response, blank)).mean(axis=(-2, -1))


def summary(response: np.ndarray, blank: np.ndarray, alpha: float = protocol.ALPHA,
            decoding_within: np.ndarray | float | None = None) -> dict[str, np.ndarray | float]:
    """Every measure of :data:`CHECKS` (floats, or arrays over the batch dimensions); NaN for a population
    with a NaN or inf in its responses or blank, as :func:`.protocol.summary`. ``decoding_within``: that
    measure as :func:`.protocol.summary` already returned it for the same populations (the decoder is most of
    the cost), else computed here."""
    response = np.asarray(response, np.float64)
    blank = np.asarray(blank, np.float64)
    defined = np.isfinite(response).all(axis=(-4, -3, -2, -1)) & np.isfinite(blank).all(axis=(-3, -2, -1))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        fit = protocol.bilateral_regression(response, blank)
        bilateral = np.nan_to_num(fit.p_value, nan=np.inf) <= alpha
        resp = responsive(response, alpha)
        n_resp = resp.sum(axis=-1)
        size = response_size(response, blank)
        values = {
            "decoding_within": (protocol.decoding_within(response) if decoding_within is None
                                else np.asarray(decoding_within)),
            "fraction_bilateral_responsive": np.where(n_resp > 0, (bilateral & resp).sum(axis=-1)
                                                      / np.maximum(n_resp, 1), np.nan),
            "tuning_correlation_sd": protocol._nan_stat(fit.r, lambda a, axis: np.nanstd(a, axis=axis, ddof=1)),
            "snr_median": protocol._nan_stat(snr(response), np.nanmedian),
            "response_size_cv": size.std(axis=-1, ddof=1) / size.mean(axis=-1),
        }
    values = {k: np.where(defined, v, np.nan) for k, v in values.items()}
    return {k: (float(v) if np.ndim(v) == 0 else np.asarray(v)) for k, v in values.items()}


def resampled(response: np.ndarray, blank: np.ndarray, counts: np.ndarray,
              alpha: float = protocol.ALPHA) -> dict[str, np.ndarray]:
    """The per-neuron checks for bootstrap resamples W (B, N) (:func:`olfacto.recordings.bootstrap.draw_counts`):
    name → (B,), each neuron counted W_i times — the fraction bilateral among responsive Σ W b r / Σ W r, the
    weighted s.d. of r and CV of the response size (ddof 1 over the drawn multiset), the weighted median SNR.
    Within-side decoding runs on pseudo-populations (:func:`olfacto.recordings.bootstrap.measures`), not here."""
    from .bootstrap import weighted_median

    response = np.asarray(response, np.float64)
    blank = np.asarray(blank, np.float64)
    w = np.asarray(counts, np.float64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        fit = protocol.bilateral_regression(response, blank)
        bilateral = (np.nan_to_num(fit.p_value, nan=np.inf) <= alpha).astype(np.float64)
        resp = responsive(response, alpha).astype(np.float64)
        n_resp = w @ resp
        size = response_size(response, blank)

        def weighted_sd(values):
            ok = np.isfinite(values)
            v = np.where(ok, values, 0.0)
            n = w @ ok
            mean = (w @ v) / n
            ss = w @ (v * v) - n * mean**2
            return np.where(n > 1, np.sqrt(np.maximum(ss, 0.0) / (n - 1)), np.nan), mean

        sd_r, _ = weighted_sd(fit.r)
        sd_size, mean_size = weighted_sd(size)
        return {"fraction_bilateral_responsive": np.where(n_resp > 0, (w @ (bilateral * resp)) / n_resp, np.nan),
                "tuning_correlation_sd": sd_r, "snr_median": weighted_median(snr(response), counts),
                "response_size_cv": sd_size / mean_size}
