"""Two runs side by side: each headline metric in both with its delta (better or worse, by the metric's direction),
and the questions one run gets right and the other wrong (matched by question id)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from rag.eval.metrics import METRICS
from rag.eval.score import QuestionResult

COMPARE_METRICS: tuple[str, ...] = (
    "accuracy", "strict_accuracy", "hit@1", "hit@5", "mrr@5", "fact_recall", "all_facts", "citation_validity",
    "cited_precision", "cited_recall", "alce_citation_recall", "abstain_recall", "false_abstain_rate",
    "latency_p50_ms", "latency_p95_ms",
)


class MetricDelta(BaseModel):
    """One metric in runs A and B."""

    name: str
    a: dict | None
    b: dict | None
    delta: float | None
    better: bool | None  # B better than A (None: equal or not comparable)


class QuestionChange(BaseModel):
    """A question whose correctness differs between the runs."""

    id: str
    question: str
    a_failure: str
    b_failure: str


class RunComparison(BaseModel):
    """Run B against run A."""

    a: str
    b: str
    metrics: list[MetricDelta]
    fixed: list[QuestionChange]  # wrong in A, right in B
    broken: list[QuestionChange]  # right in A, wrong in B
    common: int  # questions in both runs


def compare_runs(a_label: str, a_metrics: dict[str, dict], a_rows: Sequence[dict], b_label: str,
                 b_metrics: dict[str, dict], b_rows: Sequence[dict],
                 names: Sequence[str] = COMPARE_METRICS) -> RunComparison:
    """Run B (metrics and results rows as summary.json/results.jsonl hold them) against run A."""
    deltas = []
    for name in names:
        a, b = a_metrics.get(name), b_metrics.get(name)
        av, bv = (a or {}).get("value"), (b or {}).get("value")
        delta = bv - av if av is not None and bv is not None else None
        better = None
        if delta:
            better = (delta < 0) if METRICS.get(name, ("", False))[1] else (delta > 0)
        deltas.append(MetricDelta(name=name, a=a, b=b, delta=delta, better=better))
    fields = set(QuestionResult.model_fields)
    a_by = {r["id"]: QuestionResult.model_validate({k: v for k, v in r.items() if k in fields}) for r in a_rows}
    b_by = {r["id"]: QuestionResult.model_validate({k: v for k, v in r.items() if k in fields}) for r in b_rows}
    fixed, broken = [], []
    for qid, ra in a_by.items():
        rb = b_by.get(qid)
        if rb is None or ra.correct == rb.correct:
            continue
        change = QuestionChange(id=qid, question=ra.question, a_failure=ra.failure, b_failure=rb.failure)
        (fixed if rb.correct else broken).append(change)
    return RunComparison(a=a_label, b=b_label, metrics=deltas, fixed=fixed, broken=broken,
                         common=len(set(a_by) & set(b_by)))
