"""paperchat's parts as LangChain components, from one import.

    from rag.langchain import Pipeline, create_embeddings, create_retriever
    pipe = Pipeline()                                  # the index is opened (built from the corpus) on first use
    create_retriever(pipe).invoke("What is 2BP?", k=3) # PaperchatRetriever: a BaseRetriever (k, paper_ids at call time)
    create_embeddings(pipe.settings)                   # PaperchatEmbeddings: an Embeddings (sync and async)
    chroma_client(pipe.settings)                       # for langchain_chroma.Chroma(client=...) over the same index
    pipe.runnable().invoke({"question": "What is 2BP?", "history": []})   # a Runnable: Question in, Answer out
    ChatPaperchat(base_url="http://127.0.0.1:7860/v1", api_key="KEY")     # a served paperchat as a chat model

Each passes LangChain's standard tests (tests/test_langchain.py).
"""

from __future__ import annotations

from typing import Any

from chromadb.api import ClientAPI
from langchain_core.embeddings import Embeddings
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import Field

from rag.answer.models import Question, Turn
from rag.answer.pipeline import Pipeline
from rag.embeddings import MiniLMEmbeddings as PaperchatEmbeddings
from rag.embeddings import get_embeddings
from rag.retrieve import HybridRetriever as PaperchatRetriever
from rag.retrieve import make_retriever
from rag.settings import Settings
from rag.store import open_client
from rag.types import Answer

__all__ = ["Answer", "ChatPaperchat", "PaperchatEmbeddings", "PaperchatRetriever", "Pipeline", "Question", "Turn",
           "chroma_client", "create_embeddings", "create_retriever"]

EXTRA = "paperchat"  # rag.serve.openai_compat.EXTRA: the reply's field with the sources (not imported: it pulls the
# answer path into a client that only talks HTTP)


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


class ChatPaperchat(ChatOpenAI):
    """ChatOpenAI for a paperchat server's /v1 (`paperchat chat`): the reply's `paperchat` field (sources, checked
    sentences, abstained, notice: the shape of `paperchat ask --json`) lands in the message's
    response_metadata["paperchat"], invoked or streamed; token usage is streamed too.

    ChatOpenAI itself keeps only OpenAI's own response fields (langchain-openai documents that it drops a provider's
    extras), so with it the sources are only the reply text's References list.
    """

    model_name: str = Field(default="paperchat", alias="model")
    stream_usage: bool | None = True

    def _create_chat_result(self, response: Any, generation_info: dict | None = None) -> ChatResult:
        result = super()._create_chat_result(response, generation_info)
        fields = response if isinstance(response, dict) else (getattr(response, "model_extra", None) or {})
        if EXTRA in fields and result.generations:
            result.generations[0].message.response_metadata[EXTRA] = fields[EXTRA]
        return result

    def _convert_chunk_to_generation_chunk(self, chunk: dict, default_chunk_class: type,
                                           base_generation_info: dict | None) -> ChatGenerationChunk | None:
        generation = super()._convert_chunk_to_generation_chunk(chunk, default_chunk_class, base_generation_info)
        if generation is not None and EXTRA in chunk:  # the last chunk, with finish_reason "stop"
            generation.message.response_metadata[EXTRA] = chunk[EXTRA]
        return generation
