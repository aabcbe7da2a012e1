"""Memory sizing decisions (olfacto/resources.py): a network that does not fit one accelerator but fits
split over the local ones is sharded automatically (issue 11, part 3); the per-device free memory is
given explicitly here, as CI has no accelerator."""

from __future__ import annotations

from conftest import small

from olfacto.engine import resources


def _per_device(cfg, devices):
    return resources.SAFETY * (resources.BASELINE + resources.bytes_per_run(cfg) / devices)


def test_a_network_too_large_for_one_device_is_split_over_two():
    cfg = small(circuit__n_cortex=4000, circuit__connection_prob=0.2)
    whole, half = _per_device(cfg, 1), _per_device(cfg, 2)
    free = int((whole + half) / 2)  # between: one device is too small, two are enough
    split = resources.shard_to_fit(cfg, [free, free])
    assert split is not None and split.circuit.shard and split.circuit.n_cortex == 4000
    assert resources.shard_to_fit(cfg, [int(whole) + 1, int(whole) + 1]) is None  # fits one: left alone
    assert resources.shard_to_fit(cfg, [int(half) - 1, int(half) - 1]) is None  # not even split: the check refuses
    assert resources.shard_to_fit(cfg, [free]) is None  # one device: nothing to split over
    assert resources.shard_to_fit(cfg, []) is None  # CPU devices share the host's memory
    assert resources.shard_to_fit(small(circuit__n_cortex=4001), [free, free]) is None  # rows must split evenly


def test_recurrence_is_counted_in_the_memory_estimate():
    """A_L, A_R add N·K_rec slots per cortex: at p_rec = p the estimate grows by at least the weights' share."""
    base = small(circuit__n_cortex=2000, circuit__connection_prob=0.1)
    rec = small(circuit__n_cortex=2000, circuit__connection_prob=0.1, recurrence__connection_prob=0.1)
    slots = 2 * 2000 * 200  # two cortices × N × K_rec (p_rec (N − 1) ≈ 200)
    assert resources.bytes_per_run(rec) - resources.bytes_per_run(base) >= slots * 9  # idx + valid + A at least
