"""The evaluation harness: run a question set through any answer function and score it without a model.

Metrics follow /work/shared/notes/evaluation.md. Every rate carries its count (k/n) and a Wilson 95%
interval; means (MRR, nDCG) carry n and a normal-approximation interval; latencies carry n only.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rag.report import write_reports
from rag.support import SUPPORT_TAU, normalise_numbers, strip_markup, support, support_multi
from rag.text import sentences as split_sentences
from rag.types import Answer, Source

log = logging.getLogger(__name__)

Category = Literal["factoid", "compare", "multi", "followup", "unanswerable"]
CATEGORIES: tuple[str, ...] = ("factoid", "compare", "multi", "followup", "unanswerable")
KS: tuple[int, ...] = (1, 3, 5)
CURVE_KS: tuple[int, ...] = (1, 2, 3, 4, 5)
RETRIEVAL_MISS_K = 5
FAILURE_TAGS: tuple[str, ...] = (
    "error", "retrieval_miss", "false_abstain", "missed_facts", "bad_citation", "unsupported_sentence",
    "missed_abstain", "ok",
)
_CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_Z95 = 1.959963984540054

# name -> (description, lower is better)
METRICS: dict[str, tuple[str, bool]] = {
    **{f"hit@{k}": (f"answerable questions with a gold paper in the top {k} papers", False) for k in KS},
    **{f"recall@{k}": (f"gold papers found in the top {k} papers (all gold papers pooled)", False) for k in KS},
    **{f"mrr@{k}": (f"mean 1/rank of the first gold paper within {k}", False) for k in KS},
    **{f"ndcg@{k}": (f"mean binary-gain nDCG at {k}", False) for k in KS},
    "fact_recall": ("expected facts found in the answers (answerable questions, facts pooled)", False),
    "all_facts": ("answerable questions with every expected fact found", False),
    "citation_validity": ("answers whose every [n] points at a real source", False),
    "fabricated_citations": ("citation markers pointing at no source (count)", True),
    "cited_precision": ("cited papers that are gold (answerable questions, pooled)", False),
    "cited_recall": ("gold papers that are cited (answerable questions, pooled)", False),
    "alce_citation_recall": ("answer sentences with a citation whose passages support them", False),
    "alce_citation_precision": ("citations that support their sentence or are needed to", False),
    "abstain_recall": ("unanswerable questions that abstained", False),
    "false_abstain_rate": ("answerable questions that abstained", True),
    "accuracy": ("correct / all (LitQA-style)", False),
    "strict_accuracy": ("correct, citing every gold paper and no other (abstention right when unanswerable)", False),
    "precision": ("correct / answered (LitQA-style)", False),
    "coverage": ("answered / all (LitQA-style)", False),
    "error_rate": ("questions whose answer function raised", True),
    "latency_p50_ms": ("median answer latency in milliseconds", True),
    "latency_p95_ms": ("95th-percentile answer latency in milliseconds", True),
}


class Question(BaseModel):
    """One evaluation question with its gold papers and expected facts (regex alternatives)."""

    id: str
    question: str
    category: Category
    gold_papers: list[str] = Field(default_factory=list)
    facts: list[list[str]] = Field(default_factory=list)
    history: list[dict[str, str]] = Field(default_factory=list)
    expect_abstain: bool = False
    kind: str | None = Field(default=None, description="The question's form (what, how_much, list, …), for reports.")
    split: Literal["tune", "test"] | None = Field(default=None, description="tune: may be fitted on; test: never.")
    ok_papers: list[str] = Field(default_factory=list, description="Papers that may be cited without being wrong.")

    @field_validator("facts")
    @classmethod
    def _facts_compile(cls, facts: list[list[str]]) -> list[list[str]]:
        """Reject a fact with no alternatives or a regex that does not compile."""
        for alternatives in facts:
            if not alternatives:
                raise ValueError("a fact needs at least one alternative")
            for pattern in alternatives:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"fact regex {pattern!r} does not compile: {exc}") from exc
        return facts


AnswerFn = Callable[[Question], Answer]


class SourceRow(BaseModel):
    """A source as recorded in results.jsonl."""

    n: int
    paper_id: str
    title: str
    chunk_id: str
    text: str
    score: float


class SentenceRow(BaseModel):
    """An answer sentence, its citations and the harness's own support verdict."""

    text: str
    citations: list[int] = Field(default_factory=list)
    supported: bool = False
    reason: str = ""


class QuestionResult(BaseModel):
    """One question's outcome in one run."""

    id: str
    question: str
    category: str
    kind: str | None = None
    split: str | None = None
    gold_papers: list[str] = Field(default_factory=list)
    ok_papers: list[str] = Field(default_factory=list)
    facts: list[list[str]] = Field(default_factory=list)
    expect_abstain: bool = False
    answer: str = ""
    abstained: bool = False
    sources: list[SourceRow] = Field(default_factory=list)
    retrieved_papers: list[str] = Field(default_factory=list)
    sentences: list[SentenceRow] = Field(default_factory=list)
    facts_found: list[bool] = Field(default_factory=list)
    cited_papers: list[str] = Field(default_factory=list)
    invalid_citations: list[int] = Field(default_factory=list)
    citations_total: int = 0
    citations_precise: int = 0
    latency_ms: float = 0.0
    timings_ms: dict[str, float] = Field(default_factory=dict)
    failure: str = "ok"
    error: str | None = None

    @property
    def answered(self) -> bool:
        """Gave an answer: did not abstain and did not fail."""
        return not self.abstained and self.error is None

    @property
    def correct(self) -> bool:
        """LitQA-style: all facts found when answerable, abstained when not."""
        if self.expect_abstain:
            return self.abstained and self.error is None
        return self.answered and all(self.facts_found)

    @property
    def strict(self) -> bool:
        """Correct, and the answer cites every gold paper and no paper outside gold (and ok_papers)."""
        if self.expect_abstain or not self.correct:
            return self.correct
        cited = set(self.cited_papers)
        return set(self.gold_papers) <= cited and cited <= set(self.gold_papers) | set(self.ok_papers)


class Metric(BaseModel):
    """A metric value with its count and 95% interval (None when nothing was counted)."""

    value: float | None
    k: float | None = None
    n: int = 0
    lo: float | None = None
    hi: float | None = None
    kind: Literal["rate", "mean", "count", "ms"] = "rate"


class RunResult(BaseModel):
    """Every question's result and the metrics of one labelled run."""

    label: str
    rows: list[QuestionResult]
    metrics: dict[str, Metric]
    per_category: dict[str, dict[str, Metric]]
    failures: dict[str, int]


# -- question set ---------------------------------------------------------------------------------------------------
def load_questions(path: str | Path) -> list[Question]:
    """Questions from a JSONL file; ValueError naming the line on a bad record or duplicate id."""
    questions: list[Question] = []
    seen: set[str] = set()
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            question = Question.model_validate_json(line)
        except ValueError as exc:
            raise ValueError(f"{path}, line {lineno}: {exc}") from exc
        if question.id in seen:
            raise ValueError(f"{path}, line {lineno}: duplicate question id {question.id!r}")
        seen.add(question.id)
        questions.append(question)
    return questions


# -- metric primitives ----------------------------------------------------------------------------------------------
def wilson(k: float, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(k: float, n: int) -> Metric:
    """A proportion k/n with its Wilson interval."""
    if n <= 0:
        return Metric(value=None, k=k, n=0)
    lo, hi = wilson(k, n)
    return Metric(value=k / n, k=k, n=n, lo=lo, hi=hi, kind="rate")


def mean(values: Sequence[float]) -> Metric:
    """A mean of per-question scores in [0, 1] with a normal-approximation interval."""
    if not values:
        return Metric(value=None, n=0, kind="mean")
    arr = np.asarray(values, dtype=float)
    m = float(arr.mean())
    half = _Z95 * float(arr.std(ddof=1)) / math.sqrt(len(arr)) if len(arr) > 1 else 0.0
    return Metric(value=m, k=float(arr.sum()), n=len(arr), lo=max(0.0, m - half), hi=min(1.0, m + half), kind="mean")


def hit_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """1.0 when a gold paper is among the first k ranked papers."""
    return 1.0 if set(ranked[:k]) & set(gold) else 0.0


def recall_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """Share of the gold papers among the first k ranked papers."""
    wanted = set(gold)
    return len(set(ranked[:k]) & wanted) / len(wanted) if wanted else 0.0


def mrr_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """1/rank of the first gold paper within k, else 0."""
    wanted = set(gold)
    return next((1.0 / i for i, pid in enumerate(ranked[:k], start=1) if pid in wanted), 0.0)


def ndcg_at_k(ranked: Sequence[str], gold: Iterable[str], k: int) -> float:
    """Binary-gain DCG over the ideal DCG at k."""
    wanted = set(gold)
    if not wanted:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 1) for i, pid in enumerate(ranked[:k], start=1) if pid in wanted)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(wanted), k) + 1))
    return dcg / ideal


def unique_papers(paper_ids: Iterable[str]) -> list[str]:
    """Paper ids in first-rank order, each once (chunks collapse to their paper)."""
    return list(dict.fromkeys(paper_ids))


def fact_found(alternatives: Sequence[str], answer: str) -> bool:
    """True when any regex alternative matches the answer, raw or with numbers normalised (case-insensitive)."""
    plain = strip_markup(answer)
    texts = {answer, plain, normalise_numbers(plain)}
    return any(re.search(p, t, re.IGNORECASE) for p in alternatives for t in texts)


def citation_markers(text: str) -> list[int]:
    """Citation numbers in text, in order of appearance ('[1]', '[2, 3]')."""
    return [int(n) for group in _CITATION.findall(text) for n in re.split(r"\s*[,;]\s*", group)]


# -- scoring one answer ---------------------------------------------------------------------------------------------
def _answer_sentences(answer: Answer) -> list[tuple[str, list[int]]]:
    """(text, citations) per sentence: the chain's sentences if it gave them, else the answer split."""
    if answer.sentences:
        pairs = [(s.text, [*s.citations, *citation_markers(s.text)]) for s in answer.sentences]
    else:
        pairs = [(s, citation_markers(s)) for s in split_sentences(answer.answer)]
    return [(strip_markup(t), list(dict.fromkeys(c))) for t, c in pairs if strip_markup(t)]


def score_sentence(text: str, citations: Sequence[int], sources: dict[int, Source]) -> tuple[SentenceRow, int]:
    """A sentence's support by its valid cited passages, and how many of its citations are ALCE-precise."""
    valid = [c for c in citations if c in sources]
    passages = [sources[c].text for c in valid]
    joint = support_multi(text, passages)
    supported = bool(valid) and joint.supported
    precise = 0
    if supported and len(valid) == 1:
        precise = 1
    elif supported:
        for c in valid:
            alone = support(text, sources[c].text).supported
            rest = [sources[o].text for o in valid if o != c]
            precise += alone or not support_multi(text, rest).supported
    reason = joint.reason if valid else ("no citation" if not citations else "cites no real source")
    return SentenceRow(text=text, citations=list(citations), supported=supported, reason=reason), precise


def failure_tag(row: QuestionResult) -> str:
    """The first failure of a question: retrieval_miss → false_abstain → missed_facts → bad_citation → …"""
    if row.error is not None:
        return "error"
    if row.expect_abstain:
        return "ok" if row.abstained else "missed_abstain"
    if not hit_at_k(row.retrieved_papers, row.gold_papers, RETRIEVAL_MISS_K):
        return "retrieval_miss"
    if row.abstained:
        return "false_abstain"
    if not all(row.facts_found):
        return "missed_facts"
    if row.invalid_citations:
        return "bad_citation"
    if not row.sentences or any(not s.supported for s in row.sentences):
        return "unsupported_sentence"
    return "ok"


def score_answer(question: Question, answer: Answer, latency_ms: float) -> QuestionResult:
    """Score one answer against its question: retrieval, facts, citations, support and failure tag."""
    by_n = {s.n: s for s in answer.sources}
    retrieved = unique_papers(answer.paper_ids) or unique_papers(s.paper_id for s in answer.sources)
    row = QuestionResult(
        id=question.id, question=question.question, category=question.category, kind=question.kind,
        split=question.split, gold_papers=question.gold_papers, ok_papers=question.ok_papers, facts=question.facts,
        expect_abstain=question.expect_abstain, answer=answer.answer, abstained=answer.abstained,
        retrieved_papers=retrieved,
        sources=[SourceRow(**s.model_dump(include=set(SourceRow.model_fields))) for s in answer.sources],
        facts_found=[False if answer.abstained else fact_found(f, answer.answer) for f in question.facts],
        latency_ms=latency_ms, timings_ms=answer.timings_ms,
    )
    if not answer.abstained:
        cited: list[int] = []
        for text, citations in _answer_sentences(answer):
            sentence, precise = score_sentence(text, citations, by_n)
            row.sentences.append(sentence)
            row.citations_total += len(citations)
            row.citations_precise += precise
            cited += citations
        # The chain strips citations to missing passages; they still count as fabricated here.
        every = set(cited) | set(citation_markers(answer.answer)) | set(answer.removed_citations)
        row.invalid_citations = sorted(c for c in every if c not in by_n)
        row.cited_papers = unique_papers(by_n[c].paper_id for c in cited if c in by_n)
    row.failure = failure_tag(row)
    return row


def error_row(question: Question, message: str, latency_ms: float) -> QuestionResult:
    """The row of a question whose answer function raised."""
    row = QuestionResult(
        id=question.id, question=question.question, category=question.category, kind=question.kind,
        split=question.split, gold_papers=question.gold_papers, ok_papers=question.ok_papers, facts=question.facts,
        expect_abstain=question.expect_abstain, facts_found=[False] * len(question.facts), latency_ms=latency_ms,
        error=message,
    )
    row.failure = failure_tag(row)
    return row


# -- aggregation ----------------------------------------------------------------------------------------------------
def compute_metrics(rows: Sequence[QuestionResult]) -> dict[str, Metric]:
    """Every metric of METRICS over rows (a metric with nothing to count has value None)."""
    answerable = [r for r in rows if not r.expect_abstain]
    unanswerable = [r for r in rows if r.expect_abstain]
    answered = [r for r in rows if r.answered]
    m: dict[str, Metric] = {}
    gold_total = sum(len(set(r.gold_papers)) for r in answerable)
    for k in KS:
        m[f"hit@{k}"] = rate(sum(hit_at_k(r.retrieved_papers, r.gold_papers, k) for r in answerable), len(answerable))
        found = sum(len(set(r.retrieved_papers[:k]) & set(r.gold_papers)) for r in answerable)
        m[f"recall@{k}"] = rate(found, gold_total)
        m[f"mrr@{k}"] = mean([mrr_at_k(r.retrieved_papers, r.gold_papers, k) for r in answerable])
        m[f"ndcg@{k}"] = mean([ndcg_at_k(r.retrieved_papers, r.gold_papers, k) for r in answerable])
    m["fact_recall"] = rate(sum(sum(r.facts_found) for r in answerable), sum(len(r.facts) for r in answerable))
    m["all_facts"] = rate(sum(r.answered and all(r.facts_found) for r in answerable), len(answerable))
    m["citation_validity"] = rate(sum(not r.invalid_citations for r in answered), len(answered))
    total_citations = sum(r.citations_total for r in answered)
    fabricated = sum(len(r.invalid_citations) for r in answered)
    m["fabricated_citations"] = Metric(value=fabricated, k=fabricated, n=total_citations, kind="count")
    hits = sum(len(set(r.cited_papers) & set(r.gold_papers)) for r in answerable)
    m["cited_precision"] = rate(hits, sum(len(r.cited_papers) for r in answerable))
    m["cited_recall"] = rate(hits, gold_total)
    sentences = [s for r in answered for s in r.sentences]
    m["alce_citation_recall"] = rate(sum(s.supported for s in sentences), len(sentences))
    m["alce_citation_precision"] = rate(sum(r.citations_precise for r in answered), total_citations)
    m["abstain_recall"] = rate(sum(r.abstained and r.error is None for r in unanswerable), len(unanswerable))
    m["false_abstain_rate"] = rate(sum(r.abstained for r in answerable), len(answerable))
    correct = sum(r.correct for r in rows)
    m["accuracy"] = rate(correct, len(rows))
    m["strict_accuracy"] = rate(sum(r.strict for r in rows), len(rows))
    m["precision"] = rate(sum(r.correct for r in answered), len(answered))
    m["coverage"] = rate(len(answered), len(rows))
    m["error_rate"] = rate(sum(r.error is not None for r in rows), len(rows))
    latencies = [r.latency_ms for r in rows]
    for q, name in ((50, "latency_p50_ms"), (95, "latency_p95_ms")):
        value = float(np.percentile(latencies, q)) if latencies else None
        m[name] = Metric(value=value, n=len(latencies), kind="ms")
    return m


def recall_curve(rows: Sequence[QuestionResult], ks: Sequence[int] = CURVE_KS) -> dict[str, list[float | None]]:
    """Pooled recall@k and hit@k for each k, for the recall@k plot."""
    answerable = [r for r in rows if not r.expect_abstain]
    return {
        "k": list(ks),
        "recall@k": [rate(sum(len(set(r.retrieved_papers[:k]) & set(r.gold_papers)) for r in answerable),
                          sum(len(set(r.gold_papers)) for r in answerable)).value for k in ks],
        "hit@k": [rate(sum(hit_at_k(r.retrieved_papers, r.gold_papers, k) for r in answerable),
                       len(answerable)).value for k in ks],
    }


def make_run(label: str, rows: list[QuestionResult]) -> RunResult:
    """A RunResult with overall, per-category and failure-count summaries of rows."""
    per_category = {c: compute_metrics([r for r in rows if r.category == c]) for c in CATEGORIES}
    per_category = {c: v for c, v in per_category.items() if any(r.category == c for r in rows)}
    failures = Counter(r.failure for r in rows)
    return RunResult(label=label, rows=rows, metrics=compute_metrics(rows), per_category=per_category,
                     failures={t: failures.get(t, 0) for t in FAILURE_TAGS})


def evaluate(questions: Sequence[Question], answer_fn: AnswerFn, label: str, progress: bool = True) -> RunResult:
    """Answer every question with answer_fn, timing each and recording failures, and score the run."""
    rows: list[QuestionResult] = []

    def run_one(question: Question) -> QuestionResult:
        t0 = time.perf_counter()
        try:
            answer = answer_fn(question)
        except Exception as exc:  # noqa: BLE001 -- one failing question must not end the run
            elapsed = (time.perf_counter() - t0) * 1000
            log.warning("%s: %s raised %s: %s", label, question.id, type(exc).__name__, exc)
            return error_row(question, f"{type(exc).__name__}: {exc}", elapsed)
        elapsed = (time.perf_counter() - t0) * 1000
        return score_answer(question, answer, elapsed)

    if progress:
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns) as bar:
            task = bar.add_task(label, total=len(questions))
            for question in questions:
                rows.append(run_one(question))
                bar.advance(task)
    else:
        rows = [run_one(q) for q in questions]
    run = make_run(label, rows)
    log.info("%s: %d questions, accuracy %s", label, len(rows), run.metrics["accuracy"].value)
    return run


# -- outputs --------------------------------------------------------------------------------------------------------
def _dump(metrics: dict[str, Metric]) -> dict[str, dict[str, object]]:
    """Metrics as plain JSON-ready dicts."""
    return {name: metric.model_dump() for name, metric in metrics.items()}


def baseline_diff(runs: dict[str, dict[str, dict]], baseline: dict) -> dict[str, dict[str, dict[str, float]]]:
    """Per run and metric: baseline value, current value and delta (same label, or the baseline's only run)."""
    base_runs: dict[str, dict] = baseline.get("runs", {})
    diff: dict[str, dict[str, dict[str, float]]] = {}
    for label, metrics in runs.items():
        base = base_runs.get(label) or (next(iter(base_runs.values())) if len(base_runs) == 1 else None)
        if base is None:
            continue
        diff[label] = {
            name: {"baseline": base[name]["value"], "now": m["value"], "delta": m["value"] - base[name]["value"]}
            for name, m in metrics.items()
            if name in base and m["value"] is not None and base[name].get("value") is not None
        }
    return diff


def build_summary(runs: Sequence[RunResult], baseline: dict | None = None) -> dict:
    """The summary.json document: metrics per run and category, failures, curves and the baseline diff."""
    metrics = {run.label: _dump(run.metrics) for run in runs}
    return {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "questions": len(runs[0].rows) if runs else 0,
        "support_tau": SUPPORT_TAU,
        "metrics_info": {name: {"description": d, "lower_is_better": low} for name, (d, low) in METRICS.items()},
        "runs": metrics,
        "per_category": {run.label: {c: _dump(m) for c, m in run.per_category.items()} for run in runs},
        "failures": {run.label: run.failures for run in runs},
        "curves": {run.label: recall_curve(run.rows) for run in runs},
        "baseline_diff": baseline_diff(metrics, baseline) if baseline is not None else None,
    }


def write_outputs(runs: Sequence[RunResult], out_dir: str | Path, baseline_dir: str | Path | None = None) -> dict:
    """Write results.jsonl, summary.json, report.md and report.html into out_dir; return the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    baseline = None
    if baseline_dir is not None:
        path = Path(baseline_dir) / "summary.json"
        if not path.is_file():
            raise FileNotFoundError(f"No baseline summary at {path}; run the evaluation there first.")
        baseline = json.loads(path.read_text(encoding="utf-8"))
    rows = [{"run": run.label, **row.model_dump()} for run in runs for row in run.rows]
    with (out / "results.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    summary = build_summary(runs, baseline)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_reports(out, summary, rows)
    log.info("wrote %s", out)
    return summary


# -- thresholds -----------------------------------------------------------------------------------------------------
def _split_key(key: str) -> tuple[str | None, str]:
    """('label', 'metric') from 'label:metric', (None, 'metric') from 'metric'; ValueError on unknown metric."""
    label, sep, metric = key.strip().rpartition(":")
    metric = metric.strip()
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r} in threshold {key!r}; known metrics: {', '.join(METRICS)}.")
    return (label.strip() or None) if sep else None, metric


def parse_thresholds(items: Sequence[str] = (), file: str | Path | None = None) -> dict[str, float]:
    """Thresholds from a JSON/TOML file ({metric: value} or {thresholds: {...}}) then METRIC=VALUE items."""
    thresholds: dict[str, object] = {}
    if file is not None:
        path = Path(file)
        text = path.read_text(encoding="utf-8")
        try:
            data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"Cannot read thresholds from {path}: {exc}") from exc
        data = data.get("thresholds", data) if isinstance(data, dict) else data
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a table of metric = value thresholds.")
        thresholds.update(data)
    for item in items:
        key, sep, value = item.rpartition("=")
        if not sep or not key.strip():
            raise ValueError(f"Threshold {item!r} must look like METRIC=VALUE, e.g. hit@5=0.8.")
        thresholds[key.strip()] = value.strip()
    parsed: dict[str, float] = {}
    for key, raw in thresholds.items():
        _split_key(key)
        try:
            parsed[key] = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Threshold {key!r} needs a number, got {raw!r}.") from exc
    return parsed


def check_thresholds(summary: dict, thresholds: dict[str, float]) -> list[str]:
    """Violations of thresholds ('metric' applies to the first run, 'label:metric' to that run)."""
    runs: dict[str, dict] = summary["runs"]
    if not runs:
        raise ValueError("The summary holds no runs to check.")
    first = next(iter(runs))
    violations: list[str] = []
    for key, limit in thresholds.items():
        label, name = _split_key(key)
        label = label or first
        if label not in runs:
            raise ValueError(f"Threshold {key!r} names run {label!r}; runs: {', '.join(runs)}.")
        metric: dict = runs[label].get(name) or {}
        value = metric.get("value")
        if value is None:
            violations.append(f"{label}:{name} has no value (nothing to count), threshold {limit:g}")
            continue
        lower_is_better = METRICS[name][1]
        if (value > limit) if lower_is_better else (value < limit):
            count = f" ({metric['k']:g}/{metric['n']})" if metric.get("kind") == "rate" else ""
            word = "above the maximum" if lower_is_better else "below the minimum"
            violations.append(f"{label}:{name} = {value:.3f}{count} is {word} {limit:g}")
    return violations
