"""The chat in a real browser (Debian Chromium through Playwright): streaming, citations, compare, export,
abstention, and hostile passages that must stay inert."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from conftest import CHROMIUM, serve_app
from rag.answer import Pipeline
from rag.settings import Settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium "
                                                     "(apt-get install chromium)"),
]
SHOTS = Path("/tmp/paperchat-shots")
SEESAW_Q = "By how much does Seesaw beat vLLM?"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
CITE = '#pc-chat a[href^="#src-"]'
HOSTILE_PAPER = """# Zorblax: Hostile Sharding for Testing Renderers

Zorblax is a sharding system that splits model weights across devices by layer importance.
<script>window.__pwned=1</script> Zorblax assigns each shard to the device with the most free memory, and it
rebalances shards when a device fails. <img src=x onerror="window.__pwned=2"> Zorblax reduces memory use by 40%
compared to naive sharding. See [the demo](javascript:alert(1)) for details. ![x](http://198.51.100.7/leak.png)
Zorblax also handles ${alert(3)} and {{constructor.constructor('window.__pwned=3')()}} as plain text.
Zorblax is evaluated on eight GPUs and achieves a 1.5x throughput gain over static sharding.
"""


@contextmanager
def serve(pipeline: Pipeline) -> Iterator[str]:
    """The chat app over a pipeline on a free local port; yields its page URL."""
    with serve_app(pipeline) as base:
        yield base + "/"


@pytest.fixture(scope="module")
def chat_url(pipeline: Pipeline) -> Iterator[str]:
    """The app over the session pipeline."""
    with serve(pipeline) as url:
        yield url


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (own context) that records requests and dialogs."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    pg.requests, pg.dialogs = [], []  # type: ignore[attr-defined]
    pg.on("request", lambda r: pg.requests.append(r.url))
    pg.on("websocket", lambda ws: pg.requests.append(ws.url))
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    yield pg
    ctx.close()


def shot(page: Any, tmp_path: Path, name: str, keep: bool = False) -> None:
    """Screenshot into tmp_path; keep=True also copies it to /tmp/paperchat-shots/ for a human to look at."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    if keep:
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SHOTS / path.name)


def open_chat(page: Any, url: str) -> None:
    """Load the app and start recording what the chat shows on every DOM change."""
    page.goto(url)
    page.wait_for_selector("#pc-question textarea")
    page.evaluate("""() => {
        window.__snaps = [];
        const chat = document.querySelector('#pc-chat');
        new MutationObserver(() => window.__snaps.push(chat.innerText))
            .observe(chat, {childList: true, subtree: true, characterData: true});
    }""")


def ask(page: Any, question: str, expect: str) -> float:
    """Type a question, press Enter, wait until the chat shows `expect`; returns the seconds it took."""
    page.fill("#pc-question textarea", question)
    t0 = time.perf_counter()
    page.keyboard.press("Enter")
    page.wait_for_function("([t]) => document.querySelector('#pc-chat').innerText.includes(t)", arg=[expect])
    return time.perf_counter() - t0


def assert_card_in_view(page: Any, href: str, contains: str) -> None:
    """The source card a citation points to shows its highlighted sentence, scrolled into view."""
    mark = page.locator(f"{href} mark.pc-hl").filter(has_text=contains).first
    mark.wait_for(state="visible")
    # The smooth scroll (and its re-alignment when a comparison's chart arrives above the cards) settles within
    # moments when idle; a loaded machine (load average 12) gets up to 20 s before the card counts as not in view.
    try:
        page.wait_for_function("""([sel]) => {
            const m = document.querySelector(sel).getBoundingClientRect();
            const box = document.querySelector('#pc-sources').getBoundingClientRect();
            return m.height > 0 && m.top >= Math.max(0, box.top) - 1 && m.top < Math.min(innerHeight, box.bottom);
        }""", arg=[f"{href} mark.pc-hl"], timeout=20_000)
    except Exception:  # playwright's TimeoutError
        raise AssertionError(f"{href} is not scrolled into view") from None


def test_answer_streams_in_and_citation_shows_highlighted_passage(page: Any, chat_url: str, tmp_path: Path,
                                                                  pipeline: Pipeline) -> None:
    open_chat(page, chat_url)
    # The answer is held until the page has shown the question with a pending answer: on a loaded machine the
    # browser could otherwise draw the pending bubble and the answer in one frame, and no snapshot would hold it.
    gate, real = threading.Event(), pipeline.stream

    def held(*args: Any, **kwargs: Any) -> Iterator[Any]:
        gate.wait(60)
        yield from real(*args, **kwargs)

    pipeline.stream = held  # type: ignore[method-assign]
    try:
        page.fill("#pc-question textarea", SEESAW_Q)
        t0 = time.perf_counter()
        page.keyboard.press("Enter")
        page.wait_for_function("([q]) => { const t = document.querySelector('#pc-chat').innerText;"
                               " return t.includes(q) && t.includes('Searching the papers'); }", arg=[SEESAW_Q])
    finally:
        gate.set()
        del pipeline.stream
    page.wait_for_function("() => document.querySelector('#pc-chat').innerText.includes('1.78')", timeout=60_000)
    seconds = time.perf_counter() - t0
    snaps: list[str] = page.evaluate("window.__snaps")
    pending = [i for i, s in enumerate(snaps) if SEESAW_Q in s and "Searching the papers" in s and "1.78" not in s]
    done = [i for i, s in enumerate(snaps) if "1.78" in s]
    assert pending and done and pending[0] < done[0], "the question and a pending answer show before the answer"
    print(f"first answer through the UI (held until its pending bubble showed): {seconds:.2f} s")

    link = page.locator(CITE).first
    href = link.get_attribute("href")
    assert href and href.startswith("#src-0-")
    link.click()
    assert_card_in_view(page, href, "1.78x")
    assert page.locator(href).locator("mark.pc-hl").first.inner_text().startswith("Our evaluation demonstrates")
    assert len(page.context.pages) == 1 and urlsplit(page.url).path == "/"  # stayed on the page
    shot(page, tmp_path, "answer-with-citation", keep=True)


def test_compare_tab_export_and_new_chat(page: Any, chat_url: str, tmp_path: Path) -> None:
    open_chat(page, chat_url)
    page.get_by_role("tab", name="Compare").click()
    page.get_by_label("Seesaw: High-throughput LLM Inference via Model Re-sharding").check()
    page.get_by_label("2BP: 2-Stage Backpropagation").check()
    page.click("#pc-compare")
    table = page.locator("#pc-chat table").last
    table.wait_for(state="visible")
    body = table.inner_text()
    assert "Seesaw" in body and "2BP" in body and "Reported result" in body

    last = table.locator('a[href^="#src-"]').last  # the bottom card of the panel: needs scrolling
    href = last.get_attribute("href")
    last.click()
    assert page.get_by_role("tab", name="Sources").get_attribute("aria-selected") == "true"
    assert_card_in_view(page, href, "2BP")
    shot(page, tmp_path, "compare", keep=True)

    with page.expect_download() as info:
        page.click("#pc-export")
    exported = Path(info.value.path()).read_text(encoding="utf-8")
    assert exported.startswith("# Compare Seesaw and 2BP") and "## References" in exported

    page.click("#pc-new")
    page.wait_for_function("!document.querySelector('#pc-chat').innerText.includes('Reported result')")
    assert "Sources appear here" in page.locator("#pc-sources").inner_text()


def test_example_abstention_and_suggestion(page: Any, chat_url: str, tmp_path: Path) -> None:
    open_chat(page, chat_url)
    # Issue 13: examples are generated from the indexed papers and checked to be answered, so this out-of-scope
    # question is no longer an example: it is typed.
    page.fill("#pc-question textarea", "What does the Chinchilla paper say about compute-optimal training?")
    page.keyboard.press("Enter")
    abstain = page.locator("#pc-chat .pc-abstain")
    abstain.wait_for(state="visible")
    assert "not in these papers" in abstain.inner_text().lower() and "Closest papers" in abstain.inner_text()
    assert page.locator(CITE).count() == 0
    suggestion = page.locator("#pc-suggest").get_by_text("What is 2BP?")
    suggestion.wait_for(state="visible")
    shot(page, tmp_path, "abstention", keep=True)
    suggestion.click()
    page.locator(CITE).first.wait_for(state="visible")
    assert "2-stage backpropagation" in page.locator("#pc-chat").inner_text()


def test_hostile_passages_render_inert(page: Any, tmp_path: Path) -> None:
    paper = tmp_path / "zorblax.md"
    paper.write_text(HOSTILE_PAPER, encoding="utf-8")
    pipe = Pipeline(Settings(data_dir=tmp_path / "hostile-index"))
    pipe.ingest([paper])
    assert [p.id for p in pipe.papers()] == ["zorblax"]
    with serve(pipe) as url:
        open_chat(page, url)
        ask(page, "What is Zorblax?", "sharding system")
        page.locator(CITE).first.click()
        page.get_by_role("tab", name="Papers").click()
        page.locator(".pc-paper summary").first.click()
        page.wait_for_timeout(1500)  # give any injected handler time to fire
        shot(page, tmp_path, "hostile", keep=True)
        page.get_by_role("tab", name="Sources").click()
        page.wait_for_timeout(300)
        text = page.locator("body").inner_text()
        # (Gradio's own config script holds the abstract as inert, escaped JSON; look where content is rendered.)
        scripts = page.evaluate("document.querySelectorAll('#pc-chat script, #pc-sources script, .pc-papers script,"
                                " #pc-chat img, #pc-sources img, .pc-papers img, [onerror]').length")
        bad_imgs = page.evaluate("document.querySelectorAll('img[src=\"x\"], img[src*=\"198.51.100.7\"]').length")
        pwned = page.evaluate("typeof window.__pwned")
        links = page.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'))")

    outside = [u for u in page.requests if urlsplit(u).scheme in {"http", "https", "ws", "wss"}
               and urlsplit(u).hostname not in LOCAL_HOSTS]
    assert outside == [], outside
    assert pwned == "undefined" and page.dialogs == [] and scripts == 0 and bad_imgs == 0
    assert "<script>window.__pwned=1</script>" in text  # shown as text, not run
    assert not [h for h in links if h.lower().startswith(("javascript:", "http://198.51"))]
