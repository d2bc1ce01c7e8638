"""The reading stage: a local instruct model reads the retrieved papers and answers closed questions about them.

For a question with one answer it asks of each candidate paper (the papers the question names, else the first ones
retrieved) "does this passage answer the question?"; for a list question, "is this paper one of the papers the
question asks for?". The answers are probabilities (the model's log-probabilities of Yes and No), which the
decision combines with the rules' evidence by thresholds fitted on the tune questions (rag.answer.decide).

A paper is read as its abstract (the unit the model's state is cached for, so a later question about the same paper
costs only the question's tokens); a paper with an indexed full text is read as its best retrieved passage. Nothing
is read for overviews, comparisons and bibliographic questions, nor when no reading model is installed: then the
rules decide alone, as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from rag.answer.models import Analysis, Closed, Judged, Reading, Retrieved
from rag.llm import LLMError
from rag.llm.reader import Ask, Reader
from rag.prompts import load_prompt
from rag.settings import Settings
from rag.types import Paper

ASKS: dict[str, str] = {
    "answers": "Does the passage answer the question?",
    "qualifies": "Is this paper one of the papers the question asks for?",
}
MENTIONS = "Does the passage mention {words}, in any words?"  # the rules found none of the question's own words
ANSWER_CANDIDATES = 3  # papers read for a question with one answer and no paper named
LIST_CANDIDATES = 12  # papers read for a list question, in retrieval order
MAX_PASSAGE_CHARS = 2400  # an abstract longer than this is read in part (about 550 tokens)


def candidates(analysis: Analysis, retrieved: Retrieved) -> tuple[Closed, list[str]] | None:
    """Which closed question to ask, of which papers; None when the question is not one the reader decides."""
    kind = analysis.kind
    if kind in ("overview", "bibliographic") or (kind == "compare" and len(analysis.papers) >= 2):
        return None
    if not retrieved.ranking:
        return None
    if kind == "list":
        return "qualifies", retrieved.ranking[:LIST_CANDIDATES]
    named = [p for p in analysis.papers if p in retrieved.ranking]
    return "answers", named or retrieved.ranking[:ANSWER_CANDIDATES]


def passage_of(paper: Paper | None, paper_id: str, retrieved: Retrieved) -> tuple[str, str]:
    """(title, text) the model reads for a paper: its abstract, or with a full text its best retrieved passage."""
    if paper is not None and paper.body is None and paper.abstract:
        text = paper.abstract
    else:
        text = next((s.text for s in retrieved.sources if s.paper_id == paper_id), "")
    title = paper.title if paper is not None else paper_id
    if len(text) > MAX_PASSAGE_CHARS:
        text = text[:MAX_PASSAGE_CHARS].rsplit(" ", 1)[0] + " …"
    return title, text


def asks_for(question: str, closed: Closed, papers: list[str], by_id: Mapping[str, Paper],
             retrieved: Retrieved) -> list[Ask]:
    """The reading prompt for each paper (prompts/read.md: instructions, the passage, then the question)."""
    return [_ask(*passage_of(by_id.get(pid), pid, retrieved), question, ASKS[closed]) for pid in papers]


def _ask(title: str, text: str, question: str, ask: str) -> Ask:
    """prompts/read.md filled in: the instructions, the passage (the part the worker caches), the question."""
    prompt = load_prompt("read")
    values = {"title": title, "passage": text, "question": question, "ask": ask}
    query = prompt.query.format(**values) if question else ""
    return Ask(system=prompt.system.format(**values), doc=prompt.user.format(**values), query=query)


def read(analysis: Analysis, retrieved: Retrieved, by_id: Mapping[str, Paper], reader: Reader,
         budget: float, unmentioned: str = "") -> Reading | None:
    """Ask the reading model about the candidate papers within budget seconds; None when there is nothing to ask.
    unmentioned: words of the question the rules found in none of the named papers (their reason to abstain); each
    named paper is also asked whether it says them in other words."""
    plan = candidates(analysis, retrieved)
    if plan is None:
        return None
    closed, papers = plan
    asks = asks_for(analysis.standalone, closed, papers, by_id, retrieved)
    named = [p for p in analysis.papers if p in by_id] if unmentioned and closed == "answers" else []
    asks += [_ask(*passage_of(by_id.get(p), p, retrieved), analysis.standalone, MENTIONS.format(words=unmentioned))
             for p in named]
    probs, stats = reader.judge(asks, deadline=time.monotonic() + budget)
    judged = [Judged(paper_id=pid, p=None if p is None else round(p, 4))
              for pid, p in zip(papers + named, probs, strict=True)]
    return Reading(closed=closed, model=reader.model.name, stats=stats, papers=judged[:len(papers)],
                   mentions=judged[len(papers):])


WARM_PAPERS = 64  # papers whose abstracts are read ahead when a pipeline opens (about the worker's state cache)


def warm_asks(papers: list[Paper]) -> list[Ask]:
    """The passages the reading model will read most (each abstract), as asks with no question: read ahead, a first
    question about any of these papers costs only its own tokens."""
    return [_ask(*passage_of(p, p.id, Retrieved()), "", "") for p in papers[:WARM_PAPERS]
            if p.body is None and p.abstract]


class ReaderSlot:
    """A pipeline's reading model, made from the settings on first use (or the one passed in; tests pass a fake).
    Called with what a request wants: False -> None; None -> the model when one is installed; True -> the model,
    or LLMError when there is none."""

    def __init__(self, settings: Settings, reader: Any = None) -> None:
        self.settings, self._reader, self._made = settings, reader, reader is not None
        self._lock = threading.Lock()

    def __call__(self, wanted: bool | None = None) -> Any:
        if wanted is False:
            return None
        with self._lock:
            if not self._made:
                from rag.llm.reader import make_reader

                self._reader, self._made = make_reader(self.settings), True
        if wanted and self._reader is None:
            raise LLMError("No reading model is installed: pip install 'paperchat[local]' (or set RAG_READER_MODEL "
                           "to a GGUF file).")
        return self._reader

    def warm(self, papers: list[Paper]) -> Any:
        """Start the model and read the papers' abstracts ahead, in the background (its future; None without one)."""
        reader = self()
        return reader.warm(warm_asks(papers)) if reader is not None else None
