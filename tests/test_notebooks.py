"""The notebooks run top to bottom, and every cell that draws shows its figure.

A "plotting cell" calls an olfacto plot (``plots.…``, ``figures.make_figure``) or pyplot; each must leave
an image in its outputs. (olfacto's plot functions return plain Figures and never touch pyplot's global
state, so a figure shows as the cell's value or through ``display``; a pyplot figure needs ``plt.show()``.)
"""

from __future__ import annotations

import pytest

import re

import nbformat
from nbclient import NotebookClient

from conftest import ROOT

PLOTTING = re.compile(r"\bplots\.\w+\(|make_figure\(|plt\.(subplots|figure|plot)\(")


def execute(name: str, cwd) -> nbformat.NotebookNode:
    """Execute notebooks/<name> in a fresh kernel (its inline backend) and return it with outputs."""
    path = ROOT / "notebooks" / name
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def check_outputs(nb: nbformat.NotebookNode) -> int:
    """No error output, and an image from every plotting cell; returns the number of images."""
    images = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        assert not [o for o in outputs if o.get("output_type") == "error"], f"cell {i} raised"
        shown = sum("image/png" in o.get("data", {}) for o in outputs)
        if PLOTTING.search(cell.source):
            assert shown, f"cell {i} draws but shows no figure:\n{cell.source[:200]}"
        images += shown
    return images


@pytest.mark.slow
def test_quickstart_notebook_executes_and_shows_every_figure(monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)  # let the kernel use its inline backend
    nb = execute("quickstart.ipynb", ROOT / "notebooks")
    assert check_outputs(nb) >= 2  # the learning curve and the η comparison
