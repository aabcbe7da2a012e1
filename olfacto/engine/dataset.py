"""A batch's records as an ``xarray.Dataset``: named dims, coordinates, the resolved config in attrs.

Each record's variables become data variables with dims (``run``[, its time dim], *the variable's
dims*); the runs are labelled by the config keys that differ between them (named as in a sweep
store, :func:`olfacto.config.dim_name`), and the attrs carry the resolved config, versions,
device, wall time and how each component learned.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
import xarray as xr

from ..config import Config
from ..model import network
from ..model.circuit import DIRECTIONS

DIM_ATTRS = {  # long_name: what a plot's axis shows; description: the sentence
    "run": {"long_name": "run", "description": "run of the batch"},
    "breath": {"long_name": "breath", "description": "breaths learned before the record", "units": "breaths"},
    "direction": {"long_name": "direction", "description": "odor side _to_ receiving cortex (pre → post)"},
    "neuron": {"long_name": "neuron", "description": "neuron of the receiving cortex"},
}


def to_dataset(configs: Sequence[Config], spec: Any, values: dict[str, tuple[tuple[str, ...], np.ndarray, dict]],
               times: dict[str, np.ndarray], diverged: np.ndarray, wall_time: float) -> xr.Dataset:
    """``values``: name → (dims, array with a leading run axis, attrs); ``times``: time dim → breaths."""
    data_vars = {name: (("run", *dims), array, attrs) for name, (dims, array, attrs) in values.items()}
    data_vars["diverged"] = (("run",), np.asarray(diverged, bool), {"long_name": "diverged", "description": "a "
                                                                    "learned component became non-finite"})
    coords = {"run": ("run", np.arange(len(configs)), DIM_ATTRS["run"])}
    for dim, breaths in times.items():
        coords[dim] = (dim, np.asarray(breaths), DIM_ATTRS["breath"] if dim == "breath" else
                       {"long_name": "breath", "units": "breaths",
                        "description": f"breaths learned before the {dim.removesuffix('_breath')} record"})
    used = {d for dims, _, _ in values.values() for d in dims}
    if "direction" in used:
        coords["direction"] = ("direction", list(DIRECTIONS), DIM_ATTRS["direction"])
    ds = xr.Dataset(data_vars, coords=coords)
    plans = network.plans(spec)
    return ds.assign_coords(run_labels(configs)).assign_attrs(
        provenance(configs[0], wall_time), slots_per_direction=int(spec.projection.slots * spec.circuit.n_cortex),
        plasticity=plans["projection"],  # the learning path a recording chunk of the projection took
        **{f"plasticity_{name}": plan for name, plan in plans.items() if name != "projection"})


def run_labels(configs: Sequence[Config]) -> dict[str, tuple]:
    """Coordinates along ``run``: the seed and every config key whose value differs between the runs,
    named as in a sweep store (:func:`olfacto.config.dim_name`), with the key in their attrs."""
    from ..config import dim_name, get_dotted, key_attrs, leaf_keys

    labels = {"seed": ("run", [c.seed for c in configs], key_attrs("seed"))}
    for key in leaf_keys():
        if key in ("seed", "sweep"):
            continue
        values = [get_dotted(c, key) for c in configs]
        if any(v != values[0] for v in values[1:]):
            labels[dim_name(key)] = ("run", values, key_attrs(key))
    return labels


def provenance(cfg: Config, wall_time: float | None = None) -> dict[str, Any]:
    """The resolved config, versions and device of a result."""
    from .. import __version__

    attrs = {
        "config": cfg.to_yaml(),
        "olfacto_version": __version__,
        "jax_version": jax.__version__,
        "device": ", ".join(sorted({f"{d.platform}:{d.device_kind}" for d in jax.devices()})),
    }
    if wall_time is not None:
        attrs["wall_time_s"] = float(wall_time)
    return attrs
