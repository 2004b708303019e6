"""Tests of chapter 2: exact quantities of the LCA task in lca.theory (Bayes accuracy of the
radius-1 sphere in closed form, exact enumeration, the law of a whole context, chi-square).

Each closed form is compared with an independent computation (brute-force enumeration of every
context, Monte Carlo with lca.bayes_accuracy, counting), and shown to fail outside its hypotheses.
"""

import itertools
import math
from fractions import Fraction

import matplotlib
import pytest
import torch

import lca
from lca import lca_task
from lca.task import TaskSpec, bayes_correct, bayes_posterior, enumerate_task, log_likelihood, sample

matplotlib.use("Agg")


def brute_bayes_accuracy(spec: TaskSpec) -> float:
    """Sum over every (target, context) of P(y, x) * [Bayes rule right], from the definition only:
    per-position law built from the mask, posterior by multiplying, ties split uniformly."""
    V, L = spec.V, spec.L
    mask = spec.neighbourhood.mask(spec.space).double()
    P = mask / mask.sum(1, keepdim=True)
    if spec.noise > 0:
        Q = 1 - torch.eye(V, dtype=torch.float64)
        P = (1 - spec.noise) * P + spec.noise * Q / Q.sum(1, keepdim=True)
    total = 0.0
    for ctx in itertools.product(range(V), repeat=L):
        like = torch.ones(V, dtype=torch.float64)
        for x in ctx:
            like = like * P[:, x]
        if float(like.sum()) == 0:
            continue
        best = like.max()
        ties = like >= best * (1 - 1e-12)
        # sum_y P(y, x) [y in ties] / |ties| = (1/V) sum_{y in ties} like[y] / |ties|
        total += float(like[ties].sum()) / V / int(ties.sum())
    return total


# --------------------------------------------------------------------------- thm-bayes-sphere
@pytest.mark.parametrize("m,L", [(1, 2), (2, 3), (3, 1), (3, 2), (3, 3), (3, 4), (4, 3)])
def test_closed_form_equals_brute_force_over_all_contexts(m, L):
    spec = TaskSpec(m=m, L=L)
    assert abs(lca_task.bayes_accuracy_sphere1(m, L) - brute_bayes_accuracy(spec)) < 1e-12


@pytest.mark.parametrize("m", range(1, 9))
def test_closed_form_equals_enumeration_of_supports(m):
    for L in range(1, 13):
        exact = lca_task.bayes_accuracy_sphere1(m, L, exact=True)
        enum = lca_task.bayes_accuracy_enumerate(TaskSpec(m=m, L=L))
        assert abs(float(exact) - enum) < 1e-12, (m, L)
        assert abs(lca_task.bayes_accuracy_sphere1(m, L) - float(exact)) < 1e-14


@pytest.mark.parametrize("m,L", [(5, 2), (6, 3), (7, 4), (8, 3), (8, 6)])
def test_closed_form_matches_monte_carlo(m, L):
    n = 20000
    mc = lca.bayes_accuracy(TaskSpec(m=m, L=L), n=n, seed=m * L)
    cf = lca_task.bayes_accuracy_sphere1(m, L)
    assert abs(mc - cf) < 5 * math.sqrt(cf * (1 - cf) / n) + 1e-3


def test_closed_form_special_cases_and_bound():
    for m in range(1, 10):
        assert lca_task.bayes_accuracy_sphere1(m, 1, exact=True) == Fraction(1, m)
    for L in range(1, 20):
        assert lca_task.bayes_accuracy_sphere1(2, L, exact=True) == Fraction(1, 2)
    for m in (3, 5, 8):
        for L in (4, 10, 30):
            err = 1 - lca_task.bayes_accuracy_sphere1(m, L)
            assert err <= lca_task.bayes_error_bound_sphere1(m, L)
        # the crude bound is about twice the exact error for long contexts
        err40 = float(1 - lca_task.bayes_accuracy_sphere1(m, 40, exact=True))
        assert abs(lca_task.bayes_error_bound_sphere1(m, 40) / err40 - 2) < 0.01
    # float path agrees with the Fraction path for large L and does not overflow
    assert lca_task.bayes_accuracy_sphere1(3, 2000) == 1.0
    assert (
        abs(
            lca_task.bayes_accuracy_sphere1(3, 60) - float(lca_task.bayes_accuracy_sphere1(3, 60, exact=True))
        )
        < 1e-15
    )


def test_closed_form_fails_outside_its_hypotheses():
    """With noise or with a ball neighbourhood the closed form is no longer the Bayes accuracy."""
    m, L = 3, 3
    cf = lca_task.bayes_accuracy_sphere1(m, L)
    assert abs(brute_bayes_accuracy(TaskSpec(m=m, L=L, noise=0.2)) - cf) > 0.05
    ball = TaskSpec(m=m, L=L, neighbourhood=lca.hamming_ball(2))
    assert abs(brute_bayes_accuracy(ball) - cf) > 0.05
    n = 20000
    mc = lca.bayes_accuracy(TaskSpec(m=6, L=6, noise=0.3), n=n, seed=2)
    assert lca_task.bayes_accuracy_sphere1(6, 6) - mc > 10 * math.sqrt(mc * (1 - mc) / n)


def test_support_size_law_by_counting():
    for D, L in [(3, 4), (4, 3), (5, 2), (2, 6)]:
        law = lca_task.support_size_law(D, L)
        assert sum(law) == 1
        counts = [0] * (min(D, L) + 1)
        for seq in itertools.product(range(D), repeat=L):
            counts[len(set(seq))] += 1
        assert [Fraction(c, D**L) for c in counts] == law
    assert lca_task.surjections(4, 2) == 14 and lca_task.surjections(3, 3) == 6


# --------------------------------------------------------------------------- enumeration
@pytest.mark.parametrize(
    "spec",
    [
        TaskSpec(m=3, L=3, neighbourhood=lca.hamming_ball(2)),
        TaskSpec(m=3, L=2, neighbourhood=lca.cluster(1)),
        TaskSpec(m=2, L=4, neighbourhood=lca.hamming_sphere(2)),
    ],
)
def test_enumeration_equals_brute_force(spec):
    assert abs(lca_task.bayes_accuracy_enumerate(spec) - brute_bayes_accuracy(spec)) < 1e-12


def test_enumeration_of_non_symmetric_custom_neighbourhood():
    """A custom family with unequal neighbourhood sizes exercises the general (all-y) path."""
    space = lca.LatentSpace(3)
    D = space.distances()
    mask = (D == 1) | ((D == 2) & (torch.arange(8)[:, None] < 4))
    spec = TaskSpec(m=3, L=3, neighbourhood=lca.custom(mask))
    assert abs(lca_task.bayes_accuracy_enumerate(spec) - brute_bayes_accuracy(spec)) < 1e-12


def test_enumeration_matches_monte_carlo_for_larger_tasks():
    n = 20000
    for spec in [
        TaskSpec(m=5, L=6, neighbourhood=lca.hamming_ball(2)),
        TaskSpec(m=6, L=8, neighbourhood=lca.cluster(2)),
    ]:
        ex = lca_task.bayes_accuracy_enumerate(spec)
        mc = lca.bayes_accuracy(spec, n=n, seed=5)
        assert abs(ex - mc) < 5 * math.sqrt(ex * (1 - ex) / n) + 1e-3


# --------------------------------------------------------------------------- thm-sampler-law
@pytest.mark.parametrize(
    "spec",
    [
        TaskSpec(m=2, L=3, noise=0.3),
        TaskSpec(m=3, L=2, neighbourhood=lca.hamming_ball(2), noise=0.1),
        TaskSpec(
            m=3,
            L=2,
            neighbourhood=lca.cluster(1),
            noise=0.4,
            noise_law=lca.other_clusters(1),
            clean_last=True,
        ),
    ],
)
def test_context_law_table_matches_log_likelihood(spec):
    contexts, joint = lca_task.context_law_table(spec)
    assert abs(float(joint.sum()) - 1) < 1e-12
    want = torch.exp(log_likelihood(spec, contexts)).T / spec.V
    assert torch.allclose(joint, want, atol=1e-15)
    # the table is the product of per-position laws: check one entry by hand
    c = contexts[5].tolist()
    P = spec.context_law()
    C = spec.clean_law()
    hand = 1 / spec.V
    for pos, x in enumerate(c):
        hand *= float((C if spec.clean_last and pos == spec.L - 1 else P)[1, x])
    assert abs(float(joint[1, 5]) - hand) < 1e-15


@pytest.mark.parametrize(
    "spec",
    [
        TaskSpec(m=2, L=3, noise=0.3),
        TaskSpec(
            m=3,
            L=2,
            neighbourhood=lca.cluster(1),
            noise=0.4,
            noise_law=lca.other_clusters(1),
            clean_last=True,
        ),
    ],
)
def test_sampler_passes_chi_square_on_whole_contexts(spec):
    ctx, y = sample(spec, 100_000, seed=77)
    assert lca_task.sampler_chi_square(spec, ctx, y).p_value > 1e-3


def test_chi_square_has_power_against_dependent_positions():
    """Same pair marginals as the true law but dependent positions: the whole-context test rejects
    it, which a test on (y, x_l) pairs alone could not do."""
    spec = TaskSpec(m=2, L=2, noise=0.3)
    ctx, y = sample(spec, 100_000, seed=78)
    ctx[:, 1] = ctx[:, 0]  # copy position 1 into position 2
    assert lca_task.sampler_chi_square(spec, ctx, y).p_value < 1e-6
    # and a wrong noise rate is rejected too
    ctx, y = sample(spec, 100_000, seed=79)
    assert lca_task.sampler_chi_square(spec.with_(noise=0.25), ctx, y).p_value < 1e-6


def test_chi_square_statistic_by_hand_and_pooling():
    counts = torch.tensor([18.0, 22.0, 30.0, 30.0])
    probs = torch.tensor([0.2, 0.2, 0.3, 0.3], dtype=torch.float64)
    res = lca_task.chi_square(counts, probs)
    assert abs(res.statistic - (4 / 20 + 4 / 20 + 0 + 0)) < 1e-12 and res.dof == 3
    # p-value of chi2 with 3 dof at 0.4: 1 - P(chi2_3 <= 0.4), via the closed form for odd dof
    x = 0.4
    p = math.erfc(math.sqrt(x / 2)) + math.sqrt(2 * x / math.pi) * math.exp(-x / 2)
    assert abs(res.p_value - p) < 1e-9
    # cells with small expectation are pooled; an impossible observed cell gives p = 0
    pooled = lca_task.chi_square(
        torch.tensor([50.0, 48.0, 1.0, 1.0]), torch.tensor([0.5, 0.48, 0.01, 0.01], dtype=torch.float64)
    )
    assert pooled.cells == 3
    assert (
        lca_task.chi_square(torch.tensor([5.0, 1.0]), torch.tensor([1.0, 0.0], dtype=torch.float64)).p_value
        == 0.0
    )


def test_context_codes_roundtrip():
    c = torch.tensor([[0, 3, 1], [2, 2, 0]])
    codes = lca_task.context_codes(c, 4)
    assert codes.tolist() == [0 * 16 + 3 * 4 + 1, 2 * 16 + 2 * 4 + 0]
    assert torch.equal(lca_task.context_codes_inverse(codes, 4, 3), c)


# --------------------------------------------------------------------------- validation
def test_bad_inputs_raise_value_errors_naming_the_parameter():
    spec = TaskSpec(m=3, L=2)
    cases = [
        (lambda: lca_task.bayes_accuracy_sphere1(0, 3), "m"),
        (lambda: lca_task.bayes_accuracy_sphere1(3, 0), "L"),
        (lambda: lca_task.bayes_accuracy_sphere1(3, 5000, exact=True), "L"),
        (lambda: lca_task.bayes_accuracy_enumerate(spec.with_(noise=0.1)), "noise"),
        (lambda: lca_task.bayes_accuracy_enumerate("spec"), "spec"),
        (
            lambda: lca_task.bayes_accuracy_enumerate(TaskSpec(m=8, L=2, neighbourhood=lca.hamming_ball(3))),
            "max_cells",
        ),
        (lambda: lca_task.context_law_table(TaskSpec(m=8, L=4)), "max_contexts"),
        (lambda: lca_task.support_size_law(0, 3), "D"),
        (lambda: lca_task.chi_square(torch.ones(3), torch.ones(2) / 2), "same shape"),
        (lambda: lca_task.chi_square(torch.ones(2), torch.tensor([0.7, 0.7])), "probs"),
        (lambda: lca_task.context_codes(torch.tensor([[0, 9]]), 4), "contexts"),
        (
            lambda: lca_task.sampler_chi_square(
                spec, torch.zeros(3, 5, dtype=torch.long), torch.zeros(3, dtype=torch.long)
            ),
            "contexts",
        ),
    ]
    for fn, name in cases:
        with pytest.raises(ValueError, match=name):
            fn()


# --------------------------------------------------------------------------- exercise checkers
def _stub(*args):
    raise NotImplementedError


def test_check_neighbourhood_mask():
    assert lca_task.check_neighbourhood_mask(lambda m, r: lca.hamming_sphere(r).mask(m))
    assert not lca_task.check_neighbourhood_mask(lambda m, r: lca.hamming_ball(r).mask(m))
    assert not lca_task.check_neighbourhood_mask(  # off by one radius
        lambda m, r: lca.LatentSpace(m).distances() == r - 1
    )
    assert not lca_task.check_neighbourhood_mask(  # target included
        lambda m, r: (lca.LatentSpace(m).distances() == r) | torch.eye(2**m, dtype=torch.bool)
    )
    assert "not implemented yet" in repr(lca_task.check_neighbourhood_mask(_stub))


def _posterior_ref(m, contexts):
    return bayes_posterior(TaskSpec(m=m, L=contexts.shape[1]), contexts)


def test_check_bayes_posterior():
    assert lca_task.check_bayes_posterior(_posterior_ref)

    def soft_vote(m, contexts):  # counts explained tokens instead of requiring all
        ok = (lca.LatentSpace(m).distances()[contexts] == 1).double().sum(1)
        return ok / ok.sum(1, keepdim=True)

    def unnormalised(m, contexts):
        return (lca.LatentSpace(m).distances()[contexts] == 1).all(1).double()

    assert not lca_task.check_bayes_posterior(soft_vote)
    assert not lca_task.check_bayes_posterior(unnormalised)
    assert "not implemented yet" in repr(lca_task.check_bayes_posterior(_stub))


def test_check_sample_context():
    def good(m, L, y, g):
        return y ^ (1 << torch.randint(0, m, (L,), generator=g))

    def repeated(m, L, y, g):  # one neighbour, repeated
        return (y ^ (1 << torch.randint(0, m, (1,), generator=g))).repeat(L)

    def flips_maybe_nothing(m, L, y, g):  # sometimes returns y itself
        k = torch.randint(0, m + 1, (L,), generator=g)
        return torch.where(k < m, y ^ (1 << k.clamp(max=m - 1)), torch.full_like(k, y))

    def biased(m, L, y, g):  # bit 0 twice as likely
        k = torch.randint(0, m + 1, (L,), generator=g) % m
        return y ^ (1 << k)

    assert lca_task.check_sample_context(good)
    assert not lca_task.check_sample_context(repeated)
    assert not lca_task.check_sample_context(flips_maybe_nothing)
    assert not lca_task.check_sample_context(biased)
    assert "not implemented yet" in repr(lca_task.check_sample_context(_stub))


def test_check_sphere2_pair_accuracy():
    def reference(m):
        D = math.comb(m, 2)
        return 1 / D**2 + (1 / D if m >= 3 else 0) + math.comb(m - 2, 2) / (6 * D)

    assert lca_task.check_sphere2_pair_accuracy(reference)
    assert lca_task.check_sphere2_pair_accuracy(lambda m: lca_task.bayes_accuracy_sphere2_pair(m))

    def no_far_candidates(m):  # forgets the candidates at distance 4 from the target
        D = math.comb(m, 2)
        return 1 / D**2 + (2 * (m - 2) / D) / (m - 1 if m >= 3 else 1) + math.comb(m - 2, 2) / (5 * D)

    def no_special_case(m):  # the shared-bit term at m = 2, where no two pairs share a bit
        D = math.comb(m, 2)
        return 1 / D**2 + 1 / D + math.comb(m - 2, 2) / (6 * D)

    for wrong in (no_far_candidates, no_special_case):
        res = lca_task.check_sphere2_pair_accuracy(wrong)
        assert not res and "expected" in repr(res) and "got" in repr(res)
    assert "not implemented yet" in repr(lca_task.check_sphere2_pair_accuracy(_stub))


# --------------------------------------------------------------------------- ex-lca-sphere2
def exact_bayes_accuracy(spec: TaskSpec) -> float:
    """Bayes accuracy as an exact weighted sum over every (context, target) pair of the task
    (lca.task.enumerate_task), ties split uniformly (lca.task.bayes_correct)."""
    contexts, targets, probs = enumerate_task(spec)
    return float((probs * bayes_correct(spec, contexts, targets)).sum())


@pytest.mark.parametrize("m", range(2, 9))
def test_sphere2_pair_closed_form_equals_enumeration(m):
    """The exercise's result: acc = 1/D^2 + [m >= 3]/D + C(m-2, 2)/(6 D), D = C(m, 2), for the
    noise-free N_2 task with L = 2, against exact enumeration of every (context, target)."""
    spec = TaskSpec(m=m, L=2, neighbourhood=lca.hamming_sphere(2))
    cf = lca_task.bayes_accuracy_sphere2_pair(m, exact=True)
    assert abs(float(cf) - exact_bayes_accuracy(spec)) < 1e-12
    if m <= 6:
        assert abs(float(cf) - lca_task.bayes_accuracy_enumerate(spec)) < 1e-12
    if m <= 3:
        assert abs(float(cf) - brute_bayes_accuracy(spec)) < 1e-12
    assert lca_task.bayes_accuracy_sphere2_pair(m) == float(cf)


def test_sphere2_pair_consistent_set_sizes():
    """The proof's case analysis: |C(x)| is D, 2m - 4 or 6 for one pair, two pairs sharing a bit,
    or two disjoint pairs of flipped bits (counted from the exact posterior at m = 6)."""
    m = 6
    spec = TaskSpec(m=m, L=2, neighbourhood=lca.hamming_sphere(2))
    e = lambda *bits: sum(1 << (m - 1 - b) for b in bits)  # noqa: E731  token with these bits set
    contexts = torch.tensor([[e(0, 1), e(0, 1)], [e(0, 1), e(0, 2)], [e(0, 1), e(2, 3)]])
    sizes = (bayes_posterior(spec, contexts) > 0).sum(1).tolist()
    assert sizes == [math.comb(m, 2), 2 * m - 4, 6]


def test_sphere2_pair_closed_form_fails_outside_its_hypotheses():
    """With noise, or with a third context token, the formula is no longer the Bayes accuracy."""
    for m in (3, 4, 5):
        cf = lca_task.bayes_accuracy_sphere2_pair(m)
        noisy = TaskSpec(m=m, L=2, neighbourhood=lca.hamming_sphere(2), noise=0.3)
        assert abs(exact_bayes_accuracy(noisy) - cf) > 0.01
        longer = TaskSpec(m=m, L=3, neighbourhood=lca.hamming_sphere(2))
        assert abs(exact_bayes_accuracy(longer) - cf) > 0.01
    assert lca_task.bayes_accuracy_sphere2_pair(16) - 1 / 6 < 0.02  # the large-m limit 1/6


# --------------------------------------------------------------------------- ex-lca-m2
def m2_noise_lower_bound(noise: float, L: int) -> float:
    """The solution's bound on the Bayes accuracy at m = 2 with noise: one minus the probability
    that at most half of the tokens fall in N_1(y), minus half the probability that the target's
    complement never shows up."""
    p_in = 1 - noise / 3
    majority_fails = sum(math.comb(L, k) * p_in**k * (1 - p_in) ** (L - k) for k in range(L // 2 + 1))
    return 1 - majority_fails - 0.5 * (1 - noise / 3) ** L


@pytest.mark.parametrize("noise", [0.1, 0.3, 0.6])
def test_m2_noise_breaks_the_tie(noise):
    """At m = 2 the noise-free ceiling is 1/2 for every L; with noise it is at least the
    solution's bound, which tends to 1, and it grows with L."""
    accs = []
    for L in range(1, 9):
        acc = exact_bayes_accuracy(TaskSpec(m=2, L=L, noise=noise))
        assert acc >= m2_noise_lower_bound(noise, L) - 1e-12, (noise, L)
        accs.append(acc)
    assert accs[-1] > 0.5 + 0.05 and accs[-1] > accs[1]
    assert m2_noise_lower_bound(noise, 400) > 0.99
    for L in range(1, 9):  # without noise (the hypothesis removed) the tie is never broken
        assert abs(exact_bayes_accuracy(TaskSpec(m=2, L=L)) - 0.5) < 1e-12


# --------------------------------------------------------------------------- figures (smoke)
def test_plots_return_figures():
    import matplotlib.pyplot as plt

    space = lca.LatentSpace(4)
    ctx, y = sample(TaskSpec(m=4, L=5), 1, seed=0)
    Z = space.latents
    figs = [
        lca_task.plot_context(Z[ctx[0]], Z[y[0]], tokens=ctx[0], target=y[0]),
        lca_task.plot_neighbourhood_masks(space.distances(), {"s": lca.hamming_sphere(1).mask(space)}),
        lca_task.plot_bayes_accuracy(
            [
                {
                    "title": "t",
                    "L": [1, 2],
                    "mc": {"a": [0.1, 0.2]},
                    "exact": {"a": [0.1, 0.25]},
                    "reference": {"r": [0, 1]},
                }
            ]
        ),
        lca_task.plot_context_posterior(Z[ctx[0]], Z[y[0]], torch.rand(16), int(y[0])),
    ]
    for fig in figs:
        assert isinstance(fig, matplotlib.figure.Figure)
        plt.close(fig)


# Issue 16: huge work refused before it starts, NaN refused, no silent integer wrap-around.


def test_exact_sums_and_tables_refuse_huge_work_at_once():
    """Each call below ran for minutes or tried to allocate gigabytes; now a ValueError naming
    the parameter and the limit, before any work."""
    for call, name in [
        (lambda: lca_task.context_law_table(TaskSpec(10, 2)), "spec is too large"),
        (lambda: lca_task.context_law_table(TaskSpec(1, 30)), "max_contexts"),
        (lambda: lca_task.surjections(20_000, 20_000), "L and k are too large"),
        (lambda: lca_task.surjections(200_000, 3), "L must be in"),
        (lambda: lca_task.support_size_law(10_000, 2_000), "D and L are too large"),
        (lambda: lca_task.bayes_accuracy_enumerate(TaskSpec(3, 2), max_cells=2**27), "max_cells"),
    ]:
        with pytest.raises(ValueError, match=name):
            call()
    # the exact answers that need no big sum are still given
    assert lca_task.surjections(5, 100_000) == 0  # more tokens than positions
    assert lca_task.surjections(0, 0) == 1 and lca_task.surjections(3, 0) == 0
    assert lca_task.surjections(4000, 3) == 3**4000 - 3 * 2**4000 + 3
    law = lca_task.support_size_law(300, 300)
    assert sum(law) == 1 and len(law) == 301


def test_chi_square_refuses_nan_inf_and_negative_counts():
    counts = torch.tensor([30.0, 40.0, 30.0])
    probs = torch.tensor([0.3, 0.4, 0.3], dtype=torch.float64)
    for c, p, name in [
        (counts, torch.tensor([float("nan"), 0.5, 0.5]), "probs"),
        (counts, torch.tensor([float("inf"), 0.5, 0.5]), "probs"),
        (torch.tensor([float("nan"), 40.0, 30.0]), probs, "counts"),
        (torch.tensor([float("inf"), 40.0, 30.0]), probs, "counts"),
        (torch.tensor([-10.0, 40.0, 30.0]), probs, "counts"),
    ]:
        with pytest.raises(ValueError, match=name):
            lca_task.chi_square(c, p)
    assert lca_task.chi_square(counts, probs).p_value == pytest.approx(1.0)


def test_context_codes_never_wrap_around():
    """65535 * 65536^4 + ... does not fit in an int64: a ValueError naming V and L, not -1."""
    with pytest.raises(ValueError, match="V and L"):
        lca_task.context_codes(torch.full((1, 5), 65535), 65536)
    with pytest.raises(ValueError, match="V and L"):
        lca_task.context_codes_inverse(torch.tensor([5]), 65536, 5)
    with pytest.raises(ValueError, match="V and L"):
        lca_task.context_codes_inverse(torch.tensor([5]), 2, 64)
    with pytest.raises(ValueError, match="V and L"):
        lca_task.context_codes(torch.zeros((1, 64), dtype=torch.long), 2)
    for codes in (torch.tensor([8]), torch.tensor([-1]), torch.tensor([1.0]), torch.tensor([[1]]), [1]):
        with pytest.raises(ValueError, match="codes"):
            lca_task.context_codes_inverse(codes, 2, 3)
    with pytest.raises(ValueError, match="contexts"):
        lca_task.context_codes(torch.tensor([[0, 2]]), 2)
    # the largest codes that fit round-trip exactly
    top = torch.tensor([2**63 - 1])
    ones = lca_task.context_codes_inverse(top, 2, 63)
    assert bool((ones == 1).all())
    assert int(lca_task.context_codes(ones, 2)[0]) == 2**63 - 1
    ctx = torch.tensor([[65535, 65535, 65535], [0, 1, 2]])
    codes = lca_task.context_codes(ctx, 65536)
    assert codes.tolist() == [65536**3 - 1, 65536 + 2]
    assert torch.equal(lca_task.context_codes_inverse(codes, 65536, 3), ctx)
