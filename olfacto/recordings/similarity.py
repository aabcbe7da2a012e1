"""The similarity structure of the protocol's odors (``protocol.odor_similarity``, :mod:`.virtual`).

The protocol's O odors can be drawn with a given similarity S (O×O, a correlation matrix: symmetric,
positive semi-definite, unit diagonal) instead of from the run's odor environment: per glomerulus m,

    x_{·m} = L z_{·m},   z_{·m} ~ N(0, I_O),   L Lᵀ = S        (:func:`factor`, :func:`draw`)

so across glomeruli the odors o and o' have covariance S_oo' and, each of unit variance, correlation
S_oo' (the sample correlation over M glomeruli scatters around it by ≈ (1 − S_oo'²)/√M).

S is

- ``measured``: the Pearson correlation, across the ROIs (glomeruli) of one hemibulb, of the measured
  bulb responses of O odors (Chae et al. 2019; ``odors.data_path``, a mosaic_representations folder read
  by :func:`olfacto.recordings.glomeruli.load_glomerular` with ``odors.animal``, ``odors.hemibulb``,
  ``odors.threshold``, ``odors.drop_blank``; :func:`olfacto.recordings.glomeruli.protocol_similarity`
  reads S for a config). The odor identities of the recordings (IpsiContra, 15
  odors) are not in that panel's data, so the panel stands in: the O = ``protocol.n_odors`` odors with
  the largest summed response over the ROIs (every one responds somewhere; ties in panel order), in panel
  order — for animal 1's left hemibulb and O = 15, mean off-diagonal correlation 0.10;
- a file: an O×O matrix in a ``.npy`` file or a ``.csv`` file of O rows of O numbers (no header), with
  O = ``protocol.n_odors``.

Every problem is a :class:`~olfacto.config.ConfigError` naming ``protocol.odor_similarity`` (or the
odors key it reads with), its value and what is allowed.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ..config import ConfigError
from ..model.precision import HIGHEST

TOLERANCE = 1e-6
"""How far from symmetric, from a unit diagonal, or below zero in its eigenvalues (relative to the largest)
a similarity matrix may be (rounding in a file)."""


def measured(response: np.ndarray, names: list[str], n_odors: int, where: str) -> tuple[np.ndarray, list[str]]:
    """S (n_odors × n_odors), the correlation across ROIs of the measured responses (odors × ROIs) of the
    ``n_odors`` odors with the largest summed response (in panel order), and their names; ``where`` starts
    the error when fewer odors respond."""
    total = response.sum(axis=1)
    responsive = int(np.sum(total > 0))
    if n_odors > responsive:
        raise ConfigError(f"protocol.n_odors={n_odors}: protocol.odor_similarity='measured' has {responsive} odors "
                          f"that respond ({where}); allowed: 3..{responsive}")
    chosen = np.sort(np.argsort(-total, kind="stable")[:n_odors])
    return np.corrcoef(response[chosen]), [names[i] for i in chosen]


def read(path: str | Path) -> np.ndarray:
    """The matrix in a ``.npy`` or ``.csv`` file (as float64)."""
    where = f"protocol.odor_similarity={str(path)!r}"
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{where}: file not found; allowed are none, measured, or an existing .npy or .csv file")
    try:
        if path.suffix.lower() == ".npy":
            matrix = np.load(path, allow_pickle=False)
        else:
            matrix = np.loadtxt(path, delimiter=",", ndmin=2)
        return np.asarray(matrix, dtype=np.float64)
    except Exception as exc:  # a corrupt file fails in many ways inside numpy
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{where}: cannot be read as a numeric matrix ({type(exc).__name__}: {first})") from None


def check(matrix: np.ndarray, n_odors: int, where: str) -> np.ndarray:
    """``matrix`` if it is an ``n_odors``×``n_odors`` correlation matrix (finite, symmetric, unit diagonal,
    positive semi-definite, within :data:`TOLERANCE`), else a ConfigError starting with ``where``."""
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ConfigError(f"{where}: has shape {matrix.shape}; allowed: a square O×O matrix with O = protocol.n_odors "
                          f"= {n_odors}")
    if matrix.shape[0] != n_odors:
        raise ConfigError(f"{where}: is {matrix.shape[0]}×{matrix.shape[0]} but protocol.n_odors={n_odors}; allowed: "
                          f"a {n_odors}×{n_odors} matrix, or protocol.n_odors={matrix.shape[0]}")
    if not np.isfinite(matrix).all():
        raise ConfigError(f"{where}: holds {int(np.sum(~np.isfinite(matrix)))} values that are not finite; allowed: "
                          "a correlation matrix")
    if np.max(np.abs(matrix - matrix.T)) > TOLERANCE:
        raise ConfigError(f"{where}: is not symmetric (|S − Sᵀ| up to {np.max(np.abs(matrix - matrix.T)):.3g}); "
                          "allowed: a correlation matrix")
    if np.max(np.abs(np.diag(matrix) - 1.0)) > TOLERANCE:
        raise ConfigError(f"{where}: its diagonal is not 1 (from {np.min(np.diag(matrix)):.3g} to "
                          f"{np.max(np.diag(matrix)):.3g}); allowed: a correlation matrix")
    low = float(np.linalg.eigvalsh(matrix).min())
    if low < -TOLERANCE * max(1.0, float(np.abs(matrix).max()) * n_odors):
        raise ConfigError(f"{where}: is not positive semi-definite (smallest eigenvalue {low:.3g}); allowed: a "
                          "correlation matrix")
    return matrix


def factor(matrix: np.ndarray) -> np.ndarray:
    """L with L Lᵀ = S, from the eigendecomposition S = V Λ Vᵀ: L = V Λ₊^{1/2} (Λ₊ = max(Λ, 0), so a
    singular S — more odors than the data's dimensions — has a factor too)."""
    vals, vecs = np.linalg.eigh(np.asarray(matrix, np.float64))
    return vecs * np.sqrt(np.maximum(vals, 0.0))


def draw(key: jax.Array, matrix: np.ndarray, n_glomeruli: int) -> jax.Array:
    """O odors (O, M) with similarity S across glomeruli: x_{·m} = L z_{·m}, z ~ N(0, I_O) (module docstring)."""
    lower = jnp.asarray(factor(matrix), jnp.float32)
    return jnp.matmul(lower, jax.random.normal(key, (matrix.shape[0], n_glomeruli)), precision=HIGHEST)
