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
   own chunk; the point's chunk files (and their folders) are fsynced before its
   flag is set, so a point is durable the moment its flag is, and a crash at
   any moment loses at most the batch in flight.

Re-running the same command skips the batches whose points are all done; a
store made from another config or grid is refused. The store is addressed by
key and value, never by position: its ``grid`` attribute fixes the layout, and
each point finds its index there by its coordinate values, so the grid keys
may come in any order. Every finished point carries a ``checksum`` (SHA-256 of
its recorded values, first 8 bytes); a resume re-reads and re-checks every
finished point, names the damaged ones on stderr and computes them again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import shutil
import tempfile
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import xarray as xr
import zarr

from . import measures, resources, simulate
from . import progress as progress_mod
from .circuit import DIRECTIONS
from .config import (LATE_DEFAULTS, Config, ConfigError, check_unique, dim_name, key_attrs, parse_value, set_dotted,
                     validate)
from .params import group_key
from .virtual_experiment import LONG_NAMES as PROTOCOL_NAMES

STORE = "sweep.zarr"
STORE_FORMAT = 3  # 2: per-point checksums, layout by coordinate value; 3: identifier-safe dims
_SHARED_KEYS = ("run.n_breaths", "run.record_every", "run.progress", "sweep")


@dataclass(frozen=True)
class Point:
    """One grid point: its index along every grid dimension, its config and its grid values."""

    index: tuple[int, ...]
    config: Config
    values: tuple[tuple[str, Any], ...] = ()  # (key, value) per grid key

    def label(self) -> str:
        return "(" + ", ".join(f"{k}={v!r}" for k, v in self.values) + ")"


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
        values = [parse_value(p, f"--grid {text!r}") for p in parts]
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"--grid {text!r}: values must be distinct")
        if key.strip() in grid:
            raise ConfigError(f"--grid {key.strip()!r}: given twice; give each key once")
        grid[key.strip()] = values
    return grid


def expand(base: dict[str, Any], grid: dict[str, list[Any]]) -> list[Point]:
    """All grid points, in C order over the grid keys (the last key varies fastest)."""
    base = {k: v for k, v in base.items() if k != "sweep"}
    for key in grid:
        if key in _SHARED_KEYS:
            raise ConfigError(f"grid key {key!r}: cannot vary within a sweep (all points share the breath axis); "
                              "run one sweep per value instead")
    check_unique(list(grid), "--grid")
    points, seen = [], {}
    for index in itertools.product(*[range(len(v)) for v in grid.values()]):
        data = base
        values = tuple((key, grid[key][i]) for key, i in zip(grid, index))
        for key, value in values:
            data = set_dotted(data, key, value)
        try:
            cfg = validate(data)
        except ConfigError as exc:
            raise ConfigError(f"grid point {dict(values)}: {exc}") from None
        twin = seen.setdefault(cfg.model_dump_json(), values)
        if twin is not values:
            key, a, b = next((k, a, b) for (k, a), (_, b) in zip(twin, values) if _token(a) != _token(b))
            raise ConfigError(f"--grid {key}: values {a!r} and {b!r} give the same config; give each value once")
        points.append(Point(index=tuple(index), config=cfg, values=values))
    return points


def plan(points: list[Point], batch_size: int | None = None, memory_budget: float = 2e9) -> list[list[Point]]:
    """Batches of points sharing a Spec, in a deterministic order."""
    groups: dict[tuple, list[Point]] = {}
    for p in points:
        groups.setdefault(group_key(p.config), []).append(p)
    batches = []
    for members in groups.values():
        per_run = resources.bytes_per_run(members[0].config)  # members share the shapes the estimate depends on
        size = batch_size or max(1, min(256, int(memory_budget // max(per_run, 1))))
        batches += [members[i:i + size] for i in range(0, len(members), size)]
    return batches


def fingerprint(base: dict[str, Any], grid: dict[str, list[Any]]) -> str:
    """Hash of the resolved base config and the grid: a store only accepts its own sweep."""
    resolved = validate({k: v for k, v in base.items() if k != "sweep"}).to_dict()
    for key, default in LATE_DEFAULTS.items():  # keys newer than stored results, at their defaults
        section, _, leaf = key.partition(".")
        if resolved.get(section, {}).get(leaf) == default and key not in grid:
            del resolved[section][leaf]
            if not resolved[section]:
                del resolved[section]
    text = json.dumps({"config": resolved, "grid": grid, "layout": STORE_FORMAT}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _coordinate(values: list[Any]) -> np.ndarray:
    """A grid coordinate; text as variable-length UTF-8 (a data type Zarr v3 specifies, so no warning)."""
    array = np.asarray(values)
    return array.astype(object) if array.dtype.kind == "U" else array


def _template(base: Config, grid: dict[str, list[Any]], n_breath: int, record_every: int, fp: str,
              recurrent: bool = False, with_protocol: bool = False) -> xr.Dataset:
    shape = tuple(len(v) for v in grid.values()) + (n_breath,)
    dims = tuple(dim_name(k) for k in grid) + ("breath",)  # identifier-safe: ds.sel(connection_prob=…)
    data_vars = {name: (dims, np.full(shape, np.nan), {"long_name": doc})
                 for name, doc in measures.recorded(recurrent).items()}  # recurrent: some point has recurrence
    if "circuit.n_cortex" not in grid:  # one N for every point: per-neuron values fit one array
        data_vars[PER_NEURON] = (dims[:-1] + ("direction", "neuron"),
                                 np.full(shape[:-1] + (2, base.circuit.n_cortex), np.nan, np.float32),
                                 {"long_name": "per-neuron direct–indirect tuning correlation at the last breath"})
    if with_protocol:  # the experiment's measures on the model (protocol.enabled at some point)
        for name, doc in PROTOCOL_NAMES.items():
            data_vars[name] = (dims[:-1], np.full(shape[:-1], np.nan), {"long_name": doc})
    data_vars["done"] = (dims[:-1], np.zeros(shape[:-1], bool), {"long_name": "grid point finished and written"})
    data_vars["diverged"] = (dims[:-1], np.zeros(shape[:-1], bool), {"long_name": "weights became non-finite"})
    data_vars["checksum"] = (dims[:-1], np.zeros(shape[:-1], np.uint64),
                             {"long_name": "first 8 bytes of the SHA-256 of the point's recorded values"})
    coords = {dim_name(k): (dim_name(k), _coordinate(v), key_attrs(k)) for k, v in grid.items()}
    coords["direction"] = ("direction", _coordinate(list(DIRECTIONS)), {"long_name": "odor side _to_ receiving cortex (pre → post)"})
    coords["breath"] = ("breath", np.arange(n_breath) * record_every,
                        {"long_name": "breaths learned before the record", "units": "breaths"})
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update(simulate.provenance(base))
    ds.attrs["grid"] = json.dumps(grid, default=str)
    ds.attrs["sweep_fingerprint"] = fp
    # the learning path of the base config's recording chunks (a grid over static keys may change it)
    ds.attrs["plasticity"] = simulate.plasticity_plan(simulate.spec_of(base)).describe()
    ds.attrs["store_format"] = STORE_FORMAT
    return ds


_POINT_VARS = ("diverged", "checksum", "done")
PER_NEURON = "tuning_correlation"


def _data_names(names) -> list[str]:
    """The variables that hold a point's values (checksummed): the recorded measures (those on refined
    responses where the store has them), and the per-neuron tuning correlations where the store has
    them (``names``: the store's arrays)."""
    return [n for n in [*measures.recorded(recurrent=True), PER_NEURON, *PROTOCOL_NAMES] if n in names]


def _fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (deepest first), then ``root``."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            _fsync(Path(folder) / name)
        _fsync(Path(folder))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_store(path: Path, template: xr.Dataset) -> None:
    """Create the store in a temporary folder and rename it into place (atomic; concurrent shards race safely)."""
    tmp = Path(tempfile.mkdtemp(prefix=".sweep-", dir=path.parent))
    try:
        ngrid = template.done.ndim
        recorded = measures.recorded(recurrent=True)
        encoding = {name: {"chunks": (1,) * ngrid + ((template.sizes["breath"],) if name in recorded else ())}
                    for name in [*recorded, *_POINT_VARS] if name in template}
        if PER_NEURON in template:
            encoding[PER_NEURON] = {"chunks": (1,) * ngrid + template[PER_NEURON].shape[-2:]}
        encoding.update({name: {"chunks": (1,) * ngrid} for name in PROTOCOL_NAMES if name in template})
        with warnings.catch_warnings():  # consolidated metadata is a zarr-python extension to Zarr v3: intended
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            # consolidated, so xr.open_zarr opens it at once and without a warning; the metadata never
            # changes after creation (points only write chunks), so it never goes stale
            template.to_zarr(tmp / STORE, mode="w", encoding=encoding, consolidated=True)
        _fsync_tree(tmp / STORE)
        try:
            os.rename(tmp / STORE, path)
        except OSError:
            if not path.exists():  # a genuine failure, not a lost race
                raise
        _fsync(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _open_group(path: Path, mode: str = "r") -> zarr.Group:
    """The store's group with every array it must hold; a damaged store is a one-line ConfigError."""
    try:
        with warnings.catch_warnings():  # a damaged member warns before it fails: the error below says it once
            warnings.simplefilter("ignore", UserWarning)
            group = zarr.open_group(str(path), mode=mode, use_consolidated=False)  # the files, not their summary
            attrs = dict(group.attrs)
            names = set(group.array_keys())
    except Exception as exc:  # zarr raises many kinds on damaged metadata
        raise ConfigError(f"{path}: damaged, its metadata cannot be read ({_first_line(exc)}); "
                          "move it away or choose another --out") from None
    if attrs.get("store_format") != STORE_FORMAT:
        raise ConfigError(f"{path}: written by an older olfacto (store format {attrs.get('store_format', 1)}; "
                          f"this one reads format {STORE_FORMAT}); "
                          "move it away or choose another --out")
    missing = [n for n in [*measures.recorded(), *_POINT_VARS] if n not in names]  # those every store has
    if missing or "grid" not in attrs:
        raise ConfigError(f"{path}: damaged, {'array ' + missing[0] if missing else 'its grid attribute'} is missing; "
                          "move it away or choose another --out")
    return group


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def open_store(out: str | Path, base: dict[str, Any], grid: dict[str, list[Any]], points: list[Point]) -> Path:
    """Create ``out/sweep.zarr`` or check that the existing one holds this very sweep."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / STORE
    fp = fingerprint(base, grid)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {str(out)!r}: {str(path)!r} is a file; expected a sweep store or nothing")
    if not path.exists():
        cfg0 = points[0].config
        recurrent = any(p.config.recurrence.connection_prob > 0 for p in points)
        with_protocol = any(p.config.protocol.enabled for p in points)
        _create_store(path, _template(validate({k: v for k, v in base.items() if k != "sweep"}), grid,
                                      cfg0.run.n_breaths // cfg0.run.record_every + 1, cfg0.run.record_every, fp,
                                      recurrent, with_protocol))
    stored = _open_group(path).attrs.get("sweep_fingerprint")
    if stored != fp:
        raise ConfigError(f"--out {str(out)!r}: {STORE} there holds a different sweep (config or grid changed); "
                          "resume only with the same config and grid, or choose another --out")
    return path


def _token(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def locate(path: Path, points: list[Point]) -> list[Point]:
    """Each point with its index in the store's layout, found by its coordinate values; in store order.

    The layout is the ``grid`` attribute of the store (the key order of the command that created it),
    so the same sweep given with its grid keys in another order reads and writes the same cells.
    """
    layout = json.loads(_open_group(path).attrs["grid"])
    lookup = {k: {_token(v): i for i, v in enumerate(values)} for k, values in layout.items()}
    located = []
    for p in points:
        values = dict(p.values)
        try:
            index = tuple(lookup[k][_token(values[k])] for k in layout)
        except KeyError:
            raise ConfigError(f"{path}: grid point {p.label()} is not in this store's grid {layout}") from None
        located.append(replace(p, index=index))
    return sorted(located, key=lambda p: p.index)


def checksum(values: dict[str, np.ndarray], diverged: bool) -> np.uint64:
    """First 8 bytes of the SHA-256 of a point's recorded values (float64, NaN canonical) and its flag."""
    digest = hashlib.sha256()
    for name in sorted(values):
        v = np.asarray(values[name], np.float64)
        digest.update(name.encode() + np.where(np.isnan(v), np.nan, v).tobytes())
    digest.update(b"\x01" if diverged else b"\x00")
    return np.frombuffer(digest.digest()[:8], "<u8")[0]


def _chunk_files(path: Path, group: zarr.Group, name: str, index: tuple[int, ...]) -> Path:
    array = group[name]
    coords = index + (0,) * (array.ndim - len(index))
    return path / name / array.metadata.encode_chunk_key(coords)


def _fsync_chunks(path: Path, group: zarr.Group, cells: list[tuple[str, tuple[int, ...]]]) -> None:
    """fsync the chunk files of ``cells`` and every folder from them up to the store: only what was written."""
    folders = set()
    for name, index in cells:
        file = _chunk_files(path, group, name, index)
        if file.exists():  # a chunk equal to the fill value is not stored (or was just removed)
            _fsync(file)
        folder = file.parent
        while folder != path.parent:
            if folder.exists():
                folders.add(folder)
            folder = folder.parent
    for folder in sorted(folders, key=lambda f: -len(f.parts)):
        _fsync(folder)


def _write_batch(path: Path, batch: list[Point], ds: xr.Dataset) -> None:
    """Write the points' data and checksums, fsync them, then set and fsync their done flags."""
    group = zarr.open_group(str(path), mode="r+")
    names = _data_names(set(group.array_keys()))
    data = []
    for i, p in enumerate(batch):
        run = ds.isel(run=i)
        values = {name: np.asarray(run[name].values if name in run else  # e.g. a point without recurrence
                                   np.full(group[name].shape[len(p.index):], np.nan), np.float64) for name in names}
        diverged = bool(run["diverged"].values)
        for name, v in values.items():
            group[name][p.index] = v
        group["diverged"][p.index] = diverged
        group["checksum"][p.index] = checksum(values, diverged)
        data += [(name, p.index) for name in [*values, "diverged", "checksum"]]
    _fsync_chunks(path, group, data)  # data reach the disk before any flag does (ordering survives a power cut)
    for p in batch:  # flags last: a point is done only once all its data are on disk
        group["done"][p.index] = True
    _fsync_chunks(path, group, [("done", p.index) for p in batch])


def _read_block(array: zarr.Array, first: int, indices: list[tuple[int, ...]]) -> dict[tuple[int, ...], Any]:
    """The values at ``indices`` (all with ``index[0] == first``), None where a chunk cannot be read.

    One read of the block ``array[first]``; cell by cell only after that failed (a damaged chunk).
    """
    try:
        block = array[first]
        return {i: block[i[1:]] for i in indices}
    except Exception:  # zarr and the codecs raise many kinds on a damaged chunk: find which
        out = {}
        for i in indices:
            try:
                out[i] = array[i]
            except Exception:
                out[i] = None
        return out


def verify(path: Path, points: list[Point], log=None) -> list[Point]:
    """Re-read every point, re-check the checksum of each finished one, reset the damaged ones.

    A point is damaged when a chunk of it cannot be read, or when it is finished and its values no
    longer give its checksum (a chunk deleted, truncated or overwritten). Damaged points are named
    through ``log`` (default: stderr) and reset to not done, so the run computes them again, and
    reading the store never fails on them. Reads one block of the first grid axis at a time.
    """
    log = log or (lambda msg: print(f"olfacto: warning: {msg}", file=sys.stderr))
    group = _open_group(path)
    by_first: dict[int, list[Point]] = {}
    for p in points:
        by_first.setdefault(p.index[0], []).append(p)
    damaged = []
    for first, members in by_first.items():
        indices = [p.index for p in members]
        names = _data_names(set(group.array_keys()))
        cells = {name: _read_block(group[name], first, indices) for name in [*names, *_POINT_VARS]}
        for p in members:
            unreadable = [name for name, got in cells.items() if got[p.index] is None]
            if unreadable:
                why = f"a chunk of {unreadable[0]} cannot be read"
            elif not bool(cells["done"][p.index]):
                continue
            elif checksum({n: cells[n][p.index] for n in names},
                          bool(cells["diverged"][p.index])) != cells["checksum"][p.index]:
                why = "its values do not match its checksum"
            else:
                continue
            log(f"{path}: point {p.label()} is damaged ({why}); it will be computed again")
            damaged.append(p)
    if damaged:
        _reset(path, damaged)
    return damaged


def _reset(path: Path, points: list[Point]) -> None:
    """Rewrite the points to the fill values (not done), replacing any damaged chunk file."""
    group = zarr.open_group(str(path), mode="r+")
    names = _data_names(set(group.array_keys()))
    for p in points:
        group["done"][p.index] = False
    _fsync_chunks(path, group, [("done", p.index) for p in points])
    for p in points:
        for name in names:
            group[name][p.index] = np.nan
        group["diverged"][p.index] = False
        group["checksum"][p.index] = 0
    _fsync_chunks(path, group, [(name, p.index) for p in points for name in [*names, "diverged", "checksum"]])


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


def _padded(ds: xr.Dataset, n_breath: int, record_every: int) -> xr.Dataset:
    """A batch's records on the full breath axis (NaN after a divergence that ended the batch early)."""
    return ds.reindex(breath=np.arange(n_breath) * record_every)


def run_sweep(base: dict[str, Any], grid: dict[str, list[Any]], out: str | Path, shard: tuple[int, int] = (0, 1),
              batch_size: int | None = None, progress: bool = True, log=None, cluster: str | None = None,
              cache: str | None = None) -> xr.Dataset:
    """Run (or resume) the sweep and return the Dataset in ``out/sweep.zarr``; with ``cluster`` (``local:N``,
    ``tcp://…``, a scheduler file) its batches run as tasks on a Dask cluster (:mod:`olfacto.cluster`)."""
    if not grid:
        raise ConfigError("no grid: give --grid KEY=V1,V2,... or a 'sweep:' section in the config")
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be ≥ 1")
    points = expand(base, grid)
    path = open_store(out, base, grid, points)
    points = locate(path, points)
    verify(path, points, log)
    batches = plan(points, batch_size)
    mine = [b for k, b in enumerate(batches) if k % shard[1] == shard[0]]
    done = _done(path)
    todo = [b for b in mine if not all(done[p.index] for p in b)]
    n_mine = sum(len(b) for b in mine)
    bar = progress_mod.bar(n_mine, "sweep", "point", initial=n_mine - sum(len(b) for b in todo), disable=not progress)
    start = time.perf_counter()
    compiled: set = set()
    if cluster and todo:
        from . import cluster as cluster_mod

        try:
            cluster_mod.run_batches(cluster, path, todo, bar, log=log or (lambda m: print(m, file=sys.stderr)),
                                    cache=cache)
        finally:
            bar.close()
        todo = []
    try:
        for batch in todo:
            spec = simulate.spec_of(batch[0].config)
            if progress and spec not in compiled and len({simulate.spec_of(b[0].config) for b in todo}) > 1:
                # a new shape compiles its programs (seconds): say so, or the bar seems stuck
                c = spec.circuit
                bar.set_postfix_str(f"new shape N={c.n_cortex}, K_max={spec.k_max}, rule={spec.learning.rule}: compiling "
                                  "(or loading from the compilation cache)")
            compiled.add(spec)
            try:
                result = simulate.run_batch([p.config for p in batch], progress=False, stop_on_divergence=False).dataset
            except simulate.Diverged as exc:  # every run of the batch diverged: recorded as such, not a crash
                spec = simulate.spec_of(batch[0].config)
                result = _padded(exc.dataset, spec.n_records + 1, spec.record_every)
            _write_batch(path, batch, result)
            bar.set_postfix_str("")
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
    try:
        with xr.open_zarr(path) as ds:
            return ds.load()
    except Exception as exc:  # damage after this process verified the store
        raise ConfigError(f"{path}: cannot be read ({_first_line(exc)}); run the sweep command again to verify "
                          "it and recompute damaged points") from None


def status(out: str | Path) -> str:
    """Points done, diverged and missing in ``out/sweep.zarr``, per grid value (read-only)."""
    path = Path(out)
    path = path / STORE if path.name != STORE else path
    if not path.is_dir():
        raise ConfigError(f"--status {str(out)!r}: no {STORE} there")
    group = _open_group(path)
    grid = json.loads(group.attrs["grid"])
    done = np.asarray(group["done"][...])
    diverged = np.asarray(group["diverged"][...])
    lines = [f"{path}: {int(done.sum())}/{done.size} points done, {int((done & diverged).sum())} diverged, "
             f"{int((~done).sum())} missing"]
    for axis, (key, values) in enumerate(grid.items()):
        other = tuple(i for i in range(done.ndim) if i != axis)
        per = done.sum(axis=other) if other else done.astype(int)
        lines.append(f"  {key}: " + ", ".join(f"{v}: {int(n)}/{done.size // len(values)}" for v, n in zip(values, per)))
    return "\n".join(lines)


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
