"""One network sharded across devices: the receiving neurons' rows split with ``jax.sharding``.

With ``circuit.shard: true`` every array with a neuron axis (the projections J, the masks C and
weights W in slot form, the probe responses, the optimizer and recurrence states) is placed with
its neuron axis split over a one-dimensional mesh of the local devices, and the compiled
programs are partitioned by XLA (GSPMD) from those placements: each device updates the synapses
of its own rows, and the one collective per breath is the all-gather of the presynaptic activity
(an N-vector per run and breath, or its chunk of breaths) — never an N × K_max array, which
tests/test_shard.py checks on the compiled program. The dense chunked kernel, whose row blocks
would need the whole mask, is not used when sharded (the gather kernel is).

Across processes and hosts, ``olfacto run --distributed`` calls :func:`jax.distributed.initialize`
first, so the same program spans the devices of every process: each draws only its own rows
(:func:`compile_init`), host values enter through :func:`replicate`, records are read back with
:func:`to_host`, and process 0 writes.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np

from ..config import ConfigError

AXIS = "neurons"


def mesh() -> jax.sharding.Mesh:
    """A one-dimensional mesh of every device (all hosts' under jax.distributed)."""
    return jax.sharding.Mesh(np.array(jax.devices()), (AXIS,))


def check(n_cortex: int) -> int:
    """The device count, after checking that N rows split evenly over it (one-line error otherwise)."""
    n_dev = jax.device_count()
    if n_cortex % n_dev:
        raise ConfigError(f"circuit.shard=true: circuit.n_cortex={n_cortex} must be divisible by the "
                          f"{n_dev} devices it is split over")
    return n_dev


def neuron_axes(init_fn: Callable, spec: Any, args: tuple) -> Any:
    """Per leaf of ``init_fn(*args)``'s output, whether its first axis after the batch axis is a neuron axis.

    Structural, not by coincidence of lengths: the output is traced abstractly (``jax.eval_shape``, no
    computation) at this Spec and at the same Spec with one more neuron (every other shape unchanged),
    and an axis is a neuron axis when its length follows N. (Comparing lengths with N alone would also
    split probes when ``run.n_probe == N`` or J's glomerular axis when ``n_glomeruli == N``.)
    """
    from ..config.tree import Frozen

    bigger = Frozen(**{**dict(spec), "circuit": Frozen(**{**dict(spec.circuit),
                                                          "n_cortex": spec.circuit.n_cortex + 1})})
    here = jax.eval_shape(lambda *a: init_fn(spec, *a), *args)
    there = jax.eval_shape(lambda *a: init_fn(bigger, *a), *args)

    def follows(a, b):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) or a.ndim < 2:
            return False
        return a.shape[1] != b.shape[1]

    # leaf by leaf: static metadata (a mask's n_pre = N) differs between the two trees, their leaves do not
    leaves_here, tree = jax.tree.flatten(here)
    return jax.tree.unflatten(tree, [follows(a, b) for a, b in zip(leaves_here, jax.tree.leaves(there))])


def _placement(split: bool) -> jax.sharding.NamedSharding:
    """Rows split over the mesh (axis 1, after the batch axis), or replicated."""
    return jax.sharding.NamedSharding(mesh(), jax.sharding.PartitionSpec(None, AXIS) if split
                                      else jax.sharding.PartitionSpec())


def replicate(tree: Any) -> Any:
    """Host values (the same in every process) as arrays replicated on every device of every process.

    :func:`jax.make_array_from_callback` rather than :func:`jax.device_put`: under
    :func:`jax.distributed.initialize` the mesh holds other processes' devices, which a process
    cannot put to; each process fills only its own devices, from its own identical copy.
    """
    whole = jax.sharding.NamedSharding(mesh(), jax.sharding.PartitionSpec())

    def one(a):
        if a is None or not hasattr(a, "shape"):
            return a
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, whole, lambda index: host[index])

    return jax.tree.map(one, tree)


def compile_init(init_fn: Callable, spec: Any) -> Callable:
    """``init_fn(spec, keys, params, library)`` compiled so that its outputs are born split over the mesh
    along their neuron axes (:func:`neuron_axes`).

    No process ever holds a whole network: XLA partitions the drawing of the masks and weights by
    rows, as it does the learning. The compiled function takes raw key data (uint32) and host
    arrays, replicated on every device with :func:`replicate`.
    """
    def wrapped(sp, key_data, p, lib):
        return init_fn(sp, jax.vmap(jax.random.wrap_key_data)(key_data), p, lib)

    cache: dict = {}

    def drawn(key_data, p, lib):
        if "axes" not in cache:
            cache["axes"] = neuron_axes(wrapped, spec, (key_data, p, lib))
        out = wrapped(spec, key_data, p, lib)
        return jax.tree.map(lambda a, split: jax.lax.with_sharding_constraint(a, _placement(split)), out,
                            cache["axes"])

    return jax.jit(drawn)


def to_host(tree: Any) -> Any:
    """NumPy copies of (possibly split, possibly other processes') arrays; every process gets them all."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def is_main_process() -> bool:
    """Only process 0 writes results and prints them (all compute)."""
    return jax.process_index() == 0


INIT_TIMEOUT_S = 60
"""How long ``--distributed`` waits for every process to reach the coordinator (JAX's own default is 5 minutes
without a word; ``--init-timeout`` changes it)."""


def check_coordinator(coordinator: str | None) -> None:
    """``HOST:PORT`` with a port 1 … 65535, or a one-line error (JAX said "list index out of range")."""
    if coordinator is None:
        return
    host, _, port = coordinator.rpartition(":")
    if not host.strip() or " " in coordinator or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"--coordinator {coordinator!r}: expected HOST:PORT (e.g. node01:1234, the address of "
                          "process 0), a port from 1 to 65535")


def _await_coordinator(coordinator: str, timeout_s: float) -> None:
    """Return once process 0's coordinator accepts a TCP connection; a one-line error after ``timeout_s``."""
    import socket
    import time

    host, _, port = coordinator.rpartition(":")
    end = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=1.0).close()
            return
        except OSError as exc:
            if time.monotonic() >= end:
                raise ConfigError(f"--coordinator {coordinator}: no coordinator answered within {timeout_s} s "
                                  f"(--init-timeout; last: {exc.strerror or exc}); start process 0 first, or check "
                                  "the address") from None
            time.sleep(0.5)


WATCHDOG_MARGIN_S = 30  # JAX's initialization timeout is set this much after the watchdog's


def _watchdog(coordinator: str | None, num_processes: int | None, timeout_s: float):
    """A timer that ends the process with one line (exit 2) when the processes have not all joined within
    ``timeout_s``.

    Process 0 hosts the coordinator, so it cannot wait for it as the others do; and when JAX's own
    initialization timeout expires it aborts the process with a C++ check failure (exit −6, a stack dump).
    The wait in :func:`jax.distributed.initialize` releases the GIL, so a timer thread can end it first;
    ``os._exit`` because nothing has been written yet and the blocked native call cannot be interrupted.
    """
    import os
    import sys
    import threading

    def expire() -> None:
        others = "every other process" if num_processes is None else f"the other {num_processes - 1} process(es)"
        line = (f"olfacto: error: --distributed: {others} did not join the coordinator "
                f"{coordinator or '(detected)'} within {timeout_s} s (--init-timeout); start them with the same "
                "--coordinator and --num-processes, or raise --init-timeout\n")
        try:
            sys.stdout.flush()
        finally:
            os.write(2, line.encode())
            os._exit(2)

    timer = threading.Timer(timeout_s, expire)
    timer.daemon = True
    timer.start()
    return timer


def distributed_initialize(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None, timeout_s: int = INIT_TIMEOUT_S, log=None) -> None:
    """:func:`jax.distributed.initialize`, before any other JAX call; a failure is a one-line error.

    What is not given is detected by JAX (SLURM, Open MPI, Kubernetes; the coordinator also from
    ``$JAX_COORDINATOR_ADDRESS``). On CPUs the processes exchange data through gloo. ``log`` is told what
    is awaited and for how long (``timeout_s``) before the wait starts.
    """
    check_coordinator(coordinator)
    if timeout_s < 1:
        raise ConfigError(f"--init-timeout {timeout_s}: allowed: an integer ≥ 1 (seconds)")
    if num_processes is not None and num_processes < 1:
        raise ConfigError(f"--num-processes: {num_processes} must be ≥ 1")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ConfigError(f"--process-id: {process_id} must be in 0 … {num_processes - 1} (--num-processes "
                          f"{num_processes})")
    if log:
        who = "" if process_id is None else f"process {process_id}" + ("" if num_processes is None else
                                                                        f" of {num_processes}") + ": "
        log(f"{who}waiting up to {timeout_s} s for the coordinator {coordinator or '(detected)'} and every "
            "process (--init-timeout)")
    if coordinator is not None and process_id not in (None, 0):
        # JAX ends the whole process (a C++ check failure, exit −6) when its wait times out: wait here first
        _await_coordinator(coordinator, timeout_s)
    watchdog = _watchdog(coordinator, num_processes, timeout_s) if process_id in (None, 0) else None
    try:
        # JAX's own timeout is later than the watchdog's: its expiry is a C++ check failure that kills the process
        jax.distributed.initialize(coordinator, num_processes, process_id,
                                   initialization_timeout=timeout_s + (WATCHDOG_MARGIN_S if watchdog else 0))
    except Exception as exc:  # noqa: BLE001 - no cluster environment, unreachable coordinator, …
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"--distributed: jax.distributed.initialize failed after at most {timeout_s} s "
                          f"(--init-timeout): {first}") from None
    finally:
        if watchdog is not None:
            watchdog.cancel()

