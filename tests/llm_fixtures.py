"""Fixtures for real LLM tests: a llama.cpp server with SmolLM2 and an endpoint where nothing listens."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from rag.llm import LocalServer, default_gguf


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LocalServer]:
    """One llama-cpp-python server running SmolLM2-135M for the whole test session."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install -e '.[local]')")
    with LocalServer(default_gguf(), ctx=2048) as server:
        yield server


@pytest.fixture
def dead_llm_url() -> str:
    """An OpenAI-style base URL on a local port with nothing listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
