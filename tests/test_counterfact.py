"""Tests of lca.counterfact: the CounterFact schema, the packaged sample, relation ids, the course's
own facts.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from lm_helpers import ROOT

from lca import counterfact, hijacking

# ------------------------------------------------------------------------ data

def record(cid=7, **rr):
    base = {"prompt": "The mother tongue of {} is", "subject": "Ada",
            "target_true": {"str": "French"}, "target_new": {"str": "English"}}
    base.update(rr)
    return {"case_id": cid, "requested_rewrite": base}


@pytest.mark.parametrize("bad,field", [
    (record(prompt="no placeholder"), "requested_rewrite.prompt"),
    (record(subject=""), "requested_rewrite.subject"),
    (record(target_true="French"), "requested_rewrite.target_true.str"),
    (record(target_new={"id": "Q1"}), "requested_rewrite.target_new.str"),
    ({"case_id": 7}, "requested_rewrite"),
])
def test_schema_errors_name_the_record_and_field(bad, field):
    with pytest.raises(ValueError) as err:
        counterfact.parse_counterfact([record(cid=1), bad])
    msg = str(err.value)
    assert "record 1" in msg and "case_id 7" in msg and field in msg
    with pytest.raises(ValueError, match="case_id"):
        counterfact.parse_counterfact([{"case_id": "x"}])


def test_load_counterfact_from_a_file(tmp_path):
    recs = [record(cid=i, subject=f"Person {i}") for i in range(10)]
    recs.append(record(cid=99, prompt="The twin city of {} is", subject="Lyon",
                       target_true={"str": "Beirut"}, target_new={"str": "Manila"}))
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
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, text=True).stdout.split()
    found = [f for f in files if "counterfact" in f.lower() and f.endswith(".json")]
    assert found == ["lca/data/counterfact_lite_500.json"], found
    assert (ROOT / found[0]).stat().st_size < 300_000          # the 500-case sample, never the full


def test_counterfact_sample_is_packaged_and_the_default(monkeypatch):
    monkeypatch.delenv("LCA_COUNTERFACT", raising=False)
    assert counterfact.counterfact_path() == counterfact.COUNTERFACT_SAMPLE
    assert counterfact.COUNTERFACT_SAMPLE.parent == Path(counterfact.__file__).parent / "data"
    records = json.loads(counterfact.COUNTERFACT_SAMPLE.read_text(encoding="utf-8"))
    assert len(records) == 500 and len({r["case_id"] for r in records}) == 500
    cases = counterfact.load_counterfact()
    assert len(cases) == 500 and [c.case_id for c in cases[:3]] == [11, 31, 228]
    shared = ROOT.parent / "shared" / "data" / "counterfact" / "counterfact_lite_500.json"
    if shared.is_file():                   # the packaged copy is the shared sample, byte for byte
        assert shared.read_bytes() == counterfact.COUNTERFACT_SAMPLE.read_bytes()
    notice = (counterfact.COUNTERFACT_SAMPLE.parent / "COUNTERFACT_NOTICE.md").read_text()
    for word in ("MIT", "Meng", "ROME", "21,919", "seed 0", "Wikidata", "Permission is hereby"):
        assert word in notice, word
    text = (ROOT / "pyproject.toml").read_text()
    assert '"data/*.json"' in text and '"data/*.md"' in text      # both ship in the wheel
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
    full = counterfact.load_counterfact(full=True) if counterfact.counterfact_path(full=True) else \
        counterfact.load_counterfact()
    counts = {rel: sum(f.relation == rel for f in full) for rel in counterfact.RELATIONS}
    assert all(v > 0 for v in counts.values()), counts
    langs = {t for f in full if f.relation in ("P103", "P1412")
             for t in (f.target_true, f.target_false)}
    assert langs <= set(hijacking.ASSOCIATED_PLACE)
    # every relation case's template is one of the course's templates for that relation
    p190 = {f.template for f in full if f.relation == "P190"}
    assert p190 == {"The twin city of {} is", "{} is a twin city of",
                    "What is the twin city of {}? It is"}


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
