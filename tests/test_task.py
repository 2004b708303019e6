"""Tests of lca.task: TaskSpec checks, the sampler's law, the Bayes posterior and accuracy."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import lca
from lca.task import (
    TaskSpec,
    bayes_correct,
    bayes_posterior,
    check_spec,
    count_vector,
    enumerate_task,
    log_likelihood,
    sample,
)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(m=0, L=4), "m"),
        (dict(m=17, L=4), "m"),
        (dict(m=2.5, L=4), "m"),
        (dict(m=4, L=0), "L"),
        (dict(m=4, L=-3), "L"),
        (dict(m=4, L=4, noise=-0.1), "noise"),
        (dict(m=4, L=4, noise=1.0), "noise"),
        (dict(m=4, L=4, noise=float("nan")), "noise"),
        (dict(m=3, L=4, neighbourhood=lca.cluster(3)), "k"),
        (dict(m=3, L=4, neighbourhood=lca.hamming_sphere(4)), "r"),
        (dict(m=3, L=4, neighbourhood="sphere"), "neighbourhood"),
        (dict(m=3, L=4, noise=0.1, noise_law="gaussian"), "noise_law"),
    ],
)
def test_taskspec_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=rf"\b{name} must"):
        TaskSpec(**kwargs)


def test_sample_and_posterior_reject_bad_input():
    spec = TaskSpec(m=3, L=4)
    with pytest.raises(ValueError, match="n must"):
        sample(spec, -1)
    with pytest.raises(ValueError, match="seed must"):
        sample(spec, 3, seed=-5)
    with pytest.raises(ValueError, match="spec must"):
        sample("task", 3)
    ctx, _ = sample(spec, 5, seed=0)
    with pytest.raises(ValueError, match="contexts must have an integer dtype"):
        bayes_posterior(spec, ctx.float())
    with pytest.raises(ValueError, match=r"contexts must have shape \[n, L=4\]"):
        bayes_posterior(spec, ctx[:, :3])
    with pytest.raises(ValueError, match="contexts must hold token ids"):
        bayes_posterior(spec, ctx + 8)
    with pytest.raises(ValueError, match="m must be at most 12"):
        bayes_posterior(TaskSpec(m=13, L=2), torch.zeros(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="r must"):
        lca.hamming_sphere(0)


# --------------------------------------------------------------------------- sampler properties
families = st.sampled_from(["sphere1", "sphere2", "ball2", "cluster1", "cluster2"])


def make_spec(m, L, fam, noise, law, clean_last):
    nb = {
        "sphere1": lca.hamming_sphere(1),
        "sphere2": lca.hamming_sphere(2),
        "ball2": lca.hamming_ball(2),
        "cluster1": lca.cluster(1),
        "cluster2": lca.cluster(2),
    }[fam]
    noise_law = lca.other_clusters(1) if law else "uniform"
    return TaskSpec(m=m, L=L, neighbourhood=nb, noise=noise, noise_law=noise_law, clean_last=clean_last)


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(3, 7),
    L=st.integers(1, 12),
    fam=families,
    noise=st.sampled_from([0.0, 0.1, 0.5, 0.9]),
    law=st.booleans(),
    clean_last=st.booleans(),
    seed=st.integers(0, 2**31),
    n=st.integers(1, 64),
)
def test_sampler_properties(m, L, fam, noise, law, clean_last, seed, n):
    spec = make_spec(m, L, fam, noise, law, clean_last)
    ctx, y = sample(spec, n, seed=seed)
    assert ctx.shape == (n, L) and y.shape == (n,)
    assert ctx.dtype == torch.long and y.dtype == torch.long
    assert int(ctx.min()) >= 0 and int(ctx.max()) < spec.V
    assert not bool((ctx == y[:, None]).any()), "a target appeared in its own context"
    inside = spec.neighbourhood.contains(spec.space, y[:, None], ctx)
    if noise == 0:
        assert bool(inside.all())
    if clean_last:
        assert bool(inside[:, -1].all())
    # the same seed gives the same sample; a generator continues a stream
    ctx2, y2 = sample(spec, n, seed=seed)
    assert torch.equal(ctx, ctx2) and torch.equal(y, y2)


def chi_square_pvalue(counts: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson chi-square goodness-of-fit p-value over cells with positive probability."""
    keep = probs > 0
    assert int(counts[~keep].sum()) == 0, "the sampler produced an impossible (y, x) pair"
    n = counts.sum()
    expected = n * probs[keep]
    stat = float(((counts[keep] - expected) ** 2 / expected).sum())
    dof = int(keep.sum()) - 1
    return float(
        torch.special.gammaincc(
            torch.tensor(dof / 2.0, dtype=torch.float64), torch.tensor(stat / 2.0, dtype=torch.float64)
        )
    )


@pytest.mark.parametrize(
    "spec",
    [
        TaskSpec(m=4, L=3),
        TaskSpec(m=4, L=3, neighbourhood=lca.hamming_ball(2), noise=0.3),
        TaskSpec(m=4, L=3, neighbourhood=lca.cluster(2), noise=0.5, noise_law=lca.other_clusters(2)),
    ],
)
def test_sampler_frequencies_match_the_law(spec):
    """Pairs (y, x_l) have law P(y) P(x | y) = P[y, x] / V; a chi-square test at a fixed seed."""
    ctx, y = sample(spec, 60_000, seed=123)
    V = spec.V
    pairs = (y[:, None] * V + ctx).flatten()
    counts = torch.bincount(pairs, minlength=V * V).double()
    probs = (spec.context_law() / V).flatten()
    assert chi_square_pvalue(counts, probs) > 1e-3
    # the test has power: the same counts against a wrong law (noise ignored) are rejected
    wrong = (
        (spec.clean_law() / V).flatten()
        if spec.noise > 0
        else (TaskSpec(m=4, L=3, neighbourhood=lca.hamming_ball(2)).context_law() / V).flatten()
    )
    with pytest.raises(AssertionError):
        assert chi_square_pvalue(counts, wrong) > 1e-3


def test_clean_last_law():
    spec = TaskSpec(
        m=4, L=2, neighbourhood=lca.cluster(2), noise=0.6, noise_law=lca.other_clusters(2), clean_last=True
    )
    ctx, y = sample(spec, 40_000, seed=7)
    in_cluster = spec.neighbourhood.contains(spec.space, y[:, None], ctx).double().mean(0)
    assert in_cluster[1] == 1.0
    assert abs(float(in_cluster[0]) - 0.4) < 0.02


def test_last_law_and_check_spec():
    spec = TaskSpec(
        m=4, L=3, neighbourhood=lca.cluster(2), noise=0.6, noise_law=lca.other_clusters(2), clean_last=True
    )
    assert torch.equal(spec.last_law(), spec.clean_law())
    assert not torch.equal(spec.last_law(), spec.context_law())
    for other in (spec.with_(clean_last=False), spec.with_(noise=0.0)):
        assert torch.equal(other.last_law(), other.context_law())
    assert check_spec(spec) is spec
    with pytest.raises(ValueError, match="task must be a TaskSpec, got str"):
        check_spec("N_1", "task")


def test_count_vector_matches_loops():
    ctx = torch.randint(0, 8, (5, 7), generator=torch.Generator().manual_seed(3))
    ctx[0, :3] = 2  # repeated tokens
    want = torch.zeros(5, 8, dtype=torch.float64)
    for i, j in itertools.product(range(5), range(7)):
        want[i, ctx[i, j]] += 1
    assert torch.equal(count_vector(ctx, 8), want)
    freq = count_vector(ctx, 8, 1 / 7)  # a sum of 1/L per position
    assert torch.allclose(freq, want / 7, atol=1e-15)
    assert torch.allclose(freq.sum(1), torch.ones(5, dtype=torch.float64))
    assert count_vector(ctx, 8, dtype=torch.long).dtype == torch.long
    with pytest.raises(ValueError, match="V"):
        count_vector(ctx, 0)
    with pytest.raises(ValueError, match="contexts"):
        count_vector(ctx.float(), 8)
    with pytest.raises(ValueError, match="contexts"):
        count_vector(ctx, 4)  # token ids beyond V


# --------------------------------------------------------------------------- Bayes posterior
def brute_posterior(spec: TaskSpec, context: list[int]) -> torch.Tensor:
    P = spec.context_law()
    C = spec.clean_law()
    like = torch.ones(spec.V, dtype=torch.float64)
    for pos, x in enumerate(context):
        law = C if (spec.clean_last and pos == len(context) - 1) else P
        like = like * law[:, x]
    return like / like.sum()


@pytest.mark.parametrize(
    "spec",
    [
        TaskSpec(m=3, L=3),
        TaskSpec(m=3, L=4, noise=0.25),
        TaskSpec(m=3, L=3, neighbourhood=lca.hamming_ball(2), noise=0.1),
        TaskSpec(
            m=4,
            L=3,
            neighbourhood=lca.cluster(1),
            noise=0.5,
            noise_law=lca.other_clusters(1),
            clean_last=True,
        ),
    ],
)
def test_bayes_posterior_equals_enumeration(spec):
    ctx, _ = sample(spec, 50, seed=3)
    post = bayes_posterior(spec, ctx)
    for i in range(ctx.shape[0]):
        want = brute_posterior(spec, ctx[i].tolist())
        assert torch.allclose(post[i], want, atol=1e-12)


def exact_bayes_accuracy(spec: TaskSpec) -> float:
    """Sum over every context of max_y P(y, context): the exact Bayes accuracy."""
    V, L = spec.V, spec.L
    total = 0.0
    for context in itertools.product(range(V), repeat=L):
        P = spec.context_law()
        like = torch.ones(V, dtype=torch.float64)
        for x in context:
            like = like * P[:, x]
        total += float(like.max()) / V
    return total


@pytest.mark.parametrize("spec", [TaskSpec(m=2, L=3), TaskSpec(m=3, L=2, noise=0.3)])
def test_bayes_accuracy_matches_exact_enumeration(spec):
    exact = exact_bayes_accuracy(spec)
    n = 40_000
    mc = lca.bayes_accuracy(spec, n=n, seed=11)
    assert abs(mc - exact) < 4 * math.sqrt(exact * (1 - exact) / n) + 1e-3
    # and the per-example tie-splitting is right: one example, posterior uniform over 2 targets
    s = TaskSpec(m=2, L=1)
    ctx = torch.tensor([[0]])  # token 00: neighbours of targets 01 and 10
    assert torch.allclose(bayes_correct(s, ctx, torch.tensor([1])), torch.tensor([0.5], dtype=torch.float64))
    assert float(bayes_correct(s, ctx, torch.tensor([3]))) == 0.0


def test_log_likelihood_is_minus_inf_for_impossible_targets():
    spec = TaskSpec(m=3, L=2)
    ll = log_likelihood(spec, torch.tensor([[1, 2]]))  # 001 and 010: common neighbours 000, 011
    finite = torch.isfinite(ll[0]).nonzero().flatten().tolist()
    assert finite == [0, 3]


@pytest.mark.parametrize(
    "spec",
    [
        TaskSpec(2, 3),
        TaskSpec(2, 2, noise=0.3),
        TaskSpec(3, 2, lca.cluster(1), noise=0.4, noise_law=lca.other_clusters(1), clean_last=True),
    ],
)
def test_enumerate_task_is_the_law_of_whole_contexts(spec):
    """Every (context, target) with positive probability once, with its probability: against
    the product of the position laws over all V^L contexts."""
    ctx, y, p = enumerate_task(spec)
    assert abs(float(p.sum()) - 1.0) < 1e-12 and bool((p > 0).all())
    P, last = spec.context_law(), spec.last_law()
    want = {}
    for t in range(spec.V):
        for x in itertools.product(range(spec.V), repeat=spec.L):
            q = math.prod(float(P[t, v]) for v in x[:-1]) * float(last[t, x[-1]]) / spec.V
            if q > 0:
                want[(x, t)] = q
    got = {(tuple(c), int(t)): float(q) for c, t, q in zip(ctx.tolist(), y, p)}
    assert got.keys() == want.keys()
    assert max(abs(got[k] - want[k]) for k in want) < 1e-15
    with pytest.raises(ValueError, match="max_rows"):
        enumerate_task(spec, max_rows=1)


# ------------------------------------------------- strings are no flags or numbers (#16 items 2, 5, 9, 11)
@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(m=3, L=4, noise=0.9, clean_last="False"), "clean_last"),
        (dict(m=3, L=4, clean_last=1), "clean_last"),
        (dict(m=3, L=4, noise="0.5"), "noise"),
        (dict(m=3, L=4, noise=True), "noise"),
        (dict(m="3", L=4), "m"),
        (dict(m=3, L=4.0), "L"),
    ],
)
def test_taskspec_refuses_strings_and_bools_for_numbers_and_flags(kwargs, name):
    with pytest.raises(TypeError, match=rf"\b{name} must"):
        TaskSpec(**kwargs)


def test_taskspec_stores_converted_values_so_equal_specs_are_equal():
    import numpy as np

    a = TaskSpec(np.int64(3), 4, noise=np.float32(0.5), clean_last=np.bool_(True))
    b = TaskSpec(3, 4, noise=0.5, clean_last=True)
    assert a == b and hash(a) == hash(b)
    assert type(a.m) is int and type(a.noise) is float and a.clean_last is True


def test_dense_tables_are_refused_before_they_are_allocated():
    # V = 2**16: a V x V table would need 32 GiB; the guard names m and the limit
    with pytest.raises(ValueError, match=r"\bm is too large"):
        TaskSpec(16, 2).context_law()
    with pytest.raises(ValueError, match=r"\bm is too large"):
        lca.LatentSpace(16).distances()
    with pytest.raises(ValueError, match=r"\bm is too large"):
        sample(TaskSpec(16, 4, noise=0.5, noise_law=lca.other_clusters(2)), 1, seed=0)
    ctx, y = sample(TaskSpec(16, 4, noise=0.5), 3, seed=0)  # the sparse sampler still works
    assert ctx.shape == (3, 4)


def test_a_family_is_checked_against_the_space_when_its_mask_is_built():
    with pytest.raises(ValueError, match=r"\bk must"):
        lca.cluster(5).mask(3)
    with pytest.raises(ValueError, match=r"\bk must"):
        lca.cluster(5).table(3)
    with pytest.raises(ValueError, match=r"\br must"):
        lca.hamming_sphere(4).degrees(3)
    assert int(lca.cluster(1).mask(3).sum()) == 8 * 3  # a valid family still builds


def test_an_impossible_context_warns_instead_of_giving_silent_nan_rows():
    spec = TaskSpec(3, 2)  # noise-free N_1: tokens 1 and 6 (3 bits apart) have no common target
    with pytest.warns(RuntimeWarning, match="impossible"):
        post = bayes_posterior(spec, torch.tensor([[1, 6], [1, 2]]))
    assert torch.isnan(post[0]).all() and torch.isfinite(post[1]).all()
