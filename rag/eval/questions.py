"""The evaluation question set: one typed record per question, read from JSONL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

Category = Literal["factoid", "compare", "multi", "followup", "unanswerable"]
CATEGORIES: tuple[str, ...] = ("factoid", "compare", "multi", "followup", "unanswerable")


class Question(BaseModel):
    """One evaluation question with its gold papers and expected facts (regex alternatives)."""

    id: str
    question: str
    category: Category
    gold_papers: list[str] = Field(default_factory=list)
    facts: list[list[str]] = Field(default_factory=list)
    history: list[dict[str, str]] = Field(default_factory=list)
    expect_abstain: bool = False
    kind: str | None = Field(default=None, description="The question's form (what, how_much, list, …), for reports.")
    split: Literal["tune", "test"] | None = Field(default=None, description="tune: may be fitted on; test: never.")
    ok_papers: list[str] = Field(default_factory=list, description="Papers that may be cited without being wrong.")

    @field_validator("facts")
    @classmethod
    def _facts_compile(cls, facts: list[list[str]]) -> list[list[str]]:
        """Reject a fact with no alternatives or a regex that does not compile."""
        for alternatives in facts:
            if not alternatives:
                raise ValueError("a fact needs at least one alternative")
            for pattern in alternatives:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"fact regex {pattern!r} does not compile: {exc}") from exc
        return facts


def load_questions(path: str | Path) -> list[Question]:
    """Questions from a JSONL file; ValueError naming the line on a bad record or duplicate id."""
    questions: list[Question] = []
    seen: set[str] = set()
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            question = Question.model_validate_json(line)
        except ValueError as exc:
            raise ValueError(f"{path}, line {lineno}: {exc}") from exc
        if question.id in seen:
            raise ValueError(f"{path}, line {lineno}: duplicate question id {question.id!r}")
        seen.add(question.id)
        questions.append(question)
    return questions
