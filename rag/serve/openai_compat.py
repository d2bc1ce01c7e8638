"""The OpenAI chat-completions protocol over the pipeline: a request becomes a question and its history, an Answer
becomes a completion (or a stream of chunks) whose text keeps the [n] markers and ends with a Markdown reference list,
and whose extra field `paperchat` carries the sources and checked sentences (the CLI's `ask --json` shape).

The "model" is the paper set with the answerer: `paperchat` (the server's default answerer) or `paperchat:<answerer>`.
No web framework here: ui/ mounts the routes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rag.answer import ANSWERERS, QuestionError, validate_question
from rag.answer.models import Turn
from rag.citations import StreamedCitations
from rag.llm.chat import NO_LLM, llm_configured
from rag.serve.service import CitedAnswer, invalid
from rag.settings import Settings
from rag.text import count_tokens
from rag.types import Answer

MODEL = "paperchat"
EXTRA = "paperchat"  # the response's extra field: CitedAnswer (sources, sentences, abstained, grounded, notice)


def model_ids(settings: Settings) -> list[str]:
    """The model ids served: the default answerer, then one per answerer (the OpenAI-compatible one only when an
    LLM is configured)."""
    return [MODEL, *(f"{MODEL}:{a}" for a in ANSWERERS if a != "openai" or llm_configured(settings))]


class OpenAIError(Exception):
    """A request the endpoint refuses, with the HTTP status and the OpenAI error shape."""

    def __init__(self, message: str, status: int = 400, code: str | None = None, param: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.code, self.param, self.kind = status, code, param, kind

    def body(self) -> dict[str, Any]:
        """{"error": {message, type, param, code}} as OpenAI sends it."""
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}


class ContentPart(BaseModel):
    """One part of a message's content (only text parts are understood)."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One message of the conversation."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message's text (text parts joined); other kinds of content are refused."""
        if isinstance(self.content, list):
            if any(p.type != "text" for p in self.content):
                raise OpenAIError("Only text content is supported.", param="messages")
            return "\n".join(p.text or "" for p in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    """Options of a streamed reply."""

    model_config = ConfigDict(extra="allow")
    include_usage: bool = Field(default=False, description="Send the token counts in a last chunk without choices.")


class ChatRequest(BaseModel):
    """The fields of a chat-completions request paperchat reads (others, such as temperature, are accepted and
    ignored: the answer is drawn from the papers)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(description="paperchat, or paperchat:<extractive|openai|local> to choose the answerer.")
    messages: list[ChatMessage] = Field(min_length=1, description="The last one is the question (role user); the "
                                                                  "user and assistant messages before it, the history.")
    stream: bool = False
    stream_options: StreamOptions | None = None
    paper_ids: list[str] | None = Field(default=None, description="paperchat extension: only these papers.")


class ChatCall(BaseModel):
    """What the pipeline is asked: a chat request, validated."""

    model: str
    question: str
    history: list[Turn] = Field(default_factory=list)
    answerer: str | None = None
    paper_ids: list[str] | None = None
    stream: bool = False
    include_usage: bool = False
    prompt_tokens: int = Field(0, description="Tokens (cl100k) of the messages' text, for the reply's usage.")


def parse_request(body: object, settings: Settings) -> ChatCall:
    """A chat request as a question, its history and the answerer, or OpenAIError saying what is wrong."""
    try:
        request = ChatRequest.model_validate(body)
    except ValidationError as exc:
        where, sentence = invalid(exc)
        raise OpenAIError(f"Invalid request: {sentence}", param=where) from None
    if request.model == f"{MODEL}:openai" and not llm_configured(settings):
        raise OpenAIError(f"The model {request.model!r} is not available: {NO_LLM}", status=404,
                          code="model_not_found", param="model")
    if request.model not in model_ids(settings):
        raise OpenAIError(f"The model {request.model!r} does not exist; use one of {', '.join(model_ids(settings))}.",
                          status=404, code="model_not_found", param="model")
    *earlier, last = request.messages
    if last.role != "user":
        raise OpenAIError("The last message must be the user's question.", param="messages")
    try:
        question = validate_question(last.text(), settings)
    except QuestionError as exc:
        raise OpenAIError(str(exc), param="messages") from None
    history = [Turn(role=m.role, content=m.text()) for m in earlier if m.role in ("user", "assistant")]
    _, _, answerer = request.model.partition(":")
    return ChatCall(model=request.model, question=question, history=history, answerer=answerer or None,
                    paper_ids=request.paper_ids, stream=request.stream,
                    include_usage=bool(request.stream_options and request.stream_options.include_usage),
                    prompt_tokens=sum(count_tokens(m.text()) for m in request.messages))


def references(answer: Answer) -> str:
    """The cited sources as a Markdown list, each quoting the sentence it is cited for (empty when nothing is)."""
    lines = [f"- [{s.n}] *{s.title}* (`{s.paper_id}`{f', {answer.cited_pages(s.n)}' if s.page else ''}): "
             f"“{answer.cited_sentence(s.n)}”" for s in answer.cited()]
    return "\n\n**References**\n\n" + "\n".join(lines) if lines else ""


def notice_line(notice: str) -> str:
    """A notice as its own italic paragraph."""
    return f"\n\n_{notice.strip()}_" if notice.strip() else ""


def content(answer: Answer) -> str:
    """The reply text: the answer with its [n] markers, the notice, then the references."""
    return answer.answer + notice_line(answer.notice) + references(answer)


def extra(answer: Answer) -> dict[str, Any]:
    """The `paperchat` field: the answer as scripts see it."""
    return CitedAnswer.of(answer).model_dump(mode="json")


def completion_id() -> str:
    """A fresh completion id."""
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, reply: str) -> dict[str, int]:
    """The usage object: tokens (cl100k, what tiktoken counts for OpenAI's models) of the messages and the reply."""
    completion_tokens = count_tokens(reply)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion(answer: Answer, call: ChatCall, cid: str | None = None) -> dict[str, Any]:
    """The chat.completion object for an answer."""
    text = content(answer)
    return {"id": cid or completion_id(), "object": "chat.completion", "created": int(time.time()),
            "model": call.model, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                              "finish_reason": "stop", "logprobs": None}],
            "usage": usage(call.prompt_tokens, text), EXTRA: extra(answer)}


def chunks(events: Iterator[tuple[str, Any]], call: ChatCall, cid: str | None = None) -> Iterator[dict[str, Any]]:
    """chat.completion.chunk objects from Pipeline.stream() events: the role, the text as it is written (a notice in
    place of a discarded LLM draft: a stream cannot take text back, so citations to passages that do not exist are
    dropped as it goes), then the notice and references, and a last chunk with finish_reason "stop" and the
    `paperchat` field (its `answer` is the verified text); with stream_options.include_usage, then a chunk without
    choices carrying the usage (as OpenAI sends it)."""
    cid, created = cid or completion_id(), int(time.time())
    sent: list[str] = []

    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> dict[str, Any]:
        sent.append(delta.get("content") or "")
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": call.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **more}

    yield chunk({"role": "assistant", "content": ""})
    shown: list[str] = []
    text = StreamedCitations([])  # a citation is sent only once it is known to point at a source
    for kind, value in events:
        if kind == "sources":
            text = StreamedCitations([s.n for s in value])
        elif kind == "text" and (piece := text.feed(value)):
            yield chunk({"content": piece})
        elif kind == "reset":
            shown.append(value)
            yield chunk({"content": text.flush() + notice_line(value) + "\n\n"})
        elif kind == "answer":
            tail = text.flush() + ("" if value.notice in shown else notice_line(value.notice)) + references(value)
            if tail:
                yield chunk({"content": tail})
            yield chunk({}, "stop", **{EXTRA: extra(value)})
    if call.include_usage:
        yield {"id": cid, "object": "chat.completion.chunk", "created": created, "model": call.model, "choices": [],
               "usage": usage(call.prompt_tokens, "".join(sent))}
