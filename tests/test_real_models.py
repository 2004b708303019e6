"""Tests of ``lca.real_models`` (chapter 8): Wilson intervals and the known-fact selection against
hand-computed examples, the curves' aggregation, the logit lens and the knock-out on a tiny model,
and (slow) stored results recomputed with SmolLM2."""

from __future__ import annotations

import json
import random

import pytest
import torch
from lm_helpers import HAVE_SMOLLM2, NO_SMOLLM2, tiny_lm

from lca import counterfact, real_models


def test_wilson_interval_hand_computed():
    # 8 of 10, z = 1.96: centre (0.8 + 0.19208) / 1.38416, half-width
    # 1.96 sqrt(0.016 + 0.009604) / 1.38416
    lo, hi = real_models.wilson_interval(8, 10)
    assert lo == pytest.approx(0.490157, abs=1e-6)
    assert hi == pytest.approx(0.943319, abs=1e-6)
    # 0 of 10: the interval keeps a width (the normal one would collapse to a point)
    lo, hi = real_models.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.277540, abs=1e-6)
    assert real_models.wilson_interval(10, 10)[1] == 1.0
    assert real_models.wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_validates():
    with pytest.raises(ValueError, match="successes"):
        real_models.wilson_interval(11, 10)
    with pytest.raises(ValueError, match="n"):
        real_models.wilson_interval(1, -1)


def test_known_mask_hand_example():
    top1 = [5, 5, 7, 5]
    true_id = [5, 5, 5, 5]
    margin = [-1.0, 0.3, -2.0, 0.0]  # needs top-1 = true AND false losing strictly
    assert real_models.known_mask(top1, true_id, margin) == [True, False, False, False]
    with pytest.raises(ValueError, match="same length"):
        real_models.known_mask([1], [1, 2], [0.0])


def test_aggregate_hand_example():
    ks = [0, 1]
    recs = [
        {"relation": "P103", "known": True, "margin": [-1.0, 0.5], "top": [1, -1]},
        {"relation": "P103", "known": True, "margin": [-1.0, -0.5], "top": [1, 0]},
        {"relation": "other", "known": True, "margin": [-2.0, -1.0], "top": [1, 1]},
        {"relation": "other", "known": False, "margin": [0.2, 0.4], "top": [0, -1]},
    ]
    a = real_models.aggregate(recs, ks)
    assert (a["n_cases"], a["n_known"]) == (4, 3)
    assert a["efficacy"]["count"] == [1, 2]
    assert a["flipped"]["count"] == [0, 2]
    assert a["hijacked"]["count"] == [0, 1]
    assert a["flipped"]["lo"][1] == pytest.approx(real_models.wilson_interval(2, 3)[0])
    rel = real_models.by_relation(recs, ks)
    assert rel["P103"]["flipped"]["count"] == [0, 2] and rel["other"]["n_known"] == 1


@pytest.fixture(scope="module")
def tiny():
    lm = tiny_lm("llama")
    real_models.set_eager(lm)
    return lm


def test_logit_lens_last_layer_equals_the_logits(tiny):
    ids = tiny.tokenizer("Do not think of Paris. The city is")["input_ids"]
    tids = [10, 20, 30]
    lens = real_models.logit_lens(tiny, ids, tids)
    with torch.no_grad():
        logits = tiny.model(torch.tensor([ids])).logits[0, -1]
    assert lens.shape == (tiny.model.config.num_hidden_layers + 1, 3)
    assert (lens[-1] - logits[tids]).abs().max() < 1e-4


def test_knockout_of_nothing_changes_nothing(tiny):
    ids = tiny.tokenizer("Do not think of Paris. The city is")["input_ids"]
    with torch.no_grad():
        logits = tiny.model(torch.tensor([ids])).logits[0, -1]
    for heads in (None, [(0, 1)]):
        out = real_models.knockout_logits(tiny, ids, [], heads=heads)
        assert (out - logits).abs().max() < 1e-6
    changed = real_models.knockout_logits(tiny, ids, [3, 4, 5])
    assert (changed - logits).abs().max() > 1e-4
    with pytest.raises(ValueError, match="positions"):
        real_models.knockout_logits(tiny, ids, [len(ids) - 1])


def test_knockout_of_everything_but_self_is_attention_to_self(tiny):
    """Knocking out every earlier position leaves the final token attending to itself only: the
    same logits as the final token's own one-token run, shifted to its position (checked through
    the attention weights, which must put weight 1 on the final position)."""
    ids = tiny.tokenizer("abcdef")["input_ids"]
    att = real_models.final_attention(tiny, ids, list(range(len(ids))))
    assert torch.allclose(att, torch.ones_like(att), atol=1e-5)  # weights sum to 1


def test_cue_positions_cover_the_false_target():
    from lm_helpers import char_tokenizer

    class Tok:
        tokenizer = char_tokenizer(False)

    fact = counterfact.Fact(
        case_id=0, subject="X", template="{} is in", target_true="Rome", target_false="Oslo"
    )
    ids, cue, other = real_models.cue_positions(Tok, fact, "generic", 2)
    text = "".join(Tok.tokenizer.decode([ids[p]]) for p in cue)
    assert text == "OsloOslo"
    sent = "Do not think of Oslo. "
    assert len(cue) + len(other) == 2 * len(sent)  # every prepended char
    assert max(cue + other) == len(2 * sent) - 1


def test_one_layer_flip_is_chapter_7s_closed_form():
    assert real_models.one_layer_flip([0.0, 1.0], 10) == [0.0, 1.0]
    assert real_models.one_layer_flip([0.5], 3)[0] == pytest.approx(0.5)


def test_stored_curves_are_consistent():
    res = real_models.load_curves()
    ks = res["ks"]
    for model in res["models"].values():
        for sch in model["schemes"].values():
            recs = [
                {"case_id": c, "relation": r, "margin": m, "top": t, "known": t[0] == 1 and m[0] < 0}
                for c, r, m, t in sch["cases"]
            ]
            again = real_models.aggregate(recs, ks)
            for key in ("efficacy", "flipped", "hijacked"):
                assert again[key]["count"] == sch["all"][key]["count"]


def test_stored_records_are_the_known_cases_verbatim():
    """Chapter 8 rebuilds its known cases from the records stored with the curves: one per case
    known by some model, and (where the full file is here) identical to CounterFact's."""
    res = real_models.load_curves()
    facts = real_models.stored_facts(res)
    known = {
        c[0]
        for model in res["models"].values()
        for sch in model["schemes"].values()
        for c in sch["cases"]
        if c[3][0] == 1 and c[2][0] < 0
    }
    assert set(facts) == known
    full = counterfact.counterfact_path(full=True)
    if full is None:
        pytest.skip("the full CounterFact file is not on this machine")
    by_id = {r["case_id"]: r for r in json.loads(full.read_text(encoding="utf-8"))}
    assert all(r == by_id[r["case_id"]] for r in res["records"])
    with pytest.raises(ValueError, match="records"):
        real_models.stored_facts({"models": {}})


@pytest.mark.slow
def test_stored_cases_recompute_with_smollm2(smollm2):
    if not HAVE_SMOLLM2:
        pytest.skip(NO_SMOLLM2)
    res = real_models.load_curves()
    stored = res["models"]["smollm2"]["schemes"]["generic"]["cases"]
    path = counterfact.counterfact_path(full=True)
    if path is None:
        pytest.skip("the full CounterFact file is not available locally")
    facts = {f.case_id: f for f in counterfact.load_counterfact(path=path)}
    sample = random.Random(1).sample(stored, 12)
    recs = real_models.score_cases(smollm2, [facts[c[0]] for c in sample], "generic", res["ks"])
    tol = 10 ** -res["settings"]["margin_decimals"]
    for want, got in zip(sample, recs):
        assert got["top"] == want[3]
        assert max(abs(a - b) for a, b in zip(got["margin"], want[2])) <= tol + 1e-9


def test_the_wilson_checker_tells_right_from_wrong(capsys):
    def stub(successes, n, z=1.96):
        raise NotImplementedError

    def normal(successes, n, z=1.96):  # the textbook interval: a single point at 0 and n successes
        p = successes / n
        half = z * (p * (1 - p) / n) ** 0.5
        return p - half, p + half

    def half_only(successes, n, z=1.96):  # only the half-width divided by 1 + z^2 / n
        p = successes / n
        denom = 1 + z * z / n
        half = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / denom
        return p + z * z / (2 * n) - half, p + z * z / (2 * n) + half

    def reference(successes, n, z=1.96):  # the chapter's reference cell
        p = successes / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / denom
        return centre - half, centre + half

    assert "not implemented yet" in real_models.check_wilson_interval(stub).message
    assert real_models.check_wilson_interval(real_models.wilson_interval)
    assert real_models.check_wilson_interval(reference)
    for wrong in (normal, half_only):
        res = real_models.check_wilson_interval(wrong)
        assert not res and "expected" in res.message and "successes=" in res.message
    out = capsys.readouterr().out
    assert out.count("\n") == 3 + 2 * 4  # one line per pass or stub, four per failure
    capsys.readouterr()


def test_figures_fit_the_column_with_legends_outside():
    import matplotlib.pyplot as plt

    res = real_models.load_curves()
    panels = [("flipped", "generic", "generic"), ("flipped", "relation", "relation")]
    figs = [
        real_models.plot_known_panels(res, panels),
        real_models.plot_prediction_beside_curves(res, res["ks"], [0.0] * len(res["ks"])),
        real_models.plot_logit_lens(torch.zeros(4), torch.ones(4)),
    ]
    for fig in figs:
        assert fig.get_size_inches()[0] <= 7.5 + 1e-9 and fig._suptitle is None
        assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
        plt.close(fig)
    # panels that count different cases say so per panel, and the legend names only the models
    fig = real_models.plot_known_panels(res, panels)
    n_relation = res["models"]["smollm2"]["schemes"]["relation"]["all"]["flipped"]["n"]
    assert f"{n_relation} (smollm2)" in fig.axes[1].get_title()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(res["models"])
    plt.close(fig)
    fig = real_models.plot_known_curves(res)
    legend = fig.axes[0].get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 > fig.axes[0].bbox.x1 - 1
    plt.close(fig)
