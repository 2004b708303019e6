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


# ==== section: associative-memory (chapter 1) ====
# (owned by the associative-memory (chapter 1) work; add functions between this marker and the next)


# ==== section: lca-task (chapter 2) ====
# (owned by the lca-task (chapter 2) work; add functions between this marker and the next)


# ==== section: transformer (chapter 3) ====
# (owned by the transformer (chapter 3) work; add functions between this marker and the next)


# ==== section: value-matrix (chapter 4) ====
# (owned by the value-matrix (chapter 4) work; add functions between this marker and the next)


# ==== section: geometry (chapter 5) ====
# (owned by the geometry (chapter 5) work; add functions between this marker and the next)


# ==== section: attention (chapter 6) ====
# (owned by the attention (chapter 6) work; add functions between this marker and the next)


# ==== section: hijack-in-model (chapter 7) ====
# (owned by the hijack-in-model (chapter 7) work; add functions between this marker and the next)

# ==== end of sections ====
