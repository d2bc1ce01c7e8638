"""Chroma: the client (embedded or server), the passage and paper collections, and the writer lock."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import chromadb
import httpx
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings as ChromaSettings

from rag.embeddings import get_embeddings
from rag.settings import Settings
from rag.types import Paper

log = logging.getLogger(__name__)


HNSW_EF_SEARCH = 1000  # Chroma's default 100 gave recall@5 0.82 against exact search at 100k chunks; 1000 gave 0.97
PAGE = 5000  # one get() of more than 32,766 records exceeds SQLite's variable limit inside Chroma


def get_all(collection: Collection, include: list[str]) -> dict[str, list]:
    """Every record of a collection, read in pages (a single get() fails past 32,766 records)."""
    out: dict[str, list] = {"ids": [], **{k: [] for k in include}}
    while True:
        got = collection.get(include=include, limit=PAGE, offset=len(out["ids"]))  # type: ignore[arg-type]
        out["ids"] += got["ids"]
        for key in include:
            out[key] += list(got[key] or [])  # type: ignore[literal-required]
        if len(got["ids"]) < PAGE:
            return out


class StoreError(RuntimeError):
    """The index cannot be opened or used; the message says what to do."""


class EmbeddingMismatchError(StoreError):
    """The index was built with another embedding model than the one configured."""


class StoreLockedError(StoreError):
    """Another process is writing the embedded index."""


def open_client(settings: Settings) -> ClientAPI:
    """An embedded PersistentClient under data_dir, or an HttpClient when chroma_url is set."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url if "//" in settings.chroma_url else f"http://{settings.chroma_url}")
        try:
            client = chromadb.HttpClient(host=url.hostname or "localhost", port=url.port or 8000,
                                         ssl=url.scheme == "https", settings=chroma_settings)
            client.heartbeat()
        except Exception as exc:  # chromadb raises several types for an unreachable server
            raise StoreError(f"cannot reach the Chroma server at {settings.chroma_url}: {exc}") from None
        return client
    path = Path(settings.data_dir) / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    try:
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    except Exception as exc:
        raise StoreError(f"cannot open the index at {path}: {exc}. Move it aside and run 'paperchat ingest'.") from None


@dataclass
class Store:
    """The two collections of one index: passages (chunks) and papers (one record per paper)."""

    client: ClientAPI
    chunks: Collection
    papers: Collection
    model: str
    where: str

    def list_papers(self) -> list[Paper]:
        """Every indexed paper, in ingestion order."""
        got = get_all(self.papers, ["documents", "metadatas"])
        rows = sorted(zip(got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True),
                      key=lambda row: (int(row[2].get("order", 0)), row[0]))
        return [Paper(id=pid, title=str(meta["title"]), abstract=doc or "", aliases=json.loads(str(meta["aliases"])),
                      source=str(meta.get("source", ""))) for pid, doc, meta in rows]


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
    chunks = _collection(client, settings.collection, embedder.name, embedder.dim, where)
    papers = _collection(client, f"{settings.collection}-papers", embedder.name, embedder.dim, where)
    if settings.chroma_url:
        chunks, papers = _ServerCollection(chunks, where), _ServerCollection(papers, where)  # type: ignore[assignment]
    return Store(client=client, chunks=chunks, papers=papers, model=embedder.name, where=where)


def reset_store(settings: Settings) -> None:
    """Delete both collections (used by 'ingest --reset' and to rebuild after a model change)."""
    client = open_client(settings)
    for name in (settings.collection, f"{settings.collection}-papers"):
        with contextlib.suppress(Exception):  # a missing collection is already reset
            client.delete_collection(name)


@contextlib.contextmanager
def writer_lock(settings: Settings) -> Iterator[None]:
    """Hold the embedded index's write lock; a second writer gets a clear error instead of corrupting it."""
    if settings.chroma_url:  # the server serialises writes itself
        yield
        return
    path = Path(settings.data_dir)
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / "write.lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreLockedError(
                f"another paperchat process is writing the index at {path}. Wait for it to finish, or run a "
                f"Chroma server ('chroma run') and set RAG_CHROMA_URL so several processes can share one index."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)
