"""The config's schema: typed sections whose keys declare their role for the simulator.

A config is a tree of pydantic models (``extra="forbid"``, so an unknown key is
an error, not a silent no-op). The names are those of MODEL.md: ``n_cortex`` is
N, ``connection_prob`` is p, ``lr`` is η, ``decay`` is λ, ``noise`` is σ, …

Every problem with user input is raised as :class:`ConfigError`, whose message
is one line naming the key, the value and what is allowed; the CLI prints it and
exits with status 2. Reading and overriding: :mod:`olfacto.config.loading`.
"""

from __future__ import annotations

import re
import typing
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ConfigError(ValueError):
    """Invalid user input (config file, key, type or value). One-line message."""


# -- roles: how the simulator uses a key, marked once where the key is declared --------
#
# ``static``  fixes array shapes or program structure: part of the compiled Spec, so a new
#             value compiles a new program (N, M, rule, activation, …);
# ``traced``  a scalar leaf of the traced Params: vmapped across a sweep, never recompiles
#             (η, λ, σ, p, …);
# ``data``    selects input data read on the host (the measured odor library): not compiled,
#             but runs batched together must share it;
# ``host``    used by the Python driver only (n_breaths, progress);
# ``seed``    the seed: vmapped like a traced key, but an integer that keys the PRNG.
ROLES = ("static", "traced", "data", "host", "seed")


def _role(role: str):
    def field(default: Any = ..., inherit: str | None = None, **kw: Any) -> Any:
        # inherit: a key whose value this one takes when left null (resolved in params.params_of)
        extra = {"role": role} if inherit is None else {"role": role, "inherit": inherit}
        return Field(default, json_schema_extra=extra, **kw)

    field.__name__ = role
    field.__doc__ = f"A pydantic Field whose role for the simulator is {role!r} (see ROLES)."
    return field


static, traced, data, host = (_role(r) for r in ("static", "traced", "data", "host"))


class _Section(BaseModel):
    # strict: no bool for a number, no string for a number or a bool (an int is still a valid float)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


class NasalCycle(_Section):
    """Slow alternation of the nostrils' airflow: g_{L,R}(t) = 1 ± a·sin(2πt/T)."""

    amplitude: float = traced(0.0, ge=0.0, le=1.0, description="a (0: no nasal cycle)")
    period: float = traced(1000.0, gt=0.0, description="T_cycle, in breaths")


class Circuit(_Section):
    """Bulbs, bulb→cortex projections J, activation φ, inter-hemispheric masks C."""

    n_glomeruli: int = static(50, ge=1, description="M, glomerular channels per bulb")
    n_cortex: int = static(1000, ge=1, description="N, cortical neurons per hemisphere")
    connection_prob: float = traced(0.1, gt=0.0, le=1.0, description="p of the projection mask")
    mask: Literal["bernoulli", "fixed_indegree"] = static(
        "bernoulli", description="C: each synapse present with probability p, or exactly K = pN inputs per neuron")
    projection: Literal["gaussian", "sparse"] = static(
        "gaussian", description="J: dense gaussian bulb→cortex weights, or sparse ones (projection_density)")
    projection_density: float = traced(
        0.2, gt=0.0, le=1.0, description="fraction of glomeruli a cortical neuron samples (projection=sparse)"
    )
    activation: Literal["linear", "relu", "kwta"] = static(
        "linear", description="φ of the cortical responses; kwta keeps the top f·N active")
    active_fraction: float = traced(0.1, gt=0.0, le=1.0, description="f, active fraction under kwta")
    shard: bool = static(False, description="split the receiving neurons' rows of every projection across the "
                                            "devices (olfacto.engine.sharding); N must divide evenly")


class Odors(_Section):
    """Odor environment and breath stream (MODEL.md §3)."""

    kind: Literal["gaussian", "sparse", "mixture", "dataset"] = static(
        "gaussian", description="odor statistics; dataset: the measured glomerular library (data_path)")
    noise: float = traced(0.0, ge=0.0, description="σ, independent noise per nostril, relative to unit odor scale")
    sparsity: float = traced(0.1, gt=0.0, le=1.0, description="s, probability a channel is active (sparse, mixture)")
    n_base: int = static(20, ge=1, description="size of the base-odor library (mixture)")
    n_components: int = static(3, ge=1, description="base odors mixed per breath (mixture, dataset)")
    nasal_cycle: NasalCycle = NasalCycle()
    data_path: str | None = data(None, description="folder laid out as mosaic_representations (dataset; and "
                                                  "protocol.odor_similarity=measured); "
                                                  "in a config file, relative to the file's folder")
    animal: int = data(1, ge=1, description="animal number in the dataset (animal_#k)")
    hemibulb: Literal["left", "right"] = data("left", description="which measured hemibulb (dataset)")
    threshold: float = data(0.00045, ge=0.0, description="|dR/R| below which a response counts as none")
    drop_blank: bool = data(True, description="drop the mineral-oil blank (row 1 of the odor panel)")
    bulb: Literal["none", "normalize", "whiten"] = static(
        "none", description="the bulb's transform of every odor: normalize (concentration), whiten (decorrelate)")

    @model_validator(mode="after")
    def _dataset_needs_path(self) -> "Odors":
        if self.kind == "dataset" and not self.data_path:
            raise ValueError("odors.data_path=None: odors.kind=dataset needs the path of a mosaic_representations folder")
        if self.kind == "mixture" and self.n_components > self.n_base:
            raise ValueError(
                f"odors.n_components={self.n_components}: must be ≤ odors.n_base={self.n_base}"
            )
        return self


class Learning(_Section):
    """Learning rule applied to both directions every breath (or mini-batch of breaths)."""

    rule: Literal["hebbian", "oja", "covariance", "sgd"] = static(
        "hebbian", description="learning rule of the inter-hemispheric weights W (or one added from Python by "
                               "olfacto.model.rules.register)")

    @field_validator("rule", mode="wrap")
    @classmethod
    def _registered_rule(cls, value, handler):
        """A rule registered from Python (:func:`olfacto.model.rules.register`) is allowed beside the built-ins."""
        import sys

        rules = sys.modules.get("olfacto.model.rules")  # registered only if that module was imported
        if rules is not None and isinstance(value, str) and value in rules.registered():
            return value
        return handler(value)
    lr: float = traced(0.01, ge=0.0, description="η, learning rate")
    decay: float = traced(1.0, ge=0.0, description="λ, Hebbian weight decay")
    optimizer: Literal["sgd", "momentum", "adam"] = static(
        "sgd", description="optax optimizer of rule=sgd")
    momentum: float = traced(0.9, ge=0.0, lt=1.0, description="β of optimizer=momentum")
    batch: int = static(1, ge=1, description="breaths per update (mini-batch)")
    mean_rate: float = traced(0.01, gt=0.0, le=1.0, description="rate of the running means (covariance rule)")
    init_scale: float = traced(0.0, ge=0.0, description="std·√K of the initial weights (0: start from W = 0)")


class Recurrence(_Section):
    """Hopfield-style recurrence inside each cortex (MODEL.md §3): z₀ = ŷ, z_{t+1} = φ(ŷ + α A z_t),
    α = s/ρ(A); A_L, A_R learned by the Hebbian rule on each cortex's own direct responses."""

    connection_prob: float = traced(0.0, ge=0.0, le=1.0,
                                    description="p_rec of the recurrent mask (no self-connections); 0: no recurrence")
    mask: Literal["bernoulli", "fixed_indegree"] = static("fixed_indegree", description="C_rec, as circuit.mask")
    strength: float = traced(0.5, ge=0.0, lt=1.0, description="s: gain α = s/ρ(A), stable for every s < 1")
    steps: int = static(30, ge=1, le=100_000, description="T, refinement steps z₀ … z_T")
    lr: float | None = traced(None, ge=0.0, inherit="learning.lr", description="η_rec; null: learning.lr")
    decay: float | None = traced(None, ge=0.0, inherit="learning.decay", description="λ_rec; null: learning.decay")


class Rewiring(_Section):
    """Structural plasticity of the inter-hemispheric projection (beyond the thesis; olfacto.model.rewiring):
    every ``every`` breaths each receiving neuron prunes the fraction ζ of its synapses with the smallest
    |W| and regrows as many at new partners chosen by ``rule``; its in-degree stays exactly K, a regrown
    synapse starts at W = 0."""

    rule: Literal["none", "random", "magnitude", "hebbian", "gradient", "cht"] = static(
        "none", description="none: fixed masks; random: random prune and regrowth (turnover control); magnitude: "
                            "prune smallest |W|, regrow at random (SET); hebbian: regrow the candidates most "
                            "correlated with the neuron; gradient: largest |∂L/∂W| (RigL); cht: most length-3 "
                            "paths of both projections (Cannistraci-Hebb)")
    every: int = static(200, ge=1, description="breaths between rewiring events (a multiple of run.record_every)")
    fraction: float = static(0.1, gt=0.0, le=1.0, description="ζ, fraction of each neuron's synapses pruned per event")
    candidates: int = static(4, ge=1, le=1000, description="candidate partners sampled per pruned synapse "
                                                           "(cost ∝ synapses × candidates)")
    score_breaths: int = static(0, ge=0, description="hebbian and gradient: the last breaths before each event whose "
                                              "activity scores the candidates, at most rewiring.every (0: every "
                                              "breath since the last event; RigL scores one mini-batch); the "
                                              "scores' cost ∝ score_breaths")


class Protocol(_Section):
    """The recordings' protocol (../shared/data/IpsiContra) applied to the model at the end of a run
    (:mod:`olfacto.recordings.virtual`): ``n_odors`` probe odors, each given ``n_trials`` times to one
    nostril at a time (fresh nostril noise per trial), plus a blank (no odor); the recorded cortex's
    ipsilateral response is its direct response, its contralateral one the indirect response φ(ŷ)
    (z_T with recurrence); ``trial_noise`` adds response noise; ``n_neurons`` are recorded. The
    experiment's measures (:mod:`olfacto.recordings.protocol`) are then recorded as ``protocol_*``."""

    enabled: bool = host(False, description="record the experiment's measures at the end of the run")
    n_odors: int = host(15, ge=3, le=10_000, description="odors of the protocol (the experiment: 15)")
    n_trials: int = host(7, ge=2, le=1000, description="trials per odor and nostril (the experiment: 7)")
    trial_noise: float = host(0.5, ge=0.0, description="response noise per trial, in units of the s.d. of the "
                                                       "ipsilateral trial-mean responses")
    n_neurons: int = host(0, ge=0, description="recorded neurons, drawn at random (0: every neuron)")
    cortex: Literal["L", "R"] = host("R", description="the recorded cortex (ipsilateral nostril: its own side)")
    # model terms the recordings ask for (issue 19; olfacto.recordings.virtual): each off at its default
    gain_spread: float = host(0.0, ge=0.0, le=5.0, description="σ_g of a per-neuron response gain g_i = "
                              "exp(σ_g ζ_i − σ_g²/2), ζ_i ~ N(0, 1) (E[g] = 1), the same on both sides; 0: none")
    noise_model: Literal["gaussian", "poisson"] = host(
        "gaussian", description="trial noise: gaussian, the same s.d. for every neuron; poisson, s.d. ∝ √(the "
                                "neuron's mean |response|), with the same mean variance over neurons")
    sparseness: float = host(1.0, gt=0.0, le=1.0, description="fraction of (neuron, odor) pairs per side that "
                             "respond: trial means above their (1 − s) quantile θ keep their trials less θ, the "
                             "others are 0; 1: no threshold")
    odor_similarity: str = host("none", description="the protocol odors' similarity S (x = L z per glomerulus, "
                                "L Lᵀ = S): none (the run's odors), measured (the bulb odors of odors.data_path), "
                                "or an O×O .npy/.csv file; in a config file, relative to the file's folder")
    alpha_mix: float = host(1.0, ge=0.0, le=1.0, description="α: contralateral responses through α W + (1 − α) R, "
                            "R random on the same mask at W's r.m.s.; 1: the learned W only")

    @field_validator("odor_similarity")
    @classmethod
    def _similarity_kind(cls, value: str) -> str:
        if value in SIMILARITY_KEYWORDS or value.strip().lower().endswith((".npy", ".csv")):
            return value
        raise ValueError(f"protocol.odor_similarity={value!r}: allowed are none, measured, or the path of a .npy "
                         "or .csv file holding an O×O similarity matrix")


class Run(_Section):
    n_breaths: int = host(5000, ge=1, description="breaths to simulate")
    record_every: int = static(100, ge=1, description="breaths between measurements")
    n_probe: int = static(100, ge=4, description="probe odors for the measurements")
    progress: bool = host(True, description="show a progress bar on runs longer than a few seconds")
    plasticity: Literal["auto", "per_breath", "dense", "gather", "numba", "factored"] = static(
        "auto", description="how a recording chunk learns: breath by breath (XLA's scan), or as one exact chunked "
                            "update (olfacto.model.chunked: dense, gather, numba — a compiled CPU loop —, factored "
                            "for linear φ); auto chooses (SGD on a CPU: breath by breath by a compiled loop)")


class Config(_Section):
    """The full experiment configuration."""

    seed: int = _role("seed")(0, ge=0, le=2**32 - 1,
                             description="seed of the network, odors and breath stream (jax.random.key takes 32 bits)")
    circuit: Circuit = Circuit()
    odors: Odors = Odors()
    learning: Learning = Learning()
    recurrence: Recurrence = Recurrence()
    rewiring: Rewiring = Rewiring()
    protocol: Protocol = Protocol()
    run: Run = Run()
    # grid of a sweep (olfacto sweep); ignored by olfacto run
    sweep: dict[str, list[Any]] | None = host(
        None, description="grid of olfacto sweep: each config key with its list of values, e.g. {seed: [0, 1, 2]} "
                          "(--grid adds keys; one already in this section is refused); olfacto run ignores it")

    @model_validator(mode="before")
    @classmethod
    def _plain_python(cls, data: Any) -> Any:
        # strict types, yet np.int64(500) from a notebook is still 500, and 5e2 (YAML reads it as a float) too
        return _integral_ints(cls, _unwrap_numpy(data))

    @model_validator(mode="after")
    def _consistent(self) -> "Config":
        r, b = self.run, self.learning.batch
        if r.record_every % b:
            raise ValueError(
                f"run.record_every={r.record_every}: must be a multiple of learning.batch={b} (a recording "
                "chunk learns whole mini-batches)"
            )
        if r.n_breaths % r.record_every:
            raise ValueError(
                f"run.n_breaths={r.n_breaths}: must be a multiple of run.record_every={r.record_every} (the run "
                "learns in compiled chunks of run.record_every breaths, each ending with a record); e.g. "
                f"run.n_breaths={max(r.record_every, r.n_breaths - r.n_breaths % r.record_every)} or "
                f"{r.n_breaths - r.n_breaths % r.record_every + r.record_every}"
            )
        if r.plasticity not in ("auto", "per_breath") and self.learning.rule == "sgd":
            raise ValueError(
                f"run.plasticity={r.plasticity}: learning.rule=sgd has no chunked form; allowed are auto, per_breath"
            )
        w = self.rewiring
        if w.score_breaths > w.every:
            raise ValueError(f"rewiring.score_breaths={w.score_breaths}: at most rewiring.every={w.every} (the "
                             "breaths since the last event); 0: all of them")
        if w.rule != "none" and w.every % r.record_every:
            raise ValueError(
                f"rewiring.every={w.every}: must be a multiple of run.record_every={r.record_every} (rewiring "
                "events fall between the compiled chunks of learning)"
            )
        if self.protocol.odor_similarity == "measured" and not self.odors.data_path:
            raise ValueError("protocol.odor_similarity='measured': needs odors.data_path, the mosaic_representations "
                             "folder whose bulb odors it correlates; allowed otherwise: none, or a .npy/.csv file")
        if r.plasticity == "factored" and self.circuit.activation != "linear":
            raise ValueError(
                f"run.plasticity=factored: needs circuit.activation=linear (got {self.circuit.activation}); "
                "allowed with it are auto, per_breath, dense, gather, numba"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


LATE_DEFAULTS = {"odors.bulb": "none", **{f"rewiring.{k}": v for k, v in Rewiring().model_dump().items()},
                 **{f"protocol.{k}": v for k, v in Protocol().model_dump().items()}}
"""Keys added after stores and figure data were fingerprinted: left out of a fingerprint while at their
default (which reproduces what was computed before they existed), so those results stay valid."""


def inherit_of(key: str) -> str | None:
    """The key whose value config key ``key`` takes when it is null, if it declares one."""
    model: Any = Config
    *parents, last = key.split(".")
    for part in parents:
        model = sections(model)[part]
    extra = model.model_fields[last].json_schema_extra
    return extra.get("inherit") if isinstance(extra, dict) else None


def role_of(model: type[BaseModel], name: str) -> str | None:
    """The role (see :data:`ROLES`) of field ``name`` of ``model``; None for a section."""
    extra = model.model_fields[name].json_schema_extra
    return extra.get("role") if isinstance(extra, dict) else None


def sections(model: type[BaseModel] = None) -> dict[str, type[BaseModel]]:
    """The sub-models (sections) of ``model`` (default: :class:`Config`), by field name."""
    model = model or Config
    return {name: f.annotation for name, f in model.model_fields.items()
            if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)}


def keys_by_role(role: str, model: type[BaseModel] | None = None, prefix: str = "") -> list[str]:
    """Dotted names of every key with this role, in declaration order (e.g. ``"learning.lr"``)."""
    model = model or Config
    out = []
    subs = sections(model)
    for name in model.model_fields:
        if name in subs:
            out += keys_by_role(role, subs[name], f"{prefix}{name}.")
        elif role_of(model, name) == role:
            out.append(prefix + name)
    return out


def leaf_keys(model: type[BaseModel] | None = None, prefix: str = "") -> list[str]:
    """Dotted names of every key (not section) of ``model`` (default: :class:`Config`), in declaration order."""
    model = model or Config
    subs = sections(model)
    out = []
    for name in model.model_fields:
        out += leaf_keys(subs[name], f"{prefix}{name}.") if name in subs else [prefix + name]
    return out


PATH_KEYS = ("odors.data_path",)
"""Keys whose value is a path: in a YAML file a relative one is relative to the file's folder
(:func:`olfacto.config.read_yaml`), on the command line (``--set``) and from Python to the working folder."""

SIMILARITY_KEYWORDS = ("none", "measured")
PATH_OR_KEYWORD = {"protocol.odor_similarity": SIMILARITY_KEYWORDS}
"""Keys whose value is a keyword or a path: a path resolved as those of :data:`PATH_KEYS` (in a YAML file,
relative to its folder); a keyword is left as it is. Unlike :data:`PATH_KEYS`, a sweep's fingerprint holds
their text."""

# units of the keys that have one (CF-style; every other key is a dimensionless number, a count or a name)
UNITS = {"odors.nasal_cycle.period": "breaths", "run.n_breaths": "breaths", "run.record_every": "breaths"}


def dim_name(key: str) -> str:
    """The identifier-safe name of config key ``key`` as a Dataset dimension or coordinate.

    The key's last part (``"circuit.connection_prob"`` → ``"connection_prob"``), so that
    ``ds.sel(connection_prob=0.05)`` and ``ds.connection_prob`` work; a key whose last part an
    earlier-declared key already has is named by all its parts joined by ``_`` (e.g. a later
    section's ``decay`` → ``"<section>_decay"``). Names of unknown keys are joined the same way.
    """
    leaf = key.rsplit(".", 1)[-1]
    keys = leaf_keys()
    first = next((k for k in keys if k.rsplit(".", 1)[-1] == leaf), None)
    return leaf if first == key else key.replace(".", "_")


LABEL_CHARS = 32
"""The longest ``long_name`` olfacto gives a variable or coordinate: a plot's axis label must fit."""


def key_attrs(key: str) -> dict[str, str]:
    """Attributes of the coordinate of config key ``key``: the key, a long name and, where it has one, units."""
    model: Any = Config
    parts = key.split(".")
    for part in parts[:-1]:
        model = sections(model).get(part)
        if model is None:
            break
    info = model.model_fields.get(parts[-1]) if model is not None else None
    description = info.description if info is not None and info.description else key
    # long_name is what a plot's axis shows: the description where it is short ("η, learning rate"), else the
    # symbol it opens with and the name ("N (n_cortex)"), else the name
    symbol = re.match(r"([^\sa-z][^\s,:]{0,7}|[a-z](?:_[^\s,:]+)?)[,:] ", description)  # N, σ, C_rec, s: not "none:"
    short = description if len(description) <= LABEL_CHARS else \
        f"{symbol.group(1)} ({dim_name(key)})" if symbol else dim_name(key)
    attrs = {"config_key": key, "long_name": short, "description": description}
    if key in UNITS:
        attrs["units"] = UNITS[key]
    return attrs


def get_dotted(config: BaseModel, key: str) -> Any:
    """``get_dotted(cfg, "learning.lr")`` → ``cfg.learning.lr``."""
    value: Any = config
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _integral_ints(model: type[BaseModel], data: Any) -> Any:
    """``data`` with each finite, integral float given to an integer key as that integer (``5e2`` → 500), at
    any depth of ``model``'s sections; every other value is left to validation (2.5 stays an error)."""
    if not isinstance(data, dict):
        return data
    subs = sections(model)
    out = dict(data)
    for name, value in data.items():
        field = model.model_fields.get(name) if isinstance(name, str) else None
        if field is None:
            continue
        if name in subs:
            out[name] = _integral_ints(subs[name], value)
        elif (isinstance(value, float) and np.isfinite(value) and value.is_integer()
              and (field.annotation is int or int in typing.get_args(field.annotation))):
            out[name] = int(value)
    return out


def _unwrap_numpy(data: Any) -> Any:
    """NumPy scalars as Python scalars (np.bool_ stays a bool, so it is no number either)."""
    if isinstance(data, dict):
        return {k: _unwrap_numpy(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(_unwrap_numpy(v) for v in data)
    return data.item() if isinstance(data, np.generic) else data
