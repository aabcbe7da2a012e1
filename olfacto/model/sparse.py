"""The fixed-fan-in sparse matrix: inter-hemispheric synapses stored as indices + values.

A projection from a sending cortex (N_pre neurons) to a receiving cortex (N_post
neurons) with mask C ∈ {0,1}^{N_post×N_pre} is stored row by row (ELL format):

    idx[i, k]   ∈ [0, N_pre)   presynaptic partner of synapse k of neuron i
    valid[i, k] ∈ {0, 1}       whether that slot holds a synapse (C[i, idx[i,k]] = 1)
    W[i, k]                    its weight (kept at 0 where valid = 0)

with k < K_max slots per row. Every operation below reads each slot once, so
memory and time scale with N·K_max (the number of synapses), never with N².

``fixed_indegree``: every row has exactly K = round(pN) distinct partners
(valid ≡ 1). ``bernoulli``: C_ij ~ Bernoulli(p) independently, i.e. row i has
K_i ~ Binomial(N_pre, p) distinct uniformly chosen partners; K_max is the
Binomial quantile at which the chance that any row of the network overflows is
below 1e-6 (a static shape, the same for every seed, so seeds can be vmapped).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from scipy import stats

# Elements gathered at once by the batched products (memory of one block ∝ this).
GATHER_BUDGET = 1 << 18  # measured 2-5x faster than 2^24 (blocks near the cache), docs/benchmarks.md


@struct.dataclass
class FanIn:
    """Mask of a sparse projection: ``idx`` (int32, N_post×K_max) and ``valid`` (bool)."""

    idx: jax.Array
    valid: jax.Array
    n_pre: int = struct.field(pytree_node=False)


def slots(n_post: int, n_pre: int, p: float, kind: str) -> int:
    """K_max, the static number of synapse slots per row for a mask of this kind."""
    if kind == "fixed_indegree":
        return max(1, min(n_pre, round(p * n_pre)))
    if kind == "bernoulli":
        if p >= 1.0:
            return n_pre
        tail = 1e-6 / max(n_post, 1)
        return int(max(1, min(n_pre, stats.binom.isf(tail, n_pre, p) + 1)))
    raise ValueError(f"circuit.mask={kind!r}: allowed are 'bernoulli', 'fixed_indegree'")


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


def sample_mask(key: jax.Array, n_post: int, n_pre: int, p: float | jax.Array, kind: str, k_max: int) -> FanIn:
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
    return FanIn(idx=idx, valid=valid, n_pre=n_pre)


def gather(mask: FanIn, y_pre: jax.Array) -> jax.Array:
    """Presynaptic activity at each synapse: y_pre[idx], shape (N_post, K_max)."""
    return jnp.take(y_pre, mask.idx, axis=0)


def matvec(weights: jax.Array, mask: FanIn, y_pre: jax.Array) -> jax.Array:
    """ŷ_i = Σ_k W[i,k] · y_pre[idx[i,k]]  (= (W ⊙ C) y_pre in dense form)."""
    # multiply-and-sum (not einsum): XLA fuses it with the gather instead of a batched dot
    return jnp.sum(weights * gather(mask, y_pre), axis=-1)


# Rough throughputs of the two ways to compute a sparse product (CPU: the 2-core EPYC of
# docs/benchmarks.md; GPU: not measured, order of magnitude). Only their ratio matters.
_MATMUL_FLOPS = {"cpu": 1.0e11, "gpu": 3.0e13}
_GATHER_ELEMS = {"cpu": 2.0e9, "gpu": 2.0e11}
_DENSE_MAX = 1 << 26  # floats of a dense N_post × N_pre matrix we are willing to build


def kernel_cost(kernel: str, n_post: int, n_pre: int, k: int, d: int, backend: str | None = None,
                shared: bool = False) -> float:
    """Estimated seconds of a sparse product with inner/batch size ``d``: through the dense
    N_post × N_pre matrix (``dense``, 2·N_post·N_pre·d flops; halved when ``shared`` by two
    products) or gathering d values per synapse (``gather``, N_post·K·d elements)."""
    b = "gpu" if (backend or jax.default_backend()) in ("gpu", "cuda", "rocm") else "cpu"
    if kernel == "dense":
        return 2.0 * n_post * n_pre * d / _MATMUL_FLOPS[b] / (2.0 if shared else 1.0)
    return n_post * k * d / _GATHER_ELEMS[b]


def matmat(weights: jax.Array, mask: FanIn, y_pre: jax.Array, budget: int = GATHER_BUDGET,
           kernel: str = "auto") -> jax.Array:
    """Row-wise :func:`matvec` for a batch of presynaptic vectors ``y_pre`` (P, N_pre) → (P, N_post).

    ``gather``: works on blocks of postsynaptic rows and gathers whole rows of y_preᵀ (P
    contiguous values per synapse), keeping each block's gather under a fixed memory
    budget (``budget`` floats); measured 3.4–3.9× faster than one probe at a time when
    runs are vmapped. ``dense``: y_pre (W ⊙ C)ᵀ through the dense matrix, a matmul
    (measured 1.6–2× faster at N = 1,000–2,000, p = 0.05–0.1; 12× slower at N = 10,000,
    p = 0.01). ``auto`` picks by :func:`kernel_cost`.
    """
    n_post, k = mask.idx.shape
    if kernel == "auto":
        dense_ok = n_post * mask.n_pre <= _DENSE_MAX
        cost = {kern: kernel_cost(kern, n_post, mask.n_pre, k, y_pre.shape[0]) for kern in ("dense", "gather")}
        kernel = "dense" if dense_ok and cost["dense"] < cost["gather"] else "gather"
    if kernel == "dense":
        return jnp.matmul(y_pre, to_dense(weights, mask).T, precision=jax.lax.Precision.HIGHEST)
    p = y_pre.shape[0]
    rows = max(1, min(n_post, budget // max(1, k * p)))
    n_blocks = -(-n_post // rows)
    pad = n_blocks * rows - n_post
    idx = jnp.pad(mask.idx, ((0, pad), (0, 0))).reshape(n_blocks, rows, k)
    w = jnp.pad(weights, ((0, pad), (0, 0))).reshape(n_blocks, rows, k)
    y_t = y_pre.T

    def block(args):
        w_b, idx_b = args
        return jnp.einsum("rk,rkp->rp", w_b, y_t.at[idx_b].get(mode="promise_in_bounds"))

    out = jax.lax.map(block, (w, idx))
    return out.reshape(n_blocks * rows, p)[:n_post].T


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

