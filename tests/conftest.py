"""Shared fixtures. Sizes are small so the whole suite runs on 2 CPU cores in minutes."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
if "OLFACTO_JAX_CACHE" not in os.environ:
    # hermetic: no cache in ~/.cache, but one folder for this session, shared by the xdist workers and the CLI
    # tests' subprocesses (they inherit it), so a program compiled once is loaded elsewhere (measured ≈ 9 % on
    # four test files, within the host's noise)
    os.environ["OLFACTO_JAX_CACHE"] = _SESSION_CACHE = tempfile.mkdtemp(prefix="olfacto-test-jax-")
else:
    _SESSION_CACHE = None

import olfacto  # noqa: E402
from olfacto.engine import runtime  # noqa: E402

runtime.cpu_scheduler_workaround()  # as the CLI does; the notebooks' kernels inherit XLA_FLAGS

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ lives beside the package, not in it
    sys.path.insert(0, str(ROOT))
SHARED_DATA = ROOT.parent / "shared" / "data" / "mosaic_representations"


IPSI_CONTRA = ROOT.parent / "shared" / "data" / "IpsiContra"


@pytest.fixture(scope="session")
def recorded():
    """The bilateral recordings (olfacto.recordings.ipsicontra.load), read once; skipped where absent."""
    from olfacto.recordings import ipsicontra

    if not (IPSI_CONTRA / ipsicontra.FILENAME).is_file():
        pytest.skip(f"recordings not found at {IPSI_CONTRA}")
    return ipsicontra.load(IPSI_CONTRA)


@pytest.fixture(scope="session")
def data_path() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def small(**dotted):
    """A small linear-gaussian config; dotted overrides as keyword names with '__' for '.'."""
    base = {
        "circuit.n_cortex": 64,
        "circuit.n_glomeruli": 10,
        "circuit.connection_prob": 0.25,
        "run.n_breaths": 200,
        "run.record_every": 100,
        "run.n_probe": 40,
        "run.progress": False,
    }
    base.update({k.replace("__", "."): v for k, v in dotted.items()})
    return olfacto.config.from_dict(**base)


def pytest_unconfigure(config):
    """The session's compilation cache goes with the process that made it (the xdist controller)."""
    if _SESSION_CACHE is not None:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)
