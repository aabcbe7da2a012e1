"""What the mean-field theory predicts for one run's config, and when it cannot say.

The theory (:mod:`olfacto.model.theory`, docs/theory.md) covers the analysable case: gaussian
odors, gaussian bulb→cortex projections J, linear φ, no nasal cycle, the Hebbian rule
(any η, λ: the online stationary state and the learning curve from W = 0) or plain
online SGD with batch 1 (its optimum). :func:`prediction` gives the predicted
alignment and tuning alignment of a config, or the reason it is outside that case;
``olfacto run`` prints it beside the simulation and its learning-curve plot draws it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..config import Config

__all__ = ["Prediction", "RewiringReferences", "outside_theory", "prediction", "rewiring_references"]


@dataclass(frozen=True)
class Prediction:
    """Mean-field predictions for one config (population alignment A, tuning alignment T).

    ``alignment`` is the stationary value (Hebbian: A_∞(ηλ) of the online rule, which
    includes the fluctuation deficit; SGD: the optimum A_S); ``curve(t)`` is A after t
    breaths from W = 0 where the theory has it (Hebbian from zero weights), else None.
    """

    alignment: float
    tuning_alignment: float
    what: str
    curve: Callable[[np.ndarray], np.ndarray] | None = None
    update_alignment: float | None = None  # Hebbian: cos(ΔW_Hebb, ΔW_SGD) at stationarity

    def values(self) -> dict[str, float]:
        """The predicted recorded measures, by the name they are recorded under."""
        out = {"alignment": self.alignment, "tuning_alignment": self.tuning_alignment}
        if self.update_alignment is not None:
            out["update_alignment"] = self.update_alignment
        return out


def outside_theory(cfg: Config) -> str | None:
    """Why ``cfg`` is outside the analysable case (the first reason), or None if inside."""
    from .rules import RULES

    c, o, lrn = cfg.circuit, cfg.odors, cfg.learning
    analysable = [name for name, r in RULES.items() if r.analysable]
    checks = [
        (o.kind == "gaussian", f"odors.kind={o.kind} (theory: gaussian)"),
        (c.projection == "gaussian", f"circuit.projection={c.projection} (theory: gaussian)"),
        (c.activation == "linear", f"circuit.activation={c.activation} (theory: linear)"),
        (o.nasal_cycle.amplitude == 0, f"odors.nasal_cycle.amplitude={o.nasal_cycle.amplitude} (theory: 0)"),
        (cfg.rewiring.rule == "none", f"rewiring.rule={cfg.rewiring.rule} (theory: fixed masks; the best-partners "
                                      "alignment bounds it, olfacto.model.theory.hebbian_best_partners_alignment)"),
        (lrn.rule in analysable, f"learning.rule={lrn.rule} (theory: {' or '.join(analysable)})"),
        (lrn.rule != "sgd" or (lrn.optimizer == "sgd" and lrn.batch == 1),
         f"learning.optimizer={lrn.optimizer}, learning.batch={lrn.batch} (theory of SGD: its optimum, plain sgd)"),
        (lrn.rule != "hebbian" or (lrn.init_scale == 0 and lrn.batch == 1),
         f"learning.init_scale={lrn.init_scale}, learning.batch={lrn.batch} (Hebbian theory: from W = 0, batch 1)"),
        (lrn.rule != "hebbian" or 0 < lrn.lr * lrn.decay < 2, f"learning.lr·learning.decay={lrn.lr * lrn.decay:g} "
                                                               "(theory: 0 < ηλ < 2)"),
    ]
    return next((why for ok, why in checks if not ok), None)


def prediction(cfg: Config) -> Prediction | str:
    """The :class:`Prediction` for ``cfg``, or a one-line reason it is outside the analysable case."""
    from . import theory

    why = outside_theory(cfg)
    if why is not None:
        return why
    c, o, lrn = cfg.circuit, cfg.odors, cfg.learning
    args = (c.n_cortex, c.n_glomeruli, c.connection_prob)
    if lrn.rule == "hebbian":
        eta, lam = lrn.lr, lrn.decay
        return Prediction(
            alignment=float(theory.hebbian_steady_state_alignment(eta, lam, *args, noise=o.noise, mask=c.mask)),
            tuning_alignment=float(theory.hebbian_tuning_alignment(*args, mask=c.mask)),
            what=f"Hebbian stationary state at ηλ = {eta * lam:g}, gain g = K/(Mλ) = "
                 f"{float(theory.hebbian_gain(c.n_cortex, c.n_glomeruli, c.connection_prob, lam)):.3g} (fixed point A_H = "
                 f"{float(theory.hebbian_alignment(*args, mask=c.mask)):.4f}; tuning: at the fixed point)",
            curve=lambda t: theory.hebbian_learning_curve(t, eta, lam, *args, noise=o.noise, mask=c.mask),
            update_alignment=float(theory.hebbian_update_alignment(*args, lam, lr=eta, noise=o.noise, mask=c.mask)))
    return Prediction(alignment=float(theory.sgd_alignment(*args, mask=c.mask, noise=o.noise)),
                      tuning_alignment=float(theory.sgd_tuning_alignment(*args, mask=c.mask, noise=o.noise)),
                      what="SGD optimum (reached when learning has converged)")


@dataclass(frozen=True)
class RewiringReferences:
    """What a rewiring run is measured against (analysable case otherwise, Hebbian rule): ``fixed``, the online
    Hebbian steady state of the same mean in-degree K on a fixed random mask (where rewiring starts from), and
    ``best``, the Hebbian fixed point when every neuron keeps its K best partners (the bound of rewiring by
    correlation, :func:`olfacto.model.theory.hebbian_best_partners_alignment`)."""

    fixed: float
    best: float
    in_degree: float


def rewiring_references(cfg: Config) -> RewiringReferences | None:
    """:class:`RewiringReferences` for a rewiring run whose config is otherwise in the analysable case with the
    Hebbian rule (K = pN, the mean in-degree); None for any other config."""
    from ..config.loading import replace
    from . import theory

    if cfg.rewiring.rule == "none" or cfg.learning.rule != "hebbian":
        return None
    fixed = prediction(replace(cfg, **{"rewiring.rule": "none"}))
    if isinstance(fixed, str):
        return None
    c = cfg.circuit
    k = c.connection_prob * c.n_cortex
    return RewiringReferences(fixed=fixed.alignment, in_degree=k,
                              best=float(theory.hebbian_best_partners_alignment(c.n_cortex, c.n_glomeruli, k)))
