"""Reading a saved network back (:mod:`olfacto.engine.checkpoint` writes it): ``olfacto.load(folder)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import xarray as xr
import yaml

from ..config import ConfigError
from .checkpoint import FORMAT, RESULT_FILE, STATE_FILE, fingerprint, leaves


def _state_path(path: Path) -> Path:
    return path / STATE_FILE if path.is_dir() else path


def load(path: str | Path, stream: Any = None) -> Any:
    """A :class:`Result` from a folder written by :func:`save` or ``olfacto run --save-state`` (or its
    ``state.nc``): the state as saved, the world and parameters drawn again from the saved configs, the
    records from ``result.nc`` beside it (an empty Dataset if there is none). ``stream``: the breath stream
    (:func:`olfacto.stream`) the state was learned on, when it was given from Python (it is part of the
    world, and not saved)."""
    from ..config import validate
    from . import loop, storage
    from .result import Result

    path = Path(path)
    state_path = _state_path(path)
    if not state_path.is_file():
        hint = " (run with --save-state, or Result.save)" if path.is_dir() else ""
        raise ConfigError(f"path {str(path)!r}: no saved state {state_path.name!r} there{hint}")
    try:
        ds = storage.read_dataset(state_path)
    except Exception as exc:  # noqa: BLE001 — a damaged file is named, not traced back
        raise ConfigError(f"path {str(state_path)!r}: not a readable state file ({type(exc).__name__})") from None
    if ds.attrs.get("olfacto_state_format") != FORMAT:
        raise ConfigError(f"path {str(state_path)!r}: not an olfacto state file of format {FORMAT} "
                          f"(olfacto_state_format={ds.attrs.get('olfacto_state_format')!r})")
    configs = [validate(c) for c in yaml.safe_load(ds.attrs["configs"])]
    given = bool(int(ds.attrs.get("given_stream", 0)))
    if given and stream is None:
        raise ConfigError(f"path {str(state_path)!r}: learned on a breath stream given from Python; give the same "
                          "one: olfacto.load(path, stream=...)")
    if stream is not None and not given:
        raise ConfigError(f"path {str(state_path)!r}: learned on its config's own breath stream; give no stream")
    batch = loop.build(configs, stream=stream)
    if fingerprint(batch.world) != ds.attrs["world_fingerprint"]:
        raise ConfigError(f"path {str(state_path)!r}: the network drawn from its config differs from the one its "
                          "state was learned on (" + ("another breath stream than the one it was learned on, or "
                                                      if given else "") +
                          "saved by an olfacto that draws networks differently): rerun it")
    template = leaves(batch.state)  # name → host array (typed keys as raw data), in flatten order
    values = []
    for name, want in template.items():
        if name not in ds:
            raise ConfigError(f"path {str(state_path)!r}: no {name!r} in it (saved by another olfacto version)")
        value = ds[name].values
        if value.shape != want.shape:
            raise ConfigError(f"path {str(state_path)!r}: {name} has shape {value.shape}, the config makes "
                              f"{want.shape}")
        values.append(value.astype(want.dtype))
    flat, treedef = jax.tree_util.tree_flatten(batch.state)
    restored = [jax.random.wrap_key_data(v) if jax.dtypes.issubdtype(t.dtype, jax.dtypes.prng_key) else jnp.asarray(v)
                for t, v in zip(flat, values)]
    state = jax.tree_util.tree_unflatten(treedef, restored)
    result_path = (path if path.is_dir() else path.parent) / RESULT_FILE
    records = storage.read_dataset(result_path) if result_path.is_file() else xr.Dataset()
    return Result(dataset=records, world=batch.world, state=state, spec=batch.spec, params=batch.params,
                  configs=list(configs))
