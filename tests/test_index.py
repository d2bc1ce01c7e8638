"""Chunking, embeddings, Chroma ingest and hybrid retrieval, all with the real components."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag.chunking import chunk_paper
from rag.corpus import load_corpus
from rag.embeddings import MiniLMEmbeddings
from rag.ingest import ingest_paths
from rag.retrieve import Index, make_retriever
from rag.settings import CORPUS_PATH, Settings
from rag.store import EmbeddingMismatchError, open_store
from rag.text import count_tokens

DATA = Path(__file__).parent / "data"
PAPERS = load_corpus(CORPUS_PATH)


@pytest.mark.parametrize("tokens,overlap", [(160, 32), (64, 16), (300, 0)])
def test_chunks_are_token_bounded_sentence_aligned_with_offsets(tokens, overlap):
    for paper in PAPERS:
        chunks = chunk_paper(paper, tokens, overlap)
        assert chunks and chunks[0].start == 0
        covered = set()
        for c in chunks:
            assert paper.abstract[c.start:c.end] == c.text
            assert count_tokens(c.text) <= tokens
            assert c.paper_id == paper.id and c.title == paper.title
            covered.update(range(c.start, c.end))
            if tokens >= 160 and c.end < len(paper.abstract.rstrip()):  # chunks end where sentences end
                assert c.text.rstrip()[-1] in ".!?)\"'", c.text[-40:]
        assert len(covered) >= len(paper.abstract.strip()) - 5 * len(chunks)


def test_chunk_ids_are_content_hashes():
    a = chunk_paper(PAPERS[2])
    b = chunk_paper(PAPERS[2])
    assert [c.id for c in a] == [c.id for c in b]
    edited = PAPERS[2].model_copy(update={"abstract": PAPERS[2].abstract.replace("1.78x", "1.79x")})
    assert {c.id for c in chunk_paper(edited)} != {c.id for c in a}


def test_minilm_matches_the_reference_model():
    ref = json.loads((DATA / "minilm_reference.json").read_text())
    emb = MiniLMEmbeddings()
    vecs = emb.encode([item["text"] for item in ref["items"]])
    for item, vec in zip(ref["items"], vecs, strict=True):
        want = np.asarray(item["vector"], dtype=np.float32)
        cos = float(np.dot(vec, want) / np.linalg.norm(want))
        # int8 weights: sentences agree to >= 0.9994; a lone word ("hello") to 0.998.
        assert cos >= (0.999 if len(item["text"].split()) >= 3 else 0.998), (item["text"][:40], cos)
        assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-4


def test_query_is_not_padded_to_a_fixed_length():
    emb = MiniLMEmbeddings()
    emb.encode(["warm up"])
    enc = emb._tokenizer.encode_batch(["What is 2BP?"])  # type: ignore[union-attr]
    assert len(enc[0].ids) < 16
    batch = emb._tokenizer.encode_batch(["short", "a much longer sentence with many more tokens in it"])  # type: ignore[union-attr]
    assert len(batch[0].ids) == len(batch[1].ids) < 32  # padded to the batch's longest only


def test_ingest_is_idempotent_and_removes_stale_chunks(tmp_path):
    settings = Settings(data_dir=tmp_path)
    src = tmp_path / "papers.jsonl"
    rows = [{"id": p.id, "title": p.title, "abstract": p.abstract} for p in PAPERS[:3]]
    src.write_text("\n".join(json.dumps(r) for r in rows))
    first = ingest_paths([src], settings)
    store = open_store(settings)
    count = store.chunks.count()
    assert first.added == count > 0 and store.papers.count() == 3
    again = ingest_paths([src], settings)
    assert (again.added, again.removed, store.chunks.count()) == (0, 0, count)
    rows[2]["abstract"] = rows[2]["abstract"].replace("1.78x", "2.5x")
    src.write_text("\n".join(json.dumps(r) for r in rows))
    edited = ingest_paths([src], settings)
    assert edited.removed >= 1 and edited.added == edited.removed
    docs = store.chunks.get(where={"paper_id": rows[2]["id"]}, include=["documents"])["documents"]
    assert any("2.5x" in d for d in docs) and not any("1.78x" in d for d in docs)
    ids = store.chunks.get(include=[])["ids"]
    assert len(ids) == len(set(ids)) == count


def test_other_embedding_model_fails_at_startup_naming_both(tmp_path):
    from rag.store import open_client

    client = open_client(Settings(data_dir=tmp_path))
    client.create_collection("paperchat", metadata={"embedding_model": "openai:text-embedding-3-small", "dim": 1536},
                             embedding_function=None)
    with pytest.raises(EmbeddingMismatchError) as err:
        open_store(Settings(data_dir=tmp_path))
    assert "openai:text-embedding-3-small" in str(err.value) and "all-MiniLM-L6-v2" in str(err.value)


# Every system name finds its paper at rank 1 (the small public question list of the foundation issue).
NAME_QUESTIONS = [(f"What is {alias}?", p.id) for p in PAPERS for alias in p.aliases if len(alias.split()) == 1]


@pytest.fixture(scope="module")
def retrievers(index_dir):
    settings = Settings(data_dir=index_dir)
    index = Index(open_store(settings), settings)
    return make_retriever(index, settings), make_retriever(index, settings, mode="dense")


@pytest.mark.parametrize(("question", "pid"), NAME_QUESTIONS)
def test_system_name_finds_its_paper_first(retrievers, question, pid):
    hybrid, _ = retrievers
    assert hybrid.search(question)[0].metadata["paper_id"] == pid


def test_2bp_is_not_the_d2d_paper(retrievers):
    hybrid, dense = retrievers
    assert hybrid.search("What is 2BP?")[0].metadata["paper_id"] == "2bp"
    # Dense alone is confused by the "2"/"D2D" look-alike; the fusion is what fixes it.
    assert [d.metadata["paper_id"] for d in dense.search("What is 2BP?")][:3].count("d2d") >= 1


@pytest.mark.parametrize(("question", "pid"), [
    ("Which paper studies how developers adopt safetensors?", "empirical-study-safetensors"),
    ("a dataset of 3D printing models", "thingi10k"),
    ("lifelong model editing memory", "wise"),
    ("preventing unauthorized model merging", "mergelock"),
    ("teacher and student with different vocabularies", "vocagnolm"),
])
def test_topic_questions(retrievers, question, pid):
    hybrid, _ = retrievers
    assert pid in [d.metadata["paper_id"] for d in hybrid.search(question)][:2]


def test_filter_cap_scores_and_ranks(retrievers):
    hybrid, _ = retrievers
    docs = hybrid.search("sharding of model state", paper_ids=["gshard", "hecate"])
    assert docs and {d.metadata["paper_id"] for d in docs} <= {"gshard", "hecate"}
    docs = hybrid.search("mixture of experts")
    per_paper = {}
    for d in docs:
        per_paper[d.metadata["paper_id"]] = per_paper.get(d.metadata["paper_id"], 0) + 1
    assert max(per_paper.values()) <= hybrid.per_paper_cap
    assert [d.metadata["rank"] for d in docs] == list(range(1, len(docs) + 1))
    assert all(d.metadata["score"] > 0 for d in docs)
    assert hybrid.invoke("What is GShard?")[0].metadata["paper_id"] == "gshard"  # the LangChain retriever API
