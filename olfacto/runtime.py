"""Process-level settings for the JAX runtime, applied only by olfacto's entry points.

Importing olfacto changes nothing in the process. The command line (``olfacto …``)
and the test suite call :func:`cpu_scheduler_workaround` before their first
computation; a notebook that wants it calls it right after ``import olfacto``, before
any JAX computation (docs/architecture.md, "Runtime").

Why: on jaxlib 0.10.2, XLA's concurrency-optimized CPU scheduler was seen (chapter-1
session, 2 idle cores) to deadlock olfacto's vmapped measurement program — every
thread idle, the result never ready — while the default scheduler ran it correctly
and faster. The root cause was not identified: it did not reproduce on the same
jaxlib under load (old and new program structure alike), so the workaround is kept,
but only for the affected jaxlib series and never behind the user's back.
"""

from __future__ import annotations

import os
import warnings

FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
AFFECTED_JAXLIB = ("0.10.",)
"""jaxlib version prefixes on which the workaround is applied."""


def _affected() -> bool:
    try:
        from importlib.metadata import version

        return version("jaxlib").startswith(AFFECTED_JAXLIB)
    except Exception:  # noqa: BLE001 - no jaxlib metadata: nothing to work around
        return False


def cpu_scheduler_workaround() -> bool:
    """Disable XLA's concurrency-optimized CPU scheduler for this process, if it still can be.

    Returns whether the flag is in effect. Does nothing on unaffected jaxlib versions or
    when the user's ``XLA_FLAGS`` already decide the setting; warns when the CPU backend has
    already started (the flag is read once, at backend start).
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_enable_concurrency_optimized_scheduler" in flags:
        return FLAG in flags
    if not _affected():
        return False
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        warnings.warn("olfacto: JAX has already started, so the CPU-scheduler workaround "
                      f"({FLAG}) cannot take effect in this process; set XLA_FLAGS before the first "
                      "JAX computation (see docs/architecture.md, Runtime)", RuntimeWarning, stacklevel=2)
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    return True
