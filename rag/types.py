"""Typed records that flow through the pipeline."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Paper(BaseModel):
    """One paper: a stable id, its title, abstract and short aliases."""

    id: str
    title: str
    abstract: str
    aliases: list[str] = Field(default_factory=list)
    source: str = ""

    @property
    def text(self) -> str:
        """Title and abstract: everything the paper itself says here (for checks of which words it uses)."""
        return f"{self.title} {self.abstract}"


class Chunk(BaseModel):
    """A token-bounded passage of one paper's abstract with its character offsets."""

    id: str
    paper_id: str
    title: str
    text: str
    start: int
    end: int
    index: int


class Source(BaseModel):
    """A retrieved passage as shown to the user, numbered for citation."""

    n: int
    paper_id: str
    title: str
    chunk_id: str
    text: str
    score: float
    start: int = 0
    end: int = 0


class Sentence(BaseModel):
    """One answer sentence, the passages it cites and whether they support it."""

    text: str
    citations: list[int] = Field(default_factory=list)
    supported: bool = False
    spans: list[tuple[int, int, int]] = Field(
        default_factory=list, description="(n, start, end): where the sentence's evidence sits in source n."
    )


class Answer(BaseModel):
    """A complete answer: text, per-sentence citations, sources and timings."""

    question: str
    standalone_question: str
    answer: str
    abstained: bool
    answerer: str
    sources: list[Source] = Field(default_factory=list)
    sentences: list[Sentence] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    grounded: bool = True
    notice: str = ""
    evidence: str = ""
    closest_papers: list[str] = Field(default_factory=list)
    paper_ids: list[str] = Field(default_factory=list)
    removed_citations: list[int] = Field(
        default_factory=list, description="Citation numbers the answerer wrote that point at no passage (removed)."
    )
