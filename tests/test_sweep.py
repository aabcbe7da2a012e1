"""Sweeps: grid points equal single runs; resume, device sharding and --part change nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import xarray as xr

import olfacto
from olfacto import cli, config, sweeps as sweep
from olfacto.sweeps import batch as sweep_batch
from olfacto.sweeps import store as sweep_store

BASE = {
    "circuit": {"n_cortex": 40, "n_glomeruli": 8, "connection_prob": 0.25},
    "run": {"n_breaths": 200, "record_every": 100, "n_probe": 16, "progress": False},
}
GRID = {"learning.lr": [0.002, 0.01], "seed": [0, 1, 2], "odors.noise": [0.0, 0.3]}  # 12 points, one Spec


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    return sweep.run_sweep(BASE, GRID, out, batch_size=4, progress=False)


def _same(a: xr.Dataset, b: xr.Dataset):
    for name in olfacto.model.measures.recorded():
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_grid_points_equal_single_runs(reference):
    assert reference.done.all()
    # the sweeps of this file (resumed, killed, sharded) all learn on the chunked path
    assert reference.attrs["plasticity"] == "chunked:factored-dense"
    # identifier-safe dimension names, the config key in the attrs
    assert reference.alignment.dims == ("lr", "seed", "noise", "breath")
    assert reference.lr.attrs["config_key"] == "learning.lr" and reference.noise.attrs["config_key"] == "odors.noise"
    for lr, seed, noise in [(0.002, 0, 0.0), (0.01, 2, 0.3), (0.01, 1, 0.0)]:
        cfg = config.validate(config.set_dotted(config.set_dotted(config.set_dotted(
            BASE, "learning.lr", lr), "seed", seed), "odors.noise", noise))
        single = olfacto.run(cfg).dataset
        point = reference.sel(lr=lr, seed=seed, noise=noise)
        for name in olfacto.model.measures.recorded():
            np.testing.assert_allclose(point[name].values, single[name].values, rtol=1e-4, atol=1e-5, err_msg=name)


def test_interrupted_sweep_resumes_to_identical_result(tmp_path, monkeypatch, reference, capsys):
    real = sweep_store.write_batch
    calls = []

    def crash_after_first(path, batch, ds):
        if calls:
            raise KeyboardInterrupt  # Ctrl-C while the second batch was being written
        calls.append(1)
        real(path, batch, ds)

    monkeypatch.setattr(sweep_batch, "write_batch", crash_after_first)  # what the batch runner calls
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(BASE, GRID, tmp_path, batch_size=4, progress=False)
    monkeypatch.undo()
    partial = sweep.open_result(tmp_path)
    assert int(partial.done.sum()) == 4
    capsys.readouterr()
    resumed = sweep.run_sweep(BASE, GRID, tmp_path, batch_size=4, progress=False)
    _same(resumed, reference)
    total, store = sweep.n_points(GRID), tmp_path / sweep.STORE
    # a resumed sweep says how many points it skipped (issue 23, item 11)
    assert capsys.readouterr().err.splitlines() == [
        f"olfacto sweep: resuming {store}: 4 of {total} points already done (skipped), {total - 4} to run"]
    sweep.run_sweep(BASE, GRID, tmp_path, batch_size=4, progress=False)
    assert capsys.readouterr().err.splitlines() == [
        f"olfacto sweep: {store} already holds all {total} points; nothing to run"]


@pytest.mark.slow
def test_kill_9_between_data_and_flags_then_resume(tmp_path, reference):
    """SIGKILL at the worst moment: a batch's data written, its done flags not yet."""
    script = textwrap.dedent(f"""
        import os, signal
        from olfacto import sweeps as sweep
        from olfacto.sweeps import batch as sweep_batch, store
        real = store.write_batch
        n = []
        def write(path, batch, ds):
            if n:
                group = __import__("zarr").open_group(str(path), mode="r+")
                group["alignment"][batch[0].index] = ds.alignment.isel(run=0).values * 0 + 123.0
                os.kill(os.getpid(), signal.SIGKILL)
            n.append(1)
            real(path, batch, ds)
        sweep_batch.write_batch = write
        sweep.run_sweep({BASE!r}, {GRID!r}, {str(tmp_path)!r}, batch_size=4, progress=False)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    # two batches write at once on a CPU: the kill may come before or after the first one's flags
    assert int(sweep.open_result(tmp_path).done.sum()) in (0, 4)
    _same(sweep.run_sweep(BASE, GRID, tmp_path, batch_size=4, progress=False), reference)


def test_shards_cover_grid_exactly_once(tmp_path, reference):
    points = sweep.expand(BASE, GRID)
    batches = sweep.plan(points, batch_size=4)
    seen = [p.index for k in range(3) for b, batch in enumerate(batches) if b % 3 == k for p in batch]
    assert sorted(seen) == sorted(p.index for p in points)  # each point once, none missing
    for i in (1, 2, 3):
        assert cli.main(["sweep", _empty(tmp_path), "--quiet", "--part", f"{i}/3", "--batch-size", "4",
                         "--out", str(tmp_path / "out"), *_cli_args()]) == 0
    _same(sweep.open_result(tmp_path / "out"), reference)


def test_batches_run_at_once_give_the_points_they_give_one_by_one(tmp_path, monkeypatch, reference):
    """Two batches at a time (devices.batches_at_once: each in its own thread) change no point's result: each
    run's results do not depend on its batch. The plan cuts the one-Spec grid into at least two batches."""
    import threading

    from olfacto.engine import devices

    points = sweep.expand(BASE, GRID)
    halves = sweep.plan(points, at_once=2)
    assert [len(b) for b in halves] == [6, 6]
    assert sorted(p.index for b in halves for p in b) == sorted(p.index for p in points)
    real, threads = sweep_batch.run_and_write, set()

    def noting(path, batch):
        threads.add(threading.current_thread().name)
        return real(path, batch)

    monkeypatch.setattr("olfacto.sweeps.runner.run_and_write", noting)
    monkeypatch.setenv(devices.AT_ONCE_ENV, "2")
    _same(sweep.run_sweep(BASE, GRID, tmp_path, batch_size=4, progress=False), reference)
    assert len(threads) == 2 and all(t.startswith("olfacto-batch") for t in threads)  # both threads ran batches


def test_map_batches_yields_in_order_never_nests_threads_and_drops_the_rest_after_an_error():
    """devices.map_batches: results in the items' order; a map_batches inside one of its threads runs in that
    thread (two at once fill the cores: no threads of threads); after an error the items not started are not."""
    import threading
    import time

    from olfacto.engine import devices

    def outer(i):
        return i, [name for name in devices.map_batches(lambda _: threading.current_thread().name, [0, 1, 2],
                                                        at_once=2)]

    got = list(devices.map_batches(outer, list(range(6)), at_once=2))
    assert [i for i, _ in got] == list(range(6))
    for _, names in got:
        assert len(set(names)) == 1 and names[0].startswith("olfacto-batch")
    started, finished = [], []

    def failing(i):
        started.append(i)
        if i == 0:
            raise ValueError("bad batch")
        time.sleep(0.05)
        finished.append(i)
        return i

    with pytest.raises(ValueError, match="bad batch"):
        list(devices.map_batches(failing, list(range(20)), at_once=2))
    assert len(started) < 5  # the batch beside the failed one ran (and perhaps one more); the other 15+ did not
    assert sorted(started[:2]) == [0, 1]
    assert sorted(finished) == sorted(started[1:])  # the error was raised only after the one beside it finished


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_batches_at_once_is_a_one_line_error(tmp_path, monkeypatch, capsys, value):
    from olfacto.engine import devices

    monkeypatch.setenv(devices.AT_ONCE_ENV, value)
    assert cli.main(["sweep", _empty(tmp_path), "--quiet", "--out", str(tmp_path / "out"), *_cli_args()]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"olfacto: error: OLFACTO_BATCHES_AT_ONCE={value!r}: must be a whole number ≥ 1 (batches run at once)"]


def _empty(folder) -> str:
    path = folder / "empty.yaml"
    path.write_text("# all defaults\n")
    return str(path)


def _cli_args():
    args = []
    for section, values in BASE.items():
        for k, v in values.items():
            args += ["--set", f"{section}.{k}={v}"]
    for k, v in GRID.items():
        args += ["--grid", f"{k}={','.join(map(str, v))}"]
    return args


@pytest.mark.slow
def test_sharded_over_four_devices_equals_single_device(tmp_path, reference):
    script = textwrap.dedent(f"""
        import jax
        assert jax.local_device_count() == 4, jax.devices()
        from olfacto import sweeps as sweep
        sweep.run_sweep({BASE!r}, {GRID!r}, {str(tmp_path)!r}, batch_size=4, progress=False)
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    sharded = sweep.open_result(tmp_path)
    for name in olfacto.model.measures.recorded():
        np.testing.assert_allclose(sharded[name].values, reference[name].values, rtol=1e-5, atol=1e-6, err_msg=name)


def test_changed_config_is_refused(tmp_path, capsys):
    args = ["sweep", _empty(tmp_path), "--quiet", "--out", str(tmp_path), *_cli_args()]
    sweep.open_store(tmp_path, BASE, GRID, sweep.expand(BASE, GRID))
    assert cli.main(args + ["--set", "learning.decay=0.5"]) == 2
    err = capsys.readouterr().err
    assert "holds a different sweep" in err and err.count("\n") == 1


@pytest.mark.parametrize("grid,message", [
    (["learning.lr=0.1,,0.2"], "expected KEY=V1,V2"),
    (["learning.lr=0.1,0.1"], "values must be distinct"),
    (["learning.lr=0.1,-1"], "learning.lr=-1: input should be greater than or equal to 0"),
    (["run.n_breaths=100,200"], "cannot vary within a sweep"),
    (["circuit.nn=1,2"], "unknown key 'circuit.nn'"),
])
def test_bad_grid(grid, message, tmp_path, capsys):
    assert cli.main(["sweep", _empty(tmp_path), "--quiet", "--out", str(tmp_path), "--grid", *grid]) == 2
    assert message in capsys.readouterr().err


def test_store_opens_like_xarray(tmp_path):
    """Issue 13: ``xr.open_zarr(DIR/sweep.zarr).sel(connection_prob=…)`` works without a warning, and every
    coordinate says what it is; the points are the runs of ``run_batch`` over the same configs."""
    grid = {"circuit.connection_prob": [0.25, 0.5], "seed": [0]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning, writing or reading, fails the test
        sweep.run_sweep(BASE, grid, tmp_path, progress=False)
        ds = xr.open_zarr(tmp_path / sweep.STORE).load()
    assert ds.alignment.sel(connection_prob=0.5, seed=0).dims == ("breath",)
    for name, coord in ds.coords.items():
        assert coord.attrs.get("long_name"), name
    assert ds.connection_prob.attrs["config_key"] == "circuit.connection_prob"
    np.testing.assert_allclose(ds.K.values, [10, 20])  # K = pN, over the grid dim it depends on (issue 23)
    for p in grid["circuit.connection_prob"][:1]:  # the padded point (test_padding.py: the others)
        single = olfacto.run(config.validate(config.set_dotted(BASE, "circuit.connection_prob", p))).dataset
        np.testing.assert_allclose(ds.alignment.sel(connection_prob=p, seed=0).values,
                                   single.alignment.values, rtol=1e-5, atol=1e-6)
        # per-neuron values stored too (one N for every point), as run writes them
        np.testing.assert_allclose(ds.tuning_correlation.sel(connection_prob=p, seed=0).values,
                                   single.tuning_correlation.values, rtol=1e-5, atol=1e-6)
    # run_batch labels its runs by what differs between them, with the sweep's names and attrs
    configs = [config.validate(config.set_dotted(BASE, "learning.lr", lr)) for lr in (0.002, 0.01)]
    batch = olfacto.run_batch(configs).dataset
    assert set(batch.coords) == {"run", "breath", "direction", "seed", "lr"}
    np.testing.assert_array_equal(batch.lr.values, [0.002, 0.01])
    assert batch.lr.attrs["config_key"] == "learning.lr"


@pytest.mark.slow
def test_store_carries_k_gain_and_the_theory_per_point(tmp_path):
    """Issue 23, item 5: K = pN and g = K/(Mλ) are coordinates over the grid dims they depend on, the mean-field
    prediction of each point is stored beside its measures (equal to ``prediction`` of the point's config),
    none of them is overwritten by the points or by a resume, and the plot over K by N is one line."""
    import matplotlib

    matplotlib.use("Agg")
    from olfacto.model.prediction import prediction

    grid = {"circuit.connection_prob": [0.25, 0.5], "circuit.n_cortex": [24, 40], "seed": [0]}
    sweep.run_sweep(BASE, grid, tmp_path, progress=False)
    sweep.run_sweep(BASE, grid, tmp_path, progress=False)  # a resume with nothing to do
    ds = sweep.open_result(tmp_path)
    assert ds.done.all()
    assert ds.K.dims == ("connection_prob", "n_cortex") and ds.gain.dims == ("connection_prob", "n_cortex")
    np.testing.assert_allclose(ds.K.values, [[6, 10], [12, 20]])
    np.testing.assert_allclose(ds.gain.values, ds.K.values / (8 * 1.0))  # M = 8, λ = 1
    assert ds.alignment_theory.dims == ("connection_prob", "n_cortex")
    for p in grid["circuit.connection_prob"]:
        for n in grid["circuit.n_cortex"]:
            cfg = config.validate(config.set_dotted(config.set_dotted(BASE, "circuit.connection_prob", p),
                                                    "circuit.n_cortex", n))
            assert float(ds.alignment_theory.sel(connection_prob=p, n_cortex=n)) == pytest.approx(
                prediction(cfg).alignment, rel=1e-12)
    lines = ds.alignment.isel(breath=-1).mean("seed").plot(x="K", hue="n_cortex")
    assert len(lines) == 2
