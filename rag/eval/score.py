"""Scoring one answer: retrieval, expected facts, citations, sentence support, and its first failure."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from rag.eval.metrics import fact_found, hit_at_k, unique_papers
from rag.eval.questions import Question
from rag.support import strip_markup, support, support_multi
from rag.text import citation_numbers
from rag.text import sentences as split_sentences
from rag.types import Answer, ReadingSummary, Source

RETRIEVAL_MISS_K = 5
FAILURE_TAGS: tuple[str, ...] = (
    "error", "retrieval_miss", "false_abstain", "missed_facts", "bad_citation", "unsupported_sentence",
    "missed_abstain", "ok",
)


class SentenceRow(BaseModel):
    """An answer sentence, its citations and the harness's own support verdict."""

    text: str
    citations: list[int] = Field(default_factory=list)
    supported: bool = False
    reason: str = ""


class QuestionResult(BaseModel):
    """One question's outcome in one run."""

    id: str
    question: str
    category: str
    kind: str | None = None
    split: str | None = None
    gold_papers: list[str] = Field(default_factory=list)
    ok_papers: list[str] = Field(default_factory=list)
    facts: list[list[str]] = Field(default_factory=list)
    expect_abstain: bool = False
    answer: str = ""
    abstained: bool = False
    sources: list[Source] = Field(default_factory=list)
    retrieved_papers: list[str] = Field(default_factory=list)
    sentences: list[SentenceRow] = Field(default_factory=list)
    facts_found: list[bool] = Field(default_factory=list)
    cited_papers: list[str] = Field(default_factory=list)
    invalid_citations: list[int] = Field(default_factory=list)
    citations_total: int = 0
    citations_precise: int = 0
    latency_ms: float = 0.0
    timings_ms: dict[str, float] = Field(default_factory=dict)
    reading: ReadingSummary | None = None
    notice: str = ""
    failure: str = "ok"
    error: str | None = None

    @property
    def answered(self) -> bool:
        """Gave an answer: did not abstain and did not fail."""
        return not self.abstained and self.error is None

    @property
    def correct(self) -> bool:
        """LitQA-style: all facts found when answerable, abstained when not."""
        if self.expect_abstain:
            return self.abstained and self.error is None
        return self.answered and all(self.facts_found)

    @property
    def strict(self) -> bool:
        """Correct, and the answer cites every gold paper and no paper outside gold (and ok_papers)."""
        if self.expect_abstain or not self.correct:
            return self.correct
        cited = set(self.cited_papers)
        return set(self.gold_papers) <= cited and cited <= set(self.gold_papers) | set(self.ok_papers)


def _answer_sentences(answer: Answer) -> list[tuple[str, list[int]]]:
    """(text, citations) per sentence: the chain's sentences if it gave them, else the answer split."""
    if answer.sentences:
        pairs = [(s.text, [*s.citations, *citation_numbers(s.text)]) for s in answer.sentences]
    else:
        pairs = [(s, citation_numbers(s)) for s in split_sentences(answer.answer)]
    return [(strip_markup(t), list(dict.fromkeys(c))) for t, c in pairs if strip_markup(t)]


def score_sentence(text: str, citations: Sequence[int], sources: dict[int, Source]) -> tuple[SentenceRow, int]:
    """A sentence's support by its valid cited passages, and how many of its citations are ALCE-precise."""
    valid = [c for c in citations if c in sources]
    passages = [sources[c].text for c in valid]
    joint = support_multi(text, passages)
    supported = bool(valid) and joint.supported
    precise = 0
    if supported and len(valid) == 1:
        precise = 1
    elif supported:
        for c in valid:
            alone = support(text, sources[c].text).supported
            rest = [sources[o].text for o in valid if o != c]
            precise += alone or not support_multi(text, rest).supported
    reason = joint.reason if valid else ("no citation" if not citations else "cites no real source")
    return SentenceRow(text=text, citations=list(citations), supported=supported, reason=reason), precise


def failure_tag(row: QuestionResult) -> str:
    """The first failure of a question: retrieval_miss → false_abstain → missed_facts → bad_citation → …"""
    if row.error is not None:
        return "error"
    if row.expect_abstain:
        return "ok" if row.abstained else "missed_abstain"
    if not hit_at_k(row.retrieved_papers, row.gold_papers, RETRIEVAL_MISS_K):
        return "retrieval_miss"
    if row.abstained:
        return "false_abstain"
    if not all(row.facts_found):
        return "missed_facts"
    if row.invalid_citations:
        return "bad_citation"
    if not row.sentences or any(not s.supported for s in row.sentences):
        return "unsupported_sentence"
    return "ok"


def score_answer(question: Question, answer: Answer, latency_ms: float) -> QuestionResult:
    """Score one answer against its question: retrieval, facts, citations, support and failure tag."""
    by_n = {s.n: s for s in answer.sources}
    retrieved = unique_papers(answer.paper_ids) or unique_papers(s.paper_id for s in answer.sources)
    row = QuestionResult(
        id=question.id, question=question.question, category=question.category, kind=question.kind,
        split=question.split, gold_papers=question.gold_papers, ok_papers=question.ok_papers, facts=question.facts,
        expect_abstain=question.expect_abstain, answer=answer.answer, abstained=answer.abstained,
        retrieved_papers=retrieved,
        sources=list(answer.sources),
        facts_found=[False if answer.abstained else fact_found(f, answer.answer) for f in question.facts],
        latency_ms=latency_ms, timings_ms=answer.timings_ms, reading=answer.reading, notice=answer.notice,
    )
    if not answer.abstained:
        cited: list[int] = []
        for text, citations in _answer_sentences(answer):
            sentence, precise = score_sentence(text, citations, by_n)
            row.sentences.append(sentence)
            row.citations_total += len(citations)
            row.citations_precise += precise
            cited += citations
        # The chain strips citations to missing passages; they still count as fabricated here.
        every = set(cited) | set(citation_numbers(answer.answer)) | set(answer.removed_citations)
        row.invalid_citations = sorted(c for c in every if c not in by_n)
        row.cited_papers = unique_papers(by_n[c].paper_id for c in cited if c in by_n)
    row.failure = failure_tag(row)
    return row


def error_row(question: Question, message: str, latency_ms: float) -> QuestionResult:
    """The row of a question whose answer function raised."""
    row = QuestionResult(
        id=question.id, question=question.question, category=question.category, kind=question.kind,
        split=question.split, gold_papers=question.gold_papers, ok_papers=question.ok_papers, facts=question.facts,
        expect_abstain=question.expect_abstain, facts_found=[False] * len(question.facts), latency_ms=latency_ms,
        error=message,
    )
    row.failure = failure_tag(row)
    return row
