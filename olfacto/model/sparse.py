"""The fixed-fan-in sparse matrix: inter-hemispheric synapses stored as indices + values.

A projection from a sending cortex (N_pre neurons) to a receiving cortex (N_post
neurons) with mask C ∈ {0,1}^{N_post×N_pre} is stored row by row (ELL format):

    idx[i, k]   ∈ [0, N_pre)   presynaptic partner of synapse k of neuron i
    valid[i, k] ∈ {0, 1}       whether that slot holds a synapse (C[i, idx[i,k]] = 1)
    W[i, k]                    its weight (kept at 0 where valid = 0)

with k < K_max slots per row. Every operation below reads each slot once, so
memory and time scale with N·K_max (the number of synapses), never with N².

``fixed_indegree``: every row has exactly K = round(pN) distinct partners
(K_max = K, valid ≡ 1). ``bernoulli``: C_ij ~ Bernoulli(p) independently, i.e. row i has
K_i ~ Binomial(N_pre, p) distinct uniformly chosen partners; K_max is the
Binomial quantile at which the chance that any row of the network overflows is
below 1e-6 (a static shape, the same for every seed, so seeds can be vmapped).
A row's synapses sit in its first K_i slots and do not depend on K_max
(:func:`sample_mask`): runs with different p share one program with the
slots of the largest.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from scipy import stats

from . import native
from .precision import HIGHEST

try:  # an experimental JAX API: without it matmat is only slower on XLA:CPU, its results the same
    from jax.experimental.layout import Layout as _Layout, with_layout_constraint as _with_layout_constraint
except ImportError:  # pragma: no cover
    _Layout = _with_layout_constraint = None


@struct.dataclass
class FanIn:
    """Mask of a sparse projection: ``idx`` (int32, N_post×K_max) and ``valid`` (bool)."""

    idx: jax.Array
    valid: jax.Array
    n_pre: int = struct.field(pytree_node=False)


def slots(n_post: int, n_pre: int, p: float, kind: str) -> int:
    """K_max, the static number of synapse slots per row for a mask of this kind."""
    if kind == "fixed_indegree":
        return fixed_degree(n_pre, p)
    if kind == "bernoulli":
        if p >= 1.0:
            return n_pre
        tail = 1e-6 / max(n_post, 1)
        return int(max(1, min(n_pre, stats.binom.isf(tail, n_pre, p) + 1)))
    raise ValueError(f"circuit.mask={kind!r}: allowed are 'bernoulli', 'fixed_indegree'")


def fixed_degree(n_pre: int, p: float) -> int:
    """K = round(p·N_pre) in [1, N_pre], computed in float32 as :func:`sample_mask` computes it from the
    traced p — so a mask drawn with more slots than K has exactly the same K synapses."""
    return int(np.clip(np.rint(np.float32(p) * np.float32(n_pre)), 1, n_pre))


def dense_draw(k_max: int, n_pre: int) -> bool:
    """Whether a mask with ``k_max`` slots over ``n_pre`` partners is drawn as a permutation (k_max > N_pre/2)
    rather than by redrawing repeats. Masks drawn the same way with different slot counts share their
    synapses (:func:`sample_mask`), so a batch may pad its runs to one slot count only within one way."""
    return 2 * k_max > n_pre


def row_keys(key: jax.Array, n_rows: int) -> jax.Array:
    """One key per row, ``fold_in(key, i)``: a row's draws do not depend on how many rows or slots there are."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n_rows))


def row_draws(key: jax.Array, n_rows: int, draw) -> jax.Array:
    """``draw(row key)`` stacked over the rows (:func:`row_keys`): row i's values are its own, whatever the
    number of slots the draw fills (a prefix of a longer draw is the shorter one)."""
    return jax.vmap(draw)(row_keys(key, n_rows))


def _first_repeats(v: jax.Array, n: int) -> jax.Array:
    """Per row, whether slot s repeats the value (in [0, n)) of some slot t < s: sorted by (value, slot), every
    entry equal in value to its predecessor is a later repeat."""
    rows, k = v.shape
    slot = jnp.broadcast_to(jnp.arange(k, dtype=jnp.int32), v.shape)
    if n * k < 1 << 31:  # (value, slot) packed in one int32: a plain sort, 6x faster than a stable argsort
        packed = jnp.sort(v * k + slot, axis=1)
        value, slot = packed // k, packed % k
    else:
        order = jnp.argsort(v, axis=1, stable=True)
        value, slot = jnp.take_along_axis(v, order, axis=1), order
    later = jnp.concatenate([jnp.zeros((rows, 1), bool), value[:, 1:] == value[:, :-1]], axis=1)
    return jnp.zeros(v.shape, bool).at[jnp.arange(rows)[:, None], slot].set(later)


def _distinct(key: jax.Array, n_rows: int, k: int, n: int) -> jax.Array:
    """``n_rows`` rows of ``k`` distinct integers in [0, n), prefix-stable: the first j slots of a row are the
    same whatever k ≥ j (so they are a row's synapses in a mask of any slot count).

    For k ≤ n/2 slot s of row i is drawn from ``fold_in(fold_in(key, i), r)`` in round r and redrawn in round
    r + 1 while it repeats an earlier slot of its row (expected k²/2n repeats per row, so a few rounds): slot
    s's value depends on the slots before it only. The process treats every value alike, so each row's
    first j slots are a uniformly random j-subset. Otherwise (the dense regime, where N·K ~ N² memory is
    inherent anyway) the row is the start of a random permutation of [0, n)."""
    rows = row_keys(key, n_rows)
    if dense_draw(k, n):
        perm = jnp.argsort(jax.vmap(lambda r: jax.random.uniform(r, (n,)))(rows), axis=1)
        return perm[:, :k].astype(jnp.int32)

    def draw(r):
        return jax.vmap(lambda row: jax.random.randint(jax.random.fold_in(row, r), (k,), 0, n, jnp.int32))(rows)

    def cond(carry):
        return carry[2].any()

    def body(carry):
        idx, r, repeats = carry
        idx = jnp.where(repeats, draw(r), idx)
        return idx, r + 1, _first_repeats(idx, n)

    idx = draw(0)
    idx, _, _ = jax.lax.while_loop(cond, body, (idx, 1, _first_repeats(idx, n)))
    return idx


def sample_mask(key: jax.Array, n_post: int, n_pre: int, p: float | jax.Array, kind: str, k_max: int) -> FanIn:
    """Draw a random mask C (``bernoulli`` or ``fixed_indegree``) in fixed-fan-in form.

    Row i holds its K_i synapses in its first K_i slots, sorted by partner (K_i = round(p·N_pre) for
    ``fixed_indegree``, K_i ~ Binomial(N_pre, p) capped at ``k_max`` for ``bernoulli``), its other slots
    invalid. The synapses do not depend on ``k_max`` (as long as it holds them and :func:`dense_draw`
    agrees), so a sweep over p runs every p with the largest p's slots in one compiled program and each
    point keeps the network ``olfacto run`` draws for it."""
    k_idx, k_deg, _ = jax.random.split(key, 3)
    idx = _distinct(k_idx, n_post, k_max, n_pre)
    if kind == "fixed_indegree":
        k = jnp.rint(jnp.asarray(p, jnp.float32) * jnp.float32(n_pre))
        degree = jnp.full((n_post,), jnp.clip(k, 1, n_pre), jnp.int32)
    else:
        degree = jax.random.binomial(k_deg, n_pre, p, shape=(n_post,))
    slot = jnp.arange(k_max, dtype=jnp.int32)[None, :]
    valid = slot < jnp.minimum(degree, k_max).astype(jnp.int32)[:, None]
    # sorted partners first (gathers walk memory in order), the unused slots after them
    idx = jnp.sort(jnp.where(valid, idx, idx + n_pre), axis=1)
    return FanIn(idx=jnp.where(idx >= n_pre, idx - n_pre, idx), valid=valid, n_pre=n_pre)


def gather(mask: FanIn, y_pre: jax.Array) -> jax.Array:
    """Presynaptic activity at each synapse: y_pre[idx], shape (N_post, K_max).

    Every index is in bounds (an empty slot's too, masked by ``valid``), so the gather skips the bounds
    mask ``jnp.take`` would apply to each value (a bare per-breath SGD step 1.3× faster, a whole per-breath
    SGD chunk 3–5 %; docs/benchmarks.md §17)."""
    return y_pre.at[mask.idx].get(mode="promise_in_bounds")


def matvec(weights: jax.Array, mask: FanIn, y_pre: jax.Array) -> jax.Array:
    """ŷ_i = Σ_k W[i,k] · y_pre[idx[i,k]]  (= (W ⊙ C) y_pre in dense form)."""
    # multiply-and-sum (not einsum): XLA fuses it with the gather instead of a batched dot
    return jnp.sum(weights * gather(mask, y_pre), axis=-1)


# Rough throughputs of the two ways to compute a sparse product (CPU: the 2-core EPYC of
# docs/benchmarks.md; GPU: not measured, order of magnitude). Only their ratio matters.
_MATMUL_FLOPS = {"cpu": 1.0e11, "gpu": 3.0e13}
_GATHER_ELEMS = {"cpu": 2.0e9, "gpu": 2.0e11}
# The compiled loop of olfacto.model.native (CPU only): 0.31–0.34 ns per element against XLA's 0.47–0.52 with
# the gathered operand in DRAM, 0.05 against 0.23 in the cache (docs/benchmarks.md §24).
_NUMBA_ELEMS = 3.0e9
_DENSE_MAX = 1 << 26  # floats of a dense N_post × N_pre matrix we are willing to build


def kernel_cost(kernel: str, n_post: int, n_pre: int, k: int, d: int, backend: str | None = None,
                shared: bool = False) -> float:
    """Estimated seconds of a sparse product with inner/batch size ``d``: through the dense
    N_post × N_pre matrix (``dense``, 2·N_post·N_pre·d flops; halved when ``shared`` by two
    products) or gathering d values per synapse (``gather``, N_post·K·d elements; ``numba``, the same elements by
    the compiled loop of :mod:`olfacto.model.native`, CPU only)."""
    b = "gpu" if (backend or jax.default_backend()) in ("gpu", "cuda", "rocm") else "cpu"
    if kernel == "dense":
        return 2.0 * n_post * n_pre * d / _MATMUL_FLOPS[b] / (2.0 if shared else 1.0)
    if kernel == "numba":
        return n_post * k * d / _NUMBA_ELEMS if b == "cpu" else float("inf")
    return n_post * k * d / _GATHER_ELEMS[b]


def _row_major(a: jax.Array) -> jax.Array:
    """``a`` laid out row-major (its last axis contiguous) in the compiled program."""
    if _with_layout_constraint is None:
        return a
    return _with_layout_constraint(a, _Layout(tuple(range(a.ndim))))


# The two kernels of :func:`matmat` on XLA:CPU, measured (docs/benchmarks.md §19; N = 500 … 10⁵, K = 50 … 300,
# d = 20 … 100): ``gather`` costs ≈ 5 ns per gathered row plus 0.03 ns per float while the gathered (N_pre, d)
# operand fits in the cache (≤ 16 MB) and 0.18 ns beyond; ``dense`` writes the N_post × N_pre matrix (0.2 ns per
# entry up to 16 MB, 1.3 ns beyond, where fresh pages fault) and multiplies at ≈ 2.2·10¹¹ flop/s.
_CPU_ROW_S = 5e-9
_CPU_FLOAT_S = {True: 3e-11, False: 1.8e-10}  # by whether the gathered operand fits the cache
_CPU_ENTRY_S = {True: 2e-10, False: 1.3e-9}  # by whether the dense matrix fits the cache
_CPU_MATMAT_FLOPS = 2.2e11
_CPU_CACHE = 16 << 20


def matmat_cost(kernel: str, n_post: int, n_pre: int, k: int, d: int, backend: str | None = None) -> float:
    """Estimated seconds of :func:`matmat` with ``d`` presynaptic vectors: on CPU the measured model above, elsewhere
    :func:`kernel_cost`."""
    if (backend or jax.default_backend()) != "cpu":
        return kernel_cost(kernel, n_post, n_pre, k, d, backend)
    if kernel == "dense":
        return n_post * n_pre * _CPU_ENTRY_S[4 * n_post * n_pre <= _CPU_CACHE] + 2.0 * n_post * n_pre * d / _CPU_MATMAT_FLOPS
    return n_post * k * (_CPU_ROW_S + d * _CPU_FLOAT_S[4 * n_pre * d <= _CPU_CACHE])


def matmat_kernel(mask: FanIn, d: int) -> str:
    """The kernel :func:`matmat` picks for ``d`` presynaptic vectors: ``dense`` where the N_post × N_pre matrix
    is affordable (``_DENSE_MAX``) and :func:`matmat_cost` says it is cheaper, else ``gather``."""
    n_post, k = mask.idx.shape
    dense_ok = n_post * mask.n_pre <= _DENSE_MAX
    cost = {kern: matmat_cost(kern, n_post, mask.n_pre, k, d) for kern in ("dense", "gather")}
    return "dense" if dense_ok and cost["dense"] < cost["gather"] else "gather"


def matmat(weights: jax.Array, mask: FanIn, y_pre: jax.Array, kernel: str = "auto") -> jax.Array:
    """Row-wise :func:`matvec` for a batch of presynaptic vectors ``y_pre`` (P, N_pre) → (P, N_post).

    ``gather``: slot by slot, ŷᵀ += W[:, k] ⊙ y_preᵀ[idx[:, k]] for k = 1 … K_max — each step gathers one
    whole row of y_preᵀ (P contiguous values) per postsynaptic neuron and adds it, scaled, into the
    (N_post, P) accumulator, so no (rows, K, P) block is ever built. Measured 1.9–6× faster than the
    row blocks it replaced (one direction, N = 10³ … 10⁵, P = 20 … 100, vmapped batches of 1 … 8), with
    the same sums in the same order (bit for bit; docs/benchmarks.md §13). ``dense``: y_pre (W ⊙ C)ᵀ through
    the dense matrix, a matmul. ``auto`` picks by :func:`matmat_cost`.
    """
    n_post, k = mask.idx.shape
    if kernel == "auto":
        kernel = matmat_kernel(mask, y_pre.shape[0])
    if kernel == "dense":
        return jnp.matmul(y_pre, to_dense(weights, mask).T, precision=HIGHEST)
    y_t = y_pre.T

    def slot(acc, column):
        w_k, idx_k = column
        return acc + w_k[:, None] * y_t.at[idx_k].get(mode="promise_in_bounds"), None

    acc = jnp.zeros((n_post, y_pre.shape[0]), jnp.result_type(weights, y_pre))
    out, _ = jax.lax.scan(slot, acc, (weights.T, mask.idx.T))
    # written out row-major (P, N): otherwise XLA sinks the transpose into every consumer, and each of the
    # measures' sums over neurons becomes a reduction over the major axis, slow on XLA:CPU (one relu record
    # at N = 10⁵, 100 probes: 1.33 → 0.89 s; docs/benchmarks.md §14)
    return _row_major(out.T)


def outer(y_post: jax.Array, pre: jax.Array) -> jax.Array:
    """(y_post y_preᵀ) ⊙ C in slot form: y_post[i] · y_pre[idx[i,k]], given ``pre = gather(mask, y_pre)``."""
    return y_post[:, None] * pre


def to_dense(weights: jax.Array, mask: FanIn) -> jax.Array:
    """The N_post × N_pre matrix W ⊙ C: O(N²) memory, so only where that is affordable — tests, small-scale
    analysis, and :func:`matmat`'s ``dense`` kernel (chosen only below ``_DENSE_MAX`` floats)."""
    n_post = mask.idx.shape[0]
    rows = jnp.broadcast_to(jnp.arange(n_post)[:, None], mask.idx.shape)
    dense = jnp.zeros((n_post, mask.n_pre), weights.dtype)
    return dense.at[rows, mask.idx].add(jnp.where(mask.valid, weights, 0))


def dense_mask(mask: FanIn) -> jax.Array:
    """The 0/1 mask C as a dense N_post × N_pre array (tests only)."""
    return to_dense(jnp.ones(mask.idx.shape, jnp.float32), mask)


def n_synapses(mask: FanIn) -> int:
    return int(mask.valid.sum())


def project(weights: jax.Array, mask: FanIn, v: jax.Array, loop: bool = False) -> jax.Array:
    """(W ⊙ C) v for v (N_pre × d) → (N_post × d): :func:`matmat` transposed, or with ``loop`` (a CPU, a network
    not sharded), where matmat would gather, the compiled loop :func:`olfacto.model.native.spmm` — the same sums
    in the same order, equal within float32 round-off (docs/benchmarks.md §26: 1.7× at d = 100, 5× at d = 20)."""
    if by_loop(mask, v.shape[1], loop):
        return native.spmm(weights, mask.idx, v)
    return matmat(weights, mask, v.T).T


def by_loop(mask: FanIn, d: int, loop: bool) -> bool:
    """Whether a sparse product with ``d`` columns takes the compiled loop: ``loop`` (a CPU, a network not sharded)
    and :func:`matmat` would gather (where it multiplies a small dense matrix, that is faster)."""
    return loop and matmat_kernel(mask, d) == "gather"


def project_squares(weights: jax.Array, mask: FanIn, y_pre: jax.Array, loop: bool = False) -> tuple[jax.Array, jax.Array]:
    """ŷ = (W ⊙ C) y_pre and q = C y_pre² (``q[p, i] = Σ_{j∈C_i} y_pre[p, j]²``) for a batch ``y_pre`` (P, N_pre),
    both (P, N_post) row-major — what the records of a run whose masks rewire need of every mask. With ``loop``
    (a CPU, a network not sharded), where :func:`matmat` would gather, both from one pass over the synapses by
    the compiled loop (:func:`olfacto.model.native.spmm` with the mask), each gathered row of y_preᵀ read once
    (N = 10⁵, K = 50, 100 probes: 118 ms per direction against 175 + 180 ms as two of XLA's products,
    docs/benchmarks.md §28); else :func:`matmat` twice. The same sums in the same order either way: equal within
    float32 round-off."""
    if by_loop(mask, y_pre.shape[0], loop):
        y_hat, q = native.spmm(weights, mask.idx, y_pre.T, mask.valid)
        return _row_major(y_hat.T), _row_major(q.T)
    return matmat(weights, mask, y_pre), squares(mask, y_pre)


def squares(mask: FanIn, y_pre: jax.Array) -> jax.Array:
    """q = C y_pre² for a batch ``y_pre`` (P, N_pre) → (P, N_post): :func:`matmat` with the mask as weights."""
    return matmat(mask.valid.astype(y_pre.dtype), mask, y_pre**2)
