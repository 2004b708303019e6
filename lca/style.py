"""The course's shared figure style: the colours, sizes and helpers every chapter's figures use.

Every figure is drawn for the book's text column: at most ``COLUMN_WIDTH`` inches wide, so that
text set at ``FONT_SIZE`` points stays at least 9 pt when the page shows the figure at the
column's width. In a notebook the figures are sent at twice their pixel density ("retina" PNGs,
displayed at ``DPI`` pixels per inch from ``2 * DPI``), sharp on high-density screens and in the
rendered book. Rows of more than ``MAX_COLUMNS`` panels are folded into a grid.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from ._validate import check_int

# Okabe-Ito palette: distinguishable with the common forms of colour blindness. The prose names
# colours by these keys ("blue", "orange", ...).
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

#: width of the book's text column in inches (about 780 CSS pixels at ``DPI``)
COLUMN_WIDTH = 7.5
#: pixels per inch at displayed size; the PNG itself has twice as many
DPI = 100
#: the smallest text in a figure, in points at displayed size
FONT_SIZE = 9.5
#: panels in one row before a row is folded into a grid
MAX_COLUMNS = 3

RC = {
    "figure.dpi": DPI,
    "savefig.dpi": 2 * DPI,
    "font.size": FONT_SIZE,
    "axes.titlesize": FONT_SIZE + 0.5,
    "axes.labelsize": FONT_SIZE,
    "xtick.labelsize": FONT_SIZE,
    "ytick.labelsize": FONT_SIZE,
    "legend.fontsize": FONT_SIZE,
    "legend.title_fontsize": FONT_SIZE,
    "figure.titlesize": FONT_SIZE + 1.5,
    "figure.labelsize": FONT_SIZE,
    "mathtext.fontset": "dejavusans",
    "axes.prop_cycle": plt.cycler(color=CYCLE),
    "image.cmap": SEQUENTIAL_CMAP,
}

_STATE = {"applied": False}


def use_course_style() -> None:
    """Apply the course's matplotlib settings (``RC``) and, in a notebook, send figures as
    double-density PNGs. Called by ``new_figure``; safe to call again."""
    plt.rcParams.update(RC)
    if _STATE["applied"]:
        return
    _STATE["applied"] = True
    try:  # only inside IPython (a notebook, Colab): nothing to do in a script or a test
        from IPython import get_ipython

        if get_ipython() is not None:
            from matplotlib_inline.backend_inline import set_matplotlib_formats

            set_matplotlib_formats("retina")
    except Exception:  # an IPython without the inline backend draws at the default density
        pass


def grid_shape(n: int, max_columns: int = MAX_COLUMNS) -> tuple[int, int]:
    """``(rows, columns)`` of the most even grid holding ``n`` panels with at most
    ``max_columns`` per row: 4 panels -> (2, 2), 5 -> (2, 3), 7 -> (3, 3)."""
    n = check_int("n", n, 1, 1000)
    max_columns = check_int("max_columns", max_columns, 1, 1000)
    rows = math.ceil(n / max_columns)
    return rows, math.ceil(n / rows)


def new_figure(
    ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.6, **kwargs
) -> tuple[plt.Figure, object]:
    """A figure with ``nrows x ncols`` axes in the course's style; returns ``(fig, axes)``.

    ``width`` and ``height`` are one panel's size in inches before the figure is fitted to the
    column: a figure wider than ``COLUMN_WIDTH`` is scaled down to it, both sides alike (so the
    panels keep their shape and the text its size). A single row of more than ``MAX_COLUMNS``
    panels becomes a grid (see ``grid_shape``); ``axes`` is then still a flat array of
    ``ncols`` axes, the grid's unused cells removed. Other keyword arguments go to
    ``plt.subplots``.
    """
    ncols = check_int("ncols", ncols, 1, 1000)
    nrows = check_int("nrows", nrows, 1, 1000)
    use_course_style()
    n_panels, fold = ncols, nrows == 1 and ncols > MAX_COLUMNS and kwargs.get("squeeze", True)
    if fold:
        nrows, ncols = grid_shape(n_panels)
    scale = min(1.0, COLUMN_WIDTH / (width * ncols))
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(width * ncols * scale, height * nrows * scale),
        constrained_layout=True,
        **kwargs,
    )
    flat = list(axes.flat) if hasattr(axes, "flat") else [axes]
    if fold:
        for ax in flat[n_panels:]:
            ax.remove()
        axes = np.array(flat[:n_panels], dtype=object)
        flat = flat[:n_panels]
    for ax in flat:
        ax.set_prop_cycle(color=CYCLE)
        ax.grid(alpha=0.3)
    return fig, axes


def legend_below(fig: plt.Figure, ax=None, ncols: int | None = None, handles=None, labels=None, **kwargs):
    """One legend for the whole figure, outside the data, under the panels: ``handles`` (with
    ``labels``, or their own labels) when given, else the labelled handles of ``ax`` (default:
    the first axes). Returns the legend."""
    if handles is None:
        ax = ax if ax is not None else fig.axes[0]
        handles, labels = ax.get_legend_handles_labels()
    elif labels is None:
        labels = [h.get_label() for h in handles]
    ncols = ncols or min(len(labels), 4) or 1
    return fig.legend(handles, labels, loc="outside lower center", ncols=ncols, frameon=False, **kwargs)


def legend_right(ax, **kwargs):
    """The legend of ``ax`` outside its data, to the right of the panel. Returns the legend."""
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


def as_array(x: object) -> np.ndarray:
    """A float64 numpy array of ``x`` (a tensor, detached and moved to the CPU, or anything numpy
    takes), for plotting."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)
