"""The Chroma server (RAG_CHROMA_URL): same answers as embedded, shared by processes, survives a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import pipeline_on_server

from rag.proc import free_port, stop_process, wait_http
from rag.answer import Pipeline
from rag.chunking import chunk_paper
from rag.corpus import load_corpus
from rag.retrieve import make_retriever
from rag.settings import CORPUS_PATH, QUESTIONS_PATH, Settings
from rag.store import StoreError

PAPERCHAT = Path(sys.executable).with_name("paperchat")
CHROMA = Path(sys.executable).with_name("chroma")
COLLECTION = "reliability"  # not the default, so other tests on the session server cannot interfere
SEESAW_Q = "How much faster is Seesaw than vLLM?"
QUESTIONS = [json.loads(line) for line in QUESTIONS_PATH.read_text().splitlines() if line.strip()][::4]
QUOKKA = {"id": "quokka", "title": "Quokka: Sparse Attention for Long Documents", "aliases": ["Quokka"],
          "abstract": "We present Quokka, a sparse attention kernel for long documents. Quokka reduces attention "
                      "latency by 37% on 64k-token documents while keeping accuracy within 0.2 points of dense "
                      "attention."}


class ChromaProcess:
    """A `chroma run` this test owns: stop it, start it again on the same port and path."""

    def __init__(self, path: Path) -> None:
        self.path, self.port = path, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> ChromaProcess:
        log = open(self.path / "server.log", "a")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen([str(CHROMA), "run", "--path", str(self.path / "db"), "--host", "127.0.0.1",
                                      "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_http(f"{self.url}/api/v2/heartbeat", proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)
        self.proc = None


def server_env(url: str, data_dir: Path, collection: str = COLLECTION) -> dict[str, str]:
    return {**os.environ, "RAG_CHROMA_URL": url, "RAG_COLLECTION": collection, "RAG_DATA_DIR": str(data_dir)}


@pytest.fixture(scope="module")
def server_pipe(chroma_server: str, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """The real pipeline over the session Chroma server, its index built from the bundled corpus."""
    return pipeline_on_server(chroma_server, COLLECTION, tmp_path_factory.mktemp("server-client"))


def chunk_view(pipe: Pipeline) -> tuple[list[str], list[tuple[str, str]]]:
    """Chunk ids and (paper, text) pairs as the store holds them now."""
    got = pipe.index.store.chunks.get(include=["documents", "metadatas"])
    return list(got["ids"]), [(m["paper_id"], d) for m, d in zip(got["metadatas"], got["documents"], strict=True)]


@pytest.mark.slow
def test_server_ingest_search_ask(server_pipe: Pipeline, pipeline: Pipeline) -> None:
    assert server_pipe.index.store.where == server_pipe.settings.chroma_url
    assert [p.id for p in server_pipe.papers()] == [p.id for p in pipeline.papers()]
    ids, texts = chunk_view(server_pipe)
    assert sorted(ids) == sorted(chunk_view(pipeline)[0])  # the same passages, the same content-hash ids
    assert len(texts) == len(set(texts))
    docs = make_retriever(server_pipe.index, server_pipe.settings).search("What is 2BP?")
    assert docs[0].metadata["paper_id"] == "2bp"
    answer = server_pipe.answer(SEESAW_Q)
    assert "1.78" in answer.answer and answer.paper_ids[0] == "seesaw"


@pytest.mark.slow
def test_server_answers_like_embedded(server_pipe: Pipeline, pipeline: Pipeline) -> None:
    same_text = 0
    for q in QUESTIONS:
        a, b = server_pipe.answer(q["question"], history=q["history"]), pipeline.answer(q["question"],
                                                                                        history=q["history"])
        assert a.paper_ids[:1] == b.paper_ids[:1], q["id"]
        assert a.abstained == b.abstained, q["id"]
        same_text += a.answer == b.answer
    assert same_text >= len(QUESTIONS) - 1, f"only {same_text}/{len(QUESTIONS)} answers identical"


@pytest.mark.slow
def test_server_survives_going_away(tmp_path: Path) -> None:
    server = ChromaProcess(tmp_path).start()
    try:
        corpus = tmp_path / "small.jsonl"
        corpus.write_text("".join(json.dumps(p.model_dump(include={"id", "title", "aliases", "abstract"})) + "\n"
                                  for p in load_corpus(CORPUS_PATH) if p.id in {"seesaw", "2bp", "nesa"}))
        settings = Settings(chroma_url=server.url, data_dir=tmp_path / "data", corpus=corpus)
        pipe = Pipeline(settings)
        assert "1.78" in pipe.answer(SEESAW_Q).answer

        server.stop()  # the server goes away mid-session
        with pytest.raises(StoreError, match=r"Chroma server at http://127\.0\.0\.1:\d+.*running"):
            pipe.answer("What is 2BP?")
        with pytest.raises(StoreError):
            list(pipe.stream("What is 2BP?"))
        cli = subprocess.run([str(PAPERCHAT), "ask", "What is 2BP?"], capture_output=True, text=True, timeout=120,
                             env=server_env(server.url, tmp_path / "data", "paperchat"))
        lines = [ln for ln in cli.stderr.splitlines() if ln.strip()]
        assert cli.returncode != 0 and "Traceback" not in cli.stderr
        assert len(lines) == 1 and lines[0].startswith("Error:") and server.url in lines[0], cli.stderr

        server.start()  # same port, same path: the same pipeline recovers without being rebuilt
        answer = pipe.answer("What is 2BP?")
        assert answer.paper_ids[0] == "2bp" and "2BP" in answer.answer
        assert {p.id for p in pipe.papers()} == {"seesaw", "2bp", "nesa"}
    finally:
        server.stop()


@pytest.mark.slow
def test_two_processes_and_an_ingest_share_the_server(server_pipe: Pipeline, chroma_server: str,
                                                      tmp_path: Path) -> None:
    before_ids, _ = chunk_view(server_pipe)
    extra = tmp_path / "quokka.jsonl"
    extra.write_text(json.dumps(QUOKKA) + "\n")
    env = server_env(chroma_server, tmp_path / "data")
    procs = {
        "seesaw": subprocess.Popen([str(PAPERCHAT), "ask", SEESAW_Q, "--json"], env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE),
        "2bp": subprocess.Popen([str(PAPERCHAT), "ask", "What is 2BP?", "--json"], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE),
        "ingest": subprocess.Popen([str(PAPERCHAT), "ingest", str(extra)], env=env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE),
    }
    out = {name: p.communicate(timeout=300) for name, p in procs.items()}
    for name, p in procs.items():
        assert p.returncode == 0, (name, out[name][1])
    seesaw, twobp = json.loads(out["seesaw"][0]), json.loads(out["2bp"][0])
    assert "1.78" in seesaw["answer"] and seesaw["sources"][0]["paper_id"] == "seesaw"
    assert "2BP" in twobp["answer"]
    assert "Indexed 1 paper(s)" in out["ingest"][0]

    from rag.types import Paper

    fresh = Pipeline(server_pipe.settings)  # another client of the same server sees the new paper
    ids, texts = chunk_view(fresh)
    quokka_ids = {c.id for c in chunk_paper(Paper(**QUOKKA), fresh.settings.chunk_tokens, fresh.settings.chunk_overlap)}
    assert set(ids) == set(before_ids) | quokka_ids and len(texts) == len(set(texts))
    assert "quokka" in {p.id for p in fresh.papers()}
    assert "37%" in fresh.answer("How much does Quokka reduce attention latency?").answer


@pytest.mark.slow
def test_a_pdf_and_a_removal_on_the_server_reach_every_client(chroma_server: str, tmp_path: Path) -> None:
    """The library on a shared server: a PDF ingested and then removed by one process, seen by a running client."""
    pdf = Path(__file__).resolve().parent / "data" / "pdf" / "two-column.pdf"
    env = server_env(chroma_server, tmp_path / "data", collection="library")
    base = tmp_path / "base.jsonl"
    base.write_text(json.dumps(QUOKKA) + "\n")
    done = subprocess.run([str(PAPERCHAT), "ingest", str(base), str(pdf)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    running = pipeline_on_server(chroma_server, "library", tmp_path / "client")
    rows = {p["kind"]: p for p in json.loads(subprocess.run([str(PAPERCHAT), "papers", "--json"], env=env,
                                                           capture_output=True, text=True, timeout=120).stdout)}
    assert rows["pdf"]["pages"] == 3 and rows["pdf"]["chunks"] >= 3
    got = running.answer("What happens to headers and footers before the text is joined into paragraphs?")
    assert not got.abstained and any(s.page for s in got.sources)
    gone = subprocess.run([str(PAPERCHAT), "remove", rows["pdf"]["id"]], env=env, capture_output=True, text=True,
                          timeout=120)
    assert gone.returncode == 0, gone.stderr
    running.index.invalidate()
    assert [p.id for p in running.papers()] == ["quokka"]
    assert running.index.store.chunks.get(where={"paper_id": rows["pdf"]["id"]}, include=[])["ids"] == []


def test_app_instances_sharing_a_view_folder_build_each_generation_once(chroma_server: str, tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    """RAG_VIEW_DIR shared by app instances on one Chroma server: the first builds a generation's view, the rest
    load it; after another instance's ingest the new generation is built once more, and answers see the new paper."""
    import logging

    shared = tmp_path / "shared-views"
    make = [Settings(chroma_url=chroma_server, collection="sharedviews", data_dir=tmp_path / f"app{i}",
                     view_dir=shared, view_check_seconds=0) for i in range(3)]
    caplog.set_level(logging.INFO, logger="rag.view")
    first = Pipeline(make[0])
    first.papers()  # builds the index on the server and its view
    built = sum("built the retrieval view" in r.getMessage() for r in caplog.records)
    assert built == 1
    second = Pipeline(make[1])
    assert [p.id for p in second.papers()] == [p.id for p in first.papers()]
    assert sum("built the retrieval view" in r.getMessage() for r in caplog.records) == built
    path = tmp_path / "quokka.jsonl"
    path.write_text(json.dumps(QUOKKA) + "\n")
    Pipeline(make[2]).ingest([path])  # a third instance adds a paper: it saves the new generation's view
    after = sum("built the retrieval view" in r.getMessage() for r in caplog.records)
    assert after == built + 1
    for pipe in (first, second):
        ans = pipe.answer("How much does Quokka reduce attention latency?")
        assert not ans.abstained and "quokka" in {s.paper_id for s in ans.sources}
    assert sum("built the retrieval view" in r.getMessage() for r in caplog.records) == after


# -- a wrong RAG_CHROMA_URL (issue 27, item 13) --------------------------------------------------------------------
@pytest.mark.parametrize(("url", "address"), [
    ("http://127.0.0.1:8000", ("127.0.0.1", 8000, False)), ("https://chroma.example.org", ("chroma.example.org", 8000, True)),
    ("127.0.0.1:9000", ("127.0.0.1", 9000, False)), ("http://[::1]:8001", ("::1", 8001, False)),
    ("notaurl", None), ("localhost", None), ("ftp://x:1", None), ("http://", None), ("http://a b:80", None),
    ("http://x:abc", None), ("http://x:99999", None),
])
def test_chroma_address(url: str, address: tuple | None) -> None:
    from rag.settings import chroma_address

    assert chroma_address(url) == address


def test_a_malformed_chroma_url_is_said_to_be_malformed(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "rag", "papers"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "RAG_CHROMA_URL": "notaurl", "RAG_DATA_DIR": str(tmp_path)}, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "Error: RAG_CHROMA_URL: 'notaurl' is not a Chroma server URL; give it as http://host:port."]


def test_a_web_server_that_is_not_chroma_is_named_by_its_status(tmp_path: Path) -> None:
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    web = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{web.server_address[1]}"
        with pytest.raises(StoreError) as info:
            Pipeline(Settings(chroma_url=url, data_dir=tmp_path)).papers()
    finally:
        web.shutdown()
    message = str(info.value)
    assert message == (f"the server at {url} is not a Chroma server: it answered HTTP 404 to /api/v2/heartbeat. "
                       "Point RAG_CHROMA_URL at the address `chroma run` prints.")
    with pytest.raises(StoreError, match="nothing answers there"):
        Pipeline(Settings(chroma_url=f"http://127.0.0.1:{free_port()}", data_dir=tmp_path)).papers()


def test_the_local_extra_hint_works_from_a_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    """From a wheel there is no checkout to `pip install -e .` in: every hint names the package."""
    import importlib.util

    from rag.llm import LLMError, local

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    for attempt in (local.default_gguf, lambda: local.LocalServer(Path("m.gguf")).start()):
        with pytest.raises(LLMError) as info:
            attempt()
        assert "pip install 'paperchat[local]'" in str(info.value) and "-e" not in str(info.value)
