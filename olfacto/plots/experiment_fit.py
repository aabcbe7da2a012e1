"""The recorded regions and the model fitted to each (olfacto fit)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..recordings import protocol
from .style import RC, figure

LABELS = {"fraction_bilateral": "fraction bilateral", "tuning_correlation_mean": "mean ipsi–contra r",
          "decoding_transfer": "odor decoding across sides", "laterality_decoding": "side decoding"}


def experiment_fit(ds: xr.Dataset):
    """One panel per measure: each region's recorded value (bars, its neurons pooled) with the s.e.m. over the
    region's mice (error bars; ``data_sem``, from each mouse's own neurons — the recordings hold 3, 4 and 3 mice)
    and each mouse's value (small dots), and the fitted model's (points, ± s.d. over seeds), with the chance level
    (dotted); the fitted K, η and trial noise, with their near-optimal ranges, in a table below the panels.
    A result without ``data_sem`` (stored before it was added) draws the bars alone.

    ``ds``: from :func:`olfacto.analysis.fit.fit`.
    """
    import matplotlib as mpl

    regions = [str(r) for r in ds.region.values]
    measures = [str(m) for m in ds.measure.values]
    n_odors = int(ds.attrs.get("n_odors", 15))
    x = np.arange(len(regions))
    with mpl.rc_context(RC):
        fig, axes = figure(ncols=len(measures), width=1.75, height=3.1)
        for ax, m in zip(axes[0], measures):
            sem = ds["data_sem"].sel(region=regions, measure=m).values if "data_sem" in ds else None
            ax.bar(x, ds.data.sel(measure=m).values, color="0.75", width=0.6, yerr=sem, capsize=3,
                   error_kw={"elinewidth": 0.9, "ecolor": "0.25"},
                   label="recordings ± s.e.m. over mice" if sem is not None else "recordings")
            if "data_by_mouse" in ds:
                mice = ds["data_by_mouse"].sel(measure=m)
                for i, r in enumerate(regions):
                    v = mice.values[np.asarray(mice["mouse_region"].values) == r]
                    ax.plot(x[i] - 0.17 + 0.34 * np.linspace(0, 1, v.size), v, ls="none", marker=".", ms=3,
                            color="0.35", zorder=3, label="each mouse" if i == 0 else None)
            ax.errorbar(x, ds.model.sel(measure=m).values, ds.model_sd.sel(measure=m).values, fmt="o", color="C3",
                        ms=4, label="fitted model")
            ax.axhline(protocol.MEASURES[m].chance(n_odors), color="k", ls=":", lw=0.8)
            ax.set_xticks(x, regions)
            ax.set(ylim=(0, 1.05))
            ax.set_title(LABELS.get(m, m), fontsize=8)
        handles, labels = axes[0, 0].get_legend_handles_labels()  # above the panels, off the data
        fig.legend(handles, labels, loc="outside upper center", ncols=len(labels), fontsize=7)
        # the fitted parameters in a table below the panels (not in the title): value [near-optimal range]
        def rng(var, r):
            near = ds.get(f"near_{var}")
            if near is None:
                return ""
            lo, hi = (float(near.sel(region=r, bound=b)) for b in ("low", "high"))
            return "" if lo == hi else f" [{lo:g}–{hi:g}]"

        rows = [f"{r}:  K = {ds.fit_in_degree.sel(region=r).item():g}{rng('in_degree', r)},  "
                f"η = {ds.fit_lr.sel(region=r).item():g}{rng('lr', r)},  "
                f"trial noise {ds.fit_trial_noise.sel(region=r).item():g}{rng('trial_noise', r)}" for r in regions]
        handles = [mpl.lines.Line2D([], [], ls="none", label=row) for row in rows]
        fig.legend(handles=handles, loc="outside lower center", ncols=1, fontsize=7, handlelength=0,
                   title="fitted per region (near-optimal range)", title_fontsize=7)
    return fig
