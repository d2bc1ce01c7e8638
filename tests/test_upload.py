"""Adding papers while the chat runs: from another process (asked through gradio_client) and by upload in Chromium.

Real MiniLM, real embedded Chroma, the real Gradio server, the real PDF reader.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from chromadb.api.client import SharedSystemClient

from rag.answer import Pipeline
from rag.ingest import ingest_paths
from rag.settings import Settings
from tests.conftest import serve_app, until
from tests.test_ingest_safety import pick, run_cli, write_jsonl
from ui.cachepaths import PUBLIC
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
    ("a" * 300 + ".pdf", "a" * 116 + ".pdf"),
    ("..pdf", "upload.pdf"),
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
        for path in ok.json():  # Gradio's copy, in the data dir (named relative to a public name: ui.cachepaths)
            assert path.startswith(PUBLIC + "/")
            assert (uploads_dir(settings) / ".gradio" / path[len(PUBLIC) + 1:]).is_file()
        big = {"files": ("big.pdf", b"%PDF-1.7\n" + b"0" * 50_000, "application/pdf")}
        refused = httpx.post(url + "/gradio_api/upload", files=big, timeout=30)
        assert refused.status_code == 413 and "40,000" in refused.text


# -- issue 25, row 3: uploads streamed to disk, limited per client, nothing left behind ----------------------------
MB = 1_000_000


def multipart(name: str, size: int, seed: int, fail_after: int | None = None) -> tuple[dict[str, str], Any]:
    """(headers, body iterator) of a multipart upload of one file of `size` bytes, made as it is sent (distinct per
    seed); fail_after: the client stops after that many bytes (its connection dropped)."""
    boundary = f"paperchat-{seed}"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            "Content-Type: application/pdf\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    piece = (f"%PDF-1.7 {seed} ".encode() * (MB // 8))[:MB]

    def body() -> Any:
        yield head
        for sent in range(0, size, MB):
            if fail_after is not None and sent >= fail_after:
                raise ConnectionAbortedError("the client gives up")
            yield piece[: min(MB, size - sent)]
        yield tail

    headers = {"content-type": f"multipart/form-data; boundary={boundary}",
               "content-length": str(len(head) + size + len(tail))}
    return headers, body()


def rss_mb(pid: int, field: str) -> float:
    """A process's VmRSS or VmHWM (its peak) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1000
    raise AssertionError(field)


def cache_files(data: Path) -> list[Path]:
    """The files in Gradio's upload cache (inside the data directory)."""
    return [p for p in (data / "uploads" / ".gradio").rglob("*") if p.is_file() and p.stat().st_size > 0]


@pytest.mark.slow
def test_concurrent_uploads_are_streamed_limited_and_leave_nothing_behind(index_dir: Path, tmp_path: Path) -> None:
    """20 concurrent 49 MB uploads took the server from 856 MB to 2.7 GB (each body held in memory) and left 935 MB in
    uploads/.gradio. Now bodies stream to disk, one client sends at most 2 at once and 120 MB an hour here (429
    beyond), and an upload whose client drops it leaves no file."""
    import os
    import subprocess
    import sys
    import threading

    import httpx

    from rag.proc import free_port, stop_process, wait_http

    data = tmp_path / "data"
    shutil.copytree(index_dir, data)
    earlier = set(cache_files(data))  # what other tests' apps left in the session index's cache
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**{k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"},  # set by apps served in-process before
           "RAG_DATA_DIR": str(data), "RAG_UPLOAD_CLIENT_BYTES": str(120 * MB), "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(tmp_path / "chat.log", "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "rag", "chat", "--port", str(port)], env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        wait_http(url + "/", 180, proc=server)
        time.sleep(3)  # the background warm-up
        before = rss_mb(server.pid, "VmHWM")
        codes: list[int] = []

        def upload(i: int) -> None:
            headers, body = multipart(f"big-{i}.pdf", 49 * MB, i)
            codes.append(httpx.post(url + "/gradio_api/upload", content=body, headers=headers, timeout=300).status_code)

        threads = [threading.Thread(target=upload, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        peak = rss_mb(server.pid, "VmHWM")
        kept = [p for p in cache_files(data) if p not in earlier]
        print(f"20 concurrent 49 MB uploads: {codes.count(200)} taken, {codes.count(429)} refused; peak RSS "
              f"{before:.0f} -> {peak:.0f} MB, now {rss_mb(server.pid, 'VmRSS'):.0f} MB; "
              f"{sum(p.stat().st_size for p in kept) / MB:.0f} MB in the cache")
        assert sorted(set(codes)) == [200, 429] and codes.count(200) >= 2, codes
        assert peak - before < 300, f"peak RSS grew {peak - before:.0f} MB"
        assert len(kept) == codes.count(200) and all(p.stat().st_size == 49 * MB for p in kept), kept

        headers, body = multipart("more.pdf", 49 * MB, 99)  # the client's hour is used up
        refused = httpx.post(url + "/gradio_api/upload", content=body, headers=headers, timeout=60)
        assert refused.status_code == 429 and "RAG_UPLOAD_CLIENT_BYTES" in refused.text, refused.text

        for fail_after in (5 * MB, 0):  # dropped mid-way / after the headers: no partial file stays
            headers, body = multipart("dropped.pdf", 20 * MB, 100 + fail_after, fail_after=fail_after)
            with pytest.raises((httpx.HTTPError, ConnectionAbortedError)):
                httpx.post(url + "/gradio_api/upload", content=body, headers=headers, timeout=60)
        assert until(lambda: not [p for p in (data / "uploads" / ".gradio").rglob(".partial-*")], 10)
        assert len(cache_files(data)) == len(earlier) + len(kept)
    finally:
        stop_process(server, 10)


@pytest.mark.slow
def test_a_batch_with_an_odd_file_name_is_added_file_by_file(tmp_path: Path) -> None:
    """Issue 25, low row: a batch with one odd file name ('..md', a 200-letter name) failed as a whole after the other
    files were copied (its name lost its suffix on the way). Names keep their suffix; each file gets its own row."""
    from gradio_client import handle_file

    settings = Settings(data_dir=tmp_path / "data")
    files = []
    for i, name in enumerate(["good.md", "..md", "a" * 200 + ".md"]):
        path = tmp_path / f"f{i}" / name
        path.parent.mkdir()
        path.write_text(f"# Paper {'ABC'[i]}: A Study of Case {i}\n\nPaper {'ABC'[i]} is a system that schedules "
                        f"{i + 2} GPU jobs by their memory use and reports a {i + 1}.5x speedup.\n")
        files.append(handle_file(str(path)))
    with serve_app(Pipeline(settings), settings) as url:
        html = add_papers(url, files)
    assert "3 papers added" in html and html.count('class="pc-upload-ok"') == 3, html
    assert all(f"Paper {c}: A Study of Case {i}" in html for i, c in enumerate("ABC")), html  # each named by its title


def add_papers(url: str, files: list[Any]) -> str:
    """Add files through the page's own 'Add to the library' event, as a script can (gradio_client); the result."""
    from gradio_client import Client

    client = Client(url + "/", verbose=False)
    components = {c["id"]: c for c in client.config["components"]}
    add = next(i for i, d in enumerate(client.config["dependencies"]) if any(
        components.get(t[0], {}).get("props", {}).get("elem_id") == "pc-add-btn" for t in d["targets"]))
    client.endpoints[add].is_valid = True  # the page's own event, private to scripts
    return str(client.predict(files, fn_index=add)[0])
