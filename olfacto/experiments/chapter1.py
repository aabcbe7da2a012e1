"""The chapter-1 computation beyond a plain sweep: each seed's exact Hebbian fixed point."""

from __future__ import annotations

import numpy as np

from ..config import Config

__all__ = ["hebbian_fixed_point"]


def hebbian_fixed_point(cfg: Config, seeds) -> dict[str, np.ndarray]:
    """The exact Hebbian fixed point W_H = C ⊙ J_R J_Lᵀ / λ of each seed's simulated network.

    Draws the very networks and probe odors the simulator uses for these seeds
    (:func:`olfacto.engine.loop.build`) and returns, per seed, the population alignment of W_H
    on the probes (both directions averaged, as the recorded ``alignment``) and the rms of
    W_H over the existing synapses. Valid for linear φ (then E[y_post y_preᵀ] = J_post E[x xᵀ]
    J_preᵀ with E[x xᵀ] = I for gaussian odors).
    """
    import jax
    import jax.numpy as jnp

    from .. import config as config_mod
    from ..engine import loop
    from ..model import circuit, measures, projection
    from ..model.circuit import DIRECTIONS, post

    if cfg.circuit.activation != "linear" or cfg.odors.kind != "gaussian":
        raise ValueError("hebbian_fixed_point: needs circuit.activation=linear and odors.kind=gaussian")
    batch = loop.build([config_mod.replace(cfg, seed=int(s)) for s in seeds])
    world = jax.tree.map(lambda a: a[:batch.n_runs], jax.device_get(batch.world))
    decay = cfg.learning.decay

    def fixed_point(w):
        masks = w.masks
        weights = projection.hebbian_fixed_point(w.circuit, masks, decay)
        y_hat = circuit.indirect_all(masks, weights, w.y)
        align = jnp.mean(jnp.stack([measures.alignment(w.y[post(d)], y_hat[d]) for d in DIRECTIONS]))
        squares = sum(jnp.sum(jnp.where(masks[d].valid, weights[d] ** 2, 0.0)) for d in DIRECTIONS)
        count = sum(masks[d].valid.sum() for d in DIRECTIONS)
        return align, jnp.sqrt(squares / jnp.maximum(count, 1))

    align, rms = jax.vmap(fixed_point)(world)
    return {"alignment": np.asarray(align, float), "weight_rms": np.asarray(rms, float)}
