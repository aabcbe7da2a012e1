"""The registries of the figures: every experiment they need (:data:`EXPERIMENTS`) and every figure
(:data:`FIGURES`) — one entry each, read by ``olfacto figures``, the notebooks and the docs.

A figure is its experiment (a YAML in ``experiments/`` and its ``--quick`` overrides; either a
plain sweep or a ``compute`` function that runs it), a plot (:mod:`olfacto.plots`, Dataset →
Figure, drawing only) and a summary (:mod:`olfacto.analysis`, Dataset → the numbers of
``summary.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Experiment:
    """An experiment of ``experiments/``: its YAML file, how the figures driver runs it, and the
    overrides of ``--quick`` mode (``set``: dotted keys; ``grid``: grid keys replaced; for
    ``scale_n``: ``n_cortex`` and ``in_degree`` lists)."""

    name: str
    yaml: str
    quick: dict[str, Any] = field(default_factory=dict)
    scale_n: bool = False  # repeat the sweep at several N, keeping each grid point's K = pN
    per_neuron: bool = False  # run with engine.loop.run_batch to keep per-neuron tuning correlations
    fixed_point: bool = False  # attach the exact Hebbian fixed point of each seed's network
    # run by <compute>(base, grid, options, progress) instead of a sweep: "name" in olfacto.experiments.chapter2,
    # or "module:name"
    compute: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # what ``compute`` needs beyond config keys

    def options_for(self, quick: bool) -> dict[str, Any]:
        return {**self.options, **(self.quick.get("options", {}) if quick else {})}


# The four dynamics experiments share one compiled shape in quick mode (N = 500, K = 50,
# 4000 breaths recorded every 100, batches of 3 seeds): it is compiled once. (Measuring
# costs about as much as 100 breaths of learning, hence the sparser records than in full mode.)
_DYNAMICS = {"circuit.n_cortex": 500, "circuit.connection_prob": 0.1, "run.n_breaths": 4000,
             "run.record_every": 100}
_SEEDS = [0, 1, 2]

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment("learning_curves", "ch1_learning_curves.yaml", fixed_point=True,
               quick={"set": _DYNAMICS, "grid": {"seed": _SEEDS}}),
    Experiment("speed_accuracy", "ch1_speed_accuracy.yaml", fixed_point=True,
               quick={"set": _DYNAMICS, "grid": {"learning.lr": [0.002, 0.004, 0.008, 0.016, 0.032],
                                                  "seed": _SEEDS}}),
    Experiment("alignment_vs_p", "ch1_alignment_vs_p.yaml", scale_n=True,
               quick={"set": {"run.n_breaths": 8000, "run.record_every": 1000, "learning.lr": 0.001,
                              "learning.decay": 0.1},
                      "grid": {"seed": _SEEDS}, "n_cortex": [200, 400, 800], "in_degree": [2, 6, 18, 54]}),
    # p* vs N at N = 10³ … 10⁵ (Hebbian, one exact chunked update per run); K brackets K*(A* = 0.5) ≈ 17
    Experiment("inverse_scaling", "ch1_inverse_scaling.yaml", compute="olfacto.experiments.inverse_scaling:compute",
               options={"n_cortex": [1000, 3000, 10000, 30000, 100000], "in_degree": [12, 17, 24]},
               quick={"grid": {"seed": _SEEDS}, "options": {"n_cortex": [100, 200, 400, 800]}}),
    Experiment("update_alignment", "ch1_update_alignment.yaml", quick={"set": _DYNAMICS, "grid": {"seed": _SEEDS}}),
    Experiment("experiment_comparison", "ch1_experiment_comparison.yaml", per_neuron=True,
               quick={"set": _DYNAMICS, "grid": {"seed": _SEEDS}}),
    Experiment("experiment_fit", "fit_experiment.yaml", compute="olfacto.experiments.fit:compute",
               options={"data": "../shared/data/IpsiContra", "grid": {
                   "in_degree": [2, 3, 5, 10, 20, 30, 50, 100, 200, 400], "learning.lr": [0.0002, 0.001, 0.005],
                   "trial_noise": [0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0], "seed": [0, 1, 2]}},
               quick={"options": {"grid": {"in_degree": [3, 10, 30], "learning.lr": [0.0005, 0.005],
                                           "trial_noise": [0.5, 1.0, 2.0, 4.0], "seed": [0, 1]}, "bootstrap": 200}}),
    Experiment("real_odors", "real_odors.yaml", compute="olfacto.experiments.real_odors:compute",
               # SGD at η = 0.002: 0.005 sits at its stability edge with these correlated odors
               options={"lr_sgd": 0.002},
               quick={"set": {"circuit.n_cortex": 300, "circuit.connection_prob": 0.15, "run.n_breaths": 2000},
                      "grid": {"seed": [0]}}),
    # chapter 2
    Experiment("update_alignment_vs", "ch2_update_alignment_vs.yaml", compute="compute_update_alignment_vs",
               options={"axes": {"learning.decay": [0.5, 1.0, 2.0, 4.0, 8.0], "odors.noise": [0.0, 0.5, 1.0],
                                 "circuit.n_glomeruli": [25, 50, 100], "circuit.connection_prob": [0.05, 0.1, 0.2],
                                 "circuit.n_cortex": [250, 500, 1000], "circuit.activation": ["linear", "relu"],
                                 "odors.kind": ["gaussian", "sparse"]}},
               quick={"set": {"run.n_breaths": 3000},
                      "options": {"axes": {"learning.decay": [0.5, 1.0, 2.0, 4.0, 8.0], "odors.noise": [0.0, 0.5, 1.0],
                                           "circuit.n_glomeruli": [25, 100], "circuit.activation": ["linear", "relu"],
                                           "odors.kind": ["gaussian", "sparse"]}}}),
    Experiment("recurrence", "ch2_recurrence.yaml", compute="compute_recurrence",
               quick={"set": {"run.n_breaths": 2000},
                      "grid": {"recurrence.steps": [3, 30], "seed": [0, 1]}}),
    Experiment("weight_fluctuations", "ch2_weight_fluctuations.yaml", compute="compute_weight_fluctuations",
               options={"burn_in_relaxations": 3.0, "window_relaxations": 20.0, "snapshots": 400},
               quick={"grid": {"circuit.n_glomeruli": [25, 50], "learning.lr": [0.001, 0.002, 0.004, 0.008],
                               "seed": [0]},
                      "options": {"window_relaxations": 15.0, "snapshots": 300}}),
    Experiment("sgd_stability", "ch2_sgd_stability.yaml", compute="compute_sgd_stability",
               options={"in_degree": [10, 25, 50, 100, 200], "sections": 8, "rounds": 3, "lo": 0.002, "hi": 2.0},
               quick={"set": {"circuit.n_cortex": 200, "run.n_breaths": 5000, "run.record_every": 5000},
                      "grid": {"learning.batch": [1, 4]},
                      "options": {"in_degree": [50], "rounds": 2}}),
    # chapter 3: beyond the thesis
    Experiment("rewiring", "ch3_rewiring.yaml", compute="olfacto.experiments.rewiring:compute",
               options={"n_cortex": [500, 1000, 2000], "in_degree": [4, 8, 16, 32], "target_alignment": 0.55},
               quick={"set": {"run.n_breaths": 3000}, "grid": {"seed": [0]},
                      "options": {"n_cortex": [300, 600], "in_degree": [4, 16, 64]}}),
    Experiment("rewiring_dependence", "ch3_rewiring_dependence.yaml",
               compute="olfacto.experiments.rewiring_dependence:compute",
               options={"axes": {"rewiring.fraction": [0.05, 0.1, 0.2, 0.4], "rewiring.every": [50, 200, 1000],
                                 "odors.kind": ["gaussian", "sparse", "dataset"], "odors.noise": [0.0, 0.1, 0.3, 0.6]},
                        # K = 20: ζK = 1, 2, 4, 8 synapses per event (r = round(ζK); at K = 8, ζ = 0.05 prunes none)
                        "in_degree": 20, "fixed_in_degree": [5, 10, 20, 40, 80, 160]},
               quick={"set": {"circuit.n_cortex": 500, "run.n_breaths": 3000}, "grid": {"seed": [0, 1]},
                      "options": {"axes": {"rewiring.fraction": [0.1, 0.2, 0.4], "rewiring.every": [100, 200, 1000],
                                           "odors.kind": ["gaussian", "sparse", "dataset"],
                                           "odors.noise": [0.0, 0.1, 0.6]},
                                  "fixed_in_degree": [5, 10, 20, 40, 80]}}),
    Experiment("landscape", "ch2_landscape.yaml", compute="compute_landscape",
               options={"lr": {"hebbian": 0.002, "sgd": 0.005}, "stride": 100, "points": 41},
               quick={"set": {"run.n_breaths": 2000}, "options": {"points": 31}}),
]}
"""Every experiment the figures need, by name."""

SCALING_N = {"full": [1000, 3000], "quick": EXPERIMENTS["alignment_vs_p"].quick["n_cortex"]}
"""The N at which ``alignment_vs_p`` is repeated (keeping K = pN of its grid)."""


@dataclass(frozen=True)
class Figure:
    """A figure: the experiment whose data it draws, its plot (Dataset → matplotlib Figure) and its
    numbers for ``summary.json`` (Dataset → :class:`~olfacto.analysis.common.Summary`)."""

    name: str
    experiment: str
    plot: Callable[[Any], Any]
    summary: Callable[[Any], Any] | None = None
    chapter: int = 1


def _plot(name: str) -> Callable[[Any], Any]:
    """The function ``name`` of the module ``olfacto.plots.<name>`` (one module per figure), imported when
    first drawn: a new figure's plot is its own file, with nothing to register in ``plots/__init__``."""
    def draw(ds):
        import importlib

        return getattr(importlib.import_module(f"olfacto.plots.{name}"), name)(ds)

    draw.__name__ = name
    return draw


def _function(target: str) -> Callable[..., Any]:
    """The function named ``"module:name"`` (a bare name: in :mod:`olfacto.experiments.chapter2`), imported
    when first called, so the registries cost no import of the analysis modules."""
    import importlib

    module, _, name = target.rpartition(":")
    return getattr(importlib.import_module(module or "olfacto.experiments.chapter2"), name)


def _summary(target: str) -> Callable[[Any], Any]:
    def compute(ds):
        return _function(target)(ds)

    compute.__name__ = target.rpartition(":")[2]
    return compute


def _ch(chapter: int, name: str) -> Callable[[Any], Any]:
    return _summary(f"olfacto.analysis.chapter{chapter}:summary_{name}")


FIGURES: dict[str, Figure] = {f.name: f for f in [
    Figure("learning_curves", "learning_curves", _plot("learning_curves"), _ch(1, "learning_curves")),
    Figure("speed_accuracy", "speed_accuracy", _plot("speed_accuracy"), _ch(1, "speed_accuracy")),
    Figure("alignment_vs_p", "alignment_vs_p", _plot("alignment_vs_p"), _ch(1, "alignment_vs_p")),
    Figure("inverse_scaling", "inverse_scaling", _plot("inverse_scaling"),
           _summary("olfacto.analysis.inverse_scaling:summary")),
    Figure("hebbian_vs_sgd", "alignment_vs_p", _plot("hebbian_vs_sgd"), _ch(1, "hebbian_vs_sgd")),
    Figure("update_alignment", "update_alignment", _plot("update_alignment"), _ch(1, "update_alignment")),
    Figure("experiment_comparison", "experiment_comparison", _plot("experiment_comparison"),
           _ch(1, "experiment_comparison")),
    Figure("experiment_fit", "experiment_fit", _plot("experiment_fit"), _summary("olfacto.analysis.fit:figure_summary")),
    Figure("experiment_posterior", "experiment_fit", _plot("experiment_posterior"),
           _summary("olfacto.analysis.posterior:figure_summary")),
    Figure("real_odors", "real_odors", _plot("real_odors"), _summary("olfacto.analysis.real_odors:summary")),
    Figure("update_alignment_vs", "update_alignment_vs", _plot("update_alignment_vs"),
           _ch(2, "update_alignment_vs"), chapter=2),
    Figure("recurrence", "recurrence", _plot("recurrence"), _ch(2, "recurrence"), chapter=2),
    Figure("weight_fluctuations", "weight_fluctuations", _plot("weight_fluctuations"),
           _ch(2, "weight_fluctuations"), chapter=2),
    Figure("sgd_stability", "sgd_stability", _plot("sgd_stability"), _ch(2, "sgd_stability"), chapter=2),
    Figure("landscape", "landscape", _plot("landscape"), _ch(2, "landscape"), chapter=2),
    Figure("rewiring", "rewiring", _plot("rewiring"), _ch(3, "rewiring"), chapter=3),
    Figure("rewiring_saving", "rewiring", _plot("rewiring_saving"), chapter=3),
    Figure("rewiring_turnover", "rewiring", _plot("rewiring_turnover"), chapter=3),
    Figure("rewiring_dependence", "rewiring_dependence", _plot("rewiring_dependence"), _ch(3, "rewiring_dependence"),
           chapter=3),
]}
"""Every figure ``olfacto figures`` makes, by name: one entry each (experiment, plot, summary)."""


def experiments_of(chapter: int) -> list[str]:
    """The experiments the figures of ``chapter`` draw from, in figure order."""
    return list(dict.fromkeys(f.experiment for f in FIGURES.values() if f.chapter == chapter))


