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
- ``sgd``:        g = ∇_W L = −(y_post − ŷ) y_preᵀ ⊙ C, the gradient of the alignment loss
  L = ½‖y_post − ŷ‖² (:mod:`olfacto.loss`, by ``jax.grad``), passed through an optax
  optimizer (``sgd``: ΔW = −η g; ``momentum``; ``adam``).

:data:`RULES` is the registry: a rule is one entry there (and one name in
``config.Learning.rule``), and ``run``, ``sweep`` and the figures all read it.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from . import loss, sparse


class Rule(NamedTuple):
    """A learning rule: ``init(W) -> state``, ``update(W, state, mask, y_pre, y_post) -> (ΔW, state)``.

    ``y_pre`` is (B, N_pre), ``y_post`` is (B, N_post) for a mini-batch of B breaths.
    """

    init: Callable[[jax.Array], Any]
    update: Callable[[jax.Array, Any, sparse.FanIn, jax.Array, jax.Array], tuple[jax.Array, Any]]


# -- the per-breath directions, shared with measures.update_alignment_slots ---------


def hebbian_term(weights: jax.Array, pre: jax.Array, post: jax.Array, decay: jax.Array) -> jax.Array:
    """y_post y_preᵀ − λ W, in slot form (``pre`` already gathered)."""
    return sparse.outer(post, pre) - decay * weights


def sgd_term(pre: jax.Array, post: jax.Array, y_hat: jax.Array) -> jax.Array:
    """−∇_W ½‖y_post − ŷ‖² = (y_post − ŷ) y_preᵀ in slot form, given ŷ (``pre`` already gathered).

    The closed form of :func:`olfacto.loss.gradient`, which the SGD rule uses; kept as its check.
    """
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
    """Gradient descent on the alignment loss of :mod:`olfacto.loss` (batch mean), through ``opt``."""
    def update(w, state, mask, y_pre, y_post):
        if y_pre.shape[0] == 1:  # one breath: the matrix–vector form of the forward pass
            y_pre, y_post = y_pre[0], y_post[0]
        grad = loss.gradient(w, mask, y_pre, y_post)
        updates, state = opt.update(grad, state, w)
        return _masked(mask, updates), state

    return Rule(opt.init, update)


RULES: dict[str, Callable[[Any, str], Rule]] = {
    "hebbian": lambda p, opt: hebbian(p.lr, p.decay),
    "oja": lambda p, opt: oja(p.lr),
    "covariance": lambda p, opt: covariance(p.lr, p.decay, p.mean_rate),
    "sgd": lambda p, opt: sgd(optimizer(opt, p.lr, p.momentum)),
}
"""The learning rules by name: ``RULES[name](learning_params, optimizer_name) -> Rule``."""


def make_rule(name: str, learning: Any, optimizer_name: str = "sgd") -> Rule:
    """The rule called ``name``; ``learning`` holds its (possibly traced) scalars ``lr``, ``decay``, …"""
    if name not in RULES:
        raise ValueError(f"learning.rule={name!r}: allowed are {', '.join(map(repr, RULES))}")
    return RULES[name](learning, optimizer_name)
