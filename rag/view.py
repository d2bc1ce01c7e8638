"""The retrieval view: what is derived from one generation of the index, built once and kept on disk beside it.

A view folder holds the BM25 index (bm25s, memory-mapped), the chunk ids and each chunk's paper, every chunk's text
and metadata as JSON records read by row (pread), the papers and their bodies, and the corpus tables
(vocabulary, IDF, names). It is named after the passage collection's id and generation stamp and checked against
both and the passage count before use: a view that does not match the index is never used, it is rebuilt (once,
with progress reported). Opening a view reads a few small files; nothing is rebuilt and no text is held in memory.

Where: ``settings.view_dir`` (default ``$RAG_DATA_DIR/views``). App instances that share a Chroma server may share
one view folder (a network disk) so that one of them builds each generation's view; each builds its own otherwise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import bm25s
import numpy as np
from pydantic import BaseModel

from rag.names import PaperList
from rag.settings import Settings
from rag.store import Store, pages
from rag.terms import DocumentFrequency, bm25_tokens, name_terms, vocabulary
from rag.text import words
from rag.types import Body, Paper

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets itself to DEBUG on import

VIEW_FORMAT = 3  # bump when what a view holds changes: older views are rebuilt
KEEP = 2  # views kept per collection (the newest); a process still reading an older one keeps its files open
Progress = Callable[[int, int, str], None]


class ViewError(RuntimeError):
    """A view folder is missing, incomplete or does not match the index (it is rebuilt, never used)."""


class ViewManifest(BaseModel):
    """What a view was built from: checked against the index before the view is used."""

    format: int
    collection: str  # the passage collection's Chroma id
    name: str  # the collection's name and where it lives, so a reset collection's old views can be pruned
    generation: str
    count: int
    papers: int
    sentences: int = 0
    seconds: float = 0.0


class _File:
    """A read-only file kept open and read with os.pread (positionless: safe across threads). Random reads through a
    memory map of a file the page cache holds map whole large folios into the process at each touch (2,000 random
    sentence rows of a 100k-passage view mapped 505 MB); pread copies only the bytes asked for. The descriptor keeps
    a pruned view's file readable to the process that has it open."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY)

    def read(self, offset: int, size: int) -> bytes:
        """size bytes at offset."""
        return os.pread(self._fd, size, offset)

    def __del__(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.close(self._fd)


class Records:
    """JSON records in one file with an offsets array beside it; a row is read from the file when asked."""

    def __init__(self, path: Path) -> None:
        self.offsets = np.load(path.with_name(path.name + ".idx.npy"))
        self._file = _File(path)

    @staticmethod
    def write(path: Path, records: Iterable[Any]) -> int:
        """Write records; returns how many."""
        offsets = [0]
        with path.open("wb") as f:
            for record in records:
                data = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
                f.write(data)
                offsets.append(offsets[-1] + len(data))
        np.save(path.with_name(path.name + ".idx.npy"), np.asarray(offsets, dtype=np.int64))
        return len(offsets) - 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> Any:
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return json.loads(self._file.read(start, end - start))


class Rows:
    """The rows of a saved 2-D .npy matrix (C order), read from the file by row numbers: view.vectors[[3, 9]]."""

    def __init__(self, path: Path) -> None:
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            shape, fortran, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                     else np.lib.format.read_array_header_2_0(f))
            self._start = f.tell()
        if fortran or len(shape) != 2:
            raise ValueError(f"{path.name} is not a C-order matrix")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self._row = self.shape[1] * self.dtype.itemsize
        self._file = _File(path)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: Any) -> np.ndarray:
        """The rows asked for, in that order (one read per run of consecutive rows)."""
        want = np.asarray(rows, dtype=np.int64).reshape(-1)
        if want.size and (want.min() < 0 or want.max() >= self.shape[0]):
            raise IndexError(f"row out of range 0..{self.shape[0] - 1}")
        distinct, where = np.unique(want, return_inverse=True)
        runs = np.split(distinct, np.flatnonzero(np.diff(distinct) != 1) + 1) if distinct.size else []
        blocks = [np.frombuffer(self._file.read(self._start + int(run[0]) * self._row, len(run) * self._row),
                                dtype=self.dtype).reshape(-1, self.shape[1]) for run in runs]
        if not blocks:
            return np.empty((0, self.shape[1]), dtype=self.dtype)
        return np.concatenate(blocks)[where.reshape(-1)]


@dataclass
class View:
    """One generation of the index, as retrieval and the answer stages read it."""

    manifest: ViewManifest
    ids: list[str]
    paper_of: np.ndarray  # row -> index into papers (-1: a passage whose paper record is not written yet)
    first_row: np.ndarray  # paper index -> its first row (-1: none)
    papers: PaperList
    bm25: bm25s.BM25 | None
    vocab: frozenset[str]
    idf: dict[str, float]
    names: frozenset[str]
    rows: Records
    bodies: Records
    sentences: Rows | None = None  # stored sentence vectors, rows named in each passage record
    vectors: Rows | None = None  # each passage's stored vector, by row
    folder: Path = field(default_factory=Path)

    @property
    def generation(self) -> str:
        """The index generation this view was built from."""
        return self.manifest.generation

    @property
    def count(self) -> int:
        """Passages in the view."""
        return len(self.ids)

    @cached_property
    def pos(self) -> dict[str, int]:
        """Row of each chunk id."""
        return {cid: i for i, cid in enumerate(self.ids)}

    @cached_property
    def paper_pos(self) -> dict[str, int]:
        """Index of each paper id in papers."""
        return {p.id: i for i, p in enumerate(self.papers)}

    def row(self, i: int) -> tuple[str, dict]:
        """(text, metadata) of the passage in row i."""
        text, meta, _ = self.rows[i]
        return text, meta

    def sentence_rows(self, i: int) -> dict[tuple[int, int], int]:
        """Row in sentences of each stored sentence vector of passage row i, by the sentence's span in its text."""
        return {(a, b): r for a, b, r in self.rows[i][2]}

    def paper_rows(self, paper_ids: Iterable[str]) -> np.ndarray:
        """A boolean mask over rows: the passages of these papers."""
        wanted = [self.paper_pos[p] for p in paper_ids if p in self.paper_pos]
        return np.isin(self.paper_of, np.asarray(wanted, dtype=np.int32))

    def first_passage(self, paper_id: str) -> int | None:
        """The first row of a paper, if it has one."""
        i = self.paper_pos.get(paper_id)
        row = int(self.first_row[i]) if i is not None else -1
        return row if row >= 0 else None

    def hot_files(self) -> list[Path]:
        """The view's files that questions read at random, in the order most questions first touch them."""
        names = ["bm25/data.csc.index.npy", "bm25/indices.csc.index.npy", "vectors.npy", "rows.jsonl",
                 "sentences.npy"]
        return [self.folder / name for name in names if (self.folder / name).is_file()]

    def prefetch(self) -> threading.Thread:
        """Read the hot files into the page cache from a background thread. After a reboot, or when other work has
        evicted them, the first question otherwise waits on random reads from disk (0.1 s at 10k passages, up to a
        second at 100k). Page cache is the kernel's to drop again, not this process's memory (the thread reads
        through one 4 MB buffer)."""
        thread = threading.Thread(target=_readahead, args=(self.hot_files(),), name="view-prefetch", daemon=True)
        thread.start()
        return thread

    def with_body(self, paper: Paper) -> Paper:
        """The paper with its full text beyond the abstract attached, when it has one."""
        i = self.paper_pos.get(paper.id)
        text = self.bodies[i] if i is not None else ""
        return paper.model_copy(update={"body": Body(text=text)}) if text else paper


def advise(files: Iterable[Path], advice: Literal["WILLNEED", "DONTNEED"]) -> None:
    """posix_fadvise on each whole file: WILLNEED starts reading it into the page cache, DONTNEED drops its clean
    pages from it. A no-op where posix_fadvise is missing; a file gone meanwhile is skipped."""
    if not hasattr(os, "posix_fadvise"):
        return
    flag = getattr(os, f"POSIX_FADV_{advice}")
    for path in files:
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, flag)
            finally:
                os.close(fd)


def read_through(files: Iterable[Path]) -> None:
    """Read each file once, through one buffer, so that its pages are in the page cache; a file gone is skipped."""
    buf = bytearray(1 << 22)
    for path in files:
        with contextlib.suppress(OSError), path.open("rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def _readahead(files: list[Path]) -> None:
    """Ask the kernel for all the files (WILLNEED), then read them through in order, so that the first ones are in
    the page cache soon and all of them in the end."""
    advise(files, "WILLNEED")
    read_through(files)


def view_root(settings: Settings) -> Path:
    """Where views are kept."""
    return Path(settings.view_dir) if settings.view_dir else Path(settings.data_dir) / "views"


def _folder_name(stamp: str) -> str:
    """A view folder's name: the collection id and the generation stamp."""
    collection, _, generation = stamp.partition(":")
    return f"{collection}-{generation or 'initial'}"


def _manifest(folder: Path, stamp: str) -> ViewManifest:
    """A view folder's manifest, checked to be of this version's format and of generation stamp."""
    try:
        manifest = ViewManifest.model_validate_json((folder / "manifest.json").read_text())
    except FileNotFoundError:
        raise ViewError("no view of this generation yet") from None
    except (OSError, ValueError) as exc:
        raise ViewError(f"its manifest cannot be read ({exc})") from None
    if manifest.format != VIEW_FORMAT:
        raise ViewError(f"it was written in format {manifest.format}; this version reads {VIEW_FORMAT}")
    if manifest.generation != stamp:
        raise ViewError(f"it is of generation {manifest.generation!r}, the index is at {stamp!r}")
    return manifest


def saved_manifest(settings: Settings, stamp: str) -> ViewManifest | None:
    """The manifest of the saved view of generation stamp, if there is one (reads one small file, not the index)."""
    try:
        return _manifest(view_root(settings) / _folder_name(stamp), stamp)
    except ViewError:
        return None


def open_view(store: Store, settings: Settings, stamp: str, progress: Progress | None = None) -> View:
    """The view of the index at generation stamp: loaded when a matching one is on disk, else built and saved."""
    folder = view_root(settings) / _folder_name(stamp)
    count = store.chunks.count()
    try:
        return _load(folder, stamp, count)
    except ViewError as exc:
        if folder.exists():
            log.warning("rebuilding the retrieval view at %s: %s", folder, exc)
    return _build(store, settings, stamp, folder, count, progress)


def _load(folder: Path, stamp: str, count: int) -> View:
    """A saved view, checked against the index's generation and passage count."""
    manifest = _manifest(folder, stamp)
    if manifest.count != count:
        raise ViewError(f"it holds {manifest.count} passages, the index {count}")
    try:
        tables = json.loads((folder / "tables.json").read_text())
        papers = [Paper.model_validate(p) for p in json.loads((folder / "papers.json").read_text())]
        ids = json.loads((folder / "ids.json").read_text())
        paper_of = np.load(folder / "paper_of.npy", mmap_mode="r")
        first_row = np.load(folder / "first_row.npy")
        bm25 = bm25s.BM25.load(str(folder / "bm25"), mmap=True, show_progress=False) if ids else None
        rows, bodies = Records(folder / "rows.jsonl"), Records(folder / "bodies.jsonl")
        sentences = Rows(folder / "sentences.npy") if manifest.sentences else None
        vectors = Rows(folder / "vectors.npy") if ids else None
    except (OSError, ValueError, KeyError) as exc:
        raise ViewError(f"a file of it cannot be read ({type(exc).__name__}: {exc})") from None
    if (len(ids) != count or len(rows) != count or len(paper_of) != count or len(bodies) != len(papers)
            or (sentences is not None and len(sentences) != manifest.sentences)
            or (vectors is not None and len(vectors) != count)):
        raise ViewError("its files disagree with its manifest")
    view = View(manifest=manifest, ids=ids, paper_of=paper_of, first_row=first_row, papers=PaperList(papers),
                bm25=bm25, vocab=frozenset(tables["vocab"]), idf=tables["idf"], names=frozenset(tables["names"]),
                rows=rows, bodies=bodies, sentences=sentences, vectors=vectors, folder=folder)
    view.papers = PaperList(papers, full=view.with_body)
    return view


def _chunks(store: Store, count: int, progress: Progress | None) -> Iterable[tuple[str, str, dict, np.ndarray]]:
    """Every passage of the index (id, text, metadata, vector), read in pages."""
    done = 0
    for got in pages(store.chunks, ["documents", "metadatas", "embeddings"]):
        vecs = np.asarray(got["embeddings"], dtype=np.float32) if got["ids"] else np.zeros((0, 0), np.float32)
        for cid, doc, meta, vec in zip(got["ids"], got["documents"] or [], got["metadatas"] or [], vecs, strict=True):
            yield cid, doc or "", dict(meta), vec
        done += len(got["ids"])
        if progress:
            progress(done, count, "passages")


def _sentences(store: Store, path: Path, progress: Progress) -> tuple[dict[str, list[list[int]]], int]:
    """Copy the stored sentence vectors into a memory-mapped array at path; returns each passage's [start, end, row]
    spans and how many were copied (Chroma loads a collection whole when it is first touched: the chat process then
    never touches this one)."""
    if store.sentences is None:
        return {}, 0
    total = store.sentences.count()
    spans: dict[str, list[list[int]]] = {}
    out: np.ndarray | None = None
    done = 0
    for got in pages(store.sentences, ["embeddings", "metadatas"]):
        k = min(len(got["ids"]), total - done)
        if not k:
            break
        vecs = np.asarray(got["embeddings"][:k], dtype=np.float32)  # type: ignore[index]
        if out is None:
            out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(total, vecs.shape[1]))
        out[done : done + k] = vecs
        for j, m in enumerate((got["metadatas"] or [])[:k]):
            spans.setdefault(str(m["chunk_id"]), []).append([int(m["start"]), int(m["end"]), done + j])
        done += k
        progress(done, total, "sentence vectors")
    if out is not None:
        out.flush()
        if done < total:  # sentences went while they were read: keep what came
            del out
            kept = np.array(np.load(path, mmap_mode="r")[:done])
            np.save(path, kept)
    return spans, done


def _build(store: Store, settings: Settings, stamp: str, folder: Path, count: int,
           progress: Progress | None) -> View:
    """Derive the view of the count passages from the index and save it (built in a scratch folder and renamed into
    place)."""
    t0 = time.perf_counter()
    if progress is None:
        progress = _LogProgress(f"building the retrieval view of {count} passages")
    papers = store.list_papers()
    paper_pos = {p.id: i for i, p in enumerate(papers)}
    root = view_root(settings)
    scratch = root / f".building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True)
    try:
        spans, n_sentences = _sentences(store, scratch / "sentences.npy", progress)
        ids: list[str] = []
        paper_of: list[int] = []
        tokens: list[list[str]] = []
        df = DocumentFrequency()
        passage_words: set[str] = set()
        parts: dict[str, list[tuple[int, str]]] = {}

        vectors: list[np.ndarray] = []

        def rows() -> Iterable[list[Any]]:
            for cid, text, meta, vec in _chunks(store, count, progress):
                if len(ids) >= count:  # written while the view is read: the next generation's view has them
                    return
                if not vectors:
                    vectors.append(np.lib.format.open_memmap(scratch / "vectors.npy", mode="w+", dtype=np.float32,
                                                             shape=(count, len(vec))))
                vectors[0][len(ids)] = vec
                ids.append(cid)
                paper_of.append(paper_pos.get(str(meta.get("paper_id")), -1))
                full = f"{meta.get('title', '')} {text}"
                tokens.append(bm25_tokens(full))
                df.add(full)
                passage_words.update(words(full))
                if meta.get("page"):
                    parts.setdefault(str(meta["paper_id"]), []).append((int(meta.get("index", 0)), text))
                yield [text, meta, spans.pop(cid, [])]

        Records.write(scratch / "rows.jsonl", rows())
        if vectors:
            vectors[0].flush()
            kept = np.array(vectors[0][: len(ids)]) if len(ids) < count else None
            vectors.clear()
            if kept is not None:  # passages went while the view was read
                np.save(scratch / "vectors.npy", kept)
        vocab = vocabulary(passage_words, (a for p in papers for a in p.aliases))
        bodies = [" ".join(t for _, t in sorted(parts[p.id])) if p.id in parts else "" for p in papers]
        Records.write(scratch / "bodies.jsonl", bodies)
        names = name_terms([f"{p.title} {p.abstract} {b}" if b else f"{p.title} {p.abstract}"
                            for p, b in zip(papers, bodies, strict=True)])
        parts.clear()
        if ids:
            progress(count, count, "words")
            bm25 = bm25s.BM25()
            bm25.index(tokens, show_progress=False)
            bm25.save(str(scratch / "bm25"), show_progress=False)
            tokens.clear()
        first_row = np.full(len(papers), -1, dtype=np.int32)
        for row, i in reversed(list(enumerate(paper_of))):
            if i >= 0:
                first_row[i] = row
        np.save(scratch / "paper_of.npy", np.asarray(paper_of, dtype=np.int32))
        np.save(scratch / "first_row.npy", first_row)
        (scratch / "ids.json").write_text(json.dumps(ids))
        (scratch / "papers.json").write_text(json.dumps([p.model_dump(mode="json", exclude={"body"}) for p in papers],
                                                        ensure_ascii=False))
        (scratch / "tables.json").write_text(json.dumps({"vocab": sorted(vocab), "idf": df.idf(),
                                                         "names": sorted(names)}, ensure_ascii=False))
        manifest = ViewManifest(format=VIEW_FORMAT, collection=stamp.partition(":")[0], name=_name(store),
                                generation=stamp, count=len(ids), papers=len(papers), sentences=n_sentences,
                                seconds=round(time.perf_counter() - t0, 3))
        (scratch / "manifest.json").write_text(manifest.model_dump_json(indent=1))
        if len(ids) != count:  # a write landed while the view was read: it is of no generation, do not keep it
            log.info("the index changed while its view was built; using it once without saving it")
            return _load(scratch, manifest.generation, manifest.count)  # its memory maps outlive the files
        _place(scratch, folder, manifest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _prune(root, manifest)
    log.info("built the retrieval view of %d passages in %.1f s (%s)", len(ids), manifest.seconds, folder)
    return _load(folder, stamp, len(ids))


def _place(scratch: Path, folder: Path, manifest: ViewManifest) -> None:
    """Move a built view into place: over a broken or stale one; a valid one another process placed first wins."""
    try:
        os.rename(scratch, folder)
        return
    except OSError:
        pass
    try:
        _load(folder, manifest.generation, manifest.count)
    except ViewError:
        shutil.rmtree(folder, ignore_errors=True)
        os.rename(scratch, folder)


def _name(store: Store) -> str:
    """The collection's name and location."""
    return f"{store.chunks.name}@{store.where}"


def _prune(root: Path, current: ViewManifest) -> None:
    """Remove older views of the same collection (keeping the newest KEEP) and views of a collection that was reset."""
    mine: list[tuple[float, Path]] = []
    for folder in root.iterdir():
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        try:
            m = ViewManifest.model_validate_json((folder / "manifest.json").read_text())
        except (OSError, ValueError):
            continue
        if m.name != current.name:
            continue
        if m.collection != current.collection:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                mine.append((folder.stat().st_mtime, folder))
    for _, folder in sorted(mine, reverse=True)[KEEP:]:
        shutil.rmtree(folder, ignore_errors=True)


class _LogProgress:
    """Progress to the log, at most every few seconds, with the rate and time left."""

    def __init__(self, title: str, every: float = 5.0) -> None:
        self.title, self.every = title, every
        self.t0 = self.last = time.monotonic()
        log.info("%s", title)

    def __call__(self, done: int, total: int, label: str) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        rate = done / max(now - self.t0, 1e-9)
        left = (total - done) / rate if rate else 0.0
        log.info("%s: %s, %d of %d (%.0f/s, about %.0f s left)", self.title, label, done, total, rate, left)
