"""Chapter 3, the one-layer transformer: the forward pass traced step by step, the count-vector
form of uniform attention, the course's Bayes-reaching value matrix, accuracy sweeps over the
context length and the embedding dimension, the chapter's figures and its exercise checkers."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from matplotlib.figure import Figure

from . import report
from ._validate import check_choice, check_finite, check_float, check_int, check_size, check_tokens
from .associative_memory import random_keys
from .checks import CheckResult, close, run_cases
from .latent import Neighbourhood, hamming_sphere
from .model import OneLayerTransformer, check_model
from .style import COLORS, CYCLE, new_figure
from .task import TaskSpec, bayes_correct, check_spec, count_vector, sample
from .train import TrainConfig, sweep


def forward_trace(model: OneLayerTransformer, contexts: torch.Tensor) -> dict:
    """Every intermediate quantity of the forward pass, computed from the equations.

    Args:
        model: a single ``lca.OneLayerTransformer`` (not an ensemble).
        contexts: ``LongTensor[n, L]`` of token ids.

    Returns:
        dict of tensors (detached): ``"contexts"`` (the input), ``"X"`` [n, L, d] context
        embeddings, ``"q"`` [n, d] the query (last token's embedding), ``"scores"`` [n, L],
        ``"attention"`` [n, L], ``"h"`` [n, d] the attention output, ``"v"`` [n, d] = W_V h
        (plus residual / layer norm if the model has them), ``"logits"`` [n, V].
    """
    check_model(model, single=True)
    contexts = check_tokens("contexts", contexts, model.V, ndim=2)
    if contexts.shape[1] < 1:
        raise ValueError("contexts must have at least one position (L >= 1)")
    with torch.no_grad():
        W_E, W_KQ, W_V = model.W_E.detach(), model.W_KQ.detach(), model.W_V.detach()
        U = model.unembedding.detach()
        X = W_E[contexts.to(W_E.device)]  # [n, L, d]
        q = X[:, -1, :]  # [n, d]
        scores = torch.einsum("nd,de,nle->nl", q, W_KQ, X)  # s_l = q^T W_KQ x_l
        att = torch.softmax(scores, dim=-1)
        h = torch.einsum("nl,nld->nd", att, X)
        v = h @ W_V.T
        if model.residual:
            v = v + q
        if model.layernorm:
            v = torch.nn.functional.layer_norm(v, (v.shape[-1],))
        logits = v @ U.T
    return {
        "contexts": contexts.cpu(),
        "X": X,
        "q": q,
        "scores": scores,
        "attention": att,
        "h": h,
        "v": v,
        "logits": logits,
    }


def clipped_log_law(spec: TaskSpec, clip: float | None = None) -> torch.Tensor:
    """``Lambda [V, V]`` (float64): log P[y, x] of the context law with the impossible entries
    (log 0 = -inf) replaced by ``-clip``. The default clip is ``L B + 1`` with B the largest finite
    |log P|; any clip > L B makes argmax_y (Lambda c)_y the set of Bayes-optimal predictions for
    every count vector c of a length-L context (chapter 3's theorem)."""
    check_spec(spec)
    if spec.clean_last and spec.noise > 0:
        raise ValueError(
            "spec must not have clean_last=True with noise > 0: the last position then "
            "has its own law, which a position-blind model cannot weigh differently"
        )
    P = spec.context_law()
    logP = torch.log(P)
    finite = torch.isfinite(logP)
    B = float(logP[finite].abs().max()) if bool(finite.any()) else 0.0
    if clip is None:
        clip = spec.L * B + 1.0
    clip = check_float("clip", clip, 0.0, None, lo_open=True)
    return torch.where(finite, logP, torch.full_like(logP, -clip))


PINV_COST = 2**33  # V d min(V, d) for the pseudo-inverse of W_E [V, d] (a few seconds)


def bayes_value_matrix(spec: TaskSpec, W_E: torch.Tensor, clip: float | None = None) -> torch.Tensor:
    """The course's value matrix that makes the one-layer transformer Bayes-optimal.

    With W_KQ = 0 the model's logits are ``(1/L) W_E W_V W_E^T c(x)``. This returns
    ``W_V = W_E^+ Lambda (W_E^+)^T`` (``W_E^+`` the pseudo-inverse, ``Lambda`` from
    ``clipped_log_law``), so that ``W_E W_V W_E^T = Lambda`` whenever W_E has rank V (needs d >= V).
    For d < V it returns the same formula, whose ``W_E W_V W_E^T`` is only the projection of Lambda
    onto the span of the embeddings.

    Args:
        spec: the task (``clean_last`` with noise is not allowed).
        W_E: embeddings ``[V, d]`` with V = spec.V.
        clip: see ``clipped_log_law``.

    Returns:
        ``W_V [d, d]`` in float64.
    """
    if not isinstance(W_E, torch.Tensor) or W_E.ndim != 2:
        raise ValueError(
            "W_E must be a tensor of shape [V, d], got "
            f"{type(W_E).__name__} {tuple(getattr(W_E, 'shape', ()))}"
        )
    V, d = W_E.shape
    check_size("W_E", V * d * min(V, d), PINV_COST, "multiply-adds of its pseudo-inverse (V d min(V, d))")
    Lam = clipped_log_law(spec, clip)
    if W_E.shape[0] != spec.V:
        raise ValueError(f"W_E must have V={spec.V} rows for this task, got shape {tuple(W_E.shape)}")
    if not W_E.is_floating_point():
        raise ValueError(f"W_E must have a floating dtype, got {W_E.dtype}")
    check_finite("W_E", W_E)
    Ep = torch.linalg.pinv(W_E.detach().double().cpu())  # [d, V]
    return Ep @ Lam @ Ep.T


def bayes_model(spec: TaskSpec, d: int, seed: int = 0, clip: float | None = None) -> OneLayerTransformer:
    """The model of chapter 3's theorem, in float64: Gaussian embeddings ``W_E [V, d]`` with
    N(0, 1/d) entries (``random_keys(V, d, seed)``), ``W_KQ = 0`` and ``W_V =
    bayes_value_matrix(spec, W_E, clip)``. Bayes-optimal when d >= V (W_E then has rank V)."""
    check_spec(spec)
    d = check_int("d", d, 1, 1 << 16)
    check_size(
        "d", spec.V * d * min(spec.V, d), PINV_COST, "multiply-adds of the pseudo-inverse (V d min(V, d))"
    )
    W_E = random_keys(spec.V, d, seed=seed)
    return OneLayerTransformer.from_weights(W_E, None, bayes_value_matrix(spec, W_E, clip))


def context_vote(model: OneLayerTransformer, contexts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For the lemma on the identity value matrix: ``(top, h_sq)``, both ``Tensor[n]``, where
    ``top[i]`` is the largest logit among the tokens present in context i and ``h_sq[i]`` is
    ``|h|^2`` for that context. With W_V = I (tied unembedding, no residual / layer norm)
    ``top >= h_sq`` always holds."""
    tr = forward_trace(model, contexts)
    contexts = contexts.to(tr["logits"].device)
    top = tr["logits"].gather(1, contexts).max(dim=1).values
    return top, (tr["h"] ** 2).sum(-1)


class SweepTable:
    """Accuracies of a sweep over one shape parameter (``x_name`` = ``"L"`` or ``"d"``).

    ``mean[label][m]`` and ``sd[label][m]`` are lists over ``x`` (mean and standard deviation
    over seeds of the final accuracy on the fixed evaluation set); ``bayes[m]`` lists the Bayes
    accuracy on the same evaluation set; ``settings`` records everything else."""

    def __init__(
        self,
        x_name: str,
        x: list,
        m_values: list,
        labels: list,
        mean=None,
        sd=None,
        bayes=None,
        settings=None,
    ):
        self.x_name, self.x, self.m_values, self.labels = x_name, list(x), list(m_values), list(labels)
        self.mean = {} if mean is None else mean
        self.sd = {} if sd is None else sd
        self.bayes = {} if bayes is None else bayes
        self.settings = {} if settings is None else settings

    def __repr__(self) -> str:
        return f"SweepTable({self.x_name}={self.x}, m={self.m_values}, labels={self.labels})"

    def rows(self) -> list:
        """``[(m, x, acc_label_1, ..., acc_label_k, bayes), ...]``."""
        out = []
        for m in self.m_values:
            for j, x in enumerate(self.x):
                out.append((m, x, *[self.mean[lab][m][j] for lab in self.labels], self.bayes[m][j]))
        return out

    def se(self, label: str, m: int) -> list:
        """Standard errors over seeds of ``mean[label][m]`` (``sd / sqrt(n_seeds - 1)``, since
        ``sd`` is the population standard deviation); needs at least two seeds."""
        n = len(self.settings.get("seeds", ()))
        if n < 2:
            raise ValueError(f"a standard error needs at least 2 seeds, got {n}")
        return [s / (n - 1) ** 0.5 for s in self.sd[label][m]]

    def format(self, digits: int = 3, pm: bool = False) -> str:
        """The table as fixed-precision text (what the figure plots).

        With ``pm=True`` each accuracy prints as "mean ± standard error over seeds"
        (``lca.report.pm``, rounded to the leading digit of the standard error, so that the
        printed digits are those the seeds support); the Bayes column, computed exactly on the
        fixed evaluation set, keeps ``digits`` decimals."""
        digits = check_int("digits", digits, 0, 8)
        heads = ["m", self.x_name, *self.labels, "Bayes"]

        def cell(lab, m, j):
            mean = self.mean[lab][m][j]
            if not pm:
                return f"{mean:.{digits}f}"
            se = self.se(lab, m)[j]
            return report.pm(mean, se) if se > 0 else f"{mean:.{digits}f} ± 0"

        body = [
            [str(m), str(x), *[cell(lab, m, j) for lab in self.labels], f"{self.bayes[m][j]:.{digits}f}"]
            for m in self.m_values
            for j, x in enumerate(self.x)
        ]
        widths = [3, 5] + [
            max([len(h), digits + 3, *[len(r[k]) for r in body]]) for k, h in enumerate(heads[2:], start=2)
        ]
        lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in body]
        return "\n".join(lines)


def _check_grid(name: str, values, lo: int, hi: int) -> list[int]:
    values = list(values) if not isinstance(values, (int, str)) else None
    if not values:
        raise ValueError(f"{name} must be a non-empty list of integers")
    return [check_int(name, v, lo, hi) for v in values]


# What each sweep compares, and its defaults (chapter 3's choices): over the context length L,
# trained W_V against W_V fixed to the identity on the noisy task; over the embedding dimension d,
# trained W_E against W_E fixed at its Gaussian initialisation on the noise-free task.
SWEEPS = {
    "L": {
        "variants": {"trained W_V": {}, "W_V = I": {"train_V": False, "WV_init": "identity"}},
        "noise": 0.5,
        "lr0": 0.06,
        "hi": 100_000,
    },
    "d": {
        "variants": {"trained W_E": {}, "fixed W_E": {"train_E": False}},
        "noise": 0.0,
        "lr0": 0.2,
        "hi": 1 << 16,
    },
}


def shape_sweep(
    x_name: str,
    x_values: Sequence[int],
    m_values: Sequence[int] = (5, 6, 7, 8),
    *,
    L: int = 32,
    d: int = 32,
    noise: float | None = None,
    neighbourhood: Neighbourhood | None = None,
    steps: int = 300,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    batch_size: int = 128,
    lr0: float | None = None,
    n_eval: int = 2048,
    device: str | None = None,
    progress: bool = False,
) -> SweepTable:
    """Accuracy against one shape parameter, ``x_name`` = ``"L"`` (context length; ``d`` fixed)
    or ``"d"`` (embedding dimension; ``L`` fixed), for two variants (``SWEEPS[x_name]``).

    For every (m, x) one ensemble (variants x seeds) is trained with Adam at learning rate
    ``lr0 / sqrt(d)`` (so an Adam step moves an embedding entry by a fixed fraction of its initial
    size) on ``TaskSpec(m, L, neighbourhood, noise)``. ``noise`` and ``lr0`` default to the sweep's
    own (``SWEEPS``). Over L the variants are ``"trained W_V"`` and ``"W_V = I"`` (W_E and W_KQ
    trained in both); over d, ``"trained W_E"`` and ``"fixed W_E"`` (W_E at its Gaussian
    initialisation, N(0, 1/d) entries; W_KQ and W_V trained in both). Returns a ``SweepTable``
    with the Bayes accuracy on the same evaluation set.
    """
    check_choice("x_name", x_name, tuple(SWEEPS))
    sweep_def = SWEEPS[x_name]
    fixed_name = "d" if x_name == "L" else "L"
    m_values = _check_grid("m_values", m_values, 1, 12)
    x_values = _check_grid(f"{x_name}_values", x_values, 1, sweep_def["hi"])
    seeds = _check_grid("seeds", seeds, 0, 2**62)
    fixed = check_int(fixed_name, d if x_name == "L" else L, 1, SWEEPS[fixed_name]["hi"])
    noise = sweep_def["noise"] if noise is None else noise
    lr0 = sweep_def["lr0"] if lr0 is None else lr0
    check_float("noise", noise, 0.0, 1.0, hi_open=True)
    check_float("lr0", lr0, 0.0, None, lo_open=True)
    nb = hamming_sphere(1) if neighbourhood is None else neighbourhood
    variants = sweep_def["variants"]
    labels = list(variants)
    table = SweepTable(
        x_name, x_values, m_values, labels, mean={lab: {} for lab in labels}, sd={lab: {} for lab in labels}
    )
    for m in m_values:
        for lab in labels:
            table.mean[lab][m], table.sd[lab][m] = [], []
        table.bayes[m] = []
        for x in x_values:
            shape = {x_name: x, fixed_name: fixed}
            spec = TaskSpec(m, shape["L"], neighbourhood=nb, noise=noise)
            base = TrainConfig(
                spec,
                d=shape["d"],
                steps=steps,
                batch_size=batch_size,
                lr=lr0 / shape["d"] ** 0.5,
                eval_every=0,
                n_eval=n_eval,
                device=device,
            )
            res = sweep(base, seeds=seeds, variants=variants, progress=progress)
            acc = torch.tensor(res.history["accuracy"][-1], dtype=torch.float64)
            acc = acc.view(len(labels), len(seeds))
            for i, lab in enumerate(labels):
                table.mean[lab][m].append(float(acc[i].mean()))
                table.sd[lab][m].append(float(acc[i].std(unbiased=False)))
            ctx, y = sample(base.task, base.n_eval, seed=base.eval_seed)
            table.bayes[m].append(float(bayes_correct(base.task, ctx, y).mean()))
    table.settings = {
        fixed_name: fixed,
        "noise": noise,
        "neighbourhood": repr(nb),
        "steps": steps,
        "seeds": seeds,
        "batch_size": batch_size,
        "lr": f"{lr0}/sqrt(d)",
        "n_eval": n_eval,
    }
    return table


def length_sweep(
    m_values: Sequence[int] = (5, 6, 7, 8), L_values: Sequence[int] = (4, 8, 16, 32, 64), **options
) -> SweepTable:
    """Accuracy against the context length L, trained W_V vs W_V fixed to the identity:
    ``shape_sweep("L", L_values, m_values, **options)`` (defaults d = 32, noise 0.5, lr0 0.06)."""
    return shape_sweep("L", L_values, m_values, **options)


def dim_sweep(
    m_values: Sequence[int] = (5, 6, 7, 8), d_values: Sequence[int] = (4, 8, 16, 32, 64, 128, 256), **options
) -> SweepTable:
    """Accuracy against the embedding dimension d, trained W_E vs W_E fixed at its Gaussian
    initialisation: ``shape_sweep("d", d_values, m_values, **options)`` (defaults L = 32,
    noise 0, lr0 0.2)."""
    return shape_sweep("d", d_values, m_values, **options)


def plot_forward_pass(trace: dict, index: int = 0, target: int | None = None, title: str = "") -> Figure:
    """One forward pass, left to right: the attention weights over the context positions (each bar
    labelled with its token id), then the logits over the vocabulary with the context's tokens and
    the target marked.

    Args:
        trace: ``lca.forward_trace(model, contexts)``.
        index: which context of the batch to draw.
        target: the true target token (marked in the logits panel), or None.
        title: figure title (default: a description of the two panels).
    """
    n = trace["attention"].shape[0]
    index = check_int("index", index, 0, n - 1)
    att = trace["attention"][index].cpu()
    logits = trace["logits"][index].cpu()
    tokens = trace.get("contexts")
    V = logits.shape[0]
    fig, (ax1, ax2) = new_figure(2, 1, width=5.2, height=3.4)
    L = att.shape[0]
    ax1.bar(range(L), att.tolist(), color=COLORS["blue"])
    ax1.set_xlabel("context position l (token id below)")
    ax1.set_ylabel("attention weight a_l")
    ax1.set_title("attention of the last token (the query)")
    if tokens is not None:
        ax1.set_xticks(range(L))
        ax1.set_xticklabels([str(int(t)) for t in tokens[index]], fontsize=8)
    ax2.bar(range(V), logits.tolist(), color=COLORS["sky"], label="logit f_k")
    if tokens is not None:
        present = sorted({int(t) for t in tokens[index]})
        ax2.bar(present, logits[present].tolist(), color=COLORS["orange"], label="token in the context")
    if target is not None:
        target = check_int("target", target, 0, V - 1)
        ax2.bar([target], [float(logits[target])], color=COLORS["vermillion"], label="target y")
    ax2.axhline(0, color="black", lw=0.6)
    ax2.set_xlabel("vocabulary token k")
    ax2.set_ylabel("logit f_k (nats)")
    ax2.set_title("logits over the vocabulary")
    ax2.legend(fontsize=8)
    fig.suptitle(title or "One forward pass of the one-layer transformer")
    return fig


def plot_training_curves(
    history: dict, labels: list | None = None, bayes: float | None = None, title: str = ""
) -> Figure:
    """Accuracy and training loss against the step, one line per variant (mean over the members
    that share a label), with the Bayes ceiling as a dashed line.

    Args:
        history: ``TrainResult.history`` of ``lca.train`` (scalars) or of an ensemble / sweep
            (per-member lists).
        labels: per-member labels (e.g. ``[lab for lab, _ in result.labels]``); None for one
            model or when every member is one variant.
        bayes: the Bayes accuracy of the task, or None.
    """
    steps = history["step"]
    acc = [a if isinstance(a, list) else [a] for a in history["accuracy"]]
    loss = [x if isinstance(x, list) else [x] for x in history["loss"]]
    E = len(acc[0])
    labels = ["model"] * E if labels is None else list(labels)
    if len(labels) != E:
        raise ValueError(f"labels must have one entry per member ({E}), got {len(labels)}")
    fig, (ax1, ax2) = new_figure(2, 1, width=4.6, height=3.4)
    for k, lab in enumerate(dict.fromkeys(labels)):
        idx = [i for i, s in enumerate(labels) if s == lab]
        col = CYCLE[k % len(CYCLE)]
        ax1.plot(
            steps, [sum(r[i] for i in idx) / len(idx) for r in acc], color=col, label=lab, marker="o", ms=3
        )
        ax2.plot(
            steps, [sum(r[i] for i in idx) / len(idx) for r in loss], color=col, label=lab, marker="o", ms=3
        )
    if bayes is not None:
        ax1.axhline(bayes, color="black", ls="--", lw=1, label="Bayes ceiling")
    ax1.set_xlabel("training step")
    ax1.set_ylabel("accuracy on fresh contexts")
    ax1.set_ylim(-0.02, 1.02)
    ax1.legend(fontsize=8)
    ax2.set_xlabel("training step")
    ax2.set_ylabel("training cross-entropy (nats)")
    ax2.legend(fontsize=8)
    fig.suptitle(title or "Learning curves: accuracy and loss during training")
    return fig


def _sweep_panels(table, title, xlabel, vline=None):
    ms = table.m_values
    fig, axes = new_figure(len(ms), 1, width=3.3, height=3.2, squeeze=False)
    for ax, m in zip(axes[0], ms):
        for k, lab in enumerate(table.labels):
            mean, sd = table.mean[lab][m], table.sd[lab][m]
            col = CYCLE[k % len(CYCLE)]
            ax.plot(table.x, mean, marker="o", ms=4, color=col, label=lab)
            ax.fill_between(
                table.x,
                [a - s for a, s in zip(mean, sd)],
                [a + s for a, s in zip(mean, sd)],
                color=col,
                alpha=0.15,
                lw=0,
            )
        ax.plot(table.x, table.bayes[m], ls="--", color="black", lw=1, label="Bayes ceiling")
        if vline is not None:
            ax.axvline(vline(m), color=COLORS["purple"], ls=":", lw=1.2, label="d = V")
        ax.set_xscale("log", base=2)
        ax.set_xticks(table.x)
        ax.set_xticklabels([str(v) for v in table.x])
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(xlabel)
        ax.set_title(f"m = {m} (V = {2**m})")
    axes[0][0].set_ylabel("accuracy on fresh contexts")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    return fig


def plot_accuracy_vs_length(table: SweepTable, title: str = "") -> Figure:
    """Accuracy against the context length L for each m (a ``lca.length_sweep`` table):
    one line per variant (band: +- one standard deviation over seeds) and the Bayes ceiling."""
    if getattr(table, "x_name", None) != "L":
        raise ValueError("table must come from lca.length_sweep (x_name 'L')")
    return _sweep_panels(
        table, title or "Accuracy vs context length: trained W_V vs W_V = I", "context length L (tokens)"
    )


def plot_accuracy_vs_dim(table: SweepTable, title: str = "") -> Figure:
    """Accuracy against the embedding dimension d for each m (a ``lca.dim_sweep`` table),
    with the line d = V that separates the under- and over-parameterised regimes."""
    if getattr(table, "x_name", None) != "d":
        raise ValueError("table must come from lca.dim_sweep (x_name 'd')")
    return _sweep_panels(
        table,
        title or "Accuracy vs embedding dimension: trained vs fixed W_E",
        "embedding dimension d",
        vline=lambda m: 2**m,
    )


# Exercises of chapter 3 (the one-layer transformer). Each checker calls the learner's function on
# random weights of several shapes (including L = 1, a non-symmetric W_KQ and repeated tokens)
# and compares it with a reference written from the chapter's equations.


def _weight_cases(seed: int, with_value: bool):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for V, d, n, L in ((8, 4, 5, 6), (16, 8, 7, 1), (4, 6, 3, 9), (32, 5, 4, 3)):
        W_E = torch.randn(V, d, generator=g, dtype=torch.float64)
        W_KQ = torch.randn(d, d, generator=g, dtype=torch.float64)
        ctx = torch.randint(0, V, (n, L), generator=g)
        if L > 2:
            ctx[0, 1] = ctx[0, 0]  # a repeated token
        if with_value:
            W_V = torch.randn(d, d, generator=g, dtype=torch.float64)
            cases.append((W_E, W_KQ, W_V, ctx))
        else:
            cases.append((W_E, W_KQ, ctx))
    return cases


def _ref_attention(W_E, W_KQ, contexts):
    X = W_E[contexts]  # [n, L, d]
    q = X[:, -1, :]  # [n, d]
    scores = torch.einsum("nd,de,nle->nl", q, W_KQ, X)
    return torch.softmax(scores, dim=-1)


def _ref_forward(W_E, W_KQ, W_V, contexts):
    a = _ref_attention(W_E, W_KQ, contexts)
    h = torch.einsum("nl,nld->nd", a, W_E[contexts])
    return (h @ W_V.T) @ W_E.T


def check_attention(fn: Callable) -> CheckResult:
    """Check ``fn(W_E [V, d], W_KQ [d, d], contexts LongTensor[n, L]) -> Tensor[n, L]``: the
    attention weights a_l = softmax_l(W_E(x_L)^T W_KQ W_E(x_l)) of the last token."""
    return run_cases(
        "check_attention",
        fn,
        _ref_attention,
        _weight_cases(31, False),
        describe=lambda c: f"W_E {tuple(c[0].shape)}, W_KQ {tuple(c[1].shape)}, contexts {tuple(c[2].shape)}",
    )


def check_forward(fn: Callable) -> CheckResult:
    """Check ``fn(W_E [V, d], W_KQ [d, d], W_V [d, d], contexts LongTensor[n, L]) -> Tensor[n, V]``:
    the logits f(x) = W_E W_V h(x), h(x) = sum_l a_l W_E(x_l) (tied unembedding)."""
    return run_cases(
        "check_forward",
        fn,
        _ref_forward,
        _weight_cases(32, True),
        describe=lambda c: (
            f"W_E {tuple(c[0].shape)}, W_KQ/W_V {tuple(c[1].shape)}, contexts {tuple(c[3].shape)}"
        ),
    )


def _ref_count_logits(M, contexts):
    c = count_vector(contexts, M.shape[0], dtype=M.dtype)
    return c @ M.T / contexts.shape[1]


def check_count_logits(fn: Callable) -> CheckResult:
    """Check ``fn(M [V, V], contexts LongTensor[n, L]) -> Tensor[n, V]``: the logits of uniform
    attention written with the count vector, f_k = (1/L) sum_x M[k, x] c_x(contexts)."""
    g = torch.Generator().manual_seed(33)
    cases = []
    for V, n, L in ((8, 6, 5), (4, 3, 1), (16, 5, 12), (2, 4, 7)):
        M = torch.randn(V, V, generator=g, dtype=torch.float64)
        ctx = torch.randint(0, V, (n, L), generator=g)
        if L > 2:
            ctx[:, 1] = ctx[:, 0]
        cases.append((M, ctx))
    return run_cases(
        "check_count_logits",
        fn,
        _ref_count_logits,
        cases,
        describe=lambda c: f"M {tuple(c[0].shape)}, contexts {tuple(c[1].shape)}",
    )


def check_bayes_value_matrix(fn: Callable) -> CheckResult:
    """Check ``fn(Lam [V, V], W_E [V, d]) -> W_V [d, d]`` with ``W_E W_V W_E^T = Lam`` (d >= V,
    W_E of rank V). Any such W_V passes: the checker compares ``W_E W_V W_E^T`` with Lam."""
    g = torch.Generator().manual_seed(34)
    cases = []
    for V, d in ((4, 4), (8, 12), (16, 16), (8, 32)):
        Lam = torch.randn(V, V, generator=g, dtype=torch.float64) * 3.0
        W_E = torch.randn(V, d, generator=g, dtype=torch.float64) / d**0.5
        if d == V:  # keep the square case well conditioned
            W_E = W_E + torch.eye(V, dtype=torch.float64)
        cases.append((Lam, W_E))

    def induced(f):
        def run(Lam, W_E):
            W_V = torch.as_tensor(f(Lam, W_E), dtype=torch.float64)
            if W_V.shape != (W_E.shape[1], W_E.shape[1]):
                return W_V  # wrong shape: reported as such
            return W_E @ W_V @ W_E.T

        return run

    def ref(Lam, W_E):
        Ep = torch.linalg.pinv(W_E)
        return Ep @ Lam @ Ep.T

    return run_cases(
        "check_bayes_value_matrix",
        induced(fn),
        induced(ref),
        cases,
        compare=lambda e, g_: close(e, g_, rtol=1e-4, atol=1e-5),
        describe=lambda c: f"Lam {tuple(c[0].shape)}, W_E {tuple(c[1].shape)} (compared: W_E W_V W_E^T)",
    )
