"""Reading a config: YAML files, dotted ``--set`` overrides, validation into a :class:`Config`.

Every problem with user input is raised as :class:`ConfigError`, one line naming the key, the
value and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic import BaseModel

from . import checks, yamlio
from .schema import PATH_KEYS, PATH_OR_KEYWORD, Config, ConfigError


def _format_error(err: dict[str, Any], data: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        section = _lookup_model(err["loc"][:-1])
        allowed = ", ".join(section.model_fields) if section else "?"
        guess = _did_you_mean(loc, section)
        return f"unknown key {loc!r}; " + (f"did you mean {guess!r}? " if guess else "") + f"allowed keys here: {allowed}"
    if kind == "value_error":  # our own validators already name key and value
        return msg.removeprefix("Value error, ")
    value = err.get("input")
    return f"{loc}={value!r}: {msg[0].lower() + msg[1:]}"


def _did_you_mean(key: str, section: type[BaseModel] | None) -> str | None:
    """The config key the unknown dotted ``key`` most likely meant, or None when none is close: the same name in
    another section (``learning.n_cortex`` → ``circuit.n_cortex``); a close name in its own section
    (``circuit.n_cortx``, difflib); the one key of its section whose meaning holds every word of the name
    (``learning.learning_rate`` → ``learning.lr``, "η, learning rate"). An unknown section is an unknown key
    of the top level (``circut`` → ``circuit``)."""
    import difflib
    import re

    from .schema import leaf_keys

    *parents, leaf = key.split(".")
    prefix = "".join(p + "." for p in parents)
    keys = leaf_keys()
    same = [k for k in keys if k.rsplit(".", 1)[-1] == leaf]
    if same:
        return same[0]
    fields = section.model_fields if section is not None else {}
    near = difflib.get_close_matches(leaf, list(fields), n=1, cutoff=0.8)
    if near:
        return prefix + near[0]
    words = {w for w in re.findall(r"[a-z]+", leaf.lower()) if len(w) > 2}
    meant = [name for name, f in fields.items()
             if words and words <= set(re.findall(r"[a-z]+", (f.description or "").lower()))]
    return prefix + meant[0] if len(meant) == 1 else None


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
    checks.raise_for(cfg)  # settings that validate field by field yet cannot produce a measurement
    return cfg


def parse_override(text: str) -> tuple[str, Any]:
    """``"learning.lr=0.1"`` → ``("learning.lr", 0.1)``; the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. learning.lr=0.01")
    return key.strip(), parse_value(raw, f"--set {text!r}")


def parse_value(raw: str, where: str) -> Any:
    """A command-line value read as YAML 1.2 (:mod:`olfacto.config.yamlio`); text that is no YAML stays text."""
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


def resolve_paths(data: dict[str, Any], folder: str | Path) -> dict[str, Any]:
    """``data`` with each relative path of a :data:`~olfacto.config.PATH_KEYS` key — its value, or the values of
    its ``sweep:`` grid — made absolute against ``folder`` (``~`` is expanded first; absolute paths, null and
    non-text values are unchanged: validation judges those); likewise for a key of
    :data:`~olfacto.config.schema.PATH_OR_KEYWORD` whose value is not one of its keywords."""
    import os

    base = Path(folder).resolve()

    def resolved(value: Any, keywords: tuple[str, ...] = ()) -> Any:
        if not isinstance(value, str) or not value.strip() or value in keywords:
            return value
        path = Path(value).expanduser()
        return value if path.is_absolute() else os.path.normpath(base / path)

    out = data
    for key, keywords in [*((k, ()) for k in PATH_KEYS), *PATH_OR_KEYWORD.items()]:
        node: Any = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            out = set_dotted(out, key, resolved(node[leaf], keywords))
        grid = out.get("sweep")
        if isinstance(grid, dict) and isinstance(grid.get(key), list):
            out = {**out, "sweep": {**grid, key: [resolved(v, keywords) for v in grid[key]]}}
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict; missing or malformed files raise ConfigError. A relative path
    of a path key (``odors.data_path``) is relative to the file's folder (:func:`resolve_paths`)."""
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
    return resolve_paths(data, path.parent)


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

