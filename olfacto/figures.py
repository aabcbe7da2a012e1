"""``olfacto figures``: regenerate the chapter-1 figures, their data and ``DIR/summary.json``.

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
* ``--quick``: the overrides in :data:`QUICK` (N ≤ 800, 3 seeds, a few thousand
  breaths), chosen so that all figures regenerate in under 10 minutes on a 2-core CPU.
  On a CPU the cost is dominated by XLA compilation (one program per distinct
  N, p, rule, …), so quick mode uses few distinct shapes and vmaps seeds and scalar
  parameters inside each.

Figures: :data:`FIGURES`. ``--only NAME ...`` selects some of them.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS_DIR = ROOT / "experiments"
DEFAULT_OUT = "figures"
RESULT = "result.nc"
SUMMARY = "summary.json"


@dataclass(frozen=True)
class Experiment:
    """An experiment of ``experiments/``: its YAML file and how the figures driver runs it."""

    name: str
    yaml: str
    scale_n: bool = False  # repeat the sweep at several N, keeping each grid point's K = pN
    per_neuron: bool = False  # run with simulate.run_batch to keep per-neuron tuning correlations
    fixed_point: bool = False  # attach the exact Hebbian fixed point of each seed's network


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment("learning_curves", "ch1_learning_curves.yaml", fixed_point=True),
    Experiment("speed_accuracy", "ch1_speed_accuracy.yaml", fixed_point=True),
    Experiment("alignment_vs_p", "ch1_alignment_vs_p.yaml", scale_n=True),
    Experiment("update_alignment", "ch1_update_alignment.yaml"),
    Experiment("experiment_comparison", "ch1_experiment_comparison.yaml", per_neuron=True),
]}

# The four dynamics experiments share one compiled shape in quick mode (N = 500, K = 50,
# 4000 breaths recorded every 100, batches of 3 seeds): it is compiled once. (Measuring
# costs about as much as 100 breaths of learning, hence the sparser records than in full mode.)
_DYNAMICS = {"circuit.n_cortex": 500, "circuit.connection_prob": 0.1, "run.n_breaths": 4000,
             "run.record_every": 100}
_SEEDS = [0, 1, 2]
QUICK: dict[str, dict[str, Any]] = {
    "learning_curves": {"set": _DYNAMICS, "grid": {"seed": _SEEDS}},
    "speed_accuracy": {"set": _DYNAMICS, "grid": {"learning.lr": [0.002, 0.004, 0.008, 0.016, 0.032],
                                                   "seed": _SEEDS}},
    "alignment_vs_p": {"set": {"run.n_breaths": 8000, "run.record_every": 1000, "learning.lr": 0.001,
                               "learning.decay": 0.1},
                       "grid": {"seed": _SEEDS}, "n_cortex": [200, 400, 800], "in_degree": [2, 6, 18, 54]},
    "update_alignment": {"set": _DYNAMICS, "grid": {"seed": _SEEDS}},
    "experiment_comparison": {"set": _DYNAMICS, "grid": {"seed": _SEEDS}},
}
SCALING_N = {"full": [1000, 3000, 10000, 30000, 100000], "quick": QUICK["alignment_vs_p"]["n_cortex"]}
"""The N at which ``alignment_vs_p`` is repeated (keeping K = pN of its grid)."""

TARGET = 0.5
"""The target alignment A* of the summary's inverse-scaling exponent and p* ratio."""


def _fig(name: str) -> Callable[[dict], Any]:
    from . import plots

    return {
        "learning_curves": lambda d: plots.learning_curves(d["learning_curves"]),
        "speed_accuracy": lambda d: plots.speed_accuracy(d["speed_accuracy"]),
        "alignment_vs_p": lambda d: plots.alignment_vs_p(d["alignment_vs_p"]),
        "inverse_scaling": lambda d: plots.inverse_scaling(d["alignment_vs_p"]),
        "hebbian_vs_sgd": lambda d: plots.hebbian_vs_sgd(d["alignment_vs_p"]),
        "update_alignment": lambda d: plots.update_alignment(d["update_alignment"]),
        "experiment_comparison": lambda d: plots.experiment_comparison(d["experiment_comparison"]),
    }[name]


FIGURES: dict[str, str] = {
    "learning_curves": "learning_curves",
    "speed_accuracy": "speed_accuracy",
    "alignment_vs_p": "alignment_vs_p",
    "inverse_scaling": "alignment_vs_p",
    "hebbian_vs_sgd": "alignment_vs_p",
    "update_alignment": "update_alignment",
    "experiment_comparison": "experiment_comparison",
}
"""Figure name → the experiment whose data it draws."""


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
    over = QUICK[exp.name] if quick else {}
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
    for n in SCALING_N["quick" if quick else "full"]:
        sub = set_dotted(base, "circuit.n_cortex", n)
        probs = [float(f"{k / n:.10g}") for k in degrees if k / n <= 1.0]
        out.append(Job(f"N{n}", sub, {**grid, "circuit.connection_prob": probs}))
    return out


def _fingerprint(exp: Experiment, job_list: list[Job]) -> str:
    from . import sweep

    parts = [exp.name] + [f"{j.label}:{sweep.fingerprint(j.base, j.grid)}" for j in job_list]
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
    from .config import validate

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
        ds = ds.expand_dims({k: [v] for k, v in zip(keys, combo)})
        ds.attrs["sweep_fingerprint"] = fp
        storage.write_dataset(ds, path)
        parts.append(ds)
    out = xr.combine_by_coords(parts, combine_attrs="drop_conflicts") if keys else parts[0]
    return out


def _with_in_degree(ds, n_cortex: int):
    """A sweep at one N with dim circuit.connection_prob → dim in_degree (K = pN), p kept as a coordinate."""
    import numpy as np

    from .plots.analysis import K_DIM, N_DIM, P_COORD

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
    fp = _fingerprint(exp, job_list)
    path = folder / RESULT
    if path.exists():
        ds = storage.read_dataset(path)
        if ds.attrs.get("fingerprint") == fp:
            log(f"  {exp.name}: stored result reused ({path})")
            return ds
        log(f"  {exp.name}: configuration changed since {path}; recomputing")
    start = time.perf_counter()
    log(f"  {exp.name}: {n_points(job_list)} runs in {len(job_list)} sweep(s) → {folder}/")
    parts = []
    for job in job_list:
        sub = folder / job.label if len(job_list) > 1 else folder
        if exp.per_neuron:
            ds = _run_per_neuron(job, sub)
        else:
            ds = _run_sweep(job, sub, progress)
        if exp.scale_n:
            ds = _with_in_degree(ds, validate(job.base).circuit.n_cortex)
        parts.append(ds)
    if exp.scale_n:
        # align the in-degree grids (identical K lists; p differs by N) and stack along N
        from .plots.analysis import K_DIM, N_DIM, P_COORD

        ks = parts[0][K_DIM].values
        parts = [d.assign_coords({K_DIM: ks}) if d.sizes[K_DIM] == ks.size else d for d in parts]
        p = xr.concat([d[P_COORD] for d in parts], dim=N_DIM)
        ds = xr.concat([d.drop_vars(P_COORD) for d in parts], dim=N_DIM, combine_attrs="drop_conflicts")
        ds = ds.assign_coords({P_COORD: p})
    else:
        ds = parts[0]
    cfg = validate(job_list[0].base)  # for scale_n: the first N's; each N's p is the coordinate
    ds.attrs = {k: v for k, v in parts[0].attrs.items() if k in ("olfacto_version", "jax_version", "device")}
    ds.attrs.update(config=cfg.to_yaml(), fingerprint=fp, mode="quick" if quick else "full",
                    grid=json.dumps({j.label: j.grid for j in job_list}, default=str),
                    compute_time_s=round(time.perf_counter() - start, 1))
    if exp.fixed_point:
        from .plots.analysis import SEED, hebbian_fixed_point

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


def load(name: str, out: str | Path = DEFAULT_OUT):
    """The stored result of experiment ``name`` (``out/data/<name>/result.nc``), without running anything."""
    from . import storage

    return storage.read_dataset(Path(out) / "data" / name / RESULT)


def make_figure(name: str, data: dict):
    """Figure ``name`` from a mapping experiment name → Dataset."""
    return _fig(name)(data)


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


def summarize(data: dict) -> dict:
    """The fitted numbers of the figures whose data are in ``data`` (experiment name → Dataset),
    with the theory's value of each (same estimator applied to the theory where that matters)."""
    import numpy as np

    from . import theory
    from .plots import analysis as an
    from .plots.update_alignment import chance_level

    out: dict[str, Any] = {}
    th: dict[str, Any] = {}
    dev: dict[str, float] = {}
    details: dict[str, Any] = {}

    if "alignment_vs_p" in data:
        ds = data["alignment_vs_p"]
        cfg = an.config_of(ds)
        m, mask = cfg.circuit.n_glomeruli, cfg.circuit.mask
        t_end = float(ds.breath.values[-1])
        slope, slope_th = an.small_p_exponent(ds, "hebbian")
        out["alignment_vs_p_exponent"] = slope
        th["alignment_vs_p_exponent"] = {"small_p_limit": theory.alignment_power_law_exponent(),
                                         "same_fit_on_theory": slope_th}
        ns = ds[an.N_DIM].values.astype(float)
        table = an.p_star_table(ds, [TARGET])
        mean, _ = an.mean_sem(table, an.SEED)
        rules = [str(r) for r in ds[an.RULE_DIM].values]
        out["inverse_scaling_exponent"] = {r: an.loglog_slope(ns, mean.sel({an.RULE_DIM: r}).isel(target=0).values)
                                           for r in rules}
        th["inverse_scaling_exponent"] = {
            r: {"mean_field": theory.inverse_scaling_exponent(),
                "local_at_largest_N": float(theory.inverse_scaling_exponent(TARGET, ns.max(), m, r, mask)),
                "same_grid_interpolation": an.loglog_slope(ns, an.theory_p_star_same_grid(ds, [TARGET], r)[:, 0])}
            for r in rules}
        details["p_star"] = {r: {f"N={int(n)}": float(mean.sel({an.RULE_DIM: r}).isel(target=0, **{an.N_DIM: i}))
                                 for i, n in enumerate(ns)} for r in rules}
        details["p_star_theory"] = {r: {f"N={int(n)}": float(theory.p_star(TARGET, n, m, r, mask)) for n in ns}
                                    for r in rules}
        details["target_alignment"] = TARGET
        if {"hebbian", "sgd"} <= set(rules):
            ratio = table.sel({an.RULE_DIM: "hebbian"}) / table.sel({an.RULE_DIM: "sgd"})
            per_n = ratio.mean(an.SEED).isel(target=0).values
            out["p_star_ratio_hebbian_over_sgd"] = float(np.nanmean(per_n))
            th["p_star_ratio_hebbian_over_sgd"] = float(theory.p_star_ratio(TARGET, m, n_cortex=ns.max(), mask=mask))
            details["p_star_ratio_per_N"] = {f"N={int(n)}": float(v) for n, v in zip(ns, per_n)}
        a_mean, _ = an.mean_sem(an.final(ds.alignment))
        gaps, sgd_gaps = [], []
        for i, n in enumerate(ds[an.N_DIM].values):
            p = ds[an.P_COORD].isel({an.N_DIM: i}).values
            if "hebbian" in rules:
                sim = a_mean.sel({an.RULE_DIM: "hebbian"}).isel({an.N_DIM: i}).values
                gaps.append(np.abs(sim - an.theory_alignment("hebbian", n, p, cfg, t_end)))
            if "sgd" in rules:
                keep = p * n <= m / 2
                sim = a_mean.sel({an.RULE_DIM: "sgd"}).isel({an.N_DIM: i}).values[keep]
                sgd_gaps.append(np.abs(sim - an.theory_alignment("sgd", n, p[keep], cfg)))
        if gaps:
            dev["alignment_vs_p: Hebbian, final breath"] = float(np.nanmax(np.concatenate(gaps)))
        if sgd_gaps:
            out["max_theory_deviation_sgd"] = float(np.nanmax(np.concatenate(sgd_gaps)))
            th["max_theory_deviation_sgd"] = ("online SGD at finite η sits below the optimum by ≈ ηM/4 "
                                              "(relative) plus unconverged slow modes; compared where K ≤ M/2")

    for name in ("learning_curves", "speed_accuracy"):
        if name not in data:
            continue
        ds = data[name]
        cfg = an.config_of(ds)
        kw = an.theory_args(cfg)
        n, p, lam = cfg.circuit.n_cortex, cfg.circuit.connection_prob, cfg.learning.decay
        args = (n, kw["n_glomeruli"], p, kw["noise"], kw["mask"])
        b = ds.breath.values
        mean, _ = an.mean_sem(ds.alignment)
        if name == "learning_curves":
            s = (1 + cfg.odors.noise**2) ** 2
            t_min = 10 * (s + 1)  # where the learning-curve formula applies (docs/theory.md §5)
            keep = b >= t_min
            worst = 0.0
            for lr in ds[an.LR_DIM].values:
                curve = theory.hebbian_learning_curve(b[keep], lr, lam, *args)
                worst = max(worst, float(np.nanmax(np.abs(mean.sel({an.LR_DIM: lr}).values[keep] - curve))))
            dev["learning_curves: t ≥ 10(s+1)"] = worst
        else:
            table = an.speed_accuracy_table(ds)
            lrs = ds[an.LR_DIM].values
            lin = an.linear_regime(lrs, lam, cfg)
            d_mean, _ = an.mean_sem(table.deficit)
            out["speed_accuracy_slope"] = an.loglog_slope(lrs[lin], d_mean.values[lin])
            th["speed_accuracy_slope"] = {
                "small_eta_limit": 1.0,
                "same_fit_on_theory": an.loglog_slope(lrs[lin], theory.hebbian_steady_state_deficit(lrs[lin], lam, *args))}
            tau_mean, _ = an.mean_sem(table.relaxation_time)
            details["speed_accuracy"] = {
                "learning_rates": lrs.tolist(), "fitted_on": lrs[lin].tolist(),
                "deficit": d_mean.values.tolist(),
                "deficit_theory": np.asarray(theory.hebbian_steady_state_deficit(lrs, lam, *args)).tolist(),
                "relaxation_time": tau_mean.values.tolist(),
                "relaxation_time_theory": np.asarray(theory.hebbian_relaxation_time(lrs, lam)).tolist(),
                "deficit_times_tau": (d_mean.values * tau_mean.values).tolist(),
                "speed_accuracy_constant_theory": float(theory.speed_accuracy_constant(*args)),
            }
            start = float(table.attrs["window_start"])
            window = b[b >= start]
            worst = 0.0
            for lr in lrs:
                th_mean = float(np.mean(theory.hebbian_learning_curve(window, lr, lam, *args)))
                worst = max(worst, abs(float(table.steady_alignment.sel({an.LR_DIM: lr}).mean()) - th_mean))
            dev["speed_accuracy: steady state"] = worst

    if "update_alignment" in data:
        ds = data["update_alignment"]
        cfg = an.config_of(ds)
        k_over_m = cfg.circuit.connection_prob * cfg.circuit.n_cortex / cfg.circuit.n_glomeruli
        after = ds.update_alignment.sel(breath=slice(1, None)).mean(an.SEED)
        table: dict[str, Any] = {}
        for rule in [str(r) for r in ds[an.RULE_DIM].values]:
            for lam in ds[an.DECAY_DIM].values:
                curve = after.sel({an.RULE_DIM: rule, an.DECAY_DIM: lam})
                key = f"hebbian, g={k_over_m / lam:g} (λ={lam:g})" if rule == "hebbian" else f"{rule}, λ={lam:g}"
                table[key] = {"mean": float(curve.mean()),
                              "min": float(curve.min()), "final": float(curve[-1])}
        # one value per trajectory (rule) and Hebbian gain g = K/(Mλ): the cosine changes sign with 1 − g
        out["update_alignment_mean"] = {key: row["mean"] for key, row in table.items()}
        out["update_alignment_min"] = {key: row["min"] for key, row in table.items()}
        details["update_alignment"] = {"along learning (t > 0), mean over seeds": table}
        th["update_alignment_mean"] = {"random_directions": chance_level(ds),
                                       "note": "no mean-field theory derived; chance = E|cos| of random directions; "
                                               "at the Hebbian fixed point the SGD residual is ≈ (1 − g) y_post + noise"}

    if "experiment_comparison" in data:
        ds = data["experiment_comparison"]
        cfg = an.config_of(ds)
        kinds = [str(k) for k in ds[an.KIND_DIM].values]
        rules = [str(r) for r in ds[an.RULE_DIM].values] if an.RULE_DIM in ds.dims else ["hebbian"]
        comp: dict[str, Any] = {"chance_decoding": 1.0 / cfg.run.n_probe}
        for rule in rules:
            for kind in kinds:
                sub = ds.sel({an.KIND_DIM: kind})
                sub = sub.sel({an.RULE_DIM: rule}) if an.RULE_DIM in ds.dims else sub
                r = sub.tuning_correlation.values.ravel()
                r = r[np.isfinite(r)]
                comp[f"{rule}, {kind}"] = {
                    "tuning_correlation_mean": float(r.mean()), "tuning_correlation_median": float(np.median(r)),
                    "fraction_positive": float((r > 0).mean()),
                    "decoding_transfer": float(an.final(sub.decoding_transfer).mean()),
                    "alignment": float(an.final(sub.alignment).mean())}
        if "gaussian" in kinds and "hebbian" in rules and cfg.circuit.activation == "linear":
            cfg_g = cfg.model_copy(update={"odors": cfg.odors.model_copy(update={"kind": "gaussian"})})
            kw = an.theory_args(cfg_g)
            n, p = cfg.circuit.n_cortex, cfg.circuit.connection_prob
            curve = float(theory.hebbian_learning_curve(float(ds.breath.values[-1]), cfg.learning.lr,
                                                        cfg.learning.decay, n, kw["n_glomeruli"], p, kw["noise"],
                                                        kw["mask"]))
            comp["hebbian, gaussian: theory"] = {
                "tuning_correlation_mean_fixed_point": float(theory.hebbian_tuning_alignment(
                    n, kw["n_glomeruli"], p, kw["mask"])),
                "tuning_correlation_mean_with_P_probes": float(an.tuning_correlation_theory_samples(
                    cfg_g, cfg.run.n_probe).mean()),
                "alignment": curve}
            dev["experiment_comparison: Hebbian, gaussian, final alignment"] = abs(
                comp["hebbian, gaussian"]["alignment"] - curve)
        details["experiment_comparison"] = comp

    if dev:
        out["max_theory_deviation"] = max(dev.values())
        th["max_theory_deviation"] = "0 up to finite N, seeds and probes; linear φ, gaussian odors, Hebbian rule"
        details["theory_deviations"] = dev
    out["theory"] = th
    out["details"] = details
    return _r(out)


# -- command line ------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (N ≤ 800, 3 seeds): all figures in < 10 min on a 2-core CPU")
    parser.add_argument("--only", nargs="+", action="extend", metavar="NAME",
                        help=f"make only these figures ({', '.join(FIGURES)})")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                        help="output folder: DIR/<figure>.{png,pdf}, DIR/summary.json, DIR/data/ (default: figures)")
    parser.add_argument("--jax-cache", metavar="DIR",
                        help="persistent XLA compilation cache (default: ~/.cache/olfacto/jax; 'off' disables)")
    parser.add_argument("--progress", action="store_true", help="show the sweeps' progress bars")


def _select(only: list[str] | None) -> list[str]:
    if not only:
        return list(FIGURES)
    bad = [n for n in only if n not in FIGURES]
    if bad:
        raise ConfigError(f"--only {bad[0]!r}: unknown figure; allowed: {', '.join(FIGURES)}")
    return [n for n in FIGURES if n in only]


def prepare_jax(cache: str | None = None) -> None:
    """Enable JAX's persistent compilation cache, unless the user configured one.

    (The CPU deadlock workaround is set for the whole package in ``olfacto/__init__.py``.)
    """
    import jax

    if cache == "off":
        return
    try:
        current = jax.config.read("jax_compilation_cache_dir")
    except Exception:  # noqa: BLE001
        current = getattr(jax.config, "jax_compilation_cache_dir", None)
    if current and not cache:
        return
    path = Path(cache or os.environ.get("OLFACTO_JAX_CACHE") or Path.home() / ".cache" / "olfacto" / "jax")
    try:
        path.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(path))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except Exception as exc:  # noqa: BLE001 - a cache is an optimisation only
        print(f"olfacto figures: no compilation cache ({exc})", file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    names = _select(args.only)
    quick = bool(args.quick)
    out = Path(args.out)
    prepare_jax(args.jax_cache)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import storage

    mode = "quick" if quick else "full"
    needed = list(dict.fromkeys(FIGURES[n] for n in names))
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    log(f"olfacto figures ({mode}): {', '.join(names)} → {out}/")
    data = {name: load_or_run(EXPERIMENTS[name], quick, out / "data" / name, args.progress, log) for name in needed}
    written = []
    for name in names:
        fig = make_figure(name, data)
        written += storage.save_figure(fig, out / name, formats=("png", "pdf"))
        plt.close(fig)
    summary = summarize(data)
    path = out / SUMMARY
    if args.only and path.exists():  # a partial remake keeps the other figures' numbers (same mode only)
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
