"""Stationary fluctuations of Hebbian weights against ηλ and M (chapter 2, result 8)."""

from __future__ import annotations

import xarray as xr

from ..analysis.common import SEED
from ..config import dim_name
from .style import RC, family, figure, log_ticks

M_DIM, LR_DIM = dim_name("circuit.n_glomeruli"), dim_name("learning.lr")


def weight_fluctuations(ds: xr.Dataset):
    """Mean over synapses of Var_t(W_ij) over mean over synapses of (time-average W_ij)², against ηλ,
    for each M (dots: seeds), with the mean-field ratio ε(sM + 1) (dashed) and what the finite
    window of the estimate reads of it (solid).

    ``ds``: from :func:`olfacto.analysis.chapter2.compute_weight_fluctuations`.
    """
    import matplotlib as mpl

    decay = float(ds.attrs.get("decay", 1.0))
    x = ds[LR_DIM].values * decay
    with mpl.rc_context(RC):
        fig, axes = figure(width=3.6, height=3.6)
        ax = axes[0, 0]
        for color, m in zip(family(ds.sizes[M_DIM], "viridis"), ds[M_DIM].values):
            sub = ds.sel({M_DIM: m})
            for seed in ds[SEED].values:
                ax.plot(x, sub.weight_fluctuation_ratio.sel({SEED: seed}), "o", color=color, ms=3)
            ax.plot(x, sub.theory_windowed, "-", color=color, lw=1.0, label=f"M = {m}")
            ax.plot(x, sub.theory, "--", color=color, lw=0.8)
        ax.plot([], [], "k--", lw=0.8, label="ε(sM + 1)")
        ax.plot([], [], "k-", lw=1.0, label="as read in the window")
        log_ticks(ax, x)
        ax.set(yscale="log", xlabel="ηλ", ylabel="Var$_t$(W) / ⟨W⟩$_t^2$ (means over synapses)",
               title="stationary weight fluctuations")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=7, ncols=2)  # off the data
    return fig
