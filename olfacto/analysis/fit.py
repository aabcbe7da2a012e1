"""The fit of the model to the recordings, from its Datasets: distance, best grid point, near-optimal ranges.

Pure functions of the model's measures on a grid (:func:`olfacto.experiments.fit.model_measures`)
and the recorded ones. The distance of a model to a region is

    D = Σ_m ((model_m − data_m) / (1 − chance_m))²

over ``fraction_bilateral``, ``tuning_correlation_mean``, ``decoding_transfer`` and
``laterality_decoding`` (each measure in units of its range above chance), the model's value being
the mean over seeds. The fit is the grid point of least D; its uncertainty is (i) the spread over
seeds of the model's measures there and (ii) the range of each parameter over the *near-optimal*
points, those with D ≤ D_min + 2 s, s the standard error over seeds of D at the optimum.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

from ..recordings import protocol

FIT_MEASURES = ("fraction_bilateral", "tuning_correlation_mean", "decoding_transfer", "laterality_decoding")


def _scale(name: str, n_odors: int) -> float:
    return 1.0 - protocol.MEASURES[name].chance(n_odors)


def distance(model: xr.DataArray, data: xr.DataArray, n_odors: int) -> xr.DataArray:
    """D per region and grid point (and per seed, for its spread): Σ_m ((model − data)/(1 − chance))²."""
    scale = xr.DataArray([_scale(m, n_odors) for m in FIT_MEASURES], dims="measure",
                         coords={"measure": list(FIT_MEASURES)})
    return (((model - data) / scale) ** 2).sum("measure", skipna=False)


class AllDiverged(Exception):
    """No grid point of a region has a model measure for every seed: there is nothing to fit (exit 3, like a
    diverged run)."""


def fit(model: xr.DataArray, data: xr.DataArray, n_odors: int) -> xr.Dataset:
    """The best grid point per region, its uncertainty, and model vs data there (see the module doc).

    A grid point where any seed diverged has no seed mean (NaN) and is never the fit; a region where that holds
    for every point raises :class:`AllDiverged` (``np.nanargmin`` failed on it with "All-NaN slice")."""
    per_seed = distance(model, data, n_odors)
    d = distance(model.mean("seed", skipna=False), data, n_odors)  # xarray skips NaN by default
    regions = list(model.region.values)
    for region in regions:
        if not np.isfinite(d.sel(region=region).values).any():
            raise AllDiverged(f"region {region}: every one of the {d.sel(region=region).size} grid points has a "
                              "seed whose run diverged; lower learning.lr in the grid")
    params = tuple(p for p in d.dims if p != "region")  # in_degree, lr, trial_noise, and any protocol term's axis
    best = {p: [] for p in params}
    near = {p: [] for p in params}
    d_min, tolerance, at_best, spread = [], [], [], []
    for region in regions:
        dr = d.sel(region=region)
        flat = int(np.nanargmin(dr.values))
        idx = np.unravel_index(flat, dr.shape)
        point = {p: dr[p].values[i] for p, i in zip(dr.dims, idx)}
        for p in params:
            best[p].append(point[p])
        seeds = per_seed.sel(region=region, **point).values
        sem = float(np.nanstd(seeds, ddof=1) / math.sqrt(np.sum(np.isfinite(seeds)))) if seeds.size > 1 else 0.0
        tol = float(dr.values[idx]) + 2 * sem
        ok = dr.values <= tol
        for p in params:
            axis = dr.dims.index(p)
            values = dr[p].values[np.any(ok, axis=tuple(a for a in range(dr.ndim) if a != axis))]
            near[p].append([float(values.min()), float(values.max())])
        d_min.append(float(dr.values[idx]))
        tolerance.append(tol)
        m = model.sel(region=region, **point)
        at_best.append(m.mean("seed").values)
        spread.append(m.std("seed", ddof=1).values if m.sizes["seed"] > 1 else np.zeros(len(FIT_MEASURES)))
    out = xr.Dataset(coords={"region": regions, "measure": list(FIT_MEASURES), "bound": ["low", "high"]})
    out["data"] = data.sel(region=regions, measure=list(FIT_MEASURES)).assign_attrs(long_name="recorded measure")
    out["model"] = (("region", "measure"), np.array(at_best), {"long_name": "model at the fit, mean over seeds"})
    out["model_sd"] = (("region", "measure"), np.array(spread), {"long_name": "s.d. over seeds at the fit"})
    for p in params:
        out[f"fit_{p}"] = ("region", np.array(best[p], float), {"long_name": f"fitted {p}"})
        out[f"near_{p}"] = (("region", "bound"), np.array(near[p]),
                            {"long_name": f"range of {p} over near-optimal grid points (D ≤ D_min + 2 s.e.m.)"})
    out["distance"] = ("region", np.array(d_min), {"long_name": "D at the fit"})
    out["tolerance"] = ("region", np.array(tolerance), {"long_name": "D_min + 2 s.e.m. over seeds"})
    out["distance_grid"] = d.assign_attrs(long_name="D over the grid (model mean over seeds)")
    out["model_grid"] = model
    return out


def fitted(result: xr.Dataset) -> list[str]:
    """The fitted parameters of a fit, in grid order: in_degree, lr, trial_noise, then any protocol term's axis."""
    return [str(p) for p in result["distance_grid"].dims if p != "region"]


def table(result: xr.Dataset) -> str:
    """Region × (fitted parameters with near-optimal ranges, then data / model per measure)."""
    lines = []
    for region in result.region.values:
        r = result.sel(region=region)
        terms = "".join(f", {p} = {r[f'fit_{p}'].item():g} [{r[f'near_{p}'].values[0]:g}–{r[f'near_{p}'].values[1]:g}]"
                        for p in fitted(result)[3:])
        lines.append(f"{region}: K = {r.fit_in_degree.item():g} [{r.near_in_degree.values[0]:g}–"
                     f"{r.near_in_degree.values[1]:g}], η = {r.fit_lr.item():g} [{r.near_lr.values[0]:g}–"
                     f"{r.near_lr.values[1]:g}], trial noise = {r.fit_trial_noise.item():g} "
                     f"[{r.near_trial_noise.values[0]:g}–{r.near_trial_noise.values[1]:g}]{terms}, "
                     f"D = {r.distance.item():.3f}")
        lines.append("    " + "  ".join(f"{m}: data {r.data.sel(measure=m).item():.3f} model "
                                        f"{r.model.sel(measure=m).item():.3f}±{r.model_sd.sel(measure=m).item():.3f}"
                                        for m in FIT_MEASURES))
    return "\n".join(lines)


GRID_FLAGS = {"in_degree": "in_degree", "lr": "learning.lr", "trial_noise": "trial_noise"}
"""The ``olfacto fit --grid`` key of each fitted parameter."""


def edge_warnings(result: xr.Dataset) -> list[str]:
    """One line per region and parameter whose near-optimal range reaches an edge of the grid: there the range
    is cut by the grid, not by the data, and the optimum may lie beyond it (a grid-edge optimum reported as a
    tight range is no estimate); a range over the whole grid says the data do not determine the parameter."""
    lines = []
    for region in result.region.values:
        r = result.sel(region=region)
        flags = {**GRID_FLAGS, **{p: f"protocol.{p}" for p in fitted(result)[3:]}}
        for p, flag in flags.items():
            values = np.sort(r.distance_grid[p].values)
            if values.size < 2:
                continue
            low, high = (float(v) for v in r[f"near_{p}"].values)
            best = float(r[f"fit_{p}"])
            at_low, at_high = low <= values[0], high >= values[-1]
            if at_low and at_high:
                lines.append(f"{region}: {p} is near-optimal over the whole grid ({values[0]:g}–{values[-1]:g}): "
                             "the data do not determine it on this grid")
            elif at_high or at_low:
                edge = values[-1] if at_high else values[0]
                word, beyond = ("largest", "larger") if at_high else ("smallest", "smaller")
                lines.append(f"{region}: {p} = {best:g} [{low:g}–{high:g}] reaches the {word} value of the grid "
                             f"({edge:g}){' at its best point' if best == edge else ''}: the optimum may lie beyond; "
                             f"add {beyond} values (--grid {flag}=…)")
    return lines


def summary(result: xr.Dataset) -> dict[str, Any]:
    """``experiment_fit[region][measure] = {"data", "model"}`` and the fitted parameters per region."""
    out: dict[str, Any] = {}
    for region in result.region.values:
        r = result.sel(region=region)
        entry = {m: {"data": float(r.data.sel(measure=m)), "model": float(r.model.sel(measure=m))}
                 for m in FIT_MEASURES}
        if "data_ci" in r:  # the data's bootstrap interval and the model's posterior 95 % spread
            for m in FIT_MEASURES:
                mean, sd = float(r.posterior_model.sel(measure=m)), float(r.posterior_model_sd.sel(measure=m))
                entry[m].update(data_ci=[round(float(v), 4) for v in r.data_ci.sel(measure=m).values],
                                model_posterior=round(mean, 4),
                                model_ci=[round(mean - 1.96 * sd, 4), round(mean + 1.96 * sd, 4)],
                                passes=bool(r.fitted_pass.sel(measure=m)))
        entry["parameters"] = {p: float(r[f"fit_{p}"]) for p in fitted(result)}
        entry["near_optimal"] = {p: [float(v) for v in r[f"near_{p}"].values] for p in fitted(result)}
        out[str(region)] = entry
    return out


def figure_summary(ds: xr.Dataset):
    """``experiment_fit`` for ``summary.json`` (data and fitted model per region and measure)."""
    from .common import Summary

    return Summary({"experiment_fit": summary(ds)}, {}, {"experiment_fit_distance": dict(
        zip(map(str, ds.region.values), map(float, ds.distance.values)))})


