"""The operations every outside interface offers (MCP tools, REST routes, the OpenAI endpoint), typed.

Each raises QuestionError (or UnknownPaperError) with a sentence the caller can act on; the interfaces turn that into
their own error shape (an MCP tool error, a 400/404 JSON body).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pydantic import BaseModel, Field, ValidationError

from rag.answer import Pipeline, QuestionError, validate_question
from rag.answer.analyse import short_name
from rag.settings import Settings
from rag.types import Answer, Paper, Sentence, Source

log = logging.getLogger(__name__)

MAX_K = 50


class UnknownPaperError(QuestionError):
    """A paper id that is not in the index."""


class PaperSummary(BaseModel):
    """An indexed paper as listed: id, title and the short names it goes by."""

    id: str = Field(description="The paper's id: pass it as paper_ids / get_paper(id).")
    title: str
    aliases: list[str] = Field(default_factory=list, description="Short names the paper goes by (Seesaw, 2BP …).")


class PaperInfo(PaperSummary):
    """A paper with its abstract (the text every answer is drawn from)."""

    abstract: str


class LibraryEntry(Paper):
    """An indexed paper as the library lists it: the paper's record (source, kind, pages, date added, bibliographic
    metadata) and the passages it has in the index."""

    body: None = Field(default=None, exclude=True)  # a record holds no body
    chunks: int = Field(0, description="Passages it has in the index.")


class Passage(BaseModel):
    """One retrieved passage, best first."""

    rank: int
    paper_id: str
    title: str
    chunk_id: str = Field(description="The passage's id in the index.")
    text: str
    score: float = Field(description="Reciprocal-rank-fusion score (dense + BM25); higher is better.")
    page: int | None = Field(None, description="The page it starts on, for a passage of a PDF's body (None: not from "
                                               "a PDF's pages, e.g. an abstract).")
    page_end: int | None = Field(None, description="The page it ends on (None: not from a PDF's pages).")
    section: str = Field("", description="The section heading it sits under, where one was found.")


class CitedAnswer(BaseModel):
    """An answer as scripts see it (the CLI's `ask --json` shape): text with [n] markers, checked sentences, sources."""

    question: str
    standalone_question: str = Field(description="The question with follow-up references resolved.")
    answer: str = Field(description="The answer; [n] cites sources[n-1]. An abstention starts with "
                                    "'The papers here do not say.'")
    abstained: bool = Field(description="True when the papers do not answer the question.")
    answerer: str
    sources: list[Source] = Field(default_factory=list, description="The numbered passages the [n] markers point at.")
    sentences: list[Sentence] = Field(default_factory=list,
                                      description="Each answer sentence, its citations and whether they support it.")
    timings_ms: dict[str, float] = Field(default_factory=dict)
    grounded: bool = Field(True, description="False when some sentence is not supported by what it cites.")
    notice: str = Field("", description="Why the papers do not answer, or what went wrong with the LLM (may be empty).")
    evidence: str = Field("", description="The extractive evidence beside an LLM answer that was not grounded.")
    closest_papers: list[str] = Field(default_factory=list, description="After an abstention: the nearest papers.")

    @classmethod
    def of(cls, answer: Answer) -> CitedAnswer:
        """The script view of a pipeline Answer."""
        return cls.model_validate(answer.model_dump(include=set(cls.model_fields)))


def invalid(exc: ValidationError) -> tuple[str, str]:
    """The first problem pydantic found in a caller's arguments: (where, 'where: what.'), one line, not its report."""
    err = exc.errors()[0]
    where = ".".join(str(x) for x in err["loc"]) or "body"
    return where, f"{where}: {err['msg']}."


def check_history(turns: Sequence[object], settings: Settings) -> None:
    """QuestionError unless history is a list of messages within the configured caps (count, each, in all)."""
    if not all(isinstance(t, dict) and "content" in t for t in turns):
        raise QuestionError('history must be a list of {"role": …, "content": …} messages.')
    messages = [t for t in turns if isinstance(t, dict)]
    if len(messages) > settings.max_history_turns:
        raise QuestionError(f"history has {len(messages)} messages; at most {settings.max_history_turns} are accepted.")
    longest = max((len(str(t["content"])) for t in messages), default=0)
    if longest > settings.max_history_chars:
        raise QuestionError(f"A history message has {longest:,} characters; at most {settings.max_history_chars:,} "
                            "are accepted.")
    total = sum(len(str(t["content"])) + len(str(t.get("role", ""))) for t in messages)
    if total > settings.max_history_total_chars:
        raise QuestionError(f"history has {total:,} characters in all; at most {settings.max_history_total_chars:,} "
                            "are accepted.")


class PaperService:
    """search, ask, compare and the paper listing over one pipeline."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def papers(self) -> list[PaperSummary]:
        """Every indexed paper."""
        return [PaperSummary.model_validate(p.model_dump()) for p in self.pipeline.papers()]

    def library(self) -> list[LibraryEntry]:
        """Every indexed paper with its source, kind, pages, passages, date added and bibliographic metadata."""
        return [LibraryEntry.model_validate({**r.paper.model_dump(exclude={"body"}), "chunks": r.chunks})
                for r in self.pipeline.records()]

    def paper(self, paper_id: str) -> PaperInfo:
        """One paper with its abstract, or UnknownPaperError."""
        return PaperInfo.model_validate(self.resolve([paper_id])[0].model_dump())

    def search(self, query: str, k: int = 6, paper_ids: Sequence[str] | None = None,
               retrieval: str | None = None) -> list[Passage]:
        """The passages retrieval finds for a query (hybrid dense + BM25 unless retrieval='dense')."""
        from rag.retrieve import make_retriever, page_of

        query = validate_question(query, self.pipeline.settings)
        if not 1 <= k <= MAX_K:
            raise QuestionError(f"k must be between 1 and {MAX_K}.")
        if retrieval is not None and retrieval not in ("hybrid", "dense"):
            raise QuestionError(f"Unknown retrieval mode {retrieval!r}; choose hybrid or dense.")
        ids = [p.id for p in self.resolve(paper_ids)] if paper_ids else None
        docs = make_retriever(self.pipeline.index, self.pipeline.settings, paper_ids=ids, mode=retrieval,
                              k=k).search(query)
        return [Passage(rank=d.metadata["rank"], paper_id=d.metadata["paper_id"], title=d.metadata["title"],
                        chunk_id=d.metadata["chunk_id"], text=d.page_content, score=d.metadata["score"],
                        page=page_of(d.metadata, "page"), page_end=page_of(d.metadata, "page_end"),
                        section=str(d.metadata.get("section", ""))) for d in docs]

    def ask(self, question: str, paper_ids: Sequence[str] | None = None, history: Sequence[object] | None = None,
            answerer: str | None = None, k: int | None = None) -> CitedAnswer:
        """A cited answer (history: earlier {"role", "content"} messages, oldest first)."""
        if k is not None and not 1 <= k <= MAX_K:
            raise QuestionError(f"k must be between 1 and {MAX_K}.")
        check_history(list(history or []), self.pipeline.settings)
        ids = [p.id for p in self.resolve(paper_ids)] if paper_ids else None
        return CitedAnswer.of(self.pipeline.answer(question, history=list(history or []), paper_ids=ids,
                                                   answerer=answerer, k=k))

    def compare(self, paper_ids: Sequence[str], aspect: str | None = None,
                answerer: str | None = None) -> CitedAnswer:
        """The cited comparison table of two or more papers (aspect: what to compare them on, optional)."""
        papers = self.resolve(paper_ids)
        if len(papers) < 2:
            raise QuestionError("Give at least two different paper ids to compare.")
        names = [short_name(p, p.id) for p in papers]
        question = "Compare " + ", ".join(names[:-1]) + " and " + names[-1]
        if aspect and aspect.strip():
            question += f" on {aspect.strip()}"
        answer = self.pipeline.answer(question, paper_ids=[p.id for p in papers], compare=True, answerer=answerer)
        return CitedAnswer.of(answer)

    def resolve(self, paper_ids: Sequence[str] | None) -> list[Paper]:
        """The papers of these ids (each once, in order), or UnknownPaperError naming the unknown ones."""
        if isinstance(paper_ids, str):
            paper_ids = [paper_ids]
        known = {p.id: p for p in self.pipeline.papers()}
        wanted = list(dict.fromkeys(str(p).strip() for p in paper_ids or []))
        unknown = [p for p in wanted if p not in known]
        if unknown:
            raise UnknownPaperError(f"Unknown paper id(s): {', '.join(unknown)}. The list of papers gives the ids.")
        return [known[p] for p in wanted]
