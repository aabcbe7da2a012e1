"""The numbers of the chapter-2 figures (MODEL.md §1, results 6–9), from their Datasets.

Each ``summary_*`` function turns the Dataset of a chapter-2 computation
(:mod:`olfacto.experiments.chapter2`, which runs the simulations) into the
:class:`~olfacto.analysis.common.Summary` of ``summary.json``: pure Dataset → numbers.
The computations:

weight fluctuations and the SGD stability boundary (result 8), recurrence (result 7), the loss
landscape (result 9), the update alignment across parameters (result 6).
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from ..config import dim_name
from .common import SEED, Summary, config_of

__all__ = ["summary_landscape", "summary_recurrence", "summary_sgd_stability", "summary_update_alignment_vs",
           "summary_weight_fluctuations"]


# -- weight fluctuations (result 8) -----------------------------------------------------------


def summary_weight_fluctuations(ds: xr.Dataset) -> Summary:
    """``weight_fluctuation_ratio`` at ηλ = 0.002 and the base M (the closest grid point)."""
    cfg = config_of(ds)
    m_dim, lr_dim = dim_name("circuit.n_glomeruli"), dim_name("learning.lr")
    target = 0.002 / cfg.learning.decay
    sel = {m_dim: cfg.circuit.n_glomeruli, lr_dim: target}
    sim = float(ds.weight_fluctuation_ratio.sel(sel, method="nearest").mean(SEED))
    th = float(ds.theory_windowed.sel(sel, method="nearest"))
    rel = np.abs(ds.weight_fluctuation_ratio.mean(SEED) / ds.theory_windowed - 1)
    return Summary({"weight_fluctuation_ratio": sim}, {"weight_fluctuation_ratio": th},
                   {"weight_fluctuation_max_relative_deviation": float(rel.max())})


# -- SGD stability boundary (result 8) --------------------------------------------------------


def summary_sgd_stability(ds: xr.Dataset) -> Summary:
    """``sgd_stability_lr``: η* of plain SGD with batch 1 at the base K (closest grid point), beside the
    mean-square theory of the same networks for a run of that length; the asymptotic bounds of the
    least stable and of a typical neuron in ``details``."""
    cfg = config_of(ds)
    k = cfg.circuit.connection_prob * cfg.circuit.n_cortex
    point = ds.sel({"in_degree": k, dim_name("learning.batch"): 1}, method="nearest").sel(
        {dim_name("learning.optimizer"): "sgd"})
    plain = ds.sel({dim_name("learning.optimizer"): "sgd"})
    ratio = plain.theory_finite_time / plain.lr_boundary
    rel = np.abs(ratio - 1)
    return Summary({"sgd_stability_lr": float(point.lr_boundary)}, {"sgd_stability_lr": float(point.theory_finite_time)},
                   {"sgd_stability_bracket": [float(point.lr_stable), float(point.lr_unstable)],
                    "sgd_stability_lr_asymptotic_least_stable_neuron": float(point.theory_worst_row),
                    "sgd_stability_lr_asymptotic_typical_neuron": float(point.theory),
                    "sgd_stability_max_relative_deviation": float(rel.max()),
                    # the mean-square theory bounds the typical trajectory's growth from above (Jensen):
                    # a lower bound of the measured η*, tight for K ≥ M/2, looser at small K and large ηλ
                    "sgd_stability_theory_over_measured": [float(ratio.min()), float(ratio.max())]})


# -- recurrence (result 7) --------------------------------------------------------------------


def summary_recurrence(ds: xr.Dataset) -> Summary:
    """``recurrence_alignment`` at the base p_rec, s and T (closest grid point): with and without recurrence."""
    cfg = config_of(ds)
    r = cfg.recurrence
    sel = {dim_name("recurrence.connection_prob"): r.connection_prob, dim_name("recurrence.steps"): r.steps,
           dim_name("recurrence.strength"): r.strength}
    point = ds.sel(sel, method="nearest").mean(SEED)
    fixed = float(point.alignment_fixed_point)
    with_rec = float(point.alignment_recurrent)
    return Summary({"recurrence_alignment": {"with": with_rec, "without": float(point.alignment)}},
                   {"recurrence_alignment": {"with": fixed}},
                   {"recurrence_alignment_gain": with_rec - float(point.alignment)},
                   {} if not math.isfinite(fixed) else {"recurrence_alignment_vs_fixed_point": abs(with_rec - fixed)})


# -- the loss landscape (result 9) ------------------------------------------------------------


def summary_landscape(ds: xr.Dataset) -> Summary:
    """``landscape_cos_at_init`` (theory: 1 at W₀ = 0, where ŷ = 0 and both updates are C ⊙ E[y_post y_preᵀ])
    and ``landscape_loss_hebbian_over_sgd``."""
    cfg = config_of(ds)
    cos0 = float(ds.attrs["cos_at_init"])
    th = 1.0 if cfg.learning.init_scale == 0 else None
    return Summary({"landscape_cos_at_init": cos0,
                    "landscape_loss_hebbian_over_sgd": ds.attrs["loss_hebbian"] / ds.attrs["loss_sgd"]},
                   {"landscape_cos_at_init": th} if th is not None else {},
                   {"landscape_loss": {k: ds.attrs[f"loss_{k}"] for k in ("init", "hebbian", "sgd")},
                    "landscape_sgd_off_plane": float(ds.path_sgd.isel(breath=-1).sel(coord="off_plane"))},
                   {"landscape_cos_at_init": abs(cos0 - 1.0)} if th is not None else {})


# -- update alignment across parameters (result 6) --------------------------------------------


def summary_update_alignment_vs(ds: xr.Dataset) -> Summary:
    """``update_alignment_vs``: per varied parameter, the final update alignment (mean over seeds) at each
    value, with the mean-field theory where the case is analysable; the deviation from theory is
    recorded per parameter."""
    values, th, dev = {}, {}, {}
    for name in [v for v in ds.data_vars if v.startswith("update_alignment_vs_")]:
        dim = name[len("update_alignment_vs_"):]
        mean = ds[name].mean(SEED)
        values[dim] = dict(zip(map(str, ds[dim].values), map(float, mean.values)))
        theory_values = ds[f"theory_vs_{dim}"].values
        th[dim] = dict(zip(map(str, ds[dim].values), map(float, theory_values)))
        finite = np.isfinite(theory_values)
        if finite.any():
            dev[f"update_alignment_vs_{dim}"] = float(np.max(np.abs(mean.values[finite] - theory_values[finite])))
    return Summary({"update_alignment_vs": values}, {"update_alignment_vs": th}, {}, dev)
