"""The web chat's smaller third-pass items (issue 27, items 4 and 7) in Chromium at 1280×800 and 390×844: "Add to test
set" opens a prefilled dialog where the user is; History's delete can be undone; 👍/👎 survive a reload; Settings shows
the answerer chosen; an LLM that failed is not waited for again; a decline inside one paper says the search was
limited; the login page names the app, keeps the user name after a wrong password, and the chat can log out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CHROMIUM, serve_app
from test_browser_chat import COUNT_WRITES, ask, load, new_page, saved, wait_saved, writes

from rag.answer import Pipeline
from rag.eval.library import library_questions
from rag.settings import Settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"),
]
SIZES = [pytest.param({"laptop": True}, id="1280x800"), pytest.param({"phone": True}, id="390x844")]
WAIT = 60_000


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("details-data")


@pytest.fixture(scope="module")
def url(pipeline: Pipeline, data_dir: Path) -> Iterator[str]:
    # the session's index; the library's own question set and feedback in a data dir of this module
    with serve_app(pipeline, Settings(data_dir=data_dir)) as base:
        yield base + "/"


def side_tab(page: Any, name: str, shows: str | None = None) -> None:
    """Open a tab of the side column (behind 'More tabs' when the row is too narrow for it), until `shows` (a
    selector of the tab's content) is visible: the row re-renders when an answer switches tabs."""
    from playwright.sync_api import TimeoutError as Timeout

    for _ in range(5):
        try:
            tab = page.get_by_role("tab", name=name)
            if tab.is_visible():
                tab.click(timeout=5_000)
            else:
                page.click("#pc-tabs button[aria-label='More tabs']", timeout=5_000)
                page.locator("#pc-tabs .overflow-dropdown button", has_text=name).click(timeout=5_000)
            if shows:
                page.locator(shows).wait_for(state="visible", timeout=5_000)
            return
        except Timeout:
            page.keyboard.press("Escape")
    raise AssertionError(f"the {name} tab did not open")


def flag(page: Any, option: str) -> None:
    """The last answer's flag menu, one of its options."""
    page.locator("#pc-chat button[aria-label='Feedback']").last.click()
    page.locator("#pc-chat .extra-feedback-option", has_text=option).last.click()


@pytest.mark.parametrize("size", SIZES)
def test_add_to_test_set_opens_where_the_user_is_prefilled(browser: Any, url: str, data_dir: Path,
                                                           size: dict) -> None:
    page = new_page(browser, **size)
    load(page, url)
    ask(page, "What is Seesaw?")
    ask(page, "What problem does MoEShard solve?")  # unrelated to the turn before it
    flag(page, "Add to test set")
    dialog = page.locator("#pc-qform")
    dialog.wait_for(state="visible", timeout=WAIT)
    page.wait_for_function("() => document.querySelector('#pc-eval-qtext textarea')?.value.includes('MoEShard')",
                           timeout=WAIT)
    box = dialog.bounding_box()
    assert 0 <= box["y"] < page.viewport_size["height"] / 3, box  # over the chat, not 1,400 px down a tab
    assert "moeshard" in page.inner_text("#pc-eval-papers")
    assert page.input_value("#pc-eval-facts textarea").strip()  # facts suggested from the cited sentence
    assert page.locator("#pc-eval-category input").input_value() == "factoid"  # not "followup"
    assert "stands on its own" in page.inner_text("#pc-eval-history")
    page.click("#pc-qform-close")
    dialog.wait_for(state="hidden")
    ask(page, "how is it evaluated?")  # a follow-up: it needs the turns before it
    flag(page, "Add to test set")
    page.wait_for_function("() => document.querySelector('#pc-eval-qtext textarea')?.value === 'how is it evaluated?'",
                           timeout=WAIT)
    turns = page.inner_text("#pc-eval-history")
    assert "You: What problem does MoEShard solve?" in turns and "paperchat:" in turns, turns
    assert "{" not in turns and '"role"' not in turns and "[1]" not in turns  # turns, not JSON or Markdown
    assert page.locator("#pc-eval-category input").input_value() == "followup"
    assert page.locator("#pc-eval-keep input").is_checked()
    page.click("#pc-eval-save")
    page.wait_for_function("() => document.querySelector('#pc-eval-saved')?.innerText.includes('Saved as lib-')",
                           timeout=WAIT)
    kept = next(q for q in library_questions(data_dir) if q.question == "how is it evaluated?")
    assert kept.category == "followup" and [m["content"] for m in kept.history][0] == "What is Seesaw?"


@pytest.mark.parametrize("size", SIZES)
def test_history_delete_can_be_undone(browser: Any, url: str, size: dict) -> None:
    page = new_page(browser, **size)
    load(page, url)
    before = saved(page)
    ask(page, "What is Hecate?")
    wait_saved(page, before)
    side_tab(page, "History", "#pc-history")
    page.locator("#pc-history label").filter(has_text="What is Hecate?").first.click()
    page.click("#pc-history-delete")
    undo = page.locator("#pc-history-undo")
    undo.wait_for(state="visible", timeout=WAIT)
    assert "What is Hecate?" in undo.inner_text()
    page.wait_for_function("() => !document.querySelector('#pc-history').innerText.includes('What is Hecate?')",
                           timeout=WAIT)
    undo.click()
    page.wait_for_function("() => document.querySelector('#pc-history').innerText.includes('What is Hecate?')",
                           timeout=WAIT)
    page.wait_for_function("() => document.querySelector('#pc-chat').innerText.includes('What is Hecate?')",
                           timeout=WAIT)  # back, and open again
    undo.wait_for(state="hidden")


@pytest.mark.parametrize("size", SIZES)
def test_thumbs_and_flag_are_shown_after_a_reload(browser: Any, url: str, size: dict) -> None:
    page = new_page(browser, **size)
    page.add_init_script(COUNT_WRITES)
    load(page, url)
    # Each thumb is clicked the moment its answer shows, before the browser has saved that answer: the save and the
    # thumb run one after the other, the thumb's store carries the answer too, and the save puts back the thumbs the
    # server has seen, so neither undoes the other. Each answer then means two writes of the store (its save and its
    # thumb, in either order); the reload comes after both.
    for question, thumb in (("What is Seesaw?", "Like"), ("What is 2BP?", "Dislike")):
        before = writes(page)
        ask(page, question)
        page.locator(f"#pc-chat button[aria-label='{thumb}']").last.click()
        page.wait_for_function(f"() => window.pcWrites >= {before + 2}", timeout=WAIT)
    page.reload()
    page.wait_for_function("() => document.querySelectorAll('#pc-chat .pc-tips').length === 2", timeout=WAIT)
    page.wait_for_function("() => document.querySelectorAll('#pc-chat button[aria-label=\"Liked\"]').length === 1 && "
                           "document.querySelectorAll('#pc-chat button[aria-label=\"Disliked\"]').length === 1",
                           timeout=WAIT)


@pytest.mark.parametrize("size", SIZES)
def test_settings_show_the_answerer_chosen_after_answers_and_a_reload(browser: Any, url: str, size: dict) -> None:
    page = new_page(browser, **size)
    load(page, url)
    ask(page, "What is Seesaw?")
    side_tab(page, "Settings", "#pc-answerer")
    assert page.locator("#pc-answerer input:checked").input_value() == "extractive"
    ask(page, "Compare Seesaw and 2BP")  # a comparison switches the side column to its chart
    page.wait_for_function("() => document.querySelector('#pc-chart-cap .pc-chart')", timeout=WAIT)
    side_tab(page, "Settings", "#pc-answerer")
    assert page.locator("#pc-answerer input:checked").input_value() == "extractive"
    label = page.locator("#pc-answerer label", has_text="extractive")
    assert label.is_visible() and "selected" in (label.get_attribute("class") or "")


@pytest.mark.parametrize("size", SIZES)
def test_a_decline_inside_one_paper_says_the_search_was_limited(browser: Any, url: str, size: dict) -> None:
    page = new_page(browser, **size)
    load(page, url)
    page.locator('#pc-landing .pc-card[data-id="2bp"] .pc-act[data-act="scope"]').click()
    page.get_by_text("Searching only in 2BP").wait_for(state="visible", timeout=WAIT)
    ask(page, "What does the Chinchilla paper say about compute-optimal training?")
    block = page.locator("#pc-chat [data-testid='bot']").last.locator(".pc-abstain")
    assert "The search was limited to 2BP" in block.inner_text() and "clear the paper filter" in block.inner_text()


@pytest.fixture
def down_llm(fault_llm: Any, index_dir: Path) -> Iterator[tuple[str, Any]]:
    """The app over the session index with its openai answerer pointed at an endpoint that always fails."""
    from fault_server import Status

    fault_llm.default = Status(503, "down for maintenance")
    settings = Settings(data_dir=index_dir, llm_base_url=fault_llm.url, llm_max_retries=0)
    with serve_app(Pipeline(settings)) as base:
        yield base + "/", fault_llm


@pytest.mark.parametrize("size", SIZES)
def test_a_failed_llm_is_remembered_for_a_while_and_the_chat_says_so(browser: Any, down_llm: tuple[str, Any],
                                                                     size: dict) -> None:
    url, server = down_llm
    page = new_page(browser, **size)
    load(page, url)
    side_tab(page, "Settings", "#pc-answerer")
    page.locator("#pc-answerer label", has_text="openai").click()
    ask(page, "What is Seesaw?")
    first = page.locator("#pc-chat [data-testid='bot']").last.inner_text()
    tried = len(server.requests)
    assert tried >= 1 and "Showing the extractive answer instead" in first, first
    ask(page, "What is 2BP?")
    second = page.locator("#pc-chat [data-testid='bot']").last.inner_text()
    assert len(server.requests) == tried, "the failed endpoint was waited for again"
    assert "s ago: openai is tried again in" in second and "2BP" in second, second
    side_tab(page, "Settings", "#pc-answerer")
    page.locator("#pc-answerer label", has_text="extractive").click()
    page.locator("#pc-answerer label", has_text="openai").click()  # chosen again: tried at once
    ask(page, "What is Hecate?")
    assert len(server.requests) > tried


@pytest.mark.parametrize("size", SIZES)
def test_the_login_page_names_the_app_keeps_the_user_and_logs_out(browser: Any, pipeline: Pipeline,
                                                                  size: dict) -> None:
    with serve_app(pipeline, auth="alice:s3cret") as base:
        page = new_page(browser, **size)
        page.goto(base + "/")
        page.wait_for_url("**/login")
        assert "paperchat" in page.title() and page.locator("h1").inner_text() == "paperchat"
        page.get_by_label("User name").fill("alice")
        page.get_by_label("Password").fill("wrong")
        page.keyboard.press("Enter")
        page.get_by_text("Wrong user name or password.").wait_for(timeout=WAIT)
        assert page.get_by_label("User name").input_value() == "alice"  # only the password is typed again
        assert page.get_by_label("Password").input_value() == ""
        page.get_by_label("Password").fill("s3cret")
        page.keyboard.press("Enter")
        page.wait_for_selector("#pc-question textarea", timeout=WAIT)
        logout = page.locator("#pc-logout")
        logout.wait_for(state="visible", timeout=WAIT)
        logout.click()
        page.wait_for_url("**/login", timeout=WAIT)
        page.goto(base + "/")  # the session is gone
        page.wait_for_url("**/login", timeout=WAIT)
