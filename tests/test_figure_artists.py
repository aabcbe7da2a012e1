"""Every registered figure drawn from small data: the image has the artists its caption promises (simulation with
its seed spread as error bars or bands, theory lines, colour bars), no legend over data, and it fits a page
(issue 23, "Figures"). Each figure is drawn from its experiment's committed result (``figures/data``), reduced
to at most two seeds: drawing only, a few seconds per figure; the experiments' own reduced re-simulations are in
``test_figures.py``, ``test_chapter2.py`` and the others."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ROOT

FIGURES_DIR = ROOT / "figures"
MAX_WIDTH_IN = 7.2  # one thesis text width
MIN_FONT_PT = 6.5

# what each figure must show: "errorbar" (mean ± s.e.m. over seeds), "band" (fill_between), "colorbar",
# "lines" (at least this many Line2D with data, e.g. one per seed), "errorbars" (at least this many sets of
# error bars: where each panel promises its own)
EXPECTED: dict[str, dict] = {
    "learning_curves": {"errorbar_or_band": True, "lines": 4},
    "speed_accuracy": {"errorbar_or_band": True, "lines": 2},
    "alignment_vs_p": {"errorbar_or_band": True, "lines": 3},
    "inverse_scaling": {"errorbar_or_band": True, "lines": 4, "errorbars": 2, "bands": 1},  # (a), (b); fit's band
    "hebbian_vs_sgd": {"errorbar_or_band": True, "lines": 2},
    "update_alignment": {"errorbar_or_band": True, "lines": 3},
    "experiment_comparison": {"lines": 1},
    "experiment_fit": {"errorbar_or_band": True, "errorbars": 8},  # data (bootstrap 95 %), model posterior: per panel
    "experiment_posterior": {"errorbar_or_band": True, "errorbars": 10},  # each check: data (bootstrap), model
    "real_odors": {"lines": 0},
    "update_alignment_vs": {"errorbar_or_band": True, "lines": 10},
    "recurrence": {"errorbar_or_band": True, "lines": 5},
    "weight_fluctuations": {"lines": 2},
    "sgd_stability": {"errorbar_or_band": True, "lines": 6},
    "landscape": {"colorbar": 2, "lines": 4},
    "rewiring": {"lines": 2},
    "rewiring_saving": {"lines": 1},
    "rewiring_turnover": {"lines": 2},
    "rewiring_dependence": {"lines": 1},
}

_DATA: dict = {}


def _tiny(name: str):
    """The committed result of experiment ``name`` with at most two seeds (read once per module)."""
    from olfacto.analysis.common import SEED
    from olfacto.experiments import figures

    if name not in _DATA:
        ds = figures.load(name, FIGURES_DIR)
        if SEED in ds.dims and ds.sizes[SEED] > 2:
            ds = ds.isel({SEED: slice(0, 2)})
        _DATA[name] = ds
    return _DATA[name]


def _data_lines(ax):
    return [ln for ln in ax.get_lines() if np.asarray(ln.get_xdata()).size > 0 and ln.get_visible()]


def _legend_over_data(fig) -> list[str]:
    """Legends drawn inside an axes that cover a data point of a line of that axes (display coordinates)."""
    fig.canvas.draw()
    out = []
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None or not legend.get_visible():
            continue
        box = legend.get_window_extent()
        if not box.overlaps(ax.get_window_extent()):
            continue  # placed outside the axes
        for ln in _data_lines(ax):
            xy = np.column_stack([np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float)])
            xy = xy[np.isfinite(xy).all(axis=1)]
            if not xy.size:
                continue
            pts = ln.get_transform().transform(xy)
            if ln.get_linestyle() not in ("None", "none", " ", "") and len(pts) > 1:  # the segments too, not only
                f = np.linspace(0.0, 1.0, 25)[:, None, None]                         # the vertices
                pts = (pts[:-1] + f * (pts[1:] - pts[:-1])).reshape(-1, 2)
            inside = (pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1)
            if inside.any():
                out.append(f"{ax.get_title(loc='left') or ax.get_title()}: {ln.get_label()}")
                break
    return out


def _fonts(fig) -> list[float]:
    from matplotlib.text import Text

    return [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_figure_has_its_artists(name, tmp_path):
    from matplotlib.collections import PolyCollection
    from matplotlib.container import ErrorbarContainer

    from olfacto.experiments import figures

    assert set(EXPECTED) == set(figures.FIGURES), "every registered figure has its expectations here"
    fig_entry = figures.FIGURES[name]
    path = FIGURES_DIR / "data" / fig_entry.experiment / figures.RESULT
    if fig_entry.chapter == 3 and not path.is_file():  # test_figures.py holds every committed result present
        pytest.skip(f"{path} not committed yet (chapter 3 is being recomputed)")
    fig = figures.make_figure(name, {fig_entry.experiment: _tiny(fig_entry.experiment)})
    want = EXPECTED[name]
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert axes, name
    for ax in axes:  # no empty panel
        assert ax.get_lines() or ax.collections or ax.images or ax.patches or ax.containers, f"{name}: empty panel"
    lines = sum(len(_data_lines(ax)) for ax in axes)
    assert lines >= want.get("lines", 0), f"{name}: {lines} lines"
    if want.get("errorbar_or_band"):
        bars = sum(isinstance(c, ErrorbarContainer) for ax in axes for c in ax.containers)
        bands = sum(isinstance(c, PolyCollection) for ax in axes for c in ax.collections)
        assert bars + bands > 0, f"{name}: no seed spread drawn (error bars or bands)"
    bars = sum(isinstance(c, ErrorbarContainer) and any(seg.get_segments() for seg in c.lines[2])
               for ax in axes for c in ax.containers)
    assert bars >= want.get("errorbars", 0), f"{name}: {bars} sets of error bars"
    bands = sum(isinstance(c, PolyCollection) for ax in axes for c in ax.collections)
    assert bands >= want.get("bands", 0), f"{name}: {bands} bands"
    colorbars = sum(ax.get_label() == "<colorbar>" for ax in fig.axes)
    assert colorbars >= want.get("colorbar", 0), f"{name}: {colorbars} colour bars"
    width = fig.get_size_inches()[0]
    assert width <= MAX_WIDTH_IN, f"{name}: {width:.1f} in wide"
    assert min(_fonts(fig)) >= MIN_FONT_PT, f"{name}: text at {min(_fonts(fig))} pt"
    assert not _legend_over_data(fig), f"{name}: legend over data: {_legend_over_data(fig)}"
    fig.savefig(tmp_path / f"{name}.png")  # rendering completes (both draws of the canvas)


def test_load_reads_the_committed_figures_from_any_folder(monkeypatch, tmp_path):
    """figures.load(name) without a folder reads the source tree's committed figures/data wherever the caller runs
    (a notebook opened in notebooks/, a script elsewhere) — the same Dataset as given the folder explicitly."""
    import xarray as xr

    from olfacto.experiments import figures

    want = figures.load("sgd_stability", FIGURES_DIR)
    monkeypatch.chdir(tmp_path)
    xr.testing.assert_identical(figures.load("sgd_stability"), want)
