"""Evaluation from the app (issue 15), the library side: uploaded question sets checked line by line, key facts as
people write them, the library's own questions, drafts and feedback, one run at a time with progress, two runs
compared, and draft questions from the seed papers' abstracts."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
from test_evaluate import QUESTIONS, fake_answer

from rag.corpus import load_corpus
from rag.eval import library
from rag.eval.compare import compare_runs
from rag.eval.drafts import draft_question_set, draft_questions
from rag.eval.facts import fact_pattern, fact_text, format_facts, guess_category, parse_facts, suggest_facts
from rag.eval.metrics import fact_found
from rag.eval.questions import Question, check_question_set, dump_questions, load_questions
from rag.eval.session import EvalBusy, EvalRunner, list_evaluations
from rag.settings import CORPUS_PATH, QUESTIONS_PATH
from rag.types import Answer, Sentence, Source

GOOD = '{"id": "a1", "question": "What is 2BP?", "category": "factoid", "gold_papers": ["2bp"], "facts": [["2BP"]]}'


def test_question_set_errors_name_their_lines() -> None:
    text = "\n".join([GOOD, GOOD.replace("a1", "a2"), GOOD.replace("a1", "a3").replace("factoid", "trivia"),
                      "{not json", GOOD.replace('"facts": [["2BP"]]', '"facts": [["(2BP"]]').replace("a1", "a5"),
                      GOOD, ""])
    check = check_question_set(text, papers=["2bp"])
    assert not check.ok and [q.id for q in check.questions] == ["a1", "a2"]
    assert check.errors[0].startswith("line 3: category: Input should be")
    assert check.errors[1].startswith("line 4: not valid JSON")
    assert check.errors[2].startswith("line 5: facts:") and "cannot be used" in check.errors[2]
    assert check.errors[3] == "line 6: duplicate question id 'a1' (first on line 1)"


def test_question_set_warnings_and_empty() -> None:
    check = check_question_set(GOOD.replace('["2bp"]', '["nope"]'), papers=["2bp"])
    assert check.ok and check.warnings == ["line 1: gold paper(s) nope not in this library"]
    assert check_question_set("\n\n").errors == ["the file holds no questions (one JSON object per line)"]
    bundled = check_question_set(QUESTIONS_PATH.read_text(encoding="utf-8"))
    assert bundled.ok and len(bundled.questions) == 75


@pytest.mark.parametrize(("text", "matches", "misses"), [
    ("1.78x", ["1.78×", "1.78 times", "1.78x"], ["1.7x", "11.78"]),
    ("30%", ["30 %", "by 30%"], ["3%"]),
    ("vLLM", ["VLLM", "vLLM"], ["vLM"]),
    ("naive continual pretraining", ["naive  continual\npretraining"], ["naive pretraining"]),
    ("re:1\\.(?:7|8)x", ["1.7x", "1.8x"], ["1.9x"]),
])
def test_fact_patterns(text: str, matches: list[str], misses: list[str]) -> None:
    pattern = fact_pattern(text)
    assert all(fact_found([pattern], m) for m in matches) and not any(fact_found([pattern], m) for m in misses)
    assert fact_text(pattern) == text


def test_facts_form_round_trip() -> None:
    facts = parse_facts("1.78x | 1.78 times\n\nvLLM\n")  # "1.78 times" is the same fact as "1.78x"
    assert len(facts) == 2 and facts[1] == ["vLLM"]
    assert format_facts(facts) == "1.78x | 1.78x\nvLLM"
    assert parse_facts(format_facts([["\\bBuff\\b"]])) == [["\\bBuff\\b"]]  # a hand-written regex survives


def answer_citing() -> Answer:
    sources = [Source(n=1, paper_id="seesaw", title="Seesaw", chunk_id="s:0", text="…", score=1.0),
               Source(n=2, paper_id="2bp", title="2BP", chunk_id="b:0", text="…", score=0.5)]
    sentences = [Sentence(text="Seesaw reaches 1.78x the throughput of vLLM on 8 GPUs.", citations=[1]),
                 Sentence(text="In general this is hard.", citations=[])]
    return Answer(question="How much faster is Seesaw?", standalone_question="", answer="…", abstained=False,
                  answerer="extractive", sources=sources, sentences=sentences)


def test_suggested_facts_come_from_cited_sentences() -> None:
    facts = suggest_facts(answer_citing())
    assert facts[:2] == ["1.78x", "8 GPUs"] and "vLLM" in facts and "In" not in facts
    assert guess_category("Compare A and B", [], [], False) == "compare"
    assert guess_category("And its speedup?", ["a"], [{"role": "user"}], False) == "followup"
    assert guess_category("What is X?", ["a", "b"], [], False) == "multi"
    assert guess_category("What is X?", [], [], True) == "unanswerable"


def test_library_questions_drafts_and_feedback(tmp_path: Path) -> None:
    q = Question(id="", question="What is 2BP?", category="factoid", gold_papers=["2bp"], facts=[["2BP"]])
    saved = [library.add_question(tmp_path, q) for _ in range(2)]
    assert [s.id for s in saved] == ["lib-001", "lib-002"]
    assert load_questions(library.library_questions_path(tmp_path)) == library.library_questions(tmp_path)
    drafts = library.save_drafts(tmp_path, [q.model_copy(update={"id": "draft-x"}),
                                            Question(id="draft-y", question="Other?", category="factoid",
                                                     facts=[["x"]])])
    assert [d.id for d in drafts] == ["draft-y"]  # the same question as one accepted is not proposed again
    library.add_question(tmp_path, library.drafts(tmp_path)[0])
    assert library.drafts(tmp_path) == [] and library.library_questions(tmp_path)[-1].id == "draft-y"
    for rating in ("up", "down", "down"):
        library.record_feedback(tmp_path, library.Feedback(rating=rating, question="What is 2BP?", answer="a"))
    library.feedback_path(tmp_path).open("a").write("garbage\n")
    counts = library.feedback_counts(tmp_path)
    assert (counts.up, counts.down, counts.answers, counts.most_down) == (1, 2, 1, [("What is 2BP?", 2)])


def test_drafts_from_the_seed_papers_state_only_their_abstracts() -> None:
    papers = load_corpus(CORPUS_PATH)
    drafts = draft_question_set(papers)
    assert len(drafts) >= len(papers)
    by_id = {p.id: p for p in papers}
    for d in drafts:
        assert d.id.startswith("draft-") and d.gold_papers and d.category == "factoid"
        abstract = by_id[d.gold_papers[0]].abstract
        assert d.facts and all(fact_found(f, abstract) for f in d.facts), d
    seesaw = {d.id: d for d in draft_questions(by_id["seesaw"])}
    assert seesaw["draft-seesaw-headline"].question == "By how much does Seesaw improve throughput over vLLM?"
    assert fact_found(seesaw["draft-seesaw-headline"].facts[0], "1.78x")
    assert seesaw["draft-seesaw-baseline"].facts == [["vLLM"]]
    assert check_question_set(dump_questions(drafts)).ok  # drafts are in the question-set schema


def test_one_evaluation_at_a_time_with_progress_then_compared(tmp_path: Path) -> None:
    runner = EvalRunner(tmp_path)
    gate, seen = threading.Event(), []

    def slow(answerer: str, retrieval: str):  # type: ignore[no-untyped-def]
        def answer(q: Question) -> Answer:
            gate.wait(10)
            return fake_answer(q)
        return answer

    done: list = []
    worker = threading.Thread(target=lambda: done.append(runner.run(
        None, QUESTIONS[:3], "test", ["a", "b"], ["hybrid"], on_progress=lambda *p: seen.append(p),
        answer_fn=slow)))  # type: ignore[arg-type]
    worker.start()
    while runner.busy() is None:
        pass
    with pytest.raises(EvalBusy, match=r"Another evaluation is running: 0 of 6 answers"):
        runner.run(None, QUESTIONS[:1], "test", ["a"], ["hybrid"], answer_fn=slow)  # type: ignore[arg-type]
    gate.set()
    worker.join(30)
    assert seen[-1] == (6, 6, "b/hybrid") and len(seen) == 6 and runner.busy() is None
    evaluation = done[0]
    assert evaluation.labels == ["a/hybrid", "b/hybrid"] and evaluation.questions == 3
    assert {p.name for p in evaluation.path.iterdir()} >= {"report.html", "report.md", "results.jsonl", "meta.json"}
    assert list_evaluations(tmp_path) == [evaluation]
    summary = evaluation.summary
    rows_a = evaluation.rows("a/hybrid")
    rows_b = [dict(r, facts_found=[False] * len(r["facts_found"])) if r["id"] == "f1" else r
              for r in evaluation.rows("b/hybrid")]
    cmp = compare_runs("a", summary["runs"]["a/hybrid"], rows_a, "b", summary["runs"]["b/hybrid"], rows_b)
    assert cmp.common == 3 and [c.id for c in cmp.broken] == ["f1"] and not cmp.fixed
    accuracy = next(m for m in cmp.metrics if m.name == "accuracy")
    assert accuracy.delta == 0 and accuracy.better is None
    assert json.loads((evaluation.path / "meta.json").read_text())["question_set"] == "test"
    assert re.match(r"\d{8}-\d{6}-\d{3}$", evaluation.id)


def test_cli_library_and_draft(tmp_path: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from rag import cli

    result = CliRunner().invoke(cli.app, ["eval", "--library"])
    assert result.exit_code == 1 and "No saved questions at" in result.output
    result = CliRunner().invoke(cli.app, ["eval", "--library", "--questions", str(QUESTIONS_PATH)])
    assert result.exit_code == 2 and "not both" in result.output
    monkeypatch.setenv("RAG_DATA_DIR", str(index_dir))
    result = CliRunner().invoke(cli.app, ["eval", "--draft"])
    assert result.exit_code == 0, result.output
    assert "draft-seesaw-headline: By how much does Seesaw improve throughput over vLLM?" in result.output
    assert len(library.drafts(index_dir)) >= 21 and not library.library_questions(index_dir)
    library.drafts_path(index_dir).unlink()


def test_new_modules_stay_free_of_gradio() -> None:
    import subprocess
    import sys

    code = ("import sys, rag.eval.library, rag.eval.drafts, rag.eval.facts, rag.eval.session, rag.eval.compare; "
            "assert 'gradio' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
