"""A chapter runs where myst-nb is missing, and glues the same values (lca.glue's fallback).

A learner's Colab or Jupyter has ``lca`` but not the book's build tools. The chapters import
``glue`` from ``lca`` (``lca/_glue.py``): myst-nb's own function when it is installed, otherwise a
stand-in that writes myst-nb's output format. Here a chapter is executed top to bottom on a fresh
kernel in which ``import myst_nb`` raises ImportError (a package of that name, first on the
kernel's ``PYTHONPATH``, raises on import), and every glued value must equal the stored one, with
the same output format (mime type and ``scrapbook`` metadata), so the book renders either way.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "book" / "03_transformer.ipynb"  # glues values, and runs in about 25 s

BLOCKER = 'raise ImportError("myst_nb is blocked: this kernel plays a learner\'s environment")\n'
PROBE = """\
import importlib, lca, lca._glue
try:
    importlib.import_module("myst_nb")
    blocked = False
except ImportError:
    blocked = True
print(blocked, lca.glue is lca._glue._fallback_glue, lca.__file__)
"""


def glued(nb) -> dict[str, dict]:
    """``{name: output}`` of every glued value in ``nb`` (the data and the scrapbook metadata)."""
    values = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get("scrapbook")
            if meta:
                assert meta["name"] not in values, f"{meta['name']} glued twice"
                values[meta["name"]] = {"data": dict(out["data"]), "scrapbook": dict(meta)}
    return values


@pytest.mark.slow
def test_chapter_runs_and_glues_without_myst_nb(tmp_path, monkeypatch):
    blocker = tmp_path / "blocked" / "myst_nb"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(BLOCKER)
    path = [str(blocker.parent), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    spec = tmp_path / "jupyter" / "kernels" / "python3"  # this interpreter, whatever else is installed
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))

    stored = nbformat.read(CHAPTER, as_version=4)
    expected = glued(stored)
    assert expected, f"{CHAPTER.name} glues nothing: choose a chapter that does"
    nb = copy.deepcopy(stored)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(CHAPTER.parent)}}
    ).execute()

    probe = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("name") == "stdout")
    blocked, fallback, where = probe.split(maxsplit=2)
    assert blocked == "True", "the kernel could still import myst_nb"
    assert fallback == "True", f"lca.glue is not the fallback in the kernel (lca from {where.strip()})"
    assert glued(nb) == expected
