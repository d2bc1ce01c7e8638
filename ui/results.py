"""A comparison's table for people: its rows read back from the answer, a bar chart of the figures that compare (plain
HTML, readable at any width, with a text alternative), and a CSV naming the papers and quoting each cited sentence."""

from __future__ import annotations

import atexit
import csv
import io
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rag.collection import Result, comparable, figure_of
from rag.text import citation_numbers, strip_citations, table_cells
from rag.types import Answer, Paper

from .render import anchor, esc, label

RESULT_COLUMNS = ("Reported result", "Result")  # the column holding the figure (the extractive table, an LLM's)


@dataclass
class Row:
    """One paper's row of a comparison table: its cells as shown (citations stripped) and the passages each cites."""

    name: str
    paper_id: str = ""
    cells: dict[str, str] = field(default_factory=dict)
    cites: dict[str, list[int]] = field(default_factory=dict)


def is_comparison(answer: Answer | None) -> bool:
    """True for an answer holding a comparison table."""
    return bool(answer and not answer.abstained and "| Paper |" in answer.answer)


def rows(answer: Answer) -> list[Row]:
    """The comparison table's rows, each tied to the paper its cells cite."""
    lines = [cells for line in answer.answer.splitlines() if (cells := table_cells(line))]
    if len(lines) < 2:
        return []
    head = [h.strip() for h in lines[0]]
    by_n = {s.n: s for s in answer.sources}
    out = []
    for line in lines[1:]:
        raw = dict(zip(head, (c.strip() for c in line), strict=False))
        cell = strip_citations(raw.pop("Paper", ""))
        bold = re.search(r"\*\*(.+?)\*\*", cell)  # the paper's name; its title follows in brackets
        row = Row(name=(bold.group(1) if bold else cell).replace("**", "").strip())
        for col, cell in raw.items():
            row.cells[col] = strip_citations(cell).replace("**", "").strip()
            row.cites[col] = [n for n in citation_numbers(cell) if n in by_n]
        cited = [by_n[n].paper_id for ns in row.cites.values() for n in ns]
        row.paper_id = max(set(cited), key=cited.count) if cited else ""
        out.append(row)
    return out


def quoted(answer: Answer, n: int, shown: str) -> str:
    """The sentence of passage n that a cell quotes (the composer's span for it), else the passage's cited one."""
    source = answer.source(n)
    if source is None:
        return ""
    body = shown.rstrip(" …").lower()
    for s in answer.sentences:
        for m, a, b in s.spans:
            if m == n and s.text.lower() == body:
                return " ".join(source.text[a:b].split())
    return answer.cited_sentence(n)


def results(answer: Answer, papers: dict[str, Paper]) -> list[Result]:
    """Each row's reported figure, read from the sentence its result cell cites."""
    found = []
    for row in rows(answer):
        col = next((c for c in RESULT_COLUMNS if row.cites.get(c)), None)
        if col is None:
            continue
        n = row.cites[col][0]
        fig = figure_of(quoted(answer, n, row.cells[col]))
        if fig is not None:
            name = label(papers[row.paper_id]) if row.paper_id in papers else row.name
            found.append(Result(paper_id=row.paper_id, name=name, n=n, figure=fig))
    return found


def _axis(bars: list[Result]) -> str:
    metrics = {r.figure.metric for r in bars if r.figure.metric}
    what = metrics.pop() if len(metrics) == 1 else "reported result"
    return f"{what} ({'×, higher is better' if bars[0].figure.unit == 'x' else '%'})"


def chart_html(found: list[Result], turn: int, say_none: bool = True) -> str:
    """A bar per paper whose figure compares (same unit), labelled in text and cited; a note when none compare
    (unless say_none is false)."""
    bars = comparable(found)
    if not bars:
        return "" if not say_none else ('<div class="pc-chart-cap">No chart: fewer than two of these papers report a figure that compares '
                "(a speedup factor or a percentage).</div>")
    top = max(r.figure.number for r in bars)
    spoken = "; ".join(f"{r.name} {r.figure.value}" + (f" versus {r.figure.baseline}" if r.figure.baseline else "")
                       for r in bars)
    items = "".join(
        f'<div class="pc-bar-row"><div class="pc-bar-name">{esc(r.name)} '
        f'<a class="pc-cite-link" href="#{anchor(turn, r.n)}">[{r.n}]</a></div>'
        f'<div class="pc-bar-track"><meter class="pc-bar" min="0" max="{top:g}" value="{r.figure.number:g}">'
        f"{esc(r.figure.value)}</meter><span class=\"pc-bar-val\"><b>{esc(r.figure.value)}</b>"
        f"{' vs ' + esc(r.figure.baseline) if r.figure.baseline else ''}</span></div></div>" for r in bars)
    # a figure of text (names, values, baselines), and one sentence for screen readers: the chat's sanitizer keeps
    # no aria-label, and a picture's alt text was "undefined plot visualising provided data"
    return (f'<div class="pc-chart-cap"><figure class="pc-chart"><figcaption class="pc-chart-title">Reported '
            f'{esc(_axis(bars))}</figcaption><p class="pc-sr">Bar chart of the reported {esc(_axis(bars))}: '
            f'{esc(spoken)}.</p>{items}</figure><div class="pc-chart-note">Each bar is what its paper\'s abstract '
            "claims; baselines and settings differ, so read them side by side, not as one benchmark.</div></div>")


def write_csv(answer: Answer, papers: dict[str, Paper]) -> Path:
    """The comparison as a CSV: the paper's name and title, the table's cells, the figure split out, and the cited
    sentences quoted (not source numbers, which mean nothing outside the chat)."""
    table = rows(answer)
    figures = {r.paper_id: r.figure for r in results(answer, papers)}
    columns = list(dict.fromkeys(c for row in table for c in row.cells))
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["paper", "title", *(c.lower() for c in columns), "metric", "value", "unit", "cited sentences"])
    for row in table:
        paper = papers.get(row.paper_id)
        fig = figures.get(row.paper_id)
        quotes = dict.fromkeys(quoted(answer, n, row.cells[c]) for c in columns for n in row.cites.get(c, []))
        w.writerow([label(paper) if paper else row.name, paper.title if paper else "",
                    *(row.cells.get(c, "") for c in columns),
                    fig.metric if fig else "", fig.value if fig else "", {"x": "×", "%": "%"}.get(fig.unit, "")
                    if fig else "", "\n".join(f"“{q}”" for q in quotes if q)])
    path = Path(tempfile.mkdtemp(dir=csv_folder())) / "paperchat-comparison.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


CSV_KEEP_SECONDS = 3600  # a comparison's CSV stays downloadable this long (Gradio serves its own copy after that)
_CSV_DIR: list[Path] = []
_CSV_LOCK = threading.Lock()


def csv_folder() -> Path:
    """The process's one folder of comparison CSVs (each in its own subfolder, so every download is named
    paperchat-comparison.csv): made on first use, removed at exit, and its CSVs older than CSV_KEEP_SECONDS removed
    whenever another is written; a server answering comparisons all day does not fill /tmp."""
    with _CSV_LOCK:
        if not _CSV_DIR or not _CSV_DIR[0].is_dir():
            _CSV_DIR[:] = [Path(tempfile.mkdtemp(prefix="paperchat-csv-"))]
            atexit.register(shutil.rmtree, _CSV_DIR[0], True)
        folder = _CSV_DIR[0]
    cutoff = time.time() - CSV_KEEP_SECONDS
    for old in folder.iterdir():
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:  # another request removed it first
            continue
    return folder

