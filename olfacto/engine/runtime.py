"""Process-level settings for the JAX runtime, applied only by olfacto's entry points.

Importing olfacto changes nothing in the process. The command line (``olfacto …``)
and the test suite call :func:`cpu_scheduler_workaround` before their first
computation; a notebook that wants it calls it right after ``import olfacto``, before
any JAX computation (docs/architecture.md, "Runtime").

Why: on jaxlib 0.10.2, XLA's concurrency-optimized CPU scheduler deadlocks olfacto's
vmapped measurement program. Reproduced on 2 cores (N = 2,000, P = 200, the measure
program compiled at optimisation level 1, no workaround): the process hung at 0 % CPU
with the main thread in ``BlockUntilReady`` and every XLA:CPU worker thread idle in
``WaitForWork`` (py-spy and gdb stacks) — a lost wake-up in the runtime's task
scheduling, not a slow computation. The same program with this flag finished 3 runs
of 3. The flag is applied only for the affected jaxlib series and never behind the
user's back (importing olfacto does not apply it; JAX is not imported to check it).
"""

from __future__ import annotations

import os
import sys
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


def _backend_started() -> bool:
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()


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
    if "jax" in sys.modules and _backend_started():
        warnings.warn("olfacto: JAX has already started, so the CPU-scheduler workaround "
                      f"({FLAG}) cannot take effect in this process; set XLA_FLAGS before the first "
                      "JAX computation (see docs/architecture.md, Runtime)", RuntimeWarning, stacklevel=2)
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    return True


DEFAULT_CACHE = "~/.cache/olfacto/jax"


def compilation_cache(path: str | None = None, log=None) -> str | None:
    """Turn on JAX's persistent compilation cache for this process (the command line does, for every
    command that simulates), so a shape compiled once — by an earlier run, sweep or figure — loads
    in a fraction of its compile time. ``path``: a folder, or ``"off"``; default ``$OLFACTO_JAX_CACHE``
    or ``~/.cache/olfacto/jax``. A cache the user configured for JAX is kept. Returns the folder in use.
    """
    import jax

    path = path or os.environ.get("OLFACTO_JAX_CACHE")
    if path == "off":
        return None
    current = jax.config.jax_compilation_cache_dir
    if current and not path:
        return current
    folder = os.path.expanduser(path or DEFAULT_CACHE)
    try:
        os.makedirs(folder, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", folder)
        # olfacto's programs take 0.3–10 s to compile: cache all but the trivial ones
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)
    except Exception as exc:  # noqa: BLE001 - a cache is an optimisation only
        if log:
            log(f"no compilation cache ({exc})")
        return None
    return folder
