"""Reader for the bilateral recordings of olfactory-cortex neurons (Grimaud et al., eNeuro 2024).

Reads ``tetrodeRecordings_OC_2s.mat`` (MATLAB v5) from the public repository
VNMurthyLab/IpsiContra, by path (never copied). Four variables, each a 1×10 cell
array with one cell per awake mouse:

- ``A{m}``: (neurons × 16 odors × 2 sides × trials) odor-evoked response over the 2 s
  of odor delivery, baseline subtracted; odor 16 is the blank, side 1 the nostril
  ipsilateral to the recorded hemisphere, side 2 the contralateral one;
- ``B{m}``: recording session of each neuron; ``BasalFR{m}``: basal firing rate (Hz);
- ``C{m}``: (neurons × 16 × 2) 0/1, significant response to that odor on that side.

Regions: mice 1–3 anterior olfactory nucleus (AON), 4–7 anterior piriform cortex
(APC), 8–10 posterior piriform cortex (PPC).

The result is an :class:`xarray.Dataset` over one ``neuron`` axis (all mice pooled) with
``mouse``, ``region``, ``unit`` and ``session`` coordinates, the panel's responses
``response(neuron, odor, side, trial)`` (odors 1–15) and the blank kept apart as
``blank(neuron, side, trial)`` — the layout :mod:`olfacto.recordings.protocol` measures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ..config import ConfigError

FILENAME = "tetrodeRecordings_OC_2s.mat"
REGIONS: dict[str, tuple[int, ...]] = {"AON": (1, 2, 3), "APC": (4, 5, 6, 7), "PPC": (8, 9, 10)}
N_MICE = 10
N_ODORS = 15  # the panel; index 15 (odor 16) of A and C is the blank
SIDES = ("ipsi", "contra")  # side 1, side 2 of the file (README of the data folder)
REQUIRED = ("A",)
OPTIONAL = ("B", "BasalFR", "C")
CITATION = ("Grimaud, Dorrell, Jayakumar, Pehlevan & Murthy, Bilateral alignment of receptive fields in the "
            "olfactory cortex, eNeuro 11(11), 2024; data: github.com/VNMurthyLab/IpsiContra")


def _error(path: Path, problem: str) -> ConfigError:
    return ConfigError(f"recordings {str(path)!r}: {problem}")


def resolve(path: str | Path) -> Path:
    """The .mat file: ``path`` itself, or ``path/tetrodeRecordings_OC_2s.mat`` for a folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        inner = path / FILENAME
        if not inner.is_file():
            raise _error(path, f"no {FILENAME} in this folder; expected the IpsiContra data folder")
        return inner
    if not path.exists():
        raise _error(path, f"not found; expected the IpsiContra data folder or its {FILENAME}")
    if not path.is_file():
        raise _error(path, "not a regular file")
    return path


def _loadmat(path: Path) -> dict:
    from scipy import io as sio

    if path.stat().st_size == 0:
        raise _error(path, "empty file; expected a MATLAB v5 .mat file")
    try:
        return sio.loadmat(path)
    except NotImplementedError:  # scipy's answer to MATLAB v7.3 (HDF5) files
        raise _error(path, "MATLAB v7.3 (HDF5) file; expected MATLAB v5 (save with -v7)") from None
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError, … on non-MAT input
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise _error(path, f"not a readable MATLAB v5 .mat file ({reason[:120]})") from None


def _cells(path: Path, mat: dict, name: str) -> list[np.ndarray]:
    """The per-mouse arrays of a 1×10 MATLAB cell (an object array for scipy)."""
    value = mat[name]
    if not (isinstance(value, np.ndarray) and value.dtype == object):
        raise _error(path, f"variable {name} is a {getattr(value, 'dtype', type(value).__name__)} array of shape "
                           f"{getattr(value, 'shape', ())}; expected a 1×{N_MICE} cell array (one cell per mouse)")
    cells = list(value.ravel(order="F"))
    if len(cells) != N_MICE:
        raise _error(path, f"variable {name} has {len(cells)} cells; expected {N_MICE} (one per mouse)")
    out = []
    for m, cell in enumerate(cells, start=1):
        arr = np.asarray(cell)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise _error(path, f"{name}{{{m}}} holds {arr.dtype} values; expected numbers")
        out.append(arr)
    return out


def _check_shape(path: Path, name: str, m: int, arr: np.ndarray, expected: tuple, what: str) -> None:
    ok = arr.ndim == len(expected) and all(isinstance(e, str) or s == e for s, e in zip(arr.shape, expected))
    if not ok:
        shown = ", ".join(str(e) for e in expected)
        raise _error(path, f"{name}{{{m}}} has shape {arr.shape}; expected ({shown}): {what}")


def _check_vector(path: Path, name: str, m: int, arr: np.ndarray, n: int, what: str) -> None:
    """A column (n, 1) as MATLAB stores it; a row or a flat vector of n values is accepted too."""
    if arr.size != n or sum(d > 1 for d in arr.shape) > 1:
        raise _error(path, f"{name}{{{m}}} has shape {arr.shape}; expected ({n}, 1): {what}")


def _check_finite(path: Path, name: str, m: int, arr: np.ndarray) -> None:
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    if bad:
        kind = "all values are" if bad == arr.size else f"{bad} of {arr.size} values are"
        raise _error(path, f"{name}{{{m}}}: {kind} NaN or infinite; expected finite responses")


def load(path: str | Path) -> xr.Dataset:
    """Read the recordings into a Dataset (see the module docstring for the layout).

    ``path``: the IpsiContra data folder or the .mat file itself. Raises
    :class:`ConfigError` (one line naming the path and the problem) for a missing,
    empty or unreadable file, missing variables, wrong shapes or non-finite responses.
    """
    path = resolve(path)
    mat = _loadmat(path)
    missing = [name for name in REQUIRED if name not in mat]
    if missing:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise _error(path, f"no variable {', '.join(missing)} (found: {', '.join(found) or 'none'}); "
                           f"expected {', '.join(REQUIRED + OPTIONAL)}")

    a = _cells(path, mat, "A")
    counts = []
    for m, arr in enumerate(a, start=1):
        _check_shape(path, "A", m, arr, ("neurons", N_ODORS + 1, 2, "trials"),
                     "neurons × 16 odors (the 16th the blank) × 2 sides × trials")
        if arr.shape[0] < 1 or arr.shape[3] < 2:
            raise _error(path, f"A{{{m}}} has shape {arr.shape}; expected at least 1 neuron and 2 trials")
        _check_finite(path, "A", m, arr)
        counts.append(arr.shape[0])
    n_trials = {arr.shape[3] for arr in a}
    if len(n_trials) != 1:
        raise _error(path, f"A: the mice have different trial counts {sorted(n_trials)}; expected one")
    full = np.concatenate([np.asarray(arr, np.float64) for arr in a])  # (neuron, 16, side, trial)

    mouse = np.repeat(np.arange(1, N_MICE + 1), counts)
    region_of = {m: r for r, mice in REGIONS.items() for m in mice}
    coords = {
        "neuron": np.arange(full.shape[0]),
        "mouse": ("neuron", mouse, {"long_name": "mouse (1–10)"}),
        "region": ("neuron", np.array([region_of[m] for m in mouse]),
                   {"long_name": "recorded region: AON (mice 1–3), APC (4–7), PPC (8–10)"}),
        "unit": ("neuron", np.concatenate([np.arange(1, c + 1) for c in counts]),
                 {"long_name": "row of the neuron in its mouse's arrays (1-based, as in MATLAB)"}),
        "odor": ("odor", np.arange(1, N_ODORS + 1), {"long_name": "odor of the panel (1–15)"}),
        "side": ("side", list(SIDES), {"long_name": "stimulated nostril relative to the recorded hemisphere"}),
        "trial": ("trial", np.arange(1, full.shape[3] + 1), {"long_name": "trial (repeat)"}),
    }
    rate = {"units": "Hz"}
    data_vars = {
        "response": (("neuron", "odor", "side", "trial"), full[:, :N_ODORS],
                     {"long_name": "odor-evoked firing-rate change over the 2 s of odor delivery, baseline "
                                   "subtracted", **rate}),
        "blank": (("neuron", "side", "trial"), full[:, N_ODORS],
                  {"long_name": "response to the blank (odor 16), same measure", **rate}),
    }

    if "B" in mat:
        b = _cells(path, mat, "B")
        for m, arr in enumerate(b, start=1):
            _check_vector(path, "B", m, arr, counts[m - 1], "one session id per neuron of A")
        coords["session"] = ("neuron", np.concatenate([arr.ravel() for arr in b]).astype(np.int64),
                             {"long_name": "recording session within the mouse (1-based)"})
    if "BasalFR" in mat:
        fr = _cells(path, mat, "BasalFR")
        for m, arr in enumerate(fr, start=1):
            _check_vector(path, "BasalFR", m, arr, counts[m - 1], "one rate per neuron of A")
            _check_finite(path, "BasalFR", m, arr)
        data_vars["basal_rate"] = ("neuron", np.concatenate([np.asarray(x, np.float64).ravel() for x in fr]),
                                   {"long_name": "basal firing rate", **rate})
    if "C" in mat:
        c = _cells(path, mat, "C")
        for m, arr in enumerate(c, start=1):
            _check_shape(path, "C", m, arr, (counts[m - 1], N_ODORS + 1, 2), "neurons of A × 16 odors × 2 sides")
        sig = np.concatenate(c)[:, :N_ODORS].astype(bool)
        data_vars["significant"] = (("neuron", "odor", "side"), sig,
                                    {"long_name": "significant response to the odor on that side (the authors' test)"})

    attrs = {
        "title": "bilateral tetrode recordings of olfactory-cortex neurons, awake mice",
        "source": str(path.resolve()),
        "citation": CITATION,
        "side_convention": "side 'ipsi' is side 1 of the file, 'contra' side 2 (the data README)",
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def by_region(ds: xr.Dataset) -> dict[str, xr.Dataset]:
    """The neurons of each region, in :data:`REGIONS` order (regions absent from ``ds`` are left out)."""
    out = {}
    for region in REGIONS:
        keep = np.asarray(ds["region"].values == region)
        if keep.any():
            out[region] = ds.isel(neuron=np.flatnonzero(keep))
    return out
