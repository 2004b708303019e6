"""ipywidgets explorers. Each explorer first draws its figure at the default settings as an
ordinary (static) output, so the rendered book and a notebook opened without a kernel show it,
then, in a live kernel, adds controls that redraw the figure below them.

Nothing is drawn into the widget area while the cell runs: a figure captured there would be stored
in the widget state and show up as an extra output under nbval, and the static figure above already
shows the defaults.
"""

from __future__ import annotations

from typing import Callable

import matplotlib.pyplot as plt


def explorer(draw: Callable, title: str = "", **controls) -> None:
    """Show ``draw(**defaults)`` as a static figure, then controls that redraw it on change.

    Args:
        draw: a function of the control values returning a matplotlib Figure.
        title: a line shown above the controls.
        controls: name -> ipywidgets control (its ``.value`` is the default).
    """
    if not callable(draw):
        raise ValueError(f"draw must be callable, got {type(draw).__name__}")
    for name, control in controls.items():
        if not hasattr(control, "value") or not hasattr(control, "observe"):
            raise ValueError(f"control {name!r} must be an ipywidgets control with a .value")
    defaults = {k: c.value for k, c in controls.items()}
    draw(**defaults)
    plt.show()
    import ipywidgets as widgets
    from IPython.display import display

    out = widgets.Output()

    def redraw(_change=None):
        values = {k: c.value for k, c in controls.items()}
        with out:
            out.clear_output(wait=True)
            draw(**values)
            plt.show()

    for control in controls.values():
        control.observe(redraw, names="value")
    header = widgets.HTML(f"<b>{title}</b> (change a control to redraw; needs a running kernel)")
    display(widgets.VBox([header, *controls.values(), out]))
    return None
