"""The test suite's own safety net (tests/conftest.py): offline, one thread, loopback only."""

from __future__ import annotations

import os
import socket
import threading

import pytest
import torch

from conftest import NetworkAccessError, is_loopback


def test_hub_lookups_are_offline():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_one_torch_thread():
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("address", [("192.0.2.1", 80), ("2001:db8::1", 443), ("10.0.0.1", 53)])
def test_connections_leaving_the_machine_raise(address):
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        with pytest.raises(NetworkAccessError, match="offline"):
            s.connect(address)
        with pytest.raises(NetworkAccessError):
            s.connect_ex(address)


def test_name_lookups_raise():
    with pytest.raises(NetworkAccessError, match="example.org"):
        socket.getaddrinfo("example.org", 443)
    with pytest.raises(NetworkAccessError):
        socket.create_connection(("huggingface.co", 443), timeout=1)


def test_loopback_still_works():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        got = []
        t = threading.Thread(target=lambda: got.append(server.accept()[0].recv(5)))
        t.start()
        with socket.create_connection(("localhost", port), timeout=5) as c:
            c.sendall(b"hello")
        t.join(5)
    assert got == [b"hello"]


@pytest.mark.parametrize(
    "host,local",
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("localhost", True),
        (None, True),
        ("8.8.8.8", False),
        ("example.com", False),
        ("0.0.0.0", False),
    ],
)
def test_is_loopback(host, local):
    assert is_loopback(host) is local
