"""Progress for anything that takes more than a moment (issue 27, item 11): a first run's index build, a small
ingest (its passages embedded in steps small enough to move a bar), shown after SHOW_AFTER_S on a terminal or as
lines on stderr, before the result."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

import rag.console
from rag.console import Progress
from rag.ingest import ingest_paths
from rag.settings import Settings

LINE = re.compile(r"^Indexing: (\d+)/(\d+) passages \((\d+)%\), [\d.]+/s(, about \w+ left)?$")


class Clock:
    """time.monotonic for rag.console, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(rag.console.time, "monotonic", c)
    return c


def test_lines_start_once_the_work_has_taken_a_moment(clock: Clock, capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress("Indexing")
    progress(0, 66, "")
    clock.now += 0.5
    progress(4, 66, "perspective")
    assert capsys.readouterr().err == ""  # under SHOW_AFTER_S: a quick ingest shows nothing
    for done in range(8, 67, 4):
        clock.now += 1.0
        progress(min(done, 66), 66, "perspective")
    clock.now += 1.0
    progress(66, 66, "perspective")  # the last step once: no repeat
    err = capsys.readouterr().err.splitlines()
    assert all(LINE.match(line) for line in err) and len(err) >= 8, err
    assert err[-1].startswith("Indexing: 66/66 passages (100%)") and "left" not in err[-1]
    assert "about" in err[0]


def test_a_quick_job_shows_nothing_and_a_big_one_shows_at_once(clock: Clock,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    with Progress("Indexing") as quick:
        for done in (0, 20, 40):
            clock.now += 0.2
            quick(done, 40, "")
    assert capsys.readouterr().err == ""
    with Progress("Indexing") as big:
        big(0, 600, "")
        big(64, 600, "")
    assert capsys.readouterr().err.startswith("Indexing: 64/600 passages (10%)")


def test_on_a_terminal_the_bar_appears_after_a_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setattr(rag.console, "SHOW_AFTER_S", 0.05)
    with Progress("Indexing") as progress:
        progress(0, 66, "")
        assert progress._bar is None
        for _ in range(100):
            if progress._bar is not None:
                break
            threading_wait(0.02)
        assert progress._bar is not None, "no bar after SHOW_AFTER_S"
        progress(66, 66, "x")
        assert progress._bar is None  # done: the bar is gone (transient)


def threading_wait(seconds: float) -> None:
    import time

    time.sleep(seconds)


def test_a_small_ingest_reports_in_small_steps(tmp_path: Path) -> None:
    sentences = " ".join(f"Finding {i} says method {i} improves throughput by {i % 7 + 1}.{i % 10}x on {i + 8} GPUs."
                         for i in range(300))
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"id": "long", "title": "A Long Paper", "abstract": sentences}) + "\n")
    calls: list[tuple[int, int]] = []
    ingest_paths([path], Settings(data_dir=tmp_path / "data"), progress=lambda d, t, _: calls.append((d, t)))
    total = calls[-1][1]
    assert 20 <= total < 64 and calls[-1][0] == total  # one paper, fewer passages than a step of a large ingest
    assert len(calls) >= 10, calls  # a bar that moves, not one jump from 0 to done


@pytest.mark.slow
def test_first_run_shows_the_index_build_before_its_result(tmp_path: Path) -> None:
    """`paperchat papers` on an empty data dir builds the index (half a minute on two busy cores): lines on stderr
    as it goes, all before the listing."""
    proc = subprocess.run([sys.executable, "-m", "rag", "papers"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, cwd=ROOT, timeout=600, check=False,
                          env={**__import__("os").environ, "RAG_DATA_DIR": str(tmp_path / "data")})
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    shown = [i for i, line in enumerate(lines) if LINE.match(line)]
    table = next(i for i, line in enumerate(lines) if line.startswith("id "))
    assert len(shown) >= 3 and max(shown) < table, proc.stdout
    assert lines[max(shown)].startswith("Indexing: 48/48 passages (100%)")
