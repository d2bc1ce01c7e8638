"""Hybrid retrieval: dense (Chroma) + BM25 (bm25s) fused by reciprocal rank, paper-aware, per-paper capped."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property, lru_cache

import bm25s
import chromadb
import numpy as np
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict

from rag.embeddings import get_embeddings
from rag.settings import Settings
from rag.store import PAGE, Store, StoreError, get_all, reopen_store, sentence_id, written_elsewhere
from rag.text import content_words, hyphen_parts
from rag.types import Body, Paper, Source

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets itself to DEBUG on import

_TITLE_GENERIC = frozenset("model models large language llm llms training inference efficient sharding learning "
                           "data via based neural network networks scale scaling".split())


def _tokenize(texts: list[str]) -> list[list[str]]:
    """BM25 tokens: content words, hyphen parts kept too (re-sharding finds resharding and sharding)."""
    out = []
    for text in texts:
        toks = []
        for w in content_words(text):
            toks.append(w)
            if "-" in w:
                toks.extend(hyphen_parts(w))
                toks.append(w.replace("-", ""))
        out.append(toks)
    return out


@dataclass
class Corpus:
    """Everything retrieval needs in memory: chunk texts and metadata, the BM25 index, the papers.

    One consistent snapshot of the index at one generation; Index.corpus() swaps in a new one when it changes.
    """

    ids: list[str]
    texts: list[str]
    metas: list[dict]
    papers: list[Paper]
    bm25: bm25s.BM25 | None
    count: int
    generation: str = ""

    @cached_property
    def pos(self) -> dict[str, int]:
        """Row of each chunk id."""
        return {cid: i for i, cid in enumerate(self.ids)}


def _with_bodies(papers: list[Paper], texts: list[str], metas: list[dict]) -> list[Paper]:
    """Papers with the text of their body passages (PDFs) attached, so checks of which words a paper uses see it."""
    parts: dict[str, list[tuple[int, str]]] = {}
    for text, meta in zip(texts, metas, strict=True):
        if meta.get("page"):
            parts.setdefault(str(meta["paper_id"]), []).append((int(meta.get("index", 0)), text))
    return [p.model_copy(update={"body": Body(text=" ".join(t for _, t in sorted(parts[p.id])))}) if p.id in parts
            else p for p in papers]


SENTENCE_CACHE = 50_000  # sentence vectors kept in memory per process (~75 MB at 384 dims)


class Index:
    """A store plus its in-memory BM25 view, reloaded when the store's generation stamp changes.

    Any process may change a shared index (another chat's ingest on a Chroma server, or an ingest in this
    process): every write bumps the stamp in the passage collection's metadata, and corpus() reads it (one small
    read, at most once per settings.view_check_seconds) and reloads the view when it moved.
    """

    def __init__(self, store: Store, settings: Settings, embedder: Embeddings | None = None) -> None:
        self.store, self.settings = store, settings
        self.embedder = embedder if embedder is not None else get_embeddings(settings)
        self._corpus: Corpus | None = None
        self._checked = float("-inf")  # monotonic time of the last generation check
        self._lock = threading.Lock()
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()  # sentence id -> unit vector (LRU)
        self._vectors_lock = threading.Lock()
        self._warned_unstored = False

    def corpus(self) -> Corpus:
        """The in-memory view, reloaded when another write changed the index since it was built."""
        corpus = self._corpus
        if corpus is not None and time.monotonic() - self._checked < self.settings.view_check_seconds:
            return corpus
        with self._lock:
            corpus = self._corpus
            if corpus is not None and time.monotonic() - self._checked < self.settings.view_check_seconds:
                return corpus  # another thread checked while this one waited
            stamp = self.store.generation()
            self._checked = time.monotonic()
            if corpus is not None and (not stamp or stamp == corpus.generation):
                return corpus  # unchanged, or the collection is being reset right now: keep the last good view
            if stamp and stamp.partition(":")[0] != str(self.store.chunks.id):
                log.info("the index at %s was rebuilt by another process; reopening it", self.store.where)
                self.store = reopen_store(self.settings)
            elif corpus is not None and not self.settings.chroma_url and written_elsewhere(stamp):
                self.store = reopen_store(self.settings)  # the embedded client's HNSW copy lacks the other's writes
            self._corpus = self._load(stamp)
            if corpus is not None:
                log.info("reloaded the retrieval view: %d papers, %d passages", len(self._corpus.papers),
                         self._corpus.count)
            return self._corpus

    def invalidate(self) -> None:
        """Check the generation stamp on the next corpus() call (something unknown was seen)."""
        self._checked = float("-inf")

    def query(self, qvec: np.ndarray, n: int, where: dict | None) -> list[str]:
        """Chunk ids nearest to qvec from Chroma's HNSW index.

        An embedded client whose in-memory index lags another process's writes can fail inside Chroma ("Error
        finding id"): the index is then reopened and the query tried once more.
        """
        for attempt in (1, 2):
            try:
                res = self.store.chunks.query(query_embeddings=[qvec.tolist()], n_results=n, where=where, include=[])
                return list(res["ids"][0])
            except chromadb.errors.ChromaError as exc:
                if self.settings.chroma_url:
                    raise
                if attempt == 2:
                    raise StoreError(f"the index at {self.store.where} could not be searched ({exc}). Try again; if "
                                     f"it keeps failing, run 'paperchat ingest' to repair it.") from None
                log.info("reopening the index at %s after a failed search (%s)", self.store.where, exc)
                with self._lock:
                    self.store = reopen_store(self.settings)
                self.invalidate()
        return []

    def _load(self, generation: str) -> Corpus:
        """Read all chunks and papers from Chroma and index their words with bm25s."""
        got = get_all(self.store.chunks, ["documents", "metadatas"])
        ids, texts, metas = got["ids"], list(got["documents"]), [dict(m) for m in got["metadatas"]]
        bm25 = None
        if ids:
            bm25 = bm25s.BM25()
            bm25.index(_tokenize([f"{m['title']} {t}" for m, t in zip(metas, texts, strict=True)]),
                       show_progress=False)
        return Corpus(ids=ids, texts=texts, metas=metas, papers=_with_bodies(self.store.list_papers(), texts, metas),
                      bm25=bm25, count=len(ids), generation=generation)

    def chunks(self, ids: list[str]) -> dict[str, tuple[str, dict]]:
        """(text, metadata) of chunks by id: from the view, else read from Chroma; ids stored nowhere are left out."""
        corpus = self.corpus()
        out = {cid: (corpus.texts[corpus.pos[cid]], corpus.metas[corpus.pos[cid]]) for cid in ids if cid in corpus.pos}
        unknown = [cid for cid in dict.fromkeys(ids) if cid not in out]
        if unknown:  # written after the view was loaded (another process's ingest): read them directly
            got = self.store.chunks.get(ids=unknown, include=["documents", "metadatas"])
            for cid, doc, meta in zip(got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True):
                out[cid] = (doc or "", dict(meta))
            self.invalidate()
        return out

    def sentence_vectors(self, keys: list[tuple[str, int, int]]) -> np.ndarray:
        """Unit vectors (float32, one row per key, in order) of passage sentences, stored at ingest.

        A key is (chunk_id, start, end) with the span relative to the chunk's text, exactly as
        rag.text.split_sentences(chunk_text) gives it. Vectors are read from Chroma in one get per call and kept
        in a bounded in-memory cache; a key not stored (an index built before sentence vectors were kept) is
        embedded here with the index's embedder and cached.
        """
        ids = [sentence_id(*key) for key in keys]
        found: dict[str, np.ndarray] = {}
        with self._vectors_lock:
            for sid in ids:
                vec = self._vectors.get(sid)
                if vec is not None:
                    self._vectors.move_to_end(sid)
                    found[sid] = vec
        need = [sid for sid in dict.fromkeys(ids) if sid not in found]
        fetched: dict[str, np.ndarray] = {}
        if need and self.store.sentences is not None:
            for page in range(0, len(need), PAGE):
                got = self.store.sentences.get(ids=need[page : page + PAGE], include=["embeddings"])
                for sid, vec in zip(got["ids"], got["embeddings"], strict=True):  # type: ignore[arg-type]
                    fetched[sid] = np.asarray(vec, dtype=np.float32)
        wanted = set(need) - fetched.keys()
        missing = [(sid, key) for sid, key in dict(zip(ids, keys, strict=True)).items() if sid in wanted]
        if missing:
            fetched.update(self._embed_unstored(missing))
        if fetched:
            with self._vectors_lock:
                self._vectors.update(fetched)
                while len(self._vectors) > SENTENCE_CACHE:
                    self._vectors.popitem(last=False)
        found.update(fetched)
        if not ids:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.stack([found[sid] for sid in ids]).astype(np.float32, copy=False)

    def _embed_unstored(self, missing: list[tuple[str, tuple[str, int, int]]]) -> dict[str, np.ndarray]:
        """Embed sentences Chroma holds no vector for (their text comes from their chunk)."""
        if not self._warned_unstored:
            self._warned_unstored = True
            log.info("%d sentence vectors are not stored in the index at %s (built before they were kept, or a "
                     "passage that is gone); embedding them here", len(missing), self.store.where)
        texts = self.chunks(sorted({key[0] for _, key in missing}))
        rows = [(sid, texts[cid][0][a:b] if cid in texts else "") for sid, (cid, a, b) in missing]
        vecs = self.embedder.encode([text for _, text in rows])
        return {sid: vec.astype(np.float32, copy=False) for (sid, _), vec in zip(rows, vecs, strict=True)}
@lru_cache(maxsize=100_000)
def _name_pattern(name: str) -> re.Pattern[str]:
    """A compiled whole-word pattern for one paper name (re's own cache holds only 512)."""
    return re.compile(rf"(?<![\w-]){re.escape(name.lower())}(?![\w])")


@lru_cache(maxsize=100_000)
def _title_words(title: str) -> frozenset[str]:
    """A title's distinctive words."""
    return frozenset(w for w in content_words(title) if w not in _TITLE_GENERIC)


def mentioned_papers(question: str, papers: list[Paper]) -> list[str]:
    """Ids of papers the question names: by alias or id; failing that, by most of a title's distinctive words
    ("according to Hecate, why do MoE experts…" names Hecate, not the paper whose title says "MoE … Expert")."""
    q = question.lower()
    q_words = set(content_words(question))
    hits: list[tuple[int, str]] = []
    by_title: list[str] = []
    for p in papers:
        names = [*p.aliases, p.id] + ([p.id.replace("-", " ")] if "-" in p.id else [])
        positions = [m.start() for n in names if len(n) >= 2 for m in [_name_pattern(n).search(q)] if m]
        if positions:
            hits.append((min(positions), p.id))
            continue
        title_words = _title_words(p.title)
        if len(title_words) >= 2 and len(title_words & q_words) >= max(2, int(0.6 * len(title_words))):
            by_title.append(p.id)
    return [pid for _, pid in sorted(hits)] or by_title


class HybridRetriever(BaseRetriever):
    """LangChain retriever: dense + BM25 fused by RRF; named papers guaranteed a place; per-paper cap.

    Through LangChain (`invoke`/`ainvoke`) the call-time arguments `k` and `paper_ids` override the fields, and
    at most k documents come back (search() lets papers the question names exceed k, for the answer stages).
    The async path runs the search in LangChain's executor: the embedded Chroma client has no async API, and the
    query embedding and BM25 scoring are CPU work (onnxruntime and numpy release the GIL, so calls overlap).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Index
    settings: Settings
    mode: str = "hybrid"
    k: int = 6
    paper_ids: list[str] | None = None
    per_paper_cap: int = 3

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None, paper_ids: list[str] | None = None) -> list[Document]:
        """Fused, capped passages for the query, best first, each with score, rank and dense similarity."""
        k = k or self.k
        return self.search(query, paper_ids=paper_ids, k=k)[:k]

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: int | None = None, paper_ids: list[str] | None = None) -> list[Document]:
        """The same search, off the event loop (see the class docstring for why an executor)."""
        return await run_in_executor(None, self._get_relevant_documents, query, run_manager=run_manager.get_sync(),
                                     k=k, paper_ids=paper_ids)

    def search(self, query: str, paper_ids: list[str] | None = None, k: int | None = None,
               qvec: np.ndarray | None = None, mentioned: list[str] | None = None) -> list[Document]:
        """The retrieval itself (also callable without LangChain's callback machinery)."""
        corpus = self.index.corpus()
        if not corpus.ids:
            return []
        k = k or self.k
        allowed = set(paper_ids or self.paper_ids or []) or None
        fetch = min(self.settings.fetch_k, len(corpus.ids))
        if qvec is None:
            qvec = self.embed(query)
        dense = self.dense(qvec, fetch, allowed)
        ranked: dict[str, float] = {}
        for rank, cid in enumerate(dense):
            ranked[cid] = ranked.get(cid, 0.0) + 1.0 / (self.settings.rrf_k + rank + 1)
        if self.mode == "hybrid":
            for rank, cid in enumerate(self.keyword(query, fetch, allowed, corpus)):
                ranked[cid] = ranked.get(cid, 0.0) + 1.0 / (self.settings.rrf_k + rank + 1)
        # A dense hit the view does not know was written after it was loaded (another process's ingest): read it
        # from Chroma, and drop ids stored nowhere any more, instead of failing the question.
        rows = {cid: (corpus.texts[i], corpus.metas[i]) for cid in ranked if (i := corpus.pos.get(cid)) is not None}
        if len(rows) < len(ranked):
            rows.update(self.index.chunks([cid for cid in ranked if cid not in rows]))
            ranked = {cid: score for cid, score in ranked.items() if cid in rows}
        order = sorted(ranked, key=lambda c: -ranked[c])
        # Dense mode is the plain-embedding baseline: no keyword ranking and no paper-name guarantee.
        if mentioned is None:  # callers that already know the named papers pass them: one scan per question
            mentioned = mentioned_papers(query, corpus.papers)
        named = [p for p in mentioned if allowed is None or p in allowed] \
            if self.mode == "hybrid" else []
        picked: list[str] = []
        for pid in named:  # a paper the question names gets its best passage in, ahead of the rest
            best = next((c for c in order if rows[c][1]["paper_id"] == pid), None)
            if best is None:
                row = next((i for i, m in enumerate(corpus.metas) if m["paper_id"] == pid), None)
                if row is not None:
                    best = corpus.ids[row]
                    rows[best] = (corpus.texts[row], corpus.metas[row])
                    ranked[best] = 0.0
            if best and best not in picked:
                picked.append(best)
        per_paper: dict[str, int] = {}
        for cid in picked:
            per_paper[rows[cid][1]["paper_id"]] = per_paper.get(rows[cid][1]["paper_id"], 0) + 1
        for cid in order:
            if len(picked) >= max(k, len(named)):
                break
            pid = rows[cid][1]["paper_id"]
            if cid in picked or per_paper.get(pid, 0) >= self.per_paper_cap:
                continue
            per_paper[pid] = per_paper.get(pid, 0) + 1
            picked.append(cid)
        # Dense similarity of every picked passage, for abstention and sentence ranking downstream.
        vecs = self.index.store.chunks.get(ids=picked, include=["embeddings"])
        sims = {cid: float(np.dot(np.asarray(v, dtype=np.float32), qvec))
                for cid, v in zip(vecs["ids"], vecs["embeddings"], strict=True)}  # type: ignore[arg-type]
        docs = []
        for rank, cid in enumerate(picked, start=1):
            text, meta = rows[cid][0], dict(rows[cid][1])
            meta.update(chunk_id=cid, score=round(ranked.get(cid, 0.0), 6), rank=rank,
                        similarity=round(sims.get(cid, 0.0), 4), named=meta["paper_id"] in named)
            docs.append(Document(page_content=text, metadata=meta, id=cid))
        return docs

    def embed(self, query: str) -> np.ndarray:
        """The query vector (compute it once and pass it to search() for several searches)."""
        return np.asarray(self.index.embedder.embed_query(query), dtype=np.float32)

    def dense(self, qvec: np.ndarray, fetch: int, allowed: set[str] | None = None) -> list[str]:
        """Chunk ids by cosine similarity from Chroma's HNSW index."""
        where = {"paper_id": {"$in": sorted(allowed)}} if allowed else None
        return self.index.query(qvec, fetch, where)

    def keyword(self, query: str, fetch: int, allowed: set[str] | None = None,
                corpus: Corpus | None = None) -> list[str]:
        """Chunk ids by BM25 score (zero-score chunks dropped)."""
        corpus = corpus if corpus is not None else self.index.corpus()
        tokens = _tokenize([query])[0]
        if not tokens or corpus.bm25 is None:
            return []
        scores = corpus.bm25.get_scores(tokens)
        if allowed:
            mask = np.array([m["paper_id"] in allowed for m in corpus.metas])
            scores = np.where(mask, scores, 0.0)
        top = np.argsort(-scores)[:fetch]
        return [corpus.ids[i] for i in top if scores[i] > 0]


def make_retriever(index: Index, settings: Settings, paper_ids: list[str] | None = None,
                   mode: str | None = None, k: int | None = None) -> HybridRetriever:
    """A retriever over index configured from settings."""
    return HybridRetriever(index=index, settings=settings, mode=mode or settings.retrieval, k=k or settings.top_k,
                           paper_ids=paper_ids, per_paper_cap=settings.per_paper_cap)


def to_sources(docs: list[Document]) -> list[Source]:
    """Numbered sources [1..n] from retrieved documents."""
    return [Source(n=i, paper_id=d.metadata["paper_id"], title=d.metadata["title"], chunk_id=d.metadata["chunk_id"],
                   text=d.page_content, score=float(d.metadata.get("score", 0.0)), start=int(d.metadata.get("start", 0)),
                   end=int(d.metadata.get("end", 0)), page=int(d.metadata.get("page", 0)),
                   page_end=int(d.metadata.get("page_end", 0)), section=str(d.metadata.get("section", "")),
                   page_breaks=json.loads(str(d.metadata.get("page_breaks") or "[]")))
            for i, d in enumerate(docs, start=1)]
