"""Measurements on probe odors (MODEL.md §4).

For probe odors x_1 … x_P presented to one nostril at a time (no noise):
y_R(x) = φ(J_R x) is the right cortex's direct response and
ŷ_{R←L}(x) = W_{R←L} φ(J_L x) its indirect response (symmetrically for L←R).

- alignment:          (1/P) Σ_p corr_neurons(y(x_p), ŷ(x_p))
- tuning correlation: per neuron i, corr_probes(y_i(·), ŷ_i(·)); tuning alignment is its mean
- update alignment:   (1/P) Σ_p cos(ΔW_hebb, ΔW_sgd) over the synapses, both computed on the
                      bilateral breath x_p from the same W:
                      ΔW_hebb = (y_post y_preᵀ − λW) ⊙ C, ΔW_sgd = (y_post − W y_pre) y_preᵀ ⊙ C
- decoding transfer:  fraction of probes whose indirect response is most correlated with the
                      direct response to the same odor (a template decoder trained on direct
                      responses, tested on indirect ones; chance 1/P)
- laterality decoding: accuracy of a ridge classifier, trained on half the probes, telling a
                      cortex's direct responses from its indirect ones (which nostril; chance 0.5)
- relative error:     (1/P) Σ_p ‖y − ŷ‖² / ‖y‖²
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import rules, sparse

_EPS = 1e-12


def pearson(a: jax.Array, b: jax.Array, axis: int = -1) -> jax.Array:
    """Pearson correlation along ``axis``; NaN where either side has zero variance."""
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    num = (a * b).sum(axis=axis)
    den = jnp.sqrt((a * a).sum(axis=axis) * (b * b).sum(axis=axis))
    return jnp.where(den > _EPS, num / jnp.where(den > _EPS, den, 1.0), jnp.nan)


def _standardize(a: jax.Array) -> jax.Array:
    """Rows centred and scaled to unit norm (zero rows stay zero)."""
    a = a - a.mean(axis=-1, keepdims=True)
    return a / jnp.maximum(jnp.linalg.norm(a, axis=-1, keepdims=True), _EPS)


def alignment(direct: jax.Array, indirect: jax.Array) -> jax.Array:
    """Mean over probes of the across-neuron correlation; (P, N) inputs. Silent probes are skipped."""
    return jnp.nanmean(pearson(direct, indirect, axis=-1))


def tuning_correlation(direct: jax.Array, indirect: jax.Array) -> jax.Array:
    """Per-neuron across-probe correlation, (N,); NaN for neurons silent on all probes."""
    return pearson(direct, indirect, axis=0)


def update_alignment_slots(weights: jax.Array, mask: sparse.FanIn, y_pre: jax.Array, y_post: jax.Array,
                           decay: jax.Array) -> jax.Array:
    """Mean over probe breaths of cos(ΔW_hebb, ΔW_sgd), computed synapse by synapse (reference path)."""
    def cosine(breath):
        pre_y, post = breath
        pre = sparse.gather(mask, pre_y)
        h = jnp.where(mask.valid, rules.hebbian_term(weights, pre, post, decay), 0.0)
        s = jnp.where(mask.valid, rules.sgd_term(weights, pre, post), 0.0)
        return jnp.sum(h * s) / jnp.sqrt(jnp.sum(h * h) * jnp.sum(s * s) + _EPS)

    return jax.lax.map(cosine, (y_pre, y_post)).mean()


def update_alignment(weights: jax.Array, mask: sparse.FanIn, y_pre: jax.Array, y_post: jax.Array,
                     y_hat: jax.Array, decay: jax.Array) -> jax.Array:
    """Mean over probe breaths of cos(ΔW_hebb, ΔW_sgd), from row sums instead of N·K products.

    With r = y_post − ŷ, q_i = Σ_{j∈C_i} y_pre,j² and w2_i = Σ_j W_ij², the synapse sums are
    ⟨h, s⟩ = Σ_i r_i (y_post,i q_i − λ ŷ_i),  ‖s‖² = Σ_i r_i² q_i,
    ‖h‖² = Σ_i (y_post,i² q_i − 2λ y_post,i ŷ_i + λ² w2_i),
    so given ŷ (already needed for the alignment) one more sparse product (for q) suffices.
    ``y_pre``, ``y_post``, ``y_hat``: (P, N).
    """
    q = sparse.matmat(mask.valid.astype(y_pre.dtype), mask, y_pre**2)
    w2 = jnp.sum(jnp.where(mask.valid, weights**2, 0.0), axis=-1)
    r = y_post - y_hat
    dot = jnp.sum(r * (y_post * q - decay * y_hat), axis=-1)
    ss = jnp.sum(r * r * q, axis=-1)
    hh = jnp.sum(y_post**2 * q - 2 * decay * y_post * y_hat + decay**2 * w2, axis=-1)
    return jnp.mean(dot / jnp.sqrt(jnp.maximum(hh * ss, 0.0) + _EPS))


def decoding_transfer(direct: jax.Array, indirect: jax.Array) -> jax.Array:
    """Accuracy of decoding probe identity from indirect responses with direct-response templates."""
    corr = _standardize(indirect) @ _standardize(direct).T  # (test, template), P×P
    guess = jnp.argmax(corr, axis=1)
    return jnp.mean(guess == jnp.arange(direct.shape[0]))


def laterality_decoding(direct: jax.Array, indirect: jax.Array, ridge: float = 1e-2) -> jax.Array:
    """Held-out accuracy of a ridge classifier of stimulus side (direct = +1, indirect = −1).

    Trained on the first half of the probes, tested on the second half; solved in
    the dual (P×P), so the cost is P²N, never N².
    """
    half = direct.shape[0] // 2
    x_train = jnp.concatenate([direct[:half], indirect[:half]])
    x_test = jnp.concatenate([direct[half:], indirect[half:]])
    t_train = jnp.concatenate([jnp.ones(half), -jnp.ones(half)])
    t_test = jnp.concatenate([jnp.ones(direct.shape[0] - half), -jnp.ones(direct.shape[0] - half)])
    mu = x_train.mean(axis=0)
    x_train, x_test = x_train - mu, x_test - mu
    gram = x_train @ x_train.T
    reg = ridge * (jnp.trace(gram) / gram.shape[0] + _EPS)
    alpha = jnp.linalg.solve(gram + reg * jnp.eye(gram.shape[0]), t_train - t_train.mean())
    score = x_test @ (x_train.T @ alpha) + t_train.mean()
    return jnp.mean(jnp.sign(score) == t_test)


def relative_error(direct: jax.Array, indirect: jax.Array) -> jax.Array:
    """(1/P) Σ_p ‖y − ŷ‖² / ‖y‖²."""
    err = jnp.sum((direct - indirect) ** 2, axis=-1)
    return jnp.mean(err / (jnp.sum(direct**2, axis=-1) + _EPS))


def weight_rms(weights: jax.Array, mask: sparse.FanIn) -> jax.Array:
    """Root-mean-square weight over the existing synapses."""
    return jnp.sqrt(jnp.sum(jnp.where(mask.valid, weights**2, 0.0)) / jnp.maximum(mask.valid.sum(), 1))
