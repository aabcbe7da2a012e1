"""Command line: ``olfacto run | sweep | experiment | figures | bench``.

Exit status: 0 success; 2 bad input (config file, key, type, value — one line on
stderr, no traceback); 3 a run diverged (what it recorded is still written).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import config as config_mod
from .config import ConfigError

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


def _fail(message: str, status: int = EXIT_BAD_INPUT) -> int:
    print(f"olfacto: error: {message}", file=sys.stderr)
    return status


def _default_out(config_path: str) -> Path:
    return Path("results") / Path(config_path).stem


def cmd_run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config, args.set or [])
    from . import plots, simulate, storage  # heavy imports only once the input is valid

    out = Path(args.out) if args.out else _default_out(args.config)
    print(f"olfacto run: N={cfg.circuit.n_cortex}, M={cfg.circuit.n_glomeruli}, p={cfg.circuit.connection_prob} "
          f"({cfg.circuit.mask}), rule={cfg.learning.rule}, η={cfg.learning.lr}, {cfg.run.n_breaths} breaths → {out}/",
          file=sys.stderr)
    start = time.perf_counter()
    status = 0
    try:
        ds = simulate.run(cfg, progress=None if not args.quiet else False).dataset
    except simulate.Diverged as exc:
        ds, status = exc.dataset, EXIT_DIVERGED
        print(f"olfacto: run diverged: {exc}", file=sys.stderr)
    wall = time.perf_counter() - start
    path = storage.write_dataset(ds, out / "result.nc")
    if not args.no_plot and ds.sizes["breath"] > 1:
        import matplotlib.pyplot as plt

        fig = plots.learning_curve(ds, title=f"{Path(args.config).stem}: {cfg.learning.rule}, N={cfg.circuit.n_cortex}, "
                                             f"p={cfg.circuit.connection_prob}")
        storage.save_figure(fig, out / "learning_curve")
        plt.close(fig)
    last = ds.isel(breath=-1)
    print(f"breaths            {int(last.breath)}")
    print(f"alignment L→R      {float(last.alignment_L_to_R):.4f}")
    print(f"alignment R→L      {float(last.alignment_R_to_L):.4f}")
    print(f"alignment (mean)   {float(last.alignment):.4f}")
    print(f"tuning alignment   {float(last.tuning_alignment):.4f}")
    print(f"wall time          {wall:.1f} s")
    print(f"result             {path}")
    return status


def cmd_sweep(args: argparse.Namespace) -> int:
    base = config_mod.read_yaml(args.config)
    for text in args.set or []:
        base = config_mod.set_dotted(base, *config_mod.parse_override(text))
    from . import sweep

    grid = sweep.grid_from(base, args.grid or [])
    shard = sweep.parse_shard(args.shard)
    out = Path(args.out) if args.out else _default_out(args.config)
    total = sweep.n_points(grid)
    sweep.open_store(out, base, grid, sweep.expand(base, grid))  # validate everything before any output
    print(f"olfacto sweep: {total} points over {', '.join(f'{k} ({len(v)})' for k, v in grid.items())}"
          + (f", shard {shard[0] + 1}/{shard[1]}" if shard[1] > 1 else "") + f" → {out}/{sweep.STORE}", file=sys.stderr)
    ds = sweep.run_sweep(base, grid, out, shard=shard, batch_size=args.batch_size, progress=not args.quiet)
    done = int(ds.done.sum())
    print(f"points done        {done}/{total}")
    print(f"diverged           {int(ds.diverged.sum())}")
    if done:
        final = ds.alignment.isel(breath=-1).where(ds.done)
        print(f"final alignment    min {float(final.min()):.4f}, max {float(final.max()):.4f}")
    print(f"wall time          {ds.attrs['wall_time_s']:.1f} s")
    print(f"result             {out / sweep.STORE}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from . import experiment

    out = Path(args.out)
    result = experiment.run(args.data_dir, out, seed=args.seed, n_shuffles=args.shuffles, plot=not args.no_plot)
    experiment.report(result, out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="olfacto", description="Bilateral olfactory cortex simulator (JAX).")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"olfacto {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run one experiment and write DIR/result.nc")
    p.add_argument("config", metavar="CONFIG.yaml")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: results/<config name>)")
    p.add_argument("--no-plot", action="store_true", help="do not write learning_curve.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="run a Cartesian grid of experiments into DIR/sweep.zarr (resumable)")
    p.add_argument("config", metavar="CONFIG.yaml")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2,...", help="a grid dimension (repeatable)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: results/<config name>)")
    p.add_argument("--shard", metavar="I/N", help="run only the I-th of N disjoint slices into the same store")
    p.add_argument("--batch-size", type=int, metavar="B", help="grid points per vmapped batch (default: by memory)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("experiment", help="the experiment's measures per region on the bilateral recordings")
    p.add_argument("data_dir", metavar="DATA_DIR", help="the IpsiContra data folder (or its .mat file)")
    p.add_argument("--out", metavar="DIR", default="results/experiment", help="output folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the odor-shuffled null (default: %(default)s)")
    p.add_argument("--shuffles", type=int, default=1000, metavar="S",
                   help="shuffles of the null (default: %(default)s)")
    p.add_argument("--no-plot", action="store_true", help="do not write experiment.png/.pdf")
    p.set_defaults(func=cmd_experiment)

    from . import bench, figures

    for module, help_text in [(figures, "regenerate the thesis figures (PNG + PDF) and DIR/summary.json"),
                              (bench, "benchmark olfacto against a plain NumPy implementation")]:
        p = sub.add_parser(module.__name__.rsplit(".", 1)[1], help=help_text)
        module.add_arguments(p)
        p.set_defaults(func=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    from . import runtime

    runtime.cpu_scheduler_workaround()  # before the first JAX computation of this process
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
