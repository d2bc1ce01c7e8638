"""Running an evaluation: answer every question with any answer function, time it, score it, aggregate."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

from pydantic import BaseModel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rag.eval.metrics import Metric, compute_metrics
from rag.eval.questions import CATEGORIES, Question
from rag.eval.score import FAILURE_TAGS, QuestionResult, error_row, score_answer
from rag.types import Answer

log = logging.getLogger(__name__)

AnswerFn = Callable[[Question], Answer]


class RunResult(BaseModel):
    """Every question's result and the metrics of one labelled run."""

    label: str
    rows: list[QuestionResult]
    metrics: dict[str, Metric]
    per_category: dict[str, dict[str, Metric]]
    failures: dict[str, int]


def make_run(label: str, rows: list[QuestionResult]) -> RunResult:
    """A RunResult with overall, per-category and failure-count summaries of rows."""
    per_category = {c: compute_metrics([r for r in rows if r.category == c]) for c in CATEGORIES}
    per_category = {c: v for c, v in per_category.items() if any(r.category == c for r in rows)}
    failures = Counter(r.failure for r in rows)
    return RunResult(label=label, rows=rows, metrics=compute_metrics(rows), per_category=per_category,
                     failures={t: failures.get(t, 0) for t in FAILURE_TAGS})


ProgressFn = Callable[[int, int, str], None]  # (questions done, questions in all, run label)


def evaluate(questions: Sequence[Question], answer_fn: AnswerFn, label: str, progress: bool = True,
             on_step: ProgressFn | None = None) -> RunResult:
    """Answer every question with answer_fn, timing each and recording failures, and score the run.

    progress: a terminal progress bar; on_step: called after each question (the web chat's progress bar)."""
    rows: list[QuestionResult] = []

    def run_one(question: Question) -> QuestionResult:
        t0 = time.perf_counter()
        try:
            answer = answer_fn(question)
        except Exception as exc:  # noqa: BLE001 -- one failing question must not end the run
            elapsed = (time.perf_counter() - t0) * 1000
            log.warning("%s: %s raised %s: %s", label, question.id, type(exc).__name__, exc)
            return error_row(question, f"{type(exc).__name__}: {exc}", elapsed)
        elapsed = (time.perf_counter() - t0) * 1000
        return score_answer(question, answer, elapsed)

    if progress:
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns) as bar:
            task = bar.add_task(label, total=len(questions))
            for i, question in enumerate(questions, start=1):
                rows.append(run_one(question))
                bar.advance(task)
                if on_step is not None:
                    on_step(i, len(questions), label)
    else:
        for i, question in enumerate(questions, start=1):
            rows.append(run_one(question))
            if on_step is not None:
                on_step(i, len(questions), label)
    run = make_run(label, rows)
    log.info("%s: %d questions, accuracy %s", label, len(rows), run.metrics["accuracy"].value)
    return run
