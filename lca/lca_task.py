"""Chapter 2, the latent concept association task: exact quantities of the task (the context law
as a table, Bayes accuracy in closed form and by enumeration, support sizes, a chi-square check
of the sampler), the chapter's figures and its exercise checkers."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable, NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from ._validate import check_bool, check_finite, check_float, check_int, check_size, check_tokens
from .checks import CheckResult, run_cases, seed_problem
from .latent import hamming_sphere, xor_invariant
from .style import COLORS, CYCLE, SEQUENTIAL_CMAP, legend_below, new_figure
from .task import TaskSpec, bayes_posterior, check_spec, sample

# Exact quantities of the LCA task: the Bayes-optimal accuracy of the pure radius-1 sphere task in
# closed form (thm-bayes-sphere), the same accuracy by exact enumeration for any noise-free task
# with small neighbourhoods, the exact law of a whole context, and a chi-square test of a sampler.

# Exact big-integer sums cost about (terms) x (bits per term); these bound them to a few seconds.
SURJECTION_COST = 2**28  # (k + 1) * L * log2(k + 1) for surjections(L, k)
SUPPORT_LAW_COST = 2**30  # K^2 / 2 * L * log2(K + 1), K = min(D, L), for support_size_law(D, L)
CONTEXT_TABLE_LIMIT = 2**26  # V^L * (V + L) entries for context_law_table (the joint law and contexts)


def surjections(L: int, k: int) -> int:
    """Number of maps from L positions onto a set of k tokens that use every token,
    k! S(L, k) = sum_j (-1)^j C(k, j) (k - j)^L (exact integer). L in 0..100,000 and k >= 0, with
    the cost (k + 1) L log2(k + 1) of the sum at most ``SURJECTION_COST`` (k <= L; k > L gives 0)."""
    L = check_int("L", L, 0, 100_000)
    k = check_int("k", k, 0, 100_000)
    if k > L or (k == 0) != (L == 0):
        return int(k == L)  # no map onto more tokens than positions; L = 0 maps onto k = 0 only
    cost = (k + 1) * L * max(1, k.bit_length())
    if cost > SURJECTION_COST:
        raise ValueError(
            f"L and k are too large: surjections(L={L}, k={k}) sums {k + 1:,} integers of about "
            f"{L * max(1, k.bit_length()):,} bits, more than the limit of (k + 1) * L * log2(k + 1) "
            f"<= {SURJECTION_COST:,} (a few seconds)"
        )
    return sum((-1) ** j * math.comb(k, j) * (k - j) ** L for j in range(k + 1))


def support_size_law(D: int, L: int) -> list:
    """Exact law of K, the number of distinct tokens among L i.i.d. uniform draws from D tokens:
    list of ``Fraction`` with entry k = P(K = k) = C(D, k) k! S(L, k) / D^L for k = 0..min(D, L)."""
    D = check_int("D", D, 1, 10_000)
    L = check_int("L", L, 1, 2_000)
    K = min(D, L)
    if K * K // 2 * L * max(1, K.bit_length()) > SUPPORT_LAW_COST:
        raise ValueError(
            f"D and L are too large: support_size_law(D={D}, L={L}) needs {K + 1} exact surjection "
            f"counts of up to {L * max(1, K.bit_length()):,} bits, more than the limit of "
            f"min(D, L)^2 / 2 * L * log2(min(D, L)) <= {SUPPORT_LAW_COST:,} (a few seconds)"
        )
    total = D**L
    return [Fraction(math.comb(D, k) * surjections(L, k), total) for k in range(min(D, L) + 1)]


def bayes_accuracy_sphere1(m: int, L: int, exact: bool = False) -> float | Fraction:
    """Bayes-optimal accuracy of the noise-free task with neighbourhood N_1 (radius-1 sphere), ties
    broken uniformly at random (thm-bayes-sphere):

        acc(m, L) = 1 - (m - 1) / m^L - m (m - 1) (2^L - 2) / (4 m^L).

    Returns a float, or an exact ``Fraction`` when ``exact`` (then L must be at most 4096).
    """
    m = check_int("m", m, 1, 16)
    L = check_int("L", L, 1, 1_000_000)
    if check_bool("exact", exact):
        L = check_int("L", L, 1, 4096)
        return 1 - Fraction(m - 1, m**L) - Fraction(m * (m - 1) * (2**L - 2), 4 * m**L)
    if m == 1:
        return 1.0
    # (2/m)^L (1 - 2^(1-L)) = (2^L - 2)/m^L without overflow
    return float(
        1.0 - (m - 1) * m ** (-float(L)) - m * (m - 1) / 4.0 * (2.0 / m) ** L * (1.0 - 2.0 ** (1 - L))
    )


def bayes_error_bound_sphere1(m: int, L: int) -> float:
    """The cruder bound P(error) <= C(m, 2) (2/m)^L (ties counted as errors, union over the
    C(m, 2) targets at distance 2), for comparison with the exact closed form."""
    m = check_int("m", m, 1, 16)
    L = check_int("L", L, 1, 1_000_000)
    return min(1.0, math.comb(m, 2) * (2.0 / m) ** L)


def bayes_accuracy_enumerate(spec: TaskSpec, max_cells: int = 2**25) -> float:
    """Exact Bayes-optimal accuracy of a noise-free task by enumerating every possible context
    support S (the set of distinct context tokens) inside each target's neighbourhood.

    With noise 0 a context drawn for target y has support S subset of N(y) with probability
    surj(L, |S|) / |N(y)|^L; the posterior of y' is proportional to |N(y')|^(-L) on the targets
    with S subset of N(y') and 0 elsewhere, and the Bayes rule (ties broken uniformly) is right
    with probability 1[y in argmax] / |argmax|. When the neighbourhood mask is invariant under
    XOR translations (spheres, balls, clusters) only y = 0 is enumerated.

    Needs ``spec.noise == 0`` and ``2^|N(y)| * V <= max_cells`` (at most 2^26: the tables are
    ``[2^|N(y)|, V]``).
    """
    check_spec(spec)
    if spec.noise != 0:
        raise ValueError(
            f"noise must be 0 for exact enumeration (with noise every token can appear), got {spec.noise}"
        )
    max_cells = check_int("max_cells", max_cells, 1, 2**26)
    mask = spec.neighbourhood.mask(spec.space)
    V, L = spec.V, spec.L
    deg = mask.sum(1)
    Dmax = int(deg.max())
    if (2**Dmax) * V > max_cells:
        raise ValueError(
            f"max_cells must be at least 2^|N(y)| * V = {2**Dmax * V} for this "
            f"task (neighbourhoods of {Dmax} tokens), got {max_cells}"
        )
    targets = [0] if xor_invariant(mask) else range(V)
    total = 0.0
    for y in targets:
        nb = torch.nonzero(mask[y]).flatten()
        D = nb.numel()
        S = torch.arange(2**D)
        bits = (S[:, None] >> torch.arange(D)[None, :]) & 1  # [2^D, D]
        size = bits.sum(1)
        # consistent[S, y'] = every token of S lies in N(y')
        cols = mask[:, nb].T  # [D, V]
        consistent = torch.ones((2**D, V), dtype=torch.bool)
        for a in range(D):
            consistent[bits[:, a] == 1] &= cols[a]
        big = torch.iinfo(torch.long).max
        degs = torch.where(consistent, deg[None, :], torch.full_like(consistent, big, dtype=torch.long))
        best = degs.min(1).values
        n_best = (degs == best[:, None]).sum(1)
        correct = (degs[:, y] == best).double() / n_best.double()
        law = support_size_law(D, L)
        p_set = torch.tensor(
            [float(law[k] / math.comb(D, k)) if k < len(law) else 0.0 for k in range(D + 1)],
            dtype=torch.float64,
        )
        prob = p_set[size]
        prob[size == 0] = 0.0
        total += float((prob * correct).sum())
    return total / len(targets)


def context_law_table(spec: TaskSpec, max_contexts: int = 2**20) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact joint law of (target, whole context), from the task's position laws
    (``spec.context_law()``, and ``spec.last_law()`` for the last position), not from its sampler.

    Returns ``(contexts LongTensor[V^L, L], joint Tensor[V, V^L])`` with contexts in lexicographic
    order (context c has code sum_l x_l V^(L-1-l)) and ``joint[y, c] = (1/V) prod_l P_l(x_l | y)``,
    where P_l = (1 - noise) Unif(N(y)) + noise q(. | y) (q uniform over the tokens other than y, or
    uniform over the noise law's set), and the last position is Unif(N(y)) when ``clean_last``.
    Needs ``V^L <= max_contexts`` and ``V^L (V + L) <= CONTEXT_TABLE_LIMIT`` (2^26 table entries).
    """
    check_spec(spec)
    max_contexts = check_int("max_contexts", max_contexts, 1, 2**26)
    V, L = spec.V, spec.L
    if spec.m * L > 26:  # V^L > 2^26: no need to build a huge integer to say no
        n_contexts = f"2^{spec.m * L}"
    else:
        n_contexts = f"{V**L}"
    if spec.m * L > 26 or V**L > max_contexts:
        raise ValueError(
            f"max_contexts must be at least V^L = {n_contexts} to enumerate every context "
            f"(V={V}, L={L}), got {max_contexts}; use a smaller m or L"
        )
    check_size("spec", V**L * (V + L), CONTEXT_TABLE_LIMIT, f"table entries (V^L * (V + L), V={V}, L={L})")
    mixed, last = spec.context_law(), spec.last_law()
    contexts = context_codes_inverse(torch.arange(V**L), V, L)
    joint = torch.full((V, V**L), 1.0 / V, dtype=torch.float64)
    for pos in range(L):
        law = last if pos == L - 1 else mixed
        joint = joint * law[:, contexts[:, pos]]
    return contexts, joint


def context_codes(contexts: torch.Tensor, V: int) -> torch.Tensor:
    """``LongTensor[n]``: code sum_l x_l V^(L-1-l) of each context ``[n, L]`` (lexicographic).
    Needs ``V^L <= 2^63`` so that every code fits in an int64."""
    V = check_int("V", V, 2, 2**16)
    contexts = check_tokens("contexts", contexts, V, ndim=2)
    L = contexts.shape[1]
    _check_codes_fit(V, L)
    weights = V ** torch.arange(L - 1, -1, -1)
    return (contexts * weights).sum(1)


def context_codes_inverse(codes: torch.Tensor, V: int, L: int) -> torch.Tensor:
    """``LongTensor[n, L]``: the contexts with the given codes ``LongTensor[n]`` in 0..V^L - 1
    (inverse of ``context_codes``; needs ``V^L <= 2^63``)."""
    V = check_int("V", V, 2, 2**16)
    L = check_int("L", L, 1, 64)
    _check_codes_fit(V, L)
    if not isinstance(codes, torch.Tensor) or codes.ndim != 1 or codes.dtype != torch.int64:
        raise ValueError(
            f"codes must be a LongTensor [n], got {type(codes).__name__} "
            f"{getattr(codes, 'dtype', '')} {tuple(getattr(codes, 'shape', ()))}"
        )
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= V**L):
        raise ValueError(
            f"codes must be in 0..V^L - 1 = {V**L - 1} (V={V}, L={L}), got values in "
            f"{int(codes.min())}..{int(codes.max())}"
        )
    shifts = V ** torch.arange(L - 1, -1, -1)
    return (codes[:, None] // shifts[None, :]) % V


def _check_codes_fit(V: int, L: int) -> None:
    """ValueError naming V and L when the codes of length-L contexts over V tokens (0..V^L - 1)
    would not fit in an int64 (they would wrap around silently)."""
    if V**L > 2**63:
        raise ValueError(
            f"V and L are too large: V^L = {V}^{L} codes do not fit in an int64 (V^L must be at "
            f"most 2^63, here about 2^{L * math.log2(V):.0f}); use a smaller V or L"
        )


class ChiSquare(NamedTuple):
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
        raise ValueError(
            f"counts and probs must have the same shape, got {tuple(counts.shape)} and {tuple(probs.shape)}"
        )
    min_expected = check_float("min_expected", min_expected, 0.0, 1e6)
    check_finite("counts", counts)
    check_finite("probs", probs)
    if bool((counts < 0).any()):
        raise ValueError(f"counts must be non-negative, got a minimum of {float(counts.min()):g}")
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
        raise ValueError(
            "chi_square needs at least two cells with enough expected counts; "
            "draw more samples or lower min_expected"
        )
    p = float(
        torch.special.gammaincc(
            torch.tensor(dof / 2.0, dtype=torch.float64), torch.tensor(stat / 2.0, dtype=torch.float64)
        )
    )
    return ChiSquare(stat, int(dof), p, int(obs.numel()))


def sampler_chi_square(
    spec: TaskSpec, contexts: torch.Tensor, targets: torch.Tensor, min_expected: float = 5.0
) -> ChiSquare:
    """Chi-square test of sampled ``(contexts [n, L], targets [n])`` against the exact joint law
    ``context_law_table(spec)`` over all V * V^L cells (target, whole context)."""
    _, joint = context_law_table(spec)
    V = spec.V
    contexts = check_tokens("contexts", contexts, V, ndim=2)
    targets = check_tokens("targets", targets, V, ndim=1)
    if contexts.shape[1] != spec.L or contexts.shape[0] != targets.shape[0]:
        raise ValueError(
            f"contexts must have shape [n, L={spec.L}] and targets [n], got "
            f"{tuple(contexts.shape)} and {tuple(targets.shape)}"
        )
    cell = targets * V**spec.L + context_codes(contexts, V)
    counts = torch.bincount(cell, minlength=joint.numel()).double().reshape(joint.shape)
    return chi_square(counts, joint, min_expected)


def _context_image(ax, context_latents, target_latent, tokens=None, target=None):
    Z = np.asarray(context_latents, dtype=int)
    z = np.asarray(target_latent, dtype=int)
    img = np.vstack([z[None, :], Z])
    cmap = ListedColormap(["#FFFFFF", COLORS["blue"]])
    ax.imshow(img, cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    L, m = Z.shape
    for i in range(L):
        for k in range(m):
            if Z[i, k] != z[k]:
                ax.add_patch(
                    plt.Rectangle((k - 0.5, i + 0.5), 1, 1, fill=False, edgecolor=COLORS["vermillion"], lw=2)
                )
    ax.axhline(0.5, color="black", lw=2)
    step = 1 if m <= 8 else 2
    ax.set_xticks(range(0, m, step))
    ax.set_xticklabels([f"$z_{{{k + 1}}}$" for k in range(0, m, step)])
    labels = ["$y$" + ("" if target is None else f" = {int(target)}")]
    labels += [f"$x_{{{i + 1}}}$" + ("" if tokens is None else f" = {int(tokens[i])}") for i in range(L)]
    every = max(1, math.ceil((L + 1) / 17))  # at most about 17 row labels
    ax.set_yticks(range(0, L + 1, every))
    ax.set_yticklabels(labels[::every])
    ax.set_xlabel("latent bit")
    ax.grid(False)


def plot_context(
    context_latents: ArrayLike,
    target_latent: ArrayLike,
    tokens: ArrayLike | None = None,
    target: int | None = None,
    title: str | None = None,
) -> Figure:
    """One example drawn as an image: the target's latent vector on top, then one row per context
    token (``context_latents [L, m]`` of 0/1; blue = 1); bits that differ from the target are
    framed in vermillion. ``title``, if given, is the panel's title (the book's caption says what
    the figure shows)."""
    L = len(context_latents)
    fig, ax = new_figure(width=0.45 * len(target_latent) + 2.2, height=0.27 * (L + 1) + 1.0)
    _context_image(ax, context_latents, target_latent, tokens, target)
    if title:
        ax.set_title(title)
    return fig


def plot_neighbourhood_masks(distances: ArrayLike, masks: dict, title: str | None = None) -> Figure:
    """First panel: the Hamming distance matrix ``[V, V]``; then one panel per mask (label ->
    ``BoolTensor[V, V]``, row y = target, column x = context token allowed in y's context, blue =
    allowed), in a grid of at most 3 panels per row. Labels may use mathtext. ``title``, if given,
    is a figure title above the grid (the book leaves it to the caption)."""
    n = 1 + len(masks)
    fig, axes = new_figure(ncols=n, width=2.5, height=2.55)
    axes = np.atleast_1d(axes)
    D = np.asarray(distances)
    V = D.shape[0]
    ticks = [0, V // 2, V - 1] if V > 4 else list(range(V))
    im = axes[0].imshow(D, cmap=SEQUENTIAL_CMAP, interpolation="nearest")
    cb = fig.colorbar(im, ax=axes[0], shrink=0.8)
    cb.set_ticks(range(int(D.max()) + 1))
    axes[0].set_title("$D_H(y, x)$")
    cmap = ListedColormap(["#FFFFFF", COLORS["blue"]])
    for ax, (label, M) in zip(axes[1:], masks.items()):
        M = np.asarray(M, dtype=int)
        ax.imshow(M, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{label}: {int(M.sum(1).max())} per row")
    ncols = min(n, 3)
    for i, ax in enumerate(axes):
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        if i >= n - ncols:  # bottom panel of its column
            ax.set_xlabel("context token $x$")
        if i % ncols == 0:
            ax.set_ylabel("target $y$")
        ax.grid(False)
    if title:
        fig.suptitle(title)
    return fig


def plot_bayes_accuracy(panels: list, title: str | None = None) -> Figure:
    """One panel per entry of ``panels``: dicts with ``title``, ``L`` (context lengths),
    ``mc`` (label -> Monte Carlo accuracies, drawn as points) and optionally ``exact``
    (label -> exact accuracies on the same L, drawn as lines; labels matching ``mc`` share a
    colour) and ``reference`` (label -> values drawn as dotted grey lines). The curves' labels
    (one colour each, the same in every panel) and the three line styles share one legend
    under the panels. ``title``, if given, is a figure title (the book leaves it to the caption).
    """
    fig, axes = new_figure(ncols=len(panels), width=2.5, height=2.6, sharey=True)
    axes = np.atleast_1d(axes)
    colour = {}  # label -> colour, shared by all panels
    for p in panels:
        for label in list(p.get("mc", {})) + list(p.get("exact", {})):
            colour.setdefault(label, CYCLE[len(colour) % len(CYCLE)])
    has_ref = False
    for i, (ax, p) in enumerate(zip(axes, panels)):
        L = np.asarray(p["L"])
        for label, vals in p.get("exact", {}).items():
            ax.plot(L, vals, "-", color=colour[label], lw=1.5)
        for label, vals in p.get("mc", {}).items():
            ax.plot(L, vals, "o", color=colour[label], ms=3)
        for _label, vals in p.get("reference", {}).items():
            ax.plot(L, vals, ":", color="0.45", lw=1.2)
            has_ref = True
        ax.set_xlabel("context length $L$")
        if i == 0:
            ax.set_ylabel("Bayes-optimal accuracy")
        ax.set_ylim(0, 1.02)
        ax.set_title(p.get("title", ""))
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, lw=6) for c in colour.values()]
    labels = list(colour)
    handles += [
        Line2D([], [], color="black", marker="o", ls="none", ms=4),
        Line2D([], [], color="black", lw=1.5),
    ]
    labels += ["Monte Carlo", "exact"]
    if has_ref:
        handles.append(Line2D([], [], color="0.45", ls=":", lw=1.2))
        labels.append("noise-free closed form")
    legend_below(fig, handles=handles, labels=labels, ncols=4)
    if title:
        fig.suptitle(title)
    return fig


def plot_context_posterior(
    context_latents: ArrayLike,
    target_latent: ArrayLike,
    posterior: ArrayLike,
    target: int,
    tokens: ArrayLike | None = None,
    title: str | None = None,
) -> Figure:
    """Left: the context as bit patterns (as ``plot_context``), titled ``title`` if given. Right:
    the posterior ``[V]`` over targets as sky-blue bars, the true target in vermillion."""
    L = len(context_latents)
    fig, (ax1, ax2) = new_figure(ncols=2, width=3.7, height=max(3.0, 0.22 * (L + 1) + 1.2))
    _context_image(ax1, context_latents, target_latent, tokens, target)
    ax1.set_title(title or "context, target row on top")
    post = np.asarray(posterior, dtype=float)
    colors = [COLORS["sky"]] * len(post)
    colors[int(target)] = COLORS["vermillion"]
    ax2.bar(np.arange(len(post)), post, color=colors, width=1.0)
    ax2.set_xlabel("candidate target $y'$")
    ax2.set_ylabel(r"posterior $P(y'\mid x)$")
    ax2.set_ylim(0, 1.02)
    ax2.set_title("posterior, true target in vermillion")
    return fig


def check_neighbourhood_mask(fn: Callable) -> CheckResult:
    """Check ``fn(m, r) -> BoolTensor[V, V]``: ``mask[y, x]`` is True iff the latent vectors of
    tokens y and x (binary digits, most significant bit first) are at Hamming distance exactly r."""

    def reference(m, r):
        return hamming_sphere(r).mask(m)

    cases = [(1, 1), (2, 1), (3, 1), (3, 2), (4, 2), (5, 3), (4, 4)]
    return run_cases(
        "check_neighbourhood_mask",
        fn,
        reference,
        cases,
        compare=lambda e, g: (
            isinstance(g, torch.Tensor) and g.shape == e.shape and bool(torch.equal(g.bool(), e))
        ),
    )


def _sample_contexts(m: int, L: int, n: int, seed: int, noise: float = 0.0):
    ctx, _ = sample(TaskSpec(m=m, L=L, noise=noise), n, seed=seed)
    return ctx


def check_bayes_posterior(fn: Callable) -> CheckResult:
    """Check ``fn(m, contexts LongTensor[n, L]) -> Tensor[n, V]``: the exact posterior over targets
    of the noise-free task with neighbourhood N_1 (uniform prior over targets)."""

    def reference(m, contexts):
        return bayes_posterior(TaskSpec(m=m, L=contexts.shape[1]), contexts)

    cases = [
        (m, _sample_contexts(m, L, n, seed))
        for m, L, n, seed in [
            (2, 1, 3, 0),
            (3, 1, 4, 1),
            (3, 2, 6, 2),
            (4, 3, 8, 3),
            (5, 2, 8, 4),
            (6, 5, 6, 5),
        ]
    ]
    return run_cases(
        "check_bayes_posterior",
        fn,
        reference,
        cases,
        describe=lambda c: f"m={c[0]}, contexts={c[1].tolist()}",
    )


class _SamplerExpectation:
    """What a correct sampler must return for one case (its repr is the checker's 'expected')."""

    def __init__(self, m: int, L: int, y: int):
        self.m, self.L, self.y = m, L, y

    def __repr__(self) -> str:
        return (
            f"LongTensor of shape ({self.L},) holding the {self.m} tokens y ^ 2^k (k < m) of "
            f"y = {self.y}, each with probability 1/{self.m}, independently"
        )


def _sampler_matches(expected: _SamplerExpectation, got) -> bool:
    m, L, y = expected.m, expected.L, expected.y
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != (L,) or got.is_floating_point():
        return False
    nb = y ^ (1 << torch.arange(m))
    if not bool(torch.isin(got, nb).all()):
        return False
    idx = (got[:, None] == nb[None, :]).double().argmax(1)
    counts = torch.bincount(idx, minlength=m).double()
    if chi_square(counts, torch.full((m,), 1.0 / m, dtype=torch.float64)).p_value < 1e-4:
        return False
    # consecutive pairs: independence between positions
    pairs = torch.bincount(idx[:-1] * m + idx[1:], minlength=m * m).double()
    probs = torch.full((m * m,), 1.0 / (m * m), dtype=torch.float64)
    return chi_square(pairs, probs).p_value >= 1e-4


def check_sample_context(fn: Callable) -> CheckResult:
    """Check ``fn(m, L, y, generator) -> LongTensor[L]``: a context of the noise-free N_1 task for
    target y, i.e. L independent tokens, each uniform over the m tokens at Hamming distance 1 from
    y. The checker draws one long context per case and tests its shape, its support and (chi-square
    tests at level 1e-4 of the token frequencies and of consecutive pairs) its law, then that the
    same seed gives the same context and another seed another one (all randomness from
    ``generator``)."""

    def wrapped(m, L, y, seed):
        return fn(m, L, y, torch.Generator().manual_seed(seed))

    def reference(m, L, y, seed):
        return _SamplerExpectation(m, L, y)

    cases = [(2, 400, 1, 11), (3, 600, 5, 12), (5, 3000, 17, 13), (8, 8000, 200, 14)]
    res = run_cases(
        "check_sample_context",
        wrapped,
        reference,
        cases,
        compare=_sampler_matches,
        describe=lambda c: f"m={c[0]}, L={c[1]}, y={c[2]}, generator=torch.Generator().manual_seed({c[3]})",
        report=False,
    )
    if res:  # the law is right: now the randomness must come from `generator`, and only from it
        problem = seed_problem(lambda g: fn(5, 200, 17, g))
        if problem is not None:
            res = CheckResult(False, f"check_sample_context: {problem} (m=5, L=200, y=17)")
    print(res.message)
    return res


def bayes_accuracy_sphere2_pair(m: int, exact: bool = False) -> float | Fraction:
    """Bayes-optimal accuracy of the noise-free task with the radius-2 sphere N_2 and a context
    of L = 2 tokens (the chapter's exercise ex-lca-sphere2), with D = C(m, 2):

        acc(m) = 1 / D^2 + [m >= 3] / D + C(m - 2, 2) / (6 D).

    m in 2..16; a float, or an exact ``Fraction`` when ``exact``."""
    m = check_int("m", m, 2, 16)
    D = math.comb(m, 2)
    acc = Fraction(1, D * D) + (Fraction(1, D) if m >= 3 else 0) + Fraction(math.comb(m - 2, 2), 6 * D)
    return acc if check_bool("exact", exact) else float(acc)


def check_sphere2_pair_accuracy(fn: Callable) -> CheckResult:
    """Check ``fn(m) -> float``: the Bayes-optimal accuracy of the noise-free N_2 task with L = 2
    context tokens, ties broken uniformly at random (``bayes_accuracy_sphere2_pair``), for m from
    2 to 12."""
    cases = [(m,) for m in range(2, 13)]
    return run_cases(
        "check_sphere2_pair_accuracy",
        fn,
        bayes_accuracy_sphere2_pair,
        cases,
        rtol=1e-9,
        atol=1e-12,
        describe=lambda c: f"m={c[0]}",
    )
