"""Ingestion: chunk (tiktoken) -> embed -> upsert into Chroma; idempotent, stale chunks removed."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rag.chunking import chunk_paper, embedding_text
from rag.corpus import CorpusError, load_corpus, read_papers
from rag.embeddings import get_embeddings
from rag.settings import Settings
from rag.store import Store, open_store, reset_store, writer_lock
from rag.types import Paper

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


@dataclass
class IngestReport:
    """What one ingest run changed."""

    papers: int = 0
    added: int = 0
    removed: int = 0
    unchanged: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    paper_ids: list[str] = field(default_factory=list)


BATCH_PAPERS = 32  # papers written per round trip: embedding and Chroma calls are batched across them


def ingest_papers(papers: list[Paper], settings: Settings, store: Store, progress: Progress | None = None) -> IngestReport:
    """Upsert papers' chunks (embedding only new ones) and drop chunks their new text no longer has."""
    t0 = time.perf_counter()
    embedder = get_embeddings(settings)
    report = IngestReport(papers=len(papers))
    order_base = store.papers.count()
    for b in range(0, len(papers), BATCH_PAPERS):
        batch = papers[b : b + BATCH_PAPERS]
        ids = [p.id for p in batch]
        chunks = {p.id: chunk_paper(p, settings.chunk_tokens, settings.chunk_overlap) for p in batch}
        got = store.chunks.get(where={"paper_id": {"$in": ids}}, include=["metadatas"])
        existing = set(got["ids"])
        new = [c for p in batch for c in chunks[p.id] if c.id not in existing]
        # Order matters for crash safety: new chunks first, then stale ones removed, then the paper records;
        # a run killed anywhere leaves a state the next run converges from.
        if new:
            t1 = time.perf_counter()
            vectors = embedder.embed_documents([embedding_text(c) for c in new])
            report.embed_seconds += time.perf_counter() - t1
            store.chunks.upsert(
                ids=[c.id for c in new], embeddings=vectors, documents=[c.text for c in new],  # type: ignore[arg-type]
                metadatas=[{"paper_id": c.paper_id, "title": c.title, "start": c.start, "end": c.end,
                            "index": c.index} for c in new],
            )
        keep = {c.id for p in batch for c in chunks[p.id]}
        stale = sorted(existing - keep)
        if stale:
            store.chunks.delete(ids=stale)
        previous = store.papers.get(ids=ids, include=["metadatas"])
        orders = {pid: int(m.get("order", 0)) for pid, m in zip(previous["ids"], previous["metadatas"] or [], strict=True)}
        store.papers.upsert(
            ids=ids, documents=[p.abstract for p in batch],
            embeddings=embedder.embed_documents([f"{p.title}. {', '.join(p.aliases)}" for p in batch]),  # type: ignore[arg-type]
            metadatas=[{"title": p.title, "aliases": json.dumps(p.aliases), "source": p.source,
                        "order": orders.get(p.id, order_base + b + i), "chunks": len(chunks[p.id])}
                       for i, p in enumerate(batch)],
        )
        report.added += len(new)
        report.removed += len(stale)
        report.unchanged += len(keep) - len(new)
        report.paper_ids.extend(ids)
        if progress:
            progress(min(b + BATCH_PAPERS, len(papers)), len(papers), batch[-1].id)
    report.seconds = time.perf_counter() - t0
    log.info("ingested %d papers: +%d -%d =%d chunks in %.2fs", len(papers), report.added, report.removed,
             report.unchanged, report.seconds)
    return report


def ingest_paths(paths: Iterable[Path], settings: Settings, reset: bool = False,
                 progress: Progress | None = None) -> IngestReport:
    """Parse every file first (a bad file stops the run before the index is touched), then ingest them."""
    paths = list(paths)
    with writer_lock(settings):
        if reset:  # parse before deleting: a bad file must not cost the user the index
            papers = read_papers(paths) if paths else load_corpus(settings.corpus)
            _refuse_duplicate_ids(papers)
            reset_store(settings)
            store = open_store(settings)
        else:
            store = open_store(settings)
            papers = read_papers(paths, existing=store.list_papers()) if paths else load_corpus(settings.corpus)
            _refuse_duplicate_ids(papers)
        return ingest_papers(papers, settings, store, progress)


def _refuse_duplicate_ids(papers: list[Paper]) -> None:
    """Two papers under one id would silently replace each other: name the second one's file and line."""
    seen: dict[str, str] = {}
    for paper in papers:
        if paper.id in seen:
            where, _, line = paper.source.rpartition(":")
            raise CorpusError(where or paper.source or "<input>", int(line) if line.isdigit() else 0,
                              f"paper id {paper.id!r} is already used by {seen[paper.id]}; give each paper its own id")
        seen[paper.id] = paper.source or repr(paper.title)


def ensure_index(settings: Settings, progress: Progress | None = None) -> Store:
    """Open the index, building it from the corpus on first use (or finishing an interrupted build)."""
    store = open_store(settings)
    if store.papers.count() == 0 or (not settings.chroma_url and _build_unfinished(settings)):
        log.info("building the index from %s", settings.corpus)
        with writer_lock(settings):
            _mark_build(settings, started=True)
            ingest_papers(load_corpus(settings.corpus), settings, store, progress)
            _mark_build(settings, started=False)
    return store


def _build_marker(settings: Settings) -> Path:
    """A file present while a first build runs: if it survives, the build was interrupted."""
    return Path(settings.data_dir) / "build.incomplete"


def _build_unfinished(settings: Settings) -> bool:
    """True when a previous first build was killed part-way."""
    return _build_marker(settings).exists()


def _mark_build(settings: Settings, started: bool) -> None:
    """Create or remove the interrupted-build marker (embedded index only)."""
    if settings.chroma_url:
        return
    marker = _build_marker(settings)
    if started:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    else:
        marker.unlink(missing_ok=True)
