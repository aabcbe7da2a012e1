"""Every matrix product olfacto compiles is a float32 product, on every backend.

XLA:GPU computes a float32 ``dot`` at the default precision with TF32 (10-bit mantissa) on NVIDIA
GPUs since Ampere, XLA:TPU with bfloat16 passes. On an H200 that moved the chunked learning away from
the per-breath one by 3·10⁻⁴ of max |W| (against 10⁻⁵ on a CPU) and every recorded measure by
~10⁻⁵ relative (docs/benchmarks.md §12); with every product at ``Precision.HIGHEST`` the GPU passed
the CPU's equivalence tests. A CPU ignores the precision, so no CPU number can catch a product left
at the default: these tests read the precision of every ``dot_general`` in the lowered programs
(init, the learning chunk, every record, the rewiring event) over configs that reach every product
site (rules, activations, odors and bulb transforms, recurrence, rewiring, the protocol).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from olfacto.engine import loop, programs
from olfacto.engine.records import defaults
from olfacto.model import measures, network

from conftest import small


def _default_precision_dots(text: str) -> list[str]:
    """The ``dot_general`` lines of a lowered module that do not ask for HIGHEST on both operands."""
    return [line.strip()[:160] for line in text.splitlines()
            if "stablehlo.dot" in line and "precision = [HIGHEST, HIGHEST]" not in line]


def _lowered(cfg, monkeypatch) -> dict[str, str]:
    """The StableHLO text of every program a run of ``cfg`` compiles: init lowered with the arguments
    :func:`olfacto.engine.loop.build` calls it with (not sharded), the others with the batch it built."""
    seen = {}
    real_init = programs.init

    def init_spy(spec):
        program = real_init(spec)

        def call(*args):
            seen["init"] = program.lower(*args).as_text()
            return program(*args)

        return call

    monkeypatch.setattr(programs, "init", init_spy)
    batch = loop.build([cfg])
    spec, world, params, state = batch.spec, batch.world, batch.params, batch.state
    out = {"init": seen["init"], "advance": programs.advance(spec).lower(world, params, state).as_text()}
    for r in defaults([cfg]):
        if not r.host:
            out[f"record {r.name}"] = programs.record(spec, r).lower(world, params, state).as_text()
    for name in network.events(spec):
        out[f"event {name}"] = programs.event(spec, name).lower(world, params, state).as_text()
    return out


CASES = {
    "linear hebbian gaussian (factored chunk)": {},
    "relu sgd adam, sparse odors, normalized bulb": {"circuit.activation": "relu", "learning.rule": "sgd",
                                                     "learning.optimizer": "adam", "odors.kind": "sparse",
                                                     "odors.bulb": "normalize"},
    "kwta oja, mixture odors, whitened bulb, per breath": {"circuit.activation": "kwta", "learning.rule": "oja",
                                                           "odors.kind": "mixture", "odors.bulb": "whiten",
                                                           "run.plasticity": "per_breath"},
    "covariance, recurrence, protocol, dense chunk": {"learning.rule": "covariance",
                                                      "recurrence.connection_prob": 0.2, "recurrence.steps": 3,
                                                      "protocol.enabled": True, "protocol.n_odors": 4,
                                                      "protocol.n_trials": 2, "run.plasticity": "dense"},
    "gradient rewiring, fixed in-degree": {"circuit.mask": "fixed_indegree", "rewiring.rule": "gradient",
                                           "rewiring.every": 100},
    "cht rewiring, gather chunk": {"circuit.mask": "fixed_indegree", "rewiring.rule": "cht",
                                   "rewiring.every": 100, "run.plasticity": "gather"},
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_compiled_product_is_float32(case, monkeypatch):
    cfg = small(**{k.replace(".", "__"): v for k, v in CASES[case].items()})
    texts = _lowered(cfg, monkeypatch)
    assert sum(t.count("stablehlo.dot") for t in texts.values()) > 0  # the check reads real products
    bad = {name: _default_precision_dots(t) for name, t in texts.items()}
    assert not any(bad.values()), {k: v for k, v in bad.items() if v}


def test_the_measures_called_eagerly_are_float32_too():
    """The measures are public (olfacto.model.measures) and called outside olfacto's programs too."""
    a = jnp.ones((6, 20)) + jnp.arange(20.0)
    for name, fn in [("decoding_transfer", measures.decoding_transfer),
                     ("laterality_decoding", measures.laterality_decoding)]:
        text = jax.jit(fn).lower(a, a[::-1]).as_text()
        assert "stablehlo.dot" in text and not _default_precision_dots(text), name
