"""The table of config keys, generated from the config models so that the docs cannot drift.

``python -m olfacto.config.keys`` prints it; ``python -m olfacto.config.keys --update docs/usage.md`` rewrites the
part of that page ("Running experiments", where the table lives) between ``<!-- keys:start -->`` and
``<!-- keys:end -->``; a test checks that the page holds exactly this table.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from . import loading
from . import schema as config

START, END = "<!-- keys:start -->", "<!-- keys:end -->"


def _allowed(field) -> str:
    ann = field.annotation
    args = typing.get_args(ann)
    if typing.get_origin(ann) is typing.Literal:
        return ", ".join(f"`{a}`" for a in args)
    bounds = []
    for m in field.metadata:
        for attr, sym in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if getattr(m, attr, None) is not None:
                v = getattr(m, attr)
                bounds.append(f"{sym} {v:,}" if isinstance(v, int) else f"{sym} {v:g}")
    if typing.get_origin(ann) is dict or any(typing.get_origin(a) is dict for a in args):
        return "mapping of key to list of values, or null"
    base = {int: "integer", float: "number", bool: "true/false", str: "text"}
    types_ = [a for a in (args or (ann,)) if a is not type(None)]
    name = " or ".join(base.get(t, getattr(t, "__name__", str(t))) for t in types_)
    if types.NoneType in args:
        name += " or null"
    return f"{name} {', '.join(bounds)}".strip()


def _default(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, bool):
        return str(value).lower()  # as YAML writes it
    return f"`{value}`" if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)


def rows(model: type[BaseModel] = config.Config, prefix: str = "") -> list[tuple[str, str, str, str, str]]:
    """(key, default, allowed, role, meaning) for every key, depth first in declaration order."""
    out = []
    subs = config.sections(model)
    for name, field in model.model_fields.items():
        if name in subs:
            out += rows(subs[name], f"{prefix}{name}.")
            continue
        out.append((prefix + name, _default(field.default), _allowed(field), config.role_of(model, name) or "",
                    (field.description or "").replace("|", "\\|")))
    return out


EXPERIMENT = Path(__file__).resolve().parents[2] / "experiments" / "default.yaml"


def _experiment_values(path: Path = EXPERIMENT) -> dict[str, Any]:
    """The keys ``experiments/default.yaml`` sets (dotted), if that file is at hand."""
    if not path.is_file():
        return {}
    out: dict[str, Any] = {}

    def walk(d: dict, prefix: str = "") -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[prefix + k] = v

    walk(loading.read_yaml(path))
    return out


def table() -> str:
    """The markdown table of every config key: its default, the value ``experiments/default.yaml`` gives it
    (where that differs), what is allowed, its role for the simulator (static keys compile a new program,
    traced ones are vmapped) and what it means."""
    ours = _experiment_values()
    lines = ["| key | default | default.yaml | allowed | role | meaning |", "|---|---|---|---|---|---|"]
    for k, d, a, r, m in rows():
        given = _default(ours[k]) if k in ours and _default(ours[k]) != d else ""
        lines.append(f"| `{k}` | {d} | {given} | {a} | {r} | {m} |")
    return "\n".join(lines)


def write_between(path: str | Path, start: str, end: str, body, hint: str = "") -> bool:
    """Replace what stands between the markers ``start`` and ``end`` of the file ``path`` by ``body(text)`` (the
    generated blocks of the docs); returns whether the file changed."""
    path = Path(path)
    text = path.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{path} has no {start} … {end} markers{hint}")
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    new = f"{head}{start}\n{body(text)}\n{end}{tail}"
    if new != text:
        path.write_text(new)
    return new != text


def update(path: str | Path) -> bool:
    """Rewrite the table between the markers of ``path`` (it lives in docs/usage.md; it left the README);
    returns whether the file changed."""
    return write_between(path, START, END, lambda text: table(), hint=": the key table is in docs/usage.md")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--update"]:
        print("updated" if update(sys.argv[2]) else "unchanged", sys.argv[2])
    else:
        print(table())
