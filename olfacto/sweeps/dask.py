"""Sweeps on a Dask cluster: one task per shape-grouped batch, written into the same verified store.

The driver (``olfacto sweep … --cluster SPEC``) plans the batches as a local sweep does
(:func:`olfacto.sweeps.runner.plan`) and submits one task per unfinished batch; a worker runs the
batch with the same batch runner as a local sweep (:func:`olfacto.sweeps.batch.run_and_write`)
and writes its points into the Zarr store itself (one chunk per point, data and checksum fsynced before the done flag), so the store
must be on a filesystem every worker sees. A worker lost mid-batch is retried by Dask
(``retries``): rewriting a point writes the same values, and a point is done only once its
flag is set, so the store stays exact. A killed driver is resumed by running the same command:
finished points are verified and skipped. No scheduler of our own: Dask schedules, retries
and shows its dashboard.

``SPEC``: ``local:N`` (a ``LocalCluster`` of N single-threaded worker processes, started
fresh — never forked after JAX started), ``tcp://HOST:PORT`` (a running scheduler) or a
scheduler file ``….json`` (``dask scheduler --scheduler-file``, e.g. on a SLURM allocation:
docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path
from typing import Any

from ..config import ConfigError

CONNECT_TIMEOUT_S = 5.0  # a scheduler that does not accept a connection within this is refused before any work

try:  # optional extra; check_spec says how to install it
    from dask.distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover
    _WorkerPlugin = object


def worker_runtime(cache: str | None, xla_flags: str | None) -> None:
    """A task's first step on a worker, before its first JAX use: the driver's ``XLA_FLAGS``, the CPU-scheduler
    workaround and the compilation cache ``cache`` (one compile per shape across workers that share the folder)."""
    if xla_flags and "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = xla_flags
    from ..engine import runtime

    runtime.cpu_scheduler_workaround()
    runtime.compilation_cache(cache)


def _task(path: str, batch: list, cache: str | None, xla_flags: str | None) -> int:
    """Run one batch on a worker and write its points; returns the number of points written."""
    from .batch import run_and_write

    worker_runtime(cache, xla_flags)
    return run_and_write(Path(path), batch)


def check_spec(spec: str) -> tuple[str, Any]:
    """``(kind, value)`` of a cluster spec — ("local", N), ("file", path) or ("address", spec) — or a
    one-line ConfigError; nothing is started (so the CLI checks it before any work)."""
    try:
        import dask.distributed  # noqa: F401
    except ImportError:
        raise ConfigError("--cluster: needs dask[distributed] (pip install 'olfacto[cluster]')") from None
    if spec.startswith("local:"):
        try:
            n = int(spec.split(":", 1)[1])
        except ValueError:
            n = 0
        if n < 1:
            raise ConfigError(f"--cluster {spec!r}: local:N needs N ≥ 1 worker processes")
        return "local", n
    if spec.endswith(".json"):
        if not Path(spec).is_file():
            raise ConfigError(f"--cluster {spec!r}: scheduler file not found")
        _reachable(spec, _scheduler_address(spec))
        return "file", spec
    if spec.startswith(("tcp://", "tls://", "ucx://")):
        _reachable(spec, spec)
        return "address", spec
    raise ConfigError(f"--cluster {spec!r}: expected local:N, tcp://HOST:PORT or a scheduler .json file")


def _scheduler_address(spec: str) -> str:
    """The scheduler's address written in a scheduler file (``{"address": "tcp://…", …}``), or a ConfigError."""
    try:
        address = json.loads(Path(spec).read_text()).get("address")
    except (OSError, ValueError, AttributeError):
        address = None
    if not isinstance(address, str) or "://" not in address:
        raise ConfigError(f"--cluster {spec!r}: not a Dask scheduler file (expected JSON with an \"address\": "
                          "\"tcp://HOST:PORT\", as 'dask scheduler --scheduler-file' writes)")
    return address


def _reachable(spec: str, address: str) -> None:
    """Refuse, before any work, a scheduler nobody answers at (Dask's client waited 30 s and failed after the
    store was created): a TCP connection to HOST:PORT within CONNECT_TIMEOUT_S."""
    host, _, port = address.split("://", 1)[1].rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--cluster {spec!r}: the address {address!r} is not PROTOCOL://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(f"--cluster {spec!r}: no scheduler answers at {address} "
                          f"({exc.strerror or exc or 'timed out'}, {CONNECT_TIMEOUT_S:g} s); start it first") from None


def gpu_for_worker(name: Any, n_gpus: int, env: dict[str, str]) -> str | None:
    """The GPU a local worker should own (``CUDA_VISIBLE_DEVICES``), or None to leave it as is: one JAX
    process per GPU, worker ``i`` on GPU ``i mod n``, unless the user already chose devices."""
    if n_gpus < 1 or "CUDA_VISIBLE_DEVICES" in env:
        return None
    try:
        return str(int(name) % n_gpus)
    except (TypeError, ValueError):
        return None


def _local_gpus() -> int:
    """NVIDIA GPUs on this host, counted without starting JAX (which would claim them all)."""
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


class _OneGPUEach(_WorkerPlugin):
    """Dask worker plugin: pins each local worker to its own GPU before its first JAX use."""

    name = "olfacto-one-gpu-each"

    def __init__(self, n_gpus: int):
        self.n_gpus = n_gpus

    def setup(self, worker) -> None:
        gpu = gpu_for_worker(worker.name, self.n_gpus, dict(os.environ))
        if gpu is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu


def client(spec: str):
    """A ``dask.distributed.Client`` for ``spec`` (``local:N``, ``tcp://…``, a scheduler ``.json`` file)."""
    from dask.distributed import Client, LocalCluster

    kind, value = check_spec(spec)
    if kind == "local":
        # processes started fresh (spawn), one thread each: JAX parallelises inside a worker
        import dask

        # Dask's nanny gives its workers MALLOC_TRIM_THRESHOLD_=65536, which also fixes glibc's mmap threshold:
        # every XLA:CPU temporary above 128 KB is then mapped and faulted in anew (per-breath SGD at N = 3,000,
        # K = 16: 3.6 → 4.6 s in one process; with two workers busy, 26–29 % of the machine's time in the kernel)
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            c = Client(LocalCluster(n_workers=value, threads_per_worker=1, processes=True, dashboard_address=":0"))
        if (n_gpus := _local_gpus()) > 0:
            c.register_plugin(_OneGPUEach(n_gpus))
        return c
    if kind == "file":
        return Client(scheduler_file=value)
    return Client(value, timeout="30s")


@contextlib.contextmanager
def session(spec: str):
    """A :func:`client` for ``spec``, closed on leaving, with the cluster it started (``local:N``)."""
    c = client(spec)
    local = c.cluster if spec.startswith("local:") else None
    try:
        yield c
    finally:
        c.close()
        if local is not None:
            local.close()


def spread(batches: list[list[Any]], n_workers: int) -> list[list[Any]]:
    """The batches cut so that every worker has one where the points allow: while there are fewer batches than
    workers, the largest is halved (a vmapped batch is one task, so a seed sweep of one batch would leave all
    but one worker idle). The points and their order are unchanged."""
    out = [list(b) for b in batches]
    while len(out) < n_workers:
        largest = max(range(len(out)), key=lambda i: len(out[i]), default=None)
        if largest is None or len(out[largest]) < 2:
            break
        b = out.pop(largest)
        half = (len(b) + 1) // 2
        out[largest:largest] = [b[:half], b[half:]]
    return out


def run_batches(spec: str, path: Path, batches: list[list[Any]], bar, log=None, retries: int = 2,
                cache: str | None = None, task=None, done=None) -> None:
    """Submit one task per batch to the cluster and wait, advancing ``bar`` as batches finish
    (``task``: what a worker runs, ``task(path, batch, cache, xla_flags)``; default: run and write).

    ``done``: the store's done flags. ``batches`` is then the whole plan: it is cut for the workers
    (:func:`spread`) first and the cut batches whose points are all done are skipped, so a resumed sweep runs
    each point in the batch the first run gave it — a vmapped batch's rounding depends on its runs, and a
    resume on as many workers is bit for bit."""
    task = task or _task
    from dask.distributed import as_completed

    with session(spec) as c:
        if log:
            log(f"Dask dashboard: {c.dashboard_link}")
        n_workers = len(c.scheduler_info().get("workers", {})) or (check_spec(spec)[1] if spec.startswith("local:")
                                                                    else 1)
        def unfinished(bs: list[list[Any]]) -> list[list[Any]]:
            return bs if done is None else [b for b in bs if not all(done[p.index] for p in b)]

        before = len(unfinished(batches))
        batches = unfinished(spread(batches, n_workers))
        if log:
            points = sum(len(b) for b in batches)
            note = (f"; {before} batch(es) cut to {len(batches)} so that the workers share them" if len(batches) > before
                    else "")
            idle = (f"; {n_workers - len(batches)} worker(s) will idle: {points} point(s) cannot be cut further"
                    if len(batches) < n_workers else "")
            log(f"olfacto sweep: {len(batches)} task(s) on {n_workers} worker(s){note}{idle}")
        flags = os.environ.get("XLA_FLAGS")
        futures = [c.submit(task, str(path), batch, cache, flags, retries=retries, pure=False,
                            key=f"olfacto-batch-{i}") for i, batch in enumerate(batches)]
        try:
            for future in as_completed(futures):
                bar.update(future.result())
        finally:
            c.cancel(futures)  # results are in the store: release them before the workers go
            futures.clear()
