"""A misbehaving OpenAI-compatible chat endpoint for tests: a threaded http.server following a script.

Each POST to /v1/chat/completions takes the next behaviour from the script (the default once it is empty)
and answers with it, as JSON or as SSE (`data: {...}` … `data: [DONE]`) when the request asks to stream.
Every request is recorded (arrival time, headers, JSON body) so a test can check what was sent and when.
A POST to /v1/embeddings is not scripted: each input gets a fixed, unnormalised vector of its text's hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Body = dict[str, Any]
TextFn = Callable[[Body], str]

_PASSAGE = re.compile(r'<passage n="(\d+)"[^>]*>\n(.*?)\n</passage>', re.DOTALL)
_CANARY = re.compile(r"CANARY-[0-9a-f]+")


def messages_text(body: Body, role: str | None = None) -> str:
    """The text of the request's messages (of one role, if given)."""
    return "\n".join(str(m.get("content", "")) for m in body.get("messages", []) if role in (None, m.get("role")))


def canary_of(body: Body) -> str:
    """The canary marker in the request's system prompt ('' if there is none)."""
    found = _CANARY.search(messages_text(body, "system"))
    return found.group(0) if found else ""


def grounded_reply(body: Body) -> str:
    """A well-behaved answer: the first sentence of passage [n] of the prompt, cited [n]."""
    found = _PASSAGE.search(messages_text(body, "user"))
    if not found:
        return "The papers here do not say."
    n, text = found.groups()
    first = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9])", text.strip())[0].rstrip(".")
    return f"{first} [{n}]."


@dataclass
class Reply:
    """200 with an answer; `text` may be a function of the request body. Streams in `chunks` pieces."""

    text: str | TextFn = grounded_reply
    chunks: int = 3
    delay: float = 0.0  # seconds before the response starts

    def render(self, body: Body) -> str:
        return self.text(body) if callable(self.text) else self.text


@dataclass
class Status:
    """An HTTP error status with an OpenAI-style JSON error body (or `raw` bytes) and extra headers."""

    code: int
    message: str = "fault injected"
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


@dataclass
class Hang:
    """Accept the request and never answer (until the server stops or `seconds` pass); `after_chunks`
    first sends headers and that many SSE chunks, then stalls mid-stream."""

    seconds: float = 120.0
    after_chunks: int | None = None
    text: str = "Seesaw is a system for LLM inference that"


@dataclass
class Malformed:
    """200 whose body is not a chat completion: broken JSON (`data: {...` when streaming)."""

    payload: str = '{"id": "chatcmpl-x", "choices": [ {"delta": '


@dataclass
class Cut:
    """Stream `after_chunks` pieces of `text`, then drop the connection. `chunked=True` aborts a chunked
    body (a protocol error the client can see); `chunked=False` ends a close-delimited body cleanly, so
    only the missing finish_reason / [DONE] tells the stream was cut."""

    text: str = "Seesaw achieves a throughput increase of up to 1.78x compared to vLLM, which is"
    after_chunks: int = 2
    chunked: bool = True


@dataclass
class Trickle:
    """200 that sends one byte every `interval` seconds (for `seconds` at most): a whole SSE event or JSON body
    takes minutes, so no per-read timeout ever fires. `headers=True` trickles the status line and headers too."""

    text: str = "Seesaw achieves a throughput increase of up to 1.78x compared to vLLM [1]."
    interval: float = 1.0
    seconds: float = 300.0
    headers: bool = False


@dataclass
class Flood:
    """200 with an endless reply: SSE events of `piece` (or, `one_event=True`, a single event that never ends)
    until the client hangs up or `total` characters went out; a JSON body claiming `total` characters otherwise."""

    piece: str = "flood " * 170
    total: int = 500_000_000
    one_event: bool = False


Behaviour = Reply | Status | Hang | Malformed | Cut | Trickle | Flood


@dataclass
class Recorded:
    """One request as the server saw it."""

    at: float
    path: str
    headers: dict[str, str]  # lower-case names
    body: Body


def _completion(text: str) -> bytes:
    return json.dumps({
        "id": "chatcmpl-fault", "object": "chat.completion", "created": int(time.time()), "model": "fault",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }).encode()


EMBEDDING_DIM = 8


def embedding_of(item: object) -> list[float]:
    """The fixed vector of one embeddings input (text or token ids): its hash's bytes, 1..256, not unit length."""
    digest = hashlib.sha256(json.dumps(item).encode()).digest()
    return [float(b + 1) for b in digest[:EMBEDDING_DIM]]


def _embeddings(body: Body) -> bytes:
    items = body.get("input") or []
    items = items if isinstance(items, list) else [items]
    data = [{"object": "embedding", "index": i, "embedding": embedding_of(x)} for i, x in enumerate(items)]
    return json.dumps({"object": "list", "data": data, "model": body.get("model", ""),
                       "usage": {"prompt_tokens": 0, "total_tokens": 0}}).encode()


def _chunk(content: str | None, finish: str | None = None) -> bytes:
    delta = {"role": "assistant", "content": content} if content is not None else {}
    payload = {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": int(time.time()),
               "model": "fault", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(payload)}\n\n".encode()


def _pieces(text: str, n: int) -> list[str]:
    """text cut into n roughly equal pieces (at least one, possibly empty)."""
    n = max(1, n)
    size = max(1, -(-len(text) // n))
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def do_GET(self) -> None:  # /v1/models, for health checks
        self._send_json(200, json.dumps({"object": "list", "data": [{"id": "fault", "object": "model"}]}).encode())

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {"_raw": raw.decode(errors="replace")}
        owner = self.server.owner
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.path.endswith("/embeddings"):
            with owner._lock:
                owner.requests.append(Recorded(time.monotonic(), self.path, headers, body))
            self._send_json(200, _embeddings(body))
            return
        behaviour = owner._next(Recorded(time.monotonic(), self.path, headers, body))
        stream = bool(body.get("stream"))
        owner._busy(+1)
        try:
            self._serve(behaviour, body, stream, owner)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): nothing to do
            self.close_connection = True
        finally:
            owner._busy(-1)

    # -- behaviours ----------------------------------------------------------------------------------------
    def _serve(self, b: Behaviour, body: Body, stream: bool, owner: FaultServer) -> None:
        if isinstance(b, Reply):
            if b.delay:
                owner._stop.wait(b.delay)
            text = b.render(body)
            if not stream:
                self._send_json(200, _completion(text))
                return
            self._start_sse()
            for piece in _pieces(text, b.chunks):
                self._write_chunk(_chunk(piece))
            self._write_chunk(_chunk(None, "stop"))
            self._write_chunk(b"data: [DONE]\n\n")
            self._end_chunks()
        elif isinstance(b, Status):
            payload = b.raw if b.raw is not None else json.dumps(
                {"error": {"message": b.message, "type": "fault", "code": str(b.code)}}).encode()
            self._send_json(b.code, payload, b.headers)
        elif isinstance(b, Hang):
            if b.after_chunks is not None:
                self._start_sse()
                for piece in _pieces(b.text, b.after_chunks + 1)[: b.after_chunks]:
                    self._write_chunk(_chunk(piece))
            owner._stop.wait(b.seconds)
            self.close_connection = True
        elif isinstance(b, Malformed):
            if stream:
                self._start_sse()
                self._write_chunk(f"data: {b.payload}\n\n".encode())
                self._write_chunk(b"data: [DONE]\n\n")
                self._end_chunks()
            else:
                self._send_json(200, b.payload.encode())
        elif isinstance(b, Cut):
            self._cut(b, stream)
        elif isinstance(b, Trickle):
            self._trickle(b, stream, owner)
        elif isinstance(b, Flood):
            self._flood(b, stream, owner)

    def _trickle(self, b: Trickle, stream: bool, owner: FaultServer) -> None:
        self.close_connection = True
        if stream:
            events = b"".join(_chunk(piece) for piece in _pieces(b.text, 3))
            events += _chunk(None, "stop") + b"data: [DONE]\n\n"
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
        else:
            events = _completion(b.text)
            head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(events))
        if not b.headers:
            self.wfile.write(head)
            self.wfile.flush()
            head = b""
        data, ends = head + events, time.monotonic() + b.seconds
        for i in range(len(data)):
            if owner._stop.wait(b.interval) or time.monotonic() > ends:
                return
            self.wfile.write(data[i:i + 1])
            self.wfile.flush()
            owner._sent(1)

    def _flood(self, b: Flood, stream: bool, owner: FaultServer) -> None:
        self.close_connection = True
        if stream:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            if b.one_event:  # one `data:` line that never ends: a client must not buffer it whole
                self.wfile.write(_chunk("\0").split(b"\\u0000")[0])
                data = b.piece.encode()
            else:
                data = _chunk(b.piece)
        else:
            whole = _completion("\0")
            prefix, suffix = whole.split(b"\\u0000")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(prefix) + b.total + len(suffix)))
            self.end_headers()
            self.wfile.write(prefix)
            data = b.piece.encode()
        sent = 0
        while sent < b.total and not owner._stop.is_set():
            self.wfile.write(data)
            sent += len(b.piece)
            owner._sent(len(data))
        if not stream:
            self.wfile.write(suffix)

    def _cut(self, b: Cut, stream: bool) -> None:
        pieces = _pieces(b.text, b.after_chunks + 2)[: b.after_chunks]
        self.close_connection = True
        if not stream:  # promise more bytes than are sent
            data = _completion(b.text)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
        elif b.chunked:
            self._start_sse()
            for piece in pieces:
                self._write_chunk(_chunk(piece))
        else:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for piece in pieces:
                self.wfile.write(_chunk(piece))
        self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- HTTP helpers -------------------------------------------------------------------------------------
    def _send_json(self, code: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FaultServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out or drop keep-alive connections are expected here: stay quiet."""


class FaultServer:
    """The scripted endpoint. `script(...)` queues behaviours; `url` is the OpenAI base URL (…/v1)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, default: Behaviour | None = None) -> None:
        self.default: Behaviour = default or Reply()
        self.requests: list[Recorded] = []
        self.active = 0  # requests being answered right now
        self.bytes_sent = 0  # body bytes written by trickle and flood replies
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fault-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # releases hanging handlers
        self._httpd.shutdown()
        self._httpd.server_close()

    def script(self, *behaviours: Behaviour) -> FaultServer:
        """Replace the queue: the next requests get these behaviours, in order, then the default."""
        with self._lock:
            self._queue = deque(behaviours)
            self.requests.clear()
            self.bytes_sent = 0
        return self

    def _next(self, request: Recorded) -> Behaviour:
        with self._lock:
            self.requests.append(request)
            return self._queue.popleft() if self._queue else self.default

    def _busy(self, delta: int) -> None:
        with self._lock:
            self.active += delta

    def _sent(self, n: int) -> None:
        with self._lock:
            self.bytes_sent += n

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is being answered (the client hung up on every one); False on timeout."""
        ends = time.monotonic() + timeout
        while time.monotonic() < ends:
            if self.active == 0:
                return True
            time.sleep(0.05)
        return self.active == 0

    @property
    def remaining(self) -> int:
        """Behaviours still queued."""
        with self._lock:
            return len(self._queue)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
