"""The simulator against the mean-field theory (docs/theory.md) where the theory applies:
linear φ, gaussian odors and projections, fixed in-degree masks."""

from __future__ import annotations

import numpy as np
import pytest

import olfacto
from olfacto.model import theory

from conftest import small


@pytest.mark.slow  # a science check: make test-slow (CI runs it)
def test_online_hebbian_steady_state_and_learning_curve_match_theory():
    N, M, p, lr, decay, sigma = 500, 20, 0.08, 0.002, 1.0, 0.3  # K = 40, τ = 1/(ηλ) = 500 breaths
    cfg = small(circuit__n_cortex=N, circuit__n_glomeruli=M, circuit__connection_prob=p,
                circuit__mask="fixed_indegree", odors__noise=sigma, learning__lr=lr, learning__decay=decay,
                run__n_breaths=6000, run__record_every=250, run__n_probe=100)
    ds = olfacto.run(cfg).dataset
    stationary = float(ds.alignment.sel(breath=slice(3000, None)).mean())
    predicted = theory.hebbian_steady_state_alignment(lr, decay, N, M, p, noise=sigma, mask="fixed_indegree")
    # measured 0.8017 vs 0.7999: finite-N bias and probe/time averaging are ≲ 0.005
    assert stationary == pytest.approx(predicted, abs=0.01)
    # the learning curve, early on (t = 250, 500 breaths: where accumulation still limits alignment)
    for t in (250, 500):
        curve = theory.hebbian_learning_curve(t, lr, decay, N, M, p, noise=sigma, mask="fixed_indegree")
        assert float(ds.alignment.sel(breath=t)) == pytest.approx(curve, abs=0.01)


@pytest.mark.slow  # a science check: make test-slow (CI runs it)
def test_sgd_optimum_alignment_below_full_rank_matches_theory():
    N, M, p = 400, 40, 0.05  # K = 20 < M: alignment √(K/M) = 0.707
    cfg = small(circuit__n_cortex=N, circuit__n_glomeruli=M, circuit__connection_prob=p,
                circuit__mask="fixed_indegree", learning__rule="sgd", learning__lr=0.0025,
                run__n_breaths=8000, run__record_every=1000, run__n_probe=100)
    ds = olfacto.run(cfg).dataset
    final = float(ds.alignment.sel(breath=slice(4000, None)).mean())
    predicted = theory.sgd_alignment(N, M, p, mask="fixed_indegree")
    assert predicted == pytest.approx(np.sqrt(20 / 40))
    # online SGD fluctuates around the optimum with a deficit ∝ η (measured 0.040, 0.021, 0.012
    # at η = 0.01, 0.005, 0.0025): 0.012 here, plus finite N → 0.02
    assert final == pytest.approx(predicted, abs=0.02)
    assert final < predicted
