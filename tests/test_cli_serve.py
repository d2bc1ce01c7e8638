"""`paperchat chat` and `paperchat mcp --http` on a port that is taken: one line naming the way out, no traceback,
no address announced, and the index not opened first (issue 27, item 8)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import run_cli

from rag.proc import PortInUseError, check_port
from rag.settings import Settings


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize(("args", "variable"), [(["chat"], "RAG_PORT"), (["mcp", "--http"], "RAG_MCP_PORT")])
@pytest.mark.parametrize("how", ["option", "variable"])
def test_a_taken_port_is_one_line(busy_port: int, tmp_path: Path, args: list[str], variable: str, how: str) -> None:
    data = tmp_path / "data"
    if how == "option":
        proc = run_cli(*args, "--port", str(busy_port), env={"RAG_DATA_DIR": str(data)})
    else:
        proc = run_cli(*args, env={"RAG_DATA_DIR": str(data), variable: str(busy_port)})
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    assert proc.stderr.splitlines() == [f"Error: port {busy_port} is in use: pass --port or set {variable}"]
    assert not data.exists()  # said before the index is built (a first build takes half a minute)


def test_check_port(busy_port: int) -> None:
    with pytest.raises(PortInUseError, match=f"port {busy_port} is in use"):
        check_port("127.0.0.1", busy_port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    check_port("127.0.0.1", free)


def test_mcp_http_announces_nothing_on_a_taken_port(busy_port: int, caplog: pytest.LogCaptureFixture) -> None:
    from mcp.server.mcpserver import MCPServer

    from rag.serve.mcp_server import serve_http

    caplog.set_level(logging.INFO)
    with pytest.raises(PortInUseError):
        serve_http(MCPServer("t"), Settings(), port=busy_port)
    assert "http://" not in caplog.text


@pytest.mark.slow
def test_chat_launch_says_port_taken_when_it_is_taken_late(busy_port: int, index_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Taken between the early check and Gradio's start: Gradio's OSError (naming GRADIO_SERVER_PORT) is ours."""
    from ui import app

    monkeypatch.setattr(app, "check_port", lambda host, port: None)
    with pytest.raises(PortInUseError) as info:
        app.launch(Settings(data_dir=index_dir, port=busy_port))
    assert info.value.port == busy_port and "GRADIO" not in str(info.value)
