"""The chapter-1 laws, re-simulated at reduced size through the figures pipeline
(experiments → sweeps → analysis summaries), the CLI's input checks, and the chapter-1
notebook (which loads the stored results and redraws every figure).

Each ``TINY`` entry replaces an experiment's ``--quick`` overrides with smaller sizes that
still show its law; the tolerances below say what finite N, few seeds and few breaths allow.
The four dynamics experiments share one compiled shape (N = 200, K = 50, 2 seeds).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import ROOT

FIGURES_DIR = ROOT / "figures"

_DYN = {"circuit.n_cortex": 200, "circuit.connection_prob": 0.25, "run.n_breaths": 2000, "run.record_every": 100,
        "run.n_probe": 60}
_SEEDS = [0, 1]
TINY = {
    "learning_curves": {"set": _DYN, "grid": {"learning.lr": [0.004, 0.016], "seed": _SEEDS}},
    "speed_accuracy": {"set": _DYN, "grid": {"learning.lr": [0.004, 0.008, 0.016, 0.032], "seed": _SEEDS}},
    # fixed in-degree: no binomial in-degrees to compile; K = 3, 9 ≤ M/5 for the exponent, 9 and 27
    # bracket K* ≈ 17 (Hebbian) and 12.5 (SGD) at A* = 0.5; 2 N × 3 K × 2 rules = 12 compiled shapes
    "alignment_vs_p": {"set": {"run.n_breaths": 3000, "run.record_every": 1000, "learning.lr": 0.004,
                               "learning.decay": 0.1, "run.n_probe": 60, "circuit.mask": "fixed_indegree"},
                       "grid": {"seed": _SEEDS}, "n_cortex": [100, 300], "in_degree": [3, 9, 27]},
    "update_alignment": {"set": _DYN, "grid": {"seed": _SEEDS}},
    "experiment_comparison": {"set": _DYN, "grid": {"odors.kind": ["gaussian"], "seed": _SEEDS}},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Run (once per module) the reduced experiments; returns name → summary of that experiment's figures."""
    from olfacto.experiments import figures

    folder = tmp_path_factory.mktemp("tiny")
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            exp = dataclasses.replace(figures.EXPERIMENTS[name], quick=TINY[name])
            ds = figures.load_or_run(exp, quick=True, folder=folder / name)
            names = [f for f, fig in figures.FIGURES.items() if fig.experiment == name]
            cache[name] = figures.summarize({name: ds}, names)
        return cache[name]

    return get


@pytest.mark.slow  # a science check: make test-slow (CI runs it)
def test_learning_curves_follow_the_mean_field_curve(tiny):
    # N = 200, 2 seeds: the network-to-network scatter of the alignment is ≈ 0.01
    dev = tiny("learning_curves")["details"]["theory_deviations"]["learning_curves: t ≥ 10(s+1)"]
    assert dev < 0.03


@pytest.mark.slow  # a science check: make test-slow (CI runs it)
def test_speed_accuracy_is_linear_with_relaxation_time_one_over_eta_lambda(tiny):
    s = tiny("speed_accuracy")
    # the deficit's log–log slope against η matches the same fit on the theory (scatter ≈ 0.05 at 2 seeds)
    assert s["speed_accuracy_slope"] == pytest.approx(s["theory"]["speed_accuracy_slope"]["same_fit_on_theory"],
                                                      abs=0.15)
    d = s["details"]["speed_accuracy"]
    np.testing.assert_allclose(d["relaxation_time"], d["relaxation_time_theory"], rtol=0.15)
    assert s["details"]["theory_deviations"]["speed_accuracy: steady state"] < 0.03


@pytest.mark.slow
def test_alignment_grows_as_sqrt_p_and_p_star_scales_inversely_with_n(tiny):
    s = tiny("alignment_vs_p")
    # K = 2, 6 ≤ M/5: the theory's own fitted slope is ≈ 0.47; 2 seeds scatter it by ≈ 0.02
    assert s["alignment_vs_p_exponent"] == pytest.approx(s["theory"]["alignment_vs_p_exponent"]["same_fit_on_theory"],
                                                         abs=0.05)
    # both rules' p* fall as 1/N, so their ratio is the same at N = 100 and 300 (within the interpolation's scatter,
    # as a slope −1 ± 0.12 of each); the Hebbian slope over N = 10³ … 10⁵ is test_inverse_scaling.py's
    ratios = list(s["details"]["p_star_ratio_per_N"].values())
    assert len(ratios) == 2 and ratios[1] / ratios[0] == pytest.approx(1.0, abs=0.12)
    # the Hebbian rule needs ≈ (M+2)/(M(1−A*²)) = 1.39 times the SGD connection probability
    assert s["p_star_ratio_hebbian_over_sgd"] == pytest.approx(s["theory"]["p_star_ratio_hebbian_over_sgd"], rel=0.12)
    assert s["details"]["theory_deviations"]["alignment_vs_p: Hebbian, final breath"] < 0.05


@pytest.mark.slow  # a science check: make test-slow (CI runs it)
def test_update_alignment_sign_follows_the_hebbian_gain(tiny):
    s = tiny("update_alignment")
    table = s["details"]["update_alignment"]["along learning (t > 0), mean over seeds"]
    row = lambda prefix: next(v for k, v in table.items() if k.startswith(prefix))  # noqa: E731
    assert row("hebbian, g=0.5")["min"] > 0.3  # gain < 1: aligned throughout
    assert abs(row("hebbian, g=1 ")["final"]) < 0.15  # gain 1: orthogonal at the fixed point
    assert row("hebbian, g=2")["final"] < -0.2  # gain > 1: opposed
    assert all(v["min"] > 0.3 for k, v in table.items() if k.startswith("sgd"))
    assert s["theory"]["update_alignment_mean"]["random_directions"] < 0.01  # far above chance


@pytest.mark.slow  # a science check: make test-slow (CI runs it)
def test_tuning_correlations_match_the_fixed_point_distribution(tiny):
    comp = tiny("experiment_comparison")["details"]["experiment_comparison"]
    sim = comp["hebbian, gaussian"]["tuning_correlation_mean"]
    theory = comp["hebbian, gaussian: theory"]["tuning_correlation_mean_with_P_probes"]
    assert sim == pytest.approx(theory, abs=0.04)  # 400 neurons × 2 seeds; learning-noise lowers it ≈ 0.02
    assert comp["sgd, gaussian"]["decoding_transfer"] > 0.9 and comp["hebbian, gaussian"]["decoding_transfer"] > 0.5


def test_scaling_experiment_keeps_the_in_degree():
    from olfacto.experiments import figures

    jobs = figures.jobs(figures.EXPERIMENTS["alignment_vs_p"], quick=True)
    assert [j.label for j in jobs] == [f"N{n}" for n in figures.SCALING_N["quick"]]
    for job in jobs:
        n = job.base["circuit"]["n_cortex"]
        degrees = [p * n for p in job.grid["circuit.connection_prob"]]
        assert degrees == pytest.approx(figures.EXPERIMENTS["alignment_vs_p"].quick["in_degree"])


def test_unknown_figure_is_a_one_line_error(capsys):
    from olfacto import cli
    from olfacto.experiments import figures

    assert cli.main(["figures", "--only", "bogus", "--out", str(ROOT / "figures")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "bogus" in err and all(name in err for name in figures.FIGURES)


@pytest.mark.slow
def test_chapter1_notebook_executes(monkeypatch):
    from test_notebooks import check_outputs, execute

    # figures/data is committed: a missing experiment is a defect, not a reason to skip
    assert (FIGURES_DIR / "data").is_dir(), "figures/data not found: run `make figures`"
    monkeypatch.delenv("MPLBACKEND", raising=False)  # let the kernel use its inline backend
    nb = execute("chapter1.ipynb", ROOT)
    assert check_outputs(nb) >= 7  # one per figure


@pytest.mark.slow
@pytest.mark.parametrize("chapter,images", [(2, 5), (3, 4)])  # one image per figure
def test_chapter_notebook_executes(chapter, images, monkeypatch):
    from test_notebooks import check_outputs, execute

    from olfacto.experiments import figures

    missing = [n for n in figures.experiments_of(chapter) if not (FIGURES_DIR / "data" / n / "result.nc").is_file()]
    assert not missing, f"chapter-{chapter} data not in figures/data: {missing} (run `make figures`)"
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = execute(f"chapter{chapter}.ipynb", ROOT)
    assert check_outputs(nb) >= images


def test_committed_figure_data_stay_current():
    """`make figures` reuses figures/data only while each experiment's fingerprint (its resolved configs,
    grids and options) is unchanged: config keys added later at their defaults must not change it, nor data
    paths read relative to their config file (the stored results hashed them relative to the repository root)."""
    from olfacto.experiments import figures
    from olfacto.engine import storage

    stale, missing = [], []
    for name, exp in figures.EXPERIMENTS.items():  # every experiment checked, none skipped at the first gap
        path = FIGURES_DIR / "data" / name / figures.RESULT
        if not path.is_file():
            missing.append(name)
            continue
        stored = storage.read_dataset(path).attrs["fingerprint"]
        if stored not in figures._accepted(exp, figures.jobs(exp, quick=False), quick=False):
            stale.append(name)
    assert not missing and not stale, f"not committed: {missing}; fingerprint changed: {stale}"
