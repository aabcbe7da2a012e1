"""The experiment's protocol measures (olfacto.recordings.protocol), the recordings reader and ``olfacto experiment``.

Synthetic data with known answers; the reader and the CLI on the real recordings
(skipped when ../shared/data/IpsiContra is absent). NumPy only: no JAX compile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import io as sio
from scipy import stats

from olfacto.recordings import protocol, ipsicontra as recordings
from olfacto.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]

IPSI_CONTRA = ROOT.parent / "shared" / "data" / "IpsiContra"
N_ODORS, N_TRIALS = 15, 7



def _population(rng, n_neurons, contra_tuning, noise=1.0, scale=1.0, batch=()):
    """response (*batch, neuron, odor, side, trial) = tuning[side] + trial noise; blank = trial noise."""
    ipsi = scale * rng.normal(size=batch + (n_neurons, N_ODORS))
    contra = contra_tuning(ipsi)
    tuning = np.stack([ipsi, contra], axis=-1)[..., None]
    response = tuning + noise * rng.normal(size=batch + (n_neurons, N_ODORS, 2, N_TRIALS))
    blank = noise * rng.normal(size=batch + (n_neurons, 2, N_TRIALS))
    return response, blank


# --- the per-neuron test -------------------------------------------------------------------

def test_regression_matches_scipy_linregress():
    """Slope, intercept, r and p equal scipy.stats.linregress neuron by neuron (1e-10)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, N_ODORS))
    y = 0.4 * x + rng.normal(size=(40, N_ODORS)) * rng.uniform(0.2, 3.0, size=(40, 1))
    fit = protocol.regression(x, y)
    for i in range(40):
        ref = stats.linregress(x[i], y[i])
        np.testing.assert_allclose([fit.slope[i], fit.intercept[i], fit.r[i], fit.p_value[i]],
                                   [ref.slope, ref.intercept, ref.rvalue, ref.pvalue], rtol=1e-10, atol=1e-12)


def test_identical_sides_are_all_bilateral():
    """contra = ipsi + small trial noise: every neuron bilaterally correlated, correlation ≈ 1."""
    response, blank = _population(np.random.default_rng(1), 200, lambda ipsi: ipsi, noise=0.1, scale=3.0)
    s = protocol.summary(response, blank)
    assert s["fraction_bilateral"] == 1.0
    # trial means carry noise 0.1/√7 on a tuning of s.d. 3: r ≈ 1 − 0.0002
    assert s["tuning_correlation_mean"] > 0.998
    assert s["tuning_correlation_median"] > 0.998
    fit = protocol.bilateral_regression(response, blank)
    np.testing.assert_allclose(np.median(fit.slope), 1.0, atol=0.01)


def test_independent_sides_give_the_false_positive_rate():
    """Independent ipsi and contra tunings: the fraction with p ≤ 0.05 is Binomial(n, 0.05)/n.

    Trial means of Gaussian responses are Gaussian, so the t-test's false-positive rate is
    exactly α; with n = 4000 its s.d. is √(0.05·0.95/4000) = 0.0034; tolerance 0.015 (4.3 s.d.).
    """
    rng = np.random.default_rng(2)
    response, blank = _population(rng, 4000, lambda ipsi: rng.normal(size=ipsi.shape))
    fit = protocol.bilateral_regression(response, blank)
    assert abs(protocol.fraction_bilateral(fit.p_value) - 0.05) < 0.015
    # and the p-values are uniform (Kolmogorov–Smirnov at 0.001)
    assert stats.kstest(fit.p_value, "uniform").pvalue > 1e-3
    assert abs(protocol.correlation_mean(fit.r)) < 0.02  # s.d. of the mean r: (1/√14)/√4000 = 0.004


def test_anticorrelated_sides_count_as_bilateral_with_negative_slope():
    """The test is two-sided: contra = −ipsi gives p ≤ 0.05, slope ≈ −1, r ≈ −1."""
    response, blank = _population(np.random.default_rng(3), 50, lambda ipsi: -ipsi, noise=0.1, scale=3.0)
    fit = protocol.bilateral_regression(response, blank)
    assert protocol.fraction_bilateral(fit.p_value) == 1.0
    assert np.all(fit.r < -0.99) and np.all(np.abs(fit.slope + 1.0) < 0.05)
    # the one-sided count beside it (issue 23, item 3) counts none of them; identical sides: all
    assert protocol.summary(response, blank)["fraction_bilateral_positive"] == 0.0
    same, blank2 = _population(np.random.default_rng(3), 50, lambda ipsi: ipsi, noise=0.1, scale=3.0)
    assert protocol.summary(same, blank2)["fraction_bilateral_positive"] == 1.0


def test_one_sided_count_has_the_false_positive_rate_too():
    """Independent sides: β > 0 with p/2 ≤ 0.05 is a one-sided test at α = 0.05 — Binomial(n, 0.05)/n (n = 4000,
    s.d. 0.0034; tolerance 0.015)."""
    rng = np.random.default_rng(2)
    response, blank = _population(rng, 4000, lambda ipsi: rng.normal(size=ipsi.shape))
    fit = protocol.bilateral_regression(response, blank)
    assert abs(protocol.fraction_bilateral_positive(fit.slope, fit.p_value) - 0.05) < 0.015


def test_silent_neurons_are_nan_and_not_counted():
    """A neuron with no odor variation on a side has r = p = NaN: not bilateral, left out of mean/median."""
    response, blank = _population(np.random.default_rng(4), 10, lambda ipsi: ipsi, noise=0.1, scale=3.0)
    response[0] = 0.0  # silent on both sides
    response[1, :, 1, :] = 2.0  # constant on the contra side
    fit = protocol.bilateral_regression(response, blank)
    assert np.isnan(fit.r[:2]).all() and np.isnan(fit.p_value[:2]).all() and np.isfinite(fit.r[2:]).all()
    assert protocol.fraction_bilateral(fit.p_value) == pytest.approx(0.8)
    assert protocol.correlation_mean(fit.r) == pytest.approx(np.mean(fit.r[2:]))
    assert np.isnan(protocol.correlation_median(np.full(5, np.nan)))


def test_blank_is_subtracted_per_side():
    """m = trial mean − blank trial mean, per side: a side offset shared by odors and blank cancels."""
    rng = np.random.default_rng(5)
    response, blank = _population(rng, 5, lambda ipsi: ipsi)
    shifted = response + np.array([3.0, -7.0])[:, None]
    np.testing.assert_allclose(protocol.trial_means(shifted, blank + np.array([3.0, -7.0])[:, None]),
                               protocol.trial_means(response, blank), atol=1e-12)
    assert protocol.trial_means(response, blank).shape == (5, N_ODORS, 2)


# --- decoding ------------------------------------------------------------------------------

def _loop_odor_decoding(response, train_side, test_side):
    """Reference: the nearest-class-mean decoder written as plain loops."""
    n, o, _, t = response.shape
    correct = 0
    for k in range(t):
        keep = [j for j in range(t) if j != k]
        templates = response[:, :, train_side, keep].mean(axis=-1)  # (neuron, odor)
        for odor in range(o):
            d = ((response[:, odor, test_side, k][:, None] - templates) ** 2).sum(axis=0)
            correct += int(np.argmin(d) == odor)
    return correct / (o * t)


def _loop_laterality(response):
    n, o, _, t = response.shape
    correct = 0
    for k in range(t):
        keep = [j for j in range(t) if j != k]
        templates = response[:, :, :, keep].mean(axis=(1, 3))  # (neuron, side)
        for side in range(2):
            for odor in range(o):
                d = ((response[:, odor, side, k][:, None] - templates) ** 2).sum(axis=0)
                correct += int(np.argmin(d) == side)
    return correct / (2 * o * t)


def test_decoders_match_a_loop_implementation():
    """The vectorised decoders equal plain loops over held-out trials, odors and templates."""
    rng = np.random.default_rng(6)
    response, _ = _population(rng, 12, lambda ipsi: 0.5 * ipsi + rng.normal(size=ipsi.shape), noise=1.5)
    response[:, :, 1] += 0.3 * rng.normal(size=(12, 1, 1))  # a side offset for the side decoder
    for a in (0, 1):
        for b in (0, 1):
            assert protocol.odor_decoding(response, a, b) == pytest.approx(_loop_odor_decoding(response, a, b))
    assert protocol.laterality_decoding(response) == pytest.approx(_loop_laterality(response))


def test_independent_sides_decode_at_chance_across_but_well_within():
    """Independent, well-separated tunings: within-side decoding ≈ 1, transfer ≈ chance 1/15.

    Ten independent populations of 300 neurons (a batch dimension); the s.d. of one
    population's transfer is about 0.03 (measured over 40 seeds), so of the mean of ten
    about 0.01; tolerance 0.04.
    """
    rng = np.random.default_rng(7)
    response, blank = _population(rng, 300, lambda ipsi: rng.normal(size=ipsi.shape), batch=(10,))
    s = protocol.summary(response, blank)
    assert s["decoding_within"].shape == (10,)
    assert np.all(s["decoding_within"] > 0.99)
    assert abs(np.mean(s["decoding_transfer"]) - 1 / 15) < 0.04
    assert abs(np.mean(s["fraction_bilateral"]) - 0.05) < 0.02  # 3000 neurons: s.d. 0.004


def test_identical_sides_transfer_perfectly():
    response, blank = _population(np.random.default_rng(8), 300, lambda ipsi: ipsi)
    assert protocol.decoding_transfer(response) > 0.99


def test_side_decoding_sees_a_shift_and_only_a_shift():
    """contra = ipsi + a fixed per-neuron offset: the side is decoded (≈ 1); no offset: chance 1/2.

    Chance case: 10 populations × 210 classified responses; the mean's s.d. ≈ 0.04/√10 = 0.013
    (measured per population over 40 seeds); tolerance 0.05.
    """
    rng = np.random.default_rng(9)
    offset = rng.normal(size=(300, 1))
    shifted, _ = _population(rng, 300, lambda ipsi: ipsi + offset, scale=0.5)
    assert protocol.laterality_decoding(shifted) > 0.98
    same, _ = _population(rng, 300, lambda ipsi: ipsi, scale=0.5, batch=(10,))
    assert abs(np.mean(protocol.laterality_decoding(same)) - 0.5) < 0.05


def test_batch_dimensions_equal_separate_calls():
    """Leading batch dimensions give the same numbers as one call per population."""
    rng = np.random.default_rng(10)
    response, blank = _population(rng, 30, lambda ipsi: 0.7 * ipsi + rng.normal(size=ipsi.shape), batch=(3,))
    together = protocol.summary(response, blank)
    for b in range(3):
        alone = protocol.summary(response[b], blank[b])
        for name in protocol.MEASURES:
            assert together[name][b] == pytest.approx(alone[name], nan_ok=True), name


def test_shuffle_null_is_at_the_false_positive_rate():
    """Shuffling contra odor labels of perfectly matched neurons gives ≈ α, whatever the data."""
    response, blank = _population(np.random.default_rng(11), 500, lambda ipsi: ipsi, noise=0.1, scale=3.0)
    null = protocol.null_fraction_bilateral(response, blank, np.random.default_rng(0), n_shuffles=40)
    assert null.shape == (40,)
    assert abs(null.mean() - 0.05) < 0.01  # 20000 shuffled neurons: s.d. 0.0015


def test_bad_array_shapes_are_rejected():
    with pytest.raises(ValueError, match="side=2"):
        protocol.summary(np.zeros((5, N_ODORS, 3, N_TRIALS)), np.zeros((5, 3, N_TRIALS)))
    with pytest.raises(ValueError, match="blank has shape"):
        protocol.summary(np.zeros((5, N_ODORS, 2, N_TRIALS)), np.zeros((5, 2, 4)))


# --- the reader on the real file ---------------------------------------------------------------

def test_reader_shapes_counts_and_regions(recorded):
    ds = recorded
    assert dict(ds.sizes) == {"neuron": 1821, "odor": 15, "side": 2, "trial": 7}
    assert ds.blank.dims == ("neuron", "side", "trial")
    counts = [int((ds.mouse == m).sum()) for m in range(1, 11)]
    assert counts == [193, 73, 119, 375, 272, 141, 143, 184, 155, 166]
    regions = recordings.by_region(ds)
    assert {r: d.sizes["neuron"] for r, d in regions.items()} == {"AON": 385, "APC": 931, "PPC": 505}
    assert set(np.unique(regions["APC"].mouse)) == {4, 5, 6, 7}
    assert list(ds.side.values) == ["ipsi", "contra"] and list(ds.odor.values) == list(range(1, 16))
    assert {"basal_rate", "significant"} <= set(ds.data_vars) and "session" in ds.coords
    assert ds.response.attrs["units"] == "Hz" and ds.attrs["source"].endswith(recordings.FILENAME)
    # element order as in MATLAB: A{1}(1, 1, 1, :) and A{1}(1, 16, 2, 1) (the blank, contra)
    np.testing.assert_array_equal(ds.response.values[0, 0, 0], [2.75, 1.5, 0.0, 1.0, 0.5, -0.5, 1.0])
    raw = sio.loadmat(IPSI_CONTRA / recordings.FILENAME)
    np.testing.assert_array_equal(ds.blank.values[-166:], raw["A"][0, 9][:, 15])
    np.testing.assert_array_equal(ds.session.values[:193], raw["B"][0, 0].ravel())


# --- bad files -----------------------------------------------------------------------------------

def _cell(arrays):
    cell = np.empty((1, len(arrays)), dtype=object)
    for i, a in enumerate(arrays):
        cell[0, i] = a
    return cell


def _good_a(n=3, trials=N_TRIALS):
    return [np.ones((n, 16, 2, trials)) * (m + 1) for m in range(10)]


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    files = {"missing": (tmp / "nowhere.mat", "not found")}
    empty = tmp / "empty.mat"
    empty.write_bytes(b"")
    files["empty"] = (empty, "empty file")
    text = tmp / "text.mat"
    text.write_text("neuron,odor,response\n1,1,2.5\n")
    files["text"] = (text, "not a readable MATLAB v5")
    novars = tmp / "novars.mat"
    sio.savemat(novars, {"X": np.arange(3)})
    files["no variables"] = (novars, "no variable A (found: X)")
    shape = tmp / "shape.mat"
    sio.savemat(shape, {"A": _cell([np.ones((3, 15, 2, 7))] * 10)})
    files["wrong shape"] = (shape, "A{1} has shape (3, 15, 2, 7)")
    nine = tmp / "nine.mat"
    sio.savemat(nine, {"A": _cell(_good_a()[:9])})
    files["nine mice"] = (nine, "has 9 cells; expected 10")
    nan = tmp / "nan.mat"
    a = _good_a()
    a[2] = np.full_like(a[2], np.nan)
    sio.savemat(nan, {"A": _cell(a)})
    files["all NaN"] = (nan, "A{3}: all values are NaN")
    bad_b = tmp / "bad_b.mat"
    sio.savemat(bad_b, {"A": _cell(_good_a()), "B": _cell([np.ones((4, 1))] * 10)})
    files["B mismatch"] = (bad_b, "B{1} has shape (4, 1)")
    folder = tmp / "folder"
    folder.mkdir()
    files["folder without file"] = (folder, f"no {recordings.FILENAME} in this folder")
    return files


def test_bad_files_give_one_line_errors(tmp_path):
    for name, (path, expected) in _bad_files(tmp_path).items():
        with pytest.raises(ConfigError) as info:
            recordings.load(path)
        message = str(info.value)
        assert "\n" not in message, name
        assert str(path) in message and expected in message, (name, message)


def test_minimal_file_with_only_a_reads(tmp_path):
    """A file holding only A (B, BasalFR, C absent) reads; blank is odor 16, regions follow mice."""
    path = tmp_path / "only_a.mat"
    a = _good_a(n=2, trials=3)
    a[0][:, 15] = -1.0
    sio.savemat(path, {"A": _cell(a)})
    ds = recordings.load(path)
    assert dict(ds.sizes) == {"neuron": 20, "odor": 15, "side": 2, "trial": 3}
    assert "significant" not in ds and "session" not in ds.coords
    assert (ds.blank.values[:2] == -1.0).all() and (ds.response.values[:2] == 1.0).all()
    assert list(ds.region.values[::2]) == ["AON"] * 3 + ["APC"] * 4 + ["PPC"] * 3


# --- the CLI -----------------------------------------------------------------------------------------

def test_cli_experiment_end_to_end(recorded, tmp_path, capsys):
    from olfacto import cli
    from olfacto.engine import storage

    out = tmp_path / "exp"
    assert cli.main(["experiment", str(IPSI_CONTRA), "--out", str(out), "--shuffles", "50", "--bootstrap", "50"]) == 0
    result = storage.read_dataset(out / "experiment.nc")
    assert list(result.region.values) == ["AON", "APC", "PPC"]
    assert list(result.n_neurons.values) == [385, 931, 505]
    assert (out / "experiment.png").is_file() and (out / "experiment.pdf").is_file()
    # the file's numbers are protocol.summary on each region's neurons (one code path)
    aon = recordings.by_region(recorded)["AON"]
    expected = protocol.summary(aon.response.values, aon.blank.values)
    for name, value in expected.items():
        assert float(result[name].sel(region="AON")) == pytest.approx(value), name
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:3] == ["region", "n", "bilateral"] and "AON" in printed
    # issue 23, item 3: the article's two-sided count includes anti-correlated neurons — 1 / 14 / 6 of the
    # 135 / 167 / 90 bilateral neurons of AON / APC / PPC have a negative slope; the one-sided count of
    # positive slopes (β > 0, p/2 ≤ 0.05) is 156 / 190 / 97
    negative = (result.bilateral & (result.slope < 0)).groupby(result.neuron_region).sum()
    assert [int(negative.sel(neuron_region=r)) for r in ("AON", "APC", "PPC")] == [1, 14, 6]
    assert [round(float(result.fraction_bilateral_positive.sel(region=r)) * n) for r, n in
            (("AON", 385), ("APC", 931), ("PPC", 505))] == [156, 190, 97]


def test_cli_experiment_bad_data_dir(tmp_path, capsys):
    from olfacto import cli

    assert cli.main(["experiment", str(tmp_path / "absent"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not found" in err and str(tmp_path / "absent") in err
    assert not (tmp_path / "o").exists()


def test_measure_takes_a_model_like_dataset():
    """A Dataset with only response and blank (what a simulation under the protocol produces) is measured
    as one group 'all', with the numbers of protocol.summary."""
    import xarray as xr

    from olfacto.recordings import experiment

    rng = np.random.default_rng(12)
    response, blank = _population(rng, 60, lambda ipsi: 0.8 * ipsi + 0.6 * rng.normal(size=ipsi.shape))
    ds = xr.Dataset({"response": (("neuron", "odor", "side", "trial"), response),
                     "blank": (("neuron", "side", "trial"), blank)})
    result = experiment.measure(ds, n_shuffles=10)
    assert list(result.region.values) == [experiment.ALL]
    for name, value in protocol.summary(response, blank).items():
        assert float(result[name].item()) == pytest.approx(value), name


def test_undefined_responses_give_undefined_measures():
    """Issue 22: a NaN or inf in a population's responses or blank makes every measure of that population NaN
    (the decoders reported finite accuracies); the other populations of a batch are untouched."""
    rng = np.random.default_rng(12)
    response, blank = _population(rng, 30, lambda ipsi: ipsi, batch=(3,))
    clean = protocol.summary(response, blank)
    response[1, 4, 2, 0, 3] = np.nan
    blank[2, 0, 1, 0] = np.inf
    got = protocol.summary(response, blank)
    for name in protocol.MEASURES:
        assert np.isnan(got[name][1]) and np.isnan(got[name][2]), name
        assert got[name][0] == pytest.approx(clean[name][0], nan_ok=True), name


def test_shuffle_progress_counts_every_shuffle_and_changes_nothing():
    """Issue 22: `experiment --shuffles` reports progress; the callback sees every shuffle once, and the null is
    the same with and without it (same generator seed)."""
    response, blank = _population(np.random.default_rng(13), 40, lambda ipsi: ipsi, noise=0.5)
    seen = []
    with_bar = protocol.null_fraction_bilateral(response, blank, np.random.default_rng(5), 120, done=seen.append)
    plain = protocol.null_fraction_bilateral(response, blank, np.random.default_rng(5), 120)
    assert sum(seen) == 120 and len(seen) == 3  # chunks of 50: 50 + 50 + 20
    np.testing.assert_array_equal(with_bar, plain)
