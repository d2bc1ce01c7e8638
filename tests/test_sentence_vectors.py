"""Sentence vectors computed once, at ingest (issue 10 item 7): stored, returned by Index, never re-embedded."""

from __future__ import annotations

import json
import shutil
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from chromadb.api.client import SharedSystemClient

from rag.chunking import chunk_paper
from rag.corpus import load_corpus
from rag.embeddings import get_embeddings
from rag.ingest import ensure_index, ingest_paths
from rag.retrieve import Index
from rag.settings import CORPUS_PATH, Settings
from rag.store import open_client, open_store, sentence_id, sentences_name
from rag.text import split_sentences

CORPUS = load_corpus(CORPUS_PATH)


def write_jsonl(path: Path, papers: list) -> Path:
    path.write_text("".join(json.dumps(p.model_dump(include={"id", "title", "aliases", "abstract"})) + "\n"
                            for p in papers), encoding="utf-8")
    return path


def expected(papers: list, settings: Settings) -> dict[str, tuple[str, int, int, str]]:
    """Sentence id -> (chunk id, start, end, text) for every sentence of every chunk of papers."""
    out = {}
    for p in papers:
        for c in chunk_paper(p, settings.chunk_tokens, settings.chunk_overlap):
            for a, b in split_sentences(c.text):
                out[sentence_id(c.id, a, b)] = (c.id, a, b, c.text[a:b])
    return out


@pytest.fixture
def built(tmp_path: Path) -> tuple[Settings, list]:
    settings = Settings(data_dir=tmp_path / "data")
    papers = CORPUS[:6]
    ingest_paths([write_jsonl(tmp_path / "papers.jsonl", papers)], settings)
    return settings, papers


def test_one_stored_vector_per_sentence(built: tuple[Settings, list]) -> None:
    settings, papers = built
    store = open_store(settings)
    got = store.sentences.get(include=["metadatas"])
    want = expected(papers, settings)
    assert sorted(got["ids"]) == sorted(want) and len(got["ids"]) == len(set(got["ids"]))
    for sid, meta in zip(got["ids"], got["metadatas"], strict=True):
        cid, a, b, _ = want[sid]
        assert (meta["chunk_id"], meta["start"], meta["end"]) == (cid, a, b)
        assert meta["paper_id"] == cid.split(":")[0]


def test_stored_vectors_match_embedding_the_sentence(built: tuple[Settings, list]) -> None:
    settings, papers = built
    index = Index(open_store(settings), settings)
    want = expected(papers, settings)
    keys = [(cid, a, b) for cid, a, b, _ in want.values()]
    vecs = index.sentence_vectors(keys)
    direct = get_embeddings(settings).encode([text for *_, text in want.values()])
    assert vecs.dtype == np.float32 and vecs.shape == (len(keys), direct.shape[1])
    cos = np.sum(vecs * direct, axis=1)
    assert cos.min() > 0.999, cos.min()
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert index.sentence_vectors([]).shape == (0, direct.shape[1])
    assert np.array_equal(index.sentence_vectors(keys[::-1]), vecs[::-1])  # in the order asked


FRESH = r"""
import json, sys, time
t0 = time.perf_counter()
from rag.retrieve import Index
from rag.settings import Settings
from rag.store import open_store
calls = []
index = Index(open_store(Settings()), Settings())
for name in ("encode", "embed_documents", "embed_query"):
    real = getattr(index.embedder, name)
    setattr(index.embedder, name, lambda *a, _real=real, _name=name, **k: (calls.append(_name), _real(*a, **k))[1])
keys = [tuple(k) for k in json.loads(sys.stdin.read())]
t1 = time.perf_counter()
vecs = index.sentence_vectors(keys)
t2 = time.perf_counter()
print(json.dumps({"calls": calls, "shape": list(vecs.shape), "seconds": t2 - t1, "process": t2 - t0}))
"""


def test_a_fresh_process_does_not_embed(built: tuple[Settings, list]) -> None:
    settings, papers = built
    SharedSystemClient.clear_system_cache()
    keys = [[cid, a, b] for cid, a, b, _ in expected(papers, settings).values()]
    env = {"PATH": "/usr/bin:/bin", "RAG_DATA_DIR": str(settings.data_dir), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-c", FRESH], input=json.dumps(keys), capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["calls"] == [] and got["shape"] == [len(keys), 384]


def test_unstored_keys_are_embedded_once_and_cached(built: tuple[Settings, list]) -> None:
    settings, papers = built
    store = open_store(settings)
    want = expected(papers, settings)
    gone = sorted(want)[:5]
    store.sentences.delete(ids=gone)
    store.bump_generation()  # as every write does: the view of the new generation lacks them too
    index = Index(store, settings)
    calls: list[int] = []
    real = index.embedder.encode
    index.embedder = type("Counting", (), {"encode": lambda self, texts: (calls.append(len(texts)), real(texts))[1],
                                           "dim": 384})()
    keys = [want[sid][:3] for sid in gone]
    first = index.sentence_vectors(keys)
    direct = get_embeddings(settings).encode([want[sid][3] for sid in gone])
    assert np.sum(first * direct, axis=1).min() > 0.999
    assert calls == [5]
    index.sentence_vectors(keys)
    assert calls == [5], "an unstored sentence was embedded twice in one process"


def test_reingest_and_reset_drop_sentences_with_their_chunks(built: tuple[Settings, list], tmp_path: Path) -> None:
    settings, papers = built
    edited = papers[2].model_copy(update={"abstract": papers[2].abstract + " A new closing sentence says 9.9x."})
    now = [*papers[:2], edited, *papers[3:]]
    ingest_paths([write_jsonl(tmp_path / "papers.jsonl", now)], settings)
    store = open_store(settings)
    assert sorted(store.sentences.get(include=[])["ids"]) == sorted(expected(now, settings))
    ingest_paths([write_jsonl(tmp_path / "two.jsonl", papers[:2])], settings, reset=True)
    store = open_store(settings)
    assert sorted(store.sentences.get(include=[])["ids"]) == sorted(expected(papers[:2], settings))


def test_an_index_built_before_is_backfilled_once(built: tuple[Settings, list],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    settings, papers = built
    open_client(settings).delete_collection(sentences_name(settings.collection))  # as an older version left it:
    shutil.rmtree(settings.data_dir / "views")  # no sentence vectors, and no saved view either
    with caplog.at_level(logging.INFO, logger="rag"):
        store = ensure_index(settings)
    assert store.sentences.count() == len(expected(papers, settings))
    assert any("sentence vectors" in r.getMessage() and "once" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rag"):
        ensure_index(settings)
    assert not any("sentence vectors" in r.getMessage() for r in caplog.records)


def test_ingest_backfills_passages_that_lack_sentences(built: tuple[Settings, list], tmp_path: Path) -> None:
    """A run killed between a chunk and its sentences (or an older version's chunks) converges on re-ingest."""
    settings, papers = built
    store = open_store(settings)
    victim = papers[1].id
    store.sentences.delete(where={"paper_id": victim})
    report = ingest_paths([write_jsonl(tmp_path / "papers.jsonl", papers)], settings)
    assert report.added == 0 and report.sentences > 0
    assert sorted(open_store(settings).sentences.get(include=[])["ids"]) == sorted(expected(papers, settings))
