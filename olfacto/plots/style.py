"""One consistent style for every olfacto figure.

Figures are plain ``matplotlib.figure.Figure`` objects, never registered with pyplot: a plot
function returns its Figure and leaves pyplot's global state (current figure, interactive mode,
backend) alone. In a notebook a returned Figure displays when it is the cell's value (or with
``display(fig)``); ``fig.savefig`` works on any machine without choosing a backend.
"""

from __future__ import annotations

import io

import matplotlib as mpl
from matplotlib.figure import Figure


class OlfactoFigure(Figure):
    """A matplotlib Figure that shows itself in Jupyter as the value of a cell (``_repr_png_``),
    whether or not the kernel's inline backend has been activated."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        return buf.getvalue()

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
    with mpl.rc_context(RC):
        fig = OlfactoFigure(figsize=(width * ncols, height * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def family(n: int, cmap: str = "viridis"):
    """n colours from a sequential map (for curves indexed by η, N, …)."""
    cm = mpl.colormaps[cmap]
    return [cm(0.1 + 0.8 * i / max(n - 1, 1)) for i in range(n)]


def log_ticks(ax, values, axis: str = "x") -> None:
    """A log axis labelled at ``values`` in plain numbers (no crowded minor labels)."""
    from matplotlib.ticker import NullFormatter, NullLocator

    which = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    which.set_minor_locator(NullLocator())
    which.set_minor_formatter(NullFormatter())
    (ax.set_xticks if axis == "x" else ax.set_yticks)(list(values), [f"{v:g}" for v in values])
