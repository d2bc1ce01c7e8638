"""A library's own evaluation files under its data directory: the questions people saved (questions.jsonl, the
schema of corpus/questions.jsonl), the drafts waiting to be accepted (questions-draft.jsonl, never evaluated) and
the 👍/👎 feedback on chat answers (feedback.jsonl). Appends are locked per process and written whole lines."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from rag.eval.questions import Question, dump_questions, load_questions

log = logging.getLogger(__name__)

QUESTIONS_FILE = "questions.jsonl"
DRAFTS_FILE = "questions-draft.jsonl"
FEEDBACK_FILE = "feedback.jsonl"
_LOCK = threading.Lock()

Rating = Literal["up", "down"]


def library_questions_path(data_dir: str | Path) -> Path:
    """The library's own question set: <data_dir>/questions.jsonl."""
    return Path(data_dir) / QUESTIONS_FILE


def drafts_path(data_dir: str | Path) -> Path:
    """The draft questions waiting for a person: <data_dir>/questions-draft.jsonl."""
    return Path(data_dir) / DRAFTS_FILE


def _read(path: Path) -> list[Question]:
    return load_questions(path) if path.is_file() else []


def library_questions(data_dir: str | Path) -> list[Question]:
    """The library's saved (accepted) questions; empty when none were saved."""
    return _read(library_questions_path(data_dir))


def drafts(data_dir: str | Path) -> list[Question]:
    """The drafts not yet accepted."""
    return _read(drafts_path(data_dir))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:24] or "q"


def new_id(existing: Iterable[str], prefix: str = "lib") -> str:
    """The next free id 'lib-001', 'lib-002' …"""
    taken = set(existing)
    n = 1
    while f"{prefix}-{n:03d}" in taken:
        n += 1
    return f"{prefix}-{n:03d}"


def add_question(data_dir: str | Path, question: Question, draft_id: str | None = None) -> Question:
    """Append a question to the library's set (a fresh id when its id is empty or taken) and drop the draft it was
    accepted from; the saved question."""
    with _LOCK:
        path = library_questions_path(data_dir)
        current = _read(path)
        ids = {q.id for q in current}
        if not question.id or question.id in ids:
            question = question.model_copy(update={"id": new_id(ids)})
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(dump_questions([question]))
        _drop_draft(data_dir, draft_id or question.id)
    log.info("saved question %s to %s", question.id, path)
    return question


def save_drafts(data_dir: str | Path, proposed: Iterable[Question]) -> list[Question]:
    """Replace the drafts with proposed ones, leaving out any already accepted (same id or same question)."""
    with _LOCK:
        accepted = _read(library_questions_path(data_dir))
        done = {q.id for q in accepted} | {q.question.strip().lower() for q in accepted}
        kept = [q for q in proposed if q.id not in done and q.question.strip().lower() not in done]
        path = drafts_path(data_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_questions(kept), encoding="utf-8")
    log.info("wrote %d draft questions to %s", len(kept), path)
    return kept


def _drop_draft(data_dir: str | Path, question_id: str) -> None:
    """Remove an accepted draft from the drafts file (caller holds the lock)."""
    path = drafts_path(data_dir)
    left = [q for q in _read(path) if q.id != question_id]
    if path.is_file():
        path.write_text(dump_questions(left), encoding="utf-8")


class Feedback(BaseModel):
    """One 👍/👎 on a chat answer."""

    time: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    rating: Rating
    question: str
    answer: str = ""
    answerer: str = ""
    cited_papers: list[str] = Field(default_factory=list)


class FeedbackCounts(BaseModel):
    """Totals over the feedback file, and the questions most often rated down."""

    up: int = 0
    down: int = 0
    answers: int = 0
    most_down: list[tuple[str, int]] = Field(default_factory=list)


def feedback_path(data_dir: str | Path) -> Path:
    """Where the chat's feedback is kept: <data_dir>/feedback.jsonl."""
    return Path(data_dir) / FEEDBACK_FILE


def record_feedback(data_dir: str | Path, feedback: Feedback) -> None:
    """Append one rating."""
    path = feedback_path(data_dir)
    with _LOCK:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(feedback.model_dump_json() + "\n")


def read_feedback(data_dir: str | Path) -> list[Feedback]:
    """Every rating stored (unreadable lines skipped with a warning)."""
    path = feedback_path(data_dir)
    if not path.is_file():
        return []
    out: list[Feedback] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                out.append(Feedback.model_validate(json.loads(line)))
            except ValueError:
                log.warning("%s, line %d: not a feedback record, skipped", path, lineno)
    return out


def feedback_counts(data_dir: str | Path, top: int = 5) -> FeedbackCounts:
    """👍 and 👎 totals, how many distinct answers were rated, and the questions rated down most."""
    rows = read_feedback(data_dir)
    down = Counter(r.question for r in rows if r.rating == "down")
    return FeedbackCounts(up=sum(r.rating == "up" for r in rows), down=sum(r.rating == "down" for r in rows),
                          answers=len({(r.question, r.answer) for r in rows}), most_down=down.most_common(top))
