"""Chapter 8, back to real models: context hijacking of facts a model *knows*, on the offline
SmolLM2-135M-Instruct and (optionally) Gemma 3 270M, with Wilson intervals per scheme and per
relation; and where in the model the cue is read (attention from the final position to the cue
tokens, a logit lens, a causal knock-out of that attention with a control), set beside chapter 7's
one-layer prediction.

Definitions used throughout (the course's own):

- a case is **known** when, at k = 0, the model's top-1 next token after the prompt is the first
  token of the true target *and* the true target's mean log-probability beats the false one's
  (``known_mask``);
- a known case is **flipped** at k when the top-1 next token is no longer the true target's first
  token (the model stops giving the answer it knew); it is **hijacked** when the top-1 next token
  is the false target's first token; the **efficacy** indicator is the paper's
  ``logp_false > logp_true`` (mean log-probability of the target's tokens).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import torch

from ._validate import check_float, check_int
from .checks import CheckResult, close, run_cases
from .counterfact import Fact, parse_counterfact
from .hijacking import hijack_prompt, hijack_sentence
from .hijacking_in_model import hijack_binomial_flip
from .report import load_stored
from .scoring import _check_lm, _encode_prompt, _encode_target, score_targets
from .style import COLORS, CYCLE, legend_below, legend_right, new_figure

#: the committed results of ``tools/hijack_curves.py``
HIJACK_CURVES = Path(__file__).with_name("data") / "hijack_curves.json"

#: margins (nats) are stored rounded to this many decimals
MARGIN_DECIMALS = 2

# Intervals and known-fact selection


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion: ``successes`` out of ``n`` trials,
    ``z`` the normal quantile (1.96: 95%). Returns ``(lo, hi)``, inside [0, 1], also at 0 and n
    successes (where the normal interval collapses). n = 0 gives ``(0.0, 1.0)``."""
    n = check_int("n", n, lo=0)
    successes = check_int("successes", successes, lo=0, hi=n)
    z = check_float("z", z, lo=0.0)
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def known_mask(top1: Sequence[int], true_id: Sequence[int], margin: Sequence[float]) -> list[bool]:
    """Which cases the model knows at k = 0: its top-1 next token is the true target's first token
    (``top1[i] == true_id[i]``) and the false target loses (``margin[i] = logp_false - logp_true <
    0``)."""
    top1, true_id, margin = list(top1), list(true_id), list(margin)
    if not (len(top1) == len(true_id) == len(margin)):
        raise ValueError(
            f"top1, true_id and margin must have the same length, got {len(top1)}, "
            f"{len(true_id)}, {len(margin)}"
        )
    return [int(a) == int(b) and float(m) < 0 for a, b, m in zip(top1, true_id, margin)]


# Per-case measurement


def score_cases(
    lm, cases: Sequence[Fact], scheme: str, ks: Sequence[int], batch_size: int = 32, progress: bool = False
) -> list[dict]:
    """Score every case at every k of ``ks`` (which must start with 0). Returns one record per
    case: ``case_id``, ``relation``, ``margin`` (per k, ``logp_false - logp_true`` in nats, rounded
    to ``MARGIN_DECIMALS``), ``top`` (per k: 1 when the top-1 next token is the true target's first
    token, -1 when it is the false one's, 0 otherwise) and ``known`` (``known_mask`` at k = 0)."""
    _check_lm(lm)
    ks = [check_int("k", k, lo=0) for k in ks]
    if not ks or ks[0] != 0:
        raise ValueError(f"ks must start with 0 (the known-fact selection), got {ks}")
    cases = list(cases)
    prompts, tt, tf, groups = [], [], [], []
    for i, c in enumerate(cases):
        for k in ks:
            prompts.append(hijack_prompt(c, scheme, k))
            tt.append(c.target_true)
            tf.append(c.target_false)
            groups.append(i)
    s = score_targets(lm, prompts, tt, tf, batch_size=batch_size, progress=progress, groups=groups)
    out, K = [], len(ks)
    for i, c in enumerate(cases):
        sl = slice(i * K, (i + 1) * K)
        m = (s["logp_false"][sl] - s["logp_true"][sl]).tolist()
        top1, tid, fid = s["top1"][sl], s["true_id"][sl], s["false_id"][sl]
        top = [
            1 if a == b else (-1 if a == f else 0)
            for a, b, f in zip(top1.tolist(), tid.tolist(), fid.tolist())
        ]
        out.append(
            {
                "case_id": c.case_id,
                "relation": c.relation or "other",
                "margin": [round(v, MARGIN_DECIMALS) for v in m],
                "top": top,
                "known": top[0] == 1 and m[0] < 0,
            }
        )
    return out


def aggregate(records: Sequence[dict], ks: Sequence[int], z: float = 1.96) -> dict:
    """Curves from ``score_cases`` records, per k: on all cases, ``efficacy`` (margin > 0); on the
    known cases, ``flipped`` (top-1 no longer the true target), ``hijacked`` (top-1 the false
    target) and ``efficacy_known``. Each is ``{"k": [...], "n": n, "count": [...], "share":
    [...], "lo": [...], "hi": [...]}`` (Wilson intervals at ``z``); also ``n_cases`` and
    ``n_known``."""
    records = list(records)
    known = [r for r in records if r["known"]]
    out = {"n_cases": len(records), "n_known": len(known)}

    def curve(rs, pred):
        counts = [sum(bool(pred(r, j)) for r in rs) for j in range(len(ks))]
        iv = [wilson_interval(c, len(rs), z) for c in counts]
        return {
            "k": list(ks),
            "n": len(rs),
            "count": counts,
            "share": [c / len(rs) if rs else float("nan") for c in counts],
            "lo": [a for a, _ in iv],
            "hi": [b for _, b in iv],
        }

    out["efficacy"] = curve(records, lambda r, j: r["margin"][j] > 0)
    out["efficacy_known"] = curve(known, lambda r, j: r["margin"][j] > 0)
    out["flipped"] = curve(known, lambda r, j: r["top"][j] != 1)
    out["hijacked"] = curve(known, lambda r, j: r["top"][j] == -1)
    return out


def by_relation(records: Sequence[dict], ks: Sequence[int]) -> dict:
    """``aggregate`` per relation (``record["relation"]``, "other" for cases without one)."""
    rels = sorted({r["relation"] for r in records})
    return {rel: aggregate([r for r in records if r["relation"] == rel], ks) for rel in rels}


def load_curves(path: str | Path | None = None) -> dict:
    """The stored results of ``tools/hijack_curves.py`` (``HIJACK_CURVES`` by default)."""
    return load_stored(HIJACK_CURVES if path is None else path, "tools/hijack_curves.py")


def stored_facts(results: dict) -> dict[int, Fact]:
    """``{case_id: Fact}`` of the known cases whose CounterFact records ``load_curves()`` stores
    (``records``), so that chapter 8 needs no copy of the full CounterFact file."""
    if "records" not in results:
        raise ValueError("results has no 'records': run `tools/hijack_curves.py --records`")
    return {f.case_id: f for f in parse_counterfact(results["records"])}


def fmt_interval(lo: float, hi: float) -> str:
    """A Wilson interval at two digits, ``"[0.41, 0.55]"``."""
    return f"[{lo:.2f}, {hi:.2f}]"


# Where the cue is read


def cue_positions(lm, fact: Fact, scheme: str, k: int) -> tuple[list[int], list[int], list[int]]:
    """Token ids of the k-prepended prompt, the positions of the tokens of the false target (the
    true one for a ``_reverse`` scheme) inside the prepended sentences (the *cue*), and the
    positions of the other prepended tokens (the control pool). Positions come from the fast
    tokenizer's character offsets of the prompt's own tokenization."""
    tok = lm.tokenizer
    prompt = hijack_prompt(fact, scheme, k)
    ids = _encode_prompt(tok, prompt)
    enc = tok(prompt, return_offsets_mapping=True)
    if list(enc["input_ids"][: len(ids)]) != ids:
        raise RuntimeError("the tokenizer's offsets do not match the prompt's tokens")
    offsets = enc["offset_mapping"][: len(ids)]
    if k == 0:
        return ids, [], []
    sent = hijack_sentence(fact, scheme) + " "
    target = fact.target_true if scheme.endswith("_reverse") else fact.target_false
    spans = []
    for j in range(k):
        at = j * len(sent) + sent.index(target)
        spans.append((at, at + len(target)))
    end = k * len(sent)
    cue, other = [], []
    for p, (a, b) in enumerate(offsets):
        if b <= a:  # special tokens (BOS)
            continue
        if b <= end or a < end - 1:
            if any(a < hi and b > lo for lo, hi in spans):
                cue.append(p)
            else:
                other.append(p)
    return ids, cue, other


def _layers(model):
    inner = getattr(model, "model", model)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ValueError(f"cannot find the decoder layers of {type(model).__name__}")
    return inner, layers


def _final_norm(model):
    inner, _ = _layers(model)
    return inner.norm


@torch.no_grad()
def final_attention(lm, ids: Sequence[int], positions: Sequence[int]) -> torch.Tensor:
    """``Tensor[layers, heads]``: the attention weight that the final position puts on
    ``positions`` (summed over them), per layer and head (``output_attentions``; the model must
    run eager attention, ``set_eager``)."""
    x = torch.tensor([list(ids)], device=lm.device)
    out = lm.model(input_ids=x, output_attentions=True)
    if out.attentions is None or any(a is None for a in out.attentions):
        raise RuntimeError("the model returned no attention weights: call set_eager(lm) first")
    pos = torch.tensor(list(positions), dtype=torch.long, device=lm.device)
    return torch.stack([a[0, :, -1, :].index_select(-1, pos).sum(-1) for a in out.attentions]).float().cpu()


def set_eager(lm) -> None:
    """Switch the model to the eager attention implementation (needed for attention weights and
    for the knock-out mask); the weights are unchanged."""
    m = lm.model
    if hasattr(m, "set_attn_implementation"):
        m.set_attn_implementation("eager")
    else:  # pragma: no cover - older transformers
        m.config._attn_implementation = "eager"


@torch.no_grad()
def logit_lens(lm, ids: Sequence[int], token_ids: Sequence[int]) -> torch.Tensor:
    """``Tensor[layers + 1, T]``: the logits of ``token_ids`` at the final position read off the
    residual stream after the embedding (row 0) and after each layer, through the model's final
    norm and unembedding. The last row equals the model's own logits (tested)."""
    x = torch.tensor([list(ids)], device=lm.device)
    out = lm.model(input_ids=x, output_hidden_states=True)
    hs = out.hidden_states  # embeddings, then after each layer (last: normed)
    norm, head = _final_norm(lm.model), lm.model.get_output_embeddings()
    tid = torch.tensor(list(token_ids), dtype=torch.long, device=lm.device)
    rows = []
    for i, h in enumerate(hs):
        r = h[0, -1]
        if i < len(hs) - 1:
            r = norm(r)
        logits = head(r)
        cap = getattr(lm.model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        rows.append(logits[tid])
    return torch.stack(rows).float().cpu()


@torch.no_grad()
def knockout_logits(
    lm, ids: Sequence[int], positions: Sequence[int], heads: Sequence[tuple[int, int]] | None = None
) -> torch.Tensor:
    """``Tensor[V]``: the final position's logits when its attention to ``positions`` is removed
    (the scores set to -inf before the softmax, so the remaining weights renormalise) in every
    layer and head (``heads=None``), or only in the ``(layer, head)`` pairs of ``heads``. Done by
    a forward pre-hook on each attention module that adds a mask to the attention mask it is
    given (eager attention: ``set_eager``). An empty ``positions`` runs the same hooks with
    a zero mask and changes nothing (tested)."""
    x = torch.tensor([list(ids)], device=lm.device)
    L = x.shape[1]
    _, layers = _layers(lm.model)
    pos = [int(p) for p in positions]
    if any(not 0 <= p < L - 1 for p in pos):
        raise ValueError(f"positions must lie in 0..{L - 2} (before the final position), got {pos}")
    per_layer: dict[int, list[int] | None] = {}
    if heads is None:
        per_layer = {i: None for i in range(len(layers))}
    else:
        for li, h in heads:
            per_layer.setdefault(int(li), []).append(int(h))
    n_heads = lm.model.config.num_attention_heads
    hooks = []

    def make_hook(hs):
        def hook(module, args, kwargs):
            mask = kwargs.get("attention_mask")
            dtype = next(module.parameters()).dtype
            extra = torch.zeros(1, n_heads, L, L, dtype=dtype, device=x.device)
            rows = slice(None) if hs is None else hs
            sub = extra[:, rows]
            if pos:
                sub[:, :, L - 1, pos] = torch.finfo(dtype).min
            extra[:, rows] = sub
            if mask is None:
                causal = torch.full((L, L), torch.finfo(dtype).min, dtype=dtype, device=x.device)
                mask = torch.triu(causal, 1)[None, None]
            kwargs["attention_mask"] = (mask[..., :L, :L].to(dtype) + extra).clamp(min=torch.finfo(dtype).min)
            return args, kwargs

        return hook

    try:
        for li, hs in per_layer.items():
            hooks.append(layers[li].self_attn.register_forward_pre_hook(make_hook(hs), with_kwargs=True))
        return lm.model(input_ids=x).logits[0, -1].float().cpu()
    finally:
        for h in hooks:
            h.remove()


def target_first_ids(lm, fact: Fact, ids: Sequence[int], prompt: str) -> tuple[int, int]:
    """The first token ids of the true and the false target as continuations of ``prompt``."""
    tok = lm.tokenizer
    return (
        _encode_target(tok, list(ids), prompt, fact.target_true)[0],
        _encode_target(tok, list(ids), prompt, fact.target_false)[0],
    )


# Chapter 7's prediction


def one_layer_flip(rho: Sequence[float], L: int) -> list[float]:
    """Chapter 7's closed form ``P(Binomial(L, rho) > L/2)`` (``hijack_binomial_flip``) at the
    cue shares ``rho``."""
    return hijack_binomial_flip(list(rho), L).tolist()


def cue_share(lm, fact: Fact, scheme: str, k: int) -> tuple[float, int]:
    """``(rho, L)``: the share of the prompt's tokens (special tokens excluded) that are cue tokens
    (the false target's tokens in the k prepended sentences), and the number of those tokens: the
    real prompt read as one of chapter 7's hijacked contexts."""
    ids, cue, _ = cue_positions(lm, fact, scheme, k)
    special = set(getattr(lm.tokenizer, "all_special_ids", []) or [])
    L = sum(1 for t in ids if t not in special)
    return len(cue) / L, L


def one_layer_prediction(lm, facts: Sequence[Fact], scheme: str, ks: Sequence[int]) -> list[float]:
    """Per k, the mean over ``facts`` of chapter 7's flip probability ``P(Binomial(L, rho) > L/2)``
    at each prompt's own cue share ``rho`` and length ``L`` (``cue_share``)."""
    out = []
    for k in ks:
        vals = []
        for f in facts:
            rho, L = cue_share(lm, f, scheme, k)
            vals.append(one_layer_flip([rho], L)[0])
        out.append(sum(vals) / len(vals))
    return out


@torch.no_grad()
def mechanism(lm, facts: Sequence[Fact], scheme: str, k: int, n_top: int = 5, seed: int = 0) -> dict:
    """The three mechanism measurements on ``facts`` at k prepends (``set_eager`` is applied):
    ``attention`` (Tensor[cases, layers, heads], attention of the final position to the cue),
    ``lens`` (Tensor[cases, layers + 1, 2]: logit lens of the true and false first tokens, at k and
    at k = 0 as ``lens0``), ``top_heads`` (the ``n_top`` (layer, head) pairs with the largest mean
    attention to the cue), and the first-token margins ``false - true`` (Tensor[cases]) for
    ``base`` (no knock-out), ``ko_all`` (the cue knocked out in every head), ``ko_top`` (in the
    top heads only), ``ctrl_all`` and ``ctrl_top`` (as many other prepended tokens, drawn with
    ``seed``, knocked out instead), with the arg-max next tokens ``top1_*`` and the true first
    ids ``true_id``."""
    set_eager(lm)
    rng = random.Random(seed)
    prep = []
    for f in facts:
        ids, cue, other = cue_positions(lm, f, scheme, k)
        prompt = hijack_prompt(f, scheme, k)
        t_id, f_id = target_first_ids(lm, f, ids, prompt)
        ctrl = sorted(rng.sample(other, min(len(cue), len(other))))
        prep.append((f, ids, cue, ctrl, t_id, f_id))
    att = torch.stack([final_attention(lm, ids, cue) for _, ids, cue, *_ in prep])
    mean = att.mean(0)
    order = mean.flatten().argsort(descending=True)[:n_top].tolist()
    heads = [(i // mean.shape[1], i % mean.shape[1]) for i in order]
    out = {"attention": att, "top_heads": heads, "true_id": [], "lens": [], "lens0": []}
    runs = {
        "base": (None, None),
        "ko_all": ("cue", None),
        "ko_top": ("cue", heads),
        "ctrl_all": ("ctrl", None),
        "ctrl_top": ("ctrl", heads),
    }
    for name in runs:
        out[name], out["top1_" + name] = [], []
    for f, ids, cue, ctrl, t_id, f_id in prep:
        out["true_id"].append(t_id)
        out["lens"].append(logit_lens(lm, ids, [t_id, f_id]))
        ids0 = _encode_prompt(lm.tokenizer, f.prompt)
        t0, f0 = target_first_ids(lm, f, ids0, f.prompt)
        out["lens0"].append(logit_lens(lm, ids0, [t0, f0]))
        for name, (which, hs) in runs.items():
            pos = [] if which is None else (cue if which == "cue" else ctrl)
            logits = knockout_logits(lm, ids, pos, heads=hs)
            out[name].append(float(logits[f_id] - logits[t_id]))
            out["top1_" + name].append(int(logits.argmax()))
    for key in ("lens", "lens0"):
        out[key] = torch.stack(out[key])
    for name in runs:
        out[name] = torch.tensor(out[name])
    return out


# Figures


_METRIC_LABEL = {
    "flipped": "share of known facts flipped",
    "hijacked": "share of known facts hijacked",
    "efficacy": "efficacy score",
    "efficacy_known": "efficacy score (known facts)",
}


def plot_known_curves(
    results: dict,
    metric: str = "flipped",
    scheme: str = "generic",
    title: str = "",
    ax=None,
    legend: bool = True,
    show_n: bool = True,
):
    """One curve per model of ``metric`` (``flipped``, ``hijacked``, ``efficacy``,
    ``efficacy_known``) against k with its Wilson band, from ``load_curves()``. The legend (if
    ``legend``) goes to the right of the panel, outside the data; its labels give each curve's
    number of cases if ``show_n``."""
    if ax is None:
        fig, ax = new_figure(width=5.0, height=3.2)
    else:
        fig = ax.figure
    for i, (model, res) in enumerate(results["models"].items()):
        c = res["schemes"][scheme]["all"][metric]
        color = CYCLE[i % len(CYCLE)]
        label = f"{model} ($n = {c['n']}$)" if show_n else model
        ax.plot(c["k"], c["share"], marker="o", color=color, label=label)
        ax.fill_between(c["k"], c["lo"], c["hi"], color=color, alpha=0.2)
    ax.set_xlabel("prepended sentences $k$")
    ax.set_ylabel(_METRIC_LABEL.get(metric, metric.replace("_", " ")))
    ax.set_ylim(0, 1)
    ax.set_title(title or f"{metric.replace('_', ' ')}, {scheme} scheme")
    if legend:
        legend_right(ax, frameon=False)
    return fig


def plot_known_panels(results: dict, panels: Sequence[tuple[str, str, str]]):
    """Side-by-side panels of ``plot_known_curves``, one per ``(metric, scheme, title)`` in
    ``panels``, with one legend under them (one entry per model). Where the panels count
    different cases, each panel's title says how many, per model."""
    panels = list(panels)
    if not panels:
        raise ValueError("panels must name at least one (metric, scheme, title)")
    models = list(results["models"])
    ns = [
        tuple(results["models"][m]["schemes"][scheme]["all"][metric]["n"] for m in models)
        for metric, scheme, _ in panels
    ]
    same_n = len(set(ns)) == 1
    fig, axes = new_figure(len(panels), 1, width=3.75, height=3.2)
    axes = list(axes.flat) if hasattr(axes, "flat") else [axes]
    for ax, (metric, scheme, title), n in zip(axes, panels, ns):
        if not same_n:
            title = f"{title}\n$n$: " + ", ".join(f"{v} ({m})" for m, v in zip(models, n))
        plot_known_curves(results, metric, scheme, title, ax=ax, legend=False, show_n=same_n)
    legend_below(fig, axes[0])
    return fig


def plot_prediction_beside_curves(
    results: dict, ks: Sequence[int], prediction: Sequence[float], scheme: str = "generic"
):
    """The flipped share of each model's known facts (Wilson bands) against k, with chapter 7's
    one-layer prediction as a dashed black line; the legend under the panel."""
    fig, ax = new_figure(width=5.5, height=3.2)
    plot_known_curves(results, "flipped", scheme, "", ax=ax, legend=False)
    ax.plot(
        list(ks),
        [float(v) for v in prediction],
        "--",
        color=COLORS["black"],
        marker="s",
        label="one-layer prediction (chapter 7)",
    )
    ax.set_title("")
    legend_below(fig, ax, ncols=2)
    return fig


def plot_attention_heatmap(att: torch.Tensor, title: str = ""):
    """A layers x heads heat map of the attention to the cue."""
    fig, ax = new_figure(width=5.0, height=3.6)
    im = ax.imshow(att.numpy(), aspect="auto", cmap="viridis", origin="lower")
    ax.grid(False)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, label="attention to cue tokens")
    return fig


def plot_logit_lens(
    lens_true: torch.Tensor, lens_false: torch.Tensor, title: str = "", ylabel: str = "logit"
):
    """The true and false targets' logit-lens logits (mean over cases) against depth; the
    legend under the panel (``ylabel`` says what is drawn, e.g. a change of the logits)."""
    fig, ax = new_figure(width=5.5, height=3.2)
    x = list(range(lens_true.shape[-1]))
    ax.plot(x, lens_true.tolist(), marker="o", color=COLORS["blue"], label="true target $t$")
    ax.plot(x, lens_false.tolist(), marker="o", color=COLORS["vermillion"], label="false target $t'$")
    ax.axhline(0.0, color=COLORS["black"], lw=0.8)
    ax.set_xlabel("layer (0 = embedding)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    legend_below(fig, ax)
    return fig


# Exercise checkers


def check_wilson_interval(fn) -> CheckResult:
    """Check ``fn(successes, n, z) -> (lo, hi)``: the Wilson score interval of a binomial share
    (``wilson_interval``), on the chapter's counts, the edge cases 0 and n, and other z."""
    cases = [
        (14, 45, 1.96),
        (53, 88, 1.96),
        (0, 45, 1.96),
        (45, 45, 1.96),
        (1, 1000, 1.96),
        (3, 7, 1.0),
        (5, 9, 2.576),
    ]
    return run_cases(
        "check_wilson_interval",
        fn,
        wilson_interval,
        cases,
        compare=lambda e, g: close(tuple(e), tuple(g), rtol=1e-9, atol=1e-12),
        describe=lambda c: f"successes={c[0]}, n={c[1]}, z={c[2]}",
    )
