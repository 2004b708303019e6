"""The book builds cleanly, every page exists, and every link, image and script resolves locally.

The build itself (``jupyter-book build . --all -W --keep-going`` into a temporary folder) is the
session fixture ``built_book`` in ``conftest.py``; the browser tests reuse it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from bs4 import BeautifulSoup

from conftest import toc_files

pytestmark = pytest.mark.build

EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, data:, javascript:
# Where MathJax, require.js and the widget manager come from when they are not vendored.
CDN_HOSTS = (
    "cdn.jsdelivr.net",
    "cdnjs.cloudflare.com",
    "unpkg.com/@jupyter-widgets",
    "unpkg.com/mathjax",
    "unpkg.com/requirejs",
)


def pages(html: Path) -> list[Path]:
    """Every built HTML page (not the theme's and extensions' files in _static)."""
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.relative_to(html).parts)


@lru_cache(maxsize=None)
def soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


@lru_cache(maxsize=None)
def anchors(path: Path) -> frozenset[str]:
    s = soup(path)
    return frozenset(
        [t["id"] for t in s.find_all(id=True)] + [t["name"] for t in s.find_all("a", attrs={"name": True})]
    )


def resolve(html: Path, page: Path, ref: str) -> tuple[Path, str]:
    """The file and fragment that a relative reference on ``page`` points to."""
    parts = urlsplit(ref)
    target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
    if target.is_dir():
        target = target / "index.html"
    return target, unquote(parts.fragment)


def is_local(ref: str | None) -> bool:
    return bool(ref) and not EXTERNAL.match(ref) and not ref.startswith("//")


def test_build_succeeds_without_warnings(built_book):
    warnings = built_book.warnings()
    assert built_book.returncode == 0 and not warnings, (
        f"jupyter-book exited with {built_book.returncode}; warnings:\n"
        + "\n".join(warnings)
        + ("" if warnings else "\n" + built_book.log[-4000:])
    )


def test_every_toc_page_is_built(built_book):
    missing = [f for f in toc_files() if not (built_book.html / f"{f}.html").exists()]
    assert not missing, f"pages listed in _toc.yml but not built: {missing}"
    assert (built_book.html / "index.html").exists()


def test_every_image_exists(built_book):
    html = built_book.html
    bad = []
    for page in pages(html):
        for img in soup(page).find_all("img"):
            src = img.get("src", "")
            if src.startswith("data:"):
                continue
            if not is_local(src):
                bad.append(f"{page.relative_to(html)}: external image {src}")
            elif not resolve(html, page, src)[0].is_file():
                bad.append(f"{page.relative_to(html)}: missing image {src}")
    assert not bad, "\n".join(bad)


def test_internal_links_resolve(built_book):
    """Every internal ``href`` on every page points to an existing file and, for a fragment, to an
    existing ``id`` in that file (cross-references, figures index, proofs, bibliography)."""
    html = built_book.html
    bad = []
    for page in pages(html):
        for a in soup(page).find_all(href=True):
            ref = a["href"]
            if not is_local(ref) and not ref.startswith("#"):
                continue
            target, fragment = resolve(html, page, ref)
            where = f"{page.relative_to(html)}: {ref}"
            if not target.exists():
                bad.append(f"{where} -> missing file")
            elif fragment and target.suffix == ".html" and fragment not in anchors(target):
                bad.append(f"{where} -> no id {fragment!r} in {target.relative_to(html)}")
    assert not bad, f"{len(bad)} broken internal links:\n" + "\n".join(bad[:50])


def test_scripts_and_styles_are_local(built_book):
    """MathJax, require.js and the widget manager are loaded from the book's own _static folder:
    every <script src> and stylesheet is a local file, and no page names their CDNs. (sphinx-thebe
    writes an unpkg.com address for thebe into each page as a string; it is loaded only when live
    code is switched on, which this book does not do, so only script and link elements count.)"""
    html = built_book.html
    bad = []
    for page in pages(html):
        s = soup(page)
        text = page.read_text(encoding="utf-8")
        refs = [t.get("src") for t in s.find_all("script", src=True)]
        refs += [
            t.get("href")
            for t in s.find_all("link", href=True)
            if {"stylesheet", "preload", "modulepreload"} & set(t.get("rel", []))
        ]
        for ref in refs:
            if not is_local(ref):
                bad.append(f"{page.relative_to(html)}: loads {ref}")
            elif not resolve(html, page, ref)[0].is_file():
                bad.append(f"{page.relative_to(html)}: missing {ref}")
        bad += [f"{page.relative_to(html)}: mentions {h}" for h in CDN_HOSTS if h in text]
    assert not bad, "\n".join(bad)


def _script_srcs(page: Path) -> list[str]:
    return [urlsplit(t["src"]).path for t in soup(page).find_all("script", src=True)]


def test_math_and_widgets_use_vendored_copies(built_book):
    html = built_book.html
    with_math = [p for p in pages(html) if soup(p).find(class_="math")]
    assert with_math, "no page has math: the notation page at least should"
    for page in with_math:
        srcs = _script_srcs(page)
        assert any(s.endswith("_static/mathjax/tex-chtml.js") for s in srcs), (page, srcs)
    assert (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    with_widgets = [
        p for p in pages(html) if soup(p).find("script", type="application/vnd.jupyter.widget-state+json")
    ]
    for page in with_widgets:
        srcs = _script_srcs(page)
        for need in ("_static/requirejs/require.js", "_static/html-manager/embed-amd.js"):
            assert any(s.endswith(need) for s in srcs), (page, need, srcs)
