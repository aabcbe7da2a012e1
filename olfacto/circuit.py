"""The bilateral circuit: bulb→cortex projections J_L, J_R, activation φ, masks C.

Direct response of hemisphere h to its own nostril's input x_h:

    y_h = φ(J_h x_h),   J_h ∈ R^{N×M}

- ``gaussian`` J: entries N(0, 1/M), so E[(J x)_i²] = E‖x‖²/M ≈ 1.
- ``sparse`` J (feed-forward inhibition): positive weights w_im = b_im·a_im,
  b_im ~ Bernoulli(c), a_im ~ Exp(1), minus their row mean (global inhibition
  from the same glomeruli), scaled so that Var(J_im) = 1/M.

Activations φ: ``linear``; ``relu``; ``kwta`` — y = max(h − θ, 0) with θ the
(1 − f) quantile of h across the N neurons for each odor, so global inhibition
leaves a fraction f active.

Inter-hemispheric masks: ``mask_rl`` carries L → R (post = right cortex,
pre = left cortex), ``mask_lr`` carries R → L, drawn independently
(:mod:`olfacto.sparse`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from . import sparse


@struct.dataclass
class Circuit:
    """Fixed anatomy of one simulated animal."""

    J_L: jax.Array  # (N, M)
    J_R: jax.Array  # (N, M)
    mask_rl: sparse.FanIn  # R ← L
    mask_lr: sparse.FanIn  # L ← R
    activation: str = struct.field(pytree_node=False)


def projection(key: jax.Array, n: int, m: int, kind: str, density: jax.Array) -> jax.Array:
    """A bulb→cortex matrix J (N×M) of the given kind."""
    if kind == "gaussian":
        return jax.random.normal(key, (n, m)) / jnp.sqrt(m)
    k_on, k_amp = jax.random.split(key)
    w = jax.random.bernoulli(k_on, density, (n, m)) * jax.random.exponential(k_amp, (n, m))
    w = w - w.mean(axis=1, keepdims=True)
    var = 2 * density - density**2  # Var of Bernoulli(c)·Exp(1)
    return w / jnp.sqrt(m * var * (1 - 1 / m) + 1e-12)


def activate(h: jax.Array, kind: str, active_fraction: jax.Array) -> jax.Array:
    """φ(h) along the last (neuron) axis."""
    if kind == "linear":
        return h
    if kind == "relu":
        return jax.nn.relu(h)
    theta = jnp.quantile(h, 1.0 - active_fraction, axis=-1, keepdims=True)
    return jax.nn.relu(h - theta)


def direct(J: jax.Array, x: jax.Array, kind: str, active_fraction: jax.Array) -> jax.Array:
    """y = φ(J x) for a batch of inputs x (B, M) → (B, N)."""
    return activate(x @ J.T, kind, active_fraction)


def make_circuit(key: jax.Array, n_cortex: int, n_glomeruli: int, connection_prob: float, mask: str,
                 k_max: int, projection_kind: str, projection_density: jax.Array, activation: str) -> Circuit:
    """Draw J_L, J_R and both masks independently from ``key``."""
    k_l, k_r, k_rl, k_lr = jax.random.split(key, 4)
    return Circuit(
        J_L=projection(k_l, n_cortex, n_glomeruli, projection_kind, projection_density),
        J_R=projection(k_r, n_cortex, n_glomeruli, projection_kind, projection_density),
        mask_rl=sparse.sample_mask(k_rl, n_cortex, n_cortex, connection_prob, mask, k_max),
        mask_lr=sparse.sample_mask(k_lr, n_cortex, n_cortex, connection_prob, mask, k_max),
        activation=activation,
    )
