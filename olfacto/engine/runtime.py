"""Process-level settings for the JAX runtime: the CPU-scheduler workaround and the persistent compilation cache.

Importing olfacto changes nothing in the process. The first simulation — ``olfacto.run``,
``olfacto.run_batch``, a sweep, a figure, from the command line or from Python — calls
:func:`ensure`, which does what the ``olfacto`` command does at start for whatever this process
has not decided yet:

- :func:`cpu_scheduler_workaround`: on jaxlib 0.10.x, adds
  ``--xla_cpu_enable_concurrency_optimized_scheduler=false`` to ``XLA_FLAGS`` (read once, when
  JAX's CPU backend starts; too late once JAX has computed anything, and then it warns);
- :func:`compilation_cache`: turns on JAX's persistent compilation cache in
  ``$OLFACTO_JAX_CACHE`` or ``~/.cache/olfacto/jax`` (``OLFACTO_JAX_CACHE=off``: no cache), unless
  a cache folder is already configured for JAX, so a notebook restart loads the programs an earlier
  run compiled instead of compiling them again.

Both are process-wide (``XLA_FLAGS`` is inherited by subprocesses; the cache then also holds the
user's own JAX programs that take more than 0.3 s to compile). To decide yourself, call
:func:`setup` (or either function) before the first simulation — ``setup(cache="off",
scheduler_workaround=False)`` changes nothing — or set ``OLFACTO_RUNTIME=manual`` in the
environment, and olfacto leaves the process alone (docs/architecture.md, "Runtime").

Why the workaround: on jaxlib 0.10.2, XLA's concurrency-optimized CPU scheduler deadlocks olfacto's
vmapped measurement program. Reproduced on 2 cores (N = 2,000, P = 200, the measure
program compiled at optimisation level 1, no workaround): the process hung at 0 % CPU
with the main thread in ``BlockUntilReady`` and every XLA:CPU worker thread idle in
``WaitForWork`` (py-spy and gdb stacks) — a lost wake-up in the runtime's task
scheduling, not a slow computation. The same program with this flag finished 3 runs
of 3. The flag is applied only for the affected jaxlib series, and the user's own
``XLA_FLAGS`` setting of it always wins.
"""

from __future__ import annotations

import os
import sys
import warnings

FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
AFFECTED_JAXLIB = ("0.10.",)
"""jaxlib version prefixes on which the workaround is applied."""

MANUAL_ENV = "OLFACTO_RUNTIME"
"""``OLFACTO_RUNTIME=manual``: :func:`ensure` does nothing (the process's JAX settings are left to the user)."""

# what this process has decided (by an explicit call or by ensure); ensure fills in only the rest
_decided = {"scheduler": False, "cache": False}


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
    _decided["scheduler"] = True
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_enable_concurrency_optimized_scheduler" in flags:
        return FLAG in flags
    if not _affected():
        return False
    if "jax" in sys.modules and _backend_started():
        warnings.warn("olfacto: JAX has already started, so the CPU-scheduler workaround "
                      f"({FLAG}) cannot take effect in this process; call olfacto.engine.runtime.setup() or set "
                      "XLA_FLAGS before the first JAX computation (see docs/architecture.md, Runtime)",
                      RuntimeWarning, stacklevel=2)
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    return True


DEFAULT_CACHE = "~/.cache/olfacto/jax"
CACHE_MAX_BYTES = 8 << 30
"""The persistent compilation cache's size bound (least recently used entries go first): large enough that
the figures' few hundred programs (tens of MB) never evict each other, and set so JAX locks the cache."""


def compilation_cache(path: str | None = None, log=None) -> str | None:
    """Turn on JAX's persistent compilation cache for this process (the command line does, for every
    command that simulates, and so does the first simulation from Python: :func:`ensure`), so a shape
    compiled once — by an earlier run, sweep or figure — loads in a fraction of its compile time.
    ``path``: a folder, or ``"off"``; default ``$OLFACTO_JAX_CACHE`` or ``~/.cache/olfacto/jax``. A
    cache the user configured for JAX is kept. Returns the folder in use.
    """
    _decided["cache"] = True
    path = path or os.environ.get("OLFACTO_JAX_CACHE")
    if path == "off":
        return None
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current and not path:
        return current
    folder = os.path.expanduser(path or DEFAULT_CACHE)
    try:
        os.makedirs(folder, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", folder)
        # olfacto's programs take 0.3–10 s to compile: cache all but the trivial ones
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)
        if jax.config.jax_compilation_cache_max_size == -1:
            # a size bound turns on JAX's file lock around every read and write of the cache: without it an entry
            # being written by one thread or process can be read half-written by another, which then warns
            # ("Error reading persistent compilation cache entry … truncated stream") and compiles again —
            # seen with two batches at once (devices.map_batches); Dask workers sharing the cache race alike
            jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)
    except Exception as exc:  # noqa: BLE001 - a cache is an optimisation only
        if log:
            log(f"no compilation cache ({exc})")
        return None
    return folder


def setup(cache: str | None = None, scheduler_workaround: bool = True, log=None) -> dict:
    """What the ``olfacto`` command does at start, as one call: the CPU-scheduler workaround (unless
    ``scheduler_workaround=False``) and the compilation cache (``cache``: a folder, ``"off"``, or None
    for the default of :func:`compilation_cache`). Call it before the first JAX computation; olfacto's
    first simulation then changes nothing more. Returns ``{"scheduler_workaround": bool,
    "compilation_cache": folder or None}``.
    """
    if scheduler_workaround:
        on = cpu_scheduler_workaround()
    else:
        _decided["scheduler"], on = True, FLAG in os.environ.get("XLA_FLAGS", "")
    return {"scheduler_workaround": on, "compilation_cache": compilation_cache(cache, log)}


def ensure() -> None:
    """Called by olfacto's simulations before their first JAX computation (``olfacto.engine.loop.build``):
    applies :func:`cpu_scheduler_workaround` and :func:`compilation_cache` for whatever this process has not
    decided yet — by the command line, :func:`setup`, or an earlier call — unless ``OLFACTO_RUNTIME=manual``.
    A cache that cannot be made is an optimisation lost, said in a RuntimeWarning."""
    if all(_decided.values()) or os.environ.get(MANUAL_ENV, "").strip().lower() == "manual":
        return
    if not _decided["scheduler"]:
        cpu_scheduler_workaround()
    if not _decided["cache"]:
        compilation_cache(log=lambda m: warnings.warn(f"olfacto: {m}", RuntimeWarning, stacklevel=3))
