"""A sweep's store: ``DIR/sweep.zarr``, one chunk per grid point, checksummed, verified on resume.

Layout: every variable of the default records (:mod:`olfacto.engine.records`) over the grid dims,
its time dim and its own dims (a variable whose dims' lengths vary over the grid — the per-neuron
values when N varies — is left out), plus ``done``, ``diverged`` and ``checksum`` per point.
Zarr writes each chunk through a temporary file and a rename, and every grid point is its own
chunk; the point's chunk files (and their folders) are fsynced before its flag is set, so a point
is durable the moment its flag is, and a crash at any moment loses at most the batch in flight.

The store is addressed by key and value, never by position: its ``grid`` attribute fixes the
layout, and each point finds its index there by its coordinate values, so the grid keys may come
in any order. A store made from another config or grid is refused (:func:`olfacto.sweeps.grid.fingerprint`).
Every finished point carries a ``checksum`` (SHA-256 of its recorded values, first 8 bytes); a
resume re-reads and re-checks every finished point, names the damaged ones on stderr and computes
them again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from ..config import ConfigError, dim_name, key_attrs
from ..engine import records as records_mod
from ..engine.dataset import DIM_ATTRS, provenance
from ..model import measures, network
from ..model.circuit import DIRECTIONS
from .grid import STORE_FORMAT, Point, _token, accepted_fingerprints, fingerprint

STORE = "sweep.zarr"


def _coordinate(values: list[Any]) -> np.ndarray:
    """A grid coordinate; text as variable-length UTF-8 (a data type Zarr v3 specifies, so no warning)."""
    array = np.asarray(values)
    return array.astype(object) if array.dtype.kind == "U" else array


def _template(points: list[Point], grid: dict[str, list[Any]], fp: str) -> xr.Dataset:
    """The empty store of a sweep: every variable of the default records of its points
    (:func:`olfacto.engine.records.defaults`) over the grid dims, its time dim and its own dims — a variable
    whose dims have different lengths at different points (the per-neuron values when N varies) is left
    out — and the point flags."""
    configs = [p.config for p in points]
    specs = {network.spec_of(c) for c in configs}
    spec0 = network.spec_of(configs[0])
    recs = records_mod.defaults(configs)
    gdims = tuple(dim_name(k) for k in grid)  # identifier-safe: ds.sel(connection_prob=…)
    gshape = tuple(len(v) for v in grid.values())
    cfg0 = configs[0]
    n_breath = cfg0.run.n_breaths // cfg0.run.record_every + 1
    data_vars, sizes = {}, {}
    for name, (rec, var) in records_mod.variables(recs, spec0, configs).items():
        lengths = {tuple(sorted(rec.sizes(s).items())) for s in specs}
        if len(lengths) > 1:
            continue
        size = dict(next(iter(lengths)))
        time = (rec.time_dim,) if rec.periodic else ()
        shape = gshape + ((n_breath,) if time else ()) + tuple(size[d] for d in var.dims)
        data_vars[name] = (gdims + time + var.dims, np.full(shape, np.nan, var.dtype), dict(var.attrs))
        sizes.update(size)
    data_vars["done"] = (gdims, np.zeros(gshape, bool), {"long_name": "grid point finished and written"})
    data_vars["diverged"] = (gdims, np.zeros(gshape, bool), {"long_name": "a learned component became non-finite"})
    data_vars["checksum"] = (gdims, np.zeros(gshape, np.uint64),
                             {"long_name": "first 8 bytes of the SHA-256 of the point's recorded values"})
    coords = {dim_name(k): (dim_name(k), _coordinate(v), key_attrs(k)) for k, v in grid.items()}
    used = {d for dims, _, _ in data_vars.values() for d in dims}
    if "direction" in used:
        coords["direction"] = ("direction", _coordinate(list(DIRECTIONS)), DIM_ATTRS["direction"])
    if "breath" in used:
        coords["breath"] = ("breath", np.arange(n_breath) * cfg0.run.record_every, DIM_ATTRS["breath"])
    extra = derived(configs, gdims, gshape)
    for name in ("K", "gain"):  # coordinates: sw.alignment.plot(x="K", hue="n_cortex")
        if name in extra:
            coords[name] = extra.pop(name)
    data_vars.update(extra)
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs[DERIVED] = json.dumps(sorted(n for n in ("K", "gain", *extra) if n in ds.variables))
    base = cfg0  # the attrs' config: the first point's (grid values are coordinates)
    ds.attrs.update(provenance(base))
    ds.attrs["grid"] = json.dumps(grid, default=str)
    ds.attrs["sweep_fingerprint"] = fp
    # the learning path of the first point's recording chunks (a grid over static keys may change it)
    ds.attrs["plasticity"] = network.plans(spec0)["projection"]
    ds.attrs["store_format"] = STORE_FORMAT
    return ds


_POINT_VARS = ("diverged", "checksum", "done")
DERIVED = "derived_variables"  # attr: the arrays computed from the configs at creation (never written per point)


def _reduced(values: np.ndarray, dims: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    """``values`` over the grid ``dims`` without the dims along which it is constant (K = pN: over the
    grid's p and N only)."""
    keep = []
    for axis in range(values.ndim):
        first = np.take(values, [0], axis=axis)
        same = np.array_equal(values, np.broadcast_to(first, values.shape), equal_nan=True)
        keep.append(not same)
    index = tuple(slice(None) if k else 0 for k in keep)
    return tuple(d for d, k in zip(dims, keep) if k), values[index]


def derived(configs: list, gdims: tuple[str, ...], gshape: tuple[int, ...]) -> dict[str, tuple]:
    """What each point's config says before it runs, over the grid dims it depends on: the coordinates
    ``K`` = pN (mean synapses per neuron) and, for Hebbian points with λ > 0, ``gain`` g = K/(Mλ); and the
    mean-field prediction of the final measures where every point is in the analysable case
    (:func:`olfacto.model.prediction.prediction`; NaN at a point outside it), as ``<measure>_theory``."""
    from ..model.prediction import prediction
    from ..model import theory

    def grid_array(fn):
        return np.array([fn(c) for c in configs], float).reshape(gshape)

    out = {"K": (grid_array(lambda c: theory.mean_indegree(c.circuit.n_cortex, c.circuit.connection_prob)),
                 {"long_name": "K = pN", "units": "1", "description": "mean synapses per neuron of each projection"})}
    if all(c.learning.rule == "hebbian" and c.learning.decay > 0 for c in configs):
        out["gain"] = (grid_array(lambda c: theory.hebbian_gain(c.circuit.n_cortex, c.circuit.n_glomeruli,
                                                                c.circuit.connection_prob, c.learning.decay)),
                       {"long_name": "gain g = K/(Mλ)", "units": "1",
                        "description": "gain of the Hebbian fixed point along the direct response"})
    preds = [prediction(c) for c in configs]
    if any(not isinstance(p, str) for p in preds):
        for name in ("alignment", "tuning_alignment"):
            values = np.array([np.nan if isinstance(p, str) else p.values()[name] for p in preds]).reshape(gshape)
            out[f"{name}_theory"] = (values, {"long_name": f"{name.replace('_', ' ')}, theory", "units": "1",
                                              "description": "mean-field prediction of the final value "
                                                             "(olfacto.model.prediction; NaN outside the "
                                                             "analysable case)"})
    return {name: (*_reduced(values, gdims), attrs) for name, (values, attrs) in out.items()}


def _data_names(group: zarr.Group) -> list[str]:
    """The variables that hold a point's values (checksummed): every array of the store but its coordinates
    (arrays named like a dimension), the arrays derived from the configs and the point flags."""
    arrays = {name: group[name] for name in group.array_keys()}
    dims = {d for a in arrays.values() for d in (a.metadata.dimension_names or ())}
    fixed = set(json.loads(group.attrs.get(DERIVED, "[]")))
    return sorted(n for n in arrays if n not in dims and n not in _POINT_VARS and n not in fixed)


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
        ngrid = template.done.ndim  # every grid point is its own chunk of every variable
        fixed = set(json.loads(template.attrs.get(DERIVED, "[]")))
        encoding = {name: {"chunks": (1,) * ngrid + template[name].shape[ngrid:]} for name in template.data_vars
                    if name not in fixed}
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
        _create_store(path, _template(points, grid, fp))
    stored = _open_group(path).attrs.get("sweep_fingerprint")
    if stored != fp and stored not in _same_results(base, grid):
        raise ConfigError(f"--out {str(out)!r}: {STORE} there holds a different sweep (config or grid changed); "
                          "resume only with the same config and grid, or choose another --out")
    return path


def _same_results(base: dict[str, Any], grid: dict[str, list[Any]]) -> set[str]:
    """Fingerprints of the sweeps that differ from this one only in keys that change no result (the progress
    bar) or in how a data path was hashed (:func:`olfacto.sweeps.grid.accepted_fingerprints`): a store made by
    either resumes. (The fingerprint itself keeps them, so stores made before are valid.)"""
    from ..config import set_dotted

    return {fp for shown in (True, False) for fp in accepted_fingerprints(set_dotted(base, "run.progress", shown), grid)}


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


def write_batch(path: Path, batch: list[Point], ds: xr.Dataset) -> None:
    """Write the points' data and checksums, fsync them, then set and fsync their done flags."""
    group = zarr.open_group(str(path), mode="r+")
    names = _data_names(group)
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


def inspect(path: Path, points: list[Point]) -> tuple[dict, dict, list[tuple[Point, str]]]:
    """Read every point's flags and check every finished one (read-only): ``done`` and ``diverged`` per point
    index (False where unreadable), and the damaged points with why.

    A point is damaged when a chunk of it cannot be read, or when it is finished and its values no
    longer give its checksum (a chunk deleted, truncated or overwritten). Reads one block of the first
    grid axis at a time.
    """
    group = _open_group(path)
    by_first: dict[int, list[Point]] = {}
    for p in points:
        by_first.setdefault(p.index[0], []).append(p)
    done, diverged, damaged = {}, {}, []
    names = _data_names(group)
    for first, members in by_first.items():
        indices = [p.index for p in members]
        cells = {name: _read_block(group[name], first, indices) for name in [*names, *_POINT_VARS]}
        for p in members:
            done[p.index] = bool(cells["done"][p.index]) if cells["done"][p.index] is not None else False
            diverged[p.index] = bool(cells["diverged"][p.index]) if cells["diverged"][p.index] is not None else False
            unreadable = [name for name, got in cells.items() if got[p.index] is None]
            if unreadable:
                why = f"a chunk of {unreadable[0]} cannot be read"
            elif not done[p.index]:
                continue
            elif checksum({n: cells[n][p.index] for n in names}, diverged[p.index]) != cells["checksum"][p.index]:
                why = "its values do not match its checksum"
            else:
                continue
            damaged.append((p, why))
    return done, diverged, damaged


def verify(path: Path, points: list[Point], log=None) -> list[Point]:
    """Re-read every point, re-check the checksum of each finished one (:func:`inspect`), reset the damaged ones.

    Damaged points are named through ``log`` (default: stderr) and reset to not done, so the run computes
    them again, and reading the store never fails on them.
    """
    log = log or (lambda msg: print(f"olfacto: warning: {msg}", file=sys.stderr))
    _, _, found = inspect(path, points)
    for p, why in found:
        log(f"{path}: point {p.label()} is damaged ({why}); it will be computed again")
    damaged = [p for p, _ in found]
    if damaged:
        _reset(path, damaged)
    return damaged


def _reset(path: Path, points: list[Point]) -> None:
    """Rewrite the points to the fill values (not done), replacing any damaged chunk file."""
    group = zarr.open_group(str(path), mode="r+")
    names = _data_names(group)
    for p in points:
        group["done"][p.index] = False
    _fsync_chunks(path, group, [("done", p.index) for p in points])
    for p in points:
        for name in names:
            group[name][p.index] = np.nan
        group["diverged"][p.index] = False
        group["checksum"][p.index] = 0
    _fsync_chunks(path, group, [(name, p.index) for p in points for name in [*names, "diverged", "checksum"]])


def done_flags(path: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(path), mode="r")["done"][...])


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
    # the same check as a resume (read-only): a damaged point is not done, and a damaged flag is no traceback
    points = [Point(index=i, config=None, values=tuple((k, grid[k][j]) for k, j in zip(grid, i)))
              for i in itertools.product(*[range(len(v)) for v in grid.values()])]
    flags, diverged_at, damaged = inspect(path, points)
    bad = {p.index for p, _ in damaged}
    shape = tuple(len(v) for v in grid.values())
    done = np.zeros(shape, bool)
    diverged = np.zeros(shape, bool)
    for i in flags:
        done[i] = flags[i] and i not in bad
        diverged[i] = diverged_at[i]
    lines = [f"{path}: {int(done.sum())}/{done.size} points done, {int((done & diverged).sum())} diverged, "
             f"{int((~done).sum())} missing" + (f" ({len(damaged)} of them damaged: computed again on resume)"
                                                 if damaged else "")]
    for axis, (key, values) in enumerate(grid.items()):
        other = tuple(i for i in range(done.ndim) if i != axis)
        per = done.sum(axis=other) if other else done.astype(int)
        lines.append(f"  {key}: " + ", ".join(f"{v}: {int(n)}/{done.size // len(values)}" for v, n in zip(values, per)))
    lines += [f"  damaged: {p.label()} ({why})" for p, why in damaged]
    return "\n".join(lines)
