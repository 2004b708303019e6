"""One function per figure, each returning a matplotlib Figure; no computation beyond layout.
Colours come from COLORS (Okabe-Ito, colour-blind safe)."""

from __future__ import annotations

import matplotlib.pyplot as plt

# ==== section: shared ====
# (owned by the shared work; add functions between this marker and the next)

# Okabe-Ito palette: distinguishable with the common forms of colour blindness.
COLORS = {
    "blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "vermillion": "#D55E00",
    "sky": "#56B4E9", "purple": "#CC79A7", "yellow": "#F0E442", "black": "#000000",
}
CYCLE = [COLORS[k] for k in ("blue", "orange", "green", "vermillion", "sky", "purple", "black")]
SEQUENTIAL_CMAP = "viridis"
DIVERGING_CMAP = "RdBu_r"


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.6,
               **kwargs):
    """A figure with ``nrows x ncols`` axes in the course's style; returns ``(fig, axes)``."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows),
                             constrained_layout=True, **kwargs)
    for ax in (axes.flat if hasattr(axes, "flat") else [axes]):
        ax.set_prop_cycle(color=CYCLE)
        ax.grid(alpha=0.3)
    return fig, axes


# ==== section: hijacking (chapter 0) ====
# (owned by the hijacking (chapter 0) work; add functions between this marker and the next)

_SCHEME_STYLE = {
    "generic": ("blue", "o", "generic: Do not think of {false}."),
    "relation": ("vermillion", "s", "relation: true sentence naming {false}"),
    "associated": ("green", "^", "associated: a city of the {false} language"),
    "generic_reverse": ("blue", "o", "generic: Do not think of {true}."),
    "relation_reverse": ("vermillion", "s", "relation: true sentence naming {true}"),
    "associated_reverse": ("green", "^", "associated: a city of the {true} language"),
}


def plot_efficacy_curves(curves: dict, metric: str = "efficacy", model_name: str = "",
                         ylim=(0.0, 1.0)):
    """Efficacy score against the number of prepended sentences, hijacking schemes on the left
    and reverse schemes on the right (the paper's Fig. 2 and Figs C.1, C.3, C.4 in one figure).

    Args:
        curves: scheme name -> the dict returned by ``lca.hijack.efficacy_curve``.
        metric: which entry of each curve to draw (``"efficacy"``, ``"efficacy_first_token"``,
            ``"top1_false"``...).
        model_name: shown in the title.
    """
    fig, axes = new_figure(2, 1, width=4.8, height=3.6, sharey=True)
    for ax, reverse in zip(axes, (False, True)):
        for scheme, curve in curves.items():
            if scheme.endswith("_reverse") != reverse:
                continue
            color, marker, label = _SCHEME_STYLE.get(scheme, ("black", "x", scheme))
            ax.plot(curve["k"], curve[metric], color=COLORS[color], marker=marker,
                    label=f"{label} (n = {curve['n']})")
        ax.set_xlabel("number of prepended sentences k")
        ks = sorted({k for c in curves.values() for k in c["k"]})
        ax.set_xticks(ks)
        ax.set_ylim(*ylim)
        ax.set_title("reverse hijacking (true target in the context)" if reverse
                     else "hijacking (false target in the context)", fontsize=10)
        ax.legend(fontsize=7, loc="best")
    axes[0].set_ylabel({"efficacy": "efficacy score", "efficacy_first_token":
                        "efficacy score (first token)", "top1_false": "top-1 hijack rate"}
                       .get(metric, metric) + " (share of cases)")
    fig.suptitle(f"Efficacy score vs number of prepends{' - ' + model_name if model_name else ''}"
                 , fontsize=11)
    return fig


def plot_hijack_margins(labels, margins, title: str = ""):
    """Horizontal bars of the log-probability margin log P(false) - log P(true) per fact (mean
    over the targets' tokens, in nats): bars right of zero are hijacked facts."""
    margins = [float(v) for v in margins]
    labels = list(labels)
    fig, ax = new_figure(1, 1, width=6.4, height=0.22 * len(labels) + 1.2)
    colors = [COLORS["vermillion"] if v > 0 else COLORS["blue"] for v in margins]
    ax.barh(range(len(margins)), margins, color=colors)
    ax.axvline(0.0, color=COLORS["black"], lw=0.8)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("margin: mean log P(false) - mean log P(true) (nats)")
    hijacked = sum(v > 0 for v in margins)
    ax.set_title(f"{title} - {hijacked} of {len(margins)} facts hijacked (margin > 0)"
                 if title else f"{hijacked} of {len(margins)} facts hijacked (margin > 0)",
                 fontsize=10)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=COLORS["vermillion"], label="false target more likely"),
                       Patch(color=COLORS["blue"], label="true target more likely")],
              fontsize=7, loc="lower right")
    return fig



def plot_example_margins(labels, margins_by_k: dict, title: str = ""):
    """Grouped horizontal bars: for each example prompt, the margin log P(false) - log P(true)
    (mean over the targets' tokens, nats) with k = 0, 1, 2, ... hijacking sentences prepended.
    ``margins_by_k`` maps k to a list of margins, one per label. Bars right of zero are flips."""
    labels = list(labels)
    ks = list(margins_by_k)
    if not ks or any(len(margins_by_k[k]) != len(labels) for k in ks):
        raise ValueError("margins_by_k must map each k to one margin per label")
    fig, ax = new_figure(1, 1, width=7.0, height=0.45 * len(labels) + 1.4)
    height = 0.8 / len(ks)
    for j, k in enumerate(ks):
        ys = [i + (j - (len(ks) - 1) / 2) * height for i in range(len(labels))]
        ax.barh(ys, [float(v) for v in margins_by_k[k]], height=height, color=CYCLE[j % len(CYCLE)],
                label=f"k = {k} sentence{'s' if k != 1 else ''} prepended")
    ax.axvline(0.0, color=COLORS["black"], lw=0.8)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("margin: mean log P(false target) - mean log P(true target) (nats)")
    ax.set_title(title or "Does the added sentence flip the answer? (right of 0: flipped)",
                 fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return fig


# ==== section: associative-memory (chapter 1) ====
# (owned by the associative-memory (chapter 1) work; add functions between this marker and the next)


def plot_recall_scores(panels: dict, title: str = "Recall W u_j with one-hot values"):
    """Heat maps of recall matrices, one panel per entry of ``panels`` (label -> ``Tensor[N, N]``
    whose row j is W u_j, so entry (j, i) is u_i^T u_j). A perfect memory shows the identity."""
    import numpy as np
    fig, axes = new_figure(ncols=len(panels), width=3.6, height=3.4)
    axes = np.atleast_1d(axes)
    vmax = max(float(abs(p).max()) for p in panels.values())
    im = None
    for ax, (label, M) in zip(axes, panels.items()):
        im = ax.imshow(M.detach().cpu().numpy(), cmap=DIVERGING_CMAP, vmin=-vmax, vmax=vmax,
                       interpolation="nearest")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("stored value i")
        ax.set_ylabel("query key j")
        ax.grid(False)
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="coordinate i of W u_j")
    fig.suptitle(title)
    return fig


def plot_recall_capacity(sim: dict, theory: dict, title: str = "Outer-product memory with "
                         "Gaussian keys: simulation (points) vs exact theory (lines)"):
    """Two panels against N/d (log scale), one colour per key dimension d.

    Args:
        sim: d -> dict with arrays ``ratio`` (N/d), ``accuracy``, ``mse`` (Monte Carlo).
        theory: d -> dict with ``ratio``, ``accuracy`` (exact), ``gaussian`` (fixed-norm
            approximation) and ``mse`` ((N + 1)/d).
    Left: mean squared recall error ||W u_j - v_j||^2. Right: argmax recall accuracy.
    """
    fig, (ax1, ax2) = new_figure(ncols=2, width=5.2, height=3.8)
    for k, d in enumerate(sorted(theory)):
        c = CYCLE[k % len(CYCLE)]
        t, s = theory[d], sim.get(d)
        ax1.plot(t["ratio"], t["mse"], color=c, lw=1.5, label=f"d = {d}: (N+1)/d")
        ax2.plot(t["ratio"], t["accuracy"], color=c, lw=1.5, label=f"d = {d}: exact")
        ax2.plot(t["ratio"], t["gaussian"], color=c, lw=1.0, ls="--")
        if s is not None:
            ax1.plot(s["ratio"], s["mse"], "o", color=c, ms=4)
            ax2.plot(s["ratio"], s["accuracy"], "o", color=c, ms=4)
    ax2.plot([], [], "k--", lw=1.0, label="Gaussian approx.")
    ax2.plot([], [], "ko", ms=4, label="simulation")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("stored pairs per key dimension, N / d")
    ax1.set_yscale("log")
    ax1.set_ylabel("mean squared recall error")
    ax1.set_title("vector recall: error grows like N/d", fontsize=10)
    ax2.set_ylabel("argmax recall accuracy")
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_title("nearest-value recall (one-hot values)", fontsize=10)
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8, loc="lower left")
    fig.suptitle(title)
    return fig


def plot_crosstalk_hist(signal, coefs, d: int, grid=None, signal_density=None,
                        coef_density=None, title: str | None = None):
    """Histograms of the signal ||u_j||^2 and the cross-talk coefficients u_i^T u_j (i != j), with
    optional density curves evaluated on ``grid`` (all 1-d arrays or tensors)."""
    import numpy as np
    fig, ax = new_figure(width=6.0, height=3.6)
    signal = np.asarray(signal, dtype=float)
    coefs = np.asarray(coefs, dtype=float)
    lo = min(signal.min(), coefs.min())
    hi = max(signal.max(), coefs.max())
    bins = np.linspace(lo, hi, 80)
    ax.hist(coefs, bins=bins, density=True, alpha=0.5, color=COLORS["vermillion"],
            label="cross-talk $u_i^T u_j$, $i \\ne j$")
    ax.hist(signal, bins=bins, density=True, alpha=0.5, color=COLORS["blue"],
            label="signal $\\|u_j\\|^2$")
    if grid is not None:
        grid = np.asarray(grid, dtype=float)
        if coef_density is not None:
            ax.plot(grid, np.asarray(coef_density, dtype=float), color=COLORS["vermillion"],
                    lw=1.5, label="N(0, 1/d)")
        if signal_density is not None:
            ax.plot(grid, np.asarray(signal_density, dtype=float), color=COLORS["blue"], lw=1.5,
                    label="$\\chi^2_d / d$")
    ax.set_xlabel("value of the score")
    ax.set_ylabel("density")
    ax.set_title(title or f"Signal vs cross-talk scores, d = {d}")
    ax.legend(fontsize=8)
    return fig


# ==== section: lca-task (chapter 2) ====
# (owned by the lca-task (chapter 2) work; add functions between this marker and the next)


def _lca_context_image(ax, context_latents, target_latent, tokens=None, target=None):
    import numpy as np
    from matplotlib.colors import ListedColormap
    Z = np.asarray(context_latents, dtype=int)
    z = np.asarray(target_latent, dtype=int)
    img = np.vstack([z[None, :], Z])
    cmap = ListedColormap(["#FFFFFF", COLORS["blue"]])
    ax.imshow(img, cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    L, m = Z.shape
    for i in range(L):
        for k in range(m):
            if Z[i, k] != z[k]:
                ax.add_patch(plt.Rectangle((k - 0.5, i + 0.5), 1, 1, fill=False,
                                           edgecolor=COLORS["vermillion"], lw=2))
    ax.axhline(0.5, color="black", lw=2)
    ax.set_xticks(range(m))
    ax.set_xticklabels([f"$z_{{{k + 1}}}$" for k in range(m)])
    labels = ["target" + ("" if target is None else f" {int(target)}")]
    labels += [f"$x_{{{i + 1}}}$" + ("" if tokens is None else f" = {int(tokens[i])}")
               for i in range(L)]
    ax.set_yticks(range(L + 1))
    ax.set_yticklabels(labels, fontsize=8 if L > 12 else 9)
    ax.set_xlabel("latent bit (blue = 1, red frame = differs from the target)")
    ax.grid(False)


def plot_context(context_latents, target_latent, tokens=None, target=None,
                 title: str = "A sampled context as latent bit patterns"):
    """One example drawn as an image: the target's latent vector on top, then one row per context
    token (``context_latents [L, m]`` of 0/1); bits that differ from the target are framed."""
    L = len(context_latents)
    fig, ax = new_figure(width=0.45 * len(target_latent) + 2.8, height=0.28 * (L + 1) + 1.4)
    _lca_context_image(ax, context_latents, target_latent, tokens, target)
    ax.set_title(title, fontsize=10)
    return fig


def plot_neighbourhood_masks(distances, masks: dict,
                             title: str = "Hamming distances and neighbourhood masks"):
    """First panel: the Hamming distance matrix ``[V, V]``; then one panel per mask (label ->
    ``BoolTensor[V, V]``, row y = target, column x = context token allowed in y's context)."""
    import numpy as np
    from matplotlib.colors import ListedColormap
    n = 1 + len(masks)
    fig, axes = new_figure(ncols=n, width=3.3, height=3.3)
    axes = np.atleast_1d(axes)
    D = np.asarray(distances)
    im = axes[0].imshow(D, cmap=SEQUENTIAL_CMAP, interpolation="nearest")
    fig.colorbar(im, ax=axes[0], shrink=0.75, label="Hamming distance")
    axes[0].set_title("$D_H(y, x)$", fontsize=10)
    cmap = ListedColormap(["#FFFFFF", COLORS["blue"]])
    for ax, (label, M) in zip(axes[1:], masks.items()):
        M = np.asarray(M, dtype=int)
        ax.imshow(M, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{label} ({int(M.sum(1).max())} per row)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("context token x")
        ax.set_ylabel("target y")
        ax.grid(False)
    fig.suptitle(title)
    return fig


def plot_bayes_accuracy(panels: list, title: str = "Bayes-optimal accuracy vs context length"):
    """One panel per entry of ``panels``: dicts with ``title``, ``L`` (context lengths),
    ``mc`` (label -> Monte Carlo accuracies, drawn as points) and optionally ``exact``
    (label -> exact accuracies on the same L, drawn as lines; labels matching ``mc`` share a
    colour) and ``reference`` (label -> values drawn as dotted grey lines)."""
    import numpy as np
    fig, axes = new_figure(ncols=len(panels), width=4.4, height=3.6)
    axes = np.atleast_1d(axes)
    for ax, p in zip(axes, panels):
        L = np.asarray(p["L"])
        labels = list(dict.fromkeys(list(p.get("mc", {})) + list(p.get("exact", {}))))
        for k, label in enumerate(labels):
            c = CYCLE[k % len(CYCLE)]
            if label in p.get("exact", {}):
                ax.plot(L, p["exact"][label], "-", color=c, lw=1.5,
                        label=f"{label} exact" if label in p.get("mc", {}) else label)
            if label in p.get("mc", {}):
                ax.plot(L, p["mc"][label], "o", color=c, ms=4,
                        label=f"{label} Monte Carlo" if label in p.get("exact", {}) else label)
        for label, vals in p.get("reference", {}).items():
            ax.plot(L, vals, ":", color="0.45", lw=1.2, label=label)
        ax.set_xlabel("context length L (tokens)")
        ax.set_ylabel("Bayes-optimal accuracy")
        ax.set_ylim(0, 1.02)
        ax.set_title(p.get("title", ""), fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    return fig


def plot_context_posterior(context_latents, target_latent, posterior, target: int,
                           tokens=None, title: str = "A context and the Bayes posterior"):
    """Left: the context as bit patterns (as ``plot_context``). Right: the posterior ``[V]`` over
    targets as bars, the true target highlighted."""
    import numpy as np
    L = len(context_latents)
    fig, (ax1, ax2) = new_figure(ncols=2, width=5.0, height=max(3.4, 0.22 * (L + 1) + 1.4))
    _lca_context_image(ax1, context_latents, target_latent, tokens, target)
    ax1.set_title("context (target row on top)", fontsize=10)
    post = np.asarray(posterior, dtype=float)
    colors = [COLORS["sky"]] * len(post)
    colors[int(target)] = COLORS["vermillion"]
    ax2.bar(np.arange(len(post)), post, color=colors, width=1.0)
    ax2.set_xlabel("candidate target token y'")
    ax2.set_ylabel("posterior P(y' | context)")
    ax2.set_ylim(0, 1.02)
    ax2.set_title(f"posterior (true target {int(target)} in red)", fontsize=10)
    fig.suptitle(title)
    return fig


# ==== section: transformer (chapter 3) ====
# (owned by the transformer (chapter 3) work; add functions between this marker and the next)

def plot_forward_pass(trace: dict, index: int = 0, target: int | None = None, title: str = ""):
    """One forward pass, left to right: the attention weights over the context positions (each bar
    labelled with its token id), then the logits over the vocabulary with the context's tokens and
    the target marked.

    Args:
        trace: ``lca.probes.forward_trace(model, contexts)``.
        index: which context of the batch to draw.
        target: the true target token (marked in the logits panel), or None.
        title: figure title (default: a description of the two panels).
    """
    from ._validate import check_int
    n = trace["attention"].shape[0]
    index = check_int("index", index, 0, n - 1)
    att = trace["attention"][index].cpu()
    logits = trace["logits"][index].cpu()
    tokens = trace.get("contexts")
    V = logits.shape[0]
    fig, (ax1, ax2) = new_figure(2, 1, width=5.2, height=3.4)
    L = att.shape[0]
    ax1.bar(range(L), att.tolist(), color=COLORS["blue"])
    ax1.set_xlabel("context position l (token id below)")
    ax1.set_ylabel("attention weight a_l")
    ax1.set_title("attention of the last token (the query)")
    if tokens is not None:
        ax1.set_xticks(range(L))
        ax1.set_xticklabels([str(int(t)) for t in tokens[index]], fontsize=8)
    ax2.bar(range(V), logits.tolist(), color=COLORS["sky"], label="logit f_k")
    if tokens is not None:
        present = sorted({int(t) for t in tokens[index]})
        ax2.bar(present, logits[present].tolist(), color=COLORS["orange"],
                label="token in the context")
    if target is not None:
        target = check_int("target", target, 0, V - 1)
        ax2.bar([target], [float(logits[target])], color=COLORS["vermillion"], label="target y")
    ax2.axhline(0, color="black", lw=0.6)
    ax2.set_xlabel("vocabulary token k")
    ax2.set_ylabel("logit f_k (nats)")
    ax2.set_title("logits over the vocabulary")
    ax2.legend(fontsize=8)
    fig.suptitle(title or "One forward pass of the one-layer transformer")
    return fig


def plot_training_curves(history: dict, labels=None, bayes: float | None = None, title: str = ""):
    """Accuracy and training loss against the step, one line per variant (mean over the members
    that share a label), with the Bayes ceiling as a dashed line.

    Args:
        history: ``TrainResult.history`` of ``lca.train`` (scalars) or of an ensemble / sweep
            (per-member lists).
        labels: per-member labels (e.g. ``[lab for lab, _ in result.labels]``); None for one
            model or when every member is one variant.
        bayes: the Bayes accuracy of the task, or None.
    """
    steps = history["step"]
    acc = [a if isinstance(a, list) else [a] for a in history["accuracy"]]
    loss = [x if isinstance(x, list) else [x] for x in history["loss"]]
    E = len(acc[0])
    labels = ["model"] * E if labels is None else list(labels)
    if len(labels) != E:
        raise ValueError(f"labels must have one entry per member ({E}), got {len(labels)}")
    fig, (ax1, ax2) = new_figure(2, 1, width=4.6, height=3.4)
    for k, lab in enumerate(dict.fromkeys(labels)):
        idx = [i for i, s in enumerate(labels) if s == lab]
        col = CYCLE[k % len(CYCLE)]
        ax1.plot(steps, [sum(r[i] for i in idx) / len(idx) for r in acc], color=col, label=lab,
                 marker="o", ms=3)
        ax2.plot(steps, [sum(r[i] for i in idx) / len(idx) for r in loss], color=col, label=lab,
                 marker="o", ms=3)
    if bayes is not None:
        ax1.axhline(bayes, color="black", ls="--", lw=1, label="Bayes ceiling")
    ax1.set_xlabel("training step")
    ax1.set_ylabel("accuracy on fresh contexts")
    ax1.set_ylim(-0.02, 1.02)
    ax1.legend(fontsize=8)
    ax2.set_xlabel("training step")
    ax2.set_ylabel("training cross-entropy (nats)")
    ax2.legend(fontsize=8)
    fig.suptitle(title or "Learning curves: accuracy and loss during training")
    return fig


def _tf_sweep_panels(table, title, xlabel, vline=None):
    ms = table.m_values
    fig, axes = new_figure(len(ms), 1, width=3.3, height=3.2, squeeze=False)
    for ax, m in zip(axes[0], ms):
        for k, lab in enumerate(table.labels):
            mean, sd = table.mean[lab][m], table.sd[lab][m]
            col = CYCLE[k % len(CYCLE)]
            ax.plot(table.x, mean, marker="o", ms=4, color=col, label=lab)
            ax.fill_between(table.x, [a - s for a, s in zip(mean, sd)],
                            [a + s for a, s in zip(mean, sd)], color=col, alpha=0.15, lw=0)
        ax.plot(table.x, table.bayes[m], ls="--", color="black", lw=1, label="Bayes ceiling")
        if vline is not None:
            ax.axvline(vline(m), color=COLORS["purple"], ls=":", lw=1.2, label="d = V")
        ax.set_xscale("log", base=2)
        ax.set_xticks(table.x)
        ax.set_xticklabels([str(v) for v in table.x])
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(xlabel)
        ax.set_title(f"m = {m} (V = {2 ** m})")
    axes[0][0].set_ylabel("accuracy on fresh contexts")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    return fig


def plot_accuracy_vs_length(table, title: str = ""):
    """Accuracy against the context length L for each m (a ``lca.probes.length_sweep`` table):
    one line per variant (band: +- one standard deviation over seeds) and the Bayes ceiling."""
    if getattr(table, "x_name", None) != "L":
        raise ValueError("table must come from lca.probes.length_sweep (x_name 'L')")
    return _tf_sweep_panels(table, title or "Accuracy vs context length: trained W_V vs W_V = I",
                         "context length L (tokens)")


def plot_accuracy_vs_dim(table, title: str = ""):
    """Accuracy against the embedding dimension d for each m (a ``lca.probes.dim_sweep`` table),
    with the line d = V that separates the under- and over-parameterised regimes."""
    if getattr(table, "x_name", None) != "d":
        raise ValueError("table must come from lca.probes.dim_sweep (x_name 'd')")
    return _tf_sweep_panels(table, title or "Accuracy vs embedding dimension: trained vs fixed W_E",
                         "embedding dimension d", vline=lambda m: 2 ** m)


# ==== section: value-matrix (chapter 4) ====
# (owned by the value-matrix (chapter 4) work; add functions between this marker and the next)


def _vm_np(x):
    import numpy as np
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=float)


def plot_wv_example(A, logits, target: int, context, title: str = "The constructed W_V* "
                    "on one context"):
    """Left: the neighbourhood matrix ``A [V, V]`` (row y marks N(y)) with the target's row and the
    context tokens' columns outlined. Right: the model's logit for every token, target highlighted.

    Args:
        A: ``[V, V]`` 0/1 matrix. logits: ``[V]``. target: the target token. context: token ids.
    """
    import numpy as np
    A = _vm_np(A)
    f = _vm_np(logits).reshape(-1)
    V = A.shape[0]
    ctx = sorted({int(t) for t in _vm_np(context).reshape(-1)})
    fig, axes = new_figure(ncols=2, width=4.4, height=3.7)
    ax = axes[0]
    ax.imshow(A, cmap="Greys", vmin=0, vmax=1.6, interpolation="nearest")
    ax.add_patch(plt.Rectangle((-0.5, target - 0.5), V, 1, fill=False, ec=COLORS["vermillion"],
                               lw=2, label=f"row of target y = {target}"))
    for j, t in enumerate(ctx):
        ax.add_patch(plt.Rectangle((t - 0.5, -0.5), 1, V, fill=False, ec=COLORS["blue"], lw=1.5,
                                   label="columns of context tokens" if j == 0 else None))
    ax.set_xticks(range(V))
    ax.set_yticks(range(V))
    ax.set_xlabel("context token j")
    ax.set_ylabel("target i")
    ax.set_title("neighbourhood matrix A (black: j in N(i))", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=1)
    ax.grid(False)
    ax = axes[1]
    colors = [COLORS["vermillion"] if k == target else COLORS["sky"] for k in range(V)]
    ax.bar(np.arange(V), f, color=colors)
    ax.set_xticks(range(V))
    ax.set_xlabel("token k")
    ax.set_ylabel("logit f_k")
    ax.set_title("logits of the constructed model (red: target)", fontsize=10)
    fig.suptitle(title, fontsize=11)
    return fig


def plot_wv_error(Ls, curves: dict, title: str = "Constructed W_V*: error probability vs "
                  "context length (orthonormal embeddings)"):
    """Error probability of the constructed model against the context length L (log scale).

    Args:
        Ls: the context lengths (x axis).
        curves: label -> dict with any of ``"exact"`` (line), ``"bound"`` (dashed line) and
            ``"monte_carlo"`` (points) sequences aligned with ``Ls``; one colour per label.
    Zeros are drawn at the bottom edge (a log axis cannot show them).
    """
    import numpy as np
    fig, ax = new_figure(width=6.2, height=4.0)
    Ls = _vm_np(Ls)
    floor = None
    for c in curves.values():
        for key in ("exact", "bound", "monte_carlo"):
            if key in c:
                v = _vm_np(c[key])
                pos = v[v > 0]
                if pos.size:
                    floor = pos.min() if floor is None else min(floor, pos.min())
    floor = 1e-6 if floor is None else floor / 3
    for i, (label, c) in enumerate(curves.items()):
        color = CYCLE[i % len(CYCLE)]
        if "exact" in c:
            ax.plot(Ls, np.maximum(_vm_np(c["exact"]), floor), "-", color=color, lw=2,
                    label=f"{label}: exact")
        if "bound" in c:
            ax.plot(Ls, np.clip(_vm_np(c["bound"]), floor, 1.0), "--", color=color, lw=1.5,
                    label=f"{label}: bound")
        if "monte_carlo" in c:
            ax.plot(Ls, np.maximum(_vm_np(c["monte_carlo"]), floor), "o", color=color, ms=5,
                    mfc="white", label=f"{label}: Monte Carlo")
    ax.set_yscale("log")
    ax.set_ylim(floor, 1.5)
    ax.set_xlabel("context length L (tokens)")
    ax.set_ylabel("P(error), ties counted as errors")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=1 if len(curves) < 3 else 2)
    return fig


def plot_wv_bars(ms, results: dict, title: str = "Trained W_V vs W_V fixed to the identity "
                 "(mean over seeds, bars show min-max)"):
    """Grouped bars of accuracy per latent dimension m, one panel per context length (paper Fig. 3a).

    Args:
        ms: the latent dimensions (x axis).
        results: panel label (e.g. ``"L = 64"``) -> variant label -> array ``[len(ms), seeds]`` of
            accuracies. Bars show the seed mean, error bars the min-max spread, dots each seed.
    """
    import numpy as np
    panels = list(results.items())
    fig, axes = new_figure(ncols=len(panels), width=4.6, height=3.6, sharey=True)
    axes = np.atleast_1d(axes)
    ms = list(ms)
    x = np.arange(len(ms))
    lo_all = 1.0
    for ax, (panel, variants) in zip(axes, panels):
        k = len(variants)
        width = 0.8 / k
        for i, (label, acc) in enumerate(variants.items()):
            a = _vm_np(acc).reshape(len(ms), -1)
            mean, lo, hi = a.mean(1), a.min(1), a.max(1)
            lo_all = min(lo_all, float(lo.min()))
            pos = x - 0.4 + width * (i + 0.5)
            color = CYCLE[i % len(CYCLE)]
            ax.bar(pos, mean, width * 0.9, color=color, alpha=0.85, label=label)
            ax.errorbar(pos, mean, yerr=[mean - lo, hi - mean], fmt="none", ecolor="black",
                        capsize=3, lw=1)
            for j in range(a.shape[0]):
                ax.plot(np.full(a.shape[1], pos[j]), a[j], ".", color="black", ms=3)
        ax.set_xticks(x)
        ax.set_xticklabels([str(m) for m in ms])
        ax.set_xlabel("latent dimension m (V = 2^m tokens)")
        ax.set_title(panel, fontsize=10)
    axes[0].set_ylabel("test accuracy")
    axes[0].set_ylim(max(0.0, lo_all - 0.08), 1.01)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(title, fontsize=11)
    return fig


def plot_wv_replacement(ds, accuracy: dict, cosine: dict, title: str = "Trained W_V vs the "
                        "construction from the trained embeddings"):
    """Two panels against the embedding dimension d (log2 axis): left, accuracy (label -> array
    ``[len(ds), seeds]``, e.g. trained and replaced); right, Frobenius cosine between trained W_V
    and W_V* (label -> array ``[len(ds), seeds]``, e.g. full matrices and rank-r parts). Lines
    show seed means, shaded bands min-max."""
    import numpy as np
    fig, axes = new_figure(ncols=2, width=4.6, height=3.6)
    ds = _vm_np(ds)
    for ax, data, ylabel in ((axes[0], accuracy, "test accuracy"),
                             (axes[1], cosine, "cosine similarity (Frobenius)")):
        for i, (label, vals) in enumerate(data.items()):
            a = _vm_np(vals).reshape(len(ds), -1)
            color = CYCLE[i % len(CYCLE)]
            ax.plot(ds, a.mean(1), "o-", color=color, label=label)
            ax.fill_between(ds, a.min(1), a.max(1), color=color, alpha=0.2)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ds)
        ax.set_xticklabels([str(int(d)) for d in ds])
        ax.set_xlabel("embedding dimension d")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    axes[0].set_title("accuracy: trained W_V vs W_V replaced by W_V*", fontsize=10)
    axes[1].set_title("alignment of trained W_V with W_V*", fontsize=10)
    axes[1].set_ylim(min(0.0, float(np.nanmin([_vm_np(v).min() for v in cosine.values()]))), 1.02)
    fig.suptitle(title, fontsize=11)
    return fig


def plot_wv_random_embeddings(ds, accuracy: dict, reference: dict | None = None,
                              title: str = "Constructed W_V* with random Gaussian embeddings"):
    """Accuracy of the construction against the embedding dimension d (log2 axis).

    Args:
        ds: embedding dimensions.
        accuracy: label (e.g. ``"m = 5"``) -> array ``[len(ds), seeds]``; line = mean, band = min-max.
        reference: label -> accuracy with orthonormal embeddings, drawn as a dotted line.
    """
    import numpy as np
    fig, ax = new_figure(width=6.0, height=3.8)
    ds = _vm_np(ds)
    for i, (label, vals) in enumerate(accuracy.items()):
        a = _vm_np(vals).reshape(len(ds), -1)
        color = CYCLE[i % len(CYCLE)]
        ax.plot(ds, a.mean(1), "o-", color=color, label=f"{label}, Gaussian W_E")
        ax.fill_between(ds, a.min(1), a.max(1), color=color, alpha=0.2)
        if reference and label in reference:
            ax.axhline(float(reference[label]), color=color, ls=":", lw=1.5,
                       label=f"{label}, orthonormal W_E (d = V)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ds)
    ax.set_xticklabels([str(int(d)) for d in ds])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("embedding dimension d")
    ax.set_ylabel("accuracy (ties counted as errors)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    _ = np
    return fig


# ==== section: geometry (chapter 5) ====
# (owned by the geometry (chapter 5) work; add functions between this marker and the next)


def _geo_np(x):
    import numpy as np
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


def plot_distance_and_gram(D, G, title: str = ""):
    """Two heat maps side by side: Hamming distances ``D [V, V]`` and a Gram matrix ``G [V, V]``
    (tokens in id order)."""
    fig, axes = new_figure(2, 1, width=4.2, height=3.6)
    for ax, M, name, cmap in ((axes[0], D, "Hamming distance $D_H(i,j)$", SEQUENTIAL_CMAP),
                              (axes[1], G, r"inner product $\langle e_i, e_j\rangle$",
                               DIVERGING_CMAP)):
        M = _geo_np(M)
        lim = abs(M).max() or 1.0
        kw = dict(vmin=-lim, vmax=lim) if cmap == DIVERGING_CMAP else {}
        im = ax.imshow(M, cmap=cmap, **kw)
        ax.set_xlabel("token j")
        ax.set_ylabel("token i")
        ax.set_title(name)
        ax.grid(False)
        fig.colorbar(im, ax=ax, shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def plot_hamming_inner(panels: dict, m: int | None = None, title: str = ""):
    """Fig. 3(b)-style panels: mean inner product of two token embeddings against their Hamming
    distance, one panel per variant (each panel's m is read from the length of its profile; ``m``
    only enters the default title).

    ``panels`` maps a panel title to a dict with ``mean`` and ``std`` (``[S, m+1]``: per seed, the
    mean and the spread over pairs at each distance), ``b0``, ``b1`` (the affine fit to the
    seed-averaged profile) and ``r2`` (its R^2 on the pairs, one number per panel).
    """
    import numpy as np
    fig, axes = new_figure(len(panels), 1, width=4.6, height=3.6)
    axes = np.atleast_1d(axes)
    for ax, (name, p) in zip(axes, panels.items()):
        mean, std = np.atleast_2d(_geo_np(p["mean"])), np.atleast_2d(_geo_np(p["std"]))
        k = np.arange(mean.shape[1])
        for s in range(mean.shape[0]):
            ax.plot(k, mean[s], color=COLORS["sky"], lw=0.8, alpha=0.7,
                    label="one seed" if s == 0 else None)
        ax.errorbar(k, mean.mean(0), yerr=std.mean(0), fmt="o", color=COLORS["blue"], capsize=3,
                    label="mean over seeds (bars: spread over pairs)")
        ax.plot(k, p["b0"] - p["b1"] * k, "--", color=COLORS["vermillion"],
                label=f"affine fit $b_0-b_1k$ ($R^2$={p['r2']:.2f})")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xlabel("Hamming distance $k = D_H(i, j)$")
        ax.set_ylabel(r"$\langle W_E(i), W_E(j)\rangle$")
        ax.set_title(name)
        ax.set_xticks(k)
        ax.legend(fontsize=7)
    fig.suptitle(title or "Inner product of embeddings vs Hamming distance"
                 + (f" (m={m})" if m is not None else ""))
    return fig


def plot_krawtchouk_spectrum(measured: dict, predicted: dict, n_show: int = 48, title: str = ""):
    """Sorted eigenvalues of measured Gram matrices (dots) against the Krawtchouk eigenvalues of
    their mean Hamming profiles (steps), one colour per label; log scale."""
    import numpy as np
    fig, ax = new_figure(1, 1, width=6.4, height=3.8)
    for color, label in zip(CYCLE, measured):
        meas = _geo_np(measured[label])[:n_show]
        pred = _geo_np(predicted[label])[:n_show]
        idx = np.arange(1, len(meas) + 1)
        ax.step(np.arange(1, len(pred) + 1), np.clip(pred, 1e-3, None), where="mid", color=color,
                label=f"{label}: Krawtchouk, from the mean profile")
        ax.plot(idx, np.clip(meas, 1e-3, None), "o", ms=3, color=color,
                label=f"{label}: eigenvalues of $W_EW_E^T$")
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue index (largest first)")
    ax.set_ylabel("eigenvalue")
    ax.set_title(title or "Gram spectrum: measured vs predicted from the Hamming profile")
    ax.legend(fontsize=7)
    return fig


def plot_spectra(spectra: dict, marks: dict | None = None, title: str = ""):
    """Normalised spectra ``lambda_i / lambda_1`` of ``W_E^T W_E``, one panel per setting.

    ``spectra`` maps a panel title (e.g. ``"m=8, d=32"``) to a dict label -> eigenvalues ``[d]``
    (largest first); ``marks`` maps a panel title to an index drawn as a dotted line (e.g. m).
    """
    import numpy as np
    fig, axes = new_figure(len(spectra), 1, width=3.6, height=3.4)
    axes = np.atleast_1d(axes)
    for ax, (name, curves) in zip(axes, spectra.items()):
        for color, (label, ev) in zip(CYCLE, curves.items()):
            ev = _geo_np(ev)
            ax.plot(np.arange(1, len(ev) + 1), np.clip(ev / ev[0], 1e-4, None), "o-", ms=2.5,
                    lw=1, color=color, label=label)
        if marks and name in marks:
            ax.axvline(marks[name] + 0.5, ls=":", color="black", label=f"after index {marks[name]}")
        ax.set_yscale("log")
        ax.set_xlabel("index i (largest first)")
        ax.set_ylabel(r"$\lambda_i / \lambda_1$ of $W_E^TW_E$")
        ax.set_title(name)
        ax.legend(fontsize=6)
    fig.suptitle(title or "Spectra of trained embeddings (underparameterised, d < V)")
    return fig


def plot_weight_spectrum(rows: dict, m: int, title: str = ""):
    """Per-weight bars: the context law's eigenvalues mu_w next to the learned association's mean
    Rayleigh quotients nu_w (each normalised by its largest absolute value).

    ``rows`` maps a row title to a dict with ``mu`` ([m+1]) and ``nu`` (label -> [m+1]).
    """
    import numpy as np
    fig, axes = new_figure(1, len(rows), width=7.0, height=2.6)
    axes = np.atleast_1d(axes)
    w = np.arange(m + 1)
    for ax, (name, row) in zip(axes, rows.items()):
        series = {r"neighbourhood $\mu_w$": row["mu"], **row["nu"]}
        width = 0.8 / len(series)
        for j, (color, (label, vals)) in enumerate(zip(CYCLE, series.items())):
            v = _geo_np(vals)
            v = v / (abs(v).max() or 1.0)
            ax.bar(w + (j - (len(series) - 1) / 2) * width, v, width, color=color, label=label)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(w)
        ax.set_xlabel("character weight w")
        ax.set_ylabel("normalised value")
        ax.set_title(name)
        ax.legend(fontsize=7, ncol=len(series))
    fig.suptitle(title or "Where the learned association puts its weight")
    return fig


def plot_hamming_kernel(profile, eigenvalues, multiplicities, title: str = ""):
    """A profile g(k) (left) and the Krawtchouk eigenvalues of g(D_H) per weight w (right, bars
    annotated with their multiplicities C(m, w))."""
    import numpy as np
    g, lam, mult = _geo_np(profile), _geo_np(eigenvalues), _geo_np(multiplicities).astype(int)
    m = len(g) - 1
    fig, axes = new_figure(2, 1, width=4.4, height=3.4)
    axes[0].plot(np.arange(m + 1), g, "o-", color=COLORS["blue"], label="$g(k)$")
    axes[0].axhline(0, color="black", lw=0.6)
    axes[0].set_xlabel("Hamming distance k")
    axes[0].set_ylabel("inner product g(k)")
    axes[0].set_title("the profile")
    axes[0].legend(fontsize=8)
    colors = [COLORS["vermillion"] if v < -1e-9 * max(abs(lam).max(), 1) else COLORS["green"]
              for v in lam]
    axes[1].bar(np.arange(m + 1), lam, color=colors, label=r"$\lambda_w$ (red: negative)")
    for w in range(m + 1):
        axes[1].annotate(f"x{mult[w]}", (w, lam[w]), ha="center", va="bottom", fontsize=7)
    axes[1].axhline(0, color="black", lw=0.6)
    axes[1].set_xlabel("character weight w")
    axes[1].set_ylabel(r"eigenvalue $\lambda_w$")
    rank = int(sum(mult[w] for w in range(m + 1) if abs(lam[w]) > 1e-9 * max(abs(lam).max(), 1)))
    axes[1].set_title(f"Krawtchouk spectrum (rank {rank} of {2 ** m})")
    axes[1].legend(fontsize=8)
    fig.suptitle(title or "A Hamming profile and the spectrum of its Gram matrix")
    return fig


# ==== section: attention (chapter 6) ====
# (owned by the attention (chapter 6) work; add functions between this marker and the next)


def _att_cluster_lines(ax, V: int, k: int, m: int):
    size = 2 ** (m - k)
    for b in range(1, 2 ** k):
        ax.axhline(b * size - 0.5, color="black", lw=0.6)
        ax.axvline(b * size - 0.5, color="black", lw=0.6)


def plot_attention_heatmap(mats: dict, m: int, k: int, title: str = "",
                           cbar_label: str = "score (row mean removed)", symmetric: bool = True):
    """Token-by-token heat maps (row: query token, column: key token), one panel per entry of
    ``mats`` (label -> ``Tensor[V, V]``), with the cluster boundaries (same first ``k`` bits)
    drawn as lines. Each panel has its own colour scale, symmetric about 0 when ``symmetric``.
    Returns the Figure."""
    n = len(mats)
    fig, axes = new_figure(ncols=n, width=4.3, height=3.9)
    axes = [axes] if n == 1 else list(axes.flat)
    V = 2 ** m
    for ax, (label, M) in zip(axes, mats.items()):
        M = M.detach().double().cpu()
        ax.grid(False)
        if symmetric:
            lim = float(M.abs().max()) or 1.0
            im = ax.imshow(M.numpy(), cmap=DIVERGING_CMAP, vmin=-lim, vmax=lim,
                           interpolation="nearest")
        else:
            im = ax.imshow(M.numpy(), cmap=SEQUENTIAL_CMAP, interpolation="nearest")
        _att_cluster_lines(ax, V, k, m)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("key token j (token id)")
        ax.set_ylabel("query token i (token id)")
        fig.colorbar(im, ax=ax, shrink=0.8, label=cbar_label)
    if title:
        fig.suptitle(title)
    return fig


def plot_cluster_attention(rows: dict, title: str = ""):
    """Grouped bars: for each variant (label -> dict with ``"mass"``, ``"share"`` and optionally
    ``"accuracy"``), the attention mass on same-cluster tokens next to their share of the context
    (the mass that uniform attention would give). Returns the Figure."""
    import numpy as np
    fig, ax = new_figure(width=6.4, height=3.8)
    labels = list(rows)
    x = np.arange(len(labels))
    mass = [rows[lab]["mass"] for lab in labels]
    share = [rows[lab]["share"] for lab in labels]
    ax.bar(x - 0.2, share, width=0.4, color=COLORS["sky"], label="share of same-cluster tokens")
    ax.bar(x + 0.2, mass, width=0.4, color=COLORS["blue"],
           label="attention mass on same-cluster tokens")
    for xi, lab in zip(x, labels):
        acc = rows[lab].get("accuracy")
        if acc is not None:
            ax.text(xi, 1.03, f"acc {acc:.3f}", ha="center", fontsize=9)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=9)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("fraction (of tokens / of attention)")
    ax.set_title(title or "Attention on the query's cluster vs the cluster's share of the context")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_kq_gradient_check(exact, approx, same, xlabel: str, ylabel: str, title: str = ""):
    """Scatter of two V x V tables entry by entry (``exact`` on x, ``approx`` on y), coloured by
    whether the (query, key) pair is in one cluster (``same``, a BoolTensor[V, V]), with the
    diagonal y = x. Returns the Figure."""
    fig, ax = new_figure(width=5.0, height=4.0)
    ex, ap, sm = exact.detach().double().flatten(), approx.detach().double().flatten(), same.flatten()
    ax.scatter(ex[~sm].numpy(), ap[~sm].numpy(), s=10, color=COLORS["vermillion"],
               label="query and key in different clusters", alpha=0.7)
    ax.scatter(ex[sm].numpy(), ap[sm].numpy(), s=10, color=COLORS["blue"],
               label="query and key in the same cluster", alpha=0.7)
    lo, hi = float(min(ex.min(), ap.min())), float(max(ex.max(), ap.max()))
    ax.plot([lo, hi], [lo, hi], color=COLORS["black"], lw=0.8, label="y = x")
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or "Gradient of W_KQ at zero: two computations, entry by entry")
    ax.legend(fontsize=8)
    return fig


# ==== section: hijack-in-model (chapter 7) ====
# (owned by the hijack-in-model (chapter 7) work; add functions between this marker and the next)


def plot_hijack_curves(panels: list, title: str = ""):
    """One panel per dict in ``panels``; each dict holds ``"x"`` (a sequence), ``"curves"``
    (label -> values, ``[R]`` or ``[E, R]``: an ensemble is drawn as its mean with a min-max
    band), optional ``"theory"`` (label -> values, drawn as dashed lines), ``"xlabel"``,
    ``"ylabel"``, ``"title"`` and ``"threshold"`` (a vertical dotted line, or None).
    Returns the Figure."""
    import torch
    n = len(panels)
    fig, axes = new_figure(ncols=n, width=5.0, height=3.8)
    axes = [axes] if n == 1 else list(axes.flat)
    for ax, panel in zip(axes, panels):
        x = torch.as_tensor(panel["x"], dtype=torch.float64).numpy()
        for i, (label, vals) in enumerate(panel.get("curves", {}).items()):
            v = torch.as_tensor(vals, dtype=torch.float64)
            color = CYCLE[i % len(CYCLE)]
            if v.ndim == 2:
                ax.fill_between(x, v.min(0).values.numpy(), v.max(0).values.numpy(),
                                color=color, alpha=0.2)
                v = v.mean(0)
            ax.plot(x, v.numpy(), marker="o", ms=3.5, color=color, label=label)
        for j, (label, vals) in enumerate(panel.get("theory", {}).items()):
            v = torch.as_tensor(vals, dtype=torch.float64)
            ax.plot(x, v.numpy(), ls="--", lw=1.4, color=CYCLE[(j + 3) % len(CYCLE)], label=label)
        thr = panel.get("threshold")
        if thr is not None:
            ax.axvline(thr, color=COLORS["black"], ls=":", lw=1.0, label="threshold")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel(panel.get("xlabel", ""))
        ax.set_ylabel(panel.get("ylabel", "fraction of contexts"))
        ax.set_title(panel.get("title", ""), fontsize=10)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


# ==== end of sections ====
