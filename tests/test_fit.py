"""The model under the recordings' protocol and its fit to the regions (issue 9, items 3–4): known answers
of the simulated protocol, one code path for model and data, the fit recovering parameters from data the
model itself produced, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ROOT, small

IPSI_CONTRA = ROOT.parent / "shared" / "data" / "IpsiContra"


def _protocol(**extra):
    return {"protocol__enabled": True, "protocol__n_trials": 7, "protocol__n_odors": 15, **extra}


@pytest.mark.slow
def test_without_projection_the_protocol_sees_independent_sides():
    """η = 0 and W₀ = 0: the contralateral response is trial noise only, so the article's test finds its
    false-positive rate α = 0.05 (binomial s.d. 0.011 at 400 neurons) and cross-side decoding is at chance
    1/15 (s.d. ≈ 0.017 over 210 test trials)."""
    from olfacto.engine import loop as simulate

    cfg = small(circuit__n_cortex=400, learning__lr=0.0, **_protocol(protocol__trial_noise=0.5))
    ds = simulate.run_batch([cfg]).dataset
    assert float(ds.protocol_fraction_bilateral[0]) == pytest.approx(0.05, abs=0.035)
    assert float(ds.protocol_decoding_transfer[0]) == pytest.approx(1 / 15, abs=0.06)
    assert float(ds.protocol_decoding_within[0]) > 0.5  # the ipsilateral side still codes the odors


def test_model_and_data_share_one_code_path():
    """The recorded protocol_* values are olfacto.recordings.experiment.measure (the data's path) applied to the
    simulated recording, to the last bit."""
    from olfacto.recordings import experiment, virtual as virtual_experiment
    from olfacto.engine import loop as simulate

    cfg = small(circuit__n_cortex=200, circuit__connection_prob=0.2, **_protocol(protocol__n_neurons=120))
    result = simulate.run_batch([cfg])
    recorded = virtual_experiment.record(result)
    assert recorded.sizes == {"neuron": 120, "odor": 15, "side": 2, "trial": 7}
    via_data_path = experiment.measure(recorded, n_shuffles=2)
    for name in virtual_experiment.MEASURES:
        assert float(result.dataset[f"protocol_{name}"][0]) == float(via_data_path[name].values[0]), name


def _made():
    """A small base network for the fit, and the config that makes data at K = 10, trial noise 1 (seed 7)."""
    from olfacto import config

    base = {"circuit": {"n_cortex": 300, "n_glomeruli": 30, "mask": "bernoulli"}, "odors": {"noise": 0.1},
            "learning": {"lr": 0.005}, "protocol": {"n_odors": 15},
            "run": {"n_breaths": 1000, "record_every": 1000, "n_probe": 20, "progress": False}}
    truth = config.validate({**base, "seed": 7, "circuit": {**base["circuit"], "connection_prob": 10 / 300},
                             "protocol": {"enabled": True, "trial_noise": 1.0, "n_neurons": 300}})
    return base, truth


@pytest.mark.slow
def test_fit_recovers_the_parameters_of_model_made_data():
    """Data simulated by the model at K = 10, trial noise 1 (another seed) are fitted at K = 10, noise 1."""
    from olfacto.experiments import fit
    from olfacto.engine import loop as simulate
    from olfacto.recordings import virtual as virtual_experiment

    base, truth = _made()
    values = virtual_experiment.measures(simulate.run_batch([truth]), 0)
    data = np.array([[values[m] for m in fit.FIT_MEASURES]])
    import xarray as xr

    data = xr.DataArray(data, dims=("region", "measure"), coords={"region": ["made"], "measure": list(fit.FIT_MEASURES)})
    grid = {"in_degree": [3, 10, 30], "learning.lr": [0.005], "trial_noise": [0.5, 1.0, 2.0], "seed": [0, 1]}
    model = fit.model_measures(base, grid, {"made": 300})
    result = fit.fit(model, data, 15)
    assert result.fit_in_degree.item() == 10 and result.fit_trial_noise.item() == 1.0
    low, high = result.near_in_degree.values[0]
    assert low <= 10 <= high


@pytest.mark.slow
def test_posterior_recovers_the_parameters_of_model_made_data_and_its_checks_pass():
    """The posterior (issue 19 item 3) of data the model made at K = 10, trial noise 1 (seed 7), with the made
    recording's own bootstrap as the data's uncertainty: the 95 % credible intervals hold K = 10 and noise 1, and
    the made data pass the held-out criterion on at least 7 of the 9 measures (4 fitted + 5 checks; each fails
    with probability ≈ 0.05 when the model is right, so ≥ 3 failures has P ≈ 0.01)."""
    from olfacto.analysis import posterior
    from olfacto.experiments import fit
    from olfacto.engine import loop as simulate
    from olfacto.recordings import virtual as virtual_experiment

    base, truth = _made()
    made = virtual_experiment.record(simulate.run_batch([truth]), 0)
    made = made.assign_coords(region=("neuron", np.full(made.sizes["neuron"], "made")))
    values = virtual_experiment.measures(simulate.run_batch([truth]), 0)
    import xarray as xr

    data = xr.DataArray([[values[m] for m in fit.FIT_MEASURES]], dims=("region", "measure"),
                        coords={"region": ["made"], "measure": list(fit.FIT_MEASURES)})
    grid = {"in_degree": [3, 10, 30], "learning.lr": [0.005], "trial_noise": [0.5, 1.0, 2.0], "seed": [0, 1, 2]}
    measured = fit.model_measures(base, grid, {"made": 300}, with_checks=True)
    unc = fit.uncertainty_of(made, 300)
    post = posterior.of_fit(measured, data, unc, np.random.default_rng(0), fit.FIT_MEASURES).sel(region="made")
    for name, value in (("in_degree", 10), ("trial_noise", 1.0)):
        low, high = post[f"credible_{name}"].values
        assert low <= value <= high, (name, low, high)
    failed = int((~post.fitted_pass).sum() + (~post.check_pass).sum())
    assert failed <= 2, (post.fitted_pass.values, post.check_pass.values)


def test_fit_command_bad_input_is_one_line(tmp_path, capsys):
    from olfacto import cli

    assert cli.main(["fit", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    if IPSI_CONTRA.is_dir():
        assert cli.main(["fit", str(IPSI_CONTRA), "--grid", "bogus=1", "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("olfacto: error: --grid bogus") and "in_degree" in err


@pytest.mark.parametrize("key, value", [("protocol.n_trials", 1), ("protocol.cortex", "X"),
                                        ("protocol.trial_noise", -1.0)])
def test_bad_protocol_keys_are_one_line_errors(key, value):
    import olfacto

    with pytest.raises(olfacto.ConfigError, match=key.replace(".", r"\.")):
        olfacto.config.from_dict(**{key: value})


@pytest.mark.slow
def test_sweep_records_the_protocol_measures(tmp_path):
    from olfacto import sweeps as sweep

    base = small(circuit__n_cortex=100, **_protocol(protocol__n_odors=6, protocol__n_trials=3)).to_dict()
    ds = sweep.run_sweep(base, {"seed": [0, 1]}, tmp_path, progress=False)
    assert ds["protocol_fraction_bilateral"].dims == ("seed",)
    assert np.isfinite(ds["protocol_decoding_transfer"].values).all()


@pytest.mark.parametrize("item, fragment", [("in_degree=abc", "an integer ≥ 1"), ("learning.lr=0", "a number > 0"),
                                            ("seed=1.5", "an integer ≥ 0")])
def test_fit_grid_values_are_checked(item, fragment, tmp_path, capsys):
    from olfacto import cli

    if not IPSI_CONTRA.is_dir():
        pytest.skip("IpsiContra data not found")
    assert cli.main(["fit", str(IPSI_CONTRA), "--grid", item, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and fragment in err


def test_a_near_optimal_range_at_the_grid_edge_is_warned():
    """Issue 23, item 11: `fit --quick` reported AON's K = 30 — the largest K of its grid — as a tight range
    without a word. A range that reaches an edge of the grid is named, as is one over the whole grid."""
    import xarray as xr

    from olfacto.analysis.fit import edge_warnings

    grid = {"in_degree": [3, 10, 30], "lr": [0.0005, 0.005], "trial_noise": [0.5, 1.0, 2.0]}
    result = xr.Dataset(
        {"distance_grid": (("region", *grid), np.zeros((2, 3, 2, 3))),
         "fit_in_degree": ("region", [30.0, 10.0]), "near_in_degree": (("region", "bound"), [[30, 30], [10, 10]]),
         "fit_lr": ("region", [0.005, 0.0005]), "near_lr": (("region", "bound"), [[0.0005, 0.005], [0.0005, 0.0005]]),
         "fit_trial_noise": ("region", [1.0, 1.0]), "near_trial_noise": (("region", "bound"), [[1.0, 2.0], [0.5, 1.0]])},
        coords={"region": ["AON", "PPC"], **grid})
    assert edge_warnings(result) == [
        "AON: in_degree = 30 [30–30] reaches the largest value of the grid (30) at its best point: the optimum may "
        "lie beyond; add larger values (--grid in_degree=…)",
        "AON: lr is near-optimal over the whole grid (0.0005–0.005): the data do not determine it on this grid",
        "AON: trial_noise = 1 [1–2] reaches the largest value of the grid (2): the optimum may lie beyond; add "
        "larger values (--grid trial_noise=…)",
        "PPC: lr = 0.0005 [0.0005–0.0005] reaches the smallest value of the grid (0.0005) at its best point: the "
        "optimum may lie beyond; add smaller values (--grid learning.lr=…)",
        "PPC: trial_noise = 1 [0.5–1] reaches the smallest value of the grid (0.5): the optimum may lie beyond; "
        "add smaller values (--grid trial_noise=…)",
    ]


@pytest.mark.slow
def test_per_neuron_distributions_at_the_mode_are_the_recordings_and_the_models_own():
    """fit.per_neuron_at_mode: the data rows are each region's recorded per-neuron r (protocol.tuning_correlation),
    and the model rows are one recording at the given mode: their mean r equals that recording's
    tuning_correlation_mean from virtual.measures (the same code path, exactly)."""
    import xarray as xr

    from olfacto import config
    from olfacto.engine import loop as simulate
    from olfacto.experiments import fit
    from olfacto.recordings import experiment, ipsicontra, protocol
    from olfacto.recordings import virtual as virtual_experiment

    if not IPSI_CONTRA.is_dir():
        pytest.skip("recordings not found")
    base = {"circuit": {"n_cortex": 1000, "n_glomeruli": 20, "mask": "bernoulli"}, "odors": {"noise": 0.1},
            "learning": {"lr": 0.005}, "protocol": {"n_odors": 15},
            "run": {"n_breaths": 200, "record_every": 200, "n_probe": 20, "progress": False}}
    regions = ["AON", "APC", "PPC"]
    result = xr.Dataset({"posterior": (("region", "in_degree", "lr", "trial_noise"), np.ones((3, 1, 1, 1)) / 1.0)},
                        coords={"region": regions, "in_degree": [20], "lr": [0.005], "trial_noise": [1.0]})
    for d, v in (("in_degree", 20.0), ("lr", 0.005), ("trial_noise", 1.0)):
        result[f"map_{d}"] = ("region", np.full(3, v))
    out = fit.per_neuron_at_mode(IPSI_CONTRA, base, result, {"seed": [0]})
    groups = experiment._groups(ipsicontra.load(IPSI_CONTRA))
    cfg = config.validate({**base, "circuit": {**base["circuit"], "connection_prob": 0.02}})
    ran = simulate.run_batch([cfg], progress=False)
    for region in regions:
        sub = groups[region]
        n = sub.sizes["neuron"]
        np.testing.assert_array_equal(out.neuron_r.sel(region=region, source="data").values[:n],
                                      protocol.tuning_correlation(sub["response"].values, sub["blank"].values))
        pc = config.replace(cfg, **{"protocol.enabled": True, "protocol.trial_noise": 1.0,
                                    "protocol.n_neurons": n}).protocol
        want = virtual_experiment.measures(ran, 0, pc)["tuning_correlation_mean"]
        model = out.neuron_r.sel(region=region, source="model").values
        assert np.isnan(model[n:]).all() and abs(np.nanmean(model[:n]) - want) < 1e-12, (region, want)
