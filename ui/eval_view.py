"""The Evaluate tab's HTML: an evaluation's headline metrics with their intervals and plots, one question's
drill-down, two runs compared, a checked question set and the chat's feedback. Every value is escaped."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rag.eval.compare import COMPARE_METRICS, RunComparison
from rag.eval.facts import fact_text
from rag.eval.library import FeedbackCounts
from rag.eval.metrics import METRICS
from rag.eval.questions import QuestionSetCheck
from rag.eval.render import format_cell, plot_metric_bars, plot_recall_curve
from rag.eval.session import Evaluation

from .render import esc

_TABLE = 'class="pc-eval-table" style="border-collapse:collapse;font-size:0.85em;width:100%"'
_CELL = 'style="border-bottom:1px solid var(--border-color-primary);padding:2px 6px;text-align:left"'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An HTML table of already-escaped cells."""
    th = "".join(f"<th {_CELL}>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td {_CELL}>{c}</td>" for c in row) + "</tr>" for row in rows)
    # in a box of its own that scrolls sideways: a phone is narrower than three columns of intervals
    table = f"<table {_TABLE}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="pc-eval-scroll">{table}</div>'


def check_html(check: QuestionSetCheck | None, name: str = "") -> str:
    """An uploaded question set: how many questions, or each bad line."""
    if check is None:
        return ""
    warn = "".join(f"<li>{esc(w)}</li>" for w in check.warnings)
    if check.errors:
        items = "".join(f"<li>{esc(e)}</li>" for e in check.errors)
        return (f'<div class="pc-eval-errors" role="alert"><b>{esc(name or "The file")} cannot be used:</b>'
                f"<ul>{items}</ul>{'<ul>' + warn + '</ul>' if warn else ''}</div>")
    return (f'<div class="pc-eval-ok">{esc(name or "The file")}: {len(check.questions)} questions, valid.'
            f"{'<ul>' + warn + '</ul>' if warn else ''}</div>")


def report_html(evaluation: Evaluation | None) -> str:
    """Headline metrics (runs side by side, value (k/n) [95% CI]), failure counts and the two plots."""
    if evaluation is None:
        return '<p class="pc-eval-empty">No evaluation yet: choose a question set and run one.</p>'
    summary = evaluation.summary
    runs: dict[str, dict[str, Any]] = summary.get("runs") or {}
    rows = [[metric_html(name), *(esc(format_cell(m.get(name))) for m in runs.values())] for name in COMPARE_METRICS]
    failures: dict[str, dict[str, int]] = summary.get("failures") or {}
    tags = list(next(iter(failures.values()), {}))
    fail_rows = [[esc(t), *(str(failures[label].get(t, 0)) for label in runs)] for t in tags]
    images = "".join(f'<img alt="{esc(alt)}" src="data:image/png;base64,{png}" style="max-width:100%">'
                     for alt, png in (("Retrieval recall@k per run: the share of gold papers in the top k papers, "
                                       "for k from 1 to 5", plot_recall_curve(summary)),
                                      ("Key metrics per run as bars with their 95% intervals: "
                                       + ", ".join(f"{n} {format_cell(m.get(n))}" for m in runs.values()
                                                   for n in ("accuracy", "fact_recall") if m.get(n)),
                                       plot_metric_bars(summary))) if png)
    head = (f"<p><b>Evaluation {esc(evaluation.id)}</b>: {evaluation.questions} questions from "
            f"{esc(evaluation.question_set)}, {len(runs)} run(s), {evaluation.seconds:.0f} s.</p>")
    how = ('<p class="pc-eval-how">Each value is a share from 0 to 1 (higher is better unless marked “lower is '
           "better”), with its count and 95% interval in brackets: a narrow interval needs many questions.</p>")
    return (f'<div class="pc-eval-report">{head}{how}{_table(["metric", *map(esc, runs)], rows)}'
            f"<p><b>First failure per question</b></p>{_table(['failure', *map(esc, runs)], fail_rows)}"
            f"{images}</div>")


def metric_html(name: str) -> str:
    """A metric's name with what it measures, in words (hit@1, mrr@5 … mean little to most readers)."""
    what, lower = METRICS.get(name, ("", False))
    note = " — lower is better" if lower else ""
    return f'<b>{esc(name)}</b><div class="pc-eval-what">{esc(what)}{note}</div>' if what else f"<b>{esc(name)}</b>"


def readable_fact(pattern: str) -> str:
    """A key fact as words, not its regex: 're-?shard' -> 're-shard', '\\bBuff\\b' -> 'Buff', 'row-?\\s*(?:and|&)…'
    -> 'row- and …' (the first of alternatives, optional characters kept)."""
    text = fact_text(pattern)
    if not text.startswith("re:"):
        return text
    r = re.sub(r"\(\?[!=<][^)]*\)", "", text[3:])  # lookarounds
    r = re.sub(r"\\[bB]", "", r)
    r = re.sub(r"\\s[*+?]?", " ", r)
    r = re.sub(r"\(\?:([^()]*)\)", lambda m: m.group(1).split("|")[0], r)
    r = re.sub(r"([^\\])\?", r"\1", r)
    r = re.sub(r"\[([^\]])[^\]]*\]", r"\1", r)
    return " ".join(r.replace("\\", "").split())


def answer_html(text: str) -> str:
    """An evaluated answer for reading, not its Markdown: a table drawn as a table, a list as a list, bold markers
    dropped, everything escaped."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    cells = [ln.strip("|").split("|") for ln in lines if ln.startswith("|")]
    cells = [row for row in cells if not set("".join(row).strip()) <= {"-", ":", " "}]
    items = [esc(ln[2:].replace("**", "")) for ln in lines if ln.startswith(("- ", "* "))]
    prose = " ".join(ln for ln in lines if not ln.startswith(("|", "- ", "* "))).replace("**", "")
    table = _table([esc(c.strip().replace("**", "")) for c in cells[0]],
                   [[esc(c.strip().replace("**", "")) for c in row] for row in cells[1:]]) if cells else ""
    listed = "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>" if items else ""
    return (f"<p>{esc(prose)}</p>" if prose else "") + listed + table


def question_choices(evaluation: Evaluation | None) -> list[tuple[str, str]]:
    """(label, value) per run and question, failures first: 'extractive/hybrid · q004 · missed_facts · …'."""
    if evaluation is None:
        return []
    rows = sorted(evaluation.rows(), key=lambda r: (r.get("failure") == "ok", r.get("run", ""), r.get("id", "")))
    return [(f"{r['run']} · {r['id']} · {r.get('failure', '')} · {r['question'][:70]}",
             f"{evaluation.id}\t{r['run']}\t{r['id']}") for r in rows]


def question_html(row: dict[str, Any] | None) -> str:
    """One question of a run: the question, the answer, which facts were found, the cited passages, why it failed."""
    if row is None:
        return ""
    facts = row.get("facts") or []
    found = row.get("facts_found") or [False] * len(facts)
    fact_items = "".join(f"<li>{'✅ found' if ok else '❌ missing'}: {esc(' or '.join(readable_fact(a) for a in alts))}</li>"
                         for alts, ok in zip(facts, found, strict=False))
    cited = {n for s in row.get("sentences") or [] for n in s.get("citations") or []}
    passages = "".join(
        f"<li><b>[{s['n']}] {esc(s.get('title') or s.get('paper_id'))}</b>{' (cited)' if s['n'] in cited else ''}: "
        f"{esc(s.get('text', '')[:400])}</li>" for s in row.get("sources") or [])
    sentences = "".join(f"<li>{'✅' if s.get('supported') else '⚠️'} {esc(s.get('text', ''))} "
                        f"<small>{esc(s.get('reason', ''))}</small></li>" for s in row.get("sentences") or [])
    why = row.get("failure", "")
    gold = ", ".join(row.get("gold_papers") or [])
    expect = "should abstain" if row.get("expect_abstain") else f"gold papers: {gold}"
    return (f'<div class="pc-eval-question"><p><b>{esc(row.get("id"))}</b> ({esc(row.get("run"))}, '
            f'{esc(row.get("category"))}; {esc(expect)}) — <b class="pc-eval-failure">{esc(why)}</b>'
            f'{" " + esc(row["error"]) if row.get("error") else ""}</p>'
            f"<p><b>Question:</b> {esc(row.get('question'))}</p>"
            f"<p><b>Answer</b>{' (abstained)' if row.get('abstained') else ''}:</p>"
            f'<div class="pc-eval-answer">{answer_html(str(row.get("answer") or ""))}</div>'
            f"<p><b>Key facts the answer should state</b></p><ul>{fact_items or '<li>none</li>'}</ul>"
            f"<p><b>Sentences, checked against their citations</b></p><ul>{sentences or '<li>none</li>'}</ul>"
            f"<p><b>Retrieved papers:</b> {esc(', '.join(row.get('retrieved_papers') or []))}</p>"
            f"<details><summary>Passages</summary><ul>{passages}</ul></details></div>")


def comparison_html(cmp: RunComparison | None) -> str:
    """Run B against run A: every headline metric with its delta, and the questions that changed."""
    if cmp is None:
        return ""
    rows = []
    for m in cmp.metrics:
        arrow = "" if m.better is None else (" ▲ better" if m.better else " ▼ worse")
        delta = "–" if m.delta is None else f"{m.delta:+.3f}{arrow}"
        rows.append([esc(m.name), esc(format_cell(m.a)), esc(format_cell(m.b)), esc(delta)])
    changes = "".join(f"<li>{'fixed' if fixed else 'broken'}: <b>{esc(c.id)}</b> {esc(c.question)} "
                      f"({esc(c.a_failure)} → {esc(c.b_failure)})</li>"
                      for fixed, group in ((True, cmp.fixed), (False, cmp.broken)) for c in group)
    return (f'<div class="pc-eval-compare"><p><b>A</b> = {esc(cmp.a)}, <b>B</b> = {esc(cmp.b)}; '
            f"{cmp.common} questions in both.</p>{_table(['metric', 'A', 'B', 'B − A'], rows)}"
            f"<p><b>{len(cmp.fixed)} fixed, {len(cmp.broken)} broken</b></p><ul>{changes}</ul></div>")


def feedback_html(counts: FeedbackCounts, saved: int, drafts: int) -> str:
    """The chat's ratings and the library's question counts."""
    down = "".join(f"<li>{esc(q)} (👎 {n})</li>" for q, n in counts.most_down)
    return (f'<div class="pc-eval-feedback"><p>Chat feedback: <b>👍 {counts.up}</b> · <b>👎 {counts.down}</b> '
            f"over {counts.answers} answer(s). This library's test set: {saved} question(s), {drafts} draft(s) "
            f"waiting to be accepted.</p>{'<p>Rated down most:</p><ul>' + down + '</ul>' if down else ''}</div>")
