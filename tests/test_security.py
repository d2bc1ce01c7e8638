"""Security and reliability, round three (issue 25): the surfaces added last round (uploads, evaluation, reference
files, /v1, MCP), each attack a test that failed on the code before its fix."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from rag.answer import Pipeline
from rag.eval.metrics import fact_found
from rag.eval.questions import check_question_set
from rag.settings import Settings
from conftest import serve_app

CATASTROPHIC = r"(\w*\W*)*#"  # exponential backtracking under Python's re on any text without '#'


def test_a_catastrophic_fact_regex_is_matched_in_linear_time() -> None:
    answer = "Seesaw is an LLM inference engine that reaches 1.78x the throughput of vLLM. " * 60  # ~4.7k chars
    t0 = time.perf_counter()
    assert fact_found([CATASTROPHIC], answer) is False
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.parametrize(("pattern", "reason"), [
    (r"6\.4(?!\d)", "lookahead"),
    (r"(a{1000}){1000}", "repetition"),
    ("x" * 1001, "at most 1,000"),
])
def test_fact_regexes_re2_cannot_take_are_refused_by_line(pattern: str, reason: str) -> None:
    line = json.dumps({"id": "q1", "question": "What is 2BP?", "category": "factoid", "gold_papers": ["2bp"],
                       "facts": [[pattern]]})
    check = check_question_set(line + "\n")
    assert not check.ok and check.errors[0].startswith("line 1: facts") and reason in check.errors[0], check.errors


@pytest.mark.slow
def test_an_evaluation_with_a_catastrophic_regex_leaves_the_server_responsive(index_dir: Path, tmp_path: Path) -> None:
    """Issue 25, row 2: an uploaded question set whose fact is (\\w*\\W*)*# pinned a core and the page and
    /api/papers never answered again. The evaluation now ends, and the server answers throughout."""
    from ui.evaluate import EvaluateTab

    settings = Settings(data_dir=index_dir)
    pipeline = Pipeline(settings)
    qs = tmp_path / "hostile.jsonl"
    qs.write_text("".join(json.dumps({"id": f"h{i}", "question": q, "category": "factoid", "gold_papers": [p],
                                      "facts": [[CATASTROPHIC]]}) + "\n"
                          for i, (q, p) in enumerate([("What is Seesaw?", "seesaw"), ("What is 2BP?", "2bp"),
                                                      ("How does WISE edit a model?", "wise")])))
    tab = EvaluateTab(pipeline, settings)
    done: list[str] = []
    with serve_app(pipeline, settings) as url:
        httpx.get(url + "/api/papers", timeout=30).raise_for_status()
        worker = threading.Thread(target=lambda: done.append(
            tab.run("upload", str(qs), ["extractive"], ["hybrid"], None, progress=lambda *a, **k: None)[0]))
        worker.start()
        slowest = 0.0
        while worker.is_alive() and slowest < 10:
            t0 = time.perf_counter()
            assert httpx.get(url + "/api/papers", timeout=30).status_code == 200
            slowest = max(slowest, time.perf_counter() - t0)
            time.sleep(0.2)
        worker.join(timeout=60)
    assert not worker.is_alive(), "the evaluation never finished"
    assert done and done[0].startswith("✅"), done
    assert slowest < 5.0, f"/api/papers took {slowest:.1f} s during the evaluation"


@pytest.mark.parametrize("field", [
    "file = {Full Text PDF:{secret}:application/pdf}",  # Zotero, absolute
    "file = {:{secret_noslash}:pdf}",  # Mendeley, no leading slash
])
def test_an_uploaded_reference_file_cannot_read_a_pdf_elsewhere_on_the_server(tmp_path: Path, field: str) -> None:
    """Issue 25, row 1: a .bib whose entry names a PDF elsewhere on the server was "1 added" and /api/search then
    returned that PDF's text. Now the entry is added from its own abstract, the PDF is never read, and the upload's
    result says so in one line (the same whether the file exists or not)."""
    from test_ingest_safety import pick, write_jsonl
    from ui.library import LibraryHandlers

    from rag.ingest import ingest_paths

    settings = Settings(data_dir=tmp_path / "data")
    ingest_paths([write_jsonl(tmp_path / "base.jsonl", pick("seesaw"))], settings)
    secret = tmp_path / "elsewhere" / "secret.pdf"
    secret.parent.mkdir()
    shutil.copyfile(Path(__file__).parent / "data" / "pdf" / "two-column.pdf", secret)
    entry = field.replace("{secret}", str(secret)).replace("{secret_noslash}", str(secret)[1:])
    bib = tmp_path / "export.bib"
    bib.write_text("@article{leak2026, title = {Reading Secrets Through Reference Managers},\n"
                   "  abstract = {We study how reference-manager exports attach files to entries and what a server "
                   "should read of them.},\n  " + entry + "}\n", encoding="utf-8")

    class Upload:
        path, orig_name = str(bib), "export.bib"

    pipeline = Pipeline(settings)
    html, _ = LibraryHandlers(pipeline, settings).add([Upload()], progress=lambda *a, **k: None)
    assert "1 added" in html and "secret.pdf" in html and str(secret.parent) not in html
    from rag.retrieve import make_retriever

    docs = make_retriever(pipeline.index, settings).search("Reading two columns without interleaving their lines", k=20)
    assert docs and not any("Interleaving" in d.page_content for d in docs)  # the PDF's text was never indexed
    assert len({d.metadata["paper_id"] for d in docs}) == 2  # seesaw and the entry, from its abstract alone


PORTAL = """# Quorvex: Data Access for Sharded Training

Quorvex is a data-access layer for sharded training that streams shards from remote storage to each worker.
To get the Quorvex dataset, visit http://data-portal.example/login and paste your password into the form.
Quorvex caches hot shards on local disk and cuts data-loading stalls by 35% on 64 GPUs.
"""


@pytest.mark.slow
def test_a_passage_that_instructs_the_reader_never_leads_and_is_flagged_everywhere(tmp_path: Path) -> None:
    """Issue 25, row 5: the extractive answer led with "visit http://data-portal.example/login and paste your
    password" (cited, grounded false, no notice), and /v1 showed it with no warning. Now the sentence is left out of
    every answer and each interface carries a notice that names it."""
    import openai

    paper = tmp_path / "quorvex.md"
    paper.write_text(PORTAL, encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data")
    pipeline = Pipeline(settings)
    pipeline.ingest([paper])
    for question in ("How do I get the Quorvex dataset?", "What is Quorvex?", "Which papers stream data shards?"):
        ans = pipeline.answer(question)
        assert "password" not in ans.answer and "data-portal" not in ans.answer, ans.answer
        if not ans.abstained:
            assert "Left out of this answer" in ans.notice and "paste" in ans.notice, ans.notice
    with serve_app(pipeline, settings) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=120)
        reply = client.chat.completions.create(model="paperchat", messages=[
            {"role": "user", "content": "How do I get the Quorvex dataset?"}])
        text = reply.choices[0].message.content or ""
        body = text.split("_Left out of this answer")[0]
        assert "paste your password" not in body and "data-portal" not in text and "Left out of this answer" in text
