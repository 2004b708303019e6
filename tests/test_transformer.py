"""Chapter 3 (the one-layer transformer): probes, plots, exercise checkers, the two forward-pass
paths of lca.model, the chapter's theorem and lemmas, and the benchmark's reference model.

Every number compared here is computed twice, by independent routes: explicit Python loops over
positions and tokens, brute-force Bayes posteriors from the context law, a separately trained
model, or stock PyTorch layers."""

from __future__ import annotations

import importlib.util
import itertools
import math
from pathlib import Path

import matplotlib
import pytest
import torch

import lca
import lca.model as lca_model
from lca import report, transformer
from lca.task import count_vector, log_likelihood
from lca.train import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


def _load_bench():
    spec = importlib.util.spec_from_file_location("train_speed", ROOT / "bench" / "train_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _random_model(V=16, d=6, seed=0, W_V=None, W_KQ_scale=1.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    W_E = torch.randn(V, d, generator=g, dtype=dtype) / math.sqrt(d)
    W_KQ = W_KQ_scale * torch.randn(d, d, generator=g, dtype=dtype)
    if W_V is None:
        W_V = torch.randn(d, d, generator=g, dtype=dtype)
    return lca.OneLayerTransformer.from_weights(W_E, W_KQ, W_V, device="cpu")


def _loop_forward(W_E, W_KQ, W_V, context):
    """The model's equations for one context, with explicit loops (float64)."""
    L = len(context)
    q = W_E[context[-1]]
    s = [float(q @ W_KQ @ W_E[t]) for t in context]
    mx = max(s)
    w = [math.exp(x - mx) for x in s]
    a = [x / sum(w) for x in w]
    h = sum(a[l] * W_E[context[l]] for l in range(L))
    v = W_V @ h
    return (torch.stack([W_E[k] @ v for k in range(W_E.shape[0])]), torch.tensor(a, dtype=W_E.dtype), h)


# ------------------------------------------------------------------------------ forward pass
def test_forward_trace_matches_loops_and_model():
    model = _random_model()
    ctx = torch.randint(0, 16, (5, 7), generator=torch.Generator().manual_seed(1))
    ctx[0, :3] = 4  # repeated tokens
    tr = transformer.forward_trace(model, ctx)
    logits_model = model(ctx).detach()
    for i in range(ctx.shape[0]):
        f, a, h = _loop_forward(model.W_E.detach(), model.W_KQ.detach(), model.W_V.detach(), ctx[i].tolist())
        assert torch.allclose(tr["logits"][i], f, atol=1e-10)
        assert torch.allclose(tr["attention"][i], a, atol=1e-12)
        assert torch.allclose(tr["h"][i], h, atol=1e-12)
        assert torch.allclose(logits_model[i], f, atol=1e-10)
    assert torch.equal(tr["contexts"], ctx)
    assert tr["X"].shape == (5, 7, 6) and tr["q"].shape == (5, 6)


@pytest.mark.parametrize(
    "options", [{}, {"ensemble": 3}, {"residual": True, "layernorm": True}, {"tied": False, "ensemble": 2}]
)
def test_bag_and_gather_forward_paths_agree(options, monkeypatch):
    """lca.model computes the forward pass two ways (bag of tokens when V <= 32 L, gathered
    context embeddings otherwise); values and gradients must agree."""
    V, d = 32, 8
    model = lca.OneLayerTransformer(V, d, WV_init="gaussian", seed=3, device="cpu", **options)
    with torch.no_grad():
        model.W_KQ.normal_(generator=torch.Generator().manual_seed(4))
    E = options.get("ensemble")
    shape = (E, 9, 5) if E else (9, 5)
    ctx = torch.randint(0, V, shape, generator=torch.Generator().manual_seed(5))
    results = []
    for ratio in (10**6, 0):  # bag path, then gather path
        monkeypatch.setattr(lca_model, "BAG_MAX_RATIO", ratio)
        model.zero_grad()
        out = model(ctx)
        (out.square().sum() + out.sum()).backward()
        results.append(
            [out.detach(), model.attention(ctx).detach()]
            + [p.grad.clone() for p in model.parameters() if p.grad is not None]
        )
    for a, b in zip(*results):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)


def test_uniform_attention_lemma():
    """lem-tf-uniform: W_KQ = 0 gives a_l = 1/L and f = (1/L) W_E W_V W_E^T c(x)."""
    model = _random_model(W_KQ_scale=0.0)
    ctx = torch.randint(0, 16, (6, 9), generator=torch.Generator().manual_seed(2))
    c = torch.zeros(6, 16, dtype=torch.float64)
    for i, j in itertools.product(range(6), range(9)):
        c[i, ctx[i, j]] += 1
    assert torch.equal(count_vector(ctx, 16), c)
    M = model.W_E.detach() @ model.W_V.detach() @ model.W_E.detach().T
    assert torch.allclose(model(ctx).detach(), c @ M.T / 9, atol=1e-10)
    assert torch.allclose(model.attention(ctx).detach(), torch.full((6, 9), 1 / 9.0, dtype=torch.float64))
    # hypothesis violated (W_KQ != 0): the count formula no longer gives the logits
    other = _random_model(W_KQ_scale=3.0)
    M2 = other.W_E.detach() @ other.W_V.detach() @ other.W_E.detach().T
    assert not torch.allclose(other(ctx).detach(), c @ M2.T / 9, atol=1e-3)


# ------------------------------------------------------------------------------ the theorem
def _brute_force_map(spec, contexts):
    """Bayes-optimal (MAP) sets from the context law with explicit products."""
    P = spec.context_law()
    sets = []
    for ctx in contexts.tolist():
        like = [math.prod(float(P[y, x]) for x in ctx) for y in range(spec.V)]
        best = max(like)
        sets.append({y for y, v in enumerate(like) if v >= best * (1 - 1e-9) and v > 0})
    return sets


def _constructed(spec, d, seed=0, clip=None):
    g = torch.Generator().manual_seed(seed)
    W_E = torch.randn(spec.V, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    W_V = transformer.bayes_value_matrix(spec, W_E, clip=clip)
    return lca.OneLayerTransformer.from_weights(W_E, None, W_V, device="cpu")


@pytest.mark.parametrize(
    "spec",
    [
        lca.TaskSpec(3, 5, noise=0.3),
        lca.TaskSpec(4, 6, neighbourhood=lca.hamming_ball(2), noise=0.2),
        lca.TaskSpec(3, 4),
    ],
)
def test_bayes_reachable_theorem(spec):
    """thm-tf-bayes-reachable: with d >= V the constructed model's argmax set is the MAP set on
    every context (ties included); with d < V it is not."""
    ctx, _ = lca.sample(spec, 300, seed=11)
    sets = _brute_force_map(spec, ctx)
    for d in (spec.V, spec.V + 5):
        logits = _constructed(spec, d, seed=d)(ctx).detach()
        top = logits.max(1, keepdim=True).values
        for i in range(len(sets)):
            argmax = set(
                torch.nonzero(logits[i] >= top[i] - 1e-6 * top[i].abs().clamp(min=1)).flatten().tolist()
            )
            assert argmax == sets[i], (d, i)
    small = _constructed(spec, spec.V // 2, seed=1).predict(ctx)
    agree = sum(int(small[i]) in sets[i] for i in range(len(sets))) / len(sets)
    assert agree < 0.9


def test_bayes_theorem_needs_a_large_clip():
    """With a clip below L B, impossible targets (here: tokens seen in the context) can win."""
    spec = lca.TaskSpec(3, 6, noise=0.5)
    ctx, _ = lca.sample(spec, 400, seed=12)
    sets = _brute_force_map(spec, ctx)
    Lam = transformer.clipped_log_law(spec)
    P = spec.context_law()
    B = float(torch.log(P[P > 0]).abs().max())
    assert float(-Lam.min()) > spec.L * B  # default clip satisfies the hypothesis
    good = _constructed(spec, 8, clip=None).predict(ctx)
    bad = _constructed(spec, 8, clip=0.01).predict(ctx)
    assert all(int(good[i]) in sets[i] for i in range(len(sets)))
    assert sum(int(bad[i]) in sets[i] for i in range(len(sets))) < len(sets)


# ------------------------------------------------------------------------------ identity lemma
def test_identity_value_matrix_votes_for_the_context():
    """lem-tf-identity-vote: with W_V = I, max_l f_{x_l} >= |h|^2 on every context; with another
    W_V the inequality fails on some contexts."""
    ctx = torch.randint(0, 16, (400, 5), generator=torch.Generator().manual_seed(6))
    for seed in range(3):
        model = _random_model(seed=seed, W_V=torch.eye(6, dtype=torch.float64))
        top, h_sq = transformer.context_vote(model, ctx)
        for i in range(0, 400, 40):  # independent check of the two quantities
            f, _, h = _loop_forward(
                model.W_E.detach(), model.W_KQ.detach(), torch.eye(6, dtype=torch.float64), ctx[i].tolist()
            )
            assert math.isclose(float(top[i]), max(float(f[t]) for t in ctx[i].tolist()), abs_tol=1e-10)
            assert math.isclose(float(h_sq[i]), float(h @ h), abs_tol=1e-12)
        assert bool((top >= h_sq - 1e-12).all())
    model = _random_model(seed=7, W_V=-torch.eye(6, dtype=torch.float64))
    top, h_sq = transformer.context_vote(model, ctx)
    assert bool((top < h_sq).any())


def test_one_repeated_token_never_loses_with_identity_value():
    """Exercise ex-tf-one-token: equal norms, W_V = I and a context of one repeated token: the
    repeated token scores at least as much as any other token."""
    g = torch.Generator().manual_seed(8)
    W_E = torch.randn(16, 6, generator=g, dtype=torch.float64)
    W_E = W_E / W_E.norm(dim=1, keepdim=True)
    model = lca.OneLayerTransformer.from_weights(
        W_E, torch.randn(6, 6, generator=g, dtype=torch.float64), device="cpu"
    )
    ctx = torch.arange(16).repeat_interleave(3).view(16, 3)
    logits = model(ctx).detach()
    assert bool((logits.gather(1, ctx[:, :1]) >= logits.max(1, keepdim=True).values - 1e-12).all())


# ------------------------------------------------------------------------------ sweeps
def test_length_sweep_table_matches_separate_runs():
    table = transformer.length_sweep(
        m_values=(3,), L_values=(2, 5), d=8, steps=6, seeds=(0, 1), batch_size=16, n_eval=64, device="cpu"
    )
    assert table.x_name == "L" and table.x == [2, 5] and table.labels == ["trained W_V", "W_V = I"]
    # member (W_V = I, seed 1) at L = 5 trained on its own
    spec = lca.TaskSpec(3, 5, noise=0.5)
    cfg = TrainConfig(
        spec,
        d=8,
        steps=6,
        batch_size=16,
        lr=0.06 / math.sqrt(8),
        seed=1,
        train_V=False,
        WV_init="identity",
        eval_every=0,
        n_eval=64,
        device="cpu",
    )
    alone = lca.fit(cfg, progress=False).history["accuracy"][-1]
    seed0 = lca.fit(cfg.with_(seed=0), progress=False).history["accuracy"][-1]
    assert math.isclose(table.mean["W_V = I"][3][1], (alone + seed0) / 2, abs_tol=1e-9)
    assert math.isclose(table.sd["W_V = I"][3][1], abs(alone - seed0) / 2, abs_tol=1e-9)
    # Bayes column: brute force on the same evaluation set
    ctx, y = lca.sample(spec, 64, seed=cfg.eval_seed)
    sets = _brute_force_map(spec, ctx)
    bayes = sum((int(y[i]) in s) / len(s) for i, s in enumerate(sets)) / 64
    assert math.isclose(table.bayes[3][1], bayes, abs_tol=1e-9)
    lines = table.format(3).splitlines()
    assert len(lines) == 3 and lines[0].split()[:2] == ["m", "L"]
    assert lines[2].split()[-1] == f"{table.bayes[3][1]:.3f}"
    assert len(table.rows()) == 2 and len(table.rows()[0]) == 5
    # with pm=True each accuracy is "mean ± standard error over the seeds"
    se = table.se("W_V = I", 3)[1]
    cell = report.pm(table.mean["W_V = I"][3][1], se) if se > 0 else None
    pm_row = table.format(3, pm=True).splitlines()[2]
    assert "±" in pm_row and (cell is None or cell in pm_row)
    # length_sweep is shape_sweep over L with chapter 3's defaults
    assert table.settings["d"] == 8 and table.settings["noise"] == 0.5
    assert table.settings["lr"] == "0.06/sqrt(d)"


def test_dim_sweep_fixed_embeddings_stay_fixed():
    table = transformer.dim_sweep(
        m_values=(3,), d_values=(4,), L=4, steps=4, seeds=(0,), batch_size=16, n_eval=64, device="cpu"
    )
    assert table.labels == ["trained W_E", "fixed W_E"] and table.x_name == "d"
    spec = lca.TaskSpec(3, 4)
    cfg = TrainConfig(
        spec,
        d=4,
        steps=4,
        batch_size=16,
        lr=0.2 / 2,
        seed=0,
        train_E=False,
        eval_every=0,
        n_eval=64,
        device="cpu",
    )
    res = lca.fit(cfg, progress=False)
    assert math.isclose(table.mean["fixed W_E"][3][0], res.history["accuracy"][-1], abs_tol=1e-9)
    init = lca.fit(cfg.with_(steps=0), progress=False).model
    assert torch.equal(res.model.W_E, init.W_E)
    assert table.settings["L"] == 4 and table.settings["noise"] == 0.0


def test_bayes_model_is_the_theorem_construction():
    """bayes_model: Gaussian W_E (N(0, 1/d), float64), W_KQ = 0, W_V from bayes_value_matrix; with
    d >= V every prediction is one of the Bayes answers."""
    spec = lca.TaskSpec(m=3, L=4, noise=0.3)
    model = transformer.bayes_model(spec, 12, seed=3)
    W_E = torch.randn(8, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64) / 12**0.5
    assert torch.equal(model.W_E, W_E) and not bool(model.W_KQ.any())
    assert torch.equal(model.W_V, transformer.bayes_value_matrix(spec, W_E))
    ctx, _ = lca.sample(spec, 512, seed=0)
    ll = log_likelihood(spec, ctx)
    with torch.no_grad():
        pred = model(ctx).argmax(1)
    bayes_set = ll >= ll.max(1, keepdim=True).values - 1e-9
    assert bool(bayes_set.gather(1, pred[:, None]).all())


# ------------------------------------------------------------------------------ plots
def test_plots_return_labelled_figures():
    model = _random_model(V=8, d=4)
    ctx = torch.randint(0, 8, (3, 5), generator=torch.Generator().manual_seed(9))
    figs = [transformer.plot_forward_pass(transformer.forward_trace(model, ctx), index=1, target=2)]
    history = {"step": [1, 2], "loss": [[2.0, 2.5], [1.0, 2.2]], "accuracy": [[0.1, 0.0], [0.5, 0.2]]}
    figs.append(transformer.plot_training_curves(history, labels=["a", "b"], bayes=0.9))
    figs.append(transformer.plot_training_curves({"step": [1], "loss": [1.0], "accuracy": [0.3]}))
    table = transformer.SweepTable(
        "L",
        [2, 4],
        [3],
        ["x", "y"],
        mean={"x": {3: [0.1, 0.2]}, "y": {3: [0.3, 0.4]}},
        sd={"x": {3: [0.0, 0.1]}, "y": {3: [0.0, 0.0]}},
        bayes={3: [0.5, 0.6]},
    )
    figs.append(transformer.plot_accuracy_vs_length(table))
    table.x_name = "d"
    figs.append(transformer.plot_accuracy_vs_dim(table))
    for fig in figs:
        assert isinstance(fig, matplotlib.figure.Figure)
        assert fig.get_suptitle() and fig.axes[0].get_ylabel()
        for ax in fig.axes:
            assert ax.get_xlabel()
        matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="table"):
        transformer.plot_accuracy_vs_length(table)
    with pytest.raises(ValueError, match="labels"):
        transformer.plot_training_curves(history, labels=["a"])
    with pytest.raises(ValueError, match="index"):
        transformer.plot_forward_pass(transformer.forward_trace(model, ctx), index=3)


# ------------------------------------------------------------------------------ validation
def test_bad_inputs_name_the_parameter():
    model = _random_model(V=8, d=4)
    ens = lca.OneLayerTransformer(8, 4, ensemble=2, device="cpu")
    ctx = torch.zeros(2, 3, dtype=torch.long)
    spec = lca.TaskSpec(3, 4, noise=0.2)
    cases = [
        (lambda: transformer.forward_trace(ens, ctx), "model"),
        (lambda: transformer.forward_trace(model, torch.full((2, 3), 9)), "contexts"),
        (lambda: transformer.clipped_log_law(spec, clip=-1.0), "clip"),
        (lambda: transformer.clipped_log_law("spec"), "spec"),
        (lambda: transformer.clipped_log_law(spec.with_(clean_last=True)), "clean_last"),
        (lambda: transformer.bayes_value_matrix(spec, torch.zeros(4, 4)), "W_E"),
        (lambda: transformer.bayes_value_matrix(spec, torch.zeros(8)), "W_E"),
        (lambda: transformer.length_sweep(m_values=[]), "m_values"),
        (lambda: transformer.length_sweep(m_values=(3,), noise=1.5), "noise"),
        (lambda: transformer.length_sweep(m_values=(3,), L_values=(0,)), "L_values"),
        (lambda: transformer.dim_sweep(m_values=(3,), d_values=(0,)), "d_values"),
        (lambda: transformer.dim_sweep(m_values=(3,), lr0=0.0), "lr0"),
        (lambda: transformer.dim_sweep(m_values=(3,), seeds=()), "seeds"),
        (lambda: transformer.shape_sweep("m", (3,)), "x_name"),
        (lambda: transformer.bayes_model("spec", 8), "spec"),
        (lambda: transformer.SweepTable("L", [1], [3], []).format(digits=-1), "digits"),
    ]
    for fn, name in cases:
        with pytest.raises(ValueError, match=name):
            fn()


# ------------------------------------------------------------------------------ exercises
def _stub(*args):
    raise NotImplementedError


def _attention_ok(W_E, W_KQ, contexts):
    X = W_E[contexts]
    return torch.softmax(torch.einsum("nd,de,nle->nl", X[:, -1], W_KQ, X), dim=1)


def _forward_ok(W_E, W_KQ, W_V, contexts):
    h = torch.einsum("nl,nld->nd", _attention_ok(W_E, W_KQ, contexts), W_E[contexts])
    return h @ W_V.T @ W_E.T


def _counts(M, contexts):
    c = torch.zeros(contexts.shape[0], M.shape[0], dtype=M.dtype)
    return c.scatter_add_(1, contexts, torch.ones(contexts.shape, dtype=M.dtype))


CHECKERS = {
    transformer.check_attention: (
        _attention_ok,
        [
            lambda W_E, W_KQ, c: torch.softmax(
                torch.einsum("nd,ed,nle->nl", W_E[c][:, -1], W_KQ, W_E[c]), dim=1
            ),  # W_KQ^T
            lambda W_E, W_KQ, c: torch.softmax(
                torch.einsum("nd,de,nle->nl", W_E[c][:, 0], W_KQ, W_E[c]), dim=1
            ),  # first token
            lambda W_E, W_KQ, c: torch.exp(torch.einsum("nd,de,nle->nl", W_E[c][:, -1], W_KQ, W_E[c])),
        ],
    ),  # no softmax
    transformer.check_forward: (
        _forward_ok,
        [
            lambda W_E, W_KQ, W_V, c: (
                torch.einsum("nl,nld->nd", _attention_ok(W_E, W_KQ, c), W_E[c]) @ W_V @ W_E.T
            ),  # W_V^T
            lambda W_E, W_KQ, W_V, c: W_E[c].mean(1) @ W_V.T @ W_E.T,  # no attention
            lambda W_E, W_KQ, W_V, c: torch.einsum("nl,nld->nd", _attention_ok(W_E, W_KQ, c), W_E[c]) @ W_V.T,
        ],
    ),  # no unembed
    transformer.check_count_logits: (
        lambda M, c: _counts(M, c) @ M.T / c.shape[1],
        [
            lambda M, c: _counts(M, c) @ M / c.shape[1],  # M^T c
            lambda M, c: (_counts(M, c) > 0).to(M.dtype) @ M.T / c.shape[1],  # presence
            lambda M, c: _counts(M, c) @ M.T,
        ],
    ),  # no 1/L
    transformer.check_bayes_value_matrix: (
        lambda Lam, W_E: torch.linalg.pinv(W_E) @ Lam @ torch.linalg.pinv(W_E).T,
        [
            lambda Lam, W_E: W_E.T @ Lam @ W_E,  # W_E^T, no pinv
            lambda Lam, W_E: torch.linalg.pinv(W_E) @ Lam.T @ torch.linalg.pinv(W_E).T,  # Lam^T
            lambda Lam, W_E: torch.linalg.pinv(W_E).T @ Lam @ torch.linalg.pinv(W_E),
        ],
    ),  # wrong shape
}


@pytest.mark.parametrize("checker", list(CHECKERS), ids=lambda c: c.__name__)
def test_checkers_accept_reference_and_reject_mistakes(checker, capsys):
    good, wrongs = CHECKERS[checker]
    assert checker(good)
    for wrong in wrongs:
        res = checker(wrong)
        assert not res and ("wrong answer" in res.message or "raised" in res.message)
    res = checker(_stub)
    assert not res and "not implemented yet" in res.message


def test_checker_references_match_loops():
    """The exercise references agree with the loop implementation of the equations."""
    model = _random_model(V=8, d=4, seed=10)
    W_E, W_KQ, W_V = (model.W_E.detach(), model.W_KQ.detach(), model.W_V.detach())
    ctx = torch.randint(0, 8, (4, 6), generator=torch.Generator().manual_seed(10))
    f = transformer._ref_forward(W_E, W_KQ, W_V, ctx)
    a = transformer._ref_attention(W_E, W_KQ, ctx)
    for i in range(4):
        f_i, a_i, _ = _loop_forward(W_E, W_KQ, W_V, ctx[i].tolist())
        assert torch.allclose(f[i], f_i, atol=1e-10) and torch.allclose(a[i], a_i, atol=1e-12)


# ------------------------------------------------------------------------------ benchmark
def test_bench_reference_transformer_matches_lca_losses():
    bench = _load_bench()
    spec = lca.TaskSpec(4, 6, noise=0.2)
    config = TrainConfig(spec, d=8, batch_size=32, lr=0.01, seed=3, device="cpu")
    for mask in ("causal", "full"):
        diff = bench.max_loss_difference(config, steps=4, mask=mask)
        assert diff < 1e-4
    # the losses really change over the steps (so the agreement is not trivial)
    losses = bench.lca_losses(config, 4)
    assert len(set(round(x, 6) for x in losses)) == 4
    # same logits from identical (non-trivial) weights
    model = _random_model(V=16, d=8, seed=4, dtype=torch.float32)
    ref = bench.ReferenceTransformer.from_lca(model)
    ctx = torch.randint(0, 16, (10, 6), generator=torch.Generator().manual_seed(4))
    assert torch.allclose(ref(ctx), model(ctx), atol=1e-5)
    with pytest.raises(ValueError, match="mask"):
        bench.ReferenceTransformer(16, 8, mask="diagonal")
    with pytest.raises(ValueError, match="model"):
        bench.ReferenceTransformer.from_lca(lca.OneLayerTransformer(16, 8, ensemble=2, device="cpu"))


def test_bench_flop_count():
    bench = _load_bench()
    n, L, V, d = 3, 5, 16, 4
    forward = 2 * n * (d * d + L * d + L * d + d * d + V * d)  # qk, scores, h, W_V h, logits
    assert bench.model_flops_per_step(n, L, V, d) == 3 * forward


def test_bayes_value_matrix_refuses_nan_and_huge_pseudo_inverses():
    """Issue 16: a NaN embedding gave a NaN W_V; d = 65,536 at m = 12 tried a V x d pseudo-inverse
    of minutes and gigabytes."""
    spec = lca.TaskSpec(3, 4)
    W_E = torch.randn(8, 8, dtype=torch.float64)
    W_E[3, 3] = float("nan")
    with pytest.raises(ValueError, match="W_E must hold finite"):
        transformer.bayes_value_matrix(spec, W_E)
    with pytest.raises(ValueError, match="W_E must have a floating dtype"):
        transformer.bayes_value_matrix(spec, torch.ones(8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="d is too large"):
        transformer.bayes_model(lca.TaskSpec(12, 2), 65536)
    with pytest.raises(ValueError, match="W_E is too large"):
        transformer.bayes_value_matrix(
            lca.TaskSpec(12, 2), torch.zeros(1, 1, dtype=torch.float64).expand(4096, 8192)
        )
