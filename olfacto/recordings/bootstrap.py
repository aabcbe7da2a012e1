"""The data's uncertainty: a hierarchical bootstrap of the experiment's measures, per region.

Scheme (one region, mice m = 1 … M, mouse m with n_m recorded neurons, N = Σ n_m), per resample:

1. **mice**: draw M mice with replacement, each with probability 1/M (mouse m drawn c_m times);
2. **neurons**: for every drawn mouse, draw n_m of *its* neurons with replacement — W_{i} ~
   Multinomial(c_m n_m, 1/n_m) over the neurons i of mouse m; the resample has N* = Σ_m c_m n_m
   neurons, neuron i W_i times;
3. **trials**: the first copy of a neuron keeps its trials as recorded; each further copy takes
   its T trials in a uniformly random order (a permutation, the same for all its odors and
   sides and its blank), so that it joins the pseudo-population as a neuron of the same tuning
   and the same trial values whose trial k is another of its recorded trials.

The resample's measures are :mod:`.protocol`'s on the drawn population. The per-neuron tests
(p, slope, r) do not depend on the trials' order, so they are computed once: a fraction is
Σ_i W_i f_i / Σ_i W_i, the mean r is Σ W_i r_i / Σ W_i over defined r, the median r that of the
multiset. The decoders run on the drawn pseudo-population (trial k of every copy put together):
for every trial k, G = Σ_l f_l g_lᵀ over the copies l, of every response and template column,
is one batched matrix product, and the nearest class is argmin_c (G_cc − 2 G_xc). With the
identity draw (every W_i = 1) every value is :func:`.protocol.summary`'s.

Why trials are re-ordered and not resampled with replacement. The decoders use *pseudo-population
trials*: the neurons of a session were recorded at once, so trial k carries their shared noise
(permuting every neuron's trials raises the recordings' APC cross-side decoding from 0.657 to
≈ 0.73), so a drawn neuron keeps its trial structure. But an exact duplicate adds no information
to a decoder (its noise is its original's): identical copies lower the resamples' decoding well
below the measure (AON across sides: bootstrap mean 0.56 against 0.748); re-ordering a copy's
trials is what makes it a separate pseudo-population member, as the article's pseudo-populations
are built (bootstrap mean 0.67). It brings new trial noise but no new tuning, so the resampled
decoding still lies 0.04–0.07 below the measure on synthetic data, and the decoders' intervals are
not calibrated (coverage 0.58–0.93 for a nominal 0.95: ``tools/bootstrap_coverage.py``).
Resampling trials *with replacement* (per odor and side, and the blank) biases every measure
instead: the held-out trial of the leave-one-trial-out decoders has copies among its training
trials (AON within-side decoding 0.85 → 0.99), and trial means get a second dose of trial noise,
σ²/T on top of the recorded σ²/T (AON's fraction bilateral 0.351 → 0.30, mean r 0.34 → 0.27);
the percentile interval would then miss the measure. Each neuron's trial
noise is already in its per-neuron test and its decoder contribution, and resampling neurons
carries it. (Resampling both mice and neurons counts the within-mouse spread about twice —
Davison & Hinkley 1997, §3.8 — conservative where neurons dominate the variance; with few mice
the mouse level is narrow: docs/experiment.md gives the coverage measured on synthetic data.)

A **percentile interval** at level L (0.95 by default) is [q_{(1−L)/2}, q_{(1+L)/2}] of the
resamples' values (``numpy.nanpercentile``, linear interpolation): the central 95 % of the
bootstrap distribution, no bias correction — it is not centred on the measure where the measure
is a nonlinear function of the population (the decoders). A measure undefined in a resample (NaN:
the mean r when every drawn neuron is silent on a side) is left out of the percentiles; a measure
NaN in every resample has a NaN interval. A region with **one mouse** has no mouse level: its
resamples are its neurons' alone, and its interval cannot include the spread between mice (its
``n_mice`` = 1 says so). A Dataset without a ``mouse`` coordinate (a model under the protocol) is
one mouse: neurons only.

Pure NumPy; the generator is the caller's (``olfacto experiment`` seeds it from ``--seed``, a
stream apart from the shuffle null's). Cost: 1,000 resamples of the three recorded regions (1,821
neurons) ≈ 18 s on one core (APC, the largest, half of it; OpenBLAS kept to one thread meanwhile:
:func:`one_blas_thread`), ≈ 350 MB at most.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import warnings
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import protocol

LEVEL = 0.95
STREAM = 0xB0075  # the bootstrap's generator is default_rng([seed, STREAM]): apart from the shuffle null's
CHUNK = 25  # resamples at once: ≈ 1.5 × CHUNK × T × L × (4·odors + 2) doubles (APC, L ≤ 1,500: ≈ 200 MB)
SCHEME = ("hierarchical bootstrap per region: mice with replacement, then each drawn mouse's neurons with "
          "replacement; a neuron's first copy keeps its trials, each further copy takes them in a random order "
          "(pseudo-population trials); percentile intervals")


def generator(seed: int) -> np.random.Generator:
    """The bootstrap's generator for a command's ``seed``: a stream apart from the shuffle null's."""
    return np.random.default_rng([seed, STREAM])


def draw_counts(mouse: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Times each neuron is drawn in each resample: W (n_resamples, N) integers.

    ``mouse``: (N,) the mouse of each neuron of one region. Mice are drawn with replacement,
    c ~ Multinomial(M, 1/M) per resample; a mouse drawn c times contributes c·n_m neuron draws
    from its own neurons, W_{b, i ∈ m} ~ Multinomial(c_{b,m} n_m, 1/n_m) — the same law as c
    separate draws of n_m neurons each, summed. Σ_i W_{b,i} = Σ_m c_{b,m} n_m.
    """
    mouse = np.asarray(mouse)
    mice, index = np.unique(mouse, return_inverse=True)
    counts = np.zeros((n_resamples, mouse.size), np.int64)
    picks = rng.multinomial(mice.size, np.full(mice.size, 1.0 / mice.size), size=n_resamples)  # (B, M)
    for m in range(mice.size):
        rows = np.flatnonzero(index == m)
        counts[:, rows] = rng.multinomial(picks[:, m] * rows.size, np.full(rows.size, 1.0 / rows.size))
    return counts


def identity_counts(n_neurons: int) -> np.ndarray:
    """The identity draw, every neuron once: W = 1 (1, N)."""
    return np.ones((1, n_neurons), np.int64)


def weighted_fraction(flags: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Σ_i w_i f_i / Σ_i w_i per resample: (B,)."""
    w = np.asarray(counts, np.float64)
    return w @ np.asarray(flags, np.float64) / w.sum(axis=1)


def weighted_mean(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Σ_i w_i v_i / Σ_i w_i over the defined (finite) v_i per resample; NaN where none is drawn."""
    finite = np.isfinite(values)
    w = np.asarray(counts, np.float64)
    total = w @ finite.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (w @ np.where(finite, values, 0.0)) / total, np.nan)


def weighted_median(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The median of the multiset {v_i repeated w_i times} over defined v_i, as ``numpy.nanmedian``.

    With the defined values sorted, v_(1) ≤ … and cumulative counts C_j = Σ_{l ≤ j} w_(l), the
    element at 0-based position p is v_(j) with j the first index with C_j > p; the median is
    (v at ⌊(n−1)/2⌋ + v at ⌈(n−1)/2⌉) / 2, n = C_last. NaN where no defined value is drawn.
    """
    values = np.asarray(values, np.float64)
    keep = np.flatnonzero(np.isfinite(values))
    order = keep[np.argsort(values[keep], kind="stable")]
    sorted_values = values[order]
    cumulative = np.cumsum(np.asarray(counts)[:, order], axis=1)  # (B, n_defined)
    if sorted_values.size == 0:
        return np.full(cumulative.shape[0], np.nan)
    n = cumulative[:, -1]
    low, high = (n - 1) // 2, n // 2  # ⌊(n−1)/2⌋, ⌈(n−1)/2⌉ (n ≥ 1)
    at = lambda p: sorted_values[np.minimum((cumulative <= p[:, None]).sum(axis=1), sorted_values.size - 1)]
    return np.where(n > 0, (at(low) + at(high)) / 2, np.nan)


def copies(counts: np.ndarray, n_trials: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The drawn neurons of each resample, padded, and the trial order of each copy.

    Returns ``index`` (B, L) — neuron i repeated w_{b,i} times, then N (a padding row) up to L =
    max_b Σ_i w_{b,i} — and ``order`` (B, L, T): the identity for the first copy of a neuron and
    the padding, one uniform random permutation of the T trials for each further copy (the same
    for all its odors and sides). Drawn in resample order, whatever the blocks of computation.
    """
    counts = np.asarray(counts)
    n_resamples, n = counts.shape
    width = int(counts.sum(axis=1).max())
    index = np.full((n_resamples, width), n, np.int64)
    order = np.broadcast_to(np.arange(n_trials), (n_resamples, width, n_trials)).copy()
    for b in range(n_resamples):
        drawn = np.repeat(np.arange(n), counts[b])
        index[b, :drawn.size] = drawn
        again = np.flatnonzero(np.r_[False, drawn[1:] == drawn[:-1]])  # every copy after a neuron's first
        if again.size:
            order[b, again] = rng.permuted(np.broadcast_to(np.arange(n_trials), (again.size, n_trials)), axis=-1)
    return index, order


def features(response: np.ndarray) -> np.ndarray:
    """Per neuron and trial, everything the decoders use: (N + 1, T, 4·n_odors + 2), a zero padding row last.

    Columns: the responses x_ipsi, x_contra (odor), the leave-one-trial-out odor templates of each
    side, c_{s,o,k} = (Σ_{k'} x_{s,o,k'} − x_{s,o,k}) / (T − 1), and the two side templates of the
    laterality decoder (each side's mean over odors, leaving trial k out). A copy whose trials are
    taken in another order takes the rows of this array in that order: every column moves with its
    trial.
    """
    n, n_odors, _, n_trials = response.shape
    by_side = np.swapaxes(response, 1, 2)  # (N, side, odor, T)
    odor_templates = protocol._loto_templates(by_side)  # (N, side, odor, T)
    side_templates = protocol._loto_templates(by_side.sum(axis=2)) / n_odors  # (N, side, T)
    columns = np.concatenate([by_side.reshape(n, 2 * n_odors, n_trials),
                              odor_templates.reshape(n, 2 * n_odors, n_trials), side_templates], axis=1)
    return np.concatenate([columns.transpose(0, 2, 1), np.zeros((1, n_trials, columns.shape[1]))])


def decoders(table: np.ndarray, index: np.ndarray, order: np.ndarray) -> dict[str, np.ndarray]:
    """The three decoders of :mod:`.protocol` on the pseudo-populations of :func:`copies`: name → (B,).

    ``table``: :func:`features`. Population b's copy l is neuron index[b, l] with its trials in
    ``order[b, l]`` (the padding row is zeros, which adds nothing to any distance). For every
    trial k the products G = Σ_l f_l g_lᵀ of every column f with every template column g are one
    batched matrix product; the nearest template is argmin_c (G_cc − 2 G_xc) (‖x‖² is the same for
    every class; ties to the lowest class), as :func:`.protocol._nearest`.
    """
    n_odors = (table.shape[-1] - 2) // 4
    population = table[index[:, None, :], order.transpose(0, 2, 1)]  # (B, T, L, F): rows gathered whole
    gram = population.transpose(0, 1, 3, 2) @ np.ascontiguousarray(population[..., 2 * n_odors:])  # (B, T, F, tmpl)
    x = lambda side: slice(side * n_odors, (side + 1) * n_odors)

    def correct(rows: slice, cols: slice, truth: np.ndarray) -> np.ndarray:
        t0 = cols.start - 2 * n_odors
        cross = gram[:, :, rows, t0:t0 + (cols.stop - cols.start)]  # (B, T, item, class)
        norms = np.diagonal(gram[:, :, cols, t0:t0 + (cols.stop - cols.start)], axis1=2, axis2=3)  # (B, T, class)
        guess = np.argmin(norms[:, :, None, :] - 2.0 * cross, axis=-1)  # (B, T, item)
        return np.mean(guess == truth, axis=(1, 2))

    odors = np.arange(n_odors)
    template = lambda side: slice((2 + side) * n_odors, (3 + side) * n_odors)
    odor = lambda train, test: correct(x(test), template(train), odors)
    IPSI, CONTRA = protocol.IPSI, protocol.CONTRA
    sides = slice(4 * n_odors, 4 * n_odors + 2)
    return {
        "decoding_transfer": 0.5 * (odor(IPSI, CONTRA) + odor(CONTRA, IPSI)),
        "decoding_within": 0.5 * (odor(IPSI, IPSI) + odor(CONTRA, CONTRA)),
        "laterality_decoding": correct(slice(0, 2 * n_odors), sides, np.repeat(np.arange(2), n_odors)),
    }


def measures(response: np.ndarray, blank: np.ndarray, counts: np.ndarray, rng: np.random.Generator,
             alpha: float = protocol.ALPHA, table: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every scalar of :data:`.protocol.MEASURES` for each resample W (B, N): name → (B,).

    ``response`` (N, odor, side, trial) and ``blank`` (N, side, trial) of one region; ``rng``
    orders the trials of repeated copies (:func:`copies`; unused by the identity draw); ``table``
    is :func:`features` of ``response`` if already computed. The
    per-neuron tests are computed once and weighted; the decoders run on the drawn
    pseudo-populations. Undefined inputs (a NaN or inf anywhere) give NaN, as :func:`.protocol.summary`.
    """
    response = np.asarray(response, np.float64)
    blank = np.asarray(blank, np.float64)
    counts = np.asarray(counts)
    if not (np.isfinite(response).all() and np.isfinite(blank).all()):
        return {name: np.full(counts.shape[0], np.nan) for name in protocol.MEASURES}
    with np.errstate(invalid="ignore", divide="ignore"):
        fit = protocol.bilateral_regression(response, blank)
    index, order = copies(counts, response.shape[-1], rng)
    table = features(response) if table is None else table
    return {
        "fraction_bilateral": weighted_fraction(np.nan_to_num(fit.p_value, nan=np.inf) <= alpha, counts),
        "fraction_bilateral_positive": weighted_fraction(protocol.positive(fit.slope, fit.p_value, alpha), counts),
        "tuning_correlation_mean": weighted_mean(fit.r, counts),
        "tuning_correlation_median": weighted_median(fit.r, counts),
        **decoders(table, index, order),
    }


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """OpenBLAS (numpy's and scipy's, where loaded) on one thread inside the block, its setting restored after.

    The decoders' products are many small matrix products (one per resample and trial); a multi-threaded
    OpenBLAS spins on them when the cores are shared — 1,000 resamples of the recordings took 97 s with its
    default threads and 18 s with one, under a load of 4–5 on 2 cores. Found through ``/proc/self/maps``
    and ctypes (what threadpoolctl does); elsewhere, or with another BLAS, it does nothing.
    """
    restore = []
    try:
        for path in sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", Path("/proc/self/maps").read_text()))):
            lib = ctypes.CDLL(path)
            for prefix, suffix in (("scipy_openblas", "64_"), ("scipy_openblas", ""), ("openblas", "64_"),
                                   ("openblas", "")):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    restore.append((set_, int(get())))
                    set_(1)
                    break
    except (OSError, AttributeError, ValueError):  # no /proc, an unloadable library: leave BLAS as it is
        pass
    try:
        yield
    finally:
        for set_, threads in restore:
            set_(threads)


def resample(response: np.ndarray, blank: np.ndarray, mouse: np.ndarray | None, n_resamples: int,
             rng: np.random.Generator, alpha: float = protocol.ALPHA, chunk: int = CHUNK,
             done: Callable[[int], None] | None = None,
             also: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None) -> dict[str, np.ndarray]:
    """The hierarchical bootstrap of one region: name → (n_resamples,) values of every measure.

    ``mouse`` (N,) the mouse of each neuron, or None (one mouse: neurons only). All counts are
    drawn first, then the trial orders resample by resample, so ``chunk`` (resamples computed at
    once) changes no value; ``done(n)``, if given, is called after each block (a progress bar's update).
    ``also(counts) -> {name: (B,)}``, if given, adds measures of the same resamples (the fit's held-out checks,
    :func:`olfacto.recordings.checks.resampled`).
    """
    mouse = np.zeros(np.shape(response)[0], np.int64) if mouse is None else np.asarray(mouse)
    counts = draw_counts(mouse, n_resamples, rng)
    table = features(np.asarray(response, np.float64))
    out: dict[str, list[np.ndarray]] = {name: [] for name in protocol.MEASURES}
    with one_blas_thread():
        for start in range(0, n_resamples, chunk):
            block = counts[start:start + chunk]
            values = measures(response, blank, block, rng, alpha, table)
            if also is not None:
                values.update(also(block))
            for name, value in values.items():
                out.setdefault(name, []).append(value)
            if done is not None:
                done(block.shape[0])
    return {name: np.concatenate(v) if v else np.zeros(0) for name, v in out.items()}


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> np.ndarray:
    """[q_{(1−level)/2}, q_{(1+level)/2}] over the last axis, NaN resamples left out: (..., 2)."""
    samples = np.asarray(samples, np.float64)
    q = [100 * (1 - level) / 2, 100 * (1 + level) / 2]
    if samples.shape[-1] == 0 or not np.isfinite(samples).any():
        return np.full(samples.shape[:-1] + (2,), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row: NaN, said in the docstring
        return np.moveaxis(np.nanpercentile(samples, q, axis=-1), 0, -1)


def by_mouse(response: np.ndarray, blank: np.ndarray, mouse: np.ndarray,
             alpha: float = protocol.ALPHA) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every measure on each mouse's neurons alone: (mice, name → (n_mice,)), :func:`.protocol.summary`.

    The decoders' values are those of that mouse's pseudo-population (n_m neurons): smaller than a
    region's pooled population, so lower than its accuracy by construction.
    """
    mouse = np.asarray(mouse)
    mice = np.unique(mouse)
    values = [protocol.summary(response[mouse == m], blank[mouse == m], alpha) for m in mice]
    return mice, {name: np.array([v[name] for v in values]) for name in protocol.MEASURES}
