"""What the command line shows: progress of long work (a rich bar on a terminal, lines on stderr otherwise) and
answers (a comparison's table drawn by rich; each source with the sentence it is cited for).

Imported by the commands that need it, never at `paperchat --help`.
"""

from __future__ import annotations

import itertools
import shutil
import textwrap
import threading
import time
from types import TracebackType
from typing import Any, Self

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.progress import Progress as Bar
from rich.text import Text

from rag.types import Answer

SHOW_AFTER_S = 1.0  # work that is over sooner shows nothing: a bar would only flicker
SHOW_AT_ONCE = 256  # items: work this large is shown from its start (it will take a while)
LINE_EVERY_S = 30.0  # without a terminal, a line at least this often (and at every tenth done)


def eta(seconds: float) -> str:
    """3725 -> '1h02m', 125 -> '2m05s', 42 -> '42s'."""
    s = int(seconds + 0.5)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed and task.fields.get("rate") else "")


class Progress:
    """A (done, total, label) callback for rag's progress hooks, shown once the work has gone on for SHOW_AFTER_S (at
    once from SHOW_AT_ONCE items) until it is done: on a terminal a rich bar (done/total, rate, time left), else a line
    on stderr at every tenth done: 'Indexing: 160/600 passages (26%), 3.9/s, about 1m52s left'.

    unit names what is counted ('passages'); None takes it from each call's label (the view build's phases:
    'sentence vectors', 'passages', 'words', each counted from 0 again). rate: show the rate and the time left,
    counted from the first call (items done before it, e.g. stored by a run that was killed, are not part of it).
    """

    def __init__(self, title: str, unit: str | None = "passages", rate: bool = True) -> None:
        self.title, self.unit, self.rate = title, unit, rate
        self.console = Console(stderr=True)
        self._lock = threading.RLock()
        self._start: tuple[float, int] | None = None  # when and at how many done the current run began
        self._last: tuple[int, int, str] = (0, 0, "")
        self._step, self._said = -1, 0.0
        self._timer: threading.Timer | None = None
        self._bar: Bar | None = None
        self._task: Any = None

    def __call__(self, done: int, total: int, label: str) -> None:
        with self._lock:
            now = time.monotonic()
            if self._start is not None and self.unit is None and label != self._last[2]:
                self.close()  # a new phase of the view build: counted afresh
            self._last = (done, total, label)
            if self._start is None:
                self._begin(now, done, total)
            elif self.console.is_terminal:
                if self._bar is not None:
                    self._bar.update(self._task, completed=done, total=total, description=self._description())
            elif self._shown(now):
                self._line(now, done, total, label)
            if done >= total:
                self.close()

    def _begin(self, now: float, done: int, total: int) -> None:
        self._start, self._said = (now, done), now
        if 0 < done < total and self.unit:
            typer.echo(f"{self.title}: {done}/{total} {self.unit} already stored, resuming", err=True)
        if done >= total or not self.console.is_terminal:
            return
        if total >= SHOW_AT_ONCE:
            self._show()
        else:
            self._timer = threading.Timer(SHOW_AFTER_S, self._show)
            self._timer.daemon = True
            self._timer.start()

    def _description(self) -> str:
        label = self._last[2]
        return f"{self.title} {label}" if label and self.unit else self.title

    def _show(self) -> None:
        """Start the bar (on a terminal), unless the work is over."""
        with self._lock:
            done, total, label = self._last
            if self._bar is not None or self._start is None or done >= total:
                return
            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[unit]}"), _Rate(), TimeRemainingColumn(), transient=True,
                            console=self.console)
            self._bar.start()
            self._task = self._bar.add_task(self._description(), total=total, unit=self.unit or label,
                                            rate=self.rate)
            self._bar.update(self._task, completed=done)  # done before the first call: no rate from them

    def _shown(self, now: float) -> bool:
        """Whether this work is shown by now (lines)."""
        assert self._start is not None
        return self._last[1] >= SHOW_AT_ONCE or now - self._start[0] >= SHOW_AFTER_S

    def _line(self, now: float, done: int, total: int, label: str) -> None:
        step = done * 10 // max(total, 1)
        if step <= self._step and now - self._said < LINE_EVERY_S and done < total:
            return
        assert self._start is not None
        self._step, self._said = step, now
        line = f"{self.title}: {done}/{total} {self.unit or label} ({done * 100 // max(total, 1)}%)"
        if self.rate:
            t0, d0 = self._start
            rate = (done - d0) / max(now - t0, 1e-9)
            line += f", {rate:.1f}/s" + ("" if done >= total else f", about {eta((total - done) / rate)} left"
                                         if rate > 0 else ", time left unknown")
        typer.echo(line, err=True)

    def close(self) -> None:
        """Stop showing this run of the work (the bar is transient: it leaves no line behind)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            if self._bar is not None:
                self._bar.stop()
            self._timer, self._bar, self._task, self._start, self._step = None, None, None, None, -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def print_answer(answer: Answer) -> None:
    """An answer for a reader: the notice (stderr), the text (a table drawn), the evidence, then each cited source
    with the sentence it is cited for, so two passages of one paper read differently."""
    if answer.notice:
        typer.secho(answer.notice, fg=typer.colors.YELLOW, err=True)
    print_markdown(answer.answer)
    if answer.evidence:
        typer.echo("\nExtractive evidence:")
        print_markdown(answer.evidence)
    if answer.cited():
        typer.echo("\nSources:")
    width = min(shutil.get_terminal_size().columns, 100)
    for s in answer.cited():
        where = f", {answer.cited_pages(s.n)}" if s.page else ""
        typer.echo(f"[{s.n}] {s.title} ({s.paper_id}{where})")
        typer.echo(textwrap.fill(f"“{answer.cited_sentence(s.n)}”", width=width, initial_indent="    ",
                                 subsequent_indent="     "))


def print_markdown(text: str) -> None:
    """Answer text as it is, or drawn by rich when it holds a Markdown table (a comparison): the table as a rich
    table whose cells wrap (long words folded, not cut), the rest as Markdown."""
    from rag.text import table_cells

    rows = [table_cells(line) for line in text.splitlines()]
    if not any(rows):
        typer.echo(text)
        return
    from rich import box
    from rich.markdown import Markdown
    from rich.table import Table

    console = Console(soft_wrap=False)
    lines = list(zip(text.splitlines(), rows, strict=True))
    for is_table, group in itertools.groupby(lines, key=lambda pair: pair[1] is not None):
        block = list(group)
        if not is_table:
            console.print(Markdown("\n".join(line for line, _ in block)))
            continue
        head, *body = [cells for _, cells in block if cells]
        table = Table(box=box.SIMPLE_HEAD, show_lines=True, expand=True)
        for name in head:
            table.add_column(Markdown(name), overflow="fold")
        for cells in body:
            table.add_row(*(Markdown(cell) for cell in cells))
        console.print(table)
