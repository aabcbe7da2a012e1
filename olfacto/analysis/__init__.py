"""Computing from stored results: what the figures draw, what ``summary.json`` reports, what a
notebook can call. Plots (:mod:`olfacto.plots`) only draw; every number comes from here.

- :mod:`olfacto.analysis.common` — dimension names, seed statistics, log–log fits, crossings,
  and :class:`~olfacto.analysis.common.Summary`;
- :mod:`olfacto.analysis.chapter1` — the chapter-1 laws (p*, exponents, relaxation times, the
  exact Hebbian fixed point of a simulated network) and each chapter-1 figure's summary.
"""

from .chapter1 import *  # noqa: F401,F403
from .chapter1 import __all__ as _ch1
from .common import *  # noqa: F401,F403
from .common import __all__ as _common

__all__ = list(_common) + list(_ch1)
