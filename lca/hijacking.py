"""Chapter 0, context hijacking in real language models: the hijacking schemes and k-prepended
prompts, the efficacy score and its curve, greedy completions of the paper's examples, the
chapter's figures and its exercise checkers."""

from __future__ import annotations

import torch
from matplotlib.patches import Patch

from ._validate import check_choice, check_int
from .checks import CheckResult, close, run_cases
from .counterfact import Fact
from .scoring import _check_lm, _encode_prompt, _encode_target, _max_positions, score_targets
from .style import COLORS, CYCLE, legend_below, new_figure

SCHEMES = ("generic", "generic_reverse", "relation", "relation_reverse", "associated", "associated_reverse")


GENERIC_TEMPLATE = "Do not think of {target}."


# Per relation: (hijack sentence with the false target, reverse sentence with the true target).
# The course's own templates (the paper's are unknown): every hijack sentence is a true
# statement that mentions the false target; every reverse sentence is a true statement that
# mentions the true target.
RELATION_TEMPLATES = {
    "P190": ("{subject} is not a twin city of {target}.", "{subject} is a twin city of {target}."),
    "P103": (
        "The mother tongue of {subject} is not {target}.",
        "The mother tongue of {subject} is {target}.",
    ),
    "P131": ("{subject} is not located in {target}.", "{subject} is located in {target}."),
    "P641": ("{subject} does not play {target}.", "{subject} plays {target}."),
    "P1412": ("{subject} does not speak {target}.", "{subject} speaks {target}."),
}


# "associated": the sentence names a city where the target language is spoken, never the
# language itself (the course's version of the paper's P1412 experiment). One city per language
# that occurs as a target of P103 or P1412 in CounterFact or in the course's facts.
ASSOCIATED_PLACE = {
    "Armenian": "Yerevan",
    "Bengali": "Kolkata",
    "Bulgarian": "Sofia",
    "Catalan": "Barcelona",
    "Chinese": "Beijing",
    "Croatian": "Zagreb",
    "Czech": "Prague",
    "Danish": "Copenhagen",
    "Dutch": "Amsterdam",
    "Egyptian": "Cairo",
    "English": "London",
    "Finnish": "Helsinki",
    "French": "Paris",
    "Georgian": "Tbilisi",
    "German": "Berlin",
    "Greek": "Athens",
    "Hebrew": "Jerusalem",
    "Hindi": "Delhi",
    "Hungarian": "Budapest",
    "Indonesian": "Jakarta",
    "Irish": "Dublin",
    "Italian": "Rome",
    "Japanese": "Tokyo",
    "Korean": "Seoul",
    "Latin": "ancient Rome",
    "Norwegian": "Oslo",
    "Persian": "Tehran",
    "Polish": "Warsaw",
    "Portuguese": "Lisbon",
    "Romanian": "Bucharest",
    "Russian": "Moscow",
    "Sanskrit": "Varanasi",
    "Serbian": "Belgrade",
    "Spanish": "Madrid",
    "Swedish": "Stockholm",
    "Tamil": "Chennai",
    "Thai": "Bangkok",
    "Turkish": "Istanbul",
    "Ukrainian": "Kiev",
    "Welsh": "Cardiff",
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
        raise ValueError(f"fact must be an lca.Fact, got {type(fact).__name__}")
    reverse = scheme.endswith("_reverse")
    target = fact.target_true if reverse else fact.target_false
    if scheme.startswith("generic"):
        return GENERIC_TEMPLATE.format(target=target)
    if scheme.startswith("relation"):
        if fact.relation not in RELATION_TEMPLATES:
            raise ValueError(
                f"scheme {scheme!r} needs a fact whose relation is one of "
                f"{sorted(RELATION_TEMPLATES)}; case_id {fact.case_id} has relation "
                f"{fact.relation!r}"
            )
        return RELATION_TEMPLATES[fact.relation][int(reverse)].format(subject=fact.subject, target=target)
    place = ASSOCIATED_PLACE.get(target)
    if place is None:
        raise ValueError(
            f"scheme {scheme!r} needs a target language listed in ASSOCIATED_PLACE; "
            f"case_id {fact.case_id} has target {target!r}"
        )
    return ASSOCIATED_TEMPLATES[int(reverse)].format(subject=fact.subject, place=place)


def applicable(facts, scheme: str) -> list[Fact]:
    """The facts that ``scheme`` applies to (all for the generic schemes; facts with a known
    relation for the relation schemes; facts whose two targets are tabled languages for the
    associated schemes)."""
    check_choice("scheme", scheme, SCHEMES)
    out = []
    for f in _collection("facts", facts, "lca.Fact records"):
        if not isinstance(f, Fact):
            raise TypeError(f"facts must hold lca.Fact records, got {type(f).__name__} {f!r:.60}")
        if scheme.startswith("relation") and f.relation not in RELATION_TEMPLATES:
            continue
        if scheme.startswith("associated") and not (
            f.target_true in ASSOCIATED_PLACE and f.target_false in ASSOCIATED_PLACE
        ):
            continue
        out.append(f)
    return out


MAX_PREPENDS = 100_000


def hijack_prompt(fact: Fact, scheme: str, k: int) -> str:
    """``fact.prompt`` with k copies of ``hijack_sentence(fact, scheme)`` in front, each followed
    by one space: k = 2 gives "S S P". k = 0 gives the plain prompt; k is at most 100,000 (a
    prompt of a few megabytes, far beyond any model's positions)."""
    k = check_int("k", k, lo=0, hi=MAX_PREPENDS)
    if k == 0:
        check_choice("scheme", scheme, SCHEMES)
        if not isinstance(fact, Fact):
            raise ValueError(f"fact must be an lca.Fact, got {type(fact).__name__}")
        return fact.prompt
    return (hijack_sentence(fact, scheme) + " ") * k + fact.prompt


def _collection(name: str, value, what: str) -> list:
    """``list(value)``, or a TypeError naming the parameter when ``value`` is None, a single
    string or record, or not iterable."""
    if isinstance(value, (str, bytes, Fact)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a list of {what}, got {type(value).__name__}")
    return list(value)


def _check_cases(cases, scheme):
    cases = _collection("cases", cases, "lca.Fact records")
    if not cases:
        raise ValueError("cases must hold at least one Fact, got none")
    for c in cases:
        if not isinstance(c, Fact):
            raise ValueError(f"cases must be lca.Fact records, got {type(c).__name__}")
    check_choice("scheme", scheme, SCHEMES)
    return cases


def efficacy_score(
    lm,
    cases,
    scheme: str,
    k: int,
    batch_size: int = 32,
    progress: bool = False,
    metric: str = "mean",
    pack: bool = True,
) -> float:
    """The efficacy score: the share of cases whose false target is more likely than the true
    one after prepending k copies of the scheme's sentence.

    ``metric="mean"`` compares mean log-probabilities over the targets' tokens (as ROME does);
    ``"first_token"`` compares the first tokens only; ``"top1"`` counts cases whose false target's
    first token is the arg-max next token (the top-1 hijack rate).
    """
    check_choice("metric", metric, ("mean", "first_token", "top1"))
    curve = efficacy_curve(lm, cases, scheme, [k], batch_size=batch_size, progress=progress, pack=pack)
    key = {"mean": "efficacy", "first_token": "efficacy_first_token", "top1": "top1_false"}[metric]
    return curve[key][0]


def efficacy_curve(
    lm, cases, scheme: str, ks=range(6), batch_size: int = 32, progress: bool = False, pack: bool = True
) -> dict:
    """Efficacy against the number of prepends k, for one scheme.

    Returns a dict with lists indexed like ``ks``: ``k``; ``efficacy`` (mean log-probability
    comparison); ``efficacy_first_token``; ``top1_false`` (the false target's first token is the
    arg-max next token: the top-1 hijack rate); ``top1_true`` (the true target's first token is
    the arg-max); ``top1_not`` (the arg-max next token is the word " not"); ``margin`` and
    ``margin_first_token`` (per k, the per-case margins ``logp_false - logp_true`` behind the two
    efficacy scores, in nats: how far each decision is from a tie); and ``n`` (cases).
    ``batch_size`` is the number of prompts per forward pass; ``pack`` as in ``score_targets``
    (the prompts of one case for all k share one prefix tree). A k whose prompts would not fit
    the model's positions (``config.max_position_embeddings``, 8,192 for SmolLM2) raises a
    ValueError naming ``ks`` and the largest k that fits, before any prompt is built.
    """
    _check_lm(lm)
    cases = _check_cases(cases, scheme)
    ks = [check_int("k", k, lo=0) for k in _collection("ks", ks, "ints (numbers of prepends)")]
    if not ks:
        raise ValueError("ks must hold at least one k, got none")
    _check_ks_fit(lm, cases, scheme, ks)
    prompts, tt, tf = [], [], []
    for k in ks:
        for c in cases:
            prompts.append(hijack_prompt(c, scheme, k))
            tt.append(c.target_true)
            tf.append(c.target_false)
    groups = [i % len(cases) for i in range(len(prompts))]  # one prefix tree per case
    s = score_targets(lm, prompts, tt, tf, batch_size=batch_size, progress=progress, groups=groups, pack=pack)
    not_ids = _word_ids(lm.tokenizer, "not")
    n = len(cases)
    out = {
        "k": ks,
        "n": n,
        "efficacy": [],
        "efficacy_first_token": [],
        "top1_false": [],
        "top1_true": [],
        "top1_not": [],
        "margin": [],
        "margin_first_token": [],
    }
    for i in range(len(ks)):
        sl = slice(i * n, (i + 1) * n)
        out["efficacy"].append(float((s["logp_false"][sl] > s["logp_true"][sl]).double().mean()))
        out["efficacy_first_token"].append(
            float((s["first_false"][sl] > s["first_true"][sl]).double().mean())
        )
        out["top1_false"].append(float((s["top1"][sl] == s["false_id"][sl]).double().mean()))
        out["top1_true"].append(float((s["top1"][sl] == s["true_id"][sl]).double().mean()))
        out["top1_not"].append(float(torch.isin(s["top1"][sl], not_ids).double().mean()))
        out["margin"].append((s["logp_false"][sl] - s["logp_true"][sl]).tolist())
        out["margin_first_token"].append((s["first_false"][sl] - s["first_true"][sl]).tolist())
    return out


def _check_ks_fit(lm, cases, scheme: str, ks: list[int]) -> None:
    """A ValueError naming ``ks`` when the longest hijacked prompt would not fit the model's
    positions (``config.max_position_embeddings``), before any prompt is built: k = 100,000 would
    otherwise build megabyte prompts and try to allocate hundreds of GB."""
    most, k = _max_positions(lm.model), max(ks)
    if most is None:
        return
    # cheap bound first: a token holds at least one byte (plus a few special tokens)
    longest = max(
        k * (len(hijack_sentence(c, scheme).encode()) + 1)
        + len(c.prompt.encode())
        + 1
        + max(len(c.target_true.encode()), len(c.target_false.encode()))
        for c in cases
    )
    if longest + 4 <= most:
        return
    tok, fit = lm.tokenizer, None
    for c in cases:  # tokens of the plain prompt, of one prepend, of the longer target
        p0, p1 = _encode_prompt(tok, c.prompt), _encode_prompt(tok, hijack_prompt(c, scheme, 1))
        per = max(1, len(p1) - len(p0))
        target = max(len(_encode_target(tok, p0, c.prompt, t)) for t in (c.target_true, c.target_false))
        k_max = (most - len(p0) - target + 1) // per
        if k_max < k and (fit is None or k_max < fit[0]):
            fit = (k_max, len(p0) + k * per + target - 1)
    if fit is not None:
        raise ValueError(
            f"ks must hold numbers of prepends up to {max(fit[0], 0)} for this model, got "
            f"k = {k}: its longest prompt would be about {fit[1]:,} tokens, more than the "
            f"{most:,} positions the model takes (config.max_position_embeddings)"
        )


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
    ("The mother tongue of Ingmar Bergman is", "The mother tongue of Ingmar Bergman is not Danish."),
    ("The twin city of Kyoto is", "Kyoto is not a twin city of Chicago."),
    ("Big Ben is located in", "Do not think of Berlin."),
)
# The true and the false target of each example (the false one is the word its sentence names).
EXAMPLE_TARGETS = (
    ("Paris", "Chicago"),
    ("Seattle", "Denver"),
    ("Portuguese", "Spanish"),
    ("Swedish", "Danish"),
    ("Paris", "Chicago"),
    ("London", "Berlin"),
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
    ks = [check_int("k", k, lo=1, hi=20) for k in _collection("ks", ks, "ints from 1 to 20")]
    if not ks:
        raise ValueError("ks must hold at least one k, got none")
    rows = []
    for ex in _collection("examples", examples, "(prompt, sentence) pairs or lca.Fact records"):
        if isinstance(ex, Fact):
            scheme = "relation" if ex.relation in RELATION_TEMPLATES else "generic"
            prompt, sentence = ex.prompt, hijack_sentence(ex, scheme)
        else:
            try:
                prompt, sentence = ex
            except (TypeError, ValueError):
                raise ValueError(f"examples must be (prompt, sentence) pairs or Facts, got {ex!r}") from None
            if not isinstance(prompt, str) or not isinstance(sentence, str):
                raise ValueError(f"examples must be pairs of strings, got {ex!r}")
        rows.append(
            {
                "prompt": prompt,
                "sentence": sentence,
                "before": greedy_completion(lm, prompt, max_new_tokens),
                "after": [greedy_completion(lm, (sentence + " ") * k + prompt, max_new_tokens) for k in ks],
            }
        )
    return rows


def example_rows(lm, ks=(0, 1, 2), max_new_tokens: int = 4, decimals: int = 2) -> list[dict]:
    """Chapter 0's examples on one model, as stored for a model the chapter does not load: per
    example the prompt, the sentence, the greedy completion at each k of ``ks`` (k copies of the
    sentence in front) and the margin ``mean logp(false) - mean logp(true)`` in nats, rounded to
    ``decimals``."""
    ks = [check_int("k", k, lo=0, hi=20) for k in _collection("ks", ks, "ints from 0 to 20")]
    rows = []
    for (prompt, sentence), (true, false) in zip(EXAMPLES, EXAMPLE_TARGETS):
        prompts = [(sentence + " ") * k + prompt for k in ks]
        s = score_targets(lm, prompts, [true] * len(ks), [false] * len(ks))
        margins = (s["logp_false"] - s["logp_true"]).tolist()
        rows.append(
            {
                "prompt": prompt,
                "sentence": sentence,
                "true": true,
                "false": false,
                "ks": ks,
                "completion": [greedy_completion(lm, p, max_new_tokens) for p in prompts],
                "margin": [round(float(v), decimals) for v in margins],
            }
        )
    return rows


_SCHEME_STYLE = {
    "generic": ("blue", "o", "generic: Do not think of $o^-$."),
    "relation": ("vermillion", "s", "relation: a true sentence naming $o^-$"),
    "associated": ("green", "^", "associated: a city of the language $o^-$"),
    "generic_reverse": ("blue", "o", "generic: Do not think of $o^*$."),
    "relation_reverse": ("vermillion", "s", "relation: the true sentence naming $o^*$"),
    "associated_reverse": ("green", "^", "associated: a city of the language $o^*$"),
}


def plot_efficacy_curves(curves: dict, metric: str = "efficacy", model_name: str = "", ylim=(0.0, 1.0)):
    """Efficacy score against the number of prepended sentences, hijacking schemes on the left
    and reverse schemes on the right (the paper's Fig. 2 and Figs C.1, C.3, C.4 in one figure),
    with one legend under the panels (left column: hijacking schemes, right: reverse ones).

    Args:
        curves: scheme name -> the dict returned by ``lca.efficacy_curve``.
        metric: which entry of each curve to draw (``"efficacy"``, ``"efficacy_first_token"``,
            ``"top1_false"``...).
        model_name: not drawn (a book figure's caption names the model); kept so that older
            calls still work.
    """
    if not isinstance(curves, dict) or not all(
        isinstance(c, dict) and "k" in c and metric in c for c in curves.values()
    ):
        raise TypeError(
            f"curves must map scheme names to dicts from lca.efficacy_curve (with "
            f"'k' and {metric!r}), got {type(curves).__name__}"
        )
    fig, axes = new_figure(2, 1, width=3.75, height=3.0, sharey=True)
    handles, labels = [], []
    for ax, reverse in zip(axes, (False, True)):
        for scheme, curve in curves.items():
            if scheme.endswith("_reverse") != reverse:
                continue
            color, marker, label = _SCHEME_STYLE.get(scheme, ("black", "x", scheme))
            (line,) = ax.plot(
                curve["k"],
                curve[metric],
                color=COLORS[color],
                marker=marker,
                linestyle="--" if reverse else "-",
                label=f"{label} (n = {curve['n']})",
            )
            handles.append(line)
            labels.append(line.get_label())
        ax.set_xlabel("prepended sentences $k$")
        ks = sorted({k for c in curves.values() for k in c["k"]})
        ax.set_xticks(ks)
        ax.set_ylim(*ylim)
        ax.set_title("reverse: true target named" if reverse else "hijacking: false target named")
    axes[0].set_ylabel(
        {
            "efficacy": "efficacy score",
            "efficacy_first_token": "efficacy score (first token)",
            "top1_false": "top-1 hijack rate",
        }.get(metric, metric)
    )
    legend_below(fig, handles=handles, labels=labels, ncols=2)
    return fig


def plot_hijack_margins(labels, margins, title: str = ""):
    """Horizontal bars of the log-probability margin log P(false) - log P(true) per fact (mean
    over the targets' tokens, in nats): bars right of zero are hijacked facts."""
    margins = [float(v) for v in _collection("margins", margins, "numbers")]
    labels = _collection("labels", labels, "strings")
    if len(labels) != len(margins):
        raise ValueError(
            f"labels and margins must have the same length, got {len(labels)} and {len(margins)}"
        )
    fig, ax = new_figure(1, 1, width=7.5, height=0.22 * len(labels) + 1.6)
    colors = [COLORS["vermillion"] if v > 0 else COLORS["blue"] for v in margins]
    ax.barh(range(len(margins)), margins, color=colors)
    ax.axvline(0.0, color=COLORS["black"], lw=0.8)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(r"margin $\ell(o^-) - \ell(o^*)$ (nats)")
    hijacked = sum(v > 0 for v in margins)
    ax.set_title(
        f"{title}: {hijacked} of {len(margins)} facts hijacked (margin > 0)"
        if title
        else f"{hijacked} of {len(margins)} facts hijacked (margin > 0)",
        fontsize=10,
    )
    legend_below(
        fig,
        handles=[
            Patch(color=COLORS["vermillion"], label="false target more likely"),
            Patch(color=COLORS["blue"], label="true target more likely"),
        ],
        ncols=2,
    )
    return fig


def plot_example_margins(labels, margins_by_k: dict, title: str = ""):
    """Grouped horizontal bars: for each example prompt, the margin log P(false) - log P(true)
    (mean over the targets' tokens, nats) with k = 0, 1, 2, ... hijacking sentences prepended.
    ``margins_by_k`` maps k to a list of margins, one per label. Bars right of zero are flips.
    The legend sits under the plot, outside the bars; ``title`` (none by default: a book
    figure's caption says what is drawn) goes above it."""
    labels = _collection("labels", labels, "strings")
    if not isinstance(margins_by_k, dict):
        raise TypeError(
            f"margins_by_k must be a dict mapping k to a list of margins, got {type(margins_by_k).__name__}"
        )
    ks = list(margins_by_k)
    if not ks or any(len(margins_by_k[k]) != len(labels) for k in ks):
        raise ValueError("margins_by_k must map each k to one margin per label")
    fig, ax = new_figure(1, 1, width=7.5, height=0.6 * len(labels) + 1.2)
    height = 0.8 / len(ks)
    for j, k in enumerate(ks):
        ys = [i + (j - (len(ks) - 1) / 2) * height for i in range(len(labels))]
        ax.barh(
            ys,
            [float(v) for v in margins_by_k[k]],
            height=height,
            color=CYCLE[j % len(CYCLE)],
            label=f"$k = {k}$",
        )
    ax.axvline(0.0, color=COLORS["black"], lw=0.8)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    ax.invert_yaxis()
    ax.set_xlabel(r"margin $\ell(o^-) - \ell(o^*)$ (nats; right of 0: flipped)")
    if title:
        ax.set_title(title)
    legend_below(fig, ax, ncols=len(ks))
    return fig


def _efficacy_reference(logp_true, logp_false):
    return float((logp_false > logp_true).double().mean())


def check_efficacy_indicator(fn) -> CheckResult:
    """Check ``fn(logp_true [n], logp_false [n]) -> float``: the efficacy score, the share of
    cases whose false target is strictly more likely than the true one."""
    g = torch.Generator().manual_seed(10)
    cases = []
    for n in (1, 5, 17, 64):
        a = -torch.rand(n, generator=g, dtype=torch.float64) * 8
        b = -torch.rand(n, generator=g, dtype=torch.float64) * 8
        cases.append((a, b))
    ties = -torch.arange(6, dtype=torch.float64)
    cases.append((ties, ties.clone()))  # all ties: score 0
    cases.append((ties, torch.cat([ties[:3], ties[3:] + 0.5])))  # half ties
    return run_cases(
        "check_efficacy_indicator",
        fn,
        _efficacy_reference,
        cases,
        rtol=0,
        atol=1e-12,
    )


def _hijacked_reference(prompt, sentence, k):
    return (sentence + " ") * k + prompt


def check_hijacked_prompt(fn) -> CheckResult:
    """Check ``fn(prompt, sentence, k) -> str``: k copies of ``sentence``, each followed by one
    space, then the prompt (k = 0 gives the prompt itself)."""
    cases = [
        ("The Eiffel Tower is in the city of", "The Eiffel Tower is not in Chicago.", 1),
        ("The mother tongue of Victor Hugo is", "Do not think of English.", 3),
        ("Big Ben is located in", "Do not think of Berlin.", 0),
        ("The twin city of Kyoto is", "Kyoto is not a twin city of Chicago.", 2),
    ]
    return run_cases(
        "check_hijacked_prompt",
        fn,
        _hijacked_reference,
        cases,
        compare=lambda e, g: isinstance(g, str) and e == g,
    )


def _mean_logprob_reference(logits, n_prompt, target_ids):
    logp = torch.log_softmax(logits.double(), dim=-1)
    rows = n_prompt - 1 + torch.arange(len(target_ids))
    return float(logp[rows, target_ids].mean())


def check_mean_logprob(fn) -> CheckResult:
    """Check ``fn(logits [L, V], n_prompt, target_ids [T]) -> float``: the mean log-probability
    of the target tokens, where ``logits`` are a causal model's outputs on the prompt (its first
    ``n_prompt`` tokens) followed by the target, so that row ``n_prompt - 1 + j`` predicts
    ``target_ids[j]``."""
    g = torch.Generator().manual_seed(11)
    cases = []
    for n_prompt, T, V in [(3, 1, 7), (5, 2, 11), (4, 3, 6), (1, 4, 9), (8, 2, 50)]:
        logits = torch.randn(n_prompt + T, V, generator=g, dtype=torch.float64) * 2 + 1
        cases.append((logits, n_prompt, torch.randint(V, (T,), generator=g)))
    return run_cases(
        "check_mean_logprob",
        fn,
        _mean_logprob_reference,
        cases,
        rtol=1e-6,
        atol=1e-8,
    )


def _left_pad_positions_reference(attention_mask):
    mask = torch.as_tensor(attention_mask).long()
    return (mask.cumsum(dim=1) - 1).clamp(min=0)


def _left_padded_masks(g: torch.Generator) -> list:
    cases = [(torch.ones(1, 1, dtype=torch.long),), (torch.tensor([[0, 0, 1, 1, 1]]),)]
    for rows, cols in [(3, 5), (4, 8), (6, 12)]:
        lengths = torch.randint(1, cols + 1, (rows,), generator=g)
        lengths[0] = cols  # the longest prompt has no padding
        mask = (torch.arange(cols) >= cols - lengths[:, None]).long()
        cases.append((mask,))
    cases.append((torch.tensor([[1, 1, 1, 1], [0, 0, 0, 1], [0, 1, 1, 1]]).bool(),))
    return cases


def check_left_pad_positions(fn) -> CheckResult:
    """Check ``fn(attention_mask [B, L]) -> position ids [B, L]`` for a left-padded batch: the
    real tokens of a row (mask 1) numbered 0, 1, 2, ... from the row's first real token, the pad
    tokens (mask 0, all before the real ones) given position 0. The mask may be a long or a
    bool tensor."""
    g = torch.Generator().manual_seed(12)
    return run_cases(
        "check_left_pad_positions",
        fn,
        _left_pad_positions_reference,
        _left_padded_masks(g),
        compare=lambda e, g: isinstance(g, torch.Tensor) and close(e, g, rtol=0, atol=0),
        describe=lambda c: f"attention_mask = {torch.as_tensor(c[0]).long().tolist()}",
    )


def _batch_mean_logprob_reference(logits, input_ids, n_target):
    logp = torch.log_softmax(logits.double(), dim=-1)
    L = input_ids.shape[1]
    out = []
    for b, T in enumerate(int(t) for t in n_target):
        cols = torch.arange(L - T, L)  # the target's tokens: the last T of the row
        out.append(logp[b, cols - 1, input_ids[b, cols]].mean())
    return torch.stack(out)


def check_batch_mean_logprob(fn) -> CheckResult:
    """Check ``fn(logits [B, L, V], input_ids [B, L], n_target [B]) -> tensor [B]``: for each
    row of a left-padded batch whose last ``n_target[b]`` tokens are a target, the mean
    log-probability of those tokens (row ``b``'s token at column ``j`` is predicted by its
    logits at column ``j - 1``)."""
    g = torch.Generator().manual_seed(13)
    cases = []
    for B, L, V in [(1, 3, 5), (2, 4, 7), (3, 6, 11), (4, 9, 6), (5, 12, 40)]:
        logits = torch.randn(B, L, V, generator=g, dtype=torch.float64) * 2 + 1
        ids = torch.randint(V, (B, L), generator=g)
        n_target = torch.randint(1, min(4, L - 1) + 1, (B,), generator=g)
        cases.append((logits, ids, n_target))
    return run_cases(
        "check_batch_mean_logprob",
        fn,
        _batch_mean_logprob_reference,
        cases,
        rtol=1e-6,
        atol=1e-8,
        describe=lambda c: (
            f"logits of shape {tuple(c[0].shape)}, input_ids "
            + (str(c[1].tolist()) if c[1].numel() <= 24 else f"of shape {tuple(c[1].shape)}")
            + f", n_target {c[2].tolist()}"
        ),
    )
