"""Update alignment at the end of Hebbian learning as one parameter at a time varies (chapter 2, result 6)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .style import RC, figure, log_ticks


def update_alignment_vs(ds: xr.Dataset):
    """One panel per varied parameter: the final cos(ΔW_Hebb, ΔW_SGD) of each seed (dots) and their mean
    (line), with the mean-field value (dashed, open circles) where the case is analysable.

    ``ds``: from :func:`olfacto.analysis.chapter2.compute_update_alignment_vs`.
    """
    import matplotlib as mpl

    names = [v for v in ds.data_vars if v.startswith("update_alignment_vs_")]
    ncols = min(4, len(names))
    nrows = -(-len(names) // ncols)
    with mpl.rc_context(RC):
        fig, axes = figure(ncols=ncols, nrows=nrows, width=2.3, height=2.1, sharey=True)
        for ax in axes.ravel()[len(names):]:
            ax.set_visible(False)
        for ax, name in zip(axes.ravel(), names):
            dim = name[len("update_alignment_vs_"):]
            values = ds[dim].values
            numeric = np.issubdtype(values.dtype, np.number)
            x = values.astype(float) if numeric else np.arange(len(values))
            sim = ds[name].values
            for s in range(sim.shape[1]):
                ax.plot(x, sim[:, s], "o", color="C0", ms=2.5, alpha=0.6)
            ax.plot(x, np.nanmean(sim, axis=1), "-", color="C0", lw=1.2, label="simulation")
            th = ds[f"theory_vs_{dim}"].values
            if np.isfinite(th).any():
                ax.plot(x, th, "o--", color="k", mfc="none", lw=0.8, ms=4, label="theory")
            if numeric and dim.endswith(("decay", "glomeruli", "n_cortex", "connection_prob")):
                log_ticks(ax, x)
            if not numeric:
                ax.set_xticks(x, [str(v) for v in values])
            ax.axhline(0.0, color="0.8", lw=0.8, zorder=0)
            ax.set(xlabel=ds[name].attrs.get("key", dim), ylim=(-1.05, 1.05))
        for ax in axes[:, 0]:
            ax.set_ylabel("update alignment\n(end of Hebbian learning)")
        axes.ravel()[0].legend(loc="lower left")
        fig.suptitle("Hebbian vs SGD update alignment: aligned while the gain g = K/(Mλ) < 1", fontsize=10)
    return fig
