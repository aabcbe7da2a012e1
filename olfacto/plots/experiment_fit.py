"""The recorded regions and the model fitted to each (olfacto fit)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..recordings import protocol
from .style import RC, figure

LABELS = {"fraction_bilateral": "fraction bilateral", "tuning_correlation_mean": "mean ipsi–contra r",
          "decoding_transfer": "odor decoding across sides", "laterality_decoding": "side decoding"}


def experiment_fit(ds: xr.Dataset):
    """One panel per measure: each region's recorded value (bars, its neurons pooled) with the bootstrap's 95 %
    interval (mice, then neurons, then trials; ``data_ci``) — or, in a result stored before it, the s.e.m. over the
    region's mice — and each mouse's value (small dots); the model's posterior mean with its 95 % spread over the
    posterior's parameters and seeds (squares), and the best grid point (circles); the chance level (dotted);
    the posterior median and 95 % credible interval of every fitted parameter in a table below the panels (in a
    result without a posterior: the best point and its near-optimal range).

    ``ds``: from :func:`olfacto.analysis.fit.fit`.
    """
    import matplotlib as mpl

    regions = [str(r) for r in ds.region.values]
    measures = [str(m) for m in ds.measure.values]
    n_odors = int(ds.attrs.get("n_odors", 15))
    x = np.arange(len(regions))
    per_neuron = "neuron_r" in ds
    with mpl.rc_context(RC):
        fig, axes = figure(ncols=len(measures), nrows=2 if per_neuron else 1, width=1.75, height=3.1,
                           height_ratios=[1.35, 1] if per_neuron else None)
        for ax, m in zip(axes[0], measures):
            value = ds.data.sel(measure=m).values
            if "data_ci" in ds:  # the bootstrap's 95 % interval (mice, neurons, trials), asymmetric
                ci = ds["data_ci"].sel(region=regions, measure=m).values
                err, label = np.abs(np.stack([value - ci[:, 0], ci[:, 1] - value])), "recordings, bootstrap 95 %"
            elif "data_sem" in ds:
                err, label = ds["data_sem"].sel(region=regions, measure=m).values, "recordings ± s.e.m. over mice"
            else:
                err, label = None, "recordings"
            ax.bar(x, value, color="0.75", width=0.6, yerr=err, capsize=3,
                   error_kw={"elinewidth": 0.9, "ecolor": "0.25"}, label=label)
            if "data_by_mouse" in ds:
                mice = ds["data_by_mouse"].sel(measure=m)
                for i, r in enumerate(regions):
                    v = mice.values[np.asarray(mice["mouse_region"].values) == r]
                    ax.plot(x[i] - 0.17 + 0.34 * np.linspace(0, 1, v.size), v, ls="none", marker=".", ms=3,
                            color="0.35", zorder=3, label="each mouse" if i == 0 else None)
            if "posterior_model" in ds:  # the posterior's spread of the model (parameters and seeds), 95 %
                ax.errorbar(x + 0.12, ds.posterior_model.sel(measure=m).values,
                            1.96 * ds.posterior_model_sd.sel(measure=m).values, fmt="s", color="C0", ms=3.5,
                            label="model posterior, 95 %", zorder=4)
                ax.plot(x - 0.12, ds.model.sel(measure=m).values, "o", color="C3", ms=3.5, label="best grid point",
                        zorder=4)
            else:
                ax.errorbar(x, ds.model.sel(measure=m).values, ds.model_sd.sel(measure=m).values, fmt="o",
                            color="C3", ms=4, label="fitted model")
            ax.axhline(protocol.MEASURES[m].chance(n_odors), color="k", ls=":", lw=0.8)
            ax.set_xticks(x, regions)
            ax.set(ylim=(0, 1.05))
            ax.set_title(LABELS.get(m, m), fontsize=8)
        if per_neuron:
            _distributions(axes[1], ds, regions)
        handles, labels = axes[0, 0].get_legend_handles_labels()  # above the panels, off the data
        fig.legend(handles, labels, loc="outside upper center", ncols=len(labels), fontsize=7)
        # the fitted parameters in a table below the panels (not in the title): value [near-optimal range]
        def rng(var, r):
            near = ds.get(f"near_{var}")
            if near is None:
                return ""
            lo, hi = (float(near.sel(region=r, bound=b)) for b in ("low", "high"))
            return "" if lo == hi else f" [{lo:g}–{hi:g}]"

        if "posterior" in ds:  # posterior medians and 95 % credible intervals (grid values)
            names = {"in_degree": "K", "lr": "η", "trial_noise": "trial noise"}
            dims = [d for d in ds["posterior"].dims if d != "region"]

            def cred(d, r):
                lo, hi = (float(v) for v in ds[f"credible_{d}"].sel(region=r).values)
                return f"{names.get(d, d.replace('_', ' '))} {float(ds[f'median_{d}'].sel(region=r)):g} [{lo:g}–{hi:g}]"

            rows = [f"{r}:  " + ",  ".join(cred(d, r) for d in dims) for r in regions]
            title = "posterior median [95 % credible interval] per region"
        else:
            rows = [f"{r}:  K = {ds.fit_in_degree.sel(region=r).item():g}{rng('in_degree', r)},  "
                    f"η = {ds.fit_lr.sel(region=r).item():g}{rng('lr', r)},  "
                    f"trial noise {ds.fit_trial_noise.sel(region=r).item():g}{rng('trial_noise', r)}" for r in regions]
            title = "fitted per region (near-optimal range)"
        handles = [mpl.lines.Line2D([], [], ls="none", label=row) for row in rows]
        fig.legend(handles=handles, loc="outside lower center", ncols=1, fontsize=7, handlelength=0,
                   title=title, title_fontsize=7)
    return fig


def _distributions(axes, ds: xr.Dataset, regions: list[str]) -> None:
    """The per-neuron distributions beside the scalars: per region the tuning correlation r of the recorded
    neurons (grey) and of one simulated recording at the posterior's mode (blue outline); in the last panel the
    response size over its region's mean, as cumulative distributions (data solid, model dashed)."""
    bins = np.linspace(-1, 1, 21)
    for ax, r in zip(axes[:len(regions)], regions):
        data = ds["neuron_r"].sel(region=r, source="data").values
        model = ds["neuron_r"].sel(region=r, source="model").values
        ax.hist(data[np.isfinite(data)], bins, density=True, color="0.75", label="recorded neurons")
        ax.hist(model[np.isfinite(model)], bins, density=True, histtype="step", color="C0", lw=1.3,
                label="model at the posterior mode")
        ax.set(xlabel=f"per-neuron r, {r}", yticks=[])
    ax = axes[len(regions)] if len(axes) > len(regions) else None
    if ax is not None:
        for i, r in enumerate(regions):
            for source, ls in (("data", "-"), ("model", "--")):
                v = ds["neuron_size"].sel(region=r, source=source).values
                v = np.sort(v[np.isfinite(v)] / np.nanmean(v))
                ax.plot(v, np.arange(1, v.size + 1) / v.size, ls=ls, color=f"C{i + 2}", lw=1.1,
                        label=r if source == "data" else None)
        ax.set(xscale="log", xlabel="size / region mean", ylabel="fraction of neurons", xlim=(0.005, 20))
        ax.set_title("size: recorded —, model - -", fontsize=7)
        ax.legend(fontsize=6.5, loc="upper left", handlelength=1.2)  # the CDFs are near 0 there

