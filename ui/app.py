"""The paperchat web chat: build_app(pipeline, settings) -> gr.Blocks, and launch(settings). Thin over rag's API."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr

from rag.answer import ABSTAIN_SENTENCE, Pipeline, QuestionError, validate_question
from rag.serve.auth import api_keys
from rag.settings import Settings
from rag.types import Answer

from . import render
from .api import GENERIC_ERROR, ScriptAPI, parse_auth, write_export
from .assets import CSS, JS, THEME
from .guard import GuardConfig, guarded_app
from .library import UPLOAD_TYPES, LibraryHandlers, gradio_cache, uploads_dir
from .routes import create_router

log = logging.getLogger(__name__)

EXAMPLES = [
    "By how much does Seesaw beat vLLM?",
    "Compare Seesaw and 2BP",
    "What is 2BP?",
    "What does the Chinchilla paper say about compute-optimal training?",
]
PENDING = '<span class="pc-caption">Searching the papers…</span>'
ANSWERING = "answer"  # one Gradio concurrency group for every event and API that computes an answer
RENDER_EVERY_S = 0.1  # a streaming answer is re-rendered at most this often (plus while it is still short)
RENDER_GROWTH = 1.25  # …or once it has grown by a quarter since the last render


class ChatApp(gr.Blocks):
    """Blocks whose launch() defaults to paperchat's safe settings, theme, CSS and script."""

    guard = GuardConfig()
    routers: tuple[Any, ...] = ()  # FastAPI routers served beside the app (ui.routes: /v1 and /api)
    upload_dir: Path | None = None  # where Gradio keeps uploads and downloads: inside the data directory

    def launch(self, **kwargs: Any) -> Any:  # type: ignore[override]
        """Launch with local-only look and safe defaults (no share link, no error details, tiny uploads), behind
        ui.guard (body limit, security headers, no CORS, every route behind the login if there is one)."""
        defaults = {"theme": THEME, "css": CSS, "js": JS, "share": False, "show_error": False,
                    "max_file_size": self.guard.max_upload_bytes, "ssr_mode": False, "mcp_server": False, "run_history": False,
                    "footer_links": ["api"]}  # no Gradio "Settings": the app has its own Settings tab
        for key, value in defaults.items():
            kwargs.setdefault(key, value)
        # Gradio's launch() takes the FastAPI app to serve as `_app`: ours wraps its whole middleware stack.
        kwargs.setdefault("_app", guarded_app(dataclasses.replace(self.guard, auth_required=bool(kwargs.get("auth"))),
                                              self.routers))
        with gradio_cache(self.upload_dir):
            return super().launch(**kwargs)


class ChatHandlers:
    """The UI event handlers; every exception is caught and shown as a plain message."""

    def __init__(self, pipeline: Pipeline, settings: Settings) -> None:
        self.pipeline, self.settings = pipeline, settings

    def by_id(self) -> dict[str, Any]:
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
        samples = [[f"What is {render.label(papers[p])}?"] for p in answer.closest_papers if p in papers]
        return gr.Dataset(samples=samples or [["What is 2BP?"]], visible=bool(answer.abstained and samples))

    def respond(self, question: str, chat: list[dict], turns: list[Answer], answerer: str, k: float,
                scope: list[str] | None, compare_ids: list[str] | None = None) -> Iterator[tuple]:
        """Stream one answer into the chat; yields (chat, turns, sources, question, export, suggest, status)."""
        skip = gr.skip()
        chat, turns = list(chat or []), list(turns or [])
        try:
            question = validate_question(question, self.settings)
        except QuestionError as exc:
            gr.Warning(render.esc(exc))
            yield chat, turns, skip, skip, skip, skip, render.esc(exc)
            return
        turn = len(turns)
        asked = [*chat, {"role": "user", "content": render.clean_model_text(question)}]

        def bubble(content: str) -> list[dict]:
            return [*asked, {"role": "assistant", "content": content}]

        yield bubble(PENDING), turns, skip, "", skip, gr.Dataset(visible=False), ""
        ids = compare_ids or scope or None
        try:
            head, text, answer = "", "", None
            shown, shown_at = 0, 0.0  # length and time of the last render of a growing answer
            for kind, value in self.pipeline.stream(question, history=self.history(turns), answerer=answerer or None,
                                                    paper_ids=ids, k=int(k) if k else None,
                                                    compare=bool(compare_ids)):
                if kind == "standalone":
                    head = render.caption(value, question)
                elif kind == "sources":
                    yield bubble(head + PENDING), turns, skip, skip, skip, skip, skip
                elif kind == "reset":
                    head, text, shown = head + render.notice(value), "", 0
                elif kind == "text":
                    text += value
                    # Each render re-renders the whole bubble: throttle it, or a long reply costs O(n²).
                    if time.monotonic() - shown_at >= RENDER_EVERY_S or len(text) >= shown * RENDER_GROWTH:
                        shown, shown_at = len(text), time.monotonic()
                        yield bubble(head + render.answer_markdown(text, turn)), turns, skip, skip, skip, skip, skip
                elif kind == "answer":
                    answer = value
        except QuestionError as exc:
            gr.Warning(render.esc(exc))
            yield chat, turns, skip, question, skip, skip, render.esc(exc)
            return
        except Exception:
            log.exception("answering %r failed", question)
            gr.Warning(GENERIC_ERROR)
            yield chat, turns, skip, question, skip, skip, GENERIC_ERROR
            return
        if answer is None:
            yield chat, turns, skip, question, skip, skip, GENERIC_ERROR
            return
        papers = self.by_id()
        turns.append(answer)
        export = gr.DownloadButton(value=str(write_export(answer)), interactive=True)
        yield (bubble(render.final_message(answer, turn, papers)), turns, render.sources_html(answer, turn, papers),
               skip, export, self.suggestions(answer), "")

    def compare(self, chosen: list[str] | None, chat: list[dict], turns: list[Answer], answerer: str,
                k: float) -> Iterator[tuple]:
        """Ask for the cited comparison table of the chosen papers."""
        if not chosen or len(chosen) < 2:
            msg = "Choose at least two papers to compare."
            gr.Warning(msg)
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), msg
            return
        papers = self.by_id()
        names = [render.label(papers[p]) for p in chosen if p in papers]
        question = "Compare " + (", ".join(names[:-1]) + " and " + names[-1])
        yield from self.respond(question, chat, turns, answerer, k, None, compare_ids=list(chosen))

    def show_turn(self, turns: list[Answer], evt: gr.SelectData) -> tuple:
        """Clicking a message shows that turn's sources and makes it the one exported."""
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        turn = int(index or 0) // 2
        if not turns or turn >= len(turns):
            return gr.skip(), gr.skip()
        answer = turns[turn]
        return (render.sources_html(answer, turn, self.by_id()),
                gr.DownloadButton(value=str(write_export(answer)), interactive=True))

    def refresh_papers(self) -> tuple:
        """The paper pickers, header and Papers tab from the index as it is now (papers ingested since start-up)."""
        papers = self.pipeline.papers()
        choices = [(render.choice(p), p.id) for p in papers]
        return (gr.Dropdown(choices=choices), gr.CheckboxGroup(choices=choices), header_html(papers),
                render.papers_html(papers))

    @staticmethod
    def new_chat() -> tuple:
        """Clear the conversation."""
        return ([], [], render.sources_html(None, 0, {}), "", gr.DownloadButton(value=None, interactive=False),
                gr.Dataset(visible=False), "")


def header_html(papers: list[Any]) -> str:
    """The page header, with the number of papers."""
    count = f"{len(papers)} research paper{'s' if len(papers) != 1 else ''}"
    return (f'<div id="pc-header"><h1>paperchat</h1><div class="pc-sub">Ask about {count}. Every claim '
            "is cited to the passage it comes from.</div></div>")


def _example_text(evt: gr.SelectData) -> str:
    """The question of a clicked example."""
    return str((evt.value or {}).get("text", "")) if isinstance(evt.value, dict) else str(evt.value or "")


def _suggestion_text(row: list[str] | str) -> str:
    """The question of a clicked suggestion."""
    return str(row[0] if isinstance(row, list) and row else row or "")


def build_app(pipeline: Pipeline, settings: Settings) -> gr.Blocks:
    """The chat app over a pipeline; queue and limits from settings."""
    handlers, api = ChatHandlers(pipeline, settings), ScriptAPI(pipeline, settings)
    library = LibraryHandlers(pipeline, settings)
    papers = pipeline.papers()
    choices = [(render.choice(p), p.id) for p in papers]
    with gradio_cache(uploads_dir(settings) / ".gradio"), ChatApp(title="paperchat", analytics_enabled=False,
                                                                  delete_cache=(3600, 3600)) as demo:
        demo.guard = GuardConfig(max_body_bytes=settings.max_body_bytes,
                                 cors_origins=frozenset(o.strip().rstrip("/") for o in settings.cors_origins.split(",")
                                                        if o.strip()),
                                 login_max_failures=settings.login_max_failures, login_backoff_s=settings.login_backoff,
                                 api_keys=api_keys(settings), max_upload_bytes=settings.max_upload_bytes)
        demo.upload_dir = uploads_dir(settings) / ".gradio"
        demo.routers = (create_router(pipeline, settings),)
        turns = gr.State([])
        with gr.Row(equal_height=True, elem_id="pc-top"):
            head = gr.HTML(header_html(papers), js_on_load=None, elem_id="pc-head")
            with gr.Row(elem_id="pc-tools"):
                new_btn = gr.Button("New chat", size="sm", elem_id="pc-new", scale=0, min_width=100)
                export_btn = gr.DownloadButton("Export answer (.md)", value=None, interactive=False, size="sm",
                                               elem_id="pc-export", scale=0, min_width=170)
        with gr.Row(equal_height=False):
            with gr.Column(scale=7, min_width=440):
                chatbot = gr.Chatbot(elem_id="pc-chat", show_label=False, height="calc(100vh - 320px)",
                                     min_height=380, buttons=["copy", "copy_all"], feedback_options=None,
                                     examples=[{"text": q} for q in EXAMPLES], layout="panel",
                                     placeholder="**Ask a question about the papers**, or pick an example.")
                suggest = gr.Dataset(components=[gr.Textbox(visible=False)], samples=[["What is 2BP?"]],
                                     label="Try asking instead", visible=False, elem_id="pc-suggest")
                status = gr.Markdown("", elem_id="pc-status")
                with gr.Row(equal_height=True):
                    question = gr.Textbox(show_label=False, placeholder="Ask about the papers…", scale=8,
                                          max_lines=6, autofocus=True, elem_id="pc-question")
                    ask_btn = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="pc-ask")
                scope = gr.Dropdown(choices, multiselect=True, value=[], elem_id="pc-scope",
                                    label="Search only in these papers (empty: all papers)")
            with gr.Column(scale=5, min_width=360, elem_id="pc-side"):
                with gr.Tabs():
                    with gr.Tab("Sources"):
                        sources = gr.HTML(render.sources_html(None, 0, {}), elem_id="pc-sources", js_on_load=None)
                    with gr.Tab("Papers"):
                        gr.Markdown("The indexed papers. To restrict the chat to some of them, choose them in the "
                                    "*Search only in* box below the question.")
                        papers_list = gr.HTML(render.papers_html(papers), js_on_load=None)
                        with gr.Accordion("Add papers", open=False, elem_id="pc-add"):
                            upload = gr.File(file_count="multiple", file_types=UPLOAD_TYPES, elem_id="pc-upload",
                                             label="PDF, BibTeX (.bib), RIS, JSONL or Markdown files")
                            add_btn = gr.Button("Add to the library", variant="primary", elem_id="pc-add-btn")
                            added = gr.HTML("", elem_id="pc-added", js_on_load=None)
                    with gr.Tab("Compare"):
                        gr.Markdown("Choose two or more papers: the answer is a table (problem, approach, "
                                    "reported result), every cell cited. You can also just ask *Compare X and Y*.")
                        compare_btn = gr.Button("Compare the chosen papers", variant="primary", elem_id="pc-compare")
                        pick = gr.CheckboxGroup(choices, show_label=False, elem_id="pc-compare-pick")
                    with gr.Tab("Settings"):
                        answerer = gr.Radio(["extractive", "openai", "local"], value=settings.answerer,
                                            label="Answerer", elem_id="pc-answerer")
                        k = gr.Slider(1, 20, value=settings.top_k, step=1, label="Passages retrieved", elem_id="pc-k")
                        gr.Markdown("*extractive* quotes the papers directly (offline, instant). *openai* and "
                                    "*local* write with a language model; if it is unreachable you see a notice "
                                    "and the extractive answer instead.")

        outs = [chatbot, turns, sources, question, export_btn, suggest, status]
        ask = [question, chatbot, turns, answerer, k, scope]
        private: dict[str, Any] = {"api_visibility": "private"}
        # Every answering event and the /ask API share one pool of RAG_CONCURRENCY slots (per event, 4 slow answers
        # on Enter kept a question on another event waiting, while the Ask button had 4 free slots of its own).
        answering: dict[str, Any] = {"concurrency_id": ANSWERING, "concurrency_limit": settings.concurrency}
        # always_last: a question sent while the previous answer is still finishing runs next instead of vanishing
        question.submit(handlers.respond, ask, outs, trigger_mode="always_last", **answering, **private)
        ask_btn.click(handlers.respond, ask, outs, trigger_mode="always_last", **answering, **private)
        chatbot.example_select(_example_text, None, question, **private).then(handlers.respond, ask, outs,
                                                                              **answering, **private)
        suggest.click(_suggestion_text, suggest, question, **private).then(handlers.respond, ask, outs,
                                                                           **answering, **private)
        compare_btn.click(handlers.compare, [pick, chatbot, turns, answerer, k], outs, **answering, **private)
        chatbot.select(handlers.show_turn, [turns], [sources, export_btn], **private)
        new_btn.click(handlers.new_chat, None, outs, **private)
        demo.load(handlers.refresh_papers, None, [scope, pick, head, papers_list], **private)
        # Adding papers writes the index: one upload at a time, in its own pool so the chat keeps answering.
        add_btn.click(library.add, [upload], [added, upload], concurrency_id="ingest", concurrency_limit=1,
                      **private).then(handlers.refresh_papers, None, [scope, pick, head, papers_list], **private)
        gr.api(api.ask, api_name="ask", **answering)
        gr.api(api.papers, api_name="papers")
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    return demo


def _warm_examples(pipeline: Pipeline) -> None:
    """Answer the example questions once in the background so their passages are embedded before anyone asks."""
    t0 = time.perf_counter()
    for question in EXAMPLES:
        try:
            pipeline.answer(question)
        except Exception:  # warming is best effort; a real request reports its own error
            log.warning("warming with %r failed", question, exc_info=True)
    log.info("warmed the example questions in %.1f s", time.perf_counter() - t0)


def launch(settings: Settings | None = None) -> None:
    """Build the pipeline, warm it (index and models), and serve the chat until interrupted."""
    settings = settings or Settings()
    t0 = time.perf_counter()
    pipeline = Pipeline(settings)
    papers = pipeline.papers()  # builds the index on first run
    if papers:
        pipeline.answer(f"What is {render.label(papers[0])}?")  # loads the embedder and retrievers
    demo = build_app(pipeline, settings)
    threading.Thread(target=_warm_examples, args=(pipeline,), daemon=True, name="paperchat-warm").start()
    demo.launch(server_name=settings.host, server_port=settings.port, auth=parse_auth(settings.auth),
                prevent_thread_lock=True, allowed_paths=[], quiet=True)
    log.info("paperchat ready in %.1f s (%d papers) at %s", time.perf_counter() - t0, len(papers), demo.local_url)
    print(f"paperchat: {len(papers)} papers, ready in {time.perf_counter() - t0:.1f} s at {demo.local_url}", flush=True)
    demo.block_thread()
