"""A batch of runs on the local devices: which configs share a program, and the batch axis placed over devices.

Configs with equal :func:`group_key` (the compiled Spec and the measured data they read) run as one
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
from ..model.network import spec_of


def group_key(cfg: Config) -> tuple:
    """Configs with equal group keys run as one batch of one compiled program."""
    return spec_of(cfg), data_key(cfg)


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
