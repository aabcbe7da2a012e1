"""The real-odor puzzle and its remedies (issue 9, item 5)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..analysis.common import SEED
from .style import RC, figure, log_ticks


def real_odors(ds: xr.Dataset):
    """With the measured glomerular odors: (a) cross-side odor decoding of each variant (bars: simulation,
    mean over seeds with each seed as a dot; diamonds: the dense-limit prediction from the learned second
    moment; dotted: chance); (b) the per-neuron tuning alignment, which stays high even where decoding
    fails; (c) the effective dimension (tr S)²/tr S² of the odors each variant learns from.

    ``ds``: from :func:`olfacto.analysis.real_odors.compute`.
    """
    import matplotlib as mpl

    names = [str(r) for r in ds.remedy.values]
    y = np.arange(len(names))[::-1]
    with mpl.rc_context(RC):
        fig, axes = figure(ncols=3, width=2.33, height=3.4, sharey=True)
        for ax, var, title in ((axes[0, 0], "decoding_transfer", "odor decoding across sides"),
                               (axes[0, 1], "tuning_alignment", "tuning alignment")):
            mean = ds[var].mean(SEED).values
            ax.barh(y, mean, color="0.75")
            for s in ds[SEED].values:
                ax.plot(ds[var].sel({SEED: s}).values, y, "o", color="k", ms=2)
            ax.set(xlim=(0, 1.05), title=title)
        ax = axes[0, 0]
        th = ds.decoding_transfer_theory.values
        ax.plot(th, y, "D", color="C3", mfc="none", ms=6, label="prediction (dense limit)")
        ax.axvline(ds.attrs.get("chance", 0.01), color="k", ls=":", lw=0.8)
        ax.set_yticks(y, names)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=1, fontsize=7)  # off the data
        ax = axes[0, 2]
        ax.barh(y, ds.effective_dimension.values, color="C0")
        log_ticks(ax, [1, 3, 10, 30])
        ax.set(title="odor effective dimension", xlabel="(tr S)² / tr S²")
    return fig
