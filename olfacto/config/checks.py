"""What is checked before any work, and what is said when a run fails anyway.

A config can pass field-by-field validation and still be unable to produce a
measurement: the measures correlate across neurons (N ≥ 2 needed), the
projections need synapses (a Bernoulli mask expects p·N² of them per
direction), kWTA keeps f·N neurons active, a nasal cycle must be slower than
the breaths that sample it (T ≥ 2), and every parameter is a float32 or int32
on the device. :func:`raise_for` turns what cannot work into a
:class:`~olfacto.config.ConfigError` naming the key; :func:`warnings_for` lists
what will run but is probably not what was meant.

:func:`check_outputs` makes sure every output path can be written before a
simulation starts. (The measured odors are read up front by
:func:`olfacto.recordings.glomeruli.check_library`; what a component advises after a
divergence is its own, :mod:`olfacto.model.network`.)
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from pydantic import BaseModel

from .schema import Config, ConfigError

INT32_MAX = 2**31 - 1
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)


def _fields(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(dotted key, value, field info) of every leaf field."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from _fields(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value, info


def _positive(info) -> bool:
    return any(getattr(m, "gt", None) is not None for m in info.metadata)


def raise_for(cfg: Config) -> None:
    """Raise :class:`ConfigError` for settings that cannot produce a measurement or do not fit the device types."""
    for key, value, info in _fields(cfg):
        if isinstance(value, bool) or key == "seed":
            continue
        if isinstance(value, int) and value > INT32_MAX:
            raise ConfigError(f"{key}={value}: must be ≤ {INT32_MAX} (an int32 on the device)")
        if isinstance(value, float):
            if abs(value) > FLOAT32_MAX:
                raise ConfigError(f"{key}={value!r}: must be ≤ {FLOAT32_MAX:.4g} (a float32 on the device)")
            if _positive(info) and value < FLOAT32_TINY:
                raise ConfigError(f"{key}={value!r}: rounds to 0 as a float32; must be ≥ {FLOAT32_TINY:.3g}")
            _check_float32_bounds(key, value, info)
    c, o = cfg.circuit, cfg.odors
    n = c.n_cortex
    if n < 2:
        raise ConfigError(f"circuit.n_cortex={n}: the measures correlate responses across neurons; need ≥ 2")
    if c.mask == "bernoulli" and c.connection_prob * n * n < 1:
        raise ConfigError(f"circuit.connection_prob={c.connection_prob!r}: a Bernoulli mask expects p·N² = "
                          f"{c.connection_prob * n * n:.3g} synapses per direction at circuit.n_cortex={n}; "
                          "need ≥ 1 (raise p or N, or use circuit.mask=fixed_indegree)")
    if c.activation == "kwta" and c.active_fraction * n < 1:
        raise ConfigError(f"circuit.active_fraction={c.active_fraction!r}: kWTA keeps f·N = "
                          f"{c.active_fraction * n:.3g} neurons active at circuit.n_cortex={n}; need f·N ≥ 1")
    r = cfg.recurrence
    if r.connection_prob > 0 and r.mask == "bernoulli" and r.connection_prob * n * (n - 1) < 1:
        raise ConfigError(f"recurrence.connection_prob={r.connection_prob!r}: a Bernoulli recurrent mask expects "
                          f"p_rec·N(N−1) = {r.connection_prob * n * (n - 1):.3g} synapses per cortex at "
                          f"circuit.n_cortex={n}; need ≥ 1 (or 0 for no recurrence)")
    pc = cfg.protocol
    if pc.n_neurons > n:
        # virtual.record_network would record every neuron: two settings above N would be one silently
        raise ConfigError(f"protocol.n_neurons={pc.n_neurons}: more recorded neurons than the cortex has "
                          f"(circuit.n_cortex={n}); allowed: 0 (every neuron) … {n}")
    cycle = o.nasal_cycle
    if cycle.amplitude > 0 and cycle.period < 2:
        raise ConfigError(f"odors.nasal_cycle.period={cycle.period!r}: a nasal cycle shorter than 2 breaths is "
                          "aliased by the breaths that sample it; need ≥ 2 (the nasal cycle is slow: hundreds)")
    if o.kind == "sparse":
        silent = (1 - o.sparsity) ** cfg.circuit.n_glomeruli
        if cfg.run.n_probe * (1 - silent) < 1:
            raise ConfigError(f"odors.sparsity={o.sparsity!r}: with circuit.n_glomeruli={c.n_glomeruli} almost "
                              f"every odor is silent (expected non-silent probes {cfg.run.n_probe * (1 - silent):.2g});"
                              " need s·M of order 1 or more")


def _check_float32_bounds(key: str, value: float, info) -> None:
    """A bound of the schema must hold for the float32 the device computes with, not only for the Python float
    (``0.99999999 < 1`` but ``float32(0.99999999) == 1.0``, past a ``< 1`` bound)."""
    device = float(np.float32(value))
    for m in info.metadata:
        for name, fails in (("lt", lambda b: device >= b), ("gt", lambda b: device <= b),
                            ("le", lambda b: device > b), ("ge", lambda b: device < b)):
            bound = getattr(m, name, None)
            if bound is not None and fails(bound):
                sign = {"lt": "<", "gt": ">", "le": "≤", "ge": "≥"}[name]
                raise ConfigError(f"{key}={value!r}: is {device!r} as a float32, which is not {sign} {bound}; "
                                  f"allowed: a value whose float32 is {sign} {bound}")


def warnings_for(cfg: Config) -> list[str]:
    """Settings that run but probably do not measure what was meant (one line each, naming the key)."""
    c, o = cfg.circuit, cfg.odors
    n, p = c.n_cortex, c.connection_prob
    out = []
    if c.mask == "bernoulli" and p * n < 1:
        out.append(f"circuit.connection_prob={p!r}: p·N = {p * n:.3g} < 1 synapse per neuron; most neurons of "
                   "each cortex receive no inter-hemispheric input")
    if c.mask == "fixed_indegree" and round(p * n) < 1:
        out.append(f"circuit.connection_prob={p!r}: K = round(p·N) = 0 at circuit.n_cortex={n}; raised to K = 1")
    if o.kind == "sparse" and o.sparsity * c.n_glomeruli < 1:
        out.append(f"odors.sparsity={o.sparsity!r}: s·M = {o.sparsity * c.n_glomeruli:.3g} < 1 active channel per "
                   "odor; most breaths are silent")
    r = cfg.recurrence
    if r.connection_prob > 0 and r.mask == "fixed_indegree" and round(r.connection_prob * (n - 1)) < 1:
        out.append(f"recurrence.connection_prob={r.connection_prob!r}: K_rec = round(p_rec·(N−1)) = 0 at "
                   f"circuit.n_cortex={n}; raised to K_rec = 1 recurrent synapse per neuron")
    w = cfg.rewiring
    if w.rule != "none":
        k = max(1, round(p * n))
        if round(w.fraction * k) < 1:
            out.append(f"rewiring.fraction={w.fraction!r}: prunes round(ζ·K) = 0 synapses per event at K ≈ {k}; "
                       "nothing rewires (raise rewiring.fraction to ≥ 0.5/K)")
        if w.every >= cfg.run.n_breaths:  # an event falls between two chunks: none at the last breath
            out.append(f"rewiring.every={w.every}: not fewer breaths than run.n_breaths={cfg.run.n_breaths}; no event "
                       "happens (none at the last breath: no learning would follow it)")
    pc = cfg.protocol
    if pc.enabled and o.kind == "mixture" and pc.n_odors > o.n_base and pc.odor_similarity == "none":
        out.append(f"protocol.n_odors={pc.n_odors}: drawn from odors.n_base={o.n_base} base odors, so the "
                   f"protocol's odors span only {o.n_base} dimensions (mixtures of the same few odors)")
    if o.nasal_cycle.amplitude > 0 and 2 <= o.nasal_cycle.period < 10:
        out.append(f"odors.nasal_cycle.period={o.nasal_cycle.period!r}: a nasal cycle of a few breaths alternates "
                   "the nostrils almost every breath (the physiological cycle is hundreds of breaths)")
    return out


def _inert_reason(cfg: Config, key: str) -> str | None:
    """Why config key ``key`` has no effect under ``cfg`` (its section disabled, another rule or kind), else None."""
    c, o, lrn, r, pc = cfg.circuit, cfg.odors, cfg.learning, cfg.recurrence, cfg.protocol
    section, _, leaf = key.partition(".")
    if section == "recurrence" and leaf != "connection_prob" and r.connection_prob == 0:
        return "recurrence.connection_prob=0 (no recurrence)"
    if section == "protocol" and leaf != "enabled" and not pc.enabled:
        return "protocol.enabled=false"
    if section == "rewiring" and leaf != "rule" and cfg.rewiring.rule == "none":
        return "rewiring.rule=none (fixed masks)"
    depends = {
        "learning.momentum": (lrn.rule == "sgd" and lrn.optimizer == "momentum",
                              f"learning.rule={lrn.rule}, learning.optimizer={lrn.optimizer} (only sgd with momentum)"),
        "learning.optimizer": (lrn.rule == "sgd", f"learning.rule={lrn.rule} (only sgd has an optimizer)"),
        "learning.mean_rate": (lrn.rule == "covariance", f"learning.rule={lrn.rule} (only covariance)"),
        "circuit.projection_density": (c.projection == "sparse", f"circuit.projection={c.projection}"),
        "circuit.active_fraction": (c.activation == "kwta", f"circuit.activation={c.activation}"),
        "odors.sparsity": (o.kind in ("sparse", "mixture"), f"odors.kind={o.kind}"),
        "odors.n_base": (o.kind == "mixture", f"odors.kind={o.kind}"),
        "odors.n_components": (o.kind in ("mixture", "dataset"), f"odors.kind={o.kind}"),
        "odors.nasal_cycle.period": (o.nasal_cycle.amplitude > 0, "odors.nasal_cycle.amplitude=0"),
        **{f"odors.{k}": (o.kind == "dataset" or (pc.enabled and pc.odor_similarity == "measured"),
                          f"odors.kind={o.kind}")  # read for the library, or the protocol's measured similarity
           for k in ("data_path", "animal", "hemibulb", "threshold", "drop_blank")},
        "protocol.noise_model": (pc.trial_noise > 0, "protocol.trial_noise=0 (no trial noise)"),
        "rewiring.score_breaths": (cfg.rewiring.rule in ("hebbian", "gradient"),
                            f"rewiring.rule={cfg.rewiring.rule} (only hebbian and gradient score over breaths)"),
    }
    used, why = depends.get(key, (True, ""))
    return None if used else why


def inert_warnings(cfg: Config, keys: list[str], option: str = "--set") -> list[str]:
    """One warning per key given on the command line (``--set``, ``--grid``) that has no effect under ``cfg``:
    a grid over such a key computes the same point several times, a ``--set`` of it changes nothing."""
    out = []
    for key in keys:
        why = _inert_reason(cfg, key)
        if why:
            out.append(f"{option} {key}: has no effect with {why}")
    return out


def nan_warnings(final: dict[str, float]) -> list[str]:
    """Measures that are not finite at the last record of a run that did not diverge."""
    bad = [name for name, value in final.items() if not math.isfinite(value)]
    if not bad:
        return []
    return [f"{', '.join(bad)} not finite at the last record: the settings produce no measurement of "
            f"{'it' if len(bad) == 1 else 'them'} (silent responses or no synapses?)"]


# -- outputs and inputs ------------------------------------------------------------------


def check_outputs(folder: str | Path, files: list[str] = (), folders: list[str] = (), option: str = "--out") -> Path:
    """Make sure ``folder`` is (or can be made) a writable folder, that each of ``files`` in it can
    be a file and each of ``folders`` a folder; create ``folder``. Raises ConfigError naming ``option``."""
    folder = Path(folder)
    where = f"{option} {str(folder)!r}"
    for parent in [folder, *folder.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{where}: {str(parent)!r} is a file; expected a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".olfacto-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot write there ({exc.strerror or exc})") from None
    for name in files:
        if (folder / name).is_dir():
            raise ConfigError(f"{where}: {str(folder / name)!r} is a folder; the result file would go there")
    for name in folders:
        if (folder / name).exists() and not (folder / name).is_dir():
            raise ConfigError(f"{where}: {str(folder / name)!r} is a file; expected a folder or nothing")
    return folder
