"""olfacto: a JAX simulator of bilateral alignment in the olfactory cortices.

Quick use::

    import olfacto
    cfg = olfacto.config.from_dict(**{"circuit.n_cortex": 500, "learning.lr": 0.01})
    ds = olfacto.run(cfg).dataset          # xarray.Dataset over breaths
    ds.alignment.plot()

Importing olfacto changes nothing in the process; the first simulation sets JAX up as the ``olfacto``
command does (the persistent compilation cache and, on jaxlib 0.10.x, a CPU-scheduler workaround):
:mod:`olfacto.engine.runtime` says how, and how to decide yourself.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("olfacto")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

# The public names load on first use (the simulator's JAX, xarray and SciPy take seconds), so that
# `import olfacto` and the `olfacto` command answer at once.
_LAZY = {"Config": "config", "ConfigError": "config",
         "Diverged": "engine.loop", "Result": "engine.result", "run": "engine.loop", "run_batch": "engine.loop",
         "load": "engine.restore", "Stream": "model.odors", "stream": "model.odors", "own_stream": "engine.loop"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if not name.startswith("_"):
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Config", "ConfigError", "Diverged", "Result", "Stream", "config", "load", "own_stream", "run", "run_batch",
           "stream", "__version__"]
