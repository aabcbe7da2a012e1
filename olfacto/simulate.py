"""The breathing loop: compiled programs over chunks of breaths, recorded into xarray.

Data flow: config → (static :class:`~olfacto.params.Spec`, traced
:class:`~olfacto.params.Params`) → :func:`init` draws the circuit, environment
and probe odors from the seed → :func:`advance` = one ``lax.scan`` of
``record_every / batch`` learning steps → :func:`measure` records every measure
of :data:`olfacto.measures.MEASURES` on the probe odors (and whether the
weights are still finite) → repeated from Python ``n_breaths / record_every``
times (the progress bar lives there) → ``xarray.Dataset``.

A batch of runs that differ only in seed and traced parameters is one ``vmap``
of the same programs (:func:`run_batch`). Breath t's odor depends only on
(seed, t), so results do not depend on chunking, batching or resuming.

Per-direction state (weights, rule states) is a dict keyed by
:data:`olfacto.circuit.DIRECTIONS`; per-cortex data by :data:`~olfacto.circuit.SIDES`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from flax import struct

from . import circuit as circuit_mod
from . import checks, data, measures, odors, plasticity, recurrence, rules
from . import progress as progress_mod
from . import shard as shard_mod
from .circuit import DIRECTIONS, SIDES, post, pre
from .config import Config
from .params import Params, Spec, group_key, params_of, spec_of, stack
from .result import Result

__all__ = ["Batch", "Diverged", "Params", "Spec", "State", "World", "advance", "build", "init", "measure",
           "params_of", "run", "run_batch", "spec_of"]


def library_of(cfg: Config) -> jax.Array | None:
    """The measured base odors for ``odors.kind = dataset`` (read by path), else None."""
    o = cfg.odors
    if o.kind != "dataset":
        return None
    return jnp.asarray(data.base_odors(o.data_path, cfg.circuit.n_glomeruli, o.animal, o.hemibulb,
                                       o.threshold, o.drop_blank), jnp.float32)


# -- one run -------------------------------------------------------------------


@struct.dataclass
class World:
    """What stays fixed during a run: anatomy, environment, probe odors, breath-stream key."""

    circuit: circuit_mod.Circuit
    env: odors.Environment
    probes: jax.Array  # (P, M)
    y: dict[str, jax.Array]  # direct responses to the probes by side, (P, N): fixed, so computed once
    stream: jax.Array  # PRNG key of the breath stream
    # by direction, Σ_{j∈C_i} y_pre,j² on the probes (update alignment): fixed too, so computed once
    q: dict[str, jax.Array] | None = None


@struct.dataclass
class State:
    """What learning changes: the weights by direction in slot form (N, K_max), the rules' states."""

    weights: dict[str, jax.Array]
    rule_state: dict[str, Any]
    breath: jax.Array  # breaths done
    recurrent: dict[str, jax.Array] | None = None  # A by side (slot form), when the cortices are recurrent


def _rule(spec: Spec, params: Params) -> rules.Rule:
    return rules.make_rule(spec.learning.rule, params.learning, spec.learning.optimizer)


def init(spec: Spec, key: jax.Array, params: Params, library: jax.Array | None = None) -> tuple[World, State]:
    """Draw a run's world from its seed key and start from W = 0 (or small random W)."""
    c, o = spec.circuit, spec.odors
    k_circ, k_env, k_probe, k_stream, k_w = jax.random.split(key, 5)
    circ = circuit_mod.make_circuit(k_circ, c.n_cortex, c.n_glomeruli, params.circuit.connection_prob, c.mask,
                                    spec.k_max, c.projection, params.circuit.projection_density, c.activation)
    env = odors.make_environment(k_env, o.kind, c.n_glomeruli, o.n_base, o.n_components,
                                 params.odors.sparsity, library)
    if o.bulb != "none":  # its own key (folded in): the draws above are those of a run without it
        env = odors.with_bulb(env, o.bulb, jax.random.fold_in(key, 11), params.odors)
    probes = odors.sample_odors(k_probe, env, params.odors, spec.run.n_probe)
    keys_w = dict(zip(DIRECTIONS, jax.random.split(k_w)))
    scale = params.learning.init_scale / jnp.sqrt(spec.k_max)
    weights = {d: jnp.where(circ.masks[d].valid, scale * jax.random.normal(keys_w[d], circ.masks[d].idx.shape), 0.0)
               for d in DIRECTIONS}
    recurrent = None
    if spec.k_rec:  # its own key (folded in), so the draws above are those of a run without recurrence
        r = spec.recurrence
        circ = circ.replace(recurrent_masks=recurrence.sample_masks(
            jax.random.fold_in(key, 7), c.n_cortex, params.recurrence.connection_prob, r.mask, spec.k_rec))
        recurrent = recurrence.init(circ.recurrent_masks)
    rule = _rule(spec, params)
    state = State(weights=weights, rule_state={d: rule.init(weights[d]) for d in DIRECTIONS},
                  breath=jnp.zeros((), jnp.int32), recurrent=recurrent)
    y = circuit_mod.direct_all(circ, {s: probes for s in SIDES}, params.circuit.active_fraction)
    q = {d: measures.presynaptic_sums(circ.masks[d], y[pre(d)]) for d in DIRECTIONS}
    return World(circuit=circ, env=env, probes=probes, y=y, stream=k_stream, q=q), state


def step(spec: Spec, world: World, params: Params, state: State, x: dict[str, jax.Array]) -> State:
    """One update of both directions from a mini-batch of breaths (nostril inputs ``x[side]``: (batch, M))."""
    c = world.circuit
    y = circuit_mod.direct_all(c, x, params.circuit.active_fraction)
    rule = _rule(spec, params)
    new = {d: rule.update(state.weights[d], state.rule_state[d], c.masks[d], y[pre(d)], y[post(d)])
           for d in DIRECTIONS}
    return State(weights={d: state.weights[d] + new[d][0] for d in DIRECTIONS},
                 rule_state={d: new[d][1] for d in DIRECTIONS}, breath=state.breath + spec.learning.batch)


def advance(spec: Spec, world: World, params: Params, state: State, n_steps: int) -> State:
    """``n_steps`` learning steps as one ``lax.scan``.

    The chunk's breaths are drawn in one vectorised call first (the same stream as
    breath-by-breath drawing, since breath t depends only on (key, t)): measured
    2.4× faster per breath at N = 1,000, where drawing dominated.
    """
    b = spec.learning.batch
    x_l, x_r = odors.breaths(world.stream, world.env, params.odors, state.breath, n_steps * b)
    if spec.k_rec:  # the recurrent weights learn from the same breaths, beside W
        state = state.replace(recurrent=learn_recurrent(spec, world, params, state.recurrent, x_l, x_r, n_steps))
    how = plasticity_plan(spec, n_steps)
    if how.path == "chunked":  # the same updates as one exact chunked product (olfacto.plasticity)
        weights, rule_state = plasticity.advance(how, spec.learning.rule, world.circuit, state.weights,
                                                 state.rule_state, {"L": x_l, "R": x_r}, params.learning,
                                                 params.circuit.active_fraction, b)
        return State(weights=weights, rule_state=rule_state, breath=state.breath + n_steps * b,
                     recurrent=state.recurrent)
    xs = {"L": x_l.reshape(n_steps, b, -1), "R": x_r.reshape(n_steps, b, -1)}
    state, _ = jax.lax.scan(lambda s, x: (step(spec, world, params, s, x), None), state, xs)
    return state


def learn_recurrent(spec: Spec, world: World, params: Params, A: dict[str, jax.Array], x_l: jax.Array,
                    x_r: jax.Array, n_steps: int) -> dict[str, jax.Array]:
    """``n_steps`` Hebbian updates of each cortex's A from its own direct responses (olfacto.recurrence)."""
    b = spec.learning.batch
    c = world.circuit
    xs = {"L": x_l.reshape(n_steps, b, -1), "R": x_r.reshape(n_steps, b, -1)}

    def one(A, x):
        y = circuit_mod.direct_all(c, x, params.circuit.active_fraction)
        return recurrence.learn(A, c.recurrent_masks, y, params.recurrence.lr, params.recurrence.decay), None

    A, _ = jax.lax.scan(one, A, xs)
    return A


def plasticity_plan(spec: Spec, n_steps: int | None = None) -> plasticity.Plan:
    """How ``advance`` learns over ``n_steps`` updates (default: a recording chunk), from ``run.plasticity``."""
    c = spec.circuit
    n = spec.run.record_every // spec.learning.batch if n_steps is None else n_steps
    how = plasticity.plan(spec.run.plasticity, spec.learning.rule, c.activation, c.n_cortex, spec.k_max,
                          c.n_glomeruli, n, spec.learning.batch)
    if c.shard and how.kernel == "dense":  # its row blocks would all-gather the mask: gather instead
        how = plasticity.plan("gather", spec.learning.rule, c.activation, c.n_cortex, spec.k_max, c.n_glomeruli, n,
                              spec.learning.batch)
    return how


def views(spec: Spec, world: World, params: Params, state: State) -> dict[str, measures.View]:
    """Each direction's probe responses (direct, indirect) and weights, for the measures."""
    c = world.circuit
    y_hat = circuit_mod.indirect_all(c, state.weights, world.y)
    z_hat = refined_all(spec, world, params, state, y_hat) if spec.k_rec else {d: None for d in DIRECTIONS}
    return {d: measures.View(y_pre=world.y[pre(d)], y_post=world.y[post(d)], y_hat=y_hat[d],
                             weights=state.weights[d], mask=c.masks[d], decay=params.learning.decay,
                             q=None if world.q is None else world.q[d], z_hat=z_hat[d])
            for d in DIRECTIONS}


def refined_all(spec: Spec, world: World, params: Params, state: State,
                y_hat: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Each direction's indirect response refined by the receiving cortex's recurrence, z_T (P, N)."""
    return {d: refine_in(spec, world, params, state, post(d), y_hat[d]) for d in DIRECTIONS}


def refine_in(spec: Spec, world: World, params: Params, state: State, side: str, y_hat: jax.Array) -> jax.Array:
    """Indirect responses ``y_hat`` (P, N) arriving in cortex ``side``, refined by its recurrence: z_T."""
    c = world.circuit
    A, mask = state.recurrent[side], c.recurrent_masks[side]
    alpha = recurrence.gain(A, mask, params.recurrence.strength)
    return circuit_mod.refine(y_hat, A, mask, alpha, spec.recurrence.steps, c.activation, params.circuit.active_fraction)


def finite(state: State) -> jax.Array:
    """Whether all weights and their squares are finite (NaN/inf never recover, so checking once per
    record suffices). A weight beyond √(float32 max) ≈ 1.8e19 counts as diverged: its square, in
    every loss and norm measured, overflows — the chunked update can reach such weights without an
    inf that the breath-by-breath path would have produced."""
    return jnp.stack([jnp.isfinite(jnp.sum(w * w)) for w in state.weights.values()]).all()


def measure(spec: Spec, world: World, params: Params, state: State) -> tuple[dict[str, jax.Array], jax.Array]:
    """Every recorded measure on the probe odors (NaN once the weights are not finite), and finiteness."""
    ok = finite(state)
    rec = measures.record(views(spec, world, params, state))
    return {k: jnp.where(ok, v, jnp.nan) for k, v in rec.items()}, ok


def tuning_profile(spec: Spec, world: World, params: Params, state: State) -> jax.Array:
    """Per-neuron tuning correlations, shape (direction, N), in the order of DIRECTIONS."""
    v = views(spec, world, params, state)
    return jnp.stack([measures.tuning_correlation(v[d].y_post, v[d].y_hat) for d in DIRECTIONS])


# -- driver: a batch of runs sharing one Spec ----------------------------------


class Diverged(RuntimeError):
    """A run's weights became non-finite; ``dataset`` holds what was recorded before."""

    def __init__(self, message: str, dataset: xr.Dataset):
        super().__init__(message)
        self.dataset = dataset


_COMPILED: dict[Spec, dict[str, Any]] = {}

CHEAP_INIT_SLOTS = 1 << 24
"""Below this many synapse slots (both directions), ``init`` is compiled at XLA's optimisation
level 0. Its dozen random-number kernels take 2–3× longer to compile at the default level
(measured: 8 s vs 3 s of CPU at N = 300), while it runs once per batch; at O0 sampling is about
5× slower, which costs less than the compile saved up to about this size. Values agree with
the default level to float32 rounding (1 ulp of J and the probes; identical masks)."""

CHEAP_MEASURE_WORK = 1 << 21
"""Below this many slot × probe products per record, ``measure`` is compiled at level 0 too
(N = 100, 60 probes: 1.2 s instead of 2.8 s of compile, 15 ms instead of 10 ms per record)."""


def programs(spec: Spec) -> dict[str, Any]:
    """The jitted, vmapped programs of a Spec (compiled once per shape and reused)."""
    if spec not in _COMPILED:
        n_steps = spec.run.record_every // spec.learning.batch
        slots = 2 * spec.circuit.n_cortex * spec.k_max
        o0 = {"xla_backend_optimization_level": 0}
        init_options = o0 if slots < CHEAP_INIT_SLOTS else None
        measure_options = o0 if slots * spec.run.n_probe < CHEAP_MEASURE_WORK else None
        init_fn = jax.vmap(lambda k, p, lib: init(spec, k, p, lib), in_axes=(0, 0, None))
        _COMPILED[spec] = {
            "init": jax.jit(init_fn, compiler_options=init_options),
            # the state is donated: updated in place, so a chunk needs no second copy of W
            "advance": jax.jit(jax.vmap(lambda w, p, s: advance(spec, w, p, s, n_steps)), donate_argnums=(2,)),
            "measure": jax.jit(jax.vmap(lambda w, p, s: measure(spec, w, p, s)), compiler_options=measure_options),
            "tuning": jax.jit(jax.vmap(lambda w, p, s: tuning_profile(spec, w, p, s))),
        }
        if spec.circuit.shard:  # one network split over the devices (of every process): drawn already split
            _COMPILED[spec]["init_sharded"] = shard_mod.compile_init(init_fn, spec.circuit.n_cortex)
    return _COMPILED[spec]


@dataclasses.dataclass
class Batch:
    """A batch of runs ready to go: the programs, the drawn worlds, initial states and stacked params.

    The batch axis is padded to a multiple of the local devices and sharded over them;
    ``n_runs`` is the number of real runs (the first ``n_runs`` entries).
    """

    configs: list[Config]
    spec: Spec
    programs: dict[str, Any]
    world: World
    state: State
    params: Params
    n_runs: int


def build(configs: Sequence[Config]) -> Batch:
    """Check that ``configs`` can share one program and draw their worlds (the ``init`` program)."""
    configs = list(configs)
    key0 = group_key(configs[0])
    for c in configs[1:]:
        if group_key(c) != key0:
            raise ValueError("run_batch: configs must differ only in seed and traced parameters")
    spec = spec_of(configs[0])
    prog = programs(spec)
    sharded = spec.circuit.shard and jax.device_count() > 1  # one network split over the devices
    if sharded:
        shard_mod.check(spec.circuit.n_cortex)
    padded = configs if sharded else pad_to_devices(configs)
    params = stack(padded)
    keys = jnp.stack([jax.random.key_data(jax.random.key(c.seed)) for c in padded])
    if sharded:  # the neuron axis of every array split over the devices; XLA partitions the programs
        params, keys, library = shard_mod.replicate((params, keys, library_of(configs[0])))
        world, state = prog["init_sharded"](keys, params, library)
        return Batch(configs, spec, prog, world, state, params, len(configs))
    params, keys = shard_batch((params, keys))
    keys = jax.vmap(jax.random.wrap_key_data)(keys)
    world, state = prog["init"](keys, params, library_of(configs[0]))
    return Batch(configs, spec, prog, world, state, params, len(configs))


def run_batch(configs: Sequence[Config], progress: bool | None = None, stop_on_divergence: bool = True,
              description: str = "breaths") -> Result:
    """Run several configs that differ only in seed and traced parameters, as one vmapped program.

    The returned Dataset has dimensions ``run`` (the configs, in order) and ``breath``, and a
    boolean ``diverged`` per run. With ``stop_on_divergence`` a non-finite weight in any run
    ends the batch with :class:`Diverged` (its ``dataset`` holds the records up to then);
    otherwise a diverged run records NaN from then on and the others go on (the batch stops
    early only when every run has diverged) — a sweep never loses a batch to one bad point.
    """
    start = time.perf_counter()
    batch = build(configs)
    configs, spec, prog, n = batch.configs, batch.spec, batch.programs, batch.n_runs
    world, state, params = batch.world, batch.state, batch.params
    n_breaths, every = configs[0].run.n_breaths, spec.run.record_every
    n_records = n_breaths // every

    # to_host: a record is read by every process, also under jax.distributed
    rec, ok = shard_mod.to_host(prog["measure"](world, params, state))
    records, alive = [rec], np.asarray(ok)[:n]
    show = configs[0].run.progress if progress is None else progress
    bar = progress_mod.bar(n_breaths, description, "breath", disable=not show, delay=3.0, leave=False)
    stopped = None
    try:
        for i in range(n_records):
            state = prog["advance"](world, params, state)
            rec, ok = shard_mod.to_host(prog["measure"](world, params, state))
            ok = np.asarray(ok)[:n]
            if stop_on_divergence and not ok.all():
                stopped = (i + 1) * every, ~ok
                break
            records.append(rec)
            alive = ok
            bar.update(every)
            if not alive.any():  # every run has diverged: the rest would be NaN
                break
    finally:
        bar.close()
    wall = time.perf_counter() - start

    records = [{k: np.asarray(v)[:n] for k, v in r.items()} for r in records]
    if len(records) < n_records + 1 and stopped is None:  # all diverged: fill the remaining records with NaN
        nan = {k: np.full_like(v, np.nan) for k, v in records[-1].items()}
        records += [nan] * (n_records + 1 - len(records))
    tuning = None if stopped else np.asarray(shard_mod.to_host(prog["tuning"](world, params, state)))[:n]
    if n < jax.tree.leaves(params)[0].shape[0]:
        world, state, params = jax.tree.map(lambda a: a[:n], (world, state, params))
    ds = to_dataset(configs, spec, records, tuning, ~alive if stopped is None else stopped[1], wall)
    if stopped:
        breath, bad = stopped
        which = [i for i, b in enumerate(bad) if b]
        c = configs[which[0]]
        msg = (f"weights became non-finite by breath {breath} (last finite record: breath {breath - every}) "
               f"with learning.rule={c.learning.rule}, learning.lr={c.learning.lr}, learning.decay={c.learning.decay}, "
               f"learning.optimizer={c.learning.optimizer}, circuit.n_cortex={c.circuit.n_cortex}, "
               f"circuit.connection_prob={c.circuit.connection_prob}, seed={c.seed}"
               + (f" (runs {which} of the batch)" if len(configs) > 1 else "")
               + "; " + checks.divergence_advice(c))
        ds.attrs["diverged"] = msg
        raise Diverged(msg, ds)
    result = Result(dataset=ds, world=world, state=state, spec=spec, params=params, configs=list(configs))
    if any(c.protocol.enabled for c in configs):  # the recordings' protocol on the learned networks
        from . import virtual_experiment

        for name, values in virtual_experiment.record_all(result).items():
            ds[name] = ("run", values, {"long_name": virtual_experiment.LONG_NAMES[name]})
    return result


def pad_to_devices(configs: list[Config]) -> list[Config]:
    """Repeat the last config so the batch divides evenly over the local devices."""
    n_dev = jax.local_device_count()
    return configs + [configs[-1]] * (-len(configs) % n_dev) if n_dev > 1 else configs


def shard_batch(tree: Any) -> Any:
    """Place the leading (batch) axis of every leaf across all local devices (no-op on one device)."""
    devices = jax.local_devices()
    if len(devices) == 1:
        return tree
    mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    return jax.device_put(tree, sharding)


def to_dataset(configs: Sequence[Config], spec: Spec, records: list[dict], tuning: np.ndarray | None,
               diverged: np.ndarray, wall_time: float) -> xr.Dataset:
    """Stack per-record measures into a Dataset with dims (run, breath) and config attrs."""
    breath = np.arange(len(records)) * spec.run.record_every
    data_vars = {
        name: (("run", "breath"), np.stack([np.asarray(r[name]) for r in records], axis=1).astype(np.float64),
               {"long_name": long_name})
        for name, long_name in measures.recorded(recurrent=bool(spec.k_rec)).items()
    }
    data_vars["diverged"] = (("run",), np.asarray(diverged, bool), {"long_name": "weights became non-finite"})
    if tuning is not None:
        data_vars["tuning_correlation"] = (
            ("run", "direction", "neuron"), tuning.astype(np.float32),
            {"long_name": "per-neuron direct–indirect tuning correlation at the last breath"})
    ds = xr.Dataset(
        data_vars,
        coords={"run": ("run", np.arange(len(configs)), {"long_name": "run of the batch"}),
                "breath": ("breath", breath, {"long_name": "breaths learned before the record", "units": "breaths"}),
                "direction": ("direction", list(DIRECTIONS),
                              {"long_name": "odor side _to_ receiving cortex (pre → post)"})},
    )
    return ds.assign_coords(run_labels(configs)).assign_attrs(
        provenance(configs[0], wall_time), slots_per_direction=int(spec.k_max * spec.circuit.n_cortex),
        plasticity=plasticity_plan(spec).describe())  # the learning path a recording chunk took


def run_labels(configs: Sequence[Config]) -> dict[str, tuple]:
    """Coordinates along ``run``: the seed and every config key whose value differs between the runs,
    named as in a sweep store (:func:`olfacto.config.dim_name`), with the key in their attrs."""
    from .config import dim_name, get_dotted, key_attrs, leaf_keys

    labels = {"seed": ("run", [c.seed for c in configs], key_attrs("seed"))}
    for key in leaf_keys():
        if key in ("seed", "sweep"):
            continue
        values = [get_dotted(c, key) for c in configs]
        if any(v != values[0] for v in values[1:]):
            labels[dim_name(key)] = ("run", values, key_attrs(key))
    return labels


def provenance(cfg: Config, wall_time: float | None = None) -> dict[str, Any]:
    from . import __version__

    attrs = {
        "config": cfg.to_yaml(),
        "olfacto_version": __version__,
        "jax_version": jax.__version__,
        "device": ", ".join(sorted({f"{d.platform}:{d.device_kind}" for d in jax.devices()})),
    }
    if wall_time is not None:
        attrs["wall_time_s"] = float(wall_time)
    return attrs


def run(cfg: Config, progress: bool | None = None) -> Result:
    """Run one experiment: learn the inter-hemispheric weights breath by breath and record the measures.

    Parameters
    ----------
    cfg : Config
        The experiment (``olfacto.config.load("experiments/default.yaml")``, ``config.from_dict(...)``).
    progress : bool, optional
        Show a progress bar (default: ``cfg.run.progress``; it appears after 3 s).

    Returns
    -------
    Result
        ``result.dataset``: an ``xarray.Dataset`` with every measure of :data:`olfacto.measures.MEASURES`
        over ``breath`` (every ``run.record_every`` breaths, from 0 to ``run.n_breaths``), the per-neuron
        ``tuning_correlation(direction, neuron)`` at the end, and the resolved config in ``attrs``;
        ``result.weights(direction)``, ``result.direct(odors)``, ``result.indirect(odors)`` and
        ``result.measures(odors)`` for the final network (:class:`olfacto.result.Result`).

    Raises
    ------
    Diverged
        When the weights become non-finite; its ``dataset`` holds the records up to then.

    Examples
    --------
    >>> import olfacto
    >>> cfg = olfacto.config.from_dict(**{"circuit.n_cortex": 500, "learning.lr": 0.005})
    >>> result = olfacto.run(cfg)
    >>> float(result.dataset.alignment[-1])        # population alignment at the last record
    """
    try:
        result = run_batch([cfg], progress=progress)
    except Diverged as exc:
        exc.dataset = exc.dataset.isel(run=0)
        raise
    result.dataset = result.dataset.isel(run=0)
    return result

