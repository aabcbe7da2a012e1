"""The chunked plasticity of olfacto.plasticity equals the per-breath recursion of olfacto.rules.

Reference: the rule's ``update`` of :mod:`olfacto.rules` applied T/B times in a
``lax.scan`` (float32), from the same nonzero initial weights (and nonzero running
means for the covariance rule). T = 37 breaths (prime) for B = 1 and T = 39 (13
updates) for B = 3. Masks are ``bernoulli`` with empty slots, N_pre ≠ N_post for one
direction, so a transposed index shows. Tolerance (float32, both paths round
differently, errors grow ~√T):

    |W_chunk − W_ref| ≤ 2e-5 · max|W_ref|        (elementwise), empty slots exactly 0

The observed disagreement is ≲ 1e-6 · max|W_ref|.
"""

from __future__ import annotations

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from olfacto import plasticity, rules, sparse
from olfacto.circuit import DIRECTIONS, post, pre

N_PRE, N_POST, M, P = 41, 29, 6, 0.3
LR, DECAY, MEAN_RATE = {"hebbian": 0.05, "oja": 0.03, "covariance": 0.05}, 0.5, 0.1
ATOL_REL = 2e-5


def draw(seed: int, t: int, n_pre: int = N_PRE, n_post: int = N_POST):
    """Mask, initial weights, initial means and a stream of t breaths (inputs x, bulb matrices J).

    Drawn with NumPy: compiling JAX's PRNG for every shape would dominate this file's time.
    The mask is bernoulli-like: k_max distinct sorted partners per row, each slot valid
    with probability pN/k_max.
    """
    rng = np.random.default_rng(seed)
    k_max = sparse.slots(n_post, n_pre, P, "bernoulli")
    idx = np.sort(np.stack([rng.choice(n_pre, k_max, replace=False) for _ in range(n_post)]), axis=1)
    valid = rng.random((n_post, k_max)) < P * n_pre / k_max
    mask = sparse.FanIn(idx=jnp.asarray(idx, jnp.int32), valid=jnp.asarray(valid), n_pre=n_pre)
    f = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)  # noqa: E731
    w0 = jnp.where(mask.valid, 0.3 * f(n_post, k_max), 0.0)
    means = (0.2 * f(n_pre), 0.2 * f(n_post))
    return mask, w0, means, (f(t, M), f(n_pre, M) / M**0.5), (f(t, M), f(n_post, M) / M**0.5)


def per_breath(rule, w, state, mask, y_pre, y_post, batch):
    """T/B updates of olfacto.rules, one after another (the reference path)."""
    learning = SimpleNamespace(lr=jnp.float32(LR[rule]), decay=jnp.float32(DECAY), momentum=jnp.float32(0.0),
                               mean_rate=jnp.float32(MEAN_RATE))
    r = rules.make_rule(rule, learning)
    n = y_pre.shape[0] // batch

    def step(carry, ys):
        w, s = carry
        dw, s = r.update(w, s, mask, *ys)
        return (w + dw, s), None

    (w, state), _ = jax.lax.scan(step, (w, state), (y_pre.reshape(n, batch, -1), y_post.reshape(n, batch, -1)))
    return w, state


def stream(x, j, activation):
    if activation == "linear":
        return plasticity.linear(x, j)
    return plasticity.explicit(jax.nn.relu(x @ j.T))


def assert_close(got, want, mask):
    got, want = np.asarray(got), np.asarray(want)
    valid = np.asarray(mask.valid)
    assert (~valid).any(), "the test needs empty slots"
    assert np.all(got[~valid] == 0.0)
    scale = np.abs(want).max()
    assert scale > 0.01
    print(f"max |Δ| / max|W| = {np.abs(got - want).max() / scale:.1e}")
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL_REL * scale)


CASES = [  # (activation, form, batch)
    ("relu", "dense", 1),
    ("relu", "gather", 3),
    ("linear", "factored", 1),
    ("linear", "factored", 3),
    ("linear", "gather", 1),
]


@pytest.mark.parametrize("rule", plasticity.CHUNKED_RULES)
@pytest.mark.parametrize(("activation", "form", "batch"), CASES)
def test_chunk_equals_per_breath(rule, activation, form, batch):
    t = 37 if batch == 1 else 39
    mask, w0, means, (x_pre, j_pre), (x_post, j_post) = draw(1, t)
    pre, post = stream(x_pre, j_pre, activation), stream(x_post, j_post, activation)
    state = means if rule == "covariance" else ()
    lr, decay, rate = jnp.float32(LR[rule]), jnp.float32(DECAY), jnp.float32(MEAN_RATE)
    got_w, got_s = jax.jit(lambda w, s, a, b: plasticity.update(rule, w, s, mask, a, b, lr, decay, rate, batch, form))(
        w0, state, pre, post)
    want_w, want_s = per_breath(rule, w0, state, mask, pre.dense(), post.dense(), batch)
    assert_close(got_w, want_w, mask)
    for g, w in zip(jax.tree.leaves(got_s), jax.tree.leaves(want_s)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("rule", "activation", "form"), [
    ("hebbian", "relu", "dense"),  # one dense product shared by both directions (transposed)
    ("oja", "linear", "factored"),
    ("covariance", "relu", "gather"),
])
def test_pair_equals_per_breath(rule, activation, form):
    """Both directions of a bilateral circuit (N_L = N_R) against the per-breath path."""
    t, n = 37, 40
    mask_rl, w_rl, means, (x_l, j_l), (x_r, j_r) = draw(2, t, n, n)
    mask_lr, w_lr, *_ = draw(3, t, n, n)
    streams = {"L": stream(x_l, j_l, activation), "R": stream(x_r, j_r, activation)}
    masks, w = {"L_to_R": mask_rl, "R_to_L": mask_lr}, {"L_to_R": w_rl, "R_to_L": w_lr}
    state = ({"L_to_R": means, "R_to_L": means[::-1]} if rule == "covariance" else {"L_to_R": (), "R_to_L": ()})
    lr, decay, rate = jnp.float32(LR[rule]), jnp.float32(DECAY), jnp.float32(MEAN_RATE)
    got, got_state = jax.jit(lambda w, s, st: plasticity.update_pair(rule, w, s, masks, st, lr, decay, rate, 1, form))(
        w, state, streams)
    for direction in DIRECTIONS:
        want, want_state = per_breath(rule, w[direction], state[direction], masks[direction],
                                      streams[pre(direction)].dense(), streams[post(direction)].dense(), 1)
        assert_close(got[direction], want, masks[direction])
        for g, s in zip(jax.tree.leaves(got_state[direction]), jax.tree.leaves(want_state)):
            np.testing.assert_allclose(np.asarray(g), np.asarray(s), rtol=1e-5, atol=1e-6)


def test_long_factored_chunk_with_negative_decay_factor():
    """T = 1,001 breaths in one factored chunk with a = 1 − ηλ < 0 (oscillating decay, exact powers)."""
    t = 1001
    mask, w0, _, (x_pre, j_pre), (x_post, j_post) = draw(4, t)
    lr, decay = jnp.float32(0.02), jnp.float32(60.0)  # a = −0.2
    pre, post = plasticity.linear(x_pre, j_pre), plasticity.linear(x_post, j_post)
    got, _ = plasticity.update("hebbian", w0, (), mask, pre, post, lr, decay, jnp.float32(0), 1, "factored")
    r = rules.hebbian(lr, decay)
    want, _ = jax.lax.scan(lambda w, ys: (w + r.update(w, (), mask, ys[0][None], ys[1][None])[0], None), w0,
                           (pre.dense(), post.dense()))
    assert_close(got, want, mask)


def test_choice_of_form():
    # linear φ and T > M: factored; the kernel follows the cost of the shapes
    assert plasticity.choose("auto", "hebbian", 100_000, 100_000, 50, 200, 50, True) == (True, "gather")
    assert plasticity.choose("auto", "oja", 2000, 2000, 1000, 500, 50, False) == (False, "dense")
    assert plasticity.choose("auto", "hebbian", 100_000, 100_000, 50, 200, 50, False) == (False, "gather")
    assert plasticity.choose("auto", "hebbian", 1000, 1000, 100, 20, 50, True)[0] is False  # T < M
    assert plasticity.choose("gather", "oja", 10, 10, 3, 5, 4, True) == (False, "gather")
    with pytest.raises(ValueError, match="form='factored' needs circuit.activation='linear'"):
        plasticity.choose("factored", "hebbian", 10, 10, 3, 5, 4, False)
    with pytest.raises(ValueError, match="rule='sgd' has no chunked form"):
        plasticity.choose("auto", "sgd", 10, 10, 3, 5, 4, True)
    with pytest.raises(ValueError, match="form='blocked': allowed are"):
        plasticity.choose("blocked", "hebbian", 10, 10, 3, 5, 4, True)
