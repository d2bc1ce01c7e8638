"""Evaluating from the web chat in Chromium (issue 15): an uploaded question set with an error on line 3 is refused
naming the line; a valid one runs with its progress visible and the report rendered inline (drill-down included);
two runs compared; a thumbs-down and "Add to test set" save a question that `paperchat eval` then runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CHROMIUM, ROOT, serve_app

from rag.answer import Pipeline
from rag.eval.library import feedback_counts, library_questions, library_questions_path
from rag.settings import QUESTIONS_PATH, Settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium"),
]
SHOTS = Path("/tmp/paperchat-shots")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("eval-data")


@pytest.fixture(scope="module")
def url(pipeline: Pipeline, data_dir: Path) -> Iterator[str]:
    # the session's index, but the evaluation files (questions, feedback, evals/) in a data dir of this module
    with serve_app(pipeline, Settings(data_dir=data_dir)) as base:
        yield base + "/"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    pg = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    pg.set_default_timeout(60_000)
    yield pg
    pg.context.close()


def shot(page: Any, name: str, full: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)


def open_evaluate(page: Any, url: str, reload: bool = True) -> None:
    if reload:
        page.goto(url)
    page.wait_for_selector("#pc-question textarea")
    tab = page.get_by_role("tab", name="Evaluate")
    if not tab.is_visible():  # the side column is narrow: Gradio puts the last tabs behind "More tabs"
        page.click("#pc-tabs button[aria-label='More tabs']")
        tab = page.locator("#pc-tabs .overflow-dropdown button", has_text="Evaluate")
    tab.click()
    page.wait_for_selector("#pc-eval-run", state="visible")


def bundled(n: int) -> list[str]:
    lines = QUESTIONS_PATH.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if '"history": []' in line][:n]


def test_upload_with_an_error_names_the_line(page: Any, url: str, tmp_path: Path) -> None:
    lines = bundled(4)
    lines[2] = lines[2].replace('"category": "factoid"', '"category": "trivia"')
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    open_evaluate(page, url)
    page.set_input_files("#pc-eval-upload input[type=file]", str(bad))
    page.wait_for_selector("#pc-eval-check .pc-eval-errors")
    text = page.inner_text("#pc-eval-check")
    assert "bad.jsonl cannot be used" in text and "line 3: category: Input should be" in text
    assert "line 1" not in text and "line 2" not in text
    shot(page, "eval-upload-error")
    page.click("#pc-eval-run")  # refused: the run never starts
    page.wait_for_function("() => document.querySelector('#pc-eval-status')?.innerText.includes('line 3')")


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 800}, {"width": 390, "height": 844}],
                         ids=["1280x800", "390x844"])
def test_a_run_shows_progress_then_the_report_and_two_runs_compare(browser: Any, url: str, tmp_path: Path,
                                                                    viewport: dict) -> None:
    page = browser.new_context(viewport=viewport).new_page()
    page.set_default_timeout(60_000)
    good = tmp_path / "small.jsonl"
    good.write_text("\n".join(bundled(6)) + "\n")
    open_evaluate(page, url)
    page.set_input_files("#pc-eval-upload input[type=file]", str(good))
    page.wait_for_selector("#pc-eval-check .pc-eval-ok")
    assert "6 questions, valid" in page.inner_text("#pc-eval-check")
    page.locator("#pc-eval-modes label", has_text="dense").click()  # hybrid and dense: two runs
    # the progress line is drawn once, on the status line (it was printed twice over the faded old report)
    page.evaluate("""() => { window.__overReport = 0; window.__onStatus = 0;
        const box = document.querySelector('#pc-eval-report'), status = document.querySelector('#pc-eval-status');
        new MutationObserver(() => {
            if (/\\d+\\/\\d+ answers|starting/.test(box.innerText)) window.__overReport += 1;
            if (/\\d+\\/\\d+ answers/.test(status.innerText)) window.__onStatus += 1;
        }).observe(document.body, {childList: true, subtree: true, characterData: true}); }""")
    page.click("#pc-eval-run")
    # the progress bar while it runs: Gradio's tracker with our "answers" count
    page.wait_for_function("() => /\\d+\\/12 answers/.test(document.body.innerText)", timeout=60_000)
    shot(page, f"eval-progress-{viewport['width']}")
    page.wait_for_function("() => document.querySelector('#pc-eval-status')?.innerText.includes('Done')",
                           timeout=300_000)
    assert page.evaluate("window.__overReport") == 0 and page.evaluate("window.__onStatus") > 0
    report = page.locator("#pc-eval-report")
    assert "6 questions from small.jsonl, 2 run(s)" in report.inner_text()
    assert report.locator("img").count() == 2
    headers = report.locator("table").first.locator("th").all_inner_texts()
    assert headers == ["metric", "extractive/hybrid", "extractive/dense"]
    assert "[" in report.locator("td", has_text="accuracy").first.locator("xpath=..").inner_text()  # an interval
    # each metric says what it measures
    hit1 = report.locator("td", has_text="hit@1").first.inner_text()
    assert "answerable questions with a gold paper in the top 1 papers" in hit1, hit1
    assert "lower is better" in report.locator("td", has_text="false_abstain_rate").first.inner_text()
    # the metric chart's labels are drawn at a readable size: the picture is not shrunk much below its own size
    scale = page.evaluate("""() => { const imgs = document.querySelectorAll('#pc-eval-report img');
        const img = imgs[imgs.length - 1]; return img.getBoundingClientRect().width / img.naturalWidth; }""")
    assert scale >= 0.5, scale
    assert "metrics per run as bars" in report.locator("img").last.get_attribute("alt")
    assert page.evaluate("""() => Array.from(document.querySelectorAll('#pc-eval-report .pc-eval-scroll'))
        .every((b) => b.getBoundingClientRect().right <= innerWidth + 1)""")  # wide tables scroll, not cut off
    shot(page, f"eval-report-{viewport['width']}", full=True)

    # drill-down: a question's answer, facts and passages, as read (no Markdown, no regexes)
    page.click("#pc-eval-q input")
    page.locator("ul[role='listbox'] li").first.click()
    page.wait_for_selector("#pc-eval-detail .pc-eval-question")
    detail = page.inner_text("#pc-eval-detail")
    assert "Question:" in detail and "Key facts" in detail and "Retrieved papers" in detail
    assert "**" not in detail and "\\s" not in detail and "|---" not in detail and "(?:" not in detail, detail
    assert "found:" in detail or "missing:" in detail

    # side by side: run A and run B preset to the two runs of this evaluation
    page.locator("#pc-eval-cmp-box").get_by_text("Compare two runs").click()
    page.click("#pc-eval-cmp")
    page.wait_for_selector("#pc-eval-compared table")
    compared = page.inner_text("#pc-eval-compared")
    assert "extractive/hybrid" in compared and "extractive/dense" in compared and "B − A" in compared
    assert "fixed" in compared and "6 questions in both" in compared
    shot(page, f"eval-compare-{viewport['width']}", full=True)
    downloads = [page.locator(f"#pc-eval-dl-{k}") for k in ("html", "md", "jsonl")]
    assert all(d.is_enabled() for d in downloads)
    with page.expect_download() as dl:
        downloads[1].click()
    assert "## " in Path(dl.value.path()).read_text()
    page.context.close()


def test_thumbs_down_then_add_to_test_set_then_paperchat_eval(page: Any, url: str, data_dir: Path,
                                                              index_dir: Path, tmp_path: Path) -> None:
    page.goto(url)
    page.wait_for_selector("#pc-question textarea")
    page.fill("#pc-question textarea", "How much faster is Seesaw than vLLM?")
    page.keyboard.press("Enter")
    page.wait_for_selector("#pc-chat [data-testid='bot'] .pc-tips", state="attached")
    page.locator("#pc-chat button[aria-label='Dislike']").last.click()
    for _ in range(50):
        if feedback_counts(data_dir).down == 1:
            break
        page.wait_for_timeout(200)
    assert feedback_counts(data_dir).down == 1
    # the flag menu's custom option
    shot(page, "chat-feedback-buttons")
    page.locator("#pc-chat button[aria-label='Feedback']").last.click()  # the flag: the custom options
    page.locator("#pc-chat .extra-feedback-option", has_text="Add to test set").last.click()
    page.wait_for_function(
        "() => document.querySelector('#pc-eval-qtext textarea')?.value.includes('Seesaw')", timeout=30_000)
    assert page.locator("#pc-qform").is_visible()  # a dialog over the chat
    assert "seesaw" in page.inner_text("#pc-eval-papers")
    facts = page.input_value("#pc-eval-facts textarea")
    assert "1.78x" in facts or "1.78" in facts
    shot(page, "eval-add-form")
    page.click("#pc-eval-save")
    page.wait_for_function("() => document.querySelector('#pc-eval-saved')?.innerText.includes('Saved as lib-001')")
    page.click("#pc-qform-close")
    open_evaluate(page, url, reload=False)
    page.locator("#pc-eval-form").get_by_text("This library's test questions").click()
    page.wait_for_function("() => document.querySelector('#pc-eval-feedback')?.innerText.includes('👎 1')")
    saved = library_questions(data_dir)
    assert [q.id for q in saved] == ["lib-001"] and saved[0].gold_papers == ["seesaw"] and saved[0].facts

    out = tmp_path / "out"
    env = {**os.environ, "RAG_DATA_DIR": str(index_dir), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "rag", "eval", "--questions", str(library_questions_path(data_dir)),
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["lib-001"] and rows[0]["failure"] == "ok"
