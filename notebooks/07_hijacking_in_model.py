# %% tags=["remove-cell"]
# Colab setup: install the course package (runs only on Google Colab)
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "lca[llm] @ git+https://github.com/elephants-course/elephants@v0.1.0"], check=True)

# %% [markdown]
# # Context hijacking inside the model
#
# In {doc}`00_hijacking` a few sentences that mention a wrong answer, even sentences that *deny*
# it, made a language model prefer that wrong answer on many more CounterFact cases: the efficacy
# score rose with the number of copies put in front of the question. Not every fact gave way there
# (SmolLM2's top completion for the Eiffel Tower stayed Paris; the paper's GPT-2 moved it to
# Chicago), but the count over many cases moved. The paper {cite}`jiang2024elephants` explains this
# with the
# mechanism we have taken apart since: the value matrix is an associative memory that maps the
# tokens of a context to the concepts they point to ({doc}`04_value_matrix`), and it does not care
# what the sentence around a cue says. This chapter makes the explanation quantitative inside the
# one-layer model. We mix a context for target $y$ with tokens that point to another target $y'$
# and ask: at what share of such tokens does the model switch to $y'$? For the constructed model the
# answer is exact: the logits are shares of the context, the switch happens at a threshold we
# compute from the sizes of the two neighbourhoods and their overlap, and for a finite context the
# probability of switching is a binomial tail. Trained models switch near the same threshold, with
# a wider transition, and adding blocks of hijacking tokens to their contexts raises their
# preference for $y'$ gradually, the rising shape of the paper's Fig. 2.
#
# **In this chapter you will**
#
# - show that the constructed model's logit for a token $k$ is the share of the context that lies
#   in $\mathcal{N}(k)$;
# - derive the hijack threshold, $1/2$ for disjoint neighbourhoods, in general a formula in
#   $|\mathcal{N}(y)|$, $|\mathcal{N}(y')|$ and $|\mathcal{N}(y)\cap\mathcal{N}(y')|$;
# - compute the exact probability of a flip for a finite context and see it sharpen into a step
#   as $L$ grows;
# - measure flip curves and "number of prepends" curves of trained models and compare them with
#   the theory and with Fig. 2 of the paper;
# - see where the simple picture fails: neighbourhoods of different sizes that overlap, third
#   tokens, and a trained attention layer that filters some hijacking tokens, by the parity of
#   their Hamming distance from the query rather than by their meaning.

# %% tags=["hide-input"]
import math
from dataclasses import replace

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

import lca
from lca import attention, glue, hijacking_in_model, value_matrix
from lca.report import exact, pm
from lca.hijacking_in_model import check_flip_probability_overlap, check_noisy_threshold
from lca.hijacking_in_model import check_share_logits
from lca.train import TrainConfig, evaluate, sweep
from lca.widgets import explorer

torch.manual_seed(0)
device = lca.default_device()
torch.set_num_threads(1)


def mc_fraction(p, n):
    """A fraction estimated from n independent draws, printed with its binomial standard error."""
    if p in (0.0, 1.0):
        return f"{p:.0f} (all {n})" if p == 1.0 else f"0 (none of {n})"
    return pm(p, math.sqrt(p * (1 - p) / n))


class Shown(str):
    """A string that glues into the prose as it prints (without the quotes of a str's repr)."""

    def _repr_pretty_(self, p, cycle):
        p.text(str(self))


def mean_pm(values, n=None, floor=0.0):
    """A mean over seeds with its standard error, never taken below ``floor``. For fractions of
    the same n contexts at every seed, the binomial error of those n contexts is added to the
    seed-to-seed one, and the error is never taken below one context in n (rounded up to a power
    of ten), the resolution of such a fraction: one context more or less, as another CPU may give,
    then moves no printed digit."""
    v = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    mean = float(v.mean())
    se = math.sqrt(float(v.var()) / v.numel()) if v.numel() > 1 else 0.0
    if n is not None:
        se = max(math.sqrt(se**2 + mean * (1 - mean) / n), 10.0 ** math.ceil(math.log10(1 / n)))
    return Shown(pm(mean, max(se, floor)))

# %% [markdown]
# ## Definitions
#
# ```{prf:definition} Hijacked contexts
# :label: def-ch7-hijack
#
# Let $y$ be a target and $y'\ne y$ a *hijack target*. A **$\rho$-hijacked context** of length $L$
# is drawn position by position, independently: with probability $\rho$ a *hijack token*, uniform
# on $\mathcal{N}(y')$; otherwise a *clean token*, drawn from the task's law $p(\cdot\mid y)$. The number
# $\rho\in[0,1]$ is the **hijack share**. A **$k$-prepended context** puts $k$ blocks of $b$ hijack
# tokens in front of a clean context of length $L$, as the real-LLM experiments put $k$ copies of
# a sentence in front of a prompt. In code: `lca.hijacking_in_model.hijack_contexts(spec, n, rho=..., prepend=k,
# block=b)`, with $y'$ the complement of $y$ (all $m$ bits flipped) unless another distance is
# asked for.
# ```
#
# ```{prf:definition} Flip and preference
# :label: def-ch7-flip
#
# On a hijacked context the model **flips** if its prediction is $\operatorname*{arg\,max}_kf_k=y'$ (strictly), and
# it **prefers** $y'$ if $f_{y'}>f_y$. The fraction of contexts on which the model prefers $y'$ is
# the one-layer analogue of the *efficacy score* of the real-LLM experiments of {doc}`00_hijacking`,
# which counts the prompts on which the false answer gets a higher probability than the true one.
# ```
#
# The **constructed model** is the model of {doc}`04_value_matrix`: orthonormal embeddings
# ($d\ge V$), $W_{KQ}=0$ and $W_{V}=W_{V}^\star=W_{E}^\top AW_{E}$ with $A_{kj}=\mathbb 1[j\in\mathcal{N}(k)]$
# (`lca.value_matrix.constructed_model(spec)`).

# %% [markdown]
# ## Look at it first
#
# The task of {doc}`02_lca_task` with $m=6$, $\mathcal{N}=\mathcal{N}_1$ and $L=15$, no noise. One target $y$, its
# complement $y'$ (their neighbourhoods are disjoint), and the same context at growing hijack
# shares. The last token, the query, is kept clean. We print the constructed model's logits for
# $y$ and $y'$ and its prediction.

# %%
spec7 = lca.TaskSpec(m=6, L=15)
model_c = value_matrix.constructed_model(spec7)
for rho in (0.0, 0.25, 0.5, 0.75, 1.0):
    ctx, y, yh = hijacking_in_model.hijack_contexts(spec7, 1, rho=rho, seed=4)
    f = hijacking_in_model.hijack_share_logits(spec7, ctx)[0]
    pred = int(model_c.predict(ctx)[0])
    n_h = sum(int(spec7.space.hamming(t, yh[0])) == 1 for t in ctx[0].tolist())
    # the logits are counts / 15 (computed in float64): print the counts exactly
    c_y, c_h = round(15 * float(f[y[0]])), round(15 * float(f[yh[0]]))
    assert abs(15 * float(f[y[0]]) - c_y) < 1e-9
    assert abs(15 * float(f[yh[0]]) - c_h) < 1e-9
    print(f"rho = {rho:.2f}: {n_h:2d} of 15 tokens from N(y')   f_y = {c_y:2d}/15   "
          f"f_y' = {c_h:2d}/15   prediction {pred:2d}   "
          f"(y = {int(y[0])}, y' = {int(yh[0])})")

# %% [markdown]
# The two logits are just counts divided by $15$: the model answers with whichever target owns
# more of the context.

# %% [markdown]
# ## Results
#
# ```{prf:lemma} The constructed model's logits are shares
# :label: ch7-share-logits
#
# For the constructed model and any context $x$ of any length $L$, with $W_{KQ}=0$,
# $f_k(x)=c(\mathcal{N}(k))=\frac1L\#\{l:x_l\in\mathcal{N}(k)\}$.
# ```
#
# ```{prf:proof}
# With $W_{KQ}=0$, $h=\sum_l\frac1LW_{E}(x_l)=W_{E}^\top c$. Orthonormal rows give $W_{E}W_{E}^\top=I_V$, so
# $f=W_{E}W_{V}^\star h=W_{E}W_{E}^\top AW_{E}W_{E}^\top c=Ac$ and $f_k=\sum_jA_{kj}c_j=c(\mathcal{N}(k))$.
# ```
#
# Write $D=|\mathcal{N}(y)|$, $D'=|\mathcal{N}(y')|$ and $o=|\mathcal{N}(y)\cap\mathcal{N}(y')|$.
#
# ```{prf:theorem} The hijack threshold
# :label: ch7-hijack-threshold
#
# Take the constructed model and a $\rho$-hijacked context whose clean tokens are uniform on $\mathcal{N}(y)$
# (no noise), and assume $o<\max(D,D')$. Then
#
# 1. $\mathbb{E} f_y=(1-\rho)+\rho\,o/D'$ and $\mathbb{E} f_{y'}=\rho+(1-\rho)\,o/D$, so $\mathbb{E} f_{y'}>\mathbb{E} f_y$ exactly
#    when $\rho>\rho^*$ with
#
#    $$
#    \rho^*=\frac{1-o/D}{(1-o/D)+(1-o/D')}.
#    $$
#
#    In particular $\rho^*=1/2$ when the neighbourhoods are disjoint ($o=0$) and whenever $D=D'$
#    (spheres, balls and clusters), whatever the overlap.
# 2. For a finite $L$, $L(f_{y'}-f_y)=\sum_{l=1}^LX_l$ with independent steps
#    $X_l\in\{-1,0,+1\}$, $P(X_l=+1)=\rho(1-o/D')$, $P(X_l=-1)=(1-\rho)(1-o/D)$, so
#    $P(f_{y'}>f_y)=P(\sum_lX_l>0)$ is an explicit finite sum. For disjoint neighbourhoods it is the
#    binomial tail $P(\mathrm{Binomial}(L,\rho)>L/2)$.
# 3. With $\bar X=\mathbb{E} X_l$, Hoeffding's inequality gives $P(f_{y'}>f_y)\le e^{-L\bar X^2/2}$ when
#    $\rho<\rho^*$ and $P(f_{y'}\le f_y)\le e^{-L\bar X^2/2}$ when $\rho>\rho^*$: as $L\to\infty$ the
#    flip probability becomes a step at $\rho^*$ (for $o=0$, $\bar X=2\rho-1$ and the same bound reads
#    $e^{-2L(\rho-1/2)^2}$).
# 4. A $k$-prepended context (blocks of $b$ tokens, $o=0$, clean part of length $L$) is preferred
#    to $y'$ exactly when $kb>L$.
# ```
#
# The proof, with the exact finite sum, is in the appendix ({prf:ref}`thm-hijack-threshold`).
# Part 1 compares $y'$ with $y$ only. A third token $k$ can beat both: in the limit of long
# contexts the logits tend to the lines $F_k(\rho)=(1-\rho)\,|\mathcal{N}(k)\cap\mathcal{N}(y)|/D+\rho\,
# |\mathcal{N}(k)\cap\mathcal{N}(y')|/D'$, the prediction is the highest line, and the prediction becomes $y'$ at
# the point where the line of $y'$ rises above all others, which is never before $\rho^*$
# ({prf:ref}`prop-hijack-argmax` in the appendix; `lca.hijacking_in_model.hijack_threshold_argmax`). For the
# Hamming spheres $\mathcal{N}_1$ with $m\ge5$ and disjoint neighbourhoods no third line ever wins (a third
# token shares at most two neighbours with $y$ or $y'$), and the prediction jumps from $y$ to $y'$
# at $1/2$.

# %% [markdown]
# ## Check it
#
# For $L=15$ and disjoint neighbourhoods ($y'$ the complement of $y$, the query clean so $14$
# positions are hijackable): the exact probability from the convolution of the steps
# (`hijack_flip_probability`), the binomial tail written out by hand, and the fraction of
# $20{,}000$ simulated contexts on which the constructed model (a float64 `OneLayerTransformer`)
# prefers $y'$.

# %% tags=["hide-input", "hide-output"]
rho_check = [0.3, 0.4, 0.5, 0.55, 0.6, 0.7]
exact_p = hijacking_in_model.hijack_flip_probability(spec7, 0, 63, rho_check, last_clean=True)
sim = hijacking_in_model.flip_curve(model_c, spec7, rho_check, n=20_000, seed=7)
D, Dh, o = hijacking_in_model.hijack_overlap(spec7, 0, 63)
print(f"|N(y)| = {D}, |N(y')| = {Dh}, overlap = {o}, threshold rho* = "
      f"{exact(hijacking_in_model.hijack_threshold(D, Dh, o))}")
print(" rho    exact (convolution)   binomial tail P(Bin(14, rho) >= 8)   simulation (20,000) ± SE")
for i, r in enumerate(rho_check):
    tail = sum(math.comb(14, h) * r ** h * (1 - r) ** (14 - h) for h in range(8, 15))
    print(f" {r:.2f}   {exact(float(exact_p[i])):19s}   {exact(tail):34s}   "
          f"{mc_fraction(float(sim['prefer'][i]), 20_000)}")
# the largest binomial standard error of a fraction of 20,000 draws, rounded up
glue("ch7_se_sim", math.ceil(1000 * 0.5 / math.sqrt(20_000)) / 1000, display=False)

# %% tags=["hide-input"]
tails = torch.tensor([sum(math.comb(14, h) * r**h * (1 - r) ** (14 - h) for h in range(8, 15))
                      for r in rho_check], dtype=torch.float64)
se_sim = (exact_p * (1 - exact_p) / 20_000).sqrt()
print(f"convolution equals the binomial tail at all {len(rho_check)} shares: "
      f"{bool(torch.allclose(exact_p, tails, rtol=1e-12, atol=0))}; simulation within 3 standard "
      f"errors of it: {bool(((sim['prefer'] - exact_p).abs() <= 3 * se_sim).all())}")

# %% [markdown]
# With the query clean, $y'$ needs $8$ of the other $14$ positions ($8>15-8$), which is the tail
# printed in the middle column. The simulation agrees with it within its sampling error (a standard
# error of at most {glue:text}`ch7_se_sim` for a fraction of 20,000 contexts).

# %% [markdown]
# (fig-paper-2-model)=
#
# ## The paper's Fig. 2 inside the model
#
# Fig. 2 of the paper plots the efficacy score of real language models against the number of
# prepended hijacking sentences. Here are the two one-layer versions: the fraction of contexts on
# which the model prefers $y'$ (left) as the hijack share grows and (right) as blocks of $b=4$
# hijack tokens are put in front of a clean context of $15$ tokens. Three models trained on the
# task (embeddings, $W_{KQ}$ and $W_{V}$, seeds $0,1,2$) are drawn as their mean with a min-max band,
# next to the constructed model and the exact curve.

# %%
base7 = TrainConfig(task=spec7, d=32, steps=500, batch_size=256, lr=0.01, eval_every=0,
                    device=device)
res7 = sweep(base7, seeds=(0, 1, 2), progress=False)
acc7 = evaluate(res7.model, spec7, n=4096, seed=1)
rho_grid = [i / 20 for i in range(21)]
ks = list(range(9))
fc_t = hijacking_in_model.flip_curve(res7.model, spec7, rho_grid, n=1024, seed=0)
fc_c = hijacking_in_model.flip_curve(model_c, spec7, rho_grid, n=1024, seed=0)
pc_t = hijacking_in_model.prepend_curve(res7.model, spec7, ks, block=4, n=1024, seed=0)
pc_c = hijacking_in_model.prepend_curve(model_c, spec7, ks, block=4, n=1024, seed=0)
fc_exact = hijacking_in_model.hijack_flip_probability(spec7, 0, 63, rho_grid,
                                                     last_clean=True)
pc_exact = hijacking_in_model.hijack_prepend_probability(spec7, 0, 63, ks, block=4)

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch7-fig2", "caption": "Context hijacking in the one-layer model ($m=6$, $\\mathcal{N}_1$, clean context of $L=15$): the fraction of contexts on which a model prefers $y'$ against the hijack share $\\rho$ (left) and against the number of prepended blocks of four hijack tokens (right, cf. the paper's Fig. 2). Trained models are drawn as their mean over three seeds with a min-max band; the dotted line is the constructed model's threshold."}, "image": {"alt": "Two panels of rising curves between 0 and 1. Left: against the hijack share, the constructed model and its exact curve rise steeply around one half, the trained models more gradually. Right: against the number of prepended blocks, the constructed model jumps from near 0 to near 1 between 3 and 4 blocks, the trained models rise gradually."}}
fig = hijacking_in_model.plot_hijack_curves([
    {"x": rho_grid, "curves": {"trained models (3 seeds)": fc_t["prefer"],
                               "constructed model": fc_c["prefer"]},
     "theory": {"exact, constructed model": fc_exact}, "threshold": 0.5,
     "xlabel": r"hijack share $\rho$", "ylabel": r"fraction preferring $y'$"},
    {"x": ks, "curves": {"trained models (3 seeds)": pc_t["prefer"],
                         "constructed model": pc_c["prefer"]},
     "theory": {"exact, constructed model": pc_exact}, "threshold": 15 / 4,
     "xlabel": "prepended blocks of 4 hijack tokens", "ylabel": r"fraction preferring $y'$"}])
plt.show()

# %% tags=["hide-input", "hide-output"]
print("accuracy of the trained models on clean contexts: "
      + ", ".join(f"{a:.2f}" for a in acc7))
print(" rho    constructed: prefer y' (1024 contexts)   exact")
for i, r in enumerate(rho_grid):
    if i % 2 == 0:
        print(f" {r:.2f}   {mc_fraction(float(fc_c['prefer'][i]), 1024):>34s}   "
              f"{exact(float(fc_exact[i]))}")
se_c = (fc_exact * (1 - fc_exact) / 1024).sqrt()            # binomial SE of the exact curve
print(f"constructed model within 3 standard errors of the exact curve at all {len(rho_grid)} "
      f"shares: {bool(((fc_c['prefer'] - fc_exact).abs() <= 3 * se_c).all())}")
at = {round(r, 2): i for i, r in enumerate(rho_grid)}          # rho -> grid index


def fig2_checks(model, fc, pc):
    """What the text claims of the trained models, each check over every seed of the ensemble
    (fc, pc: its flip and prepend curves on rho_grid and ks)."""
    pref, flip, corr = fc["prefer"], fc["flip"], fc["correct"]           # [seeds, R]
    rise_t = float(pref[:, at[0.8]].mean() - pref[:, at[0.2]].mean())
    rise_c = float(fc_exact[at[0.8]] - fc_exact[at[0.2]])
    ctx_h, y_h, yh_h = hijacking_in_model.hijack_contexts(spec7, 2048, rho=0.5, seed=0)
    between = []
    for i in range(model.ensemble):
        pred_h = model.member(i).predict(ctx_h)
        other = (pred_h != y_h) & (pred_h != yh_h)
        d_y = spec7.space.hamming(pred_h[other], y_h[other])
        d_h = spec7.space.hamming(pred_h[other], yh_h[other])
        between.append(float((((d_y == 2) & (d_h == 4)) | ((d_y == 4) & (d_h == 2))).double().mean()))
    return {
        "prefers y' on fewer than half of the contexts at rho = 0.45 and on more than half at "
        "rho = 0.55": bool((pref[:, at[0.45]] < 0.5).all() and (pref[:, at[0.55]] > 0.5).all()),
        "at rho = 0.50 prefers y' on more than 0.4 of the contexts but predicts y' on fewer than "
        "0.3": bool((pref[:, at[0.5]] > 0.4).all() and (flip[:, at[0.5]] < 0.3).all()),
        "at rho = 0.50 answers neither y nor y' on more than half of the contexts":
            bool((1 - flip[:, at[0.5]] - corr[:, at[0.5]] > 0.5).all()),
        "mean over seeds: from rho = 0.2 to 0.8 the preference rises less than the exact curve "
        "of the constructed model (a wider transition)": rise_c - rise_t > 0.01,
        "rho = 0.50, 2048 contexts: of the answers that are neither y nor y', more than 0.95 lie "
        "two bits from one target and four from the other": min(between) > 0.95,
        "at k = 3 (hijack share below 1/2) already prefer y' on more than 0.2 of the contexts, at "
        "k = 4 on fewer than 0.95": bool((pc["prefer"][:, 3] > 0.2).all()
                                           and (pc["prefer"][:, 4] < 0.95).all()),
    }


checks7 = fig2_checks(res7.model, fc_t, pc_t)
print("trained models, 1024 contexts per rho, each of the 3 seeds:")
for text, ok in list(checks7.items())[:-1]:
    print(f"   {text}: {ok}")
print(" k   hijack share   constructed: prefer y'   exact")
for i, k in enumerate(ks):
    print(f" {k}   {4 * k:2d}/{15 + 4 * k:2d}          {mc_fraction(float(pc_c['prefer'][i]), 1024):>22s}"
          f"   {exact(float(pc_exact[i]))}")
text, ok = list(checks7.items())[-1]
print(f"trained models, each seed: {text}: {ok}")

# %% tags=["hide-input"]
print(f"every check on the trained models holds at each of the 3 seeds: {all(checks7.values())}")

# %% [markdown]
# The constructed model follows its exact curve within the sampling error of $1024$ contexts (within
# three standard errors at every share; neighbouring points err in the same direction because the
# same random numbers draw the contexts at every share). The
# trained models cross one half close to $\rho=1/2$ too, with a wider transition: their logits are
# not exact shares. Their digits depend on the seed (the figure's band) and, by a few contexts in
# $1024$, on the CPU's floating-point code path, so the cell prints checks that hold for every seed
# instead of the trained curves' digits. Their *predictions* switch later than their preferences:
# around $\rho=1/2$ they often answer neither $y$ nor $y'$. The last check says which token they
# answer instead: a concept *between* the two, two bits away from one target and four from the
# other. The trained embeddings encode Hamming distance
# ({doc}`05_embeddings`), so a context that mixes two concepts evokes the concepts in between. For
# the constructed model with $\mathcal{N}_1$ this third-token effect is absent (its logits are exact shares,
# and no third line $F_k$ rises above both targets). In the prepend
# experiment the constructed model switches exactly when the hijack tokens outnumber the clean ones
# ($4k>15$, i.e. from $k=4$ on), while the trained models rise gradually, as the efficacy scores of
# the language models in Fig. 2 do. Nothing in the one-layer model reads the *meaning* of the
# prepended tokens: they act only through the share of the context they occupy. This is the
# associative-memory explanation of why "The Eiffel Tower is not in Chicago" can still pull the
# answer towards Chicago.
#
# **Which budget.** The figure shows models trained for $500$ steps, by which they answer every
# clean context correctly (the accuracy printed above). Do its conclusions depend on that budget
# or on the three seeds? The same checks at four times the budget, with five seeds:

# %% tags=["hide-input"]
res7_long = sweep(replace(base7, steps=4 * base7.steps), seeds=(0, 1, 2, 3, 4), progress=False)
fc_long = hijacking_in_model.flip_curve(res7_long.model, spec7, rho_grid, n=1024, seed=0)
pc_long = hijacking_in_model.prepend_curve(res7_long.model, spec7, ks, block=4, n=1024, seed=0)
print(f"trained models, {4 * base7.steps} steps, each of the 5 seeds:")
print(f"   clean accuracy at least 0.99: {min(evaluate(res7_long.model, spec7, n=4096, seed=1)) >= 0.99}")
for text, ok in fig2_checks(res7_long.model, fc_long, pc_long).items():
    print(f"   {text}: {ok}")

# %% [markdown]
# Every check holds at the longer budget and at each of the five seeds: these conclusions do not
# depend on the figure's budget or on its three seeds.

# %% [markdown]
# ## Where it breaks
#
# **Overlapping neighbourhoods of different sizes.** The threshold is $1/2$ whenever $D=D'$, but
# not in general. Give one concept a broad neighbourhood: all tokens within Hamming distance $2$
# of $y'=3$ ($D'=21$), while every other token keeps $\mathcal{N}_1$ ($D=6$). Target $y=0$ and $y'$ share
# $o=2$ neighbours. Then $\rho^*=(1-2/6)/((1-2/6)+(1-2/21))=14/33$: the broad concept
# hijacks *earlier*, because its tokens rarely count for $y$, while a third of $y$'s own tokens also
# count for $y'$. The other way round, $y'=0$ hijacking $y=3$, needs $19/33$.

# %%
Dm = spec7.space.distances()
mask_b = (Dm == 1).clone()
mask_b[3] = (Dm[3] >= 1) & (Dm[3] <= 2)
nb_b = lca.custom(mask_b, "N_1, ball(2) for token 3")
spec_b = lca.TaskSpec(m=6, L=15, neighbourhood=nb_b)
curves_b, thr_b = {}, {}
for (yy, hh) in ((0, 3), (3, 0)):
    Db, Dhb, ob = hijacking_in_model.hijack_overlap(spec_b, yy, hh)
    thr_b[(yy, hh)] = hijacking_in_model.hijack_threshold(Db, Dhb, ob)
    for L_b in (15, 63, 255):
        curves_b[f"y = {yy}, y' = {hh}, L = {L_b}"] = (
            hijacking_in_model.hijack_flip_probability(spec_b, yy, hh, rho_grid, L=L_b))

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch7-overlap", "caption": "Exact probability that the constructed model prefers $y'$, against the hijack share $\\rho$, when token $3$ has the broad neighbourhood of radius $2$: the broad concept $y'=3$ hijacking $y=0$ (left) and $y'=0$ hijacking the broad concept $y=3$ (right), at three context lengths. The dotted lines mark the thresholds $14/33$ and $19/33$."}, "image": {"alt": "Two panels, each with three S-shaped curves that get steeper as the context gets longer; on the left they cross one half at a dotted line left of the middle, on the right at a dotted line right of it."}}
fig = hijacking_in_model.plot_hijack_curves([
    {"x": rho_grid, "theory": {f"$L={L_b}$": curves_b[f"y = {yy}, y' = {hh}, L = {L_b}"]
                               for L_b in (15, 63, 255)},
     "threshold": thr_b[(yy, hh)], "xlabel": r"hijack share $\rho$",
     "ylabel": r"P(model prefers $y'$)", "title": f"$y={yy}$, $y'={hh}$"}
    for (yy, hh) in ((0, 3), (3, 0))])
plt.show()

# %% tags=["hide-input", "hide-output"]
for (yy, hh), t in thr_b.items():
    print(f"y = {yy}, y' = {hh}: sizes and overlap {hijacking_in_model.hijack_overlap(spec_b, yy, hh)}, "
          f"threshold {exact(t)}, argmax threshold "
          f"{exact(hijacking_in_model.hijack_threshold_argmax(spec_b, yy, hh))}")
print("P(model prefers y')     " + "".join(f"{f'rho = {rho_grid[i]:.2f}':>17s}"
                                          for i in (8, 9, 10, 11, 12)))
for key, v in curves_b.items():
    print(f"{key:24s}" + "".join(f"{exact(float(v[i])):>17s}" for i in (8, 9, 10, 11, 12)))

# %% tags=["hide-input"]
print("thresholds: " + ", ".join(f"y = {yy}, y' = {hh}: {exact(t)}" for (yy, hh), t in thr_b.items())
      + f" (14/33 = {exact(14 / 33)}, 19/33 = {exact(19 / 33)})")

# %% [markdown]
# The curves sharpen around $14/33$ and $19/33$, not around $1/2$. (For Hamming spheres or balls,
# where every neighbourhood has the same size, the overlap only flattens the finite-$L$ curve: a
# token in the overlap counts for both targets and moves nothing.)
#
# **Attention that filters.** The lemma assumes $W_{KQ}=0$. In {doc}`06_attention` a trained key-query
# matrix learned to attend to the query's cluster. Take that chapter's `"sphere"` cluster task
# ($m=8$, $k=2$, $L=17$, $\varepsilon=0.5$: an informative token is a Hamming neighbour of $y$
# inside $y$'s cluster, a noise token is uniform on the other clusters, and the query is
# informative) and train it with $W_{KQ}$ trained or frozen at $0$, five seeds each. Before
# hijacking anything, look at what the trained $W_{KQ}$ filters. Its scores
# $W_{E}W_{KQ}W_{E}^\top$ do not depend on the context; centre each query's row (only differences
# within a row change attention weights) and average the scores of the key tokens at each Hamming
# distance from the query token, separately for keys in the query's cluster and in the other
# clusters (`lca.hijacking_in_model.scores_by_distance`).

# %% tags=["hide-input"]
spec_att = attention.cluster_task(8, 2, L=17, noise=0.5, informative="sphere")
STEPS_ATT = 400                                  # the budget of the figures below (see the end)
variants_att = {"trained": {}, "frozen": {"train_KQ": False}}
base_att = TrainConfig(task=spec_att, d=32, steps=STEPS_ATT, batch_size=256, lr=0.01,
                       eval_every=0, device=device)
SEEDS_ATT = (0, 1, 2, 3, 4)
res_att = sweep(base_att, seeds=SEEDS_ATT, variants=variants_att, progress=False)
tr_att = [i for i, (lab, _) in enumerate(res_att.labels) if lab == "trained"]
fr_att = [i for i, (lab, _) in enumerate(res_att.labels) if lab == "frozen"]


SCORE_SE = 0.1      # trained scores move in their second decimal with the CPU's code path


def trained_scores(res, rows):
    """scores_by_distance of the members in rows (the W_KQ-trained ones), grouped by cluster."""
    table = hijacking_in_model.scores_by_distance(res.model, spec_att, k=2)
    return {key: v[rows] if key in ("all", "same", "other") else v for key, v in table.items()}


def parity_summary(table):
    """Per seed: lowest even-distance and highest odd-distance same-cluster score; means over seeds
    of the even and odd same-cluster scores (distances 0..6 exist inside a cluster)."""
    same = table["same"][:, :7]
    even, odd = same[:, 0::2], same[:, 1::2]
    return {"separated": bool((even.min(1).values > odd.max(1).values).all()),
            "even": mean_pm(even.mean(1), floor=SCORE_SE), "odd": mean_pm(odd.mean(1), floor=SCORE_SE),
            "other": mean_pm(table["other"][:, 1:].mean(1), floor=SCORE_SE)}


sc_att = trained_scores(res_att, tr_att)

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch7-scores", "caption": "What trained attention filters: the centred score of a key token against its Hamming distance from the query token, for keys in the query's cluster and in other clusters ($W_{KQ}$ trained for 400 steps, mean of five seeds with a min-max band; even distances shaded)."}, "image": {"alt": "Two curves against the distance 0 to 8. The curve for keys in the query's cluster zig-zags: high at even distances 0, 2, 4 and 6, low at odd distances, with a wide band at odd distances. The curve for other clusters stays low and flat."}}
fig = hijacking_in_model.plot_scores_by_distance([{"table": sc_att}])
plt.show()

# %% tags=["hide-input"]
print("centred attention score of a key token, by its Hamming distance from the query token "
      f"(mean ± SE over the {len(SEEDS_ATT)} trained seeds, SE at least {SCORE_SE})")
print(" distance       " + "".join(f"{d:>13d}" for d in range(9)))
for key, label in (("same", "same cluster "), ("other", "other cluster")):
    cells = [mean_pm(sc_att[key][:, d], floor=SCORE_SE) if int(sc_att[f"pairs_{key}"][d]) else "-"
             for d in range(9)]
    print(f" {label}  " + "".join(f"{c:>13s}" for c in cells))
par_att = parity_summary(sc_att)
print(f"every seed: every even-distance same-cluster score above every odd-distance one: "
      f"{par_att['separated']}")
print(f"mean same-cluster score at even distance {par_att['even']}, at odd distance "
      f"{par_att['odd']}; other clusters {par_att['other']}")
glue("ch7_score_even", par_att["even"], display=False)
glue("ch7_score_odd", par_att["odd"], display=False)
glue("ch7_score_other", par_att["other"], display=False)

# %% [markdown]
# The trained filter goes by the *parity* of the distance, not by its size. Keys in the query's
# cluster at even distance ($0,2,4,6$) score {glue:text}`ch7_score_even` on average, and at every
# seed each even distance scores above each odd one; keys at odd distance ($1,3,5$) score
# {glue:text}`ch7_score_odd`, with a wide spread between seeds (the band), and keys from other
# clusters {glue:text}`ch7_score_other`. A key six bits from the query gets far more weight than
# a key one bit from it. The training data say why. The query is a neighbour of $y$, and a key
# from the query's cluster appears in a training context only as a neighbour of $y$ too, so it is
# $0$ or $2$ bits from the query: always at even distance (the hypercube is bipartite, the same
# structure behind the even/odd zig-zag of {doc}`05_embeddings`). A same-cluster key at odd
# distance never meets the query in training, and neither does one at distance $4$ or $6$:
# nothing in the loss sets the scores of such pairs, which follow from the geometry of the learned
# embeddings. At distances $4$ and $6$ the scores extend the rule "same cluster and even
# distance"; at odd distances they are not pinned down, and they vary much more from seed to seed.
#
# So whether attention stops a hijack depends on where the hijack tokens sit. A hijack token is a
# neighbour of $y'$ and the query a neighbour of $y$, so their distance has the parity of the
# distance between $y$ and $y'$. We hijack with three targets: $y'$ from another cluster (the
# complement of $y$), $y'$ in $y$'s cluster $3$ bits away (its tokens sit at odd distance from the
# query), and $y'$ in $y$'s cluster $4$ bits away (even distance). The query stays clean.

# %% tags=["hide-input"]
def cluster_hijack(distance):
    """y' in y's cluster (the first 2 bits kept), `distance` random non-cluster bits flipped."""
    return lambda y: hijacking_in_model.hijack_targets(spec_att, y, distance, seed=5, fixed_bits=2)


# (name, hijack rule, a representative pair (y, y') for the exact curve: the task is symmetric)
hijackers = [("another cluster", lambda y: y ^ 255, (0, 255)),
             ("same cluster, 3 bits (odd)", cluster_hijack(3), (0, 7)),
             ("same cluster, 4 bits (even)", cluster_hijack(4), (0, 15))]
pts = [at[0.25], at[0.5], at[0.75], at[1.0]]


def hijack_table(res, rows_tr, rows_fr, grid):
    """Preference curves of the members (trained and frozen rows) for each hijack target."""
    out = {}
    for name, fn, (y_r, h_r) in hijackers:
        curve = hijacking_in_model.flip_curve(res.model, spec_att, grid, n=1024, seed=0,
                                              hijack=fn)["prefer"]         # [members, R]
        out[name] = {"trained": curve[rows_tr], "frozen": None if rows_fr is None else curve[rows_fr],
                     "exact": hijacking_in_model.hijack_flip_probability(
                         spec_att, y_r, h_r, grid, last_clean=True),
                     "threshold": hijacking_in_model.hijack_threshold_task(spec_att, y_r, h_r)}
    return out


tab_att = hijack_table(res_att, tr_att, fr_att, rho_grid)

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch7-filter", "caption": "Attention filters some hijack tokens (sphere cluster task, $m=8$, $k=2$, $L=17$, query kept clean): the fraction of contexts preferring $y'$ against the hijack share $\\rho$, for $y'$ in another cluster, in the same cluster three bits away, and in the same cluster four bits away, with $W_{KQ}$ trained or frozen at $0$ (five seeds each, mean with a min-max band) and the exact curve of the constructed model."}, "image": {"alt": "Three panels of curves against the hijack share. With W_KQ frozen the curves follow the dashed exact curve and rise to 1 in every panel. With W_KQ trained the curve stays low for y' in another cluster, rises partway with a wide band for the odd target three bits away, and rises to 1 for the even target four bits away."}}
fig = hijacking_in_model.plot_hijack_curves(
    [{"x": rho_grid, "curves": {r"$W_{KQ}$ trained": t["trained"],
                                r"$W_{KQ}$ frozen at $0$": t["frozen"]},
      "theory": {"exact, constructed model": t["exact"]},
      "threshold": t["threshold"], "xlabel": r"hijack share $\rho$",
      "ylabel": r"fraction preferring $y'$", "title": title}
     for title, t in zip(("another cluster", "same cluster, 3 bits", "same cluster, 4 bits"),
                         tab_att.values())])
plt.show()

# %% tags=["hide-input", "hide-output"]
acc_att = evaluate(res_att.model, spec_att, n=4096, seed=1)
acc_tr, acc_fr = [acc_att[i] for i in tr_att], [acc_att[i] for i in fr_att]
print(f"clean accuracy (mean ± SE over {len(SEEDS_ATT)} seeds, 4096 contexts each): W_KQ trained "
      f"{mean_pm(acc_tr, 4096)}, frozen {mean_pm(acc_fr, 4096)}; trained above frozen at "
      f"every seed: {min(acc_tr) > max(acc_fr)}")


def print_hijack_table(tab, seeds, cols):
    """The table of preference fractions at the grid indices cols (mean ± SE over seeds)."""
    print(f"fraction of 1024 contexts preferring y' (mean ± SE over {seeds} seeds)")
    print(f" {'y in':30s}{'':12s}" + "".join(f"{f'rho = {r:.2f}':>16s}" for r in (0.25, 0.5, 0.75, 1)))
    for name, t in tab.items():
        for j, (key, label) in enumerate((("exact", "exact"), ("frozen", "W_KQ frozen"),
                                          ("trained", "W_KQ trained"))):
            if t[key] is None:
                continue
            cells = [exact(float(t[key][i])) if key == "exact" else mean_pm(t[key][:, i], 1024)
                     for i in cols]
            print(f" {name if j == 0 else '':30s}{label:12s}" + "".join(f"{c:>16s}" for c in cells))


def filter_checks(tab, cols):
    """What the text claims of trained attention, each over every seed (cols: the grid indices of
    rho = 0.25, 0.50, 0.75, 1.00)."""
    other, odd, even = (tab[name]["trained"][:, cols] for name, _, _ in hijackers)  # [seeds, 4]
    return [f"y' in another cluster preferred on fewer than half of the contexts at rho = 0.75 and "
            f"1.00: {bool((other[:, 2:] < 0.5).all())}",
            f"the even y' preferred on more than 0.9 of the contexts at rho = 0.75 and 1.00: "
            f"{bool((even[:, 2:] > 0.9).all())}",
            f"the odd y' preferred less often than the even one at rho = 0.50, 0.75 and 1.00: "
            f"{bool((odd[:, 1:] < even[:, 1:]).all())}",
            f"seeds at which the odd y' is preferred on fewer than half of the contexts at rho = "
            f"1.00: {int((odd[:, 3] < 0.5).sum())} of {odd.shape[0]}"]


print_hijack_table(tab_att, len(SEEDS_ATT), pts)
for name, t in tab_att.items():
    print(f"y' in {name}: threshold of the constructed model {exact(t['threshold'])}")
    se_att = (t["exact"] * (1 - t["exact"]) / 1024).sqrt()       # binomial SE of 1024 contexts
    z = (t["frozen"] - t["exact"]) / se_att                       # [seeds, R], in SE units
    print(f"   W_KQ frozen, every seed: within 2 standard errors of the exact curve at rho = 0.50 "
          f"and 0.75: {bool((z[:, pts[1:3]].abs() <= 2).all())}; at rho = 0.25 above it by more "
          f"than 4: {bool((z[:, pts[0]] > 4).all())}; at rho = 1.00 on it (every context): "
          f"{bool((t['frozen'][:, pts[3]] == 1).all())}")
print("W_KQ trained, every seed:")
for line in filter_checks(tab_att, pts):
    print(f"   {line}")
ODD, EVEN = hijackers[1][0], hijackers[2][0]
for key, (name, i) in {"odd_rho1": (ODD, 3), "odd_rho75": (ODD, 2), "even_rho1": (EVEN, 3),
                       "even_rho75": (EVEN, 2)}.items():
    glue(f"ch7_{key}", mean_pm(tab_att[name]["trained"][:, pts[i]], 1024), display=False)
glue("ch7_frozen_even_rho75", mean_pm(tab_att[EVEN]["frozen"][:, pts[2]], 1024), display=False)
glue("ch7_other_rho1", mean_pm(tab_att[hijackers[0][0]]["trained"][:, pts[3]], 1024), display=False)
glue("ch7_odd_below", int((tab_att[ODD]["trained"][:, pts[3]] < 0.5).sum()), display=False)

# %% tags=["hide-input"]
print(f"clean accuracy: W_KQ trained above frozen at every seed: {min(acc_tr) > max(acc_fr)}")
for line in filter_checks(tab_att, pts):
    print(line)

# %% [markdown]
# With uniform attention the trained models are close to the constructed model's exact curve but,
# as the standard errors show, not on it. At $\rho=0.5$ and $\rho=0.75$ every seed is within two
# standard errors of the $1024$ contexts, and at $\rho=1$ it prefers $y'$ on every context, as the
# exact curve says; at $\rho=0.25$ every seed prefers $y'$ more often than the exact curve, by more
# than four standard errors, for each of the three targets. Their logits are not exact shares
# (their embeddings are trained, not orthonormal, and their $W_{V}$ is learned), and a small hijack
# share is where that shows. The constructed model's threshold is below $1/2$ here because half of
# the clean tokens are noise: $y'$ only has to outnumber the *informative* clean tokens.
# Generalising part 1 of the theorem, the expected margin of one position is
# $(1-\rho)\,\mathbb{E}_{\text{clean}}[X]+\rho\,\mathbb{E}_{\text{hijack}}[X]$, which vanishes at
# $\rho^*=1/3$ for a same-cluster target and slightly below for the other-cluster one, where a few
# noise tokens also land in $\mathcal{N}(y')$ (`lca.hijacking_in_model.hijack_threshold_task`).
#
# Trained attention stops the hijack from another cluster, weakens the odd one and lets the even
# one through, as the scores predict. With $y'$ in another cluster the trained models prefer $y'$
# on {glue:text}`ch7_other_rho1` of the contexts even at $\rho=1$ (every position but the query
# hijacked). With the odd $y'$ they prefer it on {glue:text}`ch7_odd_rho75` of the contexts at
# $\rho=0.75$ and on {glue:text}`ch7_odd_rho1` at $\rho=1$, fewer than half of them at
# {glue:text}`ch7_odd_below` of the $5$ seeds: how much the odd-distance tokens are filtered
# depends on the seed, as their scores do. Tokens at even distance pass: with the even $y'$, which
# is *farther* from $y$, the trained models prefer $y'$ on {glue:text}`ch7_even_rho75` of the
# contexts at $\rho=0.75$ (frozen {glue:text}`ch7_frozen_even_rho75`) and on
# {glue:text}`ch7_even_rho1` at $\rho=1$. Attention is a filter, but a filter keyed on the pattern
# of the training contexts (same cluster, even distance from the query), not on meaning and not on
# closeness to the query: a hijacking context whose tokens fit that pattern passes through it.
#
# **Which budget.** The models above trained for $400$ steps at learning rate $0.01$, the budget of
# {doc}`06_attention`. By then their clean accuracy has stopped improving, but the scores of pairs
# that no training context contains are not pinned down by the loss, so the filter need not be
# settled. The same measurements at four times the budget ($1600$ steps), with the same five
# seeds and $W_{KQ}$ trained (the frozen models follow the exact curve; they are not retrained):

# %% tags=["hide-input"]
res_long = sweep(replace(base_att, steps=4 * STEPS_ATT), seeds=SEEDS_ATT, progress=False)
acc_long = evaluate(res_long.model, spec_att, n=4096, seed=1)
sc_long = trained_scores(res_long, list(range(len(SEEDS_ATT))))   # every member has W_KQ trained
tab_long = hijack_table(res_long, list(range(len(SEEDS_ATT))), None, [0.25, 0.5, 0.75, 1.0])
other_l, odd_l, even_l = (tab_long[name]["trained"] for name, _, _ in hijackers)  # [seeds, 4]
odd_s = tab_att[ODD]["trained"][:, pts]
odd_score = {"400": sc_att["same"][:, 1:7:2].mean(1), "long": sc_long["same"][:, 1:7:2].mean(1)}
EVEN_MIN = 0.9
print(f"W_KQ trained, {4 * STEPS_ATT} steps, {len(SEEDS_ATT)} seeds (after this many steps the "
      f"digits depend on the CPU's code path, so the cell prints checks):")
for text, ok in {
    f"not more accurate on clean contexts than after {STEPS_ATT} steps (mean within 0.005 or below)":
        sum(acc_long) / len(acc_long) < sum(acc_tr) / len(acc_tr) + 0.005,
    "every seed: every even-distance same-cluster score above every odd-distance one":
        parity_summary(sc_long)["separated"],
    f"every seed: the mean odd-distance same-cluster score higher than after {STEPS_ATT} steps":
        bool((odd_score["long"] > odd_score["400"]).all()),
    "y' in another cluster: preferred on fewer than 0.15 of the contexts at rho = 0.75 at every "
    "seed, and on fewer than 0.4 at rho = 1.00 on average": bool((other_l[:, 2] < 0.15).all())
                                                           and float(other_l[:, 3].mean()) < 0.4,
    f"every seed: the even y' preferred on more than {EVEN_MIN} of the contexts at rho = 0.75 and "
    f"1.00": bool((even_l[:, 2:] > EVEN_MIN).all()),
    "every seed: the odd y' preferred less often than the even one at rho = 0.50, 0.75 and 1.00":
        bool((odd_l[:, 1:] < even_l[:, 1:]).all()),
    f"mean over seeds: the odd y' preferred more often than after {STEPS_ATT} steps at each of the "
    f"four rho": bool((odd_l.mean(0) > odd_s.mean(0)).all()),
}.items():
    print(f"   {text}: {ok}")
odd_long_rho1 = mean_pm(odd_l[:, 3], 1024, floor=0.1)
print(f"   the odd y' at rho = 1.00, mean over seeds (SE at least 0.1): {odd_long_rho1}")
glue("ch7_even_min", EVEN_MIN, display=False)
glue("ch7_odd_rho1_long", odd_long_rho1, display=False)
glue("ch7_acc_trained", mean_pm(acc_tr, 4096), display=False)

# %% [markdown]
# At four times the budget the $W_{KQ}$-trained models are no more accurate on clean contexts (they
# were at {glue:text}`ch7_acc_trained`), and they are less reproducible: after $1600$ steps at this
# learning rate their measurements change with the CPU's floating-point code path (the course's
# portability runs show it), while the $400$-step models print the same digits on every code path
# the suite checks, so the cell prints checks. Three conclusions hold at every seed: the scores still
# separate by parity, tokens from other clusters are still filtered, and tokens at even distance
# still pass (the even $y'$ is preferred on more than {glue:text}`ch7_even_min` of the contexts at
# $\rho=0.75$ and $\rho=1$), more often than the odd ones. The strength of the filter on
# same-cluster tokens at odd distance does not hold: their mean score rises at every seed, and at
# $\rho=1$ the odd $y'$ is preferred on {glue:text}`ch7_odd_rho1_long` of the contexts instead of
# {glue:text}`ch7_odd_rho1`. That is what scores the loss never sees can do: nothing holds them in
# place, so longer training moves them, by an amount that differs from seed to seed.
#
# The figures of this section show $400$ steps: the budget of {doc}`06_attention`, at which the
# trained models' clean accuracy has converged by the criterion printed above (a four times longer
# run is not more accurate). Read the parity pattern and the contrast between even and odd hijack
# targets as results of training on this task, found at both budgets and at every seed; read how
# strongly the odd-distance tokens are filtered as a property of one seed and one budget, which
# longer training weakens.

# %% [markdown]
# ## Explore
#
# The exact flip probability of the constructed model as a function of the hijack share, from the
# three numbers $D$, $D'$ and $o$ alone (`lca.hijacking_in_model.hijack_margin_probability`), with the threshold
# $\rho^*$ as a dotted line. Lengthen the context to watch the curve become a step.

# %%
def draw_flip(L=15, D=6, D_hijack=6, overlap=0):
    overlap = min(overlap, D, D_hijack)
    if overlap == D == D_hijack:
        overlap -= 1
    rho = [i / 40 for i in range(41)]
    curves = {f"$L={n}$": hijacking_in_model.hijack_margin_probability(rho, n, D, D_hijack,
                                                                       overlap)
              for n in dict.fromkeys((L, 1001))}
    threshold = hijacking_in_model.hijack_threshold(D, D_hijack, overlap)
    return hijacking_in_model.plot_hijack_curves(
        [{"x": rho, "theory": curves, "threshold": threshold,
          "xlabel": r"hijack share $\rho$", "ylabel": r"P(model prefers $y'$)",
          "title": f"$D={D}$, $D'={D_hijack}$, overlap ${overlap}$"}])


explorer(draw_flip, title="Hijack threshold and finite-L flip probability",
         L=widgets.IntSlider(value=15, min=1, max=301, step=2, description="L"),
         D=widgets.IntSlider(value=6, min=1, max=40, description="|N(y)|"),
         D_hijack=widgets.IntSlider(value=6, min=1, max=40, description="|N(y')|"),
         overlap=widgets.IntSlider(value=0, min=0, max=40, description="overlap"))

# %% [markdown]
# ## Exercises
#
# ```{exercise} Logits as shares
# :label: ex-ch7-shares
#
# Write `shares(contexts, mask)` returning the `[n, V]` matrix whose entry $(i,k)$ is the share of
# context $i$'s tokens that lie in $\mathcal{N}(k)$, where `contexts` is `[n, L]` (token ids) and
# the boolean `mask[k, x]` says whether $x\in\mathcal{N}(k)$. By {prf:ref}`ch7-share-logits` these
# are the constructed model's logits. The checker compares your function with the reference on
# four random masks that are *not* symmetric (so a transpose shows), contexts of length $1$
# included. Replace the `raise NotImplementedError` and run the cell.
# ```

# %% tags=["exercise-stub"]
def shares(contexts, mask):
    raise NotImplementedError  # your code here


check_share_logits(shares)

# %% [markdown]
# ```{solution-start} ex-ch7-shares
# :class: dropdown
# ```
#
# Count the tokens into frequencies: $c_x$ is the number of positions holding $x$, divided by $L$,
# an `[n, V]` matrix. The share of context $i$ in $\mathcal{N}(k)$ is
# $\sum_x\mathbb 1[x\in\mathcal{N}(k)]\,c_x=(Ac)_k$ with $A_{kx}$ the mask, so the whole matrix is
# $cA^\top$, i.e. `c @ mask.T` (after converting the mask to floats). The usual mistakes are
# `c @ mask` (the transpose: it counts the $k$ with $x\in\mathcal{N}(k)$ instead of the $x$ in
# $\mathcal{N}(k)$, the same thing only for symmetric neighbourhoods), counts instead of shares (no
# division by $L$), and counting a repeated token once. The reference code is in the cell below,
# checked by the same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def shares_reference(contexts, mask):
    n, L = contexts.shape
    c = torch.zeros(n, mask.shape[0], dtype=torch.float64)
    c.scatter_add_(1, contexts, torch.full(contexts.shape, 1 / L, dtype=torch.float64))
    return c @ mask.double().T


check_share_logits(shares_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} The threshold with noisy contexts
# :label: ex-ch7-threshold
#
# {prf:ref}`ch7-hijack-threshold` assumes clean tokens uniform on $\mathcal{N}(y)$. Let a clean token
# instead be noise with probability $\varepsilon$: uniform on the $V-1$ tokens other than $y$ (the
# course's default noise law), and uniform on $\mathcal{N}(y)$ otherwise. Hijack tokens stay uniform
# on $\mathcal{N}(y')$, and $y$ lies in neither neighbourhood. Derive the share $\rho^*$ at which
# $\mathbb{E}f_{y'}$ overtakes $\mathbb{E}f_y$, and write `noisy_threshold(D, D_hijack, overlap,
# noise, V)` returning it, clipped to $[0,1]$ (so $0$ when $y'$ is ahead already at $\rho=0$). How
# does noise move the threshold when $D=D'$? The checker compares your function with the reference
# on seven cases, $\varepsilon=0$ and a clipped case among them. Replace the
# `raise NotImplementedError` and run the cell.
# ```

# %% tags=["exercise-stub"]
def noisy_threshold(D, D_hijack, overlap, noise, V):
    raise NotImplementedError  # your code here


check_noisy_threshold(noisy_threshold)

# %% [markdown]
# ```{solution-start} ex-ch7-threshold
# :class: dropdown
# ```
#
# As in the theorem's proof, $f_{y'}-f_y=\frac1L\sum_lX_l$ with
# $X=\mathbb 1[x\in\mathcal{N}(y')]-\mathbb 1[x\in\mathcal{N}(y)]$, so the question is where the
# expected step of one position changes sign. A hijack token lies in $\mathcal{N}(y')$ always and in
# $\mathcal{N}(y)$ with probability $o/D'$: $\mathbb{E}_{\text{hijack}}X=1-o/D'$. An informative
# clean token gives $o/D-1$. A noise token is uniform on $V-1$ tokens, of which $D'$ lie in
# $\mathcal{N}(y')$ and $D$ in $\mathcal{N}(y)$ (neither contains $y$), so it gives $(D'-D)/(V-1)$.
# Hence
#
# $$
# \begin{aligned}
# \mathbb{E}_{\text{clean}}X&=(1-\varepsilon)\Big(\frac oD-1\Big)+\varepsilon\,\frac{D'-D}{V-1},\\
# (1-\rho)\,\mathbb{E}_{\text{clean}}X+\rho\,\mathbb{E}_{\text{hijack}}X&=0
# \iff\rho=\rho^*=\frac{-\mathbb{E}_{\text{clean}}X}{\mathbb{E}_{\text{hijack}}X-\mathbb{E}_{\text{clean}}X}.
# \end{aligned}
# $$
#
# The expected margin is affine in $\rho$ with slope
# $\mathbb{E}_{\text{hijack}}X-\mathbb{E}_{\text{clean}}X$, positive in every case of the checker, so
# $y'$ is ahead exactly when $\rho>\rho^*$; if $\rho^*<0$, $y'$ is ahead at every share and the
# clipped answer is $0$. At $\varepsilon=0$ this is the threshold of the theorem. When $D=D'$ the
# noise term vanishes and $\rho^*=\frac{(1-\varepsilon)(1-o/D)}{(1-\varepsilon)(1-o/D)+(1-o/D)}
# =\frac{1-\varepsilon}{2-\varepsilon}$, whatever the overlap: noise lowers the threshold, because
# $y'$ only has to outnumber the *informative* clean tokens (the value $1/3$ at $\varepsilon=1/2$
# is the threshold of the same-cluster target in "Where it breaks"). `tests/test_hijacking_in_model.py`
# checks the formula against `hijack_threshold_task` on noisy tasks, and checks that it fails for
# the cluster task, whose noise avoids $y$'s cluster. The reference code is in the cell below,
# checked by the same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def noisy_threshold_reference(D, D_hijack, overlap, noise, V):
    e_clean = (1 - noise) * (overlap / D - 1) + noise * (D_hijack - D) / (V - 1)
    e_hijack = 1 - overlap / D_hijack
    return min(max(-e_clean / (e_hijack - e_clean), 0.0), 1.0)


check_noisy_threshold(noisy_threshold_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Flip probability with overlapping neighbourhoods
# :label: ex-ch7-trinomial
#
# Part 2 of {prf:ref}`ch7-hijack-threshold` writes $L(f_{y'}-f_y)$ as a sum of $L$ independent
# steps in $\{-1,0,+1\}$. Write `flip_probability(rho, L, D, D_hijack, overlap)`: the exact
# probability that the constructed model strictly prefers $y'$ on a noise-free $\rho$-hijacked
# context of length $L$ in which every position may be hijacked, when $|\mathcal{N}(y)|=D$,
# $|\mathcal{N}(y')|=D'$ and the two share $o$ tokens. Mind the ties. The checker compares your
# function with the reference on seven cases, among them $L=1$, an even $L$ and overlapping
# neighbourhoods of different sizes. Replace the `raise NotImplementedError` and run the cell.
# ```

# %% tags=["exercise-stub"]
def flip_probability(rho, L, D, D_hijack, overlap):
    raise NotImplementedError  # your code here


check_flip_probability_overlap(flip_probability)

# %% [markdown]
# ```{solution-start} ex-ch7-trinomial
# :class: dropdown
# ```
#
# A position steps $+1$ when it lies in $\mathcal{N}(y')$ but not in $\mathcal{N}(y)$: a hijack token
# outside the overlap, probability $p_+=\rho(1-o/D')$. It steps $-1$ for a clean token outside the
# overlap, $p_-=(1-\rho)(1-o/D)$, and $0$ otherwise (a token of the overlap counts for both), with
# $p_0=1-p_+-p_-$. The numbers $(A,B)$ of $+1$ and $-1$ steps are trinomial, so
#
# $$
# P(f_{y'}>f_y)=\sum_{\substack{a+b\le L\\ a>b}}\frac{L!}{a!\,b!\,(L-a-b)!}\,p_+^a\,p_-^b\,p_0^{L-a-b}.
# $$
#
# The condition is $a>b$, strict: a tie $a=b$ leaves $f_{y'}=f_y$ and the model does not prefer
# $y'$. For $o=0$, $p_0=0$ and the sum is the binomial tail of the theorem. Common mistakes: counting
# ties ($a\ge b$), forgetting that overlap tokens count for both (using the binomial tail with
# $p_+=\rho$), and swapping $D$ and $D'$. A convolution of the step law $L$ times (as
# `lca.hijacking_in_model.hijack_margin_probability` does) gives the same numbers in $O(L^2)$
# operations. The reference code is in the cell below, checked by the same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def flip_probability_reference(rho, L, D, D_hijack, overlap):
    plus, minus = rho * (1 - overlap / D_hijack), (1 - rho) * (1 - overlap / D)
    zero = 1 - plus - minus
    return sum(math.factorial(L) / (math.factorial(a) * math.factorial(b) * math.factorial(L - a - b))
               * plus**a * minus**b * zero ** (L - a - b)
               for a in range(L + 1) for b in range(min(a, L - a + 1)))


check_flip_probability_overlap(flip_probability_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% tags=["remove-input"]
hoeff_L = math.ceil(math.log(100) / (2 * 0.05**2))
exact_L = next(n for n in range(1, 5000)
               if all(float(hijacking_in_model.hijack_binomial_flip(0.45, n2)[0]) < 0.01
                      for n2 in range(n, n + 2)))
glue("ch7_hoeffding_L", hoeff_L, display=False)
glue("ch7_exact_L", exact_L, display=False)

# %% [markdown]
# ```{exercise} From a curve to a step
# :label: ex-ch7-hoeffding
#
# Prove part 3 of {prf:ref}`ch7-hijack-threshold` for disjoint neighbourhoods: if $\rho<1/2$ then
# $P(\mathrm{Binomial}(L,\rho)>L/2)\le e^{-2L(1/2-\rho)^2}$. How long must a context be for a
# hijack share $\rho=0.45$ to succeed with probability below $1\%$, by the bound? Compare with the
# exact tail.
# ```
#
# ```{solution} ex-ch7-hoeffding
# :class: dropdown
#
# $H=\sum_lB_l$ with independent $B_l\in\{0,1\}$ of mean $\rho$. Hoeffding's inequality for
# variables with values in an interval of length $1$ gives $P(H-L\rho\ge Lt)\le e^{-2Lt^2}$; take
# $t=1/2-\rho>0$, since $H>L/2$ implies $H-L\rho>Lt$. For $\rho=0.45$ the bound is below $1\%$ once
# $L\ge\ln(100)/\big(2(1/2-\rho)^2\big)$, that is from $L={glue:text}`ch7_hoeffding_L`$ on. The exact
# tail is smaller: it stays below $1\%$ from $L={glue:text}`ch7_exact_L`$ on (compute it with
# `lca.hijacking_in_model.hijack_binomial_flip(0.45, L)`; it is not monotone in $L$, since odd and
# even lengths differ, so look at two consecutive lengths). Long contexts make the model's decision
# sharp, not safe: a majority of hijack tokens still wins.
# ```

# %% [markdown]
# ## Summary
#
# Inside the one-layer model, context hijacking is arithmetic. The constructed associative memory
# answers with the concept whose neighbourhood holds the largest share of the context, so a
# hijacking context wins once its tokens pass a threshold, $1/2$ for disjoint neighbourhoods and
# $\frac{1-o/D}{(1-o/D)+(1-o/D')}$ in general, with a binomial-type probability for finite contexts
# that sharpens into a step. Trained models switch near the same threshold, with a wider
# transition, and prepending blocks of hijacking tokens raises their efficacy score gradually,
# which is the shape of the real-LLM
# measurements of {doc}`00_hijacking` and the paper's Fig. 2. Negation plays no role anywhere in
# this mechanism: a token that points to Chicago points to Chicago. A trained attention layer can
# filter hijacking tokens, but what it filters is set by the training contexts, not by meaning or
# by resemblance to the query: in the cluster task it ignores tokens from other clusters and
# same-cluster tokens at odd Hamming distance from the query (never seen next to it in training),
# and lets through same-cluster tokens at even distance, even when they point to a concept
# farther from the answer. How strongly it filters the unseen kind depends on the seed and the
# training budget. Filters of this kind are one possible reason why real models resist some hijacks and
# not others.
