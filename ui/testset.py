"""The "Add to test set" dialog: a chat answer, or a draft, as a question of this library's own test set, in a dialog
over the chat where the user is (it was a form 1,400 px down the Evaluate tab). Prefilled: the papers the answer
cites, key facts from the sentences it cites, the category guessed, and the conversation before it kept only when the
question depends on it, shown as turns rather than JSON."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from rag.eval import library
from rag.eval.facts import cited_papers, format_facts, guess_category, parse_facts, suggest_facts
from rag.eval.questions import CATEGORIES, Question
from rag.text import strip_citations
from rag.types import Answer

from .render import esc

TITLE = "Add to this library's test set"
_TABLE_ROW = re.compile(r"^\|\s*\*\*(.+?)\*\*")


@dataclass
class Form:
    """The dialog and its fields (the order every handler here fills them in)."""

    box: Any
    fields: list[Any]  # question, history (JSON, kept), history shown, keep history, papers, facts, abstain,
    #                    category, draft id, message


def said(text: str, limit: int = 280) -> str:
    """An answer as a line of a conversation: citations and Markdown out, a comparison table by the papers it
    compares."""
    rows = [m.group(1) for line in text.splitlines() if (m := _TABLE_ROW.match(line.strip()))]
    if rows:
        return f"A comparison table of {', '.join(rows)}."
    plain = " ".join(strip_citations(text).replace("**", "").split())
    return plain if len(plain) <= limit else plain[:limit].rsplit(" ", 1)[0] + " …"


def turns_html(history: list[dict[str, str]]) -> str:
    """The conversation before a question, as turns people read."""
    if not history:
        return '<div class="pc-qform-none">No conversation before it: the question stands on its own.</div>'
    items = "".join(f'<li><b>{"You" if m.get("role") == "user" else "paperchat"}:</b> {esc(said(m.get("content", "")))}'
                    "</li>" for m in history)
    return f'<ol class="pc-qform-turns">{items}</ol>'


def depends_on_history(answer: Answer, history: list[dict[str, str]]) -> bool:
    """Whether a question needed the conversation before it: the chat rewrote it with what came before."""
    return bool(history) and " ".join(answer.standalone_question.lower().split()) not in (
        "", " ".join(answer.question.lower().split()))


class TestSetForm:
    """The dialog over one library's question files."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def build(self, paper_ids: list[str]) -> Form:
        """The dialog (hidden until opened), outside the tabs so it opens over whatever the user is looking at."""
        private: dict[str, Any] = {"api_visibility": "private"}
        with gr.Column(visible=False, elem_id="pc-qform", elem_classes=["pc-dialog"]) as box:
            gr.HTML(f'<div class="pc-qform-head" role="heading" aria-level="2">{esc(TITLE)}</div>', js_on_load=None)
            q_text = gr.Textbox(label="Question", elem_id="pc-eval-qtext")
            q_history = gr.State("[]")
            shown = gr.HTML("", elem_id="pc-eval-history", js_on_load=None)
            keep = gr.Checkbox(label="Keep the conversation before it (the question depends on it)",
                               elem_id="pc-eval-keep")
            q_papers = gr.Dropdown(paper_ids, multiselect=True, label="Papers it should cite", elem_id="pc-eval-papers")
            q_facts = gr.Textbox(label="Key facts an answer must state (one per line; alternatives separated by ' | ')",
                                 lines=3, elem_id="pc-eval-facts")
            with gr.Row():
                q_abstain = gr.Checkbox(label="Should abstain (the papers do not say)", elem_id="pc-eval-abstain")
                q_category = gr.Dropdown(list(CATEGORIES), value="factoid", label="Category",
                                         elem_id="pc-eval-category")
            draft_id = gr.State("")
            message = gr.Markdown("", elem_id="pc-eval-saved")
            with gr.Row():
                save_btn = gr.Button("Save to the test set", variant="primary", elem_id="pc-eval-save")
                close_btn = gr.Button("Close", elem_id="pc-qform-close")
        fields = [q_text, q_history, shown, keep, q_papers, q_facts, q_abstain, q_category, draft_id, message]
        keep.input(self.shown_history, [q_history, keep], shown, **private)
        close_btn.click(lambda: gr.Column(visible=False), None, box, **private)
        self.save_event = save_btn.click(self.save, [q_text, q_history, keep, q_papers, q_facts, q_abstain,
                                                     q_category, draft_id], [message, draft_id], **private)
        return Form(box=box, fields=fields)

    @staticmethod
    def shown_history(history: str, keep: bool) -> str:
        """The conversation as it will be saved: the turns, or none."""
        return turns_html(json.loads(history or "[]") if keep else [])

    def from_answer(self, answer: Answer, history: list[dict[str, str]]) -> tuple:
        """The dialog opened on a chat answer: (box, *fields)."""
        papers = cited_papers(answer) or list(dict.fromkeys(s.paper_id for s in answer.sources))[:2]
        keep = depends_on_history(answer, history)
        category = guess_category(answer.question, papers, history if keep else [], answer.abstained)
        return (gr.Column(visible=True), answer.question, json.dumps(history, ensure_ascii=False),
                turns_html(history if keep else []), gr.Checkbox(value=keep, visible=bool(history)), papers,
                "\n".join(suggest_facts(answer, question=answer.question)), answer.abstained, category, "",
                "Check the papers and the key facts, then save.")

    def open_draft(self, draft_id: str | None) -> tuple:
        """The dialog opened on a draft question: (box, *fields)."""
        draft = next((q for q in library.drafts(self.data_dir) if q.id == draft_id), None)
        if draft is None:
            return (gr.skip(),) * 11
        history = [dict(m) for m in draft.history]
        return (gr.Column(visible=True), draft.question, json.dumps(history), turns_html(history),
                gr.Checkbox(value=bool(history), visible=bool(history)), draft.gold_papers,
                format_facts(draft.facts), draft.expect_abstain, draft.category, draft.id,
                "Draft loaded: check it, then save to accept it.")

    def save(self, text: str, history: str, keep: bool, papers: list[str] | None, facts: str, abstain: bool,
             category: str, draft_id: str) -> tuple:
        """Save the dialog as a question of the library's set; (message, draft id)."""
        try:
            turns = json.loads(history or "[]") if keep else []
            if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
                raise ValueError("the conversation before it is not a list of messages")
            parsed = parse_facts(facts or "")
            if not abstain and not parsed:
                raise ValueError("give at least one key fact, or tick 'should abstain'")
            question = Question(id="", question=(text or "").strip(), category=category or "factoid",
                                gold_papers=[] if abstain else list(papers or []), facts=[] if abstain else parsed,
                                history=turns, expect_abstain=bool(abstain))
            if not question.question:
                raise ValueError("the question is empty")
        except ValueError as exc:
            return f"⚠️ Not saved: {str(exc).splitlines()[0]}", gr.skip()
        saved = library.add_question(self.data_dir, question, draft_id=draft_id or None)
        return (f"✅ Saved as {saved.id}. Run it from the Evaluate tab with “This library's saved questions”, or "
                "with `paperchat eval --library`."), ""
