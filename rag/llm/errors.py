"""LLM failures as one sentence a user can act on: the endpoint, what went wrong, never a key or a traceback."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import openai

try:  # langchain-core>=1.3 marks prompts longer than the context window
    from langchain_core.exceptions import ContextOverflowError
except ImportError:  # pragma: no cover - depends on langchain-core
    ContextOverflowError = type("ContextOverflowError", (Exception,), {})  # type: ignore[misc,assignment]

try:  # openai>=3 talks through httpx2; older releases through httpx
    import httpx2
except ImportError:  # pragma: no cover - depends on the installed openai
    httpx2 = None  # type: ignore[assignment]

_ENDPOINTS = ("/chat/completions", "/completions", "/embeddings", "/models")
_KEY_PATTERN = re.compile(r"sk-[\w\-*.]+")


from rag.llm import LLMDeadlineExceeded, LLMError, LLMTruncated  # noqa: E402 -- defined there, light to import

__all__ = ["LLMDeadlineExceeded", "LLMError", "LLMTruncated", "format_seconds", "friendly_error", "public_url"]


def _httpx_errors(name: str) -> tuple[type[BaseException], ...]:
    """The exception class `name` from httpx and httpx2, whichever are installed."""
    return tuple(getattr(module, name) for module in (httpx, httpx2) if module is not None)


def public_url(url: str) -> str:
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


def format_seconds(value: float) -> str:
    """30.0 -> '30', 2.5 -> '2.5'."""
    return f"{value:g}"


LLM_HINTS = ("The language model", "RAG_LLM_BASE_URL and RAG_LLM_MODEL", "RAG_LLM_API_KEY or OPENAI_API_KEY")
"""(what failed, the settings naming endpoint and model, the settings holding the key) for friendly_error."""


def friendly_error(
    exc: BaseException, base_url: str | None = None, timeout: float | None = None,
    hints: tuple[str, str, str] = LLM_HINTS,
) -> LLMError:
    """One sentence a user can act on for an LLM failure; never the API key or a traceback."""
    if isinstance(exc, LLMError):
        return exc
    subject, endpoint_vars, key_vars = hints
    request = _request_of(exc)
    url = base_url or (public_url(str(request.url)) if request is not None else "the configured URL")
    where = f"{subject} at {url}"
    timeout = timeout if timeout is not None else _timeout_of(request)
    causes = list(_chain(exc))

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(err, types) for err in causes)

    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status in (401, 403):
            error = LLMError(
                f"{where} rejected the API key (HTTP {status}); set {key_vars}."
            )
        elif status == 404:
            error = LLMError(f"{where} returned HTTP 404; check {endpoint_vars}.")
        elif status == 429:
            error = LLMError(f"{where} is rate-limiting requests (HTTP 429); try again shortly.")
        elif has(ContextOverflowError):
            error = LLMError(f"{where} says the prompt is too long for its context (HTTP {status}).")
        else:
            detail = _status_detail(exc) if status < 500 else ""
            error = LLMError(f"{where} returned HTTP {status}" + (f": {detail}" if detail else "."))
    elif has(openai.APITimeoutError, *_httpx_errors("TimeoutException"), TimeoutError):
        within = f" within {format_seconds(timeout)} s" if timeout else " in time"
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


