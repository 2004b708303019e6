# %% [raw]
# # ASSIGNMENT CONFIG
# init_cell: false
# check_all_cell: true
# show_question_points: true
# export_cell:
#   pdf: false
#   run_tests: true
#   instructions: >-
#     On Google Colab this cell cannot run: download the notebook instead
#     (File > Download > Download .ipynb) and hand in the .ipynb file.
# tests:
#   files: true
#   ok_format: false
# requirements:
#   - torch>=2.0
#   - lca @ git+https://github.com/elephants-course/elephants@v0.1.0
# generate:
#   pdf: false
#   show_stdout: true

# %% tags=["remove-cell"]
# Colab setup: install the course package (runs only on Google Colab)
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "lca[llm] @ git+https://github.com/elephants-course/elephants@v0.1.0"], check=True)

# %%
# Otter-grader: the grader.check("q...") cells below run this assignment's public tests.
# On Colab, first upload the tests.zip file that came with this notebook (Files pane, left).
import os
import sys
if "google.colab" in sys.modules:
    import subprocess
    import zipfile
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "otter-grader==7.0.0"], check=True)
    if not os.path.isdir("tests") and os.path.exists("tests.zip"):
        zipfile.ZipFile("tests.zip").extractall(".")
import otter
grader = otter.Notebook(None if "google.colab" in sys.modules else "01_memory_and_task.ipynb")

# %% [markdown]
# # Assignment 1: associative memory and the latent concept association task
#
# This assignment goes with the first two chapters of the Elephants course, on associative memory
# and on the latent concept association task. You will build a linear associative memory and see when it recalls
# what it stored, then build the synthetic task of the course from scratch: the latent space
# $\{0,1\}^m$, Hamming distances, neighbourhoods, a sampler, and the best possible predictor.
#
# **How this works.** Write your code where you see `...`, then run the `grader.check("q...")` cell
# under it: it runs the public tests for that question. Passing them is a good sign, not a
# guarantee: your teacher grades with further hidden tests. Questions marked *written* are answered in
# the markdown cell under them, in a few sentences or a short derivation (LaTeX with `$...$` is fine).
# Run the notebook from the top after a restart before you hand it in.
#
# **Expected time:** about 75 minutes. **You will need:** `torch` tensor operations (`@`, `argmax`,
# indexing with boolean masks) and basic probability.
#
# Throughout, token $i\in\{0,\dots,V-1\}$ with $V=2^m$ *is* the latent vector $z\in\{0,1\}^m$ of the
# binary digits of $i$, most significant bit first: for $m=3$, token $6$ is $z=(1,1,0)$. The
# Hamming distance $D_H(i,j)$ is the number of positions where the latent vectors of $i$ and $j$
# differ.

# %%
import math

import torch

import lca

torch.manual_seed(0)
torch.set_num_threads(1)

# %% [markdown]
# ## Part A: a linear associative memory
#
# A linear associative memory stores $N$ pairs (key $k_i\in\mathbb R^{d_{\rm in}}$, value
# $u_i\in\mathbb R^{d_{\rm out}}$) in one matrix, the sum of outer products
# $$W=\sum_{i=1}^N u_i k_i^\top\in\mathbb R^{d_{\rm out}\times d_{\rm in}}.$$
# To recall the value stored under key $k_i$ we compute $Wk_i$ and report the stored value it is
# most aligned with: the index $\arg\max_j\, u_j^\top W k_i$.

# %% [raw]
# # BEGIN QUESTION
# name: q1
# points: 2

# %% [markdown]
# **Question 1 (code).** Write `store(keys, values)`, which returns $W$ for keys `keys` of shape
# `[N, d_in]` (row $i$ is $k_i$) and values `values` of shape `[N, d_out]` (row $i$ is $u_i$), and
# `recall(W, keys, values)`, which returns a `LongTensor[N]` whose entry $i$ is
# $\arg\max_j u_j^\top W k_i$. Use matrix products, no Python loops.

# %% [raw]
# # BEGIN SOLUTION

# %%
def store(keys, values):
    """Outer-product memory W [d_out, d_in] = sum_i values[i] keys[i]^T."""
    # BEGIN SOLUTION
    return values.T @ keys
    # END SOLUTION


def recall(W, keys, values):
    """LongTensor[N]: for each key, the index of the stored value best aligned with W @ key."""
    # BEGIN SOLUTION
    scores = keys @ W.T @ values.T      # scores[i, j] = u_j^T W k_i
    return scores.argmax(dim=1)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_store_orthonormal(store, recall):
    import torch
    keys = torch.eye(4)
    values = torch.eye(4)[[2, 0, 3, 1]]
    W = store(keys, values)
    assert tuple(W.shape) == (4, 4), "W must have shape [d_out, d_in]"
    assert torch.allclose(W @ keys[0], values[0]), "with orthonormal keys, W k_1 must equal u_1"
    assert recall(W, keys, values).tolist() == [0, 1, 2, 3], "orthonormal keys are recalled exactly"

test_store_orthonormal(store, recall)  # IGNORE

# %%
def test_store_rectangular(store):
    import torch
    keys, values = torch.ones(3, 5), torch.ones(3, 2)
    assert tuple(store(keys, values).shape) == (2, 5), "keys [N, 5] and values [N, 2] give W [2, 5]"

test_store_rectangular(store)  # IGNORE

# %%
# HIDDEN
def test_store_brute_force(store, recall):
    import torch
    g = torch.Generator().manual_seed(11)
    keys = torch.randn(7, 5, generator=g, dtype=torch.float64)
    values = torch.randn(7, 3, generator=g, dtype=torch.float64)
    W = store(keys, values)
    expected = torch.zeros(3, 5, dtype=torch.float64)
    for i in range(7):
        expected += torch.outer(values[i], keys[i])
    assert torch.allclose(W, expected)
    want = []
    for i in range(7):
        v = expected @ keys[i]
        want.append(max(range(7), key=lambda j: float(values[j] @ v)))
    assert recall(W, keys, values).tolist() == want

test_store_brute_force(store, recall)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q2
# points: 2

# %% [markdown]
# **Question 2 (code).** Write `recall_rate(keys, values)`: store all pairs with `store`, recall
# every key with `recall`, and return the fraction of keys whose own value is recalled, as a Python
# `float` in $[0,1]$.

# %% [raw]
# # BEGIN SOLUTION

# %%
def recall_rate(keys, values):
    """Fraction of stored keys whose own value is recalled (a float)."""
    # BEGIN SOLUTION
    got = recall(store(keys, values), keys, values)
    return (got == torch.arange(keys.shape[0])).double().mean().item()
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_recall_rate_exact(recall_rate):
    import torch
    rate = recall_rate(torch.eye(6), torch.eye(6))
    assert isinstance(rate, float), "return a Python float (use .item())"
    assert rate == 1.0, "orthonormal keys: every value is recalled"

test_recall_rate_exact(recall_rate)  # IGNORE

# %%
# HIDDEN
def test_recall_rate_brute_force(recall_rate):
    import torch
    g = torch.Generator().manual_seed(5)
    for d in (3, 6, 40):
        keys = torch.randn(20, d, generator=g, dtype=torch.float64) / d ** 0.5
        values = torch.randn(20, d, generator=g, dtype=torch.float64) / d ** 0.5
        hits = 0
        for i in range(20):
            v = sum(torch.outer(values[j], keys[j]) for j in range(20)) @ keys[i]
            best = max(range(20), key=lambda j: float(values[j] @ v))
            hits += best == i
        assert abs(recall_rate(keys, values) - hits / 20) < 1e-12

test_recall_rate_brute_force(recall_rate)  # IGNORE

# %%
# HIDDEN
def test_recall_rate_identical_keys(recall_rate):
    import torch
    keys = torch.ones(4, 3)
    values = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    assert abs(recall_rate(keys, values) - 0.25) < 1e-12, "identical keys recall one value for all"

test_recall_rate_identical_keys(recall_rate)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# Run the cell below once your `recall_rate` passes. It stores $N=64$ random pairs whose keys and
# values have independent $\mathcal N(0, 1/d)$ entries and prints the recall rate for growing
# dimension $d$.

# %%
g = torch.Generator().manual_seed(0)
N = 64
for d in (8, 16, 32, 64, 128, 256):
    keys = torch.randn(N, d, generator=g) / math.sqrt(d)
    values = torch.randn(N, d, generator=g) / math.sqrt(d)
    print(f"d = {d:4d}   recall rate = {recall_rate(keys, values):.3f}")

# %% [raw]
# # BEGIN QUESTION
# name: q3
# manual: true
# points: 2

# %% [markdown]
# **Question 3 (written).** Write $Wk_i = u_i\,\|k_i\|^2 + \sum_{j\ne i} u_j\,(k_j^\top k_i)$. Use
# this to explain the trend printed above: why is recall perfect when the keys are orthonormal, and
# why does it degrade when $d$ is small compared with $N$? Give the order of magnitude of the
# cross-talk term for Gaussian keys.

# %% [raw]
# # BEGIN SOLUTION

# %% [markdown]
# The first term is the stored value, scaled by $\|k_i\|^2\approx 1$; the sum is cross-talk from the
# other $N-1$ pairs. With orthonormal keys every $k_j^\top k_i$ with $j\ne i$ is zero, so
# $Wk_i=u_i$ and the best-aligned value is $u_i$ (recall is exact, as long as $u_i^\top u_i$ beats
# every $u_j^\top u_i$). With Gaussian keys each $k_j^\top k_i$ has mean 0 and variance $1/d$, so the
# cross-talk is a sum of $N-1$ random vectors with coefficients of size $1/\sqrt d$: its score
# $u_j^\top(\cdot)$ against any candidate has standard deviation about $\sqrt{N/d}$ times the size of
# the signal term. When $d\gg N$ the noise is small and recall is nearly perfect (0.98 at $d=64$ and
# 1.0 from $d=128$ above); when $d\lesssim N$ the noise is as large as the signal and the wrong value
# often wins (0.125 at $d=8$). Random keys are only *nearly* orthogonal, and how nearly is set by $d$.

# %% [raw]
# # END SOLUTION

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## Part B: the latent concept association task
#
# In the task of the course a target token $y$ is drawn uniformly from the $V=2^m$ tokens, and the
# model sees a context of $L$ tokens drawn independently from a *neighbourhood* $\mathcal N(y)$ of
# the target: tokens whose latent vectors are close to $y$'s. The target itself never appears in its
# own context. The basic neighbourhood is the Hamming sphere of radius one,
# $\mathcal N_1(y)=\{x: D_H(x,y)=1\}$, which holds $m$ tokens. The model's job is to name $y$.
#
# You may use `lca` to check your answers (for instance `lca.LatentSpace(m).distances()`), but the
# functions you write must compute their results themselves.

# %% [raw]
# # BEGIN QUESTION
# name: q4
# points: 2

# %% [markdown]
# **Question 4 (code).** Write `hamming_matrix(m)`, returning the `LongTensor[V, V]` of Hamming
# distances $D_H(i,j)$ between all pairs of tokens. *Hint:* `i ^ j` is the bitwise exclusive or, and
# the latent bits of token $i$ are `(i >> s) & 1` for shifts $s = m-1,\dots,0$.

# %% [raw]
# # BEGIN SOLUTION

# %%
def hamming_matrix(m):
    """LongTensor[2**m, 2**m] of Hamming distances between the latent vectors of all token pairs."""
    # BEGIN SOLUTION
    t = torch.arange(2 ** m)
    diff = t[:, None] ^ t[None, :]
    shifts = torch.arange(m)
    return ((diff[:, :, None] >> shifts) & 1).sum(-1)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_hamming_small(hamming_matrix):
    import torch
    D = hamming_matrix(2)
    expected = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1], [1, 2, 0, 1], [2, 1, 1, 0]])
    assert D.dtype == torch.long, "return integer distances (a LongTensor)"
    assert torch.equal(D, expected), f"for m = 2 expected\n{expected}\ngot\n{D}"

test_hamming_small(hamming_matrix)  # IGNORE

# %%
# HIDDEN
def test_hamming_brute_force(hamming_matrix):
    import torch
    for m in (1, 3, 5):
        V = 2 ** m
        expected = torch.tensor([[bin(i ^ j).count("1") for j in range(V)] for i in range(V)])
        assert torch.equal(hamming_matrix(m).long(), expected)

test_hamming_brute_force(hamming_matrix)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q5
# points: 2

# %% [markdown]
# **Question 5 (code).** A second family of neighbourhoods groups tokens into *clusters*: $x$ is in
# the cluster neighbourhood of $y$ when the first $k$ latent bits of $x$ and $y$ agree and $x\ne y$.
# Write `cluster_mask(m, k)`, returning the `BoolTensor[V, V]` whose entry `[y, x]` says whether $x$
# is in the cluster neighbourhood of $y$. (Remember: the *first* bit is the most significant one.)

# %% [raw]
# # BEGIN SOLUTION

# %%
def cluster_mask(m, k):
    """BoolTensor[V, V]: mask[y, x] is True iff x != y and x, y share their first k latent bits."""
    # BEGIN SOLUTION
    t = torch.arange(2 ** m)
    same = (t[:, None] >> (m - k)) == (t[None, :] >> (m - k))
    return same & (t[:, None] != t[None, :])
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_cluster_small(cluster_mask):
    import torch
    M = cluster_mask(3, 1)
    assert M.dtype == torch.bool and tuple(M.shape) == (8, 8), "return a BoolTensor[V, V]"
    assert M[0].tolist() == [False, True, True, True, False, False, False, False], \
        "token 0 = (0,0,0): its cluster (first bit 0) is tokens 1, 2, 3"
    assert not bool(M.diagonal().any()), "a token is never its own neighbour"

test_cluster_small(cluster_mask)  # IGNORE

# %%
# HIDDEN
def test_cluster_brute_force(cluster_mask):
    import torch
    for m, k in ((4, 2), (4, 0), (5, 3), (3, 2)):
        V = 2 ** m
        bits = [format(i, f"0{m}b") for i in range(V)]
        expected = torch.tensor([[bits[y][:k] == bits[x][:k] and x != y for x in range(V)]
                                 for y in range(V)])
        assert torch.equal(cluster_mask(m, k).bool(), expected), f"wrong mask for m={m}, k={k}"

test_cluster_brute_force(cluster_mask)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q6
# points: 3

# %% [markdown]
# **Question 6 (code).** Write a sampler for the task with neighbourhood $\mathcal N_1$:
# `sample_task(m, L, n, generator)` returns `(contexts, targets)`, a `LongTensor[n, L]` and a
# `LongTensor[n]`. Each target is uniform over the $V$ tokens; each context token is drawn
# independently and uniformly from the $m$ tokens at Hamming distance one from its target (flip one
# uniformly chosen bit). Draw all randomness from `generator` (a `torch.Generator`), without Python
# loops over examples.

# %% [raw]
# # BEGIN SOLUTION

# %%
def sample_task(m, L, n, generator):
    """(contexts LongTensor[n, L], targets LongTensor[n]) for the task with neighbourhood N_1."""
    # BEGIN SOLUTION
    targets = torch.randint(0, 2 ** m, (n,), generator=generator)
    flips = torch.randint(0, m, (n, L), generator=generator)
    contexts = targets[:, None] ^ (1 << flips)
    return contexts, targets
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_sample_shapes_and_support(sample_task):
    import torch
    ctx, y = sample_task(4, 6, 50, torch.Generator().manual_seed(0))
    assert tuple(ctx.shape) == (50, 6) and tuple(y.shape) == (50,), "shapes [n, L] and [n]"
    assert ctx.dtype == torch.long and y.dtype == torch.long, "token ids are LongTensors"
    d = torch.tensor([[bin(int(a) ^ int(b)).count("1") for a in row] for row, b in zip(ctx, y)])
    assert bool((d == 1).all()), "every context token must be at Hamming distance 1 from its target"

test_sample_shapes_and_support(sample_task)  # IGNORE

# %%
# HIDDEN
def test_sample_law(sample_task):
    import torch
    m, L, n = 3, 4, 20000
    ctx, y = sample_task(m, L, n, torch.Generator().manual_seed(1))
    freq_y = torch.bincount(y, minlength=8).double() / n
    assert bool(((freq_y - 1 / 8).abs() < 0.015).all()), "targets must be uniform"
    flipped = (ctx ^ y[:, None]).flatten()
    freq_bit = torch.stack([(flipped == 2 ** b).double().mean() for b in range(m)])
    assert bool(((freq_bit - 1 / m).abs() < 0.015).all()), "the flipped bit must be uniform"
    same = (ctx[:, 0] == ctx[:, 1]).double().mean().item()
    assert abs(same - 1 / m) < 0.02, "positions must be drawn independently"

test_sample_law(sample_task)  # IGNORE

# %%
# HIDDEN
def test_sample_uses_generator(sample_task):
    import torch
    a = sample_task(5, 3, 10, torch.Generator().manual_seed(7))
    b = sample_task(5, 3, 10, torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), "same generator seed, same sample"

test_sample_uses_generator(sample_task)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q7
# points: 3

# %% [markdown]
# **Question 7 (code).** Under the $\mathcal N_1$ task, every candidate target $y'$ that has *all*
# context tokens in $\mathcal N_1(y')$ explains the context equally well, and every other candidate
# is impossible, so the Bayes posterior is uniform over these *consistent* candidates. Write
# `consistent_targets(m, contexts)`, returning the `BoolTensor[n, V]` that marks, for each context,
# the consistent candidates. Then write `best_accuracy(m, contexts, targets)`: the expected accuracy
# of the Bayes-optimal predictor on these examples, which guesses uniformly among the consistent
# candidates (a `float`).

# %% [raw]
# # BEGIN SOLUTION

# %%
def consistent_targets(m, contexts):
    """BoolTensor[n, V]: candidate y is consistent iff every context token is at distance 1 from y."""
    # BEGIN SOLUTION
    D = hamming_matrix(m)                       # [V, V]
    near = D[contexts] == 1                     # [n, L, V]: context token at distance 1 from y
    return near.all(dim=1)
    # END SOLUTION


def best_accuracy(m, contexts, targets):
    """Mean over examples of 1 / (number of consistent candidates) when the target is consistent."""
    # BEGIN SOLUTION
    ok = consistent_targets(m, contexts)
    hit = ok[torch.arange(len(targets)), targets].double()
    return (hit / ok.sum(1).double()).mean().item()
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_consistent_small(consistent_targets, best_accuracy):
    import torch
    ctx = torch.tensor([[1, 2]])        # m = 2: tokens (0,1) and (1,0)
    ok = consistent_targets(2, ctx)
    assert ok.tolist() == [[True, False, False, True]], "tokens 0 and 3 are at distance 1 from both"
    assert abs(best_accuracy(2, ctx, torch.tensor([0])) - 0.5) < 1e-12, "two candidates: 1/2"

test_consistent_small(consistent_targets, best_accuracy)  # IGNORE

# %%
# HIDDEN
def test_consistent_brute_force(consistent_targets, best_accuracy):
    import torch
    g = torch.Generator().manual_seed(3)
    m, L, n = 4, 3, 40
    y = torch.randint(0, 16, (n,), generator=g)
    ctx = y[:, None] ^ (1 << torch.randint(0, m, (n, L), generator=g))
    expected = torch.tensor([[all(bin(int(x) ^ c).count("1") == 1 for x in row) for c in range(16)]
                             for row in ctx])
    assert torch.equal(consistent_targets(m, ctx).bool(), expected)
    acc = sum(1 / int(expected[i].sum()) for i in range(n)) / n
    assert abs(best_accuracy(m, ctx, y) - acc) < 1e-9

test_consistent_brute_force(consistent_targets, best_accuracy)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# The cell below uses your sampler and `best_accuracy` to print the accuracy ceiling of the task for
# a few context lengths, next to the value from `lca.bayes_accuracy`. Longer contexts pin the target
# down: most candidates at distance two from $y$ survive only while every context token falls in the
# two neighbours they share with $y$.

# %%
g = torch.Generator().manual_seed(0)
for L in (1, 2, 4, 8):
    ctx, y = sample_task(5, L, 4000, g)
    ref = lca.bayes_accuracy(lca.TaskSpec(m=5, L=L), n=4000, seed=0)
    print(f"m = 5, L = {L}:  your ceiling = {best_accuracy(5, ctx, y):.3f}   lca.bayes_accuracy = {ref:.3f}")

# %% [raw]
# # BEGIN QUESTION
# name: q8
# manual: true
# points: 2

# %% [markdown]
# **Question 8 (written).** Take a one-layer model whose token embeddings are orthonormal, whose
# attention is uniform and whose value matrix is the identity, so that the logit of token $k$ is the
# fraction of context tokens equal to $k$. (a) What is its accuracy on the $\mathcal N_1$ task, and
# why? (b) In one or two sentences, what must a value matrix do instead, in the language of Part A
# (keys and values)? (c) Relate this to the sentence "The Eiffel Tower is not in Chicago": which
# tokens act as keys, and what gets recalled?

# %% [raw]
# # BEGIN SOLUTION

# %% [markdown]
# (a) Zero. The target never appears in its own context, so its logit is exactly $0$, while the
# context tokens themselves have logits of at least $1/L>0$; the arg max is always a context token.
# (b) The value matrix must act as an associative memory from context tokens to targets: each
# context token's embedding is a key, and the value stored under it is the sum of the embeddings of
# the targets whose neighbourhood contains that token, $W_V=\sum_y W_E(y)\big(\sum_{x\in\mathcal
# N(y)}W_E(x)\big)^\top$. Summed over the context, the target collects a vote from every token.
# (c) The words of the context ("Eiffel Tower", "Chicago", "city") are the keys; each retrieves the
# answers associated with it. "Chicago" is a strong cue for the answer "Chicago" whatever the
# surrounding sentence says, so adding it, even negated, pushes the recalled answer towards Chicago.

# %% [raw]
# # END SOLUTION

# %% [raw]
# # END QUESTION
