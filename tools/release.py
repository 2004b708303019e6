"""Pin every install line of the course to a release tag, and check that they agree.

Learners install ``lca`` in Colab's setup cell, the assignments' requirements and the README from
the course repository; an unpinned branch would give them whatever ``main`` holds on the day they
open a notebook, not the code whose outputs the book shows. Every such line names the tag
``v<version>``, where ``<version>`` is ``pyproject.toml``'s ``[project] version`` (also
``lca.__version__``).

    python tools/release.py --check          # every install line pins v<version> (a test runs this)
    python tools/release.py 0.2.0            # set the version everywhere and rewrite the pins

Releasing (see the README): run ``python tools/release.py X.Y.Z``, rebuild the assignments
(``python tools/build_assignments.py --sync``), commit, then ``git tag vX.Y.Z`` on that commit and
push the tag. The setup cells carry no output, so the chapters need no re-execution: the script
rewrites the cell source in ``notebooks/*.py`` and in the stored ``book/*.ipynb`` alike.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
URL = "git+https://github.com/elephants-course/elephants"
# A pin: the repository URL, '@', a ref up to the closing quote, space or backtick.
PIN = re.compile(re.escape(URL) + r"@([^\"'`\s\\]+)")
VERSION = re.compile(r'^version = "([^"]+)"', re.MULTILINE)
LCA_VERSION = re.compile(r'^__version__ = "([^"]+)"', re.MULTILINE)
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


def files() -> list[Path]:
    """Every file that holds an install line for learners or teachers."""
    out = [ROOT / "README.md", ROOT / "book" / "teachers.md"]
    out += sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    out += sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
    out += sorted((ROOT / "assignments" / "src").glob("*.py"))
    out += sorted((ROOT / "assignments").glob("*.ipynb"))
    return [p for p in out if p.exists()]


def version() -> str:
    match = VERSION.search((ROOT / "pyproject.toml").read_text())
    if match is None:
        raise SystemExit("pyproject.toml has no [project] version line")
    return match.group(1)


def tag(v: str | None = None) -> str:
    return f"v{v or version()}"


def problems() -> list[str]:
    """What disagrees with the version in pyproject.toml (empty when every pin is right)."""
    v = version()
    out = []
    init = LCA_VERSION.search((ROOT / "lca" / "__init__.py").read_text())
    if init is None or init.group(1) != v:
        out.append(f"lca/__init__.py: __version__ is {init and init.group(1)!r}, pyproject says {v!r}")
    found = 0
    for path in files():
        for ref in PIN.findall(path.read_text()):
            found += 1
            if ref != tag(v):
                out.append(f"{path.relative_to(ROOT)}: installs @{ref}, expected @{tag(v)}")
    if found == 0:
        out.append("no install line found: has the repository URL changed?")
    return out


def set_version(v: str) -> list[Path]:
    if not SEMVER.match(v):
        raise SystemExit(f"version must look like X.Y.Z, got {v!r}")
    changed = []
    for path, pattern, line in (
        (ROOT / "pyproject.toml", VERSION, f'version = "{v}"'),
        (ROOT / "lca" / "__init__.py", LCA_VERSION, f'__version__ = "{v}"'),
    ):
        text = path.read_text()
        new = pattern.sub(line, text, count=1)
        if new != text:
            path.write_text(new)
            changed.append(path)
    for path in files():
        text = path.read_text()
        new = PIN.sub(f"{URL}@{tag(v)}", text)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("version", nargs="?", help="the new version X.Y.Z (omit with --check)")
    ap.add_argument("--check", action="store_true", help="only check that every pin is v<version>")
    args = ap.parse_args(argv)
    if args.check or args.version is None:
        bad = problems()
        for line in bad:
            print(line)
        if not bad:
            print(f"every install line pins {tag()}")
        return 1 if bad else 0
    for path in set_version(args.version):
        print("updated", path.relative_to(ROOT))
    print(f"now: python tools/build_assignments.py --sync; commit; git tag {tag(args.version)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
