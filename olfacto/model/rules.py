"""Learning rules of the inter-hemispheric weights: one :class:`Rule` object each, in :data:`RULES`.

A rule's per-breath form has the shape of an optax ``GradientTransformation``::

    state        = transform.init(W)
    ΔW, state    = transform.update(W, state, mask, y_pre, y_post)

with ``W`` the weights in slot form (N_post, K_max) (see :mod:`olfacto.model.sparse`),
``y_pre`` (B, N_pre) and ``y_post`` (B, N_post) the activities of a mini-batch of B
breaths. The per-breath terms are averaged over the batch, and every ΔW is
multiplied by the mask, so absent synapses stay at 0:

- ``hebbian``:    ΔW = η (y_post y_preᵀ − λ W) ⊙ C
- ``oja``:        ΔW = η (y_post y_preᵀ − diag(y_post²) W) ⊙ C
- ``covariance``: ΔW = η ((y_post − ȳ_post)(y_pre − ȳ_pre)ᵀ − λ W) ⊙ C, with running
  means ȳ ← ȳ + ρ (y − ȳ) updated after each breath (ρ = ``mean_rate``)
- ``sgd``:        g = ∇_W L = −(y_post − ŷ) y_preᵀ ⊙ C, the gradient of the alignment loss
  L = ½‖y_post − ŷ‖² (:mod:`olfacto.model.loss`, by ``jax.grad``), passed through an optax
  optimizer (``sgd``: ΔW = −η g; ``momentum``; ``adam``).

A local rule (linear in W once the activities are fixed) also has a chunked form: T breaths
as one exact update W_T = D ⊙ W_0 + (sampled product) (:mod:`olfacto.model.chunked`).
Everything else the simulator needs of a rule — the memory of its state, its stability and
what to change when it diverges, whether the mean-field theory covers it — is a field of its
:class:`Rule`, so a new rule is one object here (plus its name in ``config.Learning.rule``
and its tests). From Python, :func:`register` adds one as an ``(init, update)`` pair without
editing anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from . import chunked, loss, sparse


class Transform(NamedTuple):
    """A rule's per-breath form: ``init(W) -> state``, ``update(W, state, mask, y_pre, y_post) -> (ΔW, state)``.

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

    The closed form of :func:`olfacto.model.loss.gradient`, which the SGD rule uses; kept as its check.
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


def hebbian(lr: jax.Array, decay: jax.Array) -> Transform:
    def update(w, state, mask, y_pre, y_post):
        term = _batch_mean(lambda pre, post: hebbian_term(w, pre, post, decay), mask, y_pre, y_post)
        return _masked(mask, lr * term), state

    return Transform(lambda w: (), update)


def oja(lr: jax.Array) -> Transform:
    def update(w, state, mask, y_pre, y_post):
        term = _batch_mean(lambda pre, post: sparse.outer(post, pre) - (post**2)[:, None] * w, mask, y_pre, y_post)
        return _masked(mask, lr * term), state

    return Transform(lambda w: (), update)


def covariance(lr: jax.Array, decay: jax.Array, mean_rate: jax.Array) -> Transform:
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

    return Transform(init, update)


def optimizer(name: str, lr: jax.Array, momentum: jax.Array) -> optax.GradientTransformation:
    """The optax optimizer behind the ``sgd`` rule."""
    if name == "sgd":
        return optax.sgd(lr)
    if name == "momentum":
        return optax.sgd(lr, momentum=momentum)
    if name == "adam":
        return optax.adam(lr)
    raise ValueError(f"learning.optimizer={name!r}: allowed are 'sgd', 'momentum', 'adam'")


def sgd(opt: optax.GradientTransformation) -> Transform:
    """Gradient descent on the alignment loss of :mod:`olfacto.model.loss` (batch mean), through ``opt``."""
    def update(w, state, mask, y_pre, y_post):
        if y_pre.shape[0] == 1:  # one breath: the matrix–vector form of the forward pass
            y_pre, y_post = y_pre[0], y_post[0]
        grad = loss.gradient(w, mask, y_pre, y_post)
        updates, state = opt.update(grad, state, w)
        return _masked(mask, updates), state

    return Transform(opt.init, update)


# -- stability and advice after a divergence ---------------------------------------------


def input_power(cfg: Any) -> float:
    """⟨y²⟩ per neuron for unit-power odors: (1 + σ²)(1 + a)² (nostril noise σ, nasal-cycle amplitude a)."""
    o = cfg.odors
    return (1 + o.noise**2) * (1 + o.nasal_cycle.amplitude) ** 2


def _overflow(cfg: Any) -> str | None:
    """Responses of ~1e19 overflow float32 in y_post y_preᵀ whatever η."""
    lrn = cfg.learning
    if input_power(cfg) > 1e30 or lrn.init_scale > 1e15:
        big = "odors.noise" if input_power(cfg) > 1e30 else "learning.init_scale"
        value = cfg.odors.noise if big == "odors.noise" else lrn.init_scale
        return f"{big}={value!r} makes the responses overflow float32; reduce {big}"
    return None


def _decay_advice(cfg: Any) -> str:
    """Hebbian and covariance: W ← (1 − ηλ) W + η y_post y_preᵀ is stable for ηλ < 2."""
    o, lrn = cfg.odors, cfg.learning
    step = lrn.lr * lrn.decay
    if step >= 2:
        return (f"learning.lr·learning.decay = {step:.3g} ≥ 2 overshoots the weight decay; "
                "make learning.lr·learning.decay < 2")
    return (f"learning.lr·learning.decay = {step:.3g} < 2 is stable, so look at the input scale "
            f"(odors.noise={o.noise!r}, odors.nasal_cycle.amplitude={o.nasal_cycle.amplitude!r}, "
            f"learning.init_scale={lrn.init_scale!r})")


def _oja_advice(cfg: Any) -> str:
    """Oja: the decay −η y_post² W is stable for η ⟨y²⟩ < 2."""
    o, lr = cfg.odors, cfg.learning.lr
    return (f"learning.lr·⟨y²⟩ ≈ {lr * input_power(cfg):.3g} (stable below 2): reduce learning.lr, or the input "
            f"power set by odors.noise={o.noise!r} and odors.nasal_cycle.amplitude={o.nasal_cycle.amplitude!r}")


def _sgd_advice(cfg: Any) -> str:
    """Plain SGD: the error on a neuron with K inputs shrinks by 1 − η‖y_pre‖²_C, ‖y_pre‖²_C ≈ K⟨y²⟩:
    stable for η K ⟨y²⟩ < 2."""
    c, lrn = cfg.circuit, cfg.learning
    k = c.connection_prob * c.n_cortex
    bound = 2 / max(k * input_power(cfg), 1e-30)
    if lrn.optimizer == "sgd":
        return (f"plain SGD needs learning.lr·K·⟨y²⟩ < 2, here {lrn.lr * k * input_power(cfg):.3g} "
                f"(K = p·N = {k:.3g}): make learning.lr < {bound:.2g}, or reduce "
                "circuit.connection_prob·circuit.n_cortex")
    return (f"learning.optimizer={lrn.optimizer!r} with learning.lr={lrn.lr!r} (plain SGD would need "
            f"learning.lr < {bound:.2g} at K = p·N = {k:.3g}); reduce learning.lr"
            + (" or learning.momentum" if lrn.optimizer == "momentum" else ""))


# -- the registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A learning rule of the inter-hemispheric weights, with everything the simulator needs of it.

    ``per_breath(learning, optimizer) -> Transform``: the per-breath form (``learning``: the traced
    ``params.learning``). ``chunk(pre, post, state, learning, batch, factored) -> (Chunk, state)``:
    the exact chunked form of a local rule (None: per breath only). ``extra_factors``: columns
    the factored chunk adds to the M of a linear cortex; ``factored_streams``: a factored chunk
    holds no N × T array; ``paired``: the two directions' dense chunk products are transposes of
    each other (one serves both). ``state_floats(cfg)``: floats of rule state per synapse slot.
    ``advice(cfg)``: what to change when the weights diverge. ``analysable``: the mean-field
    theory (:mod:`olfacto.model.theory`) has its fixed point.
    """

    name: str
    per_breath: Callable[[Any, str], Transform]
    advice: Callable[[Any], str]
    chunk: Callable[..., tuple[chunked.Chunk, Any]] | None = None
    extra_factors: int = 0
    factored_streams: bool = True
    paired: bool = False
    state_floats: Callable[[Any], int] = lambda cfg: 0
    analysable: bool = False

    def divergence_advice(self, cfg: Any) -> str:
        return _overflow(cfg) or self.advice(cfg)


RULES: dict[str, Rule] = {r.name: r for r in [
    Rule("hebbian", lambda p, opt: hebbian(p.lr, p.decay), _decay_advice,
         chunk=lambda pre, post, state, p, b, f: (chunked.hebbian_chunk(pre, post, p.lr, p.decay, b, f), state),
         paired=True, analysable=True),
    Rule("oja", lambda p, opt: oja(p.lr), _oja_advice,
         chunk=lambda pre, post, state, p, b, f: (chunked.oja_chunk(pre, post, p.lr, b, f), state),
         factored_streams=False),
    Rule("covariance", lambda p, opt: covariance(p.lr, p.decay, p.mean_rate), _decay_advice,
         chunk=lambda pre, post, state, p, b, f: chunked.covariance_chunk(pre, post, state, p.lr, p.decay,
                                                                         p.mean_rate, b, f),
         extra_factors=1),
    Rule("sgd", lambda p, opt: sgd(optimizer(opt, p.lr, p.momentum)), _sgd_advice,
         state_floats=lambda cfg: {"momentum": 1, "adam": 2}.get(cfg.learning.optimizer, 0), analysable=True),
]}
"""The learning rules by name. ``run``, ``sweep``, the memory check, the divergence message and the
figures all read this one registry."""


BUILTIN = tuple(RULES)


def _user_advice(cfg: Any) -> str:
    return f"learning.rule={cfg.learning.rule!r} is a registered rule: lower the rates inside its update"


def register(name: str, init: Callable[[jax.Array], Any], update: Callable[..., tuple[jax.Array, Any]],
             advice: Callable[[Any], str] | None = None, state_floats: int = 0) -> Rule:
    """Add a learning rule from Python, without editing this module; then ``learning.rule: NAME`` runs it.

    ``init(W) -> state`` and ``update(W, state, mask, y_pre, y_post) -> (ΔW, state)`` are the per-breath form
    every rule has (:class:`Transform`; W in slot form (N_post, K_max), ``y_pre`` (B, N_pre), ``y_post``
    (B, N_post), ``mask`` the :class:`olfacto.model.sparse.FanIn` — ``sparse.gather(mask, y_pre[b])`` gives
    each slot's presynaptic activity); ΔW is masked to the synapses that exist. Its constants are its own
    (close over them): ``learning.lr`` and the other ``learning`` keys do not enter it. It learns breath by
    breath (no chunked form), outside the mean-field theory, and lives in this Python process (a Dask or
    SLURM worker is another process: register it there too, or run in process). ``state_floats``: floats of
    rule state per synapse (for the memory estimate)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"rule name {name!r}: expected an identifier-like text (letters, digits, _)")
    if name in BUILTIN:
        raise ValueError(f"rule name {name!r}: a built-in rule has it; choose another")

    def per_breath(params: Any, optimizer_name: str) -> Transform:
        def masked_update(w, state, mask, y_pre, y_post):
            dw, state = update(w, state, mask, y_pre, y_post)
            return _masked(mask, dw), state

        return Transform(init, masked_update)

    r = Rule(name, per_breath, advice or _user_advice, state_floats=lambda cfg: state_floats)
    RULES[name] = r
    return r


def registered() -> tuple[str, ...]:
    """The rules added by :func:`register` in this process."""
    return tuple(n for n in RULES if n not in BUILTIN)


def rule(name: str) -> Rule:
    """The :class:`Rule` called ``name`` (a one-line error naming the allowed ones otherwise)."""
    if name not in RULES:
        raise ValueError(f"learning.rule={name!r}: allowed are {', '.join(map(repr, RULES))}")
    return RULES[name]
