"""A running app sees what other writers add: the generation stamp, on a shared Chroma server and embedded.

Issue 18 finding 1: after an ingest from another process, a running app's questions about the new paper (and some
ordinary ones) failed with KeyError on a chunk id its in-memory view did not know, and the paper list never changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from rag.corpus import load_corpus
from rag.ingest import ingest_paths
from rag.retrieve import Index, make_retriever
from rag.settings import CORPUS_PATH, QUESTIONS_PATH, Settings
from rag.store import open_store

HERE = Path(__file__).resolve().parent
QUESTIONS = [json.loads(line)["question"] for line in QUESTIONS_PATH.read_text().splitlines() if line.strip()]
CORPUS = load_corpus(CORPUS_PATH)
ZEBRAFOLD = {"id": "zebrafold", "title": "ZebraFold: Pipeline-Parallel Protein Folding on Commodity GPUs",
             "aliases": ["ZebraFold"],
             "abstract": "We present ZebraFold, a pipeline-parallel system for training protein folding models on "
                         "commodity GPUs. ZebraFold splits the structure module across devices and overlaps its "
                         "communication with computation, reaching a 2.7x training speedup over a data-parallel "
                         "baseline on 64 GPUs while keeping accuracy unchanged. We also shard model state and "
                         "schedule micro-batches to keep every GPU busy during training and inference."}
ZEBRA_Q = "How much faster does ZebraFold train protein folding models?"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def corpus_rows(n: int | None = None) -> list[dict]:
    return [p.model_dump(include={"id", "title", "aliases", "abstract"}) for p in CORPUS[:n]]


class App:
    """tests/live_app.py as a long-lived subprocess: one JSON command in, one JSON reply out."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HERE / "live_app.py")], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.read().get("ready"), "the app did not start"

    def read(self) -> dict:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the app died: {self.proc.stderr.read()}")  # type: ignore[union-attr]
        return json.loads(line)

    def call(self, op: str, q: str = "") -> dict:
        self.proc.stdin.write(json.dumps({"op": op, "q": q}) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("quit")
            except (RuntimeError, BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


def app_env(**rag: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update({f"RAG_{k.upper()}": v for k, v in rag.items()})
    return env


def wait_for_paper(app: App, pid: str, timeout: float = 30) -> list[str]:
    """The app's paper list once it contains pid (the view is re-checked at most once a second)."""
    deadline = time.monotonic() + timeout
    while True:
        got = app.call("papers")
        assert got["ok"], got
        if pid in got["papers"] or time.monotonic() > deadline:
            return got["papers"]
        time.sleep(0.3)


def assert_running_app_follows(app: App) -> None:
    """After the ingest: the app lists and finds the new paper, and 75 ordinary searches raise nothing."""
    assert "zebrafold" in wait_for_paper(app, "zebrafold"), "the running app never saw the new paper"
    found = app.call("search", ZEBRA_Q)
    assert found["ok"], found["error"]
    assert found["paper_ids"][0] == "zebrafold", found
    answer = app.call("ask", ZEBRA_Q)
    assert answer["ok"], answer["error"]
    assert "2.7x" in answer["answer"] and answer["paper_ids"][0] == "zebrafold", answer
    errors = [(q, r["error"]) for q in QUESTIONS if not (r := app.call("search", q))["ok"]]
    assert len(QUESTIONS) == 75 and not errors, errors[:3]


# -- a shared Chroma server, two running apps, an ingest from a third process -------------------------------------
@pytest.mark.slow
def test_running_apps_on_a_shared_server_see_another_process_ingest(chroma_server: str, tmp_path: Path) -> None:
    collection = f"live-{uuid.uuid4().hex[:8]}"
    settings = Settings(chroma_url=chroma_server, collection=collection, data_dir=tmp_path / "data")
    ingest_paths([], settings)  # the bundled corpus, built once before the apps start
    env = app_env(chroma_url=chroma_server, collection=collection, data_dir=str(tmp_path / "data"))
    apps = [App(env), App(env)]
    try:
        for app in apps:  # both answer before the ingest, so each holds a loaded view
            assert app.call("ask", "What is 2BP?")["paper_ids"][0] == "2bp"
            assert "zebrafold" not in app.call("papers")["papers"]
        new = write_jsonl(tmp_path / "zebrafold.jsonl", [ZEBRAFOLD])
        done = subprocess.run([sys.executable, "-m", "rag", "ingest", str(new)], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0 and "Indexed 1 paper(s)" in done.stdout, done.stderr
        for app in apps:
            assert_running_app_follows(app)
    finally:
        for app in apps:
            app.close()


# -- embedded: the running index in this process, an ingest through a second Settings/Index ---------------------
def test_embedded_index_follows_an_ingest_and_an_edit(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    ingest_paths([write_jsonl(tmp_path / "base.jsonl", corpus_rows(8))], settings)
    index = Index(open_store(settings), settings)
    retriever = make_retriever(index, settings)
    assert retriever.search("What is 2BP?")[0].metadata["paper_id"] == "2bp"
    before = index.view()

    ingest_paths([write_jsonl(tmp_path / "new.jsonl", [ZEBRAFOLD])], Settings(data_dir=tmp_path / "data"))
    time.sleep(settings.view_check_seconds + 0.05)  # the default check interval, not a test-only setting
    after = index.view()
    assert after is not before and "zebrafold" in [p.id for p in after.papers]
    assert retriever.search(ZEBRA_Q)[0].metadata["paper_id"] == "zebrafold"
    assert all(retriever.search(q) is not None for q in QUESTIONS)

    # An edit that keeps the number of chunks (the old view keyed on the count, so it never saw this).
    edited = {**ZEBRAFOLD, "abstract": ZEBRAFOLD["abstract"].replace("2.7x", "3.1x")}
    ingest_paths([write_jsonl(tmp_path / "new.jsonl", [edited])], Settings(data_dir=tmp_path / "data"))  # its file
    time.sleep(settings.view_check_seconds + 0.05)
    view = index.view()
    assert view.count == after.count
    texts = [view.row(i)[0] for i in range(view.count)]
    assert any("3.1x" in t for t in texts) and not any("2.7x" in t for t in texts)


def test_embedded_index_survives_a_reset_by_another_writer(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", view_check_seconds=0)
    ingest_paths([write_jsonl(tmp_path / "base.jsonl", corpus_rows(5))], settings)
    index = Index(open_store(settings), settings)
    retriever = make_retriever(index, settings)
    assert retriever.search("What is 2BP?")
    ingest_paths([write_jsonl(tmp_path / "new.jsonl", [ZEBRAFOLD])], Settings(data_dir=tmp_path / "data"),
                 reset=True)  # the collections are deleted and made again: new Chroma ids
    assert [p.id for p in index.view().papers] == ["zebrafold"]
    assert retriever.search(ZEBRA_Q)[0].metadata["paper_id"] == "zebrafold"


def test_a_dense_hit_the_view_does_not_know_is_read_not_raised(tmp_path: Path) -> None:
    """Between two generation checks, Chroma may return a chunk written after the view was loaded."""
    settings = Settings(data_dir=tmp_path / "data", view_check_seconds=3600)  # never re-checked on its own
    ingest_paths([write_jsonl(tmp_path / "base.jsonl", corpus_rows(5))], settings)
    index = Index(open_store(settings), settings)
    retriever = make_retriever(index, settings)
    assert "zebrafold" not in [p.id for p in index.view().papers]
    ingest_paths([write_jsonl(tmp_path / "new.jsonl", [ZEBRAFOLD])], Settings(data_dir=tmp_path / "data"))
    docs = retriever.search(ZEBRA_Q)  # the view is stale; the new chunk comes back from the dense search
    assert "zebrafold" in [d.metadata["paper_id"] for d in docs]
    assert all(d.page_content for d in docs)
    assert "zebrafold" in [p.id for p in index.view().papers]  # and the unknown id made the view re-check


def test_generation_check_is_cheap(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    ingest_paths([write_jsonl(tmp_path / "base.jsonl", corpus_rows(3))], settings)
    store = open_store(settings)
    stamp = store.generation()
    t = time.perf_counter()
    for _ in range(50):
        assert store.generation() == stamp
    per_check = (time.perf_counter() - t) / 50
    assert per_check < 0.02, f"{per_check * 1000:.1f} ms per generation check"


# -- embedded, across processes: a running app and 'paperchat ingest' in another terminal -----------------------
@pytest.mark.slow
def test_running_app_on_the_embedded_index_sees_another_process_ingest(tmp_path: Path) -> None:
    """An embedded Chroma client keeps its own copy of the vector index: without reopening it, the new paper's
    chunks were listed but dense search missed them or failed inside Chroma ('Error finding id')."""
    data = tmp_path / "data"
    ingest_paths([write_jsonl(tmp_path / "base.jsonl", corpus_rows(8))], Settings(data_dir=data))
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()  # no handle of this process stays open on the index
    env = app_env(data_dir=str(data))
    app = App(env)
    try:
        assert app.call("search", "What is 2BP?")["paper_ids"][0] == "2bp"
        new = write_jsonl(tmp_path / "zebrafold.jsonl", [ZEBRAFOLD])
        done = subprocess.run([sys.executable, "-m", "rag", "ingest", str(new)], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert_running_app_follows(app)
    finally:
        app.close()
