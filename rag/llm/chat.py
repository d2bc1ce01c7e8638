"""The chat model: a deterministic ChatOpenAI for any OpenAI-compatible endpoint, and calls bounded in time and size."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
from langchain_core.language_models import LanguageModelInput
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from rag.llm import guard
from rag.llm.errors import LLMDeadlineExceeded, LLMError, LLMTruncated, format_seconds, friendly_error, public_url
from rag.llm.guard import Watch, watching
from rag.settings import Settings

try:  # openai>=3 talks through httpx2; older releases through httpx
    import httpx2
except ImportError:  # pragma: no cover - depends on the installed openai
    httpx2 = None  # type: ignore[assignment]

PLACEHOLDER_KEY = "sk-no-key"  # local servers ignore the key, but the OpenAI client insists on one
OPENAI_URL = "https://api.openai.com/v1"
DEFAULT_MAX_CHARS: int = Settings.model_fields["llm_max_chars"].default
# Bytes a reply may take on the wire per character kept: JSON escapes (\uXXXX) in a completion, and the
# ~150-300 bytes of envelope around every few characters of an SSE stream; plus slack for headers and usage.
_JSON_BYTES_PER_CHAR, _SSE_BYTES_PER_CHAR, _SLACK_BYTES = 6, 400, 1 << 20
_RETRY_BACKOFF = 2.0  # the openai client's back-off before a retry without Retry-After, at most (2 retries)


NO_LLM = ("No language model is configured on this server: set RAG_LLM_BASE_URL to an OpenAI-compatible endpoint, or "
          "RAG_LLM_API_KEY for OpenAI itself.")


def _api_key(settings: Settings) -> str:
    """The configured key, else OPENAI_API_KEY, else a placeholder that local servers accept."""
    if settings.llm_api_key is not None and settings.llm_api_key.get_secret_value():
        return settings.llm_api_key.get_secret_value()
    return os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_KEY


def llm_configured(settings: Settings) -> bool:
    """Whether the 'openai' answerer has somewhere to go: an endpoint, or a key for OpenAI itself (without either
    it would send a placeholder key to the public OpenAI host)."""
    return bool(settings.llm_base_url) or _api_key(settings) != PLACEHOLDER_KEY


_http: Any = httpx2 if httpx2 is not None else httpx  # the HTTP library the installed openai client speaks


class _FinalTimeoutTransport(_http.HTTPTransport):  # type: ignore[misc]
    """A transport whose timeouts are final: raised as openai's own error, which its client never retries.

    The openai client retries a timed-out request like a refused one, so a hung endpoint kept a chat waiting
    (1 + llm_max_retries) x llm_timeout. 5xx, 429 and connection errors fail fast and are still retried.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        guard.install(self)  # sockets obey the deadline and byte budget of the call that uses them

    def handle_request(self, request: Any) -> Any:
        if guard.cancelled():  # the request this call was for was abandoned: no (further) try
            raise openai.APIConnectionError(message="The request was abandoned: its client went away.",
                                            request=request)
        watch = guard.current()
        if watch is not None:
            if watch.expired():  # e.g. before a retry: openai errors are never retried
                raise openai.APITimeoutError(request=request)
            guard.clamp_timeouts(request.extensions, watch)
        try:
            response = super().handle_request(request)
        except _http.TimeoutException as exc:
            raise openai.APITimeoutError(request=request) from exc
        if watch is not None and response.status_code >= 400:
            # A retry that cannot start before the deadline would only sleep past it: tell openai not to.
            left, delay = watch.remaining(), guard.retry_delay(response.headers)
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


def answerer_model(settings: Settings, answerer: str) -> ChatOpenAI:
    """The chat model of an LLM answerer: the local llama.cpp server's ('local', started on first use) or the
    configured OpenAI-compatible endpoint's ('openai')."""
    if answerer == "local":
        from rag.llm.local import get_local_server  # starting a server is the local answerer's business alone

        server = get_local_server(settings)
        return chat_model(settings, base_url=server.base_url, model=server.model)
    if not llm_configured(settings):
        raise LLMError(NO_LLM)
    return chat_model(settings)


def _is_openai(url: str) -> bool:
    """Whether url is OpenAI's own API."""
    return (urlsplit(url).hostname or "").endswith("openai.com")


def _base_url_of(llm: ChatOpenAI) -> str:
    """The public base URL a ChatOpenAI talks to (another LangChain chat model is named by its class)."""
    if not hasattr(llm, "openai_api_base"):
        return type(llm).__name__
    return public_url(llm.openai_api_base or OPENAI_URL)


def _deadline_error(watch: Watch, url: str) -> LLMDeadlineExceeded:
    """The notice for a call whose deadline passed (a plain float deadline does not say how long it allowed)."""
    seconds = getattr(watch.deadline, "seconds", None)
    if seconds is None:
        return LLMDeadlineExceeded(f"The language model at {url} did not finish before the answer deadline.",
                                   time.monotonic() - watch.started)
    within = format_seconds(round(seconds, 1))
    return LLMDeadlineExceeded(f"The language model at {url} did not finish within {within} s.", seconds)


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


