"""Metrics: every rate carries its count (k/n) and a Wilson 95% interval; means (MRR, nDCG) carry n and a
normal-approximation interval; latencies carry n only."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel

from rag.eval.patterns import fact_matches
from rag.support import normalise_numbers, strip_markup

if TYPE_CHECKING:
    from rag.eval.score import QuestionResult

KS: tuple[int, ...] = (1, 3, 5)
CURVE_KS: tuple[int, ...] = (1, 2, 3, 4, 5)

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


class Metric(BaseModel):
    """A metric value with its count and 95% interval (None when nothing was counted)."""

    value: float | None
    k: float | None = None
    n: int = 0
    lo: float | None = None
    hi: float | None = None
    kind: Literal["rate", "mean", "count", "ms"] = "rate"


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
    """True when any regex alternative matches the answer, raw or with numbers normalised (case-insensitive; RE2)."""
    plain = strip_markup(answer)
    texts = {answer, plain, normalise_numbers(plain)}
    return any(fact_matches(p, t) for p in alternatives for t in texts)


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
