"""The quickstart notebook runs top to bottom (its own assertions check the speed–accuracy ordering)."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

from conftest import ROOT


def test_quickstart_notebook_executes(monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)  # let the kernel use its inline backend
    path = ROOT / "notebooks" / "quickstart.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the learning curve was drawn
