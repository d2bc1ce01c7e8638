"""The Evaluate tab: run a question set (bundled, the library's own, or an uploaded JSONL) through the chat's chain
with a progress bar, read the report inline, drill into a question, compare two runs, download the report; and the
chat's 👍/👎 and "Add to test set", which opens the dialog (ui.testset) that saves a question to the library's own set.
Everything that is not UI lives in rag.eval; this module only lays out and wires."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from rag.answer import Pipeline
from rag.eval import library
from rag.eval.compare import compare_runs
from rag.eval.drafts import draft_question_set
from rag.eval.facts import cited_papers
from rag.eval.questions import Question, QuestionSetCheck, check_question_set, load_questions
from rag.eval.session import EvalBusy, EvalRunner, Evaluation, list_evaluations
from rag.settings import QUESTIONS_PATH, Settings
from rag.types import Answer

from . import conversations, eval_view
from .api import GENERIC_ERROR, _export_dir
from .testset import TestSetForm

log = logging.getLogger(__name__)

FEEDBACK_OPTIONS = ("Like", "Dislike", "Add to test set")  # Gradio draws the first two as thumbs
ADD = FEEDBACK_OPTIONS[2]
SETS = {"bundled": "The bundled set (corpus/questions.jsonl)", "library": "This library's saved questions",
        "upload": "A JSONL file I upload"}
_RUNNERS: dict[str, EvalRunner] = {}  # one per data directory: one evaluation at a time per server


@dataclass
class Parts:
    """The tab's components that the chat's events fill."""

    form: Any
    drafts: Any
    feedback: Any
    shown: list[Any]  # report, question picker, detail, run A, run B, downloads ×3
    export: Any


class EvaluateTab:
    """The Evaluate tab over one pipeline."""

    def __init__(self, pipeline: Pipeline, settings: Settings) -> None:
        self.pipeline, self.settings, self.data_dir = pipeline, settings, Path(settings.data_dir)
        self.runner = _RUNNERS.setdefault(str(self.data_dir.resolve()), EvalRunner(self.data_dir))
        self.form = TestSetForm(self.data_dir)

    # -- the question set ------------------------------------------------------------------------------------------
    def check_upload(self, path: str | None) -> tuple[str, Any]:
        """An uploaded file checked at once: (message, question-set choice)."""
        if not path:
            return "", gr.skip()
        return eval_view.check_html(self._check(path), Path(path).name), gr.Radio(value="upload")

    def _check(self, path: str) -> QuestionSetCheck:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return QuestionSetCheck(errors=["the file is not UTF-8 text"])
        return check_question_set(text, papers=[p.id for p in self.pipeline.papers()])

    def questions(self, choice: str, upload: str | None) -> tuple[list[Question], str]:
        """The questions of the chosen set and its name; ValueError with a message to show."""
        if choice == "library":
            qs = library.library_questions(self.data_dir)
            if not qs:
                raise ValueError("This library has no saved questions yet: use 'Add to test set' on a chat answer, "
                                 "or propose drafts below and accept them.")
            return qs, "this library's questions"
        if choice == "upload":
            if not upload:
                raise ValueError("Upload a question set (JSONL) first.")
            check = self._check(upload)
            if not check.ok:
                raise ValueError("The uploaded file has errors: " + "; ".join(check.errors[:3]))
            return check.questions, Path(upload).name
        return load_questions(QUESTIONS_PATH), "the bundled set"

    # -- running and reading --------------------------------------------------------------------------------------
    def run(self, choice: str, upload: str | None, answerers: list[str], modes: list[str], limit: float | None,
            progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008 -- Gradio's way of asking for a bar
        """Run the evaluation with a live progress bar; (status, report, question picker, detail, run A, run B,
        downloads ×3). Busy: a message naming the running one."""
        busy = self.runner.busy()
        if busy:
            return (f"⏳ Another evaluation is running: {busy}. Start yours when it has finished.",
                    *(gr.skip(),) * 8)
        try:
            qs, name = self.questions(choice, upload)
            qs = qs[: int(limit)] if limit and int(limit) > 0 else qs
            progress((0, len(qs) * max(1, len(answerers or []) * len(modes or []))), desc="starting", unit="answers")
            evaluation = self.runner.run(
                self.pipeline, qs, name, answerers or [], modes or [],
                on_progress=lambda done, total, label: progress((done, total), desc=label, unit="answers"))
        except (ValueError, EvalBusy) as exc:
            return (f"⚠️ {exc}", *(gr.skip(),) * 8)
        except Exception:
            log.exception("the evaluation failed")
            return (GENERIC_ERROR, *(gr.skip(),) * 8)
        status = (f"✅ Done: {evaluation.questions} questions × {len(evaluation.labels)} run(s) in "
                  f"{evaluation.seconds:.0f} s.")
        return (status, *self.show(evaluation.id))

    def _find(self, eval_id: str | None) -> Evaluation | None:
        return next((e for e in list_evaluations(self.data_dir) if e.id == eval_id), None)

    def show(self, eval_id: str | None) -> tuple:
        """An evaluation's report: (report, question picker, detail, run A, run B, downloads ×3)."""
        evaluation = self._find(eval_id) if eval_id else next(iter(list_evaluations(self.data_dir)), None)
        runs = self.run_choices()
        labels = [v for _, v in runs]
        a = labels[1] if evaluation and len(evaluation.labels) == 1 and len(labels) > 1 else (labels[0] if labels
                                                                                              else None)
        b = labels[0] if evaluation and len(evaluation.labels) == 1 else (labels[1] if len(labels) > 1 else None)
        files = self.downloads(evaluation)
        return (eval_view.report_html(evaluation),
                gr.Dropdown(choices=eval_view.question_choices(evaluation), value=None), "",
                gr.Dropdown(choices=runs, value=a), gr.Dropdown(choices=runs, value=b), *files)

    def downloads(self, evaluation: Evaluation | None) -> list[Any]:
        """The report as HTML, Markdown and results JSONL (copies Gradio may serve)."""
        if evaluation is None:
            return [gr.DownloadButton(value=None, interactive=False) for _ in range(3)]
        out = _export_dir()
        buttons = []
        for name in ("report.html", "report.md", "results.jsonl"):
            target = out / f"paperchat-eval-{evaluation.id}-{name}"
            shutil.copyfile(evaluation.path / name, target)
            buttons.append(gr.DownloadButton(value=str(target), interactive=True))
        return buttons

    def run_choices(self) -> list[tuple[str, str]]:
        """Every run of every evaluation, newest first: (label, 'id\\tlabel')."""
        return [(f"{e.id} · {label} · {e.questions} q · {e.question_set}", f"{e.id}\t{label}")
                for e in list_evaluations(self.data_dir) for label in e.labels]

    def detail(self, picked: str | None) -> str:
        """One question's drill-down (picked: 'evaluation id\trun label\tquestion id')."""
        parts = (picked or "").split("\t")
        evaluation = self._find(parts[0]) if len(parts) == 3 else None
        if evaluation is None:
            return ""
        return eval_view.question_html(next((r for r in evaluation.rows(parts[1]) if r["id"] == parts[2]), None))

    def show_comparison(self, a: str | None, b: str | None) -> str:
        """Run B against run A."""
        if not a or not b or a == b:
            return "<p>Choose two different runs.</p>"
        found = []
        for key in (a, b):
            eval_id, label = key.split("\t", 1)
            evaluation = self._find(eval_id)
            if evaluation is None:
                return "<p>That evaluation is no longer on disk.</p>"
            found.append((f"{label} ({eval_id})", evaluation.summary["runs"][label], evaluation.rows(label)))
        return eval_view.comparison_html(compare_runs(*found[0], *found[1]))

    # -- the library's own questions ------------------------------------------------------------------------------
    def counts(self) -> str:
        """Feedback and test-set counts."""
        saved, drafts = library.library_questions(self.data_dir), library.drafts(self.data_dir)
        return eval_view.feedback_html(library.feedback_counts(self.data_dir), len(saved), len(drafts))

    def draft_choices(self) -> list[tuple[str, str]]:
        return [(f"{q.id}: {q.question}", q.id) for q in library.drafts(self.data_dir)]

    def propose(self) -> tuple:
        """Draft questions from the abstracts; (drafts picker, counts, message)."""
        drafts = library.save_drafts(self.data_dir, draft_question_set(self.pipeline.papers()))
        message = (f"{len(drafts)} draft questions proposed. Pick one to check, edit and accept it; drafts are "
                   "never evaluated until accepted.")
        return gr.Dropdown(choices=self.draft_choices(), value=None), self.counts(), message

    def after_save(self) -> tuple:
        """After the dialog saved a question: (counts, drafts picker, export)."""
        return self.counts(), gr.Dropdown(choices=self.draft_choices(), value=None), self.export()

    def export(self) -> Any:
        """The library's question file as a download."""
        path = library.library_questions_path(self.data_dir)
        if not path.is_file():
            return gr.DownloadButton(value=None, interactive=False)
        target = _export_dir() / "questions.jsonl"
        shutil.copyfile(path, target)
        return gr.DownloadButton(value=str(target), interactive=True)

    # -- the chat's feedback --------------------------------------------------------------------------------------
    def feedback(self, turns: list[Answer], store: dict | None, conv: str, marks: conversations.Marks | None,
                 evt: gr.LikeData) -> tuple:
        """👍/👎 recorded, and kept with the conversation in the browser so a reload shows them; 'Add to test set'
        opens the dialog prefilled. (store, marks, dialog, its fields ×10, counts)."""
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        turn = int(index or 0) // 2
        skip = (gr.skip(),) * 14
        if not turns or turn >= len(turns):
            return skip
        answer = turns[turn]
        chosen = {True: "Like", False: "Dislike"}[evt.liked] if isinstance(evt.liked, bool) else evt.liked or None
        marks = conversations.mark(marks, conv, turn, chosen)
        # The store the browser sent may predate the save of this answer (clicked as it showed): saved here too.
        store = conversations.save(store, conv, turns, marks[conv]) if conv else store
        if evt.liked == ADD:
            history = [m for t in turns[:turn] for m in ({"role": "user", "content": t.question},
                                                         {"role": "assistant", "content": t.answer})]
            return (store, marks, *self.form.from_answer(answer, history), self.counts())
        if evt.liked in (True, False):
            library.record_feedback(self.data_dir, library.Feedback(
                rating="up" if evt.liked else "down", question=answer.question, answer=answer.answer,
                answerer=answer.answerer, cited_papers=cited_papers(answer)))
            return (store, marks, *skip[:11], self.counts())
        return (store, marks, *skip[:12])

    # -- layout -------------------------------------------------------------------------------------------------
    def build(self, answering: dict[str, Any]) -> Parts:
        """The tab's components and their events (inside a gr.Tab); answering: the chat's concurrency pool."""
        private: dict[str, Any] = {"api_visibility": "private"}
        gr.Markdown("Run a question set through the chat's chain and see where it fails. The schema is that of "
                    "`corpus/questions.jsonl` (id, question, category, gold_papers, facts, history, expect_abstain).")
        qset = gr.Radio([(v, k) for k, v in SETS.items()], value="bundled", label="Question set",
                        elem_id="pc-eval-set")
        upload = gr.File(file_types=[".jsonl"], type="filepath", label="Question set (JSONL)", height=110,
                         elem_id="pc-eval-upload")
        checked = gr.HTML("", elem_id="pc-eval-check", js_on_load=None)
        with gr.Row():
            answerers = gr.CheckboxGroup(["extractive", "openai", "local"], value=[self.settings.answerer],
                                         label="Answerers", elem_id="pc-eval-answerers")
            modes = gr.CheckboxGroup(["hybrid", "dense"], value=["hybrid"], label="Retrieval",
                                     elem_id="pc-eval-modes")
        limit = gr.Number(0, precision=0, minimum=0, label="Only the first N questions (0: all)",
                          elem_id="pc-eval-limit")
        run_btn = gr.Button("Run the evaluation", variant="primary", elem_id="pc-eval-run")
        status = gr.Markdown("", elem_id="pc-eval-status")
        report = gr.HTML(eval_view.report_html(None), elem_id="pc-eval-report", js_on_load=None)
        with gr.Row():
            files = [gr.DownloadButton(label, value=None, interactive=False, size="sm", elem_id=f"pc-eval-dl-{k}")
                     for k, label in (("html", "Report (.html)"), ("md", "Report (.md)"),
                                      ("jsonl", "Results (.jsonl)"))]
        picked = gr.Dropdown([], label="A question of this evaluation (failures first)", elem_id="pc-eval-q")
        detail = gr.HTML("", elem_id="pc-eval-detail", js_on_load=None)
        with gr.Accordion("Compare two runs", open=False, elem_id="pc-eval-cmp-box"):
            run_a = gr.Dropdown([], label="Run A", elem_id="pc-eval-a")
            run_b = gr.Dropdown([], label="Run B", elem_id="pc-eval-b")
            cmp_btn = gr.Button("Compare", elem_id="pc-eval-cmp")
            compared = gr.HTML("", elem_id="pc-eval-compared", js_on_load=None)
        with gr.Accordion("This library's test questions", open=False, elem_id="pc-eval-form") as form:
            counts = gr.HTML("", elem_id="pc-eval-feedback", js_on_load=None)
            gr.Markdown("Add a question from the chat with its flag menu, *Add to test set*, or propose drafts from "
                        "the abstracts and accept them one by one.")
            with gr.Row():
                draft_btn = gr.Button("Propose draft questions from the abstracts", size="sm", elem_id="pc-eval-draft")
                export_btn = gr.DownloadButton("Export questions.jsonl", value=None, size="sm",
                                               elem_id="pc-eval-export")
            drafts = gr.Dropdown(self.draft_choices(), value=None, label="Drafts waiting to be accepted",
                                 elem_id="pc-eval-drafts")
            drafted = gr.Markdown("", elem_id="pc-eval-drafted")
        shown = [report, picked, detail, run_a, run_b, *files]
        upload.change(self.check_upload, [upload], [checked, qset], **private)
        # One slot of the chat's answering pool while it runs (the chat keeps the others); EvalRunner lets one run.
        # the progress on the status line only: on every output it printed its line twice over the faded report
        run_btn.click(self.run, [qset, upload, answerers, modes, limit], [status, *shown], show_progress_on=[status],
                      **answering, **private)
        picked.change(self.detail, [picked], [detail], **private)
        cmp_btn.click(self.show_comparison, [run_a, run_b], [compared], **private)
        draft_btn.click(self.propose, None, [drafts, counts, drafted], **private)
        form.expand(self.counts, None, counts, show_progress="hidden", **private)
        return Parts(form=form, drafts=drafts, feedback=counts, shown=shown, export=export_btn)

    def wire(self, parts: Parts, chatbot: Any, turns: Any, store: Any, conv: Any, marks: Any, load: Any) -> None:
        """The chat's 👍/👎 (kept with the conversation) and 'Add to test set', and the drafts, into the test-set
        dialog; this tab's counts and downloads on page load."""
        private: dict[str, Any] = {"api_visibility": "private"}
        dialog = self.form.build([p.id for p in self.pipeline.papers()])
        chatbot.like(self.feedback, [turns, store, conv, marks],
                     [store, marks, dialog.box, *dialog.fields, parts.feedback], **conversations.SAVING, **private)
        parts.drafts.input(self.form.open_draft, [parts.drafts], [dialog.box, *dialog.fields], **private)
        self.form.save_event.then(self.after_save, None, [parts.feedback, parts.drafts, parts.export], **private)
        quiet: dict[str, Any] = {"show_progress": "hidden", "api_visibility": "private"}
        # One page-load event for the tab (each is a queue round trip before the page settles).
        load(lambda: (self.counts(), *self.show(None), self.export()), None,
             [parts.feedback, *parts.shown, parts.export], **quiet)
