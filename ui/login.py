"""paperchat's own login page, and the way to it: Gradio's page named no app and cleared both fields after a wrong
password. Gradio's POST /login, the guard's back-off in front of it and Gradio's /logout stay as they are; only the page
changes, and a visit to the chat without a session is sent to it."""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from .guard import Guard

# Inline style and script: the guard's CSP allows both (Gradio's own page needs them); no outside request is made.
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · paperchat</title>
<style>
  body { margin: 0; font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'Liberation Sans', sans-serif;
    background: #f8fafc; color: #0f172a; display: flex; min-height: 100vh; align-items: center; justify-content: center; }
  main { width: min(380px, 92vw); background: white; border: 1px solid #e2e8f0; border-radius: 12px; padding: 28px 26px;
    box-shadow: 0 8px 30px rgba(15, 23, 42, 0.08); }
  h1 { font-size: 1.6rem; margin: 0; letter-spacing: -0.01em; }
  p.sub { color: #64748b; margin: 4px 0 20px 0; font-size: 0.95rem; }
  label { display: block; font-weight: 600; font-size: 0.9rem; margin: 12px 0 4px 0; }
  input { width: 100%; box-sizing: border-box; padding: 9px 11px; font-size: 1rem; border: 1px solid #cbd5e1;
    border-radius: 7px; }
  input:focus { outline: 2px solid #818cf8; border-color: #6366f1; }
  button { margin-top: 20px; width: 100%; padding: 10px; font-size: 1rem; font-weight: 600; color: white;
    background: #4f46e5; border: none; border-radius: 7px; cursor: pointer; }
  button:disabled { opacity: 0.6; cursor: wait; }
  #error { color: #b91c1c; font-size: 0.92rem; margin: 12px 0 0 0; min-height: 1.2em; }
</style></head>
<body><main>
  <h1>paperchat</h1>
  <p class="sub">Log in to ask about the papers.</p>
  <form id="login" novalidate>
    <label for="username">User name</label>
    <input id="username" name="username" autocomplete="username" required autofocus>
    <label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required>
    <p id="error" role="alert"></p>
    <button type="submit" id="go">Log in</button>
  </form>
</main>
<script>
  const form = document.getElementById('login'), error = document.getElementById('error');
  const user = document.getElementById('username'), pass = document.getElementById('password');
  const go = document.getElementById('go');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    go.disabled = true;
    try {
      const answer = await fetch('login', {method: 'POST', body: new FormData(form), credentials: 'same-origin'});
      if (answer.ok) { location.replace('./'); return; }
      let detail = '';
      try { detail = (await answer.json()).detail; } catch (e) { detail = ''; }
      // the user name stays: only the password is typed again
      error.textContent = answer.status === 429 && typeof detail === 'string' ? detail
        : 'Wrong user name or password.';
      pass.value = '';
      pass.focus();
    } catch (e) {
      error.textContent = 'The server cannot be reached. Try again in a moment.';
    } finally {
      go.disabled = false;
    }
  });
</script>
</body></html>
"""


LOGIN_HINT = "Log in to ask about the papers."
KEY_HINT = "Log in with any user name and an API key (RAG_API_KEYS) as the password."


def login_router(hint: str = LOGIN_HINT) -> APIRouter:
    """GET /login: the page (the guard leaves /login public), with the line under its title saying what to type."""
    router = APIRouter()
    page = PAGE.replace(LOGIN_HINT, html.escape(hint))

    @router.get("/login", include_in_schema=False)
    async def login_page() -> HTMLResponse:
        return HTMLResponse(page)

    return router


class LoginRedirect:
    """ASGI middleware: the chat's page without a session answers with a redirect to the login page (it sits inside the
    guard, so the guard's headers are on the redirect too). Everything else passes through."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD") and scope.get("path") == "/":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            if not Guard._logged_in(scope, headers):  # the guard's own test of Gradio's session cookie
                await send({"type": "http.response.start", "status": 303,
                            "headers": [(b"location", b"login"), (b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)
