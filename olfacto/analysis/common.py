"""What every analysis of stored results needs: dimension names, seed statistics, fits.

Pure functions of xarray Datasets and numpy arrays. The figures (:mod:`olfacto.plots`),
``summary.json`` (:mod:`olfacto.experiments.figures`) and the notebooks call these, so a number in
the summary is the number drawn in the figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
import yaml

from ..config import Config, dim_name, set_dotted, validate

__all__ = ["DECAY_DIM", "KIND_DIM", "K_DIM", "LR_DIM", "N_DIM", "P_COORD", "RULE_DIM", "SEED", "Summary", "config_at",
           "config_of", "crossing", "final", "loglog_slope", "mean_sem", "selected", "steady_state", "theory_args"]

# dimension names of stored results: a config key's identifier-safe name (config.dim_name)
SEED = dim_name("seed")
N_DIM = dim_name("circuit.n_cortex")
K_DIM = "in_degree"
P_COORD = dim_name("circuit.connection_prob")
RULE_DIM = dim_name("learning.rule")
LR_DIM = dim_name("learning.lr")
DECAY_DIM = dim_name("learning.decay")
KIND_DIM = dim_name("odors.kind")


def config_of(ds: xr.Dataset) -> Config:
    """The (base) config a result was made from, as stored in its attributes."""
    return validate(yaml.safe_load(ds.attrs["config"]))


def selected(ds: xr.Dataset) -> dict[str, tuple[str, Any]]:
    """The config keys a selection of a stored result fixed: ``{coordinate: (config key, value)}`` for each scalar
    coordinate that names its key (``config_key``: a sweep store's dimension once one value is selected,
    ``store.sel(n_glomeruli=20)``)."""
    return {str(name): (coord.attrs["config_key"], coord.item()) for name, coord in ds.coords.items()
            if coord.ndim == 0 and coord.attrs.get("config_key")}


def config_at(ds: xr.Dataset) -> Config:
    """The config of a selection of a stored result: :func:`config_of` with the keys it fixed
    (:func:`selected`) set to their values, so a theory computed from it is that point's."""
    raw = yaml.safe_load(ds.attrs["config"])
    for key, value in selected(ds).values():
        raw = set_dotted(raw, key, value)
    return validate(raw)


def theory_args(cfg: Config) -> dict:
    """Keyword arguments of the :mod:`olfacto.model.theory` functions for a config (M, σ, mask)."""
    return {"n_glomeruli": cfg.circuit.n_glomeruli, "noise": cfg.odors.noise, "mask": cfg.circuit.mask}


def mean_sem(da: xr.DataArray, dim: str = SEED) -> tuple[xr.DataArray, xr.DataArray]:
    """Mean and standard error of the mean over ``dim`` (NaNs skipped; s.e.m. 0 for one value)."""
    n = da.count(dim)
    mean = da.mean(dim)
    sd = da.std(dim, ddof=1) if da.sizes[dim] > 1 else xr.zeros_like(mean)
    sem = (sd / np.sqrt(n.where(n > 0))).fillna(0.0)
    return mean, sem


def final(da: xr.DataArray) -> xr.DataArray:
    """The value at the last recorded breath."""
    return da.isel(breath=-1)


def steady_state(da: xr.DataArray, start: float) -> xr.DataArray:
    """Time average over the records at breaths ≥ ``start``."""
    return da.sel(breath=slice(start, None)).mean("breath")


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x over the finite, positive pairs (NaN if < 2)."""
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if np.unique(x[ok]).size < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def crossing(x, y, target: float) -> float:
    """The x at which y first rises through ``target``, interpolating log y linearly in log x.

    Used for p*: the alignment grows as a power of p where it is low, so log–log
    interpolation between neighbouring grid points is nearly exact. NaN when the
    target is not bracketed by the grid.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    ok = np.isfinite(y) & (y > 0) & (x > 0)
    x, y = x[ok], y[ok]
    if x.size < 2:
        return float("nan")
    lx, ly, lt = np.log(x), np.log(y), np.log(target)
    for i in range(x.size - 1):
        lo, hi = ly[i] - lt, ly[i + 1] - lt
        if lo <= 0.0 <= hi and hi > lo:
            f = -lo / (hi - lo)
            return float(np.exp(lx[i] + f * (lx[i + 1] - lx[i])))
    return float("nan")


@dataclass
class Summary:
    """The numbers a figure contributes to ``summary.json``.

    ``values``: simulation numbers (top-level keys of the summary); ``theory``: the theory's
    value for each, under the same key; ``details``: tables behind them; ``deviations``: the
    largest |simulation − theory| of each comparison the theory predicts exactly (their maximum
    is the summary's ``max_theory_deviation``).
    """

    values: dict[str, Any] = field(default_factory=dict)
    theory: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    deviations: dict[str, float] = field(default_factory=dict)

    def merge(self, other: "Summary") -> "Summary":
        return Summary({**self.values, **other.values}, {**self.theory, **other.theory},
                       {**self.details, **other.details}, {**self.deviations, **other.deviations})
