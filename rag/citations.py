"""Citation checking for every answerer: drop citations to missing passages, test each sentence's support."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from rag.support import support_multi
from rag.text import CITATION, citation_group, citation_numbers
from rag.text import sentences as split_into_sentences
from rag.types import Sentence, Source

_MOVED_CITES = re.compile(rf"([.!?])\s*((?:\s*{CITATION.pattern})+)")  # "Text. [1]": cites the sentence before
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")
GROUNDED_SHARE = 0.5  # an LLM answer with fewer supported sentences than this is not passed off as grounded


@dataclass
class CheckResult:
    """The checked answer: cleaned text, sentences with support flags, and counts."""

    text: str
    sentences: list[Sentence]
    fabricated: int
    supported: int
    removed: list[int]

    @property
    def grounded(self) -> bool:
        """True when no citation was fabricated and most sentences are supported by what they cite."""
        return bool(self.sentences) and self.fabricated == 0 and self.supported / len(self.sentences) >= GROUNDED_SHARE


def _units(text: str) -> list[str]:
    """Checkable units: table cells for Markdown tables, sentences for prose (citations stay attached)."""
    units: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or _TABLE_RULE.match(stripped):
            continue
        if stripped.startswith("|"):
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            units.extend(c for c in cells[1:] if c and CITATION.search(c))  # first cell names the paper
            continue
        stripped = re.sub(r"^[-*]\s+", "", stripped)
        # A citation belongs to the sentence before it: "Text. [1]" -> "Text [1]." so the split keeps them together.
        stripped = _MOVED_CITES.sub(lambda m: f" {m.group(2).strip()}{m.group(1)}", stripped)
        for piece in re.split(r"(?<=\])\s+(?=[A-Z*])", stripped):
            units.extend(sent.strip() for sent in split_into_sentences(piece) if sent.strip())
    return units


def _strip_label(unit: str) -> str:
    """Drop a leading '**Name** (*Title*):' paper label and a trailing ellipsis before checking support."""
    unit = re.sub(r"^\*\*[^*]+\*\*(\s*\(\*[^)]*\*\))?\s*:\s*", "", unit)
    unit = re.sub(r"^\*[^*]+\*\s*:\s*", "", unit)
    return unit.replace(" …", "").replace("…", "")


def known_citations(text: str, valid: Collection[int], removed: list[int] | None = None) -> str:
    """text with citations to passages that do not exist removed (their numbers appended to `removed`)."""

    def fix(match: re.Match[str]) -> str:
        nums = citation_group(match.group(1))
        if removed is not None:
            removed.extend(n for n in nums if n not in valid)
        return "".join(f"[{n}]" for n in nums if n in valid)

    return CITATION.sub(fix, text)


_OPEN_MARKER = re.compile(r"\[[\d\s,;]*$")  # a trailing '[1, 2' that may yet become a citation marker


class StreamedCitations:
    """Text streamed piece by piece with only citations to passages that exist: what cannot be taken back (an
    OpenAI stream) never shows a made-up [9]. A trailing '[…' is held back until it is known to be a marker or not."""

    def __init__(self, valid: Collection[int]) -> None:
        self.valid, self._pending = set(valid), ""

    def feed(self, delta: str) -> str:
        """The text that can be sent now."""
        text = self._pending + delta
        tail = _OPEN_MARKER.search(text)
        cut = tail.start() if tail else len(text)
        self._pending = text[cut:]
        return known_citations(text[:cut], self.valid)

    def flush(self) -> str:
        """Whatever is still held back (the stream ended or was abandoned)."""
        text, self._pending = self._pending, ""
        return known_citations(text, self.valid)


def check_citations(text: str, sources: list[Source], attribute: Collection[int] = ()) -> CheckResult:
    """Remove citations to passages that do not exist and mark each sentence supported or not. attribute: passages a
    sentence that cites nothing may be attributed to, after the fact: it gets the citation of the first of them
    that supports it on its own, by the same check (a small model states a passage's fact and forgets the [n])."""
    by_n = {s.n: s for s in sources}
    removed: list[int] = []
    cleaned = known_citations(text, by_n, removed)
    sentences: list[Sentence] = []
    at = 0  # where the next unit is looked for in the text, for attributions
    for unit in _units(cleaned):
        cites = list(dict.fromkeys(citation_numbers(unit)))
        body = CITATION.sub("", _strip_label(unit)).strip()
        if not body:
            continue
        found = cleaned.find(unit, at)
        at = found + len(unit) if found >= 0 else at
        attributed = None
        if not cites and found >= 0:
            attributed = next((n for n in attribute if n in by_n and support_multi(body, [by_n[n].text]).supported),
                              None)
            if attributed is not None:
                cites = [attributed]
                cleaned = f"{cleaned[:at]} [{attributed}]{cleaned[at:]}"
                at += len(f" [{attributed}]")
        # an attributed sentence was just found supported by its passage: not checked twice
        supported = attributed is not None or (
            bool(cites) and support_multi(body, [by_n[n].text for n in cites]).supported)
        spans = []
        for n in cites:
            pos = by_n[n].text.find(body.rstrip(" ."))
            if pos >= 0:
                spans.append((n, pos, pos + len(body.rstrip(" ."))))
        sentences.append(Sentence(text=body, citations=cites, supported=supported, spans=spans))
    return CheckResult(text=cleaned, sentences=sentences, fabricated=len(removed),
                       supported=sum(s.supported for s in sentences), removed=removed)
