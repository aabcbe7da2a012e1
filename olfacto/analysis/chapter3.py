"""Beyond the thesis (chapter 3): the numbers of the rewiring figures, Dataset → :class:`Summary`.

``rewiring_alignment``: the final alignment of each rule (mean over seeds) at the largest N and the K
closest to the base config's; ``rewiring_synapse_saving``: per rule and N, the K a fixed random mask needs
to reach the target alignment (interpolated in log K on the measured curve of rule ``none``) over the K the
rule needs, against the best-partners saving of the theory
(:func:`olfacto.model.theory.best_partners_synapse_saving`, a reference, not a prediction of online
rewiring). The fixed mask's final alignment against the online Hebbian steady state is the one exact
comparison (``max_theory_deviation``).

``rewiring_dependence_saving``: per factor varied alone (ζ, the interval, the odor statistics, the nostril noise)
and value, the K a fixed mask needs to reach the final alignment each rule reaches at the base K, over the base
K (:func:`dependence_saving`; mean over seeds, their s.e.m. and values under ``details``);
``rewiring_dependence_alignment``: the final alignments themselves (rule ``none``: the fixed mask at the base K);
the fixed mask's alignment on its K grid against the online Hebbian steady state where the case is analysable
(``rewiring_dependence_fixed_mask_vs_theory``).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..config import Config
from ..model import theory
from .common import SEED, Summary, config_at, config_of, mean_sem

RULE, N, K = "rule", "n_cortex", "in_degree"


def final_alignment(ds: xr.Dataset) -> xr.DataArray:
    """The final alignment, mean over seeds, (rule, n_cortex, in_degree)."""
    return ds.alignment.isel(breath=-1).mean(SEED)


def in_degree_at(alignment: np.ndarray, degrees: np.ndarray, target: float) -> float:
    """K at which a curve of final alignment over K reaches ``target`` (linear in log K between the grid points
    that bracket it; NaN outside the measured range)."""
    a, k = np.asarray(alignment, float), np.asarray(degrees, float)
    for i in range(len(k) - 1):
        lo, hi = a[i], a[i + 1]
        if np.isfinite(lo) and np.isfinite(hi) and lo <= target <= hi and hi > lo:
            f = (target - lo) / (hi - lo)
            return float(np.exp(np.log(k[i]) + f * (np.log(k[i + 1]) - np.log(k[i]))))
    return float("nan")


def synapse_saving(ds: xr.Dataset, target: float | None = None) -> xr.DataArray:
    """Per rule and N: the K a fixed random mask (rule ``none``, measured) needs to reach the final alignment
    ``target`` (default: the data's ``target_alignment``, else 0.5) over the K the rule needs, each read off its
    curve of final alignment over K (:func:`in_degree_at`; NaN where a curve does not cross ``target``).

    ``ds``: the chapter-3 experiment's result (dims ``rule``, ``n_cortex``, ``in_degree``, ``seed``) or the store of
    an ``olfacto sweep`` over ``rewiring.rule`` × ``circuit.n_cortex`` × ``circuit.connection_prob`` (dims
    ``rewiring_rule``, ``n_cortex``, ``connection_prob``, its coordinate ``K`` = pN; a single N or seed need not be a
    dimension). The bound of choosing partners, :func:`olfacto.model.theory.best_partners_synapse_saving` at the
    same target, comes along as the coordinate ``best_partners`` (n_cortex; NaN for a cortex that is not linear,
    outside the bound's theory)."""
    target = float(ds.attrs.get("target_alignment", 0.5)) if target is None else float(target)
    rule = next((d for d in (RULE, "rewiring_rule") if d in ds.dims), None)
    if rule is None or (K not in ds.dims and "connection_prob" not in ds.dims):
        raise ValueError(f"synapse_saving: needs a rule dimension ({RULE!r} or 'rewiring_rule') and the in-degree "
                         f"({K!r}, or 'connection_prob' of a sweep over circuit.connection_prob); the data have "
                         f"{sorted(ds.dims)}")
    if "none" not in ds[rule].values:
        raise ValueError(f"synapse_saving: {rule}={list(ds[rule].values)} lacks 'none', the fixed mask the rules "
                         "are compared with")
    cfg = config_at(ds)  # a selection's point: its M and φ for the bound
    grid = rewiring_grid(ds)  # one layout: rule, N, the in-degree's dimension; K = pN a coordinate (N, ·)
    kdim = grid.K.dims[1]
    fin = grid.alignment.isel(breath=-1)
    fin = fin.mean(SEED) if SEED in fin.dims else fin
    rules = list(grid[RULE].values)
    out = np.full((len(rules), fin.sizes[N]), np.nan)
    for j in range(fin.sizes[N]):
        ks = grid.K.isel({N: j}).values
        order = np.argsort(ks)
        curve = fin.isel({N: j}).transpose(RULE, kdim).values[:, order]
        k_fixed = in_degree_at(curve[rules.index("none")], ks[order], target)
        for i in range(len(rules)):
            out[i, j] = k_fixed / in_degree_at(curve[i], ks[order], target)
    ns = fin[N].values
    bound = theory.best_partners_synapse_saving(target, ns.astype(float), cfg.circuit.n_glomeruli)
    if not bound_holds(cfg):
        bound = np.full_like(bound, np.nan)
    return xr.DataArray(out, dims=(rule, N), coords={rule: ds[rule].values, N: ns, "best_partners": (N, bound)},
                        attrs={"long_name": f"synapse saving at alignment {target:g}", "target_alignment": target,
                               "description": "K a fixed random mask needs over K the rule needs, at the target "
                                              "alignment; coordinate best_partners: the bound of choosing partners "
                                              "(theory)", "units": "1"})


def rewiring_grid(ds: xr.Dataset) -> xr.Dataset:
    """The learning curves of a comparison of rewiring rules in the layout the chapter-3 figures draw: dims
    ``rule``, ``n_cortex``, the in-degree's dimension, ``seed`` and ``breath``; the coordinate ``K``
    (n_cortex × the in-degree's dimension); and the two references at each (N, K) — ``alignment_fixed_theory``
    (the online Hebbian steady state of a fixed random mask) and ``alignment_best_partners`` (the Hebbian fixed
    point on each neuron's K best partners, :func:`olfacto.model.theory.hebbian_best_partners_alignment`).

    ``ds``: the chapter-3 experiment's result (returned with ``K`` added; the in-degree's dimension ``in_degree``) or
    the store of an ``olfacto sweep`` over ``rewiring.rule`` × ``circuit.connection_prob`` (× ``circuit.n_cortex``,
    × ``seed``: a single N or seed need not be a dimension; the in-degree's dimension ``connection_prob``, K = pN).
    A sweep's fixed-mask reference is its own ``alignment_theory`` of rule ``none`` (NaN outside the analysable
    case), its best-partners reference the theory where the cortex is linear (NaN otherwise). A store that varies
    anything else is refused with the keys to select one value of."""
    if K in ds.dims:
        return ds.assign_coords(K=ds[K].broadcast_like(ds[N]).transpose(N, K)) if "K" not in ds.coords else ds
    if "rewiring_rule" not in ds.dims or "connection_prob" not in ds.dims:
        raise ValueError(f"rewiring_grid: needs the chapter-3 experiment's result or a sweep store over rewiring.rule "
                         f"and circuit.connection_prob; the data have dims {sorted(ds.dims)}")
    cfg = config_at(ds)  # a selection (store.sel(n_glomeruli=20)) reads its own M and φ for the best-partners theory
    kdim, known = "connection_prob", {"rewiring_rule", N, "connection_prob", SEED, "breath"}
    extra = [d for d in ds.alignment.dims if d not in known]
    if extra:
        raise ValueError(f"rewiring_grid: the store also varies {extra}; select one value of each first, e.g. "
                         f"store.sel({extra[0]}=store.{extra[0]}.values[0])")
    out = ds.rename({"rewiring_rule": RULE}).sortby(kdim)  # K in order along each panel's axis
    for dim, default in ((N, cfg.circuit.n_cortex), (SEED, cfg.seed)):
        if dim not in out.dims:  # a single value: the scalar coordinate a .sel left, else the config's
            value = int(out[dim]) if dim in out.coords else default
            out = out.drop_vars(dim, errors="ignore").expand_dims({dim: [value]})
    n = out[N].astype(float)
    k = out["K"] if "K" in out.coords and N in out["K"].dims else n * out[kdim]
    out = out.assign_coords(K=k.broadcast_like(n).transpose(N, kdim))
    if "alignment_theory" in out and "none" in out[RULE].values:
        fixed = out.alignment_theory.sel({RULE: "none"}, drop=True)
        fixed = (fixed.isel({SEED: 0}, drop=True) if SEED in fixed.dims else fixed).broadcast_like(out.K)
    else:
        fixed = xr.full_like(out.K, np.nan)
    if bound_holds(cfg):
        best = xr.DataArray(theory.hebbian_best_partners_alignment(np.broadcast_to(n.values[:, None], out.K.shape),
                                                                   cfg.circuit.n_glomeruli, out.K.values),
                            dims=out.K.dims, coords=out.K.coords)
    else:
        best = xr.full_like(out.K, np.nan)
    out["alignment_fixed_theory"] = fixed.transpose(N, kdim).assign_attrs(
        long_name="online Hebbian steady state, fixed random mask")
    out["alignment_best_partners"] = best.transpose(N, kdim).assign_attrs(
        long_name="Hebbian fixed point on each neuron's K best partners (theory)")
    out.attrs.setdefault("target_alignment", 0.5)
    return out


def bound_holds(cfg: Config) -> bool:
    """Whether the best-partners bound has a theory for this config: it is the linear cortex's Hebbian fixed point
    (docs/theory.md §5h); NaN elsewhere."""
    return cfg.circuit.activation == "linear"


def _rules_over_k(ds: xr.Dataset) -> bool:
    """Whether a sweep store varies ``rewiring.rule`` and at least two ``connection_prob``."""
    return "rewiring_rule" in ds.alignment.dims and ds.sizes.get("connection_prob", 0) > 1


def lacks_fixed_mask(ds: xr.Dataset) -> bool:
    """Whether a sweep store compares rewiring rules over K without rule ``none``, the fixed mask a saving is read
    against."""
    return _rules_over_k(ds) and "none" not in ds["rewiring_rule"].values


def comparison_extras(ds: xr.Dataset) -> list[str] | None:
    """None unless a sweep store compares rewiring rules with the fixed mask over K (rule ``none`` among
    ``rewiring_rule``, at least two ``connection_prob``); else the dimensions it also varies besides N and the seed
    (none: :func:`rewiring_grid` and :func:`synapse_saving` read it whole)."""
    if not _rules_over_k(ds) or lacks_fixed_mask(ds):
        return None
    return [d for d in ds.alignment.dims if d not in ("breath", "rewiring_rule", "connection_prob", N, SEED)]


def is_rewiring_comparison(ds: xr.Dataset) -> bool:
    """Whether a sweep store compares rewiring rules with the fixed mask over K and varies nothing else but N and
    the seed (:func:`comparison_extras`)."""
    return comparison_extras(ds) == []


def saving_lines(saving: xr.DataArray) -> list[str]:
    """The console's lines of a :func:`synapse_saving`: one per rule (K fixed / K rule per N; '–' where its curve
    does not cross the target in the grid), and the best-partners bound."""
    rule = saving.dims[0]
    ns = " / ".join(f"{int(n):,}" for n in saving[N].values)
    head = f"synapse saving at alignment {saving.attrs['target_alignment']:g}, N = {ns} (K fixed / K rule)"

    def row(values) -> str:
        return " / ".join("–" if not np.isfinite(v) else f"{v:.2f}" for v in np.asarray(values, float))

    lines = [head] + [f"  {str(r):<20}{row(saving.sel({rule: r}).values)}" for r in saving[rule].values if r != "none"]
    if not np.isfinite(saving.best_partners.values).any():  # a rectified cortex: no theory of the bound
        return lines
    return lines + [f"  {'best partners':<20}{row(saving.best_partners.values)}  (bound, theory)"]


def summary_rewiring(ds: xr.Dataset) -> Summary:
    cfg = config_of(ds)
    fin = final_alignment(ds)
    k_base = ds[K].values[np.argmin(np.abs(ds[K].values - cfg.circuit.connection_prob * cfg.circuit.n_cortex))]
    at = fin.sel({K: k_base}).isel({N: -1})
    values = {"rewiring_alignment": {str(r): float(at.sel({RULE: r})) for r in ds[RULE].values}}
    theory_ = {"rewiring_alignment": {"none": float(ds.alignment_fixed_theory.sel({K: k_base}).isel({N: -1})),
                                      "best_partners": float(ds.alignment_best_partners.sel({K: k_base}).isel({N: -1}))}}
    saving = synapse_saving(ds)
    target = float(ds.attrs.get("target_alignment", 0.5))
    values["rewiring_synapse_saving"] = {str(r): {int(n): float(saving.sel({RULE: r, N: n})) for n in ds[N].values}
                                         for r in ds[RULE].values if r != "none"}
    theory_["rewiring_synapse_saving"] = {"best_partners": {
        int(n): float(theory.best_partners_synapse_saving(target, n, cfg.circuit.n_glomeruli)) for n in ds[N].values}}
    deviations = {}
    if "none" in ds[RULE].values:
        dev = np.abs(fin.sel({RULE: "none"}) - ds.alignment_fixed_theory)
        deviations["rewiring_fixed_mask_vs_theory"] = float(dev.max())
    details = {"rewiring_final_alignment": {str(r): {int(n): {int(k): float(fin.sel({RULE: r, N: n, K: k}))
                                                              for k in ds[K].values} for n in ds[N].values}
                                            for r in ds[RULE].values}}
    return Summary(values, theory_, details, deviations)


# -- how the saving depends on ζ, the interval, the odors and the noise (experiment rewiring_dependence) ---------


def dependence_factors(ds: xr.Dataset) -> list[tuple[str, str]]:
    """(config key, dimension) of each factor of a :func:`olfacto.experiments.rewiring_dependence.compute`
    Dataset, in the order they were varied."""
    return [(ds[v].attrs["key"], v.removeprefix("alignment_vs_")) for v in ds.data_vars
            if v.startswith("alignment_vs_")]


def dependence_saving(ds: xr.Dataset, dim: str) -> xr.DataArray:
    """Synapse saving (dim, rule, seed) as the factor ``dim`` varies: K_fixed / K_base, where K_fixed is the
    in-degree at which the seed-mean final alignment of the fixed mask at that setting (its K grid) reaches the
    seed's final alignment of the rule at the base K (:func:`in_degree_at`: linear in log K; NaN outside the
    grid's range). Rule ``none`` against its own curve is 1 (the base K is on the grid)."""
    fixed = ds[f"fixed_alignment_vs_{dim}"].mean(SEED)
    reached = ds[f"alignment_vs_{dim}"].isel(breath=-1)
    ks = ds[K].values.astype(float)
    k_base = float(ds.attrs["base_in_degree"])
    out = np.full(reached.shape, np.nan)
    for i in range(ds.sizes[dim]):
        curve = fixed.isel({dim: i}).values
        for idx in np.ndindex(reached.shape[1:]):
            out[(i,) + idx] = in_degree_at(curve, ks, float(reached.values[(i,) + idx])) / k_base
    return xr.DataArray(out, dims=reached.dims, coords=reached.coords,
                        attrs={"long_name": f"synapse saving K_fixed / K at K = {k_base:g}"})


def value_label(value) -> str:
    """A coordinate's value as a label: numbers by ``:g`` (0.2, 1e-05, 20), anything else as text."""
    return f"{value:g}" if isinstance(value, (int, float, np.integer, np.floating)) else str(value)


def summary_rewiring_dependence(ds: xr.Dataset) -> Summary:
    rules = [str(r) for r in ds[RULE].values]
    saving, saving_sem, saving_seeds, align, align_sem, theory_ = {}, {}, {}, {}, {}, {}
    deviation = float("nan")
    k_base = float(ds.attrs["base_in_degree"])
    for key, dim in dependence_factors(ds):
        s = dependence_saving(ds, dim)
        fin = ds[f"alignment_vs_{dim}"].isel(breath=-1)
        s_mean, s_sem = mean_sem(s)
        a_mean, a_sem = mean_sem(fin)
        values = [value_label(v) for v in ds[dim].values]
        saving[key] = {v: {r: float(s_mean.isel({dim: i}).sel({RULE: r})) for r in rules if r != "none"}
                       for i, v in enumerate(values)}
        saving_sem[key] = {v: {r: float(s_sem.isel({dim: i}).sel({RULE: r})) for r in rules if r != "none"}
                           for i, v in enumerate(values)}
        saving_seeds[key] = {v: {r: [float(x) for x in s.isel({dim: i}).sel({RULE: r}).values] for r in rules}
                             for i, v in enumerate(values)}
        align[key] = {v: {r: float(a_mean.isel({dim: i}).sel({RULE: r})) for r in rules} for i, v in enumerate(values)}
        align_sem[key] = {v: {r: float(a_sem.isel({dim: i}).sel({RULE: r})) for r in rules}
                          for i, v in enumerate(values)}
        th = ds[f"fixed_theory_vs_{dim}"]
        theory_[key] = {v: float(th.isel({dim: i}).sel({K: k_base})) for i, v in enumerate(values)}
        dev = np.abs(ds[f"fixed_alignment_vs_{dim}"].mean(SEED) - th)
        if np.isfinite(dev.values).any():
            deviation = np.nanmax([deviation, float(dev.max(skipna=True))])
    values = {"rewiring_dependence_saving": saving, "rewiring_dependence_alignment": align}
    details = {"rewiring_dependence_saving_sem": saving_sem, "rewiring_dependence_saving_seeds": saving_seeds,
               "rewiring_dependence_alignment_sem": align_sem,
               "rewiring_dependence_fixed_alignment": {
                   key: {value_label(v): {int(k): float(ds[f"fixed_alignment_vs_{dim}"].mean(SEED).sel({dim: v, K: k}))
                                     for k in ds[K].values} for v in ds[dim].values}
                   for key, dim in dependence_factors(ds)}}
    deviations = {"rewiring_dependence_fixed_mask_vs_theory": float(deviation)} if np.isfinite(deviation) else {}
    return Summary(values, {"rewiring_dependence_alignment": {"none": theory_}}, details, deviations)
