"""The run loop, written once: draw a batch of networks, learn chunk by chunk, save the records.

Data flow: configs → (static :data:`~olfacto.config.tree.Spec`, traced :data:`~olfacto.config.tree.Params`)
→ :func:`build` draws the networks (:func:`olfacto.model.network.init`, one vmapped program) →
repeated from Python ``n_breaths / record_every`` times: the structural events due at the breath a chunk
starts from (:func:`olfacto.engine.programs.event`: the rewiring), one compiled chunk of learning
(:func:`olfacto.engine.programs.advance`), then every record due at the breath it ends at
(:mod:`olfacto.engine.records`) and the divergence check of every learned component → the
end records → ``xarray.Dataset`` (:mod:`olfacto.engine.dataset`) inside a
:class:`~olfacto.engine.result.Result`.

A batch of runs that differ only in seed and traced parameters is one ``vmap`` of the same
programs (:func:`run_batch`). Breath t's odor depends only on (seed, t), so results do not
depend on chunking, batching or resuming. ``olfacto run``, ``olfacto sweep``, the chapter-2
computations and a notebook's own records all call :func:`run_batch`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ..config import Config, ConfigError, validate
from ..config.tree import Params, Spec
from ..model import network, odors
from ..model.network import State, World, batch_spec
from ..recordings import glomeruli
from . import programs, resources, runtime, sharding
from . import progress as progress_mod
from .dataset import to_dataset
from .devices import group_key, groups, map_batches, pad_to_devices, place_batch, stack
from .records import Record, defaults, variables
from .result import Result

__all__ = ["Batch", "Diverged", "build", "own_stream", "run", "run_batch", "run_groups"]


class Diverged(RuntimeError):
    """A run's learned components became non-finite; ``dataset`` holds what was recorded before."""

    def __init__(self, message: str, dataset: xr.Dataset):
        super().__init__(message)
        self.dataset = dataset


@dataclasses.dataclass
class Batch:
    """A batch of runs ready to go: the drawn worlds, initial states and stacked params.

    The batch axis is padded to a multiple of the local devices and placed over them;
    ``n_runs`` is the number of real runs (the first ``n_runs`` entries).
    """

    configs: list[Config]
    spec: Spec
    world: World
    state: State
    params: Params
    n_runs: int
    breath: int = 0

    def advance(self) -> None:
        """The structural events due at the current breath (rewiring every ``rewiring.every`` breaths, a program
        of its own), then one chunk of ``run.record_every`` breaths of learning, for every run. An event due at
        breath t thus falls between the chunks that end and start there, after the records of breath t: a record
        sees the network its learning left (not one just pruned, whose regrown synapses have not learned yet), and
        a run's last breath has no event (no learning would follow it)."""
        if self.breath:
            for name, every in network.events(self.spec).items():
                if self.breath % every == 0:
                    self.state = programs.event(self.spec, name)(self.world, self.params, self.state)
        self.state = programs.advance(self.spec)(self.world, self.params, self.state)
        self.breath += self.spec.run.record_every


def check_batch(configs: Sequence[Config]) -> list[Config]:
    """The configs as a list, after checking that they can share one program and one run loop."""
    if isinstance(configs, (Config, dict)) or configs is None:
        raise ConfigError(f"run_batch: expected a list of olfacto.config.Config, got {type(configs).__name__}")
    configs = list(configs)
    if not configs:
        raise ConfigError("run_batch: got no configs; give at least one")
    for c in configs:
        if not isinstance(c, Config):
            raise ConfigError(f"run_batch: expected olfacto.config.Config values, got {type(c).__name__} "
                              "(build one with olfacto.config.from_dict or olfacto.config.load)")
    # validated again: model_copy(update=…) and model_construct build a Config without validating it
    configs = [validate(c.model_dump(warnings=False)) for c in configs]
    key0 = group_key(configs[0])
    for c in configs[1:]:
        if group_key(c) != key0:
            raise ConfigError("run_batch: configs must differ only in seed and traced parameters (the static "
                              "keys — shapes, rule, activation — and the measured data must be the same)")
        if c.run.n_breaths != configs[0].run.n_breaths:
            raise ConfigError(f"run_batch: run.n_breaths={c.run.n_breaths} differs from the first config's "
                              f"{configs[0].run.n_breaths}; runs of one batch share the breath axis")
    return configs


def check_stream(stream: Any, cfg: Config) -> odors.Stream | None:
    """``stream`` (an :class:`olfacto.model.odors.Stream`, or None) after checking it against ``cfg``: odors
    (T, M) with M = circuit.n_glomeruli and T ≥ run.n_breaths, nostrils (T, 2), finite, the schedule ≥ 0."""
    if stream is None:
        return None
    if not isinstance(stream, odors.Stream):
        raise ConfigError(f"stream: expected olfacto.Stream (olfacto.stream(odors, nostrils)), got "
                          f"{type(stream).__name__}")
    x, s = stream.odors, stream.nostrils
    m, n = cfg.circuit.n_glomeruli, cfg.run.n_breaths
    if x.ndim != 2 or x.shape[1] != m or x.shape[0] < n:
        raise ConfigError(f"stream.odors: shape {tuple(x.shape)}; allowed: (T, {m}) with T ≥ run.n_breaths={n} "
                          f"(one odor per breath, circuit.n_glomeruli={m} channels)")
    if s.shape != (x.shape[0], 2):
        raise ConfigError(f"stream.nostrils: shape {tuple(s.shape)}; allowed: ({x.shape[0]}, 2), the left and "
                          "right naris's gain at every breath of stream.odors")
    if not bool(jnp.isfinite(x).all()):
        raise ConfigError("stream.odors: holds NaN or inf; allowed: finite odors")
    if not bool((jnp.isfinite(s) & (s >= 0)).all()):
        raise ConfigError("stream.nostrils: holds a negative, NaN or inf gain; allowed: finite gains ≥ 0 "
                          "(1 open, 0 occluded)")
    if cfg.circuit.shard and jax.device_count() > 1:
        raise ConfigError("stream: not available with circuit.shard=true (one network split over devices)")
    return stream


def _library(cfg: Config) -> jax.Array | None:
    """The measured odor library ``cfg``'s environment reads (``odors.kind=dataset``), or None."""
    library = glomeruli.library(cfg)
    return None if library is None else jnp.asarray(library, jnp.float32)


def build(configs: Sequence[Config], start: Callable[[World, Params, State], State] | None = None,
          stream: odors.Stream | None = None, slots: dict[str, int] | None = None) -> Batch:
    """Check that ``configs`` can share one program and draw their networks (the ``init`` program).

    ``start(world, params, state) -> state`` (one run; vmapped) replaces the initial state, e.g. to
    start from a fixed point. ``stream``: a breath stream given from Python (:func:`olfacto.stream`), shared by
    every run, in place of the environment's draws. The first build of a process applies
    :func:`olfacto.engine.runtime.ensure` (the CPU-scheduler workaround and the compilation cache, as the
    command line does). ``slots``: slot counts to pad to at least (Spec key → K_max, e.g.
    ``{"projection.slots": 120}``), so batches of one sweep share a program; no run's result changes.
    """
    runtime.ensure()  # before this process's first JAX computation
    configs = check_batch(configs)
    stream = check_stream(stream, configs[0])
    spec = batch_spec(configs, slots)  # a sweep over p: every run with the slots of the largest p
    library = _library(configs[0])
    sharded = spec.circuit.shard and jax.device_count() > 1  # one network split over the devices
    if sharded:
        sharding.check(spec.circuit.n_cortex)
    padded = configs if sharded else pad_to_devices(configs)
    params = stack(padded)
    keys = jnp.stack([jax.random.key_data(jax.random.key(c.seed)) for c in padded])
    if sharded:  # the neuron axis of every array split over the devices; XLA partitions the programs
        params, keys, library = sharding.replicate((params, keys, library))
        world, state = programs.init_sharded(spec)(keys, params, library)
    else:
        params, keys = place_batch((params, keys))
        keys = jax.vmap(jax.random.wrap_key_data)(keys)
        world, state = programs.init(spec)(keys, params, library, stream)
    if start is not None:
        state = jax.jit(jax.vmap(start))(world, params, state)
    return Batch(configs, spec, world, state, params, len(configs))


def schedule(records: Sequence[Record], n_breaths: int, record_every: int) -> dict[int, list[Record]]:
    """The breaths at which records are due (multiples of ``run.record_every``, ≤ ``run.n_breaths``)."""
    due: dict[int, list[Record]] = {}
    for r in records:
        for b in r.when.breaths(n_breaths, record_every):
            if b % record_every or not 0 <= b <= n_breaths:
                raise ConfigError(f"record {r.name!r} at breath {b}: records fall on multiples of "
                                  f"run.record_every={record_every} in 0 … run.n_breaths={n_breaths}")
            due.setdefault(b, []).append(r)
    return dict(sorted(due.items()))


def _host(tree: Any, n: int) -> Any:
    return jax.tree.map(lambda a: np.asarray(a)[:n], sharding.to_host(tree))


def run_batch(configs: Sequence[Config], progress: bool | None = None, stop_on_divergence: bool = True,
              description: str = "breaths", records: Sequence[Record] | None = None,
              start: Callable[[World, Params, State], State] | None = None,
              stream: odors.Stream | None = None, slots: dict[str, int] | None = None) -> Result:
    """Run several configs that differ only in seed and traced parameters, as one compiled program (over the runs: :func:`olfacto.engine.programs.over_runs`).

    ``records``: what to save and when (default :func:`olfacto.engine.records.defaults`: every measure
    every ``run.record_every`` breaths, per-neuron tuning at the end, the protocol when enabled). The
    Dataset has dims ``run`` (the configs, in order) and each periodic record's time dim (``breath``),
    and a boolean ``diverged`` per run. With ``stop_on_divergence`` a non-finite learned component in
    any run ends the batch with :class:`Diverged` (its ``dataset`` holds the records up to then);
    otherwise a diverged run records NaN from then on and the others go on (the batch stops early
    only when every run has diverged) — a sweep never loses a batch to one bad point. ``start``,
    ``stream``, ``slots``: see :func:`build`.
    """
    started = time.perf_counter()
    batch = build(configs, start, stream, slots)
    configs, spec, n = batch.configs, batch.spec, batch.n_runs
    records = defaults(configs) if records is None else [r for r in records if r.active(configs)]
    for r in records:
        if r.host and r.periodic:
            raise ValueError(f"record {r.name!r}: a host record is taken at the end (when=End())")
    n_breaths, every = configs[0].run.n_breaths, spec.run.record_every
    due = schedule(records, n_breaths, every)
    got: dict[str, Any] = {r.name: [] for r in records}  # per record: list of per-time values, or a fold
    breaths_of: dict[str, list[int]] = {r.name: [] for r in records}
    alive = np.ones(n, bool)
    stopped = None

    fixed: dict[str, Any] = {}  # per record with constants: its constants of this batch (device arrays)

    def evaluate(r: Record) -> tuple[dict, np.ndarray]:
        """A device record's values and finiteness per run, now (its constants computed the first time)."""
        args = (batch.world, batch.params, batch.state)
        if r.constants is not None and r.name not in fixed:
            fixed[r.name] = programs.constants(spec, r)(*args)
        extra = (fixed[r.name],) if r.constants is not None else ()
        return _host(programs.record(spec, r)(*args, *extra), n)

    def take(breath: int, host_now: bool) -> np.ndarray:
        """Evaluate the records due at ``breath``; returns the finiteness per run."""
        ok = None
        for r in due.get(breath, []):
            if r.host or (not r.periodic and not host_now):
                continue
            values, ok_r = evaluate(r)
            ok = ok_r if ok is None else ok & ok_r
            if r.fold is not None:
                got[r.name] = r.fold.start(values) if not breaths_of[r.name] else r.fold.add(got[r.name], values)
            else:
                got[r.name].append(values)
            breaths_of[r.name].append(breath)
        return ok

    show = configs[0].run.progress if progress is None else progress
    bar = progress_mod.bar(n_breaths, description, "breath", disable=not show, delay=3.0, leave=False)
    try:
        ok = take(0, False)
        if ok is not None:
            alive = ok
        for i in range(n_breaths // every):
            batch.advance()
            breath = (i + 1) * every
            ok = take(breath, False) if breath in due else None
            bar.update(every)
            if ok is None:
                continue
            if stop_on_divergence and not ok.all():
                stopped = breath, ~ok
                for r in records:  # the record at this breath is not kept: the dataset ends at the last finite one
                    if breaths_of[r.name] and breaths_of[r.name][-1] == breath and r.fold is None:
                        got[r.name].pop()
                        breaths_of[r.name].pop()
                break
            alive = ok
            if not alive.any():  # every run has diverged: the rest would be NaN
                break
    finally:
        bar.close()
    checked = any(r.periodic for r in due.get(n_breaths, []))
    if stopped is None and not checked:  # the divergence check at the end, when no record made it there
        parts = _host(programs.finite(spec)(batch.state), n)
        alive = alive & np.all(np.stack([np.asarray(v, bool) for v in parts.values()]), axis=0)
    wall = time.perf_counter() - started

    if batch.n_runs < jax.tree.leaves(batch.params)[0].shape[0]:  # drop the padding runs
        batch.world, batch.state, batch.params = jax.tree.map(lambda a: a[:n], (batch.world, batch.state, batch.params))
        fixed.update({name: jax.tree.map(lambda a: a[:n], c) for name, c in fixed.items()})
    result = Result(dataset=None, world=batch.world, state=batch.state, spec=spec, params=batch.params,
                    configs=list(configs))
    if stopped is None:  # the end records (device, then host: the protocol on the learned networks)
        for r in records:
            if r.periodic:
                continue
            if r.host:
                got[r.name] = [_host_record(r, result, alive)]
            else:
                values, _ = evaluate(r)
                got[r.name] = [values]
            breaths_of[r.name] = [n_breaths]
    values, times = _assemble(records, got, breaths_of, spec, configs, due, n_breaths, every, stopped)
    ds = to_dataset(configs, spec, values, times, ~alive if stopped is None else stopped[1], wall)
    result.dataset = ds
    if stopped:
        ds.attrs["diverged"] = message = _divergence_message(result, stopped, every)
        raise Diverged(message, ds)
    return result


def run_groups(configs: Sequence[Config], **kwargs: Any):
    """:func:`run_batch` over the batches of :func:`olfacto.engine.devices.groups` — configs of one Spec up to their
    slot counts, padded to the largest of a batch where that costs less than a compile — yielding per batch the
    indices of its configs (its runs, in order) and its :class:`Result`, in order; on a CPU several batches run at
    once (:func:`olfacto.engine.devices.map_batches`). ``kwargs`` go to :func:`run_batch`."""
    batches = groups(list(configs))
    nbytes = [len(b) * max(resources.bytes_per_run(configs[m]) for m in b) for b in batches]
    # several at once on a CPU (devices.map_batches): each run's results do not depend on its batch
    results = map_batches(lambda members: run_batch([configs[m] for m in members], **kwargs), batches, nbytes)
    yield from zip(batches, results)


def _host_record(r: Record, result: Result, alive: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, list] = {name: [] for name in r.variables(result.spec, result.configs)}
    for run in range(result.n_runs):
        if alive[run]:
            world, state, params = result.one(run)
            values = r.compute(result.spec, world, params, state, result.configs[run])
        else:
            values = {}
        for name in out:
            out[name].append(values.get(name, np.nan))
    return {name: np.asarray(v) for name, v in out.items()}


def _assemble(records, got, breaths_of, spec, configs, due, n_breaths, every, stopped):
    """Each record's values as (dims, array, attrs) and the time coordinates of the periodic ones."""
    declared = variables(records, spec, configs)
    values, times = {}, {}
    for r in records:
        names = [v for v, (rec, _) in declared.items() if rec is r]
        if not got[r.name] and not r.periodic:
            continue  # an end record of a batch stopped by divergence
        if r.fold is not None:
            if breaths_of[r.name]:
                finished = r.fold.finish(got[r.name])
                for name in names:
                    var = declared[name][1]
                    values[name] = (var.dims, np.asarray(finished[name]).astype(var.dtype), dict(var.attrs))
            continue
        if r.periodic:
            full = [b for b, rs in due.items() if r in rs]
            kept = breaths_of[r.name]
            if stopped is None and len(kept) < len(full):  # every run diverged: the rest is NaN
                fill = {k: np.full_like(np.asarray(v, np.float64), np.nan) for k, v in got[r.name][-1].items()} \
                    if got[r.name] else None
                got[r.name] = got[r.name] + [fill] * (len(full) - len(kept)) if fill else got[r.name]
                kept = full
            if r.time_dim in times and list(times[r.time_dim]) != list(kept):
                raise ValueError(f"record {r.name!r}: its breaths differ from another record's on dim {r.time_dim!r}")
            times[r.time_dim] = np.asarray(kept)
        for name in names:
            var = declared[name][1]
            stack_ = [np.asarray(step[name]) for step in got[r.name]]
            if r.periodic:
                array = np.stack(stack_, axis=1) if stack_ else np.zeros((len(configs), 0))
                dims = (r.time_dim, *var.dims)
            else:
                array, dims = stack_[0], var.dims
            values[name] = (dims, array.astype(var.dtype), dict(var.attrs))
    return values, times


def _divergence_message(result: Result, stopped: tuple[int, np.ndarray], every: int) -> str:
    breath, bad = stopped
    which = [i for i, b in enumerate(bad) if b]
    run = which[0]
    c = result.configs[run]
    parts = jax.tree.map(lambda a: np.asarray(a)[run], _host(programs.finite(result.spec)(result.state), result.n_runs))
    diverged = [name for name, fine in parts.items() if not bool(fine)] or ["projection"]
    return (f"{' and '.join(diverged)} became non-finite by breath {breath} (last finite record: breath "
            f"{breath - every}) with learning.rule={c.learning.rule}, learning.lr={c.learning.lr}, "
            f"learning.decay={c.learning.decay}, learning.optimizer={c.learning.optimizer}, "
            f"circuit.n_cortex={c.circuit.n_cortex}, circuit.connection_prob={c.circuit.connection_prob}, seed={c.seed}"
            + (f" (runs {which} of the batch)" if len(result.configs) > 1 else "")
            + "; " + network.divergence_advice(c, diverged))


def run(cfg: Config, progress: bool | None = None, records: Sequence[Record] | None = None,
        stream: odors.Stream | None = None) -> Result:
    """Run one experiment: learn the inter-hemispheric weights breath by breath and record the measures.

    Parameters
    ----------
    cfg : Config
        The experiment (``olfacto.config.load("experiments/default.yaml")``, ``config.from_dict(...)``).
    progress : bool, optional
        Show a progress bar (default: ``cfg.run.progress``; it appears after 3 s).
    records : list of Record, optional
        What to save and when (default: every measure every ``run.record_every`` breaths, the per-neuron
        tuning at the end, the protocol when enabled; :mod:`olfacto.engine.records`).
    stream : olfacto.Stream, optional
        Your own breath stream (:func:`olfacto.stream`): the odor of every breath, (T, M), and the nostril
        schedule, (T, 2) — an occluded naris, a restricted training set. Default: the environment of
        ``cfg.odors`` draws the odors and both nares are open. :func:`own_stream` gives the run's own.

    Returns
    -------
    olfacto.engine.result.Result
        ``result.dataset``: an ``xarray.Dataset`` with every measure of :data:`olfacto.model.measures.MEASURES`
        over ``breath`` (every ``run.record_every`` breaths, from 0 to ``run.n_breaths``), the per-neuron
        ``tuning_correlation(direction, neuron)`` at the end, and the resolved config in ``attrs``;
        ``result.weights(direction)``, ``result.direct(odors)``, ``result.indirect(odors)`` and
        ``result.measures(odors)`` for the final network (:class:`olfacto.engine.result.Result`).

    Raises
    ------
    Diverged
        When a learned component becomes non-finite; its ``dataset`` holds the records up to then.

    Examples
    --------
    >>> import olfacto
    >>> cfg = olfacto.config.from_dict(**{"circuit.n_cortex": 500, "learning.lr": 0.005})
    >>> result = olfacto.run(cfg)
    >>> float(result.dataset.alignment[-1])        # population alignment at the last record
    """
    if not isinstance(cfg, Config):
        raise ConfigError(f"run: expected an olfacto.config.Config, got {type(cfg).__name__} "
                          "(build one with olfacto.config.from_dict or olfacto.config.load)")
    try:
        result = run_batch([cfg], progress=progress, records=records, stream=stream)
    except Diverged as exc:
        exc.dataset = exc.dataset.isel(run=0)
        raise
    result.dataset = result.dataset.isel(run=0)
    return result


def own_stream(cfg: Config, n_breaths: int | None = None) -> odors.Stream:
    """The breath stream ``cfg``'s run presents (its odors, both nares open), to edit and give back to
    :func:`run` as ``stream`` — e.g. occlude a naris for some breaths; unedited, it reproduces the run exactly.
    ``n_breaths``: default ``cfg.run.n_breaths``."""
    n = cfg.run.n_breaths if n_breaths is None else int(n_breaths)
    if n < 1:
        raise ConfigError(f"own_stream: n_breaths={n}; allowed: an integer ≥ 1")
    runtime.ensure()
    cfg = check_batch([cfg])[0]
    library = _library(cfg)
    params = stack([cfg])
    keys = jax.random.key(cfg.seed)[None]
    # the environment only (no masks, circuit or probes: cheap at any N), as the run's init draws it
    env, stream = programs.environment(network.spec_of(cfg))(keys, params, library)
    env, stream, params = jax.tree.map(lambda a: a[0], (env, stream, params))  # the one run
    x = jax.jit(odors.own_odors, static_argnums=(4,))(stream, env, params.odors, jnp.int32(0), n)
    return odors.Stream(odors=x, nostrils=jnp.ones((n, 2), jnp.float32))

