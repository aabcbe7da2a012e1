"""The uncertainty of experiment_fit's data bars (issue 23, "Figures"): the s.e.m. over each region's mice of the
per-mouse measures (olfacto.experiments.fit.mouse_sem, data_by_mouse), on a known table and on the recordings."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from conftest import ROOT

RECORDINGS = ROOT.parent / "shared" / "data" / "IpsiContra"


def _table(values, regions):
    values = np.asarray(values, float)
    return xr.DataArray(values, dims=("mouse", "measure"),
                        coords={"mouse": np.arange(1, len(values) + 1), "measure": ["a", "b"][:values.shape[1]],
                                "mouse_region": ("mouse", regions)})


def test_mouse_sem_of_a_known_table():
    from olfacto.experiments.fit import mouse_sem

    # AON: 0.1, 0.2, 0.6 → s.d. (ddof 1) = √0.07 → s.e.m. √(0.07/3); measure b constant → 0;
    # APC: a NaN mouse leaves two (0.3, 0.5 → s.d. √0.02, s.e.m. 0.1); PPC: one mouse, no spread → NaN
    by_mouse = _table([[0.1, 0.4], [0.2, 0.4], [0.6, 0.4], [0.3, 1.0], [0.5, 1.0], [np.nan, 1.0], [0.7, 0.2]],
                      ["AON", "AON", "AON", "APC", "APC", "APC", "PPC"])
    sem = mouse_sem(by_mouse)
    assert list(sem.region.values) == ["AON", "APC", "PPC"]
    assert float(sem.sel(region="AON", measure="a")) == pytest.approx(np.sqrt(0.07 / 3), rel=1e-12)
    assert float(sem.sel(region="AON", measure="b")) == pytest.approx(0.0, abs=1e-15)  # round-off of the mean
    assert float(sem.sel(region="APC", measure="a")) == pytest.approx(0.1, rel=1e-12)
    assert np.isnan(sem.sel(region="PPC")).all()
    assert list(mouse_sem(by_mouse, ["PPC", "AON"]).region.values) == ["PPC", "AON"]  # the fit's region order


def test_recordings_mouse_sem():
    # the per-mouse fraction bilateral equals the experiment command's own per-mouse count (another code path:
    # per-neuron p-values of olfacto.recordings.experiment.measure); the regions' mouse-level s.e.m. of the
    # fraction bilateral are 0.07–0.13 (3, 4 and 3 mice), far above a neuron-level binomial s.e.m. (≈ 0.02)
    if not RECORDINGS.is_dir():
        pytest.skip(f"recordings not found at {RECORDINGS}")
    from olfacto.experiments.fit import data_by_mouse, mouse_sem
    from olfacto.recordings import experiment, ipsicontra

    by_mouse = data_by_mouse(RECORDINGS)
    assert by_mouse.sizes == {"mouse": 10, "measure": 4}
    assert list(by_mouse.mouse_region.values) == ["AON"] * 3 + ["APC"] * 4 + ["PPC"] * 3
    reference = experiment.measure(ipsicontra.load(RECORDINGS), n_shuffles=1)
    np.testing.assert_allclose(by_mouse.sel(measure="fraction_bilateral").values,
                               reference["fraction_bilateral_by_mouse"].values, rtol=1e-12)
    sem = mouse_sem(by_mouse).sel(measure="fraction_bilateral")
    np.testing.assert_allclose(sem.values, [0.098, 0.072, 0.123], atol=0.001)
    pooled = reference["fraction_bilateral"].values
    binomial = np.sqrt(pooled * (1 - pooled) / reference["n_neurons"].values)
    assert np.all(sem.values > 2.5 * binomial)
