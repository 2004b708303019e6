"""The code-path mode can fail: a trained number printed at 6 decimals moves under another CPU path.

A throw-away notebook trains a small one-layer transformer (m = 6, L = 16, d = 32, 200 Adam steps,
one thread) and prints the sum of its value matrix to 6 decimals. It is executed natively to store
its outputs, then checked with nbval through the suite's own ``--code-path`` option: natively it
passes, under ``baseline`` (PyTorch's scalar kernels, MKL's SSE4.2 path) the printed digits move
and nbval fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import pytest
from code_paths import CODE_PATHS, VARIABLES, environment
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent

TRAIN = """\
import torch
import lca
torch.set_num_threads(1)
spec = lca.TaskSpec(m=6, L=16)
result = lca.fit(lca.TrainConfig(task=spec, d=32, steps=200, seed=0), progress=False)
model = result.model
"""
FRAGILE = 'print(f"sum of W_V: {model.W_V.detach().double().sum().item():.6f}")'


@pytest.fixture(scope="module")
def fragile_notebook():
    """The throw-away notebook, executed natively, inside the repository (so conftest.py applies)."""
    folder = ROOT / "build" / f"code-path-test-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(TRAIN), nbformat.v4.new_code_cell(FRAGILE)]
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}}
    env_backup = {key: os.environ.get(key) for key in VARIABLES}
    for key in VARIABLES:  # store the native outputs
        os.environ.pop(key, None)
    try:
        NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
        ).execute()
    finally:
        for key, value in env_backup.items():
            if value is not None:
                os.environ[key] = value
    path = folder / "fragile.ipynb"
    nbformat.write(nb, path)
    yield path
    shutil.rmtree(folder, ignore_errors=True)


def run_nbval(path: Path, code_path: str) -> subprocess.CompletedProcess:
    env = environment("native")
    env.pop("LCA_CODE_PATH", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(path.relative_to(ROOT)),
            "--nbval",
            "--nbval-current-env",
            "-p",
            "no:cacheprovider",
            "--code-path",
            code_path,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_code_paths_are_well_formed():
    assert CODE_PATHS["native"] == {}
    others = [name for name in CODE_PATHS if name != "native"]
    assert len(others) >= 2, "the portability mode needs at least two code paths besides native"
    for name in others:
        assert CODE_PATHS[name].get("ATEN_CPU_CAPABILITY"), name
        assert CODE_PATHS[name].get("MKL_ENABLE_INSTRUCTIONS"), name
    with pytest.raises(ValueError, match="code path"):
        environment("sse9")


@pytest.mark.slow
def test_native_rerun_passes(fragile_notebook):
    proc = run_nbval(fragile_notebook, "native")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "CPU code path of the notebook kernels: native" in proc.stdout


@pytest.mark.slow
def test_six_decimals_of_a_trained_weight_fail_under_baseline(fragile_notebook):
    proc = run_nbval(fragile_notebook, "baseline")
    assert "CPU code path of the notebook kernels: baseline" in proc.stdout
    assert proc.returncode != 0, (
        "a trained weight printed at 6 decimals reproduced under the "
        "baseline code path: the mode would not catch fragile digits"
    )
    assert "sum of W_V" in proc.stdout  # the failing cell is the fragile print


def test_unknown_code_path_is_a_usage_error():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "--code-path",
            "sse9",
            "tests/test_code_paths.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "--code-path must be one of" in proc.stdout + proc.stderr
