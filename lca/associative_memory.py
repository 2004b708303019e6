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

from ._validate import check_finite, check_float, check_int, check_size, make_generator
from .checks import CheckResult, close, run_cases
from .model import orthonormal_rows
from .style import COLORS, CYCLE, DIVERGING_CMAP, new_figure

# A linear associative memory stores N pairs (key u_i -> value v_i) as one matrix
#     W = sum_i v_i u_i^T = values^T keys          ([d', d])
# and recalls W q for a query q. Keys are rows of ``keys [N, d]``, values rows of ``values [N, d']``.


KEY_LIMIT = 2**27  # entries of random_keys / correlated_keys (1 GiB of float64)
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
    E[u_i^T u_j] = rho: the keys are exchangeable, not independent (0 <= rho < 1)."""
    N = check_int("N", N, 1, 10_000_000)
    d = check_int("d", d, 1, 1_000_000)
    rho = check_float("rho", rho, 0.0, 1.0, hi_open=True)
    check_size("N", N * d, KEY_LIMIT, "key entries (N * d)")
    g = make_generator(seed, generator)
    c = torch.randn((1, d), generator=g, dtype=torch.float64)
    G = torch.randn((N, d), generator=g, dtype=torch.float64)
    return ((rho**0.5 * c + (1 - rho) ** 0.5 * G) / d**0.5).to(dtype)


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
    n_recalls = check_int("n_recalls", n_recalls, 1, 100_000_000)
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


def hopfield_step(patterns: torch.Tensor, probes: torch.Tensor) -> torch.Tensor:
    """One synchronous update of a classical Hopfield network storing +-1 ``patterns [N, d]``:
    ``sign(W x)`` with ``W = sum_i xi_i xi_i^T - N I`` (outer-product storage, keys = values, no
    self-connections); sign(0) is taken as +1. ``probes [n, d]`` -> ``[n, d]`` of +-1."""
    patterns = _float_matrix("patterns", patterns)
    probes = _float_matrix("probes", probes)
    if probes.shape[1] != patterns.shape[1]:
        raise ValueError(f"probes must have d={patterns.shape[1]} columns, got {tuple(probes.shape)}")
    for name, x in (("patterns", patterns), ("probes", probes)):
        if x.numel() and not bool(((x == 1) | (x == -1)).all()):
            raise ValueError(f"{name} must hold only +1/-1 entries")
    W = patterns.T @ patterns
    W = W - torch.diag(torch.diagonal(W))
    h = probes.to(W.dtype) @ W.T
    return torch.where(h >= 0, 1.0, -1.0).to(probes.dtype)


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


def plot_recall_scores(panels: dict, title: str = "Recall W u_j with one-hot values") -> Figure:
    """Heat maps of recall matrices, one panel per entry of ``panels`` (label -> ``Tensor[N, N]``
    whose row j is W u_j, so entry (j, i) is u_i^T u_j). A perfect memory shows the identity."""
    fig, axes = new_figure(ncols=len(panels), width=3.6, height=3.4)
    axes = np.atleast_1d(axes)
    vmax = max(float(abs(p).max()) for p in panels.values())
    im = None
    for ax, (label, M) in zip(axes, panels.items()):
        im = ax.imshow(
            M.detach().cpu().numpy(), cmap=DIVERGING_CMAP, vmin=-vmax, vmax=vmax, interpolation="nearest"
        )
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("stored value i")
        ax.set_ylabel("query key j")
        ax.grid(False)
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="coordinate i of W u_j")
    fig.suptitle(title)
    return fig


def plot_recall_capacity(
    sim: dict,
    theory: dict,
    title: str = "Outer-product memory with Gaussian keys: simulation (points) vs exact theory (lines)",
) -> Figure:
    """Two panels against N/d (log scale), one colour per key dimension d.

    Args:
        sim: d -> dict with arrays ``ratio`` (N/d), ``accuracy``, ``mse`` (Monte Carlo).
        theory: d -> dict with ``ratio``, ``accuracy`` (exact), ``gaussian`` (fixed-norm
            approximation) and ``mse`` ((N + 1)/d).
    Left: mean squared recall error ||W u_j - v_j||^2. Right: argmax recall accuracy.
    """
    fig, (ax1, ax2) = new_figure(ncols=2, width=5.2, height=3.8)
    for k, d in enumerate(sorted(theory)):
        c = CYCLE[k % len(CYCLE)]
        t, s = theory[d], sim.get(d)
        ax1.plot(t["ratio"], t["mse"], color=c, lw=1.5, label=f"d = {d}: (N+1)/d")
        ax2.plot(t["ratio"], t["accuracy"], color=c, lw=1.5, label=f"d = {d}: exact")
        ax2.plot(t["ratio"], t["gaussian"], color=c, lw=1.0, ls="--")
        if s is not None:
            ax1.plot(s["ratio"], s["mse"], "o", color=c, ms=4)
            ax2.plot(s["ratio"], s["accuracy"], "o", color=c, ms=4)
    ax2.plot([], [], "k--", lw=1.0, label="Gaussian approx.")
    ax2.plot([], [], "ko", ms=4, label="simulation")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("stored pairs per key dimension, N / d")
    ax1.set_yscale("log")
    ax1.set_ylabel("mean squared recall error")
    ax1.set_title("vector recall: error grows like N/d", fontsize=10)
    ax2.set_ylabel("argmax recall accuracy")
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_title("nearest-value recall (one-hot values)", fontsize=10)
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8, loc="lower left")
    fig.suptitle(title)
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
    optional density curves evaluated on ``grid`` (all 1-d arrays or tensors)."""
    fig, ax = new_figure(width=6.0, height=3.6)
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
        label="cross-talk $u_i^T u_j$, $i \\ne j$",
    )
    ax.hist(signal, bins=bins, density=True, alpha=0.5, color=COLORS["blue"], label="signal $\\|u_j\\|^2$")
    if grid is not None:
        grid = np.asarray(grid, dtype=float)
        if coef_density is not None:
            ax.plot(
                grid,
                np.asarray(coef_density, dtype=float),
                color=COLORS["vermillion"],
                lw=1.5,
                label="N(0, 1/d)",
            )
        if signal_density is not None:
            ax.plot(
                grid,
                np.asarray(signal_density, dtype=float),
                color=COLORS["blue"],
                lw=1.5,
                label="$\\chi^2_d / d$",
            )
    ax.set_xlabel("value of the score")
    ax.set_ylabel("density")
    ax.set_title(title or f"Signal vs cross-talk scores, d = {d}")
    ax.legend(fontsize=8)
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


def check_store(fn: Callable) -> CheckResult:
    """Check ``fn(keys [N, d], values [N, d']) -> W [d', d]`` = sum_i v_i u_i^T."""
    return run_cases("check_store", fn, store, _memory_cases(1))


def check_crosstalk(fn: Callable) -> CheckResult:
    """Check ``fn(keys [N, d], values [N, d']) -> [N, d']`` whose row j is the cross-talk
    c_j = sum_{i != j} (u_i^T u_j) v_i."""
    return run_cases("check_crosstalk", fn, crosstalk, _memory_cases(2))


def check_recall_bound(fn: Callable) -> CheckResult:
    """Check ``fn(N, d) -> float``: the bound (N - 1) 2^(-d/2 - 1) on the probability that argmax
    recall of a stored pair fails (one-hot values, N(0, I/d) keys), on cases where it is below 1."""
    cases = [(2, 4), (10, 16), (100, 20), (1000, 32), (7, 9), (1, 5)]
    return run_cases(
        "check_recall_bound",
        fn,
        recall_failure_chernoff,
        cases,
        compare=lambda e, g: close(e, g, rtol=1e-6, atol=1e-12),
    )


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
