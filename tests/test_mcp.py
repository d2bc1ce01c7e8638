"""`paperchat mcp` through the official `mcp` SDK client: over stdio (the server spawned as a subprocess) and over
streamable HTTP with an API key; every tool, the abstract resources, and bad arguments as tool errors."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from conftest import ROOT, server_process
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from rag.answer import ABSTAIN_SENTENCE, Pipeline
from rag.proc import free_port

pytestmark = pytest.mark.slow
TOOLS = {"ask", "search_papers", "compare", "list_papers", "get_paper"}
CITE = re.compile(r"\[(\d+)\]")
KEY = "mcp-test-key"


def server_env(index_dir: Path, **extra: str) -> dict[str, str]:
    """The subprocess's environment: this checkout, the session index, offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return {**env, "PYTHONPATH": str(ROOT), "RAG_DATA_DIR": str(index_dir), "HF_HUB_OFFLINE": "1", **extra}


def stdio_server(index_dir: Path) -> StdioServerParameters:
    """`paperchat mcp` (as `python -m rag mcp`, so it is this checkout's code) over stdio."""
    return StdioServerParameters(command=sys.executable, args=["-m", "rag", "mcp"], cwd=str(ROOT),
                                 env=server_env(index_dir))


def run(server: Any, body: Callable[[Client], Awaitable[None]]) -> None:
    """Connect a real MCP client to the server and run body with it."""

    async def main() -> None:
        async with Client(server, read_timeout_seconds=120) as client:
            await body(client)

    anyio.run(main)


def payload(result: Any) -> Any:
    """A successful tool result's structured content (lists come wrapped as {"result": […]})."""
    assert not result.is_error, result.content
    data = result.structured_content
    assert data is not None
    if set(data) == {"result"}:  # a list: one text block per item, saying the same
        assert [json.loads(c.text) for c in result.content] == data["result"]
        return data["result"]
    assert json.loads(result.content[0].text) == data
    return data


def check_cited(answer: dict, abstracts: dict[str, str]) -> None:
    """Every [n] points at a source, and every source is a real passage of its paper."""
    numbers = {int(n) for n in CITE.findall(answer["answer"])}
    assert numbers and numbers <= {s["n"] for s in answer["sources"]}
    assert all(set(s["citations"]) <= numbers for s in answer["sentences"])
    for source in answer["sources"]:
        assert source["text"] in abstracts[source["paper_id"]] and source["chunk_id"].startswith(source["paper_id"])


def test_stdio_tools_and_resources(index_dir: Path, pipeline: Pipeline) -> None:
    abstracts = {p.id: p.abstract for p in pipeline.papers()}

    async def body(client: Client) -> None:
        assert client.server_info.name == "paperchat" and ABSTAIN_SENTENCE in (client.instructions or "")
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        assert ABSTAIN_SENTENCE in tools["ask"].description and "history" in tools["ask"].input_schema["properties"]
        assert all(t.output_schema for t in tools.values())

        papers = payload(await client.call_tool("list_papers", {}))
        assert [p["id"] for p in papers] == list(abstracts)
        paper = payload(await client.call_tool("get_paper", {"paper_id": "seesaw"}))
        assert paper["abstract"] == abstracts["seesaw"] and paper["aliases"] == ["Seesaw"]

        hits = payload(await client.call_tool("search_papers", {"query": "2-stage backpropagation", "k": 3}))
        assert [h["rank"] for h in hits] == [1, 2, 3] and hits[0]["paper_id"] == "2bp"
        assert all(h["text"] in abstracts[h["paper_id"]] for h in hits)

        answer = payload(await client.call_tool("ask", {"question": "By how much does Seesaw beat vLLM?"}))
        assert "1.78x" in answer["answer"] and not answer["abstained"]
        assert all(s["supported"] for s in answer["sentences"])
        check_cited(answer, abstracts)
        follow = payload(await client.call_tool("ask", {
            "question": "What throughput increase does it achieve?",
            "history": [{"role": "user", "content": "What is 2BP?"}]}))
        assert "2BP" in follow["standalone_question"] and "1.70x" in follow["answer"]
        scoped = payload(await client.call_tool("ask", {"question": "What is the throughput gain?",
                                                        "paper_ids": ["seesaw"]}))
        assert {s["paper_id"] for s in scoped["sources"]} == {"seesaw"}
        out = payload(await client.call_tool("ask", {"question": "What is the capital of France?"}))
        assert out["abstained"] and out["answer"].startswith(ABSTAIN_SENTENCE) and out["notice"]

        table = payload(await client.call_tool("compare", {"paper_ids": ["seesaw", "2bp"], "aspect": "throughput"}))
        lead, rows = table["answer"].split("\n\n", 1)  # each paper's sentence on the aspect, then the table
        assert lead.startswith("- **Seesaw**: ") and "\n- **2BP**: " in lead and "throughput" in lead, lead
        assert rows.startswith("| Paper |") and "**Seesaw**" in rows and "**2BP**" in rows
        check_cited(table, abstracts)

        resources = (await client.list_resources()).resources
        assert {str(r.uri) for r in resources} == {f"paper://{p}" for p in abstracts}
        read = await client.read_resource("paper://2bp")
        assert abstracts["2bp"] in read.contents[0].text
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["paper://{paper_id}"]
        with pytest.raises(MCPError, match="Unknown paper id"):
            await client.read_resource("paper://nope")

    run(stdio_server(index_dir), body)


BAD_CALLS = [
    ("ask", {"question": "   "}, "Please type a question."),
    ("ask", {"question": "x" * 5000}, "the limit is 2,000"),
    ("ask", {"question": "What is it?", "paper_ids": ["nope"]}, "Unknown paper id(s): nope"),
    ("ask", {"question": "What?", "history": [{"role": "user", "content": "x"}] * 21}, "history has 21 messages"),
    ("ask", {}, "question: Field required."),
    ("ask", {"question": 5}, "question: Input should be a valid string."),
    ("ask", {"question": "What is 2BP?", "history": "earlier"}, "history: Input should be a valid list."),
    ("get_paper", {"paper_id": "nope"}, "Unknown paper id(s): nope"),
    ("compare", {"paper_ids": ["seesaw"]}, "at least two different paper ids"),
    ("compare", {"paper_ids": ["seesaw", "nope"]}, "Unknown paper id(s): nope"),
    ("search_papers", {"query": "x", "k": 500}, "k: Input should be less than or equal to 50."),
    ("no_such_tool", {}, "Unknown tool"),
]  # (tool, arguments, what the error says): one server for the whole table


def test_bad_arguments_are_tool_errors(index_dir: Path) -> None:
    async def body(client: Client) -> None:
        for tool, arguments, message in BAD_CALLS:
            result = await client.call_tool(tool, arguments)
            text = result.content[0].text
            assert result.is_error and message in text and "Traceback" not in text, (tool, text)
            assert "\n" not in text and "pydantic" not in text, text  # one sentence, not the validator's report
        assert payload(await client.call_tool("list_papers", {}))  # the server is still serving

    run(stdio_server(index_dir), body)


@pytest.fixture(scope="module")
def http_server(index_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`paperchat mcp --http` on a free port with RAG_API_KEYS set; yields the endpoint URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    with server_process([sys.executable, "-m", "rag", "mcp", "--http", "--port", str(port)], url,
                        tmp_path_factory.mktemp("mcp-http") / "server.log", timeout=120, cwd=ROOT,
                        env=server_env(index_dir, RAG_API_KEYS=KEY)):
        yield url


def test_streamable_http_with_a_key(http_server: str, pipeline: Pipeline) -> None:
    abstracts = {p.id: p.abstract for p in pipeline.papers()}

    async def body(client: Client) -> None:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        answer = payload(await client.call_tool("ask", {"question": "What is 2BP?"}))
        check_cited(answer, abstracts)
        hits = payload(await client.call_tool("search_papers", {"query": "expert sharding", "k": 2}))
        assert len(hits) == 2
        result = await client.call_tool("get_paper", {"paper_id": "nope"})
        assert result.is_error and "Unknown paper id(s): nope" in result.content[0].text

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}, timeout=httpx2.Timeout(120))
    run(streamable_http_client(http_server, http_client=http), body)


def test_streamable_http_refuses_without_the_key(http_server: str) -> None:
    import httpx

    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = httpx.post(http_server, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers)
        assert response.status_code == 401 and "API key" in response.json()["error"]["message"]


def test_slow_asks_do_not_starve_the_listings(index_dir: Path, tmp_path: Path) -> None:
    """Issue 25, low row: over streamable HTTP, 40 slow `ask`s took every worker thread of the SDK and `list_papers`
    waited 58 s behind them. Answers now wait for their slots without a thread; the listings answer at once."""
    import time

    from fault_server import FaultServer, Trickle

    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    took: list[float] = []
    with FaultServer(default=Trickle(interval=1.0)) as llm:
        env = server_env(index_dir, RAG_ANSWERER="openai", RAG_LLM_BASE_URL=llm.url, RAG_ANSWER_TIMEOUT="30")
        with server_process([sys.executable, "-m", "rag", "mcp", "--http", "--port", str(port)], url,
                            tmp_path / "server.log", timeout=120, cwd=ROOT, env=env):

            async def body(client: Client) -> None:
                async with anyio.create_task_group() as group:
                    for _ in range(40):
                        group.start_soon(client.call_tool, "ask", {"question": "What is Seesaw?"})
                    with anyio.fail_after(60):
                        while llm.active < 4:
                            await anyio.sleep(0.1)
                    await anyio.sleep(2)  # all forty have arrived
                    t0 = time.perf_counter()
                    assert payload(await client.call_tool("list_papers", {}))
                    took.append(time.perf_counter() - t0)
                    group.cancel_scope.cancel()

            run(streamable_http_client(url, http_client=httpx2.AsyncClient(timeout=httpx2.Timeout(120))), body)
    print(f"list_papers beside 40 slow asks: {took[0]:.2f} s")
    assert took[0] < 5, took
