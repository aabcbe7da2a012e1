"""Final alignment against the in-degree K for each rewiring rule (beyond the thesis)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..analysis.chapter3 import rewiring_grid, value_label
from ..analysis.common import mean_sem, selected
from ..engine.progress import counted
from .style import RC, figure, log_ticks

RULE_COLORS = {"none": "#555555", "random": "#9e9e9e", "magnitude": "#8d6e63", "hebbian": "#2a9d8f",
               "gradient": "#e76f51", "cht": "#6a4c93"}
# magnitude and cht end close together (cht's sampled paths on a random graph regrow almost at random): dashes
# and open markers keep the one drawn first visible
RULE_STYLE = {"magnitude": {"ls": "--", "mfc": "none", "ms": 5}, "cht": {"ls": ":"}}


def rewiring(ds: xr.Dataset):
    """One panel per N: the final population alignment (mean ± s.e.m. over seeds) against K for each rule,
    the online Hebbian steady state of a fixed random mask (grey line, theory) and the alignment of the
    Hebbian fixed point on each neuron's K best partners (black dashes, theory): rewiring that chooses by
    correlation moves from the first towards the second.

    ``ds``: from :func:`olfacto.experiments.rewiring.compute`, or the store of an ``olfacto sweep`` over
    ``rewiring.rule`` × ``circuit.connection_prob`` (× ``circuit.n_cortex``, × ``seed``; read by
    :func:`olfacto.analysis.chapter3.rewiring_grid`, K = pN on each panel's axis).
    """
    import matplotlib as mpl

    grid = rewiring_grid(ds)
    fin = grid.alignment.isel(breath=-1)
    with mpl.rc_context(RC):
        ncols = grid.sizes["n_cortex"]
        # the legend beside the panels, within a page's 7.2 in
        fig, axes = figure(ncols=ncols, width=min(7.2, 2.3 * ncols + 1.3) / ncols, height=2.7, sharey=True)
        for ax, n in zip(axes[0], grid.n_cortex.values):
            at = grid.sel(n_cortex=n)
            ks = at.K.values
            for rule in grid.rule.values:
                m, e = mean_sem(fin.sel(rule=rule, n_cortex=n))
                style = {"marker": "o", "ms": 3, **RULE_STYLE.get(str(rule), {})}
                ax.errorbar(ks, m, e, color=RULE_COLORS.get(str(rule)), label=str(rule), **style)
            if np.isfinite(at.alignment_fixed_theory).any():  # theory where the case is analysable
                ax.plot(ks, at.alignment_fixed_theory, color="0.55", lw=3, alpha=0.5, zorder=0,
                        label="fixed mask, theory")
            if np.isfinite(at.alignment_best_partners).any():
                ax.plot(ks, at.alignment_best_partners, "k--", lw=1, label="best partners, theory")
            log_ticks(ax, ks)
            ax.set(xlabel="in-degree K", title=f"N = {n:,}")
        axes[0, 0].set_ylabel("population alignment")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center", fontsize=6.5)  # beside the panels: no text over data
        at = f"; {selection(ds)}" if selection(ds) else ""
        count = counted(grid.sizes["seed"], "seed")
        fig.suptitle(f"Rewired vs fixed inter-hemispheric synapses ({count}{at})", fontsize=9)
    return fig


def selection(ds: xr.Dataset) -> str:
    """``"fraction = 0.2"`` for a selection of a sweep store that fixed keys other than N and the seed (each panel
    names its N; the title counts the seeds), else ``""``."""
    return ", ".join(f"{name} = {value_label(value)}" for name, (key, value) in selected(ds).items()
                     if key not in ("circuit.n_cortex", "seed"))
