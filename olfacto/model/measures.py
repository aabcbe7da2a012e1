"""Measurements on probe odors (MODEL.md §4) and the registry of recorded measures.

For probe odors x_1 … x_P presented to one nostril at a time (no noise), each
direction d (e.g. ``"L_to_R"``) has a :class:`View`: the receiving cortex's
direct response y_post = φ(J_R x), the sending cortex's y_pre = φ(J_L x), and
the indirect response ŷ = (W_d ⊙ C_d) y_pre (all from :mod:`olfacto.model.circuit`) — and,
with recurrence, its refinement z_T (:mod:`olfacto.model.recurrence`).

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

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
from flax import struct

from . import circuit, rules, sparse
from .precision import HIGHEST

_EPS = 1e-12


def _sum(a: jax.Array, axis: int, keepdims: bool = False) -> jax.Array:
    """Sum along ``axis``; over the rows of a matrix as a product with a vector of ones, because
    XLA:CPU reduces over a major axis ~50× slower than a matrix–vector product does
    (measured at (100, 100,000), docs/benchmarks.md)."""
    if a.ndim == 2 and axis in (0, -2):
        out = jnp.matmul(jnp.ones((a.shape[0],), a.dtype), a, precision=HIGHEST)
        return out[None] if keepdims else out
    return a.sum(axis=axis, keepdims=keepdims)


def _row_sums(*terms: jax.Array) -> tuple[jax.Array, ...]:
    """Σ over the last axis of each array of ``terms``, all in one pass (one variadic reduce).

    Written as separate sums, XLA:CPU first writes each operand that more than one sum shares (a centred
    copy, a product) to fresh memory, and a fresh (100, 10⁵) float32 array costs ~20 ms of page faults
    alone; the one pass fuses the elementwise work into the reduction (Pearson along neurons at P = 100,
    N = 10⁵: 14 ms against 52 ms; docs/benchmarks.md §14)."""
    zeros = tuple(jnp.zeros((), t.dtype) for t in terms)
    return tuple(jax.lax.reduce(terms, zeros, lambda a, b: tuple(u + v for u, v in zip(a, b)), (terms[0].ndim - 1,)))


def pearson(a: jax.Array, b: jax.Array, axis: int = -1) -> jax.Array:
    """Pearson correlation along ``axis``; NaN where either side has zero variance."""
    a = a - _sum(a, axis, keepdims=True) / a.shape[axis]
    b = b - _sum(b, axis, keepdims=True) / b.shape[axis]
    if axis % a.ndim == a.ndim - 1:  # along the minor axis (the neurons): the three sums in one pass
        num, aa, bb = _row_sums(a * b, a * a, b * b)
    else:  # along a major axis (the probes) a reduction is slow on XLA:CPU, a product with ones is not (_sum)
        num, aa, bb = _sum(a * b, axis), _sum(a * a, axis), _sum(b * b, axis)
    den = jnp.sqrt(aa * bb)
    return jnp.where(den > _EPS, num / jnp.where(den > _EPS, den, 1.0), jnp.nan)


def centring(y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Each column's mean over the probes ``y`` (P, N) and the norm of its centred values, floored at a tiny ε (a
    silent neuron's centred column is zero), both (1, N). Sums over the probes as products with ones
    (:func:`_sum`): on the transposed rows XLA:CPU reduced over the major axis, 250 ms per side at P = 100,
    N = 10⁵."""
    mean = _sum(y, 0, keepdims=True) / y.shape[0]
    c = y - mean
    return mean, jnp.maximum(jnp.sqrt(_sum(c * c, 0, keepdims=True)), _EPS)


def standardized_neurons(y: jax.Array) -> jax.Array:
    """Each neuron's responses to the probes ``y`` (P, N) centred and scaled to unit norm (:func:`centring`), as
    rows (N, P) (a silent neuron's row stays zero)."""
    mean, norm = centring(y)
    return ((y - mean) / norm).T


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
        y_hat = circuit.indirect(weights, mask, pre_y)
        h = jnp.where(mask.valid, rules.hebbian_term(weights, pre, post, decay), 0.0)
        s = jnp.where(mask.valid, rules.sgd_term(pre, post, y_hat), 0.0)
        return jnp.sum(h * s) / jnp.sqrt(jnp.sum(h * h) * jnp.sum(s * s) + _EPS)

    return jax.lax.map(cosine, (y_pre, y_post)).mean()


def presynaptic_sums(mask: sparse.FanIn, y_pre: jax.Array) -> jax.Array:
    """q[p, i] = Σ_{j∈C_i} y_pre[p, j]² for the probes (P, N_pre) → (P, N_post), used by
    :func:`update_alignment`. Fixed during a run unless the masks rewire (mask and probes are), so computed once;
    a rewiring run's records take it with ŷ (:func:`olfacto.model.sparse.project_squares`)."""
    return sparse.squares(mask, y_pre)


def update_alignment(weights: jax.Array, mask: sparse.FanIn, y_pre: jax.Array, y_post: jax.Array,
                     y_hat: jax.Array, decay: jax.Array, q: jax.Array | None = None) -> jax.Array:
    """Mean over probe breaths of cos(ΔW_hebb, ΔW_sgd), from row sums instead of N·K products.

    With r = y_post − ŷ, q_i = Σ_{j∈C_i} y_pre,j² and w2_i = Σ_j W_ij², the synapse sums are
    ⟨h, s⟩ = Σ_i r_i (y_post,i q_i − λ ŷ_i),  ‖s‖² = Σ_i r_i² q_i,
    ‖h‖² = Σ_i (y_post,i² q_i − 2λ y_post,i ŷ_i + λ² w2_i),
    so given ŷ (already needed for the alignment) one more sparse product (for q) suffices, and
    none when q (:func:`presynaptic_sums`, fixed for a run) is passed in.
    ``y_pre``, ``y_post``, ``y_hat``: (P, N).
    """
    q = presynaptic_sums(mask, y_pre) if q is None else q
    w2 = jnp.sum(jnp.where(mask.valid, weights**2, 0.0), axis=-1)
    r = y_post - y_hat
    dot, ss, hh = _row_sums(r * (y_post * q - decay * y_hat), r * r * q,
                            y_post**2 * q - 2 * decay * y_post * y_hat + decay**2 * w2)
    return jnp.mean(dot / jnp.sqrt(jnp.maximum(hh * ss, 0.0) + _EPS))


def decoding_transfer(direct: jax.Array, indirect: jax.Array) -> jax.Array:
    """Accuracy of decoding probe identity from indirect responses with direct-response templates.

    argmax_b corr(ŷ_a, y_b) = a? In the analysable case corr(ŷ_a, y_b) ≈ A cos(x_a, x_b) + O(√((1−A²)/N)),
    so the accuracy saturates at 1 once A (1 − max_b cos) exceeds the finite-N noise (A ≳ 0.1 for
    gaussian probes, M = 50, P = 100, N = 1,000): informative only for similar probes (measured odors,
    sparse odors, sparse codes). See docs/results.md, "Recorded variables".
    """
    # argmax_b corr(ŷ_a, y_b) = argmax_b ⟨ŷ_a − ŷ̄_a, y_b⟩ / ‖y_b − ȳ_b‖ (the norm of ŷ_a does not change the
    # argmax, and a centred ŷ_a sums to zero, so y_b need not be centred): one centred copy, not two
    # standardized ones (docs/benchmarks.md §14)
    n = direct.shape[-1]
    (hat_sum,) = _row_sums(indirect)
    dir_mean = _sum(direct, -1, keepdims=True) / n
    (dir_ss,) = _row_sums((direct - dir_mean) ** 2)
    centred = indirect - hat_sum[:, None] / n
    corr = jnp.matmul(centred, direct.T, precision=HIGHEST) / jnp.maximum(jnp.sqrt(dir_ss), _EPS)  # (test, template)
    guess = jnp.argmax(corr, axis=1)
    # argmax of NaN still picks a class, so the accuracy would read as finite (chance) for undefined responses:
    # NaN instead where an input is not finite (a NaN or ±inf anywhere reaches its row sums)
    ok = jnp.all(jnp.isfinite(hat_sum)) & jnp.all(jnp.isfinite(dir_ss))
    return jnp.where(ok, jnp.mean(guess == jnp.arange(direct.shape[0])), jnp.nan)


def laterality_decoding(direct: jax.Array, indirect: jax.Array, ridge: float = 1e-2) -> jax.Array:
    """Held-out accuracy of a ridge classifier of stimulus side (direct = +1, indirect = −1).

    Trained on the first half of the probes, tested on the second half; solved in
    the dual (P×P), so the cost is P²N, never N².
    """
    half = direct.shape[0] // 2
    x_train = jnp.concatenate([direct[:half], indirect[:half]])
    t_train = jnp.concatenate([jnp.ones(half), -jnp.ones(half)])
    t_test = jnp.concatenate([jnp.ones(direct.shape[0] - half), -jnp.ones(direct.shape[0] - half)])
    mu = _sum(x_train, 0) / x_train.shape[0]
    x_train = x_train - mu
    gram = jnp.matmul(x_train, x_train.T, precision=HIGHEST)
    reg = ridge * (jnp.trace(gram) / gram.shape[0] + _EPS)
    alpha = jnp.linalg.solve(gram + reg * jnp.eye(gram.shape[0]), t_train - t_train.mean())
    # the test rows centred only through μ·v, so no centred (or concatenated) copy of them is written
    v = jnp.matmul(alpha, x_train, precision=HIGHEST)  # Σ_i α_i (x_i − μ)
    score = (jnp.concatenate([jnp.matmul(direct[half:], v, precision=HIGHEST),
                              jnp.matmul(indirect[half:], v, precision=HIGHEST)])
             - jnp.dot(mu, v, precision=HIGHEST) + t_train.mean())
    (sum_direct, sum_indirect) = _row_sums(direct, indirect)
    ok = jnp.all(jnp.isfinite(sum_direct)) & jnp.all(jnp.isfinite(sum_indirect))  # as in decoding_transfer
    return jnp.where(ok, jnp.mean(jnp.sign(score) == t_test), jnp.nan)


def relative_error(direct: jax.Array, indirect: jax.Array) -> jax.Array:
    """(1/P) Σ_p ‖y − ŷ‖² / ‖y‖²."""
    err, norm = _row_sums((direct - indirect) ** 2, direct**2)
    return jnp.mean(err / (norm + _EPS))


def weight_rms(weights: jax.Array, mask: sparse.FanIn) -> jax.Array:
    """Root-mean-square weight over the existing synapses."""
    return jnp.sqrt(jnp.sum(jnp.where(mask.valid, weights**2, 0.0)) / jnp.maximum(mask.valid.sum(), 1))


# -- the registry of recorded measures ----------------------------------------------------


@struct.dataclass
class View:
    """One direction's responses to the probe odors, each (P, N), and its weights.

    ``y_pre``: the sending cortex's direct response; ``y_post``: the receiving cortex's direct
    response; ``y_hat``: the receiving cortex's indirect response (W ⊙ C) y_pre.
    """

    y_pre: jax.Array
    y_post: jax.Array
    y_hat: jax.Array
    weights: jax.Array
    mask: sparse.FanIn
    decay: jax.Array  # λ, for the Hebbian update in update_alignment
    q: jax.Array | None = None  # presynaptic_sums(mask, y_pre), when precomputed (fixed for a run)
    z_hat: jax.Array | None = None  # ŷ refined by the receiving cortex's recurrence, z_T (recurrence on)


@dataclass(frozen=True)
class Measure:
    """A recorded measure: computed per direction from a :class:`View`; recorded as the mean of the
    directions (``name``) and, with ``by_direction``, also per direction (``name_L_to_R``, …)."""

    name: str
    long_name: str
    fn: Callable[[View], jax.Array]
    by_direction: bool = False
    units: str = "1"
    needs: str | None = None  # the component whose stage it measures (e.g. "recurrence": on z_T); None: always
    label: str = ""  # the short name a plot's axis shows (attrs long_name); long_name is its description


MEASURES: dict[str, Measure] = {m.name: m for m in [
    Measure("alignment", "population alignment: mean over probes of corr_neurons(y, ŷ)",
            lambda v: alignment(v.y_post, v.y_hat), by_direction=True, label="alignment"),
    Measure("tuning_alignment", "mean over neurons of the direct–indirect tuning correlation across probes",
            lambda v: jnp.nanmean(tuning_correlation(v.y_post, v.y_hat)), label="tuning alignment"),
    Measure("update_alignment", "cosine between Hebbian and SGD updates on the same breath and weights",
            lambda v: update_alignment(v.weights, v.mask, v.y_pre, v.y_post, v.y_hat, v.decay, v.q),
            label="update alignment"),
    Measure("decoding_transfer", "odor identity decoded from indirect responses with direct templates",
            lambda v: decoding_transfer(v.y_post, v.y_hat), label="decoding transfer"),
    Measure("laterality_decoding", "held-out accuracy of decoding the stimulated nostril",
            lambda v: laterality_decoding(v.y_post, v.y_hat), label="laterality decoding"),
    Measure("relative_error", "‖y − ŷ‖² / ‖y‖² on the probes", lambda v: relative_error(v.y_post, v.y_hat),
            label="relative error"),
    Measure("weight_rms", "root-mean-square inter-hemispheric weight", lambda v: weight_rms(v.weights, v.mask),
            label="rms weight"),
    Measure("alignment_recurrent", "population alignment of the recurrently refined response: corr_neurons(y, z_T)",
            lambda v: alignment(v.y_post, v.z_hat), by_direction=True, needs="recurrence", label="alignment of z_T"),
    Measure("tuning_alignment_recurrent", "mean over neurons of the direct–refined (z_T) tuning correlation",
            lambda v: jnp.nanmean(tuning_correlation(v.y_post, v.z_hat)), needs="recurrence",
            label="tuning alignment of z_T"),
    Measure("decoding_transfer_recurrent", "odor identity decoded from refined responses z_T with direct templates",
            lambda v: decoding_transfer(v.y_post, v.z_hat), needs="recurrence",
            label="decoding transfer of z_T"),
]}
"""Every recorded measure, by name. Adding one here records it in ``run`` and ``sweep`` alike."""


def _direction_label(direction: str) -> str:
    return f"{circuit.pre(direction)} → {circuit.post(direction)}"


def _active(components: frozenset[str] | set[str]) -> list[Measure]:
    return [m for m in MEASURES.values() if m.needs is None or m.needs in components]


ALL_COMPONENTS = frozenset(m.needs for m in MEASURES.values() if m.needs)
"""Every component some measure needs: ``recorded(ALL_COMPONENTS)`` names every variable there can be."""


def recorded(components: frozenset[str] | set[str] = frozenset()) -> dict[str, str]:
    """Name → long name of every recorded variable (means of both directions, then per direction) when
    the network has the given active ``components`` (their names; e.g. ``{"recurrence"}`` adds the
    measures of the recurrently refined responses)."""
    out = {}
    for m in _active(components):
        out[m.name] = m.long_name + (", mean of both directions" if m.by_direction else "")
        if m.by_direction:
            for d in circuit.DIRECTIONS:
                out[f"{m.name}_{d}"] = f"{m.long_name}, direction {_direction_label(d)}"
    return out


def attrs(components: frozenset[str] | set[str] = frozenset()) -> dict[str, dict[str, str]]:
    """Name → attributes of every recorded variable of :func:`recorded`: a short ``long_name`` for a plot's
    axis (``alignment``, ``alignment, L → R``), the sentence of :func:`recorded` as ``description``, and
    ``units`` ("1": every measure is dimensionless)."""
    out = {}
    for m in _active(components):
        out[m.name] = {"long_name": m.label or m.name, "description": m.long_name + (
            ", mean of both directions" if m.by_direction else ""), "units": m.units}
        if m.by_direction:
            for d in circuit.DIRECTIONS:
                out[f"{m.name}_{d}"] = {"long_name": f"{m.label or m.name}, {_direction_label(d)}",
                                        "description": f"{m.long_name}, direction {_direction_label(d)}",
                                        "units": m.units}
    return out


def record(views: dict[str, View], components: frozenset[str] | set[str] = frozenset()) -> dict[str, jax.Array]:
    """Every recorded variable of :func:`recorded` from the per-direction views."""
    out = {}
    for m in _active(components):
        per = {d: m.fn(v) for d, v in views.items()}
        out[m.name] = sum(per.values()) / len(per)
        if m.by_direction:
            out.update({f"{m.name}_{d}": value for d, value in per.items()})
    return out
