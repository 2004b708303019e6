"""Hygiene of the book's notebooks: what nbval and the rendered book rely on.

Every ``.ipynb`` chapter listed in ``_toc.yml`` (a toc entry without a ``.md`` file) is checked for:
the Colab setup cell, execution order, stored outputs, errors, metadata, agreement with its source in
``notebooks/``, raw tensor reprs, and printed numbers next to every figure (nbval never compares
images, so a figure's numbers are only checked when they are printed).

The last tests check the nbval set-up of ``make test`` itself: the kernel is this Python, its working
directory is the notebook's folder, and the sanitizer masks addresses but not digits.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import lca
from conftest import ROOT, repository, toc_files

SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"

COLAB_CELL = """\
# Colab setup: install the course package (runs only on Google Colab)
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "lca[llm] @ git+{url}@{ref}"], check=True)"""

CELL_METADATA = {"tags", "mystnb", "jupyter", "cellView"}
NB_METADATA = {"kernelspec", "language_info", "widgets"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex")
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml")


CHAPTER = re.compile(r"^book/\d\d_")  # chapters are notebooks named book/NN_<name>


def notebook_entries() -> list[str]:
    """Toc entries that are notebooks: chapters (``book/NN_*``), entries with an ``.ipynb`` and
    entries with a source in ``notebooks/``. (A missing Markdown page fails the build test.)"""
    return [
        f
        for f in toc_files()
        if CHAPTER.match(f)
        or (ROOT / f"{f}.ipynb").exists()
        or (ROOT / "notebooks" / f"{Path(f).name}.py").exists()
    ]


NOTEBOOKS = notebook_entries()


@pytest.fixture(params=NOTEBOOKS, ids=[f.removeprefix("book/") for f in NOTEBOOKS])
def entry(request) -> str:
    return request.param


def load(entry: str) -> nbformat.NotebookNode:
    path = ROOT / f"{entry}.ipynb"
    if not path.exists():
        pytest.fail(f"{entry}.ipynb is listed in _toc.yml but does not exist")
    return nbformat.read(path, as_version=4)


def code_cells(nb):
    return [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()]


def output_texts(cell):
    """All text that a code cell's stored outputs show (stream text and text MIME types)."""
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            yield out.get("name", ""), out.text
        elif out.output_type in ("execute_result", "display_data"):
            for mime in TEXT_MIMES:
                if mime in out.get("data", {}):
                    text = out.data[mime]
                    yield mime, text if isinstance(text, str) else "".join(text)
        elif out.output_type == "error":
            yield "error", "\n".join(out.get("traceback", []))


def test_notebook_exists(entry):
    assert (ROOT / f"{entry}.ipynb").exists(), f"{entry}.ipynb is listed in _toc.yml but missing"


def test_colab_setup_cell(entry):
    """Cell 0 installs lca from _config.yml's repository at the release tag v<version> (see
    tools/release.py), so that a learner gets the code whose outputs the page shows."""
    nb = load(entry)
    url, _ = repository()
    ref = "v" + lca.__version__
    cell = nb.cells[0]
    assert cell.cell_type == "code", "cell 0 must be the Colab setup code cell"
    assert "remove-cell" in cell.metadata.get("tags", []), "cell 0 must be tagged remove-cell"
    assert f"lca[llm] @ git+{url}@{ref}" in cell.source, (
        f"cell 0 must install lca from _config.yml's repository ({url}) at the tag {ref}"
    )
    assert cell.source.strip() == COLAB_CELL.format(url=url, ref=ref), (
        "cell 0 differs from the standard Colab setup cell (see tests/test_notebook_hygiene.py)"
    )


def test_executed_in_order_with_outputs(entry):
    nb = load(entry)
    counts = [c.execution_count for _, c in code_cells(nb)]
    assert counts == list(range(1, len(counts) + 1)), (
        f"execution counts {counts} are not 1..n: rebuild with tools/nbbuild.py"
    )
    assert any(c.get("outputs") for _, c in code_cells(nb)), "no stored outputs at all"


def test_no_unexpected_errors(entry):
    nb = load(entry)
    bad = [
        i
        for i, c in code_cells(nb)
        if any(o.output_type == "error" for o in c.get("outputs", []))
        and "raises-exception" not in c.metadata.get("tags", [])
    ]
    assert not bad, f"cells {bad} store an error output but are not tagged raises-exception"


def test_clean_metadata(entry):
    nb = load(entry)
    extra = set(nb.metadata) - NB_METADATA
    assert not extra, f"notebook metadata has stray keys {sorted(extra)}"
    stray = {
        i: sorted(set(c.metadata) - CELL_METADATA)
        for i, c in enumerate(nb.cells)
        if set(c.metadata) - CELL_METADATA
    }
    assert not stray, f"cell metadata beyond tags, figure options, collapse flags: {stray}"


def _nbbuild():
    spec = importlib.util.spec_from_file_location("nbbuild", ROOT / "tools" / "nbbuild.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_matches_source(entry):
    src = ROOT / "notebooks" / f"{Path(entry).name}.py"
    assert src.exists(), f"{entry}.ipynb has no source {src.relative_to(ROOT)}"
    problems = _nbbuild().check([src])
    assert not problems, "\n".join(problems)


def test_no_raw_tensor_reprs(entry):
    nb = load(entry)
    bad = [i for i, c in code_cells(nb) if any("tensor(" in t for _, t in output_texts(c))]
    assert not bad, (
        f"cells {bad} print a raw tensor repr; print numbers with an explicit "
        "format instead (their last digits depend on the CPU's code path)"
    )


def _has_figure(cell) -> bool:
    return any(m in o.get("data", {}) for o in cell.get("outputs", []) for m in IMAGE_MIMES)


def _is_explorer(cell) -> bool:
    return any(WIDGET_VIEW in o.get("data", {}) for o in cell.get("outputs", []))


DIGIT = re.compile(r"\d")


def _prints_numbers(cell) -> bool:
    if cell.cell_type != "code":
        return False
    for out in cell.get("outputs", []):
        if out.output_type == "stream" and out.get("name") == "stdout" and DIGIT.search(out.text):
            return True
        data = out.get("data", {})
        if out.output_type in ("execute_result", "display_data") and not any(
            m in data for m in IMAGE_MIMES
        ):  # a figure's "<Figure size 640x480>" is no number
            if any(DIGIT.search(str(data[m])) for m in TEXT_MIMES if m in data):
                return True
    return False


def test_figures_have_printed_numbers(entry):
    """Each figure cell (or one of the next two cells) prints numbers, so nbval checks the figure.

    Explorer cells (an ipywidgets view next to their static figure) are exempt: their figure is
    the interactive view's default, which the chapter measures elsewhere.
    """
    nb = load(entry)
    bad = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        and _has_figure(c)
        and not _is_explorer(c)
        and not any(_prints_numbers(nb.cells[j]) for j in range(i, min(i + 3, len(nb.cells))))
    ]
    assert not bad, (
        f"figure cells {bad} are not followed within two cells by a cell that prints "
        "the plotted numbers (nbval never compares images)"
    )


# ------------------------------------------------------------------- the nbval set-up itself
def _make_notebook(path: Path, cells: list[tuple[str, list]]) -> None:
    """Write a notebook whose code cells have the given sources and stored stdout texts."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for n, (source, stdout) in enumerate(cells, start=1):
        cell = nbformat.v4.new_code_cell(source, execution_count=n)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=t) for t in stdout]
        nb.cells.append(cell)
    nbformat.write(nb, path)


def _run_nbval(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--nbval",
            "--nbval-current-env",
            "--nbval-sanitize-with",
            str(SANITIZE),
            "--rootdir",
            str(path.parent),
            str(path),
        ],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_nbval_uses_this_python_and_the_notebook_folder(tmp_path):
    """`make test`'s nbval options run each notebook in this venv's Python, from its own folder,
    and the sanitizer masks object addresses."""
    folder = tmp_path / "book"
    folder.mkdir()
    nb = folder / "probe.ipynb"
    _make_notebook(
        nb,
        [
            ("import os, sys\nprint(sys.executable)\nprint(os.getcwd())", [f"{sys.executable}\n{folder}\n"]),
            ("print(object())", ["<object object at 0x7f0000000000>\n"]),
        ],
    )
    proc = _run_nbval(nb)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout, proc.stdout


@pytest.mark.slow
def test_nbval_compares_printed_digits(tmp_path):
    """The sanitizer must not mask digits: a changed fourth decimal fails the comparison."""
    nb = tmp_path / "probe.ipynb"
    _make_notebook(nb, [('print(f"{0.12345:.4f}")', ["0.1235\n"]), ('print(f"{0.12345:.4f}")', ["0.1234\n"])])
    proc = _run_nbval(nb)
    assert proc.returncode != 0, proc.stdout
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout


def test_sanitizer_masks_noise_not_numbers():
    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns(SANITIZE.read_text())

    def clean(text: str) -> str:
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    assert clean("<f at 0x7f3a2b1c90>") == clean("<f at 0x55d0e1a2b3>")
    assert clean("2026-11-28 01:23:45.678901") == clean("2027-01-02T03:04:05Z")
    bar = " 40%|####      | 4/10 [00:01<00:02,  3.20it/s]"
    assert clean(bar) == clean(" 90%|######### | 9/10 [00:04<00:01,  2.10it/s]")
    assert clean("265a556ffee94870a3a1aafc04d86cec") == clean("0ec073a54d30400487cb06dc19f0bf7f")
    assert clean("/a/.venv/lib/python3.11/site-packages/t.py") == clean(
        "/b/lib/python3.11/site-packages/t.py"
    )
    for text in [
        "accuracy 0.9876 at step 100",
        "| 50%| 0.95 |",
        "d=32, m=8, L=64",
        "1.0000e-03",
        "[0.1234, 0.5678]",
    ]:
        assert clean(text) == text, f"the sanitizer changes {text!r}"


def test_notebook_list_is_read_from_the_toc():
    """The toc parser sees the chapters (so the parametrised tests above are not silently empty)."""
    files = toc_files()
    assert files[0] == "book/intro" and "book/references" in files
    assert any(Path(f).name.startswith("0") for f in NOTEBOOKS), NOTEBOOKS
