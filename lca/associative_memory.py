"""Chapter 1, associative memory: outer-product memories (store, recall, crosstalk), softmax and
Hopfield recall, their closed forms (exact recall failure, union and Chernoff bounds, capacity),
the chapter's figures and its exercise checkers."""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import torch
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from ._validate import check_dtype, check_finite, check_float, check_int, check_size, make_generator
from .checks import CheckResult, run_cases
from .model import orthonormal_rows
from .style import COLORS, CYCLE, DIVERGING_CMAP, legend_below, legend_right, new_figure

# A linear associative memory stores N pairs (key u_i -> value v_i) as one matrix
#     W = sum_i v_i u_i^T = values^T keys          ([d', d])
# and recalls W q for a query q. Keys are rows of ``keys [N, d]``, values rows of ``values [N, d']``.


KEY_LIMIT = 2**25  # entries of random_keys / correlated_keys (256 MiB of float64, a few seconds)
# work of simulate_onehot_recall, trials * N * d * (N + 32): the Gram products plus the Gaussian
# draws (one draw costs about as much as 32 multiply-adds); 2**32 is a few seconds
SIMULATION_COST = 2**32


def _float_matrix(name: str, x, ndim: int = 2) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if not (x.is_floating_point()):
        raise ValueError(f"{name} must have a floating dtype, got {x.dtype}")
    return check_finite(name, x)


def random_keys(
    N: int,
    d: int,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """``Tensor[N, d]`` of independent Gaussian keys: every entry N(0, 1/d), so E||u_i||^2 = 1.

    Args:
        N: number of keys (>= 1). d: key dimension (>= 1).
        seed / generator: source of randomness (a fresh generator from ``seed``, or a stream).
    """
    N = check_int("N", N, 1, 10_000_000)
    d = check_int("d", d, 1, 1_000_000)
    check_size("N", N * d, KEY_LIMIT, "key entries (N * d)")
    dtype = check_dtype("dtype", dtype)
    g = make_generator(seed, generator)
    return torch.randn((N, d), generator=g, dtype=dtype) / d**0.5


def orthonormal_keys(
    N: int,
    d: int,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """``Tensor[N, d]`` with orthonormal rows (u_i^T u_j = 1[i = j]), a random rotation of the first
    N standard basis vectors. Needs N <= d: at most d vectors of R^d are orthonormal."""
    d = check_int("d", d, 1, 1_000_000)
    N = check_int("N", N, 1, d)
    dtype = check_dtype("dtype", dtype)
    return orthonormal_rows(N, d, seed, generator=generator, dtype=dtype, haar=True)


def correlated_keys(
    N: int,
    d: int,
    rho: float,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """``Tensor[N, d]``: keys u_i = sqrt(rho) c + sqrt(1 - rho) g_i with one shared c and
    independent g_i, all N(0, I/d). Each key alone has the law of ``random_keys`` but any two have
    E[u_i^T u_j] = rho: the keys are exchangeable, not independent (0 <= rho < 1; chapter 1 writes
    gamma for rho)."""
    N = check_int("N", N, 1, 10_000_000)
    d = check_int("d", d, 1, 1_000_000)
    rho = check_float("rho", rho, 0.0, 1.0, hi_open=True)
    check_size("N", N * d, KEY_LIMIT, "key entries (N * d)")
    dtype = check_dtype("dtype", dtype)
    g = make_generator(seed, generator)
    c = torch.randn((1, d), generator=g, dtype=torch.float64)
    G = torch.randn((N, d), generator=g, dtype=torch.float64)
    # in place: (sqrt(rho) c + sqrt(1 - rho) G) / sqrt(d), without full-size temporaries
    G.mul_((1 - rho) ** 0.5).add_(c, alpha=rho**0.5).div_(d**0.5)
    return G.to(dtype)


def store(keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Outer-product storage: ``W = sum_i values[i] keys[i]^T = values^T @ keys``, ``[d', d]``.

    Args:
        keys: ``[N, d]``, row i is the key u_i.
        values: ``[N, d']``, row i is the value v_i.
    """
    keys = _float_matrix("keys", keys)
    values = _float_matrix("values", values)
    if keys.shape[0] != values.shape[0]:
        raise ValueError(
            f"keys and values must hold the same number of pairs N, got keys "
            f"{tuple(keys.shape)} and values {tuple(values.shape)}"
        )
    return values.T @ keys.to(values.dtype)


def recall(W: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Linear recall ``queries @ W^T``: row k is W q_k (``[n, d']`` for queries ``[n, d]``)."""
    W = _float_matrix("W", W)
    queries = _float_matrix("queries", queries)
    if queries.shape[1] != W.shape[1]:
        raise ValueError(
            f"queries must have d={W.shape[1]} columns to match W {tuple(W.shape)}, "
            f"got {tuple(queries.shape)}"
        )
    return queries.to(W.dtype) @ W.T


def recall_argmax(W: torch.Tensor, queries: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Nearest stored value by inner product: ``LongTensor[n]``, entry k = argmax_i <v_i, W q_k>
    (the first index among ties). With one-hot values (``values = I_N``) this is argmax_i of the
    i-th coordinate of W q_k."""
    out = recall(W, queries)
    values = _float_matrix("values", values)
    if values.shape[1] != W.shape[0]:
        raise ValueError(
            f"values must have d'={W.shape[0]} columns to match W {tuple(W.shape)}, got {tuple(values.shape)}"
        )
    return torch.argmax(out @ values.to(out.dtype).T, dim=1)


def crosstalk(keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``Tensor[N, d']``: row j is the cross-talk c_j = sum_{i != j} (u_i^T u_j) v_i, so that
    ``recall(store(keys, values), keys)[j] = ||u_j||^2 v_j + c_j``."""
    keys = _float_matrix("keys", keys)
    values = _float_matrix("values", values)
    if keys.shape[0] != values.shape[0]:
        raise ValueError(
            f"keys and values must hold the same number of pairs N, got keys "
            f"{tuple(keys.shape)} and values {tuple(values.shape)}"
        )
    G = keys @ keys.T
    G = G - torch.diag(torch.diagonal(G))
    return G.to(values.dtype) @ values


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


def simulate_onehot_recall(
    N: int, d: int, n_recalls: int = 20_000, seed: int = 0, keys: str = "gaussian", rho: float = 0.0
) -> RecallSimulation:
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
    N = check_int("N", N, 1, 1_000_000)
    d = check_int("d", d, 1, 1_000_000)
    n_recalls = check_int("n_recalls", n_recalls, 1, 1_000_000)
    if keys not in ("gaussian", "orthonormal", "correlated"):
        raise ValueError(f"keys must be one of ['correlated', 'gaussian', 'orthonormal'], got {keys!r}")
    rho = check_float("rho", rho, 0.0, 1.0, hi_open=True)
    if keys == "orthonormal" and N > d:
        raise ValueError(f"N must be in 1..d={d} for orthonormal keys, got {N}")
    trials = -(-n_recalls // N)
    check_size("N", N * max(N, d), 1 << 26, "entries of one memory's keys or Gram matrix (N * max(N, d))")
    work = trials * N * d * (N + 32)
    check_size("n_recalls", work, SIMULATION_COST, "units of work (ceil(n_recalls / N) N d (N + 32))")
    g = make_generator(seed, None)
    hits, sq = 0, 0.0
    mem_hits, mem_sq = [], []
    # about 2**22 Gram entries and at most 2**24 key entries per batch
    per_batch = max(1, min((1 << 22) // (N * N), (1 << 24) // (N * d)))
    done = 0
    while done < trials:
        b = min(per_batch, trials - done)
        if keys == "gaussian":
            U = torch.randn((b, N, d), generator=g, dtype=torch.float64) / d**0.5
        elif keys == "correlated":
            c = torch.randn((b, 1, d), generator=g, dtype=torch.float64)
            G = torch.randn((b, N, d), generator=g, dtype=torch.float64)
            U = (rho**0.5 * c + (1 - rho) ** 0.5 * G) / d**0.5
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
        se_acc = float(torch.cat(mem_hits).std() / trials**0.5)
        se_mse = float(torch.cat(mem_sq).std() / trials**0.5)
    else:
        se_acc = se_mse = float("nan")
    return RecallSimulation(acc, sq / n, n, (acc * (1 - acc) / n) ** 0.5, se_acc, se_mse)


def softmax_recall(
    keys: torch.Tensor, values: torch.Tensor, queries: torch.Tensor, beta: float = 1.0
) -> torch.Tensor:
    """Softmax retrieval (one attention head, or one modern-Hopfield update): row k is
    ``sum_i softmax(beta * keys @ q_k)_i v_i``, ``[n, d']``. As beta grows it returns the value of
    the key with the largest inner product; the linear memory ``recall(store(keys, values), q)``
    is the same sum with the softmax weights replaced by the raw scores u_i^T q."""
    keys = _float_matrix("keys", keys)
    values = _float_matrix("values", values)
    queries = _float_matrix("queries", queries)
    beta = check_float("beta", beta, 0.0, 1e6)
    if keys.shape[0] != values.shape[0]:
        raise ValueError(
            f"keys and values must hold the same number of pairs N, got keys "
            f"{tuple(keys.shape)} and values {tuple(values.shape)}"
        )
    if queries.shape[1] != keys.shape[1]:
        raise ValueError(
            f"queries must have d={keys.shape[1]} columns to match keys, got {tuple(queries.shape)}"
        )
    weights = torch.softmax(beta * (queries.to(keys.dtype) @ keys.T), dim=1)
    return weights.to(values.dtype) @ values


def _check_pm1(patterns: torch.Tensor, probes: torch.Tensor) -> None:
    if probes.shape[1] != patterns.shape[1]:
        raise ValueError(
            f"patterns and probes must have the same number d of columns, got patterns "
            f"{tuple(patterns.shape)} and probes {tuple(probes.shape)}"
        )
    for name, x in (("patterns", patterns), ("probes", probes)):
        if x.numel() and not bool(((x == 1) | (x == -1)).all()):
            raise ValueError(f"{name} must hold only +1/-1 entries")


def hopfield_step(patterns: torch.Tensor, probes: torch.Tensor) -> torch.Tensor:
    """One synchronous update of a classical Hopfield network storing +-1 ``patterns [N, d]``:
    ``sign(W x)`` with ``W = sum_i xi_i xi_i^T - N I`` (outer-product storage, keys = values, no
    self-connections); sign(0) is taken as +1. ``probes [n, d]`` -> ``[n, d]`` of +-1."""
    patterns = _float_matrix("patterns", patterns)
    probes = _float_matrix("probes", probes)
    _check_pm1(patterns, probes)
    W = patterns.T @ patterns
    W = W - torch.diag(torch.diagonal(W))
    h = probes.to(W.dtype) @ W.T
    return torch.where(h >= 0, 1.0, -1.0).to(probes.dtype)


def repair_fraction(patterns: torch.Tensor, probes: torch.Tensor) -> float:
    """Fraction of the probes that one synchronous update (``hopfield_step``) restores exactly:
    ``probes [N, d]`` holds one corrupted copy of each of the ``patterns [N, d]`` (row j of
    ``probes`` is a copy of row j of ``patterns``), and probe j counts if
    sign(W probes[j]) = patterns[j] in every one of its d bits."""
    patterns = _float_matrix("patterns", patterns)
    probes = _float_matrix("probes", probes)
    if probes.shape != patterns.shape:
        raise ValueError(
            f"probes must have the shape of patterns {tuple(patterns.shape)} (one probe per "
            f"pattern), got {tuple(probes.shape)}"
        )
    restored = (hopfield_step(patterns, probes) == patterns).all(1)
    return float(restored.double().mean())


# The classical Hopfield network stores +-1 patterns xi_1..xi_N in W = sum_i xi_i xi_i^T - N I. Two
# capacities are quoted for it and they measure different things (book/proofs/memory.md,
# prop-hopfield-one-step): exact recall (every bit right), whose scale is d / (2 ln d), and
# retrieval with a few wrong bits after the dynamics has converged, about 0.14 d as d -> infinity.
# work of one simulation, n_memories (N d (N + d) + 2**14): the products of each memory plus a
# fixed cost per memory (tiny batched products are slow); 2**32 is a few seconds
HOPFIELD_COST = 2**32
BINOMIAL_LIMIT = 2**24  # terms (N - 1)(d - 1) of the exact per-bit law


def hopfield_probes(
    N: int,
    d: int,
    flips: int = 0,
    n_memories: int = 1,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(patterns, probes)``, both ``[n_memories, N, d]`` float64 of +-1: independent uniform
    random patterns, and for each pattern a probe with exactly ``flips`` of its d bits flipped (a
    uniformly random set of positions). Memory t stores ``patterns[t]``; ``probes[t, j]`` is a
    corrupted copy of ``patterns[t, j]``."""
    N = check_int("N", N, 1, 1_000_000)
    d = check_int("d", d, 1, 1_000_000)
    flips = check_int("flips", flips, 0, d)
    n_memories = check_int("n_memories", n_memories, 1, 10_000_000)
    check_size("n_memories", n_memories * N * d, KEY_LIMIT, "pattern entries (n_memories * N * d)")
    g = make_generator(seed, generator)
    patterns = torch.where(torch.rand((n_memories, N, d), generator=g) < 0.5, -1.0, 1.0).double()
    where = torch.rand((n_memories, N, d), generator=g).argsort(-1)[..., :flips]
    mask = torch.zeros((n_memories, N, d), dtype=torch.bool).scatter_(-1, where, True)
    return patterns, torch.where(mask, -patterns, patterns)


def _hopfield_fields(patterns: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Local fields W x of each memory, ``[T, n, d]``, with W = xi^T xi - N I (zero diagonal)."""
    return (x @ patterns.transpose(-1, -2)) @ patterns - patterns.shape[-2] * x


class HopfieldRepair(NamedTuple):
    """Monte Carlo one-step repair in random Hopfield memories (``simulate_hopfield_repair``).
    Fractions over all probes, each with its standard error from the spread over the independent
    memories (nan for one memory): ``one_step``, probes that one synchronous update sign(W x)
    restores exactly; ``fixed_point``, stored patterns with sign(W xi) = xi; ``bit_error``, wrong
    bits after the one update; ``softmax``, probes restored exactly by the sign of one softmax
    update (``softmax_recall`` with keys = values = the patterns)."""

    one_step: float
    one_step_stderr: float
    fixed_point: float
    fixed_point_stderr: float
    bit_error: float
    bit_error_stderr: float
    softmax: float
    softmax_stderr: float
    n_probes: int


def _mean_se(per_memory: torch.Tensor) -> tuple[float, float]:
    t = per_memory.numel()
    se = float(per_memory.std() / t**0.5) if t > 1 else float("nan")
    return float(per_memory.mean()), se


def _check_hopfield_run(N, d, flips, n_memories, seed) -> tuple[int, int, int, int, int]:
    """The checked arguments of a Hopfield simulation, and its cost guard."""
    N = check_int("N", N, 1, 1_000_000)
    d = check_int("d", d, 1, 1_000_000)
    flips = check_int("flips", flips, 0, d)
    n_memories = check_int("n_memories", n_memories, 1, 10_000_000)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    work = n_memories * (N * d * (N + d) + 2**14)
    check_size("n_memories", work, HOPFIELD_COST, "units of work (n_memories (N d (N + d) + 2**14))")
    return N, d, flips, n_memories, seed


def simulate_hopfield_repair(
    N: int, d: int, flips: int = 0, n_memories: int = 100, seed: int = 0, beta: float = 1.0
) -> HopfieldRepair:
    """Store N random +-1 patterns in each of ``n_memories`` independent Hopfield memories of
    dimension d, probe every pattern once with ``flips`` bits flipped (``hopfield_probes``) and
    apply one update: the classical ``hopfield_step`` and the softmax update
    sign(``softmax_recall(patterns, patterns, probe, beta)``). Every field is an integer, so the
    counts do not depend on the CPU's floating-point code path. Returns ``HopfieldRepair``."""
    N, d, flips, n_memories, seed = _check_hopfield_run(N, d, flips, n_memories, seed)
    beta = check_float("beta", beta, 0.0, 1e6)
    g = make_generator(seed, None)
    per_batch = max(1, min(n_memories, (1 << 23) // (N * max(N, d))))
    acc = {k: [] for k in ("one", "fix", "bit", "soft")}
    done = 0
    while done < n_memories:
        b = min(per_batch, n_memories - done)
        xi, x = hopfield_probes(N, d, flips, b, generator=g)
        y = torch.where(_hopfield_fields(xi, x) >= 0, 1.0, -1.0)
        y0 = torch.where(_hopfield_fields(xi, xi) >= 0, 1.0, -1.0)
        att = torch.softmax(beta * (x @ xi.transpose(-1, -2)), dim=-1) @ xi
        acc["one"].append((y == xi).all(-1).double().mean(-1))
        acc["fix"].append((y0 == xi).all(-1).double().mean(-1))
        acc["bit"].append((y != xi).double().mean((-1, -2)))
        acc["soft"].append((torch.where(att >= 0, 1.0, -1.0) == xi).all(-1).double().mean(-1))
        done += b
    out = [v for k in ("one", "fix", "bit", "soft") for v in _mean_se(torch.cat(acc[k]))]
    return HopfieldRepair(*out, n_probes=n_memories * N)


def _converge(patterns: torch.Tensor, x: torch.Tensor, max_sweeps: int, g: torch.Generator):
    """Asynchronous dynamics on a batch of memories: sweep the d bits in a random order (shared by
    the batch), setting x_k = sign((W x)_k) (sign(0) = +1), until a sweep changes nothing or
    ``max_sweeps`` sweeps. Returns (states, sweeps used, converged)."""
    x = x.clone()
    d = x.shape[-1]
    W = patterns.transpose(-1, -2) @ patterns
    W = W - torch.diag_embed(torch.diagonal(W, dim1=-2, dim2=-1))
    h = x @ W
    for sweep in range(1, max_sweeps + 1):
        changed = False
        for k in torch.randperm(d, generator=g).tolist():
            delta = torch.where(h[..., k] >= 0, 1.0, -1.0) - x[..., k]
            if bool(delta.any()):
                changed = True
                x[..., k] += delta
                h += delta.unsqueeze(-1) * W[..., k, :].unsqueeze(-2)
        if not changed:
            return x, sweep, True
    return x, max_sweeps, False


def hopfield_converge(
    patterns: torch.Tensor, probes: torch.Tensor, max_sweeps: int = 100, seed: int = 0
) -> torch.Tensor:
    """Run the classical Hopfield network (``hopfield_step``'s W) from each probe with asynchronous
    updates, one bit at a time in a random order per sweep, until no bit changes: ``[n, d]`` of
    +-1, each row a fixed point of ``hopfield_step``. W is symmetric with a zero diagonal, so the
    energy -x^T W x / 2 never increases and the dynamics stops; ValueError if it has not after
    ``max_sweeps`` sweeps."""
    patterns = _float_matrix("patterns", patterns)
    probes = _float_matrix("probes", probes)
    _check_pm1(patterns, probes)
    max_sweeps = check_int("max_sweeps", max_sweeps, 1, 100_000)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    N, d = patterns.shape
    check_size("probes", probes.shape[0] * d * (N + d), HOPFIELD_COST, "units of work (n d (N + d))")
    check_size("probes", d * (probes.shape[0] + d), KEY_LIMIT, "entries of W and the states (d (n + d))")
    x, _, ok = _converge(patterns.double(), probes.double(), max_sweeps, make_generator(seed, None))
    if not ok:
        raise ValueError(f"max_sweeps={max_sweeps} sweeps did not reach a fixed point; raise max_sweeps")
    return x.to(probes.dtype)


class HopfieldRetrieval(NamedTuple):
    """Monte Carlo retrieval after convergence (``simulate_hopfield_retrieval``): ``bit_error``,
    the fraction of bits of the final state that differ from the probed pattern; ``near``, the
    fraction of probes that end with at most ``tolerance`` of their bits wrong; ``exact``, the
    fraction that end exactly on their pattern (each with its standard error over the memories);
    ``sweeps``, the asynchronous sweeps the slowest probe needed."""

    bit_error: float
    bit_error_stderr: float
    near: float
    near_stderr: float
    exact: float
    exact_stderr: float
    sweeps: int
    n_probes: int


def simulate_hopfield_retrieval(
    N: int,
    d: int,
    flips: int = 0,
    n_memories: int = 20,
    seed: int = 0,
    max_sweeps: int = 100,
    tolerance: float = 0.02,
) -> HopfieldRetrieval:
    """Like ``simulate_hopfield_repair``, but runs the asynchronous dynamics of
    ``hopfield_converge`` from every probe to its fixed point, then compares with the pattern
    (``tolerance``: the largest fraction of wrong bits that ``near`` still counts, in [0, 1])."""
    N, d, flips, n_memories, seed = _check_hopfield_run(N, d, flips, n_memories, seed)
    max_sweeps = check_int("max_sweeps", max_sweeps, 1, 100_000)
    tolerance = check_float("tolerance", tolerance, 0.0, 1.0)
    check_size(
        "n_memories", n_memories * d * (N + d), KEY_LIMIT, "entries of weights and states (T d (N + d))"
    )
    g = make_generator(seed, None)
    xi, x = hopfield_probes(N, d, flips, n_memories, generator=g)
    y, sweeps, ok = _converge(xi, x, max_sweeps, g)
    if not ok:
        raise ValueError(f"max_sweeps={max_sweeps} sweeps did not reach a fixed point; raise max_sweeps")
    err = (y != xi).double().mean(-1)
    near = (err <= tolerance + 1e-12).double().mean(-1)
    exact = (err == 0).double().mean(-1)
    return HopfieldRetrieval(
        *_mean_se(err.mean(-1)), *_mean_se(near), *_mean_se(exact), sweeps, n_memories * N
    )


def hopfield_bit_error(N: int, d: int, flips: int = 0) -> tuple[float, float]:
    """Exact probability that one synchronous update of a random Hopfield memory (N uniform +-1
    patterns, ``hopfield_step``) gets one given bit of a probe wrong, for a probe of a stored
    pattern with ``flips`` bits flipped: ``(p_kept, p_flipped)``, for a bit the probe has right and
    for a flipped one. The field times the pattern's bit is s + n with s = d - 1 - 2 flips
    (kept) or d + 1 - 2 flips (flipped) and n a sum of (N - 1)(d - 1) independent +-1 signs;
    the bit is wrong if s + n < 0 and, by the sign(0) = +1 rule, with probability 1/2 if s + n = 0
    (book/proofs/memory.md, prop-hopfield-one-step)."""
    N = check_int("N", N, 1, 10**9)
    d = check_int("d", d, 1, 10**9)
    flips = check_int("flips", flips, 0, d)
    M = (N - 1) * (d - 1)
    check_size("N", M, BINOMIAL_LIMIT, "binomial terms ((N - 1)(d - 1))")

    def wrong(s: int) -> float:
        # n = 2B - M with B ~ Bin(M, 1/2): wrong iff B < (M - s) / 2, half weight at equality
        top = (M - s) // 2  # largest B with 2B <= M - s
        if top < 0:
            return 0.0
        k = torch.arange(top + 1, dtype=torch.float64)
        logp = math.lgamma(M + 1) - torch.lgamma(k + 1) - torch.lgamma(M - k + 1) - M * math.log(2.0)
        p = torch.exp(logp)
        if 2 * top == M - s:  # the tie s + n = 0
            p[-1] *= 0.5
        return float(p.sum().clamp(0.0, 1.0))

    return wrong(d - 1 - 2 * flips), wrong(d + 1 - 2 * flips)


def hopfield_repair_independent(N: int, d: int, flips: int = 0) -> float:
    """Approximation ``(1 - p_kept)^(d - flips) (1 - p_flipped)^flips`` of the probability that one
    update restores a probe exactly, treating its d bits as independent (``hopfield_bit_error``).
    Not exact: the bits share the random overlaps of the probe with the other patterns, and the
    simulation lies above it (``flips = 0``: the probability that a pattern is a fixed point)."""
    p_kept, p_flip = hopfield_bit_error(N, d, flips)
    return (1 - p_kept) ** (d - flips) * (1 - p_flip) ** flips


def hopfield_repair_bound(N: int, d: int, flips: int = 0) -> float:
    """Lower bound ``max(0, 1 - (d - flips) p_kept - flips p_flipped)`` on the probability that one
    update restores a probe exactly (the union bound over its d bits; exact, no approximation)."""
    p_kept, p_flip = hopfield_bit_error(N, d, flips)
    return max(0.0, 1.0 - (d - flips) * p_kept - flips * p_flip)


def hopfield_exact_capacity(d: int, flips: int = 0) -> float:
    """Asymptotic scale ``(1 - 2 flips / d)^2 d / (2 ln d)`` of the number of random patterns below
    which one update restores a probe with ``flips`` wrong bits exactly, with probability -> 1 as
    d grows (McEliece, Posner, Rodemich and Venkatesh, 1987; ``flips = 0``: a pattern is a fixed
    point). A scale, not a threshold at finite d. Needs d >= 2 and flips < d / 2."""
    d = check_int("d", d, 2, 10**12)
    flips = check_int("flips", flips, 0, (d - 1) // 2)
    return (1 - 2 * flips / d) ** 2 * d / (2 * math.log(d))


# Keys u_1..u_N are independent with N(0, I/d) entries; for one-hot values (v_i = e_i) and the
# outer-product memory W = sum_i v_i u_i^T, recall of pair j succeeds iff ||u_j||^2 > u_i^T u_j for
# every i != j. Given u_j the N - 1 scores u_i^T u_j are i.i.d. N(0, ||u_j||^2 / d), so
#     P(success) = E[ Phi(R)^(N-1) ],   R = sqrt(d) ||u_j|| ~ chi distribution with d degrees,
# an exact one-dimensional integral (book/proofs/memory.md, thm-onehot-recall).


def _chi_quadrature(d: int, points: int = 6001) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes r and weights w (float64) with sum_k w_k f(r_k) ~ E[f(R)], R ~ chi_d (composite
    Simpson on [max(0, sqrt(d) - 14), sqrt(d) + 14]; the mass outside is below 1e-40)."""
    centre = d**0.5
    lo, hi = max(0.0, centre - 14.0), centre + 14.0
    r = torch.linspace(lo, hi, points, dtype=torch.float64)
    h = (hi - lo) / (points - 1)
    logf = (
        (d - 1) * torch.log(r.clamp(min=1e-300)) - r**2 / 2 - (d / 2 - 1) * math.log(2.0) - math.lgamma(d / 2)
    )
    f = torch.exp(logf)
    if d == 1:
        f[r == 0] = math.sqrt(2 / math.pi)
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
    N = check_int("N", N, 1, 10**12)
    d = check_int("d", d, 1, 100_000)
    if N == 1:
        return 0.0
    r, w = _chi_quadrature(d)
    fail = -torch.expm1((N - 1) * torch.special.log_ndtr(r))
    return float((w * fail).sum().clamp(0.0, 1.0))


def recall_failure_chernoff(N: int, d: int) -> float:
    """Closed-form bound ``min(1, (N - 1) 2^(-d/2 - 1))`` on the failure probability, from
    Phi(-x) <= exp(-x^2/2)/2 and E[exp(-R^2/2)] = 2^(-d/2)."""
    N = check_int("N", N, 1, 10**12)
    d = check_int("d", d, 1, 100_000)
    return min(1.0, (N - 1) * 2.0 ** (-d / 2 - 1))


def recall_failure_mills(N: int, d: int) -> float:
    """Closed-form bound ``min(1, (N - 1) Gamma((d - 1)/2) / (sqrt(2 pi) 2^(d/2) Gamma(d/2)))`` on
    the failure probability, from the Mills ratio Phi(-r) <= phi(r) / r and
    E[exp(-R^2/2) / R] = Gamma((d - 1)/2) / (2^(d/2) Gamma(d/2)), R ~ chi_d. Needs d >= 2 (at
    d = 1 the expectation is infinite). Sharper than ``recall_failure_chernoff`` for d >= 3, by
    the factor sqrt(2/pi) Gamma((d - 1)/2) / Gamma(d/2), about 2 / sqrt(pi d)."""
    N = check_int("N", N, 1, 10**12)
    d = check_int("d", d, 2, 100_000)
    log_pair = (
        math.lgamma((d - 1) / 2) - math.lgamma(d / 2) - 0.5 * math.log(2 * math.pi) - (d / 2) * math.log(2.0)
    )
    return min(1.0, (N - 1) * math.exp(log_pair))


def recall_success_gaussian(N: int, d: int) -> float:
    """Gaussian (fixed-norm) approximation ``Phi(sqrt(d))^(N-1)``: the exact formula with the key
    norm R replaced by its typical value sqrt(d). An approximation, not a bound."""
    N = check_int("N", N, 1, 10**12)
    d = check_int("d", d, 1, 100_000)
    return float(torch.exp((N - 1) * torch.special.log_ndtr(torch.tensor(d**0.5, dtype=torch.float64))))


def recall_mse(N: int, d: int) -> float:
    """Exact mean squared recall error E||W u_j - v_j||^2 = (N + 1) / d for N unit-norm values and
    keys with i.i.d. N(0, 1/d) entries (general values: (||v_j||^2 + sum_i ||v_i||^2) / d)."""
    N = check_int("N", N, 1, 10**12)
    d = check_int("d", d, 1, 10**9)
    return (N + 1) / d


def recall_mse_correlated(N: int, d: int, rho: float) -> float:
    """Exact E||W u_j - e_j||^2 for N one-hot values and the keys of ``correlated_keys`` (one
    shared component of weight rho): 2/d + (N - 1) [rho^2 (1 + 2/d) + (1 - rho^2)/d]. At rho = 0
    it is (N + 1)/d (book/proofs/memory.md, prop-correlated-mse)."""
    N = check_int("N", N, 1, 10**12)
    d = check_int("d", d, 1, 10**9)
    rho = check_float("rho", rho, 0.0, 1.0, hi_open=True)
    return 2.0 / d + (N - 1) * (rho**2 * (1 + 2.0 / d) + (1 - rho**2) / d)


def crosstalk_moments(N: int, d: int) -> dict:
    """Exact moments of the recall of pair j with N one-hot values and N(0, I/d) keys.

    Returns a dict of floats: ``signal_mean`` E||u_j||^2 = 1, ``signal_var`` 2/d,
    ``coef_var`` E[(u_i^T u_j)^2] = 1/d (i != j; the mean is 0), ``coef_fourth`` E[(u_i^T u_j)^4]
    = 3(1 + 2/d)/d^2, ``coef_sq_cov`` Cov((u_i^T u_j)^2, (u_k^T u_j)^2) = 2/d^3 (i, j, k distinct),
    ``crosstalk_sq_mean`` E||c_j||^2 = (N - 1)/d, ``crosstalk_sq_var`` Var||c_j||^2 =
    (N - 1)(2 + 6/d)/d^2 + 2(N - 1)(N - 2)/d^3, and ``mse`` E||W u_j - v_j||^2 = (N + 1)/d.
    """
    N = check_int("N", N, 1, 10**12)
    d = check_int("d", d, 1, 10**9)
    return {
        "signal_mean": 1.0,
        "signal_var": 2.0 / d,
        "coef_mean": 0.0,
        "coef_var": 1.0 / d,
        "coef_fourth": 3.0 * (1 + 2.0 / d) / d**2,
        "coef_sq_cov": 2.0 / d**3,
        "crosstalk_sq_mean": (N - 1) / d,
        "crosstalk_sq_var": (N - 1) * (2 + 6.0 / d) / d**2 + 2.0 * (N - 1) * (N - 2) / d**3,
        "mse": (N + 1) / d,
    }


def recall_capacity(d: int, delta: float = 0.01) -> int:
    """Largest N whose exact one-hot recall failure probability is at most ``delta`` (per pair)."""
    d = check_int("d", d, 1, 64)
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


def plot_recall_scores(panels: dict) -> Figure:
    """Heat maps of recall matrices, one panel per entry of ``panels`` (label -> ``Tensor[N, N]``
    whose row j is W u_j, so entry (j, i) is u_i^T u_j), one shared colour bar. A perfect memory
    shows the identity. No figure title: the caption says what is drawn."""
    fig, axes = new_figure(ncols=len(panels), width=2.9, height=2.9)
    axes = np.atleast_1d(axes)
    vmax = max(float(abs(p).max()) for p in panels.values())
    im = None
    for k, (ax, (label, M)) in enumerate(zip(axes, panels.items())):
        im = ax.imshow(
            M.detach().cpu().numpy(), cmap=DIVERGING_CMAP, vmin=-vmax, vmax=vmax, interpolation="nearest"
        )
        ax.set_title(label)
        ax.set_xlabel("stored value $i$")
        if k == 0:
            ax.set_ylabel("query key $j$")
        ax.grid(False)
    fig.colorbar(im, ax=list(axes), shrink=0.8, label=r"coordinate $i$ of $W u_j$")
    return fig


def plot_recall_capacity(sim: dict, theory: dict) -> Figure:
    """Two panels against N/d (log scale), one colour per key dimension d, one legend under them.

    Args:
        sim: d -> dict with arrays ``ratio`` (N/d), ``accuracy``, ``mse`` (Monte Carlo).
        theory: d -> dict with ``ratio``, ``accuracy`` (exact), ``gaussian`` (fixed-norm
            approximation) and ``mse`` ((N + 1)/d).
    Left: mean squared recall error ||W u_j - v_j||^2 against (N + 1)/d. Right: nearest-value
    recall accuracy against the exact P_hit (solid) and Phi(sqrt d)^(N-1) (dashed).
    """
    fig, (ax1, ax2) = new_figure(ncols=2, width=3.75, height=3.0)
    for k, d in enumerate(sorted(theory)):
        c = CYCLE[k % len(CYCLE)]
        t, s = theory[d], sim.get(d)
        ax1.plot(t["ratio"], t["mse"], color=c, lw=1.5, label=f"$d={d}$")
        ax2.plot(t["ratio"], t["accuracy"], color=c, lw=1.5)
        ax2.plot(t["ratio"], t["gaussian"], color=c, lw=1.0, ls="--")
        if s is not None:
            ax1.plot(s["ratio"], s["mse"], "o", color=c, ms=4)
            ax2.plot(s["ratio"], s["accuracy"], "o", color=c, ms=4)
    ax1.plot([], [], "k-", lw=1.5, label="exact")
    ax1.plot([], [], "k--", lw=1.0, label=r"$\Phi(\sqrt{d})^{N-1}$")
    ax1.plot([], [], "ko", ms=4, label="simulation")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("$N/d$")
    ax1.set_yscale("log")
    ax1.set_ylabel(r"$\|W u_j - v_j\|^2$ (mean)")
    ax1.set_title("vector recall")
    ax2.set_ylabel("recall accuracy")
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_title("nearest-value recall")
    legend_below(fig, ax1, ncols=4)
    return fig


def plot_crosstalk_hist(
    signal: ArrayLike,
    coefs: ArrayLike,
    d: int,
    grid: ArrayLike | None = None,
    signal_density: ArrayLike | None = None,
    coef_density: ArrayLike | None = None,
    title: str | None = None,
) -> Figure:
    """Histograms of the signal ||u_j||^2 and the cross-talk coefficients u_i^T u_j (i != j), with
    optional density curves evaluated on ``grid`` (all 1-d arrays or tensors); legend on the right."""
    fig, ax = new_figure(width=6.5, height=3.2)
    signal = np.asarray(signal, dtype=float)
    coefs = np.asarray(coefs, dtype=float)
    lo = min(signal.min(), coefs.min())
    hi = max(signal.max(), coefs.max())
    bins = np.linspace(lo, hi, 80)
    ax.hist(
        coefs,
        bins=bins,
        density=True,
        alpha=0.5,
        color=COLORS["vermillion"],
        label=r"cross-talk $u_i^\top u_j$",
    )
    ax.hist(signal, bins=bins, density=True, alpha=0.5, color=COLORS["blue"], label=r"signal $\|u_j\|^2$")
    if grid is not None:
        grid = np.asarray(grid, dtype=float)
        if coef_density is not None:
            ax.plot(
                grid,
                np.asarray(coef_density, dtype=float),
                color=COLORS["vermillion"],
                lw=1.5,
                label=r"$\mathcal{N}(0, 1/d)$",
            )
        if signal_density is not None:
            ax.plot(
                grid,
                np.asarray(signal_density, dtype=float),
                color=COLORS["blue"],
                lw=1.5,
                label=r"$\chi^2_d / d$",
            )
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.set_title(title or f"$d={d}$")
    legend_right(ax)
    return fig


def _memory_cases(seed: int = 0):
    """(keys [N, d], values [N, d']) pairs of several shapes, including square and N > d."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(1, 3, 2), (4, 4, 4), (5, 3, 7), (8, 6, 6), (3, 10, 2)]
    return [
        (
            torch.randn(N, d, generator=g, dtype=torch.float64),
            torch.randn(N, dv, generator=g, dtype=torch.float64),
        )
        for N, d, dv in shapes
    ]


def check_crosstalk(fn: Callable) -> CheckResult:
    """Check ``fn(keys [N, d], values [N, d']) -> [N, d']`` whose row j is the cross-talk
    c_j = sum_{i != j} (u_i^T u_j) v_i."""
    return run_cases("check_crosstalk", fn, crosstalk, _memory_cases(2))


def check_softmax_recall(fn: Callable) -> CheckResult:
    """Check ``fn(keys [N, d], values [N, d'], queries [n, d], beta) -> [n, d']``: softmax
    retrieval sum_i softmax(beta keys q)_i v_i (one attention head / modern Hopfield update)."""
    g = torch.Generator().manual_seed(3)
    cases = []
    for N, d, dv, n, beta in [(4, 3, 2, 5, 1.0), (6, 6, 6, 2, 8.0), (3, 5, 4, 1, 0.0), (10, 4, 3, 7, 30.0)]:
        cases.append(
            (
                torch.randn(N, d, generator=g, dtype=torch.float64),
                torch.randn(N, dv, generator=g, dtype=torch.float64),
                torch.randn(n, d, generator=g, dtype=torch.float64),
                beta,
            )
        )
    return run_cases("check_softmax_recall", fn, softmax_recall, cases)


def _repair_cases(seed: int = 4):
    """(patterns [N, d], probes [N, d]) of several sizes: ties in the field (N (d - 1) even),
    probes with no flipped bit, loads where some probes are repaired and some are not, and a
    probe that only the rule sign(0) = +1 restores."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for N, d, flips in [(1, 5, 2), (2, 3, 1), (3, 8, 1), (4, 9, 0), (5, 12, 2), (8, 16, 3), (14, 100, 10)]:
        patterns, probes = hopfield_probes(N, d, flips, generator=g)
        cases.append((patterns[0], probes[0]))
    # a probe that is restored with ties (field 0, so sign(0) = +1 decides) on bits that are +1
    cases.append(
        (torch.ones(1, 3, dtype=torch.float64), torch.tensor([[1.0, 1.0, -1.0]], dtype=torch.float64))
    )
    return cases


def _describe_repair(case) -> str:
    patterns, probes = case
    N, d = patterns.shape
    flips = int((patterns != probes).sum(1)[0])
    plural = "" if flips == 1 else "s"
    return f"patterns [N, d] with N = {N}, d = {d}; each probe has {flips} flipped bit{plural}"


def check_repair_fraction(fn: Callable) -> CheckResult:
    """Check ``fn(patterns [N, d], probes [N, d]) -> float``: the fraction of the probes that one
    synchronous Hopfield update sign(W x) (W = sum_i xi_i xi_i^T with a zero diagonal, sign(0) =
    +1) restores exactly (``repair_fraction``)."""
    return run_cases(
        "check_repair_fraction",
        fn,
        repair_fraction,
        _repair_cases(),
        rtol=0,
        atol=1e-12,
        describe=_describe_repair,
    )


def check_recall_bound_mills(fn: Callable) -> CheckResult:
    """Check ``fn(N, d) -> float``: the Mills-ratio bound (N - 1) Gamma((d-1)/2) /
    (sqrt(2 pi) 2^(d/2) Gamma(d/2)) on the failure probability of nearest-value recall
    (``recall_failure_mills``), on cases where it is below 1."""
    cases = [(2, 2), (2, 3), (10, 16), (100, 20), (1000, 32), (7, 9), (1, 5), (5, 40)]
    return run_cases(
        "check_recall_bound_mills",
        fn,
        recall_failure_mills,
        cases,
        rtol=1e-6,
        atol=1e-15,
    )
