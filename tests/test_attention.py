"""Tests of chapter 6 (attention selects tokens of the query's cluster): the exact gradient of
W_KQ at zero against autograd, its first-order closed form against exact enumeration, the sign
pattern of the theorem where its hypotheses hold and where they fail, the attention probes, a
small training run, input validation and the exercise checkers."""

import itertools

import pytest
import torch

import lca
from lca import attention
from lca.model import OneLayerTransformer, orthonormal_rows
from lca.train import TrainConfig, sweep

torch.set_num_threads(1)


def brute_force_population_grad(W_E, W_V, spec):
    """Autograd of the exact population loss: every context sequence (V^L of them) weighted by its
    probability, pushed through lca.model's forward pass."""
    V, L = spec.V, spec.L
    P = spec.context_law()
    Q = spec.last_law()
    seqs = torch.tensor(list(itertools.product(range(V), repeat=L)))
    model = OneLayerTransformer.from_weights(W_E, None, W_V, device="cpu")
    model.W_KQ.requires_grad_(True)
    total = 0.0
    for y in range(V):
        w = P[y][seqs[:, :-1]].prod(1) * Q[y][seqs[:, -1]] / V
        keep = w > 0
        logits = model(seqs[keep])
        target = torch.full((int(keep.sum()),), y)
        loss = torch.nn.functional.cross_entropy(logits, target, reduction="none")
        total = total + (w[keep] * loss).sum()
    total.backward()
    return model.W_KQ.grad.detach()


def random_weights(V, d, seed):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(V, d, generator=g, dtype=torch.float64) / 2,
        torch.randn(d, d, generator=g, dtype=torch.float64),
    )


SMALL_SPECS = [
    attention.cluster_task(3, 1, L=4, noise=0.4, informative="cluster"),
    attention.cluster_task(3, 1, L=3, noise=0.7, informative="sphere"),
    lca.TaskSpec(m=3, L=4, noise=0.3),  # N_1, uniform noise
    lca.TaskSpec(m=3, L=3, neighbourhood=lca.hamming_ball(2), noise=0.2, clean_last=True),
]


@pytest.mark.parametrize("spec", SMALL_SPECS, ids=["cluster", "sphere", "N1-uniform", "ball"])
def test_exact_gradient_equals_autograd_of_population_loss(spec):
    W_E, W_V = random_weights(spec.V, 5, seed=spec.L)
    G = attention.grad_WKQ_at_zero(W_E, W_V, spec)
    G_auto = brute_force_population_grad(W_E, W_V, spec)
    assert G.shape == (5, 5)
    assert torch.allclose(G, G_auto, atol=1e-12, rtol=1e-9)


def test_sample_gradient_equals_autograd_of_batch_loss():
    spec = attention.cluster_task(4, 2, L=6, noise=0.5, informative="cluster")
    W_E, W_V = random_weights(16, 7, seed=3)
    ctx, y = lca.sample(spec, 300, seed=4)
    model = OneLayerTransformer.from_weights(W_E, None, W_V, device="cpu")
    model.W_KQ.requires_grad_(True)
    torch.nn.functional.cross_entropy(model(ctx), y).backward()
    G = attention.grad_WKQ_at_zero_sample(W_E, W_V, ctx, y)
    assert torch.allclose(G, model.W_KQ.grad, atol=1e-12)


def test_population_gradient_matches_a_large_sample():
    spec = attention.cluster_task(4, 1, L=5, noise=0.5, informative="cluster")
    E = orthonormal_rows(16)
    W_V = attention.kq_value_matrix(E, spec)
    T = attention.kq_gradient_table(E, W_V, spec)
    ctx, y = lca.sample(spec, 200_000, seed=11)
    G_mc = attention.grad_WKQ_at_zero_sample(E, W_V, ctx, y)
    T_mc = -E @ G_mc @ E.T  # orthonormal rows: T = -W_E G W_E^T
    # per-entry Monte Carlo standard error is below 2e-4 here; T's scale is about 6e-3
    assert (T_mc - T).abs().max() < 1.5e-3
    assert (T_mc - T).abs().max() < 0.25 * T.abs().max()


@pytest.mark.parametrize(
    "spec",
    [
        attention.cluster_task(4, 1, L=5, noise=0.5, informative="cluster"),
        attention.cluster_task(4, 2, L=6, noise=0.3, informative="sphere"),
        lca.TaskSpec(m=3, L=5, noise=0.25),
        lca.TaskSpec(m=3, L=4, neighbourhood=lca.hamming_ball(2)),
    ],
    ids=["cluster", "sphere", "N1-uniform", "ball-no-noise"],
)
def test_first_order_closed_form_is_the_small_beta_limit(spec):
    E = orthonormal_rows(spec.V, seed=2)
    beta = 1e-5
    T = attention.kq_gradient_table(E, attention.kq_value_matrix(E, spec, beta), spec)
    T1 = attention.kq_first_order_table(spec)
    scale = max(T1.abs().max().item(), 1e-3)
    assert (T / beta - T1).abs().max() < 1e-3 * scale


def test_first_order_closed_form_for_a_general_value_matrix():
    spec = lca.TaskSpec(m=3, L=4, noise=0.3)
    g = torch.Generator().manual_seed(5)
    E = torch.randn(8, 6, generator=g, dtype=torch.float64)
    W0 = torch.randn(6, 6, generator=g, dtype=torch.float64)
    beta = 1e-6
    T = attention.kq_gradient_table(E, beta * W0, spec)
    T1 = attention.kq_first_order_table(spec, M0=E @ W0 @ E.T)
    assert torch.allclose(T / beta, T1, atol=1e-4 * T1.abs().max())


@pytest.mark.parametrize(
    "m, k, L, noise", [(4, 1, 5, 0.5), (5, 2, 7, 0.3), (6, 2, 16, 0.75), (8, 2, 32, 0.5)]
)
def test_cluster_closed_form_entries(m, k, L, noise):
    spec = attention.cluster_task(m, k, L=L, noise=noise, informative="cluster")
    T1 = attention.kq_first_order_table(spec)
    cf = attention.kq_cluster_closed_form(m, k, L, noise)
    cl = attention.cluster_ids(m, k)
    same = cl[:, None] == cl[None, :]
    eye = torch.eye(spec.V, dtype=torch.bool)
    assert torch.allclose(T1[eye], torch.full((spec.V,), cf["self"], dtype=torch.float64), rtol=1e-9)
    assert torch.allclose(
        T1[same & ~eye], torch.tensor(cf["same"], dtype=torch.float64), rtol=1e-9, atol=1e-15
    )
    assert torch.allclose(T1[~same], torch.tensor(cf["cross"], dtype=torch.float64), rtol=1e-9)
    assert T1.sum(1).abs().max() < 1e-14  # rows sum to zero
    assert cf["self"] > 0 and cf["same"] >= 0 and cf["cross"] < 0


def test_cluster_closed_form_against_monte_carlo():
    """The closed form against a direct simulation of E[1{x_L=i} c_j (1{j in N(y)} - c(N(y)))]."""
    m, k, L, eps = 5, 2, 6, 0.4
    spec = attention.cluster_task(m, k, L=L, noise=eps, informative="cluster")
    ctx, y = lca.sample(spec, 400_000, seed=21)
    V = spec.V
    A = spec.neighbourhood.mask(spec.space).double()
    c = torch.zeros(ctx.shape[0], V, dtype=torch.float64)
    c.scatter_add_(1, ctx, torch.full(ctx.shape, 1.0 / L, dtype=torch.float64))
    inN = A[y]  # [n, V] 1{j in N(y)}
    share = (c * inN).sum(1, keepdim=True)
    q = torch.nn.functional.one_hot(ctx[:, -1], V).double()
    T_mc = q.T @ (c * (inN - share)) / ctx.shape[0]
    cf = attention.kq_cluster_closed_form(m, k, L, eps)
    cl = attention.cluster_ids(m, k)
    same = cl[:, None] == cl[None, :]
    eye = torch.eye(V, dtype=torch.bool)
    assert abs(T_mc[eye].mean() - cf["self"]) < 0.03 * cf["self"]
    assert abs(T_mc[same & ~eye].mean() - cf["same"]) < 0.05 * cf["same"]
    assert abs(T_mc[~same].mean() - cf["cross"]) < 0.05 * abs(cf["cross"])


def sign_pattern(T, m, k, Q):
    """(min over same-cluster pairs, max over cross-cluster pairs) among pairs whose query has
    positive probability (Q: law of the query token)."""
    cl = attention.cluster_ids(m, k)
    same = cl[:, None] == cl[None, :]
    possible = (Q.sum(0) > 0)[:, None].expand_as(T)
    return T[same & possible].min().item(), T[~same & possible].max().item()


@pytest.mark.parametrize("informative", ["cluster", "sphere"])
def test_theorem_sign_pattern_holds_under_its_hypotheses(informative):
    for m, k, L, eps in [(4, 1, 5, 0.5), (6, 2, 8, 0.2), (6, 2, 16, 0.9)]:
        spec = attention.cluster_task(m, k, L=L, noise=eps, informative=informative)
        T1 = attention.kq_first_order_table(spec)
        lo, hi = sign_pattern(T1, m, k, spec.clean_law())
        assert lo >= -1e-15 and hi < 0


def test_sign_pattern_also_holds_for_the_exact_gradient_at_unit_scale():
    """Not part of the theorem (which is first order in beta): the exact table at beta = 1 and 5."""
    for informative in ("cluster", "sphere"):
        spec = attention.cluster_task(4, 1, L=5, noise=0.5, informative=informative)
        E = orthonormal_rows(16, seed=1)
        for beta in (1.0, 5.0):
            T = attention.kq_gradient_table(E, attention.kq_value_matrix(E, spec, beta), spec)
            lo, hi = sign_pattern(T, 4, 1, spec.clean_law())
            assert lo >= -1e-15 and hi < 0


def test_without_noise_there_is_nothing_to_select():
    spec = attention.cluster_task(4, 1, L=5, noise=0.0, informative="cluster")
    T1 = attention.kq_first_order_table(spec)
    assert T1.abs().max() < 1e-15
    E = orthonormal_rows(16)
    T = attention.kq_gradient_table(E, attention.kq_value_matrix(E, spec, 1.0), spec)
    cl = attention.cluster_ids(4, 1)
    same = cl[:, None] == cl[None, :]
    assert T[~same].abs().max() == 0  # cross pairs never occur
    # the exact table is not zero, but its same-cluster entries have both signs: no preference
    lo, _ = sign_pattern(T, 4, 1, spec.clean_law())
    assert lo < 0 and T[same].max() > 0


def test_zero_or_identity_value_matrix_gives_no_signal():
    spec = attention.cluster_task(4, 1, L=5, noise=0.5, informative="cluster")
    E = orthonormal_rows(16)
    G = attention.grad_WKQ_at_zero(E, torch.zeros(16, 16, dtype=torch.float64), spec)
    assert G.abs().max() == 0
    # W_V = I with orthonormal embeddings: M0 = I, the first-order table vanishes
    T1 = attention.kq_first_order_table(spec, M0=torch.eye(16, dtype=torch.float64))
    assert T1.abs().max() < 1e-15


def test_cluster_free_neighbourhood_breaks_the_cluster_pattern():
    """N_1 with uniform noise: the first-order table has no same-vs-other-cluster sign pattern."""
    spec = lca.TaskSpec(m=4, L=8, noise=0.5)
    T1 = attention.kq_first_order_table(spec)
    lo, hi = sign_pattern(T1, 4, 1, spec.context_law())
    assert lo < 0 and hi > 0


def test_score_change_is_lr_times_table_for_orthonormal_embeddings():
    """After one step of size lr from W_KQ = 0 the scores are S = -lr W_E grad W_E^T = lr T."""
    spec = attention.cluster_task(3, 1, L=4, noise=0.5)
    E = orthonormal_rows(8, d=11)
    W_V = attention.kq_value_matrix(E, spec)
    S = -0.3 * E @ attention.grad_WKQ_at_zero(E, W_V, spec) @ E.T
    T = attention.kq_gradient_table(E, W_V, spec)
    assert torch.allclose(S, 0.3 * T, atol=1e-14)


def test_value_matrix_logits_are_neighbourhood_shares():
    spec = attention.cluster_task(4, 2, L=6, noise=0.5, informative="sphere")
    E = orthonormal_rows(16, d=20)
    model = OneLayerTransformer.from_weights(E, None, attention.kq_value_matrix(E, spec), device="cpu")
    ctx, _ = lca.sample(spec, 50, seed=1)
    A = spec.neighbourhood.mask(spec.space).double()
    c = torch.stack([torch.bincount(x, minlength=16).double() / 6 for x in ctx])
    assert torch.allclose(model(ctx), c @ A.T, atol=1e-12)


def test_cluster_task_law():
    spec = attention.cluster_task(5, 2, L=8, noise=0.3, informative="sphere")
    P = spec.context_law()
    cl = attention.cluster_ids(5, 2)
    D = spec.space.distances()
    inside = cl[:, None] == cl[None, :]
    # informative mass (0.7) on Hamming neighbours inside the cluster, noise (0.3) outside
    assert torch.allclose((P * inside).sum(1), torch.full((32,), 0.7, dtype=torch.float64))
    assert bool(((P > 0) & inside <= (D == 1)).all())
    assert spec.clean_last
    spec2 = attention.cluster_task(5, 2, L=8, noise=0.3, informative="cluster")
    assert spec2.neighbourhood.degrees(spec2.space).tolist() == [7] * 32


def test_block_means_by_hand():
    S = torch.arange(16, dtype=torch.float64).reshape(4, 4)
    groups = torch.tensor([0, 0, 1, 1])
    B = attention.cluster_block_means(S, groups)
    assert torch.allclose(B, torch.tensor([[2.5, 4.5], [10.5, 12.5]], dtype=torch.float64))
    B2 = attention.cluster_block_means(S, groups, exclude_diagonal=True)
    assert torch.allclose(B2, torch.tensor([[2.5, 4.5], [10.5, 12.5]], dtype=torch.float64))
    assert B2[0, 0] == (1 + 4) / 2


# ----------------------------------------------------------------------------- probes
def test_attention_mass_probe_against_a_loop():
    spec = attention.cluster_task(4, 1, L=6, noise=0.5)
    g = torch.Generator().manual_seed(2)
    model = OneLayerTransformer.from_weights(
        torch.randn(16, 5, generator=g), torch.randn(5, 5, generator=g), device="cpu"
    )
    res = attention.attention_mass_by_cluster(model, spec, k=1, n=64, seed=3)
    ctx, _ = lca.sample(spec, 64, seed=3)
    att = model.attention(ctx)
    masses, shares = [], []
    for a, x in zip(att.tolist(), ctx.tolist()):
        q = x[-1] >> 3
        masses.append(sum(w for w, t in zip(a, x) if t >> 3 == q))
        shares.append(sum(1 for t in x if t >> 3 == q) / 6)
    assert abs(res.mass - sum(masses) / 64) < 1e-6
    assert abs(res.share - sum(shares) / 64) < 1e-12
    assert torch.allclose(res.mass_matrix.sum(1), torch.ones(2, dtype=torch.float64))
    # with W_KQ = 0 the mass equals the share
    flat = OneLayerTransformer.from_weights(model.W_E.detach(), device="cpu")
    res0 = attention.attention_mass_by_cluster(flat, spec, k=1, n=64, seed=3)
    assert abs(res0.mass - res0.share) < 1e-6
    assert torch.allclose(res0.mass_matrix, res0.share_matrix, atol=1e-6)


def test_score_matrix_predicts_attention_weights():
    g = torch.Generator().manual_seed(4)
    model = OneLayerTransformer.from_weights(
        torch.randn(8, 4, generator=g, dtype=torch.float64),
        torch.randn(4, 4, generator=g, dtype=torch.float64),
        device="cpu",
    )
    S = attention.score_matrix(model, center=False)
    Sc = attention.score_matrix(model)
    assert torch.allclose(Sc.mean(1), torch.zeros(8, dtype=torch.float64), atol=1e-12)
    for i, j in [(0, 3), (5, 2), (7, 7)]:
        a = model.attention(torch.tensor([[j, i]]))[0]
        assert abs(a[0].item() - torch.sigmoid(S[i, j] - S[i, i]).item()) < 1e-12
        assert abs(a[0].item() - torch.sigmoid(Sc[i, j] - Sc[i, i]).item()) < 1e-12


@pytest.mark.slow
def test_trained_attention_concentrates_on_the_cluster():
    spec = attention.cluster_task(6, 2, L=16, noise=0.5, informative="cluster")
    base = TrainConfig(task=spec, d=16, steps=150, batch_size=128, lr=0.02, eval_every=0, device="cpu")
    res = sweep(base, seeds=(0,), variants={"trained": {}, "frozen": {"train_KQ": False}}, progress=False)
    out = attention.attention_mass_by_cluster(res.model, spec, k=2, n=1024, seed=0)
    mass = out.mass.tolist()
    assert mass[0] > out.share + 0.2  # trained W_KQ: selects the cluster
    assert abs(mass[1] - out.share) < 1e-5  # frozen at 0: uniform
    S = attention.score_matrix(res.model.member(0))
    B = attention.cluster_block_means(S, attention.cluster_ids(6, 2))
    assert bool((B.diagonal() > B.max(1).values - 1e-12).all())  # diagonal blocks dominate rows


# ----------------------------------------------------------------------------- validation
def test_bad_inputs_name_the_parameter():
    spec = attention.cluster_task(3, 1, L=3, noise=0.5)
    E = orthonormal_rows(8)
    with pytest.raises(ValueError, match="k"):
        attention.cluster_task(4, 4)
    with pytest.raises(ValueError, match="noise"):
        attention.cluster_task(4, 1, noise=1.0)
    with pytest.raises(ValueError, match="informative"):
        attention.cluster_task(4, 1, informative="ball")
    with pytest.raises(ValueError, match="W_E"):
        attention.grad_WKQ_at_zero(E[:5], torch.eye(8, dtype=torch.float64), spec)
    with pytest.raises(ValueError, match="W_V"):
        attention.grad_WKQ_at_zero(E, torch.eye(5), spec)
    with pytest.raises(ValueError, match="spec"):
        attention.kq_gradient_table(E, torch.eye(8), "task")
    with pytest.raises(ValueError, match="L"):
        big = attention.cluster_task(6, 1, L=40, noise=0.5)
        attention.kq_gradient_table(orthonormal_rows(64), torch.eye(64), big)
    with pytest.raises(ValueError, match="noise"):
        attention.kq_cluster_closed_form(4, 1, 5, 1.5)
    with pytest.raises(ValueError, match="M0"):
        attention.kq_first_order_table(spec, M0=torch.eye(3))
    with pytest.raises(ValueError, match="beta"):
        attention.kq_value_matrix(E, spec, beta=-1.0)
    with pytest.raises(ValueError, match="targets"):
        attention.grad_WKQ_at_zero_sample(
            E, torch.eye(8), torch.zeros(3, 2, dtype=torch.long), torch.zeros(2, dtype=torch.long)
        )
    with pytest.raises(ValueError, match="contexts"):
        attention.grad_WKQ_at_zero_sample(
            E, torch.eye(8), torch.full((3, 2), 9), torch.zeros(3, dtype=torch.long)
        )
    model = OneLayerTransformer(8, 4, device="cpu")
    with pytest.raises(ValueError, match="k"):
        attention.attention_mass_by_cluster(model, spec, k=0)
    with pytest.raises(ValueError, match="V"):
        attention.attention_mass_by_cluster(model, attention.cluster_task(4, 1), k=1)
    with pytest.raises(ValueError, match="model"):
        attention.score_matrix("not a model")
    with pytest.raises(ValueError, match="groups"):
        attention.cluster_block_means(torch.zeros(4, 4), torch.tensor([0, 1]))


# ----------------------------------------------------------------------------- checkers
def _stub(*args):
    raise NotImplementedError


def test_check_attention_mass_by_cluster():
    ref = attention._reference_mass
    assert attention.check_attention_mass_by_cluster(ref)

    def first_token_cluster(att, ctx, m, k):  # compares with the first token, not the query
        cl = ctx >> (m - k)
        return float((att * (cl == cl[:, :1])).sum(1).mean())

    def low_bits(att, ctx, m, k):  # clusters by the last k bits
        cl = ctx % (2**k)
        return float((att * (cl == cl[:, -1:])).sum(1).mean())

    def share_not_mass(att, ctx, m, k):  # forgets the attention weights
        cl = ctx >> (m - k)
        return float((cl == cl[:, -1:]).double().mean())

    for wrong in (first_token_cluster, low_bits, share_not_mass):
        assert not attention.check_attention_mass_by_cluster(wrong)
    res = attention.check_attention_mass_by_cluster(_stub)
    assert not res and "not implemented yet" in repr(res)


def test_check_kq_gradient():
    ref = attention.grad_WKQ_at_zero_sample
    assert attention.check_kq_gradient(ref)

    def transposed(*a):
        return ref(*a).T

    def sign_flipped(*a):
        return -ref(*a)

    def uncentred(W_E, W_V, ctx, y):  # forgets the - rbar term
        V, (n, L) = W_E.shape[0], ctx.shape
        E, Wv = W_E.double(), W_V.double()
        M = E @ Wv @ E.T
        c = torch.zeros(n, V, dtype=torch.float64)
        c.scatter_add_(1, ctx, torch.full(ctx.shape, 1.0 / L, dtype=torch.float64))
        p = torch.softmax(c @ M.T, 1)
        r = (torch.nn.functional.one_hot(y, V).double() - p) @ M
        q = torch.nn.functional.one_hot(ctx[:, -1], V).double()
        return -E.T @ (q.T @ (c * r) / n) @ E

    for wrong in (transposed, sign_flipped, uncentred):
        assert not attention.check_kq_gradient(wrong)
    assert "not implemented yet" in repr(attention.check_kq_gradient(_stub))


def _first_order_margin(m, k, L, eps):
    """Smallest same-cluster (j != i) minus largest cross-cluster entry of the enumerated
    first-order table of the cluster task."""
    T = attention.kq_first_order_table(attention.cluster_task(m, k, L=L, noise=eps, informative="cluster"))
    cl = attention.cluster_ids(m, k)
    same = cl[:, None] == cl[None, :]
    off = same & ~torch.eye(2**m, dtype=torch.bool)
    return float(T[off].min() - T[~same].max())


@pytest.mark.parametrize("m,k,L", [(4, 1, 5), (5, 2, 6), (3, 2, 7), (5, 4, 3), (4, 2, 2)])
def test_best_noise_is_the_argmax_of_the_enumerated_margin(m, k, L):
    grid = [i / 200 for i in range(1, 200)]
    margins = [_first_order_margin(m, k, L, e) for e in grid]
    best = grid[max(range(len(grid)), key=margins.__getitem__)]
    star = attention.kq_most_selective_noise(m, k, L)
    assert abs(best - min(star, grid[-1])) <= 1 / 200 + 1e-12
    # the margin is the concave quadratic of the solution, up to its positive factor
    V, s = 2**m, 2 ** (m - k)
    a, b, c = (s - 2) * (L - 2) / (s - 1) ** 2, 1 / (V - s), (L - 2) / (V - s)
    for e, g in zip(grid[::37], margins[::37]):
        assert g == pytest.approx((L - 1) / (V * L**2) * ((a + b + c) * e - (a + c) * e**2), rel=1e-9)


def test_self_score_is_above_the_other_same_cluster_scores():
    for m, k, L, eps in [(4, 1, 5, 0.3), (5, 2, 6, 0.7), (3, 2, 7, 0.5)]:
        cf = attention.kq_cluster_closed_form(m, k, L, eps)
        assert cf["self"] > cf["same"] >= 0 > cf["cross"]


def test_check_best_noise():
    ref = attention.kq_most_selective_noise
    assert attention.check_best_noise(ref)

    def self_margin(m, k, L):  # maximises self - cross: the query's own score, not the weakest
        V, s = 2**m, 2 ** (m - k)
        a, b, c = (L - 2) / (s - 1), 1 / (V - s), (L - 2) / (V - s)
        return min(1.0, (a + b + c) / (2 * (a + c)))

    def no_special_case(m, k, L):  # divides by 0 at L = 2
        V, s = 2**m, 2 ** (m - k)
        a, b, c = (s - 2) * (L - 2) / (s - 1) ** 2, 1 / (V - s), (L - 2) / (V - s)
        return (a + b + c) / (2 * (a + c))

    for wrong in (self_margin, lambda m, k, L: 0.5):
        res = attention.check_best_noise(wrong)
        assert not res and "expected" in repr(res)
    res = attention.check_best_noise(no_special_case)
    assert not res and "ZeroDivisionError" in repr(res)
    res = attention.check_best_noise(_stub)
    assert not res and "not implemented yet" in repr(res)


def test_row_sums_from_invariance():
    """Exercise ex-ch6-rows: with W_E w = 1 the gradient kills w, and S z = 0 when G z = 1, while
    the rows of S need not sum to 0; with d < V no such w exists and the gradient need not kill
    the least-squares one (T 1 = 0 holds anyway)."""
    g = torch.Generator().manual_seed(7)
    spec = attention.cluster_task(3, 1, L=3, noise=0.4, informative="cluster")
    ones = torch.ones(8, dtype=torch.float64)
    for d in (10, 8):
        E = torch.randn(8, d, generator=g, dtype=torch.float64) / d**0.5
        W = torch.randn(d, d, generator=g, dtype=torch.float64)
        w = torch.linalg.lstsq(E, ones[:, None]).solution[:, 0]
        assert torch.allclose(E @ w, ones, atol=1e-10)
        grad = attention.grad_WKQ_at_zero(E, W, spec)
        assert float((grad @ w).abs().max()) < 1e-10 * float(grad.abs().max())
        S = attention.first_step_scores(E, W, spec)
        z = torch.linalg.solve(E @ E.T, ones)
        assert float((S @ z).abs().max()) < 1e-9 * float(S.abs().max())
        assert float((S @ ones).abs().max()) > 1e-3 * float(S.abs().max())
    E = torch.randn(8, 4, generator=g, dtype=torch.float64) / 2
    W = torch.randn(4, 4, generator=g, dtype=torch.float64)
    w = torch.linalg.lstsq(E, ones[:, None]).solution[:, 0]
    assert float((E @ w - ones).abs().max()) > 1e-3
    grad = attention.grad_WKQ_at_zero(E, W, spec)
    assert float((grad @ w).abs().max()) > 1e-6 * float(grad.abs().max())
    T = attention.kq_gradient_table(E, W, spec)
    assert float((T @ ones).abs().max()) < 1e-12


def test_plots_return_figures():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    spec = attention.cluster_task(4, 1, L=5, noise=0.5)
    T1 = attention.kq_first_order_table(spec)
    fig = attention.plot_attention_heatmap({"a": T1, "b": -T1}, 4, 1, title="t")
    assert len(fig.axes) >= 2
    fig2 = attention.plot_cluster_attention(
        {"x": {"mass": 0.9, "share": 0.5, "accuracy": 0.8}, "y": {"mass": 0.5, "share": 0.5}}
    )
    cl = attention.cluster_ids(4, 1)
    fig3 = attention.plot_kq_gradient_check(T1, T1, cl[:, None] == cl[None, :], "x", "y")
    for f in (fig, fig2, fig3):
        plt.close(f)


# Issue 16: the V^3 closed form refuses large m at once, NaN refused, transposed W_E caught.


def test_first_order_table_refuses_large_m_and_nan():
    with pytest.raises(ValueError, match=r"spec is too large .*m <= 8"):
        attention.kq_first_order_table(lca.TaskSpec(10, 2))
    with pytest.raises(ValueError, match=r"spec is too large"):
        attention.kq_first_order_table(lca.TaskSpec(9, 2))
    spec = attention.cluster_task(3, 1, L=4, noise=0.4)
    M0 = torch.zeros(8, 8, dtype=torch.float64)
    M0[1, 2] = float("nan")
    with pytest.raises(ValueError, match="M0"):
        attention.kq_first_order_table(spec, M0)
    assert attention.kq_first_order_table(spec).shape == (8, 8)


def test_nan_weights_and_bad_groups_are_refused():
    spec = attention.cluster_task(3, 1, L=4, noise=0.4)
    E = orthonormal_rows(8)
    bad = torch.eye(8, dtype=torch.float64)
    bad[0, 0] = float("nan")
    ctx, y = lca.sample(spec, 16, seed=0)
    for call, name in [
        (lambda: attention.kq_gradient_table(E, bad, spec), "W_V"),
        (lambda: attention.grad_WKQ_at_zero_sample(bad, torch.eye(8, dtype=torch.float64), ctx, y), "W_E"),
        (lambda: attention.cluster_block_means(bad, attention.cluster_ids(3, 1)), "S"),
        (lambda: attention.cluster_block_means(E, torch.tensor([0, 1, 2, 3, 4, 5, 6, 8])), "groups"),
        (lambda: attention.cluster_block_means(E, torch.full((8,), -1)), "groups"),
        (lambda: attention.cluster_block_means(E, torch.zeros(8)), "groups"),
    ]:
        with pytest.raises(ValueError, match=name):
            call()


def test_kq_value_matrix_checks_the_embedding_against_the_task():
    """W_E [8, 4] passed as W_E.T [4, 8] was read as V = 4; the task says V = 8."""
    spec = attention.cluster_task(3, 1, L=4, noise=0.4)
    W = torch.randn(8, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with pytest.raises(ValueError, match="W_E must have V=8 rows"):
        attention.kq_value_matrix(W.T, spec)
    assert attention.kq_value_matrix(W, spec).shape == (4, 4)


# Issue 16 (fuzz): flags refused unless True/False, shape mismatches name both arguments.


@pytest.mark.parametrize("bad", ["False", 2, None])
def test_flags_must_be_booleans(bad):
    S = torch.zeros(4, 4)
    groups = torch.tensor([0, 0, 1, 1])
    model = OneLayerTransformer(8, 4, device="cpu")
    with pytest.raises(TypeError, match="exclude_diagonal"):
        attention.cluster_block_means(S, groups, exclude_diagonal=bad)
    with pytest.raises(TypeError, match="clean_last"):
        attention.cluster_task(4, 1, clean_last=bad)
    with pytest.raises(TypeError, match="center"):
        attention.score_matrix(model, center=bad)
    with pytest.raises(TypeError, match="first_order"):
        attention.first_step_scores(
            orthonormal_rows(8), torch.eye(8), attention.cluster_task(3, 1, L=3), first_order=bad
        )


def test_shape_mismatches_name_both_arguments():
    spec = attention.cluster_task(3, 1, L=3, noise=0.5)
    E = orthonormal_rows(8)
    with pytest.raises(ValueError, match=r"W_E .* W_V|W_V .* W_E"):
        attention.kq_gradient_table(E[:, :1], torch.eye(8, dtype=torch.float64), spec)
    ctx, y = lca.sample(spec, 4, seed=0)
    with pytest.raises(ValueError, match=r"W_E .* W_V"):
        attention.grad_WKQ_at_zero_sample(E[:, :4].T.contiguous(), torch.eye(4), ctx, y)
    with pytest.raises(ValueError, match=r"contexts .* targets"):
        attention.grad_WKQ_at_zero_sample(E, torch.eye(8), ctx[:, :3].T.contiguous(), y)


# Issue 13, item 11: the hypotheses of the first-step theorem, each removed.


def test_first_step_scores_are_a_gradient_step():
    """S = -eta W_E grad W_E^T for any embeddings; the first-order version is the beta -> 0 limit."""
    spec = attention.cluster_task(3, 1, L=4, noise=0.4, informative="sphere")
    W_E, W_V = random_weights(8, 5, seed=9)
    S = attention.first_step_scores(W_E, W_V, spec, eta=0.7)
    assert torch.allclose(S, -0.7 * W_E @ attention.grad_WKQ_at_zero(W_E, W_V, spec) @ W_E.T, atol=1e-14)
    beta = 1e-6
    S_small = attention.first_step_scores(W_E, beta * W_V, spec) / beta
    S1 = attention.first_step_scores(W_E, W_V, spec, first_order=True)
    assert (S_small - S1).abs().max() < 1e-4 * S1.abs().max()
    with pytest.raises(ValueError, match="eta"):
        attention.first_step_scores(W_E, W_V, spec, eta=0.0)


def test_cluster_ordering_by_hand():
    groups = torch.tensor([0, 0, 1, 1])
    S = torch.tensor([[3.0, 2.0, 1.0, 0.0], [1.0, 2.0, 1.5, 0.0], [0.0, 0.0, 1.0, 1.0], [5.0, 0.0, 6.0, 7.0]])
    o = attention.cluster_ordering(S, groups)
    # row margins: 2-1 = 1; 1-1.5 = -0.5; 1-0 = 1; 6-5 = 1
    assert o.margin == -0.5 and o.rows_ordered == 0.75 and o.rows == 4
    # ordered triples per row: 4, 3 (1 > 1.5 fails), 4, 4 -> 15 of 16
    assert o.pairs_ordered == 15 / 16
    assert abs(o.block_gap - (2.0 + 0.75 + 1.0 + 4.0) / 4) < 1e-12
    o2 = attention.cluster_ordering(S, groups, rows=torch.tensor([True, False, True, True]))
    assert o2.margin == 1.0 and o2.rows_ordered == 1.0 and o2.rows == 3
    for kwargs, name in [
        ({"rows": torch.zeros(4, dtype=torch.bool)}, "rows"),
        ({"rows": torch.ones(3, dtype=torch.bool)}, "rows"),
        ({"groups": torch.zeros(4, dtype=torch.long)}, "groups"),
        ({"groups": torch.tensor([0.0, 0.0, 1.0, 1.0])}, "groups"),
        ({"groups": torch.tensor([0, 0, -1, -1])}, "groups"),
        ({"groups": torch.tensor([0, 0, 9, 9])}, "groups"),
    ]:
        args = {"S": S, "groups": groups, **kwargs}
        with pytest.raises(ValueError, match=name):
            attention.cluster_ordering(**args)


def _sphere6(clean_last=True):
    spec = attention.cluster_task(6, 2, L=16, noise=0.5, informative="sphere", clean_last=clean_last)
    return spec, spec.neighbourhood.mask(spec.space).double(), attention.cluster_ids(6, 2)


def test_first_step_conclusion_holds_with_all_hypotheses():
    spec, A, cl = _sphere6()
    E = orthonormal_rows(64, seed=3)
    o = attention.cluster_ordering(attention.first_step_scores(E, E.T @ A @ E, spec, first_order=True), cl)
    assert o.rows_ordered == 1.0 and o.margin > 0 and o.pairs_ordered == 1.0


@pytest.mark.parametrize("d", [64, 32, 8])
def test_first_step_conclusion_fails_without_orthonormal_embeddings(d):
    spec, A, cl = _sphere6()
    E = torch.randn(64, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64) / d**0.5
    o = attention.cluster_ordering(attention.first_step_scores(E, E.T @ A @ E, spec, first_order=True), cl)
    assert o.margin < 0 and o.rows_ordered < 1.0
    assert o.block_gap > 0  # on average the own cluster still gains


def test_first_step_conclusion_fails_without_the_associative_memory():
    spec, A, cl = _sphere6()
    E = orthonormal_rows(64)
    W = torch.randn(64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    o = attention.cluster_ordering(attention.first_step_scores(E, W, spec, first_order=True), cl)
    assert o.margin < 0 and o.rows_ordered == 0.0
    # W_V = 0: the exact gradient vanishes at every order (any beta), on a task small enough to enumerate
    small = attention.cluster_task(3, 1, L=4, noise=0.4)
    Z = attention.first_step_scores(orthonormal_rows(8), torch.zeros(8, 8, dtype=torch.float64), small)
    assert Z.abs().max() == 0


def test_first_step_conclusion_fails_with_a_query_that_can_be_noise():
    spec, A, cl = _sphere6(clean_last=False)
    E = orthonormal_rows(64)
    o = attention.cluster_ordering(attention.first_step_scores(E, E.T @ A @ E, spec, first_order=True), cl)
    assert o.margin < 0 and o.rows_ordered == 0.0
    # at noise = 1 - 2^-k every token's cluster is uniform and independent of the target: the mean
    # own-cluster gain vanishes (to rounding); beyond it the step favours the other clusters
    for noise, sign in [(0.75, 0), (0.9, -1)]:
        spec_n = attention.cluster_task(6, 2, L=16, noise=noise, informative="cluster", clean_last=False)
        T1 = attention.kq_first_order_table(spec_n)
        gap = attention.cluster_ordering(T1, cl).block_gap
        assert (abs(gap) < 1e-15) if sign == 0 else gap < -1e-6


def test_first_order_hypothesis_matters_with_a_noisy_query():
    """m = 4, k = 1, L = 4, noise 0.1, query drawn like the others: the first-order table and the
    exact one at beta <= 3 are in order, the exact one at beta = 10 is not."""
    spec = attention.cluster_task(4, 1, L=4, noise=0.1, informative="cluster", clean_last=False)
    E = orthonormal_rows(16)
    W = E.T @ spec.neighbourhood.mask(spec.space).double() @ E
    cl = attention.cluster_ids(4, 1)
    assert (
        attention.cluster_ordering(attention.first_step_scores(E, W, spec, first_order=True), cl).margin > 0
    )
    assert attention.cluster_ordering(attention.first_step_scores(E, 3.0 * W, spec), cl).margin > 0
    assert attention.cluster_ordering(attention.first_step_scores(E, 10.0 * W, spec), cl).margin < 0


@pytest.mark.parametrize("informative", ["cluster", "sphere"])
def test_clean_query_keeps_the_order_far_beyond_first_order(informative):
    """A numerical observation, not part of the theorem: on a grid of small clean-query tasks the
    exact first step keeps every own-cluster key above every other key up to beta = 300."""
    for m, k in [(3, 1), (3, 2), (4, 1), (4, 2)]:
        for noise in (0.1, 0.5, 0.9):
            for L in (2, 4):
                spec = attention.cluster_task(m, k, L=L, noise=noise, informative=informative)
                E = orthonormal_rows(2**m)
                W = E.T @ spec.neighbourhood.mask(spec.space).double() @ E
                rows = spec.last_law().sum(0) > 0
                for beta in (1.0, 10.0, 300.0):
                    S = attention.first_step_scores(E, beta * W, spec)
                    assert attention.cluster_ordering(S, attention.cluster_ids(m, k), rows).margin > 0


def test_training_from_zero_value_matrix_leaves_W_KQ_at_zero_after_one_step():
    spec = attention.cluster_task(5, 2, L=8, noise=0.5)
    model = lca.fit(TrainConfig(task=spec, d=8, steps=1, eval_every=0, device="cpu"), progress=False).model
    assert model.W_KQ.abs().max() == 0
    assert model.W_V.abs().max() > 0  # W_V moved; W_KQ can move from the second step on
    model2 = lca.fit(TrainConfig(task=spec, d=8, steps=2, eval_every=0, device="cpu"), progress=False).model
    assert model2.W_KQ.abs().max() > 0


# Issue 13, "Budgets and robustness": the stored results of bench/06_budgets.py.


def test_budget_results_cover_every_experiment_at_1x_and_4x_with_5_seeds():
    results = attention.load_budget_results()
    assert set(results["experiments"]) == set(attention.BUDGET_EXPERIMENTS)
    for name, settings in attention.BUDGET_EXPERIMENTS.items():
        entry = results["experiments"][name]
        stored = {k: (tuple(v) if isinstance(v, list) else v) for k, v in entry["settings"].items()}
        assert stored == settings, f"{name}: settings changed since the bench ran; rerun bench/06_budgets.py"
        assert {"1", "4"} <= set(entry["runs"])
        for scale, run in entry["runs"].items():
            assert run["steps"] == settings["steps"] * int(scale)
            variants = ("trained", "frozen") if settings["frozen"] else ("trained",)
            for v in variants:
                assert attention.budget_values(results, name, int(scale), "seed", v) == [0, 1, 2, 3, 4]
        assert (entry["bayes"] is None) == (settings["informative"] == "cluster")


def test_budget_values_refuse_bad_keys():
    results = attention.load_budget_results()
    with pytest.raises(ValueError, match="name"):
        attention.budget_values(results, "nope", 1, "mass")
    with pytest.raises(ValueError, match="scale"):
        attention.budget_values(results, "selection", 3, "mass")
    with pytest.raises(ValueError, match="key"):
        attention.budget_values(results, "selection", 1, "nope")
    with pytest.raises(ValueError, match="variant"):
        attention.budget_values(results, "heatmap_m5", 1, "mass", "frozen")
    with pytest.raises(ValueError, match="results"):
        attention.budget_values({}, "selection", 1, "mass")
    with pytest.raises(FileNotFoundError, match="bench/06_budgets.py"):
        attention.load_budget_results("/nonexistent/attention_budgets.json")


def _close_to_stored(fresh, stored):
    assert fresh["variant"] == stored["variant"] and fresh["seed"] == stored["seed"]
    assert abs(fresh["mass"] - stored["mass"]) < 0.01
    if stored["accuracy"] is not None:
        assert abs(fresh["accuracy"] - stored["accuracy"]) < 0.02
    for key in ("block_gap", "same", "cross"):
        if key in stored:
            assert abs(fresh[key] - stored[key]) < 0.5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["heatmap_m5", "noise_inside"])
def test_budget_results_recompute_a_sample(name):
    """Retrain one seed (drawn at random, fixed here) at the chapter budget and compare with the
    stored members (training estimates: the tolerances allow for another CPU's code path)."""
    import random

    seed = random.Random(name).randrange(5)
    results = attention.load_budget_results()
    fresh = attention.run_budget_experiment(name, 1, seeds=(seed,))
    stored = [m for m in results["experiments"][name]["runs"]["1"]["members"] if m["seed"] == seed]
    assert fresh["steps"] == results["experiments"][name]["runs"]["1"]["steps"]
    assert len(fresh["members"]) == len(stored)
    for f, s in zip(fresh["members"], stored):
        _close_to_stored(f, s)


def test_budget_configs_and_validation():
    cfg = attention.budget_config("selection", 4)
    assert cfg.steps == 2000 and cfg.d == 32 and cfg.task.noise == 0.75 and cfg.task.clean_last
    assert not attention.budget_task("noisy_query").clean_last
    inside = attention.budget_task("noise_inside")
    cl = attention.cluster_ids(8, 2)
    noise = inside.noise_law.mask(inside.space)
    assert bool((noise <= (cl[:, None] == cl[None, :])).all())  # noise inside the cluster
    with pytest.raises(ValueError, match="name"):
        attention.budget_task("heatmap_m9")
    with pytest.raises(ValueError, match="scale"):
        attention.budget_config("selection", 0)
    with pytest.raises(ValueError, match="seeds"):
        attention.run_budget_experiment("heatmap_m5", 1, seeds=())
