"""Command line: ``olfacto run | sweep | experiment | fit | figures | bench``.

Exit status: 0 success; 2 bad input (config file, key, type, value, output path,
a run that does not fit in memory — one line on stderr, no traceback); 3 a run
diverged (what it recorded is still written); 130 interrupted (Ctrl-C), 143 terminated
(SIGTERM): nothing half-written; a sweep keeps its finished points.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process it ended
MAX_SHUFFLES = 100_000  # olfacto experiment --shuffles: 100 times the default 1,000 (the null is held in memory)
MAX_BOOTSTRAP = 100_000  # olfacto experiment --bootstrap: ≈ 30 min on one core, the resamples held in memory


def _fail(message: str, status: int = EXIT_BAD_INPUT) -> int:
    print(f"olfacto: error: {message}", file=sys.stderr)
    return status


def _warn(message: str) -> None:
    print(f"olfacto: warning: {message}", file=sys.stderr)


# what an interrupt leaves behind, said in its one line (set by each command as its work advances)
_on_interrupt = ["interrupted"]


def _interrupt_note(message: str) -> None:
    _on_interrupt[0] = f"interrupted; {message}"


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one-line ConfigErrors (exit 2 like every bad input)."""

    def error(self, message: str):
        from ..config import ConfigError

        raise ConfigError(f"{message}; see '{self.prog} --help'")


def _out_of_memory(exc: BaseException) -> str | None:
    """The first line of an allocation failure (NumPy MemoryError, XLA RESOURCE_EXHAUSTED), else None."""
    text = str(exc)
    if isinstance(exc, MemoryError) or (type(exc).__name__ in ("JaxRuntimeError", "XlaRuntimeError")
                                        and ("RESOURCE_EXHAUSTED" in text or "Out of memory" in text)):
        return (text.strip().splitlines() or [type(exc).__name__])[0]
    return None


def _default_out(config_path: str) -> Path:
    return Path("results") / Path(config_path).stem


def _out_folder(out: str | None, config_path: str | None = None) -> Path:
    """``--out`` as a Path: the default when not given; an empty one is refused (it is not the default)."""
    from ..config import ConfigError

    if out is None and config_path is not None:
        return _default_out(config_path)
    if out is None or not str(out).strip():
        raise ConfigError(f"--out {out!r}: empty; give a folder (or leave --out out for the default)")
    return Path(out)


def cmd_run(args: argparse.Namespace) -> int:
    from .. import config as config_mod

    layout = {"--coordinator": args.coordinator, "--num-processes": args.num_processes,
              "--process-id": args.process_id, "--init-timeout": args.init_timeout}
    given = [k for k, v in layout.items() if v is not None]
    if given and not args.distributed:
        raise config_mod.ConfigError(f"{given[0]} {layout[given[0]]}: allowed only with --distributed")
    if args.distributed and args.save_state:
        raise config_mod.ConfigError("--save-state: not with --distributed (the network is split over the processes; "
                                     "save it from Python with Result.save on one host)")
    if args.distributed:  # first, before any JAX computation, and only in this mode
        from ..engine import sharding

        timeout = sharding.INIT_TIMEOUT_S if args.init_timeout is None else args.init_timeout
        sharding.distributed_initialize(args.coordinator, args.num_processes, args.process_id, timeout,
                                        log=lambda m: print(f"olfacto run --distributed: {m}", file=sys.stderr))

    cfg = config_mod.load(args.config, args.set or [])
    from ..config import checks
    from ..engine import resources
    from ..recordings import glomeruli

    # everything that can be checked is checked before any work: data, memory, output paths
    glomeruli.check_library(cfg)
    if not args.no_memory_check and (split := resources.shard_to_fit(cfg)) is not None:
        cfg = split
        _warn(f"circuit.n_cortex={cfg.circuit.n_cortex} does not fit one device but fits split over the "
              "local devices: circuit.shard set to true")
    need = None if args.no_memory_check else resources.check([cfg])
    out = _out_folder(args.out, args.config)
    checks.check_outputs(out, files=["result.nc"] + ([] if args.no_plot else ["learning_curve.png"])
                         + (["state.nc"] if args.save_state else []))
    set_keys = [config_mod.parse_override(text)[0] for text in args.set or []]
    for line in checks.warnings_for(cfg) + checks.inert_warnings(cfg, set_keys):
        _warn(line)
    if args.distributed and not cfg.circuit.shard:
        _warn("--distributed without circuit.shard: true: every process runs the whole network "
              "(--set circuit.shard=true splits it over all processes' devices)")
    from .. import plots  # heavy imports only once the input is valid
    from ..engine import loop, storage
    from ..model import measures

    print(f"olfacto run: N={cfg.circuit.n_cortex}, M={cfg.circuit.n_glomeruli}, p={cfg.circuit.connection_prob} "
          f"({cfg.circuit.mask}), rule={cfg.learning.rule}, η={cfg.learning.lr}, {cfg.run.n_breaths} breaths"
          + (f", ≈ {resources.gib(need)}" if need else "") + f" → {out}/", file=sys.stderr)
    if (odors := glomeruli.describe(cfg)) is not None:
        print(f"olfacto run: {odors}", file=sys.stderr)
    start = time.perf_counter()
    status = 0
    _interrupt_note(f"nothing written to {out}/ (a result.nc already there is unchanged)")
    try:
        result = loop.run(cfg, progress=None if not args.quiet else False)
        ds = result.dataset
    except loop.Diverged as exc:
        ds, status, result = exc.dataset, EXIT_DIVERGED, None
        print(f"olfacto: run diverged: {exc}", file=sys.stderr)
    wall = time.perf_counter() - start
    if args.distributed:
        from ..engine import sharding

        if not sharding.is_main_process():  # every process computed the same records; process 0 writes them
            return status
    path = storage.write_dataset(ds, out / "result.nc")
    state_path = None
    if args.save_state and result is not None:  # a diverged network is not worth keeping
        from ..engine import checkpoint

        state_path = checkpoint.save_state(result, out)
    _interrupt_note(f"{path} is written, its plot may not be")
    if not args.no_plot and ds.sizes["breath"] > 1:
        rewired = f", rewiring {cfg.rewiring.rule}" if cfg.rewiring.rule != "none" else ""
        fig = plots.learning_curve(ds, title=f"{Path(args.config).stem}: {cfg.learning.rule}, N={cfg.circuit.n_cortex}, "
                                             f"p={cfg.circuit.connection_prob}{rewired}", log_time=args.log_time)
        try:
            storage.save_figure(fig, out / "learning_curve")
        except storage.WriteError as exc:  # the result is safe: say so in the one line
            raise config_mod.ConfigError(f"{path} is written, but its plot is not: {exc}") from None
    last = ds.isel(breath=-1)
    print(summary_table(ds, cfg))
    print(f"{'wall time':<22}{wall:.1f} s")
    print(f"{'result':<22}{path}")
    if state_path is not None:
        print(f"{'learned network':<22}{state_path}  (olfacto.load({str(out)!r}))")
    if status == 0:
        for line in checks.nan_warnings({name: float(last[name]) for name in measures.recorded(measures.ALL_COMPONENTS) if name in ds}):
            _warn(line)
    return status


def summary_table(ds, cfg) -> str:
    """Every recorded measure at the last record, with the mean-field prediction beside the alignments
    when ``cfg`` is in the analysable case (and the reason when it is not)."""
    from ..model.prediction import prediction, rewiring_references
    from ..model import measures

    last = ds.isel(breath=-1)
    pred = prediction(cfg)
    theory = {} if isinstance(pred, str) else pred.values()
    from ..model.rewiring import LONG_NAMES as REWIRING_NAMES

    names = [n for n in [*measures.recorded(measures.ALL_COMPONENTS), *REWIRING_NAMES] if n in ds]
    width = max(22, max(map(len, names)) + 2)
    lines = [f"{'breaths':<{width}}{int(last.breath)}" + (f"{'':10}theory" if theory else "")]
    for name in names:
        value = float(last[name])
        extra = f"{theory[name]:>16.4f}" if name in theory else ""
        if name == "tuning_alignment" and extra and pred.curve is not None:  # the alignment's is online, this not
            extra += "  (at the fixed point, not online)"
        lines.append(f"{name:<{width}}{value:.4f}{extra}")
    if theory:  # the mean-field theory is that of ŷ = (W ⊙ C) y_pre, the indirect response through the projection
        recurrent = any(name.endswith("_recurrent") or "_recurrent_" in name for name in names)
        lines.append(f"theory: {pred.what}; of ŷ, the indirect response through W"
                     + ("; none for the recurrently refined z_T (the *_recurrent rows)" if recurrent else ""))
    else:
        lines.append(f"theory: none for this config ({pred})")
        ref = rewiring_references(cfg)
        if ref is not None:
            lines.append(f"rewiring against theory at the same K = {ref.in_degree:g}: alignment {ref.fixed:.4f} on a "
                         f"fixed random mask (online steady state), {ref.best:.4f} on each neuron's K best partners "
                         "(the bound, at the fixed point)")
    from ..recordings.virtual import LONG_NAMES

    protocol_names = [n for n in LONG_NAMES if n in ds]
    if protocol_names:  # the recordings' protocol on the learned network (no breath dimension)
        lines.append("under the recordings' protocol (olfacto.recordings.virtual):")
        pw = max(width, max(map(len, protocol_names)) + 2)
        lines += [f"{name:<{pw}}{float(ds[name].values.reshape(-1)[0]):.4f}" for name in protocol_names]
    return "\n".join(lines)


def cmd_sweep(args: argparse.Namespace) -> int:
    from .. import config as config_mod
    from ..config import ConfigError

    if args.status:
        from .. import sweeps as sweep

        print(sweep.status(args.status))
        return 0
    if not args.config:
        raise ConfigError("sweep: give CONFIG.yaml (or --status DIR); see 'olfacto sweep --help'")
    if args.cluster and args.executor:
        raise ConfigError(f"--cluster {args.cluster!r} and --executor {args.executor!r}: choose one way to run the sweep")
    if args.cluster:
        from ..sweeps import dask

        dask.check_spec(args.cluster)  # before any work
    if args.executor:
        from ..sweeps import slurm

        slurm.check_options(args.executor, args.array, args.time, args.gpus)  # before the store is made
    if not args.cluster and not args.executor:
        from ..engine import devices

        devices.batches_at_once()  # a bad $OLFACTO_BATCHES_AT_ONCE is an error before any work
    base = config_mod.read_yaml(args.config)
    sets = [config_mod.parse_override(text) for text in args.set or []]
    config_mod.check_unique([key for key, _ in sets], "--set")
    for key, value in sets:
        base = config_mod.set_dotted(base, key, value)
    from .. import sweeps as sweep
    from ..config import checks
    from ..engine import resources
    from ..recordings import glomeruli

    grid = sweep.grid_from(base, args.grid or [])
    for key in grid:
        clash = [k for k, _ in sets if k == key or k.startswith(key + ".") or key.startswith(k + ".")]
        if clash:
            raise ConfigError(f"--grid {key!r}: also set with --set {clash[0]!r}; give each key once")
    if not grid:
        raise ConfigError("no grid: give --grid KEY=V1,V2,... or a 'sweep:' section in the config")
    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size {args.batch_size}: must be ≥ 1")
    if args.old_shard is not None:
        if args.part is not None:
            raise ConfigError("--shard and --part: give --part only (--shard is its old name)")
        part = sweep.parse_part(args.old_shard, "--shard")  # a bad value: one line naming the option given
        _warn("--shard I/N is now --part I/N (a network sharded over devices is circuit.shard)")
    else:
        part = sweep.parse_part(args.part)
    out = _out_folder(args.out, args.config)
    total = sweep.n_points(grid)
    # everything that can be checked is checked before any work or output: points, data, memory, paths
    points = sweep.expand(base, grid)
    libraries = {_library_key(p.config): p.config for p in points}.values()
    for cfg in libraries:
        glomeruli.check_library(cfg)
    if not args.no_memory_check:
        largest = max(sweep.plan(points, args.batch_size),
                      key=lambda b: resources.estimate([p.config for p in b], len(b)))
        resources.check([p.config for p in largest], len(largest), option="--batch-size")
    inert = [(key, "--set") for key, _ in sets] + [(key, "--grid") for key in grid]
    for line in dict.fromkeys(line for p in points for line in checks.warnings_for(p.config)
                              + [w for key, opt in inert for w in checks.inert_warnings(p.config, [key], opt)]):
        _warn(line)
    checks.check_outputs(out, folders=[sweep.STORE])
    sweep.open_store(out, base, grid, points)
    print(f"olfacto sweep: {total} points over {', '.join(f'{k} ({len(v)})' for k, v in grid.items())}"
          + (f", part {part[0] + 1}/{part[1]}" if part[1] > 1 else "") + f" → {out}/{sweep.STORE}", file=sys.stderr)
    for cfg in libraries:
        if (odors := glomeruli.describe(cfg)) is not None:
            print(f"olfacto sweep: {odors}", file=sys.stderr)
    _interrupt_note(f"the finished points are kept in {out / sweep.STORE} (run the same command to resume)")
    from ..engine import runtime

    if args.executor:
        from ..sweeps import slurm

        slurm.submit_array(base, grid, out, args.array, args.executor, args.partition, args.time, args.gpus,
                             args.batch_size, runtime.compilation_cache(args.jax_cache), args.wait,
                             log=lambda m: print(f"olfacto sweep: {m}", file=sys.stderr))
        if not args.wait:
            return 0
        print(sweep.status(out))
        return 0
    ds = sweep.run_sweep(base, grid, out, part=part, batch_size=args.batch_size, progress=not args.quiet,
                         cluster=args.cluster, cache=runtime.compilation_cache(args.jax_cache) if args.cluster else None)
    done = int(ds.done.sum())
    print(f"points done        {done}/{total}")
    print(f"diverged           {int(ds.diverged.sum())}")
    if done:
        final = ds.alignment.isel(breath=-1).where(ds.done)
        print(f"final alignment    min {float(final.min()):.4f}, max {float(final.max()):.4f}")
    print(f"wall time          {ds.attrs['wall_time_s']:.1f} s")
    print(f"result             {out / sweep.STORE}")
    if done == total:
        _rewiring_report(ds, out, plot=not args.no_plot)
    return 0


READINGS_MAX = 12
"""A rewiring comparison that also varies other keys is read per combination of their values, up to this many."""


def _rewiring_report(ds, out: Path, plot: bool) -> None:
    """A finished sweep comparing rewiring rules with the fixed mask over K (``rewiring.rule`` with ``none`` ×
    ``circuit.connection_prob``, × N, × seed): print the synapse saving against its bound, and draw
    ``rewiring.png`` (alignment vs K per rule and N, with both theories) and ``rewiring_saving.png`` into ``out``.
    A sweep that also varies other keys (ζ, σ, …) is read per combination of their values, each with its own
    theory (``chapter3.synapse_saving(store.sel(fraction=0.1))``) and figures (``rewiring_fraction=0.1.png``),
    up to :data:`READINGS_MAX` combinations; beyond, one line says how to read one."""
    import itertools

    import numpy as np

    from ..analysis import chapter3

    extras = chapter3.comparison_extras(ds)
    if extras is None:
        if chapter3.lacks_fixed_mask(ds):
            print("synapse saving     not read: add rewiring.rule=none to the grid (the fixed mask the rules save "
                  "synapses against)")
        return
    values = [[np.asarray(v).item() for v in ds[d].values] for d in extras]
    combos = list(itertools.product(*values))
    if len(combos) > READINGS_MAX:  # one saving per value of each: the user's selection
        first = ", ".join(f"{d}={v!r}" for d, v in zip(extras, combos[0]))
        print(f"synapse saving     the sweep also varies {', '.join(extras)} ({len(combos)} combinations): read it "
              f"per value, e.g. chapter3.synapse_saving(store.sel({first})) (docs/chapters.md)")
        return
    ds = ds.load()
    for combo in combos:
        at = dict(zip(extras, combo))
        if at:
            print(f"at {', '.join(f'{d} = {chapter3.value_label(v)}' for d, v in at.items())}")
        point = ds.sel(at)
        for line in chapter3.saving_lines(chapter3.synapse_saving(point)):
            print(line)
        if plot:
            _rewiring_figures(point, out, "".join(f"_{d}={chapter3.value_label(v)}" for d, v in at.items()))


def _rewiring_figures(ds, out: Path, suffix: str) -> None:
    """``rewiring{suffix}.png`` and ``rewiring_saving{suffix}.png`` of one comparison into ``out``."""
    import matplotlib.pyplot as plt

    from .. import plots, sweeps
    from ..config import ConfigError
    from ..engine import storage

    for name in ("rewiring", "rewiring_saving"):
        fig = getattr(plots, name)(ds)
        try:
            path = storage.save_figure(fig, out / f"{name}{suffix}")[0]
        except storage.WriteError as exc:  # the store is safe: say so in the one line
            raise ConfigError(f"{out / sweeps.STORE} is written, but its plot is not: {exc}") from None
        finally:
            plt.close(fig)  # up to 2 × READINGS_MAX figures in one sweep's report
        print(f"{'figure':<19}{path}")


def cmd_experiment(args: argparse.Namespace) -> int:
    """Read the recordings, measure them per region, write ``out/experiment.nc`` and the figure."""
    from ..config import ConfigError
    from ..recordings import experiment, ipsicontra

    from ..config import checks

    # everything checked before any work: the options, the output paths, the data
    if not 1 <= args.shuffles <= MAX_SHUFFLES:  # the null is held in memory, one value per shuffle and region
        raise ConfigError(f"--shuffles={args.shuffles}: allowed: an integer from 1 to {MAX_SHUFFLES:,}")
    if not 0 <= args.bootstrap <= MAX_BOOTSTRAP:  # 0: no intervals
        raise ConfigError(f"--bootstrap={args.bootstrap}: allowed: an integer from 0 (off) to {MAX_BOOTSTRAP:,}")
    if not 0 <= args.seed <= 2**32 - 1:
        raise ConfigError(f"--seed={args.seed}: allowed: an integer from 0 to {2**32 - 1}")
    out = _out_folder(args.out)
    ipsicontra.resolve(args.data_dir)  # a missing data folder is named before the output folder is made
    figures = [] if args.no_plot else [experiment.FIGURE + ".png", experiment.FIGURE + ".pdf"]
    checks.check_outputs(out, files=[experiment.RESULT, *figures])
    ds = ipsicontra.load(args.data_dir)  # raises ConfigError on bad input, before any output
    from .. import plots
    from ..engine import storage

    from ..engine import progress as progress_mod

    n_regions = len(set(ds["region"].values.tolist())) if "region" in ds.coords else 1
    bar = progress_mod.bar(args.shuffles * n_regions, "shuffled null", "shuffle", delay=2.0)
    boot = progress_mod.bar(args.bootstrap * n_regions, "bootstrap", "resample", delay=2.0)
    try:
        result = experiment.measure(ds, seed=args.seed, n_shuffles=args.shuffles, done=bar.update,
                                    n_bootstrap=args.bootstrap, bootstrap_done=boot.update)
    finally:
        bar.close()
        boot.close()
    storage.write_dataset(result, out / experiment.RESULT)
    if not args.no_plot:
        storage.save_figure(plots.experiment_measures(result), out / experiment.FIGURE, formats=("png", "pdf"))
    print(experiment.table(result))
    print(f"result             {out / experiment.RESULT}")
    return 0


def _library_key(cfg) -> tuple:
    """What the measured-odor library of a config depends on (one check per distinct library): its data keys
    (every key of role ``data``), M and the mixtures it asks for."""
    from ..config.tree import data_key

    return data_key(cfg), cfg.circuit.n_glomeruli, cfg.odors.n_components


def _cache_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jax-cache", metavar="DIR",
                   help="persistent compilation cache folder, or 'off' (default: $OLFACTO_JAX_CACHE or "
                        "~/.cache/olfacto/jax): a shape compiled once loads in a fraction of its compile time")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="olfacto", description="Bilateral olfactory cortex simulator (JAX).")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"olfacto {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run one experiment and write DIR/result.nc")
    p.add_argument("config", metavar="CONFIG.yaml")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: results/<config name>)")
    p.add_argument("--no-plot", action="store_true", help="do not write learning_curve.png")
    p.add_argument("--save-state", action="store_true",
                   help="also write state.nc: the learned network (W, masks, A, optimizer state; N·K-sized); "
                        "olfacto.load(OUT) gives it back as a Result")
    p.add_argument("--log-time", action="store_true", help="learning_curve.png with breaths on a log axis")
    p.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize first: one network over the devices of several processes "
                        "(with circuit.shard: true); the layout comes from SLURM / Open MPI, or the three options below")
    p.add_argument("--coordinator", metavar="HOST:PORT",
                   help="with --distributed: address of process 0 (default: detected, or $JAX_COORDINATOR_ADDRESS)")
    p.add_argument("--num-processes", type=int, metavar="N", help="with --distributed: how many processes in all")
    p.add_argument("--process-id", type=int, metavar="I", help="with --distributed: this process's rank, 0 … N−1")
    p.add_argument("--init-timeout", type=int, metavar="S",
                   help="with --distributed: seconds to wait for the coordinator and every process (default: 60)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-memory-check", action="store_true",
                   help="start even when the memory estimate exceeds the memory available")
    _cache_option(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="run a Cartesian grid of experiments into DIR/sweep.zarr (resumable)")
    p.add_argument("config", metavar="CONFIG.yaml", nargs="?")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2,...", help="a grid dimension (repeatable)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: results/<config name>)")
    p.add_argument("--part", metavar="I/N", help="run only the I-th of N disjoint parts of the sweep into the same store")
    p.add_argument("--shard", metavar="I/N", dest="old_shard", help=argparse.SUPPRESS)  # the old name of --part
    p.add_argument("--cluster", metavar="SPEC",
                   help="run the batches on a Dask cluster: local:N, tcp://HOST:PORT or a scheduler .json file "
                        "(the store must be on a filesystem every worker sees)")
    p.add_argument("--status", metavar="DIR", help="show the points done and missing in DIR/sweep.zarr, then exit")
    p.add_argument("--executor", choices=["slurm", "local"],
                   help="submit the sweep as a job array of --part parts with submitit and return "
                        "(local: the same array as local processes); re-submitting runs only missing points")
    p.add_argument("--array", type=int, default=4, metavar="N", help="tasks of the job array (default: %(default)s)")
    p.add_argument("--partition", help="SLURM partition of the array")
    p.add_argument("--time", type=int, default=60, metavar="MIN", help="time limit per task in minutes (default: %(default)s)")
    p.add_argument("--gpus", type=int, default=0, metavar="G", help="GPUs per task (default: %(default)s)")
    p.add_argument("--wait", action="store_true", help="with --executor: wait for the tasks to finish")
    p.add_argument("--batch-size", type=int, metavar="B", help="grid points per vmapped batch (default: by memory)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-plot", action="store_true",
                   help="do not write rewiring.png and rewiring_saving.png (drawn for a sweep over rewiring.rule "
                        "with none × circuit.connection_prob)")
    p.add_argument("--no-memory-check", action="store_true",
                   help="start even when the memory estimate of a batch exceeds the memory available")
    _cache_option(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("experiment", help="the experiment's measures per region on the bilateral recordings")
    p.add_argument("data_dir", metavar="DATA_DIR", help="the IpsiContra data folder (or its .mat file)")
    p.add_argument("--out", metavar="DIR", default="results/experiment", help="output folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the odor-shuffled null and of the bootstrap (default: %(default)s)")
    p.add_argument("--shuffles", type=int, default=1000, metavar="S",
                   help="shuffles of the null (default: %(default)s)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="hierarchical-bootstrap resamples (mice, then neurons) for the 95 %% intervals; 0: none "
                        "(default: %(default)s)")
    p.add_argument("--no-plot", action="store_true", help="do not write experiment.png/.pdf")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("fit", help="fit the model, under the recordings' protocol, to each recorded region")
    p.add_argument("data_dir", metavar="DATA_DIR", help="the IpsiContra data folder (or its .mat file)")
    p.add_argument("--config", metavar="BASE.yaml", help="base network (default: experiments/fit_experiment.yaml)")
    p.add_argument("--out", metavar="DIR", default="results/fit", help="output folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="a small grid (minutes on a laptop CPU)")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2,…",
                   help="replace a grid axis (repeatable): in_degree (K, inputs per neuron; not a config key: each "
                        "point sets circuit.connection_prob = K/N), learning.lr, trial_noise (protocol.trial_noise), seed")
    p.add_argument("--compare", action="store_true",
                   help="the model comparison: fit the Hebbian, SGD and measured-odor networks on a grid with "
                        "protocol.gain_spread and protocol.alpha_mix, and tabulate each family's log evidence and "
                        "checks per region (DIR/compare.nc, DIR/compare.md)")
    _cache_option(p)
    p.set_defaults(func=cmd_fit)

    from ..experiments import figures

    p = sub.add_parser("figures", help="regenerate the thesis figures (PNG + PDF) and DIR/summary.json")
    figures.add_arguments(p)
    _cache_option(p)
    p.set_defaults(func=figures.main)
    p = sub.add_parser("bench", help="benchmark olfacto (benchmarks/ of the source tree; 'olfacto bench --help')",
                       add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_bench)
    return parser


def cmd_bench(args: argparse.Namespace) -> int:
    """``olfacto bench``: the benchmarks live beside the package (``benchmarks/bench.py``), not in it."""
    from ..config import ConfigError

    root = Path(__file__).resolve().parents[2]
    if not (root / "benchmarks" / "bench.py").is_file():
        raise ConfigError(f"bench: needs the source tree's benchmarks/ folder (not found beside {root / 'olfacto'}); "
                          "run olfacto bench from a clone of the repository")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks import bench

    parser = _Parser(prog="olfacto bench", description=bench.__doc__.splitlines()[0])
    bench.add_arguments(parser)
    return bench.main(parser.parse_args(args.bench_args))


def cmd_fit(args: argparse.Namespace) -> int:
    from ..config import checks
    from ..experiments import fit
    from ..recordings import ipsicontra

    ipsicontra.resolve(args.data_dir)  # a missing or unreadable data folder is a one-line error first
    args.out = str(_out_folder(args.out))
    if args.compare:
        from ..experiments import compare

        checks.check_outputs(Path(args.out), files=[compare.RESULT, compare.TABLE])
        return compare.main_cli(args)
    checks.check_outputs(Path(args.out), files=[fit.RESULT, fit.FIGURE + ".png", fit.FIGURE + ".pdf"])
    return fit.main_cli(args)


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (bad input, interrupts and running out of memory included)."""
    _on_interrupt[0] = "interrupted"
    from ..engine import runtime
    from ..config import ConfigError

    runtime.cpu_scheduler_workaround()  # before the first JAX computation of this process
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        if argv[:1] == ["bench"]:  # all of its options are the benchmark's (argparse's REMAINDER drops a leading --x)
            args = argparse.Namespace(bench_args=argv[1:], func=cmd_bench)
        else:
            args = build_parser().parse_args(argv)
        # commands that compile simulations use the persistent cache (--jax-cache); the others (bench times
        # compiles, experiment compiles nothing) decide "off", so the first simulation's runtime.ensure adds none
        runtime.compilation_cache(getattr(args, "jax_cache", None) if hasattr(args, "jax_cache") else "off",
                                  log=lambda msg: print(f"olfacto: warning: {msg}", file=sys.stderr))
        return args.func(args)
    except ConfigError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail(_on_interrupt[0], EXIT_INTERRUPTED)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:
        message = _out_of_memory(exc)
        if message is None:
            raise
        return _fail(f"out of memory: {message} (olfacto run/sweep estimate memory before starting; "
                     "lower circuit.n_cortex, circuit.connection_prob or --batch-size)")


def _exit_on_interrupt(signum, frame) -> None:
    """SIGINT handler of the ``olfacto`` command: say what is kept, then leave at once (exit 130).

    Python's own handler raises KeyboardInterrupt wherever the main thread is — inside a JAX
    garbage-collection callback it is printed as "Exception ignored" and lost (the run goes
    on), and once it does unwind, finalizing the interpreter while XLA threads still compile
    or compute crashed (SIGSEGV, exit 139, 4 of 5 tries). Nothing needs the unwinding:
    results are written to a temporary file and renamed, sweep points are fsynced before
    their done flag and checksummed, so ``os._exit`` loses only work in flight.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # the handler may interrupt a write to that very stream
            pass
    lead = "\n" if sys.stderr.isatty() else ""  # after a progress bar's partial line
    terminated = signum == signal.SIGTERM
    word = _on_interrupt[0].replace("interrupted", "terminated (SIGTERM)", 1) if terminated else _on_interrupt[0]
    os.write(2, f"{lead}olfacto: error: {word}\n".encode())
    os._exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)


def console() -> None:
    """The ``olfacto`` command (``main`` with exit statuses, and Ctrl-C handled as above)."""
    signal.signal(signal.SIGINT, _exit_on_interrupt)
    signal.signal(signal.SIGTERM, _exit_on_interrupt)  # a scheduler's or kill's stop: the same, exit 143 (128 + 15)
    sys.exit(main())


if __name__ == "__main__":
    console()
