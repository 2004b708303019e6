"""Vendor the book's JavaScript (MathJax 3, require.js, the ipywidgets HTML manager, Popper and
tippy.js for sphinx-tippy's hover previews) for offline use.

By default the built book would load MathJax, require.js and @jupyter-widgets/html-manager from
CDNs. This tool fetches pinned versions with ``npm pack`` (the npm registry is the only place it
talks to), unpacks the files the book needs into ``_vendor/html/_static/`` and records the versions
in ``_vendor/versions.json``. ``_config.yml`` lists ``_vendor/html`` in ``html_extra_path``, so the
files land in the built book's ``_static/`` folder, where ``mathjax_path`` and ``nb_ipywidgets_js``
(relative paths are relative to ``_static/``) point.

    python tools/vendor_js.py            # vendor, or do nothing if the pinned versions are there
    python tools/vendor_js.py --force    # vendor again
    python tools/vendor_js.py --check    # exit 1 unless the pinned versions are in place

Standard library only; needs ``npm`` (Node.js) on PATH the first time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "_vendor"
STATIC = VENDOR / "html" / "_static"  # copied into _build/html/_static by html_extra_path
STAMP = VENDOR / "versions.json"

# name -> (npm package, version, [(path inside the package, destination under STATIC)]).
# html-manager 1.0.15 is the release that bundles @jupyter-widgets/base 6.0.12, controls 5.0.13 and
# output 6.0.12: the same widget libraries as the JupyterLab manager shipped with ipywidgets 8.1.9
# (jupyterlab_widgets 3.0.17). `check_widget_match` verifies that pairing against the installed
# jupyterlab_widgets whenever the package is unpacked.
PACKAGES = {
    "mathjax": (
        "mathjax",
        "3.2.2",
        [("es5", "mathjax"), ("LICENSE", "mathjax/LICENSE"), ("package.json", "mathjax/package.json")],
    ),
    "requirejs": (
        "requirejs",
        "2.3.8",
        [("require.js", "requirejs/require.js"), ("package.json", "requirejs/package.json")],
    ),
    "html-manager": (
        "@jupyter-widgets/html-manager",
        "1.0.15",
        [
            ("dist/embed-amd.js", "html-manager/embed-amd.js"),
            # fonts (Font Awesome, Lato) that embed-amd.js loads next to itself
            ("dist/*.woff2", "html-manager/"),
            ("dist/*.woff", "html-manager/"),
            ("dist/*.ttf", "html-manager/"),
            ("dist/*.eot", "html-manager/"),
            ("dist/*.svg", "html-manager/"),
            ("dist/embed.js.LICENSE.txt", "html-manager/"),
            ("package.json", "html-manager/package.json"),  # names the licence (BSD-3-Clause)
        ],
    ),
    # sphinx-tippy's hover previews of cross-references (the tips themselves are written at build
    # time); `tippy_js` in _config.yml points at these instead of unpkg.com
    "popper": (
        "@popperjs/core",
        "2.11.8",
        [
            ("dist/umd/popper.min.js", "tippy-lib/popper.min.js"),
            ("LICENSE.md", "tippy-lib/popper.LICENSE.md"),
        ],
    ),
    "tippy": (
        "tippy.js",
        "6.3.7",
        [
            ("dist/tippy-bundle.umd.min.js", "tippy-lib/tippy-bundle.umd.min.js"),
            ("LICENSE", "tippy-lib/tippy.LICENSE"),
        ],
    ),
}

# Files whose presence means a package is in place (what _config.yml points at).
ENTRY_POINTS = {
    "mathjax": "mathjax/tex-chtml.js",
    "requirejs": "requirejs/require.js",
    "html-manager": "html-manager/embed-amd.js",
    "popper": "tippy-lib/popper.min.js",
    "tippy": "tippy-lib/tippy-bundle.umd.min.js",
    "tippy-global": "tippy-lib/tippy-global.js",
}


def write_tippy_global() -> None:
    """Popper and tippy.js in one script that defines the globals ``Popper`` and ``tippy``.

    Their UMD bundles register themselves as anonymous AMD modules when require.js (loaded on the
    widget pages) has defined ``define``: then ``tippy`` is not a global, sphinx-tippy's page script
    fails and require.js reports "Mismatched anonymous define() module". Inside this wrapper
    ``define``, ``exports`` and ``module`` are undefined parameters, so both bundles take their
    plain-browser branch."""
    lib = STATIC / "tippy-lib"
    parts = [
        (lib / name).read_text(encoding="utf-8") for name in ("popper.min.js", "tippy-bundle.umd.min.js")
    ]
    body = ";\n".join(parts)
    (lib / "tippy-global.js").write_text(
        "/* @popperjs/core and tippy.js (see popper.LICENSE.md, tippy.LICENSE), written by\n"
        "   tools/vendor_js.py without their AMD/CommonJS branches. */\n"
        f"(function (define, exports, module) {{\n{body}\n}}).call(window);\n",
        encoding="utf-8",
    )


def pinned() -> dict[str, str]:
    return {name: f"{pkg}@{version}" for name, (pkg, version, _) in PACKAGES.items()}


def is_current() -> bool:
    """True when ``_vendor`` holds exactly the pinned versions and every entry point exists."""
    try:
        recorded = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return False
    return recorded == pinned() and all((STATIC / p).is_file() for p in ENTRY_POINTS.values())


def npm_pack(specs: list[str], dest: Path) -> list[Path]:
    """Run ``npm pack`` for ``specs`` into ``dest``; return the tarballs in the order of ``specs``."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            "tools/vendor_js.py: `npm` was not found on PATH. Install Node.js and npm "
            "(Debian/Ubuntu: `apt-get install -y npm`), then run `make vendor` again."
        )
    proc = subprocess.run(
        [npm, "pack", "--json", "--silent", *specs], cwd=dest, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"tools/vendor_js.py: `npm pack {' '.join(specs)}` failed "
            f"(exit {proc.returncode}):\n{proc.stderr.strip()}"
        )
    by_name = {entry["name"]: dest / entry["filename"] for entry in json.loads(proc.stdout)}
    return [by_name[spec.rpartition("@")[0]] for spec in specs]


def unpack(tarball: Path, rules, workdir: Path) -> None:
    """Extract ``tarball`` into ``workdir`` and copy the files named by ``rules`` into STATIC."""
    with tarfile.open(tarball) as tar:
        tar.extractall(workdir, filter="data")
    pkg = workdir / "package"
    for src, dst in rules:
        matches = sorted(pkg.glob(src))
        if not matches:
            raise SystemExit(f"tools/vendor_js.py: {tarball.name} has no {src!r}")
        for path in matches:
            target = STATIC / dst / path.name if dst.endswith("/") else STATIC / dst
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, target, dirs_exist_ok=True)
            else:
                shutil.copy2(path, target)


def installed_widget_deps() -> dict[str, str] | None:
    """Dependencies of the JupyterLab widget manager installed with ipywidgets, if found."""
    prefixes = {Path(sys.prefix), ROOT / ".venv"}
    for prefix in prefixes:
        pj = prefix / "share/jupyter/labextensions/@jupyter-widgets/jupyterlab-manager/package.json"
        if pj.is_file():
            return json.loads(pj.read_text()).get("dependencies", {})
    return None


def check_widget_match(html_manager_pkg: Path) -> None:
    """Fail if html-manager bundles other widget libraries than the installed ipywidgets uses."""
    ours = installed_widget_deps()
    if ours is None:
        print("  (jupyterlab_widgets not found in this Python: html-manager pairing not checked)")
        return
    theirs = json.loads(html_manager_pkg.read_text()).get("dependencies", {})
    for lib in ("@jupyter-widgets/base", "@jupyter-widgets/controls", "@jupyter-widgets/output"):
        if lib in ours and theirs.get(lib) != ours[lib]:
            raise SystemExit(
                f"tools/vendor_js.py: @jupyter-widgets/html-manager@{PACKAGES['html-manager'][1]} "
                f"bundles {lib} {theirs.get(lib)}, but the installed ipywidgets uses {ours[lib]}: "
                "update the html-manager pin in tools/vendor_js.py"
            )


def vendor(force: bool = False) -> bool:
    """Make ``_vendor`` hold the pinned packages. Returns True if anything was (re)downloaded."""
    if not force and is_current():
        print(f"_vendor is up to date: {', '.join(pinned().values())}")
        return False
    if VENDOR.exists():
        shutil.rmtree(VENDOR)
    specs = list(pinned().values())
    print(f"vendoring {', '.join(specs)} into {STATIC.relative_to(ROOT)}/ ...")
    with tempfile.TemporaryDirectory(prefix="vendor_js-") as tmp:
        tmp = Path(tmp)
        tarballs = npm_pack(specs, tmp)
        for (name, (_, _, rules)), tarball in zip(PACKAGES.items(), tarballs):
            work = tmp / name
            work.mkdir()
            unpack(tarball, rules, work)
            if name == "html-manager":
                check_widget_match(work / "package" / "package.json")
    write_tippy_global()
    missing = [p for p in ENTRY_POINTS.values() if not (STATIC / p).is_file()]
    if missing:
        raise SystemExit(f"tools/vendor_js.py: after unpacking, missing {missing}")
    STAMP.write_text(json.dumps(pinned(), indent=2) + "\n")
    print("done")
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="download and unpack again")
    ap.add_argument("--check", action="store_true", help="only report whether _vendor is current")
    args = ap.parse_args(argv)
    if args.check:
        ok = is_current()
        print("_vendor is up to date" if ok else "_vendor is missing or stale: run make vendor")
        return 0 if ok else 1
    vendor(force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
