"""Learning curve of one run: alignment per direction and the other measures over breaths."""

from __future__ import annotations

import xarray as xr

from .style import COLORS, RC, figure


def learning_curve(ds: xr.Dataset, title: str | None = None):
    """Two panels: (a) alignment L→R, R→L and their mean; (b) tuning and update alignment, decoding."""
    import matplotlib as mpl

    with mpl.rc_context(RC):
        fig, axes = figure(ncols=2, width=3.4, height=2.6)
        ax = axes[0, 0]
        b = ds.breath.values
        ax.plot(b, ds.alignment_L_to_R, color=COLORS["L_to_R"], label="L → R")
        ax.plot(b, ds.alignment_R_to_L, color=COLORS["R_to_L"], label="R → L")
        ax.plot(b, ds.alignment, color=COLORS["mean"], ls="--", label="mean")
        ax.set(xlabel="breath $t$", ylabel="alignment  corr$(y, \\hat y)$", ylim=(min(0, float(ds.alignment.min())) - 0.02, 1.02))
        ax.set_title("(a) population alignment", loc="left")
        ax.legend(loc="lower right")
        ax = axes[0, 1]
        for name, label, style in [("tuning_alignment", "tuning alignment", "-"),
                                   ("update_alignment", "update alignment cos(ΔW$_H$, ΔW$_{SGD}$)", "-"),
                                   ("decoding_transfer", "decoding transfer", ":")]:
            ax.plot(b, ds[name], ls=style, label=label)
        low = min(-0.05, float(ds[["tuning_alignment", "update_alignment"]].to_array().min()) - 0.05)
        ax.set(xlabel="breath $t$", ylabel="value", ylim=(low, 1.05))
        ax.axhline(0, color="0.8", lw=0.8, zorder=0)
        ax.set_title("(b) other measures", loc="left")
        ax.legend(loc="best")
        if title:
            fig.suptitle(title)
    return fig
