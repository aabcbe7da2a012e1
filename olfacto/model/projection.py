"""The learned inter-hemispheric projection, a component of the network (:mod:`.component`).

Per direction d (``"L_to_R"``: an odor at the left nostril read in the right cortex), a fixed
random mask C_d (``circuit.mask``, p = ``circuit.connection_prob``, K_max slots per row,
:mod:`olfacto.model.sparse`) and learned weights W_d on it, in slot form (N, K_max). Its stage of
the indirect response is the one definition of it (:func:`olfacto.model.circuit.indirect`)::

    ŷ_d = (W_d ⊙ C_d) y_pre(d)

Its plasticity is its rule (:mod:`olfacto.model.rules`, ``learning.rule``): per breath, or —
for a local rule — one exact chunked update per chunk of breaths (:mod:`olfacto.model.chunked`,
``run.plasticity``). Random streams (kept from olfacto 0.1, so runs are reproduced): the masks
take the last two of the four subkeys of the run key's first split (the circuit's J the first
two), the initial weights the fifth subkey of that split.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from . import chunked, circuit, native, rules, sparse
from .circuit import DIRECTIONS, post, pre
from .precision import HIGHEST

NAME = "projection"


@struct.dataclass
class Anatomy:
    """The fixed masks C by direction."""

    masks: dict[str, sparse.FanIn]


@struct.dataclass
class Learned:
    """The weights W by direction in slot form (N, K_max), the rule's state by direction, and — when the
    synapses rewire (:mod:`.rewiring`) — the masks themselves (else None: they are fixed, in the Anatomy)."""

    weights: dict[str, jax.Array]
    rule_state: dict[str, Any]
    masks: dict[str, sparse.FanIn] | None = None


def rewires(spec: Any) -> bool:
    """Whether the masks are learned state (``rewiring.rule`` other than none) rather than fixed anatomy."""
    return spec.rewiring.rule != "none"


def masks_of(world: Any, part: Learned) -> dict[str, sparse.FanIn]:
    """The current masks C by direction: the learned ones when they rewire, else the fixed ones."""
    return part.masks if part.masks is not None else world.anatomy[NAME].masks


def mask_keys(key: jax.Array) -> dict[str, jax.Array]:
    """The masks' keys by direction, from the run key (subkeys 3, 4 of the split of its first subkey)."""
    k_circ = jax.random.split(key, 5)[0]
    _, _, k_l_to_r, k_r_to_l = jax.random.split(k_circ, 4)
    return {"L_to_R": k_l_to_r, "R_to_L": k_r_to_l}


def rule_of(spec: Any) -> rules.Rule:
    return rules.rule(spec.learning.rule)


def transform_of(spec: Any, params: Any) -> rules.Transform:
    return rule_of(spec).per_breath(params.learning, spec.learning.optimizer)


def chunk_plan(spec: Any, n_steps: int) -> chunked.Plan:
    """How a chunk of ``n_steps`` updates learns, from ``run.plasticity`` and the shapes."""
    c = spec.circuit
    native_step = spec.learning.rule == "sgd" and spec.learning.optimizer == "sgd"  # native.sgd_block's rule
    return chunked.plan(spec.run.plasticity, rule_of(spec), c.activation, c.n_cortex, spec.projection.slots,
                        c.n_glomeruli, n_steps, spec.learning.batch, sharded=c.shard, native_step=native_step)


class Projection:
    """The learned projection W_{R←L}, W_{L←R}: masks, weights, rule."""

    name = NAME
    stage = "y_hat"
    activated = False

    def static(self, cfg: Any) -> dict[str, Any]:
        c = cfg.circuit
        return {"projection.slots": sparse.slots(c.n_cortex, c.n_cortex, c.connection_prob, c.mask)}

    def padding(self, cfg: Any) -> dict[str, int]:
        """The mask may be padded: its synapses do not depend on K_max, nor do a rewiring event's draws (per neuron,
        :mod:`olfacto.model.rewiring`)."""
        return {"projection.slots": cfg.circuit.n_cortex}

    def pad_cost(self, cfg: Any) -> dict[str, float]:
        """The work one more slot per row adds to a run (slot passes, both directions): its mask's draw
        (:data:`DRAW_PASSES`), its learning's passes (:func:`olfacto.model.chunked.slot_passes`: every breath per
        breath, M + the rule's factors per sub-chunk for a linear cortex's factored chunks) and its records' (a
        pass per probe, M through J)."""
        c, lrn, run = cfg.circuit, cfg.learning, cfg.run
        spec, n_steps, how = self._recording_chunk(cfg)
        learn = chunked.slot_passes(how, n_steps, lrn.batch, c.n_glomeruli + rule_of(spec).extra_factors)
        per_record = c.n_glomeruli if factored_response(spec, run.n_probe) else run.n_probe
        n_records = run.n_breaths // run.record_every + 1
        return {"projection.slots": 2.0 * c.n_cortex * (DRAW_PASSES + run.n_breaths / run.record_every * learn
                                                         + n_records * per_record)}

    def active(self, spec: Any) -> bool:
        return True

    def init(self, spec: Any, key: jax.Array, params: Any, circ: circuit.Circuit) -> tuple[Anatomy, Learned]:
        c, k_max = spec.circuit, spec.projection.slots
        keys = mask_keys(key)
        masks = {d: sparse.sample_mask(keys[d], c.n_cortex, c.n_cortex, params.circuit.connection_prob, c.mask,
                                       k_max) for d in DIRECTIONS}
        keys_w = dict(zip(DIRECTIONS, jax.random.split(jax.random.split(key, 5)[4])))
        # std init_scale/√K with K = pN the mean in-degree; one key per row, so a row's initial weights
        # do not depend on the slot count (a padded batch starts from the same W as a lone run)
        scale = params.learning.init_scale / jnp.sqrt(jnp.maximum(params.circuit.connection_prob * c.n_cortex, 1.0))
        weights = {d: jnp.where(masks[d].valid, scale * sparse.row_draws(
            keys_w[d], c.n_cortex, lambda r: jax.random.normal(r, (k_max,))), 0.0) for d in DIRECTIONS}
        transform = transform_of(spec, params)
        rule_state = {d: transform.init(weights[d]) for d in DIRECTIONS}
        if rewires(spec):  # the masks are learned state: kept once, in the State
            return Anatomy(None), Learned(weights, rule_state, masks)
        return Anatomy(masks), Learned(weights, rule_state)

    def learn(self, spec: Any, world: Any, params: Any, state: Any, x: dict[str, jax.Array], n_steps: int) -> Learned:
        part = state.parts[NAME]
        masks = masks_of(world, part)
        b, af = spec.learning.batch, params.circuit.active_fraction
        how = chunk_plan(spec, n_steps)
        if how.path == "chunked":  # the same updates as one exact chunked product
            weights, rule_state = chunked.advance(how, rule_of(spec), world.circuit, masks, part.weights,
                                                  part.rule_state, x, params.learning, af, b)
            return part.replace(weights=weights, rule_state=rule_state)
        if how.kernel == "numba":  # per-breath SGD by the compiled loop, a block of breaths per call
            lr = params.learning.lr

            def block_step(p: Learned, y: dict[str, jax.Array]) -> Learned:
                return p.replace(weights={d: native.sgd_block(p.weights[d], masks[d].idx, masks[d].valid,
                                                              y[pre(d)], y[post(d)], lr) for d in DIRECTIONS})

            return circuit.scan_responses(world.circuit, x, af, n_steps, b, None, part, block_step=block_step)
        transform = transform_of(spec, params)

        def step(p: Learned, y: dict[str, jax.Array]) -> tuple[Learned, None]:
            new = {d: transform.update(p.weights[d], p.rule_state[d], masks[d], y[pre(d)], y[post(d)])
                   for d in DIRECTIONS}
            return p.replace(weights={d: p.weights[d] + new[d][0] for d in DIRECTIONS},
                             rule_state={d: new[d][1] for d in DIRECTIONS}), None

        return circuit.scan_responses(world.circuit, x, af, n_steps, b, step, part)

    def plan(self, spec: Any, n_steps: int) -> str:
        return chunk_plan(spec, n_steps).describe()

    def respond(self, spec: Any, world: Any, params: Any, state: Any, upstream: Any, y: dict[str, jax.Array],
                directions: tuple[str, ...] = DIRECTIONS, x: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]:
        """ŷ = (W ⊙ C) y_pre per direction. Given the inputs ``x`` of a linear cortex (y_pre = J_pre x) and M < P:
        ŷ = x ((W ⊙ C) J_pre)ᵀ, a sparse product with M columns instead of P and a GEMM — equal to float32
        rounding (≤ 4·10⁻⁷ of max |ŷ| measured); 2× faster at N = 10⁵, K = 50, P = 100, M = 50
        (docs/benchmarks.md §14), 2–3× at N = 2,000 (§19)."""
        masks, weights = masks_of(world, state.parts[NAME]), state.parts[NAME].weights
        out = {}
        for d in directions:
            if x is not None and factored_response(spec, x[pre(d)].shape[0]):
                g_t = sparse.matmat(weights[d], masks[d], world.circuit.J[pre(d)].T)  # (M, N_post)
                out[d] = jnp.matmul(x[pre(d)], g_t, precision=HIGHEST)
            else:
                out[d] = circuit.indirect(weights[d], masks[d], y[pre(d)])
        return out

    def respond_squares(self, spec: Any, world: Any, params: Any, state: Any, y: dict[str, jax.Array],
                        x: dict[str, jax.Array] | None = None,
                        directions: tuple[str, ...] = DIRECTIONS) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
        """(ŷ, q) per direction: ŷ as :meth:`respond` gives it (within float32 round-off) and q = C y_pre²
        (:func:`olfacto.model.measures.presynaptic_sums`) of the current masks, both (P, N) — what a record needs
        when the masks rewire (q is not fixed then). Where the compiled loop runs (:func:`chunked.loops`) and the
        product gathers, both come from one pass over the synapses (:func:`olfacto.model.sparse.project_squares`),
        ŷ through the probes' responses even for a linear cortex (the pass is paid for q; its route through J
        would be a second); else :meth:`respond` and a second product."""
        masks, weights, loop = masks_of(world, state.parts[NAME]), state.parts[NAME].weights, chunked.loops(spec)
        y_hat, q, rest = {}, {}, []
        for d in directions:
            if sparse.by_loop(masks[d], y[pre(d)].shape[0], loop):
                y_hat[d], q[d] = sparse.project_squares(weights[d], masks[d], y[pre(d)], loop)
            else:
                q[d] = sparse.squares(masks[d], y[pre(d)])
                rest.append(d)
        if rest:
            y_hat.update(self.respond(spec, world, params, state, None, y, tuple(rest), x))
        return {d: y_hat[d] for d in directions}, q

    def finite(self, part: Learned) -> jax.Array:
        """All weights and their squares finite. A weight beyond √(float32 max) ≈ 1.8e19 counts as diverged:
        its square, in every loss and norm measured, overflows — the chunked update can reach such weights
        without an inf that the breath-by-breath path would have produced."""
        return jnp.stack([jnp.isfinite(jnp.sum(w * w)) for w in part.weights.values()]).all()

    def bytes(self, cfg: Any) -> int:
        """Both directions' slots — index (int32), valid (bool), W (float32), the rule's state and about
        three float32 temporaries per slot while a step runs —, the mask draw (a dense permutation
        above p = 1/2, else the sorted draws) and the chunked update's streams and dense product (per
        breath: the block of direct responses computed ahead)."""
        c, lrn = cfg.circuit, cfg.learning
        n = c.n_cortex
        k = sparse.slots(n, n, c.connection_prob, c.mask)
        slots = n * k
        rule = rules.rule(lrn.rule)
        per_slot = 4 + 1 + 4 + 4 * rule.state_floats(cfg) + 3 * 4
        draw = 8 * n * n if 2 * k > n else 3 * 4 * slots
        _, n_steps, how = self._recording_chunk(cfg)
        work = chunked.work_bytes(how, rule, n, lrn.batch, n_steps)
        return int(2 * slots * per_slot + draw + work)

    def _recording_chunk(self, cfg: Any) -> tuple[Any, int, chunked.Plan]:
        """The Spec of ``cfg`` as far as this component reads it, the updates of a recording chunk and how it
        learns them (:meth:`bytes` and :meth:`pad_cost` read both)."""
        from ..config.tree import nest, static_values

        spec = nest({**static_values(cfg), **self.static(cfg)})
        n_steps = cfg.run.record_every // cfg.learning.batch
        return spec, n_steps, chunk_plan(spec, n_steps)

    def advice(self, cfg: Any) -> str:
        return rules.rule(cfg.learning.rule).divergence_advice(cfg)


PROJECTION = Projection()


DRAW_PASSES = 1000
"""What drawing one slot of one row of a mask costs, in slot passes (:meth:`Projection.pad_cost`): 150–300 ns
measured at N = 10³ … 2·10⁴ (:func:`olfacto.model.sparse.sample_mask`, its repeats redrawn and its rows
sorted), up to 700 ns as K_max nears N/2 (N = 1,000, K_max = 460) — 1,000 passes of 0.2–0.6 ns. A run that
learns little (the model fit's 2,000 breaths in one factored chunk) pays mostly this for its padding: without
it the fit's 90 runs padded to K = 400's slots in one batch, 110 → 254 s (docs/benchmarks.md §22)."""


def factored_response(spec: Any, n_inputs: int) -> bool:
    """Whether :meth:`Projection.respond` computes ŷ of ``n_inputs`` inputs through J_pre (linear φ, fewer
    glomeruli than inputs: either kernel of :func:`~olfacto.model.sparse.matmat` costs less with fewer columns) —
    and the rewiring record its partner correlations (:func:`olfacto.model.rewiring.probe_factors`). ``spec``:
    a Spec or a Config (both have ``circuit``)."""
    return spec.circuit.activation == "linear" and spec.circuit.n_glomeruli < n_inputs


def hebbian_fixed_point(circ: circuit.Circuit, masks: dict[str, sparse.FanIn], decay: jax.Array) -> dict:
    """W_H = C ⊙ J_post J_preᵀ / λ per direction, in slot form: the exact Hebbian fixed point of a drawn
    circuit for linear φ and white odors (E[y_post y_preᵀ] = J_post J_preᵀ)."""
    return {d: jnp.where(masks[d].valid, jnp.einsum("im,ikm->ik", circ.J[post(d)], circ.J[pre(d)][masks[d].idx],
                                                       precision=HIGHEST), 0.0)
            / decay for d in DIRECTIONS}
