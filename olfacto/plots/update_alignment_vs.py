"""Update alignment at the end of Hebbian learning as one parameter at a time varies (chapter 2, result 6)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import _draw
from .style import RC, OlfactoFigure, log_ticks

# the varied config keys in words (an axis label is never a raw key)
WORDS = {"learning.decay": "weight decay λ", "odors.noise": "nostril noise σ", "circuit.n_glomeruli": "glomeruli M",
         "circuit.connection_prob": "connection prob. p", "circuit.n_cortex": "cortical neurons N",
         "circuit.activation": "cortical nonlinearity φ", "odors.kind": "odor statistics",
         "learning.lr": "learning rate η"}
MARKERS = {"learning.decay": "o", "odors.noise": "v", "circuit.n_glomeruli": "s", "circuit.connection_prob": "^",
           "circuit.n_cortex": "D"}


def point_gain(cfg, key: str, value) -> tuple[float, float, float, float]:
    """(K, M, λ, g = K/(Mλ)) of the base config ``cfg`` with ``key`` set to ``value`` (K = pN: the mean in-degree)."""
    c = cfg.circuit
    n, p, m, lam = c.n_cortex, c.connection_prob, c.n_glomeruli, cfg.learning.decay
    if key == "circuit.n_cortex":
        n = float(value)
    elif key == "circuit.connection_prob":
        p = float(value)
    elif key == "circuit.n_glomeruli":
        m = float(value)
    elif key == "learning.decay":
        lam = float(value)
    k = p * n
    return k, float(m), float(lam), k / (m * lam)


def update_alignment_vs(ds: xr.Dataset):
    """(a–g) One panel per varied parameter: the final cos(ΔW_Hebb, ΔW_SGD), mean ± s.e.m. over seeds
    (points; each seed a small dot), and the mean-field value where the case is analysable (open circles,
    gaussian odors and a linear cortex); categorical values are not joined. (h) The collapse: every
    analysable point against the Hebbian gain g = K/(Mλ), with the fixed-point theory as a curve of g for
    each (K, M) of the data; it crosses zero at g₀ = K/(K + 1) ≈ 1 − 1/K (dashed), not at g = 1.

    ``ds``: from :func:`olfacto.analysis.chapter2.compute_update_alignment_vs`.
    """
    import matplotlib as mpl

    from ..analysis.common import SEED, config_of, mean_sem
    from ..model import theory

    cfg = config_of(ds)
    names = [v for v in ds.data_vars if v.startswith("update_alignment_vs_")]
    ncols = 4
    nrows = -(-len(names) // ncols)
    collapse = []  # (key, g, mean, sem, K, M)
    with mpl.rc_context(RC):
        fig = OlfactoFigure(figsize=(7.0, 1.75 * nrows + 2.4), layout="constrained")
        grid = fig.add_gridspec(nrows + 1, ncols, height_ratios=[1] * nrows + [1.35])
        flat = []
        for i in range(nrows * ncols):
            flat.append(fig.add_subplot(grid[i // ncols, i % ncols], sharey=flat[0] if flat else None))
        for ax in flat[len(names):]:
            ax.set_visible(False)
        for ax in flat:
            if ax not in flat[::ncols]:
                ax.tick_params(labelleft=False)
        for i, (ax, name) in enumerate(zip(flat, names)):
            dim = name[len("update_alignment_vs_"):]
            key = ds[name].attrs.get("key", dim)
            values = ds[dim].values
            numeric = np.issubdtype(values.dtype, np.number)
            x = values.astype(float) if numeric else np.arange(len(values), dtype=float)
            m, e = mean_sem(ds[name], SEED)
            sim = ds[name].transpose(dim, SEED).values
            for s in range(sim.shape[1]):
                ax.plot(x, sim[:, s], ".", color="C0", ms=2, alpha=0.5, zorder=2)
            # a line joins ordered (numeric) values only
            _draw.points(ax, x, m.values, e.values, color="C0", label="simulation (mean ± s.e.m.)", ms=3.5)
            if numeric:
                ax.plot(x, m.values, "-", color="C0", lw=0.8, alpha=0.6, zorder=1)
            th = ds[f"theory_vs_{dim}"].values
            if np.isfinite(th).any():
                ax.plot(x, th, "o", color="k", mfc="none", ms=5.5, mew=0.8, label="mean-field theory", zorder=4)
                for j, v in enumerate(values):
                    if np.isfinite(th[j]) and numeric:
                        k_, m_, _, g = point_gain(cfg, key, v)
                        collapse.append((key, g, float(m.values[j]), float(e.values[j]), k_, m_))
            if numeric and key in ("learning.decay", "circuit.n_glomeruli", "circuit.n_cortex",
                                   "circuit.connection_prob"):
                log_ticks(ax, x)
            if not numeric:
                ax.set_xticks(x, [str(v) for v in values])
                ax.set_xlim(-0.6, len(values) - 0.4)
            ax.axhline(0.0, color="0.8", lw=0.8, zorder=0)
            ax.set(xlabel=WORDS.get(key, key), ylim=(-1.05, 1.05))
            _draw.panel_title(ax, "abcdefghij"[i], "")
        for ax in flat[::ncols]:
            ax.set_ylabel("update alignment")
        # (h) the collapse onto g, (i) zoomed on the zero crossing
        ax = fig.add_subplot(grid[nrows, :3])
        inset = fig.add_subplot(grid[nrows, 3])
        gs = np.array([c[1] for c in collapse])
        g_dense = np.geomspace(gs.min() / 1.3, gs.max() * 1.3, 200)
        # g₀ = K/(K + 1) for the base K (K = 100 at p = 0.2 or N = 1000: 0.99)
        k0 = cfg.circuit.connection_prob * cfg.circuit.n_cortex
        g0 = k0 / (k0 + 1)
        for target in (ax, inset):
            for k_, m_ in sorted({(c[4], c[5]) for c in collapse}):
                lam = k_ / (m_ * g_dense)
                curve = theory.hebbian_update_alignment(cfg.circuit.n_cortex, m_, k_ / cfg.circuit.n_cortex, lam,
                                                        mask=cfg.circuit.mask)
                target.plot(g_dense, curve, "-", color="0.45", lw=0.8, zorder=1)
            for key in dict.fromkeys(c[0] for c in collapse):
                pts = [c for c in collapse if c[0] == key]
                _draw.points(target, [c[1] for c in pts], [c[2] for c in pts], [c[3] for c in pts], color="C0",
                             marker=MARKERS.get(key, "o"), ms=4, filled=False)
            target.axvline(g0, color="C3", ls="--", lw=0.8, zorder=0)
            target.axvline(1.0, color="0.6", ls=":", lw=0.8, zorder=0)
        inset.set(xlim=(0.93, 1.07), ylim=(-0.08, 0.08))
        inset.axhline(0.0, color="0.8", lw=0.8, zorder=0)
        inset.set_xticks([0.95, 1.0, 1.05], ["0.95", "1", "1.05"])
        inset.set_yticks([-0.05, 0, 0.05], ["−0.05", "0", "0.05"])
        inset.set(xlabel="g", ylabel="update alignment")
        _draw.panel_title(inset, "abcdefghij"[len(names) + 1], "near g = 1")
        ax.axhline(0.0, color="0.8", lw=0.8, zorder=0)
        ax.set_xscale("log")
        ticks = [v for v in (0.2, 0.5, 1, 2, 4) if g_dense.min() <= v <= g_dense.max()]
        ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
        ax.xaxis.set_minor_formatter(mpl.ticker.NullFormatter())
        ax.set(xlabel="Hebbian gain g = K/(Mλ)", ylim=(-1.05, 1.05))
        ax.set_ylabel("update alignment")
        _draw.panel_title(ax, "abcdefghij"[len(names)], "every analysable point against the gain g")
        ax.text(0.98, 0.03, f"zero crossing g₀ = K/(K+1) = {g0:.2f} (K = {k0:g}), not 1", transform=ax.transAxes,
                fontsize=7.5, color="C3", va="bottom", ha="right")
        for key in dict.fromkeys(c[0] for c in collapse):  # a legend of what was varied, off the data (lower left)
            ax.plot([], [], ls="none", marker=MARKERS.get(key, "o"), mfc="white", mec="C0", ms=4,
                    label=WORDS.get(key, key))
        ax.legend(loc="lower left", fontsize=7, ncols=2, title="varied", title_fontsize=7)
        # one legend, outside the data: below the panels
        handles = [mpl.lines.Line2D([], [], color="C0", marker="o", ls="none", ms=3.5, label="simulation, mean ± s.e.m."),
                   mpl.lines.Line2D([], [], color="C0", marker=".", ls="none", ms=3, alpha=0.5, label="each seed"),
                   mpl.lines.Line2D([], [], color="k", marker="o", mfc="none", ls="none", ms=5, label="mean-field theory"),
                   mpl.lines.Line2D([], [], color="0.45", lw=0.8, label="theory vs g, each (K, M)"),
                   mpl.lines.Line2D([], [], color="C3", ls="--", lw=0.8, label="zero crossing g₀")]
        fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=7)
    return fig
