"""Structural plasticity: the inter-hemispheric synapses rewire (beyond the thesis), a component of the network.

With ``rewiring.rule`` other than ``none`` the projection's masks C_d are learned state
(:class:`olfacto.model.projection.Learned` ``.masks``), and every ``rewiring.every`` breaths — between two
compiled chunks of learning, after the records of that breath, so that a record sees the network its learning
left and never one just pruned (whose regrown synapses have not learned yet); a run's last breath has no event —
an *event* changes them. Per direction d and receiving neuron i with
K_i synapses (K_i = K for a fixed in-degree mask):

1. **prune** the r_i = round(ζ K_i) synapses with the smallest |W_ij| (``random``: r_i chosen at random);
2. **regrow** r_i new partners j ∉ C_i, the best by a score among a pool of P_i = c·r_i sampled candidates
   (c = ``rewiring.candidates``; none that is already a partner), into the pruned slots (the smallest
   |W| gets the best candidate). The pool of neuron i is a *window*: the P pre neurons o_i, o_i + 1, …,
   o_i + P − 1 (mod N_pre) at a uniform random offset o_i, drawn afresh per event — per neuron for
   ``random`` and ``magnitude``, per group of :data:`SHARED_ROWS` consecutive neurons for the scored rules,
   whose scores are then one dense product per group. The pre neurons are exchangeable in the model (iid
   rows of J, iid masks), so a window is as good a sample as P independent draws, with no candidate twice
   by construction, from one random number instead of P (P is capped at N_pre); and a neuron's choice
   depends on its own pool's scores alone, so sharing a window changes which pools coincide, not the
   distribution of any neuron's regrowth. ``cht`` pools are its sampled paths' ends instead. A regrown
   synapse starts at W_ij = 0 and its optimizer state at 0. Where fewer valid candidates than r_i are
   found, the remaining pruned synapses stay. So K_i is unchanged by every event — exactly.

The regrowth scores (the rules). An event costs ∝ N·K (ranking |W|, placing the partners in the windows)
+ N·P·M (scoring, linear φ) — N·P·(K + P) for ``cht``'s arbitrary pools — never N²:

- ``random``, ``magnitude``: uniform (``magnitude`` is SET: magnitude pruning, random regrowth);
- ``hebbian``: |Σ_t y_post,i(t) y_pre,j(t)|, the correlation of post and candidate-pre activity over the
  breaths since the last event (the candidates are drawn at the previous event and their sums
  accumulated chunk by chunk) — or over its last ``rewiring.score_breaths`` breaths (:func:`scoring_breaths`);
- ``gradient``: |Σ_t (y_post,i − ŷ_i)(t) y_pre,j(t)| = |Σ_t ∂L_t/∂W_ij| of the alignment loss over the
  same breaths (RigL, which scores the mini-batch at the update: a short ``rewiring.score_breaths``), with each chunk's
  final weights in ŷ;
- ``cht``: Cannistraci–Hebb link prediction on paths of length 3 of the bipartite graph of both
  projections: i –(C_d)– u –(C_d')– v –(C_d)– j, sampled (c·r_i paths per neuron through random valid
  slots), a candidate's score the number of sampled paths that end at it — a Monte-Carlo estimate of
  the L3 path count (with fixed fan-in every node has the same slot degree, so CH's degree
  normalisation is a constant here).

For linear φ the interval sums are accumulated in factored form, Σ_t a_i(t) y_pre,j(t) = g_i · J_pre,j
with g = J_post S_post,pre (Hebbian) or g = J_post S_post,pre − V S_pre,pre (gradient; V_i = Σ_k W_ik
J_pre,idx_ik), S_a,b = Σ_t x_a(t) x_b(t)ᵀ (M × M): cost N·M² per chunk and N·M·c·r_max per event. Otherwise
in blocks of breaths, as the product of a and y_pre at the candidates: N·c·r_max per breath (+ N·K for the
gradient's ŷ). Both are dense products per group of rows sharing a window.

Random stream: ``fold_in(run key, 13)``, then ``fold_in(·, e)`` for event e (0: the first candidates),
so a run without rewiring draws everything as before. No draw depends on the slot count (a window's offset
per neuron, a row's priorities from its own key, ``cht``'s paths a hash of the row's draw and the path's
index, :func:`path_bits`) and each pool is the first P_i of a window of the Spec's P, so a run padded to more
slots in a batch (a sweep over K, :func:`olfacto.model.network.padding`) rewires exactly as it does alone.

On a CPU (a network not sharded over devices, :func:`olfacto.model.chunked.loops`) an event's slots and partners
and CHT's paths are found by compiled loops (:func:`olfacto.model.native.rewire`, which also writes the regrown
synapses into the donated state, and :func:`olfacto.model.native.cht_paths`): the same integers and orders, so
the same state to the bit as XLA's path here (docs/benchmarks.md §25: an event at N = 10⁵, K = 50 1.3–2.2×
faster; §29: the state written by the loop, not XLA's scatter).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from . import chunked, circuit, measures, native, sparse
from .circuit import DIRECTIONS, post, pre
from .precision import HIGHEST
from .projection import factored_response

NAME = "rewiring"
STREAM = 13
PROJECTION = "projection"  # the component whose masks rewire
SCORED = ("hebbian", "gradient")  # rules whose candidates are scored over the interval between events
RULES = ("none", "random", "magnitude", "hebbian", "gradient", "cht")

LONG_NAMES = {
    "rewiring_turnover": "fraction of the synapses replaced at the last rewiring event",
    "rewiring_survival": "fraction of the synapses present since breath 0",
    "rewiring_events": "rewiring events so far",
    "partner_correlation": "mean |corr| over probes of a neuron's direct response with its partners' (both "
                           "directions)",
    "random_partner_correlation": "the same for as many random partners (a fixed draw)",
}


@struct.dataclass
class Part:
    """The rewiring's learned part: its random stream, the scored candidates and the event history."""

    key: jax.Array  # raw key data of its stream
    candidates: dict[str, jax.Array]  # (N, pool) int32 per direction (scored rules; else (N, 0))
    score: dict[str, jax.Array]  # (N, pool) float32: the interval's sums, breath by breath (else (N, 0))
    moment: dict[str, jax.Array]  # (N, M) float32: the interval's g, factored (linear φ; else (N, 0))
    origin: dict[str, jax.Array]  # (N, K_max) bool: the slot holds its synapse of breath 0
    events: jax.Array  # int32
    turnover: jax.Array  # float32: fraction of the synapses replaced at the last event


def pruned(spec: Any) -> int:
    """r_max = round(ζ K_max), the most synapses a neuron prunes per event (static)."""
    return max(1, round(spec.rewiring.fraction * spec.projection.slots))


def pool(spec: Any) -> int:
    """Candidates per neuron and event: P = c · r_max, at most N_pre (a window holds each pre neuron once)."""
    return min(spec.rewiring.candidates * pruned(spec), spec.circuit.n_cortex)


def factored(spec: Any) -> bool:
    """Whether the interval's sums are accumulated in factored form (linear φ): g (N × M) per direction."""
    return spec.rewiring.rule in SCORED and spec.circuit.activation == "linear"


def _keys(part: Part, event: jax.Array) -> jax.Array:
    return jax.random.fold_in(jax.random.wrap_key_data(part.key), event)


SHARED_ROWS = 32
"""The scored rules' rows (receiving neurons i = 32 g, …, 32 g + 31) that share one window of candidates, so that
their scores are one (32 × D) · (D × P) product per group (D = M factored, breaths otherwise) instead of a row's
own slice of J_pre or gather of y_pre (N = 10⁵, P = 20, M = 50: 189 → 9 ms; T = 100 breaths: 376 → 13 ms). Each
neuron's pool is still a uniform window and its choice depends on its own scores alone, so every neuron's
regrowth has the distribution it has with a window of its own; only which pools coincide changes."""


def window(key: jax.Array, n_rows: int, size: int, n_pre: int, share: int = 1) -> jax.Array:
    """Each row's pool of ``size`` candidates: o_i + (0, 1, …, size − 1) mod n_pre at a uniform offset o_i, one
    offset per group of ``share`` consecutive rows."""
    return (offsets(key, n_rows, n_pre, share) + jnp.arange(size, dtype=jnp.int32)) % n_pre


def offsets(key: jax.Array, n_rows: int, n_pre: int, share: int = 1) -> jax.Array:
    """The offsets o_i (rows × 1) of :func:`window`: its first column."""
    offset = jax.random.randint(key, (-(-n_rows // share), 1), 0, n_pre, dtype=jnp.int32)
    return jnp.repeat(offset, share, axis=0)[:n_rows] if share > 1 else offset


def shared_products(a: jax.Array, ext: jax.Array, candidates: jax.Array, share: int) -> jax.Array:
    """Σ_d a_id b_jd for each row i and candidate j = ``candidates[i, c]``, where groups of ``share`` rows share a
    window (:func:`window`) and ``ext = wrapped(b, size)``: per group, the product of its rows of ``a`` (share × D)
    with its window of b (D × P)."""
    n, dim = a.shape
    size, groups = candidates.shape[-1], -(-n // share)
    rows = jax.vmap(lambda o: jax.lax.dynamic_slice_in_dim(ext, o, size, axis=0))(candidates[::share, 0])
    a = jnp.pad(a, ((0, groups * share - n), (0, 0))).reshape(groups, share, dim)
    return jnp.einsum("gsd,gpd->gsp", a, rows, precision=HIGHEST).reshape(groups * share, size)[:n]


def wrapped(a: jax.Array, size: int) -> jax.Array:
    """``a`` followed by its first ``size`` rows: every window of ``size`` rows is one slice of it."""
    return jnp.concatenate([a, a[:size]], axis=0)


class Rewiring:
    """Prune and regrow the projection's synapses every ``rewiring.every`` breaths."""

    name = NAME
    stage = None  # no stage of the indirect response: it changes which synapses the projection has
    activated = False

    def static(self, cfg: Any) -> dict[str, Any]:
        return {}

    def active(self, spec: Any) -> bool:
        return spec.rewiring.rule != "none"

    def init(self, spec: Any, key: jax.Array, params: Any, circ: circuit.Circuit) -> tuple[None, Part]:
        n, k_max = spec.circuit.n_cortex, spec.projection.slots
        base = jax.random.fold_in(key, STREAM)
        size = pool(spec) if spec.rewiring.rule in SCORED else 0
        sums = 0 if factored(spec) else size
        m = spec.circuit.n_glomeruli if factored(spec) else 0
        first = dict(zip(DIRECTIONS, jax.random.split(jax.random.fold_in(base, 0), len(DIRECTIONS))))
        return None, Part(key=jax.random.key_data(base),
                          candidates={d: window(first[d], n, size, n, SHARED_ROWS) for d in DIRECTIONS},
                          score={d: jnp.zeros((n, sums), jnp.float32) for d in DIRECTIONS},
                          moment={d: jnp.zeros((n, m), jnp.float32) for d in DIRECTIONS},
                          origin={d: jnp.ones((n, k_max), bool) for d in DIRECTIONS},
                          events=jnp.zeros((), jnp.int32), turnover=jnp.zeros((), jnp.float32))

    def learn(self, spec: Any, world: Any, params: Any, state: Any, x: dict[str, jax.Array], n_steps: int) -> Part:
        """The scored rules add this chunk's breaths to their candidates' sums (the projection has learned the
        chunk already: its final weights enter the gradient)."""
        part = state.parts[NAME]
        if spec.rewiring.rule not in SCORED:
            return part
        x = scoring_breaths(x, state.breath, spec.rewiring.every, spec.rewiring.score_breaths)
        proj = state.parts[PROJECTION]
        gradient = spec.rewiring.rule == "gradient"
        af = params.circuit.active_fraction
        loop = chunked.loops(spec)
        if factored(spec):  # g only: the candidates are scored once, at the event
            return part.replace(moment={d: part.moment[d] + interval_factor(world.circuit, proj.masks[d],
                                                                             proj.weights[d], x, d, gradient, loop)
                                        for d in DIRECTIONS})
        sums = interval_sums(world.circuit, proj.masks, proj.weights, x, part.candidates, gradient, af,
                             share=SHARED_ROWS, loop=loop)
        return part.replace(score={d: part.score[d] + sums[d] for d in DIRECTIONS})

    def plan(self, spec: Any, n_steps: int) -> str:
        w = spec.rewiring
        how = "factored" if spec.circuit.activation == "linear" else "in blocks of breaths"
        over = f" over the last {w.score_breaths} breaths" if w.score_breaths else ""
        scored = f", scores {how}{over}" if w.rule in SCORED else ""
        return f"{w.rule} every {w.every} breaths, ζ = {w.fraction:g}, pool {pool(spec)}{scored}"

    def respond(self, *args, **kwargs):
        raise NotImplementedError("rewiring has no stage of the indirect response")

    def finite(self, part: Part) -> jax.Array:
        return jnp.isfinite(part.turnover)

    def bytes(self, cfg: Any) -> int:
        """Per direction: the origin flags (N·K_max), the candidates and their sums (N·pool · 8), and an event's
        temporaries (at most: an arbitrary pool against the slots, N·pool·K_max booleans, and the slot ranks);
        once, the activity of a block of breaths of the scored rules' sums (6·N floats per breath, nonlinear φ);
        the record's factors of the partner correlations, held over the run (:func:`probe_factors`: per side N·P
        floats, or 2·N·M for a linear cortex with M < P)."""
        c, w = cfg.circuit, cfg.rewiring
        k_max = sparse.slots(c.n_cortex, c.n_cortex, c.connection_prob, c.mask)
        r = max(1, round(w.fraction * k_max))
        size = min(w.candidates * r, c.n_cortex)
        n = c.n_cortex
        sums = (4 * SUMS_FLOATS * n * sums_block(n, cfg.run.record_every)
                if w.rule in SCORED and c.activation != "linear" else 0)
        z = 2 * 4 * n * (2 * c.n_glomeruli if factored_response(cfg, cfg.run.n_probe) else cfg.run.n_probe)
        return int(2 * n * (k_max * (1 + 3 * 4) + size * 8 + size * k_max + size * size) + sums + z)

    def advice(self, cfg: Any) -> str:
        return "rewiring does not diverge by itself; see the projection's advice (learning.lr)"

    def every(self, spec: Any) -> int:
        return spec.rewiring.every

    def event(self, spec: Any, world: Any, params: Any, state: Any) -> Any:
        """One rewiring event of every direction: the new masks, weights (0 at regrown synapses) and rule state."""
        return event(spec, world, state)


REWIRING = Rewiring()


# -- the interval's sums ------------------------------------------------------------------------


def scoring_breaths(x: dict[str, jax.Array], start: jax.Array, every: int, last: int) -> dict[str, jax.Array]:
    """The breaths of a chunk (``x[side]``: T × M, the first of them breath ``start``) that enter the scored rules'
    sums (``rewiring.score_breaths``): all where ``last`` = 0; else those among the ``last`` breaths before an event
    (breath b with b mod every ≥ every − last), taken from the chunk's final min(last, T) breaths — a chunk of
    the run never crosses an event (T ≤ every) — and the others of those set to 0, which adds nothing to the sums
    (φ(0) = 0 for every φ, so both y and ŷ vanish). The sums then cost ∝ min(last, T) per chunk."""
    if not last:
        return x
    t = next(iter(x.values())).shape[0]
    take = min(last, t) if t <= every else t
    breath = start + (t - take) + jnp.arange(take)
    keep = (breath % every >= every - last)[:, None]
    return {side: jnp.where(keep, v[t - take:], 0.0) for side, v in x.items()}


def interval_factor(circ: circuit.Circuit, mask: sparse.FanIn, weights: jax.Array, x: dict[str, jax.Array],
                    direction: str, gradient: bool, loop: bool = False) -> jax.Array:
    """g (N × M) with Σ_t a_i(t) y_pre,j(t) = g_i · J_pre,j for linear φ: g = J_post S_post,pre (Hebbian), minus
    V S_pre,pre (gradient; V = (W ⊙ C) J_pre by :func:`olfacto.model.sparse.project`, ``loop``: the compiled loop
    where XLA would gather), S_a,b = Σ_t x_a(t) x_b(t)ᵀ over the breaths ``x``."""
    j_post, j_pre = circ.J[post(direction)], circ.J[pre(direction)]
    x_post, x_pre = x[post(direction)], x[pre(direction)]
    g = jnp.matmul(j_post, jnp.matmul(x_post.T, x_pre, precision=HIGHEST), precision=HIGHEST)
    if gradient:
        v = sparse.project(weights, mask, j_pre, loop)
        g = g - jnp.matmul(v, jnp.matmul(x_pre.T, x_pre, precision=HIGHEST), precision=HIGHEST)
    return g


SUMS_BUDGET = 1 << 26
"""Floats of activity a block of breaths of :func:`interval_sums` holds (:data:`SUMS_FLOATS` · N per breath)."""
SUMS_FLOATS = 6
"""Floats per neuron and breath of a block of both directions' sums: both sides' direct responses, and per
direction ŷ and a."""


def sums_block(n: int, breaths: int) -> int:
    """Breaths per block of :func:`interval_sums` (nonlinear φ) at N = ``n`` over ``breaths``: equal blocks
    (:func:`olfacto.model.chunked.equal_parts`) of at most ``SUMS_BUDGET // (SUMS_FLOATS · N)``, or of at least
    ``chunked.MIN_SUB_BREATHS`` where that is fewer (short gathered rows are slow on XLA:CPU). Equal, since a
    shorter last block is a step of its own: 200 breaths at N = 10⁵ as 111 + 89 took 176 ms, as 2 × 100 144 ms."""
    return chunked.equal_parts(breaths, max(1, SUMS_BUDGET // (SUMS_FLOATS * n)), chunked.MIN_SUB_BREATHS)


def interval_sums(circ: circuit.Circuit, masks: dict, weights: dict, x: dict[str, jax.Array],
                  candidates: dict[str, jax.Array], gradient: bool, active_fraction: jax.Array,
                  block: int | None = None, share: int = 0, loop: bool = False) -> dict[str, jax.Array]:
    """Σ_t a_i(t) y_pre,j(t) over the breaths ``x`` for each neuron i and candidate j = ``candidates[d][i, c]`` of
    every direction d of ``candidates``, a = y_post (Hebbian) or y_post − ŷ (gradient), for a nonlinear φ (a
    linear one accumulates :func:`interval_factor` instead). In blocks of ``block`` breaths (default
    :func:`sums_block`): per block both sides' direct responses y = φ(J x) once (the two directions read the
    same two), then per direction the sampled product of a (N × T) and y_pre (N_pre × T) at the candidates, as
    the chunked learning's gather kernel computes it — or, with ``share`` (the candidates are windows shared by
    groups of so many rows), one dense product per group (:func:`shared_products`); ŷ by
    :func:`~olfacto.model.circuit.indirect` (``loop``: the compiled loop where XLA would gather). Tests hold both
    equal to the sum breath by breath."""
    sides = sorted({side for d in candidates for side in (post(d), pre(d))})

    def add(acc, xs):
        y = {side: circuit.direct_by_neuron(circ.J[side], xs[side], circ.activation, active_fraction)
             for side in sides}  # (N, T): no transposed copies
        out = {}
        for d, cand in candidates.items():
            y_post, y_pre = y[post(d)], y[pre(d)]
            a = y_post - circuit.indirect(weights[d], masks[d], y_pre.T, loop).T if gradient else y_post
            if share:
                out[d] = acc[d] + shared_products(a, wrapped(y_pre, cand.shape[1]), cand, share)
            else:
                out[d] = acc[d] + chunked.sddmm_gather(a, y_pre, cand)
        return out

    breaths = x[sides[0]].shape[0]
    block = sums_block(circ.J[sides[0]].shape[0], breaths) if block is None else min(block, breaths)
    zeros = {d: jnp.zeros(c.shape, jnp.float32) for d, c in candidates.items()}
    return chunked.scan_blocks(add, zeros, {side: x[side] for side in sides}, block)


# -- an event -----------------------------------------------------------------------------------


def cht_candidates(key: jax.Array, masks: dict[str, sparse.FanIn], direction: str, size: int,
                   count: jax.Array, loop: bool = False) -> tuple:
    """Endpoints j of ``size`` sampled length-3 paths i – u – v – j per receiving neuron i of ``direction``
    (i's partner u, a partner v of u in the opposite direction, a partner j of v, each through a uniform
    one of the node's K valid slots — a mask keeps its synapses in its first K slots), and each endpoint's
    score: how many of the neuron's paths end at it. ``count`` (per row, :func:`pool_of`): only the first
    so many paths are sampled (the row's pool), the others are not valid. A path's three slots come from
    :func:`path_bits` of one 32-bit draw per row (bias < K / 2²⁴), so the paths do not depend on how many
    slots or paths there are: a padded batch samples what a lone run does. ``loop``: by the compiled loop
    (:func:`olfacto.model.native.cht_paths`), the same to the bit."""
    fwd = masks[direction]
    back = masks[[d for d in DIRECTIONS if d != direction][0]]
    n = fwd.idx.shape[0]
    seeds = jax.random.bits(key, (n,), jnp.uint32)
    deg_f, deg_b = in_degree(fwd.valid), in_degree(back.valid)
    if loop:
        return native.cht_paths(fwd.idx, deg_f, back.idx, deg_b, seeds, count, size)
    deg_f, deg_b = deg_f.astype(jnp.uint32), deg_b.astype(jnp.uint32)
    b1, b2, b3 = (path_bits(seeds, size, step) for step in range(3))

    def through(bits, degree):  # a uniform valid slot, and whether the node has any
        # ⌊u·K⌋ with u the draw's top 24 bits: a float product, where a modulo by a traced K (an integer
        # division per slot) made the event 1.8× slower; bias < K / 2²⁴
        u = (bits >> 8).astype(jnp.float32) * jnp.float32(2.0 ** -24)
        k = degree.astype(jnp.float32)
        return jnp.minimum(jnp.floor(u * k), jnp.maximum(k - 1, 0)).astype(jnp.int32), degree > 0

    rows = jnp.arange(n)[:, None]
    s1, ok = through(b1, deg_f[:, None])
    u = fwd.idx[rows, s1]
    s2, has = through(b2, deg_b[u])
    v, ok = back.idx[u, s2], ok & has
    s3, has = through(b3, deg_f[v])
    j, ok = fwd.idx[v, s3], ok & has & (jnp.arange(size) < count[:, None])
    same = (j[:, :, None] == j[:, None, :]) & ok[:, None, :]
    return j, jnp.where(ok, same.sum(-1).astype(jnp.float32), -jnp.inf)


def mix32(x: jax.Array) -> jax.Array:
    """A 32-bit integer hash with low bias (Wellons' "lowbias32": xorshift-multiply rounds), on uint32."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def path_bits(seeds: jax.Array, size: int, step: int) -> jax.Array:
    """The 32 random bits of step ``step`` (0, 1, 2) of each row's paths 0 … ``size`` − 1 (rows × size):
    mix32(seed_i ⊕ mix32(3 q + step + 1)) — a counter-based hash of the row's threefry draw, where three
    threefry draws per path took 60 of an event's 83 ms per direction (N = 10⁵, 20 paths per row)."""
    counter = mix32(jnp.arange(size, dtype=jnp.uint32) * jnp.uint32(3) + jnp.uint32(step + 1))
    return mix32(seeds[:, None] ^ counter[None, :])


FUSED_REDUCTION = 32
"""The longest row reduction XLA:CPU fuses with what it reduces: a longer one becomes a reduce-window of 32 entries,
its input written out first (the valid slots as int32, the bit words of the window's partners). In slices, an
event at N = 10⁵, K = 50 (magnitude) went from 83 to 63 ms."""


def row_reduce(x: jax.Array, op: Any, init: Any) -> jax.Array:
    """``jax.lax.reduce(x, init, op, (last axis,))``, in slices of at most :data:`FUSED_REDUCTION` entries whose
    results are combined (``op`` associative and commutative)."""
    last = x.ndim - 1
    parts = [jax.lax.reduce(x[..., i:i + FUSED_REDUCTION], jnp.asarray(init, x.dtype), op, (last,))
             for i in range(0, x.shape[-1], FUSED_REDUCTION)]
    out = parts[0]
    for part in parts[1:]:
        out = op(out, part)
    return out


def in_degree(valid: jax.Array) -> jax.Array:
    """K_i, the valid slots of each row (int32)."""
    return row_reduce(valid.astype(jnp.int32), jax.lax.add, 0)


def prunes(valid: jax.Array, fraction: float) -> jax.Array:
    """r_i = round(ζ K_i), the synapses neuron i prunes per event (K_i its valid slots)."""
    return jnp.round(fraction * in_degree(valid)).astype(jnp.int32)


def pool_of(valid: jax.Array, fraction: float, per_pruned: int, size: int) -> jax.Array:
    """P_i = min(c · r_i, ``size``): the candidates neuron i draws per event (``size`` = :func:`pool`, the most
    any neuron of the Spec draws). Per neuron rather than the Spec's P, so that a run padded to more slots
    (a larger r_max) draws the same candidates as alone."""
    return jnp.minimum(per_pruned * prunes(valid, fraction), size)


IN_BOUNDS = "promise_in_bounds"  # gathers whose indices are in range by construction: no check, no fill

RANKED_POOL = 32
"""Rows up to this long are ordered by counting ranks (n² comparisons per row, vectorised) instead of XLA:CPU's
``top_k``, the same order. 10⁵ rows, the 5 … 8 largest of 20 … 32: 4.5–8.3 ms against top_k's 25–49; from 36
entries on the count stops fusing and takes 167–310 ms (measured)."""


def top(score: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """``jax.lax.top_k(score, k)`` along the last axis — the k largest, ties in index order — by counting each
    entry's rank, rank_c = #{c' : s_c' > s_c or (s_c' = s_c and c' < c)}, where the rows are short
    (≤ :data:`RANKED_POOL`); ``top_k`` otherwise."""
    size = score.shape[-1]
    if size > RANKED_POOL:
        return jax.lax.top_k(score, k)
    bits = jax.lax.bitcast_convert_type(score, jnp.int32)  # top_k's total order (−0 below +0) as integers
    key = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    pos = _first_smallest(~key, jnp.broadcast_to(jnp.arange(size), key.shape), k)  # ~key: the order reversed
    return jnp.take_along_axis(score, pos, -1, mode=IN_BOUNDS), pos


def _first_smallest(v: jax.Array, i: jax.Array, k: int) -> jax.Array:
    """Positions of the k smallest (v, i) pairs along the last axis, in order, by counting ranks (i distinct)."""
    a_v, b_v, a_i, b_i = v[..., :, None], v[..., None, :], i[..., :, None], i[..., None, :]
    rank = ((b_v < a_v) | ((b_v == a_v) & (b_i < a_i))).sum(-1)
    return ((rank[..., None, :] == jnp.arange(k)[:, None]) * jnp.arange(v.shape[-1])).sum(-1)


def group_size(k_max: int, k: int) -> int:
    """The group size s of :func:`smallest` for rows of ``k_max`` and the ``k`` smallest (0: use ``top_k``): a
    divisor of ``k_max`` (padding the rows cost more than it saved) with g = k_max / s ≥ k groups and both rank
    counts over at most :data:`RANKED_POOL` entries: one group per slot where rows are that short (N = 10⁵, K = 16:
    3.6 ms against 8.4 with s = 2 and top_k's 19), else the least g² + (k s)² comparisons (K = 50, k = 5: s = 2,
    14 ms; s = 5, 16 ms; top_k 41)."""
    if k_max <= RANKED_POOL:
        return 1
    fits = [s for s in range(1, k_max + 1)
            if k_max % s == 0 and k <= k_max // s <= RANKED_POOL and k * s <= RANKED_POOL]
    return min(fits, key=lambda s: (k_max // s) ** 2 + (k * s) ** 2, default=0)


def smallest(priority: jax.Array, k: int) -> jax.Array:
    """``jax.lax.top_k(-priority, k)[1]``: the slots of the k smallest priorities of each row, smallest first, ties
    in slot order — in two rounds of rank counting: the row's groups of s consecutive slots ranked by their
    smallest (value, slot), then the k·s slots of the k best groups. Exact: a group holding one of the k
    smallest has its minimum below that entry, and so do all groups ranked before it, each with a different
    entry, so fewer than k groups rank before it. N = 10⁵, K = 50, k = 5 (s = 2): 14 ms against top_k's 41."""
    rows, k_max = priority.shape
    size = group_size(k_max, k)
    if not size:
        return jax.lax.top_k(-priority, k)[1]
    groups = k_max // size
    v = priority.reshape(rows, groups, size)
    first = jnp.argmin(v, -1)  # the first smallest of each group: its (value, slot) is the group's key
    best = _first_smallest(jnp.min(v, -1), first + jnp.arange(groups) * size, k)  # (rows, k) groups
    # in bounds by construction: XLA:CPU fuses the gather into the rank count below, (k s)² reads per row, where
    # a bounds check and fill per read cost more than the count (with the window's modulo: an event 63 → 59 ms)
    vals = jnp.take_along_axis(v, best[:, :, None], 1, mode=IN_BOUNDS).reshape(rows, k * size)
    slots = (best[:, :, None] * size + jnp.arange(size)).reshape(rows, k * size)
    return jnp.take_along_axis(slots, _first_smallest(vals, slots, k), -1, mode=IN_BOUNDS)


BITSET_POOL = 128
"""Pools up to this size find their present partners as bit sets (:func:`taken_places`), larger ones by a scatter."""


def taken_places(place: jax.Array, size: int) -> jax.Array:
    """``invalid[i, c]``: whether some k has ``place[i, k] == c`` (rows × ``size``; places ≥ ``size`` are none).

    As one OR-reduction per 32 places, the bits 1 << (place mod 32) of the places in that word — a reduction over
    the row, where a scatter of N·K (row, place) pairs wrote 40 MB of indices first (≈ 12 ms of a 95 ms event at
    N = 10⁵, K = 50)."""
    rows = place.shape[0]
    if size > BITSET_POOL:
        flat = jnp.where(place < size, jnp.arange(rows)[:, None] * size + place, rows * size)
        return jnp.zeros(rows * size, bool).at[flat.ravel()].set(True, mode="drop").reshape(rows, size)
    bit = jnp.left_shift(jnp.uint32(1), (place % 32).astype(jnp.uint32))
    words = [row_reduce(jnp.where(place // 32 == w, bit, jnp.uint32(0)), jax.lax.bitwise_or, 0)
             for w in range(-(-size // 32))]  # places ≥ size fall in no word below size, or in bits ≥ size
    c = jnp.arange(size, dtype=jnp.uint32)
    return (jnp.stack(words, -1)[:, c // 32] >> (c % 32)) & 1 == 1


def regrow(idx: jax.Array, valid: jax.Array, priority: jax.Array, candidates: jax.Array, score: jax.Array | None,
           fraction: float, r_max: int, n_pre: int = 0, per_pruned: int | None = None) -> jax.Array:
    """The new partner of each slot, or -1 where the slot keeps its synapse (rows of neurons): :func:`regrowth`
    laid out by slot."""
    k_max = idx.shape[1]
    target, partner = regrowth(idx, valid, priority, candidates, score, fraction, r_max, n_pre, per_pruned)
    # slot k's new partner, or -1: the pruned slots are distinct, so at most one q hits k (a compare, not a scatter)
    hit = target[:, None, :] == jnp.arange(k_max)[:, None]  # (rows, K_max, r_max)
    return (hit * (partner + 1)[:, None, :]).sum(-1, dtype=idx.dtype) - 1


def regrowth(idx: jax.Array, valid: jax.Array, priority: jax.Array, candidates: jax.Array, score: jax.Array | None,
             fraction: float, r_max: int, n_pre: int = 0, per_pruned: int | None = None) -> tuple[jax.Array, jax.Array]:
    """(target, partner), both (rows, r_max): the q-th pruned slot of each row and its new partner, target = K_max
    (no slot) where the row prunes fewer than q + 1 synapses or no valid candidate is left for it.

    Slots are pruned in order of ``priority`` (smallest first; r_i = round(ζ K_i) of the K_i valid ones);
    candidates are valid unless already a partner or an earlier candidate of the same row, and the q-th
    pruned slot takes the q-th best valid candidate by ``score`` (``None``: the first valid ones in pool order,
    as a score decreasing along the pool ranks them). The slots' order comes from :func:`smallest` and the
    candidates' from :func:`top` (``top_k``'s orders; XLA:CPU's sort is ~20× slower at N = 10⁴, K = 50).
    ``n_pre`` > 0: the pools are windows (:func:`window`), which hold no candidate twice, and a partner's place
    in the window is found from its index (N·K work instead of the N·K·P comparisons of arbitrary pools).
    ``per_pruned`` = c: only the first :func:`pool_of` candidates of a row are its pool (default: all)."""
    rows, k_max = idx.shape
    # NaN (a diverged run) ranks last, as +∞, so the ranks stay a permutation and every slot index in range
    priority = jnp.where(valid & ~jnp.isnan(priority), priority, jnp.inf)
    slot = smallest(priority, r_max)  # (rows, r_max): the slots to prune, smallest priority first
    r_i = prunes(valid, fraction)
    size = candidates.shape[-1]
    if n_pre:
        offset = idx - candidates[:, :1]  # in (−n_pre, n_pre): mod n_pre by one select, not an integer division
        place = jnp.where(valid, jnp.where(offset < 0, offset + n_pre, offset), size)  # ≥ size: outside the window
        invalid = taken_places(place, size)
    else:
        present = ((candidates[:, :, None] == idx[:, None, :]) & valid[:, None, :]).any(-1)
        earlier = jnp.tril(jnp.ones((size, size), bool), -1)  # [c, c'] = c' < c
        invalid = present | ((candidates[:, :, None] == candidates[:, None, :]) & earlier).any(-1)
    if per_pruned is not None:
        invalid = invalid | (jnp.arange(size) >= pool_of(valid, fraction, per_pruned, size)[:, None])
    if score is None:  # the q-th valid candidate in pool order sits after q + 1 valid ones: N·P·r_max work, no sort
        # valid candidates up to and including c, as a product with a triangle (XLA:CPU's cumsum is a reduce-window)
        seen = jnp.matmul((~invalid).astype(jnp.float32), jnp.triu(jnp.ones((size, size), jnp.float32)))
        pos = (seen[:, None, :] <= jnp.arange(r_max)[:, None]).sum(-1)  # = size where fewer than q + 1 are valid
        found = pos < size
        pos = jnp.minimum(pos, size - 1)
    else:
        best, pos = top(jnp.where(invalid | ~jnp.isfinite(score), -jnp.inf, score), r_max)
        found = jnp.isfinite(best)
    partner = jnp.take_along_axis(candidates, pos, -1, mode=IN_BOUNDS)
    take = (jnp.arange(r_max) < r_i[:, None]) & found
    return jnp.where(take, slot, k_max).astype(jnp.int32), jnp.where(take, partner, 0).astype(idx.dtype)


def _at_slots(a: jax.Array, target: jax.Array, value: Any) -> jax.Array:
    """``a`` (rows × K_max) with ``value`` (a scalar or rows × r_max) written at the slots ``target`` (rows × r_max;
    K_max: none): XLA's path of an event (the compiled loop writes its own, :func:`olfacto.model.native.rewire`)
    and the rule state's reset. A scatter of the N·r_max regrown entries into the donated state, in place, where a
    select over all N·K_max entries wrote new arrays and then copied each into its donated buffer (22 of an event's
    91 ms; N = 10⁵, K = 50, magnitude: 95 → 83 ms with the scatter). Row by row (the row a batch dimension of the
    scatter), so a network sharded by rows scatters on each device alone: indexed by (row, slot) pairs, the
    partitioner gathered all N·r_max pairs to every device."""
    value = jnp.broadcast_to(jnp.asarray(value, a.dtype), target.shape)
    return jax.vmap(lambda row, t, v: row.at[t].set(v, mode="drop"))(a, target, value)


ROWS_PER_BLOCK = 1 << 10  # rows of an event handled at once where its temporaries grow with rows × pool × K_max


def event(spec: Any, world: Any, state: Any, loop: bool | None = None) -> Any:
    """Prune and regrow every direction once (see the module docstring); returns the new State. ``loop``: by the
    compiled loop (default: :func:`olfacto.model.chunked.loops`), the same state to the bit."""
    w = spec.rewiring
    loop = chunked.loops(spec) if loop is None else loop
    proj, part = state.parts[PROJECTION], state.parts[NAME]
    e = part.events + 1
    keys = dict(zip(DIRECTIONS, jax.random.split(_keys(part, e), len(DIRECTIONS))))
    r_max, size = pruned(spec), pool(spec)
    masks, weights, origin = dict(proj.masks), dict(proj.weights), dict(part.origin)
    candidates, score, moment = dict(part.candidates), dict(part.score), dict(part.moment)
    taken, total = [], []
    regrown, choices, windows_of = {}, {}, {}
    for d in DIRECTIONS:  # every direction's candidates first: CHT's read both directions' masks before any event
        mask, n = masks[d], masks[d].idx.shape[0]
        k_prune, k_cand, k_next = jax.random.split(keys[d], 3)
        if w.rule == "random":  # per row, so a padded run prunes what a lone one does
            priority = sparse.row_draws(k_prune, n, lambda r: jax.random.uniform(r, mask.idx.shape[1:]))
        else:
            priority = None  # |W|
        windows = mask.n_pre
        count = pool_of(mask.valid, w.fraction, w.candidates, size)
        if w.rule in ("random", "magnitude"):  # iid draws: the first valid ones (the loop reads the offsets only)
            cand = offsets(k_cand, n, mask.n_pre) if loop else window(k_cand, n, size, mask.n_pre)
            sc = None
        elif w.rule in SCORED and factored(spec):  # |g_i · J_pre,j|: the interval's sums at the candidates
            cand = candidates[d]
            sc = jnp.abs(shared_products(moment[d], wrapped(world.circuit.J[pre(d)], size), cand, SHARED_ROWS))
        elif w.rule in SCORED:
            cand, sc = candidates[d], jnp.abs(score[d])
        else:
            cand, sc = cht_candidates(k_cand, proj.masks, d, size, count, loop)
            windows = 0
        choices[d] = (priority, cand, sc, count)
        windows_of[d] = windows
        if w.rule in SCORED:
            candidates[d] = window(k_next, n, size, mask.n_pre, SHARED_ROWS)
            score[d] = jnp.zeros_like(score[d])
            moment[d] = jnp.zeros_like(moment[d])
    # what each loop waits for before it writes its direction's masks in place: every direction's CHT candidates,
    # which read both masks (else XLA ran one direction's event between the two and copied the indices for it)
    after = jnp.concatenate([choices[d][1][:1, 0] for d in DIRECTIONS]) if loop and w.rule == "cht" else None
    for d in DIRECTIONS:
        mask = masks[d]
        (priority, cand, sc, count), windows = choices[d], windows_of[d]
        if loop:  # the loop writes the regrown synapses into the donated state itself
            weights[d], idx, origin[d], target = native.rewire(
                weights[d], mask.idx, origin[d], mask.valid, priority, cand[:, :1] if windows else cand, sc,
                prunes(mask.valid, w.fraction), count, r_max, mask.n_pre, size, bool(windows), after)
            masks[d] = mask.replace(idx=idx)
        else:
            priority = jnp.abs(weights[d]) if priority is None else priority

            def one_block(idx_b, valid_b, prio_b, cand_b, sc_b, windows=windows):
                return regrowth(idx_b, valid_b, prio_b, cand_b, sc_b, w.fraction, r_max, windows, w.candidates)

            # an arbitrary pool's comparisons with the slots (cht) take rows × P × K_max: so many rows at a time;
            # a window pool's temporaries are rows × P × (r_max + P): all rows at once
            rows = ROWS_PER_BLOCK if not windows else mask.idx.shape[0]
            target, partner = chunked.map_rows(one_block, (mask.idx, mask.valid, priority, cand, sc), rows)
            masks[d] = mask.replace(idx=_at_slots(mask.idx, target, partner))
            weights[d] = _at_slots(weights[d], target, 0.0)
            origin[d] = _at_slots(origin[d], target, False)
        regrown[d] = target
        taken.append((target < mask.idx.shape[1]).sum())
        total.append(in_degree(mask.valid).sum())

    def reset(leaf, d):  # the rule's per-synapse state (momentum, Adam's moments) starts at 0 too
        if hasattr(leaf, "shape") and leaf.shape == weights[d].shape:
            return _at_slots(leaf, regrown[d], 0)
        return leaf

    rule_state = {d: jax.tree.map(lambda leaf, d=d: reset(leaf, d), proj.rule_state[d]) for d in DIRECTIONS}
    turnover = (sum(taken) / jnp.maximum(sum(total), 1)).astype(jnp.float32)
    parts = {**state.parts,
             PROJECTION: proj.replace(masks=masks, weights=weights, rule_state=rule_state),
             NAME: part.replace(candidates=candidates, score=score, moment=moment, origin=origin, events=e, turnover=turnover)}
    return state.replace(parts=parts)


# -- measures -----------------------------------------------------------------------------------


def _partner_correlation(u_post: jax.Array, v_pre: jax.Array, idx: jax.Array, valid: jax.Array,
                         loop: bool = False) -> jax.Array:
    """Mean |corr| over the valid slots of each neuron i's response with its partner j = idx[i, k]'s, as the sampled
    product u_post[i] · v_pre[j] of their rows of :func:`probe_factors` — by the compiled loop with ``loop``
    (:func:`olfacto.model.native.sddmm`), else XLA's gather kernel (a record at N = 10⁵, K = 50, 100 probes: 2.1 s
    slot column by column, docs/benchmarks.md §26)."""
    cols = chunked.sddmm(u_post, v_pre, idx, "numba" if loop else "gather")
    return jnp.sum(jnp.where(valid, jnp.abs(cols), 0.0)) / jnp.maximum(valid.sum(), 1)


def _random_partners(mask: sparse.FanIn, i: int) -> jax.Array:
    """The record's fixed random partners of direction ``i`` (the same for every record and run)."""
    return sparse.row_draws(jax.random.key(i), mask.idx.shape[0],
                            lambda r: jax.random.randint(r, mask.idx.shape[1:], 0, mask.n_pre, jnp.int32))


def probe_factors(spec: Any, world: Any) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """(U, V) by side, rows such that U_post[i] · V_pre[j] is the correlation over the probes of neuron i's direct
    response with neuron j's: the standardized responses z (:func:`olfacto.model.measures.standardized_neurons`,
    P floats a row) for both — or, for a linear cortex with fewer glomeruli than probes, U = J S / ‖c‖ and
    V = J / ‖c‖ (M floats a row; S = Σ_p (x_p − x̄)(x_p − x̄)ᵀ, c = J (x − x̄) the centred responses, whose norms
    :func:`~olfacto.model.measures.centring` gives), since z_i · z_j = J_i S J_jᵀ / (‖c_i‖ ‖c_j‖): each sampled
    product of the partners then gathers M floats per synapse instead of P (M = 50, P = 100: 0.10 → 0.05 s per
    direction at N = 10⁵, K = 50, docs/benchmarks.md §28)."""
    sides = sorted(world.y)
    x = world.probes
    if not factored_response(spec, x.shape[0]):
        z = {side: measures.standardized_neurons(world.y[side]) for side in sides}
        return z, z
    c = x - measures.centring(x)[0]
    scatter = jnp.matmul(c.T, c, precision=HIGHEST)
    u, v = {}, {}
    for side in sides:
        j, norm = world.circuit.J[side], measures.centring(world.y[side])[1].T
        u[side], v[side] = jnp.matmul(j, scatter, precision=HIGHEST) / norm, j / norm
    return u, v


def random_partner_correlation(spec: Any, world: Any, state: Any, factors: tuple | None = None) -> jax.Array:
    """The reference of :func:`measure`'s ``partner_correlation``: the same mean |corr| for as many random partners
    as each neuron has synapses (a fixed draw), mean of both directions. Fixed over a run — the probes' responses
    are, and an event changes which partners a neuron has, never how many (its valid slots) —, so the record
    computes it once per run (:func:`record_constants`). ``factors``: of :func:`probe_factors`, when known."""
    masks, loop = state.parts[PROJECTION].masks, chunked.loops(spec)
    u, v = probe_factors(spec, world) if factors is None else factors
    rand = [_partner_correlation(u[post(d)], v[pre(d)], _random_partners(masks[d], i), masks[d].valid, loop)
            for i, d in enumerate(DIRECTIONS)]
    return (rand[0] + rand[1]) / 2


def record_constants(spec: Any, world: Any, params: Any, state: Any) -> dict[str, Any]:
    """What the rewiring's record needs that stays fixed over a run (:class:`olfacto.engine.records.Record`
    ``constants``): the probes' factors of the correlations, ``U`` and ``V`` by side (:func:`probe_factors`; as
    standardized responses 58 ms per record at N = 10⁵, 100 probes), and the ``reference``,
    :func:`random_partner_correlation` (0.28 s)."""
    u, v = probe_factors(spec, world)
    return {"U": u, "V": v, "reference": random_partner_correlation(spec, world, state, (u, v))}


def measure(spec: Any, world: Any, params: Any, state: Any, constants: dict[str, Any] | None = None) -> dict[str, jax.Array]:
    """The rewiring's record: turnover at the last event, survival of the breath-0 synapses, events, and how
    informative the partners are — the mean |corr| (over the probes) of a neuron's direct response with its
    partners', against as many random partners (the reference). ``constants``: of :func:`record_constants`,
    computed here when not given."""
    proj, part = state.parts[PROJECTION], state.parts[NAME]
    loop = chunked.loops(spec)
    constants = record_constants(spec, world, params, state) if constants is None else constants
    u, v = constants["U"], constants["V"]
    chosen, alive, total = [], [], []
    for d in DIRECTIONS:
        mask = proj.masks[d]
        chosen.append(_partner_correlation(u[post(d)], v[pre(d)], mask.idx, mask.valid, loop))
        alive.append((part.origin[d] & mask.valid).sum())
        total.append(in_degree(mask.valid).sum())
    return {"rewiring_turnover": part.turnover,
            "rewiring_survival": (sum(alive) / jnp.maximum(sum(total), 1)).astype(jnp.float32),
            "rewiring_events": part.events.astype(jnp.float32),
            "partner_correlation": (chosen[0] + chosen[1]) / 2,
            "random_partner_correlation": constants["reference"]}
