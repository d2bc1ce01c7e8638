"""Typed state passed between the answer stages: request -> analysis -> retrieved -> decision -> draft."""

from __future__ import annotations

from typing import Literal

from langchain_core.messages import BaseMessage
from pydantic import BaseModel, Field, field_validator

from rag.llm.reader import ReadStats
from rag.types import Sentence, Source

Kind = Literal["what", "how_much", "how", "why", "list", "compare", "overview", "yes_no", "expansion", "limitation",
               "bibliographic"]
Answerer = Literal["extractive", "openai", "local"]
ANSWERERS: tuple[str, ...] = ("extractive", "openai", "local")
ABSTAIN_SENTENCE = "The papers here do not say."


class Turn(BaseModel):
    """One earlier message of the conversation."""

    role: str
    content: str


_ROLES = {"human": "user", "ai": "assistant"}  # LangChain message types -> the chat roles the stages read


class Question(BaseModel):
    """The answer Runnable's input: a question, the conversation before it, and how to answer it.

    history takes Turns, {"role", "content"} dicts or LangChain messages (HumanMessage is the user's turn).
    """

    question: str
    history: list[Turn] = Field(default_factory=list)
    answerer: Answerer | None = None
    paper_ids: list[str] | None = None
    k: int | None = None
    retrieval: Literal["hybrid", "dense"] | None = None
    compare: bool = False
    reader: bool | None = None

    @field_validator("history", mode="before")
    @classmethod
    def _messages(cls, value: object) -> object:
        """LangChain messages as Turns."""
        if not isinstance(value, list):
            return value
        return [Turn(role=_ROLES.get(m.type, m.type), content=m.text) if isinstance(m, BaseMessage) else m
                for m in value]


class Request(BaseModel):
    """A validated question and how the caller wants it answered."""

    question: str
    history: list[Turn] = Field(default_factory=list)
    answerer: Answerer = "extractive"
    paper_ids: list[str] | None = Field(default=None, description="The user's paper filter: always wins.")
    k: int | None = None
    retrieval: Literal["hybrid", "dense"] | None = None
    compare: bool = False
    reader: bool | None = Field(default=None, description="Read with the reading model: None when one is installed "
                                                          "(RAG_READER), False for the rules alone.")
    deadline: float | None = Field(default=None, description="time.monotonic() by which an LLM answer must end "
                                                              "(condense and answer together).")
    budget: float | None = Field(default=None, description="The seconds that deadline was set from (for notices).")


class Analysis(BaseModel):
    """What the question asks, in terms the later stages use."""

    asked: str = Field(description="The question's own words, with instructions addressed to the assistant dropped.")
    standalone: str = Field(description="The question with follow-up references resolved; shown to the user.")
    kind: Kind
    papers: list[str] = Field(default_factory=list, description="Papers the question names or describes, in order.")
    names: list[str] = Field(default_factory=list, description="The names of papers as the question writes them.")
    carried: list[str] = Field(default_factory=list, description="Of those, the ones carried from earlier turns.")
    scope: list[str] | None = Field(default=None, description="Papers retrieval is restricted to.")
    focus: list[str] = Field(default_factory=list, description="Stems of the topic words (question words removed).")
    detail: list[str] = Field(default_factory=list, description="Stems of the asked-for thing ('batch size').")
    unknown_names: list[str] = Field(default_factory=list, description="Names the papers never mention.")
    contrast: list[str] = Field(default_factory=list, description="Stems the question sets against ('X instead of Y').")
    asserted: list[str] = Field(default_factory=list, description="Stems the question asserts ('X instead of Y').")
    cue: str | None = Field(default=None, description="The kind of sentence that answers, when the question's words "
                                                      "say it rather than its form ('the main results of X': a "
                                                      "result); else the kind's own.")


class Evidence(BaseModel):
    """One sentence of one retrieved passage, scored against the question."""

    n: int = Field(description="The number of the source it comes from.")
    paper_id: str
    start: int = Field(description="Offset of the sentence within the source text.")
    end: int
    pos: int = Field(description="Offset within the paper's abstract (orders sentences of one paper).")
    text: str
    dense: float = 0.0
    topical: float = Field(0.0, description="Similarity to the question without the papers' names (dense when it "
                                            "names none).")
    lexical: float = 0.0
    score: float = 0.0


class Withheld(BaseModel):
    """A sentence of a passage that instructs the reader (a link and a request, a command): never part of an answer."""

    n: int
    paper_id: str
    text: str = Field(description="The sentence, its links masked ('visit [link] and paste your password').")


class Retrieved(BaseModel):
    """The numbered passages and their scored sentences."""

    sources: list[Source] = Field(default_factory=list)
    ranking: list[str] = Field(default_factory=list, description="Unique paper ids in retrieval order.")
    evidence: list[Evidence] = Field(default_factory=list)
    withheld: list[Withheld] = Field(default_factory=list, description="Sentences left out of the evidence because "
                                                                       "they instruct the reader.")


Closed = Literal["answers", "qualifies"]


class Judged(BaseModel):
    """One paper, and the reading model's probability that it answers (or qualifies); None when it was not read."""

    paper_id: str
    p: float | None = None


class Reading(BaseModel):
    """What the reading model said about the candidate papers, and what it cost."""

    closed: Closed
    papers: list[Judged] = Field(default_factory=list)
    mentions: list[Judged] = Field(default_factory=list, description="When the rules abstain because the papers do "
                                   "not use the asked words: per paper, the probability that it mentions them in "
                                   "any words.")
    model: str = ""
    stats: ReadStats = Field(default_factory=ReadStats)

    def p(self, paper_id: str) -> float | None:
        """The probability for one paper (None when not read)."""
        return next((j.p for j in self.papers if j.paper_id == paper_id), None)

    @property
    def read(self) -> list[Judged]:
        """The papers the model read, in the order they were asked about."""
        return [j for j in self.papers if j.p is not None]


class Signals(BaseModel):
    """The measurements the decision is made from (kept for the evaluation and the fit)."""

    best: float = 0.0
    coverage: float = 0.0
    kind_evidence: bool = True
    lead: str = Field("", description="The paper of the best sentence: the one the rules answer from.")


class Decision(BaseModel):
    """Whether to answer, and why not when not. The reason is shown to the user and must be true."""

    action: Literal["answer", "abstain", "correct_premise"]
    reason: str = ""
    signals: Signals = Field(default_factory=Signals)
    qualifying: list[str] = Field(default_factory=list, description="For lists: the papers that qualify.")
    answering: list[str] = Field(default_factory=list, description="The papers the answer may cite (the reading "
                                                                   "model's), in order; empty: no restriction.")
    unmentioned: str = Field("", description="An abstention because the papers do not use these words of the "
                                             "question (the reading model is asked whether they say it otherwise).")

    def allowed(self, sources: list[Source]) -> list[Source]:
        """The sources of the papers the answer may cite: what an LLM writer is given, and may be credited with."""
        return [s for s in sources if not self.answering or s.paper_id in self.answering]


class Draft(BaseModel):
    """The composed answer before verification."""

    text: str
    answerer: str
    sentences: list[Sentence] | None = Field(default=None, description="Set by the extractive composer; an LLM's "
                                                                       "text is split and checked instead.")
    notice: str = ""


class State(BaseModel):
    """Everything the chain knows about one question so far."""

    request: Request
    analysis: Analysis | None = None
    retrieved: Retrieved | None = None
    reading: Reading | None = None
    decision: Decision | None = None
    draft: Draft | None = None
    extractive: Draft | None = Field(default=None, description="The extractive draft kept beside an LLM's answer.")
