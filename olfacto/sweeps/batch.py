"""The one batch runner of every sweep — in this process (:mod:`.runner`) and on Dask workers (:mod:`.dask`).

Its own module so that both call it without importing each other (no import cycle).
"""

from __future__ import annotations

from pathlib import Path

from ..engine import loop
from .grid import Point
from .store import write_batch


def run_and_write(path: Path, batch: list[Point]) -> int:
    """Run the batch as one compiled program — a diverged point records NaN and its flag, its neighbours go on —
    and write its points into the store at ``path``, padded to their group's slot counts (:func:`slots`).
    Returns the number of points written."""
    ds = loop.run_batch([p.config for p in batch], progress=False, stop_on_divergence=False,
                        slots=slots(batch)).dataset
    write_batch(Path(path), batch, ds)
    return len(batch)


def slots(batch: list[Point]) -> dict[str, int]:
    """The slot counts ``batch`` pads to: the largest its points carry (their group's, :func:`.runner.plan`)."""
    out: dict[str, int] = {}
    for p in batch:
        for key, k in p.slots:
            out[key] = max(out.get(key, 0), k)
    return out
