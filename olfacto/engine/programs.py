"""The compiled programs of a Spec: drawing a batch of networks, learning a chunk, and each record.

Per Spec (the cache key: shapes and kinds), compiled once and reused by every batch and every
traced value: ``init`` (draw the networks, :func:`olfacto.model.network.init`), ``advance``
(``run.record_every / learning.batch`` updates of every component, the state donated so a chunk
needs no second copy of W) and, per :class:`~olfacto.engine.records.Record`, its computation
fused with the divergence check of every learned component. Changing a ``traced`` or ``host``
key reuses them (tested). The programs of the :data:`MAX_SPECS` most recently used Specs are kept.
"""

from __future__ import annotations

import threading
from typing import Any

import jax

from ..model import network
from . import sharding
from .records import Record, masked_nan

_COMPILED: dict[Any, Any] = {}
"""The compiled programs by key (``(spec, kind, …)``), in order of last use (a dict keeps insertion order)."""

MAX_SPECS = 8
"""The programs of at most this many Specs are kept (the least recently used Spec's go first). Each compiled
XLA:CPU program holds its machine code in memory mappings (≈ 1,100 per Spec's programs, measured), and Linux
allows a process 65,530 (vm.max_map_count): ``olfacto figures --only alignment_vs_p sgd_stability``, which
compiles the programs of many Specs in one process, kept every one and died after 28 minutes (LLVM: "Cannot
allocate memory", then SIGSEGV). A Spec evicted and needed again is compiled again, from the persistent
compilation cache when it is on."""


_LOCK = threading.RLock()  # sweeps run batches in threads (devices.batches_at_once): one program per key


def _cached(key: Any, make: Any) -> Any:
    """The program under ``key`` (its first element the Spec), made by ``make()`` when missing; marks it
    used last and drops the programs of the least recently used Specs beyond :data:`MAX_SPECS`."""
    with _LOCK:
        program = _COMPILED.pop(key, None)
        made = program is None
        if made:
            program = make()
        _COMPILED[key] = program  # re-inserted: now the most recently used
        if made:
            stale = set(list(dict.fromkeys(k[0] for k in reversed(_COMPILED)))[MAX_SPECS:])  # beyond the most recent
            for k in [k for k in _COMPILED if k[0] in stale]:
                del _COMPILED[k]
        return program


CHEAP_INIT_SLOTS = 1 << 21
"""Below this many synapse slots (both directions), ``init`` is compiled at XLA's optimisation
level 0. Its dozen random-number kernels take 2–3× longer to compile at the default level
(measured: 8 s vs 3 s of CPU at N = 300), while it runs once per batch; at O0 sampling is about
5× slower (measured at N = 10⁵, K_max = 52, 1.0·10⁷ slots: 40 s vs 8 s per run on a loaded 2-core CPU,
where the default level's compile costs ≈ 20 s more), which costs less than the compile saved up to
about 2·10⁶ slots (N = 2·10⁴ at K_max ≈ 50). Values agree with the default level to float32 rounding
(1 ulp of J and the probes; identical masks)."""

CHEAP_RECORD_WORK = 1 << 21
"""Below this many slot × probe products per record, a ``cheap`` record (the measures) is compiled at
level 0 too (N = 100, 60 probes: 1.2 s instead of 2.8 s of compile, 15 ms instead of 10 ms per record)."""

_O0 = {"xla_backend_optimization_level": 0}


def over_runs(fn: Any) -> Any:
    """``fn`` applied to every run of a batch (the leading axis of every argument), as :func:`jax.vmap` would.

    How depends on the batch, for speed only (the operations per run are the same): a batch of one calls
    ``fn`` on the run itself and adds the axis back; on one CPU device a larger batch runs its runs one
    after another (``lax.map``); elsewhere (an accelerator, a batch placed over several devices) it is
    ``vmap``. On XLA:CPU a vmapped program reduces the minor axis of a (B, P, N) array ~8× slower than the
    (P, N) one (98 vs 12 ms at P = 100, N = 10⁵), and vmapped per-breath SGD took 8× (batch of 1) and 2×
    (batch of 4) the time of the same runs one by one (docs/benchmarks.md §13)."""
    batched = jax.vmap(fn)

    def one_by_one(*args):
        return jax.lax.map(lambda a: fn(*a), args)

    def call(*args):
        sizes = {leaf.shape[0] for leaf in jax.tree.leaves(args)}
        if sizes == {1}:
            return jax.tree.map(lambda a: a[None], fn(*jax.tree.map(lambda a: a[0], args)))
        if runs_in_turn():
            return one_by_one(*args)
        return batched(*args)

    return call


def runs_in_turn() -> bool:
    """Whether a batch's runs go one after another (one CPU device: :func:`over_runs`), so that a batch costs
    the sum of its runs and running them as separate batches costs no more."""
    return jax.default_backend() == "cpu" and jax.local_device_count() == 1


def _slots(spec) -> int:
    return 2 * spec.circuit.n_cortex * spec.projection.slots


def init(spec) -> Any:
    """``init(keys, params, library, inputs=None) -> (world, state)``, vmapped over the batch (``inputs``, a
    breath stream given from Python, is shared by the runs)."""
    def make():
        fn = jax.vmap(lambda k, p, lib, inp: network.init(spec, k, p, lib, inp), in_axes=(0, 0, None, None))
        return jax.jit(fn, compiler_options=_O0 if _slots(spec) < CHEAP_INIT_SLOTS else None)

    return _cached((spec, "init"), make)


def environment(spec) -> Any:
    """``environment(keys, params, library) -> (env, stream keys)``: the odor environment and breath stream key
    of each run, without the rest of the network, vmapped and compiled as :func:`init` is (so its draws
    are init's to the bit)."""
    def make():
        fn = jax.vmap(lambda k, p, lib: network.environment(spec, k, p, lib), in_axes=(0, 0, None))
        return jax.jit(fn, compiler_options=_O0 if _slots(spec) < CHEAP_INIT_SLOTS else None)

    return _cached((spec, "environment"), make)


def init_sharded(spec) -> Any:
    """``init`` with its outputs born split over the devices along their neuron axes (circuit.shard)."""
    def make():
        def batched(sp, keys, p, lib):
            return jax.vmap(lambda k, q, lb: network.init(sp, k, q, lb), in_axes=(0, 0, None))(keys, p, lib)

        return sharding.compile_init(batched, spec)

    return _cached((spec, "init_sharded"), make)


def advance(spec) -> Any:
    """``advance(world, params, state) -> state``: one chunk of ``run.record_every`` breaths, over the runs (:func:`over_runs`)."""
    def make():
        n_steps = spec.run.record_every // spec.learning.batch
        return jax.jit(over_runs(lambda w, p, s: network.learn(spec, w, p, s, n_steps)), donate_argnums=(2,))

    return _cached((spec, "advance"), make)


def event(spec, name: str) -> Any:
    """``event(world, params, state) -> state``: component ``name``'s structural event (the rewiring of the
    projection's synapses), over the runs, the state donated."""
    return _cached((spec, "event", name),
                   lambda: jax.jit(over_runs(lambda w, p, s: network.event(spec, w, p, s, name)), donate_argnums=(2,)))


def record(spec, rec: Record) -> Any:
    """``program(world, params, state[, constants]) -> (values, finite)`` of a device record, over the runs; values
    are NaN once the run's learned components are not finite. ``constants``: of :func:`constants`, for a record that
    has them (the run loop computes them once per batch); not given, the program computes them too."""
    def make():
        def one(w, p, s, *c):
            ok = network.finite(spec, s)
            if rec.constants is not None and not c:
                c = (rec.constants(spec, w, p, s),)
            return masked_nan(rec.compute(spec, w, p, s, *c), ok), ok

        cheap = rec.cheap and _slots(spec) * spec.run.n_probe < CHEAP_RECORD_WORK
        return jax.jit(over_runs(one), compiler_options=_O0 if cheap else None)

    return _cached((spec, rec.compute, rec.cheap, rec.constants), make)  # records that compute the same share one


def constants(spec, rec: Record) -> Any:
    """``program(world, params, state) -> constants`` of a record with ``constants`` (what stays fixed over a run),
    over the runs."""
    return _cached((spec, "constants", rec.constants),
                   lambda: jax.jit(over_runs(lambda w, p, s: rec.constants(spec, w, p, s))))


def compute(spec, fn: Any) -> Any:
    """``program(*args) = fn(spec, *args)`` compiled once per Spec, for one run (no batch axis): the device part
    of a host record. Called eagerly instead, every loop and custom reduction inside ``fn`` compiles again on
    every call (a new closure each time): the recurrence's fixed-point record compiled 10 programs per run,
    0.85 s of its 1.17 s (N = 500)."""
    return _cached((spec, "compute", fn), lambda: jax.jit(lambda *args: fn(spec, *args)))


def finite(spec) -> Any:
    """``finite(state) -> bool`` per run and per component ``{name: bool}``, over the runs."""
    return _cached((spec, "finite"), lambda: jax.jit(over_runs(lambda s: network.finite_parts(spec, s))))


def release(spec) -> None:
    """Drop the compiled programs of ``spec`` (a computation that never runs that Spec again: the experiments that
    compile a Spec per batch). Unlike :func:`clear` it leaves the other Specs' programs, and JAX's caches, to the
    batches running at the same time (:func:`olfacto.engine.devices.map_batches`)."""
    with _LOCK:
        for key in [k for k in _COMPILED if k[0] == spec]:
            del _COMPILED[key]


def clear() -> None:
    """Drop every compiled program of this process (and JAX's own caches). A computation that compiles
    hundreds of distinct Specs in one process (the rewiring experiment: rule × N × K) calls it between
    them: LLVM's JIT otherwise runs out of code-section memory ("Unable to allocate section memory",
    measured after ≈ 70 Specs); the persistent compilation cache still serves a rerun."""
    _COMPILED.clear()
    jax.clear_caches()


def compiled_count() -> int:
    """How many programs are compiled in this process (tests: a traced change compiles nothing)."""
    return len(_COMPILED)
