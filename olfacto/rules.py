"""Learning rules for the inter-hemispheric weights, as (init, update) pairs.

A rule has the shape of an optax ``GradientTransformation``::

    state        = rule.init(W)
    ΔW, state    = rule.update(W, state, mask, y_pre, y_post)

with ``W`` the weights in slot form (N_post, K_max) (see :mod:`olfacto.sparse`),
``y_pre`` (B, N_pre) and ``y_post`` (B, N_post) the activities of a mini-batch of B
breaths. The per-breath terms are averaged over the batch, and every ΔW is
multiplied by the mask, so absent synapses stay at 0:

- ``hebbian``:    ΔW = η (y_post y_preᵀ − λ W) ⊙ C
- ``oja``:        ΔW = η (y_post y_preᵀ − diag(y_post²) W) ⊙ C
- ``covariance``: ΔW = η ((y_post − ȳ_post)(y_pre − ȳ_pre)ᵀ − λ W) ⊙ C, with running
  means ȳ ← ȳ + ρ (y − ȳ) updated after each breath (ρ = ``mean_rate``)
- ``sgd``:        g = −(y_post − W y_pre) y_preᵀ ⊙ C = ∇_W ½‖y_post − W y_pre‖² ⊙ C,
  passed through an optax optimizer (``sgd``: ΔW = −η g; ``momentum``; ``adam``).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from . import sparse

RULES = ("hebbian", "oja", "covariance", "sgd")


class Rule(NamedTuple):
    """A learning rule: ``init(W) -> state``, ``update(W, state, mask, y_pre, y_post) -> (ΔW, state)``.

    ``y_pre`` is (B, N_pre), ``y_post`` is (B, N_post) for a mini-batch of B breaths.
    """

    init: Callable[[jax.Array], Any]
    update: Callable[[jax.Array, Any, sparse.FanIn, jax.Array, jax.Array], tuple[jax.Array, Any]]


# -- the per-breath directions, shared with metrics.update_alignment ----------


def hebbian_term(weights: jax.Array, pre: jax.Array, post: jax.Array, decay: jax.Array) -> jax.Array:
    """y_post y_preᵀ − λ W, in slot form (``pre`` already gathered)."""
    return sparse.outer(post, pre) - decay * weights


def sgd_term(weights: jax.Array, pre: jax.Array, post: jax.Array) -> jax.Array:
    """−∇_W ½‖y_post − W y_pre‖² = (y_post − W y_pre) y_preᵀ, in slot form."""
    y_hat = jnp.sum(weights * pre, axis=-1)
    return sparse.outer(post - y_hat, pre)


def _batch_mean(term: Callable[[jax.Array, jax.Array], jax.Array], mask: sparse.FanIn,
                y_pre: jax.Array, y_post: jax.Array) -> jax.Array:
    """Mean over the B breaths of ``term(gathered pre, post)``; memory stays N·K for any B."""
    if y_pre.shape[0] == 1:
        return term(sparse.gather(mask, y_pre[0]), y_post[0])

    def add(total, breath):
        pre, post = breath
        return total + term(sparse.gather(mask, pre), post), None

    total, _ = jax.lax.scan(add, jnp.zeros(mask.idx.shape, y_pre.dtype), (y_pre, y_post))
    return total / y_pre.shape[0]


def _masked(mask: sparse.FanIn, dw: jax.Array) -> jax.Array:
    return jnp.where(mask.valid, dw, 0.0)


def hebbian(lr: jax.Array, decay: jax.Array) -> Rule:
    def update(w, state, mask, y_pre, y_post):
        term = _batch_mean(lambda pre, post: hebbian_term(w, pre, post, decay), mask, y_pre, y_post)
        return _masked(mask, lr * term), state

    return Rule(lambda w: (), update)


def oja(lr: jax.Array) -> Rule:
    def update(w, state, mask, y_pre, y_post):
        term = _batch_mean(lambda pre, post: sparse.outer(post, pre) - (post**2)[:, None] * w, mask, y_pre, y_post)
        return _masked(mask, lr * term), state

    return Rule(lambda w: (), update)


def covariance(lr: jax.Array, decay: jax.Array, mean_rate: jax.Array) -> Rule:
    def init(w):
        n_post = w.shape[0]
        # the presynaptic side has as many neurons as the postsynaptic one here
        return (jnp.zeros((n_post,), w.dtype), jnp.zeros((n_post,), w.dtype))

    def update(w, state, mask, y_pre, y_post):
        def step(carry, breath):
            total, (m_pre, m_post) = carry
            pre, post = breath
            term = hebbian_term(w, sparse.gather(mask, pre - m_pre), post - m_post, decay)
            means = (m_pre + mean_rate * (pre - m_pre), m_post + mean_rate * (post - m_post))
            return (total + term, means), None

        (total, state), _ = jax.lax.scan(step, (jnp.zeros_like(w), state), (y_pre, y_post))
        return _masked(mask, lr * total / y_pre.shape[0]), state

    return Rule(init, update)


def optimizer(name: str, lr: jax.Array, momentum: jax.Array) -> optax.GradientTransformation:
    """The optax optimizer behind the ``sgd`` rule."""
    if name == "sgd":
        return optax.sgd(lr)
    if name == "momentum":
        return optax.sgd(lr, momentum=momentum)
    if name == "adam":
        return optax.adam(lr)
    raise ValueError(f"learning.optimizer={name!r}: allowed are 'sgd', 'momentum', 'adam'")


def sgd(opt: optax.GradientTransformation) -> Rule:
    def update(w, state, mask, y_pre, y_post):
        grad = -_batch_mean(lambda pre, post: sgd_term(w, pre, post), mask, y_pre, y_post)
        updates, state = opt.update(_masked(mask, grad), state, w)
        return _masked(mask, updates), state

    return Rule(opt.init, update)


def make_rule(name: str, lr: jax.Array, decay: jax.Array, momentum: jax.Array, mean_rate: jax.Array,
              optimizer_name: str = "sgd") -> Rule:
    """The rule called ``name`` with (possibly traced) scalar parameters."""
    if name == "hebbian":
        return hebbian(lr, decay)
    if name == "oja":
        return oja(lr)
    if name == "covariance":
        return covariance(lr, decay, mean_rate)
    if name == "sgd":
        return sgd(optimizer(optimizer_name, lr, momentum))
    raise ValueError(f"learning.rule={name!r}: allowed are {', '.join(map(repr, RULES))}")
