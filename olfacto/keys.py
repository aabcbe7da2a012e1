"""The table of config keys, generated from the config models so that the README cannot drift.

``python -m olfacto.keys`` prints it; ``python -m olfacto.keys --update README.md`` rewrites the
part of the README between ``<!-- keys:start -->`` and ``<!-- keys:end -->``; a test checks that
the README holds exactly this table.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from . import config

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
                bounds.append(f"{sym} {getattr(m, attr):g}")
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
    return f"`{value}`" if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)


def rows(model: type[BaseModel] = config.Config, prefix: str = "") -> list[tuple[str, str, str, str, str]]:
    """(key, default, allowed, role, meaning) for every key, depth first in declaration order."""
    out = []
    subs = config.sections(model)
    for name, field in model.model_fields.items():
        if name == "sweep":
            continue
        if name in subs:
            out += rows(subs[name], f"{prefix}{name}.")
            continue
        out.append((prefix + name, _default(field.default), _allowed(field), config.role_of(model, name) or "",
                    (field.description or "").replace("|", "\\|")))
    return out


def table() -> str:
    """The markdown table of every config key."""
    lines = ["| key | default | allowed | role | meaning |", "|---|---|---|---|---|"]
    lines += [f"| `{k}` | {d} | {a} | {r} | {m} |" for k, d, a, r, m in rows()]
    return "\n".join(lines)


def update(path: str | Path) -> bool:
    """Rewrite the table between the markers of ``path``; returns whether the file changed."""
    path = Path(path)
    text = path.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    new = f"{head}{START}\n{table()}\n{END}{tail}"
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    if sys.argv[1:2] == ["--update"]:
        print("updated" if update(sys.argv[2]) else "unchanged", sys.argv[2])
    else:
        print(table())
