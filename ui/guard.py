"""HTTP hardening in front of the whole Gradio app: one pure-ASGI middleware, outermost, on every route.

- a request naming a host other than an IP address, localhost or a configured name gets 400 (DNS rebinding);
- request bodies over a size limit get 413 before the app reads a byte (chunked bodies included); the upload route
  is served here, its bodies streamed to disk within per-client limits (ui.uploads);
- security headers on every response (CSP with frame-ancestors 'self', X-Frame-Options, nosniff, Referrer-Policy);
- CORS off unless configured: Gradio's own middleware reflects any localhost origin with credentials, so every
  Access-Control-* header is dropped unless the request's origin is one of the configured ones;
- with a login set, every route but the login page and its static files needs the session cookie (Gradio leaves
  /gradio_api/cancel, /reset, /heartbeat … open), and wrong passwords back off per client address;
- routes of Gradio features the app leaves out (the settings panel's screen recorder) answer 404;
- Gradio's file paths go out relative to a public name, never the cache folder's absolute path (ui.cachepaths);
- the script routes (/v1 OpenAI-compatible, /api REST): with API keys set (RAG_API_KEYS) they need
  `Authorization: Bearer KEY` and the session does not replace it; without keys they follow the login rule above.
  Their docs (/api/docs, /api/openapi.json) follow the login rule, and open to a bearer key too. Keys without a
  login make the chat's login ask for a key (ui.app), so no route is open without one. A POST to them must be
  JSON (415 otherwise): a cross-site form or text/plain POST needs no CORS preflight.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rag.serve.auth import api_keys, bearer_ok, unauthorized_body
from rag.settings import Settings

from .cachepaths import FILE_ROUTES, CachePaths, hiding
from .clients import LoginThrottle, client_of, host_allowed
from .uploads import UploadLimits, UploadRefused, Uploads

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Gradio's page ships inline scripts and styles and compiles the app's `js` with new Function(); everything else
# is same-origin. img-src also keeps a rendered answer from loading an outside image (exfiltration).
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' data: blob:; connect-src 'self'; "
       "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "SAMEORIGIN",
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
}
LOGIN_PATHS = {"/login", "/login/"}
# What the login page itself needs before anyone is logged in (exact paths, then prefixes).
PUBLIC_PATHS = {"/", "/login", "/login/", "/logout", "/favicon.ico", "/theme.css", "/robots.txt", "/manifest.json",
                "/gradio_api/theme.css", "/gradio_api/startup-events", "/gradio_api/login_check",
                "/gradio_api/login_check/", "/gradio_api/token", "/gradio_api/token/", "/gradio_api/app_id",
                "/gradio_api/app_id/", "/gradio_api/user", "/gradio_api/user/"}
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon")
API_PREFIXES = ("/v1/", "/api/")  # the script routes (ui.routes): API keys, errors in the OpenAI shape
UPLOAD_PATHS = {"/gradio_api/upload", "/upload"}  # Gradio's file upload route: served by ui.uploads
API_DOCS = {"/api/docs", "/api/openapi.json", "/api/docs/oauth2-redirect"}
# Routes of Gradio features the app does not offer: the screen recorder of Gradio's settings panel (not linked from
# the page: no "settings" footer link) posts videos here for ffmpeg to process on the server.
REFUSED_PATHS = {"/gradio_api/process_recording", "/gradio_api/process_recording/"}


@dataclass
class GuardConfig:
    """What the guard enforces (from Settings, see `ui.app`)."""

    max_body_bytes: int = 1_000_000
    max_upload_bytes: int = 50_000_000  # the body limit of Gradio's upload route (paper files)
    max_upload_files: int = 20
    upload_concurrency: int = 2  # uploads in progress at once from one client
    upload_client_bytes: int = 200_000_000  # bytes one client may upload in an hour
    cors_origins: frozenset[str] = frozenset()
    login_max_failures: int = 5
    login_backoff_s: float = 1.0
    login_backoff_max_s: float = 300.0
    auth_required: bool = False
    api_keys: frozenset[str] = frozenset()
    allowed_hosts: frozenset[str] = frozenset()  # host names besides addresses and localhost ('.x.org': subdomains)
    trusted_proxies: str = ""  # whose X-Forwarded-For names the client (uvicorn's forwarded_allow_ips)

    @classmethod
    def of(cls, settings: Settings) -> GuardConfig:
        """The guard's part of the settings."""
        return cls(max_body_bytes=settings.max_body_bytes, max_upload_bytes=settings.max_upload_bytes,
                   max_upload_files=settings.max_upload_files, upload_concurrency=settings.upload_concurrency,
                   upload_client_bytes=settings.upload_client_bytes,
                   cors_origins=frozenset(o.rstrip("/") for o in _listed(settings.cors_origins)),
                   login_max_failures=settings.login_max_failures, login_backoff_s=settings.login_backoff,
                   api_keys=api_keys(settings), trusted_proxies=",".join(_listed(settings.trusted_proxies)),
                   allowed_hosts=frozenset(h.lower().rstrip(".") for h in _listed(settings.allowed_hosts)
                                           + [settings.host]))


def _listed(value: str) -> list[str]:
    """The items of a comma-separated setting."""
    return [item.strip() for item in value.split(",") if item.strip()]


class _TooLarge(Exception):
    pass


def _is_json(content_type: str | None) -> bool:
    """Whether a Content-Type is JSON (application/json, or any +json type; parameters aside)."""
    kind = (content_type or "").partition(";")[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def _error_body(message: str, script: bool, code: str) -> dict[str, Any]:
    """A refusal's body: {"detail": sentence}, plus the OpenAI error shape on the script routes."""
    body: dict[str, Any] = {"detail": message}
    if script:
        body["error"] = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return body


def _headers(scope: Scope) -> dict[str, str]:
    """Request headers, lower-case names (the last value of a repeated header)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


async def _respond(send: Send, status: int, body: dict[str, Any] | list[Any] | str,
                   headers: Iterable[tuple[str, str]] = ()) -> None:
    """A small complete response (JSON for a dict or a list)."""
    data = (body if isinstance(body, str) else json.dumps(body)).encode()
    kind = "text/plain; charset=utf-8" if isinstance(body, str) else "application/json"
    raw = [(b"content-type", kind.encode()), (b"content-length", str(len(data)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


class Guard:
    """The ASGI middleware; wraps the whole app (see `GuardedApp`)."""

    def __init__(self, app: ASGIApp, config: GuardConfig, throttle: LoginThrottle | None = None) -> None:
        self.app, self.config = app, config
        self.throttle = throttle or LoginThrottle(config.login_max_failures, config.login_backoff_s,
                                                  config.login_backoff_max_s)
        self._files: CachePaths | None = None
        self.uploads = Uploads(UploadLimits(max_bytes=config.max_upload_bytes, max_files=config.max_upload_files,
                                            per_client=config.upload_concurrency,
                                            client_bytes=config.upload_client_bytes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not host_allowed(_headers(scope).get("host", ""),
                                                                       self.config.allowed_hosts):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                host = _headers(scope).get("host", "")[:100]
                await _respond(send, 400, {"detail": f"Unknown host {host!r}: this server answers to its addresses, "
                                                     "localhost and the names in RAG_ALLOWED_HOSTS."})
            return
        if scope["type"] == "websocket" and self.config.auth_required and not self._logged_in(scope, _headers(scope)):
            await send({"type": "websocket.close", "code": 1008})  # policy violation: not logged in
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        origin = headers.get("origin")
        allowed_origin = origin if origin and origin in self.config.cors_origins else None
        send = self._send_with_headers(send, allowed_origin)
        path = scope.get("path", "")
        files = self._cache_paths(scope)  # Gradio's file paths go out relative to a public name (ui.cachepaths)
        if files is not None and (real := files.file_route(path)) is not None:
            scope = {**scope, "path": real, "raw_path": quote(real).encode()}
            path = real
        if files is not None and not path.startswith((*API_PREFIXES, *FILE_ROUTES)):
            send = hiding(send, files)
        if allowed_origin and scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await _respond(send, 204, "", [
                ("access-control-allow-methods", "GET, POST, OPTIONS"),
                ("access-control-allow-headers", headers.get("access-control-request-headers", "content-type")),
                ("access-control-max-age", "600")])
            return
        if path in REFUSED_PATHS:
            await _respond(send, 404, {"detail": "Not Found"})
            return
        script = path.startswith(API_PREFIXES) and path not in API_DOCS
        if script and self.config.api_keys:
            if not bearer_ok(headers.get("authorization"), self.config.api_keys):
                await _respond(send, 401, unauthorized_body(), [("www-authenticate", "Bearer")])
                return
        elif self.config.auth_required and not self._public(path) and not self._logged_in(scope, headers) and not (
                path in API_DOCS and bearer_ok(headers.get("authorization"), self.config.api_keys)):
            denied = unauthorized_body("Not authenticated: log in, or set RAG_API_KEYS and send a key.") if script \
                else {"detail": {"error": "Not authenticated"}}
            await _respond(send, 401, denied)
            return
        if script and scope["method"] == "POST" and not _is_json(headers.get("content-type")):
            await _respond(send, 415, _error_body("Send the request body as JSON (Content-Type: application/json).",
                                                  script, "unsupported_media_type"))
            return
        if path in UPLOAD_PATHS and scope["method"] == "POST":
            await self._upload(scope, headers, receive, send)
            return
        try:
            receive = await self._limited_body(scope, headers, receive, None if files is None or script
                                               else files.request_body)
        except _TooLarge:
            await _respond(send, 413, _error_body(f"The request is too large (over {self.config.max_body_bytes:,} "
                                                  "bytes).", script, "request_too_large"), [("connection", "close")])
            return
        if path in LOGIN_PATHS and scope["method"] == "POST" and self.config.auth_required:
            await self._login(scope, receive, send)
            return
        await self.app(scope, receive, send)

    # -- pieces ------------------------------------------------------------------------------------------------
    def _send_with_headers(self, send: Send, allowed_origin: str | None) -> Send:
        """`send` adding the security headers and keeping CORS headers only for a configured origin."""

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", [])
                        if not k.lower().startswith(b"access-control-") and k.lower().decode() not in SECURITY_HEADERS]
                kept += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                if allowed_origin:
                    kept += [(b"access-control-allow-origin", allowed_origin.encode()),
                             (b"access-control-allow-credentials", b"true"), (b"vary", b"Origin")]
                message = {**message, "headers": kept}
            await send(message)

        return wrapped

    @staticmethod
    def _public(path: str) -> bool:
        return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)

    @staticmethod
    def _logged_in(scope: Scope, headers: dict[str, str]) -> bool:
        """Whether the request carries a session cookie Gradio issued (its App keeps the tokens)."""
        app = scope.get("app")
        cookie_id, tokens = getattr(app, "cookie_id", None), getattr(app, "tokens", None)
        if cookie_id is None or tokens is None:
            return False
        cookies: dict[str, str] = {}
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            cookies[name] = value
        token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
        return bool(token) and token in tokens

    async def _upload(self, scope: Scope, headers: dict[str, str], receive: Receive, send: Send) -> None:
        """Gradio's upload route, streamed to disk within the client's limits (ui.uploads); Gradio's reply."""
        app = scope.get("app")
        length = headers.get("content-length")
        try:
            declared = int(length) if length is not None else None
            paths = await self.uploads.handle(client_of(scope), Path(app.uploaded_file_dir), declared,  # type: ignore
                                              headers.get("content-type", ""), receive)
        except ValueError:
            await _respond(send, 400, "A bad Content-Length.", [("connection", "close")])
            return
        except UploadRefused as refused:
            await _respond(send, refused.status, str(refused), [*refused.headers, ("connection", "close")])
            return
        app.get_blocks().upload_file_set.update(paths)  # type: ignore[union-attr] # Gradio's cache clean-up
        await _respond(send, 200, paths)

    def _cache_paths(self, scope: Scope) -> CachePaths | None:
        """The mapping of the app's Gradio cache folder (None before Gradio has one)."""
        folder = getattr(scope.get("app"), "uploaded_file_dir", None)
        if not folder:
            return None
        if self._files is None or self._files.folder != str(folder).rstrip("/"):
            self._files = CachePaths(str(folder))
        return self._files

    async def _limited_body(self, scope: Scope, headers: dict[str, str], receive: Receive,
                            transform: Callable[[bytes], bytes] | None = None) -> Receive:
        """Read a request body up to the limit (413 past it, _TooLarge), then replay it to the app (transformed, its
        Content-Length set anew)."""
        limit = self.config.max_body_bytes
        length = headers.get("content-length")
        if length is not None:
            try:
                if int(length) > limit:
                    raise _TooLarge
            except ValueError:
                raise _TooLarge from None
            if int(length) == 0:
                return receive
        elif "chunked" not in headers.get("transfer-encoding", "").lower():
            return receive
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > limit:
                raise _TooLarge
            if not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
        if transform is not None and (changed := transform(body)) != body:
            body = changed
            scope["headers"] = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"] + [
                (b"content-length", str(len(body)).encode())]
        replay = [{"type": "http.request", "body": body, "more_body": False}] + [
            m for m in messages if m["type"] != "http.request"]

        async def replayed() -> Message:
            return replay.pop(0) if replay else await receive()

        return replayed

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Gradio's /login behind the per-client back-off."""
        client = client_of(scope)
        wait = self.throttle.wait(client)
        if wait > 0:
            seconds = math.ceil(wait)
            await _respond(send, 429, {"detail": f"Too many wrong passwords; try again in {seconds} s."},
                           [("retry-after", str(seconds))])
            return
        status: list[int] = []

        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        await self.app(scope, receive, watched)
        if status and status[0] == 200:
            self.throttle.succeeded(client)
        elif status and status[0] in (400, 401, 403):
            self.throttle.failed(client)


def guarded_app(config: GuardConfig, routers: Iterable[Any] = ()) -> Any:
    """A Gradio App whose middleware stack is wrapped in Guard (outermost, ahead of Gradio's own CORS), with our
    FastAPI routers ahead of Gradio's routes; its OpenAPI page (/api/docs) documents those routers only."""
    from fastapi.openapi.utils import get_openapi
    from gradio.routes import App, ORJSONResponse

    class GuardedApp(App):  # type: ignore[misc]
        """Gradio's App with the guard in front of everything."""

        guard_config = config

        def build_middleware_stack(self) -> Any:
            return Guard(super().build_middleware_stack(), self.guard_config)

        def openapi(self) -> dict[str, Any]:
            if not self.openapi_schema:
                self.openapi_schema = get_openapi(title="paperchat API", version=self.version, routes=ours,
                                                  description="REST routes for scripts (/api) and the "
                                                              "OpenAI-compatible chat endpoint (/v1).")
                schemas = self.openapi_schema.setdefault("components", {}).setdefault("schemas", {})
                for router in routers:  # models a route documents by hand (openapi_extra) and refers to
                    schemas.update(getattr(router, "schemas", {}))
            return self.openapi_schema

    routers = list(routers)
    ours = [route for router in routers for route in router.routes]
    app = GuardedApp(default_response_class=ORJSONResponse, docs_url="/api/docs", openapi_url="/api/openapi.json",
                     swagger_ui_oauth2_redirect_url="/api/docs/oauth2-redirect")
    for router in routers:
        app.include_router(router)
    return app
