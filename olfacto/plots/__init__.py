"""Figures: one module per figure, each a function Dataset → matplotlib Figure."""

from .alignment_vs_p import alignment_vs_p
from .experiment_comparison import experiment_comparison
from .experiment_measures import experiment_measures
from .hebbian_vs_sgd import hebbian_vs_sgd
from .inverse_scaling import inverse_scaling
from .learning_curve import learning_curve
from .learning_curves import learning_curves
from .speed_accuracy import speed_accuracy
from .update_alignment import update_alignment

__all__ = ["alignment_vs_p", "experiment_comparison", "experiment_measures", "hebbian_vs_sgd", "inverse_scaling",
           "learning_curve", "learning_curves", "speed_accuracy", "update_alignment"]
