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
from lca.lca_task import check_bayes_accuracy_formula, check_bayes_posterior, check_neighbourhood_mask, check_sample_context
from lca.report import exact, pm, sig
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
# - any user mask $A\in\{0,1\}^{V\times V}$ with zero diagonal, $A_{yx}=1$ iff $x\in\mathcal N(y)$ (the adjacency matrix of the neighbourhood, the $A$ of the notation table)
#   (`lca.custom(mask)`).
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
# One example at $m=6$, $L=10$ with the radius-1 sphere: the top row is the target's latent
# vector, each further row a context token; the framed cells are the concepts on which a context
# token disagrees with the target. Every context token flips exactly one concept.

# %%
space = lca.LatentSpace(6)
spec = lca.TaskSpec(m=6, L=10)
ctx, y = lca.sample(spec, 1, seed=3)
Z = space.latents
fig = lca_task.plot_context(Z[ctx[0]], Z[y[0]], tokens=ctx[0], target=y[0],
                         title="One LCA example, m = 6, L = 10, neighbourhood N_1")
plt.show()
print("target y =", int(y[0]), " latent", "".join(map(str, Z[y[0]].tolist())))
print("context   ", ctx[0].tolist())
print("distances ", space.hamming(ctx[0], y[0]).tolist())

# %% [markdown]
# The masks of the four kinds of neighbourhood at $m=4$ ($V=16$), next to the Hamming distance
# matrix they are cut from. The custom family here is "distance 1, or the complementary token":
# the mask of any rule you like.

# %%
space4 = lca.LatentSpace(4)
D4 = space4.distances()
custom_mask = (D4 == 1) | (D4 == 4)
families = {"sphere r=1": lca.hamming_sphere(1), "ball r=2": lca.hamming_ball(2),
            "cluster k=2": lca.cluster(2), "custom": lca.custom(custom_mask, "distance 1 or 4")}
masks = {name: fam.mask(space4) for name, fam in families.items()}
fig = lca_task.plot_neighbourhood_masks(D4, masks, title="Hamming distances and neighbourhood "
                                     "masks, m = 4 (row = target y, column = context token x)")
plt.show()
for name, fam in families.items():
    deg = fam.degrees(space4)
    print(f"{name:12s} |N(y)| = {int(deg.min())}..{int(deg.max())}, "
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
# $P(y,x)=\frac1V\prod_{l=1}^L\Big((1-\varepsilon)\frac{\mathbb 1[x_l\in\mathcal N(y)]}{|\mathcal
# N(y)|}+\varepsilon\,\frac{\mathbb 1[x_l\ne y]}{V-1}\Big)$. Hence the posterior is
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
# \mathrm{acc}^\star(m,L)=\mathbb E\Big[\frac1{|\mathcal C(x)|}\Big]
# =1-\frac{m-1}{m^L}-\frac{m(m-1)(2^L-2)}{4\,m^L}.
# $$
# ```
#
# ```{prf:proof}
# The posterior is uniform on $\mathcal C(x)$, so $\max_{y'}P(y'\mid x)=1/|\mathcal C(x)|$. With $K=1$, $\mathcal C(x)$ is the
# whole sphere $\mathcal N_1(x_1)$ around the single token $x_1$. With $K=2$ the two tokens flip
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
print(f"exact law:        chi2 = {exact(res.statistic)}, dof = {res.dof}, p = {exact(res.p_value)}")
counts = torch.bincount(y * 64 + lca_task.context_codes(ctx, 8), minlength=512).double()
_, noiseless = lca_task.context_law_table(spec.with_(noise=0.0))
wrong = lca_task.chi_square(counts, noiseless.flatten())
print(f"noise forgotten:  chi2 = {wrong.statistic}, p = {exact(wrong.p_value)} "
      "(an impossible cell was observed)" if wrong.statistic == float("inf") else
      f"noise forgotten:  chi2 = {exact(wrong.statistic)}, p = {exact(wrong.p_value)}")
print(f"largest |empirical - exact| cell probability: "
      f"{exact(float((counts.reshape(8, 64) / 200_000 - joint).abs().max()))}")

# %% [markdown]
# The sampler passes (a p-value far from $0$) and the control fails. Next the closed form of
# {prf:ref}`ch2-bayes-sphere` against two independent computations: exact enumeration of every
# possible context support (`lca.lca_task.bayes_accuracy_enumerate`, which never uses the lemma) and
# Monte Carlo with the exact posterior (`lca.bayes_accuracy`, $20\,000$ examples).

# %%
def bayes_mc(spec, n, seed=0):
    """Monte Carlo Bayes accuracy (the value of lca.bayes_accuracy) and its standard error."""
    ctx, y = lca.sample(spec, n, seed=seed)
    c = bayes_correct(spec, ctx, y)
    return float(c.mean()), float(c.std() / n ** 0.5)


def show_mc(mean, se):
    """mean +- standard error; an estimate whose examples all score alike is exact."""
    return f"{exact(mean)} ± 0" if se < 1e-9 else pm(mean, se)


print(f"{'m':>2s} {'L':>3s} {'closed form':>13s} {'enumeration':>13s} {'Monte Carlo':>18s}")
for m in [3, 5, 8]:
    for L in [1, 2, 4, 8]:
        s = lca.TaskSpec(m=m, L=L)
        print(f"{m:2d} {L:3d} {exact(lca_task.bayes_accuracy_sphere1(m, L)):>13s} "
              f"{exact(lca_task.bayes_accuracy_enumerate(s)):>13s} "
              f"{show_mc(*bayes_mc(s, 20_000)):>18s}")

# %% [markdown]
# ## Bayes accuracy as the context grows
#
# The ceiling for $m=5,\dots,8$ and $L=1,\dots,16$: Monte Carlo ($4096$ examples per point) as
# points, exact values as lines. Left: the pure radius-1 task, against the closed form. Middle:
# the same with noise $\varepsilon=0.2$, where no closed form is claimed; the dotted lines repeat
# the noise-free closed form for $m=5$ and $m=8$. Right: the Hamming ball of radius 2, with the
# exact enumeration for $m=5$.

# %%
Ls = list(range(1, 17))
ms = [5, 6, 7, 8]
pure_se = {f"m = {m}": [bayes_mc(lca.TaskSpec(m=m, L=L), 4096, seed=L) for L in Ls] for m in ms}
noisy_se = {f"m = {m}": [bayes_mc(lca.TaskSpec(m=m, L=L, noise=0.2), 4096, seed=L) for L in Ls]
            for m in ms}
ball_se = {f"m = {m}": [bayes_mc(lca.TaskSpec(m=m, L=L, neighbourhood=lca.hamming_ball(2)), 4096,
                                 seed=L) for L in Ls] for m in ms}
pure, noisy, ball = ({k: [a for a, _ in v] for k, v in t.items()}
                     for t in (pure_se, noisy_se, ball_se))
closed = {f"m = {m}": [lca_task.bayes_accuracy_sphere1(m, L) for L in Ls] for m in ms}
ball_exact = {"m = 5": [lca_task.bayes_accuracy_enumerate(
    lca.TaskSpec(m=5, L=L, neighbourhood=lca.hamming_ball(2))) for L in Ls]}
fig = lca_task.plot_bayes_accuracy([
    {"title": "sphere N_1, no noise", "L": Ls, "mc": pure, "exact": closed},
    {"title": "sphere N_1, noise 0.2", "L": Ls, "mc": noisy,
     "reference": {"noise-free closed form, m = 5": closed["m = 5"],
                   "noise-free closed form, m = 8": closed["m = 8"]}},
    {"title": "ball of radius 2, no noise", "L": Ls, "mc": ball, "exact": ball_exact},
], title="Bayes-optimal accuracy vs context length: Monte Carlo (points) vs exact (lines)")
plt.show()

# %% [markdown]
# The plotted numbers (MC = Monte Carlo, CF = closed form, EX = exact enumeration):

# %%
se_max = max(se for t in (pure_se, noisy_se, ball_se) for v in t.values() for _, se in v)
se_ceil = math.ceil(se_max * 1000) / 1000     # a bound, rounded up to a portable 3 decimals
print(f"MC: 4096 examples per point, printed to 3 decimals (standard error below {se_ceil}); "
      "CF and EX are exact.")
head = " ".join(f"{'m=' + str(m) + ' MC':>8s} {'CF':>12s}" for m in ms)
print(f"\nsphere N_1, no noise\n{'L':>3s} {head}")
for i, L in enumerate(Ls):
    print(f"{L:3d} " + " ".join(f"{pure[f'm = {m}'][i]:8.3f} {exact(closed[f'm = {m}'][i]):>12s}"
                                 for m in ms))
print(f"\nsphere N_1, noise 0.2 (MC) and ball r = 2 (MC; EX for m = 5)\n{'L':>3s} "
      + " ".join(f"{'m=' + str(m):>6s}" for m in ms) + " | "
      + " ".join(f"{'m=' + str(m):>6s}" for m in ms) + f" {'EX m=5':>12s}")
for i, L in enumerate(Ls):
    print(f"{L:3d} " + " ".join(f"{noisy[f'm = {m}'][i]:6.3f}" for m in ms) + " | "
          + " ".join(f"{ball[f'm = {m}'][i]:6.3f}" for m in ms)
          + f" {exact(ball_exact['m = 5'][i]):>12s}")
# the pure task's Monte Carlo points against the closed form, in standard errors (points whose
# examples all score alike, such as L = 1, have no sampling error and equal the closed form)
z_pure = [abs(a - c) / se for m in ms
          for (a, se), c in zip(pure_se[f"m = {m}"], closed[f"m = {m}"]) if se > 1e-9]
LEVEL = 0.99                                     # "reaches the ceiling": the closed form >= LEVEL
first_99 = {m: next(L for L, c in zip(Ls, closed[f"m = {m}"]) if c >= LEVEL) for m in ms}
print(f"\npure task: largest |MC - CF| is {sig(max(z_pure), 2)} standard errors; the closed form "
      f"first reaches {LEVEL} at L = " + ", ".join(f"{first_99[m]} (m = {m})" for m in ms))
glue("lca_level", LEVEL, display=False)
glue("lca_se_max", se_ceil, display=False)
glue("lca_pure_max_z", float(sig(max(z_pure), 2)), display=False)   # rounded: portable digits
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
print(f"closed form (noise 0, sphere N_1), m = {m}, L = {L}: {exact(cf)}")
print(f"{'task':24s} {'Bayes accuracy (MC)':>20s} {'minus closed form':>20s}   (+- standard error)")
for label, s in [("sphere N_1, noise 0", lca.TaskSpec(m=m, L=L)),
                 ("sphere N_1, noise 0.05", lca.TaskSpec(m=m, L=L, noise=0.05)),
                 ("sphere N_1, noise 0.2", lca.TaskSpec(m=m, L=L, noise=0.2)),
                 ("sphere N_1, noise 0.5", lca.TaskSpec(m=m, L=L, noise=0.5)),
                 ("ball r = 2, noise 0", lca.TaskSpec(m=m, L=L, neighbourhood=lca.hamming_ball(2))),
                 ("cluster k = 2, noise 0", lca.TaskSpec(m=m, L=L, neighbourhood=lca.cluster(2)))]:
    acc, se = bayes_mc(s, 20_000, seed=1)
    print(f"{label:24s} {pm(acc, se):>20s} {pm(acc - cf, se):>20s}")

# %% [markdown]
# The first row differs from the closed form only by Monte Carlo error. Noise costs accuracy
# quickly, and a cluster neighbourhood is a different problem altogether:
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
# exact posterior over all $V$ targets, the true target in red. With no noise the posterior is
# flat on the consistent set; with noise it spreads over every token.

# %%
def draw_example(m=5, L=6, noise=0.0, seed=0):
    spec = lca.TaskSpec(m=m, L=L, noise=noise)
    ctx, y = lca.sample(spec, 1, seed=seed)
    post = lca.bayes_posterior(spec, ctx)[0]
    Z = lca.LatentSpace(m).latents
    return lca_task.plot_context_posterior(Z[ctx[0]], Z[y[0]], post, int(y[0]), tokens=ctx[0],
                                        title=f"m = {m}, L = {L}, noise = {noise:.2f}")


explorer(draw_example, title="An LCA example and its Bayes posterior",
         m=widgets.IntSlider(value=5, min=2, max=8, description="m"),
         L=widgets.IntSlider(value=6, min=1, max=32, description="L"),
         noise=widgets.FloatSlider(value=0.0, min=0.0, max=0.9, step=0.05, description="noise"),
         seed=widgets.IntSlider(value=0, min=0, max=50, description="seed"))

# %% [markdown]
# ## Exercises
#
# ```{exercise} The sphere mask
# :label: ex-lca-mask
#
# Write `sphere_mask(m, r)` returning the `BoolTensor[V, V]` whose entry $(y,x)$ is True iff
# tokens $y$ and $x$ are at Hamming distance exactly $r$. Use the fact that the Hamming distance
# of two tokens is the number of one bits of `y ^ x`.
# ```
#
# ```{solution} ex-lca-mask
# :class: dropdown
#
# `t = torch.arange(2 ** m); x = t[:, None] ^ t[None, :]` and count bits with
# `sum((x >> k) & 1 for k in range(m))`; compare with `r`. Common slips: `<= r` (that is the ball
# with the target included), or forgetting that the bit count of `y ^ x`, not of `y - x`, is the
# distance.
# ```

# %%
def my_sphere_mask(m, r):
    t = torch.arange(2 ** m)
    x = t[:, None] ^ t[None, :]
    return sum((x >> k) & 1 for k in range(m)) == r   # replace with your own version


_ = check_neighbourhood_mask(my_sphere_mask)

# %% [markdown]
# ```{exercise} Sample a context
# :label: ex-lca-sample
#
# Write `sample_context(m, L, y, generator)` returning a `LongTensor[L]`: $L$ independent tokens,
# each uniform on the $m$ neighbours of $y$ at distance $1$ (noise-free task). Use only
# `torch.randint(..., generator=generator)`. The checker draws long contexts and tests them with
# chi-square tests.
# ```
#
# ```{solution} ex-lca-sample
# :class: dropdown
#
# Flipping bit $k$ of $y$ is `y ^ (1 << k)`, so draw the bit positions:
# `k = torch.randint(0, m, (L,), generator=generator); return y ^ (1 << k)`. Drawing one $k$ and
# repeating it, or drawing from `range(m + 1)` (which sometimes flips nothing and returns $y$),
# are the two mistakes the checker catches most often.
# ```

# %%
def my_sample_context(m, L, y, generator):
    k = torch.randint(0, m, (L,), generator=generator)
    return y ^ (1 << k)   # replace with your own version


_ = check_sample_context(my_sample_context)

# %% [markdown]
# ```{exercise} The posterior of the radius-1 task
# :label: ex-lca-posterior
#
# Write `posterior(m, contexts)` for the noise-free $\mathcal N_1$ task: for `contexts [n, L]`
# return the `[n, V]` posterior over targets, using {prf:ref}`ch2-sampler-law`. Test it on a
# context with one distinct token, with two, and with three.
# ```
#
# ```{solution} ex-lca-posterior
# :class: dropdown
#
# A candidate $y'$ is consistent iff every `x ^ y'` is a power of two:
# `x = contexts[:, :, None] ^ torch.arange(V)`, `ok = ((x & (x - 1)) == 0) & (x != 0)`, then
# `ok = ok.all(1).double()` and normalise each row by its sum. The posterior is uniform on the
# consistent set, so weighting candidates by how many context tokens they explain (a soft vote)
# is wrong: it is the likelihood with noise, not without.
# ```

# %%
def my_posterior(m, contexts):
    x = contexts[:, :, None] ^ torch.arange(2 ** m)[None, None, :]
    ok = (((x & (x - 1)) == 0) & (x != 0)).all(1).double()
    return ok / ok.sum(1, keepdim=True)   # replace with your own version


_ = check_bayes_posterior(my_posterior)

# %% [markdown]
# ```{exercise} Prove the closed form
# :label: ex-lca-formula
#
# Prove {prf:ref}`ch2-bayes-sphere` in full: show that $P(K=2)=\binom m2(2^L-2)/m^L$ and combine
# the three cases. Then write `bayes_accuracy_formula(m, L)` returning the closed form as a float.
# Why is the crude bound $\binom m2(2/m)^L$ on the error about twice the true error for large $L$?
# ```
#
# ```{solution} ex-lca-formula
# :class: dropdown
#
# Choose the two distinct tokens ($\binom m2$ ways); a sequence of length $L$ over them that uses
# both is any of the $2^L$ sequences except the two constant ones. Each sequence has probability
# $m^{-L}$. Then $\mathrm{acc}^\star=\frac{m^{1-L}}m+\frac12\binom m2\frac{2^L-2}{m^L}+1-m^{1-L}
# -\binom m2\frac{2^L-2}{m^L}$, which simplifies to the formula. For large $L$ the error is
# dominated by $K=2$, where the Bayes rule still guesses right half of the time; the crude bound
# counts such ties as errors. Code:
# `return 1 - (m - 1) / m ** L - m * (m - 1) * (2 ** L - 2) / (4 * m ** L)`.
# ```

# %%
def my_bayes_accuracy_formula(m, L):
    return 1 - (m - 1) / m ** L - m * (m - 1) * (2 ** L - 2) / (4 * m ** L)   # your version


_ = check_bayes_accuracy_formula(my_bayes_accuracy_formula)

# %% [markdown]
# ```{exercise} Two concepts are not enough
# :label: ex-lca-m2
#
# Show that for $m=2$ and the noise-free $\mathcal N_1$ task no predictor exceeds accuracy $1/2$,
# for any $L$. Does noise help?
# ```
#
# ```{solution} ex-lca-m2
# :class: dropdown
#
# $\mathcal N_1(00)=\mathcal N_1(11)=\{01,10\}$ and $\mathcal N_1(01)=\mathcal N_1(10)=\{00,11\}$.
# The law of the context given $y$ depends only on $\mathcal N_1(y)$, so $y$ and its complement
# give identical context laws and the posterior gives them equal weight: the best accuracy is
# $1/2$. Noise, surprisingly, does help once the context is long. A noise token is uniform on the
# tokens *other than* $y$, so the complement $\bar y$ of the target can show up as noise while $y$
# itself never appears. One sighting of $\bar y$ rules out the candidate $\bar y$ and breaks the
# tie. Try `lca.bayes_accuracy(lca.TaskSpec(m=2, L=16, noise=0.3))`: the target's absence is
# information.
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
