"""The evaluation question set: well-formed, covering every paper, and its facts present in the gold abstracts."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rag.eval.metrics import fact_found
from rag.eval.questions import CATEGORIES, load_questions
from rag.settings import BLIND_SETS, CORPUS_PATH, QUESTIONS_PATH

REQUIRED = {"id", "question", "category", "gold_papers", "facts", "history", "expect_abstain"}


def _records() -> list[dict[str, Any]]:
    """Every non-blank line of the question set, parsed."""
    lines = [line for line in QUESTIONS_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


RECORDS = _records()
PAPERS = {p["id"]: p for p in map(json.loads, CORPUS_PATH.read_text(encoding="utf-8").splitlines()) if p}
ANSWERABLE = [q for q in RECORDS if not q["expect_abstain"]]


def test_every_line_is_a_json_object() -> None:
    for lineno, line in enumerate(QUESTIONS_PATH.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            assert isinstance(json.loads(line), dict), f"line {lineno} is not a JSON object"


def test_loads_as_typed_questions() -> None:
    assert len(load_questions(QUESTIONS_PATH)) == len(RECORDS)


def test_size() -> None:
    assert len(RECORDS) >= 60


@pytest.mark.parametrize("q", RECORDS, ids=lambda q: q.get("id", "?"))
def test_record_shape(q: dict[str, Any]) -> None:
    assert not REQUIRED - set(q), f"missing keys: {REQUIRED - set(q)}"
    assert q["category"] in CATEGORIES
    assert isinstance(q["question"], str) and q["question"].strip()
    assert all(isinstance(alts, list) and alts and all(isinstance(a, str) for a in alts) for alts in q["facts"])
    for alternatives in q["facts"]:
        for pattern in alternatives:
            re.compile(pattern)
    unknown = [p for p in q["gold_papers"] if p not in PAPERS]
    assert not unknown, f"unknown gold paper ids: {unknown}"


def test_ids_unique() -> None:
    dupes = [i for i, c in Counter(q["id"] for q in RECORDS).items() if c > 1]
    assert not dupes


def test_every_paper_is_gold_somewhere() -> None:
    gold = {p for q in RECORDS for p in q["gold_papers"]}
    assert not set(PAPERS) - gold, f"papers never asked about: {sorted(set(PAPERS) - gold)}"


def test_every_category_present() -> None:
    assert set(CATEGORIES) <= {q["category"] for q in RECORDS}


@pytest.mark.parametrize("q", RECORDS, ids=lambda q: q["id"])
def test_unanswerable_iff_abstain_without_facts(q: dict[str, Any]) -> None:
    unanswerable = q["category"] == "unanswerable"
    assert unanswerable == q["expect_abstain"]
    if unanswerable:
        assert q["facts"] == [] and q["gold_papers"] == []
    else:
        assert q["facts"] and q["gold_papers"]


@pytest.mark.parametrize("q", [q for q in RECORDS if q["category"] == "followup"], ids=lambda q: q["id"])
def test_followups_have_history(q: dict[str, Any]) -> None:
    assert q["history"], "a follow-up needs the earlier turns"
    assert all({"role", "content"} <= set(turn) and turn["content"].strip() for turn in q["history"])
    assert {turn["role"] for turn in q["history"]} <= {"user", "assistant"}


@pytest.mark.parametrize("q", [q for q in RECORDS if q["category"] in {"compare", "multi"}], ids=lambda q: q["id"])
def test_comparisons_name_several_papers(q: dict[str, Any]) -> None:
    assert len(q["gold_papers"]) >= 2


@pytest.mark.parametrize("q", ANSWERABLE, ids=lambda q: q["id"])
def test_each_fact_is_in_a_gold_abstract(q: dict[str, Any]) -> None:
    for alternatives in q["facts"]:
        assert any(fact_found(alternatives, PAPERS[p]["abstract"]) for p in q["gold_papers"]), (
            f"{q['id']}: no gold abstract matches {alternatives}"
        )


# -- the blind sets (dev: 96 questions, fresh: 100, fresh2: 120, fresh3: 80, fresh4: 90, fresh5: 66), each split into tune and
# a frozen test half
@pytest.mark.parametrize("path", BLIND_SETS, ids=["dev", "fresh", "fresh2", "fresh3", "fresh4", "fresh5"])
def test_blind_sets_are_valid_and_split(path: Path) -> None:
    qs = load_questions(path)
    assert len({q.id for q in qs}) == len(qs) >= 60
    splits = [q.split for q in qs]
    assert splits.count("tune") == splits.count("test") == len(qs) // 2
    for q in qs:
        assert set(q.gold_papers) | set(q.ok_papers) <= set(PAPERS), q.id
        assert q.expect_abstain or q.gold_papers, q.id  # an unanswerable one may name the paper it is about
        if q.history:
            assert q.history[-1]["role"] == "assistant", q.id
        gold_text = " ".join(PAPERS[p]["title"] + " " + PAPERS[p]["abstract"] for p in q.gold_papers)
        for alternatives in q.facts:  # every key fact is in the abstracts the answer must cite
            assert fact_found(alternatives, gold_text), (q.id, alternatives)
