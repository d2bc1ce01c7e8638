"""Evaluation reports: a self-contained HTML page (plots inlined as PNG) and a Markdown twin, from summary.json."""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment
from matplotlib.figure import Figure

log = logging.getLogger(__name__)

CATEGORY_COLUMNS: tuple[str, ...] = (
    "hit@5", "fact_recall", "all_facts", "citation_validity", "alce_citation_recall", "abstain_recall",
    "false_abstain_rate", "accuracy",
)
BAR_METRICS: tuple[str, ...] = (
    "hit@5", "fact_recall", "all_facts", "citation_validity", "alce_citation_recall", "alce_citation_precision",
    "abstain_recall", "accuracy",
)


def format_value(metric: dict[str, Any] | None) -> str:
    """A metric's value alone: 0.800, 0 (count) or 123 ms; '–' when there was nothing to count."""
    if not metric or metric.get("value") is None:
        return "–"
    kind, value = metric.get("kind", "rate"), metric["value"]
    if kind == "ms":
        return f"{value:.0f} ms"
    if kind == "count":
        return f"{value:.0f}"
    return f"{value:.3f}"


def format_count(metric: dict[str, Any] | None) -> str:
    """A metric's count: 40/50 for rates, n=50 for means and latencies, 'of 120' for counts."""
    if not metric:
        return ""
    kind, k, n = metric.get("kind", "rate"), metric.get("k"), metric.get("n", 0)
    if kind == "rate":
        return f"{k:g}/{n}" if k is not None else f"0/{n}"
    if kind == "count":
        return f"of {n}"
    return f"n={n}"


def format_ci(metric: dict[str, Any] | None) -> str:
    """A metric's 95% interval as [lo, hi], or '' when it has none."""
    if not metric or metric.get("lo") is None or metric.get("hi") is None:
        return ""
    return f"[{metric['lo']:.3f}, {metric['hi']:.3f}]"


def format_cell(metric: dict[str, Any] | None) -> str:
    """Value, count and interval in one table cell."""
    return " ".join(part for part in (format_value(metric), f"({format_count(metric)})" if metric and
                                      metric.get("value") is not None else "", format_ci(metric)) if part)


def _png(fig: Figure) -> str:
    """A figure as base64-encoded PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plot_recall_curve(summary: dict[str, Any]) -> str | None:
    """recall@k for k = 1..5, one line per run, as base64 PNG (None without retrieval data)."""
    curves = summary.get("curves") or {}
    if not any(any(v is not None for v in c.get("recall@k", [])) for c in curves.values()):
        return None
    fig = Figure(figsize=(4.0, 3.0))
    ax = fig.add_subplot()
    for label, curve in curves.items():
        points = [(k, v) for k, v in zip(curve["k"], curve["recall@k"], strict=True) if v is not None]
        ax.plot([k for k, _ in points], [v for _, v in points], marker="o", label=label)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("k (papers retrieved)", fontsize=11)
    ax.set_ylabel("recall@k", fontsize=11)
    ax.set_title("Retrieval recall@k:\ngold papers in the top k", fontsize=11)
    ax.set_xticks(list(next(iter(curves.values()))["k"]))
    ax.tick_params(labelsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=10, loc="lower right")
    return _png(fig)


def plot_metric_bars(summary: dict[str, Any], names: Sequence[str] = BAR_METRICS) -> str | None:
    """Key metrics per run as grouped horizontal bars with Wilson 95% error bars, as base64 PNG: the metrics' names
    read across at full size, not rotated and small."""
    runs: dict[str, dict[str, Any]] = summary.get("runs") or {}
    names = [n for n in names if any((m.get(n) or {}).get("value") is not None for m in runs.values())]
    if not runs or not names:
        return None
    # narrow, so a phone shows it near its own size: the labels stay readable (at 390 px, 6 in shrank them to 7 px)
    fig = Figure(figsize=(4.0, 0.9 + 0.3 * len(names) * max(1, len(runs))))
    ax = fig.add_subplot()
    height = 0.8 / len(runs)
    for i, (label, metrics) in enumerate(runs.items()):
        ys, xs, err_lo, err_hi = [], [], [], []
        for j, name in enumerate(names):
            m = metrics.get(name) or {}
            if m.get("value") is None:
                continue
            ys.append(j + (i - (len(runs) - 1) / 2) * height)
            xs.append(m["value"])
            err_lo.append(max(0.0, m["value"] - m["lo"]) if m.get("lo") is not None else 0.0)
            err_hi.append(max(0.0, m["hi"] - m["value"]) if m.get("hi") is not None else 0.0)
        ax.barh(ys, xs, height=height, xerr=[err_lo, err_hi], capsize=2, label=label)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=10)
    ax.invert_yaxis()  # the first metric on top, as the table lists them
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("value, with its 95% interval", fontsize=10)
    ax.set_title("Key metrics per run", fontsize=11)
    ax.tick_params(axis="x", labelsize=10)
    ax.grid(axis="x", alpha=0.3)
    if len(runs) > 1:
        ax.legend(fontsize=10, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.6 / (len(names) + 2)),
                  ncol=min(len(runs), 3), frameon=False)
    return _png(fig)


def _md(text: object) -> str:
    """Text safe inside a Markdown table cell (HTML escaped, pipes and newlines neutralised)."""
    return html.escape(str(text)).replace("|", "\\|").replace("\n", " ")


def _delta_good(name: str, delta: float, summary: dict[str, Any]) -> bool:
    """True when delta is an improvement for this metric."""
    lower = (summary.get("metrics_info") or {}).get(name, {}).get("lower_is_better", False)
    return delta < 0 if lower else delta > 0


def render_markdown(summary: dict[str, Any], rows: Sequence[dict[str, Any]] = ()) -> str:
    """The report as Markdown: summary, per-category, failures, baseline diff and the questions that failed."""
    runs: dict[str, dict[str, Any]] = summary.get("runs") or {}
    labels = list(runs)
    names = list(summary.get("metrics_info") or next(iter(runs.values()), {}))
    header = (f"# Evaluation report\n\n{summary.get('questions', 0)} questions · generated "
              f"{summary.get('generated', '')} · lexical support τ = {summary.get('support_tau', '')}\n")
    out = [header, "## Summary\n", "| metric | " + " | ".join(_md(lb) for lb in labels) + " |",
           "|---|" + "---|" * len(labels)]
    for name in names:
        out.append(f"| {_md(name)} | " + " | ".join(_md(format_cell(runs[lb].get(name))) for lb in labels) + " |")
    for label, cats in (summary.get("per_category") or {}).items():
        out += [f"\n## Per category — {_md(label)}\n", "| category | " + " | ".join(CATEGORY_COLUMNS) + " |",
                "|---|" + "---|" * len(CATEGORY_COLUMNS)]
        for cat, metrics in cats.items():
            cells = [f"{format_value(metrics.get(c))} ({format_count(metrics.get(c))})"
                     if (metrics.get(c) or {}).get("value") is not None else "–" for c in CATEGORY_COLUMNS]
            out.append(f"| {_md(cat)} | " + " | ".join(_md(c) for c in cells) + " |")
    failures = summary.get("failures") or {}
    if failures:
        tags = list(next(iter(failures.values())))
        out += ["\n## Failure tags\n", "| run | " + " | ".join(tags) + " |", "|---|" + "---|" * len(tags)]
        out += [f"| {_md(lb)} | " + " | ".join(str(c.get(t, 0)) for t in tags) + " |" for lb, c in failures.items()]
    for label, diff in (summary.get("baseline_diff") or {}).items():
        out += [f"\n## Against the baseline — {_md(label)}\n", "| metric | baseline | now | delta |",
                "|---|---|---|---|"]
        for name, d in diff.items():
            out.append(f"| {_md(name)} | {d['baseline']:.3f} | {d['now']:.3f} | {d['delta']:+.3f} |")
    failing = [r for r in rows if r.get("failure") != "ok"]
    if failing:
        out += ["\n## Questions that failed\n", "| run | id | tag | question |", "|---|---|---|---|"]
        out += [f"| {_md(r.get('run', ''))} | {_md(r['id'])} | {_md(r['failure'])} | {_md(r['question'])} |"
                for r in failing]
    return "\n".join(out) + "\n"


_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       margin: 2em auto; max-width: 1200px; padding: 0 1em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
.k { color: #666; font-size: 90%; } .ci { color: #888; font-size: 85%; } .muted { color: #777; }
.good { color: #176d2c; } .bad { color: #b3261e; }
.s-ok { background: #dff3e1; } .s-bad { background: #fbe0de; }
.tag { display: inline-block; border-radius: 3px; padding: 0 5px; font-size: 85%; background: #eee; }
.tag-ok { background: #dff3e1; } .tag-bad { background: #fbe0de; }
details { border: 1px solid #ddd; border-radius: 4px; margin: 4px 0; padding: 4px 8px; }
summary { cursor: pointer; }
.src { white-space: pre-wrap; font-size: 90%; color: #333; background: #fafafa; padding: 4px; margin: 2px 0; }
img { max-width: 100%; margin-right: 1em; }
"""

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>paperchat evaluation</title>
<style>{{ css }}</style></head><body>
<h1>paperchat evaluation</h1>
<p class="muted">{{ summary.questions }} questions · generated {{ summary.generated }} ·
lexical support τ = {{ summary.support_tau }} (lexical support, not faithfulness)</p>

<h2>Summary</h2>
<table>
<tr><th>metric</th>{% for label in labels %}<th>{{ label }}</th>{% endfor %}<th>what it counts</th></tr>
{% for name in names %}
<tr><td>{{ name }}</td>
  {% for label in labels %}{% set m = runs[label].get(name) %}
  <td class="num">{{ fv(m) }} <span class="k">{{ fc(m) }}</span> <span class="ci">{{ fci(m) }}</span></td>
  {% endfor %}
  <td class="muted">{{ info.get(name, {}).get("description", "") }}</td></tr>
{% endfor %}
</table>

{% if images %}
<h2>Plots</h2>
{% for alt, png in images %}<img alt="{{ alt }}" src="data:image/png;base64,{{ png }}">{% endfor %}
{% endif %}

{% for label, cats in per_category.items() %}
<h2>Per category — {{ label }}</h2>
<table>
<tr><th>category</th>{% for c in cat_columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for cat, metrics in cats.items() %}
<tr><td>{{ cat }}</td>
  {% for c in cat_columns %}{% set m = metrics.get(c) %}
  <td class="num">{{ fv(m) }} <span class="k">{% if m and m.value is not none %}{{ fc(m) }}{% endif %}</span></td>
  {% endfor %}
</tr>
{% endfor %}
</table>
{% endfor %}

{% if failures %}
<h2>Failure tags</h2>
<table>
<tr><th>run</th>{% for t in tags %}<th>{{ t }}</th>{% endfor %}</tr>
{% for label, counts in failures.items() %}
<tr><td>{{ label }}</td>{% for t in tags %}<td class="num">{{ counts.get(t, 0) }}</td>{% endfor %}</tr>
{% endfor %}
</table>
{% endif %}

{% for label, diff in baseline_diff.items() %}
<h2>Against the baseline — {{ label }}</h2>
<table>
<tr><th>metric</th><th>baseline</th><th>now</th><th>delta</th></tr>
{% for name, d in diff.items() %}
{% set cls = 'good' if good(name, d.delta) else ('bad' if d.delta else '') %}
<tr><td>{{ name }}</td><td class="num">{{ "%.3f"|format(d.baseline) }}</td>
  <td class="num">{{ "%.3f"|format(d.now) }}</td><td class="num {{ cls }}">{{ "%+.3f"|format(d.delta) }}</td></tr>
{% endfor %}
</table>
{% endfor %}

<h2>Questions</h2>
{% for label in row_labels %}
<h3>{{ label }}</h3>
{% for r in rows if r.run == label %}
<details>
<summary><span class="tag {{ 'tag-ok' if r.failure == 'ok' else 'tag-bad' }}">{{ r.failure }}</span>
  <b>{{ r.id }}</b> <span class="muted">{{ r.category }}</span> {{ r.question }}</summary>
{% if r.error %}<p class="bad">Error: {{ r.error }}</p>{% endif %}
<p><b>Answer</b>{% if r.abstained %} <span class="tag">abstained</span>{% endif %}
  <span class="muted">{{ "%.0f"|format(r.latency_ms) }} ms</span></p>
{% if r.sentences %}
<p>{% for s in r.sentences %}
  <span class="{{ 's-ok' if s.supported else 's-bad' }}" title="{{ s.reason }}">{{ s.text }}
  {%- for c in s.citations %} [{{ c }}]{% endfor %}</span>
{% endfor %}</p>
{% else %}
<p>{{ r.answer }}</p>
{% endif %}
{% if r.gold_papers %}
<p><b>Retrieved papers</b> (gold in bold):
  {% for p in r.retrieved_papers %}{% if p in r.gold_papers %}<b>{{ p }}</b>{% else %}{{ p }}{% endif %}
  {{- ", " if not loop.last }}{% endfor %} · gold: {{ r.gold_papers|join(", ") }}</p>
{% endif %}
{% if r.facts %}
<p><b>Facts</b></p>
<ul>
{% for f in r.facts %}{% set ok = r.facts_found[loop.index0] %}
  <li class="{{ 'good' if ok else 'bad' }}">{{ "found" if ok else "missed" }}: <code>{{ f|join(" | ") }}</code></li>
{% endfor %}
</ul>
{% endif %}
{% if r.invalid_citations %}<p class="bad">Citations to no source: {{ r.invalid_citations|join(", ") }}</p>{% endif %}
{% if r.sources %}
<p><b>Sources</b></p>
{% for s in r.sources %}
<div><b>[{{ s.n }}]</b> {{ s.paper_id }} — {{ s.title }} <span class="muted">score {{ "%.3f"|format(s.score) }}</span>
  <div class="src">{{ s.text }}</div></div>
{% endfor %}
{% endif %}
</details>
{% endfor %}
{% endfor %}
</body></html>
"""


def render_html(summary: dict[str, Any], rows: Sequence[dict[str, Any]] = ()) -> str:
    """The self-contained HTML report: tables, inline PNG plots and a per-question drill-down."""
    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(_TEMPLATE)
    runs = summary.get("runs") or {}
    images = [(alt, png) for alt, png in (("recall@k per run", plot_recall_curve(summary)),
                                          ("key metrics per run", plot_metric_bars(summary))) if png]
    failures = summary.get("failures") or {}
    return template.render(
        css=_CSS, summary=summary, runs=runs, labels=list(runs), info=summary.get("metrics_info") or {},
        names=list(summary.get("metrics_info") or next(iter(runs.values()), {})), images=images,
        per_category=summary.get("per_category") or {}, cat_columns=CATEGORY_COLUMNS, failures=failures,
        tags=list(next(iter(failures.values()), {})), baseline_diff=summary.get("baseline_diff") or {},
        rows=list(rows), row_labels=list(dict.fromkeys(r.get("run", "") for r in rows)),
        fv=format_value, fc=format_count, fci=format_ci, good=lambda n, d: _delta_good(n, d, summary),
    )


def write_reports(out_dir: str | Path, summary: dict[str, Any], rows: Sequence[dict[str, Any]]) -> tuple[Path, Path]:
    """Write report.md and report.html into out_dir."""
    out = Path(out_dir)
    md, page = out / "report.md", out / "report.html"
    md.write_text(render_markdown(summary, rows), encoding="utf-8")
    page.write_text(render_html(summary, rows), encoding="utf-8")
    log.info("wrote %s and %s", md, page)
    return md, page
