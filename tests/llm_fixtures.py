"""Fixtures for real LLM tests: llama.cpp servers with SmolLM2 (chat; embeddings) and an endpoint where nothing
listens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from rag.llm.local import LocalServer, default_gguf
from rag.proc import free_port


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LocalServer]:
    """One llama-cpp-python server running SmolLM2-135M for the whole test session."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install -e '.[local]')")
    with LocalServer(default_gguf(), ctx=2048) as server:
        yield server


@pytest.fixture(scope="session")
def embedding_server() -> Iterator[LocalServer]:
    """llama-cpp-python's server with /v1/embeddings on SmolLM2-135M (one vector per token: clients pool them)."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install -e '.[local]')")
    with LocalServer(default_gguf(), ctx=1024, alias="smollm2", embedding=True) as server:
        yield server


@pytest.fixture
def dead_llm_url() -> str:
    """An OpenAI-style base URL on a local port with nothing listening."""
    return f"http://127.0.0.1:{free_port()}/v1"


class FakeChatModel(BaseChatModel):
    """An in-process chat model with a queue of replies (streamed word by word), recording every prompt it got."""

    replies: list[str]
    prompts: list[list[BaseMessage]] = []
    fail: bool = False

    @property
    def _llm_type(self) -> str:
        return "fake-queue"

    def _next(self, messages: list[BaseMessage]) -> str:
        self.prompts.append(list(messages))
        if self.fail:
            raise ConnectionError("the fake model is down")
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self._next(messages)))])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        words = self._next(messages).split(" ")
        for i, word in enumerate(words):
            last = i == len(words) - 1
            yield ChatGenerationChunk(message=AIMessageChunk(
                content=word + ("" if last else " "),
                response_metadata={"finish_reason": "stop"} if last else {}))
