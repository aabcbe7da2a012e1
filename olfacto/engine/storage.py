"""Writing and reading results: atomic netCDF files (xarray + h5netcdf).

A result is written to a temporary file in the target folder and renamed into
place (``os.replace`` is atomic on POSIX), so a run killed at any moment leaves
either the previous complete file or the new complete file, never a torn one.
A temporary file left by a killed process (``.NAME.PID.*.tmp``, its writer no
longer running) is removed by the next write of the same file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import xarray as xr

from ..config import ConfigError


@contextlib.contextmanager
def _atomic(path: str | Path):
    """Yield a temporary path beside ``path``; on success fsync it and rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_stale(path: Path) -> None:
    """Remove temporaries of ``path`` whose writing process is gone (killed with SIGKILL, say)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except OSError:  # alive, or not ours to ask about
            pass


class WriteError(ConfigError):
    """An output could not be written (disk full, quota, a file-size limit): one line naming the file; what
    was there before is unchanged (exit 2, like an unwritable --out found before the work)."""


def atomic_write_bytes(path: str | Path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically; :class:`WriteError` when the filesystem refuses it."""
    try:
        with _atomic(path) as tmp:
            Path(tmp).write_bytes(payload)
    except OSError as exc:
        raise WriteError(f"cannot write {str(path)!r}: {exc.strerror or exc} (a file already there is unchanged)") from None
    return Path(path)


def write_dataset(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` as netCDF-4 to ``path`` atomically (temporary file, fsync, rename).

    The file is made in memory and then written with plain writes: HDF5 writing onto a full disk
    printed a traceback and then crashed the process (SIGSEGV) while closing the file."""
    with _local_lock():
        payload = bytes(ds.to_netcdf(engine="h5netcdf"))
    return atomic_write_bytes(path, payload)


def _local_lock():
    """xarray locks a NetCDF write with the lock of Dask's current scheduler; inside a Dask task (a sweep's or a
    figure's) that is the cluster's distributed lock, named after the target, and an in-memory target has no
    name it can find (RuntimeError "Semaphore or Lock … not known"): the synchronous scheduler's local lock."""
    try:
        import dask
    except ImportError:  # without Dask xarray's lock is a local one
        return contextlib.nullcontext()
    return dask.config.set(scheduler="synchronous")


def read_dataset(path: str | Path) -> xr.Dataset:
    """Open a result written by :func:`write_dataset` (loaded into memory, file closed)."""
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def save_figure(fig, stem: str | Path, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Save a matplotlib figure as ``stem.<fmt>`` for each format, each atomically."""
    import io as _io

    out = []
    for fmt in formats:
        buf = _io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=200 if fmt == "png" else None, bbox_inches="tight")
        out.append(atomic_write_bytes(Path(f"{stem}.{fmt}"), buf.getvalue()))
    return out
