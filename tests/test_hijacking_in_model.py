"""Tests of chapter 7 (context hijacking inside the one-layer model): the constructed model's
logits as neighbourhood shares, the hijack threshold against a numerical root of the expected
logits, the exact finite-L flip probabilities against brute-force enumeration and simulation, the
third-token effect, the hijack probes, a trained model, input validation and the checkers."""

import itertools
import math

import pytest
import torch

import lca
from lca import attention, hijacking_in_model, value_matrix
from lca.train import TrainConfig, sweep

torch.set_num_threads(1)


def custom_spec(m, L, neighbours: dict, default=None):
    """A spec whose neighbourhood is N_1 except for the targets listed in ``neighbours``."""
    D = lca.LatentSpace(m).distances()
    mask = (D == 1) if default is None else default.clone()
    for y, ns in neighbours.items():
        mask[y] = False
        mask[y, list(ns)] = True
    return lca.TaskSpec(m=m, L=L, neighbourhood=lca.custom(mask, "test"))


def test_constructed_model_logits_are_shares():
    for spec in (
        lca.TaskSpec(m=5, L=7, noise=0.3),
        lca.TaskSpec(m=4, L=5, neighbourhood=lca.hamming_ball(2)),
    ):
        model = value_matrix.constructed_model(spec, d=spec.V + 3)
        ctx, _ = lca.sample(spec, 40, seed=2)
        ctx = torch.cat([ctx, ctx[:, :3]], dim=1)  # any length works
        mask = spec.neighbourhood.mask(spec.space)
        want = torch.tensor(
            [[sum(int(mask[k, t]) for t in row) / len(row) for k in range(spec.V)] for row in ctx.tolist()],
            dtype=torch.float64,
        )
        assert torch.allclose(hijacking_in_model.hijack_share_logits(spec, ctx), want, atol=1e-14)
        assert torch.allclose(model(ctx), want, atol=1e-12)


def numeric_threshold(spec, y, yh):
    """Root of E f_y - E f_y' in rho by bisection, from the mixture law and the mask alone."""
    A = spec.neighbourhood.mask(spec.space).double()
    clean = A[y] / A[y].sum()
    hij = A[yh] / A[yh].sum()

    def gap(r):
        law = (1 - r) * clean + r * hij
        return float(A[y] @ law - A[yh] @ law)

    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if gap(mid) > 0:
            lo = mid
        else:
            hi = mid
    return lo


@pytest.mark.parametrize("case", ["N1-far", "N1-d2", "ball2", "broad-hijack", "broad-true"])
def test_threshold_formula_against_numerical_root(case):
    m = 6
    if case == "N1-far":
        spec, y, yh = lca.TaskSpec(m=m, L=9), 0, 63
    elif case == "N1-d2":
        spec, y, yh = lca.TaskSpec(m=m, L=9), 0, 3
    elif case == "ball2":
        spec, y, yh = lca.TaskSpec(m=m, L=9, neighbourhood=lca.hamming_ball(2)), 5, 6
    else:
        D = lca.LatentSpace(m).distances()
        broad = torch.nonzero((D[3] >= 1) & (D[3] <= 2)).flatten().tolist()  # ball(2) of 3
        spec = custom_spec(m, 9, {3: broad})
        y, yh = (0, 3) if case == "broad-hijack" else (3, 0)
    D, Dh, o = hijacking_in_model.hijack_overlap(spec, y, yh)
    thr = hijacking_in_model.hijack_threshold(D, Dh, o)
    assert abs(thr - numeric_threshold(spec, y, yh)) < 1e-12
    if D == Dh:
        assert thr == 0.5
    if case == "broad-hijack":
        assert (D, Dh, o) == (6, 21, 2) and abs(thr - 14 / 33) < 1e-15
    if case == "broad-true":
        assert abs(thr - 19 / 33) < 1e-15


def enumerate_prefer(spec, y, yh, rho, L):
    """P(f_y' > f_y) by enumerating every context over the support of the mixture law."""
    A = spec.neighbourhood.mask(spec.space).double()
    law = (1 - rho) * spec.context_law()[y] + rho * A[yh] / A[yh].sum()
    supp = torch.nonzero(law > 0).flatten().tolist()
    total = 0.0
    for ctx in itertools.product(supp, repeat=L):
        p = math.prod(float(law[t]) for t in ctx)
        fy = sum(float(A[y, t]) for t in ctx)
        fh = sum(float(A[yh, t]) for t in ctx)
        total += p * (fh > fy)
    return total


def test_finite_L_flip_probability_against_enumeration():
    cases = [
        (lca.TaskSpec(m=3, L=4), 0, 7),
        (lca.TaskSpec(m=3, L=4), 0, 3),
        (lca.TaskSpec(m=3, L=3, noise=0.4), 1, 6),
        (lca.TaskSpec(m=3, L=4, neighbourhood=lca.hamming_ball(2)), 0, 7),
    ]
    for spec, y, yh in cases:
        rho = [0.2, 0.5, 0.8]
        got = hijacking_in_model.hijack_flip_probability(spec, y, yh, rho)
        want = torch.tensor([enumerate_prefer(spec, y, yh, r, spec.L) for r in rho], dtype=torch.float64)
        assert torch.allclose(got, want, atol=1e-12)


def test_disjoint_noise_free_case_is_binomial():
    spec = lca.TaskSpec(m=6, L=17)
    rho = torch.linspace(0, 1, 21)
    a = hijacking_in_model.hijack_flip_probability(spec, 0, 63, rho)
    b = hijacking_in_model.hijack_binomial_flip(rho, 17)
    direct = torch.tensor(
        [sum(math.comb(17, h) * r**h * (1 - r) ** (17 - h) for h in range(9, 18)) for r in rho.tolist()],
        dtype=torch.float64,
    )
    assert torch.allclose(a, direct, atol=1e-12) and torch.allclose(b, direct, atol=1e-12)
    assert abs(float(hijacking_in_model.hijack_binomial_flip(0.5, 17)[0]) - 0.5) < 1e-12
    # even L: the tie H = L/2 is not a flip, so P < 1/2 at rho = 1/2
    assert float(hijacking_in_model.hijack_binomial_flip(0.5, 16)[0]) < 0.5


def test_flip_probability_sharpens_with_L_and_obeys_hoeffding():
    for L in (11, 51, 201, 1001):  # odd L: no ties, and P(no flip at rho) is
        for r in (0.3, 0.45, 0.55, 0.7):  # the flip probability at 1 - rho
            p = float(hijacking_in_model.hijack_binomial_flip(r, L)[0])
            q = float(hijacking_in_model.hijack_binomial_flip(1 - r, L)[0])
            assert abs(p + q - 1) < 1e-12
            bound = math.exp(-2 * L * (0.5 - r) ** 2)
            assert (p if r < 0.5 else q) <= bound
    assert float(hijacking_in_model.hijack_binomial_flip(0.45, 2001)[0]) < 1e-4
    assert float(hijacking_in_model.hijack_binomial_flip(0.55, 2001)[0]) > 1 - 1e-4


def test_prepend_probability_against_enumeration_and_step():
    spec = lca.TaskSpec(m=3, L=3, noise=0.3)
    y, yh = 0, 7
    A = spec.neighbourhood.mask(spec.space).double()
    clean = spec.context_law()[y]
    hij = A[yh] / A[yh].sum()
    got = hijacking_in_model.hijack_prepend_probability(spec, y, yh, [0, 1, 2, 3], block=1)
    for k in range(4):
        laws = [hij] * k + [clean] * spec.L
        supps = [torch.nonzero(lw > 0).flatten().tolist() for lw in laws]
        total = 0.0
        for ctx in itertools.product(*supps):
            p = math.prod(float(lw[t]) for lw, t in zip(laws, ctx))
            total += p * (sum(float(A[yh, t]) for t in ctx) > sum(float(A[y, t]) for t in ctx))
        assert abs(float(got[k]) - total) < 1e-12
    # noise-free and disjoint: a step exactly when the hijack tokens outnumber the clean ones
    step = hijacking_in_model.hijack_prepend_probability(
        lca.TaskSpec(m=6, L=15), 0, 63, list(range(9)), block=4
    )
    assert torch.allclose(step, torch.tensor([0.0] * 4 + [1.0] * 5, dtype=torch.float64), atol=1e-12)


def test_third_token_can_delay_the_flip():
    """A third token whose neighbourhood holds 3/4 of N(y) and 3/4 of N(y') wins in between."""
    m = 5
    y, yh, k = 0, 31, 12
    Ny = [1, 2, 3, 4, 5, 6, 8, 9]
    Nh = [7, 11, 13, 14, 15, 19, 21, 22]
    spec = custom_spec(m, 9, {y: Ny, yh: Nh, k: Ny[:6] + Nh[:6]})  # N_1 for everyone else
    assert hijacking_in_model.hijack_overlap(spec, y, yh) == (8, 8, 0)
    assert hijacking_in_model.hijack_threshold(8, 8, 0) == 0.5
    thr = hijacking_in_model.hijack_threshold_argmax(spec, y, yh)
    assert abs(thr - 0.75) < 1e-12
    F = hijacking_in_model.hijack_limit_logits(spec, y, yh, [0.2, 0.6, 0.9])
    assert F.argmax(1).tolist() == [y, k, yh]
    # long simulated contexts agree: the prediction is k at rho = 0.6 and y' at rho = 0.9
    g = torch.Generator().manual_seed(3)
    Ny_t, Nh_t = torch.tensor(Ny), torch.tensor(Nh)
    n, L = 300, 801
    for r, want in ((0.2, y), (0.6, k), (0.9, yh)):
        clean = Ny_t[torch.randint(0, 8, (n, L), generator=g)]
        hij = Nh_t[torch.randint(0, 8, (n, L), generator=g)]
        ctx = torch.where(torch.rand(n, L, generator=g) < r, hij, clean)
        pred = hijacking_in_model.hijack_share_logits(spec, ctx).argmax(1)
        assert (pred == want).double().mean() > 0.95


def test_threshold_argmax_equals_pairwise_for_N1():
    spec = lca.TaskSpec(m=6, L=9)
    for yh in (1, 3, 7, 63):
        assert hijacking_in_model.hijack_threshold_argmax(spec, 0, yh) == 0.5
    # sphere(3) at m = 6: N(z) = N(complement of z), so y' has a twin and never wins alone
    s3 = lca.TaskSpec(m=6, L=9, neighbourhood=lca.hamming_sphere(3))
    assert math.isinf(hijacking_in_model.hijack_threshold_argmax(s3, 0, 7))


# ----------------------------------------------------------------------------- probes
def test_hijack_contexts_structure():
    spec = lca.TaskSpec(m=5, L=10, noise=0.2)
    clean, y0 = lca.sample(spec, 300, seed=7)
    ctx, y, yh = hijacking_in_model.hijack_contexts(spec, 300, rho=0.0, seed=7)
    assert torch.equal(ctx, clean) and torch.equal(y, y0)
    assert bool((spec.space.hamming(y, yh) == 5).all())  # complement by default
    mask = spec.neighbourhood.mask(spec.space)
    full, _, yh1 = hijacking_in_model.hijack_contexts(spec, 300, rho=1.0, seed=7)
    assert torch.equal(yh1, yh)
    assert bool(mask[yh[:, None], full[:, :-1]].all())  # all but the query hijacked
    assert torch.equal(full[:, -1], clean[:, -1])
    pre, _, _ = hijacking_in_model.hijack_contexts(spec, 300, prepend=3, block=2, seed=7)
    assert pre.shape == (300, 16) and torch.equal(pre[:, 6:], clean)
    assert bool(mask[yh[:, None], pre[:, :6]].all())
    pre4, _, _ = hijacking_in_model.hijack_contexts(spec, 300, prepend=4, block=2, seed=7)
    assert torch.equal(pre4[:, 2:], pre)  # coupled across k
    assert bool((spec.space.hamming(y, hijacking_in_model.hijack_targets(spec, y, distance=2)) == 2).all())


def test_flip_curve_of_constructed_model_matches_exact_probability():
    spec = lca.TaskSpec(m=5, L=11, noise=0.2)
    model = value_matrix.constructed_model(spec)
    rho = [0.0, 0.3, 0.5, 0.7, 1.0]
    out = hijacking_in_model.flip_curve(model, spec, rho, n=4000, seed=1, last_clean=True)
    # by symmetry of N_1 every (y, complement) pair has the same law as (0, 31)
    exact = hijacking_in_model.hijack_flip_probability(spec, 0, 31, rho, last_clean=True)
    assert (out["prefer"] - exact).abs().max() < 0.03
    assert out["flip"].shape == (5,) and out["rho"].tolist() == rho
    assert out["correct"][0] > 0.9 and out["flip"][-1] > 0.95


def test_prepend_curve_of_constructed_model_matches_exact_probability():
    spec = lca.TaskSpec(m=5, L=9, noise=0.3)
    model = value_matrix.constructed_model(spec)
    ks = [0, 1, 2, 3, 4]
    out = hijacking_in_model.prepend_curve(model, spec, ks, block=2, n=4000, seed=2)
    exact = hijacking_in_model.hijack_prepend_probability(spec, 0, 31, ks, block=2)
    assert (out["prefer"] - exact).abs().max() < 0.03
    assert out["k"].tolist() == ks


@pytest.mark.slow
def test_trained_models_are_hijacked():
    spec = lca.TaskSpec(m=5, L=15)
    res = sweep(
        TrainConfig(task=spec, d=16, steps=250, batch_size=128, lr=0.02, eval_every=0, device="cpu"),
        seeds=(0, 1),
        progress=False,
    )
    out = hijacking_in_model.flip_curve(res.model, spec, [0.0, 0.5, 1.0], n=512, seed=0, last_clean=False)
    assert out["flip"].shape == (2, 3)
    assert bool((out["prefer"][:, 0] < 0.05).all()) and bool((out["prefer"][:, 2] > 0.95).all())
    pre = hijacking_in_model.prepend_curve(res.model, spec, [0, 8], block=4, n=512, seed=0)
    # prepending makes hijacking more likely (how much depends on what attention learned)
    assert bool((pre["prefer"][:, 1] > pre["prefer"][:, 0]).all())


# ----------------------------------------------------------------------------- validation
def test_bad_inputs_name_the_parameter():
    spec = lca.TaskSpec(m=4, L=5)
    with pytest.raises(ValueError, match="y_hijack"):
        hijacking_in_model.hijack_overlap(spec, 3, 3)
    with pytest.raises(ValueError, match="y"):
        hijacking_in_model.hijack_overlap(spec, 16, 3)
    with pytest.raises(ValueError, match="overlap"):
        hijacking_in_model.hijack_threshold(5, 5, 6)
    with pytest.raises(ValueError, match="overlap"):
        hijacking_in_model.hijack_threshold(5, 5, 5)
    with pytest.raises(ValueError, match="D"):
        hijacking_in_model.hijack_threshold(0)
    with pytest.raises(ValueError, match="rho"):
        hijacking_in_model.hijack_flip_probability(spec, 0, 15, [0.5, 1.2])
    with pytest.raises(ValueError, match="ties"):
        hijacking_in_model.hijack_flip_probability(spec, 0, 15, 0.5, ties="random")
    with pytest.raises(ValueError, match="L"):
        hijacking_in_model.hijack_binomial_flip(0.5, 0)
    with pytest.raises(ValueError, match="block"):
        hijacking_in_model.hijack_prepend_probability(spec, 0, 15, [1], block=0)
    with pytest.raises(ValueError, match="k"):
        hijacking_in_model.hijack_prepend_probability(spec, 0, 15, [-1])
    with pytest.raises(ValueError, match="contexts"):
        hijacking_in_model.hijack_share_logits(spec, torch.full((2, 3), 16))
    with pytest.raises(ValueError, match="spec"):
        hijacking_in_model.hijack_share_logits("spec", torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="rho"):
        hijacking_in_model.hijack_contexts(spec, 10, rho=-0.1)
    with pytest.raises(ValueError, match="distance"):
        hijacking_in_model.hijack_contexts(spec, 10, distance=5)
    with pytest.raises(ValueError, match="hijack"):
        hijacking_in_model.hijack_contexts(spec, 3, hijack=torch.tensor([0, 1]))
    model = value_matrix.constructed_model(spec)
    with pytest.raises(ValueError, match="rho_grid"):
        hijacking_in_model.flip_curve(model, spec, [0.1, 2.0])
    with pytest.raises(ValueError, match="ks"):
        hijacking_in_model.prepend_curve(model, spec, [-2])
    with pytest.raises(ValueError, match="V"):
        hijacking_in_model.flip_curve(model, lca.TaskSpec(m=3, L=4), [0.5])
    with pytest.raises(ValueError, match="model"):
        hijacking_in_model.prepend_curve(None, spec, [1])


# ----------------------------------------------------------------------------- checkers
def _stub(*args):
    raise NotImplementedError


def test_check_share_logits():
    ref = hijacking_in_model._reference_share
    assert hijacking_in_model.check_share_logits(ref)

    def untransposed(ctx, mask):
        return ref(ctx, mask.T)

    def counts(ctx, mask):
        return ref(ctx, mask) * ctx.shape[1]

    def distinct_tokens(ctx, mask):  # counts each distinct token once
        out = torch.zeros(ctx.shape[0], mask.shape[0], dtype=torch.float64)
        for i, row in enumerate(ctx.tolist()):
            for t in set(row):
                out[i] += mask[:, t].double() / len(row)
        return out

    for wrong in (untransposed, counts, distinct_tokens):
        assert not hijacking_in_model.check_share_logits(wrong)
    assert "not implemented yet" in repr(hijacking_in_model.check_share_logits(_stub))


def test_check_noisy_threshold():
    ref = hijacking_in_model.hijack_threshold_noisy
    assert hijacking_in_model.check_noisy_threshold(ref)

    def noiseless(D, Dh, o, eps, V):
        return hijacking_in_model.hijack_threshold(D, Dh, o)

    def over_V(D, Dh, o, eps, V):  # noise uniform on all V tokens
        e_c = (1 - eps) * (o / D - 1) + eps * (Dh - D) / V
        e_h = 1 - o / Dh
        return min(max(-e_c / (e_h - e_c), 0.0), 1.0)

    def unclipped(D, Dh, o, eps, V):
        e_c = (1 - eps) * (o / D - 1) + eps * (Dh - D) / (V - 1)
        return -e_c / (1 - o / Dh - e_c)

    for wrong in (noiseless, over_V, unclipped):
        res = hijacking_in_model.check_noisy_threshold(wrong)
        assert not res and "expected" in repr(res)
    res = hijacking_in_model.check_noisy_threshold(_stub)
    assert not res and "not implemented yet" in repr(res)


def test_noisy_threshold_matches_the_task_threshold():
    """The formula of exercise ex-ch7-threshold is the threshold of a task with the default
    (uniform) noise law, y in neither neighbourhood; it fails for the cluster task, whose noise
    avoids y's cluster."""
    Dm = lca.TaskSpec(m=6, L=15).space.distances()
    mask_b = (Dm == 1).clone()
    mask_b[3] = (Dm[3] >= 1) & (Dm[3] <= 2)
    for eps in (0.0, 0.25, 0.5, 0.9):
        specs = [
            (lca.TaskSpec(m=6, L=15, noise=eps), 0, 63),
            (lca.TaskSpec(m=6, L=15, noise=eps), 0, 3),
            (lca.TaskSpec(m=6, L=15, noise=eps, neighbourhood=lca.custom(mask_b, "broad 3")), 3, 0),
        ]
        for spec, y, yh in specs:
            D, Dh, o = hijacking_in_model.hijack_overlap(spec, y, yh)
            want = hijacking_in_model.hijack_threshold_task(spec, y, yh)
            assert hijacking_in_model.hijack_threshold_noisy(D, Dh, o, eps, spec.V) == pytest.approx(
                want, abs=1e-12
            )
    spec_c = attention.cluster_task(8, 2, L=17, noise=0.5, informative="sphere")
    D, Dh, o = hijacking_in_model.hijack_overlap(spec_c, 0, 255)
    got = hijacking_in_model.hijack_threshold_noisy(D, Dh, o, 0.5, 256)
    assert abs(got - hijacking_in_model.hijack_threshold_task(spec_c, 0, 255)) > 1e-3


def test_check_flip_probability_overlap():
    def trinomial(rho, L, D, Dh, o, strict=True):
        p, q = rho * (1 - o / Dh), (1 - rho) * (1 - o / D)
        z = 1 - p - q
        return sum(
            math.factorial(L)
            / (math.factorial(a) * math.factorial(b) * math.factorial(L - a - b))
            * p**a
            * q**b
            * z ** (L - a - b)
            for a in range(L + 1)
            for b in range(L - a + 1)
            if (a > b if strict else a >= b)
        )

    assert hijacking_in_model.check_flip_probability_overlap(trinomial)
    assert hijacking_in_model.check_flip_probability_overlap(hijacking_in_model._reference_margin_flip)
    wrongs = [
        lambda rho, L, D, Dh, o: trinomial(rho, L, D, Dh, o, strict=False),  # ties count
        lambda rho, L, D, Dh, o: float(hijacking_in_model.hijack_binomial_flip(rho, L)[0]),  # no overlap
        lambda rho, L, D, Dh, o: trinomial(rho, L, Dh, D, o),  # sizes swapped
    ]
    for wrong in wrongs:
        res = hijacking_in_model.check_flip_probability_overlap(wrong)
        assert not res and "expected" in repr(res)
    res = hijacking_in_model.check_flip_probability_overlap(_stub)
    assert not res and "not implemented yet" in repr(res)


def test_margin_flip_matches_the_task_computation():
    Dm = lca.TaskSpec(m=6, L=15).space.distances()
    mask_b = (Dm == 1).clone()
    mask_b[3] = (Dm[3] >= 1) & (Dm[3] <= 2)
    spec_b = lca.TaskSpec(m=6, L=15, neighbourhood=lca.custom(mask_b, "broad 3"))
    rho = [0.2, 0.45, 0.6]
    for y, yh in ((0, 3), (3, 0)):
        sizes = hijacking_in_model.hijack_overlap(spec_b, y, yh)
        for L in (1, 8, 15):
            want = hijacking_in_model.hijack_flip_probability(spec_b, y, yh, rho, L=L)
            got = [hijacking_in_model._reference_margin_flip(r, L, *sizes) for r in rho]
            assert torch.allclose(torch.tensor(got, dtype=torch.float64), want, rtol=1e-10, atol=1e-14)


def test_plot_hijack_curves_returns_a_figure():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    x = [0.0, 0.5, 1.0]
    fig = hijacking_in_model.plot_hijack_curves(
        [
            {
                "x": x,
                "curves": {"a": [0, 0.5, 1], "ens": [[0, 0.4, 1], [0, 0.6, 1]]},
                "theory": {"t": [0, 0.5, 1]},
                "threshold": 0.5,
                "xlabel": "rho",
                "title": "p",
            },
            {"x": [0, 1, 2], "curves": {"b": [0, 0.2, 0.9]}, "xlabel": "k"},
        ],
        title="t",
    )
    assert len(fig.axes) == 2
    plt.close(fig)


def test_margin_probability_from_sizes_equals_the_spec_version():
    D = lca.LatentSpace(6).distances()
    mask = (D == 1).clone()
    mask[3] = (D[3] >= 1) & (D[3] <= 2)
    spec = lca.TaskSpec(m=6, L=15, neighbourhood=lca.custom(mask, "broad 3"))
    rho = [0.1, 0.35, 0.5, 0.8]
    for L in (1, 6, 15, 40):
        a = hijacking_in_model.hijack_flip_probability(spec, 0, 3, rho, L=L)
        b = hijacking_in_model.hijack_margin_probability(rho, L, 6, 21, 2)
        assert torch.allclose(a, b, atol=1e-12)
    assert torch.allclose(
        hijacking_in_model.hijack_margin_probability(rho, 15, 6),
        hijacking_in_model.hijack_binomial_flip(rho, 15),
        atol=1e-12,
    )
    with pytest.raises(ValueError, match="overlap"):
        hijacking_in_model.hijack_margin_probability(0.5, 5, 4, 4, 5)


def test_threshold_with_noise_against_simulation():
    spec = attention.cluster_task(6, 2, L=9, noise=0.5, informative="sphere")
    y, yh = 0, 63
    thr = hijacking_in_model.hijack_threshold_task(spec, y, yh)
    # noise-free version of the same neighbourhood: the pairwise formula
    assert (
        abs(
            hijacking_in_model.hijack_threshold_task(spec.with_(noise=0.0), y, yh)
            - hijacking_in_model.hijack_threshold(*hijacking_in_model.hijack_overlap(spec, y, yh))
        )
        < 1e-12
    )
    assert 0.25 < thr < 0.5
    # the mean margin of simulated positions changes sign at thr
    A = spec.neighbourhood.mask(spec.space)
    g = torch.Generator().manual_seed(0)
    P = spec.context_law()[y]
    Nh = torch.nonzero(A[yh]).flatten()
    for r, sign in ((thr - 0.05, -1), (thr + 0.05, 1)):
        n = 400_000
        clean = torch.multinomial(P, n, replacement=True, generator=g)
        hij = Nh[torch.randint(0, len(Nh), (n,), generator=g)]
        x = torch.where(torch.rand(n, generator=g) < r, hij, clean)
        margin = (A[yh, x].double() - A[y, x].double()).mean()
        assert sign * margin > 0.005
    with pytest.raises(ValueError, match="y_hijack"):
        hijacking_in_model.hijack_threshold_task(spec, 5, 5)


def test_hijack_may_be_a_function_of_the_targets():
    spec = lca.TaskSpec(m=5, L=7)
    ctx, y, yh = hijacking_in_model.hijack_contexts(spec, 50, rho=0.5, seed=1, hijack=lambda t: t ^ 3)
    assert torch.equal(yh, y ^ 3)
    model = value_matrix.constructed_model(spec)
    out = hijacking_in_model.flip_curve(
        model, spec, [0.0, 1.0], n=200, seed=1, hijack=lambda t: t ^ 3, last_clean=False
    )
    assert out["prefer"].tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="hijack"):
        hijacking_in_model.hijack_contexts(spec, 5, hijack=lambda t: t)  # y' = y is not a hijack


# ----------------------------------------------------------------------------- the attention filter
def test_scores_by_distance_against_brute_force():
    m, k = 5, 2
    spec = attention.cluster_task(m, k, L=6)
    V = spec.V
    g = torch.Generator().manual_seed(11)
    model = lca.OneLayerTransformer.from_weights(
        torch.randn(2, V, 7, generator=g),
        torch.randn(2, 7, 7, generator=g),
        torch.randn(2, 7, 7, generator=g),
    )
    out = hijacking_in_model.scores_by_distance(model, spec, k=k)
    assert out["distance"].tolist() == list(range(m + 1))
    assert out["same"].shape == (2, m + 1) and out["other"].shape == (2, m + 1)
    D = spec.space.distances()
    cl = attention.cluster_ids(m, k)
    for e in range(2):
        with torch.no_grad():
            S = (model.W_E[e] @ model.W_KQ[e] @ model.W_E[e].T).double()
        S = S - S.mean(1, keepdim=True)
        for d in range(m + 1):
            same = [float(S[i, j]) for i in range(V) for j in range(V) if D[i, j] == d and cl[i] == cl[j]]
            other = [float(S[i, j]) for i in range(V) for j in range(V) if D[i, j] == d and cl[i] != cl[j]]
            every = same + other
            assert abs(float(out["all"][e, d]) - sum(every) / len(every)) < 1e-5
            for key, vals in (("same", same), ("other", other)):
                assert int(out[f"pairs_{key}"][d]) == len(vals)
                if vals:
                    assert abs(float(out[key][e, d]) - sum(vals) / len(vals)) < 1e-5
                else:
                    assert math.isnan(float(out[key][e, d]))
    # pair counts: V C(m-k, d) inside a cluster, V (C(m, d) - C(m-k, d)) across clusters
    assert out["pairs_same"].tolist() == [V * math.comb(m - k, d) for d in range(m + 1)]
    assert out["pairs_other"].tolist() == [V * (math.comb(m, d) - math.comb(m - k, d)) for d in range(m + 1)]
    # without k: only the overall means, and a single model gives [m + 1]
    single = hijacking_in_model.scores_by_distance(model.member(0), spec)
    assert set(single) == {"distance", "all"} and torch.allclose(single["all"], out["all"][0])


def test_scores_by_distance_reads_a_parity_filter():
    """W_E = I and W_KQ = (-1)^distance: the scores are the parity pattern, centred by the row mean."""
    m = 4
    spec = attention.cluster_task(m, 1, L=5)
    D = spec.space.distances().double()
    W_KQ = (-1.0) ** D
    model = lca.OneLayerTransformer.from_weights(torch.eye(spec.V), W_KQ, torch.eye(spec.V))
    out = hijacking_in_model.scores_by_distance(model, spec, k=1)
    row_mean = sum(math.comb(m, d) * (-1) ** d for d in range(m + 1)) / spec.V  # = 0 for m >= 1
    want = torch.tensor([(-1.0) ** d - row_mean for d in range(m + 1)], dtype=torch.float64)
    assert torch.allclose(out["all"], want, atol=1e-6)
    same = out["same"][:m]  # distances 0..m-1 exist inside a cluster (k = 1)
    assert bool((same[0::2].min() > same[1::2].max()))
    # a filter by closeness (score -distance) is not a parity filter
    close_model = lca.OneLayerTransformer.from_weights(torch.eye(spec.V), -D, torch.eye(spec.V))
    same_c = hijacking_in_model.scores_by_distance(close_model, spec, k=1)["same"][:m]
    assert not bool(same_c[0::2].min() > same_c[1::2].max())


def test_hijack_targets_in_the_cluster():
    spec = attention.cluster_task(8, 2, L=9)
    y = torch.arange(spec.V).repeat(4)
    cl = attention.cluster_ids(8, 2)
    for dist in (1, 3, 4, 6):
        yh = hijacking_in_model.hijack_targets(spec, y, dist, seed=5, fixed_bits=2)
        assert torch.equal(cl[yh], cl[y])
        assert bool((spec.space.hamming(y, yh) == dist).all())
    # fixed_bits = 0 is the old behaviour; without a distance every free bit flips
    assert torch.equal(
        hijacking_in_model.hijack_targets(spec, y, 3, seed=2),
        hijacking_in_model.hijack_targets(spec, y, 3, seed=2, fixed_bits=0),
    )
    assert torch.equal(hijacking_in_model.hijack_targets(spec, y, fixed_bits=2), y ^ 63)
    # the same bits as the chapter's former same_cluster_target (seeded argsort over 6 low bits)
    g = torch.Generator().manual_seed(5)
    low = torch.argsort(torch.rand(y.shape[0], 6, generator=g), dim=1)[:, :3]
    assert torch.equal(
        hijacking_in_model.hijack_targets(spec, y, 3, seed=5, fixed_bits=2), y ^ (1 << low).sum(1)
    )
    with pytest.raises(ValueError, match="distance"):
        hijacking_in_model.hijack_targets(spec, y, 7, fixed_bits=2)
    with pytest.raises(ValueError, match="fixed_bits"):
        hijacking_in_model.hijack_targets(spec, y, 1, fixed_bits=8)


def test_scores_by_distance_bad_inputs():
    spec = attention.cluster_task(4, 1, L=5)
    model = lca.OneLayerTransformer.from_weights(torch.eye(16), torch.zeros(16, 16), torch.eye(16))
    with pytest.raises(ValueError, match="k"):
        hijacking_in_model.scores_by_distance(model, spec, k=4)
    with pytest.raises(ValueError, match="k"):
        hijacking_in_model.scores_by_distance(model, spec, k=0)
    with pytest.raises(ValueError, match="V"):
        hijacking_in_model.scores_by_distance(model, lca.TaskSpec(m=3, L=4))


def test_plot_scores_by_distance_returns_a_figure():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    spec = attention.cluster_task(4, 1, L=5)
    g = torch.Generator().manual_seed(0)
    model = lca.OneLayerTransformer.from_weights(
        torch.randn(3, 16, 8, generator=g),
        torch.randn(3, 8, 8, generator=g),
        torch.randn(3, 8, 8, generator=g),
    )
    table = hijacking_in_model.scores_by_distance(model, spec, k=1)
    fig = hijacking_in_model.plot_scores_by_distance([{"table": table, "title": "t"}] * 2, title="x")
    assert len(fig.axes) == 2
    plt.close(fig)


@pytest.mark.slow
def test_trained_attention_filters_by_parity():
    """Chapter 7's finding on one seed: in the sphere cluster task the trained scores separate by
    the parity of the distance, and a same-cluster y' at odd distance is filtered while one at even
    distance is not."""
    spec = attention.cluster_task(8, 2, L=17, noise=0.5, informative="sphere")
    res = sweep(
        TrainConfig(task=spec, d=32, steps=400, batch_size=256, lr=0.01, eval_every=0, device="cpu"),
        seeds=(0,),
        progress=False,
    )
    same = hijacking_in_model.scores_by_distance(res.model, spec, k=2)["same"][0, :7]
    assert float(same[0::2].min()) > float(same[1::2].max()) + 1.0
    pref = {
        dist: hijacking_in_model.flip_curve(
            res.model,
            spec,
            [1.0],
            n=512,
            seed=0,
            hijack=lambda y, dist=dist: hijacking_in_model.hijack_targets(
                spec, y, dist, seed=5, fixed_bits=2
            ),
        )["prefer"][0, 0]
        for dist in (3, 4)
    }
    assert float(pref[3]) < 0.5 < 0.9 < float(pref[4])


def test_strings_and_bools_are_no_shares_or_flags():
    """#16: a str or bool is refused by name, not converted to a share or a flag."""
    with pytest.raises(TypeError, match="rho"):
        hijacking_in_model.hijack_binomial_flip("0.5", 8)
    with pytest.raises(TypeError, match="rho"):
        hijacking_in_model.hijack_binomial_flip(True, 8)
    with pytest.raises(TypeError, match=r"\bk\b"):
        hijacking_in_model.hijack_prepend_probability(
            lca.TaskSpec(4, 8, neighbourhood=lca.cluster(1)), 0, 15, k=None
        )
    spec = lca.TaskSpec(4, 8, neighbourhood=lca.cluster(1))
    with pytest.raises(TypeError, match="last_clean"):
        hijacking_in_model.hijack_contexts(spec, 4, rho=0.5, last_clean="False")
