"""The model comparison (``olfacto fit DATA --compare``, :mod:`olfacto.experiments.compare`): each family's log
evidence is the evidence of its sub-grid, its posterior and checks are those of the sub-grid alone, and a family
made to fit better wins. On synthetic fit results (no simulation): fast."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from conftest import IPSI_CONTRA

FITTED = ("fraction_bilateral", "tuning_correlation_mean", "decoding_transfer", "laterality_decoding")
CHECKS = ("decoding_within", "fraction_bilateral_responsive", "tuning_correlation_sd", "snr_median",
          "response_size_cv")
DATA = np.array([0.3, 0.3, 0.7, 0.7])
CHECK_DATA = np.array([0.8, 0.5, 0.35, 1.5, 1.0])


def synthetic_result(good_gain: float | None = 0.75, seed: int = 0) -> xr.Dataset:
    """A result laid out as :func:`olfacto.experiments.fit.run`'s, on a grid K × η × noise × σ_g × α × seeds:
    the model's measures sit 0.3 away from the data on every measure, except (when ``good_gain``) at σ_g =
    ``good_gain``, α = 1, K = 10, where they equal the data (fitted and checks) up to seed noise 0.005."""
    from olfacto.analysis import posterior

    rng = np.random.default_rng(seed)
    coords = {"region": ["AON", "PPC"], "in_degree": [3, 10, 30], "lr": [0.005], "trial_noise": [0.5, 1.0],
              "gain_spread": [0.0, 0.75, 1.5], "alpha_mix": [0.0, 0.5, 1.0], "seed": [0, 1]}
    shape = tuple(len(v) for v in coords.values())
    names = list(FITTED) + list(CHECKS)
    truth = np.concatenate([DATA, CHECK_DATA])
    values = truth + 0.3 + 0.005 * rng.standard_normal((*shape, len(names)))
    if good_gain is not None:
        at = (slice(None), 1, 0, slice(None), coords["gain_spread"].index(good_gain), 2, slice(None))
        values[at] = truth + 0.005 * rng.standard_normal(values[at].shape)
    measured = xr.DataArray(values, dims=(*coords, "measure"), coords={**coords, "measure": names})
    data = xr.DataArray(np.tile(DATA, (2, 1)), dims=("region", "measure"),
                        coords={"region": coords["region"], "measure": list(FITTED)})
    cov = np.diag([0.07, 0.05, 0.15, 0.05]) ** 2
    uncertainty = xr.Dataset(coords={"region": coords["region"], "measure": list(FITTED),
                                     "measure_b": list(FITTED), "check": list(CHECKS)})
    uncertainty["data_cov"] = (("region", "measure", "measure_b"), np.stack([cov, cov]))
    uncertainty["check_data"] = (("region", "check"), np.tile(CHECK_DATA, (2, 1)))
    uncertainty["check_var"] = (("region", "check"), np.full((2, len(CHECKS)), 0.05 ** 2))
    post = posterior.of_fit(measured, data, uncertainty, np.random.default_rng(0), FITTED)
    result = xr.merge([post, uncertainty[["data_cov", "check_data", "check_var"]]])
    result["data"] = data
    result["model_grid"] = measured.sel(measure=list(FITTED))
    result["check_grid"] = measured.sel(measure=list(CHECKS)).rename(measure="check")
    return result


def test_a_family_log_evidence_is_the_evidence_of_its_sub_grid():
    from olfacto.analysis import posterior
    from olfacto.experiments import compare

    result = synthetic_result()
    table = compare.tabulate({"hebbian": result})
    # the hebbian run's families only; the sgd and measured families have no run here
    assert list(table.family.values) == ["hebbian", "hebbian+gain", "mix", "mix+gain", "random", "random+gain"]
    subs = {"hebbian": {"alpha_mix": [1.0], "gain_spread": [0.0]},
            "hebbian+gain": {"alpha_mix": [1.0], "gain_spread": [0.75, 1.5]},
            "mix": {"alpha_mix": [0.5], "gain_spread": [0.0]},
            "random+gain": {"alpha_mix": [0.0], "gain_spread": [0.75, 1.5]}}
    for family, sub in subs.items():
        for region in ("AON", "PPC"):
            expected = posterior.log_evidence(result["log_likelihood"].sel(region=region), sub)
            got = float(table["log_evidence"].sel(region=region, family=family))
            assert math.isclose(got, expected, rel_tol=1e-12), (family, region, got, expected)
        assert int(table["n_points"].sel(family=family)) == 3 * 1 * 2 * len(sub["gain_spread"])
    # the family's posterior lives on its own sub-grid
    assert (table["median_gain_spread"].sel(family="hebbian") == 0).all()
    assert (table["credible_gain_spread"].sel(family="hebbian+gain") > 0).all()
    assert (table["median_alpha_mix"].sel(family="mix") == 0.5).all()


def test_the_family_made_to_fit_better_has_the_larger_evidence_and_passes():
    from olfacto.experiments import compare

    table = compare.tabulate({"hebbian": synthetic_result(good_gain=0.75)})
    for region in ("AON", "PPC"):
        r = table.sel(region=region)
        assert r["log_evidence"].idxmax("family").item() == "hebbian+gain"
        assert float(r["delta_log_evidence"].sel(family="hebbian+gain")) == 0.0
        assert float(r["log_evidence"].sel(family="hebbian+gain")) > float(r["log_evidence"].sel(family="hebbian")) + 5
        good = r.sel(family="hebbian+gain")
        assert int(good.n_fitted_pass) == 4 and int(good.n_checks_pass) == 5 and bool(good.explains)
        assert float(good.median_in_degree) == 10 and float(good.median_gain_spread) == 0.75
        bad = r.sel(family="hebbian")  # every point 0.3 from the data: 2 bootstrap s.d. and more on most measures
        assert not bool(bad.explains) and int(bad.n_checks_pass) == 0
    # the same grid with no good point: the gain family no longer wins by a margin
    flat = compare.tabulate({"hebbian": synthetic_result(good_gain=None)})
    gap = flat["log_evidence"].sel(family="hebbian+gain") - flat["log_evidence"].sel(family="hebbian")
    assert (abs(gap) < 1).all()


def test_family_selections_on_the_grid():
    from olfacto.experiments import compare

    ll = synthetic_result()["log_likelihood"]
    assert compare.selection(ll, {"alpha_mix": "(0,1)", "gain_spread": ">0"}) == {"alpha_mix": [0.5],
                                                                                 "gain_spread": [0.75, 1.5]}
    plain = ll.sel(gain_spread=0.0, drop=True)  # no gain axis: at its default, 0
    assert compare.selection(plain, {"gain_spread": "0", "alpha_mix": "1"}) == {"alpha_mix": [1.0]}
    assert compare.selection(plain, {"gain_spread": ">0"}) is None
    grid = {"protocol.alpha_mix": [0.0, 0.5, 1.0]}
    assert compare.needed_alpha(grid, "hebbian") == [0.0, 0.5, 1.0]
    assert compare.needed_alpha(grid, "sgd") == [1.0]  # no sgd family reads the mix or α = 0
    assert compare.needed_alpha(grid, "measured") == [0.5, 1.0]


def test_written_dataset_and_table(tmp_path):
    from olfacto.engine import storage
    from olfacto.experiments import compare

    table = compare.tabulate({"hebbian": synthetic_result()})
    nc, md = compare.write(table, tmp_path)
    back = storage.read_dataset(nc)
    np.testing.assert_allclose(back["log_evidence"].values, table["log_evidence"].values)
    assert back["explains"].dims == ("region", "family")
    text = md.read_text()
    assert "**AON**" in text and "**PPC**" in text
    rows = [line for line in text.splitlines() if line.startswith("| hebbian+gain |")]
    assert len(rows) == 2 and "| 4/4 | 5/5 | — |" in rows[0]


def test_compare_bad_input_is_one_line(tmp_path, capsys):
    from olfacto import cli

    assert cli.main(["fit", str(tmp_path / "nowhere"), "--compare", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    if not IPSI_CONTRA.is_dir():
        pytest.skip("IpsiContra data not found")
    assert cli.main(["fit", str(IPSI_CONTRA), "--compare", "--grid", "protocol.gain_spread=-1",
                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "gain_spread" in err
    config = tmp_path / "base.yaml"
    config.write_text(f"odors:\n  data_path: {tmp_path / 'no_bulb'}\n")
    assert cli.main(["fit", str(IPSI_CONTRA), "--compare", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "measured" in err and "no_bulb" in err
    assert not (tmp_path / "o" / "compare.nc").exists()


def test_fit_compare_dispatches_to_the_comparison(tmp_path, monkeypatch):
    from olfacto import cli
    from olfacto.experiments import compare, fit

    if not IPSI_CONTRA.is_dir():
        pytest.skip("IpsiContra data not found")
    called = []
    monkeypatch.setattr(compare, "main_cli", lambda args: called.append("compare") or 0)
    monkeypatch.setattr(fit, "main_cli", lambda args: called.append("fit") or 0)
    assert cli.main(["fit", str(IPSI_CONTRA), "--compare", "--quick", "--out", str(tmp_path / "o")]) == 0
    assert cli.main(["fit", str(IPSI_CONTRA), "--quick", "--out", str(tmp_path / "p")]) == 0
    assert called == ["compare", "fit"]


def test_runs_must_share_the_data_and_its_bootstrap():
    from olfacto.experiments import compare

    a = synthetic_result()
    b = a.copy(deep=True)
    table = compare.tabulate({"hebbian": a, "sgd": b})
    assert "sgd" in table.family.values and "sgd+gain" in table.family.values
    np.testing.assert_allclose(table["log_evidence"].sel(family="sgd+gain"),
                               table["log_evidence"].sel(family="hebbian+gain"))
    b["data_cov"] = b["data_cov"] * 2  # another bootstrap: another likelihood
    with pytest.raises(ValueError, match="data_cov"):
        compare.tabulate({"hebbian": a, "sgd": b})


def test_a_family_row_does_not_depend_on_the_other_families():
    from olfacto.experiments import compare

    result = synthetic_result()
    both = compare.tabulate({"hebbian": result})
    alone = compare.tabulate({"hebbian": result}, {"mix+gain": compare.FAMILIES["mix+gain"]})
    for var in ("log_evidence", "predictive_mean", "predictive_interval", "check_model", "median_in_degree"):
        np.testing.assert_array_equal(alone[var].sel(family="mix+gain"), both[var].sel(family="mix+gain"))


def test_families_on_a_grid():
    from olfacto.experiments import compare

    assert compare.families_on(compare.GRID) == list(compare.FAMILIES)
    assert compare.families_on({"protocol.gain_spread": [0.0]}) == ["hebbian", "sgd", "measured"]  # α at 1
    assert compare.families_on({"protocol.gain_spread": [1.0], "protocol.alpha_mix": [0.3]}) == [
        "mix+gain", "measured mix+gain"]
    assert compare.families_on(compare.GRID, runs=("sgd",)) == ["sgd", "sgd+gain"]
