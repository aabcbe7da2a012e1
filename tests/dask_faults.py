"""A task for tests/test_cluster.py that kills its Dask worker process once, in the middle of a batch
(after the first point of the batch is written, before the others): imported by the workers."""

from __future__ import annotations

import os
from pathlib import Path

from olfacto.engine import loop as simulate
from olfacto.sweeps import dask as cluster
from olfacto.sweeps import store


def kill_once_mid_batch(marker: str, path: str, batch: list, cache, flags) -> int:
    if not Path(marker).exists() and len(batch) > 1:
        Path(marker).write_text("killed")
        result = simulate.run_batch([p.config for p in batch], progress=False, stop_on_divergence=False).dataset
        store.write_batch(Path(path), batch[:1], result.isel(run=slice(0, 1)))
        os._exit(1)  # the worker process dies with its batch half written
    return cluster._task(path, batch, cache, flags)
