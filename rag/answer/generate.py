"""LLM answers: the prompt (passages delimited as data, within a token budget), the stream, the canary redaction."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

from rag.answer.models import ABSTAIN_SENTENCE, Analysis, Request, Turn
from rag.prompts import load_prompt
from rag.text import count_tokens
from rag.types import Source

CANARY = f"CANARY-{secrets.token_hex(6)}"
_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_MD_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(\s*[a-zA-Z][\w+.-]*:[^)]*\)")
_TAG = re.compile(r"</?\s*(passage|passages)\b[^>]*>", re.IGNORECASE)


def sanitize(text: str) -> str:
    """Answer text safe to render: the canary redacted, prompt tags and Markdown images dropped, links made text."""
    return _MD_LINK.sub(r"\1", _MD_IMAGE.sub("", _TAG.sub("", text.replace(CANARY, "[removed]"))))


def redact_canary(deltas: Iterator[str]) -> Iterator[str]:
    """Stream deltas with the canary removed, holding back a tail that could be the canary's beginning."""
    pending = ""
    for delta in deltas:
        pending = (pending + delta).replace(CANARY, "[removed]")
        keep = next((k for k in range(min(len(pending), len(CANARY) - 1), 0, -1) if CANARY.startswith(pending[-k:])), 0)
        if len(pending) > keep:
            yield pending[: len(pending) - keep]
            pending = pending[len(pending) - keep:]
    if pending:
        yield pending


_PARTIAL_TAG = re.compile(r"<\s*/?\s*[a-z]*$", re.IGNORECASE)


def strip_prompt_tags(deltas: Iterator[str]) -> Iterator[str]:
    """Stream deltas without the prompt's <passage> tags, even when a tag arrives split over several deltas (a
    small local model echoes them): a trailing '<…' that could still become a tag is held back until it is known."""
    pending = ""
    for delta in deltas:
        pending = _TAG.sub("", pending + delta)
        tail = _PARTIAL_TAG.search(pending)
        hold = tail is not None and "passages".startswith(re.sub(r"[<\s/]", "", tail.group(0)).lower())
        cut = tail.start() if hold and tail is not None else len(pending)
        if cut:
            yield pending[:cut]
        pending = pending[cut:]
    if pending:
        yield pending


def as_data(text: str, attribute: bool = False) -> str:
    """Passage text (or a title, attribute=True) that cannot end its passage or open another: a '<' that would start
    a passage tag, and in a title a '"', become entities (an abstract that closed </passage> and forged
    <passage n="9"> with a SYSTEM line read as a passage of its own)."""
    text = re.sub(r"<(?=\s*/?\s*passages?\b)", "&lt;", text, flags=re.IGNORECASE)
    return text.replace('"', "&quot;") if attribute else text


def messages(analysis: Analysis, sources: list[Source], budget: int, max_sentences: int) -> list[tuple[str, str]]:
    """Prompt messages with passages delimited as data (escaped: see as_data), numbered, within the token budget."""
    blocks, used = [], 0
    for s in sources:
        block = f'<passage n="{s.n}" paper="{as_data(s.title, attribute=True)}">\n{as_data(s.text)}\n</passage>'
        cost = count_tokens(block)
        if blocks and used + cost > budget:
            break
        blocks.append(block)
        used += cost
    passages = "\n".join(blocks)
    if analysis.kind == "compare" and len(analysis.papers) >= 2:
        names = ", ".join(as_data(s.title) for s in {s.paper_id: s for s in sources}.values())
        return load_prompt("compare").messages(passages=passages, question=analysis.standalone, papers=names,
                                               abstain=ABSTAIN_SENTENCE, canary=CANARY)
    return load_prompt("answer").messages(passages=passages, question=analysis.standalone, abstain=ABSTAIN_SENTENCE,
                                          max_sentences=max_sentences, canary=CANARY)


def condense_messages(question: str, history: list[Turn]) -> list[tuple[str, str]]:
    """The prompt asking an LLM to rewrite a follow-up as a standalone question."""
    turns = "\n".join(f"{t.role}: {t.content[:500]}" for t in history[-4:])
    return load_prompt("condense").messages(history=turns, question=question)


def _deadline(request: Request) -> Any:
    """The request's answer deadline as rag.llm.chat wants it (None when there is none)."""
    from rag.llm.guard import Deadline

    return Deadline(request.deadline, request.budget) if request.deadline is not None else None


def stream(model: Any, prompt: list[tuple[str, str]], request: Request, max_chars: int) -> Iterator[str]:
    """Text deltas from the chat model, canary redacted: LLMError on any failure, LLMTruncated at the cap,
    LLMDeadlineExceeded when the request's deadline passes."""
    from rag.llm.chat import stream_text

    yield from strip_prompt_tags(redact_canary(stream_text(model, prompt, deadline=_deadline(request),
                                                           max_chars=max_chars)))


def complete(model: Any, prompt: list[tuple[str, str]], request: Request, max_chars: int) -> str:
    """The chat model's whole reply within the request's deadline (LLMError on any failure)."""
    from rag.llm.chat import complete as llm_complete

    return llm_complete(model, prompt, deadline=_deadline(request), max_chars=max_chars)
