"""Inverse scaling: the connection probability p* needed for a target alignment vs N (chapter 1)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import _draw
from ..analysis import (N_DIM, RULE_DIM, SEED, config_of, loglog_slope, mean_sem, p_star_table, theory_args,
                       theory_p_star_same_grid)
from .style import COLORS, RC, figure

MARKERS = ("o", "s", "^", "D", "v")
RULES = {"hebbian": "Hebbian", "sgd": "SGD"}


def inverse_scaling(ds: xr.Dataset, targets=(0.5, 0.6), table: xr.DataArray | None = None):
    """p* (log) vs N (log) for each target alignment A* and both rules: simulation (p*
    interpolated in log A vs log p between grid points, per seed), theory ``theory.p_star``
    (lines) and the theory passed through the same interpolation on the same grid (×: what a
    perfect simulation would give on this grid); the fitted slopes d log p*/d log N (theory −1)
    in the legend.

    ``ds``: as for :func:`olfacto.plots.alignment_vs_p`.
    """
    import matplotlib as mpl

    from ..model import theory

    cfg = config_of(ds)
    kw = theory_args(cfg)
    table = p_star_table(ds, targets) if table is None else table
    mean, sem = mean_sem(table, SEED)
    ns = ds[N_DIM].values.astype(float)
    n_dense = np.geomspace(ns.min() / 1.4, ns.max() * 1.4, 100)

    with mpl.rc_context(RC):
        fig, axes = figure(ncols=1, width=4.2, height=4.7)
        ax = axes[0, 0]
        for rule in table[RULE_DIM].values:
            color = COLORS.get(str(rule), "k")
            same_grid = theory_p_star_same_grid(ds, table.target.values, str(rule))
            for t, target in enumerate(table.target.values):
                ax.plot(ns, same_grid[:, t], ls="none", marker="x", ms=4, mew=0.8, color="0.35", zorder=4)
                y = mean.sel({RULE_DIM: rule}).isel(target=t)
                slope = loglog_slope(ns, y.values)
                th = theory.p_star(target, n_dense, kw["n_glomeruli"], rule=str(rule), mask=kw["mask"])
                _draw.theory(ax, n_dense, th, color=color, ls="-" if t == 0 else "--", lw=1.0)
                _draw.points(ax, ns, y, sem.sel({RULE_DIM: rule}).isel(target=t), color=color,
                             marker=MARKERS[t % len(MARKERS)], filled=(rule == "hebbian"),
                             label=f"{RULES.get(str(rule), rule)}, A* = {target:g}: slope {slope:.2f}")
        ax.plot([], [], color="0.3", lw=1.0, label="theory p* (mean field), slope −1")
        ax.plot([], [], ls="none", marker="x", ms=4, color="0.35",
                label="theory, interpolated on the simulated grid")
        ax.set(xscale="log", yscale="log", xlabel="cortical neurons $N$",
               ylabel="connection probability $p^*$ for alignment $A^*$")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), fontsize=7, ncols=1)  # off the data
        ax.set_title("inverse scaling: $p^* = K^*(A^*, M)/N$", loc="left")
        _draw.log_axes(fig)
    return fig
