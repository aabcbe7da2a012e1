"""Alignment with and without recurrence inside each cortex (chapter 2, result 7)."""

from __future__ import annotations

import xarray as xr

from ..analysis.common import SEED, mean_sem
from ..config import dim_name
from .style import RC, family, figure, log_ticks

P_REC, STEPS, STRENGTH = (dim_name(k) for k in ("recurrence.connection_prob", "recurrence.steps",
                                                 "recurrence.strength"))


def recurrence(ds: xr.Dataset):
    """(a) Population alignment against the recurrent strength s, for each p_rec at the largest T:
    without recurrence (ŷ, grey), with it (z_T, colour, mean ± s.e.m. over seeds) and the linear
    fixed point z* = (I − αA)⁻¹ŷ of the same network by a dense solve (open circles: a consistency check of the
    iteration, not a closed-form theory). (b) The same against T at each s,
    for the largest p_rec: z_T approaches z* as T grows. At s = 0.9 the partial sums Σ_{t<T}(αA)^t ŷ amplify
    the dominant eigen-directions of A by up to 1/(1 − s) = 10 (2.7 at T = 3) against ≈ 1.3 for the weakest
    code directions: by T = 30 the refined response leans on a few directions and its alignment falls to z*'s.

    ``ds``: from :func:`olfacto.analysis.chapter2.compute_recurrence`.
    """
    import matplotlib as mpl

    s = ds[STRENGTH].values
    with mpl.rc_context(RC):
        fig, axes = figure(ncols=2, width=3.45, height=3.2)
        ax = axes[0, 0]
        last_t = ds[STEPS].values.max()
        colors = family(ds.sizes[P_REC], "viridis")
        for color, p in zip(colors, ds[P_REC].values):
            sub = ds.sel({P_REC: p, STEPS: last_t})
            m, e = mean_sem(sub.alignment_recurrent)
            ax.errorbar(s, m, e, color=color, marker="o", ms=3, label=f"with recurrence, $p_{{rec}}$ = {p:g}")
            ax.plot(s, sub.alignment_fixed_point.mean(SEED), "o", mfc="none", color="k", ms=6)
        m, e = mean_sem(ds.sel({STEPS: last_t}).isel({P_REC: 0}).alignment)
        ax.errorbar(s, m, e, color="0.5", marker="s", ms=3, label="without (ŷ)")
        ax.plot([], [], "o", mfc="none", color="k", label="fixed point z* (dense solve)")
        ax.set(xlabel="recurrent strength s = αρ(A)", ylabel="population alignment")
        ax.set_title(f"(a) T = {last_t} steps", loc="left")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=7, ncols=2)  # below: off the data
        ax = axes[0, 1]
        p = ds[P_REC].values.max()
        steps = ds[STEPS].values
        colors = family(len(s), "magma")
        for color, strength in zip(colors, s):
            sub = ds.sel({P_REC: p, STRENGTH: strength})
            m, e = mean_sem(sub.alignment_recurrent)
            ax.errorbar(steps, m, e, color=color, marker="o", ms=3, label=f"s = {strength:g}")
            ax.axhline(float(sub.alignment_fixed_point.isel({STEPS: -1}).mean(SEED)), color=color, ls=":", lw=0.8)
        log_ticks(ax, steps)
        ax.set(xlabel="recurrent steps T", ylabel="population alignment of z_T")
        ax.set_title(f"(b) $p_{{rec}}$ = {p:g}; dotted: z* (dense solve)", loc="left")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=7, ncols=3)  # below: off the data
    return fig
