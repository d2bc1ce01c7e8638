"""HTTP routes beside the Gradio app, on its FastAPI: the OpenAI-compatible /v1 and the REST /api for scripts.

The logic lives in rag.serve (service, openai_compat); this module only speaks HTTP. Auth (RAG_API_KEYS, else the
chat login) and the body limit are enforced by ui.guard in front of every route. Answers computed here take the answer
slots the chat uses too (rag.serve.slots: extractive and LLM answers in pools of their own); a client that hangs up
stops its answer's LLM call.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from rag.answer import Pipeline, QuestionError
from rag.serve import openai_compat as oa
from rag.serve.service import CitedAnswer, PaperInfo, PaperService, PaperSummary, Passage, UnknownPaperError
from rag.serve.slots import AnswerSlots
from rag.settings import Settings
from rag.store import StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")
GENERIC_ERROR = "Something went wrong while answering. Please try again."
UNAVAILABLE = "The paper index is unavailable right now."


class SearchBody(BaseModel):
    """POST /api/search."""

    query: str
    k: int = Field(default=6, ge=1, le=50)
    paper_ids: list[str] | None = None
    retrieval: str | None = Field(default=None, description="hybrid (default) or dense")


class AskBody(BaseModel):
    """POST /api/ask."""

    question: str
    history: list[dict[str, Any]] = Field(default_factory=list,
                                          description='[{"role": …, "content": …}], oldest first')
    paper_ids: list[str] | None = None
    answerer: str | None = Field(default=None, description="extractive, openai or local (default: RAG_ANSWERER)")
    k: int | None = Field(default=None, ge=1, le=50)


class ErrorBody(BaseModel):
    """An error: one sentence."""

    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": ErrorBody}, 404: {"model": ErrorBody},
                                           503: {"model": ErrorBody}}


def _models(settings: Settings) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "paperchat"}
                                       for m in oa.model_ids(settings)]}


async def until_gone(request: Request) -> None:
    """Return once the client has hung up (its request body already read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_gone(request: Request, work: Callable[[], Awaitable[T]]) -> T | Response:
    """await work(), cancelled (with its LLM call) if the client hangs up first: then an empty 499 nobody reads.
    What work() raises is raised as it is (not wrapped in the task group's exception group)."""
    done: list[T] = []
    failed: list[Exception] = []
    async with anyio.create_task_group() as group:
        async def watch() -> None:
            await until_gone(request)
            group.cancel_scope.cancel()

        group.start_soon(watch)
        try:
            done.append(await work())
        except Exception as exc:  # noqa: BLE001 - raised again below, outside the group
            failed.append(exc)
        group.cancel_scope.cancel()
    if failed:
        raise failed[0]
    return done[0] if done else Response(status_code=499)


def create_router(pipeline: Pipeline, settings: Settings, slots: AnswerSlots | None = None) -> APIRouter:
    """The /v1 and /api routes over a pipeline (slots: the answer slots they share with the chat)."""
    service = PaperService(pipeline)
    slots = slots or AnswerSlots(settings)
    router = APIRouter()
    chat_schema = oa.ChatRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    router.schemas = {"ChatRequest": chat_schema, **chat_schema.pop("$defs", {})}  # type: ignore[attr-defined]

    async def call(fn: Callable[..., T], *args: Any, answerer: str | None = "extractive", **kwargs: Any) -> T:
        """Run a blocking service call in a worker thread, in the answer slots of its answerer (extractive: searches
        and listings too, whatever the server's default answerer)."""
        return await slots.run(answerer, lambda: fn(*args, **kwargs))

    async def rest(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A service call as a REST response: errors as {"detail": sentence} with 400, 404 or 503."""
        try:
            return await call(fn, *args, **kwargs)
        except UnknownPaperError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        except QuestionError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        except StoreError:
            log.exception("index unavailable")
            return JSONResponse({"detail": UNAVAILABLE}, status_code=503)

    @router.get("/api/papers", response_model=list[PaperSummary], tags=["papers"])
    async def papers() -> Any:
        """Every indexed paper: id, title, aliases."""
        return await rest(service.papers)

    @router.get("/api/papers/{paper_id}", response_model=PaperInfo, responses=ERRORS, tags=["papers"])
    async def paper(paper_id: str) -> Any:
        """One paper with its abstract."""
        return await rest(service.paper, paper_id)

    @router.post("/api/search", response_model=list[Passage], responses=ERRORS, tags=["papers"])
    async def search(body: SearchBody) -> Any:
        """The passages retrieval finds for a query, best first."""
        return await rest(service.search, body.query, k=body.k, paper_ids=body.paper_ids, retrieval=body.retrieval)

    @router.post("/api/ask", response_model=CitedAnswer, responses=ERRORS, tags=["papers"])
    async def ask(body: AskBody, request: Request) -> Any:
        """A cited answer, in the shape of `paperchat ask --json`."""
        return await unless_gone(request, lambda: rest(
            lambda: service.ask(body.question, paper_ids=body.paper_ids, history=body.history, answerer=body.answerer,
                                k=body.k), answerer=body.answerer))

    @router.get("/v1/models", tags=["openai"])
    async def models() -> dict[str, Any]:
        """The models: `paperchat` (the default answerer) and `paperchat:<answerer>`."""
        return _models(settings)

    @router.get("/v1/models/{model}", tags=["openai"])
    async def model(model: str) -> Any:
        """One model."""
        found = [m for m in _models(settings)["data"] if m["id"] == model]
        if not found:
            err = oa.OpenAIError(f"The model {model!r} does not exist.", status=404, code="model_not_found")
            return JSONResponse(err.body(), status_code=err.status)
        return found[0]

    @router.post("/v1/chat/completions", tags=["openai"], openapi_extra={"requestBody": {
        "required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}}}})
    async def chat_completions(request: Request) -> Any:
        """An OpenAI chat completion (streamed as server-sent events with "stream": true); the reply text keeps the
        [n] markers and ends with the references; the `paperchat` field carries the sources and checked sentences."""
        try:
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise oa.OpenAIError("The request body is not valid JSON.") from None
            except RecursionError:  # json recurses once per nesting level: '[[[[…' deep enough exhausts the stack
                raise oa.OpenAIError("The request body is nested too deeply.") from None
            chat = oa.parse_request(body, settings)
            if chat.paper_ids:
                await call(service.resolve, chat.paper_ids)
            options = {"history": chat.history, "answerer": chat.answerer, "paper_ids": chat.paper_ids}
            if not chat.stream:
                answer = await unless_gone(request, lambda: call(lambda: pipeline.answer(chat.question, **options),
                                                                 answerer=chat.answerer))
                return answer if isinstance(answer, Response) else JSONResponse(oa.completion(answer, chat))
            stream = slots.stream(chat.answerer, lambda: oa.chunks(pipeline.stream(chat.question, **options), chat))
            return StreamingResponse(_sse(stream), media_type="text/event-stream",
                                     headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
        except oa.OpenAIError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        except QuestionError as exc:
            err = oa.OpenAIError(str(exc), status=404 if isinstance(exc, UnknownPaperError) else 400)
            return JSONResponse(err.body(), status_code=err.status)
        except StoreError:
            log.exception("index unavailable")
            err = oa.OpenAIError(UNAVAILABLE, status=503, kind="server_error")
            return JSONResponse(err.body(), status_code=err.status)
        except Exception:
            log.exception("chat completion failed")
            err = oa.OpenAIError(GENERIC_ERROR, status=500, kind="server_error")
            return JSONResponse(err.body(), status_code=err.status)

    return router


async def _sse(stream: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    """Server-sent events from the answer's chunks (streamed within its answer slot; Starlette cancels this when the
    client hangs up, which stops the LLM call); an error mid-stream is sent as an OpenAI error event (the SDK raises
    it)."""
    try:
        async for item in stream:
            yield f"data: {json.dumps(item, ensure_ascii=False)}\n\n"
    except QuestionError as exc:
        yield f"data: {json.dumps(oa.OpenAIError(str(exc)).body())}\n\n"
    except Exception:
        log.exception("streamed chat completion failed")
        yield f"data: {json.dumps(oa.OpenAIError(GENERIC_ERROR, kind='server_error').body())}\n\n"
    yield "data: [DONE]\n\n"
