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
grader = otter.Notebook(None if "google.colab" in sys.modules else "02_value_matrix_and_embeddings.ipynb")

# %% [markdown]
# # Assignment 2: the value matrix and the embeddings
#
# This assignment goes with chapters 4 (the value matrix) and 5 (embedding geometry) of the
# Elephants course. You will build the value matrix that turns a one-layer transformer into an associative
# memory for the latent concept association task, prove how reliable it is, and then look at the
# other way to solve the task: embeddings whose geometry copies the latent space.
#
# **How this works.** Write your code where you see `...`, then run the `grader.check("q...")` cell
# under it: it runs the public tests for that question. Your teacher grades with further hidden
# tests. Questions marked *written* are answered in the markdown cell under them. Run the notebook
# from the top after a restart before you hand it in.
#
# **Expected time:** about 90 minutes. **You will need:** Assignment 1 (or the first two chapters),
# matrix products, eigenvalues of a symmetric matrix.
#
# **The model.** Token $i$ has embedding $W_E(i)\in\mathbb R^d$, row $i$ of `W_E` (shape `[V, d]`).
# For a context $x=(x_1,\dots,x_L)$ the one-layer transformer of the course computes attention
# weights $a_l$ from the key-query matrix $W_{KQ}$ (uniform when $W_{KQ}=0$, the case in this
# assignment), gathers $h=\sum_l a_l W_E(x_l)$, and outputs the logits
# $f_k = W_E(k)^\top W_V h$ for every token $k$; the prediction is $\arg\max_k f_k$. In `lca` this is
# `lca.OneLayerTransformer.from_weights(W_E, W_KQ=None, W_V=None)` (zero $W_{KQ}$ and identity $W_V$
# by default), with `model(contexts)` for the logits and `model.predict(contexts)` for the
# predictions.
#
# A neighbourhood is given as a mask: `mask[y, x]` is `True` when token $x$ may appear in the context
# of target $y$ (for instance `lca.hamming_sphere(1).mask(m)` for $\mathcal N_1$).

# %%
import math

import torch

import lca

torch.manual_seed(0)
torch.set_num_threads(1)

m = 5
V = 2 ** m
N1 = lca.hamming_sphere(1).mask(m)                         # BoolTensor[V, V]
W_orth = lca.OneLayerTransformer(V, V, E_init="orthonormal", seed=0).W_E.detach()   # [V, V]
print(f"m = {m}, V = {V}; the rows of W_orth are orthonormal: "
      f"{torch.allclose(W_orth @ W_orth.T, torch.eye(V), atol=1e-5)}")

# %% [markdown]
# ## Part A: the value matrix as an associative memory
#
# Store, for every target $y$, the pair (key = the sum of the embeddings of $y$'s neighbours, value =
# the embedding of $y$), as in a linear associative memory:
# $$W_V=\sum_{y}W_E(y)\Big(\sum_{x\in\mathcal N(y)}W_E(x)\Big)^{\!\top} = W_E^\top A\, W_E,
# \qquad A_{yx}=\mathbb 1[x\in\mathcal N(y)].$$

# %% [raw]
# # BEGIN QUESTION
# name: q1
# points: 2

# %% [markdown]
# **Question 1 (code).** Write `value_matrix(W_E, mask)`, returning the `[d, d]` matrix
# $W_E^\top A W_E$ where $A$ is `mask` as a matrix of zeros and ones (in the dtype of `W_E`). Mind
# the orientation: `mask[y, x]` is about target $y$ and context token $x$, and masks need not be
# symmetric.

# %% [raw]
# # BEGIN SOLUTION

# %%
def value_matrix(W_E, mask):
    """W_V [d, d] = sum_y W_E(y) (sum_{x in N(y)} W_E(x))^T = W_E^T A W_E, A = mask as 0/1."""
    # BEGIN SOLUTION
    A = mask.to(W_E.dtype)
    return W_E.T @ A @ W_E
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_value_matrix_identity_embedding(value_matrix):
    import torch
    mask = torch.tensor([[False, True, True, False], [True, False, False, True],
                         [True, False, False, True], [False, True, True, False]])
    W_V = value_matrix(torch.eye(4), mask)
    assert tuple(W_V.shape) == (4, 4), "W_V has shape [d, d]"
    assert torch.allclose(W_V, mask.float()), "with W_E = I the value matrix is the 0/1 matrix A"

test_value_matrix_identity_embedding(value_matrix)  # IGNORE

# %%
# HIDDEN
def test_value_matrix_outer_products(value_matrix):
    import torch
    g = torch.Generator().manual_seed(2)
    W_E = torch.randn(8, 11, generator=g, dtype=torch.float64)
    mask = torch.rand(8, 8, generator=g) < 0.4            # not symmetric
    mask.fill_diagonal_(False)
    expected = torch.zeros(11, 11, dtype=torch.float64)
    for y in range(8):
        key = sum((W_E[x] for x in range(8) if mask[y, x]), torch.zeros(11, dtype=torch.float64))
        expected += torch.outer(W_E[y], key)
    assert torch.allclose(value_matrix(W_E, mask), expected), "W_V = sum_y W_E(y) key(y)^T"

test_value_matrix_outer_products(value_matrix)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q2
# points: 2

# %% [markdown]
# **Question 2 (code).** With orthonormal embeddings and uniform attention the logit of token $k$
# should be the fraction of context tokens that lie in $\mathcal N(k)$. Write
# `neighbour_fractions(mask, contexts)`, returning the `[n, V]` float tensor whose entry $[i, k]$ is
# $\frac1L\#\{l: \texttt{mask}[k, x_{il}]\}$ for `contexts` of shape `[n, L]`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def neighbour_fractions(mask, contexts):
    """[n, V]: entry [i, k] = fraction of the L tokens of context i that lie in N(k)."""
    # BEGIN SOLUTION
    inside = mask.T[contexts]                  # [n, L, V]: inside[i, l, k] = mask[k, x_il]
    return inside.double().mean(dim=1)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_fractions_small(neighbour_fractions):
    import torch
    mask = torch.tensor([[False, True, True], [False, False, True], [True, False, False]])
    f = neighbour_fractions(mask, torch.tensor([[1, 2, 2, 0]]))
    assert tuple(f.shape) == (1, 3), "shape [n, V]"
    assert torch.allclose(f.double(), torch.tensor([[0.75, 0.5, 0.25]], dtype=torch.float64)), \
        "N(0) = {1, 2} holds 3 of the 4 tokens, N(1) = {2} holds 2, N(2) = {0} holds 1"

test_fractions_small(neighbour_fractions)  # IGNORE

# %%
# HIDDEN
def test_fractions_brute_force(neighbour_fractions):
    import torch
    g = torch.Generator().manual_seed(4)
    mask = torch.rand(16, 16, generator=g) < 0.3
    ctx = torch.randint(0, 16, (9, 5), generator=g)
    expected = torch.tensor([[sum(bool(mask[k, x]) for x in row) / 5 for k in range(16)] for row in ctx],
                            dtype=torch.float64)
    assert torch.allclose(neighbour_fractions(mask, ctx).double(), expected)

test_fractions_brute_force(neighbour_fractions)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q3
# points: 2

# %% [markdown]
# **Question 3 (code).** Write `constructed_model(W_E, mask)`, returning the
# `lca.OneLayerTransformer` with embeddings `W_E`, zero key-query matrix (uniform attention) and
# value matrix `value_matrix(W_E, mask)`. The tests check that its logits are the neighbour
# fractions of Question 2 when the embeddings are orthonormal.

# %% [raw]
# # BEGIN SOLUTION

# %%
def constructed_model(W_E, mask):
    """The one-layer model with embeddings W_E, W_KQ = 0 and W_V = W_E^T A W_E."""
    # BEGIN SOLUTION
    return lca.OneLayerTransformer.from_weights(W_E, W_V=value_matrix(W_E, mask))
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_constructed_model_logits(constructed_model):
    import torch

    import lca
    mask = lca.hamming_sphere(1).mask(3)
    model = constructed_model(torch.eye(8), mask)
    assert isinstance(model, lca.OneLayerTransformer), "return an lca.OneLayerTransformer"
    ctx = torch.tensor([[1, 2, 4, 1]])
    expected = torch.tensor([[1.0, 0.0, 0.0, 0.75, 0.0, 0.75, 0.5, 0.0]])
    assert torch.allclose(model(ctx).detach().float(), expected, atol=1e-5), \
        "logit k = fraction of context tokens in N_1(k)"

test_constructed_model_logits(constructed_model)  # IGNORE

# %%
# HIDDEN
def test_constructed_model_orthonormal(constructed_model):
    import torch

    import lca
    g = torch.Generator().manual_seed(8)
    Q, _ = torch.linalg.qr(torch.randn(20, 16, generator=g, dtype=torch.float64))
    W_E = Q.T.contiguous()                                  # 16 orthonormal rows in R^20
    mask = lca.hamming_ball(2).mask(4)
    model = constructed_model(W_E, mask)
    assert float(model.W_KQ.detach().abs().max()) == 0.0, "the key-query matrix must be zero"
    ctx = torch.randint(0, 16, (30, 7), generator=g)
    expected = torch.tensor([[sum(bool(mask[k, x]) for x in row) / 7 for k in range(16)] for row in ctx],
                            dtype=torch.float64)
    assert torch.allclose(model(ctx).detach().double(), expected, atol=1e-8)

test_constructed_model_orthonormal(constructed_model)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# Run the cell below once Question 3 passes. It compares the constructed model with the model that
# has the same orthonormal embeddings but the identity value matrix, on 2,000 fresh examples of the
# $\mathcal N_1$ task for several context lengths.

# %%
print("  L   constructed W_V   identity W_V")
for L in (2, 4, 8, 16):
    ctx, y = lca.sample(lca.TaskSpec(m=m, L=L), 2000, seed=1)
    acc = (constructed_model(W_orth, N1).predict(ctx) == y).double().mean().item()
    acc_id = (lca.OneLayerTransformer.from_weights(W_orth).predict(ctx) == y).double().mean().item()
    print(f"{L:3d}   {acc:15.4f}   {acc_id:12.4f}")

# %% [raw]
# # BEGIN QUESTION
# name: q4
# manual: true
# points: 3

# %% [markdown]
# **Question 4 (written, a short proof).** Work with $\mathcal N_1$, orthonormal embeddings and the
# constructed model, so that $f_k$ is the fraction of context tokens in $\mathcal N_1(k)$.
# (a) Show that $f_y=1$ for the target $y$.
# (b) Show that for $k\ne y$, $|\mathcal N_1(k)\cap\mathcal N_1(y)|$ is $2$ when $D_H(k,y)=2$ and
# $0$ otherwise.
# (c) Deduce that the prediction can be wrong (counting a tie as an error) only if all $L$ context
# tokens fall in a two-element set $\mathcal N_1(k)\cap\mathcal N_1(y)$, and conclude
# $P(\text{error})\le\binom m2(2/m)^L$. Compare the bound with the table above for $m=5$.

# %% [raw]
# # BEGIN SOLUTION

# %% [markdown]
# (a) Every context token is drawn from $\mathcal N_1(y)$, so all $L$ of them are in $\mathcal
# N_1(y)$ and $f_y=1$.
# (b) $x\in\mathcal N_1(k)\cap\mathcal N_1(y)$ means $x$ differs from $y$ in one bit and from $k$ in
# one bit, so $D_H(k,y)\le 2$, and $D_H(k,y)$ has the parity of $1+1$, so it is $0$ or $2$. For
# $D_H(k,y)=2$, say $k$ and $y$ differ in bits $i,j$: $x$ must agree with $y$ outside $\{i,j\}$ and
# flip exactly one of them, which gives exactly two tokens. Otherwise the intersection is empty.
# (c) $f_k\le 1=f_y$ always, and $f_k=1$ needs every context token in $\mathcal N_1(k)$, hence in
# $\mathcal N_1(k)\cap\mathcal N_1(y)$, which by (b) needs $D_H(k,y)=2$ and a two-element set. For
# one such $k$ the probability is $(2/m)^L$ (each token independently lands in 2 of the $m$
# neighbours); there are $\binom m2$ such $k$, and the union bound gives $P(\text{error})\le\binom
# m2(2/m)^L$. For $m=5$ this is $10\cdot0.4^L$: vacuous at $L=2$ (accuracy 0.45 measured), at least
# $0.744$ at $L=4$ (0.89 measured), at least $0.993$ at $L=8$ (0.9975 measured) and $0.999996$ at
# $L=16$ (1.0 measured). The identity value matrix scores 0, as the target never appears in its own
# context.

# %% [raw]
# # END SOLUTION

# %% [raw]
# # END QUESTION

# %% [markdown]
# ## Part B: embeddings that copy the latent space
#
# The construction above needs $d\ge V$ orthonormal embeddings. With $d<V$ (the *underparameterised*
# regime) a different solution exists: give token $z\in\{0,1\}^m$ the embedding
# $e_z=\frac1{\sqrt m}(2z-\mathbf 1)\in\mathbb R^m$, the $\pm1$ version of its latent vector,
# scaled to unit norm, and keep $W_V=I$.

# %% [raw]
# # BEGIN QUESTION
# name: q5
# points: 2

# %% [markdown]
# **Question 5 (code).** Write `pm_embedding(m)`, returning the `[V, m]` float64 tensor whose row $i$
# is $e_z$ for the latent vector $z$ of token $i$ (most significant bit first).

# %% [raw]
# # BEGIN SOLUTION

# %%
def pm_embedding(m):
    """[2**m, m] float64: row i is (2 z_i - 1) / sqrt(m), z_i the latent bits of token i (MSB first)."""
    # BEGIN SOLUTION
    t = torch.arange(2 ** m)
    Z = (t[:, None] >> torch.arange(m - 1, -1, -1)) & 1
    return (2 * Z.double() - 1) / math.sqrt(m)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_pm_small(pm_embedding):
    import torch
    E = pm_embedding(2)
    expected = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
    assert tuple(E.shape) == (4, 2), "shape [V, m]"
    assert torch.allclose(E.double(), expected / 2 ** 0.5), "token 1 = (0, 1) -> (-1, 1) / sqrt(2)"

test_pm_small(pm_embedding)  # IGNORE

# %%
# HIDDEN
def test_pm_bits(pm_embedding):
    import torch
    m = 5
    E = pm_embedding(m).double()
    expected = torch.tensor([[2.0 * int(b) - 1 for b in format(i, f"0{m}b")] for i in range(32)],
                            dtype=torch.float64) / m ** 0.5
    assert torch.allclose(E, expected)

test_pm_bits(pm_embedding)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %%
E_pm = pm_embedding(m).float()
for L in (4, 8, 16):
    ctx, y = lca.sample(lca.TaskSpec(m=m, L=L), 2000, seed=1)
    acc = (lca.OneLayerTransformer.from_weights(E_pm).predict(ctx) == y).double().mean().item()
    print(f"d = m = {m}, identity W_V, L = {L:2d}: accuracy {acc:.4f}")

# %% [raw]
# # BEGIN QUESTION
# name: q6
# points: 2

# %% [markdown]
# **Question 6 (code).** To read the geometry of any embedding, average the inner products by Hamming
# distance. Write `profile_by_distance(W_E, m)`, returning the float64 tensor of length $m+1$ whose
# entry $k$ is the mean of $\langle W_E(i), W_E(j)\rangle$ over all ordered pairs $(i,j)$ with
# $D_H(i,j)=k$ (entry 0 is the mean squared norm). You may use `lca.LatentSpace(m).distances()`.

# %% [raw]
# # BEGIN SOLUTION

# %%
def profile_by_distance(W_E, m):
    """float64 [m + 1]: mean inner product <W_E(i), W_E(j)> over pairs at Hamming distance k."""
    # BEGIN SOLUTION
    D = lca.LatentSpace(m).distances()
    G = W_E.double() @ W_E.double().T
    return torch.stack([G[D == k].mean() for k in range(m + 1)])
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_profile_identity(profile_by_distance):
    import torch
    p = profile_by_distance(torch.eye(8), 3)
    assert tuple(p.shape) == (4,), "length m + 1"
    assert torch.allclose(p.double(), torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)), \
        "orthonormal rows: norms 1, all other inner products 0"

test_profile_identity(profile_by_distance)  # IGNORE

# %%
# HIDDEN
def test_profile_brute_force(profile_by_distance):
    import torch
    g = torch.Generator().manual_seed(6)
    m = 4
    W = torch.randn(16, 3, generator=g, dtype=torch.float64)
    sums, counts = [0.0] * (m + 1), [0] * (m + 1)
    for i in range(16):
        for j in range(16):
            k = bin(i ^ j).count("1")
            sums[k] += float(W[i] @ W[j])
            counts[k] += 1
    expected = torch.tensor([s / c for s, c in zip(sums, counts)], dtype=torch.float64)
    assert torch.allclose(profile_by_distance(W, m).double(), expected)

test_profile_brute_force(profile_by_distance)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [raw]
# # BEGIN QUESTION
# name: q7
# points: 2

# %% [markdown]
# **Question 7 (code).** Write `gram_spectrum(W_E)`: the eigenvalues of the Gram matrix
# $G=W_EW_E^\top$ (shape `[V, V]`) in decreasing order, as a float64 tensor of length $V$.

# %% [raw]
# # BEGIN SOLUTION

# %%
def gram_spectrum(W_E):
    """float64 [V]: eigenvalues of W_E W_E^T, largest first."""
    # BEGIN SOLUTION
    W = W_E.double()
    return torch.linalg.eigvalsh(W @ W.T).flip(0)
    # END SOLUTION


# %% [raw]
# # END SOLUTION

# %% [raw]
# # BEGIN TESTS

# %%
def test_spectrum_small(gram_spectrum):
    import torch
    s = gram_spectrum(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0]]))
    assert tuple(s.shape) == (3,), "one eigenvalue per token"
    assert torch.allclose(s.double(), torch.tensor([4.0, 2.0, 0.0], dtype=torch.float64), atol=1e-6), \
        "largest first"

test_spectrum_small(gram_spectrum)  # IGNORE

# %%
# HIDDEN
def test_spectrum_svd(gram_spectrum):
    import torch
    g = torch.Generator().manual_seed(9)
    W = torch.randn(12, 5, generator=g, dtype=torch.float64)
    sv = torch.linalg.svdvals(W) ** 2
    expected = torch.cat([sv, torch.zeros(7, dtype=torch.float64)])
    assert torch.allclose(gram_spectrum(W).double(), expected, atol=1e-8)

test_spectrum_svd(gram_spectrum)  # IGNORE

# %% [raw]
# # END TESTS

# %% [raw]
# # END QUESTION

# %% [markdown]
# Now train a model whose embeddings must do the work: $d=16<V=32$, the value matrix frozen at the
# identity, $W_{KQ}$ and $W_E$ trained by Adam for 200 steps on the $\mathcal N_1$ task with $L=16$
# (a few seconds). The cell prints your profile and the top of your spectrum for the trained
# embeddings, and the same for your $\pm1$ embedding.

# %%
config = lca.TrainConfig(lca.TaskSpec(m=m, L=16), d=16, steps=200, train_V=False, WV_init="identity",
                         eval_every=0, n_eval=2048, seed=0)
trained = lca.fit(config, progress=False)
W_trained = trained.model.W_E.detach().double()
print(f"accuracy of the trained model: {trained.history['accuracy'][-1]:.4f}")
for label, W in (("trained", W_trained), ("+-1 embedding", pm_embedding(m))):
    print(f"{label:>14}: profile by distance 0..{m}:",
          " ".join(f"{v:7.2f}" for v in profile_by_distance(W, m).tolist()))
    print(f"{'':>14}  top 8 eigenvalues of the Gram matrix:",
          " ".join(f"{v:7.2f}" for v in gram_spectrum(W)[:8].tolist()))

# %% [raw]
# # BEGIN QUESTION
# name: q8
# manual: true
# points: 3

# %% [markdown]
# **Question 8 (written).** (a) Describe the profile of the trained embeddings: how does the mean
# inner product depend on the Hamming distance? (b) Suppose
# $\langle W_E(i),W_E(j)\rangle=b_0-b_1D_H(i,j)$ exactly, for all $i,j$. Writing $Z\in\{0,1\}^{V\times
# m}$ for the matrix of latent vectors, show that $D_H = \mathbf z\mathbf 1^\top+\mathbf 1\mathbf
# z^\top-2ZZ^\top$ with $\mathbf z=Z\mathbf 1$, and deduce $\operatorname{rank}(G)\le m+1$. Does the
# printed spectrum agree? (c) In two sentences: why does the identity value matrix work with these
# embeddings but fail with orthonormal ones?

# %% [raw]
# # BEGIN SOLUTION

# %% [markdown]
# (a) It decreases almost linearly with the distance, from about $18.9$ at distance 0 to about
# $-17.1$ at distance 5, with steps of about 7 between consecutive distances: nearby latents get
# aligned embeddings, distant ones opposite embeddings.
# (b) For 0/1 vectors, $D_H(i,j)=\sum_b (z_{ib}-z_{jb})^2=\mathbf z_i+\mathbf z_j-2\,z_i^\top z_j$,
# which is the stated matrix identity. Then $G=b_0\mathbf 1\mathbf 1^\top-b_1(\mathbf z\mathbf
# 1^\top+\mathbf 1\mathbf z^\top)+2b_1ZZ^\top$; every column of every term lies in the span of
# $\mathbf 1$ and the $m$ columns of $Z$, so $\operatorname{rank}(G)\le m+1$. The trained spectrum
# has $m=5$ large eigenvalues (about 103 to 123) and then drops by an order of magnitude (about 12,
# then 6 and below): close to low rank, not exactly. The $\pm1$ embedding has the exactly affine
# profile $1-2k/m$ and a Gram matrix of rank exactly $m$ (its columns are orthogonal, each of squared
# norm $V/m=6.4$, so the all-ones direction drops out).
# (c) With $W_V=I$ the logit of $k$ is $W_E(k)^\top h$, the alignment of $k$'s embedding with the
# mean context embedding. With embeddings that copy the latent space the mean of the neighbours of
# $y$ points towards $y$ (a per-bit majority vote), while orthonormal embeddings make every token
# orthogonal to the target, so only the value matrix can supply the association.

# %% [raw]
# # END SOLUTION

# %% [raw]
# # END QUESTION
