"""What a run returns: the recorded Dataset and the final network, with the obvious verbs.

>>> import olfacto
>>> result = olfacto.run(olfacto.config.from_dict(**{"circuit.n_cortex": 300}))
>>> result.dataset.alignment.values[-1]             # the learning curve's last record
>>> W = result.weights("L_to_R")                     # scipy.sparse (N × N), R ← L
>>> x = np.random.default_rng(0).normal(size=(10, result.config.circuit.n_glomeruli))
>>> y = result.direct(x)["R"]                        # (10, N) right cortex, odors at the right nostril
>>> y_hat = result.indirect(x)["L_to_R"]             # (10, N) right cortex, odors at the left nostril
>>> result.measures(x)["alignment"]                  # every recorded measure, on your odors
>>> result.save("runs/a"); again = olfacto.load("runs/a")   # the learned network kept on disk

Every response goes through the simulator's own forward pass (:mod:`olfacto.model.circuit`) and every
measure through the registry (:data:`olfacto.model.measures.MEASURES`), so these numbers are the ones
a run records.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from ..config import Config
from ..config.checks import FLOAT32_MAX
from ..config.tree import Params, Spec
from ..model import circuit, network


@dataclasses.dataclass
class Result:
    """A finished run or batch of runs.

    Attributes
    ----------
    dataset : xarray.Dataset
        The recorded measures over ``breath`` (with a ``run`` dimension for a batch), the per-neuron
        ``tuning_correlation(direction, neuron)`` at the end, and the resolved config in ``attrs``.
    configs : list of Config
        The config of each run, in batch order.
    world, state, spec, params
        The simulator's final objects, batched along a leading run axis (see :mod:`olfacto.model.network`);
        the methods below are the convenient way in.
    """

    dataset: xr.Dataset
    world: Any
    state: Any
    spec: Spec
    params: Params
    configs: list[Config] = dataclasses.field(default_factory=list)

    # -- selecting a run -------------------------------------------------------------------

    @property
    def n_runs(self) -> int:
        """Number of runs in this result (1 for :func:`olfacto.run`)."""
        return int(jax.tree.leaves(self.params)[0].shape[0])

    @property
    def config(self) -> Config:
        """The config of the run (of the first run, for a batch)."""
        return self.configs[0]

    def one(self, run: int) -> tuple[Any, Any, Any]:
        """(world, state, params) of run ``run``, without the batch axis."""
        if not 0 <= run < self.n_runs:
            raise IndexError(f"run={run}: this result holds runs 0..{self.n_runs - 1}")
        return jax.tree.map(lambda a: a[run], (self.world, self.state, self.params))

    # -- keeping it -------------------------------------------------------------------------

    def save(self, folder) -> tuple:
        """Write ``folder/result.nc`` (the records) and ``folder/state.nc`` (the learned network: weights, masks,
        recurrent weights, optimizer state; N·K-sized), atomically; :func:`olfacto.load` reads them back
        (:mod:`olfacto.engine.checkpoint`)."""
        from . import checkpoint

        return checkpoint.save(self, folder)

    # -- weights ------------------------------------------------------------------------------

    def weights(self, direction: str, run: int = 0, dense: bool = False):
        """The inter-hemispheric weights of one direction.

        Parameters
        ----------
        direction : {"L_to_R", "R_to_L"}
            ``"L_to_R"`` is W_{R←L}: rows are right-cortex neurons, columns left-cortex neurons.
        run : int
            Which run of a batch.
        dense : bool
            Return a dense ``numpy`` array (N_post, N_pre) instead of a ``scipy.sparse.csr_matrix``.
            Dense costs N² memory: for small N only.

        Returns
        -------
        scipy.sparse.csr_matrix or numpy.ndarray
            W ⊙ C, with exactly the synapses of the mask C stored (explicit zeros kept).
        """
        import scipy.sparse

        _check_direction(direction)
        world, state, _ = self.one(run)
        mask = network.masks(world, state)[direction]
        w = np.asarray(state.weights[direction])
        idx, valid = np.asarray(mask.idx), np.asarray(mask.valid)
        rows = np.broadcast_to(np.arange(idx.shape[0])[:, None], idx.shape)
        matrix = scipy.sparse.csr_matrix((w[valid], (rows[valid], idx[valid])), shape=(idx.shape[0], mask.n_pre))
        return matrix.toarray() if dense else matrix

    def mask(self, direction: str, run: int = 0, dense: bool = False):
        """The mask C of one direction at the end of the run (the synapses that exist: with rewiring, those
        the last event left).

        Returns
        -------
        scipy.sparse.csr_matrix of bool, or numpy.ndarray (N_post, N_pre) with ``dense`` (N² memory)
        """
        import scipy.sparse

        _check_direction(direction)
        world, state, _ = self.one(run)
        mask = network.masks(world, state)[direction]
        idx, valid = np.asarray(mask.idx), np.asarray(mask.valid)
        rows = np.broadcast_to(np.arange(idx.shape[0])[:, None], idx.shape)
        matrix = scipy.sparse.csr_matrix((np.ones(int(valid.sum()), bool), (rows[valid], idx[valid])),
                                         shape=(idx.shape[0], mask.n_pre))
        return matrix.toarray() if dense else matrix

    # -- responses ----------------------------------------------------------------------------

    def direct(self, odors, run: int = 0) -> dict[str, np.ndarray]:
        """Direct responses y_h = φ(J_h x) of both cortices to odors at their own nostril.

        Parameters
        ----------
        odors : array_like, shape (P, M) or (M,)
            Odor vectors x in glomerular space (noise-free), one per row.
        run : int
            Which run of a batch.

        Returns
        -------
        dict
            ``{"L": (P, N), "R": (P, N)}`` (or (N,) arrays for a single odor).
        """
        world, _, params = self.one(run)
        x, single = _odors(odors, self.spec.circuit.n_glomeruli)
        y = circuit.direct_all(world.circuit, {s: x for s in circuit.SIDES}, params.circuit.active_fraction)
        return {s: _out(v, single) for s, v in y.items()}

    def indirect(self, odors, run: int = 0) -> dict[str, np.ndarray]:
        """Indirect responses ŷ_d = (W_d ⊙ C_d) φ(J_pre x) to odors at the *other* nostril.

        Parameters
        ----------
        odors : array_like, shape (P, M) or (M,)
        run : int

        Returns
        -------
        dict
            ``{"L_to_R": (P, N), "R_to_L": (P, N)}``: ``"L_to_R"`` is the right cortex's response to
            odors at the left nostril. Compare it with ``direct(odors)["R"]``.
        """
        world, state, params = self.one(run)
        x, single = _odors(odors, self.spec.circuit.n_glomeruli)
        y = circuit.direct_all(world.circuit, {s: x for s in circuit.SIDES}, params.circuit.active_fraction)
        y_hat = network.indirect(self.spec, world, params, state, y)["y_hat"]
        return {d: _out(v, single) for d, v in y_hat.items()}

    def refined(self, odors, run: int = 0) -> dict[str, np.ndarray]:
        """Indirect responses refined by the receiving cortex's recurrence, z_T (``recurrence`` on).

        z₀ = ŷ, z_{t+1} = φ(ŷ + α A z_t), α = s/ρ(A) (:mod:`olfacto.model.recurrence`).

        Parameters
        ----------
        odors : array_like, shape (P, M) or (M,)
        run : int

        Returns
        -------
        dict
            ``{"L_to_R": (P, N), "R_to_L": (P, N)}``, as :meth:`indirect`.
        """
        if "recurrence" not in network.active_names(self.spec):
            raise ValueError("refined: this run has no recurrence (recurrence.connection_prob = 0)")
        world, state, params = self.one(run)
        x, single = _odors(odors, self.spec.circuit.n_glomeruli)
        y = circuit.direct_all(world.circuit, {s: x for s in circuit.SIDES}, params.circuit.active_fraction)
        z = network.indirect(self.spec, world, params, state, y)["z_hat"]
        return {d: _out(v, single) for d, v in z.items()}

    def measures(self, odors, run: int = 0) -> dict[str, float]:
        """Every recorded measure (:func:`olfacto.model.measures.recorded`) on your own probe odors.

        Parameters
        ----------
        odors : array_like, shape (P, M)
            At least 4 odors (the decoders hold out half of them).
        run : int

        Returns
        -------
        dict
            Measure name → value, computed exactly as a run records them on its probe odors.
        """
        world, state, params = self.one(run)
        x, single = _odors(odors, self.spec.circuit.n_glomeruli)
        if single or x.shape[0] < 4:
            raise ValueError(f"odors: need at least 4 odors (P, M), got shape {np.shape(odors)}")
        y = circuit.direct_all(world.circuit, {s: x for s in circuit.SIDES}, params.circuit.active_fraction)
        world = world.replace(probes=x, y=y, q=None)  # q (update alignment) was for the run's own probes
        ok = network.finite(self.spec, state)
        records = network.measure(self.spec, world, params, state)
        return {k: float(v) if bool(ok) else float("nan") for k, v in records.items()}


def _check_direction(direction: str) -> None:
    if direction not in circuit.DIRECTIONS:
        raise ValueError(f"direction={direction!r}: allowed are {', '.join(map(repr, circuit.DIRECTIONS))}")


def _odors(odors, m: int) -> tuple[jax.Array, bool]:
    x = np.asarray(odors, np.float32)
    single = x.ndim == 1
    x = x[None] if single else x
    if x.ndim != 2 or x.shape[1] != m:
        raise ValueError(f"odors: expected shape (P, {m}) or ({m},) — M = circuit.n_glomeruli — got {np.shape(odors)}")
    with np.errstate(over="ignore"):
        power = np.sum(np.asarray(x, np.float64) ** 2, axis=1)
    if not np.isfinite(power).all() or power.max() > FLOAT32_MAX:  # measures of undefined inputs are no measures
        bad = int(np.sum(~(np.isfinite(power) & (power <= FLOAT32_MAX))))
        raise ValueError(f"odors: {bad} odor(s) hold NaN or inf, or values whose squares overflow a float32 "
                         f"(‖x‖² > {FLOAT32_MAX:.3g}); allowed: finite odors of moderate scale")
    return jnp.asarray(x), single


def _out(v: jax.Array, single: bool) -> np.ndarray:
    v = np.asarray(v)
    return v[0] if single else v
