"""Figures: one module per figure, each a function Dataset → matplotlib Figure."""

from .learning_curve import learning_curve

__all__ = ["learning_curve"]
