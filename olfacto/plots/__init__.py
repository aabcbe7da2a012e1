"""Figures: one module per figure, each a function Dataset → matplotlib Figure."""

from .alignment_vs_p import alignment_vs_p
from .experiment_comparison import experiment_comparison
from .experiment_fit import experiment_fit
from .experiment_measures import experiment_measures
from .experiment_posterior import experiment_posterior
from .hebbian_vs_sgd import hebbian_vs_sgd
from .inverse_scaling import inverse_scaling
from .learning_curve import learning_curve
from .landscape import landscape
from .learning_curves import learning_curves
from .real_odors import real_odors
from .recurrence import recurrence
from .rewiring import rewiring
from .rewiring_dependence import rewiring_dependence
from .rewiring_saving import rewiring_saving
from .rewiring_turnover import rewiring_turnover
from .sgd_stability import sgd_stability
from .speed_accuracy import speed_accuracy
from .update_alignment import update_alignment
from .update_alignment_vs import update_alignment_vs
from .weight_fluctuations import weight_fluctuations

__all__ = ["alignment_vs_p", "experiment_comparison", "experiment_fit", "experiment_measures", "experiment_posterior", "hebbian_vs_sgd", "inverse_scaling",
           "landscape", "learning_curve", "learning_curves", "real_odors", "recurrence", "rewiring", "rewiring_dependence", "rewiring_saving",
           "rewiring_turnover", "sgd_stability", "speed_accuracy",
           "update_alignment", "update_alignment_vs", "weight_fluctuations"]
