"""The posterior of the fit per region, and the held-out checks it is held to (olfacto fit)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .style import RC, figure

NAMES = {"in_degree": "in-degree K", "lr": "learning rate η", "trial_noise": "trial noise",
         "gain_spread": "gain spread σ_g", "sparseness": "sparseness", "alpha_mix": "α (learned share)"}
CHECK_LABELS = {"decoding_within": "odor decoding\nwithin a side", "fraction_bilateral_responsive":
                "bilateral among\nresponsive", "tuning_correlation_sd": "s.d. of r\nover neurons",
                "snr_median": "median\nsignal-to-noise", "response_size_cv": "CV of\nresponse size"}
REGION_COLORS = ("#264653", "#2a9d8f", "#e76f51", "#8d99ae")


def experiment_posterior(ds: xr.Dataset):
    """Top row, one panel per fitted parameter: its marginal posterior on the grid's values for every region
    (bars side by side; log axes for K and η, whose grids are log-spaced and whose prior is uniform over the
    grid's points). Bottom row, one panel per held-out check (measures the fit never saw): each region's recorded
    value with its bootstrap 95 % interval (grey bars) and the model's posterior predictive mean ± 1.96 s.d.
    (points), a ✗ above a region that fails the criterion |data − model| ≤ 1.96 √(var_boot + var_model).

    ``ds``: a fit with a posterior (:func:`olfacto.experiments.fit.run`).
    """
    import matplotlib as mpl

    regions = [str(r) for r in ds.region.values]
    dims = [d for d in ds["posterior"].dims if d != "region"]
    checks = [str(c) for c in ds.check.values]
    ncols = max(len(dims), len(checks))
    with mpl.rc_context(RC):
        fig, axes = figure(ncols=ncols, nrows=2, width=7.1 / ncols, height=2.2)  # one text width
        for ax, d in zip(axes[0], dims):
            values = np.asarray(ds[d].values, float)
            pos = np.arange(values.size)
            width = 0.8 / len(regions)
            for i, r in enumerate(regions):
                ax.bar(pos - 0.4 + width * (i + 0.5), ds[f"posterior_{d}"].sel(region=r).values, width,
                       color=REGION_COLORS[i % len(REGION_COLORS)], label=r)
            ax.set_xticks(pos, [f"{v:g}" for v in values], rotation=90 if values.size > 5 else 0, fontsize=7)
            ax.set(xlabel=NAMES.get(d, d), ylim=(0, 1.05))
        axes[0, 0].set_ylabel("posterior probability")
        for ax in axes[0, len(dims):]:
            ax.set_visible(False)
        x = np.arange(len(regions))
        for ax, c in zip(axes[1], checks):
            data = ds["check_data"].sel(check=c).values
            ci = ds["check_ci"].sel(check=c).values
            ax.bar(x, data, 0.6, color="0.78", yerr=np.abs(np.stack([data - ci[:, 0], ci[:, 1] - data])), capsize=3,
                   error_kw={"elinewidth": 0.9, "ecolor": "0.3"}, label="recordings, bootstrap 95 %")
            ax.errorbar(x, ds["check_model"].sel(check=c).values, 1.96 * ds["check_model_sd"].sel(check=c).values,
                        fmt="s", color="C0", ms=3.5, label="model posterior predictive, 95 %", zorder=4)
            top = np.nanmax(np.concatenate([ci[:, 1], ds["check_model"].sel(check=c).values
                                            + 1.96 * ds["check_model_sd"].sel(check=c).values]))
            for i, r in enumerate(regions):
                if not bool(ds["check_pass"].sel(region=r, check=c)):
                    ax.text(x[i], 1.04 * top, "✗", ha="center", va="bottom", color="C3", fontsize=9)
            ax.set_xticks(x, regions)
            ax.set_ylim(0, 1.18 * top if np.isfinite(top) and top > 0 else 1)
            ax.set_title(CHECK_LABELS.get(c, c), fontsize=8)
        for ax in axes[1, len(checks):]:
            ax.set_visible(False)
        handles, labels = axes[0, 0].get_legend_handles_labels()
        h2, l2 = axes[1, 0].get_legend_handles_labels()
        fig.legend(handles + h2, labels + l2, loc="outside upper center", ncols=len(labels) + len(l2), fontsize=7)
    return fig
