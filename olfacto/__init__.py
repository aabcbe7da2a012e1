"""olfacto: a JAX simulator of bilateral alignment in the olfactory cortices.

Quick use::

    import olfacto
    cfg = olfacto.config.from_dict(**{"circuit.n_cortex": 500, "learning.lr": 0.01})
    ds = olfacto.run(cfg).dataset          # xarray.Dataset over breaths
    ds.alignment.plot()
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("olfacto")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

from . import config
from .config import Config, ConfigError
from .simulate import Diverged, Result, run, run_batch

__all__ = ["Config", "ConfigError", "Diverged", "Result", "config", "run", "run_batch", "__version__"]
