"""How the synapse saving of rewiring depends on ζ, the interval, the odor statistics and the nostril noise
(beyond the thesis)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..analysis.chapter3 import dependence_factors, dependence_saving
from ..analysis.common import mean_sem
from ..engine.progress import counted
from .rewiring import RULE_COLORS
from .style import RC, figure, log_ticks

# each factor's axis: its label in words, and whether it is drawn on a log scale (else linear, or categories)
AXES = {"rewiring.fraction": ("pruned per event ζ", True),
        "rewiring.every": ("breaths between events", True),
        "odors.kind": ("odor statistics", False),
        "odors.noise": ("nostril noise σ", False)}
KIND_LABELS = {"gaussian": "gaussian", "sparse": "sparse", "dataset": "measured", "mixture": "mixture"}


def _positions(values) -> tuple[np.ndarray, list[str] | None]:
    """x positions of a factor's values: the numbers themselves, or 0, 1, … with labels for categories."""
    try:
        return np.asarray(values, float), None
    except (TypeError, ValueError):
        return np.arange(len(values), dtype=float), [KIND_LABELS.get(str(v), str(v)) for v in values]


def rewiring_dependence(ds: xr.Dataset):
    """One panel per factor varied alone around the base (ζ, the interval, the odor statistics, the nostril
    noise): the synapse saving K_fixed / K of each rewiring rule at the base K — the K a fixed random mask needs
    to reach the rule's final alignment, read off the fixed mask's measured curve at the same setting, over the
    base K — mean ± s.e.m. over seeds (error bars) and each seed (small dots). The grey line at 1: no saving
    (the fixed mask itself); the dotted vertical line: the base setting. A missing point: the rule's alignment is
    outside the fixed mask's K grid.

    ``ds``: from :func:`olfacto.experiments.rewiring_dependence.compute`.
    """
    import matplotlib as mpl

    factors = dependence_factors(ds)
    rules = [r for r in ds.rule.values if r != "none"]
    ncols = 2
    nrows = -(-len(factors) // ncols)
    small = {"fontsize": 7}  # four panels in one column's width (3.5 in): 7-pt labels, 6.5-pt ticks
    with mpl.rc_context(RC):
        fig, axes = figure(ncols=ncols, nrows=nrows, width=1.75, height=1.45, sharey=True)
        found = []
        for ax, (key, dim) in zip(axes.flat, factors):
            saving = dependence_saving(ds, dim)
            x, labels = _positions(ds[dim].values)
            label, log = AXES.get(key, (key, False))
            for k, rule in enumerate(rules):
                s = saving.sel(rule=rule)
                m, e = mean_sem(s)
                color = RULE_COLORS.get(str(rule))
                # categories (the odor statistics) are not joined by lines: nothing lies between them
                ax.errorbar(x, m, e, color=color, marker="o", ms=3, lw=1, label=str(rule),
                            ls="-" if labels is None else "none")
                for seed in ds.seed.values:
                    ax.plot(x, s.sel(seed=seed), ls="none", marker=".", ms=2.5, color=color, alpha=0.45,
                            label="each seed" if k == 0 and seed == ds.seed.values[0] else None)
                found.append(s.values)
            base = ds[dim].attrs.get("baseline")
            where = [i for i, v in enumerate(ds[dim].values) if str(v) == str(base) or _equal(v, base)]
            if where:
                ax.axvline(x[where[0]], color="0.5", ls=":", lw=0.8, zorder=0, label="base setting")
            ax.axhline(1.0, color="0.6", lw=0.8, zorder=0, label="no saving (fixed mask)")
            if labels is not None:
                ax.set_xticks(x, labels)
                ax.set_xlim(x[0] - 0.5, x[-1] + 0.5)
            elif log:
                log_ticks(ax, ds[dim].values)
                ax.set_xlim(x.min() / 1.4, x.max() * 1.4)
            else:
                ax.set_xticks(x, [f"{v:g}" for v in x])
            ax.set_xlabel(label, **small)
            ax.tick_params(labelsize=6.5)
        for ax in axes.flat[len(factors):]:
            ax.set_visible(False)
        finite = np.concatenate([np.ravel(v) for v in found]) if found else np.array([])
        finite = finite[np.isfinite(finite) & (finite > 0)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.5, 8.0)
        ticks = [t for t in (0.25, 0.5, 1, 2, 4, 8, 16, 32) if lo / 2 < t < hi * 2]
        log_ticks(axes[0, 0], ticks, axis="y")
        axes[0, 0].set_ylim(min(lo, 1.0) / 1.3, hi * 1.3)
        for row in axes:
            row[0].set_ylabel("synapse saving\nK(fixed) / K", **small)
        handles, names = axes[0, 0].get_legend_handles_labels()
        order = [names.index(n) for n in [*map(str, rules), "each seed", "no saving (fixed mask)", "base setting"]
                 if n in names]
        fig.legend([handles[i] for i in order], [names[i] for i in order], loc="outside lower center", ncols=3,
                   fontsize=6.5)
        k_base = int(ds.attrs["base_in_degree"])
        count = counted(ds.sizes["seed"], "seed")
        fig.suptitle(f"Synapses saved by rewiring at K = {k_base} ({count})", fontsize=8)
    return fig


def _equal(a, b) -> bool:
    try:
        return bool(np.isclose(float(a), float(b)))
    except (TypeError, ValueError):
        return False
