"""Ingestion: chunk (tiktoken) -> embed passages and their sentences -> upsert into Chroma; idempotent, stale
chunks removed, every parse or storage failure one clear error."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, Field

from rag.chunking import chunk_paper, embedding_text
from rag.corpus import CorpusError, check_abstract_sizes, load_corpus, source_location
from rag.embeddings import get_embeddings
from rag.files import Batch, Problem, digest, read_batch
from rag.settings import Settings
from rag.store import (
    WRITE_ERRORS,
    PaperRecord,
    Store,
    StoreError,
    StoreLockedError,
    check_free_space,
    get_all,
    open_store,
    reset_store,
    sentence_id,
    storage_error,
    writer_lock,
)
from rag.text import split_sentences
from rag.types import Chunk, Paper
from rag.view import open_view, saved_manifest

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]
"""progress(done, total, label): passages stored (or found unchanged) so far, of total, and the current paper id."""


@dataclass
class IngestReport:
    """What one ingest run changed: passages, and papers added, updated or unchanged; files that failed.

    added: passages embedded by this run (a rerun after a crash embeds only what that run had not stored);
    sentences: sentence vectors stored by this run (a passage stored without them gets them on the rerun).
    """

    papers: int = 0
    added: int = 0
    removed: int = 0
    unchanged: int = 0
    sentences: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    paper_ids: list[str] = field(default_factory=list)
    new_papers: list[str] = field(default_factory=list)
    updated_papers: list[str] = field(default_factory=list)
    same_papers: list[str] = field(default_factory=list)
    files: int = 0
    failed: list[Problem] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)  # added, but without an attachment its entry named
    sources: dict[str, str] = field(default_factory=dict)  # paper id -> the file (and line) it was read from

    def outcomes(self) -> list[FileOutcome]:
        """What happened to each file: the papers it added, updated or left unchanged, or why it failed."""
        out: dict[str, FileOutcome] = {}
        status = {**{p: "added" for p in self.new_papers}, **{p: "updated" for p in self.updated_papers},
                  **{p: "unchanged" for p in self.same_papers}}
        for pid, source in self.sources.items():
            where, _, line = source.rpartition(":")
            name = where if line.isdigit() else source
            getattr(out.setdefault(name, FileOutcome(file=name)), status.get(pid, "unchanged")).append(pid)
        for problem in self.failed:
            out.setdefault(Path(problem.path).name, FileOutcome(file=Path(problem.path).name)).failed.append(
                f"line {problem.line}: {problem.reason}" if problem.line else problem.reason)
        for kind, problems in (("skipped", self.skipped), ("notes", self.notes)):
            for problem in problems:
                getattr(out.setdefault(Path(problem.path).name, FileOutcome(file=Path(problem.path).name)),
                        kind).append(f"line {problem.line}: {problem.reason}" if problem.line else problem.reason)
        return list(out.values())

    def summary(self) -> str:
        """One line for people: papers added / updated / unchanged, files failed, entries skipped."""
        parts = [f"{len(self.new_papers)} added", f"{len(self.updated_papers)} updated",
                 f"{len(self.same_papers)} unchanged"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        passages = (f"{self.added} passage(s) embedded, {self.sentences} sentence vector(s), {self.removed} stale "
                    f"removed, {self.unchanged} already stored")
        return f"Indexed {self.papers} paper(s): {', '.join(parts)} ({passages}; {self.seconds:.1f}s)."


class FileOutcome(BaseModel):
    """One file's part in an ingest: paper ids added, updated or unchanged; why it (or some entries) failed."""

    file: str
    added: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class PaperIdClashError(CorpusError):
    """A file gives a paper the id of a different paper already in the index."""


BATCH_PAPERS = 32  # papers written per round trip: embedding and Chroma calls are batched across them
EMBED_SLICE = 64  # passages embedded and stored per step: bounds memory and paces progress on a long abstract
EMBED_MIN_SLICE = 4  # ... and at least this many (each step is a Chroma write)
PROGRESS_STEPS = 20  # steps an ingest of few passages is cut into, so its progress moves (66 passages take ~20 s)
LOG_EVERY_S = 5.0  # without a progress callback, log progress at most this often


class _Tracker:
    """Counts passages done and reports to the callback, or to the log now and then when there is none."""

    def __init__(self, total: int, progress: Progress | None, done: int = 0) -> None:
        """done: passages already stored, counted at the start so a rate computed from the updates is the embedding's."""
        self.done, self.total, self.progress = done, total, progress
        self._logged = time.monotonic()
        if progress:
            progress(done, total, "")

    def advance(self, n: int, label: str) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total, label)
        elif time.monotonic() - self._logged >= LOG_EVERY_S:
            self._logged = time.monotonic()
            log.info("ingest: %d of %d passages stored (%s)", self.done, self.total, label)


def sentence_rows(chunks: list[Chunk]) -> list[tuple[str, dict, str]]:
    """(id, metadata, text) of every sentence of the chunks, spans relative to each chunk's text."""
    return [(sentence_id(c.id, a, b), {"chunk_id": c.id, "paper_id": c.paper_id, "start": a, "end": b}, c.text[a:b])
            for c in chunks for a, b in split_sentences(c.text)]


def _store_sentences(store: Store, embedder: Embeddings, chunks: list[Chunk]) -> tuple[int, float]:
    """Embed and upsert the sentences of chunks (each distinct sentence text embedded once); (count, seconds)."""
    rows = sentence_rows(chunks)
    if not rows or store.sentences is None:
        return 0, 0.0
    texts = list(dict.fromkeys(text for _, _, text in rows))
    t = time.perf_counter()
    vecs = dict(zip(texts, embedder.embed_documents(texts), strict=True))
    spent = time.perf_counter() - t
    store.sentences.upsert(ids=[r[0] for r in rows], embeddings=[vecs[r[2]] for r in rows],  # type: ignore[arg-type]
                           metadatas=[r[1] for r in rows])
    return len(rows), spent


def chunk_metadata(c: Chunk) -> dict[str, str | int]:
    """A passage's metadata in Chroma; page and section only for passages of a paged body."""
    meta: dict[str, str | int] = {"paper_id": c.paper_id, "title": c.title, "start": c.start, "end": c.end,
                                  "index": c.index}
    if c.page:
        meta.update(page=c.page, page_end=c.page_end, section=c.section, page_breaks=json.dumps(c.page_breaks))
    return meta


def _record(paper: Paper, old: PaperRecord | None, order: int, chunks: int) -> PaperRecord:
    """The record to store for a paper: its digest, first-added date and order kept from before."""
    stamp = old.paper.added if old and old.paper.added else datetime.now(UTC).isoformat(timespec="seconds")
    paper = paper.model_copy(update={"body": None, "digest": digest(paper), "added": stamp})
    return PaperRecord(paper=paper, order=old.order if old else order, chunks=chunks)


def ingest_papers(papers: list[Paper], settings: Settings, store: Store, progress: Progress | None = None) -> IngestReport:
    """Upsert papers' chunks and sentence vectors (embedding only new ones) and drop what their new text lost.

    Storage failures (disk full, read-only directory) become one StoreWriteError; what was stored before stays.
    """
    try:
        return _ingest_papers(papers, settings, store, progress)
    except WRITE_ERRORS as exc:
        raise storage_error(exc, store.where) from None


def _ingest_papers(papers: list[Paper], settings: Settings, store: Store, progress: Progress | None) -> IngestReport:
    t0 = time.perf_counter()
    embedder = get_embeddings(settings)
    report = IngestReport(papers=len(papers))
    order_base = store.papers.count()
    chunks = {p.id: chunk_paper(p, settings.chunk_tokens, settings.chunk_overlap) for p in papers}
    batches = [papers[b : b + BATCH_PAPERS] for b in range(0, len(papers), BATCH_PAPERS)]
    stored = [set(store.chunks.get(where={"paper_id": {"$in": [p.id for p in batch]}}, include=[])["ids"])
              for batch in batches]
    todo = sum(c.id not in have for batch, have in zip(batches, stored, strict=True) for p in batch for c in chunks[p.id])
    check_free_space(settings, todo)
    total = sum(len(c) for c in chunks.values())
    tracker = _Tracker(total, progress, done=total - todo)  # a rerun after a crash starts where that one stopped
    for b, batch, existing in zip(range(0, len(papers), BATCH_PAPERS), batches, stored, strict=True):
        ids = [p.id for p in batch]
        new = [c for p in batch for c in chunks[p.id] if c.id not in existing]
        keep = {c.id for p in batch for c in chunks[p.id]}
        # A passage stored before sentence vectors were kept (or by a run killed in between) gets them now.
        with_sentences = set() if store.sentences is None else {
            str(m["chunk_id"]) for m in store.sentences.get(where={"paper_id": {"$in": ids}}, include=["metadatas"])
            ["metadatas"] or []}
        backfill = [c for p in batch for c in chunks[p.id] if c.id in existing and c.id not in with_sentences
                    and split_sentences(c.text)]
        if backfill:
            log.info("storing sentence vectors of %d passages indexed before they were kept", len(backfill))
            n, spent = _store_sentences(store, embedder, backfill)
            report.sentences += n
            report.embed_seconds += spent
        # Order matters for crash safety: new chunks (then their sentences) first, then stale ones removed, then
        # the paper records; a run killed anywhere leaves a state the next run converges from.
        step = min(EMBED_SLICE, max(EMBED_MIN_SLICE, -(-todo // PROGRESS_STEPS)))  # a small paper: steps to show
        for s in range(0, len(new), step):
            part = new[s : s + step]
            t1 = time.perf_counter()
            vectors = embedder.embed_documents([embedding_text(c) for c in part])
            report.embed_seconds += time.perf_counter() - t1
            store.chunks.upsert(
                ids=[c.id for c in part], embeddings=vectors, documents=[c.text for c in part],  # type: ignore[arg-type]
                metadatas=[chunk_metadata(c) for c in part],
            )
            n, spent = _store_sentences(store, embedder, part)
            report.sentences += n
            report.embed_seconds += spent
            tracker.advance(len(part), part[-1].paper_id)
        stale = sorted(existing - keep)
        if stale:
            if store.sentences is not None:
                store.sentences.delete(where={"chunk_id": {"$in": stale}})
            store.chunks.delete(ids=stale)
        previous = store.papers.get(ids=ids, include=["documents", "metadatas"])
        before = {pid: PaperRecord.of(pid, doc or "", m) for pid, doc, m in
                  zip(previous["ids"], previous["documents"] or [], previous["metadatas"] or [], strict=True)}
        records = [_record(p, before.get(p.id), order_base + b + i, len(chunks[p.id])) for i, p in enumerate(batch)]
        changed = [r for r in records if before.get(r.paper.id) != r or new or stale]
        if changed:
            store.papers.upsert(
                ids=[r.paper.id for r in changed], documents=[r.paper.abstract for r in changed],
                embeddings=embedder.embed_documents(  # type: ignore[arg-type]
                    [f"{r.paper.title}. {', '.join(r.paper.aliases)}" for r in changed]),
                metadatas=[r.metadata() for r in changed],  # type: ignore[misc]
            )
        for r in records:
            old = before.get(r.paper.id)
            (report.new_papers if old is None else report.same_papers if old.paper.digest == r.paper.digest and
             old == r else report.updated_papers).append(r.paper.id)
        if not (changed or new or stale):
            report.unchanged += len(keep)
            report.paper_ids.extend(ids)
            continue
        store.bump_generation()  # running processes reload their view of the index on their next question
        report.added += len(new)
        report.removed += len(stale)
        report.unchanged += len(keep) - len(new)
        report.paper_ids.extend(ids)
    report.sources.update({p.id: p.source for p in papers})
    report.seconds = time.perf_counter() - t0
    log.info("ingested %d papers: +%d -%d =%d chunks, %d sentence vectors in %.2fs", len(papers), report.added,
             report.removed, report.unchanged, report.sentences, report.seconds)
    return report


def ingest_paths(paths: Iterable[Path], settings: Settings, reset: bool = False,
                 progress: Progress | None = None, replace: bool = False,
                 view_progress: Progress | None = None) -> IngestReport:
    """Read every file and folder given, then ingest the papers they hold (the bundled corpus when none).

    A file that cannot be read is reported in the result (IngestReport.failed, with its reason) while the rest
    of the batch is ingested; when it was the only one, its CorpusError is raised. With reset=True any bad file
    stops the run before the old index is deleted. A paper is the same paper as an indexed one when both its id
    and its title match (case and spacing aside) and it comes from the same file: it is then updated in place. A
    file that gives an indexed paper's id to a paper with another title, or changes an indexed paper that came from
    another file, is refused with PaperIdClashError, unless replace=True.
    """
    paths = list(paths)
    limits = (settings.min_abstract_chars, settings.max_abstract_chars)
    with writer_lock(settings):
        if reset:  # parse before deleting: a bad file must not cost the user the index
            batch = (read_batch(paths, abstract_chars=limits, settings=settings) if paths
                     else Batch(papers=_bundled(settings)))
            _raise_first_failure(batch, alone=False)
            _refuse_duplicate_ids(batch.papers)
            check_free_space(settings, sum(len(chunk_paper(p, settings.chunk_tokens, settings.chunk_overlap))
                                           for p in batch.papers), replacing=True)  # before the old index goes
            try:
                reset_store(settings)
            except WRITE_ERRORS as exc:
                raise storage_error(exc, settings.chroma_url or str(settings.data_dir), "reset") from None
            store = open_store(settings)
        else:
            store = open_store(settings)
            existing = store.list_papers()
            batch = read_batch(paths, existing, limits, settings) if paths else Batch(papers=_bundled(settings))
            _raise_first_failure(batch, alone=True)
            _refuse_duplicate_ids(batch.papers)
            if not replace:
                _refuse_replacing(batch.papers, existing)
        report = ingest_papers(batch.papers, settings, store, progress)
        prepare_view(store, settings, view_progress)  # view_progress: how that goes (a bar in the CLI)
    report.files, report.failed, report.skipped, report.notes = batch.files, batch.failed, batch.skipped, batch.notes
    return report


def prepare_view(store: Store, settings: Settings, progress: Progress | None = None) -> None:
    """Build the retrieval view of what was just written, so that the next process to open the index loads it instead
    of deriving it; a failure here loses nothing (the view is built when the index is next opened)."""
    try:
        open_view(store, settings, store.generation(), progress)
    except (OSError, StoreError) as exc:
        log.warning("the retrieval view was not saved (%s); it is built when the index is next opened", exc)


def _raise_first_failure(batch: Batch, alone: bool) -> None:
    """Raise the first failed file's error: always (alone=False), or when nothing else was read (alone=True)."""
    if batch.failed and (not alone or not batch.papers):
        first = batch.failed[0]
        raise CorpusError(first.path, first.line, first.reason)


def remove_papers(paper_ids: list[str], settings: Settings) -> int:
    """Delete papers from the index by id (all must exist); returns the passages removed."""
    with writer_lock(settings):
        store = open_store(settings)
        known = {p.id for p in store.list_papers()}
        unknown = [pid for pid in paper_ids if pid not in known]
        if unknown:
            raise NotIndexedError(f"no indexed paper has the id {', '.join(map(repr, unknown))}; "
                                    f"'paperchat papers' lists them")
        try:
            return store.remove_papers(list(dict.fromkeys(paper_ids)))
        except WRITE_ERRORS as exc:
            raise storage_error(exc, store.where) from None


class NotIndexedError(ValueError):
    """A paper id that is not in the index."""


def _bundled(settings: Settings) -> list[Paper]:
    """The configured corpus, held to the same abstract sizes as any other file."""
    papers = load_corpus(settings.corpus)
    check_abstract_sizes(papers, settings.min_abstract_chars, settings.max_abstract_chars)
    return papers


def _refuse_duplicate_ids(papers: list[Paper]) -> None:
    """Two papers under one id would silently replace each other: name the second one's file and line."""
    seen: dict[str, str] = {}
    for paper in papers:
        if paper.id in seen:
            raise CorpusError(*source_location(paper),
                              f"paper id {paper.id!r} is already used by {seen[paper.id]}; give each paper its own id")
        seen[paper.id] = paper.source or repr(paper.title)


def _same_title(a: str, b: str) -> bool:
    """Titles equal up to case and whitespace."""
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def _same_file(old: Paper, new: Paper) -> bool:
    """Whether a paper is read from the file an indexed one came from (by file name for records made before the
    index kept which file)."""
    if old.origin:
        return old.origin == new.origin
    return source_location(old)[0] == source_location(new)[0]


def _refuse_replacing(papers: list[Paper], existing: list[Paper]) -> None:
    """A file must not silently replace an indexed paper: by giving its id to a paper with another title, or by
    changing a paper that came from another file (the same title is no proof that it is the same paper's file)."""
    indexed = {p.id: p for p in existing}
    for paper in papers:
        old = indexed.get(paper.id)
        if old is None:
            continue
        if not _same_title(old.title, paper.title):
            raise PaperIdClashError(
                *source_location(paper),
                f"paper id {paper.id!r} is already used by the indexed paper {old.title[:80]!r}, but this file's "
                f"paper is {paper.title[:80]!r}. Give it another id, or run 'paperchat ingest --replace' to replace "
                f"the indexed paper")
        if not _same_file(old, paper) and digest(paper) != old.digest:
            raise PaperIdClashError(
                *source_location(paper),
                f"the indexed paper {old.title[:80]!r} (id {paper.id!r}) came from {source_location(old)[0]}, and "
                f"this file would change it. Edit that file instead, or run 'paperchat ingest --replace' to replace "
                f"the indexed paper")


def ensure_index(settings: Settings, progress: Progress | None = None, view_progress: Progress | None = None) -> Store:
    """Open the index, building it from the corpus on first use (or finishing an interrupted build); progress and
    view_progress are told how a build's embedding and its search view go."""
    store = open_store(settings)
    try:
        if store.papers.count() == 0 or (not settings.chroma_url and _build_unfinished(settings)):
            log.info("building the index from %s", settings.corpus)
            with writer_lock(settings):
                _mark_build(settings, started=True)
                ingest_papers(load_corpus(settings.corpus), settings, store, progress)
                _mark_build(settings, started=False)
                prepare_view(store, settings, view_progress)
        elif store.sentences is not None and _lacks_sentences(settings, store):
            backfill_sentences(settings, store)
    except WRITE_ERRORS as exc:
        raise storage_error(exc, store.where) from None
    return store


def _lacks_sentences(settings: Settings, store: Store) -> bool:
    """Whether the index has passages but no sentence vectors: the saved view's manifest says, when there is one
    (touching the sentence collection would make Chroma load all of it into memory)."""
    saved = saved_manifest(settings, store.generation())
    if saved is not None:
        return saved.count > 0 and saved.sentences == 0
    return store.sentences is not None and store.sentences.count() == 0 and store.chunks.count() > 0


BACKFILL_MAX_CHUNKS = 20_000  # above this, the one-off backfill is left to re-ingesting the papers


def stored_chunks(store: Store) -> list[Chunk]:
    """Every passage of the index as a Chunk, read back from Chroma."""
    got = get_all(store.chunks, ["documents", "metadatas"])
    return [Chunk(id=cid, paper_id=str(m["paper_id"]), title=str(m.get("title", "")), text=doc or "",
                  start=int(m.get("start", 0)), end=int(m.get("end", 0)), index=int(m.get("index", 0)))
            for cid, doc, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)]


def backfill_sentences(settings: Settings, store: Store) -> int:
    """Store the sentence vectors an index built before they were kept lacks (once); returns sentences stored."""
    if store.sentences is None:
        return 0
    count = store.chunks.count()
    if count > BACKFILL_MAX_CHUNKS:
        log.warning("the index at %s has no stored sentence vectors (built before they were kept); answers embed "
                    "sentences as they need them until its papers are ingested again ('paperchat ingest FILE…' "
                    "stores them for the papers in FILE)", store.where)
        return 0
    try:
        with writer_lock(settings):
            have = {str(m["chunk_id"]) for m in get_all(store.sentences, ["metadatas"])["metadatas"]}
            todo = [c for c in stored_chunks(store) if c.id not in have]
            if not todo:
                return 0
            log.info("storing the sentence vectors of %d passages once (the index at %s predates them)", len(todo),
                     store.where)
            embedder = get_embeddings(settings)
            stored = sum(_store_sentences(store, embedder, todo[s : s + EMBED_SLICE])[0]
                         for s in range(0, len(todo), EMBED_SLICE))
            store.bump_generation()  # the saved view has none of them: the next one copies them
    except StoreLockedError:  # another process is writing: it or a later start stores them
        return 0
    log.info("stored %d sentence vectors", stored)
    return stored


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
