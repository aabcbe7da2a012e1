"""The synapse saving of rewiring against N (beyond the thesis)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..analysis.chapter3 import synapse_saving
from ..analysis.common import config_at
from ..model import theory
from .rewiring import RULE_COLORS, RULE_STYLE, selection
from .style import RC, figure, log_ticks


def rewiring_saving(ds: xr.Dataset):
    """K a fixed random mask needs to reach the target alignment over the K each rewiring rule needs, against
    N (interpolated on the measured curves of final alignment vs K; a missing point: the target was not
    bracketed by the K grid), and the most that choosing partners can save at the Hebbian fixed point
    (best partners, theory; black dashes). A saving that grows with N would change the inverse-scaling
    law's exponent, a constant one only its constant.

    ``ds``: from :func:`olfacto.experiments.rewiring.compute`, or the store of an ``olfacto sweep`` over
    ``rewiring.rule`` × ``circuit.connection_prob`` (× ``circuit.n_cortex``; :func:`synapse_saving` reads both).
    """
    import matplotlib as mpl

    saving = synapse_saving(ds)
    rules = saving[saving.dims[0]].values
    target = float(ds.attrs.get("target_alignment", 0.5))
    ns = saving.n_cortex.values
    m = config_at(ds).circuit.n_glomeruli if "config" in ds.attrs else 50  # a selection's own M
    with mpl.rc_context(RC):
        fig, axes = figure(width=3.4, height=2.8)
        ax = axes[0, 0]
        for rule in rules:
            if rule == "none":
                continue
            style = {"marker": "o", "ms": 3, **RULE_STYLE.get(str(rule), {})}
            ax.plot(ns, saving.sel({saving.dims[0]: rule}), color=RULE_COLORS.get(str(rule)), label=str(rule), **style)
        if np.isfinite(saving.best_partners).any():  # a linear cortex: the bound's theory holds
            dense = np.geomspace(ns.min(), ns.max(), 20)
            one = len(ns) == 1  # one N: a line of no length would not show; a bar marker does
            ax.plot(dense, theory.best_partners_synapse_saving(target, dense, m), "k_" if one else "k--", lw=1,
                    ms=14, label="best partners, theory")
        ax.axhline(1.0, color="0.6", lw=0.8)
        log_ticks(ax, ns)
        ax.set(xlabel="N (neurons per cortex)", ylabel=f"K(fixed) / K(rule) at alignment {target:g}",
               title="Synapses saved by rewiring" + (f" ({at})" if (at := selection(ds)) else ""))
        fig.legend(loc="outside right center", fontsize=6.5)
    return fig
