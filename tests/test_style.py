"""Tests of lca.style: the shared figure helpers give matplotlib Figures in the course's style."""

import matplotlib
import numpy as np
import pytest
import torch

from lca import style
from lca.style import COLORS, COLUMN_WIDTH, CYCLE, as_array, grid_shape, new_figure

matplotlib.use("Agg")


def test_new_figure_in_the_course_style():
    fig, axes = new_figure(ncols=2, width=4.0, height=3.0)
    assert isinstance(fig, matplotlib.figure.Figure) and len(axes) == 2
    # 8 in of panels are fitted to the 7.5 in column, both sides scaled alike
    w, h = fig.get_size_inches()
    assert w == pytest.approx(COLUMN_WIDTH) and h == pytest.approx(3.0 * COLUMN_WIDTH / 8.0)
    for ax in axes:
        (line,) = ax.plot([0, 1], [0, 1])
        assert line.get_color() == CYCLE[0] == COLORS["blue"]
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        assert ax.get_xlabel() == "x" and ax.get_ylabel() == "y"
    matplotlib.pyplot.close(fig)
    fig, ax = new_figure()  # one axes: not an array
    assert isinstance(ax, matplotlib.axes.Axes)
    matplotlib.pyplot.close(fig)


def test_as_array():
    t = torch.tensor([1.5, 2.0], requires_grad=True)
    a = as_array(t)
    assert isinstance(a, np.ndarray) and a.dtype == np.float64 and a.tolist() == [1.5, 2.0]
    assert as_array(torch.tensor([True, False])).tolist() == [1.0, 0.0]
    assert as_array([1, 2]).dtype == np.float64


def test_figures_fit_the_column_and_keep_their_text_size():
    for ncols, width in [(1, 5.0), (2, 5.2), (3, 3.6), (1, 12.0)]:
        fig, _ = new_figure(ncols=ncols, width=width, height=3.0)
        assert fig.get_size_inches()[0] <= COLUMN_WIDTH + 1e-9
        assert matplotlib.rcParams["font.size"] >= 9 and matplotlib.rcParams["legend.fontsize"] >= 9
        assert matplotlib.rcParams["savefig.dpi"] >= 2 * matplotlib.rcParams["figure.dpi"]
        matplotlib.pyplot.close(fig)
    fig, _ = new_figure(width=4.0, height=3.0)  # narrower than the column: left as it is
    assert tuple(fig.get_size_inches()) == (4.0, 3.0)
    matplotlib.pyplot.close(fig)


def test_a_long_row_of_panels_is_folded_into_a_grid():
    assert [grid_shape(n) for n in (1, 3, 4, 5, 6, 7)] == [(1, 1), (1, 3), (2, 2), (2, 3), (2, 3), (3, 3)]
    fig, axes = new_figure(ncols=5, width=3.6, height=3.0)
    assert len(axes) == 5 and len(fig.axes) == 5  # the sixth cell of the 2 x 3 grid is removed
    rows = {round(ax.get_subplotspec().rowspan.start) for ax in axes}
    assert rows == {0, 1}
    matplotlib.pyplot.close(fig)
    fig, axes = new_figure(ncols=4, nrows=1, squeeze=False)  # an explicit 2-D layout is kept
    assert axes.shape == (1, 4)
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="ncols"):
        new_figure(ncols=0)


def test_legends_sit_outside_the_data():
    fig, (a, b) = new_figure(ncols=2, width=3.5, height=3.0)
    a.plot([0, 1], [0, 1], label="one")
    a.plot([0, 1], [1, 0], label="two")
    b.plot([0, 1], [0, 1])
    leg = style.legend_below(fig, a)
    fig.canvas.draw()
    box = leg.get_window_extent()
    for ax in (a, b):
        assert box.y1 <= ax.get_window_extent().y0 + 1  # below every panel
    matplotlib.pyplot.close(fig)
    # handles of its own (e.g. proxy artists that explain line styles) with or without labels
    fig, (a, b) = new_figure(ncols=2, width=3.5, height=3.0)
    (line,) = a.plot([0, 1], [0, 1])
    proxy = matplotlib.lines.Line2D([], [], ls="--", color="black", label="dashed: bound")
    leg = style.legend_below(fig, handles=[line, proxy], labels=["data", "bound"])
    assert [t.get_text() for t in leg.get_texts()] == ["data", "bound"]
    leg = style.legend_below(fig, handles=[proxy])
    assert [t.get_text() for t in leg.get_texts()] == ["dashed: bound"]
    fig.canvas.draw()
    assert leg.get_window_extent().y1 <= a.get_window_extent().y0 + 1
    matplotlib.pyplot.close(fig)
    fig, ax = new_figure(width=4.0, height=3.0)
    ax.plot([0, 1], [0, 1], label="one")
    leg = style.legend_right(ax)
    fig.canvas.draw()
    assert leg.get_window_extent().x0 >= ax.get_window_extent().x1
    matplotlib.pyplot.close(fig)
