"""Execute every chapter top to bottom on a fresh kernel and report seconds per notebook and per
cell (slowest first), as JSON on stdout.

    python bench/book_time.py                    # all chapters listed in _toc.yml
    python bench/book_time.py book/03_transformer.ipynb --top 5

JSON keys: ``total_s``, ``notebooks`` (name -> seconds), ``slowest_cells`` (name, cell index,
seconds, first source line), ``threads`` and ``machine``. Speed is measured here, never asserted in
the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def toc_notebooks() -> list[Path]:
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(toc)
    return [ROOT / (f + ".ipynb") for f in files if (ROOT / (f + ".ipynb")).exists()]


def _seconds(cell) -> float:
    t = cell.get("metadata", {}).get("execution", {})
    start, end = t.get("iopub.execute_input"), t.get("shell.execute_reply")
    if not start or not end:
        return 0.0
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def time_notebook(path: Path) -> tuple[float, list[tuple[int, float, str]]]:
    nb = nbformat.read(path, as_version=4)
    os.environ.setdefault("IPYTHONDIR", str(ROOT / ".ipython"))
    os.environ.pop("MPLBACKEND", None)
    t0 = time.perf_counter()
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        record_timing=True,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    total = time.perf_counter() - t0
    cells = [
        (i, _seconds(c), (c.source.splitlines() or [""])[0][:70])
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
    ]
    return total, cells


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="time every chapter on a fresh kernel")
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--top", type=int, default=15, help="how many slowest cells to list")
    args = ap.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or toc_notebooks()
    result = {"notebooks": {}, "slowest_cells": []}
    cells = []
    for p in paths:
        total, per_cell = time_notebook(p)
        result["notebooks"][p.stem] = round(total, 2)
        cells += [(p.stem, i, s, src) for i, s, src in per_cell]
        print(f"{p.stem}: {total:.1f} s", file=sys.stderr)
    cells.sort(key=lambda c: -c[2])
    result["slowest_cells"] = [
        {"notebook": n, "cell": i, "seconds": round(s, 2), "source": src}
        for n, i, s, src in cells[: args.top]
    ]
    result["total_s"] = round(sum(result["notebooks"].values()), 2)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    import torch

    result["threads"] = torch.get_num_threads()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
