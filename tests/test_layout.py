"""The folders are the architecture (issue 18): no import goes up the data flow or in a circle.

The subpackages in the order of the data flow (docs/architecture.md)::

    config → model → recordings → engine → sweeps → analysis → plots → experiments → cli

A module may import from its own subpackage and from those before it, never from one after it —
at the top of the file or inside a function alike (a deferred import is still a dependency) — and
the module graph has no cycle. Read from the source with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "olfacto"
FLOW = ("config", "model", "recordings", "engine", "sweeps", "analysis", "plots", "experiments", "cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(name: str, path: Path) -> set[str]:
    """The olfacto modules ``name`` imports, anywhere in the file (``from .x import y`` resolves to the module
    ``x.y`` when that is one, else to ``x``)."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "olfacto"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: None if is_package else -1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            if prefix.split(".")[0] != "olfacto":
                continue
            out |= {f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in MODULES else prefix for a in node.names}
    return {m for m in out if m in MODULES and m != name}


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}


def stage(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FLOW else None


def test_every_subpackage_is_a_stage_of_the_flow():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(FLOW), folders ^ set(FLOW)
    assert not (PACKAGE / "bench.py").exists() and (ROOT / "benchmarks" / "bench.py").exists()


def test_no_import_goes_up_the_flow():
    upward = [f"{a} → {b}" for a, targets in GRAPH.items() for b in targets
              if stage(a) and stage(b) and FLOW.index(stage(b)) > FLOW.index(stage(a))]
    assert not upward, upward


def test_no_import_cycle():
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycles.append(" → ".join(path[path.index(nxt):] + [node, nxt]) if nxt in path else f"{node} → {nxt}")
            elif not state.get(nxt):
                visit(nxt, path + [node])
        state[node] = 2

    for name in sorted(GRAPH):
        if not state.get(name):
            visit(name, [])
    assert not cycles, cycles


def test_the_graph_counts_deferred_imports():
    """The graph the checks above read holds an import made inside a function (dask's task imports the batch
    runner there) and resolves relative imports to modules."""
    assert "olfacto.sweeps.batch" in GRAPH["olfacto.sweeps.dask"]  # a deferred import inside a function counts
    assert "olfacto.engine.loop" in GRAPH["olfacto.sweeps.batch"]
    assert stage("olfacto.model.network") == "model" and stage("olfacto") is None
