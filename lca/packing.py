"""Prefix-tree packing: many prompts that share prefixes in one row of a batch, each shared prefix
computed once. The k-prepended prompts of one CounterFact case ("S P", "S S P", ...) share their
leading sentences; on SmolLM2-135M packing scores a hijack curve about 1.6x faster than left
padding. ``lca.scoring.score_targets`` uses it; this module knows nothing about scoring.

Why a packed score equals the score of the prompt run alone (and so the left-padded one)
----------------------------------------------------------------------------------------
Merge the token sequences s_1, ..., s_n of a group into a prefix tree: node v holds one token,
its parent is the token before it, and sequences that share a prefix share that chain of nodes.
Node v at depth d(v) (a root has depth 0) stands for token d(v) of every sequence s_i through it,
and v with its ancestors is exactly that token's prefix s_i[0..d(v)].

A decoder-only transformer computes its output at a token from (a) the token's id, (b) its
position id and (c), in each attention layer, the keys and values of the tokens it may attend to;
embeddings, MLPs and norms act on each token alone. A packed row sets up (a)-(c) as the run of
s_i alone does:

1. the row holds v's token (a);
2. v's position id is d(v): positions continue from the shared prefix, exactly the positions
   0, 1, ... of the run alone (b);
3. a 4-D attention mask lets v attend to itself and its ancestors and to nothing else (c): every
   other column gets the dtype's minimum as its score, hence the weight exp(min - max) = 0.

By induction over the layers, every hidden state of v equals that of token d(v) of s_i run alone:
the inputs agree at layer 0 (same token, same position), and if they agree for v and all its
ancestors at layer l, v's attention at layer l sees the same keys and values, so its state at
layer l + 1 agrees. Which column a node sits in plays no part (attention under the mask and the
per-token layers do not look at columns); parents are still kept before children, so that the
mask stays inside the causal one. Padding columns attend only to themselves (a row of the mask
with no allowed column would give NaN) and no node attends to them. Left padding is the special
case of one sequence per row. So packed, padded and alone agree up to float rounding: attention
sums the same terms, plus terms of weight 0, in another order.

The argument needs a model that honours a custom 4-D mask and given position ids. Attention
implementations or transformers versions that ignore them, or that derive positions from the
mask (ALiBi models), break step 2 or 3: ``packing_works`` compares a packed probe with the
same sequences left-padded, and the scorer falls back to left padding when it fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch


class PrefixTree:
    """A prefix tree of token sequences: node v has token ``tokens[v]``, parent ``parents[v]``
    (-1 for a root) and depth ``depths[v]``; nodes are numbered in creation order, so a parent
    always comes before its children."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.parents: list[int] = []
        self.depths: list[int] = []
        self._kids: dict[tuple[int, int], int] = {}

    def __len__(self) -> int:
        return len(self.tokens)

    def add(self, seq: Sequence[int]) -> list[int]:
        """Add a token sequence; returns its path, the node of each of its tokens."""
        cur, path = -1, []
        for t in seq:
            t = int(t)
            nd = self._kids.get((cur, t))
            if nd is None:
                nd = len(self.tokens)
                self._kids[(cur, t)] = nd
                self.tokens.append(t)
                self.parents.append(cur)
                self.depths.append(0 if cur < 0 else self.depths[cur] + 1)
            path.append(nd)
            cur = nd
        return path

    def ancestors(self) -> torch.Tensor:
        """``BoolTensor[m, m]``: entry (v, u) is True when u is v or one of v's ancestors."""
        m = len(self.tokens)
        anc = torch.zeros((m, m), dtype=torch.bool)
        for v in range(m):  # parents come first: their rows are done
            if self.parents[v] >= 0:
                anc[v] = anc[self.parents[v]]
            anc[v, v] = True
        return anc


@dataclass
class PackedBatch:
    """One row per tree. ``input_ids``, ``position_ids``: ``LongTensor[b, W]``;
    ``attention_mask``: ``[b, 1, W, W]``, 0 where a column may attend to another and the dtype's
    minimum elsewhere; ``columns[i][v]``: the column of node v of tree i; the last ``keep``
    columns of every row hold all the nodes asked for in ``pack(..., wanted)``."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor
    columns: list[list[int]]
    keep: int


def pack(
    trees: Sequence[PrefixTree],
    wanted: Sequence[Iterable[int]] | None = None,
    pad_id: int = 0,
    dtype: torch.dtype = torch.float32,
) -> PackedBatch:
    """Lay the trees out as the rows of one batch (see the module's docstring).

    ``wanted[i]``: the nodes of ``trees[i]`` whose outputs the caller needs. They and their
    descendants go to the end of the row, so that a model asked for its last ``keep`` logits
    only (``logits_to_keep``) still gives all of them; the other nodes go first. Both parts
    keep creation order (parents before children). None wants every node. A shorter row is
    padded with ``pad_id`` between its two parts. ``dtype`` is the mask's: the model's dtype.
    """
    if not trees:
        raise ValueError("trees must hold at least one PrefixTree, got none")
    if any(len(t) == 0 for t in trees):
        raise ValueError("trees must not be empty")
    layouts = []
    for i, tree in enumerate(trees):
        m = len(tree)
        want = set(range(m)) if wanted is None else {int(v) for v in wanted[i]}
        back = [False] * m
        for v in range(m):
            back[v] = v in want or (tree.parents[v] >= 0 and back[tree.parents[v]])
        layouts.append(([v for v in range(m) if not back[v]], [v for v in range(m) if back[v]]))
    b, width = len(trees), max(len(t) for t in trees)
    keep = max(len(back) for _, back in layouts)
    ids = torch.full((b, width), int(pad_id), dtype=torch.long)
    pos = torch.zeros((b, width), dtype=torch.long)
    allow = torch.zeros((b, width, width), dtype=torch.bool)
    allow[:, torch.arange(width), torch.arange(width)] = True  # padding sees itself
    columns = []
    for i, (tree, (front, back)) in enumerate(zip(trees, layouts)):
        cols = [0] * len(tree)
        for j, v in enumerate(front):
            cols[v] = j
        for j, v in enumerate(back):
            cols[v] = width - len(back) + j
        colt = torch.tensor(cols, dtype=torch.long)
        ids[i, colt] = torch.tensor(tree.tokens, dtype=torch.long)
        pos[i, colt] = torch.tensor(tree.depths, dtype=torch.long)
        allow[i, colt.unsqueeze(1), colt.unsqueeze(0)] = tree.ancestors()
        columns.append(cols)
    mask = torch.zeros((b, 1, width, width), dtype=dtype)
    mask.masked_fill_(~allow.unsqueeze(1), torch.finfo(dtype).min)
    return PackedBatch(ids, pos, mask, columns, keep)


def left_padded(
    seqs: Sequence[Sequence[int]], pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The plain batch of ``seqs``: ``(input_ids, attention_mask, position_ids)``, each
    ``LongTensor[n, W]``, left-padded with ``pad_id``, a 2-D mask of the real tokens, and
    positions counted from each row's first real token."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, seq in enumerate(seqs):
        ids[i, width - len(seq) :] = torch.tensor([int(t) for t in seq], dtype=torch.long)
        mask[i, width - len(seq) :] = 1
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


@torch.no_grad()
def packing_works(
    model: torch.nn.Module,
    groups: Sequence[Sequence[Sequence[int]]],
    pad_id: int = 0,
    dtype: torch.dtype = torch.float32,
    tol: float | None = None,
) -> bool:
    """Whether ``model`` honours packing, checked in two forward passes: each group of token
    sequences becomes one tree (one row of a ``pack`` batch; rows of different lengths exercise
    the padding), and the packed next-token log-probabilities at every token must equal those
    of the same sequences left-padded (``left_padded``, the scorer's fall-back, which needs only
    a 2-D mask) within ``tol`` (None: 1e-3 for float32 and float64, else 0.1; a model that
    ignores the mask is off by far more). Any error in the packed call (a model that rejects
    4-D masks or position ids) also means False. No result is kept."""
    if tol is None:
        tol = 1e-3 if dtype in (torch.float32, torch.float64) else 0.1
    trees, paths, flat = [], [], []
    for seqs in groups:
        tree = PrefixTree()
        paths.append([tree.add(s) for s in seqs])
        trees.append(tree)
        flat += [list(s) for s in seqs]
    batch = pack(trees, None, pad_id, dtype)
    device = next(model.parameters()).device
    try:
        packed = model(
            input_ids=batch.input_ids.to(device),
            attention_mask=batch.attention_mask.to(device),
            position_ids=batch.position_ids.to(device),
            use_cache=False,
        ).logits
    except Exception:  # any failure of the packed call means: do not pack
        return False
    ids, mask, pos = left_padded(flat, pad_id)
    padded = model(
        input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=pos.to(device), use_cache=False
    ).logits
    row = 0
    for i, seqs in enumerate(groups):
        for seq, path in zip(seqs, paths[i]):
            got = packed[i, [batch.columns[i][v] for v in path]].float()
            want = padded[row, padded.shape[1] - len(seq) :].float()
            err = torch.log_softmax(got, -1) - torch.log_softmax(want, -1)
            if not float(err.abs().max()) <= tol:  # also False for NaN
                return False
            row += 1
    return True
