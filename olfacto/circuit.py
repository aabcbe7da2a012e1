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

with W_d stored in slot form (:mod:`olfacto.sparse`), so the cost is ∝ N·K.
:func:`responses` returns both for a set of odors; every measurement, rule and
analysis goes through these functions.

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
    """Fixed anatomy of one simulated animal: ``J[side]`` (N, M), ``masks[direction]`` and, with
    recurrence, ``recurrent_masks[side]``."""

    J: dict[str, jax.Array]
    masks: dict[str, sparse.FanIn]
    activation: str = struct.field(pytree_node=False)
    # C_rec by side when the cortices are recurrent (olfacto.recurrence), else None
    recurrent_masks: dict[str, sparse.FanIn] | None = None


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
    return activate(x @ J.T, kind, active_fraction)


def indirect(weights: jax.Array, mask: sparse.FanIn, y_pre: jax.Array) -> jax.Array:
    """ŷ = (W ⊙ C) y_pre for one presynaptic vector (N_pre,) → (N_post,) or a batch (B, N_pre) → (B, N_post)."""
    if y_pre.ndim == 1:
        return sparse.matvec(weights, mask, y_pre)
    return sparse.matmat(weights, mask, y_pre)


def direct_all(circuit: Circuit, x: dict[str, jax.Array], active_fraction: jax.Array) -> dict[str, jax.Array]:
    """Direct responses of both cortices, ``{side: φ(J_side x[side])}``."""
    return {s: direct(circuit.J[s], x[s], circuit.activation, active_fraction) for s in SIDES}


def indirect_all(circuit: Circuit, weights: dict[str, jax.Array], y: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Indirect responses of both directions, ``{d: (W_d ⊙ C_d) y[pre(d)]}``, given the direct ones."""
    return {d: indirect(weights[d], circuit.masks[d], y[pre(d)]) for d in DIRECTIONS}


def refine(y_hat: jax.Array, A: jax.Array, mask: sparse.FanIn, alpha: jax.Array, steps: int, kind: str,
           active_fraction: jax.Array) -> jax.Array:
    """The recurrent refinement of an indirect response inside the receiving cortex (MODEL.md §3):
    z₀ = ŷ, z_{t+1} = φ(ŷ + α (A ⊙ C_rec) z_t) for ``steps`` steps; ``y_hat`` (P, N) → z_T (P, N).
    For linear φ and α ρ(A) < 1 it converges to the fixed point z* = (I − αA)⁻¹ ŷ."""
    def one(_, z):
        return activate(y_hat + alpha * sparse.matmat(A, mask, z), kind, active_fraction)

    return jax.lax.fori_loop(0, steps, one, y_hat)


def responses(circuit: Circuit, weights: dict[str, jax.Array], x: dict[str, jax.Array],
              active_fraction: jax.Array) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """The circuit's responses to nostril inputs ``x[side]`` (B, M): (direct by side, indirect by direction)."""
    y = direct_all(circuit, x, active_fraction)
    return y, indirect_all(circuit, weights, y)


def make_circuit(key: jax.Array, n_cortex: int, n_glomeruli: int, connection_prob: jax.Array, mask: str,
                 k_max: int, projection_kind: str, projection_density: jax.Array, activation: str) -> Circuit:
    """Draw J_L, J_R and both masks independently from ``key``."""
    k_l, k_r, k_rl, k_lr = jax.random.split(key, 4)
    keys_j = {"L": k_l, "R": k_r}
    keys_c = {"L_to_R": k_rl, "R_to_L": k_lr}
    return Circuit(
        J={s: projection(keys_j[s], n_cortex, n_glomeruli, projection_kind, projection_density) for s in SIDES},
        masks={d: sparse.sample_mask(keys_c[d], n_cortex, n_cortex, connection_prob, mask, k_max)
               for d in DIRECTIONS},
        activation=activation,
    )
