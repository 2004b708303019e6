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
grader = otter.Notebook(None if "google.colab" in sys.modules else "03_attention_and_hijacking.ipynb")

# %% [markdown]
# # Assignment 3: attention and context hijacking
#
# This assignment goes with chapters 6 (attention) and 7 (context hijacking inside the model) of
# the Elephants course, and with its opening chapter on hijacking in language models. You will write the attention layer of the one-layer transformer, build a
# key-query matrix that makes it select tokens from the query's cluster, and then hijack the model:
# add tokens that point to another answer and find when the prediction flips. You finish by
# relating what you measured to context hijacking in large language models.
#
# **How this works.** Write your code where you see `...`, then run the `grader.check("q...")` cell
# under it: it runs the public tests for that question. Your teacher grades with further hidden
# tests. Questions marked *written* are answered in the markdown cell under them. Run the notebook
# from the top after a restart before you hand it in.
#
# **Expected time:** about 90 minutes. **You will need:** Assignments 1 and 2 (or chapters 1 to 5),
# the softmax function.
#
# **The model.** Token $i$ has embedding $W_E(i)$, row $i$ of `W_E` (shape `[V, d]`). For a context
# $x=(x_1,\dots,x_L)$ the last token $x_L$ is the *query*. The attention scores are
# $s_l=W_E(x_L)^\top W_{KQ}\,W_E(x_l)$, the weights $a=\operatorname{softmax}(s)$ over the $L$
# positions, the gathered vector $h=\sum_l a_lW_E(x_l)$, and the logits $f_k=W_E(k)^\top W_V h$.
# In `lca`: `lca.OneLayerTransformer.from_weights(W_E, W_KQ, W_V)`, with `model.attention(contexts)`
# for the weights and `model.predict(contexts)` for the predictions. Token $i$ is the latent vector of
# the binary digits of $i$ (most significant bit first); the *cluster* of a token is the value of its
# first $k$ bits.

# %%
import torch

import lca

torch.manual_seed(0)
torch.set_num_threads(1)

m = 5
V = 2 ** m
N1 = lca.hamming_sphere(1).mask(m)                         # BoolTensor[V, V]
W_orth = lca.OneLayerTransformer(V, V, E_init="orthonormal", seed=0).W_E.detach()   # [V, V]

# %% [markdown]
# ## Part A: attention that selects a cluster

# %% [raw]
# # BEGIN QUESTION
# name: q1
# points: 2

# %% [markdown]
# **Question 1 (code).** Write `attention_weights(W_E, W_KQ, contexts)`, returning the `[n, L]`
# tensor of attention weights $a_l$ (each row sums to one) for `contexts` of shape `[n, L]`. No
# Python loops over examples or positions.

# %% [raw]
# # BEGIN SOLUTION

# %%
def attention_weights(W_E, W_KQ, contexts):
    """[n, L]: softmax over positions of s_l = W_E(x_L)^T W_KQ W_E(x_l); the query is the last token."""
    # BEGIN SOLUTION
    X = W_E[contexts]                           # [n, L, d]
    q = X[:, -1, :] @ W_KQ                      # [n, d]: W_E(x_L)^T W_KQ
    scores = (X @ q[:, :, None]).squeeze(-1)    # [n, L]
    return torch.softmax(scores, dim=-1)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_attention_uniform(attention_weights):
    import torch
    a = attention_weights(torch.eye(4), torch.zeros(4, 4), torch.tensor([[0, 1, 2], [3, 3, 1]]))
    assert tuple(a.shape) == (2, 3), "shape [n, L]"
    assert torch.allclose(a.double(), torch.full((2, 3), 1 / 3, dtype=torch.float64)), \
        "W_KQ = 0 gives uniform attention"

test_attention_uniform(attention_weights)  # IGNORE

# %%
def test_attention_query_is_last(attention_weights):
    import torch
    W_KQ = torch.zeros(3, 3)
    W_KQ[2, 0] = 1.3862943611198906          # log 4: exp(score) = 4 for query 2 and key 0
    a = attention_weights(torch.eye(3), W_KQ, torch.tensor([[0, 1, 2]]))
    assert torch.allclose(a.double(), torch.tensor([[4 / 6, 1 / 6, 1 / 6]], dtype=torch.float64),
                          atol=1e-6), "the score of key x_l is W_E(x_L)^T W_KQ W_E(x_l)"

test_attention_query_is_last(attention_weights)  # IGNORE

# %%
# HIDDEN
def test_attention_brute_force(attention_weights):
    import math

    import torch
    g = torch.Generator().manual_seed(1)
    W_E = torch.randn(10, 4, generator=g, dtype=torch.float64)
    W_KQ = torch.randn(4, 4, generator=g, dtype=torch.float64)
    ctx = torch.randint(0, 10, (6, 5), generator=g)
    got = attention_weights(W_E, W_KQ, ctx).double()
    for i in range(6):
        s = [float(W_E[ctx[i, -1]] @ W_KQ @ W_E[ctx[i, l]]) for l in range(5)]
        z = sum(math.exp(v) for v in s)
        for l in range(5):
            assert abs(float(got[i, l]) - math.exp(s[l]) / z) < 1e-9

test_attention_brute_force(attention_weights)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q2
# points: 2

# %% [markdown]
# **Question 2 (code).** Write `same_cluster_mass(att, contexts, targets, m, k)`: for each example,
# the total attention weight on the positions whose token shares its first $k$ latent bits with the
# target. Return a float tensor of shape `[n]`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def same_cluster_mass(att, contexts, targets, m, k):
    """[n]: sum of att[i, l] over positions l whose token is in the target's cluster (first k bits)."""
    # BEGIN SOLUTION
    same = (contexts >> (m - k)) == (targets[:, None] >> (m - k))
    return (att * same).sum(dim=1)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_mass_small(same_cluster_mass):
    import torch
    att = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    ctx = torch.tensor([[0, 5, 2, 7]])       # m = 3: first bits 0, 1, 0, 1
    got = same_cluster_mass(att, ctx, torch.tensor([1]), 3, 1)
    assert tuple(got.shape) == (1,), "shape [n]"
    assert abs(float(got[0]) - 0.4) < 1e-6, "tokens 0 and 2 share the first bit of target 1"

test_mass_small(same_cluster_mass)  # IGNORE

# %%
# HIDDEN
def test_mass_brute_force(same_cluster_mass):
    import torch
    g = torch.Generator().manual_seed(2)
    m, k = 5, 2
    ctx = torch.randint(0, 32, (8, 6), generator=g)
    y = torch.randint(0, 32, (8,), generator=g)
    att = torch.softmax(torch.randn(8, 6, generator=g, dtype=torch.float64), dim=1)
    got = same_cluster_mass(att, ctx, y, m, k).double()
    for i in range(8):
        want = sum(float(att[i, l]) for l in range(6)
                   if format(int(ctx[i, l]), "05b")[:k] == format(int(y[i]), "05b")[:k])
        assert abs(float(got[i]) - want) < 1e-9

test_mass_brute_force(same_cluster_mass)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q3
# points: 3

# %% [markdown]
# **Question 3 (code).** Let $B_{ij}=1$ when tokens $i$ and $j$ share their first $k$ bits (including
# $i=j$) and $0$ otherwise. Write `cluster_kq(W_E, m, k, beta)`, returning
# $W_{KQ}=\beta\,W_E^\top B\,W_E$. With orthonormal embeddings its score for query $q$ and key $x$ is
# $\beta B_{qx}$: $\beta$ for a key in the query's cluster, $0$ otherwise.

# %% [raw]
# # BEGIN SOLUTION

# %%
def cluster_kq(W_E, m, k, beta):
    """W_KQ [d, d] = beta W_E^T B W_E with B[i, j] = 1 iff tokens i, j share their first k bits."""
    # BEGIN SOLUTION
    t = torch.arange(2 ** m)
    B = ((t[:, None] >> (m - k)) == (t[None, :] >> (m - k))).to(W_E.dtype)
    return beta * W_E.T @ B @ W_E
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_cluster_kq_identity(cluster_kq):
    import torch
    W = cluster_kq(torch.eye(8), 3, 1, 2.0)
    block = torch.zeros(8, 8)
    block[:4, :4] = 2.0
    block[4:, 4:] = 2.0
    assert tuple(W.shape) == (8, 8), "W_KQ has shape [d, d]"
    assert torch.allclose(W.float(), block), "with W_E = I, W_KQ = beta * B (two blocks of 4 for m=3, k=1)"

test_cluster_kq_identity(cluster_kq)  # IGNORE

# %%
# HIDDEN
def test_cluster_kq_scores(cluster_kq):
    import torch
    g = torch.Generator().manual_seed(3)
    Q, _ = torch.linalg.qr(torch.randn(12, 8, generator=g, dtype=torch.float64))
    W_E = Q.T.contiguous()                                   # 8 orthonormal rows in R^12
    for k in (1, 2):
        S = W_E @ cluster_kq(W_E, 3, k, 1.5) @ W_E.T
        B = torch.tensor([[1.5 * (format(i, "03b")[:k] == format(j, "03b")[:k]) for j in range(8)]
                          for i in range(8)], dtype=torch.float64)
        assert torch.allclose(S, B, atol=1e-9)

test_cluster_kq_scores(cluster_kq)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# The cell below samples a noisy version of the task: with probability one half a context token is
# *noise*, drawn from the clusters other than the target's ($k=2$), and otherwise it is one of the
# target's Hamming neighbours inside its own cluster. The last token (the query) is always
# informative. It prints, for growing $\beta$, the average attention mass on tokens from the target's
# cluster, computed with your functions.

# %%
informative = lca.custom(N1 & lca.cluster(2).mask(m), "N_1 inside the cluster")
noisy = lca.TaskSpec(m=m, L=16, neighbourhood=informative, noise=0.5, noise_law=lca.other_clusters(2),
                     clean_last=True)
ctx, y = lca.sample(noisy, 2000, seed=3)
for beta in (0.0, 1.0, 2.0, 4.0, 8.0):
    att = attention_weights(W_orth, cluster_kq(W_orth, m, 2, beta), ctx)
    print(f"beta = {beta:3.1f}: attention mass on the target's cluster = "
          f"{same_cluster_mass(att, ctx, y, m, 2).mean().item():.4f}")

# %% [markdown]
# ## Part B: hijacking the one-layer model
#
# In this part the model is built from orthonormal embeddings and the value matrix of the
# $\mathcal N_1$ task, so (with uniform attention) the logit of $k$ is the fraction of context tokens
# in $\mathcal N_1(k)$. A *hijacked* context puts $n$ tokens from the neighbourhood of another token
# $y'$ in front of $L-n$ genuine tokens from $\mathcal N_1(y)$, as "Do not think of ..." sentences
# are put in front of a prompt.

# %% [raw]
# # BEGIN QUESTION
# name: q4
# points: 2

# %% [markdown]
# **Question 4 (code).** Write `value_matrix(W_E, mask)`, returning $W_V=W_E^\top A W_E$ where
# $A_{yx}=1$ when `mask[y, x]` is true (the associative memory that stores, for each target $y$, its
# embedding under the key $\sum_{x\in\mathcal N(y)}W_E(x)$).

# %% [raw]
# # BEGIN SOLUTION

# %%
def value_matrix(W_E, mask):
    """W_V [d, d] = W_E^T A W_E with A = mask as 0/1 (A[y, x] = 1 iff x in N(y))."""
    # BEGIN SOLUTION
    return W_E.T @ mask.to(W_E.dtype) @ W_E
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_value_matrix_small(value_matrix):
    import torch
    mask = torch.tensor([[False, True], [False, False]])
    W_V = value_matrix(torch.eye(2), mask)
    assert torch.allclose(W_V.float(), mask.float()), "with W_E = I, W_V = A (A[y, x] = mask[y, x])"

test_value_matrix_small(value_matrix)  # IGNORE

# %%
# HIDDEN
def test_value_matrix_brute_force(value_matrix):
    import torch
    g = torch.Generator().manual_seed(4)
    W_E = torch.randn(8, 6, generator=g, dtype=torch.float64)
    mask = torch.rand(8, 8, generator=g) < 0.5
    expected = sum(torch.outer(W_E[y], W_E[x]) for y in range(8) for x in range(8) if mask[y, x])
    assert torch.allclose(value_matrix(W_E, mask).double(), expected)

test_value_matrix_brute_force(value_matrix)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q5
# points: 3

# %% [markdown]
# **Question 5 (code).** Write `hijack_context(m, y, y_hijack, L, n)`, returning a `LongTensor[L]`
# whose first `n` tokens lie in $\mathcal N_1(y')$ for $y'=$ `y_hijack` and whose last `L - n`
# tokens lie in $\mathcal N_1(y)$. Spread each part evenly over its neighbourhood: cycle through the
# $m$ neighbours, so that each is used $\lfloor q/m\rfloor$ or $\lceil q/m\rceil$ times in a part
# of $q$ tokens.

# %% [raw]
# # BEGIN SOLUTION

# %%
def hijack_context(m, y, y_hijack, L, n):
    """LongTensor[L]: n tokens cycling through N_1(y_hijack), then L - n cycling through N_1(y)."""
    # BEGIN SOLUTION
    front = [y_hijack ^ (1 << (i % m)) for i in range(n)]
    back = [y ^ (1 << (i % m)) for i in range(L - n)]
    return torch.tensor(front + back, dtype=torch.long)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_hijack_context_parts(hijack_context):
    import torch
    ctx = hijack_context(5, 3, 28, 7, 2)
    assert isinstance(ctx, torch.Tensor) and ctx.dtype == torch.long, "return a LongTensor"
    assert tuple(ctx.shape) == (7,), "shape [L]"
    dist = lambda a, b: bin(int(a) ^ int(b)).count("1")  # noqa: E731
    assert all(dist(x, 28) == 1 for x in ctx[:2]), "the first n tokens are neighbours of y_hijack"
    assert all(dist(x, 3) == 1 for x in ctx[2:]), "the last L - n tokens are neighbours of y"

test_hijack_context_parts(hijack_context)  # IGNORE

# %%
# HIDDEN
def test_hijack_context_balanced(hijack_context):
    for m, y, y2, L, n in ((5, 3, 28, 12, 0), (5, 3, 28, 12, 12), (6, 0, 63, 11, 4), (4, 9, 6, 10, 7)):
        ctx = hijack_context(m, y, y2, L, n).tolist()
        assert len(ctx) == L
        for part, centre, q in ((ctx[:n], y2, n), (ctx[n:], y, L - n)):
            counts = [sum(1 for x in part if x == centre ^ (1 << b)) for b in range(m)]
            assert sum(counts) == q, "every token of a part must be a neighbour of its centre"
            assert max(counts) - min(counts) <= 1, "each part must be spread evenly"

test_hijack_context_balanced(hijack_context)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q6
# points: 3

# %% [markdown]
# **Question 6 (code).** Write `predictions_vs_hijack(model, m, y, y_hijack, L)`: the `LongTensor[L + 1]`
# whose entry $n$ is `model`'s prediction on `hijack_context(m, y, y_hijack, L, n)`, for
# $n=0,1,\dots,L$ (one batched call to the model).

# %% [raw]
# # BEGIN SOLUTION

# %%
def predictions_vs_hijack(model, m, y, y_hijack, L):
    """LongTensor[L + 1]: the model's prediction with n = 0..L hijacking tokens."""
    # BEGIN SOLUTION
    contexts = torch.stack([hijack_context(m, y, y_hijack, L, n) for n in range(L + 1)])
    return model.predict(contexts)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_predictions_flip_at_half(predictions_vs_hijack):
    import torch

    import lca
    m, y, y2, L = 5, 3, 28, 9
    mask = lca.hamming_sphere(1).mask(m).double()
    W_E = torch.eye(32, dtype=torch.float64)
    model = lca.OneLayerTransformer.from_weights(W_E, W_V=mask)      # W_V = A when W_E = I
    got = predictions_vs_hijack(model, m, y, y2, L)
    assert tuple(got.shape) == (L + 1,), "one prediction for each n = 0..L"
    assert got.tolist() == [3] * 5 + [28] * 5, "the prediction flips once more than half the tokens hijack"

test_predictions_flip_at_half(predictions_vs_hijack)  # IGNORE

# %%
# HIDDEN
def test_predictions_other_model(predictions_vs_hijack):
    import torch

    import lca
    g = torch.Generator().manual_seed(5)
    m, y, y2, L = 6, 10, 53, 11
    Q, _ = torch.linalg.qr(torch.randn(70, 64, generator=g, dtype=torch.float64))
    W_E = Q.T.contiguous()
    mask = lca.hamming_sphere(1).mask(m)
    W_V = sum(torch.outer(W_E[a], W_E[b]) for a in range(64) for b in range(64) if mask[a, b])
    got = predictions_vs_hijack(lca.OneLayerTransformer.from_weights(W_E, W_V=W_V), m, y, y2, L)
    assert got.tolist() == [y] * 6 + [y2] * 6
    identity = lca.OneLayerTransformer.from_weights(W_E)            # predicts a context token
    got = predictions_vs_hijack(identity, m, y, y2, L).tolist()
    assert all(min(bin(p ^ y).count("1"), bin(p ^ y2).count("1")) == 1 for p in got), \
        "the predictions must come from the model that is passed in"

test_predictions_other_model(predictions_vs_hijack)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# The cell below puts Parts A and B together. The context has $11$ tokens from your `hijack_context`
# with $n$ hijacking tokens, then a last token, the query. Three models share the orthonormal
# embeddings and your value matrix: uniform attention; cluster attention ($\beta=4$, $k=2$) with a
# genuine query (token $y\oplus1$, in $y$'s cluster); and cluster attention with a hijacking query
# (token $y'\oplus1$). Here $y=3=(0,0,0,1,1)$ and $y'=28=(1,1,1,0,0)$ lie in different clusters.

# %%
y, y_hijack = 3, 28
W_V = value_matrix(W_orth, N1)
rows = (("uniform attention", 0.0, y ^ 1), ("cluster attention, genuine query", 4.0, y ^ 1),
        ("cluster attention, hijacking query", 4.0, y_hijack ^ 1))
for label, beta, query in rows:
    model = lca.OneLayerTransformer.from_weights(W_orth, W_KQ=cluster_kq(W_orth, m, 2, beta), W_V=W_V)
    contexts = torch.stack([torch.cat([hijack_context(m, y, y_hijack, 11, n), torch.tensor([query])])
                            for n in range(12)])
    pred = model.predict(contexts).tolist()
    print(f"{label:>36}: predictions for n = 0..11: {pred}")

# %% [raw]
# # BEGIN QUESTION
# name: q7
# manual: true
# points: 3

# %% [markdown]
# **Question 7 (written).** In the experiments of Jiang et al. (2024), prepending the sentence "Do
# not think of {false answer}." $k$ times to a factual prompt makes open language models give the
# false answer more and more often, while prepending "Do not think of {true answer}." makes them
# more often right. (a) Map this onto your hijacked contexts: what plays the role of $k$, of the
# false answer and of the true answer? (b) Using the logits of the constructed model, explain why the
# word "not" does not protect the model. (c) Name one way in which a real language model differs from
# the one-layer model, so that the sharp flip at $n>L/2$ should not be expected there.

# %% [raw]
# # BEGIN SOLUTION

# %% [markdown]
# (a) Each prepended sentence adds tokens associated with the false answer, so $k$ plays the role of
# $n$ (more precisely, the share $n/L$ of the context that cues $y'$); the false answer is $y'$ and
# the true answer is $y$, cued by the original prompt. Prepending the true answer corresponds to
# adding tokens from $\mathcal N_1(y)$, which raises $f_y$ and makes the model more robust.
# (b) The logit of $k$ is a sum over context tokens of how strongly each token is associated with
# $k$ in the value matrix, i.e. a count of cues. A token contributes the same amount whatever its
# neighbours are: there is no term in $f_k$ through which "not" could reverse the contribution of
# the false answer's tokens, so a negated mention is still a vote for it.
# (c) Any of: many layers and heads that can model syntax and negation; positional information;
# attention that is far from uniform (it can ignore or emphasise sentences); answers that are not
# on a clean latent hypercube; an efficacy score averaged over many facts of different strengths,
# which smooths any threshold into a gradual curve.

# %% [raw]
# # END SOLUTION

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q8
# manual: true
# points: 3

# %% [markdown]
# **Question 8 (written).** Use the three rows printed above. (a) Why does cluster attention with a
# genuine query resist hijacking, even when $11$ of the $12$ tokens point to $y'$? (b) Why does the
# same attention make hijacking *easier* when the query itself is a hijacking token? (c) What does
# this suggest about *where* in a prompt hijacking text is most effective for a model whose
# attention is driven by the last token?

# %% [raw]
# # BEGIN SOLUTION

# %% [markdown]
# (a) The query $y\oplus1$ lies in $y$'s cluster and every hijacking token lies in other clusters,
# so each hijacking token gets weight $e^{0}$ against $e^{4}\approx55$ for every genuine token in
# the cluster (including the query itself). Even one genuine in-cluster token outweighs eleven
# hijacking tokens ($55$ against $11$), so $h$ stays close to the embeddings of $y$'s neighbours
# and the prediction stays $y$ for every $n$.
# (b) With the query $y'\oplus1$ in $y'$'s cluster the roles swap: attention now amplifies the
# hijacking tokens of that cluster and suppresses the genuine ones. At $n=0$ the query is the only
# hijacking token and it already moves the prediction away from $y$ (to one of the query's own
# neighbours); from $n=1$ on the prediction is $y'$.
# (c) Attention decides which tokens count, and it is steered by the query, the last token. Hijacking
# text is most effective where it shapes the query or sits in the same "topic" as the query, for
# instance right before the question or inside it; text far from the query's topic is filtered out.
# Real models prepend the hijack and still flip, which shows that their attention does not filter
# by topic as sharply as this constructed $W_{KQ}$.

# %% [raw]
# # END SOLUTION

# %% [raw]
# # END QUESTION
