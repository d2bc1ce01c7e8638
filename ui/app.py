"""The paperchat web chat: build_app(pipeline, settings) -> gr.Blocks, and launch(settings). Thin over rag's API."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import gradio as gr

from rag.answer import Pipeline
from rag.collection import ExampleCache, paper_card
from rag.proc import PortInUseError, check_port
from rag.serve.auth import key_login
from rag.serve.slots import AnswerSlots
from rag.settings import Settings
from rag.types import Answer

from . import collection_view, conversations, evaluate, render
from .api import GENERIC_ERROR, ScriptAPI, parse_auth
from .assets import CSS, THEME
from .clients import forwarded_for_from
from .guard import GuardConfig, guarded_app
from .handlers import ChatHandlers
from .library import UPLOAD_TYPES, LibraryHandlers, uploads_dir, use_gradio_cache
from .login import KEY_HINT, LOGIN_HINT, LoginRedirect, login_router
from .routes import create_router
from .script import JS

log = logging.getLogger(__name__)
__all__ = ["GENERIC_ERROR", "ChatApp", "ChatHandlers", "build_app", "example_questions", "launch"]

ANSWERING = "answer"  # one Gradio concurrency group for every event and API that computes an answer
_EXAMPLES: dict[str, ExampleCache] = {}  # per data dir: example questions per index generation


class ChatApp(gr.Blocks):
    """Blocks whose launch() defaults to paperchat's safe settings, theme, CSS and script."""

    guard = GuardConfig()
    routers: tuple[Any, ...] = ()  # FastAPI routers served beside the app (ui.routes: /v1 and /api)

    def launch(self, **kwargs: Any) -> Any:  # type: ignore[override]
        """Launch with local-only look and safe defaults (no share link, no error details, uploads up to RAG_MAX_UPLOAD_BYTES), behind
        ui.guard (body limit, security headers, no CORS, every route behind the login if there is one)."""
        defaults = {"theme": THEME, "css": CSS, "js": JS, "share": False, "show_error": False,
                    "max_file_size": self.guard.max_upload_bytes, "ssr_mode": False, "mcp_server": False,
                    "run_history": False, "footer_links": ["api"]}  # no Gradio "Settings": the app has its own Settings tab
        for key, value in defaults.items():
            kwargs.setdefault(key, value)
        hint = LOGIN_HINT
        if not kwargs.get("auth") and self.guard.api_keys:  # keys and no login: the page asks for a key
            kwargs["auth"] = key_login(self.guard.api_keys)
            hint = KEY_HINT
        # Gradio's launch() takes the FastAPI app to serve as `_app`: ours wraps its whole middleware stack. With a
        # login, paperchat's own login page replaces Gradio's (which named no app and cleared both fields).
        auth = bool(kwargs.get("auth"))
        app = guarded_app(dataclasses.replace(self.guard, auth_required=auth),
                          (*self.routers, login_router(hint)) if auth else self.routers)
        if auth:
            app.add_middleware(LoginRedirect)
            kwargs.setdefault("auth_message", f"paperchat: {hint}")
        kwargs.setdefault("_app", app)
        with forwarded_for_from(self.guard.trusted_proxies):  # uvicorn's server, made inside launch(), reads it
            return super().launch(**kwargs)


def answering(settings: Settings) -> dict[str, Any]:
    """The Gradio queue options of every event that computes an answer: one group, as many in progress as the queue
    holds. The answer slots (rag.serve.slots) limit what is computed, extractive and LLM answers apart, and waiting
    for one holds no thread: a Gradio limit of RAG_CONCURRENCY for the group made an extractive question wait in
    Gradio's queue behind slow LLM answers."""
    return {"concurrency_id": ANSWERING, "concurrency_limit": settings.queue_size}


def _example_text(evt: gr.SelectData) -> str:
    """The question of a clicked example."""
    return str((evt.value or {}).get("text", "")) if isinstance(evt.value, dict) else str(evt.value or "")


def _suggestion_text(row: list[str] | str) -> str:
    """The question of a clicked suggestion."""
    return str(row[0] if isinstance(row, list) and row else row or "")


def extractive_answer(pipeline: Pipeline) -> Callable[[str], Answer]:
    """The pipeline's extractive answer to a question: what start-up checks and warms with, so that it never waits
    on an LLM (with RAG_ANSWERER=openai on a slow server, start-up took 302 s of warm-up and example checks)."""
    return lambda question: pipeline.answer(question, answerer="extractive")


def example_questions(pipeline: Pipeline) -> list[str]:
    """Example questions from the papers indexed, each checked to be answered (cached per index generation); the
    check is extractive: an LLM answer falls back to the extractive one, so what it answers, the chat answers."""
    try:
        generation = pipeline.index.view().generation
        cache = _EXAMPLES.setdefault(str(pipeline.settings.data_dir),
                                     ExampleCache(pipeline.settings.data_dir / "example-questions.json"))
        return cache.get(generation, [paper_card(p) for p in pipeline.papers()], extractive_answer(pipeline))
    except Exception:  # the page loads without examples rather than not at all
        log.warning("could not make example questions", exc_info=True)
        return []


def build_app(pipeline: Pipeline, settings: Settings) -> gr.Blocks:
    """The chat app over a pipeline; queue and limits from settings."""
    slots = AnswerSlots(settings)  # every interface's answers: the chat's events, its /ask, /api and /v1
    handlers, api = ChatHandlers(pipeline, settings, slots), ScriptAPI(pipeline, settings, slots)
    library = LibraryHandlers(pipeline, settings)
    evaluation = evaluate.EvaluateTab(pipeline, settings)
    papers = pipeline.papers()
    examples = example_questions(pipeline)
    handlers.shown = tuple(p.id for p in papers)
    choices = [(render.choice(p), p.id) for p in papers]
    use_gradio_cache(uploads_dir(settings) / ".gradio")
    with ChatApp(title="paperchat", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        demo.guard = GuardConfig.of(settings)
        demo.routers = (create_router(pipeline, settings, slots),)
        turns, conv, marks = gr.State([]), gr.State(""), gr.State({})
        store = gr.BrowserState(conversations.EMPTY, storage_key="paperchat-conversations",
                                secret=conversations.browser_secret(settings.data_dir))
        with gr.Row(equal_height=True, elem_id="pc-top"):
            head = gr.HTML(collection_view.header_html(papers), js_on_load=None, elem_id="pc-head")
            with gr.Row(elem_id="pc-tools"):
                new_btn = gr.Button("New chat", size="sm", elem_id="pc-new", scale=0, min_width=100)
                export_btn = gr.DownloadButton("Export answer (.md)", value=None, interactive=False, size="sm",
                                               elem_id="pc-export", scale=0, min_width=170)
                bib_btn = gr.DownloadButton("References (.bib)", value=None, interactive=False, size="sm",
                                            elem_id="pc-bib", scale=0, min_width=150)
        with gr.Row(equal_height=False, elem_id="pc-body"):
            with gr.Column(scale=7, min_width=440, elem_id="pc-main"):
                landing = gr.HTML(collection_view.landing_html(papers), js_on_load=None, elem_id="pc-landing")
                # autoscroll off: the page script follows a new turn to its question, not to the answer's end
                chatbot = gr.Chatbot(elem_id="pc-chat", show_label=False, height="calc(100vh - 320px)",
                                     autoscroll=False, min_height=380, buttons=["copy", "copy_all"],
                                     feedback_options=evaluate.FEEDBACK_OPTIONS,
                                     examples=[{"text": q} for q in examples] or None, layout="panel",
                                     placeholder="**Ask a question about the papers**"
                                                 + (", or pick an example." if examples else "."))
                suggest = gr.Dataset(components=[gr.Textbox(visible=False)], samples=[["What is 2BP?"]],
                                     label="Try asking instead", visible=False, elem_id="pc-suggest")
                status = gr.Markdown("", elem_id="pc-status")
                with gr.Row(equal_height=True):
                    question = gr.Textbox(show_label=False, placeholder="Ask about the papers…", scale=8,
                                          max_lines=6, elem_id="pc-question")
                    ask_btn = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="pc-ask")
                scope = gr.Dropdown(choices, multiselect=True, value=[], elem_id="pc-scope",
                                    label="Search only in these papers (empty: all papers)")
            with gr.Column(scale=5, min_width=360, elem_id="pc-side"), gr.Tabs(elem_id="pc-tabs") as tabs:
                with gr.Tab("Sources", id="sources", elem_id="pc-sources-tab"):
                    # A comparison's chart sits above its sources, beside the chat: below it, it pushed the
                    # question box off a laptop screen.
                    with gr.Column(elem_id="pc-sources-col"):
                        with gr.Column(elem_id="pc-chart-box"):
                            chart = gr.HTML("", js_on_load=None, elem_id="pc-chart-cap")
                            csv_btn = gr.DownloadButton("Comparison table (.csv)", visible=False, size="sm",
                                                        elem_id="pc-csv")
                        sources = gr.HTML(render.sources_html(None, 0, {}), elem_id="pc-sources", js_on_load=None)
                with gr.Tab("Papers", id="papers"):
                    # Adding papers first: below 21 cards it was off a laptop's screen.
                    with gr.Accordion("Add papers", open=False, elem_id="pc-add"):
                        upload = gr.File(file_count="multiple", file_types=UPLOAD_TYPES, elem_id="pc-upload",
                                         label="PDF, BibTeX (.bib), RIS, JSONL or Markdown files", height=140)
                        add_btn = gr.Button("Add to the library", variant="primary", elem_id="pc-add-btn")
                        added = gr.HTML("", elem_id="pc-added", js_on_load=None)
                    papers_list = gr.HTML(collection_view.collection_html(papers, with_abstract=True),
                                          js_on_load=None, elem_id="pc-papers")
                with gr.Tab("Compare", id="compare"):
                    gr.Markdown("Choose two or more papers: the answer is a table (problem, approach, "
                                "reported result), every cell cited, with a chart when their figures compare. "
                                "You can also just ask *Compare X and Y*.")
                    compare_btn = gr.Button("Compare the chosen papers", variant="primary", elem_id="pc-compare")
                    gr.HTML('<input type="search" class="pc-pick-filter" placeholder="Filter the papers…" '
                            'aria-label="Filter the papers to compare">', js_on_load=None)
                    pick = gr.CheckboxGroup(choices, label="Papers to compare", elem_id="pc-compare-pick")
                with gr.Tab("History", id="history"):
                    past = gr.Radio([], label="Past conversations, saved in this browser (newest first)",
                                    elem_id="pc-history")
                    forget_btn = gr.Button("Delete the chosen conversation", size="sm", variant="stop",
                                           elem_id="pc-history-delete")
                    undo_btn = gr.Button("Undo", size="sm", visible=False, elem_id="pc-history-undo")
                    removed = gr.State(None)  # the conversation just deleted, until Undo or the next delete
                with gr.Tab("Settings", id="settings"):
                    answerer = gr.Radio(["extractive", "openai", "local"], value=settings.answerer,
                                        label="Answerer", elem_id="pc-answerer")
                    k = gr.Slider(1, 20, value=settings.top_k, step=1, label="Passages retrieved", elem_id="pc-k")
                    gr.Markdown("*extractive* quotes the papers directly (offline, instant). *openai* and "
                                "*local* write with a language model; if it is unreachable you see a notice "
                                "and the extractive answer instead.")
                with gr.Tab("Evaluate", id="evaluate"):
                    eval_parts = evaluation.build(answering(settings))
        # The collection cards' buttons reach the server through these (the page script fills and clicks them).
        action = gr.Textbox(visible="hidden", elem_id="pc-action")
        action_go = gr.Button(visible="hidden", elem_id="pc-action-go")

        outs = [chatbot, turns, sources, question, export_btn, suggest, status]
        ask = [question, chatbot, turns, answerer, k, scope]
        view = [chatbot, turns, sources, export_btn, status, store, conv, past, chart, csv_btn]
        saved = [store, conv, past, chart, csv_btn, tabs, marks]
        private: dict[str, Any] = {"api_visibility": "private"}
        answers = answering(settings)  # every answering event and the /ask API: one group

        def then_save(event: Any) -> None:
            """After an answer: the conversation saved in the browser, the comparison's chart and CSV."""
            event.then(handlers.after_answer, [turns, store, conv, marks], saved, **conversations.SAVING,
                       **private).then(
                handlers.references, [turns], bib_btn, **private)

        # always_last: a question sent while the previous answer is still finishing runs next instead of vanishing
        then_save(question.submit(handlers.respond, ask, outs, trigger_mode="always_last", **answers, **private))
        then_save(ask_btn.click(handlers.respond, ask, outs, trigger_mode="always_last", **answers, **private))
        then_save(chatbot.example_select(_example_text, None, question, **private)
                  .then(handlers.respond, ask, outs, **answers, **private))
        then_save(suggest.click(_suggestion_text, suggest, question, **private)
                  .then(handlers.respond, ask, outs, **answers, **private))
        then_save(compare_btn.click(handlers.compare, [pick, chatbot, turns, answerer, k], outs, **answers,
                                    **private))
        action_go.click(handlers.paper_action, [action, scope, pick], [scope, pick, tabs, status], **private)
        then_save(action_go.click(handlers.ask_action, [action, chatbot, turns, answerer, k, scope], outs,
                                  **answers, **private))
        chatbot.select(handlers.show_turn, [turns], [sources, export_btn], **private)
        hide_suggest: dict[str, Any] = {"fn": lambda: gr.Dataset(visible=False), "inputs": None, "outputs": suggest}
        refs: dict[str, Any] = {"fn": handlers.references, "inputs": [turns], "outputs": bib_btn}
        new_btn.click(handlers.new_chat, [store], view, **private).then(**hide_suggest, **private).then(
            **refs, **private)
        chatbot.clear(handlers.clear, [store, conv], view, **private).then(**hide_suggest, **private).then(
            **refs, **private)
        past.input(handlers.open_conversation, [past, store, conv], view, **private).then(**refs, **private)
        forget_btn.click(handlers.delete_conversation, [past, store, conv], [*view, removed, undo_btn],
                         **private).then(**refs, **private)
        undo_btn.click(handlers.undo_delete, [removed, store, conv], [*view, removed, undo_btn], **private).then(
            **refs, **private)
        answerer.input(handlers.llm.forget, None, None, **private)  # chosen again: an LLM that failed is tried again
        quiet: dict[str, Any] = {"show_progress": "hidden", **private}
        pickers = [scope, pick, head, landing, papers_list]
        demo.load(handlers.page_load, [store], [*view, bib_btn, *pickers], **quiet)
        # Adding papers writes the index: one upload at a time, in its own pool so the chat keeps answering.
        add_btn.click(library.add, [upload], [added, upload], concurrency_id="ingest", concurrency_limit=1,
                      show_progress_on=[added], **private).then(handlers.refresh_papers, None, pickers, **quiet)
        evaluation.wire(eval_parts, chatbot, turns, store, conv, marks, demo.load)
        gr.api(api.ask, api_name="ask", **answers)
        gr.api(api.papers, api_name="papers")
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    return demo


def _warm_examples(pipeline: Pipeline) -> None:
    """Answer the example questions once in the background so their passages are embedded before anyone asks."""
    t0 = time.perf_counter()
    answer = extractive_answer(pipeline)
    for question in example_questions(pipeline):
        try:
            answer(question)
        except Exception:  # warming is best effort; a real request reports its own error
            log.warning("warming with %r failed", question, exc_info=True)
    log.info("warmed the example questions in %.1f s", time.perf_counter() - t0)


def launch(settings: Settings | None = None, view_progress: Any = None) -> None:
    """Build the pipeline, warm it (index and models), and serve the chat until interrupted (view_progress: told how
    a build of the retrieval view goes, when one is needed); PortInUseError when the port is taken."""
    settings = settings or Settings()
    t0 = time.perf_counter()
    check_port(settings.host, settings.port)  # a taken port is said before the index is opened, not after
    pipeline = Pipeline(settings, view_progress=view_progress)
    papers = pipeline.papers()  # builds the index on first run
    if papers:
        extractive_answer(pipeline)(f"What is {render.label(papers[0])}?")  # loads the embedder and retrievers
    demo = build_app(pipeline, settings)
    threading.Thread(target=_warm_examples, args=(pipeline,), daemon=True, name="paperchat-warm").start()
    try:
        demo.launch(server_name=settings.host, server_port=settings.port, auth=parse_auth(settings.auth),
                    prevent_thread_lock=True, allowed_paths=[], quiet=True)
    except OSError as exc:  # Gradio says "Cannot find empty port …" and names its own GRADIO_SERVER_PORT
        if "empty port" in str(exc):
            raise PortInUseError(settings.host, settings.port) from None
        raise
    log.info("paperchat ready in %.1f s (%d papers) at %s", time.perf_counter() - t0, len(papers), demo.local_url)
    print(f"paperchat: {len(papers)} papers, ready in {time.perf_counter() - t0:.1f} s at {demo.local_url}", flush=True)
    demo.block_thread()
