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
    """MathJax, require.js, the widget manager and tippy.js are loaded from the book's own _static
    folder: every <script src> and stylesheet is a local file, and no page names their CDNs."""
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


# ---------------------------------------------------------------- chapters: solutions and figures
CHAPTER_PAGE = re.compile(r"book/\d\d_\w+")


def chapter_pages(html: Path) -> list[Path]:
    return [html / f"{f}.html" for f in toc_files() if CHAPTER_PAGE.fullmatch(f)]


def collapsed(node) -> bool:
    """True when ``node`` is shown only after the reader opens something: inside a closed
    ``<details>`` (not its ``<summary>``), the body of a dropdown admonition (sphinx-togglebutton:
    a sphinx-exercise ``:class: dropdown`` solution, a ``.toggle``), or a myst-nb hidden cell part."""
    child = node
    for anc in node.parents:
        classes = set(anc.get("class", []) or [])
        if anc.name == "details" and not anc.has_attr("open") and getattr(child, "name", None) != "summary":
            return True
        if classes & {"dropdown", "toggle"} and "toggle-shown" not in classes:
            if "admonition-title" not in set(getattr(child, "get", lambda *_: [])("class", []) or []):
                return True
        if classes & {"toggle-hidden", "tag_hide-cell", "tag_remove-cell"}:
            return True
        child = anc
    return False


def article(page: Path):
    s = soup(page)
    return s.find("article", class_="bd-article") or s.body


def test_chapters_hide_reference_code_and_test_results(built_book):
    """Reference solutions (cells tagged ``exercise-reference``) and their "tests passed" outputs
    sit inside a collapsed element (a gated sphinx-exercise solution with ``:class: dropdown``, a
    closed ``details``, a hide-cell block): a reader sees only the stubs until they open it."""
    bad = []
    for page in chapter_pages(built_book.html):
        if not page.exists():
            continue
        art = article(page)
        name = page.relative_to(built_book.html)
        for cell in art.select(".tag_exercise-reference"):
            code = cell.select_one(".cell_input") or cell
            if not collapsed(code):
                snippet = " ".join(code.get_text(" ").split())[:70]
                bad.append(f"{name}: reference code visible: {snippet!r}")
        for text in art.find_all(string=re.compile("tests passed", re.I)):
            if not collapsed(text):
                bad.append(f"{name}: 'tests passed' visible: {' '.join(text.split())[:70]!r}")
    assert not bad, f"{len(bad)} exposed solutions:\n" + "\n".join(bad)


def _widget_context(img) -> bool:
    out = img.find_parent(class_=["cell_output", "output"])
    return bool(
        img.find_parent(class_=["jupyter-widgets", "widget-output"])
        or (out and out.find("script", type="application/vnd.jupyter.widget-view+json"))
    )


def alt_is_description(alt: str, src: str) -> bool:
    alt = alt.strip()
    if re.search(r"\.(png|jpe?g|svg|gif|webp)\b", alt, re.I) or "/" in alt:
        return False
    return len(alt.split()) >= 3 and alt != Path(urlsplit(src).path).name


def test_chapter_figures_have_numbered_captions_and_alt_text(built_book):
    """Every image of a chapter is a numbered figure (``figcaption`` with a caption number, from
    the cell's ``mystnb.figure`` options) with alt text that describes it (``mystnb.image.alt``)."""
    bad = []
    for page in chapter_pages(built_book.html):
        if not page.exists():
            continue
        name = page.relative_to(built_book.html)
        for img in article(page).find_all("img"):
            if _widget_context(img):
                continue
            src = img.get("src", "")
            short = Path(urlsplit(src).path).name or src[:40]
            fig = img.find_parent("figure")
            cap = fig.find("figcaption") if fig else None
            if not (cap and cap.find(class_="caption-number")):
                bad.append(f"{name}: {short} has no numbered caption")
            if not alt_is_description(img.get("alt", ""), src):
                bad.append(f"{name}: {short} alt text {img.get('alt', '')!r} is not a description")
    assert not bad, f"{len(bad)} figure problems:\n" + "\n".join(bad)


def test_chapter_numbers_follow_file_prefixes(built_book):
    """Theorems, exercises and figures of ``book/NN_...`` are numbered "NN.k" (chapter 0 is
    ``00_hijacking``), the appendix's "A.k"; the sidebar shows the same chapter numbers."""
    html = built_book.html
    bad = []
    for page in chapter_pages(html):
        if not page.exists():
            continue
        chapter = int(page.stem[:2])
        for num in article(page).select(".caption-number"):
            m = re.search(r"(\d+|[A-Z])\.\d+", num.get_text())
            if not m or m.group(1) != str(chapter):
                bad.append(f"{page.relative_to(html)}: {num.get_text().strip()!r}, expected {chapter}.k")
    for page in sorted((html / "book" / "proofs").glob("*.html")):
        for num in article(page).select(".caption-number"):
            if not re.search(r"\bA\.\d+", num.get_text()):
                bad.append(f"{page.relative_to(html)}: {num.get_text().strip()!r}, expected A.k")
    nav = soup(html / "book" / "04_value_matrix.html").select(".bd-sidebar-primary a.reference")
    labels = [" ".join(a.get_text().split()) for a in nav]
    assert any(t.startswith("0. ") for t in labels) and any(t.startswith("4. The value") for t in labels), (
        labels
    )
    assert not bad, "\n".join(bad[:40])


def test_page_chrome(built_book):
    """Every page: a favicon, no sphinx-thebe scripts (live code is off; their double
    ``const THEBE_JS_URL`` was a console error on every page), no "Print to PDF" entry, the book's
    stylesheet, hover previews from the vendored tippy.js."""
    html = built_book.html
    toc = set(toc_files())
    bad = []
    for page in pages(html):
        s = soup(page)
        if s.find("meta", attrs={"http-equiv": re.compile("refresh", re.I)}):
            continue  # the root index.html redirect
        name = page.relative_to(html)
        text = page.read_text(encoding="utf-8")
        icons = [link for link in s.find_all("link", href=True) if "icon" in link.get("rel", [])]
        if not icons or not all(resolve(html, page, link["href"])[0].is_file() for link in icons):
            bad.append(f"{name}: no favicon")
        if "THEBE_JS_URL" in text or any("thebe" in src for src in _script_srcs(page)):
            bad.append(f"{name}: sphinx-thebe scripts")
        if "download-pdf-button" in text or "window.print()" in text:
            bad.append(f"{name}: a Print to PDF button")
        if not any("elephants.css" in link["href"] for link in s.find_all("link", rel="stylesheet")):
            bad.append(f"{name}: no elephants.css")
        if str(name.with_suffix("")) in toc and not any(
            "tippy-global.js" in src for src in _script_srcs(page)
        ):
            bad.append(f"{name}: no tippy.js")
    assert not bad, "\n".join(bad)


def test_bibliography_labels_are_author_year(built_book):
    """The bibliography's labels read like the author-year citations in the text ("Jiang et al.,
    2024", "Hopfield, 1982"), and names with accents are spelled out (no stray braces)."""
    page = built_book.html / "book" / "references.html"
    entries = soup(page).select("div.citation")
    assert entries, "the references page has no bibliography"
    bad = []
    for entry in entries:
        label = entry.find(class_="label")
        text = label.get_text(strip=True).strip("[]") if label else ""
        if not re.fullmatch(r"[^\[\],]+(?: et al\.)?, \d{4}[a-z]?", text):
            bad.append(f"label {text!r}")
        body = " ".join(entry.get_text(" ").split())
        if re.search(r"[{}\\]", body):
            bad.append(f"raw LaTeX in {body[:80]!r}")
    assert not bad, "\n".join(bad)
