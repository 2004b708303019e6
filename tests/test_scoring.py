"""Tests of lca.scoring: batched target scores (left padding and prefix-tree packing) equal a direct
forward pass, on tiny offline models and on SmolLM2.
"""

from __future__ import annotations

import pytest
import torch
from lm_helpers import (
    direct_scores,
    hijack_items,
    tiny_lm,
)

from lca import counterfact, hijacking, scoring


@pytest.mark.parametrize("arch,bos", [("gpt2", False), ("gpt2", True), ("llama", True)])
@pytest.mark.parametrize("pack", [True, False])
def test_batched_scores_equal_unbatched(arch, bos, pack):
    lm = tiny_lm(arch, bos)
    facts = counterfact.load_facts()[::3]  # 14 facts, targets of 4-13 characters
    ks = [0, 1, 3]
    prompts, tt, tf = hijack_items(facts, "relation", ks)
    groups = [i % len(facts) for i in range(len(prompts))]
    got = scoring.score_targets(lm, prompts, tt, tf, batch_size=7, groups=groups, pack=pack)
    ref_t = [direct_scores(lm, p, t) for p, t in zip(prompts, tt)]
    ref_f = [direct_scores(lm, p, t) for p, t in zip(prompts, tf)]
    for key, ref, col in [
        ("logp_true", ref_t, 0),
        ("first_true", ref_t, 1),
        ("logp_false", ref_f, 0),
        ("first_false", ref_f, 1),
    ]:
        want = torch.tensor([r[col] for r in ref], dtype=torch.float64)
        assert (got[key].double() - want).abs().max() <= 1e-5, key
    assert got["top1"].tolist() == [r[2] for r in ref_t]
    # the efficacy curve is the share of cases where the direct scores rank false above true
    curve = hijacking.efficacy_curve(lm, facts, "relation", ks, batch_size=7, pack=pack)
    n = len(facts)
    for i in range(len(ks)):
        rows = range(i * n, (i + 1) * n)
        want = sum(ref_f[j][0] > ref_t[j][0] for j in rows) / n
        # (character targets all start with " ": a true tie, which must not count as a hijack)
        want_first = sum(ref_f[j][1] > ref_t[j][1] + 1e-5 for j in rows) / n
        want_top1 = (
            sum(
                ref_t[j][2] == lm.tokenizer(" " + tf[j], add_special_tokens=False)["input_ids"][0]
                for j in rows
            )
            / n
        )
        assert curve["efficacy"][i] == pytest.approx(want, abs=1e-12)
        assert curve["efficacy_first_token"][i] == pytest.approx(want_first, abs=1e-12)
        assert curve["top1_false"][i] == pytest.approx(want_top1, abs=1e-12)
    assert curve["n"] == n and curve["k"] == ks


def test_wrong_position_ids_break_the_equality():
    """Without position ids counted per row (the lemma's hypothesis), GPT-2's absolute positions
    shift and the scores move far beyond 1e-5, padded or packed. Llama's rotary positions depend
    only on differences, so left padding survives the mistake (a whole prompt shifts by the same
    amount) while packing does not; where a transformers version cannot pack (no 4-D masks),
    scoring falls back to left padding and the equality holds again."""
    facts = counterfact.load_facts()[::4]
    prompts, tt, tf = hijack_items(facts, "generic", [0, 2])
    groups = [i % len(facts) for i in range(len(prompts))]
    for arch, pack in [("gpt2", False), ("gpt2", True), ("llama", False), ("llama", True)]:
        lm = tiny_lm(arch)
        want = torch.tensor([direct_scores(lm, p, t)[0] for p, t in zip(prompts, tt)], dtype=torch.float64)
        packs = pack and scoring._packing_works(lm)
        bad = scoring.score_targets(
            lm, prompts, tt, tf, batch_size=5, groups=groups, pack=pack, correct_positions=False
        )
        err = float((bad["logp_true"].double() - want).abs().max())
        if arch == "gpt2" or packs:
            assert err > 1e-4, (arch, pack, err)
        else:
            assert err <= 1e-4, (arch, pack, err)


def test_bad_arguments_are_named():
    lm = tiny_lm("gpt2")
    args = (["The capital of Italy is"], ["Rome"], ["Milan"])
    for flag in ("progress", "pack", "correct_positions"):
        with pytest.raises(TypeError, match=flag):
            scoring.score_targets(lm, *args, **{flag: "False"})
    with pytest.raises(TypeError, match="prompts"):
        scoring.score_targets(lm, "The capital of Italy is", "Rome", "Milan")
    with pytest.raises(TypeError, match="targets_true"):
        scoring.score_targets(lm, args[0], None, args[2])
    with pytest.raises(TypeError, match="groups"):
        scoring.score_targets(lm, *args, groups=[["a"]])
    with pytest.raises(ValueError, match="lm must be"):
        scoring.score_targets(None, *args)


def test_prompts_longer_than_the_model_fail_before_allocating():
    """The tiny GPT-2 takes 512 positions (config.max_position_embeddings): a longer prompt is a
    ValueError naming the limit, not an allocation (or an index error deep in the model)."""
    lm = tiny_lm("gpt2")
    long = "Do not think of Milan. " * 30 + "The capital of Italy is"  # 713 characters
    for pack in (True, False):
        with pytest.raises(ValueError, match="512 positions"):
            scoring.score_targets(lm, [long], ["Rome"], ["Milan"], pack=pack)
    assert scoring._max_positions(lm.model) == 512
    assert scoring._max_positions(object()) is None


@pytest.mark.slow
def test_real_model_batched_scores_equal_direct_forward(smollm2):
    facts = counterfact.load_facts()[:6]
    prompts, tt, tf = hijack_items(facts, "generic", [0, 2])
    got = scoring.score_targets(smollm2, prompts, tt, tf, groups=[i % 6 for i in range(len(prompts))])
    tok = smollm2.tokenizer
    for i in (0, 3, 7, 11):
        pid = tok(prompts[i])["input_ids"]
        tid = tok(prompts[i] + " " + tt[i])["input_ids"][len(pid) :]
        with torch.no_grad():
            logp = torch.log_softmax(smollm2.model(torch.tensor([pid + tid])).logits[0].double(), -1)
        want = torch.stack([logp[len(pid) - 1 + j, tid[j]] for j in range(len(tid))]).mean()
        assert abs(float(got["logp_true"][i]) - float(want)) <= 1e-4
