"""Child-process helpers: a free port, waiting for a server's HTTP, stopping a process (terminate, wait, kill)."""

from __future__ import annotations

import contextlib
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
