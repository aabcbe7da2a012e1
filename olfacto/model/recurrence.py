"""Hopfield-style recurrence inside each cortex (MODEL.md §3; chapter 2, result 7).

Each cortex (side) has recurrent weights A_side on a fixed-fan-in mask C_rec without
self-connections (p_rec = ``recurrence.connection_prob``), learned online breath by breath
with the Hebbian rule on that cortex's own direct responses,

    ΔA = η_rec (C_rec ⊙ y yᵀ − λ_rec A),

alongside the inter-hemispheric weights (fixed point A* = C_rec ⊙ E[y yᵀ]/λ_rec). The direct
responses do not depend on A, so a chunk of breaths is one exact Hebbian chunk
(:mod:`.chunked`: A_T = aⁿ A_0 + Σ_s c_s (y_s y_sᵀ) ⊙ C_rec, factored through J for a linear
cortex), chosen as the projection's path is (``run.plasticity``; ``per_breath`` keeps the
breath-by-breath update). The
indirect response ŷ arriving in a cortex is refined by its recurrence,

    z₀ = ŷ,   z_{t+1} = φ(ŷ + α A z_t),   α = s / ρ(A),

with s = ``recurrence.strength`` ∈ [0, 1) and ρ(A) the spectral radius of the current A,
estimated by power iteration on the sparse matrix (cost ∝ synapses): the linear dynamics
contract for every s < 1 and z_T → z* = (I − αA)⁻¹ ŷ. The measures computed on z_T are
recorded under ``…_recurrent`` names (:mod:`olfacto.model.measures`).

A component of the network (:mod:`.component`): its anatomy is C_rec by side, its learned part
A by side (slot form), its stage of the indirect response z_T. Random stream: the masks take
``fold_in(run key, 7)``, so a run without recurrence draws everything else as before.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from typing import Any

from flax import struct

from . import chunked, circuit, rules, sparse
from .circuit import DIRECTIONS, SIDES, post

NAME = "recurrence"
STREAM = 7  # folded into the run key for the recurrent masks

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


def hebbian_step(A: jax.Array, mask: sparse.FanIn, y: jax.Array, lr: jax.Array, decay: jax.Array) -> jax.Array:
    """A + η_rec (mean over the mini-batch of y yᵀ − λ_rec A) on the mask; ``y`` (B, N)."""
    term = jnp.mean(y[:, :, None] * jnp.take(y, mask.idx, axis=1), axis=0) - decay * A
    return jnp.where(mask.valid, A + lr * term, 0.0)


def refine(y_hat: jax.Array, A: jax.Array, mask: sparse.FanIn, alpha: jax.Array, steps: int, kind: str,
           active_fraction: jax.Array) -> jax.Array:
    """The recurrent refinement of an indirect response inside the receiving cortex (MODEL.md §3):
    z₀ = ŷ, z_{t+1} = φ(ŷ + α (A ⊙ C_rec) z_t) for ``steps`` steps; ``y_hat`` (P, N) → z_T (P, N).
    For linear φ and α ρ(A) < 1 it converges to the fixed point z* = (I − αA)⁻¹ ŷ."""
    def one(_, z):
        return circuit.activate(y_hat + alpha * sparse.matmat(A, mask, z), kind, active_fraction)

    return jax.lax.fori_loop(0, steps, one, y_hat)


def chunk_plan(spec: Any, n_steps: int) -> chunked.Plan:
    """How A learns a chunk of ``n_steps`` updates: the Hebbian rule's plan (:func:`olfacto.model.chunked.plan`) for
    ``run.plasticity`` on C_rec's slots, whatever rule the projection has."""
    c = spec.circuit
    return chunked.plan(spec.run.plasticity, rules.rule("hebbian"), c.activation, c.n_cortex, spec.recurrence.slots,
                        c.n_glomeruli, n_steps, spec.learning.batch, sharded=c.shard)


def learn_chunked(how: chunked.Plan, world: Any, params: Any, A: dict[str, jax.Array],
                  masks: dict[str, sparse.FanIn], x: dict[str, jax.Array], batch: int) -> dict[str, jax.Array]:
    """A of both sides after the breaths ``x[side]`` ((n_steps·B, M) nostril inputs), in sub-chunks of the plan, each
    one exact Hebbian chunk of the cortex's own stream (pre = post = y): A_T = aⁿ A_0 + Σ_s c_s (y_s y_sᵀ) ⊙ C_rec."""
    p = params.recurrence

    def sub_chunk(a, xs):
        streams = chunked.streams_of(world.circuit, xs, params.circuit.active_fraction, how.factored)
        return {s: chunked.apply(chunked.hebbian_chunk(streams[s], streams[s], p.lr, p.decay, batch, how.factored),
                                 a[s], masks[s], how.kernel) for s in SIDES}

    return chunked.scan_blocks(sub_chunk, A, x, how.sub_steps * batch)


@struct.dataclass
class Anatomy:
    """C_rec by side."""

    masks: dict[str, sparse.FanIn]


class Recurrence:
    """The recurrent weights A_L, A_R inside each cortex and their Hebbian rule."""

    name = NAME
    stage = "z_hat"
    activated = True  # z_T = φ(…)

    def static(self, cfg: Any) -> dict[str, Any]:
        r = cfg.recurrence
        return {"recurrence.slots": slots(cfg.circuit.n_cortex, r.connection_prob, r.mask)}  # 0: off

    def padding(self, cfg: Any) -> dict[str, int]:
        """C_rec may be padded when recurrence is on (off — 0 slots — compiles another program)."""
        on = slots(cfg.circuit.n_cortex, cfg.recurrence.connection_prob, cfg.recurrence.mask) > 0
        return {"recurrence.slots": cfg.circuit.n_cortex - 1} if on else {}

    def active(self, spec: Any) -> bool:
        return spec.recurrence.slots > 0

    def init(self, spec: Any, key: jax.Array, params: Any, circ: circuit.Circuit) -> tuple[Anatomy, dict]:
        masks = sample_masks(jax.random.fold_in(key, STREAM), spec.circuit.n_cortex,
                             params.recurrence.connection_prob, spec.recurrence.mask, spec.recurrence.slots)
        return Anatomy(masks), {s: jnp.zeros(m.idx.shape, jnp.float32) for s, m in masks.items()}

    def learn(self, spec: Any, world: Any, params: Any, state: Any, x: dict[str, jax.Array], n_steps: int) -> dict:
        """``n_steps`` Hebbian updates of each cortex's A from its own direct responses: one exact chunked update
        per sub-chunk (:func:`learn_chunked`), or breath by breath (``run.plasticity=per_breath``, short chunks)."""
        b, masks, p = spec.learning.batch, world.anatomy[NAME].masks, params.recurrence
        how = chunk_plan(spec, n_steps)
        if how.path == "chunked":
            return learn_chunked(how, world, params, state.parts[NAME], masks, x, b)

        def one(A, y):
            return {s: hebbian_step(A[s], masks[s], y[s], p.lr, p.decay) for s in SIDES}, None

        return circuit.scan_responses(world.circuit, x, params.circuit.active_fraction, n_steps, b, one,
                                      state.parts[NAME])

    def plan(self, spec: Any, n_steps: int) -> str:
        return chunk_plan(spec, n_steps).describe()

    def refine_in(self, spec: Any, world: Any, params: Any, state: Any, side: str, y_hat: jax.Array) -> jax.Array:
        """Indirect responses ``y_hat`` (P, N) arriving in cortex ``side``, refined by its recurrence: z_T."""
        A, mask = state.parts[NAME][side], world.anatomy[NAME].masks[side]
        alpha = gain(A, mask, params.recurrence.strength)
        return refine(y_hat, A, mask, alpha, spec.recurrence.steps, world.circuit.activation,
                      params.circuit.active_fraction)

    def respond(self, spec: Any, world: Any, params: Any, state: Any, upstream: dict[str, jax.Array],
                y: dict[str, jax.Array], directions: tuple[str, ...] = DIRECTIONS,
                x: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        return {d: self.refine_in(spec, world, params, state, post(d), upstream[d]) for d in directions}

    def finite(self, part: dict) -> jax.Array:
        return jnp.stack([jnp.isfinite(jnp.sum(a * a)) for a in part.values()]).all()

    def bytes(self, cfg: Any) -> int:
        """A_L, A_R in slot form (idx, valid, A, three step temporaries), z_t of the probes and a chunked update's
        streams and dense product (:func:`olfacto.model.chunked.work_bytes`)."""
        from ..config.tree import nest, static_values

        n, p_probe = cfg.circuit.n_cortex, cfg.run.n_probe
        k = slots(n, cfg.recurrence.connection_prob, cfg.recurrence.mask)
        if not k:
            return 0
        spec = nest({**static_values(cfg), **self.static(cfg)})
        n_steps = cfg.run.record_every // cfg.learning.batch
        work = chunked.work_bytes(chunk_plan(spec, n_steps), rules.rule("hebbian"), n, cfg.learning.batch, n_steps)
        return 2 * n * k * (4 + 1 + 4 + 3 * 4) + 4 * 4 * p_probe * n + work

    def advice(self, cfg: Any) -> str:
        """The recurrent Hebbian rule A ← (1 − η_rec λ_rec) A + η_rec y yᵀ is stable for η_rec λ_rec < 2."""
        r, lrn = cfg.recurrence, cfg.learning
        lr = r.lr if r.lr is not None else lrn.lr
        decay = r.decay if r.decay is not None else lrn.decay
        step = lr * decay
        if step >= 2:
            return (f"recurrence.lr·recurrence.decay = {step:.3g} ≥ 2 overshoots the recurrent weight decay; "
                    "make it < 2")
        return (f"recurrence.lr·recurrence.decay = {step:.3g} < 2 is stable, so look at the input scale "
                f"(odors.noise={cfg.odors.noise!r})")


RECURRENCE = Recurrence()
