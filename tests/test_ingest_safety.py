"""Ingestion that loses nothing: idempotence, edits, kill -9, bad files, a foreign index, a second writer.

Real MiniLM and real embedded Chroma throughout; the CLI runs as a subprocess where the brief is about processes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import chromadb
import pytest
from chromadb.api.client import SharedSystemClient
from chromadb.config import Settings as ChromaSettings

from rag.answer import Pipeline
from rag.chunking import chunk_paper
from rag.corpus import CorpusError, load_corpus, read_papers
from rag.ingest import ingest_paths
from rag.settings import CORPUS_PATH, Settings
from rag.store import EmbeddingMismatchError, StoreLockedError, open_store, writer_lock
from rag.types import Paper

PAPERCHAT = Path(sys.executable).with_name("paperchat")
SEESAW_Q = "How much faster is Seesaw than vLLM?"
CORPUS = load_corpus(CORPUS_PATH)


# -- helpers ----------------------------------------------------------------------------------------------------
def write_jsonl(path: Path, papers: list[Paper], with_ids: bool = True) -> Path:
    """Papers as JSONL (optionally without ids and aliases, so the reader derives them)."""
    keep = {"id", "title", "aliases", "abstract"} if with_ids else {"title", "abstract"}
    path.write_text("".join(json.dumps(p.model_dump(include=keep)) + "\n" for p in papers), encoding="utf-8")
    return path


def pick(*ids: str) -> list[Paper]:
    """Corpus papers by id."""
    by_id = {p.id: p for p in CORPUS}
    return [by_id[i] for i in ids]


def state(settings: Settings) -> dict:
    """What the index holds: chunk ids, (paper, text) pairs, paper ids and aliases; releases the client after."""
    try:
        store = open_store(settings)
        chunks = store.chunks.get(include=["documents", "metadatas"])
        papers = store.list_papers()
        return {
            "chunk_ids": list(chunks["ids"]),
            "texts": [(m["paper_id"], d) for m, d in zip(chunks["metadatas"], chunks["documents"], strict=True)],
            "papers": {p.id: p for p in papers},
            "count": store.chunks.count(),
        }
    finally:  # a fresh view next time, and no open handle while a subprocess writes
        SharedSystemClient.clear_system_cache()


def expected_ids(papers: list[Paper], settings: Settings) -> set[str]:
    """The chunk ids a complete ingest of papers must leave in the index."""
    return {c.id for p in papers for c in chunk_paper(p, settings.chunk_tokens, settings.chunk_overlap)}


def run_cli(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """paperchat ARGS as a subprocess (text output)."""
    return subprocess.run([str(PAPERCHAT), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def one_error_line(stderr: str) -> str:
    """The single 'Error: …' line a failing command must print, with no traceback."""
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith(("DEBUG ", "INFO "))]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith("Error:"), stderr
    return lines[0]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


# -- idempotence and edits --------------------------------------------------------------------------------------
def test_ingest_twice_same_chunks_no_duplicates(settings: Settings, tmp_path: Path) -> None:
    papers = pick("seesaw", "2bp", "nesa", "datarus-r1")
    path = write_jsonl(tmp_path / "papers.jsonl", papers)
    first = ingest_paths([path], settings)
    before = state(settings)
    second = ingest_paths([path], settings)
    after = state(settings)
    assert before["count"] == after["count"] == len(expected_ids(papers, settings)) == first.added
    assert set(after["chunk_ids"]) == expected_ids(papers, settings)
    assert len(after["texts"]) == len(set(after["texts"])), "the same passage is stored twice"
    assert (second.added, second.removed, second.unchanged) == (0, 0, first.added)
    assert after["papers"].keys() == before["papers"].keys() == {p.id for p in papers}


def test_reingest_derived_ids_stable(settings: Settings, tmp_path: Path) -> None:
    """A page without ids: derived ids and chunk ids do not drift when the same file comes in again."""
    papers = pick("seesaw", "2bp", "universal-checkpointing")
    page = tmp_path / "page.txt"
    page.write_text("\n".join(f"{p.title}\n{p.abstract}" for p in papers), encoding="utf-8")
    ingest_paths([page], settings)
    before = state(settings)
    ingest_paths([page], settings)
    after = state(settings)
    assert before["papers"].keys() == after["papers"].keys()
    assert sorted(before["chunk_ids"]) == sorted(after["chunk_ids"])


def test_reingest_keeps_derived_aliases(settings: Settings, tmp_path: Path) -> None:
    papers = pick("seesaw", "2bp", "universal-checkpointing")
    page = tmp_path / "page.txt"
    page.write_text("\n".join(f"{p.title}\n{p.abstract}" for p in papers), encoding="utf-8")
    ingest_paths([page], settings)
    before = {pid: p.aliases for pid, p in state(settings)["papers"].items()}
    assert any(before.values())
    ingest_paths([page], settings)
    assert {pid: p.aliases for pid, p in state(settings)["papers"].items()} == before


def test_edited_abstract_replaces_stale_chunks(settings: Settings, tmp_path: Path) -> None:
    papers = pick("seesaw", "2bp", "nesa")
    path = write_jsonl(tmp_path / "papers.jsonl", papers)
    ingest_paths([path], settings)
    old_ids = {cid for cid in state(settings)["chunk_ids"] if cid.startswith("2bp:")}

    first_sentence = papers[1].abstract.split(". ")[0]
    new_text = papers[1].abstract.replace(first_sentence, "Splitting backpropagation in two keeps accelerators busy")
    new_text += " A follow-up run on the Zanzibar cluster reached a 2.31x throughput gain over 1F1B."
    edited = papers[1].model_copy(update={"abstract": new_text})
    write_jsonl(path, [papers[0], edited, papers[2]])
    report = ingest_paths([path], settings)
    after = state(settings)

    now = {cid for cid in after["chunk_ids"] if cid.startswith("2bp:")}
    assert now == expected_ids([edited], settings)
    assert report.removed == len(old_ids - now) > 0
    assert not any(first_sentence in text for _, text in after["texts"]), "a stale chunk survived"
    assert set(after["chunk_ids"]) == expected_ids([papers[0], edited, papers[2]], settings)
    assert after["papers"]["2bp"].abstract == edited.abstract

    answer = Pipeline(settings).answer("Which throughput gain did 2BP reach on the Zanzibar cluster?")
    assert "2.31x" in answer.answer and answer.paper_ids[0] == "2bp"


def test_duplicate_id_in_one_batch_is_refused(settings: Settings, tmp_path: Path) -> None:
    """Two different papers under one id: the second would silently replace the first."""
    a, b = pick("seesaw", "2bp")
    path = write_jsonl(tmp_path / "papers.jsonl", [a, b.model_copy(update={"id": a.id})])
    with pytest.raises(CorpusError, match=r"papers\.jsonl, line 2: .*seesaw"):
        ingest_paths([path], settings)


# -- kill -9 ---------------------------------------------------------------------------------------------------
def forty_papers() -> list[Paper]:
    """40 distinct papers: two variants of each corpus paper."""
    out = [p.model_copy(update={"id": f"{p.id}-v{k}", "title": f"{p.title} (variant {k})", "aliases": [],
                                "abstract": f"Variant {k} of this study. {p.abstract}"})
           for k in range(2) for p in CORPUS]
    return out[:40]


def wait_for_writer(data_dir: Path, proc: subprocess.Popen, timeout: float = 180) -> bool:
    """Wait until proc holds the writer lock (its pid in write.lock); False if it ended first."""
    lock = data_dir / "write.lock"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if lock.read_text().strip() == str(proc.pid):
                return True
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError("the ingester never took the writer lock")


@pytest.mark.slow
def test_kill_9_during_ingest_then_reingest(settings: Settings, tmp_path: Path) -> None:
    papers = forty_papers()
    path = write_jsonl(tmp_path / "forty.jsonl", papers)
    want = expected_ids(papers, settings)
    seed = int(os.environ.get("KILL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    env = {"RAG_DATA_DIR": str(settings.data_dir)}
    killed_mid_write = []
    for _ in range(3):
        proc = subprocess.Popen([str(PAPERCHAT), "ingest", str(path)], env={**os.environ, **env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        holding = wait_for_writer(settings.data_dir, proc)
        time.sleep(rng.uniform(0.5, 4.0))
        if holding and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed_mid_write.append(True)
        proc.wait(60)
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read().decode() if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        partial = state(settings)
        assert set(partial["chunk_ids"]) <= want, f"seed {seed}: chunks that no paper has"
        assert len(partial["texts"]) == len(set(partial["texts"])), f"seed {seed}: duplicate passages"
    assert killed_mid_write, f"seed {seed}: no round was killed while writing"
    assert len(partial["chunk_ids"]) < len(want), f"seed {seed}: the kills came too late to test anything"

    done = run_cli("ingest", path, env=env)
    assert done.returncode == 0, done.stderr
    final = state(settings)
    assert set(final["chunk_ids"]) == want and final["count"] == len(want), f"seed {seed}"
    assert len(final["texts"]) == len(set(final["texts"])), f"seed {seed}: duplicate passages"
    assert final["papers"].keys() == {p.id for p in papers}

    answer = Pipeline(settings).answer(SEESAW_Q)
    assert "1.78" in answer.answer and answer.paper_ids[0].startswith("seesaw-v")


# -- bad input files ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("content", "line", "message"), [
    ('{"title": "A", "abstract": "long enough abstract text"}\n{"title": "B", "abstract": \n', 2, "invalid JSON"),
    ('{"title": "A", "abstract": "text"}\n\n["not", "an", "object"]\n', 3, "JSON object"),
    ('{"title": "A"}\n', 1, "missing field"),
    ('{"id": "Bad Id!", "title": "A", "abstract": "text"}\n', 1, "lower-case"),
    ('{"title": "A", "abstract": "text", "aliases": "A"}\n', 1, "aliases"),
    (b'{"title": "A", "abstract": "ok"}\n{"title": "\xff\xfe", "abstract": "x"}\n', 2, "not UTF-8"),
], ids=["broken JSON", "not an object", "missing abstract", "bad id", "aliases not a list", "not UTF-8"])
def test_bad_file_error_names_file_and_line(tmp_path: Path, content: str | bytes, line: int, message: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    good = write_jsonl(tmp_path / "good.jsonl", pick("seesaw"))
    with pytest.raises(CorpusError) as err:
        read_papers([good, bad])
    assert err.value.path.endswith("bad.jsonl") and err.value.line == line
    assert f"bad.jsonl, line {line}:" in str(err.value) and message in str(err.value)


def indexed_and_a_bad_batch(settings: Settings, tmp_path: Path) -> tuple[dict, Path, Path]:
    """An index of two papers, and a batch to add: a good file and a file whose second line is broken JSON."""
    ingest_paths([write_jsonl(tmp_path / "base.jsonl", pick("seesaw", "2bp"))], settings)
    good = write_jsonl(tmp_path / "good.jsonl", pick("nesa"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(pick("datarus-r1")[0].model_dump()) + "\n" + '{"title": "Broken", "abstract": \n')
    return state(settings), good, bad


@pytest.mark.slow
def test_bad_file_in_batch_is_named_and_the_rest_ingested(settings: Settings, tmp_path: Path) -> None:
    before, good, bad = indexed_and_a_bad_batch(settings, tmp_path)
    proc = run_cli("ingest", good, bad, env={"RAG_DATA_DIR": str(settings.data_dir)})
    assert proc.returncode == 1
    failed = [ln for ln in proc.stderr.splitlines() if ln.startswith("Failed:")]
    assert len(failed) == 1 and "bad.jsonl" in failed[0] and "line 2" in failed[0] and "invalid JSON" in failed[0]
    assert "Traceback" not in proc.stderr
    assert "Indexed 1 paper(s): 1 added, 0 updated, 0 unchanged, 1 failed" in proc.stdout
    after = state(settings)
    assert set(before["chunk_ids"]) < set(after["chunk_ids"])
    assert after["papers"].keys() == {"seesaw", "2bp", "nesa"}  # datarus-r1 shared the bad file: not half-read


@pytest.mark.slow
def test_bad_file_with_reset_leaves_index_untouched(settings: Settings, tmp_path: Path) -> None:
    before, good, bad = indexed_and_a_bad_batch(settings, tmp_path)
    proc = run_cli("ingest", "--reset", good, bad, env={"RAG_DATA_DIR": str(settings.data_dir)})
    assert proc.returncode != 0
    line = one_error_line(proc.stderr)
    assert "bad.jsonl" in line and "line 2" in line and "invalid JSON" in line
    after = state(settings)
    assert sorted(after["chunk_ids"]) == sorted(before["chunk_ids"])
    assert after["papers"].keys() == before["papers"].keys() == {"seesaw", "2bp"}


# -- a store built with another embedding model -----------------------------------------------------------------
def foreign_index(data_dir: Path) -> None:
    """An index as 'openai:text-embedding-3-small' (1536-d) would have left it, made with chromadb directly."""
    client = chromadb.PersistentClient(path=str(data_dir / "chroma"),
                                       settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False))
    col = client.create_collection("paperchat", metadata={"embedding_model": "openai:text-embedding-3-small",
                                                          "dim": 1536},
                                   configuration={"hnsw": {"space": "cosine"}}, embedding_function=None)
    col.add(ids=["old:0"], embeddings=[[0.01] * 1536], documents=["an old passage"], metadatas=[{"paper_id": "old"}])
    SharedSystemClient.clear_system_cache()


def assert_names_both(message: str) -> None:
    assert "openai:text-embedding-3-small" in message and "1536" in message
    assert "all-MiniLM-L6-v2" in message and "384" in message
    assert "RAG_EMBEDDINGS" in message and "--reset" in message


def test_other_embedding_model_refused_at_startup(settings: Settings) -> None:
    foreign_index(settings.data_dir)
    with pytest.raises(EmbeddingMismatchError) as err:
        Pipeline(settings).papers()
    assert_names_both(str(err.value))
    with pytest.raises(EmbeddingMismatchError):
        ingest_paths([], settings)
    client = chromadb.PersistentClient(path=str(settings.data_dir / "chroma"),
                                       settings=ChromaSettings(anonymized_telemetry=False, allow_reset=False))
    try:  # the old index is left exactly as it was
        assert [c.name for c in client.list_collections()] == ["paperchat"]
        col = client.get_collection("paperchat")
        assert col.count() == 1 and col.metadata["embedding_model"] == "openai:text-embedding-3-small"
    finally:
        SharedSystemClient.clear_system_cache()


@pytest.mark.slow
def test_other_embedding_model_cli_message(settings: Settings) -> None:
    foreign_index(settings.data_dir)
    proc = run_cli("ask", "What is 2BP?", env={"RAG_DATA_DIR": str(settings.data_dir)})
    assert proc.returncode != 0
    assert_names_both(one_error_line(proc.stderr))


# -- a second writer --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_second_writer_is_refused(settings: Settings, tmp_path: Path) -> None:
    ingest_paths([write_jsonl(tmp_path / "base.jsonl", pick("seesaw"))], settings)
    before = state(settings)
    extra = write_jsonl(tmp_path / "extra.jsonl", pick("2bp"))
    with writer_lock(settings):  # this process is the first writer
        proc = run_cli("ingest", extra, env={"RAG_DATA_DIR": str(settings.data_dir)})
        with pytest.raises(StoreLockedError, match="RAG_CHROMA_URL"):  # a second writer in-process, too
            ingest_paths([extra], settings)
    assert proc.returncode != 0
    line = one_error_line(proc.stderr)
    assert "another paperchat process is writing" in line and "RAG_CHROMA_URL" in line
    assert sorted(state(settings)["chunk_ids"]) == sorted(before["chunk_ids"])
    ingest_paths([extra], settings)  # once the lock is free, writing works again
    assert "2bp" in state(settings)["papers"]
