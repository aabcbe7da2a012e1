"""Reader for measured mouse glomerular odor responses (Chae et al. 2019).

Reads a folder laid out like the public repository ``mosaic_representations``::

    glomerular_data/glomerular_responses/
        glomerular_odor_panel.csv                      odor names (row 1: mineral-oil blank)
        glomerular_responses__main/animal_#k/{left,right}_hemibulb/
            {side}_hemibulb_ROI_responses.mat          57 odors × n ROIs of dR/R

Intrinsic-signal imaging reports activation as a *decrease* in reflectance, so
the response used here is r = −dR/R, and values with −dR/R < threshold
(the authors' 0.00045) are set to 0 ("no response"). Data are read by path,
never copied.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from scipy import io as sio

from ..config import ConfigError
from ..config.checks import FLOAT32_MAX
from . import similarity

_RESPONSES = Path("glomerular_data/glomerular_responses")
_MAIN = _RESPONSES / "glomerular_responses__main"


def _animals(root: Path) -> list[int]:
    return sorted(int(p.name.split("#")[1]) for p in (root / _MAIN).glob("animal_#*") if p.name.split("#")[1].isdigit())


def odor_names(root: str | Path) -> list[str]:
    """The 57 odor names of the panel, in the row order of the response matrices."""
    path = Path(root) / _RESPONSES / "glomerular_odor_panel.csv"
    if not path.is_file():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return [row["odor"] for row in csv.DictReader(fh)]
    except (OSError, UnicodeDecodeError, KeyError, csv.Error) as exc:
        raise ConfigError(f"odors.data_path={str(root)!r}: {path.name} is not a CSV with an 'odor' column "
                          f"({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _read_mat(path: Path, key: str, root: Path) -> np.ndarray:
    """The 2-D numeric matrix ``key`` of a .mat file; anything else is a ConfigError naming odors.data_path."""
    where = f"odors.data_path={str(root)!r}: {path.name}"
    try:
        mat = sio.loadmat(path)
    except Exception as exc:  # a corrupt or truncated file fails in many ways inside scipy
        raise ConfigError(f"{where} cannot be read as a MATLAB file ({_first_line(exc)})") from None
    if key not in mat:
        raise ConfigError(f"{where} holds no variable {key!r}")
    try:
        dr = np.asarray(mat[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {key!r} is not a numeric matrix (got {np.asarray(mat[key]).dtype})") from None
    if dr.ndim != 2 or dr.shape[0] < 2 or dr.shape[1] < 1:
        raise ConfigError(f"{where}: {key!r} has shape {dr.shape}; expected odors × ROIs (2-D, ≥ 2 odors)")
    if np.isinf(dr).any():
        raise ConfigError(f"{where}: {key!r} holds {int(np.isinf(dr).sum())} infinite values")
    finite = dr[np.isfinite(dr)]
    with np.errstate(over="ignore"):
        power = float(np.sum(finite * finite))
    if not power <= FLOAT32_MAX:  # the library is used in float32: its odors' norms must not overflow there
        raise ConfigError(f"{where}: {key!r} holds values up to |x| = {float(np.max(np.abs(finite))):.3g}; allowed: "
                          f"values whose sum of squares fits a float32 (≤ {FLOAT32_MAX:.3g}; dR/R is of order 0.01)")
    return dr


def load_glomerular(
    root: str | Path,
    animal: int = 1,
    hemibulb: str = "left",
    threshold: float = 0.00045,
    drop_blank: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """Responses r (odors × ROIs, r = −dR/R ≥ 0 after thresholding) and the odor names.

    Raises :class:`ConfigError` (naming ``odors.data_path``, ``odors.animal`` or
    ``odors.hemibulb``) when the folder does not have the expected layout.
    """
    root = Path(root).expanduser()
    if not (root / _MAIN).is_dir():
        raise ConfigError(
            f"odors.data_path={str(root)!r}: no {_MAIN}/ inside; expected a mosaic_representations folder"
        )
    folder = root / _MAIN / f"animal_#{animal}" / f"{hemibulb}_hemibulb"
    if not folder.is_dir():
        raise ConfigError(f"odors.animal={animal}: not in {str(root)!r}; allowed: {_animals(root)}")
    path = folder / f"{hemibulb}_hemibulb_ROI_responses.mat"
    if not path.is_file():
        raise ConfigError(f"odors.hemibulb={hemibulb!r}: {str(path)!r} not found")
    dr = _read_mat(path, f"{hemibulb}_hemibulb_ROI_responses", root)  # odors × ROIs, dR/R (activation < 0)
    response = np.where(-dr >= threshold, -dr, 0.0)  # NaN (not measured) counts as no response
    names = odor_names(root) or [f"odor {i + 1}" for i in range(dr.shape[0])]
    if len(names) != dr.shape[0]:
        raise ConfigError(f"odors.data_path={str(root)!r}: glomerular_odor_panel.csv names {len(names)} odors, "
                          f"{path.name} has {dr.shape[0]}")
    if drop_blank:
        response, names = response[1:], names[1:]
    return response, names


def base_odors(
    root: str | Path,
    n_glomeruli: int,
    animal: int = 1,
    hemibulb: str = "left",
    threshold: float = 0.00045,
    drop_blank: bool = True,
) -> np.ndarray:
    """Base odor library (odors × M) for ``odors.kind = dataset``.

    Keeps the M most responsive ROIs (largest summed response over odors), drops
    odors with no response on them, and scales the whole library by one number
    so that the mean squared response per channel is 1 (relative intensities of
    odors and glomeruli are kept).
    """
    response, _ = load_glomerular(root, animal, hemibulb, threshold, drop_blank)
    n_roi = response.shape[1]
    if n_glomeruli > n_roi:
        raise ConfigError(
            f"circuit.n_glomeruli={n_glomeruli}: animal #{animal} {hemibulb} hemibulb has {n_roi} ROIs; allowed: 1..{n_roi}"
        )
    order = np.argsort(-response.sum(axis=0), kind="stable")[:n_glomeruli]
    library = response[:, np.sort(order)]
    library = library[library.sum(axis=1) > 0]
    if library.shape[0] == 0:
        raise ConfigError(f"odors.threshold={threshold!r}: no odor of animal #{animal} ({hemibulb} hemibulb) has a "
                          f"response above it on the {n_glomeruli} most responsive ROIs; lower odors.threshold")
    return library / np.sqrt(np.mean(library**2))


def library(cfg) -> np.ndarray | None:
    """The measured base odors a config's ``odors.kind = dataset`` asks for (read by path), else None."""
    o = cfg.odors
    if o.kind != "dataset":
        return None
    return base_odors(o.data_path, cfg.circuit.n_glomeruli, o.animal, o.hemibulb, o.threshold, o.drop_blank)


def describe(cfg) -> str | None:
    """What an ``odors.kind = dataset`` config reads, in one line (None for any other kind): how many measured
    odors and glomeruli, of which animal and hemibulb, from where."""
    lib = library(cfg)
    if lib is None:
        return None
    o = cfg.odors
    n_roi = load_glomerular(o.data_path, o.animal, o.hemibulb, o.threshold, o.drop_blank)[0].shape[1]
    return (f"odors: {lib.shape[0]} measured odors × {lib.shape[1]} glomeruli (the most responsive of {n_roi} ROIs; "
            f"odors with no response on them dropped) of animal #{o.animal}, {o.hemibulb} hemibulb, from {o.data_path}")


def check_library(cfg) -> None:
    """Read the measured odors of an ``odors.kind = dataset`` config now (errors name the key), and check
    that the mixtures it asks for exist; read the protocol's odor similarity too
    (:func:`protocol_similarity`)."""
    if cfg.protocol.enabled:
        protocol_similarity(cfg.protocol, cfg.odors)
    lib = library(cfg)
    if lib is None:
        return
    o = cfg.odors
    if o.n_components > lib.shape[0]:
        raise ConfigError(f"odors.n_components={o.n_components}: only {lib.shape[0]} odors of animal "
                          f"#{o.animal} ({o.hemibulb}) respond above odors.threshold={o.threshold!r}; "
                          f"allowed: 1..{lib.shape[0]}")


def digest(cfg) -> str | None:
    """First 16 hex digits of the SHA-256 of the library a config reads (None when it reads none): what a
    sweep's fingerprint holds, so a changed data file is a changed sweep."""
    import hashlib

    lib = library(cfg)
    if lib is None:
        return None
    return hashlib.sha256(np.ascontiguousarray(lib, np.float64).tobytes()).hexdigest()[:16]


def protocol_similarity(protocol_section, odors_section) -> np.ndarray | None:
    """S, the similarity of the protocol's odors (:mod:`olfacto.recordings.similarity`), of a ``protocol``
    section, read and checked (None for ``odor_similarity: none``); ``odors_section`` names the measured data
    that ``measured`` correlates."""
    kind, n = protocol_section.odor_similarity, protocol_section.n_odors
    if kind == "none":
        return None
    if kind != "measured":
        return similarity.check(similarity.read(kind), n, f"protocol.odor_similarity={kind!r}")
    o = odors_section
    if not o.data_path:
        raise ConfigError("protocol.odor_similarity='measured': needs odors.data_path, the mosaic_representations "
                          "folder whose bulb odors it correlates; allowed otherwise: none, or a .npy/.csv file")
    response, names = load_glomerular(o.data_path, o.animal, o.hemibulb, o.threshold, o.drop_blank)
    where = f"animal #{o.animal}, {o.hemibulb} hemibulb, above odors.threshold={o.threshold!r}"
    s, _ = similarity.measured(response, names, n, where)
    return similarity.check(s, n, f"protocol.odor_similarity='measured' (odors.data_path={o.data_path!r})")
