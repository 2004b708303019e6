"""Chapter 4, the value matrix as an associative memory: the construction W_V* and its error
probability (exact and bounded), W_V = I with the +-1 code, one gradient step from W_V = 0 on the
exact population loss, replacing a trained W_V, the chapter's figures and exercise checkers."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from ._validate import check_bool, check_dtype, check_finite, check_float, check_int, warn_if_transposed
from .checks import CheckResult, close, run_cases
from .latent import (
    LatentSpace,
    Neighbourhood,
    popcounts,
    xor_invariant,
)
from .lca_task import surjections
from .model import OneLayerTransformer, orthonormal_rows
from .style import COLORS, CYCLE, as_array, legend_below, new_figure
from .task import TaskSpec, check_spec, count_vector, sample
from .train import check_model_and_spec, evaluate


def _check_embedding(
    name: str, W_E, allow_ensemble: bool = True, V: int | None = None, warn: bool = True
) -> torch.Tensor:
    """``W_E``, checked: a finite float ``[V, d]`` (or ``[E, V, d]``) with V = 2**m rows (V given:
    V rows; V unknown and ``warn``: a warning when W_E looks transposed, ``warn_if_transposed``)."""
    if not isinstance(W_E, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor [V, d], got {type(W_E).__name__}")
    ok = (2, 3) if allow_ensemble else (2,)
    if W_E.ndim not in ok:
        want = "[V, d] or [E, V, d]" if allow_ensemble else "[V, d]"
        raise ValueError(f"{name} must have shape {want}, got {tuple(W_E.shape)}")
    if not W_E.is_floating_point():
        raise ValueError(f"{name} must have a floating dtype, got {W_E.dtype}")
    rows = W_E.shape[-2]
    if rows < 2 or rows & (rows - 1):
        raise ValueError(f"{name} must have V = 2**m rows (m >= 1), got V={rows}")
    if V is not None and rows != V:
        raise ValueError(f"{name} must have V={V} rows (row = token) for this task, got {rows}")
    if V is None and warn:
        warn_if_transposed(name, W_E, stacklevel=4)
    return check_finite(name, W_E)


def _neighbourhood_matrix(mask, V: int) -> torch.Tensor:
    """A neighbourhood given as a family, a BoolTensor[V, V] or a float weight matrix [V, V]."""
    if isinstance(mask, Neighbourhood):
        m = V.bit_length() - 1
        space = LatentSpace(m)
        mask.validate(space)
        return mask.mask(space).double()
    if not isinstance(mask, torch.Tensor):
        raise ValueError(
            "mask must be a neighbourhood family, a BoolTensor[V, V] or a float "
            f"Tensor[V, V], got {type(mask).__name__}"
        )
    if tuple(mask.shape) != (V, V):
        raise ValueError(f"mask must have shape ({V}, {V}) to match W_E, got {tuple(mask.shape)}")
    if mask.is_floating_point() and not bool(torch.isfinite(mask).all()):
        raise ValueError("mask must hold finite weights")
    return mask.double()


def value_matrix_construction(
    W_E: torch.Tensor, mask: Neighbourhood | torch.Tensor, scale: float = 1.0, *, V: int | None = None
) -> torch.Tensor:
    """The constructed value matrix ``W_V* = W_E^T A W_E`` (``[d, d]``; ``[E, d, d]`` for W_E
    ``[E, V, d]``).

    Equivalently ``sum_i W_E(i) (sum_{j in N(i)} W_E(j))^T``: for every target i it stores the pair
    (sum of i's neighbours' embeddings -> i's embedding) as an outer product, so that the model's
    logits ``W_E W_V* h`` reward tokens whose neighbourhood the context falls into.

    Args:
        W_E: embeddings ``[V, d]`` (row = token) or ``[E, V, d]``.
        mask: the neighbourhood: a family from ``lca.latent`` (e.g. ``hamming_sphere(1)``), a
            ``BoolTensor[V, V]`` with ``mask[i, j]`` True when j is in N(i), or a float weight
            matrix ``A[V, V]`` (e.g. a task's ``context_law()``).
        scale: a factor beta for ``beta W_E^T A W_E`` (applied to W_E^T before the products).
        V: the number of tokens when the caller knows it (W_E must then have V rows); with V None
            and a family as mask, a W_E with fewer rows than columns warns (it may be W_E.T).
    Returns:
        ``scale * W_E^T A W_E`` in W_E's dtype.
    """
    V = None if V is None else check_int("V", V, 2, 1 << 16)
    # a mask tensor [V, V] fixes V (its shape is checked against W_E below): no warning then
    W_E = _check_embedding("W_E", W_E, V=V, warn=not isinstance(mask, torch.Tensor))
    scale = check_float("scale", scale, 0.0, None)
    A = _neighbourhood_matrix(mask, W_E.shape[-2]).to(device=W_E.device)
    E64 = W_E.double()
    Et = E64.transpose(-1, -2) if scale == 1.0 else scale * E64.transpose(-1, -2)
    out = Et @ A @ E64
    return out.to(W_E.dtype)


def constructed_model(spec: TaskSpec, d: int | None = None, seed: int = 0) -> OneLayerTransformer:
    """The constructed model of chapters 4 and 7 as a ``OneLayerTransformer`` (float64):
    orthonormal embeddings ``orthonormal_rows(V, d, seed)`` (``d >= V``, default ``d = V``),
    ``W_KQ = 0`` and the associative memory ``W_V* = W_E^T A W_E`` of the task's neighbourhood.
    Its logits are the shares of the context inside each N(k)."""
    check_spec(spec)
    W_E = orthonormal_rows(spec.V, d, seed)
    W_V = value_matrix_construction(W_E, spec.neighbourhood, V=spec.V)
    return OneLayerTransformer.from_weights(W_E, None, W_V, device="cpu")


def pm1_embedding(m: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The centred +-1 embedding ``e_z = (2 z - 1) / sqrt(m)`` in d = m: ``Tensor[2**m, m]``.

    Every row has norm 1 and ``<e_z, e_z'> = 1 - 2 D_H(z, z') / m``.
    """
    m = check_int("m", m, 1, 16)
    Z = LatentSpace(m).latents.to(check_dtype("dtype", dtype))
    return (2 * Z - 1) / math.sqrt(m)


def strict_correct(logits: torch.Tensor, targets: torch.Tensor, rtol: float = 1e-9) -> torch.Tensor:
    """``BoolTensor[..., n]``: the target's logit beats every other logit by more than
    ``rtol * max|logit|`` (ties, up to rounding, count as errors).

    Args:
        logits: ``[..., n, V]``; targets: ``LongTensor[n]`` (or ``[..., n]``).
    """
    if not isinstance(logits, torch.Tensor) or logits.ndim < 2:
        raise ValueError(
            "logits must be a Tensor [n, V] (or [..., n, V]), got "
            f"{type(logits).__name__} {tuple(getattr(logits, 'shape', ()))}"
        )
    if not isinstance(targets, torch.Tensor) or targets.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"targets must be a LongTensor [n], got {type(targets).__name__}")
    if targets.shape[-1] != logits.shape[-2]:
        raise ValueError(f"targets must have n={logits.shape[-2]} entries, got {tuple(targets.shape)}")
    rtol = check_float("rtol", rtol, 0.0, 1.0)
    V = logits.shape[-1]
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= V):
        raise ValueError(f"targets must hold token ids in 0..{V - 1}")
    t = targets.expand(logits.shape[:-1]).long()
    own = logits.gather(-1, t.unsqueeze(-1)).squeeze(-1)
    others = logits.scatter(-1, t.unsqueeze(-1), float("-inf")).max(-1).values
    scale = logits.abs().amax(-1).clamp(min=1e-300)
    return own > others + rtol * scale


def memory_accuracy(
    spec: TaskSpec,
    W_E: torch.Tensor,
    W_V: torch.Tensor,
    n: int = 4096,
    seed: int = 0,
    W_KQ: torch.Tensor | None = None,
) -> float:
    """Accuracy (ties count as errors) of the model with the given matrices on ``n`` fresh
    examples of ``spec`` drawn with ``seed``; W_KQ defaults to 0 (uniform attention).

    Float64 throughout, in the model's orientation: logits = W_E W_V h. With W_KQ None the logits
    are computed from token frequencies (h = W_E^T c); otherwise ``OneLayerTransformer`` runs.
    """
    check_spec(spec)
    W_E = _check_embedding("W_E", W_E, allow_ensemble=False, V=spec.V)
    d = W_E.shape[1]
    if not isinstance(W_V, torch.Tensor) or tuple(W_V.shape) != (d, d):
        raise ValueError(
            f"W_V must be a Tensor of shape ({d}, {d}) to match W_E [V, d] = {tuple(W_E.shape)}, "
            f"got {tuple(getattr(W_V, 'shape', ()))}"
        )
    check_finite("W_V", W_V)
    if W_KQ is not None and (not isinstance(W_KQ, torch.Tensor) or tuple(W_KQ.shape) != (d, d)):
        raise ValueError(
            f"W_KQ must be None or a Tensor of shape ({d}, {d}), got {tuple(getattr(W_KQ, 'shape', ()))}"
        )
    n = check_int("n", n, 1, 1_000_000)
    seed = check_int("seed", seed, 0, 2**62)
    E64, V64 = W_E.detach().double().cpu(), W_V.detach().double().cpu()
    ctx, y = sample(spec, n, seed=seed)
    hits = 0
    if W_KQ is None:
        # uniform attention: h = W_E^T c with c the token frequencies, logits = W_E W_V h
        # (the same numbers as OneLayerTransformer.forward, without the [n, L, d] gather)
        read = E64 @ V64 @ E64.T  # [V, V]: logits = c @ read.T
        for i in range(0, n, 4096):
            freq = count_vector(ctx[i : i + 4096], spec.V, 1.0 / spec.L)
            hits += int(strict_correct(freq @ read.T, y[i : i + 4096]).sum())
        return hits / n
    model = OneLayerTransformer.from_weights(E64, W_KQ.detach().double().cpu(), V64, device="cpu")
    with torch.no_grad():
        for i in range(0, n, 2048):
            hits += int(strict_correct(model(ctx[i : i + 2048]), y[i : i + 2048]).sum())
    return hits / n


def construction_accuracy(
    spec: TaskSpec,
    W_E: torch.Tensor | None = None,
    n: int = 4096,
    seed: int = 0,
    mask: Neighbourhood | torch.Tensor | None = None,
) -> float:
    """Accuracy (ties count as errors) of the constructed model ``W_V* = W_E^T A W_E`` with uniform
    attention on ``n`` fresh examples of ``spec``.

    Args:
        spec: the task.
        W_E: embeddings ``[V, d]``; None means orthonormal ones, for which the logits are exactly
            ``A c`` (thm-wv-construction) and are computed from integer token counts, so ties are
            exact.
        mask: the neighbourhood used by the construction (default: the task's own).
    """
    check_spec(spec)
    n = check_int("n", n, 1, 1_000_000)
    seed = check_int("seed", seed, 0, 2**62)
    A = _neighbourhood_matrix(spec.neighbourhood if mask is None else mask, spec.V)
    if W_E is not None:
        W_E = _check_embedding("W_E", W_E, allow_ensemble=False, V=spec.V)
        return memory_accuracy(spec, W_E, value_matrix_construction(W_E.double(), A), n, seed)
    ctx, y = sample(spec, n, seed=seed)
    hits = 0
    for i in range(0, n, 4096):
        counts = count_vector(ctx[i : i + 4096], spec.V)
        f = counts @ A.T  # f[b, k] = sum_j A[k, j] counts[b, j]
        hits += int(strict_correct(f, y[i : i + 4096], rtol=0.0).sum())
    return hits / n


def identity_accuracy(spec: TaskSpec, W_E: torch.Tensor | None = None, n: int = 4096, seed: int = 0) -> float:
    """Accuracy (ties count as errors) of ``W_V = I`` with uniform attention; W_E None means
    orthonormal embeddings (prop-identity-fails: the answer is exactly 0)."""
    check_spec(spec)
    if W_E is None:
        W_E = orthonormal_rows(spec.V)
    W_E = _check_embedding("W_E", W_E, allow_ensemble=False, V=spec.V)
    return memory_accuracy(spec, W_E, torch.eye(W_E.shape[1], dtype=torch.float64), n, seed)


def wv_error_exact_sphere1(m: int, L: int) -> float:
    """Exact error probability (ties count as errors) of the constructed model ``W_V*`` with
    orthonormal embeddings and uniform attention on the noise-free task with N = Hamming sphere of
    radius 1: ``C(m,2) (2/m)^L - m (m-2) m^(-L)`` for m >= 2, and 0 for m = 1.

    The error event is "the context uses at most two distinct tokens" (thm-wv-error-bound).
    """
    m = check_int("m", m, 1, 16)
    L = check_int("L", L, 1, 1_000_000)
    if m == 1:
        return 0.0
    exact = Fraction(math.comb(m, 2) * 2**L, m**L) - Fraction(m * (m - 2), m**L)
    return float(exact)


def wv_error_exact(spec: TaskSpec, max_support: int = 20) -> float:
    """Exact error probability (ties count as errors) of ``W_V*`` (built from the task's own
    neighbourhood) with orthonormal embeddings and uniform attention, by enumeration.

    Hypotheses: ``spec.noise == 0``. Then the target's logit is 1 and the model errs exactly when
    the set T of distinct context tokens lies in ``N(k)`` for some ``k != y``. The probability that
    T equals a given set of size t is ``surj(L, t) / |N(y)|^L``; the function enumerates the
    ``2^|N(y)|`` subsets of N(y), so it needs ``|N(y)| <= max_support`` (at most 24).
    When the mask is invariant under the translations z -> z xor u (``lca.latent.xor_invariant``:
    Hamming spheres, balls, clusters) only y = 0 is enumerated; otherwise every y is averaged.
    """
    check_spec(spec)
    max_support = check_int("max_support", max_support, 1, 24)
    if spec.noise != 0:
        raise ValueError(
            f"noise must be 0 for the exact enumeration, got {spec.noise:g} "
            "(use wv_error_bound or a Monte Carlo estimate)"
        )
    space = spec.space
    M = spec.neighbourhood.mask(space)
    deg = M.sum(1)
    if int(deg.max()) > max_support:
        raise ValueError(
            f"max_support must be at least the neighbourhood size {int(deg.max())} "
            f"for this task, got {max_support} (2^size subsets are enumerated)"
        )
    L = spec.L
    targets = [0] if xor_invariant(M) else range(spec.V)
    total = 0.0
    for y in targets:
        nbrs = torch.nonzero(M[y]).flatten()
        n = nbrs.numel()
        # for every other target k: the set S_k = N(y) & N(k), as a bitmask over positions in nbrs
        inside = M[:, nbrs].clone()  # [V(k), n]: nbrs[j] in N(k)
        inside[y] = False
        weights = 2 ** torch.arange(n, dtype=torch.int64)
        codes = (inside.long() * weights).sum(1)  # [V]
        flag = torch.zeros(2**n, dtype=torch.bool)
        flag[codes] = True
        flag[0] = False if bool(codes.eq(0).all()) else flag[0]
        # mark every subset of some S_k: push "is a subset of a marked set" down bit by bit
        f = flag.view((2,) * n) if n else flag
        for axis in range(n):
            lo = f.select(n - 1 - axis, 0)
            hi = f.select(n - 1 - axis, 1)
            lo |= hi
        flag = f.reshape(-1)
        counts = torch.bincount(popcounts(n)[flag], minlength=n + 1)
        err = 0.0
        for t in range(1, n + 1):
            if int(counts[t]):
                # P(L uniform draws from the n neighbours hit exactly a given set of t of them)
                err += int(counts[t]) * float(Fraction(surjections(L, t), n**L))
        total += err
    return min(1.0, total / len(targets))


WV_BOUND_M_MAX = 11  # V = 2048: V x V float64 products of about 10^10 operations


def wv_error_bound(spec: TaskSpec, per_target: bool = False) -> float | torch.Tensor:
    """Chernoff-union bound on the error probability (ties count as errors) of ``W_V*`` with
    orthonormal embeddings and uniform attention; noise allowed.

    For a target y and a rival k, the logit gap ``f_k - f_y`` is an average of i.i.d. steps
    ``+1`` (token in N(k) but not N(y), probability p+), ``-1`` (in N(y) but not N(k), p-) and 0.
    ``P(f_k >= f_y) <= rho^L`` with ``rho = p0 + 2 sqrt(p+ p-)`` when ``p+ < p-`` (else 1). The bound is
    ``(1/V) sum_y min(1, sum_{k != y} rho_yk^L)``. With noise 0, ``rho_yk = |N(y) & N(k)| / |N(y)|``;
    for the sphere of radius 1 this gives ``C(m,2) (2/m)^L``. When some ``N(y)`` lies inside an
    ``N(k)``, ``rho = 1`` and the bound is 1 (no guarantee, and indeed the model then always errs on y).

    Returns a float, or ``Tensor[V]`` of per-target bounds when ``per_target``. Needs m <= 11 (its
    V x V products cost V^3).
    """
    check_spec(spec)
    per_target = check_bool("per_target", per_target)
    if spec.m > WV_BOUND_M_MAX:
        raise ValueError(
            f"spec must have m <= {WV_BOUND_M_MAX} for wv_error_bound (V x V products), got m={spec.m}"
        )
    space = spec.space
    M = spec.neighbourhood.mask(space).double()
    P, last = spec.context_law(), spec.last_law()

    def parts(Q):
        # p_plus[y, k] = Q(y, N(k) \ N(y)); p_minus[y, k] = Q(y, N(y) \ N(k))
        p_plus = (Q * (1 - M)) @ M.T
        p_minus = (Q * M).sum(1, keepdim=True) - (Q * M) @ M.T
        return p_plus.clamp(min=0.0), p_minus.clamp(min=0.0)

    pp, pm = parts(P)
    good = pp < pm
    # optimal t for the body law: e^t = sqrt(p- / p+) (t = inf when p+ = 0)
    with torch.no_grad():
        ratio = torch.where(
            good & (pp > 0), torch.sqrt(pm / pp.clamp(min=1e-300)), torch.full_like(pp, float("inf"))
        )

    def mgf(p_plus, p_minus):
        p0 = 1 - p_plus - p_minus
        up = torch.where(
            torch.isinf(ratio),
            torch.where(p_plus > 0, torch.full_like(p_plus, float("inf")), torch.zeros_like(p_plus)),
            p_plus * ratio,
        )
        down = torch.where(torch.isinf(ratio), torch.zeros_like(p_minus), p_minus / ratio)
        return p0 + up + down

    rho_body = mgf(pp, pm)
    if spec.clean_last and spec.noise > 0 and spec.L >= 1:
        lp, lm = parts(last)
        rho_last = mgf(lp, lm)
        logb = (spec.L - 1) * torch.log(rho_body.clamp(min=1e-300)) + torch.log(rho_last.clamp(min=1e-300))
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
    uniform)``, computed exactly with exponential generating functions (m in 1..16, L in 1..256:
    the exact rational arithmetic grows like m L^3).
    """
    m = check_int("m", m, 1, 16)
    L = check_int("L", L, 1, 256)
    cap = (L - 1) // 2  # largest n_i with n_i < L/2
    # number of words of length L over m letters with every letter used at most `cap` times
    # = L! [x^L] (sum_{j<=cap} x^j / j!)^m
    term = [Fraction(1, math.factorial(j)) for j in range(cap + 1)]
    poly = [Fraction(1)]
    for _ in range(m):
        new = [Fraction(0)] * min(len(poly) + cap, L + 1)
        for i, a in enumerate(poly):
            if a == 0:
                continue
            for j, b in enumerate(term):
                if i + j > L:
                    break
                new[i + j] += a * b
        poly = new
    coef = poly[L] if len(poly) > L else Fraction(0)
    return float(coef * math.factorial(L) / Fraction(m**L))


def _mean_law(spec) -> torch.Tensor:
    """``Pbar[y, x]``: expected share of token x in a context of target y (the average of the
    position laws; equals the context law unless ``clean_last`` with noise)."""
    P, last = spec.context_law(), spec.last_law()
    return ((spec.L - 1) * P + last) / spec.L


def one_step_WV_parts(
    W_E: torch.Tensor, spec: TaskSpec, lr: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of one gradient step on W_V from 0 (population loss, uniform attention).

    Returns ``(memory, shift)``, both ``[d, d]`` float64, with
    ``memory = (lr / V) W_E^T Pbar W_E`` (the construction with the task's mean law Pbar as the
    neighbourhood weights) and ``shift = -lr * e_bar mu^T`` (``e_bar`` the mean embedding, ``mu = E[h]``),
    so that ``W_V(1) = memory + shift`` (thm-one-step-wv). With orthonormal embeddings the shift adds
    the same number to every logit.
    """
    check_spec(spec)
    lr = check_float("lr", lr, 0.0, None, lo_open=True)
    E = _check_embedding("W_E", W_E, False, spec.V).detach().double().cpu()
    V = spec.V
    Pbar = _mean_law(spec)
    memory = (lr / V) * E.T @ Pbar @ E
    e_bar = E.mean(0)  # [d]
    mu = (Pbar.sum(0) / V) @ E  # E[h] = (1/V) 1^T Pbar W_E
    shift = -lr * torch.outer(e_bar, mu)
    return memory, shift


def one_step_WV(W_E: torch.Tensor, spec: TaskSpec, lr: float = 1.0) -> torch.Tensor:
    """W_V after one gradient step of size ``lr`` from ``W_V = 0`` on the population cross-entropy,
    with ``W_KQ = 0`` (uniform attention) and fixed embeddings, computed exactly from the task law:

        W_V(1) = -lr * grad = (lr / V) W_E^T (I - 11^T / V) Pbar W_E          ([d, d], float64)

    where ``Pbar[y, x]`` is the expected share of token x in a context of target y. Holds for any
    W_E; the reading "construction up to a positive scale plus an equal shift of all logits" needs
    orthonormal embeddings (thm-one-step-wv).
    """
    memory, shift = one_step_WV_parts(W_E, spec, lr)
    return memory + shift


def one_step_WV_sampling_rms(W_E: torch.Tensor, spec: TaskSpec, n: int) -> float:
    """Root-mean-square Frobenius error ``sqrt(E ||g_n - g||_F^2)`` of the gradient of W_V at 0
    estimated on a batch of ``n`` i.i.d. examples (mean loss), where g is the population gradient.

    Per example the gradient is ``(e_bar - W_E(y)) h^T``, so the error variance is
    ``(E ||e_bar - W_E(y)||^2 ||h||^2 - ||g||_F^2) / n``, computed exactly from the law (uniform
    attention). By Chebyshev, ``||g_n - g||_F > rms / sqrt(delta)`` has probability at most delta.
    """
    check_spec(spec)
    n = check_int("n", n, 1, 1_000_000_000)
    E = _check_embedding("W_E", W_E, False, spec.V).detach().double().cpu()
    L = spec.L
    P, last = spec.context_law(), spec.last_law()
    G = E @ E.T
    # E[||h||^2 | y] with h = (1/L) sum_l W_E(x_l), positions independent
    sq_body = (P * torch.diagonal(G)).sum(1)  # E||W_E(x)||^2 per y
    sq_last = (last * torch.diagonal(G)).sum(1)
    mean_body = P @ E  # [V, d]
    mean_last = last @ E
    mean_sum = (L - 1) * mean_body + mean_last
    # E||sum_l w_l||^2 = sum_l E||w_l||^2 + ||sum_l E w_l||^2 - sum_l ||E w_l||^2
    e_h2 = (
        (L - 1) * sq_body
        + sq_last
        + (mean_sum**2).sum(1)
        - (L - 1) * (mean_body**2).sum(1)
        - (mean_last**2).sum(1)
    ) / L**2
    e_bar = E.mean(0)
    a2 = ((e_bar[None, :] - E) ** 2).sum(1)  # ||e_bar - W_E(y)||^2
    second = float((a2 * e_h2).mean())
    g = -one_step_WV(E, spec)
    var = max(second - float((g**2).sum()), 0.0)
    return math.sqrt(var / n)


def _tied_model_and_spec(model, spec):
    check_model_and_spec(model, spec)
    if not model.tied:
        raise ValueError("model must have a tied unembedding (tied=True) for the construction")
    return model, spec


def constructed_value_matrix(
    model: OneLayerTransformer, spec: TaskSpec, mask: Neighbourhood | torch.Tensor | None = None
) -> torch.Tensor:
    """``W_V* = W_E^T A W_E`` from the model's own (trained) embeddings: ``[d, d]``, or
    ``[E, d, d]`` for an ensemble. ``mask`` defaults to the task's neighbourhood."""
    model, spec = _tied_model_and_spec(model, spec)
    return value_matrix_construction(
        model.W_E.detach(), spec.neighbourhood if mask is None else mask, V=spec.V
    )


def wv_replacement(
    model: OneLayerTransformer,
    spec: TaskSpec,
    n: int = 4096,
    seed: int = 0,
    mask: Neighbourhood | torch.Tensor | None = None,
) -> dict:
    """Accuracy of the trained model and of the same model with W_V replaced by the construction
    built from its own embeddings (W_E and W_KQ kept).

    Returns ``{"trained": acc, "constructed": acc}`` (floats, or lists over ensemble members), both
    measured by ``lca.train.evaluate`` on the same ``n`` examples drawn with ``seed``.
    """
    model, spec = _tied_model_and_spec(model, spec)
    n = check_int("n", n, 1, 1_000_000)
    seed = check_int("seed", seed, 0, 2**62)
    W_star = constructed_value_matrix(model, spec, mask)
    opts = dict(residual=model.residual, layernorm=model.layernorm, device=model.W_E.device)
    swapped = OneLayerTransformer.from_weights(model.W_E.detach(), model.W_KQ.detach(), W_star, **opts)
    return {"trained": evaluate(model, spec, n, seed), "constructed": evaluate(swapped, spec, n, seed)}


def truncate_rank(W: torch.Tensor, rank: int) -> torch.Tensor:
    """Best rank-``rank`` approximation of ``W`` (``[..., d, d]``) in Frobenius norm (truncated
    SVD); a rank at least d returns W itself."""
    if not isinstance(W, torch.Tensor) or W.ndim < 2 or not W.is_floating_point():
        raise ValueError(
            "W must be a float Tensor [d, d] (or [..., d, d]), got "
            f"{type(W).__name__} {tuple(getattr(W, 'shape', ()))}"
        )
    rank = check_int("rank", rank, 1, 1 << 16)
    check_finite("W", W)
    if rank >= min(W.shape[-2:]):
        return W
    U, S, Vh = torch.linalg.svd(W.double(), full_matrices=False)
    return ((U[..., :, :rank] * S[..., None, :rank]) @ Vh[..., :rank, :]).to(W.dtype)


def matrix_cosine(A: torch.Tensor, B: torch.Tensor, rank: int | None = None) -> float | list[float]:
    """Frobenius cosine ``<A, B>_F / (||A||_F ||B||_F)`` between two matrices, after replacing each
    by its best rank-``rank`` approximation when ``rank`` is given. ``[..., d, d]`` inputs give a
    float (or a list over the leading dimension). The angle is ``acos`` of the cosine."""
    for name, X in (("A", A), ("B", B)):
        if not isinstance(X, torch.Tensor) or X.ndim not in (2, 3) or not X.is_floating_point():
            raise ValueError(
                f"{name} must be a float Tensor [d, d] or [E, d, d], got "
                f"{type(X).__name__} {tuple(getattr(X, 'shape', ()))}"
            )
    if A.shape != B.shape:
        raise ValueError(f"A and B must have the same shape, got {tuple(A.shape)} and {tuple(B.shape)}")
    check_finite("A", A)
    check_finite("B", B)
    A, B = A.detach().double(), B.detach().double()
    if rank is not None:
        A, B = truncate_rank(A, rank), truncate_rank(B, rank)
    num = (A * B).sum((-1, -2))
    den = A.norm(dim=(-2, -1)) * B.norm(dim=(-2, -1))
    cos = torch.where(den > 0, num / den.clamp(min=1e-300), torch.zeros_like(num))
    return float(cos) if cos.ndim == 0 else cos.tolist()


def wv_alignment(
    model: OneLayerTransformer,
    spec: TaskSpec,
    ranks: Sequence[int | None] = (None,),
    mask: Neighbourhood | torch.Tensor | None = None,
) -> dict:
    """Frobenius cosine between the model's W_V and the construction from its own embeddings, for
    each entry of ``ranks`` (None: the full matrices; r: their best rank-r approximations).

    Returns ``{rank: cosine}`` (floats, or lists over ensemble members). Angles in degrees are
    ``math.degrees(math.acos(cos))``.
    """
    model, spec = _tied_model_and_spec(model, spec)
    if isinstance(ranks, (str, bytes)) or not hasattr(ranks, "__iter__"):
        raise TypeError(f"ranks must be a sequence of None or positive integers, got {ranks!r}")
    ranks = tuple(ranks)
    if not ranks:
        raise ValueError("ranks must hold at least one entry (None or a positive integer)")
    for r in ranks:
        if r is not None:
            check_int("ranks", r, 1, 1 << 16)
    W_star = constructed_value_matrix(model, spec, mask)
    return {r: matrix_cosine(model.W_V.detach(), W_star, r) for r in ranks}


SIGNIFICANT = 0.1  # wv_spectra: a singular value counts when it is at least this share of the largest


def wv_spectra(
    model: OneLayerTransformer,
    spec: TaskSpec,
    rel: float = SIGNIFICANT,
    mask: Neighbourhood | torch.Tensor | None = None,
) -> dict:
    """Singular spectra of the model's W_V and of ``W_V* = W_E^T A W_E`` from its own embeddings.

    Returns ``{"trained": s / s_1, "constructed": s / s_1}`` (``[d]``, or ``[E, d]`` for an
    ensemble), ``"rank"``: the number of singular values of W_V* at least ``rel`` times its
    largest, and ``"cosine"``: the Frobenius cosine of the best rank-r parts of W_V and W_V*, with
    r that rank (ints and floats, or lists over members).
    """
    model, spec = _tied_model_and_spec(model, spec)
    rel = check_float("rel", rel, 0.0, 1.0, lo_open=True)
    W_star, W_V = constructed_value_matrix(model, spec, mask).double(), model.W_V.detach().double()
    one = W_V.ndim == 2
    W_star, W_V = (W_star[None], W_V[None]) if one else (W_star, W_V)
    s_star, s_V = torch.linalg.svdvals(W_star), torch.linalg.svdvals(W_V)
    ranks = [max(1, int((s >= rel * s[0]).sum())) for s in s_star]
    cos = [matrix_cosine(a, b, r) for a, b, r in zip(W_V, W_star, ranks)]
    norm = [(s / s[:, :1].clamp(min=1e-300)) for s in (s_V, s_star)]
    out = {"trained": norm[0], "constructed": norm[1], "rank": ranks, "cosine": cos}
    return {k: v[0] for k, v in out.items()} if one else out


def walsh_weight_shares(W_E: torch.Tensor) -> torch.Tensor:
    """Share of ``||W_E||_F^2`` on the Walsh characters ``chi_s(z) = (-1)^(s.z)`` of each weight
    ``w = |s| = 0..m``: ``[m + 1]`` (``[E, m + 1]`` for ``[E, V, d]``), summing to 1.

    With ``u_s = chi_s^T W_E``, ``W_E = (1/V) sum_s chi_s u_s^T``; the N_1 mask has ``A chi_s =
    (m - 2|s|) chi_s``, so ``W_V* = (1/V) sum_s (m - 2|s|) u_s u_s^T``: weights 1 and m - 1 enter
    with the same factor m - 2 in absolute value (book/proofs/value_matrix.md).
    """
    W = _check_embedding("W_E", W_E, warn=False).detach().double().cpu()
    m = W.shape[-2].bit_length() - 1
    t = torch.arange(2**m)
    weight = popcounts(m)
    H = (1 - 2 * (weight[t[:, None] & t[None, :]] % 2)).double()  # H[s, z] = chi_s(z)
    energy = ((H @ W) ** 2).sum(-1)  # [..., V]: ||u_s||^2
    out = torch.zeros(energy.shape[:-1] + (m + 1,), dtype=torch.float64).index_add_(-1, weight, energy)
    return out / out.sum(-1, keepdim=True).clamp(min=1e-300)


def cosine_to_degrees(cos: float) -> float:
    """Angle in degrees from a finite cosine (clipped to [-1, 1])."""
    c = max(-1.0, min(1.0, check_float("cos", cos)))
    return math.degrees(math.acos(c))


def _bands(ax, xs, data: dict, styles=("o-",), log2: bool = True, colors=None) -> None:
    """One line (mean over the last axis) and a min-max band per entry of ``data`` (label -> array
    ``[len(xs), seeds]``) against ``xs``, on a log2 axis when ``log2``."""
    xs = as_array(xs)
    for i, (label, vals) in enumerate(data.items()):
        a = as_array(vals).reshape(len(xs), -1)
        color = (colors or CYCLE)[i % len(colors or CYCLE)]
        ax.plot(xs, a.mean(1), styles[i % len(styles)], color=color, label=label)
        ax.fill_between(xs, a.min(1), a.max(1), color=color, alpha=0.2, lw=0)
    if log2:
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(int(x)) for x in xs])


def plot_wv_example(
    A: ArrayLike,
    logits: ArrayLike,
    target: int,
    context: ArrayLike,
) -> Figure:
    """Left: the neighbourhood matrix ``A [V, V]`` (row y marks N(y)) with the target's row
    (vermillion) and the context tokens' columns (blue) outlined. Right: the model's logit for
    every token, the target's bar in vermillion. No suptitle: the caption says what it shows.

    Args:
        A: ``[V, V]`` 0/1 matrix. logits: ``[V]``. target: the target token. context: token ids.
    """
    A, f = as_array(A), as_array(logits).reshape(-1)
    V = A.shape[0]
    ctx = sorted({int(t) for t in as_array(context).reshape(-1)})
    fig, axes = new_figure(ncols=2, width=3.75, height=2.5)
    ax = axes[0]
    ax.imshow(A, cmap="Greys", vmin=0, vmax=1.6, interpolation="nearest")
    box = dict(fill=False, ec=COLORS["vermillion"], lw=2, label=f"row of the target $y={target}$")
    ax.add_patch(plt.Rectangle((-0.5, target - 0.5), V, 1, **box))
    for j, t in enumerate(ctx):
        label = "columns of the context tokens" if j == 0 else None
        ax.add_patch(plt.Rectangle((t - 0.5, -0.5), 1, V, fill=False, ec=COLORS["blue"], lw=1.5, label=label))
    ax.set(xticks=range(V), yticks=range(V), xlabel="context token $j$", ylabel="target $i$")
    ax.set_title("$A$ (black: $j\\in\\mathcal{N}(i)$)")
    ax.grid(False)
    colors = [COLORS["vermillion"] if k == target else COLORS["sky"] for k in range(V)]
    axes[1].bar(np.arange(V), f, color=colors)
    axes[1].set(xticks=range(V), xlabel="token $k$", ylabel="logit $f_k$")
    axes[1].set_title("logits $f=Ac$")
    legend_below(fig, axes[0], ncols=2)
    return fig


def plot_wv_error(
    Ls: ArrayLike,
    curves: dict,
    title: str = "",
    ax=None,
) -> Figure:
    """Error probability of the constructed model against the context length L (log scale).

    Args:
        Ls: the context lengths (x axis).
        curves: label -> dict with any of ``"exact"`` (line), ``"bound"`` (dashed line) and
            ``"monte_carlo"`` (points) sequences aligned with ``Ls``; one colour per label.
        title: the panel's title (none by default: the caption says it).
        ax: draw into this axes (default: a new figure).
    Zeros are drawn at the bottom edge (a log axis cannot show them). The legend (colour: task,
    style: kind of value) sits under the panel, outside the data.
    """
    from matplotlib.lines import Line2D

    fig, ax = new_figure(width=5.0, height=2.5) if ax is None else (ax.figure, ax)
    Ls = as_array(Ls)
    positive = [v[v > 0] for c in curves.values() for v in map(as_array, c.values())]
    positive = [p.min() for p in positive if p.size]
    floor = min(positive) / 3 if positive else 1e-6
    styles = {"exact": ("-", dict(lw=2)), "bound": ("--", dict(lw=1.5))}
    styles["monte_carlo"] = ("o", dict(ms=5, mfc="white"))
    names = {"exact": "exact", "bound": "bound", "monte_carlo": "Monte Carlo"}
    used = set()
    for i, c in enumerate(curves.values()):
        for key, (fmt, kw) in styles.items():
            if key in c:
                used.add(key)
                y = np.clip(as_array(c[key]), floor, 1.0)
                ax.plot(Ls, y, fmt, color=CYCLE[i % len(CYCLE)], **kw)
    ax.set(yscale="log", ylim=(floor, 1.5), xlabel="context length $L$")
    ax.set_ylabel("P(error), ties as errors")
    if title:
        ax.set_title(title)
    handles = [
        Line2D([], [], color=CYCLE[i % len(CYCLE)], lw=2, label=label) for i, label in enumerate(curves)
    ]
    handles += [
        Line2D(
            [],
            [],
            ls=styles[k][0][:2] if k != "monte_carlo" else "none",
            marker="o" if k == "monte_carlo" else None,
            mfc="white",
            color="black",
            label=names[k],
        )
        for k in styles
        if k in used
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, frameon=False)
    return fig


def plot_wv_bars(ms: ArrayLike, results: dict) -> Figure:
    """Grouped bars of accuracy per latent dimension m, one panel per entry of ``results`` (paper
    Fig. 3a).

    Args:
        ms: the latent dimensions (x axis).
        results: panel label (e.g. ``"L = 64"``) -> variant label -> array ``[len(ms), seeds]`` of
            accuracies. Bars show the seed mean, error bars the min-max spread, dots each seed.
    No suptitle (the caption says it); one legend under the panels.
    """
    panels = list(results.items())
    fig, axes = new_figure(ncols=len(panels), width=2.5, height=2.3, sharey=True)
    axes = np.atleast_1d(axes)
    ms = list(ms)
    x = np.arange(len(ms))
    lo_all = 1.0
    for ax, (panel, variants) in zip(axes, panels):
        width = 0.8 / len(variants)
        for i, (label, acc) in enumerate(variants.items()):
            a = as_array(acc).reshape(len(ms), -1)
            mean, lo, hi = a.mean(1), a.min(1), a.max(1)
            lo_all = min(lo_all, float(lo.min()))
            pos = x - 0.4 + width * (i + 0.5)
            ax.bar(pos, mean, width * 0.9, color=CYCLE[i % len(CYCLE)], alpha=0.85, label=label)
            ax.errorbar(pos, mean, yerr=[mean - lo, hi - mean], fmt="none", ecolor="black", capsize=3, lw=1)
            for j in range(a.shape[0]):
                ax.plot(np.full(a.shape[1], pos[j]), a[j], ".", color="black", ms=3)
        ax.set_xticks(x, [str(m) for m in ms])
        ax.set_xlabel("latent dimension $m$")
        ax.set_title(panel)
    axes[0].set_ylabel("test accuracy")
    axes[0].set_ylim(max(0.0, lo_all - 0.08), 1.01)
    legend_below(fig, axes[0], ncols=2)
    return fig


def plot_wv_budget(steps: ArrayLike, gaps: dict) -> Figure:
    """Accuracy gap (trained W_V minus W_V = I) against the number of Adam steps (log2 axis), one
    panel per entry of ``gaps``: panel label -> line label (e.g. ``"m = 5"``) -> array
    ``[len(steps), seeds]`` of per-seed gaps (line: mean, band: min-max). No suptitle; one legend
    under the panels."""
    fig, axes = new_figure(ncols=len(gaps), width=3.75, height=2.2, sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (panel, data) in zip(axes, gaps.items()):
        _bands(ax, steps, data)
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set(xlabel="Adam steps", title=panel)
    axes[0].set_ylabel("gap, trained $-$ identity")
    legend_below(fig, axes[0], ncols=4)
    return fig


def plot_wv_replacement(ds: ArrayLike, panels: dict, spectra: dict) -> Figure:
    """A 2 x 2 grid against the embedding dimension d (log2 axis) for several tasks.

    Args:
        ds: embedding dimensions.
        panels: task label (e.g. ``"m = 5"``) -> dict of arrays ``[len(ds), seeds]``: ``"trained"``
            and ``"replaced"`` accuracies (top left: solid and dashed, one colour per task),
            ``"cosine"`` and ``"cosine, measured rank"`` (top right: solid and dotted).
        spectra: label -> normalised singular values ``sigma_i / sigma_1`` (bottom left, against i), and
            optionally ``"rank"`` -> task label -> measured ranks per d (bottom right).
    """
    fig, axes = new_figure(ncols=2, nrows=2, width=3.75, height=2.2)
    keys = (("trained", "replaced"), ("cosine", "cosine, measured rank"))
    for ax, (solid, other) in zip(axes[0], keys):
        style = ("o-", "s--" if other == "replaced" else "^:")
        for i, (task, data) in enumerate(panels.items()):
            pair = {f"{task}, {k}": data[k] for k in (solid, other)}
            _bands(ax, ds, pair, style, colors=[CYCLE[i % len(CYCLE)]])
        ax.set_xlabel("embedding dimension $d$")
    axes[0, 0].set_ylabel("test accuracy")
    axes[0, 1].set_ylabel("cosine of $W_V$ and $W_V^\\star$")
    axes[0, 0].set_title("trained (solid), replaced (dashed)")
    axes[0, 1].set_title("full (solid), rank-$r$ parts (dotted)")
    handles = axes[0, 0].get_legend_handles_labels()
    legend_below(fig, handles=handles[0][::2], labels=list(panels), ncols=len(panels))
    for i, (label, s) in enumerate((k, v) for k, v in spectra.items() if k != "rank"):
        s = as_array(s).reshape(-1)
        axes[1, 0].plot(np.arange(1, len(s) + 1), s, "o-", ms=3, color=CYCLE[i % len(CYCLE)], label=label)
    axes[1, 0].axhline(SIGNIFICANT, color="black", ls=":", lw=1)
    axes[1, 0].set(xlabel="index $i$", ylabel="$\\sigma_i/\\sigma_1$", xticks=range(1, len(s) + 1, 2))
    axes[1, 0].legend(fontsize=8.5, loc="lower left", bbox_to_anchor=(0.0, 0.12))
    axes[1, 0].set_title("singular values (dotted: the cut)")
    _bands(axes[1, 1], ds, spectra.get("rank", {}))
    axes[1, 1].set(xlabel="embedding dimension $d$", ylabel="measured rank $r$ of $W_V^\\star$")
    axes[1, 1].set_title("measured rank of $W_V^\\star$")
    return fig


def plot_wv_random_embeddings(
    ds: ArrayLike,
    accuracy: dict,
    reference: dict | None = None,
    title: str = "",
    ax=None,
) -> Figure:
    """Accuracy of the construction against the embedding dimension d (log2 axis).

    Args:
        ds: embedding dimensions.
        accuracy: label (e.g. ``"m = 5"``) -> array ``[len(ds), seeds]``; line = mean, band = min-max.
        reference: label -> accuracy with orthonormal embeddings, drawn as a dotted line.
        title: the panel's title (none by default). ax: draw into this axes (default: a new figure).
    The legend sits under the panel, outside the data.
    """
    fig, ax = new_figure(width=5.0, height=3.4) if ax is None else (ax.figure, ax)
    _bands(ax, ds, {f"{k}, Gaussian $W_E$": v for k, v in accuracy.items()})
    for i, label in enumerate(accuracy):
        if reference and label in reference:
            kw = dict(color=CYCLE[i % len(CYCLE)], ls=":", lw=1.5, label=f"{label}, orthonormal")
            ax.axhline(float(reference[label]), **kw)
    ax.set(ylim=(-0.02, 1.02), xlabel="embedding dimension $d$", ylabel="accuracy, ties as errors")
    if title:
        ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, frameon=False)
    return fig


def plot_wv_construction(
    Ls: ArrayLike, curves: dict, ds: ArrayLike, accuracy: dict, reference: dict
) -> Figure:
    """The constructed model in one figure of two panels: (a) error probability against L with
    orthonormal embeddings (``plot_wv_error``), (b) accuracy against d with Gaussian embeddings
    (``plot_wv_random_embeddings``); each legend under its panel."""
    fig, axes = new_figure(ncols=2, width=3.75, height=2.7)
    plot_wv_error(Ls, curves, title="(a) orthonormal $W_E$", ax=axes[0])
    plot_wv_random_embeddings(ds, accuracy, reference, title="(b) Gaussian $W_E$, $L=64$", ax=axes[1])
    return fig


def hebbian_value_matrix(W_E: torch.Tensor, contexts: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The value matrix a Hebbian rule stores from a sample (exercise ex-wv-hebbian):

        W = (1/n) sum_r W_E(y_r) h_r^T,   h_r = (1/L) sum_l W_E(x_{r,l})   (uniform attention)

    for ``W_E [V, d]``, ``contexts LongTensor[n, L]`` and ``targets LongTensor[n]``; ``[d, d]``.
    Its expectation is ``(1/V) W_E^T Pbar W_E``, the first term of one gradient step."""
    E = _check_embedding("W_E", W_E, False, warn=False).double()
    V = E.shape[0]
    for name, t, ndim in (("contexts", contexts, 2), ("targets", targets, 1)):
        if not isinstance(t, torch.Tensor) or t.dtype != torch.long or t.ndim != ndim or t.numel() == 0:
            raise ValueError(f"{name} must be a non-empty LongTensor with {ndim} dimensions")
        if int(t.min()) < 0 or int(t.max()) >= V:
            raise ValueError(
                f"{name} must hold token ids in 0..{V - 1} (V = {V} rows of W_E [V, d]; is W_E "
                f"transposed?), got ids up to {int(t.max())}"
            )
    if targets.shape[0] != contexts.shape[0]:
        raise ValueError(
            f"targets must have one entry per row of contexts [n, L] (n = {contexts.shape[0]}), got "
            f"{targets.shape[0]}; is contexts transposed?"
        )
    counts = torch.zeros(contexts.shape[0], V, dtype=torch.float64)
    counts.scatter_add_(1, contexts, torch.ones(contexts.shape, dtype=torch.float64))
    H = counts @ E / contexts.shape[1]  # [n, d]: h_r
    return E[targets].T @ H / contexts.shape[0]


def check_hebbian_value_matrix(fn: Callable) -> CheckResult:
    """Check ``fn(W_E [V, d], contexts [n, L], targets [n]) -> Tensor[d, d]`` against
    ``hebbian_value_matrix`` on random samples (d below and above V, d != V so a transpose shows)."""
    g = torch.Generator().manual_seed(47)
    cases = []
    for V, d, n, L in [(2, 3, 1, 1), (4, 3, 5, 2), (8, 5, 16, 6), (8, 12, 40, 3), (16, 7, 64, 9)]:
        E = torch.randn(V, d, generator=g, dtype=torch.float64)
        cases.append((E, torch.randint(V, (n, L), generator=g), torch.randint(V, (n,), generator=g)))
    return run_cases(
        "check_hebbian_value_matrix",
        fn,
        hebbian_value_matrix,
        cases,
        rtol=1e-6,
        atol=1e-10,
        describe=lambda c: (
            f"W_E of shape {tuple(c[0].shape)}, {c[1].shape[0]} contexts of length {c[1].shape[1]}"
        ),
    )


def wv_error_random_ties_sphere1(m: int, L: int) -> float:
    """Error probability of the constructed model (orthonormal embeddings, uniform attention,
    noise-free N_1 task) when ties are broken uniformly at random (exercise ex-wv-random-ties):

        (m - 1) m^{-L} (1 + m (2^L - 2) / 4)

    (one distinct context token: m tokens tie; exactly two: two tie; three or more: none)."""
    m = check_int("m", m, 1, 64)
    L = check_int("L", L, 1, 4096)
    return float((m - 1) * (1 + Fraction(m * (2**L - 2), 4)) / Fraction(m) ** L)


def check_sphere_error_random_ties(fn: Callable) -> CheckResult:
    """Check ``fn(m, L) -> float`` against ``wv_error_random_ties_sphere1``."""
    cases = [
        (1, 3),
        (2, 1),
        (2, 7),
        (3, 1),
        (3, 2),
        (3, 4),
        (4, 3),
        (5, 6),
        (6, 10),
        (8, 8),
        (8, 20),
        (12, 5),
    ]
    return run_cases(
        "check_sphere_error_random_ties",
        fn,
        wv_error_random_ties_sphere1,
        cases,
        rtol=1e-9,
        atol=1e-15,
        describe=lambda c: f"m = {c[0]}, L = {c[1]}",
    )


ADAM_EPS = 1e-8  # torch.optim.Adam's default eps


def _one_step_reference(W_E, P):
    """The first plain gradient step's direction W_E^T C P W_E / V (C = I - 11^T / V)."""
    V = W_E.shape[0]
    C = torch.eye(V, dtype=torch.float64) - 1.0 / V
    return W_E.T.double() @ C @ P.double() @ W_E.double() / V


def adam_first_step(W_E: torch.Tensor, P: torch.Tensor, lr: float) -> torch.Tensor:
    """W_V after the first step of ``torch.optim.Adam`` (default betas, eps = 1e-8) with learning
    rate ``lr`` from W_V = 0, on the population cross-entropy with uniform attention, fixed
    embeddings ``W_E [V, d]`` and position law ``P[y, x]`` (exercise ex-wv-adam): with
    ``g = (1/V) W_E^T (I - 11^T/V) P W_E`` the negative gradient, ``lr * g / (|g| + eps)``."""
    lr = check_float("lr", lr, 0.0, None, lo_open=True)
    E = _check_embedding("W_E", W_E, False, warn=False)
    if not isinstance(P, torch.Tensor) or P.shape != (E.shape[0], E.shape[0]):
        raise ValueError(f"P must be a [V, V] tensor with V={E.shape[0]}")
    g = _one_step_reference(E, check_finite("P", P))
    return lr * g / (g.abs() + ADAM_EPS)


def _adam_cases():
    gen = torch.Generator().manual_seed(53)
    cases = []
    for V, d, lr in [(4, 3, 0.01), (8, 8, 0.1), (8, 12, 0.01), (16, 5, 1.0)]:
        P = torch.rand(V, V, generator=gen, dtype=torch.float64) ** 3
        P.fill_diagonal_(0.0)
        P = P / P.sum(1, keepdim=True)
        cases.append((torch.randn(V, d, generator=gen, dtype=torch.float64), P, lr))
    return cases


def check_adam_first_step(fn: Callable) -> CheckResult:
    """Check ``fn(W_E [V, d], P [V, V], lr) -> Tensor[d, d]`` against ``adam_first_step``. The
    tolerance (1e-4 of lr) accepts ``lr * sign(g)``, which differs only through eps."""
    return run_cases(
        "check_adam_first_step",
        fn,
        adam_first_step,
        _adam_cases(),
        compare=lambda e, g: close(e, g, rtol=1e-6, atol=1e-4 * float(e.abs().max())),
        describe=lambda c: (
            f"W_E of shape {tuple(c[0].shape)}, P of shape {tuple(c[1].shape)} "
            f"(rows sum to 1, zero diagonal), lr = {c[2]}"
        ),
    )
