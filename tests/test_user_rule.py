"""A rule brought from Python (issue 23, item 6): ``olfacto.model.rules.register(name, init, update)``.

Pinned: a registered rule that is the Hebbian rule, written by hand in the per-breath form, learns exactly
what the built-in Hebbian rule learns on the per-breath path (the same network, the same breaths); an
unregistered name is still a one-line error; a built-in name cannot be taken."""

from __future__ import annotations

import numpy as np
import pytest

import olfacto
from olfacto.config import ConfigError
from olfacto.model import rules, sparse

from conftest import small

LR, DECAY = 0.01, 1.0


def _hand_written_hebbian():
    def init(w):
        return ()

    def update(w, state, mask, y_pre, y_post):  # ΔW = η (y_post y_preᵀ − λ W), one breath per step (B = 1)
        return LR * (y_post[0][:, None] * sparse.gather(mask, y_pre[0]) - DECAY * w), state

    return init, update


@pytest.fixture
def registered():
    rules.register("hand_hebbian", *_hand_written_hebbian())
    yield
    rules.RULES.pop("hand_hebbian")  # the registry is process-wide: leave it as the other tests expect


def test_a_registered_rule_learns_what_the_same_builtin_rule_learns(registered):
    mine = olfacto.run(small(learning__rule="hand_hebbian", run__plasticity="per_breath"))
    builtin = olfacto.run(small(learning__rule="hebbian", learning__lr=LR, learning__decay=DECAY,
                                run__plasticity="per_breath"))
    np.testing.assert_allclose(mine.weights("L_to_R", dense=True), builtin.weights("L_to_R", dense=True),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(mine.dataset.alignment.values[1:], builtin.dataset.alignment.values[1:], rtol=1e-5)
    assert float(mine.dataset.alignment[-1]) > 0.5  # it did learn
    assert "hand_hebbian" in rules.registered()


def test_unregistered_and_builtin_names():
    with pytest.raises(ConfigError, match="learning.rule"):
        small(learning__rule="never_registered")
    with pytest.raises(ValueError, match="a built-in rule has it"):
        rules.register("sgd", *_hand_written_hebbian())
