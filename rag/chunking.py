"""Chunking: token-bounded, sentence-aligned passages with offsets and content-hash ids (unique per paper)."""

from __future__ import annotations

import hashlib

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


def chunk_paper(paper: Paper, chunk_tokens: int = 160, overlap: int = 32) -> list[Chunk]:
    """Split a paper's abstract into chunks carrying paper id, title and character offsets."""
    splitter = make_splitter(chunk_tokens, overlap)
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    start = -1
    for i, text in enumerate(splitter.split_text(paper.abstract)):
        # Offsets are found here: LangChain's add_start_index mixes token overlap with character offsets.
        start = paper.abstract.find(text, start + 1)
        if start < 0:
            raise ValueError(f"chunk {i} of {paper.id} is not a substring of its abstract")
        seen[text] = occurrence = seen.get(text, -1) + 1
        chunks.append(Chunk(id=chunk_id(paper.id, text, occurrence), paper_id=paper.id, title=paper.title, text=text,
                            start=start, end=start + len(text), index=i))
    return chunks


def embedding_text(chunk: Chunk) -> str:
    """What is embedded for a chunk: its paper's title, then the passage, so the paper's name finds it."""
    return f"{chunk.title}\n{chunk.text}"
