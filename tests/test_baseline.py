"""olfacto's sparse compiled path agrees with the plain dense NumPy baseline.

Both paths get the same anatomy (J_L, J_R, masks C drawn by olfacto from the
seed) and the same breath stream (``odors.breaths`` of the run's stream key),
and learn for T breaths with batch 1. olfacto keeps the weights in float32 slot
form, the baseline in float64 dense form, so they agree to float32 round-off:

    |W_olfacto − W_dense| ≤ 1e-4 |W_dense| + 1e-5 · max|W_dense|   (elementwise)

The observed disagreement is ~5e-7 · max|W| after 200 breaths.

Compiling dominates the cost of this file (mostly the breath stream's PRNG), so
the programs are kept few: one ``olfacto.run`` (bernoulli mask, Hebbian, from
W = 0 — this also checks that a recorded run learns from that same stream),
whose anatomy and stream are reused for the other cases (with fixed-in-degree
masks drawn by ``sparse.sample_mask``); one ``advance`` per further case, each
from random initial weights. Together they cover every rule, both masks (Hebbian
on both) and all three activations.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import olfacto
from benchmarks import baseline
from olfacto.config.tree import params_of
from olfacto.model import circuit, network, odors, projection, rules, sparse
from olfacto.model.network import spec_of

T = 200  # breaths
N, M, P = 64, 12, 0.2
RTOL, ATOL_REL = 1e-4, 1e-5
LR = {"hebbian": 0.05, "oja": 0.01, "sgd": 0.01}
DECAY = 0.5


def config(mask: str, rule: str, activation: str = "relu"):
    return olfacto.config.from_dict(**{
        "seed": 3,
        "circuit.n_cortex": N, "circuit.n_glomeruli": M, "circuit.connection_prob": P,
        "circuit.mask": mask, "circuit.activation": activation,
        "odors.kind": "gaussian", "odors.noise": 0.3, "odors.nasal_cycle.amplitude": 0.2,
        "odors.nasal_cycle.period": 50.0,
        "learning.rule": rule, "learning.lr": LR[rule], "learning.decay": DECAY,
        "run.n_breaths": T, "run.record_every": T, "run.n_probe": 8, "run.progress": False,
    })


@functools.cache
def _breaths_program():
    return jax.jit(lambda world, params: odors.breaths(world.stream, world.env, params.odors, 0, T))


def dense_reference(cfg, world, W0=None) -> baseline.DenseResult:
    """The baseline on olfacto's anatomy and breath stream."""
    params = params_of(cfg)
    x_l, x_r = _breaths_program()(world, params)
    c, masks = world.circuit, world.masks
    return baseline.simulate_dense(
        np.asarray(c.J["L"]), np.asarray(c.J["R"]), np.asarray(sparse.dense_mask(masks["L_to_R"])),
        np.asarray(sparse.dense_mask(masks["R_to_L"])), np.asarray(x_l), np.asarray(x_r),
        rule=cfg.learning.rule, lr=cfg.learning.lr, decay=cfg.learning.decay,
        activation=cfg.circuit.activation, active_fraction=cfg.circuit.active_fraction, W0=W0)


def assert_same(w_slots, mask: sparse.FanIn, w_dense: np.ndarray):
    olf = np.asarray(sparse.to_dense(w_slots, mask), np.float64)
    C = np.asarray(sparse.dense_mask(mask))
    assert np.all(olf[C == 0] == 0) and np.all(w_dense[C == 0] == 0)
    scale = np.abs(w_dense).max()
    assert scale > 0  # learning did something
    np.testing.assert_allclose(olf, w_dense, rtol=RTOL, atol=ATOL_REL * scale)


@functools.cache
def recorded_run() -> olfacto.Result:
    return olfacto.run(config("bernoulli", "hebbian"))


@functools.cache
def world_of(mask: str) -> network.World:
    """The anatomy and breath stream of the seed (they do not depend on the rule or activation)."""
    if mask == "bernoulli":
        return jax.tree.map(lambda a: a[0], recorded_run().world)
    # the same bulbs and breath stream with fixed-in-degree masks drawn by olfacto.model.sparse
    # (cheaper to compile than a second network.init)
    world = world_of("bernoulli")
    k_max = sparse.slots(N, N, P, mask)
    draw = jax.jit(lambda key: sparse.sample_mask(key, N, N, P, mask, k_max))
    keys = jax.random.split(jax.random.key(7))
    masks = {d: draw(k) for d, k in zip(circuit.DIRECTIONS, keys)}
    return world.replace(anatomy={**world.anatomy, projection.NAME: projection.Anatomy(masks=masks)})


def random_weights(mask: sparse.FanIn, seed: int) -> jax.Array:
    """Nonzero initial weights in slot form (0 on empty slots)."""
    w = np.random.default_rng(seed).normal(0.0, 0.2, mask.idx.shape).astype(np.float32)
    return jnp.where(mask.valid, w, 0.0)


def test_activations_match_circuit():
    h = np.random.default_rng(0).normal(size=(3, 257)).astype(np.float32)
    for kind in baseline.ACTIVATIONS:
        want = np.asarray(circuit.activate(jnp.asarray(h), kind, jnp.float32(0.1)))
        got = np.stack([baseline.activate(row, kind, 0.1) for row in h])
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.slow  # a science check: make test-slow (CI runs it)
def test_recorded_run_learns_like_dense_baseline():
    """olfacto.run (batched, one run) ends with the dense baseline's weights on the same stream."""
    result = recorded_run()
    world = world_of("bernoulli")
    ref = dense_reference(config("bernoulli", "hebbian"), world)
    assert_same(result.state.weights["L_to_R"][0], world.masks["L_to_R"], ref.W_l_to_r)
    assert_same(result.state.weights["R_to_L"][0], world.masks["R_to_L"], ref.W_r_to_l)
    assert int(result.state.breath[0]) == T


@pytest.mark.parametrize(("mask", "rule", "activation"), [
    ("bernoulli", "sgd", "relu"),
    ("fixed_indegree", "oja", "linear"),
    ("fixed_indegree", "hebbian", "kwta"),
])
def test_advance_matches_dense_baseline(mask, rule, activation):
    """T steps of ``network.learn`` (batch 1) from random weights = the dense baseline from the same weights."""
    cfg = config(mask, rule, activation)
    spec, params = spec_of(cfg), params_of(cfg)
    world = world_of(mask)
    world = world.replace(circuit=world.circuit.replace(activation=activation))  # φ is part of the anatomy
    masks = world.masks
    w = {d: random_weights(masks[d], i + 1) for i, d in enumerate(circuit.DIRECTIONS)}
    rule_fn = rules.rule(rule).per_breath(params.learning, spec.learning.optimizer)
    learned = projection.Learned(weights=w, rule_state={d: rule_fn.init(w[d]) for d in w})
    state = network.State(parts={projection.NAME: learned}, breath=jnp.zeros((), jnp.int32))
    final = jax.jit(lambda w, p, s: network.learn(spec, w, p, s, T))(world, params, state)
    assert int(final.breath) == T
    W0 = tuple(np.asarray(sparse.to_dense(w[d], masks[d])) for d in circuit.DIRECTIONS)
    ref = dense_reference(cfg, world, W0=W0)
    assert_same(final.weights["L_to_R"], masks["L_to_R"], ref.W_l_to_r)
    assert_same(final.weights["R_to_L"], masks["R_to_L"], ref.W_r_to_l)
