"""Tests of chapter 5: embedding geometry (lca.theory geometry section, lca.probes geometry section).

Every theorem is checked against an independent computation (brute-force enumeration over the
hypercube, torch.linalg eigen-decompositions, Monte Carlo through the model's forward pass) where
its hypotheses hold, and shown to fail where they do not.
"""

import itertools
import math
import warnings

import matplotlib
import pytest
import torch

import lca
from lca import embeddings

matplotlib.use("Agg")


# ------------------------------------------------------------------------- independent helpers
def bits(i, m):
    return [(i >> (m - 1 - a)) & 1 for a in range(m)]  # MSB first, as lca.latent


def brute_distances(m):
    V = 2**m
    return torch.tensor(
        [[sum(x != y for x, y in zip(bits(i, m), bits(j, m))) for j in range(V)] for i in range(V)],
        dtype=torch.long,
    )


def brute_character(s, m):
    sb = bits(s, m)
    return torch.tensor(
        [(-1.0) ** sum(a * b for a, b in zip(sb, bits(z, m))) for z in range(2**m)], dtype=torch.float64
    )


def brute_krawtchouk(k, w, m):
    """Sum of (-1)^(s.u) over all u of weight k, for the s whose first w bits are 1."""
    s = [1] * w + [0] * (m - w)
    total = 0
    for u in itertools.product((0, 1), repeat=m):
        if sum(u) == k:
            total += (-1) ** sum(a * b for a, b in zip(s, u))
    return total


def brute_profile(G, m):
    D = brute_distances(m)
    return torch.stack([G[D == k].mean() for k in range(m + 1)])


# ------------------------------------------------------------------------------ Krawtchouk
@pytest.mark.parametrize("m", [1, 2, 3, 5, 6])
def test_krawtchouk_matches_enumeration(m):
    for k in range(m + 1):
        for w in range(m + 1):
            assert embeddings.krawtchouk(k, w, m) == brute_krawtchouk(k, w, m)
    K = embeddings.krawtchouk_matrix(m)
    assert K.shape == (m + 1, m + 1) and K.dtype == torch.long
    assert K[1].tolist() == [m - 2 * w for w in range(m + 1)]
    assert K[:, 0].tolist() == [math.comb(m, k) for k in range(m + 1)]


@pytest.mark.parametrize("m", [3, 6, 9])
def test_krawtchouk_identities(m):
    for k in range(m + 1):
        for w in range(m + 1):
            # symmetry and reflection (lem-geo-krawtchouk-identities)
            assert math.comb(m, k) * embeddings.krawtchouk(w, k, m) == math.comb(
                m, w
            ) * embeddings.krawtchouk(k, w, m)
            assert embeddings.krawtchouk(k, m - w, m) == (-1) ** k * embeddings.krawtchouk(k, w, m)


# ----------------------------------------------------------- Krawtchouk spectrum of Hamming kernels
@pytest.mark.parametrize("m", [1, 2, 3, 4, 6, 7])
def test_hamming_kernel_spectrum_matches_eigvalsh(m):
    g = torch.Generator().manual_seed(10 + m)
    prof = torch.randn(m + 1, generator=g, dtype=torch.float64)
    G = embeddings.hamming_kernel(prof, m)
    D = brute_distances(m)
    assert torch.equal(G, prof[D])
    lam, mult = embeddings.hamming_kernel_spectrum(prof, m)
    assert mult.tolist() == [math.comb(m, w) for w in range(m + 1)]
    want = torch.linalg.eigvalsh(G).flip(0)
    got = embeddings.expand_spectrum(lam, mult)
    assert torch.allclose(got, want, atol=1e-10 * max(1.0, float(want.abs().max())))


def test_characters_are_eigenvectors():
    m = 5
    prof = torch.tensor([2.0, -1.0, 0.5, 3.0, -0.25, 1.5], dtype=torch.float64)
    G = embeddings.hamming_kernel(prof, m)
    lam, _ = embeddings.hamming_kernel_spectrum(prof, m)
    H = embeddings.walsh_characters(m)
    for s in range(2**m):
        chi = brute_character(s, m)
        assert torch.equal(H[:, s], chi)
        w = sum(bits(s, m))
        assert torch.allclose(G @ chi, lam[w] * chi, atol=1e-12)
    assert torch.allclose(H.T @ H, 2**m * torch.eye(2**m, dtype=torch.float64))


def test_spectrum_inverse_and_reflection():
    m = 6
    g = torch.Generator().manual_seed(3)
    prof = torch.randn(m + 1, generator=g, dtype=torch.float64)
    lam, mult = embeddings.hamming_kernel_spectrum(prof, m)
    back = torch.tensor(
        [
            sum(mult[w] * lam[w] * embeddings.krawtchouk(k, w, m) for w in range(m + 1))
            / (2**m * math.comb(m, k))
            for k in range(m + 1)
        ],
        dtype=torch.float64,
    )
    assert torch.allclose(back, prof, atol=1e-12)
    flipped = prof * torch.tensor([(-1.0) ** k for k in range(m + 1)], dtype=torch.float64)
    lam_f, _ = embeddings.hamming_kernel_spectrum(flipped, m)
    assert torch.allclose(lam_f, lam.flip(0), atol=1e-12)
    P = torch.diag(brute_character(2**m - 1, m))  # the parity character
    assert torch.allclose(embeddings.hamming_kernel(flipped, m), P @ embeddings.hamming_kernel(prof, m) @ P)


def test_spectrum_prediction_fails_off_hamming_kernels():
    """A symmetric perturbation that does not depend on Hamming distance only: the Krawtchouk
    eigenvalues of the (new) mean profile no longer equal the eigenvalues, while the averaged
    statements of lem-geo-profile-projection still hold."""
    m = 5
    gen = torch.Generator().manual_seed(8)
    G0 = embeddings.affine_gram(m, 4.0, 1.0)
    Pert = torch.randn(2**m, 2**m, generator=gen, dtype=torch.float64)
    G = G0 + 0.5 * (Pert + Pert.T)
    prof = brute_profile(G, m)
    lam, mult = embeddings.hamming_kernel_spectrum(prof, m)
    pred = embeddings.expand_spectrum(lam, mult)
    true = torch.linalg.eigvalsh(G).flip(0)
    assert float((pred - true).abs().max()) > 1.0  # the prediction breaks
    assert math.isclose(float(pred.sum()), float(torch.trace(G)), rel_tol=1e-10)
    rayleigh = torch.zeros(m + 1, dtype=torch.float64)
    for s in range(2**m):
        chi = brute_character(s, m)
        rayleigh[sum(bits(s, m))] += chi @ G @ chi / 2**m / math.comb(m, sum(bits(s, m)))
    assert torch.allclose(rayleigh, lam, atol=1e-10)
    assert torch.allclose(embeddings.weight_rayleigh(G), lam, atol=1e-10)
    # the mean profile is the closest Hamming kernel
    best = float(torch.linalg.norm(G - embeddings.hamming_kernel(prof, m)))
    for k in range(m + 1):
        bumped = prof.clone()
        bumped[k] += 0.01
        assert float(torch.linalg.norm(G - embeddings.hamming_kernel(bumped, m))) > best


def test_profile_of_a_gram_matrix_is_psd():
    g = torch.Generator().manual_seed(4)
    for m, d in [(3, 2), (5, 3), (6, 20)]:
        W = torch.randn(2**m, d, generator=g, dtype=torch.float64)
        lam, _ = embeddings.hamming_kernel_spectrum(brute_profile(W @ W.T, m), m)
        assert float(lam.min()) >= -1e-10
    # but a profile need not be PSD: the eigenvalue criterion detects it
    lam, _ = embeddings.hamming_kernel_spectrum([0.0, 1.0, 0.0], 2)
    G = embeddings.hamming_kernel([0.0, 1.0, 0.0], 2)
    assert float(lam.min()) < 0 and float(torch.linalg.eigvalsh(G).min()) < 0


# ------------------------------------------------------------------------------- the affine law
@pytest.mark.parametrize("m", [1, 2, 4, 6])
def test_distance_factorisation(m):
    Z = torch.tensor([bits(i, m) for i in range(2**m)], dtype=torch.float64)
    z = Z.sum(1, keepdim=True)
    one = torch.ones_like(z)
    assert torch.equal(z @ one.T + one @ z.T - 2 * Z @ Z.T, brute_distances(m).double())


@pytest.mark.parametrize("m", [1, 2, 3, 5, 7])
def test_affine_rank_and_spectrum(m):
    cases = [
        (2.0, 1.0),
        (m / 2, 1.0),
        (1.0, 2.0 / m),
        (0.0, 1.0),
        (1.0, 0.0),
        (0.0, 0.0),
        (-1.0, 0.5),
        (5.0, -1.0),
    ]
    for b0, b1 in cases:
        G = embeddings.affine_gram(m, b0, b1)
        assert torch.equal(G, b0 - b1 * brute_distances(m).double())
        r = int(torch.linalg.matrix_rank(G))
        assert r == embeddings.affine_gram_rank(m, b0, b1)
        assert r <= m + 1
        lam0, lam1 = embeddings.affine_gram_spectrum(m, b0, b1)
        want = sorted([lam0] + [lam1] * m + [0.0] * (2**m - m - 1), reverse=True)
        got = torch.linalg.eigvalsh(G).flip(0)
        assert torch.allclose(got, torch.tensor(want, dtype=torch.float64), atol=1e-9)
    assert embeddings.affine_gram_rank(m, 2.0 + m, 1.0) == m + 1  # generic: m + 1
    assert embeddings.affine_gram_rank(m, m / 2, 1.0) == m  # centred: m


def test_affine_bound_fails_without_the_affine_law():
    """A quadratic profile is not affine: its rank exceeds m + 1 (the theorem's hypothesis
    matters), and the excess is exactly C(m, 2) from the weight-2 characters."""
    m = 6
    prof = [3.0 - k + 0.2 * k * k for k in range(m + 1)]
    r = int(torch.linalg.matrix_rank(embeddings.hamming_kernel(prof, m)))
    assert r > m + 1
    lam, mult = embeddings.hamming_kernel_spectrum(prof, m)
    assert r == int(sum(mult[w] for w in range(m + 1) if abs(float(lam[w])) > 1e-9))


@pytest.mark.parametrize("m", [4, 6])
def test_polynomial_profiles_have_low_rank(m):
    """Exercise ex-geo-polynomial: a profile that is a polynomial of degree p in k has no energy
    on the weights w > p, so rank G_g <= sum_{w <= p} C(m, w) (equality for a generic polynomial);
    a polynomial of degree p + 1 (the hypothesis removed) breaks the bound. For the quadratic
    b0 - b1 k + b2 k^2: lambda_0 = 2^m (b0 - m b1 / 2 + m (m + 1) b2 / 4),
    lambda_1 = 2^(m-1) (b1 - m b2), lambda_2 = 2^(m-1) b2."""
    g = torch.Generator().manual_seed(77)
    D = brute_distances(m).double()
    for p in range(m):
        coef = torch.randn(p + 2, generator=g, dtype=torch.float64)
        k = torch.arange(m + 1, dtype=torch.float64)
        for degree in (p, p + 1):
            prof = sum(coef[j] * k**j for j in range(degree + 1))
            G = prof[D.long()]
            eig = torch.linalg.eigvalsh(G)
            rank = int((eig.abs() > 1e-8 * eig.abs().max()).sum())
            bound = sum(math.comb(m, w) for w in range(p + 1))
            lam = torch.tensor(
                [sum(float(prof[j]) * brute_krawtchouk(j, w, m) for j in range(m + 1)) for w in range(m + 1)]
            )
            if degree == p:
                assert rank == bound
                assert lam[p + 1 :].abs().max() < 1e-8 * lam.abs().max()
            else:
                assert rank > bound
                assert abs(float(lam[p + 1])) > 1e-6
    b0, b1, b2 = 2.0, 0.7, 0.3
    lam, _ = embeddings.hamming_kernel_spectrum([b0 - b1 * j + b2 * j * j for j in range(m + 1)], m)
    want = [2**m * (b0 - m * b1 / 2 + m * (m + 1) * b2 / 4), 2 ** (m - 1) * (b1 - m * b2), 2 ** (m - 1) * b2]
    assert torch.allclose(lam[:3], torch.tensor(want, dtype=torch.float64), atol=1e-9)
    assert lam[3:].abs().max() < 1e-9


def test_centred_code_and_affine_embedding():
    m = 5
    Z = torch.tensor([bits(i, m) for i in range(2**m)], dtype=torch.float64)
    E = (2 * Z - 1) / math.sqrt(m)
    assert torch.allclose(E @ E.T, embeddings.affine_gram(m, 1.0, 2.0 / m))
    assert int(torch.linalg.matrix_rank(E @ E.T)) == m
    for b0, b1 in [(3.0, 1.0), (2.5, 1.0), (1.0, 0.0), (10.0, 0.5)]:
        E = embeddings.affine_embedding(m, b0, b1)
        assert E.shape == (2**m, m + 1)
        assert torch.allclose(E @ E.T, embeddings.affine_gram(m, b0, b1), atol=1e-12)
    # not a Gram matrix -> refused, and indeed not PSD
    with pytest.raises(ValueError, match="b0"):
        embeddings.affine_embedding(m, 2.0, 1.0)
    assert float(torch.linalg.eigvalsh(embeddings.affine_gram(m, 2.0, 1.0)).min()) < 0
    with pytest.raises(ValueError, match="b1"):
        embeddings.affine_embedding(m, 2.0, -1.0)


# -------------------------------------------------------------------------------------- probes
def test_gram_profile_matches_loops():
    m, d = 4, 3
    g = torch.Generator().manual_seed(1)
    W = torch.randn(2**m, d, generator=g, dtype=torch.float64)
    prof = embeddings.gram_profile(W)
    D = brute_distances(m)
    G = W @ W.T
    for k in range(m + 1):
        vals = G[D == k]
        assert int(prof.count[k]) == vals.numel() == 2**m * math.comb(m, k)
        assert math.isclose(float(prof.mean[k]), float(vals.mean()), rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(float(prof.std[k]), float(vals.std()), rel_tol=1e-9, abs_tol=1e-12)
    # ensembles give the same numbers member by member; a model is accepted too
    W2 = torch.stack([W, 2 * W]).float()
    pe = embeddings.gram_profile(W2)
    assert pe.mean.shape == (2, m + 1)
    assert torch.allclose(pe.mean[1], 4 * embeddings.gram_profile(W.float()).mean, rtol=1e-6)
    model = lca.OneLayerTransformer.from_weights(W.float())
    assert torch.allclose(embeddings.gram_profile(model).mean, prof.mean, rtol=1e-5)
    # the affine code has zero spread
    assert float(embeddings.gram_profile(embeddings.affine_embedding(m, 3.0, 1.0)).std.abs().max()) < 1e-12


def test_affine_fit_matches_least_squares_on_pairs():
    m, d = 4, 5
    g = torch.Generator().manual_seed(2)
    W = torch.randn(2**m, d, generator=g, dtype=torch.float64) + 0.3
    D = brute_distances(m).flatten().double()
    y = (W @ W.T).flatten()
    for parity in (False, True):
        cols = [torch.ones_like(D), -D] + ([(-1.0) ** D] if parity else [])
        X = torch.stack(cols, 1)
        beta = torch.linalg.lstsq(X, y[:, None]).solution.flatten()
        r2 = 1 - float(((y - X @ beta) ** 2).sum() / ((y - y.mean()) ** 2).sum())
        fit = embeddings.affine_fit(W, parity=parity)
        assert math.isclose(fit.b0, float(beta[0]), abs_tol=1e-9)
        assert math.isclose(fit.b1, float(beta[1]), abs_tol=1e-9)
        assert math.isclose(fit.r2, r2, abs_tol=1e-9)
        if parity:
            assert math.isclose(fit.c, float(beta[2]), abs_tol=1e-9)
    exact = embeddings.affine_fit(embeddings.affine_embedding(5, 4.0, 0.75))
    assert math.isclose(exact.b0, 4.0, abs_tol=1e-9) and math.isclose(exact.b1, 0.75, abs_tol=1e-9)
    assert math.isclose(exact.r2, 1.0, abs_tol=1e-9) and math.isclose(exact.r2_profile, 1.0, abs_tol=1e-9)


def test_spectrum_gap_and_weight_shares():
    g = torch.Generator().manual_seed(6)
    W = torch.randn(32, 7, generator=g, dtype=torch.float64)
    ev = embeddings.embedding_spectrum(W)
    assert torch.allclose(ev, torch.linalg.svdvals(W) ** 2, rtol=1e-10)
    assert math.isclose(float(embeddings.eigen_gap(ev, 2)), float(ev[1] / ev[2]))
    # the affine code: all energy on weights 0 and 1, and an infinite gap after m + 1
    E = embeddings.affine_embedding(5, 4.0, 1.0)
    ray, share = embeddings.weight_spectrum(E)
    lam, _ = embeddings.hamming_kernel_spectrum([4.0 - k for k in range(6)], 5)
    assert torch.allclose(ray, lam, atol=1e-9)
    assert math.isclose(float(share[:2].sum()), 1.0, abs_tol=1e-12)
    assert math.isclose(float(share.sum()), 1.0, abs_tol=1e-12)
    # a random matrix: shares match the isotropic C(m, w) / V only on average, but sum to 1
    _, share_r = embeddings.weight_spectrum(W)
    assert math.isclose(float(share_r.sum()), 1.0, abs_tol=1e-12)


def _brute_r2(y, X):
    beta = torch.linalg.lstsq(X, y[:, None]).solution.flatten()
    return 1 - float(((y - X @ beta) ** 2).sum() / ((y - y.mean()) ** 2).sum()), X @ beta


def test_weight_variance_is_the_least_squares_fit_of_a_law():
    """cor-geo-variance: the shares and the remainder sum to 1, the remainder is the residual of the
    mean-profile kernel, and the R^2 of a law spanned by K_w(k), w in W, equals the sum of its
    shares: checked against lstsq over all V^2 pairs for the affine and the parity-twisted law, on a
    non-symmetric matrix that is no Hamming kernel (its remainder is large)."""
    m = 4
    g = torch.Generator().manual_seed(21)
    D = brute_distances(m).double()
    M = torch.randn(2**m, 2**m, generator=g, dtype=torch.float64) + torch.cos(D) * 3 + (-1.0) ** D
    wv = embeddings.weight_variance(M)
    assert math.isclose(float(wv.share.sum() + wv.remainder), 1.0, abs_tol=1e-12)
    assert float(wv.share[0]) == 0.0
    kernel = embeddings.hamming_kernel(brute_profile(M, m), m)
    ss = float(((M - M.mean()) ** 2).sum())
    assert math.isclose(float(wv.remainder), float(((M - kernel) ** 2).sum()) / ss, rel_tol=1e-10)
    assert float(wv.remainder) > 0.1
    y, k = M.flatten(), D.flatten()
    affine = torch.stack([torch.ones_like(k), k], 1)
    twisted = torch.stack([torch.ones_like(k), k, (-1.0) ** k, (-1.0) ** k * k], 1)
    for weights, X in (((0, 1), affine), (embeddings.twisted_weights(m), twisted)):
        r2, fitted = _brute_r2(y, X)
        assert math.isclose(float(wv.r2(weights)), r2, abs_tol=1e-10)
        assert math.isclose(float(wv.r2_profile(weights)), r2 / (1 - float(wv.remainder)), rel_tol=1e-10)
        prof = embeddings.weight_profile(M, weights)
        assert torch.allclose(prof[D.long()].flatten(), fitted, atol=1e-9)
    assert torch.allclose(embeddings.weight_profile(M, range(m + 1)), brute_profile(M, m), atol=1e-12)
    # a Gram matrix: the affine share is affine_fit's R^2; batches give one entry per member
    W = torch.randn(2**m, 3, generator=g, dtype=torch.float64)
    G = W @ W.T
    assert math.isclose(
        float(embeddings.weight_variance(G).r2((0, 1))), embeddings.affine_fit(W).r2, abs_tol=1e-10
    )
    both = embeddings.weight_variance(torch.stack([G, M]))
    assert both.share.shape == (2, m + 1) and torch.allclose(both.remainder[1], wv.remainder)
    # a parity-twisted Hamming kernel: no remainder, the twisted law fits exactly, the affine does not
    law = embeddings.hamming_kernel([5.0 - k + (-1) ** k * (2.0 - 0.5 * k) for k in range(m + 1)], m)
    wl = embeddings.weight_variance(law)
    assert float(wl.remainder) < 1e-12
    assert math.isclose(float(wl.r2(embeddings.twisted_weights(m))), 1.0, abs_tol=1e-12)
    assert float(wl.r2((0, 1))) < 0.9
    # a constant matrix has no variance: all zero, no NaN
    flat = embeddings.weight_variance(torch.ones(8, 8, dtype=torch.float64))
    assert float(flat.share.abs().sum() + flat.remainder) == 0.0


def test_geometry_summary_of_constructed_models():
    """The affine code with W_V = I: no non-Hamming part, the affine law explains everything, the
    association matrix is positive; with W_V = -I it is negative (indefinite share 1)."""
    m = 5
    E = embeddings.affine_embedding(m, 4.0, 1.0)
    d = E.shape[1]
    model = lca.OneLayerTransformer.from_weights(
        torch.stack([E, E]), W_V=torch.stack([torch.eye(d), -torch.eye(d)]).double()
    )
    plus, minus = embeddings.geometry_summary(model)
    for s in (plus, minus):
        assert s["remainder"] < 1e-9 and s["assoc_remainder"] < 1e-9
        assert math.isclose(s["r2_affine"], 1.0, abs_tol=1e-9) and math.isclose(
            s["r2p_twisted"], 1.0, abs_tol=1e-9
        )
        assert len(s["profile"]) == m + 1 and math.isclose(s["profile"][1], 3.0 / 4.0, abs_tol=1e-9)
        assert len(s["spectrum"]) == d
    assert plus["indefinite"] < 1e-12 and math.isclose(minus["indefinite"], 1.0, abs_tol=1e-12)
    single = embeddings.geometry_summary(model.member(0))
    assert len(single) == 1 and math.isclose(single[0]["r2_affine"], 1.0, abs_tol=1e-9)


def test_geometry_config_builds_the_stated_setting():
    cfg = embeddings.geometry_config(
        {"m": 5, "d": 8, "noise": 0.5, "neighbourhood": "ball2", "tied": False}, 40
    )
    assert (cfg.task.m, cfg.task.L, cfg.task.noise, cfg.d, cfg.steps, cfg.lr, cfg.tied) == (
        5,
        64,
        0.5,
        8,
        40,
        0.01,
        False,
    )
    assert cfg.task.neighbourhood == lca.hamming_ball(2) and cfg.eval_every == 5
    assert embeddings.geometry_config({"m": 5, "d": 8}, 40).task == lca.TaskSpec(m=5, L=64)


def test_stored_geometry_study_reproduces():
    """bench/05_trained_geometry.py's stored results: every setting at both budgets with 5 seeds of
    both variants is there, and one stored sample (m = 6, d = 32, 800 steps, seed 0, both variants)
    is retrained here and agrees with the file (trained numbers, so at a tolerance)."""
    study = embeddings.load_geometry_sweep()
    runs = study["runs"]
    for name in study["settings"]:
        for steps in study["budgets"]:
            got = {(r["variant"], r["seed"]) for r in runs if r["setting"] == name and r["steps"] == steps}
            assert got == {(v, s) for v in study["variants"] for s in study["seeds"]}, (name, steps)
    name, steps = "m = 6, d = 32", 800
    cfg = embeddings.geometry_config(study["settings"][name], steps)
    res = lca.sweep(cfg, seeds=(0,), variants=study["variants"], progress=False)
    for summary, (variant, seed) in zip(embeddings.geometry_summary(res.model), res.labels):
        (stored,) = [
            r
            for r in runs
            if (r["setting"], r["steps"], r["variant"], r["seed"]) == (name, steps, variant, seed)
        ]
        for key in ("remainder", "assoc_remainder", "r2_affine", "r2_twisted", "r2p_affine", "r2p_twisted"):
            assert abs(summary[key] - stored[key]) < 0.03, (variant, key, summary[key], stored[key])
        assert max(abs(a - b) for a, b in zip(summary["profile"], stored["profile"])) < 0.05
        top = [b / stored["spectrum"][0] for b in stored["spectrum"][:12]]
        assert max(abs(a / summary["spectrum"][0] - b) for a, b in zip(summary["spectrum"][:12], top)) < 0.05
    with pytest.raises(FileNotFoundError, match="bench/05_trained_geometry.py"):
        embeddings.load_geometry_sweep("/nonexistent/trained_geometry.json")


def test_association_matrix_is_the_single_token_logit():
    g = torch.Generator().manual_seed(9)
    V, d = 16, 6
    W_E = torch.randn(V, d, generator=g)
    W_V = torch.randn(d, d, generator=g)
    model = lca.OneLayerTransformer.from_weights(W_E, W_V=W_V, device="cpu")
    M = embeddings.association_matrix(model)
    ctx = torch.arange(V)[:, None]  # contexts of length 1: x = 0..V-1
    logits = model(ctx).double()  # [V(x), V(k)]
    assert torch.allclose(M, logits.T, atol=1e-4)
    ident = lca.OneLayerTransformer.from_weights(W_E, device="cpu")
    assert torch.allclose(embeddings.association_matrix(ident), embeddings.gram_matrix(W_E), atol=1e-5)


# ---------------------------------------------------------------- context spectrum and the margin
@pytest.mark.parametrize(
    "nb,noise", [(lca.hamming_sphere(1), 0.0), (lca.hamming_ball(2), 0.0), (lca.hamming_sphere(2), 0.3)]
)
def test_context_spectrum_diagonalises_the_law(nb, noise):
    spec = lca.TaskSpec(m=5, L=4, neighbourhood=nb, noise=noise)
    mu = embeddings.context_spectrum(spec)
    P = spec.context_law()
    for s in range(2**5):
        chi = brute_character(s, 5)
        assert torch.allclose(P @ chi, mu[sum(bits(s, 5))] * chi, atol=1e-12)
    if nb == lca.hamming_sphere(1) and noise == 0:
        assert torch.allclose(mu, torch.tensor([1 - 2 * w / 5 for w in range(6)], dtype=torch.float64))


def test_context_spectrum_refuses_non_hamming_laws():
    with pytest.raises(ValueError, match="Hamming"):
        embeddings.context_spectrum(lca.TaskSpec(m=4, L=3, neighbourhood=lca.cluster(2)))


def test_margin_identity_brute_force_and_monte_carlo():
    m = 4
    spec = lca.TaskSpec(m=m, L=6, noise=0.2)
    g = torch.Generator().manual_seed(11)
    M = torch.randn(2**m, 2**m, generator=g, dtype=torch.float64)
    F = spec.context_law() @ M.T  # F[y, k] = sum_x P[y, x] M[k, x]
    lhs = float(F.diagonal().mean() - F.mean())
    rhs = float(
        embeddings.margin_by_weight(embeddings.context_spectrum(spec), embeddings.weight_rayleigh(M)).sum()
    )
    assert math.isclose(lhs, rhs, rel_tol=1e-10, abs_tol=1e-12)
    # Monte Carlo through the model with uniform attention: mean logits given y are F[y, :]
    W_E = torch.randn(2**m, 5, generator=g)
    W_V = torch.randn(5, 5, generator=g)
    model = lca.OneLayerTransformer.from_weights(W_E, W_V=W_V, device="cpu")
    ctx, y = lca.sample(spec, 60000, seed=3)
    with torch.no_grad():
        logits = model(ctx).double()
    F_model = spec.context_law() @ embeddings.association_matrix(model).T
    for target in (0, 5, 11):
        sel = y == target
        est = logits[sel].mean(0)
        se = logits[sel].std(0) / math.sqrt(int(sel.sum()))
        assert bool(((est - F_model[target]).abs() < 5 * se + 1e-6).all())


# --------------------------------------------------------------------------- trained models
def test_training_geometry_follows_the_neighbourhood_spectrum():
    """Small version of the chapter's experiment (m = 5, d = 8 < V = 32): W_V = I gives a more
    affine profile than a trained W_V, the trained W_V's association takes the sign of mu_w on the
    strong weights (|mu_w| >= 0.6, parity included), W_V = I stays non-negative."""
    spec = lca.TaskSpec(m=5, L=32)
    base = lca.TrainConfig(task=spec, d=8, steps=300, batch_size=128, lr=0.01, eval_every=0, device="cpu")
    res = lca.sweep(
        base, seeds=(0,), progress=False, variants={"tr": {}, "id": {"train_V": False, "WV_init": "identity"}}
    )
    fit = embeddings.affine_fit(res.model)
    assert fit.r2_profile[1] > fit.r2_profile[0]
    mu = embeddings.context_spectrum(spec)
    nu = embeddings.weight_rayleigh(embeddings.association_matrix(res.model))
    strong = mu.abs() >= 0.6
    strong[0] = False
    assert bool((torch.sign(nu[0][strong]) == torch.sign(mu[strong])).all())
    assert float(nu[1].min()) >= -1e-6 * float(nu[1].abs().max())


def test_frozen_overparameterised_embeddings_have_a_flat_profile():
    spec = lca.TaskSpec(m=4, L=16)
    res = lca.fit(
        lca.TrainConfig(
            task=spec, d=64, steps=150, batch_size=128, train_E=False, eval_every=0, device="cpu"
        ),
        progress=False,
    )
    prof = embeddings.gram_profile(res.model)
    assert float(prof.mean[1:].abs().max()) < 0.1 * float(prof.mean[0])
    assert embeddings.affine_fit(res.model).r2 < 0.2


# ---------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "call,name",
    [
        (lambda: embeddings.krawtchouk(5, 0, 3), "k"),
        (lambda: embeddings.krawtchouk(0, -1, 3), "w"),
        (lambda: embeddings.krawtchouk(0, 0, 0), "m"),
        (lambda: embeddings.hamming_kernel_spectrum([1.0, 2.0], 3), "g"),
        (lambda: embeddings.hamming_kernel([1.0, float("nan")], 1), "g"),
        (lambda: embeddings.hamming_kernel("abc", 2), "g"),
        (lambda: embeddings.affine_gram(0, 1.0, 1.0), "m"),
        (lambda: embeddings.affine_gram(3, float("inf"), 1.0), "b0"),
        (lambda: embeddings.affine_gram_rank(3, 1.0, "x"), "b1"),
        (lambda: embeddings.walsh_characters(13), "m"),
        (lambda: embeddings.expand_spectrum([1.0, 2.0], [1]), "multiplicities"),
        (lambda: embeddings.context_spectrum("N_1"), "spec"),
        (lambda: embeddings.margin_by_weight([1.0, 0.5], [1.0]), "nu"),
        (lambda: embeddings.gram_profile(torch.zeros(3, 2)), "W_E"),
        (lambda: embeddings.gram_profile([[1.0]]), "W_E"),
        (lambda: embeddings.gram_profile(torch.zeros(4)), "W_E"),
        (lambda: embeddings.affine_fit(torch.zeros(4, 2), parity="yes"), "parity"),
        (lambda: embeddings.eigen_gap(torch.ones(4), 4), "k"),
        (lambda: embeddings.weight_rayleigh(torch.zeros(4, 3)), "M"),
        (lambda: embeddings.association_matrix(torch.zeros(4, 4)), "model"),
        # issue 16: fuzzed calls (str, None, NaN, huge or too few entries) name their parameter
        (lambda: embeddings.expand_spectrum("abc", [1]), "eigenvalues"),
        (lambda: embeddings.expand_spectrum(None, [1]), "eigenvalues"),
        (lambda: embeddings.expand_spectrum([float("nan")], [1]), "eigenvalues"),
        (lambda: embeddings.expand_spectrum([1.0], None), "multiplicities"),
        (lambda: embeddings.expand_spectrum([1.0], "x"), "multiplicities"),
        (lambda: embeddings.expand_spectrum([1.0], [1.5]), "multiplicities"),
        (lambda: embeddings.expand_spectrum([1.0, 2.0], [10**6, 10**6]), "multiplicities"),
        (lambda: embeddings.eigen_gap("abc", 1), "eigenvalues"),
        (lambda: embeddings.eigen_gap(None, 1), "eigenvalues"),
        (lambda: embeddings.eigen_gap(torch.ones(1), 2), "eigenvalues"),
        (lambda: embeddings.eigen_gap(torch.tensor([1.0, float("nan")]), 1), "eigenvalues"),
        (lambda: embeddings.eigen_gap(torch.tensor([1.0, -1.0]), 1), "eigenvalues"),
        (lambda: embeddings.margin_by_weight("ab", [1.0, 2.0]), "mu"),
        (lambda: embeddings.margin_by_weight(None, [1.0, 2.0]), "mu"),
        (lambda: embeddings.margin_by_weight([1.0, float("nan")], [1.0, 2.0]), "mu"),
        (lambda: embeddings.margin_by_weight([1.0, 2.0], "ab"), "nu"),
        (lambda: embeddings.margin_by_weight([1.0, 2.0], None), "nu"),
        (lambda: embeddings.margin_by_weight([1.0, 2.0], [float("nan"), 1.0]), "nu"),
        (lambda: embeddings.affine_embedding(3, 1.0, 1e12), "b1"),
        (lambda: embeddings.affine_embedding(3, 1.0, 1e12), "b0"),
        (lambda: embeddings.weight_variance(torch.zeros(4, 3)), "M"),
        (lambda: embeddings.weight_variance(torch.eye(4)).r2("01"), "weights"),
        (lambda: embeddings.weight_variance(torch.eye(4)).r2([0, 3]), "weights"),
        (lambda: embeddings.weight_profile(torch.eye(4), [5]), "weights"),
        (lambda: embeddings.twisted_weights(1), "m"),
        (lambda: embeddings.geometry_summary(torch.eye(4)), "model"),
        (lambda: embeddings.geometry_config({"m": 4}, 10), "setting"),
        (lambda: embeddings.geometry_config({"m": 4, "d": 8, "neighbourhood": "ball3"}, 10), "neighbourhood"),
        (lambda: embeddings.geometry_config([4, 8], 10), "setting"),
    ],
)
def test_bad_inputs_name_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ------------------------------------------------------------------------------------ checkers
def _stub(*args):
    raise NotImplementedError


def test_check_gram_profile():
    def ref(W):
        m = W.shape[0].bit_length() - 1
        return brute_profile((W @ W.T).double(), m)

    assert embeddings.check_gram_profile(ref)
    assert not embeddings.check_gram_profile(lambda W: ref(W)[:-1])  # off by one
    assert not embeddings.check_gram_profile(  # sums, no mean
        lambda W: torch.stack(
            [
                (W @ W.T)[brute_distances(W.shape[0].bit_length() - 1) == k].sum()
                for k in range(W.shape[0].bit_length())
            ]
        )
    )
    assert not embeddings.check_gram_profile(lambda W: (W.T @ W).diagonal())  # transposed Gram
    assert "not implemented yet" in repr(embeddings.check_gram_profile(_stub))


def test_check_krawtchouk_table():
    def by_generating_function(m):
        table = torch.zeros(m + 1, m + 1, dtype=torch.long)
        for w in range(m + 1):
            c = [1]
            for sign in [-1] * w + [1] * (m - w):  # multiply by (1 - t) or (1 + t)
                c = [a + sign * b for a, b in zip(c + [0], [0] + c)]
            table[:, w] = torch.tensor(c)
        return table

    assert embeddings.check_krawtchouk_table(by_generating_function)
    assert not embeddings.check_krawtchouk_table(lambda m: by_generating_function(m).T)  # [w, k]
    assert not embeddings.check_krawtchouk_table(lambda m: by_generating_function(m).abs())  # no sign
    assert not embeddings.check_krawtchouk_table(lambda m: by_generating_function(m)[:-1])  # k < m
    assert "not implemented yet" in repr(embeddings.check_krawtchouk_table(_stub))


def test_check_hamming_spectrum():
    def ref(g, m):
        return torch.linalg.eigvalsh(embeddings.hamming_kernel(g, m)).flip(0)  # not per weight

    def right(g, m):
        return g @ torch.tensor(
            [[brute_krawtchouk(k, w, m) for w in range(m + 1)] for k in range(m + 1)], dtype=torch.float64
        )

    assert embeddings.check_hamming_spectrum(right)
    assert not embeddings.check_hamming_spectrum(
        lambda g, m: right(g, m).flip(0) if m > 1 else right(g, m) + 1
    )
    assert not embeddings.check_hamming_spectrum(  # transposed K
        lambda g, m: g @ embeddings.krawtchouk_matrix(m).double().T
    )
    assert not embeddings.check_hamming_spectrum(lambda g, m: right(g, m) / 2**m)  # scaled
    assert not embeddings.check_hamming_spectrum(ref)  # full list
    assert "not implemented yet" in repr(embeddings.check_hamming_spectrum(_stub))


def test_check_affine_embedding():
    def right(m, b0, b1):
        Z = torch.tensor([bits(i, m) for i in range(2**m)], dtype=torch.float64)
        c = torch.full((2**m, 1), math.sqrt(b0 - m * b1 / 2), dtype=torch.float64)
        return torch.cat([math.sqrt(b1 / 2) * (2 * Z - 1), c], 1)

    assert embeddings.check_affine_embedding(right)
    assert embeddings.check_affine_embedding(lambda m, b0, b1: -right(m, b0, b1))  # a rotation
    assert not embeddings.check_affine_embedding(lambda m, b0, b1: right(m, b0, b1)[:, :-1])
    assert not embeddings.check_affine_embedding(lambda m, b0, b1: math.sqrt(2) * right(m, b0, b1))
    assert not embeddings.check_affine_embedding(  # too wide
        lambda m, b0, b1: torch.cat([right(m, b0, b1), torch.zeros(2**m, 1)], 1)
    )
    assert "not implemented yet" in repr(embeddings.check_affine_embedding(_stub))


# --------------------------------------------------------------------------------------- plots
def test_plots_return_figures():
    import matplotlib.pyplot as plt

    m = 3
    prof = torch.randn(2, m + 1)
    figs = [
        embeddings.plot_distance_and_gram(brute_distances(m), embeddings.affine_gram(m, 2.0, 1.0)),
        embeddings.plot_hamming_inner(
            {"a": {"mean": prof, "std": prof.abs(), "b0": 1.0, "b1": 0.5, "r2": 0.3}}, m
        ),
        embeddings.plot_hamming_inner(
            {
                n: {
                    "mean": prof,
                    "std": prof.abs(),
                    "b0": 1.0,
                    "b1": 0.5,
                    "r2": 0.3,
                    "twisted": prof[0],
                    "r2_twisted": 0.9,
                }
                for n in "abc"
            },
            m,
            ncols=2,
        ),
        embeddings.plot_spectra({"p": {"x": torch.tensor([3.0, 2.0, 1.0])}}, {"p": 1}),
        embeddings.plot_spectra({p: {"x": torch.rand(3, 4) + 0.1} for p in "pqr"}, {"p": 1}, ncols=2),
        embeddings.plot_profile_grid({"m=3": {("a", 800): prof, ("b", 3200): prof}}),
        embeddings.plot_geometry_study(
            {v: {"s": {800: {q: [0.1, 0.2] for q in ("hamming", "twisted", "affine")}}} for v in ("x", "y")}
        ),
        embeddings.plot_weight_spectrum({"r": {"mu": torch.ones(m + 1), "nu": {"x": torch.ones(m + 1)}}}, m),
        embeddings.plot_hamming_kernel(
            [1.0, 0.0, -1.0, 0.5], *embeddings.hamming_kernel_spectrum([1.0, 0.0, -1.0, 0.5], 3)
        ),
    ]
    for fig in figs:
        assert isinstance(fig, matplotlib.figure.Figure)
        plt.close(fig)


# Issue 16: transposed embeddings warn, huge Gram matrices are refused at once.


@pytest.mark.parametrize(
    "fn",
    [
        embeddings.gram_matrix,
        embeddings.gram_profile,
        embeddings.affine_fit,
        embeddings.embedding_spectrum,
        embeddings.weight_spectrum,
    ],
)
def test_a_transposed_embedding_warns(fn):
    """W_E [8, 4] passed as W_E.T [4, 8] is read as V = 4 tokens: a UserWarning says W_E must
    be [V, d] and may be transposed; a model (V known) or a d that no V can be stays silent."""
    g = torch.Generator().manual_seed(1)
    W = torch.randn(8, 4, generator=g, dtype=torch.float64)
    with pytest.warns(UserWarning, match=r"W_E must be \[V, d\] \(row = token\).*transposed"):
        fn(W.T)
    with pytest.warns(UserWarning, match="transposed"):
        fn(torch.stack([W.T, W.T]))  # an ensemble [E, d, V]
    wide = lca.OneLayerTransformer(8, 16, seed=0)  # d > V, but a model knows its V
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fn(W)
        fn(torch.randn(8, 12, generator=g, dtype=torch.float64))  # 12 columns: not a transposed W_E
        fn(wide)


def test_gram_matrices_beyond_the_size_limit_are_refused_at_once():
    W = torch.zeros(4096, 2, dtype=torch.float64)  # V = 4096: V x V Gram and [V^2, 13] indicators
    for fn in (embeddings.gram_matrix, embeddings.gram_profile, embeddings.weight_spectrum):
        with pytest.raises(ValueError, match="W_E is too large"):
            fn(W)
    M = torch.zeros(1, 1, 1, dtype=torch.float64).expand(3, 2048, 2048)  # no memory behind it
    with pytest.raises(ValueError, match="M is too large"):
        embeddings.weight_rayleigh(M)
    with pytest.raises(ValueError, match="M must hold finite"):
        embeddings.weight_rayleigh(torch.full((4, 4), float("nan")))
    assert embeddings.gram_profile(torch.ones(256, 1, dtype=torch.float64)).mean.shape == (9,)
