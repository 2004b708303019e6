"""Batched scores of target words under a language model: ``log P(o | prompt)`` summed over the
target's tokens, with left padding and correct position ids, or with prefix-tree packing of
prompts that share a prefix (the k-prepended prompts of one case)."""

from __future__ import annotations

import warnings
import weakref

import torch
from tqdm.auto import tqdm

from ._validate import check_int
from .llm import _pad_id


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
        raise ValueError("lm must be a LanguageModel from lca.load_model (with .model, "
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
