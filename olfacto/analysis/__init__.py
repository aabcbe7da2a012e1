"""Computing from stored results, purely: Dataset → numbers. What the figures draw, what ``summary.json``
reports, what a notebook can call. Plots (:mod:`olfacto.plots`) only draw; every number comes from
here; the simulations behind a figure run in :mod:`olfacto.experiments`.

- :mod:`olfacto.analysis.common` — dimension names, seed statistics, log–log fits, crossings,
  and :class:`~olfacto.analysis.common.Summary`;
- :mod:`olfacto.analysis.chapter1` — the chapter-1 laws (p*, exponents, relaxation times) and each
  chapter-1 figure's summary; :mod:`olfacto.analysis.chapter2` the chapter-2 summaries;
- :mod:`olfacto.analysis.real_odors`, :mod:`olfacto.analysis.fit` — the real-odor puzzle's and the
  experiment fit's numbers.
"""

from .chapter1 import *  # noqa: F401,F403
from .chapter1 import __all__ as _ch1
from .common import *  # noqa: F401,F403
from .common import __all__ as _common

__all__ = list(_common) + list(_ch1)
