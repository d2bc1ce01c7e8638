"""Evaluations started from an app: one at a time per process (others are told who is running and how far), each
written to <data_dir>/evals/<id>/ (results.jsonl, summary.json, report.html, report.md, meta.json) and listed back."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field

from rag.eval.questions import Question
from rag.eval.report import write_outputs
from rag.eval.run import AnswerFn, ProgressFn, evaluate
from rag.types import Answer

log = logging.getLogger(__name__)

EVALS_DIR = "evals"


class Answers(Protocol):
    """What an evaluation needs of the pipeline."""

    def answer(self, question: str, **options: Any) -> Answer: ...


class EvalBusy(RuntimeError):
    """Another evaluation is running in this process."""


class Progress(BaseModel):
    """How far the running evaluation is."""

    done: int = 0
    total: int = 0
    label: str = ""
    started: float = Field(default_factory=time.time)

    def message(self) -> str:
        """'12 of 75 answers (extractive/hybrid), running for 40 s'."""
        return (f"{self.done} of {self.total} answers ({self.label or 'starting'}), running for "
                f"{time.time() - self.started:.0f} s")


class Evaluation(BaseModel):
    """An evaluation on disk: where, when, on what, and how long it took."""

    id: str
    path: Path
    question_set: str
    questions: int
    labels: list[str]
    seconds: float
    created: str

    @property
    def summary(self) -> dict:
        """The summary.json document."""
        return json.loads((self.path / "summary.json").read_text(encoding="utf-8"))

    def rows(self, label: str | None = None) -> list[dict]:
        """Per-question results (of one run label, or all)."""
        text = (self.path / "results.jsonl").read_text(encoding="utf-8")
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [r for r in rows if label is None or r.get("run") == label]


def pipeline_answerer(pipeline: Answers, answerer: str, retrieval: str) -> AnswerFn:
    """An answer function asking the pipeline with one answerer and retrieval mode (history passed along)."""
    def answer(q: Question) -> Answer:
        return pipeline.answer(q.question, history=q.history, answerer=answerer, retrieval=retrieval)
    return answer


def evals_root(data_dir: str | Path) -> Path:
    """Where the app's evaluations are written."""
    return Path(data_dir) / EVALS_DIR


def list_evaluations(data_dir: str | Path) -> list[Evaluation]:
    """The evaluations written so far, newest first (unreadable ones skipped)."""
    root = evals_root(data_dir)
    found: list[Evaluation] = []
    for meta in root.glob("*/meta.json") if root.is_dir() else []:
        try:
            found.append(Evaluation.model_validate({**json.loads(meta.read_text(encoding="utf-8")),
                                                    "path": meta.parent}))
        except (OSError, ValueError):
            log.warning("skipped unreadable evaluation %s", meta.parent)
    return sorted(found, key=lambda e: e.id, reverse=True)


class EvalRunner:
    """Runs one evaluation at a time; a second start while one runs raises EvalBusy with the progress so far."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self._lock = threading.Lock()
        self.progress: Progress | None = None

    def busy(self) -> str | None:
        """The running evaluation's progress as a sentence, or None when none runs."""
        current = self.progress
        return current.message() if current is not None else None

    def run(self, pipeline: Answers, questions: Sequence[Question], question_set: str, answerers: Sequence[str],
            retrievals: Sequence[str], on_progress: ProgressFn | None = None,
            answer_fn: Callable[[str, str], AnswerFn] | None = None) -> Evaluation:
        """Evaluate every (retrieval, answerer) pair on questions; the evaluation written and listed."""
        if not questions:
            raise ValueError("The question set holds no questions.")
        pairs = [(a, r) for r in retrievals for a in answerers]
        if not pairs:
            raise ValueError("Choose at least one answerer and one retrieval mode.")
        if not self._lock.acquire(blocking=False):
            raise EvalBusy(f"Another evaluation is running: {self.busy() or 'finishing'}. Start yours when it has "
                           "finished.")
        total = len(pairs) * len(questions)
        try:
            self.progress = Progress(total=total)
            t0 = time.perf_counter()
            runs = []
            for i, (answerer, retrieval) in enumerate(pairs):
                label = f"{answerer}/{retrieval}"
                fn = (answer_fn or (lambda a, r: pipeline_answerer(pipeline, a, r)))(answerer, retrieval)

                def step(done: int, _n: int, run_label: str, offset: int = i * len(questions)) -> None:
                    self.progress = Progress(done=offset + done, total=total, label=run_label,
                                             started=self.progress.started if self.progress else time.time())
                    if on_progress is not None:
                        on_progress(offset + done, total, run_label)

                runs.append(evaluate(questions, fn, label=label, progress=False, on_step=step))
            now = datetime.now(UTC)
            eval_id = now.strftime("%Y%m%d-%H%M%S-") + f"{now.microsecond // 1000:03d}"
            out = evals_root(self.data_dir) / eval_id
            write_outputs(runs, out)
            evaluation = Evaluation(id=eval_id, path=out, question_set=question_set, questions=len(questions),
                                    labels=[r.label for r in runs], seconds=round(time.perf_counter() - t0, 1),
                                    created=now.isoformat(timespec="seconds"))
            (out / "meta.json").write_text(evaluation.model_dump_json(exclude={"path"}, indent=2), encoding="utf-8")
            log.info("evaluation %s: %d questions × %d runs in %.1f s", eval_id, len(questions), len(runs),
                     evaluation.seconds)
            return evaluation
        finally:
            self.progress = None
            self._lock.release()
