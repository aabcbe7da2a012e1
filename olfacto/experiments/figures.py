"""``olfacto figures``: regenerate the thesis figures (chapters 1 and 2), the figures beyond it (chapter 3:
rewiring synapses), their data and ``DIR/summary.json``.

Each figure is made from one experiment in ``experiments/`` (several figures may share
one); the experiments run through :func:`olfacto.sweeps.run_sweep` into
``DIR/data/<experiment>/`` and, once complete, are consolidated into
``DIR/data/<experiment>/result.nc`` (the sweep stores are then removed, which keeps the
stored results to a few small files). A later call reuses ``result.nc`` when the
experiment's configuration is unchanged (same sweep fingerprints), resumes an
interrupted sweep from its store, and recomputes an experiment whose configuration
changed.

Modes:

* full (default): the sizes written in the YAML files (thesis scale: N up to 10⁵ for
  the scaling experiment, 5 seeds); meant for a GPU — see ``figures/README.md`` for
  its cost;
* ``--quick``: each experiment's ``quick`` overrides (N ≤ 800, 3 seeds, a few thousand
  breaths), chosen so that all figures regenerate in under 10 minutes on a 2-core CPU.
  On a CPU the cost is dominated by XLA compilation (one program per distinct
  N, p, rule, …), so quick mode uses few distinct shapes and vmaps seeds and scalar
  parameters inside each.

Figures: :data:`FIGURES`. ``--chapter 1``, ``2`` or ``3`` makes one chapter's; ``--only NAME ...``
selects some of them. Chapter-2 experiments that are not plain sweeps (the weight fluctuations,
the SGD stability search, the loss landscape, the one-parameter-at-a-time update alignment, the
recurrence with its dense fixed point) run through a ``compute`` function of
:mod:`olfacto.experiments.chapter2` and are stored the same way.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..config import ConfigError
from .registry import EXPERIMENTS, FIGURES, SCALING_N, Experiment, Figure, _function, experiments_of  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS_DIR = ROOT / "experiments"
DEFAULT_OUT = "results/figures"  # the committed figures/ change only when asked (--out figures)
COMMITTED = "figures"
RESULT = "result.nc"
SUMMARY = "summary.json"


# -- what to run -------------------------------------------------------------------------


@dataclass
class Job:
    """One sweep: a base config (dict, validated later) and its grid, run into ``folder``."""

    label: str
    base: dict[str, Any]
    grid: dict[str, list[Any]]


def _read(exp: Experiment) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    from .. import config as config_mod
    from .. import sweeps as sweep

    path = EXPERIMENTS_DIR / exp.yaml
    if not path.is_file():
        path = Path("experiments") / exp.yaml
    data = config_mod.read_yaml(path)
    grid = sweep.grid_from(data, [])
    return {k: v for k, v in data.items() if k != "sweep"}, grid


def jobs(exp: Experiment, quick: bool) -> list[Job]:
    """The sweeps that make an experiment in the given mode."""
    from ..config import set_dotted

    base, grid = _read(exp)
    over = exp.quick if quick else {}
    for key, value in over.get("set", {}).items():
        base = set_dotted(base, key, value)
    grid = {**grid, **over.get("grid", {})}
    if exp.per_neuron and "odors.kind" in grid and "dataset" in grid["odors.kind"]:
        path = (base.get("odors") or {}).get("data_path")
        if not path or not Path(path).is_dir():
            print(f"olfacto figures: {exp.name}: odors.data_path={path!r} (relative to {exp.yaml}'s folder) not found; "
                  "skipping the measured odors", file=sys.stderr)
            grid["odors.kind"] = [k for k in grid["odors.kind"] if k != "dataset"]
    if not exp.scale_n:
        return [Job(exp.name, base, grid)]
    n_file = int((base.get("circuit") or {}).get("n_cortex", 1000))
    degrees = over.get("in_degree") or [p * n_file for p in grid["circuit.connection_prob"]]
    out = []
    for n in (over.get("n_cortex") or SCALING_N["quick"]) if quick else SCALING_N["full"]:
        sub = set_dotted(base, "circuit.n_cortex", n)
        probs = [float(f"{k / n:.10g}") for k in degrees if k / n <= 1.0]
        out.append(Job(f"N{n}", sub, {**grid, "circuit.connection_prob": probs}))
    return out


def _fingerprint(exp: Experiment, job_list: list[Job], quick: bool = False, paths: str = "content") -> str:
    from .. import sweeps as sweep

    parts = [exp.name] + [f"{j.label}:{sweep.fingerprint(j.base, j.grid, paths)}" for j in job_list]
    if exp.compute:  # the options are part of what was computed (a chapter-1 fingerprint is unchanged)
        parts.append(json.dumps(exp.options_for(quick), sort_keys=True, default=str))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _accepted(exp: Experiment, job_list: list[Job], quick: bool = False) -> set[str]:
    """The experiment's fingerprint, and those of results stored while a data path's text was hashed
    (relative to the working folder, or absolute: :func:`olfacto.sweeps.grid.path_variants`)."""
    from ..sweeps.grid import path_variants

    out = {_fingerprint(exp, job_list, quick)}
    variants = [path_variants(j.base) for j in job_list]
    for form in range(2):
        if all(variants):
            old = [Job(j.label, v[form], j.grid) for j, v in zip(job_list, variants)]
            out.add(_fingerprint(exp, old, quick, paths="text"))
    return out


def n_points(job_list: list[Job]) -> int:
    return sum(math.prod(len(v) for v in j.grid.values()) for j in job_list)


# -- running -----------------------------------------------------------------------------


def _batch_size(grid: dict[str, list[Any]]) -> int | None:
    """Seeds per vmapped batch: every batch of every experiment then has the same shape, so a
    compiled program is reused across experiments that share N, p, rule, … ."""
    return len(grid["seed"]) if "seed" in grid else None


def _run_sweep(job: Job, folder: Path, progress: bool):
    import zarr

    from .. import sweeps as sweep

    store = folder / sweep.STORE
    if store.exists():
        try:
            stored = zarr.open_group(str(store), mode="r").attrs.get("sweep_fingerprint")
        except Exception:  # noqa: BLE001 - junk metadata fails in zarr and its codecs in many ways
            stored = "unreadable"
        if stored not in sweep.accepted_fingerprints(job.base, job.grid):
            why = "cannot be read" if stored == "unreadable" else "holds another configuration"
            print(f"olfacto: warning: {store} {why}; recomputing", file=sys.stderr)
            shutil.rmtree(store)
    ds = sweep.run_sweep(job.base, job.grid, folder, batch_size=_batch_size(job.grid), progress=progress)
    return ds.drop_vars("done")


def _run_per_neuron(job: Job, folder: Path):
    """Run the grid with run_batch, one batch per combination of the non-seed keys, keeping the
    per-neuron tuning correlations; each combination is stored as it finishes (resumable)."""
    import numpy as np
    import xarray as xr

    from .. import sweeps as sweep
    from ..config import dim_name, key_attrs, validate
    from ..engine import loop, storage
    from ..engine.devices import map_batches

    keys = [k for k in job.grid if k != "seed"]
    seeds = job.grid.get("seed", [validate(job.base).seed])

    def one(combo: tuple) -> xr.Dataset:
        grid = {**dict(zip(keys, ([v] for v in combo))), "seed": seeds}
        label = "_".join(f"{k.split('.')[-1]}-{v}" for k, v in zip(keys, combo)) or "runs"
        path = folder / f"{label}.nc"
        fp = sweep.fingerprint(job.base, grid)
        ds = _read_stored(path, print)
        if ds is not None and ds.attrs.get("sweep_fingerprint") in sweep.accepted_fingerprints(job.base, grid):
            return ds
        configs = [p.config for p in sweep.expand(job.base, grid)]
        ds = loop.run_batch(configs, progress=False, stop_on_divergence=False).dataset
        ds = ds.swap_dims({"run": "seed"}).drop_vars("run").assign_coords(seed=np.asarray(seeds))
        ds = ds.expand_dims({dim_name(k): [v] for k, v in zip(keys, combo)})
        ds = ds.assign_coords({dim_name(k): ds[dim_name(k)].assign_attrs(key_attrs(k)) for k in keys})
        ds.attrs["sweep_fingerprint"] = fp
        storage.write_dataset(ds, path)
        return ds

    # the combinations several at once on a CPU (devices.map_batches); each is stored as it finishes
    parts = list(map_batches(one, list(itertools.product(*[job.grid[k] for k in keys]))))
    out = xr.combine_by_coords(parts, combine_attrs="drop_conflicts") if keys else parts[0]
    return out


def _with_in_degree(ds, n_cortex: int):
    """A sweep at one N with dim circuit.connection_prob → dim in_degree (K = pN), p kept as a coordinate."""
    import numpy as np

    from ..analysis.common import K_DIM, N_DIM, P_COORD

    p = ds[P_COORD].values
    ds = ds.rename({P_COORD: K_DIM}).assign_coords({K_DIM: np.round(p * n_cortex, 9)})
    ds = ds.assign_coords({P_COORD: (K_DIM, p)})
    return ds.expand_dims({N_DIM: [n_cortex]})


def _read_stored(path: Path, log) -> Any:
    """A stored result file, or None when there is none or it cannot be read (junk, truncated: it is computed
    again and replaced, as a changed configuration is)."""
    from ..engine import storage

    if not path.exists():
        return None
    try:
        return storage.read_dataset(path)
    except Exception as exc:  # noqa: BLE001 - h5py/netCDF fail in many ways on a damaged file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"olfacto: warning: {path} cannot be read ({first}); recomputing", file=sys.stderr)
        return None


def load_or_run(exp: Experiment, quick: bool, folder: Path, progress: bool = False, log=print) -> Any:
    """The experiment's consolidated Dataset: read from ``folder/result.nc`` when its
    configuration is unchanged, otherwise run (or resume) it and write that file."""
    import xarray as xr

    from ..engine import storage
    from ..config import validate

    job_list = jobs(exp, quick)
    fp = _fingerprint(exp, job_list, quick)
    path = folder / RESULT
    ds = _read_stored(path, log)
    if ds is not None:
        if ds.attrs.get("fingerprint") == fp or ds.attrs.get("fingerprint") in _accepted(exp, job_list, quick):
            log(f"  {exp.name}: stored result reused ({path})")
            return ds
        log(f"  {exp.name}: configuration changed since {path}; recomputing")
    start = time.perf_counter()
    if exp.compute:
        log(f"  {exp.name}: {exp.compute} → {folder}/")
    else:
        log(f"  {exp.name}: {n_points(job_list)} runs in {len(job_list)} sweep(s) → {folder}/")
    parts = []
    for job in job_list:
        sub = folder / job.label if len(job_list) > 1 else folder
        if exp.compute:
            ds = _function(exp.compute)(job.base, job.grid, exp.options_for(quick), progress)
        elif exp.per_neuron:
            ds = _run_per_neuron(job, sub)
        else:
            ds = _run_sweep(job, sub, progress)
        if exp.scale_n:
            ds = _with_in_degree(ds, validate(job.base).circuit.n_cortex)
        parts.append(ds)
    if exp.scale_n:
        # align the in-degree grids (identical K lists; p differs by N) and stack along N
        from ..analysis.common import K_DIM, N_DIM, P_COORD

        # per-neuron values have one length per N: not stacked along N
        parts = [d.drop_vars("tuning_correlation", errors="ignore") for d in parts]
        ks = parts[0][K_DIM].values
        parts = [d.assign_coords({K_DIM: ks}) if d.sizes[K_DIM] == ks.size else d for d in parts]
        p = xr.concat([d[P_COORD] for d in parts], dim=N_DIM)
        ds = xr.concat([d.drop_vars(P_COORD) for d in parts], dim=N_DIM, combine_attrs="drop_conflicts")
        ds = ds.assign_coords({P_COORD: p})
    else:
        ds = parts[0]
    cfg = validate(job_list[0].base)  # for scale_n: the first N's; each N's p is the coordinate
    keep = (lambda k: True) if exp.compute else (lambda k: k in ("olfacto_version", "jax_version", "device"))
    ds.attrs = {k: v for k, v in parts[0].attrs.items() if keep(k)}
    ds.attrs.update(config=cfg.to_yaml(), fingerprint=fp, mode="quick" if quick else "full",
                    grid=json.dumps({j.label: j.grid for j in job_list}, default=str),
                    compute_time_s=round(time.perf_counter() - start, 1))
    if exp.fixed_point:
        from ..analysis.common import SEED
        from .chapter1 import hebbian_fixed_point

        fixed = hebbian_fixed_point(cfg, ds[SEED].values)
        ds["fixed_point_alignment"] = (SEED, fixed["alignment"],
                                       {"long_name": "population alignment of the exact fixed point C⊙J_R J_Lᵀ/λ"})
        ds["fixed_point_weight_rms"] = (SEED, fixed["weight_rms"], {"long_name": "rms weight of that fixed point"})
    for var in list(ds.data_vars):
        if ds[var].dtype == bool:
            ds[var] = ds[var].astype("int8")
    storage.write_dataset(ds, path)
    for job in job_list:  # the consolidated file replaces the sweep stores
        sub = folder / job.label if len(job_list) > 1 else folder
        shutil.rmtree(sub / "sweep.zarr", ignore_errors=True)
        for f in sub.glob("*.nc"):
            if f != path:
                f.unlink()
        if sub != folder and sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    log(f"  {exp.name}: done in {time.perf_counter() - start:.0f} s")
    return storage.read_dataset(path)


def load(name: str, out: str | Path | None = None):
    """The stored result of experiment ``name`` (``out/data/<name>/result.nc``), without running anything;
    ``out`` defaults to the committed figures of the source tree (``ROOT/figures``), wherever the caller runs."""
    from ..engine import storage

    return storage.read_dataset(Path(ROOT / COMMITTED if out is None else out) / "data" / name / RESULT)


def make_figure(name: str, data: dict):
    """Figure ``name`` from a mapping experiment name → Dataset."""
    fig = FIGURES[name]
    return fig.plot(data[fig.experiment])


# -- summary -----------------------------------------------------------------------------


def _r(x, digits: int = 4):
    if isinstance(x, dict):
        return {k: _r(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_r(v, digits) for v in x]
    if isinstance(x, bool) or type(x).__name__ == "bool_":  # a pass/fail stays a boolean in the JSON
        return bool(x)
    try:
        x = float(x)
    except (TypeError, ValueError):
        return x
    return None if not math.isfinite(x) else round(x, digits)


def summarize(data: dict, names: list[str] | None = None) -> dict:
    """The summary numbers of the figures ``names`` (default: all whose experiment is in ``data``,
    a mapping experiment name → Dataset), with the theory's value of each under ``theory``."""
    from ..analysis.common import Summary

    names = [n for n in (names or FIGURES) if FIGURES[n].experiment in data]
    total = Summary()
    for name in names:
        fig = FIGURES[name]
        if fig.summary is not None:
            total = total.merge(fig.summary(data[fig.experiment]))
    out: dict[str, Any] = dict(total.values)
    th, details = dict(total.theory), dict(total.details)
    if total.deviations:
        out["max_theory_deviation"] = max(total.deviations.values())
        th["max_theory_deviation"] = "0 up to finite N, seeds and probes; linear φ, gaussian odors, Hebbian rule"
        details["theory_deviations"] = total.deviations
    out["theory"] = th
    out["details"] = details
    return _r(out)


# -- command line ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (N ≤ 800, 3 seeds): all figures in < 10 min on a 2-core CPU")
    parser.add_argument("--chapter", type=int, choices=(1, 2, 3), action="append", metavar="{1,2,3}",
                        help="make the figures of this chapter (repeatable; default: every chapter)")
    parser.add_argument("--only", nargs="+", action="extend", metavar="NAME",
                        help=f"make only these figures ({', '.join(FIGURES)})")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help="output folder: DIR/<figure>.{png,pdf}, DIR/summary.json, DIR/data/ "
                             "(default: %(default)s; the committed figures are remade with --out figures)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace figures made in the other mode (quick/full) in DIR")
    parser.add_argument("--progress", action="store_true", help="show the sweeps' progress bars")
    parser.add_argument("--cluster", metavar="SPEC",
                        help="compute the experiments' data as tasks on a Dask cluster, one per experiment, then draw "
                             "here: local:N (N worker processes on this machine), tcp://HOST:PORT or a scheduler "
                             ".json file (the output folder must be one every worker sees)")


def _select(only: list[str] | None, chapters: list[int] | None = None) -> list[str]:
    """The figures to make: ``--only`` names (checked), within ``--chapter`` (default: every chapter)."""
    in_chapters = [n for n, f in FIGURES.items() if not chapters or f.chapter in chapters]
    if not only:
        return in_chapters
    bad = [n for n in only if n not in FIGURES]
    if bad:
        raise ConfigError(f"--only {bad[0]!r}: unknown figure; allowed: {', '.join(FIGURES)}")
    outside = [n for n in only if n not in in_chapters]
    if outside:
        raise ConfigError(f"--only {outside[0]!r}: a chapter-{FIGURES[outside[0]].chapter} figure, not in --chapter "
                          f"{', '.join(map(str, chapters or []))}")
    return [n for n in in_chapters if n in only]


def _read_summary(path: Path) -> dict:
    """An existing summary.json, or {} when there is none or it is not a JSON mapping (it is then replaced)."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return old if isinstance(old, dict) else {}


def _check_mode(path: Path, mode: str, overwrite: bool) -> None:
    """Refuse to replace figures of the other mode (e.g. full-mode figures by quick ones) unless asked."""
    old = _read_summary(path).get("mode")
    if old and old != mode and not overwrite:
        raise ConfigError(f"--out {str(path.parent)!r}: holds {old}-mode figures; this {mode}-mode run would replace "
                          "them: pass --overwrite, or choose another --out")


def _compute_task(name: str, quick: bool, folder: str, cache: str | None, xla_flags: str | None) -> float | None:
    """On a Dask worker: experiment ``name``'s data set written into ``folder`` (as :func:`load_or_run` writes it,
    atomically); returns its compute time in seconds."""
    from ..sweeps.dask import worker_runtime

    worker_runtime(cache or "off", xla_flags)
    ds = load_or_run(EXPERIMENTS[name], quick, Path(folder), False, log=lambda msg: None)
    return ds.attrs.get("compute_time_s")


def committed_compute_times() -> dict[str, float]:
    """Seconds each experiment took to compute when the committed figures were made (the repository's
    ``figures/summary.json``; empty when it is not there): :func:`compute_on_cluster` submits the longest first,
    so that no long one starts last."""
    committed = Path(__file__).resolve().parents[2] / COMMITTED / SUMMARY
    return {k: float(v) for k, v in _read_summary(committed).get("compute_time_s", {}).items() if v}


def compute_on_cluster(spec: str, names: list[str], quick: bool, out: Path, log) -> None:
    """Compute the experiments ``names`` (their data under ``out/data``) on the Dask cluster ``spec``
    (:func:`olfacto.sweeps.dask.session`): one task per experiment, the longest first, each writing its result
    file as the local path does. The experiments are independent, so N workers run N at once; what a task
    finished stays written if another fails or the driver is stopped, and the next run reuses it."""
    import os

    import jax
    from dask.distributed import as_completed

    from ..sweeps.dask import session

    with session(spec) as c:
        log(f"  computing {len(names)} experiment(s) on the Dask cluster {spec} (dashboard: {c.dashboard_link})")
        cache = jax.config.jax_compilation_cache_dir or None
        flags = os.environ.get("XLA_FLAGS")
        costs = committed_compute_times()
        order = sorted(names, key=lambda n: costs.get(n, 0.0), reverse=True)
        futures = {c.submit(_compute_task, n, quick, str(out / "data" / n), cache, flags, pure=False,
                            key=f"olfacto-figures-{n}", priority=len(order) - i): n for i, n in enumerate(order)}
        try:
            for future in as_completed(futures):
                log(f"  {futures[future]}: computed on the cluster in {future.result()} s")
        finally:
            c.cancel(list(futures))


def main(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    cluster = getattr(args, "cluster", None)
    if cluster:
        from ..sweeps import dask as dask_mod

        dask_mod.check_spec(cluster)  # before any work
    chapters = getattr(args, "chapter", None)
    names = _select(args.only, chapters)
    quick = bool(args.quick)
    if not str(args.out).strip():
        raise ConfigError(f"--out {args.out!r}: empty; give a folder (or leave --out out for {DEFAULT_OUT})")
    out = Path(args.out)
    from ..config import checks
    from ..engine import storage

    # every output checked before any work (a figure or summary.json that cannot be written)
    checks.check_outputs(out, files=[f"{n}.{fmt}" for n in names for fmt in ("png", "pdf")] + [SUMMARY])
    mode = "quick" if quick else "full"
    _check_mode(out / SUMMARY, mode, args.overwrite)
    needed = list(dict.fromkeys(FIGURES[n].experiment for n in names))
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    log(f"olfacto figures ({mode}): {', '.join(names)} → {out}/")
    from ..analysis.fit import AllDiverged

    try:
        if cluster:  # then each load_or_run below reads what the cluster wrote
            compute_on_cluster(cluster, needed, quick, out, log)
        data = {name: load_or_run(EXPERIMENTS[name], quick, out / "data" / name, args.progress, log)
                for name in needed}
    except AllDiverged as exc:  # the experiment_fit grid: nothing to fit or draw (exit 3, as a diverged run)
        print(f"olfacto: error: experiment_fit diverged: {exc}; the figures made so far are kept", file=sys.stderr)
        return 3
    written = []
    for name in names:
        fig = make_figure(name, data)
        written += storage.save_figure(fig, out / name, formats=("png", "pdf"))
    summary = summarize(data, names)
    path = out / SUMMARY
    if (args.only or chapters) and path.exists():  # a partial remake keeps the other figures' numbers (same mode)
        old = _read_summary(path)
        if old.get("mode") == mode:
            dev = {**old.get("details", {}).get("theory_deviations", {}),
                   **summary.get("details", {}).get("theory_deviations", {})}
            for key in ("theory", "details"):
                summary[key] = {**old.get(key, {}), **summary.get(key, {})}
            summary = {**old, **summary}
            if dev:  # the largest deviation is over all figures, not only the remade ones
                summary["details"]["theory_deviations"] = dev
                summary["max_theory_deviation"] = max(dev.values())
    wall = time.perf_counter() - start
    compute = {**summary.get("compute_time_s", {}), **{k: d.attrs.get("compute_time_s") for k, d in data.items()}}
    summary.update(mode=mode, wall_time_s=round(wall, 1), figures=sorted(set(summary.get("figures", [])) | set(names)),
                   compute_time_s=compute, compute_time_total_s=round(sum(v or 0 for v in compute.values()), 1))
    summary = {k: summary[k] for k in sorted(summary, key=lambda k: (k in ("theory", "details"), k))}
    storage.atomic_write_bytes(path, (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode())
    for p in written:
        print(p)
    print(path)
    for key in ("alignment_vs_p_exponent", "inverse_scaling_exponent", "p_star_ratio_hebbian_over_sgd",
                "speed_accuracy_slope", "update_alignment_mean", "update_alignment_min", "max_theory_deviation"):
        if key in summary:
            print(f"{key:32s} {summary[key]}")
    print(f"{'wall time':32s} {wall:.0f} s")
    return 0
