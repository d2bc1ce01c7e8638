"""`paperchat mcp`: the papers as an MCP server (official `mcp` SDK), over stdio or streamable HTTP.

Tools: search_papers, ask, compare, list_papers, get_paper; one resource per paper's abstract (paper://<id>) and the
template paper://{paper_id} for papers ingested later. Expected failures (an empty question, an unknown paper id, the
index unavailable, arguments that do not fit a tool's schema) come back as tool errors with one sentence; anything
else as the SDK's bare "Error executing tool" (the traceback goes to the log on stderr, never to the caller).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError, UnexpectedToolError
from mcp.server.mcpserver.resources import FunctionResource
from mcp.types import ToolAnnotations
from pydantic import Field, ValidationError

from rag import __version__
from rag.answer import ABSTAIN_SENTENCE, Pipeline, QuestionError
from rag.serve.auth import api_keys, require_key
from rag.serve.service import (CitedAnswer, PaperInfo, PaperService, PaperSummary, Passage, UnknownPaperError,
                               invalid)
from rag.serve.slots import AnswerSlots
from rag.settings import Settings
from rag.store import StoreError

log = logging.getLogger(__name__)

INSTRUCTIONS = f"""paperchat answers questions about a fixed set of research papers (their abstracts), every claim
cited to the passage it comes from. Use `ask` for a question you want answered; `search_papers` to see raw passages;
`compare` for a side-by-side table of two or more papers; `list_papers` / `get_paper` for ids, titles and abstracts.
In answers, [n] cites sources[n-1]. An answer starting "{ABSTAIN_SENTENCE}" means the papers do not answer the
question: say so to the user instead of answering from your own knowledge."""

ASK = f"""Answer a question about the indexed research papers, with citations.

Use this for any question about what the papers propose, measure, report or compare ("By how much does Seesaw beat
vLLM?", "What is 2BP?"). The reply's `answer` carries [n] markers: [n] cites `sources[n-1]` (paper id, title, chunk
id, passage text). `sentences` lists each answer sentence with its citations and `supported` (whether the cited
passage backs it). When `abstained` is true the answer starts "{ABSTAIN_SENTENCE}": the papers do not answer the
question, and `notice` says why; do not fill the gap from your own knowledge. Pass `history` (earlier user/assistant
messages, oldest first) for a follow-up such as "and how does it scale?", and `paper_ids` (from list_papers) to
restrict the answer to some papers."""

SEARCH = """Find the passages of the papers closest to a query, best first, each with its paper id, title, chunk id and
score. Use it to look at the raw evidence or to find which papers discuss a topic; use `ask` for an answer."""

COMPARE = """A cited comparison table of two or more papers (problem, approach, reported result, one row per paper,
every cell cited [n] to `sources`), then one sentence contrasting their reported figures. Give the paper ids from
list_papers; `aspect` (optional) says what to compare them on."""

LIST = """Every indexed paper: its id (use it in ask/compare/get_paper), title and the short names it goes by."""

GET = """One paper's title, short names and abstract (the whole text answers are drawn from). Unknown ids are an error;
list_papers gives the ids."""

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


class PaperServer(MCPServer):
    """The SDK's server, with arguments that do not fit a tool's schema reported in one sentence (the SDK sends
    pydantic's multi-line report with a link to its documentation)."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError) and not isinstance(exc, UnexpectedToolError):
                raise ToolError(f"Invalid arguments for {name}: {invalid(exc.__cause__)[1]}") from exc.__cause__
            raise


def create_server(pipeline: Pipeline) -> MCPServer:
    """The MCP server over a pipeline (lists the papers to register their abstracts as resources).

    The tools are async: answers wait for their answer slots (rag.serve.slots) without holding a thread, and a
    cancelled request stops its LLM call; the listings run at once in a thread of their own. As sync tools, 40 slow
    `ask`s took every worker thread of the SDK and `list_papers` waited 58 s behind them."""
    service = PaperService(pipeline)
    slots = AnswerSlots(pipeline.settings)
    server = PaperServer("paperchat", title="paperchat", version=__version__, instructions=INSTRUCTIONS,
                       log_level="WARNING")

    def run(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        """Call a service operation; the library's expected errors become tool errors with their sentence."""
        try:
            return fn(*args, **kwargs)
        except QuestionError as exc:
            raise ToolError(str(exc)) from None
        except StoreError:
            log.exception("index unavailable")
            raise ToolError("The paper index is unavailable right now.") from None

    @server.tool(description=ASK, annotations=READ_ONLY)
    async def ask(question: Annotated[str, Field(description="The question, in the user's words.")],
            paper_ids: Annotated[list[str] | None, Field(
                description="Only these papers (ids from list_papers).")] = None,
            history: Annotated[list[dict[str, str]] | None, Field(
                description='Earlier messages, oldest first: [{"role": "user"|"assistant", "content": "…"}].'
            )] = None,
            ) -> CitedAnswer:
        return await slots.run(None, lambda: run(service.ask, question, paper_ids=paper_ids, history=history))

    @server.tool(description=SEARCH, annotations=READ_ONLY)
    async def search_papers(query: Annotated[str, Field(description="What to look for.")],
                            k: Annotated[int, Field(ge=1, le=50, description="How many passages.")] = 6
                            ) -> list[Passage]:
        return await slots.run("extractive", lambda: run(service.search, query, k=k))

    @server.tool(description=COMPARE, annotations=READ_ONLY)
    async def compare(paper_ids: Annotated[list[str], Field(description="Two or more paper ids from list_papers.")],
                      aspect: Annotated[str | None, Field(description="What to compare them on (optional).")] = None,
                      ) -> CitedAnswer:
        return await slots.run(None, lambda: run(service.compare, paper_ids, aspect=aspect))

    @server.tool(description=LIST, annotations=READ_ONLY)
    async def list_papers() -> list[PaperSummary]:
        return await anyio.to_thread.run_sync(run, service.papers)

    @server.tool(description=GET, annotations=READ_ONLY)
    async def get_paper(paper_id: Annotated[str, Field(description="The paper's id from list_papers.")]) -> PaperInfo:
        return await anyio.to_thread.run_sync(run, service.paper, paper_id)

    def abstract(paper_id: str) -> str:
        try:
            paper = service.paper(paper_id)
        except UnknownPaperError as exc:
            raise ResourceNotFoundError(str(exc)) from None
        return f"# {paper.title}\n\n{paper.abstract}\n"

    for paper in run(service.papers):
        server.add_resource(FunctionResource.from_function(
            lambda pid=paper.id: abstract(pid), uri=f"paper://{paper.id}", name=paper.id, title=paper.title,
            description=f"The abstract of {paper.title}", mime_type="text/markdown"))
    server.resource("paper://{paper_id}", name="paper", mime_type="text/markdown",
                    description="The abstract of any indexed paper by id (also papers ingested after start).")(abstract)
    return server


def serve_http(server: MCPServer, settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Serve over streamable HTTP at http://HOST:PORT/mcp until interrupted (RAG_API_KEYS: a bearer key needed);
    PortInUseError, before anything is announced, when the port is taken."""
    import uvicorn

    from rag.proc import listen_socket

    host, port = host or settings.host, settings.mcp_port if port is None else port
    app = require_key(server.streamable_http_app(streamable_http_path="/mcp", host=host), api_keys(settings))
    sock = listen_socket(host, port)  # PortInUseError before the address is announced
    log.warning("paperchat MCP server at http://%s:%d/mcp", host, sock.getsockname()[1])
    with sock:
        config = uvicorn.Config(app, log_level="warning",
                                forwarded_allow_ips=settings.trusted_proxies)  # not uvicorn's default of 127.0.0.1
        anyio.run(uvicorn.Server(config).serve, [sock])
