"""Time each outside interface against the Python API on the same questions (issue 12: p50 of 20 questions).

    RAG_DATA_DIR=<an index> python tools/interface_latency.py [--n 20]

Per question, one answer (extractive) through: the Python API (Pipeline.answer, in process); REST POST /api/ask and
the OpenAI SDK's chat.completions (plain and streamed) against the chat app served in this process; the MCP `ask`
tool through the mcp SDK client, over stdio to a `python -m rag mcp` subprocess. Every path answers every question
once first (warm caches), then the timed rounds run interleaved. Reported: p50 and p95 per interface and the p50
added over the Python API.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import openai
from mcp import Client, StdioServerParameters

from rag.answer import Pipeline
from rag.eval.questions import load_questions
from rag.settings import QUESTIONS_PATH, Settings

ROOT = Path(__file__).resolve().parent.parent


def serve(pipeline: Pipeline) -> tuple[str, Callable[[], None]]:
    """The chat app on a free port; its URL and how to stop it."""
    import socket

    from ui.app import build_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_app(pipeline, pipeline.settings)
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    return f"http://127.0.0.1:{port}", demo.close


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    args = parser.parse_args()
    questions = [q.question for q in load_questions(QUESTIONS_PATH) if not q.history][: args.n]
    settings = Settings(answerer="extractive")
    pipeline = Pipeline(settings)
    url, stop = serve(pipeline)
    http = httpx.Client(base_url=url, timeout=120)
    sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    times: dict[str, list[float]] = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAG_DATA_DIR": str(settings.data_dir)}
    server = StdioServerParameters(command=sys.executable, args=["-m", "rag", "mcp"], cwd=str(ROOT), env=env)

    async def run_all() -> None:
        async with Client(server, read_timeout_seconds=120) as mcp:
            def stream(q: str) -> None:
                for _ in sdk.chat.completions.create(model="paperchat", stream=True,
                                                     messages=[{"role": "user", "content": q}]):
                    pass

            paths: dict[str, Callable[[str], object]] = {
                "Python API": lambda q: pipeline.answer(q),
                "REST /api/ask": lambda q: http.post("/api/ask", json={"question": q}).raise_for_status(),
                "OpenAI SDK": lambda q: sdk.chat.completions.create(
                    model="paperchat", messages=[{"role": "user", "content": q}]),
                "OpenAI SDK, streamed": stream,
            }
            for rnd in ("warm", "timed"):
                for q in questions:
                    for name, fn in paths.items():
                        ms = await anyio.to_thread.run_sync(timed, lambda fn=fn, q=q: fn(q))
                        if rnd == "timed":
                            times.setdefault(name, []).append(ms)
                    t0 = time.perf_counter()
                    result = await mcp.call_tool("ask", {"question": q})
                    assert not result.is_error, result.content
                    if rnd == "timed":
                        times.setdefault("MCP stdio (ask tool)", []).append((time.perf_counter() - t0) * 1000)

    try:
        anyio.run(run_all)
    finally:
        with contextlib.suppress(Exception):
            stop()
    base = statistics.median(times["Python API"])
    print(f"| interface | p50 | p95 | added p50 over the Python API |  ({len(questions)} questions, extractive)")
    print("|---|---|---|---|")
    for name, values in times.items():
        p50, p95 = statistics.median(values), statistics.quantiles(values, n=20)[-1]
        added = "—" if name == "Python API" else f"{p50 - base:+.1f} ms"
        print(f"| {name} | {p50:.1f} ms | {p95:.1f} ms | {added} |")


if __name__ == "__main__":
    main()
