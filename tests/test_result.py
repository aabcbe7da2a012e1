"""The Result API: weights, responses and measures on one's own odors, equal to what a run records."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

import olfacto
from olfacto.model import circuit, sparse

from conftest import small


@functools.cache
def result():
    return olfacto.run(small(circuit__n_cortex=48, learning__lr=0.02, run__n_breaths=300))


def test_weights_per_direction_are_the_masked_matrix():
    res = result()
    world, state = jax.tree.map(lambda a: a[0], (res.world, res.state))
    for d in circuit.DIRECTIONS:
        want = np.asarray(sparse.to_dense(state.weights[d], world.masks[d]))
        w = res.weights(d)
        assert w.shape == (48, 48) and w.nnz == int(world.masks[d].valid.sum())  # one entry per synapse
        np.testing.assert_array_equal(w.toarray(), want)
        np.testing.assert_array_equal(res.weights(d, dense=True), want)


def test_responses_to_own_odors_follow_the_forward_pass():
    res = result()
    x = np.random.default_rng(1).normal(size=(7, res.config.circuit.n_glomeruli))
    y, y_hat = res.direct(x), res.indirect(x)
    world = jax.tree.map(lambda a: a[0], res.world)
    J = {s: np.asarray(world.circuit.J[s], np.float64) for s in circuit.SIDES}
    for s in circuit.SIDES:  # linear φ: y = J x
        np.testing.assert_allclose(y[s], x @ J[s].T, rtol=1e-4, atol=1e-5)
    for d in circuit.DIRECTIONS:  # ŷ = W φ(J_pre x)
        np.testing.assert_allclose(y_hat[d], (x @ J[circuit.pre(d)].T) @ res.weights(d, dense=True).T,
                                   rtol=1e-4, atol=1e-5)
    assert res.direct(x[0])["L"].shape == (48,)  # one odor → one vector


def test_measures_on_the_probe_odors_are_the_last_record():
    res = result()
    probes = np.asarray(res.world.probes[0])
    mine = res.measures(probes)
    last = res.dataset.isel(breath=-1)
    for name, value in mine.items():
        assert value == pytest.approx(float(last[name]), rel=1e-5, abs=1e-6), name


def test_measures_on_other_odors_are_computed_on_those_odors():
    """On odors other than the run's probes every measure is recomputed from them — update alignment
    included, checked against its synapse-by-synapse reference path (rtol 1e-4)."""
    from olfacto.model import measures

    res = result()
    world, state = jax.tree.map(lambda a: a[0], (res.world, res.state))
    x = np.random.default_rng(2).normal(size=(30, res.config.circuit.n_glomeruli)).astype(np.float32)
    mine = res.measures(x)
    y = res.direct(x)
    ref = np.mean([float(measures.update_alignment_slots(state.weights[d], world.masks[d],
                                                         y[circuit.pre(d)], y[circuit.post(d)],
                                                         res.config.learning.decay))
                   for d in circuit.DIRECTIONS])
    assert mine["update_alignment"] == pytest.approx(ref, rel=1e-4)


@pytest.mark.slow
def test_refined_responses_with_recurrence():
    """With recurrence, ``refined`` gives z_T, whose alignment on the probes is the recorded one."""
    res = olfacto.run(small(circuit__n_cortex=48, learning__lr=0.02, run__n_breaths=300,
                            recurrence__connection_prob=0.2))
    probes = np.asarray(res.world.probes[0])
    z, y = res.refined(probes), res.direct(probes)
    from olfacto.model import measures

    got = np.mean([float(measures.alignment(y[circuit.post(d)], z[d])) for d in circuit.DIRECTIONS])
    assert got == pytest.approx(float(res.dataset.alignment_recurrent[-1]), rel=1e-5)
    with pytest.raises(ValueError, match="no recurrence"):
        result().refined(probes)


def test_bad_arguments_are_named():
    res = result()
    with pytest.raises(ValueError, match="direction='L_R'"):
        res.weights("L_R")
    with pytest.raises(ValueError, match=r"odors: expected shape \(P, 10\)"):
        res.direct(np.zeros((3, 11)))
    with pytest.raises(ValueError, match="at least 4 odors"):
        res.measures(np.zeros((2, 10)))
    with pytest.raises(IndexError, match="run=1"):
        res.direct(np.zeros((3, 10)), run=1)


def test_progress_in_a_log_is_plain_lines(capsys):
    """Not a terminal, not a notebook: one line per 10 % (here every 20 %), no carriage returns."""
    from olfacto.engine import progress

    bar = progress.bar(100, "breaths", "breath")
    assert isinstance(bar, progress.LineProgress)  # pytest captures stderr: not a TTY
    for _ in range(5):
        bar.update(20)
    bar.close()
    err = capsys.readouterr().err
    assert "\r" not in err
    assert [line.split(":")[1].split("%")[0].strip() for line in err.splitlines()] == ["20", "40", "60", "80", "100"]


def test_progress_lines_give_the_time_to_the_tenth_and_the_pace(capsys, monkeypatch):
    """Issue 23, item 12: after 15 s of compiling, the learning of 4,000 breaths took 0.8 s — each line said
    "16 s". The lines now give the elapsed time to the tenth (hundredth under 10 s) and, from the second line
    on, the rate since the line before and the time left."""
    from olfacto.engine import progress

    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    bar = progress.LineProgress(4000, desc="breaths", unit="breath", delay=3.0, step=0.25)
    for dt in (15.2, 0.1, 0.1, 0.1):
        now[0] += dt
        bar.update(1000)
    bar.set_postfix_str("writing")
    assert capsys.readouterr().err.splitlines() == [
        "breaths:  25% (1000/4000 breaths, 15.2 s)",
        "breaths:  50% (2000/4000 breaths, 15.3 s; 10,000 breaths/s, ≈ 0.20 s left)",
        "breaths:  75% (3000/4000 breaths, 15.4 s; 10,000 breaths/s, ≈ 0.10 s left)",
        "breaths: 100% (4000/4000 breaths, 15.5 s; 10,000 breaths/s)",
        "breaths: 4000/4000 breaths, 15.5 s [writing]",
    ]
    assert [progress.clock(s) for s in (0.421, 59.94, 125, 3725)] == ["0.42 s", "59.9 s", "2 min 05 s", "1 h 02 min"]
    assert [progress.plural(u) for u in ("point", "batch", "breath")] == ["points", "batches", "breaths"]  # not "batchs"
