"""Hybrid retrieval: dense (Chroma) + BM25 (bm25s) fused by reciprocal rank, paper-aware, per-paper capped."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from functools import cached_property, lru_cache

import bm25s
import numpy as np
from langchain_chroma import Chroma
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.embeddings import get_embeddings
from rag.settings import Settings
from rag.store import Store, get_all
from rag.text import STOPWORDS, content_words
from rag.types import Paper, Source

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
                toks.extend(p for p in w.split("-") if p and p not in STOPWORDS)
                toks.append(w.replace("-", ""))
        out.append(toks)
    return out


@dataclass
class Corpus:
    """Everything retrieval needs in memory: chunk texts and metadata, the BM25 index, the papers."""

    ids: list[str]
    texts: list[str]
    metas: list[dict]
    papers: list[Paper]
    bm25: bm25s.BM25 | None
    count: int

    @cached_property
    def pos(self) -> dict[str, int]:
        """Row of each chunk id."""
        return {cid: i for i, cid in enumerate(self.ids)}

    @property
    def paper_by_id(self) -> dict[str, Paper]:
        """Papers keyed by id."""
        return {p.id: p for p in self.papers}


class Index:
    """A store plus its in-memory BM25 view, rebuilt when the store's chunk count changes."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self.embedder = get_embeddings(settings)
        self.vectorstore = Chroma(client=store.client, collection_name=store.chunks.name,
                                  embedding_function=self.embedder)
        self._corpus: Corpus | None = None
        self._lock = threading.Lock()

    def corpus(self, refresh: bool = False) -> Corpus:
        """The in-memory corpus, reloaded when chunks were added or removed since it was built."""
        count = self.store.chunks.count() if (refresh or self._corpus is None) else self._corpus.count
        with self._lock:
            if self._corpus is None or self._corpus.count != count:
                self._corpus = self._load(count)
        return self._corpus

    def refresh(self) -> Corpus:
        """Reload after an ingest."""
        return self.corpus(refresh=True)

    def _load(self, count: int) -> Corpus:
        """Read all chunks and papers from Chroma and index their words with bm25s."""
        got = get_all(self.store.chunks, ["documents", "metadatas"])
        ids, texts, metas = got["ids"], list(got["documents"]), [dict(m) for m in got["metadatas"]]
        bm25 = None
        if ids:
            bm25 = bm25s.BM25()
            bm25.index(_tokenize([f"{m['title']} {t}" for m, t in zip(metas, texts, strict=True)]),
                       show_progress=False)
        return Corpus(ids=ids, texts=texts, metas=metas, papers=self.store.list_papers(), bm25=bm25, count=count)


@lru_cache(maxsize=100_000)
def _name_pattern(name: str) -> re.Pattern[str]:
    """A compiled whole-word pattern for one paper name (re's own cache holds only 512)."""
    return re.compile(rf"(?<![\w-]){re.escape(name.lower())}(?![\w])")


@lru_cache(maxsize=100_000)
def _title_words(title: str) -> frozenset[str]:
    """A title's distinctive words."""
    return frozenset(w for w in content_words(title) if w not in _TITLE_GENERIC)


def mentioned_papers(question: str, papers: list[Paper]) -> list[str]:
    """Ids of papers the question names: by alias, id, or most of its title's distinctive words."""
    q = question.lower()
    q_words = set(content_words(question))
    hits: list[tuple[int, str]] = []
    for p in papers:
        names = [*p.aliases, p.id] + ([p.id.replace("-", " ")] if "-" in p.id else [])
        positions = [m.start() for n in names if len(n) >= 2 for m in [_name_pattern(n).search(q)] if m]
        title_words = _title_words(p.title)
        if not positions and len(title_words) >= 2 and len(title_words & q_words) >= max(2, int(0.6 * len(title_words))):
            positions = [len(q)]
        if positions:
            hits.append((min(positions), p.id))
    return [pid for _, pid in sorted(hits)]


class HybridRetriever(BaseRetriever):
    """LangChain retriever: dense + BM25 fused by RRF; named papers guaranteed a place; per-paper cap."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Index
    settings: Settings
    mode: str = "hybrid"
    k: int = 6
    paper_ids: list[str] | None = None
    per_paper_cap: int = 3

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        """Fused, capped passages for the query, best first, each with score, rank and dense similarity."""
        return self.search(query)

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
        dense = self._dense(qvec, fetch, allowed)
        ranked: dict[str, float] = {}
        for rank, cid in enumerate(dense):
            ranked[cid] = ranked.get(cid, 0.0) + 1.0 / (self.settings.rrf_k + rank + 1)
        if self.mode == "hybrid":
            for rank, cid in enumerate(self._bm25(query, fetch, allowed, corpus)):
                ranked[cid] = ranked.get(cid, 0.0) + 1.0 / (self.settings.rrf_k + rank + 1)
        pos = corpus.pos
        order = sorted(ranked, key=lambda c: -ranked[c])
        # Dense mode is the plain-embedding baseline: no keyword ranking and no paper-name guarantee.
        if mentioned is None:  # callers that already know the named papers pass them: one scan per question
            mentioned = mentioned_papers(query, corpus.papers)
        named = [p for p in mentioned if allowed is None or p in allowed] \
            if self.mode == "hybrid" else []
        picked: list[str] = []
        for pid in named:  # a paper the question names gets its best passage in, ahead of the rest
            best = next((c for c in order if corpus.metas[pos[c]]["paper_id"] == pid), None)
            if best is None:
                best = next((c for c in corpus.ids if corpus.metas[pos[c]]["paper_id"] == pid), None)
                if best is not None:
                    ranked[best] = 0.0
            if best and best not in picked:
                picked.append(best)
        per_paper: dict[str, int] = {}
        for cid in picked:
            per_paper[corpus.metas[pos[cid]]["paper_id"]] = per_paper.get(corpus.metas[pos[cid]]["paper_id"], 0) + 1
        for cid in order:
            if len(picked) >= max(k, len(named)):
                break
            pid = corpus.metas[pos[cid]]["paper_id"]
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
            meta = dict(corpus.metas[pos[cid]])
            meta.update(chunk_id=cid, score=round(ranked.get(cid, 0.0), 6), rank=rank,
                        similarity=round(sims.get(cid, 0.0), 4), named=meta["paper_id"] in named)
            docs.append(Document(page_content=corpus.texts[pos[cid]], metadata=meta, id=cid))
        return docs

    def embed(self, query: str) -> np.ndarray:
        """The query vector (compute it once and pass it to search() for several searches)."""
        return np.asarray(self.index.embedder.embed_query(query), dtype=np.float32)

    def _dense(self, qvec: np.ndarray, fetch: int, allowed: set[str] | None) -> list[str]:
        """Chunk ids by cosine similarity from Chroma's HNSW index."""
        where = {"paper_id": {"$in": sorted(allowed)}} if allowed else None
        res = self.index.store.chunks.query(query_embeddings=[qvec.tolist()], n_results=fetch, where=where,
                                            include=[])
        return list(res["ids"][0])

    def _bm25(self, query: str, fetch: int, allowed: set[str] | None, corpus: Corpus) -> list[str]:
        """Chunk ids by BM25 score (zero-score chunks dropped)."""
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
                   end=int(d.metadata.get("end", 0))) for i, d in enumerate(docs, start=1)]
