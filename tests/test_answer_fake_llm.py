"""LLM answerers with an in-process fake chat model passed into the Pipeline: prompts, checking, fallbacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from llm_fixtures import FakeChatModel

from rag.answer import ABSTAIN_SENTENCE, Pipeline
from rag.settings import Settings


def _pipe(index_dir: Path, *replies: str, fail: bool = False) -> tuple[Pipeline, FakeChatModel]:
    model = FakeChatModel(replies=list(replies), prompts=[], fail=fail)
    return Pipeline(Settings(data_dir=index_dir, answerer="openai"), chat_model=model), model


def test_a_supported_llm_answer_is_grounded(index_dir):
    pipe, model = _pipe(index_dir, "Seesaw achieves a throughput increase of up to 1.78x compared to vLLM [1].")
    ans = pipe.answer("By how much does Seesaw beat vLLM?")
    assert ans.answerer == "openai" and ans.grounded and not ans.notice
    assert ans.sources[0].paper_id == "seesaw" and "1.78x" in ans.answer
    system, user = model.prompts[0][0].content, model.prompts[0][1].content
    assert ABSTAIN_SENTENCE in system and '<passage n="1"' in user and "By how much does Seesaw beat vLLM?" in user


def test_one_unsupported_sentence_makes_the_answer_ungrounded(index_dir):
    pipe, _ = _pipe(index_dir, "Seesaw achieves a throughput increase of up to 1.78x compared to vLLM [1]. "
                               "Seesaw was trained on 9000 TPUs for a year [1]. Seesaw is an inference engine [1].")
    ans = pipe.answer("By how much does Seesaw beat vLLM?")
    assert not ans.grounded
    assert [s.supported for s in ans.sentences].count(False) == 1
    assert "1 of 3 sentences is not supported" in ans.notice and ans.evidence


def test_a_sentence_without_a_citation_is_attributed_only_where_a_passage_supports_it(index_dir):
    """The 1.5B writer states a passage's fact and forgets its [n]: the sentence is cited after the fact to the
    passage the support check finds for it; a claim no passage supports stays uncited and unsupported."""
    pipe, _ = _pipe(index_dir, "Seesaw achieves a throughput increase of up to 1.78x compared to vLLM. "
                               "Seesaw was trained on 9000 TPUs for a year.")
    ans = pipe.answer("By how much does Seesaw beat vLLM?")
    first, second = ans.sentences
    assert first.supported and len(first.citations) == 1
    assert ans.source(first.citations[0]).paper_id == "seesaw" and f"vLLM. [{first.citations[0]}]" in ans.answer
    assert not second.supported and not second.citations and not ans.grounded


def test_a_fabricated_citation_is_removed_and_reported(index_dir):
    pipe, _ = _pipe(index_dir, "Seesaw achieves up to 1.78x compared to vLLM [1][42].")
    ans = pipe.answer("By how much does Seesaw beat vLLM?")
    assert "[42]" not in ans.answer and ans.removed_citations == [42] and not ans.grounded


def test_a_failing_model_gives_a_notice_and_the_extractive_answer(index_dir):
    pipe, _ = _pipe(index_dir, "unused", fail=True)
    events = list(pipe.stream("What is 2BP?"))
    kinds = [k for k, _ in events]
    assert "reset" in kinds
    ans = events[-1][1]
    assert ans.answerer == "extractive" and "Showing the extractive answer instead" in ans.notice
    assert "2-stage backpropagation" in ans.answer


def test_a_writer_that_declines_what_the_decision_answers_gives_the_extractive_answer(index_dir):
    """The 1.5B writer replied 'The papers here do not say.' to 6 of 10 answerable questions; whether to answer is the
    decision's, so the reply is replaced by the extractive answer from the same passages, and the notice says why."""
    pipe, _ = _pipe(index_dir, "The papers here do not say.")
    events = list(pipe.stream("What is 2BP?"))
    ans = events[-1][1]
    assert ("reset", ans.notice) in events and not ans.abstained and ans.answerer == "extractive"
    assert "2-stage backpropagation" in ans.answer.lower() and ans.grounded
    assert ans.notice.startswith("The openai model found no answer in the passages, which were judged to answer")


def test_abstention_happens_before_the_model_is_called(index_dir):
    pipe, model = _pipe(index_dir, "Chinchilla is compute-optimal [1].")
    ans = pipe.answer("What does the Chinchilla paper say about compute-optimal training?")
    assert ans.abstained and model.prompts == []


@pytest.mark.parametrize(("reply", "want"), [
    ("What are the two mechanisms of Universal Checkpointing?",
     "What are the two mechanisms of Universal Checkpointing?"),
    ("I think you mean something about cooking.", "What were those two mechanisms again?"),
])
def test_llm_condense_is_used_only_when_it_names_a_paper(index_dir, reply, want):
    pipe, model = _pipe(index_dir, reply, "The universal checkpoint format is one mechanism [1].")
    history = [{"role": "user", "content": "Tell me about checkpoint formats"},
               {"role": "assistant", "content": "There are several formats."}]
    state = pipe.prepare("What were those two mechanisms again?", history=history)
    assert state.analysis.standalone == want
    assert "Follow-up question: What were those two mechanisms again?" in model.prompts[0][1].content


def _real(index_dir: Path, url: str, **settings: object) -> Pipeline:
    return Pipeline(Settings(data_dir=index_dir, answerer="openai", llm_base_url=url, llm_api_key="sk-test",
                             llm_max_retries=0, llm_timeout=30, **settings))


def test_one_deadline_covers_condense_and_answer_against_a_trickling_server(index_dir, fault_llm):
    import time

    from fault_server import Trickle

    fault_llm.script(Trickle(), Trickle())  # the condense call and the answer call both trickle
    pipe = _real(index_dir, fault_llm.url, answer_timeout=3)
    history = [{"role": "user", "content": "Tell me about checkpoint formats"},
               {"role": "assistant", "content": "There are several formats."}]
    t0 = time.monotonic()
    ans = pipe.answer("What were those two mechanisms again?", history=history)
    elapsed = time.monotonic() - t0
    assert elapsed < 3 + 2.5, elapsed  # not 2 x 3 s, and nowhere near the 30 s per-read timeout
    assert "did not finish within 3 s" in ans.notice and ans.answerer == "extractive"


def test_a_flooding_server_is_cut_at_the_character_cap(index_dir, fault_llm):
    from fault_server import Flood

    fault_llm.script(Flood())
    pipe = _real(index_dir, fault_llm.url, llm_max_chars=5000)
    events = list(pipe.stream("By how much does Seesaw beat vLLM?"))
    text = "".join(v for k, v in events if k == "text")
    ans = events[-1][1]
    assert len(text) <= 5000 and "cut at 5,000 characters" in ans.notice
    assert not ans.grounded and ans.evidence  # a flood is not an answer: the extractive evidence is shown


def test_an_ungrounded_answer_is_reported_over_the_ask_api(index_dir):
    """Issue 18: 1 of 3 sentences fabricated came back over /ask as grounded=True with no notice."""
    from conftest import serve_app
    from gradio_client import Client

    pipe, _ = _pipe(index_dir, "Seesaw achieves a throughput increase of up to 1.78x compared to vLLM [1]. "
                               "Seesaw was trained on 9000 TPUs for a year [1]. Seesaw is an inference engine [1].")
    with serve_app(pipe) as url:
        got = Client(url + "/", verbose=False).predict("By how much does Seesaw beat vLLM?", api_name="/ask")
    assert got["grounded"] is False and got["answerer"] == "openai"
    assert [s["supported"] for s in got["sentences"]].count(False) == 1
    assert "1 of 3 sentences is not supported" in got["notice"]
