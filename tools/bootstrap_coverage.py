"""How often the hierarchical bootstrap's 95 % intervals cover the truth, on synthetic recordings.

    python tools/bootstrap_coverage.py            # the table of docs/experiment.md (≈ 5 min on one core)
    python tools/bootstrap_coverage.py --quick    # fewer studies

Synthetic recordings (:func:`synthetic`): mouse m has an alignment a_m = mean + mouse_sd·z_m; its neurons
c_i = clip(a_m + neuron_sd·z_i, ±0.95) and a gain g_i = exp(0.5 z'_i); ipsi tuning u_i ~ N(0, 1) over the 15
odors, contra c_i u_i + √(1 − c_i²) v_i; response = g_i·tuning + noise·ε per trial (7 trials), blank = noise·ε.

The truth of a per-neuron measure (fraction bilateral, mean r) is its pooled value on 200,000 neurons of 4,000
mice; the decoders' accuracy depends on the population's size, so their truth is the mean of the measure over
600 independent studies of the same design. Each study's interval is olfacto.recordings.bootstrap's (per-neuron
measures: its weighted path, exactly what ``resample`` computes for them; decoders: ``resample`` itself).
"""

from __future__ import annotations

import argparse

import numpy as np

from olfacto.recordings import bootstrap, protocol

N_ODORS, N_TRIALS = 15, 7


def synthetic(rng: np.random.Generator, n_mice: int, n_per_mouse: int, mouse_sd: float, neuron_sd: float = 0.3,
              mean: float = 0.3, noise: float = 1.0):
    """Hierarchical recordings (the module docstring's model): (response, blank, mouse)."""
    a = mean + mouse_sd * rng.normal(size=n_mice)
    n = n_mice * n_per_mouse
    c = np.clip(np.repeat(a, n_per_mouse) + neuron_sd * rng.normal(size=n), -0.95, 0.95)[:, None]
    gain = np.exp(0.5 * rng.normal(size=n))[:, None, None, None]
    u, v = rng.normal(size=(n, N_ODORS)), rng.normal(size=(n, N_ODORS))
    tuning = np.stack([u, c * u + np.sqrt(1 - c**2) * v], axis=-1)[..., None]
    response = gain * tuning + noise * rng.normal(size=(n, N_ODORS, 2, N_TRIALS))
    blank = noise * rng.normal(size=(n, 2, N_TRIALS))
    return response, blank, np.repeat(np.arange(n_mice), n_per_mouse)


def per_neuron(response, blank):
    """The bilateral flag (p ≤ 0.05, two-sided) and r of every neuron."""
    fit = protocol.bilateral_regression(response, blank)
    return (np.nan_to_num(fit.p_value, nan=np.inf) <= protocol.ALPHA).astype(float), fit.r


def coverage_per_neuron(n_mice, n_per_mouse, mouse_sd, n_studies=300, n_resamples=400, seed=1):
    """Coverage of the fraction bilateral and the mean r, and the mean width of the former's interval."""
    flags, r = per_neuron(*synthetic(np.random.default_rng(seed + 1000), 4000, 50, mouse_sd)[:2])
    truth = flags.mean(), np.nanmean(r)
    rng = np.random.default_rng(seed)
    hits, widths = np.zeros(2), []
    for _ in range(n_studies):
        response, blank, mouse = synthetic(rng, n_mice, n_per_mouse, mouse_sd)
        flags, r = per_neuron(response, blank)
        counts = bootstrap.draw_counts(mouse, n_resamples, rng)
        for j, samples in enumerate((bootstrap.weighted_fraction(flags, counts), bootstrap.weighted_mean(r, counts))):
            low, high = bootstrap.percentile_interval(samples)
            hits[j] += low <= truth[j] <= high
            if j == 0:
                widths.append(high - low)
    return hits / n_studies, float(np.mean(widths))


DECODERS = ("decoding_transfer", "decoding_within", "laterality_decoding")


def coverage_decoders(n_mice, n_per_mouse, mouse_sd, noise=3.0, n_studies=200, n_resamples=200, seed=7):
    """Coverage of the three decoders' intervals of the mean accuracy of the design, and the resamples' mean
    minus the measure (their shift)."""
    rng = np.random.default_rng(seed)
    design = dict(mouse_sd=mouse_sd, noise=noise)
    values = [protocol.summary(*synthetic(rng, n_mice, n_per_mouse, **design)[:2]) for _ in range(600)]
    truth = {k: np.mean([v[k] for v in values]) for k in DECODERS}
    hits, shift = dict.fromkeys(DECODERS, 0), {k: [] for k in DECODERS}
    for _ in range(n_studies):
        response, blank, mouse = synthetic(rng, n_mice, n_per_mouse, **design)
        draws = bootstrap.resample(response, blank, mouse, n_resamples, rng)
        measured = protocol.summary(response, blank)
        for k in DECODERS:
            low, high = bootstrap.percentile_interval(draws[k])
            hits[k] += low <= truth[k] <= high
            shift[k].append(np.mean(draws[k]) - measured[k])
    return truth, {k: hits[k] / n_studies for k in DECODERS}, {k: float(np.mean(shift[k])) for k in DECODERS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 studies per design instead of 300 / 200")
    args = parser.parse_args()
    n = 100 if args.quick else None
    print("per-neuron measures: mice × neurons, mouse_sd → coverage (fraction bilateral, mean r), interval width")
    for n_mice, n_per, sd in [(3, 40, 0.0), (3, 40, 0.1), (4, 40, 0.1), (10, 20, 0.1), (10, 20, 0.2), (20, 10, 0.1),
                              (3, 150, 0.3), (4, 150, 0.3)]:
        cov, width = coverage_per_neuron(n_mice, n_per, sd, **({"n_studies": n} if n else {}))
        print(f"  {n_mice:2d} × {n_per:3d}, {sd:.1f}: {cov[0]:.3f}, {cov[1]:.3f}; width {width:.3f}", flush=True)
    print("decoders: mice × neurons, mouse_sd (trial noise 3) → coverage (across, within, side); resamples' shift")
    for n_mice, n_per, sd in [(10, 20, 0.2), (3, 60, 0.3)]:
        truth, cov, shift = coverage_decoders(n_mice, n_per, sd, **({"n_studies": n} if n else {}))
        print(f"  {n_mice:2d} × {n_per:3d}, {sd:.1f}: truth " + ", ".join(f"{truth[k]:.3f}" for k in DECODERS)
              + "; coverage " + ", ".join(f"{cov[k]:.3f}" for k in DECODERS)
              + "; shift " + ", ".join(f"{shift[k]:+.3f}" for k in DECODERS), flush=True)


if __name__ == "__main__":
    main()
