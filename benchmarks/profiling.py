"""Where a run's time goes: separately jitted pieces of the breathing loop and of a record.

``python -m benchmarks.profiling [--scale] [--repeats R] [--set KEY=VALUE …]`` (from the repository root)
times, on the bench workload (N = 2,000, p = 0.05 bernoulli, relu, sparse odors, Hebbian, records
on 200 probes) or with ``--scale`` on N = 100,000, K = 50 fixed_indegree (100 probes):

- one recording chunk of learning (:func:`olfacto.model.network.learn`) per breath, on the
  per-breath and on the chosen path, and its parts, each a ``lax.scan`` over the same breaths:
  drawing the odors, the direct responses, the per-breath rule updates, the gathers y_pre[idx],
  and the chunked update (:mod:`olfacto.model.chunked`, kernels ``dense`` and ``gather``);
- one record of the measures (vmapped over a batch of one run, as ``olfacto.run`` calls it) and
  its parts: the probe products (``sparse.matmat``), the update alignment's presynaptic sums,
  the decoders and the tuning correlations.

``--sgd``: does a chunked delta rule (SGD) pay off? Timings are the best of ``--repeats``; they
are benchmarks, not tests.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp

from olfacto import config
from olfacto.config.tree import params_of
from olfacto.engine import programs, records, runtime
from olfacto.model import chunked, circuit, measures, network, odors, projection, sparse
from olfacto.model.circuit import DIRECTIONS, SIDES, post, pre

BENCH = {
    "circuit.n_cortex": 2000, "circuit.n_glomeruli": 50, "circuit.connection_prob": 0.05,
    "circuit.mask": "bernoulli", "circuit.activation": "relu", "odors.kind": "sparse",
    "learning.rule": "hebbian", "run.n_breaths": 10_000, "run.record_every": 500, "run.n_probe": 200,
    "run.progress": False,
}
SCALE = {**BENCH, "circuit.n_cortex": 100_000, "circuit.connection_prob": 0.0005, "circuit.mask": "fixed_indegree",
         "run.n_breaths": 2000, "run.record_every": 200, "run.n_probe": 100}


def best(fn: Callable[[], Any], repeats: int) -> float:
    jax.block_until_ready(fn())  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def profile(overrides: dict[str, Any], repeats: int, log: Callable[[str], None]) -> dict[str, float]:
    cfg = config.from_dict(**overrides)
    spec, params = network.spec_of(cfg), params_of(cfg)
    per_breath_spec = network.spec_of(config.replace(cfg, **{"run.plasticity": "per_breath"}))
    world, state = jax.jit(lambda k, p: network.init(spec, k, p))(jax.random.key(cfg.seed), params)
    n = spec.run.record_every
    state = jax.jit(lambda w, p, s: network.learn(spec, w, p, s, n))(world, params, state)  # nonzero weights
    masks, lp = world.masks, params.learning
    out: dict[str, float] = {}

    def t(name, fn, per=1):
        out[name] = best(fn, repeats) / per
        log(f"  {name:<66s} {out[name] * 1e3:10.3f} ms")

    log(f"N={spec.circuit.n_cortex}, K_max={spec.projection.slots} ({spec.circuit.mask}), {spec.circuit.activation}, "
        f"{spec.learning.rule}, chunk of {n} breaths, {spec.run.n_probe} probes  [ms per breath unless 'per record']")
    adv_pb = jax.jit(lambda w, p, s: network.learn(per_breath_spec, w, p, s, n))
    t("learn a chunk, per-breath path", lambda: adv_pb(world, params, state), n)
    how = projection.chunk_plan(spec, n)
    adv = jax.jit(lambda w, p, s: network.learn(spec, w, p, s, n))
    t(f"learn a chunk, run.plasticity={spec.run.plasticity} → {how.describe()}, sub-chunks of {how.sub_steps}",
      lambda: adv(world, params, state), n)

    draw = jax.jit(lambda w, p, t0: odors.breaths(w.stream, w.env, p.odors, t0, n))
    t("  draw the chunk's odors (odors.breaths)", lambda: draw(world, params, state.breath), n)
    x_l, x_r = draw(world, params, state.breath)
    x = {"L": x_l, "R": x_r}
    dir_fn = jax.jit(lambda w, p, x: circuit.direct_all(w.circuit, x, p.circuit.active_fraction))
    t("  direct responses of both cortices, whole chunk at once", lambda: dir_fn(world, params, x), n)
    y = dir_fn(world, params, x)
    transform = projection.transform_of(per_breath_spec, params)

    def scan_updates(w, y):
        def body(w, ys):
            return {d: w[d] + transform.update(w[d], (), masks[d], ys[pre(d)][None], ys[post(d)][None])[0]
                    for d in DIRECTIONS}, None
        return jax.lax.scan(body, w, y)[0]

    if spec.learning.rule != "covariance":  # its per-breath state is the running means, not ()
        su = jax.jit(scan_updates)
        t("  both per-breath rule updates given y", lambda: su(state.weights, y), n)

    def scan_gather(y):
        def body(acc, ys):
            return acc + sum(jnp.sum(sparse.gather(masks[d], ys[pre(d)])) for d in DIRECTIONS), None
        return jax.lax.scan(body, jnp.float32(0), y)[0]

    sg = jax.jit(scan_gather)
    t("  both per-breath gathers y_pre[idx] alone (summed)", lambda: sg(y), n)

    rule = projection.rule_of(spec)
    if rule.chunk is not None:
        for kernel in chunked.KERNELS:
            if kernel == "dense" and spec.circuit.n_cortex > 20_000:
                continue

            def one_chunk(w, y, kernel=kernel):
                streams = {s: chunked.explicit(y[s]) for s in SIDES}
                st = {d: () for d in DIRECTIONS}
                return chunked.update_pair(rule, w, st, masks, streams, lp, 1, False, kernel)[0]

            ch = jax.jit(one_chunk)
            t(f"  chunked update, kernel {kernel}, both directions, given y", lambda ch=ch: ch(state.weights, y), n)

    # -- a record of the measures, as the run loop calls it
    bw, bp, bs = jax.tree.map(lambda a: a[None], (world, params, state))
    prog = programs.record(spec, records.MEASURES)
    t("record of every measure, vmapped batch of 1 as olfacto.run [per record]", lambda: prog(bw, bp, bs))
    # the parts: jitted with their inputs as arguments (closed-over arrays would be constant-folded)
    yp = {d: world.y[pre(d)] for d in DIRECTIONS}
    yq = {d: world.y[post(d)] for d in DIRECTIONS}
    for kernel in ("gather", "dense", "auto"):
        if kernel == "dense" and spec.circuit.n_cortex > 20_000:
            continue
        mm = jax.jit(lambda w, m, y, k=kernel: {d: sparse.matmat(w[d], m[d], y[d], kernel=k) for d in DIRECTIONS})
        t(f"  probe products, 2 × sparse.matmat ({kernel})", lambda mm=mm: mm(state.weights, masks, yp))
    y_hat = jax.jit(circuit.indirect_all)(masks, state.weights, world.y)
    qq = jax.jit(lambda m, y: {d: measures.presynaptic_sums(m[d], y[d]) for d in DIRECTIONS})
    t("  update_alignment's presynaptic sums, both (once per run)", lambda: qq(masks, yp))

    def both(fn):
        f = jax.jit(lambda a, b: [fn(a[d], b[d]) for d in DIRECTIONS])
        return lambda: f(yq, y_hat)

    t("  laterality_decoding (P×P solve), both", both(measures.laterality_decoding))
    t("  decoding_transfer (P×P), both", both(measures.decoding_transfer))
    t("  tuning correlations, both", both(measures.tuning_correlation))
    t("  alignment + relative error, both", both(lambda a, b: (measures.alignment(a, b), measures.relative_error(a, b))))
    return out


def sgd_chunk_floor(sizes=((2000, 166), (100_000, 50)), chunks=(4, 16), repeats: int = 3, log=print) -> None:
    """Does a chunked delta rule (SGD) pay off? Its least work per chunk of T breaths is the
    per-row T × T Gram matrix of the gathered presynaptic activities (then a triangular solve per
    row and the update); timed against T per-breath SGD steps."""
    from types import SimpleNamespace

    import numpy as np

    from olfacto.model import rules

    for n, k in sizes:
        rng = np.random.default_rng(0)
        idx = jnp.asarray(np.sort(rng.integers(0, n, (n, k)), 1), jnp.int32)
        mask = sparse.FanIn(idx=idx, valid=jnp.ones((n, k), bool), n_pre=n)
        w = jnp.zeros((n, k))
        transform = rules.rule("sgd").per_breath(SimpleNamespace(lr=jnp.float32(0.01), momentum=jnp.float32(0)), "sgd")
        s0 = transform.init(w)
        for t in chunks:
            y = jnp.asarray(np.maximum(rng.normal(size=(t, n)), 0), jnp.float32)
            steps = jax.jit(lambda w, y: jax.lax.scan(
                lambda w, b: (w + transform.update(w, s0, mask, b[0][None], b[1][None])[0], None), w, (y, y[::-1]))[0])
            rows = max(1, (1 << 18) // (k * t))
            blocks = chunked._row_blocks(idx, rows)
            gram = jax.jit(lambda v: jax.lax.map(
                lambda i: (lambda g: jnp.einsum("rkt,rks->rts", g, g))(v.at[i].get(mode="promise_in_bounds")), blocks))
            log(f"N={n} K={k} T={t}: {t} per-breath SGD steps {best(lambda: steps(w, y), repeats) * 1e3:.1f} ms; "
                f"the chunk's per-row Gram alone {best(lambda: gram(y.T), repeats) * 1e3:.1f} ms")


def main(argv=None) -> int:
    runtime.cpu_scheduler_workaround()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", action="store_true", help="N = 100,000, K = 50 fixed_indegree instead of the bench workload")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--sgd", action="store_true", help="only: does a chunked delta rule (SGD) pay off?")
    args = parser.parse_args(argv)
    if args.sgd:
        sgd_chunk_floor(repeats=args.repeats)
        return 0
    overrides = dict(SCALE if args.scale else BENCH)
    overrides.update(dict(config.parse_override(s) for s in args.set))
    profile(overrides, args.repeats, lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
