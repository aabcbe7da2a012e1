"""The one batch runner of every sweep — in this process (:mod:`.runner`) and on Dask workers (:mod:`.dask`).

Its own module so that both call it without importing each other (no import cycle).
"""

from __future__ import annotations

from pathlib import Path

from ..engine import loop
from .grid import Point
from .store import write_batch


def run_and_write(path: Path, batch: list[Point]) -> int:
    """Run the batch as one vmapped program — a diverged point records NaN and its flag, its neighbours go on —
    and write its points into the store at ``path``. Returns the number of points written."""
    ds = loop.run_batch([p.config for p in batch], progress=False, stop_on_divergence=False).dataset
    write_batch(Path(path), batch, ds)
    return len(batch)
