"""Tests of lca.widgets: an explorer draws its figure at the defaults first (a static output), then
redraws it with the new values when a control changes."""

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt
import pytest

from lca.widgets import explorer

matplotlib.use("Agg")


def test_explorer_draws_the_defaults_then_redraws_on_change():
    calls = []

    def draw(n, scale):
        calls.append((n, scale))
        fig, ax = plt.subplots()
        ax.plot(range(n), [scale * i for i in range(n)])
        return fig

    n = widgets.IntSlider(value=3, min=1, max=9)
    scale = widgets.FloatSlider(value=0.5, min=0.0, max=1.0)
    assert explorer(draw, "a title", n=n, scale=scale) is None
    assert calls == [(3, 0.5)]
    n.value = 5
    assert calls[-1] == (5, 0.5)
    plt.close("all")


def test_explorer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="draw"):
        explorer("not callable")
    with pytest.raises(ValueError, match="control 'n'"):
        explorer(lambda n: None, n=3)
