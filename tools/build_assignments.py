"""Build the graded assignments: student notebooks and autograder archives (otter-grader).

The masters are ``assignments/<name>.ipynb`` (otter-grader's master-notebook format: solutions,
public and hidden tests in one notebook). They are written as percent-format sources
``assignments/src/<name>.py`` and converted with ``--sync``; the masters are what ``otter assign``
reads, and ``--check`` (also run by the tests) says whether they agree with their sources.

    python tools/build_assignments.py                   # every master -> build/assignments/
    python tools/build_assignments.py 01_memory_and_task --out /tmp/asg
    python tools/build_assignments.py --sync            # sources -> masters (no build)
    python tools/build_assignments.py --check           # masters match their sources (no build)

For each master ``<name>`` the build writes, under the output folder:

    <name>/student/<name>.ipynb     the notebook to hand out (stubs, public tests' check cells)
    <name>/student/tests/           the public tests that grader.check runs
    <name>/student/tests.zip        the same tests, for uploading to Colab next to the notebook
    <name>/autograder/              otter's autograder folder: solutions notebook, all tests
    <name>-student.zip              the student folder, ready to hand out
    <name>-autograder.zip           the autograder archive (Gradescope, ``otter grade``, ``otter run``)

``otter assign`` executes each master's solutions against all its tests and fails if one does not
pass, so a successful build is also a check of the masters.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from nbbuild import KERNELSPEC, read_source  # noqa: E402,F401  (the chapters' reader and kernel)

MASTERS = ROOT / "assignments"
SOURCES = MASTERS / "src"
DEFAULT_OUT = ROOT / "build" / "assignments"


def masters() -> list[Path]:
    return sorted(MASTERS.glob("*.ipynb"))


def sources() -> list[Path]:
    return sorted(SOURCES.glob("*.py"))


def _cells(nb) -> list[tuple]:
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def sync() -> list[Path]:
    """Write every master from its source; returns the masters written."""
    written = []
    for src in sources():
        target = MASTERS / (src.stem + ".ipynb")
        nbformat.write(read_source(src), target)
        written.append(target)
    return written


def check() -> list[str]:
    """Problems where a master and its source disagree (or one of them is missing)."""
    problems = []
    for src in sources():
        target = MASTERS / (src.stem + ".ipynb")
        if not target.exists():
            problems.append(f"{target.relative_to(ROOT)} is missing: run tools/build_assignments.py --sync")
        elif _cells(read_source(src)) != _cells(nbformat.read(target, as_version=4)):
            problems.append(
                f"{target.relative_to(ROOT)} does not match {src.relative_to(ROOT)}: "
                "run tools/build_assignments.py --sync"
            )
    for master in masters():
        if not (SOURCES / (master.stem + ".py")).exists():
            problems.append(f"{master.relative_to(ROOT)} has no source in {SOURCES.relative_to(ROOT)}")
    return problems


def questions(master: Path) -> list[dict]:
    """The question configurations (name, points, manual) of a master, in order."""
    nb = nbformat.read(master, as_version=4)
    out = []
    for cell in nb.cells:
        lines = cell.source.splitlines()
        if cell.cell_type == "raw" and lines and lines[0].strip().upper() == "# BEGIN QUESTION":
            out.append(yaml.safe_load("\n".join(lines[1:])) or {})
    return out


def _env() -> dict:
    env = dict(os.environ)
    profile = ROOT / ".ipython"
    if profile.is_dir():
        env.setdefault("IPYTHONDIR", str(profile))  # silences the kernel's TCP warning
    env.pop("MPLBACKEND", None)
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


def assign(master: Path, out: Path) -> dict:
    """Run ``otter assign`` on one master into ``out/<name>`` and package the results."""
    name = master.stem
    dest = out / name
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "otter", "assign", str(master), str(dest)],
        cwd=MASTERS,
        env=_env(),
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"otter assign failed on {master} (exit "
            f"{proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    student, autograder = dest / "student", dest / "autograder"
    zips = sorted(autograder.glob(f"{name}-autograder_*.zip"))
    if len(zips) != 1:
        raise RuntimeError(f"expected one autograder zip in {autograder}, found {len(zips)}")
    shutil.copyfile(zips[0], out / f"{name}-autograder.zip")
    with zipfile.ZipFile(student / "tests.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted((student / "tests").glob("*.py")):
            zf.write(f, f"tests/{f.name}")
    with zipfile.ZipFile(out / f"{name}-student.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(student.rglob("*")):
            if f.is_file():
                zf.write(f, f"{name}/{f.relative_to(student)}")
    qs = questions(master)
    return {
        "name": name,
        "seconds": seconds,
        "questions": len(qs),
        "written": sum(bool(q.get("manual")) for q in qs),
        "points": sum(q.get("points", 1) for q in qs),
        "dir": dest,
    }


def build(names=None, out: Path = DEFAULT_OUT, jobs: int = 1) -> list[dict]:
    """Build the named masters (all when ``names`` is empty); returns one summary per master."""
    chosen = masters()
    if names:
        by_name = {p.stem: p for p in chosen}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"unknown assignment(s) {unknown}; choose from {sorted(by_name)}")
        chosen = [by_name[n] for n in names]
    if not chosen:
        raise ValueError(f"no master notebooks in {MASTERS}")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda m: assign(m, out), chosen))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="assignment names (default: all), e.g. 01_memory_and_task")
    ap.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (default: build/assignments)"
    )
    ap.add_argument("--jobs", type=int, default=2, help="masters built in parallel (default 2)")
    ap.add_argument("--sync", action="store_true", help="write the masters from their sources, then stop")
    ap.add_argument("--check", action="store_true", help="check that masters match their sources, then stop")
    args = ap.parse_args(argv)
    if args.sync:
        for path in sync():
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    problems = check()
    if args.check:
        print("\n".join(problems) or "masters match their sources")
        return 1 if problems else 0
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    for s in build(args.names, args.out, args.jobs):
        print(
            f"{s['name']}: {s['questions']} questions ({s['written']} written), {s['points']} points; "
            f"otter assign ran the solutions against all tests in {s['seconds']:.1f} s"
        )
    print(f"Student notebooks and autograder archives are in {Path(args.out).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
