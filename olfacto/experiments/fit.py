"""``olfacto fit``: which sparse connectivity and how much learning explain each recorded region — the runs.

The model runs under the recordings' protocol (:mod:`olfacto.recordings.virtual`) on a grid of

- the in-degree K of the inter-hemispheric projection (p = K/N at the base N),
- the learning rate η at the base number of breaths T (the amount of learning is ηT),
- the response noise per trial (``protocol.trial_noise``), applied to the same learned networks,
- optionally, the protocol's model terms of :data:`PROTOCOL_AXES` (``--grid protocol.gain_spread=0,1``;
  likewise applied to the same learned networks; the other terms, ``protocol.noise_model`` and
  ``protocol.odor_similarity``, are set in the base config),
- seeds,

with as many recorded neurons as each region has. Model and data go through the same functions
(:func:`olfacto.recordings.protocol.summary`); the distance, the fit and its near-optimal ranges are
:mod:`olfacto.analysis.fit`.
"""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..analysis.fit import FIT_MEASURES, AllDiverged, edge_warnings, fit, table
from ..analysis.posterior import table as posterior_table

RESULT = "fit.nc"
FIGURE = "experiment_fit"

FULL_GRID = {"in_degree": [2, 3, 5, 10, 20, 30, 50, 100, 200, 400], "learning.lr": [0.0002, 0.001, 0.005],
             "trial_noise": [0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0], "seed": [0, 1, 2]}
QUICK_GRID = {"in_degree": [3, 10, 30], "learning.lr": [0.0005, 0.005], "trial_noise": [0.5, 1.0, 2.0, 4.0],
              "seed": [0, 1]}
PROTOCOL_AXES = ("protocol.gain_spread", "protocol.sparseness", "protocol.alpha_mix")
"""Numeric protocol terms (:mod:`olfacto.recordings.virtual`) that ``--grid`` may add as axes of the fit, each named
in the result by its last part (``gain_spread``); absent unless given."""


def model_measures(base: dict, grid: dict[str, list], n_neurons: dict[str, int], log=None,
                   with_checks: bool = False, keep: dict | None = None) -> xr.DataArray:
    """The protocol's measures of the model on ``grid``, with the recorded-neuron count of each region:
    dims (region, in_degree, lr, trial_noise, [the :data:`PROTOCOL_AXES` the grid has, in its order,] seed,
    measure). ``with_checks``: the held-out checks (:data:`olfacto.recordings.checks.CHECKS`) follow the fitted
    measures along ``measure``, from the same recorded responses. ``keep``: a dict that receives the learned
    network of each run of the grid's first seed, ``(in_degree, lr) → (spec, world, params, state, config)``
    (:func:`per_neuron_at_mode` records the mode's from it instead of learning it again)."""
    from .. import config as config_mod
    from ..config import dim_name, set_dotted, validate
    from ..engine import loop
    from ..recordings import checks as checks_mod
    from ..recordings import protocol, virtual

    measured = list(FIT_MEASURES) + ([k for k in checks_mod.CHECKS if k not in FIT_MEASURES] if with_checks else [])
    n_cortex = check_grid(base, grid, n_neurons)
    ks, lrs, noises, seeds = (grid[k] for k in ("in_degree", "learning.lr", "trial_noise", "seed"))
    extras = [k for k in grid if k in PROTOCOL_AXES]
    regions = list(n_neurons)
    out = np.full((len(regions), len(ks), len(lrs), len(noises), *(len(grid[k]) for k in extras), len(seeds),
                   len(measured)), np.nan)
    points = list(itertools.product(range(len(ks)), range(len(lrs)), range(len(seeds))))
    configs = [validate(set_dotted(set_dotted(set_dotted(base, "circuit.connection_prob", ks[i] / n_cortex),
                                              "learning.lr", lrs[j]), "seed", seeds[s])) for i, j, s in points]
    # the K in as few compiled programs as padding to the largest K's slots allows (one compile per K before)
    for members, result in loop.run_groups(configs, progress=False, stop_on_divergence=False):
        diverged = np.asarray(result.dataset["diverged"].values, bool)
        for run, m in enumerate(members):
            i, j, s = points[m]
            if diverged[run]:
                continue
            if keep is not None and s == 0:
                world, state, params = result.one(run)
                keep[(int(ks[i]), float(lrs[j]))] = (result.spec, world, params, state, configs[m])
            settings = list(itertools.product(enumerate(regions), enumerate(noises),
                                              *(enumerate(grid[k]) for k in extras)))
            sections = [config_mod.replace(configs[m], **{"protocol.enabled": True, "protocol.trial_noise": noise,
                                                          "protocol.n_neurons": n_neurons[region],
                                                          **{k: v for k, (_, v) in zip(extras, terms)}}).protocol
                        for (_, region), (_, noise), *terms in settings]
            # one recording per setting (the protocol's measures and the checks); the responses computed once for
            # the settings that differ only in noise and neurons (virtual.records: the same recordings)
            for ((r, _), (t, _), *terms), rec in zip(settings, virtual.records(result, run, sections)):
                response, blank = rec["response"].values, rec["blank"].values
                values = protocol.summary(response, blank)
                if with_checks:
                    values.update(checks_mod.summary(response, blank, decoding_within=values["decoding_within"]))
                out[(r, i, j, t, *(e for e, _ in terms), s)] = [values[name] for name in measured]
        if log:
            log(f"  K = {', '.join(str(ks[i]) for i in sorted({points[m][0] for m in members}))}: {len(members)} "
                "runs measured")
    names = [dim_name(k) for k in extras]
    return xr.DataArray(out, dims=("region", "in_degree", "lr", "trial_noise", *names, "seed", "measure"),
                        coords={"region": regions, "in_degree": ks, "lr": lrs, "trial_noise": noises,
                                **{n: grid[k] for n, k in zip(names, extras)}, "seed": seeds,
                                "measure": measured}, name="model")




def check_grid(base: dict, grid: dict[str, list], n_neurons: dict[str, int]) -> int:
    """Refuse, before any run, what the grid cannot measure at the base N (returned): an in-degree above N,
    or a region with more recorded neurons than the model cortex has (the protocol would record all N
    neurons for it, silently, and two such regions would get identical model measures)."""
    from ..config import ConfigError, validate

    n_cortex = validate(base).circuit.n_cortex
    for k in grid["in_degree"]:
        if k > n_cortex:
            raise ConfigError(f"--grid in_degree={k}: must be ≤ circuit.n_cortex={n_cortex}")
    above = {region: n for region, n in n_neurons.items() if n > n_cortex}
    if above:
        listed = ", ".join(f"{region} has {n}" for region, n in above.items())
        raise ConfigError(f"circuit.n_cortex={n_cortex}: fewer model neurons than recorded ones ({listed}); "
                          f"allowed: circuit.n_cortex ≥ {max(n_neurons.values())}")
    return n_cortex


def region_sizes(data_dir: str | Path) -> dict[str, int]:
    """Recorded neurons per region (read, not measured: a check before any work)."""
    from ..recordings import experiment, ipsicontra

    return {region: int(sub.sizes["neuron"]) for region, sub in experiment._groups(ipsicontra.load(data_dir)).items()}


def data_measures(data_dir: str | Path) -> tuple[xr.DataArray, dict[str, int], int]:
    """The recorded measures per region (dims region, measure), the neurons per region, and the odors."""
    from ..recordings import experiment, ipsicontra

    result = experiment.measure(ipsicontra.load(data_dir), n_shuffles=1)
    data = xr.concat([result[m] for m in FIT_MEASURES], dim=xr.DataArray(list(FIT_MEASURES), dims="measure"))
    data = data.transpose("region", "measure")
    n = {str(r): int(v) for r, v in zip(result.region.values, result.n_neurons.values)}
    return data, n, int(result.attrs["n_odors"])


BOOTSTRAP_RESAMPLES = 1000
QUICK_RESAMPLES = 200  # --quick: the data's covariance from fewer resamples (4 × 4 entries: enough for a look)


def data_uncertainty(data_dir: str | Path, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                     log=None) -> xr.Dataset:
    """:func:`uncertainty_of` the recordings in ``data_dir``."""
    from ..recordings import ipsicontra

    return uncertainty_of(ipsicontra.load(data_dir), n_resamples, seed, log)


def uncertainty_of(ds: xr.Dataset, n_resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0, log=None) -> xr.Dataset:
    """The bootstrap (mice, then neurons, then trials: :mod:`olfacto.recordings.bootstrap`) of recordings laid
    out as :func:`olfacto.recordings.ipsicontra.load` (or a model's, without ``mouse``: neurons only), per
    region: ``data_cov(region, measure, measure_b)`` of the fitted measures (the posterior's Σ_boot), and for the
    held-out checks (:mod:`olfacto.recordings.checks`) their recorded value ``check_data(region, check)``,
    bootstrap variance ``check_var`` and 95 % interval ``check_ci(region, check, bound)``."""
    from ..analysis import posterior
    from ..recordings import bootstrap, checks, experiment

    rng = bootstrap.generator(seed)
    names = list(checks.CHECKS)
    regions, covs, values, variances, cis, data_cis = [], [], [], [], [], []
    for region, sub in experiment._groups(ds).items():
        response, blank = sub["response"].values, sub["blank"].values
        samples = bootstrap.resample(response, blank, sub["mouse"].values if "mouse" in sub.coords else None,
                                     n_resamples, rng, also=lambda block: checks.resampled(response, blank, block))
        fitted_ = np.stack([samples[k] for k in FIT_MEASURES], axis=1)
        checked = np.stack([samples[k] for k in names], axis=1)
        regions.append(region)
        covs.append(posterior.covariance(fitted_))
        data_cis.append(bootstrap.percentile_interval(fitted_.T))
        v = checks.summary(response, blank)
        values.append([v[k] for k in names])
        variances.append(np.nanvar(checked, axis=0, ddof=1))
        cis.append(bootstrap.percentile_interval(checked.T))
        if log:
            log(f"  bootstrap of {region}: {n_resamples} resamples")
    out = xr.Dataset(coords={"region": regions, "measure": list(FIT_MEASURES), "measure_b": list(FIT_MEASURES),
                             "check": names, "bound": ["low", "high"]})
    out["data_cov"] = (("region", "measure", "measure_b"), np.array(covs),
                       {"long_name": "bootstrap covariance of the recorded fitted measures (mice, neurons, trials)"})
    out["data_ci"] = (("region", "measure", "bound"), np.array(data_cis),
                      {"long_name": "bootstrap 95 % interval of the recorded fitted measure"})
    out["check_data"] = (("region", "check"), np.array(values), {"long_name": "recorded held-out check"})
    out["check_var"] = (("region", "check"), np.array(variances), {"long_name": "bootstrap variance of the check"})
    out["check_ci"] = (("region", "check", "bound"), np.array(cis), {"long_name": "bootstrap 95 % interval"})
    out.attrs.update(n_resamples=n_resamples, bootstrap_seed=seed)
    return out


def data_by_mouse(data_dir: str | Path) -> xr.DataArray:
    """The recorded measures of each mouse's own neurons (dims mouse, measure; coordinate ``mouse_region``),
    through the same :func:`olfacto.recordings.protocol.summary` as the pooled regions. The decoders then
    see one mouse's population only (73–375 neurons), so a mouse's decoding accuracies sit below its
    region's pooled ones; their spread across mice is the mouse-to-mouse variability."""
    from ..recordings import ipsicontra, protocol

    ds = ipsicontra.load(data_dir)
    mice = [int(m) for m in np.unique(ds["mouse"].values)]
    rows, regions = [], []
    for m in mice:
        sub = ds.isel(neuron=np.flatnonzero(ds["mouse"].values == m))
        values = protocol.summary(sub["response"].values, sub["blank"].values)
        rows.append([values[k] for k in FIT_MEASURES])
        regions.append(str(sub["region"].values[0]))
    return xr.DataArray(np.asarray(rows, float), dims=("mouse", "measure"),
                        coords={"mouse": mice, "measure": list(FIT_MEASURES),
                                "mouse_region": ("mouse", regions, {"long_name": "recorded region of the mouse"})},
                        name="data_by_mouse", attrs={"long_name": "recorded measure of each mouse's own neurons"})


def mouse_sem(by_mouse: xr.DataArray, regions: list[str] | None = None) -> xr.DataArray:
    """Per region and measure: the standard error of the mean over its mice, s.d. (ddof 1) / √(mice); NaN for a
    region with fewer than two mice with a finite value. ``by_mouse``: from :func:`data_by_mouse`."""
    regions = list(dict.fromkeys(str(r) for r in by_mouse["mouse_region"].values)) if regions is None else regions
    out = np.full((len(regions), by_mouse.sizes["measure"]), np.nan)
    for i, region in enumerate(regions):
        values = by_mouse.values[np.asarray(by_mouse["mouse_region"].values) == region]
        n = np.sum(np.isfinite(values), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.nanstd(values, axis=0, ddof=1) if len(values) > 1 else np.full(values.shape[1], np.nan)
            out[i] = np.where(n >= 2, sd / np.sqrt(n), np.nan)
    return xr.DataArray(out, dims=("region", "measure"), coords={"region": regions,
                                                                "measure": by_mouse["measure"].values},
                        name="data_sem", attrs={"long_name": "s.e.m. over the region's mice of the per-mouse measure"})


def with_mouse_spread(result: xr.Dataset, data_dir: str | Path) -> xr.Dataset:
    """``result`` (a fit) with the recordings' per-mouse measures (``data_by_mouse``) and their s.e.m. per region
    (``data_sem``): the uncertainty of the data bars, added without rerunning the model."""
    by_mouse = data_by_mouse(data_dir).sel(measure=result["measure"].values)
    sem = mouse_sem(by_mouse, [str(r) for r in result["region"].values])
    return result.assign(data_by_mouse=by_mouse, data_sem=sem)


def per_neuron_at_mode(data_dir: str | Path, base: dict, result: xr.Dataset, grid: dict[str, list],
                       kept: dict | None = None) -> xr.Dataset:
    """The per-neuron distributions beside the fit's scalars: for every region, its recorded neurons' tuning
    correlation r, signal-to-noise and response size (:mod:`olfacto.recordings.checks`), and the same for one
    simulated recording (seed of the grid's first) at the posterior's mode. Variables ``neuron_<name>(region,
    source, unit)`` with source ``data`` | ``model``, padded with NaN to the largest region. ``kept``: the
    networks :func:`model_measures` learned (its ``keep``); the mode's is learned here when absent."""
    from .. import config as config_mod
    from ..config import dim_name, set_dotted, validate
    from ..engine import loop
    from ..recordings import checks as checks_mod
    from ..recordings import experiment, ipsicontra, protocol, virtual

    groups = experiment._groups(ipsicontra.load(data_dir))
    n_cortex = int(validate(base).circuit.n_cortex)
    extras = {dim_name(k): k for k in grid if k in PROTOCOL_AXES}
    size = max(int(sub.sizes["neuron"]) for sub in groups.values())
    values = {k: np.full((len(groups), 2, size), np.nan) for k in ("r", "snr", "size")}

    def fill(i, j, response, blank):
        n = response.shape[0]
        values["r"][i, j, :n] = protocol.tuning_correlation(response, blank)
        values["snr"][i, j, :n] = checks_mod.snr(response)
        values["size"][i, j, :n] = checks_mod.response_size(response, blank)

    for i, (region, sub) in enumerate(groups.items()):
        fill(i, 0, sub["response"].values, sub["blank"].values)
        mode = {d: float(result[f"map_{d}"].sel(region=region)) for d in result["posterior"].dims if d != "region"}
        cfg = set_dotted(set_dotted(set_dotted(base, "circuit.connection_prob", mode["in_degree"] / n_cortex),
                                    "learning.lr", mode["lr"]), "seed", grid["seed"][0])
        cfg = validate(cfg)
        network = (kept or {}).get((int(round(mode["in_degree"])), float(mode["lr"])))
        if network is None:
            ran = loop.run_batch([cfg], progress=False, stop_on_divergence=False)
            world, state, params = ran.one(0)
            network = (ran.spec, world, params, state, cfg)
        pc = config_mod.replace(cfg, **{"protocol.enabled": True, "protocol.trial_noise": mode["trial_noise"],
                                        "protocol.n_neurons": int(sub.sizes["neuron"]),
                                        **{extras[d]: mode[d] for d in extras}}).protocol
        rec = virtual.record_network(*network, pc)
        fill(i, 1, rec["response"].values, rec["blank"].values)
    out = xr.Dataset(coords={"region": list(groups), "source": ["data", "model"], "unit": np.arange(size)})
    long = {"r": "per-neuron ipsi–contra tuning correlation", "snr": "per-neuron ipsilateral signal-to-noise",
            "size": "per-neuron response size, mean |trial mean − blank|"}
    for k, v in values.items():
        out[f"neuron_{k}"] = (("region", "source", "unit"), v,
                              {"long_name": long[k], "description": "data: the recorded neurons; model: one simulated "
                                                                    "recording at the posterior's mode"})
    return out


def run(data_dir: str | Path, base: dict, grid: dict[str, list], out: str | Path | None = None, log=None,
        n_resamples: int = BOOTSTRAP_RESAMPLES) -> xr.Dataset:
    """Measure the recordings, the model on ``grid``, fit each region (the best point, and the posterior over the
    grid with its predictive and held-out checks: :func:`olfacto.analysis.posterior.of_fit`, the data's
    uncertainty from ``n_resamples`` bootstrap resamples); write ``out/fit.nc`` and the figure."""
    from ..engine import storage

    data, n_neurons, n_odors = data_measures(data_dir)
    base = {**base, "protocol": {**(base.get("protocol") or {}), "n_odors": n_odors}}
    check_grid(base, grid, n_neurons)  # before any run
    from ..config import validate
    from ..recordings import glomeruli

    cfg = validate(base)
    glomeruli.protocol_similarity(cfg.protocol, cfg.odors)  # a similarity file of the wrong size too
    from ..analysis import posterior

    kept: dict = {}
    measured = model_measures(base, grid, n_neurons, log, with_checks=True, keep=kept)
    model = measured.sel(measure=list(FIT_MEASURES))
    if not np.isfinite(model.values).any():
        raise AllDiverged(f"every one of the {model.isel(region=0, measure=0).size} runs of the grid diverged; "
                          f"lower --grid learning.lr (now {', '.join(map(str, grid['learning.lr']))})")
    result = with_mouse_spread(fit(model, data, n_odors), data_dir)
    uncertainty = data_uncertainty(data_dir, n_resamples, log=log)
    post = posterior.of_fit(measured, data, uncertainty, np.random.default_rng(0), FIT_MEASURES)
    result = xr.merge([result, post, uncertainty[["data_cov", "data_ci", "check_data", "check_var", "check_ci"]]],
                      combine_attrs="drop_conflicts")
    result["check_grid"] = measured.sel(measure=list(post.check.values)).rename(measure="check")
    result = xr.merge([result, per_neuron_at_mode(data_dir, base, result, grid, kept)], combine_attrs="drop_conflicts")
    result.attrs.update(n_resamples=n_resamples)
    result.attrs.update(n_odors=n_odors, distance="sum over measures of ((model − data)/(1 − chance))²",
                        n_breaths=int(base.get("run", {}).get("n_breaths", 0)))
    if out is not None:
        storage.write_dataset(result.drop_vars(["model_grid", "check_grid"]), Path(out) / RESULT)
        from ..plots.experiment_fit import experiment_fit

        storage.save_figure(experiment_fit(result), Path(out) / FIGURE, formats=("png", "pdf"))
    return result


def compute(base: dict, grid: dict, options: dict, progress: bool = False) -> xr.Dataset:
    """The figures driver's entry (experiment ``experiment_fit``): ``options["data"]`` the recordings'
    folder, ``options["grid"]`` the fit grid."""
    from ..config import ConfigError

    data = Path(options["data"])
    if not data.exists():
        raise ConfigError(f"experiment_fit: the recordings {str(data)!r} were not found from {Path.cwd()}; "
                          "run olfacto figures from the repository root with ../shared/data beside it")
    return run(data, base, options["grid"], n_resamples=int(options.get("bootstrap", BOOTSTRAP_RESAMPLES)))


def _grid_value(key: str, raw: str, base: dict | None = None) -> float | int:
    """A ``--grid`` value, read as YAML: an integer ≥ 1 for in_degree, ≥ 0 for seed; a number > 0 for
    learning.lr, ≥ 0 for trial_noise; for a key of :data:`PROTOCOL_AXES`, a value the config allows there (a
    one-line error otherwise)."""
    from ..config import ConfigError, parse_value, set_dotted, validate

    if key in PROTOCOL_AXES:
        value = parse_value(raw, f"--grid {key}")
        try:
            validate(set_dotted(base or {}, key, value))
        except ConfigError as exc:
            raise ConfigError(f"--grid {exc}") from None
        return value
    whole = key in ("in_degree", "seed")
    lowest, strict = {"in_degree": (1, False), "seed": (0, False), "learning.lr": (0, True)}.get(key, (0, False))
    value = parse_value(raw, f"--grid {key}")
    number = not isinstance(value, bool) and isinstance(value, int if whole else (int, float))
    if not number or value < lowest or (strict and value == lowest):
        kind = "an integer" if whole else "a number"
        raise ConfigError(f"--grid {key}={raw}: allowed: {kind} {'>' if strict else '≥'} {lowest}")
    return value


def base_config(args) -> dict:
    """The fit's base network: ``--config`` or ``experiments/fit_experiment.yaml`` (its ``sweep`` section
    dropped), validated (a bad base is a one-line error before any work)."""
    from .. import config as config_mod
    from ..config import read_yaml

    base = read_yaml(args.config) if args.config else read_yaml(Path(__file__).resolve().parents[2] / "experiments"
                                                                  / "fit_experiment.yaml")
    base = {k: v for k, v in base.items() if k != "sweep"}
    config_mod.validate(base)
    return base


def parse_grid(items: list[str], grid: dict[str, list], base: dict) -> dict[str, list]:
    """``grid`` with each ``--grid KEY=V1,V2,…`` of ``items`` replacing (or, for :data:`PROTOCOL_AXES`, adding)
    an axis; one-line errors for an unknown key, a key given twice, a bad or repeated value."""
    from .. import config as config_mod

    grid = dict(grid)
    given: set[str] = set()
    for item in items:
        key, _, values = item.partition("=")
        if key.startswith("protocol.") and key not in PROTOCOL_AXES and key != "protocol.trial_noise":
            raise config_mod.ConfigError(f"--grid {key}: allowed protocol terms are {', '.join(PROTOCOL_AXES)} "
                                         "(set the others in the base config, --config)")
        if key not in grid and key not in PROTOCOL_AXES:
            raise config_mod.ConfigError(f"--grid {key}: allowed keys are {', '.join(grid)} (in_degree is K, the "
                                         "inputs per neuron: each point sets circuit.connection_prob = K/N; "
                                         "trial_noise is protocol.trial_noise)")
        if key in given:  # the second replaced the first without a word
            raise config_mod.ConfigError(f"--grid {key!r}: given twice; give each key once")
        given.add(key)
        grid[key] = [_grid_value(key, v, base) for v in values.split(",")]
        # a point given twice (also as the same float32) is computed twice, and indexes ambiguously
        if len({float(np.float32(v)) for v in grid[key]}) != len(grid[key]):
            raise config_mod.ConfigError(f"--grid {item}: values must be distinct (as float32 numbers)")
    return grid


def main_cli(args) -> int:
    base = base_config(args)
    grid = parse_grid(args.grid or [], dict(QUICK_GRID if args.quick else FULL_GRID), base)
    n_resamples = QUICK_RESAMPLES if args.quick else BOOTSTRAP_RESAMPLES
    check_grid(base, grid, region_sizes(args.data_dir))  # before any work or output
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    log(f"olfacto fit: {', '.join(f'{k} {v}' for k, v in grid.items())} → {args.out}/")
    try:
        result = run(args.data_dir, base, grid, args.out, log, n_resamples)
    except AllDiverged as exc:
        print(f"olfacto: error: fit diverged: {exc}", file=sys.stderr)
        return 3
    print(table(result))
    print(posterior_table(result))
    for line in edge_warnings(result):
        print(f"olfacto: warning: {line}", file=sys.stderr)
    print(f"result             {Path(args.out) / RESULT}")
    return 0
