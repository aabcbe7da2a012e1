"""Running a sweep: points grouped into batches, each batch run and written by one batch runner.

Execution plan (deterministic, so a resumed or split sweep computes exactly the same batches
as an uninterrupted one):

1. expand the grid into points (:mod:`olfacto.sweeps.grid`);
2. group the points by their static part (the compiled Spec: shapes and kinds — N, M, rule, …);
   points that differ only in seed and traced parameters (η, λ, σ, p, …) share one compiled
   program and run as one ``vmap``, the synapse slots K_max padded to the largest p's
   (:func:`olfacto.model.network.batch_spec`; each point keeps the synapses it draws alone);
3. cut each group into batches of at most ``batch_size`` points, each padded to its group's slots (one
   program per group however it is cut); batch b belongs to part
   ``b mod n`` (``--part I/N``);
4. run each batch with :func:`olfacto.sweeps.batch.run_and_write` — here in this process (on a CPU,
   :func:`olfacto.engine.devices.batches_at_once` of them at once, each in a thread, the groups cut into at
   least that many batches), or as tasks on a Dask cluster (:mod:`olfacto.sweeps.dask`) — which writes its
   points into the store (:mod:`olfacto.sweeps.store`) and then sets their ``done`` flags.

Re-running the same command skips the batches whose points are all done.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import xarray as xr

from ..config import ConfigError
from ..engine import resources
from ..engine import progress as progress_mod
from ..engine.devices import batches_at_once, groups, map_batches
from ..model.network import batch_spec, slots_of
from .batch import run_and_write, slots
from .grid import Point, expand
from .store import done_flags, locate, open_result, open_store, verify


def plan(points: list[Point], batch_size: int | None = None, memory_budget: float = 2e9,
         at_once: int = 1) -> list[list[Point]]:
    """Batches of points sharing a Spec, in a deterministic order; each point carries its group's slot counts
    (``Point.slots``), so every batch of a group compiles the one padded program, however the group is cut.
    Without ``batch_size`` a group is cut into at least ``at_once`` batches (as many as run at once), each of
    at most ``memory_budget / at_once`` bytes."""
    batches = []
    for group in groups([p.config for p in points]):
        own = [slots_of(points[i].config) for i in group]
        pad = {key: max(o[key] for o in own) for key in own[0]}
        members = [replace(points[i], slots=tuple(sorted(pad.items()))) for i in group]
        largest = members[max(range(len(own)), key=lambda j: sum(own[j].values()))].config
        per_run = resources.bytes_per_run(largest)  # every run of a batch has the slots of its group's largest p
        size = batch_size or max(1, min(256, int(memory_budget / at_once // max(per_run, 1)),
                                        -(-len(members) // at_once)))
        batches += [members[i:i + size] for i in range(0, len(members), size)]
    return batches


def resume_note(path: Path, n_mine: int, skipped: int) -> str | None:
    """What a resumed sweep says before it starts: how many of its points the store already holds (None for a
    fresh one)."""
    if not skipped:
        return None
    if skipped == n_mine:
        return f"olfacto sweep: {path} already holds all {n_mine} points; nothing to run"
    return (f"olfacto sweep: resuming {path}: {skipped} of {n_mine} points already done (skipped), "
            f"{n_mine - skipped} to run")


def run_sweep(base: dict[str, Any], grid: dict[str, list[Any]], out: str | Path, part: tuple[int, int] = (0, 1),
              batch_size: int | None = None, progress: bool = True, log=None, cluster: str | None = None,
              cache: str | None = None) -> xr.Dataset:
    """Run (or resume) the sweep and return the Dataset in ``out/sweep.zarr``; with ``cluster`` (``local:N``,
    ``tcp://…``, a scheduler file) its batches run as tasks on a Dask cluster (:mod:`olfacto.sweeps.dask`)."""
    if not grid:
        raise ConfigError("no grid: give --grid KEY=V1,V2,... or a 'sweep:' section in the config")
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be ≥ 1")
    points = expand(base, grid)
    path = open_store(out, base, grid, points)
    points = locate(path, points)
    verify(path, points, log)
    # parts and cluster tasks plan alike wherever they run (the batches decide which part runs which points)
    at_once = 1 if cluster or part[1] > 1 else batches_at_once()
    batches = plan(points, batch_size, at_once=at_once)
    mine = [b for k, b in enumerate(batches) if k % part[1] == part[0]]
    done = done_flags(path)
    todo = [b for b in mine if not all(done[p.index] for p in b)]
    n_mine = sum(len(b) for b in mine)
    note = resume_note(path, n_mine, n_mine - sum(len(b) for b in todo))
    if note:
        (log or (lambda m: print(m, file=sys.stderr)))(note)
    bar = progress_mod.bar(n_mine, "sweep", "point", initial=n_mine - sum(len(b) for b in todo), disable=not progress)
    start = time.perf_counter()
    if cluster and todo:
        from . import dask

        try:
            dask.run_batches(cluster, path, mine, bar, log=log or (lambda m: print(m, file=sys.stderr)), cache=cache,
                             done=done)
        finally:
            bar.close()
        todo = []
    specs = [batch_spec([p.config for p in b], slots(b)) for b in todo]  # once per batch
    several = len(set(specs)) > 1
    compiled: set = set()
    lock = threading.Lock()

    def one(batch: list[Point], spec: Any) -> int:
        with lock:
            if progress and several and spec not in compiled:
                # a new shape compiles its programs (seconds): say so, or the bar seems stuck
                c = spec.circuit
                bar.set_postfix_str(f"new shape N={c.n_cortex}, K_max={spec.projection.slots}, "
                                    f"rule={spec.learning.rule}: compiling (or loading from the compilation cache)")
            compiled.add(spec)
        return run_and_write(path, batch)

    try:
        nbytes = [len(b) * max(resources.bytes_per_run(p.config) for p in b) for b in todo]
        for n in map_batches(lambda b: one(*b), list(zip(todo, specs)), nbytes, at_once):
            bar.set_postfix_str("")
            bar.update(n)
    except OSError as exc:  # a full disk, a quota: the points flagged done are complete (flags last)
        # counted here, after map_batches let the batches still running finish: counted in the failing thread,
        # a batch of the other thread could be between its data and its flags
        kept = int(done_flags(path).sum())
        raise ConfigError(f"--out {str(Path(out))!r}: cannot write to {path} ({exc.strerror or exc}); the "
                          f"{kept} finished points are kept: make room and run the same command to resume") from None
    finally:
        bar.close()
    ds = open_result(path)
    ds.attrs["wall_time_s"] = time.perf_counter() - start
    return ds
