"""Inverse scaling: the connection probability p* needed for a target alignment vs N (chapter 1, result 3)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import _draw
from ..analysis import N_DIM, RULE_DIM, SEED, config_of, mean_sem, theory_args, theory_p_star_same_grid
from .style import COLORS, RC, figure

RULES = {"hebbian": "Hebbian", "sgd": "SGD"}


def _minus(text: str) -> str:
    return text.replace("-", "−")


def inverse_scaling(ds: xr.Dataset, target: float | None = None):
    """(a) p* (log) vs N (log) at A* = ``target`` (default: the summary's, 0.5): each seed's p* (small dots;
    the final alignment interpolated log-linearly in p between the K of the grid), their mean ± s.e.m., the
    fitted line with its 95 % confidence band (:func:`olfacto.analysis.inverse_scaling.slope_fit`), the
    mean-field theory ``theory.p_star`` and the theory passed through the same interpolation (×);
    (b) K* = p*N, in which a slope −1 is a flat line, with the same theory.

    ``ds``: the ``inverse_scaling`` experiment's (dims learning rule, N, K, seed, breath; coordinate p).
    """
    import matplotlib as mpl

    from ..analysis.inverse_scaling import LEVEL, TARGET, fit_table
    from ..model import theory

    target = TARGET if target is None else float(target)
    cfg = config_of(ds)
    kw = theory_args(cfg)
    ns = ds[N_DIM].values.astype(float)
    n_dense = np.geomspace(ns.min() / 1.5, ns.max() * 1.5, 100)
    seeds = ds.sizes[SEED]

    with mpl.rc_context(RC):
        fig, axes = figure(ncols=2, width=3.4, height=3.0)
        ax_p, ax_k = axes[0]
        for rule in ds[RULE_DIM].values:
            rule = str(rule)
            color = COLORS.get(rule, "k")
            table, fit = fit_table(ds, target, rule)
            mean, sem = mean_sem(np.log(table), SEED)  # the fit's own statistics: mean ± s.e.m. of log p*
            p_mean, k_mean = np.exp(mean.values), np.exp(mean.values) * ns
            lo_hi = np.exp(np.stack([mean.values - sem.values, mean.values + sem.values]))
            ci = fit["ci"]
            for s in range(seeds):
                ax_p.plot(ns * np.exp(0.06 * (s - (seeds - 1) / 2)), table.isel({SEED: s}).values, ls="none",
                          marker=".", ms=3, color=color, alpha=0.5, zorder=3,
                          label=f"each seed ({seeds} networks per N)" if s == 0 else None)
            _draw.points(ax_p, ns, p_mean, np.abs(lo_hi - p_mean), color=color, marker="o",
                         label=f"{RULES.get(rule, rule)}: mean ± s.e.m.", zorder=4)
            u = np.log(n_dense)
            line = np.exp(fit["intercept"] + fit["slope"] * u)
            u0 = np.mean(np.log(fit["x"]))  # the band of slopes in the interval, pivoting about the data's centre
            band = np.exp(fit["intercept"] + fit["slope"] * u0 + np.outer([ci[0], ci[1]], u - u0))
            ax_p.plot(n_dense, line, color=color, lw=1.0, ls=":", zorder=3,
                      label=_minus(f"fit: slope {fit['slope']:.4f}, {LEVEL:.0%} interval [{ci[0]:.4f}, {ci[1]:.4f}]"))
            ax_p.fill_between(n_dense, band.min(axis=0), band.max(axis=0), color=color, alpha=0.2, lw=0, zorder=2)
            th = theory.p_star(target, n_dense, kw["n_glomeruli"], rule=rule, mask=kw["mask"])
            _draw.theory(ax_p, n_dense, th, lw=1.0, label="theory p* (mean field), slope −1")
            same_grid = theory_p_star_same_grid(ds, [target], rule)[:, 0]
            ax_p.plot(ns, same_grid, ls="none", marker="x", ms=4, mew=0.8, color="0.35", zorder=5,
                      label="theory, interpolated on the simulated grid")
            # (b) K* = p* N: flat for slope −1
            for s in range(seeds):
                ax_k.plot(ns * np.exp(0.06 * (s - (seeds - 1) / 2)), table.isel({SEED: s}).values * ns, ls="none",
                          marker=".", ms=3, color=color, alpha=0.5, zorder=3, label="each seed" if s == 0 else None)
            _draw.points(ax_k, ns, k_mean, np.abs(lo_hi * ns - k_mean), color=color, marker="o",
                         label=f"{RULES.get(rule, rule)}: K* = p*N, mean ± s.e.m.", zorder=4)
            ax_k.plot(n_dense, line * n_dense, color=color, lw=1.0, ls=":", zorder=3, label="the fit of (a)")
            _draw.theory(ax_k, n_dense, th * n_dense, lw=1.0, label="theory (mean field)")
            ax_k.plot(ns, same_grid * ns, ls="none", marker="x", ms=4, mew=0.8, color="0.35", zorder=5,
                      label="theory, interpolated on the grid")
        ax_p.set(xscale="log", yscale="log", xlabel="cortical neurons $N$",
                 ylabel=f"$p^*$ for alignment $A^* = {target:g}$")
        _draw.panel_title(ax_p, "a", "$p^*$ vs $N$")
        ax_k.set(xscale="log", xlabel="cortical neurons $N$", ylabel="in-degree $K^* = p^* N$")
        lo, hi = ax_k.get_ylim()
        mid = 0.5 * (lo + hi)
        ax_k.set_ylim(min(lo, 0.85 * mid), max(hi, 1.15 * mid))  # a flat line looks flat, not like noise
        _draw.panel_title(ax_k, "b", "$K^* = p^*N$ (flat: slope −1)")
        for ax in (ax_p, ax_k):
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=7, ncols=1)  # off the data
        _draw.log_axes(fig)
    return fig
