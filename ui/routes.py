"""HTTP routes beside the Gradio app, on its FastAPI: the OpenAI-compatible /v1 and the REST /api for scripts.

The logic lives in rag.serve (service, openai_compat); this module only speaks HTTP. Auth (RAG_API_KEYS, else the
chat login) and the body limit are enforced by ui.guard in front of every route. Answers computed here share one pool
of RAG_CONCURRENCY slots (separate from the Gradio queue's).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from rag.answer import Pipeline, QuestionError
from rag.serve import openai_compat as oa
from rag.serve.service import CitedAnswer, PaperInfo, PaperService, PaperSummary, Passage, UnknownPaperError
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


def _models() -> dict[str, Any]:
    return {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "paperchat"}
                                       for m in oa.model_ids()]}


def create_router(pipeline: Pipeline, settings: Settings) -> APIRouter:
    """The /v1 and /api routes over a pipeline."""
    service = PaperService(pipeline)
    limiter = anyio.CapacityLimiter(settings.concurrency)
    router = APIRouter()
    chat_schema = oa.ChatRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    router.schemas = {"ChatRequest": chat_schema, **chat_schema.pop("$defs", {})}  # type: ignore[attr-defined]

    async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking service call in a worker thread, within the shared answer slots."""
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=limiter)

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
    async def ask(body: AskBody) -> Any:
        """A cited answer, in the shape of `paperchat ask --json`."""
        return await rest(service.ask, body.question, paper_ids=body.paper_ids, history=body.history,
                          answerer=body.answerer, k=body.k)

    @router.get("/v1/models", tags=["openai"])
    async def models() -> dict[str, Any]:
        """The models: `paperchat` (the default answerer) and `paperchat:<answerer>`."""
        return _models()

    @router.get("/v1/models/{model}", tags=["openai"])
    async def model(model: str) -> Any:
        """One model."""
        found = [m for m in _models()["data"] if m["id"] == model]
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
            chat = oa.parse_request(body, settings)
            if chat.paper_ids:
                await call(service.resolve, chat.paper_ids)
            options = {"history": chat.history, "answerer": chat.answerer, "paper_ids": chat.paper_ids}
            if not chat.stream:
                answer = await call(pipeline.answer, chat.question, **options)
                return JSONResponse(oa.completion(answer, chat))
            stream = oa.chunks(pipeline.stream(chat.question, **options), chat)
            return StreamingResponse(_sse(stream, limiter), media_type="text/event-stream",
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


async def _sse(stream: Any, limiter: anyio.CapacityLimiter) -> AsyncIterator[str]:
    """Server-sent events from a blocking iterator of chunks, one worker-thread step at a time, holding one answer
    slot throughout; an error mid-stream is sent as an OpenAI error event (the SDK raises it)."""
    end = object()
    try:
        async with limiter:
            while True:
                item = await anyio.to_thread.run_sync(next, stream, end)
                if item is end:
                    break
                yield f"data: {json.dumps(item, ensure_ascii=False)}\n\n"
    except QuestionError as exc:
        yield f"data: {json.dumps(oa.OpenAIError(str(exc)).body())}\n\n"
    except Exception:
        log.exception("streamed chat completion failed")
        yield f"data: {json.dumps(oa.OpenAIError(GENERIC_ERROR, kind='server_error').body())}\n\n"
    finally:
        stream.close()
    yield "data: [DONE]\n\n"
