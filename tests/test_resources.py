"""Memory sizing decisions (olfacto/engine/resources.py): a network that does not fit one accelerator but fits
split over the local ones is sharded automatically (issue 11, part 3); the per-device free memory is
given explicitly here, as CI has no accelerator."""

from __future__ import annotations

from conftest import small

import olfacto
from olfacto.engine import resources


def _least_free(cfg, monkeypatch, n_dev: int) -> int:
    """The least free bytes per device (of ``n_dev`` equal accelerators) with which ``resources.check``
    accepts ``cfg``, by bisection: the memory check's own answer, the code path ``shard_to_fit`` must agree
    with."""
    from olfacto.config import ConfigError

    def fits(free: int) -> bool:
        monkeypatch.setattr(resources, "_devices_free", lambda: [free] * n_dev)
        monkeypatch.setattr(resources, "available", lambda: (free, "free on the accelerator"))
        try:
            resources.check([cfg])
            return True
        except ConfigError:
            return False

    lo, hi = 1, 1 << 50
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi


def test_a_network_too_large_for_one_device_is_split_over_two(monkeypatch):
    """shard_to_fit splits exactly where the memory check refuses the whole network on one device but
    accepts it split over two; split, each device holds about half the network (N = 40,000, K = 8,000:
    ≈ 16 GB against a 0.6 GB process baseline, so the ratio of the two thresholds is within 0.45–0.6)."""
    cfg = small(circuit__n_cortex=40_000, circuit__connection_prob=0.2)
    split_cfg = olfacto.config.replace(cfg, **{"circuit.shard": True})
    whole = _least_free(cfg, monkeypatch, 1)
    half = _least_free(split_cfg, monkeypatch, 2)
    assert 0.45 < half / whole < 0.6, (half, whole)
    monkeypatch.undo()
    between = (whole + half) // 2
    split = resources.shard_to_fit(cfg, [between, between])
    assert split is not None and split.circuit.shard and split.circuit.n_cortex == 40_000
    assert resources.shard_to_fit(cfg, [whole + 1, whole + 1]) is None  # fits one: left alone
    assert resources.shard_to_fit(cfg, [half - 2, half - 2]) is None  # not even split: the check refuses
    assert resources.shard_to_fit(cfg, [between]) is None  # one device: nothing to split over
    assert resources.shard_to_fit(cfg, []) is None  # CPU devices share the host's memory
    assert resources.shard_to_fit(small(circuit__n_cortex=40_001, circuit__connection_prob=0.2),
                                  [between, between]) is None  # rows must split evenly


def test_the_estimate_covers_the_arrays_a_run_holds():
    """bytes_per_run is at least what the drawn network (World and State, from jax.eval_shape of
    network.init: no allocation) occupies, and within 8× of it (the rest: temporaries of a step, the mask
    draw, the probes' products), with and without recurrence and for SGD with Adam's two moments."""
    import jax

    from olfacto.config.tree import params_of
    from olfacto.model import network

    for over in [{}, {"recurrence__connection_prob": 0.1}, {"learning__rule": "sgd", "learning__optimizer": "adam"}]:
        cfg = small(circuit__n_cortex=3000, circuit__connection_prob=0.05, **over)
        spec = network.spec_of(cfg)
        shapes = jax.eval_shape(lambda k: network.init(spec, k, params_of(cfg)), jax.random.key(0))
        held = sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(shapes) if hasattr(a, "size")
                   and not jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key))
        estimate = resources.bytes_per_run(cfg)
        assert held <= estimate <= 8 * held, (over, held, estimate)


def test_recurrence_is_counted_in_the_memory_estimate():
    """A_L, A_R add N·K_rec slots per cortex: at p_rec = p the estimate grows by at least the weights' share."""
    base = small(circuit__n_cortex=2000, circuit__connection_prob=0.1)
    rec = small(circuit__n_cortex=2000, circuit__connection_prob=0.1, recurrence__connection_prob=0.1)
    slots = 2 * 2000 * 200  # two cortices × N × K_rec (p_rec (N − 1) ≈ 200)
    assert resources.bytes_per_run(rec) - resources.bytes_per_run(base) >= slots * 9  # idx + valid + A at least
