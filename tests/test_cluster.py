"""Sweeps on a Dask cluster (issue 11): the same store, point for point, as a local sweep; resumable."""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pytest
import xarray as xr

from olfacto import cli, config, sweeps as sweep

BASE = {"circuit": {"n_cortex": 40, "n_glomeruli": 8, "connection_prob": 0.25},
        "run": {"n_breaths": 200, "record_every": 100, "n_probe": 16, "progress": False}}
GRID = {"seed": [0, 1, 2], "learning.lr": [0.002, 0.01]}


@pytest.mark.slow
def test_local_dask_cluster_sweep_equals_local_sweep(tmp_path):
    """Two fresh worker processes write their batches into the store; every value and checksum equals the
    in-process sweep's, the store opens in xarray without a warning, and a damaged point is recomputed on
    resume through the cluster."""
    ref = sweep.run_sweep(BASE, GRID, tmp_path / "ref", batch_size=2, progress=False)
    got = sweep.run_sweep(BASE, GRID, tmp_path / "dask", batch_size=2, progress=False, cluster="local:2")
    for name in [*ref.data_vars]:
        np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xr.open_zarr(tmp_path / "dask" / sweep.STORE).load()
    store = tmp_path / "dask" / sweep.STORE
    shutil.rmtree(store / "alignment" / "c" / "1")  # every chunk of seed = 1: two damaged points
    again = sweep.run_sweep(BASE, GRID, tmp_path / "dask", batch_size=2, progress=False, cluster="local:2",
                            log=lambda m: None)
    # bit for bit: the resumed batch is the one the first run cut for two workers, not cut again into single
    # points (a batch of 1 rounds one value of 18 1 ulp off a batch of 2)
    np.testing.assert_array_equal(again.alignment.values, ref.alignment.values)
    assert "2/6 points done" not in sweep.status(tmp_path / "dask") and "6/6 points done" in sweep.status(tmp_path / "dask")


@pytest.mark.parametrize("spec,fragment", [("local:0", "local:N needs N ≥ 1"), ("nowhere", "expected local:N"),
                                           ("missing.json", "scheduler file not found")])
def test_bad_cluster_spec_is_one_line(spec, fragment, tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(config.validate(BASE).to_yaml())
    status = cli.main(["sweep", str(path), "--grid", "seed=0,1", "--cluster", spec, "--out", str(tmp_path / "o"),
                       "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and fragment in err and "Traceback" not in err


@pytest.mark.slow
def test_job_array_through_submitit_equals_local_sweep(tmp_path):
    """``--executor local`` runs the same submitit job array a SLURM submission would (2 tasks, each a
    ``--part`` slice, in fresh processes): the store equals the in-process sweep; after a point's flag is
    cleared, re-submitting fills exactly that point again."""
    import zarr

    path = tmp_path / "c.yaml"
    path.write_text(config.validate(BASE).to_yaml())
    args = ["sweep", str(path), "--grid", "seed=0,1,2", "--grid", "learning.lr=0.002,0.01", "--batch-size", "2",
            "--executor", "local", "--array", "2", "--wait", "--out", str(tmp_path / "arr"), "--quiet"]
    assert _olfacto(args).returncode == 0
    ref = sweep.run_sweep(BASE, GRID, tmp_path / "ref", batch_size=2, progress=False)
    got = sweep.open_result(tmp_path / "arr")
    for name in ["alignment", "update_alignment", "checksum"]:
        np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=name)
    zarr.open_group(str(tmp_path / "arr" / sweep.STORE), mode="r+")["done"][1, 0] = False
    assert "5/6 points done" in sweep.status(tmp_path / "arr")
    again = _olfacto(args)
    assert again.returncode == 0 and "6/6 points done" in again.stdout, again.stderr[-2000:]


def _olfacto(args):
    """The olfacto command in a fresh process (submitit's local executor manages its children's output
    streams, which pytest's capture does not survive in-process)."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "olfacto.cli", *args], capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_worker_killed_mid_batch_leaves_an_exact_store(tmp_path, monkeypatch):
    """A worker process dies after writing one point of its 2-point batch; Dask runs the batch again on a
    fresh worker, and the store equals the sequential sweep's, value for value."""
    import functools
    from pathlib import Path

    from olfacto.engine import progress

    import dask_faults

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    ref = sweep.run_sweep(BASE, GRID, tmp_path / "ref", batch_size=2, progress=False)
    points = sweep.expand(BASE, GRID)
    path = sweep.open_store(tmp_path / "dask", BASE, GRID, points)
    from olfacto.sweeps import store

    batches = sweep.plan(store.locate(path, points), 2)
    marker = tmp_path / "killed"
    bar = progress.bar(len(points), "sweep", "point", disable=True)
    from olfacto.sweeps import dask as cluster

    cluster.run_batches("local:2", path, batches, bar, task=functools.partial(dask_faults.kill_once_mid_batch,
                                                                             str(marker)))
    assert marker.exists()  # a worker did die
    got = sweep.open_result(tmp_path / "dask")
    assert bool(got.done.all())
    for name in ["alignment", "update_alignment", "checksum", "done"]:
        np.testing.assert_array_equal(got[name].values, ref[name].values, err_msg=name)


def test_each_local_worker_owns_one_gpu():
    """One JAX process per GPU: worker i of a local cluster gets GPU i mod n, unless devices were chosen."""
    from olfacto.sweeps.dask import gpu_for_worker

    assert [gpu_for_worker(i, 2, {}) for i in range(4)] == ["0", "1", "0", "1"]
    assert gpu_for_worker(3, 2, {"CUDA_VISIBLE_DEVICES": "1"}) is None  # the user's choice stands
    assert gpu_for_worker(0, 0, {}) is None  # no GPU: nothing to pin
    assert gpu_for_worker("tcp://10.0.0.1:4242", 2, {}) is None  # a remote worker: set per worker (docs)


def test_local_cluster_pins_its_workers_to_gpus(monkeypatch):
    """The worker plugin reaches the spawned workers (a host with 2 GPUs pretended; the workers do not start JAX)."""
    import os as _os

    from olfacto.sweeps import dask as cluster

    monkeypatch.setattr(cluster, "_local_gpus", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    c = cluster.client("local:2")
    try:
        c.wait_for_workers(2)
        seen = c.run(lambda: _os.environ.get("CUDA_VISIBLE_DEVICES"))
    finally:
        local = c.cluster
        c.close()
        local.close()
    assert sorted(seen.values()) == ["0", "1"]


def test_local_workers_keep_glibcs_adaptive_mmap_threshold(monkeypatch):
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers, which also fixes glibc's mmap threshold, so every
    XLA:CPU temporary above 128 KB is mapped and faulted in anew (per-breath SGD 27 % slower, a quarter of the
    machine's time in the kernel): a local cluster's workers do not get it; the nanny's other settings stay."""
    from olfacto.sweeps import dask as cluster

    monkeypatch.setattr(cluster, "_local_gpus", lambda: 0)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    c = cluster.client("local:2")
    try:
        c.wait_for_workers(2)
        seen = c.run(lambda: (os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")))
    finally:
        local = c.cluster
        c.close()
        local.close()
    assert sorted(seen.values()) == [(None, "1"), (None, "1")]


def test_batches_are_cut_so_every_worker_has_one():
    """Issue 23, item 10: one vmapped batch is one task, so a seed sweep of one batch left a worker idle. The
    batches are halved (largest first) until each worker has one or every batch is one point; the points
    and their order never change."""
    from olfacto.sweeps.dask import spread

    assert [len(b) for b in spread([list(range(6))], 2)] == [3, 3]
    assert [len(b) for b in spread([list(range(6))], 4)] == [2, 1, 2, 1]
    assert [len(b) for b in spread([[0, 1], [2, 3, 4, 5, 6]], 3)] == [2, 3, 2]
    assert sum(spread([list(range(7)), [7, 8]], 5), []) == list(range(9))
    assert spread([[0]], 2) == [[0]]  # one point: nothing to cut (the log says the workers idle)
    assert spread([[0, 1], [2, 3]], 2) == [[0, 1], [2, 3]]  # enough batches already: unchanged


@pytest.mark.slow
def test_figures_on_a_local_cluster_equal_the_local_figures(tmp_path, capsys):
    """``olfacto figures --cluster local:2``: each experiment is a task in a fresh worker process, which writes its
    data set where the local run writes it; the data sets and summary numbers equal the local run's, and the
    driver draws from them without computing again."""
    import json

    names = ["learning_curves", "weight_fluctuations"]
    assert cli.main(["figures", "--quick", "--only", *names, "--out", str(tmp_path / "local")]) == 0
    capsys.readouterr()
    assert cli.main(["figures", "--quick", "--only", *names, "--out", str(tmp_path / "dask"),
                     "--cluster", "local:2"]) == 0
    err = capsys.readouterr().err
    assert all(f"{n}: computed on the cluster" in err and f"{n}: stored result reused" in err for n in names), err
    for name in names:
        ref = xr.open_dataset(tmp_path / "local" / "data" / name / "result.nc")
        got = xr.open_dataset(tmp_path / "dask" / "data" / name / "result.nc")
        xr.testing.assert_equal(got, ref)
    summary = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("local", "dask")]
    keys = [k for k, v in summary[0].items() if isinstance(v, float) and not k.endswith("_s")]
    assert keys and all(summary[1][k] == summary[0][k] for k in keys)


@pytest.mark.parametrize("spec,fragment", [("local:0", "local:N needs N ≥ 1"), ("nowhere", "expected local:N")])
def test_figures_bad_cluster_spec_is_one_line(spec, fragment, tmp_path, capsys):
    """Checked before any work: nothing is computed or written."""
    status = cli.main(["figures", "--quick", "--only", "landscape", "--out", str(tmp_path / "o"), "--cluster", spec])
    err = capsys.readouterr().err
    assert status == 2 and fragment in err and "Traceback" not in err and not (tmp_path / "o").exists()
