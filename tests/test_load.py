"""Load: 32 concurrent chat sessions through gradio_client against the running app (extractive answerer)."""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client

from rag.proc import free_port
from rag.answer import Pipeline
from rag.settings import Settings
from ui.app import build_app

pytestmark = pytest.mark.slow
SESSIONS = 32
QUESTIONS = [("By how much does Seesaw beat vLLM?", "1.78x", "seesaw"), ("What is 2BP?", "2BP", "2bp"),
             ("What is GShard?", "GShard", "gshard"), ("What does MergeLock do?", "MergeLock", "mergelock")]


def test_concurrent_sessions_all_answered(index_dir: Path, tmp_path: Path) -> None:
    settings = Settings(data_dir=index_dir, queue_size=SESSIONS * 2, concurrency=4)
    demo = build_app(Pipeline(settings), settings)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    url = f"http://127.0.0.1:{port}/"

    def session(i: int) -> tuple[float, str, dict]:
        question, _, _ = QUESTIONS[i % len(QUESTIONS)]
        client = Client(url, verbose=False, httpx_kwargs={"timeout": 120})  # one client per session, like users
        t0 = time.perf_counter()
        answer = client.predict(question, None, "extractive", None, None, False, api_name="/ask")
        return time.perf_counter() - t0, question, answer

    try:
        with ThreadPoolExecutor(max_workers=SESSIONS) as pool:
            results = list(pool.map(session, range(SESSIONS)))
    finally:
        demo.close()
    latencies = sorted(r[0] for r in results)
    p50, p95 = statistics.median(latencies), latencies[int(0.95 * (len(latencies) - 1))]
    report = {"sessions": SESSIONS, "errors": 0, "p50_s": round(p50, 3), "p95_s": round(p95, 3)}
    (tmp_path / "load.json").write_text(json.dumps(report))
    print(f"\nload: {report}")
    assert len(results) == SESSIONS  # nothing lost: every session got its own answer back
    for _, question, answer in results:
        _, fact, pid = next(q for q in QUESTIONS if q[0] == question)
        assert answer["question"] == question and fact in answer["answer"], (question, answer["answer"][:200])
        assert pid in {s["paper_id"] for s in answer["sources"]}
