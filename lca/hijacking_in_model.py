"""Chapter 7, context hijacking in the one-layer model: the flip probability in closed form and its
bounds, hijacking contexts built from a second target, flip curves of constructed and trained
models, the chapter's figures and its exercise checkers."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from matplotlib.figure import Figure

from ._validate import check_bool, check_choice, check_float, check_int, check_reals, check_tokens
from .attention import cluster_ids, score_matrix
from .checks import CheckResult, close, run_cases, safe_compare
from .model import OneLayerTransformer
from .style import COLORS, CYCLE, legend_below, new_figure
from .task import TaskSpec, check_spec, count_vector, sample
from .train import check_model_and_spec


def _check_small_spec(spec: TaskSpec) -> TaskSpec:
    check_spec(spec)
    if spec.m > 12:
        raise ValueError(f"m must be at most 12 here (V x V tables), got m={spec.m}")
    return spec


def _check_pair(spec, y, y_hijack):
    y = check_int("y", y, 0, spec.V - 1)
    y_hijack = check_int("y_hijack", y_hijack, 0, spec.V - 1)
    if y == y_hijack:
        raise ValueError(f"y_hijack must differ from y, got both equal to {y}")
    return y, y_hijack


def _check_rho(rho) -> torch.Tensor:
    r = check_reals("rho", rho).reshape(-1)
    if r.numel() == 0:
        raise ValueError("rho must hold at least one value in [0, 1]")
    for v in r.tolist():
        check_float("rho", v, 0.0, 1.0)
    return r


def hijack_share_logits(spec: TaskSpec, contexts: torch.Tensor) -> torch.Tensor:
    """``Tensor[n, V]`` (float64): for each context (any length) and every token k, the share of
    the context's tokens that lie in N(k). These are exactly the logits of the constructed model
    (``lca.value_matrix.constructed_model``: orthonormal embeddings, ``W_KQ = 0``,
    ``W_V = W_E^T A W_E``)."""
    spec = _check_small_spec(spec)
    contexts = check_tokens("contexts", contexts, spec.V, ndim=2)
    L = contexts.shape[1]
    if L < 1:
        raise ValueError("contexts must have at least one position")
    c = count_vector(contexts, spec.V, 1.0 / L)
    A = spec.neighbourhood.mask(spec.space).double()
    return c @ A.T


def hijack_overlap(spec: TaskSpec, y: int, y_hijack: int) -> tuple[int, int, int]:
    """``(|N(y)|, |N(y_hijack)|, |N(y) & N(y_hijack)|)`` for the spec's neighbourhood family."""
    spec = _check_small_spec(spec)
    y, y_hijack = _check_pair(spec, y, y_hijack)
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
    D = check_int("D", D, 1, None)
    D_hijack = D if D_hijack is None else check_int("D_hijack", D_hijack, 1, None)
    overlap = check_int("overlap", overlap, 0, min(D, D_hijack))
    a, b = 1.0 - overlap / D, 1.0 - overlap / D_hijack
    if a + b == 0:
        raise ValueError(
            "overlap must be smaller than D or D_hijack: with N(y) = N(y') the two "
            "targets are indistinguishable and there is no threshold"
        )
    return a / (a + b)


def hijack_threshold_noisy(D: int, D_hijack: int, overlap: int, noise: float, V: int) -> float:
    """The hijack threshold with noisy clean tokens: a clean token is uniform on N(y) (size
    ``D``) with probability ``1 - noise`` and uniform on the ``V - 1`` tokens other than y
    otherwise (the course's ``"uniform"`` noise law), hijack tokens are uniform on N(y') (size
    ``D_hijack``), the two neighbourhoods share ``overlap`` tokens and y lies in neither.

    With ``X = 1{x in N(y')} - 1{x in N(y)}``, ``E_clean X = (1-eps)(o/D - 1) + eps (D' - D)/(V-1)``
    and ``E_hijack X = 1 - o/D'``; the expected margin ``(1-rho) E_clean X + rho E_hijack X``
    vanishes at ``rho* = -E_clean X / (E_hijack X - E_clean X)``, clipped to [0, 1] (0 when y'
    is ahead already on clean contexts). ``noise = 0`` gives ``hijack_threshold``."""
    D = check_int("D", D, 1, None)
    D_hijack = check_int("D_hijack", D_hijack, 1, None)
    V = check_int("V", V, max(D, D_hijack) + 1, None)
    overlap = check_int("overlap", overlap, 0, min(D, D_hijack) - 1)
    eps = check_float("noise", noise, 0.0, 1.0)
    e_clean = (1 - eps) * (overlap / D - 1) + eps * (D_hijack - D) / (V - 1)
    e_hij = 1 - overlap / D_hijack
    return min(max(-e_clean / (e_hij - e_clean), 0.0), 1.0)


def hijack_threshold_task(spec: TaskSpec, y: int, y_hijack: int) -> float:
    """The hijack threshold when the clean tokens follow the task's own law for y (noise
    included, ``spec.context_law()[y]``) rather than the uniform law on N(y). With
    ``X = 1{x in N(y')} - 1{x in N(y)}`` the expected margin of a position is
    ``(1 - rho) E_clean[X] + rho E_hijack[X]``, zero at ``rho* = -E_clean X / (E_hijack X -
    E_clean X)``. Equals ``hijack_threshold(*hijack_overlap(...))`` when the task has no noise."""
    spec = _check_small_spec(spec)
    y, y_hijack = _check_pair(spec, y, y_hijack)
    A = spec.neighbourhood.mask(spec.space)
    X = A[y_hijack].double() - A[y].double()
    e_clean = float(spec.context_law()[y] @ X)
    e_hij = float((A[y_hijack].double() / A[y_hijack].sum()) @ X)
    if e_hij - e_clean <= 0:
        raise ValueError(
            "y_hijack never gains on y under this task's law (its neighbourhood "
            "is covered by y's); there is no threshold"
        )
    return min(max(-e_clean / (e_hij - e_clean), 0.0), 1.0)


def hijack_limit_logits(
    spec: TaskSpec, y: int, y_hijack: int, rho: float | Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """``Tensor[R, V]``: the expected share logits ``F_k(rho) = (1-rho) |N(k) & N(y)|/|N(y)| +
    rho |N(k) & N(y')|/|N(y')|`` of every token k (the large-L limit of the constructed model's
    logits for a context mixing N(y) and N(y'), noise-free)."""
    spec = _check_small_spec(spec)
    y, y_hijack = _check_pair(spec, y, y_hijack)
    r = _check_rho(rho)
    A = spec.neighbourhood.mask(spec.space).double()
    alpha = A @ A[y] / A[y].sum()
    beta = A @ A[y_hijack] / A[y_hijack].sum()
    return (1 - r)[:, None] * alpha[None, :] + r[:, None] * beta[None, :]


def hijack_threshold_argmax(spec: TaskSpec, y: int, y_hijack: int) -> float:
    """The large-L threshold for the constructed model's *prediction* to become y': the smallest
    share rho from which ``F_{y'}(rho)`` beats every other line ``F_k(rho)`` (third tokens
    included; see ``hijack_limit_logits``). Equals ``hijack_threshold`` when no third token's
    neighbourhood covers both N(y) and N(y') well. Returns ``inf`` if y' never wins."""
    spec = _check_small_spec(spec)
    y, y_hijack = _check_pair(spec, y, y_hijack)
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
            if c0 <= 1e-12:  # never strictly ahead of k
                return float("inf")
        elif s > 0:
            lo = max(lo, -c0 / s)  # ahead of k for rho > -c0/s
        else:
            hi = min(hi, -c0 / s)  # ahead of k for rho < -c0/s
    return lo if lo < hi else float("inf")


def _prob_sum_positive(laws: list, ties: str) -> torch.Tensor:
    """P(sum of independent X_i > 0) (plus half of P(sum = 0) if ties == "half"), where each
    entry of ``laws`` is ``(count, Tensor[R, 3])`` = that many positions with law
    ``(P(X=-1), P(X=0), P(X=+1))`` per row. Returns ``Tensor[R]``."""
    N = sum(cnt for cnt, _ in laws)
    R = laws[0][1].shape[0]
    dist = torch.zeros((R, 2 * N + 1), dtype=torch.float64)
    dist[:, N] = 1.0
    for cnt, law in laws:
        pm, p0, pp = law[:, 0:1], law[:, 1:2], law[:, 2:3]
        for _ in range(cnt):
            new = p0 * dist
            new[:, 1:] += pp * dist[:, :-1]
            new[:, :-1] += pm * dist[:, 1:]
            dist = new
    out = dist[:, N + 1 :].sum(1)
    if ties == "half":
        out = out + 0.5 * dist[:, N]
    return out.clamp(0.0, 1.0)


def _position_law(token_law: torch.Tensor, in_y: torch.Tensor, in_h: torch.Tensor) -> torch.Tensor:
    """``[..., 3]``: law of X = 1{x in N(y')} - 1{x in N(y)} for x drawn from ``token_law [..., V]``."""
    plus = (token_law * (in_h & ~in_y).double()).sum(-1)
    minus = (token_law * (in_y & ~in_h).double()).sum(-1)
    zero = (token_law * (in_y == in_h).double()).sum(-1)
    return torch.stack([minus, zero, plus], dim=-1)


def hijack_flip_probability(
    spec: TaskSpec,
    y: int,
    y_hijack: int,
    rho: float | Sequence[float] | torch.Tensor,
    L: int | None = None,
    last_clean: bool = False,
    ties: str = "strict",
) -> torch.Tensor:
    """Exact probability ``Tensor[R]`` that the constructed model prefers y' to y
    (``f_{y'} > f_y``) on a random hijacked context of length L (default ``spec.L``).

    Each position independently holds, with probability ``rho``, a hijack token uniform on N(y'),
    and otherwise a clean token drawn from the task's law for target y (``spec.context_law()``,
    so the task's noise is included). With ``last_clean`` the last position is never hijacked
    (drawn from the clean law when ``spec.clean_last``). ``L * (f_{y'} - f_y)`` is a sum of
    independent {-1, 0, +1} steps, whose law is computed exactly by convolution. For disjoint
    neighbourhoods and no noise this is ``P(Binomial(L, rho) > L/2)``.
    """
    spec = _check_small_spec(spec)
    y, y_hijack = _check_pair(spec, y, y_hijack)
    r = _check_rho(rho)
    L = spec.L if L is None else check_int("L", L, 1, 5000)
    check_choice("ties", ties, ("strict", "half"))
    A = spec.neighbourhood.mask(spec.space)
    in_y, in_h = A[y], A[y_hijack]
    hij = A[y_hijack].double() / A[y_hijack].sum()
    clean = spec.context_law()[y]
    mix = (1 - r)[:, None] * clean[None, :] + r[:, None] * hij[None, :]
    laws = []
    if check_bool("last_clean", last_clean):
        last = spec.last_law()[y]
        if L > 1:
            laws.append((L - 1, _position_law(mix, in_y, in_h)))
        laws.append((1, _position_law(last, in_y, in_h).expand(r.numel(), 3)))
    else:
        laws.append((L, _position_law(mix, in_y, in_h)))
    return _prob_sum_positive(laws, ties)


def hijack_margin_probability(
    rho: float | Sequence[float] | torch.Tensor,
    L: int,
    D: int,
    D_hijack: int | None = None,
    overlap: int = 0,
    ties: str = "strict",
) -> torch.Tensor:
    """``Tensor[R]``: exact probability that the constructed model prefers y' to y on a noise-free
    rho-hijacked context of length L, from the sizes alone: N(y) has ``D`` tokens, N(y') has
    ``D_hijack`` (default D), and they share ``overlap``. Each position adds +1 to
    ``L (f_{y'} - f_y)`` with probability ``rho (1 - o/D')`` and -1 with probability
    ``(1 - rho)(1 - o/D)``."""
    r = _check_rho(rho)
    L = check_int("L", L, 1, 5000)
    D = check_int("D", D, 1, None)
    D_hijack = D if D_hijack is None else check_int("D_hijack", D_hijack, 1, None)
    overlap = check_int("overlap", overlap, 0, min(D, D_hijack))
    check_choice("ties", ties, ("strict", "half"))
    plus = r * (1 - overlap / D_hijack)
    minus = (1 - r) * (1 - overlap / D)
    law = torch.stack([minus, 1 - plus - minus, plus], dim=-1)
    return _prob_sum_positive([(L, law)], ties)


def hijack_prepend_probability(
    spec: TaskSpec, y: int, y_hijack: int, k: int | Sequence[int], block: int = 1, ties: str = "strict"
) -> torch.Tensor:
    """Exact probability ``Tensor[K]`` that the constructed model prefers y' to y after ``k``
    blocks of ``block`` hijack tokens (uniform on N(y')) are put in front of a clean task context
    of length ``spec.L`` (drawn from the task's law for y, the last token from the clean law when
    ``spec.clean_last``). ``k`` is an int or a list of ints."""
    spec = _check_small_spec(spec)
    y, y_hijack = _check_pair(spec, y, y_hijack)
    block = check_int("block", block, 1, 1000)
    check_choice("ties", ties, ("strict", "half"))
    ks = [check_int("k", v, 0, 1000) for v in check_reals("k", k, integer=True).reshape(-1).tolist()]
    A = spec.neighbourhood.mask(spec.space)
    in_y, in_h = A[y], A[y_hijack]
    hij = _position_law(A[y_hijack].double() / A[y_hijack].sum(), in_y, in_h)[None, :]
    clean = _position_law(spec.context_law()[y], in_y, in_h)[None, :]
    last = _position_law(spec.last_law()[y], in_y, in_h)[None, :]
    out = []
    for kk in ks:
        laws = [(spec.L - 1, clean), (1, last)]
        if kk * block:
            laws.append((kk * block, hij))
        out.append(_prob_sum_positive(laws, ties)[0])
    return torch.stack(out)


def hijack_binomial_flip(rho: float | Sequence[float] | torch.Tensor, L: int) -> torch.Tensor:
    """``P(Binomial(L, rho) > L/2)`` as ``Tensor[R]``: the flip probability of the constructed
    model for disjoint neighbourhoods and noise-free clean tokens (strict: a tie is no flip)."""
    r = _check_rho(rho)
    L = check_int("L", L, 1, 100_000)
    ks = torch.arange(L // 2 + 1, L + 1, dtype=torch.float64)
    logc = (
        torch.lgamma(torch.tensor(L + 1.0, dtype=torch.float64))
        - torch.lgamma(ks + 1)
        - torch.lgamma(L - ks + 1)
    )
    out = []
    for v in r.tolist():
        if v == 0.0:
            out.append(0.0)
        elif v == 1.0:
            out.append(1.0)
        else:
            lp = logc + ks * math.log(v) + (L - ks) * math.log1p(-v)
            out.append(float(torch.exp(lp).sum()))
    return torch.tensor(out, dtype=torch.float64)


def hijack_targets(
    spec: TaskSpec,
    targets: torch.Tensor,
    distance: int | None = None,
    seed: int = 0,
    fixed_bits: int = 0,
) -> torch.Tensor:
    """A hijack target y' for every target y: y with ``distance`` of its latent bits flipped, the
    bits chosen at random (seeded); ``distance=None`` flips every bit that may flip (all m bits by
    default: the complement of y).

    ``fixed_bits`` leading latent bits are never flipped. In the cluster tasks of chapter 6
    (``lca.attention.cluster_task(m, k)``) the first k bits are the cluster id, so ``fixed_bits=k``
    keeps y' in y's cluster, ``distance`` bits away from it. Returns ``LongTensor[n]``."""
    check_spec(spec)
    targets = check_tokens("targets", targets, spec.V, ndim=1)
    fixed_bits = check_int("fixed_bits", fixed_bits, 0, spec.m - 1)
    free = spec.m - fixed_bits
    distance = free if distance is None else check_int("distance", distance, 1, free)
    g = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**63 - 1))
    n = targets.shape[0]
    # the free bits are the low ones: the first latent bits are the high bits of the token id
    bits = torch.argsort(torch.rand((n, free), generator=g), dim=1)[:, :distance]
    pattern = (1 << bits).sum(1)
    return targets ^ pattern


def hijack_contexts(
    spec: TaskSpec,
    n: int,
    rho: float = 0.0,
    prepend: int = 0,
    block: int = 1,
    distance: int | None = None,
    seed: int = 0,
    last_clean: bool = True,
    hijack: torch.Tensor | Callable | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hijacked contexts for the LCA task.

    Draws ``n`` clean examples ``(contexts, y)`` of ``spec`` and a hijack target y' per example:
    ``hijack_targets(spec, y, distance)`` by default, or ``hijack``, either a ``LongTensor[n]`` or
    a function mapping the targets ``LongTensor[n]`` to hijack targets; then

    - replaces each position independently with probability ``rho`` by a token uniform on N(y')
      (the last position, the attention query, is kept when ``last_clean``);
    - puts ``prepend`` blocks of ``block`` tokens uniform on N(y') in front (length
      ``L + prepend * block``), like prepending sentences to a prompt.

    The random numbers do not depend on ``rho`` or ``prepend`` (common random numbers), so curves
    over ``rho`` or ``prepend`` with one seed are coupled example by example.

    Returns ``(contexts LongTensor[n, L'], targets LongTensor[n], hijack_targets LongTensor[n])``.
    """
    check_spec(spec)
    n = check_int("n", n, 1, 1_000_000)
    rho = check_float("rho", rho, 0.0, 1.0)
    prepend = check_int("prepend", prepend, 0, 10_000)
    block = check_int("block", block, 1, 10_000)
    seed = check_int("seed", seed, 0, 2**62)
    ctx, y = sample(spec, n, seed=seed)
    if hijack is None:
        yh = hijack_targets(spec, y, distance, seed=seed + 1)
    else:
        yh = hijack(y.clone()) if callable(hijack) else hijack
        yh = check_tokens("hijack", yh, spec.V, ndim=1)
        if yh.shape[0] != n or bool((yh == y).any()):
            raise ValueError("hijack must give n token ids, each different from its target")
    table, deg = spec.neighbourhood.table(spec.space)
    g = torch.Generator().manual_seed(seed + 2)
    L = spec.L
    u_pos = torch.rand((n, L), generator=g, dtype=torch.float64)
    u_tok = torch.rand((n, L), generator=g, dtype=torch.float64)
    d = deg[yh][:, None]
    hij = torch.gather(table[yh], 1, torch.minimum((u_tok * d).long(), d - 1))
    swap = u_pos < rho
    if check_bool("last_clean", last_clean):
        swap[:, -1] = False
    ctx = torch.where(swap, hij, ctx)
    blocks = []
    for j in range(prepend):  # block j is the same for every prepend >= j + 1
        gj = torch.Generator().manual_seed(seed + 3 + j)
        u_pre = torch.rand((n, block), generator=gj, dtype=torch.float64)
        blocks.insert(0, torch.gather(table[yh], 1, torch.minimum((u_pre * d).long(), d - 1)))
    if blocks:
        ctx = torch.cat(blocks + [ctx], dim=1)
    return ctx, y, yh


def _measure(model, ctx, y, yh) -> dict:
    """Strict comparisons: logits closer than 1e-9 (relative) count as tied, and a tie is neither
    a flip nor a preference (so the float64 constructed model agrees with the exact theory)."""
    with torch.no_grad():
        logits = model(ctx.to(model.W_E.device)).double().cpu()  # [n, V] or [E, n, V]
    tol = 1e-9 * (1.0 + logits.abs().amax(-1))
    ly = logits.gather(-1, y.expand(logits.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    lh = logits.gather(-1, yh.expand(logits.shape[:-1]).unsqueeze(-1)).squeeze(-1)

    def best_other(idx):
        masked = logits.scatter(-1, idx.expand(logits.shape[:-1]).unsqueeze(-1), float("-inf"))
        return masked.amax(-1)

    return {
        "flip": (lh > best_other(yh) + tol).double().mean(-1),
        "prefer": (lh > ly + tol).double().mean(-1),
        "correct": (ly > best_other(y) + tol).double().mean(-1),
    }


def flip_curve(
    model: OneLayerTransformer,
    spec: TaskSpec,
    rho_grid: Sequence[float] | torch.Tensor,
    n: int = 2048,
    seed: int = 0,
    distance: int | None = None,
    last_clean: bool = True,
    hijack: torch.Tensor | Callable | None = None,
) -> dict:
    """How often hijacking works as the hijack share ``rho`` grows.

    For each rho in ``rho_grid``, ``hijack_contexts(spec, n, rho, ...)`` (same seed for every rho;
    ``distance`` and ``hijack`` choose y' as there) is fed to ``model``. Returns a dict of
    ``Tensor[R]`` (``[E, R]`` for an ensemble): ``"rho"``,
    ``"flip"`` (fraction of predictions equal to y'), ``"prefer"`` (fraction with logit y' > logit
    y: the efficacy score of the real-LLM experiments) and ``"correct"`` (prediction = y). All
    comparisons are strict: logits within 1e-9 (relative) of each other count as a tie, and a tie
    is neither a flip, a preference nor a correct answer.
    """
    check_model_and_spec(model, spec)
    n = check_int("n", n, 1, 1_000_000)
    grid = [
        check_float("rho_grid", r, 0.0, 1.0) for r in check_reals("rho_grid", rho_grid).reshape(-1).tolist()
    ]
    if not grid:
        raise ValueError("rho_grid must hold at least one value in [0, 1]")
    out = _curve(
        model,
        [
            hijack_contexts(
                spec, n, rho=r, distance=distance, seed=seed, last_clean=last_clean, hijack=hijack
            )
            for r in grid
        ],
    )
    out["rho"] = torch.tensor(grid, dtype=torch.float64)
    return out


def _curve(model, batches) -> dict:
    """Measure the model on each (contexts, targets, hijack targets) batch; stack along the last
    dimension."""
    rows = [_measure(model, ctx, y, yh) for ctx, y, yh in batches]
    return {key: torch.stack([row[key] for row in rows], dim=-1) for key in rows[0]}


def prepend_curve(
    model: OneLayerTransformer,
    spec: TaskSpec,
    ks: Sequence[int] | torch.Tensor,
    block: int = 1,
    n: int = 2048,
    seed: int = 0,
    distance: int | None = None,
    hijack: torch.Tensor | Callable | None = None,
) -> dict:
    """The 'number of prepends' experiment in the one-layer model: ``k`` blocks of ``block``
    hijack tokens are put in front of a clean context, for each k in ``ks``. Returns a dict of
    ``Tensor[K]`` (``[E, K]`` for an ensemble): ``"k"``, ``"flip"``, ``"prefer"``, ``"correct"``
    (as in ``flip_curve``)."""
    check_model_and_spec(model, spec)
    n = check_int("n", n, 1, 1_000_000)
    ks = [check_int("ks", k, 0, 10_000) for k in check_reals("ks", ks, integer=True).reshape(-1).tolist()]
    if not ks:
        raise ValueError("ks must hold at least one number of prepended blocks")
    out = _curve(
        model,
        [
            hijack_contexts(spec, n, prepend=k, block=block, distance=distance, seed=seed, hijack=hijack)
            for k in ks
        ],
    )
    out["k"] = torch.tensor(ks, dtype=torch.long)
    return out


def scores_by_distance(model: OneLayerTransformer, spec: TaskSpec, k: int | None = None) -> dict:
    """The attention filter by Hamming distance: the centred score of a key token against its
    distance from the query token.

    The scores ``W_E W_KQ W_E^T`` do not depend on the context; each query's row is centred (its
    mean over all V keys removed, ``lca.attention.score_matrix``), since only differences within a
    row change attention weights. For every distance d = 0..m the result averages the centred
    scores of all (query, key) pairs at distance d. With ``k`` (clusters: tokens sharing their first
    k latent bits, ``lca.attention.cluster_ids``) the same averages are also taken separately over
    pairs in the same cluster and in different clusters; a distance with no such pair gives NaN
    (same-cluster pairs are at most m - k apart, pairs from different clusters at least 1).

    Returns a dict: ``"distance"`` (``LongTensor[m+1]``), ``"all"`` and, with ``k``, ``"same"`` and
    ``"other"`` (float64 ``Tensor[m+1]``, or ``[E, m+1]`` for an ensemble), and ``"pairs_same"``,
    ``"pairs_other"`` (``LongTensor[m+1]``: how many pairs each mean is over).
    """
    check_model_and_spec(model, spec)
    if k is not None:
        k = check_int("k", k, 1, spec.m - 1)
    S = score_matrix(model, center=True)  # [V, V] or [E, V, V]
    D = spec.space.distances()
    groups = {"all": torch.ones_like(D, dtype=torch.bool)}
    if k is not None:
        cl = cluster_ids(spec.m, k)
        same = cl[:, None] == cl[None, :]
        groups.update(same=same, other=~same)
    out: dict = {"distance": torch.arange(spec.m + 1)}
    for name, group in groups.items():
        cols, counts = [], []
        for d in range(spec.m + 1):
            pairs = group & (D == d)
            counts.append(int(pairs.sum()))
            cols.append(S[..., pairs].mean(-1) if counts[-1] else S[..., 0, 0] * float("nan"))
        out[name] = torch.stack(cols, dim=-1)
        if name != "all":
            out[f"pairs_{name}"] = torch.tensor(counts)
    return out


def _legend_under(fig: Figure, axes: list) -> None:
    """One legend under the panels, holding every distinct label of ``axes`` once."""
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if labels:
        legend_below(fig, handles=handles, labels=labels, ncols=min(len(labels), 2))


def plot_scores_by_distance(panels: list, title: str = "") -> Figure:
    """One panel per dict in ``panels``; each dict holds ``"table"`` (a ``scores_by_distance``
    result with ``k``), optional ``"title"``. Draws the mean centred score of same-cluster and
    other-cluster keys against their Hamming distance from the query (an ensemble as its mean
    with a min-max band), even distances shaded, one legend under the panels. ``title``, if
    given, is the figure's title (the book leaves it to the caption). Returns the Figure."""
    n = len(panels)
    fig, axes = new_figure(ncols=n, width=5.0, height=3.6)
    axes = [axes] if n == 1 else list(axes.flat)
    for ax, panel in zip(axes, panels):
        table = panel["table"]
        x = table["distance"].double().numpy()
        for d in x[::2]:
            ax.axvspan(d - 0.5, d + 0.5, color=COLORS["black"], alpha=0.06, lw=0)
        for i, (key, label) in enumerate(
            (("same", "key in the query's cluster"), ("other", "key in another cluster"))
        ):
            v = torch.as_tensor(table[key], dtype=torch.float64)
            color = CYCLE[i % len(CYCLE)]
            if v.ndim == 2:
                ax.fill_between(x, v.min(0).values.numpy(), v.max(0).values.numpy(), color=color, alpha=0.2)
                v = v.mean(0)
            ax.plot(x, v.numpy(), marker="o", ms=4, color=color, label=label)
        ax.axhline(0.0, color=COLORS["black"], lw=0.8)
        ax.set_xticks(x)
        ax.set_xlabel("Hamming distance from the query token")
        ax.set_ylabel("centred attention score")
        if panel.get("title"):
            ax.set_title(panel["title"])
    _legend_under(fig, axes)
    if title:
        fig.suptitle(title)
    return fig


def plot_hijack_curves(panels: list, title: str = "") -> Figure:
    """One panel per dict in ``panels``; each dict holds ``"x"`` (a sequence), ``"curves"``
    (label -> values, ``[R]`` or ``[E, R]``: an ensemble is drawn as its mean with a min-max
    band), optional ``"theory"`` (label -> values, drawn as dashed lines), ``"xlabel"``,
    ``"ylabel"``, ``"title"`` and ``"threshold"`` (a vertical dotted line, or None). One legend
    under the panels holds every label once (so panels should share their labels); ``title``, if
    given, is the figure's title (the book leaves it to the caption). Returns the Figure."""
    n = len(panels)
    # three panels in a row get narrower, taller panels (so that they stay readable once the
    # figure is fitted to the column); a shared y label is written once, on the left
    fig, axes = new_figure(ncols=n, width=5.0 if n < 3 else 3.0, height=3.8 if n < 3 else 3.4)
    axes = [axes] if n == 1 else list(axes.flat)
    ylabels = [panel.get("ylabel", "fraction of contexts") for panel in panels]
    for col, (ax, panel) in enumerate(zip(axes, panels)):
        x = torch.as_tensor(panel["x"], dtype=torch.float64).numpy()
        for i, (label, vals) in enumerate(panel.get("curves", {}).items()):
            v = torch.as_tensor(vals, dtype=torch.float64)
            color = CYCLE[i % len(CYCLE)]
            if v.ndim == 2:
                ax.fill_between(x, v.min(0).values.numpy(), v.max(0).values.numpy(), color=color, alpha=0.2)
                v = v.mean(0)
            ax.plot(x, v.numpy(), marker="o", ms=3.5, color=color, label=label)
        for j, (label, vals) in enumerate(panel.get("theory", {}).items()):
            v = torch.as_tensor(vals, dtype=torch.float64)
            ax.plot(x, v.numpy(), ls="--", lw=1.4, color=CYCLE[(j + 3) % len(CYCLE)], label=label)
        thr = panel.get("threshold")
        if thr is not None:
            ax.axvline(thr, color=COLORS["black"], ls=":", lw=1.0, label="threshold")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel(panel.get("xlabel", ""))
        if n < 3 or col % 3 == 0 or len(set(ylabels)) > 1:
            ax.set_ylabel(ylabels[col])
        if panel.get("title"):
            ax.set_title(panel["title"])
    _legend_under(fig, axes)
    if title:
        fig.suptitle(title)
    return fig


def _reference_share(contexts, mask):
    c = count_vector(contexts, mask.shape[0], 1.0 / contexts.shape[1])
    return c @ mask.double().T


def check_share_logits(fn: Callable) -> CheckResult:
    """Check ``fn(contexts [n, L], mask [V, V]) -> Tensor[n, V]``: entry (i, k) is the share of
    context i's tokens that lie in N(k), where ``mask[k, x]`` says whether x is in N(k)."""
    cases = []
    for i, (V, n, L) in enumerate([(4, 3, 5), (8, 6, 7), (16, 5, 3), (8, 2, 1)]):
        g = torch.Generator().manual_seed(300 + i)
        mask = torch.rand(V, V, generator=g) < 0.35  # not symmetric: a transpose shows
        mask.fill_diagonal_(False)
        cases.append((torch.randint(0, V, (n, L), generator=g), mask))
    return run_cases(
        "share_logits",
        fn,
        _reference_share,
        cases,
        compare=safe_compare(lambda e, g: close(e, g, rtol=1e-6, atol=1e-9)),
        describe=lambda c: f"contexts of shape {tuple(c[0].shape)}, V={c[1].shape[0]}",
    )


def _noisy_threshold_cases():
    return [
        (6, 6, 0, 0.0, 64),
        (6, 6, 0, 0.5, 64),
        (6, 21, 2, 0.5, 64),
        (21, 6, 2, 0.25, 64),
        (6, 6, 2, 0.75, 64),
        (4, 12, 0, 0.9, 16),
        (10, 4, 3, 0.3, 32),
    ]


def check_noisy_threshold(fn: Callable) -> CheckResult:
    """Check ``fn(D, D_hijack, overlap, noise, V) -> float``: the hijack threshold when a clean
    token is noise (uniform on the V - 1 tokens other than y) with probability ``noise``
    (``hijack_threshold_noisy``), clipped to [0, 1]."""
    return run_cases(
        "noisy_threshold",
        fn,
        hijack_threshold_noisy,
        _noisy_threshold_cases(),
        compare=safe_compare(lambda e, g: close(e, float(g), rtol=1e-9, atol=1e-12)),
        describe=lambda c: f"D={c[0]}, D_hijack={c[1]}, overlap={c[2]}, noise={c[3]}, V={c[4]}",
    )


def _reference_margin_flip(rho, L, D, D_hijack, overlap):
    return float(hijack_margin_probability(rho, L, D, D_hijack, overlap)[0])


def _margin_flip_cases():
    return [
        (0.5, 1, 6, 6, 0),
        (0.5, 4, 6, 6, 0),
        (0.45, 15, 6, 6, 2),
        (0.4, 10, 6, 21, 2),
        (0.6, 9, 21, 6, 2),
        (0.3, 6, 5, 5, 4),
        (0.7, 2, 3, 8, 1),
    ]


def check_flip_probability_overlap(fn: Callable) -> CheckResult:
    """Check ``fn(rho, L, D, D_hijack, overlap) -> float``: the probability that the constructed
    model strictly prefers y' to y on a noise-free rho-hijacked context of length L whose
    neighbourhoods have sizes D, D_hijack and share ``overlap`` tokens
    (``hijack_margin_probability``)."""
    return run_cases(
        "flip_probability_overlap",
        fn,
        _reference_margin_flip,
        _margin_flip_cases(),
        compare=safe_compare(lambda e, g: close(e, float(g), rtol=1e-7, atol=1e-10)),
        describe=lambda c: f"rho={c[0]}, L={c[1]}, D={c[2]}, D_hijack={c[3]}, overlap={c[4]}",
    )
