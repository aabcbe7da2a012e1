"""``olfacto bench``: olfacto against the plain NumPy way, memory bandwidth, scaling in N.

One invocation measures, on this machine:

a. olfacto on the fixed workload (N = 2,000, M = 50, p = 0.05 bernoulli, sparse
   odors, relu, Hebbian, 10,000 breaths, recorded every 500 breaths on 200
   probes): compile time (ahead-of-time, of the programs ``olfacto.run`` uses),
   wall time of ``olfacto.run`` once compiled, and the per-breath time of the
   learning loop alone (:func:`olfacto.model.network.learn`, no measurements);
   The whole run's cost per breath, records included, is the difference between
   a run of 3× and one of 1× the breaths divided by 2× the breaths (start-up and
   compiling cancel);
b. the two peers on the same anatomy and breath stream: the dense NumPy baseline
   (:mod:`benchmarks.baseline`) for a few hundred breaths, in float64 (NumPy's
   default, what a first script does) and float32 (olfacto's precision), and a
   dense-JAX scan (jitted ``lax.scan`` over dense masked N×N float32 weights,
   :func:`benchmarks.baseline.dense_jax_program`) for a few thousand; every peer
   simulates both directions, as olfacto does;
c. per-breath times, their ratio and synapse updates per second
   (2 directions × synapses × breaths / s);
d. the memory bandwidth (NumPy copy and add, and a jitted JAX triad, on 256 MB
   arrays) and the fraction of it olfacto's step reaches under a stated byte model;
e. the cost per synapse update for N = 10³, 10⁴, 10⁵ at fixed K = 50
   (fixed_indegree), of the learning loop as a run takes it (``run.plasticity=auto``);
f. the share of the default experiment's run (20,000 breaths) that recording
   every 100 breaths costs, for ``run.plasticity`` auto and per_breath.

Timings are the best of ``--repeats`` (3) because the machine may be shared.
``--quick`` runs a much smaller version in seconds; ``--scale`` runs only the
N = 100,000, K = 50 scale target and reports its wall time and peak RSS;
``--mouse`` the mouse scale (N = 1,000,000 per hemisphere, K = 100, linear φ or ``--activation relu``,
Hebbian, 10,000 breaths, 6 records on 20 probes), likewise;
``--record`` one record of the default measures at N = 100,000, K = 50, 100 probes;
``--rewiring`` the cost of one rewiring event per rule at N = 100,000, K = 50 (an event every 200
breaths) against the learning between two events (and the gradient rule scored on the last 20 breaths only),
and a whole ``olfacto.run`` of five intervals with its records per rule against the same run without rewiring;
``--json PATH`` also writes the numbers.

Byte model of one learning step (per synapse slot, per direction; float32
weights, int32 indices): read W (4 B), write W (4 B), read idx (4 B), read the
valid flag (1 B), read the gathered presynaptic activity y_pre[idx] (4 B) —
17 B per slot. Every slot of the fixed-fan-in layout is processed, valid or
not, so bytes per breath = 2 × N × K_max × 17. y_pre itself (4N bytes) usually
sits in cache, so on a memory-bound step the DRAM traffic is closer to 13 B per
slot; the 17-B figure is the data the step touches.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

BYTES_PER_SLOT = 4 + 4 + 4 + 1 + 4  # W read, W write, idx, valid, gathered y_pre

WORKLOAD = {
    "circuit.n_cortex": 2000, "circuit.n_glomeruli": 50, "circuit.connection_prob": 0.05,
    "circuit.mask": "bernoulli", "circuit.activation": "relu", "odors.kind": "sparse",
    "learning.rule": "hebbian", "run.n_breaths": 10_000, "run.record_every": 500, "run.n_probe": 200,
    "run.progress": False,
}
QUICK = {"circuit.n_cortex": 500, "run.n_breaths": 1000, "run.record_every": 250, "run.n_probe": 50}

SCALE = {
    "circuit.n_cortex": 100_000, "circuit.n_glomeruli": 50, "circuit.connection_prob": 0.0005,
    "circuit.mask": "fixed_indegree", "circuit.activation": "relu", "odors.kind": "sparse",
    "learning.rule": "hebbian", "run.n_breaths": 2000, "run.record_every": 200, "run.n_probe": 100,
    "run.progress": False,
}
MOUSE = {
    "circuit.n_cortex": 1_000_000, "circuit.n_glomeruli": 50, "circuit.connection_prob": 1e-4,
    "circuit.mask": "fixed_indegree", "circuit.activation": "linear", "odors.kind": "gaussian",
    "learning.rule": "hebbian", "run.n_breaths": 10_000, "run.record_every": 2000, "run.n_probe": 20,
    "run.progress": False,
}
# the default experiment's shapes (N, p, M, 100 probes, records every 100) with v0.1's η = 0.002, λ = 1 (the same
# ηλ as experiments/default.yaml's η = 0.0005, λ = 4), over 20,000 breaths: what recording every 100 breaths costs
DEFAULT_EXPERIMENT = {
    "circuit.n_cortex": 1000, "circuit.n_glomeruli": 50, "circuit.connection_prob": 0.1, "circuit.mask": "bernoulli",
    "circuit.activation": "linear", "odors.kind": "gaussian", "odors.noise": 0.1, "learning.rule": "hebbian",
    "learning.lr": 0.002, "learning.decay": 1.0, "run.n_breaths": 20_000, "run.record_every": 100, "run.n_probe": 100,
    "run.progress": False,
}
REWIRING = {  # one rewiring event against the learning between two events (issue 20's target)
    "circuit.n_cortex": 100_000, "circuit.n_glomeruli": 50, "circuit.connection_prob": 0.0005,
    "circuit.mask": "fixed_indegree", "circuit.activation": "linear", "odors.kind": "gaussian",
    "learning.rule": "hebbian", "run.n_breaths": 200, "run.record_every": 200, "run.n_probe": 100,
    "run.progress": False, "rewiring.every": 200, "rewiring.fraction": 0.1,
}
REWIRING_RULES = {  # each row of the report: its rewiring keys
    "none": {"rewiring.rule": "none"}, "magnitude": {"rewiring.rule": "magnitude"},
    "hebbian": {"rewiring.rule": "hebbian"}, "gradient": {"rewiring.rule": "gradient"},
    # RigL's practice: the gradient scored on the last breaths (a mini-batch) only
    "gradient, score_breaths 20": {"rewiring.rule": "gradient", "rewiring.score_breaths": 20},
    "cht": {"rewiring.rule": "cht"},
}
# per-breath SGD as alignment_vs_p runs it (experiments/ch1_alignment_vs_p.yaml), a tenth of its 40,000 breaths
SGD = {
    "circuit.n_glomeruli": 50, "circuit.mask": "bernoulli", "circuit.activation": "linear", "odors.kind": "gaussian",
    "odors.noise": 0.1, "learning.rule": "sgd", "learning.lr": 0.0005, "run.n_breaths": 4000,
    "run.record_every": 4000, "run.n_probe": 100, "run.progress": False,
}
SGD_POINTS = ((1000, (1, 16, 256)), (3000, (1, 16, 256)))  # (N, in-degrees K = pN)
SGD_QUICK = ((500, (1, 16)),)

SCALE_N = (1_000, 10_000, 100_000)
SCALE_K = 50


# -- helpers -------------------------------------------------------------------


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls of ``fn`` (which must block until done)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _cfg(overrides: dict[str, Any]):
    from olfacto import config

    return config.from_dict(**overrides)


def _unbatch(tree):
    return jax.tree.map(lambda a: a[0], tree)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    caches = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind = (index / "level").read_text().strip(), (index / "type").read_text().strip()
            if kind != "Instruction":
                caches.append(f"L{level} {(index / 'size').read_text().strip()}")
        except OSError:
            pass
    ram = None
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    from olfacto import __version__

    return {
        "cpu": cpu, "cores": os.cpu_count(), "caches_per_core_or_shared": caches, "ram_gb": None if ram is None else round(ram / 1e9, 1),
        "jax": jax.__version__, "numpy": np.__version__, "olfacto": __version__,
        "device": ", ".join(sorted({f"{d.platform}:{d.device_kind}" for d in jax.devices()})),
        "python": platform.python_version(),
    }


# -- d. memory bandwidth --------------------------------------------------------


def bandwidth(mbytes: int = 256, repeats: int = 5) -> dict[str, float]:
    """Memory bandwidth in GB/s from arrays of ``mbytes`` MB (best of ``repeats``).

    - ``numpy_copy``: b → a (2 arrays moved; NumPy, one thread, typically non-temporal stores);
    - ``numpy_add``:  a = b + c (3 arrays moved; STREAM's "Add", one thread);
    - ``jax_triad``:  a = b + s·c in a compiled loop (3 arrays moved; XLA's threads).

    ``best_gb_s`` (the machine's bandwidth, used for fractions) is the largest of the three.
    """
    n = mbytes * 2**20 // 8
    a, b, c = np.zeros(n), np.ones(n), np.full(n, 2.0)  # float64; zeros/ones/full fault the pages in
    t_copy = best_of(lambda: np.copyto(a, b), repeats)
    t_add = best_of(lambda: np.add(b, c, out=a), repeats)
    del a, b, c

    # JAX: a = b + s·c repeated inside one compiled loop, so the output buffer is reused
    # (a fresh 256 MB output per call would measure page faults, not bandwidth); the
    # time of a 1-iteration loop is subtracted.
    m = mbytes * 2**20 // 4
    b, c = jnp.ones(m, jnp.float32), jnp.full(m, 2.0, jnp.float32)

    def loop(iterations):
        def triad(b, c):
            return jax.lax.fori_loop(0, iterations, lambda i, a: b + i.astype(jnp.float32) * c, jnp.zeros_like(b))

        fn = jax.jit(triad)
        fn(b, c).block_until_ready()
        return best_of(lambda: fn(b, c).block_until_ready(), repeats)

    t_triad = (loop(6) - loop(1)) / 5
    del b, c
    copy = 2 * n * 8 / t_copy / 1e9
    add = 3 * n * 8 / t_add / 1e9
    tri = 3 * m * 4 / t_triad / 1e9
    return {"array_mb": mbytes, "numpy_copy_gb_s": copy, "numpy_add_gb_s": add, "jax_triad_gb_s": tri,
            "best_gb_s": max(copy, add, tri)}


# -- a. olfacto on the workload ------------------------------------------------


def compile_programs(cfg) -> tuple[float, dict[str, float]]:
    """Compile, ahead of time, the programs :func:`olfacto.run` uses for ``cfg``; they are cached for the run
    (``init``, ``advance`` and the default records' programs)."""
    from olfacto.engine import devices, programs, records
    from olfacto.model import network
    from olfacto.recordings import glomeruli

    spec = network.spec_of(cfg)
    params = devices.stack([cfg])
    keys = jax.vmap(jax.random.wrap_key_data)(jnp.stack([jax.random.key_data(jax.random.key(cfg.seed))]))
    lib = glomeruli.library(cfg)
    lib = None if lib is None else jnp.asarray(lib, jnp.float32)
    times = {}

    def aot(name, fn, *args):
        start = time.perf_counter()
        fn.lower(*args).compile()
        times[name] = time.perf_counter() - start

    init = programs.init(spec)
    aot("init", init, keys, params, lib, None)
    world, state = jax.eval_shape(init, keys, params, lib, None)
    aot("advance", programs.advance(spec), world, params, state)
    for rec in records.defaults([cfg]):
        if not rec.host:
            aot(rec.name, programs.record(spec, rec), world, params, state)
    return sum(times.values()), times


def advance_timing(spec, world, params, state, n: int, repeats: int) -> tuple[float, float]:
    """(compile seconds, best seconds per breath) of ``n`` learning steps (:func:`olfacto.model.network.learn`)."""
    from olfacto.model import network

    fn = jax.jit(lambda w, p, s: network.learn(spec, w, p, s, n))
    start = time.perf_counter()
    compiled = fn.lower(world, params, state).compile()
    t_compile = time.perf_counter() - start
    jax.block_until_ready(compiled(world, params, state))  # warm up
    t = best_of(lambda: jax.block_until_ready(compiled(world, params, state)), repeats)
    return t_compile, t / n


def workload(overrides: dict[str, Any], repeats: int, np_breaths: int, log) -> dict[str, Any]:
    import olfacto
    from olfacto.config.tree import params_of
    from olfacto.model import network, odors, sparse

    from . import baseline

    cfg = _cfg(overrides)
    spec = network.spec_of(cfg)
    c, r = cfg.circuit, cfg.run
    log(f"workload: N={c.n_cortex}, M={c.n_glomeruli}, p={c.connection_prob} {c.mask} "
        f"(K_max={spec.projection.slots} slots), {cfg.odors.kind} odors, {c.activation}, {cfg.learning.rule}, "
        f"{r.n_breaths} breaths, record every {r.record_every} on {r.n_probe} probes")
    t_compile, per_program = compile_programs(cfg)
    log(f"  compiled olfacto.run's programs in {t_compile:.1f} s")

    def timed_run(config):
        start = time.perf_counter()
        res = olfacto.run(config)
        jax.block_until_ready(res.state)
        return time.perf_counter() - start, res

    # the whole run's cost per breath, measurements included, as the difference between a run of
    # 3× and one of 1× the breaths (same compiled programs), so start-up and compiling cancel
    long_cfg = _cfg({**overrides, "run.n_breaths": 3 * r.n_breaths})
    runs, runs_long, result = [], [], None
    for _ in range(repeats):
        t, result = timed_run(cfg)
        runs.append(t)
        runs_long.append(timed_run(long_cfg)[0])
    t_run, t_long = min(runs), min(runs_long)
    marginal = (t_long - t_run) / (2 * r.n_breaths)
    log(f"  olfacto.run: best {t_run:.2f} s of {', '.join(f'{x:.2f}' for x in runs)}; "
        f"{3 * r.n_breaths} breaths: best {t_long:.2f} s → {marginal * 1e6:.0f} µs per breath, records included "
        f"(learning path: {result.dataset.attrs.get('plasticity', 'per_breath')})")

    world, params = _unbatch(result.world), params_of(cfg)
    state = _unbatch(result.state)
    n_syn = sum(sparse.n_synapses(m) for m in world.masks.values())
    slots = 2 * c.n_cortex * spec.projection.slots
    t_adv_compile, t_breath = advance_timing(spec, world, params, state, r.record_every, repeats)
    log(f"  learning loop (advance, {r.record_every} breaths): {t_breath * 1e6:.0f} µs/breath")

    # b. the NumPy baseline on the same anatomy and stream
    circ = world.circuit
    C_l_to_r, C_r_to_l = (np.asarray(sparse.dense_mask(world.masks[d])) for d in ("L_to_R", "R_to_L"))
    x_l, x_r = (np.asarray(a) for a in odors.breaths(world.stream, world.env, params.odors, 0, np_breaths))
    J_L, J_R = np.asarray(circ.J["L"]), np.asarray(circ.J["R"])
    dense = {}
    seg = max(1, np_breaths // repeats)
    for dtype in (np.float64, np.float32):
        W0, best = None, np.inf
        for i in range(repeats):
            sl = slice(i * seg, (i + 1) * seg)
            out = baseline.simulate_dense(J_L, J_R, C_l_to_r, C_r_to_l, x_l[sl], x_r[sl], cfg.learning.rule, cfg.learning.lr,
                                          cfg.learning.decay, c.activation, c.active_fraction,
                                          W0=W0, dtype=dtype)
            W0, best = (out.W_l_to_r, out.W_r_to_l), min(best, out.seconds_per_breath)
        dense[np.dtype(dtype).name] = best
        log(f"  NumPy dense baseline ({np.dtype(dtype).name}, {repeats}×{seg} breaths): {best * 1e3:.1f} ms/breath")

    # the dense-JAX peer: a jitted lax.scan over dense masked N×N weights (float32), both directions
    jax_breaths = 10 * np_breaths
    prog = baseline.dense_jax_program(cfg.learning.rule, c.activation, c.active_fraction)
    xj_l, xj_r = odors.breaths(world.stream, world.env, params.odors, 0, jax_breaths)
    Cj_l_to_r, Cj_r_to_l = jnp.asarray(C_l_to_r, jnp.float32), jnp.asarray(C_r_to_l, jnp.float32)
    args = (circ.J["L"], circ.J["R"], Cj_l_to_r, Cj_r_to_l, xj_l, xj_r)
    hyper = (jnp.float32(cfg.learning.lr), jnp.float32(cfg.learning.decay))
    zeros = lambda: (jnp.zeros_like(Cj_l_to_r), jnp.zeros_like(Cj_r_to_l))  # noqa: E731
    jax.block_until_ready(prog(*args, *zeros(), *hyper))  # compile
    t_jax = []
    for _ in range(repeats):
        w0 = jax.block_until_ready(zeros())
        start = time.perf_counter()
        jax.block_until_ready(prog(*args, *w0, *hyper))
        t_jax.append((time.perf_counter() - start) / jax_breaths)
    dense_jax = min(t_jax)
    log(f"  dense-JAX scan (float32, {repeats}×{jax_breaths} breaths): {dense_jax * 1e3:.2f} ms/breath")

    return {
        "config": {k: v for k, v in overrides.items() if k != "run.progress"},
        "k_max": spec.projection.slots, "synapses": n_syn, "slots": slots,
        "compile_s": t_compile, "compile_s_by_program": per_program,
        "run_wall_s": t_run, "run_wall_s_all": runs, "run_wall_with_compile_s": t_run + t_compile,
        "run_s_per_breath": t_run / r.n_breaths,
        "run_long_wall_s": t_long, "run_long_wall_s_all": runs_long,
        "run_marginal_s_per_breath": marginal,
        "plasticity": result.dataset.attrs.get("plasticity", "per_breath"),
        "dense_jax_s_per_breath": dense_jax, "dense_jax_breaths": jax_breaths,
        "run_ratio_vs_numpy_float64": dense["float64"] / marginal,
        "run_ratio_vs_numpy_float32": dense["float32"] / marginal,
        "run_ratio_vs_dense_jax": dense_jax / marginal,
        "measurement_s_per_record": max(0.0, t_run - t_breath * r.n_breaths) / (r.n_breaths // r.record_every + 1),
        "advance_compile_s": t_adv_compile, "advance_s_per_breath": t_breath,
        "synapse_updates_per_s": n_syn / t_breath,
        "numpy_breaths": np_breaths,
        "numpy_s_per_breath": dense,
        "ratio_vs_numpy_float64": dense["float64"] / t_breath,
        "ratio_vs_numpy_float32": dense["float32"] / t_breath,
        "numpy_synapse_updates_per_s": {k: n_syn / v for k, v in dense.items()},
        "bytes_per_breath": slots * BYTES_PER_SLOT,
        "working_set_mb": 2 * c.n_cortex * spec.projection.slots * 9 / 1e6,  # W, idx, valid
    }


# -- f. the cost of recording --------------------------------------------------------


def records(overrides: dict[str, Any], repeats: int, log) -> dict[str, Any]:
    """Wall time of ``olfacto.run`` recording every ``run.record_every`` breaths vs only at the end
    (both compiled first), for ``run.plasticity`` auto and per_breath; the share of the run that
    recording costs is (t_every − t_end) / t_every."""
    import olfacto

    out: dict[str, Any] = {"config": {k: v for k, v in overrides.items() if k != "run.progress"}}
    n = overrides["run.n_breaths"]
    for path in ("auto", "per_breath"):
        times = {}
        for label, every in (("every", overrides["run.record_every"]), ("end", n)):
            cfg = _cfg({**overrides, "run.record_every": every, "run.plasticity": path})
            olfacto.run(cfg)  # compile
            best_t = np.inf
            for _ in range(repeats):
                start = time.perf_counter()
                res = olfacto.run(cfg)
                best_t = min(best_t, time.perf_counter() - start)
            times[label] = best_t
            times[f"plasticity_{label}"] = res.dataset.attrs.get("plasticity", "per_breath")
        times["record_share"] = (times["every"] - times["end"]) / times["every"]
        times["s_per_record"] = (times["every"] - times["end"]) / (n // overrides["run.record_every"])
        out[path] = times
        log(f"  run.plasticity={path}: recording every {overrides['run.record_every']}: {times['every']:.2f} s, "
            f"only at the end: {times['end']:.2f} s → recording is {times['record_share']:.0%} of the run "
            f"({times['s_per_record'] * 1e3:.1f} ms per record; paths {times['plasticity_every']}, "
            f"{times['plasticity_end']})")
    return out


# -- e. scaling in N at fixed K --------------------------------------------------


def scaling(sizes, k: int, repeats: int, log, slot_updates: float = 2e8) -> list[dict[str, Any]]:
    from olfacto.config.tree import params_of
    from olfacto.model import network

    rows = []
    for n in sizes:
        cfg = _cfg({**WORKLOAD, "circuit.n_cortex": n, "circuit.connection_prob": k / n,
                    "circuit.mask": "fixed_indegree", "run.n_breaths": 100, "run.record_every": 100})
        spec, params = network.spec_of(cfg), params_of(cfg)
        world, state = jax.jit(lambda key, p: network.init(spec, key, p))(jax.random.key(cfg.seed), params)
        syn = 2 * n * spec.projection.slots
        breaths = int(np.clip(slot_updates / syn, 20, 1000))
        _, t = advance_timing(spec, world, params, state, breaths, repeats)
        rows.append({"n_cortex": n, "k": spec.projection.slots, "synapses": syn, "breaths_timed": breaths,
                     "s_per_breath": t, "ns_per_synapse_update": t / syn * 1e9,
                     "gb_s": syn * BYTES_PER_SLOT / t / 1e9})
        log(f"  N={n:>7,}: {t * 1e3:8.3f} ms/breath, {t / syn * 1e9:.2f} ns per synapse update")
        del world, state
    return rows


# -- the scale target ------------------------------------------------------------


def scale_run(overrides: dict[str, Any], log, label: str = "scale target") -> dict[str, Any]:
    import olfacto
    from olfacto.model import network

    cfg = _cfg(overrides)
    spec = network.spec_of(cfg)
    c, r = cfg.circuit, cfg.run
    log(f"{label}: N={c.n_cortex:,}, K={spec.projection.slots} ({c.mask}), M={c.n_glomeruli}, {c.activation}, "
        f"{cfg.learning.rule}, {r.n_breaths} breaths, record every {r.record_every} on {r.n_probe} probes; "
        f"learning path {network.plans(spec)['projection']}")
    start = time.perf_counter()
    t_compile, _ = compile_programs(cfg)
    result = olfacto.run(cfg)
    jax.block_until_ready(result.state)
    wall = time.perf_counter() - start
    ds = result.dataset
    return {
        "config": {k: v for k, v in overrides.items() if k != "run.progress"},
        "wall_s": wall, "compile_s": t_compile, "run_s": wall - t_compile,
        "s_per_breath": (wall - t_compile) / r.n_breaths,
        "peak_rss_gb": peak_rss_bytes() / 1e9,
        "synapses": 2 * c.n_cortex * spec.projection.slots,
        "final_alignment": float(ds.alignment.values[-1]),
        "plasticity": ds.attrs.get("plasticity", "per_breath"),
        "label": label,
    }


# -- e. the device check (issue 21): one command, under 5 minutes on one GPU ----------------------


def device_memory() -> dict[str, float | None]:
    """The first device's memory in GB: in use, peak and limit (None where the backend does not say: CPU)."""
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # noqa: BLE001 — some backends raise instead of returning None
        stats = {}
    gb = lambda key: stats[key] / 1e9 if key in stats else None  # noqa: E731
    return {"in_use_gb": gb("bytes_in_use"), "peak_gb": gb("peak_bytes_in_use"), "limit_gb": gb("bytes_limit")}


def device_sizes(platform_: str, quick: bool) -> dict[str, dict[str, Any]]:
    """The device check's runs: the mouse scale (linear: the factored chunked path; relu: breath by breath, so its
    breaths are fewer), the benchmark workload. Full size on an accelerator; on a CPU (it must run there too)
    N ten times smaller and fewer breaths; ``quick``: a smoke-test size anywhere."""
    mouse, relu = dict(MOUSE), {**MOUSE, "circuit.activation": "relu", "odors.kind": "sparse", "run.n_breaths": 2000,
                                "run.record_every": 1000}
    workload_ = dict(WORKLOAD)
    if quick:
        small = {"circuit.n_cortex": 20_000, "circuit.connection_prob": 5e-4}
        mouse = {**mouse, **small, "run.n_breaths": 400, "run.record_every": 200}
        relu = {**relu, **small, "run.n_breaths": 200, "run.record_every": 100}
        workload_ = {**workload_, **QUICK}
    elif platform_ == "cpu":
        mouse = {**mouse, "circuit.n_cortex": 100_000, "circuit.connection_prob": 1e-3, "run.n_breaths": 2000,
                 "run.record_every": 1000}
        relu = {**relu, "circuit.n_cortex": 100_000, "circuit.connection_prob": 1e-3, "run.n_breaths": 200,
                "run.record_every": 100}
    return {"mouse_linear": mouse, "mouse_relu": relu, "workload": workload_}


def device_check(quick: bool, repeats: int, log) -> dict[str, Any]:
    """What a GPU (or any device) does with olfacto, in one run: its memory bandwidth (the JAX triad on the
    device), the benchmark workload (µs per breath, against NumPy on the host, and the fraction of the
    bandwidth its per-breath step reaches), and the mouse scale linear and relu (wall time, s per breath,
    peak device memory, and the per-breath-equivalent fraction of the bandwidth: the traffic of the per-breath
    algorithm, BYTES_PER_SLOT per synapse and breath, over the time taken — above 100 % where a chunked path
    touches each weight less than once per breath). Sizes: :func:`device_sizes`."""
    platform_ = jax.devices()[0].platform
    sizes = device_sizes(platform_, quick)
    out: dict[str, Any] = {"platform": platform_, "devices": [str(d) for d in jax.devices()],
                           "memory_before": device_memory()}
    out["bandwidth"] = bandwidth(64 if quick else 1024 if platform_ != "cpu" else 256, repeats=3)
    bw = out["bandwidth"]["jax_triad_gb_s"]
    log(f"device check on {platform_}: JAX triad {bw:.0f} GB/s")
    out["workload"] = workload(sizes["workload"], repeats, np_breaths=30 if quick else 100, log=log)
    w = out["workload"]
    w["bandwidth_fraction"] = w["bytes_per_breath"] / w["advance_s_per_breath"] / 1e9 / bw
    for name in ("mouse_linear", "mouse_relu"):
        run = scale_run(sizes[name], log, label=name.replace("_", " "))
        run["device_memory"] = device_memory()
        # the per-breath algorithm's traffic (BYTES_PER_SLOT per synapse and breath) over the time taken: the
        # fraction of the bandwidth it would need; a chunked path that touches each weight once per chunk can
        # exceed 100 %, which is the point of it
        run["bandwidth_fraction"] = run["synapses"] * BYTES_PER_SLOT / run["s_per_breath"] / 1e9 / bw
        out[name] = run
        log(f"  {name}: {run['wall_s']:.1f} s ({run['compile_s']:.1f} s compiling), "
            f"{run['s_per_breath'] * 1e3:.3f} ms per breath, alignment {run['final_alignment']:.3f}")
    return out


def device_report(d: dict[str, Any]) -> list[str]:
    def mem(m):
        return "n/a on this backend" if m.get("peak_gb") is None else f"peak {m['peak_gb']:.2f} GB of {m['limit_gb']:.1f}"

    rows = [("devices", ", ".join(d["devices"])),
            ("memory bandwidth (JAX triad)", f"{d['bandwidth']['jax_triad_gb_s']:.0f} GB/s"),
            ("workload: learning step per breath",
             f"{d['workload']['advance_s_per_breath'] * 1e6:.0f} µs ({d['workload']['bandwidth_fraction']:.0%} of the "
             f"bandwidth, per-breath equivalent; path {d['workload']['plasticity']}), whole run "
             f"{d['workload']['run_s_per_breath'] * 1e6:.0f} µs per breath")]
    for name in ("mouse_linear", "mouse_relu"):
        r = d[name]
        c = r["config"]
        frac = f", {r['bandwidth_fraction']:.0%} of the bandwidth (per-breath equivalent; path {r['plasticity']})"
        rows.append((f"{name.replace('_', ' ')}: N={c['circuit.n_cortex']:,}, {c['run.n_breaths']:,} breaths",
                     f"{r['wall_s']:.1f} s ({r['compile_s']:.1f} s compiling), {r['s_per_breath'] * 1e3:.3f} ms per "
                     f"breath{frac}; device memory {mem(r['device_memory'])}; RSS {r['peak_rss_gb']:.2f} GB"))
    return ["", f"device check ({d['platform']}):", _table(rows)]


# -- f. one record at scale (issue 21, item 2) ---------------------------------------------------------------


RECORD = {"circuit.n_cortex": 100_000, "circuit.n_glomeruli": 50, "circuit.connection_prob": 0.0005,
          "circuit.mask": "fixed_indegree", "odors.kind": "gaussian", "learning.rule": "hebbian",
          "learning.init_scale": 1.0, "run.n_breaths": 200, "run.record_every": 200, "run.n_probe": 100,
          "run.progress": False}
"""One record of the default measures at N = 10⁵, K = 50, 100 probes (random initial weights, so every
measure is defined)."""


def record_cost(overrides: dict[str, Any], repeats: int, log) -> dict[str, Any]:
    """The compiled program of one record of the default measures (as ``olfacto run`` calls it every
    ``run.record_every`` breaths), linear and relu: best of ``repeats`` after the first call, and its two
    parts compiled alone — the indirect responses of the probes (ŷ, both directions) and the measures on
    them."""
    from olfacto.engine import loop, programs, records
    from olfacto.model import measures, network
    from olfacto.model.circuit import SIDES

    from .profiling import best

    out: dict[str, Any] = {"config": {k: v for k, v in overrides.items() if k != "run.progress"}, "activations": {}}
    for activation in ("linear", "relu"):
        batch = loop.build([_cfg({**overrides, "circuit.activation": activation})])
        spec, args = batch.spec, (batch.world, batch.params, batch.state)
        one = jax.tree.map(lambda a: a[0], args)
        program = programs.record(spec, records.MEASURES)
        start = time.perf_counter()
        values, _ = jax.block_until_ready(program(*args))
        first = time.perf_counter() - start
        y_hat = jax.jit(lambda w, p, s: network.indirect(spec, w, p, s, w.y, x={side: w.probes for side in SIDES}))
        views = jax.jit(lambda w, p, s: network.views(spec, w, p, s))(*one)
        on_views = jax.jit(lambda v: measures.record(v, network.active_names(spec)))
        row = {"values": {name: float(v[0]) for name, v in values.items()},  # the measures at breath 0
               "first_call_s": first, "record_s": best(lambda: program(*args), repeats),
               "y_hat_s": best(lambda: y_hat(*one), repeats), "measures_s": best(lambda: on_views(views), repeats)}
        out["activations"][activation] = row
        log(f"record ({activation}): {row['record_s']:.3f} s (ŷ alone {row['y_hat_s']:.3f} s, the measures alone "
            f"{row['measures_s']:.3f} s; first call {first:.1f} s with compiling)")
    return out


def sgd_cost(overrides: dict[str, Any], points, repeats: int, log) -> dict[str, Any]:
    """A whole ``olfacto.run`` of per-breath SGD (init, learning, the records) at each (N, K) of ``points``:
    the first call (with compiling) and the best of ``repeats`` after it, and its seconds per breath."""
    import olfacto

    rows = []
    for n, degrees in points:
        for k in degrees:
            cfg = _cfg({**overrides, "circuit.n_cortex": n, "circuit.connection_prob": k / n})
            start = time.perf_counter()
            result = olfacto.run(cfg)
            first = time.perf_counter() - start
            wall = best_of(lambda: olfacto.run(cfg), repeats)
            row = {"n_cortex": n, "in_degree": k, "first_call_s": first, "run_s": wall,
                   "s_per_breath": wall / cfg.run.n_breaths, "final_alignment": float(result.dataset.alignment[-1])}
            rows.append(row)
            log(f"sgd N={n:,} K={k}: {wall:.2f} s per run ({row['s_per_breath'] * 1e6:.0f} µs per breath; first call "
                f"{first:.1f} s with compiling), final alignment {row['final_alignment']:.4f}")
    return {"config": {k: v for k, v in overrides.items() if k != "run.progress"}, "points": rows}


# -- report ----------------------------------------------------------------------


def rewiring_cost(overrides: dict[str, Any], repeats: int, log) -> dict[str, Any]:
    """Per rewiring rule: seconds of a chunk of learning between two events (``rewiring.every`` breaths, with the
    scored rules' interval sums) and of one event (its own compiled program), against the same chunk
    without rewiring. Both programs donate the state, so each repeat continues the run. Every rule's
    network is built and compiled first, then the rules are timed in turn, ``repeats`` rounds: the best chunk
    and event of each, and the extra learning as the median over rounds of the rule's chunk minus the chunk
    without rewiring timed just before it (measured rule by rule, the chunk of 200 breaths at N = 10⁵ came
    out 0.3 s in one rule's slot and 0.7 s in another's, with the same program)."""
    from olfacto.engine import loop, programs

    out: dict[str, Any] = {"config": overrides, "rules": {}}
    runs = {}
    for rule, keys in REWIRING_RULES.items():
        batch = loop.build([_cfg({**overrides, **keys})])
        runs[rule] = (batch, programs.advance(batch.spec),
                      programs.event(batch.spec, "rewiring") if rule != "none" else None)

    def chunk(rule):
        batch, advance, _ = runs[rule]
        batch.state = jax.block_until_ready(advance(batch.world, batch.params, batch.state))

    def one_event(rule):
        batch, _, event = runs[rule]
        batch.state = jax.block_until_ready(event(batch.world, batch.params, batch.state))

    # per round and rule: the chunk without rewiring, the rule's chunk and its event, one after the other, so
    # that the extra learning is a difference of neighbours (the chunk's own spread between distant slots of
    # the same program, ±0.05 s of 0.55, made it negative for rules without interval sums)
    times: dict[str, dict[str, list[float]]] = {rule: {"chunk_s": [], "event_s": [], "extra_s": []} for rule in runs}
    for round_ in range(repeats + 1):  # round 0 compiles
        for rule, (_, _, event) in runs.items():
            if event is None:
                continue
            none = best_of(lambda: chunk("none"), 1)  # in this order: neighbours in time
            chunk_s = best_of(lambda r=rule: chunk(r), 1)
            event_s = best_of(lambda r=rule: one_event(r), 1)
            if round_:
                times["none"]["chunk_s"].append(none)
                times[rule]["chunk_s"].append(chunk_s)
                times[rule]["event_s"].append(event_s)
                times[rule]["extra_s"].append(chunk_s - none)
    for rule, (batch, _, event) in runs.items():
        row = {name: float(np.median(v)) if name == "extra_s" else min(v) for name, v in times[rule].items() if v}
        if event is not None:
            row["turnover"] = float(batch.state.parts["rewiring"].turnover[0])  # of the last event timed
        out["rules"][rule] = row
        log(f"  {rule}: chunk of {overrides['rewiring.every']} breaths {row['chunk_s']:.2f} s"
            + (f", event {row['event_s']:.3f} s" if "event_s" in row else ""))
    base = out["rules"]["none"]["chunk_s"]
    for rule, row in out["rules"].items():
        if rule != "none":
            row["event_fraction"] = row["event_s"] / base
            row["overhead_fraction"] = (row["extra_s"] + row["event_s"]) / base
    out["whole_run"] = rewiring_run_cost(overrides, repeats, log)
    return out


REWIRING_RUN_INTERVALS = 5
"""Intervals between events in :func:`rewiring_run_cost`'s whole run: as many records after breath 0 (one per interval,
as ``REWIRING`` records) and one event fewer (none at the last breath: no learning would follow it)."""


def rewiring_run_cost(overrides: dict[str, Any], repeats: int, log) -> dict[str, Any]:
    """What the user waits for: a whole ``olfacto.run`` of :data:`REWIRING_RUN_INTERVALS` intervals (learning, events and
    the records of the default measures) per rule, compiled (a first call per rule compiles), the rules taken in turn
    for ``repeats`` rounds, the best of each; and how much longer than the run without rewiring."""
    import olfacto

    breaths = REWIRING_RUN_INTERVALS * overrides["rewiring.every"]
    cfgs = {rule: _cfg({**overrides, **keys, "run.n_breaths": breaths}) for rule, keys in REWIRING_RULES.items()}
    times: dict[str, list[float]] = {rule: [] for rule in cfgs}
    events = {}
    for round_ in range(repeats + 1):
        for rule, cfg in cfgs.items():
            if round_:
                times[rule].append(best_of(lambda cfg=cfg: olfacto.run(cfg), 1))
                continue
            ds = olfacto.run(cfg).dataset  # round 0 compiles; its record says how many events a run did
            if "rewiring_events" in ds:
                events[rule] = int(ds.rewiring_events.values.ravel()[-1])
    rows = {rule: {"run_s": min(v)} for rule, v in times.items()}
    for rule, row in rows.items():
        if rule in events:
            row["events"] = events[rule]
        row["extra_fraction"] = row["run_s"] / rows["none"]["run_s"] - 1.0
        log(f"  whole run of {breaths:,} breaths, {rule}: {row['run_s']:.2f} s ({100 * row['extra_fraction']:+.1f} %)")
    return {"n_breaths": breaths, "events": REWIRING_RUN_INTERVALS - 1, "records": REWIRING_RUN_INTERVALS + 1,
            "rules": rows}


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def _si(x: float) -> str:
    for unit, f in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= f:
            return f"{x / f:.2f} {unit}"
    return f"{x:.2f} "


def report(out: dict[str, Any]) -> str:
    m = out["machine"]
    cache = f" ({', '.join(m['caches_per_core_or_shared'])})" if m.get("caches_per_core_or_shared") else ""
    lines = [f"machine: {m['cpu']}{cache}, {m['cores']} cores, {m['ram_gb']} GB RAM; jax {m['jax']} on {m['device']}, "
             f"numpy {m['numpy']}; best of {out['repeats']} repeats"]
    if "workload" in out:
        w, bw = out["workload"], out["bandwidth"]
        cfg = w["config"]
        frac = w["bytes_per_breath"] / w["advance_s_per_breath"] / 1e9 / bw["best_gb_s"]
        lines += ["", f"workload: N={cfg['circuit.n_cortex']:,}, M={cfg['circuit.n_glomeruli']}, "
                      f"p={cfg['circuit.connection_prob']} {cfg['circuit.mask']}, {cfg['run.n_breaths']:,} breaths "
                      f"({w['synapses']:,} synapses in {w['slots']:,} slots, both directions)",
                  _table([
                      ("compile (olfacto.run's programs)", f"{w['compile_s']:.2f} s"),
                      ("olfacto.run, compiled", f"{w['run_wall_s']:.2f} s  (with compile {w['run_wall_with_compile_s']:.2f} s)"),
                      ("olfacto.run per breath (incl. measurements)", f"{w['run_s_per_breath'] * 1e6:.0f} µs"),
                      ("  marginal: (run of 3n − run of n breaths) / 2n", f"{w['run_marginal_s_per_breath'] * 1e6:.0f} µs  "
                                                                  f"(learning path {w['plasticity']})"),
                      ("dense-JAX scan per breath (float32)", f"{w['dense_jax_s_per_breath'] * 1e3:.2f} ms"),
                      ("whole run vs NumPy float64 / float32 / dense JAX",
                       f"{w['run_ratio_vs_numpy_float64']:.0f}× / {w['run_ratio_vs_numpy_float32']:.0f}× / "
                       f"{w['run_ratio_vs_dense_jax']:.1f}×"),
                      ("olfacto learning step per breath", f"{w['advance_s_per_breath'] * 1e6:.0f} µs"),
                      ("  rest of the run, per record (measurements)", f"{w['measurement_s_per_record'] * 1e3:.0f} ms"),
                      ("NumPy dense per breath, float64", f"{w['numpy_s_per_breath']['float64'] * 1e3:.2f} ms"),
                      ("NumPy dense per breath, float32", f"{w['numpy_s_per_breath']['float32'] * 1e3:.2f} ms"),
                      ("learning step vs NumPy float64 / float32", f"{w['ratio_vs_numpy_float64']:.0f}× / {w['ratio_vs_numpy_float32']:.0f}×"),
                      ("synapse updates/s olfacto", f"{_si(w['synapse_updates_per_s'])}"),
                      ("synapse updates/s NumPy float64 / float32",
                       f"{_si(w['numpy_synapse_updates_per_s']['float64'])} / {_si(w['numpy_synapse_updates_per_s']['float32'])}"),
                      ("memory bandwidth: NumPy copy / add / JAX triad",
                       f"{bw['numpy_copy_gb_s']:.1f} / {bw['numpy_add_gb_s']:.1f} / {bw['jax_triad_gb_s']:.1f} GB/s "
                       f"({bw['array_mb']} MB arrays)"),
                      (f"olfacto step traffic ({BYTES_PER_SLOT} B/slot of the per-breath algorithm; "
                       f"a chunked path touches each weight once per chunk)",
                       f"{w['bytes_per_breath'] / w['advance_s_per_breath'] / 1e9:.1f} GB/s = {frac:.0%} of "
                       f"{bw['best_gb_s']:.1f} GB/s (working set {w['working_set_mb']:.1f} MB)"),
                  ])]
    if "records" in out:
        rec = out["records"]
        c = rec["config"]
        lines += ["", f"cost of recording (default experiment, N={c['circuit.n_cortex']:,}, {c['run.n_breaths']:,} breaths, "
                      f"every {c['run.record_every']} on {c['run.n_probe']} probes):"]
        for path in ("auto", "per_breath"):
            r = rec[path]
            lines.append(f"  run.plasticity={path:<10s} every {c['run.record_every']}: {r['every']:6.2f} s, at the end only: "
                         f"{r['end']:6.2f} s → recording {r['record_share']:4.0%} of the run, "
                         f"{r['s_per_record'] * 1e3:.1f} ms per record ({r['plasticity_every']})")
    if "scaling" in out:
        lines += ["", f"cost per synapse update at fixed K={out['scaling'][0]['k']} (fixed_indegree):",
                  f"  {'N':>9}  {'synapses':>12}  {'ms/breath':>10}  {'ns/update':>9}  {'GB/s':>6}  {'of bw':>6}"]
        best = out.get("bandwidth", {}).get("best_gb_s")
        for r in out["scaling"]:
            share = f"{r['gb_s'] / best:6.0%}" if best else "     -"
            lines.append(f"  {r['n_cortex']:>9,}  {r['synapses']:>12,}  {r['s_per_breath'] * 1e3:>10.3f}  "
                         f"{r['ns_per_synapse_update']:>9.2f}  {r['gb_s']:>6.1f}  {share}")
        ns = [r["ns_per_synapse_update"] for r in out["scaling"]]
        lines.append(f"  max/min ns per update across N: {max(ns) / min(ns):.2f}")
    for key in ("scale", "mouse"):
        if key not in out:
            continue
        s = out[key]
        c = s["config"]
        k = round(c["circuit.n_cortex"] * c["circuit.connection_prob"])
        lines += ["", f"{s.get('label', key)}: N={c['circuit.n_cortex']:,}, {c['circuit.mask']} K={k}, "
                      f"M={c['circuit.n_glomeruli']}, {c['circuit.activation']}, {c['run.n_breaths']:,} breaths, "
                      f"learning path {s.get('plasticity', 'per_breath')}",
                  _table([("wall time (incl. compile)", f"{s['wall_s']:.1f} s  (compile {s['compile_s']:.1f} s)"),
                          ("per breath (incl. measurements)", f"{s['s_per_breath'] * 1e3:.2f} ms"),
                          ("peak RSS", f"{s['peak_rss_gb']:.2f} GB"),
                          ("final alignment", f"{s['final_alignment']:.3f}")])]
    if "device" in out:
        lines += device_report(out["device"])
    if "record" in out:
        c = out["record"]["config"]
        k = round(c["circuit.n_cortex"] * c["circuit.connection_prob"])
        rows = [(f"{act}: one record / ŷ alone / the measures alone",
                 f"{r['record_s']:.3f} s / {r['y_hat_s']:.3f} s / {r['measures_s']:.3f} s")
                for act, r in out["record"]["activations"].items()]
        lines += ["", f"one record of the default measures: N={c['circuit.n_cortex']:,}, K={k}, "
                      f"M={c['circuit.n_glomeruli']}, {c['run.n_probe']} probes", _table(rows)]
    if "rewiring" in out:
        rw = out["rewiring"]
        c = rw["config"]
        k = round(c["circuit.n_cortex"] * c["circuit.connection_prob"])
        base = rw["rules"]["none"]["chunk_s"]
        rows = [(f"learning between events ({c['rewiring.every']} breaths, no rewiring)", f"{base:.2f} s")]
        for rule, row in rw["rules"].items():
            if rule != "none":
                rows.append((f"{rule}: event (share) / extra learning per interval / share of both",
                             f"{row['event_s']:.3f} s ({100 * row['event_fraction']:.1f} %) / "
                             f"{row['extra_s']:+.3f} s / {100 * row['overhead_fraction']:.1f} %"))
        run = rw["whole_run"]
        rows.append((f"whole olfacto.run ({run['n_breaths']:,} breaths, {run['events']} events, "
                     f"{run['records']} records), none",
                     f"{run['rules']['none']['run_s']:.2f} s"))
        rows += [(f"  {rule}: whole run (longer than without rewiring)",
                  f"{row['run_s']:.2f} s ({100 * row['extra_fraction']:+.1f} %)")
                 for rule, row in run["rules"].items() if rule != "none"]
        lines += ["", f"rewiring: N={c['circuit.n_cortex']:,}, K={k}, M={c['circuit.n_glomeruli']}, "
                      f"{c['circuit.activation']}, ζ={c['rewiring.fraction']}, an event every {c['rewiring.every']} breaths, "
                      f"records every {c['run.record_every']} ({c['run.n_probe']} probes)",
                  _table(rows)]
    if "sgd" in out:
        c = out["sgd"]["config"]
        rows = [(f"N={r['n_cortex']:,}, K={r['in_degree']}: run / per breath / first call",
                 f"{r['run_s']:.2f} s / {r['s_per_breath'] * 1e6:.0f} µs / {r['first_call_s']:.1f} s")
                for r in out["sgd"]["points"]]
        lines += ["", f"per-breath SGD, whole olfacto.run: {c['circuit.activation']}, {c['circuit.mask']}, "
                      f"M={c['circuit.n_glomeruli']}, η={c['learning.lr']}, {c['run.n_breaths']:,} breaths, "
                      f"{c['run.n_probe']} probes", _table(rows)]
    return "\n".join(lines)


# -- command line ----------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a much smaller version (about half a minute, most of it compiling)")
    parser.add_argument("--scale", action="store_true",
                        help="only the scale target: N=100,000, K=50, 2,000 breaths (prints wall time and peak RSS)")
    parser.add_argument("--mouse", action="store_true",
                        help="only the mouse scale: N=1,000,000, K=100, linear (or --activation relu), Hebbian, "
                             "10,000 breaths (prints wall time and peak RSS)")
    parser.add_argument("--activation", choices=("linear", "relu"), default="linear",
                        help="with --mouse or --rewiring: the cortex's φ (relu has no factored form: the mouse scale takes "
                             "25 minutes and 6.3 GB on a 2-core CPU, measured; about a minute on one GPU; docs/benchmarks.md §15)")
    parser.add_argument("--rewiring", action="store_true",
                        help="only the cost of a rewiring event per rule at N=100,000, K=50, every 200 breaths, "
                             "against the learning between two events (linear φ, or --activation relu)")
    parser.add_argument("--record", action="store_true",
                        help="only the cost of one record of the default measures at N=100,000, K=50, 100 probes "
                             "(linear and relu)")
    parser.add_argument("--sgd", action="store_true",
                        help="only per-breath SGD as alignment_vs_p runs it: a whole olfacto.run of 4,000 breaths at "
                             "N=1,000 and 3,000, K=1, 16, 256 (linear, gaussian odors)")
    parser.add_argument("--device", action="store_true",
                        help="the device check: memory bandwidth, the workload and the mouse scale (linear and relu) "
                             "on the first JAX device, with device memory; under 5 minutes on one GPU, smaller on a CPU")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    parser.add_argument("--repeats", type=int, default=3, metavar="R", help="timing repeats, best taken (default 3)")


def main(args: argparse.Namespace) -> int:
    if args.json is not None:  # checked before minutes of work (a bad path failed only at the end); '' too
        from olfacto.config import ConfigError, checks

        if not str(args.json).strip() or Path(args.json).is_dir():
            raise ConfigError(f"--json {args.json!r}: expected the path of a file to write")
        checks.check_outputs(Path(args.json).parent, files=[Path(args.json).name], option="--json")
    repeats = max(1, args.repeats)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    out: dict[str, Any] = {"machine": machine(), "repeats": repeats, "quick": bool(args.quick)}
    if getattr(args, "device", False):
        out["device"] = device_check(bool(args.quick), repeats, log)
    elif getattr(args, "sgd", False):
        out["sgd"] = sgd_cost({**SGD, "run.n_breaths": 1000, "run.record_every": 1000} if args.quick else SGD,
                              SGD_QUICK if args.quick else SGD_POINTS, repeats, log)
    elif getattr(args, "record", False):
        overrides = {**RECORD, "circuit.n_cortex": 10_000, "circuit.connection_prob": 0.005} if args.quick else RECORD
        out["record"] = record_cost(overrides, repeats, log)
    elif getattr(args, "rewiring", False):
        overrides = {**REWIRING, "circuit.n_cortex": 10_000, "circuit.connection_prob": 0.005} if args.quick \
            else REWIRING
        overrides = {**overrides, "circuit.activation": args.activation}
        log(f"rewiring ({args.activation} φ): one event and the learning between two events, per rule")
        out["rewiring"] = rewiring_cost(overrides, repeats, log)
    elif getattr(args, "mouse", False):
        overrides = {**MOUSE, "circuit.n_cortex": 100_000, "circuit.connection_prob": 1e-3,
                     "run.n_breaths": 1000, "run.record_every": 500} if args.quick else MOUSE
        overrides = {**overrides, "circuit.activation": args.activation}
        out["mouse"] = scale_run(overrides, log, label="mouse scale")
    elif args.scale:
        overrides = {**SCALE, "circuit.n_cortex": 10_000, "circuit.connection_prob": 0.005,
                     "run.n_breaths": 200, "run.record_every": 100} if args.quick else SCALE
        out["scale"] = scale_run(overrides, log)
    else:
        quick = args.quick
        out["bandwidth"] = bandwidth(256, repeats=3 if quick else 5)
        bw = out["bandwidth"]
        log(f"bandwidth: NumPy copy {bw['numpy_copy_gb_s']:.1f} GB/s, add {bw['numpy_add_gb_s']:.1f} GB/s, "
            f"JAX triad {bw['jax_triad_gb_s']:.1f} GB/s")
        out["workload"] = workload({**WORKLOAD, **QUICK} if quick else WORKLOAD, repeats,
                                   np_breaths=30 if quick else 300, log=log)
        log("cost of recording, the default experiment over 20,000 breaths:")
        out["records"] = records({**DEFAULT_EXPERIMENT, "run.n_breaths": 2000} if quick else DEFAULT_EXPERIMENT,
                                 repeats, log)
        log("scaling in N at fixed K:")
        out["scaling"] = scaling(SCALE_N[:2] if quick else SCALE_N, SCALE_K, repeats, log,
                                 slot_updates=2e7 if quick else 2e8)
    out["peak_rss_gb"] = peak_rss_bytes() / 1e9
    print(report(out))
    if args.json:
        from olfacto.engine import storage

        storage.atomic_write_bytes(args.json, (json.dumps(out, indent=2, default=float) + "\n").encode())
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
