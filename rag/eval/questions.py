"""The evaluation question set: one typed record per question, read from JSONL."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from rag.eval.patterns import compile_fact

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
                compile_fact(pattern)  # ValueError: RE2 cannot take it (too long, lookaround, bad syntax)
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


class QuestionSetCheck(BaseModel):
    """An uploaded question set, validated: the questions that parsed and one line-numbered message per problem."""

    questions: list[Question] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there is at least one question and no error."""
        return bool(self.questions) and not self.errors


def _problem(exc: ValidationError) -> str:
    """A pydantic error as one short sentence per field ('category: Input should be …')."""
    parts = []
    for err in exc.errors():
        if err["type"] == "json_invalid":
            parts.append(f"not valid JSON ({err.get('ctx', {}).get('error', err['msg'])})")
            continue
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def check_question_set(text: str, papers: Iterable[str] | None = None, max_errors: int = 20) -> QuestionSetCheck:
    """Validate JSONL text in the question-set schema: every bad line named by number (up to max_errors), duplicate
    ids refused, gold papers not in the library (when papers is given) reported as warnings."""
    check = QuestionSetCheck()
    known = set(papers) if papers is not None else None
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            question = Question.model_validate_json(line)
        except ValidationError as exc:
            check.errors.append(f"line {lineno}: {_problem(exc)}")
            continue
        if question.id in seen:
            check.errors.append(f"line {lineno}: duplicate question id {question.id!r} (first on line "
                                f"{seen[question.id]})")
            continue
        seen[question.id] = lineno
        check.questions.append(question)
        unknown = [p for p in question.gold_papers if known is not None and p not in known]
        if unknown:
            check.warnings.append(f"line {lineno}: gold paper(s) {', '.join(unknown)} not in this library")
    if len(check.errors) > max_errors:
        check.errors = [*check.errors[:max_errors], f"… and {len(check.errors) - max_errors} more lines with errors"]
    if not check.questions and not check.errors:
        check.errors.append("the file holds no questions (one JSON object per line)")
    return check


def dump_questions(questions: Iterable[Question]) -> str:
    """Questions as JSONL text (the schema of corpus/questions.jsonl, unset optional fields left out)."""
    return "".join(q.model_dump_json(exclude_defaults=True) + "\n" for q in questions)
