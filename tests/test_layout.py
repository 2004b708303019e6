"""The package's layout follows the book: an engine every chapter builds on, then one module per
chapter in book order. Checked from the source files (parsed, not imported):

- a chapter module imports only the engine and earlier chapters; the engine imports no chapter;
- no function imports lca's own modules, torch, math or numpy (all imports sit at the top of a
  module; lazy imports are for heavy optional packages such as transformers);
- no module is longer than MAX_LINES; none has ``# ----`` / ``# ====`` section markers;
- every module ``x`` has its own ``tests/test_x.py`` (the few exceptions are listed with where
  they are tested instead).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LCA = ROOT / "lca"

# The engine. The language-model modules (counterfact, llm, gemma, scoring, packing, _offline)
# serve chapter 0 and, like the rest of the engine, import no chapter.
ENGINE = {
    "__init__",
    "_glue",
    "_offline",
    "_validate",
    "checks",
    "counterfact",
    "gemma",
    "latent",
    "llm",
    "model",
    "packing",
    "report",
    "scoring",
    "style",
    "task",
    "train",
    "widgets",
}
# One module per chapter, in book order (chapter 0 first).
CHAPTERS = [
    "hijacking",
    "associative_memory",
    "lca_task",
    "transformer",
    "value_matrix",
    "embeddings",
    "attention",
    "hijacking_in_model",
    "real_models",
]
# About 800 lines before ruff format split long calls; value_matrix (chapter 4, with its three
# extension exercises: reference, checker and their cases each) is the one near the limit.
MAX_LINES = 1050
# Never imported inside a function: lca's own modules and the packages every module has anyway.
NOT_LAZY = {"lca", "torch", "math", "numpy"}
# Modules without a tests/test_<name>.py of their own, and where they are tested instead.
TESTED_ELSEWHERE = {
    "__init__": "the package's front door: every test file imports it",
    "_glue": "tests/test_without_myst_nb.py (myst-nb's glue and the stand-in, output by output)",
    "_validate": "the bad-input tests of every module (each names the parameter it checks)",
}
SECTION_MARKER = re.compile(r"^\s*#\s*[-=~*#]{4,}")


def modules() -> dict[str, Path]:
    return {p.stem: p for p in sorted(LCA.glob("*.py"))}


def lca_imports(tree: ast.AST) -> set[str]:
    """The lca modules a parsed module imports (``from .x import``, ``from . import x``,
    ``import lca.x``, ``from lca import x``, ``from lca.x import``)."""
    names = modules()
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".") if node.module else []
            if node.level == 0 and parts[:1] == ["lca"]:
                parts = parts[1:]
            elif node.level == 0:
                continue
            if parts:
                out.add(parts[0])
            else:  # from . import x / from lca import x
                out.update(a.name for a in node.names if a.name in names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "lca" and len(parts) > 1:
                    out.add(parts[1])
    return out


def parsed() -> dict[str, ast.AST]:
    return {name: ast.parse(path.read_text(), filename=str(path)) for name, path in modules().items()}


def test_every_module_is_engine_or_chapter():
    unknown = set(modules()) - ENGINE - set(CHAPTERS)
    assert not unknown, f"classify {sorted(unknown)} in tests/test_layout.py: ENGINE or CHAPTERS"
    missing = (ENGINE | set(CHAPTERS)) - set(modules())
    assert not missing, f"listed but not in lca/: {sorted(missing)}"


def test_import_direction():
    trees = parsed()
    bad = []
    for name, tree in trees.items():
        for target in sorted(lca_imports(tree) - {name}):
            if target not in trees:
                continue
            if name in ENGINE and target in CHAPTERS:
                bad.append(f"engine module {name} imports chapter module {target}")
            elif name in CHAPTERS and target in CHAPTERS and CHAPTERS.index(target) > CHAPTERS.index(name):
                bad.append(
                    f"chapter {CHAPTERS.index(name)} ({name}) imports a later chapter, "
                    f"{CHAPTERS.index(target)} ({target})"
                )
    assert not bad, "\n".join(bad)


# (module, function): an import inside a function that an import cycle justifies.
CYCLE_IMPORTS = {
    ("llm", "load_model"): "lca.gemma builds on lca.llm, and load_model('gemma3') hands over to it",
}


def test_no_in_function_imports_of_lca_torch_math_numpy():
    bad = []
    for name, tree in parsed().items():
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom):
                    roots = {"lca"} if node.level else {(node.module or "").split(".")[0]}
                elif isinstance(node, ast.Import):
                    roots = {a.name.split(".")[0] for a in node.names}
                else:
                    continue
                for root in sorted(roots & NOT_LAZY):
                    if root == "lca" and (name, fn.name) in CYCLE_IMPORTS:
                        continue
                    bad.append(f"lca/{name}.py:{node.lineno} imports {root} inside {fn.name}()")
    assert not bad, "imports belong at the top of the module:\n" + "\n".join(bad)


def test_module_length():
    long = {
        name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_section_markers():
    found = {
        name: [i for i, line in enumerate(path.read_text().splitlines(), 1) if SECTION_MARKER.match(line)]
        for name, path in modules().items()
    }
    bad = {name: lines for name, lines in found.items() if lines}
    assert not bad, f"section markers (module: lines): {bad}"


def test_every_module_has_its_test_file():
    missing = [
        name
        for name in modules()
        if name not in TESTED_ELSEWHERE and not (ROOT / "tests" / f"test_{name.lstrip('_')}.py").exists()
    ]
    assert not missing, f"no tests/test_<module>.py for {missing}"
    stale = sorted(
        name for name in TESTED_ELSEWHERE if (ROOT / "tests" / f"test_{name.lstrip('_')}.py").exists()
    )
    assert not stale, f"{stale} now have their own test file: remove them from TESTED_ELSEWHERE"


@pytest.mark.parametrize(
    "source, found",
    [
        ("from .attention import x", {"attention"}),
        ("from . import report, value_matrix", {"report", "value_matrix"}),
        ("import lca.task", {"task"}),
        ("from lca import model", {"model"}),
        ("from lca.latent import cluster", {"latent"}),
        ("import torch\nfrom typing import Callable", set()),
    ],
)
def test_the_import_parser(source, found):
    assert lca_imports(ast.parse(source)) == found
