"""The chapter-3 experiment ``rewiring_dependence``: how the synapse saving of rewiring depends on ζ, the interval,
the odor statistics and the nostril noise (olfacto/experiments/rewiring_dependence.py,
olfacto/analysis/chapter3.py, olfacto/plots/rewiring_dependence.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import xarray as xr

import olfacto
from olfacto.analysis import chapter3
from olfacto.engine import loop
from olfacto.experiments import registry, rewiring_dependence as rd

BASE = {"seed": 0,
        "circuit": {"n_glomeruli": 10, "n_cortex": 48, "connection_prob": 0.125, "mask": "fixed_indegree"},
        "odors": {"noise": 0.1},
        "learning": {"rule": "hebbian", "lr": 0.01, "decay": 1.0},
        "rewiring": {"rule": "hebbian", "every": 100, "fraction": 0.2},
        "run": {"n_breaths": 300, "record_every": 100, "n_probe": 30, "progress": False}}


def _alignment(base: dict, key: str, value, rule: str) -> np.ndarray:
    configs = [olfacto.config.validate({**rd.setting_config(base, key, value, rule, 8), "seed": s}) for s in (0, 1)]
    return loop.run_batch(configs, progress=False).dataset.alignment.values


@pytest.mark.slow
def test_fixed_mask_ignores_fraction_and_interval():
    """The fixed mask (rule none) ignores ζ and the interval: its runs at ζ = 0.4 and every = 50 hold exactly the
    base run's alignment (so the experiment runs it once, under one run label), while Hebbian rewiring at ζ = 0.05
    does differ from its base run (the comparison can see a change). Five compiled programs: slow."""
    reference = _alignment(BASE, "rewiring.fraction", 0.2, "none")
    for key, value in [("rewiring.fraction", 0.4), ("rewiring.every", 50)]:
        np.testing.assert_array_equal(_alignment(BASE, key, value, "none"), reference)
    hebbian = _alignment(BASE, "rewiring.fraction", 0.2, "hebbian")
    assert np.nanmax(np.abs(_alignment(BASE, "rewiring.fraction", 0.05, "hebbian")[:, -1] - hebbian[:, -1])) > 1e-3


def test_runs_are_shared_where_the_setting_is_the_base_or_the_fixed_mask_ignores_it():
    """Run labels: a setting at its base value, and the fixed mask at any ζ or interval, read the base run; the
    fixed mask at another odor kind or noise, and a rewiring rule at another ζ or interval, have runs of their own."""
    cfg = olfacto.config.validate(BASE)
    for key, value in [("rewiring.fraction", 0.05), ("rewiring.every", 50), ("odors.noise", 0.1)]:
        assert rd.run_label(cfg, key, value, "none", 8) == ("none", 8, None)
    assert rd.run_label(cfg, "rewiring.fraction", 0.2, "hebbian", 8) == ("hebbian", 8, None)
    for key, value in [("odors.noise", 0.3), ("odors.kind", "sparse")]:
        assert rd.run_label(cfg, key, value, "none", 16) == ("none", 16, (key, value))
    for key, value in [("rewiring.fraction", 0.05), ("rewiring.every", 50)]:
        assert rd.run_label(cfg, key, value, "hebbian", 8) == ("hebbian", 8, (key, value))


def test_interval_off_the_record_grid_records_at_the_gcd():
    """every = 50 with run.record_every = 100: the rewired run records every 50 breaths (a valid config); the fixed
    mask keeps the base records."""
    sub = rd.setting_config(BASE, "rewiring.every", 50, "hebbian", 8)
    assert olfacto.config.validate(sub).run.record_every == 50
    assert olfacto.config.validate(rd.setting_config(BASE, "rewiring.every", 50, "none", 8)).run.record_every == 100
    assert olfacto.config.validate(rd.setting_config(BASE, "rewiring.every", 300, "hebbian", 8)).run.record_every == 100


def _synthetic(true_k: dict[str, float], ks=(4, 8, 16, 32, 64), k_base: int = 8) -> xr.Dataset:
    """A Dataset shaped as rewiring_dependence.compute makes it, two factors (ζ: 2 values, odor kind: 2), 3 seeds:
    the fixed mask's final alignment A(K) = √(K/(K+51)) on ``ks``, and each rule reaching A(true_k[rule]) at the
    base K (× a seed scatter of ±0.2 %)."""
    def a(k):
        return np.sqrt(np.asarray(k, float) / (np.asarray(k, float) + 51.0))

    rules, seeds, breaths = list(true_k), [0, 1, 2], [0, 100, 200]
    scatter = np.array([0.998, 1.0, 1.002])
    ds = xr.Dataset(coords={"rule": rules, "in_degree": list(ks), "seed": seeds, "breath": breaths})
    for key, dim, values in [("rewiring.fraction", "fraction", [0.1, 0.2]), ("odors.kind", "kind", ["gaussian", "sparse"])]:
        reached = np.array([a(true_k[r]) * scatter for r in rules])  # (rule, seed)
        curves = np.broadcast_to(reached[None, :, :, None], (2, len(rules), 3, 3)).copy()
        fixed = np.broadcast_to(a(ks)[None, :, None], (2, len(ks), 3)).copy()
        ds = ds.assign_coords({dim: xr.DataArray(values, dims=dim, attrs={"config_key": key, "baseline": values[1]})})
        ds[f"alignment_vs_{dim}"] = ((dim, "rule", "seed", "breath"), curves, {"key": key})
        ds[f"fixed_alignment_vs_{dim}"] = ((dim, "in_degree", "seed"), fixed, {"key": key})
        ds[f"fixed_theory_vs_{dim}"] = ((dim, "in_degree"), np.broadcast_to(a(ks), (2, len(ks))).copy(), {"key": key})
    ds.attrs.update(base_in_degree=k_base, config=olfacto.config.from_dict().to_yaml())
    return ds


def test_saving_reads_the_fixed_mask_curve_in_log_k():
    """On a fixed-mask curve A(K) = √(K/(K+51)) over K = 4 … 64: the fixed mask at the base K (8) saves 1 within
    the seed scatter, a rule reaching A(20) saves 20/8 = 2.5 within the error of linear interpolation in log K
    between 16 and 32 (≈ 2 %), one reaching A(32) exactly 4, and one beyond the grid's largest K nothing (NaN)."""
    ds = _synthetic({"none": 8.0, "random": 6.0, "hebbian": 20.0, "gradient": 32.0, "cht": 100.0})
    for _, dim in chapter3.dependence_factors(ds):
        s = chapter3.dependence_saving(ds, dim)
        assert s.dims == (dim, "rule", "seed")
        assert float(s.sel(rule="none").mean("seed").isel({dim: 0})) == pytest.approx(1.0, abs=0.01)
        assert float(s.sel(rule="random").mean("seed").isel({dim: 0})) == pytest.approx(0.75, rel=0.03)
        assert float(s.sel(rule="hebbian").mean("seed").isel({dim: 0})) == pytest.approx(2.5, rel=0.03)
        assert float(s.sel(rule="gradient", seed=1).isel({dim: 0})) == pytest.approx(4.0, rel=1e-6)
        assert np.isnan(s.sel(rule="cht").values).all()
    summary = chapter3.summary_rewiring_dependence(ds)
    assert summary.values["rewiring_dependence_saving"]["rewiring.fraction"]["0.1"]["hebbian"] == pytest.approx(
        2.5, rel=0.03)
    assert set(summary.values["rewiring_dependence_saving"]) == {"rewiring.fraction", "odors.kind"}
    assert summary.deviations["rewiring_dependence_fixed_mask_vs_theory"] == pytest.approx(0.0, abs=1e-12)


def _check_figure(ds: xr.Dataset) -> None:
    fig = registry.FIGURES["rewiring_dependence"].plot(ds)
    factors = chapter3.dependence_factors(ds)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == len(factors)
    n_rules = sum(r != "none" for r in ds.rule.values)
    for ax, (key, dim) in zip(panels, factors):
        assert len(ax.containers) == n_rules  # one error-bar series per rule (the fixed mask is the line at 1)
        # per rule: its line, the seeds' dots; the line at 1 and the base setting's vertical line
        assert len(ax.lines) >= n_rules * (1 + ds.sizes["seed"]) + 2
        assert ax.get_xlabel() and ax.get_xlabel() != key  # labelled in words
        assert any(np.allclose(line.get_ydata(), 1.0) for line in ax.lines)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"random", "hebbian", "each seed", "base setting"} <= set(labels)


def test_figure_draws_every_factor_with_seed_spread_and_the_baseline():
    """One panel per factor, each with an error-bar series per rewiring rule, each seed's dots, the line of no
    saving and the base setting; the legend outside the panels."""
    _check_figure(_synthetic({"none": 8.0, "random": 6.0, "hebbian": 20.0}))


@pytest.mark.slow
def test_tiny_experiment_end_to_end(tmp_path):
    """The experiment through the figures driver at N = 100 (ζ: 2 values, noise: 2 values, 2 seeds, K = 4, 8, 16):
    rule none saves 1 within interpolation error against its own curve, Hebbian rewiring saves more than random
    turnover at every setting, the fixed mask's alignment sits on the online Hebbian steady state, and the
    figure draws."""
    from olfacto.experiments import figures

    tiny = {"set": {"circuit.n_cortex": 100, "run.n_breaths": 600, "run.record_every": 100, "run.n_probe": 40},
            "grid": {"seed": [0, 1]},
            "options": {"axes": {"rewiring.fraction": [0.1, 0.2], "odors.noise": [0.1, 0.5]},
                        "in_degree": 8, "fixed_in_degree": [4, 16]}}
    exp = dataclasses.replace(figures.EXPERIMENTS["rewiring_dependence"], quick=tiny)
    ds = figures.load_or_run(exp, quick=True, folder=tmp_path / "rd", log=lambda m: None)
    assert list(ds.in_degree.values) == [4, 8, 16]  # the base K added to the fixed mask's grid
    # the fixed mask at any ζ is the one base run
    none = ds.alignment_vs_fraction.sel(rule="none")
    np.testing.assert_array_equal(none.isel(fraction=0).values, none.isel(fraction=1).values)
    s = figures.summarize({"rewiring_dependence": ds}, ["rewiring_dependence"])
    for key, by_value in s["details"]["rewiring_dependence_saving_seeds"].items():
        for value, by_rule in by_value.items():
            assert np.mean(by_rule["none"]) == pytest.approx(1.0, abs=0.03), (key, value)
            assert s["rewiring_dependence_saving"][key][value]["hebbian"] > \
                s["rewiring_dependence_saving"][key][value]["random"], (key, value)
    assert s["details"]["theory_deviations"]["rewiring_dependence_fixed_mask_vs_theory"] < 0.04
    _check_figure(ds)
