"""What the collection holds, for people: one card per paper (what it does, its headline figure), reported results
split into metric, value and baseline, and example questions the pipeline really answers (cached per index
generation). No model call and no UI: rules over the abstracts, and the pipeline for the answerability check."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import BaseModel, Field

from rag.answer.analyse import short_name
from rag.answer.evidence import BACKGROUND
from rag.figures import Figure, figure_of
from rag.text import sentences
from rag.types import Answer, Paper

__all__ = ["ExampleCache", "Figure", "PaperCard", "Result", "candidate_questions", "comparable", "figure_of",
           "headline_figure", "paper_card", "reported_results", "summary_sentence"]

log = logging.getLogger(__name__)

_DOES = re.compile(r"\b(we (?:propose|present|introduce|develop|design|build|describe|study|analy[sz]e|investigate|"
                   r"conduct|explore|evaluate|review|survey)|this (?:paper|work|study|review|article) (?:introduces|"
                   r"presents|proposes|describes|studies|analy[sz]es|investigates|explores|reviews|surveys)|introduces|"
                   r"presents|proposes)", re.IGNORECASE)


class PaperCard(BaseModel):
    """A paper as the landing page shows it."""

    paper_id: str
    name: str
    title: str
    summary: str = Field(description="One sentence of the abstract saying what the paper does.")
    figure: Figure | None = None
    authors: list[str] = Field(default_factory=list)
    year: int | None = None


class Result(BaseModel):
    """A paper's reported figure inside one answer, with the passage number that backs it."""

    paper_id: str
    name: str
    n: int
    figure: Figure


def headline_figure(paper: Paper) -> Figure | None:
    """The first reported figure in the paper's abstract (results come late: scan from the end)."""
    found = [f for s in sentences(paper.abstract) if (f := figure_of(s))]
    return found[-1] if found else None


def summary_sentence(paper: Paper) -> str:
    """The sentence of the abstract that says what the paper does: the one introducing it, else one naming it, else
    the first that is not background."""
    sents = sentences(paper.abstract)
    if not sents:
        return paper.title
    names = [a.lower() for a in paper.aliases]
    for s in sents:
        if _DOES.search(s) and not BACKGROUND.search(s) and not s.lower().startswith(("however", "but ")):
            return s.strip()
    for s in sents:
        if any(s.lower().startswith(n + " is ") for n in names):
            return s.strip()
    for s in sents:
        if any(n in s.lower() for n in names):
            return s.strip()
    return next((s.strip() for s in sents if not BACKGROUND.search(s)), sents[0].strip())


def paper_card(paper: Paper) -> PaperCard:
    """A paper's landing card."""
    return PaperCard(paper_id=paper.id, name=short_name(paper, paper.id), title=paper.title,
                     summary=summary_sentence(paper), figure=headline_figure(paper), authors=list(paper.authors),
                     year=paper.year)


def reported_results(answer: Answer, names: dict[str, str] | None = None) -> list[Result]:
    """Each paper's reported figure in an answer's passages, one per paper, the passages the answer cites first."""
    names = names or {}
    cited = [n for s in answer.sentences for n in s.citations]
    order = sorted(answer.sources, key=lambda s: (s.n not in cited, cited.index(s.n) if s.n in cited else s.n))
    out: dict[str, Result] = {}
    for source in order:
        if source.paper_id in out:
            continue
        found = [f for s in sentences(source.text) if (f := figure_of(s))]
        if found:
            out[source.paper_id] = Result(paper_id=source.paper_id, name=names.get(source.paper_id, source.title),
                                          n=source.n, figure=found[-1])
    ranked = [p for p in answer.paper_ids if p in out] + [p for p in out if p not in answer.paper_ids]
    return [out[p] for p in ranked]


def comparable(results: list[Result]) -> list[Result]:
    """The results worth a chart: those sharing the most common unit, when at least two papers give one."""
    by_unit: dict[str, list[Result]] = {}
    for r in results:
        by_unit.setdefault(r.figure.unit, []).append(r)
    best = max(by_unit.values(), key=len, default=[])
    return best if len(best) >= 2 else []


def _short(text: str, words: int = 4) -> bool:
    return 0 < len(text.split()) <= words


def candidate_questions(cards: list[PaperCard]) -> list[str]:
    """Questions the collection suggests, most telling first: a figure against its baseline, a comparison of two
    papers with comparable figures, what a named paper is, what problem it solves."""
    named = [c for c in cards if c.name != c.title]
    with_figure = [c for c in named if c.figure]
    out: list[str] = []
    for c in with_figure:
        f = c.figure
        assert f is not None
        if _short(f.baseline) and not f.baseline.lower().startswith(("traditional", "existing", "sota", "state")):
            out.append(f"By how much does {c.name} beat {f.baseline}?")
            break
    factors = [c for c in with_figure if c.figure and c.figure.unit == "x"]
    if len(factors) >= 2:
        out.append(f"Compare {factors[0].name} and {factors[1].name}")
    out += [f"What is {c.name}?" for c in named[:3]]
    out += [f"What problem does {c.name} solve?" for c in named[3:6]]
    return list(dict.fromkeys(out))


class ExampleCache:
    """Example questions per index generation, checked by answering each once (kept: those that do not abstain).
    Held in memory and in a small JSON file in the data dir, so a restart on the same index does not recheck."""

    def __init__(self, path: Path | None = None) -> None:
        self.path, self._lock, self._memory = path, threading.Lock(), {}  # type: ignore[var-annotated]

    def _read(self) -> dict[str, list[str]]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {str(k): [str(q) for q in v] for k, v in data.items()} if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, generation: str, cards: list[PaperCard], answers: Callable[[str], Answer],
            n: int = 4) -> list[str]:
        """The examples for this generation: cached, else candidates answered once, the abstaining ones dropped."""
        with self._lock:
            if generation in self._memory:
                return self._memory[generation]
            stored = self._read().get(generation) if generation else None
            if stored is not None:
                self._memory[generation] = stored
                return stored
            kept = list(_answerable(candidate_questions(cards), answers, n))
            self._memory[generation] = kept
            if self.path is not None and generation:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self.path.write_text(json.dumps({generation: kept}), encoding="utf-8")
                except OSError:
                    log.warning("could not cache the example questions in %s", self.path, exc_info=True)
            return kept


def _answerable(questions: Iterable[str], answers: Callable[[str], Answer], n: int) -> Iterable[str]:
    """The first n questions the pipeline answers without abstaining."""
    kept = 0
    for q in questions:
        if kept >= n:
            return
        try:
            ok = not answers(q).abstained
        except Exception:  # a failing check drops the question; the page still loads
            log.warning("checking the example %r failed", q, exc_info=True)
            ok = False
        if ok:
            kept += 1
            yield q
        else:
            log.info("example question %r dropped: the pipeline abstains", q)
