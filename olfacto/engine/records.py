"""What a run saves, and when: records, as data (diffrax's ``SaveAt``).

A :class:`Record` is a name, *when* (:class:`Every` n breaths, :class:`At` given breaths, at the
:class:`End`), a function of (spec, world, params, state) of one run — compiled and vmapped
over the batch, or, with ``host=True``, called per run on the host — and the variables it
produces with their dims and attrs. The run loop (:func:`olfacto.engine.loop.run_batch`) is
written once over a list of records; ``run``, ``sweep``, the chapter-2 computations and a
user's own records all go through it, and the sweep store builds its layout from the records'
variables (:func:`variables`).

Records fall on the loop's chunk boundaries, multiples of ``run.record_every`` (the breaths the
compiled learning program runs at a time). A periodic record's variables get a time dimension
(``time_dim``: ``breath`` unless said otherwise); an :class:`End` record's do not. Optionally a
record *folds* its values on the host instead of keeping each (``fold``: e.g. running moments of
the weights over a window, without holding every snapshot).

:func:`defaults` are the records of ``olfacto run`` and ``olfacto sweep``: every registered
measure every ``run.record_every`` breaths (:data:`MEASURES`), the per-neuron tuning
correlations at the end (:data:`TUNING`), and the recordings' protocol at the end when
``protocol.enabled`` (:data:`PROTOCOL`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..model import measures, network, rewiring
from ..model.circuit import DIRECTIONS
from ..recordings import virtual


@dataclass(frozen=True)
class Every:
    """Every ``n`` breaths from ``start`` on (``n`` None: every ``run.record_every``), ``start`` included."""

    n: int | None = None
    start: int = 0

    def breaths(self, n_breaths: int, record_every: int) -> list[int]:
        step = self.n or record_every
        return list(range(self.start, n_breaths + 1, step))


@dataclass(frozen=True)
class At:
    """At the given breaths (0 is before any learning)."""

    breaths_: tuple[int, ...]

    def breaths(self, n_breaths: int, record_every: int) -> list[int]:
        return sorted(set(self.breaths_))


@dataclass(frozen=True)
class End:
    """Once, after the last breath (its variables have no time dimension)."""

    def breaths(self, n_breaths: int, record_every: int) -> list[int]:
        return [n_breaths]


@dataclass(frozen=True)
class Variable:
    """A variable a record produces: its dims beyond (run[, time]), attrs and dtype."""

    dims: tuple[str, ...] = ()
    attrs: dict = field(default_factory=dict, hash=False, compare=False)
    dtype: str = "float64"


@dataclass(frozen=True, eq=False)
class Record:
    """Something a run saves: ``name``, ``when``, ``compute`` and the variables it produces.

    ``compute(spec, world, params, state) -> {variable: array}`` works on one run (the engine vmaps and
    compiles it; values become NaN once the run's learned components are not finite). With ``host``,
    ``compute(spec, world, params, state, config)`` is called per run on the host (unbatched device
    arrays) and returns NumPy values (NaN for a diverged run, which it is not called for).
    ``variables(spec, configs) -> {name: Variable}`` declares them; ``sizes(spec) -> {dim: length}``
    the lengths of their dims. ``active(configs)``: whether the runs need it at all. ``fold``: reduce
    the values over the record's times on the host (an object with ``start(values)``,
    ``add(acc, values)`` and ``finish(acc) -> {name: array}``) instead of stacking them. ``cheap``:
    compile at XLA's optimisation level 0 when small (its compile costs more than it saves).
    ``constants(spec, world, params, state) -> pytree``: what a device record needs that stays fixed
    over a run (a reference drawn once), computed by its own program at the first time the record is taken
    in a batch (and again after a resume, from the restored state) and handed to
    ``compute(spec, world, params, state, constants)`` at every time.
    """

    name: str
    when: Every | At | End
    compute: Callable[..., dict[str, Any]]
    variables: Callable[[Any, Sequence[Any]], dict[str, Variable]]
    sizes: Callable[[Any], dict[str, int]] = lambda spec: {}
    host: bool = False
    active: Callable[[Sequence[Any]], bool] = lambda configs: True
    fold: Any = None
    time_dim: str = "breath"
    cheap: bool = False
    constants: Callable[..., Any] | None = None

    @property
    def periodic(self) -> bool:
        return not isinstance(self.when, End)


# -- the default records ------------------------------------------------------------------


def _measures(spec, world, params, state) -> dict[str, jax.Array]:
    return network.measure(spec, world, params, state)


def _measure_variables(spec, configs) -> dict[str, Variable]:
    names = frozenset().union(*(network.active_names(network.spec_of(c)) for c in configs)) if configs else \
        network.active_names(spec)
    return {name: Variable((), attrs) for name, attrs in measures.attrs(names).items()}


def short_attrs(name: str, description: str, units: str = "1", drop: str = "") -> dict[str, str]:
    """Attributes of a recorded variable that has a sentence but no short name: its name, less the prefix
    ``drop`` and spaced, as the ``long_name`` a plot's axis shows, the sentence as ``description``, and ``units``."""
    return {"long_name": name.removeprefix(drop).replace("_", " "), "description": description, "units": units}


MEASURES = Record("measures", Every(), _measures, _measure_variables, cheap=True)
"""Every registered measure (:data:`olfacto.model.measures.MEASURES`) every ``run.record_every`` breaths."""


def _tuning(spec, world, params, state) -> dict[str, jax.Array]:
    return {"tuning_correlation": network.tuning_profile(spec, world, params, state)}


TUNING = Record(
    "tuning", End(), _tuning,
    lambda spec, configs: {"tuning_correlation": Variable(
        ("direction", "neuron"),
        {"long_name": "tuning correlation", "description": "per-neuron direct–indirect tuning correlation at the "
                                                            "last breath", "units": "1"}, "float32")},
    sizes=lambda spec: {"direction": len(DIRECTIONS), "neuron": spec.circuit.n_cortex})
"""The per-neuron tuning correlations (direction, neuron) at the end."""


def _protocol(spec, world, params, state, cfg) -> dict[str, np.ndarray]:
    if not cfg.protocol.enabled:
        return {f"protocol_{n}": np.nan for n in virtual.MEASURES}
    values = virtual.measures_network(spec, world, params, state, cfg)
    return {f"protocol_{n}": v for n, v in values.items()}


PROTOCOL = Record(
    "protocol", End(), _protocol,
    lambda spec, configs: {name: Variable((), short_attrs(name, long, drop="protocol_"))
                           for name, long in virtual.LONG_NAMES.items()},
    host=True, active=lambda configs: any(c.protocol.enabled for c in configs))
"""The experiment's measures under the recordings' protocol (:mod:`olfacto.recordings.virtual`), at the end."""

def _rewiring(spec, world, params, state, constants) -> dict[str, jax.Array]:
    return rewiring.measure(spec, world, params, state, constants)


def _rewiring_constants(spec, world, params, state) -> dict[str, Any]:
    return rewiring.record_constants(spec, world, params, state)


REWIRING = Record(
    "rewiring", Every(), _rewiring,
    lambda spec, configs: {name: Variable((), short_attrs(name, long)) for name, long in rewiring.LONG_NAMES.items()},
    active=lambda configs: any(c.rewiring.rule != "none" for c in configs), constants=_rewiring_constants)
"""The rewiring's history every ``run.record_every`` breaths (:func:`olfacto.model.rewiring.measure`): turnover at
the last event, survival of the breath-0 synapses, the partners' correlation against random partners' — the
reference and the probes' factors of the correlations fixed over a run, so computed once (``constants``; at
N = 10⁵, K = 50, 100 probes 0.28 s and 58 ms of a record's 0.53 s)."""

FINITE = Record("finite", Every(), lambda spec, world, params, state: {}, lambda spec, configs: {}, cheap=True)
"""Nothing but the divergence check every ``run.record_every`` breaths (the run loop's check of every record):
for a search that only asks whether a run stays finite, and stops it once it is not."""

DEFAULTS = (MEASURES, TUNING, PROTOCOL, REWIRING)


def defaults(configs: Sequence[Any]) -> list[Record]:
    """The records of ``olfacto run`` and ``olfacto sweep`` for these runs."""
    return [r for r in DEFAULTS if r.active(configs)]


def variables(records: Sequence[Record], spec, configs: Sequence[Any]) -> dict[str, tuple[Record, Variable]]:
    """Every variable of ``records`` by name, with the record that produces it."""
    out = {}
    for r in records:
        for name, var in r.variables(spec, configs).items():
            if name in out:
                raise ValueError(f"records {out[name][0].name!r} and {r.name!r} both produce {name!r}")
            out[name] = (r, var)
    return out


# -- folds ---------------------------------------------------------------------------------


class Moments:
    """Fold of a record's values over its times: running sum and sum of squares (float64), finished as
    ``<name>_mean`` and ``<name>_var`` (population variance over the times); the record declares those
    finished variables."""

    def start(self, values: dict[str, np.ndarray]) -> dict:
        return {k: (np.asarray(v, np.float64), np.asarray(v, np.float64) ** 2, 1) for k, v in values.items()}

    def add(self, acc: dict, values: dict[str, np.ndarray]) -> dict:
        out = {}
        for k, v in values.items():
            s, q, n = acc[k]
            v = np.asarray(v, np.float64)
            out[k] = (s + v, q + v * v, n + 1)
        return out

    def finish(self, acc: dict) -> dict[str, np.ndarray]:
        out = {}
        for k, (s, q, n) in acc.items():
            mean = s / n
            out[f"{k}_mean"], out[f"{k}_var"] = mean, np.maximum(q / n - mean**2, 0.0)
        return out


def masked_nan(values: dict[str, jax.Array], ok: jax.Array) -> dict[str, jax.Array]:
    """Floating values as NaN once the run is not finite (integers and booleans unchanged)."""
    return {k: jnp.where(ok, v, jnp.nan) if jnp.issubdtype(jnp.asarray(v).dtype, jnp.floating) else v
            for k, v in values.items()}
