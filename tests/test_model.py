"""Tests of lca.model: the forward pass against the equations, uniform attention, initialisations,
devices."""

import pytest
import torch

import lca
from lca.model import OneLayerTransformer, check_model, init_embedding, orthonormal_rows
from lca.task import TaskSpec, sample


def manual_forward(W_E, W_KQ, W_V, ctx, W_U=None, residual=False):
    """The model's equations written out with Python loops over the batch and positions."""
    W_U = W_E if W_U is None else W_U
    out, atts = [], []
    for x in ctx.tolist():
        q = W_E[x[-1]]
        scores = torch.stack([q @ W_KQ @ W_E[t] for t in x])
        a = torch.exp(scores - scores.max())
        a = a / a.sum()
        h = sum(a[i] * W_E[t] for i, t in enumerate(x))
        v = W_V @ h + (q if residual else 0)
        out.append(W_U @ v)
        atts.append(a)
    return torch.stack(out), torch.stack(atts)


@pytest.mark.parametrize("tied, residual", [(True, False), (False, False), (True, True)])
def test_forward_matches_the_equations(tied, residual):
    g = torch.Generator().manual_seed(0)
    V, d = 16, 6
    W_E = torch.randn(V, d, generator=g, dtype=torch.float64)
    W_KQ = torch.randn(d, d, generator=g, dtype=torch.float64)
    W_V = torch.randn(d, d, generator=g, dtype=torch.float64)
    W_U = None if tied else torch.randn(V, d, generator=g, dtype=torch.float64)
    model = OneLayerTransformer.from_weights(W_E, W_KQ, W_V, W_U, residual=residual)
    ctx, _ = sample(TaskSpec(m=4, L=5, noise=0.3), 7, seed=1)
    want_logits, want_att = manual_forward(W_E, W_KQ, W_V, ctx, W_U, residual)
    assert torch.allclose(model(ctx), want_logits, atol=1e-10)
    assert torch.allclose(model.attention(ctx), want_att, atol=1e-12)


def test_zero_key_query_gives_uniform_attention_and_mean_embedding():
    model = OneLayerTransformer(32, 8, seed=3)
    ctx, _ = sample(TaskSpec(m=5, L=9), 4, seed=2)
    att = model.attention(ctx)
    assert torch.allclose(att, torch.full_like(att, 1 / 9))
    # with W_V = I, logits are <W_E(k), mean context embedding>
    m2 = OneLayerTransformer.from_weights(model.W_E.detach())
    h = model.W_E.detach()[ctx].mean(1)
    assert torch.allclose(m2(ctx), h @ model.W_E.detach().T, atol=1e-6)


def test_initialisations():
    m = OneLayerTransformer(16, 32, E_init="orthonormal", WV_init="identity", seed=1)
    W = m.W_E.detach()
    assert torch.allclose(W @ W.T, torch.eye(16), atol=1e-5)
    assert torch.equal(m.W_V.detach(), torch.eye(32))
    g = OneLayerTransformer(256, 64, seed=1).W_E.detach()
    # Gaussian N(0, 1/d): squared row norms average 1
    assert abs(float((g**2).sum(1).mean()) - 1.0) < 0.05
    assert torch.count_nonzero(OneLayerTransformer(8, 4).W_V) == 0


def test_orthonormal_rows():
    Q = orthonormal_rows(6, 10, seed=4)
    assert Q.shape == (6, 10) and Q.dtype == torch.float64
    assert torch.allclose(Q @ Q.T, torch.eye(6, dtype=torch.float64), atol=1e-12)
    assert torch.equal(Q, orthonormal_rows(6, 10, seed=4))
    assert orthonormal_rows(5).shape == (5, 5)
    # the model's orthonormal initialisation is the same maker, on the generator's stream
    g = torch.Generator().manual_seed(7)
    assert torch.equal(init_embedding(4, 6, "orthonormal", g, dtype=torch.float64), orthonormal_rows(4, 6, 7))
    # haar: the same Q up to the signs of its columns (rows of the result)
    H = orthonormal_rows(6, 10, seed=4, haar=True)
    assert torch.allclose(H.abs(), Q.abs(), atol=1e-12)
    batch = orthonormal_rows(3, 5, seed=1, lead=(2,), dtype=torch.float32)
    assert batch.shape == (2, 3, 5) and batch.dtype == torch.float32
    with pytest.raises(ValueError, match="d"):
        orthonormal_rows(6, 4)


def test_check_model():
    model = OneLayerTransformer(8, 4)
    assert check_model(model) is model
    ens = OneLayerTransformer(8, 4, ensemble=2)
    assert check_model(ens) is ens
    with pytest.raises(ValueError, match="model must be a single OneLayerTransformer"):
        check_model(ens, single=True)
    with pytest.raises(ValueError, match="net must be a OneLayerTransformer, got str"):
        check_model("gpt", "net")


def test_cuda_request_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="CUDA"):
        OneLayerTransformer(8, 4, device="cuda")
    assert lca.default_device() == "cpu"
