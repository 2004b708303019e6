"""Chapter 4: the value matrix as an associative memory.

Every theorem of book/proofs/value_matrix.md is checked here against an independent computation
(brute-force enumeration of contexts, autograd, Monte Carlo), where its hypotheses hold and where
one of them fails.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import warnings
from pathlib import Path

import pytest
import torch

import lca
from lca import lca_task, value_matrix
from lca.model import OneLayerTransformer, init_embedding
from lca.task import enumerate_task
from lca.train import exact_population_loss

ROOT = Path(__file__).resolve().parent.parent


def orthonormal(V, seed=0, d=None):
    return init_embedding(V, d or V, "orthonormal", torch.Generator().manual_seed(seed), dtype=torch.float64)


def gaussian(V, d, seed=0):
    return init_embedding(V, d, "gaussian", torch.Generator().manual_seed(seed)).double()


def mask_of(spec):
    return spec.neighbourhood.mask(spec.m)


# ---------------------------------------------------------------- brute-force references


def brute_construction(W_E, mask):
    V, d = W_E.shape
    out = torch.zeros(d, d, dtype=torch.float64)
    for i in range(V):
        key = torch.zeros(d, dtype=torch.float64)
        for j in range(V):
            if mask[i, j]:
                key += W_E[j]
        out += torch.outer(W_E[i], key)
    return out


def brute_error(spec):
    """Error probability (ties as errors) of A c for the noise-free task, by enumerating every
    context of every target and scoring it with explicit share counting."""
    M = mask_of(spec)
    V, L = spec.V, spec.L
    total = 0.0
    for y in range(V):
        nbrs = [x for x in range(V) if M[y, x]]
        n = len(nbrs)
        err = 0
        for ctx in itertools.product(nbrs, repeat=L):
            shares = [sum(1 for x in ctx if M[k, x]) for k in range(V)]
            best_other = max(shares[k] for k in range(V) if k != y)
            err += shares[y] <= best_other
        total += err / n**L
    return total / V


# ---------------------------------------------------------------- the construction


def test_construction_is_the_sum_of_outer_products():
    g = torch.Generator().manual_seed(0)
    for V, d in [(4, 3), (8, 8), (16, 5)]:
        W = torch.randn(V, d, generator=g, dtype=torch.float64)
        mask = torch.rand(V, V, generator=g) < 0.4
        mask.fill_diagonal_(False)
        got = value_matrix.value_matrix_construction(W, mask)
        assert torch.allclose(got, brute_construction(W, mask), atol=1e-10)
        # orientation: the transposed mask gives a different matrix for an asymmetric mask
        if not torch.equal(mask, mask.T):
            assert not torch.allclose(got, brute_construction(W, mask.T), atol=1e-6)
    # a family, a bool mask and a float weight matrix agree; ensembles stack
    W = torch.randn(3, 16, 6, generator=g, dtype=torch.float64)
    fam = value_matrix.value_matrix_construction(W[0], lca.hamming_ball(2))
    assert torch.allclose(fam, value_matrix.value_matrix_construction(W[0], lca.hamming_ball(2).mask(4)))
    assert torch.allclose(
        fam, value_matrix.value_matrix_construction(W[0], lca.hamming_ball(2).mask(4).double())
    )
    ens = value_matrix.value_matrix_construction(W, lca.hamming_sphere(1))
    assert ens.shape == (3, 6, 6)
    for e in range(3):
        assert torch.allclose(ens[e], brute_construction(W[e], lca.hamming_sphere(1).mask(4)))


def test_logits_are_neighbourhood_shares_with_orthonormal_embeddings():
    """thm-wv-construction: in the real model, f_k = share of the (attention-weighted) context in
    N(k) for orthonormal embeddings, with uniform and with non-uniform attention."""
    spec = lca.TaskSpec(4, 7, lca.hamming_ball(2), noise=0.3)
    M = mask_of(spec)
    E = orthonormal(spec.V, 1, d=20)  # d > V, rows orthonormal
    W_star = value_matrix.value_matrix_construction(E, M)
    ctx, _ = lca.sample(spec, 64, seed=2)
    g = torch.Generator().manual_seed(3)
    for W_KQ in (None, torch.randn(20, 20, generator=g, dtype=torch.float64)):
        model = OneLayerTransformer.from_weights(E, W_KQ=W_KQ, W_V=W_star)
        with torch.no_grad():
            f = model(ctx)
            a = model.attention(ctx)
        for b in range(ctx.shape[0]):
            for k in range(spec.V):
                share = sum(float(a[b, l]) for l in range(spec.L) if M[k, int(ctx[b, l])])
                assert abs(float(f[b, k]) - share) < 1e-10


def test_logits_with_general_embeddings_are_GAGc_not_Ac():
    spec = lca.TaskSpec(4, 6)
    M = mask_of(spec).double()
    E = gaussian(spec.V, 6, 4)  # d < V: not orthonormal
    model = OneLayerTransformer.from_weights(E, W_V=value_matrix.value_matrix_construction(E, M))
    ctx, _ = lca.sample(spec, 32, seed=4)
    c = torch.zeros(32, spec.V, dtype=torch.float64).scatter_add_(
        1, ctx, torch.full(ctx.shape, 1 / spec.L, dtype=torch.float64)
    )
    G = E @ E.T
    with torch.no_grad():
        f = model(ctx)
    assert torch.allclose(f, c @ (G @ M @ G).T, atol=1e-10)
    assert (f - c @ M.T).abs().max() > 0.1  # the share reading needs G = I


def test_constructed_model_and_the_scaled_construction():
    spec = lca.TaskSpec(4, 6)
    model = value_matrix.constructed_model(spec, d=20, seed=2)
    E = model.W_E.detach()
    assert E.dtype == torch.float64 and E.shape == (16, 20)
    assert torch.allclose(E @ E.T, torch.eye(16, dtype=torch.float64), atol=1e-12)
    assert not bool(model.W_KQ.any())
    assert torch.equal(model.W_V.detach(), value_matrix.value_matrix_construction(E, spec.neighbourhood))
    W3 = value_matrix.value_matrix_construction(E, spec.neighbourhood, scale=3.0)
    assert torch.allclose(W3, 3 * model.W_V.detach(), atol=1e-12)
    with pytest.raises(ValueError, match="scale"):
        value_matrix.value_matrix_construction(E, spec.neighbourhood, scale=-1.0)
    with pytest.raises(ValueError, match="spec"):
        value_matrix.constructed_model("N_1")


# ---------------------------------------------------------------- error probabilities


@pytest.mark.parametrize("m,L", [(2, 3), (3, 1), (3, 4), (4, 3), (5, 2)])
def test_sphere1_closed_form_matches_brute_force(m, L):
    spec = lca.TaskSpec(m, L)
    truth = brute_error(spec)
    assert value_matrix.wv_error_exact_sphere1(m, L) == pytest.approx(truth, abs=1e-12)
    assert value_matrix.wv_error_exact(spec) == pytest.approx(truth, abs=1e-12)
    # the union bound C(m,2) (2/m)^L (chapter 2's) holds, and Chernoff reduces to it without noise
    assert lca_task.bayes_error_bound_sphere1(m, L) >= truth - 1e-15
    assert value_matrix.wv_error_bound(spec) == pytest.approx(
        lca_task.bayes_error_bound_sphere1(m, L), abs=1e-12
    )


def test_sphere1_m1_has_no_error():
    assert value_matrix.wv_error_exact_sphere1(1, 5) == 0.0
    assert value_matrix.wv_error_exact(lca.TaskSpec(1, 5)) == 0.0
    assert value_matrix.construction_accuracy(lca.TaskSpec(1, 5), n=200) == 1.0


@pytest.mark.parametrize(
    "nb,m,L",
    [
        (lca.hamming_ball(2), 3, 3),
        (lca.cluster(1), 3, 4),
        (lca.hamming_sphere(2), 3, 4),
        (lca.hamming_sphere(2), 4, 3),
        (lca.cluster(2), 4, 3),
    ],
)
def test_exact_enumeration_matches_brute_force(nb, m, L):
    spec = lca.TaskSpec(m, L, nb)
    truth = brute_error(spec)
    assert value_matrix.wv_error_exact(spec) == pytest.approx(truth, abs=1e-12)
    assert value_matrix.wv_error_bound(spec) >= truth - 1e-12


def test_exact_enumeration_custom_mask_averages_over_targets():
    g = torch.Generator().manual_seed(5)
    M = torch.rand(8, 8, generator=g) < 0.45
    M.fill_diagonal_(False)
    M[M.sum(1) == 0, 0] = True
    M[0, 0] = False
    M[0, 1] = True
    spec = lca.TaskSpec(3, 3, lca.custom(M))
    truth = brute_error(spec)
    assert value_matrix.wv_error_exact(spec) == pytest.approx(truth, abs=1e-12)
    assert value_matrix.wv_error_bound(spec) >= truth - 1e-12


@pytest.mark.parametrize(
    "spec", [lca.TaskSpec(5, 6), lca.TaskSpec(4, 8, lca.hamming_ball(2)), lca.TaskSpec(5, 16, lca.cluster(2))]
)
def test_monte_carlo_agrees_with_exact(spec):
    n = 20_000
    p = value_matrix.wv_error_exact(spec)
    mc = 1 - value_matrix.construction_accuracy(spec, n=n, seed=9)
    assert abs(mc - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-3


@pytest.mark.parametrize(
    "spec",
    [
        lca.TaskSpec(5, 16, noise=0.3),
        lca.TaskSpec(4, 24, noise=0.5),
        lca.TaskSpec(5, 16, lca.hamming_ball(2), noise=0.2),
        lca.TaskSpec(5, 16, noise=0.3, clean_last=True),
    ],
)
def test_chernoff_bound_holds_with_noise(spec):
    n = 20_000
    mc = 1 - value_matrix.construction_accuracy(spec, n=n, seed=10)
    bound = value_matrix.wv_error_bound(spec)
    assert bound < 1.0  # the bound says something here
    assert mc <= bound + 4 * math.sqrt(max(bound * (1 - bound), 1e-4) / n)


def test_sphere1_closed_form_fails_with_noise():
    """The exact N_1 formula needs the noise-free hypothesis."""
    spec = lca.TaskSpec(5, 12, noise=0.3)
    mc = 1 - value_matrix.construction_accuracy(spec, n=20_000, seed=12)
    assert mc > 50 * value_matrix.wv_error_exact_sphere1(5, 12)


def test_bound_ineffective_when_a_neighbourhood_contains_another():
    """thm-wv-error-bound (4): N(y) = N(complement of y) for the sphere of radius m/2."""
    spec = lca.TaskSpec(4, 16, lca.hamming_sphere(2))
    M = mask_of(spec)
    comp = (spec.V - 1) ^ torch.arange(spec.V)
    assert torch.equal(M, M[comp])
    assert value_matrix.wv_error_exact(spec) == pytest.approx(1.0)
    assert value_matrix.wv_error_bound(spec) == 1.0
    assert value_matrix.construction_accuracy(spec, n=2000, seed=1) == 0.0
    # a custom mask where only target 0 has N(0) inside N(5): that target always fails
    V = 8
    M = torch.zeros(V, V, dtype=torch.bool)
    for y in range(V):
        M[y, (y + 1) % V] = M[y, (y + 2) % V] = True
    M[5] = False
    M[5, 1] = M[5, 2] = M[5, 4] = True  # N(0) = {1, 2} is inside N(5)
    spec = lca.TaskSpec(3, 20, lca.custom(M))
    per = value_matrix.wv_error_bound(spec, per_target=True)
    assert float(per[0]) == 1.0
    ctx, y = lca.sample(spec, 3000, seed=2)
    c = torch.zeros(3000, V, dtype=torch.float64).scatter_add_(
        1, ctx, torch.ones_like(ctx, dtype=torch.float64)
    )
    hit = value_matrix.strict_correct(c @ M.double().T, y)
    assert not bool(hit[y == 0].any())  # every context of target 0 fails
    assert float(hit[y != 0].double().mean()) > 0.99


# ---------------------------------------------------------------- random embeddings


def test_memory_accuracy_matches_the_model_forward():
    spec = lca.TaskSpec(5, 16, noise=0.2)
    E = gaussian(spec.V, 12, 3)
    W = value_matrix.value_matrix_construction(E, spec.neighbourhood)
    fast = value_matrix.memory_accuracy(spec, E, W, n=3000, seed=4)
    ctx, y = lca.sample(spec, 3000, seed=4)
    model = OneLayerTransformer.from_weights(E, W_V=W)
    with torch.no_grad():
        slow = float(value_matrix.strict_correct(model(ctx), y).double().mean())
    assert fast == pytest.approx(slow, abs=1e-12)
    assert value_matrix.memory_accuracy(
        spec, E, W, n=3000, seed=4, W_KQ=torch.zeros(12, 12)
    ) == pytest.approx(fast, abs=1e-12)


def test_gaussian_embeddings_reach_the_limit_bounds_only_at_large_d():
    """prop-wv-gaussian-limit bounds the limit d -> infinity between alpha and alpha+ (both 1 here);
    it says nothing about rates: at d = 4 the accuracy is far below, at d = 2048 it is close."""
    spec = lca.TaskSpec(4, 32)
    ortho = value_matrix.construction_accuracy(spec, n=2000, seed=3)
    small = (
        sum(value_matrix.construction_accuracy(spec, gaussian(16, 4, s), n=2000, seed=3) for s in range(3))
        / 3
    )
    large = (
        sum(value_matrix.construction_accuracy(spec, gaussian(16, 2048, s), n=2000, seed=3) for s in range(3))
        / 3
    )
    assert ortho == 1.0
    assert small < 0.6 < 0.98 < large


# ---------------------------------------------------------------- the identity value matrix


@pytest.mark.parametrize(
    "spec", [lca.TaskSpec(4, 8), lca.TaskSpec(5, 32, noise=0.5), lca.TaskSpec(4, 16, lca.cluster(1))]
)
def test_identity_with_orthonormal_embeddings_has_accuracy_zero(spec):
    """prop-identity-fails, for zero and for random W_KQ; the target is never even a maximiser."""
    assert value_matrix.identity_accuracy(spec, n=2000, seed=1) == 0.0
    E = orthonormal(spec.V, 2)
    g = torch.Generator().manual_seed(1)
    W_KQ = torch.randn(spec.V, spec.V, generator=g, dtype=torch.float64)
    model = OneLayerTransformer.from_weights(E, W_KQ=W_KQ)  # W_V = I
    ctx, y = lca.sample(spec, 2000, seed=1)
    with torch.no_grad():
        f = model(ctx)
    assert bool((f.gather(1, y[:, None]).squeeze(1) < f.max(1).values - 1e-9).all())


def brute_pm1_accuracy(m, L):
    """Enumerate every sequence of flipped bits and score W_V = I with the +-1 embedding."""
    E = value_matrix.pm1_embedding(m)
    y = 0
    hits = 0
    for flips in itertools.product(range(m), repeat=L):
        h = sum(E[y ^ (1 << (m - 1 - a))] for a in flips) / L
        f = E @ h
        others = torch.cat([f[:y], f[y + 1 :]])
        hits += bool(f[y] > others.max() + 1e-12)
    return hits / m**L


@pytest.mark.parametrize("m,L", [(1, 3), (2, 5), (3, 4), (3, 5), (4, 4), (5, 3)])
def test_pm1_majority_vote_exact_formula(m, L):
    assert value_matrix.identity_pm1_accuracy(m, L) == pytest.approx(brute_pm1_accuracy(m, L), abs=1e-12)


def test_pm1_identity_beats_orthonormal_identity():
    spec = lca.TaskSpec(5, 16)
    E = value_matrix.pm1_embedding(5)
    G = E @ E.T
    D = spec.space.distances().double()
    assert torch.allclose(G, 1 - 2 * D / 5, atol=1e-12)
    acc = value_matrix.identity_accuracy(spec, E, n=20_000, seed=3)
    exact = value_matrix.identity_pm1_accuracy(5, 16)
    assert acc > 0.9
    assert abs(acc - exact) <= 4 * math.sqrt(exact * (1 - exact) / 20_000) + 1e-3
    assert value_matrix.identity_accuracy(spec, n=2000, seed=3) == 0.0
    # m <= 2: the majority vote always fails
    assert value_matrix.identity_accuracy(lca.TaskSpec(2, 9), value_matrix.pm1_embedding(2), n=500) == 0.0


# ---------------------------------------------------------------- one gradient step

ONE_STEP_SPECS = [
    lca.TaskSpec(3, 4),
    lca.TaskSpec(3, 3, noise=0.2),
    lca.TaskSpec(3, 3, noise=0.2, clean_last=True),
    lca.TaskSpec(3, 3, lca.hamming_ball(2)),
    lca.TaskSpec(2, 5, lca.cluster(1)),
]


@pytest.mark.parametrize("spec", ONE_STEP_SPECS)
@pytest.mark.parametrize("kind", ["orthonormal", "gaussian"])
def test_one_step_matches_autograd_on_the_exact_population_loss(spec, kind):
    E = orthonormal(spec.V, 1) if kind == "orthonormal" else gaussian(spec.V, 5, 1)
    d = E.shape[1]
    model = OneLayerTransformer.from_weights(E, W_V=torch.zeros(d, d, dtype=torch.float64))
    ctx, y, p = enumerate_task(spec)
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-12)
    loss = exact_population_loss(model, spec)
    assert float(loss.detach()) == pytest.approx(math.log(spec.V), abs=1e-12)
    loss.backward()
    for lr in (1.0, 0.3):
        assert torch.allclose(-lr * model.W_V.grad, value_matrix.one_step_WV(E, spec, lr=lr), atol=1e-12)
    mem, shift = value_matrix.one_step_WV_parts(E, spec, lr=0.3)
    assert torch.allclose(mem + shift, value_matrix.one_step_WV(E, spec, lr=0.3), atol=1e-14)


def test_one_step_matches_a_sampled_batch_within_the_chebyshev_tolerance():
    spec = lca.TaskSpec(5, 16, noise=0.2)
    E = orthonormal(spec.V, 3)
    target = value_matrix.one_step_WV(E, spec)
    delta = 1e-3
    for n, seed in ((1000, 1), (20_000, 2)):
        ctx, y = lca.sample(spec, n, seed=seed)
        model = OneLayerTransformer.from_weights(E, W_V=torch.zeros(32, 32, dtype=torch.float64))
        torch.nn.functional.cross_entropy(model(ctx), y).backward()
        err = float((-model.W_V.grad - target).norm())
        assert err <= value_matrix.one_step_WV_sampling_rms(E, spec, n) / math.sqrt(delta)
    # the predicted root-mean-square error matches the spread of many small batches
    sq = []
    for s in range(60):
        ctx, y = lca.sample(spec, 200, seed=100 + s)
        model = OneLayerTransformer.from_weights(E, W_V=torch.zeros(32, 32, dtype=torch.float64))
        torch.nn.functional.cross_entropy(model(ctx), y).backward()
        sq.append(float(((-model.W_V.grad - target) ** 2).sum()))
    rms = math.sqrt(sum(sq) / len(sq))
    assert rms == pytest.approx(value_matrix.one_step_WV_sampling_rms(E, spec, 200), rel=0.15)


def centred_logits(E, W, ctx):
    model = OneLayerTransformer.from_weights(E, W_V=W)
    with torch.no_grad():
        f = model(ctx)
    return f - f.mean(1, keepdim=True)


@pytest.mark.parametrize(
    "spec,n_deg",
    [
        (lca.TaskSpec(4, 8), 4),
        (lca.TaskSpec(4, 8, lca.hamming_ball(2)), 10),
        (lca.TaskSpec(4, 8, lca.cluster(1)), 7),
    ],
)
def test_one_step_is_scaled_construction_plus_shift(spec, n_deg):
    """thm-one-step-wv (2)-(3): orthonormal, noise-free, regular neighbourhood."""
    E = orthonormal(spec.V, 5)
    ctx, _ = lca.sample(spec, 256, seed=5)
    lr = 0.7
    f1 = centred_logits(E, value_matrix.one_step_WV(E, spec, lr=lr), ctx)
    fs = centred_logits(E, value_matrix.value_matrix_construction(E, spec.neighbourhood), ctx)
    assert torch.allclose(f1, lr / (n_deg * spec.V) * fs, atol=1e-12)
    # and the shift term moves every logit by the same amount
    _, shift = value_matrix.one_step_WV_parts(E, spec, lr=lr)
    model = OneLayerTransformer.from_weights(E, W_V=shift)
    with torch.no_grad():
        f = model(ctx)
    assert float((f - f[:, :1]).abs().max()) < 1e-12


def test_one_step_reading_fails_for_non_orthonormal_embeddings():
    spec = lca.TaskSpec(4, 8)
    E = gaussian(spec.V, 6, 6)
    ctx, _ = lca.sample(spec, 256, seed=6)
    f1 = centred_logits(E, value_matrix.one_step_WV(E, spec), ctx)
    fs = centred_logits(E, value_matrix.value_matrix_construction(E, spec.neighbourhood), ctx)
    scale = float((f1 * fs).sum() / (fs * fs).sum())
    assert float((f1 - scale * fs).abs().max()) > 0.05 * float(f1.abs().max())
    _, shift = value_matrix.one_step_WV_parts(E, spec)
    model = OneLayerTransformer.from_weights(E, W_V=shift)
    with torch.no_grad():
        f = model(ctx)
    assert float((f - f[:, :1]).abs().max()) > 1e-4  # not an equal shift any more


def test_one_step_with_noise_adds_a_penalty_on_context_tokens():
    """thm-one-step-wv (4)."""
    eps, m, L = 0.4, 4, 8
    spec = lca.TaskSpec(m, L, noise=eps)
    V = spec.V
    E = orthonormal(V, 7)
    ctx, _ = lca.sample(spec, 128, seed=7)
    c = torch.zeros(128, V, dtype=torch.float64).scatter_add_(
        1, ctx, torch.full(ctx.shape, 1 / L, dtype=torch.float64)
    )
    A = mask_of(spec).double()
    pred = (1 / V) * ((1 - eps) / m * c @ A.T - eps / (V - 1) * c)
    pred = pred - pred.mean(1, keepdim=True)
    f1 = centred_logits(E, value_matrix.one_step_WV(E, spec), ctx)
    assert torch.allclose(f1, pred, atol=1e-12)


# ---------------------------------------------------------------- probes


def test_matrix_cosine_and_truncation():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(6, 6, generator=g, dtype=torch.float64)
    assert value_matrix.matrix_cosine(A, 2.5 * A) == pytest.approx(1.0)
    assert value_matrix.matrix_cosine(A, -A) == pytest.approx(-1.0)
    E11, E22 = torch.zeros(3, 3), torch.zeros(3, 3)
    E11[0, 0] = E22[1, 1] = 1.0
    assert value_matrix.matrix_cosine(E11, E22) == 0.0
    U, S, Vh = torch.linalg.svd(A)
    for r in (1, 3, 6):
        T = value_matrix.truncate_rank(A, r)
        assert torch.linalg.matrix_rank(T) == r
        assert float((A - T).norm()) == pytest.approx(float(S[r:].norm()), abs=1e-10)
    B = torch.randn(6, 6, generator=g, dtype=torch.float64)
    manual = (
        value_matrix.truncate_rank(A, 2).flatten()
        @ value_matrix.truncate_rank(B, 2).flatten()
        / (value_matrix.truncate_rank(A, 2).norm() * value_matrix.truncate_rank(B, 2).norm())
    )
    assert value_matrix.matrix_cosine(A, B, rank=2) == pytest.approx(float(manual))
    assert value_matrix.cosine_to_degrees(0.0) == pytest.approx(90.0)
    batched = value_matrix.matrix_cosine(torch.stack([A, A]), torch.stack([A, -A]))
    assert batched == pytest.approx([1.0, -1.0])


def test_replacement_and_alignment_on_a_constructed_model():
    spec = lca.TaskSpec(4, 16, noise=0.2)
    E = orthonormal(spec.V, 1)
    W = value_matrix.value_matrix_construction(E, spec.neighbourhood)
    model = OneLayerTransformer.from_weights(E, W_V=W)
    rep = value_matrix.wv_replacement(model, spec, n=2000, seed=1)
    assert rep["trained"] == rep["constructed"] > 0.9
    scaled = OneLayerTransformer.from_weights(E.float(), W_V=3.0 * W.float())
    assert value_matrix.wv_alignment(scaled, spec, ranks=(None, 4))[None] == pytest.approx(1.0, abs=1e-6)
    # an unrelated value matrix: a different accuracy and a small cosine
    other = OneLayerTransformer.from_weights(E.float(), W_V=torch.eye(16))
    rep = value_matrix.wv_replacement(other, spec, n=2000, seed=1)
    assert rep["trained"] == 0.0 and rep["constructed"] > 0.9
    assert abs(value_matrix.wv_alignment(other, spec)[None]) < 0.5


@pytest.mark.slow
def test_trained_value_matrix_aligns_with_the_construction():
    """A short training run: the trained W_V can be swapped for W_V* with little loss, and the two
    are far from orthogonal (cosine of unrelated 16 x 16 matrices is about 0)."""
    torch.set_num_threads(1)
    spec = lca.TaskSpec(5, 64, noise=0.5)
    cfg = lca.TrainConfig(
        task=spec, d=16, steps=300, batch_size=128, lr=0.01, eval_every=0, n_eval=1024, device="cpu"
    )
    res = lca.sweep(cfg, seeds=(0, 1), progress=False)
    rep = value_matrix.wv_replacement(res.model, spec, n=2048, seed=3)
    cos = value_matrix.wv_alignment(res.model, spec)[None]
    for t, c, k in zip(rep["trained"], rep["constructed"], cos):
        assert t > 0.95
        assert c > t - 0.05
        assert k > 0.6


def pm1_model(m):
    E = value_matrix.pm1_embedding(m)
    return OneLayerTransformer.from_weights(
        E, W_V=value_matrix.value_matrix_construction(E, lca.hamming_sphere(1))
    )


def parity_flipped(m):
    """The +-1 code with every row multiplied by the parity (-1)^|z|: only characters of weight m - 1."""
    E = value_matrix.pm1_embedding(m)
    return E * (1 - 2 * (lca.LatentSpace(m).latents.sum(1) % 2)).double()[:, None]


@pytest.mark.parametrize("m", [3, 4, 5])
def test_construction_in_the_walsh_basis(m):
    """lem-wv-walsh: W_V* = (1/V) sum_s (m - 2|s|) u_s u_s^T for N_1 and any embedding; the +-1
    code gives ((m - 2) V / m) I_m, and its parity-flipped twin gives -((m - 2) V / m) I_m."""
    V = 2**m
    g = torch.Generator().manual_seed(m)
    W = torch.randn(V, 7, generator=g, dtype=torch.float64)
    t = torch.arange(V)
    weight = lca.latent.popcounts(m)
    H = (1 - 2 * (weight[t[:, None] & t[None, :]] % 2)).double()
    U = H @ W  # row s: u_s
    walsh = (U.T * (m - 2 * weight).double()) @ U / V
    brute = brute_construction(W, lca.hamming_sphere(1).mask(m))
    assert torch.allclose(walsh, brute, atol=1e-10)
    shares = value_matrix.walsh_weight_shares(W)
    assert float(shares.sum()) == pytest.approx(1.0)
    assert torch.allclose(
        shares, torch.zeros(m + 1, dtype=torch.float64).index_add_(0, weight, (U**2).sum(1)) / (U**2).sum()
    )
    for E, sign, w in ((value_matrix.pm1_embedding(m), 1, 1), (parity_flipped(m), -1, m - 1)):
        W_star = value_matrix.value_matrix_construction(E, lca.hamming_sphere(1))
        assert torch.allclose(W_star, sign * (m - 2) * V / m * torch.eye(m, dtype=torch.float64), atol=1e-10)
        assert value_matrix.walsh_weight_shares(E)[w] == pytest.approx(1.0)
    # a stacked ensemble gives one row of shares per member
    both = value_matrix.walsh_weight_shares(torch.stack([value_matrix.pm1_embedding(m), parity_flipped(m)]))
    assert both.shape == (2, m + 1) and float(both[0, 1]) == pytest.approx(1.0)


def test_spectra_count_m_for_the_pm1_code_and_2m_when_parity_is_added():
    """The +-1 code: m equal singular values (rank m). Both codes side by side in d = 2m (weights 1
    and m - 1, on which N_1 acts with |m - 2|): 2m significant singular values."""
    m = 5
    spec = lca.TaskSpec(m, 16)
    out = value_matrix.wv_spectra(pm1_model(m), spec)
    assert out["rank"] == m and out["cosine"] == pytest.approx(1.0)
    assert torch.allclose(out["constructed"][:m], torch.ones(m, dtype=torch.float64))
    E = torch.cat([value_matrix.pm1_embedding(m), 0.8 * parity_flipped(m)], 1)  # [V, 2m]
    W_star = value_matrix.value_matrix_construction(E, lca.hamming_sphere(1))
    model = OneLayerTransformer.from_weights(E, W_V=torch.eye(2 * m, dtype=torch.float64))
    out = value_matrix.wv_spectra(model, spec)
    assert out["rank"] == 2 * m
    assert out["constructed"][m:].tolist() == pytest.approx([0.64] * m)
    assert torch.allclose(torch.linalg.svdvals(W_star) / torch.linalg.svdvals(W_star)[0], out["constructed"])
    # W_V = I agrees with W_V* on the +-1 half and has the opposite sign on the parity half
    assert out["cosine"] < 1.0
    ranks = value_matrix.wv_spectra(model, spec, rel=0.7)["rank"]
    assert ranks == m  # 0.64 < 0.7: the weaker half no longer counts
    with pytest.raises(ValueError, match="rel"):
        value_matrix.wv_spectra(model, spec, rel=0.0)


def test_fuzzed_calls_name_their_parameter():
    """Issue 16's fuzz list for this module."""
    spec = lca.TaskSpec(3, 4)
    with pytest.raises(ValueError, match="W_E"):  # a W_E whose last dimension was cut
        value_matrix.memory_accuracy(
            spec, torch.eye(8, dtype=torch.float64)[:, :1], torch.eye(8, dtype=torch.float64)
        )
    with pytest.raises(TypeError, match="dtype"):
        value_matrix.pm1_embedding(3, dtype="float32")
    with pytest.raises(TypeError, match="ranks"):
        value_matrix.wv_alignment(pm1_model(3), spec, ranks=None)
    for flag in ("False", 2, None):
        with pytest.raises(TypeError, match="per_target"):
            value_matrix.wv_error_bound(spec, per_target=flag)
    assert value_matrix.wv_error_bound(spec, per_target=True).shape == (8,)


def load_bench():
    path = ROOT / "bench" / "04_budget.py"
    spec = importlib.util.spec_from_file_location("bench_04_budget", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, json.loads(module.OUT.read_text())


@pytest.mark.slow
def test_committed_budget_results_are_reproduced():
    """lca/data/value_matrix_budget.json (bench/04_budget.py), which chapter 4 loads: recompute a
    sample (2 of its 5 seeds, the first budget) and compare. Tolerances allow for another CPU's
    floating-point sums in training."""
    torch.set_num_threads(1)
    bench, stored = load_bench()
    seeds = (0, 1)
    run = bench.ablation_run(lca.TaskSpec(5, 64, noise=bench.NOISE), 300, 300, seeds)
    rec = stored["fig3a"]["L=64,m=5"]
    assert rec["steps"][0] == 300 and rec["steps"][-1] == 4800
    for variant in bench.VARIANTS:
        assert run[variant][0] == pytest.approx(rec[variant][0][: len(seeds)], abs=0.02)
    rep = bench.replacement_run(5, 8, 300, seeds)
    want = stored["replacement"]["steps=300,m=5,d=8"]
    for key in ("trained", "constructed", "cos_full", "cos_measured_rank"):
        assert rep[key] == pytest.approx(want[key][: len(seeds)], abs=0.03)
    assert all(abs(a - b) <= 1 for a, b in zip(rep["measured_rank"], want["measured_rank"]))
    # the file covers what the chapter reads
    assert stored["settings"]["seeds"] == [0, 1, 2, 3, 4]
    assert len(stored["replacement"]) == 2 * 4 * 5 and len(stored["fig3a"]) == 8 and len(stored["plain"]) == 4


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "call,name",
    [
        (
            lambda: value_matrix.value_matrix_construction(
                torch.zeros(5, 3), torch.zeros(5, 5, dtype=torch.bool)
            ),
            "W_E",
        ),
        (
            lambda: value_matrix.value_matrix_construction(
                torch.zeros(4, 3), torch.zeros(3, 3, dtype=torch.bool)
            ),
            "mask",
        ),
        (lambda: value_matrix.value_matrix_construction(torch.zeros(4, 3), "sphere"), "mask"),
        (lambda: value_matrix.pm1_embedding(0), "m"),
        (lambda: value_matrix.strict_correct(torch.zeros(3, 4), torch.tensor([0, 1, 7])), "targets"),
        (
            lambda: value_matrix.memory_accuracy(lca.TaskSpec(3, 4), torch.zeros(8, 3), torch.zeros(2, 2)),
            "W_V",
        ),
        (lambda: value_matrix.construction_accuracy(lca.TaskSpec(3, 4), n=0), "n"),
        (lambda: value_matrix.construction_accuracy("task"), "spec"),
        (lambda: value_matrix.wv_error_exact_sphere1(3, 0), "L"),
        (lambda: value_matrix.wv_error_exact(lca.TaskSpec(3, 4, noise=0.1)), "noise"),
        (
            lambda: value_matrix.wv_error_exact(lca.TaskSpec(5, 4, lca.hamming_ball(3)), max_support=8),
            "max_support",
        ),
        (lambda: value_matrix.identity_pm1_accuracy(0, 4), "m"),
        (lambda: value_matrix.one_step_WV(torch.zeros(4, 3), lca.TaskSpec(3, 4)), "W_E"),
        (lambda: value_matrix.one_step_WV(torch.zeros(8, 3), lca.TaskSpec(3, 4), lr=0.0), "lr"),
        (lambda: value_matrix.one_step_WV_sampling_rms(torch.zeros(8, 3), lca.TaskSpec(3, 4), 0), "n"),
        (lambda: enumerate_task(lca.TaskSpec(4, 8), max_rows=100), "max_rows"),
        (lambda: value_matrix.truncate_rank(torch.zeros(3, 3), 0), "rank"),
        (lambda: value_matrix.matrix_cosine(torch.zeros(3, 3), torch.zeros(2, 2)), "A and B"),
        (lambda: value_matrix.wv_replacement(OneLayerTransformer(8, 4), lca.TaskSpec(4, 4)), "spec"),
        (
            lambda: value_matrix.wv_alignment(OneLayerTransformer(8, 4), lca.TaskSpec(3, 4), ranks=(0,)),
            "ranks",
        ),
    ],
)
def test_bad_input_raises_naming_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ---------------------------------------------------------------- exercise checkers


def stub(*args):
    raise NotImplementedError


def _random_tie_error_by_enumeration(spec):
    """Exact error with uniformly random tie-breaking: enumerate every context (Fractions)."""
    ctxs, tgts, probs = enumerate_task(spec)
    A = spec.neighbourhood.mask(spec.m).long()
    total = 0.0
    for ctx, y, p in zip(ctxs, tgts, probs.tolist()):
        f = A @ torch.bincount(ctx, minlength=spec.V)  # integer multiples of the shares
        top = f == f.max()
        total += p * (1.0 - float(top[y]) / int(top.sum()))
    return total


@pytest.mark.parametrize("m,L", [(1, 3), (2, 3), (3, 1), (3, 2), (3, 4), (4, 3), (4, 5), (5, 3)])
def test_random_tie_error_formula_matches_enumeration(m, L):
    exact = _random_tie_error_by_enumeration(lca.TaskSpec(m, L))
    assert value_matrix.wv_error_random_ties_sphere1(m, L) == pytest.approx(exact, rel=1e-12, abs=1e-15)


def test_random_tie_error_formula_needs_its_hypotheses():
    # with noise, or with another neighbourhood, the formula no longer gives the error
    for spec in (lca.TaskSpec(3, 3, noise=0.3), lca.TaskSpec(3, 3, lca.hamming_ball(2))):
        exact = _random_tie_error_by_enumeration(spec)
        assert abs(value_matrix.wv_error_random_ties_sphere1(3, 3) - exact) > 1e-3
    # and random tie-breaking errs less than the strict rule (ties as errors) whenever ties occur
    for m, L in ((3, 4), (5, 6), (8, 8)):
        assert value_matrix.wv_error_random_ties_sphere1(m, L) < value_matrix.wv_error_exact_sphere1(m, L)


def test_hebbian_memory_and_its_expectation():
    g = torch.Generator().manual_seed(0)
    E = torch.randn(8, 5, generator=g, dtype=torch.float64)
    ctx = torch.randint(8, (6, 4), generator=g)
    y = torch.randint(8, (6,), generator=g)
    loop = sum(torch.outer(E[y[r]], E[ctx[r]].mean(0)) for r in range(6)) / 6
    assert torch.allclose(value_matrix.hebbian_value_matrix(E, ctx, y), loop, atol=1e-12)
    # E[W] = (1/V) W_E^T Pbar W_E, which is W_V* / (nV) in a noise-free regular task
    spec = lca.TaskSpec(4, 8)
    W_E = init_embedding(spec.V, spec.V, "orthonormal", torch.Generator().manual_seed(1), dtype=torch.float64)
    ctxs, tgts, probs = enumerate_task(lca.TaskSpec(4, 2))
    expected = value_matrix.value_matrix_construction(W_E, spec.neighbourhood) / (4 * spec.V)
    W = sum(
        p * value_matrix.hebbian_value_matrix(W_E, c[None], t[None]) for c, t, p in zip(ctxs, tgts, probs)
    )
    assert torch.allclose(W, expected, atol=1e-12)
    ctx_s, y_s = lca.sample(spec, 20_000, seed=3)
    err = float((value_matrix.hebbian_value_matrix(W_E, ctx_s, y_s) - expected).abs().max())
    assert err < 0.05 * float(expected.abs().max())


def test_adam_first_step_is_a_sign_step_and_matches_torch():
    g = torch.Generator().manual_seed(2)
    V, d, lr = 8, 6, 0.01
    E = torch.randn(V, d, generator=g, dtype=torch.float64)
    P = torch.rand(V, V, generator=g, dtype=torch.float64)
    P.fill_diagonal_(0.0)
    P = P / P.sum(1, keepdim=True)
    W = torch.zeros(d, d, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([W], lr=lr)
    H = P @ E  # E[h | y]: at W = 0 the gradient is linear in h, so the mean context suffices
    loss = torch.nn.functional.cross_entropy(H @ W.T @ E.T, torch.arange(V))
    loss.backward()
    opt.step()
    assert torch.allclose(W.detach(), value_matrix.adam_first_step(E, P, lr), rtol=1e-9, atol=1e-15)
    # one-hot embeddings, noise-free regular task: sign(C Pbar) = 2A - 11^T, the construction's predictions
    spec = lca.TaskSpec(4, 8)
    A = spec.neighbourhood.mask(4).double()
    W1 = value_matrix.adam_first_step(torch.eye(spec.V, dtype=torch.float64), A / 4, 1.0)
    assert torch.allclose(W1, 2 * A - 1, atol=1e-6)
    # a rotated orthonormal basis breaks it: Adam's sign step is not basis invariant
    Q = init_embedding(spec.V, spec.V, "orthonormal", torch.Generator().manual_seed(5), dtype=torch.float64)
    W2 = value_matrix.adam_first_step(Q, A / 4, 1.0)
    assert not torch.allclose(Q @ W2 @ Q.T, 2 * A - 1, atol=1e-2)


def test_check_hebbian_value_matrix():
    ref = value_matrix.hebbian_value_matrix
    assert value_matrix.check_hebbian_value_matrix(ref)
    assert not value_matrix.check_hebbian_value_matrix(lambda E, c, y: ref(E, c, y).T)
    assert not value_matrix.check_hebbian_value_matrix(lambda E, c, y: ref(E, c, y) * c.shape[1])
    assert not value_matrix.check_hebbian_value_matrix(lambda E, c, y: ref(E, c, y) * c.shape[0])
    res = value_matrix.check_hebbian_value_matrix(lambda E, c, y: ref(E, c, y).T)
    assert "wrong answer" in repr(res) and "expected" in repr(res)
    res = value_matrix.check_hebbian_value_matrix(stub)
    assert not res and "not implemented yet" in repr(res)


def test_check_sphere_error_random_ties():
    assert value_matrix.check_sphere_error_random_ties(value_matrix.wv_error_random_ties_sphere1)
    assert not value_matrix.check_sphere_error_random_ties(value_matrix.wv_error_exact_sphere1)
    # forgetting the one-token contexts, or breaking those ties 1/2 instead of (m-1)/m
    assert not value_matrix.check_sphere_error_random_ties(
        lambda m, L: math.comb(m, 2) * (2**L - 2) / 2 / m**L
    )
    assert not value_matrix.check_sphere_error_random_ties(
        lambda m, L: math.comb(m, 2) * (2**L - 2) / 2 / m**L + 0.5 * m / m**L
    )
    res = value_matrix.check_sphere_error_random_ties(value_matrix.wv_error_exact_sphere1)
    assert "wrong answer" in repr(res) and "m = " in repr(res)
    res = value_matrix.check_sphere_error_random_ties(stub)
    assert not res and "not implemented yet" in repr(res)


def test_check_adam_first_step():
    ref = value_matrix.adam_first_step
    assert value_matrix.check_adam_first_step(ref)

    def g(E, P):
        V = E.shape[0]
        return E.T @ (torch.eye(V, dtype=E.dtype) - 1.0 / V) @ P @ E / V

    assert value_matrix.check_adam_first_step(lambda E, P, lr: lr * torch.sign(g(E, P)))
    assert not value_matrix.check_adam_first_step(lambda E, P, lr: lr * g(E, P))  # the SGD step
    assert not value_matrix.check_adam_first_step(lambda E, P, lr: -lr * torch.sign(g(E, P)))
    assert not value_matrix.check_adam_first_step(lambda E, P, lr: lr * torch.sign(E.T @ P @ E))
    res = value_matrix.check_adam_first_step(lambda E, P, lr: lr * g(E, P))
    assert "wrong answer" in repr(res) and "lr = " in repr(res)
    res = value_matrix.check_adam_first_step(stub)
    assert not res and "not implemented yet" in repr(res)


# ---------------------------------------------------------------- figures


def test_plots_return_labelled_figures():
    import matplotlib.pyplot as plt

    figs = [
        value_matrix.plot_wv_example(torch.eye(4), torch.arange(4.0), 1, torch.tensor([0, 2])),
        value_matrix.plot_wv_error(
            [2, 4], {"a": {"exact": [0.5, 0.0], "bound": [1.0, 0.1], "monte_carlo": [0.4, 0.0]}}
        ),
        value_matrix.plot_wv_bars(
            (5, 6), {"L = 64": {"x": [[0.9, 0.8], [0.7, 0.75]], "y": [[0.5, 0.6], [0.4, 0.3]]}}
        ),
        value_matrix.plot_wv_replacement(
            [4, 8],
            {
                "m = 5": {
                    "trained": [[0.5, 0.6], [0.9, 0.95]],
                    "replaced": [[0.4, 0.5], [0.8, 0.9]],
                    "cosine": [[0.9, 0.8], [0.7, 0.6]],
                    "cosine, measured rank": [[0.9, 0.9], [0.8, 0.7]],
                }
            },
            {"W_V*": [1.0, 0.5, 0.05], "rank": {"m = 5": [[4, 4], [8, 9]]}},
        ),
        value_matrix.plot_wv_budget([300, 600], {"L = 64": {"m = 5": [[0.1, 0.2], [0.05, 0.1]]}}),
        value_matrix.plot_wv_random_embeddings([8, 16], {"m = 5": [[0.1, 0.2], [0.5, 0.6]]}, {"m = 5": 1.0}),
        value_matrix.plot_wv_construction(
            [2, 4],
            {"a": {"exact": [0.5, 0.0], "bound": [1.0, 0.1], "monte_carlo": [0.4, 0.0]}},
            [8, 16],
            {"m = 5": [[0.1, 0.2], [0.5, 0.6]]},
            {"m = 5": 1.0},
        ),
    ]
    for fig in figs:
        for ax in fig.axes:
            if ax.get_label() == "<colorbar>":
                continue
            assert ax.get_xlabel() and ax.get_ylabel()
        plt.close(fig)


# Issue 16: huge work refused at once, NaN refused, transposed embeddings caught.


def test_costly_closed_forms_refuse_large_arguments_at_once():
    with pytest.raises(ValueError, match="spec must have m <= 11"):
        value_matrix.wv_error_bound(lca.TaskSpec(12, 4))
    with pytest.raises(ValueError, match="L must be in 1..256"):
        value_matrix.identity_pm1_accuracy(16, 1000)
    assert 0.0 < value_matrix.wv_error_bound(lca.TaskSpec(8, 8)) <= 1.0
    assert 0.0 < value_matrix.identity_pm1_accuracy(3, 256) < 1.0


def test_nan_and_inf_inputs_are_refused():
    nan = torch.full((3, 3), float("nan"), dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64)
    spec = lca.TaskSpec(3, 4)
    E = torch.eye(8, dtype=torch.float64)
    bad_E = E.clone()
    bad_E[2, 1] = float("inf")
    for call, name in [
        (lambda: value_matrix.cosine_to_degrees(float("nan")), "cos"),
        (lambda: value_matrix.cosine_to_degrees(float("inf")), "cos"),
        (lambda: value_matrix.matrix_cosine(nan, eye), "A"),
        (lambda: value_matrix.matrix_cosine(eye, nan), "B"),
        (lambda: value_matrix.matrix_cosine(eye, nan, rank=1), "B"),
        (lambda: value_matrix.truncate_rank(nan, 1), "W"),
        (lambda: value_matrix.value_matrix_construction(bad_E, lca.hamming_sphere(1)), "W_E"),
        (lambda: value_matrix.memory_accuracy(spec, bad_E, torch.eye(8, dtype=torch.float64)), "W_E"),
        (lambda: value_matrix.memory_accuracy(spec, E, torch.full((8, 8), float("nan"))), "W_V"),
        (lambda: value_matrix.one_step_WV(bad_E, spec), "W_E"),
    ]:
        with pytest.raises(ValueError, match=name):
            call()
    assert value_matrix.cosine_to_degrees(1.0 + 1e-12) == 0.0  # rounding past 1 is still clipped


def test_transposed_embeddings_are_caught():
    """W_E [8, 4] passed as W_E.T [4, 8] was read as V = 4: an error where the task fixes V, a
    warning where only the family of the neighbourhood is known, nothing where V is known."""
    g = torch.Generator().manual_seed(0)
    W = torch.randn(8, 4, generator=g, dtype=torch.float64)
    spec = lca.TaskSpec(3, 4)
    for call in (
        lambda: value_matrix.construction_accuracy(spec, W.T, n=64),
        lambda: value_matrix.identity_accuracy(spec, W.T, n=64),
        lambda: value_matrix.memory_accuracy(spec, W.T, torch.eye(8, dtype=torch.float64), n=64),
        lambda: value_matrix.value_matrix_construction(W.T, lca.hamming_sphere(1), V=8),
    ):
        with pytest.raises(ValueError, match="W_E must have V=8 rows"):
            call()
    with pytest.warns(UserWarning, match=r"W_E must be \[V, d\] \(row = token\).*transposed"):
        value_matrix.value_matrix_construction(W.T, lca.hamming_sphere(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value_matrix.value_matrix_construction(W, lca.hamming_sphere(1))  # [V, d] with d < V
        value_matrix.value_matrix_construction(torch.randn(8, 12, dtype=torch.float64), lca.hamming_sphere(1))
        wide = value_matrix.constructed_model(spec, d=16)  # d > V, but V is known from the task
        value_matrix.value_matrix_construction(wide.W_E, spec.neighbourhood.mask(spec.m))  # V from A
        value_matrix.constructed_value_matrix(wide, spec)
