"""The second version of the web chat in Chromium (issue 13): the collection on the landing view, a conversation
the user controls (trash resets memory, scope wins over memory, saved across a reload), citation popovers, clean
copying, the comparison chart (present only when figures compare) and the 390×844 phone layout."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CHROMIUM, serve_app

from rag.answer import Pipeline

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"),
]
SHOTS = Path("/tmp/paperchat-shots")
CITE = '#pc-chat a[href^="#src-"]'


@pytest.fixture(scope="module")
def url(pipeline: Pipeline) -> Iterator[str]:
    with serve_app(pipeline) as base:
        yield base + "/"


def new_page(browser: Any, phone: bool = False, laptop: bool = False) -> Any:
    """A page in a fresh context (its own localStorage): 1400×900, a 1280×800 laptop, or a 390×844 phone."""
    opts: dict[str, Any] = ({"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
                            if phone else {"viewport": {"width": 1280, "height": 800} if laptop else
                                           {"width": 1400, "height": 900}})
    pg = browser.new_context(**opts).new_page()
    pg.set_default_timeout(60_000)  # each wait is for a condition: long enough for a machine at load average 12
    return pg


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def load(page: Any, url: str) -> float:
    """Open the app; seconds until the question box takes input (the saved conversation restored)."""
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("#pc-question textarea")
    page.wait_for_function("() => document.querySelectorAll('#pc-landing .pc-card').length > 0")
    return time.perf_counter() - t0


STORE = "paperchat-conversations"  # the gr.BrowserState key in localStorage


def saved(page: Any) -> str | None:
    """What the browser holds of the saved conversations (encrypted)."""
    return page.evaluate("([k]) => localStorage.getItem(k)", [STORE])


COUNT_WRITES = f"""(() => {{ const set = Storage.prototype.setItem; window.pcWrites = 0;
  Storage.prototype.setItem = function (k, v) {{ if (k === "{STORE}") window.pcWrites += 1; return set.call(this, k, v); }};
}})();"""  # an init script: counts the browser's writes of the saved conversations


def writes(page: Any) -> int:
    """How many times the page has written the saved conversations (with COUNT_WRITES added before it loaded)."""
    return page.evaluate("() => window.pcWrites || 0")


def wait_saved(page: Any, before: str | None) -> None:
    """Wait until the conversations saved in the browser changed (the save runs after the answer)."""
    page.wait_for_function("([k, b]) => localStorage.getItem(k) !== b", arg=[STORE, before])


def ask(page: Any, question: str) -> float:
    """Ask and wait for the finished answer (its hidden popover text or an abstention); returns the seconds."""
    before = page.locator("#pc-chat [data-testid='bot']").count()
    page.fill("#pc-question textarea", question)
    t0 = time.perf_counter()
    page.keyboard.press("Enter")
    page.wait_for_function("""([n]) => {
        const bots = document.querySelectorAll('#pc-chat [data-testid="bot"]');
        return bots.length > n && bots[bots.length - 1].querySelector('.pc-tips, .pc-abstain');
    }""", arg=[before])
    return time.perf_counter() - t0


IN_VIEW = ("([s]) => { const e = document.querySelector(s); if (!e) return false; const r = e.getBoundingClientRect();"
           " return r.height > 0 && r.top >= 0 && r.bottom <= innerHeight; }")


def in_viewport(page: Any, selector: str) -> bool:
    """Whether the element is wholly on screen (no scrolling needed to see it)."""
    return page.evaluate("([s]) => { const e = document.querySelector(s); if (!e) return false;"
                         " const r = e.getBoundingClientRect(); return r.height > 0 && r.top >= 0 &&"
                         " r.bottom <= innerHeight && r.left >= 0 && r.right <= innerWidth; }", [selector])


def ask_saved(page: Any, question: str) -> None:
    """Ask, and wait until the browser saved the conversation with its answer."""
    before = saved(page)
    ask(page, question)
    wait_saved(page, before)


def captions(page: Any) -> list[str]:
    return page.locator("#pc-chat .pc-caption em").all_inner_texts()


def test_landing_shows_the_collection_with_checked_examples(browser: Any, url: str, pipeline: Pipeline) -> None:
    page = new_page(browser)
    first = load(page, url)
    again = sorted(load(page, url) for _ in range(5))  # warm: what a returning visitor waits
    print(f"page interactive: first load {first:.2f} s, reload median of 5 {again[2]:.2f} s "
          f"({', '.join(f'{t:.2f}' for t in again)})")
    cards = page.locator("#pc-landing .pc-card")
    assert cards.count() == len(pipeline.papers())
    seesaw = page.locator('#pc-landing .pc-card[data-id="seesaw"]')
    assert "we present Seesaw" in seesaw.inner_text() and "1.78x" in seesaw.inner_text()
    examples = page.locator("#pc-chat .example-text").all_inner_texts()
    assert examples and not any("Chinchilla" in e for e in examples)
    shot(page, "v2-landing-desktop")
    page.fill("#pc-landing .pc-filter", "backpropagation")
    assert page.locator("#pc-landing .pc-card:not([hidden])").count() == 1
    assert page.locator('#pc-landing .pc-card[data-id="2bp"]').is_visible()
    seconds = ask(page, "What is 2BP?")
    assert not page.locator("#pc-landing").is_visible()  # the conversation takes the space
    meta = page.locator("#pc-sources .pc-src").first.inner_text()
    assert "score" not in meta and "characters" not in meta  # internals only behind "details"
    page.locator("#pc-sources .pc-details summary").first.click()
    assert "retrieval score" in page.locator("#pc-sources .pc-details").first.inner_text()
    warm = [ask(page, q) for q in ("What is Seesaw?", "What problem does MoEShard solve?")]
    print(f"answers through the UI: first {seconds:.2f} s, warm {', '.join(f'{w:.2f}' for w in warm)} s")


def test_conversation_survives_a_reload_and_is_listed(browser: Any, url: str) -> None:
    page = new_page(browser)
    load(page, url)
    ask_saved(page, "What is Universal Checkpointing?")
    ask_saved(page, "and what are its two mechanisms?")
    load(page, url)
    page.wait_for_function("() => document.querySelectorAll('#pc-chat [data-testid=\"bot\"]').length == 2")
    text = page.locator("#pc-chat").inner_text()
    assert "What is Universal Checkpointing?" in text and page.locator(CITE).count() > 0
    assert "Sources for" in page.locator("#pc-sources").inner_text()
    ask_saved(page, "how is it evaluated?")  # the restored turns are the memory
    assert any("Universal Checkpointing" in c for c in captions(page)), captions(page)
    page.click("#pc-new")
    page.wait_for_function("() => !document.querySelector('#pc-chat [data-testid=\"bot\"]')")
    page.get_by_role("tab", name="History").click()
    past = page.locator("#pc-history label")
    assert past.count() >= 1 and "What is Universal Checkpointing?" in past.first.inner_text()
    past.first.click()
    page.wait_for_function("() => document.querySelectorAll('#pc-chat [data-testid=\"bot\"]').length == 3")
    shot(page, "v2-history")


def test_trash_resets_the_memory_like_new_chat(browser: Any, url: str) -> None:
    page = new_page(browser)
    load(page, url)
    ask(page, "What is Seesaw?")
    ask(page, "how much faster is it?")
    assert any("Seesaw" in c for c in captions(page))  # with memory: rewritten
    page.locator('#pc-chat button[aria-label="Clear"]').click()
    page.wait_for_function("() => !document.querySelector('#pc-chat [data-testid=\"bot\"]')")
    ask_saved(page, "how much faster is it?")
    assert not any("Seesaw" in c for c in captions(page)), captions(page)
    load(page, url)  # the trashed conversation is gone, not restored
    assert "What is Seesaw?" not in page.locator("#pc-chat").inner_text()


def test_paper_scope_wins_over_the_conversation(browser: Any, url: str) -> None:
    page = new_page(browser)
    load(page, url)
    ask(page, "What is Seesaw?")
    page.get_by_role("tab", name="Papers").click()
    page.locator('#pc-papers .pc-card[data-id="2bp"] .pc-act[data-act="scope"]').click()
    page.get_by_text("Searching only in 2BP").wait_for(state="visible")
    ask(page, "how much faster is it?")
    assert not any("Seesaw" in c for c in captions(page)), captions(page)
    titles = page.locator("#pc-sources .pc-src-title").all_inner_texts()
    assert titles and all(t.startswith("2BP") for t in titles), titles


def test_citation_popover_card_and_back_and_clean_copy(browser: Any, url: str) -> None:
    page = new_page(browser)
    load(page, url)
    ask(page, "By how much does Seesaw beat vLLM?")
    chip = page.locator(CITE).first
    chip.hover()
    pop = page.locator("#pc-pop")
    pop.wait_for(state="visible")
    assert "1.78x" in pop.inner_text() and "Seesaw" in pop.inner_text()
    shot(page, "v2-popover")
    pop.get_by_text("Show the passage").click()
    href = chip.get_attribute("href")
    page.locator(f"#pc-sources {href}").wait_for(state="visible")
    page.locator(f"#pc-sources {href} .pc-back").click()
    page.wait_for_function(IN_VIEW, arg=[f'#pc-chat a[href="{href}"]'], timeout=20_000)  # the smooth scroll back
    page.locator("#pc-chat .message-row").last.hover()
    page.locator('#pc-chat .message-row').last.locator('button[aria-label="Copy message"]').click()
    copied = page.evaluate("window.__pcCopied")
    assert "1.78x" in copied and "](#src-" not in copied and "[[" not in copied
    assert "\nReferences\n[1] Seesaw" in copied or "References\n[" in copied, copied


def test_comparison_chart_only_when_figures_compare(browser: Any, url: str) -> None:
    page = new_page(browser)
    load(page, url)
    page.get_by_role("tab", name="Compare").click()
    page.fill(".pc-pick-filter", "seesaw")
    assert page.locator("#pc-compare-pick label:visible").count() == 1
    page.fill(".pc-pick-filter", "")
    page.get_by_role("checkbox", name="Seesaw: High-throughput LLM Inference via Model Re-sharding").check()
    page.get_by_role("checkbox", name="2BP: 2-Stage Backpropagation").check()
    page.click("#pc-compare")
    page.locator("#pc-chat table").wait_for(state="visible")
    results = page.locator("#pc-chat table").inner_text()
    assert "vLLM" in results and "1.78x" in results and "1.70x" in results
    page.locator("#pc-chart-cap .pc-chart").wait_for(state="visible")
    assert "Seesaw" in page.locator("#pc-chart-cap").inner_text()
    assert page.locator("#pc-csv").is_visible()
    shot(page, "v2-compare-chart")
    page.click("#pc-new")
    page.wait_for_function("() => !document.querySelector('#pc-chat [data-testid=\"bot\"]')")
    page.get_by_role("tab", name="Compare").click()
    page.get_by_role("checkbox", name="Seesaw: High-throughput LLM Inference via Model Re-sharding").uncheck()
    page.get_by_role("checkbox", name="2BP: 2-Stage Backpropagation").uncheck()
    page.get_by_role("checkbox", name="Nesa — Model Agnostic Hybrid Sharding For Heterogeneous Distributed "
                                       "Inference").check()
    page.get_by_role("checkbox", name="GShard: Scaling Giant Models with Conditional Computation and Automatic "
                                       "Sharding").check()
    page.click("#pc-compare")
    page.locator("#pc-chat table").first.wait_for(state="visible")
    page.get_by_text("No chart: fewer than two").wait_for(state="visible")
    assert not page.locator("#pc-chart-cap .pc-chart").count()


def test_phone_layout(browser: Any, url: str) -> None:
    page = new_page(browser, phone=True)
    load(page, url)
    page.locator("#pc-header h1").wait_for(state="visible")
    assert page.evaluate("scrollY") == 0
    assert page.evaluate("document.documentElement.scrollWidth") <= 391
    shot(page, "v2-phone-landing")
    ask(page, "Compare Seesaw and 2BP")
    table = page.locator("#pc-chat table").first
    assert page.evaluate("([w]) => document.querySelector('#pc-chat table').getBoundingClientRect().right <= w + 1",
                         [390])
    assert table.locator("td[data-label]").count() > 0
    assert page.evaluate("() => { const t = document.querySelector('#pc-chat table');"
                         " return t.getBoundingClientRect().right <= 391 && t.scrollWidth <= t.clientWidth + 1; }")
    assert "1.78x" in table.inner_text() and "vLLM" in table.inner_text()
    chart = page.locator("#pc-chat .pc-chart-inline .pc-chart")  # the chart under the table, not far below
    chart.scroll_into_view_if_needed()
    assert "1.78x" in chart.inner_text()
    shot(page, "v2-phone-results")
    chip = page.locator(CITE).first
    chip.tap()
    pop = page.locator("#pc-pop")
    pop.wait_for(state="visible")
    pop.get_by_text("Show the passage").tap()
    href = chip.get_attribute("href")
    card = page.locator(f"#pc-chat #m-{href.lstrip('#')}")
    card.wait_for(state="visible")  # in the drawer under the answer, not far below
    page.wait_for_function("([s]) => { const r = document.querySelector(s).getBoundingClientRect();"
                           " return r.top >= 0 && r.top < innerHeight - 40; }", arg=[f"#pc-chat #m-{href.lstrip('#')}"],
                           timeout=20_000)  # the smooth scroll to the card settles
    shot(page, "v2-phone-drawer")
    card.locator(".pc-back").tap()
    page.wait_for_function(IN_VIEW, arg=[f'#pc-chat a[href="{href}"]'], timeout=20_000)
    if SHOTS.exists():
        shutil.copy(SHOTS / "v2-phone-drawer.png", SHOTS / "v2-phone-drawer-latest.png")


def test_laptop_comparison_keeps_the_question_box_on_screen(browser: Any, url: str) -> None:
    page = new_page(browser, laptop=True)
    load(page, url)
    shot(page, "v2-landing-1280")
    ask(page, "What is 2BP?")
    assert in_viewport(page, "#pc-question textarea")
    shot(page, "v2-answer-1280")
    ask(page, "Compare Seesaw and 2BP")
    page.locator("#pc-chart-cap .pc-chart").wait_for(state="visible")
    page.wait_for_function("() => !window.__pcFollow().following")  # the follow of the new turn has settled
    assert in_viewport(page, "#pc-question textarea"), "the chart pushed the question box off the screen"
    assert in_viewport(page, "#pc-chart-cap .pc-chart") and in_viewport(page, "#pc-csv")
    assert "Seesaw" in page.locator("#pc-chart-cap").inner_text()
    assert page.get_by_role("tab", name="Sources").get_attribute("aria-selected") == "true"
    shot(page, "v2-compare-1280")


def test_history_deletes_one_conversation(browser: Any, url: str) -> None:
    page = new_page(browser)
    load(page, url)
    ask_saved(page, "What is Seesaw?")
    page.click("#pc-new")
    page.wait_for_function("() => !document.querySelector('#pc-chat [data-testid=\"bot\"]')")
    ask_saved(page, "What is 2BP?")
    page.get_by_role("tab", name="History").click()
    past = page.locator("#pc-history label")
    page.wait_for_function("() => document.querySelectorAll('#pc-history label').length == 2")
    past.filter(has_text="What is Seesaw?").click()  # choosing one opens it
    page.wait_for_function("() => document.querySelector('#pc-chat').innerText.includes('What is Seesaw?')")
    before = saved(page)
    page.click("#pc-history-delete")
    page.wait_for_function("() => document.querySelectorAll('#pc-history label').length == 1")
    assert "What is 2BP?" in past.first.inner_text()
    assert not page.locator("#pc-chat [data-testid='bot']").count()  # the open one went: screen and memory
    wait_saved(page, before)  # the browser writes the store a moment after the page shows it
    load(page, url)
    page.get_by_role("tab", name="History").click()
    page.wait_for_function("() => document.querySelectorAll('#pc-history label').length == 1")
    assert "Seesaw" not in page.locator("#pc-history").inner_text()


def test_phone_abstention_has_a_sources_drawer(browser: Any, url: str) -> None:
    page = new_page(browser, phone=True)
    load(page, url)
    ask(page, "What does the Chinchilla paper say about compute-optimal training?")
    last = page.locator("#pc-chat [data-testid='bot']").last
    assert last.locator(".pc-abstain").count() == 1
    drawer = last.locator("details.pc-drawer")
    summary = drawer.locator("> summary")
    assert summary.inner_text().startswith("Passages searched")
    summary.tap()
    card = drawer.locator(".pc-src").first
    card.wait_for(state="visible")
    assert page.evaluate("document.documentElement.scrollWidth") <= 391
    card.scroll_into_view_if_needed()
    shot(page, "v2-phone-abstention")
