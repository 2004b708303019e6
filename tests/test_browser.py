"""The built book in a real browser: headless Chromium against the HTML served on 127.0.0.1.

For every page of the toc (at 1400 x 900): MathJax typesets the math (``mjx-container``, no
``mjx-merror``), every ``<img>`` in the rendered DOM loads, the page asks the server for nothing it
lacks (no 404, the favicon included), the console shows no error at all (uncaught exceptions,
rejected promises, ``console.error``), widget pages render their widgets, and notebook pages carry
the Colab launch link.

For every page, at 1400 x 900 and at phone width (390 x 844): nothing makes the page wider than
the viewport, no element sticks out of the text column, and no box cuts its content off (wide
tables, display maths and code scroll inside their own box); offenders are listed with tag,
class, text and width.

For every chapter (``book/NN_*.ipynb``), at 1400 x 900:

- every chapter image has at least twice its displayed width in natural pixels (or is an SVG), a
  numbered caption (a ``figcaption`` with a caption number) and real alt text (a few words, not a
  file name); images that the widget manager replaces or that stand in for a widget are exempt;
- no "tests passed" text and no exercise reference code (cells tagged ``exercise-reference``) is
  visible while every collapsed element is closed;
- the page's length in screens (document height / 900 px at 1400 px width) is printed, and chapters
  4 and 5 are at most 16 screens.

How: the system's Chromium, driven over the DevTools protocol by Playwright (pinned in
requirements.txt; its own browser downloads are not used), loads each page in a fresh context with
the viewport set exactly (headless Chromium's window cannot be narrower than 500 px, an emulated
viewport can). A small probe script, added before any page script runs, records errors from the
start; once MathJax has typeset and the widgets have rendered, it measures the layout. One page
load per page and width. Chromium's name resolution is pinned to 127.0.0.1, so a page that needs
anything from the internet fails here rather than quietly working online only.

Without Chromium the tests are skipped, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import threading
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from bs4 import BeautifulSoup

from conftest import ROOT, repository, toc_files

pytestmark = pytest.mark.browser

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",  # as on a phone: scrollbars take no layout width
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--disable-features=Translate",
]
LOAD_TIMEOUT_MS = 120_000
WIDGET_WAIT_MS = 20_000
SETTLE_MS = 1500  # after MathJax and the widgets: late layout (fonts, widget panels) settles

DESKTOP = (1400, 900)
PHONE = (390, 844)
MAX_SCREENS = {"book/04_value_matrix": 16, "book/05_embeddings": 16}

# The probe: records every error from the first moment, then (after MathJax has typeset and the
# widgets have had time to render) measures the page and writes the result into the DOM.
PROBE_JS = r"""
(function () {
  var errors = [];
  window.__probeErrors = errors;
  window.addEventListener("error", function (e) {
    var where = e.filename ? " (" + e.filename + ":" + e.lineno + ")" : "";
    if (e.message) { errors.push("error: " + e.message + where); }
    else if (e.target && e.target !== window) {
      errors.push("resource failed: " + (e.target.src || e.target.href || e.target.tagName));
    }
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    var r = e.reason; errors.push("unhandled rejection: " + (r && (r.stack || r.message) || r));
  });
  var origError = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.map.call(arguments, String).join(" "));
    return origError.apply(console, arguments);
  };

  function text(el) { return (el.textContent || "").replace(/\s+/g, " ").trim().slice(0, 80); }
  function describe(el) {
    var r = el.getBoundingClientRect();
    return {tag: el.tagName.toLowerCase(), cls: (el.getAttribute("class") || "").slice(0, 80),
            id: el.id || "", text: text(el), left: Math.round(r.left), right: Math.round(r.right),
            width: Math.round(r.width), scrollWidth: el.scrollWidth};
  }
  function clips(el) {
    var ox = getComputedStyle(el).overflowX;
    return ox === "auto" || ox === "scroll" || ox === "hidden" || ox === "clip";
  }
  function visible(el) {
    if (el.checkVisibility && !el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true,
                                                   contentVisibilityAuto: true})) { return false; }
    var r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  }
  var SKIP = "mjx-assistive-mml, .tippy-box, [data-tippy-root], script, style";

  // how far visible descendants reach past the right edge of box el (screen-reader-only copies,
  // e.g. MathJax's assistive MathML, do not count)
  function hiddenRight(el) {
    var edge = el.getBoundingClientRect().left + el.clientLeft + el.clientWidth, worst = 0;
    var all = el.querySelectorAll("*");
    for (var i = 0; i < all.length && i < 5000; i++) {
      var d = all[i];
      if (d.closest(SKIP)) { continue; }
      var r = d.getBoundingClientRect();
      if (r.width > 0 && r.height > 0) { worst = Math.max(worst, r.right - edge); }
    }
    return worst;
  }
  // elements that stick out of the text column (outermost first; clipping boxes stop the search)
  function columnOverflow(article) {
    var col = article.getBoundingClientRect(), out = [];
    (function walk(el) {
      for (var c = el.firstElementChild; c; c = c.nextElementSibling) {
        if (c.matches(SKIP) || !visible(c)) { continue; }
        var pos = getComputedStyle(c).position;
        if (pos === "fixed") { continue; }
        var r = c.getBoundingClientRect();
        if (r.right > col.right + 1.5 || r.left < col.left - 1.5) { out.push(describe(c)); continue; }
        if (clips(c)) {
          // a box that hides what sticks out (overflow hidden/clip, no scrolling) cuts content off
          var cs = getComputedStyle(c), ox = cs.overflowX;  // (overflow does not apply to inline boxes)
          if ((ox === "hidden" || ox === "clip") && cs.display !== "inline" && c.clientWidth > 0 &&
              c.scrollWidth > c.clientWidth + 2 && hiddenRight(c) > 2 &&
              !c.closest("mjx-container, .jupyter-widgets, nav, .tippy-box")) {
            var d = describe(c); d.clipped = true; out.push(d);
          }
          continue;
        }
        walk(c);
      }
    })(article);
    return out;
  }
  // elements anywhere that reach past the viewport's right edge (when the page is too wide)
  function pageOverflow(vw) {
    var out = [];
    (function walk(el) {
      for (var c = el.firstElementChild; c; c = c.nextElementSibling) {
        if (c.matches(SKIP)) { continue; }
        var r = c.getBoundingClientRect();
        if (r.width > 0 && r.right > vw + 1.5 && getComputedStyle(c).position !== "fixed") {
          var inner = out.length; walk(c);
          if (out.length === inner) { out.push(describe(c)); }
          continue;
        }
        if (!clips(c)) { walk(c); }
      }
    })(document.body);
    return out.slice(0, 20);
  }
  function images(article) {
    return Array.prototype.map.call(article.querySelectorAll("img"), function (img) {
      var r = img.getBoundingClientRect(), fig = img.closest("figure");
      var cap = fig && fig.querySelector("figcaption");
      var out = img.closest(".cell_output, .output");
      var widget = !!(img.closest(".jupyter-widgets, .widget-output, .jupyter-widgets-output-area") ||
                      (out && out.querySelector(
                        'script[type="application/vnd.jupyter.widget-view+json"], .jupyter-widgets')));
      return {src: img.getAttribute("src") || "", alt: img.getAttribute("alt") || "",
              natural: img.naturalWidth, shown: Math.round(r.width * 10) / 10, visible: visible(img),
              caption: cap ? text(cap) : null,
              number: !!(cap && cap.querySelector(".caption-number")), widget: widget};
    });
  }
  function exposed(article) {
    var found = [];
    Array.prototype.forEach.call(article.querySelectorAll(".tag_exercise-reference"), function (el) {
      if (visible(el)) { found.push("exercise reference cell: " + text(el)); }
    });
    var walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
    for (var n = walker.nextNode(); n; n = walker.nextNode()) {
      if (/tests passed/i.test(n.nodeValue) && n.parentElement && visible(n.parentElement)) {
        found.push("'tests passed' in " + n.parentElement.tagName.toLowerCase() + ": " +
                   text(n.parentElement));
      }
    }
    return found;
  }
  window.__elephantsMeasure = function () {
    var article = document.querySelector("article.bd-article") || document.body;
    var de = document.documentElement, vw = window.innerWidth;
    var res = {viewport: [vw, window.innerHeight], clientWidth: de.clientWidth,
               scrollWidth: Math.max(de.scrollWidth, document.body.scrollWidth),
               height: Math.max(de.scrollHeight, document.body.scrollHeight),
               column: Math.round(article.getBoundingClientRect().width),
               column_overflow: columnOverflow(article), images: images(article),
               exposed: exposed(article), errors: errors.slice()};
    res.page_overflow = res.scrollWidth > vw + 1 ? pageOverflow(vw) : [];
    return res;
  };
})();
"""


def chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        reason = (
            "chromium is not installed (Debian: apt-get install chromium; `make test` does "
            "this when run as root)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason + ": the browser tests must run in CI")
        pytest.skip(reason)
    return path


class Server:
    """The built HTML on http://127.0.0.1:<free port>/, in a thread, logging every request."""

    def __init__(self, root: Path):
        self.log: list[tuple[str, int]] = []
        log = self.log

        class Handler(SimpleHTTPRequestHandler):
            def log_request(self, code="-", size="-"):
                log.append((urlsplit(self.path).path, int(getattr(code, "value", code))))

            def log_message(self, *args):
                pass

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # the browser closing a connection early (a broken pipe) is not a test failure

        self.httpd = Quiet(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (the system's), driven over the DevTools protocol by Playwright."""
    path = chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - playwright is pinned in requirements.txt
        reason = "playwright is not installed (it is pinned in requirements.txt)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as pw:
        chrome = pw.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield chrome
        chrome.close()


@pytest.fixture(scope="module")
def server(built_book):
    if not (built_book.html / "index.html").exists():
        pytest.fail("the book did not build (see test_book_build.py)")
    srv = Server(built_book.html)
    yield srv
    srv.close()


class Render:
    def __init__(self, dom: str, errors: list[str], requests: list[tuple[str, int]], probe: dict | None):
        self.dom, self.requests, self.probe = dom, requests, probe
        self._errors = errors
        self.soup = BeautifulSoup(dom, "html.parser")

    def errors(self) -> list[str]:
        """Every console error: page errors, console.error messages (failed loads included) and
        what the probe recorded."""
        found = list(self._errors)
        found += [e for e in (self.probe or {}).get("errors", []) if e not in found]
        return found


def _settle(pg) -> None:
    """Wait for MathJax to finish typesetting and for saved widgets to render."""
    pg.evaluate(
        "() => (window.MathJax && MathJax.startup && MathJax.startup.promise)"
        " ? MathJax.startup.promise.then(() => true, () => true) : true"
    )
    if pg.query_selector('script[type="application/vnd.jupyter.widget-view+json"]'):
        try:
            pg.wait_for_selector(".jupyter-widgets", state="attached", timeout=WIDGET_WAIT_MS)
        except Exception:  # noqa: BLE001 - the widget test below reports the failure
            pass
    pg.wait_for_timeout(SETTLE_MS)


@pytest.fixture(scope="module")
def render(browser, server):
    """``render(page, size)`` loads ``page`` (a toc entry) at ``size`` (width, height) in a fresh
    browser context (no cache, no storage); one load per page and size."""
    cache: dict[tuple[str, tuple[int, int]], Render] = {}

    def run(page: str, size: tuple[int, int] = DESKTOP) -> Render:
        key = (page, size)
        if key not in cache:
            start = len(server.log)
            errors: list[str] = []
            ctx = browser.new_context(viewport={"width": size[0], "height": size[1]})
            ctx.add_init_script(PROBE_JS)
            pg = ctx.new_page()
            pg.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
            pg.on(
                "console",
                lambda m: (
                    errors.append(f"console.{m.type}: {m.text} ({m.location.get('url', '')})")
                    if m.type == "error"
                    else None
                ),
            )
            try:
                pg.goto(server.base + page + ".html", wait_until="load", timeout=LOAD_TIMEOUT_MS)
                _settle(pg)
                probe = pg.evaluate("() => window.__elephantsMeasure ? window.__elephantsMeasure() : null")
                dom = pg.content()
            finally:
                ctx.close()
            cache[key] = Render(dom, errors, list(server.log[start:]), probe)
        return cache[key]

    return run


PAGES = toc_files()
CHAPTERS = [p for p in PAGES if re.fullmatch(r"book/\d\d_\w+", p) and (ROOT / f"{p}.ipynb").exists()]
SIZES = {"1400px": DESKTOP, "390px": PHONE}


def is_notebook(page: str) -> bool:
    return (ROOT / f"{page}.ipynb").exists()


def probe_of(r: Render, page: str, size) -> dict:
    assert r.probe is not None, f"{page} at {size}: the probe wrote no measurements (did the page load?)"
    assert r.probe["viewport"][0] == size[0], f"Chromium's viewport is {r.probe['viewport']}, not {size}"
    return r.probe


@pytest.mark.parametrize("page", PAGES, ids=[p.removeprefix("book/") for p in PAGES])
def test_page_in_browser(page, render, built_book, server):
    built = built_book.html / f"{page}.html"
    if not built.exists():
        pytest.fail(f"{page}.html was not built")
    source = BeautifulSoup(built.read_text(encoding="utf-8"), "html.parser")
    r = render(page)

    # MathJax typeset every formula, without errors (e.g. an undefined macro)
    if source.find(class_="math"):
        assert r.soup.find("mjx-container"), "the page has math but MathJax did not typeset it"
    assert not r.soup.find("mjx-merror"), [e.get_text() for e in r.soup.find_all("mjx-merror")]

    # every image in the rendered page loads from the local server
    page_url = server.base + page + ".html"
    for img in r.soup.find_all("img"):
        src = img.get("src", "")
        if src.startswith("data:"):
            continue
        url = urljoin(page_url, src)
        assert url.startswith(server.base), f"external image {url}"
        with urllib.request.urlopen(url, timeout=30) as resp:
            assert resp.status == 200, (url, resp.status)

    # nothing the page asked for was missing, the favicon included
    missing = [p for p, code in r.requests if code == 404]
    assert not missing, f"404 for {missing}"

    # no JavaScript error of any kind
    errors = r.errors()
    assert not errors, "\n".join(errors)

    # widgets saved in the notebook render (the vendored require.js and widget manager work)
    if source.find("script", type="application/vnd.jupyter.widget-view+json"):
        assert r.soup.find(class_="jupyter-widgets"), "the widget manager rendered no widget"
        assert not r.soup.find(class_="jupyter-widgets-error-widget"), "a widget failed"

    # notebook pages open in Colab
    if is_notebook(page):
        url, branch = repository()
        org_repo = urlsplit(url).path.strip("/")
        expected = f"https://colab.research.google.com/github/{org_repo}/blob/{branch}/{page}.ipynb"
        links = [a["href"] for a in r.soup.find_all("a", href=True) if "colab" in a["href"]]
        assert expected in links, f"Colab link {expected} not found; Colab links: {links}"


def _offenders(items: list[dict]) -> str:
    return "\n".join(
        f"  <{e['tag']} class={e['cls']!r}> {'CLIPS its content, ' if e.get('clipped') else ''}"
        f"width {e['width']} px (x {e['left']}..{e['right']}, "
        f"scrollWidth {e['scrollWidth']}): {e['text']!r}"
        for e in items
    )


@pytest.mark.parametrize("width", SIZES)
@pytest.mark.parametrize("page", PAGES, ids=[p.removeprefix("book/") for p in PAGES])
def test_page_fits_the_viewport(page, width, render):
    """No element makes the page wider than the viewport, sticks out of the text column or cuts
    its content off (every page of the toc: the chapters, and the notation and figure tables)."""
    size = SIZES[width]
    p = probe_of(render(page, size), page, size)
    problems = []
    if p["scrollWidth"] > size[0] + 1:
        problems.append(
            f"the page is {p['scrollWidth']} px wide in a {size[0]} px viewport; reaching past it:\n"
            + _offenders(p["page_overflow"])
        )
    if p["column_overflow"]:
        problems.append(
            f"{len(p['column_overflow'])} elements stick out of the {p['column']} px text column "
            "or cut their content off:\n" + _offenders(p["column_overflow"][:25])
        )
    assert not problems, f"{page} at {width}:\n" + "\n".join(problems)


def _alt_ok(alt: str, src: str) -> bool:
    alt = alt.strip()
    name = Path(urlsplit(src).path).name
    looks_like_path = bool(re.search(r"\.(png|jpe?g|svg|gif|webp)$", alt, re.I)) or "/" in alt or alt == name
    return len(alt.split()) >= 3 and not looks_like_path


@pytest.mark.parametrize("page", CHAPTERS, ids=[p.removeprefix("book/") for p in CHAPTERS])
def test_chapter_images(page, render):
    """Sharp (>= 2x natural pixels, or SVG), captioned with a number, and described in alt text."""
    p = probe_of(render(page, DESKTOP), page, DESKTOP)
    bad = []
    for im in p["images"]:
        if im["widget"] or im["src"].startswith("data:image/svg"):
            continue
        name = Path(urlsplit(im["src"]).path).name or im["src"][:40]
        svg = name.lower().endswith(".svg")
        if im["visible"] and not svg and im["natural"] < 1.98 * im["shown"]:
            bad.append(f"{name}: {im['natural']} natural px shown at {im['shown']} px (needs 2x)")
        if not (im["caption"] and im["number"]):
            bad.append(f"{name}: no numbered figcaption (caption: {im['caption']!r})")
        if not _alt_ok(im["alt"], im["src"]):
            bad.append(f"{name}: alt text {im['alt']!r} is not a description")
    assert not bad, f"{page}: {len(bad)} image problems:\n" + "\n".join(bad)


@pytest.mark.parametrize("page", CHAPTERS, ids=[p.removeprefix("book/") for p in CHAPTERS])
def test_chapter_hides_solutions(page, render):
    """With every collapsed element closed, no reference code and no "tests passed" is visible."""
    p = probe_of(render(page, DESKTOP), page, DESKTOP)
    assert not p["exposed"], f"{page}: visible outside a collapsed element:\n" + "\n".join(p["exposed"])


def test_chapter_lengths(render, capsys):
    """Page length in screens at 1400 x 900 (printed); chapters 4 and 5 at most 16 screens."""
    lengths = {}
    for page in CHAPTERS:
        r = render(page, DESKTOP)
        if r.probe:
            lengths[page] = r.probe["height"] / DESKTOP[1]
    with capsys.disabled():
        print("\npage length at 1400 x 900, in screens:")
        for page, screens in lengths.items():
            limit = MAX_SCREENS.get(page)
            print(f"  {page:36s} {screens:5.1f}" + (f"  (limit {limit})" if limit else ""))
    missing = [p for p in CHAPTERS if p not in lengths]
    assert not missing, f"no measurement for {missing}"
    too_long = {p: round(s, 1) for p, s in lengths.items() if p in MAX_SCREENS and s > MAX_SCREENS[p]}
    assert not too_long, f"longer than {MAX_SCREENS} screens: {too_long}"
