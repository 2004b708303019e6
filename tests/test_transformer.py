"""Chapter 3 (the one-layer transformer): probes, plots, exercise checkers, the two forward-pass
paths of lca.model, the chapter's theorem and lemmas, and the benchmark's reference model.

Every number compared here is computed twice, by independent routes: explicit Python loops over
positions and tokens, brute-force Bayes posteriors from the context law, a separately trained
model, or stock PyTorch layers."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
from pathlib import Path

import matplotlib
import pytest
import torch

import lca
import lca.model as lca_model
from lca import report, transformer
from lca.lca_task import bayes_accuracy_sphere1
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
        assert not fig.get_suptitle() and fig.axes[0].get_ylabel()  # the caption says it
        assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in fig.axes)  # legend below
        assert fig.get_figwidth() <= 7.5 + 1e-9
        for ax in fig.axes:
            assert ax.get_xlabel()
        matplotlib.pyplot.close(fig)
    four = transformer.SweepTable(
        "L",
        [2, 4],
        [3, 4, 5, 6],
        ["trained W_V", "W_V = I"],
        settings={"steps": 300},
        mean={lab: {m: [0.1, 0.2] for m in (3, 4, 5, 6)} for lab in ("trained W_V", "W_V = I")},
        sd={lab: {m: [0.0, 0.1] for m in (3, 4, 5, 6)} for lab in ("trained W_V", "W_V = I")},
        bayes={m: [0.5, 0.6] for m in (3, 4, 5, 6)},
    )
    fig = transformer.plot_accuracy_vs_length(four, longer=four, title="a title")
    assert [ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes] == [(2, 2)] * 4  # a grid
    assert fig.get_suptitle() == "a title"
    assert {t.get_text() for t in fig.legends[0].get_texts()} >= {"$W_{V} = I$, 300 steps", "Bayes ceiling"}
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
        (lambda: transformer.dim_sweep(m_values=None), "m_values"),  # issue 16's fuzz list
        (lambda: transformer.dim_sweep((3,), d_values=None), "d_values"),
        (lambda: transformer.length_sweep(m_values=None), "m_values"),
        (lambda: transformer.length_sweep((3,), L_values=None), "L_values"),
        (lambda: transformer.length_sweep((3,), L_values="abc"), "L_values"),
        (lambda: transformer.budget_sweep("L", (4,), (3,), budgets=None), "budgets"),
        (lambda: transformer.run_budget("lengths"), "name"),
        (lambda: transformer.percentile_runs((300,), m=1), "m"),
        (lambda: transformer.fixed_embedding_comparison(spec, None), "d_values"),
        (lambda: transformer.bayes_model("spec", 8), "spec"),
        (lambda: transformer.SweepTable("L", [1], [3], []).format(digits=-1), "digits"),
    ]
    for fn, name in cases:
        with pytest.raises(ValueError, match=name):
            fn()


# ------------------------------------------------------------------------------ exercises
def _stub(*args):
    raise NotImplementedError


def _bag_ok(W_E, W_KQ, W_V, counts, query):
    s = W_E[query] @ W_KQ @ W_E.T
    w = counts * torch.exp(s - s.max(1, keepdim=True).values)
    return (w / w.sum(1, keepdim=True)) @ W_E @ W_V.T @ W_E.T


def _enumerated(M, P, L, split_ties=True):
    """Accuracy of the logits M c(x) / L over every context, with an explicit loop."""
    V, total = M.shape[0], 0.0
    for x in itertools.product(range(V), repeat=L):
        f = [sum(float(M[k, t]) for t in x) / L for k in range(V)]
        best = [k for k in range(V) if f[k] >= max(f) - 1e-9 * max(abs(max(f)), 1.0)]
        if not split_ties:
            best = [max(range(V), key=lambda k: f[k])]
        total += sum(math.prod(float(P[y, t]) for t in x) / V for y in best) / len(best)
    return total


def _counts(M, contexts):
    c = torch.zeros(contexts.shape[0], M.shape[0], dtype=M.dtype)
    return c.scatter_add_(1, contexts, torch.ones(contexts.shape, dtype=M.dtype))


CHECKERS = {
    transformer.check_bag_logits: (
        _bag_ok,
        [
            lambda W_E, W_KQ, W_V, c, q: _bag_ok(W_E, W_KQ, W_V, (c > 0).double(), q),  # presence only
            lambda W_E, W_KQ, W_V, c, q: _bag_ok(W_E, W_KQ.T, W_V, c, q),  # W_KQ^T
            lambda W_E, W_KQ, W_V, c, q: _bag_ok(W_E, W_KQ, W_V, torch.ones_like(c), q),  # every token
            lambda W_E, W_KQ, W_V, c, q: (
                (c * torch.exp(W_E[q] @ W_KQ @ W_E.T)) @ W_E @ W_V.T @ W_E.T
            ),  # not normalised
        ],
    ),
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
    transformer.check_exact_accuracy: (
        _enumerated,
        [
            lambda M, P, L: _enumerated(M, P, L, split_ties=False),  # plain argmax
            lambda M, P, L: _enumerated(M, P.T, L),  # P[x, y] for P[y, x]
            lambda M, P, L: V * _enumerated(M, P, L) if (V := M.shape[0]) else 0.0,  # no prior 1/V
            lambda M, P, L: _enumerated(M.T, P, L),  # M^T c
        ],
    ),
}


@pytest.mark.parametrize("checker", list(CHECKERS), ids=lambda c: c.__name__)
def test_checkers_accept_reference_and_reject_mistakes(checker, capsys):
    """Each checker prints one message: "not implemented yet" for the stub, a pass for a correct
    answer, and for a typical mistake the first failing input with expected and got."""
    good, wrongs = CHECKERS[checker]
    assert checker(good)
    assert capsys.readouterr().out.strip().endswith("tests passed.")
    for wrong in wrongs:
        res = checker(wrong)
        assert not res and ("wrong answer" in res.message or "raised" in res.message)
        out = capsys.readouterr().out
        assert out == res.message + "\n" and "expected:" in out and "got:" in out
    res = checker(_stub)
    assert not res and "not implemented yet" in res.message
    assert capsys.readouterr().out.count("\n") == 1


def test_checker_references_match_loops():
    """The exercise references agree with the loop implementation of the equations."""
    model = _random_model(V=8, d=4, seed=10)
    W_E, W_KQ, W_V = (model.W_E.detach(), model.W_KQ.detach(), model.W_V.detach())
    ctx = torch.randint(0, 8, (4, 6), generator=torch.Generator().manual_seed(10))
    ctx[0, :3] = 5
    f = transformer._ref_bag_logits(W_E, W_KQ, W_V, count_vector(ctx, 8), ctx[:, -1])
    for i in range(4):
        f_i, _, _ = _loop_forward(W_E, W_KQ, W_V, ctx[i].tolist())
        assert torch.allclose(f[i], f_i, atol=1e-10)
    g = torch.Generator().manual_seed(11)
    M, P = (
        torch.randn(4, 4, generator=g, dtype=torch.float64),
        torch.rand(4, 4, generator=g, dtype=torch.float64),
    )
    P = P / P.sum(1, keepdim=True)
    for L in (1, 2, 3):
        assert math.isclose(transformer._ref_exact_accuracy(M, P, L), _enumerated(M, P, L), abs_tol=1e-12)


def test_logits_read_a_bag_of_tokens_and_the_query():
    """Exercise ex-tf-bag: without positional encoding the logits depend on a context only through
    its count vector and its last token (permuting the other positions changes nothing); with a
    positional encoding added to the embeddings they do not."""
    model = _random_model(V=16, d=6, seed=12, W_KQ_scale=2.0)
    W_E, W_KQ, W_V = (model.W_E.detach(), model.W_KQ.detach(), model.W_V.detach())
    g = torch.Generator().manual_seed(13)
    ctx = torch.randint(0, 16, (50, 7), generator=g)
    perm = torch.cat([torch.randperm(6, generator=g), torch.tensor([6])])
    assert torch.allclose(model(ctx).detach(), model(ctx[:, perm]).detach(), atol=1e-12)
    bag = transformer._ref_bag_logits(W_E, W_KQ, W_V, count_vector(ctx, 16), ctx[:, -1])
    assert torch.allclose(bag, model(ctx).detach(), atol=1e-10)
    pos = torch.randn(7, 6, generator=g, dtype=torch.float64)  # hypothesis removed: positions

    def with_positions(c):
        X = W_E[c] + pos
        a = torch.softmax(torch.einsum("nd,de,nle->nl", X[:, -1], W_KQ, X), dim=1)
        return torch.einsum("nl,nld->nd", a, X) @ W_V.T @ W_E.T

    assert not torch.allclose(with_positions(ctx), with_positions(ctx[:, perm]), atol=1e-3)


def test_exact_accuracy_matches_sampling_and_the_theorem():
    """Exercise ex-tf-exact: the enumerated accuracy of a bag-of-tokens model agrees with a
    sampled estimate; for the theorem's construction (d >= V) it equals the Bayes ceiling, in
    closed form for the noise-free task and by enumeration with noise; for d < V it falls short."""
    spec = lca.TaskSpec(3, 3, noise=0.3)
    model = transformer.bayes_model(spec, 5, seed=2)  # d < V: the construction is not exact
    M = (model.W_E @ model.W_V @ model.W_E.T).detach()
    acc = transformer._ref_exact_accuracy(M, spec.context_law(), 3)
    ctx, y = lca.sample(spec, 20000, seed=4)
    sampled = transformer.tied_accuracy(model(ctx).detach(), y)
    assert abs(acc - sampled) < 4 * (acc * (1 - acc) / 20000) ** 0.5
    P = spec.context_law()
    bayes = sum(
        max(math.prod(float(P[t, x]) for x in xs) for t in range(8)) / 8
        for xs in itertools.product(range(8), repeat=3)
    )
    assert acc < bayes - 0.01
    for s in (spec, lca.TaskSpec(3, 3)):
        full = transformer.bayes_model(s, 12, seed=2)
        M = (full.W_E @ full.W_V @ full.W_E.T).detach()
        exact = transformer._ref_exact_accuracy(M, s.context_law(), 3)
        target = bayes if s.noise else float(bayes_accuracy_sphere1(3, 3, exact=True))
        assert math.isclose(exact, target, abs_tol=1e-12)


def test_one_token_identity_value_accuracy():
    """Exercise ex-tf-one-token: on the noise-free N_1 task with L = 1, W_V = I and embeddings of
    one norm score 0 (ties split), the Bayes ceiling is 1/m; with unequal norms W_V = I can win."""
    for m in (3, 4):
        spec = lca.TaskSpec(m, 1)
        W_E = torch.randn(2**m, 5, generator=torch.Generator().manual_seed(m), dtype=torch.float64)
        unit = W_E / W_E.norm(dim=1, keepdim=True)
        P = spec.context_law()
        assert transformer._ref_exact_accuracy(unit @ unit.T, P, 1) < 1e-12
        assert math.isclose(float(bayes_accuracy_sphere1(m, 1, exact=True)), 1 / m)
        # hypothesis removed: norms 1, ..., V along one line; the longest embedding always wins
        line = torch.arange(1.0, 2**m + 1, dtype=torch.float64)[:, None] * unit[:1]
        assert math.isclose(transformer._ref_exact_accuracy(line @ line.T, P, 1), 2.0**-m)


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


# ------------------------------------------------------------------------------ issue 13: new measurements
def test_logit_percentiles_match_a_loop():
    """logit_percentiles against an explicit loop over contexts and tokens (ties count one half)."""
    model = _random_model(V=8, d=4, seed=12)
    spec = lca.TaskSpec(3, 5, noise=0.4)
    ctx, y = lca.sample(spec, 40, seed=3)
    f = model(ctx).detach()
    ref = {"present": [], "absent": [], "target": []}
    for i in range(40):
        row = f[i].tolist()
        pct = [(sum(v < row[k] for v in row) + (sum(v == row[k] for v in row) - 1) / 2) / 7 for k in range(8)]
        present = set(ctx[i].tolist())
        ref["present"] += [pct[k] for k in present]
        ref["absent"] += [pct[k] for k in range(8) if k not in present and k != int(y[i])]
        ref["target"].append(pct[int(y[i])])
    got = transformer.logit_percentiles(model, ctx, y)
    for key, vals in ref.items():
        assert math.isclose(got[key], sum(vals) / len(vals), abs_tol=1e-12), key
    pred = f.argmax(1)
    wrong = [i for i in range(40) if int(pred[i]) != int(y[i])]
    in_ctx = [int(pred[i]) in ctx[i].tolist() for i in wrong]
    assert wrong and math.isclose(got["errors_in_context"], sum(in_ctx) / len(wrong), abs_tol=1e-12)
    present_count = sum(len(set(c)) for c in ctx.tolist())
    assert math.isclose(got["lowest_chance"], present_count / 40 / 8, abs_tol=1e-12)
    # all logits tied (W_V = 0): every token sits at percentile 1/2
    flat = transformer.logit_percentiles(
        _random_model(V=8, d=4, W_V=torch.zeros(4, 4, dtype=torch.float64)), ctx, y
    )
    assert flat["present"] == flat["absent"] == flat["target"] == 0.5
    # a model that pushes the context's own tokens down (W_V = -I, one-hot embeddings, uniform
    # attention) puts them at the bottom
    anti = lca.OneLayerTransformer.from_weights(
        torch.eye(8, dtype=torch.float64), None, -torch.eye(8, dtype=torch.float64), device="cpu"
    )
    low = transformer.logit_percentiles(anti, ctx, y)
    assert low["lowest_present"] == 1.0 and low["present"] < low["absent"]
    with pytest.raises(ValueError, match="targets"):
        transformer.logit_percentiles(model, ctx, y[:5])
    with pytest.raises(ValueError, match="targets"):
        transformer.logit_percentiles(model, ctx, ctx[:, 0])  # targets inside their contexts


def test_tied_accuracy_splits_ties():
    logits = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0 - 1e-12], [3.0, 0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 0])
    assert math.isclose(transformer.tied_accuracy(logits, y), (0.5 + 0.0 + 1.0) / 3)
    assert math.isclose(transformer.tied_accuracy(logits, torch.tensor([1, 2, 1])), (0.5 + 0.5 + 0.0) / 3)
    with pytest.raises(ValueError, match="logits"):
        transformer.tied_accuracy(logits.long(), y)
    with pytest.raises(ValueError, match="targets"):
        transformer.tied_accuracy(logits, y[:2])
    with pytest.raises(ValueError, match="tol"):
        transformer.tied_accuracy(logits, y, tol=-1.0)


def test_fitted_value_matrix_minimises_the_cross_entropy():
    """fitted_value_matrix: the gradient of the (convex) sample cross-entropy nearly vanishes, the
    fit beats the pseudo-inverse construction at d < V and is close to Bayes at d >= V."""
    spec = lca.TaskSpec(3, 6, noise=0.3)
    ctx, y = lca.sample(spec, 2048, seed=1)
    counts = count_vector(ctx, spec.V) / spec.L
    bayes = float(lca.task.bayes_correct(spec, ctx, y).mean())
    E = torch.randn(8, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64) / 5**0.5
    W = transformer.fitted_value_matrix(spec, E, n_train=2048, seed=4, max_iter=300)
    train_ctx, train_y = lca.sample(spec, 2048, seed=4)
    H = count_vector(train_ctx, 8) @ E / spec.L
    Wg = W.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(H @ Wg.T @ E.T, train_y)
    loss.backward()
    assert float(Wg.grad.abs().max()) < 1e-4
    zero = torch.nn.functional.cross_entropy(H @ torch.zeros(5, 5, dtype=torch.float64).T @ E.T, train_y)
    assert float(loss.detach()) < float(zero) - 0.1
    fitted = transformer.tied_accuracy(counts @ (E @ W @ E.T).T, y)
    built = transformer.tied_accuracy(counts @ (E @ transformer.bayes_value_matrix(spec, E) @ E.T).T, y)
    assert fitted > built + 0.1
    E_big = torch.randn(8, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64) / 12**0.5
    W_big = transformer.fitted_value_matrix(spec, E_big, n_train=4096, max_iter=200)
    assert transformer.tied_accuracy(counts @ (E_big @ W_big @ E_big.T).T, y) > bayes - 0.03
    for kwargs, name in (
        ({"n_train": 0}, "n_train"),
        ({"max_iter": 2.5}, "max_iter"),
        ({"seed": -1}, "seed"),
    ):
        with pytest.raises(ValueError, match=name):
            transformer.fitted_value_matrix(spec, E, **kwargs)
    with pytest.raises(ValueError, match="W_E"):
        transformer.fitted_value_matrix(spec, E.T)


def test_fixed_embedding_comparison_uses_the_training_embeddings():
    spec = lca.TaskSpec(3, 6, noise=0.3)
    out = transformer.fixed_embedding_comparison(
        spec, (4, 8), seeds=(0, 1), n_eval=256, n_train=512, max_iter=30
    )
    assert out["d"] == [4, 8] and out["seeds"] == [0, 1]
    cfg = TrainConfig(spec, d=4, n_eval=256, seed=1)
    E = lca.train.build_model(cfg).W_E.detach().double()
    ctx, y = lca.sample(spec, 256, seed=cfg.eval_seed)
    counts = count_vector(ctx, 8) / 6
    want = transformer.tied_accuracy(counts @ (E @ transformer.bayes_value_matrix(spec, E) @ E.T).T, y)
    assert math.isclose(out["construction"][0][1], want, abs_tol=1e-12)
    # with d = V the construction is Bayes-optimal: ties split, it equals the ceiling exactly
    assert all(math.isclose(a, out["bayes"], abs_tol=1e-9) for a in out["construction"][1])
    assert out["fitted W_V"][0][0] > out["construction"][0][0]


def test_budget_sweep_reads_off_the_shorter_runs():
    """The 6-step model of a budget sweep is the model of a separate 6-step run (constant learning
    rate); shape_sweep is budget_sweep with one budget; tables survive a JSON round trip."""
    kw = dict(d=8, seeds=(0, 1), batch_size=16, n_eval=64, device="cpu")
    tables = transformer.budget_sweep("L", (2, 5), (3,), budgets=(6, 3, 9), **kw)
    assert sorted(tables) == [3, 6, 9]
    for steps in (3, 6):
        alone = transformer.length_sweep(m_values=(3,), L_values=(2, 5), steps=steps, **kw)
        assert alone.mean == tables[steps].mean and alone.sd == tables[steps].sd
        assert alone.settings == tables[steps].settings and alone.settings["steps"] == steps
        back = transformer.SweepTable.from_dict(json.loads(json.dumps(tables[steps].to_dict())))
        assert back.mean == tables[steps].mean and back.bayes == tables[steps].bayes and back.x == [2, 5]
    assert tables[3].mean != tables[9].mean
    with pytest.raises(ValueError, match="budgets"):
        transformer.budget_sweep("L", (2,), (3,), budgets=(300, 301), **kw)
    with pytest.raises(TypeError, match="budgets"):
        transformer.shape_sweep("L", (2,), (3,), budgets=(3,), **kw)
    with pytest.raises(ValueError, match="mean"):
        bad = tables[3].to_dict()
        bad["mean"]["W_V = I"]["3"] = [0.5]
        transformer.SweepTable.from_dict(bad)


def test_stored_budget_runs_are_complete():
    stored = transformer.load_budgets()
    for name, run in transformer.BUDGET_RUNS.items():
        assert sorted(stored[name]) == list(transformer.BUDGETS), name
        for steps, table in stored[name].items():
            assert table.x == list(run["x_values"]) and table.m_values == list(run["m_values"])
            assert table.settings["steps"] == steps and table.settings["seeds"] == list(
                transformer.BUDGET_SEEDS
            )
            for lab in table.labels:
                for m in table.m_values:
                    assert all(0.0 <= a <= 1.0 for a in table.mean[lab][m])
    pct = stored["percentiles"]
    assert sorted(pct) == [300, 1200]
    for by_label in pct.values():
        for stats in by_label.values():
            assert len(stats["present"]) == len(transformer.BUDGET_SEEDS)
    with pytest.raises(FileNotFoundError, match="bench/03_budgets.py"):
        transformer.load_budgets(ROOT / "no-such-file.json")


@pytest.mark.slow
def test_stored_budget_runs_recompute():
    """A sample of bench/03_budgets.py's stored results, recomputed here: the smallest points of
    two runs at 300 and 600 steps. Same seeds and code, so on the machine that stored them the
    means agree to rounding; another CPU's floating-point path moves a trained accuracy by a few
    thousandths at most, hence the tolerance."""
    stored = transformer.load_budgets()
    for name, grid in (("small_d", {"x_values": (4,)}), ("length", {"x_values": (4,), "m_values": (5,)})):
        fresh = transformer.run_budget(name, budgets=(300, 600), device="cpu", **grid)
        for steps, table in fresh.items():
            old = stored[name][steps]
            m = table.m_values[0]
            for lab in table.labels:
                assert math.isclose(table.mean[lab][m][0], old.mean[lab][m][0], abs_tol=0.01), (
                    name,
                    steps,
                    lab,
                )
            assert math.isclose(table.bayes[m][0], old.bayes[m][0], abs_tol=1e-12)
