"""The mask draw of olfacto up to commit 9142ee0, frozen: the reference records of
``tests/data/*_v0.1.0.nc`` and ``tests/data/reference/`` were written with it.

The draw changed (issue 23: a row's synapses no longer depend on the slot count, so a sweep over p
compiles once); the records still pin everything downstream of it — learning, recurrence, records,
measures — when their tests put this draw back with :func:`patched`. The new draw is pinned by
``tests/test_padding.py`` (same synapses whatever the slot count, uniform partners, the in-degree law).
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import pytest

from olfacto.model import sparse


def _distinct_sorted(key: jax.Array, n_rows: int, k: int, n: int) -> jax.Array:
    """``n_rows`` rows of ``k`` distinct integers in [0, n), each row sorted.

    For k ≤ n/2 draw with replacement and redraw duplicates until none remain
    (expected k²/2n duplicates per row, so a few rounds); otherwise take the
    first k entries of a random permutation per row (the dense regime, where
    N·K ~ N² memory is inherent anyway).
    """
    if 2 * k > n:
        perm = jnp.argsort(jax.random.uniform(key, (n_rows, n)), axis=1)
        return jnp.sort(perm[:, :k], axis=1).astype(jnp.int32)

    key, sub = jax.random.split(key)
    idx = jnp.sort(jax.random.randint(sub, (n_rows, k), 0, n, dtype=jnp.int32), axis=1)

    def duplicates(idx):
        return jnp.concatenate([jnp.zeros((n_rows, 1), bool), idx[:, 1:] == idx[:, :-1]], axis=1)

    def cond(carry):
        return duplicates(carry[0]).any()

    def body(carry):
        idx, key = carry
        key, sub = jax.random.split(key)
        fresh = jax.random.randint(sub, idx.shape, 0, n, dtype=jnp.int32)
        return jnp.sort(jnp.where(duplicates(idx), fresh, idx), axis=1), key

    idx, _ = jax.lax.while_loop(cond, body, (idx, key))
    return idx


def sample_mask(key: jax.Array, n_post: int, n_pre: int, p: float | jax.Array, kind: str, k_max: int) -> sparse.FanIn:
    """Draw a random mask C (``bernoulli`` or ``fixed_indegree``) in fixed-fan-in form."""
    k_idx, k_deg, k_rank = jax.random.split(key, 3)
    idx = _distinct_sorted(k_idx, n_post, k_max, n_pre)
    if kind == "fixed_indegree":
        valid = jnp.ones((n_post, k_max), bool)
    else:
        # K_i ~ Binomial(N_pre, p); a uniformly random K_i-subset of the k_max
        # distinct candidates is a uniformly random K_i-subset of [0, N_pre).
        degree = jax.random.binomial(k_deg, n_pre, p, shape=(n_post,))
        degree = jnp.minimum(degree, k_max).astype(jnp.int32)
        rank = jnp.argsort(jax.random.uniform(k_rank, (n_post, k_max)), axis=1).argsort(axis=1)
        valid = rank < degree[:, None]
    return sparse.FanIn(idx=idx, valid=valid, n_pre=n_pre)


@contextlib.contextmanager
def patched():
    """Within it, every mask is drawn as olfacto drew it up to commit 9142ee0 (the programs compiled afresh), and
    no batch pads its runs to more slots: that draw depends on the slot count."""
    from olfacto.engine import devices, programs

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sparse, "sample_mask", sample_mask)
        mp.setattr(devices, "PAD_WORK", 0)
        mp.setattr(programs, "_COMPILED", {})
        yield
