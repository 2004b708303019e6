"""pytest plugin for the learner environments of ``tools/test_envs.py`` (``-p pytest_learner_env``).

A learner's environment has ``lca`` installed from a wheel, as Colab's setup cell installs it, and
none of the book's build tools. This plugin makes a test run in such an environment say so:

- the repository root, which pytest puts on ``sys.path`` for the root ``conftest.py``, is taken off
  again, so that ``import lca`` finds the installed package; after collection the run stops if
  ``lca`` came from anywhere but the environment's site-packages;
- tests marked ``build`` or ``browser`` are skipped, with the reason;
- ``LCA_ENV_SKIP`` (JSON, written by tools/test_envs.py) leaves out tests that the native run already
  covers and that do not depend on the installed versions: ``{"files": {name: reason}, "slow":
  reason, "slow_kept": [file names]}``. A listed file is not collected at all (its imports may need
  the build tools) and the summary names it with its reason; a test marked ``slow`` is skipped with
  the reason unless its file is in ``slow_kept``.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = os.environ.get("LCA_TEST_ENV", "learner")
BUILD_REASON = (f"needs the book's build tools (jupyter-book, myst-nb, sphinx, beautifulsoup4, "
                f"chromium), which the learner environment '{ENV}' does not install")


def _drop_repository_from_path() -> None:
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    _drop_repository_from_path()
    if "lca" in sys.modules:
        raise pytest.UsageError(f"lca was imported before the tests started: {sys.modules['lca'].__file__}")


@pytest.hookimpl(tryfirst=True)
def pytest_collectstart(collector):
    _drop_repository_from_path()  # a conftest imported during collection may have put it back


def installed_lca() -> Path:
    import lca

    where = Path(lca.__file__).resolve()
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    if site not in where.parents:
        raise pytest.UsageError(f"the tests imported lca from {where}, not from the environment's "
                                f"site-packages {site}: they would test the source tree")
    return where


def pytest_report_header(config):
    return f"learner environment '{ENV}': lca from {installed_lca()}"


def _skips() -> dict:
    return json.loads(os.environ.get("LCA_ENV_SKIP") or "{}")


_IGNORED: dict[str, str] = {}


def pytest_ignore_collect(collection_path, config):
    reason = _skips().get("files", {}).get(collection_path.name)
    if reason and collection_path.suffix == ".py":
        _IGNORED[collection_path.name] = reason
        return True
    return None


def pytest_terminal_summary(terminalreporter):
    for name, reason in sorted(_IGNORED.items()):
        terminalreporter.write_line(f"learner environment '{ENV}': {name} not collected: {reason}")


def pytest_collection_modifyitems(config, items):
    skips = _skips()
    for item in items:
        if item.get_closest_marker("build") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.skip(reason=BUILD_REASON))
        elif (item.get_closest_marker("slow") and skips.get("slow")
              and Path(str(item.fspath)).name not in skips.get("slow_kept", [])):
            item.add_marker(pytest.mark.skip(reason=f"in '{ENV}': {skips['slow']}"))


def pytest_collection_finish(session):
    installed_lca()
