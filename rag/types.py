"""Typed records that flow through the pipeline."""

from __future__ import annotations

from bisect import bisect_right

from pydantic import BaseModel, Field


class Body(BaseModel):
    """A paper's full text beyond its abstract (from a PDF), with where each page and section starts in it."""

    text: str
    page_starts: list[int] = Field(
        default_factory=list, description="Character offset in text where page i+1 begins (ascending, first is 0)."
    )
    first_page: int = Field(default=1, description="The page number printed for page_starts[0].")
    sections: list[tuple[int, str]] = Field(
        default_factory=list, description="(offset, heading) of each section heading found, ascending."
    )

    def page_at(self, offset: int) -> int:
        """The page number holding the character at offset (0 when the body has no page map)."""
        if not self.page_starts:
            return 0
        return self.first_page + max(0, bisect_right(self.page_starts, offset) - 1)

    def section_at(self, offset: int) -> str:
        """The heading of the section holding the character at offset ("" before the first heading)."""
        i = bisect_right([o for o, _ in self.sections], offset) - 1
        return self.sections[i][1] if i >= 0 else ""


class Paper(BaseModel):
    """One paper: a stable id, its title, abstract and short aliases, bibliographic metadata where known."""

    id: str
    title: str
    abstract: str
    aliases: list[str] = Field(default_factory=list)
    source: str = Field(default="", description="Where it was read from: 'file:line', or the file name.")
    kind: str = Field(default="", description="What it was read from: page, jsonl, markdown, pdf, bibtex, ris.")
    authors: list[str] = Field(default_factory=list)
    year: int | None = None
    venue: str = ""
    doi: str = ""
    arxiv: str = ""
    url: str = ""
    pages: int = Field(default=0, description="Page count of the PDF it came from (0 when not from a PDF).")
    added: str = Field(default="", description="When it was first indexed (ISO 8601, UTC).")
    digest: str = Field(default="", description="Content hash of what was indexed: same digest, nothing to redo.")
    origin: str = Field(default="", exclude=True, description="Which file it was read from, as a private key (its "
                                                              "resolved path, hashed): only that file updates it.")
    body: Body | None = Field(default=None, description="Full text beyond the abstract; not kept in paper records.")

    @property
    def text(self) -> str:
        """Title, abstract and body: everything the paper itself says here (for checks of which words it uses)."""
        return f"{self.title} {self.abstract} {self.body.text}" if self.body else f"{self.title} {self.abstract}"


class Chunk(BaseModel):
    """A token-bounded passage of one paper's abstract with its character offsets."""

    id: str
    paper_id: str
    title: str
    text: str
    start: int
    end: int
    index: int
    page: int = Field(default=0, description="First page of the passage (0: not from a paged body).")
    page_end: int = 0
    section: str = ""
    page_breaks: list[int] = Field(default_factory=list,
                                   description="Offsets in text where pages page+1, page+2 … begin.")


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
    page: int | None = Field(default=None, description="The page it starts on (None: not from a PDF's pages).")
    page_end: int | None = Field(default=None, description="The page it ends on (None: not from a PDF's pages).")
    section: str = ""
    page_breaks: list[int] = Field(default_factory=list, description="Offsets in text where pages page+1 … begin.")

    @property
    def page_label(self) -> str:
        """'p. 7', 'pp. 7–8', or '' for a passage of an abstract."""
        return page_label(self.page, self.page_end)

    def page_at(self, offset: int) -> int | None:
        """The page holding the passage's character at offset (None for a passage of an abstract)."""
        return self.page + bisect_right(self.page_breaks, offset) if self.page else None

    def pages_of(self, spans: list[tuple[int, int]]) -> str:
        """The page label of the given (start, end) spans of the passage ('' when it has no pages)."""
        if not self.page or not spans:
            return self.page_label
        pages = [self.page + bisect_right(self.page_breaks, x) for a, b in spans for x in (a, max(a, b - 1))]
        return page_label(min(pages), max(pages))


def page_label(page: int | None, page_end: int | None = None) -> str:
    """'p. 7' for one page, 'pp. 7–8' for a range, '' when there is no page."""
    if not page:
        return ""
    return f"pp. {page}–{page_end}" if page_end and page_end > page else f"p. {page}"


class Sentence(BaseModel):
    """One answer sentence, the passages it cites and whether they support it."""

    text: str
    citations: list[int] = Field(default_factory=list)
    supported: bool = False
    spans: list[tuple[int, int, int]] = Field(
        default_factory=list, description="(n, start, end): where the sentence's evidence sits in source n."
    )


class ReadingSummary(BaseModel):
    """What the reading model judged for an answer: per paper read, its probability of answering the question (or, for
    a list, of being one the question asks for), and what the reading cost beside llama.cpp's own time (the floor)."""

    model: str
    closed: str = Field(description="'answers' or 'qualifies' (a list question).")
    papers: dict[str, float] = Field(default_factory=dict)
    unread: int = Field(0, description="Papers not read within RAG_READER_BUDGET (the rules decided them).")
    cached: int = Field(0, description="Judgments answered from the cache.")
    prefill_tokens: int = 0
    read_ms: float = 0.0
    llama_ms: float = Field(0.0, description="llama.cpp's own prefill time for the same tokens.")


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
    reading: ReadingSummary | None = None
    removed_citations: list[int] = Field(
        default_factory=list, description="Citation numbers the answerer wrote that point at no passage (removed)."
    )

    def cited(self) -> list[Source]:
        """The sources the answer's checked sentences cite, in source order."""
        numbers = {n for s in self.sentences for n in s.citations}
        return [s for s in self.sources if s.n in numbers]

    def source(self, n: int) -> Source | None:
        """Source n ([n] in the text), if there is one."""
        return next((s for s in self.sources if s.n == n), None)

    def cited_pages(self, n: int) -> str:
        """Where in source n this answer's sentences cite it: 'p. 7', 'pp. 7–8', or '' (no pages)."""
        source = self.source(n)
        if source is None:
            return ""
        return source.pages_of([(a, b) for s in self.sentences for m, a, b in s.spans if m == n])

    def cited_spans(self, n: int) -> list[tuple[int, int]]:
        """Where this answer's evidence sits in source n's text: merged (start, end) spans, each extended to its full
        stop (a sentence the check could not place counts where the passage quotes it verbatim)."""
        source = self.source(n)
        if source is None:
            return []
        text = source.text
        spans = [(a, b) for s in self.sentences for m, a, b in s.spans if m == n]
        for s in self.sentences:
            body = s.text.strip().rstrip(". ")
            pos = text.find(body) if not s.spans and len(body) > 20 else -1
            if pos >= 0:
                spans.append((pos, pos + len(body)))
        spans = [(a, b + 1 if text[b:b + 1] in {".", "!", "?"} else b) for a, b in spans]
        merged: list[list[int]] = []
        for a, b in sorted((max(0, a), min(len(text), b)) for a, b in spans if b > a):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        return [(a, b) for a, b in merged]

    def cited_sentence(self, n: int, limit: int = 240) -> str:
        """The sentence of source n this answer relies on (its first cited span, else the passage's opening, cut at
        limit characters): what a reference list quotes, so two passages of one paper read differently."""
        source = self.source(n)
        if source is None:
            return ""
        spans = self.cited_spans(n)
        text = " ".join((source.text[spans[0][0]:spans[0][1]] if spans else source.text).split())
        return text if spans or len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"
