"""Hybrid retrieval: dense (Chroma) + BM25 (bm25s) fused by reciprocal rank, paper-aware, per-paper capped.

The BM25 index and everything else derived from the index come from its persisted view (rag.view): opening an
index reads that, and the work per question is over the candidates the two searches return.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping

import chromadb
import numpy as np
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict

from rag.embeddings import get_embeddings
from rag.names import mentioned_papers
from rag.settings import Settings
from rag.store import PAGE, Store, StoreError, reopen_store, sentence_id, written_elsewhere
from rag.terms import bm25_tokens
from rag.types import Source
from rag.view import Progress, View, open_view

log = logging.getLogger(__name__)

__all__ = ["HybridRetriever", "Index", "make_retriever", "mentioned_papers", "to_sources"]

SENTENCE_CACHE = 50_000  # sentence vectors kept in memory per process (~75 MB at 384 dims)
PREFETCH_WAIT_S = 0.5  # open() waits this long, at most, for the view's files to be read into the page cache


class Index:
    """A store plus its retrieval view (rag.view), reopened when the store's generation stamp changes.

    Any process may change a shared index (another chat's ingest on a Chroma server, or an ingest in this
    process): every write bumps the stamp in the passage collection's metadata, and view() reads it (one small
    read, at most once per settings.view_check_seconds) and opens that generation's view when it moved: the saved
    one, else one built now (once, then saved for every process).
    """

    def __init__(self, store: Store, settings: Settings, embedder: Embeddings | None = None,
                 progress: Progress | None = None) -> None:
        """progress: told how a build of the retrieval view goes (done, total, what), when one is needed."""
        self.store, self.settings, self.progress = store, settings, progress
        self.embedder = embedder if embedder is not None else get_embeddings(settings)
        self._view: View | None = None
        self._checked = float("-inf")  # monotonic time of the last generation check
        self._lock = threading.Lock()
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()  # sentence id -> unit vector (LRU)
        self._vectors_lock = threading.Lock()
        self._warned_unstored = False

    def view(self, progress: Progress | None = None) -> View:
        """The retrieval view, reopened when another write changed the index since it was opened."""
        view = self._view
        if view is not None and time.monotonic() - self._checked < self.settings.view_check_seconds:
            return view
        with self._lock:
            view = self._view
            if view is not None and time.monotonic() - self._checked < self.settings.view_check_seconds:
                return view  # another thread checked while this one waited
            stamp = self.store.generation()
            self._checked = time.monotonic()
            if view is not None and (not stamp or stamp == view.generation):
                return view  # unchanged, or the collection is being reset right now: keep the last good view
            if stamp and stamp.partition(":")[0] != str(self.store.chunks.id):
                log.info("the index at %s was rebuilt by another process; reopening it", self.store.where)
                self.store = reopen_store(self.settings)
            elif view is not None and not self.settings.chroma_url and written_elsewhere(stamp):
                self.store = reopen_store(self.settings)  # the embedded client's HNSW copy lacks the other's writes
            self._view = open_view(self.store, self.settings, stamp or self.store.generation(),
                                   progress or self.progress)
            if view is not None:
                log.info("reloaded the retrieval view: %d papers, %d passages", len(self._view.papers),
                         self._view.count)
            return self._view

    def open(self) -> View:
        """Make the index ready to search: its view (its files read ahead into the page cache), the embedding model
        and Chroma's vector index loaded (each is otherwise loaded by the first question that needs it)."""
        view = self.view()
        reading = view.prefetch()
        qvec = np.asarray(self.embedder.embed_query("ready"), dtype=np.float32)
        if view.count:
            self.query(qvec, 1, None)
            _ = view.pos, view.paper_pos, view.papers.names  # the lookup tables every question uses
        reading.join(PREFETCH_WAIT_S)  # it ran beside the loading; give it a moment more, then let it go on
        return view

    def invalidate(self) -> None:
        """Check the generation stamp on the next view() call (something unknown was seen)."""
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

    def chunks(self, ids: list[str]) -> dict[str, tuple[str, dict]]:
        """(text, metadata) of chunks by id: from the view, else read from Chroma; ids stored nowhere are left out."""
        view = self.view()
        out = {cid: view.row(i) for cid in ids if (i := view.pos.get(cid)) is not None}
        unknown = [cid for cid in dict.fromkeys(ids) if cid not in out]
        if unknown:  # written after the view was loaded (another process's ingest): read them directly
            got = self.store.chunks.get(ids=unknown, include=["documents", "metadatas"])
            for cid, doc, meta in zip(got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True):
                out[cid] = (doc or "", dict(meta))
            self.invalidate()
        return out

    def similarities(self, ids: list[str], qvec: np.ndarray) -> dict[str, float]:
        """Cosine similarity of passages to a unit query vector: their vectors from the view, else from Chroma."""
        view = self.view()
        out: dict[str, float] = {}
        if view.vectors is not None:
            rows = [(cid, i) for cid in ids if (i := view.pos.get(cid)) is not None]
            if rows:
                got = view.vectors[np.asarray([i for _, i in rows])] @ qvec
                out = {cid: float(v) for (cid, _), v in zip(rows, got, strict=True)}
        rest = [cid for cid in ids if cid not in out]
        if rest:
            vecs = self.store.chunks.get(ids=rest, include=["embeddings"])
            out.update({cid: float(np.dot(np.asarray(v, dtype=np.float32), qvec))
                        for cid, v in zip(vecs["ids"], vecs["embeddings"], strict=True)})  # type: ignore[arg-type]
        return out

    def sentence_vectors(self, keys: list[tuple[str, int, int]]) -> np.ndarray:
        """Unit vectors (float32, one row per key, in order) of passage sentences, stored at ingest.

        A key is (chunk_id, start, end) with the span relative to the chunk's text, exactly as
        rag.text.split_sentences(chunk_text) gives it. Vectors come from the view's file (read by row); one the
        view lacks (a passage written after it was loaded) is read from Chroma, and one stored nowhere (an index
        built before sentence vectors were kept) is embedded here with the index's embedder; both are cached.
        """
        view = self.view()
        picked: list[tuple[int, int]] = []  # (key index, row in the view's sentence vectors)
        rest: list[int] = []
        spans: dict[str, dict[tuple[int, int], int]] = {}
        for j, (cid, a, b) in enumerate(keys):
            if cid not in spans:
                i = view.pos.get(cid)
                spans[cid] = view.sentence_rows(i) if i is not None and view.sentences is not None else {}
            r = spans[cid].get((a, b))
            if r is None:
                rest.append(j)
            else:
                picked.append((j, r))
        parts = []
        if picked:
            parts.append(([j for j, _ in picked], view.sentences[np.asarray([r for _, r in picked])]))  # type: ignore[index]
        if rest:
            parts.append((rest, self._unviewed([keys[j] for j in rest])))
        if not parts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        out = np.empty((len(keys), parts[0][1].shape[1]), dtype=np.float32)
        for rows, vecs in parts:
            out[rows] = vecs
        return out

    def _unviewed(self, keys: list[tuple[str, int, int]]) -> np.ndarray:
        """Sentence vectors the view does not hold: from Chroma, else embedded (both kept in a bounded cache)."""
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
        view = self.index.view()
        if not view.ids:
            return []
        k = k or self.k
        allowed = set(paper_ids or self.paper_ids or []) or None
        fetch = min(self.settings.fetch_k, view.count)
        if qvec is None:
            qvec = self.embed(query)
        dense = self.dense(qvec, fetch, allowed)
        ranked: dict[str, float] = {}
        for rank, cid in enumerate(dense):
            ranked[cid] = ranked.get(cid, 0.0) + 1.0 / (self.settings.rrf_k + rank + 1)
        if self.mode == "hybrid":
            for rank, cid in enumerate(self.keyword(query, fetch, allowed, view)):
                ranked[cid] = ranked.get(cid, 0.0) + 1.0 / (self.settings.rrf_k + rank + 1)
        # Each candidate's paper from the view's row table; a dense hit the view does not know was written after it
        # was loaded (another process's ingest): read it from Chroma, and drop ids stored nowhere any more.
        owner: dict[str, str] = {}
        for cid in ranked:
            i = view.pos.get(cid)
            if i is not None and (p := int(view.paper_of[i])) >= 0:
                owner[cid] = view.papers[p].id
        rows = self.index.chunks([cid for cid in ranked if cid not in owner]) if len(owner) < len(ranked) else {}
        owner.update({cid: str(meta["paper_id"]) for cid, (_, meta) in rows.items()})
        ranked = {cid: score for cid, score in ranked.items() if cid in owner}
        order = sorted(ranked, key=lambda c: -ranked[c])
        # Dense mode is the plain-embedding baseline: no keyword ranking and no paper-name guarantee.
        if mentioned is None:  # callers that already know the named papers pass them: one scan per question
            mentioned = mentioned_papers(query, view.papers)
        named = [p for p in mentioned if allowed is None or p in allowed] \
            if self.mode == "hybrid" else []
        picked: list[str] = []
        for pid in named:  # a paper the question names gets its best passage in, ahead of the rest
            best = next((c for c in order if owner[c] == pid), None)
            if best is None:
                row = view.first_passage(pid)
                if row is not None:
                    best = view.ids[row]
                    owner[best], ranked[best] = pid, 0.0
            if best and best not in picked:
                picked.append(best)
        per_paper: dict[str, int] = {}
        for cid in picked:
            per_paper[owner[cid]] = per_paper.get(owner[cid], 0) + 1
        for cid in order:
            if len(picked) >= max(k, len(named)):
                break
            pid = owner[cid]
            if cid in picked or per_paper.get(pid, 0) >= self.per_paper_cap:
                continue
            per_paper[pid] = per_paper.get(pid, 0) + 1
            picked.append(cid)
        rows.update(self.index.chunks([cid for cid in picked if cid not in rows]))
        # Dense similarity of every picked passage, for abstention and sentence ranking downstream.
        sims = self.index.similarities(picked, qvec)
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
                view: View | None = None) -> list[str]:
        """Chunk ids by BM25 score (zero-score chunks dropped)."""
        view = view if view is not None else self.index.view()
        tokens = bm25_tokens(query)
        if not tokens or view.bm25 is None:
            return []
        scores = view.bm25.get_scores(tokens)
        if allowed:
            scores = np.where(view.paper_rows(allowed), scores, 0.0)
        fetch = min(fetch, len(scores))
        top = np.argpartition(-scores, fetch - 1)[:fetch] if 0 < fetch < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [view.ids[i] for i in top if scores[i] > 0]


def make_retriever(index: Index, settings: Settings, paper_ids: list[str] | None = None,
                   mode: str | None = None, k: int | None = None) -> HybridRetriever:
    """A retriever over index configured from settings."""
    return HybridRetriever(index=index, settings=settings, mode=mode or settings.retrieval, k=k or settings.top_k,
                           paper_ids=paper_ids, per_paper_cap=settings.per_paper_cap)


def page_of(metadata: Mapping[str, object], key: str) -> int | None:
    """A passage's page (key 'page' or 'page_end') from its metadata: None for a passage that is not from a PDF's pages
    (stored without one, or as 0 by older indexes)."""
    value = metadata.get(key)
    return value if isinstance(value, int) and value > 0 else None


def to_sources(docs: list[Document]) -> list[Source]:
    """Numbered sources [1..n] from retrieved documents."""
    return [Source(n=i, paper_id=d.metadata["paper_id"], title=d.metadata["title"], chunk_id=d.metadata["chunk_id"],
                   text=d.page_content, score=float(d.metadata.get("score", 0.0)), start=int(d.metadata.get("start", 0)),
                   end=int(d.metadata.get("end", 0)), page=page_of(d.metadata, "page"),
                   page_end=page_of(d.metadata, "page_end"), section=str(d.metadata.get("section", "")),
                   page_breaks=json.loads(str(d.metadata.get("page_breaks") or "[]")))
            for i, d in enumerate(docs, start=1)]
