"""The simulated network: the bilateral circuit, its odor environment and its components.

A run's network is a :class:`World` — what stays fixed: the bulb→cortex circuit J_L, J_R
(:mod:`.circuit`), each component's anatomy (masks), the odor environment, the probe odors and
their direct responses, the breath stream's key — and a :class:`State` — what learning changes:
each component's learned part, and the breaths done. Both hold the components by name
(:data:`COMPONENTS`: the learned projection, the recurrence, …; :mod:`.component` says what one
is), so this module never names one: a component is active when its config says so, and only
then present.

The functions here are the model's verbs, on one run (the engine vmaps and compiles them):
:func:`init` draws a network from its key, :func:`learn` runs a chunk of breaths (every active
component learns from the same breaths), :func:`indirect` is the indirect response stage by
stage (ŷ from the projection, then z_T from the recurrence, …), :func:`views` what the measures
see, :func:`finite` the divergence check of every component.

Random streams: ``split(run key, 5)`` → circuit (J, and the projection's masks), environment,
probes, breath stream, initial weights; other components fold their own constant into the run
key (:mod:`.recurrence`: 7); the bulb transform folds 11.
"""

from __future__ import annotations

import inspect
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from . import circuit as circuit_mod
from . import measures, odors
from .circuit import DIRECTIONS, SIDES, post, pre
from .projection import PROJECTION
from .recurrence import RECURRENCE
from .rewiring import REWIRING

COMPONENTS = (PROJECTION, RECURRENCE, REWIRING)
"""The network's components, in the order of the indirect pathway (each stage refines the one before; a
component without a stage, like the rewiring of the projection's synapses, learns after the others)."""

BULB_STREAM = 11  # folded into the run key for the bulb transform's statistics


def _flat_spec(cfg: Any) -> dict[str, Any]:
    from ..config.tree import static_values

    flat = static_values(cfg)
    for component in COMPONENTS:
        flat.update(component.static(cfg))
    return flat


def spec_of(cfg: Any, slots: dict[str, int] | None = None):
    """The compiled part of ``cfg`` (a hashable :data:`olfacto.config.tree.Spec`): its ``static`` keys and the
    shapes each component derives from the config (``spec.projection.slots`` = K_max, ``spec.recurrence.slots``).
    ``slots``: slot counts to raise to (a padded batch, :func:`batch_spec`); each must be one of
    :func:`padding`'s keys and at least the config's own."""
    from ..config.tree import nest

    flat = _flat_spec(cfg)
    for key, k in (slots or {}).items():
        if key not in padding(cfg) or k < flat[key]:
            raise ValueError(f"spec_of: {key}={k} cannot pad this config (its own: {flat.get(key)}; "
                             f"paddable: {sorted(padding(cfg))})")
        flat[key] = int(k)
    return nest(flat)


def padding(cfg: Any) -> dict[str, int]:
    """The slot counts of ``cfg`` that a batch may raise to its largest, by Spec key → N_pre: masks whose
    synapses do not depend on their slot count (:func:`olfacto.model.sparse.sample_mask`)."""
    out: dict[str, int] = {}
    for component in COMPONENTS:
        out.update(getattr(component, "padding", lambda cfg: {})(cfg))
    return out


def pad_cost(cfg: Any) -> dict[str, float]:
    """By :func:`padding` key, the work one more slot per row adds to a run of ``cfg`` (slot passes): the
    component's ``pad_cost`` where it has one, else a pass per row, side and breath."""
    out: dict[str, float] = {}
    for component in COMPONENTS:
        keys = getattr(component, "padding", lambda cfg: {})(cfg)
        if keys:
            own = getattr(component, "pad_cost", None)
            out.update(own(cfg) if own else {k: 2.0 * cfg.circuit.n_cortex * cfg.run.n_breaths for k in keys})
    return out


def slots_of(cfg: Any) -> dict[str, int]:
    """The slot counts of ``cfg`` a batch may pad (:func:`padding`'s keys), by Spec key."""
    return batch_key(cfg)[1]


def shape_key(cfg: Any):
    """What configs must share to run as one batch: their Spec, less the slot counts a batch pads (only the
    way each mask is drawn, :func:`olfacto.model.sparse.dense_draw`, must agree). Equal for the points of a
    sweep over p, so they compile once (:func:`batch_spec`)."""
    return batch_key(cfg)[0]


def batch_key(cfg: Any) -> tuple[Any, dict[str, int]]:
    """:func:`shape_key` and :func:`slots_of` of ``cfg``, from one derivation of its Spec."""
    from ..config.tree import nest

    from . import sparse

    flat, pads = _flat_spec(cfg), padding(cfg)
    slots = {key: flat[key] for key in pads}
    for key, n_pre in pads.items():
        flat[key] = ("padded", sparse.dense_draw(flat[key], n_pre))
    return nest(flat), slots


def batch_spec(configs: list, slots: dict[str, int] | None = None) -> Any:
    """The Spec one batch of ``configs`` (equal :func:`shape_key`) compiles: each padded slot count the
    largest of its configs' — or of ``slots``, when larger (a sweep's group cut into several batches pads
    each to the group's largest, so that every batch compiles the one program)."""
    specs = [_flat_spec(c) for c in configs] + [dict(slots or {})]
    return spec_of(configs[0], {key: max(s.get(key, 0) for s in specs) for key in padding(configs[0])})


def active(spec: Any) -> tuple:
    """The components this Spec uses, in pathway order."""
    return tuple(c for c in COMPONENTS if c.active(spec))


def staged(spec: Any) -> tuple:
    """The active components that are a stage of the indirect response, in pathway order."""
    return tuple(c for c in active(spec) if c.stage is not None)


def events(spec: Any) -> dict[str, int]:
    """The active components with structural events (:meth:`every`, :meth:`event`): breaths between two."""
    return {c.name: c.every(spec) for c in active(spec) if hasattr(c, "event")}


def event(spec: Any, world: World, params: Any, state: State, name: str) -> State:
    """Component ``name``'s structural event (e.g. the rewiring of the projection's synapses)."""
    return component(name).event(spec, world, params, state)


def active_names(spec: Any) -> frozenset[str]:
    return frozenset(c.name for c in active(spec))


@struct.dataclass
class World:
    """What stays fixed during a run."""

    circuit: circuit_mod.Circuit
    anatomy: dict[str, Any]  # each active component's fixed part, by name
    env: odors.Environment
    probes: jax.Array  # (P, M)
    y: dict[str, jax.Array]  # direct responses to the probes by side, (P, N): fixed, so computed once
    stream: jax.Array  # PRNG key of the breath stream
    # by direction, Σ_{j∈C_i} y_pre,j² on the probes (update alignment): fixed too, so computed once
    q: dict[str, jax.Array] | None = None
    # a breath stream given from Python (odors.Stream): its odors and nostril schedule replace the draw
    inputs: odors.Stream | None = None

    @property
    def masks(self) -> dict:
        """The projection's fixed masks C by direction (when the synapses rewire they are learned state:
        :func:`masks`)."""
        masks = self.anatomy[PROJECTION.name].masks
        if masks is None:
            raise AttributeError("the projection's masks rewire (rewiring.rule): they are learned state, "
                                 "olfacto.model.network.masks(world, state)")
        return masks


@struct.dataclass
class State:
    """What learning changes: each active component's learned part by name, and the breaths done."""

    parts: dict[str, Any]
    breath: jax.Array

    @property
    def weights(self) -> dict:
        """The projection's weights W by direction (slot form)."""
        return self.parts[PROJECTION.name].weights


def environment(spec: Any, key: jax.Array, params: Any, library: jax.Array | None = None) -> tuple[Any, jax.Array]:
    """A run's odor environment and its breath stream's key (the second and fourth of ``split(run key, 5)``, as
    :func:`init` draws them), without drawing the rest of the network."""
    c, o = spec.circuit, spec.odors
    _, k_env, _, k_stream, _ = jax.random.split(key, 5)
    env = odors.make_environment(k_env, o.kind, c.n_glomeruli, o.n_base, o.n_components, params.odors.sparsity,
                                 library)
    if o.bulb != "none":  # its own key (folded in): the draws above are those of a run without it
        env = odors.with_bulb(env, o.bulb, jax.random.fold_in(key, BULB_STREAM), params.odors)
    return env, k_stream


def init(spec: Any, key: jax.Array, params: Any, library: jax.Array | None = None,
         inputs: odors.Stream | None = None) -> tuple[World, State]:
    """Draw a run's network from its key; every component starts from its initial state. ``inputs``: a breath
    stream given from Python (:class:`olfacto.model.odors.Stream`), in place of the environment's draws."""
    c = spec.circuit
    k_circ, _, k_probe, _, _ = jax.random.split(key, 5)
    circ = circuit_mod.make_circuit(k_circ, c.n_cortex, c.n_glomeruli, c.projection, params.circuit.projection_density,
                                    c.activation)
    env, k_stream = environment(spec, key, params, library)
    probes = odors.sample_odors(k_probe, env, params.odors, spec.run.n_probe)
    anatomy, parts = {}, {}
    for component in active(spec):
        anatomy[component.name], parts[component.name] = component.init(spec, key, params, circ)
    y = circuit_mod.direct_all(circ, {s: probes for s in SIDES}, params.circuit.active_fraction)
    masks = anatomy[PROJECTION.name].masks  # None when they rewire: then q is computed per record
    q = None if masks is None else {d: measures.presynaptic_sums(masks[d], y[pre(d)]) for d in DIRECTIONS}
    world = World(circuit=circ, anatomy=anatomy, env=env, probes=probes, y=y, stream=k_stream, q=q, inputs=inputs)
    return world, State(parts=parts, breath=jnp.zeros((), jnp.int32))


def masks(world: World, state: State) -> dict:
    """The projection's current masks C by direction (fixed anatomy, or learned state when they rewire)."""
    from .projection import masks_of

    return masks_of(world, state.parts[PROJECTION.name])


def breaths(spec: Any, world: World, params: Any, state: State, n_steps: int) -> dict[str, jax.Array]:
    """The nostril inputs of the next ``n_steps`` updates, ``{side: (n_steps·B, M)}``, drawn in one
    vectorised call (the same stream as breath-by-breath drawing: breath t depends only on (key, t))."""
    x_l, x_r = odors.breaths(world.stream, world.env, params.odors, state.breath, n_steps * spec.learning.batch,
                             world.inputs)
    return {"L": x_l, "R": x_r}


def learn(spec: Any, world: World, params: Any, state: State, n_steps: int) -> State:
    """``n_steps`` updates (``n_steps · learning.batch`` breaths): every active component learns from the same
    breaths, in pathway order."""
    x = breaths(spec, world, params, state, n_steps)
    for component in active(spec):
        state = state.replace(parts={**state.parts, component.name: component.learn(spec, world, params, state, x,
                                                                                      n_steps)})
    return state.replace(breath=state.breath + n_steps * spec.learning.batch)


def plans(spec: Any, n_steps: int | None = None) -> dict[str, str]:
    """How each active component learns a chunk of ``n_steps`` updates (default: a recording chunk)."""
    n = spec.run.record_every // spec.learning.batch if n_steps is None else n_steps
    return {c.name: c.plan(spec, n) for c in active(spec)}


def indirect(spec: Any, world: World, params: Any, state: State, y: dict[str, jax.Array],
             directions: tuple[str, ...] = DIRECTIONS, x: dict[str, jax.Array] | None = None,
             known: dict[str, dict] | None = None) -> dict[str, dict]:
    """The indirect response stage by stage, ``{stage: {direction: (P, N)}}``, from the direct responses
    ``y[side]`` (P, N) of the sending cortices: ``"y_hat"`` (ŷ = (W ⊙ C) y_pre) and, with recurrence,
    ``"z_hat"`` (z_T); for ``directions`` only (default both). ``x[side]``: the inputs (P, M) whose direct
    responses ``y`` are, when known (a linear stage may then go through J: :meth:`Projection.respond`).
    ``known``: stages already computed (``{stage: {direction: …}}``), taken as they are."""
    out, upstream = {}, None
    for component in staged(spec):
        if known and component.stage in known:
            upstream = known[component.stage]
        else:
            # x only to a respond that takes it: a component written before x existed keeps working
            given = {"x": x} if x is not None and "x" in inspect.signature(component.respond).parameters else {}
            upstream = component.respond(spec, world, params, state, upstream, y, directions, **given)
        out[component.stage] = upstream
    return out


def received(spec: Any, world: World, params: Any, state: State, y: dict[str, jax.Array],
             directions: tuple[str, ...] = DIRECTIONS) -> dict[str, jax.Array]:
    """What the receiving cortex responds through the indirect pathway, as a rate: the last stage, with φ
    applied unless that stage applies it (the recurrence's z_T does; ŷ alone is φ(ŷ))."""
    last = staged(spec)[-1]
    out = indirect(spec, world, params, state, y, directions)[last.stage]
    if last.activated:
        return out
    return {d: circuit_mod.activate(v, world.circuit.activation, params.circuit.active_fraction)
            for d, v in out.items()}


def views(spec: Any, world: World, params: Any, state: State) -> dict[str, measures.View]:
    """Each direction's probe responses (direct, indirect stage by stage) and weights, for the measures."""
    x, q, known = {s: world.probes for s in SIDES}, world.q, {}
    if q is None:  # the masks rewire: q of the current masks with ŷ, from one pass over the synapses
        known["y_hat"], q = PROJECTION.respond_squares(spec, world, params, state, world.y, x)
    stages = indirect(spec, world, params, state, world.y, x=x, known=known)
    z_hat = stages.get("z_hat", {d: None for d in DIRECTIONS})
    current = masks(world, state)
    return {d: measures.View(y_pre=world.y[pre(d)], y_post=world.y[post(d)], y_hat=stages["y_hat"][d],
                             weights=state.weights[d], mask=current[d], decay=params.learning.decay,
                             q=q[d], z_hat=z_hat[d])
            for d in DIRECTIONS}


def finite_parts(spec: Any, state: State) -> dict[str, jax.Array]:
    """Each active component's divergence check (True: finite)."""
    return {c.name: c.finite(state.parts[c.name]) for c in active(spec)}


def finite(spec: Any, state: State) -> jax.Array:
    """Whether every learned component is finite (NaN/inf never recover, so checking once per record suffices)."""
    return jnp.stack(list(finite_parts(spec, state).values())).all()


def measure(spec: Any, world: World, params: Any, state: State) -> dict[str, jax.Array]:
    """Every recorded measure (:data:`olfacto.model.measures.MEASURES`) on the probe odors."""
    return measures.record(views(spec, world, params, state), active_names(spec))


def tuning_profile(spec: Any, world: World, params: Any, state: State) -> jax.Array:
    """Per-neuron tuning correlations, shape (direction, N), in the order of DIRECTIONS: of the direct responses
    y_post with ŷ only, so masks that rewire cost no q (:func:`views` computes it for the measures: 0.47 → 0.22 s
    at N = 10⁵, K = 50, 100 probes, docs/benchmarks.md §29)."""
    y_hat = indirect(spec, world, params, state, world.y, x={s: world.probes for s in SIDES})["y_hat"]
    return jnp.stack([measures.tuning_correlation(world.y[post(d)], y_hat[d]) for d in DIRECTIONS])


def component(name: str):
    """The component called ``name``."""
    for c in COMPONENTS:
        if c.name == name:
            return c
    raise ValueError(f"component {name!r}: allowed are {', '.join(c.name for c in COMPONENTS)}")


def bytes_of(cfg: Any) -> int:
    """Every active component's memory (:meth:`Component.bytes`) for one run of ``cfg``."""
    spec = spec_of(cfg)
    return sum(c.bytes(cfg) for c in active(spec))


def divergence_advice(cfg: Any, which: list[str] | None = None) -> str:
    """What to change, from the stability conditions of the components that diverged (``which``; default:
    the projection)."""
    names = which or [PROJECTION.name]
    return "; ".join(component(n).advice(cfg) for n in names)
