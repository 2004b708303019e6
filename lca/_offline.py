"""Where the package may reach the network and where it caches: the offline switches
(``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``, ``LCA_OFFLINE``), the cache folder (``LCA_CACHE``),
and a reachability check with one total time budget.

Nothing here keeps state: every function reads the environment when it is called.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

#: the environment variables that switch the package's network access off
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "LCA_OFFLINE")


def cache_dir() -> Path:
    """The package's cache folder: ``$LCA_CACHE`` when set (the tests point it at a temporary
    folder), else ``$XDG_CACHE_HOME/lca``, else ``~/.cache/lca``. Not created here."""
    base = os.environ.get("LCA_CACHE", "").strip()
    if base:
        return Path(base).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lca"


def offline_flag() -> bool:
    """True when one of ``OFFLINE_VARIABLES`` is set to 1, true, yes or on."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_VARIABLES)


def can_reach(host: str, port: int = 443, budget: float = 2.0) -> bool:
    """True if a TCP connection to ``host:port`` opens within ``budget`` seconds in all, name
    look-up included; False at once when ``offline_flag()`` is set.

    The probe runs in a daemon thread that the caller waits for at most ``budget`` seconds: a
    name server that never answers costs ``budget``, not the resolver's own timeouts (which can
    add up to tens of seconds). A probe still stuck in the look-up is left to finish on its own;
    it holds no lock and its answer is dropped.
    """
    if not isinstance(host, str) or not host:
        raise ValueError(f"host must be a non-empty string, got {host!r}")
    if offline_flag():
        return False
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=budget):
                result.append(True)
        except (OSError, RuntimeError):  # refused, timed out, no name; test guards raise these
            result.append(False)

    th = threading.Thread(target=probe, name=f"lca-can-reach-{host}", daemon=True)
    th.start()
    th.join(budget)
    return bool(result and result[0])
