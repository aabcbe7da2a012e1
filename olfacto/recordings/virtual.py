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

:func:`record_network` returns a Dataset in the layout of :func:`olfacto.recordings.ipsicontra.load`
(``response(neuron, odor, side, trial)``, ``blank(neuron, side, trial)``), so the same
:mod:`olfacto.recordings.protocol` functions measure model and data (:func:`measures_network`).
"""

from __future__ import annotations

import jax
import numpy as np
import xarray as xr

from ..model import circuit, network, odors
from . import protocol

STREAM = 0x1F5C  # folded into the run's seed: the protocol's draws are independent of learning's

MEASURES = ("fraction_bilateral", "fraction_bilateral_positive", "tuning_correlation_mean", "tuning_correlation_median", "decoding_transfer",
            "decoding_within", "laterality_decoding")
"""The experiment's scalar measures recorded for a model run, as ``protocol_<name>``."""


def record_network(spec, world, params, state, cfg, protocol_section=None) -> xr.Dataset:
    """The simulated recording of one run's network (unbatched ``world``, ``params``, ``state`` of
    :mod:`olfacto.model.network`) under ``cfg``'s ``protocol`` section, or ``protocol_section`` (a
    :class:`olfacto.config.Protocol`: the same learned network recorded with other settings)."""
    pc = protocol_section or cfg.protocol
    c = pc.cortex
    o = "L" if c == "R" else "R"
    d = f"{o}_to_{c}"
    n_o, n_t, m = pc.n_odors, pc.n_trials, cfg.circuit.n_glomeruli
    key = jax.random.fold_in(jax.random.key(cfg.seed), STREAM)
    k_odor, k_in, k_blank, k_resp, k_pick = jax.random.split(key, 5)
    x = odors.sample_odors(k_odor, world.env, params.odors, n_o)  # (O, M)
    sigma = params.odors.noise
    trials = x[None, :, None, :] + sigma * jax.random.normal(k_in, (2, n_o, n_t, m))  # (side, O, T, M)
    blank = sigma * jax.random.normal(k_blank, (2, n_t, m))  # (side, T, M)
    af = params.circuit.active_fraction
    kind = world.circuit.activation

    def respond(inputs):  # (side, …, M) → (side, …, N): ipsi = direct of c, contra = received from o
        ipsi = circuit.direct(world.circuit.J[c], inputs[0], kind, af)
        y_o = circuit.direct(world.circuit.J[o], inputs[1], kind, af)
        flat = y_o.reshape(-1, y_o.shape[-1])
        contra = network.received(spec, world, params, state, {o: flat}, (d,))[d]
        return np.stack([np.asarray(ipsi, np.float64), np.asarray(contra, np.float64).reshape(ipsi.shape)])

    r = respond(trials)  # (side, O, T, N)
    b = respond(blank)  # (side, T, N)
    scale = float(np.std(r[0].mean(axis=1)))  # s.d. of the ipsilateral trial means over odors and neurons
    noise = np.asarray(jax.random.normal(k_resp, (r.size + b.size,)), np.float64) * pc.trial_noise * scale
    r = r + noise[:r.size].reshape(r.shape)
    b = b + noise[r.size:].reshape(b.shape)
    n = r.shape[-1]
    keep = np.arange(n) if not pc.n_neurons or pc.n_neurons >= n else np.sort(
        np.asarray(jax.random.choice(k_pick, n, (pc.n_neurons,), replace=False)))
    response = np.transpose(r[..., keep], (3, 1, 0, 2))  # (neuron, odor, side, trial)
    blank_r = np.transpose(b[..., keep], (2, 0, 1))  # (neuron, side, trial)
    return xr.Dataset(
        {"response": (("neuron", "odor", "side", "trial"), response,
                      {"long_name": "simulated response (ipsi: direct, contra: through the learned projection)"}),
         "blank": (("neuron", "side", "trial"), blank_r, {"long_name": "simulated response to the blank"})},
        coords={"neuron": keep, "odor": np.arange(n_o), "side": ["ipsi", "contra"], "trial": np.arange(n_t)},
        attrs={"source": f"olfacto model, cortex {c}, seed {cfg.seed}", "side_convention": "0 ipsi, 1 contra"})


def measures_network(spec, world, params, state, cfg, protocol_section=None) -> dict[str, float]:
    """The experiment's scalar measures (:func:`olfacto.recordings.protocol.summary`) on :func:`record_network`."""
    ds = record_network(spec, world, params, state, cfg, protocol_section)
    values = protocol.summary(ds["response"].values, ds["blank"].values)
    return {name: float(values[name]) for name in MEASURES}


def record(result, run: int = 0, protocol_section=None) -> xr.Dataset:
    """:func:`record_network` for run ``run`` of a :class:`olfacto.engine.result.Result`."""
    world, state, params = result.one(run)
    return record_network(result.spec, world, params, state, result.configs[run], protocol_section)


def measures(result, run: int = 0, protocol_section=None) -> dict[str, float]:
    """:func:`measures_network` for run ``run`` of a :class:`olfacto.engine.result.Result`."""
    world, state, params = result.one(run)
    return measures_network(result.spec, world, params, state, result.configs[run], protocol_section)


LONG_NAMES = {f"protocol_{name}": f"{protocol.MEASURES[name].long_name}, model under the recordings' protocol"
              for name in MEASURES}
