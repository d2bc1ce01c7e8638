"""API keys (RAG_API_KEYS) for the HTTP interfaces: one check shared by the chat server's guard and `mcp --http`."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from rag.settings import Settings

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


def api_keys(settings: Settings) -> frozenset[str]:
    """The configured API keys (empty: the routes are open, or behind the chat login when there is one)."""
    raw = settings.api_keys.get_secret_value() if settings.api_keys else ""
    return frozenset(k.strip() for k in raw.split(",") if k.strip())


def key_ok(given: str, keys: frozenset[str]) -> bool:
    """Whether a string is one of the keys (compared in constant time)."""
    return bool(given) and any(hmac.compare_digest(given.encode(), key.encode()) for key in keys)


def bearer_ok(authorization: str | None, keys: frozenset[str]) -> bool:
    """Whether an Authorization header carries one of the keys."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return scheme.lower() == "bearer" and key_ok(token.strip(), keys)


def key_login(keys: frozenset[str]) -> Callable[[str, str], bool]:
    """The chat's login when keys are set without one (RAG_API_KEYS, no RAG_AUTH): any user name, a key as the
    password. Without it the page, and with it Gradio's own API (/gradio_api/call/*, the upload route), would be
    open to anyone while /api and /v1 want a key."""
    return lambda _user, password: key_ok(password, keys)


def unauthorized_body(message: str = "Missing or wrong API key (send Authorization: Bearer KEY).") -> dict[str, Any]:
    """The 401 body, in the OpenAI error shape (which MCP and REST clients read as well)."""
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}


def require_key(app: ASGIApp, keys: frozenset[str]) -> ASGIApp:
    """An ASGI app that answers 401 to HTTP requests without one of the keys (no keys: app itself)."""
    if not keys:
        return app

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            if not bearer_ok(headers.get("authorization"), keys):
                body = json.dumps(unauthorized_body()).encode()
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded
