# %% tags=["remove-cell"]
# Colab setup: install the course package (runs only on Google Colab)
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "lca[llm] @ git+https://github.com/elephants-course/elephants@v0.1.0"], check=True)

# %% [markdown]
# # The value matrix is an associative memory
#
# In the latent concept association task the context only holds tokens *similar* to the target. The
# paper {cite}`jiang2024elephants` argues that the value matrix turns the attention output $h$, a
# vector of neighbours, into the token they surround: an associative memory storing "my neighbours
# $\to$ me" as outer products, like correlation-matrix memories {cite}`kohonen1972correlation` and
# the memory view of transformer weights {cite}`bietti2023birth`.
#
# **In this chapter you will**
#
# - build the constructed value matrix $W_{V}^\star=W_{E}^\top A\,W_{E}$ and compute how often it fails;
# - prove that $W_{V}=I$ fails with orthonormal embeddings, and that a $\pm1$ embedding rescues it;
# - derive the first gradient step on $W_{V}$ from zero and see that it builds the construction;
# - reproduce the paper's Figure 3a (trained $W_{V}$ against $W_{V}=I$) and swap a trained $W_{V}$ for
#   the construction.

# %% tags=["hide-input"]
import math
from fractions import Fraction

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

import lca
from lca import glue, report, value_matrix
from lca.value_matrix import (
    check_adam_first_step,
    check_hebbian_value_matrix,
    check_sphere_error_random_ties,
)
from lca.model import OneLayerTransformer, init_embedding
from lca.train import TrainConfig, sweep
from lca.widgets import explorer

torch.manual_seed(0)
device = lca.default_device()
torch.set_num_threads(1)


def orthonormal(V, seed=0):
    """Orthonormal embeddings [V, V] (float64) from a seeded QR decomposition."""
    return init_embedding(V, V, "orthonormal", torch.Generator().manual_seed(seed),
                          dtype=torch.float64)


def gaussian(V, d, seed=0):
    """Gaussian embeddings [V, d] with N(0, 1/d) entries (float64), as at initialisation."""
    return init_embedding(V, d, "gaussian", torch.Generator().manual_seed(seed)).double()


# %% [markdown]
# ## Definitions
#
# In the model of the previous chapter token $i$ has the embedding $W_{E}(i)$ (row $i$ of
# $W_{E}\in\mathbb{R}^{V\times d}$), $h=\sum_{l=1}^La_lW_{E}(x_l)$ and $f=W_{E}W_{V} h$ (tied unembedding).
# With $c_j=\sum_{l:\,x_l=j}a_l$, $h=W_{E}^\top c$; with $W_{KQ}=0$, $a_l=1/L$ and $c$ holds the token
# frequencies of the context.
#
# ```{prf:definition} Neighbourhood matrix and constructed value matrix
# :label: def-wv-construction
#
# The *neighbourhood matrix* of a task is $A\in\{0,1\}^{V\times V}$ with $A_{ij}=1$ iff token $j$
# lies in $\mathcal{N}(i)$ (`family.mask(m)` in `lca`). The *constructed value matrix* is
#
# $$
# W_{V}^\star=\sum_{i=0}^{V-1}W_{E}(i)\Big(\sum_{j\in\mathcal{N}(i)}W_{E}(j)\Big)^{\!\top}
# =W_{E}^\top A\,W_{E}\ \in\mathbb{R}^{d\times d},
# $$
#
# an outer-product memory ({doc}`01_associative_memory`) whose key for target $i$ is the sum of its
# neighbours' embeddings and whose value is $i$'s own embedding. Any weight matrix can replace $A$
# in `lca.value_matrix.value_matrix_construction(W_E, mask)`.
# ```
#
# ```{prf:definition} Strict accuracy
# :label: def-wv-strict-accuracy
#
# A prediction is *correct* when the target's logit is strictly larger than every other logit; ties
# count as errors. The constructed and identity models of this chapter are scored so
# (`lca.value_matrix.strict_correct`), trained models by the usual argmax (exact ties do not occur).
# ```
#
# ## Look at it first
#
# With $m=3$ ($V=8$), $\mathcal{N}_1$ (Hamming distance 1) and orthonormal embeddings, we put $W_{V}^\star$ into
# a `OneLayerTransformer` with $W_{KQ}=0$ and read the logits on one sampled context.

# %% tags=["hide-input"]
spec_small = lca.TaskSpec(m=3, L=6)
A_small = spec_small.neighbourhood.mask(spec_small.m)
E_small = orthonormal(spec_small.V, seed=1)
W_star_small = value_matrix.value_matrix_construction(E_small, A_small)
model_small = OneLayerTransformer.from_weights(E_small, W_V=W_star_small)   # W_KQ = 0
ctx, y = lca.sample(spec_small, 1, seed=3)
with torch.no_grad():
    f_small = model_small(ctx)[0]
bits = spec_small.space.latents

def bitstring(t):
    return "".join(map(str, bits[t].tolist()))


print(f"target y = {int(y)} (bits {bitstring(int(y))}); context:",
      ", ".join(f"{t} ({bitstring(t)})" for t in ctx[0].tolist()))
counts_small = torch.bincount(ctx[0], minlength=spec_small.V)
share = [Fraction(int(A_small[k].long() @ counts_small), spec_small.L) for k in range(spec_small.V)]
gap_small = max(abs(float(f_small[k]) - float(share[k])) for k in range(spec_small.V))
print("max over k of |f_k - share of the context in N(k)|: " + report.bound(gap_small, 1e-12))

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch4-example", "caption": "The constructed $W_V^\\star$ at $m=3$ on one sampled context: the neighbourhood matrix $A$ with the target's row and the context tokens' columns outlined (left), and the model's logits (right)."}, "image": {"alt": "Left, an 8 by 8 black and white matrix with one row outlined in vermillion and three columns outlined in blue; right, a bar chart of eight logits where the target's vermillion bar reaches 1 and three sky-blue bars reach two thirds."}}
value_matrix.plot_wv_example(A_small, f_small, int(y), ctx[0])
plt.show()

# %% tags=["hide-cell"]
print("token  logit f_k  share of context in N(k) (exact)")
for k in range(spec_small.V):
    print(f"{k:5d}  {round(float(f_small[k]), 4) + 0.0:9.4f}  {str(share[k]):>9s}")

# %% [markdown]
# Every logit is the share of the context lying in that token's neighbourhood; the target gets the
# full share, 1, and a rival ties with it only if the whole context also lies in its neighbourhood.
#
# ## The results
#
# ```{prf:theorem} The construction reads off neighbourhood shares
# :label: ch4-wv-construction
#
# For any embedding, any weights $A$ and any attention weights, the logits of the model with
# $W_{V}=W_{V}^\star$ are $f=G\,A\,G\,c$, where $G=W_{E}W_{E}^\top$. With orthonormal embeddings ($G=I$,
# possible when $d\ge V$), $f=Ac$: with uniform attention, $f_k$ is the share of the context that
# lies in $\mathcal{N}(k)$. In the noise-free task $f_y=1\ge f_k$ for all $k$.
# ```
#
# ````{dropdown} Proof
# $h=W_{E}^\top c$ and $W_{V}^\star=W_{E}^\top AW_{E}$ give $f=W_{E}W_{E}^\top AW_{E}W_{E}^\top c=GAGc$. With
# $G=I$, $f_k=\sum_jA_{kj}c_j=\sum_{j\in\mathcal{N}(k)}c_j$; without noise every context token lies in
# $\mathcal{N}(y)$, so $f_y=1$, and a share is at most 1. Details: {prf:ref}`thm-wv-construction`.
# ````
#
# So the model errs exactly when the whole context also fits inside the neighbourhood of some
# other token $k$; for $\mathcal{N}_1$ only tokens at distance 2 share neighbours (exactly two,
# {prf:ref}`lem-wv-common-neighbours`).
#
# ```{prf:theorem} Error probability of the construction
# :label: ch4-wv-error
#
# Assume orthonormal embeddings, uniform attention and $W_{V}=W_{V}^\star$ built from the task's own
# neighbourhood.
#
# 1. Noise-free task, $\mathcal{N}=\mathcal{N}_1$, $m\ge2$: the model errs iff the context uses at most two distinct
#    tokens, and
#    $P(\text{error})=\binom m2\big(\frac2m\big)^L-m(m-2)\,m^{-L}\le\binom m2\big(\frac2m\big)^L$.
# 2. Any neighbourhood, noise allowed: with $\pi_\pm$ the probabilities that one context token lies
#    in $\mathcal{N}(k)\setminus\mathcal{N}(y)$ (for $+$) or in $\mathcal{N}(y)\setminus\mathcal{N}(k)$ (for $-$), and
#    $\theta_{yk}=1-\pi_+-\pi_-+2\sqrt{\pi_+\pi_-}$ when $\pi_+<\pi_-$ (else 1),
#    $P(\text{error})\le\frac1V\sum_y\min\big(1,\sum_{k\ne y}\theta_{yk}^L\big)$.
# 3. If $\mathcal{N}(y)\subseteq\mathcal{N}(k)$ for some $k\ne y$ (noise-free), the model errs on every context of
#    $y$ and the bound is 1.
# ```
#
# ````{dropdown} About the proof
# The proof, and an exact formula for any noise-free neighbourhood (a sum over the sets of
# distinct context tokens that fit in some rival's neighbourhood), are in the appendix:
# {prf:ref}`thm-wv-error-bound`. Part 2 is a Chernoff bound on the random walk $f_k-f_y$ followed
# by a union bound over rivals; without noise, $\theta_{yk}=|\mathcal{N}(y)\cap\mathcal{N}(k)|/|\mathcal{N}(y)|$, which is $2/m$
# for the $\binom m2$ rivals at distance 2 under $\mathcal{N}_1$ and gives back part 1's bound.
# ````
#
# ### Check it
#
# The folded table compares, for nine tasks, the closed form, the enumeration (`value_matrix.wv_error_exact`),
# the bound (`value_matrix.wv_error_bound`) and Monte Carlo on 20,000 contexts.

# %% tags=["hide-input", "hide-output"]
N_MC = 20_000
checks = [
    ("sphere r=1", lca.TaskSpec(5, 4)),
    ("sphere r=1", lca.TaskSpec(5, 8)),
    ("sphere r=1", lca.TaskSpec(8, 8)),
    ("sphere r=1", lca.TaskSpec(5, 16)),
    ("ball r=2", lca.TaskSpec(4, 8, lca.hamming_ball(2))),
    ("ball r=2", lca.TaskSpec(5, 16, lca.hamming_ball(2))),
    ("sphere r=2", lca.TaskSpec(5, 10, lca.hamming_sphere(2))),
    ("cluster k=2", lca.TaskSpec(5, 16, lca.cluster(2))),
    ("sphere r=1, noise 0.3", lca.TaskSpec(5, 16, noise=0.3)),
]
print("exact values (closed form, enumeration, bound) to 10 significant digits; Monte Carlo with "
      "its standard error")
print(f"{'task':22s} {'m':>2s} {'L':>3s} {'closed form':>16s} {'enumerated':>16s} {'bound':>16s} "
      f"{'Monte Carlo':>11s} {'+-':>6s}")
z_scores = []
for label, spec in checks:
    closed = (report.exact(value_matrix.wv_error_exact_sphere1(spec.m, spec.L))
              if label == "sphere r=1" else "-")
    p_exact = value_matrix.wv_error_exact(spec) if spec.noise == 0 else None
    mc = 1 - value_matrix.construction_accuracy(spec, n=N_MC, seed=11)
    se = math.sqrt(max(mc * (1 - mc), 1e-12) / N_MC)
    if p_exact is not None:  # distance in standard errors of a binomial proportion at the exact p
        z_scores.append(abs(mc - p_exact) / math.sqrt(p_exact * (1 - p_exact) / N_MC))
    exact = "-" if p_exact is None else report.exact(p_exact)
    print(f"{label:22s} {spec.m:2d} {spec.L:3d} {closed:>16s} {exact:>16s} "
          f"{report.exact(min(1.0, value_matrix.wv_error_bound(spec))):>16s} {mc:11.4f} {se:6.4f}")
z_max = float(report.sig(max(z_scores), 2))
glue("wv_z_max", z_max, display=False)

# %% tags=["hide-cell"]
print(f"largest |Monte Carlo - exact| over the {len(z_scores)} exact rows: {z_max} standard errors")

# %% [markdown]
# Closed form and enumeration agree to all ten printed digits, no Monte Carlo estimate is more than
# {glue:text}`wv_z_max` standard errors off, and the bound is above every exact value: almost exact
# for $\mathcal{N}_1$, loose for clusters, where rivals share all but one neighbour (see below). The second
# folded cell checks that the model computes $Ac$ in two different orthonormal bases.

# %% tags=["hide-cell"]
spec_chk = lca.TaskSpec(5, 12, noise=0.2)
ctx_chk, y_chk = lca.sample(spec_chk, 512, seed=5)
freq = torch.zeros(512, spec_chk.V, dtype=torch.float64).scatter_add_(
    1, ctx_chk, torch.full(ctx_chk.shape, 1.0 / spec_chk.L, dtype=torch.float64))
A_chk = spec_chk.neighbourhood.mask(spec_chk.m).double()
for seed in (0, 1):
    E = orthonormal(spec_chk.V, seed)
    mdl = OneLayerTransformer.from_weights(E, W_V=value_matrix.value_matrix_construction(E, A_chk))
    with torch.no_grad():
        gap = float((mdl(ctx_chk) - freq @ A_chk.T).abs().max())
    print(f"orthonormal basis {seed}: max |model logits - A c| {report.bound(gap, 1e-12)}")

# %% [markdown]
# ### Error against context length, and random embeddings
#
# The error falls geometrically in $L$, at the rate $2/m$ for $\mathcal{N}_1$ ({numref}`fig-ch4-construction`, left;
# Monte Carlo on 4,000 contexts, zeros on the bottom edge). Gaussian embeddings ($\mathcal N(0,1/d)$,
# right: $L=64$, three draws per $d$) add cross-talk to $GAGc$, gone as $d\to\infty$ ({prf:ref}`prop-wv-gaussian-limit`).

# %% tags=["hide-input"]
Ls = [2, 4, 6, 8, 12, 16, 24, 32]
curve_specs = {"sphere $r=1$, $m=5$": lca.TaskSpec(5, 2),
               "sphere $r=1$, $m=8$": lca.TaskSpec(8, 2),
               "ball $r=2$, $m=4$": lca.TaskSpec(4, 2, lca.hamming_ball(2))}
curves = {}
for label, base in curve_specs.items():
    specs = [base.with_(L=L) for L in Ls]
    curves[label] = {
        "exact": [value_matrix.wv_error_exact(s) for s in specs],
        "bound": [min(1.0, value_matrix.wv_error_bound(s)) for s in specs],
        "monte_carlo": [1 - value_matrix.construction_accuracy(s, n=4000, seed=21) for s in specs]}
D_GRID = [8, 16, 32, 64, 128, 256]
EMB_SEEDS = (0, 1, 2)
rand_acc, rand_ref = {}, {}
for m in (5, 8):
    spec = lca.TaskSpec(m, 64)
    rand_acc[f"$m={m}$"] = [[value_matrix.construction_accuracy(spec, gaussian(spec.V, d, s),
                                                               n=1024, seed=31)
                            for s in EMB_SEEDS] for d in D_GRID]
    rand_ref[f"$m={m}$"] = value_matrix.construction_accuracy(spec, n=1024, seed=31)

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch4-construction", "caption": "Left: error probability of the constructed model against the context length $L$ with orthonormal embeddings, for three tasks. Right: its accuracy against $d$ with Gaussian embeddings (line: mean of three draws, band: their range), next to the orthonormal value (dotted)."}, "image": {"alt": "Two panels. Left, on a logarithmic vertical axis, three straight falling lines of exact error probability against L from 2 to 32, with dashed bound lines almost on top of them and Monte Carlo circles on them. Right, two S-shaped curves of accuracy against d from 8 to 256 that rise from near 0 to 1, the m equal 8 curve to the right of the m equal 5 curve, with dotted horizontal lines at 1."}}
value_matrix.plot_wv_construction(Ls, curves, D_GRID, rand_acc, rand_ref)
plt.show()

# %% tags=["hide-input", "hide-output"]
for label, c in curves.items():
    print(f"{label}   (exact and bound: 10 significant digits; Monte Carlo: 4,000 contexts)")
    print(f"  {'L':>3s} {'exact':>16s} {'bound':>16s} {'Monte Carlo':>12s}")
    for j, L in enumerate(Ls):
        print(f"  {L:3d} {report.exact(c['exact'][j]):>16s} {report.exact(c['bound'][j]):>16s} "
              f"{c['monte_carlo'][j]:12.4f}")
print("accuracy of W_V* with Gaussian embeddings (mean [min, max] over 3 draws), L = 64")
print(f"{'d':>5s} " + " ".join(f"{k:>22s}" for k in rand_acc))
for i, d in enumerate(D_GRID):
    row = []
    for vals in rand_acc.values():
        v = vals[i]
        row.append(f"{sum(v) / len(v):.4f} [{min(v):.4f}, {max(v):.4f}]")
    print(f"{d:5d} " + " ".join(f"{r:>22s}" for r in row))
print("orthonormal: " + ", ".join(f"{k}: {v:.4f}" for k, v in rand_ref.items()))
RELIABLE = 0.95
for m in (5, 8):  # the smallest d of the grid at which every draw reaches RELIABLE
    d_ok = next(d for d, v in zip(D_GRID, rand_acc[f"$m={m}$"]) if min(v) >= RELIABLE)
    print(f"m = {m} (V = {2**m}): every draw at least {RELIABLE} from d = {d_ok} = {d_ok / 2**m:g} V")
    glue(f"wv_rand_d{m}", d_ok, display=False)
    glue(f"wv_rand_ratio{m}", f"{d_ok / 2**m:g}", display=False)
glue("wv_reliable", RELIABLE, display=False)

# %% [markdown]
# Random embeddings need $d$ of the order of $V$: every draw reaches accuracy {glue:text}`wv_reliable`
# only from $d$ = {glue:text}`wv_rand_d5` ({glue:text}`wv_rand_ratio5`$\,V$) at $m=5$ and {glue:text}`wv_rand_d8`
# ({glue:text}`wv_rand_ratio8`$\,V$) at $m=8$, while trained models do well with $d=16$ (below): the
# embeddings must be shaped too, the subject of the next chapter.
#
# ## The identity value matrix
#
# ```{prf:proposition} The identity fails with orthonormal embeddings
# :label: ch4-identity-fails
#
# With orthonormal embeddings and $W_{V}=I$, for **any** key-query matrix, the logits are $f=c$ and
# the accuracy is exactly $0$, whatever rule breaks ties.
# ```
#
# ````{dropdown} Proof
# $f=W_{E}W_{E}^\top c=c$. The target never appears in its own context, so $f_y=c_y=0$, while the first
# context token has $f_{x_1}\ge a_1>0$ (softmax weights are positive). See also
# {prf:ref}`prop-identity-fails`.
# ````
#
# The model can only repeat a context token, never the answer. It needs embeddings in which a token
# resembles its neighbours, such as $e_z=(2z-\mathbf{1})/\sqrt m$ ($d=m$, $e_z^\top e_{z'}=1-2D_{\mathrm{H}}(z,z')/m$).
#
# ```{prf:proposition} With the $\pm1$ embedding, $W_{V}=I$ is a majority vote
# :label: ch4-pm1-majority
#
# With $e_z=(2z-\mathbf{1})/\sqrt m$, $W_{V}=I$ and uniform attention, the model predicts, bit by bit, the
# value taken by the majority of the context tokens. In the noise-free $\mathcal{N}_1$ task it is right iff
# no bit is flipped by half of the context tokens or more; its accuracy is exactly
# $P(\max_in_i<L/2)$ for $(n_1,\dots,n_m)$ multinomial with $L$ trials and equal probabilities, which
# is $0$ for $m\le2$ and tends to 1 as $L\to\infty$ for $m\ge3$.
# ```
#
# Proof and exact formula (`value_matrix.identity_pm1_accuracy`): {prf:ref}`prop-pm1-majority`. The
# folded cells check both propositions. This code encodes the bits linearly in $d=m\ll V$
# dimensions; training can find such embeddings (next chapter), as Figure 3a below shows.

# %% tags=["hide-input", "hide-output"]
print("W_V = I, orthonormal embeddings (Monte Carlo, 4096 contexts each):")
id_acc = []
for spec in (lca.TaskSpec(5, 8), lca.TaskSpec(5, 64, noise=0.5), lca.TaskSpec(6, 16, lca.cluster(2))):
    id_acc.append(value_matrix.identity_accuracy(spec, n=4096, seed=2))
    print(f"  m={spec.m} L={spec.L:3d} {spec.neighbourhood} noise={spec.noise:.1f}: "
          f"accuracy {id_acc[-1]:.4f}")
print("W_V = I, centred +-1 embedding, noise-free N_1: exact vs Monte Carlo (20,000 contexts)")
pm1_z = []
for m, L in ((2, 9), (3, 8), (5, 8), (5, 16), (8, 8), (8, 64)):
    spec = lca.TaskSpec(m, L)
    mc = value_matrix.identity_accuracy(spec, value_matrix.pm1_embedding(m), n=N_MC, seed=4)
    p_ex = value_matrix.identity_pm1_accuracy(m, L)
    se_ex = math.sqrt(p_ex * (1 - p_ex) / N_MC)
    pm1_z.append(abs(mc - p_ex) / se_ex if se_ex > 0 else (0.0 if mc == p_ex else math.inf))
    print(f"  m={m} L={L:2d}: exact {report.exact(p_ex):>12s}   "
          f"Monte Carlo {mc:.4f} +- {math.sqrt(max(mc * (1 - mc), 1e-12) / N_MC):.4f}")

# %% tags=["hide-cell"]
print(f"W_V = I: largest accuracy with orthonormal embeddings {max(id_acc):.4f}; +-1 code: largest "
      f"|Monte Carlo - exact| {report.sig(max(pm1_z), 2)} standard errors")

# %% [markdown]
# ## What one gradient step learns
#
# Why would training produce $W_{V}^\star$? From $W_{V}=0$ the softmax is uniform and the gradient is explicit.
#
# ```{prf:theorem} One gradient step builds the construction
# :label: ch4-one-step
#
# Assume $W_{KQ}=0$, $W_{V}=0$, fixed embeddings and the population cross-entropy. Let
# $\bar P[y,x]$ be the expected share of token $x$ in a context of target $y$ (the context law of
# the task), $\bar e$ the mean embedding and $\bar h=\mathbb E[h]$. After one step of size $\eta$,
#
# $$
# W_{V}^{(1)}=\frac\eta V\,W_{E}^\top\Big(I-\frac{\mathbf{1}\mathbf{1}^\top}V\Big)\bar P\,W_{E}
# =\frac\eta V\,W_{E}^\top\bar P\,W_{E}-\eta\,\bar e\,\bar h^\top ,
# $$
#
# for every embedding. With orthonormal embeddings the second term adds the same number to every
# logit. In the noise-free task with $|\mathcal{N}(y)|=n$ for all $y$, $\bar P=A/n$, so
# $W_{V}^{(1)}=\frac{\eta}{nV}W_{V}^\star+(\text{shift})$: one step makes exactly the predictions of the
# construction. With uniform noise of rate $\varepsilon$, the step adds a penalty
# $-\frac{\eta\varepsilon}{V(V-1)}c_k$ on tokens present in the context.
# ```
#
# Proof: {prf:ref}`thm-one-step-wv`. `value_matrix.one_step_WV(W_E, spec, lr)` evaluates the formula
# from the task's law; the folded cell checks it three ways.

# %% tags=["hide-input", "hide-output"]
print("1. exact population gradient (enumerated task) vs closed form")
for spec in (lca.TaskSpec(3, 4), lca.TaskSpec(3, 3, noise=0.2), lca.TaskSpec(3, 3, lca.hamming_ball(2))):
    for name, E in (("orthonormal", orthonormal(spec.V, 2)), ("Gaussian d=5", gaussian(spec.V, 5, 2))):
        mdl = OneLayerTransformer.from_weights(E, W_V=torch.zeros(E.shape[1], E.shape[1],
                                                                  dtype=torch.float64))
        lca.train.exact_population_loss(mdl, spec).backward()
        diff = float((-mdl.W_V.grad - value_matrix.one_step_WV(E, spec)).abs().max())
        print(f"  m={spec.m} L={spec.L} {str(spec.neighbourhood):18s} noise={spec.noise:.1f} {name:13s}"
              f" rows={lca.task.enumerate_task(spec)[0].shape[0]:5d}  max |autograd - formula| "
              f"{report.bound(diff, 1e-12)}")

print("2. sampled batch vs population gradient (Chebyshev tolerance, delta = 1e-3)")
spec = lca.TaskSpec(5, 16, noise=0.2)
E = orthonormal(spec.V, 3)
for n in (2_000, 20_000):
    ctx_b, y_b = lca.sample(spec, n, seed=8)
    mdl = OneLayerTransformer.from_weights(E, W_V=torch.zeros(spec.V, spec.V, dtype=torch.float64))
    torch.nn.functional.cross_entropy(mdl(ctx_b), y_b).backward()
    err = float((-mdl.W_V.grad - value_matrix.one_step_WV(E, spec)).norm())
    r_n = value_matrix.one_step_WV_sampling_rms(E, spec, n)
    print(f"  n={n:6d}: ||batch - population||_F = {report.sig(err, 3)}, r_n = {report.exact(r_n)}, "
          f"tolerance r_n/sqrt(1e-3) = {report.exact(r_n / math.sqrt(1e-3))}, "
          f"within: {err <= r_n / math.sqrt(1e-3)}")
print(f"  (size of the population gradient: "
      f"||g||_F = {report.exact(float(value_matrix.one_step_WV(E, spec).norm()))})")


def shift_residual(E, spec, mask=None):
    """max over contexts and tokens of |centred one-step logits - s * centred construction logits|,
    relative to the spread of the one-step logits (s fitted by least squares)."""
    ctx_s, _ = lca.sample(spec, 512, seed=9)
    W1 = value_matrix.one_step_WV(E, spec)
    Ws = value_matrix.value_matrix_construction(E, spec.neighbourhood if mask is None else mask)
    out = []
    for W in (W1, Ws):
        mdl = OneLayerTransformer.from_weights(E, W_V=W)
        with torch.no_grad():
            f = mdl(ctx_s)
        out.append(f - f.mean(1, keepdim=True))
    f1, fs = out
    s = float((f1 * fs).sum() / (fs * fs).sum())
    return float((f1 - s * fs).abs().max() / f1.abs().max()), s


print("3. one-step logits = scale x construction logits + per-context shift?")
for label, spec, E in (
        ("noise-free N_1, orthonormal E", lca.TaskSpec(5, 16), orthonormal(32, 4)),
        ("noise-free ball r=2, orthonormal E", lca.TaskSpec(5, 16, lca.hamming_ball(2)),
         orthonormal(32, 4)),
        ("noise-free N_1, Gaussian E, d=12", lca.TaskSpec(5, 16), gaussian(32, 12, 4)),
        ("N_1 + noise 0.5, orthonormal E", lca.TaskSpec(5, 16, noise=0.5), orthonormal(32, 4))):
    res, s = shift_residual(E, spec)
    # a residual of rounding size prints as a bound; a real one as 3 significant digits
    res_txt = report.bound(res, 1e-10) if res < 1e-10 else f"= {report.sig(res, 3)}"
    print(f"  {label:36s} relative residual {res_txt:8s}  fitted scale {report.sig(s, 4)}")
print(f"  predicted scale eta/(nV) for N_1, m=5: 1/160 = {report.exact(1 / (5 * 32))}; for the ball "
      f"r=2: 1/480 = {report.exact(1 / (15 * 32))}")

# %% [markdown]
# The population gradient matches autograd to rounding error, for orthonormal *and* Gaussian
# embeddings (part 1 of the theorem holds for any embedding).
#
# ````{dropdown} The three checks of the one-step formula, and what they show
# 1. Against autograd on the **exact population loss**: for $m=3$ and $L=4$ the task has few enough
#    contexts to enumerate (`lca.task.enumerate_task`), so the loss is an exact weighted sum.
# 2. Against autograd on a **sampled batch**. The batch gradient is an average of $n$ independent
#    per-example gradients, so its squared Frobenius distance to the population gradient has mean
#    $r_n^2=(\mathbb E\|\bar e-W_{E}(y)\|^2\|h\|^2-\|g\|_F^2)/n$, which we compute exactly from the law
#    (`value_matrix.one_step_WV_sampling_rms`, {prf:ref}`lem-one-step-sampling`). By Chebyshev's
#    inequality the distance exceeds $r_n/\sqrt\delta$ with probability at most $\delta$; we use
#    $\delta=10^{-3}$ as the tolerance.
# 3. The **reading** as construction plus shift: after removing each context's mean logit, the
#    one-step logits must be a fixed multiple of the construction's.
#
# The sampled gradients land inside
# their tolerance, which shrinks like $1/\sqrt n$. For the reading as "construction plus shift",
# the hypotheses matter: with orthonormal embeddings and a noise-free regular neighbourhood the
# residual is zero (it prints as a bound, $<10^{-10}$, because its digits are rounding noise) and
# the fitted scale is $\eta/(nV)$; with Gaussian embeddings in $d<V$ the
# residual is large, because $G\ne I$ mixes the stored associations and the shift term no longer
# moves all logits equally; with noise the step is the construction *minus* a penalty on tokens
# present in the context, so the residual is small but not zero.
# ````
#
# (fig-paper-3a)=
#
# ## The paper's figure: trained $W_{V}$ against $W_{V}=I$
#
# Figure 3a of the paper compares one-layer models with a trained value matrix and with one fixed to
# the identity, at $L=64$ (and $L=128$). The paper's data distribution is not available, and on the
# plain $\mathcal{N}_1$ task both variants solve the task (panel (c) of {numref}`fig-ch4-fig3a`), so **this
# course takes** the $\mathcal{N}_1$ task with noise rate $\varepsilon=0.5$: half of every context is
# uninformative, the Bayes-optimal accuracy is still essentially 1, and a gap appears.
#
# ````{dropdown} Training settings
# The course defaults of `lca.train` (Adam, learning rate 0.01, $W_{KQ}$ and $W_{E}$ trained, a
# trained $W_{V}$ starts at 0), $d=16$, batches of 128 fresh contexts, five seeds per bar and 300
# steps, the budget that keeps the chapter within its minute. Noise tokens are uniform over the
# other tokens. The folded tables print accuracies as mean $\pm$ standard error over the seeds
# (`lca.report.pm`), because further digits change with the seed and the CPU.
# ````

# %% tags=["hide-input"]
MS = (5, 6, 7, 8)           # latent dimensions
NOISE = 0.5                 # noise rate of the task of panels (a) and (b)
D_FIG = 16                  # embedding dimension (d < V for every m: embeddings must be trained)
STEPS = 300                 # Adam steps (the budgets section below trains up to 16 times longer)
BATCH = 128                 # fresh examples per step
SEEDS = (0, 1, 2, 3, 4)     # independent runs per bar
VARIANTS = {"trained W_V": {}, "W_V = I (frozen)": {"train_V": False, "WV_init": "identity"}}
PANELS = {"(a) L = 64, noise 0.5": lambda m: lca.TaskSpec(m, 64, noise=NOISE),
          "(b) L = 128, noise 0.5": lambda m: lca.TaskSpec(m, 128, noise=NOISE),
          "(c) L = 64, noise-free": lambda m: lca.TaskSpec(m, 64)}


def wv_ablation(task_of, ms=MS, d=D_FIG, steps=STEPS, batch=BATCH, seeds=SEEDS):
    """Train `VARIANTS x seeds` as one ensemble per m; return {variant: [[accuracy per seed] per m]}
    on the 2,048 fixed evaluation contexts."""
    out = {v: [] for v in VARIANTS}
    for m in ms:
        cfg = TrainConfig(task=task_of(m), d=d, steps=steps, batch_size=batch, lr=0.01,
                          eval_every=0, n_eval=2048, device=device)
        res = sweep(cfg, seeds=seeds, variants=VARIANTS, progress=False)
        for v in VARIANTS:
            out[v].append([a for (lab, _), a in zip(res.labels, res.history["accuracy"][-1]) if lab == v])
    return out


fig3a = {panel: wv_ablation(task_of) for panel, task_of in PANELS.items()}
SHOW = {"trained W_V": "trained $W_V$", "W_V = I (frozen)": "$W_V=I$ (frozen)"}
TITLES = {"(a) L = 64, noise 0.5": "(a) $L=64$, noise 0.5",
          "(b) L = 128, noise 0.5": "(b) $L=128$, noise 0.5",
          "(c) L = 64, noise-free": "(c) $L=64$, noise-free"}

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch4-fig3a", "caption": "The paper's Figure 3a in the course's setting: test accuracy of models with a trained $W_V$ and with $W_V$ fixed to the identity after 300 steps, against $m$, on the noisy task at $L=64$ and $L=128$ and on the noise-free task (bars: mean of five seeds; whiskers: their range; dots: each seed)."}, "image": {"alt": "Three panels of grouped bar charts sharing a vertical accuracy axis, one pair of bars for each m from 5 to 8. In the two noisy panels the blue trained bars are near 1 and the orange identity bars are lower, more so at L equal 64; in the noise-free panel both bars are at 1."}}
value_matrix.plot_wv_bars(MS, {TITLES[p]: {SHOW[v]: a for v, a in r.items()} for p, r in fig3a.items()})
plt.show()


# %% tags=["hide-input", "hide-output"]
def mean_se(values):
    """Mean and standard error (sample standard deviation / sqrt(n)) of per-seed values."""
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std() / len(values) ** 0.5)


def pm_text(mean, se):
    """lca.report.pm, with 4 decimals when every seed gave the same value (se = 0)."""
    return report.pm(mean, se) if se > 0 else f"{mean:.4f} ± 0"


gaps3a = {}
for panel, variants in fig3a.items():
    print(f"{panel}   (accuracy, mean ± standard error over {len(SEEDS)} seeds; gap paired by seed)")
    print(f"  {'m':>2s} " + " ".join(f"{v:>18s}" for v in variants) + f" {'gap':>16s}")
    gaps3a[panel] = []
    for i, m in enumerate(MS):
        runs = [variants[v][i] for v in variants]
        gap = mean_se([a - b for a, b in zip(*runs)])
        gaps3a[panel].append(gap)
        print(f"  {m:2d} " + " ".join(f"{pm_text(*mean_se(r)):>18s}" for r in runs) + f" {pm_text(*gap):>16s}")

# %% tags=["hide-cell"]
noisy = [p for p in PANELS if "noise-free" not in p]
print("noisy task, gap above 2 standard errors at every m and L: "
      + str(all(g > 2 * e for p in noisy for g, e in gaps3a[p])))
print("gap at L = 64 larger than at L = 128 by more than 2 standard errors, for every m: " + str(all(
    g64 - g128 > 2 * math.hypot(e64, e128) for (g64, e64), (g128, e128) in zip(*(gaps3a[p] for p in noisy)))))
plain_min = min(min(a) for v in fig3a["(c) L = 64, noise-free"].values() for a in v)
print(f"noise-free task: every run of both variants at accuracy >= {math.floor(plain_min * 100) / 100:.2f}")
glue("wv_plain_min", math.floor(plain_min * 100) / 100, display=False)
bayes_min = min(lca.bayes_accuracy(PANELS[p](m), n=2048, seed=5) for p in noisy for m in MS)
print(f"Bayes-optimal accuracy of the noisy task (2048 contexts), smallest over m and L: {bayes_min:.4f}")

# %% [markdown]
# After 300 steps the trained value matrices are close to the Bayes-optimal accuracy of 1. On the
# noisy task (a, b) the frozen identity stays below by more than two standard errors at every $m$
# (folded checks), more so at $L=64$: a longer context averages out noise, which helps a per-bit
# majority vote ({prf:ref}`ch4-pm1-majority`) more than a model already near 1.
#
# ### How long to train
#
# Do the frozen models just learn more slowly? `bench/04_budget.py` reruns panels (a)-(c) for up to
# 16 times the budget (4,800 steps) into `lca/data/value_matrix_budget.json`, read here.

# %% tags=["hide-input"]
budget = report.load_stored("value_matrix_budget.json", "bench/04_budget.py")
glue("wv_bench_minutes", round(budget["cpu_seconds"] / 60), display=False)
steps_b = budget["fig3a"]["L=64,m=5"]["steps"]
shown = [s for s in steps_b if s in (300, 600, 1200, 2400, 4800)]
idx = [steps_b.index(s) for s in shown]
labels = list(VARIANTS)
budget_gaps = {}
for L in (64, 128):
    budget_gaps[f"L = {L}, noise 0.5"] = {
        f"m = {m}": [[a - b for a, b in zip(*(budget["fig3a"][f"L={L},m={m}"][v][i] for v in labels))]
                     for i in idx] for m in MS}
budget_show = {f"$L={L}$, noise 0.5": {f"${k.replace(' ', '')}$": g
                                        for k, g in budget_gaps[f"L = {L}, noise 0.5"].items()}
               for L in (64, 128)}

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch4-budget", "caption": "Accuracy gap between a trained $W_V$ and $W_V=I$ on the noisy task against the number of Adam steps, read from the stored budget study (line: mean of five seeds; band: their range)."}, "image": {"alt": "Two line plots against Adam steps from 300 to 4800 on a doubling axis, one line per m from 5 to 8. At L equal 64 (left) all gaps stay above zero and slowly shrink; at L equal 128 (right) the gaps are smaller and the bands are wide."}}
value_matrix.plot_wv_budget(shown, budget_show)
plt.show()

# %% tags=["hide-input", "hide-output"]
CONVERGED = 0.005   # a budget s counts as converged when doubling it moves the seed mean by less


def converged_budget(rec, variant):
    """The smallest recorded s from which on every doubling (s, 2s, 4s, ... as recorded) moves the
    variant's seed-mean accuracy by at most CONVERGED; None if there is none."""
    mean = dict(zip(rec["steps"], (sum(r) / len(r) for r in rec[variant])))
    ok = [s for s in mean if 2 * s in mean]
    return next((s for s in ok if all(abs(mean[2 * t] - mean[t]) <= CONVERGED for t in ok if t >= s)), None)


n_b = len(budget["settings"]["seeds"])
print(f"gap (trained - identity): mean ± standard error over {n_b} seeds; frozen: median and lowest "
      f"single run over the records from 1,200 steps on; converged: see CONVERGED = {CONVERGED}")
print(f"{'L':>4s} {'m':>2s} " + " ".join(f"{f'gap {s}':>15s}" for s in (300, 1200, 4800))
      + f" {'frozen median':>13s} {'lowest':>7s} {'converged: trained':>19s} {'frozen':>7s}")
summary = {}
for L in (64, 128):
    for m in MS:
        rec = budget["fig3a"][f"L={L},m={m}"]
        g = budget_gaps[f"L = {L}, noise 0.5"][f"m = {m}"]
        late = [a for s, r in zip(rec["steps"], rec[labels[1]]) if s >= 1200 for a in r]
        summary[L, m] = {"gap": [mean_se(g[shown.index(s)]) for s in (300, 1200, 4800)],
                         "median": sorted(late)[len(late) // 2], "lowest": min(late),
                         "conv": [converged_budget(rec, v) for v in labels]}
        row = summary[L, m]
        print(f"{L:4d} {m:2d} " + " ".join(f"{pm_text(*x):>15s}" for x in row["gap"])
              + f" {row['median']:13.3f} {row['lowest']:7.3f} {str(row['conv'][0]):>19s} {str(row['conv'][1]):>7s}")
for L in (64, 128):  # the mean gap over every record (every 300 steps), not only the three above
    low = min(sum(a) / len(a) - sum(b) / len(b) for m in MS
              for a, b in zip(*(budget["fig3a"][f"L={L},m={m}"][v] for v in labels)))
    print(f"L = {L}: smallest mean gap over all records and m: {low:.3f}")
    glue(f"wv_gap{L}_lowest", math.floor(100 * low) / 100 if L == 64 else round(low, 2) + 0.0, display=False)
plain_low = min(a for m in MS for r in budget["plain"][f"L=64,m={m}"][labels[1]] for a in r)
print(f"noise-free task (panel c), lowest single frozen run up to 1,200 steps: {plain_low:.3f}")
same = max(abs(sum(fig3a[p][v][i]) / len(SEEDS) - sum(budget[key][f"L={L},m={m}"][v][0]) / len(SEEDS))
           for p, key, L in (("(a) L = 64, noise 0.5", "fig3a", 64), ("(b) L = 128, noise 0.5", "fig3a", 128),
                             ("(c) L = 64, noise-free", "plain", 64)) for v in labels for i, m in enumerate(MS))
print("the figure's 300-step runs and the file's 300-step records: largest difference of a seed mean "
      + report.bound(same, 0.01))
g64 = [summary[64, m]["gap"] for m in MS]
glue("wv_gap64_300_min", math.floor(100 * min(g[0][0] for g in g64)) / 100, display=False)
glue("wv_gap64_4800_min", math.floor(100 * min(g[2][0] for g in g64)) / 100, display=False)
glue("wv_gap64_4800_max", math.ceil(100 * max(g[2][0] for g in g64)) / 100, display=False)
glue("wv_gap64_m8_300", pm_text(*summary[64, 8]["gap"][0]), display=False)
glue("wv_gap64_m8_1200", pm_text(*summary[64, 8]["gap"][1]), display=False)
print("L = 64, 4,800 steps: gap above 2 standard errors at every m: "
      + str(all(g[2][0] > 2 * g[2][1] for g in g64)))
glue("wv_med128", math.floor(100 * min(summary[128, m]["median"] for m in MS)) / 100, display=False)
glue("wv_low128", math.floor(100 * min(summary[128, m]["lowest"] for m in MS)) / 100, display=False)
glue("wv_plain_low", math.floor(100 * plain_low) / 100, display=False)
conv_tr = [summary[k]["conv"][0] for k in summary]
glue("wv_conv_trained", max(conv_tr) if None not in conv_tr else "never", display=False)
glue("wv_converged", CONVERGED, display=False)
glue("wv_conv_frozen", sum(summary[k]["conv"][1] is None for k in summary), display=False)

# %% [markdown]
# At $L=64$ a trained $W_{V}$ stays above the frozen identity at every budget, by a shrinking gap; at
# $L=128$ little gap is left beyond the frozen models' unstable training ({numref}`fig-ch4-budget`).
#
# ````{dropdown} What the longer runs show, in detail
# The learning rate is constant, so the record at step $s$ is the accuracy of an $s$-step run; the
# study took {glue:text}`wv_bench_minutes` minutes of one CPU core, and a test recomputes a sample.
# The file's five seeds are the figure's: its 300-step records agree with {numref}`fig-ch4-fig3a`
# within the printed bound (folded table).
#
# - **The trained $W_{V}$ settles.** In every setting, from {glue:text}`wv_conv_trained` steps on at
#   the latest (from the figure's 300 in most), doubling the budget moves its mean accuracy by at
#   most {glue:text}`wv_converged` (last column but one of the table).
# - **At $L=64$ the gap shrinks but does not close.** It falls from at least
#   {glue:text}`wv_gap64_300_min` at 300 steps to between {glue:text}`wv_gap64_4800_min` and
#   {glue:text}`wv_gap64_4800_max` at 4,800 steps, still more than two standard errors at every $m$
#   (printed above), and the mean gap never drops below
#   {glue:text}`wv_gap64_lowest` at any record. At $m=8$ it falls from {glue:text}`wv_gap64_m8_300`
#   at 300 steps to {glue:text}`wv_gap64_m8_1200` at 1,200.
# - **At $L=128$ the 300-step gap is not the long-run one.** From 1,200 steps on the median frozen
#   run is at {glue:text}`wv_med128` or more; what remains of the gap in the means comes from single
#   runs that collapse for a record or two (down to {glue:text}`wv_low128`) and recover, and at one
#   record the mean gap is {glue:text}`wv_gap128_lowest`. The frozen models' training is unstable
#   at this constant learning rate (in {glue:text}`wv_conv_frozen` of the eight settings it never
#   settles by the criterion above), and panel (c)'s frozen runs collapse in the same way when
#   trained longer (lowest {glue:text}`wv_plain_low`).
# ````
#
# ## Where it breaks
#
# **The gap needs a hard enough task.** Panel (c): on the noise-free $\mathcal{N}_1$ task at $L=64$ every run
# of both variants reaches accuracy {glue:text}`wv_plain_min:.2f` or more. 64 tokens drawn from only
# $m\le8$ neighbours reveal every bit many times over, so even a majority vote is almost never wrong.
#
# **The construction needs neighbourhoods that identify their centre** (part 3 of
# {prf:ref}`ch4-wv-error`). On the sphere of radius $m/2$, $\mathcal{N}(y)=\mathcal{N}(\bar y)$: the construction always
# errs, and even the Bayes-optimal predictor can only guess. In a cluster the target is recognised
# only by its *absence* from the context, which takes a long context (first folded cell).
#
# **The closed form needs its hypotheses.** With noise the $\mathcal{N}_1$ formula is far too optimistic at
# short contexts, while the Chernoff bound of part 2 still holds (second folded cell).

# %% tags=["hide-cell"]
for label, spec in (("sphere r=2, m=4 (N(y) = N(complement))", lca.TaskSpec(4, 32, lca.hamming_sphere(2))),
                    ("cluster k=1, m=4", lca.TaskSpec(4, 32, lca.cluster(1))),
                    ("sphere r=1, m=4", lca.TaskSpec(4, 32))):
    print(f"{label:40s} L=32: exact error {report.exact(value_matrix.wv_error_exact(spec))}, bound "
          f"{report.exact(min(1.0, value_matrix.wv_error_bound(spec)))}, Monte Carlo "
          f"{1 - value_matrix.construction_accuracy(spec, n=4096, seed=6):.4f}, Bayes-optimal accuracy "
          f"{lca.bayes_accuracy(spec, n=4096, seed=6):.4f}")

# %% tags=["hide-cell"]
for eps in (0.0, 0.3, 0.6):
    spec = lca.TaskSpec(5, 12, noise=eps)
    print(f"noise {eps:.1f}: N_1 closed form {report.exact(value_matrix.wv_error_exact_sphere1(5, 12))}, "
          f"Chernoff bound {report.exact(min(1.0, value_matrix.wv_error_bound(spec)))}, Monte Carlo "
          f"{1 - value_matrix.construction_accuracy(spec, n=N_MC, seed=7):.4f}")

# %% [markdown]
# (fig-paper-wv-replace)=
#
# ## A trained $W_{V}$ against the construction
#
# If training builds an associative memory, a trained $W_{V}$ should be replaceable by the construction
# $W_{E}^\top AW_{E}$ from the *trained* embeddings (the paper's `wv_replace_dim_*`, `wv_angle_dim_*`). On the
# task of panel (a) ($m=5,\dots,8$, $d$ from 4 to 64) we swap in $W_{V}^\star$ (`value_matrix.wv_replacement`)
# and compute the cosine $\langle W_{V},W_{V}^\star\rangle_F/(\|W_{V}\|_F\|W_{V}^\star\|_F)$ in full and of the
# best rank-$r$ approximations (`value_matrix.wv_alignment`). Which rank? For the $\pm1$ code
# $W_{V}^\star=\frac{(m-2)V}{m}I_m$ exactly ({prf:ref}`lem-wv-walsh`, first folded cell), so rank $m$ there.

# %% tags=["hide-cell"]
for m in (3, 5, 8):
    E = value_matrix.pm1_embedding(m)
    W = value_matrix.value_matrix_construction(E, lca.hamming_sphere(1))
    gap = float((W - (m - 2) * 2**m / m * torch.eye(m, dtype=torch.float64)).abs().max())
    print(f"m = {m}: +-1 code, max |W_V* - (m-2)V/m I_m| {report.bound(gap, 1e-12)}; "
          f"Walsh-weight share of ||W_E||^2 on weight 1: {float(value_matrix.walsh_weight_shares(E)[1]):.4f}")

# %% [markdown]
# For trained embeddings we do not fix the rank in advance: the measured rank $r$ of $W_{V}^\star$ counts
# its singular values at least {glue:text}`wv_significant` times the largest (`value_matrix.wv_spectra`).
# The 100 models per budget do not fit this chapter's minute, so the figure reads the stored results:
# five seeds per point, 1,200 steps (the folded table also lists 300 steps).

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch4-replacement", "caption": "A trained $W_V$ against the construction $W_V^\\star$ from the trained embeddings ($L=64$, noise 0.5, 1,200 steps, five seeds), against $d$: accuracies (top left), cosines (top right), singular values at $m=5$, $d=64$ (bottom left) and the measured rank (bottom right)."}, "image": {"alt": "A 2 by 2 grid. Top left, accuracy against d for m from 5 to 8, trained and replaced lines close together from d equal 16 on. Top right, cosines close to 1. Bottom left, normalised singular values: the plus-minus-one code has five equal values and then zeros, the construction from trained embeddings about ten large values. Bottom right, the measured rank grows with d, faster for larger m."}}
glue("wv_significant", value_matrix.SIGNIFICANT, display=False)
D_REP = budget["settings"]["d_rep"]
rep = budget["replacement"]


def rep_series(steps, m, key):
    """[len(D_REP), seeds] values of one measurement from the committed file."""
    return [rep[f"steps={steps},m={m},d={d}"][key] for d in D_REP]


STEPS_REP = 1200
panels_rep = {f"$m={m}$": {"trained": rep_series(STEPS_REP, m, "trained"),
                           "replaced": rep_series(STEPS_REP, m, "constructed"),
                           "cosine": rep_series(STEPS_REP, m, "cos_full"),
                           "cosine, measured rank": rep_series(STEPS_REP, m, "cos_measured_rank")}
              for m in MS}
example = rep[f"steps={STEPS_REP},m=5,d=64"]
n_sv = len(example["spectrum_constructed"][0])
spectra = {"$W_V^\\star$, trained $W_E$ ($m=5$, $d=64$)": torch.tensor(example["spectrum_constructed"]).mean(0),
           "trained $W_V$ ($m=5$, $d=64$)": torch.tensor(example["spectrum_trained"]).mean(0),
           "$W_V^\\star$ of the $\\pm1$ code ($m=5$)": [1.0] * 5 + [0.0] * (n_sv - 5),
           "rank": {f"$m={m}$": rep_series(STEPS_REP, m, "measured_rank") for m in MS}}
value_matrix.plot_wv_replacement(D_REP, panels_rep, spectra)
plt.show()

# %% tags=["hide-input", "hide-output"]
n_seeds = len(budget["settings"]["seeds"])
print(f"mean ± standard error over {n_seeds} seeds; r: measured rank of W_V* (mean over seeds)")
print(f"{'steps':>5s} {'m':>2s} {'d':>3s} {'trained':>15s} {'replaced':>15s} {'cos full':>15s}"
      f" {'cos rank-m':>15s} {'cos rank-r':>15s} {'r':>5s}")
for steps in budget["settings"]["rep_steps"]:
    for m in MS:
        for d in D_REP:
            e = rep[f"steps={steps},m={m},d={d}"]
            cols = [e[k] for k in ("trained", "constructed", "cos_full", "cos_rank_m", "cos_measured_rank")]
            print(f"{steps:5d} {m:2d} {d:3d} " + " ".join(f"{pm_text(*mean_se(c)):>15s}" for c in cols)
                  + f" {sum(e['measured_rank']) / n_seeds:5.1f}")

# %% tags=["hide-input", "hide-output"]
d_max = D_REP[-1]
gl = {}
for m in MS:
    e = rep[f"steps={STEPS_REP},m={m},d={d_max}"]
    shares = torch.tensor(e["walsh_shares"]).mean(0).tolist()
    sv = torch.tensor(e["spectrum_constructed"]).mean(0).tolist()
    r_mean = sum(e["measured_rank"]) / n_seeds
    cos = {k: sum(e[k]) / n_seeds for k in ("cos_full", "cos_rank_m", "cos_measured_rank")}
    print(f"m = {m}, d = {d_max}, {STEPS_REP} steps: measured rank {r_mean:.1f} (2m = {2 * m}); share of "
          f"||W_E||^2 on Walsh weight 1: {shares[1]:.2f}, m - 1: {shares[m - 1]:.2f}, m: {shares[m]:.2f}, "
          f"2: {shares[2]:.2f}, m - 2: {shares[m - 2]:.2f}; "
          f"cosine full {cos['cos_full']:.2f}, rank m {cos['cos_rank_m']:.2f}, rank r {cos['cos_measured_rank']:.2f}")
    gl[m] = dict(rank=r_mean, w1=shares[1], wm1=shares[m - 1], wm=shares[m], sv=sv, **cos)
print("m = 5, d = 64: mean normalised singular values s_i/s_1 of W_V*: "
      + " ".join(f"{x:.2f}" for x in gl[5]["sv"]))
cost = {st: max(sum(rep[f"steps={st},m={m},d={d}"]["trained"]) / n_seeds
                - sum(rep[f"steps={st},m={m},d={d}"]["constructed"]) / n_seeds for m in MS for d in D_REP if d >= 16)
        for st in budget["settings"]["rep_steps"]}
print("largest mean accuracy lost by the replacement at d >= 16: "
      + ", ".join(f"{st} steps: {c:.3f}" for st, c in cost.items()))
low_cos = min(sum(rep[f"steps={st},m={m},d={d}"]["cos_measured_rank"]) / n_seeds
              for st in budget["settings"]["rep_steps"] for m in MS for d in D_REP)
print(f"smallest mean cosine of the rank-r parts over every m, d and budget: {low_cos:.2f}")
glue("wv_rank5", f"{gl[5]['rank']:.0f}", display=False)
glue("wv_rank8", f"{gl[8]['rank']:.0f}", display=False)
for key, i in (("sv10", 9), ("sv11", 10), ("sv12", 11)):
    glue(f"wv_{key}", f"{gl[5]['sv'][i]:.2f}", display=False)
for key in ("w1", "wm1", "wm", "cos_full", "cos_rank_m", "cos_measured_rank"):
    glue(f"wv_{key}_5", f"{gl[5][key]:.2f}", display=False)
glue("wv_cos_rank_m_min", f"{min(gl[m]['cos_rank_m'] for m in MS):.2f}", display=False)
glue("wv_cos_r_min", f"{math.floor(100 * low_cos) / 100:.2f}", display=False)
glue("wv_cost_300", f"{math.ceil(100 * cost[300]) / 100:.2f}", display=False)
glue("wv_cost_1200", f"{math.ceil(100 * cost[1200]) / 100:.2f}", display=False)

# %% tags=["hide-cell"]
spec_eig = lca.TaskSpec(5, 64, noise=NOISE)
model_eig = lca.fit(TrainConfig(task=spec_eig, d=64, steps=STEPS_REP, batch_size=BATCH, lr=0.01,
                                eval_every=0, n_eval=2048, device=device), progress=False).model
E_eig = model_eig.W_E.detach().double().cpu()
ev, vecs = torch.linalg.eigh(value_matrix.constructed_value_matrix(model_eig, spec_eig).double())
order = ev.abs().argsort(descending=True)
r_eig = value_matrix.wv_spectra(model_eig, spec_eig)["rank"]
groups = {}
for i in order[:r_eig].tolist():
    shares = value_matrix.walsh_weight_shares(E_eig @ vecs[:, i : i + 1])
    key = (int(shares.argmax()), "positive" if ev[i] > 0 else "negative")
    groups[key] = groups.get(key, 0) + 1
print(f"measured rank {r_eig}; its eigenvectors by dominant Walsh weight and sign of the eigenvalue: "
      + ", ".join(f"weight {w} ({sgn}): {n}" for (w, sgn), n in sorted(groups.items())))

# %% [markdown]
# At 1,200 steps (the 300-step rows tell the same story):
#
# - **Replacing $W_{V}$ costs little once $d$ is large enough to learn the task.** For $d\ge16$ the
#   replaced model loses at most {glue:text}`wv_cost_1200` of accuracy on average
#   ({glue:text}`wv_cost_300` after 300 steps); at $d=4$ the models have not learned the task.
# - **The rank is not $m$.** At $m=5$, $d=64$, $W_{V}^\star$ has about $2m$ singular values of comparable
#   size (bottom left: the tenth is {glue:text}`wv_sv10` of the largest, the eleventh
#   {glue:text}`wv_sv11`, the twelfth {glue:text}`wv_sv12`); the measured rank is
#   {glue:text}`wv_rank5`, and about {glue:text}`wv_rank8` at $m=8$ (bottom right).
# - **Compared at their rank, the two agree better than in full.** At $m=5$, $d=64$ the cosine is
#   {glue:text}`wv_cos_full_5` in full, {glue:text}`wv_cos_measured_rank_5` at rank $r$ and only
#   {glue:text}`wv_cos_rank_m_5` at rank $m$.
#
# ````{dropdown} The cosines in detail
# A cut at $m$ keeps an arbitrary part of a set of singular values
#   of similar size, and the rank-$m$ cosine falls to {glue:text}`wv_cos_rank_m_min` at $d=64$ for
#   some $m$. The rank-$r$ cosine is at least {glue:text}`wv_cos_r_min` everywhere (two unrelated
#   $d\times d$ matrices would have a cosine near 0). The trained $W_{V}$ is not *equal* to
#   $W_{V}^\star$: the full cosine stays below 1 at every $d$, and this chapter does not identify
#   what the remaining part of the trained matrix does. The paper summarises that constructed and
# trained value matrices share low-rank approximations; in the course's runs that holds at the
# measured rank, not at rank $m$.
# ````
#
# ````{dropdown} Why about $2m$ singular values: the Walsh characters
# {prf:ref}`lem-wv-walsh` says why. At $m=5$, $d=64$ the trained embeddings carry a share
# {glue:text}`wv_w1_5` of their energy on the Walsh characters of weight 1 (the bits),
# {glue:text}`wv_wm1_5` on those of weight $m-1$ (the bits times the parity, the parity zig-zag of
# the next chapter), on which $\mathcal{N}_1$ acts with the same factor $m-2$ (with opposite
# signs), and {glue:text}`wv_wm_5` on the parity itself (factor $m$). One model of the file is
# retrained in the last folded cell ($m=5$, $d=64$, 1,200 steps, seed 0): each leading eigenvector
# $v$ of the symmetric $W_{V}^\star$ is a direction in $\mathbb{R}^d$, and the Walsh-weight shares of
# $W_{E}v\in\mathbb{R}^V$ say which characters it lives on. They sort exactly so: $m$ on weight 1 with positive eigenvalues, $m$ on
# weight $m-1$ with negative ones, and one on the parity. At $m=8$ the characters of weight 2 and
# $m-2$ (factor $m-4$) also carry a share.
# ````
#
# ## Explore
#
# The error of the constructed model against $L$ for a sphere or ball, its radius, $m$ and a noise
# rate: exact (noise 0, at most 16 neighbours), the bound, and Monte Carlo. Try the sphere of
# radius 2 at $m=4$ (the error never falls: {prf:ref}`ch4-wv-error`, part 3), a ball against a sphere,
# and a noise rate $\varepsilon>0.5$ at $m=8$ (the bound needs long contexts).

# %% tags=["hide-input"]
def draw_error(family="sphere", r=1, m=5, noise=0.0, L_max=32):
    r = min(r, m)
    nb = lca.hamming_sphere(r) if family == "sphere" else lca.hamming_ball(r)
    Ls_e = sorted({max(1, round(L_max * q)) for q in (0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0)})
    specs = [lca.TaskSpec(m, L, nb, noise=noise) for L in Ls_e]
    c = {"bound": [min(1.0, value_matrix.wv_error_bound(s)) for s in specs],
         "monte_carlo": [1 - value_matrix.construction_accuracy(s, n=2000, seed=1) for s in specs]}
    if noise == 0 and int(nb.degrees(m)[0]) <= 16:
        c["exact"] = [value_matrix.wv_error_exact(s) for s in specs]
    return value_matrix.plot_wv_error(
        Ls_e, {f"{family} $r={r}$, $m={m}$, noise {noise:.2f}": c},
        title=r"constructed $W_V^\star$: error against $L$")


explorer(draw_error, title="Error of the constructed value matrix",
         family=widgets.Dropdown(options=["sphere", "ball"], value="sphere", description="family"),
         r=widgets.IntSlider(value=1, min=1, max=4, description="radius r"),
         m=widgets.IntSlider(value=5, min=2, max=8, description="m"),
         noise=widgets.FloatSlider(value=0.0, min=0.0, max=0.9, step=0.05, description="noise"),
         L_max=widgets.IntSlider(value=32, min=4, max=128, step=4, description="max L"))

# %% [markdown]
# ## Exercises
#
# ```{exercise} A Hebbian value matrix from samples
# :label: ex-wv-hebbian
#
# A Hebbian rule adds, per example, the outer product of the target's embedding and the attention
# output. Write `hebbian_value_matrix(W_E, contexts, targets)` returning $\frac1n\sum_{r=1}^nW_{E}(y_r)\,h_r^\top$
# with $h_r=\frac1L\sum_{l}W_{E}(x_{r,l})$, for `W_E [V, d]`, `contexts [n, L]`, `targets [n]`, as a
# `[d, d]` tensor, and say what it converges to as $n\to\infty$ (the checker uses $d\ne V$, so a
# transpose shows). Replace the `raise NotImplementedError` and run the cell.
# ```

# %% tags=["exercise-stub"]
def hebbian_value_matrix(W_E, contexts, targets):
    raise NotImplementedError  # your code here


check_hebbian_value_matrix(hebbian_value_matrix)

# %% [markdown]
# ```{solution-start} ex-wv-hebbian
# :class: dropdown
# ```
#
# Count the tokens: with $N[r,x]$ the number of positions of context $r$ holding $x$, row $r$ of
# $NW_{E}/L$ is $h_r$, and `W_E[targets].T @ H / n` is $\frac1n\sum_rW_{E}(y_r)h_r^\top$. By the law
# of large numbers the memory tends to $\mathbb E[W_{E}(y)h^\top]=\frac1V\sum_yW_{E}(y)\,
# \bar P[y]W_{E}=\frac1VW_{E}^\top\bar P\,W_{E}$, the first term of the one-step formula of
# {prf:ref}`ch4-one-step`; in a noise-free task with $|\mathcal{N}(y)|=n_0$ for all $y$ it is
# $W_{V}^\star/(n_0V)$. So the Hebbian memory learns the construction without any gradient, only
# without the shift term. Common mistakes: $h_rW_{E}(y_r)^\top$ (the transpose, which stores
# "target $\to$ neighbours"), and summing instead of averaging over positions or examples (a
# wrong scale, which the checker reports).

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def hebbian_value_matrix_reference(W_E, contexts, targets):
    counts = torch.zeros(contexts.shape[0], W_E.shape[0], dtype=W_E.dtype)
    counts.scatter_add_(1, contexts, torch.ones(contexts.shape, dtype=W_E.dtype))
    H = counts @ W_E / contexts.shape[1]
    return W_E[targets].T @ H / contexts.shape[0]


check_hebbian_value_matrix(hebbian_value_matrix_reference)

# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise} The error when ties are broken at random
# :label: ex-wv-random-ties
#
# Suppose the constructed model of {prf:ref}`ch4-wv-error` (orthonormal embeddings, uniform attention,
# noise-free $\mathcal{N}_1$ task) breaks a tie among the largest logits uniformly at random. Find (and prove)
# the exact error probability as a function of $m$ and $L$, and write `sphere_error_random_ties(m, L)`
# returning it as a float. Replace the `raise NotImplementedError` and run the cell.
# ```

# %% tags=["exercise-stub"]
def sphere_error_random_ties(m, L):
    raise NotImplementedError  # your code here


check_sphere_error_random_ties(sphere_error_random_ties)

# %% [markdown]
# ```{solution-start} ex-wv-random-ties
# :class: dropdown
# ```
#
# Write $y$ for the target and $x_i=y\oplus e_i$ for its neighbours. By
# {prf:ref}`ch4-wv-construction` every context gives $f_y=1$, and a rival $k$ ties with $y$ iff all
# distinct context tokens lie in $\mathcal{N}_1(k)$; a rival can never be above $y$. Sort the
# contexts by their set $S$ of distinct tokens.
#
# - $|S|=1$, $S=\{x_i\}$: the tokens at distance 1 from $x_i$ are its $m$ neighbours, $y$ among
#   them, so $m$ tokens tie and the model is wrong with probability $(m-1)/m$. There are $m$ such
#   contexts among the $m^L$ equally likely ones.
# - $|S|=2$, $S=\{x_i,x_j\}$: the tokens at distance 1 from both are $y$ and $y\oplus e_i\oplus e_j$
#   ({prf:ref}`lem-wv-common-neighbours`), so two tie and the error is $1/2$. There are
#   $\binom m2(2^L-2)$ such contexts (a pair, and a map of the $L$ positions onto it).
# - $|S|\ge3$: a token at distance 1 from $x_i$, $x_j$ and $x_k$ must be $y$ (the only other
#   candidate for each pair, $y\oplus e_i\oplus e_j$, is at distance 3 from $x_k$), so no tie.
#
# Hence
#
# $$
# P(\text{error})=\frac{m-1}m\cdot\frac m{m^L}+\frac12\cdot\frac{\binom m2(2^L-2)}{m^L}
# =(m-1)\,m^{-L}\Big(1+\frac{m(2^L-2)}4\Big).
# $$
#
# For $m=1$ it is 0 (no rival ever ties), for $m=2$ it is $1/2$ at every $L$ (the two neighbours of
# $y$ are also the two neighbours of its complement). Compared with the strict rule the leading
# term halves: $\binom m2(2/m)^L/2$. Common mistakes: forgetting the one-token contexts, and
# breaking their $m$-way tie with probability $1/2$. The course's tests check the formula against
# an exact enumeration of all contexts, and that it fails with noise or another neighbourhood.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def sphere_error_random_ties_reference(m, L):
    return (m - 1) * (1 + m * (2**L - 2) / 4) / m**L


check_sphere_error_random_ties(sphere_error_random_ties_reference)

# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise} The first step of Adam
# :label: ex-wv-adam
#
# The course trains with Adam. Under the hypotheses of {prf:ref}`ch4-one-step` with a position law
# `P[y, x]` (rows sum to 1), write `adam_first_step(W_E, P, lr)` returning $W_{V}$ after the first step
# of `torch.optim.Adam` (default betas, `eps = 1e-8`) from $W_{V}=0$, as a `[d, d]` tensor, and say
# whether it makes the construction's predictions. Replace the `raise NotImplementedError` and run the cell.
# ```

# %% tags=["exercise-stub"]
def adam_first_step(W_E, P, lr):
    raise NotImplementedError  # your code here


check_adam_first_step(adam_first_step)

# %% [markdown]
# ```{solution-start} ex-wv-adam
# :class: dropdown
# ```
#
# At the first step Adam's moment estimates, after bias correction, are $\hat m=G$ and
# $\hat v=G^{2}$ (entrywise) for the gradient $G$, so the update is
# $-\eta\,G/(|G|+\epsilon)\approx-\eta\,\mathrm{sign}(G)$: a step of the same size $\eta$ in every
# entry, whatever the gradient's magnitude. With $-G=g=\frac1VW_{E}^\top(I-\frac{\mathbf1\mathbf1^\top}V)PW_{E}$
# from {prf:ref}`ch4-one-step`, $W_{V}^{(1)}=\eta\,g/(|g|+\epsilon)$. Does it still make the
# construction's predictions? With one-hot embeddings ($W_{E}=I$) and a noise-free regular task,
# $g=\frac1V(A/n-\mathbf1\mathbf1^\top/V)$, whose signs are $2A-\mathbf1\mathbf1^\top$, so the logits
# are $\eta(2Ac-\mathbf1)$: yes, up to scale and shift. But the sign is taken entry by entry in the
# basis of $\mathbb{R}^d$, so for a rotated orthonormal $W_{E}$ the step is no longer a function of
# $W_{E}^\top AW_{E}$, and the answer is no in general (the course's tests check both cases).
# Common mistakes: returning the gradient step $\eta g$, or the wrong sign.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def adam_first_step_reference(W_E, P, lr):
    V = W_E.shape[0]
    g = W_E.T @ (torch.eye(V, dtype=W_E.dtype) - 1.0 / V) @ P @ W_E / V
    return lr * g / (g.abs() + 1e-8)


check_adam_first_step(adam_first_step_reference)

# %% [markdown]
# ```{solution-end}
# ```
#
# ```{exercise} Neighbourhoods that hide their centre
# :label: ex-wv-antipodal
#
# Let $m$ be even and $\mathcal{N}$ the Hamming sphere of radius $m/2$. Prove that (a) $\mathcal{N}(y)=\mathcal{N}(\bar y)$,
# where $\bar y$ flips every bit of $y$; (b) the constructed model with orthonormal embeddings
# errs on every noise-free context; (c) no predictor whatsoever has accuracy above $1/2$ on this
# task. What does (c) say about blaming the construction for (b)?
# ```
#
# ```{solution} ex-wv-antipodal
# :class: dropdown
#
# (a) $D_{\mathrm{H}}(x,\bar y)=m-D_{\mathrm{H}}(x,y)$, so $D_{\mathrm{H}}(x,y)=m/2$ iff $D_{\mathrm{H}}(x,\bar y)=m/2$. (b) By
# {prf:ref}`ch4-wv-construction`, $f_{\bar y}$ is the share of the context in $\mathcal{N}(\bar y)=\mathcal{N}(y)$,
# i.e. 1, the same as $f_y$: a tie on every context. (c) The likelihood of a context is
# $\prod_l|\mathcal{N}(y)|^{-1}\mathbb 1[x_l\in\mathcal{N}(y)]$, identical for $y$ and $\bar y$, and the prior is
# uniform, so the posteriors of $y$ and $\bar y$ are equal on every context. Any predictor outputs
# at most one of them, so given the pair $\{y,\bar y\}$ it is right with probability at most $1/2$.
# The task itself hides the answer; the construction, which breaks the tie as an error, is at most
# a factor 2 from the best possible here.
# ```
#
# ## Summary
#
# $W_{V}^\star=W_{E}^\top AW_{E}$ stores "neighbours $\to$ token" as outer products; with orthonormal
# embeddings its logits are neighbourhood shares of the context, its error falls like $\binom m2(2/m)^L$
# on $\mathcal{N}_1$, and (no noise) one gradient step from zero builds it up to scale and shift. $W_{V}=I$
# needs trained embeddings and stays behind a trained $W_{V}$ on a noisy task at every budget tried. A
# trained $W_{V}$ can be swapped for the construction at a small cost; the two agree best at their
# actual rank (about $2m$). For context hijacking: a token's logit follows the share of the context
# that *looks like its neighbourhood*. Next: embeddings that encode latent similarity when $d<V$.

