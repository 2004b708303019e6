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
from ._validate import make_generator


def _mem_matrix(name: str, x, ndim: int = 2) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if not (x.is_floating_point()):
        raise ValueError(f"{name} must have a floating dtype, got {x.dtype}")
    return x


def random_keys(N: int, d: int, seed: int | None = None, generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``Tensor[N, d]`` of independent Gaussian keys: every entry N(0, 1/d), so E||u_i||^2 = 1.

    Args:
        N: number of keys (>= 1). d: key dimension (>= 1).
        seed / generator: source of randomness (a fresh generator from ``seed``, or a stream).
    """
    N = _mem_check_int("N", N, 1, 10_000_000)
    d = _mem_check_int("d", d, 1, 1_000_000)
    g = make_generator(seed, generator)
    return torch.randn((N, d), generator=g, dtype=dtype) / d ** 0.5


def orthonormal_keys(N: int, d: int, seed: int | None = None,
                     generator: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``Tensor[N, d]`` with orthonormal rows (u_i^T u_j = 1[i = j]), a random rotation of the first
    N standard basis vectors. Needs N <= d: at most d vectors of R^d are orthonormal."""
    d = _mem_check_int("d", d, 1, 1_000_000)
    N = _mem_check_int("N", N, 1, d)
    g = make_generator(seed, generator)
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
    g = make_generator(seed, generator)
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
    ``mse`` (mean of ||W u_j - v_j||^2), ``n`` (number of recalls) and ``stderr`` of the accuracy
    (binomial, as if the n recalls were independent). The recalls of one memory share its keys, so
    ``memory_stderr`` and ``mse_stderr`` give the standard errors of ``accuracy`` and ``mse`` from
    the spread over the independent memories (nan when there is only one memory)."""
    accuracy: float
    mse: float
    n: int
    stderr: float
    memory_stderr: float = float("nan")
    mse_stderr: float = float("nan")


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
        ``RecallSimulation(accuracy, mse, n, stderr, memory_stderr, mse_stderr)``.
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
    g = make_generator(seed, None)
    trials = -(-n_recalls // N)
    hits, sq = 0, 0.0
    mem_hits, mem_sq = [], []
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
        hit = scores.argmax(-1) == torch.arange(N)
        err = (scores - torch.eye(N, dtype=scores.dtype)) ** 2
        hits += int(hit.sum())
        sq += float(err.sum())
        mem_hits.append(hit.double().mean(-1))
        mem_sq.append(err.sum((1, 2)) / N)
        done += b
    n = trials * N
    acc = hits / n
    if trials > 1:
        se_acc = float(torch.cat(mem_hits).std() / trials ** 0.5)
        se_mse = float(torch.cat(mem_sq).std() / trials ** 0.5)
    else:
        se_acc = se_mse = float("nan")
    return RecallSimulation(acc, sq / n, n, (acc * (1 - acc) / n) ** 0.5, se_acc, se_mse)


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
#
# The value-matrix construction (book/proofs/value_matrix.md, thm-wv-construction). With W_E [V, d]
# (row i = token i) and a neighbourhood matrix A [V, V] (A[i, j] = 1 when j may appear in the
# context of target i),
#     W_V* = sum_i W_E(i) (sum_j A[i, j] W_E(j))^T = W_E^T A W_E            ([d, d]),
# so that the model's logits f = W_E W_V* h = G A G c with G = W_E W_E^T and c the attention-weighted
# token counts of the context. With orthonormal rows (G = I), f_k = (A c)_k: the share of the
# context that lies in k's neighbourhood.

import math as _vm_math  # noqa: E402

import torch  # noqa: E402, F811

from ._validate import check_float as _vm_check_float  # noqa: E402
from ._validate import check_int as _vm_check_int  # noqa: E402


def _vm_embedding(name: str, W_E, allow_ensemble: bool = True) -> torch.Tensor:
    if not isinstance(W_E, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor [V, d], got {type(W_E).__name__}")
    ok = (2, 3) if allow_ensemble else (2,)
    if W_E.ndim not in ok:
        want = "[V, d] or [E, V, d]" if allow_ensemble else "[V, d]"
        raise ValueError(f"{name} must have shape {want}, got {tuple(W_E.shape)}")
    if not W_E.is_floating_point():
        raise ValueError(f"{name} must have a floating dtype, got {W_E.dtype}")
    V = W_E.shape[-2]
    if V < 2 or V & (V - 1):
        raise ValueError(f"{name} must have V = 2**m rows (m >= 1), got V={V}")
    return W_E


def _vm_mask(mask, V: int) -> torch.Tensor:
    """A neighbourhood given as a family, a BoolTensor[V, V] or a float weight matrix [V, V]."""
    from .latent import Neighbourhood
    if isinstance(mask, Neighbourhood):
        m = V.bit_length() - 1
        from .latent import LatentSpace
        space = LatentSpace(m)
        mask.validate(space)
        return mask.mask(space).double()
    if not isinstance(mask, torch.Tensor):
        raise ValueError("mask must be a neighbourhood family, a BoolTensor[V, V] or a float "
                         f"Tensor[V, V], got {type(mask).__name__}")
    if tuple(mask.shape) != (V, V):
        raise ValueError(f"mask must have shape ({V}, {V}) to match W_E, got {tuple(mask.shape)}")
    if mask.dtype == torch.bool:
        return mask.double()
    if not mask.is_floating_point():
        return mask.double()
    if not bool(torch.isfinite(mask).all()):
        raise ValueError("mask must hold finite weights")
    return mask.double()


def value_matrix_construction(W_E: torch.Tensor, mask) -> torch.Tensor:
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
    Returns:
        ``W_E^T A W_E`` in W_E's dtype.
    """
    W_E = _vm_embedding("W_E", W_E)
    A = _vm_mask(mask, W_E.shape[-2]).to(device=W_E.device)
    E64 = W_E.double()
    out = E64.transpose(-1, -2) @ A @ E64
    return out.to(W_E.dtype)


def pm1_embedding(m: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The centred +-1 embedding ``e_z = (2 z - 1) / sqrt(m)`` in d = m: ``Tensor[2**m, m]``.

    Every row has norm 1 and ``<e_z, e_z'> = 1 - 2 D_H(z, z') / m``.
    """
    m = _vm_check_int("m", m, 1, 16)
    from .latent import LatentSpace
    Z = LatentSpace(m).latents.to(dtype)
    return (2 * Z - 1) / _vm_math.sqrt(m)


def strict_correct(logits: torch.Tensor, targets: torch.Tensor, rtol: float = 1e-9
                   ) -> torch.Tensor:
    """``BoolTensor[..., n]``: the target's logit beats every other logit by more than
    ``rtol * max|logit|`` (ties, up to rounding, count as errors).

    Args:
        logits: ``[..., n, V]``; targets: ``LongTensor[n]`` (or ``[..., n]``).
    """
    if not isinstance(logits, torch.Tensor) or logits.ndim < 2:
        raise ValueError("logits must be a Tensor [n, V] (or [..., n, V]), got "
                         f"{type(logits).__name__} {tuple(getattr(logits, 'shape', ()))}")
    if not isinstance(targets, torch.Tensor) or targets.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"targets must be a LongTensor [n], got {type(targets).__name__}")
    if targets.shape[-1] != logits.shape[-2]:
        raise ValueError(f"targets must have n={logits.shape[-2]} entries, got "
                         f"{tuple(targets.shape)}")
    rtol = _vm_check_float("rtol", rtol, 0.0, 1.0)
    V = logits.shape[-1]
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= V):
        raise ValueError(f"targets must hold token ids in 0..{V - 1}")
    t = targets.expand(logits.shape[:-1]).long()
    own = logits.gather(-1, t.unsqueeze(-1)).squeeze(-1)
    others = logits.scatter(-1, t.unsqueeze(-1), float("-inf")).max(-1).values
    scale = logits.abs().amax(-1).clamp(min=1e-300)
    return own > others + rtol * scale


def _vm_spec(spec):
    from .task import TaskSpec
    if not isinstance(spec, TaskSpec):
        raise ValueError(f"spec must be a TaskSpec, got {type(spec).__name__}")
    return spec


def memory_accuracy(spec, W_E: torch.Tensor, W_V: torch.Tensor, n: int = 4096, seed: int = 0,
                    W_KQ: torch.Tensor | None = None) -> float:
    """Accuracy (ties count as errors) of the model with the given matrices on ``n`` fresh
    examples of ``spec`` drawn with ``seed``; W_KQ defaults to 0 (uniform attention).

    Float64 throughout, in the model's orientation: logits = W_E W_V h. With W_KQ None the logits
    are computed from token frequencies (h = W_E^T c); otherwise ``OneLayerTransformer`` runs.
    """
    spec = _vm_spec(spec)
    W_E = _vm_embedding("W_E", W_E, allow_ensemble=False)
    if W_E.shape[0] != spec.V:
        raise ValueError(f"W_E must have V={spec.V} rows for this task, got {W_E.shape[0]}")
    d = W_E.shape[1]
    if not isinstance(W_V, torch.Tensor) or tuple(W_V.shape) != (d, d):
        raise ValueError(f"W_V must be a Tensor of shape ({d}, {d}), got "
                         f"{tuple(getattr(W_V, 'shape', ()))}")
    if W_KQ is not None and (not isinstance(W_KQ, torch.Tensor) or tuple(W_KQ.shape) != (d, d)):
        raise ValueError(f"W_KQ must be None or a Tensor of shape ({d}, {d}), got "
                         f"{tuple(getattr(W_KQ, 'shape', ()))}")
    n = _vm_check_int("n", n, 1, 10_000_000)
    seed = _vm_check_int("seed", seed, 0, 2 ** 62)
    from .model import OneLayerTransformer
    from .task import sample
    E64, V64 = W_E.detach().double().cpu(), W_V.detach().double().cpu()
    ctx, y = sample(spec, n, seed=seed)
    hits = 0
    if W_KQ is None:
        # uniform attention: h = W_E^T c with c the token frequencies, logits = W_E W_V h
        # (the same numbers as OneLayerTransformer.forward, without the [n, L, d] gather)
        read = E64 @ V64 @ E64.T                     # [V, V]: logits = c @ read.T
        for i in range(0, n, 4096):
            c = ctx[i:i + 4096]
            freq = torch.zeros((c.shape[0], spec.V), dtype=torch.float64)
            freq.scatter_add_(1, c, torch.full(c.shape, 1.0 / spec.L, dtype=torch.float64))
            hits += int(strict_correct(freq @ read.T, y[i:i + 4096]).sum())
        return hits / n
    model = OneLayerTransformer.from_weights(E64, W_KQ.detach().double().cpu(), V64, device="cpu")
    with torch.no_grad():
        for i in range(0, n, 2048):
            hits += int(strict_correct(model(ctx[i:i + 2048]), y[i:i + 2048]).sum())
    return hits / n


def construction_accuracy(spec, W_E: torch.Tensor | None = None, n: int = 4096, seed: int = 0,
                          mask=None) -> float:
    """Accuracy (ties count as errors) of the constructed model ``W_V* = W_E^T A W_E`` with uniform
    attention on ``n`` fresh examples of ``spec``.

    Args:
        spec: the task.
        W_E: embeddings ``[V, d]``; None means orthonormal ones, for which the logits are exactly
            ``A c`` (thm-wv-construction) and are computed from integer token counts, so ties are
            exact.
        mask: the neighbourhood used by the construction (default: the task's own).
    """
    spec = _vm_spec(spec)
    n = _vm_check_int("n", n, 1, 10_000_000)
    seed = _vm_check_int("seed", seed, 0, 2 ** 62)
    A = _vm_mask(spec.neighbourhood if mask is None else mask, spec.V)
    if W_E is not None:
        W_E = _vm_embedding("W_E", W_E, allow_ensemble=False)
        return memory_accuracy(spec, W_E, value_matrix_construction(W_E.double(), A), n, seed)
    from .task import sample
    ctx, y = sample(spec, n, seed=seed)
    hits = 0
    for i in range(0, n, 4096):
        c = ctx[i:i + 4096]
        counts = torch.zeros((c.shape[0], spec.V), dtype=torch.float64)
        counts.scatter_add_(1, c, torch.ones_like(c, dtype=torch.float64))
        f = counts @ A.T                       # f[b, k] = sum_j A[k, j] counts[b, j]
        hits += int(strict_correct(f, y[i:i + 4096], rtol=0.0).sum())
    return hits / n


def identity_accuracy(spec, W_E: torch.Tensor | None = None, n: int = 4096, seed: int = 0) -> float:
    """Accuracy (ties count as errors) of ``W_V = I`` with uniform attention; W_E None means
    orthonormal embeddings (prop-identity-fails: the answer is exactly 0)."""
    spec = _vm_spec(spec)
    if W_E is None:
        from .model import init_embedding
        g = torch.Generator().manual_seed(0)
        W_E = init_embedding(spec.V, spec.V, "orthonormal", g, dtype=torch.float64)
    W_E = _vm_embedding("W_E", W_E, allow_ensemble=False)
    return memory_accuracy(spec, W_E, torch.eye(W_E.shape[1], dtype=torch.float64), n, seed)

# ==== end of sections ====
