"""The chapters' coding exercises are exercises a learner does (issue #15).

In every chapter notebook, a coding exercise is an ``{exercise}`` cell followed by a code cell: the
*stub* (tag ``exercise-stub``), whose functions only ``raise NotImplementedError`` (or hold
``...``) and whose stored output is the checker's one "not implemented yet" line. The reference
solution comes later, inside the exercise's gated solution (``{solution-start}`` ...
``{solution-end}``, a collapsed dropdown in the book), in a cell tagged ``exercise-reference``
that Jupyter and Colab show collapsed; it calls the same checker, which passes it, once. nbval
executes both cells and compares their outputs, so the stub's message and the reference's pass
are checked on every run.

Nowhere else does a "tests passed" line or a line of reference code appear: not in another code
cell, not in a visible markdown cell (a ``~~~python`` block of a solution would show the answer in
Colab).
"""

from __future__ import annotations

import ast
import re

import nbformat
import pytest

from conftest import ROOT, toc_files

CHAPTERS = [f for f in toc_files() if re.match(r"^book/\d\d_", f)]
EXERCISE = re.compile(r"```\{exercise\}[^\n]*\n:label:\s*(\S+)")
SOLUTION_START = re.compile(r"```\{solution-start\}\s*(\S+)")
SOLUTION_END = "```{solution-end}"
PASSED = re.compile(r"tests? passed")
NOT_YET = "not implemented yet"


def _load(entry: str):
    return nbformat.read(ROOT / f"{entry}.ipynb", as_version=4)


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out:
            parts.append(str(out["data"].get("text/plain", "")))
    return "".join(parts)


def _tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def coding_exercises(nb) -> list[dict]:
    """Every coding exercise of a notebook: label, stub index, solution range, reference indices."""
    found = []
    cells = nb.cells
    for i, cell in enumerate(cells):
        if cell.cell_type != "markdown":
            continue
        for label in EXERCISE.findall(cell.source):
            if i + 1 >= len(cells) or cells[i + 1].cell_type != "code":
                continue  # a written exercise
            start = next(
                (
                    j
                    for j in range(i + 1, len(cells))
                    if cells[j].cell_type == "markdown" and label in SOLUTION_START.findall(cells[j].source)
                ),
                None,
            )
            end = None
            if start is not None:
                end = next(
                    (
                        j
                        for j in range(start + 1, len(cells))
                        if cells[j].cell_type == "markdown" and SOLUTION_END in cells[j].source
                    ),
                    None,
                )
            refs = [] if end is None else [j for j in range(start, end + 1) if cells[j].cell_type == "code"]
            found.append({"label": label, "stub": i + 1, "start": start, "end": end, "refs": refs})
    return found


def _stub_problem(source: str) -> str | None:
    """None if every function defined in ``source`` is a stub (a docstring, then ``raise
    NotImplementedError`` or ``...``), else what is wrong."""
    tree = ast.parse(source)
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    if not functions:
        return "defines no function to fill in"
    for fn in functions:
        body = fn.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(getattr(body[0], "value", None), ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body = body[1:]
        ok = len(body) == 1 and (
            (isinstance(body[0], ast.Raise) and "NotImplementedError" in ast.unparse(body[0]))
            or (
                isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and body[0].value.value is Ellipsis
            )
        )
        if not ok:
            return f"function {fn.name} has a body (it should only raise NotImplementedError)"
    return None


def _checker_calls(source: str) -> set[str]:
    return set(re.findall(r"\b(check_\w+)\(", source))


def _reference_lines(source: str) -> list[str]:
    """The substantial lines of a reference cell's function bodies (not signatures, not calls of
    the checker, not comments)."""
    lines = []
    for ln in source.splitlines():
        s = ln.strip()
        if (
            len(s) < 16
            or s.startswith(("#", "def ", '"""', "check_", "return None"))
            or not ln.startswith(" ")
        ):
            continue
        lines.append(s)
    return lines


@pytest.mark.parametrize("entry", CHAPTERS)
def test_coding_exercises_are_stub_first(entry):
    nb = _load(entry)
    exercises = coding_exercises(nb)
    assert exercises, f"{entry}: no coding exercise found"
    for ex in exercises:
        where = f"{entry}, exercise {ex['label']}"
        stub = nb.cells[ex["stub"]]
        assert "exercise-stub" in _tags(stub), f"{where}: the cell after the exercise must be its stub"
        assert "hide-input" not in _tags(stub) and "hide-cell" not in _tags(stub), (
            f"{where}: the stub is hidden"
        )
        problem = _stub_problem(stub.source)
        assert problem is None, f"{where}: the stub {problem}"
        out = _text(stub)
        assert out.count(NOT_YET) == 1, f"{where}: the stub's checker must say {NOT_YET!r} once, got {out!r}"
        assert not PASSED.search(out)
        assert ex["start"] is not None and ex["end"] is not None, (
            f"{where}: needs a gated solution ({{solution-start}} {ex['label']} ... {{solution-end}})"
        )
        assert ":class: dropdown" in nb.cells[ex["start"]].source, f"{where}: the solution must be a dropdown"
        refs = [nb.cells[j] for j in ex["refs"]]
        assert refs and all("exercise-reference" in _tags(c) for c in refs), (
            f"{where}: the code inside the solution must be tagged exercise-reference"
        )
        for c in refs:
            hidden = c.metadata.get("jupyter", {})
            assert hidden.get("source_hidden") and hidden.get("outputs_hidden"), (
                f"{where}: the reference cell must start collapsed in Jupyter"
            )
            assert c.metadata.get("cellView") == "form", f"{where}: Colab must hide the reference's code"
        checkers = _checker_calls(stub.source)
        assert checkers, f"{where}: the stub cell must call the chapter's checker"
        ref_text = "".join(_text(c) for c in refs)
        assert len(PASSED.findall(ref_text)) == len(checkers), (
            f"{where}: the reference must pass each checker once, got {ref_text!r}"
        )
        assert checkers <= set().union(*(_checker_calls(c.source) for c in refs)), (
            f"{where}: the reference is not checked by the stub's checker"
        )


@pytest.mark.parametrize("entry", CHAPTERS)
def test_no_answer_outside_a_solution(entry):
    nb = _load(entry)
    exercises = coding_exercises(nb)
    inside = {j for ex in exercises if ex["start"] is not None for j in range(ex["start"], ex["end"] + 1)}
    references = [_reference_lines(nb.cells[j].source) for ex in exercises for j in ex["refs"]]
    for i, cell in enumerate(nb.cells):
        if i in inside:
            continue
        if cell.cell_type == "code":
            assert not PASSED.search(_text(cell)), f"{entry}: cell {i} prints a pass outside a solution"
            assert "exercise-reference" not in _tags(cell), (
                f"{entry}: cell {i} is a reference outside a solution"
            )
        for lines in references:
            leaked = _leaked(lines, cell.source)
            assert not leaked, f"{entry}: cell {i} shows reference code outside its solution: {leaked[:3]}"


def _leaked(lines: list[str], text: str) -> list[str]:
    """The reference's lines found in ``text`` when they give the answer away: at least half of
    them (a single shared idiom such as a loop header or a log-softmax is not the answer)."""
    found = [ln for ln in lines if ln in text]
    return found if lines and len(found) >= max(1, (len(lines) + 1) // 2) else []


def test_the_book_keeps_its_coding_exercises():
    counts = {entry: len(coding_exercises(_load(entry))) for entry in CHAPTERS}
    assert sum(counts.values()) >= 24, f"coding exercises per chapter: {counts}"


def test_the_form_check_can_fail():
    """The checks above see an answered stub, a missing solution and a leaked reference line."""
    assert _stub_problem("def f(x):\n    raise NotImplementedError\n") is None
    assert _stub_problem('def f(x):\n    """Doc."""\n    ...\n') is None
    assert "has a body" in _stub_problem("def f(x):\n    return x.T @ x  # replace with your own\n")
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("```{exercise} T\n:label: ex-t\n\nDo.\n```"),
            nbformat.v4.new_code_cell("def f(x):\n    return x + 1\n\n\ncheck_f(f)"),
            nbformat.v4.new_markdown_cell("No gated solution here."),
        ]
    )
    (ex,) = coding_exercises(nb)
    assert ex["start"] is None and ex["refs"] == []
    lines = _reference_lines("def g(x):\n    return torch.softmax(x, dim=1) @ x\n")
    assert lines == ["return torch.softmax(x, dim=1) @ x"]
    assert _leaked(lines, "~~~python\ny = g(x)\nreturn torch.softmax(x, dim=1) @ x\n~~~") == lines
    three = ["G = keys @ keys.T  # overlaps", "G = G - torch.diag(torch.diagonal(G))", "return G @ values"]
    assert _leaked(three, "for i in range(3):\n    G = G - torch.diag(torch.diagonal(G))") == []
