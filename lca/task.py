"""The latent concept association (LCA) task: specification, sampler, the Bayes-optimal ceiling,
count vectors of contexts and the task's support enumerated (for exact population sums).

One example: a target token y, uniform over the V = 2**m tokens; then L context tokens, drawn
independently. Each is, with probability ``1 - noise``, uniform over y's neighbourhood N(y), and with
probability ``noise``, uniform over the noise law's support (by default all tokens other than y).
The target never appears in its own context. If ``clean_last`` is set, the last context token (the
attention query) is always drawn from N(y).

The laws and the sampler's neighbour tables are memoised per ``TaskSpec`` (at most 64 specs, a
frozen dataclass, so equal specs share an entry); they are never written to, and the public
``context_law``, ``clean_law`` and ``last_law`` return copies.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from functools import lru_cache

import torch

from ._validate import (
    check_bool,
    check_float,
    check_int,
    check_size,
    check_tokens,
    make_generator,
)
from .latent import DENSE_LIMIT, LatentSpace, Neighbourhood, hamming_sphere

L_MAX = 1_000_000


@dataclass(frozen=True)
class TaskSpec:
    """A latent concept association task.

    Args:
        m: latent dimension (1..16); V = 2**m tokens.
        L: context length (>= 1).
        neighbourhood: a family from ``lca.latent`` (default: Hamming sphere of radius 1, N_1).
        noise: probability (0 <= noise < 1) that a context token is a noise token.
        noise_law: ``"uniform"`` (noise tokens uniform over all tokens other than the target) or a
            neighbourhood family whose set is the noise support (e.g. ``lca.latent.other_clusters(2)``).
        clean_last: if True, the last context token is always informative (drawn from N(y)).
    """

    m: int
    L: int
    neighbourhood: Neighbourhood = hamming_sphere(1)
    noise: float = 0.0
    noise_law: object = "uniform"
    clean_last: bool = False

    def __post_init__(self):
        # store the converted values: an equal spec must compare (and hash) equal
        object.__setattr__(self, "m", check_int("m", self.m, 1, 16))
        object.__setattr__(self, "L", check_int("L", self.L, 1, L_MAX))
        object.__setattr__(self, "noise", check_float("noise", self.noise, 0.0, 1.0, hi_open=True))
        object.__setattr__(self, "clean_last", check_bool("clean_last", self.clean_last))
        if not isinstance(self.neighbourhood, Neighbourhood):
            raise ValueError(
                "neighbourhood must be a family from lca.latent (e.g. "
                f"hamming_sphere(1)), got {self.neighbourhood!r}"
            )
        self.neighbourhood.validate(self.space)
        if (
            isinstance(self.noise_law, str)
            and self.noise_law != "uniform"
            or not isinstance(self.noise_law, (str, Neighbourhood))
        ):
            raise ValueError(f"noise_law must be 'uniform' or a neighbourhood family, got {self.noise_law!r}")
        if self.noise_law != "uniform":
            if not isinstance(self.noise_law, Neighbourhood):
                raise ValueError(
                    f"noise_law must be 'uniform' or a neighbourhood family, got {self.noise_law!r}"
                )
            self.noise_law.validate(self.space)

    @property
    def space(self) -> LatentSpace:
        return LatentSpace(self.m)

    @property
    def V(self) -> int:
        return 2**self.m

    def with_(self, **changes) -> "TaskSpec":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def context_law(self) -> torch.Tensor:
        """``Tensor[V, V]`` (float64): ``P[y, x]`` = probability of context token x given target y
        for a (non-last, or any if ``clean_last`` is False) context position."""
        return _law(self, clean=False).clone()

    def clean_law(self) -> torch.Tensor:
        """``Tensor[V, V]``: the law of an informative token, uniform over N(y)."""
        return _law(self, clean=True).clone()

    def last_law(self) -> torch.Tensor:
        """``Tensor[V, V]``: the law of the last context position (the attention query):
        ``clean_law()`` when ``clean_last`` is set and there is noise, else ``context_law()``."""
        return self.clean_law() if (self.clean_last and self.noise > 0) else self.context_law()


def check_spec(spec: object, name: str = "spec") -> TaskSpec:
    """Return ``spec`` if it is a ``TaskSpec``, else raise ValueError naming the parameter."""
    if not isinstance(spec, TaskSpec):
        raise ValueError(f"{name} must be a TaskSpec, got {type(spec).__name__}")
    return spec


def count_vector(
    contexts: torch.Tensor, V: int, weight: float = 1.0, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Count vectors ``Tensor[n, V]`` of contexts ``LongTensor[n, L]``: entry ``[i, k]`` adds
    ``weight`` for every position of context i that holds token k. ``weight=1`` counts the tokens;
    ``weight=1/L`` gives their frequencies, the vector that uniform attention averages."""
    V = check_int("V", V, 1, 2**16)
    contexts = check_tokens("contexts", contexts, V, ndim=2)
    weight = check_float("weight", weight)
    check_size("contexts", contexts.shape[0] * V, 2**28, "entries of the [n, V] count table")
    c = torch.zeros((contexts.shape[0], V), dtype=dtype, device=contexts.device)
    ones = torch.full(contexts.shape, weight, dtype=dtype, device=contexts.device)
    return c.scatter_add_(1, contexts, ones)


@lru_cache(maxsize=64)
def _law(spec: TaskSpec, clean: bool) -> torch.Tensor:
    space = spec.space
    check_size("m", space.V * space.V, DENSE_LIMIT, "entries of the V x V law")
    mask = spec.neighbourhood.mask(space).double()
    P = mask / mask.sum(1, keepdim=True)
    if clean or spec.noise == 0:
        return P
    if spec.noise_law == "uniform":
        Q = 1.0 - torch.eye(space.V, dtype=torch.float64)
    else:
        Q = spec.noise_law.mask(space).double()
    Q = Q / Q.sum(1, keepdim=True)
    return (1 - spec.noise) * P + spec.noise * Q


def _draw_from_table(
    table: torch.Tensor, deg: torch.Tensor, y: torch.Tensor, L: int, g: torch.Generator
) -> torch.Tensor:
    """Draw ``[n, L]`` tokens, row i uniform over the padded neighbour list of target ``y[i]``."""
    u = torch.rand((y.shape[0], L), generator=g, dtype=torch.float64)
    d = deg[y][:, None]
    idx = torch.minimum((u * d).long(), d - 1)
    return torch.gather(table[y], 1, idx)


@lru_cache(maxsize=64)
def _tables(spec: TaskSpec):
    space = spec.space
    table, deg = spec.neighbourhood.table(space)
    check_size("m", table.numel(), DENSE_LIMIT, "entries of the neighbour table")
    if spec.noise_law == "uniform" or spec.noise == 0:
        noise = None
    else:
        noise = spec.noise_law.table(space)
    return table, deg, noise


def sample(
    spec: TaskSpec, n: int, seed: int | None = None, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` examples of the task.

    Returns:
        ``(contexts LongTensor[n, L], targets LongTensor[n])``, on the CPU.

    Seeding: pass ``seed`` (an int) for a fresh generator, or ``generator`` to continue a stream.
    """
    check_spec(spec)
    n = check_int("n", n, 0, 10_000_000)
    g = make_generator(seed, generator)
    V, L = spec.V, spec.L
    table, deg, noise_table = _tables(spec)
    y = torch.randint(0, V, (n,), generator=g)
    ctx = _draw_from_table(table, deg, y, L, g)
    if spec.noise > 0:
        is_noise = torch.rand((n, L), generator=g, dtype=torch.float64) < spec.noise
        if spec.clean_last:
            is_noise[:, -1] = False
        if noise_table is None:
            # uniform over the V - 1 tokens other than y: draw from V - 1 and skip over y
            r = torch.randint(0, V - 1, (n, L), generator=g)
            noise_tok = r + (r >= y[:, None]).long()
        else:
            noise_tok = _draw_from_table(noise_table[0], noise_table[1], y, L, g)
        ctx = torch.where(is_noise, noise_tok, ctx)
    return ctx, y


def log_likelihood(spec: TaskSpec, contexts: torch.Tensor) -> torch.Tensor:
    """``Tensor[n, V]`` (float64): log p(contexts | y) for every candidate target y (-inf where
    some context token is impossible under y)."""
    check_spec(spec)
    contexts = check_tokens("contexts", contexts, spec.V, ndim=2)
    if contexts.shape[1] != spec.L:
        raise ValueError(f"contexts must have shape [n, L={spec.L}], got {tuple(contexts.shape)}")
    if spec.m > 12:
        raise ValueError(
            f"m must be at most 12 for the exact Bayes posterior (it uses V x V tables), got m={spec.m}"
        )
    V = spec.V
    logP = torch.log(spec.context_law())  # [V(y), V(x)]
    if spec.clean_last and spec.noise > 0:
        body, last = contexts[:, :-1], contexts[:, -1]
        out = _count_loglik(body, logP, V) + torch.log(spec.clean_law()).T[last]
    else:
        out = _count_loglik(contexts, logP, V)
    return out


def _count_loglik(contexts: torch.Tensor, logP: torch.Tensor, V: int) -> torch.Tensor:
    counts = count_vector(contexts, V)
    finite = torch.where(torch.isfinite(logP), logP, torch.zeros_like(logP))
    impossible = (counts @ (~torch.isfinite(logP)).double().T) > 0
    out = counts @ finite.T
    return out.masked_fill(impossible, float("-inf"))


def bayes_posterior(spec: TaskSpec, contexts: torch.Tensor) -> torch.Tensor:
    """Exact posterior ``Tensor[n, V]`` (float64) over the target given each context (uniform
    prior over targets)."""
    ll = log_likelihood(spec, contexts)
    impossible = int(torch.isneginf(ll).all(1).sum()) if ll.numel() else 0
    if impossible:
        warnings.warn(
            f"bayes_posterior: {impossible} of {ll.shape[0]} contexts are impossible under every "
            "target (no target has all their tokens in its support); their rows are NaN",
            RuntimeWarning,
            stacklevel=2,
        )
    return torch.softmax(ll, dim=1)


def bayes_correct(spec: TaskSpec, contexts: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``Tensor[n]``: probability that the Bayes-optimal predictor is right on each example, with
    ties among maximisers broken uniformly at random (so the value is 1/|argmax set| or 0)."""
    ll = log_likelihood(spec, contexts)
    best = ll.max(dim=1, keepdim=True).values
    ties = ll >= best - 1e-9 * best.abs().clamp(min=1.0)
    targets = check_tokens("targets", targets, spec.V, ndim=1)
    hit = ties.gather(1, targets[:, None]).squeeze(1)
    return hit.double() / ties.sum(1).double()


def bayes_accuracy(spec: TaskSpec, n: int = 4096, seed: int = 0) -> float:
    """Accuracy of the Bayes-optimal predictor on ``n`` fresh examples (ties broken uniformly):
    the ceiling any model can reach on this task."""
    n = check_int("n", n, 1, 1_000_000)
    ctx, y = sample(spec, n, seed=seed)
    return float(bayes_correct(spec, ctx, y).mean())


def enumerate_task(
    spec: TaskSpec, max_rows: int = 2_000_000
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (context, target) pair of the task with positive probability.

    Returns ``(contexts LongTensor[R, L], targets LongTensor[R], probs Tensor[R] float64)`` with
    ``probs`` summing to 1, so population expectations become exact weighted sums. The number of
    rows is ``sum_y prod_l |support of position l|``; it must not exceed ``max_rows``.
    """
    check_spec(spec)
    max_rows = check_int("max_rows", max_rows, 1, 50_000_000)
    P, last = spec.context_law(), spec.last_law()
    V, L = spec.V, spec.L
    body_support = (P > 0).sum(1)
    last_support = (last > 0).sum(1)
    rows = int((body_support.double() ** (L - 1) * last_support.double()).sum())
    if rows > max_rows:
        raise ValueError(
            f"max_rows must be at least {rows} to enumerate this task (m={spec.m}, "
            f"L={spec.L}), got {max_rows}; use a smaller m or L"
        )
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
