"""tools/release.py: every learner-facing install line pins the tag of the package's version."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import lca

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("release", ROOT / "tools" / "release.py")
release = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(release)


def test_every_install_line_pins_the_version_tag():
    assert release.problems() == []
    assert lca.__version__ == release.version()


def _copy(tmp_path: Path) -> Path:
    for rel in ["pyproject.toml", "README.md", "lca/__init__.py", "book/teachers.md"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "01_associative_memory.py", tmp_path / "notebooks")
    shutil.copy(ROOT / "book" / "01_associative_memory.ipynb", tmp_path / "book")
    return tmp_path


def test_a_branch_pin_is_found_and_a_release_rewrites_every_pin(tmp_path, monkeypatch):
    root = _copy(tmp_path)
    monkeypatch.setattr(release, "ROOT", root)
    nb = root / "notebooks" / "01_associative_memory.py"
    nb.write_text(nb.read_text().replace(f"@{release.tag()}", "@main"))
    assert any("installs @main" in p for p in release.problems())

    release.set_version("9.8.7")
    assert release.problems() == []
    assert 'version = "9.8.7"' in (root / "pyproject.toml").read_text()
    assert "elephants@v9.8.7" in nb.read_text()
    assert "elephants@v9.8.7" in (root / "book" / "01_associative_memory.ipynb").read_text()


def test_a_malformed_version_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(release, "ROOT", _copy(tmp_path))
    try:
        release.set_version("next")
    except SystemExit as err:
        assert "X.Y.Z" in str(err)
    else:
        raise AssertionError("set_version accepted 'next'")
