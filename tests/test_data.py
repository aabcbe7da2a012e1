"""The glomerular dataset loader reads the shared mouse data with the right shapes, sign and threshold."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io as sio

import olfacto
from olfacto import ConfigError
from olfacto.recordings import glomeruli as data

MAIN = "glomerular_data/glomerular_responses/glomerular_responses__main"


def test_shapes_sign_threshold(data_path):
    raw = sio.loadmat(data_path / MAIN / "animal_#1/left_hemibulb/left_hemibulb_ROI_responses.mat")[
        "left_hemibulb_ROI_responses"]
    assert raw.shape == (57, 99)
    r, names = data.load_glomerular(data_path, animal=1, hemibulb="left", drop_blank=False)
    assert r.shape == (57, 99) and len(names) == 57 and names[0] == "mineral oil"
    assert (r >= 0).all()  # activation is negative dR/R: flipped to a positive response
    # thresholding: exactly the entries with −dR/R ≥ 0.00045 survive, with value −dR/R
    strong = -raw >= 0.00045
    np.testing.assert_array_equal(r > 0, strong)
    np.testing.assert_allclose(r[strong], -raw[strong])
    r2, names2 = data.load_glomerular(data_path, animal=1, hemibulb="left")
    assert r2.shape == (56, 99) and names2[0] == "Trans, trans-2,4-Decadienal"


@pytest.mark.parametrize("animal,side", [(2, "right"), (5, "left")])
def test_every_hemibulb_reads(data_path, animal, side):
    r, _ = data.load_glomerular(data_path, animal=animal, hemibulb=side)
    assert r.shape[0] == 56 and 65 <= r.shape[1] <= 116
    assert 0.01 < (r > 0).mean() < 0.9  # a sparse but non-empty response matrix


def test_base_odors_normalised_and_most_responsive(data_path):
    lib = data.base_odors(data_path, n_glomeruli=30, animal=1, hemibulb="left")
    assert lib.shape[1] == 30 and lib.shape[0] <= 56
    assert np.mean(lib**2) == pytest.approx(1.0, rel=1e-9)
    r, _ = data.load_glomerular(data_path, 1, "left")
    top = np.sort(np.argsort(-r.sum(axis=0), kind="stable")[:30])
    kept = r[:, top]
    kept = kept[kept.sum(axis=1) > 0]
    np.testing.assert_allclose(lib, kept / np.sqrt(np.mean(kept**2)))


def test_bad_dataset_inputs_name_the_key(data_path, tmp_path):
    with pytest.raises(ConfigError, match=r"odors.animal=9: .*allowed: \[1, 2, 3, 4, 5\]"):
        data.load_glomerular(data_path, animal=9)
    with pytest.raises(ConfigError, match="odors.data_path="):
        data.load_glomerular(tmp_path)
    with pytest.raises(ConfigError, match=r"circuit.n_glomeruli=500: .* allowed: 1..99"):
        data.base_odors(data_path, 500, animal=1, hemibulb="left")


def test_dataset_environment_runs(data_path):
    cfg = olfacto.config.from_dict(**{
        "odors.kind": "dataset", "odors.data_path": str(data_path), "odors.n_components": 2,
        "circuit.n_glomeruli": 40, "circuit.n_cortex": 200, "circuit.activation": "relu",
        "run.n_breaths": 400, "run.record_every": 200, "run.n_probe": 30, "run.progress": False})
    ds = olfacto.run(cfg).dataset
    assert ds.alignment.isel(breath=-1) > 0.3  # measured odors are learnable too
