"""Learning curves of online Hebbian learning for several learning rates η (chapter 1, result 1)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import _draw
from ..analysis import LR_DIM, SEED, config_of, mean_sem, theory_args
from .style import RC, family, figure


def learning_curves(ds: xr.Dataset):
    """(a) population alignment vs breath for each η, with the mean-field learning curve;
    (b) the distance to the network's own fixed point, A_H − A(t), on log–log axes: the
    η-independent early decay ≈ A_H(sM+1)/(2t) and the plateaus D ∝ η.

    ``ds``: dims (learning.lr, seed, breath); optional ``fixed_point_alignment`` (seed),
    the exact fixed point of each seed's network (else the mean-field A_H is used).
    """
    import matplotlib as mpl

    from ..model import theory

    cfg = config_of(ds)
    kw = theory_args(cfg)
    n, p, lam = cfg.circuit.n_cortex, cfg.circuit.connection_prob, cfg.learning.decay
    m, sigma, mask = kw["n_glomeruli"], kw["noise"], kw["mask"]
    a_h = float(theory.hebbian_alignment(n, m, p, mask))
    fixed = ds["fixed_point_alignment"] if "fixed_point_alignment" in ds else xr.full_like(ds[SEED], a_h, dtype=float)
    lrs = ds[LR_DIM].values
    colors = family(len(lrs), "viridis")
    b = ds.breath.values
    idx = _draw.log_indices(b.size, 22)
    t_dense = np.geomspace(max(b[1], 1.0), b[-1], 300)

    with mpl.rc_context(RC):
        fig, axes = figure(ncols=2, width=3.5, height=2.8)
        ax, bx = axes[0]
        for lr, color in zip(lrs, colors):
            run = ds.alignment.sel({LR_DIM: lr})
            mean, sem = mean_sem(run)
            label = f"η = {lr:g}  (τ ≈ {theory.hebbian_relaxation_time(lr, lam):.0f})"
            _draw.points(ax, b[idx], mean.values[idx], sem.values[idx], color=color, label=label, ms=3.5)
            _draw.theory(ax, t_dense, theory.hebbian_learning_curve(t_dense, lr, lam, n, m, p, sigma, mask),
                         color=color)
            gap_mean, gap_sem = mean_sem(fixed - run)
            ok = gap_mean.values[idx] > 0
            _draw.points(bx, b[idx][ok], gap_mean.values[idx][ok], gap_sem.values[idx][ok], color=color, ms=3.5)
            _draw.theory(bx, t_dense, a_h - theory.hebbian_learning_curve(t_dense, lr, lam, n, m, p, sigma, mask),
                         color=color)
        ax.axhline(a_h, color="0.4", ls=":", lw=1.0, label=f"fixed point $A_H$ = {a_h:.3f}")
        ax.set(xscale="log", xlabel="breath $t$", ylabel="alignment $A$", ylim=(0, min(1.0, a_h + 0.12)))
        ax.plot([], [], color="0.3", lw=1.2, label="theory (mean field)")
        ax.legend(loc="lower right", fontsize=6.5, handlelength=1.6)
        _draw.panel_title(ax, "a", f"learning curves (N = {n}, K = {n * p:g}, M = {m})")

        s = (1 + sigma**2) ** 2
        bx.plot(t_dense, a_h * (s * m + 1) / (2 * t_dense), color="0.5", ls="--", lw=1.0,
                label=r"$A_H(sM{+}1)/2t$ (averaging $t$ breaths)")
        bx.set(xscale="log", yscale="log", xlabel="breath $t$", ylabel=r"$A_H - A(t)$")
        smallest = float(theory.hebbian_steady_state_deficit(lrs.min(), lam, n, m, p, sigma, mask))
        bx.set_ylim(bottom=0.3 * smallest)
        bx.legend(loc="lower left", fontsize=6.5)
        _draw.panel_title(bx, "b", "distance to the fixed point")
        _draw.log_axes(fig)
    return fig
