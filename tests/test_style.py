"""Tests of lca.style: the shared figure helpers give matplotlib Figures in the course's style."""

import matplotlib
import numpy as np
import torch

from lca.style import COLORS, CYCLE, as_array, new_figure

matplotlib.use("Agg")


def test_new_figure_in_the_course_style():
    fig, axes = new_figure(ncols=2, width=4.0, height=3.0)
    assert isinstance(fig, matplotlib.figure.Figure) and len(axes) == 2
    assert tuple(fig.get_size_inches()) == (8.0, 3.0)
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
