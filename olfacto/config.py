"""Typed experiment configuration: YAML in, validated, with dotted overrides.

A config is a tree of pydantic models (``extra="forbid"``, so an unknown key is
an error, not a silent no-op). The names are those of MODEL.md: ``n_cortex`` is
N, ``connection_prob`` is p, ``lr`` is η, ``decay`` is λ, ``noise`` is σ, …

Every problem with user input is raised as :class:`ConfigError`, whose message
is one line naming the key, the value and what is allowed; the CLI prints it and
exits with status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import yamlio


class ConfigError(ValueError):
    """Invalid user input (config file, key, type or value). One-line message."""


class _Section(BaseModel):
    # strict: no bool for a number, no string for a number or a bool (an int is still a valid float)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)


class NasalCycle(_Section):
    """Slow alternation of the nostrils' airflow: g_{L,R}(t) = 1 ± a·sin(2πt/T)."""

    amplitude: float = Field(0.0, ge=0.0, le=1.0, description="a (0: no nasal cycle)")
    period: float = Field(1000.0, gt=0.0, description="T_cycle, in breaths")


class Circuit(_Section):
    """Bulbs, bulb→cortex projections J, activation φ, inter-hemispheric masks C."""

    n_glomeruli: int = Field(50, ge=1, description="M, glomerular channels per bulb")
    n_cortex: int = Field(1000, ge=1, description="N, cortical neurons per hemisphere")
    connection_prob: float = Field(0.1, gt=0.0, le=1.0, description="p of the projection mask")
    mask: Literal["bernoulli", "fixed_indegree"] = "bernoulli"
    projection: Literal["gaussian", "sparse"] = "gaussian"
    projection_density: float = Field(
        0.2, gt=0.0, le=1.0, description="fraction of glomeruli a cortical neuron samples (projection=sparse)"
    )
    activation: Literal["linear", "relu", "kwta"] = "linear"
    active_fraction: float = Field(0.1, gt=0.0, le=1.0, description="f, active fraction under kwta")


class Odors(_Section):
    """Odor environment and breath stream (MODEL.md §3)."""

    kind: Literal["gaussian", "sparse", "mixture", "dataset"] = "gaussian"
    noise: float = Field(0.0, ge=0.0, description="σ, independent noise per nostril, relative to unit odor scale")
    sparsity: float = Field(0.1, gt=0.0, le=1.0, description="s, probability a channel is active (sparse, mixture)")
    n_base: int = Field(20, ge=1, description="size of the base-odor library (mixture)")
    n_components: int = Field(3, ge=1, description="base odors mixed per breath (mixture, dataset)")
    nasal_cycle: NasalCycle = NasalCycle()
    data_path: str | None = Field(None, description="folder laid out as mosaic_representations (dataset)")
    animal: int = Field(1, ge=1, description="animal number in the dataset (animal_#k)")
    hemibulb: Literal["left", "right"] = "left"
    threshold: float = Field(0.00045, ge=0.0, description="|dR/R| below which a response counts as none")
    drop_blank: bool = Field(True, description="drop the mineral-oil blank (row 1 of the odor panel)")

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

    rule: Literal["hebbian", "oja", "covariance", "sgd"] = "hebbian"
    lr: float = Field(0.01, ge=0.0, description="η, learning rate")
    decay: float = Field(1.0, ge=0.0, description="λ, Hebbian weight decay")
    optimizer: Literal["sgd", "momentum", "adam"] = "sgd"
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="β of optimizer=momentum")
    batch: int = Field(1, ge=1, description="breaths per update (mini-batch)")
    mean_rate: float = Field(0.01, gt=0.0, le=1.0, description="rate of the running means (covariance rule)")
    init_scale: float = Field(0.0, ge=0.0, description="std·√K of the initial weights (0: start from W = 0)")


class Run(_Section):
    n_breaths: int = Field(5000, ge=1, description="breaths to simulate")
    record_every: int = Field(100, ge=1, description="breaths between measurements")
    n_probe: int = Field(100, ge=4, description="probe odors for the measurements")
    progress: bool = Field(True, description="show a progress bar on runs longer than a few seconds")


class Config(_Section):
    """The full experiment configuration."""

    seed: int = Field(0, ge=0, le=2**32 - 1, description="PRNG seed (jax.random.key takes 32 bits)")
    circuit: Circuit = Circuit()
    odors: Odors = Odors()
    learning: Learning = Learning()
    run: Run = Run()
    # grid of a sweep (olfacto sweep); ignored by olfacto run
    sweep: dict[str, list[Any]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _plain_python(cls, data: Any) -> Any:
        return _unwrap_numpy(data)  # strict types, yet np.int64(500) from a notebook is still 500

    @model_validator(mode="after")
    def _consistent(self) -> "Config":
        r, b = self.run, self.learning.batch
        if r.record_every % b:
            raise ValueError(
                f"run.record_every={r.record_every}: must be a multiple of learning.batch={b}"
            )
        if r.n_breaths % r.record_every:
            raise ValueError(
                f"run.n_breaths={r.n_breaths}: must be a multiple of run.record_every={r.record_every}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _unwrap_numpy(data: Any) -> Any:
    """NumPy scalars as Python scalars (np.bool_ stays a bool, so it is no number either)."""
    if isinstance(data, dict):
        return {k: _unwrap_numpy(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(_unwrap_numpy(v) for v in data)
    return data.item() if isinstance(data, np.generic) else data


# -- reading and overriding -------------------------------------------------


def _format_error(err: dict[str, Any], data: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        section = _lookup_model(err["loc"][:-1])
        allowed = ", ".join(section.model_fields) if section else "?"
        return f"unknown key {loc!r}; allowed keys here: {allowed}"
    if kind == "value_error":  # our own validators already name key and value
        return msg.removeprefix("Value error, ")
    value = err.get("input")
    return f"{loc}={value!r}: {msg[0].lower() + msg[1:]}"


def _lookup_model(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
    return model


def validate(data: dict[str, Any]) -> Config:
    """Validate a nested dict into a :class:`Config`; raise :class:`ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a mapping of keys to values, got {type(data).__name__}")
    try:
        cfg = Config.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(_format_error(exc.errors()[0], data)) from None
    from . import checks  # settings that validate field by field yet cannot produce a measurement

    checks.raise_for(cfg)
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """``"learning.lr=0.1"`` → ``("learning.lr", 0.1)``; the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. learning.lr=0.01")
    return key.strip(), parse_value(raw, f"--set {text!r}")


def parse_value(raw: str, where: str) -> Any:
    """A command-line value read as YAML 1.2 (:mod:`olfacto.yamlio`); text that is no YAML stays text."""
    try:
        return yamlio.load(raw) if raw.strip() else None
    except yamlio.YAMLInputError as exc:  # an alias, a duplicate key: refused, not read as text
        raise ConfigError(f"{where}: {exc.problem}") from None
    except yaml.YAMLError:
        return raw


def check_unique(keys: list[str], option: str) -> None:
    """Refuse a key given twice (or a key and a key inside it): the later would silently win."""
    for i, a in enumerate(keys):
        for b in keys[:i]:
            if a == b or a.startswith(b + ".") or b.startswith(a + "."):
                what = "given twice" if a == b else f"overlaps {b!r}"
                raise ConfigError(f"{option} {a!r}: {what}; give each key once")


def set_dotted(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Return a copy of ``data`` with the dotted ``key`` set to ``value``."""
    out = dict(data)
    head, _, rest = key.partition(".")
    if rest:
        sub = out.get(head, {})
        if not isinstance(sub, dict):
            raise ConfigError(f"{head}={sub!r}: is a value, cannot set {key!r} inside it")
        out[head] = set_dotted(sub, rest, value)
    else:
        out[head] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict; missing or malformed files raise ConfigError."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a folder; expected a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found" + ("" if not path.exists() else
                                                                    " (not a regular file)"))
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text (byte {exc.start}); expected YAML") from None
    try:
        data = yamlio.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        what = "" if isinstance(exc, yamlio.YAMLInputError) else " is not valid YAML"
        raise ConfigError(f"config file {str(path)!r}{what}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r}: top level must be a mapping of keys, got {type(data).__name__}")
    return data


def load(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read ``path`` (or the defaults), apply ``KEY=VALUE`` overrides, validate."""
    data = read_yaml(path) if path is not None else {}
    check_unique([parse_override(text)[0] for text in overrides], "--set")
    for text in overrides:
        data = set_dotted(data, *parse_override(text))
    return validate(data)


def from_dict(data: dict[str, Any] | None = None, **dotted: Any) -> Config:
    """Notebook helper: ``from_dict(circuit={"n_cortex": 500}, **{"learning.lr": 0.1})``."""
    data = dict(data or {})
    for key, value in dotted.items():
        data = set_dotted(data, key.replace("__", "."), value)
    return validate(data)


def replace(config: Config, **dotted: Any) -> Config:
    """A copy of ``config`` with dotted keys changed, e.g. ``replace(c, **{"learning.lr": 0.1})``."""
    return from_dict(config.to_dict(), **dotted)

