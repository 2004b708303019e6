"""ipywidgets explorers. Each explorer first draws its figure at the default settings as an
ordinary (static) output, so the rendered book and a notebook opened without a kernel show it,
then, in a live kernel, adds sliders that redraw the figure."""

from __future__ import annotations

import matplotlib.pyplot as plt


def explorer(draw, title: str = "", **controls):
    """Show ``draw(**defaults)`` as a static figure, then an interactive version with ``controls``.

    Args:
        draw: a function of the control values returning a matplotlib Figure.
        title: a line printed above the controls.
        controls: name -> ipywidgets control (its ``.value`` is the default).
    """
    defaults = {k: c.value for k, c in controls.items()}
    fig = draw(**defaults)
    plt.show()
    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError:  # pragma: no cover - ipywidgets is a dependency of lca
        return None
    out = widgets.Output()

    def redraw(**values):
        with out:
            out.clear_output(wait=True)
            draw(**values)
            plt.show()

    ui = widgets.interactive(redraw, **controls)
    box = widgets.VBox([widgets.HTML(f"<b>{title}</b> (move the sliders to redraw)"),
                        *ui.children[:-1], out])
    display(box)
    plt.close(fig)
    return None
