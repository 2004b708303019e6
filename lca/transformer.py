"""Chapter 3, the one-layer transformer: the forward pass traced step by step, the count-vector
form of uniform attention, the course's Bayes-reaching value matrix, accuracy sweeps over the
context length and the embedding dimension, the chapter's figures and its exercise checkers."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Callable, Sequence

import torch
from matplotlib.figure import Figure

from . import report
from ._validate import (
    ArgumentTypeError,
    check_choice,
    check_finite,
    check_float,
    check_int,
    check_size,
    check_tokens,
)
from .associative_memory import random_keys
from .checks import CheckResult, run_cases
from .latent import Neighbourhood, hamming_sphere
from .model import OneLayerTransformer, check_model
from .report import load_stored
from .style import COLORS, CYCLE, legend_below, new_figure
from .task import TaskSpec, bayes_correct, check_spec, count_vector, sample
from .train import TrainConfig, build_model, sweep


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
    (log 0 = -inf) replaced by ``-clip`` (chapter 3's Psi). The default clip is ``L Omega + 1`` with
    Omega the largest finite |log P|; any clip > L Omega makes argmax_y (Lambda c)_y the set of
    Bayes-optimal predictions for every count vector c of a length-L context (chapter 3's theorem)."""
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


def _check_embeddings(W_E: torch.Tensor, V: int) -> torch.Tensor:
    if not isinstance(W_E, torch.Tensor) or W_E.ndim != 2 or W_E.shape[0] != V:
        raise ValueError(
            f"W_E must have shape [V, d] with V={V} rows, got {tuple(getattr(W_E, 'shape', ()))}"
        )
    if not W_E.is_floating_point():
        raise ValueError(f"W_E must have a floating dtype, got {W_E.dtype}")
    return check_finite("W_E", W_E)


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
    _check_embeddings(W_E, spec.V)
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


def logit_percentiles(model: OneLayerTransformer, contexts: torch.Tensor, targets: torch.Tensor) -> dict:
    """Where a model ranks the context's own tokens among all V logits, over a population.

    The percentile of token k in context i is ``(#{j: f_j < f_k} + #{j != k: f_j = f_k} / 2) /
    (V - 1)``: 0 for the lowest logit, 1 for the highest. Returns floats: ``"present"``, the mean
    percentile over all (context, distinct token present in it) pairs; ``"absent"``, the same over
    tokens absent from the context other than the target; ``"target"``, the mean percentile of the
    target; ``"lowest_present"``, the share of contexts whose lowest logit belongs to a present
    token; ``"lowest_chance"``, that share if the lowest token were uniform over the V tokens (the
    mean number of distinct present tokens over V); ``"errors_in_context"``, the share of wrong
    predictions (argmax) that name a token of the context (``nan`` without errors).

    Args:
        model: a single ``OneLayerTransformer``; contexts: ``LongTensor[n, L]``; targets:
            ``LongTensor[n]`` (targets absent from their context, as in the LCA task).
    """
    check_model(model, single=True)
    contexts = check_tokens("contexts", contexts, model.V, ndim=2)
    targets = check_tokens("targets", targets, model.V, ndim=1)
    if targets.shape[0] != contexts.shape[0]:
        raise ValueError(
            f"targets and contexts must have one row each per example, got {targets.shape[0]} "
            f"targets and {contexts.shape[0]} contexts"
        )
    V, n = model.V, contexts.shape[0]
    if n < 1 or V < 2:
        raise ValueError(f"contexts must hold at least one context and the model V >= 2, got n={n}, V={V}")
    check_size("contexts", n * V * V, 2**28, "entries of the [n, V, V] comparison table")
    with torch.no_grad():
        f = model(contexts).detach().double().cpu()
    contexts, targets = contexts.cpu(), targets.cpu()
    below = (f[:, None, :] < f[:, :, None]).sum(-1).double()
    ties = (f[:, None, :] == f[:, :, None]).sum(-1).double() - 1.0
    pct = (below + ties / 2) / (V - 1)  # [n, V]
    present = count_vector(contexts, V) > 0
    if bool(present.gather(1, targets[:, None]).any()):
        raise ValueError("targets must not appear in their own contexts (the LCA task's rule)")
    absent = ~present
    absent.scatter_(1, targets[:, None], False)
    lowest, pred = f.argmin(1), f.argmax(1)
    wrong = pred != targets
    return {
        "errors_in_context": float(present.gather(1, pred[:, None])[wrong].double().mean()),
        "present": float(pct[present].mean()),
        "absent": float(pct[absent].mean()) if bool(absent.any()) else float("nan"),
        "target": float(pct.gather(1, targets[:, None]).mean()),
        "lowest_present": float(present.gather(1, lowest[:, None]).double().mean()),
        "lowest_chance": float(present.double().sum(1).mean() / V),
    }


def tied_accuracy(logits: torch.Tensor, targets: torch.Tensor, tol: float = 1e-9) -> float:
    """Accuracy with ties broken uniformly at random, as the Bayes ceiling is scored: logits
    within ``tol`` (relative, ``tol * max(|max|, 1)``) of a row's maximum count as tied, and a tie
    that contains the target scores 1 / (number tied). ``logits [n, V]``, ``targets LongTensor[n]``."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or not logits.is_floating_point():
        raise ValueError(
            f"logits must be a floating tensor of shape [n, V], got {type(logits).__name__} "
            f"{tuple(getattr(logits, 'shape', ()))}"
        )
    check_finite("logits", logits)
    targets = check_tokens("targets", targets, logits.shape[1], ndim=1)
    if targets.shape[0] != logits.shape[0] or logits.shape[0] == 0:
        raise ValueError(
            f"targets and logits must have the same positive number of rows, got {targets.shape[0]} "
            f"and {logits.shape[0]}"
        )
    tol = check_float("tol", tol, 0.0, 1.0)
    best = logits.max(1, keepdim=True).values
    ties = logits >= best - tol * best.abs().clamp(min=1.0)
    hit = ties.gather(1, targets.to(logits.device)[:, None]).squeeze(1).double()
    return float((hit / ties.sum(1).double()).mean())


LBFGS_OPTIONS = {"history_size": 50, "line_search_fn": "strong_wolfe", "tolerance_grad": 1e-10}


def fitted_value_matrix(
    spec: TaskSpec, W_E: torch.Tensor, n_train: int = 4096, seed: int = 0, max_iter: int = 100
) -> torch.Tensor:
    """The best value matrix for fixed embeddings, found by optimisation: ``W_V [d, d]`` (float64)
    minimising the cross-entropy of the uniform-attention model (``W_KQ = 0``, logits
    ``W_E W_V W_E^T c(x) / L``) on ``n_train`` contexts sampled with ``seed``, by L-BFGS from
    ``W_V = 0``, stopped after ``max_iter`` iterations. The loss is convex in ``W_V`` (the logits
    are linear in it), but its infimum may lie at infinity (the fit pushes the logits of targets
    that a context rules out towards -inf, as the theorem's clip does), so the result is a good
    ``W_V``, not an optimum: its accuracy is a lower bound on what the architecture reaches with
    these embeddings (lower also because cross-entropy is not accuracy, and a trained ``W_KQ``
    may add more).

    Args:
        spec: the task; W_E: embeddings ``[V, d]`` with V = spec.V; n_train: training contexts
            (1..2**20); seed: their sampling seed; max_iter: L-BFGS iterations (1..10_000).
    """
    check_spec(spec)
    _check_embeddings(W_E, spec.V)
    n_train = check_int("n_train", n_train, 1, 1 << 20)
    seed = check_int("seed", seed, 0, 2**62)
    max_iter = check_int("max_iter", max_iter, 1, 10_000)
    check_size("n_train", n_train * spec.V, 2**27, "entries of the [n_train, V] count table")
    E = W_E.detach().double().cpu()
    ctx, y = sample(spec, n_train, seed=seed)
    H = count_vector(ctx, spec.V) @ E / spec.L  # [n, d]: h of uniform attention
    W_V = torch.zeros(E.shape[1], E.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W_V], max_iter=max_iter, **LBFGS_OPTIONS)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(H @ W_V.T @ E.T, y)
        loss.backward()
        return loss

    opt.step(closure)
    return W_V.detach()


def fixed_embedding_comparison(
    spec: TaskSpec,
    d_values: Sequence[int],
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    n_eval: int = 2048,
    n_train: int = 4096,
    max_iter: int = 100,
) -> dict:
    """What a value matrix can do for fixed Gaussian embeddings with ``W_KQ = 0``, two ways.

    For every d and seed, ``W_E`` is the initialisation that ``lca.fit`` uses for
    ``TrainConfig(spec, d, seed=seed)`` (so the trained runs of ``run_budget("small_d")`` start
    from, and with ``train_E=False`` keep, the same embeddings), scored on that config's
    evaluation set (``n_eval`` contexts, ties split with ``tied_accuracy``): ``"construction"``,
    the theorem's ``W_V = W_E^+ Lambda (W_E^+)^T``; ``"fitted W_V"``, the cross-entropy fit
    ``fitted_value_matrix(spec, W_E, n_train, seed, max_iter)``. Returns ``{"d": [...], "seeds":
    [...], "bayes": float, label: [[accuracy per seed] per d]}``.
    """
    check_spec(spec)
    d_values = _check_grid("d_values", d_values, 1, 1024)
    seeds = _check_grid("seeds", seeds, 0, 2**62)
    out = {"d": d_values, "seeds": seeds, "construction": [], "fitted W_V": []}
    for d in d_values:
        base = TrainConfig(spec, d=d, n_eval=n_eval, device="cpu")
        ctx, y = sample(spec, base.n_eval, seed=base.eval_seed)
        counts = count_vector(ctx, spec.V) / spec.L
        rows = {"construction": [], "fitted W_V": []}
        for s in seeds:
            E = build_model(base.with_(seed=s)).W_E.detach().double()
            for lab, W_V in (
                ("construction", bayes_value_matrix(spec, E)),
                ("fitted W_V", fitted_value_matrix(spec, E, n_train=n_train, seed=s, max_iter=max_iter)),
            ):
                rows[lab].append(tied_accuracy(counts @ (E @ W_V @ E.T).T, y))
        for lab, accs in rows.items():
            out[lab].append(accs)
    out["bayes"] = float(bayes_correct(spec, ctx, y).mean())
    return out


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

    def to_dict(self) -> dict:
        """The table as plain JSON-able data (``SweepTable.from_dict`` reads it back)."""

        def by_m(d):
            return {str(m): list(v) for m, v in d.items()}

        return {
            "x_name": self.x_name,
            "x": self.x,
            "m_values": self.m_values,
            "labels": self.labels,
            "mean": {lab: by_m(self.mean[lab]) for lab in self.labels},
            "sd": {lab: by_m(self.sd[lab]) for lab in self.labels},
            "bayes": by_m(self.bayes),
            "settings": dict(self.settings),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "SweepTable":
        """The inverse of ``to_dict``; checks that every label and m has one value per x."""
        if not isinstance(data, dict):
            raise ArgumentTypeError(f"data must be a dict from SweepTable.to_dict, got {type(data).__name__}")
        missing = {"x_name", "x", "m_values", "labels", "mean", "sd", "bayes"} - set(data)
        if missing:
            raise ValueError(f"data misses the keys {sorted(missing)}")
        x, ms, labels = list(data["x"]), [int(m) for m in data["m_values"]], list(data["labels"])

        def by_m(d, what):
            out = {int(m): [float(v) for v in vals] for m, vals in d.items()}
            if set(out) != set(ms) or any(len(v) != len(x) for v in out.values()):
                raise ValueError(f"data[{what!r}] must hold {len(x)} values for each m in {ms}")
            return out

        return cls(
            data["x_name"],
            x,
            ms,
            labels,
            mean={lab: by_m(data["mean"][lab], "mean") for lab in labels},
            sd={lab: by_m(data["sd"][lab], "sd") for lab in labels},
            bayes=by_m(data["bayes"], "bayes"),
            settings=dict(data.get("settings", {})),
        )

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
    if values is None or isinstance(values, (int, float, str, bytes)) or not hasattr(values, "__iter__"):
        raise ArgumentTypeError(f"{name} must be a non-empty list of integers, got {values!r}")
    values = list(values)
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
MAX_RECORDS = 64  # evaluations per run that budget_sweep may spend to read off its budgets


def budget_sweep(
    x_name: str,
    x_values: Sequence[int],
    m_values: Sequence[int] = (5, 6, 7, 8),
    *,
    budgets: Sequence[int] = (300, 1200),
    L: int = 32,
    d: int = 32,
    noise: float | None = None,
    neighbourhood: Neighbourhood | None = None,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    batch_size: int = 128,
    lr0: float | None = None,
    n_eval: int = 2048,
    device: str | None = None,
    progress: bool = False,
) -> dict[int, SweepTable]:
    """``shape_sweep`` at several training budgets at once: ``{steps: SweepTable}``.

    The learning rate is constant (no schedule) and evaluation does not touch the training state,
    so the model after ``b`` steps of a ``max(budgets)``-step run is the model of a ``b``-step run:
    one run per (m, x) is evaluated every ``gcd(budgets)`` steps and read off at each budget. The
    budgets must share a divisor large enough that a run needs at most ``MAX_RECORDS``
    evaluations. Other arguments as in ``shape_sweep``.
    """
    check_choice("x_name", x_name, tuple(SWEEPS))
    sweep_def = SWEEPS[x_name]
    fixed_name = "d" if x_name == "L" else "L"
    m_values = _check_grid("m_values", m_values, 1, 12)
    x_values = _check_grid(f"{x_name}_values", x_values, 1, sweep_def["hi"])
    seeds = _check_grid("seeds", seeds, 0, 2**62)
    budgets = sorted(set(_check_grid("budgets", budgets, 1, 1_000_000)))
    every = math.gcd(*budgets)
    if budgets[-1] // every > MAX_RECORDS:
        raise ValueError(
            f"budgets must share a common divisor of at least max(budgets)/{MAX_RECORDS} (one "
            f"evaluation every gcd steps), got {budgets} with gcd {every}"
        )
    fixed = check_int(fixed_name, d if x_name == "L" else L, 1, SWEEPS[fixed_name]["hi"])
    noise = sweep_def["noise"] if noise is None else noise
    lr0 = sweep_def["lr0"] if lr0 is None else lr0
    noise = check_float("noise", noise, 0.0, 1.0, hi_open=True)
    lr0 = check_float("lr0", lr0, 0.0, None, lo_open=True)
    nb = hamming_sphere(1) if neighbourhood is None else neighbourhood
    variants = sweep_def["variants"]
    labels = list(variants)
    tables = {
        b: SweepTable(
            x_name,
            x_values,
            m_values,
            labels,
            mean={lab: {} for lab in labels},
            sd={lab: {} for lab in labels},
        )
        for b in budgets
    }
    for m in m_values:
        for table in tables.values():
            for lab in labels:
                table.mean[lab][m], table.sd[lab][m] = [], []
            table.bayes[m] = []
        for x in x_values:
            shape = {x_name: x, fixed_name: fixed}
            spec = TaskSpec(m, shape["L"], neighbourhood=nb, noise=noise)
            base = TrainConfig(
                spec,
                d=shape["d"],
                steps=budgets[-1],
                batch_size=batch_size,
                lr=lr0 / shape["d"] ** 0.5,
                eval_every=every,
                n_eval=n_eval,
                device=device,
            )
            res = sweep(base, seeds=seeds, variants=variants, progress=progress)
            ctx, y = sample(base.task, base.n_eval, seed=base.eval_seed)
            bayes = float(bayes_correct(base.task, ctx, y).mean())
            at = dict(zip(res.history["step"], res.history["accuracy"]))
            for b, table in tables.items():
                acc = torch.tensor(at[b], dtype=torch.float64).view(len(labels), len(seeds))
                for i, lab in enumerate(labels):
                    table.mean[lab][m].append(float(acc[i].mean()))
                    table.sd[lab][m].append(float(acc[i].std(unbiased=False)))
                table.bayes[m].append(bayes)
    for b, table in tables.items():
        table.settings = {
            fixed_name: fixed,
            "noise": noise,
            "neighbourhood": repr(nb),
            "steps": b,
            "seeds": seeds,
            "batch_size": batch_size,
            "lr": f"{lr0}/sqrt(d)",
            "n_eval": n_eval,
        }
    return tables


def shape_sweep(
    x_name: str,
    x_values: Sequence[int],
    m_values: Sequence[int] = (5, 6, 7, 8),
    *,
    steps: int = 300,
    **options,
) -> SweepTable:
    """Accuracy against one shape parameter, ``x_name`` = ``"L"`` (context length; ``d`` fixed)
    or ``"d"`` (embedding dimension; ``L`` fixed), for two variants (``SWEEPS[x_name]``).

    For every (m, x) one ensemble (variants x seeds) is trained for ``steps`` Adam steps at
    learning rate ``lr0 / sqrt(d)`` (so an Adam step moves an embedding entry by a fixed fraction
    of its initial size) on ``TaskSpec(m, L, neighbourhood, noise)``. ``noise`` and ``lr0`` default
    to the sweep's own (``SWEEPS``). Over L the variants are ``"trained W_V"`` and ``"W_V = I"``
    (W_E and W_KQ trained in both); over d, ``"trained W_E"`` and ``"fixed W_E"`` (W_E at its
    Gaussian initialisation, N(0, 1/d) entries; W_KQ and W_V trained in both). Returns a
    ``SweepTable`` with the Bayes accuracy on the same evaluation set. Keyword options: ``L``,
    ``d``, ``noise``, ``neighbourhood``, ``seeds`` (default 0..4), ``batch_size`` (128), ``lr0``,
    ``n_eval`` (2048), ``device``, ``progress`` (see ``budget_sweep``).
    """
    steps = check_int("steps", steps, 1, 1_000_000)
    return budget_sweep(x_name, x_values, m_values, budgets=(steps,), **options)[steps]


def length_sweep(
    m_values: Sequence[int], L_values: Sequence[int] = (4, 8, 16, 32, 64), **options
) -> SweepTable:
    """Accuracy against the context length L, trained W_V vs W_V fixed to the identity:
    ``shape_sweep("L", L_values, m_values, **options)`` (defaults d = 32, noise 0.5, lr0 0.06).
    ``m_values`` has no default: the paper's grid (5, 6, 7, 8) trains for many minutes."""
    return shape_sweep("L", L_values, m_values, **options)


def dim_sweep(
    m_values: Sequence[int], d_values: Sequence[int] = (4, 8, 16, 32, 64, 128, 256), **options
) -> SweepTable:
    """Accuracy against the embedding dimension d, trained W_E vs W_E fixed at its Gaussian
    initialisation: ``shape_sweep("d", d_values, m_values, **options)`` (defaults L = 32,
    noise 0, lr0 0.2; ``m_values`` as in ``length_sweep``)."""
    return shape_sweep("d", d_values, m_values, **options)


def _math(label: str) -> str:
    """A variant label with its matrices as mathtext: "trained W_V" -> "trained $W_{V}$",
    "W_V = I" -> "$W_{V} = I$"."""
    return re.sub(r"W_(V|E|KQ)( = I)?", lambda g: f"$W_{{{g[1]}}}{g[2] or ''}$", label)


def plot_forward_pass(trace: dict, index: int = 0, target: int | None = None, title: str = "") -> Figure:
    """One forward pass, top to bottom: the attention weights over the context positions (each bar
    labelled with its token id), then the logits over the vocabulary with the context's tokens and
    the target marked; the legend under the panels.

    Args:
        trace: ``lca.forward_trace(model, contexts)``.
        index: which context of the batch to draw.
        target: the true target token (marked in the logits panel), or None.
        title: a figure title (default none: a caption says what is drawn).
    """
    n = trace["attention"].shape[0]
    index = check_int("index", index, 0, n - 1)
    att = trace["attention"][index].cpu()
    logits = trace["logits"][index].cpu()
    tokens = trace.get("contexts")
    V, L = logits.shape[0], att.shape[0]
    fig, (ax1, ax2) = new_figure(1, 2, width=7.2, height=2.4)
    ax1.bar(range(L), att.tolist(), color=COLORS["blue"])
    ax1.set_xlabel(r"context position $l$ (its token id as the tick label)")
    ax1.set_ylabel(r"attention $a_l$")
    if tokens is not None:
        ax1.set_xticks(range(L), [str(int(t)) for t in tokens[index]])
    ax2.bar(range(V), logits.tolist(), color=COLORS["sky"], label=r"logit $f_k$")
    if tokens is not None:
        present = sorted({int(t) for t in tokens[index]})
        ax2.bar(present, logits[present].tolist(), color=COLORS["orange"], label="token in the context")
    if target is not None:
        target = check_int("target", target, 0, V - 1)
        ax2.bar([target], [float(logits[target])], color=COLORS["vermillion"], label="target $y$")
    ax2.axhline(0, color="black", lw=0.6)
    ax2.set_xlabel(r"vocabulary token $k$")
    ax2.set_ylabel(r"logit $f_k$ (nats)")
    legend_below(fig, ax2)
    if title:
        fig.suptitle(title)
    return fig


def plot_training_curves(
    history: dict, labels: list | None = None, bayes: float | None = None, title: str = ""
) -> Figure:
    """Accuracy and training loss against the step, one line per variant (mean over the members
    that share a label), with the Bayes ceiling as a dashed line and one legend under the panels.

    Args:
        history: ``TrainResult.history`` of ``lca.train`` (scalars) or of an ensemble / sweep
            (per-member lists).
        labels: per-member labels (e.g. ``[lab for lab, _ in result.labels]``); None for one
            model or when every member is one variant.
        bayes: the Bayes accuracy of the task, or None.
        title: a figure title (default none: a caption says what is drawn).
    """
    steps = history["step"]
    acc = [a if isinstance(a, list) else [a] for a in history["accuracy"]]
    loss = [x if isinstance(x, list) else [x] for x in history["loss"]]
    E = len(acc[0])
    labels = ["model"] * E if labels is None else list(labels)
    if len(labels) != E:
        raise ValueError(f"labels must have one entry per member ({E}), got {len(labels)}")
    fig, (ax1, ax2) = new_figure(2, 1, width=3.75, height=2.8)
    for k, lab in enumerate(dict.fromkeys(labels)):
        idx = [i for i, s in enumerate(labels) if s == lab]
        style = {"color": CYCLE[k % len(CYCLE)], "label": _math(lab), "marker": "o", "ms": 3}
        ax1.plot(steps, [sum(r[i] for i in idx) / len(idx) for r in acc], **style)
        ax2.plot(steps, [sum(r[i] for i in idx) / len(idx) for r in loss], **style)
    if bayes is not None:
        ax1.axhline(bayes, color="black", ls="--", lw=1, label="Bayes ceiling")
    for ax, what in ((ax1, "accuracy on fresh contexts"), (ax2, "training loss (nats)")):
        ax.set_xlabel("training step")
        ax.set_ylabel(what)
    ax1.set_ylim(-0.02, 1.02)
    legend_below(fig, ax1)
    if title:
        fig.suptitle(title)
    return fig


def _sweep_panels(table, title, xlabel, vline=None, longer=None):
    ms = table.m_values
    if longer is not None and (longer.x != table.x or longer.labels != table.labels or longer.m_values != ms):
        raise ValueError("longer must be a table of the same sweep (same x, m values and labels) as table")
    fig, axes = new_figure(len(ms), 1, width=3.6, height=2.6)  # 4 panels: a 2 x 2 grid
    axes = list(axes.flat) if hasattr(axes, "flat") else [axes]
    for ax, m in zip(axes, ms):
        for k, lab in enumerate(table.labels):
            mean, sd = table.mean[lab][m], table.sd[lab][m]
            col, name = CYCLE[k % len(CYCLE)], _math(lab)
            steps = table.settings.get("steps")
            ax.plot(
                table.x,
                mean,
                marker="o",
                ms=4,
                color=col,
                label=name + (f", {steps} steps" if longer else ""),
            )
            if longer is not None:
                more = f"{name}, {longer.settings.get('steps')} steps"
                ax.plot(table.x, longer.mean[lab][m], marker="^", ms=4, ls="--", color=col, label=more)
            band = ([a - s for a, s in zip(mean, sd)], [a + s for a, s in zip(mean, sd)])
            ax.fill_between(table.x, *band, color=col, alpha=0.15, lw=0)
        ax.plot(table.x, table.bayes[m], ls="--", color="black", lw=1, label="Bayes ceiling")
        if vline is not None:
            ax.axvline(vline(m), color=COLORS["purple"], ls=":", lw=1.2, label="$d = V$")
        ax.set_xscale("log", base=2)
        ax.set_xticks(table.x, [str(v) for v in table.x])
        ax.minorticks_off()
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(xlabel)
        ax.set_title(f"$m = {m}$ ($V = {2**m}$)")
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("accuracy")
    legend_below(fig, axes[0], ncols=3)
    if title:
        fig.suptitle(title)
    return fig


def plot_accuracy_vs_length(table: SweepTable, title: str = "", longer: SweepTable | None = None) -> Figure:
    """Accuracy against the context length L for each m (a ``lca.length_sweep`` table):
    one line per variant (band: +- one standard deviation over seeds) and the Bayes ceiling;
    ``longer``, the same sweep at a longer budget, adds dashed lines (means only). Panels in a
    grid of at most 3 columns, one legend under them, no title unless ``title`` is given."""
    if getattr(table, "x_name", None) != "L":
        raise ValueError("table must come from lca.length_sweep (x_name 'L')")
    return _sweep_panels(table, title, "context length $L$", longer=longer)


def plot_accuracy_vs_dim(table: SweepTable, title: str = "", longer: SweepTable | None = None) -> Figure:
    """Accuracy against the embedding dimension d for each m (a ``lca.dim_sweep`` table),
    with the line d = V that separates the under- and over-parameterised regimes; ``longer`` and
    the layout as in ``plot_accuracy_vs_length``."""
    if getattr(table, "x_name", None) != "d":
        raise ValueError("table must come from lca.dim_sweep (x_name 'd')")
    return _sweep_panels(table, title, "embedding dimension $d$", vline=lambda m: 2**m, longer=longer)


# Exercises of chapter 3 (the one-layer transformer). Each checker calls the learner's function on
# random weights of several shapes (including L = 1, a non-symmetric W_KQ and repeated tokens)
# and compares it with a reference written from the chapter's equations.


def _weight_cases(seed: int):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for V, d, n, L in ((8, 4, 5, 6), (16, 8, 7, 1), (4, 6, 3, 9), (32, 5, 4, 3)):
        W_E, W_KQ, W_V = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((V, d), (d, d), (d, d)))
        ctx = torch.randint(0, V, (n, L), generator=g)
        if L > 2:
            ctx[:2, 1] = ctx[:2, 0]  # repeated tokens
        cases.append((W_E, W_KQ, W_V, count_vector(ctx, V), ctx[:, -1].clone()))
    return cases


def _ref_bag_logits(W_E, W_KQ, W_V, counts, query):
    s = W_E[query] @ W_KQ @ W_E.T  # [n, V]: s_k = W_E(x_L)^T W_KQ W_E(k)
    a = torch.softmax(s + counts.log(), dim=1)  # token k's share: c_k e^{s_k} / sum_j c_j e^{s_j}
    return a @ W_E @ W_V.T @ W_E.T


def check_bag_logits(fn: Callable) -> CheckResult:
    """Check ``fn(W_E [V, d], W_KQ [d, d], W_V [d, d], counts [n, V], query LongTensor[n]) ->
    Tensor[n, V]``: the logits of a context from its count vector and its last token alone, the
    attention share of token k being c_k e^{s_k} / sum_j c_j e^{s_j}."""
    return run_cases(
        "check_bag_logits",
        fn,
        _ref_bag_logits,
        _weight_cases(32),
        describe=lambda c: f"W_E {tuple(c[0].shape)}, counts of contexts of length {int(c[3][0].sum())}",
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
        rtol=1e-4,
        atol=1e-5,
        describe=lambda c: f"Lam {tuple(c[0].shape)}, W_E {tuple(c[1].shape)} (compared: W_E W_V W_E^T)",
    )


def _ref_exact_accuracy(M, P, L):
    V = M.shape[0]
    seqs = torch.cartesian_prod(*[torch.arange(V)] * L).view(V**L, L)  # every context
    f = count_vector(seqs, V, dtype=M.dtype) @ M.T / L  # [V^L, V]
    best = f.max(1, keepdim=True).values
    tied = (f >= best - 1e-9 * best.abs().clamp(min=1.0)).double()
    credit = (tied / tied.sum(1, keepdim=True)).T  # [y, x]: share of the tie that y gets
    return float((credit * P[:, seqs].prod(-1)).sum() / V)  # P(y) = 1/V, P(x | y) = prod_l P[y, x_l]


def check_exact_accuracy(fn: Callable) -> CheckResult:
    """Check ``fn(M [V, V], P [V, V], L) -> float``: the exact accuracy, ties split, of the logits
    ``M c(x) / L`` when y is uniform and the L context tokens are independent with law P[y]."""
    g = torch.Generator().manual_seed(35)
    cases = []
    for V, L, kind in (
        (4, 2, "gauss"),
        (4, 1, "gauss"),
        (8, 2, "integer"),
        (2, 4, "zero"),
        (8, 3, "theorem"),
    ):
        P = torch.rand(V, V, generator=g, dtype=torch.float64) * (1 - torch.eye(V, dtype=torch.float64))
        M = torch.randn(V, V, generator=g, dtype=torch.float64)
        if kind == "integer":  # many exact ties
            M = torch.randint(-2, 3, (V, V), generator=g).double()
        elif kind == "zero":
            M = torch.zeros(V, V, dtype=torch.float64)
        elif kind == "theorem":  # the construction of thm-tf-bayes-reachable, ties at the top
            spec = TaskSpec(3, L)
            M, P = clipped_log_law(spec), spec.context_law()
        cases.append((M, P / P.sum(1, keepdim=True), L))
    return run_cases(
        "check_exact_accuracy",
        fn,
        _ref_exact_accuracy,
        cases,
        rtol=0,
        atol=1e-9,
        describe=lambda c: f"M and P of shape {tuple(c[0].shape)}, L = {c[2]}",
    )


# Chapter 3's budget check (issue 13): every trained figure of the chapter re-run with 5 seeds and
# read off at 1x, 2x, 4x and 8x its 300-step budget by ``bench/03_budgets.py``, which writes
# ``BUDGETS_FILE``; the chapter loads it with ``load_budgets``.
BUDGETS = (300, 600, 1200, 2400)
BUDGET_SEEDS = (0, 1, 2, 3, 4)
BUDGET_RUNS = {
    "length": {"x_name": "L", "x_values": (4, 8, 16, 32, 64), "m_values": (5, 6, 7, 8), "d": 32},
    "dim": {"x_name": "d", "x_values": (4, 8, 16, 32, 64, 128), "m_values": (5, 6), "L": 32},
    "easy": {"x_name": "L", "x_values": (64,), "m_values": (6,), "d": 32, "noise": 0.0},
    "small_d": {"x_name": "d", "x_values": (4, 8, 12, 16, 24), "m_values": (4,), "L": 8, "noise": 0.3},
}
BUDGETS_FILE = Path(__file__).with_name("data") / "transformer_budgets.json"


def run_budget(name: str, budgets: Sequence[int] = BUDGETS, seeds: Sequence[int] = BUDGET_SEEDS, **options):
    """``budget_sweep`` for one of chapter 3's stored runs (``BUDGET_RUNS[name]``); ``options``
    override its settings (e.g. a smaller grid to recompute a sample). ``{steps: SweepTable}``."""
    check_choice("name", name, tuple(BUDGET_RUNS))
    run = {**BUDGET_RUNS[name], **options}
    x_name, x_values, m_values = run.pop("x_name"), run.pop("x_values"), run.pop("m_values")
    return budget_sweep(x_name, x_values, m_values, budgets=budgets, seeds=seeds, **run)


def load_budgets(path: str | Path | None = None) -> dict[str, dict[int, SweepTable]]:
    """The stored results of ``bench/03_budgets.py``: ``{run name: {steps: SweepTable}}`` for the
    runs of ``BUDGET_RUNS``, and ``"percentiles"``: ``{steps: ...}`` from ``percentile_runs``."""
    path = BUDGETS_FILE if path is None else Path(path)
    data = load_stored(path, "bench/03_budgets.py")
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, dict):
        raise ValueError(f"{path} must hold a dict with a 'runs' entry (written by bench/03_budgets.py)")
    out = {
        name: {int(steps): SweepTable.from_dict(table) for steps, table in by_steps.items()}
        for name, by_steps in runs.items()
    }
    out["percentiles"] = {int(steps): v for steps, v in data.get("percentiles", {}).items()}
    return out


def percentile_runs(
    budgets: Sequence[int], seeds: Sequence[int] = BUDGET_SEEDS, m: int = 6, L: int = 16
) -> dict:
    """``logit_percentiles`` of the chapter's trained pair (noise 0.5, d = 32, batch 128, learning
    rate 0.06/sqrt(d)) for every seed, trained for each budget: ``{steps: {variant: {statistic:
    [value per seed]}}}``, on the config's evaluation set."""
    budgets, seeds = _check_grid("budgets", budgets, 1, 100_000), _check_grid("seeds", seeds, 0, 2**62)
    spec = TaskSpec(check_int("m", m, 2, 8), check_int("L", L, 1, 1024), noise=0.5)
    out = {}
    for b in budgets:
        cfg = TrainConfig(spec, d=32, steps=b, batch_size=128, lr=0.06 / 32**0.5, eval_every=0, device="cpu")
        res = sweep(cfg, seeds=seeds, variants=SWEEPS["L"]["variants"], progress=False)
        ctx, y = sample(spec, cfg.n_eval, seed=cfg.eval_seed)
        out[b] = {lab: {} for lab in SWEEPS["L"]["variants"]}
        for i, (lab, _) in enumerate(res.labels):
            for key, value in logit_percentiles(res.model.member(i), ctx, y).items():
                out[b][lab].setdefault(key, []).append(value)
    return out
