"""Memory: what a run needs (from its shapes) against what the machine has, checked before any allocation.

A run holds what each of its components says it holds (:meth:`Component.bytes`: the
projection's masks, weights, rule state, step temporaries, mask draw and chunked
update; the recurrence's A and the refined probes), and beside them J_L, J_R (N × M),
the probe responses y, ŷ and the measurement temporaries (≈ 8 arrays of P × N), one
slot's gathered rows of the probes' sparse product (P × N, :func:`~olfacto.model.sparse.matmat`) and the breath
inputs of a chunk. A vmapped batch needs this per run; the process itself (Python,
JAX, XLA) about ``BASELINE`` bytes.

:func:`check` compares the estimate with :func:`available`, the smallest of
the memory the kernel can hand out (``MemAvailable``), the cgroup limit of a
container, the address-space limit (``ulimit -v``) and, on an accelerator, the
device's free memory; it refuses with a one-line
:class:`~olfacto.config.ConfigError` giving both numbers. ``--no-memory-check``
(``olfacto run`` and ``olfacto sweep``) skips it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import Config, ConfigError

BASELINE = 600 * 2**20  # Python + JAX + XLA runtime with nothing allocated, measured ≈ 0.5 GiB on CPU
# measured peak / estimate stayed below 1 on CPU for N = 1e3 … 3e4 (docs/reliability.md); this margin
# covers allocator slack and XLA's scheduling of the two directions at once
SAFETY = 1.25


def bytes_per_run(cfg: Config) -> int:
    """Estimated peak bytes of one run of ``cfg`` (excluding the process baseline): every active component's
    own memory (:meth:`olfacto.model.component.Component.bytes`) and what the run holds beside them."""
    from ..model import network

    c, r = cfg.circuit, cfg.run
    n, m, p_probe = c.n_cortex, c.n_glomeruli, r.n_probe
    probes = 4 * (2 * n * m + p_probe * m + 8 * p_probe * n + p_probe * p_probe)
    gather = 4 * p_probe * n  # one slot's gathered rows of the probes' sparse product
    breaths = 4 * 4 * r.record_every * m
    return int(network.bytes_of(cfg) + probes + gather + breaths + protocol_bytes(cfg))


def protocol_bytes(cfg: Config) -> int:
    """Peak bytes of the recordings' protocol at the end of a run (:func:`olfacto.recordings.virtual.record_network`):
    2·O·T trials of M inputs and N responses on the device (float32: inputs, the other side's responses, what
    the recorded cortex receives), and on the host the responses, their noise, the noisy responses and their
    transposed copy (float64). 0 when the protocol is off."""
    pc = cfg.protocol
    if not pc.enabled:
        return 0
    trials = 2 * pc.n_odors * pc.n_trials
    n, m = cfg.circuit.n_cortex, cfg.circuit.n_glomeruli
    return int(4 * trials * (m + 3 * n) + 8 * 4 * trials * n)


def shard_to_fit(cfg: Config, free: list[int] | None = None) -> Config | None:
    """``cfg`` with ``circuit.shard: true`` when one accelerator cannot hold the run but the local
    accelerators together can (rows split evenly, so each needs about 1/n of the run); else None.

    ``free``: free bytes per local device (default: asked of the devices; CPUs share the host's
    memory, so splitting over them does not help and None is returned).
    """
    from .. import config

    if cfg.circuit.shard:
        return None
    if free is None:
        free = _devices_free()
    n_dev = len(free)
    if n_dev < 2 or cfg.circuit.n_cortex % n_dev:
        return None
    need = bytes_per_run(cfg)
    if SAFETY * (BASELINE + need) <= free[0] or SAFETY * (BASELINE + need / n_dev) > min(free):
        return None
    return config.replace(cfg, **{"circuit.shard": True})


def _devices_free() -> list[int]:
    """Free bytes of each local accelerator ([] on CPU)."""
    import jax

    out = []
    for device in jax.local_devices():
        stats = (device.memory_stats() or {}) if device.platform != "cpu" else {}
        if "bytes_limit" not in stats:
            return []
        out.append(int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)))
    return out


def estimate(configs: list[Config], batch_size: int = 1, devices: int = 1) -> int:
    """Peak bytes of running ``batch_size`` runs of the largest of ``configs`` at once, process included
    (per device when a sharded network is split over ``devices`` accelerators)."""
    return BASELINE + batch_size * max(bytes_per_run(c) for c in configs) // devices


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    """Memory left under a cgroup-v2 limit (containers), if any."""
    try:
        cgroup = Path("/proc/self/cgroup").read_text().strip().splitlines()[0].split(":", 2)[2]
        folder = Path("/sys/fs/cgroup") / cgroup.lstrip("/")
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((folder / "memory.current").read_text().strip())
    except (OSError, ValueError, IndexError):
        return None


def _rlimit_available() -> int | None:
    """Address space left under ``ulimit -v`` (RLIMIT_AS), if set."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return soft - int(line.split()[1]) * 1024
        return soft
    except (ImportError, OSError, ValueError, IndexError):
        return None


def _device_available() -> int | None:
    """Free memory of the first accelerator (None on CPU, where host memory is what counts)."""
    free = _devices_free()
    return free[0] if free else None


def available() -> tuple[int | None, str]:
    """Bytes a new run can use and where that number comes from (None if nothing is known)."""
    found = [(v, what) for v, what in [(_device_available(), "free on the accelerator"),
                                       (_meminfo_available(), "available on this machine"),
                                       (_cgroup_available(), "left under this container's limit"),
                                       (_rlimit_available(), "left under the address-space limit (ulimit -v)")]
             if v is not None]
    if not found:
        return None, "unknown"
    return min(found)


def gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**27 else f"{n / 2**20:.3g} MiB"


def check(configs: list[Config], batch_size: int = 1, option: str | None = None) -> int:
    """Refuse (ConfigError) when ``batch_size`` runs of ``configs`` cannot fit; return the estimate in bytes."""
    # a sharded network needs 1/n of itself on each of n accelerators (CPU devices share one memory)
    split = len(_devices_free()) if all(c.circuit.shard for c in configs) else 1
    need = estimate(configs, batch_size, max(split, 1))
    have, what = available()
    if have is not None and SAFETY * need > have:
        big = max(configs, key=bytes_per_run)
        c, pc = big.circuit, big.protocol
        hint = (f"; lower {option}" if option and batch_size > 1 else
                f"; lower protocol.n_odors={pc.n_odors} or protocol.n_trials={pc.n_trials} (the recordings' protocol "
                f"needs ≈ {gib(protocol_bytes(big))})" if 2 * protocol_bytes(big) > bytes_per_run(big) else
                f"; lower circuit.n_cortex={c.n_cortex} or circuit.connection_prob={c.connection_prob!r}")
        raise ConfigError(f"out of memory before starting: the run needs ≈ {gib(SAFETY * need)} "
                          f"({'a batch of ' + str(batch_size) + ' runs, ' if batch_size > 1 else ''}"
                          f"circuit.n_cortex={c.n_cortex}), {gib(max(have, 0))} {what}{hint}, "
                          "or pass --no-memory-check to try anyway")
    return need
