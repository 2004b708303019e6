"""The figure index (book/figures.md) points at figures that exist in the built book (issue 5).

Every link in the index's tables must resolve to an anchor on a chapter page, and between that
anchor and the next paper-figure anchor (or the end of the page) the chapter must show at least one
figure image that exists on disk. Every paper figure the digest lists must have a row.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAPER_FIGURES = [
    "Fig. 1",
    "Fig. 2(a)",
    "Fig. 2(b)",
    "Fig. 3(a)",
    "Fig. 3(b)",
    "Fig. 3(c)",
    "Fig. C.1",
    "Fig. C.2",
    "Fig. C.3",
    "Fig. C.4",
    "Fig. C.8",
    "Tables 1–2",
    "length_n5",
    "dim_n5",
    "wv_replace_dim_n5",
    "wv_angle_dim_n5",
    "no_wv_hamming_inner_n5",
    "spectrum_n",
    "heat_map_n5",
    "confusion_bar_l5",
    "Wv_bar_l128",
]


def test_every_paper_figure_has_a_row():
    text = (ROOT / "book" / "figures.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    missing = [f for f in PAPER_FIGURES if not any(f in row for row in rows)]
    assert not missing, f"figure index has no row for {missing}"
    statuses = ("reproduced", "partly", "not reproducible here", "the course's own figure")
    for row in rows[1:]:
        if row.startswith("| Paper"):
            continue
        assert any(s in row.split("|")[-2] for s in statuses), f"row without a status: {row}"


def figure_links(html: Path) -> list[tuple[str, str]]:
    from bs4 import BeautifulSoup  # a build-tool dependency: imported only by the build test

    page = BeautifulSoup((html / "book" / "figures.html").read_text(), "html.parser")
    links = []
    for a in page.select("table a[href]"):
        href = a["href"]
        if "#" in href and not href.startswith(("http", "#")):
            links.append((a.get_text(" ", strip=True), href))
    return links


@pytest.mark.build
def test_index_links_land_on_figures(built_book):
    html = built_book.html
    if built_book.returncode != 0 and not (html / "book" / "figures.html").exists():
        pytest.fail("the book did not build:\n" + built_book.log[-3000:])
    links = figure_links(html)
    assert len(links) >= 15, f"expected links to every reproduced figure, found {len(links)}"
    for text, href in links:
        path, anchor = href.split("#", 1)
        target = (html / "book" / path).resolve()
        assert target.exists(), f"{text}: {href} points to a missing page"
        source = target.read_text()
        start = source.find(f'id="{anchor}"')
        assert start >= 0, f"{text}: no anchor #{anchor} on {path}"
        nxt = [m.start() for m in re.finditer(r'id="fig-paper-', source) if m.start() > start]
        section = source[start : (nxt[0] if nxt else len(source))]
        imgs = re.findall(r'<img[^>]+src="([^"]+)"', section)
        assert imgs, f"{text}: no figure after #{anchor} on {path}"
        for src in imgs:
            assert (target.parent / src).resolve().exists(), f"{text}: image {src} is missing"
