"""Exact chunked plasticity: T breaths of a local rule as one sampled dense–dense product.

Given the weights W_0 (slot form, see :mod:`olfacto.model.sparse`) and the activities of a
chunk of T breaths — presynaptic y_pre,s and postsynaptic y_post,s, s = 0 … T−1 —
the local rules are *linear in W* once the activity stream is fixed, so the T
per-breath updates of :mod:`olfacto.model.rules` collapse into one closed form

    W_T = D ⊙ W_0 + ΔW,   ΔW[i,k] = Σ_d U[i,d] · V[idx[i,k], d]   (only at valid slots)

a sampled dense–dense product (SDDMM) of U (N_post × D) and V (N_pre × D) at the
synapses. With mini-batches of B breaths the chunk holds n = T/B updates; breath s
belongs to update u(s) = ⌊s/B⌋ and every per-breath term carries 1/B (the batch mean).

**hebbian** (ΔW = η (y_post y_preᵀ − λW) ⊙ C per update), with a = 1 − ηλ::

    W_T = aⁿ W_0 + Σ_s c_s (y_post,s y_pre,sᵀ) ⊙ C,   c_s = (η/B) a^{n−1−u(s)}
    D = aⁿ,  U[i,s] = c_s y_post,s[i],  V[j,s] = y_pre,s[j]

**oja** (ΔW = η (y_post y_preᵀ − diag(y_post²) W) ⊙ C): a per-row decay
d_u[i] = 1 − (η/B) Σ_{s∈u} y_post,s[i]² on each update::

    W_T[i] = (Π_u d_u[i]) W_0[i] + Σ_s (η/B) y_post,s[i] (Π_{r>u(s)} d_r[i]) y_pre,s[C_i]
    D[i] = Π_u d_u[i],  U[i,s] = (η/B) y_post,s[i] Π_{r>u(s)} d_r[i],  V[j,s] = y_pre,s[j]

**covariance** (Hebbian on y − ȳ, running means ȳ ← ȳ + ρ(y − ȳ) after every breath):
the means depend on the activities only, so with m_s the means before breath s
(m_s = (1−ρ)ˢ m_0 + ρ Σ_{r<s} (1−ρ)^{s−1−r} y_r) it is the Hebbian chunk of the centred
activities ỹ_s = y_s − m_s, and the state becomes m_T.

**factored form (linear φ).** When y = J x (``circuit.activation=linear``), V = X_pre J_preᵀ
and ΔW[i,k] = Σ_m (U X_pre)[i,m] · J_pre[idx[i,k], m]: the same SDDMM with inner
dimension M instead of T, exact, so T can be thousands of breaths. For Hebbian the
left factor is J_post G with G = Σ_s c_s x_post,s x_pre,sᵀ (M × M), no N × T array at
all. For the covariance rule the centred activity ỹ_s = [J, m_0] [x_s − μ_s; −(1−ρ)ˢ]
(μ_s the running mean of the inputs, μ_0 = 0) keeps the form with M + 1 columns.

**Kernels of the SDDMM** (all exact, :data:`KERNELS`):

- ``dense``:  U Vᵀ as a dense N_post × N_pre product in row blocks, then read at the
  synapses — 2·N_post·N_pre·D flops at matmul speed; good when p = K/N_pre is large.
  For Hebbian the two directions' products are transposes of each other
  (Σ_s c_s y_R,s y_L,sᵀ and Σ_s c_s y_L,s y_R,sᵀ), so :func:`update_pair` computes one
  (a rule with ``paired``).
- ``gather``: per synapse a dot over d of U[i] and the gathered row V[idx[i,k]], in
  row blocks sized for the cache — N_post·K·D multiply-adds, no N² term.
- ``numba`` (CPU only): the same products as a compiled loop called through XLA's FFI
  (:mod:`olfacto.model.native`), 1.5× XLA's gather when V lies in DRAM and 4× when it fits the cache.

``form`` chooses how: ``dense``, ``gather`` or ``numba`` (explicit activities), ``factored``
(linear φ only: factored operands, kernel by cost), or ``auto`` (:func:`choose`).

SGD (the delta rule) is not linear in W given the stream (ŷ = W y_pre enters each
update), so it keeps the per-breath path. Which rule has which chunked form is a field of
its :class:`olfacto.model.rules.Rule` (``chunk``, ``extra_factors``, ``paired``,
``factored_streams``); this module holds the forms and the kernels, and no rule names.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import circuit as circuit_mod
from . import native, sparse
from .circuit import DIRECTIONS, post, pre
from .precision import HIGHEST

FORMS = ("auto", "dense", "gather", "numba", "factored")
KERNELS = ("dense", "gather", "numba")

# Floats held at once by a block of the dense product (rows × N_pre) and by a block of
# gathered rows (rows × K × D): the first keeps the product's memory bounded, the second
# keeps a block near the cache on a CPU (measured fastest at 2^16–2^18 on this CPU,
# docs/benchmarks.md). On an accelerator a block must instead be large enough to fill the
# device: every block is one step of a sequential loop, and at 2^18 the rectified mouse scale
# ran ~760 steps per breath on an H200 (5.4 ms per breath, 15–19 % of its bandwidth; §12).
_DENSE_BUDGET = 1 << 22
_GATHER_BUDGET = {"cpu": 1 << 18, "accelerator": 1 << 26}
# The two directions share one dense product up to this many floats (N_post × N_pre).
_PAIR_BUDGET = 1 << 26


class Stream(NamedTuple):
    """The activities of one cortex over a chunk of T breaths.

    Either explicit, ``y`` (T, N), or — for linear φ — factored: ``x`` (T, M) the
    nostril inputs and ``J`` (N, M) the bulb→cortex matrix, y_s = J x_s.
    """

    y: jax.Array | None = None
    x: jax.Array | None = None
    J: jax.Array | None = None

    @property
    def factored(self) -> bool:
        return self.y is None

    def dense(self) -> jax.Array:
        """y (T, N), materialised if factored."""
        return self.y if self.y is not None else jnp.matmul(self.x, self.J.T, precision=HIGHEST)


def explicit(y: jax.Array) -> Stream:
    return Stream(y=y)


def linear(x: jax.Array, J: jax.Array) -> Stream:
    return Stream(x=x, J=J)


class Chunk(NamedTuple):
    """W_T = scale ⊙ W_0 + SDDMM(U, V) at the valid slots; ``scale`` is () or (N_post,)."""

    scale: jax.Array
    U: jax.Array  # (N_post, D)
    V: jax.Array  # (N_pre, D)


# -- coefficients ------------------------------------------------------------------


def _update_of_breath(t: int, batch: int) -> jax.Array:
    return jnp.arange(t) // batch


def powers_of_one_minus(eps: jax.Array, k: jax.Array) -> jax.Array:
    """(1 − ε)^k for integer k ≥ 0, accurate when ε is small.

    Rounding a = 1 − ε to float32 errs by up to 6e-8 absolute, i.e. ~6e-8/ε relative in
    1 − a = ε — 3e-5 at ε = 0.002, a systematic error in the weights' steady state (∝ 1/ε).
    The per-breath rule never forms a (it computes W − ηλW), so neither does this:
    exp(k log1p(−ε)) for ε < 1/2; integer powers of 1 − ε (exact sign) otherwise.
    """
    k = jnp.asarray(k, jnp.int32)
    small = jnp.exp(k.astype(jnp.float32) * jnp.log1p(-jnp.minimum(eps, 0.5)))
    return jnp.where(eps < 0.5, small, jax.lax.pow(1.0 - eps, k))


def hebbian_coefficients(t: int, batch: int, lr: jax.Array, decay: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(c_s for s < T, aⁿ): c_s = (η/B) a^{n−1−u(s)}, a = 1 − ηλ, n = T/B updates."""
    n = t // batch
    power = n - 1 - _update_of_breath(t, batch)
    c = (lr / batch) * powers_of_one_minus(lr * decay, power)
    return c, powers_of_one_minus(lr * decay, n)


def _hebbian_operands(pre: Stream, post: Stream, c: jax.Array, factored: bool) -> tuple[jax.Array, jax.Array]:
    """U, V with Σ_d U[i,d] V[j,d] = Σ_s c_s y_post,s[i] y_pre,s[j]."""
    if factored and pre.factored:
        if post.factored:  # J_post G, G = Σ_s c_s x_post,s x_pre,sᵀ (M × M)
            g = jnp.matmul(post.x.T, c[:, None] * pre.x, precision=HIGHEST)
            return jnp.matmul(post.J, g, precision=HIGHEST), pre.J
        return jnp.matmul((c[:, None] * post.y).T, pre.x, precision=HIGHEST), pre.J
    return (c[:, None] * post.dense()).T, pre.dense().T


def hebbian_chunk(pre: Stream, post: Stream, lr: jax.Array, decay: jax.Array, batch: int = 1,
                  factored: bool = False) -> Chunk:
    """The Hebbian chunk: W_T = aⁿ W_0 + Σ_s c_s (y_post,s y_pre,sᵀ) ⊙ C (module docstring)."""
    t = (pre.y if pre.y is not None else pre.x).shape[0]
    c, scale = hebbian_coefficients(t, batch, lr, decay)
    return Chunk(scale, *_hebbian_operands(pre, post, c, factored))


def oja_chunk(pre: Stream, post: Stream, lr: jax.Array, batch: int = 1, factored: bool = False) -> Chunk:
    """The Oja chunk: per-row decays d_u[i] = 1 − (η/B) Σ_{s∈u} y_post,s[i]² (module docstring)."""
    z = post.dense()  # (T, N_post): the per-row decays need it whatever the form
    t = z.shape[0]
    n = t // batch
    step = lr / batch
    delta = step * jnp.sum((z * z).reshape(n, batch, -1), axis=1)  # (n, N_post): d_u = 1 − δ_u
    # suffix[u] = Π_{r>u} d_r (exclusive): a reverse cumulative sum of log|d| (log1p(−δ) keeps small
    # δ exact, see powers_of_one_minus) and a reverse cumulative product of the signs
    log_mag = jnp.where(delta < 0.5, jnp.log1p(-jnp.minimum(delta, 0.5)), jnp.log(jnp.abs(1.0 - delta)))
    sign = jnp.where(delta > 1.0, -1.0, 1.0)
    inclusive = (jnp.exp(jax.lax.cumsum(log_mag, axis=0, reverse=True))
                 * jax.lax.cumprod(sign, axis=0, reverse=True))
    suffix = jnp.concatenate([inclusive[1:], jnp.ones_like(delta[:1])], axis=0)
    coef = step * z * jnp.repeat(suffix, batch, axis=0)  # (T, N_post)
    if factored and pre.factored:
        return Chunk(inclusive[0], jnp.matmul(coef.T, pre.x, precision=HIGHEST), pre.J)
    return Chunk(inclusive[0], coef.T, pre.dense().T)


def running_means(y: jax.Array, m0: jax.Array, rate: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(m_s for s < T, m_T) of m ← m + ρ (y − m), applied after each of the T rows of ``y``."""
    def step(m, y_s):
        return m + rate * (y_s - m), m

    m_t, before = jax.lax.scan(step, m0, y)
    return before, m_t


def centred(stream: Stream, m0: jax.Array, rate: jax.Array, factored: bool) -> tuple[Stream, jax.Array]:
    """ỹ_s = y_s − m_s and the final means m_T, keeping a linear stream factored:
    ỹ_s = [J, m_0] [x_s − μ_s; −(1−ρ)ˢ] with μ the running mean of the inputs (μ_0 = 0)."""
    if factored and stream.factored:
        mu, mu_t = running_means(stream.x, jnp.zeros_like(stream.x[0]), rate)
        t = stream.x.shape[0]
        fade = powers_of_one_minus(rate, jnp.arange(t))
        x_c = jnp.concatenate([stream.x - mu, -fade[:, None]], axis=1)
        j_c = jnp.concatenate([stream.J, m0[:, None]], axis=1)
        m_t = powers_of_one_minus(rate, t) * m0 + jnp.matmul(stream.J, mu_t, precision=HIGHEST)
        return linear(x_c, j_c), m_t
    y = stream.dense()
    before, m_t = running_means(y, m0, rate)
    return explicit(y - before), m_t


def covariance_chunk(pre: Stream, post: Stream, means: tuple[jax.Array, jax.Array], lr: jax.Array,
                     decay: jax.Array, mean_rate: jax.Array, batch: int = 1,
                     factored: bool = False) -> tuple[Chunk, tuple[jax.Array, jax.Array]]:
    """The covariance chunk: the Hebbian chunk of the centred activities; returns the new means."""
    m_pre, m_post = means
    pre_c, m_pre = centred(pre, m_pre, mean_rate, factored)
    post_c, m_post = centred(post, m_post, mean_rate, factored)
    return hebbian_chunk(pre_c, post_c, lr, decay, batch, factored), (m_pre, m_post)


# -- the sampled product (SDDMM) ---------------------------------------------------


def map_rows(fn: Any, arrays: tuple, rows: int) -> Any:
    """``fn(*arrays)`` (an array or a tuple of arrays) for a function of each row alone (leading axis n), ``rows``
    rows at a time in one loop.
    The last block starts at n − ``rows`` and recomputes rows of the one before it (the same values), so no
    input is padded and no output sliced. In a rewiring event, padding five inputs to whole blocks cost 26 ms
    of 130 (N = 10⁵, K = 50); a rectified cortex's learning chunk takes the same time either way, with
    bit-identical weights. ``None`` entries of ``arrays`` are passed through."""
    first = next(a for a in arrays if a is not None)
    n = first.shape[0]
    if rows >= n:
        return fn(*arrays)

    def part(start):
        return [None if a is None else jax.lax.dynamic_slice_in_dim(a, start, rows) for a in arrays]

    shape = jax.eval_shape(lambda: fn(*part(0)))

    def block(b, out):
        start = jnp.minimum(b * rows, n - rows)
        return jax.tree.map(lambda o, v: jax.lax.dynamic_update_slice_in_dim(o, v, start, axis=0), out, fn(*part(start)))

    zeros = jax.tree.map(lambda s: jnp.zeros((n, *s.shape[1:]), s.dtype), shape)
    return jax.lax.fori_loop(0, -(-n // rows), block, zeros)


def sddmm_dense(U: jax.Array, V: jax.Array, idx: jax.Array, budget: int = _DENSE_BUDGET) -> jax.Array:
    """ΔW[i,k] = (U Vᵀ)[i, idx[i,k]]: the dense product in row blocks, read at the synapses."""
    n, n_pre = U.shape[0], V.shape[0]
    rows = max(1, min(n, budget // max(1, n_pre)))

    def block(u, i):
        return jnp.take_along_axis(jnp.matmul(u, V.T, precision=HIGHEST), i, axis=1)

    return map_rows(block, (U, idx), rows)


def device_kind(backend: str | None = None) -> str:
    """``cpu`` or ``accelerator`` (GPU, TPU): which budgets the chunked kernels use on ``backend`` (default:
    JAX's default backend, the one a program is compiled for)."""
    return "cpu" if (backend or jax.default_backend()) == "cpu" else "accelerator"


def sddmm_gather(U: jax.Array, V: jax.Array, idx: jax.Array, budget: int | None = None) -> jax.Array:
    """ΔW[i,k] = U[i] · V[idx[i,k]]: gathered rows of V contracted with U, in row blocks of about ``budget``
    gathered floats (default: :data:`_GATHER_BUDGET` of the backend)."""
    n, k = idx.shape
    budget = _GATHER_BUDGET[device_kind()] if budget is None else budget
    rows = max(1, min(n, budget // max(1, k * V.shape[1])))

    def block(u, i):
        return jnp.einsum("rkd,rd->rk", V.at[i].get(mode="promise_in_bounds"), u, precision=HIGHEST)

    return map_rows(block, (U, idx), rows)


def _loops_here(backend: str | None) -> bool:
    """Whether :mod:`olfacto.model.native`'s compiled loops can run in a program for ``backend`` (a CPU's)."""
    return device_kind(backend) == "cpu" and native.available()


def loops(spec: Any) -> bool:
    """Whether a network's programs take the compiled loops (:mod:`olfacto.model.native`): on a CPU, for a network
    not sharded over devices (an FFI call is not partitioned: XLA would gather its operands to every device)."""
    return not spec.circuit.shard and _loops_here(None)


def sddmm(U: jax.Array, V: jax.Array, idx: jax.Array, kernel: str) -> jax.Array:
    if kernel == "dense":
        return sddmm_dense(U, V, idx)
    if kernel == "gather":
        return sddmm_gather(U, V, idx)
    if kernel == "numba":
        return native.sddmm(U, V, idx)
    raise ValueError(f"kernel={kernel!r}: allowed are {', '.join(map(repr, KERNELS))}")


def sample_transposed(d: jax.Array, idx: jax.Array) -> jax.Array:
    """ΔW[i,k] = d[idx[i,k], i]: the reverse direction's synapses read from the same dense product."""
    return jnp.take_along_axis(d.T, idx, axis=1)  # measured faster than the 2-D gather d[idx, i]


# -- choosing the form -------------------------------------------------------------


def _no_chunk(rule: Any) -> ValueError:
    return ValueError(f"learning.rule={rule.name!r} has no chunked form; allowed with it: run.plasticity auto, "
                      "per_breath")


def choose(form: str, rule: Any, n_post: int, n_pre: int, k: int, t: int, n_glomeruli: int,
           linear_activation: bool, backend: str | None = None) -> tuple[bool, str]:
    """(factored, kernel) for a chunk of ``t`` breaths of ``rule`` (a :class:`~olfacto.model.rules.Rule`):
    ``form`` ∈ :data:`FORMS`.

    ``auto`` factors when φ is linear and M (+ the rule's ``extra_factors``) < T, then picks
    the kernel of smaller :func:`olfacto.model.sparse.kernel_cost`.
    """
    if form not in FORMS:
        raise ValueError(f"form={form!r}: allowed are {', '.join(map(repr, FORMS))}")
    if rule.chunk is None:
        raise _no_chunk(rule)
    native_here = _loops_here(backend)
    if form == "numba" and not native_here:
        raise ValueError(f"run.plasticity='numba': a compiled loop for the CPU, and this program runs on "
                         f"{backend or jax.default_backend()}; allowed here: auto, per_breath, dense, gather, factored")
    if form in KERNELS:
        return False, form
    m = n_glomeruli + rule.extra_factors
    if form == "factored" and not linear_activation:
        raise ValueError("form='factored' needs circuit.activation='linear'")
    factored = form == "factored" or (linear_activation and m < t)
    d = m if factored else t
    shared = rule.paired and n_post * n_pre <= _PAIR_BUDGET
    costs = {kern: sparse.kernel_cost(kern, n_post, n_pre, k, d, backend, shared=shared and not factored)
             for kern in KERNELS if kern != "numba" or native_here}
    if n_post * n_pre > _PAIR_BUDGET * 16:  # a dense product this large is never worth its memory traffic
        costs["dense"] = float("inf")
    return factored, min(costs, key=costs.get)


# -- applying a chunk ----------------------------------------------------------------


def _valid(mask: sparse.FanIn, dw: jax.Array) -> jax.Array:
    return jnp.where(mask.valid, dw, 0.0)


def _rescale(scale: jax.Array, w: jax.Array) -> jax.Array:
    return (scale[:, None] if scale.ndim == 1 else scale) * w


def apply(chunk: Chunk, w: jax.Array, mask: sparse.FanIn, kernel: str) -> jax.Array:
    """W_T = scale ⊙ W_0 + SDDMM(U, V) at the valid slots (empty slots stay exactly 0)."""
    return _rescale(chunk.scale, w) + _valid(mask, sddmm(chunk.U, chunk.V, mask.idx, kernel))


def update_pair(rule: Any, w: dict[str, jax.Array], state: dict[str, Any], masks: dict[str, sparse.FanIn],
                streams: dict[str, Stream], learning: Any, batch: int, factored: bool, kernel: str
                ) -> tuple[dict[str, jax.Array], dict[str, Any]]:
    """Both directions (keys :data:`olfacto.model.circuit.DIRECTIONS`) after a chunk; ``streams`` keyed by
    side; equal to the chunk's per-breath updates of ``rule`` within float32 round-off.

    For a ``paired`` rule with the ``dense`` kernel and explicit activities the R_to_L product is the
    transpose of the L_to_R one, so one dense product serves both.
    """
    n_post, n_pre = w["L_to_R"].shape[0], masks["L_to_R"].n_pre
    if rule.paired and kernel == "dense" and not factored and n_post * n_pre <= _PAIR_BUDGET:
        chunk, _ = rule.chunk(streams["L"], streams["R"], state["L_to_R"], learning, batch, False)
        d = jnp.matmul(chunk.U, chunk.V.T, precision=HIGHEST)  # (N_R, N_L): Σ_s c_s y_R,s y_L,sᵀ
        new = {
            "L_to_R": chunk.scale * w["L_to_R"] + _valid(masks["L_to_R"], jnp.take_along_axis(d, masks["L_to_R"].idx, 1)),
            "R_to_L": chunk.scale * w["R_to_L"] + _valid(masks["R_to_L"], sample_transposed(d, masks["R_to_L"].idx)),
        }
        return new, state
    new_w, new_state = {}, {}
    for direction in DIRECTIONS:
        chunk, new_state[direction] = rule.chunk(streams[pre(direction)], streams[post(direction)],
                                                 state[direction], learning, batch, factored)
        new_w[direction] = apply(chunk, w[direction], masks[direction], kernel)
    return new_w, new_state


# -- the learning loop of a recording chunk ----------------------------------------------

# Floats of activity a sub-chunk may hold per run: the explicit streams and operands take
# about 6·N·T floats (y of both sides, U and V of both directions), so T is capped at this
# budget / 6N breaths; factored Hebbian/covariance chunks hold only T·M and take any T.
# On an accelerator each sub-chunk is one sequential step too, so its budget is 4× larger
# (1 GiB per run: at N = 3·10⁵, 143 breaths instead of the CPU's 96 below).
_STREAM_BUDGET = {"cpu": 1 << 26, "accelerator": 1 << 28}
# ... but never fewer than this many breaths per sub-chunk where the budget would allow fewer (N > 1.2·10⁵
# on a CPU): XLA:CPU's gathered product costs twice as much per synapse and breath with short rows
# (measured at N_pre = 10⁶, K = 100, idle: 1.1–1.7 ns at T = 11, 1.3–2.5 ns at T = 44–72, 0.43–0.66 ns at
# T = 80–167, whatever the rows per block; docs/benchmarks.md §14), and the rectified mouse scale's
# streams at T = 96 are 2.3 GB.
MIN_SUB_BREATHS = 96
# Below this many updates per recording chunk the per-breath path is kept.
_MIN_UPDATES = 4


def equal_parts(n: int, cap: int, least: int) -> int:
    """The length of each part when ``n`` steps are cut into equal parts: parts of at most ``cap`` steps, or, where
    ``cap`` is below the floor ``least``, of at least ``least`` (fewer only when ``n`` is shorter). Where the parts
    do not divide ``n`` the last one is shorter."""
    parts = -(-n // cap) if cap >= least else max(1, n // least)
    return -(-n // parts)


class Plan(NamedTuple):
    """How a recording chunk of ``n_steps`` updates learns (static: fixed by the config's shapes)."""

    path: str  # "per_breath" or "chunked"
    factored: bool = False
    kernel: str = ""
    sub_steps: int = 0  # updates per sub-chunk (a chunk is scanned in sub-chunks of this many)

    def describe(self) -> str:
        """``per_breath`` (``per_breath:numba`` by the compiled loop), or ``chunked:<form>`` with the form
        (``dense``, ``gather``, ``factored-gather``, …)."""
        if self.path == "per_breath":
            return f"per_breath:{self.kernel}" if self.kernel else "per_breath"
        return f"chunked:{'factored-' if self.factored else ''}{self.kernel}"


def slot_passes(the_plan: Plan, n_steps: int, batch: int, factors: int) -> int:
    """How many times a chunk of ``n_steps`` updates of ``batch`` breaths reads each synapse slot (what one more
    slot per row costs it): per breath, every breath; the gather kernel, once per breath (its sampled product
    has the sub-chunk's breaths as inner dimension), or ``factors`` times (M plus the rule's extra factors)
    per sub-chunk when factored, whatever its length; the dense kernel, once per sub-chunk (its product read
    at the slots)."""
    if the_plan.path == "per_breath":
        return n_steps * batch
    subs = -(-n_steps // the_plan.sub_steps)
    if the_plan.kernel == "dense":
        return subs
    return subs * factors if the_plan.factored else n_steps * batch


def work_bytes(the_plan: Plan, rule: Any, n_cortex: int, batch: int, n_steps: int) -> int:
    """Rough extra memory of one run's chunked update: the sub-chunk's streams and operands,
    and the dense product (one N × N for a paired rule, else row blocks); per breath, the block of
    direct responses computed ahead (:func:`olfacto.model.circuit.scan_responses`)."""
    if the_plan.path == "per_breath":
        return 4 * circuit_mod.block_steps(n_steps, batch, n_cortex) * batch * 2 * n_cortex
    streams = 0 if the_plan.factored and rule.factored_streams else 6 * n_cortex * the_plan.sub_steps * batch
    dense = 0
    if the_plan.kernel == "dense":
        dense = n_cortex**2 if rule.paired and n_cortex**2 <= _PAIR_BUDGET else _DENSE_BUDGET
    return 4 * (streams + dense)


def plan(choice: str, rule: Any, activation: str, n_cortex: int, k_max: int, n_glomeruli: int, n_steps: int,
         batch: int, backend: str | None = None, sharded: bool = False, native_step: bool = False) -> Plan:
    """The :class:`Plan` for ``run.plasticity = choice`` (``auto``, ``per_breath`` or a form of :data:`FORMS`).

    ``auto`` learns per breath for a rule without a chunked form and for chunks of fewer than 4
    updates — by the compiled loop (kernel ``numba``) where the rule has one (``native_step``: SGD with
    optax's plain sgd) on a CPU —, else chunked with the form :func:`choose` picks; a forced form must suit
    the rule and activation; ``per_breath`` is XLA's scan. A network ``sharded`` over devices never takes
    the dense kernel (its row blocks would all-gather the mask) nor a compiled loop (an FFI call is not
    partitioned): gather instead, and XLA's scan.
    """
    if choice == "per_breath" or (choice == "auto" and (rule.chunk is None or n_steps < _MIN_UPDATES)):
        loop = choice == "auto" and native_step and not sharded and _loops_here(backend)
        return Plan("per_breath", kernel="numba" if loop else "")
    if rule.chunk is None:
        raise _no_chunk(rule)
    form = "auto" if choice == "auto" else choice
    linear_phi = activation == "linear"
    factored = form == "factored" or (form == "auto" and linear_phi
                                      and n_glomeruli + rule.extra_factors < n_steps * batch)
    small = factored and rule.factored_streams  # no N × T array: one sub-chunk
    cap = n_steps if small else _STREAM_BUDGET[device_kind(backend)] // (6 * n_cortex * batch)
    sub = equal_parts(n_steps, cap, -(-MIN_SUB_BREATHS // batch))
    fact, kernel = choose(form, rule, n_cortex, n_cortex, k_max, sub * batch, n_glomeruli, linear_phi, backend)
    if sharded and kernel in ("dense", "numba"):
        if form in ("dense", "numba"):  # forced explicit: explicit gather
            return plan("gather", rule, activation, n_cortex, k_max, n_glomeruli, n_steps, batch, backend)
        kernel = "gather"  # factored or not, as chosen
    return Plan("chunked", fact, kernel, sub)


def streams_of(circuit: circuit_mod.Circuit, x: dict[str, jax.Array], active_fraction: jax.Array,
               factored: bool) -> dict[str, Stream]:
    """Each cortex's :class:`Stream` over a sub-chunk from the nostril inputs ``x[side]`` (T, M)."""
    if factored:
        return {s: linear(x[s], circuit.J[s]) for s in x}
    y = circuit_mod.direct_all(circuit, x, active_fraction)
    return {s: explicit(y[s]) for s in y}


def advance(the_plan: Plan, rule: Any, circuit: circuit_mod.Circuit, masks: dict[str, sparse.FanIn],
            weights: dict[str, jax.Array], rule_state: dict[str, Any], x: dict[str, jax.Array], learning: Any,
            active_fraction: jax.Array, batch: int) -> tuple[dict[str, jax.Array], dict[str, Any]]:
    """Both directions after the breaths ``x[side]`` ((n_steps·B, M) nostril inputs), chunked.

    Equal to n_steps per-breath updates of ``rule`` within float32 round-off. The breaths are
    taken in sub-chunks of ``the_plan.sub_steps`` updates (a ``lax.scan``; a last, shorter
    sub-chunk if they do not divide), each one exact chunked update.
    """
    def sub_chunk(carry, xs):
        w, st = carry
        streams = streams_of(circuit, xs, active_fraction, the_plan.factored)
        return update_pair(rule, w, st, masks, streams, learning, batch, the_plan.factored, the_plan.kernel)

    return scan_blocks(sub_chunk, (weights, rule_state), x, the_plan.sub_steps * batch)


def scan_blocks(step: Any, carry: Any, xs: Any, block: int) -> Any:
    """``carry`` after ``step(carry, b)`` over the consecutive blocks b of ``block`` leading rows of every leaf of
    ``xs`` (one ``lax.scan``), then over the last, shorter block when ``block`` does not divide them."""
    n_full, rest = divmod(jax.tree.leaves(xs)[0].shape[0], block)
    if n_full:
        head = jax.tree.map(lambda a: a[:n_full * block].reshape(n_full, block, *a.shape[1:]), xs)
        carry, _ = jax.lax.scan(lambda c, b: (step(c, b), None), carry, head)
    if rest:
        carry = step(carry, jax.tree.map(lambda a: a[n_full * block:], xs))
    return carry
