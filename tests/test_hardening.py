"""Web hardening of the chat server over HTTP (httpx, gradio_client): security headers, CORS, body and history
limits, every route behind the login, login back-off, one concurrency pool, throttled rendering, fresh pickers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from conftest import drain, serve_app

from rag.proc import free_port
from rag.answer import Pipeline, QuestionError
from rag.settings import Settings
from ui.app import ANSWERING, ChatHandlers, build_app

pytestmark = pytest.mark.slow
PARTNER = "https://partner.example"
FOREIGN = ["http://localhost:9999", "http://127.0.0.1:1", "https://evil.example", "null"]
USER, PASSWORD = "alice", "s3cret"


def serve(pipeline: Pipeline, settings: Settings, auth: str | None = None) -> Iterator[str]:
    with serve_app(pipeline, settings, auth) as base:
        yield base


@pytest.fixture(scope="module")
def url(pipeline: Pipeline) -> Iterator[str]:
    """The app without a login, one partner origin allowed."""
    yield from serve(pipeline, pipeline.settings.model_copy(update={"cors_origins": PARTNER}))


@pytest.fixture(scope="module")
def auth_url(pipeline: Pipeline) -> Iterator[str]:
    """The app with a login."""
    yield from serve(pipeline, pipeline.settings, auth=f"{USER}:{PASSWORD}")


def _login(base: str, password: str, client: httpx.Client | None = None) -> httpx.Response:
    return (client or httpx).post(f"{base}/login", data={"username": USER, "password": password}, timeout=10)


# -- headers and CORS -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/"), ("GET", "/config"), ("GET", "/gradio_api/info"), ("GET", "/no/such/page"),
    ("POST", "/gradio_api/queue/join"), ("GET", "/theme.css"),
])
def test_security_headers_on_every_response(url: str, method: str, path: str) -> None:
    response = httpx.request(method, url + path, timeout=10, json={} if method == "POST" else None)
    headers = response.headers
    assert "frame-ancestors 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "SAMEORIGIN"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] in {"no-referrer", "strict-origin-when-cross-origin"}


@pytest.mark.parametrize("origin", FOREIGN)
def test_cors_not_reflected_for_other_origins(url: str, origin: str) -> None:
    simple = httpx.get(f"{url}/config", headers={"Origin": origin}, timeout=10)
    preflight = httpx.options(f"{url}/gradio_api/queue/join", timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    for response in (simple, preflight):
        assert "access-control-allow-origin" not in response.headers, dict(response.headers)
        assert "access-control-allow-credentials" not in response.headers


def test_cors_for_a_configured_origin(url: str) -> None:
    preflight = httpx.options(f"{url}/gradio_api/queue/join", timeout=10, headers={
        "Origin": PARTNER, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == PARTNER
    simple = httpx.get(f"{url}/config", headers={"Origin": PARTNER}, timeout=10)
    assert simple.headers["access-control-allow-origin"] == PARTNER


# -- request size ----------------------------------------------------------------------------------------------
def test_oversized_body_is_refused_and_the_server_keeps_serving(url: str, pipeline: Pipeline) -> None:
    limit = pipeline.settings.max_body_bytes
    payload = json.dumps({"data": ["What is 2BP?", [{"role": "user", "content": "x" * (2 * limit)}]]}).encode()
    sized = httpx.post(f"{url}/gradio_api/call/ask", content=payload, timeout=30,
                       headers={"content-type": "application/json"})
    chunked = httpx.post(f"{url}/gradio_api/call/ask", timeout=30, headers={"content-type": "application/json"},
                         content=(payload[i:i + 65536] for i in range(0, len(payload), 65536)))
    for response in (sized, chunked):
        assert response.status_code == 413, (response.status_code, response.text[:200])
        assert "too large" in response.json()["detail"]
    assert httpx.get(f"{url}/config", timeout=10).status_code == 200
    assert Client(url + "/", verbose=False).predict("What is 2BP?", api_name="/ask")["answer"]


@pytest.mark.parametrize(("history", "message"), [
    ([{"role": "user", "content": "hi"}] * 21, "at most 20"),
    ([{"role": "user", "content": "x" * 9000}], "at most 8,000"),
    ([{"role": "user", "content": "x" * 7000}] * 6, "in all; at most 40,000"),
])
def test_history_caps(url: str, history: list[dict[str, str]], message: str) -> None:
    client = Client(url + "/", verbose=False)
    with pytest.raises(AppError, match=message):
        client.predict("What is 2BP?", history=history, api_name="/ask")


# -- login ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/gradio_api/cancel", {"session_hash": "x", "fn_index": 0, "event_id": "y"}),
    ("POST", "/gradio_api/reset", {"event_id": "y"}),
    ("GET", "/gradio_api/heartbeat/x", None),
    ("POST", "/gradio_api/queue/join", {}),
    ("GET", "/gradio_api/queue/data?session_hash=x", None),
    ("POST", "/gradio_api/call/ask", {"data": ["What is 2BP?"]}),
    ("POST", "/gradio_api/call/papers", {"data": []}),
    ("GET", "/gradio_api/info", None),
    ("GET", "/config", None),
])
def test_every_route_needs_the_login(auth_url: str, method: str, path: str, body: Any) -> None:
    response = httpx.request(method, auth_url + path, json=body, timeout=10)
    assert response.status_code == 401, (path, response.status_code, response.text[:200])
    with httpx.Client() as client:
        assert _login(auth_url, PASSWORD, client).status_code == 200
        with client.stream(method, auth_url + path, json=body, timeout=10) as logged_in:  # heartbeat never ends
            assert logged_in.status_code != 401


def test_login_page_still_public(auth_url: str) -> None:
    page = httpx.get(auth_url + "/", timeout=10)  # the chat's page without a session: sent to paperchat's login
    assert page.status_code == 303 and page.headers["location"] == "login"
    assert page.headers["content-security-policy"]  # the guard's headers on the redirect too
    login = httpx.get(auth_url + "/", timeout=10, follow_redirects=True)
    assert login.status_code == 200 and "<title>Log in · paperchat</title>" in login.text


def test_wrong_passwords_back_off_and_the_right_one_still_works(auth_url: str) -> None:
    started = time.monotonic()
    codes = [_login(auth_url, "wrong").status_code for _ in range(40)]
    elapsed = time.monotonic() - started
    assert codes[:5] == [400] * 5, codes
    assert codes.count(429) >= 30 and codes.count(400) <= 7, (codes, elapsed)
    refused = _login(auth_url, PASSWORD)
    if refused.status_code == 429:  # still locked: the right password waits like any other
        time.sleep(int(refused.headers["retry-after"]) + 0.2)
    assert _login(auth_url, PASSWORD).status_code == 200
    assert _login(auth_url, "wrong").status_code == 400  # a success forgets the failures


def test_gradio_client_logs_in(auth_url: str) -> None:
    assert Client(auth_url + "/", auth=(USER, PASSWORD), verbose=False).predict(api_name="/papers")


# -- the app's own limits -----------------------------------------------------------------------------------------
def test_every_answering_event_shares_one_concurrency_pool(pipeline: Pipeline) -> None:
    """One Gradio group for every answering event, as many in progress as the queue holds: the answer slots inside
    (rag.serve.slots) limit what is computed, extractive and LLM answers apart."""
    settings = pipeline.settings.model_copy(update={"concurrency": 3, "queue_size": 9})
    demo = build_app(pipeline, settings)
    fns = list(demo.fns.values()) if isinstance(demo.fns, dict) else list(demo.fns)
    names = {getattr(f.fn, "__name__", ""): f for f in fns}
    answering = [f for f in fns if getattr(f.fn, "__name__", "") in {"respond", "compare", "ask"}]
    assert len(answering) >= 6, sorted(names)  # Enter, Ask, example, suggestion, compare, /ask
    assert {f.concurrency_id for f in answering} == {ANSWERING}
    assert {f.concurrency_limit for f in answering} == {9}


class _Flood:
    """A pipeline stand-in whose answer streams 500 KB in 100-character pieces."""

    settings = Settings()

    def papers(self) -> list[Any]:
        return []

    def stream(self, question: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        yield "sources", []
        for _ in range(5_000):
            yield "text", "word " * 20


def test_streaming_render_is_throttled() -> None:
    handlers = ChatHandlers(_Flood(), Settings())  # type: ignore[arg-type]
    started = time.monotonic()
    renders = drain(handlers.respond("What is 2BP?", [], [], "extractive", 6, None))
    assert len(renders) < 300, "re-rendered per fragment"
    assert time.monotonic() - started < 20


def test_pickers_refresh_on_page_load(tmp_path: Path) -> None:
    pipe = Pipeline(Settings(data_dir=tmp_path / "data"))
    first = tmp_path / "first.md"
    first.write_text("# Alpha: A First Paper\n\nAlpha is a system that schedules GPU jobs by their memory use.\n")
    pipe.ingest([first])
    demo = build_app(pipe, pipe.settings)
    fns = list(demo.fns.values()) if isinstance(demo.fns, dict) else list(demo.fns)
    loads = [f for f in fns if any(t[1] == "load" for t in f.targets) and f.name == "page_load"]
    assert len(loads) == 1, "one page-load event for the chat (one queue round trip), not several"
    second = tmp_path / "second.md"
    second.write_text("# Beta: A Second Paper\n\nBeta is a system that compresses model checkpoints on disk.\n")
    pipe.ingest([second])
    scope, pick, head, landing, papers = loads[0].fn(None)[-5:]
    assert {c[1] for c in scope.choices} == {c[1] for c in pick.choices} == {"alpha", "beta"}
    assert "Beta" in landing
    assert "2 research papers" in head and "Beta" in papers


class _Slow:
    """A pipeline stand-in whose answers take `seconds`; it records when each one started."""

    settings = Settings()

    def __init__(self, seconds: float) -> None:
        self.seconds, self.started = seconds, {}

    def papers(self) -> list[Any]:
        return []

    def stream(self, question: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        self.started[question] = time.monotonic()
        time.sleep(self.seconds)
        raise RuntimeError("slow answer done")
        yield  # pragma: no cover

    def answer(self, question: str, **kwargs: Any) -> Any:
        self.started[question] = time.monotonic()
        raise QuestionError("fast")


def test_slow_answers_on_one_event_hold_the_slots_of_every_event() -> None:
    """RAG_CONCURRENCY=2: two slow answers on the Enter event make an /ask call wait for a slot, then run."""
    slow = _Slow(3.0)
    settings = Settings(concurrency=2)
    demo = build_app(slow, settings)  # type: ignore[arg-type]
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        enter = next(i for i, d in enumerate(client.config["dependencies"])
                     if any(t[1] == "submit" for t in d.get("targets", [])))
        client.endpoints[enter].is_valid = True  # the page's own event: private to scripts, not to the queue
        t0 = time.monotonic()
        jobs = [client.submit(f"slow question {i}?", [], "extractive", 6, [], fn_index=enter) for i in range(2)]
        time.sleep(0.8)
        asked = client.submit("fast question?", api_name="/ask")
        with pytest.raises(AppError, match="fast"):
            asked.result(timeout=60)
        for job in jobs:
            job.result(timeout=60)
    finally:
        demo.close()
    assert {"slow question 0?", "slow question 1?", "fast question?"} <= set(slow.started)
    waited = slow.started["fast question?"] - t0
    assert waited >= 2.5, f"/ask started after {waited:.1f} s, beside two running answers"
