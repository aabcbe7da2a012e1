"""One network across the local devices: the receiving neurons' rows split with ``jax.sharding``.

With ``circuit.shard: true`` every array with a neuron axis (the projections J, the masks C and
weights W in slot form, the probe responses, the optimizer and recurrence states) is placed with
its neuron axis split over a one-dimensional mesh of the local devices, and the compiled
programs are partitioned by XLA (GSPMD) from those placements: each device updates the synapses
of its own rows, and the one collective per breath is the all-gather of the presynaptic activity
(an N-vector per run and breath, or its chunk of breaths) — never an N × K_max array, which
tests/test_shard.py checks on the compiled program. The dense chunked kernel, whose row blocks
would need the whole mask, is not used when sharded (the gather kernel is).

Across hosts, ``olfacto run --distributed`` calls :func:`jax.distributed.initialize` first, so the
same program spans the devices of every process (SLURM or the JAX coordinator environment variables
tell it the process layout).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from .config import ConfigError

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


def place(tree: Any, n_cortex: int) -> Any:
    """Every leaf whose axis 1 (after the batch axis) has length N split along it; the rest replicated."""
    m = mesh()
    rows = jax.sharding.NamedSharding(m, jax.sharding.PartitionSpec(None, AXIS))
    whole = jax.sharding.NamedSharding(m, jax.sharding.PartitionSpec())

    def one(a):
        if not hasattr(a, "ndim"):
            return a
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            return jax.device_put(a, whole)
        return jax.device_put(a, rows if a.ndim >= 2 and a.shape[1] == n_cortex else whole)

    return jax.tree.map(one, tree)


def distributed_initialize() -> None:
    """:func:`jax.distributed.initialize` from the environment (SLURM, or JAX_COORDINATOR_ADDRESS,
    JAX_NUM_PROCESSES, JAX_PROCESS_ID), before any other JAX call; a failure is a one-line error."""
    try:
        jax.distributed.initialize()
    except Exception as exc:  # noqa: BLE001 - no cluster environment, unreachable coordinator, …
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"--distributed: jax.distributed.initialize failed: {first}") from None
