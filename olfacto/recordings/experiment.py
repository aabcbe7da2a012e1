"""The experiment's measures per region (``olfacto experiment``), on recordings or on any
Dataset laid out like them.

:func:`measure` takes a Dataset with ``response(neuron, odor, side, trial)``,
``blank(neuron, side, trial)`` and a ``region`` coordinate on ``neuron`` (the layout of
:func:`olfacto.recordings.ipsicontra.load`; a model under the recordings' protocol can produce the
same layout) and returns per-region scalars, per-neuron fits and a shuffle null, computed
with :mod:`olfacto.recordings.protocol` only, the per-mouse values of every measure, and — with
``n_bootstrap`` > 0 — their hierarchical-bootstrap intervals (:mod:`olfacto.recordings.bootstrap`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import bootstrap, protocol

RESULT = "experiment.nc"
FIGURE = "experiment"
ALL = "all"  # the single group when a Dataset has no region coordinate


def _groups(ds: xr.Dataset) -> dict[str, xr.Dataset]:
    if "region" not in ds.coords:
        return {ALL: ds}
    from .ipsicontra import REGIONS

    names = list(dict.fromkeys(str(r) for r in ds["region"].values))
    order = [r for r in REGIONS if r in names] + [r for r in names if r not in REGIONS]
    return {r: ds.isel(neuron=np.flatnonzero(ds["region"].values == r)) for r in order}


def measure(ds: xr.Dataset, seed: int = 0, n_shuffles: int = 1000, alpha: float = protocol.ALPHA,
            done=None, n_bootstrap: int = 0, level: float = bootstrap.LEVEL, bootstrap_done=None) -> xr.Dataset:
    """The protocol's measures per region.

    Returns a Dataset with, per ``region``: ``n_neurons``, every scalar of
    :data:`protocol.MEASURES` (with its ``chance`` level), ``decoding(train_side, test_side)``,
    the shuffle null of the fraction bilateral ``null_fraction_bilateral(region, shuffle)``
    (seeded by ``seed``) and its one-sided p-value, and the binomial p-value of the count of
    bilateral neurons against the test's false-positive rate α; per ``neuron``: the regression
    ``slope``, ``intercept``, ``p_value``, ``tuning_correlation`` and ``bilateral`` flag. ``done(n)``, if given,
    is called as the shuffles of every region advance (a progress bar's ``update``).

    With a ``mouse`` coordinate: per mouse (``mouse_id``, with ``mouse_region`` and ``n_neurons_by_mouse``)
    every scalar ``<measure>_by_mouse`` (:func:`bootstrap.by_mouse`); per region ``n_mice``. With
    ``n_bootstrap`` > 0: the hierarchical bootstrap of every scalar (:func:`bootstrap.resample`, generator
    :func:`bootstrap.generator` of ``seed``), its values ``<measure>_resamples(region, resample)`` and the
    percentile interval at ``level``, ``<measure>_ci(region, bound)`` with bound ``low``, ``high``;
    ``bootstrap_done(n)`` is called as the resamples advance.
    """
    from scipy import stats

    rng = np.random.default_rng(seed)
    groups = _groups(ds)
    regions = list(groups)
    n_odors = ds.sizes["odor"]
    scalars: dict[str, list[float]] = {name: [] for name in protocol.MEASURES}
    matrices, nulls, n_neurons, null_p, binom_p = [], [], [], [], []
    per_neuron = {k: np.full(ds.sizes["neuron"], np.nan) for k in ("slope", "intercept", "p_value", "r")}
    position = {int(n): i for i, n in enumerate(ds["neuron"].values)}
    for region in regions:
        sub = groups[region]
        response, blank = sub["response"].values, sub["blank"].values
        values = protocol.summary(response, blank, alpha)
        for name in scalars:
            scalars[name].append(values[name])
        fit = protocol.bilateral_regression(response, blank)
        rows = [position[int(n)] for n in sub["neuron"].values]
        for key in per_neuron:
            per_neuron[key][rows] = getattr(fit, key)
        matrices.append(protocol.decoding_matrix(response))
        null = protocol.null_fraction_bilateral(response, blank, rng, n_shuffles, alpha, done=done)
        nulls.append(null)
        n = response.shape[0]
        n_neurons.append(n)
        observed = values["fraction_bilateral"]
        if not np.isfinite(observed):  # undefined responses (protocol.summary): no test either
            null_p.append(np.nan)
            binom_p.append(np.nan)
            continue
        null_p.append((1 + np.sum(null >= observed - 1e-12)) / (1 + n_shuffles))
        binom_p.append(float(stats.binom.sf(round(observed * n) - 1, n, alpha)))

    resamples = {name: [] for name in protocol.MEASURES}
    n_mice = []
    boot_rng = bootstrap.generator(seed)
    for region in regions:
        sub = groups[region]
        mouse = sub["mouse"].values if "mouse" in sub.coords else None
        n_mice.append(1 if mouse is None else len(np.unique(mouse)))
        if n_bootstrap:
            draws = bootstrap.resample(sub["response"].values, sub["blank"].values, mouse, n_bootstrap, boot_rng,
                                       alpha, done=bootstrap_done)
            for name in resamples:
                resamples[name].append(draws[name])

    coords = {"region": regions, "train_side": ["ipsi", "contra"], "test_side": ["ipsi", "contra"],
              "shuffle": np.arange(n_shuffles), "neuron": ds["neuron"].values}
    for name in ("mouse", "region", "session", "unit"):
        if name in ds.coords and ds[name].dims == ("neuron",):
            coords[f"neuron_{name}" if name == "region" else name] = ("neuron", ds[name].values)
    out = xr.Dataset(coords=coords)
    out["n_neurons"] = ("region", np.array(n_neurons), {"long_name": "recorded neurons"})
    for name, measure_ in protocol.MEASURES.items():
        out[name] = ("region", np.array(scalars[name]),
                     {"long_name": measure_.long_name, "chance": measure_.chance(n_odors)})
    out["decoding"] = (("region", "train_side", "test_side"), np.array(matrices),
                       {"long_name": "odor decoding, templates from train side, leave one trial out",
                        "chance": 1.0 / n_odors})
    out["null_fraction_bilateral"] = (("region", "shuffle"), np.array(nulls),
                                      {"long_name": "fraction bilateral after shuffling contra odor labels"})
    out["null_p_value"] = ("region", np.array(null_p),
                           {"long_name": "P(shuffled fraction ≥ observed), (1 + count) / (1 + shuffles)"})
    out["binomial_p_value"] = ("region", np.array(binom_p),
                               {"long_name": f"P(Binomial(n, {alpha}) ≥ observed count of bilateral neurons)"})
    out["n_mice"] = ("region", np.array(n_mice), {"long_name": "mice recorded (1 without a mouse coordinate)"})
    if n_bootstrap:
        out = out.assign_coords(bound=["low", "high"], resample=np.arange(n_bootstrap))
        for name, measure_ in protocol.MEASURES.items():
            values = np.array(resamples[name])
            out[f"{name}_resamples"] = (("region", "resample"), values,
                                        {"long_name": f"{measure_.long_name}: hierarchical-bootstrap resamples"})
            out[f"{name}_ci"] = (("region", "bound"), bootstrap.percentile_interval(values, level),
                                 {"long_name": f"{measure_.long_name}: {100 * level:g} % percentile interval "
                                               "(hierarchical bootstrap)"})
    if "mouse" in ds.coords:
        mice, by_mouse = bootstrap.by_mouse(ds["response"].values, ds["blank"].values, ds["mouse"].values, alpha)
        out = out.assign_coords(mouse_id=mice)
        out["n_neurons_by_mouse"] = ("mouse_id", np.array([int(np.sum(ds["mouse"].values == m)) for m in mice]),
                                     {"long_name": "recorded neurons per mouse"})
        for name, measure_ in protocol.MEASURES.items():
            note = (" (that mouse's pseudo-population alone: fewer neurons than its region's)"
                    if name.startswith(("decoding", "laterality")) else "")
            out[f"{name}_by_mouse"] = ("mouse_id", by_mouse[name],
                                       {"long_name": f"{measure_.long_name}, per mouse{note}"})
        if "region" in ds.coords:
            first = {int(m): str(r) for m, r in zip(ds["mouse"].values, ds["region"].values)}
            out = out.assign_coords(mouse_region=("mouse_id", [first[int(m)] for m in mice]))
    out["slope"] = ("neuron", per_neuron["slope"], {"long_name": "slope of contra on ipsi trial means"})
    out["intercept"] = ("neuron", per_neuron["intercept"], {"long_name": "intercept of contra on ipsi",
                                                             **_units(ds)})
    out["p_value"] = ("neuron", per_neuron["p_value"], {"long_name": "two-sided t-test of slope = 0"})
    out["tuning_correlation"] = ("neuron", per_neuron["r"],
                                 {"long_name": "ipsi–contra correlation of trial means across odors"})
    out["bilateral"] = ("neuron", np.nan_to_num(per_neuron["p_value"], nan=np.inf) <= alpha,
                        {"long_name": f"bilaterally correlated (p ≤ {alpha})",
                         "description": "two-sided, as the article: a negative slope counts too"})
    out["bilateral_positive"] = ("neuron", protocol.positive(per_neuron["slope"], per_neuron["p_value"], alpha),
                                 {"long_name": f"positive slope (one-sided p ≤ {alpha})"})
    out.attrs = {"title": "the experiment's measures per region (olfacto.recordings.protocol)", "alpha": alpha,
                 "seed": seed, "n_odors": n_odors, "n_trials": ds.sizes["trial"],
                 "decoder": "nearest class mean (Euclidean), pseudo-population trials, leave one trial out",
                 "bootstrap_resamples": n_bootstrap, "bootstrap_level": level, "bootstrap_interval": "percentile",
                 "bootstrap_scheme": bootstrap.SCHEME,
                 **{k: v for k, v in ds.attrs.items() if k in ("source", "citation", "side_convention")}}
    return out


def _units(ds: xr.Dataset) -> dict:
    units = ds["response"].attrs.get("units")
    return {"units": units} if units else {}


COLUMNS = [("n_neurons", "n", "{:d}"), ("fraction_bilateral", "bilateral", "{:.3f}"),
           ("fraction_bilateral_positive", "slope>0 1-sided", "{:.3f}"),
           ("tuning_correlation_mean", "r mean", "{:.3f}"), ("tuning_correlation_median", "r median", "{:.3f}"),
           ("decoding_transfer", "odor across", "{:.3f}"), ("decoding_within", "odor within", "{:.3f}"),
           ("laterality_decoding", "side", "{:.3f}")]


def _cell(r: xr.Dataset, name: str, fmt: str) -> str:
    """``0.351 [0.14, 0.44]``: the value and, when the result has them, its bootstrap interval."""
    text = fmt.format(r[name].values.item())
    if f"{name}_ci" in r:
        low, high = r[f"{name}_ci"].values
        text += f" [{low:.2f}, {high:.2f}]"
    return text


def table(result: xr.Dataset) -> str:
    """A plain-text table, region × measure, with the chance levels in the last row; with bootstrap
    intervals, each value is followed by its interval ``[low, high]`` and a line says what they are."""
    header = ["region"] + [label for _, label, _ in COLUMNS]
    rows = []
    for region in result["region"].values:
        r = result.sel(region=region)
        rows.append([str(region)] + [_cell(r, name, fmt) for name, _, fmt in COLUMNS])
    rows.append(["chance"] + ["" if name == "n_neurons" else f"{result[name].attrs['chance']:.3f}"
                              for name, _, _ in COLUMNS])
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in [header] + rows]
    n_boot = int(result.attrs.get("bootstrap_resamples", 0))
    if n_boot:
        mice = ", ".join(f"{r} {int(m)}" for r, m in zip(result["region"].values, result["n_mice"].values))
        lines.append(f"[low, high]: {100 * float(result.attrs['bootstrap_level']):g} % percentile interval, "
                     f"hierarchical bootstrap (mice, then their neurons; {n_boot} resamples; mice: {mice}); with 3–4 "
                     "mice they are too narrow, the decoders' most (docs/experiment.md)")
    return "\n".join(lines)
