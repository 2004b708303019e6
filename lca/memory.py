"""Associative memories: outer-product storage and recall, capacity with random embeddings, and
the value-matrix construction W_V* for any neighbourhood."""

from __future__ import annotations

# ==== section: associative-memory (chapter 1) ====
# (owned by the associative-memory (chapter 1) work; add functions between this marker and the next)
#
# A linear associative memory stores N pairs (key u_i -> value v_i) as one matrix
#     W = sum_i v_i u_i^T = values^T keys          ([d', d])
# and recalls W q for a query q. Keys are rows of ``keys [N, d]``, values rows of ``values [N, d']``.
from typing import NamedTuple

import torch

from ._validate import check_float as _mem_check_float
from ._validate import check_int as _mem_check_int


def _mem_matrix(name: str, x, ndim: int = 2) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if not (x.is_floating_point()):
        raise ValueError(f"{name} must have a floating dtype, got {x.dtype}")
    return x


def _mem_generator(seed, generator) -> torch.Generator:
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        return generator
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(_mem_check_int("seed", seed, 0, 2 ** 63 - 1))
    return g


def random_keys(N: int, d: int, seed: int | None = None, generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``Tensor[N, d]`` of independent Gaussian keys: every entry N(0, 1/d), so E||u_i||^2 = 1.

    Args:
        N: number of keys (>= 1). d: key dimension (>= 1).
        seed / generator: source of randomness (a fresh generator from ``seed``, or a stream).
    """
    N = _mem_check_int("N", N, 1, 10_000_000)
    d = _mem_check_int("d", d, 1, 1_000_000)
    g = _mem_generator(seed, generator)
    return torch.randn((N, d), generator=g, dtype=dtype) / d ** 0.5


def orthonormal_keys(N: int, d: int, seed: int | None = None,
                     generator: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``Tensor[N, d]`` with orthonormal rows (u_i^T u_j = 1[i = j]), a random rotation of the first
    N standard basis vectors. Needs N <= d: at most d vectors of R^d are orthonormal."""
    d = _mem_check_int("d", d, 1, 1_000_000)
    N = _mem_check_int("N", N, 1, d)
    g = _mem_generator(seed, generator)
    A = torch.randn((d, N), generator=g, dtype=torch.float64)
    Q, R = torch.linalg.qr(A)
    Q = Q * torch.sign(torch.diagonal(R))[None, :]  # Haar-distributed, deterministic given A
    return Q.T.contiguous().to(dtype)


def correlated_keys(N: int, d: int, rho: float, seed: int | None = None,
                    generator: torch.Generator | None = None,
                    dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``Tensor[N, d]``: keys u_i = sqrt(rho) c + sqrt(1 - rho) g_i with one shared c and
    independent g_i, all N(0, I/d). Each key alone has the law of ``random_keys`` but any two have
    E[u_i^T u_j] = rho: the keys are exchangeable, not independent (0 <= rho < 1)."""
    N = _mem_check_int("N", N, 1, 10_000_000)
    d = _mem_check_int("d", d, 1, 1_000_000)
    rho = _mem_check_float("rho", rho, 0.0, 1.0, hi_open=True)
    g = _mem_generator(seed, generator)
    c = torch.randn((1, d), generator=g, dtype=torch.float64)
    G = torch.randn((N, d), generator=g, dtype=torch.float64)
    return ((rho ** 0.5 * c + (1 - rho) ** 0.5 * G) / d ** 0.5).to(dtype)


def store(keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Outer-product storage: ``W = sum_i values[i] keys[i]^T = values^T @ keys``, ``[d', d]``.

    Args:
        keys: ``[N, d]``, row i is the key u_i.
        values: ``[N, d']``, row i is the value v_i.
    """
    keys = _mem_matrix("keys", keys)
    values = _mem_matrix("values", values)
    if keys.shape[0] != values.shape[0]:
        raise ValueError(f"keys and values must hold the same number of pairs N, got keys "
                         f"{tuple(keys.shape)} and values {tuple(values.shape)}")
    return values.T @ keys.to(values.dtype)


def recall(W: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Linear recall ``queries @ W^T``: row k is W q_k (``[n, d']`` for queries ``[n, d]``)."""
    W = _mem_matrix("W", W)
    queries = _mem_matrix("queries", queries)
    if queries.shape[1] != W.shape[1]:
        raise ValueError(f"queries must have d={W.shape[1]} columns to match W {tuple(W.shape)}, "
                         f"got {tuple(queries.shape)}")
    return queries.to(W.dtype) @ W.T


def recall_argmax(W: torch.Tensor, queries: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Nearest stored value by inner product: ``LongTensor[n]``, entry k = argmax_i <v_i, W q_k>
    (the first index among ties). With one-hot values (``values = I_N``) this is argmax_i of the
    i-th coordinate of W q_k."""
    out = recall(W, queries)
    values = _mem_matrix("values", values)
    if values.shape[1] != W.shape[0]:
        raise ValueError(f"values must have d'={W.shape[0]} columns to match W {tuple(W.shape)}, "
                         f"got {tuple(values.shape)}")
    return torch.argmax(out @ values.to(out.dtype).T, dim=1)


def crosstalk(keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``Tensor[N, d']``: row j is the cross-talk c_j = sum_{i != j} (u_i^T u_j) v_i, so that
    ``recall(store(keys, values), keys)[j] = ||u_j||^2 v_j + c_j``."""
    keys = _mem_matrix("keys", keys)
    values = _mem_matrix("values", values)
    if keys.shape[0] != values.shape[0]:
        raise ValueError(f"keys and values must hold the same number of pairs N, got keys "
                         f"{tuple(keys.shape)} and values {tuple(values.shape)}")
    G = keys @ keys.T
    G = G - torch.diag(torch.diagonal(G))
    return G.to(values.dtype) @ values


def recall_accuracy(keys: torch.Tensor, values: torch.Tensor | None = None) -> float:
    """Fraction of stored pairs j whose key u_j recalls v_j by ``recall_argmax`` (values default to
    one-hot, ``I_N``)."""
    keys = _mem_matrix("keys", keys)
    N = keys.shape[0]
    if values is None:
        values = torch.eye(N, dtype=keys.dtype)
    W = store(keys, values)
    hit = recall_argmax(W, keys, values) == torch.arange(N)
    return float(hit.double().mean())


class RecallSimulation(NamedTuple):
    """Monte Carlo recall measurements: ``accuracy`` (fraction of pairs recalled by argmax),
    ``mse`` (mean of ||W u_j - v_j||^2), ``n`` (number of recalls) and ``stderr`` of the accuracy."""
    accuracy: float
    mse: float
    n: int
    stderr: float


def simulate_onehot_recall(N: int, d: int, n_recalls: int = 20_000, seed: int = 0,
                           keys: str = "gaussian", rho: float = 0.0) -> RecallSimulation:
    """Monte Carlo recall of N pairs with one-hot values (``values = I_N``) and keys in R^d.

    Draws ``ceil(n_recalls / N)`` independent memories and recalls every pair of each. One-hot
    values make W u_j = (u_i^T u_j)_i, so argmax recall of j succeeds iff u_j^T u_j > u_i^T u_j for
    all i != j, and ||W u_j - e_j||^2 = (||u_j||^2 - 1)^2 + sum_{i != j} (u_i^T u_j)^2.

    Args:
        keys: ``"gaussian"`` (``random_keys``), ``"orthonormal"`` (needs N <= d) or
            ``"correlated"`` (``correlated_keys`` with the given ``rho``).
    Returns:
        ``RecallSimulation(accuracy, mse, n, stderr)``.
    """
    N = _mem_check_int("N", N, 1, 1_000_000)
    d = _mem_check_int("d", d, 1, 1_000_000)
    n_recalls = _mem_check_int("n_recalls", n_recalls, 1, 100_000_000)
    if keys not in ("gaussian", "orthonormal", "correlated"):
        raise ValueError(f"keys must be one of ['correlated', 'gaussian', 'orthonormal'], "
                         f"got {keys!r}")
    rho = _mem_check_float("rho", rho, 0.0, 1.0, hi_open=True)
    if keys == "orthonormal" and N > d:
        raise ValueError(f"N must be in 1..d={d} for orthonormal keys, got {N}")
    g = _mem_generator(seed, None)
    trials = -(-n_recalls // N)
    hits, sq = 0, 0.0
    per_batch = max(1, (1 << 22) // (N * N))  # about 2**22 Gram entries per batch
    done = 0
    while done < trials:
        b = min(per_batch, trials - done)
        if keys == "gaussian":
            U = torch.randn((b, N, d), generator=g, dtype=torch.float64) / d ** 0.5
        elif keys == "correlated":
            c = torch.randn((b, 1, d), generator=g, dtype=torch.float64)
            G = torch.randn((b, N, d), generator=g, dtype=torch.float64)
            U = (rho ** 0.5 * c + (1 - rho) ** 0.5 * G) / d ** 0.5
        else:
            U = torch.stack([orthonormal_keys(N, d, generator=g) for _ in range(b)])
        scores = U @ U.transpose(1, 2)  # [b, j, i] = u_i^T u_j: coordinate i of W u_j
        hits += int((scores.argmax(-1) == torch.arange(N)).sum())
        sq += float(((scores - torch.eye(N, dtype=scores.dtype)) ** 2).sum())
        done += b
    n = trials * N
    acc = hits / n
    return RecallSimulation(acc, sq / n, n, (acc * (1 - acc) / n) ** 0.5)


def softmax_recall(keys: torch.Tensor, values: torch.Tensor, queries: torch.Tensor,
                   beta: float = 1.0) -> torch.Tensor:
    """Softmax retrieval (one attention head, or one modern-Hopfield update): row k is
    ``sum_i softmax(beta * keys @ q_k)_i v_i``, ``[n, d']``. As beta grows it returns the value of
    the key with the largest inner product; the linear memory ``recall(store(keys, values), q)``
    is the same sum with the softmax weights replaced by the raw scores u_i^T q."""
    keys = _mem_matrix("keys", keys)
    values = _mem_matrix("values", values)
    queries = _mem_matrix("queries", queries)
    beta = _mem_check_float("beta", beta, 0.0, 1e6)
    if keys.shape[0] != values.shape[0]:
        raise ValueError(f"keys and values must hold the same number of pairs N, got keys "
                         f"{tuple(keys.shape)} and values {tuple(values.shape)}")
    if queries.shape[1] != keys.shape[1]:
        raise ValueError(f"queries must have d={keys.shape[1]} columns to match keys, got "
                         f"{tuple(queries.shape)}")
    weights = torch.softmax(beta * (queries.to(keys.dtype) @ keys.T), dim=1)
    return weights.to(values.dtype) @ values


def hopfield_step(patterns: torch.Tensor, probes: torch.Tensor) -> torch.Tensor:
    """One synchronous update of a classical Hopfield network storing +-1 ``patterns [N, d]``:
    ``sign(W x)`` with ``W = sum_i xi_i xi_i^T - N I`` (outer-product storage, keys = values, no
    self-connections); sign(0) is taken as +1. ``probes [n, d]`` -> ``[n, d]`` of +-1."""
    patterns = _mem_matrix("patterns", patterns)
    probes = _mem_matrix("probes", probes)
    if probes.shape[1] != patterns.shape[1]:
        raise ValueError(f"probes must have d={patterns.shape[1]} columns, got "
                         f"{tuple(probes.shape)}")
    for name, x in (("patterns", patterns), ("probes", probes)):
        if x.numel() and not bool(((x == 1) | (x == -1)).all()):
            raise ValueError(f"{name} must hold only +1/-1 entries")
    W = patterns.T @ patterns
    W = W - torch.diag(torch.diagonal(W))
    h = probes.to(W.dtype) @ W.T
    return torch.where(h >= 0, 1.0, -1.0).to(probes.dtype)




# ==== section: value-matrix (chapter 4) ====
# (owned by the value-matrix (chapter 4) work; add functions between this marker and the next)

# ==== end of sections ====
