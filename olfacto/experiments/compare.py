"""``olfacto fit DATA --compare``: which mechanisms explain each recorded region — the model comparison of issue 19.

The fit (:mod:`olfacto.experiments.fit`) is run once per *run* — a base network that differs in something the grid cannot vary
(the learning rule, the protocol's odors):

- ``hebbian``: ``experiments/fit_experiment.yaml`` (online Hebbian learning, gaussian odors);
- ``sgd``: the same with ``learning.rule = sgd`` (plain optax SGD, the default ``learning.optimizer``);
- ``measured``: the Hebbian network recorded with odors of the measured bulb similarity
  (``protocol.odor_similarity = measured``, ``odors.data_path`` a mosaic_representations folder),

each on the same grid of K, η, trial noise, ``protocol.gain_spread`` and ``protocol.alpha_mix`` (seeds). A
*family* (:data:`FAMILIES`) is a sub-grid of one run: homogeneous neurons (σ_g = 0) or a per-neuron gain
(σ_g > 0); the learned weights (α = 1), the article's fixed mix of learned and random weights (0 < α < 1) or
random weights (α = 0). Per region and family (:func:`tabulate`):

- the **log evidence** log Z of the family's sub-grid on the four fitted measures
  (:func:`olfacto.analysis.posterior.log_evidence`: the log of the mean likelihood over its points, uniform
  prior; a family with more free axes pays through the prior volume it spreads over worse fits), and its
  difference from the region's best family (a log Bayes factor);
- the family's own posterior (the likelihood on its sub-grid, renormalised —
  :func:`olfacto.analysis.posterior.of_fit` on the sub-grid of the model's measures): medians and 95 %
  credible intervals of K, η, the trial noise and σ_g, the mass on each axis's edges, and the posterior
  predictive of the fitted measures and the held-out checks, passed or not by the criterion stated before the
  result (docs/experiment.md: |data − predictive mean| ≤ 1.96 √(var_boot + var_pred)).

Every run's posterior uses the same data covariance (the bootstrap is seeded), so the families' evidences are
comparable across runs.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import xarray as xr

from ..analysis import posterior
from ..analysis.fit import FIT_MEASURES
from . import fit

RESULT = "compare.nc"
TABLE = "compare.md"

GRID = {"in_degree": [3, 10, 30, 100, 300], "learning.lr": [0.005], "trial_noise": [0.5, 1.0, 2.0, 4.0],
        "protocol.gain_spread": [0.0, 0.75, 1.5], "protocol.alpha_mix": [0.0, 0.5, 1.0], "seed": [0, 1]}
"""The comparison's grid (η one value: it hardly matters once ηλT ≳ 1, docs/experiment.md "The fit")."""
QUICK_GRID = {"in_degree": [3, 30], "learning.lr": [0.005], "trial_noise": [0.5, 2.0],
              "protocol.gain_spread": [0.0, 1.5], "protocol.alpha_mix": [0.0, 0.5, 1.0], "seed": [0, 1]}

RUNS = {"hebbian": "online Hebbian learning, gaussian odors (experiments/fit_experiment.yaml)",
        "sgd": "online SGD (learning.rule=sgd), gaussian odors",
        "measured": "online Hebbian learning, odors with the measured bulb similarity (protocol.odor_similarity="
                    "measured)"}

_DEFAULTS = {"gain_spread": 0.0, "alpha_mix": 1.0}  # an axis the grid lacks is at its default (off)
_SELECT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "0": lambda v: np.isclose(v, 0.0), ">0": lambda v: v > 0, "1": lambda v: np.isclose(v, 1.0),
    "(0,1)": lambda v: (v > 0) & (v < 1) & ~np.isclose(v, 0.0) & ~np.isclose(v, 1.0)}

FAMILIES: dict[str, tuple[str, dict[str, str]]] = {
    "hebbian": ("hebbian", {"alpha_mix": "1", "gain_spread": "0"}),
    "hebbian+gain": ("hebbian", {"alpha_mix": "1", "gain_spread": ">0"}),
    "mix": ("hebbian", {"alpha_mix": "(0,1)", "gain_spread": "0"}),
    "mix+gain": ("hebbian", {"alpha_mix": "(0,1)", "gain_spread": ">0"}),
    "random": ("hebbian", {"alpha_mix": "0", "gain_spread": "0"}),
    "random+gain": ("hebbian", {"alpha_mix": "0", "gain_spread": ">0"}),
    "sgd": ("sgd", {"alpha_mix": "1", "gain_spread": "0"}),
    "sgd+gain": ("sgd", {"alpha_mix": "1", "gain_spread": ">0"}),
    "measured": ("measured", {"alpha_mix": "1", "gain_spread": "0"}),
    "measured+gain": ("measured", {"alpha_mix": "1", "gain_spread": ">0"}),
    "measured mix": ("measured", {"alpha_mix": "(0,1)", "gain_spread": "0"}),
    "measured mix+gain": ("measured", {"alpha_mix": "(0,1)", "gain_spread": ">0"}),
}
"""Family → (run, {axis: selection}); selections ``0``, ``>0``, ``1`` and ``(0,1)`` (strictly between) of the
axis's grid values. ``mix`` is the article's model (Grimaud et al.: a fixed mix of Hebbian and random weights),
``random`` its α = 0 (tuning correlation at chance); ``measured mix`` the article's with its measured-similarity
odors."""

PARAMS = ("in_degree", "lr", "trial_noise", "gain_spread", "alpha_mix")


def bases(base: dict, data_dir: str | Path, runs: tuple[str, ...] = tuple(RUNS)) -> dict[str, dict]:
    """Each run's base config from the Hebbian ``base``. ``measured`` takes ``odors.data_path`` from ``base``
    when set there, else the ``mosaic_representations`` folder beside the recordings' folder; a one-line
    :class:`~olfacto.config.ConfigError` when neither exists."""
    from ..config import ConfigError, set_dotted, validate

    out = {}
    for run in runs:
        if run == "hebbian":
            out[run] = base
        elif run == "sgd":
            out[run] = set_dotted(base, "learning.rule", "sgd")
        elif run == "measured":
            given = (base.get("odors") or {}).get("data_path")
            folder = Path(given) if given else Path(data_dir).resolve().parent / "mosaic_representations"
            if not folder.is_dir():
                where = "odors.data_path of --config" if given else f"beside {str(data_dir)!r}"
                raise ConfigError(f"fit --compare: the measured bulb odors {str(folder)!r} ({where}) were not "
                                  "found; the family 'measured' needs a mosaic_representations folder there "
                                  "(or odors.data_path in --config)")
            sub = set_dotted(base, "protocol.odor_similarity", "measured")
            out[run] = set_dotted(sub, "odors.data_path", str(folder.resolve()))
        else:
            raise ConfigError(f"fit --compare: unknown run {run!r}; allowed: {', '.join(RUNS)}")
        validate(out[run])
    return out


def _values(ll: xr.DataArray, axis: str) -> np.ndarray:
    return np.asarray(ll[axis].values, float) if axis in ll.dims else np.array([_DEFAULTS[axis]])


def selection(ll: xr.DataArray, rule: dict[str, str]) -> dict[str, list] | None:
    """The sub-grid ``{axis: values}`` of a family's selection rule on the grid of ``ll`` (an axis the grid
    lacks is at its default: it must satisfy the rule, and is not selected on); None when it is empty."""
    out = {}
    for axis, which in rule.items():
        values = _values(ll, axis)
        keep = values[_SELECT[which](values)]
        if keep.size == 0:
            return None
        if axis in ll.dims:
            out[axis] = [v for v in ll[axis].values if _SELECT[which](np.array([float(v)]))[0]]
    return out


def families_on(grid: dict[str, list], runs: tuple[str, ...] = tuple(RUNS)) -> list[str]:
    """The families of :data:`FAMILIES` that have a point on ``grid`` (its ``protocol.gain_spread`` and
    ``protocol.alpha_mix`` values; an axis it lacks at its default), for the ``runs`` given."""
    axes = {k.split(".")[-1]: v for k, v in grid.items() if k in ("protocol.gain_spread", "protocol.alpha_mix")}
    ll = xr.DataArray(np.zeros([len(v) for v in axes.values()]), dims=list(axes),
                      coords={k: np.asarray(v, float) for k, v in axes.items()})
    return [name for name, (run, rule) in FAMILIES.items() if run in runs and selection(ll, rule) is not None]


def needed_alpha(grid: dict[str, list], run: str) -> list | None:
    """The ``protocol.alpha_mix`` values of ``grid`` some family of ``run`` uses (None: the grid has no such axis),
    so a run computes no point no family reads."""
    if "protocol.alpha_mix" not in grid:
        return None
    values = np.asarray(grid["protocol.alpha_mix"], float)
    keep = np.zeros(values.size, bool)
    for r, rule in FAMILIES.values():
        if r == run and "alpha_mix" in rule:
            keep |= _SELECT[rule["alpha_mix"]](values)
    return [v for v, k in zip(grid["protocol.alpha_mix"], keep) if k]


def measures_of(result: xr.Dataset) -> xr.DataArray:
    """The model's fitted measures and held-out checks on the run's grid, from :func:`.fit.run`'s result
    (``model_grid`` and ``check_grid``), along one ``measure`` axis as :func:`.fit.model_measures` gives them."""
    return xr.concat([result["model_grid"], result["check_grid"].rename(check="measure")], dim="measure")


def family_posterior(result: xr.Dataset, sub: dict[str, list], rng: np.random.Generator) -> xr.Dataset:
    """:func:`olfacto.analysis.posterior.of_fit` on the sub-grid ``sub`` of a run: the posterior renormalised on
    the family's points, its predictive and checks (same data, same Σ_boot)."""
    uncertainty = result[["data_cov", "check_data", "check_var"]]
    return posterior.of_fit(measures_of(result).sel(sub), result["data"], uncertainty, rng, FIT_MEASURES)


def tabulate(results: dict[str, xr.Dataset], families: dict[str, tuple[str, dict[str, str]]] | None = None,
             seed: int = 0) -> xr.Dataset:
    """The comparison (region × family) from each run's :func:`.fit.run` result (see the module doc). Families
    whose run is missing or whose sub-grid is empty on the run's grid are left out."""
    families = FAMILIES if families is None else families
    runs = list(results)
    for other in runs[1:]:  # one likelihood for all: the same data and Σ_boot, or the evidences do not compare
        for var in ("data", "data_cov", "check_data", "check_var"):
            a, b = results[runs[0]][var], results[other][var]
            if a.shape != b.shape or not np.allclose(a.values, b.values, equal_nan=True):
                raise ValueError(f"compare: runs {runs[0]!r} and {other!r} differ in {var}; their evidences are "
                                 "comparable only on the same data and bootstrap (same resamples and seed)")
    rows: list[tuple[str, str, dict, xr.Dataset]] = []
    for name, (run, rule) in families.items():
        if run not in results:
            continue
        sub = selection(results[run]["log_likelihood"], rule)
        if sub is None:
            continue
        # each family its own draws of the predictive: its row does not depend on which families precede it
        rows.append((name, run, sub, family_posterior(results[run], sub, np.random.default_rng(seed))))
    if not rows:
        raise ValueError("compare: no family has a point on the grid (it needs protocol.gain_spread and "
                         "protocol.alpha_mix values its families select)")
    first = results[rows[0][1]]
    regions = [str(r) for r in first.region.values]
    checks = [str(c) for c in first.check.values]
    names = [r[0] for r in rows]
    out = xr.Dataset(coords={"region": regions, "family": names, "measure": list(FIT_MEASURES), "check": checks,
                             "bound": ["low", "high"]})
    out["run"] = ("family", [r[1] for r in rows], {"long_name": "the fit run the family is a sub-grid of"})
    out["rule"] = ("family", [", ".join(f"{a} {w}" for a, w in families[r[0]][1].items()) for r in rows],
                   {"long_name": "the family's selection on the run's protocol axes"})
    out["n_points"] = ("family", [int(r[3]["log_likelihood"].isel(region=0).size) for r in rows],
                       {"long_name": "grid points in the family (seeds not counted)"})

    def stack(var: str, fill_shape: tuple[int, ...]) -> np.ndarray:
        return np.stack([np.asarray(r[3][var].values, float) if var in r[3] else np.full(fill_shape, np.nan)
                         for r in rows], axis=1)

    out["log_evidence"] = (("region", "family"), stack("log_evidence", (len(regions),)),
                           {"long_name": "log mean likelihood over the family's grid points (log evidence, uniform "
                                         "prior) on the four fitted measures"})
    out["delta_log_evidence"] = out["log_evidence"] - out["log_evidence"].max("family")
    out["delta_log_evidence"].attrs["long_name"] = "log Z − the region's largest log Z (a log Bayes factor)"
    out["mahalanobis_map"] = (("region", "family"), stack("mahalanobis_map", (len(regions),)),
                              {"long_name": "χ² of the fitted measures at the family's posterior mode (Σ_boot)"})
    for p in PARAMS:
        out[f"median_{p}"] = (("region", "family"), stack(f"median_{p}", (len(regions),)),
                              {"long_name": f"posterior median of {p} within the family"})
        out[f"credible_{p}"] = (("region", "family", "bound"), stack(f"credible_{p}", (len(regions), 2)),
                                {"long_name": f"95 % credible interval of {p} within the family (grid values)"})
        out[f"edge_mass_{p}"] = (("region", "family", "bound"), stack(f"edge_mass_{p}", (len(regions), 2)),
                                 {"long_name": f"posterior mass on the family's smallest and largest {p}"})
    out["data"] = first["data"].sel(region=regions, measure=list(FIT_MEASURES))
    out["check_data"] = first["check_data"].sel(region=regions, check=checks)
    out["predictive_mean"] = (("region", "family", "measure"), stack("predictive_mean", (len(regions), 4)),
                              {"long_name": "the family's posterior predictive mean of the fitted measure"})
    out["predictive_interval"] = (("region", "family", "measure", "bound"),
                                  stack("predictive_interval", (len(regions), 4, 2)),
                                  {"long_name": "the family's posterior predictive 95 % interval (with Σ_boot)"})
    out["fitted_pass"] = (("region", "family", "measure"), stack("fitted_pass", (len(regions), 4)).astype(bool),
                          {"long_name": "|data − predictive mean| ≤ 1.96 √(var_boot + var_pred)"})
    out["check_model"] = (("region", "family", "check"), stack("check_model", (len(regions), len(checks))),
                          {"long_name": "the family's posterior predictive mean of the held-out check"})
    out["check_model_sd"] = (("region", "family", "check"), stack("check_model_sd", (len(regions), len(checks))),
                             {"long_name": "its posterior predictive s.d. (θ and seeds)"})
    out["check_pass"] = (("region", "family", "check"), stack("check_pass", (len(regions), len(checks))).astype(bool),
                         {"long_name": "|data − predictive mean| ≤ 1.96 √(var_boot + var_pred)"})
    out["n_fitted_pass"] = out["fitted_pass"].sum("measure").astype(int)
    out["n_fitted_pass"].attrs["long_name"] = "fitted measures passed (of 4)"
    out["n_checks_pass"] = out["check_pass"].sum("check").astype(int)
    out["n_checks_pass"].attrs["long_name"] = f"held-out checks passed (of {len(checks)})"
    out["explains"] = out["fitted_pass"].all("measure") & out["check_pass"].all("check")
    out["explains"].attrs["long_name"] = "passes all fitted measures and all held-out checks (the criterion)"
    out.attrs.update(criterion="|data − predictive mean| ≤ 1.96 √(var_boot + var_pred)", predictive_seed=seed)
    return out


def _fmt_param(ds: xr.Dataset, p: str) -> str:
    med = float(ds[f"median_{p}"])
    if not math.isfinite(med):
        return "–"
    low, high = (float(v) for v in ds[f"credible_{p}"].values)
    return f"{med:g}" if low == high == med else f"{med:g} [{low:g}–{high:g}]"


def markdown(ds: xr.Dataset) -> str:
    """Per region, a table of the families: log Z and its difference from the best, the family's posterior
    medians [95 % credible intervals] of K, η, the trial noise and σ_g, and the fitted measures and checks
    passed (with the names of those failed)."""
    lines = []
    short = {"fraction_bilateral": "bilateral", "tuning_correlation_mean": "r mean", "decoding_transfer": "across",
             "laterality_decoding": "side", "decoding_within": "within", "fraction_bilateral_responsive":
             "bil. responsive", "tuning_correlation_sd": "r s.d.", "snr_median": "SNR", "response_size_cv":
             "size CV"}
    n_checks = ds.sizes["check"]
    for region in ds.region.values:
        r = ds.sel(region=region)
        lines += [f"**{region}**", "",
                  "| family | log Z | Δ log Z | K | η | noise | σ_g | α | fitted ✓ | checks ✓ | failed |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        order = np.argsort(-np.nan_to_num(r["log_evidence"].values, nan=-np.inf), kind="stable")
        for i in order:
            f = r.isel(family=i)
            failed = [short.get(str(m), str(m)) for m in f.measure.values if not bool(f.fitted_pass.sel(measure=m))]
            failed += [short.get(str(c), str(c)) for c in f.check.values if not bool(f.check_pass.sel(check=c))]
            lines.append(f"| {f.family.item()} | {float(f.log_evidence):.1f} | {float(f.delta_log_evidence):.1f} | "
                         + " | ".join(_fmt_param(f, p) for p in PARAMS)
                         + f" | {int(f.n_fitted_pass)}/4 | {int(f.n_checks_pass)}/{n_checks} | "
                           f"{', '.join(failed) or '—'} |")
        lines.append("")
    return "\n".join(lines)


def run(data_dir: str | Path, base: dict, grid: dict[str, list] | None = None, out: str | Path | None = None,
        log=None, n_resamples: int = fit.BOOTSTRAP_RESAMPLES, runs: tuple[str, ...] = tuple(RUNS)) -> xr.Dataset:
    """Fit each run (:func:`.fit.run`, no output) on ``grid`` (default :data:`GRID`; each run only the α values
    its families use), tabulate the families (:func:`tabulate`), and write ``out/compare.nc`` and
    ``out/compare.md`` atomically when ``out`` is given."""
    grid = dict(GRID if grid is None else grid)
    configs = bases(base, data_dir, runs)
    start = time.perf_counter()
    results, seconds = {}, {}
    for name, cfg in configs.items():
        g = dict(grid)
        alphas = needed_alpha(grid, name)
        if alphas is not None:
            if not alphas:
                continue
            g["protocol.alpha_mix"] = alphas
        if log:
            log(f"compare: run {name} ({RUNS[name]})")
        t0 = time.perf_counter()
        results[name] = fit.run(data_dir, cfg, g, None, log, n_resamples)
        seconds[name] = time.perf_counter() - t0
    ds = tabulate(results)
    ds.attrs.update(grid="; ".join(f"{k} {list(v)}" for k, v in grid.items()), n_resamples=n_resamples,
                    wall_seconds=round(time.perf_counter() - start, 1),
                    **{f"wall_seconds_{k}": round(v, 1) for k, v in seconds.items()})
    if out is not None:
        write(ds, out)
    return ds


def write(ds: xr.Dataset, out: str | Path) -> tuple[Path, Path]:
    """``out/compare.nc`` and ``out/compare.md`` (the table), each written atomically."""
    from ..engine import storage

    out = Path(out)
    nc = storage.write_dataset(ds, out / RESULT)
    legend = "".join(f"- {name}: the {run} run at {rule}\n" for name, run, rule in
                     zip(ds.family.values, ds["run"].values, ds["rule"].values))
    md = storage.atomic_write_bytes(out / TABLE, (f"grid: {ds.attrs.get('grid', '')}\n\nfamilies:\n\n{legend}\n"
                                                  + markdown(ds)).encode())
    return nc, md


def main_cli(args) -> int:
    """``olfacto fit DATA --compare`` (``--quick``: :data:`QUICK_GRID`, 200 resamples; ``--grid`` replaces an
    axis as for the fit)."""
    base = fit.base_config(args)
    grid = fit.parse_grid(args.grid or [], dict(QUICK_GRID if args.quick else GRID), base)
    n_resamples = fit.QUICK_RESAMPLES if args.quick else fit.BOOTSTRAP_RESAMPLES
    bases(base, args.data_dir)  # the measured odors found, every run's base valid: before any work
    fit.check_grid(base, grid, fit.region_sizes(args.data_dir))
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    log(f"olfacto fit --compare: {', '.join(f'{k} {v}' for k, v in grid.items())} → {args.out}/")
    log(f"  families: {', '.join(families_on(grid))}")
    try:
        ds = run(args.data_dir, base, grid, args.out, log, n_resamples)
    except fit.AllDiverged as exc:
        print(f"olfacto: error: fit diverged: {exc}", file=sys.stderr)
        return 3
    print(markdown(ds))
    print(f"result             {Path(args.out) / RESULT}")
    print(f"table              {Path(args.out) / TABLE}")
    return 0
