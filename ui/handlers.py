"""The chat page's event handlers: answering (streamed), the conversation the user controls (new, clear, saved in
the browser, reopened), and the collection's card actions. Every exception is caught and shown as a plain message."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import gradio as gr

from rag.answer import ABSTAIN_SENTENCE, Pipeline, QuestionError, sanitize, validate_question
from rag.citations import known_citations
from rag.serve.slots import AnswerSlots
from rag.settings import Settings
from rag.types import Answer, Paper

from . import collection_view, conversations, render, results, sources
from .answering import with_heartbeats
from .api import GENERIC_ERROR, write_export, write_references
from .fallback import LLMMemory

log = logging.getLogger(__name__)

PENDING = '<span class="pc-caption">Searching the papers…</span>'
RENDER_EVERY_S = 0.1  # a streaming answer is re-rendered at most this often (plus while it is still short)
RENDER_GROWTH = 1.25  # …or once it has grown by a quarter since the last render


def message(answer: Answer, turn: int, papers: dict[str, Paper]) -> str:
    """The finished chat bubble: the answer, and the hidden pieces the page script reads (popover sentences, reference
    list) plus what narrow screens show under it (a comparison's chart, the sources drawer): the side panel that
    holds them on a wide screen sits far below there."""
    extra = ""
    if results.is_comparison(answer):
        chart = results.chart_html(results.results(answer, papers), turn, say_none=False).replace("\n", " ")
        extra = f'\n\n<div class="pc-chart-inline">{chart}</div>' if chart else ""
    parts = [render.final_message(answer, turn, papers) + extra, sources.tips(answer, turn),
             sources.references(answer), sources.drawer(answer, turn, papers)]
    return "\n\n".join(p.replace("\n\n", "\n") if i else p for i, p in enumerate(parts) if p)


def conversation_view(turns: list[Answer], papers: dict[str, Paper]) -> list[dict]:
    """The chat messages of saved turns."""
    chat: list[dict] = []
    for i, t in enumerate(turns):
        chat += [{"role": "user", "content": render.clean_model_text(t.question)},
                 {"role": "assistant", "content": message(t, i, papers)}]
    return chat


class ChatHandlers:
    """The UI event handlers over one pipeline (slots: the answer slots, shared with the server's APIs)."""

    def __init__(self, pipeline: Pipeline, settings: Settings, slots: AnswerSlots | None = None) -> None:
        self.pipeline, self.settings = pipeline, settings
        self.slots = slots or AnswerSlots(settings)
        self.shown: tuple[str, ...] = ()  # the paper ids the page was built with (refresh only when they change)
        self.llm = LLMMemory()

    def by_id(self) -> dict[str, Paper]:
        """Papers keyed by id."""
        return {p.id: p for p in self.pipeline.papers()}

    @staticmethod
    def history(turns: list[Answer]) -> list[dict[str, str]]:
        """The conversation so far as the pipeline wants it (raw text, not rendered HTML).

        An abstention is sent as the bare sentinel: its "closest papers" list is a suggestion, not the topic, and
        would otherwise be carried into the next follow-up's rewrite.
        """
        out: list[dict[str, str]] = []
        for t in turns:
            said = ABSTAIN_SENTENCE if t.abstained else t.answer
            out += [{"role": "user", "content": t.question}, {"role": "assistant", "content": said}]
        return out

    def suggestions(self, answer: Answer) -> Any:
        """Clickable questions about the nearest papers after an abstention (hidden otherwise)."""
        papers = self.by_id()
        samples = [[render.ask_about(papers[p])] for p in answer.closest_papers if p in papers]
        return gr.Dataset(samples=samples or [["What is 2BP?"]], visible=bool(answer.abstained and samples))

    async def respond(self, question: str, chat: list[dict], turns: list[Answer], answerer: str, k: float,
                      scope: list[str] | None, compare_ids: list[str] | None = None) -> AsyncIterator[tuple]:
        """Stream one answer into the chat; yields (chat, turns, sources, question, export, suggest, status).

        The user's paper scope goes to the pipeline as its paper filter, which wins over papers carried from
        earlier turns. The answer waits for a slot of its answerer's kind without holding a thread, and yields an
        empty update every second it has nothing new (ui.answering): so Gradio notices a user who left and closes
        this, which stops the answer's LLM call."""
        skip = gr.skip()
        chat, turns = list(chat or []), list(turns or [])
        try:
            question = validate_question(question, self.settings)
        except QuestionError as exc:
            yield chat, turns, skip, skip, skip, skip, render.esc(exc)
            return
        turn = len(turns)
        asked = [*chat, {"role": "user", "content": render.clean_model_text(question)}]

        def bubble(content: str) -> list[dict]:
            return [*asked, {"role": "assistant", "content": content}]

        yield bubble(PENDING), turns, skip, "", skip, gr.Dataset(visible=False), ""
        ids, history = compare_ids or scope or None, self.history(turns)
        use, remembered = self.llm.route(answerer or self.settings.answerer)  # an LLM that just failed is not waited for again
        events = self.slots.stream(use, lambda: self.pipeline.stream(
            question, history=history, answerer=use, paper_ids=ids, k=int(k) if k else None,
            compare=bool(compare_ids), preliminary=True))
        try:
            head, text, answer, cited = "", "", None, set[int]()
            shown, shown_at = 0, 0.0  # length and time of the last render of a growing answer
            async with contextlib.aclosing(with_heartbeats(events)) as updates:
                async for event in updates:
                    if event is None:
                        yield (skip,) * 7
                        continue
                    kind, value = event
                    if kind == "standalone":
                        head = render.caption(value, question) + render.notice(remembered)
                    elif kind == "sources":
                        cited = {s.n for s in value}  # a growing answer shows only citations of these
                        yield bubble(head + PENDING), turns, skip, skip, skip, skip, skip
                    elif kind == "reset":
                        head, text, shown = head + render.notice(value), "", 0
                    elif kind == "text":
                        text += value
                        # Each render re-renders the whole bubble: throttle it, or a long reply costs O(n²).
                        if time.monotonic() - shown_at >= RENDER_EVERY_S or len(text) >= shown * RENDER_GROWTH:
                            shown, shown_at = len(text), time.monotonic()
                            partial = await anyio.to_thread.run_sync(
                                render.answer_markdown, sanitize(known_citations(text, cited)), turn)
                            yield bubble(head + partial), turns, skip, skip, skip, skip, skip
                    elif kind == "answer":
                        answer = value
        except QuestionError as exc:
            yield chat, turns, skip, question, skip, skip, render.esc(exc)
            return
        except Exception:
            log.exception("answering %r failed", question)
            yield chat, turns, skip, question, skip, skip, GENERIC_ERROR
            return
        if answer is None:
            yield chat, turns, skip, question, skip, skip, GENERIC_ERROR
            return
        self.llm.learn(use, answer)
        limited = scope if not compare_ids else None
        yield await anyio.to_thread.run_sync(self._answered, answer, bubble, turns, remembered, limited)

    def _answered(self, answer: Answer, bubble: Callable[[str], list[dict]], turns: list[Answer], remembered: str,
                  scope: list[str] | None) -> tuple:
        """The update that ends an answer: its rendered bubble (with the notices of a remembered LLM failure and of a
        search limited to the chosen papers), the turn kept, its sources and export."""
        papers, turn = self.by_id(), len(turns)
        answer = answer.model_copy(update={"notice": " ".join(x for x in (
            remembered, answer.notice, render.limited(answer, scope, papers)) if x)})
        export = gr.DownloadButton(value=str(write_export(answer)), interactive=True)
        return (bubble(message(answer, turn, papers)), [*turns, answer], sources.sources_html(answer, turn, papers),
                gr.skip(), export, self.suggestions(answer), "")

    async def compare(self, chosen: list[str] | None, chat: list[dict], turns: list[Answer], answerer: str,
                      k: float) -> AsyncIterator[tuple]:
        """Ask for the cited comparison table of the chosen papers."""
        if not chosen or len(chosen) < 2:
            skip = gr.skip()
            yield skip, skip, skip, skip, skip, skip, "Choose at least two papers to compare (Compare tab)."
            return
        papers = self.by_id()
        names = [render.label(papers[p]) for p in chosen if p in papers]
        question = "Compare " + (", ".join(names[:-1]) + " and " + names[-1])
        async for update in self.respond(question, chat, turns, answerer, k, None, compare_ids=list(chosen)):
            yield update

    # -- what follows an answer: saved in the browser, the comparison's chart and CSV -------------------------------
    def extras(self, answer: Answer | None, turn: int) -> tuple:
        """(chart, CSV button) for an answer: shown for a comparison (the chart when its papers' figures compare)."""
        if not results.is_comparison(answer):
            return "", gr.DownloadButton(value=None, visible=False)
        assert answer is not None
        papers = self.by_id()
        return (results.chart_html(results.results(answer, papers), turn),
                gr.DownloadButton(value=str(results.write_csv(answer, papers)), visible=True))

    def after_answer(self, turns: list[Answer], store: dict | None, conv: str,
                     marks: conversations.Marks | None = None) -> tuple:
        """Save the conversation in the browser, with the thumbs already given; (store, conv, past list, chart, CSV,
        side tabs, marks). A comparison opens the Sources tab, where its chart is."""
        conv = conv or conversations.new_id()
        marks = conversations.named(marks, conv)
        store = conversations.save(store, conv, list(turns or []), marks.get(conv))
        last = turns[-1] if turns else None
        tab = gr.Tabs(selected="sources") if results.is_comparison(last) else gr.skip()
        return (store, conv, gr.Radio(choices=conversations.choices(store), value=conv if turns else None),
                *self.extras(last, len(turns) - 1), tab, marks)

    def view(self, turns: list[Answer], store: dict | None, conv: str, status: str = "") -> tuple:
        """Everything that shows one conversation: (chat, turns, sources, export, status, store, conv, past list,
        chart, CSV)."""
        papers = self.by_id()
        last = turns[-1] if turns else None
        export = (gr.DownloadButton(value=str(write_export(last)), interactive=True) if last else
                  gr.DownloadButton(value=None, interactive=False))
        chat = gr.Chatbot(value=conversation_view(turns, papers),
                          feedback_value=conversations.feedback(store, conv, len(turns)))
        return (chat, turns, sources.sources_html(last, len(turns) - 1, papers), export,
                status, store, conv, gr.Radio(choices=conversations.choices(store), value=conv if turns else None),
                *self.extras(last, len(turns) - 1))

    def restore(self, store: dict | None) -> tuple:
        """On page load: the conversation the browser had open. With none, only the list of past ones is filled
        in: the page as built is already the empty conversation (re-sending it re-rendered the chat for nothing)."""
        conv = conversations.active(store)
        if conv is None:
            skip = gr.skip()
            past = gr.Radio(choices=conversations.choices(store), value=None) if conversations.load(store) else skip
            return (*(skip,) * 7, past, skip, skip)
        return self.view(list(conv.turns), store, conv.id)

    def page_load(self, store: dict | None) -> tuple:
        """Everything a page load needs, in one event (one queue round trip): the restored conversation (see
        `view`), its references download, and the paper pickers and cards if papers were added since start-up."""
        shown = self.restore(store)
        turns = shown[1] if isinstance(shown[1], list) else []
        refs = self.references(turns) if turns else gr.skip()
        return (*shown, refs, *self.refresh_papers())

    def open_conversation(self, conv_id: str | None, store: dict | None, conv: str) -> tuple:
        """Reopen a past conversation (its answers become the memory of the next question)."""
        found = conversations.find(store, conv_id or "")
        if found is None or found.id == conv:
            return (gr.skip(),) * 10
        store = {**(store or {}), "active": found.id}
        return self.view(list(found.turns), store, found.id)

    def new_chat(self, store: dict | None) -> tuple:
        """Start over: empty screen and empty memory; the conversation so far stays in the past list."""
        store = {**(store or conversations.EMPTY), "active": ""}
        return self.view([], store, conversations.new_id())

    def clear(self, store: dict | None, conv: str) -> tuple:
        """The chat's trash button: like New chat (memory reset too), and the conversation is deleted."""
        return self.view([], conversations.delete(store, conv), conversations.new_id())

    def delete_conversation(self, conv_id: str | None, store: dict | None, conv: str) -> tuple:
        """History's delete: the chosen past conversation is removed from the browser, with an Undo; deleting the
        open one also empties the screen and the memory (like the trash button). (*view, removed, undo button)."""
        found = conversations.find(store, conv_id or "")
        if found is None:
            skip = gr.skip()
            return (*(skip,) * 4, "Choose a conversation in the list to delete it.", *(skip,) * 5, skip, skip)
        undo = gr.Button(value=f"Undo: bring back “{found.title[:60]}”", visible=True)
        store = conversations.delete(store, found.id)
        if found.id == conv:
            return (*self.view([], store, conversations.new_id()), found.model_dump(mode="json"), undo)
        kept = conversations.find(store, conv)
        store = {**store, "active": conv if kept else ""}
        return (*(gr.skip(),) * 4, "", store, gr.skip(),
                gr.Radio(choices=conversations.choices(store), value=conv if kept else None), *(gr.skip(),) * 2,
                found.model_dump(mode="json"), undo)

    def undo_delete(self, removed: dict | None, store: dict | None, conv: str) -> tuple:
        """Bring back the conversation History just deleted, open (*view, removed, undo button)."""
        hidden = gr.Button(visible=False)
        if not removed:
            return (*(gr.skip(),) * 10, None, hidden)
        back = conversations.Conversation.model_validate(removed)
        store = conversations.restore(store, back)
        return (*self.view(list(back.turns), store, back.id), None, hidden)

    # -- the collection's card actions ------------------------------------------------------------------------------
    def paper_action(self, command: str, scope: list[str] | None, pick: list[str] | None) -> tuple:
        """A card's Compare or Only-this-paper: (scope, compare pick, tabs, status)."""
        skip = gr.skip()
        try:
            cmd = json.loads(command or "{}")
        except ValueError:
            return skip, skip, skip, skip
        papers = self.by_id()
        pid = str(cmd.get("id", ""))
        if pid not in papers:
            return skip, skip, skip, skip
        name = render.label(papers[pid])
        if cmd.get("act") == "scope":
            return [pid], skip, skip, (f"Searching only in {render.esc(name)}; clear the filter below the question "
                                       "to search all papers.")
        if cmd.get("act") == "compare":
            chosen = list(dict.fromkeys([*(pick or []), pid]))
            more = "" if len(chosen) >= 2 else " Choose at least one more paper."
            return skip, chosen, gr.Tabs(selected="compare"), f"{render.esc(name)} added to the comparison.{more}"
        return skip, skip, skip, skip

    async def ask_action(self, command: str, chat: list[dict], turns: list[Answer], answerer: str, k: float,
                         scope: list[str] | None) -> AsyncIterator[tuple]:
        """A card's Ask: what the paper is, answered at once."""
        try:
            cmd = json.loads(command or "{}")
        except ValueError:
            cmd = {}
        papers = self.by_id()
        if cmd.get("act") != "ask" or cmd.get("id") not in papers:
            yield (gr.skip(),) * 7
            return
        question = render.ask_about(papers[cmd["id"]])
        async for update in self.respond(question, chat, turns, answerer, k, scope):
            yield update

    # -- clicking a message, papers ingested since start-up ----------------------------------------------------------
    def references(self, turns: list[Answer]) -> Any:
        """The conversation's cited papers as a BibTeX download (disabled while nothing is cited)."""
        path = write_references(list(turns or []), self.by_id())
        return gr.DownloadButton(value=str(path) if path else None, interactive=path is not None)

    def show_turn(self, turns: list[Answer], evt: gr.SelectData) -> tuple:
        """Clicking a message shows that turn's sources and makes it the one exported."""
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        turn = int(index or 0) // 2
        if not turns or turn >= len(turns):
            return gr.skip(), gr.skip()
        answer = turns[turn]
        return (sources.sources_html(answer, turn, self.by_id()),
                gr.DownloadButton(value=str(write_export(answer)), interactive=True))

    def refresh_papers(self) -> tuple:
        """The paper pickers, header, landing and Papers tab from the index as it is now."""
        papers = self.pipeline.papers()
        if tuple(p.id for p in papers) == self.shown:
            return (gr.skip(),) * 5
        choices = [(render.choice(p), p.id) for p in papers]
        return (gr.Dropdown(choices=choices), gr.CheckboxGroup(choices=choices), collection_view.header_html(papers),
                collection_view.landing_html(papers), collection_view.collection_html(papers, with_abstract=True))
