"""Results are written atomically: a failed or interrupted write never leaves a torn file."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from olfacto.engine import storage


def _ds(value: float) -> xr.Dataset:
    return xr.Dataset({"alignment": ("breath", np.full(5, value))}, coords={"breath": np.arange(5)})


def test_atomic_replace_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "result.nc"
    storage.write_dataset(_ds(1.0), path)

    def boom(self, target, *args, **kwargs):
        with open(target, "wb") as fh:  # a partial file, then the process "dies"
            fh.write(b"\x89HDF partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(KeyboardInterrupt):
        storage.write_dataset(_ds(2.0), path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.nc"]  # no temporary left behind
    np.testing.assert_array_equal(storage.read_dataset(path).alignment, 1.0)


def test_round_trip(tmp_path):
    path = storage.write_dataset(_ds(0.5), tmp_path / "a" / "r.nc")
    xr.testing.assert_identical(storage.read_dataset(path), _ds(0.5))
