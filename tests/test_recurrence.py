"""Recurrence inside each cortex (issue 8, item 1): masks without self-connections, ρ(A) by power
iteration, the refinement's linear fixed point, the Hebbian fixed point of A, and the bookkeeping
(recorded only when on, validated keys, nothing else changes)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import olfacto
from olfacto.model import recurrence, sparse
from olfacto import config, sweeps as sweep

from conftest import small

REC = dict(recurrence__connection_prob=0.2, circuit__n_cortex=60, circuit__n_glomeruli=8, run__n_probe=24,
           run__n_breaths=300)


def test_mask_has_no_self_connections_and_uniform_partners():
    """Every row draws K = 4 of the N − 1 = 11 others: no row holds itself, and over 3,000 rows each
    other neuron is a partner with probability K/(N − 1) (binomial s.d. ≈ 0.008; tolerance 0.035)."""
    n, k = 12, 4
    keys = jax.random.split(jax.random.key(0), 250)
    masks = jax.vmap(lambda key: recurrence.sample_mask(key, n, k / (n - 1), "fixed_indegree", k))(keys)
    idx = np.asarray(masks.idx).reshape(-1, n, k)
    rows = np.arange(n)[None, :, None]
    assert not (idx == rows).any()
    assert (np.diff(idx, axis=-1) > 0).all()  # distinct and sorted
    offsets = ((idx - rows) % n).ravel()  # 1 … n − 1
    freq = np.bincount(offsets, minlength=n)[1:] / (idx.shape[0] * n)
    np.testing.assert_allclose(freq, k / (n - 1), atol=0.035)


def _dense(A, mask):
    return np.asarray(sparse.to_dense(A, mask), np.float64)


@pytest.mark.parametrize("kind", ["hebbian", "random"])
def test_spectral_radius_matches_dense_eigenvalues(kind):
    """Power iteration on the sparse A against numpy's eigenvalues: within 2 % (hebbian: A = C ⊙ J Jᵀ, a
    dominant real eigenvalue; random: iid gaussian A, where the top eigenvalues may be a complex pair)."""
    n, m = 80, 10
    k_mask, k_j = jax.random.split(jax.random.key(1))
    mask = recurrence.sample_mask(k_mask, n, 0.3, "fixed_indegree", 24)
    if kind == "hebbian":
        J = jax.random.normal(k_j, (n, m)) / np.sqrt(m)
        A = jnp.where(mask.valid, jnp.sum(J[:, None, :] * J[mask.idx], axis=-1), 0.0)
    else:
        A = jax.random.normal(k_j, mask.idx.shape) / np.sqrt(24)
    rho = float(recurrence.spectral_radius(A, mask))
    exact = float(np.max(np.abs(np.linalg.eigvals(_dense(A, mask)))))
    assert rho == pytest.approx(exact, rel=0.02)


def test_linear_refinement_converges_to_the_fixed_point():
    """z_T of z_{t+1} = ŷ + α A z_t with α = s/ρ(A), s = 0.5, T = 120 (error ≲ 0.5¹²⁰) against a dense solve
    of (I − αA) z* = ŷ: equal to float32 precision (rtol 1e-4)."""
    n, m, p_probe = 80, 10, 6
    keys = jax.random.split(jax.random.key(2), 3)
    mask = recurrence.sample_mask(keys[0], n, 0.3, "fixed_indegree", 24)
    J = jax.random.normal(keys[1], (n, m)) / np.sqrt(m)
    A = jnp.where(mask.valid, jnp.sum(J[:, None, :] * J[mask.idx], axis=-1), 0.0)
    y_hat = jax.random.normal(keys[2], (p_probe, n))
    alpha = recurrence.gain(A, mask, jnp.float32(0.5))
    z = recurrence.refine(y_hat, A, mask, alpha, 120, "linear", jnp.float32(0.1))
    exact = np.linalg.solve(np.eye(n) - float(alpha) * _dense(A, mask), np.asarray(y_hat, np.float64).T).T
    np.testing.assert_allclose(np.asarray(z), exact, rtol=1e-4, atol=1e-4)


@pytest.mark.slow  # a science check: make test-slow (CI runs it)
def test_recurrent_weights_learn_the_hebbian_fixed_point():
    """A learned online → C_rec ⊙ E[y yᵀ]/λ = C_rec ⊙ J Jᵀ/λ (gaussian odors, no noise, linear φ). With
    η_rec λ = 0.002 averaged over ≈ 2/(ηλ) breaths the relative error is ≈ √(Mηλ/2) ≈ 0.07; tolerance 0.15."""
    cfg = small(**{**REC, "run__n_breaths": 6000, "run__record_every": 3000, "learning__lr": 0.002,
                   "learning__decay": 1.0, "recurrence__lr": 0.002, "recurrence__decay": 1.0,
                   "circuit__n_glomeruli": 10})
    res = olfacto.run(cfg)
    world, state = jax.tree.map(lambda a: a[0], res.world), jax.tree.map(lambda a: a[0], res.state)
    for side in ("L", "R"):
        mask = world.anatomy["recurrence"].masks[side]
        J = np.asarray(world.circuit.J[side], np.float64)
        A = _dense(state.parts["recurrence"][side], mask)
        C = np.asarray(sparse.dense_mask(mask))
        assert np.diag(C).sum() == 0
        target = C * (J @ J.T)
        assert np.linalg.norm(A - target) / np.linalg.norm(target) < 0.15, side


@pytest.mark.slow
def test_strength_zero_is_no_recurrence_and_the_rest_is_unchanged():
    """s = 0: z_T = ŷ, so every measure on z_T equals its plain counterpart exactly; and turning recurrence
    on changes nothing that was recorded before (the recurrent masks have their own PRNG stream)."""
    plain = olfacto.run(small(**{k: v for k, v in REC.items() if not k.startswith("recurrence")})).dataset
    zero = olfacto.run(small(**REC, recurrence__strength=0.0)).dataset
    on = olfacto.run(small(**REC, recurrence__strength=0.6)).dataset
    for name in ("alignment", "alignment_L_to_R", "tuning_alignment", "decoding_transfer"):
        rec = name.replace("alignment", "alignment_recurrent", 1) if "alignment" in name else f"{name}_recurrent"
        np.testing.assert_array_equal(zero[rec].values[1:], zero[name].values[1:], err_msg=rec)
    for name in olfacto.model.measures.recorded():
        np.testing.assert_array_equal(on[name].values, plain[name].values, err_msg=name)
    assert "alignment_recurrent" not in plain and "alignment_recurrent" in on
    assert not np.allclose(on.alignment_recurrent.values[1:], on.alignment.values[1:])  # s > 0 does refine
    # issue 23, item 11: learning_curve.png draws the recurrent curves, the recorded values themselves
    from olfacto import plots

    fig = plots.learning_curve(on)
    lines = {line.get_label(): line for ax in fig.axes for line in ax.get_lines()}
    np.testing.assert_array_equal(lines["mean, recurrent $z_T$"].get_ydata(), on.alignment_recurrent.values[1:])
    assert "tuning alignment, recurrent $z_T$" in lines and "decoding transfer, recurrent $z_T$" in lines
    assert not any("recurrent" in label for label in
                   (line.get_label() for ax in plots.learning_curve(plain).axes for line in ax.get_lines()))


@pytest.mark.slow
def test_sweep_over_recurrence_records_it_where_on(tmp_path):
    base = {"circuit": {"n_cortex": 40, "n_glomeruli": 8, "connection_prob": 0.25},
            "run": {"n_breaths": 200, "record_every": 100, "n_probe": 16, "progress": False}}
    ds = sweep.run_sweep(base, {"recurrence.connection_prob": [0.0, 0.2]}, tmp_path, progress=False)
    assert ds.alignment_recurrent.dims == ("recurrence_connection_prob", "breath")
    assert np.isnan(ds.alignment_recurrent.sel(recurrence_connection_prob=0.0)).all()
    assert np.isfinite(ds.alignment_recurrent.sel(recurrence_connection_prob=0.2).values[1:]).all()


@pytest.mark.parametrize("dotted,plan", [
    ({"run.plasticity": "auto"}, "chunked:factored-dense"),  # linear φ: A's chunk factored through J
    ({"run.plasticity": "auto", "circuit.activation": "relu", "learning.batch": 5}, "chunked:dense"),  # batch means
    ({"run.plasticity": "gather", "recurrence.mask": "fixed_indegree"}, "chunked:gather"),  # the other kernel
])
def test_recurrent_weights_learned_in_chunks_equal_breath_by_breath(dotted, plan):
    """A's Hebbian rule sees only its cortex's direct responses, so a recording chunk of it is one exact chunked
    update (A_T = aⁿA_0 + Σ_s c_s y_s y_sᵀ ⊙ C_rec): after 4 chunks of 50 breaths, A equals the breath-by-breath
    A to float32 rounding (max |ΔA| ≤ 2·10⁻⁶ of max |A|; measured ≤ 4·10⁻⁷), and so does the recorded alignment
    of z_T."""
    runs = {p: olfacto.run(olfacto.config.from_dict(**{**_SMALL_DOTTED, **_REC_DOTTED, **dotted, **over}))
            for p, over in (("auto", {}), ("per_breath", {"run.plasticity": "per_breath"}))}
    assert runs["auto"].dataset.attrs["plasticity_recurrence"] == plan
    assert runs["per_breath"].dataset.attrs["plasticity_recurrence"] == "per_breath"
    for side in ("L", "R"):
        got, want = (np.asarray(runs[p].state.parts["recurrence"][side]) for p in ("auto", "per_breath"))
        assert np.abs(want).max() > 0.1
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.abs(want).max(), err_msg=side)
    np.testing.assert_allclose(runs["auto"].dataset.alignment_recurrent.values[1:],
                               runs["per_breath"].dataset.alignment_recurrent.values[1:], rtol=0, atol=1e-5)


@pytest.mark.parametrize("dotted", [  # every path among the slow checks (test_padding: recurrence padded)
    pytest.param({"learning.rule": "sgd"}, marks=pytest.mark.slow),
    pytest.param({"learning.rule": "sgd", "learning.optimizer": "adam", "learning.lr": 0.002}, marks=pytest.mark.slow),
    pytest.param({"run.plasticity": "per_breath"}, marks=pytest.mark.slow),
    # (a mini-batch would change A too: its updates are batch means)
    pytest.param({"learning.rule": "covariance"}, marks=pytest.mark.slow),
])
def test_recurrence_runs_with_every_rule_and_path(dotted):
    """Recurrence beside every rule and learning path (issue 18: SGD or per-breath with recurrence crashed):
    the projection learns exactly what it learns without recurrence (its own stream, its own update), and A
    learns exactly what it learns beside the chunked Hebbian default (A's rule sees only the direct
    responses, which every rule shares)."""
    rec = _REC_DOTTED
    with_rec = olfacto.run(olfacto.config.from_dict(**{**_SMALL_DOTTED, **rec, **dotted}))
    without = olfacto.run(olfacto.config.from_dict(**{**_SMALL_DOTTED, **rec, **dotted,
                                                      "recurrence.connection_prob": 0.0}))
    default = _default_recurrent_run()
    for d in ("L_to_R", "R_to_L"):
        np.testing.assert_array_equal(with_rec.weights(d, dense=True), without.weights(d, dense=True), err_msg=d)
    for side in ("L", "R"):
        np.testing.assert_allclose(np.asarray(with_rec.state.parts["recurrence"][side]),
                                   np.asarray(default.state.parts["recurrence"][side]), rtol=1e-6, atol=1e-7)
    assert np.isfinite(with_rec.dataset.alignment_recurrent.values[1:]).all()  # breath 0: A = 0, ŷ = 0
    assert not with_rec.dataset.attrs.get("diverged")


# REC for the every-rule cases, with A's own η and λ (not inherited from a case's learning.lr)
_REC_DOTTED = {**{k.replace("__", "."): v for k, v in REC.items()}, "run.n_breaths": 200, "run.record_every": 50,
               "recurrence.lr": 0.01, "recurrence.decay": 1.0}
_SMALL_DOTTED = {"circuit.n_cortex": 64, "circuit.n_glomeruli": 10, "circuit.connection_prob": 0.25,
                 "run.n_probe": 40, "run.progress": False}


@functools.cache
def _default_recurrent_run():
    rec = _REC_DOTTED
    return olfacto.run(olfacto.config.from_dict(**{**_SMALL_DOTTED, **rec}))


@pytest.mark.parametrize("key,value,fragment", [
    ("recurrence.strength", 1.0, "recurrence.strength=1.0: input should be less than 1"),
    ("recurrence.strength", -0.1, "recurrence.strength=-0.1: input should be greater than or equal to 0"),
    ("recurrence.connection_prob", 2, "recurrence.connection_prob=2"),
    ("recurrence.steps", 0, "recurrence.steps=0"),
    ("recurrence.strenght", 0.5, "recurrence.strenght"),
])
def test_bad_recurrence_keys_are_one_line_errors(key, value, fragment):
    with pytest.raises(config.ConfigError) as err:
        config.from_dict(**{key: value})
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_the_fixed_point_record_compiles_once_and_is_the_limit_of_the_refinement():
    """The recurrence's dense fixed point z* = (I − αA)⁻¹ŷ (linear φ) equals z_T after T = 80 steps at s = 0.5
    (contraction 0.5⁸⁰: float32, atol 10⁻⁴), and its device part is one compiled program per Spec: computed
    again it compiles nothing (called eagerly it compiled ten programs per run, its loops' closures new each
    time)."""
    from jax._src import monitoring

    from olfacto.experiments import chapter2

    res = olfacto.run(olfacto.config.from_dict(**{**_SMALL_DOTTED, **_REC_DOTTED, "recurrence.strength": 0.5,
                                                  "recurrence.steps": 80, "seed": 3}))
    compiles = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    first = chapter2.recurrent_fixed_point_alignment(res)
    monitoring.register_event_duration_secs_listener(listen)
    try:
        again = chapter2.recurrent_fixed_point_alignment(res)
    finally:
        monitoring.unregister_event_duration_listener(listen)
    assert compiles == [] and again[0] == first[0]
    assert abs(first[0] - float(np.ravel(res.dataset.alignment_recurrent.isel(breath=-1).values)[0])) < 1e-4
