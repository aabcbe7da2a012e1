"""Learning curve of one run: alignment per direction and the other measures over breaths."""

from __future__ import annotations

import textwrap

import numpy as np
import xarray as xr

from .style import COLORS, RC, figure


def learning_curve(ds: xr.Dataset, title: str | None = None, log_time: bool = False, theory: bool = True):
    """Two panels: (a) alignment L→R, R→L and their mean, with the mean-field prediction (of ŷ) when the
    run is in the analysable case; (b) tuning and update alignment, decoding transfer. With recurrence
    the recurrently refined z_T's alignment, tuning alignment and decoding transfer are drawn too. With
    rewiring a third panel, (c): the fraction of the breath-0 synapses that survive, the turnover of the last
    event, and how informative the partners are (mean |corr| of a neuron's direct response with its
    partners', against as many random partners).

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
    from ..model.prediction import prediction, rewiring_references

    keep = np.isfinite(ds.alignment.values)
    if log_time:
        keep &= ds.breath.values > 0
    d = ds.isel(breath=np.flatnonzero(keep))
    b = d.breath.values
    cfg = config_of(ds) if theory and "config" in ds.attrs else None
    pred = prediction(cfg) if cfg is not None else None
    with mpl.rc_context(RC):
        rewired = "rewiring_survival" in d
        fig, axes = figure(ncols=3 if rewired else 2, width=3.4, height=2.6)
        ax = axes[0, 0]
        ax.plot(b, d.alignment_L_to_R, color=COLORS["L_to_R"], label="L → R")
        ax.plot(b, d.alignment_R_to_L, color=COLORS["R_to_L"], label="R → L")
        ax.plot(b, d.alignment, color=COLORS["mean"], ls="--", label="mean")
        if "alignment_recurrent" in d:  # with recurrence: the refined z_T too (no theory covers it)
            ax.plot(b, d.alignment_recurrent, color=COLORS["mean"], lw=2.0, label="mean, recurrent $z_T$")
        top, ref = 1.02, None
        if pred is not None and not isinstance(pred, str):
            if pred.curve is not None and b.size:
                t = np.geomspace(max(b[0], 1), b[-1], 200) if log_time else np.linspace(max(b[0], 1), b[-1], 200)
                ax.plot(t, pred.curve(t), color="0.75", lw=3.0, zorder=0, label="theory (mean field)")
            ax.axhline(pred.alignment, color="0.4", ls=":", lw=1.0, label=f"theory asymptote {pred.alignment:.3f}")
        elif isinstance(pred, str):
            ref = rewiring_references(cfg)  # pred is a reason only where there is a config
            if ref is not None:  # a rewiring run: where a fixed mask of the same K ends, and the bound
                ax.axhline(ref.fixed, color="0.4", ls=":", lw=1.0, label=f"theory, fixed mask {ref.fixed:.3f}")
                ax.axhline(ref.best, color="0.4", ls="-.", lw=1.0, label=f"theory, K best partners {ref.best:.3f}")
            # wrapped to the panel's width by hand: matplotlib's wrap=True measures the figure, and a long reason
            # (a rewiring run's) squeezed the panels to slivers under the constrained layout
            ax.text(0.02, 0.02, textwrap.fill(f"no theory: {pred}", 75), transform=ax.transAxes, fontsize=5.5,
                    color="0.4", va="bottom")
        low = min(0.0, float(d.alignment.min()) if b.size else 0.0) - 0.02
        ax.set(xlabel="breath $t$", ylabel="alignment  corr$(y, \\hat y)$", ylim=(low, top))
        if log_time:
            ax.set_xscale("log")
        first = int(ds.breath.values[np.flatnonzero(keep)[0]]) if keep.any() else 0
        ax.set_title("(a) population alignment", loc="left")
        if first > 0 and not log_time:
            # above the 'no theory' note where a rewiring run's bound runs along the top
            ax.text(0.02, 0.2 if ref is not None else 0.97, f"from breath {first} (undefined at W = 0)",
                    transform=ax.transAxes, fontsize=5.5, color="0.4", va="top")
        ax.legend(loc="center right" if isinstance(pred, str) else "lower right", fontsize=6)  # clear of the note
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
        if rewired:
            ax = axes[0, 2]
            ax.plot(b, d.rewiring_survival, color=COLORS["mean"], label="synapses of breath 0 left")
            ax.plot(b, d.rewiring_turnover, color="0.5", ls=":", label="turnover of the last event")
            ax.plot(b, d.partner_correlation, color=COLORS["L_to_R"], label="partners' |corr|")
            ax.plot(b, d.random_partner_correlation, color=COLORS["L_to_R"], ls="--", label="random partners' |corr|")
            ax.set(xlabel="breath $t$", ylabel="fraction, |corr|", ylim=(-0.02, 1.02))
            if log_time:
                ax.set_xscale("log")
            ax.set_title("(c) rewiring", loc="left")
            ax.legend(loc="best", fontsize=6)
        if title:
            fig.suptitle(title)
    return fig
