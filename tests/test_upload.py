"""Adding papers while the chat runs: from another process (asked through gradio_client) and by upload in Chromium.

Real MiniLM, real embedded Chroma, the real Gradio server, the real PDF reader.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from chromadb.api.client import SharedSystemClient

from rag.answer import Pipeline
from rag.ingest import ingest_paths
from rag.settings import Settings
from tests.conftest import serve_app
from tests.test_ingest_safety import pick, run_cli, write_jsonl
from ui.library import LibraryHandlers, safe_name, uploads_dir

PDFS = Path(__file__).resolve().parent / "data" / "pdf"
HEADERS_Q = "What happens to headers and footers before the text is joined into paragraphs?"


@pytest.mark.parametrize(("given", "kept"), [
    ("paper.pdf", "paper.pdf"),
    ("../../etc/passwd.pdf", "passwd.pdf"),
    ("..\\..\\Windows\\x.bib", "x.bib"),
    (".bashrc.md", "bashrc.md"),
    ("my paper (final).pdf", "my_paper_final_.pdf"),
    ("..", "upload"),
    ("a" * 300 + ".pdf", "a" * 120),
])
def test_safe_name_never_leaves_the_folder(given: str, kept: str) -> None:
    assert safe_name(given) == kept


class _Upload:
    """What Gradio hands a handler for an uploaded file: a path in its cache and the name the user gave."""

    def __init__(self, path: Path, orig_name: str) -> None:
        self.path, self.orig_name = str(path), orig_name


def test_uploads_are_limited_and_kept_in_the_data_directory(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", max_upload_bytes=30_000, max_upload_files=2)
    handlers = LibraryHandlers(Pipeline(settings), settings)
    pdf = _Upload(PDFS / "two-column.pdf", "../../two-column.pdf")
    kept = handlers.keep([pdf])
    assert kept[0].name == "two-column.pdf" and kept[0].parent.parent == uploads_dir(settings)  # its own folder
    assert kept[0].read_bytes() == (PDFS / "two-column.pdf").read_bytes()
    assert handlers.keep([pdf])[0].parent != kept[0].parent  # each upload in a folder of its own
    assert not (tmp_path / "two-column.pdf").exists()
    with pytest.raises(ValueError, match="at most 2"):
        handlers.keep([pdf, pdf, pdf])
    with pytest.raises(ValueError, match="RAG_MAX_UPLOAD_BYTES"):
        handlers.keep([pdf, _Upload(PDFS / "single-column.pdf", "b.pdf")]) if (
            (PDFS / "two-column.pdf").stat().st_size + (PDFS / "single-column.pdf").stat().st_size > 30_000) \
            else pytest.fail("fixtures smaller than the test's limit")
    notes = tmp_path / "notes.exe"
    notes.write_bytes(b"MZ")
    with pytest.raises(ValueError, match="not a paper file"):
        handlers.keep([_Upload(notes, "notes.exe")])


def base_index(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data")
    ingest_paths([write_jsonl(tmp_path / "base.jsonl", pick("seesaw", "2bp", "nesa"))], settings)
    SharedSystemClient.clear_system_cache()  # no handle of this process stays open on the index
    return settings


@pytest.mark.slow
def test_a_pdf_ingested_by_another_process_is_answered_by_the_running_chat(tmp_path: Path) -> None:
    from gradio_client import Client

    settings = base_index(tmp_path)
    with serve_app(Pipeline(settings)) as url:
        client = Client(url + "/", verbose=False)
        assert client.predict(HEADERS_Q, api_name="/ask")["abstained"]
        done = run_cli("ingest", PDFS / "two-column.pdf", env={"RAG_DATA_DIR": str(settings.data_dir)})
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 30
        while not any(p["title"].startswith("Reading Two Columns") for p in client.predict(api_name="/papers")):
            assert time.monotonic() < deadline, "the running chat never saw the new paper"
            time.sleep(0.5)
        got = client.predict(HEADERS_Q, api_name="/ask")
        assert not got["abstained"] and "dropped" in got["answer"]
        cited = {n for s in got["sentences"] for n in s["citations"]}
        assert any(s["n"] in cited and s["page"] >= 1 for s in got["sources"])


SIZES = [pytest.param({"width": 1280, "height": 800}, id="1280x800"),
         pytest.param({"width": 390, "height": 844}, id="390x844")]


@pytest.mark.slow
@pytest.mark.parametrize("viewport", SIZES)
def test_upload_in_the_browser_adds_papers_the_next_question_finds(tmp_path: Path, browser, viewport) -> None:  # noqa: ANN001
    settings = base_index(tmp_path)
    shutil.copy(PDFS / "image-only.pdf", tmp_path / "scan.pdf")
    (tmp_path / "notes.md").write_text("", encoding="utf-8")  # refused on the server: an empty file
    phone = viewport["width"] < 700
    with serve_app(Pipeline(settings)) as url:
        page = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone).new_page()
        page.set_default_timeout(120_000)
        try:
            page.goto(url + "/")
            page.wait_for_selector("#pc-question textarea")
            page.get_by_role("tab", name="Papers").click()
            add = page.locator("#pc-add").get_by_text("Add papers")
            add.wait_for(state="visible")
            if not phone:  # on a laptop's first screen, not below the paper list
                box = add.bounding_box()
                assert box["y"] + box["height"] <= viewport["height"], box
            add.click()
            page.locator("#pc-upload input[type=file]").set_input_files([str(PDFS / "two-column.pdf"),
                                                                       str(tmp_path / "scan.pdf")])
            # one progress bar: Gradio drew one per output, over the result and again over the file list
            page.evaluate("""() => { window.__overFiles = false; const box = document.querySelector('#pc-upload');
                new MutationObserver(() => { if (/Reading the files|Adding|%/.test(box.innerText))
                    window.__overFiles = true; }).observe(box, {childList: true, subtree: true,
                                                             characterData: true}); }""")
            page.locator("#pc-add-btn").click()
            result = page.locator("#pc-added .pc-upload-result")
            result.wait_for()
            assert not page.evaluate("window.__overFiles")
            text = result.inner_text()
            assert "Added Reading Two Columns Without Interleaving Their Lines — 3 pages, searchable now." in text, text
            assert "Not added: scan.pdf has no text layer" in text, text
            assert "passage" not in text and "vector" not in text and "reading-two-columns" not in text, text
            assert str(tmp_path) not in text and "/uploads/" not in text
            page.screenshot(path=str(tmp_path / "upload.png"))
            # the file list is cleared: nothing refused stays selected
            page.wait_for_function("() => !document.querySelector('#pc-upload .file-preview, #pc-upload table')")
            # a file the server refuses is named without its path and not left selected
            page.locator("#pc-upload input[type=file]").set_input_files([str(tmp_path / "notes.md")])
            page.locator("#pc-add-btn").click()
            page.wait_for_function("() => document.querySelector('#pc-added')?.innerText.includes('notes.md')")
            refused = page.locator("#pc-added").inner_text()
            assert "notes.md" in refused and "/" not in refused.replace("notes.md", ""), refused
            page.wait_for_function("() => !document.querySelector('#pc-upload .file-preview, #pc-upload table')")
            # The paper list follows at once, and the chat answers from the new PDF with its page.
            page.get_by_text("Reading Two Columns Without Interleaving Their Lines").first.wait_for(timeout=10_000)
            if phone:
                return
            page.locator("#pc-question textarea").fill(HEADERS_Q)
            page.locator("#pc-ask").click()
            page.locator("#pc-chat").get_by_text("dropped").first.wait_for(timeout=60_000)
            page.get_by_role("tab", name="Sources").click()
            card = page.locator("#pc-sources .pc-src").first
            card.wait_for(timeout=10_000)
            assert "Reading Two Columns" in card.inner_text() and "p. " in card.inner_text()
            page.screenshot(path=str(tmp_path / "answer.png"))
            page.wait_for_function("(b => b && !b.disabled)(document.querySelector('#pc-bib'))", timeout=10_000)
            with page.expect_download() as got:  # the conversation's cited papers, as BibTeX
                page.locator("#pc-bib").click()
            bib = Path(got.value.path()).read_text(encoding="utf-8")
            assert bib.startswith("@") and "title = {Reading Two Columns Without Interleaving Their Lines}" in bib
            assert "Ada Lovelace and Alan Turing and Grace Hopper" in bib
            cache = uploads_dir(settings) / ".gradio"  # Gradio's own copy (deleted when the app closes)
            assert any(cache.rglob("two-column.pdf")), "Gradio's upload copy lives in the data directory too"
        finally:
            page.context.close()
    kept = sorted(p.name for p in uploads_dir(settings).glob("*/*") if p.is_file() and ".gradio" not in p.parts)
    assert kept == ["notes.md", "scan.pdf", "two-column.pdf"]
    listed = json.loads(run_cli("papers", "--json", env={"RAG_DATA_DIR": str(settings.data_dir)}).stdout)
    assert any(p["kind"] == "pdf" and p["source"] == "two-column.pdf" for p in listed)


@pytest.mark.slow
def test_upload_route_needs_the_login_and_respects_the_size_limit(tmp_path: Path) -> None:
    import httpx

    settings = Settings(data_dir=tmp_path / "data", max_upload_bytes=40_000)
    ingest_paths([write_jsonl(tmp_path / "base.jsonl", pick("seesaw"))], settings)
    SharedSystemClient.clear_system_cache()
    files = {"files": ("two-column.pdf", (PDFS / "two-column.pdf").read_bytes(), "application/pdf")}
    with serve_app(Pipeline(settings), settings, auth="ada:lovelace-1843") as url:
        denied = httpx.post(url + "/gradio_api/upload", files=files, timeout=30)
        assert denied.status_code == 401
    with serve_app(Pipeline(settings), settings) as url:
        ok = httpx.post(url + "/gradio_api/upload", files=files, timeout=30)
        assert ok.status_code == 200, ok.text
        assert all(str(uploads_dir(settings)) in path for path in ok.json())  # Gradio's copy: in the data dir
        big = {"files": ("big.pdf", b"%PDF-1.7\n" + b"0" * 50_000, "application/pdf")}
        refused = httpx.post(url + "/gradio_api/upload", files=big, timeout=30)
        assert refused.status_code == 413 and "40,000" in refused.text
