"""Where the package may reach the network and where it caches: the offline switches
(``HF_HUB_OFFLINE``, ``LCA_OFFLINE``), the cache folder, and a bounded reachability check."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path


def _cache_dir() -> Path:
    base = os.environ.get("LCA_CACHE")
    if base:
        return Path(base).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lca"


def _offline_flag() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "LCA_OFFLINE"))


def _can_reach(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """True if a TCP connection to host:port opens within ``timeout`` seconds (DNS included)."""
    if _offline_flag():
        return False
    result = []

    def probe():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            result.append(False)

    th = threading.Thread(target=probe, daemon=True)
    th.start()
    th.join(timeout + 1.0)
    return bool(result and result[0])
