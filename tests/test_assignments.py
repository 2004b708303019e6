"""The graded assignments (otter-grader): masters, the build, the student notebooks, the teachers page.

One module-scoped build runs ``otter assign`` on every master (which executes the solutions and
fails unless they pass every public and hidden test). The tests then check what a teacher hands
out: the Colab setup cell comes first, no solution or hidden test leaks into the student folder,
and the student notebook with its stubs left as they are fails its checks, while the solutions
notebook, run by the same harness, passes them all (so the failure is not an artefact of the
harness).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import zipfile
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

import lca

ROOT = Path(__file__).resolve().parent.parent
MASTER_DIR = ROOT / "assignments"
NAMES = ("01_memory_and_task", "02_value_matrix_and_embeddings", "03_attention_and_hijacking")

INSTALL = f"lca[llm] @ git+https://github.com/elephants-course/elephants@v{lca.__version__}"
SETUP_CELL = f"""# Colab setup: install the course package (runs only on Google Colab)
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "{INSTALL}"], check=True)"""

# Distinctive solution lines, one or more per assignment, that must never reach a student.
KNOWN_SOLUTION_LINES = {
    "01_memory_and_task": [
        "return values.T @ keys",
        "contexts = targets[:, None] ^ (1 << flips)",
        "near = D[contexts] == 1",
    ],
    "02_value_matrix_and_embeddings": [
        "return W_E.T @ A @ W_E",
        "inside = mask.T[contexts]",
        "return torch.linalg.eigvalsh(W @ W.T).flip(0)",
    ],
    "03_attention_and_hijacking": [
        "front = [y_hijack ^ (1 << (i % m)) for i in range(n)]",
        "return beta * W_E.T @ B @ W_E",
        "scores = (X @ q[:, :, None]).squeeze(-1)",
    ],
}


def _load_tool():
    path = ROOT / "tools" / "build_assignments.py"
    spec = importlib.util.spec_from_file_location("build_assignments", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:traitlets")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Run the build (otter assign on every master) once; returns the output folder."""
    out = tmp_path_factory.mktemp("assignments")
    summaries = tool.build(out=out, jobs=3)
    assert [s["name"] for s in summaries] == list(NAMES)
    return out


def _raw_blocks(nb):
    """Yield (cell, stack) where stack lists the open otter blocks (question/solution/tests)."""
    stack = []
    for cell in nb.cells:
        first = cell.source.splitlines()[0].strip().lower() if cell.source.strip() else ""
        if cell.cell_type == "raw" and re.match(r"#\s*begin\s+(question|solution|tests|prompt)", first):
            stack.append(first.split()[-1])
            continue
        if cell.cell_type == "raw" and re.match(r"#\s*end\s+(question|solution|tests|prompt)", first):
            assert stack and stack[-1] == first.split()[-1], f"unbalanced block at {first!r}"
            stack.pop()
            continue
        yield cell, list(stack)


def solution_lines(master: Path) -> list[str]:
    """Every substantial line of solution code and of written solutions in a master."""
    nb = nbformat.read(master, as_version=4)
    lines = []
    for cell, stack in _raw_blocks(nb):
        if "solution" not in stack:
            continue
        if cell.cell_type == "markdown":
            lines += [ln.strip() for ln in cell.source.splitlines() if len(ln.strip()) >= 25]
        elif cell.cell_type == "code":
            inside = False
            for ln in cell.source.splitlines():
                s = ln.strip()
                if s == "# BEGIN SOLUTION":
                    inside = True
                elif s == "# END SOLUTION":
                    inside = False
                elif (inside or s.endswith("# SOLUTION")) and not s.startswith("#"):
                    code = s.split("  #")[0].strip()  # drop a trailing comment
                    if len(code) >= 12:
                        lines.append(code)
    return lines


def _text_of(folder: Path) -> str:
    """All notebook sources and test files of a folder, as one string."""
    parts = []
    for f in sorted(folder.rglob("*")):
        if f.suffix == ".ipynb":
            parts += [c.source for c in nbformat.read(f, as_version=4).cells]
        elif f.suffix == ".py":
            parts.append(f.read_text())
    return "\n".join(parts)


def _run_cells(nb_path: Path) -> tuple[dict, list[str]]:
    """Execute a notebook's code cells in one namespace (cwd = its folder), skipping otter's check,
    check-all and export calls; returns the namespace and the errors raised by cells."""
    ns: dict = {"__name__": "__main__"}
    errors = []
    for i, cell in enumerate(nbformat.read(nb_path, as_version=4).cells):
        if cell.cell_type != "code" or any(
            re.match(r"grader\.(check|check_all|export)\(", ln.strip()) for ln in cell.source.splitlines()
        ):
            continue
        try:
            exec(compile(cell.source, f"<{nb_path.name} cell {i}>", "exec"), ns)
        except Exception as exc:  # stubs make later cells fail; that is expected
            errors.append(f"cell {i}: {type(exc).__name__}: {exc}")
    return ns, errors


def _grade(ns: dict, tests_dir: Path, nb_name: str) -> dict[str, float]:
    """Grade every question with a test file in ``tests_dir`` using otter's Notebook grader."""
    import otter

    grader = otter.Notebook(nb_name, tests_dir=str(tests_dir))
    grades = {}
    for test in sorted(tests_dir.glob("q*.py")):
        result = grader.check(test.stem, global_env=ns)
        grades[test.stem] = float(result.grade)
    return grades


def _questions(master: Path) -> list[dict]:
    return tool.questions(master)


# ----------------------------------------------------------------------------- masters and sources
def test_masters_match_sources():
    assert sorted(p.stem for p in tool.masters()) == sorted(NAMES)
    assert tool.check() == []


def test_masters_have_required_shape():
    for name in NAMES:
        master = MASTER_DIR / f"{name}.ipynb"
        nb = nbformat.read(master, as_version=4)
        qs = _questions(master)
        assert len(qs) >= 5, f"{name}: at least five questions"
        assert sum(bool(q.get("manual")) for q in qs) >= 1, f"{name}: at least one written question"
        assert sum(not q.get("manual") for q in qs) >= 3, f"{name}: at least three code questions"
        assert len({q["name"] for q in qs}) == len(qs), f"{name}: question names are unique"
        assert any(re.search(r"^import lca$", c.source, re.M) for c in nb.cells if c.cell_type == "code")
        config = next(c for c in nb.cells if c.cell_type == "raw" and "ASSIGNMENT CONFIG" in c.source)
        cfg = yaml.safe_load(config.source)
        assert cfg["init_cell"] is False, "otter's init cell would come before the Colab setup cell"
        assert cfg["tests"]["files"] is True, "Colab needs test files, not notebook metadata"
        assert any("lca @ git+" in r for r in cfg["requirements"]), "the autograder installs lca"


def test_solution_line_extraction_finds_known_lines():
    for name, known in KNOWN_SOLUTION_LINES.items():
        lines = solution_lines(MASTER_DIR / f"{name}.ipynb")
        assert len(lines) >= 15
        for line in known:
            assert line in lines, f"{line!r} not found among the solution lines of {name}"


# ----------------------------------------------------------------------------- the build
def test_build_outputs(built):
    for name in NAMES:
        student, autograder = built / name / "student", built / name / "autograder"
        assert (student / f"{name}.ipynb").is_file()
        assert (built / f"{name}-student.zip").is_file()
        with zipfile.ZipFile(built / f"{name}-autograder.zip") as zf:
            names = zf.namelist()
            assert "run_autograder" in names and "environment.yml" in names
            assert (
                f"lca @ git+https://github.com/elephants-course/elephants@v{lca.__version__}"
                in zf.read("environment.yml").decode()
            ), "the grading image must install lca"
            graded = [q["name"] for q in _questions(MASTER_DIR / f"{name}.ipynb") if not q.get("manual")]
            for q in graded:
                assert f"tests/{q}.py" in names, f"{name}: autograder lacks the tests of {q}"
        with zipfile.ZipFile(student / "tests.zip") as zf:
            expected = sorted(f"tests/{f.name}" for f in (student / "tests").glob("*.py"))
            assert sorted(zf.namelist()) == expected
        for q in graded:
            public = (student / "tests" / f"{q}.py").read_text()
            full = (autograder / "tests" / f"{q}.py").read_text()
            assert "hidden=False" in public, f"{name} {q}: needs a public test"
            assert "hidden=True" in full, f"{name} {q}: needs a hidden test"


def test_student_notebook_starts_with_colab_setup(built):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] in SETUP_CELL
    chapter_cells = {
        jupytext.read(p, fmt="py:percent").cells[0].source for p in sorted((ROOT / "notebooks").glob("*.py"))
    }
    assert chapter_cells <= {SETUP_CELL}, "the chapters' setup cell changed: update SETUP_CELL here"
    for name in NAMES:
        nb = nbformat.read(built / name / "student" / f"{name}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code[0].source == SETUP_CELL, f"{name}: the first code cell must be the Colab setup cell"
        assert "otter.Notebook(" in code[1].source and "tests.zip" in code[1].source
        assert sum('grader.check("q' in c.source for c in code) >= 3


def test_no_solution_leaks(built):
    for name in NAMES:
        lines = solution_lines(MASTER_DIR / f"{name}.ipynb")
        student_text = _text_of(built / name / "student")
        autograder_text = _text_of(built / name / "autograder")
        for line in lines + KNOWN_SOLUTION_LINES[name]:
            assert line not in student_text, f"{name}: solution line leaked: {line!r}"
        # control: the same search finds the solutions where they belong
        assert all(line in autograder_text for line in KNOWN_SOLUTION_LINES[name])
        hidden = re.findall(r"hidden=True\)\ndef (\w+)", autograder_text)
        assert len(hidden) >= 5
        for fn in hidden:
            assert fn not in student_text, f"{name}: hidden test {fn} leaked"
        student_nb = nbformat.read(built / name / "student" / f"{name}.ipynb", as_version=4)
        answers = [
            c
            for c in student_nb.cells
            if c.cell_type == "markdown" and "otter_answer_cell" in c.metadata.get("tags", [])
        ]
        manual = [q for q in _questions(MASTER_DIR / f"{name}.ipynb") if q.get("manual")]
        assert len(answers) == len(manual), f"{name}: one blank answer cell per written question"
        assert all(c.source.startswith("_Type your answer here") for c in answers)


@pytest.fixture
def torch_state():
    """The notebooks set torch's thread count and global seed; restore both afterwards."""
    import torch

    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    yield
    torch.set_num_threads(threads)
    torch.random.set_rng_state(rng)


@pytest.mark.parametrize("name", NAMES)
def test_stubs_fail_and_solutions_pass(built, name, tmp_path, monkeypatch, torch_state):
    student = tmp_path / "student"
    autograder = tmp_path / "autograder"
    shutil.copytree(built / name / "student", student)
    shutil.copytree(built / name / "autograder", autograder)
    graded = [q["name"] for q in _questions(MASTER_DIR / f"{name}.ipynb") if not q.get("manual")]

    monkeypatch.chdir(student)
    ns, errors = _run_cells(student / f"{name}.ipynb")
    assert "grader" in ns, f"the otter init cell failed: {errors}"
    public = _grade(ns, student / "tests", f"{name}.ipynb")
    hidden = _grade(ns, autograder / "tests", f"{name}.ipynb")
    assert sorted(public) == sorted(graded)
    failing = {q: g for q, g in public.items() if g > 0}
    assert not failing, f"{name}: public checks pass on the untouched stubs: {failing}"
    assert all(g == 0 for g in hidden.values()), f"{name}: some tests pass on the stubs: {hidden}"

    monkeypatch.chdir(autograder)
    ns, errors = _run_cells(autograder / f"{name}.ipynb")
    assert not errors, f"{name}: the solutions notebook raised: {errors}"
    solved = _grade(ns, autograder / "tests", f"{name}.ipynb")
    assert solved == {q: 1.0 for q in graded}


def _answer_cell_before(nb, q: str, tag: str) -> int:
    """Index of the code cell tagged ``tag`` (a student's answer cell or otter's solution cell)
    that comes last before ``grader.check("q")``."""
    check = next(
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and c.source.strip() == f'grader.check("{q}")'
    )
    return max(
        i
        for i, c in enumerate(nb.cells[:check])
        if c.cell_type == "code" and tag in c.metadata.get("tags", [])
    )


def _otter_run(autograder_zip: Path, submission: Path, out: Path) -> dict[str, float]:
    """Grade ``submission`` with otter-grader's own local runner (``otter run``, the autograder
    that Gradescope runs, without a container); returns the score of every graded question."""
    import json
    import subprocess
    import sys

    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "otter",
            "run",
            "--no-logo",
            "-a",
            str(autograder_zip),
            "-o",
            str(out),
            str(submission),
        ],
        capture_output=True,
        text=True,
        env=tool._env(),
        timeout=900,
    )
    assert proc.returncode == 0, f"otter run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    results = json.loads((out / "results.json").read_text())
    return {t["name"]: float(t["score"]) for t in results["tests"] if t.get("max_score") is not None}


@pytest.mark.parametrize("name", NAMES)
def test_otter_run_grades_submissions_end_to_end(built, name, tmp_path):
    """A teacher's grading run, end to end: ``otter run`` on the autograder zip gives the
    solutions full marks, the untouched student notebook zero, and a submission that answers only
    the first code question exactly that question's points."""
    graded = {
        q["name"]: float(q.get("points", 1))
        for q in _questions(MASTER_DIR / f"{name}.ipynb")
        if not q.get("manual")
    }
    archive = built / f"{name}-autograder.zip"
    solutions = built / name / "autograder" / f"{name}.ipynb"
    stubs = built / name / "student" / f"{name}.ipynb"

    assert _otter_run(archive, solutions, tmp_path / "full") == graded

    assert _otter_run(archive, stubs, tmp_path / "zero") == {q: 0.0 for q in graded}

    first = next(iter(graded))
    partial = nbformat.read(stubs, as_version=4)
    solved = nbformat.read(solutions, as_version=4)
    answer = partial.cells[_answer_cell_before(partial, first, "otter_answer_cell")]
    answer.source = solved.cells[_answer_cell_before(solved, first, "otter_assign_solution_cell")].source
    nbformat.write(partial, tmp_path / f"{name}.ipynb")
    scores = _otter_run(archive, tmp_path / f"{name}.ipynb", tmp_path / "partial")
    assert scores == {q: (graded[q] if q == first else 0.0) for q in graded}


def test_build_fails_on_wrong_solution(tmp_path, monkeypatch):
    """otter assign (through the build tool) rejects a master whose solution fails its tests."""
    cells = [
        nbformat.v4.new_raw_cell(
            "# ASSIGNMENT CONFIG\ninit_cell: false\nexport_cell: false\n"
            "tests:\n  files: true\n  ok_format: false"
        ),
        nbformat.v4.new_raw_cell("# BEGIN QUESTION\nname: q1"),
        nbformat.v4.new_markdown_cell("Write `double(x)`."),
        nbformat.v4.new_raw_cell("# BEGIN SOLUTION"),
        nbformat.v4.new_code_cell(
            "def double(x):\n    # BEGIN SOLUTION\n    return 3 * x\n    # END SOLUTION"
        ),
        nbformat.v4.new_raw_cell("# END SOLUTION"),
        nbformat.v4.new_raw_cell("# BEGIN TESTS"),
        nbformat.v4.new_code_cell("def test_double(double):\n    assert double(2) == 4"),
        nbformat.v4.new_raw_cell("# END TESTS"),
        nbformat.v4.new_raw_cell("# END QUESTION"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {"kernelspec": dict(tool.KERNELSPEC), "language_info": {"name": "python"}}
    master = tmp_path / "broken.ipynb"
    nbformat.write(nb, master)
    with pytest.raises(RuntimeError, match="otter assign failed"):
        tool.assign(master, tmp_path / "out")


def test_build_rejects_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="no_such_assignment"):
        tool.build(["no_such_assignment"], out=tmp_path)


# ----------------------------------------------------------------------------- the teachers page
def test_teachers_page():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = re.findall(r"file: (\S+)", yaml.safe_dump(toc))
    assert "book/teachers" in files
    text = (ROOT / "book" / "teachers.md").read_text()
    for needle in (
        "make assignments",
        "build/assignments",
        "otter grade",
        "otter run",
        "Gradescope",
        "Colab",
        "tests.zip",
        "solutions",
        *NAMES,
    ):
        assert needle in text, f"book/teachers.md should mention {needle!r}"
    for name in NAMES:
        qs = _questions(MASTER_DIR / f"{name}.ipynb")
        points = sum(q.get("points", 1) for q in qs)
        auto = sum(q.get("points", 1) for q in qs if not q.get("manual"))
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}`"))
        assert f"{len(qs)} questions" in row and f"{points} points: {auto} autograded" in row, (
            f"book/teachers.md: the size of {name} is out of date"
        )
