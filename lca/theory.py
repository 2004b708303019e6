"""Closed forms: recall-error bounds, the value-matrix error bound, the one-step gradient of W_V
and W_KQ at zero, Gram-vs-Hamming profiles, Krawtchouk spectra, hijack thresholds."""

from __future__ import annotations

# ==== section: associative-memory (chapter 1) ====
# (owned by the associative-memory (chapter 1) work; add functions between this marker and the next)
#
# Keys u_1..u_N are independent with N(0, I/d) entries; for one-hot values (v_i = e_i) and the
# outer-product memory W = sum_i v_i u_i^T, recall of pair j succeeds iff ||u_j||^2 > u_i^T u_j for
# every i != j. Given u_j the N - 1 scores u_i^T u_j are i.i.d. N(0, ||u_j||^2 / d), so
#     P(success) = E[ Phi(R)^(N-1) ],   R = sqrt(d) ||u_j|| ~ chi distribution with d degrees,
# an exact one-dimensional integral (book/proofs/memory.md, thm-onehot-recall).
import math as _mem_math

import torch

from ._validate import check_int as _mem_int


def _chi_quadrature(d: int, points: int = 6001) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes r and weights w (float64) with sum_k w_k f(r_k) ~ E[f(R)], R ~ chi_d (composite
    Simpson on [max(0, sqrt(d) - 14), sqrt(d) + 14]; the mass outside is below 1e-40)."""
    centre = d ** 0.5
    lo, hi = max(0.0, centre - 14.0), centre + 14.0
    r = torch.linspace(lo, hi, points, dtype=torch.float64)
    h = (hi - lo) / (points - 1)
    logf = ((d - 1) * torch.log(r.clamp(min=1e-300)) - r ** 2 / 2 - (d / 2 - 1) * _mem_math.log(2.0)
            - _mem_math.lgamma(d / 2))
    f = torch.exp(logf)
    if d == 1:
        f[r == 0] = _mem_math.sqrt(2 / _mem_math.pi)
    simpson = torch.ones(points, dtype=torch.float64)
    simpson[1:-1:2], simpson[2:-1:2] = 4.0, 2.0
    return r, f * simpson * h / 3



def recall_success_exact(N: int, d: int) -> float:
    """Exact probability that argmax recall of one stored pair succeeds (one-hot values, N keys
    with i.i.d. N(0, 1/d) entries): ``E[Phi(R)^(N-1)]`` with R chi-distributed with d degrees of
    freedom, evaluated by quadrature (absolute error below 1e-10)."""
    return 1.0 - recall_failure_exact(N, d)


def recall_failure_exact(N: int, d: int) -> float:
    """``1 - recall_success_exact(N, d)``, computed as E[1 - Phi(R)^(N-1)] so that tiny failure
    probabilities keep their relative precision."""
    N = _mem_int("N", N, 1, 10 ** 12)
    d = _mem_int("d", d, 1, 100_000)
    if N == 1:
        return 0.0
    r, w = _chi_quadrature(d)
    fail = -torch.expm1((N - 1) * torch.special.log_ndtr(r))
    return float((w * fail).sum().clamp(0.0, 1.0))


def recall_pair_error(d: int) -> float:
    """Exact probability that one given wrong key outscores the right one, P(u_i^T u_j > ||u_j||^2)
    = P(Z > R) = E[Phi(-R)] with Z ~ N(0, 1) independent of R ~ chi_d; equals
    (1/2) P(chi2_1 > chi2_d)."""
    d = _mem_int("d", d, 1, 100_000)
    r, w = _chi_quadrature(d)
    return float((w * torch.special.ndtr(-r)).sum())


def recall_failure_union(N: int, d: int) -> float:
    """Union bound on the failure probability: ``min(1, (N - 1) * recall_pair_error(d))``."""
    N = _mem_int("N", N, 1, 10 ** 12)
    return min(1.0, (N - 1) * recall_pair_error(d))


def recall_failure_chernoff(N: int, d: int) -> float:
    """Closed-form bound ``min(1, (N - 1) 2^(-d/2 - 1))`` on the failure probability, from
    Phi(-x) <= exp(-x^2/2)/2 and E[exp(-R^2/2)] = 2^(-d/2)."""
    N = _mem_int("N", N, 1, 10 ** 12)
    d = _mem_int("d", d, 1, 100_000)
    return min(1.0, (N - 1) * 2.0 ** (-d / 2 - 1))


def recall_success_gaussian(N: int, d: int) -> float:
    """Gaussian (fixed-norm) approximation ``Phi(sqrt(d))^(N-1)``: the exact formula with the key
    norm R replaced by its typical value sqrt(d). An approximation, not a bound."""
    N = _mem_int("N", N, 1, 10 ** 12)
    d = _mem_int("d", d, 1, 100_000)
    return float(torch.exp((N - 1) * torch.special.log_ndtr(torch.tensor(d ** 0.5,
                                                                           dtype=torch.float64))))


def recall_mse(N: int, d: int) -> float:
    """Exact mean squared recall error E||W u_j - v_j||^2 = (N + 1) / d for N unit-norm values and
    keys with i.i.d. N(0, 1/d) entries (general values: (||v_j||^2 + sum_i ||v_i||^2) / d)."""
    N = _mem_int("N", N, 1, 10 ** 12)
    d = _mem_int("d", d, 1, 10 ** 9)
    return (N + 1) / d


def crosstalk_moments(N: int, d: int) -> dict:
    """Exact moments of the recall of pair j with N one-hot values and N(0, I/d) keys.

    Returns a dict of floats: ``signal_mean`` E||u_j||^2 = 1, ``signal_var`` 2/d,
    ``coef_var`` E[(u_i^T u_j)^2] = 1/d (i != j; the mean is 0), ``coef_fourth`` E[(u_i^T u_j)^4]
    = 3(1 + 2/d)/d^2, ``coef_sq_cov`` Cov((u_i^T u_j)^2, (u_k^T u_j)^2) = 2/d^3 (i, j, k distinct),
    ``crosstalk_sq_mean`` E||c_j||^2 = (N - 1)/d, ``crosstalk_sq_var`` Var||c_j||^2 =
    (N - 1)(2 + 6/d)/d^2 + 2(N - 1)(N - 2)/d^3, and ``mse`` E||W u_j - v_j||^2 = (N + 1)/d.
    """
    N = _mem_int("N", N, 1, 10 ** 12)
    d = _mem_int("d", d, 1, 10 ** 9)
    return {
        "signal_mean": 1.0,
        "signal_var": 2.0 / d,
        "coef_mean": 0.0,
        "coef_var": 1.0 / d,
        "coef_fourth": 3.0 * (1 + 2.0 / d) / d ** 2,
        "coef_sq_cov": 2.0 / d ** 3,
        "crosstalk_sq_mean": (N - 1) / d,
        "crosstalk_sq_var": (N - 1) * (2 + 6.0 / d) / d ** 2 + 2.0 * (N - 1) * (N - 2) / d ** 3,
        "mse": (N + 1) / d,
    }


def recall_capacity(d: int, delta: float = 0.01) -> int:
    """Largest N whose exact one-hot recall failure probability is at most ``delta`` (per pair)."""
    from ._validate import check_float
    d = _mem_int("d", d, 1, 64)
    delta = check_float("delta", delta, 0.0, 1.0, lo_open=True, hi_open=True)
    if recall_failure_exact(2, d) > delta:
        return 1
    lo, hi = 2, 2
    while recall_failure_exact(hi, d) <= delta:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if recall_failure_exact(mid, d) <= delta:
            lo = mid
        else:
            hi = mid
    return lo


# ==== section: lca-task (chapter 2) ====
# (owned by the lca-task (chapter 2) work; add functions between this marker and the next)
#
# Exact quantities of the LCA task: the Bayes-optimal accuracy of the pure radius-1 sphere task in
# closed form (thm-bayes-sphere), the same accuracy by exact enumeration for any noise-free task
# with small neighbourhoods, the exact law of a whole context, and a chi-square test of a sampler.

from fractions import Fraction as _Fraction  # noqa: E402
from typing import NamedTuple as _NamedTuple  # noqa: E402

from ._validate import check_float as _lca_float  # noqa: E402
from ._validate import check_int as _lca_int  # noqa: E402


def surjections(L: int, k: int) -> int:
    """Number of maps from L positions onto a set of k tokens that use every token,
    k! S(L, k) = sum_j (-1)^j C(k, j) (k - j)^L (exact integer)."""
    L = _lca_int("L", L, 0, 100_000)
    k = _lca_int("k", k, 0, 100_000)
    return sum((-1) ** j * _mem_math.comb(k, j) * (k - j) ** L for j in range(k + 1))


def support_size_law(D: int, L: int) -> list:
    """Exact law of K, the number of distinct tokens among L i.i.d. uniform draws from D tokens:
    list of ``Fraction`` with entry k = P(K = k) = C(D, k) k! S(L, k) / D^L for k = 0..min(D, L)."""
    D = _lca_int("D", D, 1, 10_000)
    L = _lca_int("L", L, 1, 2_000)
    total = D ** L
    return [_Fraction(_mem_math.comb(D, k) * surjections(L, k), total)
            for k in range(min(D, L) + 1)]


def bayes_accuracy_sphere1(m: int, L: int, exact: bool = False):
    """Bayes-optimal accuracy of the noise-free task with neighbourhood N_1 (radius-1 sphere), ties
    broken uniformly at random (thm-bayes-sphere):

        acc(m, L) = 1 - (m - 1) / m^L - m (m - 1) (2^L - 2) / (4 m^L).

    Returns a float, or an exact ``Fraction`` when ``exact`` (then L must be at most 4096).
    """
    m = _lca_int("m", m, 1, 16)
    L = _lca_int("L", L, 1, 1_000_000)
    if exact:
        L = _lca_int("L", L, 1, 4096)
        return 1 - _Fraction(m - 1, m ** L) - _Fraction(m * (m - 1) * (2 ** L - 2), 4 * m ** L)
    if m == 1:
        return 1.0
    # (2/m)^L (1 - 2^(1-L)) = (2^L - 2)/m^L without overflow
    return float(1.0 - (m - 1) * m ** (-float(L))
                 - m * (m - 1) / 4.0 * (2.0 / m) ** L * (1.0 - 2.0 ** (1 - L)))


def bayes_error_bound_sphere1(m: int, L: int) -> float:
    """The cruder bound P(error) <= C(m, 2) (2/m)^L (ties counted as errors, union over the
    C(m, 2) targets at distance 2), for comparison with the exact closed form."""
    m = _lca_int("m", m, 1, 16)
    L = _lca_int("L", L, 1, 1_000_000)
    return min(1.0, _mem_math.comb(m, 2) * (2.0 / m) ** L)


def _xor_invariant(mask: torch.Tensor) -> bool:
    V = mask.shape[0]
    t = torch.arange(V)
    return bool(torch.equal(mask, mask[0][t[:, None] ^ t[None, :]]))


def bayes_accuracy_enumerate(spec, max_cells: int = 2 ** 25) -> float:
    """Exact Bayes-optimal accuracy of a noise-free task by enumerating every possible context
    support S (the set of distinct context tokens) inside each target's neighbourhood.

    With noise 0 a context drawn for target y has support S subset of N(y) with probability
    surj(L, |S|) / |N(y)|^L; the posterior of y' is proportional to |N(y')|^(-L) on the targets
    with S subset of N(y') and 0 elsewhere, and the Bayes rule (ties broken uniformly) is right
    with probability 1[y in argmax] / |argmax|. When the neighbourhood mask is invariant under
    XOR translations (spheres, balls, clusters) only y = 0 is enumerated.

    Needs ``spec.noise == 0`` and ``2^|N(y)| * V <= max_cells``.
    """
    from .task import TaskSpec
    if not isinstance(spec, TaskSpec):
        raise ValueError(f"spec must be a TaskSpec, got {type(spec).__name__}")
    if spec.noise != 0:
        raise ValueError(f"noise must be 0 for exact enumeration (with noise every token can "
                         f"appear), got {spec.noise}")
    max_cells = _lca_int("max_cells", max_cells, 1, 2 ** 31)
    mask = spec.neighbourhood.mask(spec.space)
    V, L = spec.V, spec.L
    deg = mask.sum(1)
    Dmax = int(deg.max())
    if (2 ** Dmax) * V > max_cells:
        raise ValueError(f"max_cells must be at least 2^|N(y)| * V = {2 ** Dmax * V} for this "
                         f"task (neighbourhoods of {Dmax} tokens), got {max_cells}")
    targets = [0] if _xor_invariant(mask) else range(V)
    total = 0.0
    for y in targets:
        nb = torch.nonzero(mask[y]).flatten()
        D = nb.numel()
        S = torch.arange(2 ** D)
        bits = (S[:, None] >> torch.arange(D)[None, :]) & 1  # [2^D, D]
        size = bits.sum(1)
        # consistent[S, y'] = every token of S lies in N(y')
        cols = mask[:, nb].T  # [D, V]
        consistent = torch.ones((2 ** D, V), dtype=torch.bool)
        for a in range(D):
            consistent[bits[:, a] == 1] &= cols[a]
        big = torch.iinfo(torch.long).max
        degs = torch.where(consistent, deg[None, :], torch.full_like(consistent, big,
                                                                     dtype=torch.long))
        best = degs.min(1).values
        n_best = (degs == best[:, None]).sum(1)
        correct = (degs[:, y] == best).double() / n_best.double()
        law = support_size_law(D, L)
        p_set = torch.tensor([float(law[k] / _mem_math.comb(D, k)) if k < len(law) else 0.0
                              for k in range(D + 1)], dtype=torch.float64)
        prob = p_set[size]
        prob[size == 0] = 0.0
        total += float((prob * correct).sum())
    return total / len(targets)


def context_law_table(spec, max_contexts: int = 2 ** 20) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact joint law of (target, whole context), computed from the task's definition.

    Returns ``(contexts LongTensor[V^L, L], joint Tensor[V, V^L])`` with contexts in lexicographic
    order (context c has code sum_l x_l V^(L-1-l)) and ``joint[y, c] = (1/V) prod_l P_l(x_l | y)``,
    where P_l = (1 - noise) Unif(N(y)) + noise q(. | y) (q uniform over the tokens other than y, or
    uniform over the noise law's set), and the last position is Unif(N(y)) when ``clean_last``.
    """
    from .task import TaskSpec
    if not isinstance(spec, TaskSpec):
        raise ValueError(f"spec must be a TaskSpec, got {type(spec).__name__}")
    max_contexts = _lca_int("max_contexts", max_contexts, 1, 2 ** 26)
    V, L = spec.V, spec.L
    if V ** L > max_contexts:
        raise ValueError(f"max_contexts must be at least V^L = {V ** L} to enumerate every context "
                         f"(V={V}, L={L}), got {max_contexts}; use a smaller m or L")
    mask = spec.neighbourhood.mask(spec.space).double()
    clean = mask / mask.sum(1, keepdim=True)
    if spec.noise_law == "uniform":
        q = 1.0 - torch.eye(V, dtype=torch.float64)
    else:
        q = spec.noise_law.mask(spec.space).double()
    q = q / q.sum(1, keepdim=True)
    mixed = (1 - spec.noise) * clean + spec.noise * q
    contexts = context_codes_inverse(torch.arange(V ** L), V, L)
    joint = torch.full((V, V ** L), 1.0 / V, dtype=torch.float64)
    for pos in range(L):
        law = clean if (spec.clean_last and pos == L - 1) else mixed
        joint = joint * law[:, contexts[:, pos]]
    return contexts, joint


def context_codes(contexts: torch.Tensor, V: int) -> torch.Tensor:
    """``LongTensor[n]``: code sum_l x_l V^(L-1-l) of each context ``[n, L]`` (lexicographic)."""
    from ._validate import check_tokens
    V = _lca_int("V", V, 2, 2 ** 16)
    contexts = check_tokens("contexts", contexts, V, ndim=2)
    L = contexts.shape[1]
    weights = V ** torch.arange(L - 1, -1, -1)
    return (contexts * weights).sum(1)


def context_codes_inverse(codes: torch.Tensor, V: int, L: int) -> torch.Tensor:
    """``LongTensor[n, L]``: the contexts with the given codes (inverse of ``context_codes``)."""
    V = _lca_int("V", V, 2, 2 ** 16)
    L = _lca_int("L", L, 1, 64)
    codes = torch.as_tensor(codes).long()
    shifts = V ** torch.arange(L - 1, -1, -1)
    return (codes[:, None] // shifts[None, :]) % V


class ChiSquare(_NamedTuple):
    """Pearson goodness-of-fit result: statistic, degrees of freedom, p-value, pooled cells."""
    statistic: float
    dof: int
    p_value: float
    cells: int


def chi_square(counts: torch.Tensor, probs: torch.Tensor, min_expected: float = 5.0) -> ChiSquare:
    """Pearson chi-square test of observed ``counts`` against cell probabilities ``probs`` (same
    shape, any dims). Cells whose expected count is below ``min_expected`` are pooled into one
    cell; an observation in a cell of probability 0 gives statistic inf and p-value 0."""
    if not isinstance(counts, torch.Tensor) or not isinstance(probs, torch.Tensor):
        raise ValueError("counts and probs must be torch tensors")
    if counts.shape != probs.shape:
        raise ValueError(f"counts and probs must have the same shape, got {tuple(counts.shape)} "
                         f"and {tuple(probs.shape)}")
    min_expected = _lca_float("min_expected", min_expected, 0.0, 1e6)
    counts, probs = counts.double().flatten(), probs.double().flatten()
    if bool((probs < 0).any()) or abs(float(probs.sum()) - 1.0) > 1e-9:
        raise ValueError(f"probs must be non-negative and sum to 1, got sum {float(probs.sum())}")
    n = float(counts.sum())
    if n <= 0:
        raise ValueError("counts must contain at least one observation")
    if bool((counts[probs == 0] > 0).any()):
        return ChiSquare(float("inf"), 0, 0.0, int((probs > 0).sum()))
    expected = n * probs
    small = (expected < min_expected) & (probs > 0)
    big = expected >= min_expected
    obs = counts[big]
    exp = expected[big]
    if bool(small.any()):
        obs = torch.cat([obs, counts[small].sum()[None]])
        exp = torch.cat([exp, expected[small].sum()[None]])
    stat = float(((obs - exp) ** 2 / exp).sum())
    dof = obs.numel() - 1
    if dof < 1:
        raise ValueError("chi_square needs at least two cells with enough expected counts; "
                         "draw more samples or lower min_expected")
    p = float(torch.special.gammaincc(torch.tensor(dof / 2.0, dtype=torch.float64),
                                      torch.tensor(stat / 2.0, dtype=torch.float64)))
    return ChiSquare(stat, int(dof), p, int(obs.numel()))


def sampler_chi_square(spec, contexts: torch.Tensor, targets: torch.Tensor,
                       min_expected: float = 5.0) -> ChiSquare:
    """Chi-square test of sampled ``(contexts [n, L], targets [n])`` against the exact joint law
    ``context_law_table(spec)`` over all V * V^L cells (target, whole context)."""
    from ._validate import check_tokens
    _, joint = context_law_table(spec)
    V = spec.V
    contexts = check_tokens("contexts", contexts, V, ndim=2)
    targets = check_tokens("targets", targets, V, ndim=1)
    if contexts.shape[1] != spec.L or contexts.shape[0] != targets.shape[0]:
        raise ValueError(f"contexts must have shape [n, L={spec.L}] and targets [n], got "
                         f"{tuple(contexts.shape)} and {tuple(targets.shape)}")
    cell = targets * V ** spec.L + context_codes(contexts, V)
    counts = torch.bincount(cell, minlength=joint.numel()).double().reshape(joint.shape)
    return chi_square(counts, joint, min_expected)


# ==== section: value-matrix (chapter 4) ====
# (owned by the value-matrix (chapter 4) work; add functions between this marker and the next)
#
# Closed forms for the value-matrix chapter (book/proofs/value_matrix.md). Throughout, attention is
# uniform (W_KQ = 0), so h = W_E^T c with c the vector of token frequencies in the context, and the
# constructed model's logits with orthonormal embeddings are f = A c (thm-wv-construction).
#   - wv_error_exact_sphere1 / wv_error_exact / wv_error_bound: error probability of W_V* (ties
#     counted as errors), thm-wv-error-bound;
#   - identity_pm1_accuracy: W_V = I with the centred +-1 embedding, prop-pm1-majority;
#   - one_step_WV (+ parts, sampling error), enumerate_task, exact_population_loss: thm-one-step-wv.

import math as _vm_math  # noqa: E402
from fractions import Fraction as _VmFraction  # noqa: E402

import torch  # noqa: E402, F811

from ._validate import check_float as _vm_check_float  # noqa: E402
from ._validate import check_int as _vm_check_int  # noqa: E402


def _vm_task(spec):
    from .task import TaskSpec
    if not isinstance(spec, TaskSpec):
        raise ValueError(f"spec must be a TaskSpec, got {type(spec).__name__}")
    return spec


def _vm_position_laws(spec) -> tuple[torch.Tensor, torch.Tensor]:
    """(law of a body position, law of the last position), each ``[V, V]`` float64 ``P[y, x]``."""
    P = spec.context_law()
    last = spec.clean_law() if (spec.clean_last and spec.noise > 0) else P
    return P, last


def wv_error_exact_sphere1(m: int, L: int) -> float:
    """Exact error probability (ties count as errors) of the constructed model ``W_V*`` with
    orthonormal embeddings and uniform attention on the noise-free task with N = Hamming sphere of
    radius 1: ``C(m,2) (2/m)^L - m (m-2) m^(-L)`` for m >= 2, and 0 for m = 1.

    The error event is "the context uses at most two distinct tokens" (thm-wv-error-bound).
    """
    m = _vm_check_int("m", m, 1, 16)
    L = _vm_check_int("L", L, 1, 1_000_000)
    if m == 1:
        return 0.0
    exact = (_VmFraction(_vm_math.comb(m, 2) * 2 ** L, m ** L)
             - _VmFraction(m * (m - 2), m ** L))
    return float(exact)


def wv_sphere1_union_bound(m: int, L: int) -> float:
    """The union bound ``C(m,2) (2/m)^L`` on the same error probability (may exceed 1)."""
    m = _vm_check_int("m", m, 1, 16)
    L = _vm_check_int("L", L, 1, 1_000_000)
    return _vm_math.comb(m, 2) * (2 / m) ** L


def _vm_surjection_probability(L: int, t: int, n: int) -> float:
    """P(L uniform draws from n items hit exactly a given set of t items, each at least once)."""
    surj = sum((-1) ** i * _vm_math.comb(t, i) * (t - i) ** L for i in range(t + 1))
    return float(_VmFraction(surj, n ** L))


def _vm_translation_invariant(nb) -> bool:
    from .latent import Cluster, HammingBall, HammingSphere
    return isinstance(nb, (HammingSphere, HammingBall, Cluster))


def wv_error_exact(spec, max_support: int = 20) -> float:
    """Exact error probability (ties count as errors) of ``W_V*`` (built from the task's own
    neighbourhood) with orthonormal embeddings and uniform attention, by enumeration.

    Hypotheses: ``spec.noise == 0``. Then the target's logit is 1 and the model errs exactly when
    the set T of distinct context tokens lies in ``N(k)`` for some ``k != y``. The probability that
    T equals a given set of size t is ``surj(L, t) / |N(y)|^L``; the function enumerates the
    ``2^|N(y)|`` subsets of N(y), so it needs ``|N(y)| <= max_support`` (at most 24).
    Hamming spheres, balls and clusters are invariant under the translations z -> z xor u, so only
    y = 0 is enumerated for them; other families average over every y.
    """
    spec = _vm_task(spec)
    max_support = _vm_check_int("max_support", max_support, 1, 24)
    if spec.noise != 0:
        raise ValueError(f"noise must be 0 for the exact enumeration, got {spec.noise:g} "
                         "(use wv_error_bound or a Monte Carlo estimate)")
    space = spec.space
    M = spec.neighbourhood.mask(space)
    deg = M.sum(1)
    if int(deg.max()) > max_support:
        raise ValueError(f"max_support must be at least the neighbourhood size {int(deg.max())} "
                         f"for this task, got {max_support} (2^size subsets are enumerated)")
    L = spec.L
    targets = [0] if _vm_translation_invariant(spec.neighbourhood) else range(spec.V)
    total = 0.0
    for y in targets:
        nbrs = torch.nonzero(M[y]).flatten()
        n = nbrs.numel()
        # for every other target k: the set S_k = N(y) & N(k), as a bitmask over positions in nbrs
        inside = M[:, nbrs].clone()                      # [V(k), n]: nbrs[j] in N(k)
        inside[y] = False
        weights = 2 ** torch.arange(n, dtype=torch.int64)
        codes = (inside.long() * weights).sum(1)         # [V]
        flag = torch.zeros(2 ** n, dtype=torch.bool)
        flag[codes] = True
        flag[0] = False if bool(codes.eq(0).all()) else flag[0]
        # mark every subset of some S_k: push "is a subset of a marked set" down bit by bit
        f = flag.view((2,) * n) if n else flag
        for axis in range(n):
            lo = f.select(n - 1 - axis, 0)
            hi = f.select(n - 1 - axis, 1)
            lo |= hi
        flag = f.reshape(-1)
        sizes = torch.tensor([bin(t).count("1") for t in range(2 ** n)]) if n <= 12 else \
            _vm_popcounts(n)
        counts = torch.bincount(sizes[flag], minlength=n + 1)
        err = 0.0
        for t in range(1, n + 1):
            if int(counts[t]):
                err += int(counts[t]) * _vm_surjection_probability(L, t, n)
        total += err
    return min(1.0, total / len(targets))


def _vm_popcounts(n: int) -> torch.Tensor:
    x = torch.arange(2 ** n, dtype=torch.int64)
    out = torch.zeros_like(x)
    for b in range(n):
        out += (x >> b) & 1
    return out


def wv_error_bound(spec, per_target: bool = False):
    """Chernoff-union bound on the error probability (ties count as errors) of ``W_V*`` with
    orthonormal embeddings and uniform attention; noise allowed.

    For a target y and a rival k, the logit gap ``f_k - f_y`` is an average of i.i.d. steps
    ``+1`` (token in N(k) but not N(y), probability p+), ``-1`` (in N(y) but not N(k), p-) and 0.
    ``P(f_k >= f_y) <= rho^L`` with ``rho = p0 + 2 sqrt(p+ p-)`` when ``p+ < p-`` (else 1). The bound is
    ``(1/V) sum_y min(1, sum_{k != y} rho_yk^L)``. With noise 0, ``rho_yk = |N(y) & N(k)| / |N(y)|``;
    for the sphere of radius 1 this gives ``C(m,2) (2/m)^L``. When some ``N(y)`` lies inside an
    ``N(k)``, ``rho = 1`` and the bound is 1 (no guarantee, and indeed the model then always errs on y).

    Returns a float, or ``Tensor[V]`` of per-target bounds when ``per_target``.
    """
    spec = _vm_task(spec)
    space = spec.space
    M = spec.neighbourhood.mask(space).double()
    P, last = _vm_position_laws(spec)

    def parts(Q):
        # p_plus[y, k] = Q(y, N(k) \ N(y)); p_minus[y, k] = Q(y, N(y) \ N(k))
        p_plus = (Q * (1 - M)) @ M.T
        p_minus = (Q * M).sum(1, keepdim=True) - (Q * M) @ M.T
        return p_plus.clamp(min=0.0), p_minus.clamp(min=0.0)

    pp, pm = parts(P)
    good = pp < pm
    # optimal t for the body law: e^t = sqrt(p- / p+) (t = inf when p+ = 0)
    with torch.no_grad():
        ratio = torch.where(good & (pp > 0), torch.sqrt(pm / pp.clamp(min=1e-300)),
                            torch.full_like(pp, float("inf")))

    def mgf(p_plus, p_minus):
        p0 = 1 - p_plus - p_minus
        up = torch.where(torch.isinf(ratio), torch.where(p_plus > 0, torch.full_like(p_plus,
                         float("inf")), torch.zeros_like(p_plus)), p_plus * ratio)
        down = torch.where(torch.isinf(ratio), torch.zeros_like(p_minus), p_minus / ratio)
        return p0 + up + down

    rho_body = mgf(pp, pm)
    if spec.clean_last and spec.noise > 0 and spec.L >= 1:
        lp, lm = parts(last)
        rho_last = mgf(lp, lm)
        logb = (spec.L - 1) * torch.log(rho_body.clamp(min=1e-300)) + torch.log(
            rho_last.clamp(min=1e-300))
    else:
        logb = spec.L * torch.log(rho_body.clamp(min=1e-300))
    b = torch.where(good, torch.exp(logb), torch.ones_like(logb))
    b = torch.where((rho_body <= 0) & good, torch.zeros_like(b), b)
    b.fill_diagonal_(0.0)
    per = b.sum(1).clamp(max=1.0)
    return per if per_target else float(per.mean())


def identity_pm1_accuracy(m: int, L: int) -> float:
    """Exact accuracy (ties count as errors) of ``W_V = I`` with the centred +-1 embedding
    ``e_z = (2z - 1)/sqrt(m)`` (d = m), uniform attention, noise-free task with N = Hamming sphere
    of radius 1 (prop-pm1-majority).

    The model takes a per-bit majority vote; with n_i the number of context tokens that flip bit i
    it is right iff every ``n_i < L/2``: ``P(max_i n_i < L/2)`` for ``(n_1..n_m) ~ Multinomial(L,
    uniform)``, computed exactly with exponential generating functions.
    """
    m = _vm_check_int("m", m, 1, 16)
    L = _vm_check_int("L", L, 1, 4096)
    cap = (L - 1) // 2                                # largest n_i with n_i < L/2
    # number of words of length L over m letters with every letter used at most `cap` times
    # = L! [x^L] (sum_{j<=cap} x^j / j!)^m
    term = [_VmFraction(1, _vm_math.factorial(j)) for j in range(cap + 1)]
    poly = [_VmFraction(1)]
    for _ in range(m):
        new = [_VmFraction(0)] * min(len(poly) + cap, L + 1)
        for i, a in enumerate(poly):
            if a == 0:
                continue
            for j, b in enumerate(term):
                if i + j > L:
                    break
                new[i + j] += a * b
        poly = new
    coef = poly[L] if len(poly) > L else _VmFraction(0)
    return float(coef * _vm_math.factorial(L) / _VmFraction(m ** L))


def _vm_embedding64(W_E, V: int) -> torch.Tensor:
    if not isinstance(W_E, torch.Tensor) or W_E.ndim != 2 or not W_E.is_floating_point():
        raise ValueError("W_E must be a float Tensor [V, d], got "
                         f"{type(W_E).__name__} {tuple(getattr(W_E, 'shape', ()))}")
    if W_E.shape[0] != V:
        raise ValueError(f"W_E must have V={V} rows for this task, got {W_E.shape[0]}")
    return W_E.detach().double().cpu()


def _vm_mean_law(spec) -> torch.Tensor:
    """``Pbar[y, x]``: expected share of token x in a context of target y (the average of the
    position laws; equals the context law unless ``clean_last`` with noise)."""
    P, last = _vm_position_laws(spec)
    return ((spec.L - 1) * P + last) / spec.L


def one_step_WV_parts(W_E: torch.Tensor, spec, lr: float = 1.0
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of one gradient step on W_V from 0 (population loss, uniform attention).

    Returns ``(memory, shift)``, both ``[d, d]`` float64, with
    ``memory = (lr / V) W_E^T Pbar W_E`` (the construction with the task's mean law Pbar as the
    neighbourhood weights) and ``shift = -lr * e_bar mu^T`` (``e_bar`` the mean embedding, ``mu = E[h]``),
    so that ``W_V(1) = memory + shift`` (thm-one-step-wv). With orthonormal embeddings the shift adds
    the same number to every logit.
    """
    spec = _vm_task(spec)
    lr = _vm_check_float("lr", lr, 0.0, None, lo_open=True)
    E = _vm_embedding64(W_E, spec.V)
    V = spec.V
    Pbar = _vm_mean_law(spec)
    memory = (lr / V) * E.T @ Pbar @ E
    e_bar = E.mean(0)                                  # [d]
    mu = (Pbar.sum(0) / V) @ E                         # E[h] = (1/V) 1^T Pbar W_E
    shift = -lr * torch.outer(e_bar, mu)
    return memory, shift


def one_step_WV(W_E: torch.Tensor, spec, lr: float = 1.0) -> torch.Tensor:
    """W_V after one gradient step of size ``lr`` from ``W_V = 0`` on the population cross-entropy,
    with ``W_KQ = 0`` (uniform attention) and fixed embeddings, computed exactly from the task law:

        W_V(1) = -lr * grad = (lr / V) W_E^T (I - 11^T / V) Pbar W_E          ([d, d], float64)

    where ``Pbar[y, x]`` is the expected share of token x in a context of target y. Holds for any
    W_E; the reading "construction up to a positive scale plus an equal shift of all logits" needs
    orthonormal embeddings (thm-one-step-wv).
    """
    memory, shift = one_step_WV_parts(W_E, spec, lr)
    return memory + shift


def one_step_WV_sampling_rms(W_E: torch.Tensor, spec, n: int) -> float:
    """Root-mean-square Frobenius error ``sqrt(E ||g_n - g||_F^2)`` of the gradient of W_V at 0
    estimated on a batch of ``n`` i.i.d. examples (mean loss), where g is the population gradient.

    Per example the gradient is ``(e_bar - W_E(y)) h^T``, so the error variance is
    ``(E ||e_bar - W_E(y)||^2 ||h||^2 - ||g||_F^2) / n``, computed exactly from the law (uniform
    attention). By Chebyshev, ``||g_n - g||_F > rms / sqrt(delta)`` has probability at most delta.
    """
    spec = _vm_task(spec)
    n = _vm_check_int("n", n, 1, 1_000_000_000)
    E = _vm_embedding64(W_E, spec.V)
    L = spec.L
    P, last = _vm_position_laws(spec)
    G = E @ E.T
    # E[||h||^2 | y] with h = (1/L) sum_l W_E(x_l), positions independent
    sq_body = (P * torch.diagonal(G)).sum(1)           # E||W_E(x)||^2 per y
    sq_last = (last * torch.diagonal(G)).sum(1)
    mean_body = P @ E                                  # [V, d]
    mean_last = last @ E
    mean_sum = (L - 1) * mean_body + mean_last
    # E||sum_l w_l||^2 = sum_l E||w_l||^2 + ||sum_l E w_l||^2 - sum_l ||E w_l||^2
    e_h2 = ((L - 1) * sq_body + sq_last + (mean_sum ** 2).sum(1)
            - (L - 1) * (mean_body ** 2).sum(1) - (mean_last ** 2).sum(1)) / L ** 2
    e_bar = E.mean(0)
    a2 = ((e_bar[None, :] - E) ** 2).sum(1)            # ||e_bar - W_E(y)||^2
    second = float((a2 * e_h2).mean())
    g = -one_step_WV(E, spec)
    var = max(second - float((g ** 2).sum()), 0.0)
    return _vm_math.sqrt(var / n)


def enumerate_task(spec, max_rows: int = 2_000_000
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (context, target) pair of the task with positive probability.

    Returns ``(contexts LongTensor[R, L], targets LongTensor[R], probs Tensor[R] float64)`` with
    ``probs`` summing to 1, so population expectations become exact weighted sums. The number of
    rows is ``sum_y prod_l |support of position l|``; it must not exceed ``max_rows``.
    """
    spec = _vm_task(spec)
    max_rows = _vm_check_int("max_rows", max_rows, 1, 50_000_000)
    P, last = _vm_position_laws(spec)
    V, L = spec.V, spec.L
    body_support = (P > 0).sum(1)
    last_support = (last > 0).sum(1)
    rows = int((body_support.double() ** (L - 1) * last_support.double()).sum())
    if rows > max_rows:
        raise ValueError(f"max_rows must be at least {rows} to enumerate this task (m={spec.m}, "
                         f"L={spec.L}), got {max_rows}; use a smaller m or L")
    ctxs, tgts, probs = [], [], []
    for y in range(V):
        laws = [P[y]] * (L - 1) + [last[y]]
        grids = [torch.nonzero(q > 0).flatten() for q in laws]
        mesh = torch.cartesian_prod(*grids) if L > 1 else grids[0][:, None]
        mesh = mesh.reshape(-1, L)
        p = torch.ones(mesh.shape[0], dtype=torch.float64)
        for pos in range(L):
            p = p * laws[pos][mesh[:, pos]]
        ctxs.append(mesh)
        tgts.append(torch.full((mesh.shape[0],), y, dtype=torch.long))
        probs.append(p / V)
    return torch.cat(ctxs), torch.cat(tgts), torch.cat(probs)


def exact_population_loss(model, spec, max_rows: int = 2_000_000) -> torch.Tensor:
    """The population cross-entropy of ``model`` on ``spec`` as an exact weighted sum over
    ``enumerate_task(spec)`` (a differentiable scalar tensor: call ``.backward()`` for the exact
    population gradient)."""
    from .model import OneLayerTransformer
    if not isinstance(model, OneLayerTransformer) or model.ensemble is not None:
        raise ValueError(f"model must be a single OneLayerTransformer, got {type(model).__name__}")
    spec = _vm_task(spec)
    if model.V != spec.V:
        raise ValueError(f"spec has V={spec.V} tokens but the model has V={model.V}")
    ctx, y, p = enumerate_task(spec, max_rows)
    dev = model.W_E.device
    logits = model(ctx.to(dev))
    nll = torch.nn.functional.cross_entropy(logits, y.to(dev), reduction="none")
    return (nll * p.to(dev, nll.dtype)).sum()


# ==== section: geometry (chapter 5) ====
# (owned by the geometry (chapter 5) work; add functions between this marker and the next)
#
# Matrices G[i, j] = g(D_H(i, j)) on {0,1}^m (token ids as in lca.latent) are diagonalised by the
# Walsh characters chi_s(z) = (-1)^(s.z): chi_s is an eigenvector with eigenvalue
#     lambda_w = sum_k g(k) K_k(w),   w = |s|,   K_k(w) = sum_j (-1)^j C(w, j) C(m - w, k - j)
# (Krawtchouk polynomials), so lambda_w has multiplicity C(m, w). For the affine law
# g(k) = b0 - b1 k: lambda_0 = 2^m (b0 - m b1 / 2), lambda_1 = 2^(m-1) b1, lambda_w = 0 for w >= 2.
# Proofs: book/proofs/geometry.md.

import math as _geo_math  # noqa: E402

import torch as _geo_torch  # noqa: E402

from ._validate import check_float as _geo_check_float  # noqa: E402
from ._validate import check_int as _geo_check_int  # noqa: E402

GEO_M_MAX = 12  # V x V matrices: 4096 x 4096 float64 is the largest we build


def krawtchouk(k: int, w: int, m: int) -> int:
    """The Krawtchouk number ``K_k(w) = sum_j (-1)^j C(w, j) C(m - w, k - j)`` (an exact int).

    ``K_k(w)`` is the sum of ``(-1)^(s.u)`` over the ``C(m, k)`` vectors u of weight k, for any fixed
    s of weight w: the eigenvalue of the distance-k adjacency matrix of the hypercube on the
    characters of weight w. Args: ``m`` in 1..64, ``k`` and ``w`` in 0..m.
    """
    m = _geo_check_int("m", m, 1, 64)
    k = _geo_check_int("k", k, 0, m)
    w = _geo_check_int("w", w, 0, m)
    return sum((-1) ** j * _geo_math.comb(w, j) * _geo_math.comb(m - w, k - j)
               for j in range(0, min(w, k) + 1))


def krawtchouk_matrix(m: int) -> _geo_torch.Tensor:
    """``LongTensor[m+1, m+1]`` with entry ``[k, w] = K_k(w)`` (rows: distance k, columns: weight w)."""
    m = _geo_check_int("m", m, 1, 64)
    return _geo_torch.tensor([[krawtchouk(k, w, m) for w in range(m + 1)] for k in range(m + 1)],
                             dtype=_geo_torch.long)


def _geo_profile(g, m: int) -> _geo_torch.Tensor:
    """A profile given as a sequence of m+1 numbers or a callable k -> number, as float64[m+1]."""
    if callable(g) and not isinstance(g, _geo_torch.Tensor):
        vals = [g(k) for k in range(m + 1)]
    else:
        vals = g
    try:
        prof = _geo_torch.as_tensor(vals, dtype=_geo_torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"g must be a sequence of m+1={m + 1} numbers g(0..m) or a callable "
                         f"k -> g(k), got {type(g).__name__}") from None
    if prof.numel() != m + 1:
        raise ValueError(f"g must hold m+1={m + 1} values g(0), ..., g(m), got {prof.numel()}")
    if not bool(_geo_torch.isfinite(prof).all()):
        raise ValueError("g must hold finite values")
    return prof


def hamming_kernel(g, m: int) -> _geo_torch.Tensor:
    """``Tensor[V, V]`` (float64): ``G[i, j] = g(D_H(i, j))`` for the profile ``g`` (m+1 values or
    a callable k -> value), V = 2^m, m in 1..12."""
    m = _geo_check_int("m", m, 1, GEO_M_MAX)
    prof = _geo_profile(g, m)
    from .latent import LatentSpace
    return prof[LatentSpace(m).distances()]


def hamming_kernel_spectrum(g, m: int) -> tuple[_geo_torch.Tensor, _geo_torch.Tensor]:
    """Eigenvalues of ``G[i, j] = g(D_H(i, j))`` by character weight, from Krawtchouk numbers.

    Returns ``(eigenvalues float64[m+1], multiplicities LongTensor[m+1])``: entry w is
    ``lambda_w = sum_k g(k) K_k(w)``, the eigenvalue of every Walsh character of weight w, repeated
    ``C(m, w)`` times. Nothing V x V is built, so m may go up to 64.
    """
    m = _geo_check_int("m", m, 1, 64)
    prof = _geo_profile(g, m)
    K = krawtchouk_matrix(m).double()
    lam = prof @ K
    mult = _geo_torch.tensor([_geo_math.comb(m, w) for w in range(m + 1)], dtype=_geo_torch.long)
    return lam, mult


def expand_spectrum(eigenvalues, multiplicities) -> _geo_torch.Tensor:
    """The full list of V eigenvalues (float64, largest first) from per-weight eigenvalues and
    their multiplicities (the output of ``hamming_kernel_spectrum``)."""
    lam = _geo_torch.as_tensor(eigenvalues, dtype=_geo_torch.float64).flatten()
    mult = _geo_torch.as_tensor(multiplicities).flatten()
    if lam.numel() != mult.numel():
        raise ValueError(f"multiplicities must have as many entries as eigenvalues "
                         f"({lam.numel()}), got {mult.numel()}")
    if mult.numel() and int(mult.min()) < 0:
        raise ValueError("multiplicities must be >= 0")
    return _geo_torch.repeat_interleave(lam, mult.long()).sort(descending=True).values


def walsh_characters(m: int) -> _geo_torch.Tensor:
    """``Tensor[V, V]`` (float64) of +-1: column s is the character ``chi_s(z) = (-1)^(s.z)``
    evaluated at every token z (token ids and s both in lca.latent's bit order)."""
    m = _geo_check_int("m", m, 1, GEO_M_MAX)
    t = _geo_torch.arange(2 ** m)
    from .latent import _popcount_table
    parity = _popcount_table(m)[t[:, None] & t[None, :]] % 2
    return 1.0 - 2.0 * parity.double()


def affine_gram(m: int, b0: float, b1: float) -> _geo_torch.Tensor:
    """``Tensor[V, V]`` (float64): the affine law ``G[i, j] = b0 - b1 * D_H(i, j)``, m in 1..12."""
    m = _geo_check_int("m", m, 1, GEO_M_MAX)
    b0 = _geo_check_float("b0", b0)
    b1 = _geo_check_float("b1", b1)
    return hamming_kernel([b0 - b1 * k for k in range(m + 1)], m)


def affine_gram_spectrum(m: int, b0: float, b1: float) -> tuple[float, float]:
    """Closed form of the non-zero part of the affine law's spectrum: ``(lambda_0, lambda_1)`` =
    ``(2^m (b0 - m b1 / 2), 2^(m-1) b1)``; lambda_0 has eigenvector the all-ones vector,
    lambda_1 multiplicity m (the bit characters), every other eigenvalue is 0."""
    m = _geo_check_int("m", m, 1, 64)
    b0 = _geo_check_float("b0", b0)
    b1 = _geo_check_float("b1", b1)
    return 2.0 ** m * (b0 - m * b1 / 2), 2.0 ** (m - 1) * b1


def affine_gram_rank(m: int, b0: float, b1: float, tol: float = 1e-12) -> int:
    """Exact rank of ``b0 - b1 D_H``: ``m * [b1 != 0] + [b0 != m b1 / 2]`` (so at most m+1; m in
    the centred case b0 = m b1 / 2). ``tol`` is a relative tolerance for "== 0"."""
    lam0, lam1 = affine_gram_spectrum(m, b0, b1)
    tol = _geo_check_float("tol", tol, 0.0)
    scale = max(abs(b0), abs(b1) * m, 1e-300) * 2.0 ** m
    return m * int(abs(lam1) > tol * scale) + int(abs(lam0) > tol * scale)


def affine_embedding(m: int, b0: float, b1: float) -> _geo_torch.Tensor:
    """Embeddings realising the affine law: ``Tensor[V, m+1]`` (float64) with
    ``E @ E.T == b0 - b1 D_H``. Row z is ``(sqrt(b1/2) (2z - 1), sqrt(b0 - m b1 / 2))``; this needs the
    law to be a Gram matrix, i.e. ``b1 >= 0`` and ``b0 >= m b1 / 2`` (else ValueError)."""
    m = _geo_check_int("m", m, 1, GEO_M_MAX)
    b1 = _geo_check_float("b1", b1, 0.0)
    b0 = _geo_check_float("b0", b0, m * b1 / 2)
    from .latent import LatentSpace
    Z = LatentSpace(m).latents.double()
    const = _geo_torch.full((2 ** m, 1), _geo_math.sqrt(b0 - m * b1 / 2), dtype=_geo_torch.float64)
    return _geo_torch.cat([_geo_math.sqrt(b1 / 2) * (2 * Z - 1), const], dim=1)


def context_spectrum(spec, tol: float = 1e-12) -> _geo_torch.Tensor:
    """Eigenvalues ``mu_w`` (float64 ``[m+1]``, w = 0..m) of a task's context law ``P[y, x]``.

    Needs a law that depends on (y, x) only through D_H(y, x) (Hamming spheres and balls, with or
    without uniform noise): then ``mu_w = sum_k p(k) K_k(w)`` with p(k) the probability of one
    particular token at distance k, and ``P chi_s = mu_|s| chi_s``. Raises ValueError for a law that
    is not a function of Hamming distance (clusters, custom masks). m in 1..12.
    """
    from .task import TaskSpec
    if not isinstance(spec, TaskSpec):
        raise ValueError(f"spec must be a TaskSpec, got {type(spec).__name__}")
    _geo_check_int("m", spec.m, 1, GEO_M_MAX)
    tol = _geo_check_float("tol", tol, 0.0)
    P = spec.context_law()
    D = spec.space.distances()
    p = _geo_torch.zeros(spec.m + 1, dtype=_geo_torch.float64)
    for k in range(spec.m + 1):
        vals = P[D == k]
        if float(vals.max() - vals.min()) > tol:
            raise ValueError(f"spec's context law is not a function of Hamming distance (at "
                             f"distance {k} it ranges over {float(vals.min()):.3g}.."
                             f"{float(vals.max()):.3g}); context_spectrum needs a Hamming "
                             "sphere or ball neighbourhood")
        p[k] = vals[0]
    return hamming_kernel_spectrum(p, spec.m)[0]


def margin_by_weight(mu, nu) -> _geo_torch.Tensor:
    """Contribution of each character weight to the target's mean logit advantage.

    For a context law with eigenvalues ``mu[w]`` and an association matrix M (``M[k, x]``: logit
    added to candidate k by context token x) whose mean Rayleigh quotients per weight are
    ``nu[w]``, uniform attention and the population-mean context give
        mean_y F[y, y] - mean_{y, k} F[y, k] = sum_{w >= 1} C(m, w) mu_w nu_w / 2^m,
    with F[y, k] = sum_x P[y, x] M[k, x]. Returns the terms (float64 ``[m+1]``, entry 0 is 0).
    """
    mu = _geo_torch.as_tensor(mu, dtype=_geo_torch.float64).flatten()
    nu = _geo_torch.as_tensor(nu, dtype=_geo_torch.float64).flatten()
    if mu.numel() < 2:
        raise ValueError(f"mu must hold m+1 >= 2 values, got {mu.numel()}")
    if nu.numel() != mu.numel():
        raise ValueError(f"nu must hold as many values as mu ({mu.numel()}), got {nu.numel()}")
    m = mu.numel() - 1
    mult = _geo_torch.tensor([_geo_math.comb(m, w) for w in range(m + 1)], dtype=_geo_torch.float64)
    out = mult * mu * nu / 2.0 ** m
    out[0] = 0.0
    return out



# ==== section: attention (chapter 6) ====
# (owned by the attention (chapter 6) work; add functions between this marker and the next)

import itertools as _itertools  # noqa: E402
import math as _math  # noqa: E402

import torch as _torch  # noqa: E402


def _att_check_spec(spec):
    from .task import TaskSpec
    if not isinstance(spec, TaskSpec):
        raise ValueError(f"spec must be a TaskSpec, got {type(spec).__name__}")
    return spec


def _att_check_weights(W_E, W_V, V):
    if not isinstance(W_E, _torch.Tensor) or W_E.ndim != 2:
        raise ValueError("W_E must be a 2-d tensor [V, d], got "
                         f"{type(W_E).__name__} {tuple(getattr(W_E, 'shape', ()))}")
    if W_E.shape[0] != V:
        raise ValueError(f"W_E must have V={V} rows (one per token), got shape {tuple(W_E.shape)}")
    d = W_E.shape[1]
    if not isinstance(W_V, _torch.Tensor) or tuple(W_V.shape) != (d, d):
        raise ValueError(f"W_V must be a tensor of shape ({d}, {d}), got "
                         f"{type(W_V).__name__} {tuple(getattr(W_V, 'shape', ()))}")
    return W_E.detach().double(), W_V.detach().double()


def cluster_ids(m: int, k: int) -> _torch.Tensor:
    """``LongTensor[V]``: the cluster id of every token, i.e. the integer formed by its first ``k``
    latent bits (clusters are blocks of ``2**(m-k)`` consecutive token ids)."""
    from ._validate import check_int
    m = check_int("m", m, 1, 16)
    k = check_int("k", k, 0, m)
    return _torch.arange(2 ** m) >> (m - k)


def cluster_task(m: int, k: int = 2, L: int = 16, noise: float = 0.5,
                 informative: str = "cluster", clean_last: bool = True):
    """The course's task for chapter 6: a cluster structure with noise tokens.

    Clusters are the ``2**k`` blocks of tokens sharing their first ``k`` latent bits. A context
    token is informative with probability ``1 - noise`` and then uniform over N(y); otherwise it is
    a noise token, uniform over the tokens of the *other* clusters (``lca.other_clusters(k)``).
    The last token (the attention query) is always informative when ``clean_last``.

    Args:
        informative: ``"cluster"``: N(y) = y's cluster minus y (the neighbourhood of the paper's
            Fig. C.8); ``"sphere"``: N(y) = the Hamming neighbours of y inside its cluster
            (distance 1, first k bits equal), which makes the target identifiable.
    Returns:
        a ``TaskSpec``.
    """
    from . import latent
    from ._validate import check_choice, check_float, check_int
    from .task import TaskSpec
    m = check_int("m", m, 2, 12)
    k = check_int("k", k, 1, m - 1)
    L = check_int("L", L, 1, 1_000_000)
    noise = check_float("noise", noise, 0.0, 1.0, hi_open=True)
    check_choice("informative", informative, ("cluster", "sphere"))
    if informative == "cluster":
        nb = latent.cluster(k)
    else:
        cl = cluster_ids(m, k)
        mask = (latent.LatentSpace(m).distances() == 1) & (cl[:, None] == cl[None, :])
        nb = latent.custom(mask, f"sphere(1) within cluster(k={k})")
    return TaskSpec(m=m, L=L, neighbourhood=nb, noise=noise, noise_law=latent.other_clusters(k),
                    clean_last=bool(clean_last))


def kq_value_matrix(W_E: _torch.Tensor, spec_or_mask, beta: float = 1.0) -> _torch.Tensor:
    """The associative-memory value matrix ``beta * W_E^T A W_E`` (``[d, d]``, float64), with
    ``A[k, j] = 1`` iff token j lies in N(k) (the spec's neighbourhood mask, or a given
    ``BoolTensor[V, V]``). With orthonormal embedding rows its logits are ``beta * A c``: the share
    of the context inside each N(k)."""
    from ._validate import check_float
    beta = check_float("beta", beta, 0.0, None)
    if isinstance(spec_or_mask, _torch.Tensor):
        A = spec_or_mask
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"spec_or_mask must be a TaskSpec or a square mask, got shape "
                             f"{tuple(A.shape)}")
    else:
        spec = _att_check_spec(spec_or_mask)
        A = spec.neighbourhood.mask(spec.space)
    V = A.shape[0]
    if not isinstance(W_E, _torch.Tensor) or W_E.ndim != 2 or W_E.shape[0] != V:
        raise ValueError(f"W_E must be a tensor [V={V}, d], got {tuple(getattr(W_E, 'shape', ()))}")
    E = W_E.detach().double()
    return beta * E.T @ A.double() @ E


def kq_orthonormal_embedding(V: int, d: int | None = None, seed: int = 0) -> _torch.Tensor:
    """``Tensor[V, d]`` (float64) with orthonormal rows (``d >= V``; default ``d = V``)."""
    from ._validate import check_int
    V = check_int("V", V, 1, 1 << 14)
    d = V if d is None else check_int("d", d, V, 1 << 15)
    g = _torch.Generator().manual_seed(check_int("seed", seed, 0, 2 ** 63 - 1))
    Q, _ = _torch.linalg.qr(_torch.randn(d, V, generator=g, dtype=_torch.float64))
    return Q.T.contiguous()


_KQ_MAX_ROWS = 4_000_000


def _compositions(size: int, n: int) -> _torch.Tensor:
    """All count vectors ``LongTensor[N, size]`` of n draws over ``size`` cells."""
    if n == 0:
        return _torch.zeros((1, size), dtype=_torch.long)
    combos = _torch.tensor(list(_itertools.combinations_with_replacement(range(size), n)),
                           dtype=_torch.long)
    out = _torch.zeros((combos.shape[0], size), dtype=_torch.long)
    out.scatter_add_(1, combos, _torch.ones_like(combos))
    return out


def _kq_enumeration_rows(spec) -> int:
    P = spec.context_law()
    Q = spec.clean_law() if (spec.clean_last and spec.noise > 0) else P
    rows = 0
    for y in range(spec.V):
        s = int((P[y] > 0).sum())
        rows += int((Q[y] > 0).sum()) * _math.comb(spec.L - 1 + s - 1, s - 1)
    return rows


def kq_gradient_table(W_E: _torch.Tensor, W_V: _torch.Tensor, spec) -> _torch.Tensor:
    """The exact population table ``T [V, V]`` (float64) behind the gradient of W_KQ at zero.

    At ``W_KQ = 0`` attention is uniform, ``c`` is the vector of token frequencies in the context
    (``c_j = #{l : x_l = j} / L``), ``M = W_E W_V W_E^T``, ``p = softmax(M c)``,
    ``r = M^T (e_y - p)`` and ``rbar = c . r``. Then

        T[i, j] = E[ 1{x_L = i} c_j (r_j - rbar) ]   and   grad_{W_KQ} loss = -W_E^T T W_E.

    The expectation is computed exactly by enumerating every target, every query token and every
    count vector of the other L - 1 tokens (multinomial weights), so it is limited to small tasks
    (at most about four million (query, count vector) rows; a ValueError says when L or m is too
    large).
    """
    spec = _att_check_spec(spec)
    E, Wv = _att_check_weights(W_E, W_V, spec.V)
    rows = _kq_enumeration_rows(spec)
    if rows > _KQ_MAX_ROWS:
        raise ValueError(f"L={spec.L} with m={spec.m} needs {rows} enumeration rows (limit "
                         f"{_KQ_MAX_ROWS}); use a smaller L or m, or grad_WKQ_at_zero_sample on a "
                         "large sample")
    V, L = spec.V, spec.L
    M = E @ Wv @ E.T
    P = spec.context_law()
    Q = spec.clean_law() if (spec.clean_last and spec.noise > 0) else P
    T = _torch.zeros((V, V), dtype=_torch.float64)
    cache = {}
    for y in range(V):
        supp = _torch.nonzero(P[y] > 0).flatten()
        key = (supp.numel(), L - 1)
        if key not in cache:
            cache[key] = _compositions(*key)
        comp = cache[key]                                          # [N, s]
        counts = _torch.zeros((comp.shape[0], V), dtype=_torch.float64)
        counts[:, supp] = comp.double()
        logw = (_math.lgamma(L) - _torch.lgamma(comp.double() + 1).sum(1)
                + (comp.double() * _torch.log(P[y, supp])).sum(1))
        w = _torch.exp(logw)                                       # [N] multinomial probabilities
        ey = _torch.zeros(V, dtype=_torch.float64)
        ey[y] = 1.0
        for i in _torch.nonzero(Q[y] > 0).flatten().tolist():
            c = counts.clone()
            c[:, i] += 1.0
            c /= L
            p = _torch.softmax(c @ M.T, dim=1)                     # [N, V]
            r = (ey[None, :] - p) @ M                              # [N, V]
            rbar = (c * r).sum(1, keepdim=True)
            T[i] += (Q[y, i] / V) * (w[:, None] * c * (r - rbar)).sum(0)
    return T


def grad_WKQ_at_zero(W_E: _torch.Tensor, W_V: _torch.Tensor, spec) -> _torch.Tensor:
    """Exact gradient ``[d, d]`` (float64) of the population cross-entropy with respect to W_KQ at
    ``W_KQ = 0``, for embeddings ``W_E [V, d]`` and value matrix ``W_V [d, d]``:
    ``-W_E^T T W_E`` with T from ``kq_gradient_table`` (exact enumeration; small m and L)."""
    T = kq_gradient_table(W_E, W_V, spec)
    E = W_E.detach().double()
    return -E.T @ T @ E


def grad_WKQ_at_zero_sample(W_E: _torch.Tensor, W_V: _torch.Tensor, contexts: _torch.Tensor,
                            targets: _torch.Tensor) -> _torch.Tensor:
    """The same closed form on a finite sample: the gradient ``[d, d]`` (float64) of the mean
    cross-entropy over ``contexts [n, L]`` and ``targets [n]`` with respect to W_KQ at 0."""
    from ._validate import check_tokens
    if not isinstance(W_E, _torch.Tensor) or W_E.ndim != 2:
        raise ValueError(f"W_E must be a 2-d tensor [V, d], got {tuple(getattr(W_E, 'shape', ()))}")
    V = W_E.shape[0]
    E, Wv = _att_check_weights(W_E, W_V, V)
    contexts = check_tokens("contexts", contexts, V, ndim=2)
    targets = check_tokens("targets", targets, V, ndim=1)
    if targets.shape[0] != contexts.shape[0]:
        raise ValueError(f"targets must have one entry per context ({contexts.shape[0]}), got "
                         f"{targets.shape[0]}")
    n, L = contexts.shape
    M = E @ Wv @ E.T
    c = _torch.zeros((n, V), dtype=_torch.float64)
    c.scatter_add_(1, contexts, _torch.full(contexts.shape, 1.0 / L, dtype=_torch.float64))
    p = _torch.softmax(c @ M.T, dim=1)
    ey = _torch.nn.functional.one_hot(targets, V).double()
    r = (ey - p) @ M
    rbar = (c * r).sum(1, keepdim=True)
    q = _torch.nn.functional.one_hot(contexts[:, -1], V).double()
    T = q.T @ (c * (r - rbar)) / n
    return -E.T @ T @ E


def kq_score_change(W_E: _torch.Tensor, W_V: _torch.Tensor, spec, lr: float = 1.0
                    ) -> _torch.Tensor:
    """``Tensor[V, V]``: the change of the attention score ``W_E(i)^T W_KQ W_E(j)`` (query i, key j)
    after one gradient step of size ``lr`` from ``W_KQ = 0`` (exact, by enumeration)."""
    from ._validate import check_float
    lr = check_float("lr", lr, 0.0, None)
    G = grad_WKQ_at_zero(W_E, W_V, spec)
    E = W_E.detach().double()
    return -lr * E @ G @ E.T


def kq_first_order_table(spec, M0: _torch.Tensor | None = None) -> _torch.Tensor:
    """Closed form of ``lim_{beta -> 0} T / beta`` (``[V, V]``, float64) for ``M = beta * M0``.

    ``M0`` is the value-logit matrix ``W_E W_V W_E^T`` at unit scale; by default the neighbourhood
    adjacency A (``A[k, j] = 1`` iff j in N(k)), i.e. orthonormal embeddings and the associative
    memory ``W_V = beta W_E^T A W_E``. With ``rho = M0[y] - mean_k M0[k]`` the table is

        T1[i, j] = E[ 1{x_L = i} c_j (rho_j - c . rho) ],

    a polynomial of degree two in the token counts, evaluated here from the task law alone
    (first and second moments of the multinomial counts), without sampling or enumeration.
    """
    spec = _att_check_spec(spec)
    V, L = spec.V, spec.L
    if M0 is None:
        M0 = spec.neighbourhood.mask(spec.space).double()
    elif not isinstance(M0, _torch.Tensor) or tuple(M0.shape) != (V, V):
        raise ValueError(f"M0 must be a tensor of shape ({V}, {V}), got "
                         f"{tuple(getattr(M0, 'shape', ()))}")
    M0 = M0.double()
    P = spec.context_law()
    Q = spec.clean_law() if (spec.clean_last and spec.noise > 0) else P
    n = L - 1
    rho = M0 - M0.mean(0, keepdim=True)                 # [y, j]
    a = (P * rho).sum(1)                                # [y]   P_y . rho_y
    eye = _torch.eye(V, dtype=_torch.float64)
    # first term: Q_yi (delta_ij + n P_yj) rho_j / L
    first = (_torch.einsum("yi,ij,yj->ij", Q, eye, rho)
             + n * _torch.einsum("yi,yj->ij", Q, P * rho)) / L
    # second term, divided by L^2
    second = (_torch.einsum("yi,ij,yi->ij", Q, eye, rho)
              + n * _torch.einsum("yi,ij,y->ij", Q, eye, a)
              + n * _torch.einsum("yi,yj,yi->ij", Q, P, rho)
              + n * (n - 1) * _torch.einsum("yi,yj,y->ij", Q, P, a)
              + n * _torch.einsum("yi,yj->ij", Q, P * rho)) / L ** 2
    return (first - second) / V


def kq_cluster_closed_form(m: int, k: int, L: int, noise: float) -> dict:
    """Entries of the first-order table ``T1`` for the cluster task ``cluster_task(m, k, L, noise,
    informative="cluster")`` with ``A`` its adjacency, writing s = 2**(m-k) (cluster size):

    - ``"self"``  (j = i):            (L-1) eps / (V L^2) * (1 + (L-2)(1-eps)/(s-1))
    - ``"same"``  (j != i, same cluster): (s-2)(L-1)(L-2) eps (1-eps) / (V L^2 (s-1)^2)
    - ``"cross"`` (other cluster):    -(L-1) eps (1 + (L-2)(1-eps)) / (V L^2 (V-s))

    Every row sums to zero; same-cluster entries are >= 0 and cross-cluster ones <= 0.
    """
    from ._validate import check_float, check_int
    m = check_int("m", m, 2, 16)
    k = check_int("k", k, 1, m - 1)
    L = check_int("L", L, 1, 1_000_000)
    eps = check_float("noise", noise, 0.0, 1.0, hi_open=True)
    V, s = 2 ** m, 2 ** (m - k)
    return {
        "self": (L - 1) * eps / (V * L ** 2) * (1 + (L - 2) * (1 - eps) / (s - 1)),
        "same": (s - 2) * (L - 1) * (L - 2) * eps * (1 - eps) / (V * L ** 2 * (s - 1) ** 2),
        "cross": -(L - 1) * eps * (1 + (L - 2) * (1 - eps)) / (V * L ** 2 * (V - s)),
    }


def cluster_block_means(S: _torch.Tensor, groups: _torch.Tensor, exclude_diagonal: bool = False
                ) -> _torch.Tensor:
    """``Tensor[C, C]``: mean of the entries of ``S [V, V]`` over each (row group, column group)
    block, with ``groups`` a ``LongTensor[V]`` of group ids 0..C-1 (e.g. ``cluster_ids(m, k)``)."""
    if not isinstance(S, _torch.Tensor) or S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"S must be a square matrix, got {tuple(getattr(S, 'shape', ()))}")
    if not isinstance(groups, _torch.Tensor) or groups.shape != (S.shape[0],):
        raise ValueError(f"groups must be a LongTensor of length {S.shape[0]}, got "
                         f"{tuple(getattr(groups, 'shape', ()))}")
    C = int(groups.max()) + 1
    G = _torch.nn.functional.one_hot(groups.long(), C).double()       # [V, C]
    W = _torch.ones_like(S, dtype=_torch.float64)
    if exclude_diagonal:
        W.fill_diagonal_(0.0)
    num = G.T @ (S.double() * W) @ G
    den = G.T @ W @ G
    return num / den


# ==== section: hijack-in-model (chapter 7) ====
# (owned by the hijack-in-model (chapter 7) work; add functions between this marker and the next)

import math as _hj_math  # noqa: E402

import torch as _hj_torch  # noqa: E402


def _hj_spec(spec):
    from .task import TaskSpec
    if not isinstance(spec, TaskSpec):
        raise ValueError(f"spec must be a TaskSpec, got {type(spec).__name__}")
    if spec.m > 12:
        raise ValueError(f"m must be at most 12 here (V x V tables), got m={spec.m}")
    return spec


def _hj_pair(spec, y, y_hijack):
    from ._validate import check_int
    y = check_int("y", y, 0, spec.V - 1)
    y_hijack = check_int("y_hijack", y_hijack, 0, spec.V - 1)
    if y == y_hijack:
        raise ValueError(f"y_hijack must differ from y, got both equal to {y}")
    return y, y_hijack


def _hj_rho(rho) -> _hj_torch.Tensor:
    from ._validate import check_float
    r = _hj_torch.as_tensor(rho, dtype=_hj_torch.float64).reshape(-1)
    if r.numel() == 0:
        raise ValueError("rho must hold at least one value in [0, 1]")
    for v in r.tolist():
        check_float("rho", v, 0.0, 1.0)
    return r


def hijack_share_logits(spec, contexts: _hj_torch.Tensor) -> _hj_torch.Tensor:
    """``Tensor[n, V]`` (float64): for each context (any length) and every token k, the share of
    the context's tokens that lie in N(k). These are exactly the logits of the constructed model
    (orthonormal embeddings, ``W_KQ = 0``, ``W_V = W_E^T A W_E``)."""
    from ._validate import check_tokens
    spec = _hj_spec(spec)
    contexts = check_tokens("contexts", contexts, spec.V, ndim=2)
    n, L = contexts.shape
    if L < 1:
        raise ValueError("contexts must have at least one position")
    c = _hj_torch.zeros((n, spec.V), dtype=_hj_torch.float64)
    c.scatter_add_(1, contexts, _hj_torch.full(contexts.shape, 1.0 / L, dtype=_hj_torch.float64))
    A = spec.neighbourhood.mask(spec.space).double()
    return c @ A.T


def hijack_overlap(spec, y: int, y_hijack: int) -> tuple[int, int, int]:
    """``(|N(y)|, |N(y_hijack)|, |N(y) & N(y_hijack)|)`` for the spec's neighbourhood family."""
    spec = _hj_spec(spec)
    y, y_hijack = _hj_pair(spec, y, y_hijack)
    A = spec.neighbourhood.mask(spec.space)
    return int(A[y].sum()), int(A[y_hijack].sum()), int((A[y] & A[y_hijack]).sum())


def hijack_threshold(D: int, D_hijack: int | None = None, overlap: int = 0) -> float:
    """The share of hijack tokens at which the constructed model starts to prefer the hijack
    target y' over the true target y (large-L limit, or in expectation).

    A context mixes a share ``1 - rho`` of tokens uniform on N(y) (size ``D``) and ``rho`` uniform
    on N(y') (size ``D_hijack``, default D), the two sharing ``overlap`` tokens. The expected
    logits are ``f_y = (1-rho) + rho o/D'`` and ``f_y' = rho + (1-rho) o/D``, equal at

        rho* = (1 - o/D) / ((1 - o/D) + (1 - o/D'))

    which is 1/2 for disjoint neighbourhoods and, more generally, whenever D = D'.
    """
    from ._validate import check_int
    D = check_int("D", D, 1, None)
    D_hijack = D if D_hijack is None else check_int("D_hijack", D_hijack, 1, None)
    overlap = check_int("overlap", overlap, 0, min(D, D_hijack))
    a, b = 1.0 - overlap / D, 1.0 - overlap / D_hijack
    if a + b == 0:
        raise ValueError("overlap must be smaller than D or D_hijack: with N(y) = N(y') the two "
                         "targets are indistinguishable and there is no threshold")
    return a / (a + b)


def hijack_threshold_task(spec, y: int, y_hijack: int) -> float:
    """The hijack threshold when the clean tokens follow the task's own law for y (noise
    included, ``spec.context_law()[y]``) rather than the uniform law on N(y). With
    ``X = 1{x in N(y')} - 1{x in N(y)}`` the expected margin of a position is
    ``(1 - rho) E_clean[X] + rho E_hijack[X]``, zero at ``rho* = -E_clean X / (E_hijack X -
    E_clean X)``. Equals ``hijack_threshold(*hijack_overlap(...))`` when the task has no noise."""
    spec = _hj_spec(spec)
    y, y_hijack = _hj_pair(spec, y, y_hijack)
    A = spec.neighbourhood.mask(spec.space)
    X = A[y_hijack].double() - A[y].double()
    e_clean = float(spec.context_law()[y] @ X)
    e_hij = float((A[y_hijack].double() / A[y_hijack].sum()) @ X)
    if e_hij - e_clean <= 0:
        raise ValueError("y_hijack never gains on y under this task's law (its neighbourhood "
                         "is covered by y's); there is no threshold")
    return min(max(-e_clean / (e_hij - e_clean), 0.0), 1.0)


def hijack_limit_logits(spec, y: int, y_hijack: int, rho) -> _hj_torch.Tensor:
    """``Tensor[R, V]``: the expected share logits ``F_k(rho) = (1-rho) |N(k) & N(y)|/|N(y)| +
    rho |N(k) & N(y')|/|N(y')|`` of every token k (the large-L limit of the constructed model's
    logits for a context mixing N(y) and N(y'), noise-free)."""
    spec = _hj_spec(spec)
    y, y_hijack = _hj_pair(spec, y, y_hijack)
    r = _hj_rho(rho)
    A = spec.neighbourhood.mask(spec.space).double()
    alpha = A @ A[y] / A[y].sum()
    beta = A @ A[y_hijack] / A[y_hijack].sum()
    return (1 - r)[:, None] * alpha[None, :] + r[:, None] * beta[None, :]


def hijack_threshold_argmax(spec, y: int, y_hijack: int) -> float:
    """The large-L threshold for the constructed model's *prediction* to become y': the smallest
    share rho from which ``F_{y'}(rho)`` beats every other line ``F_k(rho)`` (third tokens
    included; see ``hijack_limit_logits``). Equals ``hijack_threshold`` when no third token's
    neighbourhood covers both N(y) and N(y') well. Returns ``inf`` if y' never wins."""
    spec = _hj_spec(spec)
    y, y_hijack = _hj_pair(spec, y, y_hijack)
    A = spec.neighbourhood.mask(spec.space).double()
    alpha = A @ A[y] / A[y].sum()
    beta = A @ A[y_hijack] / A[y_hijack].sum()
    # F_{y'} - F_k = (alpha_y' - alpha_k) + rho [(beta_y' - alpha_y') - (beta_k - alpha_k)]
    a0 = alpha[y_hijack] - alpha
    slope = (beta[y_hijack] - alpha[y_hijack]) - (beta - alpha)
    lo, hi = 0.0, 1.0
    for k in range(spec.V):
        if k == y_hijack:
            continue
        c0, s = float(a0[k]), float(slope[k])
        if abs(s) <= 1e-12:
            if c0 <= 1e-12:           # never strictly ahead of k
                return float("inf")
        elif s > 0:
            lo = max(lo, -c0 / s)      # ahead of k for rho > -c0/s
        else:
            hi = min(hi, -c0 / s)      # ahead of k for rho < -c0/s
    return lo if lo < hi else float("inf")


def _hj_sum_positive(laws: list, ties: str) -> _hj_torch.Tensor:
    """P(sum of independent X_i > 0) (plus half of P(sum = 0) if ties == "half"), where each
    entry of ``laws`` is ``(count, Tensor[R, 3])`` = that many positions with law
    ``(P(X=-1), P(X=0), P(X=+1))`` per row. Returns ``Tensor[R]``."""
    N = sum(cnt for cnt, _ in laws)
    R = laws[0][1].shape[0]
    dist = _hj_torch.zeros((R, 2 * N + 1), dtype=_hj_torch.float64)
    dist[:, N] = 1.0
    for cnt, law in laws:
        pm, p0, pp = law[:, 0:1], law[:, 1:2], law[:, 2:3]
        for _ in range(cnt):
            new = p0 * dist
            new[:, 1:] += pp * dist[:, :-1]
            new[:, :-1] += pm * dist[:, 1:]
            dist = new
    out = dist[:, N + 1:].sum(1)
    if ties == "half":
        out = out + 0.5 * dist[:, N]
    return out.clamp(0.0, 1.0)


def _hj_position_law(token_law: _hj_torch.Tensor, in_y: _hj_torch.Tensor,
                     in_h: _hj_torch.Tensor) -> _hj_torch.Tensor:
    """``[..., 3]``: law of X = 1{x in N(y')} - 1{x in N(y)} for x drawn from ``token_law [..., V]``."""
    plus = (token_law * (in_h & ~in_y).double()).sum(-1)
    minus = (token_law * (in_y & ~in_h).double()).sum(-1)
    zero = (token_law * (in_y == in_h).double()).sum(-1)
    return _hj_torch.stack([minus, zero, plus], dim=-1)


def hijack_flip_probability(spec, y: int, y_hijack: int, rho, L: int | None = None,
                            last_clean: bool = False, ties: str = "strict") -> _hj_torch.Tensor:
    """Exact probability ``Tensor[R]`` that the constructed model prefers y' to y
    (``f_{y'} > f_y``) on a random hijacked context of length L (default ``spec.L``).

    Each position independently holds, with probability ``rho``, a hijack token uniform on N(y'),
    and otherwise a clean token drawn from the task's law for target y (``spec.context_law()``,
    so the task's noise is included). With ``last_clean`` the last position is never hijacked
    (drawn from the clean law when ``spec.clean_last``). ``L * (f_{y'} - f_y)`` is a sum of
    independent {-1, 0, +1} steps, whose law is computed exactly by convolution. For disjoint
    neighbourhoods and no noise this is ``P(Binomial(L, rho) > L/2)``.
    """
    from ._validate import check_choice, check_int
    spec = _hj_spec(spec)
    y, y_hijack = _hj_pair(spec, y, y_hijack)
    r = _hj_rho(rho)
    L = spec.L if L is None else check_int("L", L, 1, 5000)
    check_choice("ties", ties, ("strict", "half"))
    A = spec.neighbourhood.mask(spec.space)
    in_y, in_h = A[y], A[y_hijack]
    hij = A[y_hijack].double() / A[y_hijack].sum()
    clean = spec.context_law()[y]
    mix = (1 - r)[:, None] * clean[None, :] + r[:, None] * hij[None, :]
    laws = []
    if last_clean:
        last = spec.clean_law()[y] if spec.clean_last else clean
        if L > 1:
            laws.append((L - 1, _hj_position_law(mix, in_y, in_h)))
        laws.append((1, _hj_position_law(last, in_y, in_h).expand(r.numel(), 3)))
    else:
        laws.append((L, _hj_position_law(mix, in_y, in_h)))
    return _hj_sum_positive(laws, ties)


def hijack_margin_probability(rho, L: int, D: int, D_hijack: int | None = None,
                              overlap: int = 0, ties: str = "strict") -> _hj_torch.Tensor:
    """``Tensor[R]``: exact probability that the constructed model prefers y' to y on a noise-free
    rho-hijacked context of length L, from the sizes alone: N(y) has ``D`` tokens, N(y') has
    ``D_hijack`` (default D), and they share ``overlap``. Each position adds +1 to
    ``L (f_{y'} - f_y)`` with probability ``rho (1 - o/D')`` and -1 with probability
    ``(1 - rho)(1 - o/D)``."""
    from ._validate import check_choice, check_int
    r = _hj_rho(rho)
    L = check_int("L", L, 1, 5000)
    D = check_int("D", D, 1, None)
    D_hijack = D if D_hijack is None else check_int("D_hijack", D_hijack, 1, None)
    overlap = check_int("overlap", overlap, 0, min(D, D_hijack))
    check_choice("ties", ties, ("strict", "half"))
    plus = r * (1 - overlap / D_hijack)
    minus = (1 - r) * (1 - overlap / D)
    law = _hj_torch.stack([minus, 1 - plus - minus, plus], dim=-1)
    return _hj_sum_positive([(L, law)], ties)


def hijack_prepend_probability(spec, y: int, y_hijack: int, k, block: int = 1,
                               ties: str = "strict") -> _hj_torch.Tensor:
    """Exact probability ``Tensor[K]`` that the constructed model prefers y' to y after ``k``
    blocks of ``block`` hijack tokens (uniform on N(y')) are put in front of a clean task context
    of length ``spec.L`` (drawn from the task's law for y, the last token from the clean law when
    ``spec.clean_last``). ``k`` is an int or a list of ints."""
    from ._validate import check_choice, check_int
    spec = _hj_spec(spec)
    y, y_hijack = _hj_pair(spec, y, y_hijack)
    block = check_int("block", block, 1, 1000)
    check_choice("ties", ties, ("strict", "half"))
    ks = [check_int("k", v, 0, 1000) for v in (k if isinstance(k, (list, tuple)) else
                                              _hj_torch.as_tensor(k).reshape(-1).tolist())]
    A = spec.neighbourhood.mask(spec.space)
    in_y, in_h = A[y], A[y_hijack]
    hij = _hj_position_law(A[y_hijack].double() / A[y_hijack].sum(), in_y, in_h)[None, :]
    clean = _hj_position_law(spec.context_law()[y], in_y, in_h)[None, :]
    last = _hj_position_law((spec.clean_law() if spec.clean_last else spec.context_law())[y],
                            in_y, in_h)[None, :]
    out = []
    for kk in ks:
        laws = [(spec.L - 1, clean), (1, last)]
        if kk * block:
            laws.append((kk * block, hij))
        out.append(_hj_sum_positive(laws, ties)[0])
    return _hj_torch.stack(out)


def hijack_binomial_flip(rho, L: int) -> _hj_torch.Tensor:
    """``P(Binomial(L, rho) > L/2)`` as ``Tensor[R]``: the flip probability of the constructed
    model for disjoint neighbourhoods and noise-free clean tokens (strict: a tie is no flip)."""
    from ._validate import check_int
    r = _hj_rho(rho)
    L = check_int("L", L, 1, 100_000)
    ks = _hj_torch.arange(L // 2 + 1, L + 1, dtype=_hj_torch.float64)
    logc = (_hj_torch.lgamma(_hj_torch.tensor(L + 1.0, dtype=_hj_torch.float64))
            - _hj_torch.lgamma(ks + 1) - _hj_torch.lgamma(L - ks + 1))
    out = []
    for v in r.tolist():
        if v == 0.0:
            out.append(0.0)
        elif v == 1.0:
            out.append(1.0)
        else:
            lp = logc + ks * _hj_math.log(v) + (L - ks) * _hj_math.log1p(-v)
            out.append(float(_hj_torch.exp(lp).sum()))
    return _hj_torch.tensor(out, dtype=_hj_torch.float64)


def hijack_constructed_model(spec, d: int | None = None, seed: int = 0):
    """The constructed model of chapters 4 and 7 as a ``OneLayerTransformer`` (float64):
    orthonormal embeddings (``d >= V``, default ``d = V``), ``W_KQ = 0`` and the associative
    memory ``W_V = W_E^T A W_E``. Its logits are ``hijack_share_logits``."""
    from .model import OneLayerTransformer
    spec = _hj_spec(spec)
    W_E = kq_orthonormal_embedding(spec.V, d, seed)
    W_V = kq_value_matrix(W_E, spec)
    return OneLayerTransformer.from_weights(W_E, None, W_V, device="cpu")


# ==== end of sections ====
