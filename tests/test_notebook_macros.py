"""Notebook markdown uses no book-only MathJax macros (Colab and Jupyter do not know them), and no
expanded macro has merged with the control word before it (``\\topW_{E}``)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_notebooks_use_no_book_macros():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "expand_macros.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, (
        "run tools/expand_macros.py and rebuild the notebooks:\n" + proc.stdout + proc.stderr
    )


def test_the_check_can_fail(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    import expand_macros

    table = expand_macros.macros()
    assert expand_macros.expand(r"$\WE^\top\WE$", table) == r"$W_{E}^\top W_{E}$"
    assert expand_macros.expand(r"$\WE\WV\WE$", table) == r"$W_{E}W_{V} W_{E}$"
    assert expand_macros.MERGED.search(r"$\topW_{E}$")
    assert expand_macros.MERGED.search(r"$\top D_{\mathrm{H}}$ and \inD_{\mathrm{H}}")
    assert not expand_macros.MERGED.search(r"$\top W_{E}$, $W_{E}^\top W_{KQ}$")
