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
# The previous chapter stored the task's associations in the value matrix. This one asks what the
# *embeddings* learn when there are fewer dimensions than tokens ($d<V$), so that the tokens
# cannot all be given orthogonal directions. The paper {cite}`jiang2024elephants` reports that the
# trained embeddings then reflect the latent space: the inner product of two token embeddings
# falls with the Hamming distance between their latent vectors (its Fig. 3b and equation (5.2)),
# and the embedding matrix acquires a low-rank structure, which the authors offer as support for
# low-rank editing and fine-tuning methods. We make the geometric half of that statement exact:
# any Gram matrix that depends only on Hamming distance has an explicit spectrum, built from
# *Krawtchouk numbers*, and an affine dependence has rank at most $m+1$. Then we measure what
# training actually produces, including a zig-zag in the profile that the affine law does not
# predict and that the same spectral tools explain.
#
# **In this chapter you will**
#
# - prove that a Gram matrix $b_0-b_1D_{\mathrm{H}}$ has rank at most $m+1$, and exactly which rank;
# - diagonalise every matrix of the form $g(D_{\mathrm{H}})$ with Walsh characters and Krawtchouk numbers;
# - measure the inner-product-vs-distance profile, its affine fit and the spectrum of trained
#   embeddings, with $W_{V}$ trained and with $W_{V}$ fixed to the identity (the paper's Fig. 3b);
# - explain the even/odd zig-zag of the trained-$W_{V}$ profile by the bipartite structure of $\mathcal{N}_1$;
# - see the structure disappear when $d\ge V$ or when the neighbourhood ignores Hamming distance.

# %% tags=["hide-input"]
import math
import time
from fractions import Fraction

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

import lca
from lca import embeddings, glue
from lca.embeddings import check_affine_embedding, check_gram_profile, check_hamming_spectrum, check_krawtchouk
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
# $$
# \bar g(k)=\operatorname{mean}\{G_{ij}:D_{\mathrm{H}}(i,j)=k\},\qquad
# \sigma(k)=\operatorname{sd}\{G_{ij}:D_{\mathrm{H}}(i,j)=k\},
# $$
#
# over the $V\binom mk$ ordered pairs at distance $k$ ($k=0$: the squared norms). The *spread*
# $\sigma(k)$ is zero exactly when $G$ depends on the pair only through its Hamming distance.
# ```
#
# ```{prf:definition} Hamming kernel and the affine law
# :label: def-geo-kernel
#
# For a *profile* $g:\{0,\dots,m\}\to\mathbb{R}$, the *Hamming kernel* $G_g$ is the $V\times V$ matrix with
# entries $g(D_{\mathrm{H}}(i,j))$. The *affine law* is the Hamming kernel of $g(k)=b_0-b_1k$:
#
# $$
# W_{E}(i)^\top W_{E}(j)=b_0-b_1\,D_{\mathrm{H}}(i,j),\qquad b_1>0 .
# $$
# ```
#
# In this course we take the affine law as our reading of the paper's equation (5.2). The paper's
# exact formula, and whether its low-rank statement says rank $m+1$, $m+2$ or speaks of eigen-gaps,
# are not available to us, so the statements below are the course's own, with full proofs in the
# appendix {doc}`proofs/geometry`.
#
# ```{prf:definition} Walsh characters and Krawtchouk numbers
# :label: def-geo-krawtchouk
#
# For $s\in\mathcal{Z}$ the *Walsh character* $\chi_s\in\{\pm1\}^V$ has entries
# $\chi_s(z)=(-1)^{s\cdot z}$, with $s\cdot z=\sum_as_az_a$; its *weight* is the number of ones
# $|s|$. The *Krawtchouk numbers* are
#
# $$
# K_k(w)=\sum_j(-1)^j\binom wj\binom{m-w}{k-j},\qquad k,w\in\{0,\dots,m\}.
# $$
#
# $K_k(w)$ is the sum of $(-1)^{s\cdot u}$ over the $\binom mk$ vectors $u$ of weight $k$, for any
# fixed $s$ of weight $w$. `lca.embeddings.krawtchouk(k, w, m)` computes it exactly.
# ```
#
# The weight-0 character is the all-ones vector $\mathbf{1}$; the $m$ characters of weight 1 are the
# *bit directions* $(-1)^{z_a}$; the single character of weight $m$ is the *parity*
# $(-1)^{|z|}$.

# %% [markdown]
# ## Look at it first
#
# The simplest embedding that knows the latent space is the centred code
# $e_z=\frac1{\sqrt m}(2z-\mathbf{1})\in\mathbb{R}^m$: each latent bit becomes a coordinate $\pm1/\sqrt m$. Its
# Gram matrix is a Hamming kernel, as the two heat maps show for $m=4$ (16 tokens, in id order).

# %%
m = 4
space = lca.LatentSpace(m)
D = space.distances()
E_code = (2 * space.latents.double() - 1) / math.sqrt(m)      # [V, m]: the centred +-1 code
G_code = E_code @ E_code.T
fig = embeddings.plot_distance_and_gram(D, G_code, title="Centred code, m = 4: distances and "
                                   "inner products")
plt.show()
print("token 0 against tokens 0..7")
print("  D_H       :", " ".join(f"{int(x):6d}" for x in D[0, :8]))
print("  <e_0, e_j>:", " ".join(f"{float(x):6.3f}" for x in G_code[0, :8]))
print("  1 - 2D/m  :", " ".join(f"{1 - 2 * float(x) / m:6.3f}" for x in D[0, :8]))
print(f"rank of the 16 x 16 Gram matrix: {int(torch.linalg.matrix_rank(G_code))}  (m = {m})")

# %% [markdown]
# The Gram matrix is $1-\frac2mD_{\mathrm{H}}$: the affine law with $b_0=1$, $b_1=2/m$. A $16\times16$ matrix
# of rank $4$: the embeddings live in $m$ dimensions however many tokens there are. The next
# section shows that this is no accident of the example.

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
# ```{prf:proof}
# For single bits, $\mathbb 1[a\ne b]=a+b-2ab$; summing over coordinates gives
# $D_{\mathrm{H}}(z,z')=|z|+|z'|-2z^\top z'$, which is the factorisation. Substituting it,
# $G=b_0\mathbf{1}\mathbf{1}^\top-b_1\mathbf z\mathbf{1}^\top-b_1\mathbf{1}\mathbf z^\top+2b_1ZZ^\top$, and each term has
# its columns in $\operatorname{span}\{\mathbf{1},Z_{:,1},\dots,Z_{:,m}\}$, a space of dimension at most
# $m+1$. Parts 2 and 3 follow from the next theorem with $g(k)=b_0-b_1k$; see
# {prf:ref}`thm-geo-affine-rank` for the details.
# ```
#
# The affine law is one profile among many. Every Hamming kernel has an explicit spectrum.
#
# ```{prf:theorem} Krawtchouk spectrum of a Hamming kernel
# :label: thm-geo-spectrum
#
# For any profile $g$, each Walsh character is an eigenvector of the Hamming kernel:
#
# $$
# G_g\chi_s=\lambda_{|s|}\chi_s,\qquad\lambda_w=\sum_{k=0}^mg(k)\,K_k(w),
# $$
#
# so $\lambda_w$ has multiplicity $\binom mw$ (more if several weights share a value),
# $\operatorname{rank}G_g=\sum_{w:\lambda_w\ne0}\binom mw$, and $G_g$ is a Gram matrix if and only
# if every $\lambda_w\ge0$.
# ```
#
# ```{prf:proof}
# The tokens at distance $k$ from $z$ are $z\oplus u$ with $|u|=k$, and
# $\chi_s(z\oplus u)=\chi_s(z)(-1)^{s\cdot u}$. So entry $z$ of $G_g\chi_s$ is
# $\chi_s(z)\sum_kg(k)\sum_{|u|=k}(-1)^{s\cdot u}=\chi_s(z)\sum_kg(k)K_k(|s|)$. The $V$ characters
# are mutually orthogonal, hence a complete eigenbasis. (Full proof, with the inverse formula
# giving $g$ back from the $\lambda_w$: {prf:ref}`thm-geo-krawtchouk`.)
# ```
#
# A trained Gram matrix is never exactly a Hamming kernel. What survives is an average statement
# ({prf:ref}`lem-geo-profile-projection` in the appendix): the Hamming kernel of the mean profile
# $\bar g$ is the Hamming kernel closest to $G$, its Krawtchouk eigenvalue $\bar\lambda_w$ equals
# the mean of the Rayleigh quotients $\chi_s^\top G\chi_s/V$ over the characters of weight $w$, the
# predicted eigenvalues have the same sum as the true ones, and they are never negative when $G$ is
# a Gram matrix.

# %% [markdown]
# ## Check it
#
# Three checks in exact arithmetic (float64): the Krawtchouk eigenvalues of a random profile
# against `torch.linalg.eigvalsh` at $m=6$; the rank formula of {prf:ref}`thm-geo-affine` against
# `torch.linalg.matrix_rank`; and the same spectral comparison for a matrix that is *not* a Hamming
# kernel, where only the averaged statements survive.

# %%
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
# For a Hamming kernel the Krawtchouk eigenvalues are the eigenvalues, to rounding error. The
# ranks agree with $m\,\mathbb 1[b_1\ne0]+\mathbb 1[b_0\ne mb_1/2]$: rank $7=m+1$ in general, as
# for the Gram matrix with $b_0=4$, $b_1=1$; $6$ in the centred case $b_0=3=mb_1/2$; $1$ when
# $b_1=0$. The pairs $b_0=2$, $b_1=1$ and $b_0=-1$, $b_1=0.5$ also have rank $m+1$, but they break
# $b_0\ge mb_1/2$ of part 3 and have a negative eigenvalue, so no embeddings have those matrices
# as their Gram matrix. For the random Gram
# matrix the predicted eigenvalues are wrong one by one, but their sum and their averages per
# weight are exact, as {prf:ref}`lem-geo-profile-projection` says.

# %% [markdown]
# (fig-paper-3b)=
#
# ## The paper's figure: inner product against Hamming distance
#
# Fig. 3(b) of {cite}`jiang2024elephants` shows, for $m=8$ in the underparameterised regime, the
# average inner product between two token embeddings against their Hamming distance, for a model
# with a trained $W_{V}$. The paper's sources also hold plots named `no_wv_hamming_inner_n5` to
# `n8`, probably the same measurement with $W_{V}$ fixed to the identity; we show both side by side.
# The paper's training settings are not available; ours are $m=8$ ($V=256$), $d=32$, $L=64$, contexts drawn uniformly
# from $\mathcal{N}_1(z^*)$ without noise, Adam with learning rate $0.01$, batch $256$, $800$ steps, $W_{KQ}$
# trained from $0$, three seeds per variant, all six models trained as one ensemble.

# %% tags=["nbval-ignore-output"]
# (only the CPU time printed here changes from run to run)
M_FIG = 8
spec8 = lca.TaskSpec(m=M_FIG, L=64)
base8 = lca.TrainConfig(task=spec8, d=32, steps=800, batch_size=256, lr=0.01, eval_every=0,
                        device=device)
VARIANTS = {"trained W_V": {}, "W_V = I (frozen)": {"train_V": False, "WV_init": "identity"}}
SEEDS = (0, 1, 2)
t0 = time.process_time()
run8 = lca.sweep(base8, seeds=SEEDS, variants=VARIANTS, progress=False)
print(f"trained {len(run8.labels)} models in {time.process_time() - t0:.1f} s of CPU")

# %%
prof8 = embeddings.gram_profile(run8.model)            # mean, std: [6, m+1]
fit8 = embeddings.affine_fit(run8.model)               # one fit per member
acc8 = run8.history["accuracy"][-1]
members = {v: [i for i, (lab, _) in enumerate(run8.labels) if lab == v] for v in VARIANTS}
panels = {}
for v, idx in members.items():
    panels[v] = {"mean": prof8.mean[idx], "std": prof8.std[idx],
                 "b0": sum(fit8.b0[i] for i in idx) / len(idx),
                 "b1": sum(fit8.b1[i] for i in idx) / len(idx),
                 "r2": sum(fit8.r2[i] for i in idx) / len(idx)}
# the R^2 that the legend and the text quote: of the affine fit to each seed's mean profile,
# averaged over the seeds, to one decimal (its second decimal moves between CPUs)
r2_profile8 = {v: round(sum(fit8.r2_profile[i] for i in idx) / len(idx), 1) for v, idx in members.items()}


def label_profile_r2(fig, r2s):
    """Make each panel's legend quote the R^2 of the fit to the mean profile (one decimal), the
    number the text quotes, instead of the R^2 over all pairs."""
    for ax, r2 in zip(fig.axes, r2s):
        for text in ax.get_legend().get_texts():
            if text.get_text().startswith("affine fit"):
                text.set_text(f"affine fit $b_0-b_1k$ (mean profile: $R^2$ = {r2:.1f})")


fig = embeddings.plot_hamming_inner(panels, M_FIG, title=r"Inner product vs Hamming distance, m = 8, "
                               r"d = 32: trained $W_V$ vs $W_V = I$")
label_profile_r2(fig, [r2_profile8[v] for v in panels])
plt.show()

# %% [markdown]
# The plotted numbers, means over the three seeds. Training keeps growing the norms of the
# embeddings once the task is solved, so their overall scale depends on how long we train (and
# moves by about one percent between CPUs); we print the profile in units of the mean squared norm
# $\bar g(0)$, which fixes the scale and leaves the shape. "Spread" is the standard deviation over
# the pairs at that distance, in the same units, averaged over seeds.

# %%
names = list(VARIANTS)
g0 = {v: float(prof8.mean[members[v], 0].mean()) for v in names}
print(f"{'':>9s} | " + " | ".join(f"{v:>16s}" for v in names))
print(f"{'k':>2s} {'pairs':>6s} | " + " | ".join(f"{'mean':>7s} {'spread':>8s}" for _ in names))
places = {"trained W_V": 2, "W_V = I (frozen)": 1}     # W_V = I: the second decimal moves between CPUs
for k in range(M_FIG + 1):
    cells = [f"{fixed(prof8.mean[members[v], k].mean() / g0[v], places[v]):>7s} "
             f"{fixed(prof8.std[members[v], k].mean() / g0[v], 1):>8s}" for v in names]
    print(f"{k:2d} {int(prof8.count[k]):6d} | " + " | ".join(cells))
print(f"{'g(0)':>9s} | " + " | ".join(f"{sig(g0[v], 2):>16s}" for v in names))
print()
print("affine fit b0 - b1 k (b0, b1 in units of g(0)); R^2 over the pairs (mean ± standard error "
      "over seeds)\nand of the mean profile; accuracy per seed")
for v in names:
    idx = members[v]
    r2 = torch.tensor([fit8.r2[i] for i in idx])
    r2p = [fit8.r2_profile[i] for i in idx]
    b0, b1 = sig(panels[v]["b0"] / g0[v], 2), sig(panels[v]["b1"] / g0[v], 2)
    print(f"  {v:18s} b0 = {b0:>4s}  b1 = {b1:>5s}  "
          f"R^2 (pairs) = {pm(r2.mean(), r2.std() / math.sqrt(len(idx)))}  "
          f"R^2 (mean profile) = {fixed(sum(r2p) / 3, 1)}  accuracy per seed: "
          + " ".join(accuracy_text(acc8[i]) for i in idx))
glue("geo_r2_id", r2_profile8["W_V = I (frozen)"], display=False)   # as in the figure's legend
glue("geo_r2_tr", r2_profile8["trained W_V"], display=False)

# %% [markdown]
# The same measurement for $m=5,6,7$ (the paper's `hamming_inner_n7` and `no_wv_hamming_inner_n5`
# to `n7`), one seed per variant, with $d=\min(32, V/2)$ so that every run is underparameterised:

# %%
small_profiles = {}
for m_s in (5, 6, 7):
    spec_s = lca.TaskSpec(m=m_s, L=64)
    run_s = lca.sweep(lca.TrainConfig(task=spec_s, d=min(32, 2 ** m_s // 2), steps=800,
                                      batch_size=256, lr=0.01, eval_every=0, device=device),
                      seeds=(0,), variants=VARIANTS, progress=False)
    prof_s, fit_s = embeddings.gram_profile(run_s.model), embeddings.affine_fit(run_s.model)
    panels_s = {v: {"mean": prof_s.mean[[i]], "std": prof_s.std[[i]], "b0": fit_s.b0[i],
                    "b1": fit_s.b1[i], "r2": fit_s.r2[i]} for i, (v, _) in enumerate(run_s.labels)}
    small_profiles[m_s] = (prof_s, fit_s, run_s.labels)
    fig_s = embeddings.plot_hamming_inner(panels_s, m_s, title=f"Inner product vs Hamming distance, "
                                     f"m = {m_s}, d = {min(32, 2 ** m_s // 2)}: trained $W_V$ vs $W_V = I$")
    label_profile_r2(fig_s, [fit_s.r2_profile[i] for i in range(len(run_s.labels))])
    plt.show()

# %%
print("R^2 of the affine fit to the mean profile; trained W_V: the profile at k = 0..m in units of "
      "g(0);\nW_V = I: whether the profile falls at every step (its digits move between CPUs)")
for m_s, (prof_s, fit_s, labels_s) in small_profiles.items():
    for i, (v, _) in enumerate(labels_s):
        p = prof_s.mean[i]
        if v == "trained W_V":
            shape = "profile " + " ".join(f"{fixed(x / p[0]):>5s}" for x in p)
        else:
            shape = "falls at every step: " + ("yes" if bool((p.diff() < 0).all()) else "no")
        print(f"m = {m_s}, {v:18s} R^2 = {fixed(fit_s.r2_profile[i], 1)}   {shape}")
glue("geo_r2_id_small", min(round(fit_s.r2_profile[i], 1)
                            for prof_s, fit_s, labels_s in small_profiles.values()
                            for i, (v, _) in enumerate(labels_s) if v == "W_V = I (frozen)"),
     display=False)   # the smallest of the three printed W_V = I values

# %% [markdown]
# At $m=5,6,7$ the identity-$W_{V}$ profile falls at every step and is close to a straight line
# (the $R^2$ of its mean profile is at least {glue:text}`geo_r2_id_small:.1f` at each of these $m$,
# to one decimal, against about {glue:text}`geo_r2_id:.1f` at $m=8$), and the trained-$W_{V}$
# profile zig-zags at every $m$.

# %% [markdown]
# What training produces:
#
# - **$W_{V}=I$ (frozen).** The inner product falls steadily with Hamming distance: tokens with
#   similar latent vectors get similar embeddings. The fall is not exactly linear: it is steep at
#   small distances and flattens (even turns up slightly) at the largest, and the spread over pairs
#   grows with the distance. The affine law captures the shape of the mean profile with an $R^2$ of
#   about {glue:text}`geo_r2_id:.1f`; it is a reasonable first description, not an identity.
# - **Trained $W_{V}$.** Only the first step is clean ($k=0$ far above the rest). After that the
#   profile zig-zags: pairs at distance $2$ are *more* similar than pairs at distance $1$, distance
#   $4$ sits above distances $3$ and $5$, and beyond $k=m/2$ the alternation reverses (odd above
#   even). The affine law explains little of it ($R^2$ of the mean profile about
#   {glue:text}`geo_r2_tr:.1f`).
#
# Both models reach perfect accuracy, so the difference is not one of skill. The zig-zag is
# explained below, after the spectra.

# %% [markdown]
# ### Predicted and measured spectra
#
# Take one trained model of each kind (seed 0), compute the mean profile $\bar g$, and compare the
# Krawtchouk eigenvalues of $G_{\bar g}$ (each repeated $\binom mw$ times) with the actual
# eigenvalues of $G=W_{E}W_{E}^\top$. $G$ has rank at most $d=32$, so at most $32$ of its $256$
# eigenvalues are non-zero.

# %%
meas_spec, pred_spec, weight_rows = {}, {}, {}
for v in names:
    i = members[v][0]
    W = run8.model.W_E[i].detach()
    meas_spec[v] = torch.linalg.eigvalsh(embeddings.gram_matrix(W)).flip(0)
    lam_v, mult_v = embeddings.hamming_kernel_spectrum(prof8.mean[i], M_FIG)
    pred_spec[v] = embeddings.expand_spectrum(lam_v, mult_v)
    weight_rows[v] = (lam_v, mult_v)
fig = embeddings.plot_krawtchouk_spectrum(meas_spec, pred_spec, n_show=48,
                                     title=r"m = 8, d = 32: eigenvalues of $W_EW_E^\top$ vs the "
                                           "Krawtchouk eigenvalues of its mean profile")
plt.show()

# %%
print("Krawtchouk eigenvalues of the mean profile, per weight w (multiplicity C(8, w)): each")
print("lambda_w in units of the largest one, and the share C(m,w) lambda_w / trace of the trace")
print(f"{'':>9s} | " + " | ".join(f"{v:>16s}" for v in names))
print(f"{'w':>2s} {'C(m,w)':>6s} | " + " | ".join(f"{'lambda_w':>8s} {'share':>7s}" for _ in names))
for w in range(M_FIG + 1):
    cells = []
    for v in names:
        lam_v = weight_rows[v][0]
        cells.append(f"{fixed(lam_v[w] / lam_v.max()):>8s} "
                     f"{fixed(math.comb(M_FIG, w) * lam_v[w] / pred_spec[v].sum()):>7s}")
    print(f"{w:2d} {math.comb(M_FIG, w):6d} | " + " | ".join(cells))
print()
for v in names:
    ev, pr = meas_spec[v], pred_spec[v]
    tol = 1e-9 * float(ev.abs().max())
    print(f"{v}:")
    print("  |trace measured - trace predicted| / trace",
          bound((ev.sum() - pr.sum()) / ev.sum(), 1e-9))
    print(f"  non-zero eigenvalues: {int((ev.abs() > tol).sum())} measured (rank <= d = 32), "
          f"{int((pr.abs() > tol).sum())} predicted")
    print(f"  largest measured / largest predicted eigenvalue = {sig(ev[0] / pr[0], 2)}")

# %% [markdown]
# With $W_{V}=I$ about nine tenths of the trace sits on $w=1$ (the $m$ bit directions, the affine
# part) and $w=2$, and little on $w\ge3$: the Hamming-invariant part of the geometry is low-rank in
# the Krawtchouk sense. The measured eigenvalues are spread out around the predicted steps because
# the trained $G$ is not exactly a Hamming kernel (the spread column of the table): $G$ has at
# most $d=32$ non-zero eigenvalues where the Hamming kernel of its mean profile has all $256$, so
# its largest ones exceed the predicted steps; but the two lists have the same sum, as the lemma
# guarantees. With a trained $W_{V}$ the largest eigenvalues per direction belong to $w=m$,
# $w=m-1$ and $w=1$, followed by $w=2$ and $w=m-2$: the list is nearly symmetric under
# $w\leftrightarrow m-w$. Energy on the high weights is
# the spectral face of the zig-zag, as we explain below.

# %% [markdown]
# (fig-paper-spectrum)=
#
# ### Spectra and eigen-gaps for $m\in\{7,8\}$, $d\in\{32,64\}$
#
# The paper's sources hold figures named `spectrum_n{7,8}_d{32,64}_e{0,1,2,3}`, probably spectra
# for $m\in\{7,8\}$ and $d\in\{32,64\}$ in four versions whose meaning (checkpoints, seeds or
# variants) and exact matrix we do not know. We show, for
# each setting, the eigenvalues of $W_{E}^\top W_{E}$ (the non-zero eigenvalues of $G$) at
# initialisation and after training with either kind of $W_{V}$, normalised by the largest, with a
# dotted line after index $m$. The eigen-gap is the ratio $\lambda_m/\lambda_{m+1}$.

# %% tags=["nbval-ignore-output"]
# (only the CPU time printed here changes from run to run)
spectra, marks, gap_rows = {}, {}, []
t0 = time.process_time()
for m_s, d_s in [(7, 32), (7, 64), (8, 32), (8, 64)]:
    cfg = base8.with_(task=lca.TaskSpec(m=m_s, L=64), d=d_s)
    if (m_s, d_s) == (M_FIG, 32):
        W_tr = run8.model.W_E[members["trained W_V"][0]]
        W_id = run8.model.W_E[members["W_V = I (frozen)"][0]]
    else:
        res = lca.sweep(cfg, seeds=(0,), variants=VARIANTS, progress=False)
        W_tr, W_id = res.model.W_E[0], res.model.W_E[1]
    W_init = build_model(cfg.with_(seed=0)).W_E            # the untrained model of seed 0
    curves = {"initial (Gaussian)": embeddings.embedding_spectrum(W_init),
              "trained W_V": embeddings.embedding_spectrum(W_tr),
              "W_V = I": embeddings.embedding_spectrum(W_id)}
    name = f"m={m_s}, d={d_s}"
    spectra[name], marks[name] = curves, m_s
    for label, ev in curves.items():
        gap_rows.append((name, label, float(embeddings.eigen_gap(ev, m_s)),
                         float(ev[:m_s].sum() / ev.sum()), float(ev[:2 * m_s + 1].sum() / ev.sum())))
print(f"extra training: {time.process_time() - t0:.1f} s of CPU")

# %%
fig = embeddings.plot_spectra(spectra, marks, title=r"Normalised spectra of $W_E^\top W_E$ (d < V): "
                         "initial vs trained")
plt.show()
print(f"{'setting':12s} {'embeddings':20s} {'gap l_m/l_m+1':>14s} {'top m share':>12s} "
      f"{'top 2m+1 share':>15s}")
for name, label, gap, share_m, share_2m in gap_rows:
    gap_text = "> 2" if gap > 2 else "1.5 to 2" if gap > 1.5 else "< 1.5"
    print(f"{name:12s} {label:20s} {gap_text:>14s} {fixed(share_m, 1):>12s} "
          f"{fixed(share_2m, 1):>15s}")

# %% [markdown]
# Training turns a slowly decaying random spectrum into a steeper one in every setting: the top
# $m$ eigenvalues carry about half of the trace or more after training, against a quarter to two
# fifths at initialisation. (These spectra are single runs, and with $W_{V}=I$ they move between
# CPUs: the eigen-gap of the $m=7$, $d=64$ model changes in its first digit from one CPU code path
# to another. So the table prints the shares to one decimal and the gap as a range.)
# With $W_{V}=I$ there is a visible gap after index $m$, clearest at $m=7$ and weaker at $m=8$,
# where the $w=2$ directions take a large share. With a trained $W_{V}$ there is no gap at $m$: the $m$ bit directions share the energy with their parity-twisted copies
# (weight $m-1$) and the parity itself, at comparable sizes, and the spectrum decays without a
# clean break. "Low rank" is therefore a fair summary of the $W_{V}=I$ models and a loose one for
# trained $W_{V}$, where the accurate statement is that the energy concentrates on a few Krawtchouk
# weights.

# %% [markdown]
# ## Why the trained-$W_{V}$ profile zig-zags
#
# With uniform attention the logits of a context are an average of columns of the *association
# matrix* $M[k,x]=W_{E}(k)^\top W_{V} W_{E}(x)$ (the logit that one context token $x$ adds to candidate $k$;
# with $W_{V}=I$, $M=G$). The context law $P[y,x]$ of $\mathcal{N}_1$ is itself a Hamming kernel, with
# eigenvalues $\mu_w=1-2w/m$. {prf:ref}`prop-geo-margin` in the appendix shows that the target's
# mean logit advantage over an average token is
#
# $$
# \frac1V\sum_{w\ge1}\binom mw\,\mu_w\,\nu_w,\qquad
# \nu_w=\text{mean of }\chi_s^\top M\chi_s/V\text{ over }|s|=w .
# $$
#
# A weight class helps when $\mu_w$ and $\nu_w$ have the same sign. With $W_{V}=I$, $M=G$ is a Gram
# matrix, every $\nu_w\ge0$, and only the weights with $\mu_w>0$ ($w<m/2$) can help. A trained
# $W_{V}$ can make $\nu_w$ negative, so it can also exploit the weights with $\mu_w<0$, and the
# largest of those is $\mu_m=-1$: the parity. This is where bipartiteness enters. Every neighbour
# of $y$ in $\mathcal{N}_1$ has the opposite parity to $y$, so a parity feature, read through a $W_{V}$ that
# flips its sign, tells the model for free that the answer has the opposite parity to every context
# token, which rules out half of the vocabulary. In the Gram matrix the parity direction adds
# $c^2(-1)^{D_{\mathrm{H}}(i,j)}$, and the twisted bit directions (weight $m-1$) add $(-1)^k(m-2k)$
# ({prf:ref}`lem-geo-krawtchouk-identities`): exactly an even/odd alternation on top of a
# decreasing trend.
#
# A broader neighbourhood changes $\mu$. For the Hamming ball of radius 2 ($D_{\mathrm{H}}\in\{1,2\}$),
# $\mu_w=(K_1(w)+K_2(w))/(m+\binom m2)$, which at $m=8$ equals $\mu_1$ again at $w=m$ and is
# *positive* there: the context is now mostly of the target's own parity, and even $W_{V}=I$ can use
# the parity. We train both variants on the ball and compare $\nu_w$ (measured) with $\mu_w$.

# %% tags=["nbval-ignore-output"]
# (only the CPU time printed here changes from run to run)
spec_ball = lca.TaskSpec(m=M_FIG, L=64, neighbourhood=lca.hamming_ball(2))
t0 = time.process_time()
run_ball = lca.sweep(base8.with_(task=spec_ball), seeds=(0,), variants=VARIANTS, progress=False)
print(f"trained on the radius-2 ball in {time.process_time() - t0:.1f} s of CPU")

# %%
first = [members[v][0] for v in names]                       # seed-0 members of run8
nu_sphere = embeddings.weight_rayleigh(embeddings.association_matrix(run8.model))[first]
nu_ball = embeddings.weight_rayleigh(embeddings.association_matrix(run_ball.model))
rows = {"radius-1 sphere N_1": {"mu": embeddings.context_spectrum(spec8),
                                "nu": dict(zip([f"nu_w, {v}" for v in names], nu_sphere))},
        "radius-2 ball": {"mu": embeddings.context_spectrum(spec_ball),
                          "nu": dict(zip([f"nu_w, {v}" for v in names], nu_ball))}}
fig = embeddings.plot_weight_spectrum(rows, M_FIG, title=r"Neighbourhood spectrum $\mu_w$ vs learned "
                                 r"association $\nu_w$ (each normalised by its largest |value|)")
plt.show()

# %%
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
# On $\mathcal{N}_1$, the trained $W_{V}$ gives $\nu_w$ the sign of $\mu_w$ at every weight, with the largest
# sizes where $|\mu_w|$ is largest ($w=m$, $m-1$ and $1$); about half of its mass sits on weights
# with $\mu_w<0$, which only a sign-flipping $W_{V}$ can use. The identity $W_{V}$ keeps all $\nu_w$
# non-negative and puts almost all of them where $\mu_w>0$. On the ball, $\mu_m=\mu_1$ and the two
# weights receive nearly equal $\nu$ in both models: the profile no longer alternates at every
# step but pairs the distances $(1,2)$, $(3,4)$, $(5,6)$, $(7,8)$ into a staircase. So a broader
# neighbourhood removes the step-by-step zig-zag, but the parity does not go away as long as the
# neighbourhood's $\mu_m$ is far from zero. That the learned $\nu_w$ follow $\mu_w$ this closely
# is a measurement; the proposition only says which signs help the mean margin. It is our
# explanation, not a statement from the paper.

# %% [markdown]
# ## What low rank would buy (an interpretation)
#
# If the embeddings of a trained model are (close to) the affine law, everything the model knows
# about token similarity lives in an $(m+1)$-dimensional subspace, however large $V$ and $d$ are.
# A change of one association then needs to touch only a few directions, which is the kind of
# structure that rank-one editing of stored facts {cite}`meng2022rome` and low-rank adapters for
# fine-tuning {cite}`hu2022lora` rely on, and that layer-selective rank reduction
# {cite}`sharma2023laser` exploits. The paper offers its low-rank result as support for such
# methods. We stress that this is an interpretation: our measurements concern the embedding matrix
# of a one-layer model on a synthetic task, the gap is clear with $W_{V}=I$ and much weaker with a
# trained $W_{V}$, and nothing here tests an editing method on a language model.

# %% [markdown]
# ## Where it breaks
#
# The Hamming geometry is not forced by the architecture; it is learned because the task needs it
# and the model has too few dimensions to avoid it. Remove either reason and it disappears.
#
# 1. **Overparameterised, frozen random embeddings.** $m=6$ ($V=64$), $d=128\ge V$, $W_{E}$ kept at
#    its Gaussian initialisation, $W_{V}$ and $W_{KQ}$ trained. Random vectors in $128$ dimensions are
#    nearly orthogonal, so $W_{V}$ can store every association on its own
#    ({doc}`04_value_matrix`), and nothing in $W_{E}$ refers to the latent space. (We also train
#    $W_{V}=I$ on the same frozen embeddings, for its accuracy only: its Gram matrix is the same.)
# 2. **A neighbourhood unrelated to Hamming distance.** $m=8$, $d=32$ as in the figure, but each
#    target's neighbourhood is a random set of $m$ tokens (a `lca.custom` mask, same size as
#    $\mathcal{N}_1$), so the task has no Hamming structure to learn.

# %% tags=["nbval-ignore-output"]
# (only the CPU time printed here changes from run to run)
t0 = time.process_time()
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
print(f"trained the two counterexamples in {time.process_time() - t0:.1f} s of CPU")

# %%
breaks = {"d=128 >= V=64, frozen random W_E": run_over,
          "random neighbourhood, trained W_V": run_rand,
          "random neighbourhood, W_V = I": run_rand}
pick = {"d=128 >= V=64, frozen random W_E": [0, 1],                   # trained W_V, seeds 0, 1
        "random neighbourhood, trained W_V": [0], "random neighbourhood, W_V = I": [1]}
break_panels, break_rows = {}, []
for name, res in breaks.items():
    idx = pick[name]
    prof = embeddings.gram_profile(res.model)
    fit = embeddings.affine_fit(res.model)
    _, share = embeddings.weight_spectrum(res.model)
    break_panels[name] = {"mean": prof.mean[idx], "std": prof.std[idx],
                          "b0": sum(fit.b0[i] for i in idx) / len(idx),
                          "b1": sum(fit.b1[i] for i in idx) / len(idx),
                          "r2": sum(fit.r2[i] for i in idx) / len(idx)}
    acc = [res.history["accuracy"][-1][i] for i in idx]
    m_b = prof.count.numel() - 1
    binom_share = (math.comb(m_b, 1)) / 2 ** m_b
    break_rows.append((name, prof.mean[idx].mean(0), sum(fit.r2[i] for i in idx) / len(idx),
                       sum(fit.b1[i] for i in idx) / len(idx), float(share[idx, 1].mean()),
                       binom_share, sum(acc) / len(acc)))
fig = embeddings.plot_hamming_inner(break_panels, title="Where it breaks: no Hamming structure is "
                               "needed or available")
plt.show()

# %%
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
# In both counterexamples the models with a trained $W_{V}$ solve the task (and so does $W_{V}=I$ on
# the random neighbourhood, where it may train its embeddings), yet the profile is flat: the inner
# product is the same at every distance $k\ge1$, the affine fit explains nothing, and the share of
# the trace on the $m$ bit directions is what an isotropic matrix would have ($m/V$). The one model
# that fails is $W_{V}=I$ on frozen random embeddings: with neither a memory in $W_{V}$ nor a learned
# geometry in $W_{E}$, nothing links a context to its target. With $d\ge V$ and a trained $W_{V}$
# the associations are stored in $W_{V}$ between unrelated near-orthogonal vectors; with a random
# neighbourhood there is nothing about Hamming distance to learn. The low-rank Hamming geometry is
# a consequence of *compression* ($d<V$) of a task whose structure *is* the Hamming geometry.

# %% [markdown]
# ## Explore
#
# Choose a profile $g(k)=b_0-b_1k+b_2k^2+c\,(-1)^k$ and see its Krawtchouk spectrum. The affine law
# ($b_2=c=0$) has only two non-zero eigenvalues, at $w=0$ and $w=1$ (only $w=1$ when
# $b_0=mb_1/2$: try $b_0=4$ at $m=8$). A curvature $b_2$ switches on
# $w=2$ (multiplicity $\binom m2$); the parity term $c$ switches on $w=m$. Red bars are negative
# eigenvalues: such a profile is not the Gram matrix of any embeddings. Nothing here is
# $V\times V$, so $m$ can go up to $12$ instantly.

# %%
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
# Write `gram_profile_mean(W_E)` that takes embeddings `W_E [V, d]` ($V=2^m$, row $i$ = token $i$)
# and returns a float64 tensor of length $m+1$ whose entry $k$ is the mean of
# $W_{E}(i)^\top W_{E}(j)$ over all ordered pairs at Hamming distance $k$, the pairs $(i,i)$ included
# at $k=0$. Use `lca.LatentSpace(m).distances()`.
# ```
#
# ```{solution} ex-geo-profile
# :class: dropdown
#
# Build $G$ and the distance matrix, then average $G$ over each level set:
# `G = W_E @ W_E.T`, `D = lca.LatentSpace(m).distances()`, then
# `torch.stack([G[D == k].mean() for k in range(m + 1)])`.
# Common mistakes: `W_E.T @ W_E` (a $d\times d$ matrix, the wrong object), summing instead of
# averaging (the number of pairs grows like $\binom mk$), and dropping the diagonal at $k=0$.
# ```

# %%
def my_gram_profile(W_E):
    W_E = W_E.double()
    m = W_E.shape[0].bit_length() - 1
    G = W_E @ W_E.T
    D = lca.LatentSpace(m).distances()
    return torch.stack([G[D == k].mean() for k in range(m + 1)])   # replace with your own version


_ = check_gram_profile(my_gram_profile)

# %% [markdown]
# ```{exercise} Krawtchouk numbers
# :label: ex-geo-krawtchouk
#
# Write `krawtchouk(k, w, m)` returning the integer $K_k(w)$. Check by hand that $K_1(w)=m-2w$,
# and explain why $K_k(0)=\binom mk$.
# ```
#
# ```{solution} ex-geo-krawtchouk
# :class: dropdown
#
# `return sum((-1) ** j * math.comb(w, j) * math.comb(m - w, k - j) for j in range(min(k, w) + 1))`
# (`math.comb` is $0$ when $k-j>m-w$). For $k=1$ only $j=0,1$ contribute: $(m-w)-w$. For $w=0$
# the character is $\mathbf{1}$, and every one of the $\binom mk$ vectors $u$ contributes $+1$. Swapping
# the arguments ($K_w(k)$) is a classic slip: it differs from $K_k(w)$ by the factor
# $\binom mw/\binom mk$.
# ```

# %%
def my_krawtchouk(k, w, m):
    return sum((-1) ** j * math.comb(w, j) * math.comb(m - w, k - j)
               for j in range(min(k, w) + 1))   # replace with your own version


_ = check_krawtchouk(my_krawtchouk)

# %% [markdown]
# ```{exercise} The spectrum without the matrix
# :label: ex-geo-spectrum
#
# Write `hamming_spectrum(g, m)` that returns the $m+1$ eigenvalues $\lambda_0,\dots,\lambda_m$ of
# the Hamming kernel of the profile `g` (a float64 tensor of length $m+1$), using
# {prf:ref}`thm-geo-spectrum` and your `krawtchouk`, without building any $V\times V$ matrix. Then
# compare with `torch.linalg.eigvalsh` for $m=5$.
# ```
#
# ```{solution} ex-geo-spectrum
# :class: dropdown
#
# Build the $(m+1)\times(m+1)$ matrix $K[k,w]=K_k(w)$ with
# `torch.tensor([[krawtchouk(k, w, m) for w in range(m + 1)] for k in range(m + 1)])` (as float64)
# and return `g @ K`.
# Returning `g @ K.T` uses $K_w(k)$ instead and is wrong except when $m=1$: the matrix is not
# symmetric for $m\ge2$, only $\binom mwK_k(w)=\binom mkK_w(k)$ holds.
# ```

# %%
def my_hamming_spectrum(g, m):
    K = torch.tensor([[my_krawtchouk(k, w, m) for w in range(m + 1)] for k in range(m + 1)],
                     dtype=torch.float64)
    return g.double() @ K   # replace with your own version


_ = check_hamming_spectrum(my_hamming_spectrum)

# %% [markdown]
# ```{exercise} Embeddings for the affine law
# :label: ex-geo-embedding
#
# Write `affine_embedding(m, b0, b1)` returning embeddings `E [V, r]` with at most $m+1$ columns
# whose Gram matrix is $b_0-b_1D_{\mathrm{H}}$ (assume $b_1\ge0$ and $b_0\ge mb_1/2$). Hint: start from the
# $\pm1$ code, whose Gram matrix is $m-2D_{\mathrm{H}}$, and add one constant coordinate.
# ```
#
# ```{solution} ex-geo-embedding
# :class: dropdown
#
# Row $z$: $\big(\sqrt{b_1/2}\,(2z-\mathbf{1}),\ \sqrt{b_0-mb_1/2}\big)$. The first block contributes
# $\frac{b_1}2(m-2D_{\mathrm{H}})$ and the constant coordinate $b_0-\frac{mb_1}2$; they add up to
# $b_0-b_1D_{\mathrm{H}}$. Forgetting the constant coordinate is right only in the centred case, and using
# $\sqrt{b_1}$ instead of $\sqrt{b_1/2}$ doubles the slope.
# ```

# %%
def my_affine_embedding(m, b0, b1):
    Z = lca.LatentSpace(m).latents.double()
    const = torch.full((2 ** m, 1), math.sqrt(b0 - m * b1 / 2), dtype=torch.float64)
    return torch.cat([math.sqrt(b1 / 2) * (2 * Z - 1), const], dim=1)   # replace with your own


_ = check_affine_embedding(my_affine_embedding)

# %% [markdown]
# ```{exercise} Rank at most m+1, and exactly m when centred
# :label: ex-geo-prove-rank
#
# Prove, without Krawtchouk numbers, that $G=b_0\mathbf{1}\mathbf{1}^\top-b_1D_{\mathrm{H}}$ has rank at most $m+1$, and
# that the Gram matrix of the centred code $e_z=\frac1{\sqrt m}(2z-\mathbf{1})$ has rank exactly $m$.
# Then show that $\mathbf{1}$ is always an eigenvector of $G$ and find its eigenvalue.
# ```
#
# ```{solution} ex-geo-prove-rank
# :class: dropdown
#
# Use $D_{\mathrm{H}}=\mathbf z\mathbf{1}^\top+\mathbf{1}\mathbf z^\top-2ZZ^\top$ (from $\mathbb 1[a\ne b]=a+b-2ab$ per
# bit): every column of $G$ is a combination of $\mathbf{1}$ and the $m$ columns of $Z$, so the column
# space has dimension at most $m+1$. For the centred code, $G=EE^\top$ with $E=\frac1{\sqrt m}
# (2Z-\mathbf{1}\mathbf{1}^\top)\in\mathbb{R}^{V\times m}$, so the rank is at most $m$; it is exactly $m$ because the
# columns of $E$ are orthogonal and non-zero: $\sum_z(2z_a-1)(2z_b-1)=0$ for $a\ne b$, since half
# of the tokens agree in bits $a$ and $b$. Finally, every row of $D_{\mathrm{H}}$ sums to
# $\sum_k k\binom mk=m2^{m-1}$, so $G\mathbf{1}=(2^mb_0-m2^{m-1}b_1)\mathbf{1}$: the eigenvalue is
# $2^m(b_0-mb_1/2)$, zero exactly in the centred case.
# ```

# %% [markdown]
# ## Summary
#
# A Gram matrix that depends only on Hamming distance is diagonalised by Walsh characters, with
# eigenvalues given by Krawtchouk numbers; the affine law $b_0-b_1D_{\mathrm{H}}$ is the special case with
# only the constant and the $m$ bit directions, hence rank $m+1$ (or $m$ when centred). Trained
# embeddings with $d<V$ approach this picture when $W_{V}$ is fixed to the identity; with a trained
# $W_{V}$ on $\mathcal{N}_1$ they also use parity, because the hypercube is bipartite, and the profile
# zig-zags. Both geometries vanish when the model has room for orthogonal embeddings or when the
# task has no Hamming structure. For context hijacking the geometry is the other half of the
# story: tokens whose latent concepts overlap get overlapping embeddings, so a context full of
# tokens near a wrong answer pushes the gathered vector $h$ toward that answer's embedding. The
# next chapter adds the missing piece, attention, which decides which context tokens are gathered
# at all.
