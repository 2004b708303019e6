# %% tags=["remove-cell"]
# Colab setup: install the course package (runs only on Google Colab)
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "lca[llm] @ git+https://github.com/elephants-course/elephants@v0.1.0"], check=True)


# %% [markdown]
# # Embedding geometry: Hamming distance, low rank and Krawtchouk spectra
#
# What do the *embeddings* learn when $d<V$? The paper {cite}`jiang2024elephants` reports that the
# inner product of two trained embeddings falls with the Hamming distance of their latent vectors
# (its Fig. 3b and equation (5.2)), with a low-rank, eigen-gapped embedding matrix. We make the
# geometry exact (*Krawtchouk numbers*), then measure: with $W_{V}=I$ the embeddings follow the
# law roughly; with a trained $W_{V}$, the setting of Fig. 3(b), they do not, and we find out why.
#
# **In this chapter you will**
#
# - prove that a Gram matrix $b_0-b_1D_{\mathrm{H}}$ has rank at most $m+1$, and exactly which rank;
# - diagonalise every matrix of the form $g(D_{\mathrm{H}})$ with Walsh characters and Krawtchouk numbers;
# - measure the profile, fits and spectrum of trained embeddings, $W_{V}$ trained or $I$;
# - split a trained Gram matrix into what a law of the distance explains and the rest;
# - see the structure disappear when $d\ge V$ or when the neighbourhood ignores Hamming distance.

# %% tags=["hide-input"]
import math
from fractions import Fraction

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

import lca
from lca import embeddings, glue
from lca.embeddings import (
    check_affine_embedding,
    check_gram_profile,
    check_hamming_spectrum,
    check_krawtchouk_table,
)
from lca.report import bound, exact, pm, sig
from lca.train import build_model
from lca.widgets import explorer

torch.manual_seed(0)
device = lca.default_device()
torch.set_num_threads(1)


def fixed(x, places=2):
    """A trained quantity at a fixed number of decimals (a tiny negative prints as 0.00, not -0.00)."""
    text = f"{float(x):.{places}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def accuracy_text(a):
    """Accuracy on the evaluation set: exact at 0 and 1, otherwise a comparison or one decimal."""
    return "1" if a == 1 else "0" if a == 0 else "> 0.95" if a > 0.95 else f"about {a:.1f}"

# %% [markdown]
# ## Definitions
#
# Tokens are latent vectors $z\in\mathcal{Z}=\{0,1\}^m$, $V=2^m$, and $W_{E}(i)$ is row $i$ of the embedding
# matrix $W_{E}\in\mathbb{R}^{V\times d}$ (see the {doc}`notation` page).
#
# ```{prf:definition} Gram matrix and Hamming profile
# :label: def-geo-profile
#
# The *Gram matrix* of the embeddings is $G=W_{E}W_{E}^\top$, $G_{ij}=W_{E}(i)^\top W_{E}(j)$. Its
# *Hamming profile* is the pair of functions of $k=0,\dots,m$
#
# $\bar g(k)=\operatorname{mean}$ and $\sigma(k)=\operatorname{sd}$ of
# $\{G_{ij}:D_{\mathrm{H}}(i,j)=k\}$, over the $V\binom mk$ ordered pairs at distance $k$ ($k=0$:
# the squared norms). The *spread* $\sigma(k)$ is zero exactly when $G$ depends on the pair only
# through its Hamming distance.
# ```
#
# ```{prf:definition} Hamming kernel and the affine law
# :label: def-geo-kernel
#
# For a *profile* $g:\{0,\dots,m\}\to\mathbb{R}$, the *Hamming kernel* $G_g$ is the $V\times V$ matrix with
# entries $g(D_{\mathrm{H}}(i,j))$. The *affine law* is the Hamming kernel of $g(k)=b_0-b_1k$,
# $W_{E}(i)^\top W_{E}(j)=b_0-b_1\,D_{\mathrm{H}}(i,j)$ with $b_1>0$.
# ```
#
# The course reads the paper's equation (5.2), whose exact form we do not have, as the affine law;
# the statements below are the course's own, proved in {doc}`the appendix <proofs/geometry>`.
#
# ```{prf:definition} Walsh characters and Krawtchouk numbers
# :label: def-geo-krawtchouk
#
# For $S\in\mathcal{Z}$ the *Walsh character* $\chi_S\in\{\pm1\}^V$ has entries
# $\chi_S(z)=(-1)^{S\cdot z}$, with $S\cdot z=\sum_as_az_a$; its *weight* is the number of ones
# $|S|$. The *Krawtchouk numbers* are
#
# $$
# K_k(w)=\sum_j(-1)^j\binom wj\binom{m-w}{k-j},\qquad k,w\in\{0,\dots,m\}.
# $$
#
# $K_k(w)$ is the sum of $(-1)^{S\cdot u}$ over the $\binom mk$ vectors $u$ of weight $k$, for any
# fixed $S$ of weight $w$ (exactly: `lca.embeddings.krawtchouk(k, w, m)`). The weight-0 character
# is $\mathbf{1}$, the $m$ of weight 1 are the *bit directions* $(-1)^{z_a}$, the one of weight
# $m$ is the *parity* $(-1)^{|z|}$.
# ```

# %% [markdown]
# ## Look at it first
#
# The simplest embedding that knows the latent space is the centred code
# $e_z=\frac1{\sqrt m}(2z-\mathbf{1})\in\mathbb{R}^m$: each latent bit becomes a coordinate $\pm1/\sqrt m$. Its
# Gram matrix is a Hamming kernel, as {numref}`fig-ch5-code` shows for $m=4$ (16 tokens, in id
# order).

# %%
m = 4
space = lca.LatentSpace(m)
D = space.distances()
E_code = (2 * space.latents.double() - 1) / math.sqrt(m)  # [V, m]: the centred +-1 code
G_code = E_code @ E_code.T

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch5-code", "caption": "The centred code at $m=4$: Hamming distances between the 16 tokens (left) and the inner products of their embeddings (right). The inner product is an affine function of the distance, so both maps show the same pattern."}, "image": {"alt": "Two 16 by 16 heat maps with the same block pattern: distances on the left, inner products on the right, large inner products where distances are small."}}
fig = embeddings.plot_distance_and_gram(D, G_code)
plt.show()

# %% tags=["hide-input", "hide-output"]
print("token 0 against tokens 0..7")
print("  D_H       :", " ".join(f"{int(x):6d}" for x in D[0, :8]))
print("  <e_0, e_j>:", " ".join(f"{float(x):6.3f}" for x in G_code[0, :8]))
print("  1 - 2D/m  :", " ".join(f"{1 - 2 * float(x) / m:6.3f}" for x in D[0, :8]))
rank = int(torch.linalg.matrix_rank(G_code))
print(f"rank of the 16 x 16 Gram matrix: {rank}  (m = {m})")

# %% [markdown]
# The Gram matrix is $1-\frac2mD_{\mathrm{H}}$ (the affine law, $b_0=1$, $b_1=2/m$), of rank $4$
# (folded output): the embeddings live in $m$ dimensions however many tokens there are, and this
# is no accident.

# %% [markdown]
# ## Results
#
# ```{prf:theorem} The affine law has rank at most m+1
# :label: thm-geo-affine
#
# Let $G=b_0\mathbf{1}\mathbf{1}^\top-b_1D_{\mathrm{H}}$. Write $Z\in\{0,1\}^{V\times m}$ for the latent matrix (row $z$
# is $z^\top$) and $\mathbf z=Z\mathbf{1}$ for the numbers of ones. Then
#
# 1. $D_{\mathrm{H}}=\mathbf z\mathbf{1}^\top+\mathbf{1}\mathbf z^\top-2ZZ^\top$, so the columns of $G$ lie in the span
#    of $\mathbf{1}$ and the $m$ columns of $Z$, and $\operatorname{rank}G\le m+1$;
# 2. exactly, the non-zero eigenvalues are $\lambda_0=2^m(b_0-mb_1/2)$ (eigenvector $\mathbf{1}$) and
#    $\lambda_1=2^{m-1}b_1$ (multiplicity $m$, the bit directions), so
#    $\operatorname{rank}G=m\,\mathbb 1[b_1\ne0]+\mathbb 1[b_0\ne mb_1/2]$: $m+1$ generically, and
#    $m$ in the centred case $b_0=mb_1/2$ (for instance the $\pm1$ code above);
# 3. $G$ is a Gram matrix of real embeddings if and only if $b_1\ge0$ and $b_0\ge mb_1/2$, and then
#    embeddings with $\operatorname{rank}G$ coordinates realise it.
# ```
#
# ````{dropdown} Proof sketch
# For single bits, $\mathbb 1[a\ne b]=a+b-2ab$; summing over coordinates gives
# $D_{\mathrm{H}}(z,z')=|z|+|z'|-2z^\top z'$, which is the factorisation. Substituting it,
# $G=b_0\mathbf{1}\mathbf{1}^\top-b_1\mathbf z\mathbf{1}^\top-b_1\mathbf{1}\mathbf z^\top+2b_1ZZ^\top$, and each term has
# its columns in $\operatorname{span}\{\mathbf{1},Z_{:,1},\dots,Z_{:,m}\}$, a space of dimension at most
# $m+1$. Parts 2 and 3 follow from the next theorem with $g(k)=b_0-b_1k$; see
# {prf:ref}`thm-geo-affine-rank` for the details.
# ````
#
# The affine law is one profile among many. Every Hamming kernel has an explicit spectrum.
#
# ```{prf:theorem} Krawtchouk spectrum of a Hamming kernel
# :label: thm-geo-spectrum
#
# For any profile $g$, each Walsh character is an eigenvector of the Hamming kernel:
#
# $$
# \begin{aligned}
# G_g\chi_S&=\lambda_{|S|}\chi_S,\\
# \lambda_w&=\textstyle\sum_{k=0}^mg(k)\,K_k(w),
# \end{aligned}
# $$
#
# so $\lambda_w$ has multiplicity $\binom mw$ (more if several weights share a value),
# $\operatorname{rank}G_g=\sum_{w:\lambda_w\ne0}\binom mw$, and $G_g$ is a Gram matrix if and only
# if every $\lambda_w\ge0$.
# ```
#
# ````{dropdown} Proof sketch
# The tokens at distance $k$ from $z$ are $z\oplus u$ with $|u|=k$, and
# $\chi_S(z\oplus u)=\chi_S(z)(-1)^{S\cdot u}$. So entry $z$ of $G_g\chi_S$ is
# $\chi_S(z)\sum_kg(k)\sum_{|u|=k}(-1)^{S\cdot u}=\chi_S(z)\sum_kg(k)K_k(|S|)$. The $V$ characters
# are mutually orthogonal, hence a complete eigenbasis. (Full proof, with the inverse formula
# giving $g$ back from the $\lambda_w$: {prf:ref}`thm-geo-krawtchouk`.)
# ````
#
# A trained Gram matrix is never exactly a Hamming kernel; what survives is an average. The
# kernel of the mean profile $\bar g$ is the Hamming kernel closest to $G$, with eigenvalues
# $\bar\lambda_w$ the mean Rayleigh quotients $\chi_S^\top G\chi_S/V$ over $|S|=w$
# ({prf:ref}`lem-geo-profile-projection`). The variance of $G$ splits by weight
# ({prf:ref}`cor-geo-variance`): $\binom mw\bar\lambda_w^2$ on weight $w$, and
# $\|G-G_{\bar g}\|_F^2$ that *no* function of the distance explains. A law's $R^2$ sums the
# shares of its weights: $\{1\}$ for the affine law, $\{1,m-1,m\}$ for the *parity-twisted affine
# law* $W_{E}(i)^\top W_{E}(j)\approx b_0-b_1k+(-1)^k(c_0-c_1k)$, $k=D_{\mathrm{H}}(i,j)$, the
# version of (5.2) with parity terms that the trained models below call for.

# %% [markdown]
# ## Check it
#
# In float64 at $m=6$: Krawtchouk eigenvalues against `torch.linalg.eigvalsh`, the rank formula of
# {prf:ref}`thm-geo-affine` against `matrix_rank`, and a Gram matrix that is *not* a Hamming kernel.

# %% tags=["hide-input", "hide-output"]
m = 6
gen = torch.Generator().manual_seed(5)
g_rand = torch.randn(m + 1, generator=gen, dtype=torch.float64)
lam, mult = embeddings.hamming_kernel_spectrum(g_rand, m)
predicted = embeddings.expand_spectrum(lam, mult)
measured = torch.linalg.eigvalsh(embeddings.hamming_kernel(g_rand, m)).flip(0)
print(f"random profile, m = {m}: g = " + " ".join(f"{float(x):.3f}" for x in g_rand))
print(f"{'w':>2s} {'C(m,w)':>6s} {'lambda_w (Krawtchouk)':>22s}")
for w in range(m + 1):
    print(f"{w:2d} {int(mult[w]):6d} {exact(lam[w]):>22s}")
print(f"max |eigvalsh - Krawtchouk| over all {2 ** m} eigenvalues: "
      f"{bound((measured - predicted).abs().max(), 1e-10)}")

print("\naffine law b0 - b1 D_H, m = 6:")
print(f"{'b0':>5s} {'b1':>5s} {'rank (numerical)':>17s} {'rank (formula)':>15s} "
      f"{'Gram matrix (no eigenvalue < 0)':>32s}")
for b0, b1 in [(4.0, 1.0), (3.0, 1.0), (2.0, 1.0), (1.0, 0.0), (-1.0, 0.5)]:
    G_ab = embeddings.affine_gram(m, b0, b1)
    r_num = int(torch.linalg.matrix_rank(G_ab))
    psd = bool(torch.linalg.eigvalsh(G_ab).min() > -1e-9)
    print(f"{b0:5.1f} {b1:5.1f} {r_num:17d} {embeddings.affine_gram_rank(m, b0, b1):15d} "
          f"{str(psd):>32s}")

# a Gram matrix that does not depend on Hamming distance only
W_rand = torch.randn(2 ** m, 10, generator=gen, dtype=torch.float64)
G_rand = W_rand @ W_rand.T
prof_rand = embeddings.gram_profile(W_rand)
lam_r, mult_r = embeddings.hamming_kernel_spectrum(prof_rand.mean, m)
pred_r = embeddings.expand_spectrum(lam_r, mult_r)
meas_r = torch.linalg.eigvalsh(G_rand).flip(0)
rayleigh_r = embeddings.weight_rayleigh(G_rand)
print("\nrandom Gram matrix (d = 10), not a Hamming kernel:")
print(f"  max |eigvalsh - Krawtchouk of the mean profile| = {exact((meas_r - pred_r).abs().max())}")
print(f"  trace: measured {exact(meas_r.sum())}, predicted {exact(pred_r.sum())}, "
      f"|difference| {bound(meas_r.sum() - pred_r.sum(), 1e-9)}")
print(f"  {'w':>2s} {'mean Rayleigh quotient':>23s} {'Krawtchouk of mean profile':>27s}")
for w in range(m + 1):
    print(f"  {w:2d} {exact(rayleigh_r[w]):>23s} {exact(lam_r[w]):>27s}")
print(f"  max |difference| over the weights: {bound((rayleigh_r - lam_r).abs().max(), 1e-10)}")

# %% [markdown]
# The folded output: the Krawtchouk eigenvalues are the eigenvalues to rounding error; the ranks
# are $7=m+1$ in general, $6$ when centred ($b_0=3=mb_1/2$), $1$ when $b_1=0$; pairs breaking
# $b_0\ge mb_1/2$ have a negative eigenvalue. For the random Gram matrix the predicted eigenvalues
# are wrong one by one, but their sum and per-weight averages are exact.

# %% [markdown]
# (fig-paper-3b)=
#
# ## The paper's figure: inner product against Hamming distance
#
# Fig. 3(b) of {cite}`jiang2024elephants` plots, for $m=8$ with $d<V$ and a trained $W_{V}$, the
# mean inner product of two embeddings against their Hamming distance; its caption says the
# structure "is approximated by (5.2)". Plots named `no_wv_hamming_inner_n5` to `n8` are probably
# the same with $W_{V}=I$; we show both. The paper's settings are not available; ours: $m=8$,
# $d=32$, $L=64$, contexts uniform on $\mathcal{N}_1(z^*)$, Adam with learning rate 0.01, batch
# $256$, $800$ steps, $W_{KQ}$ trained from $0$, three seeds per variant.

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch5-profile", "caption": "Mean inner product of two trained embeddings against their Hamming distance ($m=8$, $d=32$, three seeds), with a trained $W_V$ (left) and with $W_V=I$ (right), and the affine and parity-twisted laws fitted to the mean profile."}, "image": {"alt": "Two panels of inner product against distance 0 to 8. Left: a high point at distance 0, then a zig-zag between even and odd distances, followed by the dotted parity-twisted fit but not by the dashed affine line. Right: a steady fall that the dashed affine line follows roughly."}}
M_FIG = 8
spec8 = lca.TaskSpec(m=M_FIG, L=64)
base8 = lca.TrainConfig(task=spec8, d=32, steps=800, batch_size=256, lr=0.01, eval_every=0,
                        device=device)
VARIANTS = {"trained W_V": {}, "W_V = I (frozen)": {"train_V": False, "WV_init": "identity"}}
SEEDS = (0, 1, 2)
run8 = lca.sweep(base8, seeds=SEEDS, variants=VARIANTS, progress=False)
names = list(VARIANTS)
TW8 = embeddings.twisted_weights(M_FIG)                 # (0, 1, m-1, m)
G8 = embeddings.gram_matrix(run8.model)                 # [6, V, V]
prof8 = embeddings.gram_profile(run8.model)             # mean, std: [6, m+1]
fit8 = embeddings.affine_fit(run8.model)                # one affine fit per member
var8 = embeddings.weight_variance(G8)                   # variance split by weight, per member
acc8 = run8.history["accuracy"][-1]
members = {v: [i for i, (lab, _) in enumerate(run8.labels) if lab == v] for v in names}


def mean_of(values, idx):
    return sum(float(values[i]) for i in idx) / len(idx)


panels = {v: {"mean": prof8.mean[idx], "std": prof8.std[idx],
              "b0": mean_of(fit8.b0, idx), "b1": mean_of(fit8.b1, idx),
              "r2": round(mean_of(fit8.r2_profile, idx), 1),          # the mean profile's R^2
              "twisted": embeddings.weight_profile(G8[idx], TW8).mean(0),
              "r2_twisted": round(mean_of(var8.r2_profile(TW8), idx), 1)}
          for v, idx in members.items()}
fig = embeddings.plot_hamming_inner(panels, height=2.6)
plt.show()

# %% tags=["hide-input", "hide-output"]
g0 = {v: float(prof8.mean[members[v], 0].mean()) for v in names}
print(f"{'':>9s} | " + " | ".join(f"{v:>16s}" for v in names))
print(f"{'k':>2s} {'pairs':>6s} | " + " | ".join(f"{'mean':>7s} {'spread':>8s}" for _ in names))
places = {"trained W_V": 2, "W_V = I (frozen)": 1}     # W_V = I: the second decimal moves between CPUs
for k in range(M_FIG + 1):
    cells = [f"{fixed(prof8.mean[members[v], k].mean() / g0[v], places[v]):>7s} "
             f"{fixed(prof8.std[members[v], k].mean() / g0[v], 1):>8s}" for v in names]
    print(f"{k:2d} {int(prof8.count[k]):6d} | " + " | ".join(cells))
print(f"{'g(0)':>9s} | " + " | ".join(f"{sig(g0[v], 2):>16s}" for v in names))
print("\nR^2 over the pairs (mean ± standard error over seeds), then of the mean profile;")
print("accuracy per seed")
for v, idx in members.items():
    r2 = torch.tensor([fit8.r2[i] for i in idx])
    print(f"  {v:18s} pairs: affine {pm(r2.mean(), r2.std() / math.sqrt(len(idx)))}, "
          f"twisted {fixed(mean_of(var8.r2(TW8), idx), 1)}, any law of D_H "
          f"{fixed(1 - mean_of(var8.remainder, idx), 1)} | mean profile: affine "
          f"{fixed(panels[v]['r2'], 1)}, twisted {fixed(panels[v]['r2_twisted'], 1)} | accuracy "
          + " ".join(accuracy_text(acc8[i]) for i in idx))
glue("geo_r2_id", panels["W_V = I (frozen)"]["r2"], display=False)   # as in the figure's titles
glue("geo_r2_tr", panels["trained W_V"]["r2"], display=False)
glue("geo_r2_tw", panels["trained W_V"]["r2_twisted"], display=False)

# %% [markdown]
# Both models reach perfect accuracy ({numref}`fig-ch5-profile`; numbers in the folded table).
# With **$W_{V}=I$** the inner product falls steadily: the affine law describes the mean profile
# roughly ($R^2$ about {glue:text}`geo_r2_id:.1f`). With a **trained $W_{V}$** the profile
# zig-zags after the first step, distance $2$ *more* similar than $1$, odd distances near zero:
# affine $R^2$ about {glue:text}`geo_r2_tr:.1f`, parity-twisted about {glue:text}`geo_r2_tw:.1f`.
#
# ```{important}
# **What the course's models show.** With $W_{V}=I$, roughly the paper's caption; with a trained
# $W_{V}$, the caption's own setting, not: the profile zig-zags with the parity, and over the pairs
# (what "approximated by (5.2)" would mean) most of the Gram matrix is no function of the distance,
# also at four times the budget ({ref}`geo-study`). Without the paper's settings we cannot say
# whether its models differ from ours or its caption means the mean profile only.
# ```

# %% [markdown]
# At $m=5,6,7$ (the paper's `hamming_inner_n7`, `no_wv_hamming_inner_n5` to `n7`; folded
# {numref}`fig-ch5-small-m`, from the stored study `lca/data/trained_geometry.json` of
# `bench/05_trained_geometry.py`, five seeds at $800$ and $3{,}200$ steps) the picture is the same
# at both budgets: identity-$W_{V}$ affine $R^2$ at least {glue:text}`geo_small_id_min:.2f`,
# trained-$W_{V}$ affine at most {glue:text}`geo_small_tr_max:.2f`, parity-twisted at least
# {glue:text}`geo_small_tw_min:.2f`.

# %% tags=["hide-input", "hide-output"] mystnb={"figure": {"name": "fig-ch5-small-m", "caption": "Mean Hamming profiles in units of $\\bar g(0)$ at $m=5,6,7$ from the stored study (five seeds, shaded: their range), for both variants and both budgets."}, "image": {"alt": "Three small panels of the normalised inner product against distance. The identity-W_V curves fall almost in a straight line; the trained-W_V curves zig-zag between even and odd distances; the two budgets nearly coincide."}}
study = embeddings.load_geometry_sweep()
STUDY_VARIANTS = list(study["variants"])                # "trained W_V", "W_V = I"


def runs_of(setting, steps, variant):
    """The stored members (one per seed) of one setting, budget and variant."""
    key = (setting, steps, variant)
    return [r for r in study["runs"] if (r["setting"], r["steps"], r["variant"]) == key]


def stat(setting, steps, variant, key):
    """Mean and standard error over the stored seeds of one summary number."""
    vals = torch.tensor([r[key] for r in runs_of(setting, steps, variant)], dtype=torch.float64)
    return float(vals.mean()), float(vals.std() / math.sqrt(len(vals)))


SMALL = {5: "m = 5, d = 16", 6: "m = 6, d = 32", 7: "m = 7, d = 32"}
profiles = {f"m = {m_s}, d = {study['settings'][name]['d']}":
            {(v, b): [r["profile"] for r in runs_of(name, b, v)]
             for v in STUDY_VARIANTS for b in study["budgets"]}
            for m_s, name in SMALL.items()}
fig = embeddings.plot_profile_grid(profiles)
plt.show()

# %% tags=["hide-input", "hide-output"]
print("R^2 of the mean profile, affine and parity-twisted (mean ± standard error over 5 seeds); "
      "lowest accuracy")
for m_s, name in SMALL.items():
    for v in STUDY_VARIANTS:
        for b in study["budgets"]:
            aff, tw = stat(name, b, v, "r2p_affine"), stat(name, b, v, "r2p_twisted")
            low = min(r["accuracy"] for r in runs_of(name, b, v))
            print(f"m = {m_s}, {v:12s} {b:5d} steps: affine {pm(*aff)}  twisted {pm(*tw)}  "
                  f"lowest accuracy {exact(low, 3)}")

# %% tags=["remove-input"]
# (glue: the numbers the prose quotes)
BUDGETS_ALL = study["budgets"]
aff_id_small = [stat(n, b, "W_V = I", "r2p_affine")[0] for n in SMALL.values() for b in BUDGETS_ALL]
aff_tr_small = [stat(n, b, "trained W_V", "r2p_affine")[0] for n in SMALL.values() for b in BUDGETS_ALL]
tw_tr_small = [stat(n, b, "trained W_V", "r2p_twisted")[0] for n in SMALL.values() for b in BUDGETS_ALL]
glue("geo_small_id_min", round(min(aff_id_small), 2), display=False)
glue("geo_small_tr_max", round(max(aff_tr_small), 2), display=False)
glue("geo_small_tw_min", round(min(tw_tr_small), 2), display=False)

# %% [markdown]
# ### Where the energy sits: Krawtchouk eigenvalues of the mean profile
#
# The folded table lists, for seed 0 of each kind, the $\bar\lambda_w$ of the mean profile (the
# mean Rayleigh quotients of $G$ on weight $w$, {prf:ref}`lem-geo-profile-projection`).

# %% tags=["hide-input", "hide-output"]
weight_rows = {}
print("Krawtchouk eigenvalues of the mean profile, per weight w (multiplicity C(8, w)): each lambda_w")
print("in units of the largest one, and its share C(m,w) lambda_w / trace of the trace")
print(f"{'':>9s} | " + " | ".join(f"{v:>16s}" for v in names))
print(f"{'w':>2s} {'C(m,w)':>6s} | " + " | ".join(f"{'lambda_w':>8s} {'share':>7s}" for _ in names))
for v in names:
    weight_rows[v] = embeddings.hamming_kernel_spectrum(prof8.mean[members[v][0]], M_FIG)[0]
for w in range(M_FIG + 1):
    cells = []
    for v in names:
        lam_v = weight_rows[v]
        trace_v = float((lam_v * torch.tensor([math.comb(M_FIG, u) for u in range(M_FIG + 1)])).sum())
        share_w = math.comb(M_FIG, w) * lam_v[w] / trace_v
        cells.append(f"{fixed(lam_v[w] / lam_v.max()):>8s} {fixed(share_w):>7s}")
    print(f"{w:2d} {math.comb(M_FIG, w):6d} | " + " | ".join(cells))
for v in names:
    ev = torch.linalg.eigvalsh(G8[members[v][0]])
    pr = embeddings.expand_spectrum(*embeddings.hamming_kernel_spectrum(prof8.mean[members[v][0]], M_FIG))
    print(f"{v}: |trace measured - trace predicted| / trace {bound((ev.sum() - pr.sum()) / ev.sum(), 1e-9)}")

# %% [markdown]
# With $W_{V}=I$ about nine tenths of the trace sits on $w=1$ (the affine part) and $w=2$. With a
# trained $W_{V}$ the largest belong to $w=m$, $m-1$ and $1$, then $2$ and $m-2$, nearly symmetric
# under $w\leftrightarrow m-w$; weights $m$ and $m-1$ add $(-1)^k$ and $(-1)^k(m-2k)$ to the
# profile ({prf:ref}`lem-geo-krawtchouk-identities`): the zig-zag the parity-twisted law fits.

# %% [markdown]
# (fig-paper-spectrum)=
#
# ### Spectra and eigen-gaps for $m\in\{7,8\}$, $d\in\{32,64\}$
#
# The paper speaks of "eigen gaps in the embedding matrix spectrum" (figures
# `spectrum_n{7,8}_d{32,64}_e{0,1,2,3}`, versions of unknown meaning). {numref}`fig-ch5-spectra`
# shows the eigenvalues of $W_{E}^\top W_{E}$; the gap at $m$ is $\lambda_m/\lambda_{m+1}$.

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch5-spectra", "caption": "Eigenvalues of $W_E^\\top W_E$, largest first and divided by the largest, at initialisation and after $800$ steps with either kind of $W_V$ (five seeds, shaded: their range); the dotted line falls between index $m$ and $m+1$."}, "image": {"alt": "Four panels of normalised eigenvalues on a log scale against their index, for m = 7 and 8 and d = 32 and 64. The initial spectra decay slowly; the identity-W_V spectra drop after index m; the trained-W_V spectra decay steadily without a break at m."}}
SPECTRA = {"m = 7, d = 32": 7, "m = 7, d = 64": 7, study["figure_setting"]: 8, "d = 64": 8}
spectra, marks, gap_rows = {}, {}, []
for name, m_s in SPECTRA.items():
    d_s = study["settings"][name]["d"]
    cfg = embeddings.geometry_config(study["settings"][name], 800)
    title = f"m = {m_s}, d = {d_s}"
    initial = [embeddings.embedding_spectrum(build_model(cfg.with_(seed=s)).W_E) for s in study["seeds"]]
    curves = {"initial (Gaussian)": torch.stack(initial)}
    for v in STUDY_VARIANTS:
        curves[v] = torch.tensor([r["spectrum"] for r in runs_of(name, 800, v)])
        for b in study["budgets"]:
            ev = torch.tensor([r["spectrum"] for r in runs_of(name, b, v)], dtype=torch.float64)
            gaps = ev[:, m_s - 1] / ev[:, m_s]
            best = (ev[:, : 2 * m_s + 1] / ev[:, 1 : 2 * m_s + 2]).max(1).values
            gap_rows.append((title, v, b, gaps, float((ev[:, :m_s].sum(1) / ev.sum(1)).mean()), best))
    spectra[title], marks[title] = curves, m_s
fig = embeddings.plot_spectra(spectra, marks)
plt.show()

# %% tags=["hide-input", "hide-output"]
print(f"{'setting':13s} {'embeddings':12s} {'steps':>5s} {'gap l_m/l_m+1: mean [min, max]':>31s} "
      f"{'top m share':>11s} {'largest l_i/l_i+1, i <= 2m+1':>29s}")
for title, v, b, gaps, share_m, best in gap_rows:
    print(f"{title:13s} {v:12s} {b:5d} {fixed(gaps.mean()):>14s} [{fixed(gaps.min())}, {fixed(gaps.max())}]"
          f"{'':>4s} {fixed(share_m):>11s} {fixed(best.mean()):>29s}")

# %% tags=["remove-input"]
# (glue: the numbers the prose quotes)
tr_gaps = [float(g.mean()) for _, v, _, g, _, _ in gap_rows if v == "trained W_V"]
tr_best = [float(x.max()) for _, v, _, _, _, x in gap_rows if v == "trained W_V"]
id7 = [float(g.min()) for t, v, _, g, _, _ in gap_rows if v == "W_V = I" and t.startswith("m = 7")]
id8 = [float(g.mean()) for t, v, _, g, _, _ in gap_rows if v == "W_V = I" and t.startswith("m = 8")]
glue("geo_gap_tr_max", round(max(tr_gaps), 2), display=False)
glue("geo_gap_tr_best", round(max(tr_best), 1), display=False)
glue("geo_gap_id7_min", round(min(id7), 1), display=False)
glue("geo_gap_id8_lo", round(min(id8), 1), display=False)
glue("geo_gap_id8_hi", round(max(id8), 1), display=False)

# %% [markdown]
# With $W_{V}=I$ a gap after index $m$ appears and grows with training: every seed's ratio at least
# {glue:text}`geo_gap_id7_min:.1f` at $m=7$; at $m=8$ seed means from
# {glue:text}`geo_gap_id8_lo:.1f` (the figure's setting) to {glue:text}`geo_gap_id8_hi:.1f`
# ($d=64$, $3{,}200$ steps). With a trained $W_{V}$ there is **no clear gap at $m$** (mean ratio at
# most {glue:text}`geo_gap_tr_max:.2f`; no ratio up to index $2m+1$ above
# {glue:text}`geo_gap_tr_best:.1f` in any seed): the paper's eigen-gaps are reproduced for
# $W_{V}=I$ only.

# %% [markdown]
# ## Why the trained-$W_{V}$ profile zig-zags
#
# With uniform attention the logits average columns of the *association matrix*
# $M[k,x]=W_{E}(k)^\top W_{V} W_{E}(x)$ ($M=G$ if $W_{V}=I$). The context law of $\mathcal{N}_1$
# has eigenvalues $\mu_w=1-2w/m$, and the target's mean logit advantage is $\frac1V\sum_{w\ge1}\binom mw\mu_w\nu_w$, $\nu_w$ the mean of
# $\chi_S^\top M\chi_S/V$ over $|S|=w$ ({prf:ref}`prop-geo-margin`). With $W_{V}=I$, $M=G$ is a Gram
# matrix, so $\nu_w\ge0$ and only $w<m/2$ helps; a trained $W_{V}$ can also use $\mu_w<0$, above
# all the parity, $\mu_m=-1$ (the hypercube is bipartite), and weights $m$, $m-1$ make the zig-zag.
# The radius-2 ball has $\mu_w=(K_1(w)+K_2(w))/(m+\binom m2)$, *positive* at $w=m$
# ({numref}`fig-ch5-weights`, seed 0 of each variant).

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch5-weights", "caption": "Per character weight $w$: the neighbourhood's eigenvalue $\\mu_w$ and the learned association's mean Rayleigh quotient $\\nu_w$ for both variants, each divided by its largest absolute value, on the sphere $\\mathcal{N}_1$ (top) and the radius-2 ball (bottom)."}, "image": {"alt": "Two rows of grouped bars for weights 0 to 8. On the sphere, mu falls linearly from 1 to -1 and the trained-W_V bars follow its sign, large at weights 1, 7 and 8, while the identity-W_V bars are non-negative and sit at small weights. On the ball, weight 8 is positive for all three series."}}
spec_ball = lca.TaskSpec(m=M_FIG, L=64, neighbourhood=lca.hamming_ball(2))
run_ball = lca.sweep(base8.with_(task=spec_ball), seeds=(0,), variants=VARIANTS, progress=False)
first = [members[v][0] for v in names]                       # seed-0 members of run8
nu_sphere = embeddings.weight_rayleigh(embeddings.association_matrix(run8.model))[first]
nu_ball = embeddings.weight_rayleigh(embeddings.association_matrix(run_ball.model))
NU_LABELS = [r"$\nu_w$, trained $W_V$", r"$\nu_w$, $W_V = I$"]
rows = {"radius-1 sphere N_1": {"mu": embeddings.context_spectrum(spec8),
                                "nu": dict(zip(NU_LABELS, nu_sphere))},
        "radius-2 ball": {"mu": embeddings.context_spectrum(spec_ball),
                          "nu": dict(zip(NU_LABELS, nu_ball))}}
fig = embeddings.plot_weight_spectrum({("sphere $\\mathcal{N}_1$" if n.startswith("radius-1")
                                        else n): r for n, r in rows.items()}, M_FIG)
plt.show()

# %% tags=["hide-input", "hide-output"]
prof_ball = embeddings.gram_profile(run_ball.model)
for row_name, row, prof_rows in [("radius-1 sphere N_1", rows["radius-1 sphere N_1"], []),
                                 ("radius-2 ball", rows["radius-2 ball"], prof_ball.mean)]:
    print(f"{row_name} (mu_w exact; nu_w in units of its largest |value|)")
    print(f"  {'w':>2s} {'mu_w':>7s} " + " ".join(f"{'nu_w, ' + v:>24s}" for v in names))
    nus = list(row["nu"].values())
    for w in range(M_FIG + 1):
        print(f"  {w:2d} {str(Fraction(float(row['mu'][w])).limit_denominator(1000)):>7s} "
              + " ".join(f"{fixed(nu[w] / nu.abs().max()):>24s}" for nu in nus))
    mult = torch.tensor([math.comb(M_FIG, w) for w in range(M_FIG + 1)], dtype=torch.float64)
    neg = row["mu"] < -1e-9
    for v, nu in zip(names, nus):
        terms = embeddings.margin_by_weight(row["mu"], nu)     # C(m,w) mu_w nu_w / V, w >= 1
        mass = (mult * nu.abs())[1:]
        helpful = float(mass[(row["mu"] * nu)[1:] > 0].sum() / mass.sum())
        on_neg = float(mass[neg[1:]].sum() / mass.sum())
        print(f"  {v:18s}: weight of C(m,w)|nu_w| (w >= 1) where sign(nu_w) = sign(mu_w): "
              f"{fixed(helpful)}; on weights with mu_w < 0: {fixed(on_neg)}; mean advantage "
              f"{sig(terms.sum(), 2)}")
    for v, p in zip(names, prof_rows):              # (the sphere's profiles: the figure's table)
        print(f"  profile / g(0), {v:18s}:", " ".join(f"{fixed(x / p[0]):>5s}" for x in p))

# %% [markdown]
# On $\mathcal{N}_1$ the trained $W_{V}$ gives $\nu_w$ the sign of $\mu_w$ at every weight, with
# about half its mass where $\mu_w<0$; the identity keeps $\nu_w\ge0$ (folded table). On the ball
# weights $1$ and $m$ get nearly equal $\nu$ and the profile becomes a staircase. That $\nu_w$
# follows $\mu_w$ is a measurement, our explanation, not the paper's.

# %% [markdown]
# (geo-study)=
#
# ## Why the trained-$W_{V}$ embeddings follow no law of the distance
#
# Why is so little of the trained-$W_{V}$ Gram matrix a function of the distance? The stored study
# changes one thing at a time (five seeds, $800$ and $3{,}200$ steps, the figure's setting also
# $200$) and splits each Gram matrix by {prf:ref}`cor-geo-variance` ({numref}`fig-ch5-study`).

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch5-study", "caption": "$R^2$ over all pairs of the trained Gram matrix, one setting per row ($m=8$, one change at a time), for any function of the distance (black squares, the ceiling), the parity-twisted law (green diamonds) and the affine law (vermillion circles); filled markers: the longest budget, open: shorter ones, bars: the range over five seeds."}, "image": {"alt": "Two panels, trained W_V and W_V = I, with nine rows of markers. For the trained W_V all markers lie below one half except on the radius-2 ball; for W_V = I the black squares lie mostly between one half and one, and far lower for the untied unembedding."}}
FACTORS = [study["figure_setting"], "d = 16", "d = 64", "lr = 0.003", "lr = 0.03", "noise 0.5",
           "L = 16", "untied unembedding", "radius-2 ball"]
BUDGETS = {name: sorted({r["steps"] for r in study["runs"] if r["setting"] == name})
           for name in FACTORS}
rows_study = {v: {name: {b: {"hamming": [1 - r["remainder"] for r in runs_of(name, b, v)],
                             "twisted": [r["r2_twisted"] for r in runs_of(name, b, v)],
                             "affine": [r["r2_affine"] for r in runs_of(name, b, v)]}
                         for b in BUDGETS[name]} for name in FACTORS} for v in STUDY_VARIANTS}
fig = embeddings.plot_geometry_study(rows_study)
plt.show()

# %% tags=["hide-input", "hide-output"]
print("mean ± standard error over 5 seeds. R^2 over the pairs: 'any law' = 1 - non-Hamming remainder,")
print("then the parity-twisted and the affine law; 'profile' = the twisted law's R^2 on the mean profile;")
print("'assoc' = non-Hamming remainder of the association matrix W_E W_V W_U^T; 'indef' = its indefinite share")
for name in FACTORS:
    for v in STUDY_VARIANTS:
        for b in BUDGETS[name]:
            rem, rem_se = stat(name, b, v, "remainder")
            cells = [pm(1 - rem, rem_se)] + [pm(*stat(name, b, v, key))
                                             for key in ("r2_twisted", "r2_affine", "r2p_twisted")]
            low = min(r["accuracy"] for r in runs_of(name, b, v))
            print(f"{name:24s} {v:12s} {b:5d}: any law {cells[0]}, twisted {cells[1]}, affine {cells[2]}, "
                  f"profile {cells[3]}, assoc {fixed(stat(name, b, v, 'assoc_remainder')[0])}, indef "
                  f"{fixed(stat(name, b, v, 'indefinite')[0])}, lowest accuracy {exact(low, 3)}")


# %% tags=["remove-input"]
# (glue: the numbers the prose quotes)
def ham(name, b, v):
    return 1 - stat(name, b, v, "remainder")[0]


FIG = study["figure_setting"]
N1 = [f for f in FACTORS if f != "radius-2 ball"]
for key, value in {
    "geo_st_tr_200": ham(FIG, 200, "trained W_V"), "geo_st_tr_800": ham(FIG, 800, "trained W_V"),
    "geo_st_tr_3200": ham(FIG, 3200, "trained W_V"), "geo_st_id_200": ham(FIG, 200, "W_V = I"),
    "geo_st_id_800": ham(FIG, 800, "W_V = I"), "geo_st_id_3200": ham(FIG, 3200, "W_V = I"),
    "geo_st_tr_lo": min(ham(f, b, "trained W_V") for f in N1 for b in BUDGETS[f]),
    "geo_st_tr_hi": max(ham(f, b, "trained W_V") for f in N1 for b in BUDGETS[f]),
    "geo_st_twp_lo": min(stat(f, b, "trained W_V", "r2p_twisted")[0] for f in N1 for b in BUDGETS[f]),
    "geo_st_affp_hi": max(stat(f, b, "trained W_V", "r2p_affine")[0] for f in N1 for b in BUDGETS[f]),
    "geo_st_assoc": stat(FIG, 800, "trained W_V", "assoc_remainder")[0],
    "geo_st_L16_id": ham("L = 16", 3200, "W_V = I"),
    "geo_st_L16_aff": stat("L = 16", 3200, "W_V = I", "r2p_affine")[0],
    "geo_st_untied_id": ham("untied unembedding", 800, "W_V = I"),
    "geo_st_untied_id_long": ham("untied unembedding", 3200, "W_V = I"),
    "geo_st_ball_tr": ham("radius-2 ball", 3200, "trained W_V"),
    "geo_st_ball_id": ham("radius-2 ball", 3200, "W_V = I"),
    "geo_st_ball_twp": stat("radius-2 ball", 3200, "trained W_V", "r2p_twisted")[0],
    "geo_st_indef_n1": stat(FIG, 800, "trained W_V", "indefinite")[0],
    "geo_st_indef_ball": stat("radius-2 ball", 800, "trained W_V", "indefinite")[0],
    "geo_st_indef_untied": stat("untied unembedding", 800, "W_V = I", "indefinite")[0],
}.items():
    glue(key, round(value, 3 if key in ("geo_st_L16_aff", "geo_st_ball_twp") else 2), display=False)
identity = [r for r in study["runs"] if r["variant"] == "W_V = I"]
fast = [r for r in identity if study["settings"][r["setting"]].get("lr", 0.01) == 0.03]
glue("geo_st_spikes_fast", sum(r["accuracy"] < 0.5 for r in fast), display=False)
glue("geo_st_members_fast", len(fast), display=False)
glue("geo_st_spikes_rest", sum(r["accuracy"] < 0.5 for r in identity if r not in fast), display=False)
glue("geo_st_members_rest", len(identity) - len(fast), display=False)

# %% [markdown]
# What the study shows (every number in the folded table, details in the dropdown):
#
# - **Not the budget, $d$, the learning rate, the context length or noise.** Any law of the
#   distance explains {glue:text}`geo_st_tr_200:.2f`, {glue:text}`geo_st_tr_800:.2f` and
#   {glue:text}`geo_st_tr_3200:.2f` of the trained-$W_{V}$ Gram matrix at $200$, $800$ and
#   $3{,}200$ steps (perfect accuracy), between {glue:text}`geo_st_tr_lo:.2f` and
#   {glue:text}`geo_st_tr_hi:.2f` over all $\mathcal{N}_1$ settings; with $W_{V}=I$ it grows
#   ({glue:text}`geo_st_id_200:.2f`, {glue:text}`geo_st_id_800:.2f`, {glue:text}`geo_st_id_3200:.2f`).
# - **Not the basis**: the association matrix $M=W_{E}W_{V}W_{E}^\top$ is as far from a law
#   (non-Hamming part {glue:text}`geo_st_assoc:.2f`). **The tie matters for $W_{V}=I$**: untied, it
#   loses the geometry ({glue:text}`geo_st_untied_id_long:.2f` at $3{,}200$ steps).
# - **The neighbourhood does it**: only the non-bipartite radius-2 ball brings a trained $W_{V}$
#   close to a law ({glue:text}`geo_st_ball_tr:.2f`). On $\mathcal{N}_1$ the parity-twisted law fits
#   the mean profile ($R^2$ at least {glue:text}`geo_st_twp_lo:.2f`, affine at most
#   {glue:text}`geo_st_affp_hi:.2f`), not the pairs.
#
# ````{dropdown} The study in detail
# - **Budget.** The figure's $800$ steps show the identity-$W_{V}$ models part of the way to the
#   law, and the trained-$W_{V}$ models where they stay; the affine law fits the identity-$W_{V}$
#   mean profile better the longer we train.
# - **Context length and noise.** Noise raises the trained-$W_{V}$ share most, but it stays below
#   one half. The identity-$W_{V}$ models come closest to the law with short contexts: at $L=16$
#   and $3{,}200$ steps any law explains {glue:text}`geo_st_L16_id:.2f` of their Gram matrix and
#   the affine law {glue:text}`geo_st_L16_aff:.3f` of its mean profile. With $W_{V}=I$, Adam runs
#   into loss spikes after the task is solved, mostly at learning rate 0.03:
#   {glue:text}`geo_st_spikes_fast` of the {glue:text}`geo_st_members_fast` identity-$W_{V}$
#   members there, and {glue:text}`geo_st_spikes_rest` of the other
#   {glue:text}`geo_st_members_rest`, end in one, with an accuracy below one half; their geometry
#   is reported as it is.
# - **Basis.** With a trained $W_{V}$, replacing $W_{E}$ by $W_{E}A$, $W_{V}$ by
#   $A^{-1}W_{V}A^{-\top}$ and $W_{KQ}$ by $A^{-1}W_{KQ}A^{-\top}$ ($A$ invertible) changes nothing
#   the model computes but changes the Gram matrix, so the Gram matrix of a trained-$W_{V}$ model is
#   partly arbitrary. Its association matrix is not, and it is as far from a law of the distance:
#   the model computes a function that does not respect the symmetries of the hypercube, not a
#   symmetric function in a skewed basis.
# - **Tie.** With a separate unembedding $W_U$, the change $W_{E}\to W_{E}A$, $W_U\to W_UA^{-\top}$
#   is free even with $W_{V}=I$; any law explains {glue:text}`geo_st_untied_id:.2f` of the
#   untied identity-$W_{V}$ Gram matrix at $800$ steps. The identity-$W_{V}$ embeddings follow the
#   law because the tie makes their Gram matrix the association matrix.
# - **Neighbourhood.** On the ball, with $W_{V}=I$ any law explains
#   {glue:text}`geo_st_ball_id:.2f`, and the parity-twisted law explains
#   {glue:text}`geo_st_ball_twp:.3f` of the trained-$W_{V}$ mean profile. On $\mathcal{N}_1$ the
#   trained association matrix is strongly indefinite (a share {glue:text}`geo_st_indef_n1:.2f`
#   of the absolute eigenvalue mass of its symmetric part is on negative eigenvalues), on the ball
#   much less ({glue:text}`geo_st_indef_ball:.2f`): on the bipartite $\mathcal{N}_1$ the useful
#   weights include those with $\mu_w<0$, which only a sign-flipping $W_{V}$ can use. The untied
#   identity-$W_{V}$ models, whose association matrix $W_UW_{E}^\top$ need not be positive either,
#   are as indefinite ({glue:text}`geo_st_indef_untied:.2f`) and as far from a law of the
#   distance.
# - **Parity terms.** The parity-twisted law does not fit the pairs because most of their
#   variance is no function of the distance at all.
# - **Open.** We have not found *why* the trained-$W_{V}$ function keeps so large a non-Hamming
#   part on $\mathcal{N}_1$ and not on the ball: the indefinite association matrix is the measured
#   difference, not a derivation.
# ````

# %% [markdown]
# ## Where it breaks
#
# The geometry is learned because the task needs it and $d$ is too small to avoid it. Remove either
# reason and it disappears (folded {numref}`fig-ch5-breaks`): (1) $m=6$, $d=128\ge V=64$, $W_{E}$ frozen
# at its Gaussian initialisation: nearly orthogonal, so $W_{V}$ stores every association alone
# ({doc}`04_value_matrix`; $W_{V}=I$ on them too, for its accuracy only); (2) $m=8$, $d=32$, each
# target's neighbourhood a random set of $m$ tokens (a `lca.custom` mask).

# %% tags=["hide-input", "hide-output"] mystnb={"figure": {"name": "fig-ch5-breaks", "caption": "The inner-product profile where no Hamming structure is needed ($d=128\\ge V=64$, frozen random embeddings, trained $W_V$) or available (a random neighbourhood of $m$ tokens, $m=8$, $d=32$, both variants), with the affine fit."}, "image": {"alt": "Three panels of inner product against Hamming distance. In each, the point at distance 0 is far above the others, which lie on one flat line at every distance from 1 on."}}
spec_over = lca.TaskSpec(m=6, L=64)
run_over = lca.sweep(lca.TrainConfig(task=spec_over, d=128, steps=400, batch_size=256, lr=0.01,
                                     eval_every=0, train_E=False, device=device),
                     seeds=(0, 1), variants=VARIANTS, progress=False)
V8 = 2 ** M_FIG
gen = torch.Generator().manual_seed(2024)
rand_mask = torch.zeros(V8, V8, dtype=torch.bool)
for y in range(V8):
    pick = torch.randperm(V8 - 1, generator=gen)[:M_FIG]
    rand_mask[y, pick + (pick >= y).long()] = True          # m random tokens other than y
spec_rand = lca.TaskSpec(m=M_FIG, L=64, neighbourhood=lca.custom(rand_mask, "random"))
run_rand = lca.sweep(base8.with_(task=spec_rand), seeds=(0,), variants=VARIANTS, progress=False)
breaks = {"d = 128 > V, frozen W_E": run_over,
          "random nbhd, trained W_V": run_rand,
          "random nbhd, W_V = I": run_rand}
pick = {"d = 128 > V, frozen W_E": [0, 1],                   # trained W_V, seeds 0, 1
        "random nbhd, trained W_V": [0], "random nbhd, W_V = I": [1]}
break_panels, break_rows = {}, []
for name, res in breaks.items():
    idx = pick[name]
    prof = embeddings.gram_profile(res.model)
    fit = embeddings.affine_fit(res.model)
    _, share = embeddings.weight_spectrum(res.model)
    break_panels[name.replace("W_E", "$W_E$")] = {
        "mean": prof.mean[idx], "std": prof.std[idx],
        "b0": sum(fit.b0[i] for i in idx) / len(idx), "b1": sum(fit.b1[i] for i in idx) / len(idx),
        "r2": sum(fit.r2[i] for i in idx) / len(idx)}
    acc = [res.history["accuracy"][-1][i] for i in idx]
    m_b = prof.count.numel() - 1
    binom_share = (math.comb(m_b, 1)) / 2 ** m_b
    break_rows.append((name, prof.mean[idx].mean(0), sum(fit.r2[i] for i in idx) / len(idx),
                       sum(fit.b1[i] for i in idx) / len(idx), float(share[idx, 1].mean()),
                       binom_share, sum(acc) / len(acc)))
fig = embeddings.plot_hamming_inner(break_panels)
plt.show()

# %% tags=["hide-input", "hide-output"]
for name, mean, r2, _b1, share1, base_share, acc in break_rows:
    print(f"{name}")
    print("  mean inner product by distance, in units of g(0):",
          " ".join(f"{fixed(x / mean[0], 1):>4s}" for x in mean))
    print(f"  affine fit: R^2 (pairs) = {fixed(r2)}; share of trace on the m bit "
          f"directions = {fixed(share1)} (isotropic: {exact(base_share)}); "
          f"accuracy {accuracy_text(acc)}")
acc_over_id = run_over.history["accuracy"][-1][2:]
print("W_V = I on the same frozen random embeddings: accuracy "
      + " ".join(accuracy_text(a) for a in acc_over_id))
print("\nfor comparison, the figure's models (m = 8, N_1):")
_, share8 = embeddings.weight_spectrum(run8.model)
for v in names:
    idx = members[v]
    print(f"  {v:18s}: R^2 (pairs) = {fixed(sum(fit8.r2[i] for i in idx) / 3)}, share on the bit "
          f"directions = {fixed(share8[idx, 1].mean(), 1)}")

# %% [markdown]
# The trained-$W_{V}$ models solve both tasks (so does $W_{V}=I$ on the random neighbourhood), yet
# the profile is flat for $k\ge1$ and the bit directions hold the isotropic share $m/V$ of the
# trace (folded table; $W_{V}=I$ on frozen random embeddings fails). The Hamming geometry comes
# from *compressing* ($d<V$) a task whose structure *is* that geometry.

# %% [markdown]
# ## Explore
#
# The Krawtchouk spectrum of $g(k)=b_0-b_1k+b_2k^2+c\,(-1)^k$. The affine law ($b_2=c=0$) lights
# only $w=0,1$ (only $w=1$ at $b_0=mb_1/2$: try $b_0=4$, $m=8$); $b_2$ switches on $w=2$, $c$
# switches on $w=m$. Vermillion bars are negative: no embeddings have that Gram matrix.

# %% tags=["hide-input"]
def draw_kernel(m=8, b0=6.0, b1=1.0, b2=0.0, c=0.0):
    prof = [b0 - b1 * k + b2 * k * k + c * (-1) ** k for k in range(m + 1)]
    lam_e, mult_e = embeddings.hamming_kernel_spectrum(prof, m)
    psd = "a Gram matrix" if float(lam_e.min()) >= -1e-9 * float(lam_e.abs().max()) else \
        "NOT a Gram matrix"
    return embeddings.plot_hamming_kernel(prof, lam_e, mult_e,
                                     title=f"m = {m}: g(k) = {b0:g} - {b1:g} k + {b2:g} k^2 + "
                                           f"{c:g} (-1)^k  ({psd})")


explorer(draw_kernel, title="Krawtchouk spectrum of a Hamming profile",
         m=widgets.IntSlider(value=8, min=2, max=12, description="m"),
         b0=widgets.FloatSlider(value=6.0, min=-5.0, max=10.0, step=0.25, description="b0"),
         b1=widgets.FloatSlider(value=1.0, min=-2.0, max=3.0, step=0.05, description="b1"),
         b2=widgets.FloatSlider(value=0.0, min=-0.5, max=0.5, step=0.01, description="b2"),
         c=widgets.FloatSlider(value=0.0, min=-3.0, max=3.0, step=0.05, description="c"))

# %% [markdown]
# ## Exercises
#
# ```{exercise} The Hamming profile
# :label: ex-geo-profile
#
# Write `gram_profile_mean(W_E)`: for embeddings `W_E [V, d]` ($V=2^m$, row $i$ = token $i$), a
# float64 tensor of length $m+1$ whose entry $k$ is the mean of $W_{E}(i)^\top W_{E}(j)$ over all
# ordered pairs at Hamming distance $k$, $(i,i)$ included (use `lca.LatentSpace(m).distances()`).
# `check_gram_profile` tests $m=1,\dots,5$ and two special cases. Replace the `raise` and run.
# ```

# %% tags=["exercise-stub"]
def gram_profile_mean(W_E):
    raise NotImplementedError  # your code here


check_gram_profile(gram_profile_mean)

# %% [markdown]
# ```{solution-start} ex-geo-profile
# :class: dropdown
# ```
#
# Build the Gram matrix $G=W_{E}W_{E}^\top$ ($V\times V$) and the distance matrix, then average $G$
# over each level set $\{(i,j):D_{\mathrm{H}}(i,j)=k\}$; $m$ is read from $V=2^m$. Common
# mistakes: `W_E.T @ W_E` (a $d\times d$ matrix, the wrong object), summing instead of averaging
# (the number of pairs, $V\binom mk$, depends on $k$), and dropping the diagonal at $k=0$. The
# reference code is in the cell below, checked by the same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def gram_profile_mean_reference(W_E):
    W_E = W_E.double()
    m = W_E.shape[0].bit_length() - 1
    G = W_E @ W_E.T
    D = lca.LatentSpace(m).distances()
    return torch.stack([G[D == k].mean() for k in range(m + 1)])


check_gram_profile(gram_profile_mean_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Krawtchouk numbers from their generating function
# :label: ex-geo-krawtchouk
#
# With $\sum_{k=0}^mK_k(w)\,t^k=(1-t)^w(1+t)^{m-w}$ ({doc}`appendix <proofs/geometry>`), write
# `krawtchouk_table(m)`: an integer tensor `[m+1, m+1]` with entry `[k, w]` $=K_k(w)$, by
# multiplying coefficient lists (no binomials); `check_krawtchouk_table` tests $m=1,\dots,6$, $9$.
# Why is row $1$ equal to $m-2w$ and column $0$ to $\binom mk$?
# ```

# %% tags=["exercise-stub"]
def krawtchouk_table(m):
    raise NotImplementedError  # your code here


check_krawtchouk_table(krawtchouk_table)

# %% [markdown]
# ```{solution-start} ex-geo-krawtchouk
# :class: dropdown
# ```
#
# Multiplying a polynomial $\sum_jc_jt^j$ by $1+st$ ($s=\pm1$) gives the coefficients
# $c_j+s\,c_{j-1}$; start from the list $[1]$ and multiply by $1-t$ $w$ times and by $1+t$
# $m-w$ times. The list is column $w$ of the table (row $k$ = the coefficient of $t^k$). Column
# $w=0$ holds the coefficients of $(1+t)^m$, which are $\binom mk$: for $w=0$ the character is
# $\mathbf{1}$ and each of the $\binom mk$ vectors $u$ contributes $+1$. Row $k=1$ is the
# coefficient of $t$ in $(1-t)^w(1+t)^{m-w}$, which is $(m-w)-w$. Filling row $w$ with the
# coefficients instead of column $w$ gives the transpose, a classic slip: $K_w(k)$ differs from
# $K_k(w)$ by the factor $\binom mw/\binom mk$. The reference code is in the cell below, checked by
# the same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def krawtchouk_table_reference(m):
    table = torch.zeros(m + 1, m + 1, dtype=torch.long)
    for w in range(m + 1):
        coef = [1]
        for s in [-1] * w + [1] * (m - w):              # multiply by (1 + s t)
            coef = [a + s * b for a, b in zip(coef + [0], [0] + coef)]
        table[:, w] = torch.tensor(coef)
    return table


check_krawtchouk_table(krawtchouk_table_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} The spectrum without the matrix
# :label: ex-geo-spectrum
#
# Write `hamming_spectrum(g, m)` returning the eigenvalues $\lambda_0,\dots,\lambda_m$ of the
# Hamming kernel of `g` (float64, length $m+1$) by {prf:ref}`thm-geo-spectrum` and a Krawtchouk
# table (yours or `embeddings.krawtchouk_matrix(m)`), with no $V\times V$ matrix;
# `check_hamming_spectrum` tests $m=1,\dots,6$.
# ```

# %% tags=["exercise-stub"]
def hamming_spectrum(g, m):
    raise NotImplementedError  # your code here


check_hamming_spectrum(hamming_spectrum)

# %% [markdown]
# ```{solution-start} ex-geo-spectrum
# :class: dropdown
# ```
#
# With the table $K[k,w]=K_k(w)$, the theorem's $\lambda_w=\sum_kg(k)K_k(w)$ is the vector-matrix
# product $g^\top K$. Returning $Kg$ (the transposed table) uses $K_w(k)$ instead and is wrong
# except when $m=1$: the table is not symmetric for $m\ge2$, only $\binom mwK_k(w)=\binom mkK_w(k)$
# holds. Returning the $V$ eigenvalues of `torch.linalg.eigvalsh` is a different object (a list
# of length $V$ with repetitions, not one value per weight). The reference code is in the cell
# below, checked by the same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def hamming_spectrum_reference(g, m):
    return g.double() @ krawtchouk_table_reference(m).double()


check_hamming_spectrum(hamming_spectrum_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Embeddings for the affine law
# :label: ex-geo-embedding
#
# Write `affine_embedding(m, b0, b1)` returning `E [V, r]`, $r\le m+1$, with Gram matrix
# $b_0-b_1D_{\mathrm{H}}$ ($b_1\ge0$, $b_0\ge mb_1/2$). Hint: the $\pm1$ code has Gram matrix
# $m-2D_{\mathrm{H}}$; add one constant coordinate. `check_affine_embedding` tests $m=1,\dots,6$
# (any rotation is right).
# ```

# %% tags=["exercise-stub"]
def affine_embedding(m, b0, b1):
    raise NotImplementedError  # your code here


check_affine_embedding(affine_embedding)

# %% [markdown]
# ```{solution-start} ex-geo-embedding
# :class: dropdown
# ```
#
# Row $z$: $\big(\sqrt{b_1/2}\,(2z-\mathbf{1}),\ \sqrt{b_0-mb_1/2}\big)$. Two $\pm1$ vectors agree
# in $m-D_{\mathrm{H}}$ coordinates and disagree in $D_{\mathrm{H}}$, so the first block
# contributes $\frac{b_1}2(m-2D_{\mathrm{H}})$ and the constant coordinate $b_0-\frac{mb_1}2$;
# they add up to $b_0-b_1D_{\mathrm{H}}$. Forgetting the constant coordinate is right only in the
# centred case, and using $\sqrt{b_1}$ instead of $\sqrt{b_1/2}$ doubles the slope. The reference
# code is in the cell below, checked by the same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def affine_embedding_reference(m, b0, b1):
    Z = lca.LatentSpace(m).latents.double()
    const = torch.full((2 ** m, 1), math.sqrt(b0 - m * b1 / 2), dtype=torch.float64)
    return torch.cat([math.sqrt(b1 / 2) * (2 * Z - 1), const], dim=1)


check_affine_embedding(affine_embedding_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Polynomial profiles have low rank
# :label: ex-geo-polynomial
#
# Prove: if the profile $g$ is a polynomial in $k$ of degree at most $p<m$, then $\lambda_w=0$ for
# $w>p$, so $\operatorname{rank}G_g\le\sum_{w=0}^p\binom mw$, and $\lambda_p\ne0$ at degree
# exactly $p$. For $g(k)=b_0-b_1k+b_2k^2$ compute $\lambda_0,\lambda_1,\lambda_2$; when is the rank
# exactly $1+m+\binom m2$, and when is $G_g$ a Gram matrix? (Hint: with
# $F_w(t)=(1-t)^w(1+t)^{m-w}$, $\sum_kk^jK_k(w)=\big((t\frac{d}{dt})^jF_w\big)(1)$.)
# ```
#
# ```{solution} ex-geo-polynomial
# :class: dropdown
#
# Applying $t\frac d{dt}$ to $\sum_kK_k(w)t^k=F_w(t)$ multiplies the coefficient of $t^k$ by $k$,
# which gives the hint. Expanded, $(t\frac d{dt})^j=\sum_{i=1}^jS(j,i)\,t^i\frac{d^i}{dt^i}$ with
# $S(j,j)=1$ (for $j=0$ it is the identity). $F_w$ has a zero of order $w$ at $t=1$, so
# $F_w^{(i)}(1)=0$ for $i<w$, while $F_w^{(w)}(1)=(-1)^ww!\,2^{m-w}$ (every factor $1-t$ must be
# differentiated). Hence $\sum_kk^jK_k(w)=0$ whenever $j<w$, and for $j=w$ it equals
# $(-1)^ww!\,2^{m-w}$. For $g(k)=\sum_{j\le p}c_jk^j$ this gives $\lambda_w=\sum_jc_j\sum_kk^jK_k(w)=0$
# for $w>p$ and $\lambda_p=c_p(-1)^pp!\,2^{m-p}\ne0$ when $c_p\ne0$. By
# {prf:ref}`thm-geo-spectrum`, $\operatorname{rank}G_g=\sum_{w:\lambda_w\ne0}\binom mw\le
# \sum_{w\le p}\binom mw$, and a polynomial of degree $p+1$ already breaks this bound.
#
# For the quadratic, use $F_w(1)$, $F_w'(1)$ and $\sum_kk^2K_k(w)=F_w'(1)+F_w''(1)$: for $w=0$
# they are $2^m$, $m2^{m-1}$ and $m(m+1)2^{m-2}$; for $w=1$, $0$, $-2^{m-1}$ and $-m2^{m-1}$; for
# $w=2$, $0$, $0$ and $2^{m-1}$. So
#
# $$
# \begin{aligned}
# \lambda_0&=2^m\big(b_0-\tfrac m2b_1+\tfrac{m(m+1)}4b_2\big),\\
# \lambda_1&=2^{m-1}(b_1-mb_2),\qquad \lambda_2=2^{m-1}b_2,
# \end{aligned}
# $$
#
# and $\lambda_w=0$ for $w\ge3$. The rank is $1+m+\binom m2$ exactly when $b_2\ne0$,
# $b_1\ne mb_2$ and $\lambda_0\ne0$, and $G_g$ is a Gram matrix exactly when $b_2\ge0$,
# $b_1\ge mb_2$ and $b_0\ge\frac m2b_1-\frac{m(m+1)}4b_2$. With $b_2=0$ this is
# {prf:ref}`thm-geo-affine` again. (`tests/test_embeddings.py` checks all of this against
# `torch.linalg.eigvalsh`, and that degree $p+1$ exceeds the bound.)
# ```

# %% [markdown]
# ## Summary
#
# Walsh characters diagonalise every Hamming kernel; the affine law uses only the constant and the
# $m$ bit directions (rank $m+1$, or $m$ centred). Trained embeddings with $d<V$ approach it when
# $W_{V}=I$ and the unembedding is tied; with a trained $W_{V}$ on $\mathcal{N}_1$ (Fig. 3b) they do
# not (a parity zig-zag, mostly no law of the distance, no eigen-gap at $m$). The $m+1$ directions
# are what rank-one editing {cite}`meng2022rome`, low-rank adapters {cite}`hu2022lora` and rank
# reduction {cite}`sharma2023laser` would rely on, as the paper suggests; here only for
# $W_{V}=I$, and nothing tests an editing method. Overlapping latent concepts give overlapping
# embeddings (or associations), so a context near a wrong answer pulls the logits toward it; the
# next chapter adds attention, which decides which context tokens are gathered at all.
