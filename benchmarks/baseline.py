"""The plain NumPy way: dense N×N weights, a dense 0/1 mask, a Python loop over breaths.

This is how a first research script would simulate MODEL.md §3, and it is kept
as a reference for two purposes only:

- ``tests/test_baseline.py`` checks that olfacto's sparse, compiled path gives
  the same weights as this one on the same anatomy and breath stream;
- ``olfacto bench`` times it against olfacto.

:func:`dense_jax_program` is the second peer: the same dense algorithm as a jitted
``lax.scan`` (float32), the way a JAX user would write it without sparsity.

Every breath costs O(N²) here (the dense outer product and mask), whatever the
connection probability, while olfacto's step costs O(N·K). Do not use this for
experiments.

Conventions (identical to :mod:`olfacto.model.circuit` and :mod:`olfacto.model.rules`):
direct responses y_h = φ(J_h x_h); R←L has post = y_R, pre = y_L; L←R the
reverse; both directions are updated from the same weights on each breath:

- ``hebbian``: ΔW = η (y_post y_preᵀ − λ W) ⊙ C
- ``oja``:     ΔW = η (y_post y_preᵀ − diag(y_post²) W) ⊙ C
- ``sgd``:     ΔW = η (y_post − W y_pre) y_preᵀ ⊙ C   (plain SGD, one breath per step)
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

RULES = ("hebbian", "oja", "sgd")
ACTIVATIONS = ("linear", "relu", "kwta")


def activate(h: np.ndarray, kind: str, active_fraction: float = 0.1) -> np.ndarray:
    """φ(h) for one breath's cortical drive h (N,); matches :func:`olfacto.model.circuit.activate`."""
    if kind == "linear":
        return h
    if kind == "relu":
        return np.maximum(h, 0)
    if kind == "kwta":
        theta = np.quantile(h, 1.0 - active_fraction)  # numpy's default 'linear' method, as jnp.quantile
        return np.maximum(h - theta, 0)
    raise ValueError(f"activation={kind!r}: allowed are {', '.join(map(repr, ACTIVATIONS))}")


def delta(W: np.ndarray, C: np.ndarray, pre: np.ndarray, post: np.ndarray, rule: str, lr: float,
          decay: float) -> np.ndarray:
    """ΔW of one breath for one direction (dense, N_post × N_pre)."""
    if rule == "hebbian":
        return lr * (np.outer(post, pre) - decay * W) * C
    if rule == "oja":
        return lr * (np.outer(post, pre) - (post**2)[:, None] * W) * C
    if rule == "sgd":
        return lr * np.outer(post - W @ pre, pre) * C
    raise ValueError(f"rule={rule!r}: allowed are {', '.join(map(repr, RULES))}")


class DenseResult(NamedTuple):
    W_l_to_r: np.ndarray  # R ← L, dense (N, N), zero off the mask
    W_r_to_l: np.ndarray  # L ← R
    seconds: float  # wall time of the breath loop
    seconds_per_breath: float


def simulate_dense(J_L, J_R, C_l_to_r, C_r_to_l, x_l, x_r, rule: str = "hebbian", lr: float = 0.01,
                   decay: float = 1.0, activation: str = "linear", active_fraction: float = 0.1,
                   W0: tuple[np.ndarray, np.ndarray] | None = None, dtype=np.float64) -> DenseResult:
    """Learn both inter-hemispheric projections breath by breath.

    J_L, J_R: (N, M) bulb→cortex matrices; C_l_to_r, C_r_to_l: dense (N, N) 0/1 masks
    (R←L and L←R); x_l, x_r: (T, M) the nostril inputs of breaths 0 … T−1;
    W0: optional initial (W_l_to_r, W_r_to_l), else zeros. Returns the final dense
    weights and the wall time of the loop.
    """
    J_L, J_R = np.asarray(J_L, dtype), np.asarray(J_R, dtype)
    C_l_to_r, C_r_to_l = np.asarray(C_l_to_r, dtype), np.asarray(C_r_to_l, dtype)
    x_l, x_r = np.asarray(x_l, dtype), np.asarray(x_r, dtype)
    n = J_L.shape[0]
    if W0 is None:
        W_l_to_r, W_r_to_l = np.zeros((n, n), dtype), np.zeros((n, n), dtype)
    else:
        W_l_to_r, W_r_to_l = np.array(W0[0], dtype) * C_l_to_r, np.array(W0[1], dtype) * C_r_to_l
    lr, decay = dtype(lr), dtype(decay)

    start = time.perf_counter()
    for t in range(x_l.shape[0]):
        y_l = activate(J_L @ x_l[t], activation, active_fraction)
        y_r = activate(J_R @ x_r[t], activation, active_fraction)
        d_l_to_r = delta(W_l_to_r, C_l_to_r, pre=y_l, post=y_r, rule=rule, lr=lr, decay=decay)
        d_r_to_l = delta(W_r_to_l, C_r_to_l, pre=y_r, post=y_l, rule=rule, lr=lr, decay=decay)
        W_l_to_r = W_l_to_r + d_l_to_r
        W_r_to_l = W_r_to_l + d_r_to_l
    seconds = time.perf_counter() - start
    return DenseResult(W_l_to_r, W_r_to_l, seconds, seconds / max(1, x_l.shape[0]))


# -- the second peer: the same dense algorithm as a JAX user would write it ----------------


def dense_jax_program(rule: str = "hebbian", activation: str = "linear", active_fraction: float = 0.1):
    """A jitted ``lax.scan`` of the dense algorithm above, both directions, per breath.

    ``program(J_L, J_R, C_l_to_r, C_r_to_l, x_l, x_r, W_l_to_r, W_r_to_l, lr, decay) -> (W_l_to_r, W_r_to_l)``: dense
    N × N float32 weights times the dense 0/1 masks, every breath — the way a JAX user writes it
    without sparsity (no slot layout, no chunking). Breaths are the rows of x_l, x_r (T, M).
    The weights are donated (updated in place).
    """
    import jax
    import jax.numpy as jnp

    if rule not in RULES:
        raise ValueError(f"rule={rule!r}: allowed are {', '.join(map(repr, RULES))}")

    def phi(h):
        if activation == "linear":
            return h
        if activation == "relu":
            return jnp.maximum(h, 0.0)
        theta = jnp.quantile(h, 1.0 - active_fraction)
        return jnp.maximum(h - theta, 0.0)

    def delta(W, C, pre, post, lr, decay):
        if rule == "hebbian":
            return lr * (jnp.outer(post, pre) - decay * W) * C
        if rule == "oja":
            return lr * (jnp.outer(post, pre) - (post**2)[:, None] * W) * C
        return lr * jnp.outer(post - W @ pre, pre) * C

    def program(J_L, J_R, C_l_to_r, C_r_to_l, x_l, x_r, W_l_to_r, W_r_to_l, lr, decay):
        def step(W, x):
            W_l_to_r, W_r_to_l = W
            y_l, y_r = phi(J_L @ x[0]), phi(J_R @ x[1])
            return (W_l_to_r + delta(W_l_to_r, C_l_to_r, y_l, y_r, lr, decay), W_r_to_l + delta(W_r_to_l, C_r_to_l, y_r, y_l, lr, decay)), None

        return jax.lax.scan(step, (W_l_to_r, W_r_to_l), (x_l, x_r))[0]

    return jax.jit(program, donate_argnums=(6, 7))
