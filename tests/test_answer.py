"""The answer chain on the real corpus with the extractive answerer; prompts; citation checking."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.answer import ABSTAIN_SENTENCE, QuestionError, condense
from rag.citations import check_citations
from rag.prompts import EXPECTED, PromptError, load_prompt, prompt_names
from rag.types import Source


def _cited_papers(ans) -> set[str]:
    by_n = {s.n: s.paper_id for s in ans.sources}
    return {by_n[n] for s in ans.sentences for n in s.citations}


@pytest.mark.parametrize(("question", "paper", "fact"), [
    ("By how much does Seesaw beat vLLM?", "seesaw", r"1\.78x"),
    ("What is 2BP?", "2bp", r"2-stage backpropagation"),
    ("How many notebook episodes did the Datarus data generator produce?", "datarus-r1", r"144 000"),
    ("What does the InternEvo paper propose?", "internevo", r"\bBuff\b"),
    ("How large is the Thingi10K dataset?", "thingi10k", r"10,000"),
    ("What speedup does Hecate achieve?", "hecate", r"3\.54x"),
])
def test_extractive_answers_contain_facts_with_valid_citations(pipeline, question, paper, fact):
    ans = pipeline.answer(question)
    assert not ans.abstained, ans.notice
    assert re.search(fact, ans.answer, re.IGNORECASE), ans.answer
    assert paper in _cited_papers(ans)
    cited = [n for s in ans.sentences for n in s.citations]
    assert cited and all(1 <= n <= len(ans.sources) for n in cited)
    assert all(s.supported for s in ans.sentences)
    assert ans.answerer == "extractive" and ans.grounded


@pytest.mark.parametrize("question", [
    "What does the Chinchilla paper say about compute-optimal training?",
    "What batch size did GShard use for its largest model?",
    "How do I bake sourdough bread?",
])
def test_out_of_corpus_questions_abstain(pipeline, question):
    ans = pipeline.answer(question)
    assert ans.abstained, ans.answer
    assert ans.answer.startswith(ABSTAIN_SENTENCE) and "Closest:" in ans.answer
    assert ans.closest_papers and not ans.sentences


def test_comparison_table_names_every_paper(pipeline):
    ans = pipeline.answer("Compare Seesaw and 2BP")
    assert ans.answer.startswith("| Paper |")
    rows = [ln for ln in ans.answer.splitlines() if ln.startswith("| **")]
    assert len(rows) == 2 and "Seesaw" in rows[0] and "2BP" in rows[1]
    assert {"seesaw", "2bp"} <= _cited_papers(ans)
    assert all(re.search(r"\[\d+\]", cell) or cell.strip() == "not stated"
               for row in rows for cell in row.strip("|").split("|")[1:])


def test_three_way_comparison_by_paper_ids(pipeline):
    ans = pipeline.answer("How do these differ in handling experts?", paper_ids=["gshard", "hecate", "moeshard"],
                          compare=True)
    assert len([ln for ln in ans.answer.splitlines() if ln.startswith("| **")]) == 3
    assert {"gshard", "hecate", "moeshard"} <= {s.paper_id for s in ans.sources}


def test_follow_up_resolves_its(pipeline):
    history = [{"role": "user", "content": "What is Universal Checkpointing?"},
               {"role": "assistant", "content": "Universal Checkpointing is a technique for checkpoints [1]."}]
    ans = pipeline.answer("and what are its two mechanisms?", history=history)
    assert "Universal Checkpointing" in ans.standalone_question
    assert "universal-checkpointing" in _cited_papers(ans)
    assert not ans.abstained


@pytest.mark.parametrize(("question", "history", "want"), [
    ("and how fast is it?", [{"role": "user", "content": "What is Seesaw?"}], "How fast is Seesaw?"),
    ("What about its memory use?", [{"role": "user", "content": "Tell me about Hecate"}], "What about Hecate's memory use?"),
    ("What is GShard?", [{"role": "user", "content": "What is Seesaw?"}], "What is GShard?"),
    ("what is it?", [], "what is it?"),
    ("and what is its main result?", [{"role": "user", "content": "What is Seesaw?"},
                                      {"role": "assistant", "content": "The papers here do not say. Closest: 2BP; Hecate."}],
     "What is Seesaw's main result?"),
])
def test_condense_table(pipeline, question, history, want):
    assert condense(question, history, pipeline.papers())[0] == want


@pytest.mark.parametrize("bad", ["", "   ", "x" * 100_000, "nul\x00byte", "\ud800", "bell\x07", "???"])
def test_bad_questions_fail_before_any_work(pipeline, bad):
    with pytest.raises(QuestionError):
        pipeline.answer(bad)


def test_restriction_to_papers(pipeline):
    ans = pipeline.answer("How does it reduce communication?", paper_ids=["paro"])
    assert {s.paper_id for s in ans.sources} == {"paro"}


def test_stream_yields_sources_then_text_then_answer(pipeline):
    events = list(pipeline.stream("What is MoEShard?"))
    kinds = [k for k, _ in events]
    assert kinds[0] == "standalone" and kinds[1] == "sources" and kinds[-1] == "answer"
    text = "".join(v for k, v in events if k == "text")
    assert text == events[-1][1].answer and "MoEShard" in text


def test_every_prompt_file_loads_with_its_placeholders():
    assert set(prompt_names()) >= set(EXPECTED)
    for name in prompt_names():
        prompt = load_prompt(name)
        assert prompt.variables == EXPECTED[name]
    msgs = load_prompt("answer").messages(passages="P", question="Q", abstain=ABSTAIN_SENTENCE, max_sentences=3,
                                          canary="C")
    assert ABSTAIN_SENTENCE in msgs[0][1] and "Q" in msgs[1][1]


def test_prompt_with_wrong_placeholders_is_refused(tmp_path: Path):
    (tmp_path / "answer.md").write_text("System {passages}\n===\nUser {question} {typo}\n")
    with pytest.raises(PromptError, match="placeholders"):
        load_prompt("answer", tmp_path)
    (tmp_path / "compare.md").write_text("no separator")
    with pytest.raises(PromptError, match="==="):
        load_prompt("compare", tmp_path)


def test_citation_check_removes_fabricated_and_marks_unsupported():
    src = [Source(n=1, paper_id="seesaw", title="Seesaw", chunk_id="c1", score=1.0,
                  text="Seesaw achieves a throughput increase of up to 1.78x compared to vLLM.")]
    checked = check_citations("Seesaw achieves up to 1.78x higher throughput than vLLM [1]. "
                              "It was trained on 10 TPUs [7]. The sky is green [1].", src)
    assert "[7]" not in checked.text and checked.fabricated == 1
    assert [s.supported for s in checked.sentences] == [True, False, False]
    assert not checked.grounded


@pytest.mark.parametrize(("reply", "want"), [
    ("What are the two mechanisms of Universal Checkpointing?", "What are the two mechanisms of Universal Checkpointing?"),
    ("I think you mean something about cooking.", "What were those two mechanisms again?"),
])
def test_llm_condense_is_used_only_when_it_names_a_paper(pipeline, monkeypatch, reply, want):
    import rag.llm

    monkeypatch.setattr(rag.llm, "complete", lambda llm, messages: reply)  # the model boundary
    monkeypatch.setattr(type(pipeline), "_chat_model", lambda self, answerer: object())
    state = {"question": "What were those two mechanisms again?", "answerer": "openai",
             "history": [{"role": "user", "content": "Tell me about checkpoint formats"},
                         {"role": "assistant", "content": "There are several formats."}]}
    assert pipeline._condense(state)["standalone"] == want
