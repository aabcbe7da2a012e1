"""A breath stream given from Python (issue 23 item 6): ``olfacto.run(cfg, stream=olfacto.stream(odors, nostrils))``.

What the model predicts and these tests pin:

- the run's own stream (:func:`olfacto.own_stream`), given back, reproduces the run bit for bit (the odors are the
  environment's draws and the nostril noise is keyed as without a stream) — on the chunked linear path and on the
  per-breath path of a rectified cortex with nostril noise;
- an occluded naris silences its bulb and cortex (linear φ, σ = 0): then y_post y_preᵀ = 0 in both directions and
  the Hebbian rule ΔW = η(y_post y_preᵀ − λW) only decays, so after n occluded breaths W = (1 − ηλ)ⁿ W(t₀);
- a stream of one odor: Hebbian learning converges to W ∝ y_post y_preᵀ on the mask, whose indirect response to
  that odor is exactly proportional to the direct one (per-probe alignment 1);
- a bad stream is a one-line ConfigError naming the field, its value and what is allowed.
"""

from __future__ import annotations

import numpy as np
import pytest

import olfacto
from olfacto import config

# one small network for every test (K = 40 synapses per neuron), so that they share compiled programs
BASE = {"circuit.n_cortex": 100, "circuit.n_glomeruli": 20, "circuit.connection_prob": 0.4, "run.n_breaths": 300,
        "run.record_every": 100, "run.progress": False, "run.n_probe": 20}


def _cfg(**extra):
    return config.from_dict(**{**BASE, **extra})


@pytest.mark.parametrize("extra", [{}, pytest.param({"circuit.activation": "relu", "odors.kind": "mixture",
                                                     "odors.noise": 0.3, "run.plasticity": "per_breath"},
                                                    marks=pytest.mark.slow)], ids=["linear-chunked", "relu-per-breath"])
def test_own_stream_reproduces_the_run_exactly(extra):
    cfg = _cfg(**extra)
    a = olfacto.run(cfg)
    b = olfacto.run(cfg, stream=olfacto.own_stream(cfg))
    np.testing.assert_array_equal(a.dataset.alignment.values, b.dataset.alignment.values)
    for d in ("L_to_R", "R_to_L"):
        np.testing.assert_array_equal(np.asarray(a.weights(d, dense=True)), np.asarray(b.weights(d, dense=True)))


def test_an_occluded_naris_leaves_only_the_decay():
    """Occluding the right naris for the last 200 of 300 breaths: W = (1 − ηλ)²⁰⁰ W(100) in both directions
    (rtol 1e-4: 200 float32 multiplications)."""
    lr, decay = 0.002, 1.0
    cfg = _cfg(**{"learning.lr": lr, "learning.decay": decay})
    own = olfacto.own_stream(cfg)
    nostrils = np.ones((300, 2), np.float32)
    nostrils[100:, 1] = 0.0
    occluded = olfacto.run(cfg, stream=olfacto.stream(own.odors, nostrils))
    before = olfacto.run(config.from_dict(**{**BASE, "learning.lr": lr, "learning.decay": decay, "run.n_breaths": 100}))
    factor = (1 - lr * decay) ** 200
    for d in ("L_to_R", "R_to_L"):
        w0 = before.weights(d, dense=True)
        assert np.abs(w0).max() > 1e-3  # learning before the occlusion made weights to decay
        np.testing.assert_allclose(occluded.weights(d, dense=True), factor * w0, rtol=1e-4, atol=1e-7)


def test_a_stream_of_one_odor_aligns_that_odor_perfectly():
    """One odor x₀ for every breath (σ = 0): the Hebbian fixed point W* = (y_post y_preᵀ ⊙ C)/λ gives, for x₀,
    ŷ_i = y_post,i q_i/λ with q_i = Σ_{j∈C_i} y_pre,j² — proportional to y_post up to the spread of q over neurons
    (relative s.d. ≈ √(2/K) for gaussian y): corr(ŷ, y) over neurons > 0.9. W* is rank one, so a random probe x
    gets ŷ ∝ y_post(x₀) and its alignment is ≈ cos(x₀, x) ~ 1/√M: the recorded alignment stays below 0.5."""
    cfg = _cfg(**{"learning.lr": 0.05})  # 300 breaths: (1 − ηλ)³⁰⁰ ≈ 2·10⁻⁷ of the initial W is left
    own = olfacto.own_stream(cfg)
    x = np.broadcast_to(np.asarray(own.odors[0]), own.odors.shape)
    result = olfacto.run(cfg, stream=olfacto.stream(x))
    probe = np.asarray(own.odors[:1])
    y = np.asarray(result.direct(probe)["R"])[0]
    y_hat = np.asarray(result.indirect(probe)["L_to_R"])[0]
    assert np.corrcoef(y, y_hat)[0, 1] > 0.9
    assert float(result.dataset.alignment[-1]) < 0.5


def test_a_stream_is_shared_by_a_batch_and_kept_by_save_and_load(tmp_path):
    cfgs = [_cfg(seed=s) for s in (0, 1)]
    own = olfacto.own_stream(cfgs[0])
    batch = olfacto.run_batch(cfgs, stream=own)
    alone = olfacto.run(cfgs[1], stream=own)
    np.testing.assert_allclose(np.asarray(batch.dataset.alignment.isel(run=1)), alone.dataset.alignment.values,
                               atol=1e-6)  # vmapped together: float32 rounding only
    alone.save(tmp_path / "s")
    with pytest.raises(olfacto.ConfigError, match="learned on a breath stream given from Python"):
        olfacto.load(tmp_path / "s")
    other = olfacto.stream(np.asarray(own.odors)[::-1].copy())
    with pytest.raises(olfacto.ConfigError, match="another breath stream"):
        olfacto.load(tmp_path / "s", stream=other)
    back = olfacto.load(tmp_path / "s", stream=own)
    np.testing.assert_array_equal(back.weights("L_to_R", dense=True), alone.weights("L_to_R", dense=True))


@pytest.mark.parametrize("make,words", [
    (lambda x: olfacto.stream(x[:, :10]), ["stream.odors: shape (300, 10)", "(T, 20)"]),
    (lambda x: olfacto.stream(x[:299]), ["stream.odors: shape (299, 20)", "T ≥ run.n_breaths=300"]),
    (lambda x: olfacto.stream(np.where(np.arange(300)[:, None] == 7, np.nan, x)), ["stream.odors: holds NaN"]),
    (lambda x: olfacto.stream(x, [1.0, -1.0]), ["stream.nostrils", "≥ 0"]),
    (lambda x: olfacto.stream(x, np.ones((300, 3))), ["stream.nostrils: shape (300, 3)", "(300, 2)"]),
    (lambda x: x, ["stream: expected olfacto.Stream", "ndarray"]),
], ids=["channels", "too-short", "nan", "negative-gain", "nostril-shape", "not-a-stream"])
def test_a_bad_stream_is_one_line(make, words):
    cfg = _cfg()
    x = np.random.default_rng(0).normal(size=(300, 20)).astype(np.float32)
    with pytest.raises(olfacto.ConfigError) as exc:
        olfacto.run(cfg, stream=make(x))
    message = str(exc.value)
    assert "\n" not in message and all(w in message for w in words), message
