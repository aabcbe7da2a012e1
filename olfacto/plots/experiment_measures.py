"""The experiment's measures per region (the output of :func:`olfacto.recordings.experiment.measure`)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import _draw
from .style import RC, figure

BILATERAL_COLOR = "#2a9d8f"
NEGATIVE_COLOR = "#e9c46a"
OTHER_COLOR = "#adb5bd"
NULL_COLOR = "#6c757d"
BARS = [("decoding_within", "odor\nwithin side"), ("decoding_transfer", "odor\nacross sides"),
        ("laterality_decoding", "stimulated\nside")]
BAR_COLORS = ["#457b9d", "#e76f51", "#8e44ad"]


def _interval(ax, r: xr.Dataset, name: str, x: float, **kwargs) -> float | None:
    """The bootstrap interval [low, high] of ``name`` as an error bar at ``x`` (drawn from low to high: a percentile
    interval need not be centred on the value); its top, or None without one."""
    if f"{name}_ci" not in r:
        return None
    low, high = (float(v) for v in r[f"{name}_ci"].values)
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    ax.errorbar([x], [(low + high) / 2], yerr=[(high - low) / 2], fmt="none", color="k", lw=1.0, capsize=3, **kwargs)
    return high


def experiment_measures(result: xr.Dataset):
    """One row per region: (a) per-neuron ipsi–contra tuning correlations, bilaterally correlated
    neurons (slope p ≤ α, two-sided as the article) stacked on the others — those with a *negative*
    slope apart, since the two-sided test counts them too; (b) fraction of bilaterally correlated
    neurons, per mouse (points) and pooled (bar), beside the one-sided count of positive slopes
    (hatched bar), against the test's false-positive rate α and the 95 % range of the odor-shuffled
    null; (c) decoding accuracy of odor within a side, odor across sides and the stimulated side,
    each with its chance level. With a bootstrap in ``result`` (``<measure>_ci``), every scalar carries its
    95 % percentile interval (hierarchical bootstrap: mice, then neurons) as an error bar, and the mean r
    its interval as a band.
    """
    import matplotlib as mpl

    regions = [str(r) for r in result["region"].values]
    alpha = float(result.attrs["alpha"])
    bins = np.linspace(-1.0, 1.0, 33)
    region_of = result["neuron_region"].values if "neuron_region" in result.coords else None
    with mpl.rc_context(RC):
        fig, axes = figure(ncols=3, nrows=len(regions), width=2.9, height=2.2)
        for i, region in enumerate(regions):
            r = result.sel(region=region)
            letters = "abcdefghijklmnopqrstuvwxyz"[3 * i:3 * i + 3]
            keep = region_of == region if region_of is not None else np.ones(result.sizes["neuron"], bool)
            corr = result["tuning_correlation"].values[keep]
            bilateral = result["bilateral"].values[keep].astype(bool)
            negative = bilateral & (result["slope"].values[keep] < 0)
            finite = np.isfinite(corr)
            ax = axes[i, 0]
            ax.hist([corr[finite & bilateral & ~negative], corr[finite & negative], corr[finite & ~bilateral]],
                    bins=bins, stacked=True, color=[BILATERAL_COLOR, NEGATIVE_COLOR, OTHER_COLOR],
                    label=[f"p ≤ {alpha:g}", f"p ≤ {alpha:g}, slope < 0 ({int(negative.sum())})", f"p > {alpha:g}"])
            mean_label = f"mean {float(r.tuning_correlation_mean):.2f}"
            if "tuning_correlation_mean_ci" in r:  # its interval as a band, the numbers in the mean's label
                low, high = r.tuning_correlation_mean_ci.values
                ax.axvspan(low, high, color="k", alpha=0.12, lw=0)
                mean_label += f" [{low:.2f}, {high:.2f}]"
            ax.axvline(float(r.tuning_correlation_mean), color="k", lw=1.0, label=mean_label)
            ax.axvline(float(r.tuning_correlation_median), color="k", lw=1.0, ls="--",
                       label=f"median {float(r.tuning_correlation_median):.2f}")
            ax.set(xlim=(-1, 1), ylabel=f"{region}: neurons (n = {int(r.n_neurons)})")
            ax.legend(loc="upper left", fontsize=6)
            _draw.panel_title(ax, letters[0], f"{region}: ipsi–contra tuning")

            ax = axes[i, 1]
            frac = float(r.fraction_bilateral)
            ax.bar([0], [frac], width=0.35, color=BILATERAL_COLOR, alpha=0.8, label="pooled")
            tops = [frac]
            top = _interval(ax, r, "fraction_bilateral", -0.1, label="95 % CI (bootstrap)")
            tops += [] if top is None else [top]
            if "mouse_region" in result.coords:
                per_mouse = result["fraction_bilateral_by_mouse"].where(result["mouse_region"] == region, drop=True)
                ax.plot(np.linspace(0.0, 0.12, per_mouse.size) if per_mouse.size > 1 else [0.06], per_mouse.values,
                        "o", color="k", ms=3.5, label="per mouse")
                tops += list(per_mouse.values)
            lo, hi = np.quantile(r.null_fraction_bilateral.values, [0.025, 0.975])
            ax.fill_between([-0.3, 0.3], lo, hi, color=NULL_COLOR, alpha=0.25, lw=0, label="shuffled odors, 95 %")
            ax.axhline(alpha, color=NULL_COLOR, ls=":", lw=1.0, label=f"false-positive rate {alpha:g}")
            ax.text(0.19, frac, f"{frac:.2f}", va="center", fontsize=7)
            if "fraction_bilateral_positive" in r:  # the one-sided count of positive slopes, beside it
                one = float(r.fraction_bilateral_positive)
                ax.bar([0.6], [one], width=0.35, color="white", edgecolor=BILATERAL_COLOR, hatch="////",
                       label="one-sided, slope > 0")
                ax.text(0.8, one, f"{one:.2f}", va="center", fontsize=7)
                tops.append(one)
                top = _interval(ax, r, "fraction_bilateral_positive", 0.6)
                tops += [] if top is None else [top]
            ax.set(xlim=(-0.3, 1.0), xticks=[], ylim=(0, max(0.5, (1.9 if i == 0 else 1.25) * float(np.nanmax(tops)))),
                   ylabel="fraction bilaterally correlated")
            if i == 0:  # room above the data for it (the y range of row 0 is stretched)
                ax.legend(loc="upper right", fontsize=6, ncol=2)
            _draw.panel_title(ax, letters[1], f"{region}: bilaterally correlated")

            ax = axes[i, 2]
            for j, ((name, label), color) in enumerate(zip(BARS, BAR_COLORS)):
                value = float(r[name])
                ax.bar([j], [value], width=0.6, color=color, alpha=0.85)
                _interval(ax, r, name, j, label="95 % CI" if j == 0 else None)
                ax.text(j + 0.05, value + 0.02, f"{value:.2f}", ha="left", va="bottom", fontsize=7)
                chance = float(result[name].attrs["chance"])
                ax.plot([j - 0.4, j + 0.4], [chance, chance], color="k", ls=":", lw=1.0,
                        label="chance" if j == 0 else None)
            ax.set(xticks=range(len(BARS)), xticklabels=[label for _, label in BARS], ylim=(0, 1.1),
                   ylabel="fraction correct")
            ax.tick_params(axis="x", labelsize=7)
            if i == 0:
                ax.legend(loc="upper right", fontsize=6)
            _draw.panel_title(ax, letters[2], f"{region}: decoding")
        axes[-1, 0].set_xlabel(r"tuning correlation corr$_{\mathrm{odors}}$(ipsi, contra)")
        fig.suptitle(f"the experiment's measures per region ({result.attrs.get('n_odors', '')} odors, "
                     f"{result.attrs.get('n_trials', '')} trials; decoding: nearest class mean on pseudo-population "
                     "trials, leave one trial out)", fontsize=9)
    return fig
