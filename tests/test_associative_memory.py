"""Tests of chapter 1 (lca.associative_memory): outer-product memories and their closed forms.

Every theorem is checked against an independent computation (brute-force loops, Monte Carlo,
analytic special cases) where its hypotheses hold, and shown to fail where they do not.
"""

import math

import matplotlib
import pytest
import torch

from lca import associative_memory

matplotlib.use("Agg")


# --------------------------------------------------------------------------- storage and recall
@pytest.mark.parametrize("N,d,dv", [(1, 3, 2), (5, 4, 7), (12, 6, 6)])
def test_store_and_recall_match_loops(N, d, dv):
    g = torch.Generator().manual_seed(N)
    keys = torch.randn(N, d, generator=g, dtype=torch.float64)
    values = torch.randn(N, dv, generator=g, dtype=torch.float64)
    W = torch.zeros(dv, d, dtype=torch.float64)
    for i in range(N):
        W += torch.outer(values[i], keys[i])
    assert torch.allclose(associative_memory.store(keys, values), W)
    q = torch.randn(4, d, generator=g, dtype=torch.float64)
    want = torch.stack([W @ q[k] for k in range(4)])
    assert torch.allclose(associative_memory.recall(W, q), want)
    best = [int(torch.argmax(torch.stack([values[i] @ (W @ q[k]) for i in range(N)]))) for k in range(4)]
    assert associative_memory.recall_argmax(W, q, values).tolist() == best


def test_key_generators():
    U = associative_memory.random_keys(20000, 8, seed=0)
    assert U.shape == (20000, 8)
    assert abs(float(U.var()) - 1 / 8) < 0.005  # entries N(0, 1/d)
    Q = associative_memory.orthonormal_keys(5, 9, seed=1)
    assert torch.allclose(Q @ Q.T, torch.eye(5, dtype=Q.dtype), atol=1e-12)
    assert torch.equal(
        associative_memory.random_keys(3, 4, seed=5), associative_memory.random_keys(3, 4, seed=5)
    )
    C = associative_memory.correlated_keys(4000, 32, 0.3, seed=2)
    G = C @ C.T
    off = G[~torch.eye(4000, dtype=torch.bool)]
    # one shared component: overlaps average rho * ||c||^2 ~ 0.3
    assert 0.15 < float(off.mean()) < 0.45


# --------------------------------------------------------------------------- thm-orthonormal-recall
@pytest.mark.parametrize("N,d", [(1, 1), (6, 10), (10, 10)])
def test_orthonormal_keys_recall_exactly(N, d):
    keys = associative_memory.orthonormal_keys(N, d, seed=N + d)
    values = torch.randn(N, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    W = associative_memory.store(keys, values)
    assert torch.allclose(associative_memory.recall(W, keys), values, atol=1e-12)
    onehot = torch.eye(N, dtype=keys.dtype)
    hits = associative_memory.recall_argmax(associative_memory.store(keys, onehot), keys, onehot)
    assert torch.equal(hits, torch.arange(N))


def test_orthonormal_recall_hypotheses_matter():
    values = torch.randn(6, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    # orthogonal but not normalised keys: recall is scaled, not exact
    keys = 2.0 * associative_memory.orthonormal_keys(6, 8, seed=3)
    recalled = associative_memory.recall(associative_memory.store(keys, values), keys)
    assert not torch.allclose(recalled, values, atol=1e-3)
    # Gaussian (non-orthogonal) keys: recall error is positive
    keys = associative_memory.random_keys(6, 8, seed=3)
    recalled = associative_memory.recall(associative_memory.store(keys, values), keys)
    assert float((recalled - values).abs().max()) > 1e-2
    # N > d: no matrix at all recalls one-hot values exactly (least squares leaves a residual)
    N, d = 12, 8
    keys = associative_memory.random_keys(N, d, seed=4)
    Y = torch.eye(N, dtype=torch.float64)
    W_T = torch.linalg.lstsq(keys, Y).solution  # best W^T for keys @ W^T = Y
    assert float(((keys @ W_T - Y) ** 2).sum()) > 1.0  # >= N - d = 4 by rank
    with pytest.raises(ValueError, match="N"):
        associative_memory.orthonormal_keys(12, 8)


# --------------------------------------------------------------------------- thm-crosstalk
def test_crosstalk_decomposition_is_exact():
    keys = associative_memory.random_keys(9, 5, seed=0)
    values = torch.randn(9, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    recalled = associative_memory.recall(associative_memory.store(keys, values), keys)
    norms = (keys**2).sum(1, keepdim=True)
    c = associative_memory.crosstalk(keys, values)
    brute = torch.stack([sum((keys[i] @ keys[j]) * values[i] for i in range(9) if i != j) for j in range(9)])
    assert torch.allclose(c, brute)
    assert torch.allclose(recalled, norms * values + c)


def _gram_samples(N, d, B, seed, rho=None):
    g = torch.Generator().manual_seed(seed)
    if rho is None:
        U = torch.randn((B, N, d), generator=g, dtype=torch.float64) / math.sqrt(d)
    else:
        c = torch.randn((B, 1, d), generator=g, dtype=torch.float64)
        U = (
            math.sqrt(rho) * c + math.sqrt(1 - rho) * torch.randn((B, N, d), generator=g, dtype=torch.float64)
        ) / math.sqrt(d)
    return U @ U.transpose(1, 2)


@pytest.mark.parametrize("N,d", [(16, 4), (40, 12)])
def test_crosstalk_moments_match_monte_carlo(N, d):
    B = 6000
    G = _gram_samples(N, d, B, seed=N * d)
    s = torch.diagonal(G, dim1=1, dim2=2)[:, 0]  # one query per memory: independent
    X = G[:, 0, 1:]  # its N - 1 overlaps
    c_sq = (X**2).sum(1)
    mse = (s - 1) ** 2 + c_sq
    ex = associative_memory.crosstalk_moments(N, d)

    def agree(sample, value, name):
        se = float(sample.std()) / math.sqrt(sample.numel())
        assert abs(float(sample.mean()) - value) < 5 * se + 1e-12, (name, float(sample.mean()), value)

    agree(s, ex["signal_mean"], "signal mean")
    agree((s - 1) ** 2, ex["signal_var"], "signal variance")
    agree(X[:, 0], 0.0, "overlap mean")
    agree(X[:, 0] ** 2, ex["coef_var"], "overlap variance")
    agree(X[:, 0] ** 4, ex["coef_fourth"], "overlap fourth moment")
    agree(X[:, 0] * X[:, 1], 0.0, "overlaps uncorrelated")
    agree(X[:, 0] ** 2 * X[:, 1] ** 2, ex["coef_sq_cov"] + ex["coef_var"] ** 2, "E X_i^2 X_k^2")
    agree(c_sq, ex["crosstalk_sq_mean"], "crosstalk norm")
    agree((c_sq - ex["crosstalk_sq_mean"]) ** 2, ex["crosstalk_sq_var"], "crosstalk variance")
    agree(mse, ex["mse"], "recall MSE")
    assert ex["mse"] == associative_memory.recall_mse(N, d) == (N + 1) / d


def test_recall_mse_general_values_by_monte_carlo():
    """(||v_j||^2 + sum_i ||v_i||^2) / d for values of unequal norms."""
    N, d, B = 6, 5, 20000
    g = torch.Generator().manual_seed(3)
    values = torch.randn(N, 3, generator=g, dtype=torch.float64) * torch.arange(1, N + 1)[:, None]
    U = torch.randn((B, N, d), generator=g, dtype=torch.float64) / math.sqrt(d)
    W = values.T @ U  # [B, 3, d]
    err = ((W @ U[:, 0, :, None]).squeeze(-1) - values[0]) ** 2
    err = err.sum(1)
    want = float((values[0] ** 2).sum() + (values**2).sum()) / d
    assert abs(float(err.mean()) - want) < 5 * float(err.std()) / math.sqrt(B)


def test_crosstalk_formulas_fail_for_correlated_keys():
    """Exchangeable but dependent keys: overlaps have mean ~rho and the MSE is far above (N+1)/d."""
    N, d = 32, 16
    G = _gram_samples(N, d, 3000, seed=9, rho=0.4)
    X = G[:, 0, 1:]
    assert float(X.mean()) > 0.3
    sim = associative_memory.simulate_onehot_recall(N, d, n_recalls=20000, seed=3, keys="correlated", rho=0.4)
    assert sim.mse > 2 * associative_memory.recall_mse(N, d)
    assert sim.accuracy < associative_memory.recall_success_exact(N, d) - 10 * sim.stderr


# --------------------------------------------------------------------------- thm-onehot-recall
@pytest.mark.parametrize("N,d", [(2, 1), (2, 2), (16, 4), (64, 8), (256, 8), (512, 16)])
def test_exact_success_probability_matches_simulation(N, d):
    sim = associative_memory.simulate_onehot_recall(N, d, n_recalls=40000, seed=N + 7 * d)
    exact = associative_memory.recall_success_exact(N, d)
    assert abs(sim.accuracy - exact) < 5 * sim.stderr + 1e-4


def test_exact_success_probability_analytic_cases():
    # d = 1: P(chi2_1 > chi2_1) = 1/2, so a pair fails with probability 1/4
    assert abs(associative_memory.recall_failure_exact(2, 1) - 0.25) < 1e-9
    # one competitor (N = 2) at d = 2: P(u_i^T u_j > ||u_j||^2) = (1 - 1/sqrt 2) / 2
    assert abs(associative_memory.recall_failure_exact(2, 2) - 0.5 * (1 - 2**-0.5)) < 1e-9
    # N = 1 never fails; more keys never help
    assert associative_memory.recall_failure_exact(1, 5) == 0.0
    fails = [associative_memory.recall_failure_exact(N, 6) for N in (2, 4, 8, 64, 1024)]
    assert all(a < b for a, b in zip(fails, fails[1:]))


@pytest.mark.parametrize("d", [1, 3, 8, 16, 32, 48])
def test_bounds_hold_and_order(d):
    # the union bound over the N - 1 competitors, each failing with the N = 2 probability, lies
    # between the exact failure probability and the closed-form (Chernoff) bound
    pair = associative_memory.recall_failure_exact(2, d)
    for N in (2, 10, 100, 10**4):
        exact = associative_memory.recall_failure_exact(N, d)
        union = min(1.0, (N - 1) * pair)
        chern = associative_memory.recall_failure_chernoff(N, d)
        assert exact <= union + 1e-12 <= chern + 2e-12


def test_gaussian_approximation_is_not_exact():
    """Phi(sqrt d)^(N-1) ignores the norm fluctuation: off by far more than simulation noise."""
    N, d = 256, 4
    sim = associative_memory.simulate_onehot_recall(N, d, n_recalls=40000, seed=1)
    assert abs(sim.accuracy - associative_memory.recall_success_gaussian(N, d)) > 20 * sim.stderr
    assert abs(sim.accuracy - associative_memory.recall_success_exact(N, d)) < 5 * sim.stderr


def test_capacity_is_consistent_with_the_exact_formula():
    for d in (12, 20):
        n = associative_memory.recall_capacity(d, 0.01)
        fail = associative_memory.recall_failure_exact
        assert fail(n, d) <= 0.01 < fail(n + 1, d)
        # the Chernoff capacity is smaller (it is a bound)
        assert 1 + 0.01 * 2 ** (d / 2 + 1) <= n + 1


def test_orthonormal_simulation_is_perfect():
    assert (
        associative_memory.simulate_onehot_recall(8, 8, n_recalls=200, seed=0, keys="orthonormal").accuracy
        == 1.0
    )


# --------------------------------------------------------------------------- softmax and Hopfield
def test_softmax_recall_limits_and_loop():
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(7, 4, generator=g, dtype=torch.float64)
    values = torch.randn(7, 3, generator=g, dtype=torch.float64)
    q = torch.randn(5, 4, generator=g, dtype=torch.float64)
    out = associative_memory.softmax_recall(keys, values, q, beta=2.0)
    for k in range(5):
        w = torch.exp(2.0 * keys @ q[k])
        assert torch.allclose(out[k], (w / w.sum()) @ values)
    assert torch.allclose(
        associative_memory.softmax_recall(keys, values, q, 0.0), values.mean(0).expand(5, -1)
    )
    hard = associative_memory.softmax_recall(keys, values, q, 1e4)
    assert torch.allclose(hard, values[(q @ keys.T).argmax(1)], atol=1e-8)


def test_hopfield_step():
    H = torch.tensor([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1]], dtype=torch.float64)
    # orthogonal patterns with N < d: one update from a stored pattern keeps it (d - N > 0)
    assert torch.equal(associative_memory.hopfield_step(H, H), H)
    g = torch.Generator().manual_seed(2)
    P = torch.where(torch.rand(5, 12, generator=g) < 0.5, -1.0, 1.0).double()
    x = torch.where(torch.rand(3, 12, generator=g) < 0.5, -1.0, 1.0).double()
    W = P.T @ P - 5 * torch.eye(12, dtype=torch.float64)
    want = torch.where(x @ W.T >= 0, 1.0, -1.0)
    assert torch.equal(associative_memory.hopfield_step(P, x), want)


# --------------------------------------------------------------------------- validation
def test_bad_inputs_raise_value_errors_naming_the_parameter():
    k = torch.zeros(3, 4, dtype=torch.float64)
    cases = [
        (lambda: associative_memory.random_keys(0, 4), "N"),
        (lambda: associative_memory.random_keys(3, 0), "d"),
        (lambda: associative_memory.random_keys(3, 2.5), "d"),
        (lambda: associative_memory.correlated_keys(3, 4, 1.0), "rho"),
        (lambda: associative_memory.store(k, torch.zeros(2, 4, dtype=torch.float64)), "keys and values"),
        (lambda: associative_memory.store(torch.zeros(3, 4, dtype=torch.long), k), "keys"),
        (lambda: associative_memory.store([[1.0]], k), "keys"),
        (
            lambda: associative_memory.recall(
                torch.zeros(2, 4, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64)
            ),
            "queries",
        ),
        (
            lambda: associative_memory.recall_argmax(
                torch.zeros(2, 4, dtype=torch.float64), k, torch.zeros(3, 5, dtype=torch.float64)
            ),
            "values",
        ),
        (lambda: associative_memory.softmax_recall(k, k, k, beta=-1.0), "beta"),
        (lambda: associative_memory.hopfield_step(k + 0.5, k), "patterns"),
        (lambda: associative_memory.simulate_onehot_recall(9, 4, keys="orthonormal"), "N"),
        (lambda: associative_memory.simulate_onehot_recall(4, 4, keys="nope"), "keys"),
        (lambda: associative_memory.recall_success_exact(0, 4), "N"),
        (lambda: associative_memory.recall_failure_chernoff(3, 0), "d"),
        (lambda: associative_memory.recall_capacity(8, 1.5), "delta"),
        (lambda: associative_memory.crosstalk_moments(4, -1), "d"),
    ]
    for fn, name in cases:
        with pytest.raises(ValueError, match=name):
            fn()


# --------------------------------------------------------------------------- exercise checkers
def _stub(*args):
    raise NotImplementedError


def test_check_crosstalk():
    assert associative_memory.check_crosstalk(associative_memory.crosstalk)
    assert not associative_memory.check_crosstalk(lambda k, v: (k @ k.T) @ v)  # diagonal kept
    assert not associative_memory.check_crosstalk(lambda k, v: (k @ k.T - torch.eye(k.shape[0])) @ v)
    assert "not implemented yet" in repr(associative_memory.check_crosstalk(_stub))


def test_check_repair_fraction():
    def stepped(P, X, keep_diagonal=False, sign=None):
        W = P.T @ P
        if not keep_diagonal:
            W = W - torch.diag(torch.diagonal(W))
        h = X @ W
        return torch.sign(h) if sign == "torch" else torch.where(h >= 0, 1.0, -1.0)

    check = associative_memory.check_repair_fraction
    assert check(associative_memory.repair_fraction)
    # a correct answer written differently (W = P^T P - N I), returning a 0-d tensor
    assert check(lambda P, X: (stepped(P, X) == P).all(1).double().mean())
    # wrong answers: the diagonal kept, torch.sign (0 on a tie), the share of right bits
    for wrong, why in [
        (lambda P, X: float((stepped(P, X, keep_diagonal=True) == P).all(1).double().mean()), "diag"),
        (lambda P, X: float((stepped(P, X, sign="torch") == P).all(1).double().mean()), "sign"),
        (lambda P, X: float((stepped(P, X) == P).double().mean()), "bits"),
    ]:
        res = check(wrong)
        assert not res, why
        assert "expected" in repr(res) and "got" in repr(res) and "patterns [N, d]" in repr(res), why
    assert "not implemented yet" in repr(check(_stub))


def test_repair_fraction_agrees_with_simulate_hopfield_repair():
    N, d, f, T = 6, 40, 4, 25
    P, X = associative_memory.hopfield_probes(N, d, f, T, generator=torch.Generator().manual_seed(3))
    per_memory = [associative_memory.repair_fraction(P[t], X[t]) for t in range(T)]
    r = associative_memory.simulate_hopfield_repair(N, d, f, T, seed=3)
    assert sum(per_memory) / T == pytest.approx(r.one_step, abs=1e-12)
    with pytest.raises(ValueError, match="probes"):
        associative_memory.repair_fraction(P[0], X[0, :3])


def test_check_recall_bound_mills():
    def mills(N, d, root=True, swap=False, n_minus_1=True):
        a, b = ((d - 1) / 2, d / 2) if not swap else (d / 2, (d - 1) / 2)
        pair = math.gamma(a) / (2 ** (d / 2) * math.gamma(b)) / (math.sqrt(2 * math.pi) if root else 1)
        return min(1.0, (N - 1 if n_minus_1 else N) * pair)

    check = associative_memory.check_recall_bound_mills
    assert check(associative_memory.recall_failure_mills)
    assert check(mills)
    for kwargs in [{"root": False}, {"swap": True}, {"n_minus_1": False}]:
        res = check(lambda N, d, kw=kwargs: mills(N, d, **kw))
        assert not res and "expected" in repr(res), kwargs
    assert not check(associative_memory.recall_failure_chernoff)
    assert "not implemented yet" in repr(check(_stub))


def test_mills_bound_holds_and_beats_chernoff_from_d_3():
    """ex-mem-mills: Phi(-r) <= phi(r)/r, the bound (N-1) Gamma((d-1)/2) / (sqrt(2 pi) 2^(d/2)
    Gamma(d/2)) is above the exact failure probability, and below the Chernoff bound iff d >= 3."""
    r = torch.linspace(0.01, 12, 2000, dtype=torch.float64)
    log_tail = torch.special.log_ndtr(-r)
    log_mills = -(r**2) / 2 - 0.5 * math.log(2 * math.pi) - torch.log(r)
    assert bool((log_tail <= log_mills).all())
    for d in (2, 3, 5, 8, 16, 32, 48):
        for N in (2, 10, 1000):
            exact = associative_memory.recall_failure_exact(N, d)
            mills = associative_memory.recall_failure_mills(N, d)
            assert exact <= mills + 1e-12
        # the closed form is the expectation E[phi(R)/R] of the proof (quadrature over chi_d)
        nodes, w = associative_memory._chi_quadrature(d)
        inside = nodes > 0
        pair = float((w[inside] * torch.exp(-(nodes[inside] ** 2) / 2) / nodes[inside]).sum())
        pair /= math.sqrt(2 * math.pi)
        if d >= 3:
            assert associative_memory.recall_failure_mills(2, d) == pytest.approx(pair, rel=1e-6)
        ratio = associative_memory.recall_failure_mills(2, d) / associative_memory.recall_failure_chernoff(
            2, d
        )
        assert (ratio < 1) == (d >= 3), (d, ratio)
        if d >= 16:  # the ratio decreases like 2 / sqrt(pi d)
            assert ratio == pytest.approx(2 / math.sqrt(math.pi * d), rel=2 / d)
    # the hypothesis d >= 2: at d = 1 the expectation is infinite and the function refuses
    with pytest.raises(ValueError, match="d"):
        associative_memory.recall_failure_mills(5, 1)


def test_circle_keys_beat_the_dimension_for_nearest_value_recall():
    """ex-mem-rank: N unit keys equally spaced on the circle (d = 2) are all recalled by nearest
    value, with margin 1 - cos(2 pi / N); one key twice as long breaks the recall of its two
    neighbours once N >= 7 (equal norms are needed)."""
    for N in (3, 7, 50, 1000):
        angle = 2 * math.pi * torch.arange(N, dtype=torch.float64) / N
        keys = torch.stack([torch.cos(angle), torch.sin(angle)], 1)
        onehot = torch.eye(N, dtype=torch.float64)
        W = associative_memory.store(keys, onehot)
        assert torch.equal(associative_memory.recall_argmax(W, keys, onehot), torch.arange(N))
        G = keys @ keys.T
        margin = float((torch.diagonal(G) - (G - 2 * torch.eye(N, dtype=G.dtype)).max(1).values).min())
        assert margin == pytest.approx(1 - math.cos(2 * math.pi / N), rel=1e-9, abs=1e-12)
        # the rank argument: exact recall is impossible for N > d = 2
        assert not torch.allclose(associative_memory.recall(W, keys), onehot, atol=1e-3)
        long = keys.clone()
        long[0] *= 2
        W = associative_memory.store(long, onehot)
        found = associative_memory.recall_argmax(W, long, onehot)
        if N >= 7:
            assert found[1] == 0 and found[N - 1] == 0
        else:
            assert torch.equal(found, torch.arange(N))


def test_check_softmax_recall():
    assert associative_memory.check_softmax_recall(associative_memory.softmax_recall)
    assert not associative_memory.check_softmax_recall(
        lambda K, V, Q, b: torch.softmax(b * Q @ K.T, dim=0) @ V
    )  # wrong axis
    assert not associative_memory.check_softmax_recall(lambda K, V, Q, b: (b * Q @ K.T) @ V)  # no softmax
    assert "not implemented yet" in repr(associative_memory.check_softmax_recall(_stub))


# --------------------------------------------------------------------------- figures (smoke)
def test_plots_return_figures():
    import matplotlib.pyplot as plt

    figs = [
        associative_memory.plot_recall_scores({"a": torch.eye(4), "b": torch.randn(4, 4)}),
        associative_memory.plot_recall_scores({k: torch.eye(3) for k in "abcd"}),  # a 2 x 2 grid
        associative_memory.plot_recall_capacity(
            {2: {"ratio": [1, 2], "accuracy": [0.8, 0.6], "mse": [1.5, 2.5]}},
            {2: {"ratio": [1, 2], "accuracy": [0.85, 0.65], "gaussian": [0.9, 0.7], "mse": [1.5, 2.5]}},
        ),
        associative_memory.plot_crosstalk_hist(
            torch.rand(50) + 0.5,
            torch.randn(200) * 0.2,
            8,
            torch.linspace(-1, 2, 20),
            torch.rand(20),
            torch.rand(20),
        ),
    ]
    for fig in figs:
        assert isinstance(fig, matplotlib.figure.Figure)
        assert not fig._suptitle  # the caption says what is drawn, no title over the panels
        assert fig.get_figwidth() <= 7.5 + 1e-9
        plt.close(fig)


# Issue 16: NaN keys refused, huge keys and simulations refused before any work.


def test_nan_or_inf_inputs_are_refused():
    keys = associative_memory.random_keys(4, 3, seed=0)
    bad = keys.clone()
    bad[1, 2] = float("nan")
    W = associative_memory.store(keys, torch.eye(4, dtype=torch.float64))
    for call, name in [
        (lambda: associative_memory.store(bad, torch.eye(4, dtype=torch.float64)), "keys"),
        (lambda: associative_memory.store(keys, torch.full((4, 4), float("inf"))), "values"),
        (lambda: associative_memory.recall(W, bad), "queries"),
        (lambda: associative_memory.recall_argmax(W, bad, torch.eye(4, dtype=torch.float64)), "queries"),
        (lambda: associative_memory.recall_argmax(W * float("nan"), keys, torch.eye(4)), "W"),
        (lambda: associative_memory.crosstalk(bad, torch.eye(4, dtype=torch.float64)), "keys"),
        (lambda: associative_memory.softmax_recall(bad, torch.eye(4), keys), "keys"),
    ]:
        with pytest.raises(ValueError, match=name):
            call()


def test_huge_keys_and_simulations_are_refused_at_once():
    for call, name in [
        (lambda: associative_memory.random_keys(10_000_000, 1_000_000), "N is too large"),
        (lambda: associative_memory.correlated_keys(1_000_000, 1_000, 0.5), "N is too large"),
        (lambda: associative_memory.simulate_onehot_recall(1_000_000, 4), "N is too large"),
        (lambda: associative_memory.simulate_onehot_recall(1, 1_000_000, n_recalls=10**8), "n_recalls"),
        (lambda: associative_memory.simulate_onehot_recall(2048, 512, n_recalls=10**6), "n_recalls"),
    ]:
        with pytest.raises(ValueError, match=name):
            call()
    assert associative_memory.simulate_onehot_recall(1, 1000, n_recalls=10, seed=0).accuracy == 1.0


# --------------------------------------------------------------------------- prop-correlated-mse
def test_recall_mse_correlated_matches_simulation_and_reduces_at_rho_zero():
    assert associative_memory.recall_mse_correlated(64, 16, 0.0) == pytest.approx(
        associative_memory.recall_mse(64, 16), rel=1e-15
    )
    for rho in (0.3, 0.7):
        res = associative_memory.simulate_onehot_recall(
            32, 8, n_recalls=64_000, seed=3, keys="correlated", rho=rho
        )
        want = associative_memory.recall_mse_correlated(32, 8, rho)
        assert abs(res.mse - want) < 4 * res.mse_stderr, (rho, res.mse, want, res.mse_stderr)
        # the independent-key formula (N + 1)/d is far off once the keys share a component
        assert abs(res.mse - associative_memory.recall_mse(32, 8)) > 10 * res.mse_stderr


# --------------------------------------------------------------------------- prop-hopfield-one-step
def test_hopfield_probes_flip_exactly_the_asked_number_of_bits():
    P, X = associative_memory.hopfield_probes(6, 20, 3, n_memories=5, seed=1)
    assert P.shape == X.shape == (5, 6, 20)
    assert bool(((P == 1) | (P == -1)).all())
    assert torch.equal((P != X).sum(-1), torch.full((5, 6), 3))
    P2, X2 = associative_memory.hopfield_probes(6, 20, 3, n_memories=5, seed=1)
    assert torch.equal(P, P2) and torch.equal(X, X2)
    assert torch.equal(
        associative_memory.hopfield_probes(4, 7, 0, seed=2)[1],
        associative_memory.hopfield_probes(4, 7, 0, seed=2)[0],
    )


def test_simulate_hopfield_repair_agrees_with_hopfield_step_loops():
    N, d, f, T = 5, 12, 2, 30
    r = associative_memory.simulate_hopfield_repair(N, d, f, T, seed=4, beta=0.5)
    P, X = associative_memory.hopfield_probes(N, d, f, T, generator=torch.Generator().manual_seed(4))
    one, fix, bits, soft = [], [], [], []
    for t in range(T):
        y = associative_memory.hopfield_step(P[t], X[t])
        y0 = associative_memory.hopfield_step(P[t], P[t])
        att = associative_memory.softmax_recall(P[t], P[t], X[t], beta=0.5)
        s = torch.where(att >= 0, 1.0, -1.0)
        one.append(float((y == P[t]).all(1).double().mean()))
        fix.append(float((y0 == P[t]).all(1).double().mean()))
        bits.append(float((y != P[t]).double().mean()))
        soft.append(float((s == P[t]).all(1).double().mean()))
    for got, want in [(r.one_step, one), (r.fixed_point, fix), (r.bit_error, bits), (r.softmax, soft)]:
        assert got == pytest.approx(sum(want) / T, abs=1e-12)
    assert r.one_step_stderr == pytest.approx(
        float(torch.tensor(one, dtype=torch.float64).std() / T**0.5), abs=1e-12
    )
    assert r.n_probes == N * T


def test_hopfield_bit_error_small_cases():
    assert associative_memory.hopfield_bit_error(1, 10, 3) == (0.0, 0.0)  # one pattern: no noise
    # N = 2, d = 2, f = 0: s = 1 and n = +-1, so s + n = 0 half of the time, then the bit is a coin
    assert associative_memory.hopfield_bit_error(2, 2, 0)[0] == pytest.approx(0.25, abs=1e-15)
    # brute force over the signs of n for N = 3, d = 4, f = 1: M = 6
    M, s = 6, 4 - 1 - 2
    wrong = 0.0
    for k in range(M + 1):
        tot = s + 2 * k - M
        wrong += math.comb(M, k) / 2**M * (1.0 if tot < 0 else 0.5 if tot == 0 else 0.0)
    assert associative_memory.hopfield_bit_error(3, 4, 1)[0] == pytest.approx(wrong, abs=1e-14)


def _bit_error_rates(P, X):
    """Per-memory error rates of kept and of flipped bits after one update, [T] each."""
    Y = torch.stack([associative_memory.hopfield_step(P[t], X[t]) for t in range(P.shape[0])])
    flipped = P != X
    wrong = (Y != P).double()
    return (
        (wrong * ~flipped).sum((1, 2)) / (~flipped).sum((1, 2)),
        (wrong * flipped).sum((1, 2)) / flipped.sum((1, 2)),
    )


def test_hopfield_bit_error_matches_monte_carlo_and_fails_for_biased_patterns():
    N, d, f, T = 7, 9, 2, 3000  # M = 48 and s = 4 are even: ties occur and get half weight
    P, X = associative_memory.hopfield_probes(N, d, f, T, seed=5)
    p_kept, p_flip = associative_memory.hopfield_bit_error(N, d, f)
    for rates, p in zip(_bit_error_rates(P, X), (p_kept, p_flip)):
        se = float(rates.std() / T**0.5)
        assert abs(float(rates.mean()) - p) < 4 * se, (float(rates.mean()), p, se)
    # hypothesis broken: biased patterns (P(+1) = 0.8) are not uniform, the law no longer holds
    g = torch.Generator().manual_seed(6)
    B = torch.where(torch.rand((T, N, d), generator=g) < 0.8, 1.0, -1.0).double()
    P0, X0 = associative_memory.hopfield_probes(N, d, f, T, seed=7)  # only its flip positions
    XB = torch.where(P0 != X0, -B, B)
    rates = _bit_error_rates(B, XB)[0]
    assert abs(float(rates.mean()) - p_kept) > 10 * float(rates.std() / T**0.5)


def test_independent_bits_is_an_approximation_and_the_bounds_hold():
    N, d, f = 14, 100, 10
    r = associative_memory.simulate_hopfield_repair(N, d, f, 300, seed=7)
    approx = associative_memory.hopfield_repair_independent(N, d, f)
    assert r.one_step > approx + 5 * r.one_step_stderr  # the bits are not independent
    for N, d, f in [(4, 100, 10), (8, 100, 10), (10, 100, 0), (6, 60, 5), (3, 30, 2)]:
        r = associative_memory.simulate_hopfield_repair(N, d, f, 200, seed=N + d)
        ub = associative_memory.hopfield_repair_bound(N, d, f)
        assert r.one_step >= ub - 4 * max(r.one_step_stderr, 1e-3)
        hoeffding = 1 - d * math.exp(-((d - 1 - 2 * f) ** 2) / (2 * (N - 1) * (d - 1)))
        assert ub >= hoeffding - 1e-12
    # the exact bit law sums to the simulated share of wrong bits
    r = associative_memory.simulate_hopfield_repair(20, 100, 10, 200, seed=8)
    p_kept, p_flip = associative_memory.hopfield_bit_error(20, 100, 10)
    assert abs(r.bit_error - (90 * p_kept + 10 * p_flip) / 100) < 4 * r.bit_error_stderr


def test_hopfield_exact_capacity_scale():
    assert associative_memory.hopfield_exact_capacity(100) == pytest.approx(100 / (2 * math.log(100)))
    assert associative_memory.hopfield_exact_capacity(100, 10) == pytest.approx(
        0.64 * 100 / (2 * math.log(100))
    )
    for call, name in [
        (lambda: associative_memory.hopfield_exact_capacity(1), "d"),
        (lambda: associative_memory.hopfield_exact_capacity(100, 50), "flips"),
    ]:
        with pytest.raises(ValueError, match=name):
            call()


def test_hopfield_converge_ends_at_fixed_points_with_lower_energy():
    P, X = associative_memory.hopfield_probes(12, 60, 12, seed=9)
    P, X = P[0], X[0]
    Y = associative_memory.hopfield_converge(P, X, seed=1)
    assert torch.equal(associative_memory.hopfield_step(P, Y), Y)
    W = P.T @ P - 12 * torch.eye(60, dtype=torch.float64)
    assert bool((-0.5 * ((Y @ W) * Y).sum(1) <= -0.5 * ((X @ W) * X).sum(1) + 1e-9).all())
    # one stored pattern: every probe with fewer than d/2 wrong bits goes back to it
    P1, X1 = associative_memory.hopfield_probes(1, 30, 14, seed=3)
    assert torch.equal(associative_memory.hopfield_converge(P1[0], X1[0]), P1[0])
    with pytest.raises(ValueError, match="max_sweeps"):
        associative_memory.hopfield_converge(P, X, max_sweeps=1)


def test_simulate_hopfield_retrieval_orders_its_shares():
    r = associative_memory.simulate_hopfield_retrieval(1, 40, 4, 10, seed=0)
    assert (r.bit_error, r.near, r.exact) == (0.0, 1.0, 1.0)
    r = associative_memory.simulate_hopfield_retrieval(30, 100, 10, 20, seed=1)
    assert 0 <= r.exact <= r.near <= 1 and r.bit_error > 0.1  # far above 0.14 d: retrieval fails
    r = associative_memory.simulate_hopfield_retrieval(5, 100, 10, 20, seed=2)
    assert r.exact > 0.95  # far below d / (2 ln d): exact


def test_hopfield_functions_refuse_bad_arguments_by_name():
    P = torch.tensor([[1.0, -1.0, 1.0, 1.0], [1.0, 1.0, -1.0, 1.0], [-1.0, 1.0, 1.0, 1.0]])
    for call, name in [
        (lambda: associative_memory.hopfield_step(P.T, P), "patterns and probes"),
        (lambda: associative_memory.hopfield_step(P[:, :1], P), "patterns and probes"),
        (lambda: associative_memory.hopfield_converge(P, P + 0.5), "probes"),
        (lambda: associative_memory.hopfield_converge(P, P, max_sweeps=0), "max_sweeps"),
        (lambda: associative_memory.hopfield_probes(3, 4, 5), "flips"),
        (lambda: associative_memory.hopfield_probes(3, 4, 1, n_memories=0), "n_memories"),
        (lambda: associative_memory.simulate_hopfield_repair(3, 4, 1, beta="1"), "beta"),
        (lambda: associative_memory.simulate_hopfield_repair(3, 4, 1, 2, seed=True), "seed"),
        (lambda: associative_memory.simulate_hopfield_repair(1000, 1000, 1, 10**6), "n_memories"),
        (
            lambda: associative_memory.simulate_hopfield_retrieval(3, 4, 1, tolerance=float("nan")),
            "tolerance",
        ),
        (lambda: associative_memory.simulate_hopfield_retrieval(1, 10**5, 1, 10**3), "n_memories"),
        (lambda: associative_memory.hopfield_bit_error(10**6, 1000), "N"),
        (lambda: associative_memory.hopfield_repair_independent("3", 4), "N"),
        (lambda: associative_memory.recall_mse_correlated(3, 4, float("nan")), "rho"),
        (lambda: associative_memory.random_keys(3, 4, dtype=torch.int64), "dtype"),
        (lambda: associative_memory.correlated_keys(3, 4, 0.5, dtype="float32"), "dtype"),
        (lambda: associative_memory.orthonormal_keys(3, 4, dtype=torch.int64), "dtype"),
    ]:
        with pytest.raises((ValueError, TypeError), match=name):
            call()
