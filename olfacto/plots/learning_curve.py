"""Learning curve of one run: alignment per direction and the other measures over breaths."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .style import COLORS, RC, figure


def learning_curve(ds: xr.Dataset, title: str | None = None, log_time: bool = False, theory: bool = True):
    """Two panels: (a) alignment L→R, R→L and their mean, with the mean-field prediction (of ŷ) when the
    run is in the analysable case; (b) tuning and update alignment, decoding transfer. With recurrence
    the recurrently refined z_T's alignment, tuning alignment and decoding transfer are drawn too.

    Parameters
    ----------
    ds : xarray.Dataset
        One run's records (``olfacto.run(cfg).dataset`` or ``result.nc``), dim ``breath``.
    title : str, optional
        Figure title.
    log_time : bool
        Breaths on a log axis (the early, η-independent approach and the plateau both show).
    theory : bool
        Draw the mean-field learning curve and its asymptote (``model.prediction``) when the
        config is in the analysable case; otherwise the panel says why not.

    The alignment of W = 0 (breath 0) is undefined (ŷ = 0 has no correlation), so records that
    are NaN for that reason are left out and the first plotted point is the first record.
    """
    import matplotlib as mpl

    from ..analysis.common import config_of
    from ..model.prediction import prediction

    keep = np.isfinite(ds.alignment.values)
    if log_time:
        keep &= ds.breath.values > 0
    d = ds.isel(breath=np.flatnonzero(keep))
    b = d.breath.values
    pred = prediction(config_of(ds)) if theory and "config" in ds.attrs else None
    with mpl.rc_context(RC):
        fig, axes = figure(ncols=2, width=3.4, height=2.6)
        ax = axes[0, 0]
        ax.plot(b, d.alignment_L_to_R, color=COLORS["L_to_R"], label="L → R")
        ax.plot(b, d.alignment_R_to_L, color=COLORS["R_to_L"], label="R → L")
        ax.plot(b, d.alignment, color=COLORS["mean"], ls="--", label="mean")
        if "alignment_recurrent" in d:  # with recurrence: the refined z_T too (no theory covers it)
            ax.plot(b, d.alignment_recurrent, color=COLORS["mean"], lw=2.0, label="mean, recurrent $z_T$")
        top = 1.02
        if pred is not None and not isinstance(pred, str):
            if pred.curve is not None and b.size:
                t = np.geomspace(max(b[0], 1), b[-1], 200) if log_time else np.linspace(max(b[0], 1), b[-1], 200)
                ax.plot(t, pred.curve(t), color="0.75", lw=3.0, zorder=0, label="theory (mean field)")
            ax.axhline(pred.alignment, color="0.4", ls=":", lw=1.0, label=f"theory asymptote {pred.alignment:.3f}")
        elif isinstance(pred, str):
            ax.text(0.02, 0.02, f"no theory: {pred}", transform=ax.transAxes, fontsize=5.5, color="0.4", wrap=True)
        low = min(0.0, float(d.alignment.min()) if b.size else 0.0) - 0.02
        ax.set(xlabel="breath $t$", ylabel="alignment  corr$(y, \\hat y)$", ylim=(low, top))
        if log_time:
            ax.set_xscale("log")
        first = int(ds.breath.values[np.flatnonzero(keep)[0]]) if keep.any() else 0
        ax.set_title("(a) population alignment", loc="left")
        if first > 0 and not log_time:
            ax.text(0.02, 0.97, f"from breath {first} (undefined at W = 0)", transform=ax.transAxes,
                    fontsize=5.5, color="0.4", va="top")
        ax.legend(loc="lower right", fontsize=6)
        ax = axes[0, 1]
        for name, label, style in [("tuning_alignment", "tuning alignment", "-"),
                                   ("update_alignment", "update alignment cos(ΔW$_H$, ΔW$_{SGD}$)", "-"),
                                   ("decoding_transfer", "decoding transfer", ":"),
                                   ("tuning_alignment_recurrent", "tuning alignment, recurrent $z_T$", "--"),
                                   ("decoding_transfer_recurrent", "decoding transfer, recurrent $z_T$", "-.")]:
            if name in d:
                ax.plot(b, d[name], ls=style, label=label)
        values = d[["tuning_alignment", "update_alignment"]].to_array().values
        low = min(-0.05, float(np.nanmin(values)) - 0.05) if np.isfinite(values).any() else -0.05
        ax.set(xlabel="breath $t$", ylabel="value", ylim=(low, 1.05))
        if log_time:
            ax.set_xscale("log")
        ax.axhline(0, color="0.8", lw=0.8, zorder=0)
        ax.set_title("(b) other measures", loc="left")
        ax.legend(loc="best", fontsize=6)
        if title:
            fig.suptitle(title)
    return fig
