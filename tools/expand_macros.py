"""Expand the book's MathJax macros (``_config.yml``) in the markdown cells of notebook sources and
notebooks, so that the math also renders in Colab and Jupyter, which do not know the book's macros.

    python tools/expand_macros.py [--check]

The book's Markdown pages (notation, proofs) keep the macros: they are only rendered by the book.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent

# An expanded macro merged with the control word before it (``\\topW_{E}``): TeX then reads one
# unknown control word. ``expand`` never writes this; the check looks for it all the same.
MERGED = re.compile(r"\\[A-Za-z]+?(?:W_\{(?:E|KQ|V|U)\}|D_\{\\mathrm\{H\}\})")


def macros() -> dict[str, str]:
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    return cfg["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]


def expand(text: str, table: dict[str, str]) -> str:
    """Replace each ``\\NAME`` by its body. A body that starts with a letter gets a space in front
    when the text before it ends in a control word (``\\top\\WE`` -> ``\\top W_{E}``, not
    ``\\topW_{E}``); spaces do not matter in TeX math."""
    for name, body in sorted(table.items(), key=lambda kv: -len(kv[0])):

        def sub(m, b=body):
            before = m.string[: m.start()]
            return (" " + b) if b[:1].isalpha() and re.search(r"\\[A-Za-z]+$", before) else b

        text = re.sub(r"\\" + name + r"(?![A-Za-z])", sub, text)
    return text


def process_source(path: Path, table) -> bool:
    """Expand inside the markdown cells of a percent-format source; True if it changed."""
    parts = re.split(r"(?m)^(?=# %%)", path.read_text())
    out = [expand(p, table) if p.startswith("# %% [markdown]") else p for p in parts]
    new = "".join(out)
    changed = new != path.read_text()
    if changed:
        path.write_text(new)
    return changed


def process_notebook(path: Path, table) -> bool:
    nb = nbformat.read(path, as_version=4)
    changed = False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            new = expand(cell.source, table)
            changed |= new != cell.source
            cell.source = new
    if changed:
        nbformat.write(nb, path)
    return changed


def main(argv) -> int:
    table = macros()
    check = "--check" in argv
    if check:
        pattern = re.compile(r"\\(" + "|".join(map(re.escape, table)) + r")(?![A-Za-z])")
        bad = [
            str(p)
            for p in sorted((ROOT / "book").glob("*.ipynb"))
            if any(
                c.cell_type == "markdown" and (pattern.search(c.source) or MERGED.search(c.source))
                for c in nbformat.read(p, as_version=4).cells
            )
        ]
        print("\n".join(bad) or "no book macros (and no merged control words) in notebooks")
        return 1 if bad else 0
    for src in sorted((ROOT / "notebooks").glob("*.py")):
        if process_source(src, table):
            print("expanded", src.relative_to(ROOT))
    for nb in sorted((ROOT / "book").glob("*.ipynb")):
        if process_notebook(nb, table):
            print("expanded", nb.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
