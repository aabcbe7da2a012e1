"""The decoding and error measures on responses whose answer is known exactly (issue 7, item 8)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from olfacto.model import measures

P, N = 40, 300
Y = jax.random.normal(jax.random.key(0), (P, N))  # probe × neuron direct responses, seed 0


def test_decoding_transfer_known_answers():
    # identical responses decode perfectly; responses shifted by one probe decode nothing;
    # half the probes swapped in pairs: exactly half right
    assert float(measures.decoding_transfer(Y, Y)) == 1.0
    assert float(measures.decoding_transfer(Y, jnp.roll(Y, 1, axis=0))) == 0.0
    swapped = Y.at[: P // 2].set(jnp.roll(Y[: P // 2], 1, axis=0))
    assert float(measures.decoding_transfer(Y, swapped)) == 0.5
    # correlation-based: a positive gain and an offset per probe change nothing
    assert float(measures.decoding_transfer(Y, 3.0 * Y + 2.0)) == 1.0


def test_decoding_transfer_at_chance_for_independent_responses():
    # independent indirect responses: accuracy ~ Binomial(P, 1/P)/P; with P = 40, ≤ 4 hits has
    # probability > 0.99 (seed fixed)
    other = jax.random.normal(jax.random.key(1), (P, N))
    assert float(measures.decoding_transfer(Y, other)) <= 4 / P


def test_laterality_decoding_known_answers():
    # the two sides differ by a constant shift along one direction: perfectly separable
    shift = jnp.zeros(N).at[0].set(50.0)
    assert float(measures.laterality_decoding(Y, Y + shift)) == 1.0
    # identical responses on both sides: every test probe gets one score for both labels, so
    # exactly one of its two trials is right
    assert float(measures.laterality_decoding(Y, Y)) == 0.5


def test_relative_error_known_answers():
    np.testing.assert_allclose(float(measures.relative_error(Y, Y)), 0.0, atol=1e-6)
    np.testing.assert_allclose(float(measures.relative_error(Y, jnp.zeros_like(Y))), 1.0, rtol=1e-6)
    np.testing.assert_allclose(float(measures.relative_error(Y, 2.0 * Y)), 1.0, rtol=1e-6)
    # ŷ = a y: (1 − a)², probe by probe
    np.testing.assert_allclose(float(measures.relative_error(Y, 0.25 * Y)), 0.5625, rtol=1e-6)
