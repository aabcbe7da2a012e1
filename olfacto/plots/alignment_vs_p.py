"""Alignment vs the connection probability p for several N, with the mean-field theory (chapter 1)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import _draw
from ..analysis import N_DIM, P_COORD, RULE_DIM, config_of, final, mean_sem, small_p_exponent, theory_alignment
from .style import RC, family, figure


def alignment_vs_p(ds: xr.Dataset, rule: str = "hebbian"):
    """(a) final alignment vs p (log–log) for each N: simulation points, theory lines, and the
    small-p power law A ∝ p^{1/2}; (b) the same against the in-degree K = pN: the curves of all N
    collapse, which is the inverse scaling (p* ∝ 1/N).

    ``ds``: dims (learning.rule, circuit.n_cortex, in_degree, seed, breath), 2-D coordinate
    ``circuit.connection_prob``. The theory is the learning curve at the final breath
    (within 0.3 % of the fixed point A_H = sqrt(K/(κ+M)) for the sizes used).
    """
    import matplotlib.pyplot as plt

    cfg = config_of(ds)
    m = cfg.circuit.n_glomeruli
    t_end = float(ds.breath.values[-1])
    sub = ds.sel({RULE_DIM: rule})
    mean, sem = mean_sem(final(sub.alignment))
    ns = ds[N_DIM].values
    colors = family(len(ns), "plasma")
    slope, slope_theory = small_p_exponent(ds, rule)

    with plt.rc_context(RC):
        fig, axes = figure(ncols=2, width=3.4, height=2.9)
        ax, bx = axes[0]
        for i, (n, color) in enumerate(zip(ns, colors)):
            p = ds[P_COORD].isel({N_DIM: i}).values
            p_dense = np.geomspace(min(p.min(), 0.5 / n), 1.0, 200)
            th = theory_alignment(rule, n, p_dense, cfg, t_end)
            _draw.theory(ax, p_dense, th, color=color)
            marker = "osD^v"[i % 5]
            _draw.points(ax, p, mean.isel({N_DIM: i}), sem.isel({N_DIM: i}), color=color, marker=marker,
                         label=f"N = {n}")
            _draw.theory(bx, p_dense * n, th, color=color, lw=0.9)
            _draw.points(bx, p * n, mean.isel({N_DIM: i}), sem.isel({N_DIM: i}), color=color, marker=marker,
                         filled=False, label=f"N = {n}")
        # the small-p power law, anchored on the smallest N's theory at K = 1
        n0 = ns[0]
        p_low = np.geomspace(0.5 / n0, 0.2 * m / n0, 20)
        a_anchor = float(theory_alignment(rule, n0, 1.0 / n0, cfg, None))
        ax.plot(p_low, 0.8 * a_anchor * np.sqrt(p_low * n0), color="0.4", ls="--", lw=1.0,
                label=r"$\propto p^{1/2}$")
        ax.plot([], [], color="0.3", lw=1.2, label="theory (mean field)")
        ax.set(xscale="log", yscale="log", xlabel="connection probability $p$", ylabel="alignment $A$",
               ylim=(None, 1.15))
        ax.legend(loc="lower right", fontsize=6.5, ncol=1)
        ax.text(0.03, 0.97, f"slope where K ≤ M/5:\n{slope:.2f} (theory {slope_theory:.2f}; p→0: 1/2)",
                transform=ax.transAxes, va="top", fontsize=6.5)
        _draw.panel_title(ax, "a", f"{'Hebbian' if rule == 'hebbian' else rule}: alignment vs p")
        bx.axvline(m, color="0.8", lw=0.8, zorder=0)
        bx.text(m, 0.03, " K = M", fontsize=6.5, color="0.45", transform=bx.get_xaxis_transform())
        bx.set(xscale="log", yscale="log", xlabel="in-degree $K = pN$", ylabel="alignment $A$", ylim=(None, 1.15))
        bx.legend(loc="lower right", fontsize=6.5)
        _draw.panel_title(bx, "b", "the same against K = pN")
        _draw.log_axes(fig)
    return fig
