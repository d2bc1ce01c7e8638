"""Shared fixtures: every path setting points at tmp dirs; one real index (MiniLM + Chroma) per session."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rag.answer import Pipeline
from rag.proc import free_port, stop_process, wait_http
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# The rules alone and SmolLM2 unless a test asks for the reading model (tests/test_reader.py): the 1.5B model reads
# for seconds per question, and the mechanics tests are about the rest of the answer path. Set for the whole process
# too, so session- and module-scoped pipelines (made before any test's environment) see it.
TEST_ENV = {"RAG_READER": "off", "RAG_LOCAL_MODEL": "smollm2-135m"}
os.environ.update(TEST_ENV)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the user's index, keys or endpoints."""
    for key in list(os.environ):
        if key.startswith("RAG_") or key == "OPENAI_API_KEY":
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for key, value in TEST_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding the real index of the bundled corpus, built once per test session."""
    path = tmp_path_factory.mktemp("index")
    Pipeline(Settings(data_dir=path)).papers()
    return path


@pytest.fixture(scope="session")
def pipeline(index_dir: Path) -> Pipeline:
    """The real pipeline (extractive default) over the session index."""
    return Pipeline(Settings(data_dir=index_dir))


@contextmanager
def server_process(cmd: list[str], url: str, log_path: Path, timeout: float = 60.0,
                   **popen: Any) -> Iterator[subprocess.Popen]:
    """A server subprocess (output to log_path) once url answers; terminated (then killed) afterwards."""
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, **popen)
    try:
        wait_http(url, timeout=timeout, proc=proc)
        yield proc
    finally:
        stop_process(proc, 10)
        log.close()


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `chroma run` server on a free port; yields its URL."""
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    chroma = Path(sys.executable).with_name("chroma")
    with server_process([str(chroma), "run", "--path", str(path / "db"), "--host", "127.0.0.1", "--port", str(port)],
                        f"http://127.0.0.1:{port}/api/v2/heartbeat", path / "server.log"):
        yield f"http://127.0.0.1:{port}"


def pipeline_on_server(url: str, collection: str, data_dir: Path) -> Pipeline:
    """The real pipeline over a collection of a Chroma server, its index built from the bundled corpus."""
    pipe = Pipeline(Settings(chroma_url=url, collection=collection, data_dir=data_dir))
    pipe.papers()
    return pipe


@pytest.fixture
def fault_llm() -> Iterator["FaultServer"]:  # noqa: F821 - imported lazily
    """A scripted, misbehaving OpenAI-compatible endpoint (tests/fault_server.py); `.url` is its base URL."""
    from fault_server import FaultServer

    with FaultServer() as server:
        yield server


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def until(ok: Callable[[], object], seconds: float) -> bool:
    """Poll ok() until it holds (True) or seconds pass (False)."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if ok():
            return True
        time.sleep(0.05)
    return bool(ok())


def drain(handler: AsyncIterator[tuple]) -> list[tuple]:
    """Every update an async-generator event handler yields, run to its end as Gradio runs it; the heartbeats (an
    update that changes nothing, sent while an answer is quiet) left out."""
    import asyncio

    import gradio as gr

    async def drain() -> list[tuple]:
        return [u async for u in handler if not all(part == gr.skip() for part in u)]

    return asyncio.run(drain())


@contextmanager
def serve_app(pipeline: Pipeline, settings: Settings | None = None, auth: str | None = None) -> Iterator[str]:
    """The chat app over a pipeline on a free local port; yields its base URL (no trailing slash)."""
    from ui.api import parse_auth
    from ui.app import build_app

    demo = build_app(pipeline, settings or pipeline.settings)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                auth=parse_auth(auth))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (Playwright cannot download a browser here)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
