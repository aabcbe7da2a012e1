"""Sweeps on a Dask cluster (issue 11): the same store, point for point, as a local sweep; resumable."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import xarray as xr

from olfacto import cli, config, sweep

BASE = {"circuit": {"n_cortex": 40, "n_glomeruli": 8, "connection_prob": 0.25},
        "run": {"n_breaths": 200, "record_every": 100, "n_probe": 16, "progress": False}}
GRID = {"seed": [0, 1, 2], "learning.lr": [0.002, 0.01]}


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
