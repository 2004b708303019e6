"""Every decimal number in the book's prose comes from a ``glue`` role (the course rule "no number is
typed by hand").

The test reads the markdown cells of the chapter sources ``notebooks/*.py`` (jupytext percent
format) and the book's own Markdown pages (``book/*.md``, ``book/proofs/*.md``), removes what is not
prose (glue roles, other roles and their targets, inline code, fenced code blocks, labels, HTML
comments, link targets), and fails on every decimal number left: ``0.24``, ``.515``, ``3.6``,
``-0.857``. Integers are not checked (counts, sizes and settings are typed in both code and prose).

A decimal that is not a result is allowed only inside a match of an entry of ``ALLOWED`` (a
pattern that includes the number and its context), each with its reason. Prefer fixing the prose
(glue the number from the cell that computes it, or reword) to adding an entry.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: a decimal number: digits, a point, digits (or a leading point: ".515"), not glued to a word;
#: a dotted version such as "0.1.2" is blanked by the first ALLOWED entry before the scan
DECIMAL = re.compile(r"(?<![\w.])[-+−]?(?:\d+)?\.\d+(?:\.\d+)*(?![\w.]*\w)")

#: (pattern, reason): a decimal inside a match of one of these patterns is not a result. Keep the
#: list short; each entry is a kind of number, never a single sentence.
ALLOWED: list[tuple[str, str]] = [
    (r"\d+\.\d+\.\d+|Python \d\.\d+", "a version number (a pinned wheel, a Python version)"),
    (
        r"§\s*\d+\.\d+|\(5\.2\??\)|\\tag\{5\.2\??\}",
        "a section or equation number of the paper (its §5.4, its equation (5.2))",
    ),
    (r"0\.14\s*(?:\\,)?\s*d\b", "the classical Hopfield capacity 0.14 d, a literature constant"),
    (r"Apache-2\.0", "a licence's name (SPDX identifier)"),
    (r"z\s*=\s*1\.96", "the normal 97.5% quantile of a 95% interval, a constant"),
    (
        r"(?:\\varepsilon|\\delta|\\beta|\\rho|b_[01])\s*(?:=|<|>|\\ge|\\le)\s*-?\d*\.\d+"
        r"|(?:noise|noise rate|learning rate)\s*\$?\s*\d*\.\d+|\d*\.\d+\s*/\s*\\sqrt\s*d"
        r"|grid\s*\$?\\\{[\d.,\s]+\\\}",
        "an experiment's setting (noise rate, failure rate, inverse temperature, hijack share, "
        "profile coefficient, learning rate): an input typed as in the code that uses it, not a result",
    ),
]


FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,}|:{3,})[ \t]*(.*?)[ \t]*$")


def _blank_code_fences(text: str) -> str:
    """Blank the lines of fenced code blocks. A fence whose info string is empty, a language name
    or ``{code...}`` is code; a directive fence such as ```{prf:theorem} or :::{prf:proof} holds
    prose. Fences nest (a ~~~python block inside a ```{solution}), so this tracks a stack."""
    out, stack = [], []  # stack of (fence string, is_code)
    for line in text.split("\n"):
        m = FENCE.match(line)
        inside_code = any(code for _, code in stack)
        if m:
            fence, info = m.group(1), m.group(2)
            top = stack[-1][0] if stack else None
            if top and fence[0] == top[0] and len(fence) >= len(top) and not info:
                stack.pop()  # a closing fence
                out.append(" " * len(line))
                continue
            if not inside_code:  # an opening fence (nothing opens inside code)
                stack.append((fence, not info.startswith("{") or info.startswith("{code")))
                title = re.sub(r"^\{[^}]*\}", "", info)  # a directive's title is prose
                out.append(" " * (len(line) - len(title)) + title)
                continue
        out.append(" " * len(line) if inside_code else line)
    return "\n".join(out)


def _strip_non_prose(text: str) -> str:
    """The markdown with code, glue roles, other roles, labels and comments blanked out (replaced
    by spaces, so line numbers in error messages stay right)."""

    def blank(m: re.Match) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))

    text = _blank_code_fences(text)
    patterns = [
        r"<!--.*?-->",  # HTML comments
        r"\{glue(?::\w*)?\}`[^`]*`",  # glue roles: the number comes from the cell
        r"\{[\w:-]+\}`[^`]*`",  # any other role: {doc}, {cite}, {prf:ref}...
        r"``[^`]*``|`[^`\n]*`",  # inline code
        r"^\([\w:.-]+\)=[ \t]*$",  # MyST labels "(fig-paper-1)="
        r"^:(?:label|class|name|nonumber):[^\n]*$",  # directive options
        r"\]\([^)\s]*\)",  # link targets [text](url)
        r"https?://\S+",  # bare URLs
    ]
    for p in patterns:
        text = re.sub(p, blank, text, flags=re.S | re.M)
    return text


def violations(text: str) -> list[str]:
    """The decimal numbers of ``text`` (markdown) that no glue role produced and no allow-list
    entry covers, each with its line and context."""
    prose = _strip_non_prose(text)
    prose = re.sub(r"(\\[A-Za-z]+)", r"\1 ", prose)  # "\cdot0.9": a LaTeX command ends before 0.9
    for pattern, _reason in ALLOWED:
        prose = re.sub(pattern, lambda m: re.sub(r"[^\n]", " ", m.group(0)), prose)
    out = []
    lines = text.splitlines()
    for m in DECIMAL.finditer(prose):
        line_no = prose.count("\n", 0, m.start()) + 1
        out.append(f"line {line_no}: {m.group(0)!r} in {lines[line_no - 1].strip()[:110]!r}")
    return out


def markdown_cells(path: Path) -> list[tuple[int, str]]:
    """(first line number, text) of each markdown cell of a jupytext percent-format source, with the
    leading ``# `` of every line removed."""
    cells, current, start = [], None, 0
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("# %%"):
            if current is not None:
                cells.append((start, "\n".join(current)))
            current, start = ([] if "[markdown]" in line else None), i + 1
        elif current is not None:
            current.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
    if current is not None:
        cells.append((start, "\n".join(current)))
    return cells


def source_violations(path: Path) -> list[str]:
    """Violations of a chapter source (markdown cells) or of a Markdown page, by file line."""
    if path.suffix == ".md":
        return [f"{path.name} {v}" for v in violations(path.read_text(encoding="utf-8"))]
    found = []
    for start, text in markdown_cells(path):
        for v in violations(text):
            n, rest = v.removeprefix("line ").split(":", 1)
            found.append(f"{path.name} line {start + int(n) - 1}:{rest}")
    for line_no, what, text in figure_texts(path):
        for v in violations(text):
            found.append(f"{path.name} line {line_no} ({what}):{v.split(':', 1)[1]}")
    return found


def figure_texts(path: Path) -> list[tuple[int, str, str]]:
    """(line number, "caption" or "alt text", text) of the figure options in the cell headers of a
    percent-format source (``# %% ... mystnb={"figure": {"caption": ...}, "image": {"alt": ...}}``):
    captions are prose too."""
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.startswith("# %%") or "mystnb=" not in line:
            continue
        raw = line.split("mystnb=", 1)[1]
        options, _ = json.JSONDecoder().raw_decode(raw)
        caption = options.get("figure", {}).get("caption")
        alt = options.get("image", {}).get("alt")
        out += [(i, "caption", caption)] if caption else []
        out += [(i, "alt text", alt)] if alt else []
    return out


SOURCES = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
PAGES = sorted((ROOT / "book").glob("*.md")) + sorted((ROOT / "book" / "proofs").glob("*.md"))


@pytest.mark.parametrize("path", SOURCES + PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_hand_typed_decimals(path):
    found = source_violations(path)
    assert not found, (
        "decimal numbers typed by hand (glue them from the cell that computes them, "
        "or reword; see ALLOWED in this file for what may stay):\n  " + "\n  ".join(found)
    )


def test_sources_found():
    assert len(SOURCES) >= 8 and PAGES, "no chapter sources or pages found"


PLANTED = """\
# %% [markdown]
# The score rises from {glue:text}`ch0_es_generic_0:.3f` to 0.76 after one copy.

# %%
x = 0.5  # code is not prose

# %% [markdown]
# A version 0.1.2, the paper's equation (5.2), `noise=0.3` in code, and .515 by hand.

# %% tags=["hide-input"] mystnb={"figure": {"name": "fig-x", "caption": "Accuracy 0.93 by hand."}}
plot()
"""


def test_planted_violation_fails(tmp_path):
    """The checker flags hand-typed decimals (0.76, .515, and 0.93 in a figure caption) and nothing
    else in a planted source."""
    src = tmp_path / "99_planted.py"
    src.write_text(PLANTED, encoding="utf-8")
    found = source_violations(src)
    assert [v.split(":", 1)[1].split(" in ")[0].strip() for v in found] == ["'0.76'", "'.515'", "'0.93'"], (
        found
    )
    assert found[0].startswith("99_planted.py line 2:"), found
    assert found[1].startswith("99_planted.py line 8:"), found
    assert found[2].startswith("99_planted.py line 10 (caption):"), found
    page = tmp_path / "page.md"
    page.write_text(
        "Counted {glue:}`n` cases; about 3.6 of them.\n\n```python\ny = 0.25\n```\n", encoding="utf-8"
    )
    assert [v.split(": ", 1)[1].split(" in ")[0] for v in source_violations(page)] == ["'3.6'"]


def test_clean_prose_passes():
    assert violations("Glued {glue:text}`a:.2f`, cited {cite}`x2024`, and integers 3, 15, 2024.") == []
