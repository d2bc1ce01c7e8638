"""Who a request comes from, and what that client may still do: the client's address (X-Forwarded-For only from
configured proxies), the host it names (DNS rebinding), and the back-off on wrong passwords per client."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

MAX_TRACKED_CLIENTS = 10_000


def client_of(scope: dict[str, Any]) -> str:
    """The client's address (a trusted proxy's X-Forwarded-For, else the peer's: see forwarded_for_from)."""
    return str((scope.get("client") or ("unknown", 0))[0])


@contextlib.contextmanager
def forwarded_for_from(proxies: str) -> Iterator[None]:
    """While starting the server: uvicorn takes X-Forwarded-For only from these addresses (FORWARDED_ALLOW_IPS;
    its own default trusts 127.0.0.1, so any local process could name itself a new client on every request)."""
    before = os.environ.get("FORWARDED_ALLOW_IPS")
    os.environ["FORWARDED_ALLOW_IPS"] = proxies
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("FORWARDED_ALLOW_IPS", None)
        else:
            os.environ["FORWARDED_ALLOW_IPS"] = before


def host_allowed(host_header: str, allowed: frozenset[str]) -> bool:
    """Whether a Host header names this server: an IP address (a DNS rebinding attack always comes by a name),
    localhost, or one of the allowed names ('.example.org' also allows its subdomains, '*' anything)."""
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:7860
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    host = host.rstrip(".")
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return host == "localhost" or "*" in allowed or any(
        host == name or (name.startswith(".") and (host.endswith(name) or host == name[1:])) for name in allowed)



@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


@dataclass
class LoginThrottle:
    """Per-client wrong-password counts: after `max_failures`, each further failure doubles a lock-out."""

    max_failures: int = 5
    backoff_s: float = 1.0
    backoff_max_s: float = 300.0
    _clients: OrderedDict[str, _Failures] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, client: str, now: float | None = None) -> float:
        """Seconds this client must still wait before trying again (0: go ahead)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._clients.get(client)
            return max(0.0, entry.locked_until - now) if entry else 0.0

    def failed(self, client: str, now: float | None = None) -> None:
        """Record a wrong password."""
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._clients.pop(client, None) or _Failures()
            entry.count += 1
            if entry.count >= self.max_failures:
                delay = min(self.backoff_max_s, self.backoff_s * 2 ** (entry.count - self.max_failures))
                entry.locked_until = now + delay
                log.warning("login: %d wrong passwords from %s; locked for %.0f s", entry.count, client, delay)
            self._clients[client] = entry
            while len(self._clients) > MAX_TRACKED_CLIENTS:
                self._clients.popitem(last=False)

    def succeeded(self, client: str) -> None:
        """Forget a client's failures."""
        with self._lock:
            self._clients.pop(client, None)
