"""Batched scores of target words under a language model: ``log P(o | prompt)`` summed over the
target's tokens, with left padding and correct position ids, or with prefix-tree packing of
prompts that share a prefix (the k-prepended prompts of one case; see ``lca.packing`` for why the
two give the same numbers)."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Hashable, Iterable

import torch
from tqdm.auto import tqdm

from . import packing
from ._validate import check_int
from .llm import LanguageModel, _check_bool, _pad_id


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
    if len(full) > len(prompt_ids) and full[: len(prompt_ids)] == prompt_ids:
        return full[len(prompt_ids) :]
    ids = list(tok(" " + target, add_special_tokens=False)["input_ids"])
    if not ids:
        raise ValueError(f"target {target!r} encodes to no tokens")
    return ids


def _check_lm(lm) -> None:
    if not all(hasattr(lm, a) for a in ("model", "tokenizer", "device")):
        raise ValueError(
            "lm must be a LanguageModel from lca.load_model (with .model, "
            f".tokenizer and .device), got {type(lm).__name__}"
        )


@torch.no_grad()
def score_targets(
    lm: LanguageModel,
    prompts: Iterable[str],
    targets_true: Iterable[str],
    targets_false: Iterable[str],
    batch_size: int = 32,
    progress: bool = False,
    groups: Iterable[Hashable] | None = None,
    pack: bool = True,
    correct_positions: bool = True,
) -> dict[str, torch.Tensor]:
    """Score two candidate continuations of each prompt, as ROME does.

    For each prompt p_i and target t (with a leading space, tokens t_1..t_T) the score is the mean
    log-probability ``(1/T) sum_j log P(t_j | p_i, t_<j)``.

    Batching. ``pack=False``: one row per distinct input ``prompt + target[:-1]`` (both targets
    share a row when they are single tokens), left-padded, with an attention mask and position ids
    counted from each row's first real token. ``pack=True`` (default, about 1.6x as fast for
    hijack curves): the items of a group (``groups[i]`` is item i's group label; by default every
    item is its own group) are merged into a prefix tree of tokens, so that a prefix shared by
    several prompts (the hijack sentences of k = 1..5 prepends) is computed once; each token
    attends to its ancestors in the tree (a 4-D attention mask) and sits at its depth (position
    ids); see ``lca.packing``. With the default groups nothing can be shared and the rows are
    left-padded. Each packed call first checks on a small probe that the model honours such
    masks (two short forward passes) and otherwise warns and pads. Either way a batched score
    equals the score of the prompt run alone, up to float rounding. A prompt longer than the
    model's positions (``config.max_position_embeddings``) raises a ValueError before anything
    is allocated. ``correct_positions=False`` shows why the position ids matter: it numbers the
    tokens by their column in the batch (what a model does when given no position ids), which
    shifts every padded or packed token to a wrong position and changes the scores.

    Returns a dict of tensors of shape [n]: ``logp_true``, ``logp_false`` (mean log-probability),
    ``first_true``, ``first_false`` (log-probability of the target's first token), ``top1`` (the
    arg-max next-token id after the prompt), ``true_id``, ``false_id`` (the targets' first token
    ids).
    """
    _check_lm(lm)
    prompts = _as_list("prompts", prompts)
    targets_true = _as_list("targets_true", targets_true)
    targets_false = _as_list("targets_false", targets_false)
    progress = _check_bool("progress", progress)
    pack = _check_bool("pack", pack)
    correct_positions = _check_bool("correct_positions", correct_positions)
    if not (len(prompts) == len(targets_true) == len(targets_false)):
        raise ValueError(
            f"prompts, targets_true and targets_false must have the same length, "
            f"got {len(prompts)}, {len(targets_true)}, {len(targets_false)}"
        )
    if not prompts:
        raise ValueError("prompts must hold at least one prompt, got none")
    batch_size = check_int("batch_size", batch_size, lo=1)
    for p, tt, tf in zip(prompts, targets_true, targets_false):
        if not isinstance(p, str) or not isinstance(tt, str) or not isinstance(tf, str):
            raise ValueError("prompts, targets_true and targets_false must hold strings")
        if not p.strip() or not tt.strip() or not tf.strip():
            raise ValueError(f"prompts and targets must be non-empty, got {(p, tt, tf)!r}")
    groups = list(range(len(prompts))) if groups is None else _as_list("groups", groups)
    if len(groups) != len(prompts):
        raise ValueError(f"groups must have one label per prompt ({len(prompts)}), got {len(groups)}")
    for g in groups:
        if not isinstance(g, Hashable):
            raise TypeError(f"groups must hold hashable labels (ints, strings), got {g!r}")
    tok = lm.tokenizer
    # needs[2*i + w]: (tokens of the row's path whose next-token distributions score target w
    # (w = 0 true, 1 false) of item i, target ids)
    n = len(prompts)
    enc = []
    for p, tt, tf in zip(prompts, targets_true, targets_false):
        pid = _encode_prompt(tok, p)
        enc.append((pid, _encode_target(tok, pid, p, tt), _encode_target(tok, pid, p, tf)))
    _check_lengths(lm, enc)
    other = [enc[j // 2][2 - j % 2][0] for j in range(2 * n)]  # the other target's first token
    if pack and len(set(groups)) == len(groups):
        pack = False  # no group holds two items: nothing to share, padding is the same
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
            lse, logits_at, top, other_first = runs[2 * i + w]  # per target position
            vals = torch.stack([logits_at[j] - lse[j] for j in range(len(tid))])
            name = ("true", "false")[w]
            res[f"logp_{name}"][i] = vals.mean()
            res[f"{name}_id"][i] = tid[0]
            if w == 0:
                # both first-token scores come from the true target's row, so that targets with
                # the same first token tie exactly
                res["top1"][i] = top
                res["first_true"][i] = vals[0]
                res["first_false"][i] = other_first
    return res


def _as_list(name: str, value) -> list:
    """``list(value)`` for a collection; a TypeError naming the parameter for None, a single
    string (which would be split into characters) or anything not iterable."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(
            f"{name} must be a list (or other collection), got {type(value).__name__} {value!r:.60}"
        )
    return list(value)


def _check_lengths(lm, enc) -> None:
    """Refuse, before anything is allocated, an input longer than the model's positions."""
    most = _max_positions(lm.model)
    if most is None:
        return
    for i, (pid, tt, tf) in enumerate(enc):
        n = len(pid) + max(len(tt), len(tf)) - 1  # the longest row: prompt + target[:-1]
        if n > most:
            raise ValueError(
                f"prompt {i} is {n} tokens long with its target, more than the {most} positions "
                f"the model takes (config.max_position_embeddings): shorten it (for hijacking, "
                f"prepend fewer sentences)"
            )


# The probe of _packing_works: two groups of different sizes (so that one row is padded), one
# of them with two roots ("Rome..." and "Not Milan...") and a shared prefix ("Not Milan."). Short
# on purpose: the check costs two forward passes on every packed call.
_PROBE = (("Rome is in", "Not Milan. Rome is", "Not Milan. Not Milan."), ("Rome",))


def _packing_works(lm) -> bool:
    """Whether ``lm`` honours packing (``lca.packing.packing_works`` on a small probe, packed
    against left-padded). Checked on every packed call (0.3 s for SmolLM2 on one CPU thread),
    never cached: a model's attention implementation or dtype can change between calls. Models
    or transformers versions that ignore custom 4-D masks (older GPT-2 code, flash attention)
    get a RuntimeWarning, and the caller falls back to left padding instead of returning wrong
    scores."""
    groups = [[_encode_prompt(lm.tokenizer, p) for p in group] for group in _PROBE]
    ok = packing.packing_works(lm.model, groups, pad_id=_pad_id(lm.tokenizer), dtype=lm.dtype)
    if not ok:
        warnings.warn(
            f"{type(lm.model).__name__} does not honour custom 4-D attention masks "
            "here; scoring with left padding instead of packing (slower, same "
            "numbers)",
            RuntimeWarning,
            stacklevel=3,
        )
    return ok


def _max_positions(model) -> int | None:
    """The most positions ``model`` takes (``config.max_position_embeddings``, or GPT-2's
    ``n_positions``), or None when its config does not say."""
    cfg = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "n_ctx"):
        v = getattr(cfg, attr, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def _forward(model, ids, mask, pos, keep):
    """The model's logits at the last ``keep`` positions ([b, keep, V]). Passes ``logits_to_keep``
    (transformers >= 4.49) where the model's ``forward`` names it, so that the output layer runs
    on those positions only; other models give full logits, cut here."""
    kw = {"logits_to_keep": keep} if _takes(model, "logits_to_keep") else {}
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False, **kw)
    return out.logits[:, -keep:]


def _takes(model, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # no signature to read
        return False


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

    return tqdm(batches, desc="scoring", unit="batch")


def _read_out(logits, cols, tid, other_first):
    """At ``cols`` of one row's logits: (logsumexp [T], target logits [T], arg-max at the first
    column, log-probability of the token ``other_first`` at the first column)."""
    sel = logits[cols].float()  # [T, V]
    lse = torch.logsumexp(sel, dim=-1)
    tgt = sel[torch.arange(len(tid), device=sel.device), torch.tensor(tid, device=sel.device)]
    other = sel[0, other_first] - lse[0]
    return lse.cpu(), tgt.cpu(), int(sel[0].argmax()), float(other)


def _score_padded(lm, enc, other, batch_size, progress, correct_positions=True):
    """Left-padded rows with a 2-D attention mask (works with every transformers model)."""
    tok, model, dev = lm.tokenizer, lm.model, lm.device
    rows: dict[tuple, int] = {}  # distinct inputs prompt + target[:-1]
    row_needs: list[list] = []  # per row: (index into runs, target ids)
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
        ids, mask, pos = packing.left_padded([row_ids[r] for r in b], pad)
        width, keep = ids.shape[1], max(tail[r] for r in b)
        if not correct_positions:
            pos = torch.arange(width).expand(len(b), width)
        logits = _forward(model, ids.to(dev), mask.to(dev), pos.to(dev), keep)
        for i, r in enumerate(b):
            for j, tid in row_needs[r]:  # the row ends with target[:-1]
                start = keep - len(tid)
                runs[j] = _read_out(logits[i], list(range(start, keep)), tid, other[j])
    return runs


def _score_packed(lm, enc, other, groups, batch_size, progress, correct_positions=True):
    """One row per group: the group's prompts merged into a prefix tree (``lca.packing``)."""
    model, dev = lm.model, lm.device
    label_row: dict = {}
    trees: list[packing.PrefixTree] = []
    members: list[list[int]] = []
    for i, g in enumerate(groups):
        if g not in label_row:
            label_row[g] = len(trees)
            trees.append(packing.PrefixTree())
            members.append([])
        members[label_row[g]].append(i)
    row_needs, wanted = [], []  # per row: (index into runs, tree nodes scoring it, ids)
    for r, tree in enumerate(trees):
        here, scoring = [], set()
        for i in members[r]:
            pid = enc[i][0]
            for w in (0, 1):
                tid = enc[i][1 + w]
                nodes = tree.add(pid + tid[:-1])[len(pid) - 1 :]
                here.append((2 * i + w, nodes, tid))
                scoring.update(nodes)
        row_needs.append(here)
        wanted.append(scoring)
    pad = _pad_id(lm.tokenizer)
    sizes = [len(members[r]) for r in range(len(trees))]
    order = sorted(range(len(trees)), key=lambda r: len(trees[r]))
    runs = [None] * (2 * len(enc))
    for b in _progress(_batches(order, sizes, batch_size), progress):
        batch = packing.pack([trees[r] for r in b], [wanted[r] for r in b], pad_id=pad, dtype=lm.dtype)
        width, keep = batch.input_ids.shape[1], batch.keep
        pos = batch.position_ids
        if not correct_positions:
            pos = torch.arange(width).expand(len(b), width)
        logits = _forward(model, batch.input_ids.to(dev), batch.attention_mask.to(dev), pos.to(dev), keep)
        for i, r in enumerate(b):
            cols = batch.columns[i]
            for j, nodes, tid in row_needs[r]:  # column in logits: keep - (width - column)
                runs[j] = _read_out(logits[i], [cols[v] - width + keep for v in nodes], tid, other[j])
    return runs
