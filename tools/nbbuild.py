"""Build the book's notebooks from their sources and execute them on a fresh kernel.

Each chapter is written as a percent-format script ``notebooks/<name>.py`` (``# %%`` code cells,
``# %% [markdown]`` markdown cells, ``# %% tags=["remove-cell"]`` for tags). This tool turns it into
``book/<name>.ipynb``, executes it top to bottom on a fresh kernel with the working directory
``book/`` and writes the outputs with clean, deterministic metadata (cell ids ``cell-<i>``, no
timestamps), so that a fresh run is the only source of notebook diffs.

    python tools/nbbuild.py notebooks/02_lca_task.py      # one chapter
    python tools/nbbuild.py --all                         # every chapter
    python tools/nbbuild.py --check                       # sources and notebooks agree (no run)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "notebooks"
BOOK = ROOT / "book"
CELL_TIMEOUT = 600
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


#: the cell metadata a chapter keeps: its tags, myst-nb's figure options (a numbered caption and
#: alt text for the figure the cell draws), Jupyter's "collapsed" flags and Colab's form view (an
#: exercise's reference solution starts collapsed in JupyterLab and hidden behind "Show code" in
#: Colab)
CELL_METADATA = ("tags", "mystnb", "jupyter", "cellView")


def kept_metadata(metadata: dict) -> dict:
    """The part of a cell's metadata that a chapter keeps (see ``CELL_METADATA``), in that order."""
    kept = {}
    for key in CELL_METADATA:
        value = metadata.get(key)
        if value:
            kept[key] = list(value) if key == "tags" else value
    return kept


def read_source(path: Path) -> nbformat.NotebookNode:
    nb = jupytext.read(path, fmt="py:percent")
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    for i, cell in enumerate(nb.cells):
        cell.metadata = kept_metadata(cell.metadata)
        cell.id = f"cell-{i}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb.metadata = {
        "kernelspec": dict(KERNELSPEC),
        "language_info": {"name": "python"},
        **({"widgets": nb.metadata["widgets"]} if "widgets" in nb.metadata else {}),
    }
    for cell in nb.cells:
        cell.metadata = kept_metadata(cell.metadata)
        for out in cell.get("outputs", []):
            if "metadata" in out:
                out.metadata = {k: v for k, v in out.metadata.items() if k != "execution"}
    return nb


def execute(src: Path, timeout: int = CELL_TIMEOUT) -> float:
    nb = read_source(src)
    env_dir = ROOT / ".ipython"
    os.environ.setdefault("IPYTHONDIR", str(env_dir))
    os.environ.pop("MPLBACKEND", None)
    t0 = time.perf_counter()
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(BOOK)}}
    ).execute()
    seconds = time.perf_counter() - t0
    out = BOOK / (src.stem + ".ipynb")
    nbformat.write(clean(nb), out)
    return seconds


def check(paths) -> list[str]:
    """Problems where a notebook's cells differ from its source (sources, types or tags)."""
    problems = []
    for src in paths:
        target = BOOK / (src.stem + ".ipynb")
        if not target.exists():
            problems.append(f"{target.relative_to(ROOT)} is missing (run tools/nbbuild.py {src})")
            continue
        want = read_source(src)
        have = nbformat.read(target, as_version=4)
        a = [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in want.cells]
        b = [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in have.cells]
        if a != b:
            problems.append(
                f"{target.relative_to(ROOT)} does not match {src.relative_to(ROOT)}: "
                "rebuild it with tools/nbbuild.py"
            )
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", nargs="*", type=Path)
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    paths = (
        sorted(SRC.glob("*.py"))
        if (args.all or (args.check and not args.sources))
        else [p.resolve() for p in args.sources]
    )
    if not paths:
        ap.error("name a source in notebooks/ or pass --all")
    if args.check:
        problems = check(paths)
        print("\n".join(problems) or "notebooks match their sources")
        return 1 if problems else 0
    for src in paths:
        s = execute(src)
        print(f"{src.stem}: executed in {s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
