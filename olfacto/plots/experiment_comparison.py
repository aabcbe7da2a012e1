"""Comparison with the experiment's measures: tuning correlations and decoding transfer."""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import _draw
from ..analysis import KIND_DIM, RULE_DIM, config_of, mean_sem, tuning_correlation_theory_samples
from .style import RC, figure

KIND_LABELS = {"gaussian": "gaussian odors", "dataset": "mouse glomerular odors", "mixture": "mixtures",
               "sparse": "sparse odors"}
RULE_LABELS = {"hebbian": "Hebbian", "sgd": "SGD", "oja": "Oja", "covariance": "covariance"}
KIND_COLORS = {"gaussian": "#6c757d", "dataset": "#8e44ad", "mixture": "#2a9d8f", "sparse": "#e9c46a"}
KIND_SHORT = {"gaussian": "gaussian", "dataset": "mouse odors", "mixture": "mixtures", "sparse": "sparse"}
RULE_STYLE = {"hebbian": "-", "sgd": "--", None: "-"}


def _combos(ds):
    kinds = [str(k) for k in ds[KIND_DIM].values]
    rules = [str(r) for r in ds[RULE_DIM].values] if RULE_DIM in ds.dims else [None]
    return [(k, r) for r in rules for k in kinds]


def _sel(ds, kind, rule):
    sub = ds.sel({KIND_DIM: kind})
    return sub.sel({RULE_DIM: rule}) if rule is not None else sub


def experiment_comparison(ds: xr.Dataset):
    """(a, b) distribution over neurons of the direct–indirect tuning correlation at the end of
    learning (pooled over seeds and both directions), per odor environment, for each rule; for
    the Hebbian rule with gaussian odors, the mean-field distribution at the fixed point as
    measured with the same number of probes (r² ~ Beta(K/2, (M−1)/2), plus the sampling scatter
    of a correlation over P probes); (c) decoding transfer — odor identity decoded from the
    indirect responses with templates of the direct responses — along learning, vs chance 1/P.

    ``ds``: dims (odors.kind, [learning.rule,] seed, breath) and ``tuning_correlation``
    (odors.kind, [learning.rule,] seed, direction, neuron).
    """
    import matplotlib as mpl

    cfg = config_of(ds)
    n_probe = cfg.run.n_probe
    bins = np.linspace(-0.4, 1.0, 57)
    kinds = [str(k) for k in ds[KIND_DIM].values]
    rules = [str(r) for r in ds[RULE_DIM].values] if RULE_DIM in ds.dims else [None]
    with mpl.rc_context(RC):
        fig, axes = figure(ncols=len(rules) + 1, width=2.35, height=3.4)
        for j, rule in enumerate(rules):
            ax = axes[0, j]
            for kind in kinds:
                color = KIND_COLORS.get(kind, "k")
                r = _sel(ds, kind, rule).tuning_correlation.values.ravel()
                r = r[np.isfinite(r)]
                ax.hist(r, bins=bins, density=True, histtype="stepfilled", alpha=0.25, color=color)
                ax.hist(r, bins=bins, density=True, histtype="step", lw=1.2, color=color,
                        label=f"{KIND_LABELS.get(kind, kind)}: mean {r.mean():.2f}")
            if rule in ("hebbian", None) and "gaussian" in kinds and cfg.circuit.activation == "linear":
                cfg_g = cfg.model_copy(update={"odors": cfg.odors.model_copy(update={"kind": "gaussian"})})
                sample = tuning_correlation_theory_samples(cfg_g, n_probe)
                dens, edges = np.histogram(sample, bins=bins, density=True)
                _draw.theory(ax, 0.5 * (edges[1:] + edges[:-1]), dens, color="k", lw=1.0,
                             label=f"theory, gaussian: mean {sample.mean():.2f}")
            ax.set(xlabel=r"tuning correlation  corr$_{\mathrm{odors}}(y_i, \hat y_i)$", xlim=(bins[0], bins[-1]))
            top = ax.get_ylim()[1]
            if top > 12:  # a narrow peak near 1 would flatten the others: clip it and say so
                ax.set_ylim(0, 12)
                ax.annotate(f"↑ {top:.0f}", (0.99, 11.2), ha="right", fontsize=6.5, color="0.4")
            else:
                ax.set_ylim(0, 1.5 * top)  # room for the legend
            ax.legend(loc="upper left", fontsize=6.5)
            _draw.panel_title(ax, "abc"[j], f"tuning, {RULE_LABELS.get(rule, rule or 'Hebbian')}")
        axes[0, 0].set_ylabel("density of neurons")

        bx = axes[0, -1]
        b = ds.breath.values
        for kind in kinds:
            for rule in rules:
                color = KIND_COLORS.get(kind, "k")
                mean, sem = mean_sem(_sel(ds, kind, rule).decoding_transfer)
                bx.fill_between(b, mean - sem, mean + sem, color=color, alpha=0.2, lw=0)
                bx.plot(b, mean, color=color, lw=1.3, ls=RULE_STYLE.get(rule, "-"),
                        label=f"{RULE_LABELS.get(rule, rule or '')}, {KIND_SHORT.get(kind, kind)}: {float(mean[-1]):.2f}")
        bx.axhline(1.0 / n_probe, color="0.45", ls=":", lw=1.0, label=f"chance 1/P = {1.0 / n_probe:.2f}")
        bx.set(xlabel="breath $t$", ylabel="decoding transfer (fraction correct)", ylim=(-0.02, 1.05))
        bx.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=1, fontsize=6.5)  # off the data
        k = cfg.circuit.connection_prob * cfg.circuit.n_cortex
        _draw.panel_title(bx, "abc"[len(rules)], "odor identity across sides")
        fig.suptitle(f"comparison with the experiment's measures (N = {cfg.circuit.n_cortex}, K = {k:g}, "
                     f"M = {cfg.circuit.n_glomeruli}, {n_probe} probe odors)", fontsize=9)
    return fig
