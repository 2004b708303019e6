"""``glue`` for chapters that run without the book's build tools.

The book uses myst-nb's ``glue`` to quote computed numbers in its prose. A learner who opens a
chapter in Colab or in a plain Jupyter has ``lca`` but not ``myst_nb`` (a book-building package),
so the chapters import ``glue`` from here: it is myst-nb's own function when myst-nb is installed,
and otherwise a stand-in that writes the same output (the value's display data, under myst-nb's
record prefix when ``display`` is false, with the same ``scrapbook`` metadata). A notebook executed
either way therefore renders, and compares under nbval, identically.
"""

from __future__ import annotations

from typing import Any

__all__ = ["glue", "GLUE_PREFIX"]

#: myst-nb's mime-type prefix for glued values that are stored but not shown
GLUE_PREFIX = "application/papermill.record/"


def _fallback_glue(name: str, variable: Any, display: bool = True) -> None:
    """Store ``variable``'s display data under ``name`` in the cell's output (myst-nb's format)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if not isinstance(display, bool):
        raise TypeError(f"display must be a bool, got {type(display).__name__}")
    from IPython.core.formatters import format_display_data
    from IPython.display import display as ipy_display

    bundle, metadata = format_display_data(variable)
    prefix = "" if display else GLUE_PREFIX
    metadata["scrapbook"] = {"name": name, "mime_prefix": prefix}
    ipy_display({prefix + key: value for key, value in bundle.items()}, raw=True, metadata=metadata)


try:  # the book's own glue when the build tools are installed
    from myst_nb import glue
except ImportError:  # a learner's environment: same output without myst-nb
    glue = _fallback_glue
