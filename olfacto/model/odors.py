"""Odor environments and the breath stream (MODEL.md §3).

A breath presents one odor x ∈ R^M to both nostrils. Environments, each scaled
so that E[x_m²] ≈ 1 per channel (so learning rates mean the same across them):

- ``gaussian``: x ~ N(0, I_M) — the analysable case;
- ``sparse``:   x_m = b_m · a_m / √(2s), b_m ~ Bernoulli(s), a_m ~ Exp(1);
- ``mixture``:  a fixed library of ``n_base`` sparse base odors (‖o‖² = M);
  each breath mixes ``n_components`` distinct ones, x = Σ_c a_c o_c / √(2·n_components),
  a_c ~ Exp(1);
- ``dataset``:  the same mixture over measured glomerular responses (see :mod:`olfacto.recordings.glomeruli`).

The bulb may transform every odor first (``odors.bulb``: concentration normalisation or
whitening, :func:`bulb_transform`). Each nostril h ∈ {L, R} receives x_h = g_h(t) (x + σ ξ_h), ξ_h ~ N(0, I_M)
independent, with the nasal cycle g_{L,R}(t) = 1 ± a·sin(2πt/T_cycle).

A :class:`Stream` given from Python replaces the environment's draw: breath t presents its ``odors[t]``
(as the bulb gives it) and each nostril receives x_h = s_h(t) g_h(t) (x(t) + σ ξ_h) with the nostril
schedule s_h(t) (``nostrils[t, h]``: 0 an occluded naris, 1 an open one); the noise ξ_h is the run's own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from .precision import HIGHEST


@struct.dataclass
class Environment:
    """An odor environment: its kind (static), for mixtures the base-odor library, and the bulb's
    transform of every odor (``bulb``: none, normalize, whiten; ``mean`` and ``whitener`` for whiten)."""

    library: jax.Array  # (n_base, M); unused (shape (0, M)) for gaussian/sparse
    kind: str = struct.field(pytree_node=False)
    n_glomeruli: int = struct.field(pytree_node=False)
    n_components: int = struct.field(pytree_node=False)
    bulb: str = struct.field(pytree_node=False, default="none")
    mean: jax.Array | None = None  # (M,): the odors' mean (whiten)
    whitener: jax.Array | None = None  # (M, M): Σ^{-1/2} of the odors' covariance (whiten)


@struct.dataclass
class Stream:
    """A breath stream given from Python (``olfacto.run(cfg, stream=...)``): the odor of every breath and the
    nostril schedule.

    ``odors``: (T, M), breath t's odor x(t) as the bulb presents it (no ``odors.bulb`` transform is applied);
    ``nostrils``: (T, 2), the schedule s_L(t), s_R(t) multiplying each naris's input (1 open, 0 occluded; any
    gain ≥ 0). T must cover the run's breaths. Use :func:`stream` to build one from arrays.
    """

    odors: jax.Array
    nostrils: jax.Array


def stream(odors, nostrils=None) -> Stream:
    """A :class:`Stream` from array-likes: ``odors`` (T, M); ``nostrils`` (T, 2), (2,) for the whole run, or
    None for both nares open throughout."""
    x = jnp.asarray(odors, jnp.float32)
    if nostrils is None:
        nostrils = jnp.ones((x.shape[0] if x.ndim else 0, 2), jnp.float32)
    s = jnp.asarray(nostrils, jnp.float32)
    if s.ndim == 1 and s.shape == (2,) and x.ndim == 2:
        s = jnp.broadcast_to(s, (x.shape[0], 2))
    return Stream(odors=x, nostrils=s)


WHITEN_SAMPLES = 8192  # odors drawn to estimate the mean and covariance the bulb whitens with
WHITEN_FLOOR = 1e-3  # eigenvalues below this fraction of the largest are not amplified beyond it


def bulb_transform(x: jax.Array, env: Environment) -> jax.Array:
    """The bulb's processing of odors x (n, M), MODEL.md §3's remedies for correlated odors:

    - ``none``: x;
    - ``normalize`` (concentration normalisation): x √M / ‖x‖, each odor at the same total intensity;
    - ``whiten`` (decorrelation, as lateral inhibition would): Σ^{-1/2} (x − μ) with μ and Σ the
      environment's odor mean and covariance (estimated once from ``WHITEN_SAMPLES`` odors).
    """
    if env.bulb == "normalize":
        return x * jnp.sqrt(env.n_glomeruli) / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    if env.bulb == "whiten":
        return jnp.matmul(x - env.mean, env.whitener, precision=HIGHEST)
    return x


def with_bulb(env: Environment, bulb: str, key: jax.Array, params) -> Environment:
    """``env`` (as made, without a transform) with its bulb transform; for ``whiten`` the mean and
    Σ^{-1/2} of its raw odors."""
    if bulb != "whiten":
        return env.replace(bulb=bulb)
    x = sample_odors(key, env, params, WHITEN_SAMPLES)
    mean = x.mean(axis=0)
    centred = x - mean
    cov = jnp.matmul(centred.T, centred, precision=HIGHEST) / (x.shape[0] - 1)  # jnp.cov, float32 on GPUs too
    vals, vecs = jnp.linalg.eigh(cov)
    vals = jnp.maximum(vals, WHITEN_FLOOR * vals.max())
    whitener = jnp.matmul(vecs / jnp.sqrt(vals), vecs.T, precision=HIGHEST)
    return env.replace(bulb="whiten", mean=mean, whitener=whitener)


def odor_params(noise: float = 0.0, sparsity: float = 0.1, amplitude: float = 0.0, period: float = 1000.0):
    """The traced parameters of the breath stream (σ, s, a, T_cycle), as ``params.odors`` holds them.

    The simulator gets them from the config (:func:`olfacto.config.tree.params_of`); this builds
    the same PyTree by hand, for using this module alone.
    """
    from ..config.tree import Leaves

    f = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
    return Leaves(noise=f(noise), sparsity=f(sparsity),
                  nasal_cycle=Leaves(amplitude=f(amplitude), period=f(period)))


def sparse_odors(key: jax.Array, n: int, m: int, sparsity: jax.Array) -> jax.Array:
    """n sparse odors: each channel active with probability s, amplitude Exp(1)/√(2s)."""
    k_on, k_amp = jax.random.split(key)
    on = jax.random.bernoulli(k_on, sparsity, (n, m))
    return on * jax.random.exponential(k_amp, (n, m)) / jnp.sqrt(2.0 * sparsity)


def make_environment(key: jax.Array, kind: str, n_glomeruli: int, n_base: int, n_components: int,
                     sparsity: jax.Array, library: jax.Array | None = None) -> Environment:
    """Build an environment; ``mixture`` draws its base-odor library from ``key``."""
    if kind == "mixture":
        base = sparse_odors(key, n_base, n_glomeruli, sparsity)
        # guard against an all-silent base odor at tiny s·M
        base = base.at[:, 0].add(jnp.where(base.sum(axis=1) > 0, 0.0, 1.0))
        library = base * jnp.sqrt(n_glomeruli / jnp.sum(base**2, axis=1, keepdims=True))
    elif kind == "dataset":
        library = jnp.asarray(library, jnp.float32)
    else:
        library = jnp.zeros((0, n_glomeruli), jnp.float32)
    return Environment(library=library, kind=kind, n_glomeruli=n_glomeruli, n_components=n_components)


def sample_odors(key: jax.Array, env: Environment, params, n: int) -> jax.Array:
    """n clean odors x from the environment, shape (n, M)."""
    m = env.n_glomeruli
    if env.kind == "gaussian":
        return bulb_transform(jax.random.normal(key, (n, m)), env)
    if env.kind == "sparse":
        return bulb_transform(sparse_odors(key, n, m, params.sparsity), env)
    # mixture / dataset: n_components distinct base odors with Exp(1) concentrations
    k_pick, k_conc = jax.random.split(key)
    n_base = env.library.shape[0]
    picks = jax.vmap(lambda k: jax.random.choice(k, n_base, (env.n_components,), replace=False))(
        jax.random.split(k_pick, n)
    )
    conc = jax.random.exponential(k_conc, (n, env.n_components)) / jnp.sqrt(2.0 * env.n_components)
    return bulb_transform(jnp.einsum("nc,ncm->nm", conc, env.library[picks], precision=HIGHEST), env)


def nasal_gains(t: jax.Array, params) -> tuple[jax.Array, jax.Array]:
    """g_L(t), g_R(t) = 1 ± a·sin(2πt/T_cycle)."""
    cycle = params.nasal_cycle
    s = cycle.amplitude * jnp.sin(2 * jnp.pi * t / cycle.period)
    return 1.0 + s, 1.0 - s


def nostril_inputs(key: jax.Array, x: jax.Array, t: jax.Array, params) -> tuple[jax.Array, jax.Array]:
    """x_h = g_h(t) (x + σ ξ_h) for both nostrils; x is (B, M), t is (B,)."""
    k_l, k_r = jax.random.split(key)
    g_l, g_r = nasal_gains(t, params)
    x_l = g_l[:, None] * (x + params.noise * jax.random.normal(k_l, x.shape))
    x_r = g_r[:, None] * (x + params.noise * jax.random.normal(k_r, x.shape))
    return x_l, x_r


def breaths(key: jax.Array, env: Environment, params, t0: jax.Array, n: int,
            given: Stream | None = None) -> tuple[jax.Array, jax.Array]:
    """The inputs (x_L, x_R), each (n, M), of breaths t0 … t0+n−1 of the stream keyed by ``key``.

    Breath t depends only on (key, t), so the stream is the same however the run
    is chunked, batched or resumed. With ``given`` (a :class:`Stream`), breath t's odor is
    ``given.odors[t]`` instead of the environment's draw and each naris's input is multiplied by
    ``given.nostrils[t]``; the nostril noise is drawn as without it, so the stream of a run's own odors
    with both nares open reproduces the run exactly.
    """
    t = t0 + jnp.arange(n)
    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(t)

    def one(k, ti):
        k_odor, k_noise = jax.random.split(k)
        x = sample_odors(k_odor, env, params, 1)
        x_l, x_r = nostril_inputs(k_noise, x, ti[None], params)
        return x_l[0], x_r[0]

    if given is None:
        return jax.vmap(one)(keys, t)

    def one_given(k, ti, x, s):
        x_l, x_r = nostril_inputs(jax.random.split(k)[1], x[None], ti[None], params)
        return s[0] * x_l[0], s[1] * x_r[0]

    x = jax.lax.dynamic_slice_in_dim(given.odors, t0, n)
    s = jax.lax.dynamic_slice_in_dim(given.nostrils, t0, n)
    return jax.vmap(one_given)(keys, t, x, s)


def own_odors(key: jax.Array, env: Environment, params, t0: jax.Array, n: int) -> jax.Array:
    """The clean odors x(t), (n, M), that :func:`breaths` presents at breaths t0 … t0+n−1 (the same draws)."""
    t = t0 + jnp.arange(n)
    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(t)
    return jax.vmap(lambda k: sample_odors(jax.random.split(k)[0], env, params, 1)[0])(keys)
