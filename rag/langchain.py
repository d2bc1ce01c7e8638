"""paperchat's parts as LangChain components, from one import.

    from rag.langchain import Pipeline, create_embeddings, create_retriever
    pipe = Pipeline()                                  # the index is opened (built from the corpus) on first use
    create_retriever(pipe).invoke("What is 2BP?", k=3) # PaperchatRetriever: a BaseRetriever (k, paper_ids at call time)
    create_embeddings(pipe.settings)                   # PaperchatEmbeddings: an Embeddings (sync and async)
    chroma_client(pipe.settings)                       # for langchain_chroma.Chroma(client=...) over the same index
    pipe.runnable().invoke({"question": "What is 2BP?", "history": []})   # a Runnable: Question in, Answer out

Each passes LangChain's standard tests (tests/test_langchain.py).
"""

from __future__ import annotations

from chromadb.api import ClientAPI
from langchain_core.embeddings import Embeddings

from rag.answer.models import Question, Turn
from rag.answer.pipeline import Pipeline
from rag.embeddings import MiniLMEmbeddings as PaperchatEmbeddings
from rag.embeddings import get_embeddings
from rag.retrieve import HybridRetriever as PaperchatRetriever
from rag.retrieve import make_retriever
from rag.settings import Settings
from rag.store import open_client
from rag.types import Answer

__all__ = ["Answer", "PaperchatEmbeddings", "PaperchatRetriever", "Pipeline", "Question", "Turn",
           "chroma_client", "create_embeddings", "create_retriever"]


def create_retriever(pipeline: Pipeline, *, k: int | None = None, paper_ids: list[str] | None = None,
                     mode: str | None = None) -> PaperchatRetriever:
    """The hybrid retriever over a pipeline's index (k, paper_ids and mode default to its settings)."""
    return make_retriever(pipeline.index, pipeline.settings, paper_ids=paper_ids, mode=mode, k=k)


def create_embeddings(settings: Settings | None = None) -> Embeddings:
    """The embedding model the index is built with (RAG_EMBEDDINGS: MiniLM by default), shared per process."""
    return get_embeddings(settings or Settings())


def chroma_client(settings: Settings | None = None) -> ClientAPI:
    """A Chroma client on paperchat's index (embedded directory or server), for langchain_chroma.Chroma(client=...).

    In the process that runs paperchat, an embedded index must be opened with paperchat's client settings (Chroma
    refuses a second client on one directory with other settings); another process may use persist_directory.
    """
    return open_client(settings or Settings())
