"""Tests of lca.packing: the prefix tree, the packed batch (positions from the tree's depths, a 4-D
mask of ancestors), packed scores equal to padded and unbatched ones on the tiny models, and the
fall-back for a model that ignores 4-D masks (checked on every call, never cached).
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch
from lm_helpers import ROOT, direct_scores, hijack_items, old_style_lm, tiny_lm

from lca import counterfact, packing, scoring


def test_prefix_tree_shares_prefixes():
    tree = packing.PrefixTree()
    a = tree.add([5, 6, 7])
    b = tree.add([5, 6, 8, 9])
    c = tree.add([6, 7])  # a second root
    assert a == [0, 1, 2] and b == [0, 1, 3, 4] and c == [5, 6]
    assert tree.tokens == [5, 6, 7, 8, 9, 6, 7]
    assert tree.parents == [-1, 0, 1, 1, 3, -1, 5]
    assert tree.depths == [0, 1, 2, 2, 3, 0, 1]
    assert tree.add([5, 6]) == [0, 1] and len(tree) == 7
    anc = tree.ancestors()
    assert anc[4].nonzero().flatten().tolist() == [0, 1, 3, 4]
    assert anc[6].nonzero().flatten().tolist() == [5, 6]


def test_pack_lays_out_positions_and_the_ancestor_mask():
    t1, t2 = packing.PrefixTree(), packing.PrefixTree()
    t1.add([5, 6, 7])
    t1.add([5, 6, 8])
    t2.add([9, 9])
    batch = packing.pack([t1, t2], wanted=[{1}, {1}], pad_id=0)
    assert batch.input_ids.shape == (2, 4) and batch.attention_mask.shape == (2, 1, 4, 4)
    # row 0: node 0 in front, node 1 and its descendants (2, 3) in the last three columns
    assert batch.columns[0] == [0, 1, 2, 3] and batch.keep == 3
    assert batch.input_ids[0].tolist() == [5, 6, 7, 8]
    assert batch.position_ids[0].tolist() == [0, 1, 2, 2]  # depths: 7 and 8 are siblings
    allowed = batch.attention_mask[0, 0] == 0
    assert allowed.tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [True, True, True, False],
        [True, True, False, True],
    ]
    # row 1: padded between its front (node 0) and its back (node 1); padding sees only itself
    assert batch.columns[1] == [0, 3]
    assert batch.input_ids[1].tolist() == [9, 0, 0, 9]
    allowed = batch.attention_mask[1, 0] == 0
    assert allowed[3].tolist() == [True, False, False, True]
    assert allowed[1].tolist() == [False, True, False, False]
    assert not allowed[:, 1:3].any(dim=1)[[0, 3]].any()  # nobody attends to padding
    assert batch.attention_mask.min() == torch.finfo(torch.float32).min
    with pytest.raises(ValueError, match="trees"):
        packing.pack([])


def _probe(lm):
    return [[scoring._encode_prompt(lm.tokenizer, p) for p in g] for g in scoring._PROBE]


@pytest.mark.parametrize("arch,bos", [("gpt2", False), ("llama", True)])
def test_packed_scores_equal_padded_ones(arch, bos):
    """The module's argument, checked: on the tiny models packing changes no score beyond
    1e-5, and both equal the unbatched forward pass. The tiny Llama honours 4-D masks in every
    supported transformers version and must pack without a warning; GPT-2's code ignores them in
    older versions (the floor's 4.47), and there the scorer must say so and fall back to padding,
    with the same scores."""
    lm = tiny_lm(arch, bos)
    facts = counterfact.load_facts()[::5]
    prompts, tt, tf = hijack_items(facts, "generic", [0, 1, 2, 4])
    groups = [i % len(facts) for i in range(len(prompts))]
    packs = packing.packing_works(lm.model, _probe(lm))
    assert packs or arch == "gpt2"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        packed = scoring.score_targets(lm, prompts, tt, tf, batch_size=9, groups=groups)
    fell_back = [w for w in caught if "left padding" in str(w.message)]
    assert bool(fell_back) == (not packs)
    padded = scoring.score_targets(lm, prompts, tt, tf, batch_size=9, pack=False)
    for key in ("logp_true", "logp_false", "first_true", "first_false"):
        assert (packed[key] - padded[key]).abs().max() <= 1e-5, key
    assert torch.equal(packed["top1"], padded["top1"])
    want = torch.tensor([direct_scores(lm, p, t)[0] for p, t in zip(prompts, tf)])
    assert (packed["logp_false"] - want).abs().max() <= 1e-5


def test_packing_works_on_models_that_honour_4d_masks():
    lm = tiny_lm("llama")
    assert scoring._packing_works(lm)
    seqs = [[10, 11, 12, 13], [10, 11, 14], [20, 21]]
    assert packing.packing_works(lm.model, [seqs, [[30]]])


def test_models_without_4d_masks_fall_back_to_padding():
    tiny, lm = old_style_lm()
    probe = _probe(lm)
    assert packing.packing_works(tiny.model, probe)
    assert not packing.packing_works(lm.model, probe)
    facts = counterfact.load_facts()[:5]
    prompts, tt, tf = hijack_items(facts, "generic", [0, 2])
    with pytest.warns(RuntimeWarning, match="left padding"):
        got = scoring.score_targets(lm, prompts, tt, tf, groups=[i % 5 for i in range(10)])
    want = torch.tensor([direct_scores(tiny, p, t)[0] for p, t in zip(prompts, tf)], dtype=torch.float64)
    assert (got["logp_false"].double() - want).abs().max() <= 1e-5


def test_the_check_is_not_cached():
    """The same model object, changed between calls: each call checks it again."""
    _, lm = old_style_lm(ignore_4d=False)
    assert scoring._packing_works(lm)
    lm.model.ignore_4d = True
    with pytest.warns(RuntimeWarning, match="4-D"):
        assert not scoring._packing_works(lm)
    lm.model.ignore_4d = False
    assert scoring._packing_works(lm)


def test_a_model_that_rejects_the_mask_does_not_pack():
    class Refuses(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False):
            if attention_mask is not None:
                raise RuntimeError("4-D masks are not supported")
            raise AssertionError("not reached: the packed call comes first")

    assert packing.packing_works(Refuses(), [[[1, 2]]]) is False


def test_packing_imports_no_scoring():
    code = "import sys, lca.packing; print('lca.scoring' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_default_groups_pad_without_a_check(monkeypatch):
    """With every item its own group nothing can be shared: the rows are left-padded and the
    probe does not run (no warning even for a model that ignores 4-D masks)."""
    _, lm = old_style_lm()
    monkeypatch.setattr(scoring, "_packing_works", lambda lm: pytest.fail("probe ran"))
    facts = counterfact.load_facts()[:3]
    prompts, tt, tf = hijack_items(facts, "generic", [0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scoring.score_targets(lm, prompts, tt, tf)
