"""Process helpers: ports (a free one, one to listen on), waiting for a server's HTTP, stopping a process (terminate,
wait, kill)."""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import subprocess
import time

log = logging.getLogger(__name__)


class ProcessExited(RuntimeError):
    """The process being waited for exited first; `returncode` says how."""

    def __init__(self, returncode: int | None, url: str) -> None:
        super().__init__(f"the process exited with code {returncode} before {url} answered")
        self.returncode = returncode


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class PortInUseError(OSError):
    """Something already listens on the port a server was to listen on."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"port {port} is in use", f"{host}:{port}")
        self.host, self.port = host, port


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port and listening (as uvicorn binds one), or PortInUseError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed server's TIME_WAIT does not count
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(host, port) from None
        raise
    return sock


def check_port(host: str, port: int) -> None:
    """PortInUseError when a server could not listen on host:port now (checked before a slow start-up)."""
    listen_socket(host, port).close()


def wait_http(url: str, timeout: float = 60.0, *, proc: subprocess.Popen | None = None, status: int | None = None,
              interval: float = 0.2) -> None:
    """Wait until url answers HTTP (with `status`, if given).

    ProcessExited if proc exits first, TimeoutError once timeout seconds have passed.
    """
    import httpx  # only the callers that start servers pay for it

    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while True:
            if proc is not None and proc.poll() is not None:
                raise ProcessExited(proc.returncode, url)
            with contextlib.suppress(httpx.HTTPError):
                got = client.get(url).status_code
                if status is None or got == status:
                    return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{url} did not answer within {timeout:g} s")
            time.sleep(interval)


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Terminate proc, kill it if it is still running after grace seconds, and reap it; safe to call twice."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log.warning("process %s ignored SIGTERM for %g s; killing it", proc.pid, grace)
        proc.kill()
        proc.wait()
