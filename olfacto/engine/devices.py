"""A batch of runs on the local devices: which configs share a program, and the batch axis placed over devices.

Configs with equal :func:`group_key` (the compiled Spec, less the slot counts a batch pads to its largest, and
the measured data they read) run as one
``vmap`` of one compiled program; their traced parameters are stacked along a leading batch axis
(:func:`stack`). That batch axis is *placed* over the local devices (:func:`place_batch`, padded by
:func:`pad_to_devices`) — not to be confused with a network *sharded* over devices along its neuron
axis (:mod:`olfacto.engine.sharding`) or a sweep split into *parts* (``olfacto sweep --part I/N``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..config import Config
from ..config.tree import Params, data_key, params_of
from ..model.network import batch_key, shape_key


def group_key(cfg: Config) -> tuple:
    """Configs with equal group keys run as one batch of one compiled program (its Spec:
    :func:`olfacto.model.network.batch_spec`, the slot counts padded to the largest)."""
    return shape_key(cfg), data_key(cfg)


PAD_WORK = 1e10
"""Most extra slot-breaths (synapse slots × breaths, both directions) that padding one batch's runs to its
largest slot count may add — about what one compile costs: a Spec's programs take 4.5–6 s to compile from
an empty cache and a padded slot-breath 0.2–0.5 ns on the 2-core CPU of docs/benchmarks.md (§16: linear
Hebbian 0.22, rectified 0.25, per-breath SGD 0.49 ns, with its records). Below it a sweep over p compiles
once; at large N its p split into fewer, tighter batches (:func:`groups`)."""


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
    cfg = configs[members[0]]
    per_slot = 2 * cfg.circuit.n_cortex * cfg.run.n_breaths  # rows × breaths, both directions (both sides)
    order = sorted(members, key=lambda i: -sum(own[i].values()))  # stable: ties keep the grid's order
    buckets: list[list[int]] = []
    for i in order:
        if buckets:
            trial = buckets[-1] + [i]
            pad = {k: max(own[j][k] for j in trial) for k in own[i]}
            extra = sum(sum(pad[k] - own[j][k] for k in pad) for j in trial) * per_slot
            if extra <= PAD_WORK:
                buckets[-1] = trial
                continue
        buckets.append([i])
    return [sorted(b) for b in buckets]


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
