"""The one-layer transformer of the course.

For a context x = (x_1, ..., x_L) of token ids, with embeddings W_E(x_l) (rows of ``W_E [V, d]``):

    scores   s_l = W_E(x_L)^T W_KQ W_E(x_l)          (the last token is the query)
    weights  a   = softmax(s)                        (over the L positions)
    gather   h   = sum_l a_l W_E(x_l)                ([d])
    recall   v   = W_V h                             ([d])
    logits   f_k = W_U(k)^T v,  W_U = W_E (tied)     ([V])

Choices (digest section 3 marks them as reconstructions; the course fixes them this way): one head,
a merged key-query matrix, no positional encoding (context tokens are exchangeable), no residual
connection, no layer norm and no 1/sqrt(d) scaling by default. ``residual=True`` adds the query
embedding to v, ``layernorm=True`` normalises v before the unembedding, ``tied=False`` gives a separate
unembedding ``W_U [V, d]``. With W_KQ = 0 the attention is uniform and h is the mean context embedding.

Ensembles: ``OneLayerTransformer(V, d, ensemble=E)`` holds E independent models as one set of
tensors with a leading dimension (``W_E [E, V, d]`` and so on); ``forward`` then maps contexts
``[E, n, L]`` (or ``[n, L]``, shared by all members) to logits ``[E, n, V]``. ``member(i)`` extracts one.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._validate import (
    ArgumentTypeError,
    check_bool,
    check_choice,
    check_dtype,
    check_int,
    check_size,
    check_tokens,
    make_generator,
)


def default_device() -> str:
    """``"cuda"`` when a GPU is visible to torch, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> ``default_device()``; anything else is checked and returned as a torch.device."""
    if device is None:
        device = default_device()
    if not isinstance(device, (str, torch.device)):
        raise ArgumentTypeError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if dev.type not in ("cpu", "cuda", "meta"):  # meta: shapes only, used by the device tests
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was asked for but torch sees no CUDA GPU; use "
            "device='cpu' or lca.default_device()"
        )
    return dev


E_INITS = ("gaussian", "orthonormal")
# At most this many parameters in one model (2**28 floats: 1 GiB in float32).
PARAM_LIMIT = 2**28
# The forward pass scores whole vocabularies ("bag of tokens" form) when V <= BAG_MAX_RATIO * L,
# and gathers the [n, L, d] context embeddings otherwise; both compute the same function.
BAG_MAX_RATIO = 32
WV_INITS = ("zero", "small", "identity", "gaussian")


class OneLayerTransformer(nn.Module):
    """One-layer, one-head attention model with a value matrix and a tied unembedding.

    Args:
        V: vocabulary size (>= 2).
        d: embedding dimension (>= 1).
        ensemble: None for one model, or E >= 1 for E independent models batched together.
        tied: unembedding equals W_E (default True).
        residual: add the query embedding to the value output (default False).
        layernorm: normalise the value output (no learned affine) before unembedding (default False).
        E_init: ``"gaussian"`` (entries N(0, 1/d), rows of norm about 1) or ``"orthonormal"`` (needs
            d >= V; rows are orthonormal).
        WV_init: ``"zero"``, ``"small"`` (N(0, 0.01/d)), ``"identity"`` or ``"gaussian"`` (N(0, 1/d)).
        freeze: names among ``"W_E"``, ``"W_KQ"``, ``"W_V"`` whose ``requires_grad`` is switched off.
        identity_WV: shorthand for ``WV_init="identity"`` and freezing W_V.
        generator / seed: source of the random initialisation.
        device, dtype: where the parameters live (device None -> ``default_device()``).
    """

    def __init__(
        self,
        V: int,
        d: int,
        *,
        ensemble: int | None = None,
        tied: bool = True,
        residual: bool = False,
        layernorm: bool = False,
        E_init: str = "gaussian",
        WV_init: str = "zero",
        freeze: tuple = (),
        identity_WV: bool = False,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        self.V = check_int("V", V, 2, 2**16)
        self.d = check_int("d", d, 1, 1 << 16)
        self.ensemble = None if ensemble is None else check_int("ensemble", ensemble, 1, 1 << 16)
        dtype = check_dtype("dtype", dtype)
        tied, residual = check_bool("tied", tied), check_bool("residual", residual)
        layernorm, identity_WV = check_bool("layernorm", layernorm), check_bool("identity_WV", identity_WV)
        E = 1 if self.ensemble is None else self.ensemble
        n_params = E * self.d * (self.d + 2 * self.V)
        check_size("d", n_params, PARAM_LIMIT, "parameters (ensemble * d * (d + 2V))")
        check_choice("E_init", E_init, E_INITS)
        if isinstance(freeze, str) or not isinstance(freeze, (tuple, list, set, frozenset)):
            raise ArgumentTypeError(f"freeze must be a tuple of parameter names, got {freeze!r}")
        if identity_WV:
            WV_init = "identity"
            freeze = tuple(freeze) + ("W_V",)
        check_choice("WV_init", WV_init, WV_INITS)
        for name in freeze:
            check_choice("freeze", name, ("W_E", "W_KQ", "W_V", "W_U"))
        if E_init == "orthonormal" and self.d < self.V:
            raise ValueError(f"d must be >= V={self.V} for orthonormal embeddings, got d={self.d}")
        self.tied, self.residual, self.layernorm = bool(tied), bool(residual), bool(layernorm)
        self.E_init, self.WV_init = E_init, WV_init
        dev = resolve_device(device)
        if generator is None:
            generator = torch.Generator()
            generator.manual_seed(0 if seed is None else check_int("seed", seed, 0, 2**63 - 1))
        lead = () if self.ensemble is None else (self.ensemble,)
        W_E = init_embedding(V, d, E_init, generator, lead, dtype)
        W_KQ = torch.zeros(lead + (d, d), dtype=dtype)
        W_V = init_value(d, WV_init, generator, lead, dtype)
        self.W_E = nn.Parameter(W_E.to(dev))
        self.W_KQ = nn.Parameter(W_KQ.to(dev))
        self.W_V = nn.Parameter(W_V.to(dev))
        if not self.tied:
            self.W_U = nn.Parameter(init_embedding(V, d, E_init, generator, lead, dtype).to(dev))
        else:
            self.W_U = None
        for name in freeze:
            p = getattr(self, name)
            if p is not None:
                p.requires_grad_(False)

    @classmethod
    def from_weights(
        cls,
        W_E: torch.Tensor,
        W_KQ: torch.Tensor | None = None,
        W_V: torch.Tensor | None = None,
        W_U: torch.Tensor | None = None,
        **options,
    ) -> "OneLayerTransformer":
        """A model with the given matrices (copied). ``W_E [V, d]`` (or ``[E, V, d]``); W_KQ defaults
        to 0 (uniform attention), W_V to the identity; W_U given means an untied unembedding."""
        W_E = torch.as_tensor(W_E)
        if W_E.ndim not in (2, 3):
            raise ValueError(f"W_E must have shape [V, d] or [E, V, d], got {tuple(W_E.shape)}")
        E = None if W_E.ndim == 2 else W_E.shape[0]
        V, d = W_E.shape[-2:]
        lead = W_E.shape[:-2]
        if W_KQ is None:
            W_KQ = torch.zeros(lead + (d, d), dtype=W_E.dtype)
        if W_V is None:
            W_V = torch.eye(d, dtype=W_E.dtype).expand(lead + (d, d))
        for name, W, shape in (("W_KQ", W_KQ, lead + (d, d)), ("W_V", W_V, lead + (d, d))):
            if tuple(torch.as_tensor(W).shape) != tuple(shape):
                raise ValueError(
                    f"{name} must have shape {tuple(shape)}, got {tuple(torch.as_tensor(W).shape)}"
                )
        if W_U is not None and tuple(torch.as_tensor(W_U).shape) != tuple(W_E.shape):
            raise ValueError(
                f"W_U must have shape {tuple(W_E.shape)}, got {tuple(torch.as_tensor(W_U).shape)}"
            )
        options.setdefault("device", W_E.device)
        model = cls(V, d, ensemble=E, tied=W_U is None, dtype=W_E.dtype, **options)
        with torch.no_grad():
            model.W_E.copy_(W_E)
            model.W_KQ.copy_(torch.as_tensor(W_KQ))
            model.W_V.copy_(torch.as_tensor(W_V))
            if W_U is not None:
                model.W_U.copy_(torch.as_tensor(W_U))
        return model

    def member(self, i: int) -> "OneLayerTransformer":
        """Member i of an ensemble as a stand-alone model (a copy)."""
        if self.ensemble is None:
            raise ValueError("member() needs an ensemble model (ensemble=E)")
        i = check_int("i", i, 0, self.ensemble - 1)
        W_U = None if self.tied else self.W_U[i].detach()
        return OneLayerTransformer.from_weights(
            self.W_E[i].detach(),
            self.W_KQ[i].detach(),
            self.W_V[i].detach(),
            W_U,
            residual=self.residual,
            layernorm=self.layernorm,
        )

    @property
    def unembedding(self) -> torch.Tensor:
        return self.W_E if self.tied else self.W_U

    def _prepare(self, contexts: torch.Tensor) -> torch.Tensor:
        contexts = check_tokens("contexts", contexts, self.V, ndim=(2,) if self.ensemble is None else (2, 3))
        if contexts.shape[-1] < 1:
            raise ValueError("contexts must have at least one position (L >= 1)")
        if self.ensemble is None:
            return contexts.unsqueeze(0).to(self.W_E.device)
        if contexts.ndim == 2:
            contexts = contexts.unsqueeze(0).expand(self.ensemble, -1, -1)
        if contexts.shape[0] != self.ensemble:
            raise ValueError(
                f"contexts must have shape [E={self.ensemble}, n, L] or [n, L], got {tuple(contexts.shape)}"
            )
        return contexts.to(self.W_E.device)

    def _params(self):
        if self.ensemble is None:
            W_U = None if self.tied else self.W_U.unsqueeze(0)
            return self.W_E.unsqueeze(0), self.W_KQ.unsqueeze(0), self.W_V.unsqueeze(0), W_U
        return self.W_E, self.W_KQ, self.W_V, self.W_U

    def _run(self, ctx: torch.Tensor):
        """Batched forward on ``ctx [E, n, L]``; returns (logits [E, n, V], attention [E, n, L])."""
        W_E, W_KQ, W_V, W_U = self._params()
        E, n, L = ctx.shape
        V, d = W_E.shape[-2:]
        offsets = (torch.arange(E, device=ctx.device) * V).view(E, 1, 1)
        if V <= BAG_MAX_RATIO * L:
            # "Bag of tokens" form (same maths, no [E, n, L, d] tensor): score every vocabulary
            # token once, T = (q^T W_KQ) W_E^T, read the scores off at the context ids, then gather
            # h = A W_E with A[k] = sum of the attention weights of the positions holding token k.
            # Dense matmuls only; about 5x faster on a CPU when V is at most a few times L.
            q = nn.functional.embedding(ctx[:, :, -1] + offsets[:, :, 0], W_E.reshape(E * V, d))  # [E, n, d]
            qk = torch.bmm(q, W_KQ)  # [E, n, d]
            T = torch.bmm(qk, W_E.transpose(1, 2))  # [E, n, V]
            scores = torch.gather(T, 2, ctx)  # [E, n, L]
            att = torch.softmax(scores, dim=-1)
            A = torch.zeros((E, n, V), dtype=att.dtype, device=att.device)
            A = A.scatter_add(2, ctx, att)  # [E, n, V]
            h = torch.bmm(A, W_E)  # [E, n, d]
        else:
            X = nn.functional.embedding(ctx + offsets, W_E.reshape(E * V, d))  # [E, n, L, d]
            q = X[:, :, -1, :]  # [E, n, d]
            qk = torch.bmm(q, W_KQ)  # [E, n, d]
            scores = torch.matmul(X, qk.unsqueeze(-1)).squeeze(-1)  # [E, n, L]
            att = torch.softmax(scores, dim=-1)
            h = torch.matmul(att.unsqueeze(-2), X).squeeze(-2)  # [E, n, d]
        v = torch.bmm(h, W_V.transpose(1, 2))  # [E, n, d]
        if self.residual:
            v = v + q
        if self.layernorm:
            v = nn.functional.layer_norm(v, (d,))
        U = W_E if W_U is None else W_U
        logits = torch.bmm(v, U.transpose(1, 2))  # [E, n, V]
        return logits, att

    def forward(self, contexts: torch.Tensor) -> torch.Tensor:
        """Logits ``[n, V]`` for contexts ``LongTensor[n, L]`` (``[E, n, V]`` for an ensemble)."""
        logits, _ = self._run(self._prepare(contexts))
        return logits[0] if self.ensemble is None else logits

    def attention(self, contexts: torch.Tensor) -> torch.Tensor:
        """Attention weights ``[n, L]`` of the query (last token) over the context positions."""
        _, att = self._run(self._prepare(contexts))
        return att[0] if self.ensemble is None else att

    def predict(self, contexts: torch.Tensor) -> torch.Tensor:
        """Arg-max token ``LongTensor[n]`` (``[E, n]`` for an ensemble)."""
        with torch.no_grad():
            return self.forward(contexts).argmax(-1)

    def extra_repr(self) -> str:
        return (
            f"V={self.V}, d={self.d}, ensemble={self.ensemble}, tied={self.tied}, "
            f"residual={self.residual}, layernorm={self.layernorm}"
        )


def check_model(model: object, name: str = "model", single: bool = False) -> OneLayerTransformer:
    """Return ``model`` if it is a ``OneLayerTransformer`` (a single one, not an ensemble, when
    ``single``), else raise ValueError naming the parameter."""
    if not isinstance(model, OneLayerTransformer) or (single and model.ensemble is not None):
        kind = (
            "a single OneLayerTransformer (use model.member(i) for an ensemble)"
            if single
            else "a OneLayerTransformer"
        )
        raise ValueError(f"{name} must be {kind}, got {type(model).__name__}")
    return model


def orthonormal_rows(
    n: int,
    d: int | None = None,
    seed: int | None = 0,
    *,
    generator: torch.Generator | None = None,
    lead: tuple = (),
    dtype: torch.dtype = torch.float64,
    haar: bool = False,
) -> torch.Tensor:
    """``Tensor[*lead, n, d]`` with orthonormal rows (needs ``d >= n``; default ``d = n``): the Q
    factor of a float64 Gaussian ``[d, n]`` matrix, transposed. With ``haar`` the columns of Q are
    multiplied by the signs of R's diagonal, which makes the rows Haar-distributed.

    The one maker of orthonormal embeddings and keys in the package. Seeding: ``generator`` to
    continue a stream, else a fresh generator seeded with ``seed`` (None: a random seed)."""
    n = check_int("n", n, 1, 1_000_000)
    d = n if d is None else check_int("d", d, n, 1_000_000)
    dtype, haar = check_dtype("dtype", dtype), check_bool("haar", haar)
    if isinstance(lead, (str, bytes)) or not isinstance(lead, (tuple, list, torch.Size)):
        raise ArgumentTypeError(f"lead must be a tuple of batch sizes, got {type(lead).__name__}")
    lead = tuple(check_int("lead", x, 1, 1 << 16) for x in lead)
    check_size("n", math.prod(lead) * n * d, PARAM_LIMIT)
    g = make_generator(seed, generator)
    A = torch.randn(tuple(lead) + (d, n), generator=g, dtype=torch.float64)
    Q, R = torch.linalg.qr(A)  # [*lead, d, n], orthonormal columns
    if haar:
        Q = Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1))[..., None, :]
    return Q.transpose(-1, -2).to(dtype).contiguous()


def init_embedding(
    V: int,
    d: int,
    kind: str,
    generator: torch.Generator,
    lead: tuple = (),
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Initial embeddings ``[*lead, V, d]``: Gaussian N(0, 1/d) or orthonormal rows (d >= V)."""
    check_choice("E_init", kind, E_INITS)
    if kind == "gaussian":
        return torch.randn(tuple(lead) + (V, d), generator=generator, dtype=torch.float32).to(
            dtype
        ) / math.sqrt(d)
    if d < V:
        raise ValueError(f"d must be >= V={V} for orthonormal embeddings, got d={d}")
    return orthonormal_rows(V, d, generator=generator, lead=lead, dtype=dtype)


def init_value(
    d: int, kind: str, generator: torch.Generator, lead: tuple = (), dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Initial value matrix ``[*lead, d, d]``."""
    check_choice("WV_init", kind, WV_INITS)
    shape = tuple(lead) + (d, d)
    if kind == "zero":
        return torch.zeros(shape, dtype=dtype)
    if kind == "identity":
        return torch.eye(d, dtype=dtype).expand(shape).clone()
    scale = 0.1 if kind == "small" else 1.0
    return (scale * torch.randn(shape, generator=generator, dtype=torch.float32) / math.sqrt(d)).to(dtype)
