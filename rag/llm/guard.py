"""Limits on one LLM call, enforced under the openai client: an absolute deadline and a byte budget.

The openai client only knows per-read timeouts, so a server trickling one byte a second never times out, and it
reads whatever a server sends. Every socket the chat models use is wrapped (`install`); while a call runs, the
thread making it carries a `Watch` (`watching`), and each connect, read and write of that thread gets at most the
time left until the deadline and counts its bytes against the budget. The read that straddles the deadline times
out at the deadline itself, in the thread that made the call, which closes its connection: no watchdog thread,
nothing left running. A thread without a watch (any other use of the client) is unaffected.

A thread may also carry a `Cancel` (`cancelling`): when the request it works for is abandoned (its client went away),
`Cancel.cancel()` from any thread shuts the sockets that thread is reading or writing, and every later read, write
or connect of it fails at once: the LLM call ends now instead of at its deadline, and its connection is closed.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, Self

try:  # the httpcore that the installed openai client's httpx speaks
    import httpcore2 as _core
except ImportError:  # pragma: no cover - depends on the installed openai
    import httpcore as _core  # type: ignore[no-redef]

log = logging.getLogger(__name__)


class Deadline(float):
    """A time.monotonic() instant that also remembers the budget it was set from (for the user's message)."""

    seconds: float | None

    def __new__(cls, at: float, seconds: float | None = None) -> Self:
        deadline = super().__new__(cls, at)
        deadline.seconds = seconds
        return deadline

    @classmethod
    def after(cls, seconds: float) -> Self:
        """The instant `seconds` from now."""
        return cls(time.monotonic() + seconds, seconds)


class ReplyTooLarge(Exception):
    """The server sent more bytes than the call's budget; raised from a socket read, so the connection closes."""


class Watch:
    """The limits of one LLM call: a deadline (monotonic) and a byte budget, both optional."""

    def __init__(self, deadline: float | None = None, max_bytes: int | None = None) -> None:
        self.deadline, self.max_bytes = deadline, max_bytes
        self.started = time.monotonic()
        self.received = 0
        self.overflowed = False

    def remaining(self) -> float | None:
        """Seconds left until the deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        left = self.remaining()
        return left is not None and left <= 0

    def clamp(self, timeout: float | None, error: type[Exception]) -> float | None:
        """`timeout` shortened to the time left; `error` at once if none is left."""
        left = self.remaining()
        if left is None:
            return timeout
        if left <= 0:
            raise error("the answer deadline has passed")
        return left if timeout is None else min(timeout, left)

    def count(self, n: int) -> None:
        """Add n received bytes; ReplyTooLarge past the budget."""
        self.received += n
        if self.max_bytes is not None and self.received > self.max_bytes:
            self.overflowed = True
            raise ReplyTooLarge(f"more than {self.max_bytes} bytes received")


_local = threading.local()


def current() -> Watch | None:
    """The watch of the LLM call this thread is making, if any."""
    return getattr(_local, "watch", None)


@contextlib.contextmanager
def watching(watch: Watch) -> Iterator[Watch]:
    """Make `watch` apply to every socket operation of this thread inside the block."""
    previous = current()
    _local.watch = watch
    try:
        yield watch
    finally:
        _local.watch = previous


class Cancel:
    """Stops the LLM calls made for one request, from another thread (see the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy: set[_WatchedStream] = set()
        self.cancelled = False

    def cancel(self) -> None:
        """Stop: shut the connections in use now (a blocked read returns at once); later use fails."""
        with self._lock:
            self.cancelled = True
            busy = list(self._busy)
        for stream in busy:
            stream.abort()

    @contextlib.contextmanager
    def using(self, stream: _WatchedStream, error: type[Exception]) -> Iterator[None]:
        """Around one read or write of `stream`: `error` at once if cancelled; shut by cancel() meanwhile."""
        with self._lock:
            if self.cancelled:
                raise error("the request was abandoned")
            self._busy.add(stream)
        try:
            yield
        finally:
            with self._lock:
                self._busy.discard(stream)


def cancelled() -> bool:
    """Whether the request this thread works for was abandoned."""
    cancel = getattr(_local, "cancel", None)
    return cancel is not None and cancel.cancelled


@contextlib.contextmanager
def cancelling(cancel: Cancel) -> Iterator[Cancel]:
    """Make `cancel` apply to every LLM connection this thread uses inside the block."""
    previous = getattr(_local, "cancel", None)
    _local.cancel = cancel
    try:
        yield cancel
    finally:
        _local.cancel = previous


def _in_use(stream: _WatchedStream, error: type[Exception]) -> contextlib.AbstractContextManager[None]:
    """The calling thread's Cancel watching `stream` for one read or write (nothing without one)."""
    cancel = getattr(_local, "cancel", None)
    return cancel.using(stream, error) if cancel is not None else contextlib.nullcontext()


class _WatchedStream(_core.NetworkStream):  # type: ignore[misc]
    """A connection whose reads and writes obey the calling thread's watch and cancel."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        watch = current()
        with _in_use(self, _core.ReadError):
            if watch is None:
                return bytes(self._inner.read(max_bytes, timeout))
            data = bytes(self._inner.read(max_bytes, watch.clamp(timeout, _core.ReadTimeout)))
        watch.count(len(data))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        watch = current()
        with _in_use(self, _core.WriteError):
            self._inner.write(buffer, watch.clamp(timeout, _core.WriteTimeout) if watch is not None else timeout)

    def abort(self) -> None:
        """Shut the socket from another thread: a read blocked on it returns (the connection is then dropped)."""
        sock = self._inner.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        watch = current()
        timeout = watch.clamp(timeout, _core.ConnectTimeout) if watch is not None else timeout
        return _WatchedStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _WatchedBackend(_core.NetworkBackend):  # type: ignore[misc]
    """A network backend whose connections are `_WatchedStream`s."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> Any:
        if cancelled():
            raise _core.ConnectError("the request was abandoned")
        watch = current()
        timeout = watch.clamp(timeout, _core.ConnectTimeout) if watch is not None else timeout
        return _WatchedStream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> Any:  # pragma: no cover - unused
        watch = current()
        timeout = watch.clamp(timeout, _core.ConnectTimeout) if watch is not None else timeout
        return _WatchedStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:  # pragma: no cover - unused by the sync pool
        self._inner.sleep(seconds)


def install(transport: Any) -> bool:
    """Wrap an httpx HTTPTransport's connections so watches apply to them; False if its pool is not the usual one."""
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if backend is None:
        log.warning("cannot enforce LLM deadlines on %r: unknown connection pool", transport)
        return False
    if not isinstance(backend, _WatchedBackend):
        pool._network_backend = _WatchedBackend(backend)  # type: ignore[union-attr]
    return True


def clamp_timeouts(extensions: dict[str, Any], watch: Watch) -> None:
    """Shorten a request's connect/read/write/pool timeouts to the watch's time left."""
    left = watch.remaining()
    timeouts = extensions.get("timeout")
    if left is None or not isinstance(timeouts, dict):
        return
    extensions["timeout"] = {key: (left if value is None else min(value, left)) for key, value in timeouts.items()}


def retry_delay(headers: Any) -> float | None:
    """The delay a Retry-After / retry-after-ms header asks for, in seconds (None if absent or unreadable)."""
    with contextlib.suppress(TypeError, ValueError):
        if headers.get("retry-after-ms") is not None:
            return float(headers["retry-after-ms"]) / 1000
        if headers.get("retry-after") is not None:
            return float(headers["retry-after"])
    return None
