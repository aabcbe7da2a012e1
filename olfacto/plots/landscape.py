"""The loss landscape on the plane of the initial, Hebbian and SGD weights (chapter 2, result 9)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from .style import RC, figure


def landscape(ds: xr.Dataset):
    """(a) Contours of L(W) = ½ E‖y − ŷ‖² on the plane through W₀, the Hebbian solution (a = 1, b = 0)
    and the SGD solution, with both learning paths projected onto it. (b) The cosine between the mean
    Hebbian update and −∇L across the same plane: 1 where Hebbian learning descends the loss exactly.

    ``ds``: from :func:`olfacto.analysis.chapter2.loss_landscape`.
    """
    import matplotlib as mpl

    a, b = ds.a.values, ds.b.values
    with mpl.rc_context(RC):
        fig, axes = figure(ncols=2, width=3.3, height=2.9)
        ax = axes[0, 0]
        levels = np.quantile(ds.loss.values, np.linspace(0, 1, 16))
        cs = ax.contourf(a, b, ds.loss.values.T, levels=np.unique(levels), cmap="Greys_r")
        fig.colorbar(cs, ax=ax, label="L(W)")
        for name, color in (("hebbian", "C0"), ("sgd", "C3")):
            path = ds[f"path_{name}"].values
            ax.plot(path[:, 0], path[:, 1], "-", color=color, lw=1.2, label=f"{name} path")
            ax.plot(path[-1, 0], path[-1, 1], "o", color=color, ms=5)
        ax.plot(0, 0, "ks", ms=5, label="W₀")
        ax.set(xlabel="a (along W_H − W₀)", ylabel="b (SGD's orthogonal part)",
               title=f"L: W₀ {ds.attrs['loss_init']:.3g}, Hebb {ds.attrs['loss_hebbian']:.3g}, "
                     f"SGD {ds.attrs['loss_sgd']:.3g}")
        ax.legend(loc="lower right", fontsize=7)
        ax = axes[0, 1]
        cs = ax.contourf(a, b, ds.cos_hebbian_gradient.values.T, levels=np.linspace(-1, 1, 21), cmap="RdBu_r")
        fig.colorbar(cs, ax=ax, label="cos(Hebbian update, −∇L)")
        for name, color in (("hebbian", "C0"), ("sgd", "C3")):
            path = ds[f"path_{name}"].values
            ax.plot(path[:, 0], path[:, 1], "-", color=color, lw=1.0)
        ax.set(xlabel="a", ylabel="b", title="where the Hebbian flow leaves the gradient")
    return fig
