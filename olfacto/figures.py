"""``olfacto figures``: regenerate the thesis figures (chapters 1 and 2), their data and ``DIR/summary.json``.

Each figure is made from one experiment in ``experiments/`` (several figures may share
one); the experiments run through :func:`olfacto.sweep.run_sweep` into
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

Figures: :data:`FIGURES`. ``--chapter 1`` or ``--chapter 2`` makes one chapter's; ``--only NAME ...``
selects some of them. Chapter-2 experiments that are not plain sweeps (the weight fluctuations,
the SGD stability search, the loss landscape, the one-parameter-at-a-time update alignment, the
recurrence with its dense fixed point) run through a ``compute`` function of
:mod:`olfacto.analysis.chapter2` and are stored the same way.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS_DIR = ROOT / "experiments"
DEFAULT_OUT = "results/figures"  # the committed figures/ change only when asked (--out figures)
COMMITTED = "figures"
RESULT = "result.nc"
SUMMARY = "summary.json"


@dataclass(frozen=True)
class Experiment:
    """An experiment of ``experiments/``: its YAML file, how the figures driver runs it, and the
    overrides of ``--quick`` mode (``set``: dotted keys; ``grid``: grid keys replaced; for
    ``scale_n``: ``n_cortex`` and ``in_degree`` lists)."""

    name: str
    yaml: str
    quick: dict[str, Any] = field(default_factory=dict)
    scale_n: bool = False  # repeat the sweep at several N, keeping each grid point's K = pN
    per_neuron: bool = False  # run with simulate.run_batch to keep per-neuron tuning correlations
    fixed_point: bool = False  # attach the exact Hebbian fixed point of each seed's network
    # run by <compute>(base, grid, options, progress) instead of a sweep: "name" in olfacto.analysis.chapter2,
    # or "module:name"
    compute: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # what ``compute`` needs beyond config keys

    def options_for(self, quick: bool) -> dict[str, Any]:
        return {**self.options, **(self.quick.get("options", {}) if quick else {})}


# The four dynamics experiments share one compiled shape in quick mode (N = 500, K = 50,
# 4000 breaths recorded every 100, batches of 3 seeds): it is compiled once. (Measuring
# costs about as much as 100 breaths of learning, hence the sparser records than in full mode.)
_DYNAMICS = {"circuit.n_cortex": 500, "circuit.connection_prob": 0.1, "run.n_breaths": 4000,
             "run.record_every": 100}
_SEEDS = [0, 1, 2]

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment("learning_curves", "ch1_learning_curves.yaml", fixed_point=True,
               quick={"set": _DYNAMICS, "grid": {"seed": _SEEDS}}),
    Experiment("speed_accuracy", "ch1_speed_accuracy.yaml", fixed_point=True,
               quick={"set": _DYNAMICS, "grid": {"learning.lr": [0.002, 0.004, 0.008, 0.016, 0.032],
                                                  "seed": _SEEDS}}),
    Experiment("alignment_vs_p", "ch1_alignment_vs_p.yaml", scale_n=True,
               quick={"set": {"run.n_breaths": 8000, "run.record_every": 1000, "learning.lr": 0.001,
                              "learning.decay": 0.1},
                      "grid": {"seed": _SEEDS}, "n_cortex": [200, 400, 800], "in_degree": [2, 6, 18, 54]}),
    Experiment("update_alignment", "ch1_update_alignment.yaml", quick={"set": _DYNAMICS, "grid": {"seed": _SEEDS}}),
    Experiment("experiment_comparison", "ch1_experiment_comparison.yaml", per_neuron=True,
               quick={"set": _DYNAMICS, "grid": {"seed": _SEEDS}}),
    Experiment("experiment_fit", "fit_experiment.yaml", compute="olfacto.fit:compute",
               options={"data": "../shared/data/IpsiContra", "grid": {
                   "in_degree": [2, 3, 5, 10, 20, 30, 50, 100, 200, 400], "learning.lr": [0.0002, 0.001, 0.005],
                   "trial_noise": [0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0], "seed": [0, 1, 2]}},
               quick={"options": {"grid": {"in_degree": [3, 10, 30], "learning.lr": [0.0005, 0.005],
                                           "trial_noise": [0.5, 1.0, 2.0, 4.0], "seed": [0, 1]}}}),
    Experiment("real_odors", "real_odors.yaml", compute="olfacto.analysis.real_odors:compute",
               # SGD at η = 0.002: 0.005 sits at its stability edge with these correlated odors
               options={"lr_sgd": 0.002},
               quick={"set": {"circuit.n_cortex": 300, "circuit.connection_prob": 0.15, "run.n_breaths": 2000},
                      "grid": {"seed": [0]}}),
    # chapter 2
    Experiment("update_alignment_vs", "ch2_update_alignment_vs.yaml", compute="compute_update_alignment_vs",
               options={"axes": {"learning.decay": [0.5, 1.0, 2.0, 4.0, 8.0], "odors.noise": [0.0, 0.5, 1.0],
                                 "circuit.n_glomeruli": [25, 50, 100], "circuit.connection_prob": [0.05, 0.1, 0.2],
                                 "circuit.n_cortex": [250, 500, 1000], "circuit.activation": ["linear", "relu"],
                                 "odors.kind": ["gaussian", "sparse"]}},
               quick={"set": {"run.n_breaths": 3000},
                      "options": {"axes": {"learning.decay": [0.5, 1.0, 2.0, 4.0, 8.0], "odors.noise": [0.0, 0.5, 1.0],
                                           "circuit.n_glomeruli": [25, 100], "circuit.activation": ["linear", "relu"],
                                           "odors.kind": ["gaussian", "sparse"]}}}),
    Experiment("recurrence", "ch2_recurrence.yaml", compute="compute_recurrence",
               quick={"set": {"run.n_breaths": 2000},
                      "grid": {"recurrence.steps": [3, 30], "seed": [0, 1]}}),
    Experiment("weight_fluctuations", "ch2_weight_fluctuations.yaml", compute="compute_weight_fluctuations",
               options={"burn_in_relaxations": 3.0, "window_relaxations": 20.0, "snapshots": 400},
               quick={"grid": {"circuit.n_glomeruli": [25, 50], "learning.lr": [0.001, 0.002, 0.004, 0.008],
                               "seed": [0]},
                      "options": {"window_relaxations": 15.0, "snapshots": 300}}),
    Experiment("sgd_stability", "ch2_sgd_stability.yaml", compute="compute_sgd_stability",
               options={"in_degree": [10, 25, 50, 100, 200], "sections": 8, "rounds": 3, "lo": 0.002, "hi": 2.0},
               quick={"set": {"circuit.n_cortex": 200, "run.n_breaths": 5000, "run.record_every": 5000},
                      "grid": {"learning.batch": [1, 4]},
                      "options": {"in_degree": [50], "rounds": 2}}),
    Experiment("landscape", "ch2_landscape.yaml", compute="compute_landscape",
               options={"lr": {"hebbian": 0.002, "sgd": 0.005}, "stride": 100, "points": 41},
               quick={"set": {"run.n_breaths": 2000}, "options": {"points": 31}}),
]}
"""Every experiment the figures need, by name."""

SCALING_N = {"full": [1000, 3000], "quick": EXPERIMENTS["alignment_vs_p"].quick["n_cortex"]}
"""The N at which ``alignment_vs_p`` is repeated (keeping K = pN of its grid)."""


@dataclass(frozen=True)
class Figure:
    """A figure: the experiment whose data it draws, its plot (Dataset → matplotlib Figure) and its
    numbers for ``summary.json`` (Dataset → :class:`~olfacto.analysis.common.Summary`)."""

    name: str
    experiment: str
    plot: Callable[[Any], Any]
    summary: Callable[[Any], Any] | None = None
    chapter: int = 1


def _plot(name: str) -> Callable[[Any], Any]:
    def draw(ds):
        from . import plots

        return getattr(plots, name)(ds)

    draw.__name__ = name
    return draw


def _function(target: str) -> Callable[..., Any]:
    """The function named ``"module:name"`` (a bare name: in :mod:`olfacto.analysis.chapter2`), imported
    when first called, so the registries cost no import of the analysis modules."""
    import importlib

    module, _, name = target.rpartition(":")
    return getattr(importlib.import_module(module or "olfacto.analysis.chapter2"), name)


def _summary(target: str) -> Callable[[Any], Any]:
    def compute(ds):
        return _function(target)(ds)

    compute.__name__ = target.rpartition(":")[2]
    return compute


def _ch(chapter: int, name: str) -> Callable[[Any], Any]:
    return _summary(f"olfacto.analysis.chapter{chapter}:summary_{name}")


FIGURES: dict[str, Figure] = {f.name: f for f in [
    Figure("learning_curves", "learning_curves", _plot("learning_curves"), _ch(1, "learning_curves")),
    Figure("speed_accuracy", "speed_accuracy", _plot("speed_accuracy"), _ch(1, "speed_accuracy")),
    Figure("alignment_vs_p", "alignment_vs_p", _plot("alignment_vs_p"), _ch(1, "alignment_vs_p")),
    Figure("inverse_scaling", "alignment_vs_p", _plot("inverse_scaling"), _ch(1, "inverse_scaling")),
    Figure("hebbian_vs_sgd", "alignment_vs_p", _plot("hebbian_vs_sgd"), _ch(1, "hebbian_vs_sgd")),
    Figure("update_alignment", "update_alignment", _plot("update_alignment"), _ch(1, "update_alignment")),
    Figure("experiment_comparison", "experiment_comparison", _plot("experiment_comparison"),
           _ch(1, "experiment_comparison")),
    Figure("experiment_fit", "experiment_fit", _plot("experiment_fit"), _summary("olfacto.fit:figure_summary")),
    Figure("real_odors", "real_odors", _plot("real_odors"), _summary("olfacto.analysis.real_odors:summary")),
    Figure("update_alignment_vs", "update_alignment_vs", _plot("update_alignment_vs"),
           _ch(2, "update_alignment_vs"), chapter=2),
    Figure("recurrence", "recurrence", _plot("recurrence"), _ch(2, "recurrence"), chapter=2),
    Figure("weight_fluctuations", "weight_fluctuations", _plot("weight_fluctuations"),
           _ch(2, "weight_fluctuations"), chapter=2),
    Figure("sgd_stability", "sgd_stability", _plot("sgd_stability"), _ch(2, "sgd_stability"), chapter=2),
    Figure("landscape", "landscape", _plot("landscape"), _ch(2, "landscape"), chapter=2),
]}
"""Every figure ``olfacto figures`` makes, by name: one entry each (experiment, plot, summary)."""


def experiments_of(chapter: int) -> list[str]:
    """The experiments the figures of ``chapter`` draw from, in figure order."""
    return list(dict.fromkeys(f.experiment for f in FIGURES.values() if f.chapter == chapter))


# -- what to run -------------------------------------------------------------------------


@dataclass
class Job:
    """One sweep: a base config (dict, validated later) and its grid, run into ``folder``."""

    label: str
    base: dict[str, Any]
    grid: dict[str, list[Any]]


def _read(exp: Experiment) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    from . import config as config_mod
    from . import sweep

    path = EXPERIMENTS_DIR / exp.yaml
    if not path.is_file():
        path = Path("experiments") / exp.yaml
    data = config_mod.read_yaml(path)
    grid = sweep.grid_from(data, [])
    return {k: v for k, v in data.items() if k != "sweep"}, grid


def jobs(exp: Experiment, quick: bool) -> list[Job]:
    """The sweeps that make an experiment in the given mode."""
    from .config import set_dotted

    base, grid = _read(exp)
    over = exp.quick if quick else {}
    for key, value in over.get("set", {}).items():
        base = set_dotted(base, key, value)
    grid = {**grid, **over.get("grid", {})}
    if exp.per_neuron and "odors.kind" in grid and "dataset" in grid["odors.kind"]:
        path = (base.get("odors") or {}).get("data_path")
        if not path or not Path(path).is_dir():
            print(f"olfacto figures: {exp.name}: odors.data_path={path!r} not found from {os.getcwd()}; "
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


def _fingerprint(exp: Experiment, job_list: list[Job], quick: bool = False) -> str:
    from . import sweep

    parts = [exp.name] + [f"{j.label}:{sweep.fingerprint(j.base, j.grid)}" for j in job_list]
    if exp.compute:  # the options are part of what was computed (a chapter-1 fingerprint is unchanged)
        parts.append(json.dumps(exp.options_for(quick), sort_keys=True, default=str))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def n_points(job_list: list[Job]) -> int:
    return sum(math.prod(len(v) for v in j.grid.values()) for j in job_list)


# -- running -----------------------------------------------------------------------------


def _batch_size(grid: dict[str, list[Any]]) -> int | None:
    """Seeds per vmapped batch: every batch of every experiment then has the same shape, so a
    compiled program is reused across experiments that share N, p, rule, … ."""
    return len(grid["seed"]) if "seed" in grid else None


def _run_sweep(job: Job, folder: Path, progress: bool):
    import zarr

    from . import sweep

    store = folder / sweep.STORE
    if store.exists():
        stored = zarr.open_group(str(store), mode="r").attrs.get("sweep_fingerprint")
        if stored != sweep.fingerprint(job.base, job.grid):
            print(f"olfacto figures: {store} holds another configuration; recomputing", file=sys.stderr)
            shutil.rmtree(store)
    ds = sweep.run_sweep(job.base, job.grid, folder, batch_size=_batch_size(job.grid), progress=progress)
    return ds.drop_vars("done")


def _run_per_neuron(job: Job, folder: Path):
    """Run the grid with run_batch, one batch per combination of the non-seed keys, keeping the
    per-neuron tuning correlations; each combination is stored as it finishes (resumable)."""
    import numpy as np
    import xarray as xr

    from . import simulate, storage, sweep
    from .config import dim_name, key_attrs, validate

    keys = [k for k in job.grid if k != "seed"]
    seeds = job.grid.get("seed", [validate(job.base).seed])
    parts = []
    for combo in itertools.product(*[job.grid[k] for k in keys]):
        grid = {**dict(zip(keys, ([v] for v in combo))), "seed": seeds}
        label = "_".join(f"{k.split('.')[-1]}-{v}" for k, v in zip(keys, combo)) or "runs"
        path = folder / f"{label}.nc"
        fp = sweep.fingerprint(job.base, grid)
        if path.exists():
            ds = storage.read_dataset(path)
            if ds.attrs.get("sweep_fingerprint") == fp:
                parts.append(ds)
                continue
        configs = [p.config for p in sweep.expand(job.base, grid)]
        ds = simulate.run_batch(configs, progress=False, stop_on_divergence=False).dataset
        ds = ds.swap_dims({"run": "seed"}).drop_vars("run").assign_coords(seed=np.asarray(seeds))
        ds = ds.expand_dims({dim_name(k): [v] for k, v in zip(keys, combo)})
        ds = ds.assign_coords({dim_name(k): ds[dim_name(k)].assign_attrs(key_attrs(k)) for k in keys})
        ds.attrs["sweep_fingerprint"] = fp
        storage.write_dataset(ds, path)
        parts.append(ds)
    out = xr.combine_by_coords(parts, combine_attrs="drop_conflicts") if keys else parts[0]
    return out


def _with_in_degree(ds, n_cortex: int):
    """A sweep at one N with dim circuit.connection_prob → dim in_degree (K = pN), p kept as a coordinate."""
    import numpy as np

    from .analysis.common import K_DIM, N_DIM, P_COORD

    p = ds[P_COORD].values
    ds = ds.rename({P_COORD: K_DIM}).assign_coords({K_DIM: np.round(p * n_cortex, 9)})
    ds = ds.assign_coords({P_COORD: (K_DIM, p)})
    return ds.expand_dims({N_DIM: [n_cortex]})


def load_or_run(exp: Experiment, quick: bool, folder: Path, progress: bool = False, log=print) -> Any:
    """The experiment's consolidated Dataset: read from ``folder/result.nc`` when its
    configuration is unchanged, otherwise run (or resume) it and write that file."""
    import xarray as xr

    from . import storage
    from .config import validate

    job_list = jobs(exp, quick)
    fp = _fingerprint(exp, job_list, quick)
    path = folder / RESULT
    if path.exists():
        ds = storage.read_dataset(path)
        if ds.attrs.get("fingerprint") == fp:
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
        from .analysis.common import K_DIM, N_DIM, P_COORD

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
        from .analysis.chapter1 import SEED, hebbian_fixed_point

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


def load(name: str, out: str | Path = COMMITTED):
    """The stored result of experiment ``name`` (``out/data/<name>/result.nc``), without running anything."""
    from . import storage

    return storage.read_dataset(Path(out) / "data" / name / RESULT)


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
    try:
        x = float(x)
    except (TypeError, ValueError):
        return x
    return None if not math.isfinite(x) else round(x, digits)


def summarize(data: dict, names: list[str] | None = None) -> dict:
    """The summary numbers of the figures ``names`` (default: all whose experiment is in ``data``,
    a mapping experiment name → Dataset), with the theory's value of each under ``theory``."""
    from .analysis.common import Summary

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
    parser.add_argument("--chapter", type=int, choices=(1, 2), action="append", metavar="{1,2}",
                        help="make the figures of this chapter (repeatable; default: both)")
    parser.add_argument("--only", nargs="+", action="extend", metavar="NAME",
                        help=f"make only these figures ({', '.join(FIGURES)})")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help="output folder: DIR/<figure>.{png,pdf}, DIR/summary.json, DIR/data/ "
                             "(default: %(default)s; the committed figures are remade with --out figures)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace figures made in the other mode (quick/full) in DIR")
    parser.add_argument("--progress", action="store_true", help="show the sweeps' progress bars")


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


def _check_mode(path: Path, mode: str, overwrite: bool) -> None:
    """Refuse to replace figures of the other mode (e.g. full-mode figures by quick ones) unless asked."""
    try:
        old = json.loads(path.read_text()).get("mode")
    except (OSError, ValueError, AttributeError):
        return
    if old and old != mode and not overwrite:
        raise ConfigError(f"--out {str(path.parent)!r}: holds {old}-mode figures; this {mode}-mode run would replace "
                          "them: pass --overwrite, or choose another --out")


def main(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    chapters = getattr(args, "chapter", None)
    names = _select(args.only, chapters)
    quick = bool(args.quick)
    out = Path(args.out)
    from . import storage

    mode = "quick" if quick else "full"
    _check_mode(out / SUMMARY, mode, args.overwrite)
    needed = list(dict.fromkeys(FIGURES[n].experiment for n in names))
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    log(f"olfacto figures ({mode}): {', '.join(names)} → {out}/")
    data = {name: load_or_run(EXPERIMENTS[name], quick, out / "data" / name, args.progress, log) for name in needed}
    written = []
    for name in names:
        fig = make_figure(name, data)
        written += storage.save_figure(fig, out / name, formats=("png", "pdf"))
    summary = summarize(data, names)
    path = out / SUMMARY
    if (args.only or chapters) and path.exists():  # a partial remake keeps the other figures' numbers (same mode)
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = {}
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
