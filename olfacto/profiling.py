"""Where a run's time goes: separately jitted pieces of the breathing loop and of a record.

``python -m olfacto.profiling [--scale] [--repeats R] [--set KEY=VALUE …]`` times, on the
bench workload (N = 2,000, p = 0.05 bernoulli, relu, sparse odors, Hebbian, records on
200 probes) or with ``--scale`` on N = 100,000, K = 50 fixed_indegree (100 probes):

- the learning loop of one recording chunk (``simulate.advance``) per breath and its
  parts, each a ``lax.scan`` over the same breaths: drawing the odors, the direct
  responses, the gathers y_pre[idx], the rule update with and without the ``valid``
  reads; and the chunked path of :mod:`olfacto.plasticity` (``dense``, ``gather``);
- one record (``simulate.measure``, vmapped over a batch of one run as ``olfacto.run``
  calls it) before and after the changes of issue 10, and its parts: the probe
  products (``sparse.matmat`` with the old and new block budget), the extra product of
  ``update_alignment`` (now computed once per run), ``laterality_decoding``'s solve,
  ``decoding_transfer``'s P×P, the tuning correlations (column sums before/after).

"before" is the implementation before issue 10, kept here only to be timed against.
Timings are the best of ``--repeats``; they are benchmarks, not tests.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp

from . import circuit as circuit_mod
from . import measures, odors, plasticity, sparse
from . import simulate as S
from .circuit import DIRECTIONS, SIDES, post, pre

BENCH = {
    "circuit.n_cortex": 2000, "circuit.n_glomeruli": 50, "circuit.connection_prob": 0.05,
    "circuit.mask": "bernoulli", "circuit.activation": "relu", "odors.kind": "sparse",
    "learning.rule": "hebbian", "run.n_breaths": 10_000, "run.record_every": 500, "run.n_probe": 200,
    "run.progress": False,
}
SCALE = {**BENCH, "circuit.n_cortex": 100_000, "circuit.connection_prob": 0.0005, "circuit.mask": "fixed_indegree",
         "run.n_breaths": 2000, "run.record_every": 200, "run.n_probe": 100}
OLD_BUDGET = 1 << 24  # sparse.matmat's block budget before issue 10


def best(fn: Callable[[], Any], repeats: int) -> float:
    jax.block_until_ready(fn())  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return min(times)


# -- the record before issue 10 (timed against the current one) ---------------------------


def _pearson_before(a, b, axis=-1):
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    num = (a * b).sum(axis=axis)
    den = jnp.sqrt((a * a).sum(axis=axis) * (b * b).sum(axis=axis))
    return jnp.where(den > 1e-12, num / jnp.where(den > 1e-12, den, 1.0), jnp.nan)


def _laterality_before(direct, indirect, ridge=1e-2):
    half = direct.shape[0] // 2
    x_train = jnp.concatenate([direct[:half], indirect[:half]])
    x_test = jnp.concatenate([direct[half:], indirect[half:]])
    t_train = jnp.concatenate([jnp.ones(half), -jnp.ones(half)])
    t_test = jnp.concatenate([jnp.ones(direct.shape[0] - half), -jnp.ones(direct.shape[0] - half)])
    mu = x_train.mean(axis=0)
    x_train, x_test = x_train - mu, x_test - mu
    gram = x_train @ x_train.T
    reg = ridge * (jnp.trace(gram) / gram.shape[0] + 1e-12)
    alpha = jnp.linalg.solve(gram + reg * jnp.eye(gram.shape[0]), t_train - t_train.mean())
    score = x_test @ (x_train.T @ alpha) + t_train.mean()
    return jnp.mean(jnp.sign(score) == t_test)


def measure_before(spec, world, params, state) -> dict[str, jax.Array]:
    """The record as computed before issue 10: q per record, 2^24-float blocks, major-axis sums."""
    c = world.circuit
    mm = lambda w, m, y: sparse.matmat(w, m, y, budget=OLD_BUDGET, kernel="gather")  # noqa: E731
    out = {}
    for d in DIRECTIONS:
        y_pre, y_post, w, m = world.y[pre(d)], world.y[post(d)], state.weights[d], c.masks[d]
        y_hat = mm(w, m, y_pre)
        q = mm(m.valid.astype(y_pre.dtype), m, y_pre**2)
        out[d] = {
            "alignment": jnp.nanmean(_pearson_before(y_post, y_hat, -1)),
            "tuning_alignment": jnp.nanmean(_pearson_before(y_post, y_hat, 0)),
            "update_alignment": measures.update_alignment(w, m, y_pre, y_post, y_hat, params.learning.decay, q),
            "decoding_transfer": measures.decoding_transfer(y_post, y_hat),
            "laterality_decoding": _laterality_before(y_post, y_hat),
            "relative_error": measures.relative_error(y_post, y_hat),
            "weight_rms": measures.weight_rms(w, m),
        }
    return {k: 0.5 * (out["L_to_R"][k] + out["R_to_L"][k]) for k in out["L_to_R"]}


def hebbian_no_valid(lr, decay):
    """The Hebbian step without the ``valid`` reads (exact for fixed_indegree masks, all slots valid)."""
    a = 1.0 - lr * decay

    def update(w, mask, y_pre, y_post):
        return a * w + lr * y_post[:, None] * y_pre[mask.idx]

    return update


# -- the profile ------------------------------------------------------------------------


def profile(overrides: dict[str, Any], repeats: int, log: Callable[[str], None]) -> dict[str, float]:
    from . import config

    cfg = config.from_dict(**overrides)
    spec, params = S.spec_of(cfg), S.params_of(cfg)
    per_breath_spec = S.spec_of(config.replace(cfg, **{"run.plasticity": "per_breath"}))
    world, state = jax.jit(lambda k, p: S.init(spec, k, p))(jax.random.key(cfg.seed), params)
    n = spec.run.record_every
    # a trained state, so the measures see nonzero weights
    state = jax.jit(lambda w, p, s: S.advance(spec, w, p, s, n))(world, params, state)
    c = world.circuit
    lp = params.learning
    out: dict[str, float] = {}

    def t(name, fn, per=1):
        out[name] = best(fn, repeats) / per
        log(f"  {name:<66s} {out[name] * 1e3:10.3f} ms")

    log(f"N={spec.circuit.n_cortex}, K_max={spec.k_max} ({spec.circuit.mask}), {spec.circuit.activation}, "
        f"{spec.learning.rule}, chunk of {n} breaths, {spec.run.n_probe} probes  [ms per breath unless 'per record']")
    adv_pb = jax.jit(lambda w, p, s: S.advance(per_breath_spec, w, p, s, n))
    t("advance, per-breath path (as before issue 10)", lambda: adv_pb(world, params, state), n)
    how = S.plasticity_plan(spec, n)
    adv = jax.jit(lambda w, p, s: S.advance(spec, w, p, s, n))
    t(f"advance, run.plasticity={spec.run.plasticity} → {how.describe()}, sub-chunks of {how.sub_steps}",
      lambda: adv(world, params, state), n)

    draw = jax.jit(lambda w, p, t0: odors.breaths(w.stream, w.env, p.odors, t0, n))
    t("  draw the chunk's odors (odors.breaths)", lambda: draw(world, params, state.breath), n)
    x_l, x_r = draw(world, params, state.breath)
    x = {"L": x_l, "R": x_r}
    dir_fn = jax.jit(lambda w, p, x: circuit_mod.direct_all(w.circuit, x, p.circuit.active_fraction))
    t("  direct responses of both cortices, whole chunk at once", lambda: dir_fn(world, params, x), n)

    def direct_per_breath(w, p, x):
        def body(acc, xs):
            y = circuit_mod.direct_all(w.circuit, {s: xs[s][None] for s in SIDES}, p.circuit.active_fraction)
            return acc + sum(v.sum() for v in y.values()), None
        return jax.lax.scan(body, jnp.float32(0), x)[0]

    dpb = jax.jit(direct_per_breath)
    t("  direct responses breath by breath (as in the per-breath scan)", lambda: dpb(world, params, x), n)
    y = dir_fn(world, params, x)

    rule = S._rule(per_breath_spec, params)

    def scan_updates(w, y):
        def body(w, ys):
            return {d: w[d] + rule.update(w[d], (), c.masks[d], ys[pre(d)][None], ys[post(d)][None])[0]
                    for d in DIRECTIONS}, None
        return jax.lax.scan(body, w, y)[0]

    if spec.learning.rule != "covariance":
        su = jax.jit(scan_updates)
        t("  both per-breath rule updates given y (rules.update)", lambda: su(state.weights, y), n)

    if spec.learning.rule == "hebbian":
        upd = hebbian_no_valid(lp.lr, lp.decay)

        def scan_nv(w, y):
            def body(w, ys):
                return {d: upd(w[d], c.masks[d], ys[pre(d)], ys[post(d)]) for d in DIRECTIONS}, None
            return jax.lax.scan(body, w, y)[0]

        snv = jax.jit(scan_nv)
        t("  both per-breath Hebbian updates without the valid reads", lambda: snv(state.weights, y), n)

    def scan_gather(y):
        def body(acc, ys):
            return acc + sum(jnp.sum(sparse.gather(c.masks[d], ys[pre(d)])) for d in DIRECTIONS), None
        return jax.lax.scan(body, jnp.float32(0), y)[0]

    sg = jax.jit(scan_gather)
    t("  both per-breath gathers y_pre[idx] alone (summed)", lambda: sg(y), n)

    if spec.learning.rule in plasticity.CHUNKED_RULES:
        for form in ("dense", "gather"):
            if form == "dense" and spec.circuit.n_cortex > 20_000:
                continue

            def chunked(w, y, form=form):
                streams = {s: plasticity.explicit(y[s]) for s in SIDES}
                st = {d: () for d in DIRECTIONS}
                return plasticity.update_pair(spec.learning.rule, w, st, c.masks, streams, lp.lr, lp.decay,
                                              lp.mean_rate, 1, form)[0]

            ch = jax.jit(chunked)
            t(f"  chunked update, kernel {form}, both directions, given y", lambda ch=ch: ch(state.weights, y), n)

    # -- records
    bw, bp, bs = jax.tree.map(lambda a: a[None], (world, params, state))
    before = jax.jit(jax.vmap(lambda w, p, s: measure_before(spec, w, p, s)))
    t("record BEFORE issue 10, vmapped batch of 1 [per record]", lambda: before(bw, bp, bs))
    prog = S.programs(spec)
    t("record NOW (simulate.measure), vmapped batch of 1 as olfacto.run [per record]",
      lambda: prog["measure"](bw, bp, bs))
    old_r, new_r = before(bw, bp, bs), prog["measure"](bw, bp, bs)[0]
    out["record_max_abs_diff"] = max(float(jnp.abs(old_r[k] - new_r[k]).max()) for k in old_r)
    log(f"  before vs now: max |Δ| over the measures = {out['record_max_abs_diff']:.1e}")

    # the parts: jitted with their inputs as arguments (closed-over arrays would be constant-folded)
    yp = {d: world.y[pre(d)] for d in DIRECTIONS}
    yq = {d: world.y[post(d)] for d in DIRECTIONS}
    for label, budget, kernel in (("before: gather, 2^24-float blocks", OLD_BUDGET, "gather"),
                                  ("gather, 2^18-float blocks", sparse._GATHER_BUDGET, "gather"),
                                  ("dense: to_dense + matmul", 0, "dense"),
                                  ("now: auto", sparse._GATHER_BUDGET, "auto")):
        if kernel == "dense" and spec.circuit.n_cortex > 20_000:
            continue
        mm = jax.jit(lambda w, m, y, b=budget, k=kernel: {d: sparse.matmat(w[d], m[d], y[d], budget=b, kernel=k)
                                                          for d in DIRECTIONS})
        t(f"  probe products, 2 × sparse.matmat ({label})", lambda mm=mm: mm(state.weights, c.masks, yp))
    y_hat = jax.jit(circuit_mod.indirect_all)(c, state.weights, world.y)
    qq = jax.jit(lambda m, y: {d: measures.presynaptic_sums(m[d], y[d]) for d in DIRECTIONS})
    t("  update_alignment's q products, both (before: every record; now: once per run)", lambda: qq(c.masks, yp))

    def both(fn):
        f = jax.jit(lambda a, b: [fn(a[d], b[d]) for d in DIRECTIONS])
        return lambda: f(yq, y_hat)

    t("  laterality_decoding (P×P solve), both, before", both(_laterality_before))
    t("  laterality_decoding (P×P solve), both, now (column mean as a product)", both(measures.laterality_decoding))
    t("  decoding_transfer (P×P), both", both(measures.decoding_transfer))
    t("  tuning correlations, both, before (major-axis sums)", both(lambda a, b: _pearson_before(a, b, 0)))
    t("  tuning correlations, both, now (sums as products)", both(measures.tuning_correlation))
    t("  alignment + relative error, both", both(lambda a, b: (measures.alignment(a, b), measures.relative_error(a, b))))
    return out


def sgd_chunk_floor(sizes=((2000, 166), (100_000, 50)), chunks=(4, 16), repeats: int = 3, log=print) -> None:
    """Does a chunked delta rule (SGD) pay off? Its least work per chunk of T breaths is the
    per-row T × T Gram matrix of the gathered presynaptic activities (then a triangular solve per
    row and the update); timed against T per-breath SGD steps of :mod:`olfacto.rules`."""
    from types import SimpleNamespace

    import numpy as np

    from . import rules

    for n, k in sizes:
        rng = np.random.default_rng(0)
        idx = jnp.asarray(np.sort(rng.integers(0, n, (n, k)), 1), jnp.int32)
        mask = sparse.FanIn(idx=idx, valid=jnp.ones((n, k), bool), n_pre=n)
        w = jnp.zeros((n, k))
        rule = rules.make_rule("sgd", SimpleNamespace(lr=jnp.float32(0.01), momentum=jnp.float32(0)), "sgd")
        s0 = rule.init(w)
        for t in chunks:
            y = jnp.asarray(np.maximum(rng.normal(size=(t, n)), 0), jnp.float32)
            steps = jax.jit(lambda w, y: jax.lax.scan(
                lambda w, b: (w + rule.update(w, s0, mask, b[0][None], b[1][None])[0], None), w, (y, y[::-1]))[0])
            rows = max(1, (1 << 18) // (k * t))
            blocks = plasticity._row_blocks(idx, rows)
            gram = jax.jit(lambda v: jax.lax.map(
                lambda i: (lambda g: jnp.einsum("rkt,rks->rts", g, g))(v.at[i].get(mode="promise_in_bounds")), blocks))
            log(f"N={n} K={k} T={t}: {t} per-breath SGD steps {best(lambda: steps(w, y), repeats) * 1e3:.1f} ms; "
                f"the chunk's per-row Gram alone {best(lambda: gram(y.T), repeats) * 1e3:.1f} ms")


def main(argv=None) -> int:
    from . import config, runtime

    runtime.cpu_scheduler_workaround()
    parser = argparse.ArgumentParser(prog="python -m olfacto.profiling", description=__doc__.splitlines()[0])
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
