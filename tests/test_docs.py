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
                 "docs/architecture.html", "docs/benchmarks.html", "README.html", "notebooks/quickstart.html",
                 "docs/usage.html", "docs/results.html", "docs/python.html", "docs/experiment.html", "docs/chapters.html"]:
        assert page in pages, page
    api = (out / "docs" / "api.html").read_text()
    for name in ["olfacto.engine.result.Result.measures", "olfacto.sweeps.run_sweep", "olfacto.model.theory.hebbian_alignment"]:
        assert f'id="{name}"' in api, name  # generated from the docstrings


def test_api_page_reads_as_markdown():
    """docs/api.md opens with a summary generated from the docstrings (python tools/api_summary.py --update
    docs/api.md), so the page says what each section holds without building the docs (issue 23, item 12)."""
    from tools import api_summary

    text = (ROOT / "docs" / "api.md").read_text()
    inside = text.split(api_summary.START)[1].split(api_summary.END)[0].strip()
    assert inside == api_summary.summary(text), "stale: run python tools/api_summary.py --update docs/api.md"
    assert "- `olfacto.run(cfg, progress, records, stream)` — Run one experiment: learn the inter-hemispheric weights" in inside
    assert "- `olfacto.config.from_dict(data, **dotted)` — Notebook helper" in inside
    assert "eval-rst" not in inside and ":func:" not in inside and "``" not in inside


def test_makefile_names_the_page_the_docs_build_writes():
    """`make docs` builds from the root with root_doc docs/index, so the manual's first page is
    build/docs/docs/index.html; the Makefile named build/docs/index.html (issue 23, item 11)."""
    import re

    conf = (ROOT / "docs" / "conf.py").read_text()
    root_doc = re.search(r'^root_doc = "([^"]+)"', conf, re.M).group(1)
    makefile = (ROOT / "Makefile").read_text()
    out = re.search(r"sphinx-build .* \. (\S+)\n", makefile).group(1)
    page = f"{out}/{root_doc}.html"
    assert page == "build/docs/docs/index.html"
    named = set(re.findall(r"build/docs\S*\.html", makefile))
    assert named == {page}, named
