"""Parameter sweeps: a Cartesian grid of configs, vmapped, sharded, resumable.

Execution plan (deterministic, so a resumed or sharded sweep computes exactly
the same batches as an uninterrupted one):

1. expand the grid into points, each a validated :class:`~olfacto.config.Config`;
2. group the points by their static part (:class:`~olfacto.params.Spec`: shapes
   and kinds — N, M, K_max, rule, …); points that differ only in seed and traced
   parameters (η, λ, σ, p, …) share one compiled program and run as one ``vmap``;
3. cut each group into batches of at most ``batch_size`` points; batch b belongs
   to shard ``b mod n``;
4. run a batch (its batch axis sharded over all local devices) and write its
   points into ``DIR/sweep.zarr``, then set their ``done`` flags. Zarr writes
   each chunk through a temporary file and a rename, and every grid point is its
   own chunk, so a point is durable the moment its flag is set, and a crash at
   any moment loses at most the batch in flight.

Re-running the same command skips the batches whose points are all done; a
store made from another config or grid is refused.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import xarray as xr
import yaml
import zarr

from . import measures, plasticity, simulate
from . import progress as progress_mod
from .params import group_key
from .config import Config, ConfigError, set_dotted, validate

STORE = "sweep.zarr"
# zarr warns on every string-valued grid coordinate (e.g. learning.rule); the store reads back fine
warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
_SHARED_KEYS = ("run.n_breaths", "run.record_every", "run.progress", "sweep")


@dataclass(frozen=True)
class Point:
    """One grid point: its index along every grid dimension and its config."""

    index: tuple[int, ...]
    config: Config


def parse_grid(texts: Iterable[str]) -> dict[str, list[Any]]:
    """``["learning.lr=0.1,0.01", "seed=0,1"]`` → ``{"learning.lr": [0.1, 0.01], "seed": [0, 1]}``.

    Each value is parsed as YAML, so ``1e-3`` is a number and ``sgd`` a string.
    """
    grid: dict[str, list[Any]] = {}
    for text in texts:
        key, sep, raw = text.partition("=")
        parts = [p.strip() for p in raw.split(",")]
        if not sep or not key.strip() or any(p == "" for p in parts):
            raise ConfigError(f"--grid {text!r}: expected KEY=V1,V2,... with no empty values")
        values = [yaml.safe_load(p) for p in parts]
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"--grid {text!r}: values must be distinct")
        grid[key.strip()] = values
    return grid


def expand(base: dict[str, Any], grid: dict[str, list[Any]]) -> list[Point]:
    """All grid points, in C order over the grid keys (the last key varies fastest)."""
    base = {k: v for k, v in base.items() if k != "sweep"}
    for key in grid:
        if key in _SHARED_KEYS:
            raise ConfigError(f"grid key {key!r}: cannot vary within a sweep (all points share the breath axis); "
                              "run one sweep per value instead")
    points = []
    for index in itertools.product(*[range(len(v)) for v in grid.values()]):
        data = base
        for (key, values), i in zip(grid.items(), index):
            data = set_dotted(data, key, values[i])
        try:
            cfg = validate(data)
        except ConfigError as exc:
            raise ConfigError(f"grid point {dict(zip(grid, (grid[k][i] for k, i in zip(grid, index))))}: {exc}") from None
        points.append(Point(index=tuple(index), config=cfg))
    return points


def bytes_per_run(spec: simulate.Spec) -> int:
    """Rough device memory of one run: slots (idx, valid, W, rule state, gathered), J, probes."""
    opt = spec.learning.optimizer if spec.learning.rule == "sgd" else None
    per_slot = 4 + 1 + 4 * 4 + (8 if opt == "adam" else 4 if opt == "momentum" else 0)
    n = spec.circuit.n_cortex
    chunked = plasticity.work_bytes(simulate.plasticity_plan(spec), spec.learning.rule, n, spec.learning.batch)
    return 2 * n * spec.k_max * per_slot + 4 * n * (2 * spec.circuit.n_glomeruli + 6 * spec.run.n_probe) + chunked


def plan(points: list[Point], batch_size: int | None = None, memory_budget: float = 2e9) -> list[list[Point]]:
    """Batches of points sharing a Spec, in a deterministic order."""
    groups: dict[tuple, list[Point]] = {}
    for p in points:
        groups.setdefault(group_key(p.config), []).append(p)
    batches = []
    for (spec, _), members in groups.items():
        size = batch_size or max(1, min(256, int(memory_budget // max(bytes_per_run(spec), 1))))
        batches += [members[i:i + size] for i in range(0, len(members), size)]
    return batches


def fingerprint(base: dict[str, Any], grid: dict[str, list[Any]]) -> str:
    """Hash of the resolved base config and the grid: a store only accepts its own sweep."""
    resolved = validate({k: v for k, v in base.items() if k != "sweep"}).to_dict()
    text = json.dumps({"config": resolved, "grid": grid}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _template(base: Config, grid: dict[str, list[Any]], n_breath: int, record_every: int, fp: str) -> xr.Dataset:
    shape = tuple(len(v) for v in grid.values()) + (n_breath,)
    dims = tuple(grid) + ("breath",)
    data_vars = {name: (dims, np.full(shape, np.nan), {"long_name": doc}) for name, doc in measures.recorded().items()}
    data_vars["done"] = (dims[:-1], np.zeros(shape[:-1], bool), {"long_name": "grid point finished and written"})
    data_vars["diverged"] = (dims[:-1], np.zeros(shape[:-1], bool), {"long_name": "weights became non-finite"})
    coords = {k: (k, np.asarray(v)) for k, v in grid.items()}
    coords["breath"] = ("breath", np.arange(n_breath) * record_every, {"units": "breaths"})
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update(simulate.provenance(base))
    ds.attrs["grid"] = json.dumps(grid, default=str)
    ds.attrs["sweep_fingerprint"] = fp
    # the learning path of the base config's recording chunks (a grid over static keys may change it)
    ds.attrs["plasticity"] = simulate.plasticity_plan(simulate.spec_of(base)).describe()
    return ds


def _create_store(path: Path, template: xr.Dataset) -> None:
    """Create the store in a temporary folder and rename it into place (atomic; concurrent shards race safely)."""
    tmp = Path(tempfile.mkdtemp(prefix=".sweep-", dir=path.parent))
    try:
        ngrid = template.done.ndim
        recorded = measures.recorded()
        encoding = {name: {"chunks": (1,) * ngrid + ((template.sizes["breath"],) if name in recorded else ())}
                    for name in list(recorded) + ["done", "diverged"]}
        template.to_zarr(tmp / STORE, mode="w", encoding=encoding, consolidated=False)
        try:
            os.rename(tmp / STORE, path)
        except OSError:
            if not path.exists():  # a genuine failure, not a lost race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def open_store(out: str | Path, base: dict[str, Any], grid: dict[str, list[Any]], points: list[Point]) -> Path:
    """Create ``out/sweep.zarr`` or check that the existing one holds this very sweep."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / STORE
    fp = fingerprint(base, grid)
    if not path.exists():
        cfg0 = points[0].config
        _create_store(path, _template(validate({k: v for k, v in base.items() if k != "sweep"}), grid,
                                      cfg0.run.n_breaths // cfg0.run.record_every + 1, cfg0.run.record_every, fp))
    stored = zarr.open_group(str(path), mode="r").attrs.get("sweep_fingerprint")
    if stored != fp:
        raise ConfigError(f"--out {str(out)!r}: {STORE} there holds a different sweep (config or grid changed); "
                          "resume only with the same config and grid, or choose another --out")
    return path


def _write_batch(path: Path, batch: list[Point], ds: xr.Dataset) -> None:
    group = zarr.open_group(str(path), mode="r+")
    for i, p in enumerate(batch):
        run = ds.isel(run=i)
        for name in measures.recorded():
            group[name][p.index] = run[name].values
        group["diverged"][p.index] = bool(run["diverged"].values)
    os.sync()  # data reach the disk before any flag does (ordering survives a power cut)
    for p in batch:  # flags last: a point is done only once all its data are on disk
        group["done"][p.index] = True
    os.sync()


def _done(path: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(path), mode="r")["done"][...])


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"2/4"`` → (1, 4): the second of four disjoint slices (1-based on the command line)."""
    if not text:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected I/N with 1 ≤ I ≤ N, e.g. 1/4") from None
    if not 1 <= i <= n:
        raise ConfigError(f"--shard {text!r}: expected I/N with 1 ≤ I ≤ N, e.g. 1/4")
    return i - 1, n


def run_sweep(base: dict[str, Any], grid: dict[str, list[Any]], out: str | Path, shard: tuple[int, int] = (0, 1),
              batch_size: int | None = None, progress: bool = True) -> xr.Dataset:
    """Run (or resume) the sweep and return the Dataset in ``out/sweep.zarr``."""
    if not grid:
        raise ConfigError("no grid: give --grid KEY=V1,V2,... or a 'sweep:' section in the config")
    points = expand(base, grid)
    path = open_store(out, base, grid, points)
    batches = plan(points, batch_size)
    mine = [b for k, b in enumerate(batches) if k % shard[1] == shard[0]]
    done = _done(path)
    todo = [b for b in mine if not all(done[p.index] for p in b)]
    n_mine = sum(len(b) for b in mine)
    bar = progress_mod.bar(n_mine, "sweep", "point", initial=n_mine - sum(len(b) for b in todo), disable=not progress)
    start = time.perf_counter()
    try:
        for batch in todo:
            result = simulate.run_batch([p.config for p in batch], progress=False, stop_on_divergence=False)
            _write_batch(path, batch, result.dataset)
            bar.update(len(batch))
    finally:
        bar.close()
    ds = open_result(path)
    ds.attrs["wall_time_s"] = time.perf_counter() - start
    return ds


def open_result(path: str | Path) -> xr.Dataset:
    """Load a sweep store (``DIR`` or ``DIR/sweep.zarr``) into memory."""
    path = Path(path)
    if path.name != STORE and (path / STORE).exists():
        path = path / STORE
    with xr.open_zarr(path, consolidated=False) as ds:
        return ds.load()


def grid_from(base: dict[str, Any], cli_grid: Iterable[str]) -> dict[str, list[Any]]:
    """The grid of the YAML ``sweep:`` section, updated by ``--grid`` options."""
    grid = {}
    section = base.get("sweep") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"sweep={section!r}: must map config keys to lists of values")
    for key, values in section.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep.{key}={values!r}: must be a non-empty list of values")
        grid[key] = values
    grid.update(parse_grid(cli_grid))
    return grid


def n_points(grid: dict[str, list[Any]]) -> int:
    return math.prod(len(v) for v in grid.values())
