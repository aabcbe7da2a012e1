"""A sweep over p compiles once: masks drawn with more slots hold the same synapses, and a padded batch's
points equal the same points run alone (issue 23, item 2)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import olfacto
from olfacto import config, sweeps as sweep
from olfacto.engine import devices, programs
from olfacto.model import network, recurrence, sparse
from olfacto.sweeps import batch, dask, runner

N = 300
O0 = {"xla_backend_optimization_level": 0}  # compiles 2-3x faster; the draws are integers, unchanged


def _synapses(mask: sparse.FanIn) -> list[np.ndarray]:
    idx, valid = np.asarray(mask.idx), np.asarray(mask.valid)
    return [row[v] for row, v in zip(idx, valid)]


@pytest.mark.parametrize("kind,p", [("bernoulli", 0.03), ("fixed_indegree", 0.03), ("bernoulli", 0.45),
                                    ("fixed_indegree", 0.6)])
def test_a_mask_drawn_with_more_slots_holds_the_same_synapses(kind, p):
    k_max = sparse.slots(N, N, p, kind)
    wider = k_max + 40 if not sparse.dense_draw(k_max, N) else N  # the same way of drawing (repeats / permutation)
    assert sparse.dense_draw(k_max, N) == sparse.dense_draw(wider, N)
    draw = jax.jit(sparse.sample_mask, static_argnums=(1, 2, 4, 5), compiler_options=O0)
    key = jax.random.key(11)
    own, padded = draw(key, N, N, p, kind, k_max), draw(key, N, N, p, kind, wider)
    for a, b in zip(_synapses(own), _synapses(padded)):
        np.testing.assert_array_equal(a, b)
        assert np.all(np.diff(a) > 0)  # distinct and sorted
    degrees = np.asarray(own.valid).sum(axis=1)
    # the valid slots are each row's first K_i (the padded slots after them)
    assert np.array_equal(np.asarray(padded.valid), np.arange(wider)[None, :] < degrees[:, None])
    if kind == "fixed_indegree":
        assert np.all(degrees == k_max)
    else:  # K_i ~ Bin(N, p): mean pN, standard error √(p(1−p)N/N_rows) — 5 of them
        assert abs(degrees.mean() - p * N) < 5 * np.sqrt(p * (1 - p) * N / N)


def test_partners_are_uniform():
    """Each row's partners are a uniform subset: over 2,000 rows of K = 8 among 20, every partner appears
    K/20 of the time (binomial standard error √(0.4·0.6/2000) ≈ 0.011; tolerance 5 of them)."""
    mask = jax.jit(sparse.sample_mask, static_argnums=(1, 2, 4, 5), compiler_options=O0)(jax.random.key(2), 2000, 20, 0.4,
                                                                     "fixed_indegree", 8)
    counts = np.bincount(np.asarray(mask.idx).ravel(), minlength=20) / 2000
    np.testing.assert_allclose(counts, 0.4, atol=5 * 0.011)


def test_recurrent_mask_is_padded_the_same_way():
    key = jax.random.key(4)
    k = recurrence.slots(N, 0.05, "bernoulli")
    draw = jax.jit(recurrence.sample_mask, static_argnums=(1, 3, 4), compiler_options=O0)
    own, padded = draw(key, N, 0.05, "bernoulli", k), draw(key, N, 0.05, "bernoulli", k + 30)
    for i, (a, b) in enumerate(zip(_synapses(own), _synapses(padded))):
        np.testing.assert_array_equal(a, b)
        assert i not in a


BASE = {"circuit": {"n_cortex": 120, "n_glomeruli": 10, "connection_prob": 0.1},
        "run": {"n_breaths": 120, "record_every": 60, "n_probe": 24, "progress": False}}


@pytest.mark.slow  # make test-slow (CI runs it); the sweep over p below is the everyday check
def test_runs_of_different_p_share_one_program_and_equal_lone_runs():
    """relu, recurrence on and random initial weights: everything a slot holds is padded alike (the Hebbian
    linear case is the sweep's, below)."""
    base = BASE
    for key, value in {"learning.init_scale": 0.5, "recurrence.connection_prob": 0.1, "circuit.activation": "relu",
                       "circuit.mask": "fixed_indegree"}.items():
        base = config.set_dotted(base, key, value)
    configs = [config.validate(config.set_dotted(config.set_dotted(base, "circuit.connection_prob", p), "seed", s))
               for p, s in [(0.05, 0), (0.1, 1), (0.2, 2)]]
    assert len({network.spec_of(c) for c in configs}) == 3  # alone, three programs
    assert devices.groups(configs) == [[0, 1, 2]]
    programs.clear()
    together = olfacto.run_batch(configs).dataset
    assert len({key[0] for key in programs._COMPILED}) == 1  # one Spec compiled: the largest p's slots
    assert together.attrs["slots_per_direction"] == network.spec_of(configs[2]).projection.slots * 120
    for i in (0, 2):  # the most padded run and the one that sets the slots
        alone = olfacto.run(configs[i]).dataset
        for name in olfacto.model.measures.recorded():
            np.testing.assert_allclose(together[name].isel(run=i).values, alone[name].values, rtol=1e-4,
                                       atol=1e-5, err_msg=f"{name} at p={configs[i].circuit.connection_prob}")


def test_padding_stops_where_it_costs_more_than_a_compile(monkeypatch):
    configs = [config.validate(config.set_dotted(BASE, "circuit.connection_prob", p)) for p in (0.03, 0.06, 0.1, 0.15)]
    assert devices.groups(configs) == [[0, 1, 2, 3]]
    # extra slot passes of padding all four to p = 0.15's slots: Σ (K_max(0.15) − K_max(p)) · passes per slot
    own = [network.slots_of(c)["projection.slots"] for c in configs]
    extra = sum((own[-1] - k) * network.pad_cost(c)["projection.slots"] for k, c in zip(own, configs))
    monkeypatch.setattr(devices, "PAD_WORK", extra - 1)
    batches = devices.groups(configs)
    assert len(batches) > 1 and sorted(i for b in batches for i in b) == [0, 1, 2, 3]


def _grid(rule: str, seeds=(0,)) -> list:
    return [config.validate(config.set_dotted(config.set_dotted(config.set_dotted(BASE, "learning.rule", rule),
                                                                "circuit.connection_prob", p), "seed", s))
            for p in (0.03, 0.06, 0.1, 0.15) for s in seeds]


def test_factored_chunks_pad_further_than_per_breath_learning(monkeypatch):
    """A padded slot costs a per-breath run a pass every breath, a linear cortex's factored chunks M passes per
    chunk (docs/benchmarks.md §22): with the budget just below what padding the per-breath SGD grid costs,
    SGD is cut and the same grid learned by the Hebbian rule (exact factored chunks) stays one batch."""
    hebb, sgd = _grid("hebbian"), _grid("sgd")
    assert network.plans(network.spec_of(hebb[0]))["projection"].startswith("chunked:factored")
    assert network.plans(network.spec_of(sgd[0]))["projection"].startswith("per_breath")  # XLA or the loop
    own = [network.slots_of(c)["projection.slots"] for c in sgd]
    extra_sgd = sum((own[-1] - k) * network.pad_cost(c)["projection.slots"] for k, c in zip(own, sgd))
    monkeypatch.setattr(devices, "PAD_WORK", extra_sgd - 1)
    assert len(devices.groups(sgd)) > 1
    assert devices.groups(hebb) == [[0, 1, 2, 3]]


def test_the_seeds_of_one_p_stay_in_one_batch(monkeypatch):
    """A p's runs join or leave a batch together, whatever the budget: a p cut in two would leave a batch of
    another size, which compiles its own programs."""
    configs = _grid("sgd", seeds=(0, 1, 2))
    own = [network.slots_of(c)["projection.slots"] for c in configs]
    cost = [network.pad_cost(c)["projection.slots"] for c in configs]
    for budget in range(1, 12):  # budgets from one run's padding of the second p to all of it
        monkeypatch.setattr(devices, "PAD_WORK", budget * (own[-1] - own[-4]) * cost[0] / 3)
        for b in devices.groups(configs):
            assert len(b) % 3 == 0 and all(i // 3 * 3 + s in b for i in b for s in range(3)), (budget, b)


REWIRED = [pytest.param(r, marks=() if r in ("cht", "gradient") else pytest.mark.slow)
           for r in ("random", "magnitude", "hebbian", "gradient", "cht")]


@pytest.mark.parametrize("rule", REWIRED)
def test_rewiring_runs_of_different_k_share_one_program_and_rewire_as_alone(rule):
    """A rewiring event draws per neuron (window offsets, random priorities, cht's paths through valid slots)
    and a neuron's pool is c·round(ζK_i), so a run padded to a larger K's slots rewires exactly as alone:
    N = 120, K = 6 and 24 (fixed in-degree), ζ = 0.2, an event every 60 breaths, 4 events; the final masks
    are the same synapses and the weights agree to float32 rounding (the padded slots change only the
    order of sums over slots)."""
    base = BASE
    for key, value in {"circuit.mask": "fixed_indegree", "rewiring.rule": rule, "rewiring.every": 60,
                       "rewiring.fraction": 0.2, "run.n_breaths": 240}.items():
        base = config.set_dotted(base, key, value)
    configs = [config.validate(config.set_dotted(config.set_dotted(base, "circuit.connection_prob", p), "seed", s))
               for p, s in [(0.05, 3), (0.2, 4)]]
    assert devices.groups(configs) == [[0, 1]]
    together = olfacto.run_batch(configs)
    alone = olfacto.run(configs[0])
    assert together.spec.projection.slots == 24 and alone.spec.projection.slots == 6
    for d in ("L_to_R", "R_to_L"):
        assert (together.mask(d, run=0) != alone.mask(d)).nnz == 0, d
        assert together.mask(d, run=0).sum(axis=1).min() == 6
    assert float(together.dataset.rewiring_turnover.isel(run=0, breath=-1)) > 0
    np.testing.assert_allclose(together.dataset.alignment.isel(run=0).values, alone.dataset.alignment.values,
                               rtol=1e-4, atol=1e-5)


def test_a_sweep_over_p_compiles_once_and_keeps_every_point(tmp_path):
    """Cut into batches of one p each (``--batch-size 2``), every batch still pads to the group's largest p."""
    grid = {"circuit.connection_prob": [0.05, 0.1, 0.2], "seed": [0, 1]}
    batches = runner.plan(sweep.expand(BASE, grid), batch_size=2)
    assert [{p.config.circuit.connection_prob for p in b} for b in batches] == [{0.05}, {0.1}, {0.2}]
    programs.clear()
    ds = sweep.run_sweep(BASE, grid, tmp_path / "p", batch_size=2, progress=False)
    assert len({key[0] for key in programs._COMPILED}) == 1
    cfg = config.validate(config.set_dotted(config.set_dotted(BASE, "circuit.connection_prob", 0.05), "seed", 1))
    alone = olfacto.run(cfg).dataset
    np.testing.assert_allclose(ds.alignment.sel(connection_prob=0.05, seed=1).values, alone.alignment.values,
                               rtol=1e-4, atol=1e-5)


def test_a_group_split_over_dask_workers_or_parts_shares_one_spec():
    """However a group is cut — Dask's spread over workers, ``--part I/N`` — every batch compiles one Spec."""
    grid = {"circuit.connection_prob": [0.03, 0.05, 0.1, 0.2], "seed": [0, 1, 2]}
    whole = runner.plan(sweep.expand(BASE, grid))
    assert len(whole) == 1
    for batches in (dask.spread(whole, 5), runner.plan(sweep.expand(BASE, grid), batch_size=1)):
        assert len(batches) >= 5
        specs = {network.batch_spec([p.config for p in b], batch.slots(b)) for b in batches}
        assert specs == {network.spec_of(whole[0][-1].config)}  # p = 0.2's slots
