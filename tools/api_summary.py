"""The summary at the top of ``docs/api.md``, generated from the docstrings so that the page reads as Markdown
without building the docs (the ``{eval-rst}`` blocks below it are what Sphinx expands).

``python tools/api_summary.py`` prints it; ``python tools/api_summary.py --update docs/api.md`` rewrites the part
between ``<!-- summary:start -->`` and ``<!-- summary:end -->``; a test (tests/test_docs.py) keeps them equal.
Each section lists what its ``autofunction``/``autoclass``/``autoexception`` directives name, each ``automodule``
and the ``:members:`` it names, with the call's parameters and the first sentence of the docstring.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

START, END = "<!-- summary:start -->", "<!-- summary:end -->"
DIRECTIVE = re.compile(r"^\.\. auto(function|class|exception|module):: (\S+)\s*$")
MEMBERS = re.compile(r"^\s+:members:\s*(.+)$")


def _resolve(dotted: str):
    """The object named ``dotted``: a module, or an attribute of the longest importable module prefix."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


ABBREVIATIONS = ("e.g.", "i.e.", "et al.", "cf.", "vs.", "§")
ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def _markdown(text: str) -> str:
    """reST inline markup as Markdown: ``x`` → `x`, :func:`~a.b` → `b`, :class:`a.b` → `a.b`."""
    text = ROLE.sub(lambda m: "`" + (m.group(1).rsplit(".", 1)[-1] if m.group(0).count("~") else m.group(1)) + "`",
                    text)
    return text.replace("``", "`")


def _first_sentence(obj, limit: int = 160) -> str:
    """The first sentence of ``obj``'s docstring (a module, class or routine; a constant has none of its own)."""
    if not (inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isroutine(obj)):
        return ""
    paragraph = " ".join((inspect.getdoc(obj) or "").split("\n\n")[0].split())
    end = 0
    for match in re.finditer(r"\.(\s|$)", paragraph):
        before = paragraph[:match.start() + 1]
        if not before.endswith(ABBREVIATIONS) and not re.search(r"§[\d.]*$", before):
            end = match.start() + 1
            break
    sentence = _markdown(paragraph[:end] if end else paragraph)
    if len(sentence) > limit:
        sentence = sentence[:limit].rsplit(" ", 1)[0].rstrip(",;:(") + " …"
    return sentence


def _call(dotted: str, obj) -> str:
    if inspect.isclass(obj) or not callable(obj):
        return dotted
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return dotted
    stars = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
    return f"{dotted}({', '.join(stars.get(p.kind, '') + name for name, p in params.items())})"


def entries(text: str) -> list[tuple[str, list[str]]]:
    """(section heading, [dotted names]) in the order of the page's directives (the summary block left out)."""
    head, _, rest = text.partition(START)
    text = head + rest.partition(END)[2]
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("## "):
            out.append((line[3:].strip(), []))
        elif (m := DIRECTIVE.match(line)) and out:
            out[-1][1].append(m.group(2))
        elif (m := MEMBERS.match(line)) and out and out[-1][1]:
            module = out[-1][1][-1]
            out[-1][1].extend(f"{module}.{name.strip()}" for name in m.group(1).split(","))
    return [(heading, names) for heading, names in out if names]


def summary(text: str) -> str:
    """The Markdown summary of the page ``text``: per section, one line per documented name."""
    lines = ["In short — what each section below documents (generated from the docstrings by",
             "`python tools/api_summary.py --update docs/api.md`):", ""]
    for heading, names in entries(text):
        lines.append(f"**{heading}**")
        lines.append("")
        for dotted in names:
            obj = _resolve(dotted)
            lines.append(f"- `{_call(dotted, obj)}` — {_first_sentence(obj)}".rstrip(" —"))
        lines.append("")
    return "\n".join(lines).rstrip()


def update(path: str | Path) -> bool:
    """Rewrite the summary between the markers of ``path``; returns whether the file changed."""
    from olfacto.config.keys import write_between

    return write_between(path, START, END, summary)


if __name__ == "__main__":
    page = Path(__file__).resolve().parents[1] / "docs" / "api.md"
    if sys.argv[1:2] == ["--update"]:
        print("updated" if update(sys.argv[2]) else "unchanged", sys.argv[2])
    else:
        print(summary(page.read_text()))
