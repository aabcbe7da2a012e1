"""A sweep's grid: points of a Cartesian grid of configs, their fingerprint, and parts of a sweep.

``--grid KEY=V1,V2,…`` (or a YAML ``sweep:`` section) gives the values of each grid key; the
points are every combination, in C order (the last key varies fastest), each a validated
:class:`~olfacto.config.Config`. A sweep can be split into disjoint *parts* (``--part I/N``:
the batches b with b mod N = I − 1), which several processes or a job array run into the same store.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from ..config import LATE_DEFAULTS, PATH_KEYS, Config, ConfigError, check_unique, parse_value, set_dotted, validate

STORE_FORMAT = 3  # the store layout the fingerprint covers (olfacto.sweeps.store)
SHARED_KEYS = ("run.n_breaths", "run.record_every", "run.progress", "sweep")
"""Keys every point of a sweep shares (the breath axis, the driver's settings)."""


@dataclass(frozen=True)
class Point:
    """One grid point: its index along every grid dimension, its config and its grid values; ``slots``: the
    slot counts its batch pads to, the largest of its group's (set by :func:`olfacto.sweeps.runner.plan`, so
    that a group cut into batches — ``--batch-size``, parts, Dask tasks — compiles one program)."""

    index: tuple[int, ...]
    config: Config
    values: tuple[tuple[str, Any], ...] = ()  # (key, value) per grid key
    slots: tuple[tuple[str, int], ...] = ()  # (Spec key, K_max) per padded mask

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
        if key in SHARED_KEYS:
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
        twin = seen.setdefault(_device_form(cfg), values)
        if twin is not values:
            key, a, b = next((k, a, b) for (k, a), (_, b) in zip(twin, values) if _token(a) != _token(b))
            raise ConfigError(f"--grid {key}: values {a!r} and {b!r} give the same config; give each value once")
        points.append(Point(index=tuple(index), config=cfg, values=values))
    return points


def _device_form(cfg: Config) -> str:
    """The config as the device sees it: every float as its float32 (0.01 and 0.0100000000001 are one point)."""
    def down(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: down(v) for k, v in node.items()}
        if isinstance(node, float):
            return float(np.float32(node))
        return node

    return json.dumps(down(cfg.model_dump()), sort_keys=True, default=str)


def _token(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _drop_late_defaults(resolved: dict[str, Any], grid: dict[str, list[Any]]) -> dict[str, Any]:
    """``resolved`` without the keys newer than stored results (:data:`olfacto.config.LATE_DEFAULTS`) that are
    at their defaults and not in the grid, at any depth (an emptied section goes too)."""
    out = json.loads(json.dumps(resolved, default=str))
    for key, default in LATE_DEFAULTS.items():
        if key in grid:
            continue
        *parents, leaf = key.split(".")
        trail, node = [], out
        for part in parents:
            if not isinstance(node, dict) or part not in node:
                break
            trail.append((node, part))
            node = node[part]
        else:
            if isinstance(node, dict) and leaf in node and node[leaf] == json.loads(json.dumps(default, default=str)):
                del node[leaf]
                for parent, part in reversed(trail):  # prune the sections it emptied
                    if parent[part]:
                        break
                    del parent[part]
    return out


BY_CONTENT = "(by content)"
"""What a path key's value is in a fingerprint: the data it names enter by their content (:func:`data_digests`)."""


def fingerprint(base: dict[str, Any], grid: dict[str, list[Any]], paths: str = "content") -> str:
    """Hash of the resolved base config, the grid and the measured data it reads: a store only accepts its
    own sweep. The data enter by content (:func:`data_digests`), so a changed file is a changed sweep, and
    the value of a path key (:data:`olfacto.config.PATH_KEYS`) by content only, so a sweep resumes from any
    working folder and after its data moved. ``paths="text"``: the path's text is hashed too, as in stores
    made before (:func:`accepted_fingerprints`)."""
    cfg = validate({k: v for k, v in base.items() if k != "sweep"})
    resolved = _drop_late_defaults(cfg.to_dict(), grid)
    if paths == "content":
        for key in PATH_KEYS:
            *parents, leaf = key.split(".")
            node = resolved
            for part in parents:
                node = node.get(part, {}) if isinstance(node, dict) else {}
            if isinstance(node, dict) and isinstance(node.get(leaf), str):
                node[leaf] = BY_CONTENT
    parts = {"config": resolved, "grid": grid, "layout": STORE_FORMAT}
    digests = data_digests(base, grid)
    if digests:
        parts["data"] = digests
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def path_variants(base: dict[str, Any]) -> list[dict[str, Any]]:
    """``base`` with its path keys' text as an older olfacto hashed it — relative to the working folder (how a
    config file's paths were read before they were relative to its folder) and absolute; [] when it has none."""
    import os

    texts = {key: get_dotted_dict(base, key) for key in PATH_KEYS}
    texts = {k: v for k, v in texts.items() if isinstance(v, str) and v.strip()}
    if not texts:
        return []
    out = []
    for form in (os.path.relpath, os.path.abspath):
        variant = base
        for key, value in texts.items():
            variant = set_dotted(variant, key, form(os.path.expanduser(value)))
        out.append(variant)
    return out


def get_dotted_dict(data: dict[str, Any], key: str) -> Any:
    """The value of dotted ``key`` in a nested dict (None when absent)."""
    node: Any = data
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def accepted_fingerprints(base: dict[str, Any], grid: dict[str, list[Any]]) -> set[str]:
    """The fingerprints a store of this sweep may hold: :func:`fingerprint`, and those of stores made while a
    path's text was hashed (before paths entered by content), so they resume from the folder they were made in."""
    return {fingerprint(base, grid)} | {fingerprint(b, grid, paths="text") for b in path_variants(base)}


def data_digests(base: dict[str, Any], grid: dict[str, list[Any]]) -> list[str]:
    """Content hashes of the measured data the sweep's points read (:func:`olfacto.recordings.glomeruli.digest`;
    sorted, one per distinct library; empty when no point reads any)."""
    from ..config.tree import data_key
    from ..recordings import glomeruli

    seen: dict[tuple, str] = {}
    for p in expand(base, grid):
        key = (data_key(p.config), p.config.circuit.n_glomeruli)
        if key[0] and key not in seen:
            seen[key] = glomeruli.digest(p.config)
    return sorted(set(seen.values()))


def parse_part(text: str | None, option: str = "--part") -> tuple[int, int]:
    """``"2/4"`` → (1, 4): the second of four disjoint slices (1-based on the command line)."""
    if not text:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected I/N with 1 ≤ I ≤ N, e.g. 1/4") from None
    if not 1 <= i <= n:
        raise ConfigError(f"{option} {text!r}: expected I/N with 1 ≤ I ≤ N, e.g. 1/4")
    return i - 1, n


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
    given = parse_grid(cli_grid)
    for key in given:
        if key in grid:  # a key given twice is refused everywhere else too
            raise ConfigError(f"--grid {key!r}: also in the config's 'sweep:' section ({key}: {grid[key]!r}); "
                              "give each key once (remove it from one of them)")
    grid.update(given)
    return grid


def n_points(grid: dict[str, list[Any]]) -> int:
    return math.prod(len(v) for v in grid.values())
