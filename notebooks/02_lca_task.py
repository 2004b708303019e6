# %% tags=["remove-cell"]
# Colab setup: install the course package (runs only on Google Colab)
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "lca[llm] @ git+https://github.com/elephants-course/elephants@v0.1.0"], check=True)

# %% [markdown]
# # The latent concept association task
#
# Context hijacking is hard to study in a real language model: we do not know which concepts a
# token carries, nor what the right answer "should" be after an odd context. The paper
# {cite}`jiang2024elephants` therefore builds a synthetic task in which both are known. Every
# token *is* a vector of binary latent concepts. A hidden target token is chosen, and the context
# is filled with tokens whose concepts are close to the target's. The model sees only the context
# and must name the target, so it has to associate "tokens like these" with "the token they
# surround". This chapter defines the task precisely, draws it, and computes the best accuracy any
# model can reach on it. For the simplest version we derive that ceiling in closed form.
#
# The paper's full text is not available to this course, so the sampling details below (uniform
# target, independent context tokens, a noise mixture) are **the course's own precise version** of
# the task, chosen to agree with everything that is known about it: latent binary concepts,
# Hamming distance as similarity, and a neighbourhood of the target that excludes the target.
#
# **In this chapter you will**
#
# - represent tokens as latent bit vectors and measure similarity by Hamming distance;
# - build neighbourhoods (Hamming spheres, balls, clusters, your own) and sample contexts from them;
# - prove the exact law of a sampled context and check the sampler with a chi-square test;
# - derive the Bayes-optimal accuracy of the radius-1 task in closed form and compare it with
#   Monte Carlo as the context grows, with and without noise.

# %% tags=["hide-input"]
import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

import lca
from lca import glue, lca_task
from lca.lca_task import (
    check_bayes_posterior,
    check_neighbourhood_mask,
    check_sample_context,
    check_sphere2_pair_accuracy,
)
from lca.report import bound, exact, pm, sig
from lca.task import bayes_correct
from lca.widgets import explorer

torch.manual_seed(0)
device = lca.default_device()
torch.set_num_threads(1)

# %% [markdown]
# ## Definitions
#
# ```{prf:definition} Latent space and tokens
# :label: def-lca-latent-space
#
# Fix $m\ge1$ binary latent concepts. The latent space is $\mathcal Z=\{0,1\}^m$ and the vocabulary
# has $V=2^m$ tokens $0,\dots,V-1$. Token $i$ is identified with the latent vector $z=\iota^{-1}(i)$
# whose bits $z_1z_2\dots z_m$ are the binary digits of $i$, most significant first (so token
# $5$ at $m=4$ is $0101$). The *Hamming distance* $D_H(z,z')=\sum_{k=1}^m\mathbb 1[z_k\ne z'_k]$
# counts the concepts on which two tokens disagree.
# ```
#
# ```{prf:definition} Neighbourhoods
# :label: def-lca-neighbourhood
#
# A neighbourhood family assigns to every token $y$ a non-empty set $\mathcal N(y)$ of tokens that
# may appear in its context, never containing $y$ itself. The package provides:
#
# - the Hamming sphere $\mathcal N_r(y)=\{x:D_H(x,y)=r\}$ (`lca.hamming_sphere(r)`, $\binom mr$
#   tokens); $\mathcal N_1$ is the main example;
# - the Hamming ball $\{x:1\le D_H(x,y)\le r\}$ (`lca.hamming_ball(r)`);
# - the cluster $\{x\ne y: x_1=y_1,\dots,x_k=y_k\}$ of tokens sharing the first $k$ concepts
#   (`lca.cluster(k)`), the structure shown in the paper's attention figures;
# - any user mask $A\in\{0,1\}^{V\times V}$ with zero diagonal, $A_{yx}=1$ iff
#   $x\in\mathcal N(y)$ (the adjacency matrix of the neighbourhood, the $A$ of the notation
#   table), `lca.custom(mask)`.
# ```
#
# ```{prf:definition} The LCA task
# :label: def-lca-task
#
# Given $m$, a context length $L$, a neighbourhood family and a noise rate $0\le\varepsilon<1$,
# one example is drawn as follows: the target $y$ is uniform on the $V$ tokens; then the context
# tokens $x_1,\dots,x_L$ are drawn independently given $y$, each with probability $1-\varepsilon$
# uniform on $\mathcal N(y)$ and with probability $\varepsilon$ a noise token, uniform on the
# $V-1$ tokens other than $y$. The input is $x=(x_1,\dots,x_L)$ and the label is $y$. In code:
# `spec = lca.TaskSpec(m, L, neighbourhood, noise)` and `lca.sample(spec, n, seed)`.
# ```
#
# ```{prf:definition} Bayes-optimal accuracy
# :label: def-lca-bayes
#
# A predictor is any function $f$ from contexts to tokens. The Bayes-optimal accuracy
# $\mathrm{acc}^\star=\max_fP(f(x)=y)$ is attained by predicting a mode of the posterior
# $P(y\mid x)$, ties broken uniformly at random, and equals $\mathbb E[\max_{y'}P(y'\mid x)]$. No
# model, however trained, can beat it; `lca.bayes_accuracy(spec)` estimates it by Monte Carlo.
# ```

# %% [markdown]
# ## Look at it first
#
# One example at $m=6$, $L=10$ with the radius-1 sphere, drawn in {numref}`fig-ch2-example`: the
# top row is the target's latent vector, each further row a context token; the framed cells are
# the concepts on which a context token disagrees with the target. Every context token flips
# exactly one concept.

# %%
space = lca.LatentSpace(6)
spec = lca.TaskSpec(m=6, L=10)
ctx, y = lca.sample(spec, 1, seed=3)
Z = space.latents

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch2-example", "caption": "One example of the radius-1 task at $m=6$, $L=10$: the target $y$ on top, the context tokens $x_1,\\dots,x_{10}$ below, one latent bit per column (blue = 1). The bit in which a context token differs from the target is framed in vermillion."}, "image": {"alt": "A grid of 11 rows and 6 columns of white and blue cells; in each of the 10 context rows exactly one cell is framed, the one bit that differs from the target row on top."}}
fig = lca_task.plot_context(Z[ctx[0]], Z[y[0]], tokens=ctx[0], target=y[0])
plt.show()

# %%
print("target y =", int(y[0]), " latent", "".join(map(str, Z[y[0]].tolist())))
print("context   ", ctx[0].tolist())
print("distances ", space.hamming(ctx[0], y[0]).tolist())

# %% [markdown]
# {numref}`fig-ch2-masks` shows the masks of the four kinds of neighbourhood at $m=4$ ($V=16$),
# next to the Hamming distance matrix they are cut from. The custom family here is "distance 1,
# or the complementary token": the mask of any rule you like.

# %%
space4 = lca.LatentSpace(4)
D4 = space4.distances()
custom_mask = (D4 == 1) | (D4 == 4)
families = {
    "sphere $r=1$": lca.hamming_sphere(1),
    "ball $r=2$": lca.hamming_ball(2),
    "cluster $k=2$": lca.cluster(2),
    "custom": lca.custom(custom_mask, "distance 1 or 4"),
}
masks = {name: fam.mask(space4) for name, fam in families.items()}

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch2-masks", "caption": "At $m=4$: the Hamming distance matrix $D_H(y,x)$ (first panel) and the masks of four neighbourhood families, row $y$ the target and column $x$ a context token, blue where $x\\in\\mathcal N(y)$."}, "image": {"alt": "Five 16 by 16 matrices in a grid: a colour-coded distance matrix, then four blue and white masks; the sphere mask has 4 blue cells per row, the ball 10, the cluster mask is block-diagonal with blocks of 4, the custom mask has 5 per row."}}
fig = lca_task.plot_neighbourhood_masks(D4, masks)
plt.show()

# %%
for name, fam in families.items():
    deg = fam.degrees(space4)
    print(f"{name.replace('$', ''):12s} |N(y)| = {int(deg.min())}..{int(deg.max())}, "
          f"target excluded: {not bool(torch.diagonal(masks[name]).any())}")

# %% [markdown]
# The sphere's mask is the adjacency matrix of the hypercube graph: row $y$ marks the $m$ tokens
# one bit-flip away from $y$. The cluster's is block-diagonal because tokens sharing their first
# two bits are consecutive ids.
#
# ## Results
#
# ```{prf:theorem} The law of a context
# :label: ch2-sampler-law
#
# The sampler draws $(x,y)$ with
#
# $$
# \begin{aligned}
# P(y,x)=\frac1V\prod_{l=1}^L\Big(&(1-\varepsilon)\,
#   \frac{\mathbb 1[x_l\in\mathcal N(y)]}{|\mathcal N(y)|}\\
#   &+\varepsilon\,\frac{\mathbb 1[x_l\ne y]}{V-1}\Big).
# \end{aligned}
# $$
#
# Hence the posterior is
# $P(y\mid x)\propto\prod_lP(x_l\mid y)$; for $\varepsilon=0$ and neighbourhoods of equal size it
# is uniform on the *consistent set* $\mathcal C(x)=\{y':\text{every }x_l\in\mathcal N(y')\}$.
# ```
#
# ```{prf:proof}
# Read the algorithm: the target is `randint(V)`; an informative token is entry
# $\lfloor uD\rfloor$ of the sorted list of the $D=|\mathcal N(y)|$ neighbours, for a fresh
# uniform $u$, hence uniform; a fresh uniform below $\varepsilon$ makes the position noise, drawn
# as $r+\mathbb 1[r\ge y]$ with $r$ uniform on $\{0,\dots,V-2\}$, a bijection onto the tokens
# other than $y$. Positions use separate random numbers, so they are independent given $y$.
# Bayes' rule gives the posterior. The full proof, including `clean_last` and other noise laws, is
# {prf:ref}`thm-sampler-law`.
# ```
#
# For the sphere $\mathcal N_1$ the consistent set is small, for a geometric reason.
#
# ```{prf:lemma} Two common neighbours
# :label: ch2-common-neighbours
#
# Two distinct tokens have exactly $2$ common $\mathcal N_1$-neighbours if they are at Hamming
# distance $2$, and none otherwise.
# ```
#
# ```{prf:proof}
# A common neighbour forces distance at most $2$, and flipping one bit changes the parity of the
# number of ones, so the distance is even: it is $2$. If $z'=z\oplus e_a\oplus e_b$ (bits $a$ and
# $b$ flipped), a neighbour $z\oplus e_c$ of $z$ is a neighbour of $z'$ iff $c\in\{a,b\}$.
# ```
#
# ```{prf:theorem} Bayes-optimal accuracy of the radius-1 task
# :label: ch2-bayes-sphere
#
# For the noise-free task with $\mathcal N_1$, let $K$ be the number of distinct tokens in the
# context. The consistent set has $m$ elements if $K=1$, $2$ if $K=2$, and only the target if
# $K\ge3$. Consequently
#
# $$
# \begin{aligned}
# \mathrm{acc}^\star(m,L)&=\mathbb E\Big[\frac1{|\mathcal C(x)|}\Big]\\
# &=1-\frac{m-1}{m^L}-\frac{m(m-1)(2^L-2)}{4\,m^L}.
# \end{aligned}
# $$
# ```
#
# ```{prf:proof}
# The posterior is uniform on $\mathcal C(x)$, so $\max_{y'}P(y'\mid x)=1/|\mathcal C(x)|$.
# With $K=1$, $\mathcal C(x)$ is the whole sphere $\mathcal N_1(x_1)$ around the single token $x_1$. With $K=2$ the two tokens flip
# different bits of $y$, are at distance $2$, and by {prf:ref}`ch2-common-neighbours` leave two
# candidates: $y$ and $y$ with both bits flipped. A third distinct token is at distance $3$ from
# that second candidate, so $K\ge3$ leaves only $y$. Finally $P(K=1)=m^{1-L}$ and
# $P(K=2)=\binom m2(2^L-2)/m^L$, and
# $\mathrm{acc}^\star=P(K=1)/m+P(K=2)/2+1-P(K=1)-P(K=2)$. Details:
# {prf:ref}`thm-bayes-sphere`.
# ```
#
# Two consequences are worth a look. At $m=2$ the accuracy is $1/2$ for every $L$: tokens $00$
# and $11$ have the same neighbours, so no context can separate them. For $m\ge3$ the error decays
# like $\frac{m(m-1)}4(2/m)^L$, faster for larger $m$: more concepts make a context more
# informative, because two random flips rarely coincide.

# %% [markdown]
# ## Check it
#
# First the sampler. {prf:ref}`ch2-sampler-law` gives the probability of every (target, context)
# pair. At $m=3$, $L=2$, $\varepsilon=0.25$ there are $8\times8^2=512$ cells; we draw $200\,000$
# examples and run a Pearson chi-square test against the exact table
# (`lca.lca_task.context_law_table`, computed from the definition). As a control, the same counts
# are tested against the law with the noise forgotten.

# %%
spec = lca.TaskSpec(m=3, L=2, noise=0.25)
ctx, y = lca.sample(spec, 200_000, seed=2024)
_, joint = lca_task.context_law_table(spec)
res = lca_task.sampler_chi_square(spec, ctx, y)
# every number below is a function of integer counts and exact probabilities: printed in full
print(f"exact law:        chi2 = {exact(res.statistic)}, dof = {res.dof}, "
      f"p = {exact(res.p_value)}")
counts = torch.bincount(y * 64 + lca_task.context_codes(ctx, 8), minlength=512).double()
_, noiseless = lca_task.context_law_table(spec.with_(noise=0.0))
wrong = lca_task.chi_square(counts, noiseless.flatten())
note = " (an impossible cell was observed)" if wrong.statistic == float("inf") else ""
print(f"noise forgotten:  chi2 = {exact(wrong.statistic)}, "
      f"p = {exact(wrong.p_value)}{note}")
gap = float((counts.reshape(8, 64) / 200_000 - joint).abs().max())
print(f"largest |empirical - exact| cell probability: {exact(gap)}")

# %% [markdown]
# The sampler passes (a p-value far from $0$) and the control fails. Next the closed form of
# {prf:ref}`ch2-bayes-sphere` against two independent computations: exact enumeration of every
# possible context support (`lca.lca_task.bayes_accuracy_enumerate`, which never uses the lemma) and
# Monte Carlo with the exact posterior (`lca.bayes_accuracy`, $20\,000$ examples).

# %%
def bayes_mc(spec, n, seed=0):
    """Monte Carlo Bayes accuracy (as lca.bayes_accuracy) and its standard error."""
    ctx, y = lca.sample(spec, n, seed=seed)
    c = bayes_correct(spec, ctx, y)
    return float(c.mean()), float(c.std() / n ** 0.5)


def show_mc(mean, se):
    """mean +- standard error; an estimate whose examples all score alike is exact."""
    return f"{exact(mean)} ± 0" if se < 1e-9 else pm(mean, se)


rows = []
for m in [3, 5, 8]:
    for L in [1, 2, 4, 8]:
        s = lca.TaskSpec(m=m, L=L)
        rows.append((m, L, lca_task.bayes_accuracy_sphere1(m, L),
                     lca_task.bayes_accuracy_enumerate(s), *bayes_mc(s, 20_000)))

# %% tags=["hide-output"]
print(f"{'m':>2s} {'L':>3s} {'closed form':>13s} {'enumeration':>13s} "
      f"{'Monte Carlo':>18s}")
for m, L, cf, en, mc, se in rows:
    print(f"{m:2d} {L:3d} {exact(cf):>13s} {exact(en):>13s} {show_mc(mc, se):>18s}")

# %%
enum_gap = max(abs(cf - en) for _, _, cf, en, _, _ in rows)
mc_z = max(abs(mc - cf) / se for _, _, cf, _, mc, se in rows if se > 1e-9)
print(f"{len(rows)} cases: |closed form - enumeration| {bound(enum_gap, 1e-12)}, "
      f"|Monte Carlo - closed form| at most {sig(mc_z, 2)} standard errors")

# %% [markdown]
# ## Bayes accuracy as the context grows
#
# {numref}`fig-ch2-bayes` shows the ceiling for $m=5,\dots,8$ and $L=1,\dots,16$: Monte Carlo
# ($4096$ examples per point) as points, exact values as lines. Left: the pure radius-1 task,
# against the closed form. Middle: the same with noise $\varepsilon=0.2$, where no closed form is
# claimed; the dotted grey lines repeat the noise-free closed form for $m=5$ and $m=8$. Right: the
# Hamming ball of radius 2, with the exact enumeration for $m=5$.

# %%
Ls, ms = list(range(1, 17)), [5, 6, 7, 8]
sphere1, ball2 = lca.hamming_sphere(1), lca.hamming_ball(2)


def curve(m, noise=0.0, neighbourhood=sphere1):
    """Monte Carlo (mean, standard error) at every L of Ls, 4096 examples per point."""
    specs = [lca.TaskSpec(m=m, L=L, neighbourhood=neighbourhood, noise=noise)
             for L in Ls]
    return [bayes_mc(s, 4096, seed=L) for s, L in zip(specs, Ls)]


key = {m: f"$m={m}$" for m in ms}    # the legend's labels
pure_se = {key[m]: curve(m) for m in ms}
noisy_se = {key[m]: curve(m, noise=0.2) for m in ms}
ball_se = {key[m]: curve(m, neighbourhood=ball2) for m in ms}
pure, noisy, ball = ({k: [a for a, _ in v] for k, v in t.items()}
                     for t in (pure_se, noisy_se, ball_se))
closed = {key[m]: [lca_task.bayes_accuracy_sphere1(m, L) for L in Ls] for m in ms}
ball_exact = {key[5]: [lca_task.bayes_accuracy_enumerate(
    lca.TaskSpec(m=5, L=L, neighbourhood=ball2)) for L in Ls]}

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch2-bayes", "caption": "Bayes-optimal accuracy against the context length $L$, Monte Carlo as points and exact values as lines, one colour per $m$: the noise-free radius-1 sphere against its closed form (left), the same task with noise rate 0.2 (middle, dotted: the noise-free closed form for $m=5$ and $m=8$), and the radius-2 ball with its exact enumeration at $m=5$ (right)."}, "image": {"alt": "Three panels of accuracy from 0 to 1 against L from 1 to 16. Left, four rising curves reach 1 within a few tokens and the points sit on them. Middle, the noisy points rise more slowly and stay below the dotted noise-free curves. Right, the ball curves start lower and climb towards 1."}}
fig = lca_task.plot_bayes_accuracy([
    {"title": "sphere $\\mathcal{N}_1$", "L": Ls, "mc": pure, "exact": closed},
    {"title": "sphere, noise 0.2", "L": Ls, "mc": noisy,
     "reference": {"m = 5": closed[key[5]], "m = 8": closed[key[8]]}},
    {"title": "ball, radius 2", "L": Ls, "mc": ball, "exact": ball_exact},
])
plt.show()

# %% tags=["hide-output"]
# the plotted numbers (MC = Monte Carlo, CF = closed form, EX = exact enumeration)
se_max = max(se for t in (pure_se, noisy_se, ball_se)
             for v in t.values() for _, se in v)
se_ceil = math.ceil(se_max * 1000) / 1000  # a bound, rounded up to portable 3 decimals
print(f"MC: 4096 examples per point, printed to 3 decimals (standard error below "
      f"{se_ceil}); CF and EX are exact.")
head = " ".join(f"{'m=' + str(m) + ' MC':>8s} {'CF':>12s}" for m in ms)
print(f"\nsphere N_1, no noise\n{'L':>3s} {head}")
for i, L in enumerate(Ls):
    cells = (f"{pure[key[m]][i]:8.3f} {exact(closed[key[m]][i]):>12s}" for m in ms)
    print(f"{L:3d} " + " ".join(cells))
print(f"\nsphere N_1, noise 0.2 (MC) and ball r = 2 (MC; EX for m = 5)\n{'L':>3s} "
      + " ".join(f"{'m=' + str(m):>6s}" for m in ms) + " | "
      + " ".join(f"{'m=' + str(m):>6s}" for m in ms) + f" {'EX m=5':>12s}")
for i, L in enumerate(Ls):
    print(f"{L:3d} " + " ".join(f"{noisy[key[m]][i]:6.3f}" for m in ms) + " | "
          + " ".join(f"{ball[key[m]][i]:6.3f}" for m in ms)
          + f" {exact(ball_exact[key[5]][i]):>12s}")

# %%
# the pure task's Monte Carlo points against the closed form, in standard errors (points whose
# examples all score alike, such as L = 1, have no sampling error and equal the closed form)
z_pure = [abs(a - c) / se for m in ms
          for (a, se), c in zip(pure_se[key[m]], closed[key[m]]) if se > 1e-9]
LEVEL = 0.99  # "reaches the ceiling": the closed form >= LEVEL
first_99 = {m: next(L for L, c in zip(Ls, closed[key[m]]) if c >= LEVEL) for m in ms}
print(f"pure task: largest |MC - CF| is {sig(max(z_pure), 2)} standard errors; the "
      f"closed form first reaches {LEVEL} at L = "
      + ", ".join(f"{first_99[m]} (m = {m})" for m in ms))

# %% tags=["remove-input"]
glue("lca_level", LEVEL, display=False)
glue("lca_se_max", se_ceil, display=False)
glue("lca_pure_max_z", float(sig(max(z_pure), 2)), display=False)  # portable digits
glue("lca_pure_points", len(z_pure), display=False)
glue("lca_first99_m5", first_99[5], display=False)
glue("lca_first99_m8", first_99[8], display=False)

# %% [markdown]
# In the pure task the points follow the closed form within Monte Carlo error: the standard error
# of a point is below {glue:text}`lca_se_max` at 4096 examples, and the largest deviation from the
# closed form is {glue:text}`lca_pure_max_z` standard errors, unremarkable among the
# {glue:text}`lca_pure_points` points at which some examples fail (elsewhere every example is
# scored alike and the standard error cannot be estimated). The ceiling reaches
# {glue:text}`lca_level` after a
# handful of tokens: from context length {glue:text}`lca_first99_m8` on for $m=8$, from
# {glue:text}`lca_first99_m5` on for $m=5$. With a radius-2 ball the ceiling rises more slowly at
# first because a single token is compatible with many more targets, but it still climbs to $1$.
#
# ## Where it breaks
#
# The closed form rests on two assumptions: no noise, and the radius-1 sphere. Noise breaks the
# consistent-set argument completely: with $\varepsilon>0$ every token other than $y$ can appear,
# the posterior is no longer uniform on a set, and the formula overestimates the ceiling. The
# ball breaks the lemma: two tokens of a radius-2 ball can share many more than two common
# neighbours. The table compares the closed form with the truth at $m=6$, $L=8$.

# %%
m, L = 6, 8
cf = lca_task.bayes_accuracy_sphere1(m, L)
tasks = {
    "sphere N_1, noise 0": lca.TaskSpec(m=m, L=L),
    "sphere N_1, noise 0.05": lca.TaskSpec(m=m, L=L, noise=0.05),
    "sphere N_1, noise 0.2": lca.TaskSpec(m=m, L=L, noise=0.2),
    "sphere N_1, noise 0.5": lca.TaskSpec(m=m, L=L, noise=0.5),
    "ball r = 2, noise 0": lca.TaskSpec(m=m, L=L, neighbourhood=lca.hamming_ball(2)),
    "cluster k = 2, noise 0": lca.TaskSpec(m=m, L=L, neighbourhood=lca.cluster(2)),
}
broken = {label: bayes_mc(s, 20_000, seed=1) for label, s in tasks.items()}

# %% tags=["hide-output"]
print(f"closed form (noise 0, sphere N_1), m = {m}, L = {L}: {exact(cf)}")
print(f"{'task':24s} {'Bayes accuracy (MC)':>20s} {'minus closed form':>20s}"
      "   (+- standard error)")
for label, (acc, se) in broken.items():
    print(f"{label:24s} {pm(acc, se):>20s} {pm(acc - cf, se):>20s}")

# %% tags=["remove-input"]
glue("lca_break_cf", exact(cf, 4), display=False)
for k, label in [("noise0", "sphere N_1, noise 0"),
                 ("noise20", "sphere N_1, noise 0.2"),
                 ("noise50", "sphere N_1, noise 0.5"),
                 ("cluster", "cluster k = 2, noise 0")]:
    glue(f"lca_break_{k}", pm(*broken[label]), display=False)

# %% [markdown]
# The closed form gives {glue:text}`lca_break_cf` here, and the Monte Carlo estimate of the pure
# task, {glue:text}`lca_break_noise0`, differs from it only by sampling error. Noise costs
# accuracy quickly: {glue:text}`lca_break_noise20` at noise rate 0.2 and
# {glue:text}`lca_break_noise50` at noise rate 0.5. A cluster neighbourhood is a different problem
# altogether, with a ceiling of only {glue:text}`lca_break_cluster`:
# all tokens of a cluster share the same neighbourhood up to themselves, so the only clue to the
# target is which cluster member is *missing* from the context, and the ceiling stays low at this
# $L$. Which version of the task the paper's experiments use is not known to the course (the
# context law is one of the open questions of the course's digest of the paper). A numerical check
# made for the digest suggests that the pure radius-1 sphere at $L=64$ is too easy to show the gap
# of the paper's Fig. 3(a), so the paper may use a noisier or broader version; the theory
# chapters treat such versions by measurement.

# %% [markdown]
# ## Explore
#
# Pick $m$, $L$ and the noise rate. The left panel draws a fresh example; the right panel is its
# exact posterior over all $V$ targets, the true target in vermillion. With no noise the posterior is
# flat on the consistent set; with noise it spreads over every token.

# %%
def draw_example(m=5, L=6, noise=0.0, seed=0):
    spec = lca.TaskSpec(m=m, L=L, noise=noise)
    ctx, y = lca.sample(spec, 1, seed=seed)
    post = lca.bayes_posterior(spec, ctx)[0]
    Z = lca.LatentSpace(m).latents
    title = f"$m={m}$, $L={L}$, noise {noise:.2f}"
    return lca_task.plot_context_posterior(Z[ctx[0]], Z[y[0]], post, int(y[0]),
                                           tokens=ctx[0], title=title)


explorer(draw_example, title="An LCA example and its Bayes posterior",
         m=widgets.IntSlider(value=5, min=2, max=8, description="m"),
         L=widgets.IntSlider(value=6, min=1, max=32, description="L"),
         noise=widgets.FloatSlider(value=0.0, min=0.0, max=0.9, step=0.05,
                                   description="noise"),
         seed=widgets.IntSlider(value=0, min=0, max=50, description="seed"))

# %% [markdown]
# ## Exercises
#
# ```{exercise} The sphere mask
# :label: ex-lca-mask
#
# Write `sphere_mask(m, r)` returning the `BoolTensor[V, V]`, $V=2^m$, whose entry $(y,x)$ is
# True iff tokens $y$ and $x$ are at Hamming distance exactly $r$. Use the fact that the Hamming
# distance of two tokens is the number of one bits of `y ^ x`. The checker compares your mask
# with the package's `lca.hamming_sphere(r).mask(m)` for $m$ from $1$ to $5$ and several radii,
# and shows the first pair $(m,r)$ that differs. Replace the `raise NotImplementedError` and run
# the cell.
# ```

# %% tags=["exercise-stub"]
def sphere_mask(m, r):
    raise NotImplementedError  # your code here


check_neighbourhood_mask(sphere_mask)

# %% [markdown]
# ```{solution-start} ex-lca-mask
# :class: dropdown
# ```
#
# Take all pairs of token ids at once, `t[:, None] ^ t[None, :]` with `t = torch.arange(2 ** m)`:
# entry $(y,x)$ is the integer whose one bits are the concepts on which $y$ and $x$ disagree,
# because XOR sets bit $k$ exactly when the two bits differ. Counting its ones, bit by bit with
# `(v >> k) & 1`, gives $D_H(y,x)$, and comparing with $r$ gives the mask. Common slips: `<= r`
# (that is the ball with the target included), or counting the bits of `y - x` instead of
# `y ^ x` (a difference borrows across bits). The reference code is in the cell below, checked by
# the same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def sphere_mask_reference(m, r):
    t = torch.arange(2 ** m)
    v = t[:, None] ^ t[None, :]
    return sum((v >> k) & 1 for k in range(m)) == r


check_neighbourhood_mask(sphere_mask_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Sample a context
# :label: ex-lca-sample
#
# Write `sample_context(m, L, y, generator)` returning a `LongTensor[L]`: $L$ independent tokens,
# each uniform on the $m$ neighbours of $y$ at distance $1$ (the noise-free task). Use only
# `torch.randint(..., generator=generator)`. The checker draws one long context for several
# $(m, y)$ and tests its shape, that every token is a neighbour of $y$, and (chi-square tests) that
# the neighbours are equally frequent and consecutive tokens independent; then that the same seed
# gives the same context and another seed another one. Replace the `raise NotImplementedError`
# and run the cell.
# ```

# %% tags=["exercise-stub"]
def sample_context(m, L, y, generator):
    raise NotImplementedError  # your code here


check_sample_context(sample_context)

# %% [markdown]
# ```{solution-start} ex-lca-sample
# :class: dropdown
# ```
#
# The $m$ neighbours of $y$ are $y\oplus 2^k$ for $k=0,\dots,m-1$: flipping bit $k$ is
# `y ^ (1 << k)`. So draw $L$ independent bit positions uniformly from $\{0,\dots,m-1\}$ and flip
# them; a uniform position gives a uniform neighbour because $k\mapsto y\oplus2^k$ is a bijection
# onto $\mathcal N_1(y)$. Drawing one $k$ and repeating it (the tokens are then not independent),
# or drawing from $\{0,\dots,m\}$ (which sometimes flips nothing and returns $y$, or, with a
# modulo, makes bit $0$ twice as likely) are the mistakes the checker catches most often. The
# reference code is in the cell below, checked by the same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def sample_context_reference(m, L, y, generator):
    k = torch.randint(0, m, (L,), generator=generator)
    return y ^ (1 << k)


check_sample_context(sample_context_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} The posterior of the radius-1 task
# :label: ex-lca-posterior
#
# Write `posterior(m, contexts)` for the noise-free $\mathcal N_1$ task: for a
# `LongTensor[n, L]` of contexts return the `[n, V]` tensor of posteriors over targets, using
# {prf:ref}`ch2-sampler-law`. The checker compares it with `lca.bayes_posterior` on sampled
# contexts with one, two and more distinct tokens, $m$ from $2$ to $6$, and shows the first
# context whose posterior differs. Replace the `raise NotImplementedError` and run the cell.
# ```

# %% tags=["exercise-stub"]
def posterior(m, contexts):
    raise NotImplementedError  # your code here


check_bayes_posterior(posterior)

# %% [markdown]
# ```{solution-start} ex-lca-posterior
# :class: dropdown
# ```
#
# By {prf:ref}`ch2-sampler-law` with $\varepsilon=0$ and $|\mathcal N_1(y')|=m$ for every $y'$,
# the likelihood of a candidate $y'$ is $m^{-L}$ if every context token lies in
# $\mathcal N_1(y')$ and $0$ otherwise, so the posterior is uniform on the consistent set. A token
# $x$ is a neighbour of $y'$ iff $v=x\oplus y'$ has exactly one bit set, that is $v\ne0$ and
# $v\mathbin{\&}(v-1)=0$. Test that for every pair (context position, candidate), require it
# along the context, and divide each row by its number of consistent candidates (never empty:
# the true target is consistent). A soft vote that weights a candidate by how many tokens it
# explains is wrong: without noise a single unexplained token rules a candidate out. Forgetting
# to normalise gives the indicator of the consistent set, not a distribution. The reference code
# is in the cell below, checked by the same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def posterior_reference(m, contexts):
    v = contexts[:, :, None] ^ torch.arange(2 ** m)[None, None, :]
    ok = (((v & (v - 1)) == 0) & (v != 0)).all(1).double()
    return ok / ok.sum(1, keepdim=True)


check_bayes_posterior(posterior_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} The radius-2 sphere with two tokens
# :label: ex-lca-sphere2
#
# Take the noise-free task with the Hamming sphere of radius $2$, $\mathcal N_2(y)$, and a context
# of $L=2$ tokens; write $D=\binom m2=|\mathcal N_2(y)|$. Prove that for $m\ge3$
#
# $$
# \mathrm{acc}^\star=\frac1{D^2}+\frac1D+\frac{\binom{m-2}2}{6D},
# $$
#
# and that $\mathrm{acc}^\star=1$ at $m=2$. (Hint: a context token is $y\oplus e_a\oplus e_b$,
# a pair $\{a,b\}$ of flipped bits. Write a candidate as $y\oplus e_T$, flipping the bits of a
# set $T$, and find when it is consistent with one token.) What is the limit as $m\to\infty$,
# and why is it not $0$ or $1$? Then write `sphere2_pair_accuracy(m)` returning the formula as a
# float; the checker compares it with the exact value for $m$ from $2$ to $12$ and shows the first
# $m$ where it differs. Replace the `raise NotImplementedError` and run the cell.
# ```

# %% tags=["exercise-stub"]
def sphere2_pair_accuracy(m):
    raise NotImplementedError  # your code here


check_sphere2_pair_accuracy(sphere2_pair_accuracy)

# %% [markdown]
# ```{solution-start} ex-lca-sphere2
# :class: dropdown
# ```
#
# *Consistency with one token.* All neighbourhoods have $D$ elements, so by
# {prf:ref}`ch2-sampler-law` the posterior is uniform on the consistent set $\mathcal C(x)$ and,
# as in {prf:ref}`ch2-bayes-sphere`, $\mathrm{acc}^\star=\mathbb E[1/|\mathcal C(x)|]$. The
# candidate $y\oplus e_T$ is at distance $|T\,\triangle\,\{a,b\}|=|T|+2-2|T\cap\{a,b\}|$ from the
# token $y\oplus e_a\oplus e_b$, so it is consistent with that token iff
# $|T|=2\,|T\cap\{a,b\}|$. Hence $|T|\in\{0,2,4\}$: $T=\emptyset$ (the target itself, always
# consistent), $|T|=2$ with exactly one element in $\{a,b\}$, or $|T|=4$ with
# $\{a,b\}\subseteq T$.
#
# *The three kinds of context.* The two tokens are two independent uniform pairs of bits.
#
# - Both tokens equal (probability $D\cdot D^{-2}=1/D$): $\mathcal C(x)=\mathcal N_2(x_1)$ has
#   $D$ elements, contributing $\frac1D\cdot\frac1D$.
# - Two pairs sharing one bit, $\{a,b\}$ and $\{a,c\}$ (for $m\ge3$; $D$ choices of the first
#   pair and $2(m-2)$ of the second, probability $2(m-2)/D$): a two-set $T$ meets each pair once
#   if it is $\{a,d\}$ with $d\notin\{a,b,c\}$ ($m-3$ sets) or $\{b,c\}$; a four-set must contain
#   $\{a,b,c\}$ ($m-3$ sets). So $|\mathcal C(x)|=1+(m-2)+(m-3)=2m-4$, contributing
#   $\frac{2(m-2)}D\cdot\frac1{2m-4}=\frac1D$.
# - Two disjoint pairs $\{a,b\}$, $\{c,d\}$ (probability $\binom{m-2}2/D$): the two-sets with one
#   bit from each pair ($4$ of them) and the four-set $\{a,b,c,d\}$, so
#   $|\mathcal C(x)|=1+4+1=6$, contributing $\binom{m-2}2/(6D)$.
#
# The three probabilities add up to $\big(1+2(m-2)+\binom{m-2}2\big)/D=1$, and the sum of the
# contributions is the formula. At $m=2$ there is one pair, $D=1$, and the context names the
# target (its complement): $\mathrm{acc}^\star=1/D^2=1$; the middle term is absent because no two
# distinct pairs exist, and writing it anyway is the usual slip. Forgetting the candidates at
# distance $4$ (the four-sets) is the other one.
#
# *The limit.* $\binom{m-2}2/D\to1$, so $\mathrm{acc}^\star\to1/6$: for large $m$ two random pairs
# of bits are almost always disjoint, and then exactly six targets explain them equally well
# whatever $m$ is. The test file checks the formula against exact enumeration of every
# (context, target) pair for $m=2,\dots,8$, the consistent-set sizes $D$, $2m-4$ and $6$, and that
# it fails with noise or with a third token. The reference code is in the cell below, checked by
# the same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def sphere2_pair_accuracy_reference(m):
    D = math.comb(m, 2)
    shared = 1 / D if m >= 3 else 0.0
    return 1 / D**2 + shared + math.comb(m - 2, 2) / (6 * D)


check_sphere2_pair_accuracy(sphere2_pair_accuracy_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Two concepts are not enough, unless there is noise
# :label: ex-lca-m2
#
# At $m=2$ the noise-free radius-1 task has Bayes accuracy $1/2$ for every $L$, because $y$ and
# its complement $\bar y$ have the same neighbours. Now add noise at a rate
# $0<\varepsilon<1$. Show that the Bayes accuracy is at least
#
# $$
# 1-P\big(B\le\tfrac L2\big)-\tfrac12\big(1-\tfrac\varepsilon3\big)^L,
# \qquad B\sim\mathrm{Bin}\big(L,1-\tfrac\varepsilon3\big),
# $$
#
# and conclude that it tends to $1$ as $L\to\infty$. Where does the information come from?
# ```
#
# ```{solution} ex-lca-m2
# :class: dropdown
#
# The four tokens form two pairs, $\{00,11\}$ and $\{01,10\}$, and the neighbours of either
# member of a pair are the two members of the other pair. Given $y$, a context token lies in
# $\mathcal N_1(y)$ with probability $(1-\varepsilon)+\varepsilon\cdot\frac23=1-\frac\varepsilon3$
# (an informative token always does; a noise token is uniform on the three tokens other than
# $y$, two of which are neighbours), it equals $\bar y$ with probability $\frac\varepsilon3$, and
# it is never $y$ itself.
#
# Consider the predictor that counts the tokens of each pair, names the pair with fewer tokens
# (either one, on a tie) as the pair containing the target, and within that pair predicts
# the member that does not appear in the context, guessing at random if neither appears. The
# number $B$ of context tokens in $\mathcal N_1(y)$ is $\mathrm{Bin}(L,1-\frac\varepsilon3)$. If
# $B>L/2$ the predictor names the right pair. In that pair $y$ never appears, so the answer is
# right unless $\bar y$ is absent too, which happens with probability $(1-\frac\varepsilon3)^L$,
# and then the guess is right half the time. So the predictor errs with probability at most
# $P(B\le L/2)+\frac12(1-\frac\varepsilon3)^L$, and the Bayes accuracy, which no predictor
# exceeds, is at least the bound. Since $1-\frac\varepsilon3\ge\frac23>\frac12$, the law of large
# numbers (or Hoeffding's inequality) gives $P(B\le L/2)\to0$, and the last term tends to $0$
# because $\varepsilon>0$: the accuracy tends to $1$. At $\varepsilon=0$ the bound is $1/2$ and
# nothing breaks the tie.
#
# The information is the target's absence: noise lets $\bar y$ appear while $y$ itself never
# does, so one sighting of $\bar y$ rules it out. The test file checks the bound against the
# exact Bayes accuracy for $L\le8$ and three noise rates. Try
# `lca.bayes_accuracy(lca.TaskSpec(m=2, L=16, noise=0.3))`.
# ```

# %% [markdown]
# ## Summary
#
# The LCA task turns "a context that evokes a concept" into mathematics: tokens are bit vectors of
# latent concepts, and a context is a bag of tokens near a hidden target in Hamming distance. The
# best possible predictor only asks which targets could have produced the tokens it sees; it
# ignores their order and anything like negation, so a context's meaning is exhausted by its set
# of cues. That is the seed of context hijacking: add enough tokens that are typical of a
# different target, and the posterior (and any model that approximates it) moves there. The next
# chapter introduces the one-layer transformer that is trained on this task, and the chapters
# after it show that its value matrix is an associative memory of the kind built in the previous
# chapter.
