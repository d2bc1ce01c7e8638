"""The evaluation harness: metric primitives, failure tags, thresholds and a full run with a fake answerer."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from rag.eval.gates import check_thresholds, parse_thresholds
from rag.eval.metrics import (
    METRICS,
    compute_metrics,
    fact_found,
    hit_at_k,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
    unique_papers,
    wilson,
)
from rag.eval.questions import Question, load_questions
from rag.eval.report import write_outputs
from rag.eval.run import evaluate
from rag.eval.score import QuestionResult, SentenceRow, failure_tag, score_sentence
from rag.text import citation_numbers
from rag.types import Answer, Sentence, Source

RANKED = ["a", "b", "c", "d", "e"]
LOG2_3 = math.log2(3)


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [(8, 10, 0.490, 0.943), (5, 10, 0.237, 0.763), (0, 10, 0.0, 0.278), (10, 10, 0.722, 1.0), (1, 1, 0.207, 1.0),
     (45, 50, 0.786, 0.957), (0, 0, 0.0, 1.0)],
)
def test_wilson(k: int, n: int, lo: float, hi: float) -> None:
    got = wilson(k, n)
    assert got == pytest.approx((lo, hi), abs=5e-4)


@pytest.mark.parametrize(
    ("gold", "k", "hit", "recall", "mrr", "ndcg"),
    [
        ({"a"}, 1, 1.0, 1.0, 1.0, 1.0),
        ({"c"}, 1, 0.0, 0.0, 0.0, 0.0),
        ({"c"}, 3, 1.0, 1.0, 1 / 3, 0.5),
        ({"c"}, 5, 1.0, 1.0, 1 / 3, 0.5),
        ({"a", "c"}, 1, 1.0, 0.5, 1.0, 1.0),
        ({"a", "c"}, 3, 1.0, 1.0, 1.0, 1.5 / (1 + 1 / LOG2_3)),
        ({"b", "e"}, 5, 1.0, 1.0, 0.5, (1 / LOG2_3 + 1 / math.log2(6)) / (1 + 1 / LOG2_3)),
        ({"b", "e"}, 3, 1.0, 0.5, 0.5, (1 / LOG2_3) / (1 + 1 / LOG2_3)),
        ({"x"}, 5, 0.0, 0.0, 0.0, 0.0),
        ({"a", "b", "c"}, 3, 1.0, 1.0, 1.0, 1.0),
        ({"e", "x", "y"}, 5, 1.0, 1 / 3, 0.2, (1 / math.log2(6)) / (1 + 1 / LOG2_3 + 0.5)),
    ],
)
def test_retrieval_metrics(gold: set[str], k: int, hit: float, recall: float, mrr: float, ndcg: float) -> None:
    assert hit_at_k(RANKED, gold, k) == hit
    assert recall_at_k(RANKED, gold, k) == pytest.approx(recall)
    assert mrr_at_k(RANKED, gold, k) == pytest.approx(mrr)
    assert ndcg_at_k(RANKED, gold, k) == pytest.approx(ndcg)


def test_chunks_collapse_to_papers_at_first_rank() -> None:
    assert unique_papers(["a", "a", "b", "a", "c", "b"]) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("alternatives", "answer", "found"),
    [
        (["1\\.78\\s*(?:x|×|times)"], "up to 1.78 times faster", True),
        (["1\\.78\\s*(?:x|×|times)"], "up to **1.78x** faster [1]", True),
        (["\\b1000 GPUs"], "trained on 1,000 GPUs", True),
        (["\\b10000 models"], "a dataset of 10 000 models", True),
        (["144000"], "144,000 tagged episodes", True),
        (["6\\.4x"], "6.4 times faster", True),
        (["6\\.4x"], "6.4× faster", True),
        (["6\\.4x"], "64x faster", False),
        (["12%"], "improves by 12 %", True),
        (["600\\s*B\\b"], "a 600B model", True),
        (["600000000000"], "600 billion parameters", True),
        (["DeepSpeed"], "faster than deepspeed", True),
        (["side memory", "dual parametric memory"], "a dual parametric memory scheme", True),
        (["reliability"], "locality only", False),
        (["36\\.5\\s*%"], "by 36.5% over Ring", True),
    ],
)
def test_fact_matching(alternatives: list[str], answer: str, found: bool) -> None:
    assert fact_found(alternatives, answer) is found


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a [1] b [2, 3].", [1, 2, 3]), ("[12]", [12]), ("none", []), ("[1][2]", [1, 2]), ("[a] [1;4]", [1, 4])],
)
def test_citation_numbers(text: str, expected: list[int]) -> None:
    assert citation_numbers(text) == expected


def _row(**overrides: object) -> QuestionResult:
    """A passing answerable row, with overrides."""
    base: dict[str, object] = {
        "id": "q", "question": "?", "category": "factoid", "gold_papers": ["p"], "facts": [["x"]],
        "retrieved_papers": ["p"], "facts_found": [True],
        "sentences": [SentenceRow(text="s", citations=[1], supported=True)],
    }
    return QuestionResult(**{**base, **overrides})


@pytest.mark.parametrize(
    ("overrides", "tag"),
    [
        ({}, "ok"),
        ({"retrieved_papers": ["o1", "o2"]}, "retrieval_miss"),
        ({"retrieved_papers": ["o1", "o2", "o3", "o4", "o5", "p"]}, "retrieval_miss"),
        ({"retrieved_papers": ["o1", "o2", "o3", "o4", "p"]}, "ok"),
        ({"retrieved_papers": [], "abstained": True}, "retrieval_miss"),
        ({"abstained": True, "facts_found": [False]}, "false_abstain"),
        ({"facts_found": [True, False]}, "missed_facts"),
        ({"facts_found": [False], "invalid_citations": [9]}, "missed_facts"),
        ({"invalid_citations": [9]}, "bad_citation"),
        ({"invalid_citations": [9], "sentences": [SentenceRow(text="s")]}, "bad_citation"),
        ({"sentences": [SentenceRow(text="s", citations=[1], supported=False)]}, "unsupported_sentence"),
        ({"sentences": [SentenceRow(text="s", citations=[], supported=False)]}, "unsupported_sentence"),
        ({"expect_abstain": True, "gold_papers": [], "facts": [], "abstained": True}, "ok"),
        ({"expect_abstain": True, "gold_papers": [], "facts": [], "abstained": False}, "missed_abstain"),
        ({"error": "RuntimeError: boom"}, "error"),
    ],
)
def test_failure_tags(overrides: dict[str, object], tag: str) -> None:
    assert failure_tag(_row(**overrides)) == tag


HECATE = "Hecate achieves up to 3.54x speedup over state-of-the-art MoE training systems."
MOESHARD = "MoEShard achieves speedups of up to 6.4x in time to first token against DeepSpeed."
OTHER = "Thingi10K is a dataset of 10,000 models from an online 3D printing model-sharing database."


def _sources(*texts: str) -> dict[int, Source]:
    """Sources numbered from 1."""
    return {i: Source(n=i, paper_id=f"p{i}", title=f"T{i}", chunk_id=f"c{i}", text=t, score=1.0)
            for i, t in enumerate(texts, start=1)}


@pytest.mark.parametrize(
    ("sentence", "citations", "supported", "precise"),
    [
        (HECATE, [1], True, 1),
        (HECATE, [1, 3], True, 1),  # [3] neither supports alone nor is needed
        (HECATE, [1, 1 + 1], True, 1),
        ("Hecate achieves up to 3.54x speedup and MoEShard up to 6.4x in time to first token.", [1, 2], True, 2),
        (HECATE, [3], False, 0),
        (HECATE, [], False, 0),
        (HECATE, [9], False, 0),
        (HECATE, [1, 9], True, 1),
    ],
)
def test_alce_sentence_scoring(sentence: str, citations: list[int], supported: bool, precise: int) -> None:
    row, got = score_sentence(sentence, citations, _sources(HECATE, MOESHARD, OTHER))
    assert row.supported is supported, row.reason
    assert got == precise


def test_litqa_counts() -> None:
    rows = [
        _row(id="1"),  # correct
        _row(id="2", facts_found=[False]),  # answered, wrong
        _row(id="3", abstained=True, facts_found=[False], sentences=[]),  # false abstention
        _row(id="4", expect_abstain=True, gold_papers=[], facts=[], abstained=True, sentences=[]),  # correct
        _row(id="5", expect_abstain=True, gold_papers=[], facts=[], facts_found=[]),  # missed abstention
        _row(id="6", error="boom", facts_found=[False], sentences=[]),
    ]
    m = compute_metrics(rows)
    assert (m["accuracy"].k, m["accuracy"].n) == (2, 6)
    assert (m["precision"].k, m["precision"].n) == (1, 3)
    assert (m["coverage"].k, m["coverage"].n) == (3, 6)
    assert (m["abstain_recall"].k, m["abstain_recall"].n) == (1, 2)
    assert (m["false_abstain_rate"].k, m["false_abstain_rate"].n) == (1, 4)
    assert (m["error_rate"].k, m["error_rate"].n) == (1, 6)
    assert (m["fact_recall"].k, m["fact_recall"].n) == (1, 4)
    assert m["accuracy"].lo is not None and m["accuracy"].lo < 2 / 6 < m["accuracy"].hi


def test_metrics_without_data_have_no_value() -> None:
    m = compute_metrics([_row(expect_abstain=True, gold_papers=[], facts=[], abstained=True, sentences=[])])
    assert m["hit@5"].value is None and m["hit@5"].n == 0
    assert m["abstain_recall"].value == 1.0


# -- thresholds -----------------------------------------------------------------------------------------------------
SUMMARY = {"runs": {"a": {"hit@5": {"value": 0.8, "k": 8, "n": 10, "kind": "rate"},
                          "latency_p95_ms": {"value": 900.0, "n": 10, "kind": "ms"},
                          "abstain_recall": {"value": None, "n": 0, "kind": "rate"}},
                    "b": {"hit@5": {"value": 0.5, "k": 5, "n": 10, "kind": "rate"}}}}


@pytest.mark.parametrize(
    ("thresholds", "violations"),
    [
        ({"hit@5": 0.7}, 0),
        ({"hit@5": 0.8}, 0),
        ({"hit@5": 0.9}, 1),
        ({"b:hit@5": 0.7}, 1),
        ({"a:hit@5": 0.7, "b:hit@5": 0.4}, 0),
        ({"latency_p95_ms": 1000}, 0),
        ({"latency_p95_ms": 500}, 1),
        ({"abstain_recall": 0.5}, 1),
    ],
)
def test_check_thresholds(thresholds: dict[str, float], violations: int) -> None:
    assert len(check_thresholds(SUMMARY, thresholds)) == violations


def test_check_thresholds_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="Unknown metric"):
        check_thresholds(SUMMARY, {"hits@5": 0.5})
    with pytest.raises(ValueError, match="names run"):
        check_thresholds(SUMMARY, {"zzz:hit@5": 0.5})


def test_parse_thresholds(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text(json.dumps({"hit@5": 0.9, "accuracy": 0.5}))
    (tmp_path / "t.toml").write_text('[thresholds]\n"hit@5" = 0.7\nfact_recall = 0.6\n')
    assert parse_thresholds(["hit@5=0.8", "run:accuracy = 0.4"]) == {"hit@5": 0.8, "run:accuracy": 0.4}
    assert parse_thresholds(["hit@5=0.8"], tmp_path / "t.json") == {"hit@5": 0.8, "accuracy": 0.5}
    assert parse_thresholds([], tmp_path / "t.toml") == {"hit@5": 0.7, "fact_recall": 0.6}


@pytest.mark.parametrize("item", ["hits@5=0.8", "accuracy", "accuracy=high", "=0.5"])
def test_parse_thresholds_errors(item: str) -> None:
    with pytest.raises(ValueError):
        parse_thresholds([item])


def test_metric_names_in_the_brief_exist() -> None:
    assert {"fact_recall", "hit@5", "abstain_recall", "citation_validity", "accuracy"} <= set(METRICS)


# -- end to end -----------------------------------------------------------------------------------------------------
PASSAGES = {
    "seesaw": "Seesaw achieves a throughput increase of up to 1.78x (1.36x on average) compared to vLLM.",
    "hecate": HECATE,
    "moeshard": MOESHARD,
}
QUESTIONS = [
    Question(id="f1", question="How much faster is Seesaw?", category="factoid", gold_papers=["seesaw"],
             facts=[["1\\.78\\s*x"], ["1\\.36\\s*x"]]),
    Question(id="c1", question="Compare Hecate and MoEShard.", category="compare", gold_papers=["hecate", "moeshard"],
             facts=[["3\\.54x"], ["6\\.4x"]]),
    Question(id="u1", question="Who won the World Cup?", category="unanswerable", expect_abstain=True),
    Question(id="u2", question="What BLEU did the Transformer get?", category="unanswerable", expect_abstain=True),
    Question(id="x1", question="Break please", category="factoid", gold_papers=["seesaw"], facts=[["x"]]),
    Question(id="h1", question="And <script>alert(1)</script>?", category="followup", gold_papers=["hecate"],
             facts=[["3\\.54x"]], history=[{"role": "user", "content": "Tell me about Hecate."}]),
]


def fake_answer(question: Question) -> Answer:
    """A deterministic stand-in for the chain: cites gold passages, answers u2 wrongly, raises on x1."""
    if question.id == "x1":
        raise RuntimeError("model server down")
    if question.id == "u1":
        return Answer(question=question.question, standalone_question=question.question,
                      answer="The papers here do not say.", abstained=True, answerer="fake")
    gold = question.gold_papers or ["seesaw"]
    sources = [Source(n=i, paper_id=p, title=p.title(), chunk_id=f"{p}:0", text=PASSAGES[p], score=1.0 / i)
               for i, p in enumerate(gold, start=1)]
    sentences = [Sentence(text=s.text, citations=[s.n], supported=True) for s in sources]
    if question.id == "h1":  # an unsupported sentence with HTML in it, and a fabricated citation
        sentences.append(Sentence(text="Hecate runs on <b>quantum</b> hardware.", citations=[7], supported=True))
    text = " ".join(f"{s.text} " + "".join(f"[{c}]" for c in s.citations) for s in sentences)
    return Answer(question=question.question, standalone_question=question.question, answer=text, abstained=False,
                  answerer="fake", sources=sources, sentences=sentences, paper_ids=[*gold, "other"])


def test_end_to_end(tmp_path: Path) -> None:
    run = evaluate(QUESTIONS, fake_answer, label="fake", progress=False)
    rows = {r.id: r for r in run.rows}
    assert rows["f1"].failure == "ok" and rows["f1"].facts_found == [True, True]
    assert rows["c1"].retrieved_papers == ["hecate", "moeshard", "other"] and rows["c1"].failure == "ok"
    assert rows["u1"].failure == "ok" and rows["u2"].failure == "missed_abstain"
    assert rows["x1"].failure == "error" and "model server down" in (rows["x1"].error or "")
    assert rows["h1"].failure == "bad_citation" and rows["h1"].invalid_citations == [7]
    assert [s.supported for s in rows["h1"].sentences] == [True, False]  # recomputed, not trusted
    assert run.metrics["accuracy"].k == 4 and run.metrics["accuracy"].n == 6  # f1, c1, u1, h1 (facts found)
    assert run.metrics["fabricated_citations"].value == 1

    summary = write_outputs([run], tmp_path / "out")
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(QUESTIONS)
    first = json.loads(lines[0])
    for key in ("run", "id", "question", "category", "answer", "abstained", "sources", "retrieved_papers",
                "sentences", "facts_found", "latency_ms", "failure"):
        assert key in first
    assert first["run"] == "fake"
    assert {"n", "paper_id", "title", "chunk_id", "text", "score"} <= set(first["sources"][0])

    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {"runs", "per_category", "baseline_diff"} <= set(on_disk)
    assert set(on_disk["runs"]["fake"]) == set(METRICS)
    assert {"value", "k", "n", "lo", "hi"} <= set(on_disk["runs"]["fake"]["hit@5"])
    assert {"factoid", "compare", "followup", "unanswerable"} <= set(on_disk["per_category"]["fake"])
    assert on_disk["baseline_diff"] is None

    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count('<img alt="') == 2 and '<img alt="recall@k per run" src="data:image/png;base64,iVBOR' in html
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "<b>quantum</b>" not in html and "&lt;b&gt;quantum&lt;/b&gt;" in html
    assert "<details>" in html and "s-bad" in html and "s-ok" in html
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| hit@5 |" in md and "## Per category" in md and "<script>" not in md

    value = summary["runs"]["fake"]["hit@5"]["value"]
    assert check_thresholds(summary, {"hit@5": value + 0.01})
    assert not check_thresholds(summary, {"hit@5": value - 0.01})
    assert not check_thresholds(summary, {"fake:hit@5": value})

    again = write_outputs([run], tmp_path / "again", baseline_dir=tmp_path / "out")
    assert again["baseline_diff"]["fake"]["accuracy"]["delta"] == 0
    assert "Against the baseline" in (tmp_path / "again" / "report.html").read_text()


def test_two_runs_side_by_side(tmp_path: Path) -> None:
    runs = [evaluate(QUESTIONS[:4], fake_answer, label=label, progress=False) for label in ("one", "two")]
    summary = write_outputs(runs, tmp_path)
    assert list(summary["runs"]) == ["one", "two"]
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 8
    assert len(check_thresholds(summary, {"two:accuracy": 1.0, "one:accuracy": 1.0})) == 2


def test_missing_baseline_is_a_clear_error(tmp_path: Path) -> None:
    run = evaluate(QUESTIONS[:1], fake_answer, label="fake", progress=False)
    with pytest.raises(FileNotFoundError, match="baseline"):
        write_outputs([run], tmp_path / "out", baseline_dir=tmp_path / "nowhere")


def test_load_questions_reports_the_line(tmp_path: Path) -> None:
    good = QUESTIONS[0].model_dump_json()
    path = tmp_path / "q.jsonl"
    path.write_text(good + "\n" + good.replace('"factoid"', '"trivia"') + "\n")
    with pytest.raises(ValueError, match="line 2"):
        load_questions(path)
    path.write_text(good + "\n" + good + "\n")
    with pytest.raises(ValueError, match="duplicate"):
        load_questions(path)
    path.write_text(good.replace("1\\\\.78", "1\\\\.78(") + "\n")
    with pytest.raises(ValueError, match="cannot be used"):
        load_questions(path)


def test_library_stays_free_of_gradio() -> None:
    code = "import sys, rag.eval.run, rag.eval.report; assert 'gradio' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
