"""Mean-field theory of bilateral alignment for the analysable case (MODEL.md §6).

Analysable case: gaussian odors x ~ N(0, I_M), independent nostril noise of
size σ (x_h = x + σ ξ_h, gains g = 1), bulb→cortex matrices J_L, J_R with iid
N(0, 1/M) entries, linear activation, inter-hemispheric mask C that is either
``fixed_indegree`` (every cortical neuron has exactly K = pN inputs) or
``bernoulli`` (each synapse present with probability p, K_i ~ Binomial(N, p)).

Notation used in every docstring below:

* ``K = p N`` — mean in-degree (the theory treats it as a real number; the
  simulator uses ``round(p N)`` for the fixed-in-degree mask, so pass
  ``p = round(pN)/N`` to compare exactly);
* ``κ = E[K_i (K_i + 1)] / E[K_i]`` — equals ``K + 1`` for ``fixed_indegree`` and
  ``K + 2 − p`` for ``bernoulli`` (the binomial variance ``K(1−p)`` adds to it);
* ``s = (1 + σ²)²`` and ``ρ = 1 − ηλ``.

Main results (derivations in docs/theory.md):

* Hebbian fixed point, population alignment   A_H = sqrt(K / (κ + M))
* SGD optimum, population alignment            A_S = sqrt(E[min(K_i, M)] / M)   (independent of σ)
* tuning alignments are means of sqrt(Beta) variables (Gamma-function ratios)
* stationary online Hebbian (exact to first order in ε = ηλ/(2−ηλ)):
  A_∞ = A_H (1 + ε (sM + 1))^(−1/2) exp(ε (s + 1) c(κ, M)),
  c(κ, M) = (κ²/2 − κM + 2κ + M/2) / (κ + M)²
* learning curve from W = 0: the same with ε → ε_t = ε (1 + ρ^t) / (1 − ρ^t)
* deficit × relaxation time → A_H [(sM + 1)/4 − (s + 1) c / 2] as η → 0
  (the linear speed–accuracy trade-off).

All functions are pure numpy/scipy and broadcast over array arguments.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, special, stats

__all__ = [
    "MASKS",
    "RULES",
    "mean_indegree",
    "indegree_moment_ratio",
    "hebbian_alignment",
    "sgd_alignment",
    "hebbian_tuning_alignment",
    "sgd_tuning_alignment",
    "hebbian_indirect_gain",
    "sgd_indirect_gain",
    "p_star",
    "p_star_ratio",
    "alignment_power_law_exponent",
    "inverse_scaling_exponent",
    "hebbian_relaxation_time",
    "hebbian_fluctuation_parameter",
    "hebbian_weight_noise_to_signal",
    "hebbian_steady_state_alignment",
    "hebbian_steady_state_deficit",
    "hebbian_learning_curve",
    "speed_accuracy_product",
    "speed_accuracy_constant",
    "windowed_noise_to_signal",
    "lms_stability_lr",
    "lms_log_growth",
    "lms_finite_time_lr",
    "effective_dimension",
    "hebbian_filtered_decoding",
    "sgd_stability_lr",
    "hebbian_gain",
    "hebbian_update_alignment",
    "hebbian_best_partners_alignment",
    "best_partners_in_degree",
    "best_partners_synapse_saving",
]

MASKS = ("fixed_indegree", "bernoulli")
RULES = ("hebbian", "sgd")

SMALL_P_EXPONENT = 0.5
"""d log A / d log p as p → 0, for both rules and both masks."""

INVERSE_SCALING_EXPONENT = -1.0
"""d log p* / d log N at fixed target alignment and M (exact for fixed in-degree)."""


# --------------------------------------------------------------------------- helpers


def _check_mask(mask: str) -> None:
    if mask not in MASKS:
        raise ValueError(f"mask must be one of {MASKS}, got {mask!r}")


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")


def _binom_expect(fun, n: int, p: float) -> float:
    """E[fun(K)] for K ~ Binomial(n, p), summing the pmf over ±12 standard deviations."""
    n = int(round(n))
    p = float(p)
    if p <= 0.0:
        return float(fun(np.zeros(1))[0])
    if p >= 1.0:
        return float(fun(np.full(1, float(n)))[0])
    mean, sd = n * p, np.sqrt(n * p * (1.0 - p))
    lo = max(0, int(np.floor(mean - 12.0 * sd - 10)))
    hi = min(n, int(np.ceil(mean + 12.0 * sd + 10)))
    k = np.arange(lo, hi + 1, dtype=float)
    w = stats.binom.pmf(k, n, p)
    return float(np.sum(w * fun(k)))


def _sqrt_beta_mean(alpha, beta):
    """E[sqrt(T)], T ~ Beta(α, β): Γ(α+½)Γ(α+β) / (Γ(α)Γ(α+β+½)); 0 where α = 0, 1 where β = 0."""
    alpha = np.asarray(alpha, dtype=float)
    beta = np.asarray(beta, dtype=float)
    a = np.where(alpha > 0, alpha, 1.0)
    b = np.where(beta > 0, beta, 1.0)
    val = np.exp(special.gammaln(a + 0.5) + special.gammaln(a + b) - special.gammaln(a) - special.gammaln(a + b + 0.5))
    val = np.where(beta > 0, val, 1.0)
    return np.where(alpha > 0, val, 0.0)


def mean_indegree(n_cortex, connection_prob):
    """Mean in-degree K = p N of a cortical neuron (real-valued)."""
    return np.asarray(connection_prob, dtype=float) * np.asarray(n_cortex, dtype=float)


def indegree_moment_ratio(n_cortex, connection_prob, mask="fixed_indegree"):
    """κ = E[K_i(K_i+1)] / E[K_i]: K + 1 (fixed in-degree) or K + 2 − p (bernoulli, Var K_i = K(1−p))."""
    _check_mask(mask)
    p = np.asarray(connection_prob, dtype=float)
    k = mean_indegree(n_cortex, p)
    return k + 1.0 if mask == "fixed_indegree" else k + 2.0 - p


# --------------------------------------------------------------------------- fixed points


def hebbian_alignment(n_cortex, n_glomeruli, connection_prob, mask="fixed_indegree"):
    """Population alignment at the Hebbian fixed point W_H = C ⊙ J_R J_Lᵀ / λ.

    ŷ_i = a_iᵀ B_i x / λ with B_i = Σ_{j∈S_i} b_j b_jᵀ; averaging over neurons,
    E[y ŷ] = E[K] |x|²/(λM²) and E[ŷ²] = E[K(K+M+1)] |x|²/(λ²M³), so

        A_H = E[K] / sqrt(E[K(K + M + 1)]) = sqrt(K / (κ + M))

    i.e. sqrt(K/(K+M+1)) for ``fixed_indegree`` and sqrt(K/(K+M+2−p)) for
    ``bernoulli``.  Exact as N → ∞ at any fixed K ≥ 1 and M ≥ 1; independent of
    λ and σ.  Finite-N corrections are O(1/N) per probe plus O(N^{-1/2})
    network-to-network scatter.
    """
    k = mean_indegree(n_cortex, connection_prob)
    kappa = indegree_moment_ratio(n_cortex, connection_prob, mask)
    m = np.asarray(n_glomeruli, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sqrt(np.where(k > 0, k / (kappa + m), 0.0))
    return out[()] if out.ndim == 0 else out


def _e_min_k_m(n_cortex, n_glomeruli, connection_prob, mask):
    """E[min(K_i, M)] = E[rank of the input span] (vectorised)."""
    if mask == "fixed_indegree":
        return np.minimum(mean_indegree(n_cortex, connection_prob), np.asarray(n_glomeruli, dtype=float))

    def one(n, m, p):
        # E[min(K, M)] = Σ_{j=0}^{M-1} P(K > j)
        return float(np.sum(stats.binom.sf(np.arange(int(round(m))), int(round(n)), p)))

    return np.vectorize(one, otypes=[float])(n_cortex, n_glomeruli, connection_prob)


def sgd_alignment(n_cortex, n_glomeruli, connection_prob, mask="fixed_indegree", noise=0.0):
    """Population alignment at the SGD fixed point (masked least squares, min-norm).

    Row i solves w_i = argmin E(y_R,i − w·y_L[S_i])²; with E[y_L y_Lᵀ] = (1+σ²) J_L J_Lᵀ
    and E[y_L y_R,i] = J_L a_i this gives ŷ_i = a_iᵀ P_i x / (1+σ²), P_i the orthogonal
    projector onto span{b_j : j ∈ S_i} (rank r_i = min(K_i, M)).  Because P_i² = P_i,
    E[y ŷ] ∝ E[ŷ²] ∝ E[r_i]/M and

        A_S = sqrt(E[min(K_i, M)] / M)

    — sqrt(K/M) below K = M and exactly 1 at K ≥ M (fixed in-degree).  ``noise`` is
    accepted for symmetry but does not enter: nostril noise enters the bulb code as
    σ J_L ξ, whose covariance is proportional to the signal's, so it only rescales ŷ
    by 1/(1+σ²) (see :func:`sgd_indirect_gain`).  Exact as N → ∞.
    """
    _check_mask(mask)
    del noise
    r = _e_min_k_m(n_cortex, n_glomeruli, connection_prob, mask)
    out = np.sqrt(r / np.asarray(n_glomeruli, dtype=float))
    return out[()] if np.ndim(out) == 0 else out


def _tuning_from_k(fun_of_k, n_cortex, connection_prob, mask, empty_neurons):
    if empty_neurons not in ("exclude", "zero"):
        raise ValueError("empty_neurons must be 'exclude' or 'zero'")
    _check_mask(mask)
    if mask == "fixed_indegree":
        return fun_of_k(mean_indegree(n_cortex, connection_prob))

    def one(n, p):
        val = _binom_expect(fun_of_k, n, p)
        if empty_neurons == "exclude":
            p0 = stats.binom.pmf(0, int(round(n)), p)
            val = val / (1.0 - p0) if p0 < 1.0 else np.nan
        return val

    return np.vectorize(one, otypes=[float])(n_cortex, connection_prob)


def hebbian_tuning_alignment(n_cortex, n_glomeruli, connection_prob, mask="fixed_indegree",
                             empty_neurons="exclude"):
    """Tuning alignment (mean over neurons of the across-probe correlation) at the Hebbian fixed point.

    For neuron i the across-probe correlation (infinitely many gaussian probes) is
    cos(a_i, B_i a_i).  Splitting b_j = (b_j·â)â + b_j⊥ gives exactly
    cos² = χ²_K / (χ²_K + χ²_{M−1}) ~ Beta(K/2, (M−1)/2), hence

        T_H(K) = E sqrt(Beta) = Γ((K+1)/2) Γ((K+M−1)/2) / (Γ(K/2) Γ((K+M)/2))
               ≈ sqrt(K/(K+M−1)) · (1 − (M−1)/(8K(K+M+1)))

    — exact at any N (the rows of J_L feeding one neuron are iid).  For ``bernoulli``
    it is averaged over K_i ~ Binomial(N, p); neurons with K_i = 0 have an undefined
    (NaN) correlation and are excluded (``empty_neurons="exclude"``, the simulator's
    convention) or counted as 0 (``"zero"``).  It differs from the population
    alignment by O(1/(K+M)): larger when 8K > M − 1.
    """
    m = np.asarray(n_glomeruli, dtype=float)

    def fun(k):
        return _sqrt_beta_mean(np.asarray(k, dtype=float) / 2.0, (m - 1.0) / 2.0)

    if mask == "bernoulli" and np.ndim(m) > 0:
        return np.vectorize(lambda n, mm, p: hebbian_tuning_alignment(n, mm, p, mask, empty_neurons),
                            otypes=[float])(n_cortex, n_glomeruli, connection_prob)
    out = _tuning_from_k(fun, n_cortex, connection_prob, mask, empty_neurons)
    return out[()] if np.ndim(out) == 0 else out


def sgd_tuning_alignment(n_cortex, n_glomeruli, connection_prob, mask="fixed_indegree", noise=0.0,
                         empty_neurons="exclude"):
    """Tuning alignment at the SGD optimum.

    Neuron i's across-probe correlation is cos(a_i, P_i a_i) = |P_i â_i|, and for a
    random rank-r projector |P â|² ~ Beta(r/2, (M−r)/2), so with r = min(K, M)

        T_S(r) = Γ((r+1)/2) Γ(M/2) / (Γ(r/2) Γ((M+1)/2))   (= 1 at r = M).

    Averaged over K_i ~ Binomial(N, p) for ``bernoulli``.  σ does not enter.
    """
    del noise
    m = np.asarray(n_glomeruli, dtype=float)

    def fun(k):
        r = np.minimum(np.asarray(k, dtype=float), m)
        return _sqrt_beta_mean(r / 2.0, (m - r) / 2.0)

    if mask == "bernoulli" and np.ndim(m) > 0:
        return np.vectorize(lambda n, mm, p: sgd_tuning_alignment(n, mm, p, mask, 0.0, empty_neurons),
                            otypes=[float])(n_cortex, n_glomeruli, connection_prob)
    out = _tuning_from_k(fun, n_cortex, connection_prob, mask, empty_neurons)
    return out[()] if np.ndim(out) == 0 else out


def hebbian_indirect_gain(n_cortex, n_glomeruli, connection_prob, decay=1.0):
    """Across-neuron regression slope of ŷ on y at the Hebbian fixed point: E[yŷ]/E[y²] = K/(Mλ)."""
    return mean_indegree(n_cortex, connection_prob) / (np.asarray(n_glomeruli, dtype=float) * decay)


def sgd_indirect_gain(n_cortex, n_glomeruli, connection_prob, mask="fixed_indegree", noise=0.0):
    """Across-neuron regression slope of ŷ on y at the SGD optimum: E[min(K,M)] / (M (1+σ²))."""
    _check_mask(mask)
    r = _e_min_k_m(n_cortex, n_glomeruli, connection_prob, mask)
    return r / (np.asarray(n_glomeruli, dtype=float) * (1.0 + np.asarray(noise, dtype=float) ** 2))


# --------------------------------------------------------------------------- inverse problem & scaling


def _alignment_fn(rule, measure):
    if measure == "population":
        return hebbian_alignment if rule == "hebbian" else sgd_alignment
    if measure == "tuning":
        return hebbian_tuning_alignment if rule == "hebbian" else sgd_tuning_alignment
    raise ValueError("measure must be 'population' or 'tuning'")


def _p_star_one(a, n, m, rule, mask, measure):
    if not (0.0 < a <= 1.0):
        return np.nan
    if measure == "population":
        a2 = a * a
        if rule == "hebbian" and mask == "fixed_indegree":
            p = np.inf if a2 >= 1.0 else a2 * (m + 1.0) / ((1.0 - a2) * n)
            return p if p <= 1.0 else np.nan
        if rule == "hebbian" and mask == "bernoulli":
            p = a2 * (m + 2.0) / (n * (1.0 - a2) + a2)
            return p if (p <= 1.0 and a2 < 1.0) else np.nan
        if rule == "sgd" and mask == "fixed_indegree":
            p = a2 * m / n
            return p if p <= 1.0 else np.nan
    # monotone root-find for the remaining cases
    fn = _alignment_fn(rule, measure)
    if a >= 1.0:  # only SGD reaches 1: at K = M (fixed in-degree) or p = 1 (bernoulli)
        if rule == "hebbian":
            return np.nan
        return min(1.0, m / n) if mask == "fixed_indegree" else 1.0

    def f(logp):
        return float(fn(n, m, np.exp(logp), mask=mask)) - a

    if f(0.0) <= 0.0:
        return 1.0 if f(0.0) == 0.0 else np.nan
    lo = np.log(1e-3 / n)
    while f(lo) > 0.0:
        lo -= 5.0
    return float(np.exp(optimize.brentq(f, lo, 0.0, xtol=1e-14, rtol=1e-12)))


def p_star(target_alignment, n_cortex, n_glomeruli, rule="hebbian", mask="fixed_indegree",
           measure="population"):
    """Connection probability p* needed to reach a target alignment (inverse of the fixed-point formulas).

    Closed forms (population alignment A):

    * Hebbian, fixed in-degree:  p* = A²(M+1) / ((1−A²) N)
    * Hebbian, bernoulli:        p* = A²(M+2) / ((1−A²) N + A²)
    * SGD, fixed in-degree:      p* = A² M / N          (A ≤ 1; p* = M/N reaches A = 1)
    * SGD, bernoulli:            root of E[min(K,M)] = A² M, found with brentq.

    ``measure="tuning"`` inverts the tuning alignment instead (brentq).  Returns NaN
    where the target cannot be reached with p ≤ 1.  At fixed A and M, p* ∝ 1/N.
    """
    _check_rule(rule)
    _check_mask(mask)
    out = np.vectorize(lambda a, n, m: _p_star_one(float(a), float(n), float(m), rule, mask, measure),
                       otypes=[float])(target_alignment, n_cortex, n_glomeruli)
    return out[()] if np.ndim(out) == 0 else out


def p_star_ratio(target_alignment, n_glomeruli, n_cortex=None, mask="fixed_indegree"):
    """p*_Hebbian / p*_SGD for a target population alignment.

    Fixed in-degree: (M+1) / (M (1 − A²)) — a function of A and M only (N drops out).
    For ``bernoulli`` it is ≈ (M+2) / (M (1 − A²)) while E[min(K,M)] ≈ K, with a weak
    N dependence, so N must then be given.
    """
    a = np.asarray(target_alignment, dtype=float)
    m = np.asarray(n_glomeruli, dtype=float)
    if mask == "fixed_indegree" and n_cortex is None:
        return (m + 1.0) / (m * (1.0 - a * a))
    if n_cortex is None:
        raise ValueError("n_cortex is needed for the bernoulli mask")
    return p_star(a, n_cortex, m, "hebbian", mask) / p_star(a, n_cortex, m, "sgd", mask)


def alignment_power_law_exponent(n_cortex=None, n_glomeruli=None, connection_prob=None, rule="hebbian",
                                 mask="fixed_indegree"):
    """Local log–log slope d log A / d log p of the population alignment.

    Without arguments: the small-p limit, 1/2 (A ∝ p^{1/2} for both rules, both masks:
    A_H ≈ sqrt(pN/(M+1)), A_S ≈ sqrt(pN/M)).  With (N, M, p):

    * Hebbian, fixed in-degree:  ½ (M+1)/(K+M+1)
    * Hebbian, bernoulli:        ½ (M+2)/(K+M+2−p)
    * SGD, fixed in-degree:      ½ for K < M, 0 for K > M
    * SGD, bernoulli:            ½ pN P(Bin(N−1,p) ≤ M−1) / E[min(K,M)]
    """
    if n_cortex is None or n_glomeruli is None or connection_prob is None:
        return SMALL_P_EXPONENT
    _check_rule(rule)
    _check_mask(mask)
    n = np.asarray(n_cortex, dtype=float)
    m = np.asarray(n_glomeruli, dtype=float)
    p = np.asarray(connection_prob, dtype=float)
    k = n * p
    if rule == "hebbian":
        out = 0.5 * (m + 1.0) / (k + m + 1.0) if mask == "fixed_indegree" else 0.5 * (m + 2.0) / (k + m + 2.0 - p)
    elif mask == "fixed_indegree":
        out = np.where(k < m, 0.5, 0.0)
    else:
        def one(nn, mm, pp):
            d = nn * pp * stats.binom.cdf(int(round(mm)) - 1, int(round(nn)) - 1, pp)
            return 0.5 * d / float(_e_min_k_m(nn, mm, pp, "bernoulli"))

        out = np.vectorize(one, otypes=[float])(n, m, p)
    out = np.asarray(out, dtype=float)
    return out[()] if out.ndim == 0 else out


def inverse_scaling_exponent(target_alignment=None, n_cortex=None, n_glomeruli=None, rule="hebbian",
                             mask="fixed_indegree"):
    """d log p* / d log N at fixed target alignment and M.

    Without arguments: −1 (p* = K*(A, M)/N with K* independent of N — exact for the
    fixed-in-degree mask).  With arguments: the local slope, −1 for fixed in-degree,
    −N(1−A²)/(N(1−A²)+A²) for Hebbian/bernoulli, and a log-difference between N and
    2N for SGD/bernoulli.
    """
    if target_alignment is None or n_cortex is None or n_glomeruli is None:
        return INVERSE_SCALING_EXPONENT
    _check_rule(rule)
    _check_mask(mask)
    a2 = np.asarray(target_alignment, dtype=float) ** 2
    n = np.asarray(n_cortex, dtype=float)
    if mask == "fixed_indegree":
        out = np.full(np.broadcast(a2, n, np.asarray(n_glomeruli)).shape, -1.0)
    elif rule == "hebbian":
        out = -n * (1.0 - a2) / (n * (1.0 - a2) + a2)
    else:
        p1 = p_star(np.sqrt(a2), n, n_glomeruli, "sgd", "bernoulli")
        p2 = p_star(np.sqrt(a2), 2.0 * n, n_glomeruli, "sgd", "bernoulli")
        out = np.log(p2 / p1) / np.log(2.0)
    out = np.asarray(out, dtype=float)
    return out[()] if out.ndim == 0 else out


# --------------------------------------------------------------------------- online Hebbian dynamics


def hebbian_relaxation_time(lr, decay):
    """Breaths for the mean weight to relax by a factor e: τ = −1 / log(1 − ηλ) ≈ 1/(ηλ).

    E[W_t] = (1 − (1−ηλ)^t) W_H from W_0 = 0.  The weight *variance* relaxes twice as
    fast (factor (1−ηλ)² per breath).  NaN when |1 − ηλ| ≥ 1 (no relaxation / unstable).
    """
    rho = 1.0 - np.asarray(lr, dtype=float) * np.asarray(decay, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        relax = -1.0 / np.log(np.abs(rho))
        out = np.where((np.abs(rho) < 1.0) & (rho != 0.0), relax, np.where(rho == 0.0, 0.0, np.nan))
    return out[()] if out.ndim == 0 else out


def hebbian_fluctuation_parameter(lr, decay):
    """ε = η²λ² / (1 − ρ²) = ηλ / (2 − ηλ): stationary variance of the normalised history matrix.

    The stationary weights are W = C ⊙ (J_R Q J_Lᵀ) with Q = η Σ_s ρ^s u_s v_sᵀ (u, v the
    two nostrils' inputs); λQ = I + E with Cov(E_ab, E_cd) = ε (s δ_ac δ_bd + δ_ad δ_bc),
    s = (1+σ²)².
    """
    el = np.asarray(lr, dtype=float) * np.asarray(decay, dtype=float)
    return el / (2.0 - el)


def hebbian_weight_noise_to_signal(lr, decay, n_glomeruli, noise=0.0):
    """Stationary Var(W_ij) / E[W_H,ij²] over synapses: R = ε (s M + 1), s = (1+σ²)².

    Per synapse Var(W_ij) = ε/λ² [(1+σ²)² |a_i|²|b_j|² + (a_i·b_j)²] and W_H,ij = a_i·b_j/λ;
    averaging over synapses (E|a|²|b|² = 1, E(a·b)² = 1/M) gives R.
    """
    eps = hebbian_fluctuation_parameter(lr, decay)
    s = (1.0 + np.asarray(noise, dtype=float) ** 2) ** 2
    return eps * (s * np.asarray(n_glomeruli, dtype=float) + 1.0)


def _collective_coefficient(kappa, m):
    """c(κ, M) = (κ²/2 − κM + 2κ + M/2) / (κ + M)² (the O(ε) term not carried by the per-neuron noise)."""
    return (0.5 * kappa**2 - kappa * m + 2.0 * kappa + 0.5 * m) / (kappa + m) ** 2


def _alignment_with_history_noise(eps, n_cortex, n_glomeruli, connection_prob, noise, mask):
    a_h = hebbian_alignment(n_cortex, n_glomeruli, connection_prob, mask)
    kappa = indegree_moment_ratio(n_cortex, connection_prob, mask)
    m = np.asarray(n_glomeruli, dtype=float)
    s = (1.0 + np.asarray(noise, dtype=float) ** 2) ** 2
    # (1 + εR)^(-1/2) resums the per-neuron noise; exp(ε(s+1)c) carries the O(ε) collective term and
    # keeps the result positive outside the perturbative range (both agree with the expansion to O(ε)).
    out = a_h * (1.0 + eps * (s * m + 1.0)) ** -0.5 * np.exp(eps * (s + 1.0) * _collective_coefficient(kappa, m))
    out = np.asarray(out, dtype=float)
    return out[()] if out.ndim == 0 else out


def hebbian_steady_state_alignment(lr, decay, n_cortex, n_glomeruli, connection_prob, noise=0.0,
                                   mask="fixed_indegree"):
    """Mean population alignment of the stationary online-Hebbian weights.

    W = C ⊙ (J_R Q J_Lᵀ) exactly, so for N → ∞ the alignment on a probe x̂ is

        A(Q) = sqrt(K) x̂ᵀQx̂ / sqrt(κ |Qx̂|² + ‖Q‖_F²).

    Expanding around Q = I/λ to second order in the history noise E (Wick moments of
    the breath-by-breath products) and resumming the dominant per-neuron term:

        A_∞ = A_H (1 + ε(sM + 1))^{−1/2} exp(ε (s + 1) c(κ, M)),  ε = ηλ/(2−ηλ),

    exact to O(ε) (= A_H [1 − ε(sM+1)/2 + ε(s+1)c] + O(ε²)); the resummed per-neuron
    factor is exact for M → ∞ at fixed εM.  Only the product ηλ enters.
    """
    eps = hebbian_fluctuation_parameter(lr, decay)
    return _alignment_with_history_noise(eps, n_cortex, n_glomeruli, connection_prob, noise, mask)


def hebbian_steady_state_deficit(lr, decay, n_cortex, n_glomeruli, connection_prob, noise=0.0,
                                 mask="fixed_indegree"):
    """A_H − A_∞ ≈ A_H ε [(sM + 1)/2 − (s + 1) c(κ, M)] ≈ ηλ A_H [(sM+1)/4 − (s+1)c/2]: linear in η."""
    a_h = hebbian_alignment(n_cortex, n_glomeruli, connection_prob, mask)
    return a_h - hebbian_steady_state_alignment(lr, decay, n_cortex, n_glomeruli, connection_prob, noise, mask)


def hebbian_learning_curve(t, lr, decay, n_cortex, n_glomeruli, connection_prob, noise=0.0,
                           mask="fixed_indegree"):
    """Mean population alignment after t breaths of online Hebbian learning from W = 0.

    Q_t = η Σ_{s<t} ρ^{t−1−s} u_s v_sᵀ has mean (1−ρ^t)/λ · I and normalised covariance
    ε_t = ε (1 + ρ^t)/(1 − ρ^t); alignment is scale-free in Q, so A(t) is the stationary
    formula with ε → ε_t.  Early on ε_t ≈ 1/t (A ≈ A_H / sqrt(1 + (sM+1)/t)); for t ≫ τ,
    ε_t → ε.  Accurate once ε_t (s + 1) ≲ 0.1, i.e. t ≳ 10(s+1); returns 0 at t = 0.
    """
    t = np.asarray(t, dtype=float)
    rho = 1.0 - np.asarray(lr, dtype=float) * np.asarray(decay, dtype=float)
    eps = hebbian_fluctuation_parameter(lr, decay)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps_t = np.where(t > 0, eps * (1.0 + rho**t) / (1.0 - rho**t), np.inf)
    out = _alignment_with_history_noise(eps_t, n_cortex, n_glomeruli, connection_prob, noise, mask)
    out = np.where(t > 0, out, 0.0)
    return out[()] if out.ndim == 0 else out


def speed_accuracy_product(lr, decay, n_cortex, n_glomeruli, connection_prob, noise=0.0,
                           mask="fixed_indegree"):
    """Steady-state deficit × relaxation time (breaths); → :func:`speed_accuracy_constant` as η → 0."""
    return hebbian_steady_state_deficit(lr, decay, n_cortex, n_glomeruli, connection_prob, noise, mask) * \
        hebbian_relaxation_time(lr, decay)


def speed_accuracy_constant(n_cortex, n_glomeruli, connection_prob, noise=0.0, mask="fixed_indegree"):
    """η → 0 limit of deficit × τ: A_H [(sM + 1)/4 − (s + 1) c(κ, M)/2], independent of η and λ."""
    a_h = hebbian_alignment(n_cortex, n_glomeruli, connection_prob, mask)
    kappa = indegree_moment_ratio(n_cortex, connection_prob, mask)
    m = np.asarray(n_glomeruli, dtype=float)
    s = (1.0 + np.asarray(noise, dtype=float) ** 2) ** 2
    out = np.asarray(a_h * ((s * m + 1.0) / 4.0 - (s + 1.0) * _collective_coefficient(kappa, m) / 2.0))
    return out[()] if out.ndim == 0 else out


# --------------------------------------------------------------------------- update alignment (result 6)


def hebbian_gain(n_cortex, n_glomeruli, connection_prob, decay):
    """g = K / (M λ): the gain of the Hebbian fixed point along the direct response.

    E[y_post,i ŷ_i] / E[y_post,i²] = g at W = W_H (unit-variance odors): the indirect
    response overshoots the direct one along it when g > 1.
    """
    k = mean_indegree(n_cortex, connection_prob)
    return k / (np.asarray(n_glomeruli, dtype=float) * np.asarray(decay, dtype=float))


def _indegree_moments(n_cortex, connection_prob, mask):
    """E K, E K², E K³ of the in-degree: fixed (K = pN) or Binomial(N, p)."""
    _check_mask(mask)
    n, p = np.asarray(n_cortex, dtype=float), np.asarray(connection_prob, dtype=float)
    mu = n * p
    if mask == "fixed_indegree":
        return mu, mu**2, mu**3
    var, third = mu * (1 - p), mu * (1 - p) * (1 - 2 * p)  # central moments of the binomial
    return mu, var + mu**2, third + 3 * mu * var + mu**3


def hebbian_update_alignment(n_cortex, n_glomeruli, connection_prob, decay, lr=None, noise=0.0, t=None,
                             mask="fixed_indegree"):
    """Mean cos(ΔW_Hebb, ΔW_SGD) on probe breaths, along online Hebbian learning from W = 0.

    On a probe x (|x|² = M, both nostrils), with pre = y_L = J_L x, post = y_R = J_R x, ŷ = W y_L,
    e = y_R − ŷ, ΔW_Hebb = C⊙(y_R y_Lᵀ) − λW and ΔW_SGD = C⊙(e y_Lᵀ). With Q_i = Σ_{j∈C_i} y_L,j²
    (Q_i ~ χ²_{K_i}) the synapse sums are, per neuron,

        ⟨ΔW_H, ΔW_S⟩ = E[e (y_R Q − λ ŷ)],   ‖ΔW_S‖² = E[e² Q],   ‖ΔW_H‖² = E[y_R² Q − 2λ y_R ŷ + λ² w],

    w = Σ_j W_ij². At W = f W_H + δW (mean f = 1 − ρ^t of the fixed point W_H = C ⊙ J_R J_Lᵀ/λ,
    history noise δW of relative size ν = ε_t (sM + 1)), averaging over J exactly (y_R ŷ = Q/(λM)
    and |J_L x ⊙ …|² = Q²/M + Q(M−1)/M given the mask's inputs):

        E[y_R² Q] = E K,               E[y_R ŷ Q] = f E[K(K+2)]/(λM),    E[y_R ŷ] = f E K/(λM),
        E[ŷ²] = f² (E[K(K+M+1)]/M + ν E K) / (M λ²),
        E[ŷ² Q] = f² (E[K(K+2)(K+M+3)]/M + ν E[K(K+2)]) / (M λ²),   E[w] = f² (1 + ν) E K/(M λ²).

    ε_t = ε (1 + ρ^t)/(1 − ρ^t), ε = ηλ/(2 − ηλ); ν = 0 when ``lr`` is None (the exact fixed point);
    ``t`` None: stationary (f = 1, ε_t = ε). The leading terms, K(1 − g) in the numerator with
    g = K/(Mλ) (:func:`hebbian_gain`), give the sign: the SGD error e = y_R − ŷ is anti-correlated
    with y_R exactly when the Hebbian gain along y_R exceeds 1, so the updates end anti-aligned
    when g > 1 (the chapter-1 default of v0.1, K = 100, M = 50, λ = 1: g = 2, cos ≈ −0.5) and
    aligned when g < 1. Neglects the probe-to-probe spread of |x|² (O(1/√M)); exact in J and K.
    """
    m = np.asarray(n_glomeruli, dtype=float)
    lam = np.asarray(decay, dtype=float)
    k1, k2raw, k3raw = _indegree_moments(n_cortex, connection_prob, mask)
    kk2 = k2raw + 2 * k1  # E[K(K+2)]
    kq = k2raw + (m + 1) * k1  # E[K(K+M+1)]
    kk3 = k3raw + (m + 5) * k2raw + 2 * (m + 3) * k1  # E[K(K+2)(K+M+3)]
    if t is None:
        f = 1.0
        eps = 0.0 if lr is None else hebbian_fluctuation_parameter(lr, decay)
    else:
        t = np.asarray(t, dtype=float)
        rho = 1.0 - np.asarray(lr, dtype=float) * lam
        f = 1.0 - rho**t
        with np.errstate(divide="ignore", invalid="ignore"):
            eps = np.where(t > 0, hebbian_fluctuation_parameter(lr, decay) * (1.0 + rho**t) / (1.0 - rho**t), 0.0)
    s = (1.0 + np.asarray(noise, dtype=float) ** 2) ** 2
    nu = eps * (s * m + 1.0)
    yq = k1
    rq = f * kk2 / (lam * m)
    r = f * k1 / (lam * m)
    q = f**2 * (kq / m + nu * k1) / (m * lam**2)
    qq = f**2 * (kk3 / m + nu * kk2) / (m * lam**2)
    w = f**2 * (1.0 + nu) * k1 / (m * lam**2)
    dot = yq - rq - lam * r + lam * q
    ss = yq - 2.0 * rq + qq
    hh = yq - 2.0 * lam * r + lam**2 * w
    out = np.asarray(dot / np.sqrt(hh * ss), dtype=float)
    return out[()] if out.ndim == 0 else out


# -- chapter 2: dynamics of learning (result 8) ------------------------------------------------


def windowed_noise_to_signal(ratio, lr, decay, stride, n_snapshots):
    """What the weight-fluctuation estimator reads for a true Var/mean² ``ratio``: the temporal
    variance and mean of each W_ij estimated from ``n_snapshots`` snapshots ``stride`` breaths apart.

    W_ij at stationarity is an AR(1) process with coefficient ρ = 1 − ηλ per breath, so the
    snapshots have r = ρ^stride. With n snapshots, E[sample variance] = σ² (1 − D/n) and
    E[sample mean²] = μ² + σ² D/n, where D = 1 + 2 Σ_{k=1}^{n−1} (1 − k/n) r^k; hence the read
    ratio R (1 − D/n) / (1 + R D/n). → R as the window grows (D/n → 0).
    """
    r = (1.0 - np.asarray(lr, float) * np.asarray(decay, float)) ** np.asarray(stride, float)
    n = int(n_snapshots)
    k = np.arange(1, n)
    d = 1.0 + 2.0 * np.sum((1.0 - k / n) * np.power.outer(np.atleast_1d(r), k), axis=-1)
    d = d.reshape(np.shape(r)) / n
    ratio = np.asarray(ratio, float)
    return ratio * (1.0 - d) / (1.0 + ratio * d)


def _mp_nodes(ratio: float, points: int = 4000):
    """Nodes and weights of the Marchenko–Pastur law with ratio q ≤ 1 (unit mean), on its support."""
    lo, hi = (1 - np.sqrt(ratio)) ** 2, (1 + np.sqrt(ratio)) ** 2
    theta = (np.arange(points) + 0.5) * np.pi / points  # λ = c − h cos θ: the square-root edges vanish
    c, h = (lo + hi) / 2, (hi - lo) / 2
    lam = c - h * np.cos(theta)
    w = np.sqrt(np.maximum((hi - lam) * (lam - lo), 0.0)) / (2 * np.pi * ratio * lam) * h * np.sin(theta) * np.pi / points
    return lam, w / w.sum()


def lms_stability_lr(eigenvalues, batch=1, weights=None):
    """The largest η at which least-mean-squares regression (online SGD on a quadratic loss, plain,
    mini-batch B) on gaussian inputs with covariance eigenvalues λ_i is mean-square stable.

    In R's eigenbasis the second moment of the weight error obeys
    c_i' = (1 − ηλ_i)² c_i + (η²/B) (λ_i² c_i + λ_i Σ_j λ_j c_j) (gaussian fourth moments),
    which is stable iff every ηλ_i < 2B/(B + 1) and Σ_i ηλ_i / (2B − (B + 1) ηλ_i) < 1
    (B = 1: Σ ηλ_i / (2(1 − ηλ_i)) < 1, the classical LMS condition); η* solves the equality.
    ``weights``: the sum over eigenvalues as Σ_i w_i f(λ_i) (a quadrature of a spectral law).
    """
    lam = np.asarray(eigenvalues, float)
    lam = lam[lam > 0]
    w = np.ones_like(lam) if weights is None else np.asarray(weights, float)[np.asarray(eigenvalues) > 0]
    b = float(batch)

    def excess(eta):
        return np.sum(w * eta * lam / (2 * b - (b + 1) * eta * lam)) - 1.0

    edge = 2 * b / ((b + 1) * lam.max())
    return optimize.brentq(excess, 1e-12 * edge, edge * (1 - 1e-9))


def heavy_ball_stability_lr(eigenvalues, batch=1, momentum=0.0, weights=None):
    """The largest η at which LMS with heavy-ball momentum β (w' = w − η g + β(w − w₋₁), optax's ``sgd`` with
    ``momentum``) on gaussian inputs with covariance eigenvalues h_i is mean-square stable (docs/theory.md §5e).

    In R's eigenbasis the second moments p_i = E e_i², q_i = E e_i e₋₁,i, s_i = E e₋₁,i² obey, with
    c_i = 1 + β − ηh_i, p' = (c² + η²h²/B) p − 2βc q + β² s + (η²/B) h Σ_j h_j p_j, q' = c p − β q, s' = p.
    The map's fixed-point resolvent along p is 1/D_i, D_i = ((1 − β)/(1 + β)) ηh(2(1 + β) − ηh) − η²h²/B, so it
    is a contraction while every D_i > 0 and (η²/B) Σ_i h_i²/D_i < 1, i.e.

        Σ_i ηh_i / ((1 − β)B(2(1 + β) − ηh_i)/(1 + β) − ηh_i) < 1,

    which is :func:`lms_stability_lr` at β = 0 and η* ≈ (1 − β) × the LMS bound when every ηh_i ≪ 1.
    """
    lam = np.asarray(eigenvalues, float)
    keep = lam > 0
    lam = lam[keep]
    w = np.ones_like(lam) if weights is None else np.asarray(weights, float)[keep]
    b, beta = float(batch), float(momentum)
    a = (1 - beta) * b / (1 + beta)

    def excess(eta):
        return np.sum(w * eta * lam / (a * (2 * (1 + beta) - eta * lam) - eta * lam)) - 1.0

    edge = 2 * (1 + beta) * a / ((a + 1) * lam.max())
    return optimize.brentq(excess, 1e-12 * edge, edge * (1 - 1e-9))


def heavy_ball_log_growth(eigenvalues, lr, batch=1, momentum=0.0):
    """ln of the spectral radius of the full second-moment map of :func:`heavy_ball_stability_lr` (3n × 3n, by a
    dense eigen-solve: for checking the closed-form condition at small n)."""
    h = np.asarray(eigenvalues, float)
    n, eta, b, beta = h.size, float(lr), float(batch), float(momentum)
    c = 1 + beta - eta * h
    m = np.zeros((3 * n, 3 * n))
    p, q, s = np.arange(n), n + np.arange(n), 2 * n + np.arange(n)
    m[p, p] = c**2 + eta**2 * h**2 / b
    m[p, q] = -2 * beta * c
    m[p, s] = beta**2
    m[np.ix_(p, p)] += (eta**2 / b) * np.outer(h, h)
    m[q, p] = c
    m[q, q] = -beta
    m[s, p] = 1.0
    return float(np.log(np.max(np.abs(np.linalg.eigvals(m)))))


def heavy_ball_finite_time_lr(eigenvalues, n_steps, log_range, batch=1, momentum=0.0):
    """The η at which the mean-square weight error of heavy-ball LMS (:func:`heavy_ball_log_growth`) grows by
    e^``log_range`` within ``n_steps`` steps: where a run of that length first overflows (cf.
    :func:`lms_finite_time_lr`). Near the asymptotic bound the growth rate rises slowly with η (more slowly the
    larger β), so a finite run finds a larger η* than :func:`heavy_ball_stability_lr`."""
    e = np.asarray(eigenvalues, float)
    start = heavy_ball_stability_lr(e, batch, momentum)

    def excess(eta):
        return n_steps * heavy_ball_log_growth(e, eta, batch, momentum) - log_range

    hi = start * 1.05
    while excess(hi) < 0:
        hi *= 1.3
    return optimize.brentq(excess, start, hi, xtol=start * 1e-4)


def mp_quantiles(in_degree, n_glomeruli, noise=0.0) -> np.ndarray:
    """A typical neuron's r = min(K, M) input-covariance eigenvalues: the Marchenko–Pastur law's quantiles at
    (i + ½)/r (ratio r/max(K, M), mean (1 + σ²)K/r)."""
    k, m = float(in_degree), float(n_glomeruli)
    r = int(min(k, m))
    lam, w = _mp_nodes(r / max(k, m))
    cdf = np.cumsum(w)
    return np.interp((np.arange(r) + 0.5) / r, cdf, lam) * (1.0 + float(noise) ** 2) * k / r


def heavy_ball_sgd_stability_lr(in_degree, n_glomeruli, noise=0.0, batch=1, momentum=0.9):
    """:func:`sgd_stability_lr` with heavy-ball momentum: the typical neuron's bound
    (:func:`heavy_ball_stability_lr` on the Marchenko–Pastur law)."""
    def one(k, m, s2, b, beta):
        r = min(k, m)
        lam, w = _mp_nodes(r / max(k, m))
        return heavy_ball_stability_lr(lam * (1.0 + s2) * k / r, b, beta, weights=r * w)

    args = np.broadcast_arrays(np.asarray(in_degree, float), np.asarray(n_glomeruli, float),
                               np.asarray(noise, float) ** 2, np.asarray(batch, float), np.asarray(momentum, float))
    out = np.vectorize(one)(*args)
    return out[()] if out.ndim == 0 else out


def lms_log_growth(eigenvalues, lr, batch=1):
    """ln of the factor by which the mean-square weight error of LMS (see :func:`lms_stability_lr`) grows
    per step at learning rate ``lr``: ln ρ(diag((1 − ηλ_i)² + η²λ_i²/B) + (η²/B) λλᵀ) (< 0: stable)."""
    lam = np.asarray(eigenvalues, float)
    eta, b = float(lr), float(batch)
    step = np.diag((1 - eta * lam) ** 2 + eta**2 * lam**2 / b) + (eta**2 / b) * np.outer(lam, lam)
    return float(np.log(np.max(np.abs(np.linalg.eigvalsh(step)))))


def lms_finite_time_lr(eigenvalue_sets, n_steps, log_range, batch=1):
    """The smallest η at which some row's mean-square weight error grows by e^``log_range`` within
    ``n_steps`` steps (n · ln ρ(η) = ``log_range``, :func:`lms_log_growth`): where a run of that
    length first overflows, above the asymptotic bound :func:`lms_stability_lr` (which an
    infinitely long run would find). ``eigenvalue_sets``: each row's input-covariance eigenvalues."""
    sets = [np.asarray(e, float) for e in eigenvalue_sets]
    start = min(lms_stability_lr(e, batch) for e in sets)

    def excess(eta):
        return n_steps * max(lms_log_growth(e, eta, batch) for e in sets) - log_range

    hi = start * 1.05
    while excess(hi) < 0:
        hi *= 1.3
    return optimize.brentq(excess, start, hi, xtol=start * 1e-4)


def sgd_stability_lr(in_degree, n_glomeruli, noise=0.0, batch=1):
    """The largest η for which online SGD (plain, mini-batch ``batch``) on the alignment loss is
    mean-square stable for a typical receiving neuron; gaussian odors, gaussian J, linear φ.

    Each receiving neuron's K weights do least-mean-squares regression on its presynaptic responses
    u = J_K x_pre, whose covariance R = (1 + σ²) J_K J_Kᵀ has r = min(K, M) non-zero eigenvalues,
    Marchenko–Pastur distributed (ratio r / max(K, M), mean (1 + σ²) K / r) for large K and M:
    :func:`lms_stability_lr` with that law. For equal eigenvalues it would reduce to
    η* = 2B / ((B + 1 + r) λ̄) — about 2 / ((1 + σ²)(K + 2)) for K ≤ M. A network diverges with
    its least stable neuron, whose own eigenvalues give a somewhat smaller η*
    (:func:`olfacto.analysis.chapter2.stability_theory`).
    """
    def one(k, m, s2, b):
        r = min(k, m)
        lam, w = _mp_nodes(r / max(k, m))
        return lms_stability_lr(lam * (1.0 + s2) * k / r, b, weights=r * w)

    k, m, s2, b = np.broadcast_arrays(np.asarray(in_degree, float), np.asarray(n_glomeruli, float),
                                      np.asarray(noise, float) ** 2, np.asarray(batch, float))
    out = np.vectorize(one)(k, m, s2, b)
    return out[()] if out.ndim == 0 else out


# -- measured odors: the Hebbian solution filters by the odor second moment (issue 9, item 5) ----------


def effective_dimension(covariance) -> float:
    """d_eff = (tr Σ)² / tr(Σ²): the number of equally strong directions with the same spread (M for white
    odors, 1 for odors along one direction)."""
    c = np.asarray(covariance, float)
    return float(np.trace(c) ** 2 / np.sum(c * c))


def hebbian_filtered_decoding(probes, second_moment) -> float:
    """Cross-side odor decoding of the Hebbian solution in the dense limit (K, N → ∞, linear φ, gaussian J).

    The Hebbian fixed point learns the odors' second moment S = E[x xᵀ] (mean included): with every
    synapse present, W_H = J_post S J_preᵀ/λ and ŷ = W_H J_pre x ≈ (N/M) J_post S x/λ, the direct
    response to the *filtered* odor S x. Correlations over neurons of J a and J b tend to cos(a, b), so
    the decoder (argmax over templates b of corr(ŷ_a, y_b)) picks argmax_b cos(S x_a, x_b): correct
    when filtering by S keeps each probe nearest to itself. For white odors S = I and decoding is
    perfect; when S has a few dominant directions (measured glomerular odors: d_eff ≈ 3), every S x_a
    points along them and decoding falls towards chance, while the per-neuron tuning correlations,
    carried by those same dominant directions, stay high. Finite K only adds noise (lowers it).
    """
    x = np.asarray(probes, float)
    filtered = x @ np.asarray(second_moment, float)
    a = filtered / np.linalg.norm(filtered, axis=1, keepdims=True)
    b = x / np.linalg.norm(x, axis=1, keepdims=True)
    return float(np.mean(np.argmax(a @ b.T, axis=1) == np.arange(len(x))))


# -- structural plasticity: the best-partners reference (beyond the thesis) ---------------------


def _top_sum_moments(n_cortex, in_degree):
    """E[S] and E[S²] of S = the sum of the K largest of N iid χ²₁ variables (asymptotic order statistics:
    threshold τ with P(u > τ) = K/N; Stigler's variance of a trimmed sum)."""
    n, k = float(n_cortex), float(in_degree)
    q = min(1.0, k / n)
    tau = float(stats.chi2.isf(q, 1)) if q < 1.0 else 0.0
    mu = stats.chi2.sf(tau, 3) / q  # E[u | u > τ]: u f₁(u) = f₃(u)
    second = 3.0 * stats.chi2.sf(tau, 5) / q  # E[u² | u > τ]: u² f₁(u) = 3 f₅(u)
    var = k * (second - mu * mu) + k * (1.0 - q) * (mu - tau) ** 2
    mean = k * mu
    return mean, mean * mean + var


def hebbian_best_partners_alignment(n_cortex, n_glomeruli, in_degree):
    """Population alignment at the Hebbian fixed point when every neuron keeps its K *best* partners — the K of
    the N sending neurons with the largest |a_i · b_j| (a_i = J_post,i, b_j = J_pre,j) — instead of K random
    ones: the reference that rewiring by correlation can approach (analysable case, linear φ).

    With â = a_i/|a_i| and c_j = â·b_j, the fixed point gives ŷ_i = |a_i| (Q â·x + r·x)/λ with
    Q = Σ_{j∈S_i} c_j² and r = Σ_j c_j b_j⊥ (⊥ â, E|r|² = Q(M−1)/M), so

        A = E[S] / sqrt(E[S²] + (M − 1) E[S]),   S = M Q = the sum of the K largest of N iid χ²₁

    (random partners: S ~ χ²_K, E[S²] = K² + 2K, which gives back A_H = sqrt(K/(K+M+1))). E[S] and
    E[S²] from the order statistics of χ²₁ at the threshold τ, P(u > τ) = K/N (exact as N → ∞ at fixed
    K/N; at K/N → 0, S ≈ 2K ln(N/K), so the K needed for a given A falls like 1/ln N).
    """

    def one(n, m, k):
        if not (1 <= k <= n):
            return np.nan
        mean, second = _top_sum_moments(n, k)
        return mean / np.sqrt(second + (m - 1.0) * mean)

    out = np.vectorize(one, otypes=[float])(n_cortex, n_glomeruli, in_degree)
    return out[()] if np.ndim(out) == 0 else out


def best_partners_in_degree(target_alignment, n_cortex, n_glomeruli):
    """The in-degree K (real) at which the best-partners alignment reaches ``target_alignment`` (brentq);
    NaN where even K = N does not."""

    def one(a, n, m):
        def f(k):
            return float(hebbian_best_partners_alignment(n, m, k)) - a

        if f(n) < 0:
            return np.nan
        if f(1.0) >= 0:
            return 1.0
        return float(optimize.brentq(f, 1.0, n, xtol=1e-9, rtol=1e-10))

    out = np.vectorize(one, otypes=[float])(target_alignment, n_cortex, n_glomeruli)
    return out[()] if np.ndim(out) == 0 else out


def best_partners_synapse_saving(target_alignment, n_cortex, n_glomeruli):
    """K a fixed random mask needs for ``target_alignment`` (A²(M+1)/(1−A²)) over the K the best partners need:
    the most synapses per neuron that choosing partners can save at the Hebbian fixed point."""
    a2 = np.asarray(target_alignment, float) ** 2
    k_fixed = a2 * (np.asarray(n_glomeruli, float) + 1.0) / (1.0 - a2)
    return k_fixed / best_partners_in_degree(target_alignment, n_cortex, n_glomeruli)
