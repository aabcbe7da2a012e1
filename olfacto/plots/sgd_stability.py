"""The stability boundary of online SGD against K, mini-batch and optimizer (chapter 2, result 8)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..config import dim_name
from .style import RC, family, figure, log_ticks

BATCH, OPT = dim_name("learning.batch"), dim_name("learning.optimizer")


def sgd_stability(ds: xr.Dataset):
    """Largest η found stable (bar from the largest stable to the smallest diverging η) against the
    in-degree K, per mini-batch B (colour) and optimizer (panel); for plain SGD the mean-square LMS
    bound of a typical neuron (dotted, Marchenko–Pastur) and of the least stable neuron of the
    drawn networks (dashed), which is the one that diverges, and the η at which its mean-square
    error grows past float32 within the run's length (solid): what the search measures. For heavy-ball momentum
    the same mean-square analysis of a typical neuron (docs/theory.md §5e): its bound (dotted) and the η at which
    a run of that length overflows (solid).

    ``ds``: from :func:`olfacto.analysis.chapter2.compute_sgd_stability`.
    """
    import matplotlib as mpl

    from ..analysis.chapter2 import momentum_theory

    k = ds.in_degree.values.astype(float)
    hb = momentum_theory(ds) if "momentum" in ds[OPT].values else None
    opts = [str(o) for o in ds[OPT].values]
    with mpl.rc_context(RC):
        fig, axes = figure(ncols=len(opts), width=3.0, height=3.6, sharey=True)
        for ax, opt in zip(axes[0], opts):
            for color, b in zip(family(ds.sizes[BATCH], "plasma"), ds[BATCH].values):
                sub = ds.sel({OPT: opt, BATCH: b})
                lo, hi = sub.lr_stable.values, sub.lr_unstable.values
                mid = np.sqrt(lo * hi)
                ax.errorbar(k, mid, [mid - lo, hi - mid], fmt="o", color=color, ms=3, label=f"B = {b}")
                if opt == "sgd":
                    ax.plot(k, sub.theory, ":", color=color, lw=0.8)
                    ax.plot(k, sub.theory_worst_row, "--", color=color, lw=0.8)
                    ax.plot(k, sub.theory_finite_time, "-", color=color, lw=1.0)
                elif opt == "momentum" and hb is not None:
                    ax.plot(k, hb.asymptotic.sel({BATCH: b}), ":", color=color, lw=0.8)
                    ax.plot(k, hb.finite_time.sel({BATCH: b}), "-", color=color, lw=1.0)
            log_ticks(ax, k)
            name = {"sgd": "plain SGD", "momentum": f"heavy-ball momentum β = {hb.attrs['momentum']:g}"
                    if hb is not None else "momentum"}.get(opt, opt)
            ax.set(yscale="log", xlabel="in-degree K")
            ax.set_title(f"({'abcd'[list(opts).index(opt)]}) {name}", loc="left")
            if opt == "sgd":
                ax.plot([], [], "k:", lw=0.8, label="LMS bound, typical neuron")
                ax.plot([], [], "k--", lw=0.8, label="least stable neuron")
                ax.plot([], [], "k-", lw=1.0, label="… overflowing within the run")
            if opt == "momentum" and hb is not None:
                ax.plot([], [], "k:", lw=0.8, label="heavy-ball bound, typical neuron")
                ax.plot([], [], "k-", lw=1.0, label="… overflowing within the run")
                ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=7, ncols=1)
        axes[0, 0].set_ylabel(f"largest stable η ({int(ds.attrs.get('n_breaths', 0))} breaths)")
        axes[0, 0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=7, ncols=2)  # off the data
    return fig
