"""Results are written atomically: a failed or interrupted write never leaves a torn file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from olfacto.engine import storage


def _ds(value: float) -> xr.Dataset:
    return xr.Dataset({"alignment": ("breath", np.full(5, value))}, coords={"breath": np.arange(5)})


def test_atomic_replace_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "result.nc"
    storage.write_dataset(_ds(1.0), path)

    def boom(self, data):  # the result is made in memory, then written: half of it, then the process "dies"
        with open(self, "wb") as fh:
            fh.write(bytes(data)[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", boom)
    with pytest.raises(KeyboardInterrupt):
        storage.write_dataset(_ds(2.0), path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.nc"]  # no temporary left behind
    np.testing.assert_array_equal(storage.read_dataset(path).alignment, 1.0)


def test_round_trip(tmp_path):
    path = storage.write_dataset(_ds(0.5), tmp_path / "a" / "r.nc")
    xr.testing.assert_identical(storage.read_dataset(path), _ds(0.5))
