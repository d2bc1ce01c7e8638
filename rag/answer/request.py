"""Validating what a caller asks before any work: the question, the answerer, the paper filter, the history."""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable, Sequence

from rag.answer.models import ANSWERERS, Request, Turn
from rag.settings import Settings

_BAD_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_TURNS = 8
MAX_TURN_CHARS = 4000


class QuestionError(ValueError):
    """The question cannot be answered as given (empty, too long, not text)."""


def validate_question(question: object, settings: Settings) -> str:
    """The stripped question, or QuestionError with a message a user can act on."""
    if not isinstance(question, str):
        raise QuestionError("The question must be text.")
    try:
        question.encode("utf-8")
    except UnicodeEncodeError:
        raise QuestionError("The question contains invalid characters (broken Unicode); please retype it.") from None
    if "\x00" in question or _BAD_CHARS.search(question):
        raise QuestionError("The question contains control characters (such as NUL bytes); please remove them.")
    question = unicodedata.normalize("NFC", question).strip()
    if not question:
        raise QuestionError("Please type a question.")
    if len(question) > settings.max_question_chars:
        raise QuestionError(f"The question is {len(question):,} characters long; the limit is "
                            f"{settings.max_question_chars:,}. Please shorten it.")
    if not any(ch.isalnum() for ch in question):
        raise QuestionError("The question has no words in it.")
    return question


def build_request(question: object, settings: Settings, known: Callable[[], set[str]], *,
                  history: Sequence[object] | None = None,
                  answerer: str | None = None, paper_ids: list[str] | None = None, k: int | None = None,
                  retrieval: str | None = None, compare: bool = False, reader: bool | None = None) -> Request:
    """A validated Request (nothing is loaded before the question passes): the last turns of the history only, each
    cut to a bounded length. known: the indexed paper ids, asked for only when there is a paper filter."""
    text = validate_question(question, settings)
    chosen = answerer or settings.answerer
    if chosen not in ANSWERERS:
        raise QuestionError(f"Unknown answerer {chosen!r}; choose one of {', '.join(ANSWERERS)}.")
    unknown = [p for p in paper_ids or [] if p not in known()] if paper_ids else []
    if unknown:
        raise QuestionError(f"Unknown paper id(s): {', '.join(unknown)}. See 'paperchat papers'.")
    if retrieval is not None and retrieval not in ("hybrid", "dense"):
        raise QuestionError(f"Unknown retrieval mode {retrieval!r}; choose hybrid or dense.")
    turns = []
    for t in list(history or [])[-MAX_TURNS:]:
        get = t.get if isinstance(t, dict) else (lambda key, default="", t=t: getattr(t, key, default))
        turns.append(Turn(role=str(get("role", "")), content=str(get("content", ""))[:MAX_TURN_CHARS]))
    budget = settings.answer_timeout if chosen != "extractive" else None
    return Request(question=text, history=turns, answerer=chosen, paper_ids=list(paper_ids) if paper_ids else None,
                   k=k, retrieval=retrieval, compare=compare, reader=reader,  # type: ignore[arg-type]
                   deadline=time.monotonic() + budget if budget else None, budget=budget)
