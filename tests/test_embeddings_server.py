"""RAG_EMBEDDINGS=openai:<model> against a real OpenAI-compatible embeddings server: llama-cpp-python's, serving
SmolLM2-135M with --embedding. It sends one vector per token (the client mean-pools them) and, in that mode, wrong
vectors for every input after a request's first, so the client sends it one text per request; batching itself is
checked against the scripted endpoint of tests/fault_server.py.

A counting proxy between client and llama.cpp records every /v1/embeddings request (inputs, start, end), so the
tests see the requests in flight at once.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from chromadb.api.client import SharedSystemClient
from llm_fixtures import dead_llm_url, embedding_server  # noqa: F401

from rag.answer import Pipeline
from rag.corpus import load_corpus
from rag.embeddings import EmbeddingError, OpenAIEmbeddingsAdapter
from rag.ingest import ingest_paths
from rag.llm.local import LocalServer
from rag.settings import CORPUS_PATH, Settings
from rag.store import open_store

pytestmark = pytest.mark.slow
CORPUS = {p.id: p for p in load_corpus(CORPUS_PATH)}
SEESAW_Q = "How much faster is Seesaw than vLLM?"


@dataclass
class Proxy:
    """Forwards POSTs to upstream, recording (inputs, start, end) of each; `.url` is its base URL."""

    upstream: str
    calls: list[tuple[int, float, float]] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def do_POST(self) -> None:
                start = time.monotonic()
                body = self.rfile.read(int(self.headers["content-length"]))
                reply = httpx.post(owner.upstream + self.path.removeprefix("/v1"), content=body, timeout=120,
                                   headers={"content-type": "application/json"})
                owner.calls.append((len(json.loads(body)["input"]), start, time.monotonic()))
                self.send_response(reply.status_code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def most_in_flight(self) -> int:
        """The most requests the server was working on at one moment."""
        events = sorted([(s, 1) for _, s, _ in self.calls] + [(e, -1) for _, _, e in self.calls])
        now = most = 0
        for _, step in events:
            now += step
            most = max(most, now)
        return most

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def proxy(embedding_server: LocalServer) -> Iterator[Proxy]:  # noqa: F811 - the fixture imported above
    p = Proxy(embedding_server.base_url)
    yield p
    p.stop()


def server_settings(url: str, tmp_path: Path, **kw: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", embeddings="openai:smollm2", embeddings_base_url=url, **kw)


def write_jsonl(path: Path, *ids: str) -> Path:
    path.write_text("".join(json.dumps(CORPUS[i].model_dump(include={"id", "title", "aliases", "abstract"})) + "\n"
                            for i in ids), encoding="utf-8")
    return path


def run_cli(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def stored(settings: Settings) -> tuple[set[str], int, set[str]]:
    """Chunk ids, sentence vectors and paper ids in the index."""
    try:
        store = open_store(settings)
        return set(store.chunks.get(include=[])["ids"]), store.sentences.count(), {p.id for p in store.list_papers()}
    finally:
        SharedSystemClient.clear_system_cache()


def test_requests_are_batched_in_order(fault_llm: Any, tmp_path: Path) -> None:
    """ceil(n / batch) requests of up to batch texts each, every vector in its text's place."""
    from fault_server import embedding_of

    texts = [f"text number {i}" for i in range(22)]
    emb = OpenAIEmbeddingsAdapter("m", server_settings(fault_llm.url, tmp_path, embeddings_batch=4,
                                                       embeddings_concurrency=3))
    got = emb.encode(texts)
    sent = sorted((r.body["input"] for r in fault_llm.requests), key=lambda batch: texts.index(batch[0]))
    assert sent == [texts[s : s + 4] for s in range(0, 22, 4)] and len(sent) == math.ceil(22 / 4)
    want = np.array([embedding_of(t) for t in texts])
    np.testing.assert_allclose(got, want / np.linalg.norm(want, axis=1, keepdims=True), rtol=1e-5)


def test_llama_cpp_token_vectors_are_pooled_one_text_a_request_concurrently(proxy: Proxy, tmp_path: Path) -> None:
    """llama-cpp-python on a chat GGUF sends one vector per token and garbles every input after a request's first:
    after the first reply shows it, each text goes alone, `concurrency` requests in flight."""
    texts = [p.title for p in CORPUS.values()] + ["pipeline parallelism"]
    settings = server_settings(proxy.url, tmp_path, embeddings_batch=4, embeddings_concurrency=3)
    emb = OpenAIEmbeddingsAdapter("smollm2", settings)
    got = emb.encode(texts)
    assert got.shape == (22, 576) and emb.dim == 576  # SmolLM2-135M's hidden size, learnt from the reply
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    alone = OpenAIEmbeddingsAdapter("smollm2", settings.model_copy(update={"embeddings_batch": 1}))
    np.testing.assert_allclose(got[[0, 9, 21]], alone.encode([texts[0], texts[9], texts[21]]), atol=1e-4)

    proxy.calls.clear()
    emb.encode(texts[:9])
    assert [n for n, _, _ in proxy.calls] == [1] * 9
    assert proxy.most_in_flight() > 1  # llama.cpp works on one at a time, but they were sent together


def test_ingest_and_answer_through_the_server(proxy: Proxy, tmp_path: Path) -> None:
    settings = server_settings(proxy.url, tmp_path, embeddings_batch=16, embeddings_concurrency=2)
    report = ingest_paths([write_jsonl(tmp_path / "five.jsonl", "seesaw", "2bp", "datarus-r1", "gshard", "moeshard")],
                          settings)
    assert report.papers == 5 and report.added > 0 and report.sentences > 0
    assert proxy.most_in_flight() == 2
    answer = Pipeline(settings).answer(SEESAW_Q)
    assert answer.paper_ids[0] == "seesaw" and "1.78" in answer.answer


def test_a_dead_server_or_another_dimension_is_one_line_and_loses_nothing(
        embedding_server: LocalServer, dead_llm_url: str, fault_llm: Any, tmp_path: Path) -> None:  # noqa: F811
    env = {"RAG_DATA_DIR": str(tmp_path / "data"), "RAG_EMBEDDINGS": "openai:smollm2", "RAG_LLM_MAX_RETRIES": "0"}
    first = run_cli("ingest", write_jsonl(tmp_path / "one.jsonl", "seesaw"),
                    env={**env, "RAG_EMBEDDINGS_BASE_URL": embedding_server.base_url})
    assert first.returncode == 0, first.stderr
    settings = server_settings(embedding_server.base_url, tmp_path)
    before = stored(settings)
    more = write_jsonl(tmp_path / "more.jsonl", "2bp")

    dead = run_cli("ingest", more, env={**env, "RAG_EMBEDDINGS_BASE_URL": dead_llm_url})
    assert dead.returncode == 1 and dead.stderr.strip().splitlines() == [
        f"Error: The embeddings server at {dead_llm_url} is unreachable (connection refused)."], dead.stderr

    # the fault server answers 8-dimensional vectors under the same model name: refused before anything is written
    other = run_cli("ingest", more, env={**env, "RAG_EMBEDDINGS_BASE_URL": fault_llm.url})
    lines = other.stderr.strip().splitlines()
    assert other.returncode == 1 and len(lines) == 1, other.stderr
    assert lines[0].startswith(f"Error: the embeddings server at {fault_llm.url} returned vectors of dimension 8 ")
    assert "but 576 was expected" in lines[0]
    assert stored(settings) == before and before[0] and before[1] and before[2] == {"seesaw"}


def test_a_reply_of_another_dimension_mid_run_is_refused(fault_llm: Any, tmp_path: Path) -> None:
    emb = OpenAIEmbeddingsAdapter("smollm2", server_settings(fault_llm.url, tmp_path))
    emb.dim = 576  # what the index it serves was built with
    with pytest.raises(EmbeddingError, match="dimension 8 .* but 576 was expected"):
        emb.encode(["pipeline parallelism"])
