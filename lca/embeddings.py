"""Chapter 5, embedding geometry: Hamming-distance spectra (Krawtchouk eigenvalues), the Gram
profile of trained embeddings against the Hamming distance, affine fits and eigen-gaps, the
chapter's figures and its exercise checkers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from ._validate import (
    ArgumentTypeError,
    check_finite,
    check_float,
    check_int,
    check_reals,
    check_size,
    warn_if_transposed,
)
from .checks import CheckResult, run_cases
from .latent import LatentSpace, hamming_ball, popcounts
from .model import OneLayerTransformer, check_model
from .report import load_stored
from .style import COLORS, CYCLE, DIVERGING_CMAP, SEQUENTIAL_CMAP, as_array, legend_below, new_figure
from .task import TaskSpec, check_spec
from .train import TrainConfig

# Matrices G[i, j] = g(D_H(i, j)) on {0,1}^m (token ids as in lca.latent) are diagonalised by the
# Walsh characters chi_s(z) = (-1)^(s.z): chi_s is an eigenvector with eigenvalue
#     lambda_w = sum_k g(k) K_k(w),   w = |s|,   K_k(w) = sum_j (-1)^j C(w, j) C(m - w, k - j)
# (Krawtchouk polynomials), so lambda_w has multiplicity C(m, w). For the affine law
# g(k) = b0 - b1 k: lambda_0 = 2^m (b0 - m b1 / 2), lambda_1 = 2^(m-1) b1, lambda_w = 0 for w >= 2.
# Proofs: book/proofs/geometry.md.


GEO_M_MAX = 12  # V x V matrices: 4096 x 4096 float64 is the largest we build
GRAM_LIMIT = 2**27  # V^2 (2E + m + 1) float64 entries (1 GiB) for the Gram matrices of E members
RAYLEIGH_LIMIT = 2**34  # E V^3 multiply-adds for weight_rayleigh (a few seconds)
EXPAND_LIMIT = 2**20  # eigenvalues in one expanded spectrum (V = 2^20 at most)


def krawtchouk(k: int, w: int, m: int) -> int:
    """The Krawtchouk number ``K_k(w) = sum_j (-1)^j C(w, j) C(m - w, k - j)`` (an exact int).

    ``K_k(w)`` is the sum of ``(-1)^(s.u)`` over the ``C(m, k)`` vectors u of weight k, for any fixed
    s of weight w: the eigenvalue of the distance-k adjacency matrix of the hypercube on the
    characters of weight w. Args: ``m`` in 1..64, ``k`` and ``w`` in 0..m.
    """
    m = check_int("m", m, 1, 64)
    k = check_int("k", k, 0, m)
    w = check_int("w", w, 0, m)
    return sum((-1) ** j * math.comb(w, j) * math.comb(m - w, k - j) for j in range(0, min(w, k) + 1))


def _binomials(m: int, dtype: torch.dtype) -> torch.Tensor:
    """``[m+1]``: the multiplicities C(m, w) of the character weights w = 0..m."""
    return torch.tensor([math.comb(m, w) for w in range(m + 1)], dtype=dtype)


def krawtchouk_matrix(m: int) -> torch.Tensor:
    """``LongTensor[m+1, m+1]`` with entry ``[k, w] = K_k(w)`` (rows: distance k, columns: weight w)."""
    m = check_int("m", m, 1, 64)
    return torch.tensor([[krawtchouk(k, w, m) for w in range(m + 1)] for k in range(m + 1)], dtype=torch.long)


def _profile(g, m: int) -> torch.Tensor:
    """A profile given as a sequence of m+1 numbers or a callable k -> number, as float64[m+1]."""
    if callable(g) and not isinstance(g, torch.Tensor):
        vals = [g(k) for k in range(m + 1)]
    else:
        vals = g
    try:
        prof = torch.as_tensor(vals, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(
            f"g must be a sequence of m+1={m + 1} numbers g(0..m) or a callable "
            f"k -> g(k), got {type(g).__name__}"
        ) from None
    if prof.numel() != m + 1:
        raise ValueError(f"g must hold m+1={m + 1} values g(0), ..., g(m), got {prof.numel()}")
    if not bool(torch.isfinite(prof).all()):
        raise ValueError("g must hold finite values")
    return prof


def hamming_kernel(g: ArrayLike | Callable, m: int) -> torch.Tensor:
    """``Tensor[V, V]`` (float64): ``G[i, j] = g(D_H(i, j))`` for the profile ``g`` (m+1 values or
    a callable k -> value), V = 2^m, m in 1..12."""
    m = check_int("m", m, 1, GEO_M_MAX)
    prof = _profile(g, m)
    return prof[LatentSpace(m).distances()]


def hamming_kernel_spectrum(g: ArrayLike | Callable, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues of ``G[i, j] = g(D_H(i, j))`` by character weight, from Krawtchouk numbers.

    Returns ``(eigenvalues float64[m+1], multiplicities LongTensor[m+1])``: entry w is
    ``lambda_w = sum_k g(k) K_k(w)``, the eigenvalue of every Walsh character of weight w, repeated
    ``C(m, w)`` times. Nothing V x V is built, so m may go up to 64.
    """
    m = check_int("m", m, 1, 64)
    prof = _profile(g, m)
    K = krawtchouk_matrix(m).double()
    lam = prof @ K
    mult = _binomials(m, torch.long)
    return lam, mult


def expand_spectrum(eigenvalues: ArrayLike, multiplicities: ArrayLike) -> torch.Tensor:
    """The full list of V eigenvalues (float64, largest first) from per-weight eigenvalues and
    their multiplicities (the output of ``hamming_kernel_spectrum``). The multiplicities are
    non-negative integers summing to at most 2^20."""
    lam = check_reals("eigenvalues", eigenvalues).flatten()
    mult = check_reals("multiplicities", multiplicities, integer=True).flatten()
    if lam.numel() != mult.numel():
        raise ValueError(
            f"multiplicities must have as many entries as eigenvalues ({lam.numel()}), got {mult.numel()}"
        )
    if mult.numel() and int(mult.min()) < 0:
        raise ValueError("multiplicities must be >= 0")
    check_size("multiplicities", int(mult.sum()), EXPAND_LIMIT, "eigenvalues (the sum of the multiplicities)")
    return torch.repeat_interleave(lam, mult).sort(descending=True).values


def walsh_characters(m: int) -> torch.Tensor:
    """``Tensor[V, V]`` (float64) of +-1: column s is the character ``chi_s(z) = (-1)^(s.z)``
    evaluated at every token z (token ids and s both in lca.latent's bit order)."""
    m = check_int("m", m, 1, GEO_M_MAX)
    t = torch.arange(2**m)
    parity = popcounts(m)[t[:, None] & t[None, :]] % 2
    return 1.0 - 2.0 * parity.double()


def affine_gram(m: int, b0: float, b1: float) -> torch.Tensor:
    """``Tensor[V, V]`` (float64): the affine law ``G[i, j] = b0 - b1 * D_H(i, j)``, m in 1..12."""
    m = check_int("m", m, 1, GEO_M_MAX)
    b0 = check_float("b0", b0)
    b1 = check_float("b1", b1)
    return hamming_kernel([b0 - b1 * k for k in range(m + 1)], m)


def affine_gram_spectrum(m: int, b0: float, b1: float) -> tuple[float, float]:
    """Closed form of the non-zero part of the affine law's spectrum: ``(lambda_0, lambda_1)`` =
    ``(2^m (b0 - m b1 / 2), 2^(m-1) b1)``; lambda_0 has eigenvector the all-ones vector,
    lambda_1 multiplicity m (the bit characters), every other eigenvalue is 0."""
    m = check_int("m", m, 1, 64)
    b0 = check_float("b0", b0)
    b1 = check_float("b1", b1)
    return 2.0**m * (b0 - m * b1 / 2), 2.0 ** (m - 1) * b1


def affine_gram_rank(m: int, b0: float, b1: float, tol: float = 1e-12) -> int:
    """Exact rank of ``b0 - b1 D_H``: ``m * [b1 != 0] + [b0 != m b1 / 2]`` (so at most m+1; m in
    the centred case b0 = m b1 / 2). ``tol`` is a relative tolerance for "== 0"."""
    lam0, lam1 = affine_gram_spectrum(m, b0, b1)
    tol = check_float("tol", tol, 0.0)
    scale = max(abs(b0), abs(b1) * m, 1e-300) * 2.0**m
    return m * int(abs(lam1) > tol * scale) + int(abs(lam0) > tol * scale)


def affine_embedding(m: int, b0: float, b1: float) -> torch.Tensor:
    """Embeddings realising the affine law: ``Tensor[V, m+1]`` (float64) with
    ``E @ E.T == b0 - b1 D_H``. Row z is ``(sqrt(b1/2) (2z - 1), sqrt(b0 - m b1 / 2))``; this needs the
    law to be a Gram matrix, i.e. ``b1 >= 0`` and ``b0 >= m b1 / 2`` (else ValueError)."""
    m = check_int("m", m, 1, GEO_M_MAX)
    b1 = check_float("b1", b1, 0.0)
    b0 = check_float("b0", b0)
    if b0 < m * b1 / 2:
        raise ValueError(
            f"b0 and b1 must satisfy b0 >= m b1 / 2 for the affine law to be a Gram matrix, got "
            f"b0={b0:g}, b1={b1:g} (m={m}: b0 must be at least {m * b1 / 2:g}, or b1 at most {2 * b0 / m:g})"
        )
    Z = LatentSpace(m).latents.double()
    const = torch.full((2**m, 1), math.sqrt(b0 - m * b1 / 2), dtype=torch.float64)
    return torch.cat([math.sqrt(b1 / 2) * (2 * Z - 1), const], dim=1)


def context_spectrum(spec: TaskSpec, tol: float = 1e-12) -> torch.Tensor:
    """Eigenvalues ``mu_w`` (float64 ``[m+1]``, w = 0..m) of a task's context law ``P[y, x]``.

    Needs a law that depends on (y, x) only through D_H(y, x) (Hamming spheres and balls, with or
    without uniform noise): then ``mu_w = sum_k p(k) K_k(w)`` with p(k) the probability of one
    particular token at distance k, and ``P chi_s = mu_|s| chi_s``. Raises ValueError for a law that
    is not a function of Hamming distance (clusters, custom masks). m in 1..12.
    """
    check_spec(spec)
    check_int("m", spec.m, 1, GEO_M_MAX)
    tol = check_float("tol", tol, 0.0)
    P = spec.context_law()
    D = spec.space.distances()
    p = torch.zeros(spec.m + 1, dtype=torch.float64)
    for k in range(spec.m + 1):
        vals = P[D == k]
        if float(vals.max() - vals.min()) > tol:
            raise ValueError(
                f"spec's context law is not a function of Hamming distance (at "
                f"distance {k} it ranges over {float(vals.min()):.3g}.."
                f"{float(vals.max()):.3g}); context_spectrum needs a Hamming "
                "sphere or ball neighbourhood"
            )
        p[k] = vals[0]
    return hamming_kernel_spectrum(p, spec.m)[0]


def margin_by_weight(mu: ArrayLike, nu: ArrayLike) -> torch.Tensor:
    """Contribution of each character weight to the target's mean logit advantage.

    For a context law with eigenvalues ``mu[w]`` and an association matrix M (``M[k, x]``: logit
    added to candidate k by context token x) whose mean Rayleigh quotients per weight are
    ``nu[w]``, uniform attention and the population-mean context give
        mean_y F[y, y] - mean_{y, k} F[y, k] = sum_{w >= 1} C(m, w) mu_w nu_w / 2^m,
    with F[y, k] = sum_x P[y, x] M[k, x]. Returns the terms (float64 ``[m+1]``, entry 0 is 0).
    """
    mu = check_reals("mu", mu).flatten()
    nu = check_reals("nu", nu).flatten()
    if mu.numel() < 2:
        raise ValueError(f"mu must hold m+1 >= 2 values, got {mu.numel()}")
    if nu.numel() != mu.numel():
        raise ValueError(f"nu must hold as many values as mu ({mu.numel()}), got {nu.numel()}")
    m = mu.numel() - 1
    mult = _binomials(m, torch.float64)
    out = mult * mu * nu / 2.0**m
    out[0] = 0.0
    return out


# Embedding geometry of a trained model. Everything takes either a model (OneLayerTransformer,
# single or ensemble) or an embedding tensor W_E [V, d] / [E, V, d] (row = token), works in float64,
# and returns one entry per ensemble member along a leading dimension when given an ensemble.


def _embeddings64(W_E) -> torch.Tensor:
    """W_E as float64 ``[E, V, d]`` (E = 1 for a single model or a 2-D tensor) and whether it was
    batched. A tensor (whose V is not known, unlike a model's) that looks transposed warns."""
    if isinstance(W_E, OneLayerTransformer):
        W = W_E.W_E.detach()
    elif isinstance(W_E, torch.Tensor):
        W = W_E.detach()
        if W.ndim in (2, 3):
            warn_if_transposed("W_E", W, stacklevel=4)
    else:
        raise ValueError(
            f"W_E must be a OneLayerTransformer or a tensor [V, d] / [E, V, d], got {type(W_E).__name__}"
        )
    if W.ndim not in (2, 3):
        raise ValueError(f"W_E must have shape [V, d] or [E, V, d], got {tuple(W.shape)}")
    V = W.shape[-2]
    if V < 2 or V & (V - 1) or V > 2**12:
        raise ValueError(f"W_E must have V = 2^m rows with m in 1..12, got V={V}")
    if not bool(torch.isfinite(W).all()):
        raise ValueError("W_E must hold finite values")
    batched = W.ndim == 3
    return W.double().cpu().reshape((-1,) + tuple(W.shape[-2:])), batched


def _check_gram_size(W: torch.Tensor) -> None:
    """ValueError naming W_E when the ``[E, V, V]`` Gram matrices (and the ``[V^2, m+1]``
    distance indicator of ``gram_profile``) would exceed ``GRAM_LIMIT`` entries."""
    E, V = W.shape[0], W.shape[1]
    m = V.bit_length() - 1
    check_size("W_E", V * V * (2 * E + m + 1), GRAM_LIMIT, f"Gram entries (V^2 (2E + m + 1), V={V}, E={E})")


def _unbatch(x, batched):
    return x if batched else x[0]


def gram_matrix(W_E: OneLayerTransformer | torch.Tensor) -> torch.Tensor:
    """``G = W_E W_E^T``: ``Tensor[V, V]`` (or ``[E, V, V]``) of inner products between token
    embeddings, float64."""
    W, batched = _embeddings64(W_E)
    _check_gram_size(W)
    return _unbatch(W @ W.transpose(1, 2), batched)


@dataclass
class GramProfile:
    """Inner products of token embeddings grouped by Hamming distance k = 0..m.

    ``mean[k]`` and ``std[k]`` are the mean and standard deviation of ``<W_E(i), W_E(j)>`` over the
    ``count[k] = V C(m, k)`` ordered pairs (i, j) at distance k (k = 0: the squared norms).
    Shapes ``[m+1]``, or ``[E, m+1]`` for an ensemble (count is always ``[m+1]``).
    """

    mean: torch.Tensor
    std: torch.Tensor
    count: torch.Tensor

    @property
    def m(self) -> int:
        return self.count.numel() - 1


def gram_profile(W_E: OneLayerTransformer | torch.Tensor) -> GramProfile:
    """Mean and spread of ``<W_E(i), W_E(j)>`` per Hamming distance D_H(i, j) (see ``GramProfile``)."""
    W, batched = _embeddings64(W_E)
    _check_gram_size(W)
    V = W.shape[1]
    m = V.bit_length() - 1
    D = LatentSpace(m).distances().flatten()
    G = (W @ W.transpose(1, 2)).reshape(W.shape[0], -1)
    count = torch.bincount(D, minlength=m + 1)
    onehot = torch.nn.functional.one_hot(D, m + 1).double()  # [V*V, m+1]
    mean = (G @ onehot) / count
    second = (G**2 @ onehot) / count
    var = (second - mean**2).clamp(min=0) * count / (count - 1).clamp(min=1)
    return GramProfile(_unbatch(mean, batched), _unbatch(var.sqrt(), batched), count)


@dataclass
class AffineFit:
    """Least-squares fit of the affine law ``<W_E(i), W_E(j)> ~ b0 - b1 D_H(i, j)`` over all V^2
    ordered pairs. ``r2`` is the coefficient of determination on the pairs (spread included);
    ``r2_profile`` the one on the mean profile, weighted by pair counts (shape only). With
    ``parity=True`` the model is ``b0 - b1 k + c (-1)^k`` and ``c`` holds the parity coefficient.
    Each field is a float, or a list of floats for an ensemble."""

    b0: object
    b1: object
    r2: object
    r2_profile: object
    c: object = None


def affine_fit(W_E: OneLayerTransformer | torch.Tensor, parity: bool = False) -> AffineFit:
    """Fit the affine law to the Gram matrix of ``W_E`` (model or tensor); see ``AffineFit``.

    The least-squares fit over all pairs only sees the mean profile (the design depends on the pair
    only through k), so it is computed from ``gram_profile`` exactly.
    """
    if not isinstance(parity, bool):
        raise ValueError(f"parity must be True or False, got {parity!r}")
    prof = gram_profile(W_E)
    batched = prof.mean.ndim == 2
    mean = prof.mean if batched else prof.mean[None]
    std = prof.std if batched else prof.std[None]
    m = prof.m
    n = prof.count.double()
    k = torch.arange(m + 1, dtype=torch.float64)
    cols = [torch.ones_like(k), -k] + ([(-1.0) ** k] if parity else [])
    X = torch.stack(cols, 1)  # [m+1, p]
    sw = n.sqrt()[:, None]
    out = {"b0": [], "b1": [], "r2": [], "r2_profile": [], "c": []}
    for e in range(mean.shape[0]):
        beta = torch.linalg.lstsq(X * sw, (mean[e] * n.sqrt())[:, None]).solution.flatten()
        fit = X @ beta
        grand = (n * mean[e]).sum() / n.sum()
        ss_between = (n * (mean[e] - grand) ** 2).sum()
        ss_within = ((n - 1) * std[e] ** 2).sum()
        ss_res_mean = (n * (mean[e] - fit) ** 2).sum()
        r2 = 1 - (ss_res_mean + ss_within) / (ss_between + ss_within)
        r2p = 1 - ss_res_mean / ss_between if ss_between > 0 else torch.tensor(float("nan"))
        out["b0"].append(float(beta[0]))
        out["b1"].append(float(beta[1]))
        out["r2"].append(float(r2))
        out["r2_profile"].append(float(r2p))
        out["c"].append(float(beta[2]) if parity else None)
    if not batched:
        out = {key: v[0] for key, v in out.items()}
    return AffineFit(**out)


def embedding_spectrum(W_E: OneLayerTransformer | torch.Tensor) -> torch.Tensor:
    """Eigenvalues of ``W_E^T W_E`` (``[d, d]``), largest first, float64 ``[d]`` (or ``[E, d]``).
    They are the non-zero eigenvalues of the Gram matrix ``W_E W_E^T`` and the squared singular
    values of W_E."""
    W, batched = _embeddings64(W_E)
    ev = torch.linalg.eigvalsh(W.transpose(1, 2) @ W).flip(-1).clamp(min=0)
    return _unbatch(ev, batched)


def eigen_gap(eigenvalues: ArrayLike, k: int) -> torch.Tensor:
    """Ratio ``lambda_k / lambda_{k+1}`` of the k-th to the (k+1)-th largest eigenvalue (k >= 1),
    for a spectrum ``[n]`` or a batch ``[E, n]`` sorted largest first (as ``embedding_spectrum``
    returns). A large ratio after k = m (or m+1) is the signature of a rank-m (m+1) structure."""
    ev = check_reals("eigenvalues", eigenvalues)
    if ev.ndim not in (1, 2):
        raise ValueError(f"eigenvalues must have shape [n] or [E, n], got {tuple(ev.shape)}")
    if ev.shape[-1] < 2:
        raise ValueError(f"eigenvalues must hold at least 2 values per spectrum, got shape {tuple(ev.shape)}")
    if bool((ev < 0).any()):
        raise ValueError("eigenvalues must be >= 0 (a spectrum of W_E^T W_E), got a negative entry")
    k = check_int("k", k, 1, ev.shape[-1] - 1)
    return ev[..., k - 1] / ev[..., k].clamp(min=1e-300)


def weight_rayleigh(M: torch.Tensor) -> torch.Tensor:
    """Mean Rayleigh quotient of a token-by-token matrix per Walsh-character weight.

    ``M`` is ``[V, V]`` or ``[E, V, V]`` (any square matrix indexed by tokens, e.g. a Gram matrix or
    ``association_matrix``). Returns float64 ``[m+1]`` (or ``[E, m+1]``): entry w is the mean of
    ``chi_s^T M chi_s / V`` over the C(m, w) characters s of weight w. For a Hamming kernel
    ``M = g(D_H)`` this is exactly its Krawtchouk eigenvalue lambda_w; for any M it equals the
    Krawtchouk eigenvalue of M's mean profile (book/proofs/geometry.md, lem-geo-profile-projection).
    """
    if not isinstance(M, torch.Tensor):
        raise ValueError(f"M must be a tensor [V, V] or [E, V, V], got {type(M).__name__}")
    if M.ndim not in (2, 3) or M.shape[-1] != M.shape[-2]:
        raise ValueError(f"M must have shape [V, V] or [E, V, V], got {tuple(M.shape)}")
    V = M.shape[-1]
    if V < 2 or V & (V - 1) or V > 2**12:
        raise ValueError(f"M must be V x V with V = 2^m, m in 1..12, got V={V}")
    check_size("M", M.numel() * V, RAYLEIGH_LIMIT, f"multiply-adds (E V^3, V={V})")
    check_finite("M", M)
    batched = M.ndim == 3
    A = M.detach().double().cpu().reshape(-1, V, V)
    m = V.bit_length() - 1
    H = walsh_characters(m)  # [V, V], column s
    q = ((A @ H) * H).sum(1) / V  # [E, V(s)]: chi_s^T M chi_s / V
    onehot = torch.nn.functional.one_hot(LatentSpace(m).popcount(), m + 1).double()
    return _unbatch((q @ onehot) / onehot.sum(0), batched)


def weight_spectrum(W_E: OneLayerTransformer | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Energy of the Gram matrix ``W_E W_E^T`` per Walsh-character weight w = 0..m.

    Returns ``(rayleigh, share)``, each float64 ``[m+1]`` (or ``[E, m+1]``): ``rayleigh[w]`` is the
    mean of ``chi_s^T G chi_s / V`` over the C(m, w) characters of weight w, which equals the
    Krawtchouk eigenvalue ``sum_k gbar(k) K_k(w)`` of the mean profile gbar; ``share[w]`` is the
    fraction of trace(G) carried by weight w, ``C(m, w) rayleigh[w] / trace(G)`` (the shares sum
    to 1).
    """
    W, batched = _embeddings64(W_E)
    _check_gram_size(W)
    V = W.shape[1]
    m = V.bit_length() - 1
    ray = weight_rayleigh(W @ W.transpose(1, 2))
    mult = _binomials(m, torch.float64)
    trace = (W**2).sum((1, 2))[:, None]
    return _unbatch(ray, batched), _unbatch(ray * mult / trace, batched)


def association_matrix(model: OneLayerTransformer) -> torch.Tensor:
    """``M[k, x] = W_U(k)^T W_V W_E(x)`` (float64 ``[V, V]`` or ``[E, V, V]``): the logit that one
    context token x adds to candidate k. With uniform attention (W_KQ = 0) the logits of a context
    are the average of the columns ``M[:, x_l]``; with the tied unembedding W_U = W_E and W_V = I,
    M is the Gram matrix."""
    check_model(model)
    W_E = model.W_E.detach().double().cpu()
    W_U = model.unembedding.detach().double().cpu()
    W_V = model.W_V.detach().double().cpu()
    return W_U @ W_V @ W_E.transpose(-1, -2)


def twisted_weights(m: int) -> tuple[int, ...]:
    """The character weights of the parity-twisted affine law ``b0 - b1 k + (-1)^k (c0 - c1 k)``:
    ``(0, 1, m-1, m)``, since ``K_0(k) = 1``, ``K_1(k) = m - 2k``, ``K_m(k) = (-1)^k`` and
    ``K_{m-1}(k) = (-1)^k (m - 2k)``. The affine law itself is ``(0, 1)``. m in 2..12."""
    m = check_int("m", m, 2, GEO_M_MAX)
    return (0, 1, m - 1, m)


@dataclass
class WeightVariance:
    """How the variance of the entries of a token-by-token matrix M splits by character weight.

    With SS the sum of squares of M's entries about their mean and ``lambda_w`` the Krawtchouk
    eigenvalues of M's mean profile, ``share[w] = C(m, w) lambda_w^2 / SS`` for w = 1..m (entry 0
    is 0) and ``remainder = ||M - G_gbar||_F^2 / SS``, the part that no function of Hamming distance
    explains; together they sum to 1 (book/proofs/geometry.md, cor-geo-variance). Shapes ``[m+1]``
    and ``[]``, or ``[E, m+1]`` and ``[E]`` for a batch.
    """

    share: torch.Tensor
    remainder: torch.Tensor

    def r2(self, weights) -> torch.Tensor:
        """R^2 over the V^2 pairs of the least-squares profile spanned by ``K_w(k)``, w in
        ``weights`` (the constant always included): the sum of ``share[w]`` over those weights."""
        return self.share[..., self._columns(weights)].sum(-1)

    def r2_profile(self, weights) -> torch.Tensor:
        """R^2 of the same fit on the mean profile (pairs weighted by their number): ``r2`` divided
        by ``1 - remainder``, the most that any function of Hamming distance explains."""
        return self.r2(weights) / (1 - self.remainder).clamp(min=1e-300)

    def _columns(self, weights) -> list[int]:
        m = self.share.shape[-1] - 1
        if isinstance(weights, (str, bytes)) or not hasattr(weights, "__iter__"):
            raise ArgumentTypeError(
                f"weights must be a sequence of character weights 0..{m}, got {weights!r}"
            )
        return sorted({check_int("weights", w, 0, m) for w in weights})


def weight_variance(M: torch.Tensor) -> WeightVariance:
    """Split the variance of M's entries into Hamming-invariant parts, one per character weight,
    and a remainder (see ``WeightVariance``). ``M`` is ``[V, V]`` or ``[E, V, V]``: a Gram matrix
    (``gram_matrix``), an ``association_matrix`` or any matrix indexed by tokens."""
    lam = weight_rayleigh(M)  # validates M
    A = M.detach().double().cpu().reshape((-1,) + tuple(M.shape[-2:]))
    lam2 = lam.reshape(A.shape[0], -1)
    m = lam2.shape[1] - 1
    mult = _binomials(m, torch.float64)
    ss = (A**2).sum((1, 2)) - lam2[:, 0] ** 2
    ok = ss > 1e-12 * (A**2).sum((1, 2)).clamp(min=1e-300)
    share = torch.where(ok[:, None], mult * lam2**2 / ss.clamp(min=1e-300)[:, None], torch.zeros_like(lam2))
    share[:, 0] = 0.0
    rem = torch.where(ok, (1 - share.sum(1)).clamp(min=0.0), torch.zeros_like(ss))
    batched = M.ndim == 3
    return WeightVariance(_unbatch(share, batched), _unbatch(rem, batched))


def weight_profile(M: torch.Tensor, weights) -> torch.Tensor:
    """The least-squares profile of M restricted to character weights ``weights`` (the constant
    w = 0 always included): ``g(k) = sum_w lambda_w K_w(k) / V`` with lambda_w the Krawtchouk
    eigenvalues of M's mean profile. float64 ``[m+1]`` (or ``[E, m+1]``). With every weight it is
    the mean profile itself; with ``twisted_weights(m)`` it is the parity-twisted affine fit."""
    lam = weight_rayleigh(M)
    m = lam.shape[-1] - 1
    cols = WeightVariance(torch.zeros(m + 1), torch.zeros(()))._columns(list(weights) + [0])
    K = krawtchouk_matrix(m).double()  # [k, w] = K_k(w); K_w(k) = K[w, k]
    keep = torch.zeros(m + 1, dtype=torch.float64)
    keep[cols] = 1.0
    return (lam * keep) @ K / 2.0**m


def geometry_summary(model: OneLayerTransformer) -> list[dict]:
    """Per member of a (single or ensemble) model on V = 2^m tokens: how Hamming-like its embedding
    geometry is. Keys: ``share`` (``weight_variance`` of the Gram matrix, w = 0..m), ``remainder``
    (its non-Hamming part), ``assoc_remainder`` (the same for ``association_matrix``), ``r2_affine``
    and ``r2_twisted`` (over the pairs), ``r2p_affine`` and ``r2p_twisted`` (over the mean profile),
    ``profile`` (the mean profile in units of its k = 0 value), ``spectrum`` (eigenvalues of
    ``W_E^T W_E``, largest first), ``indefinite`` (share of the absolute eigenvalue mass of the
    symmetric part of the association matrix on negative eigenvalues: 0 for W_V = I, tied)."""
    check_model(model)
    G = gram_matrix(model)
    A = association_matrix(model)
    if G.ndim == 2:
        G, A = G[None], A[None]
    m = G.shape[-1].bit_length() - 1
    if m < 2:
        raise ValueError(f"model must have V = 2^m tokens with m >= 2, got V={G.shape[-1]}")
    var_g, var_a = weight_variance(G), weight_variance(A)
    spectra = embedding_spectrum(model.W_E.detach().reshape((-1,) + tuple(model.W_E.shape[-2:])))
    out = []
    for e in range(G.shape[0]):
        vg = WeightVariance(var_g.share[e], var_g.remainder[e])
        prof = weight_profile(G[e], range(m + 1))
        sym = torch.linalg.eigvalsh((A[e] + A[e].T) / 2)
        row = {
            "share": vg.share.tolist(),
            "remainder": float(vg.remainder),
            "assoc_remainder": float(var_a.remainder[e]),
        }
        for law, weights in (("affine", (0, 1)), ("twisted", twisted_weights(m))):
            row[f"r2_{law}"], row[f"r2p_{law}"] = float(vg.r2(weights)), float(vg.r2_profile(weights))
        row["profile"], row["spectrum"] = (prof / prof[0]).tolist(), spectra[e].tolist()
        row["indefinite"] = float(sym.clamp(max=0).abs().sum() / sym.abs().sum().clamp(min=1e-300))
        out.append(row)
    return out


# The chapter's budget-and-factor study (bench/05_trained_geometry.py writes the file).
GEOMETRY_SWEEP = Path(__file__).with_name("data") / "trained_geometry.json"
GEOMETRY_VARIANTS = {"trained W_V": {}, "W_V = I": {"train_V": False, "WV_init": "identity"}}
NEIGHBOURHOODS = {"N_1": None, "ball2": hamming_ball(2)}


def geometry_config(setting: dict, steps: int, device: str = "cpu") -> TrainConfig:
    """The TrainConfig of one setting of the study: ``setting`` holds ``m`` and ``d`` and
    optionally ``L`` (64), ``noise`` (0), ``neighbourhood`` (``"N_1"`` or ``"ball2"``), ``lr``
    (0.01), ``tied`` (True) and ``batch_size`` (256); Adam, W_KQ trained from 0."""
    if not isinstance(setting, dict):
        raise ArgumentTypeError(f"setting must be a dict of options, got {type(setting).__name__}")
    known = {"m", "d", "L", "noise", "neighbourhood", "lr", "tied", "batch_size"}
    if set(setting) - known or not {"m", "d"} <= set(setting):
        raise ValueError(
            f"setting must have keys m, d and optionally {sorted(known - {'m', 'd'})}, got {sorted(setting)}"
        )
    nb = setting.get("neighbourhood", "N_1")
    if nb not in NEIGHBOURHOODS:
        raise ValueError(f"setting['neighbourhood'] must be one of {sorted(NEIGHBOURHOODS)}, got {nb!r}")
    extra = {} if NEIGHBOURHOODS[nb] is None else {"neighbourhood": NEIGHBOURHOODS[nb]}
    task = TaskSpec(m=setting["m"], L=setting.get("L", 64), noise=setting.get("noise", 0.0), **extra)
    kw = {
        "batch_size": setting.get("batch_size", 256),
        "lr": setting.get("lr", 0.01),
        "tied": setting.get("tied", True),
    }
    return TrainConfig(
        task=task, d=setting["d"], steps=steps, eval_every=max(1, steps // 8), device=device, **kw
    )


def load_geometry_sweep(path: str | Path | None = None) -> dict:
    """The stored results of ``bench/05_trained_geometry.py`` (``GEOMETRY_SWEEP`` by default):
    ``{"settings": {name: setting}, "runs": [one dict per trained member], ...}``."""
    return load_stored(GEOMETRY_SWEEP if path is None else path, "bench/05_trained_geometry.py")


def plot_distance_and_gram(D: ArrayLike, G: ArrayLike, title: str = "") -> Figure:
    """Two heat maps side by side: Hamming distances ``D [V, V]`` and a Gram matrix ``G [V, V]``
    (tokens in id order). ``title``, if given, becomes a figure title (the book's captions say it
    instead)."""
    fig, axes = new_figure(2, 1, width=3.75, height=2.6)
    for ax, M, name, cmap in (
        (axes[0], D, r"distance $D_{\mathrm{H}}(i,j)$", SEQUENTIAL_CMAP),
        (axes[1], G, r"inner product $\langle e_i, e_j\rangle$", DIVERGING_CMAP),
    ):
        M = as_array(M)
        lim = abs(M).max() or 1.0
        kw = dict(vmin=-lim, vmax=lim) if cmap == DIVERGING_CMAP else {}
        im = ax.imshow(M, cmap=cmap, **kw)
        ax.set_xlabel("token $j$")
        ax.set_ylabel("token $i$")
        ax.set_title(name)
        ax.grid(False)
        fig.colorbar(im, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def _math_label(text: str) -> str:
    """``W_V`` in a variant's name as mathtext."""
    return text.replace("W_V", "$W_V$")


def plot_hamming_inner(
    panels: dict,
    m: int | None = None,
    title: str = "",
    ncols: int | None = None,
    height: float = 3.1,
) -> Figure:
    """Fig. 3(b)-style panels: mean inner product of two token embeddings against their Hamming
    distance, one panel per variant (each panel's m is read from the length of its profile; ``m``
    is kept for compatibility). ``ncols``: panels per row (default: all in one row, folded into a
    grid beyond three). One legend under the panels; each panel's title quotes the R^2 values.

    ``panels`` maps a panel title to a dict with ``mean`` and ``std`` (``[S, m+1]``: per seed, the
    mean and the spread over pairs at each distance), ``b0``, ``b1`` (the affine fit to the
    seed-averaged profile) and ``r2`` (the R^2 the title quotes, that of the mean profile), and
    optionally ``twisted`` (``[m+1]``, the parity-twisted fit) with its ``r2_twisted``.
    ``title``, if given, becomes a figure title; ``height`` is one panel's height in inches.
    """
    n = len(panels)
    ncols = n if ncols is None else max(1, min(int(ncols), n))
    nrows = -(-n // ncols)
    fig, axes = new_figure(ncols, nrows, width=3.75, height=height, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, (name, p) in zip(axes.flat, panels.items()):
        mean, std = np.atleast_2d(as_array(p["mean"])), np.atleast_2d(as_array(p["std"]))
        k = np.arange(mean.shape[1])
        for s in range(mean.shape[0]):
            ax.plot(k, mean[s], color=COLORS["sky"], lw=0.8, alpha=0.7, label="one seed" if s == 0 else None)
        bars = dict(fmt="o", color=COLORS["blue"], capsize=3, label="mean (bars: spread over pairs)")
        ax.errorbar(k, mean.mean(0), yerr=std.mean(0), **bars)
        affine = p["b0"] - p["b1"] * k
        ax.plot(k, affine, "--", color=COLORS["vermillion"], label="affine law")
        fits = f"affine $R^2$ = {p['r2']:.1f}"
        if p.get("twisted") is not None:
            ax.plot(k, as_array(p["twisted"]), ":", color=COLORS["green"], lw=2, label="parity-twisted law")
            fits += f", twisted {p['r2_twisted']:.1f}"
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xlabel("Hamming distance $k$")
        ax.set_ylabel(r"$\langle W_E(i), W_E(j)\rangle$")
        ax.set_title(f"{_math_label(name)}\n{fits}")
        ax.set_xticks(k[:: max(1, len(k) // 5)])
    n_labels = len(axes.flat[0].get_legend_handles_labels()[1])
    legend_below(fig, axes.flat[0], ncols=3 if n_labels == 3 else 2)
    if title:
        fig.suptitle(title)
    return fig


def plot_profile_grid(profiles: dict, title: str = "") -> Figure:
    """Mean Hamming profiles in units of g(0), one panel per m, one colour per variant, one line
    style per training budget, with the seeds' range shaded; one legend under the panels.

    ``profiles`` maps a panel title to a dict ``(variant, steps) -> [S, m+1]`` (one row per seed).
    ``title``, if given, becomes a figure title.
    """
    fig, axes = new_figure(len(profiles), 1, width=2.5, height=2.4)
    axes = np.atleast_1d(axes)
    variants = sorted({v for curves in profiles.values() for v, _ in curves})
    budgets = sorted({b for curves in profiles.values() for _, b in curves})
    for ax, (name, curves) in zip(axes, profiles.items()):
        for (variant, steps), rows in curves.items():
            rows = np.atleast_2d(as_array(rows))
            k = np.arange(rows.shape[1])
            color = CYCLE[variants.index(variant)]
            style = ("-", "--", ":")[budgets.index(steps) % 3]
            label = f"{_math_label(variant)}, {steps} steps"
            ax.plot(k, rows.mean(0), style, marker="o", ms=3, color=color, label=label)
            ax.fill_between(k, rows.min(0), rows.max(0), color=color, alpha=0.15, lw=0)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(k[:: max(1, len(k) // 4)])
        ax.set_xlabel("Hamming distance $k$")
        ax.set_title(name)
    axes[0].set_ylabel(r"$\bar g(k) / \bar g(0)$")
    legend_below(fig, axes[0], ncols=2)
    if title:
        fig.suptitle(title)
    return fig


def plot_geometry_study(rows: dict, title: str = "") -> Figure:
    """The factor study: per setting (one row each) and variant (one panel each), the part of the
    Gram matrix's variance over pairs that a function of Hamming distance explains (the ceiling),
    that the parity-twisted law explains and that the affine law explains; filled markers at the
    longer budget, open at the shorter, bars the range over seeds; one legend under the panels.

    ``rows`` maps a variant to a dict setting -> dict steps -> dict quantity -> ``[S]`` values,
    quantities ``"hamming"``, ``"twisted"``, ``"affine"``. ``title``, if given, becomes a figure
    title.
    """
    variants = list(rows)
    height = 0.28 * max(len(r) for r in rows.values()) + 1.1
    fig, axes = new_figure(len(variants), 1, width=3.75, height=height, sharey=True)
    axes = np.atleast_1d(axes)
    marks = {"hamming": ("s", COLORS["black"]), "twisted": ("D", COLORS["green"])}
    marks["affine"] = ("o", COLORS["vermillion"])
    names = {
        "hamming": r"any function of $D_{\mathrm{H}}$",
        "twisted": "parity-twisted law",
        "affine": "affine law",
    }
    for ax, variant in zip(axes, variants):
        settings = list(rows[variant])
        for i, setting in enumerate(settings):
            budgets = sorted(rows[variant][setting])
            for j, steps in enumerate(budgets):
                last = j == len(budgets) - 1
                for q, (marker, color) in marks.items():
                    vals = as_array(rows[variant][setting][steps][q])
                    y, x = i + (j - (len(budgets) - 1) / 2) * 0.28, vals.mean()
                    style = dict(fmt=marker, ms=5, color=color, mfc=color if last else "white", lw=0.8)
                    label = names[q] if i == 0 and last else None
                    ax.errorbar(x, y, xerr=[[x - vals.min()], [vals.max() - x]], label=label, **style)
        ax.set_yticks(range(len(settings)))
        ax.set_yticklabels([st.replace("N_1", r"$\mathcal{N}_1$") for st in settings])
        ax.tick_params(axis="y", labelleft=ax is axes[0])
        ax.set_ylim(len(settings) - 0.5, -0.5)
        ax.set_xlim(-0.02, 1.02)
        ax.set_xticks([0, 0.5, 1])
        ax.set_xlabel("$R^2$ over all pairs")
        ax.set_title(_math_label(variant))
    legend_below(fig, axes[0], ncols=3)
    if title:
        fig.suptitle(title)
    return fig


def plot_spectra(spectra: dict, marks: dict | None = None, title: str = "", ncols: int = 2) -> Figure:
    """Normalised spectra ``lambda_i / lambda_1`` of ``W_E^T W_E``, one panel per setting, ``ncols``
    panels per row, one legend under the panels.

    ``spectra`` maps a panel title (e.g. ``"m=8, d=32"``) to a dict label -> eigenvalues ``[d]``
    or ``[S, d]`` (largest first; several seeds: their mean, with the range shaded); ``marks`` maps
    a panel title to an index drawn as a dotted line (e.g. m). ``title``, if given, becomes a
    figure title.
    """
    n = len(spectra)
    ncols = max(1, min(int(ncols), n))
    fig, axes = new_figure(ncols, -(-n // ncols), width=3.75, height=2.2, squeeze=False, sharey=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, (name, curves) in zip(axes.flat, spectra.items()):
        for color, (label, ev) in zip(CYCLE, curves.items()):
            ev = np.atleast_2d(as_array(ev))
            ev = np.clip(ev / ev[:, :1], 1e-4, None)
            i = np.arange(1, ev.shape[1] + 1)
            ax.plot(i, ev.mean(0), "o-", ms=2.5, lw=1, color=color, label=_math_label(label))
            if ev.shape[0] > 1:
                ax.fill_between(i, ev.min(0), ev.max(0), color=color, alpha=0.2, lw=0)
        if marks and name in marks:
            ax.axvline(marks[name] + 0.5, ls=":", color="black", label="after index $m$")
        ax.set_yscale("log")
        ax.set_title(name)
    for ax in axes[-1]:
        ax.set_xlabel("index $i$ (largest first)")
    for ax in axes[:, 0]:
        ax.set_ylabel(r"$\lambda_i / \lambda_1$")
    legend_below(fig, axes.flat[0])
    if title:
        fig.suptitle(title)
    return fig


def plot_weight_spectrum(rows: dict, m: int, title: str = "") -> Figure:
    """Per-weight bars: the context law's eigenvalues mu_w next to the learned association's mean
    Rayleigh quotients nu_w (each normalised by its largest absolute value); one row of bars per
    entry of ``rows``, one legend under the panels.

    ``rows`` maps a row title to a dict with ``mu`` ([m+1]) and ``nu`` (label -> [m+1]).
    ``title``, if given, becomes a figure title.
    """
    fig, axes = new_figure(1, len(rows), width=7.5, height=1.75, sharex=True)
    axes = np.atleast_1d(axes)
    w = np.arange(m + 1)
    for ax, (name, row) in zip(axes, rows.items()):
        series = {r"neighbourhood $\mu_w$": row["mu"], **row["nu"]}
        width = 0.8 / len(series)
        for j, (color, (label, vals)) in enumerate(zip(CYCLE, series.items())):
            v = as_array(vals)
            v = v / (abs(v).max() or 1.0)
            ax.bar(w + (j - (len(series) - 1) / 2) * width, v, width, color=color, label=label)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(w)
        ax.set_ylim(-1.1, 1.1)
        ax.set_yticks([-1, 0, 1])
        ax.set_ylabel("normalised")
        ax.set_title(name)
    axes[-1].set_xlabel("character weight $w$")
    legend_below(fig, axes[0], ncols=3)
    if title:
        fig.suptitle(title)
    return fig


def plot_hamming_kernel(
    profile: ArrayLike, eigenvalues: ArrayLike, multiplicities: ArrayLike, title: str = ""
) -> Figure:
    """A profile g(k) (left) and the Krawtchouk eigenvalues of g(D_H) per weight w (right, bars
    annotated with their multiplicities C(m, w))."""
    g, lam, mult = as_array(profile), as_array(eigenvalues), as_array(multiplicities).astype(int)
    m = len(g) - 1
    fig, axes = new_figure(2, 1, width=4.4, height=2.8)
    axes[0].plot(np.arange(m + 1), g, "o-", color=COLORS["blue"], label="$g(k)$")
    axes[0].axhline(0, color="black", lw=0.6)
    axes[0].set_xlabel("Hamming distance k")
    axes[0].set_ylabel("inner product g(k)")
    axes[0].set_title("the profile")
    axes[0].legend(fontsize=8)
    colors = [COLORS["vermillion"] if v < -1e-9 * max(abs(lam).max(), 1) else COLORS["green"] for v in lam]
    axes[1].bar(np.arange(m + 1), lam, color=colors, label=r"$\lambda_w$ (red: negative)")
    for w in range(m + 1):
        axes[1].annotate(f"x{mult[w]}", (w, lam[w]), ha="center", va="bottom", fontsize=7)
    axes[1].axhline(0, color="black", lw=0.6)
    axes[1].set_xlabel("character weight w")
    axes[1].set_ylabel(r"eigenvalue $\lambda_w$")
    rank = int(sum(mult[w] for w in range(m + 1) if abs(lam[w]) > 1e-9 * max(abs(lam).max(), 1)))
    axes[1].set_title(f"Krawtchouk spectrum (rank {rank} of {2**m})")
    axes[1].legend(fontsize=8)
    fig.suptitle(title or "A Hamming profile and the spectrum of its Gram matrix")
    return fig


def _embedding_cases():
    g = torch.Generator().manual_seed(505)
    cases = []
    for m, d in ((1, 3), (2, 2), (3, 5), (4, 3), (5, 8)):
        cases.append((torch.randn(2**m, d, generator=g, dtype=torch.float64),))
    cases.append((affine_embedding(4, 3.0, 0.5),))
    # a non-centred embedding with a large common component (a missing mean shows up)
    cases.append((torch.randn(8, 4, generator=g, dtype=torch.float64) + 2.0,))
    return cases


def check_gram_profile(fn: Callable) -> CheckResult:
    """Check ``fn(W_E) -> Tensor[m+1]``: the mean of ``<W_E(i), W_E(j)>`` over all ordered pairs
    (i, j) of tokens at Hamming distance k, for k = 0..m (W_E is ``[V, d]``, V = 2^m, row = token,
    token ids as in ``lca.LatentSpace``; k = 0 gives the mean squared norm)."""
    return run_cases(
        "check_gram_profile",
        fn,
        lambda W: gram_profile(W).mean,
        _embedding_cases(),
        describe=lambda c: f"W_E of shape {tuple(c[0].shape)}",
    )


def check_krawtchouk_table(fn: Callable) -> CheckResult:
    """Check ``fn(m) -> Tensor[m+1, m+1]``: the table with entry ``[k, w] = K_k(w)`` (rows:
    distance k, columns: weight w), for m = 1..9. Any integer or float dtype is accepted; the
    values must be exact."""
    cases = [(m,) for m in (1, 2, 3, 4, 5, 6, 9)]

    def same_table(expected, got):
        got = torch.as_tensor(got)
        return got.shape == expected.shape and bool((got.double() == expected.double()).all())

    return run_cases(
        "check_krawtchouk_table",
        fn,
        krawtchouk_matrix,
        cases,
        compare=same_table,
        describe=lambda c: f"m={c[0]}",
    )


def check_hamming_spectrum(fn: Callable) -> CheckResult:
    """Check ``fn(g, m) -> Tensor[m+1]``: the eigenvalue ``lambda_w`` (w = 0..m) of the V x V
    matrix ``G[i, j] = g[D_H(i, j)]`` on the Walsh characters of weight w, for a profile ``g``
    given as a float64 tensor of m+1 values."""
    g = torch.Generator().manual_seed(506)
    cases = [
        (torch.tensor([1.0, 0.5], dtype=torch.float64), 1),
        (torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64), 2),
        (torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64), 3),
    ]
    for m in (3, 4, 6):
        cases.append((torch.randn(m + 1, generator=g, dtype=torch.float64), m))
    cases.append((torch.tensor([(-1.0) ** k for k in range(6)], dtype=torch.float64), 5))
    return run_cases(
        "check_hamming_spectrum",
        fn,
        lambda prof, m: hamming_kernel_spectrum(prof, m)[0],
        cases,
        describe=lambda c: f"g={[round(float(x), 4) for x in c[0]]}, m={c[1]}",
    )


def check_affine_embedding(fn: Callable) -> CheckResult:
    """Check ``fn(m, b0, b1) -> Tensor[V, r]`` with r <= m + 1: embeddings (row z = token z)
    whose Gram matrix is ``b0 - b1 D_H`` (for b1 >= 0 and b0 >= m b1 / 2). Any rotation of a right
    answer is right too: only the Gram matrix and the width are checked."""

    def gram_of(m, b0, b1):
        E = torch.as_tensor(fn(m, b0, b1), dtype=torch.float64)
        if E.ndim != 2 or E.shape[0] != 2**m:
            return f"an array of shape {tuple(E.shape)}, not [V={2**m}, r]"
        if E.shape[1] > m + 1:
            return f"{E.shape[1]} columns, more than m + 1 = {m + 1}"
        return E @ E.T

    cases = [
        (1, 1.0, 1.0),
        (2, 1.0, 1.0),
        (3, 2.0, 0.5),
        (4, 1.0, 0.5),
        (4, 5.0, 0.0),
        (5, 4.0, 1.0),
        (6, 3.0, 1.0),
    ]

    def describe(c):
        return f"m={c[0]}, b0={c[1]}, b1={c[2]} (Gram matrix compared)"

    return run_cases("check_affine_embedding", gram_of, affine_gram, cases, describe=describe)
