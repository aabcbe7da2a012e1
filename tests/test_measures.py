"""The decoding and error measures on responses whose answer is known exactly (issue 7, item 8)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


# -- the one-pass forms (docs/benchmarks.md §14) against float64 references of the definitions -------------

A = jax.nn.relu(jax.random.normal(jax.random.key(2), (P, N))) + 0.5  # positive means, as rectified responses
B = 0.7 * A + 0.4 * jax.random.normal(jax.random.key(3), (P, N)) + 1.0


def test_pearson_in_one_pass_equals_float64_along_either_axis():
    a, b = np.asarray(A, np.float64), np.asarray(B, np.float64)
    along_neurons = [np.corrcoef(a[p], b[p])[0, 1] for p in range(P)]
    along_probes = [np.corrcoef(a[:, i], b[:, i])[0, 1] for i in range(N)]
    # float32 sums of ≤ 300 terms of mean ≈ 1: a few 1e-6 of a correlation
    np.testing.assert_allclose(np.asarray(measures.pearson(A, B, axis=-1)), along_neurons, atol=3e-6)
    np.testing.assert_allclose(np.asarray(measures.pearson(A, B, axis=0)), along_probes, atol=3e-6)


def test_decoding_transfer_is_the_argmax_of_the_float64_correlations():
    # indirect responses half signal, half noise: some probes decoded, some not (the answer is not 0 or 1)
    noisy = 0.3 * B + jax.random.normal(jax.random.key(4), (P, N))
    c = np.corrcoef(np.asarray(noisy, np.float64), np.asarray(A, np.float64))[:P, P:]  # (indirect, direct)
    expected = np.mean(np.argmax(c, axis=1) == np.arange(P))
    assert 0.1 < expected < 0.9
    assert float(measures.decoding_transfer(A, noisy)) == pytest.approx(expected, abs=1e-6)  # a float32 mean


def _laterality_float64(direct, indirect, ridge=1e-2):
    """MODEL.md's ridge classifier of the stimulated side, as written, in float64."""
    d, i = np.asarray(direct, np.float64), np.asarray(indirect, np.float64)
    h = len(d) // 2
    train, test = np.concatenate([d[:h], i[:h]]), np.concatenate([d[h:], i[h:]])
    t_train = np.r_[np.ones(h), -np.ones(h)]
    t_test = np.r_[np.ones(len(d) - h), -np.ones(len(d) - h)]
    mu = train.mean(0)
    gram = (train - mu) @ (train - mu).T
    alpha = np.linalg.solve(gram + ridge * (np.trace(gram) / len(gram) + 1e-12) * np.eye(len(gram)), t_train)
    return np.mean(np.sign((test - mu) @ ((train - mu).T @ alpha)) == t_test)


def test_laterality_decoding_equals_the_float64_classifier():
    # the other side: the same responses with noise and an offset along five neurons, separable for some
    # held-out probes only (0.7 here)
    other = (A + 0.3 * jax.random.normal(jax.random.key(5), (P, N))).at[:, :5].add(0.6)
    expected = _laterality_float64(A, other)
    assert 0.5 < expected < 1.0
    assert float(measures.laterality_decoding(A, other)) == pytest.approx(expected, abs=1e-6)  # a float32 mean


def test_a_non_finite_response_makes_the_decoders_nan():
    # argmax and sign of NaN still pick a class: without the check an undefined response would decode at chance
    for bad in (jnp.nan, jnp.inf, -jnp.inf):
        broken = A.at[3, 7].set(bad)
        for fn in (measures.decoding_transfer, measures.laterality_decoding):
            assert np.isnan(float(fn(broken, B))) and np.isnan(float(fn(A, broken))), (fn.__name__, bad)
