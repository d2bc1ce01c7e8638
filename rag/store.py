"""Chroma: the client (embedded or server), the passage, paper and sentence collections, the writer lock, and the
generation stamp that tells a running process another one changed the index."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import logging
import os
import shutil
import sqlite3
import uuid
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import chromadb
import httpx
from chromadb.api import ClientAPI
from chromadb.api.client import SharedSystemClient
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings as ChromaSettings
from pydantic import BaseModel

from rag.embeddings import get_embeddings
from rag.settings import Settings
from rag.types import Paper

log = logging.getLogger(__name__)


HNSW_EF_SEARCH = 1000  # Chroma's default 100 gave recall@5 0.82 against exact search at 100k chunks; 1000 gave 0.97
PAGE = 5000  # one get() of more than 32,766 records exceeds SQLite's variable limit inside Chroma


def pages(collection: Collection, include: list[str]) -> Iterator[Any]:
    """Every record of a collection, one get() result per page (a single get() fails past 32,766 records)."""
    done = 0
    while True:
        got = collection.get(include=include, limit=PAGE, offset=done)  # type: ignore[arg-type]
        yield got
        done += len(got["ids"])
        if len(got["ids"]) < PAGE:
            return


def get_all(collection: Collection, include: list[str]) -> dict[str, list]:
    """Every record of a collection, read in pages."""
    out: dict[str, list] = {"ids": [], **{k: [] for k in include}}
    for got in pages(collection, include):
        out["ids"] += got["ids"]
        for key in include:
            value = got[key]
            out[key] += [] if value is None else list(value)  # embeddings come as an array: no `or []`
    return out


class StoreError(RuntimeError):
    """The index cannot be opened or used; the message says what to do."""


class EmbeddingMismatchError(StoreError):
    """The index was built with another embedding model than the one configured."""


class StoreLockedError(StoreError):
    """Another process is writing the embedded index."""


class StoreWriteError(StoreError):
    """A write to the index failed (disk full, directory not writable, …); the message says which and what to do."""


GENERATION_KEY = "generation"  # in the passage collection's metadata; a new value after every change to the index

_DISK_FULL = ("disk is full", "no space left", "disk full")
_READ_ONLY = ("readonly", "read-only", "read only", "permission denied", "not writable")


def _os_errno(exc: BaseException) -> int | None:
    """The errno of exc or of any exception in its cause/context chain."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno:
            return seen.errno
        seen = seen.__cause__ or seen.__context__
    return None


def storage_error(exc: BaseException, where: str, doing: str = "write to") -> StoreError:
    """A one-line StoreError for a failed index write, with advice that is true for its cause."""
    if isinstance(exc, StoreError):
        return exc
    text, code = str(exc).lower(), _os_errno(exc)
    detail = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    if code == errno.ENOSPC or any(s in text for s in _DISK_FULL):
        then = "run the ingest again; the papers indexed before are kept" if doing == "write to" else \
            "try again; the index is kept (Chroma needs a little free space even to open it)"
        return StoreWriteError(f"cannot {doing} the index at {where}: the disk is full ({detail}). Free some space, "
                               f"then {then}.")
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) or any(s in text for s in _READ_ONLY):
        return StoreWriteError(
            f"cannot {doing} the index at {where}: the directory is not writable ({detail}). Make it writable, or "
            f"point RAG_DATA_DIR at a writable directory.")
    return StoreWriteError(f"cannot {doing} the index at {where} ({detail}).")


PASSAGE_BYTES = 64 * 1024  # disk an embedded index needs per new passage with its sentences (measured ~44 KB)
DISK_RESERVE = 2 * 1024 * 1024  # left free so Chroma can still open the index after an ingest


def check_free_space(settings: Settings, passages: int, replacing: bool = False) -> None:
    """Refuse, before writing, an ingest the embedded index's disk has no room for (a full disk stops even reads).

    replacing=True counts the space of the index about to be deleted (--reset) as free.
    """
    if settings.chroma_url or passages <= 0:
        return
    path = Path(settings.data_dir)
    path.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path).free
    if replacing:
        free += sum(f.stat().st_size for f in (path / "chroma").rglob("*") if f.is_file())
    need = passages * PASSAGE_BYTES + DISK_RESERVE
    if free < need:
        raise StoreWriteError(
            f"not enough free space for the index at {path / 'chroma'}: {passages} new passage(s) need about "
            f"{need / 2**20:.1f} MB, {free / 2**20:.1f} MB is free. Free some space (or point RAG_DATA_DIR at a "
            f"larger disk), then run the ingest again; nothing was written for these papers.")


WRITE_ERRORS: tuple[type[BaseException], ...] = (OSError, sqlite3.Error, chromadb.errors.ChromaError)


def open_client(settings: Settings) -> ClientAPI:
    """An embedded PersistentClient under data_dir, or an HttpClient when chroma_url is set."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    server = settings.chroma_server()
    if server is not None:
        host, port, https = server
        try:
            client = chromadb.HttpClient(host=host, port=port, ssl=https, settings=chroma_settings)
            client.heartbeat()
        except Exception as exc:  # chromadb raises several types for an unreachable server
            raise StoreError(_server_failure(settings.chroma_url or "", server, exc)) from None
        return client
    path = Path(settings.data_dir) / "chroma"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, str(path), "create") from None
    if not _writable(path):
        raise StoreWriteError(f"cannot open the index at {path}: the directory is not writable. Make it writable, "
                              f"or point RAG_DATA_DIR at a writable directory.")
    try:
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    except Exception as exc:
        if _os_errno(exc) is not None or any(s in str(exc).lower() for s in _DISK_FULL + _READ_ONLY):
            raise storage_error(exc, str(path), "open") from None
        raise StoreError(f"cannot open the index at {path}: {exc}. Move it aside and run 'paperchat ingest'.") from None


def _server_failure(url: str, server: tuple[str, int, bool], exc: Exception) -> str:
    """Why the Chroma server at url cannot be used, in one sentence: not reachable, or reachable but not a Chroma
    server (an ordinary web server's error page is summed up by its status, not quoted)."""
    host, port, https = server
    heartbeat = f"{'https' if https else 'http'}://{host}:{port}/api/v2/heartbeat"
    try:
        reply = httpx.get(heartbeat, timeout=5.0)
    except httpx.HTTPError:
        return f"cannot reach the Chroma server at {url}: nothing answers there. Start it (chroma run) or fix RAG_CHROMA_URL."
    if reply.status_code != 200 or "heartbeat" not in reply.text:
        return (f"the server at {url} is not a Chroma server: it answered HTTP {reply.status_code} to "
                f"/api/v2/heartbeat. Point RAG_CHROMA_URL at the address `chroma run` prints.")
    detail = " ".join(str(exc).split())
    return f"cannot use the Chroma server at {url}: {detail[:200]}{'…' if len(detail) > 200 else ''}"


def _writable(path: Path) -> bool:
    """Whether files can be created in path (a real probe: root passes access() checks on read-only mounts)."""
    probe = path / f".write-probe-{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError:
        return False
    return True


@dataclass
class Store:
    """The collections of one index: passages (chunks), papers (one record per paper) and passage sentences."""

    client: ClientAPI
    chunks: Collection
    papers: Collection
    model: str
    where: str
    sentences: Collection | None = None

    def generation(self) -> str:
        """A stamp of the index's content, read fresh from Chroma: it changes with every ingest, delete or reset,
        whichever process made it ('' when the passage collection does not exist right now)."""
        try:
            col = self.client.get_collection(self.chunks.name)
        except (httpx.TransportError, ConnectionError) as exc:
            raise StoreError(f"lost the connection to the Chroma server at {self.where} ({type(exc).__name__}: "
                             f"{exc}). Check that it is running, then try again.") from None
        except chromadb.errors.NotFoundError:  # another process is resetting the index
            return ""
        return f"{col.id}:{(col.metadata or {}).get(GENERATION_KEY, '')}"

    def bump_generation(self) -> None:
        """Give the index a new generation stamp (after a write), keeping the collection's other metadata."""
        col = self.client.get_collection(self.chunks.name)
        meta = {k: v for k, v in (col.metadata or {}).items() if not k.startswith("hnsw:")}
        meta[GENERATION_KEY] = f"{os.getpid()}-{uuid.uuid4().hex}"  # the writer's pid: see written_elsewhere()
        self.chunks.modify(metadata=meta)

    def records(self) -> list[PaperRecord]:
        """Every indexed paper with its index bookkeeping, in ingestion order."""
        got = get_all(self.papers, ["documents", "metadatas"])
        rows = sorted(zip(got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True),
                      key=lambda row: (int(row[2].get("order", 0)), row[0]))
        return [PaperRecord.of(pid, doc or "", meta) for pid, doc, meta in rows]

    def list_papers(self) -> list[Paper]:
        """Every indexed paper, in ingestion order."""
        return [r.paper for r in self.records()]

    def remove_papers(self, paper_ids: list[str]) -> int:
        """Delete papers' passages, sentence vectors and records; returns how many passages went."""
        if not paper_ids:
            return 0
        gone = self.chunks.get(where={"paper_id": {"$in": paper_ids}}, include=[])["ids"]
        if self.sentences is not None:
            self.sentences.delete(where={"paper_id": {"$in": paper_ids}})
        if gone:
            self.chunks.delete(ids=gone)
        self.papers.delete(ids=paper_ids)
        self.bump_generation()
        return len(gone)


class PaperRecord(BaseModel):
    """A paper as the index holds it: the paper (no body), its ingestion order and passage count."""

    paper: Paper
    order: int = 0
    chunks: int = 0

    @classmethod
    def of(cls, pid: str, abstract: str, meta: Mapping[str, Any]) -> PaperRecord:
        """Read a paper record's document and metadata (records written before metadata was kept read too)."""
        year = int(meta.get("year") or 0)
        paper = Paper(id=pid, title=str(meta["title"]), abstract=abstract, aliases=json.loads(str(meta["aliases"])),
                      source=str(meta.get("source", "")), origin=str(meta.get("origin", "")),
                      kind=str(meta.get("kind", "")),
                      authors=json.loads(str(meta.get("authors") or "[]")), year=year or None,
                      **{k: str(meta.get(k, "")) for k in _TEXT_FIELDS}, pages=int(meta.get("pages") or 0))
        return cls(paper=paper, order=int(meta.get("order", 0)), chunks=int(meta.get("chunks", 0)))

    def metadata(self) -> dict[str, str | int]:
        """The paper record's metadata (Chroma takes str, int, float and bool values only: no None, no lists)."""
        p = self.paper
        return {"title": p.title, "aliases": json.dumps(p.aliases), "source": p.source, "origin": p.origin,
                "kind": p.kind,
                "authors": json.dumps(p.authors, ensure_ascii=False), "year": p.year or 0, "pages": p.pages,
                **{k: getattr(p, k) for k in _TEXT_FIELDS}, "order": self.order, "chunks": self.chunks}


_TEXT_FIELDS = ("venue", "doi", "arxiv", "url", "added", "digest")


def _collection(client: ClientAPI, name: str, model: str, dim: int, where: str) -> Collection:
    """Get or create a cosine collection recording its embedding model, refusing a different model."""
    col = client.get_or_create_collection(
        name, metadata={"embedding_model": model, "dim": dim},
        configuration={"hnsw": {"space": "cosine", "ef_search": HNSW_EF_SEARCH}}, embedding_function=None,
    )
    meta = col.metadata or {}
    built_with, built_dim = meta.get("embedding_model"), meta.get("dim")
    if built_with != model or (dim and built_dim and int(built_dim) != dim):
        raise EmbeddingMismatchError(
            f"the index at {where} was built with embedding model {built_with!r} (dim {built_dim}), but "
            f"RAG_EMBEDDINGS selects {model!r} (dim {dim}). Set RAG_EMBEDDINGS back, or rebuild the index "
            f"with 'paperchat ingest --reset'."
        )
    with warnings.catch_warnings():  # Chroma warns about its own legacy config format when reading it back
        warnings.simplefilter("ignore", DeprecationWarning)
        hnsw = (col.configuration or {}).get("hnsw") or {}
    if hnsw.get("ef_search", HNSW_EF_SEARCH) < HNSW_EF_SEARCH:  # an index made before the setting: raise it
        col.modify(configuration={"hnsw": {"ef_search": HNSW_EF_SEARCH}})
    return col


def _check_stored_dim(chunks: Collection, embedder: Any, where: str) -> None:
    """An embedder that learns its dimension from its server (dim 0) learns the index's; any other must match it."""
    got = chunks.get(limit=1, include=["embeddings"])
    vectors = got.get("embeddings")
    if vectors is None or not len(vectors):
        return
    stored = len(vectors[0])
    if not embedder.dim:
        embedder.dim = stored
    elif embedder.dim != stored:
        raise EmbeddingMismatchError(
            f"the index at {where} holds vectors of dimension {stored}, but RAG_EMBEDDINGS {embedder.name!r} gives "
            f"{embedder.dim}. Serve the model the index was built with, or rebuild it with 'paperchat ingest "
            f"--reset'.")


class _ServerCollection:
    """A Chroma-server collection whose lost-connection errors become a StoreError naming the server.

    The HTTP client reconnects by itself once the server is back, so nothing needs reopening; without this
    a server that went away mid-session surfaced as a bare httpx.ConnectError from deep inside retrieval.
    """

    def __init__(self, collection: Collection, url: str) -> None:
        self._collection, self._url = collection, url

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._collection, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except (httpx.TransportError, ConnectionError) as exc:
                raise StoreError(f"lost the connection to the Chroma server at {self._url} ({type(exc).__name__}: "
                                 f"{exc}). Check that it is running, then try again.") from None

        return call


def open_store(settings: Settings) -> Store:
    """Open (creating if needed) the collections for the configured embedding model."""
    embedder = get_embeddings(settings)
    where = settings.chroma_url or str(Path(settings.data_dir) / "chroma")
    client = open_client(settings)
    try:
        chunks = _collection(client, settings.collection, embedder.name, embedder.dim, where)
        papers = _collection(client, f"{settings.collection}-papers", embedder.name, embedder.dim, where)
        sentences = _collection(client, sentences_name(settings.collection), embedder.name, embedder.dim, where)
    except WRITE_ERRORS as exc:  # creating a collection writes: a full disk or read-only directory shows here
        raise storage_error(exc, where, "open") from None
    if settings.chroma_url:
        chunks, papers, sentences = (  # type: ignore[assignment]
            _ServerCollection(c, where) for c in (chunks, papers, sentences))
    _check_stored_dim(chunks, embedder, where)
    return Store(client=client, chunks=chunks, papers=papers, model=embedder.name, where=where, sentences=sentences)


def written_elsewhere(stamp: str) -> bool:
    """Whether the last write behind a generation stamp came from another process (an embedded client caches the
    index in memory and does not see such writes until it is reopened)."""
    pid = stamp.partition(":")[2].partition("-")[0]
    return pid.isdigit() and int(pid) != os.getpid()


def reopen_store(settings: Settings) -> Store:
    """Open the index afresh: for the embedded index a new Chroma system, which reads what other processes wrote.

    Clients opened before keep working on their own (older) system; only clients opened from now on share the new
    one. A server client needs nothing of this: the server serves every client the same index.
    """
    if not settings.chroma_url:
        SharedSystemClient.clear_system_cache()
    return open_store(settings)


def sentences_name(collection: str) -> str:
    """The sentence-vector collection of a passage collection."""
    return f"{collection}-sentences"


def sentence_id(chunk_id: str, start: int, end: int) -> str:
    """Id of one stored sentence vector: its chunk and its span within the chunk's text."""
    return f"{chunk_id}:{start}-{end}"


def reset_store(settings: Settings) -> None:
    """Delete every collection (used by 'ingest --reset' and to rebuild after a model change)."""
    client = open_client(settings)
    for name in (settings.collection, f"{settings.collection}-papers", sentences_name(settings.collection)):
        with contextlib.suppress(Exception):  # a missing collection is already reset
            client.delete_collection(name)


@contextlib.contextmanager
def writer_lock(settings: Settings) -> Iterator[None]:
    """Hold the embedded index's write lock; a second writer gets a clear error instead of corrupting it."""
    if settings.chroma_url:  # the server serialises writes itself
        yield
        return
    path = Path(settings.data_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / "write.lock", os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as exc:
        raise storage_error(exc, str(path), "lock") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreLockedError(
                f"another paperchat process is writing the index at {path}. Wait for it to finish, or run a "
                f"Chroma server ('chroma run') and set RAG_CHROMA_URL so several processes can share one index."
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError as exc:
            raise storage_error(exc, str(path), "lock") from None
        yield
    finally:
        os.close(fd)
