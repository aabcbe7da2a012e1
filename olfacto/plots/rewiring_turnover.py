"""Rewiring over breaths: alignment, surviving synapses and the partners' correlation (beyond the thesis)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..analysis.chapter3 import rewiring_grid
from ..analysis.common import mean_sem
from .rewiring import RULE_COLORS, RULE_STYLE
from .style import RC, figure


def rewiring_turnover(ds: xr.Dataset):
    """At the largest N and the middle K of the grid, against breaths, for each rule (mean ± s.e.m. band over
    seeds): (a) the population alignment, with the best-partners theory (black dashes); (b) the fraction of
    breath-0 synapses that survive; (c) the mean |corr| of a neuron's direct response with its partners'
    (solid) and with random partners' (dotted, the same for every rule).

    ``ds``: from :func:`olfacto.experiments.rewiring.compute`, or the store of an ``olfacto sweep`` over
    ``rewiring.rule`` × ``circuit.connection_prob`` (:func:`olfacto.analysis.chapter3.rewiring_grid`).
    """
    import matplotlib as mpl

    grid = rewiring_grid(ds)
    kdim = grid.K.dims[1]
    n = grid.n_cortex.values[-1]
    sub = grid.sel(n_cortex=n).isel({kdim: grid.sizes[kdim] // 2})
    k = float(sub.K)
    t = grid.breath.values
    with mpl.rc_context(RC):
        fig, axes = figure(ncols=3, width=2.3, height=2.5)
        panels = [("alignment", "population alignment"), ("rewiring_survival", "breath-0 synapses surviving"),
                  ("partner_correlation", "partners' |corr| with the neuron")]
        for ax, (name, label) in zip(axes[0], panels):
            for rule in sub.rule.values:
                if name != "alignment" and rule == "none":
                    continue
                m, e = mean_sem(sub[name].sel(rule=rule))
                color = RULE_COLORS.get(str(rule))
                ax.plot(t, m, color=color, label=str(rule), ls=RULE_STYLE.get(str(rule), {}).get("ls", "-"))
                ax.fill_between(t, m - e, m + e, color=color, alpha=0.2, lw=0)
            ax.set(xlabel="breath", ylabel=label)
        if np.isfinite(float(sub.alignment_best_partners)):
            axes[0, 0].axhline(float(sub.alignment_best_partners), color="k", ls="--", lw=1, label="best partners")
        rand = sub.random_partner_correlation.mean("seed").mean("rule", skipna=True)
        axes[0, 2].plot(t, rand, color="k", ls=":", lw=1, label="random partners")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        extra, extra_labels = axes[0, 2].get_legend_handles_labels()
        fig.legend(handles + extra[-1:], labels + extra_labels[-1:], loc="outside right center", fontsize=6.5)
        fig.suptitle(f"N = {n:,}, K = {k:g}", fontsize=9)
    return fig
