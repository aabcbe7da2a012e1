"""Structural plasticity (issue 20): synapses that rewire.

What is pinned: an event keeps every neuron's in-degree exactly, never creates a partner twice, prunes
the synapses with the smallest |W| and regrows them at W = 0 (with their optimizer state at 0); the
interval's correlation sums are the same in factored and breath-by-breath form; the best-partners
alignment of the theory against an enumeration of every partner; and Hebbian rewiring lifting the
alignment above the fixed-mask theory without passing the best-partners value."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import olfacto
from olfacto import cli
from olfacto.engine import loop
from olfacto.model import chunked, circuit, measures, native, network, projection, rewiring, sparse, theory
from olfacto.model.circuit import DIRECTIONS, post, pre

from conftest import small


def test_regrow_prunes_the_smallest_weights_into_the_best_valid_candidates():
    """One row, K = 8, ζ = 0.25 → r = 2: slots 5 (|W| = 0.1) and 2 (0.2) are pruned, in that order; the best
    candidate (score 9) is already a partner and the next (8) repeats an earlier candidate, so slot 5 gets
    the candidate of score 7 and slot 2 the one of score 5; the invalid slot 7 (|W| = 0) is never pruned."""
    idx = jnp.array([[10, 11, 12, 13, 14, 15, 16, 17]])
    valid = jnp.array([[True] * 7 + [False]])
    w = jnp.array([[0.9, 0.8, -0.2, 0.7, 0.6, 0.1, -0.5, 0.0]])
    candidates = jnp.array([[12, 30, 31, 30, 32, 33]])
    score = jnp.array([[9.0, 1.0, 7.0, 8.0, 5.0, 2.0]])
    new = rewiring.regrow(idx, valid, jnp.abs(w), candidates, score, 0.25, 2)
    np.testing.assert_array_equal(np.asarray(new), [[-1, -1, 32, -1, -1, 31, -1, -1]])


def test_regrow_keeps_a_synapse_when_no_valid_candidate_is_left():
    """Every candidate is a partner already: nothing is pruned (the in-degree cannot drop)."""
    idx = jnp.array([[0, 1, 2, 3]])
    new = rewiring.regrow(idx, jnp.ones((1, 4), bool), jnp.array([[0.4, 0.3, 0.2, 0.1]]), jnp.array([[0, 1, 3, 3]]),
                          jnp.ones((1, 4)), 0.5, 2)
    np.testing.assert_array_equal(np.asarray(new), [[-1, -1, -1, -1]])


def test_regrow_ranks_nan_weights_last():
    """A diverged run's NaN weights rank as +∞: K = 50 (slots ranked in groups of 2), ζ = 0.1 → 5 slots; with
    NaN in 10 slots of each row the pruned ones are the 5 smallest finite |W|, each given one new partner."""
    n, k = 64, 50
    idx = jnp.broadcast_to(jnp.arange(k), (n, k))
    w = jnp.abs(jax.random.normal(jax.random.key(3), (n, k)))
    w = w.at[:, ::5].set(jnp.nan)
    cand = rewiring.window(jax.random.key(4), n, 20, 10**6)
    assert (np.asarray(cand) >= k).all()  # no window holds a partner: every row regrows its 5
    new = np.asarray(rewiring.regrow(idx, jnp.ones((n, k), bool), w, cand, None, 0.1, 5, 10**6))
    want = np.sort(np.argsort(np.where(np.isnan(np.asarray(w)), np.inf, np.asarray(w)), axis=1)[:, :5], axis=1)
    np.testing.assert_array_equal(np.sort(np.argwhere(new >= 0)[:, 1].reshape(n, 5), axis=1), want)
    assert ((new >= k) | (new == -1)).all()


def at_candidates(g, j_pre, candidates):
    """g_i · J_pre,j at each row's candidates j (any pools): the reference of the factored scores."""
    return jnp.einsum("nm,ncm->nc", g, j_pre[candidates])


@pytest.mark.parametrize("size", [20, 40, 130])
def test_window_pools_take_the_same_partners_as_arbitrary_pools(size):
    """The window path of an event (a partner's place in the window from its index, as bit sets of one or two
    32-bit words, or a scatter beyond BITSET_POOL; the scores of groups of 32 rows sharing a window as one product each, 300 rows: a last
    group of 12) gives exactly the new partners and the scores of the generic path (pairwise comparisons,
    row gather) on the same pools — including windows that wrap around N_pre and partners inside them."""
    n, k, m, n_pre = 300, 12, 6, 2 * size
    k_i, k_w, k_c, k_g, k_j = jax.random.split(jax.random.key(7), 5)
    idx = jax.random.randint(k_i, (n, k), 0, n_pre)  # partners crowded into 0..n_pre − 1: many inside the windows
    valid = jnp.arange(k)[None] < jax.random.randint(k_w, (n, 1), 6, k + 1)
    cand = rewiring.window(k_c, n, size, n_pre, 32)
    offsets = np.asarray(cand[:, 0])
    assert (offsets == np.repeat(offsets[::32], 32)[:n]).all() and len(set(offsets[::32].tolist())) > 5
    assert int((cand[:, 0] > n_pre - size).sum()) > 0  # some windows wrap around
    g, j_pre = jax.random.normal(k_g, (n, m)), jax.random.normal(k_j, (n_pre, m))
    np.testing.assert_allclose(np.asarray(rewiring.shared_products(g, rewiring.wrapped(j_pre, size), cand, 32)),
                               np.asarray(at_candidates(g, j_pre, cand)), rtol=1e-5, atol=1e-5)
    score = jnp.abs(at_candidates(g, j_pre, cand))
    prio = jnp.abs(jax.random.normal(k_w, (n, k)))
    fast = np.asarray(rewiring.regrow(idx, valid, prio, cand, score, 0.25, 3, n_pre))
    generic = np.asarray(rewiring.regrow(idx, valid, prio, cand, score, 0.25, 3))
    np.testing.assert_array_equal(fast, generic)
    assert (fast >= 0).sum() > n  # most rows regrew
    # no score: the first valid candidates in window order, as a score falling along the pool takes them
    ordered = jnp.broadcast_to(-jnp.arange(size, dtype=jnp.float32), (n, size))
    np.testing.assert_array_equal(np.asarray(rewiring.regrow(idx, valid, prio, cand, None, 0.25, 3, n_pre)),
                                  np.asarray(rewiring.regrow(idx, valid, prio, cand, ordered, 0.25, 3)))


@pytest.mark.parametrize("size", [5, 20, 64, 65])
def test_ranked_top_is_top_k(size):
    """rewiring.top (rank counting up to RANKED_POOL, top_k above) returns lax.top_k's values and positions,
    ties (scores rounded to a few values) in index order and −∞ last."""
    k = 5
    score = jnp.round(jax.random.normal(jax.random.key(size), (400, size)) * 2)
    score = jnp.where(jax.random.uniform(jax.random.key(1), score.shape) < 0.3, -jnp.inf, score)
    want_v, want_p = jax.lax.top_k(score, k)
    got_v, got_p = rewiring.top(score, k)
    np.testing.assert_array_equal(np.asarray(got_p), np.asarray(want_p))
    np.testing.assert_array_equal(np.asarray(got_v), np.asarray(want_v))


@pytest.mark.parametrize("gradient", [False, True], ids=["hebbian", "gradient"])
def test_interval_sums_factored_equal_breath_by_breath(gradient):
    """Σ_t a_i(t) y_pre,j(t) through the inputs' second moments equals the sum over the 50 breaths
    (float32: rtol 1e-4 of the largest sum)."""
    key = jax.random.key(3)
    n, m, k, t, size = 40, 6, 5, 50, 7
    k_c, k_m, k_w, k_x, k_cand = jax.random.split(key, 5)
    circ = circuit.make_circuit(k_c, n, m, "gaussian", 0.2, "linear")
    mask = sparse.sample_mask(k_m, n, n, k / n, "fixed_indegree", k)
    weights = jax.random.normal(k_w, (n, k))
    xs = jax.random.normal(k_x, (2, t, m))
    x = {"L": xs[0], "R": xs[1]}
    cand = jax.random.randint(k_cand, (n, size), 0, n)
    args = (circ, mask, weights, x, "L_to_R", cand, gradient, 0.1)
    g = rewiring.interval_factor(circ, mask, weights, x, "L_to_R", gradient)
    fact = np.asarray(at_candidates(g, circ.J[circuit.pre("L_to_R")], cand))
    loop_ = breath_by_breath(*args)
    np.testing.assert_allclose(fact, loop_, rtol=0, atol=1e-4 * np.abs(loop_).max())
    assert np.abs(loop_).max() > 1.0  # not trivially zero


def breath_by_breath(circ, mask, weights, x, direction, candidates, gradient, active_fraction):
    """The reference of the interval's sums (rewiring.interval_sums, rewiring.interval_factor): Σ_t a_i(t) y_pre,j(t)
    accumulated one breath at a time."""
    j_post, j_pre = circ.J[circuit.post(direction)], circ.J[circuit.pre(direction)]
    acc = np.zeros(candidates.shape)
    for xp, xq in zip(x[circuit.post(direction)], x[circuit.pre(direction)]):
        y_post = circuit.direct(j_post, xp[None], circ.activation, active_fraction)[0]
        y_pre = circuit.direct(j_pre, xq[None], circ.activation, active_fraction)[0]
        a = y_post - circuit.indirect(weights, mask, y_pre) if gradient else y_post
        acc += np.asarray(a[:, None] * y_pre[candidates], np.float64)
    return acc


@pytest.mark.parametrize("activation", ["relu", "linear", "kwta"])
@pytest.mark.parametrize("gradient", [False, True], ids=["hebbian", "gradient"])
def test_interval_sums_in_blocks_equal_breath_by_breath(gradient, activation):
    """The candidates' sums over 50 breaths as sampled products of blocks of 7 breaths (7 × 7 + 1) and of one
    block of all 50 equal the breath-by-breath scan (float32: atol 1e-5 of the largest sum); so do the dense
    products of windows shared by groups of 16 rows (40 rows: a last group of 8)."""
    key = jax.random.key(4)
    n, m, k, t, size = 40, 6, 5, 50, 7
    k_c, k_m, k_w, k_x, k_cand = jax.random.split(key, 5)
    circ = circuit.make_circuit(k_c, n, m, "gaussian", 0.2, activation)
    mask = sparse.sample_mask(k_m, n, n, k / n, "fixed_indegree", k)
    weights = jax.random.normal(k_w, (n, k))
    xs = jax.random.normal(k_x, (2, t, m))
    pools = {0: jax.random.randint(k_cand, (n, size), 0, n), 16: rewiring.window(k_cand, n, size, n, 16)}
    for share, cand in pools.items():
        args = (circ, mask, weights, {"L": xs[0], "R": xs[1]}, "R_to_L", cand, gradient, 0.1)
        loop_ = breath_by_breath(*args)
        for block in (7, None):
            got = np.asarray(rewiring.interval_sums(circ, {"R_to_L": mask}, {"R_to_L": weights}, args[3],
                                                    {"R_to_L": cand}, gradient, 0.1, block, share)["R_to_L"])
            np.testing.assert_allclose(got, loop_, rtol=0, atol=1e-5 * np.abs(loop_).max())
        assert np.abs(loop_).max() > 1.0


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_the_gradient_sums_by_the_compiled_product_equal_xlas(activation):
    """The gradient rule's sums with ŷ (relu: rewiring.interval_sums) or V = (W ⊙ C) J_pre (linear:
    rewiring.interval_factor) by the compiled product (``loop``; N = 200, K = 5, where matmat gathers) equal XLA's
    path and the breath-by-breath reference (float32: atol 1e-5 of the largest sum)."""
    key = jax.random.key(5)
    n, m, k, t, size = 200, 6, 5, 30, 7
    k_c, k_m, k_w, k_x = jax.random.split(key, 4)
    circ = circuit.make_circuit(k_c, n, m, "gaussian", 0.2, activation)
    mask = sparse.sample_mask(k_m, n, n, k / n, "fixed_indegree", k)
    assert sparse.matmat_kernel(mask, t) == sparse.matmat_kernel(mask, m) == "gather"
    weights = jax.random.normal(k_w, (n, k))
    xs = jax.random.normal(k_x, (2, t, m))
    x, cand = {"L": xs[0], "R": xs[1]}, rewiring.window(k_x, n, size, n, 16)
    want = breath_by_breath(circ, mask, weights, x, "R_to_L", cand, True, 0.1)
    for loop_ in (True, False):
        if activation == "linear":
            g = rewiring.interval_factor(circ, mask, weights, x, "R_to_L", True, loop_)
            got = np.asarray(at_candidates(g, circ.J[circuit.pre("R_to_L")], cand))
        else:
            got = np.asarray(rewiring.interval_sums(circ, {"R_to_L": mask}, {"R_to_L": weights}, x, {"R_to_L": cand},
                                                    True, 0.1, None, 16, loop_)["R_to_L"])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
    assert np.abs(want).max() > 1.0


CASES = {  # rewiring rule, learning rule and anything else; each checked across 3 events
    "magnitude-sgd-momentum": dict(rewiring__rule="magnitude", learning__rule="sgd", learning__optimizer="momentum",
                                   learning__lr=0.002),
    "random-hebbian": dict(rewiring__rule="random"),
    "hebbian-oja": dict(rewiring__rule="hebbian", learning__rule="oja"),
    "gradient-covariance-per-breath": dict(rewiring__rule="gradient", learning__rule="covariance",
                                           run__plasticity="per_breath"),
    "cht-bernoulli": dict(rewiring__rule="cht", circuit__mask="bernoulli"),
    "hebbian-relu-recurrence": dict(rewiring__rule="hebbian", circuit__activation="relu",
                                    recurrence__connection_prob=0.1),
}
# one case in the everyday suite, every other rule and path among the slow checks (a compile each)
PARAMS = [pytest.param(c, marks=() if i == 0 else pytest.mark.slow, id=c) for i, c in enumerate(CASES)]


def _slots(state, d):
    proj = state.parts["projection"]
    m = proj.masks[d]
    return np.asarray(m.idx)[0], np.asarray(m.valid)[0], np.asarray(proj.weights[d])[0]


@pytest.mark.parametrize("case", PARAMS)
def test_events_keep_in_degree_prune_smallest_and_regrow_at_zero(case):
    """N = 64, K_max = 16, ζ = 0.25, a pool of 8 candidates per pruned synapse, an event every 100 breaths:
    after each event every row has its K_i synapses, all distinct, in range; the replaced synapses are the
    round(ζ K_i) smallest |W| of their row (random pruning: as many), and start at W = 0 — with the
    optimizer's per-synapse state (momentum) at 0; the breath-0 synapses' survival falls as recorded. The event
    runs as the compiled loop here (a CPU): XLA's own event gives the same state to the bit."""
    cfg = small(**{**dict(circuit__connection_prob=0.25, circuit__mask="fixed_indegree", run__n_breaths=300,
                          rewiring__every=100, rewiring__fraction=0.25, rewiring__candidates=8), **CASES[case]})
    batch = loop.build([cfg])
    rule = cfg.rewiring.rule
    assert chunked.loops(batch.spec)
    by_xla = jax.jit(loop.programs.over_runs(lambda w, p, s: rewiring.event(batch.spec, w, s, loop=False)))
    n_replaced = 0
    for _ in range(3):
        before = jax.tree.map(np.asarray, batch.state)
        # the event runs inside advance, after the chunk: compare with the chunk's weights just before it
        batch.state = loop.programs.advance(batch.spec)(batch.world, batch.params, batch.state)
        learned = jax.tree.map(np.asarray, batch.state)
        want = jax.tree.map(np.asarray, by_xla(batch.world, batch.params, batch.state))
        batch.state = loop.programs.event(batch.spec, "rewiring")(batch.world, batch.params, batch.state)
        after = jax.tree.map(np.asarray, batch.state)
        jax.tree.map(np.testing.assert_array_equal, after, want)
        assert int(after.parts["rewiring"].events[0]) == int(before.parts["rewiring"].events[0]) + 1
        for d in DIRECTIONS:
            idx0, valid0, w0 = _slots(learned, d)
            idx1, valid1, w1 = _slots(after, d)
            np.testing.assert_array_equal(valid1, valid0)  # the same slots hold synapses: K_i unchanged
            n = idx1.shape[0]
            assert ((idx1 >= 0) & (idx1 < n)).all()
            for i in range(n):
                partners = idx1[i][valid1[i]]
                assert len(set(partners.tolist())) == len(partners), (d, i, partners)
            changed = idx1 != idx0
            assert not (changed & ~valid0).any()
            np.testing.assert_array_equal(w1[changed], 0.0)
            np.testing.assert_array_equal(w1[~changed], w0[~changed])
            k_i = valid0.sum(1)
            r_i = np.round(0.25 * k_i).astype(int)
            if rule == "cht":  # sampled L3 paths often end at partners already: fewer valid candidates, kept synapses
                assert (changed.sum(1) <= r_i).all()
            else:  # the pool always held enough valid candidates
                np.testing.assert_array_equal(changed.sum(1), r_i)
            if rule != "random":
                mag = np.where(valid0, np.abs(w0), np.inf)
                for i in range(n):
                    kth = np.sort(mag[i])[r_i[i] - 1]
                    assert (mag[i][changed[i]] <= kth).all() and (mag[i][changed[i]] <= mag[i][~changed[i] & valid0[i]].min()).all()
            if cfg.learning.optimizer == "momentum" and cfg.learning.rule == "sgd":
                trace = [leaf for leaf in jax.tree.leaves(after.parts["projection"].rule_state[d])
                         if leaf.shape == after.parts["projection"].weights[d].shape]
                assert trace and all((np.asarray(t)[0][changed] == 0).all() for t in trace)
            n_replaced += int(changed.sum())
    assert n_replaced > 0
    survival = np.mean([(np.asarray(after.parts["rewiring"].origin[d])[0] & valid1).sum() / valid1.sum()
                        for d in DIRECTIONS])
    assert survival < 1.0
    assert network.finite(batch.spec, jax.tree.map(lambda a: a[0], batch.state))


def test_best_partners_alignment_by_enumeration():
    """Each neuron of a drawn circuit (N = 500, M = 20) keeps the K = 10 of all 500 partners with the largest
    |J_post,i · J_pre,j| — found by enumerating every pair —, the Hebbian fixed point on that mask is
    measured on 200 gaussian probes with the simulator's own functions, and the population alignment
    matches the order-statistics formula within 0.01 (the enumeration's scatter over seeds is ≈ 0.002);
    random partners give the fixed-mask A_H instead."""
    n, m, k = 500, 20, 10
    got = []
    for seed in range(3):
        circ = circuit.make_circuit(jax.random.key(seed), n, m, "gaussian", 0.2, "linear")
        c = np.asarray(circ.J["R"]) @ np.asarray(circ.J["L"]).T
        top = np.argsort(-np.abs(c), axis=1)[:, :k].astype(np.int32)
        mask = sparse.FanIn(idx=jnp.asarray(top), valid=jnp.ones((n, k), bool), n_pre=n)
        w = projection.hebbian_fixed_point(circ, {"L_to_R": mask, "R_to_L": mask}, 1.0)["L_to_R"]
        x = jax.random.normal(jax.random.key(100 + seed), (200, m))
        y = circuit.direct_all(circ, {"L": x, "R": x}, 0.1)
        got.append(float(measures.alignment(y["R"], circuit.indirect(w, mask, y["L"]))))
    bound = theory.hebbian_best_partners_alignment(n, m, k)
    assert np.mean(got) == pytest.approx(bound, abs=0.01)
    assert bound > theory.hebbian_alignment(n, m, k / n, "fixed_indegree") + 0.2
    assert theory.hebbian_best_partners_alignment(n, m, n) == pytest.approx(np.sqrt(n / (n + m + 1)), rel=1e-9)


@pytest.mark.slow  # a science check: make test-slow (CI runs it)
def test_hebbian_rewiring_lifts_alignment_toward_the_best_partners():
    """N = 300, K = 15, M = 50, η = 0.005, λ = 1, ζ = 0.2 every 200 breaths for 2,000 breaths (9 events: none at
    the last breath): the alignment ends above the fixed-mask Hebbian value A_H(K) = 0.48 by more than 0.1 and
    below the best-partners value 0.79; the partners' correlation with their neuron exceeds random partners' by
    more than 0.03."""
    cfg = small(circuit__n_cortex=300, circuit__n_glomeruli=50, circuit__connection_prob=0.05,
                circuit__mask="fixed_indegree", learning__lr=0.005, learning__decay=1.0, run__n_breaths=2000,
                run__n_probe=40, rewiring__rule="hebbian", rewiring__every=200, rewiring__fraction=0.2)
    ds = olfacto.run(cfg).dataset
    a_h = theory.hebbian_alignment(300, 50, 15 / 300, "fixed_indegree")
    best = theory.hebbian_best_partners_alignment(300, 50, 15)
    final = float(ds.alignment[-1])
    assert a_h + 0.1 < final < best
    assert float(ds.partner_correlation[-1]) > float(ds.random_partner_correlation[-1]) + 0.03
    # an event due at a record's breath follows the record (the network its learning left), and the last breath has
    # none: the record of breath b has seen the events at 200, 400, … before b
    np.testing.assert_array_equal(ds.rewiring_events.values, np.maximum(np.ceil(ds.breath.values / 200) - 1, 0))
    assert float(ds.rewiring_turnover[-1]) == pytest.approx(0.2)


@pytest.mark.parametrize("activation", ["relu", "linear"])
@pytest.mark.parametrize("loop", [True, False], ids=["loop", "xla"])
def test_the_record_of_the_partners_and_q_follow_their_definitions(loop, activation):
    """After two events (bernoulli mask: rows of unequal K_i with invalid slots), the rewiring record's
    partner_correlation is the mean over the valid synapses (i, j) of |corr_p(y_post,i, y_pre,j)| over the probes,
    random_partner_correlation the same for the record's fixed random partners (by the compiled loops and by XLA's
    kernels; a linear cortex with 10 glomeruli and 40 probes through J, rectified through the standardized
    responses: rewiring.probe_factors), and q of the measures (per record of rewired masks) Σ_{j∈C_i} y_pre,j² —
    each against float64 NumPy (rtol 1e-5)."""
    cfg = small(circuit__activation=activation, circuit__mask="bernoulli", run__n_breaths=200,
                rewiring__rule="magnitude", rewiring__every=100, rewiring__fraction=0.25)
    batch = _after_two_events(cfg)
    world, state = jax.tree.map(lambda a: a[0], (batch.world, batch.state))
    spec = batch.spec
    got = rewiring.measure(spec, world, None, state) if loop else None
    y = {side: np.asarray(v, np.float64) for side, v in world.y.items()}
    z = {side: (v - v.mean(0)) / np.maximum(np.linalg.norm(v - v.mean(0), axis=0), 1e-12) for side, v in y.items()}
    z32 = {side: jnp.asarray(v.T, jnp.float32) for side, v in z.items()}
    chosen, rand = [], []
    for i, d in enumerate(DIRECTIONS):
        m = state.parts["projection"].masks[d]
        idx, valid = np.asarray(m.idx), np.asarray(m.valid)
        corr = np.abs(np.einsum("pi,pik->ik", z[post(d)], z[pre(d)][:, idx]))
        chosen.append(corr[valid].mean())
        random_idx = np.asarray(sparse.row_draws(jax.random.key(i), idx.shape[0],
                                                 lambda r: jax.random.randint(r, idx.shape[1:], 0, m.n_pre, jnp.int32)))
        rand.append(np.abs(np.einsum("pi,pik->ik", z[post(d)], z[pre(d)][:, random_idx]))[valid].mean())
        q = np.where(valid[None], y[pre(d)][:, idx] ** 2, 0.0).sum(-1)
        np.testing.assert_allclose(np.asarray(measures.presynaptic_sums(m, world.y[pre(d)])), q, rtol=1e-5)
        part = rewiring._partner_correlation(z32[post(d)], z32[pre(d)], m.idx, m.valid, loop)
        np.testing.assert_allclose(float(part), chosen[-1], rtol=1e-5)
        u, v = rewiring.probe_factors(spec, world)
        assert u[post(d)].shape[1] == (10 if activation == "linear" else 40)
        part = rewiring._partner_correlation(u[post(d)], v[pre(d)], m.idx, m.valid, loop)
        np.testing.assert_allclose(float(part), chosen[-1], rtol=1e-5)
    if loop:  # the record itself (here on a CPU: the loops)
        np.testing.assert_allclose(float(got["partner_correlation"]), np.mean(chosen), rtol=1e-5)
        np.testing.assert_allclose(float(got["random_partner_correlation"]), np.mean(rand), rtol=1e-5)
        assert float(got["partner_correlation"]) != pytest.approx(float(got["random_partner_correlation"]), rel=1e-3)


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_a_rewired_records_y_hat_and_q_from_one_pass_follow_their_definitions(activation, monkeypatch):
    """After an event (N = 200, K = 5, 30 probes: matmat gathers), the measures' views of rewired masks hold
    ŷ = (W ⊙ C) y_pre and q = Σ_{j∈C_i} y_pre,j² — taken from one pass over the synapses by the compiled loop
    (projection.respond_squares) and, without the loops, from XLA's products (ŷ of a linear cortex through J) —
    each against float64 NumPy (rtol 1e-5 of the largest), and the measures recorded by both paths agree (rtol 1e-5);
    the tuning record (ŷ alone) holds each neuron's correlation of y_post with that ŷ (atol 1e-4)."""
    cfg = small(circuit__n_cortex=200, circuit__connection_prob=0.025, circuit__mask="fixed_indegree",
                circuit__activation=activation, run__n_probe=30, rewiring__rule="magnitude", rewiring__every=100)
    batch = loop.build([cfg])
    batch.advance()
    world, state, params = jax.tree.map(lambda a: a[0], (batch.world, batch.state, batch.params))
    spec = batch.spec
    masks = state.parts["projection"].masks
    assert all(sparse.matmat_kernel(masks[d], 30) == "gather" for d in DIRECTIONS) and chunked.loops(spec)
    fused = network.views(spec, world, params, state)
    fused_record = network.measure(spec, world, params, state)
    fused_tuning = network.tuning_profile(spec, world, params, state)
    monkeypatch.setattr(chunked, "loops", lambda spec_: False)
    xla = network.views(spec, world, params, state)
    xla_record = network.measure(spec, world, params, state)
    xla_tuning = network.tuning_profile(spec, world, params, state)
    for i, d in enumerate(DIRECTIONS):
        idx, valid = np.asarray(masks[d].idx), np.asarray(masks[d].valid)
        w = np.asarray(state.parts["projection"].weights[d], np.float64)
        y_pre = np.asarray(world.y[pre(d)], np.float64)
        want_q = np.where(valid[None], y_pre[:, idx] ** 2, 0.0).sum(-1)
        want_y = np.einsum("ik,pik->pi", np.where(valid, w, 0.0), y_pre[:, idx])
        assert np.abs(want_y).max() > 0
        for views in (fused, xla):
            np.testing.assert_allclose(np.asarray(views[d].q), want_q, rtol=0, atol=1e-5 * want_q.max())
            np.testing.assert_allclose(np.asarray(views[d].y_hat), want_y, rtol=0, atol=1e-5 * np.abs(want_y).max())
        # the tuning record takes ŷ without q (network.tuning_profile): each neuron's correlation over the probes
        y_post = np.asarray(world.y[post(d)], np.float64)
        a, b = y_post - y_post.mean(0), want_y - want_y.mean(0)
        want_tuning = (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))
        assert np.isfinite(want_tuning).all() and np.ptp(want_tuning) > 0.1
        for tuning in (fused_tuning, xla_tuning):
            np.testing.assert_allclose(np.asarray(tuning[i]), want_tuning, rtol=0, atol=1e-4)
    for name, value in xla_record.items():
        np.testing.assert_allclose(np.asarray(fused_record[name]), np.asarray(value), rtol=1e-5, atol=1e-6,
                                   err_msg=name)


def _after_two_events(cfg):
    batch = loop.build([cfg])
    for _ in range(3):  # an event falls between two chunks: the second event starts the third chunk
        batch.advance()
    assert int(np.asarray(batch.state.parts["rewiring"].events)[0]) == 2
    return batch


def test_result_mask_is_the_rewired_mask():
    """``Result.mask`` holds the last event's synapses (fixed in-degree K = 16 per row) and ``weights`` lives on
    exactly those synapses."""
    cfg = small(circuit__mask="fixed_indegree", rewiring__rule="magnitude", rewiring__every=100)
    result = olfacto.run(cfg)
    mask = result.mask("L_to_R", dense=True)
    np.testing.assert_array_equal(mask.sum(1), 16)
    w = result.weights("L_to_R")
    assert w.nnz == mask.sum()
    np.testing.assert_array_equal(w.toarray() != 0, (w.toarray() != 0) & mask)
    state_idx = np.asarray(result.state.parts["projection"].masks["L_to_R"].idx)[0]
    assert (mask[np.arange(64)[:, None], state_idx]).all()


def test_every_off_the_chunk_grid_is_one_line(capsys, tmp_path):
    """rewiring.every must fall between compiled chunks: exit 2, one line naming the key and the reason."""
    path = tmp_path / "c.yaml"
    path.write_text("circuit: {n_cortex: 32, n_glomeruli: 8}\nrun: {n_breaths: 200, record_every: 100}\n")
    status = cli.main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet", "--no-plot",
                       "--set", "rewiring.rule=hebbian", "--set", "rewiring.every=150"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1
    assert "rewiring.every=150" in err[0] and "run.record_every=100" in err[0]


def _synthetic_rewiring_dataset():
    """A Dataset shaped as olfacto.experiments.rewiring.compute makes it (2 rules, 2 N, 3 K, 2 seeds, 3 records),
    with the alignment of rule 'hebbian' 1.5× that of 'none' — enough for every plot to draw."""
    import xarray as xr

    rules, ns, ks, seeds, breaths = ["none", "hebbian"], [300, 600], [4, 12, 36], [0, 1], [0, 200, 400]
    base = np.sqrt(np.asarray(ks) / (np.asarray(ks) + 51.0))
    align = np.stack([np.broadcast_to(f * base[None, :, None, None], (2, 3, 2, 3)) for f in (1.0, 1.5)])
    curves = {n: (("rule", "n_cortex", "in_degree", "seed", "breath"), np.clip(align, 0, 1) * v)
              for n, v in [("alignment", 1.0), ("partner_correlation", 0.2), ("random_partner_correlation", 0.15),
                           ("rewiring_survival", 0.9), ("rewiring_turnover", 0.1), ("tuning_alignment", 1.0)]}
    ds = xr.Dataset(curves, coords={"rule": rules, "n_cortex": ns, "in_degree": ks, "seed": seeds, "breath": breaths})
    ds["alignment_fixed_theory"] = (("n_cortex", "in_degree"), np.broadcast_to(base, (2, 3)).copy())
    ds["alignment_best_partners"] = (("n_cortex", "in_degree"), np.broadcast_to(np.minimum(2 * base, 1), (2, 3)).copy())
    ds.attrs.update(target_alignment=0.5, config=olfacto.config.from_dict().to_yaml())
    return ds


def test_rewiring_figures_draw_every_rule_and_both_theories():
    """Each figure of chapter 3 draws from a Dataset of compute's shape: `rewiring` an error-bar series per rule
    and N and the two theory lines per panel; `rewiring_saving` one curve per rule but 'none' and the bound,
    whose saving at alignment 0.5 is the measured 1.5×-curve's (K_fixed / K_hebbian, by log-K interpolation);
    `rewiring_turnover` three panels of curves."""
    from olfacto.analysis import chapter3
    from olfacto.experiments import registry

    ds = _synthetic_rewiring_dataset()
    fig = registry.FIGURES["rewiring"].plot(ds)
    axes = fig.axes
    assert len(axes) == 2
    for ax in axes:
        assert len(ax.containers) == 2  # one errorbar per rule
        assert len(ax.lines) >= 2 + 2 * 3  # the two theory lines, and each errorbar's line and caps
    fig = registry.FIGURES["rewiring_saving"].plot(ds)
    assert len(fig.axes[0].lines) == 1 + 1 + 1  # hebbian, the bound, the line at 1
    saving = chapter3.synapse_saving(ds).sel(rule="hebbian").values
    k_none = chapter3.in_degree_at(ds.alignment.isel(breath=-1).mean("seed").sel(rule="none", n_cortex=300).values,
                                   np.array([4, 12, 36]), 0.5)
    k_heb = chapter3.in_degree_at(ds.alignment.isel(breath=-1).mean("seed").sel(rule="hebbian", n_cortex=300).values,
                                  np.array([4, 12, 36]), 0.5)
    assert np.isfinite(saving).all() and saving[0] == pytest.approx(k_none / k_heb) and saving[0] > 1
    fig = registry.FIGURES["rewiring_turnover"].plot(ds)
    assert len(fig.axes) == 3 and all(len(ax.lines) >= 1 for ax in fig.axes)


@pytest.mark.slow
def test_sweep_over_rules_killed_then_resumed_equals_uninterrupted(tmp_path):
    """A sweep over rewiring.rule (none, hebbian) × seed, one point per batch, killed with SIGKILL as its second
    batch starts and resumed, holds exactly the values of an uninterrupted sweep (the mask is state: each point
    is drawn, rewired and recorded the same way); the fixed-mask points hold NaN for the rewiring record."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    import yaml

    from olfacto import sweeps
    from conftest import ROOT

    base = {"seed": 0, "circuit": {"n_cortex": 48, "n_glomeruli": 8, "connection_prob": 0.25,
                                   "mask": "fixed_indegree"},
            "rewiring": {"every": 100, "fraction": 0.25},
            "run": {"n_breaths": 300, "record_every": 100, "n_probe": 12, "progress": False}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base))
    grid = ["--grid", "rewiring.rule=none,hebbian", "--grid", "seed=0,1", "--batch-size", "1", "--quiet"]
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert cli.main(["sweep", str(path), "--out", str(ref), *grid]) == 0
    script = textwrap.dedent(f"""
        import os, signal
        from olfacto import cli
        from olfacto.engine import loop
        real, calls = loop.run_batch, []
        def hook(*a, **k):
            calls.append(1)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*a, **k)
        loop.run_batch = hook
        cli.main({["sweep", str(path), "--out", str(out), *grid]!r})
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert cli.main(["sweep", str(path), "--out", str(out), *grid]) == 0
    a, b = sweeps.open_result(ref), sweeps.open_result(out)
    for name in a.data_vars:
        if name != "checksum" and a[name].dtype.kind == "f":
            np.testing.assert_array_equal(b[name].values, a[name].values, err_msg=name)
    assert np.isnan(a.partner_correlation.sel(rewiring_rule="none")).all()
    assert (a.rewiring_events.sel(rewiring_rule="hebbian").isel(breath=-1) == 2).all()  # at 100, 200: none at the end


def test_settings_where_nothing_rewires_warn(capsys, tmp_path):
    """ζ·K < ½ prunes nothing and an interval as long as the run or longer has no event (none at the last breath):
    each is a warning naming the key; a rewiring key under rule none has no effect: a warning too."""
    from olfacto.config import checks

    cfg = small(circuit__mask="fixed_indegree", rewiring__rule="hebbian", rewiring__fraction=0.02)
    assert any(w.startswith("rewiring.fraction=0.02") for w in checks.warnings_for(cfg))
    for every in (1000, 200):  # the run: 200 breaths
        cfg = small(rewiring__rule="magnitude", rewiring__every=every)
        assert any(w.startswith(f"rewiring.every={every}: not fewer breaths") for w in checks.warnings_for(cfg))
    assert checks.inert_warnings(small(), ["rewiring.fraction"]) == \
        ["--set rewiring.fraction: has no effect with rewiring.rule=none (fixed masks)"]
    assert not [w for w in checks.warnings_for(small(rewiring__rule="hebbian", rewiring__every=100))
                if w.startswith("rewiring")]


def test_a_rewiring_config_is_outside_the_fixed_mask_theory():
    """The console's theory column is the fixed-mask theory: a rewiring run says why it has none."""
    from olfacto.model import prediction

    assert prediction.outside_theory(small(rewiring__rule="hebbian")).startswith("rewiring.rule=hebbian")
    assert prediction.outside_theory(small()) is None


def test_a_rewiring_run_is_drawn_against_the_fixed_mask_and_the_best_partners_theory():
    """A Hebbian rewiring run otherwise in the analysable case (N = 64, M = 10, K = pN = 16) has two references:
    the fixed mask's online steady state (the same config without rewiring) and the K-best-partners bound, which
    lies above the random-partner fixed point √(K/(K+M+1)) = 0.770; none for relu, SGD or fixed masks. Its
    learning curve draws both in panel (a) and the rewiring history in panel (c), each of the three panels at
    least a quarter of the figure wide (a long 'no theory' note once squeezed them to slivers); the console's
    summary prints both."""
    from olfacto import plots
    from olfacto.cli.main import summary_table
    from olfacto.model import prediction, theory

    cfg = small(rewiring__rule="hebbian", rewiring__every=100)
    ref = prediction.rewiring_references(cfg)
    assert ref.fixed == prediction.prediction(small()).alignment and ref.in_degree == 16
    assert ref.best == pytest.approx(float(theory.hebbian_best_partners_alignment(64, 10, 16)), rel=1e-12)
    assert ref.best > np.sqrt(16 / 27) + 0.05 and ref.best > ref.fixed
    assert prediction.rewiring_references(small()) is None
    assert prediction.rewiring_references(small(rewiring__rule="hebbian", circuit__activation="relu")) is None
    assert prediction.rewiring_references(small(rewiring__rule="hebbian", learning__rule="sgd")) is None
    import io

    ds = olfacto.run(cfg).dataset
    assert summary_table(ds, cfg).splitlines()[-1] == (
        f"rewiring against theory at the same K = 16: alignment {ref.fixed:.4f} on a fixed random mask (online "
        f"steady state), {ref.best:.4f} on each neuron's K best partners (the bound, at the fixed point)")
    fig = plots.learning_curve(ds)
    fig.savefig(io.BytesIO(), format="png")  # laid out as the CLI writes it (the squeeze showed only when saved)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["(a) population alignment", "(b) other measures",
                                                             "(c) rewiring"]
    assert min(ax.get_position().width for ax in fig.axes) > 0.25 * 0.75  # a quarter of the figure, less margins
    levels = {line.get_label(): line.get_ydata()[0] for line in fig.axes[0].get_lines()}
    assert levels[f"theory, fixed mask {ref.fixed:.3f}"] == pytest.approx(ref.fixed)
    assert levels[f"theory, K best partners {ref.best:.3f}"] == pytest.approx(ref.best)
    assert {"synapses of breath 0 left", "partners' |corr|"} <= {line.get_label() for line in fig.axes[2].get_lines()}


def test_rewiring_experiment_puts_each_padded_run_where_it_belongs():
    """olfacto.experiments.rewiring.compute runs the K × seeds of a rule in one padded batch; each curve lands at
    its (rule, N, K, seed) and equals that config run alone (N = 80, K = 4 and 12, 2 seeds, 400 breaths, an
    event every 100; float32 tolerance). One run alone suffices: every rule's batches are placed by the same
    (rule, N, K, seed) of their members, and a K padded (4 of 12), a seed and a rule out of place each pick
    another curve; the fixed mask padded is test_padding.py's."""
    from olfacto.config import set_dotted
    from olfacto.experiments import rewiring as experiment

    base = {"circuit": {"n_cortex": 80, "n_glomeruli": 10, "connection_prob": 0.05, "mask": "fixed_indegree"},
            "learning": {"lr": 0.01, "decay": 1.0},
            "rewiring": {"rule": "hebbian", "every": 100, "fraction": 0.25, "candidates": 4},
            "run": {"n_breaths": 400, "record_every": 100, "n_probe": 30, "progress": False}}
    ds = experiment.compute(base, {"rewiring.rule": ["none", "hebbian"], "seed": [0, 1]},
                            {"n_cortex": [80], "in_degree": [4, 12]})
    for rule, k, seed in [("hebbian", 4, 1)]:
        cfg = olfacto.config.validate(set_dotted(set_dotted(set_dotted(experiment._point(base, 80, k),
                                                                       "rewiring.rule", rule), "seed", seed),
                                                 "run.progress", False))
        alone = olfacto.run(cfg).dataset
        got = ds.alignment.sel(rule=rule, n_cortex=80, in_degree=k, seed=seed).values
        np.testing.assert_allclose(got, alone.alignment.values, rtol=1e-4, atol=1e-5, err_msg=f"{rule}, K={k}")
    hebb, none = (ds.alignment.sel(rule=r, in_degree=4).isel(breath=-1).mean() for r in ("hebbian", "none"))
    assert float(hebb) > float(none)  # the rewired projection aligns better at the same K


@pytest.mark.parametrize("k_max,k,s", [(50, 5, 2), (64, 13, 2), (16, 4, 1), (30, 1, 1), (37, 7, 0)])
def test_smallest_slots_are_top_k_of_the_negated_priorities(k_max, k, s):
    """rewiring.smallest (groups of slots ranked by their smallest, then the best groups' slots; top_k where
    no group size fits, K = 37) returns lax.top_k(−priority, k)'s slots: ties (priorities rounded to a few
    values, exact zeros) in slot order, +∞ (invalid slots) last."""
    prio = jnp.abs(jnp.round(jax.random.normal(jax.random.key(k_max), (500, k_max)) * 3))
    prio = jnp.where(jax.random.uniform(jax.random.key(2), prio.shape) < 0.2, jnp.inf, prio)
    assert rewiring.group_size(k_max, k) == s  # groups of s slots (1: one rank count; 0: top_k)
    np.testing.assert_array_equal(np.asarray(rewiring.smallest(prio, k)), np.asarray(jax.lax.top_k(-prio, k)[1]))


@pytest.mark.parametrize("length", [1, 31, 32, 33, 50, 70, 96])
def test_row_reduce_in_slices_is_the_whole_row_reduction(length):
    """rewiring.row_reduce (slices of at most FUSED_REDUCTION entries, their results combined) equals one
    reduction over the row: int32 sums of the valid slots (in_degree) and the OR of bit words."""
    key = jax.random.key(length)
    valid = jax.random.uniform(key, (300, length)) < 0.7
    np.testing.assert_array_equal(np.asarray(rewiring.in_degree(valid)), np.asarray(valid).sum(1))
    bits = jnp.left_shift(jnp.uint32(1), jax.random.randint(jax.random.key(1), (300, length), 0, 32).astype(jnp.uint32))
    want = jax.lax.reduce(bits, jnp.uint32(0), jax.lax.bitwise_or, (1,))
    np.testing.assert_array_equal(np.asarray(rewiring.row_reduce(bits, jax.lax.bitwise_or, 0)), np.asarray(want))


def test_event_scatter_writes_what_regrow_lays_out_by_slot():
    """The event writes regrowth's (target slot, partner) pairs into the state by a scatter (rewiring._at_slots):
    the same masks and weights as the slot layout of rewiring.regrow (-1: kept), with rows that prune
    nothing or find fewer valid candidates than they prune (their unused pairs point past the row and drop)."""
    n, k_max, n_pre, r = 200, 12, 40, 3
    idx = jax.random.randint(jax.random.key(0), (n, k_max), 0, n_pre, jnp.int32)
    valid = jax.random.uniform(jax.random.key(1), (n, k_max)) < 0.8
    valid = valid.at[:10].set(False)  # K_i = 0: nothing to prune
    w = jax.random.normal(jax.random.key(2), (n, k_max))
    cand = rewiring.window(jax.random.key(3), n, 4, n_pre)  # a small pool: some rows run out of candidates
    target, partner = rewiring.regrowth(idx, valid, jnp.abs(w), cand, None, 0.25, r, n_pre, 1)
    by_slot = rewiring.regrow(idx, valid, jnp.abs(w), cand, None, 0.25, r, n_pre, 1)
    assert (target == k_max).any() and (target < k_max).any()
    np.testing.assert_array_equal(np.asarray(rewiring._at_slots(idx, target, partner)),
                                  np.asarray(jnp.where(by_slot >= 0, by_slot, idx)))
    np.testing.assert_array_equal(np.asarray(rewiring._at_slots(w, target, 0.0)), np.asarray(jnp.where(by_slot >= 0, 0.0, w)))


@pytest.mark.parametrize("pools", ["window", "arbitrary"])
@pytest.mark.parametrize("scored", [False, True])
@pytest.mark.parametrize("k_max", [12, 50])
def test_compiled_regrowth_is_xla_regrowth(pools, scored, k_max):
    """native.regrowth (the event's compiled loop) gives rewiring.regrowth's (slot, partner) pairs to the bit on
    rows built to reach every branch: 200 rows (three blocks of 64 lanes and a partial one), invalid slots,
    rows with no synapse, NaN and tied weights (|W| rounded to tenths: ties in slot order), windows that hold
    partners and pools too small for a row's r_i, arbitrary pools with repeated candidates, tied and
    non-finite scores, and each row's pool cut to P_i = c · r_i; the priorities given (as the random rule
    draws them) or |W| read by the loop. native.rewire, the loop writing the state itself, gives XLA's scatter of
    those pairs, to the bit."""
    n, n_pre, c = 200, 60, 2
    r = max(1, round(0.25 * k_max))
    size = min(c * r, n_pre)
    keys = jax.random.split(jax.random.key(k_max + 7 * scored), 6)
    idx = jax.random.randint(keys[0], (n, k_max), 0, n_pre, jnp.int32)
    valid = (jax.random.uniform(keys[1], (n, k_max)) < 0.8).at[:5].set(False)
    w = jnp.round(jax.random.normal(keys[2], (n, k_max)) * 10) / 10
    w = w.at[::7, ::3].set(jnp.nan)
    if pools == "window":
        cand, n_window = rewiring.window(keys[3], n, size, n_pre), n_pre
    else:
        cand, n_window = jax.random.randint(keys[3], (n, size), 0, n_pre, jnp.int32), 0
    score = None
    if scored:
        score = jnp.round(jax.random.uniform(keys[4], (n, size)) * 4)  # ties
        score = score.at[::5, 0].set(jnp.nan).at[::6, 1].set(-jnp.inf).at[::9, -1].set(jnp.inf)
    want = rewiring.regrowth(idx, valid, jnp.abs(w), cand, score, 0.25, r, n_window, c)
    count = rewiring.pool_of(valid, 0.25, c, size)
    got = jax.jit(lambda *a: native.regrowth(*a, r, n_pre, size, pools == "window"), static_argnums=())(
        w, idx, valid, jnp.abs(w) if scored else None, cand[:, :1] if pools == "window" else cand, score, rewiring.prunes(valid, 0.25), count)
    for g, e in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), np.asarray(e))
    taken = np.asarray(want[0]) < k_max
    assert taken.any() and (~taken[5:]).any()  # rows that regrow and rows that find too few candidates
    # the same loop writing the state in place (native.rewire): XLA's scatter of those pairs, to the bit — called
    # on (rows, K) arrays and, as the event program calls it, on one run's donated (1, rows, K) buffers
    origin = jax.random.uniform(keys[5], (n, k_max)) < 0.5
    target, partner = want
    expect = [rewiring._at_slots(w, target, 0.0), rewiring._at_slots(idx, target, partner),
              rewiring._at_slots(origin, target, False), target]
    operands = (jnp.abs(w) if scored else None, cand[:, :1] if pools == "window" else cand, score,
                rewiring.prunes(valid, 0.25), count)

    def rewire(w_, idx_, origin_):
        return native.rewire(w_, idx_, origin_, valid, *operands, r, n_pre, size, pools == "window",
                             jnp.arange(2))

    donated = jax.jit(lambda a, b, o: [x[None] for x in rewire(a[0], b[0], o[0])], donate_argnums=(0, 1, 2))
    for got in (jax.jit(rewire)(w, idx, origin), [x[0] for x in donated(w[None], idx[None], origin[None])]):
        for g, e in zip(got, expect):
            np.testing.assert_array_equal(np.asarray(g), np.asarray(e))


def test_compiled_cht_paths_are_xla_paths():
    """native.cht_paths (CHT's sampled length-3 paths by the compiled loop, 64 rows advancing together) gives
    rewiring.cht_candidates' endpoints and scores to the bit: bernoulli masks (in-degrees 0 … K_max, rows and
    partners without synapses), 150 rows (two blocks and a partial one) and each row's paths cut to its P_i."""
    n, k_max, size = 150, 10, 12
    keys = jax.random.split(jax.random.key(5), 5)
    masks = {d: sparse.FanIn(idx=jax.random.randint(keys[i], (n, k_max), 0, n, jnp.int32),
                             valid=jnp.arange(k_max) < jax.random.randint(keys[2 + i], (n, 1), 0, k_max + 1),
                             n_pre=n)
             for i, d in enumerate(DIRECTIONS)}
    count = jax.random.randint(keys[4], (n,), 0, size + 1)
    for d in DIRECTIONS:
        want = rewiring.cht_candidates(jax.random.key(9), masks, d, size, count)
        got = jax.jit(lambda k, m, c: rewiring.cht_candidates(k, m, d, size, c, True))(jax.random.key(9), masks, count)
        for g, e in zip(got, want):
            np.testing.assert_array_equal(np.asarray(g), np.asarray(e))
        score = np.asarray(want[1])
        assert np.isfinite(score).any() and (~np.isfinite(score)).any()


def test_path_bits_draw_uniform_slots():
    """CHT's path draws (rewiring.path_bits, a counter-based hash of one threefry draw per row) choose each of
    K = 7 slots uniformly: 10⁴ rows × 30 paths × 3 steps, χ² over the 7 slots below its 0.999 quantile (22.5
    for 6 degrees of freedom), and no correlation between a path's consecutive steps (|r| < 0.01, 5 σ)."""
    seeds = jax.random.bits(jax.random.key(2), (10_000,), jnp.uint32)
    u = [np.asarray(rewiring.path_bits(seeds, 30, step) >> 8).astype(np.float64) * 2.0 ** -24 for step in range(3)]
    slots = np.floor(np.concatenate([x.ravel() for x in u]) * 7).astype(int)
    counts = np.bincount(slots, minlength=7)
    expected = slots.size / 7
    assert ((counts - expected) ** 2 / expected).sum() < 22.5
    assert abs(np.corrcoef(u[0].ravel(), u[1].ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(u[1].ravel(), u[2].ravel())[0, 1]) < 0.01


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_score_breaths_scores_on_the_last_breaths_before_the_event(activation):
    """rewiring.score_breaths = 60 with events every 200 breaths and chunks of 50: after four chunks (breaths 0–199) the
    Hebbian sums are those of breaths 140–199 alone — ten from the third chunk, all of the fourth — against the
    breath-by-breath reference on those breaths (float32: atol 1e-5 of the largest sum; linear φ through the
    factored g, relu in blocks); the whole interval (200) gives the bits of the default (0)."""
    def run(window):
        cfg = small(circuit__mask="fixed_indegree", circuit__activation=activation, run__n_breaths=200,
                    run__record_every=50, rewiring__rule="hebbian", rewiring__every=200, rewiring__score_breaths=window)
        batch = loop.build([cfg])
        for _ in range(4):
            batch.state = loop.programs.advance(batch.spec)(batch.world, batch.params, batch.state)
        return batch

    batch = run(60)
    world, params, state = jax.tree.map(lambda a: a[0], (batch.world, batch.params, batch.state))
    at_140 = state.replace(breath=jnp.asarray(140, state.breath.dtype))
    x = network.breaths(batch.spec, world, params, at_140, 60)
    part, proj = state.parts["rewiring"], state.parts["projection"]
    for d in DIRECTIONS:
        cand = part.candidates[d]
        want = breath_by_breath(world.circuit, proj.masks[d], proj.weights[d], x, d, cand, False, 0.1)
        if activation == "linear":
            got = np.asarray(at_candidates(part.moment[d], world.circuit.J[pre(d)], cand))
        else:
            got = np.asarray(part.score[d])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
        assert np.abs(want).max() > 1.0
    full, none = run(200), run(0)
    jax.tree.map(np.testing.assert_array_equal, full.state.parts["rewiring"], none.state.parts["rewiring"])


def test_score_breaths_longer_than_the_interval_is_one_line(capsys):
    """rewiring.score_breaths above rewiring.every: the key, its value and what is allowed, exit status 2."""
    assert cli.main(["run", "experiments/default.yaml", "--set", "rewiring.rule=hebbian", "--set",
                     "rewiring.score_breaths=300"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "rewiring.score_breaths=300: at most rewiring.every=200" in err
    from olfacto.config import checks
    assert checks.inert_warnings(small(rewiring__rule="magnitude"), ["rewiring.score_breaths"]) == \
        ["--set rewiring.score_breaths: has no effect with rewiring.rule=magnitude (only hebbian and gradient score over "
         "breaths)"]


def test_the_synapse_saving_reads_a_sweep_store_as_the_experiment_result():
    """synapse_saving on an ``olfacto sweep`` store over rewiring.rule × circuit.n_cortex × circuit.connection_prob
    (dims rewiring_rule, n_cortex, connection_prob; K = pN a coordinate) equals it on the same curves laid out as
    the chapter-3 experiment (dims rule, n_cortex, in_degree). With final alignments linear in ln K — 0.1 ln K for
    the fixed mask, 0.1 ln 2K for 'hebbian', 0.1 ln K/3 for 'random' — the log-K interpolation is exact, so the
    savings are 2 and 1/3 to round-off (1e-9), whatever the order of the grid's p; and the bound is the
    best-partners theory at the same target."""
    import xarray as xr

    from olfacto.analysis import chapter3

    rules, ns, ps, target = ["none", "hebbian", "random"], [500, 1000], np.array([0.256, 0.016, 0.064, 0.004]), 0.3
    factor = np.array([1.0, 2.0, 1 / 3])
    k = np.asarray(ns, float)[:, None] * ps[None, :]  # (N, p): K = 2 … 128 and 4 … 256, not in order
    final = 0.1 * np.log(factor[:, None, None] * k[None])  # (rule, N, p)
    curves = np.repeat(final[:, None, :, :, None], 2, axis=-1)  # (rule, seed, N, p, breath): last breath = final
    cfg = olfacto.config.from_dict().to_yaml()
    store = xr.Dataset({"alignment": (("rewiring_rule", "seed", "n_cortex", "connection_prob", "breath"), curves)},
                       coords={"rewiring_rule": rules, "seed": [0], "n_cortex": ns, "connection_prob": ps,
                               "breath": [0, 200], "K": (("n_cortex", "connection_prob"), k)},
                       attrs={"config": cfg})
    got = chapter3.synapse_saving(store, target)
    assert got.dims == ("rewiring_rule", "n_cortex")
    np.testing.assert_allclose(got.values, np.broadcast_to(factor[:, None], (3, 2)), rtol=1e-9)
    np.testing.assert_allclose(got.best_partners, theory.best_partners_synapse_saving(target, np.array(ns, float), 50))
    # N = 1,000's curves as the experiment lays them out
    result = xr.Dataset({"alignment": (("rule", "n_cortex", "in_degree", "seed", "breath"),
                                       np.moveaxis(curves[:, :, 1:], 1, 3))},
                        coords={"rule": rules, "n_cortex": [1000], "in_degree": k[1], "seed": [0], "breath": [0, 200]},
                        attrs={"config": cfg, "target_alignment": target})
    np.testing.assert_allclose(chapter3.synapse_saving(result).values[:, 0], got.sel(n_cortex=1000).values, rtol=1e-12)
    # one N, one seed: no dimension of their own
    alone = chapter3.synapse_saving(store.sel(n_cortex=500).isel(seed=0), target)
    np.testing.assert_allclose(alone.values[:, 0], got.sel(n_cortex=500).values, rtol=1e-12)
    with pytest.raises(ValueError, match=r"lacks 'none'"):
        chapter3.synapse_saving(store.sel(rewiring_rule=["hebbian"]), target)


def _saving_store(extra_dims: dict | None = None):
    """The store of test_the_synapse_saving_reads_a_sweep_store_as_the_experiment_result, with two seeds (± 0.01
    around the same curves) and the fixed-mask theory of each (rule, N, p) as ``olfacto sweep`` stores it."""
    import xarray as xr

    rules, ns, ps = ["none", "hebbian", "random"], [500, 1000], np.array([0.256, 0.016, 0.064, 0.004])
    factor = np.array([1.0, 2.0, 1 / 3])
    k = np.asarray(ns, float)[:, None] * ps[None, :]
    final = 0.1 * np.log(factor[:, None, None] * k[None])  # (rule, N, p)
    curves = np.stack([final - 0.01, final + 0.01], axis=1)[..., None].repeat(2, axis=-1)  # (rule, seed, N, p, breath)
    fixed_theory = np.broadcast_to(0.05 * np.log(k), (3, 2, 4)).copy()
    fixed_theory[1:] = np.nan  # the store's alignment_theory: rule none's only
    return xr.Dataset({"alignment": (("rewiring_rule", "seed", "n_cortex", "connection_prob", "breath"), curves),
                       "alignment_theory": (("rewiring_rule", "n_cortex", "connection_prob"), fixed_theory)},
                      coords={"rewiring_rule": rules, "seed": [0, 1], "n_cortex": ns, "connection_prob": ps,
                              "breath": [0, 200], "K": (("n_cortex", "connection_prob"), k)},
                      attrs={"config": olfacto.config.from_dict().to_yaml()}), final


def test_the_rewiring_figures_draw_a_sweep_store():
    """A user's ``olfacto sweep`` store over rewiring.rule × N × p (p not in order) is drawn as the experiment's
    result: `rewiring_grid` puts K = pN in order, takes the store's fixed-mask theory of rule none and the
    best-partners theory at each (N, K); each panel of `rewiring` draws per rule the seeds' mean final alignment
    at those K (the seeds ± 0.01 around 0.1 ln(factor·K): the mean is exact to 1e-12); one N and one seed draw
    one panel; the saving's console lines at alignment 0.3 read 2.00 and 0.33 (the exact savings of these curves)
    and the bound;
    a store that also varies another key is refused naming it; with a rectified cortex the bound is left out."""
    from olfacto import plots
    from olfacto.analysis import chapter3

    store, final = _saving_store()
    grid = chapter3.rewiring_grid(store)
    order = np.argsort(store.connection_prob.values)
    want_k = np.array([500.0, 1000.0])[:, None] * store.connection_prob.values[order][None]
    np.testing.assert_allclose(grid.K.transpose("n_cortex", "connection_prob").values, want_k, rtol=1e-12)
    np.testing.assert_allclose(grid.alignment_fixed_theory.values, 0.05 * np.log(want_k), rtol=1e-12)
    np.testing.assert_allclose(grid.alignment_best_partners.values,
                               theory.hebbian_best_partners_alignment(np.array([[500], [1000]]), 50, want_k))
    fig = plots.rewiring(store)
    assert len(fig.axes) == 2
    for j, ax in enumerate(fig.axes):
        for i, container in enumerate(ax.containers):  # one errorbar per rule, in the store's order
            x, y = container.lines[0].get_data()
            np.testing.assert_allclose(np.asarray(x, float), want_k[j], rtol=1e-12)
            np.testing.assert_allclose(np.asarray(y, float), final[i, j, order], rtol=0, atol=1e-12)
        assert len(ax.containers) == 3
    assert len(plots.rewiring(store.sel(n_cortex=500).isel(seed=0)).axes) == 1
    assert len(plots.rewiring_saving(store).axes[0].lines) == 2 + 1 + 1  # hebbian, random, the bound, the line at 1
    bound_line = plots.rewiring_saving(store.isel(n_cortex=[1])).axes[0].lines[2]  # one N: the bound as a bar
    assert bound_line.get_marker() == "_" and np.allclose(bound_line.get_ydata(), theory.best_partners_synapse_saving(
        0.5, 1000.0, 50))
    assert plots.rewiring_turnover is not None and len(plots.rewiring_turnover(store.assign(
        rewiring_survival=store.alignment, partner_correlation=store.alignment,
        random_partner_correlation=store.alignment)).axes) == 3
    lines = chapter3.saving_lines(chapter3.synapse_saving(store, 0.3))
    bound = theory.best_partners_synapse_saving(0.3, np.array([500.0, 1000.0]), 50)
    assert lines == ["synapse saving at alignment 0.3, N = 500 / 1,000 (K fixed / K rule)",
                     "  hebbian             2.00 / 2.00", "  random              0.33 / 0.33",
                     f"  best partners       {bound[0]:.2f} / {bound[1]:.2f}  (bound, theory)"]
    with pytest.raises(ValueError, match=r"also varies \['odors_noise'\]; select one value"):
        chapter3.rewiring_grid(store.expand_dims(odors_noise=[0.1, 0.2]))
    # a rectified cortex: the best-partners bound (a linear cortex's fixed point) is neither drawn nor printed
    relu = store.assign_attrs(config=olfacto.config.from_dict(**{"circuit.activation": "relu"}).to_yaml())
    assert np.isnan(chapter3.rewiring_grid(relu).alignment_best_partners).all()
    assert chapter3.saving_lines(chapter3.synapse_saving(relu, 0.3)) == lines[:-1]
    assert len(plots.rewiring_saving(relu).axes[0].lines) == 2 + 1


def test_a_rewiring_sweep_that_varies_more_is_read_per_value(tmp_path, capsys, monkeypatch):
    """A finished sweep comparing the rules over K that also varies another key (here circuit.n_glomeruli M, which
    the best-partners bound depends on) is read per value: for each M its savings (the synthetic curves': 2 and
    1/3 at M = 20, 4 and 1 at M = 50, at alignment 0.3), the bound of that M, and its two figures
    (rewiring_n_glomeruli=20.png, …); more combinations than READINGS_MAX print one line naming the dimension
    and a selection, and draw nothing; a comparison without rule none says what it lacks."""
    import importlib

    import xarray as xr

    from olfacto.analysis import chapter3
    main_module = importlib.import_module("olfacto.cli.main")

    store, _ = _saving_store()
    other = store.copy()
    other["alignment"] = store.alignment + 0.1 * xr.DataArray(np.log([1.0, 2.0, 3.0]), dims="rewiring_rule")
    wider = xr.concat([store, other], "n_glomeruli").assign_coords(n_glomeruli=[20, 50])
    wider.n_glomeruli.attrs["config_key"] = "circuit.n_glomeruli"
    wider.attrs["target_alignment"] = 0.3
    assert chapter3.comparison_extras(wider) == ["n_glomeruli"] and not chapter3.is_rewiring_comparison(wider)
    main_module._rewiring_report(wider, tmp_path / "out", plot=True)
    lines = capsys.readouterr().out.splitlines()
    head = "synapse saving at alignment 0.3, N = 500 / 1,000 (K fixed / K rule)"
    want = []
    for m, savings in ((20, ("2.00", "0.33")), (50, ("4.00", "1.00"))):
        bound = theory.best_partners_synapse_saving(0.3, np.array([500.0, 1000.0]), m)
        want += [f"at n_glomeruli = {m}", head, f"  hebbian             {savings[0]} / {savings[0]}",
                 f"  random              {savings[1]} / {savings[1]}",
                 f"  best partners       {bound[0]:.2f} / {bound[1]:.2f}  (bound, theory)",
                 f"figure             {tmp_path / 'out' / f'rewiring_n_glomeruli={m}.png'}",
                 f"figure             {tmp_path / 'out' / f'rewiring_saving_n_glomeruli={m}.png'}"]
    assert lines == want
    assert np.ptp(theory.best_partners_synapse_saving(0.3, 1000.0, np.array([20, 50]))) > 0.1  # M matters
    grid = chapter3.rewiring_grid(wider.sel(n_glomeruli=20))  # what the figure draws: the bound of M = 20
    from olfacto import plots
    assert plots.rewiring(wider.sel(n_glomeruli=20))._suptitle.get_text().endswith("(2 seeds; n_glomeruli = 20)")
    assert plots.rewiring(wider.sel(n_glomeruli=20).isel(seed=[0]))._suptitle.get_text().endswith(
        "(1 seed; n_glomeruli = 20)")
    np.testing.assert_allclose(grid.alignment_best_partners.values, theory.hebbian_best_partners_alignment(
        np.array([[500], [1000]]), 20, grid.K.transpose("n_cortex", "connection_prob").values), rtol=1e-12)
    monkeypatch.setattr(main_module, "READINGS_MAX", 1)
    main_module._rewiring_report(wider, tmp_path / "more", plot=True)
    assert capsys.readouterr().out.splitlines() == [
        "synapse saving     the sweep also varies n_glomeruli (2 combinations): read it per value, e.g. "
        "chapter3.synapse_saving(store.sel(n_glomeruli=20)) (docs/chapters.md)"]
    assert not (tmp_path / "more").exists()
    main_module._rewiring_report(store.sel(rewiring_rule=["hebbian", "random"]), tmp_path / "no_none", plot=True)
    assert capsys.readouterr().out.splitlines() == [  # no fixed mask to compare with: said, nothing drawn
        "synapse saving     not read: add rewiring.rule=none to the grid (the fixed mask the rules save synapses "
        "against)"]
    assert not (tmp_path / "no_none").exists()


@pytest.mark.slow
def test_a_rewiring_sweep_prints_its_saving_and_draws_it(tmp_path, capsys):
    """``olfacto sweep`` over rewiring.rule (none, hebbian) × circuit.connection_prob prints the synapse saving
    the store gives (chapter3.synapse_saving on it, read back) and writes rewiring.png and rewiring_saving.png;
    without rule none (a store that is no comparison) it prints what it lacks, no saving, and draws nothing."""
    import importlib

    import xarray as xr

    from olfacto.analysis import chapter3
    main_module = importlib.import_module("olfacto.cli.main")  # the module: olfacto.cli.main is also its function

    cfg = tmp_path / "c.yaml"
    cfg.write_text("circuit: {n_cortex: 64, n_glomeruli: 10, mask: fixed_indegree}\n"
                   "rewiring: {rule: hebbian, every: 100, fraction: 0.25}\n"
                   "run: {n_breaths: 200, record_every: 100, n_probe: 20, progress: false}\n")
    args = ["sweep", str(cfg), "--grid", "circuit.connection_prob=0.0625,0.125,0.25", "--quiet"]
    assert cli.main([*args, "--grid", "rewiring.rule=none,hebbian", "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    store = xr.open_zarr(tmp_path / "a" / "sweep.zarr").load()
    saving = chapter3.synapse_saving(store)
    assert "\n".join(chapter3.saving_lines(saving)) in out
    assert (tmp_path / "a" / "rewiring.png").stat().st_size > 0 and (tmp_path / "a" / "rewiring_saving.png").exists()
    assert not chapter3.is_rewiring_comparison(store.sel(rewiring_rule=["hebbian"]))
    main_module._rewiring_report(store.sel(rewiring_rule=["hebbian"]), tmp_path / "b", plot=True)
    out = capsys.readouterr().out  # no fixed mask to compare with: what it lacks, no saving, nothing drawn
    assert out.startswith("synapse saving     not read: add rewiring.rule=none") and not (tmp_path / "b").exists()


def test_the_random_reference_is_computed_once_per_run_and_stays_its_value(monkeypatch):
    """random_partner_correlation is fixed over a run (the probes are; an event changes which partners a neuron has,
    never how many), so the record computes it once per batch (Record.constants): a run's values are one number at
    every record, equal (rtol 1e-6) to the record's own computation on the final state — after two events, with a
    bernoulli mask's unequal in-degrees — and its program is called once in a run of four records."""
    from olfacto.engine import programs

    calls = []
    make = programs.constants

    def counted(spec, rec):
        program = make(spec, rec)

        def call(*args):
            calls.append(rec.name)
            return program(*args)
        return call

    monkeypatch.setattr(programs, "constants", counted)
    cfg = small(circuit__activation="relu", circuit__mask="bernoulli", run__n_breaths=300, run__record_every=100,
                rewiring__rule="magnitude", rewiring__every=100, rewiring__fraction=0.25)
    result = olfacto.run(cfg)
    ds = result.dataset
    assert calls == ["rewiring"] and ds.sizes["breath"] == 4 and int(ds.rewiring_events[-1]) == 2
    # an event due at a recorded breath follows the record (events at 100, 200; none at the last breath, 300): the
    # record of breath 100 still holds every breath-0 synapse
    np.testing.assert_array_equal(ds.rewiring_events.values, [0, 0, 1, 2])
    assert float(ds.rewiring_survival[1]) == 1.0 and float(ds.rewiring_survival[2]) < 1.0
    values = ds.random_partner_correlation.values
    assert np.unique(values).size == 1
    world, state = jax.tree.map(lambda a: a[0], (result.world, result.state))
    again = rewiring.measure(result.spec, world, None, state)
    np.testing.assert_allclose(values[-1], float(again["random_partner_correlation"]), rtol=1e-6)
    assert float(again["partner_correlation"]) == pytest.approx(float(ds.partner_correlation[-1]), rel=1e-6)
