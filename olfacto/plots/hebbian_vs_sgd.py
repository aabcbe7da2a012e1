"""Hebbian learning vs SGD on the same masked weights (chapter 1, result 4)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import _draw
from ..analysis import N_DIM, P_COORD, RULE_DIM, SEED, config_of, final, mean_sem, p_star_table, theory_alignment
from .style import COLORS, RC, family, figure

RATIO_TARGETS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


def hebbian_vs_sgd(ds: xr.Dataset, n_cortex: int | None = None, targets=RATIO_TARGETS):
    """(a) alignment vs p for both rules at one N (default: the largest), theory lines;
    (b) the ratio p*_Hebb / p*_SGD of the connection probabilities they need for a target
    alignment, per N, with the theory (M+2)/(M(1−A²)) (bernoulli; (M+1)/(M(1−A²)) fixed in-degree).

    ``ds``: as for :func:`olfacto.plots.alignment_vs_p`, with both rules.
    """
    import matplotlib as mpl

    from ..model import theory

    cfg = config_of(ds)
    m, mask = cfg.circuit.n_glomeruli, cfg.circuit.mask
    t_end = float(ds.breath.values[-1])
    ns = ds[N_DIM].values
    n_sel = int(ns.max() if n_cortex is None else n_cortex)
    i_sel = int(np.flatnonzero(ns == n_sel)[0])
    p = ds[P_COORD].isel({N_DIM: i_sel}).values
    mean, sem = mean_sem(final(ds.alignment))
    table = p_star_table(ds, targets, rules=["hebbian", "sgd"])
    ratio = table.sel({RULE_DIM: "hebbian"}) / table.sel({RULE_DIM: "sgd"})
    r_mean, r_sem = mean_sem(ratio, SEED)

    with mpl.rc_context(RC):
        fig, axes = figure(ncols=2, width=3.4, height=3.9)
        ax, bx = axes[0]
        p_dense = np.geomspace(min(p.min(), 0.5 / n_sel), 1.0, 200)
        for rule in ("hebbian", "sgd"):
            color = COLORS[rule]
            _draw.theory(ax, p_dense, theory_alignment(rule, n_sel, p_dense, cfg, t_end if rule == "hebbian" else None),
                         color=color)
            _draw.points(ax, p, mean.sel({RULE_DIM: rule}).isel({N_DIM: i_sel}),
                         sem.sel({RULE_DIM: rule}).isel({N_DIM: i_sel}), color=color,
                         marker="o" if rule == "hebbian" else "s", label={"hebbian": "Hebbian", "sgd": "SGD"}[rule])
        ax.axvline(m / n_sel, color="0.8", lw=0.8, zorder=0)
        ax.text(m / n_sel, 0.03, " K = M", fontsize=6.5, color="0.45", transform=ax.get_xaxis_transform())
        ax.plot([], [], color="0.3", lw=1.2, label="theory: fixed point / optimum")
        ax.set(xscale="log", yscale="log", xlabel="connection probability $p$", ylabel="alignment $A$",
               ylim=(None, 1.15))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=1, fontsize=6.5)  # off the data
        _draw.panel_title(ax, "a", f"same masked weights, N = {n_sel}")

        a_dense = np.linspace(min(targets) - 0.03, max(targets) + 0.05, 100)
        th = [float(theory.p_star_ratio(a, m, n_cortex=n_sel, mask=mask)) for a in a_dense]
        _draw.theory(bx, a_dense, th, label="theory $p^*_H/p^*_S$")
        colors = family(len(ns), "plasma")
        offsets = np.linspace(-0.006, 0.006, len(ns))
        for i, (n, color) in enumerate(zip(ns, colors)):
            _draw.points(bx, np.asarray(targets) + offsets[i], r_mean.isel({N_DIM: i}), r_sem.isel({N_DIM: i}),
                         color=color, label=f"N = {n}", ms=3.5)
        bx.axhline(1.0, color="0.8", lw=0.8, zorder=0)
        bx.set(xlabel="target alignment $A^*$", ylabel=r"$p^*_{\mathrm{Hebb}} / p^*_{\mathrm{SGD}}$",
               ylim=(0.8, None))
        bx.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=1, fontsize=6.5)  # off the data
        _draw.panel_title(bx, "b", "SGD needs modestly sparser wiring")
        _draw.log_axes(fig)
    return fig
