"""Parameter sweeps: a grid of configs, vmapped by shape, written point by point into a resumable store.

- :mod:`.grid` — grid points, their fingerprint, parts of a sweep (``--part I/N``);
- :mod:`.store` — the checksummed Zarr store, verified on resume;
- :mod:`.runner` — points grouped into batches, :func:`run_sweep`; :mod:`.batch` — the one batch runner;
- :mod:`.dask` — batches as tasks on a Dask cluster; :mod:`.slurm` — parts as a SLURM job array (submitit).

>>> from olfacto import sweeps
>>> ds = sweeps.run_sweep(base, {"learning.lr": [0.001, 0.01], "seed": [0, 1]}, "results/lr")
"""

from .grid import Point, accepted_fingerprints, expand, fingerprint, grid_from, n_points, parse_grid, parse_part
from .batch import run_and_write
from .runner import plan, run_sweep
from .store import STORE, open_result, open_store, status, verify

__all__ = ["STORE", "Point", "accepted_fingerprints", "expand", "fingerprint", "grid_from", "n_points", "open_result", "open_store",
           "parse_grid", "parse_part", "plan", "run_and_write", "run_sweep", "status", "verify"]
