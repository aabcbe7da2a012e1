"""The bilateral circuit and its forward pass: J_L, J_R, activation φ, masks C, responses.

Two cortices, keyed by side ``"L"``, ``"R"``; two inter-hemispheric projections,
keyed by direction ``"L_to_R"`` (an odor at the left nostril read in the right
cortex: pre = L, post = R) and ``"R_to_L"``. Everything per side or per
direction is a dict with these keys, built by mapping over :data:`SIDES` or
:data:`DIRECTIONS`; the spelling is the same in code and in results.

Direct response of cortex h to its own nostril's input x_h (the one definition,
:func:`direct`):

    y_h = φ(J_h x_h),   J_h ∈ R^{N×M}

Indirect response of the post cortex of direction d (:func:`indirect`):

    ŷ_d = (W_d ⊙ C_d) y_pre(d)

with W_d stored in slot form (:mod:`olfacto.model.sparse`), so the cost is ∝ N·K.
Every measurement, rule and analysis goes through these two functions; the learned
projections themselves (masks, weights, rules) are a component of the network,
:mod:`olfacto.model.projection`.

- ``gaussian`` J: entries N(0, 1/M), so E[(J x)_i²] = E‖x‖²/M ≈ 1.
- ``sparse`` J (feed-forward inhibition): positive weights w_im = b_im·a_im,
  b_im ~ Bernoulli(c), a_im ~ Exp(1), minus their row mean (global inhibition
  from the same glomeruli), scaled so that Var(J_im) = 1/M.

Activations φ: ``linear``; ``relu``; ``kwta`` — y = max(h − θ, 0) with θ the
(1 − f) quantile of h across the N neurons for each odor, so global inhibition
leaves a fraction f active.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from . import sparse
from .precision import HIGHEST


SIDES = ("L", "R")
DIRECTIONS = ("L_to_R", "R_to_L")


def pre(direction: str) -> str:
    """The sending cortex of a direction: ``pre("L_to_R") == "L"``."""
    return direction.split("_to_")[0]


def post(direction: str) -> str:
    """The receiving cortex of a direction: ``post("L_to_R") == "R"``."""
    return direction.split("_to_")[1]


@struct.dataclass
class Circuit:
    """The fixed bulb→cortex anatomy of one simulated animal: ``J[side]`` (N, M) and the activation φ."""

    J: dict[str, jax.Array]
    activation: str = struct.field(pytree_node=False)


def projection(key: jax.Array, n: int, m: int, kind: str, density: jax.Array) -> jax.Array:
    """A bulb→cortex matrix J (N×M) of the given kind."""
    if kind == "gaussian":
        return jax.random.normal(key, (n, m)) / jnp.sqrt(m)
    k_on, k_amp = jax.random.split(key)
    w = jax.random.bernoulli(k_on, density, (n, m)) * jax.random.exponential(k_amp, (n, m))
    w = w - w.mean(axis=1, keepdims=True)
    var = 2 * density - density**2  # Var of Bernoulli(c)·Exp(1)
    return w / jnp.sqrt(m * var * (1 - 1 / m) + 1e-12)


def activate(h: jax.Array, kind: str, active_fraction: jax.Array) -> jax.Array:
    """φ(h) along the last (neuron) axis."""
    if kind == "linear":
        return h
    if kind == "relu":
        return jax.nn.relu(h)
    theta = jnp.quantile(h, 1.0 - active_fraction, axis=-1, keepdims=True)
    return jax.nn.relu(h - theta)


def direct(J: jax.Array, x: jax.Array, kind: str, active_fraction: jax.Array) -> jax.Array:
    """y = φ(J x) for a batch of inputs x (B, M) → (B, N)."""
    return activate(jnp.matmul(x, J.T, precision=HIGHEST), kind, active_fraction)


def direct_by_neuron(J: jax.Array, x: jax.Array, kind: str, active_fraction: jax.Array) -> jax.Array:
    """:func:`direct` laid out (N, B), one row per neuron — as a sampled product reads it — from the product
    J xᵀ itself (for an elementwise φ) rather than a transposed copy of (B, N)."""
    if kind in ("linear", "relu"):
        return activate(jnp.matmul(J, x.T, precision=HIGHEST), kind, active_fraction)
    return direct(J, x, kind, active_fraction).T  # k-WTA thresholds each breath over its neurons


RESPONSE_BLOCK = 1 << 18
"""Floats of direct responses (both sides) that a per-breath scan computes ahead (1 MiB): :func:`scan_responses`.
Measured at N = 3,000 (per-breath SGD, µs per breath at K_max = 47 / 203 / 356 slots): 16 MiB 219 / 539 / 797,
1 MiB 157 / 474 / 814, 256 KiB 157 / 481 / 834, 64 KiB 182 / 498 / 869 — a block as large as the L3 evicts
the weights and indices that the loop reads every breath (docs/benchmarks.md §17)."""


def block_steps(n_steps: int, batch: int, n_cortex: int) -> int:
    """Updates per block of :func:`scan_responses`: the largest divisor S of ``n_steps`` whose responses,
    2 sides × S·batch × N floats, fit :data:`RESPONSE_BLOCK` (1 where none larger does)."""
    cap = max(1, RESPONSE_BLOCK // (2 * batch * n_cortex))
    return next(s for s in range(min(cap, n_steps), 0, -1) if n_steps % s == 0)


def scan_responses(circuit: Circuit, x: dict[str, jax.Array], active_fraction: jax.Array, n_steps: int,
                   batch: int, step, carry, block_step=None):
    """``carry`` after ``step(carry, y) -> (carry, None)`` for each of ``n_steps`` updates in turn, where
    ``y[side]`` (batch, N) = φ(J_side x) are the direct responses of that update's breaths (``x[side]``,
    (n_steps·batch, M)); or after ``block_step(carry, y) -> carry`` for each block of S updates, ``y[side]``
    (S, batch, N) (a loop that takes the block's updates itself).

    The responses are computed a block of :func:`block_steps` updates at a time, one (S·batch × M)·(M × N)
    product instead of S matrix–vector products inside the loop. The values agree to float32 rounding (the
    product may round differently: ≤ 5·10⁻⁷ on the figures' data), and per-breath SGD is 1.1–2.3× faster per
    breath at N = 500–3,000, the most where K is small (docs/benchmarks.md §17).
    """
    size = block_steps(n_steps, batch, circuit.J[SIDES[0]].shape[0])
    blocks = {s: a.reshape(n_steps // size, size * batch, -1) for s, a in x.items()}

    def block(c, xb):
        y = {s: v.reshape(size, batch, -1) for s, v in direct_all(circuit, xb, active_fraction).items()}
        if block_step is not None:
            return block_step(c, y), None
        c, _ = jax.lax.scan(step, c, y)
        return c, None

    carry, _ = jax.lax.scan(block, carry, blocks)
    return carry


def indirect(weights: jax.Array, mask: sparse.FanIn, y_pre: jax.Array, loop: bool = False) -> jax.Array:
    """ŷ = (W ⊙ C) y_pre for one presynaptic vector (N_pre,) → (N_post,) or a batch (B, N_pre) → (B, N_post);
    ``loop`` (a CPU, a network not sharded): a batch by the compiled loop where XLA would gather
    (:func:`olfacto.model.sparse.project`)."""
    if y_pre.ndim == 1:
        return sparse.matvec(weights, mask, y_pre)
    if loop:
        return sparse.project(weights, mask, y_pre.T, loop).T
    return sparse.matmat(weights, mask, y_pre)


def direct_all(circuit: Circuit, x: dict[str, jax.Array], active_fraction: jax.Array) -> dict[str, jax.Array]:
    """Direct responses of both cortices, ``{side: φ(J_side x[side])}``."""
    return {s: direct(circuit.J[s], x[s], circuit.activation, active_fraction) for s in SIDES}


def indirect_all(masks: dict[str, sparse.FanIn], weights: dict[str, jax.Array],
                 y: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Indirect responses of both directions, ``{d: (W_d ⊙ C_d) y[pre(d)]}``, given the direct ones."""
    return {d: indirect(weights[d], masks[d], y[pre(d)]) for d in DIRECTIONS}


def make_circuit(key: jax.Array, n_cortex: int, n_glomeruli: int, projection_kind: str,
                 projection_density: jax.Array, activation: str) -> Circuit:
    """Draw J_L and J_R independently from ``key`` (its first two of four subkeys; the other two are the
    projection masks', :func:`olfacto.model.projection.mask_keys`)."""
    k_l, k_r, _, _ = jax.random.split(key, 4)
    keys_j = {"L": k_l, "R": k_r}
    return Circuit(J={s: projection(keys_j[s], n_cortex, n_glomeruli, projection_kind, projection_density)
                      for s in SIDES}, activation=activation)
