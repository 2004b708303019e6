"""The course's shared figure style: the colours, sizes and helpers every chapter's figures use."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

# Okabe-Ito palette: distinguishable with the common forms of colour blindness.
COLORS = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
}

CYCLE = [COLORS[k] for k in ("blue", "orange", "green", "vermillion", "sky", "purple", "black")]

SEQUENTIAL_CMAP = "viridis"

DIVERGING_CMAP = "RdBu_r"


def new_figure(
    ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.6, **kwargs
) -> tuple[plt.Figure, object]:
    """A figure with ``nrows x ncols`` axes in the course's style; returns ``(fig, axes)``."""
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), constrained_layout=True, **kwargs
    )
    for ax in axes.flat if hasattr(axes, "flat") else [axes]:
        ax.set_prop_cycle(color=CYCLE)
        ax.grid(alpha=0.3)
    return fig, axes


def as_array(x: object) -> np.ndarray:
    """A float64 numpy array of ``x`` (a tensor, detached and moved to the CPU, or anything numpy
    takes), for plotting."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)
