"""Which papers a text names: an inverted index of the papers' aliases, ids and title words, built once per index
view, so that the work per question grows with the question, not with the number of papers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cached_property, lru_cache

from rag.text import content_words
from rag.types import Paper

TITLE_GENERIC = frozenset("model models large language llm llms training inference efficient sharding learning "
                          "data via based neural network networks scale scaling".split())
_RUN = re.compile(r"\w+")


@lru_cache(maxsize=100_000)
def _name_pattern(name: str) -> re.Pattern[str]:
    """A compiled whole-word pattern for one paper name (re's own cache holds only 512)."""
    return re.compile(rf"(?<![\w-]){re.escape(name.lower())}(?![\w])")


def title_words(title: str) -> frozenset[str]:
    """A title's distinctive words."""
    return frozenset(w for w in content_words(title) if w not in TITLE_GENERIC)


def _names(paper: Paper) -> list[str]:
    """What a question may call a paper by: its aliases and its id (with and without hyphens)."""
    return [n for n in [*paper.aliases, paper.id] + ([paper.id.replace("-", " ")] if "-" in paper.id else [])
            if len(n) >= 2]


class NameIndex:
    """Papers by the first word of each of their names and by their titles' distinctive words.

    A name can only match where the question has a word equal to the name's first run of word characters (the
    pattern needs a non-word character before the name, and the name's first run ends where the name has a non-word
    character or ends, as the question's run must too), so only the papers listed under the question's words are
    checked with the exact pattern: the same answer as checking every paper, in time that grows with the question.
    """

    def __init__(self, papers: Iterable[Paper]) -> None:
        self.ids: list[str] = []
        self._by_run: dict[str, list[tuple[int, str]]] = {}
        self._always: list[tuple[int, str]] = []  # names that do not start with a word character
        self._by_word: dict[str, list[int]] = {}
        self._title_sizes: list[int] = []
        for i, paper in enumerate(papers):
            self.ids.append(paper.id)
            for name in _names(paper):
                low = name.lower()
                run = _RUN.match(low)
                (self._by_run.setdefault(run.group(0), []) if run else self._always).append((i, name))
            words = title_words(paper.title)
            self._title_sizes.append(len(words))
            for w in words:
                self._by_word.setdefault(w, []).append(i)

    def mentioned(self, text: str) -> list[str]:
        """Ids of papers the text names: by alias or id, in the order they appear; failing that, by most of a
        title's distinctive words ("according to Hecate, why do MoE experts…" names Hecate, not the paper whose
        title says "MoE … Expert")."""
        q = text.lower()
        candidates: dict[int, list[str]] = {}
        for i, name in [hit for run in set(_RUN.findall(q)) for hit in self._by_run.get(run, ())] + self._always:
            candidates.setdefault(i, []).append(name)
        hits: list[tuple[int, str]] = []
        for i, names in candidates.items():
            positions = [m.start() for n in names for m in [_name_pattern(n).search(q)] if m]
            if positions:
                hits.append((min(positions), self.ids[i]))
        if hits:
            return [pid for _, pid in sorted(hits)]
        shared: dict[int, int] = {}
        for w in set(content_words(text)):
            for i in self._by_word.get(w, ()):
                shared[i] = shared.get(i, 0) + 1
        return [self.ids[i] for i in sorted(shared)
                if self._title_sizes[i] >= 2 and shared[i] >= max(2, int(0.6 * self._title_sizes[i]))]


class PaperList(list[Paper]):
    """The papers of one index view in order (treat it as read-only), with what per-question work needs built once:
    the name index, and a by-id map whose papers carry their full text, read on demand (``full``)."""

    def __init__(self, papers: Iterable[Paper], full: Callable[[Paper], Paper] | None = None) -> None:
        super().__init__(papers)
        self._full = full

    @cached_property
    def names(self) -> NameIndex:
        """The name index of these papers."""
        return NameIndex(self)

    @cached_property
    def by_id(self) -> Mapping[str, Paper]:
        """Each paper by id, with its body when it has one."""
        return _FullPapers({p.id: p for p in self}, self._full)


class _FullPapers(Mapping[str, Paper]):
    """Papers by id; a paper's body is attached when it is looked up (and kept: a question touches a handful)."""

    def __init__(self, papers: dict[str, Paper], full: Callable[[Paper], Paper] | None) -> None:
        self._papers, self._full = papers, full
        self._done: set[str] = set()

    def __getitem__(self, pid: str) -> Paper:
        paper = self._papers[pid]
        if self._full is not None and pid not in self._done:
            paper = self._papers[pid] = self._full(paper)
            self._done.add(pid)
        return paper

    def __iter__(self) -> Iterator[str]:
        return iter(self._papers)

    def __len__(self) -> int:
        return len(self._papers)

    def __contains__(self, pid: object) -> bool:
        return pid in self._papers


def mentioned_papers(question: str, papers: list[Paper]) -> list[str]:
    """Ids of papers the question names (see NameIndex.mentioned); a PaperList's index is built once."""
    return (papers.names if isinstance(papers, PaperList) else NameIndex(papers)).mentioned(question)


def paper_map(papers: list[Paper]) -> Mapping[str, Paper]:
    """Papers by id, with their full text when the list is a view's PaperList."""
    return papers.by_id if isinstance(papers, PaperList) else {p.id: p for p in papers}
