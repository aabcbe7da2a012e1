"""The real-odor puzzle's numbers (figure ``real_odors``; the runs: :mod:`olfacto.experiments.real_odors`):
with the measured glomerular odors, Hebbian learning keeps the tuning correlations high while
cross-side odor decoding falls to chance; SGD does not. Why, and what remedies a neuroscientist
would try.

The Hebbian solution learns the odors' second moment S = E[x xᵀ], so the indirect response is the direct
response to the filtered odor S x (:func:`olfacto.model.theory.hebbian_filtered_decoding`); the measured odors
have an effective dimension (tr S)²/tr S² ≈ 3, so every S x points along the same few directions.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .common import SEED, Summary, final

REMEDIES = {
    "hebbian": {},
    "sgd": {"learning.rule": "sgd"},
    "covariance rule": {"learning.rule": "covariance"},
    "concentration-normalised odors": {"odors.bulb": "normalize"},
    "whitened bulb": {"odors.bulb": "whiten"},
    "sparse cortex (kwta)": {"circuit.activation": "kwta"},
}
"""Each variant's config overrides (Hebbian, measured odors, unless overridden)."""


def summary(ds: xr.Dataset) -> Summary:
    """``real_odor_remedies[remedy]`` = its decoding transfer (mean over seeds), with the prediction."""
    values = {str(r): float(ds.decoding_transfer.sel(remedy=r).mean(SEED)) for r in ds.remedy.values}
    th = {str(r): float(v) for r, v in zip(ds.remedy.values, ds.decoding_transfer_theory.values) if np.isfinite(v)}
    return Summary({"real_odor_remedies": values,
                    "odor_effective_dimension": float(ds.effective_dimension.sel(remedy="hebbian"))},
                   {"real_odor_remedies": th},
                   {"real_odor_tuning_alignment": {str(r): float(ds.tuning_alignment.sel(remedy=r).mean(SEED))
                                                   for r in ds.remedy.values}})
