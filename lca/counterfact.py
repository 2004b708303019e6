"""Facts for chapter 0: the CounterFact cases (the packaged 500-case sample, a local full file, or a
download), their relation ids, and the course's own list of facts."""

from __future__ import annotations

import json
import os
import random
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ._offline import cache_dir, can_reach
from ._validate import check_choice, check_int
from .llm import _check_bool

RELATIONS = {
    "P190": "twinned administrative body (twin city)",
    "P103": "native language",
    "P131": "located in the administrative territorial entity",
    "P641": "sport",
    "P1412": "languages spoken, written or signed",
}


# CounterFact has no relation ids in the lite files; a case's relation is recovered from its
# template (and, where ParaRel templates are shared between relations, from the target's type).
_P190_TEMPLATES = frozenset(
    {"The twin city of {} is", "{} is a twin city of", "What is the twin city of {}? It is"}
)


_P103_TEMPLATES = frozenset(
    {
        "The mother tongue of {} is",
        "The native language of {} is",
        "{} is a native speaker of",
        "{} spoke the language",
        "{}, speaker of",
        "{}, a native",
    }
)


_P1412_TEMPLATES = frozenset(
    {"The language used by {} is", "{} speaks the language", "{} writes in", "{} speaks"}
)


# "plays" templates: shared by sport (P641), position, instrument and genre; sport when the
# target is a sport.
_P641_TEMPLATES = frozenset(
    {
        "{} professionally plays the sport",
        "What sport does {} play? They play",
        "{} is a professional",
        "{} plays",
        "{}, the",
    }
)


SPORTS = frozenset(
    {
        "basketball",
        "baseball",
        "football",
        "soccer",
        "hockey",
        "ice hockey",
        "cricket",
        "tennis",
        "golf",
        "rugby",
        "volleyball",
        "handball",
    }
)


# "located in" templates: shared by P131 (administrative entity), P17 (country) and P30
# (continent); P131 when the target is neither a country nor a continent.
_P131_TEMPLATES = frozenset(
    {
        "{} is located in",
        "{} is in",
        "{}, in",
        "{} can be found in",
        "The location of {} is",
        "{} is within",
        "Where is {}? It is located in",
        "{}, located in",
        "{}, which is located in",
    }
)


CONTINENTS = frozenset(
    {"Africa", "Americas", "Antarctica", "Asia", "Europe", "Oceania", "North America", "South America"}
)


COUNTRIES = frozenset(
    """
Afghanistan Albania Algeria Andorra Angola Argentina Armenia Australia Austria Azerbaijan Bahamas
Bahrain Bangladesh Barbados Belarus Belgium Belize Benin Bhutan Bolivia Botswana Brazil Brunei
Bulgaria Burundi Cambodia Cameroon Canada Chad Chile China Colombia Comoros Congo Croatia Cuba
Cyprus Czechia Denmark Djibouti Dominica Ecuador Egypt Eritrea Estonia Eswatini Ethiopia Fiji
Finland France Gabon Gambia Georgia Germany Ghana Greece Grenada Guatemala Guinea Guyana Haiti
Honduras Hungary Iceland India Indonesia Iran Iraq Ireland Israel Italy Jamaica Japan Jordan
Kazakhstan Kenya Kiribati Kosovo Kuwait Kyrgyzstan Laos Latvia Lebanon Lesotho Liberia Libya
Liechtenstein Lithuania Luxembourg Madagascar Malawi Malaysia Maldives Mali Malta Mauritania
Mauritius Mexico Micronesia Moldova Monaco Mongolia Montenegro Morocco Mozambique Myanmar Namibia
Nauru Nepal Netherlands Nicaragua Niger Nigeria Norway Oman Pakistan Palau Palestine Panama
Paraguay Peru Philippines Poland Portugal Qatar Romania Russia Rwanda Samoa Senegal Serbia
Seychelles Singapore Slovakia Slovenia Somalia Spain Sudan Suriname Sweden Switzerland Syria
Taiwan Tajikistan Tanzania Thailand Togo Tonga Tunisia Turkey Turkmenistan Tuvalu Uganda Ukraine
Uruguay Uzbekistan Vanuatu Vietnam Yemen Zambia Zimbabwe
""".split()
) | frozenset(
    {
        "United States",
        "United States of America",
        "United Kingdom",
        "South Africa",
        "South Korea",
        "North Korea",
        "New Zealand",
        "Saudi Arabia",
        "Sri Lanka",
        "Costa Rica",
        "El Salvador",
        "Dominican Republic",
        "Czech Republic",
        "Papua New Guinea",
        "Sierra Leone",
        "Burkina Faso",
        "Ivory Coast",
        "East Timor",
        "Cape Verde",
        "Bosnia and Herzegovina",
        "North Macedonia",
        "San Marino",
        "Vatican City",
        "United Arab Emirates",
        "Soviet Union",
    }
)


def relation_of(template: str, target_true: str | None = None) -> str | None:
    """The relation id (one of ``RELATIONS``) of a CounterFact template, or None.

    P190, P103 and P1412 are decided by the template alone. Templates of P641 (sport) are shared
    with other "plays" relations, and those of P131 (located in) with country and continent
    relations, so for these the true target decides: a sport for P641; neither a country nor a
    continent for P131. This is the course's reconstruction (the lite files carry no relation ids).
    """
    if template in _P190_TEMPLATES:
        return "P190"
    if template in _P103_TEMPLATES:
        return "P103"
    if template in _P1412_TEMPLATES:
        return "P1412"
    if template in _P641_TEMPLATES and target_true is not None and target_true in SPORTS:
        return "P641"
    if (
        template in _P131_TEMPLATES
        and target_true is not None
        and target_true not in COUNTRIES
        and target_true not in CONTINENTS
    ):
        return "P131"
    return None


@dataclass(frozen=True)
class Fact:
    """One fact-retrieval case: ``prompt`` (template with ``{}`` for the subject) filled with
    ``subject`` must be completed with ``target_true``; ``target_false`` is the counterfactual.
    ``relation`` is a key of ``RELATIONS`` or None; ``case_id`` comes from the source file."""

    case_id: int
    subject: str
    template: str
    target_true: str
    target_false: str
    relation: str | None = None

    @property
    def prompt(self) -> str:
        """The filled prompt, e.g. ``"The mother tongue of Danielle Darrieux is"``."""
        return self.template.replace("{}", self.subject)


def load_facts(relations: str | Iterable[str] | None = None) -> list[Fact]:
    """The course's own hand-written facts (40, eight per relation in ``RELATIONS``).

    Args:
        relations: keep only facts whose relation is in this collection (None keeps all).
    """
    path = Path(__file__).with_name("data") / "facts.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    facts = [
        Fact(
            case_id=int(r["case_id"]),
            subject=r["subject"],
            template=r["prompt"],
            target_true=r["target_true"],
            target_false=r["target_false"],
            relation=r["relation"],
        )
        for r in data["facts"]
    ]
    return _filter_relations(facts, relations)


COUNTERFACT_URL = "https://rome.baulab.info/data/dsets/counterfact.json"


COUNTERFACT_FILES = ("counterfact_lite_500.json", "counterfact_lite_full.json")


#: the 500-case random sample (seed 0) of CounterFact shipped inside the package (see
#: ``lca/data/COUNTERFACT_NOTICE.md`` for its source and licence)
COUNTERFACT_SAMPLE = Path(__file__).with_name("data") / COUNTERFACT_FILES[0]


def counterfact_path(full: bool = False) -> Path | None:
    """Which CounterFact file ``load_counterfact`` reads when given no path.

    - ``full=False`` (default): the env var ``LCA_COUNTERFACT`` when set (a file, or a folder
      holding ``counterfact_lite_500.json``), else the 500-case sample packaged with ``lca``
      (``COUNTERFACT_SAMPLE``), so that Colab, a local clone and CI compute the same numbers.
    - ``full=True``: the 21,919-case file, from ``LCA_COUNTERFACT`` (a file, or a folder holding
      ``counterfact_lite_full.json``), else ``../shared/data/counterfact/`` beside the repository
      root, else the download cache (``load_counterfact(full=True, download=True)``). The full
      file is never shipped nor used by default.

    Returns None if no such file exists.
    """
    full = _check_bool("full", full)
    name = COUNTERFACT_FILES[1 if full else 0]
    candidates = []
    env = os.environ.get("LCA_COUNTERFACT")
    if env:
        p = Path(env).expanduser()
        candidates.append(p / name if p.is_dir() else p)
    if full:
        root = Path(__file__).resolve().parent.parent
        candidates.append(root.parent / "shared" / "data" / "counterfact" / name)
        candidates.append(_download_target())
    else:
        candidates.append(COUNTERFACT_SAMPLE)
    for p in candidates:
        if p.is_file():
            return p
    return None


def load_counterfact(
    path: str | os.PathLike | None = None,
    n: int | None = None,
    seed: int | None = 0,
    relations: str | Iterable[str] | None = None,
    full: bool = False,
    download: bool = False,
    n_per_relation: int | None = None,
) -> list[Fact]:
    """CounterFact cases as ``Fact`` records.

    Args:
        path: a JSON file in the original CounterFact schema (a list of records with ``case_id``
            and ``requested_rewrite`` = {prompt, subject, target_true.str, target_new.str}). None
            reads the packaged 500-case sample (or ``LCA_COUNTERFACT``); see ``counterfact_path``.
        n: keep n cases drawn uniformly without replacement (None keeps all, in file order).
        seed: the seed of that draw; ``seed=None`` keeps the first n cases instead.
        relations: keep only cases whose relation (see ``relation_of``; an explicit
            ``relation_id`` in the record wins) is in this collection; applied before the draw.
        full: with ``path=None``, read the full 21,919-case file instead of the packaged sample
            (it must be found locally, see ``counterfact_path``, or downloaded).
        download: with ``full=True``, if no local full file is found, download the original file
            from the ROME project's site (``COUNTERFACT_URL``) into the cache. Never done
            implicitly; fails within seconds offline.
        n_per_relation: instead of ``n``, draw this many cases of each relation in
            ``relations`` (all of ``RELATIONS`` when None), grouped by relation in that order.

    Raises ValueError naming the file and what to do when it is not CounterFact JSON (empty,
    truncated, HTML, not UTF-8), and naming the file, the record (index and case_id) and the
    field when a record does not match the schema.
    """
    full = _check_bool("full", full)
    download = _check_bool("download", download)
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or pathlib.Path) or None, got {type(path).__name__}")
    if n is not None:
        n = check_int("n", n, lo=1)
    if n_per_relation is not None:
        n_per_relation = check_int("n_per_relation", n_per_relation, lo=1)
        if n is not None:
            raise ValueError("give n or n_per_relation, not both")
    if seed is not None:
        seed = check_int("seed", seed)
    if path is None:
        path = counterfact_path(full=full)
        if path is None:
            if not download:
                what = "full CounterFact file" if full else "CounterFact file"
                raise FileNotFoundError(
                    f"no local {what} found. Set LCA_COUNTERFACT to a file (or a folder with "
                    f"{COUNTERFACT_FILES[1 if full else 0]}), pass path=..., or call "
                    "load_counterfact(full=True, download=True) on a machine with internet access. "
                    "Offline, lca.load_facts() gives the course's own small fact list."
                )
            path = _download_counterfact()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path must be an existing CounterFact JSON file, got {str(path)!r}")
    if path == _download_target():
        fix = f"Delete {path} and download it again: lca.load_counterfact(full=True, download=True)."
    else:
        fix = (
            f"Pass a CounterFact JSON file in the original schema, such as the ROME "
            f"project's {COUNTERFACT_URL}, or path=None for the packaged sample."
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the CounterFact file {path}: {exc}") from None
    records = _decode_counterfact(data, f"the CounterFact file {path}", fix)
    try:
        facts = parse_counterfact(records)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}. {fix}") from None
    if n_per_relation is not None:
        rels = list(RELATIONS) if relations is None else _relation_list(relations)
        out = []
        for r in rels:
            out += _draw(
                _filter_relations(facts, [r]), n_per_relation, seed, f"n_per_relation (cases of {r})"
            )
        return out
    facts = _filter_relations(facts, relations)
    if n is not None:
        facts = _draw(facts, n, seed, "n")
    return facts


def _draw(facts, n, seed, what):
    if n > len(facts):
        raise ValueError(f"{what} must be in 1..{len(facts)} (cases available), got {n}")
    return facts[:n] if seed is None else random.Random(seed).sample(facts, n)


def _decode_counterfact(data: bytes, where: str, fix: str):
    """The JSON value in ``data`` (the bytes of a CounterFact file), or a ValueError saying what
    ``where`` holds instead (nothing, UTF-16 or other non-UTF-8 text, HTML, broken or truncated
    JSON), followed by ``fix``."""
    if not data.strip():
        raise ValueError(f"{where} is empty ({len(data)} bytes), not CounterFact JSON. {fix}")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4]:
        raise ValueError(
            f"{where} is UTF-16 (or UTF-32) text; CounterFact files are UTF-8 JSON. "
            f"Re-save it as UTF-8 (iconv -f UTF-16 -t UTF-8), or: {fix}"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{where} is not UTF-8 text (byte {data[exc.start]:#04x} at offset "
            f"{exc.start}: Latin-1 or another legacy encoding?); CounterFact files "
            f"are UTF-8 JSON. Re-save it as UTF-8, or: {fix}"
        ) from None
    head = text.lstrip()
    if head.startswith("<"):
        raise ValueError(
            f"{where} holds HTML or XML (it starts with {head[:30]!r}), not "
            f"CounterFact JSON: a web page (an error or sign-in page?) was saved "
            f"in place of the file. {fix}"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        body = text.strip()  # a CounterFact file is one list: it ends with "]"
        ends = exc.pos >= len(text.rstrip()) or (body.startswith("[") and not body.endswith("]"))
        raise ValueError(
            f"{where} is not valid JSON ({exc.msg} at line {exc.lineno}, column "
            f"{exc.colno}{'; the file ends early: truncated?' if ends else ''}; "
            f"{len(data):,} bytes). {fix}"
        ) from None


def parse_counterfact(records: list) -> list[Fact]:
    """Check records in the CounterFact schema and turn them into ``Fact`` records.

    Raises ValueError naming the record (index and case_id) and the offending field, including
    a case whose two targets are the same (its efficacy would always be 0)."""
    if not isinstance(records, list):
        raise ValueError(f"records must be a JSON list of CounterFact records, got {type(records).__name__}")
    facts = []
    for i, rec in enumerate(records):
        where = f"CounterFact record {i}"
        if not isinstance(rec, dict):
            raise ValueError(f"{where}: must be an object, got {type(rec).__name__}")
        cid = rec.get("case_id")
        if isinstance(cid, bool) or not isinstance(cid, int):
            raise ValueError(f"{where}: field 'case_id' must be an integer, got {cid!r}")
        where = f"CounterFact record {i} (case_id {cid})"
        rr = rec.get("requested_rewrite")
        if isinstance(rr, list) and len(rr) == 1:  # some copies wrap the rewrite in a list
            rr = rr[0]
        if not isinstance(rr, dict):
            raise ValueError(f"{where}: field 'requested_rewrite' must be an object, got {type(rr).__name__}")
        template = rr.get("prompt")
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ValueError(
                f"{where}: field 'requested_rewrite.prompt' must be a string with "
                f"exactly one '{{}}' for the subject, got {template!r}"
            )
        subject = rr.get("subject")
        if not isinstance(subject, str) or not subject.strip():
            raise ValueError(
                f"{where}: field 'requested_rewrite.subject' must be a non-empty string, got {subject!r}"
            )
        targets = {}
        for key in ("target_true", "target_new"):
            t = rr.get(key)
            if not isinstance(t, dict):
                like = json.dumps({"str": t if isinstance(t, str) else "Paris"})
                got = f"the string {t!r}" if isinstance(t, str) else repr(t)
                raise ValueError(
                    f"{where}: field 'requested_rewrite.{key}' must be an object "
                    f"with the target under 'str', like {like}, got {got}"
                )
            s = t.get("str")
            if not isinstance(s, str) or not s.strip():
                raise ValueError(
                    f"{where}: field 'requested_rewrite.{key}.str' must be a non-empty string, got {s!r}"
                )
            targets[key] = s.strip()
        if targets["target_true"].casefold() == targets["target_new"].casefold():
            raise ValueError(
                f"{where}: fields 'requested_rewrite.target_true.str' and "
                f"'requested_rewrite.target_new.str' must differ, both are "
                f"{targets['target_true']!r} (the efficacy score would compare a "
                f"target with itself)"
            )
        rel = rr.get("relation_id")
        if not isinstance(rel, str) or rel not in RELATIONS:
            rel = relation_of(template, targets["target_true"]) if rel is None else None
        facts.append(
            Fact(
                case_id=cid,
                subject=subject,
                template=template,
                target_true=targets["target_true"],
                target_false=targets["target_new"],
                relation=rel,
            )
        )
    return facts


def _relation_list(relations) -> list:
    if isinstance(relations, str):
        return [relations]
    if not hasattr(relations, "__iter__"):
        raise TypeError(
            f"relations must be a relation id such as 'P190', a list of them, or None, got {relations!r}"
        )
    return list(relations)


def _filter_relations(facts, relations):
    if relations is None:
        return facts
    relations = _relation_list(relations)
    for r in relations:
        check_choice("relations", r, set(RELATIONS))
    return [f for f in facts if f.relation in relations]


def _download_target() -> Path:
    """Where ``load_counterfact(full=True, download=True)`` saves the full file."""
    return cache_dir() / "counterfact.json"


def _fetch(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def _download_counterfact() -> Path:
    """Download ``COUNTERFACT_URL`` to ``_download_target()``: only a download that is
    CounterFact JSON (``parse_counterfact`` accepts it) is saved, via a temporary file renamed
    into place; anything else raises and leaves the cache as it was."""
    target = _download_target()
    instead = "Use a local file (LCA_COUNTERFACT or path=...) or the course's own facts: lca.load_facts()."
    host = urllib.parse.urlsplit(COUNTERFACT_URL).hostname
    if not can_reach(host):
        raise ConnectionError(
            f"cannot download CounterFact: {COUNTERFACT_URL} is not reachable (offline, or "
            f"HF_HUB_OFFLINE/LCA_OFFLINE is set). {instead}"
        )
    try:
        data = _fetch(COUNTERFACT_URL, timeout=60)
    except OSError as exc:  # URLError, HTTPError, timeouts
        raise ConnectionError(
            f"cannot download CounterFact from {COUNTERFACT_URL}: {exc}. {instead}"
        ) from exc
    where = f"the download from {COUNTERFACT_URL}"
    fix = f"Nothing was saved. Try again later, or: {instead}"
    records = _decode_counterfact(data, where, fix)
    try:
        parse_counterfact(records)
    except ValueError as exc:
        raise ValueError(f"{where} is not CounterFact: {exc}. {fix}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target
