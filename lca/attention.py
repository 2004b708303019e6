"""Chapter 6, attention as a selector: the key-query matrix's first gradient step in closed form,
attention mass by cluster in trained models, the chapter's figures and its exercise checkers."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from matplotlib.figure import Figure

from . import latent
from ._validate import check_bool, check_choice, check_finite, check_float, check_int, check_tokens
from .checks import CheckResult, close, run_cases, safe_compare
from .model import OneLayerTransformer, check_model
from .report import load_stored
from .style import COLORS, DIVERGING_CMAP, SEQUENTIAL_CMAP, legend_below, new_figure
from .task import TaskSpec, check_spec, count_vector, sample
from .train import TrainConfig, check_model_and_spec, evaluate, sweep
from .value_matrix import value_matrix_construction


def _check_weights(W_E, W_V, V):
    if not isinstance(W_E, torch.Tensor) or W_E.ndim != 2:
        raise ValueError(
            f"W_E must be a 2-d tensor [V, d], got {type(W_E).__name__} {tuple(getattr(W_E, 'shape', ()))}"
        )
    if W_E.shape[0] != V:
        raise ValueError(f"W_E must have V={V} rows (one per token), got shape {tuple(W_E.shape)}")
    d = W_E.shape[1]
    if not isinstance(W_V, torch.Tensor) or W_V.ndim != 2:
        raise ValueError(
            f"W_V must be a 2-d tensor [d, d], got {type(W_V).__name__} {tuple(getattr(W_V, 'shape', ()))}"
        )
    if tuple(W_V.shape) != (d, d):
        raise ValueError(
            f"W_E [V, d] and W_V [d, d] must share d: W_E has shape {tuple(W_E.shape)} (d={d}), "
            f"W_V has shape {tuple(W_V.shape)}"
        )
    return check_finite("W_E", W_E.detach().double()), check_finite("W_V", W_V.detach().double())


def cluster_ids(m: int, k: int) -> torch.Tensor:
    """``LongTensor[V]``: the cluster id of every token, i.e. the integer formed by its first ``k``
    latent bits (clusters are blocks of ``2**(m-k)`` consecutive token ids)."""
    m = check_int("m", m, 1, 16)
    k = check_int("k", k, 0, m)
    return torch.arange(2**m) >> (m - k)


def cluster_task(
    m: int, k: int = 2, L: int = 16, noise: float = 0.5, informative: str = "cluster", clean_last: bool = True
) -> TaskSpec:
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
    return TaskSpec(
        m=m,
        L=L,
        neighbourhood=nb,
        noise=noise,
        noise_law=latent.other_clusters(k),
        clean_last=check_bool("clean_last", clean_last),
    )


def kq_value_matrix(
    W_E: torch.Tensor, spec_or_mask: TaskSpec | torch.Tensor, beta: float = 1.0
) -> torch.Tensor:
    """The associative-memory value matrix ``beta * W_E^T A W_E`` (``[d, d]``, float64), with
    ``A[k, j] = 1`` iff token j lies in N(k) (the spec's neighbourhood mask, or a given
    ``BoolTensor[V, V]``): chapter 4's ``value_matrix_construction`` at scale beta. With
    orthonormal embedding rows its logits are ``beta * A c``: the share of the context inside each
    N(k)."""
    beta = check_float("beta", beta, 0.0, None)
    if isinstance(spec_or_mask, torch.Tensor):
        mask, V = spec_or_mask, None  # V from the mask's shape
    else:
        spec = check_spec(spec_or_mask, "spec_or_mask")
        mask, V = spec.neighbourhood, spec.V
    E = W_E.detach().double() if isinstance(W_E, torch.Tensor) else W_E
    return value_matrix_construction(E, mask, scale=beta, V=V)


_MAX_ENUMERATION_ROWS = 4_000_000


def _compositions(size: int, n: int) -> torch.Tensor:
    """All count vectors ``LongTensor[N, size]`` of n draws over ``size`` cells."""
    if n == 0:
        return torch.zeros((1, size), dtype=torch.long)
    combos = torch.tensor(list(itertools.combinations_with_replacement(range(size), n)), dtype=torch.long)
    return count_vector(combos, size, dtype=torch.long)


def _enumeration_rows(spec: TaskSpec) -> int:
    P, Q = spec.context_law(), spec.last_law()
    rows = 0
    for y in range(spec.V):
        s = int((P[y] > 0).sum())
        rows += int((Q[y] > 0).sum()) * math.comb(spec.L - 1 + s - 1, s - 1)
    return rows


def kq_gradient_table(W_E: torch.Tensor, W_V: torch.Tensor, spec: TaskSpec) -> torch.Tensor:
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
    check_spec(spec)
    E, Wv = _check_weights(W_E, W_V, spec.V)
    rows = _enumeration_rows(spec)
    if rows > _MAX_ENUMERATION_ROWS:
        raise ValueError(
            f"L={spec.L} with m={spec.m} needs {rows} enumeration rows (limit "
            f"{_MAX_ENUMERATION_ROWS}); use a smaller L or m, or grad_WKQ_at_zero_sample on a "
            "large sample"
        )
    V, L = spec.V, spec.L
    M = E @ Wv @ E.T
    P, Q = spec.context_law(), spec.last_law()
    T = torch.zeros((V, V), dtype=torch.float64)
    cache = {}
    for y in range(V):
        supp = torch.nonzero(P[y] > 0).flatten()
        key = (supp.numel(), L - 1)
        if key not in cache:
            cache[key] = _compositions(*key)
        comp = cache[key]  # [N, s]
        counts = torch.zeros((comp.shape[0], V), dtype=torch.float64)
        counts[:, supp] = comp.double()
        logw = (
            math.lgamma(L)
            - torch.lgamma(comp.double() + 1).sum(1)
            + (comp.double() * torch.log(P[y, supp])).sum(1)
        )
        w = torch.exp(logw)  # [N] multinomial probabilities
        ey = torch.zeros(V, dtype=torch.float64)
        ey[y] = 1.0
        for i in torch.nonzero(Q[y] > 0).flatten().tolist():
            c = counts.clone()
            c[:, i] += 1.0
            c /= L
            p = torch.softmax(c @ M.T, dim=1)  # [N, V]
            r = (ey[None, :] - p) @ M  # [N, V]
            rbar = (c * r).sum(1, keepdim=True)
            T[i] += (Q[y, i] / V) * (w[:, None] * c * (r - rbar)).sum(0)
    return T


def grad_WKQ_at_zero(W_E: torch.Tensor, W_V: torch.Tensor, spec: TaskSpec) -> torch.Tensor:
    """Exact gradient ``[d, d]`` (float64) of the population cross-entropy with respect to W_KQ at
    ``W_KQ = 0``, for embeddings ``W_E [V, d]`` and value matrix ``W_V [d, d]``:
    ``-W_E^T T W_E`` with T from ``kq_gradient_table`` (exact enumeration; small m and L)."""
    T = kq_gradient_table(W_E, W_V, spec)
    E = W_E.detach().double()
    return -E.T @ T @ E


def grad_WKQ_at_zero_sample(
    W_E: torch.Tensor, W_V: torch.Tensor, contexts: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """The same closed form on a finite sample: the gradient ``[d, d]`` (float64) of the mean
    cross-entropy over ``contexts [n, L]`` and ``targets [n]`` with respect to W_KQ at 0."""
    if not isinstance(W_E, torch.Tensor) or W_E.ndim != 2:
        raise ValueError(f"W_E must be a 2-d tensor [V, d], got {tuple(getattr(W_E, 'shape', ()))}")
    V = W_E.shape[0]
    E, Wv = _check_weights(W_E, W_V, V)
    contexts = check_tokens("contexts", contexts, V, ndim=2)
    targets = check_tokens("targets", targets, V, ndim=1)
    if targets.shape[0] != contexts.shape[0]:
        raise ValueError(
            f"contexts [n, L] and targets [n] must have one target per context: contexts has "
            f"{contexts.shape[0]} rows (shape {tuple(contexts.shape)}), targets {targets.shape[0]} entries"
        )
    n, L = contexts.shape
    M = E @ Wv @ E.T
    c = count_vector(contexts, V, 1.0 / L)
    p = torch.softmax(c @ M.T, dim=1)
    ey = torch.nn.functional.one_hot(targets, V).double()
    r = (ey - p) @ M
    rbar = (c * r).sum(1, keepdim=True)
    q = torch.nn.functional.one_hot(contexts[:, -1], V).double()
    T = q.T @ (c * (r - rbar)) / n
    return -E.T @ T @ E


_MAX_FIRST_ORDER_CUBE = 2**24  # V = 256: [V, V, V] float64 intermediates of 128 MiB


def kq_first_order_table(spec: TaskSpec, M0: torch.Tensor | None = None) -> torch.Tensor:
    """Closed form of ``lim_{beta -> 0} T / beta`` (``[V, V]``, float64) for ``M = beta * M0``.

    ``M0`` is the value-logit matrix ``W_E W_V W_E^T`` at unit scale; by default the neighbourhood
    adjacency A (``A[k, j] = 1`` iff j in N(k)), i.e. orthonormal embeddings and the associative
    memory ``W_V = beta W_E^T A W_E``. With ``rho = M0[y] - mean_k M0[k]`` the table is

        T1[i, j] = E[ 1{x_L = i} c_j (rho_j - c . rho) ],

    a polynomial of degree two in the token counts, evaluated here from the task law alone
    (first and second moments of the multinomial counts), without sampling or enumeration.
    Needs m <= 8: the einsums build ``[V, V, V]`` intermediates.
    """
    check_spec(spec)
    V, L = spec.V, spec.L
    if V**3 > _MAX_FIRST_ORDER_CUBE:
        raise ValueError(
            f"spec is too large for kq_first_order_table: m={spec.m} (V={V}) needs V^3 = {V**3:,} "
            f"entries, more than the limit of {_MAX_FIRST_ORDER_CUBE:,} (m <= 8)"
        )
    if M0 is None:
        M0 = spec.neighbourhood.mask(spec.space).double()
    elif not isinstance(M0, torch.Tensor) or tuple(M0.shape) != (V, V):
        raise ValueError(f"M0 must be a tensor of shape ({V}, {V}), got {tuple(getattr(M0, 'shape', ()))}")
    M0 = check_finite("M0", M0.double())
    P, Q = spec.context_law(), spec.last_law()
    n = L - 1
    rho = M0 - M0.mean(0, keepdim=True)  # [y, j]
    a = (P * rho).sum(1)  # [y]   P_y . rho_y
    eye = torch.eye(V, dtype=torch.float64)
    # first term: Q_yi (delta_ij + n P_yj) rho_j / L
    first = (torch.einsum("yi,ij,yj->ij", Q, eye, rho) + n * torch.einsum("yi,yj->ij", Q, P * rho)) / L
    # second term, divided by L^2
    second = (
        torch.einsum("yi,ij,yi->ij", Q, eye, rho)
        + n * torch.einsum("yi,ij,y->ij", Q, eye, a)
        + n * torch.einsum("yi,yj,yi->ij", Q, P, rho)
        + n * (n - 1) * torch.einsum("yi,yj,y->ij", Q, P, a)
        + n * torch.einsum("yi,yj->ij", Q, P * rho)
    ) / L**2
    return (first - second) / V


def kq_cluster_closed_form(m: int, k: int, L: int, noise: float) -> dict:
    """Entries of the first-order table ``T1`` for the cluster task ``cluster_task(m, k, L, noise,
    informative="cluster")`` with ``A`` its adjacency, writing s = 2**(m-k) (cluster size):

    - ``"self"``  (j = i):            (L-1) eps / (V L^2) * (1 + (L-2)(1-eps)/(s-1))
    - ``"same"``  (j != i, same cluster): (s-2)(L-1)(L-2) eps (1-eps) / (V L^2 (s-1)^2)
    - ``"cross"`` (other cluster):    -(L-1) eps (1 + (L-2)(1-eps)) / (V L^2 (V-s))

    Every row sums to zero; same-cluster entries are >= 0 and cross-cluster ones <= 0.
    """
    m = check_int("m", m, 2, 16)
    k = check_int("k", k, 1, m - 1)
    L = check_int("L", L, 1, 1_000_000)
    eps = check_float("noise", noise, 0.0, 1.0, hi_open=True)
    V, s = 2**m, 2 ** (m - k)
    return {
        "self": (L - 1) * eps / (V * L**2) * (1 + (L - 2) * (1 - eps) / (s - 1)),
        "same": (s - 2) * (L - 1) * (L - 2) * eps * (1 - eps) / (V * L**2 * (s - 1) ** 2),
        "cross": -(L - 1) * eps * (1 + (L - 2) * (1 - eps)) / (V * L**2 * (V - s)),
    }


def kq_most_selective_noise(m: int, k: int, L: int) -> float:
    """The noise rate in ``[0, 1]`` that maximises the first-order margin of the cluster task
    (``"cluster"`` neighbourhood), ``same - cross`` of ``kq_cluster_closed_form``: the amount by
    which the weakest same-cluster key (another token of the cluster; the query itself scores
    higher) beats every other-cluster key after one small step.

    The margin is ``(L-1) eps / (V L^2) * (b + (a + c)(1 - eps))`` with
    ``a = (s-2)(L-2)/(s-1)^2``, ``b = 1/(V-s)``, ``c = (L-2)/(V-s)`` (s the cluster size), a
    concave quadratic in eps with its peak at ``(a + b + c) / (2 (a + c))``, in ``(1/2, 1]`` for
    L >= 3 (1 only for clusters of two tokens and L = 3). For L = 2 (``a + c = 0``) the margin
    grows on all of ``[0, 1)`` and the answer is 1 (a supremum, not attained).
    """
    m = check_int("m", m, 2, 16)
    k = check_int("k", k, 1, m - 1)
    L = check_int("L", L, 2, 1_000_000)
    V, s = 2**m, 2 ** (m - k)
    a, b, c = (s - 2) * (L - 2) / (s - 1) ** 2, 1 / (V - s), (L - 2) / (V - s)
    if a + c == 0:
        return 1.0
    return min(1.0, (a + b + c) / (2 * (a + c)))


def cluster_block_means(
    S: torch.Tensor, groups: torch.Tensor, exclude_diagonal: bool = False
) -> torch.Tensor:
    """``Tensor[C, C]``: mean of the entries of ``S [V, V]`` over each (row group, column group)
    block, with ``groups`` a ``LongTensor[V]`` of group ids 0..C-1 (e.g. ``cluster_ids(m, k)``)."""
    if not isinstance(S, torch.Tensor) or S.ndim != 2 or S.shape[0] != S.shape[1] or not S.numel():
        raise ValueError(f"S must be a non-empty square matrix, got {tuple(getattr(S, 'shape', ()))}")
    if not isinstance(groups, torch.Tensor) or groups.shape != (S.shape[0],):
        raise ValueError(
            f"groups must be a LongTensor of length {S.shape[0]}, got {tuple(getattr(groups, 'shape', ()))}"
        )
    check_finite("S", S)
    exclude_diagonal = check_bool("exclude_diagonal", exclude_diagonal)
    if groups.is_floating_point() or groups.dtype == torch.bool or int(groups.min()) < 0:
        raise ValueError(
            f"groups must hold integer group ids 0..C-1, got {groups.dtype} {groups.tolist()[:8]}"
        )
    if int(groups.max()) >= S.shape[0]:
        raise ValueError(f"groups must hold group ids below V={S.shape[0]} (C <= V), got {int(groups.max())}")
    C = int(groups.max()) + 1
    G = torch.nn.functional.one_hot(groups.long(), C).double()  # [V, C]
    W = torch.ones_like(S, dtype=torch.float64)
    if exclude_diagonal:
        W.fill_diagonal_(0.0)
    num = G.T @ (S.double() * W) @ G
    den = G.T @ W @ G
    return num / den


def score_matrix(model: OneLayerTransformer, center: bool = True) -> torch.Tensor:
    """Attention scores of every (query token i, key token j) pair: ``W_E W_KQ W_E^T``
    (``[V, V]``, or ``[E, V, V]`` for an ensemble; float64 on the CPU). The scores do not depend on
    the context. With ``center`` each row has its mean removed: adding a constant to a query's
    row changes no attention weight, so only the centred scores carry information."""
    check_model(model)
    center = check_bool("center", center)
    with torch.no_grad():
        W_E, W_KQ = model.W_E.detach().double().cpu(), model.W_KQ.detach().double().cpu()
        S = W_E @ W_KQ @ W_E.transpose(-1, -2)
    if center:
        S = S - S.mean(-1, keepdim=True)
    return S


def first_step_scores(
    W_E: torch.Tensor, W_V: torch.Tensor, spec: TaskSpec, eta: float = 1.0, first_order: bool = False
) -> torch.Tensor:
    """The scores ``S = eta G T G`` (``[V, V]``, float64, ``G = W_E W_E^T``) after one gradient
    step of size ``eta`` on W_KQ from 0, for embeddings ``W_E [V, d]`` and value matrix
    ``W_V [d, d]`` held fixed.

    With ``first_order`` False, T is the exact population table (``kq_gradient_table``, small
    tasks only). With ``first_order`` True, ``W_V`` is read as the direction of a value matrix
    ``beta W_V`` and the result is the coefficient of beta as beta -> 0: T is replaced by the
    first-order table ``kq_first_order_table(spec, M0=W_E W_V W_E^T)`` (m <= 8).
    """
    check_spec(spec)
    E, Wv = _check_weights(W_E, W_V, spec.V)
    eta = check_float("eta", eta, 0.0, None, lo_open=True)
    first_order = check_bool("first_order", first_order)
    if first_order:
        T = kq_first_order_table(spec, M0=E @ Wv @ E.T)
    else:
        T = kq_gradient_table(E, Wv, spec)
    G = E @ E.T
    return eta * (G @ T @ G)


@dataclass
class ClusterOrdering:
    """How far a score matrix ``S [V, V]`` (row: query, column: key) ranks keys of the query's
    own group above keys of the other groups (the query itself counts as its group's key).

    Attributes:
        margin: the smallest, over query rows, of (smallest own-group score - largest other-group
            score); positive exactly when every row ranks every own-group key above every other.
        rows_ordered: the fraction of query rows with a positive margin.
        pairs_ordered: the fraction of triples (query i, own-group key j, other-group key j') with
            ``S[i, j] > S[i, j']``.
        block_gap: the mean over rows of (mean own-group score - mean other-group score).
        rows: the number of query rows counted.
    """

    margin: float
    rows_ordered: float
    pairs_ordered: float
    block_gap: float
    rows: int


def cluster_ordering(
    S: torch.Tensor, groups: torch.Tensor, rows: torch.Tensor | None = None
) -> ClusterOrdering:
    """The ``ClusterOrdering`` of ``S [V, V]`` for the group ids ``groups`` (``LongTensor[V]``,
    e.g. ``cluster_ids(m, k)``), over the query rows selected by ``rows`` (``BoolTensor[V]``,
    e.g. the tokens that can be a query; default all). Every group must leave keys outside it."""
    if not isinstance(S, torch.Tensor) or S.ndim != 2 or S.shape[0] != S.shape[1] or not S.numel():
        raise ValueError(f"S must be a non-empty square matrix, got {tuple(getattr(S, 'shape', ()))}")
    V = S.shape[0]
    check_finite("S", S)
    if not isinstance(groups, torch.Tensor) or tuple(groups.shape) != (V,):
        raise ValueError(
            f"groups must be a LongTensor of length {V} (one id per row of S), got "
            f"{tuple(getattr(groups, 'shape', ()))}"
        )
    if groups.is_floating_point() or groups.dtype == torch.bool:
        raise ValueError(f"groups must hold integer group ids, got dtype {groups.dtype}")
    if int(groups.min()) < 0 or int(groups.max()) >= V:
        raise ValueError(
            f"groups must hold group ids 0..V-1 (V={V}), got values {int(groups.min())}..{int(groups.max())}"
        )
    if rows is None:
        rows = torch.ones(V, dtype=torch.bool)
    elif not isinstance(rows, torch.Tensor) or rows.dtype != torch.bool or tuple(rows.shape) != (V,):
        raise ValueError(
            f"rows must be a BoolTensor of length {V} (one flag per row of S), got "
            f"{type(rows).__name__} {tuple(getattr(rows, 'shape', ()))} {getattr(rows, 'dtype', '')}"
        )
    if not bool(rows.any()):
        raise ValueError("rows must select at least one query row, got none")
    same = groups[:, None] == groups[None, :]
    if bool(same.all(1).any()):
        raise ValueError("groups must leave keys outside every group (one group holds all of S's columns)")
    S = S.detach().double().cpu()
    margins, ordered, gaps = [], [], []
    for i in torch.nonzero(rows).flatten().tolist():
        own, other = S[i, same[i]], S[i, ~same[i]]
        margins.append(float(own.min() - other.max()))
        ordered.append((int((own[:, None] > other[None, :]).sum()), own.numel() * other.numel()))
        gaps.append(float(own.mean() - other.mean()))
    return ClusterOrdering(
        margin=min(margins),
        rows_ordered=sum(m > 0 for m in margins) / len(margins),
        pairs_ordered=sum(a for a, _ in ordered) / sum(b for _, b in ordered),
        block_gap=sum(gaps) / len(gaps),
        rows=len(margins),
    )


@dataclass
class ClusterAttention:
    """Where a model's attention goes, measured on sampled contexts of a task with clusters.

    Attributes (a leading ``[E]`` dimension for an ensemble):
        mass: mean attention weight on tokens of the query's own cluster (the query included).
        share: mean fraction of context tokens in the query's cluster (the mass under uniform
            attention, ``W_KQ = 0``).
        mass_matrix: ``[C, C]``, row b: for queries in cluster b, the mean attention mass on each
            key cluster (rows sum to 1).
        share_matrix: ``[C, C]``, the same for the token shares.
    """

    mass: object
    share: float
    mass_matrix: torch.Tensor
    share_matrix: torch.Tensor


def attention_mass_by_cluster(
    model: OneLayerTransformer, spec: TaskSpec, k: int, n: int = 4096, seed: int = 0
) -> ClusterAttention:
    """Attention mass on same-cluster tokens against their share of the context (clusters: same
    first ``k`` latent bits), averaged over ``n`` contexts of ``spec`` drawn with ``seed``."""
    check_model_and_spec(model, spec)
    k = check_int("k", k, 1, spec.m)
    n = check_int("n", n, 1, 1_000_000)
    ctx, _ = sample(spec, n, seed=seed)
    with torch.no_grad():
        att = model.attention(ctx).double().cpu()  # [n, L] or [E, n, L]
    cl = ctx >> (spec.m - k)  # [n, L]
    C = 2**k
    same = (cl == cl[:, -1:]).double()
    onehot = torch.nn.functional.one_hot(cl, C).double()  # [n, L, C]
    qone = torch.nn.functional.one_hot(cl[:, -1], C).double()  # [n, C]
    count = qone.sum(0).clamp(min=1.0)[:, None]  # queries per cluster

    def by_cluster(weights):  # weights [..., n, L]
        per_ctx = torch.einsum("...nl,nlc->...nc", weights, onehot)
        return torch.einsum("nb,...nc->...bc", qone, per_ctx) / count

    uniform = torch.full(ctx.shape, 1.0 / spec.L, dtype=torch.float64)
    mass = (att * same).sum(-1).mean(-1)
    return ClusterAttention(
        mass=float(mass) if mass.ndim == 0 else mass,
        share=float(same.mean()),
        mass_matrix=by_cluster(att),
        share_matrix=by_cluster(uniform),
    )


#: The trained experiments of chapter 6 at the budget the chapter shows (``steps``); the other
#: settings are common: d = 32, batch 256, Adam at lr 0.01, clusters of k = 2 bits. ``frozen``:
#: the experiment also trains the variant with W_KQ frozen at 0; ``mass``: (n, seed) of the
#: contexts on which the attention mass is measured, as in the chapter's cells.
BUDGET_EXPERIMENTS = {
    "heatmap_m8": dict(m=8, L=32, noise=0.5, informative="cluster", steps=400, frozen=True, mass=(2048, 0)),
    "heatmap_m5": dict(m=5, L=32, noise=0.5, informative="cluster", steps=400, frozen=False, mass=(2048, 0)),
    "heatmap_m6": dict(m=6, L=32, noise=0.5, informative="cluster", steps=400, frozen=False, mass=(2048, 0)),
    "heatmap_m7": dict(m=7, L=32, noise=0.5, informative="cluster", steps=400, frozen=False, mass=(2048, 0)),
    "selection": dict(m=8, L=16, noise=0.75, informative="sphere", steps=500, frozen=True, mass=(4096, 2)),
    "no_noise": dict(m=8, L=16, noise=0.0, informative="sphere", steps=300, frozen=True, mass=(2048, 2)),
    "noise_inside": dict(m=8, L=16, noise=0.75, informative="sphere", steps=300, frozen=True, mass=(2048, 2)),
    "noisy_query": dict(m=8, L=16, noise=0.75, informative="sphere", steps=500, frozen=True, mass=(4096, 2)),
}

#: the committed results of ``bench/06_budgets.py``
BUDGET_RESULTS = Path(__file__).with_name("data") / "attention_budgets.json"


def budget_task(name: str) -> TaskSpec:
    """The task of experiment ``name`` of ``BUDGET_EXPERIMENTS``: ``cluster_task(m, 2, ...)``,
    except ``"noise_inside"`` (noise uniform on the target's own cluster) and ``"noisy_query"``
    (the last token drawn like the others, ``clean_last=False``)."""
    check_choice("name", name, tuple(BUDGET_EXPERIMENTS))
    e = BUDGET_EXPERIMENTS[name]
    spec = cluster_task(
        e["m"], 2, L=e["L"], noise=e["noise"], informative=e["informative"], clean_last=name != "noisy_query"
    )
    if name == "noise_inside":
        spec = spec.with_(noise_law=latent.cluster(2))
    return spec


def budget_config(name: str, scale: int = 1, device: str | None = "cpu") -> TrainConfig:
    """The ``TrainConfig`` of experiment ``name`` at ``scale`` times the chapter's budget."""
    scale = check_int("scale", scale, 1, 64)
    spec = budget_task(name)
    steps = BUDGET_EXPERIMENTS[name]["steps"] * scale
    return TrainConfig(task=spec, d=32, steps=steps, batch_size=256, lr=0.01, eval_every=0, device=device)


def run_budget_experiment(
    name: str, scale: int = 1, seeds: tuple = (0, 1, 2, 3, 4), device: str | None = "cpu"
) -> dict:
    """Train experiment ``name`` at ``scale`` times its budget with every seed in ``seeds`` (W_KQ
    trained, and frozen at 0 where the experiment has that variant) and measure each member.

    Returns ``{"steps": int, "members": [...]}``; each member is a dict with ``variant``, ``seed``,
    ``mass`` and ``share`` (attention mass on, and share of, the query's cluster), ``accuracy``
    (4096 contexts, seed 1; None on the ``"cluster"`` neighbourhood, where the target cannot be
    identified) and, for trained W_KQ, the block statistics of the centred score matrix:
    ``block_gap`` (smallest, over query clusters, of own block mean minus the largest other block
    mean), ``same`` and ``cross`` (mean own-cluster and cross-cluster block means),
    ``pairs_ordered`` and ``rows_ordered`` (``cluster_ordering``), and ``parity`` (mean centred
    score of same-cluster keys at Hamming distance 0, 1, ..., m - 2 from the query).
    """
    config = budget_config(name, scale, device)
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ValueError(f"seeds must be a sequence of integers, got {seeds!r}")
    seeds = tuple(check_int("seeds", s, 0, 2**31) for s in seeds)
    if not seeds:
        raise ValueError("seeds must hold at least one seed, got an empty sequence")
    e, spec = BUDGET_EXPERIMENTS[name], config.task
    variants = {"trained": {}, "frozen": {"train_KQ": False}} if e["frozen"] else {"trained": {}}
    res = sweep(config, seeds=seeds, variants=variants, progress=False)
    mass = attention_mass_by_cluster(res.model, spec, k=2, n=e["mass"][0], seed=e["mass"][1])
    acc = evaluate(res.model, spec, n=4096, seed=1) if e["informative"] == "sphere" else None
    cl = cluster_ids(spec.m, 2)
    same = cl[:, None] == cl[None, :]
    dist = spec.space.distances()
    members = []
    for i, (variant, seed) in enumerate(res.labels):
        row = {
            "variant": variant,
            "seed": seed,
            "mass": float(mass.mass[i]),
            "share": mass.share,
            "accuracy": None if acc is None else float(acc[i]),
        }
        if variant == "trained":
            S = score_matrix(res.model.member(i))
            B = cluster_block_means(S, cl)
            C = B.shape[0]
            off = ~torch.eye(C, dtype=torch.bool)
            order = cluster_ordering(S, cl)
            row.update(
                block_gap=float(min(B[b, b] - B[b][off[b]].max() for b in range(C))),
                same=float(B.diagonal().mean()),
                cross=float(B[off].mean()),
                pairs_ordered=order.pairs_ordered,
                rows_ordered=order.rows_ordered,
                parity=[float(S[(dist == w) & same].mean()) for w in range(spec.m - 1)],
            )
        members.append(row)
    return {"steps": config.steps, "members": members}


def load_budget_results(path: str | Path | None = None) -> dict:
    """The stored results of ``bench/06_budgets.py`` (``BUDGET_RESULTS`` by default)."""
    return load_stored(BUDGET_RESULTS if path is None else path, "bench/06_budgets.py")


def budget_values(results: dict, name: str, scale: int, key: str, variant: str = "trained") -> list:
    """The values of ``key`` over the seeds of ``variant`` in experiment ``name`` at ``scale`` of
    the stored ``results`` (``load_budget_results()``), in seed order."""
    if not isinstance(results, dict) or "experiments" not in results:
        raise ValueError("results must be the dict returned by load_budget_results()")
    check_choice("name", name, tuple(results["experiments"]))
    runs = results["experiments"][name]["runs"]
    check_choice("scale", str(scale), tuple(runs))
    members = [r for r in runs[str(scale)]["members"] if r["variant"] == variant]
    if not members:
        raise ValueError(f"variant must be one of the experiment's variants, got {variant!r}")
    if key not in members[0]:
        raise ValueError(f"key must be one of {sorted(members[0])}, got {key!r}")
    return [r[key] for r in sorted(members, key=lambda r: r["seed"])]


def _cluster_lines(ax, V: int, k: int, m: int):
    size = 2 ** (m - k)
    for b in range(1, 2**k):
        ax.axhline(b * size - 0.5, color="black", lw=0.6)
        ax.axvline(b * size - 0.5, color="black", lw=0.6)


def plot_attention_heatmap(
    mats: dict,
    m: int,
    k: int,
    title: str = "",
    cbar_label: str = "score (row mean removed)",
    symmetric: bool = True,
) -> Figure:
    """Token-by-token heat maps (row: query token, column: key token), one panel per entry of
    ``mats`` (label -> ``Tensor[V, V]``), with the cluster boundaries (same first ``k`` bits)
    drawn as lines. Each panel has its own colour scale, symmetric about 0 when ``symmetric``.
    A panel's ``V`` is read from its matrix (so panels of different ``m`` may share a figure;
    ``m`` is the default when a matrix is not ``2**m`` square). ``title``, if given, is drawn as
    the figure's title (the book leaves it to the caption). Returns the Figure."""
    n = len(mats)
    fig, axes = new_figure(ncols=n, width=4.3, height=3.9)
    axes = [axes] if n == 1 else list(axes.flat)
    for ax, (label, M) in zip(axes, mats.items()):
        M = M.detach().double().cpu()
        V = M.shape[0]
        m_panel = int(round(math.log2(V))) if V > 1 and 2 ** round(math.log2(V)) == V else m
        ax.grid(False)
        if symmetric:
            lim = float(M.abs().max()) or 1.0
            im = ax.imshow(M.numpy(), cmap=DIVERGING_CMAP, vmin=-lim, vmax=lim, interpolation="nearest")
        else:
            im = ax.imshow(M.numpy(), cmap=SEQUENTIAL_CMAP, interpolation="nearest")
        _cluster_lines(ax, 2**m_panel, k, m_panel)
        ticks = [0, V // 2, V - 1]
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_title(label)
        ax.set_xlabel("key token $j$")
        ax.set_ylabel("query token $i$")
        fig.colorbar(im, ax=ax, shrink=0.8, label=cbar_label)
    if title:
        fig.suptitle(title)
    return fig


def plot_cluster_attention(rows: dict, title: str = "") -> Figure:
    """Grouped bars: for each variant (label -> dict with ``"mass"``, ``"share"`` and optionally
    ``"accuracy"``), the attention mass on same-cluster tokens next to their share of the context
    (the mass that uniform attention would give), the legend under the panel. Returns the
    Figure."""
    fig, ax = new_figure(width=6.4, height=3.8)
    labels = list(rows)
    x = np.arange(len(labels))
    mass = [rows[lab]["mass"] for lab in labels]
    share = [rows[lab]["share"] for lab in labels]
    ax.bar(x - 0.2, share, width=0.4, color=COLORS["sky"], label="share of same-cluster tokens")
    ax.bar(x + 0.2, mass, width=0.4, color=COLORS["blue"], label="attention mass on same-cluster tokens")
    for xi, lab in zip(x, labels):
        acc = rows[lab].get("accuracy")
        if acc is not None:
            ax.text(xi, 1.03, f"accuracy {acc:.2f}", ha="center")
    ax.set_xticks(x)
    ax.set_xticklabels(labels)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("fraction")
    if title:
        ax.set_title(title)
    legend_below(fig, ax, ncols=1)
    return fig


def plot_kq_gradient_check(
    exact: torch.Tensor, approx: torch.Tensor, same: torch.Tensor, xlabel: str, ylabel: str, title: str = ""
) -> Figure:
    """Scatter of two V x V tables entry by entry (``exact`` on x, ``approx`` on y), coloured by
    whether the (query, key) pair is in one cluster (``same``, a BoolTensor[V, V]), with the
    diagonal y = x and the legend under the panel. Returns the Figure."""
    fig, ax = new_figure(width=5.0, height=4.0)
    ex, ap, sm = exact.detach().double().flatten(), approx.detach().double().flatten(), same.flatten()
    ax.scatter(
        ex[~sm].numpy(),
        ap[~sm].numpy(),
        s=10,
        color=COLORS["vermillion"],
        label="query and key in different clusters",
        alpha=0.7,
    )
    ax.scatter(
        ex[sm].numpy(),
        ap[sm].numpy(),
        s=10,
        color=COLORS["blue"],
        label="query and key in the same cluster",
        alpha=0.7,
    )
    lo, hi = float(min(ex.min(), ap.min())), float(max(ex.max(), ap.max()))
    ax.plot([lo, hi], [lo, hi], color=COLORS["black"], lw=0.8, label="$y = x$")
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.ticklabel_format(style="sci", scilimits=(-2, 2))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    legend_below(fig, ax, ncols=1)
    return fig


def _reference_mass(attention, contexts, m, k):
    cl = contexts >> (m - k)
    same = (cl == cl[:, -1:]).to(attention.dtype)
    return float((attention * same).sum(1).mean())


def _mass_cases():
    cases = []
    for i, (m, k, n, L) in enumerate([(4, 1, 5, 6), (6, 2, 7, 9), (5, 3, 4, 3), (8, 2, 6, 12), (3, 2, 3, 1)]):
        g = torch.Generator().manual_seed(100 + i)
        ctx = torch.randint(0, 2**m, (n, L), generator=g)
        att = torch.softmax(torch.randn(n, L, generator=g, dtype=torch.float64) * 2, dim=1)
        cases.append((att, ctx, m, k))
    return cases


def check_attention_mass_by_cluster(fn: Callable) -> CheckResult:
    """Check ``fn(attention [n, L], contexts [n, L], m, k) -> float``: the mean (over contexts)
    attention mass on positions whose token shares its first k latent bits with the query (the
    last token), the query's own position included."""
    return run_cases(
        "attention_mass_by_cluster",
        fn,
        _reference_mass,
        _mass_cases(),
        compare=safe_compare(lambda e, g: close(e, float(g), rtol=1e-6, atol=1e-9)),
        describe=lambda c: f"attention of shape {tuple(c[0].shape)}, m={c[2]}, k={c[3]}",
    )


def _grad_cases():
    cases = []
    for i, (V, d, n, L) in enumerate([(4, 3, 5, 3), (8, 5, 9, 4), (8, 8, 16, 6), (16, 6, 12, 2)]):
        g = torch.Generator().manual_seed(200 + i)
        W_E = torch.randn(V, d, generator=g, dtype=torch.float64)
        W_V = torch.randn(d, d, generator=g, dtype=torch.float64)
        ctx = torch.randint(0, V, (n, L), generator=g)
        y = torch.randint(0, V, (n,), generator=g)
        cases.append((W_E, W_V, ctx, y))
    return cases


def check_kq_gradient(fn: Callable) -> CheckResult:
    """Check ``fn(W_E [V, d], W_V [d, d], contexts [n, L], targets [n]) -> Tensor[d, d]``: the
    gradient of the mean cross-entropy with respect to W_KQ at W_KQ = 0, from the closed form
    ``-W_E^T T W_E`` with ``T[i, j] = mean over examples of 1{x_L = i} c_j (r_j - rbar)``."""
    return run_cases(
        "kq_gradient",
        fn,
        grad_WKQ_at_zero_sample,
        _grad_cases(),
        compare=safe_compare(lambda e, g: close(e, g, rtol=1e-5, atol=1e-9)),
        describe=lambda c: f"V={c[0].shape[0]}, d={c[0].shape[1]}, contexts of shape {tuple(c[2].shape)}",
    )


def _best_noise_cases():
    return [(8, 2, 32), (4, 1, 5), (6, 2, 8), (5, 4, 3), (6, 5, 2), (3, 2, 7), (10, 3, 100)]


def check_best_noise(fn: Callable) -> CheckResult:
    """Check ``fn(m, k, L) -> float``: the noise rate in [0, 1] that maximises the first-order
    margin ``same - cross`` of the cluster task (``kq_most_selective_noise``), 1 when the margin
    grows on all of [0, 1)."""
    return run_cases(
        "best_noise",
        fn,
        kq_most_selective_noise,
        _best_noise_cases(),
        compare=safe_compare(lambda e, g: close(e, float(g), rtol=1e-7, atol=1e-10)),
        describe=lambda c: f"m={c[0]}, k={c[1]}, L={c[2]}",
    )
