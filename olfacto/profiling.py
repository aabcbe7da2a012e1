"""Where a run's time goes: separately jitted pieces of the breathing loop and of a record.

``python -m olfacto.profiling [--scale] [--repeats R]`` times, on the bench workload
(N = 2,000, p = 0.05 bernoulli, relu, sparse odors, Hebbian, records on 200 probes) or
with ``--scale`` on N = 100,000, K = 50 fixed_indegree (100 probes):

- the learning loop of one recording chunk (``simulate.advance``) and its parts, each a
  ``lax.scan`` over the same breaths: drawing the odors, the direct responses, the
  gathers y_pre[idx], the rule update with and without the ``valid`` reads;
- one record (``simulate.measure``) vmapped over a batch of one run, as ``olfacto.run``
  calls it, and unbatched, and its parts: the probe products (``sparse.matmat``), the
  extra product of ``update_alignment``, ``laterality_decoding``'s solve,
  ``decoding_transfer``'s P×P, and the tuning profile;
- prototypes of a cheaper record (:func:`fast_measure`) and of a cheaper learning step,
  timed in the same process as the pieces they replace.

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
from . import metrics, odors, plasticity, rules, sparse
from . import simulate as S

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


# -- prototypes -----------------------------------------------------------------------


def probe_sums(mask: sparse.FanIn, y_pre: jax.Array) -> jax.Array:
    """q[p, i] = Σ_{j∈C_i} y_pre[p, j]²: fixed for a run (mask and probes are), so computed once."""
    return sparse.matmat(mask.valid.astype(y_pre.dtype), mask, y_pre**2)


def fast_update_alignment(weights, mask, y_pre, y_post, y_hat, decay, q):
    """:func:`metrics.update_alignment` with the run-constant q passed in (no sparse product)."""
    w2 = jnp.sum(jnp.where(mask.valid, weights**2, 0.0), axis=-1)
    r = y_post - y_hat
    dot = jnp.sum(r * (y_post * q - decay * y_hat), axis=-1)
    ss = jnp.sum(r * r * q, axis=-1)
    hh = jnp.sum(y_post**2 * q - 2 * decay * y_post * y_hat + decay**2 * w2, axis=-1)
    return jnp.mean(dot / jnp.sqrt(jnp.maximum(hh * ss, 0.0) + 1e-12))


def matmat_dense(weights: jax.Array, mask: sparse.FanIn, y_pre: jax.Array) -> jax.Array:
    """(W ⊙ C) y_preᵀ through the dense N_post × N_pre matrix (good for small N / large p)."""
    return jnp.matmul(y_pre, sparse.to_dense(weights, mask).T)


def matmat_gather_t(weights: jax.Array, mask: sparse.FanIn, y_pre: jax.Array) -> jax.Array:
    """Probe by probe as a scan (each probe gathers N·K scalars from one cached vector)."""
    return jax.lax.map(lambda y: jnp.sum(weights * y[mask.idx], axis=-1), y_pre)


def fast_measure(spec, world, params, state, q_rl, q_lr, matmat=sparse.matmat):
    """:func:`simulate.measure` with one probe product per direction shared by every measure
    and the run-constant sums q of update alignment precomputed."""
    c = world.circuit
    y_l, y_r = world.y_L, world.y_R
    yh_r, yh_l = matmat(state.W_rl, c.mask_rl, y_l), matmat(state.W_lr, c.mask_lr, y_r)
    pairs = [(y_r, yh_r), (y_l, yh_l)]
    both = lambda fn: 0.5 * (fn(*pairs[0]) + fn(*pairs[1]))  # noqa: E731
    a_lr, a_rl = metrics.alignment(*pairs[0]), metrics.alignment(*pairs[1])
    return {
        "alignment": 0.5 * (a_lr + a_rl), "alignment_L_to_R": a_lr, "alignment_R_to_L": a_rl,
        "tuning_alignment": both(lambda y, yh: jnp.nanmean(metrics.tuning_correlation(y, yh))),
        "update_alignment": 0.5 * (fast_update_alignment(state.W_rl, c.mask_rl, y_l, y_r, yh_r, params.decay, q_rl)
                                   + fast_update_alignment(state.W_lr, c.mask_lr, y_r, y_l, yh_l, params.decay, q_lr)),
        "decoding_transfer": both(metrics.decoding_transfer),
        "laterality_decoding": both(metrics.laterality_decoding),
        "relative_error": both(metrics.relative_error),
        "weight_rms": 0.5 * (metrics.weight_rms(state.W_rl, c.mask_rl) + metrics.weight_rms(state.W_lr, c.mask_lr)),
    }


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
    world, state = jax.jit(lambda k, p: S.init(spec, k, p))(jax.random.key(cfg.seed), params)
    # a trained state, so the measures see nonzero weights
    state = jax.jit(lambda w, p, s: S.advance(spec, w, p, s, spec.record_every))(world, params, state)
    n = spec.record_every
    c = world.circuit
    out: dict[str, float] = {}

    def t(name, fn, per=1):
        out[name] = best(fn, repeats) / per
        log(f"  {name:<55s} {out[name] * 1e3:10.3f} ms")

    log(f"N={spec.n_cortex}, K_max={spec.k_max} ({spec.mask}), {spec.activation}, {spec.rule}, "
        f"chunk of {n} breaths, {spec.n_probe} probes  [per breath unless 'per record']")
    adv = jax.jit(lambda w, p, s: S.advance(spec, w, p, s, n))
    t("advance (learning loop as in the run)", lambda: adv(world, params, state), n)

    draw = jax.jit(lambda w, p, t0: odors.breaths(w.stream, w.env, p.odor, t0, n))
    t("  draw the chunk's odors (odors.breaths)", lambda: draw(world, params, state.breath), n)
    x_l, x_r = draw(world, params, state.breath)

    def direct(w, p, x_l, x_r):
        y_l = circuit_mod.direct(w.circuit.J_L, x_l, spec.activation, p.active_fraction)
        y_r = circuit_mod.direct(w.circuit.J_R, x_r, spec.activation, p.active_fraction)
        return y_l, y_r

    dir_fn = jax.jit(direct)
    t("  direct responses of both cortices", lambda: dir_fn(world, params, x_l, x_r), n)
    y_l, y_r = dir_fn(world, params, x_l, x_r)

    def scan_given_x(w, p, s, x_l, x_r):
        xs = (x_l.reshape(n, 1, -1), x_r.reshape(n, 1, -1))
        return jax.lax.scan(lambda s, x: (S.step(spec, w, p, s, *x), None), s, xs)[0]

    sgx = jax.jit(scan_given_x)
    t("  steps given the odors (direct + both updates)", lambda: sgx(world, params, state, x_l, x_r), n)

    rule = S._rule(spec, params)

    def scan_updates(w_rl, w_lr, y_l, y_r):
        def body(carry, ys):
            a, b = carry
            yl, yr = ys
            da, _ = rule.update(a, (), c.mask_rl, yl[None], yr[None])
            db, _ = rule.update(b, (), c.mask_lr, yr[None], yl[None])
            return (a + da, b + db), None
        return jax.lax.scan(body, (w_rl, w_lr), (y_l, y_r))[0]

    su = jax.jit(scan_updates)
    t("  both rule updates given y (rules.update)", lambda: su(state.W_rl, state.W_lr, y_l, y_r), n)

    if spec.rule == "hebbian":
        upd = hebbian_no_valid(params.lr, params.decay)

        def scan_nv(w_rl, w_lr, y_l, y_r):
            def body(carry, ys):
                a, b = carry
                yl, yr = ys
                return (upd(a, c.mask_rl, yl, yr), upd(b, c.mask_lr, yr, yl)), None
            return jax.lax.scan(body, (w_rl, w_lr), (y_l, y_r))[0]

        snv = jax.jit(scan_nv)
        t("  both Hebbian updates without valid reads", lambda: snv(state.W_rl, state.W_lr, y_l, y_r), n)

    def scan_gather(y_l, y_r):
        def body(acc, ys):
            yl, yr = ys
            return acc + jnp.sum(sparse.gather(c.mask_rl, yl)) + jnp.sum(sparse.gather(c.mask_lr, yr)), None
        return jax.lax.scan(body, jnp.float32(0), (y_l, y_r))[0]

    sg = jax.jit(scan_gather)
    t("  both gathers y_pre[idx] only (summed)", lambda: sg(y_l, y_r), n)

    if spec.rule in plasticity.CHUNKED_RULES:
        for form in ("dense", "gather"):
            if form == "dense" and spec.n_cortex > 20_000:
                continue

            def chunked(w_rl, w_lr, y_l, y_r, form=form):
                w = {"L_to_R": w_rl, "R_to_L": w_lr}
                masks = {"L_to_R": c.mask_rl, "R_to_L": c.mask_lr}
                st = {"L_to_R": (), "R_to_L": ()}
                streams = {"L": plasticity.explicit(y_l), "R": plasticity.explicit(y_r)}
                return plasticity.update_pair(spec.rule, w, st, masks, streams, params.lr, params.decay,
                                              params.mean_rate, 1, form)[0]

            ch = jax.jit(chunked)
            t(f"  PROTOTYPE chunked update ({form}), both directions, given y",
              lambda ch=ch: ch(state.W_rl, state.W_lr, y_l, y_r), n)

    # -- records
    prog = S.programs(spec)
    bw, bp, bs = jax.tree.map(lambda a: a[None], (world, params, state))
    t("measure, vmapped over a batch of 1 (as olfacto.run) [per record]", lambda: prog["measure"](bw, bp, bs))
    meas = jax.jit(lambda w, p, s: S.measure(spec, w, p, s))
    t("measure, unbatched [per record]", lambda: meas(world, params, state))
    mm = jax.jit(lambda w, m, y: sparse.matmat(w, m, y))
    t("  probe products: 2 × sparse.matmat", lambda: (mm(state.W_rl, c.mask_rl, world.y_L),
                                                      mm(state.W_lr, c.mask_lr, world.y_R)))
    yh_r, yh_l = mm(state.W_rl, c.mask_rl, world.y_L), mm(state.W_lr, c.mask_lr, world.y_R)
    qq = jax.jit(probe_sums)
    t("  update_alignment's extra products (q), both", lambda: (qq(c.mask_rl, world.y_L), qq(c.mask_lr, world.y_R)))
    ua = jax.jit(metrics.update_alignment)
    t("  update_alignment (incl. its product), both",
      lambda: (ua(state.W_rl, c.mask_rl, world.y_L, world.y_R, yh_r, params.decay),
               ua(state.W_lr, c.mask_lr, world.y_R, world.y_L, yh_l, params.decay)))
    lat = jax.jit(metrics.laterality_decoding)
    t("  laterality_decoding (P×P solve), both", lambda: (lat(world.y_R, yh_r), lat(world.y_L, yh_l)))
    dec = jax.jit(metrics.decoding_transfer)
    t("  decoding_transfer (P×P), both", lambda: (dec(world.y_R, yh_r), dec(world.y_L, yh_l)))
    rest = jax.jit(lambda y, yh: (metrics.alignment(y, yh), jnp.nanmean(metrics.tuning_correlation(y, yh)),
                                  metrics.relative_error(y, yh)))
    t("  alignment + tuning alignment + relative error, both", lambda: (rest(world.y_R, yh_r), rest(world.y_L, yh_l)))
    wr = jax.jit(metrics.weight_rms)
    t("  weight_rms, both", lambda: (wr(state.W_rl, c.mask_rl), wr(state.W_lr, c.mask_lr)))
    tun = jax.jit(lambda w, p, s: S.tuning_profile(spec, w, p, s))
    t("tuning profile (once per run) [per record]", lambda: tun(world, params, state))

    q_rl, q_lr = qq(c.mask_rl, world.y_L), qq(c.mask_lr, world.y_R)
    fm = jax.jit(lambda w, p, s, a, b: fast_measure(spec, w, p, s, a, b))
    t("PROTOTYPE fast_measure, unbatched (q precomputed) [per record]", lambda: fm(world, params, state, q_rl, q_lr))
    fmv = jax.jit(jax.vmap(lambda w, p, s, a, b: fast_measure(spec, w, p, s, a, b)))
    t("PROTOTYPE fast_measure, vmapped batch of 1 [per record]",
      lambda: fmv(bw, bp, bs, q_rl[None], q_lr[None]))
    if spec.n_cortex <= 20_000:
        md = jax.jit(matmat_dense)
        t("  PROTOTYPE matmat through the dense matrix, both",
          lambda: (md(state.W_rl, c.mask_rl, world.y_L), md(state.W_lr, c.mask_lr, world.y_R)))
    mg = jax.jit(matmat_gather_t)
    t("  PROTOTYPE matmat probe by probe, both",
      lambda: (mg(state.W_rl, c.mask_rl, world.y_L), mg(state.W_lr, c.mask_lr, world.y_R)))
    # agreement of the prototype record with the current one
    ref, new = meas(world, params, state), fm(world, params, state, q_rl, q_lr)
    out["fast_measure_max_abs_diff"] = max(float(jnp.abs(ref[k] - new[k])) for k in ref)
    log(f"  fast_measure vs measure: max |Δ| over the measures = {out['fast_measure_max_abs_diff']:.1e}")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m olfacto.profiling", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", action="store_true", help="N = 100,000, K = 50 fixed_indegree instead of the bench workload")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    args = parser.parse_args(argv)
    from . import config

    overrides = dict(SCALE if args.scale else BENCH)
    overrides.update(dict(config.parse_override(s) for s in args.set))
    profile(overrides, args.repeats, lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
