"""One consistent style for every olfacto figure."""

from __future__ import annotations

import matplotlib.pyplot as plt  # headless machines fall back to Agg; notebooks keep their inline backend

RC = {
    "figure.dpi": 110,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.5,
    "lines.markersize": 4,
    "errorbar.capsize": 2,
}

# direction colours and a sequential map for parameter families
COLORS = {"L_to_R": "#1f77b4", "R_to_L": "#d62728", "mean": "#222222", "hebbian": "#2a9d8f", "sgd": "#e76f51",
          "theory": "#555555"}


def figure(ncols: int = 1, nrows: int = 1, width: float = 3.3, height: float = 2.6, **kw):
    """A figure with ``nrows × ncols`` panels of the given size (inches) in the olfacto style."""
    with plt.rc_context(RC):
        fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False,
                                 layout="constrained", **kw)
    return fig, axes


def family(n: int, cmap: str = "viridis"):
    """n colours from a sequential map (for curves indexed by η, N, …)."""
    cm = plt.get_cmap(cmap)
    return [cm(0.1 + 0.8 * i / max(n - 1, 1)) for i in range(n)]
