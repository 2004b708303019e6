"""The built book in a real browser: headless Chromium against the HTML served on 127.0.0.1.

For every page of the toc: MathJax typesets the math (``mjx-container``, no ``mjx-merror``), every
``<img>`` in the rendered DOM loads, the page asks the server for nothing it lacks (no 404), no
uncaught JavaScript error occurs, widget pages render their widgets, and notebook pages carry the
Colab launch link. Chromium's name resolution is pinned to 127.0.0.1, so a page that needs anything
from the internet fails here rather than quietly working online only.

Without Chromium the tests are skipped, except in CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
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
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--enable-logging=stderr",
    "--v=0",
]
VIRTUAL_TIME_MS = 20000
# sphinx-thebe declares `const THEBE_JS_URL` twice on every page (an upstream bug that does not
# affect the book: live code is off). Every other uncaught error fails the test.
KNOWN_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",)
CONSOLE = re.compile(r'INFO:CONSOLE[^\]]*\] "(?P<msg>.*)", source: (?P<src>\S*)')


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

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def browser() -> str:
    return chromium()


@pytest.fixture(scope="module")
def server(built_book):
    if not (built_book.html / "index.html").exists():
        pytest.fail("the book did not build (see test_book_build.py)")
    srv = Server(built_book.html)
    yield srv
    srv.close()


class Render:
    def __init__(self, dom: str, console: list[tuple[str, str]], requests: list[tuple[str, int]]):
        self.dom, self.console, self.requests = dom, console, requests
        self.soup = BeautifulSoup(dom, "html.parser")


@pytest.fixture(scope="module")
def render(browser, server):
    """``render(page)`` loads ``page`` (a toc entry) in a fresh headless Chromium profile."""
    cache: dict[str, Render] = {}

    def run(page: str) -> Render:
        if page not in cache:
            start = len(server.log)
            with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
                proc = subprocess.run(
                    [
                        browser,
                        *CHROMIUM_FLAGS,
                        f"--user-data-dir={profile}",
                        f"--virtual-time-budget={VIRTUAL_TIME_MS}",
                        "--dump-dom",
                        server.base + page + ".html",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=180,
                )
            assert proc.returncode == 0 and "<html" in proc.stdout, proc.stderr[-3000:]
            console = [(m["msg"], m["src"]) for m in CONSOLE.finditer(proc.stderr)]
            cache[page] = Render(proc.stdout, console, list(server.log[start:]))
        return cache[page]

    return run


PAGES = toc_files()


def is_notebook(page: str) -> bool:
    return (ROOT / f"{page}.ipynb").exists()


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

    # nothing the page asked for was missing (the browser's own favicon probe aside)
    missing = [p for p, code in r.requests if code == 404 and p != "/favicon.ico"]
    assert not missing, f"404 for {missing}"

    # no uncaught JavaScript error
    errors = [
        f"{msg} ({src})"
        for msg, src in r.console
        if msg.startswith("Uncaught") and not any(k in msg for k in KNOWN_ERRORS)
    ]
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
