"""The speed–accuracy trade-off of online Hebbian learning (chapter 1, result 2)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import _draw
from ..analysis import LR_DIM, config_of, linear_regime, loglog_slope, mean_sem, speed_accuracy_table, theory_args
from .style import COLORS, RC, figure


def speed_accuracy(ds: xr.Dataset, table: xr.Dataset | None = None):
    """(a) steady-state deficit D = A_H − A_∞ vs ηλ (log–log) with theory and the fitted slope;
    (b) the trade-off itself: D vs the relaxation time τ of the weights (fitted to each run's
    weight-rms curve), with the theory curve and its small-η asymptote D = C/τ.

    ``ds``: dims (learning.lr, seed, breath) with ``fixed_point_alignment`` and
    ``fixed_point_weight_rms`` per seed (:func:`olfacto.plots.analysis.hebbian_fixed_point`).
    """
    import matplotlib as mpl

    from ..model import theory

    cfg = config_of(ds)
    kw = theory_args(cfg)
    n, p, lam = cfg.circuit.n_cortex, cfg.circuit.connection_prob, cfg.learning.decay
    m, sigma, mask = kw["n_glomeruli"], kw["noise"], kw["mask"]
    table = speed_accuracy_table(ds) if table is None else table
    lrs = ds[LR_DIM].values
    el = lrs * lam
    d_mean, d_sem = mean_sem(table.deficit)
    tau_mean, tau_sem = mean_sem(table.relaxation_time)
    lin = linear_regime(lrs, lam, cfg)
    slope = loglog_slope(el[lin], d_mean.values[lin])
    dense = np.geomspace(el.min() / 1.5, el.max() * 1.5, 200)
    d_theory = theory.hebbian_steady_state_deficit(dense / lam, lam, n, m, p, sigma, mask)
    tau_theory = theory.hebbian_relaxation_time(dense / lam, lam)
    slope_theory = loglog_slope(el[lin], theory.hebbian_steady_state_deficit(lrs[lin], lam, n, m, p, sigma, mask))
    const = float(theory.speed_accuracy_constant(n, m, p, sigma, mask))

    with mpl.rc_context(RC):
        fig, axes = figure(ncols=2, width=3.4, height=3.8)
        ax, bx = axes[0]
        _draw.theory(ax, dense, d_theory, label="theory $A_H - A_\\infty$")
        ref = el[lin][0] if lin.any() else el[0]
        ax.plot(dense, float(np.interp(ref, dense, d_theory)) * dense / ref, color="0.6", ls="--", lw=1.0,
                label="slope 1 (linear)")
        _draw.points(ax, el, d_mean, d_sem, color=COLORS["hebbian"],
                     label=f"simulation, slope {slope:.2f}\n(theory {slope_theory:.2f}; fit on εR ≤ 0.3)")
        ax.set(xscale="log", yscale="log", xlabel=r"learning rate $\eta\lambda$",
               ylabel=r"steady-state deficit $D = A_H - A_\infty$")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=1, fontsize=6.5)  # off the data
        _draw.panel_title(ax, "a", "accuracy: D ∝ η")

        _draw.theory(bx, tau_theory, d_theory, label="theory (η varies along the curve)")
        bx.plot(tau_theory, const / tau_theory, color="0.6", ls="--", lw=1.0,
                label=f"$D = C/\\tau$, C = {const:.2f} (η → 0)")
        _draw.points(bx, tau_mean, d_mean, d_sem, color=COLORS["hebbian"], label="simulation")
        bx.errorbar(tau_mean, d_mean, xerr=tau_sem, ls="none", color=COLORS["hebbian"], elinewidth=0.9, capsize=2)
        for x, y, e in zip(tau_mean.values, d_mean.values, el):
            bx.annotate(f"{e:g}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=6.5, color="0.35")
        bx.set(xscale="log", yscale="log", xlabel=r"relaxation time $\tau$ (breaths)",
               ylabel=r"deficit $D$")
        bx.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=1, fontsize=6.5)  # off the data
        _draw.panel_title(bx, "b", "speed vs accuracy (labels: ηλ)")
        _draw.log_axes(fig)
    return fig
