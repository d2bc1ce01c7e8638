"""Gradio's upload route (/gradio_api/upload), served by the guard instead of Gradio.

The guard used to read each upload body into memory to check its size before Gradio's parser saw it: 20 concurrent
49 MB uploads took the server from 856 MB to 2.7 GB. Here the body goes to disk as it arrives, in pieces; one client
may send RAG_UPLOAD_CONCURRENCY uploads at once and RAG_UPLOAD_CLIENT_BYTES in an hour (429 beyond, before the body
is read); an upload that is too large, malformed or abandoned by its client leaves no file behind. What is stored and
answered is Gradio's: each file in its cache as <sha256 of the content>/<name>, the reply the list of their paths,
and the files registered for its cache clean-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from .library import safe_name

log = logging.getLogger(__name__)

HOUR_S = 3600.0
MAX_TRACKED_CLIENTS = 10_000


class UploadRefused(Exception):
    """An upload that is not taken: the HTTP status, one sentence, and extra headers."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers


@dataclass
class _Incoming:
    """One file of an upload as it arrives: a hidden temporary file in the cache folder, hashed as it is written."""

    name: str
    file: IO[bytes]
    sha: Any = field(default_factory=hashlib.sha256)

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.sha.update(data)


@dataclass
class UploadLimits:
    """What one upload and one client may send."""

    max_bytes: int  # one upload, all its files
    max_files: int  # files in one upload
    per_client: int  # uploads in progress at once from one client
    client_bytes: int  # bytes one client may upload in an hour


class Uploads:
    """The upload route, with per-client limits (see the module docstring). One per server; its state lives on the
    event loop (no locks)."""

    def __init__(self, limits: UploadLimits) -> None:
        self.limits = limits
        self._active: dict[str, int] = {}
        self._spent: OrderedDict[str, deque[tuple[float, int]]] = OrderedDict()

    def spent(self, client: str, now: float | None = None) -> int:
        """Bytes this client uploaded in the last hour."""
        now = time.monotonic() if now is None else now
        entries = self._spent.get(client)
        while entries and entries[0][0] < now - HOUR_S:
            entries.popleft()
        return sum(n for _, n in entries or ())

    async def handle(self, client: str, folder: Path, declared: int | None, content_type: str,
                     receive: Any) -> list[str]:
        """Store one upload's files in folder (Gradio's cache); their paths, or UploadRefused."""
        lim = self.limits
        if self._active.get(client, 0) >= lim.per_client:
            raise UploadRefused(429, f"Too many uploads at once from this client (at most {lim.per_client}); wait "
                                     "for one to finish.", (("retry-after", "5"),))
        if declared is not None and declared > lim.max_bytes:
            raise UploadRefused(413, f"The request is too large (over {lim.max_bytes:,} bytes).")
        budget = lim.client_bytes - self.spent(client)
        if declared is not None and declared > budget:
            raise self._over_budget()
        self._active[client] = self._active.get(client, 0) + 1
        try:
            paths, size = await self._store(folder, content_type, receive, min(lim.max_bytes, budget))
        finally:
            self._active[client] -= 1
            if not self._active[client]:
                del self._active[client]
        self._spent.setdefault(client, deque()).append((time.monotonic(), size))
        self._spent.move_to_end(client)
        while len(self._spent) > MAX_TRACKED_CLIENTS:
            self._spent.popitem(last=False)
        return paths

    def _over_budget(self) -> UploadRefused:
        return UploadRefused(429, f"This client has uploaded its {self.limits.client_bytes:,} bytes for the hour "
                                  "(RAG_UPLOAD_CLIENT_BYTES); try again later.", (("retry-after", "600"),))

    async def _store(self, folder: Path, content_type: str, receive: Any, limit: int) -> tuple[list[str], int]:
        """Parse the multipart body as it arrives, each file's data written to disk in a worker thread."""
        kind, params = parse_options_header(content_type)
        if kind != b"multipart/form-data" or b"boundary" not in params:
            raise UploadRefused(400, "Send the files as multipart/form-data.")
        folder.mkdir(parents=True, exist_ok=True)
        files: list[_Incoming] = []
        writes: list[tuple[_Incoming, bytes]] = []
        part: dict[str, Any] = {}

        def header_field(data: bytes, start: int, end: int) -> None:
            part["field"] = part.get("field", b"") + data[start:end]

        def header_value(data: bytes, start: int, end: int) -> None:
            part["value"] = part.get("value", b"") + data[start:end]

        def header_end() -> None:
            if part.pop("field", b"").lower() == b"content-disposition":
                part["disposition"] = part.get("value", b"")
            part.pop("value", None)

        def headers_finished() -> None:
            _, options = parse_options_header(part.pop("disposition", b""))
            if b"filename" not in options:  # a plain form field: ignored
                part["file"] = None
                return
            if len(files) >= self.limits.max_files:
                raise UploadRefused(400, f"More than {self.limits.max_files} files at once "
                                         "(RAG_MAX_UPLOAD_FILES).")
            name = safe_name(options[b"filename"].decode("utf-8", "replace"))
            handle = tempfile.NamedTemporaryFile(prefix=".partial-", dir=folder, delete=False)  # noqa: SIM115
            files.append(_Incoming(name, handle))
            part["file"] = files[-1]

        def part_data(data: bytes, start: int, end: int) -> None:
            if part.get("file") is not None:
                writes.append((part["file"], data[start:end]))

        parser = MultipartParser(params[b"boundary"], {
            "on_part_begin": part.clear, "on_header_field": header_field, "on_header_value": header_value,
            "on_header_end": header_end, "on_headers_finished": headers_finished, "on_part_data": part_data})
        size = 0
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise UploadRefused(400, "The client went away.")
                body = message.get("body", b"")
                size += len(body)
                if size > limit:
                    raise (UploadRefused(413, f"The request is too large (over {self.limits.max_bytes:,} bytes).")
                           if size > self.limits.max_bytes else self._over_budget())
                parser.write(body)
                if writes:
                    await anyio.to_thread.run_sync(_write_all, list(writes))
                    writes.clear()
                if not message.get("more_body", False):
                    break
            parser.finalize()
            return await anyio.to_thread.run_sync(_keep, files, folder), size
        except MultipartParseError as exc:
            raise UploadRefused(400, f"The upload is not well-formed multipart data ({exc}).") from None
        except OSError:
            log.exception("storing an upload in %s failed", folder)
            raise UploadRefused(500, "The server could not store the files (is its disk full?).") from None
        finally:
            for f in files:
                f.file.close()
                with contextlib.suppress(OSError):
                    os.unlink(f.file.name)  # a partial file; a kept one was moved away already


def _write_all(writes: list[tuple[_Incoming, bytes]]) -> None:
    for incoming, data in writes:
        incoming.write(data)


def _keep(files: list[_Incoming], folder: Path) -> list[str]:
    """Move the finished files to <sha256>/<name> in the cache, as Gradio lays it out; their paths."""
    kept = []
    for f in files:
        f.file.flush()
        dest = folder / f.sha.hexdigest() / f.name
        dest.parent.mkdir(exist_ok=True)
        os.replace(f.file.name, dest)
        kept.append(str(dest))
    return kept
