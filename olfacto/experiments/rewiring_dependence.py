"""Beyond the thesis: on what does the synapse saving of rewiring depend?

:func:`compute` varies one factor at a time around a base config (ζ = ``rewiring.fraction``, the interval
``rewiring.every``, the odor statistics ``odors.kind`` and the nostril noise ``odors.noise``; the factors and
their values are ``options["axes"]``) and runs, at each setting, every rewiring rule of ``grid["rewiring.rule"]``
at the base in-degree K (``options["in_degree"]``) and the fixed mask (rule ``none``) on a K grid
(``options["fixed_in_degree"]``, the base K added), each (setting, rule, K) group one vmapped batch of the seeds.

The fixed mask ignores the rewiring keys (``tests/test_rewiring_dependence.py`` checks the equivalence), so
its K curve is run once per distinct setting of the other keys (here: the odor statistics and the noise) and
shared by the settings that differ only in ζ or the interval. Settings that differ only in traced keys (the
noise) share one compiled program: their runs are one batch. A setting whose interval is not a multiple of
``run.record_every`` records every gcd(interval, record_every) breaths and keeps the base records.

The synapse saving (:func:`olfacto.analysis.chapter3.dependence_saving`) is the K a fixed mask needs to reach
the alignment the rewired projection reaches at the base K, over the base K, read off the fixed-mask curve of
the same setting.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from ..config import dim_name, key_attrs, validate
from ..config.loading import set_dotted
from ..engine import loop, programs
from ..engine import progress as progress_mod
from ..engine.devices import groups, map_batches
from ..model import theory
from .chapter2 import _configs

RULE, K, SEED = "rule", "in_degree", "seed"
FIXED = "none"


def _fixed_key(key: str) -> bool:
    """Keys the fixed mask ignores: its run is shared by settings that differ only in them."""
    return key.startswith("rewiring.")


def settings(axes: dict) -> list[tuple[str, object]]:
    """The (key, value) of every setting, one factor at a time, in the order of ``axes``."""
    return [(key, value) for key, values in axes.items() for value in values]


def base_value(cfg, key: str):
    """The value of the dotted ``key`` in the validated config ``cfg``."""
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def setting_config(base: dict, key: str, value, rule: str, in_degree: int) -> dict:
    """The base config with ``key`` = ``value``, rewiring rule ``rule`` and in-degree ``in_degree`` (p = K/N);
    ``run.record_every`` lowered to gcd(every, record_every) when the interval is not a multiple of it."""
    cfg = validate(base)
    sub = set_dotted(set_dotted(base, key, value), "rewiring.rule", rule)
    sub = set_dotted(sub, "circuit.connection_prob", float(f"{in_degree / cfg.circuit.n_cortex:.10g}"))
    every = int(value) if key == "rewiring.every" else cfg.rewiring.every
    if rule != FIXED and every % cfg.run.record_every:
        sub = set_dotted(sub, "run.record_every", math.gcd(every, cfg.run.record_every))
    return sub


def run_label(base_cfg, key: str, value, rule: str, in_degree: int) -> tuple:
    """The run a setting's (rule, K) reads: (rule, K, (key, value)), or (rule, K, None) for the base config —
    a setting at its base value, and the fixed mask at any ζ or interval (it ignores them), is the base run."""
    same = value == base_value(base_cfg, key) or (rule == FIXED and _fixed_key(key))
    return rule, int(in_degree), None if same else (key, value)


def _run_groups(jobs: dict, seeds: list, progress: bool) -> dict:
    """Run ``jobs`` (label → config dict), the configs of equal shape as one batch with the seeds (and the traced
    values that differ between jobs) vmapped; label → Dataset of that job's seeds (dim ``seed``)."""
    configs = {label: _configs(cfg, {"seed": seeds}) for label, cfg in jobs.items()}
    names = list(configs)
    batches = [[names[i] for i in b] for b in groups([configs[label][0] for label in names])]
    bar = progress_mod.bar(len(batches), "rewiring dependence (shape)", "batch", disable=not progress, delay=3.0)
    out = {}

    def one(labels: list) -> xr.Dataset:
        result = loop.run_batch([c for label in labels for c in configs[label]], progress=False,
                                stop_on_divergence=False)
        programs.release(result.spec)  # one Spec per batch, never reused here: keep LLVM's code memory bounded
        return result.dataset

    for labels, ds in zip(batches, map_batches(one, batches)):  # several at once on a CPU
        bar.update(1)
        for i, label in enumerate(labels):
            part = ds.isel(run=slice(i * len(seeds), (i + 1) * len(seeds)))
            out[label] = part.swap_dims({"run": SEED}).drop_vars("run").assign_coords({SEED: seeds})
    bar.close()
    return out


def compute(base: dict, grid: dict, options: dict, progress: bool = False) -> xr.Dataset:
    """Per factor of ``options["axes"]`` (dotted key → values): the alignment curves of each rule of
    ``grid["rewiring.rule"]`` at the base in-degree ``options["in_degree"]`` × ``seed`` (grid), and the final
    alignment of the fixed mask on ``options["fixed_in_degree"]`` (with the online Hebbian steady state of the
    theory where the case is analysable)."""
    from ..model.prediction import outside_theory

    axes = {key: list(values) for key, values in options["axes"].items()}
    rules, seeds = list(grid["rewiring.rule"]), list(grid["seed"])
    base_cfg = validate(base)
    k_base = int(options["in_degree"])
    ks = sorted({int(k) for k in options["fixed_in_degree"]} | {k_base})
    n_cortex = base_cfg.circuit.n_cortex

    # every distinct run, once: the rules at K_base per setting, the fixed mask on the K grid per shared setting
    jobs: dict = {}
    for key, value in settings(axes):
        for rule in rules:
            for k in (ks if rule == FIXED else [k_base]):
                label = run_label(base_cfg, key, value, rule, k)
                if label not in jobs:
                    setting = label[2] or (key, base_value(base_cfg, key))
                    jobs[label] = setting_config(base, *setting, rule, k)
    runs = _run_groups(jobs, seeds, progress)

    breaths = runs[next(iter(runs))].breath.values
    for ds in runs.values():  # the base records: every run recorded at least at them
        breaths = np.intersect1d(breaths, ds.breath.values)
    out = xr.Dataset(coords={RULE: rules, K: ks, SEED: seeds, "breath": breaths})
    lrn = base_cfg.learning
    for key, values in axes.items():
        dim = dim_name(key)
        curves = np.full((len(values), len(rules), len(seeds), len(breaths)), np.nan)
        fixed = np.full((len(values), len(ks), len(seeds)), np.nan)
        fixed_theory = np.full((len(values), len(ks)), np.nan)
        for i, value in enumerate(values):
            for r, rule in enumerate(rules):
                ds = runs[run_label(base_cfg, key, value, rule, k_base)]
                curves[i, r] = ds.alignment.sel(breath=breaths).values
            if FIXED in rules:
                for j, k in enumerate(ks):
                    ds = runs[run_label(base_cfg, key, value, FIXED, k)]
                    fixed[i, j] = ds.alignment.isel(breath=-1).values
                cfg = validate(setting_config(base, key, value, FIXED, k_base))
                if outside_theory(cfg) is None:
                    fixed_theory[i] = theory.hebbian_steady_state_alignment(
                        lrn.lr, lrn.decay, n_cortex, cfg.circuit.n_glomeruli, np.asarray(ks, float) / n_cortex,
                        cfg.odors.noise, mask=cfg.circuit.mask)
        coord = xr.DataArray(values, dims=dim, attrs={**key_attrs(key), "baseline": base_value(base_cfg, key)})
        out = out.assign_coords({dim: coord})
        out[f"alignment_vs_{dim}"] = ((dim, RULE, SEED, "breath"), curves, {
            "long_name": f"population alignment at the base in-degree as {key} varies (rule none: the fixed mask)",
            "key": key})
        out[f"fixed_alignment_vs_{dim}"] = ((dim, K, SEED), fixed, {
            "long_name": f"final alignment of the fixed mask against K as {key} varies", "key": key})
        out[f"fixed_theory_vs_{dim}"] = ((dim, K), fixed_theory, {
            "long_name": "online Hebbian steady state of the fixed mask (theory; NaN outside the analysable case)",
            "key": key})
    out[RULE].attrs.update(key_attrs("rewiring.rule"))
    out[K].attrs.update({"long_name": "in-degree K of the fixed mask (synapses per neuron)"})
    out.attrs.update(base_in_degree=k_base, factors=list(axes))
    return out

