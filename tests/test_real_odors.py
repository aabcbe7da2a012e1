"""The real-odor puzzle (issue 9, item 5): the Hebbian solution answers the odor filtered by its second
moment, so with the measured odors (effective dimension ≈ 3) cross-side decoding falls to chance while a
whitening bulb restores it — the dense-limit prediction against the simulation."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SHARED_DATA


def test_filtered_decoding_known_answers():
    from olfacto.model import theory

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 30))
    assert theory.hebbian_filtered_decoding(x, np.eye(30)) == 1.0  # white odors: nothing filtered
    v = rng.normal(size=30)
    # one direction: every S x is ± v, the same nearest template for all (at most 2 of 40 right)
    assert theory.hebbian_filtered_decoding(x, np.outer(v, v)) <= 2 / 40
    assert theory.effective_dimension(np.eye(30)) == pytest.approx(30)
    assert theory.effective_dimension(np.outer(v, v)) == pytest.approx(1)


@pytest.mark.slow
def test_measured_odors_lose_identity_unless_the_bulb_whitens(data_path):
    from olfacto.experiments import figures
    from olfacto.experiments import real_odors

    base = {"circuit": {"n_cortex": 200, "n_glomeruli": 50, "connection_prob": 0.2, "activation": "linear"},
            "odors": {"kind": "dataset", "data_path": str(SHARED_DATA), "n_components": 3, "noise": 0.1},
            "learning": {"lr": 0.004}, "run": {"n_breaths": 1500, "record_every": 500, "n_probe": 60,
                                                 "progress": False}}
    ds = real_odors.compute(base, {"seed": [0]}, {"remedies": ["hebbian", "whitened bulb"]})
    sim = ds.decoding_transfer.mean("seed")
    assert float(ds.effective_dimension.sel(remedy="hebbian")) < 5  # the measured odors: d_eff ≈ 3
    assert float(sim.sel(remedy="hebbian")) < 0.15 < 0.8 < float(sim.sel(remedy="whitened bulb"))
    # the dense-limit prediction within 0.15 (N = 200, K = 40 add noise)
    np.testing.assert_allclose(sim.values, ds.decoding_transfer_theory.values, atol=0.15)
    assert figures.make_figure("real_odors", {"real_odors": ds}) is not None
