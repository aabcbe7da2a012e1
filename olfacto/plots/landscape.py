"""The loss landscape on the plane of the initial, Hebbian and SGD weights (chapter 2, result 9)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..engine.progress import counted
from . import _draw
from .style import COLORS, RC, figure

LOSS_LEVELS = [0.1, 0.125, 0.16, 0.2, 0.25, 0.32, 0.4, 0.5, 0.63, 0.8, 1.0, 1.25, 1.6, 2.0, 2.5, 3.2, 4.0, 5.0]
HEBB, SGD = "white", COLORS["sgd"]


def _per_seed(ds: xr.Dataset, name: str) -> np.ndarray:
    from ..analysis.common import SEED

    if name in ds.data_vars and SEED in ds[name].dims:
        return ds[name].values.astype(float)
    return np.atleast_1d(float(ds.attrs[name]))


def landscape(ds: xr.Dataset):
    """(a) L(W)/L(W₀), L = ½ E‖y − ŷ‖², on the plane through W₀ (square), the Hebbian solution (a = 1, b = 0)
    and the SGD solution, mean over the networks (seeds; each network in its own units of the plane), with each
    network's learning paths (Hebbian white, SGD orange) and the theory's loss-optimal Hebbian scale
    c* = Mλ/(K + M + 1) (star). (b) The cosine between the mean Hebbian update and −∇L across the same plane
    (1: Hebbian learning descends the loss exactly; black line: 0). (c) L/L(W₀) along the Hebbian direction
    (b = 0) for each network, with the exact fixed point's parabola 1 − 2ag + a²g(K + M + 1)/M.

    ``ds``: from :func:`olfacto.experiments.chapter2.compute_landscape` (one network, or a ``seed`` dimension).
    """
    import matplotlib as mpl
    from matplotlib.colors import BoundaryNorm

    from ..analysis.chapter2 import landscape_optimal_scale, landscape_theory_scale
    from ..analysis.common import SEED, config_of

    cfg = config_of(ds)
    if SEED not in ds.dims:
        ds = ds.expand_dims({SEED: [cfg.seed]})
    n_net = ds.sizes[SEED]
    k = cfg.circuit.connection_prob * cfg.circuit.n_cortex
    m, lam = cfg.circuit.n_glomeruli, cfg.learning.decay
    c_star = landscape_theory_scale(cfg)
    a, b = ds.a.values, ds.b.values
    l0 = _per_seed(ds, "loss_init")
    rel = (ds.loss / xr.DataArray(l0, dims=SEED)).mean(SEED).values
    with mpl.rc_context(RC):
        fig, axes = figure(ncols=3, width=2.33, height=3.4)
        ax = axes[0, 0]
        cmap = mpl.colormaps["viridis"]
        levels = [v for v in LOSS_LEVELS if rel.min() / 1.3 <= v <= rel.max() * 1.3]
        cs = ax.contourf(a, b, rel.T, levels=levels, cmap=cmap, norm=BoundaryNorm(levels, cmap.N), extend="both")
        bar = fig.colorbar(cs, ax=ax, orientation="horizontal", location="top", shrink=0.9, pad=0.02)
        ticks = [v for v in (0.1, 0.2, 0.5, 1, 2, 4) if levels[0] <= v <= levels[-1]]
        bar.set_ticks(ticks, labels=[f"{v:g}" for v in ticks])
        bar.set_label(f"L / L(W₀), mean of {counted(n_net, 'network')}")
        ax2 = axes[0, 1]
        cos = ds.cos_hebbian_gradient.mean(SEED).values
        cs2 = ax2.contourf(a, b, cos.T, levels=np.linspace(-1, 1, 21), cmap="RdBu_r")
        ax2.contour(a, b, cos.T, levels=[0.0], colors="k", linewidths=0.8)
        bar2 = fig.colorbar(cs2, ax=ax2, orientation="horizontal", location="top", shrink=0.9, pad=0.02)
        bar2.set_ticks([-1, -0.5, 0, 0.5, 1], labels=["−1", "−0.5", "0", "0.5", "1"])
        bar2.set_label("cos(Hebbian update, −∇L)")
        for target in (ax, ax2):
            for s in range(n_net):
                for name, color in (("hebbian", HEBB), ("sgd", SGD)):
                    path = ds[f"path_{name}"].isel({SEED: s}).values
                    if name == "hebbian":  # white, edged in black: visible on dark and light colours alike
                        target.plot(path[:, 0], path[:, 1], "-", color="k", lw=2.0, zorder=3)
                    target.plot(path[:, 0], path[:, 1], "-", color=color, lw=1.0, alpha=0.95, zorder=3)
                    target.plot(path[-1, 0], path[-1, 1], "o", color=color, mec="k", mew=0.4, ms=4, zorder=4)
            target.plot(0, 0, "s", color="k", mfc="white" if target is ax else "k", ms=4.5, zorder=5)
            target.plot(c_star, 0, "*", color="#ffd000", mec="k", mew=0.5, ms=9, zorder=5)
            target.set(xlabel="a (along W_H − W₀)", xlim=(a[0], a[-1]), ylim=(b[0], b[-1]))
        ax.set_ylabel("b (SGD's orthogonal part)")
        ax2.tick_params(labelleft=False)
        _draw.panel_title(ax, "a", "")
        _draw.panel_title(ax2, "b", "")
        # (c) along the Hebbian direction, each network and the fixed point's parabola
        ax3 = axes[0, 2]
        line = ds.loss.sel(b=0.0, method="nearest") / xr.DataArray(l0, dims=SEED)
        for s in range(n_net):
            ax3.plot(a, line.isel({SEED: s}).values, "-", color=COLORS["hebbian"], lw=0.9, alpha=0.7,
                     label="each network" if s == 0 else None)
        g = k / (m * lam)
        _draw.theory(ax3, a, 1 - 2 * a * g + a**2 * g * (k + m + 1) / m, ls="--",
                     label="fixed-point theory")
        found = landscape_optimal_scale(ds)
        ax3.axvline(c_star, color="#b08f00", lw=0.8, ls=":", zorder=0)
        ax3.plot(c_star, 1 - g * c_star * 1.0, "*", color="#ffd000", mec="k", mew=0.5, ms=9, zorder=5,
                 label=f"c* = Mλ/(K+M+1) = {c_star:.2f}")
        ax3.plot([], [], " ", label=f"minimum found {found.mean():.2f} ± {found.std(ddof=1) if found.size > 1 else 0:.2f}")
        ax3.set(xlabel="a (b = 0): W = a W_H", ylabel="L / L(W₀)", xlim=(a[0], a[-1]))
        ax3.set_ylim(0, float(np.nanmax(line.values)) * 1.1)
        ax3.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=6.5, handlelength=1.6)  # off the data
        _draw.panel_title(ax3, "c", "Hebbian direction")
        handles = [mpl.lines.Line2D([], [], color="k", lw=1.6, label="Hebbian path (white)"),
                   mpl.lines.Line2D([], [], color=SGD, lw=1.2, label="SGD path"),
                   mpl.lines.Line2D([], [], color="k", marker="s", mfc="white", ls="none", ms=4.5, label="W₀ = 0"),
                   mpl.lines.Line2D([], [], color="#ffd000", mec="k", marker="*", ls="none", ms=8,
                                    label="c*: theory's optimal Hebbian scale")]
        fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=7)
    return fig
