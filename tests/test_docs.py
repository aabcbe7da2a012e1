"""The reference manual builds from the docstrings, the README, the docs pages and the notebooks with
warnings as errors (``make docs``), and holds the model spec and every page the README links to."""

from __future__ import annotations

import pytest

import subprocess
import sys

from conftest import ROOT


@pytest.mark.slow
def test_reference_manual_builds_without_warnings(tmp_path):
    out = tmp_path / "html"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-q", "-W", "--keep-going", "-c", "docs", ".", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pages = {p.relative_to(out).as_posix() for p in out.rglob("*.html")}
    for page in ["docs/index.html", "docs/model.html", "docs/api.html", "docs/theory.html", "docs/reliability.html",
                 "docs/architecture.html", "docs/benchmarks.html", "README.html", "notebooks/quickstart.html"]:
        assert page in pages, page
    api = (out / "docs" / "api.html").read_text()
    for name in ["olfacto.engine.result.Result.measures", "olfacto.sweeps.run_sweep", "olfacto.model.theory.hebbian_alignment"]:
        assert f'id="{name}"' in api, name  # generated from the docstrings
