"""The recorded regions and the model fitted to each (olfacto fit)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..recordings import protocol
from .style import RC, figure

LABELS = {"fraction_bilateral": "fraction bilateral", "tuning_correlation_mean": "mean ipsi–contra r",
          "decoding_transfer": "odor decoding across sides", "laterality_decoding": "side decoding"}


def experiment_fit(ds: xr.Dataset):
    """One panel per measure: each region's recorded value (bars) and the fitted model's (points, ± s.d.
    over seeds), with the chance level (dotted); the fitted K, η and trial noise in the legend.

    ``ds``: from :func:`olfacto.analysis.fit.fit`.
    """
    import matplotlib as mpl

    regions = [str(r) for r in ds.region.values]
    measures = [str(m) for m in ds.measure.values]
    n_odors = int(ds.attrs.get("n_odors", 15))
    x = np.arange(len(regions))
    with mpl.rc_context(RC):
        fig, axes = figure(ncols=len(measures), width=2.2, height=2.6)
        for ax, m in zip(axes[0], measures):
            ax.bar(x, ds.data.sel(measure=m).values, color="0.75", width=0.6, label="recordings")
            ax.errorbar(x, ds.model.sel(measure=m).values, ds.model_sd.sel(measure=m).values, fmt="o", color="C3",
                        ms=4, label="fitted model")
            ax.axhline(protocol.MEASURES[m].chance(n_odors), color="k", ls=":", lw=0.8)
            ax.set_xticks(x, regions)
            ax.set(ylim=(0, 1.05), title=LABELS.get(m, m))
        axes[0, 0].legend(loc="upper right", fontsize=7)
        fits = "; ".join(f"{r}: K = {ds.fit_in_degree.sel(region=r).item():g}, η = {ds.fit_lr.sel(region=r).item():g}, "
                         f"noise {ds.fit_trial_noise.sel(region=r).item():g}" for r in regions)
        fig.suptitle(f"model fitted per region ({fits})", fontsize=8)
    return fig
