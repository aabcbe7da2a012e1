"""The chapter-2 computations (MODEL.md §1, results 6–9): the runs behind its figures.

Each ``compute_*`` function runs what a figure needs through the run loop
(:func:`olfacto.engine.loop.run_batch`, with the records it needs) and returns an xarray Dataset
(stored by ``olfacto figures`` like a sweep's result); :mod:`olfacto.analysis.chapter2` turns
it into the numbers of ``summary.json``. The lower-level functions work on any config and are
what the notebooks call:

* :func:`weight_fluctuations` — Var_t(W_ij) / (time-average W_ij)² at stationarity (result 8);
* :func:`sgd_stability_lr` — the largest η for which online SGD stays finite (result 8), and
  :func:`stability_theory`, its mean-square theory for the drawn network;
* :func:`recurrent_fixed_point_alignment` — the alignment of z* = (I − αA)⁻¹ ŷ by a dense
  solve, the T → ∞ limit of the recurrence for linear φ (result 7);
* :func:`loss_landscape` — L(W) on the plane through W₀, the Hebbian and the SGD solutions,
  with both learning paths and the Hebbian–gradient cosine across it (result 9).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable

import numpy as np
import xarray as xr

from ..analysis.common import SEED, final
from ..config import Config, dim_name, key_attrs
from ..engine import loop
from ..engine.devices import map_batches
from ..engine.records import At, End, Every, Moments, Record, Variable, defaults
from ..model import theory
from ..model.circuit import DIRECTIONS, post, pre

__all__ = ["compute_landscape", "compute_recurrence", "compute_sgd_stability", "compute_update_alignment_vs",
           "compute_weight_fluctuations", "loss_landscape", "recurrent_fixed_point_alignment", "row_eigenvalues",
           "sgd_stability_lr", "stability_theory", "weight_fluctuations"]


def _configs(base: dict, grid: dict) -> list[Config]:
    from ..sweeps.grid import expand

    return [p.config for p in expand(base, grid)]


# -- weight fluctuations (result 8) -----------------------------------------------------------


def weight_fluctuations(configs: list[Config], burn_in: int, window: int, stride: int,
                        start_at_fixed_point: bool = True) -> np.ndarray:
    """Per run: the mean over synapses of the temporal variance of W_ij over ``window`` breaths at
    stationarity, divided by the mean over synapses of its squared time average.

    The runs (one vmapped batch: they may differ in seed and traced parameters) start from the exact
    Hebbian fixed point W_H = C ⊙ J_post J_preᵀ / λ when ``start_at_fixed_point`` (linear φ,
    gaussian odors: then only the variance has to settle, in ``burn_in`` ≳ 1/(ηλ) breaths), learn
    ``burn_in`` breaths, then ``window`` breaths with W read every ``stride`` breaths. Both
    directions' synapses are pooled. Compare with
    ``theory.windowed_noise_to_signal(theory.hebbian_weight_noise_to_signal(…), …)``.
    """
    from .. import config as config_mod

    configs = [config_mod.replace(c, **{"run.record_every": stride, "run.n_breaths": burn_in + window})
               for c in configs]
    reads = At(tuple(burn_in + stride * (k + 1) for k in range(window // stride)))
    result = loop.run_batch(configs, progress=False, stop_on_divergence=False,
                            records=[Record("weights", reads, _both_weights, _moment_variables, fold=Moments())],
                            start=_at_fixed_point if start_at_fixed_point else None)
    valid = np.concatenate([np.asarray(result.world.masks[d].valid) for d in DIRECTIONS], axis=-1)
    mean, var = result.dataset["weights_mean"].values, result.dataset["weights_var"].values
    axes = tuple(range(1, valid.ndim))
    return np.sum(np.where(valid, var, 0.0), axis=axes) / np.sum(np.where(valid, mean**2, 0.0), axis=axes)


def _both_weights(spec, world, params, state) -> dict:
    """Both directions' weights side by side (N, 2 K_max): the synapses pooled."""
    import jax.numpy as jnp

    return {"weights": jnp.concatenate([state.weights[d] for d in DIRECTIONS], axis=-1)}


def _moment_variables(spec, configs) -> dict[str, Variable]:
    return {f"weights_{m}": Variable(("neuron", "slot"), {"long_name": f"time {m} of W over the window, per slot "
                                                                      "(both directions side by side)"})
            for m in ("mean", "var")}


def _at_fixed_point(world, params, state):
    """The state with W at the exact Hebbian fixed point W_H = C ⊙ J_post J_preᵀ / λ (linear φ, white odors)."""
    from ..model import projection

    part = state.parts[projection.NAME]
    weights = projection.hebbian_fixed_point(world.circuit, world.masks, params.learning.decay)
    return state.replace(parts={**state.parts, projection.NAME: part.replace(weights=weights)})


def compute_weight_fluctuations(base: dict, grid: dict, options: dict, progress: bool = False) -> xr.Dataset:
    """``weight_fluctuations`` over the grid (``learning.lr`` × ``circuit.n_glomeruli`` × ``seed``) from the
    Hebbian fixed point; ``options``: ``burn_in_relaxations`` and ``window_relaxations`` (in relaxation
    times 1/(ηλ) of the slowest rate) and ``snapshots`` (how many reads of W in the window)."""
    from ..config import validate

    opts = {**{"burn_in_relaxations": 3.0, "window_relaxations": 20.0, "snapshots": 400}, **options}
    lrs, ms, seeds = grid["learning.lr"], grid["circuit.n_glomeruli"], grid["seed"]
    decay = validate(base).learning.decay
    tau = 1.0 / (min(lrs) * decay)
    window = int(opts["window_relaxations"] * tau)
    stride = max(1, window // int(opts["snapshots"]))
    window = stride * (window // stride)
    burn_in = stride * math.ceil(opts["burn_in_relaxations"] * tau / stride)
    out = np.full((len(ms), len(lrs), len(seeds)), np.nan)

    def one(m: int) -> np.ndarray:
        configs = _configs(base, {"circuit.n_glomeruli": [m], "learning.lr": lrs, "seed": seeds})
        return weight_fluctuations(configs, burn_in, window, stride).reshape(len(lrs), len(seeds))

    for i, ratio in enumerate(map_batches(one, ms)):  # several at once on a CPU
        out[i] = ratio
    cfg = validate(base)
    keys = ("circuit.n_glomeruli", "learning.lr", "seed")
    coords = {dim_name(k): (dim_name(k), grid[k], key_attrs(k)) for k in keys}
    ds = xr.Dataset({"weight_fluctuation_ratio": (tuple(coords), out, {
        "long_name": "mean_syn Var_t(W_ij) / mean_syn (time-average W_ij)² at stationarity"})}, coords=coords)
    r = theory.hebbian_weight_noise_to_signal(np.asarray(lrs)[None, :], decay, np.asarray(ms)[:, None], cfg.odors.noise)
    ds["theory"] = (tuple(coords)[:2], r, {"long_name": "mean-field ratio ε (s M + 1) (infinite window)"})
    ds["theory_windowed"] = (tuple(coords)[:2], theory.windowed_noise_to_signal(
        r, np.asarray(lrs)[None, :], decay, stride, window // stride),
        {"long_name": "the same as read by the finite-window estimator"})
    ds.attrs.update(burn_in=burn_in, window=window, stride=stride, decay=decay)
    return ds


# -- SGD stability boundary (result 8) --------------------------------------------------------


CHECKS = 10
"""Divergence checks per try of :func:`sgd_stability_lr`: a diverging try stops at the first check after it
overflows, instead of running its remaining breaths on NaN."""


def sgd_stability_lr(configs: list[Config], lo: float, hi: float, sections: int = 8, rounds: int = 3,
                     progress: Callable[[str], None] | None = None, checks: int = CHECKS) -> tuple[float, float]:
    """The largest η for which online SGD stays finite over ``run.n_breaths`` breaths, bracketed by a
    multi-section search: each round tries ``sections`` learning rates geometrically spaced in the
    bracket (times the configs, e.g. seeds), and the bracket shrinks to the largest η at which every
    config stayed finite and the next one (bisection with ``sections`` = 2). Returns the final bracket
    (lo, hi); NaN bounds when the boundary is outside the first one.

    What it costs, for the same brackets: a round's two ends were tried in the round before, so they are
    not run again; each try checks divergence ``checks`` times (:func:`_stable`) and a diverged one stops
    there; where a batch's runs go one after another (one CPU device) each η is its own batch, so it stops
    alone, and a round tries its rates upward and stops at the first that diverges — the bracket depends on
    nothing above it, and those above, diverging late near the boundary, cost the most of the diverged;
    elsewhere the round is one vmapped batch (stopping when all of it has diverged).
    """
    known: dict[float, bool] = {}
    for r in range(rounds):
        lrs = [float(v) for v in np.geomspace(lo, hi, sections)]  # its ends are lo and hi exactly
        known.update(_stable(configs, [lr for lr in lrs if lr not in known], checks, until_unstable=True))
        stable = np.array([known.get(lr, False) for lr in lrs])  # untried: above the first that diverged
        if stable.all():
            return float(hi), math.nan
        if not stable.any():
            return math.nan, float(lo)
        first_bad = int(np.argmax(~stable))
        if first_bad == 0:
            return math.nan, float(lo)
        lo, hi = lrs[first_bad - 1], lrs[first_bad]
        if progress:
            progress(f"round {r + 1}: η* in [{lo:.4g}, {hi:.4g}]")
    return lo, hi


def check_every(cfg: Config, checks: int) -> int:
    """The breaths between two divergence checks of a run of ``cfg``: the largest that divides ``run.n_breaths``
    (and ``rewiring.every`` when the synapses rewire), is a multiple of ``learning.batch`` and gives at least
    ``checks`` checks — else ``run.n_breaths``, one check at the end."""
    n, b = cfg.run.n_breaths, cfg.learning.batch
    ok = [e for e in range(b, n // max(checks, 1) + 1, b) if n % e == 0
          and (cfg.rewiring.rule == "none" or cfg.rewiring.every % e == 0)]
    return max(ok, default=n)


def _stable(configs: list[Config], lrs: list[float], checks: int, until_unstable: bool = False) -> dict[float, bool]:
    """Whether every config stays finite over its ``run.n_breaths`` breaths with each η of ``lrs``.
    ``until_unstable`` (where a batch's runs go one after another): the rates in increasing order, one after
    another, up to the first that diverges; the rates above it are left out of the answer."""
    from .. import config as config_mod
    from ..engine import programs
    from ..engine.records import FINITE

    if not lrs:
        return {}
    every = check_every(configs[0], checks)

    def tries(lr: float) -> list[Config]:
        return [config_mod.replace(c, **{"learning.lr": lr, "run.record_every": every}) for c in configs]

    if programs.runs_in_turn():  # one batch per η: a diverged one stops without the others (several at once)
        def stays_finite(lr: float) -> bool:
            try:
                loop.run_batch(tries(lr), progress=False, records=[FINITE])
                return True
            except loop.Diverged:
                return False

        if not until_unstable:
            return dict(zip(lrs, map_batches(stays_finite, lrs)))
        out = {}
        for lr in sorted(lrs):
            out[lr] = stays_finite(lr)
            if not out[lr]:
                break
        return out
    ds = loop.run_batch([c for lr in lrs for c in tries(lr)], progress=False, stop_on_divergence=False,
                        records=[FINITE]).dataset
    bad = np.asarray(ds.diverged.values, bool).reshape(len(lrs), len(configs)).any(axis=1)
    return {lr: not b for lr, b in zip(lrs, bad)}


def row_eigenvalues(cfg: Config) -> list[np.ndarray]:
    """Each receiving neuron's input-covariance eigenvalues (1 + σ²) eig(J_K J_Kᵀ) in the drawn network of
    ``cfg`` (both directions): what its weights' least-mean-squares dynamics under SGD depend on."""
    import jax

    world = jax.tree.map(lambda a: a[0], jax.device_get(loop.build([cfg]).world))
    out = []
    for d in DIRECTIONS:
        J = np.asarray(world.circuit.J[pre(d)], np.float64)
        idx, valid = np.asarray(world.masks[d].idx), np.asarray(world.masks[d].valid)
        for i in range(idx.shape[0]):
            jk = J[idx[i][valid[i]]]
            if jk.size:
                out.append(np.linalg.eigvalsh(jk @ jk.T) * (1.0 + cfg.odors.noise**2))
    return out


def stability_theory(cfg: Config, batch: int = 1, candidates: int = 8,
                     eigs: list[np.ndarray] | None = None) -> tuple[float, float]:
    """Plain-SGD stability of the drawn network of ``cfg``, gaussian odors and linear φ (then exact in
    mean square): (the asymptotic bound of its least stable neuron, :func:`olfacto.model.theory.lms_stability_lr`;
    the η at which a run of ``run.n_breaths`` breaths first overflows float32,
    :func:`olfacto.model.theory.lms_finite_time_lr` over the ``candidates`` least stable neurons). Overflow:
    the sum of squared weights passes float32's maximum, from a mean-square error ≈ 1/K per weight,
    a growth of e^L with L = ln(3.4·10³⁸ K / (2 N K_max)). ``eigs``: :func:`row_eigenvalues` of ``cfg``, when
    known (they do not depend on the batch)."""
    from ..model import sparse

    eigs = row_eigenvalues(cfg) if eigs is None else eigs
    bounds = np.array([theory.lms_stability_lr(e, batch) for e in eigs])
    worst = [eigs[i] for i in np.argsort(bounds)[:candidates]]
    c = cfg.circuit
    k = max(c.connection_prob * c.n_cortex, 1.0)
    slots = 2 * c.n_cortex * sparse.slots(c.n_cortex, c.n_cortex, c.connection_prob, c.mask)
    log_range = math.log(float(np.finfo(np.float32).max)) + math.log(k / slots)
    n_steps = cfg.run.n_breaths // batch
    return float(bounds.min()), float(theory.lms_finite_time_lr(worst, n_steps, log_range, batch))


def compute_sgd_stability(base: dict, grid: dict, options: dict, progress: bool = False) -> xr.Dataset:
    """η* by :func:`sgd_stability_lr` for each in-degree K (``options["in_degree"]``), ``learning.batch``
    and ``learning.optimizer`` of the grid, with the LMS mean-square theory for plain SGD (typical
    neuron: Marchenko–Pastur; least stable neuron of the drawn networks). ``options``: also
    ``sections``, ``rounds`` and the first bracket ``lo``, ``hi``."""
    from ..config import set_dotted, validate

    opts = {**{"sections": 8, "rounds": 3, "lo": 0.002, "hi": 2.0}, **options}
    ks, batches, opts_ = opts.pop("in_degree"), grid["learning.batch"], grid["learning.optimizer"]
    seeds = grid.get("seed", [0])
    n = validate(base).circuit.n_cortex
    shape = (len(ks), len(batches), len(opts_))
    lo_hi = np.full(shape + (2,), np.nan)
    combos = list(itertools.product(enumerate(ks), enumerate(batches), enumerate(opts_)))

    def search(combo: tuple) -> tuple[float, float]:
        (_, k), (_, b), (_, opt) = combo
        sub = set_dotted(set_dotted(set_dotted(base, "circuit.connection_prob", k / n), "learning.batch", b),
                         "learning.optimizer", opt)
        return sgd_stability_lr(_configs(sub, {"seed": seeds}), opts["lo"], opts["hi"], opts["sections"],
                                opts["rounds"])

    # the searches two at once on a CPU (each round's rates then one after another inside its thread)
    for ((i, _), (j, _), (o, _)), bracket in zip(combos, map_batches(search, combos)):
        lo_hi[i, j, o] = bracket
    cfg = validate(base)
    coords = {"in_degree": ks, dim_name("learning.batch"): batches, dim_name("learning.optimizer"): opts_}
    dims = tuple(coords)
    th = theory.sgd_stability_lr(np.asarray(ks, float)[:, None], cfg.circuit.n_glomeruli, cfg.odors.noise,
                                 np.asarray(batches, float)[None, :])
    ds = xr.Dataset({
        "lr_stable": (dims, lo_hi[..., 0], {"long_name": "largest η found stable over the run"}),
        "lr_unstable": (dims, lo_hi[..., 1], {"long_name": "smallest η found to diverge"}),
        "theory": (dims[:2], th, {"long_name": "mean-square LMS stability bound, plain SGD (Marchenko–Pastur)"}),
    }, coords=coords)
    worst = np.full((len(ks), len(batches)), np.nan)
    finite = np.full((len(ks), len(batches)), np.nan)
    if cfg.odors.kind == "gaussian" and cfg.circuit.activation == "linear":
        for i, k in enumerate(ks):  # each drawn network's eigenvalues once for every batch size: 10.6 → 5.8 s
            drawn = [(c, row_eigenvalues(c)) for c in _configs(set_dotted(base, "circuit.connection_prob", k / n),
                                                               {"seed": seeds})]
            for j, b in enumerate(batches):
                both = [stability_theory(c, b, eigs=e) for c, e in drawn]
                worst[i, j], finite[i, j] = min(x[0] for x in both), min(x[1] for x in both)
    ds["theory_worst_row"] = (dims[:2], worst, {"long_name": "asymptotic mean-square bound of the least stable neuron"})
    ds["theory_finite_time"] = (dims[:2], finite, {"long_name": "η at which a run of this length first overflows"})
    ds["lr_boundary"] = np.sqrt(ds.lr_stable * ds.lr_unstable).assign_attrs(
        long_name="η* (geometric mean of the final bracket)")
    ds.attrs.update(n_breaths=cfg.run.n_breaths, **opts)
    return ds


# -- recurrence (result 7) --------------------------------------------------------------------


def _fixed_point_operands(spec, world, params, state) -> dict:
    """Per direction: α = s/ρ(A), the dense A of the receiving cortex, y_post and ŷ on the probes."""
    from ..model import network, recurrence, sparse

    views = network.views(spec, world, params, state)
    A, masks = state.parts[recurrence.NAME], world.anatomy[recurrence.NAME].masks
    return {d: (recurrence.gain(A[post(d)], masks[post(d)], params.recurrence.strength),
                sparse.to_dense(A[post(d)], masks[post(d)]), views[d].y_post, views[d].y_hat) for d in DIRECTIONS}


def _alignment(spec, y, z):
    from ..model import measures

    return measures.alignment(y, z)


def fixed_point_alignment(spec, world, params, state, cfg=None) -> float:
    """One run's population alignment (both directions averaged) of the linear recurrent fixed point
    z* = (I − αA)⁻¹ ŷ on the probes, by a dense solve with the run's A, α = s/ρ(A) and ŷ — the T → ∞
    limit of z_{t+1} = ŷ + αA z_t (linear φ). A consistency check of the simulated recurrence on the
    same network (z_T → z*), not a closed-form prediction. The device part is one compiled program per Spec
    (:func:`olfacto.engine.programs.compute`), the solve float64 NumPy."""
    import jax

    from ..engine import programs
    from ..model import network

    if "recurrence" not in network.active_names(spec):
        raise ValueError("recurrent_fixed_point_alignment: the runs have no recurrence (recurrence.connection_prob = 0)")
    operands = jax.device_get(programs.compute(spec, _fixed_point_operands)(world, params, state))
    values = []
    for d in DIRECTIONS:
        alpha, dense, y, y_hat = operands[d]
        dense, y_hat = np.asarray(dense, np.float64), np.asarray(y_hat, np.float64)
        z = np.linalg.solve(np.eye(dense.shape[0]) - float(alpha) * dense, y_hat.T).T
        values.append(float(programs.compute(spec, _alignment)(np.asarray(y, np.float32), z.astype(np.float32))))
    return float(np.mean(values))


FIXED_POINT = Record(
    "recurrent_fixed_point", End(),
    lambda spec, world, params, state, cfg: {"alignment_fixed_point": fixed_point_alignment(spec, world, params,
                                                                                             state)},
    lambda spec, configs: {"alignment_fixed_point": Variable((), {
        "long_name": "population alignment of z* = (I − αA)⁻¹ŷ (dense solve, linear φ)"})},
    host=True)
"""The dense linear fixed point of the recurrence at the end of a run (:func:`fixed_point_alignment`)."""


def recurrent_fixed_point_alignment(result) -> np.ndarray:
    """:func:`fixed_point_alignment` of every run of a :class:`~olfacto.engine.result.Result`."""
    def one(run: int) -> float:
        world, state, params = result.one(run)
        return fixed_point_alignment(result.spec, world, params, state)

    return np.array([one(r) for r in range(result.n_runs)])


def compute_recurrence(base: dict, grid: dict, options: dict, progress: bool = False) -> xr.Dataset:
    """Final alignment without (``alignment``) and with recurrence (``alignment_recurrent``) and the
    linear fixed point (``alignment_fixed_point``) over ``recurrence.strength`` × ``seed``, for each
    ``recurrence.connection_prob`` and ``recurrence.steps`` of the grid."""
    keys = ["recurrence.connection_prob", "recurrence.steps"]
    strengths, seeds = grid["recurrence.strength"], grid["seed"]
    names = ["alignment", "alignment_recurrent", "tuning_alignment", "tuning_alignment_recurrent",
             "decoding_transfer", "decoding_transfer_recurrent"]
    shape = tuple(len(grid[k]) for k in keys) + (len(strengths), len(seeds))
    data = {n: np.full(shape, np.nan) for n in names + ["alignment_fixed_point"]}

    def one(idx: tuple) -> tuple[bool, xr.Dataset]:
        sub = {k: [grid[k][i]] for k, i in zip(keys, idx)}
        configs = _configs(base, {**sub, "recurrence.strength": strengths, "seed": seeds})
        linear = configs[0].circuit.activation == "linear"
        result = loop.run_batch(configs, progress=progress, stop_on_divergence=False,
                                records=defaults(configs) + ([FIXED_POINT] if linear else []))
        return linear, final(result.dataset)

    combos = list(itertools.product(*[range(len(grid[k])) for k in keys]))
    for idx, (linear, last) in zip(combos, map_batches(one, combos)):  # several at once on a CPU
        for n in names + (["alignment_fixed_point"] if linear else []):
            data[n][idx] = last[n].values.reshape(len(strengths), len(seeds))
    coords = {dim_name(k): grid[k] for k in keys + ["recurrence.strength", "seed"]}
    dims = tuple(coords)
    long = {n: n.replace("_", " ") for n in names}
    long["alignment_fixed_point"] = "population alignment of z* = (I − αA)⁻¹ŷ (dense solve, linear φ)"
    ds = xr.Dataset({n: (dims, v, {"long_name": long[n]}) for n, v in data.items()}, coords=coords)
    for k in keys + ["recurrence.strength", "seed"]:
        ds[dim_name(k)].attrs.update(key_attrs(k))
    return ds


# -- the loss landscape (result 9) ------------------------------------------------------------


def _path(spec, world, params, state) -> dict:
    return {"path_L_to_R": state.weights["L_to_R"]}


PATH = Record("path", Every(), _path, lambda spec, configs: {"path_L_to_R": Variable(
    ("neuron", "slot"), {"long_name": "weights W_{R←L} in slot form along learning"}, "float32")})
"""The L→R weights at every record (the loss landscape's learning path)."""


def _trajectory(cfg: Config, stride: int) -> tuple[Any, list[np.ndarray]]:
    """Run ``cfg`` (one run) and return its result and the L→R weights every ``stride`` breaths."""
    from .. import config as config_mod

    cfg = config_mod.replace(cfg, **{"run.record_every": stride})
    result = loop.run_batch([cfg], progress=False, stop_on_divergence=False, records=[PATH])
    path = result.dataset["path_L_to_R"].values[0]
    return result, [np.asarray(w, np.float64) for w in path]


def plane_point(w, mask, y_pre, y_post, decay: float) -> tuple[Any, Any]:
    """L(W) (:func:`olfacto.model.loss.alignment_loss`) and cos(mean Hebbian update, −∇L(W)) at one W, directly:
    ``jax.grad`` of the loss and :func:`olfacto.model.rules.hebbian`'s update (mean over the probes)."""
    import jax.numpy as jnp

    from ..model import loss, rules

    value = loss.alignment_loss(w, mask, y_pre, y_post)
    descent = -loss.gradient(w, mask, y_pre, y_post)
    hebb, _ = rules.hebbian(1.0, decay).update(w, (), mask, y_pre, y_post)
    return value, jnp.sum(hebb * descent) / (jnp.linalg.norm(hebb) * jnp.linalg.norm(descent))


def plane_values(basis: list[np.ndarray], mask, y_pre, y_post, decay: float) -> Callable:
    """``at(a, b) -> (L, cos)``: :func:`plane_point` at W = E₀ + a E₁ + b E₂ (``basis`` = [E₀, E₁, E₂], slot
    form) for arrays of (a, b), in float64.

    On the plane everything is affine in c = (1, a, b): the residual r = y_post − ŷ = Σ cᵢ Rᵢ (R₀ = y_post −
    ŷ(E₀), Rᵢ = −ŷ(Eᵢ)), −∇L = (1/P) Σ_p r_p y_pre,pᵀ ⊙ C = Σ cᵢ Qᵢ and the mean Hebbian update
    ⟨y_post y_preᵀ⟩ ⊙ C − λW = Σ cᵢ Hᵢ. So L = cᵀ(R·R)c / 2P and cos = cᵀ(H·Q)c / √(cᵀ(H·H)c · cᵀ(Q·Q)c):
    three 3 × 3 Gram matrices, computed once, instead of a sparse product and a gradient per grid point
    (41² of them: 11 s per network at N = 500, K = 50, 200 probes, against 0.1 s; equal to the direct values
    within float32 rounding, tests/test_chapter2.py)."""
    valid = np.asarray(mask.valid)
    idx = np.asarray(mask.idx)
    pre_ = np.asarray(y_pre, np.float64)
    post_ = np.asarray(y_post, np.float64)
    g = pre_[:, idx] * valid  # (P, N, K): y_pre at each synapse, per probe
    n_probe = pre_.shape[0]
    e = [np.asarray(x, np.float64) * valid for x in basis]
    r = [post_ - np.einsum("nk,pnk->pn", e[0], g)] + [-np.einsum("nk,pnk->pn", x, g) for x in e[1:]]
    q = [np.einsum("pn,pnk->nk", x, g) / n_probe for x in r]
    h = [np.einsum("pn,pnk->nk", post_, g) / n_probe - decay * e[0]] + [-decay * x for x in e[1:]]

    def gram(xs, ys):
        return np.array([[np.sum(x * y) for y in ys] for x in xs])

    rr, hq, hh, qq = gram(r, r), gram(h, q), gram(h, h), gram(q, q)

    def at(a, b) -> tuple[np.ndarray, np.ndarray]:
        c = np.stack(np.broadcast_arrays(1.0, np.asarray(a, float), np.asarray(b, float)))  # (3, …) per point

        def form(m):
            return np.einsum("i...,ij,j...->...", c, m, c)

        return form(rr) / (2 * n_probe), form(hq) / np.sqrt(form(hh) * form(qq))

    return at


def loss_landscape(hebbian: Config, sgd: Config, stride: int = 100, extent=(-0.5, 1.5), points: int = 41) -> xr.Dataset:
    """L(W) = ½ E‖y_post − ŷ‖² (on the probes, direction L → R) on the plane through the initial
    weights W₀, the Hebbian solution W_H and the SGD solution W_S of two runs on the same circuit
    (same seed: same circuit, probes and W₀), with

    * both learning paths projected onto the plane (coordinates a, b of W₀ + a u + b v, u and v
      the orthonormalised W_H − W₀ and W_S − W₀) and their distance off it;
    * the cosine between the mean Hebbian update C ⊙ E[y_post y_preᵀ] − λW and −∇L(W) at every grid
      point (:func:`plane_values`, equal to :func:`plane_point`'s ``jax.grad`` of
      :func:`olfacto.model.loss.alignment_loss` there).

    The grid spans ``extent`` in units of |W_H − W₀| along u and |W_S − W₀|'s component along v.
    """
    import jax
    import jax.numpy as jnp

    from ..model import loss

    if hebbian.seed != sgd.seed or hebbian.learning.rule != "hebbian" or sgd.learning.rule != "sgd":
        raise ValueError("loss_landscape: needs a Hebbian and an SGD config with the same seed")
    result_h, path_h = _trajectory(hebbian, stride)
    _, path_s = _trajectory(sgd, stride)
    world = jax.tree.map(lambda a: a[0], result_h.world)
    mask, y_pre, y_post = world.masks["L_to_R"], world.y["L"], world.y["R"]
    valid = np.asarray(mask.valid)
    w0, wh, ws = path_h[0], path_h[-1], path_s[-1]
    e1 = wh - w0
    u = e1 / np.linalg.norm(e1)
    e2 = ws - w0 - np.sum((ws - w0) * u) * u
    v = e2 / np.linalg.norm(e2)
    scale = (np.linalg.norm(e1), np.linalg.norm(e2))

    def coords(w):
        d = w - w0
        a, b = np.sum(d * u), np.sum(d * v)
        return a / scale[0], b / scale[1], np.linalg.norm(d - a * u - b * v) / scale[0]

    grid = np.linspace(*extent, points)
    decay = float(hebbian.learning.decay)
    aa, bb = np.meshgrid(grid, grid, indexing="ij")
    at = plane_values([w0, scale[0] * u, scale[1] * v], mask, y_pre, y_post, decay)
    values, cosines = at(aa, bb)
    ph = np.array([coords(w) for w in path_h])
    ps = np.array([coords(w) for w in path_s])
    loss_at = {name: float(loss.alignment_loss(jnp.asarray(w, jnp.float32), mask, y_pre, y_post))
               for name, w in (("init", w0), ("hebbian", wh), ("sgd", ws))}
    breath = np.arange(len(path_h)) * stride
    ds = xr.Dataset({
        "loss": (("a", "b"), np.asarray(values, float).reshape(aa.shape), {"long_name": "L(W) = ½ E‖y − ŷ‖²"}),
        "cos_hebbian_gradient": (("a", "b"), np.asarray(cosines, float).reshape(aa.shape),
                                 {"long_name": "cos(mean Hebbian update, −∇L)"}),
        "path_hebbian": (("breath", "coord"), ph, {"long_name": "Hebbian path (a, b, distance off the plane)"}),
        "path_sgd": (("breath", "coord"), ps[:len(breath)] if len(ps) >= len(breath) else ps,
                     {"long_name": "SGD path (a, b, distance off the plane)"}),
    }, coords={"a": ("a", grid, {"long_name": "along W_H − W₀ (units of |W_H − W₀|)"}),
               "b": ("b", grid, {"long_name": "along the part of W_S − W₀ orthogonal to it"}),
               "breath": breath, "coord": ["a", "b", "off_plane"]})
    ds.attrs.update({f"loss_{k}": v for k, v in loss_at.items()})
    ds.attrs["cos_at_init"] = float(at(0.0, 0.0)[1])
    ds.attrs["sgd_point"] = list(map(float, coords(ws)))
    ds.attrs["valid_slots"] = int(valid.sum())
    return ds


def compute_landscape(base: dict, grid: dict, options: dict, progress: bool = False) -> xr.Dataset:
    """:func:`loss_landscape` for the base config with ``learning.rule`` hebbian and sgd; ``options``:
    ``lr`` (each rule's η), ``stride`` (breaths between path points), ``points`` (grid per axis)."""
    from ..config import set_dotted, validate

    opts = {**{"stride": 100, "points": 41}, **options}
    lr_h, lr_s = opts["lr"]["hebbian"], opts["lr"]["sgd"]
    seeds = grid.get("seed")

    def one(seed) -> xr.Dataset:  # one network per seed (each its own plane; a and b are in its own units)
        cfg = base if seed is None else set_dotted(base, "seed", int(seed))
        hebb = validate(set_dotted(set_dotted(cfg, "learning.rule", "hebbian"), "learning.lr", lr_h))
        sgd = validate(set_dotted(set_dotted(cfg, "learning.rule", "sgd"), "learning.lr", lr_s))
        return loss_landscape(hebb, sgd, stride=int(opts["stride"]), points=int(opts["points"]))

    parts = list(map_batches(one, seeds or [None]))  # several at once on a CPU
    if len(parts) == 1:  # one network: no seed dimension (as before seeds were added)
        return parts[0].assign_attrs(lr_hebbian=lr_h, lr_sgd=lr_s)
    per_seed = {"loss_init": "L(W₀)", "loss_hebbian": "L(W_H), the Hebbian solution",
                "loss_sgd": "L(W_S), the SGD solution", "cos_at_init": "cos(mean Hebbian update, −∇L) at W₀"}
    ds = xr.concat([d.assign({k: ((), float(d.attrs[k]), {"long_name": v}) for k, v in per_seed.items()})
                    for d in parts], dim=SEED, combine_attrs="drop_conflicts")
    ds = ds.assign_coords({SEED: [int(x) for x in seeds]})
    # the attributes of one network are those of the first seed's (the summary reads the variables)
    ds.attrs.update({k: parts[0].attrs[k] for k in (*per_seed, "sgd_point", "valid_slots")})
    return ds.assign_attrs(lr_hebbian=lr_h, lr_sgd=lr_s)


# -- update alignment across parameters (result 6) --------------------------------------------


def compute_update_alignment_vs(base: dict, grid: dict, options: dict, progress: bool = False) -> xr.Dataset:
    """The update alignment along Hebbian learning, at the last record, as each parameter of
    ``options["axes"]`` (dotted key → values) is varied alone around the base config (× ``seed``);
    one variable ``update_alignment_vs_<dim>`` per parameter, with the mean-field theory
    (:func:`olfacto.model.theory.hebbian_update_alignment`) at the values where the case is analysable
    (gaussian odors and J, linear φ)."""
    from ..model.prediction import outside_theory

    seeds = grid.get("seed", [0])
    out = xr.Dataset()
    for key, values in options["axes"].items():
        configs = _configs(base, {key: values, "seed": seeds})
        finals = np.full(len(configs), np.nan)
        # one compiled program per shape, traced values and seeds vmapped; several at once on a CPU
        for members, result in loop.run_groups(configs, progress=progress, stop_on_divergence=False):
            finals[members] = final(result.dataset.update_alignment).values
        dim = dim_name(key)
        th = []
        for c in configs[::len(seeds)]:  # one config per value (seeds innermost)
            th.append(np.nan if outside_theory(c) else float(theory.hebbian_update_alignment(
                c.circuit.n_cortex, c.circuit.n_glomeruli, c.circuit.connection_prob, c.learning.decay,
                lr=c.learning.lr, noise=c.odors.noise, t=float(c.run.n_breaths), mask=c.circuit.mask)))
        coords = {dim: (dim, list(values), key_attrs(key))}
        out[f"update_alignment_vs_{dim}"] = ((dim, SEED), finals.reshape(len(values), len(seeds)),
                                             {"long_name": f"final update alignment as {key} varies", "key": key})
        out[f"theory_vs_{dim}"] = ((dim,), np.asarray(th), {"long_name": "mean-field update alignment"})
        out = out.assign_coords(coords)
    return out.assign_coords({SEED: seeds})


