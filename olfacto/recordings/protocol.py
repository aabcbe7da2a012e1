"""The experiment's measures (Grimaud et al. 2024), one code path for recordings and model.

Every function takes arrays laid out as the recordings are:

- ``response``: (..., neuron, odor, side, trial) — odor-evoked responses, side 0 the
  ipsilateral nostril, side 1 the contralateral one;
- ``blank``: (..., neuron, side, trial) — the responses to the blank (no odor).

Leading ``...`` dimensions are batch dimensions (seeds, grid points of a simulated sweep)
and are kept in every result. The functions are pure NumPy/SciPy on float64.

Measures (with n_o odors, T trials, ``ȓ`` the trial mean):

- the article's per-neuron test: m_{i,o,s} = ȓ_{i,o,s} − b̄_{i,s} (trial means minus the
  blank's mean, per side); least-squares regression of contra on ipsi across the odors,
  m_{i,·,contra} = a_i + β_i m_{i,·,ipsi}; p_i the two-sided t-test of β_i = 0 with
  n_o − 2 degrees of freedom (as ``scipy.stats.linregress``); a neuron is *bilaterally
  correlated* when p_i ≤ α (α = 0.05). Its false-positive rate is α for independent sides
  with Gaussian trial noise. ``fraction_bilateral`` = #(p_i ≤ α) / #neurons (a neuron whose
  ipsi or contra responses do not vary over odors has p = NaN and counts as not correlated).
  The test is two-sided, so a neuron whose contra responses *anti*-correlate with its ipsi ones
  counts too — as in the article's own code (``fitlm``'s coefficient p-value ≤ 0.05, no sign
  condition; VNMurthyLab/IpsiContra, code_for_figure_4_and_s4.m), which decides the default. Beside
  it, ``fraction_bilateral_positive``: the one-sided test of β_i > 0 at the same α (p_i/2 ≤ α with
  β_i > 0), the count of neurons whose two sides agree — its false-positive rate is α too;
- per-neuron tuning correlation r_i = corr_odors(m_{i,·,ipsi}, m_{i,·,contra}) (the same r as
  the regression's; NaN for a neuron silent on a side); its mean and median over neurons
  with a defined r;
- odor decoding by the nearest class mean (Euclidean distance), on *pseudo-population
  trials*: the neurons of a region were recorded in different sessions, so trial k of every
  neuron is put together as one population response (as the article's decoders do). Each
  trial k is held out in turn (leave one trial out): the class means (templates) are the
  means over the other T − 1 trials on the training side, and the odor of every trial-k
  response on the test side is decoded. Within side: train and test on the same side;
  transfer: train on one side, test on the other (the held-out trial index is left out of
  the training side too, so both use T − 1 training trials); each is the mean of its two
  side pairs. Chance 1/n_o;
- side (laterality) decoding: the same nearest-class-mean decoder with two classes, ipsi
  and contra, whose templates are the means over all odors and the T − 1 training trials;
  every trial-k response of both sides is classified. Chance 1/2.

Decoding uses the responses as given (no blank subtraction), as the article's decoders
used the odor-period spike counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import special

ALPHA = 0.05
IPSI, CONTRA = 0, 1


@dataclass(frozen=True)
class Measure:
    """A scalar measure of the protocol: its long name and its chance level for n odors."""

    long_name: str
    chance: Callable[[int], float]


MEASURES: dict[str, Measure] = {
    "fraction_bilateral": Measure("fraction of bilaterally correlated neurons (slope p ≤ 0.05)", lambda n: ALPHA),
    "fraction_bilateral_positive": Measure("fraction with a positive bilateral slope (one-sided p ≤ 0.05)",
                                           lambda n: ALPHA),
    "tuning_correlation_mean": Measure("mean per-neuron ipsi–contra tuning correlation", lambda n: 0.0),
    "tuning_correlation_median": Measure("median per-neuron ipsi–contra tuning correlation", lambda n: 0.0),
    "decoding_transfer": Measure("odor decoding across sides (fraction correct)", lambda n: 1.0 / n),
    "decoding_within": Measure("odor decoding within a side, leave one trial out (fraction correct)",
                               lambda n: 1.0 / n),
    "laterality_decoding": Measure("stimulated-side decoding, leave one trial out (fraction correct)",
                                   lambda n: 0.5),
}


def _check(response: np.ndarray, blank: np.ndarray | None = None) -> np.ndarray:
    response = np.asarray(response, np.float64)
    if response.ndim < 4 or response.shape[-2] != 2:
        raise ValueError(f"response has shape {response.shape}; expected (..., neuron, odor, side=2, trial)")
    if blank is not None:
        blank = np.asarray(blank)
        want = response.shape[:-3] + response.shape[-2:]
        if blank.shape != want:
            raise ValueError(f"blank has shape {blank.shape}; expected {want} (..., neuron, side, trial)")
    return response


def trial_means(response: np.ndarray, blank: np.ndarray) -> np.ndarray:
    """m = ȓ − b̄: trial means minus the blank's trial mean, per side; (..., neuron, odor, side)."""
    response = _check(response, blank)
    return response.mean(axis=-1) - np.asarray(blank, np.float64).mean(axis=-1)[..., None, :]


@dataclass(frozen=True)
class Regression:
    """Per-neuron least-squares fit y = intercept + slope·x across odors, with r and the slope's p-value."""

    slope: np.ndarray
    intercept: np.ndarray
    r: np.ndarray
    p_value: np.ndarray


def regression(x: np.ndarray, y: np.ndarray) -> Regression:
    """Least squares of y on x along the last axis, as ``scipy.stats.linregress`` element-wise.

    β = S_xy / S_xx, a = ȳ − β x̄, r = S_xy / √(S_xx S_yy),
    t = r √((n − 2) / (1 − r²)), p = 2 P(T_{n−2} > |t|) = I_{(n−2)/(n−2+t²)}((n − 2)/2, 1/2).
    Where x or y does not vary (S_xx = 0 or S_yy = 0) slope, r and p are NaN — no test is
    possible (linregress raises or returns r = 0 there).
    """
    x, y = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
    n = x.shape[-1]
    if n < 3:
        raise ValueError(f"regression needs at least 3 points along the last axis, got {n}")
    dx = x - x.mean(axis=-1, keepdims=True)
    dy = y - y.mean(axis=-1, keepdims=True)
    sxx, syy, sxy = (dx * dx).sum(-1), (dy * dy).sum(-1), (dx * dy).sum(-1)
    # relative thresholds: a constant row leaves rounding residue of order eps·|x|
    scale_x = np.maximum((x * x).sum(-1), np.finfo(float).tiny)
    scale_y = np.maximum((y * y).sum(-1), np.finfo(float).tiny)
    ok = (sxx > 1e-24 * scale_x) & (syy > 1e-24 * scale_y)
    sxx_, syy_ = np.where(ok, sxx, 1.0), np.where(ok, syy, 1.0)
    slope = np.where(ok, sxy / sxx_, np.nan)
    intercept = y.mean(-1) - slope * x.mean(-1)
    r = np.where(ok, np.clip(sxy / np.sqrt(sxx_ * syy_), -1.0, 1.0), np.nan)
    df = n - 2
    # p from r without forming t (exact at |r| = 1): t²/(df + t²) = r², so df/(df + t²) = 1 − r²
    p = np.where(ok, special.betainc(0.5 * df, 0.5, np.where(ok, 1.0 - r * r, 1.0)), np.nan)
    return Regression(slope=slope, intercept=intercept, r=r, p_value=p)


def bilateral_regression(response: np.ndarray, blank: np.ndarray) -> Regression:
    """The article's per-neuron test: contra trial means on ipsi trial means (blank subtracted), across odors."""
    m = trial_means(response, blank)
    return regression(m[..., IPSI], m[..., CONTRA])


def fraction_bilateral(p_value: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """#(p ≤ α) / #neurons over the last axis; NaN p-values count as not correlated."""
    p_value = np.asarray(p_value)
    return np.sum(np.nan_to_num(p_value, nan=np.inf) <= alpha, axis=-1) / p_value.shape[-1]


def positive(slope: np.ndarray, p_value: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Per neuron: the one-sided test of β > 0 at ``alpha`` — β > 0 and p/2 ≤ α (p the two-sided p-value)."""
    return (np.asarray(slope) > 0) & (np.nan_to_num(np.asarray(p_value), nan=np.inf) / 2 <= alpha)


def fraction_bilateral_positive(slope: np.ndarray, p_value: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """#(β > 0 and one-sided p ≤ α) / #neurons over the last axis (NaN: not correlated)."""
    return np.mean(positive(slope, p_value, alpha), axis=-1)


def tuning_correlation(response: np.ndarray, blank: np.ndarray) -> np.ndarray:
    """Per-neuron Pearson correlation across odors of ipsi and contra trial means; (..., neuron), NaN if silent."""
    return bilateral_regression(response, blank).r


def _nan_stat(values: np.ndarray, stat: Callable) -> np.ndarray:
    """``stat`` over the last axis ignoring NaN; NaN (without a warning) where all are NaN."""
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    any_ = finite.any(axis=-1)
    filled = np.where(any_[..., None], values, 0.0)
    return np.where(any_, stat(filled, axis=-1), np.nan)


def correlation_mean(r: np.ndarray) -> np.ndarray:
    """Mean over neurons (last axis) of the defined correlations."""
    return _nan_stat(r, np.nanmean)


def correlation_median(r: np.ndarray) -> np.ndarray:
    """Median over neurons (last axis) of the defined correlations."""
    return _nan_stat(r, np.nanmedian)


def _loto_templates(train: np.ndarray) -> np.ndarray:
    """Class means over all trials but k, for every held-out k: (..., neuron, class, trial) → same shape."""
    n_trials = train.shape[-1]
    if n_trials < 2:
        raise ValueError("leave-one-trial-out decoding needs at least 2 trials")
    return (train.sum(axis=-1, keepdims=True) - train) / (n_trials - 1)


def _nearest(test: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """Index of the nearest template (Euclidean over neurons) for every test item, per trial.

    ``test``: (..., neuron, item, trial); ``templates``: (..., neuron, class, trial).
    Returns (..., item, trial). ‖x − c‖² = ‖x‖² − 2 x·c + ‖c‖²; ‖x‖² does not change the argmin.
    Ties go to the lowest class index.
    """
    # x·c per trial as one batched matmul (..., trial, item, neuron) @ (..., trial, neuron, class): 7–9× faster
    # than the einsum it replaced, which NumPy runs as a plain loop (26 s of the model fit's 161)
    cross = np.swapaxes(np.moveaxis(test, -1, -3), -1, -2) @ np.moveaxis(templates, -1, -3)  # (..., k, i, c)
    cross = np.moveaxis(cross, -3, -2)  # (..., item, trial, class)
    norms = np.einsum("...nck,...nck->...kc", templates, templates)
    return np.argmin(norms[..., None, :, :] - 2.0 * cross, axis=-1)


def odor_decoding(response: np.ndarray, train_side: int, test_side: int) -> np.ndarray:
    """Leave-one-trial-out nearest-class-mean odor decoding on pseudo-population trials.

    Templates from the ``train_side`` trials other than k; the odor of each ``test_side``
    trial-k response is the nearest template's. Returns the fraction correct, (...).
    """
    response = _check(response)
    templates = _loto_templates(response[..., train_side, :])
    guess = _nearest(response[..., test_side, :], templates)  # (..., odor, trial)
    truth = np.arange(response.shape[-3])[:, None]
    return np.mean(guess == truth, axis=(-2, -1))


def decoding_matrix(response: np.ndarray) -> np.ndarray:
    """Odor decoding for every (train side, test side) pair: (..., 2, 2)."""
    return np.stack([np.stack([odor_decoding(response, a, b) for b in (IPSI, CONTRA)], axis=-1)
                     for a in (IPSI, CONTRA)], axis=-2)


def decoding_transfer(response: np.ndarray) -> np.ndarray:
    """Odor decoding across sides: mean of (train ipsi, test contra) and (train contra, test ipsi)."""
    return 0.5 * (odor_decoding(response, IPSI, CONTRA) + odor_decoding(response, CONTRA, IPSI))


def decoding_within(response: np.ndarray) -> np.ndarray:
    """Odor decoding within a side (leave one trial out), mean over the two sides."""
    return 0.5 * (odor_decoding(response, IPSI, IPSI) + odor_decoding(response, CONTRA, CONTRA))


def laterality_decoding(response: np.ndarray) -> np.ndarray:
    """Leave-one-trial-out nearest-class-mean decoding of the stimulated side (two classes, all odors)."""
    response = _check(response)
    shape = response.shape
    # (..., neuron, side, odor, trial): a side's class mean pools its odors
    by_side = np.swapaxes(response, -3, -2)
    n_odors, n_trials = shape[-3], shape[-1]
    templates = _loto_templates(by_side.sum(axis=-2)) / n_odors  # (..., neuron, side, trial)
    items = by_side.reshape(shape[:-3] + (2 * n_odors, n_trials))  # item = side·n_odors + odor
    guess = _nearest(items, templates)  # (..., item, trial)
    truth = np.repeat(np.arange(2), n_odors)[:, None]
    return np.mean(guess == truth, axis=(-2, -1))


def summary(response: np.ndarray, blank: np.ndarray, alpha: float = ALPHA) -> dict[str, np.ndarray | float]:
    """All scalar measures of :data:`MEASURES` (floats, or arrays over the batch dimensions)."""
    response = _check(response, blank)
    # undefined inputs give undefined measures: a NaN or inf anywhere in a population (per batch element)
    # makes every measure of it NaN — the decoders would otherwise still report finite accuracies
    defined = np.isfinite(response).all(axis=(-4, -3, -2, -1)) & np.isfinite(np.asarray(blank, np.float64)).all(
        axis=(-3, -2, -1))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # only where undefined anyway
        fit = bilateral_regression(response, blank)
        values = {
            "fraction_bilateral": fraction_bilateral(fit.p_value, alpha),
            "fraction_bilateral_positive": fraction_bilateral_positive(fit.slope, fit.p_value, alpha),
            "tuning_correlation_mean": correlation_mean(fit.r),
            "tuning_correlation_median": correlation_median(fit.r),
            "decoding_transfer": decoding_transfer(response),
            "decoding_within": decoding_within(response),
            "laterality_decoding": laterality_decoding(response),
        }
    values = {k: np.where(defined, v, np.nan) for k, v in values.items()}
    return {k: (float(v) if np.ndim(v) == 0 else np.asarray(v)) for k, v in values.items()}


def null_fraction_bilateral(response: np.ndarray, blank: np.ndarray, rng: np.random.Generator,
                            n_shuffles: int = 1000, alpha: float = ALPHA, chunk: int = 50,
                            done=None) -> np.ndarray:
    """Fractions of bilaterally correlated neurons after shuffling the odor labels of the contra side.

    Each neuron's contralateral trial means are permuted over odors independently (the article's
    bootstrap, Fig. 4C: permuting one side is equivalent to permuting both), which keeps each
    side's response distribution and removes any ipsi–contra pairing. Returns (n_shuffles, ...).
    ``done(n)``, if given, is called after every ``chunk`` of shuffles (a progress bar's ``update``).
    """
    m = trial_means(response, blank)
    x, y = m[..., IPSI], m[..., CONTRA]
    out = []
    for start in range(0, n_shuffles, chunk):
        n = min(chunk, n_shuffles - start)
        shuffled = rng.permuted(np.broadcast_to(y, (n,) + y.shape), axis=-1)
        out.append(fraction_bilateral(regression(x, shuffled).p_value, alpha))
        if done is not None:
            done(n)
    return np.concatenate(out, axis=0)
