"""The learned network kept on disk: a run's final state, saved and loaded back into a :class:`Result`.

A run's *state* is everything it learned — the weights W_d, the masks C_d (learned when rewiring), the
recurrent A, the rules' optimizer state, the rewiring's history — as the PyTree the loop carries. Its
*world* (the wiring J, the odors, the probes) and parameters are not saved: they are drawn again from
the config and its seed by :func:`olfacto.engine.loop.build`, exactly as the run drew them. So a state
file is N·K-sized (the synapses), never N·M or N² — and it is only valid with the same network: the
file keeps a fingerprint of the world it was learned on, and :func:`load` refuses a world that differs
(another olfacto version drawing the network differently).

Format: one netCDF file (xarray + h5netcdf, like ``result.nc``), one variable per state leaf named by its
path in the PyTree (``parts.projection.weights.L_to_R``), with the configs in ``attrs``; written
atomically (:mod:`olfacto.engine.storage`).

>>> result = olfacto.run(cfg)
>>> result.save("runs/a")                        # runs/a/result.nc and runs/a/state.nc
>>> again = olfacto.load("runs/a")               # a Result: again.weights("L_to_R"), again.measures(x), …

Reading one back is :mod:`olfacto.engine.restore` (it builds the world through the loop, which the Result
that saves itself here must not import).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jax
import numpy as np
import xarray as xr
import yaml


STATE_FILE, RESULT_FILE = "state.nc", "result.nc"
FORMAT = 1  # bumped when the layout of a state file changes


def _name(path: tuple) -> str:
    """A leaf's path as a variable name: ``parts.projection.weights.L_to_R``."""
    out = []
    for p in path:
        key = getattr(p, "key", getattr(p, "name", getattr(p, "idx", None)))
        out.append(str(key))
    return ".".join(out)


def leaves(tree: Any) -> dict[str, np.ndarray]:
    """The state's leaves by name, as host arrays (typed PRNG keys as their raw data)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        out[_name(path)] = np.asarray(leaf)
    return out


def fingerprint(world: Any) -> str:
    """SHA-256 over the world's leaves (J, odors, probes, …): the network a state was learned on."""
    h = hashlib.sha256()
    for name, leaf in sorted(leaves(world).items()):
        h.update(name.encode())
        h.update(str(leaf.dtype).encode() + str(leaf.shape).encode())
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()


def to_dataset(result: Any) -> xr.Dataset:
    """The state of ``result`` (every run of a batch) as a Dataset, with its configs and world fingerprint."""
    data = {}
    for name, leaf in leaves(result.state).items():
        dims = tuple(f"{name}.{i}" for i in range(leaf.ndim))
        data[name] = xr.Variable(dims, leaf.astype(np.int8) if leaf.dtype == bool else leaf,
                                 attrs={"dtype": str(leaf.dtype)})
    return xr.Dataset(data, attrs={"olfacto_state_format": FORMAT,
                                   "configs": yaml.safe_dump([yaml.safe_load(c.to_yaml()) for c in result.configs],
                                                             sort_keys=False),
                                   "world_fingerprint": fingerprint(result.world),
                                   # 1: learned on a breath stream given from Python, which load must be given
                                   "given_stream": int(getattr(result.world, "inputs", None) is not None)})


def save_state(result: Any, folder: str | Path) -> Path:
    """Write ``folder/state.nc`` (the learned network), atomically."""
    from . import storage

    return storage.write_dataset(to_dataset(result), Path(folder) / STATE_FILE)


def save(result: Any, folder: str | Path) -> tuple[Path, Path]:
    """Write ``folder/result.nc`` (the records) and ``folder/state.nc`` (the learned network), atomically."""
    from . import storage

    return storage.write_dataset(result.dataset, Path(folder) / RESULT_FILE), save_state(result, folder)
