"""The model under the recordings' protocol: a simulated ipsi/contra experiment on a learned network.

The experiment (``../shared/data/IpsiContra``, :mod:`olfacto.recordings.ipsicontra`) records neurons of one
cortex while each of 15 odors and a blank is given to one nostril at a time, 7 trials each. The
model's counterpart, for the recorded cortex c (``protocol.cortex``) and the other side o:

- odors x_1 … x_O from the run's own odor environment (``protocol.n_odors``), with a key of their
  own so they are the same for every run of a seed;
- trial k at the ipsilateral nostril: x + σ ξ (fresh nostril noise σ = ``odors.noise``); the
  response is the direct response y_c = φ(J_c (x + σξ));
- trial k at the contralateral nostril: the other bulb and cortex respond, y_o = φ(J_o (x + σξ')),
  and reach c through the indirect pathway (:func:`olfacto.model.network.received`): φ(ŷ) with
  ŷ = (W_{o→c} ⊙ C) y_o — or, with recurrence, the refined z_T (which already applies φ);
- the blank: x = 0 (nostril noise only), on each side;
- response noise: every trial's response gets ``trial_noise`` × s·ε (ε standard normal), s the
  standard deviation of the ipsilateral trial-mean responses over neurons and odors;
- ``protocol.n_neurons`` recorded neurons drawn at random (0: all).

Model terms the recordings ask for (issue 19), each off at its default (then the record is bit for bit
the one without them), applied in this order; each draws from a key of its own folded into the
protocol's key (:data:`GAIN`, :data:`MIX`, :data:`SIMILARITY`), so the draws above are unchanged:

- ``odor_similarity`` (none): the odors drawn with similarity S across glomeruli, x_{·m} = L z_{·m},
  L Lᵀ = S (:mod:`olfacto.recordings.similarity`), then the run's bulb transform; instead of the
  environment's odors;
- ``alpha_mix`` α (1): the contralateral response through W' = α W_{o→c} + (1 − α) R, R random on the
  same mask, R_ik = ρ ξ_ik with ξ ~ N(0, 1) and ρ the r.m.s. of W_{o→c} over its synapses
  (:func:`mixed_weights`); the α-mix of Grimaud et al.'s model, α = 0 random weights only;
- ``sparseness`` s (1): the responses of side k thresholded at θ_k, the (1 − s) quantile over
  (neuron, odor) of side k's trial-mean responses: a (neuron, odor) pair whose trial mean exceeds θ_k
  keeps its trials, less θ_k; every other is 0 — so a fraction s of them responds (:func:`sparsify`);
- ``gain_spread`` σ_g (0): each neuron's responses (both sides, the blank) times its gain
  g_i = exp(σ_g ζ_i − σ_g²/2), ζ_i ~ N(0, 1): log g_i ~ N(−σ_g²/2, σ_g²), E[g] = 1 (:func:`gains`);
- ``noise_model`` (gaussian): ``poisson`` gives neuron i the trial-noise s.d.
  ``trial_noise`` · s · √(m_i / m̄), m_i its mean |trial-mean response| over odors and sides and m̄ the
  mean of m_i over neurons, so the noise variance averaged over neurons is (``trial_noise`` · s)², as in
  the gaussian model, and the s.d. tracks each neuron's response size (:func:`noise_factors`); a
  silent neuron (m_i = 0) gets none. s is computed after the threshold and the gains.

:func:`record_network` returns a Dataset in the layout of :func:`olfacto.recordings.ipsicontra.load`
(``response(neuron, odor, side, trial)``, ``blank(neuron, side, trial)``), so the same
:mod:`olfacto.recordings.protocol` functions measure model and data (:func:`measures_network`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ..model import circuit, network, odors
from . import glomeruli, protocol, similarity

STREAM = 0x1F5C  # folded into the run's seed: the protocol's draws are independent of learning's
GAIN, MIX, SIMILARITY = 1, 2, 3
"""Folded into the protocol's key for the gains, the random weights of the α-mix and the similar odors."""

MEASURES = ("fraction_bilateral", "fraction_bilateral_positive", "tuning_correlation_mean", "tuning_correlation_median", "decoding_transfer",
            "decoding_within", "laterality_decoding")
"""The experiment's scalar measures recorded for a model run, as ``protocol_<name>``."""


def record_network(spec, world, params, state, cfg, protocol_section=None) -> xr.Dataset:
    """The simulated recording of one run's network (unbatched ``world``, ``params``, ``state`` of
    :mod:`olfacto.model.network`) under ``cfg``'s ``protocol`` section, or ``protocol_section`` (a
    :class:`olfacto.config.Protocol`: the same learned network recorded with other settings)."""
    pc = protocol_section or cfg.protocol
    return noisy(noiseless(spec, world, params, state, cfg, pc), pc)


@dataclass(frozen=True)
class Noiseless:
    """A recording before its trial noise and its choice of neurons (:func:`noiseless`): what the protocol
    sections that differ only in ``trial_noise``, ``n_neurons`` and ``noise_model`` share (:func:`noiseless_key`)."""

    r: np.ndarray  # (side, O, T, N): the trials' responses, thresholded and scaled by the gains
    b: np.ndarray  # (side, T, N): the blank's
    scale: float  # s, the s.d. of the ipsilateral trial means over odors and neurons
    z: np.ndarray  # the trial noise's standard normal draws, r.size + b.size
    k_pick: jax.Array  # the key of the recorded neurons' draw
    source: str


def noiseless_key(pc) -> Any:
    """The protocol section as far as :func:`noiseless` reads it (trial noise, neurons and noise model left out)."""
    return pc.model_copy(update={"trial_noise": 0.0, "n_neurons": 0, "noise_model": "gaussian"})


def noiseless(spec, world, params, state, cfg, pc) -> Noiseless:
    """The first part of :func:`record_network`: the responses to the protocol's odor and blank trials."""
    c = pc.cortex
    o = "L" if c == "R" else "R"
    d = f"{o}_to_{c}"
    n_o, n_t, m = pc.n_odors, pc.n_trials, cfg.circuit.n_glomeruli
    key = jax.random.fold_in(jax.random.key(cfg.seed), STREAM)
    k_odor, k_in, k_blank, k_resp, k_pick = jax.random.split(key, 5)
    s_matrix = glomeruli.protocol_similarity(pc, cfg.odors)
    if s_matrix is None:
        x = odors.sample_odors(k_odor, world.env, params.odors, n_o)  # (O, M)
    else:
        x = odors.bulb_transform(similarity.draw(jax.random.fold_in(key, SIMILARITY), s_matrix, m), world.env)
    if pc.alpha_mix != 1.0:
        state = mixed(world, state, d, pc.alpha_mix, jax.random.fold_in(key, MIX))
    sigma = params.odors.noise
    trials = x[None, :, None, :] + sigma * jax.random.normal(k_in, (2, n_o, n_t, m))  # (side, O, T, M)
    blank = sigma * jax.random.normal(k_blank, (2, n_t, m))  # (side, T, M)
    r = np.asarray(_respond(spec, world, params, state, trials, d), np.float64)  # (side, O, T, N)
    b = np.asarray(_respond(spec, world, params, state, blank, d), np.float64)  # (side, T, N)
    if pc.sparseness < 1.0:
        r, b = sparsify(r, b, pc.sparseness)
    if pc.gain_spread > 0.0:
        g = gains(jax.random.fold_in(key, GAIN), r.shape[-1], pc.gain_spread)
        r, b = r * g, b * g
    scale = float(np.std(r[0].mean(axis=1)))  # s.d. of the ipsilateral trial means over odors and neurons
    z = np.asarray(jax.random.normal(k_resp, (r.size + b.size,)), np.float64)
    return Noiseless(r, b, scale, z, k_pick, f"olfacto model, cortex {c}, seed {cfg.seed}")


@functools.partial(jax.jit, static_argnums=(0, 5))
def _respond(spec, world, params, state, inputs: jax.Array, direction: str) -> jax.Array:
    """The protocol's responses of the recorded cortex c (the post side of ``direction``, o → c) to ``inputs``
    (side, …, M) → (side, …, N): ipsi the direct response φ(J_c x), contra o's direct response received through
    the indirect pathway.

    One compiled program per Spec, direction and shape (JAX's cache, emptied with the others by
    :func:`olfacto.engine.programs.clear`): run eagerly, the model fit's 93 records compiled the sparse
    product's slot loop 186 times (19 s of its 161)."""
    c, o = circuit.post(direction), circuit.pre(direction)
    af, kind = params.circuit.active_fraction, world.circuit.activation
    ipsi = circuit.direct(world.circuit.J[c], inputs[0], kind, af)
    y_o = circuit.direct(world.circuit.J[o], inputs[1], kind, af)
    contra = network.received(spec, world, params, state, {o: y_o.reshape(-1, y_o.shape[-1])}, (direction,))[direction]
    return jnp.stack([ipsi, contra.reshape(ipsi.shape)])


def noisy(clean: Noiseless, pc) -> xr.Dataset:
    """The second part of :func:`record_network`: ``clean`` with ``pc``'s trial noise, of its recorded neurons."""
    r, b, scale = clean.r, clean.b, clean.scale
    noise = clean.z * pc.trial_noise * scale
    noise_r, noise_b = noise[:r.size].reshape(r.shape), noise[r.size:].reshape(b.shape)
    if pc.noise_model == "poisson":
        f = noise_factors(r)
        noise_r, noise_b = noise_r * f, noise_b * f
    r = r + noise_r
    b = b + noise_b
    n = r.shape[-1]
    keep = np.arange(n) if not pc.n_neurons or pc.n_neurons >= n else np.sort(
        np.asarray(jax.random.choice(clean.k_pick, n, (pc.n_neurons,), replace=False)))
    response = np.transpose(r[..., keep], (3, 1, 0, 2))  # (neuron, odor, side, trial)
    blank_r = np.transpose(b[..., keep], (2, 0, 1))  # (neuron, side, trial)
    return xr.Dataset(
        {"response": (("neuron", "odor", "side", "trial"), response,
                      {"long_name": "simulated response (ipsi: direct, contra: through the learned projection)"}),
         "blank": (("neuron", "side", "trial"), blank_r, {"long_name": "simulated response to the blank"})},
        coords={"neuron": keep, "odor": np.arange(r.shape[1]), "side": ["ipsi", "contra"],
                "trial": np.arange(r.shape[2])},
        attrs={"source": clean.source, "side_convention": "0 ipsi, 1 contra"})


def gains(key: jax.Array, n: int, spread: float) -> np.ndarray:
    """Per-neuron response gains (N,): g_i = exp(σ_g ζ_i − σ_g²/2), ζ_i ~ N(0, 1), so log g_i ~
    N(−σ_g²/2, σ_g²) and E[g_i] = 1 (σ_g = ``spread``)."""
    zeta = np.asarray(jax.random.normal(key, (n,)), np.float64)
    return np.exp(spread * zeta - spread**2 / 2)


def mixed_weights(key: jax.Array, weights: jax.Array, valid: jax.Array, alpha: float) -> jax.Array:
    """The α-mix of learned and random weights on one mask (slot form): W' = α W + (1 − α) R, with
    R = ρ ξ ⊙ valid, ξ ~ N(0, 1), and ρ = √(Σ_synapses W² / #synapses) the r.m.s. of W over the mask's
    synapses (R matches W's scale; ρ = 0 when W is 0, e.g. before any learning)."""
    on = valid.astype(weights.dtype)
    rms = jnp.sqrt(jnp.sum(weights**2 * on) / jnp.maximum(jnp.sum(on), 1.0))
    return alpha * weights + (1.0 - alpha) * rms * jax.random.normal(key, weights.shape, weights.dtype) * on


def mixed(world, state, direction: str, alpha: float, key: jax.Array):
    """``state`` with the projection's weights of ``direction`` replaced by :func:`mixed_weights` (its mask:
    the run's, fixed or rewired); every other learned part (the recurrence) as learned."""
    part = state.parts[network.PROJECTION.name]
    valid = network.masks(world, state)[direction].valid
    weights = {**part.weights, direction: mixed_weights(key, part.weights[direction], valid, alpha)}
    return state.replace(parts={**state.parts, network.PROJECTION.name: part.replace(weights=weights)})


def sparsify(r: np.ndarray, b: np.ndarray, sparseness: float) -> tuple[np.ndarray, np.ndarray]:
    """Responses r (side, O, T, N) and blank b (side, T, N) thresholded per side k at θ_k, the (1 − s)
    quantile over (odor, neuron) of side k's trial means r̄_k: a (neuron, odor) pair — or a neuron's blank —
    whose trial mean exceeds θ_k responds, its trials y − θ_k; any other is 0. So a fraction s
    (``sparseness``) of the (neuron, odor) trial means is above 0 (up to 1/(N·O)), and each responding
    trial mean is r̄ − θ_k > 0: with identical trials (no nostril noise) this is max(y − θ_k, 0)."""
    theta = np.quantile(r.mean(axis=2), 1.0 - sparseness, axis=(1, 2))  # (side,)
    shifted_r, shifted_b = r - theta[:, None, None, None], b - theta[:, None, None]
    on_r = shifted_r.mean(axis=2, keepdims=True) > 0
    on_b = shifted_b.mean(axis=1, keepdims=True) > 0
    return np.where(on_r, shifted_r, 0.0), np.where(on_b, shifted_b, 0.0)


def noise_factors(r: np.ndarray) -> np.ndarray:
    """Per-neuron factors (N,) of the trial-noise s.d. under ``noise_model: poisson``: √(m_i / m̄), m_i the
    mean over sides and odors of neuron i's |trial-mean response| (r is (side, O, T, N)) and m̄ its mean
    over neurons, so mean_i factor_i² = 1 (all ones when every neuron is silent)."""
    m = np.abs(r.mean(axis=2)).mean(axis=(0, 1))
    mean = m.mean()
    return np.sqrt(m / mean) if mean > 0 else np.ones_like(m)


def measures_network(spec, world, params, state, cfg, protocol_section=None) -> dict[str, float]:
    """The experiment's scalar measures (:func:`olfacto.recordings.protocol.summary`) on :func:`record_network`."""
    ds = record_network(spec, world, params, state, cfg, protocol_section)
    values = protocol.summary(ds["response"].values, ds["blank"].values)
    return {name: float(values[name]) for name in MEASURES}


def record(result, run: int = 0, protocol_section=None) -> xr.Dataset:
    """:func:`record_network` for run ``run`` of a :class:`olfacto.engine.result.Result`."""
    world, state, params = result.one(run)
    return record_network(result.spec, world, params, state, result.configs[run], protocol_section)


def records(result, run: int, sections: list) -> list[xr.Dataset]:
    """:func:`record` of run ``run`` under each protocol section of ``sections``, the responses computed once for
    the sections that differ only in ``trial_noise``, ``n_neurons`` and ``noise_model`` (:func:`noiseless_key`):
    the same recordings, bit for bit (the model fit records each run at 9 noise levels × 2 regions)."""
    world, state, params = result.one(run)
    cfg, shared = result.configs[run], {}
    out = []
    for pc in sections:
        key = noiseless_key(pc)
        if key not in shared:
            shared[key] = noiseless(result.spec, world, params, state, cfg, pc)
        out.append(noisy(shared[key], pc))
    return out


def measures(result, run: int = 0, protocol_section=None) -> dict[str, float]:
    """:func:`measures_network` for run ``run`` of a :class:`olfacto.engine.result.Result`."""
    world, state, params = result.one(run)
    return measures_network(result.spec, world, params, state, result.configs[run], protocol_section)


LONG_NAMES = {f"protocol_{name}": f"{protocol.MEASURES[name].long_name}, model under the recordings' protocol"
              for name in MEASURES}
