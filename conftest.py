"""pytest's root configuration: the CPU code path of the notebook kernels.

It lives at the repository root so that it applies both to ``pytest tests`` and to a notebook-only
run such as ``pytest book --nbval --code-path baseline`` (``tests/conftest.py`` holds the rest of
the suite's set-up). ``--code-path NAME`` (or ``LCA_CODE_PATH=NAME``) sets the environment
variables of ``tests/code_paths.py`` before nbval starts any kernel, so that one machine checks the
stored outputs as a CPU with another vector width or math-library path computes them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "code_paths", Path(__file__).resolve().parent / "tests" / "code_paths.py"
)
code_paths = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(code_paths)


def pytest_addoption(parser):
    parser.addoption(
        "--code-path",
        default=os.environ.get("LCA_CODE_PATH", "native"),
        help="CPU code path for the notebook kernels that nbval starts: "
        + ", ".join(code_paths.CODE_PATHS)
        + " (see tests/code_paths.py); or LCA_CODE_PATH=NAME",
    )


def pytest_configure(config):
    name = config.getoption("--code-path")
    if name not in code_paths.CODE_PATHS:
        raise pytest.UsageError(f"--code-path must be one of {sorted(code_paths.CODE_PATHS)}, got {name!r}")
    code_paths.apply(name)


def pytest_report_header(config):
    name = config.getoption("--code-path")
    settings = " ".join(f"{k}={v}" for k, v in code_paths.CODE_PATHS[name].items()) or "no overrides"
    return f"CPU code path of the notebook kernels: {name} ({settings})"
