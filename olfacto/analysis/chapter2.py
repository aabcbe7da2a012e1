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


def momentum_theory(ds: xr.Dataset) -> xr.Dataset:
    """The heavy-ball mean-square theory of a typical neuron (Marchenko–Pastur eigenvalues) at each K and B of
    ``ds``: the asymptotic bound (:func:`olfacto.model.theory.heavy_ball_sgd_stability_lr`) and the η at which a
    run of the experiment's length first overflows float32 (:func:`olfacto.model.theory.heavy_ball_finite_time_lr`
    on the law's quantiles; L = ln(3.4·10³⁸ / 2N) as for plain SGD with a fixed in-degree)."""
    from ..model import theory

    cfg = config_of(ds)
    beta = cfg.learning.momentum
    batch_dim = dim_name("learning.batch")
    ks, bs = ds.in_degree.values.astype(float), ds[batch_dim].values.astype(int)
    n_breaths = int(ds.attrs.get("n_breaths", cfg.run.n_breaths))
    log_range = math.log(float(np.finfo(np.float32).max)) - math.log(2 * cfg.circuit.n_cortex)
    m, noise = cfg.circuit.n_glomeruli, cfg.odors.noise
    asym = np.array([[theory.heavy_ball_sgd_stability_lr(k, m, noise, b, beta) for b in bs] for k in ks])
    finite = np.array([[theory.heavy_ball_finite_time_lr(theory.mp_quantiles(k, m, noise), n_breaths // b, log_range,
                                                         b, beta) for b in bs] for k in ks])
    dims = ("in_degree", batch_dim)
    return xr.Dataset({"asymptotic": (dims, asym), "finite_time": (dims, finite)},
                      coords={"in_degree": ds.in_degree, batch_dim: ds[batch_dim]}, attrs={"momentum": beta})


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
                    "sgd_stability_theory_over_measured": [float(ratio.min()), float(ratio.max())],
                    **_momentum_details(ds)})


def _momentum_details(ds: xr.Dataset) -> dict:
    """The measured heavy-ball η* against the typical neuron's finite-run theory (a detail: the least stable
    neuron, which the plain-SGD comparison uses, is not computed for momentum)."""
    opt = dim_name("learning.optimizer")
    if "momentum" not in ds[opt].values:
        return {}
    th = momentum_theory(ds)
    measured = ds.lr_boundary.sel({opt: "momentum"})
    ratio = (measured / th.finite_time).values
    return {"sgd_stability_momentum_measured_over_theory": [float(np.nanmin(ratio)), float(np.nanmax(ratio))],
            "sgd_stability_momentum_asymptotic_typical_neuron": th.asymptotic.values.tolist()}


# -- recurrence (result 7) --------------------------------------------------------------------


def summary_recurrence(ds: xr.Dataset) -> Summary:
    """``recurrence_alignment`` at the base p_rec, s and T (closest grid point): with and without recurrence; no
    theory (the alignment under recurrence is measured, docs/theory.md §5c)."""
    cfg = config_of(ds)
    r = cfg.recurrence
    sel = {dim_name("recurrence.connection_prob"): r.connection_prob, dim_name("recurrence.steps"): r.steps,
           dim_name("recurrence.strength"): r.strength}
    point = ds.sel(sel, method="nearest").mean(SEED)
    fixed = float(point.alignment_fixed_point)
    with_rec = float(point.alignment_recurrent)
    # the dense fixed point z* = (I − αA)⁻¹ŷ of the same network is a consistency check of the iteration (z_T → z*
    # as s^T), not a closed-form theory: it is reported among the details, not under "theory", and does not enter
    # max_theory_deviation
    check = {"dense_fixed_point": fixed, "abs_difference_z_T": abs(with_rec - fixed)} if math.isfinite(fixed) else {}
    return Summary({"recurrence_alignment": {"with": with_rec, "without": float(point.alignment)}},
                   {},
                   {"recurrence_alignment_gain": with_rec - float(point.alignment),
                    "recurrence_fixed_point_consistency": check})


# -- the loss landscape (result 9) ------------------------------------------------------------


def landscape_optimal_scale(ds: xr.Dataset) -> np.ndarray:
    """Per network, the a of the minimum of L along the Hebbian direction (b = 0): the loss is exactly quadratic
    in a there (ŷ is linear in W), so a parabola through the grid's values gives it. Shape (seed,) or (1,)."""
    line = ds.loss.sel(b=0.0, method="nearest")
    if SEED not in line.dims:
        line = line.expand_dims({SEED: [0]})
    out = []
    for values in line.transpose(SEED, "a").values:
        c2, c1, _ = np.polyfit(line.a.values.astype(float), values.astype(float), 2)
        out.append(-c1 / (2 * c2))
    return np.asarray(out)


def landscape_theory_scale(cfg) -> float:
    """The loss-optimal scale c* = Mλ/(K + M + 1) of the exact Hebbian fixed point along its own direction
    (docs/theory.md §5f; K = pN)."""
    k = cfg.circuit.connection_prob * cfg.circuit.n_cortex
    return cfg.circuit.n_glomeruli * cfg.learning.decay / (k + cfg.circuit.n_glomeruli + 1)


def summary_landscape(ds: xr.Dataset) -> Summary:
    """``landscape_cos_at_init`` (theory: 1 at W₀ = 0, where ŷ = 0 and both updates are C ⊙ E[y_post y_preᵀ]; the
    deviation is the largest over the networks) and ``landscape_loss_hebbian_over_sgd`` (mean over networks,
    their spread in ``details``), and the loss-optimal scale along the Hebbian direction beside the fixed point's
    c* = Mλ/(K + M + 1) (a detail, not a deviation: W_H is the online solution, with its fluctuations)."""
    cfg = config_of(ds)
    per = SEED in ds.dims and "loss_init" in ds.data_vars

    def values(name):
        return np.atleast_1d(ds[name].values if per else ds.attrs[name]).astype(float)

    cos0 = values("cos_at_init")
    ratio = values("loss_hebbian") / values("loss_sgd")
    th = 1.0 if cfg.learning.init_scale == 0 else None
    scale = landscape_optimal_scale(ds)
    sgd_off = ds.path_sgd.isel(breath=-1).sel(coord="off_plane")
    details = {"landscape_loss": {k: float(values(f"loss_{k}").mean()) for k in ("init", "hebbian", "sgd")},
               "landscape_loss_hebbian_over_sgd_per_network": [float(x) for x in ratio],
               "landscape_networks": int(ratio.size),
               "landscape_optimal_hebbian_scale": {"per_network": [float(x) for x in scale],
                                                   "fixed_point_theory": landscape_theory_scale(cfg)},
               "landscape_sgd_off_plane": float(sgd_off.max())}
    return Summary({"landscape_cos_at_init": float(cos0.min()), "landscape_loss_hebbian_over_sgd": float(ratio.mean())},
                   {"landscape_cos_at_init": th} if th is not None else {},
                   details,
                   {"landscape_cos_at_init": float(np.abs(cos0 - 1.0).max())} if th is not None else {})


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
