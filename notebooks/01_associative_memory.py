# %% tags=["remove-cell"]
# Colab setup: install the course package (runs only on Google Colab)
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "lca[llm] @ git+https://github.com/elephants-course/elephants@v0.1.0"], check=True)

# %% [markdown]
# # Associative memory: facts stored in one matrix
#
# A language model that completes "The Eiffel Tower is in the city of" with "Paris" has stored an
# association somewhere in its weights. The paper this course follows {cite}`jiang2024elephants`
# argues that the storage works like an *associative memory*: a cue in the context retrieves
# whatever is attached to it, whether or not the sentence around the cue makes sense. On this
# reading, a sentence such as "The Eiffel Tower is not in Chicago" can pull the answer towards
# Chicago because it puts the cue "Chicago" in the context. Before we look at transformers, this
# chapter studies the oldest and simplest associative memory, a single matrix built from outer
# products {cite}`kohonen1972correlation`, {cite}`hopfield1982neural`. We ask how many associations
# such a matrix holds when its keys are random vectors, the situation of a freshly initialised
# embedding table, and we answer with exact formulas that we then test against simulation.
#
# **In this chapter you will**
#
# - store key-value pairs in a matrix $W=\sum_i v_iu_i^\top$ and read them back;
# - prove that orthonormal keys give perfect recall, and that no linear memory recalls more than
#   $d$ independent values exactly;
# - compute the exact mean and variance of the *cross-talk* between random keys and the exact
#   probability that nearest-value recall succeeds;
# - compare these formulas with simulation over a grid of sizes $N$ and dimensions $d$;
# - tell apart the two capacities quoted for the classical Hopfield network, exact recall (about
#   $d/(2\ln d)$ patterns) and recall with a few wrong bits (about $0.14\,d$), and measure both;
# - see that softmax attention is the same memory read with a sharper rule (a modern Hopfield
#   network).

# %% tags=["hide-input"]
import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

import lca
from lca import associative_memory, glue
from lca.report import bound, exact, pm, sig
from lca.associative_memory import (check_crosstalk, check_recall_bound_mills,
                                    check_repair_fraction, check_softmax_recall)
from lca.widgets import explorer

torch.manual_seed(0)
device = lca.default_device()
torch.set_num_threads(1)


def glue_pm(name, mean, se):
    """Glue a Monte Carlo value at the digits that pm prints (those of its standard error)."""
    glue(name, float(pm(mean, se).split(" ± ")[0]), display=False)

# %% [markdown]
# ## Definitions
#
# ```{prf:definition} Outer-product memory
# :label: def-mem-outer-product
#
# Let $u_1,\dots,u_N\in\mathbb R^d$ be *keys* and $v_1,\dots,v_N\in\mathbb R^{d'}$ *values*. The
# outer-product (linear associative) memory storing the $N$ pairs is the matrix
#
# $$
# W=\sum_{i=1}^N v_i\,u_i^\top\in\mathbb R^{d'\times d}.
# $$
#
# *Recall* with a query $q\in\mathbb R^d$ returns the vector $Wq$. *Nearest-value recall* returns
# the index $\arg\max_i\,v_i^\top Wq$ of the stored value with the largest inner product with $Wq$.
# When the values are one-hot, $v_i=e_i\in\mathbb R^N$, coordinate $i$ of $Wq$ is $u_i^\top q$ and
# nearest-value recall is $\arg\max_i u_i^\top q$.
# ```
#
# ```{prf:definition} Gaussian keys
# :label: def-mem-gaussian-keys
#
# Gaussian keys are independent vectors $u_i\in\mathbb R^d$ with i.i.d. $\mathcal N(0,1/d)$
# entries, so $\mathbb E\|u_i\|^2=1$. This is how the course initialises embeddings
# (`lca.OneLayerTransformer(..., E_init="gaussian")`). For a stored pair $j$ we write
# $X_i=u_i^\top u_j$ ($i\ne j$) for the overlaps with the other keys.
# ```
#
# In code, keys and values are the rows of `keys [N, d]` and `values [N, d']`, and
# `lca.associative_memory.store(keys, values)` returns `values.T @ keys`.

# %% [markdown]
# ## Look at it first
#
# We store $N$ pairs with one-hot values and draw the matrix whose row $j$ is the recalled vector
# $Wu_j$ ({numref}`fig-ch1-recall`). A perfect memory gives the identity matrix. Three memories:
# $16$ orthonormal keys in $d=16$; $16$ Gaussian keys in $d=16$; $64$ Gaussian keys in $d=16$.
# (The errors and hit counts behind the figure are in the folded output under it.)

# %%
d = 16
memories = [("orthonormal, $N=16$", associative_memory.orthonormal_keys(16, d, seed=1)),
            ("Gaussian, $N=16$", associative_memory.random_keys(16, d, seed=2)),
            ("Gaussian, $N=64$", associative_memory.random_keys(64, d, seed=3))]
panels, errors = {}, {}
for label, keys in memories:
    n = keys.shape[0]
    values = torch.eye(n, dtype=keys.dtype)
    W = associative_memory.store(keys, values)
    recalled = associative_memory.recall(W, keys)
    panels[label] = recalled
    found = associative_memory.recall_argmax(W, keys, values)
    hits = int((found == torch.arange(n)).sum())
    errors[label] = (float(((recalled - values) ** 2).sum(1).mean()), hits, n)
glue("mem_first_hits", errors["Gaussian, $N=64$"][1], display=False)   # a count: exact

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch1-recall", "caption": "Recalled vectors $W u_j$ (row $j$) for one-hot values in $d=16$: orthonormal keys give the identity, Gaussian keys a noisy identity whose off-diagonal entries are the cross-talk."}, "image": {"alt": "Three heat maps of recall matrices. The first, for 16 orthonormal keys, is exactly the identity matrix; the second, for 16 Gaussian keys, has a strong diagonal and weak off-diagonal noise; the third, for 64 Gaussian keys, has a diagonal barely visible in strong noise."}}
fig = associative_memory.plot_recall_scores(panels)
plt.show()

# %% tags=["hide-output"]
print(f"{'memory':20s}  {'mean ||W u_j - v_j||^2':>22s}  "
      f"{'recalled by nearest value':>25s}")
for label, (mse, hits, n) in errors.items():
    # orthonormal keys: the error is floating-point round-off, printed as a bound;
    # Gaussian keys: the error of one random memory, to two significant digits
    shown = bound(mse, 1e-20) if label.startswith("orthonormal") else sig(mse, 2)
    name = label.replace("$", "").replace("N=", "N = ")
    print(f"{name:20s}  {shown:>22s}  {f'{hits} of {n}':>25s}")

# %% [markdown]
# The orthonormal memory is exact. With random keys each row is a noisy identity: the diagonal
# entry $\|u_j\|^2$ is close to $1$, the off-diagonal entries $u_i^\top u_j$ are small but nonzero.
# These off-diagonal entries are the *cross-talk*. With $N=64$ pairs in $d=16$ dimensions the
# recalled vectors are far from the stored ones, and yet in this memory the largest coordinate is
# at the right place for {glue:text}`mem_first_hits` of the $64$ pairs.

# %% [markdown]
# ## Results
#
# ```{prf:theorem} Exact recall with orthonormal keys
# :label: ch1-orthonormal-recall
#
# If the keys are orthonormal ($u_i^\top u_j=\mathbb 1[i=j]$, so $N\le d$), then $Wu_j=v_j$ for
# every $j$ and any values. If $N>d$ and the values are linearly independent (for instance
# one-hot), no matrix $W\in\mathbb R^{d'\times d}$ whatsoever satisfies $Wu_j=v_j$ for all $j$.
# ```
#
# ```{prf:proof}
# $Wu_j=\sum_iv_i(u_i^\top u_j)=v_j$. For the converse, stack the keys as rows of $U$ and the
# values as rows of $Y$: the conditions say $WU^\top=Y^\top$, whose right side has rank $N$ while
# the left has rank at most $d<N$. (Full statement: {prf:ref}`thm-orthonormal-recall`.)
# ```
#
# With random keys the identity breaks up into a signal and a sum of overlaps.
#
# ```{prf:theorem} Cross-talk with Gaussian keys
# :label: ch1-crosstalk
#
# Let the keys be Gaussian ({prf:ref}`def-mem-gaussian-keys`) and the values fixed. Then
# $Wu_j=\|u_j\|^2v_j+\tau_j$ with cross-talk $\tau_j=\sum_{i\ne j}X_iv_i$, and exactly:
#
# - $\mathbb E\|u_j\|^2=1$ and $\operatorname{Var}\|u_j\|^2=2/d$;
# - $\mathbb EX_i=0$, $\mathbb EX_i^2=1/d$, $\mathbb EX_i^4=3(1+2/d)/d^2$; the $X_i$ are
#   uncorrelated, yet $\operatorname{Cov}(X_i^2,X_k^2)=2/d^3$;
# - $\mathbb E\tau_j=0$, $\mathbb E[\tau_j\tau_j^\top]=\frac1d\sum_{i\ne j}v_iv_i^\top$; for one-hot values
#   $\mathbb E\|\tau_j\|^2=(N-1)/d$ and
#   $\operatorname{Var}\|\tau_j\|^2=(N-1)\frac{2+6/d}{d^2}+\frac{2(N-1)(N-2)}{d^3}$;
# - for unit-norm values, $\mathbb E\|Wu_j-v_j\|^2=(N+1)/d$.
# ```
#
# ```{prf:proof}
# The key step: conditionally on $u_j$, each $X_i=u_i^\top u_j$ is $\mathcal N(0,\|u_j\|^2/d)$, and
# the $X_i$ are conditionally independent because the $u_i$ are. Every moment follows by first
# averaging over the other keys and then over $u_j$, using $d\|u_j\|^2\sim\chi^2_d$. The cross term
# in $\|(\|u_j\|^2-1)v_j+\tau_j\|^2$ vanishes because $\mathbb E[X_i\mid u_j]=0$. The details are in
# {prf:ref}`thm-crosstalk`.
# ```
#
# The recalled *vector* is bad once $N$ is comparable to $d$. Nearest-value recall only needs the
# right coordinate to be the largest one, and for one-hot values its success probability is exact.
#
# ```{prf:theorem} Exact success probability of nearest-value recall
# :label: ch1-onehot-recall
#
# With Gaussian keys and one-hot values, recall of a stored pair succeeds with probability
#
# $$
# P_{\rm hit}(N,d)=\mathbb E\big[\Phi(R)^{N-1}\big],\qquad R=\sqrt d\,\|u_j\|\sim\chi_d,
# $$
#
# where $\Phi$ is the standard normal distribution function and $\chi_d$ the chi distribution
# with $d$ degrees of freedom. Its failure probability is at most $(N-1)\,2^{-d/2-1}$, so it stays
# below $\delta$ whenever $d\ge2\log_2\frac{N-1}\delta-2$.
# ```
#
# ```{prf:proof}
# Recall of $j$ succeeds iff $X_i<\|u_j\|^2$ for every $i\ne j$. Given $u_j$, the $X_i$ are i.i.d.
# $\mathcal N(0,\|u_j\|^2/d)$, so each inequality holds with probability
# $\Phi(\|u_j\|^2/(\|u_j\|/\sqrt d))=\Phi(R)$, independently; average over $u_j$. The bound is a
# union bound with $\Phi(-r)\le\frac12e^{-r^2/2}$ and $\mathbb E e^{-R^2/2}=2^{-d/2}$
# ({prf:ref}`thm-onehot-recall`).
# ```
#
# What is exact and what is not: $P_{\rm hit}(N,d)$ is exact;
# `lca.associative_memory.recall_success_exact` evaluates the one-dimensional integral by
# quadrature to about $10^{-10}$. The popular shortcut
# $P_{\rm hit}\approx\Phi(\sqrt d)^{N-1}$, which pretends every key has norm exactly $1$, is an
# approximation, and {numref}`fig-ch1-capacity` below shows that it can be far off when $d$ is
# small.

# %% [markdown]
# ## Check it
#
# We draw $4000$ independent memories of $N=64$ Gaussian keys in $d=16$ with one-hot values and
# compare each quantity of {prf:ref}`ch1-crosstalk` with its exact value.

# %%
N, d, B = 64, 16, 4000
g = torch.Generator().manual_seed(7)
U = torch.randn((B, N, d), generator=g, dtype=torch.float64) / math.sqrt(d)
G = U @ U.transpose(1, 2)   # G[b, j, i] = u_i^T u_j = coordinate i of W u_j
off = ~torch.eye(N, dtype=torch.bool)


def estimates(G):
    """The Monte Carlo value of every quantity, from Gram matrices G [b, N, N]."""
    b = G.shape[0]
    signal = torch.diagonal(G, dim1=1, dim2=2)   # ||u_j||^2
    X = G[:, off].reshape(b, N, N - 1)           # overlaps X_i = u_i^T u_j, i != j
    c_sq = (X ** 2).sum(-1)                      # ||tau_j||^2 for one-hot values
    mse = (signal - 1) ** 2 + c_sq               # ||W u_j - v_j||^2
    x0, x1 = X[..., 0], X[..., 1]                # two overlaps of the same query
    hit = (G.argmax(-1) == torch.arange(N)).double()
    return [float(v) for v in (
        signal.mean(), signal.var(), X.mean(), (X ** 2).mean(), (X ** 4).mean(),
        (x0 * x1).mean(),
        (x0 ** 2 * x1 ** 2).mean() - (x0 ** 2).mean() * (x1 ** 2).mean(),
        c_sq.mean(), c_sq.var(), mse.mean(), hit.mean())]


# standard errors from 40 independent blocks of 100 memories (batch means)
blocks = torch.tensor([estimates(Gb) for Gb in G.split(B // 40)], dtype=torch.float64)
se = (blocks.std(0) / math.sqrt(blocks.shape[0])).tolist()
ex = associative_memory.crosstalk_moments(N, d)
names = ["E ||u_j||^2", "Var ||u_j||^2", "E X_i", "E X_i^2", "E X_i^4", "E X_i X_k",
         "Cov(X_i^2, X_k^2)", "E ||tau_j||^2", "Var ||tau_j||^2", "E ||W u_j - v_j||^2",
         "P(recall succeeds)"]
keys_in_order = ["signal_mean", "signal_var", "coef_mean", "coef_var", "coef_fourth",
                 None, "coef_sq_cov", "crosstalk_sq_mean", "crosstalk_sq_var", "mse"]
exact_values = [exact(ex[k] if k else 0.0, 12) for k in keys_in_order]
p_exact = associative_memory.recall_success_exact(N, d)   # quadrature, error < 1e-10
exact_values.append(f"{p_exact:.9f}")
mc = estimates(G)
z = [abs(m - float(e)) / s for m, e, s in zip(mc, exact_values, se)]
print(f"largest |Monte Carlo - exact| over the {len(names)} quantities: "
      f"{sig(max(z), 2)} standard errors")
glue("mem_check_max_z", float(sig(max(z), 2)), display=False)   # portable digits only

# %% tags=["hide-input", "hide-output"]
print(f"N = {N}, d = {d}, {B} memories ({B * N} recalls); Monte Carlo value +- standard error")
print(f"{'quantity':22s} {'Monte Carlo':>20s} {'exact':>14s}")
for name, m, s, e in zip(names, mc, se, exact_values):
    print(f"{name:22s} {pm(m, s):>20s} {e:>14s}")

# %% [markdown]
# Each Monte Carlo estimate agrees with its exact value within its standard error (the largest
# deviation is {glue:text}`mem_check_max_z` standard errors; the standard errors come from the
# spread of the estimates over $40$ independent blocks of $100$ memories; the table is folded
# under the cell). The covariance of the squared overlaps is tiny but positive: the overlaps of
# one query with different keys are uncorrelated, not independent, because they share the
# query's norm.
#
# ## Capacity with random keys
#
# Now the grid: $d\in\{2,4,8,16\}$ and $N/d$ from $1$ to $64$, with $20\,000$ recalls per point
# ({numref}`fig-ch1-capacity`; the plotted numbers are folded under the figure).

# %%
dims = [2, 4, 8, 16]
ratios = [1, 2, 4, 8, 16, 32, 64]
sim, th, table = {}, {}, []
for d in dims:
    s_acc, s_mse = [], []
    for r in ratios:
        N = r * d
        res = associative_memory.simulate_onehot_recall(N, d, n_recalls=20_000,
                                                        seed=100 * d + r)
        s_acc.append(res.accuracy)
        s_mse.append(res.mse)
        table.append((d, N, r, res.mse, res.mse_stderr,
                      associative_memory.recall_mse(N, d),
                      res.accuracy, res.memory_stderr,
                      associative_memory.recall_success_exact(N, d),
                      associative_memory.recall_success_gaussian(N, d)))
    sim[d] = {"ratio": ratios, "accuracy": s_acc, "mse": s_mse}
    fine = sorted({max(1, round(d * 2 ** (k / 8))) for k in range(0, 49)})
    th[d] = {"ratio": [n / d for n in fine],
             "accuracy": [associative_memory.recall_success_exact(n, d) for n in fine],
             "gaussian": [associative_memory.recall_success_gaussian(n, d)
                          for n in fine],
             "mse": [associative_memory.recall_mse(n, d) for n in fine]}

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-ch1-capacity", "caption": "Outer-product memory with Gaussian keys against $N/d$: simulation (points) and exact theory (solid lines). Left, the mean squared error of the recalled vector against $(N+1)/d$; right, nearest-value recall with one-hot values against the exact $P_{\\rm hit}(N,d)$ and the fixed-norm approximation $\\Phi(\\sqrt d)^{N-1}$ (dashed)."}, "image": {"alt": "Two panels against N over d, on a logarithmic axis, for d equal to 2, 4, 8 and 16. Left, on a logarithmic scale: the simulated mean squared errors lie on straight lines rising with N over d, almost the same line for every d. Right: recall accuracy falls with N over d, faster for small d; the points lie on the solid exact curves, while the dashed approximations deviate visibly for small d."}}
fig = associative_memory.plot_recall_capacity(sim, th)
plt.show()

# %% tags=["hide-input", "hide-output"]
# simulated values +- their standard error over the independent memories; the exact recall
# probability is a quadrature (absolute error below 1e-10), the fixed-norm approximation a
# closed form
print(f"{'d':>3s} {'N':>5s} {'N/d':>4s} | {'MSE sim':>13s} {'(N+1)/d':>8s} | "
      f"{'acc sim':>15s} {'exact':>11s} {'approx':>11s}")
for d, N, r, m_sim, m_se, m_th, a_sim, a_se, a_ex, a_g in table:
    print(f"{d:3d} {N:5d} {r:4d} | {pm(m_sim, m_se):>13s} {exact(m_th):>8s} | "
          f"{pm(a_sim, a_se):>15s} {a_ex:11.9f} {a_g:11.9f}")
dev = [abs(a_sim - a_ex) / a_se for *_, a_sim, a_se, a_ex, _ in table]
dev_g = [abs(a_sim - a_g) / a_se for *_, a_sim, a_se, _, a_g in table]
within = {k: sum(z < k for z in dev) for k in (2, 3)}
far_g = sum(z > 3 for z in dev_g)
print(f"|acc sim - exact| below 2 standard errors at {within[2]} of {len(dev)} points, below 3 at "
      f"{within[3]}; |acc sim - approx| above 3 standard errors at {far_g} of {len(dev)}")
glue("mem_grid_points", len(dev), display=False)
glue("mem_grid_within2", within[2], display=False)
glue("mem_grid_within3", within[3], display=False)
glue("mem_grid_far_approx", far_g, display=False)
glue("mem_grid_acc_16_64", round(associative_memory.recall_success_exact(1024, 16), 3), display=False)

# %% [markdown]
# Three things to read off. First, the vector error is $(N+1)/d$ and depends on $N$ and $d$
# almost only through $N/d$: the left panel's curves lie on top of each other. Second,
# nearest-value recall is far more forgiving: at $d=16$ and $N=64\,d$, where the vector error is
# about $64$, it still succeeds with probability {glue:text}`mem_grid_acc_16_64` (exact). The
# union bound $(N-1)\,2^{-d/2-1}$ of {prf:ref}`ch1-onehot-recall` is above $1$ there and says
# nothing at that point; what it does say is that the failure probability grows at most linearly
# in $N$ and falls exponentially in $d$, so that the number of pairs held at a fixed failure rate
# grows exponentially with $d$ (the capacity table below). Third, the simulated accuracies sit on
# the exact curves:
# at {glue:text}`mem_grid_within2` of the {glue:text}`mem_grid_points` points they differ by
# less than two standard errors, and at {glue:text}`mem_grid_within3` by less than three. (The
# standard errors come from the spread over the independent memories, because the $N$ recalls of
# one memory share its keys.) The fixed-norm approximation (dashed) misses by more than three
# standard errors at {glue:text}`mem_grid_far_approx` of the points: it is too optimistic for
# moderate $N$ and too pessimistic for very large $N$ at small $d$. A key that happens to be long
# is recalled more easily, and averaging over the key norm matters.
#
# The capacity at a target failure rate $\delta=0.01$, from the exact formula and from the
# closed-form bound of {prf:ref}`ch1-onehot-recall`:

# %% tags=["hide-output"]
print(f"{'d':>3s} {'N_max (exact)':>14s} {'N_max (bound)':>14s} {'ratio':>6s}")
factors = []
for d in [12, 16, 24, 32, 40]:
    n_exact = associative_memory.recall_capacity(d, 0.01)
    # the largest N with (N - 1) 2^(-d/2 - 1) <= 0.01
    n_bound = max(1, math.floor(1 + 0.01 * 2 ** (d / 2 + 1)))
    factors.append(n_exact / n_bound)
    print(f"{d:3d} {n_exact:14d} {n_bound:14d} {n_exact / n_bound:6.1f}")
# ratios of exact integers
glue("mem_cap_factor_lo", round(factors[0], 1), display=False)
glue("mem_cap_factor_hi", round(factors[-1], 1), display=False)

# %% [markdown]
# Both columns of the (folded) table grow exponentially with $d$. The bound is safe but conservative, by a factor that
# grows from {glue:text}`mem_cap_factor_lo` at $d=12$ to {glue:text}`mem_cap_factor_hi` at $d=40$.

# %% [markdown]
# ## Where it breaks
#
# {prf:ref}`ch1-crosstalk` and {prf:ref}`ch1-onehot-recall` assume *independent* keys. Embeddings
# of related tokens are not independent: they share directions. We keep every key's law exactly
# $\mathcal N(0,I/d)$ but let all keys share a common component,
# $u_i=\sqrt\gamma\,g_0+\sqrt{1-\gamma}\,g_i$ with one shared Gaussian vector $g_0$ and
# independent $g_1,\dots,g_N$ (`lca.associative_memory.correlated_keys`, whose argument `rho` is
# $\gamma$). Then $\mathbb E[u_i^\top u_j]=\gamma$ instead of $0$, and the independent-key formulas
# no longer apply.
# The mean squared error still has a closed form ({prf:ref}`prop-correlated-mse`),
#
# $$
# \mathbb E\|Wu_j-e_j\|^2=\frac2d+(N-1)\Big[\gamma^2\Big(1+\frac2d\Big)+\frac{1-\gamma^2}d\Big],
# $$
#
# which is $(N+1)/d$ at $\gamma=0$.

# %% tags=["hide-output"]
N, d = 64, 16
print(f"N = {N}, d = {d}; the independent-key theory predicts MSE "
      f"{exact(associative_memory.recall_mse(N, d))} and accuracy "
      f"{associative_memory.recall_success_exact(N, d):.9f}")
print(f"{'gamma':>5s} {'MSE sim':>13s} {'MSE exact':>10s} {'acc sim':>15s}"
      "   (+- standard error over memories)")
corr = {}
for rho in [0.0, 0.1, 0.3, 0.5, 0.7]:
    res = associative_memory.simulate_onehot_recall(N, d, n_recalls=20_000, seed=5,
                                                    keys="correlated", rho=rho)
    mse_exact = associative_memory.recall_mse_correlated(N, d, rho)
    corr[rho] = (res, mse_exact)
    print(f"{rho:5.2f} {pm(res.mse, res.mse_stderr):>13s} {exact(mse_exact, 6):>10s} "
          f"{pm(res.accuracy, res.memory_stderr):>15s}")
corr_z = max(abs(r.mse - m) / r.mse_stderr for r, m in corr.values())
glue("mem_corr_max_z", float(sig(corr_z, 2)), display=False)   # portable digits only
glue_pm("mem_corr_acc_0", corr[0.0][0].accuracy, corr[0.0][0].memory_stderr)
glue_pm("mem_corr_acc_7", corr[0.7][0].accuracy, corr[0.7][0].memory_stderr)

# %% [markdown]
# The simulated errors agree with the closed form (the largest deviation in the folded table is
# {glue:text}`mem_corr_max_z` standard errors), and the recall accuracy falls from
# {glue:text}`mem_corr_acc_0` with independent keys to {glue:text}`mem_corr_acc_7` at the
# strongest shared component of the table. The error grows by about $(N-1)\gamma^2$ over its
# independent-key value because every overlap now has mean $\gamma$, and nearest-value recall
# degrades because the mean margin $\mathbb E[\|u_j\|^2-u_i^\top u_j]$ shrinks from $1$ to
# $1-\gamma$. Similar tokens interfere. In the LCA task of the next chapters this interference is
# not a nuisance but the point: tokens with similar latent concepts *should* recall similar things.

# %% [markdown]
# ## Hopfield networks: two capacities
#
# The same construction with keys equal to values, $W=\sum_i\xi_i\xi_i^\top$ for patterns
# $\xi_i\in\{-1,1\}^d$, is the classical Hopfield network {cite}`hopfield1982neural`: a corrupted
# pattern $\zeta$ is cleaned up by $\zeta\leftarrow\operatorname{sign}(W\zeta)$, with zero
# self-connections (the diagonal of $W$ set to $0$) and, in the course's code, $\operatorname{sign}(0)=+1$. Its
# cross-talk is the cross-talk above. How many random patterns it holds depends on what "holds"
# means, and two different answers are quoted:
#
# - **Exact recall**, every one of the $d$ bits right. A given pattern is a fixed point of the
#   update with probability tending to $1$ as $d$ grows when $N$ stays below $d/(2\ln d)$, and
#   most patterns are not when $N$ exceeds it; asking that *every* pattern be a fixed point at once
#   lowers the scale to $d/(4\ln d)$ (McEliece, Posner, Rodemich and Venkatesh, 1987, *The capacity
#   of the Hopfield associative memory*). A probe with $t$ flipped bits starts with less signal:
#   the field of a bit drops from $d-1$ to about $d-2t$, and the scale for repairing the probe
#   exactly in one update becomes $(1-2t/d)^2\,d/(2\ln d)$.
#   {prf:ref}`prop-hopfield-one-step` gives the exact law of each bit after one update and a
#   guarantee of this order.
# - **Retrieval with a few wrong bits**, the famous "about $0.14\,d$" (Amit, Gutfreund and
#   Sompolinsky, 1985, *Storing infinite numbers of patterns in a spin-glass model of neural
#   networks*). In the limit $d\to\infty$ with $N$ below about $0.14\,d$, the dynamics, run until
#   nothing changes, has a stable state close to each pattern in which a small fraction of the bits
#   (under 2 percent) is wrong; above that load, the state near the pattern disappears. This
#   capacity tolerates errors, and it is a statement about large $d$.
#
# For large $d$, $d/(2\ln d)$ is far below $0.14\,d$, so the two must not be confused. We measure
# both at $d=100$. First, exact repair by one synchronous update from probes with $t=10$ flipped
# bits: for every $N$, $4000$ probes (one per stored pattern, in $\lceil 4000/N\rceil$ independent
# memories, at least $20$), with standard errors from the spread over the memories. Every field is
# an integer, so these counts are the same on every CPU.

# %%
d, flips, n_probes = 100, 10, 4000
AGS = 0.138   # Amit, Gutfreund and Sompolinsky's limit of N/d (errors allowed)
scale_probe = associative_memory.hopfield_exact_capacity(d, flips)
scale_fixed = associative_memory.hopfield_exact_capacity(d)
hop = {}
for N in [4, 6, 8, 10, 12, 14, 16, 20, 25, 30, 50, 100]:
    n_mem = max(20, -(-n_probes // N))
    r = associative_memory.simulate_hopfield_repair(N, d, flips, n_mem, seed=N)
    p_kept, p_flip = associative_memory.hopfield_bit_error(N, d, flips)
    hop[N] = {"sim": r,
              "indep": associative_memory.hopfield_repair_independent(N, d, flips),
              "bound": associative_memory.hopfield_repair_bound(N, d, flips),
              "indep_fixed": associative_memory.hopfield_repair_independent(N, d),
              "bits": ((d - flips) * p_kept + flips * p_flip) / d}
below_half = {key: min(N for N in hop if getattr(hop[N]["sim"], key) < 0.5)
              for key in ("one_step", "fixed_point")}
print(f"d = {d}, t = {flips}: one update repairs fewer than half of the probes from "
      f"N = {below_half['one_step']} on")

# %% tags=["hide-input", "hide-output"]
print(f"d = {d}, t = {flips}. Exact recall: (1 - 2t/d)^2 d / (2 ln d) = {scale_probe:.2f} "
      f"(repair of the probes), d / (2 ln d) = {scale_fixed:.2f} (the patterns themselves); "
      f"with errors: {AGS} d = {AGS * d:.1f}")
print(f"{n_probes} probes per N; simulation +- standard error over the memories; 'indep.' "
      "multiplies the exact probabilities of the d bits (an approximation), 'bound' is the "
      "union bound (a guarantee)")
print(f"{'':4s} | {'one update repairs the probe':^38s} | {'pattern is a fixed point':^26s} | "
      f"{'share of wrong bits after the update':^35s}")
print(f"{'N':>4s} | {'simulation':>16s} {'indep.':>10s} {'bound':>10s} | {'simulation':>16s} "
      f"{'indep.':>9s} | {'simulation':>22s} {'exact':>12s}")
for N, h in hop.items():
    r = h["sim"]
    print(f"{N:4d} | {pm(r.one_step, r.one_step_stderr):>16s} {exact(h['indep'], 4):>10s} "
          f"{exact(h['bound'], 4):>10s} | "
          f"{pm(r.fixed_point, r.fixed_point_stderr):>16s} {exact(h['indep_fixed'], 4):>9s} | "
          f"{pm(r.bit_error, r.bit_error_stderr):>22s} {exact(h['bits'], 4):>12s}")
indep_half = {key: min(N for N in hop if hop[N][key] < 0.5) for key in ("indep", "indep_fixed")}
z_indep = [(h["sim"].one_step - h["indep"]) / h["sim"].one_step_stderr for h in hop.values()
           if h["sim"].one_step_stderr > 0]
bound_half = max(N for N in hop if hop[N]["bound"] > 0.5)
z_bits = max(abs(h["sim"].bit_error - h["bits"]) / h["sim"].bit_error_stderr
             for h in hop.values() if h["sim"].bit_error_stderr > 0)
print(f"first N with success below one half: repair N = {below_half['one_step']}, fixed point "
      f"N = {below_half['fixed_point']} (indep.: N = {indep_half['indep']} and "
      f"N = {indep_half['indep_fixed']}); simulation above 'indep.' by up to "
      f"{max(z_indep):.0f} standard errors (never below it by more than "
      f"{max(0.0, -min(z_indep)):.0f}); bound above one half up to N = {bound_half}; "
      f"wrong bits within {z_bits:.1f} standard errors of their exact share")
glue("mem_hop_scale_probe", round(scale_probe, 1), display=False)
glue("mem_hop_scale_fixed", round(scale_fixed, 1), display=False)
glue("mem_hop_ags", round(AGS * d, 1), display=False)
glue("mem_hop_half_repair", below_half["one_step"], display=False)
glue("mem_hop_half_fixed", below_half["fixed_point"], display=False)
glue("mem_hop_indep_half_repair", indep_half["indep"], display=False)
glue("mem_hop_indep_half_fixed", indep_half["indep_fixed"], display=False)
glue("mem_hop_indep_z", round(max(z_indep)), display=False)
glue("mem_hop_bound_half", bound_half, display=False)
glue("mem_hop_bits_z", round(z_bits, 1), display=False)
for N in (6, 14):
    glue_pm(f"mem_hop_repair_{N}", hop[N]["sim"].one_step, hop[N]["sim"].one_step_stderr)
    glue_pm(f"mem_hop_fixed_{N}", hop[N]["sim"].fixed_point, hop[N]["sim"].fixed_point_stderr)
glue("mem_hop_bits_14", float(exact(hop[14]["bits"], 2)), display=False)

# %% [markdown]
# One update repairs a probe exactly with probability {glue:text}`mem_hop_repair_6` at $N=6$ but
# only {glue:text}`mem_hop_repair_14` at $N=14$, that is at $0.14\,d$; the repair probability first
# drops below one half at $N=$ {glue:text}`mem_hop_half_repair`. A stored pattern is a fixed point
# for longer ({glue:text}`mem_hop_fixed_14` at $N=14$, below one half from $N=$
# {glue:text}`mem_hop_half_fixed`), because it starts with the full signal. So at $0.14\,d$ exact
# recall has already failed for most probes. The exact-recall scales are
# $(1-2t/d)^2\,d/(2\ln d)=$ {glue:text}`mem_hop_scale_probe` and $d/(2\ln d)=$
# {glue:text}`mem_hop_scale_fixed`. They are asymptotic: below them the success probability tends
# to $1$ as $d$ grows, but slowly, and the corrections to the scale, of relative order
# $\ln\ln d/\ln d$, are large at $d=100$, so the measured crossings lie well above them. The
# finite-$d$ form of the same signal-to-noise argument is the "indep." column, which first drops
# below one half at $N=$ {glue:text}`mem_hop_indep_half_repair` (repair) and $N=$
# {glue:text}`mem_hop_indep_half_fixed` (fixed point), close to the simulation. Either way, exact
# recall at $d=100$ is near-certain only well below $0.14\,d$.
#
# The wrong bits themselves are few, and they follow their exact law (the field of every bit is a
# fixed signal plus a sum of $(N-1)(d-1)$ independent signs; the simulated share is within
# {glue:text}`mem_hop_bits_z` standard errors of it at every $N$): at $N=14$ a share of about
# {glue:text}`mem_hop_bits_14` of the bits is wrong after the update, yet most probes have at least
# one wrong bit. Multiplying the $d$ exact bit probabilities ("indep.") is only an approximation:
# it underestimates exact repair, by up to {glue:text}`mem_hop_indep_z` standard errors, because the
# fields of different bits share the same $N-1$ other patterns and so their errors are not
# independent. The union bound is a guarantee, but it stays above one half only up to $N=$
# {glue:text}`mem_hop_bound_half`.
#
# Second, retrieval with errors: from the same kind of probes ($t=d/10$ flipped bits), run the
# network with asynchronous updates (one bit at a time, in a random order, until a whole sweep
# changes nothing; the energy $-\tfrac12\zeta^\top W\zeta$ never increases, so this stops at a fixed
# point) and compare the final state with the pattern, at $d=100$ and $d=200$ and loads $N/d$ from
# $1/20$ to $3/10$, $2000$ probes per point.

# %%
conv = {}
for d in [100, 200]:
    for ratio in [0.05, 0.1, 0.14, 0.2, 0.3]:
        N = round(ratio * d)
        conv[d, ratio] = associative_memory.simulate_hopfield_retrieval(
            N, d, d // 10, -(-2000 // N), seed=d + N, tolerance=0.02)
near = conv[100, 0.1]
print(f"{len(conv)} loads simulated; at d = 100 and N = d/10, a share "
      f"{pm(near.near, near.near_stderr)} of the probes ends within 2% of its pattern")

# %% tags=["hide-input", "hide-output"]
print("asynchronous updates until no bit changes, from probes with d/10 flipped bits; "
      "2000 probes per point; mean +- standard error over the memories")
print(f"{'d':>4s} {'N':>4s} {'N/d':>5s} | {'share of wrong bits':>20s} {'<= 2% wrong':>15s} "
      f"{'exactly right':>15s}")
for (d, ratio), r in conv.items():
    print(f"{d:4d} {round(ratio * d):4d} {ratio:5.2f} | "
          f"{pm(r.bit_error, r.bit_error_stderr):>20s} "
          f"{pm(r.near, r.near_stderr):>15s} {pm(r.exact, r.exact_stderr):>15s}")
for d in [100, 200]:
    for ratio, tag in [(0.1, "10"), (0.14, "14"), (0.2, "20")]:
        r = conv[d, ratio]
        glue_pm(f"mem_conv_near_{d}_{tag}", r.near, r.near_stderr)
        glue_pm(f"mem_conv_exact_{d}_{tag}", r.exact, r.exact_stderr)
        glue_pm(f"mem_conv_bits_{d}_{tag}", r.bit_error, r.bit_error_stderr)

# %% [markdown]
# Retrieval with a few wrong bits survives beyond exact recall. At $N=d/10$ almost every probe
# ends within 2 percent of its pattern ({glue:text}`mem_conv_near_100_10` at $d=100$,
# {glue:text}`mem_conv_near_200_10` at $d=200$), while the share that ends *exactly* on it already
# falls as $d$ doubles ({glue:text}`mem_conv_exact_100_10` and {glue:text}`mem_conv_exact_200_10`),
# as expected from the exact-recall scale $d/(2\ln d)$, which grows more slowly than $d$. At
# $N=0.14\,d$ most probes still end within 2 percent ({glue:text}`mem_conv_near_100_14` and
# {glue:text}`mem_conv_near_200_14`), and the share that ends exactly on the pattern keeps falling
# with $d$ ({glue:text}`mem_conv_exact_100_14` and {glue:text}`mem_conv_exact_200_14`). At
# $N=d/5$ retrieval breaks down, and faster at the larger $d$: the share within 2 percent falls
# from {glue:text}`mem_conv_near_100_20` to {glue:text}`mem_conv_near_200_20` as $d$ doubles, and
# the mean share of wrong bits grows from
# {glue:text}`mem_conv_bits_100_20` to {glue:text}`mem_conv_bits_200_20`. At these sizes the
# transition is broad; the sharp one, just below $0.14\,d$, is a limit for $d\to\infty$ that this
# small experiment illustrates but does not reach (the load $0.14\,d$ itself lies at its edge).
#
# ## Attention: the modern Hopfield network
#
# Attention reads a memory in a different way. For a query $q$ it returns
# $\sum_i\operatorname{softmax}(\beta\,u^\top q)_i\,v_i$: the raw scores $u_i^\top q$ that the
# linear memory uses as weights are replaced by softmax weights. Ramsauer et al.
# {cite}`ramsauer2021hopfield` showed that this is one update of a *modern* Hopfield network, and
# that for patterns that are well separated its capacity grows exponentially with $d$. As
# $\beta\to\infty$, if one key $u_{i^*}$ has a strictly larger score $u_{i^*}^\top q$ than every
# other key, the softmax weights concentrate on it and the read-out tends to its value $v_{i^*}$
# ({prf:ref}`prop-softmax-recall`); with a tie for the largest score it tends to the mean of the
# tied values instead. The limit is the value that nearest-value recall picks when the values are
# one-hot or orthonormal (then $v_i^\top Wq=u_i^\top q$); for other values the two rules can pick
# different pairs. Two small computations: the Hopfield probes above ($d=100$, $t=10$) repaired by
# the sign of one softmax update with $\beta=1$, up to $N=10\,d$; then $N=128$ pairs with Gaussian
# keys and values in $d=32$.

# %% tags=["hide-output"]
d, flips = 100, 10
print(f"d = {d}, probes with {flips} flipped bits, one update: "
      "probes restored exactly (counts)")
print(f"{'N':>5s} {'probes':>7s} {'classical sign(Wx)':>19s} "
      f"{'softmax, beta = 1':>18s}")
modern = {}
for N in [14, 100, 1000]:
    n_mem = max(4, -(-4000 // N))
    r = associative_memory.simulate_hopfield_repair(N, d, flips, n_mem, seed=10_000 + N,
                                                    beta=1.0)
    n = r.n_probes
    modern[N] = (round(r.softmax * n), n, round(r.one_step * n))
    print(f"{N:5d} {n:7d} {round(r.one_step * n):19d} {round(r.softmax * n):18d}")
glue("mem_modern_restored", modern[1000][0], display=False)
glue("mem_modern_probes", modern[1000][1], display=False)
glue("mem_modern_classical", modern[1000][2], display=False)

# %% tags=["hide-output"]
N, d, n_mem = 128, 32, 20
betas = [1, 4, 16, 64]
err = {"linear memory W u_j": [], **{f"softmax, beta = {b}": [] for b in betas}}
for t in range(n_mem):
    keys = associative_memory.random_keys(N, d, seed=1000 + t)
    values = associative_memory.random_keys(N, d, seed=2000 + t)
    W = associative_memory.store(keys, values)
    outs = {"linear memory W u_j": associative_memory.recall(W, keys)}
    for b in betas:
        out = associative_memory.softmax_recall(keys, values, keys, b)
        outs[f"softmax, beta = {b}"] = out
    for name, out in outs.items():
        rel = ((out - values) ** 2).sum(1).mean() / (values ** 2).sum(1).mean()
        err[name].append(float(rel))
print(f"N = {N} pairs in d = {d}, {n_mem} memories: mean ||read-out - v_j||^2 / "
      "mean ||v_j||^2, mean +- standard error over the memories")
for name, e in err.items():
    e = torch.tensor(e, dtype=torch.float64)
    glue_pm("mem_soft_" + name.split()[-1].replace("u_j", "linear"), e.mean(),
            e.std() / math.sqrt(n_mem))
    print(f"{name:38s} {pm(e.mean(), e.std() / math.sqrt(n_mem)):>18s}")
print(f"{'theory for the linear memory, (N+1)/d':38s} "
      f"{exact(associative_memory.recall_mse(N, d)):>18s}")
glue("mem_soft_theory", associative_memory.recall_mse(N, d), display=False)   # exact

# %% [markdown]
# At $N=1000=10\,d$ the softmax update restores {glue:text}`mem_modern_restored` of the
# {glue:text}`mem_modern_probes` probes and the classical update {glue:text}`mem_modern_classical`:
# the probe's overlap $d-2t$ with its own pattern is far larger than its overlaps with the other
# patterns (of typical size $\sqrt d$), so with $\beta=1$ the softmax weights sit almost entirely
# on the right pattern. For $N=128$ Gaussian pairs in $d=32$ (second folded table) the linear
# read-out error, relative to the size of the values, is {glue:text}`mem_soft_linear`, close to
# $(N+1)/d=$ {glue:text}`mem_soft_theory` (the values are random here, so the formula holds on
# average over their norms), while the softmax read-out error falls from
# {glue:text}`mem_soft_1` at $\beta=1$ to {glue:text}`mem_soft_64` at $\beta=64$: it becomes
# nearly exact once $\beta$ is large enough to separate the right key from the others. The
# one-layer transformer of this course has both parts: a softmax attention that *selects* context tokens, and a value matrix $W_V$ that is
# a linear outer-product memory {cite}`bietti2023birth`, {cite}`cabannes2024scaling`.

# %% [markdown]
# ## Explore
#
# Move $N$ and $d$ and watch the two score distributions of {prf:ref}`ch1-onehot-recall`: the
# signal $\|u_j\|^2$ (its exact law is $\chi^2_d/d$) and the overlaps $u_i^\top u_j$ (close to
# $\mathcal N(0,1/d)$; exactly, a normal with a random variance). Recall fails when some overlap
# beats the signal; the more overlaps there are (larger $N$), the further into the tail the largest
# one reaches.

# %%
def draw_crosstalk(N=64, d=16):
    trials = max(1, 4000 // N)
    gen = torch.Generator().manual_seed(N * 1000 + d)
    U = torch.randn((trials, N, d), generator=gen, dtype=torch.float64) / math.sqrt(d)
    G = U @ U.transpose(1, 2)
    sig = torch.diagonal(G, dim1=1, dim2=2).flatten()
    offd = G[:, ~torch.eye(N, dtype=torch.bool)].flatten()[:40_000]
    acc = float((G.argmax(-1) == torch.arange(N)).double().mean())
    lo = float(min(sig.min(), offd.min()))
    hi = float(max(sig.max(), offd.max()))
    grid = torch.linspace(lo, hi, 400, dtype=torch.float64)
    pos = grid.clamp(min=1e-12)
    log_chi2 = ((d / 2 - 1) * torch.log(d * pos) - d * pos / 2 - (d / 2) * math.log(2)
                - math.lgamma(d / 2) + math.log(d))
    sig_dens = torch.where(grid > 0, torch.exp(log_chi2), torch.zeros_like(grid))
    coef_dens = torch.exp(-grid ** 2 * d / 2) * math.sqrt(d / (2 * math.pi))
    return associative_memory.plot_crosstalk_hist(
        sig, offd, d, grid, sig_dens, coef_dens,
        title=f"$N={N}$, $d={d}$: recall {acc:.3f} simulated, "
              f"{associative_memory.recall_success_exact(N, d):.3f} exact")


explorer(draw_crosstalk, title="Signal vs cross-talk",
         N=widgets.IntSlider(value=64, min=2, max=1024, step=2, description="N"),
         d=widgets.IntSlider(value=16, min=2, max=64, step=1, description="d"))

# %% [markdown]
# ## Exercises
#
# ```{exercise} Isolate the cross-talk
# :label: ex-mem-crosstalk
#
# Write `crosstalk(keys, values)` returning an `[N, d']` tensor whose row $j$ is
# $\tau_j=\sum_{i\ne j}(u_i^\top u_j)\,v_i$, for `keys [N, d]` and `values [N, d']`, without a
# Python loop. The checker compares it with the course's version on keys and values of several
# shapes, square and with $N>d$. Replace the `raise NotImplementedError` and run the cell. Then
# check on random keys that `recall(store(keys, values), keys)` equals $\|u_j\|^2v_j+\tau_j$.
# ```

# %% tags=["exercise-stub"]
def crosstalk(keys, values):
    raise NotImplementedError  # your code here


check_crosstalk(crosstalk)

# %% [markdown]
# ```{solution-start} ex-mem-crosstalk
# :class: dropdown
# ```
#
# The Gram matrix $G=UU^\top$ of the keys (rows $u_i^\top$ of $U$) holds all overlaps,
# $G_{ji}=u_i^\top u_j$. Row $j$ of $GY$, with the values as the rows of $Y$, is
# $\sum_iG_{ji}v_i=\|u_j\|^2v_j+\tau_j$, so removing the diagonal of $G$ first leaves exactly
# $\tau_j$. Forgetting to remove the diagonal adds the signal $\|u_j\|^2v_j$ back in; subtracting
# the identity instead of the diagonal removes $v_j$ rather than $\|u_j\|^2v_j$, which is right
# only for unit-norm keys. The reference code is in the cell below, checked by the same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def crosstalk_reference(keys, values):
    G = keys @ keys.T
    return (G - torch.diag(torch.diagonal(G))) @ values


check_crosstalk(crosstalk_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} A capacity bound from a Chernoff argument
# :label: ex-mem-bound
#
# Prove that for Gaussian keys and one-hot values the probability that nearest-value recall of a
# given pair fails is at most $(N-1)\,2^{-d/2-1}$. Hints: write the failure event as a union over
# $i\ne j$; show $\Phi(-r)\le\frac12e^{-r^2/2}$ for $r\ge0$; compute $\mathbb E[e^{-R^2/2}]$ for
# $R^2\sim\chi^2_d$.
# ```
#
# ```{solution} ex-mem-bound
# :class: dropdown
#
# Failure means $X_i\ge\|u_j\|^2$ for some $i\ne j$, so its probability is at most
# $(N-1)P(X_1\ge\|u_j\|^2)=(N-1)\mathbb E[\Phi(-R)]$ by the conditional argument of
# {prf:ref}`ch1-onehot-recall`. Substituting $t\mapsto r+t$,
# $\Phi(-r)=\int_0^\infty\phi(r+t)dt=e^{-r^2/2}\int_0^\infty\phi(t)e^{-rt}dt\le\frac12e^{-r^2/2}$.
# The moment generating function of $\chi^2_d$ is $(1-2s)^{-d/2}$; at $s=-\frac12$ it is
# $2^{-d/2}$. Multiply: $(N-1)\cdot\frac12\cdot2^{-d/2}$. Using $N$ instead of $N-1$ counts the
# right key as a competitor.
# ```

# %% [markdown]
# ```{exercise} A sharper bound from the Mills ratio
# :label: ex-mem-mills
#
# The factor $\frac12e^{-r^2/2}$ throws away the decay of the normal tail. Prove the Mills-ratio
# inequality $\Phi(-r)\le\phi(r)/r$ for $r>0$ and deduce that, for $d\ge2$, nearest-value recall
# of a given pair fails with probability at most
#
# $$
# (N-1)\,\frac{\Gamma\big(\frac{d-1}2\big)}{\sqrt{2\pi}\,2^{d/2}\,\Gamma\big(\frac d2\big)}.
# $$
#
# Then write `recall_bound_mills(N, d)` returning this bound as a float (`math.lgamma` avoids
# overflow for large $d$). The checker compares it with the course's version at several $N$ and
# $d$ where the bound is below $1$. Replace the `raise NotImplementedError` and run the cell. For
# which $d$ is this bound smaller than the Chernoff bound of {ref}`ex-mem-bound`, and why does it
# fail at $d=1$?
# ```

# %% tags=["exercise-stub"]
def recall_bound_mills(N, d):
    raise NotImplementedError  # your code here


check_recall_bound_mills(recall_bound_mills)

# %% [markdown]
# ```{solution-start} ex-mem-mills
# :class: dropdown
# ```
#
# For $t\ge r>0$ we have $t/r\ge1$, so
# $\Phi(-r)=\int_r^\infty\phi(t)\,dt\le\int_r^\infty\frac tr\phi(t)\,dt=\frac{\phi(r)}r$,
# because $-\phi'(t)=t\phi(t)$. As in {ref}`ex-mem-bound`, the failure probability is at most
# $(N-1)\,\mathbb E[\Phi(-R)]\le(N-1)\,\mathbb E[\phi(R)/R]$ with $R\sim\chi_d$, whose density is
# $r^{d-1}e^{-r^2/2}/(2^{d/2-1}\Gamma(\frac d2))$. Then
#
# $$
# \begin{aligned}
# \mathbb E\Big[\frac{\phi(R)}R\Big]
# &=\frac1{\sqrt{2\pi}\,2^{d/2-1}\Gamma(\frac d2)}\int_0^\infty r^{d-2}e^{-r^2}\,dr\\
# &=\frac{\Gamma(\frac{d-1}2)}{\sqrt{2\pi}\,2^{d/2}\,\Gamma(\frac d2)},
# \end{aligned}
# $$
#
# using $\int_0^\infty r^{d-2}e^{-r^2}dr=\frac12\Gamma(\frac{d-1}2)$ (substitute $s=r^2$). The
# integral is finite only for $d\ge2$: at $d=1$ the factor $1/R$ is not integrable near $0$, where
# the Mills ratio is a poor bound. Dividing by the Chernoff bound's $\frac12\,2^{-d/2}$ gives the
# ratio $\sqrt{2/\pi}\,\Gamma(\frac{d-1}2)/\Gamma(\frac d2)$, which is above $1$ at $d=2$ and
# below $1$ from $d=3$ on, decreasing like $2/\sqrt{\pi d}$. At a fixed failure rate the
# guaranteed number of pairs therefore grows by a factor of order $\sqrt d$. Common mistakes:
# dropping the $1/\sqrt{2\pi}$ of $\phi$, swapping the two Gamma functions, and $N$ instead of
# $N-1$. The reference code is in the cell below, checked by the same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def recall_bound_mills_reference(N, d):
    log_pair = (math.lgamma((d - 1) / 2) - math.lgamma(d / 2)
                - 0.5 * math.log(2 * math.pi) - (d / 2) * math.log(2.0))
    return min(1.0, (N - 1) * math.exp(log_pair))


check_recall_bound_mills(recall_bound_mills_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Nearest-value recall beyond the dimension
# :label: ex-mem-rank
#
# {prf:ref}`ch1-orthonormal-recall` shows that no matrix recalls more than $d$ one-hot values
# exactly. Show that nearest-value recall of one-hot values, on the contrary, can succeed for all
# $N$ pairs for *every* $N$, already in $d=2$: construct the keys, and compute the margin
# $\min_j\big(\|u_j\|^2-\max_{i\ne j}u_i^\top u_j\big)$ of your construction. What happens if one
# of your keys is made twice as long? Why does this not contradict the capacity of Gaussian keys?
# ```
#
# ```{solution} ex-mem-rank
# :class: dropdown
#
# Take $N$ unit vectors equally spaced on the circle, $u_k=(\cos\frac{2\pi k}N,\sin\frac{2\pi
# k}N)$. With one-hot values, coordinate $i$ of $Wu_j$ is $u_i^\top u_j=\cos\frac{2\pi(i-j)}N$,
# which equals $1=\|u_j\|^2$ for $i=j$ and is at most $\cos\frac{2\pi}N<1$ otherwise (for
# $N\ge2$). So the largest coordinate is always the right one, and the margin is
# $1-\cos\frac{2\pi}N=2\sin^2\frac\pi N\approx2\pi^2/N^2$. The margin vanishes quadratically in
# $N$, so a perturbation of the keys or the query of size about $1/N^2$ already causes errors.
# Doubling the length of key $u_k$ doubles its overlap $2\cos\frac{2\pi}N$ with each neighbour
# $u_{k\pm1}$, which exceeds $\|u_{k\pm1}\|^2=1$ as soon as $\cos\frac{2\pi}N>\frac12$, that is
# for $N\ge7$: the neighbours are then recalled as $k$. The equal norms are essential, as for
# Gaussian keys, where a long key wins more often. Random keys have no such careful arrangement:
# their overlaps are of size $1/\sqrt d$ in random directions, which is why their capacity at a
# fixed failure rate, though exponential in $d$, is finite.
# ```

# %% [markdown]
# ```{exercise} One-step Hopfield repair
# :label: ex-mem-hopfield
#
# Write `repair_fraction(patterns, probes)` for $\pm1$ `patterns [N, d]` and `probes [N, d]`,
# where row $j$ of `probes` is a corrupted copy of pattern $\xi_j$. It applies one synchronous
# update $x\mapsto\operatorname{sign}(Wx)$ of the Hopfield network
# $W=\sum_i\xi_i\xi_i^\top$ with zero self-connections (the diagonal of $W$ set to $0$) and
# $\operatorname{sign}(0)=+1$, and returns the fraction of the probes restored exactly, every bit
# right, as a float. The checker compares it with the course's version on memories of several
# sizes, some with ties in the field. Replace the `raise NotImplementedError` and run the cell.
# Then measure the fraction at $d=100$ with $t=10$ flipped bits for $N=6$, $14$ (that is
# $0.14\,d$) and $30$, on probes from `associative_memory.hopfield_probes(N, 100, 10, seed=1)`
# (take `[0]` of each of the two tensors it returns), and compare with the Hopfield table above.
# ```

# %% tags=["exercise-stub"]
def repair_fraction(patterns, probes):
    raise NotImplementedError  # your code here


check_repair_fraction(repair_fraction)

# %% [markdown]
# ```{solution-start} ex-mem-hopfield
# :class: dropdown
# ```
#
# With the patterns as the rows of $P$, $W=P^\top P-N I_d$: the diagonal of $P^\top P$ is
# $\sum_i\xi_{ik}^2=N$. For the probes as rows of $X$, the fields are the rows of $XW$ ($W$ is
# symmetric); `torch.where(h >= 0, 1.0, -1.0)` implements $\operatorname{sign}$ with
# $\operatorname{sign}(0)=+1$, and a probe counts when all $d$ of its bits equal the pattern's.
# Three common mistakes: keeping the diagonal, which adds $Nx_k$ to the field of bit $k$ and so
# holds on to the probe's wrong bits; `torch.sign`, which returns $0$ on a tie; and the mean over
# all bits, which is the share of right bits, not of repaired probes. A single memory of $N$
# probes gives a noisy fraction: at $N=14$ the table above finds
# {glue:text}`mem_hop_repair_14` over many memories, far from certain repair at the load
# $0.14\,d$, where the famous capacity only promises retrieval with a few wrong bits after
# convergence. The reference code is in the cell below, checked by the same checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def repair_fraction_reference(patterns, probes):
    N, d = patterns.shape
    W = patterns.T @ patterns - N * torch.eye(d, dtype=patterns.dtype)
    repaired = torch.where(probes @ W >= 0, 1.0, -1.0)
    return float((repaired == patterns).all(dim=1).double().mean())


check_repair_fraction(repair_fraction_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ```{exercise} Softmax read-out
# :label: ex-mem-softmax
#
# Write `softmax_recall(keys, values, queries, beta)` returning, for each query $q$ (the rows of
# `queries [n, d]`), $\sum_i\operatorname{softmax}(\beta\,u^\top q)_iv_i$, an `[n, d']` tensor.
# The checker compares it with the course's version at several shapes and at
# $\beta\in\{0,1,8,30\}$. Replace the `raise NotImplementedError` and run the cell. Which
# dimension must the softmax normalise over? What does your function return at $\beta=0$?
# ```

# %% tags=["exercise-stub"]
def softmax_recall(keys, values, queries, beta):
    raise NotImplementedError  # your code here


check_softmax_recall(softmax_recall)

# %% [markdown]
# ```{solution-start} ex-mem-softmax
# :class: dropdown
# ```
#
# The scores of all queries against all keys form the `[n, N]` matrix `queries @ keys.T`, whose
# entry $(k,i)$ is $u_i^\top q_k$. The softmax runs over the $N$ stored pairs, dimension $1$,
# not over the queries; the weighted sum of the values is then a matrix product with `values`.
# Normalising over dimension $0$, or leaving out the softmax (the linear memory's raw scores),
# are the common mistakes. At $\beta=0$ every weight is $1/N$ and the read-out is the mean of the
# values, whatever the query. The reference code is in the cell below, checked by the same
# checker.

# %% tags=["exercise-reference"] jupyter={"source_hidden": true, "outputs_hidden": true} cellView="form"
def softmax_recall_reference(keys, values, queries, beta):
    return torch.softmax(beta * queries @ keys.T, dim=1) @ values


check_softmax_recall(softmax_recall_reference)

# %% [markdown]
# ```{solution-end}
# ```

# %% [markdown]
# ## Summary
#
# A single matrix $W=\sum_iv_iu_i^\top$ stores associations: exactly for up to $d$ orthonormal
# keys, approximately beyond. With random keys the recalled vector carries cross-talk whose size we
# know exactly, $\mathbb E\|Wu_j-v_j\|^2=(N+1)/d$, while reading out the nearest stored value
# succeeds with the exact probability $\mathbb E[\Phi(R)^{N-1}]$, and the number of pairs it
# holds at a fixed failure rate grows exponentially with $d$. "Capacity" needs a criterion: the
# classical Hopfield network recalls random patterns exactly only up to about $d/(2\ln d)$ of them,
# and with a few wrong bits up to about $0.14\,d$, both as $d$ grows. The lesson for context
# hijacking is the where-it-breaks experiment: a memory adds to its read-out the value of every key
# its cue overlaps with, so keys that share directions interfere and the read-out degrades as the
# shared component grows. The next chapter builds the task in which the cues are context tokens and
# the overlaps come from shared latent concepts.
