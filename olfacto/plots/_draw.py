"""Drawing conventions shared by the chapter-1 figures: simulation as points with error
bars (mean ± s.e.m. over seeds), theory as lines."""

from __future__ import annotations

import numpy as np

from .style import COLORS

THEORY_STYLE = {"lw": 1.2, "alpha": 0.9, "zorder": 2}
SIM_STYLE = {"ls": "none", "ms": 4.5, "mew": 0.8, "elinewidth": 0.9, "capsize": 2, "zorder": 3}


def points(ax, x, mean, sem=None, color=None, label=None, marker="o", filled=True, **kw):
    """Simulation points with error bars (mean ± s.e.m.)."""
    style = dict(SIM_STYLE, marker=marker, color=color, label=label)
    if not filled:
        style.update(mfc="white", mec=color)
    style.update(kw)
    yerr = None if sem is None else np.asarray(sem, float)
    return ax.errorbar(np.asarray(x, float), np.asarray(mean, float), yerr=yerr, **style)


def theory(ax, x, y, color=None, label=None, ls="-", **kw):
    """A theory curve."""
    style = dict(THEORY_STYLE, color=color if color is not None else COLORS["theory"], ls=ls, label=label)
    style.update(kw)
    return ax.plot(np.asarray(x, float), np.asarray(y, float), **style)


def panel_title(ax, letter: str, text: str):
    ax.set_title(f"({letter}) {text}", loc="left")


def log_indices(n: int, count: int = 24, start: int = 1) -> np.ndarray:
    """About ``count`` indices in [start, n) spaced evenly in log(index) (for markers on a log time axis)."""
    if n - start <= count:
        return np.arange(start, n)
    return np.unique(np.round(np.geomspace(start, n - 1, count)).astype(int))


def log_axis(ax, axis: str = "x"):
    """Readable log-axis ticks: plain numbers at 1, 2, 5 × 10^k over short ranges, powers of ten
    over long ones, and no labels on minor ticks."""
    from matplotlib import ticker

    lo, hi = (ax.get_xlim() if axis == "x" else ax.get_ylim())
    span = np.log10(hi / lo) if lo > 0 and hi > 0 else 10.0
    target = ax.xaxis if axis == "x" else ax.yaxis
    if span <= 1.6:
        target.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        target.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    elif span <= 3.5:
        target.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 3.0)))
        target.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    else:
        target.set_major_locator(ticker.LogLocator(base=10))
        target.set_major_formatter(ticker.LogFormatterSciNotation())
    target.set_minor_formatter(ticker.NullFormatter())


def log_axes(fig):
    """Apply :func:`log_axis` to every log-scaled axis of ``fig``."""
    for axis in fig.axes:
        if axis.get_xscale() == "log":
            log_axis(axis, "x")
        if axis.get_yscale() == "log":
            log_axis(axis, "y")
