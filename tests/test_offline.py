"""Tests of lca._offline: the cache folder, the offline switches, and a reachability check that
keeps to one total time budget even when name look-ups never answer.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from lca import _offline


@pytest.fixture
def online(monkeypatch):
    """No offline switch set (the test suite sets HF_HUB_OFFLINE for itself)."""
    for var in _offline.OFFLINE_VARIABLES:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def hanging_dns(monkeypatch, online):
    """``socket.getaddrinfo`` that never answers (until the test ends): a network whose name
    server is gone. Returns the names looked up."""
    release, asked = threading.Event(), []

    def hang(host, *args, **kwargs):
        asked.append(host)
        release.wait(60)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    yield asked
    release.set()


def test_cache_dir_honours_lca_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LCA_CACHE", str(tmp_path / "c"))
    assert _offline.cache_dir() == tmp_path / "c"
    monkeypatch.setenv("LCA_CACHE", "  ")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _offline.cache_dir() == tmp_path / "xdg" / "lca"
    monkeypatch.delenv("LCA_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert _offline.cache_dir() == Path.home() / ".cache" / "lca"


@pytest.mark.parametrize(
    "value,offline", [("1", True), ("true", True), ("ON", True), ("0", False), ("", False), ("no", False)]
)
def test_offline_flag(monkeypatch, online, value, offline):
    monkeypatch.setenv("LCA_OFFLINE", value)
    assert _offline.offline_flag() is offline


def test_offline_flag_answers_at_once(monkeypatch, hanging_dns):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    assert _offline.can_reach("huggingface.co") is False
    assert time.perf_counter() - t0 < 0.1 and hanging_dns == []


def test_can_reach_keeps_to_its_budget_when_dns_hangs(hanging_dns):
    t0 = time.perf_counter()
    assert _offline.can_reach("huggingface.co", budget=0.5) is False
    assert time.perf_counter() - t0 < 1.5
    assert hanging_dns == ["huggingface.co"]


def test_can_reach_a_loopback_server(online):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert _offline.can_reach("127.0.0.1", port, budget=2.0) is True
    assert _offline.can_reach("127.0.0.1", port, budget=2.0) is False  # closed: refused


def test_can_reach_refuses_a_bad_host():
    with pytest.raises(ValueError, match="host"):
        _offline.can_reach("")
