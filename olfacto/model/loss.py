"""The alignment loss of one inter-hemispheric projection and its gradient.

For a direction with presynaptic (sending) activity y_pre and postsynaptic
(receiving) direct response y_post, over a batch of B odors or breaths:

    L(W) = ½ · (1/B) Σ_b ‖y_post,b − ŷ_b‖²,   ŷ_b = (W ⊙ C) y_pre,b   (circuit.indirect)

so on a stream of breaths L estimates ½ E‖y_post − ŷ‖². Its gradient over the
existing synapses is

    ∇_W L = −(1/B) Σ_b (y_post,b − ŷ_b) y_pre,bᵀ ⊙ C

The SGD rule and the loss-landscape analysis differentiate this one definition with
``jax.grad``; :func:`olfacto.model.rules.sgd_term` is the closed form, which the
update-alignment measure uses and the tests hold equal to ``jax.grad``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import circuit, sparse


def alignment_loss(weights: jax.Array, mask: sparse.FanIn, y_pre: jax.Array, y_post: jax.Array) -> jax.Array:
    """L(W) = ½ mean_b ‖y_post,b − (W ⊙ C) y_pre,b‖²; ``y_pre`` (B, N_pre) or (N_pre,), ``y_post`` likewise."""
    residual = y_post - circuit.indirect(weights, mask, y_pre)
    if residual.ndim == 1:
        return 0.5 * jnp.sum(residual**2)
    return 0.5 * jnp.mean(jnp.sum(residual**2, axis=-1))


def gradient(weights: jax.Array, mask: sparse.FanIn, y_pre: jax.Array, y_post: jax.Array) -> jax.Array:
    """∇_W L in slot form, by ``jax.grad`` of :func:`alignment_loss` (0 on empty slots)."""
    grad = jax.grad(alignment_loss)(weights, mask, y_pre, y_post)
    return jnp.where(mask.valid, grad, 0.0)
