"""tools/distill.py: the pairs it learns from (the product's own judgments, plus gold and random papers for tune
questions only) and the comparison it reports, with an in-process fake reader over the real index. The training step
needs torch, which the test suite does not install; the README gives what it measured."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_reader import FakeReader

from rag.answer import Pipeline
from rag.eval.questions import Question
from rag.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import distill

QUESTIONS = [
    ("mine-tune", Question(id="a", question="How much faster is Seesaw than vLLM?", category="factoid",
                           gold_papers=["seesaw"], split="tune")),
    ("mine-tune", Question(id="b", question="What learning rate did Datarus-R1 use?", category="unanswerable",
                           gold_papers=["datarus-r1"], expect_abstain=True, split="tune")),
    ("mine-test", Question(id="c", question="How much faster is 2BP than the baseline?", category="factoid",
                           gold_papers=["2bp"], split="test")),
    ("mine-test", Question(id="d", question="Give an overview of the papers.", category="factoid", split="test")),
    ("mine-test", Question(id="e", question="Which inference engine re-shards the model between prefill and decode?",
                           category="factoid", gold_papers=["seesaw"], split="test")),
]


@pytest.fixture(scope="module")
def pipe(index_dir: Path) -> Pipeline:
    reader = FakeReader({"Seesaw": 0.9, "Datarus": 0.7, "2BP": 0.8}, default=0.1)
    return Pipeline(Settings(data_dir=index_dir, reader="on"), reader=reader)


def test_pairs_are_the_products_judgments_and_only_tune_questions_get_more(pipe: Pipeline) -> None:
    rows = distill.pairs(pipe, per_question=6, questions=QUESTIONS)
    by_q: dict[str, list[dict]] = {}
    for r in rows:
        by_q.setdefault(r["qid"], []).append(r)
    assert "d" not in by_q  # an overview is never read, so it gives no pair
    # A tune question: what the product reads, its gold paper, random others, up to six papers, none twice.
    a = by_q["a"]
    assert len(a) == 6 and len({r["paper"] for r in a}) == 6
    assert [r["paper"] for r in a if r["product"]] == ["seesaw"]  # the question names it: only it is read
    assert {r["paper"]: r["gold"] for r in a}["seesaw"] == 1 and sum(r["gold"] for r in a) == 1
    assert {r["paper"]: r["teacher"] for r in a}["seesaw"] == 0.9
    assert all(r["passage"] and r["title"] and r["split"] == "tune" for r in a)
    # A question to abstain on: its paper is read, and labelled as not answering it.
    assert {r["paper"]: r["gold"] for r in by_q["b"]}["datarus-r1"] == 0
    # A test question: only the product's judgments, never extra ones.
    assert [(r["paper"], r["product"], r["split"]) for r in by_q["c"]] == [("2bp", True, "test")]


def test_auc_is_the_chance_a_positive_outranks_a_negative() -> None:
    assert distill._auc([1, 0, 1, 0], [0.9, 0.1, 0.8, 0.2]) == 1.0
    assert distill._auc([1, 0, 1, 0], [0.1, 0.9, 0.2, 0.8]) == 0.0
    assert distill._auc([1, 0], [0.5, 0.5]) == 0.5
    assert distill._auc([1, 1, 0], [0.5, 0.4, 0.45]) == 0.5
    assert distill._auc([1, 1], [0.5, 0.4]) is None  # no negative pair: undefined


def test_compare_scores_a_student_that_copies_the_teacher_the_same(pipe: Pipeline) -> None:
    rows = distill.pairs(pipe, per_question=4, questions=QUESTIONS)
    same = {(r["set"], r["qid"], r["paper"]): r["teacher"] for r in rows}
    report = distill.compare(pipe, rows, same, questions=QUESTIONS)
    assert report["decisions"]["teacher"] == report["decisions"]["student"]
    assert report["auc"]["answers"]["teacher"] == report["auc"]["answers"]["student"]
    assert report["decisions"]["n"] == {"tune": 2, "test": 3}
    teacher_auc = report["auc"]["answers"]["teacher"]
    assert teacher_auc is not None and teacher_auc > 0.5  # question e reads Seesaw and others: both labels
    flipped = distill.compare(pipe, rows, {k: 1 - p for k, p in same.items()}, questions=QUESTIONS)
    assert flipped["auc"]["answers"]["student"] == round(1 - teacher_auc, 3)
    assert flipped["auc"]["answers"]["teacher"] == teacher_auc
