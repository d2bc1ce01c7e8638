"""The hardened chat in a real browser (Debian Chromium through Playwright): a foreign page cannot frame it, and
under its Content-Security-Policy the app still loads, logs in and answers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import CHROMIUM, serve_app

from rag.proc import free_port
from rag.answer import Pipeline

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"),
]
SEESAW_Q = "By how much does Seesaw beat vLLM?"


@contextmanager
def serve(pipeline: Pipeline, auth: str | None = None) -> Iterator[str]:
    with serve_app(pipeline, auth=auth) as base:
        yield base + "/"


@contextmanager
def static_site(folder: Path) -> Iterator[str]:
    """A plain web server for `folder` on another origin (localhost, its own port)."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    pg.console_errors = []  # type: ignore[attr-defined]
    pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))
    yield pg
    ctx.close()


def test_foreign_page_cannot_frame_the_app(page: Any, pipeline: Pipeline, tmp_path: Path) -> None:
    with serve(pipeline) as app_url:
        (tmp_path / "index.html").write_text(f'<h1>evil</h1><iframe id="f" src="{app_url}" width=900 height=700>'
                                             "</iframe>", encoding="utf-8")
        with static_site(tmp_path) as evil:
            page.goto(evil)
            page.wait_for_timeout(4000)  # time for the app to render, were it allowed to
            frames = [f for f in page.frames if f != page.main_frame]
            rendered = [f for f in frames if f.query_selector("#pc-question") is not None]
            urls = [f.url for f in frames]
    assert frames and not rendered, urls
    assert any("frame-ancestors" in e or "X-Frame-Options" in e or "Refused to" in e
               for e in page.console_errors), page.console_errors


def test_app_logs_in_and_answers_under_its_csp(page: Any, pipeline: Pipeline) -> None:
    with serve(pipeline, auth="alice:s3cret") as url:
        page.goto(url)
        page.get_by_label("User name").fill("alice")
        page.get_by_label("Password").fill("wrong")
        page.keyboard.press("Enter")
        page.get_by_text("Wrong user name or password").wait_for(state="visible")
        page.get_by_label("Password").fill("s3cret")  # the user name stays after a failure
        page.keyboard.press("Enter")
        page.wait_for_selector("#pc-question textarea")
        page.fill("#pc-question textarea", SEESAW_Q)
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelector('#pc-chat').innerText.includes('1.78')")
        page.locator('#pc-chat a[href^="#src-"]').first.wait_for(state="visible")
    violations = [e for e in page.console_errors if "Content Security Policy" in e or "Refused to" in e]
    assert violations == [], violations


def test_no_gradio_settings_panel_from_the_page(page: Any, pipeline: Pipeline) -> None:
    """Gradio's settings/developer panel (theme, language, screen recorder) is not offered: no footer link, its
    `?view=settings` query opens nothing, and the recorder's server route is refused."""
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url))
    with serve(pipeline) as url:
        page.goto(f"{url}?view=settings")
        page.wait_for_selector("#pc-question textarea")
        page.locator("footer").get_by_text("Use via API").hover()  # what preloads the API page's own panels
        page.wait_for_timeout(1500)
        links = page.locator("footer a:visible, footer button:visible").all_inner_texts()
        assert links == ["Use via API"], links
        assert page.locator(".api-docs-wrap").count() == 0  # no side panel open
        assert not [u for u in fetched if "/Settings-" in u], "Gradio's settings panel was loaded"
        refused = page.request.post(url + "gradio_api/process_recording", multipart={"video": {
            "name": "a.webm", "mimeType": "video/webm", "buffer": b"x"}})
        assert refused.status == 404
