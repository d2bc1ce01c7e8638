"""Chunking: token-bounded, sentence-aligned passages with offsets and content-hash ids (unique per paper)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from langchain_text_splitters import RecursiveCharacterTextSplitter

from rag.text import ENCODING, SENTENCE_BOUNDARY
from rag.types import Chunk, Paper


def make_splitter(chunk_tokens: int, overlap: int) -> RecursiveCharacterTextSplitter:
    """LangChain's tiktoken-aware splitter, cutting at sentence ends first, then clauses, then words."""
    return RecursiveCharacterTextSplitter.from_tiktoken_encoder(
        encoding_name=ENCODING,
        chunk_size=chunk_tokens,
        chunk_overlap=overlap,
        separators=[SENTENCE_BOUNDARY, r"(?<=[;:])\s+", r"\s+"],
        is_separator_regex=True,
        keep_separator=True,
        strip_whitespace=True,
    )


def chunk_id(paper_id: str, text: str, occurrence: int = 0) -> str:
    """Content-hash id: the same passage of the same paper always gets the same id.

    A passage whose text repeats earlier in the same abstract gets its occurrence number hashed in too, so ids
    stay unique within a paper (Chroma refuses duplicate ids in one upsert) and stay stable across re-ingests;
    the first occurrence keeps the plain content hash, so indexes built before this rule keep their ids.
    """
    key = f"{paper_id}\n{text}" if occurrence == 0 else f"{paper_id}\n{text}\n#{occurrence}"
    return f"{paper_id}:{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def _split(text: str, splitter: RecursiveCharacterTextSplitter, what: str) -> Iterator[tuple[str, int]]:
    """(passage, start offset) of each piece of text, in order."""
    start = -1
    for i, piece in enumerate(splitter.split_text(text)):
        # Offsets are found here: LangChain's add_start_index mixes token overlap with character offsets.
        start = text.find(piece, start + 1)
        if start < 0:
            raise ValueError(f"chunk {i} of {what} is not a substring of its text")
        yield piece, start


def chunk_paper(paper: Paper, chunk_tokens: int = 160, overlap: int = 32) -> list[Chunk]:
    """Split a paper's abstract, then its body if it has one, into chunks with ids, offsets, pages and sections.

    Offsets are into the abstract for abstract chunks and into body.text for body chunks (those carry page > 0).
    """
    splitter = make_splitter(chunk_tokens, overlap)
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}

    def add(text: str, start: int, **where: object) -> None:
        seen[text] = occurrence = seen.get(text, -1) + 1
        chunks.append(Chunk(id=chunk_id(paper.id, text, occurrence), paper_id=paper.id, title=paper.title, text=text,
                            start=start, end=start + len(text), index=len(chunks), **where))  # type: ignore[arg-type]

    for text, start in _split(paper.abstract, splitter, f"the abstract of {paper.id}"):
        add(text, start)
    body = paper.body
    if body is not None and body.text.strip():
        for text, start in _split(body.text, splitter, f"the body of {paper.id}"):
            end = start + len(text)
            breaks = [o - start for o in body.page_starts if start < o < end]
            add(text, start, page=body.page_at(start), page_end=body.page_at(end - 1), section=body.section_at(start),
                page_breaks=breaks)
    return chunks


def embedding_text(chunk: Chunk) -> str:
    """What is embedded for a chunk: its paper's title, then the passage, so the paper's name finds it."""
    return f"{chunk.title}\n{chunk.text}"
