"""A batch of runs on the local devices: which configs share a program, and the batch axis placed over devices.

Configs with equal :func:`group_key` (the compiled Spec, less the slot counts a batch pads to its largest, and
the measured data they read) run as one
``vmap`` of one compiled program; their traced parameters are stacked along a leading batch axis
(:func:`stack`). That batch axis is *placed* over the local devices (:func:`place_batch`, padded by
:func:`pad_to_devices`) — not to be confused with a network *sharded* over devices along its neuron
axis (:mod:`olfacto.engine.sharding`) or a sweep split into *parts* (``olfacto sweep --part I/N``).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..config import Config
from ..config.tree import Params, data_key, params_of
from ..model.native import usable_cores
from ..model.network import batch_key, pad_cost, shape_key


def group_key(cfg: Config) -> tuple:
    """Configs with equal group keys run as one batch of one compiled program (its Spec:
    :func:`olfacto.model.network.batch_spec`, the slot counts padded to the largest)."""
    return shape_key(cfg), data_key(cfg)


PAD_WORK = 1e10
"""Most extra slot passes that padding one batch's runs to its largest slot count may add (a pass: one slot of
one row read once; :func:`olfacto.model.network.pad_cost` counts them by how each run learns and records) —
about what one compile costs: a Spec's programs take 4.5–6 s to compile from an empty cache and a padded slot
pass 0.2–0.6 ns on the 2-core CPU of docs/benchmarks.md (§16: per-breath SGD 0.49 ns per slot-breath with its
records; §22: linear Hebbian's factored chunks 0.6 ns per pass). Below it a sweep over p compiles once; at
large N its p split into fewer, tighter batches (:func:`groups`)."""


def groups(configs: list[Config]) -> list[list[int]]:
    """The indices of ``configs`` in batches that each run as one compiled program, in a deterministic order.

    Configs of equal :func:`group_key` share a program; those that differ in slot count (p) are padded to the
    largest of their batch, so a batch is cut where padding would add more than :data:`PAD_WORK` slot-breaths
    (greedily, largest slot count first). Each config's results do not depend on its batch."""
    keyed: dict[tuple, list[int]] = {}
    own = {}
    for i, c in enumerate(configs):
        shape, own[i] = batch_key(c)
        keyed.setdefault((shape, data_key(c)), []).append(i)
    out = []
    for members in keyed.values():
        out += _by_padding(configs, members, own)
    return out


def _by_padding(configs: list[Config], members: list[int], own: dict[int, dict[str, int]]) -> list[list[int]]:
    if len(members) == 1 or not own[members[0]]:
        return [members]
    # runs of equal slot counts (a p's seeds) join or leave a batch together: a p cut in two would give
    # its group a batch of another size, which compiles programs of its own
    order = sorted(members, key=lambda i: (-sum(own[i].values()), sorted(own[i].items())))  # stable
    units: list[list[int]] = []
    for i in order:
        if units and own[units[-1][0]] == own[i]:
            units[-1].append(i)
        else:
            units.append([i])
    cost = {i: pad_cost(configs[i]) for i in order}  # slot passes per extra slot of each run
    buckets: list[list[int]] = []
    for unit in units:
        if buckets:
            trial = buckets[-1] + unit
            pad = {k: max(own[j][k] for j in trial) for k in own[unit[0]]}
            extra = sum(sum((pad[k] - own[j][k]) * cost[j][k] for k in pad) for j in trial)
            if extra <= PAD_WORK:
                buckets[-1] = trial
                continue
        buckets.append(list(unit))
    return [sorted(b) for b in buckets]


AT_ONCE_ENV = "OLFACTO_BATCHES_AT_ONCE"
"""Environment variable: how many of a sweep's batches run at once in one process (overrides
:func:`batches_at_once`'s choice; 1 runs them one after another)."""


def batches_at_once() -> int:
    """How many batches (a sweep's, the figures' experiments') run at once in this process, each in its own thread:
    2 where a batch's runs go one after another on one CPU device (:func:`olfacto.engine.programs.runs_in_turn`)
    and the process may use at least 2 cores, else 1; ``$OLFACTO_BATCHES_AT_ONCE`` decides instead when set.

    Why: XLA:CPU spreads one large operation over the cores, but the small operations of a per-breath step or a
    record at N ≤ 2,000 keep one core busy (per-breath SGD at N = 1,000, K = 16: as fast on one core as on two).
    Two batches at once, on the 2-core machine of docs/benchmarks.md §19: 1.27× on a sweep of records every 50
    breaths at N = 2,000 and 1.37× on per-breath SGD at N = 1,000; 1.0× at N = 3,000, K ≤ 256, whose steps
    already use both cores. Each run's results do not depend on its batch, so they are the same to the bit."""
    from .programs import runs_in_turn

    value = os.environ.get(AT_ONCE_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            from ..config import ConfigError

            raise ConfigError(f"{AT_ONCE_ENV}={value!r}: must be a whole number ≥ 1 (batches run at once)")
        return int(value)
    return 2 if runs_in_turn() and usable_cores() >= 2 else 1


_THREADS = "olfacto-batch"  # the name of map_batches' threads

AT_ONCE_BYTES = 1e9
"""Batches run at once (:func:`map_batches`) only while each is estimated below this many bytes, so running
them together adds at most about this much memory to what one at a time needs."""


def map_batches(fn: Callable[[Any], Any], items: Sequence[Any], nbytes: Sequence[float] | None = None,
                at_once: int | None = None) -> Iterator[Any]:
    """``fn(item)`` of each item, yielded in order, up to ``at_once`` (default :func:`batches_at_once`) of them
    running at once in threads — one at a time in this thread when any item's ``nbytes`` is above
    :data:`AT_ONCE_BYTES`, and inside one of these threads (no threads of threads: two batches at once fill the
    cores already). After an error (KeyboardInterrupt too) the items not started are dropped and those running
    finish before it is raised."""
    at_once = batches_at_once() if at_once is None else at_once
    if threading.current_thread().name.startswith(_THREADS):
        at_once = 1
    if at_once > 1 and nbytes is not None and max(nbytes, default=0) > AT_ONCE_BYTES:
        at_once = 1
    if at_once == 1 or len(items) < 2:
        yield from map(fn, items)
        return
    pool = ThreadPoolExecutor(at_once, thread_name_prefix=_THREADS)
    try:
        yield from pool.map(fn, items)
    finally:  # nothing runs on after the return: a rerun never meets a batch still writing the same points
        pool.shutdown(wait=True, cancel_futures=True)


def stack(configs: list[Config]) -> Params:
    """The Params of several configs stacked along a leading batch axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *[params_of(c) for c in configs])


def pad_to_devices(configs: list[Config]) -> list[Config]:
    """Repeat the last config so the batch divides evenly over the local devices."""
    n_dev = jax.local_device_count()
    return configs + [configs[-1]] * (-len(configs) % n_dev) if n_dev > 1 else configs


def place_batch(tree: Any) -> Any:
    """Place the leading (batch) axis of every leaf across all local devices (no-op on one device)."""
    devices = jax.local_devices()
    if len(devices) == 1:
        return tree
    mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
    placement = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    return jax.device_put(tree, placement)
