"""Measurements on trained models: attention by cluster, embedding Gram vs Hamming, spectra and
eigen-gaps, W_V replacement and angles, flip curves."""

from __future__ import annotations

# ==== section: transformer (chapter 3) ====
# (owned by the transformer (chapter 3) work; add functions between this marker and the next)

# Chapter 3 measures the one-layer transformer itself: the forward pass written out step by step,
# the count-vector form of uniform attention, the course's Bayes-reaching value matrix, the
# "identity value matrix votes for the context" quantity, and the two accuracy sweeps (context
# length L, embedding dimension d) trained as ensembles.

def forward_trace(model, contexts) -> dict:
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
    import torch

    from ._validate import check_tokens
    from .model import OneLayerTransformer
    if not isinstance(model, OneLayerTransformer) or model.ensemble is not None:
        raise ValueError("model must be a single lca.OneLayerTransformer (use model.member(i) "
                         f"for an ensemble), got {type(model).__name__}")
    contexts = check_tokens("contexts", contexts, model.V, ndim=2)
    if contexts.shape[1] < 1:
        raise ValueError("contexts must have at least one position (L >= 1)")
    with torch.no_grad():
        W_E, W_KQ, W_V = model.W_E.detach(), model.W_KQ.detach(), model.W_V.detach()
        U = model.unembedding.detach()
        X = W_E[contexts.to(W_E.device)]                         # [n, L, d]
        q = X[:, -1, :]                                          # [n, d]
        scores = torch.einsum("nd,de,nle->nl", q, W_KQ, X)       # s_l = q^T W_KQ x_l
        att = torch.softmax(scores, dim=-1)
        h = torch.einsum("nl,nld->nd", att, X)
        v = h @ W_V.T
        if model.residual:
            v = v + q
        if model.layernorm:
            v = torch.nn.functional.layer_norm(v, (v.shape[-1],))
        logits = v @ U.T
    return {"contexts": contexts.cpu(), "X": X, "q": q, "scores": scores, "attention": att,
            "h": h, "v": v, "logits": logits}


def context_counts(contexts, V: int):
    """Count vectors ``c(x)``: ``Tensor[n, V]`` (float64), ``c[i, k]`` = how many positions of
    context i hold token k."""
    import torch

    from ._validate import check_int, check_tokens
    V = check_int("V", V, 2, 2 ** 16)
    contexts = check_tokens("contexts", contexts, V, ndim=2)
    c = torch.zeros((contexts.shape[0], V), dtype=torch.float64)
    c.scatter_add_(1, contexts.cpu(), torch.ones(contexts.shape, dtype=torch.float64))
    return c


def clipped_log_law(spec, clip: float | None = None):
    """``Lambda [V, V]`` (float64): log P[y, x] of the context law with the impossible entries
    (log 0 = -inf) replaced by ``-clip``. The default clip is ``L B + 1`` with B the largest finite
    |log P|; any clip > L B makes argmax_y (Lambda c)_y the set of Bayes-optimal predictions for
    every count vector c of a length-L context (chapter 3's theorem)."""
    import torch

    from ._validate import check_float
    from .task import TaskSpec
    if not isinstance(spec, TaskSpec):
        raise ValueError(f"spec must be a TaskSpec, got {type(spec).__name__}")
    if spec.clean_last and spec.noise > 0:
        raise ValueError("spec must not have clean_last=True with noise > 0: the last position then "
                         "has its own law, which a position-blind model cannot weigh differently")
    P = spec.context_law()
    logP = torch.log(P)
    finite = torch.isfinite(logP)
    B = float(logP[finite].abs().max()) if bool(finite.any()) else 0.0
    if clip is None:
        clip = spec.L * B + 1.0
    clip = check_float("clip", clip, 0.0, None, lo_open=True)
    return torch.where(finite, logP, torch.full_like(logP, -clip))


def bayes_value_matrix(spec, W_E, clip: float | None = None):
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
    import torch
    if not isinstance(W_E, torch.Tensor) or W_E.ndim != 2:
        raise ValueError("W_E must be a tensor of shape [V, d], got "
                         f"{type(W_E).__name__} {tuple(getattr(W_E, 'shape', ()))}")
    Lam = clipped_log_law(spec, clip)
    if W_E.shape[0] != spec.V:
        raise ValueError(f"W_E must have V={spec.V} rows for this task, got shape "
                         f"{tuple(W_E.shape)}")
    Ep = torch.linalg.pinv(W_E.detach().double().cpu())                # [d, V]
    return Ep @ Lam @ Ep.T


def context_vote(model, contexts):
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

    def __init__(self, x_name: str, x: list, m_values: list, labels: list, mean=None, sd=None,
                 bayes=None, settings=None):
        self.x_name, self.x, self.m_values, self.labels = x_name, list(x), list(m_values), list(labels)
        self.mean = {} if mean is None else mean
        self.sd = {} if sd is None else sd
        self.bayes = {} if bayes is None else bayes
        self.settings = {} if settings is None else settings

    def __repr__(self) -> str:
        return (f"SweepTable({self.x_name}={self.x}, m={self.m_values}, labels={self.labels})")

    def rows(self) -> list:
        """``[(m, x, acc_label_1, ..., acc_label_k, bayes), ...]``."""
        out = []
        for m in self.m_values:
            for j, x in enumerate(self.x):
                out.append((m, x, *[self.mean[lab][m][j] for lab in self.labels],
                            self.bayes[m][j]))
        return out

    def se(self, label, m) -> list:
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
        from ._validate import check_int
        from .report import pm as _pm
        digits = check_int("digits", digits, 0, 8)
        heads = ["m", self.x_name, *self.labels, "Bayes"]

        def cell(lab, m, j):
            mean = self.mean[lab][m][j]
            if not pm:
                return f"{mean:.{digits}f}"
            se = self.se(lab, m)[j]
            return _pm(mean, se) if se > 0 else f"{mean:.{digits}f} ± 0"
        body = [[str(m), str(x), *[cell(lab, m, j) for lab in self.labels],
                 f"{self.bayes[m][j]:.{digits}f}"]
                for m in self.m_values for j, x in enumerate(self.x)]
        widths = [3, 5] + [max([len(h), digits + 3, *[len(r[k]) for r in body]])
                           for k, h in enumerate(heads[2:], start=2)]
        lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths))]
        lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in body]
        return "\n".join(lines)


def _sweep_table(x_name, x_values, m_values, variants, make, seeds, progress):
    import torch

    from .task import bayes_correct, sample
    from .train import sweep
    labels = list(variants)
    table = SweepTable(x_name, list(x_values), list(m_values), labels,
                       mean={lab: {} for lab in labels}, sd={lab: {} for lab in labels})
    for m in m_values:
        for lab in labels:
            table.mean[lab][m], table.sd[lab][m] = [], []
        table.bayes[m] = []
        for x in x_values:
            base = make(m, x)
            res = sweep(base, seeds=seeds, variants=variants, progress=progress)
            acc = torch.tensor(res.history["accuracy"][-1], dtype=torch.float64)
            acc = acc.view(len(labels), len(seeds))
            for i, lab in enumerate(labels):
                table.mean[lab][m].append(float(acc[i].mean()))
                table.sd[lab][m].append(float(acc[i].std(unbiased=False)))
            ctx, y = sample(base.task, base.n_eval, seed=base.eval_seed)
            table.bayes[m].append(float(bayes_correct(base.task, ctx, y).mean()))
    return table


def _check_grid(name, values, lo, hi):
    from ._validate import check_int
    values = list(values) if not isinstance(values, (int, str)) else None
    if not values:
        raise ValueError(f"{name} must be a non-empty list of integers")
    return [check_int(name, v, lo, hi) for v in values]


def length_sweep(m_values=(5, 6, 7, 8), L_values=(4, 8, 16, 32, 64), *, d: int = 32,
                 noise: float = 0.5, neighbourhood=None, steps: int = 300, seeds=(0, 1, 2, 3, 4),
                 batch_size: int = 128, lr0: float = 0.06, n_eval: int = 2048, device=None,
                 progress: bool = False) -> SweepTable:
    """Accuracy against context length L, trained W_V vs W_V fixed to the identity.

    For every (m, L) one ensemble (variants x seeds) is trained with Adam at learning rate
    ``lr0 / sqrt(d)`` on ``TaskSpec(m, L, neighbourhood, noise)``; W_E and W_KQ are trained in both
    variants. Returns a ``SweepTable`` with labels ``"trained W_V"`` and ``"W_V = I"`` and the
    Bayes accuracy on the same evaluation set.
    """
    from ._validate import check_float, check_int
    from .latent import hamming_sphere
    from .task import TaskSpec
    from .train import TrainConfig
    m_values = _check_grid("m_values", m_values, 1, 12)
    L_values = _check_grid("L_values", L_values, 1, 100_000)
    seeds = _check_grid("seeds", seeds, 0, 2 ** 62)
    d = check_int("d", d, 1, 1 << 16)
    check_float("noise", noise, 0.0, 1.0, hi_open=True)
    check_float("lr0", lr0, 0.0, None, lo_open=True)
    nb = hamming_sphere(1) if neighbourhood is None else neighbourhood
    variants = {"trained W_V": {}, "W_V = I": {"train_V": False, "WV_init": "identity"}}

    def make(m, L):
        spec = TaskSpec(m, L, neighbourhood=nb, noise=noise)
        return TrainConfig(spec, d=d, steps=steps, batch_size=batch_size, lr=lr0 / d ** 0.5,
                           eval_every=0, n_eval=n_eval, device=device)
    table = _sweep_table("L", L_values, m_values, variants, make, seeds, progress)
    table.settings = dict(d=d, noise=noise, neighbourhood=repr(nb), steps=steps, seeds=seeds,
                          batch_size=batch_size, lr=f"{lr0}/sqrt(d)", n_eval=n_eval)
    return table


def dim_sweep(m_values=(5, 6, 7, 8), d_values=(4, 8, 16, 32, 64, 128, 256), *, L: int = 32,
              noise: float = 0.0, neighbourhood=None, steps: int = 300, seeds=(0, 1, 2, 3, 4),
              batch_size: int = 128, lr0: float = 0.2, n_eval: int = 2048, device=None,
              progress: bool = False) -> SweepTable:
    """Accuracy against embedding dimension d, trained W_E vs W_E fixed at its Gaussian
    initialisation (N(0, 1/d) entries). W_KQ and W_V are trained in both variants; learning rate
    ``lr0 / sqrt(d)`` (so an Adam step moves an embedding entry by a fixed fraction of its initial
    size). Returns a ``SweepTable`` with labels ``"trained W_E"`` and ``"fixed W_E"``."""
    from ._validate import check_float, check_int
    from .latent import hamming_sphere
    from .task import TaskSpec
    from .train import TrainConfig
    m_values = _check_grid("m_values", m_values, 1, 12)
    d_values = _check_grid("d_values", d_values, 1, 1 << 16)
    seeds = _check_grid("seeds", seeds, 0, 2 ** 62)
    L = check_int("L", L, 1, 100_000)
    check_float("noise", noise, 0.0, 1.0, hi_open=True)
    check_float("lr0", lr0, 0.0, None, lo_open=True)
    nb = hamming_sphere(1) if neighbourhood is None else neighbourhood
    variants = {"trained W_E": {}, "fixed W_E": {"train_E": False}}

    def make(m, d):
        spec = TaskSpec(m, L, neighbourhood=nb, noise=noise)
        return TrainConfig(spec, d=d, steps=steps, batch_size=batch_size, lr=lr0 / d ** 0.5,
                           eval_every=0, n_eval=n_eval, device=device)
    table = _sweep_table("d", d_values, m_values, variants, make, seeds, progress)
    table.settings = dict(L=L, noise=noise, neighbourhood=repr(nb), steps=steps, seeds=seeds,
                          batch_size=batch_size, lr=f"{lr0}/sqrt(d)", n_eval=n_eval)
    return table


# ==== section: value-matrix (chapter 4) ====
# (owned by the value-matrix (chapter 4) work; add functions between this marker and the next)
#
# Probes of a trained W_V against the construction W_V* = W_E^T A W_E built from the same model's
# trained embeddings (lca.memory.value_matrix_construction): swap one for the other and compare
# accuracies (the paper's wv_replace_dim_* plots), and measure how aligned the two matrices are
# (Frobenius cosine, also between their best rank-r approximations; wv_angle_dim_*).

# (this section imports torch, math and the validators inside its functions, so that the shared
# header's import block stays untouched)


def _vm_check_int(name, value, lo=None, hi=None):
    from ._validate import check_int
    return check_int(name, value, lo, hi)


def _vm_model_and_spec(model, spec):
    from .train import check_model_and_spec
    check_model_and_spec(model, spec)
    if not model.tied:
        raise ValueError("model must have a tied unembedding (tied=True) for the construction")
    return model, spec


def constructed_value_matrix(model, spec, mask=None):
    """``W_V* = W_E^T A W_E`` from the model's own (trained) embeddings: ``[d, d]``, or
    ``[E, d, d]`` for an ensemble. ``mask`` defaults to the task's neighbourhood."""
    model, spec = _vm_model_and_spec(model, spec)
    from .memory import value_matrix_construction
    return value_matrix_construction(model.W_E.detach(),
                                     spec.neighbourhood if mask is None else mask)


def wv_replacement(model, spec, n: int = 4096, seed: int = 0, mask=None) -> dict:
    """Accuracy of the trained model and of the same model with W_V replaced by the construction
    built from its own embeddings (W_E and W_KQ kept).

    Returns ``{"trained": acc, "constructed": acc}`` (floats, or lists over ensemble members), both
    measured by ``lca.train.evaluate`` on the same ``n`` examples drawn with ``seed``.
    """
    model, spec = _vm_model_and_spec(model, spec)
    n = _vm_check_int("n", n, 1, 10_000_000)
    seed = _vm_check_int("seed", seed, 0, 2 ** 62)
    from .model import OneLayerTransformer
    from .train import evaluate
    W_star = constructed_value_matrix(model, spec, mask)
    swapped = OneLayerTransformer.from_weights(
        model.W_E.detach(), model.W_KQ.detach(), W_star.to(model.W_E.dtype),
        residual=model.residual, layernorm=model.layernorm, device=model.W_E.device)
    return {"trained": evaluate(model, spec, n, seed), "constructed": evaluate(swapped, spec, n, seed)}


def truncate_rank(W, rank: int):
    """Best rank-``rank`` approximation of ``W`` (``[..., d, d]``) in Frobenius norm (truncated
    SVD); a rank at least d returns W itself."""
    import torch
    if not isinstance(W, torch.Tensor) or W.ndim < 2 or not W.is_floating_point():
        raise ValueError("W must be a float Tensor [d, d] (or [..., d, d]), got "
                         f"{type(W).__name__} {tuple(getattr(W, 'shape', ()))}")
    rank = _vm_check_int("rank", rank, 1, 1 << 16)
    if rank >= min(W.shape[-2:]):
        return W
    U, S, Vh = torch.linalg.svd(W.double(), full_matrices=False)
    return ((U[..., :, :rank] * S[..., None, :rank]) @ Vh[..., :rank, :]).to(W.dtype)


def matrix_cosine(A, B, rank: int | None = None):
    """Frobenius cosine ``<A, B>_F / (||A||_F ||B||_F)`` between two matrices, after replacing each
    by its best rank-``rank`` approximation when ``rank`` is given. ``[..., d, d]`` inputs give a
    float (or a list over the leading dimension). The angle is ``acos`` of the cosine."""
    import torch
    for name, X in (("A", A), ("B", B)):
        if not isinstance(X, torch.Tensor) or X.ndim not in (2, 3) or not X.is_floating_point():
            raise ValueError(f"{name} must be a float Tensor [d, d] or [E, d, d], got "
                             f"{type(X).__name__} {tuple(getattr(X, 'shape', ()))}")
    if A.shape != B.shape:
        raise ValueError(f"A and B must have the same shape, got {tuple(A.shape)} and "
                         f"{tuple(B.shape)}")
    A, B = A.detach().double(), B.detach().double()
    if rank is not None:
        A, B = truncate_rank(A, rank), truncate_rank(B, rank)
    num = (A * B).sum((-1, -2))
    den = A.norm(dim=(-2, -1)) * B.norm(dim=(-2, -1))
    cos = torch.where(den > 0, num / den.clamp(min=1e-300), torch.zeros_like(num))
    return float(cos) if cos.ndim == 0 else cos.tolist()


def wv_alignment(model, spec, ranks=(None,), mask=None) -> dict:
    """Frobenius cosine between the model's W_V and the construction from its own embeddings, for
    each entry of ``ranks`` (None: the full matrices; r: their best rank-r approximations).

    Returns ``{rank: cosine}`` (floats, or lists over ensemble members). Angles in degrees are
    ``math.degrees(math.acos(cos))``.
    """
    model, spec = _vm_model_and_spec(model, spec)
    ranks = tuple(ranks)
    if not ranks:
        raise ValueError("ranks must hold at least one entry (None or a positive integer)")
    for r in ranks:
        if r is not None:
            _vm_check_int("ranks", r, 1, 1 << 16)
    W_star = constructed_value_matrix(model, spec, mask)
    return {r: matrix_cosine(model.W_V.detach(), W_star, r) for r in ranks}


def cosine_to_degrees(cos) -> float:
    """Angle in degrees from a cosine (clipped to [-1, 1])."""
    import math as _vm_math
    c = max(-1.0, min(1.0, float(cos)))
    return _vm_math.degrees(_vm_math.acos(c))


# ==== section: geometry (chapter 5) ====
# (owned by the geometry (chapter 5) work; add functions between this marker and the next)
#
# Embedding geometry of a trained model. Everything takes either a model (OneLayerTransformer,
# single or ensemble) or an embedding tensor W_E [V, d] / [E, V, d] (row = token), works in float64,
# and returns one entry per ensemble member along a leading dimension when given an ensemble.

import math as _geo_math  # noqa: E402
from dataclasses import dataclass as _geo_dataclass  # noqa: E402

import torch as _geo_torch  # noqa: E402


def _geo_embeddings(W_E) -> _geo_torch.Tensor:
    """W_E as float64 ``[E, V, d]`` (E = 1 for a single model or a 2-D tensor) and whether it was
    batched."""
    from .model import OneLayerTransformer
    if isinstance(W_E, OneLayerTransformer):
        W = W_E.W_E.detach()
    elif isinstance(W_E, _geo_torch.Tensor):
        W = W_E.detach()
    else:
        raise ValueError("W_E must be a OneLayerTransformer or a tensor [V, d] / [E, V, d], got "
                         f"{type(W_E).__name__}")
    if W.ndim not in (2, 3):
        raise ValueError(f"W_E must have shape [V, d] or [E, V, d], got {tuple(W.shape)}")
    V = W.shape[-2]
    if V < 2 or V & (V - 1) or V > 2 ** 12:
        raise ValueError(f"W_E must have V = 2^m rows with m in 1..12, got V={V}")
    if not bool(_geo_torch.isfinite(W).all()):
        raise ValueError("W_E must hold finite values")
    batched = W.ndim == 3
    return W.double().cpu().reshape((-1,) + tuple(W.shape[-2:])), batched


def _geo_unbatch(x, batched):
    return x if batched else x[0]


def gram_matrix(W_E) -> _geo_torch.Tensor:
    """``G = W_E W_E^T``: ``Tensor[V, V]`` (or ``[E, V, V]``) of inner products between token
    embeddings, float64."""
    W, batched = _geo_embeddings(W_E)
    return _geo_unbatch(W @ W.transpose(1, 2), batched)


@_geo_dataclass
class GramProfile:
    """Inner products of token embeddings grouped by Hamming distance k = 0..m.

    ``mean[k]`` and ``std[k]`` are the mean and standard deviation of ``<W_E(i), W_E(j)>`` over the
    ``count[k] = V C(m, k)`` ordered pairs (i, j) at distance k (k = 0: the squared norms).
    Shapes ``[m+1]``, or ``[E, m+1]`` for an ensemble (count is always ``[m+1]``).
    """

    mean: _geo_torch.Tensor
    std: _geo_torch.Tensor
    count: _geo_torch.Tensor

    @property
    def m(self) -> int:
        return self.count.numel() - 1


def gram_profile(W_E) -> GramProfile:
    """Mean and spread of ``<W_E(i), W_E(j)>`` per Hamming distance D_H(i, j) (see ``GramProfile``)."""
    W, batched = _geo_embeddings(W_E)
    V = W.shape[1]
    m = V.bit_length() - 1
    from .latent import LatentSpace
    D = LatentSpace(m).distances().flatten()
    G = (W @ W.transpose(1, 2)).reshape(W.shape[0], -1)
    count = _geo_torch.bincount(D, minlength=m + 1)
    onehot = _geo_torch.nn.functional.one_hot(D, m + 1).double()       # [V*V, m+1]
    mean = (G @ onehot) / count
    second = (G ** 2 @ onehot) / count
    var = (second - mean ** 2).clamp(min=0) * count / (count - 1).clamp(min=1)
    return GramProfile(_geo_unbatch(mean, batched), _geo_unbatch(var.sqrt(), batched), count)


@_geo_dataclass
class AffineFit:
    """Least-squares fit of the affine law ``<W_E(i), W_E(j)> ~ b0 - b1 D_H(i, j)`` over all V^2
    ordered pairs. ``r2`` is the coefficient of determination on the pairs (spread included);
    ``r2_profile`` the one on the mean profile, weighted by pair counts (shape only). With
    ``parity=True`` the model is ``b0 - b1 k + c (-1)^k`` and ``c`` holds the parity coefficient.
    Each field is a float, or a list of floats for an ensemble."""

    b0: object
    b1: object
    r2: object
    r2_profile: object
    c: object = None


def affine_fit(W_E, parity: bool = False) -> AffineFit:
    """Fit the affine law to the Gram matrix of ``W_E`` (model or tensor); see ``AffineFit``.

    The least-squares fit over all pairs only sees the mean profile (the design depends on the pair
    only through k), so it is computed from ``gram_profile`` exactly.
    """
    if not isinstance(parity, bool):
        raise ValueError(f"parity must be True or False, got {parity!r}")
    prof = gram_profile(W_E)
    batched = prof.mean.ndim == 2
    mean = prof.mean if batched else prof.mean[None]
    std = prof.std if batched else prof.std[None]
    m = prof.m
    n = prof.count.double()
    k = _geo_torch.arange(m + 1, dtype=_geo_torch.float64)
    cols = [_geo_torch.ones_like(k), -k] + ([(-1.0) ** k] if parity else [])
    X = _geo_torch.stack(cols, 1)                                          # [m+1, p]
    sw = n.sqrt()[:, None]
    out = {"b0": [], "b1": [], "r2": [], "r2_profile": [], "c": []}
    for e in range(mean.shape[0]):
        beta = _geo_torch.linalg.lstsq(X * sw, (mean[e] * n.sqrt())[:, None]).solution.flatten()
        fit = X @ beta
        grand = (n * mean[e]).sum() / n.sum()
        ss_between = (n * (mean[e] - grand) ** 2).sum()
        ss_within = ((n - 1) * std[e] ** 2).sum()
        ss_res_mean = (n * (mean[e] - fit) ** 2).sum()
        r2 = 1 - (ss_res_mean + ss_within) / (ss_between + ss_within)
        r2p = 1 - ss_res_mean / ss_between if ss_between > 0 else _geo_torch.tensor(float("nan"))
        out["b0"].append(float(beta[0]))
        out["b1"].append(float(beta[1]))
        out["r2"].append(float(r2))
        out["r2_profile"].append(float(r2p))
        out["c"].append(float(beta[2]) if parity else None)
    if not batched:
        out = {key: v[0] for key, v in out.items()}
    return AffineFit(**out)


def embedding_spectrum(W_E) -> _geo_torch.Tensor:
    """Eigenvalues of ``W_E^T W_E`` (``[d, d]``), largest first, float64 ``[d]`` (or ``[E, d]``).
    They are the non-zero eigenvalues of the Gram matrix ``W_E W_E^T`` and the squared singular
    values of W_E."""
    W, batched = _geo_embeddings(W_E)
    ev = _geo_torch.linalg.eigvalsh(W.transpose(1, 2) @ W).flip(-1).clamp(min=0)
    return _geo_unbatch(ev, batched)


def eigen_gap(eigenvalues, k: int) -> _geo_torch.Tensor:
    """Ratio ``lambda_k / lambda_{k+1}`` of the k-th to the (k+1)-th largest eigenvalue (k >= 1),
    for a spectrum ``[n]`` or a batch ``[E, n]`` sorted largest first (as ``embedding_spectrum``
    returns). A large ratio after k = m (or m+1) is the signature of a rank-m (m+1) structure."""
    from ._validate import check_int
    ev = _geo_torch.as_tensor(eigenvalues, dtype=_geo_torch.float64)
    if ev.ndim not in (1, 2):
        raise ValueError(f"eigenvalues must have shape [n] or [E, n], got {tuple(ev.shape)}")
    k = check_int("k", k, 1, ev.shape[-1] - 1)
    return ev[..., k - 1] / ev[..., k].clamp(min=1e-300)


def weight_rayleigh(M) -> _geo_torch.Tensor:
    """Mean Rayleigh quotient of a token-by-token matrix per Walsh-character weight.

    ``M`` is ``[V, V]`` or ``[E, V, V]`` (any square matrix indexed by tokens, e.g. a Gram matrix or
    ``association_matrix``). Returns float64 ``[m+1]`` (or ``[E, m+1]``): entry w is the mean of
    ``chi_s^T M chi_s / V`` over the C(m, w) characters s of weight w. For a Hamming kernel
    ``M = g(D_H)`` this is exactly its Krawtchouk eigenvalue lambda_w; for any M it equals the
    Krawtchouk eigenvalue of M's mean profile (book/proofs/geometry.md, lem-profile-projection).
    """
    if not isinstance(M, _geo_torch.Tensor):
        raise ValueError(f"M must be a tensor [V, V] or [E, V, V], got {type(M).__name__}")
    if M.ndim not in (2, 3) or M.shape[-1] != M.shape[-2]:
        raise ValueError(f"M must have shape [V, V] or [E, V, V], got {tuple(M.shape)}")
    V = M.shape[-1]
    if V < 2 or V & (V - 1) or V > 2 ** 12:
        raise ValueError(f"M must be V x V with V = 2^m, m in 1..12, got V={V}")
    batched = M.ndim == 3
    A = M.detach().double().cpu().reshape(-1, V, V)
    m = V.bit_length() - 1
    from .latent import LatentSpace
    from .theory import walsh_characters
    H = walsh_characters(m)                                   # [V, V], column s
    q = ((A @ H) * H).sum(1) / V                              # [E, V(s)]: chi_s^T M chi_s / V
    onehot = _geo_torch.nn.functional.one_hot(LatentSpace(m).popcount(), m + 1).double()
    return _geo_unbatch((q @ onehot) / onehot.sum(0), batched)


def weight_spectrum(W_E) -> tuple[_geo_torch.Tensor, _geo_torch.Tensor]:
    """Energy of the Gram matrix ``W_E W_E^T`` per Walsh-character weight w = 0..m.

    Returns ``(rayleigh, share)``, each float64 ``[m+1]`` (or ``[E, m+1]``): ``rayleigh[w]`` is the
    mean of ``chi_s^T G chi_s / V`` over the C(m, w) characters of weight w, which equals the
    Krawtchouk eigenvalue ``sum_k gbar(k) K_k(w)`` of the mean profile gbar; ``share[w]`` is the
    fraction of trace(G) carried by weight w, ``C(m, w) rayleigh[w] / trace(G)`` (the shares sum
    to 1).
    """
    W, batched = _geo_embeddings(W_E)
    V = W.shape[1]
    m = V.bit_length() - 1
    ray = weight_rayleigh(W @ W.transpose(1, 2))
    mult = _geo_torch.tensor([_geo_math.comb(m, w) for w in range(m + 1)],
                             dtype=_geo_torch.float64)
    trace = (W ** 2).sum((1, 2))[:, None]
    return _geo_unbatch(ray, batched), _geo_unbatch(ray * mult / trace, batched)


def association_matrix(model) -> _geo_torch.Tensor:
    """``M[k, x] = W_U(k)^T W_V W_E(x)`` (float64 ``[V, V]`` or ``[E, V, V]``): the logit that one
    context token x adds to candidate k. With uniform attention (W_KQ = 0) the logits of a context
    are the average of the columns ``M[:, x_l]``; with the tied unembedding W_U = W_E and W_V = I,
    M is the Gram matrix."""
    from .model import OneLayerTransformer
    if not isinstance(model, OneLayerTransformer):
        raise ValueError(f"model must be a OneLayerTransformer, got {type(model).__name__}")
    W_E = model.W_E.detach().double().cpu()
    W_U = model.unembedding.detach().double().cpu()
    W_V = model.W_V.detach().double().cpu()
    return W_U @ W_V @ W_E.transpose(-1, -2)


# ==== section: attention (chapter 6) ====
# (owned by the attention (chapter 6) work; add functions between this marker and the next)

from dataclasses import dataclass as _att_dataclass  # noqa: E402

import torch as _att_torch  # noqa: E402


def _att_model(model):
    from .model import OneLayerTransformer
    if not isinstance(model, OneLayerTransformer):
        raise ValueError(f"model must be a OneLayerTransformer, got {type(model).__name__}")
    return model


def score_matrix(model, center: bool = True) -> _att_torch.Tensor:
    """Attention scores of every (query token i, key token j) pair: ``W_E W_KQ W_E^T``
    (``[V, V]``, or ``[E, V, V]`` for an ensemble; float64 on the CPU). The scores do not depend on
    the context. With ``center`` each row has its mean removed: adding a constant to a query's
    row changes no attention weight, so only the centred scores carry information."""
    model = _att_model(model)
    with _att_torch.no_grad():
        W_E, W_KQ = model.W_E.detach().double().cpu(), model.W_KQ.detach().double().cpu()
        S = W_E @ W_KQ @ W_E.transpose(-1, -2)
    if center:
        S = S - S.mean(-1, keepdim=True)
    return S


@_att_dataclass
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
    mass_matrix: _att_torch.Tensor
    share_matrix: _att_torch.Tensor


def attention_mass_by_cluster(model, spec, k: int, n: int = 4096, seed: int = 0
                              ) -> ClusterAttention:
    """Attention mass on same-cluster tokens against their share of the context (clusters: same
    first ``k`` latent bits), averaged over ``n`` contexts of ``spec`` drawn with ``seed``."""
    from ._validate import check_int
    from .task import TaskSpec, sample
    model = _att_model(model)
    if not isinstance(spec, TaskSpec):
        raise ValueError(f"spec must be a TaskSpec, got {type(spec).__name__}")
    if spec.V != model.V:
        raise ValueError(f"spec has V={spec.V} tokens but the model has V={model.V}")
    k = check_int("k", k, 1, spec.m)
    n = check_int("n", n, 1, 1_000_000)
    ctx, _ = sample(spec, n, seed=seed)
    with _att_torch.no_grad():
        att = model.attention(ctx).double().cpu()                  # [n, L] or [E, n, L]
    cl = ctx >> (spec.m - k)                                       # [n, L]
    C = 2 ** k
    same = (cl == cl[:, -1:]).double()
    onehot = _att_torch.nn.functional.one_hot(cl, C).double()     # [n, L, C]
    qone = _att_torch.nn.functional.one_hot(cl[:, -1], C).double()  # [n, C]
    count = qone.sum(0).clamp(min=1.0)[:, None]                   # queries per cluster

    def by_cluster(weights):                                       # weights [..., n, L]
        per_ctx = _att_torch.einsum("...nl,nlc->...nc", weights, onehot)
        return _att_torch.einsum("nb,...nc->...bc", qone, per_ctx) / count

    uniform = _att_torch.full(ctx.shape, 1.0 / spec.L, dtype=_att_torch.float64)
    mass = (att * same).sum(-1).mean(-1)
    return ClusterAttention(
        mass=float(mass) if mass.ndim == 0 else mass,
        share=float(same.mean()),
        mass_matrix=by_cluster(att),
        share_matrix=by_cluster(uniform),
    )


# ==== section: hijack-in-model (chapter 7) ====
# (owned by the hijack-in-model (chapter 7) work; add functions between this marker and the next)

import torch as _hjp_torch  # noqa: E402


def _hjp_spec_model(model, spec):
    from .train import check_model_and_spec
    check_model_and_spec(model, spec)


def hijack_targets(spec, targets: _hjp_torch.Tensor, distance: int | None = None,
                   seed: int = 0) -> _hjp_torch.Tensor:
    """A hijack target y' for every target y: y with ``distance`` of its latent bits flipped, the
    bits chosen at random (seeded); ``distance=None`` flips all m bits (the complement of y)."""
    from ._validate import check_int, check_tokens
    targets = check_tokens("targets", targets, spec.V, ndim=1)
    distance = spec.m if distance is None else check_int("distance", distance, 1, spec.m)
    g = _hjp_torch.Generator().manual_seed(check_int("seed", seed, 0, 2 ** 63 - 1))
    n = targets.shape[0]
    bits = _hjp_torch.argsort(_hjp_torch.rand((n, spec.m), generator=g), dim=1)[:, :distance]
    pattern = (1 << bits).sum(1)
    return targets ^ pattern


def hijack_contexts(spec, n: int, rho: float = 0.0, prepend: int = 0, block: int = 1,
                    distance: int | None = None, seed: int = 0, last_clean: bool = True,
                    hijack=None):
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
    from ._validate import check_float, check_int, check_tokens
    from .task import TaskSpec, sample
    if not isinstance(spec, TaskSpec):
        raise ValueError(f"spec must be a TaskSpec, got {type(spec).__name__}")
    n = check_int("n", n, 1, 10_000_000)
    rho = check_float("rho", rho, 0.0, 1.0)
    prepend = check_int("prepend", prepend, 0, 10_000)
    block = check_int("block", block, 1, 10_000)
    seed = check_int("seed", seed, 0, 2 ** 62)
    ctx, y = sample(spec, n, seed=seed)
    if hijack is None:
        yh = hijack_targets(spec, y, distance, seed=seed + 1)
    else:
        yh = hijack(y.clone()) if callable(hijack) else hijack
        yh = check_tokens("hijack", yh, spec.V, ndim=1)
        if yh.shape[0] != n or bool((yh == y).any()):
            raise ValueError("hijack must give n token ids, each different from its target")
    table, deg = spec.neighbourhood.table(spec.space)
    g = _hjp_torch.Generator().manual_seed(seed + 2)
    L = spec.L
    u_pos = _hjp_torch.rand((n, L), generator=g, dtype=_hjp_torch.float64)
    u_tok = _hjp_torch.rand((n, L), generator=g, dtype=_hjp_torch.float64)
    d = deg[yh][:, None]
    hij = _hjp_torch.gather(table[yh], 1, _hjp_torch.minimum((u_tok * d).long(), d - 1))
    swap = u_pos < rho
    if last_clean:
        swap[:, -1] = False
    ctx = _hjp_torch.where(swap, hij, ctx)
    blocks = []
    for j in range(prepend):       # block j is the same for every prepend >= j + 1
        gj = _hjp_torch.Generator().manual_seed(seed + 3 + j)
        u_pre = _hjp_torch.rand((n, block), generator=gj, dtype=_hjp_torch.float64)
        blocks.insert(0, _hjp_torch.gather(table[yh], 1,
                                           _hjp_torch.minimum((u_pre * d).long(), d - 1)))
    if blocks:
        ctx = _hjp_torch.cat(blocks + [ctx], dim=1)
    return ctx, y, yh


def _hjp_measure(model, ctx, y, yh) -> dict:
    """Strict comparisons: logits closer than 1e-9 (relative) count as tied, and a tie is neither
    a flip nor a preference (so the float64 constructed model agrees with the exact theory)."""
    with _hjp_torch.no_grad():
        logits = model(ctx.to(model.W_E.device)).double().cpu()    # [n, V] or [E, n, V]
    tol = 1e-9 * (1.0 + logits.abs().amax(-1))
    ly = logits.gather(-1, y.expand(logits.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    lh = logits.gather(-1, yh.expand(logits.shape[:-1]).unsqueeze(-1)).squeeze(-1)

    def best_other(idx):
        masked = logits.scatter(-1, idx.expand(logits.shape[:-1]).unsqueeze(-1), float("-inf"))
        return masked.amax(-1)

    return {"flip": (lh > best_other(yh) + tol).double().mean(-1),
            "prefer": (lh > ly + tol).double().mean(-1),
            "correct": (ly > best_other(y) + tol).double().mean(-1)}


def flip_curve(model, spec, rho_grid, n: int = 2048, seed: int = 0, distance: int | None = None,
               last_clean: bool = True, hijack=None) -> dict:
    """How often hijacking works as the hijack share ``rho`` grows.

    For each rho in ``rho_grid``, ``hijack_contexts(spec, n, rho, ...)`` (same seed for every rho;
    ``distance`` and ``hijack`` choose y' as there) is fed to ``model``. Returns a dict of
    ``Tensor[R]`` (``[E, R]`` for an ensemble): ``"rho"``,
    ``"flip"`` (fraction of predictions equal to y'), ``"prefer"`` (fraction with logit y' > logit
    y: the efficacy score of the real-LLM experiments) and ``"correct"`` (prediction = y). All
    comparisons are strict: logits within 1e-9 (relative) of each other count as a tie, and a tie
    is neither a flip, a preference nor a correct answer.
    """
    from ._validate import check_float, check_int
    _hjp_spec_model(model, spec)
    n = check_int("n", n, 1, 1_000_000)
    grid = [check_float("rho_grid", r, 0.0, 1.0) for r in _hjp_torch.as_tensor(
        rho_grid, dtype=_hjp_torch.float64).reshape(-1).tolist()]
    if not grid:
        raise ValueError("rho_grid must hold at least one value in [0, 1]")
    out = _hjp_curve(model, [hijack_contexts(spec, n, rho=r, distance=distance, seed=seed,
                                             last_clean=last_clean, hijack=hijack) for r in grid])
    out["rho"] = _hjp_torch.tensor(grid, dtype=_hjp_torch.float64)
    return out


def _hjp_curve(model, batches) -> dict:
    """Measure the model on each (contexts, targets, hijack targets) batch; stack along the last
    dimension."""
    rows = [_hjp_measure(model, ctx, y, yh) for ctx, y, yh in batches]
    return {key: _hjp_torch.stack([row[key] for row in rows], dim=-1) for key in rows[0]}


def prepend_curve(model, spec, ks, block: int = 1, n: int = 2048, seed: int = 0,
                  distance: int | None = None, hijack=None) -> dict:
    """The 'number of prepends' experiment in the one-layer model: ``k`` blocks of ``block``
    hijack tokens are put in front of a clean context, for each k in ``ks``. Returns a dict of
    ``Tensor[K]`` (``[E, K]`` for an ensemble): ``"k"``, ``"flip"``, ``"prefer"``, ``"correct"``
    (as in ``flip_curve``)."""
    from ._validate import check_int
    _hjp_spec_model(model, spec)
    n = check_int("n", n, 1, 1_000_000)
    ks = [check_int("ks", k, 0, 10_000) for k in _hjp_torch.as_tensor(ks).reshape(-1).tolist()]
    if not ks:
        raise ValueError("ks must hold at least one number of prepended blocks")
    out = _hjp_curve(model, [hijack_contexts(spec, n, prepend=k, block=block, distance=distance,
                                             seed=seed, hijack=hijack) for k in ks])
    out["k"] = _hjp_torch.tensor(ks, dtype=_hjp_torch.long)
    return out


# ==== end of sections ====
