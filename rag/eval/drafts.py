"""Draft test questions for a new library, from each paper's abstract: its headline number, the method's name and
what it is compared against (the headline figure and summary come from rag.collection). A draft keeps only facts
its abstract states; drafts are never evaluated until a person accepts them (rag.eval.library)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from rag.answer.analyse import short_name
from rag.collection import headline_figure
from rag.eval.facts import fact_pattern
from rag.eval.metrics import fact_found
from rag.eval.questions import Question
from rag.types import Paper

_LAST_NUMBER = re.compile(r"(\d+(?:\.\d+)?)\s*(x|×|%)?\s*$")
_VAGUE = re.compile(r"^(?:traditional|existing|prior|previous|sota|state|baseline|conventional|other)", re.IGNORECASE)


def _headline_value(value: str, unit: str) -> str:
    """The headline number of a figure as a fact: '1.19x-2.50x' → '2.50x', '30%' → '30%'."""
    m = _LAST_NUMBER.search(value)
    number = m.group(1) if m else value
    return f"{number}{'%' if unit == '%' else 'x'}"


def _keep(question: Question, abstract: str) -> Question | None:
    """The draft if every one of its facts is in the abstract, else None."""
    return question if question.facts and all(fact_found(f, abstract) for f in question.facts) else None


def draft_questions(paper: Paper) -> list[Question]:
    """Up to three drafts for one paper: how much it gains, what it proposes, what it is compared against."""
    name = short_name(paper, paper.id)
    named = name != paper.title and name.lower() in paper.abstract.lower()
    subject = name if named else f'the paper "{paper.title}"'
    figure = headline_figure(paper)
    drafts: list[Question | None] = []
    base = {"category": "factoid", "gold_papers": [paper.id], "split": None}
    if figure is not None:
        against = f" over {figure.baseline}" if figure.baseline else ""
        headline = _headline_value(figure.value, figure.unit)
        if figure.metric == "speedup":
            asked = f"What speedup does {subject} report{against}?"
        elif figure.metric:
            asked = f"By how much does {subject} improve {figure.metric}{against}?"
        else:
            asked = f"What is the headline result of {subject}{against}?"
        drafts.append(_keep(Question(id=f"draft-{paper.id}-headline", kind="how_much", question=asked,
                                     facts=[[fact_pattern(headline)]], **base), paper.abstract))
    if named:
        drafts.append(_keep(Question(id=f"draft-{paper.id}-method", kind="what",
                                     question=f'What method or system does the paper "{paper.title}" propose?',
                                     facts=[[fact_pattern(name)]], **base), paper.abstract))
    if figure is not None and figure.baseline and not _VAGUE.match(figure.baseline):
        drafts.append(_keep(Question(id=f"draft-{paper.id}-baseline", kind="what",
                                     question=f"What does {subject} compare itself against?",
                                     facts=[[fact_pattern(figure.baseline)]], **base), paper.abstract))
    return [d for d in drafts if d is not None]


def draft_question_set(papers: Iterable[Paper]) -> list[Question]:
    """Drafts for every paper, in library order."""
    return [q for paper in papers for q in draft_questions(paper)]
