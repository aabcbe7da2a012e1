"""Hopfield-style recurrence inside each cortex (MODEL.md §3; chapter 2, result 7).

Each cortex (side) has recurrent weights A_side on a fixed-fan-in mask C_rec without
self-connections (p_rec = ``recurrence.connection_prob``), learned online breath by breath
with the Hebbian rule on that cortex's own direct responses,

    ΔA = η_rec (C_rec ⊙ y yᵀ − λ_rec A),

alongside the inter-hemispheric weights (fixed point A* = C_rec ⊙ E[y yᵀ]/λ_rec). The
indirect response ŷ arriving in a cortex is refined by its recurrence,

    z₀ = ŷ,   z_{t+1} = φ(ŷ + α A z_t),   α = s / ρ(A),

with s = ``recurrence.strength`` ∈ [0, 1) and ρ(A) the spectral radius of the current A,
estimated by power iteration on the sparse matrix (cost ∝ synapses): the linear dynamics
contract for every s < 1 and z_T → z* = (I − αA)⁻¹ ŷ. The measures computed on z_T are
recorded under ``…_recurrent`` names (:mod:`olfacto.measures`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import sparse
from .circuit import SIDES

POWER_ITERATIONS = 120
"""Power-iteration steps for ρ(A). A learned Hebbian A ≈ C_rec ⊙ J Jᵀ/λ has a dominant real
eigenvalue well separated from the bulk (rank-M signal, masked), so the growth rate of ‖Aᵏv‖
settles within tens of steps; 120 steps with the rate averaged over the last half also
resolve a complex dominant pair (whose norm ratio oscillates) and cost ≈ 120 sparse
mat-vecs per record — less than one probe batch of the measures."""


def slots(n_cortex: int, connection_prob: float, kind: str) -> int:
    """Recurrent synapse slots per row (0 when recurrence is off)."""
    if connection_prob <= 0 or n_cortex < 2:
        return 0
    return sparse.slots(n_cortex, n_cortex - 1, connection_prob, kind)


def sample_mask(key: jax.Array, n: int, p: jax.Array, kind: str, k_max: int) -> sparse.FanIn:
    """C_rec: a random mask of ``kind`` over the N − 1 other neurons of each row (no self-connections).

    Partners are drawn among N − 1 indices and those ≥ i shifted by one, so every other neuron is
    equally likely and the drawn indices stay distinct and sorted."""
    m = sparse.sample_mask(key, n, n - 1, p, kind, k_max)
    rows = jnp.arange(n, dtype=m.idx.dtype)[:, None]
    return sparse.FanIn(idx=m.idx + (m.idx >= rows).astype(m.idx.dtype), valid=m.valid, n_pre=n)


def sample_masks(key: jax.Array, n: int, p: jax.Array, kind: str, k_max: int) -> dict[str, sparse.FanIn]:
    """One independent C_rec per cortex, by side."""
    keys = dict(zip(SIDES, jax.random.split(key)))
    return {s: sample_mask(keys[s], n, p, kind, k_max) for s in SIDES}


def spectral_radius(A: jax.Array, mask: sparse.FanIn, iterations: int = POWER_ITERATIONS) -> jax.Array:
    """ρ(A ⊙ C_rec) from the growth rate of ‖Aᵏ v‖ (power iteration on the sparse matrix).

    log ρ is the mean of log(‖A v_k‖/‖v_k‖) over the last half of the iterations, v normalised
    each step from a fixed pseudo-random start; 0 for A = 0."""
    n = mask.idx.shape[0]
    v0 = jax.random.normal(jax.random.key(0), (n,), A.dtype)
    v0 = v0 / jnp.linalg.norm(v0)

    def one(v, _):
        u = sparse.matvec(A, mask, v)
        norm = jnp.linalg.norm(u)
        return u / jnp.maximum(norm, 1e-30), jnp.log(jnp.maximum(norm, 1e-30))

    _, logs = jax.lax.scan(one, v0, None, length=iterations)
    rho = jnp.exp(jnp.mean(logs[iterations // 2:]))
    return jnp.where(rho > 1e-20, rho, 0.0)


def gain(A: jax.Array, mask: sparse.FanIn, strength: jax.Array) -> jax.Array:
    """α = s / ρ(A) (0 while A = 0, where the recurrence has nothing to add)."""
    rho = spectral_radius(A, mask)
    return jnp.where(rho > 0, strength / jnp.where(rho > 0, rho, 1.0), 0.0)


def init(masks: dict[str, sparse.FanIn]) -> dict[str, jax.Array]:
    """A = 0 in slot form, by side."""
    return {s: jnp.zeros(m.idx.shape, jnp.float32) for s, m in masks.items()}


def hebbian_step(A: jax.Array, mask: sparse.FanIn, y: jax.Array, lr: jax.Array, decay: jax.Array) -> jax.Array:
    """A + η_rec (mean over the mini-batch of y yᵀ − λ_rec A) on the mask; ``y`` (B, N)."""
    term = jnp.mean(y[:, :, None] * jnp.take(y, mask.idx, axis=1), axis=0) - decay * A
    return jnp.where(mask.valid, A + lr * term, 0.0)


def learn(A: dict[str, jax.Array], masks: dict[str, sparse.FanIn], y: dict[str, jax.Array], lr: jax.Array,
          decay: jax.Array) -> dict[str, jax.Array]:
    """One Hebbian update of each cortex's A from its own direct responses ``y[side]`` (B, N)."""
    return {s: hebbian_step(A[s], masks[s], y[s], lr, decay) for s in SIDES}
