# %% tags=["remove-cell"]
# Colab setup: install the course package (runs only on Google Colab)
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "lca[llm] @ git+https://github.com/elephants-course/elephants@v0.1.0"], check=True)

# %% [markdown]
# # Attention selects: the query listens to its own cluster
#
# So far the one-layer transformer has averaged its context uniformly: with $W_{KQ}=0$ every
# position gets weight $1/L$, and the value matrix turns the average into a prediction
# ({doc}`04_value_matrix`). That works when every context token carries information about the
# target. Real contexts are messier: most words of a prompt say nothing about the fact being
# recalled. The paper {cite}`jiang2024elephants` studies this with a *cluster structure*: the
# latent space is cut into clusters, the informative tokens of a context come from the target's
# cluster and the rest are noise from other clusters, and its Fig. 3(c) shows that a trained
# attention layer puts its weight on the query's own cluster. This chapter asks why gradient
# descent finds that rule. We compute the gradient of the key-query matrix at zero exactly, show
# that its first step already raises every same-cluster score above every cross-cluster score, and
# then watch a trained model do the same. The same filtering reappears in {doc}`07_hijacking_in_model`
# as a defence against some hijacking contexts.
#
# **In this chapter you will**
#
# - define the cluster task with noise tokens and the attention mass on the query's cluster;
# - derive the exact gradient of the population loss with respect to $W_{KQ}$ at $W_{KQ}=0$, check it
#   against automatic differentiation, and find its closed form to first order in the value scale;
# - prove that this first step favours same-cluster (query, key) pairs and compute the three
#   numbers that describe it for the cluster neighbourhood of the paper's Fig. C.8;
# - reproduce the paper's attention heat map (Fig. 3(c), Fig. C.8) at $m=8$ and measure how much
#   attention a trained model puts on the query's cluster, with $W_{KQ}$ trained and frozen at $0$;
# - see the effect vanish when there is no noise or when the noise lives inside the cluster.

# %% tags=["hide-input"]
import itertools
import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

import lca
from lca import attention, glue
from lca.report import bound, exact, pm, sig
from lca.attention import check_attention_mass_by_cluster, check_kq_cluster_entries
from lca.attention import check_kq_gradient
from lca.train import TrainConfig, evaluate, sweep
from lca.widgets import explorer

torch.manual_seed(0)
device = lca.default_device()
torch.set_num_threads(1)


def mc_fraction(p, n):
    """A fraction estimated from n independent draws, printed with its binomial standard error."""
    if p in (0.0, 1.0):
        return f"{p:.0f} (all {n} draws)" if p == 1.0 else f"0 (none of {n} draws)"
    return pm(p, math.sqrt(p * (1 - p) / n))


def expected_share(spec):
    """Expected share of the query's cluster in a cluster-task context: the query, plus each of
    the other L - 1 tokens with probability 1 - noise (noise tokens lie in other clusters)."""
    return (1 + (spec.L - 1) * (1 - spec.noise)) / spec.L

# %% [markdown]
# ## Definitions
#
# Fix a number of cluster bits $k$ with $1\le k<m$. Write $\kappa(i)\in\{0,\dots,2^k-1\}$ for
# the integer formed by the first $k$ latent bits of token $i$: its *cluster*. With the course's
# token numbering a cluster is a block of $s=2^{m-k}$ consecutive token ids
# (`lca.attention.cluster_ids(m, k)`), and the set $C_k(z)$ of the notation page is the cluster of
# $z$ without $z$.
#
# ```{prf:definition} The cluster task
# :label: def-ch6-cluster-task
#
# Let $\mathcal{N}(y)\subseteq C_k(y)$ be an informative neighbourhood inside the target's cluster and
# $\varepsilon\in[0,1)$ a noise rate. A context of length $L$ for target $y$ is drawn as follows:
# the tokens $x_1,\dots,x_{L-1}$ are independent, each uniform on $\mathcal{N}(y)$ with probability
# $1-\varepsilon$ (an *informative* token) and otherwise uniform on the tokens of the other
# clusters, $\{x:\kappa(x)\ne\kappa(y)\}$ (a *noise* token); the last token $x_L$, the attention
# query, is always informative. In this course we use two informative neighbourhoods:
#
# - `"cluster"`: $\mathcal{N}(y)=C_k(y)$, the whole cluster except $y$. This is the neighbourhood named in
#   the caption of the paper's Fig. C.8 (there $k=2$).
# - `"sphere"`: $\mathcal{N}(y)=\{x\in C_k(y):D_{\mathrm{H}}(x,y)=1\}$, the Hamming neighbours of $y$ inside its
#   cluster. Unlike the first choice it makes the target identifiable, so accuracy means something.
#
# The paper's exact noise model is not known to us; this definition is the course's choice
# (`lca.attention.cluster_task(m, k, L, noise, informative)`).
# ```
#
# ```{prf:definition} Token frequencies, attention mass and share
# :label: def-ch6-mass
#
# For a context $x$ let $c_j=\#\{l:x_l=j\}/L$ be the frequency of token $j$ and, for a set $S$ of
# tokens, $c(S)=\sum_{j\in S}c_j$. With attention weights $a_1,\dots,a_L$ the *attention mass on the
# query's cluster* is $\mu(x)=\sum_{l}a_l\,\mathbb 1[\kappa(x_l)=\kappa(x_L)]$ and the *share* of
# that cluster is $\sigma(x)=\frac1L\#\{l:\kappa(x_l)=\kappa(x_L)\}$, the mass that uniform
# attention ($W_{KQ}=0$) gives it. The *score* of query token $i$ on key token $j$ is
# $S_{ij}=W_{E}(i)^\top W_{KQ}W_{E}(j)$: it does not depend on the context, and adding a constant to a
# row of $S$ changes no attention weight.
# ```

# %% [markdown]
# ## Look at it first
#
# One context of the `"sphere"` cluster task with $m=6$, $k=2$ (four clusters of 16 tokens),
# $L=12$ and noise rate $\varepsilon=0.5$. Each token is printed as its latent bits with the two
# cluster bits first.

# %%
spec_demo = attention.cluster_task(6, 2, L=12, noise=0.5, informative="sphere")
ctx_demo, y_demo = lca.sample(spec_demo, 1, seed=3)
bits = spec_demo.space.latents
cl = attention.cluster_ids(6, 2)
y0 = int(y_demo[0])
print(f"target y = {y0:2d}  bits {''.join(map(str, bits[y0, :2].tolist()))}|"
      f"{''.join(map(str, bits[y0, 2:].tolist()))}  cluster {int(cl[y0])}")
for pos, t in enumerate(ctx_demo[0].tolist()):
    kind = "informative" if int(cl[t]) == int(cl[y0]) else "noise"
    role = "  <- query" if pos == spec_demo.L - 1 else ""
    print(f"x_{pos + 1:<2d} = {t:2d}  bits {''.join(map(str, bits[t, :2].tolist()))}|"
          f"{''.join(map(str, bits[t, 2:].tolist()))}  cluster {int(cl[t])}  {kind}{role}")
n_same_demo = int((cl[ctx_demo[0]] == cl[ctx_demo[0, -1]]).sum())
print(f"share of the query's cluster in this context: {n_same_demo} of {spec_demo.L} tokens")

# %% [markdown]
# The informative tokens all carry the target's two cluster bits and differ from the target in
# one other bit; the noise tokens come from the three other clusters and say nothing about the
# target. A model that averages uniformly mixes both kinds; a model whose query attends to its
# own cluster keeps only the useful half. Since the query is informative, "same cluster as the
# query" is the same as "same cluster as the target", and the attention layer can see it.

# %% [markdown]
# ## The gradient of $W_{KQ}$ at zero
#
# Write $M=W_{E}W_{V} W_{E}^\top$ ($V\times V$): with uniform attention the logits are $f=Mc$, so
# $M_{kj}$ is the logit that one occurrence of token $j$ adds to token $k$. Write
# $p=\operatorname{softmax}(Mc)$ for the predicted distribution and $\mathcal L=\mathbb{E}[-\log p_y]$ for the
# population cross-entropy.
#
# ```{prf:lemma} Exact gradient at zero
# :label: ch6-kq-gradient-exact
#
# For any embeddings $W_{E}$ and value matrix $W_{V}$, at $W_{KQ}=0$,
#
# $$
# \nabla_{W_{KQ}}\mathcal L=-W_{E}^\top T\,W_{E},\qquad
# T_{ij}=\mathbb{E}\big[\mathbb 1[x_L=i]\;c_j\,(r_j-\bar r)\big],
# $$
#
# where $r=M^\top(e_y-p)$ and $\bar r=\sum_j c_jr_j$. Every row of $T$ sums to $0$. After one
# gradient step of size $\eta$ from $W_{KQ}=0$ the scores are $S=\eta\,GTG$ with $G=W_{E}W_{E}^\top$,
# so $S=\eta T$ when the embeddings are orthonormal.
# ```
#
# ```{prf:proof}
# With $s_l=W_{E}(x_L)^\top W_{KQ}W_{E}(x_l)$ and $h=\sum_la_lW_{E}(x_l)$, the chain rule gives
# $\partial(-\log p_y)/\partial h=-W_{V}^\top W_{E}^\top(e_y-p)$ and $\partial h/\partial s_l=a_l(W_{E}(x_l)-h)$,
# so $\partial(-\log p_y)/\partial s_l=-a_l(r_{x_l}-\bar r)$ with $r$ and $\bar r$ as above
# (here $\bar r=\sum_la_lr_{x_l}$). Since $\partial s_l/\partial W_{KQ}=W_{E}(x_L)W_{E}(x_l)^\top$,
# summing over positions with $a_l=1/L$ and grouping positions by token gives the formula.
# The row sums vanish because $\sum_jc_j(r_j-\bar r)=0$. The full argument, with every index, is
# in the appendix ({prf:ref}`lem-kq-gradient-exact`).
# ```
#
# The expectation is over the target and the whole context, and $p$ depends on the context through
# a softmax, so $T$ has no simple closed form in general. It becomes one when the value matrix is
# small: then $p$ is nearly uniform.
#
# ```{prf:theorem} The first step of $W_{KQ}$ favours the query's cluster
# :label: ch6-kq-gradient
#
# Assume (A1) $W_{E}$ has orthonormal rows; (A2) $W_{V}=\beta\,W_{E}^\top AW_{E}$ with $\beta>0$ and
# $A_{kj}=\mathbb 1[j\in\mathcal{N}(k)]$, the associative memory of {doc}`04_value_matrix` scaled by $\beta$;
# (A3) $W_{KQ}=0$ and the loss is the population loss; (A4) every token lies in the same number of
# neighbourhoods (true for spheres, balls and both cluster-task neighbourhoods). Then
#
# $$
# T=\beta\,T^{(1)}+O(\beta^2),\qquad
# T^{(1)}_{ij}=\mathbb{E}\big[\mathbb 1[x_L=i]\;c_j\,\big(\mathbb 1[j\in\mathcal{N}(y)]-c(\mathcal{N}(y))\big)\big].
# $$
#
# If moreover (A5) the data follow the cluster task ({prf:ref}`def-ch6-cluster-task`) with
# $\varepsilon>0$ and $L\ge2$, then for every query token $i$: $T^{(1)}_{ii}>0$;
# $T^{(1)}_{ij}\ge0$ when $\kappa(j)=\kappa(i)$; and $T^{(1)}_{ij}<0$ when $\kappa(j)\ne\kappa(i)$.
# So after one small step every key in the query's cluster scores at least as high as every key
# outside it. If $\varepsilon=0$ then $T^{(1)}=0$: there is nothing to select.
# ```
#
# The idea of the proof: a token $j$ gains score with query $i$ when, in contexts with query $i$,
# it tends to appear together with a low share of target-neighbourhood tokens ($j$ is in
# $\mathcal{N}(y)$ while much of the context is not). In the cluster task every context token of the
# query's cluster is informative and every other token is noise, which fixes the signs. The
# proof is in the appendix ({prf:ref}`thm-kq-gradient`). For the neighbourhood of Fig. C.8 the
# table takes only three values:
#
# ```{prf:proposition} Closed form for the cluster neighbourhood
# :label: ch6-kq-cluster-closed-form
#
# For $\mathcal{N}(y)=C_k(y)$ with uniform noise on the other clusters, $s=2^{m-k}$ and $V=2^m$,
#
# $$
# T^{(1)}_{ii}=\frac{(L-1)\varepsilon}{VL^2}\Big(1+\frac{(L-2)(1-\varepsilon)}{s-1}\Big),\quad
# T^{(1)}_{ij}\big|_{\kappa(j)=\kappa(i),\,j\ne i}
#   =\frac{(s-2)(L-1)(L-2)\varepsilon(1-\varepsilon)}{VL^2(s-1)^2},
# $$
#
# $$
# T^{(1)}_{ij}\big|_{\kappa(j)\ne\kappa(i)}
#   =-\frac{(L-1)\varepsilon\,\big(1+(L-2)(1-\varepsilon)\big)}{VL^2(V-s)}.
# $$
#
# The proof ({prf:ref}`prop-kq-cluster-closed-form`) conditions on the number of informative
# tokens, which is binomial.
# ```

# %% [markdown]
# ## Check it
#
# Four independent computations of the same objects. (1) The exact table $T$ from
# `lca.attention.kq_gradient_table`, which enumerates every target, query and count vector of the
# other $L-1$ tokens, against automatic differentiation of the exact population loss (every one of
# the $V^L$ contexts pushed through `lca.OneLayerTransformer` with its probability as weight), for
# random $W_{E}$ and $W_{V}$. (2) The same exact gradient against autograd on a sample of 200,000
# contexts. (3) The exact table at a tiny $\beta$, divided by $\beta$, against the closed form
# $T^{(1)}$ of `lca.attention.kq_first_order_table` (moments of multinomial counts). (4) That closed
# form against the three numbers of the proposition, at $m=8$, $k=2$, $L=32$, $\varepsilon=0.5$.

# %%
g = torch.Generator().manual_seed(1)
spec_s = attention.cluster_task(3, 1, L=4, noise=0.4, informative="cluster")
W_E_r = torch.randn(8, 5, generator=g, dtype=torch.float64) / 2
W_V_r = torch.randn(5, 5, generator=g, dtype=torch.float64)
G_exact = attention.grad_WKQ_at_zero(W_E_r, W_V_r, spec_s)
# (1) autograd on the exact population loss
seqs = torch.tensor(list(itertools.product(range(8), repeat=4)))
P, Qlaw = spec_s.context_law(), spec_s.clean_law()
model_r = lca.OneLayerTransformer.from_weights(W_E_r, None, W_V_r, device="cpu")
model_r.W_KQ.requires_grad_(True)
pop_loss = 0.0
for y in range(8):
    w = P[y][seqs[:, :-1]].prod(1) * Qlaw[y][seqs[:, -1]] / 8
    keep = w > 0
    nll = torch.nn.functional.cross_entropy(model_r(seqs[keep]), torch.full((int(keep.sum()),), y),
                                            reduction="none")
    pop_loss = pop_loss + (w[keep] * nll).sum()
pop_loss.backward()
print(f"(1) exact formula vs autograd of the population loss:  max |difference| "
      f"{bound(float((G_exact - model_r.W_KQ.grad).abs().max()), 1e-12)}  "
      f"(entries up to {exact(float(G_exact.abs().max()))})")
# (2) autograd on a large sample, orthonormal embeddings and W_V* at beta = 1
spec4 = attention.cluster_task(4, 1, L=5, noise=0.5, informative="cluster")
E4 = lca.model.orthonormal_rows(16)
WV4 = attention.kq_value_matrix(E4, spec4, beta=1.0)
T4 = attention.kq_gradient_table(E4, WV4, spec4)
ctx_big, y_big = lca.sample(spec4, 200_000, seed=11)
model4 = lca.OneLayerTransformer.from_weights(E4, None, WV4, device="cpu")
model4.W_KQ.requires_grad_(True)
T4_batches = []                               # 20 batches of 10,000: their spread is the error
for i in range(20):
    model4.W_KQ.grad = None
    sl = slice(10_000 * i, 10_000 * (i + 1))
    torch.nn.functional.cross_entropy(model4(ctx_big[sl]), y_big[sl]).backward()
    T4_batches.append(-E4 @ model4.W_KQ.grad @ E4.T)
T4_batches = torch.stack(T4_batches)
T4_mc = T4_batches.mean(0)                     # = the gradient of the mean loss on all 200,000
se4 = T4_batches.std(0) / 20 ** 0.5
z4 = float(((T4 - T4_mc).abs() / se4).max())
# tolerance of (2): with the right formula each ratio is roughly Student-t with 19 degrees of
# freedom (standard error from 20 batches), so by a union bound the largest of the 256 exceeds
# TOL2 with probability at most 256 P(|t_19| > TOL2)
TOL2 = 5


def t_tail(c, nu=19, n=20_000, hi=400.0):
    """P(|T| > c) for Student's t with nu degrees of freedom (midpoint rule on [c, hi])."""
    log_c = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)
    h = (hi - c) / n
    return 2 * h * sum(math.exp(log_c - (nu + 1) / 2 * math.log1p((c + (i + 0.5) * h) ** 2 / nu))
                       for i in range(n))


false_alarm = 256 * t_tail(TOL2)
print(f"(2) exact table vs autograd on 200,000 samples:        largest |difference| / standard "
      f"error = {sig(z4, 2)} over the 256 entries, below the tolerance {TOL2}: {z4 < TOL2}  "
      f"(entries up to {exact(float(T4.abs().max()))}, standard errors up to "
      f"{sig(float(se4.max()), 2)}; a correct formula fails with probability at most "
      f"{sig(false_alarm, 1)})")
glue("att_z2", float(sig(z4, 2)), display=False)
glue("att_tol2", TOL2, display=False)
glue("att_tol2_p", float(sig(false_alarm, 1)), display=False)
# (3) small-beta limit against the first-order closed form
beta = 1e-5
T4_small = attention.kq_gradient_table(E4, attention.kq_value_matrix(E4, spec4, beta), spec4) / beta
T4_first = attention.kq_first_order_table(spec4)
print(f"(3) exact table / beta at beta = 1e-5 vs closed form:  max |difference| "
      f"{bound(float((T4_small - T4_first).abs().max()), 1e-7)}  (entries up to "
      f"{exact(float(T4_first.abs().max()))})")
# (4) the three numbers of the proposition
spec8 = attention.cluster_task(8, 2, L=32, noise=0.5, informative="cluster")
T8 = attention.kq_first_order_table(spec8)
cl8 = attention.cluster_ids(8, 2)
same8 = cl8[:, None] == cl8[None, :]
eye8 = torch.eye(256, dtype=torch.bool)
cf = attention.kq_cluster_closed_form(8, 2, 32, 0.5)
print("(4) m = 8, k = 2, L = 32, eps = 0.5     moments formula (min..max)          proposition")
for name, sel in [("self", eye8), ("same", same8 & ~eye8), ("cross", ~same8)]:
    vals = T8[sel]
    print(f"    {name:5s} entries   {exact(float(vals.min())):>16s}..{exact(float(vals.max())):16s}"
          f"   {exact(cf[name]):>16s}")

# %% [markdown]
# The lemma's formula agrees with autograd to rounding error. The sample gradient agrees up to
# Monte Carlo noise: its standard errors come from the spread of $20$ batches of $10{,}000$, and the
# largest of $256$ differences is {glue:text}`att_z2` standard errors, what $256$ independent
# Gaussian errors typically give. The check's tolerance is {glue:text}`att_tol2` standard errors:
# with the right formula each ratio is roughly a Student-$t$ variable with $19$ degrees of freedom,
# so the largest of $256$ exceeds the tolerance with probability at most about
# {glue:text}`att_tol2_p` (a union bound). The first-order table is the small-$\beta$ limit of the
# exact one (at $\beta=10^{-5}$
# the difference is of order $\beta$ times the entries). The
# theorem is a first-order statement. How far does it carry at the natural scale $\beta=1$,
# where the logits of $W_{V}^\star$ are shares between $0$ and $1$? The scatter plot compares the
# exact table at $\beta=1$ with $\beta T^{(1)}$, entry by entry.

# %%
same4 = (attention.cluster_ids(4, 1)[:, None] == attention.cluster_ids(4, 1)[None, :])
fig = attention.plot_kq_gradient_check(
    T4, T4_first, same4, xlabel="exact T at beta = 1 (enumeration)",
    ylabel="first-order closed form T1 (beta = 1)",
    title="Gradient table of W_KQ at zero: m = 4, k = 1, L = 5, eps = 0.5")
plt.show()
for beta_ in (1.0, 5.0, 20.0):
    Tb = attention.kq_gradient_table(E4, attention.kq_value_matrix(E4, spec4, beta_), spec4)
    print(f"beta = {beta_:4.1f}: smallest same-cluster entry {exact(float(Tb[same4].min())):>16s}, "
          f"largest cross-cluster entry {exact(float(Tb[~same4].max())):>16s}")

# %% [markdown]
# Even at $\beta=20$, far outside the first-order regime, the exact table keeps the sign pattern
# in this example: this is a numerical observation, not part of the theorem.

# %% [markdown]
# (fig-paper-3c)=
#
# ## The paper's figure: attention heat maps at $m=8$
#
# The paper's Fig. 3(c) shows "the average attention score heat map with $m=8$ and the cluster
# structure", and Fig. C.8 names the neighbourhood $\mathcal{N}(z^*)=\{z:z_1=z^*_1,z_2=z^*_2\}\setminus\{z^*\}$:
# the `"cluster"` task with $k=2$. We train the full model (embeddings, $W_{KQ}$ from $0$ and
# $W_{V}$ from $0$) on that task with $L=32$ and $\varepsilon=0.5$, and draw the context-independent
# score matrix $S=W_{E} W_{KQ}W_{E}^\top$ with each row's mean removed, next to the first-order table
# $T^{(1)}$ that one small gradient step would produce. In this course we take the heat map to be
# this score matrix; what exactly the paper averages is not known to us.

# %%
spec_fig = attention.cluster_task(8, 2, L=32, noise=0.5, informative="cluster")
base_fig = TrainConfig(task=spec_fig, d=32, steps=400, batch_size=256, lr=0.01, eval_every=0,
                       device=device)
res_fig = sweep(base_fig, seeds=(0, 1), variants={"trained": {}, "frozen": {"train_KQ": False}},
                progress=False)
S_fig = attention.score_matrix(res_fig.model.member(0))
fig = attention.plot_attention_heatmap(
    {"one small gradient step: first-order table T1 (x 1e5)": T8 * 1e5,
     "trained model (seed 0): scores, row mean removed": S_fig}, m=8, k=2,
    title="Attention scores by (query token, key token), m = 8, clusters = first 2 bits")
plt.show()

# %%
mass_fig = attention.attention_mass_by_cluster(res_fig.model, spec_fig, k=2, n=2048, seed=0)
blocks = attention.cluster_block_means(S_fig, cl8)
blocks_T = attention.cluster_block_means(T8, cl8)
print("mean score by (query cluster, key cluster), trained model seed 0 (rows: query cluster; "
      "one decimal: the digits move by about 1e-4 between CPUs)")
for b in range(4):
    print("   " + "  ".join(f"{float(v):+6.1f}" for v in blocks[b]))
gaps = [float(blocks[b, b] - max(blocks[b, c] for c in range(4) if c != b)) for b in range(4)]
print(f"   in every row the own-cluster block is the largest, by more than 4: {min(gaps) > 4}")
print("same, first-order table T1 (units of 1e-5)")
for b in range(4):
    print("   " + "  ".join(f"{exact(float(v) * 1e5):>14s}" for v in blocks_T[b]))
print("attention mass on each key cluster, by query cluster (trained, seed 0)")
for b in range(4):
    print("   " + "  ".join(f"{float(v):6.2f}" for v in mass_fig.mass_matrix[0, b]))
print(f"share of the query's cluster in the 2048 contexts: {mass_fig.share:.3f} "
      f"(expected share {exact(expected_share(spec_fig))})")
for i, (label, seed) in enumerate(res_fig.labels):
    print(f"{label:8s} W_KQ, seed {seed}: mass on the query's cluster {float(mass_fig.mass[i]):.3f}")

# %% [markdown]
# Both heat maps are block diagonal: queries score keys of their own cluster above keys of the
# other three clusters. The first-order table has exactly three values, as the proposition says;
# the trained scores are larger and less regular, but the same blocks dominate every row, and the
# trained attention puts nearly all of its mass on the query's cluster while that cluster holds only
# about half of the context.

# %% [markdown]
# The paper's sources also hold heat maps for $m=5,6,7$ (`heat_map_n5`..`heat_map_n7`). The same
# training, one seed per $m$:

# %%
heat_small = {}
for m_h in (5, 6, 7):
    spec_h = attention.cluster_task(m_h, 2, L=32, noise=0.5, informative="cluster")
    res_h = lca.fit(TrainConfig(task=spec_h, d=32, steps=400, batch_size=256, lr=0.01,
                                  eval_every=0, device=device), progress=False)
    S_h = attention.score_matrix(res_h.model)
    mass_h = attention.attention_mass_by_cluster(res_h.model, spec_h, k=2, n=2048, seed=0)
    heat_small[m_h] = (attention.cluster_block_means(S_h, attention.cluster_ids(m_h, 2)), mass_h)
    attention.plot_attention_heatmap({"trained model (seed 0): scores, row mean removed": S_h}, m=m_h,
                                 k=2, title=f"Attention scores by (query token, key token), m = {m_h}, "
                                 "clusters = first 2 bits")
    plt.show()

# %%
for m_h, (blocks_h, mass_h) in heat_small.items():
    diag = sum(float(blocks_h[b, b]) for b in range(4)) / 4
    off = (float(blocks_h.sum()) - 4 * diag) / 12
    print(f"m = {m_h}: mean same-cluster score {diag:+5.1f}, mean cross-cluster score {off:+5.1f}, "
          f"attention mass on the query's cluster {float(mass_h.mass):.3f}")
# the share of the query's cluster depends on L and the noise rate only, not on m
positions = 2048 * spec_h.L
counts_h = {round(mass_h.share * positions) for _, mass_h in heat_small.values()}
print(f"share of the query's cluster: expected {exact(expected_share(spec_h))} at every m; in the "
      f"2048 sampled contexts {', '.join(f'{c} of {positions} positions' for c in counts_h)}, the "
      f"same count at every m (one seed draws the same informative and noise positions): "
      f"{len(counts_h) == 1}")

# %% [markdown]
# ## Does selection help? Mass and accuracy with $W_{KQ}$ trained or frozen
#
# On the `"cluster"` neighbourhood the target cannot be identified (any cluster token missing from
# the context is as likely as any other), so accuracy is uninformative there. We switch to the
# `"sphere"` neighbourhood, where the Bayes-optimal accuracy is high, raise the noise to
# $\varepsilon=0.75$ and shorten the context to $L=16$, so that noise matters. Two seeds each, with
# $W_{KQ}$ trained from $0$ or frozen at $0$ (uniform attention).

# %%
spec_sel = attention.cluster_task(8, 2, L=16, noise=0.75, informative="sphere")
base_sel = TrainConfig(task=spec_sel, d=32, steps=500, batch_size=256, lr=0.01, eval_every=0,
                       device=device)
res_sel = sweep(base_sel, seeds=(0, 1), variants={"trained": {}, "frozen": {"train_KQ": False}},
                progress=False)
acc_sel = evaluate(res_sel.model, spec_sel, n=4096, seed=1)
mass_sel = attention.attention_mass_by_cluster(res_sel.model, spec_sel, k=2, n=4096, seed=2)
bayes_sel = lca.bayes_accuracy(spec_sel, n=4096, seed=1)
rows = {}
for variant in ("trained", "frozen"):
    idx = [i for i, (lab, _) in enumerate(res_sel.labels) if lab == variant]
    rows[f"W_KQ {variant}"] = {"mass": sum(float(mass_sel.mass[i]) for i in idx) / len(idx),
                               "share": mass_sel.share,
                               "accuracy": sum(acc_sel[i] for i in idx) / len(idx)}
fig = attention.plot_cluster_attention(
    rows, title="Sphere cluster task, m = 8, k = 2, L = 16, eps = 0.75 (mean of 2 seeds)")
plt.show()

# %%
print(f"Bayes-optimal accuracy (estimated on 4096 contexts): {mc_fraction(bayes_sel, 4096)}")
print(f"share of the query's cluster: {mass_sel.share:.3f} in the 4096 contexts "
      f"(expected share {exact(expected_share(spec_sel))})")
for name, row in rows.items():
    print(f"{name:13s} (mean of 2 seeds): accuracy {sig(row['accuracy'], 2)}   mass on the query's "
          f"cluster {row['mass']:.3f}")
acc_by = {v: [acc_sel[i] for i, (lab, _) in enumerate(res_sel.labels) if lab == v]
          for v in ("trained", "frozen")}
GAP_SEL, TOL_SEL = 0.15, 0.02      # the two claims of the text, as tolerances
print(f"every trained seed beats every frozen seed by more than {GAP_SEL} in accuracy: "
      f"{min(acc_by['trained']) - max(acc_by['frozen']) > GAP_SEL}")
print(f"every trained seed within {TOL_SEL} of the Bayes-optimal estimate: "
      f"{max(bayes_sel - a for a in acc_by['trained']) < TOL_SEL}")
glue("att_gap_sel", GAP_SEL, display=False)
glue("att_tol_sel", TOL_SEL, display=False)
# the largest binomial standard error of an accuracy on 4096 contexts, rounded up
glue("att_se_4096", math.ceil(1000 * 0.5 / math.sqrt(4096)) / 1000, display=False)

# %% [markdown]
# With uniform attention the mass equals the share, under a third here, and most of what the
# value matrix reads is noise. A trained $W_{KQ}$ moves almost all of the mass onto the
# query's cluster and the accuracy comes within {glue:text}`att_tol_sel` of the Bayes-optimal
# estimate at both seeds; with $W_{KQ}$ frozen at $0$ every seed is more than
# {glue:text}`att_gap_sel` below every trained seed. (Each accuracy is measured on $4096$ contexts,
# a standard error of at most {glue:text}`att_se_4096`, far smaller than the gap between trained
# and frozen.)

# %% [markdown]
# ## Where it breaks
#
# The theorem needs noise ($\varepsilon>0$) that lives *outside* the query's cluster. We violate
# each in turn with the `"sphere"` task, $m=8$, $k=2$, $L=16$:
#
# - **no noise** ($\varepsilon=0$): every context token is in the query's cluster, so the share is
#   already $1$ and the first-order table is identically $0$;
# - **noise inside the cluster**: the noise tokens are uniform on the target's own cluster instead
#   of the other clusters (noise law `lca.cluster(2)`, $\varepsilon=0.75$). The share is again $1$
#   and cluster membership no longer separates signal from noise, so the sign pattern of the
#   theorem fails: some same-cluster entries of $T^{(1)}$ are negative.

# %%
nb_sphere = spec_sel.neighbourhood
spec_clean = spec_sel.with_(noise=0.0)
spec_inside = lca.TaskSpec(m=8, L=16, neighbourhood=nb_sphere, noise=0.75,
                           noise_law=lca.cluster(2), clean_last=True)
broken = {}
for name, spec_b in [("no noise", spec_clean), ("noise inside the cluster", spec_inside)]:
    T_b = attention.kq_first_order_table(spec_b)
    res_b = sweep(base_sel.with_(task=spec_b, steps=300), seeds=(0,),
                  variants={"trained": {}, "frozen": {"train_KQ": False}}, progress=False)
    broken[name] = res_b
    acc_b = evaluate(res_b.model, spec_b, n=4096, seed=1)
    mass_b = attention.attention_mass_by_cluster(res_b.model, spec_b, k=2, n=2048, seed=2)
    print(f"{name}:")
    lo_b = float(T_b[same8].min()) * 1e5
    hi_b = float(T_b[~same8].max()) * 1e5
    # entries below 1e-9 (x 1e5) are rounding error of an exact 0: print them as a bound
    print(f"   first-order table identically 0: {bool(T_b.abs().max() < 1e-15)};  smallest "
          f"same-cluster entry x 1e5: {exact(lo_b) if abs(lo_b) > 1e-9 else bound(lo_b, 1e-9)};  "
          f"largest cross-cluster entry x 1e5: "
          f"{exact(hi_b) if abs(hi_b) > 1e-9 else bound(hi_b, 1e-9)}")
    print(f"   Bayes-optimal accuracy (estimated on 4096 contexts) "
          f"{mc_fraction(lca.bayes_accuracy(spec_b, n=4096, seed=1), 4096)}")
    off_one = max(abs(1 - mass_b.share), float((1 - mass_b.mass).abs().max()))
    print(f"   share of the query's cluster and attention mass on it, both variants: 1 (deviation "
          f"{bound(off_one, 1e-6)})")
    for i, (label, _) in enumerate(res_b.labels):
        print(f"   W_KQ {label:8s}: accuracy {sig(acc_b[i], 2)}")
S_in = attention.score_matrix(broken["noise inside the cluster"].model.member(0))
D8 = spec_inside.space.distances()
print("noise inside the cluster, trained W_KQ: mean score (row mean removed) of same-cluster keys "
      "by Hamming distance to the query")
print("   " + "   ".join(f"d={dist}: {float(S_in[(D8 == dist) & same8].mean()):+.1f}"
                         for dist in range(7)))

# %% [markdown]
# Without noise, training $W_{KQ}$ changes nothing that matters: the cluster mass and the share are
# both $1$ and the first-order table vanishes. With noise inside the cluster, the mass and the share
# are again both $1$, so attention cannot separate signal from noise *by cluster*, and the
# first-order table has negative same-cluster entries: the sign pattern of the theorem is gone.
# Training $W_{KQ}$ still helps accuracy here, but through a different rule: the last line shows that
# the trained scores favour keys at even Hamming distance $0$ or $2$ from the query, the distances
# at which two Hamming neighbours of one target lie. The cluster picture no longer describes what
# attention does. Two more ways to switch the signal off, checked in `tests/test_attention.py`:
# $W_{V}=0$ gives $T=0$ exactly, and $W_{V}=I$ with orthonormal embeddings gives $T^{(1)}=0$. The
# gradient that trains attention is driven by the associative memory in $W_{V}$.

# %% [markdown]
# ## Explore
#
# The first-order table $T^{(1)}$ for the cluster task at $m=6$: move the noise rate, the context
# length, the number of cluster bits and the informative neighbourhood, and watch the blocks.
# Everything is computed from the closed form, so it redraws instantly.

# %%
def draw_first_order(noise=0.5, L=16, k=2, informative="cluster"):
    spec_x = attention.cluster_task(6, k, L=L, noise=noise, informative=informative)
    T_x = attention.kq_first_order_table(spec_x)
    return attention.plot_attention_heatmap(
        {f"T1: {informative}, k = {k}, L = {L}, eps = {noise:.2f}": T_x}, m=6, k=k,
        cbar_label="first-order score change per unit step")


explorer(
    draw_first_order, title="First-order gradient table of W_KQ, m = 6",
    noise=widgets.FloatSlider(value=0.5, min=0.0, max=0.95, step=0.05, description="noise"),
    L=widgets.IntSlider(value=16, min=2, max=64, step=1, description="L"),
    k=widgets.IntSlider(value=2, min=1, max=4, step=1, description="k"),
    informative=widgets.Dropdown(options=["cluster", "sphere"], value="cluster",
                                 description="N(y)"))

# %% [markdown]
# ## Exercises
#
# ```{exercise} Attention mass on the query's cluster
# :label: ex-ch6-mass
#
# Write `mass(attention, contexts, m, k)` that takes attention weights `[n, L]` and contexts
# `[n, L]` and returns (as a float) the mean over contexts of $\mu(x)$, the attention mass on
# positions whose token has the same first $k$ latent bits as the query $x_L$ (the query's own
# position included).
# ```
#
# ```{solution} ex-ch6-mass
# :class: dropdown
#
# The first $k$ bits of token $t$ are `t >> (m - k)`. Compare them with those of the last column
# and sum the attention weights where they agree:
#
# ~~~python
# def mass(attention, contexts, m, k):
#     cl = contexts >> (m - k)
#     same = (cl == cl[:, -1:]).to(attention.dtype)
#     return float((attention * same).sum(1).mean())
# ~~~
# ```

# %%
def mass(attention, contexts, m, k):
    cl = contexts >> (m - k)
    same = (cl == cl[:, -1:]).to(attention.dtype)
    return float((attention * same).sum(1).mean())


check_attention_mass_by_cluster(mass)

# %% [markdown]
# ```{exercise} The gradient of $W_{KQ}$ on a batch
# :label: ex-ch6-gradient
#
# Write `kq_grad(W_E, W_V, contexts, targets)` returning the gradient `[d, d]` of the *mean*
# cross-entropy over the batch with respect to $W_{KQ}$ at $W_{KQ}=0$, using the formula of
# {prf:ref}`ch6-kq-gradient-exact` with the expectation replaced by the batch mean (no autograd).
# ```
#
# ```{solution} ex-ch6-gradient
# :class: dropdown
#
# Build the frequencies $c$ (`[n, V]`), the logits $Mc$, the residuals $r=M^\top(e_y-p)$ and their
# $c$-weighted mean $\bar r$; then $T$ is a sum of outer products of the one-hot query with
# $c\odot(r-\bar r)$:
#
# ~~~python
# def kq_grad(W_E, W_V, contexts, targets):
#     E, Wv = W_E.double(), W_V.double()
#     V, (n, L) = E.shape[0], contexts.shape
#     M = E @ Wv @ E.T
#     c = torch.zeros(n, V, dtype=torch.float64)
#     c.scatter_add_(1, contexts, torch.full(contexts.shape, 1 / L, dtype=torch.float64))
#     p = torch.softmax(c @ M.T, dim=1)
#     r = (torch.nn.functional.one_hot(targets, V).double() - p) @ M
#     rbar = (c * r).sum(1, keepdim=True)
#     q = torch.nn.functional.one_hot(contexts[:, -1], V).double()
#     T = q.T @ (c * (r - rbar)) / n
#     return -E.T @ T @ E
# ~~~
# ```

# %%
def kq_grad(W_E, W_V, contexts, targets):
    E, Wv = W_E.double(), W_V.double()
    V, (n, L) = E.shape[0], contexts.shape
    M = E @ Wv @ E.T
    c = torch.zeros(n, V, dtype=torch.float64)
    c.scatter_add_(1, contexts, torch.full(contexts.shape, 1 / L, dtype=torch.float64))
    p = torch.softmax(c @ M.T, dim=1)
    r = (torch.nn.functional.one_hot(targets, V).double() - p) @ M
    rbar = (c * r).sum(1, keepdim=True)
    q = torch.nn.functional.one_hot(contexts[:, -1], V).double()
    T = q.T @ (c * (r - rbar)) / n
    return -E.T @ T @ E


check_kq_gradient(kq_grad)

# %% [markdown]
# ```{exercise} Derive the three numbers
# :label: ex-ch6-closed-form
#
# For the `"cluster"` neighbourhood, derive the three values of
# {prf:ref}`ch6-kq-cluster-closed-form` from the formula for $T^{(1)}$ in
# {prf:ref}`ch6-kq-gradient`, and implement `entries(m, k, L, noise)` returning the triple
# (self, same, cross). Hint: given the query and the target, the number $B$ of informative tokens
# among $x_1,\dots,x_{L-1}$ is $\mathrm{Binomial}(L-1,1-\varepsilon)$ and
# $\mathbb{E}[B(L-1-B)]=(L-1)(L-2)\varepsilon(1-\varepsilon)$.
# ```
#
# ```{solution} ex-ch6-closed-form
# :class: dropdown
#
# Condition on $x_L=i$ (probability $1/V$; then $y$ is uniform on the $s-1$ other tokens of the
# cluster). Then $c(\mathcal{N}(y))=(1+B)/L$. For the diagonal, $c_i=(1+N_i)/L$ with
# $N_i\mid B\sim\mathrm{Binomial}(B,1/(s-1))$, so $\mathbb{E}[(1+N_i)(L-1-B)]/L^2$ gives the first value.
# For $j\ne i$ in the cluster only the $s-2$ targets $y\notin\{i,j\}$ contribute, with
# $\mathbb{E}[N_j(L-1-B)]=\mathbb{E}[B(L-1-B)]/(s-1)$. For $j$ in another cluster the count $N_j$ given $B$ is
# $\mathrm{Binomial}(L-1-B,1/(V-s))$ and the entry is $-\mathbb{E}[N_j(1+B)]/(VL^2)$. The full computation
# is in the appendix.
#
# ~~~python
# def entries(m, k, L, eps):
#     V, s = 2 ** m, 2 ** (m - k)
#     self_ = (L - 1) * eps / (V * L**2) * (1 + (L - 2) * (1 - eps) / (s - 1))
#     same = (s - 2) * (L - 1) * (L - 2) * eps * (1 - eps) / (V * L**2 * (s - 1) ** 2)
#     cross = -(L - 1) * eps * (1 + (L - 2) * (1 - eps)) / (V * L**2 * (V - s))
#     return self_, same, cross
# ~~~
# ```

# %%
def entries(m, k, L, eps):
    V, s = 2 ** m, 2 ** (m - k)
    self_ = (L - 1) * eps / (V * L**2) * (1 + (L - 2) * (1 - eps) / (s - 1))
    same = (s - 2) * (L - 1) * (L - 2) * eps * (1 - eps) / (V * L**2 * (s - 1) ** 2)
    cross = -(L - 1) * eps * (1 + (L - 2) * (1 - eps)) / (V * L**2 * (V - s))
    return self_, same, cross


check_kq_cluster_entries(entries)

# %% [markdown]
# ```{exercise} Why the rows sum to zero
# :label: ex-ch6-rows
#
# Prove that every row of $T$ sums to $0$, for any $W_{E}$ and $W_{V}$, and explain why no gradient
# step could do better than change scores *relative to each other* within a row. Hint: what happens
# to the attention weights of a query if the same constant is added to all of its scores?
# ```
#
# ```{solution} ex-ch6-rows
# :class: dropdown
#
# $\sum_jT_{ij}=\mathbb{E}[\mathbb 1[x_L=i]\sum_jc_j(r_j-\bar r)]$ and $\sum_jc_j(r_j-\bar r)=\bar r-\bar r=0$
# because $\sum_jc_j=1$. Softmax is unchanged when a constant is added to all of its inputs, so
# the loss is constant along the direction that adds $t\cdot\mathbb 1$ to row $i$ of the score
# matrix; the gradient is orthogonal to that direction, which is the statement $\sum_jT_{ij}=0$
# (with orthonormal embeddings). This is also why the heat maps above remove each row's mean.
# ```

# %% [markdown]
# ## Summary
#
# Attention learns *where to listen* from the same gradient that trains everything else. At
# $W_{KQ}=0$ the gradient is a table $T$ indexed by (query token, key token), and with the
# associative memory of {doc}`04_value_matrix` in $W_{V}$ its first-order part raises every score
# inside the query's cluster and lowers every score across clusters, whenever the noise comes
# from other clusters. Trained models show the same block-diagonal heat map as the paper's
# Fig. 3(c), put nearly all of their attention on the query's cluster, and gain accuracy from it.
# This filter matters for hijacking: in {doc}`07_hijacking_in_model` we will see that hijack
# tokens from another cluster are largely ignored by a trained attention layer, while the
# uniform-attention model is hijacked as soon as they form a majority.
