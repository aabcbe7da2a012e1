"""Alignment of the Hebbian and SGD update vectors along learning (chapter 1, result 5)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import _draw
from ..model import theory
from ..analysis.chapter1 import chance_level
from ..analysis.common import DECAY_DIM, RULE_DIM, config_of, mean_sem
from .style import RC, family, figure

TITLES = {"hebbian": "along Hebbian learning", "sgd": "along SGD learning"}


def update_alignment(ds: xr.Dataset):
    """cos(ΔW_Hebb, ΔW_SGD), both computed from the current weights on the same breaths, along
    Hebbian learning (a) and along SGD learning (b), mean ± s.e.m. over seeds (thin lines: each seed), for several weight
    decays λ — i.e. gains g = K/(Mλ) of the Hebbian fixed point — against the level of two random
    directions over the synapses.

    ``ds``: dims (learning.rule, [learning.decay,] seed, breath).
    """
    import matplotlib as mpl

    cfg = config_of(ds)
    k = cfg.circuit.connection_prob * cfg.circuit.n_cortex
    m = cfg.circuit.n_glomeruli
    b = ds.breath.values
    chance = chance_level(ds)
    decays = ds[DECAY_DIM].values if DECAY_DIM in ds.dims else np.array([cfg.learning.decay])
    order = np.argsort(-decays)  # increasing gain
    colors = dict(zip(decays[order], family(len(decays), "cividis")))
    rules = [str(r) for r in ds[RULE_DIM].values]
    with mpl.rc_context(RC):
        fig, axes = figure(ncols=len(rules), width=3.3, height=3.6, sharey=True)
        for ax, rule in zip(axes[0], rules):
            for lam in decays[order]:
                sub = ds.update_alignment.sel({RULE_DIM: rule})
                sub = sub.sel({DECAY_DIM: lam}) if DECAY_DIM in ds.dims else sub
                mean, sem = mean_sem(sub)
                color = colors[lam]
                for seed in sub.seed.values:  # every seed thin: the spread is visible even where the s.e.m. is not
                    ax.plot(b, sub.sel(seed=seed), color=color, lw=0.5, alpha=0.6)
                ax.fill_between(b, mean - sem, mean + sem, color=color, alpha=0.3, lw=0)
                ax.plot(b, mean, color=color, lw=1.4, label=f"λ = {lam:g}:  g = K/(Mλ) = {k / (m * lam):g}")
                if rule == "hebbian":  # the mean-field curve (theory.hebbian_update_alignment)
                    t = np.linspace(max(b[1], 1.0), b[-1], 200)
                    ax.plot(t, theory.hebbian_update_alignment(
                        cfg.circuit.n_cortex, m, cfg.circuit.connection_prob, lam, lr=cfg.learning.lr,
                        noise=cfg.odors.noise, t=t, mask=cfg.circuit.mask), color="k", ls=(0, (2, 2)), lw=0.8)
            spread = ds.update_alignment.sel({RULE_DIM: rule}).std("seed", ddof=1).max()
            ax.text(0.98, 0.97, f"{ds.sizes['seed']} seeds (thin lines); s.d. across seeds ≤ {float(spread):.3f}",
                    transform=ax.transAxes, ha="right", va="top", fontsize=6.5, color="0.35")
            ax.axhline(0.0, color="0.75", lw=0.8, zorder=0)
            ax.axhspan(-chance, chance, color="0.3", alpha=0.35, lw=0,
                       label=f"random directions: |cos| ≈ {chance:.3f}")
            ax.set(xlabel="breath $t$", ylim=(-1.05, 1.05))
            if rule == "hebbian":
                ax.plot([], [], color="k", ls=(0, (2, 2)), lw=0.8, label="theory (mean field)")
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=1, fontsize=6.5)  # off the data
            _draw.panel_title(ax, "ab"[rules.index(rule)], TITLES.get(rule, rule))
        axes[0, 0].set_ylabel(r"$\cos(\Delta W_{\mathrm{Hebb}}, \Delta W_{\mathrm{SGD}})$")
        fig.suptitle(f"update alignment (N = {cfg.circuit.n_cortex}, K = {k:g}, M = {m}, η = {cfg.learning.lr:g})",
                     fontsize=9)
    return fig
