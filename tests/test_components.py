"""Components and records (issue 18): records are data handed to the one run loop, and the bugs found on the
way stay fixed (sharding by structure, late-default keys at any depth, a sweep's plan linear in its batches)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import olfacto
from olfacto.engine import records as rec
from olfacto.model.circuit import DIRECTIONS

from conftest import small


def _weights(spec, world, params, state):
    return {"W": jax.numpy.stack([state.weights[d] for d in DIRECTIONS])}


def _weight_variables(spec, configs):
    return {"W": rec.Variable(("direction", "neuron", "slot"), {"long_name": "W in slot form"}, "float32")}


def _sizes(spec):
    return {"direction": 2, "neuron": spec.circuit.n_cortex, "slot": spec.projection.slots}


SNAPSHOTS = rec.Record("snapshots", rec.At((0, 100, 300)), _weights, _weight_variables, sizes=_sizes,
                       time_dim="snapshot")
EVERY_200 = rec.Record("measures_200", rec.Every(200),
                       lambda *a: {f"{k}_coarse": v for k, v in rec.MEASURES.compute(*a).items()},
                       lambda spec, configs: {f"{k}_coarse": v for k, v in rec.MEASURES.variables(spec, configs).items()},
                       time_dim="coarse")
END = rec.Record("final", rec.End(), lambda *a: {"W_final": _weights(*a)["W"]},
                 lambda spec, configs: {"W_final": _weight_variables(spec, configs)["W"]}, sizes=_sizes)


def _moments_variables(spec, configs):
    return {f"W_{s}": rec.Variable(("direction", "neuron", "slot")) for s in ("mean", "var")}


MOMENTS = rec.Record("moments", rec.Every(100, start=100), _weights, _moments_variables, sizes=_sizes,
                     fold=rec.Moments(), time_dim="window")


@pytest.fixture(scope="module")
def recorded():
    cfg = small(run__n_breaths=400, run__record_every=100)
    custom = olfacto.run(cfg, records=[*rec.defaults([cfg]), SNAPSHOTS, EVERY_200, END, MOMENTS])
    return cfg, custom, olfacto.run(cfg)


def test_records_at_given_breaths_and_at_the_end_hold_the_state_of_then(recorded):
    """A weight snapshot at breath 0 is the initial W; the End record is the final state; the default
    measures are unchanged by extra records (same programs, same breaths: bit-identical)."""
    cfg, custom, plain = recorded
    ds = custom.dataset
    assert list(ds.snapshot.values) == [0, 100, 300]
    final = np.stack([np.asarray(custom.state.weights[d][0]) for d in DIRECTIONS])
    np.testing.assert_array_equal(ds.W_final.values, final)
    world, state, params = custom.one(0)
    w0 = olfacto.model.network.init(custom.spec, jax.random.key(cfg.seed), params)[1]
    np.testing.assert_allclose(ds.W.sel(snapshot=0).values, np.stack([w0.weights[d] for d in DIRECTIONS]), rtol=1e-6)
    assert not np.array_equal(ds.W.sel(snapshot=100).values, ds.W.sel(snapshot=0).values)
    for name in olfacto.model.measures.recorded():
        np.testing.assert_array_equal(ds[name].values, plain.dataset[name].values, err_msg=name)


def test_a_second_schedule_of_the_measures_equals_the_default_at_shared_breaths(recorded):
    """The measures every 200 breaths (a record on its own time dim) equal the default record at 0, 200, 400
    (a separately compiled program: XLA may fuse differently, so to float32 rounding, rtol 1e-6)."""
    _, custom, _ = recorded
    ds = custom.dataset
    assert list(ds.coarse.values) == [0, 200, 400]
    for name in olfacto.model.measures.recorded():
        np.testing.assert_allclose(ds[f"{name}_coarse"].values, ds[name].sel(breath=[0, 200, 400]).values,
                                   rtol=1e-6, atol=1e-7, err_msg=name)


def test_a_fold_equals_the_moments_of_the_snapshots(recorded):
    """Moments over W at breaths 100 … 400 (folded on the host, nothing kept) equal NumPy's mean and variance
    of the same four snapshots, taken by re-running with an At record (float64 sums of float32 values)."""
    cfg, custom, _ = recorded
    at = rec.Record("w", rec.At((100, 200, 300, 400)), _weights, _weight_variables, sizes=_sizes, time_dim="t")
    snaps = olfacto.run(cfg, records=[at]).dataset.W.values.astype(np.float64)  # (t, direction, neuron, slot)
    np.testing.assert_allclose(custom.dataset.W_mean.values, snaps.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(custom.dataset.W_var.values, snaps.var(0), rtol=1e-5, atol=1e-9)


def test_a_record_off_the_chunk_grid_is_refused():
    cfg = small(run__n_breaths=200, run__record_every=100)
    bad = rec.Record("w", rec.At((150,)), _weights, _weight_variables, sizes=_sizes, time_dim="t")
    with pytest.raises(olfacto.ConfigError, match="record 'w' at breath 150: records fall on multiples of "
                                                  "run.record_every=100"):
        olfacto.run(cfg, records=[bad])


def test_neuron_axes_are_found_by_structure_not_by_length():
    """With n_probe = n_glomeruli = N the arrays split over devices are the same as with other lengths (the
    old rule — 'axis 1 has length N' — also split the probes and J's glomerular axis)."""
    from olfacto.config.tree import params_of
    from olfacto.engine import sharding
    from olfacto.model import network

    def axes(**over):
        cfg = small(circuit__n_cortex=16, **over)
        spec = network.spec_of(cfg)
        keys = jax.random.key_data(jax.random.split(jax.random.key(0), 1))
        params = jax.tree.map(lambda a: a[None], params_of(cfg))

        def init(sp, key_data, p, lib):
            ks = jax.vmap(jax.random.wrap_key_data)(key_data)
            return jax.vmap(lambda k, q: network.init(sp, k, q, lib))(ks, p)

        return sharding.neuron_axes(init, spec, (keys, params, None))

    same = axes(circuit__n_glomeruli=16, run__n_probe=16)
    other = axes(circuit__n_glomeruli=10, run__n_probe=12)
    assert jax.tree.leaves(same) == jax.tree.leaves(other)  # (the trees' static n_pre = N differs: leaves only)
    world, _ = same
    assert world.anatomy["projection"].masks["L_to_R"].idx and world.circuit.J["L"] and not world.probes


def test_late_default_keys_are_left_out_at_any_depth(monkeypatch):
    """A key newer than stored results (config.LATE_DEFAULTS) three levels deep: at its default it leaves the
    fingerprint as it was (and prunes the sections it empties); changed, or in the grid, it enters it."""
    from olfacto.sweeps import grid as g

    base = {"circuit": {"n_cortex": 40}}
    before = g.fingerprint(base, {"seed": [0, 1]})
    resolved = olfacto.config.validate(base).to_dict()
    key, value = "odors.nasal_cycle.amplitude", resolved["odors"]["nasal_cycle"]["amplitude"]
    monkeypatch.setitem(g.LATE_DEFAULTS, key, value)
    dropped = g._drop_late_defaults(resolved, {})
    assert "amplitude" not in dropped["odors"]["nasal_cycle"]
    assert g._drop_late_defaults(resolved, {key: [value]})["odors"]["nasal_cycle"]["amplitude"] == value
    changed = {**base, "odors": {"nasal_cycle": {"amplitude": 0.25 if value != 0.25 else 0.5}}}
    assert g._drop_late_defaults(olfacto.config.validate(changed).to_dict(), {})["odors"]["nasal_cycle"]
    assert g.fingerprint(base, {"seed": [0, 1]}) != before  # the key left the fingerprint …
    monkeypatch.undo()
    assert g.fingerprint(base, {"seed": [0, 1]}) == before  # … and returns with it


def test_a_sweep_plans_its_batches_in_linear_time(monkeypatch, tmp_path):
    """run_sweep derives each batch's Spec once (it did so once per batch per batch: quadratic)."""
    from olfacto.model import network
    from olfacto.sweeps import runner

    calls = []
    real = network._flat_spec
    monkeypatch.setattr(network, "_flat_spec", lambda cfg: calls.append(1) or real(cfg))
    monkeypatch.setattr(runner, "run_and_write", lambda path, batch: len(batch))
    base = {"circuit": {"n_cortex": 24, "n_glomeruli": 6}, "run": {"n_breaths": 100, "record_every": 100,
                                                                      "progress": False}}
    counts = []
    for n in (12, 24):
        calls.clear()
        runner.run_sweep(base, {"seed": list(range(n))}, tmp_path / str(n), batch_size=1, progress=False)
        counts.append(len(calls))
    # a few derivations per point (grouping, slot counts, the store's layout, each batch's Spec): twice the
    # points, twice the calls (+ a constant); quadratic would be four times
    assert counts[1] <= 2 * counts[0] + 4, counts


class _Gain:
    """A toy per-cortex component: a fixed gain c on the indirect response arriving in each cortex (no learning,
    no anatomy). Defined here, registered by one assignment: nothing else in olfacto knows of it."""

    name, stage, activated = "gain", "g_hat", False
    c = 2.5

    def static(self, cfg):
        return {}

    def active(self, spec):
        return True

    def init(self, spec, key, params, circ):
        return None, {}

    def learn(self, spec, world, params, state, x, n_steps):
        return state.parts[self.name]

    def plan(self, spec, n_steps):
        return "fixed"

    def respond(self, spec, world, params, state, upstream, y, directions=DIRECTIONS):
        return {d: self.c * upstream[d] for d in directions}

    def finite(self, part):
        return jax.numpy.bool_(True)

    def bytes(self, cfg):
        return 0

    def advice(self, cfg):
        return "nothing to change"


def test_a_new_component_is_one_object(monkeypatch):
    """Registering a component in network.COMPONENTS is the whole change: a run draws, learns, records and
    checks it; its stage is the last of the indirect pathway (received = c · ŷ for linear φ), and the measures,
    which read ŷ, are exactly those of the run without it."""
    from olfacto.engine import programs
    from olfacto.model import network

    cfg = small(run__n_breaths=200, run__record_every=100)
    plain = olfacto.run(cfg)
    monkeypatch.setattr(network, "COMPONENTS", (*network.COMPONENTS, _Gain()))
    monkeypatch.setattr(programs, "_COMPILED", {})  # the Spec is the same: compile anew with the component
    with_gain = olfacto.run(cfg)
    assert with_gain.dataset.attrs["plasticity"] == plain.dataset.attrs["plasticity"]
    for name in olfacto.model.measures.recorded():
        np.testing.assert_array_equal(with_gain.dataset[name].values, plain.dataset[name].values, err_msg=name)
    world, state, params = with_gain.one(0)
    spec = with_gain.spec
    got = network.received(spec, world, params, state, world.y)
    stages = network.indirect(spec, world, params, state, world.y)
    assert set(stages) == {"y_hat", "g_hat"}
    for d in DIRECTIONS:
        np.testing.assert_allclose(np.asarray(got[d]), _Gain.c * np.asarray(stages["y_hat"][d]), rtol=1e-6)


def test_a_linear_cortex_responds_to_the_probes_through_j_as_through_the_sparse_product():
    """ŷ of the probes = x ((W ⊙ C) J_pre)ᵀ for linear φ and M < P (the records' path, with either kernel of
    the sparse product (W ⊙ C) J_pre) equals (W ⊙ C) y_pre to float32 rounding, at a record boundary of a learned
    run; relu keeps the sparse product."""
    from olfacto.engine import loop
    from olfacto.model import network, projection, sparse
    from olfacto.model.circuit import SIDES

    for activation, n, p, kernel in (("linear", 2000, 0.003, "gather"), ("linear", 200, 0.5, "dense"),
                                     ("relu", 2000, 0.003, None)):
        cfg = small(circuit__n_cortex=n, circuit__connection_prob=p, circuit__mask="fixed_indegree",
                    circuit__activation=activation, run__n_probe=40, run__n_breaths=100)
        res = olfacto.run(cfg)
        spec, world, params, state = res.spec, *(jax.tree.map(lambda a: a[0], t) for t in
                                                  (res.world, loop.stack([cfg]), res.state))
        mask = world.anatomy["projection"].masks["L_to_R"]
        assert projection.factored_response(spec, 40) is (kernel is not None)
        if kernel:  # the kernel of (W ⊙ C) J_pre, M = 10 columns
            assert sparse.matmat_kernel(mask, cfg.circuit.n_glomeruli) == kernel
        x = {s: world.probes for s in SIDES}
        via_j = network.indirect(spec, world, params, state, world.y, x=x)["y_hat"]
        sparse_product = network.indirect(spec, world, params, state, world.y)["y_hat"]
        for d in DIRECTIONS:
            scale = float(np.abs(sparse_product[d]).max())
            assert scale > 0
            # float32: sums of K·M ≤ 1,000 products in another order, ≤ 1e-6 of max |ŷ|
            np.testing.assert_allclose(np.asarray(via_j[d]), np.asarray(sparse_product[d]), rtol=0, atol=1e-6 * scale)
