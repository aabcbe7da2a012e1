"""The chunked plasticity of olfacto.model.chunked equals the per-breath recursion of olfacto.model.rules.

Reference: the rule's ``update`` of :mod:`olfacto.model.rules` applied T/B times in a
``lax.scan`` (float32), from the same nonzero initial weights (and nonzero running
means for the covariance rule). T = 37 breaths (prime) for B = 1 and T = 39 (13
updates) for B = 3. Masks are ``bernoulli`` with empty slots, N_pre ≠ N_post for one
direction, so a transposed index shows. Tolerance (float32, both paths round
differently, errors grow ~√T):

    |W_chunk − W_ref| ≤ 2e-5 · max|W_ref|        (elementwise), empty slots exactly 0

The observed disagreement is ≲ 1e-6 · max|W_ref|.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import olfacto
from olfacto.config.tree import params_of
from olfacto.model import chunked as plasticity, circuit, native, network, projection, rules, sparse
from olfacto.model.circuit import DIRECTIONS, SIDES, post, pre

N_PRE, N_POST, M, P = 41, 29, 6, 0.3
LR, DECAY, MEAN_RATE = {"hebbian": 0.05, "oja": 0.03, "covariance": 0.05}, 0.5, 0.1
ATOL_REL = 2e-5
CHUNKED_RULES = [name for name, r in rules.RULES.items() if r.chunk is not None]


def learning_params(rule):
    return SimpleNamespace(lr=jnp.float32(LR[rule]), decay=jnp.float32(DECAY), momentum=jnp.float32(0.0),
                           mean_rate=jnp.float32(MEAN_RATE))


def chunk_update(rule, w, state, mask, pre, post, learning, batch, form):
    """One direction after a chunk, in the given form (``dense``, ``gather`` or ``factored``)."""
    r = rules.rule(rule)
    factored, kernel = plasticity.choose(form, r, w.shape[0], mask.n_pre, w.shape[1], pre.dense().shape[0], M,
                                         pre.factored)
    chunk, state = r.chunk(pre, post, state, learning, batch, factored)
    return plasticity.apply(chunk, w, mask, kernel), state


def draw(seed: int, t: int, n_pre: int = N_PRE, n_post: int = N_POST):
    """Mask, initial weights, initial means and a stream of t breaths (inputs x, bulb matrices J).

    Drawn with NumPy: compiling JAX's PRNG for every shape would dominate this file's time.
    The mask is bernoulli-like: k_max distinct sorted partners per row, each slot valid
    with probability pN/k_max.
    """
    rng = np.random.default_rng(seed)
    k_max = sparse.slots(n_post, n_pre, P, "bernoulli")
    idx = np.sort(np.stack([rng.choice(n_pre, k_max, replace=False) for _ in range(n_post)]), axis=1)
    valid = rng.random((n_post, k_max)) < P * n_pre / k_max
    mask = sparse.FanIn(idx=jnp.asarray(idx, jnp.int32), valid=jnp.asarray(valid), n_pre=n_pre)
    f = lambda *shape: jnp.asarray(rng.normal(size=shape), jnp.float32)  # noqa: E731
    w0 = jnp.where(mask.valid, 0.3 * f(n_post, k_max), 0.0)
    means = (0.2 * f(n_pre), 0.2 * f(n_post))
    return mask, w0, means, (f(t, M), f(n_pre, M) / M**0.5), (f(t, M), f(n_post, M) / M**0.5)


def per_breath(rule, w, state, mask, y_pre, y_post, batch):
    """T/B updates of olfacto.model.rules, one after another (the reference path)."""
    r = rules.rule(rule).per_breath(learning_params(rule), "sgd")
    n = y_pre.shape[0] // batch

    def step(carry, ys):
        w, s = carry
        dw, s = r.update(w, s, mask, *ys)
        return (w + dw, s), None

    (w, state), _ = jax.lax.scan(step, (w, state), (y_pre.reshape(n, batch, -1), y_post.reshape(n, batch, -1)))
    return w, state


def stream(x, j, activation):
    if activation == "linear":
        return plasticity.linear(x, j)
    return plasticity.explicit(jax.nn.relu(x @ j.T))


def assert_close(got, want, mask):
    got, want = np.asarray(got), np.asarray(want)
    valid = np.asarray(mask.valid)
    assert (~valid).any(), "the test needs empty slots"
    assert np.all(got[~valid] == 0.0)
    scale = np.abs(want).max()
    assert scale > 0.01
    print(f"max |Δ| / max|W| = {np.abs(got - want).max() / scale:.1e}")
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL_REL * scale)


CASES = [  # (activation, form, batch)
    ("relu", "dense", 1),
    ("relu", "gather", 3),
    ("linear", "factored", 1),
    ("linear", "factored", 3),
    ("linear", "gather", 1),
    ("relu", "numba", 3),
]


@pytest.mark.parametrize("rule", CHUNKED_RULES)
@pytest.mark.parametrize(("activation", "form", "batch"), CASES)
def test_chunk_equals_per_breath(rule, activation, form, batch):
    t = 37 if batch == 1 else 39
    mask, w0, means, (x_pre, j_pre), (x_post, j_post) = draw(1, t)
    pre, post = stream(x_pre, j_pre, activation), stream(x_post, j_post, activation)
    state = means if rule == "covariance" else ()
    got_w, got_s = jax.jit(lambda w, s, a, b: chunk_update(rule, w, s, mask, a, b, learning_params(rule), batch, form))(
        w0, state, pre, post)
    want_w, want_s = per_breath(rule, w0, state, mask, pre.dense(), post.dense(), batch)
    assert_close(got_w, want_w, mask)
    for g, w in zip(jax.tree.leaves(got_s), jax.tree.leaves(want_s)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("rule", "activation", "form"), [
    ("hebbian", "relu", "dense"),  # one dense product shared by both directions (transposed)
    ("oja", "linear", "factored"),
    ("covariance", "relu", "gather"),
    ("hebbian", "linear", "factored-numba"),  # the compiled loop on factored operands (the linear mouse scale's)
])
def test_pair_equals_per_breath(rule, activation, form):
    """Both directions of a bilateral circuit (N_L = N_R) against the per-breath path."""
    t, n = 37, 40
    mask_rl, w_rl, means, (x_l, j_l), (x_r, j_r) = draw(2, t, n, n)
    mask_lr, w_lr, *_ = draw(3, t, n, n)
    streams = {"L": stream(x_l, j_l, activation), "R": stream(x_r, j_r, activation)}
    masks, w = {"L_to_R": mask_rl, "R_to_L": mask_lr}, {"L_to_R": w_rl, "R_to_L": w_lr}
    state = ({"L_to_R": means, "R_to_L": means[::-1]} if rule == "covariance" else {"L_to_R": (), "R_to_L": ()})
    factored, kernel = (True, form.partition("-")[2] or "gather") if form.startswith("factored") else (False, form)
    got, got_state = jax.jit(lambda w, s, st: plasticity.update_pair(rules.rule(rule), w, s, masks, st,
                                                                      learning_params(rule), 1, factored, kernel))(
        w, state, streams)
    for direction in DIRECTIONS:
        want, want_state = per_breath(rule, w[direction], state[direction], masks[direction],
                                      streams[pre(direction)].dense(), streams[post(direction)].dense(), 1)
        assert_close(got[direction], want, masks[direction])
        for g, s in zip(jax.tree.leaves(got_state[direction]), jax.tree.leaves(want_state)):
            np.testing.assert_allclose(np.asarray(g), np.asarray(s), rtol=1e-5, atol=1e-6)


def test_long_factored_chunk_with_negative_decay_factor():
    """T = 1,001 breaths in one factored chunk with a = 1 − ηλ < 0 (oscillating decay, exact powers)."""
    t = 1001
    mask, w0, _, (x_pre, j_pre), (x_post, j_post) = draw(4, t)
    lr, decay = jnp.float32(0.02), jnp.float32(60.0)  # a = −0.2
    pre, post = plasticity.linear(x_pre, j_pre), plasticity.linear(x_post, j_post)
    learning = SimpleNamespace(lr=lr, decay=decay, mean_rate=jnp.float32(0))
    got, _ = chunk_update("hebbian", w0, (), mask, pre, post, learning, 1, "factored")
    r = rules.hebbian(lr, decay)
    want, _ = jax.lax.scan(lambda w, ys: (w + r.update(w, (), mask, ys[0][None], ys[1][None])[0], None), w0,
                           (pre.dense(), post.dense()))
    assert_close(got, want, mask)


def test_choice_of_form():
    # linear φ and T > M: factored; the kernel follows the cost of the shapes
    # (on a CPU the gathered products by the compiled loop, elsewhere by XLA's gather)
    assert plasticity.choose("auto", rules.rule("hebbian"), 100_000, 100_000, 50, 200, 50, True) == (True, "numba")
    assert plasticity.choose("auto", rules.rule("hebbian"), 100_000, 100_000, 50, 200, 50, True,
                             "gpu") == (True, "gather")
    assert plasticity.choose("auto", rules.rule("oja"), 2000, 2000, 1000, 500, 50, False) == (False, "dense")
    assert plasticity.choose("auto", rules.rule("hebbian"), 100_000, 100_000, 50, 200, 50, False) == (False, "numba")
    assert plasticity.plan("auto", rules.rule("hebbian"), "relu", 100_000, 50, 50, 200, 1,
                           sharded=True).kernel == "gather"  # an FFI call is not partitioned over devices
    assert plasticity.plan("auto", rules.rule("hebbian"), "linear", 100_000, 50, 50, 200, 1,
                           sharded=True).describe() == "chunked:factored-gather"  # still factored
    with pytest.raises(ValueError, match="run.plasticity='numba': a compiled loop for the CPU, and this program "
                                         "runs on gpu; allowed here: auto, per_breath, dense, gather, factored"):
        plasticity.choose("numba", rules.rule("hebbian"), 10, 10, 3, 5, 4, True, "gpu")
    assert plasticity.choose("auto", rules.rule("hebbian"), 1000, 1000, 100, 20, 50, True)[0] is False  # T < M
    assert plasticity.choose("gather", rules.rule("oja"), 10, 10, 3, 5, 4, True) == (False, "gather")
    with pytest.raises(ValueError, match="form='factored' needs circuit.activation='linear'"):
        plasticity.choose("factored", rules.rule("hebbian"), 10, 10, 3, 5, 4, False)
    with pytest.raises(ValueError, match="rule='sgd' has no chunked form"):
        plasticity.choose("auto", rules.rule("sgd"), 10, 10, 3, 5, 4, True)
    with pytest.raises(ValueError, match="form='blocked': allowed are"):
        plasticity.choose("blocked", rules.rule("hebbian"), 10, 10, 3, 5, 4, True)


# -- in the simulator ------------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["gather", "numba"])
def test_sub_chunks_with_a_remainder_equal_per_breath(kernel):
    """plasticity.advance over 50 updates in sub-chunks of 7 (7 × 7 + 1), mini-batch B = 2, with XLA's gather and
    with the compiled loop."""
    n, t_steps, batch = 40, 50, 2
    rng = np.random.default_rng(5)
    circ = circuit.Circuit(J={s: jnp.asarray(rng.normal(size=(n, M)) / M**0.5, jnp.float32) for s in SIDES},
                           activation="relu")
    masks = {d: draw(6 + i, 1, n, n)[0] for i, d in enumerate(DIRECTIONS)}
    w0 = {d: jnp.where(masks[d].valid, jnp.asarray(rng.normal(0, 0.3, masks[d].idx.shape), jnp.float32), 0.0)
          for d in DIRECTIONS}
    x = {s: jnp.asarray(rng.normal(size=(t_steps * batch, M)), jnp.float32) for s in SIDES}
    learning = SimpleNamespace(lr=jnp.float32(0.05), decay=jnp.float32(DECAY), momentum=jnp.float32(0.0),
                               mean_rate=jnp.float32(MEAN_RATE))
    how = plasticity.Plan("chunked", False, kernel, 7)
    got, _ = jax.jit(lambda w, x: plasticity.advance(how, rules.rule("hebbian"), circ, masks, w,
                                                     {d: () for d in DIRECTIONS}, x, learning, jnp.float32(0.1),
                                                     batch))(w0, x)
    y = circuit.direct_all(circ, x, jnp.float32(0.1))
    for d in DIRECTIONS:
        want, _ = per_breath("hebbian", w0[d], (), masks[d], y[pre(d)], y[post(d)], batch)
        assert_close(got[d], want, masks[d])


RUN = {"circuit.n_cortex": 48, "circuit.n_glomeruli": 8, "circuit.connection_prob": 0.3, "circuit.activation": "relu",
       "odors.noise": 0.2, "learning.lr": 0.02, "run.n_breaths": 120, "run.record_every": 30, "run.n_probe": 12,
       "run.progress": False}


def first(tree):
    """Run 0 of a batched PyTree."""
    return jax.tree.map(lambda a: a[0], tree)


@functools.cache
def runs() -> dict[str, olfacto.Result]:
    """The same relu run (bernoulli masks, 4 recording chunks of 30 breaths) chunked and per breath."""
    return {p: olfacto.run(olfacto.config.from_dict(**{**RUN, "run.plasticity": p})) for p in ("auto", "per_breath")}


def test_run_chunked_equals_per_breath_at_every_record():
    """olfacto.run records the same with run.plasticity=auto (chunked) as per breath, record by record."""
    chunked, ref = runs()["auto"], runs()["per_breath"]
    assert chunked.dataset.attrs["plasticity"] == "chunked:dense"
    assert ref.dataset.attrs["plasticity"] == "per_breath"
    for name in olfacto.model.measures.recorded():
        np.testing.assert_allclose(chunked.dataset[name].values, ref.dataset[name].values, rtol=1e-4, atol=1e-5,
                                   err_msg=name)
    for d in DIRECTIONS:
        assert_close(chunked.state.weights[d][0], ref.state.weights[d][0], first(chunked.world.masks[d]))


def start_state(weights, rule_state):
    """A network State holding only the projection (no recurrence), at breath 0."""
    return network.State(parts={"projection": projection.Learned(weights, rule_state)},
                         breath=jnp.zeros((), jnp.int32))


def _advance(world, state, n_breaths, record_every, **dotted):
    """``network.learn`` chunk by chunk (one call per record), as olfacto.run does; the states at the records."""
    cfg = olfacto.config.from_dict(**{**RUN, **dotted, "run.n_breaths": n_breaths, "run.record_every": record_every})
    spec, params = network.spec_of(cfg), params_of(cfg)
    step = jax.jit(lambda w, p, s: network.learn(spec, w, p, s, record_every // cfg.learning.batch))
    states = []
    for _ in range(n_breaths // record_every):
        state = step(world, params, state)
        states.append(state)
    return states, network.plans(spec)["projection"]


def _auto_and_per_breath(dotted, n_breaths, record_every):
    """The world of :func:`runs` (linear φ if ``dotted`` says so), and the states at each record from W = 0.1 at
    every synapse with ``dotted`` as run.plasticity=auto and =per_breath take it: ((states, plan), (states, plan))."""
    world = first(runs()["auto"].world)
    cfg = olfacto.config.from_dict(**{**RUN, **dotted, "run.n_breaths": n_breaths, "run.record_every": record_every})
    transform = projection.transform_of(network.spec_of(cfg), params_of(cfg))
    w0 = {d: jnp.where(world.masks[d].valid, 0.1, 0.0) for d in DIRECTIONS}
    state = start_state(w0, {d: transform.init(w0[d]) for d in DIRECTIONS})
    if dotted.get("circuit.activation") == "linear":
        world = world.replace(circuit=world.circuit.replace(activation="linear"))
    return (world, _advance(world, state, n_breaths, record_every, **dotted),
            _advance(world, state, n_breaths, record_every, **{**dotted, "run.plasticity": "per_breath"}))


@pytest.mark.parametrize("dotted", [
    {"learning.rule": "covariance", "learning.batch": 4, "learning.mean_rate": 0.05},
    {"learning.rule": "oja", "learning.lr": 0.01, "circuit.activation": "linear"},
    {"learning.rule": "covariance", "learning.batch": 2, "learning.mean_rate": 0.05, "run.plasticity": "numba"},
])
def test_advance_chunked_equals_per_breath_at_record_boundaries(dotted):
    """Mini-batches and the other rules, on the world of :func:`runs`: equal states at each of 3 records (the
    compiled loop's products too)."""
    world, (got, how), (want, ref) = _auto_and_per_breath(dotted, 120, 40)
    assert how.startswith("chunked:") and ref == "per_breath"
    for g, w in zip(got, want):
        assert int(g.breath) == int(w.breath)
        for d in DIRECTIONS:
            assert_close(g.weights[d], w.weights[d], world.masks[d])
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                     g.parts["projection"].rule_state, w.parts["projection"].rule_state)


@pytest.mark.parametrize("dotted", [
    {"learning.batch": 1},
    {"learning.batch": 3, "circuit.activation": "linear"},
    {"learning.batch": 2, "learning.optimizer": "momentum"},  # not the loop's rule: XLA's scan either way
])
def test_compiled_sgd_loop_equals_per_breath(dotted):
    """Per-breath SGD (optax's plain sgd) by the compiled loop (run.plasticity=auto on a CPU: per_breath:numba)
    equals XLA's per-breath scan (run.plasticity=per_breath) at each of 3 records, mini-batches of 1–3 breaths,
    relu and linear φ, on the bernoulli masks of :func:`runs` (empty slots stay 0)."""
    world, (got, how), (want, ref) = _auto_and_per_breath({"learning.rule": "sgd", "learning.lr": 0.01, **dotted},
                                                          108, 36)
    assert (how, ref) == ("per_breath:numba" if dotted.get("learning.optimizer") is None else "per_breath",
                          "per_breath")
    for g, w in zip(got, want):
        for d in DIRECTIONS:
            assert_close(g.weights[d], w.weights[d], world.masks[d])


def test_compiled_sgd_block_under_vmap_equals_the_rule():
    """native.sgd_block vmapped over two learning rates (a sweep's batch) equals per-breath steps of
    rules.sgd(optax.sgd(η)) for each η, 12 updates of 2 breaths (rtol 2·10⁻⁵ of the largest weight)."""
    mask, w0, _, (x_pre, j_pre), (x_post, j_post) = draw(21, 24)
    y_pre = jnp.maximum(x_pre @ j_pre.T, 0.0).reshape(12, 2, -1)
    y_post = jnp.maximum(x_post @ j_post.T, 0.0).reshape(12, 2, -1)
    lrs = jnp.asarray([0.02, 0.05], jnp.float32)
    got = jax.jit(jax.vmap(native.sgd_block, in_axes=(None, None, None, None, None, 0)))(
        w0, mask.idx, mask.valid, y_pre, y_post, lrs)
    for lr, g in zip(lrs, got):
        r = rules.sgd(rules.optimizer("sgd", lr, jnp.float32(0.0)))
        state = r.init(w0)
        want, _ = jax.lax.scan(lambda w, ys: (w + r.update(w, state, mask, *ys)[0], None), w0, (y_pre, y_post))
        assert_close(g, want, mask)
        assert float(jnp.max(jnp.abs(want - w0))) > 0.01  # it learned


def test_compiled_loops_do_not_depend_on_their_threads(monkeypatch):
    """Each row is summed by one thread in one order, so the loops give the same bits on one core as on two (two
    batches at once share the cores between their loops: native._run_shared)."""
    mask, w0, _, (x_pre, j_pre), (x_post, j_post) = draw(22, 40)
    y_pre = jnp.maximum(x_pre @ j_pre.T, 0.0)
    y_post = jnp.maximum(x_post @ j_post.T, 0.0)
    learn = jax.jit(lambda w: native.sgd_block(w, mask.idx, mask.valid, y_pre.reshape(20, 2, -1),
                                               y_post.reshape(20, 2, -1), jnp.float32(0.03)))
    product = jax.jit(lambda u: native.sddmm(u, y_pre.T, mask.idx))
    runs = {}
    for cores in (1, 2):
        monkeypatch.setattr(native, "_CORES", cores)
        runs[cores] = np.asarray(learn(w0)), np.asarray(product(y_post.T))
    for one, two in zip(runs[1], runs[2]):
        np.testing.assert_array_equal(one, two)


def test_chunk_size_does_not_change_the_result():
    """One 120-breath chunk ends where the 4 chunks of 30 breaths of :func:`runs` end (dense kernel both)."""
    world = first(runs()["auto"].world)
    zero = {d: jnp.zeros_like(world.masks[d].idx, jnp.float32) for d in DIRECTIONS}
    start = start_state(zero, {d: () for d in DIRECTIONS})
    (one,), how = _advance(world, start, 120, 120)
    assert how == "chunked:dense"
    four = first(runs()["auto"].state)
    for d in DIRECTIONS:
        assert_close(one.weights[d], four.weights[d], world.masks[d])


@pytest.mark.parametrize(("dotted", "message"), [
    ({"run.plasticity": "factored", "circuit.activation": "relu"},
     "run.plasticity=factored: needs circuit.activation=linear (got relu)"),
    ({"run.plasticity": "dense", "learning.rule": "sgd"},
     "run.plasticity=dense: learning.rule=sgd has no chunked form; allowed are auto, per_breath"),
    ({"run.plasticity": "blocked"}, "run.plasticity='blocked'"),
])
def test_bad_plasticity_choice(dotted, message):
    with pytest.raises(olfacto.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        olfacto.config.from_dict(**dotted)


def test_sgd_and_short_chunks_learn_per_breath():
    assert plasticity.plan("auto", rules.rule("sgd"), "linear", 1000, 100, 50, 100, 1).path == "per_breath"
    assert plasticity.plan("auto", rules.rule("hebbian"), "relu", 1000, 100, 50, 3, 1).path == "per_breath"
    how = plasticity.plan("auto", rules.rule("hebbian"), "linear", 1_000_000, 100, 50, 2000, 1)
    assert (how.path, how.factored, how.sub_steps) == ("chunked", True, 2000)  # the mouse scale: one factored chunk
    how = plasticity.plan("auto", rules.rule("hebbian"), "relu", 100_000, 50, 50, 200, 1)
    assert how.sub_steps * 6 * 100_000 <= plasticity._STREAM_BUDGET["cpu"]  # explicit streams stay under the budget


def test_sub_chunks_fill_an_accelerator_and_never_get_short():
    """The explicit streams' sub-chunks: on a GPU or TPU each sub-chunk is a step of a sequential loop, so they are
    sized to fill the device (1 GiB of streams per run) instead of a CPU's 256 MiB: 1,000 breaths per record at
    N = 3·10⁵ in sub-chunks of 143 breaths instead of 100; and never shorter than 96 breaths where the budget would
    allow fewer (short gathered rows cost XLA:CPU twice as much): 100 at N = 10⁶ (the budget alone: 11), mini-
    batches of 8 in sub-chunks of ≥ 12 updates. Below N ≈ 1.2·10⁵ the budget alone decides, as before."""
    def sub(n, backend, steps=1000, batch=1):
        how = plasticity.plan("auto", rules.rule("hebbian"), "relu", n, 100, 50, steps, batch, backend=backend)
        assert (how.path, how.kernel) == ("chunked", "numba" if backend == "cpu" else "gather")
        return how.sub_steps

    assert (sub(300_000, "cpu"), sub(300_000, "gpu")) == (100, 143)
    assert (sub(1_000_000, "cpu"), sub(1_000_000, "gpu")) == (100, 100)
    assert [sub(1_000_000, "cpu", steps) for steps in (50, 100, 200, 500, 1150)] == [50, 100, 100, 100, 105]
    assert sub(1_000_000, "cpu", steps=125, batch=8) == 13  # ⌈125 / ⌊125 / 12⌋⌉ updates of 8 breaths
    assert sub(100_000, "cpu", steps=200) == 100  # the budget's 111 breaths: two sub-chunks of 100
    assert 6 * 300_000 * 143 <= plasticity._STREAM_BUDGET["accelerator"]
    assert plasticity.device_kind("cpu") == "cpu" and plasticity.device_kind("tpu") == "accelerator"


@pytest.mark.parametrize("budget", [1, 7 * 5 * 3, None, 1 << 26])
def test_gathered_blocks_of_any_size_give_the_same_update(budget):
    """sddmm_gather in row blocks of one row, of 7 rows, of the CPU default and as one block (an accelerator's)
    equals the float64 product U[i] · V[idx[i, k]] to float32 rounding (rtol 1e-6)."""
    rng = np.random.default_rng(11)
    n_post, n_pre, k, d = 53, 31, 5, 3
    u, v = rng.normal(size=(n_post, d)), rng.normal(size=(n_pre, d))
    idx = rng.integers(0, n_pre, size=(n_post, k))
    want = np.einsum("ikd,id->ik", v[idx], u)
    got = plasticity.sddmm_gather(jnp.asarray(u, jnp.float32), jnp.asarray(v, jnp.float32),
                                  jnp.asarray(idx, jnp.int32), budget)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n_post,n_pre,k,d", [(53, 31, 5, 3), (40, 1000, 8, 100), (7, 9, 3, 1), (0, 4, 3, 2)])
def test_compiled_loop_equals_the_product(n_post, n_pre, k, d):
    """native.sddmm (the numba loop through XLA's FFI: K = 3, 5 — not a multiple of its four rows at once —, 8; d = 1
    to 100; no rows) equals the float64 product U[i] · V[idx[i, k]] to float32 rounding (rtol 1e-5), inside jit,
    and row by row under vmap (a batch of two, the second scaled by 2) and inside a scan."""
    rng = np.random.default_rng(12)
    u, v = rng.normal(size=(n_post, d)), rng.normal(size=(n_pre, d))
    idx = rng.integers(0, n_pre, size=(n_post, k))
    want = np.einsum("ikd,id->ik", v[idx], u)
    args = jnp.asarray(u, jnp.float32), jnp.asarray(v, jnp.float32), jnp.asarray(idx, jnp.int32)
    np.testing.assert_allclose(np.asarray(jax.jit(native.sddmm)(*args)), want, rtol=1e-5, atol=1e-5)
    both = jax.jit(jax.vmap(native.sddmm, in_axes=(0, None, None)))(jnp.stack([args[0], 2 * args[0]]), *args[1:])
    np.testing.assert_allclose(np.asarray(both[1]), 2 * want, rtol=1e-5, atol=1e-5)
    scanned = jax.jit(lambda us: jax.lax.scan(lambda acc, u_: (acc + native.sddmm(u_, *args[1:]), None),
                                              jnp.zeros((n_post, k)), us)[0])(jnp.stack([args[0]] * 3))
    np.testing.assert_allclose(np.asarray(scanned), 3 * want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_post,n_pre,k,d", [(53, 31, 5, 3), (40, 1000, 8, 100), (7, 9, 3, 1), (0, 4, 3, 2)])
def test_compiled_sparse_product_equals_the_gather_kernel(n_post, n_pre, k, d):
    """native.spmm ((W ⊙ C) V, slot after slot with fused multiply-adds) is the float64 product and sparse.matmat's
    gather kernel (transposed) to float32 rounding (rtol 1e-5), keeps its bits when zero-weight slots are appended
    (a batch padded to more slots rewires as alone), maps row by row under vmap (the second member's weights
    scaled by 2: exact), and sparse.project takes it only where matmat would gather."""
    from olfacto.model import sparse

    rng = np.random.default_rng(13)
    w, v = rng.normal(size=(n_post, k)), rng.normal(size=(n_pre, d))
    idx = rng.integers(0, n_pre, size=(n_post, k))
    want = np.einsum("ik,ikd->id", w, v[idx])
    w32, v32, idx32 = jnp.asarray(w, jnp.float32), jnp.asarray(v, jnp.float32), jnp.asarray(idx, jnp.int32)
    mask = sparse.FanIn(idx=idx32, valid=jnp.ones(idx.shape, bool), n_pre=n_pre)
    got = np.asarray(jax.jit(native.spmm)(w32, idx32, v32))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    xla = np.asarray(jax.jit(lambda w_, v_: sparse.matmat(w_, mask, v_.T, kernel="gather").T)(w32, v32))
    np.testing.assert_allclose(got, xla, rtol=1e-5, atol=1e-5)
    padded = np.asarray(jax.jit(native.spmm)(jnp.pad(w32, ((0, 0), (0, 3))), jnp.pad(idx32, ((0, 0), (0, 3))), v32))
    np.testing.assert_array_equal(padded, got)
    both = jax.jit(jax.vmap(native.spmm, in_axes=(0, None, None)))(jnp.stack([w32, 2 * w32]), idx32, v32)
    np.testing.assert_array_equal(np.asarray(both[1]), 2 * got)
    if n_post:  # where matmat would not gather (a small dense matrix), its own kernel's bits
        kind = sparse.matmat_kernel(mask, d)
        loop = np.asarray(sparse.project(w32, mask, v32, loop=True))
        np.testing.assert_array_equal(loop, got if kind == "gather" else
                                      np.asarray(sparse.project(w32, mask, v32, loop=False)))


@pytest.mark.parametrize("n_post,n_pre,k,d", [(53, 31, 5, 3), (40, 1000, 8, 100), (7, 9, 3, 1)])
def test_compiled_sparse_product_with_squares_equals_two_products(n_post, n_pre, k, d):
    """native.spmm with the mask C gives, from one pass, (W ⊙ C) V as without it (bit for bit) and
    Σ_k C[i,k] V[idx[i,k]]² — the float64 sums over the valid slots only (a third of them invalid, their indices
    and weights arbitrary) and sparse.squares (XLA's product of C and y²) to float32 rounding (rtol 1e-5);
    sparse.project_squares takes it where matmat gathers and gives XLA's pair elsewhere."""
    from olfacto.model import sparse

    rng = np.random.default_rng(17)
    w, v = rng.normal(size=(n_post, k)), rng.normal(size=(n_pre, d))
    idx, valid = rng.integers(0, n_pre, size=(n_post, k)), rng.random((n_post, k)) > 1 / 3
    want = np.einsum("ik,ikd->id", valid.astype(float), v[idx] ** 2)
    w32, v32, idx32 = jnp.asarray(w, jnp.float32), jnp.asarray(v, jnp.float32), jnp.asarray(idx, jnp.int32)
    mask = sparse.FanIn(idx=idx32, valid=jnp.asarray(valid), n_pre=n_pre)
    out, squares = jax.jit(native.spmm)(w32, idx32, v32, mask.valid)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(jax.jit(native.spmm)(w32, idx32, v32)))
    np.testing.assert_allclose(np.asarray(squares), want, rtol=1e-5, atol=1e-6)
    xla = np.asarray(jax.jit(lambda v_: sparse.squares(mask, v_.T).T)(v32))
    np.testing.assert_allclose(np.asarray(squares), xla, rtol=1e-5, atol=1e-6)
    y_hat, q = sparse.project_squares(w32, mask, v32.T, loop=True)
    fused = sparse.matmat_kernel(mask, d) == "gather"
    y_ref, q_ref = sparse.project_squares(w32, mask, v32.T, loop=False)
    np.testing.assert_array_equal(np.asarray(q), np.asarray(squares).T if fused else np.asarray(q_ref))
    np.testing.assert_array_equal(np.asarray(y_hat), np.asarray(out).T if fused else np.asarray(y_ref))


def test_correlations_with_column_sums_as_products_match_numpy():
    """measures.pearson along axis 0 (sums as products with a ones vector, for XLA:CPU's speed)
    equals NumPy's per-column Pearson correlation; a silent neuron gives NaN."""
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(30, 7)), rng.normal(size=(30, 7))
    b[:, 2] += 3 * a[:, 2]
    a[:, 5] = 0.0  # a neuron silent on every probe
    got = np.asarray(olfacto.model.measures.tuning_correlation(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)))
    want = [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(7) if j != 5]
    assert np.isnan(got[5])
    np.testing.assert_allclose(np.delete(got, 5), want, atol=1e-5)


def test_small_decay_rate_keeps_float32_accuracy():
    """2,000 breaths in one factored Hebbian chunk at ηλ = 0.002 against a float64 recursion.

    Forming a = 1 − ηλ in float32 would err by ~6e-8/ηλ ≈ 3e-5 relative in the steady state;
    the chunk is required within 2e-6 · max|W| (observed ~2e-7)."""
    t, lr, decay = 2000, 0.002, 1.0
    mask, w0, _, (x_pre, j_pre), (x_post, j_post) = draw(9, t)
    learning = SimpleNamespace(lr=jnp.float32(lr), decay=jnp.float32(decay), mean_rate=jnp.float32(0))
    got, _ = chunk_update("hebbian", w0, (), mask, plasticity.linear(x_pre, j_pre), plasticity.linear(x_post, j_post),
                          learning, 1, "factored")
    y_pre = np.asarray(x_pre, np.float64) @ np.asarray(j_pre, np.float64).T
    y_post = np.asarray(x_post, np.float64) @ np.asarray(j_post, np.float64).T
    idx, valid = np.asarray(mask.idx), np.asarray(mask.valid)
    w = np.asarray(w0, np.float64)
    for s in range(t):
        w = w + lr * (y_post[s][:, None] * y_pre[s][idx] - decay * w) * valid
    scale = np.abs(w).max()
    print(f"max |Δ| / max|W| vs float64 = {np.abs(np.asarray(got) - w).max() / scale:.1e}")
    np.testing.assert_allclose(np.asarray(got), w, rtol=0, atol=2e-6 * scale)


@pytest.mark.parametrize("budget, updates_per_block", [(3, 3), (5, 4), (12, 12)])
def test_per_breath_learning_with_responses_in_blocks_equals_breath_by_breath(monkeypatch, budget, updates_per_block):
    """The per-breath path computes the direct responses a block of updates ahead (circuit.scan_responses): blocks
    of 3, 4 (the largest divisor of 12 under a budget of 5 updates) and all 12 updates give the weights of blocks
    of one update (the responses computed update by update, as inside the loop) — per-breath SGD, kwta (a
    threshold per breath), mini-batches of 3 breaths, recurrence learning too — to float32 rounding (rtol 1e-5)."""
    cfg = olfacto.config.from_dict(**{"circuit.n_cortex": 40, "circuit.n_glomeruli": 7, "circuit.activation": "kwta",
                                      "circuit.connection_prob": 0.2, "learning.rule": "sgd", "learning.lr": 0.02,
                                      "learning.batch": 3, "recurrence.connection_prob": 0.2, "run.n_breaths": 36,
                                      "run.record_every": 36, "run.plasticity": "per_breath"})  # A too (else chunked)
    spec = network.spec_of(cfg)
    p = params_of(cfg)
    per_update = 2 * 3 * 40  # floats of one update's responses, both sides
    assert network.plans(spec) == {"projection": "per_breath", "recurrence": "per_breath"}
    assert circuit.block_steps(12, 3, 40) == 12  # the default budget: the whole chunk at once

    def learned(updates):
        monkeypatch.setattr(circuit, "RESPONSE_BLOCK", updates * per_update + per_update // 2)
        world, state = jax.jit(lambda k: network.init(spec, k, p))(jax.random.key(3))
        state = jax.jit(lambda w, s: network.learn(spec, w, p, s, 12))(world, state)
        return state.parts, circuit.block_steps(12, 3, 40)

    want, one = learned(1)
    got, size = learned(budget)
    assert (one, size) == (1, updates_per_block)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6 * float(np.abs(b).max()))
    assert float(np.abs(np.asarray(want["projection"].weights["L_to_R"])).max()) > 0
    assert float(np.abs(np.asarray(want["recurrence"]["L"])).max()) > 0


_EVERY_LOOP = r"""
import json
import jax.numpy as jnp
import numpy as np
from olfacto.model import native

n, k, d = 64, 8, 4
rng = np.random.default_rng(0)
idx = jnp.asarray(rng.integers(0, n, (n, k)), jnp.int32)
w = jnp.asarray(rng.normal(size=(n, k)), jnp.float32)
valid = jnp.ones((n, k), bool)
v = jnp.asarray(rng.normal(size=(n, d)), jnp.float32)
r_i, count = jnp.full(n, 2, jnp.int32), jnp.full(n, 4, jnp.int32)
cand = jnp.asarray(rng.integers(0, n, (n, 1)), jnp.int32)
native.sddmm(v, v, idx)
native.spmm(w, idx, v)
native.spmm(w, idx, v, valid)
native.sgd_block(w, idx, valid, jnp.ones((2, 1, n)), jnp.ones((2, 1, n)), jnp.float32(0.01))
native.regrowth(w, idx, valid, None, cand, None, r_i, count, 2, n, 4, True)
native.rewire(w, idx, valid, valid, None, cand, None, r_i, count, 2, n, 4, True)
native.cht_paths(idx, jnp.full(n, k), idx, jnp.full(n, k), jnp.arange(n), count, 4)


def dispatchers(f):  # a loop, or a wrapper holding its loops in its closure
    if hasattr(f, "stats"):
        yield f
    for cell in getattr(f, "__closure__", None) or ():
        if hasattr(cell.cell_contents, "stats"):
            yield cell.cell_contents


stats = {}
for kernel, f in native._loops().items():
    for j, disp in enumerate(dispatchers(f)):
        stats[f"{kernel}.{j}"] = [sum(disp.stats.cache_hits.values()), sum(disp.stats.cache_misses.values())]
print(json.dumps(stats))
"""


@pytest.mark.slow
def test_every_compiled_loop_loads_from_numbas_disk_cache_in_a_new_process(tmp_path):
    """numba keys its disk cache on a loop's pickled closure cells; a loop capturing a dispatcher or an intrinsic
    (a fresh identifier in every process) missed it and compiled again in every process (2–3 s a loop). A
    process calling every loop once into an empty cache compiles each (misses, no hits); a second process then
    loads each from the cache: not one miss, and a hit for every loop. The first process says on stderr that a
    loop is compiling (CHT's paths: 3–9 s); the second says nothing."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}

    def run():
        done = subprocess.run([sys.executable, "-c", _EVERY_LOOP], env=env, capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr

    first, second = run(), run()
    assert "olfacto: compiling CHT's paths for this CPU, once" in first[1]  # 3–9 s to compile: told
    assert "olfacto: compiling" not in second[1]  # loaded from the cache: nothing to tell
    first, second = first[0], second[0]
    assert len(first) == 7  # sddmm, spmm (plain and with squares), sgd, the event (pairs and in place), cht
    assert all(misses > 0 and hits == 0 for hits, misses in first.values()), first
    assert all(misses == 0 and hits > 0 for hits, misses in second.values()), second


def test_a_loops_first_call_that_compiles_says_so_once(monkeypatch, capsys):
    """native._run_shared: a loop's first call in the process that runs past NOTICE_AFTER_S (numba compiling it)
    prints one line on stderr naming the loop; its second call, and a first call that returns in time (loaded
    from the cache), print nothing."""
    import time

    calls = {"slow": lambda *a: time.sleep(0.3), "quick": lambda *a: None}
    monkeypatch.setattr(native, "_loops", lambda: calls)
    monkeypatch.setattr(native, "NOTICE_AFTER_S", 0.05)
    monkeypatch.setattr(native, "LOOP_NAMES", {**native.LOOP_NAMES, "slow": "a test loop"})
    monkeypatch.setattr(native, "_CALLED", set())
    native._run_shared("slow", [], [])
    native._run_shared("quick", [], [])
    err = capsys.readouterr().err
    assert err == "olfacto: compiling a test loop for this CPU, once (a few seconds; numba keeps it in its cache " \
                  "for later runs)\n"
    native._run_shared("slow", [], [])  # compiled now: the loop's second call says nothing, however long it runs
    assert capsys.readouterr().err == ""
