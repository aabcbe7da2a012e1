"""What a component of the network is: one learned part, with everything the simulator needs of it.

A component (the learned inter-hemispheric projection, :mod:`.projection`; the recurrence inside
each cortex, :mod:`.recurrence`; …) is one object in :data:`olfacto.model.network.COMPONENTS`.
It owns, behind this interface (optax's lesson: one object per transformation; BrainPy's: a
projection owns its plasticity):

- ``name``: its key in ``World.anatomy``, ``State.parts`` and the Spec (``spec.<name>.…``);
- ``static(cfg)``: the shapes it derives from the config (dotted names under its ``name``,
  e.g. ``{"projection.slots": K_max}``), which become part of the compiled Spec;
- ``padding(cfg)`` (optional): which of those shapes are slot counts a batch may raise to its largest
  (``{"projection.slots": N_pre}``: masks whose synapses do not depend on their slot count), so configs
  that differ only there — a sweep over p — share one compiled program; with ``pad_cost(cfg)`` (optional)
  the work one more slot per row adds to a run, by the same keys (a batch pads while that costs less than a
  compile; without it, a pass per row and breath);
- ``active(spec)``: whether the config uses it (an inactive one is absent from World and State);
- ``init(spec, key, params, circuit) -> (anatomy, state)``: its fixed part (masks) and its
  learned part, drawn from the run's key (each component documents which stream it takes, so
  adding one never moves another's draws);
- ``learn(spec, world, params, state, x, n_steps) -> part``: its learned part after ``n_steps``
  updates from the breaths ``x[side]`` ((n_steps·B, M) nostril inputs), in its chunked form when
  it has one (``state`` is the whole State, the components before it already updated);
- ``plan(spec, n_steps) -> str``: how it learns a chunk (recorded in the Dataset's attrs);
- ``respond(spec, world, params, state, upstream, y, directions, x=None) -> {direction: (P, N)}``: its stage of
  the indirect response (the projection turns the sending cortex's direct responses ``y`` into ŷ;
  the recurrence refines ``upstream`` into z_T), with ``stage`` naming it and ``activated``
  saying whether its output is already a rate (φ applied); ``x``, the inputs behind ``y`` when known
  (the probes), lets a stage take a cheaper exact route (a linear cortex's ŷ through J);
- ``finite(state) -> bool``: its divergence check (NaN or inf never recover, so once per record);
- ``bytes(cfg) -> int``: its memory for the check before any allocation;
- ``advice(cfg) -> str``: what to change when it diverged;
- a *structural* component (the rewiring of the projection's synapses, :mod:`.rewiring`) also has
  ``every(spec) -> int`` and ``event(spec, world, params, state) -> State``: every that many breaths,
  between two compiled chunks, its event may change other components' parts (a pruned synapse's
  weight); its ``stage`` is None (it is no stage of the indirect response).

A setting that can never work is refused by the config itself (:mod:`olfacto.config.checks`),
before any component sees it.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax


class Component(Protocol):
    name: str
    stage: str | None  # its stage of the indirect response, or None if it has none
    activated: bool  # its stage's output is a rate already (φ applied)

    def static(self, cfg: Any) -> dict[str, Any]: ...

    def active(self, spec: Any) -> bool: ...

    def init(self, spec: Any, key: jax.Array, params: Any, circuit: Any) -> tuple[Any, Any]: ...

    def learn(self, spec: Any, world: Any, params: Any, state: Any, x: dict[str, jax.Array],
              n_steps: int) -> Any: ...

    def plan(self, spec: Any, n_steps: int) -> str: ...

    def respond(self, spec: Any, world: Any, params: Any, state: Any, upstream: dict[str, jax.Array] | None,
                y: dict[str, jax.Array], directions: tuple[str, ...],
                x: dict[str, jax.Array] | None = None) -> dict[str, jax.Array]: ...

    def finite(self, state: Any) -> jax.Array: ...

    def bytes(self, cfg: Any) -> int: ...

    def advice(self, cfg: Any) -> str: ...
