"""Reported results of a comparison, for people: a small table splitting metric, value and baseline, a cited bar
chart when at least two papers give comparable figures (matplotlib), and a CSV of the comparison."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path
from typing import Any

from rag.collection import Result, comparable, reported_results
from rag.text import strip_citations, table_cells
from rag.types import Answer, Paper

from .render import anchor, esc, label


def is_comparison(answer: Answer | None) -> bool:
    """True for an answer holding a comparison table."""
    return bool(answer and not answer.abstained and "| Paper |" in answer.answer)


def results(answer: Answer, papers: dict[str, Paper]) -> list[Result]:
    """Each compared paper's reported figure, named by its short name."""
    return reported_results(answer, {p: label(papers[p]) for p in papers})


def table_html(found: list[Result], turn: int) -> str:
    """Metric, value and baseline split out, one row per paper, each cited."""
    if not found:
        return ""
    rows = "".join(
        f"<tr><td>{esc(r.name)}</td><td>{esc(r.figure.metric or '—')}</td>"
        f"<td><b>{esc(r.figure.value)}</b>{' (' + esc(r.figure.qualifier) + ')' if r.figure.qualifier else ''}</td>"
        f"<td>{esc(r.figure.baseline or '—')}</td>"
        f'<td><a class="pc-cite-link" href="#{anchor(turn, r.n)}">[{r.n}]</a></td></tr>' for r in found)
    return ('<table class="pc-results"><thead><tr><th>Paper</th><th>Metric</th><th>Value</th><th>Baseline</th>'
            f"<th>Source</th></tr></thead><tbody>{rows}</tbody></table>")


def chart(found: list[Result]) -> Any:
    """A bar chart of comparable figures (None when fewer than two papers give one in the same unit)."""
    bars = comparable(found)
    if not bars:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 0.7 + 0.55 * len(bars)), dpi=100, layout="constrained")
    ax = fig.subplots()
    names = [f"{r.name} [{r.n}]" for r in bars][::-1]
    values = [r.figure.number for r in bars][::-1]
    ax.barh(names, values, color="#4f46e5", height=0.55)
    unit = bars[0].figure.unit
    for y, r in enumerate(bars[::-1]):
        base = f" vs {r.figure.baseline}" if r.figure.baseline else ""
        ax.text(r.figure.number, y, f"  {r.figure.value}{base}", va="center", fontsize=9)
    ax.set_xlim(0, max(values) * 1.9)
    metrics = {r.figure.metric for r in bars if r.figure.metric}
    what = metrics.pop() if len(metrics) == 1 else "reported result"
    ax.set_xlabel(f"{what} ({'×, higher is better' if unit == 'x' else '%'}) — as each abstract reports it")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)
    return fig


def caption_html(found: list[Result], turn: int) -> str:
    """What the chart shows and where each bar comes from."""
    bars = comparable(found)
    if not bars:
        return ('<div class="pc-chart-cap">No chart: fewer than two of these papers report a figure that compares '
                "(a speedup factor or a percentage). The table is in the answer above.</div>")
    cites = ", ".join(f'{esc(r.name)} <a class="pc-cite-link" href="#{anchor(turn, r.n)}">[{r.n}]</a>' for r in bars)
    return (f'<div class="pc-chart-cap">Reported results, each from its own abstract: {cites}. Baselines and '
            "settings differ between papers; read the bars as what each paper claims, not a benchmark.</div>")


def write_csv(answer: Answer, found: list[Result]) -> Path:
    """The comparison table (citations stripped) with the split figures, as a CSV file."""
    rows = [cells for line in answer.answer.splitlines() if (cells := table_cells(line))]
    head, body = (rows[0], rows[1:]) if rows else ([], [])
    by_name = {r.name: r for r in found}
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([c.strip() for c in head] + ["metric", "value", "qualifier", "baseline", "source"])
    for row in body:
        cells = [strip_citations(c).replace("**", "").strip() for c in row]
        r = next((by_name[n] for n in by_name if cells and cells[0].startswith(n)), None)
        extra = [r.figure.metric, r.figure.value, r.figure.qualifier, r.figure.baseline, r.n] if r else [""] * 5
        w.writerow(cells + extra)
    path = Path(tempfile.mkdtemp(prefix="paperchat-csv-")) / "paperchat-comparison.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path
