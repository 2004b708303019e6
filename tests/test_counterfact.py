"""Tests of lca.counterfact: the CounterFact schema, the packaged sample, relation ids, the course's
own facts.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
from pathlib import Path

import pytest
from lm_helpers import ROOT

from lca import counterfact, hijacking

# ------------------------------------------------------------------------ data


def record(cid=7, **rr):
    base = {
        "prompt": "The mother tongue of {} is",
        "subject": "Ada",
        "target_true": {"str": "French"},
        "target_new": {"str": "English"},
    }
    base.update(rr)
    return {"case_id": cid, "requested_rewrite": base}


@pytest.mark.parametrize(
    "bad,field",
    [
        (record(prompt="no placeholder"), "requested_rewrite.prompt"),
        (record(subject=""), "requested_rewrite.subject"),
        (record(target_true="French"), "requested_rewrite.target_true"),
        (record(target_new={"id": "Q1"}), "requested_rewrite.target_new.str"),
        ({"case_id": 7}, "requested_rewrite"),
    ],
)
def test_schema_errors_name_the_record_and_field(bad, field):
    with pytest.raises(ValueError) as err:
        counterfact.parse_counterfact([record(cid=1), bad])
    msg = str(err.value)
    assert "record 1" in msg and "case_id 7" in msg and field in msg
    with pytest.raises(ValueError, match="case_id"):
        counterfact.parse_counterfact([{"case_id": "x"}])


def test_load_counterfact_from_a_file(tmp_path):
    recs = [record(cid=i, subject=f"Person {i}") for i in range(10)]
    recs.append(
        record(
            cid=99,
            prompt="The twin city of {} is",
            subject="Lyon",
            target_true={"str": "Beirut"},
            target_new={"str": "Manila"},
        )
    )
    path = tmp_path / "cf.json"
    path.write_text(json.dumps(recs))
    facts = counterfact.load_counterfact(path)
    assert len(facts) == 11 and facts[0].prompt == "The mother tongue of Person 0 is"
    assert facts[-1].relation == "P190" and facts[-1].target_false == "Manila"
    assert [f.case_id for f in counterfact.load_counterfact(path, n=3, seed=None)] == [0, 1, 2]
    a = counterfact.load_counterfact(path, n=4, seed=1)
    assert a == counterfact.load_counterfact(path, n=4, seed=1) and len(set(a)) == 4
    assert [f.case_id for f in counterfact.load_counterfact(path, relations="P190")] == [99]
    per = counterfact.load_counterfact(path, n_per_relation=1, relations=["P103", "P190"], seed=0)
    assert [f.relation for f in per] == ["P103", "P190"]
    with pytest.raises(ValueError, match="n must be in"):
        counterfact.load_counterfact(path, n=12)
    with pytest.raises(ValueError, match="relations"):
        counterfact.load_counterfact(path, relations=["P999"])
    os.environ["LCA_COUNTERFACT"] = str(path)
    try:
        assert counterfact.counterfact_path() == path
    finally:
        del os.environ["LCA_COUNTERFACT"]


def test_missing_counterfact_fails_clearly_offline(monkeypatch):
    monkeypatch.setattr(counterfact, "counterfact_path", lambda full=False: None)
    with pytest.raises(FileNotFoundError, match="load_facts"):
        counterfact.load_counterfact()
    t0 = time.perf_counter()
    with pytest.raises(ConnectionError, match="not reachable"):
        counterfact.load_counterfact(download=True)
    assert time.perf_counter() - t0 < 10


def test_only_the_counterfact_sample_is_in_the_repository():
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()
    found = [f for f in files if "counterfact" in f.lower() and f.endswith(".json")]
    assert found == ["lca/data/counterfact_lite_500.json"], found
    assert (ROOT / found[0]).stat().st_size < 300_000  # the 500-case sample, never the full


def test_counterfact_sample_is_packaged_and_the_default(monkeypatch):
    monkeypatch.delenv("LCA_COUNTERFACT", raising=False)
    assert counterfact.counterfact_path() == counterfact.COUNTERFACT_SAMPLE
    assert counterfact.COUNTERFACT_SAMPLE.parent == Path(counterfact.__file__).parent / "data"
    records = json.loads(counterfact.COUNTERFACT_SAMPLE.read_text(encoding="utf-8"))
    assert len(records) == 500 and len({r["case_id"] for r in records}) == 500
    cases = counterfact.load_counterfact()
    assert len(cases) == 500 and [c.case_id for c in cases[:3]] == [11, 31, 228]
    shared = ROOT.parent / "shared" / "data" / "counterfact" / "counterfact_lite_500.json"
    if shared.is_file():  # the packaged copy is the shared sample, byte for byte
        assert shared.read_bytes() == counterfact.COUNTERFACT_SAMPLE.read_bytes()
    notice = (counterfact.COUNTERFACT_SAMPLE.parent / "COUNTERFACT_NOTICE.md").read_text()
    for word in ("MIT", "Meng", "ROME", "21,919", "seed 0", "Wikidata", "Permission is hereby"):
        assert word in notice, word
    text = (ROOT / "pyproject.toml").read_text()
    assert '"data/*.json"' in text and '"data/*.md"' in text  # both ship in the wheel
    # the full file is never the default, even where ../shared has it
    assert counterfact.counterfact_path(full=False) != counterfact.counterfact_path(full=True)


def test_relation_map():
    r = counterfact.relation_of
    for t in ("The twin city of {} is", "{} is a twin city of", "What is the twin city of {}? It is"):
        assert r(t, "Paris") == "P190"
    assert r("The mother tongue of {} is", "French") == "P103"
    assert r("{} writes in", "French") == "P1412"
    assert r("{} plays", "basketball") == "P641" and r("{} plays", "jazz") is None
    assert r("{} is located in", "Texas") == "P131"
    assert r("{} is located in", "Antarctica") is None and r("{} is in", "France") is None
    assert r("{} was born in", "Paris") is None


def test_relations_and_associations_cover_counterfact():
    # the full file where it is present (../shared in CI), else the packaged sample
    full = (
        counterfact.load_counterfact(full=True)
        if counterfact.counterfact_path(full=True)
        else counterfact.load_counterfact()
    )
    counts = {rel: sum(f.relation == rel for f in full) for rel in counterfact.RELATIONS}
    assert all(v > 0 for v in counts.values()), counts
    langs = {t for f in full if f.relation in ("P103", "P1412") for t in (f.target_true, f.target_false)}
    assert langs <= set(hijacking.ASSOCIATED_PLACE)
    # every relation case's template is one of the course's templates for that relation
    p190 = {f.template for f in full if f.relation == "P190"}
    assert p190 == {"The twin city of {} is", "{} is a twin city of", "What is the twin city of {}? It is"}


def test_fact_list():
    facts = counterfact.load_facts()
    assert len(facts) == 40 and len({f.case_id for f in facts}) == 40
    for rel in counterfact.RELATIONS:
        assert sum(f.relation == rel for f in facts) == 8
    for f in facts:
        assert f.target_true != f.target_false and f.prompt.count(f.subject) == 1
        s = hijacking.hijack_sentence(f, "relation")
        assert f.target_false in s and f.subject in s and f.target_true not in s
        r = hijacking.hijack_sentence(f, "relation_reverse")
        assert f.target_true in r and f.target_false not in r
    langs = [f for f in facts if f.relation in ("P103", "P1412")]
    assert hijacking.applicable(facts, "associated") == langs
    for f in langs:
        s = hijacking.hijack_sentence(f, "associated")
        assert f.target_false not in s and hijacking.ASSOCIATED_PLACE[f.target_false] in s
    assert counterfact.load_facts("P190") == [f for f in facts if f.relation == "P190"]


# ------------------------------------------------------------------------ bad files

GOOD = json.dumps([record(cid=1), record(cid=2, subject="Bob")])


@pytest.mark.parametrize(
    "data,what",
    [
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (GOOD.encode()[:-25], "truncated"),
        (b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "HTML"),
        ('[{"case_id": 1, "x": "Fran\u00e7ais"}]'.encode("latin-1"), "not UTF-8"),
        (GOOD.encode("utf-16"), "UTF-16"),
        (GOOD.encode("utf-16-le"), "UTF-16"),
        (b'{"case_id": 1}', "JSON list"),
    ],
)
def test_bad_files_name_the_file_and_the_fix(tmp_path, data, what):
    path = tmp_path / "cf.json"
    path.write_bytes(data)
    with pytest.raises(ValueError) as err:
        counterfact.load_counterfact(path)
    msg = str(err.value)
    assert what in msg and str(path) in msg, msg
    assert "Pass a CounterFact JSON file" in msg and counterfact.COUNTERFACT_URL in msg, msg


def test_a_utf8_file_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "cf.json"
    path.write_bytes(GOOD.encode("utf-8-sig"))
    assert [f.case_id for f in counterfact.load_counterfact(path)] == [1, 2]


def test_schema_errors_in_a_file_name_the_file(tmp_path):
    path = tmp_path / "cf.json"
    path.write_text(json.dumps([record(cid=3, target_new="Paris")]))
    with pytest.raises(ValueError) as err:
        counterfact.load_counterfact(path)
    msg = str(err.value)
    assert str(path) in msg and "record 0 (case_id 3)" in msg
    assert "'requested_rewrite.target_new' must be an object" in msg
    assert 'like {"str": "Paris"}' in msg and "got the string 'Paris'" in msg
    assert "must be a non-empty string" not in msg


@pytest.mark.parametrize("new", ["French", " French ", "french"])
def test_equal_targets_are_refused(new):
    with pytest.raises(ValueError, match="must differ"):
        counterfact.parse_counterfact([record(target_new={"str": new})])


def test_flags_must_be_bools(tmp_path):
    for kw in ({"full": "False"}, {"download": "no"}, {"full": None}):
        with pytest.raises(TypeError, match=next(iter(kw))):
            counterfact.load_counterfact(**kw)
    with pytest.raises(TypeError, match="full"):
        counterfact.counterfact_path(full="True")
    with pytest.raises(TypeError, match="path"):
        counterfact.load_counterfact(path=3)
    with pytest.raises(TypeError, match="relations"):
        counterfact.load_facts(relations=190)


# ------------------------------------------------------------------------ download


@pytest.fixture
def server(monkeypatch, tmp_path):
    """A stand-in for the ROME site: ``server.reply`` is what the next download returns (bytes,
    or an exception to raise); the cache is a temporary folder."""
    state = type("Server", (), {})()
    state.reply = GOOD.encode()
    state.cache = tmp_path / "cache"
    monkeypatch.setenv("LCA_CACHE", str(state.cache))
    monkeypatch.setattr(counterfact, "can_reach", lambda host: True)
    monkeypatch.setattr(counterfact, "counterfact_path", lambda full=False: None)

    def fetch(url, timeout):
        assert url == counterfact.COUNTERFACT_URL
        if isinstance(state.reply, Exception):
            raise state.reply
        return state.reply

    monkeypatch.setattr(counterfact, "_fetch", fetch)
    return state


def test_a_good_download_is_saved_and_loaded(server):
    facts = counterfact.load_counterfact(full=True, download=True)
    assert [f.case_id for f in facts] == [1, 2]
    assert sorted(p.name for p in server.cache.iterdir()) == ["counterfact.json"]


@pytest.mark.parametrize(
    "reply,what",
    [
        (b"<html><body>Service Unavailable</body></html>", "HTML"),
        (GOOD.encode()[:100], "truncated"),
        (b"", "empty"),
        (json.dumps([{"case_id": 1}]).encode(), "requested_rewrite"),
    ],
)
def test_a_bad_download_is_not_saved(server, reply, what):
    server.reply = reply
    with pytest.raises(ValueError) as err:
        counterfact.load_counterfact(full=True, download=True)
    msg = str(err.value)
    assert what in msg and counterfact.COUNTERFACT_URL in msg and "Nothing was saved" in msg
    assert not server.cache.exists() or list(server.cache.iterdir()) == []


def test_a_failed_download_is_a_connection_error(server):
    server.reply = urllib.error.URLError("timed out")
    with pytest.raises(ConnectionError, match="timed out"):
        counterfact.load_counterfact(full=True, download=True)
    assert not server.cache.exists() or list(server.cache.iterdir()) == []


def test_a_broken_downloaded_file_says_download_again(server):
    server.cache.mkdir()
    (server.cache / "counterfact.json").write_text("[{")
    with pytest.raises(ValueError, match="Delete .* and download it again"):
        counterfact.load_counterfact(server.cache / "counterfact.json")
