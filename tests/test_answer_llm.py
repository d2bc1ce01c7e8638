"""The openai and local answerers through the whole chain, against a real llama.cpp server (SmolLM2-135M)."""

from __future__ import annotations

import re

import pytest
from llm_fixtures import dead_llm_url, llama_server  # noqa: F401

from rag.answer import ABSTAIN_SENTENCE, Pipeline
from rag.settings import Settings

pytestmark = pytest.mark.slow
QUESTION = "By how much does Seesaw beat vLLM?"


@pytest.fixture
def llm_pipeline(index_dir, llama_server):  # noqa: F811
    return Pipeline(Settings(data_dir=index_dir, answerer="openai", llm_base_url=llama_server.base_url,
                             llm_model=llama_server.model, llm_timeout=60, llm_max_tokens=120))


def _assert_checked(ans):
    """Whatever the weak model wrote: citations are real, every sentence is judged, ungrounded is marked."""
    n_sources = len(ans.sources)
    for n in (int(x) for x in re.findall(r"\[(\d+)\]", ans.answer)):
        assert 1 <= n <= n_sources, ans.answer
    assert all(isinstance(s.supported, bool) for s in ans.sentences)
    if not ans.grounded:
        assert ans.evidence and re.search(r"\[\d+\]", ans.evidence), "ungrounded answers show extractive evidence"
        assert "not backed" in ans.notice


def test_openai_answerer_against_llama_cpp(llm_pipeline):
    ans = llm_pipeline.answer(QUESTION)
    assert ans.answerer == "openai" and ans.answer.strip()
    assert not ans.abstained or ans.answer.startswith(ABSTAIN_SENTENCE)
    _assert_checked(ans)


def test_openai_answerer_streams(llm_pipeline):
    events = list(llm_pipeline.stream(QUESTION))
    deltas = [v for k, v in events if k == "text"]
    final = events[-1][1]
    assert len(deltas) >= 2, "the answer arrives in pieces"
    assert final.answerer == "openai"
    assert final.timings_ms["first_text"] <= final.timings_ms["total"]
    _assert_checked(final)


def test_comparison_through_the_llm_is_checked_per_cell(llm_pipeline):
    ans = llm_pipeline.answer("Compare Seesaw and 2BP")
    assert {s.paper_id for s in ans.sources} >= {"seesaw", "2bp"}
    _assert_checked(ans)


def test_abstention_happens_before_the_llm(llm_pipeline, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the LLM must not be called for an unanswerable question")

    monkeypatch.setattr("rag.answer.generate.stream", boom)
    ans = llm_pipeline.answer("What does the Chinchilla paper say about compute-optimal training?")
    assert ans.abstained and ans.answer.startswith(ABSTAIN_SENTENCE)


def test_dead_endpoint_gives_notice_and_extractive_answer(index_dir, dead_llm_url):  # noqa: F811
    pipe = Pipeline(Settings(data_dir=index_dir, answerer="openai", llm_base_url=dead_llm_url, llm_timeout=5,
                             llm_max_retries=0, llm_api_key="sk-test-SECRET"))
    ans = pipe.answer(QUESTION)
    assert ans.answerer == "extractive" and "1.78x" in ans.answer
    assert dead_llm_url.split("/v1")[0].split("//")[1] in ans.notice and "extractive" in ans.notice
    assert "SECRET" not in ans.notice + ans.answer and "Traceback" not in ans.notice
    events = list(pipe.stream(QUESTION))
    assert ("reset" in [k for k, _ in events]) and events[-1][1].answerer == "extractive"


def test_local_answerer_starts_its_own_server(index_dir, llama_server):  # noqa: F811
    pytest.importorskip("llama_cpp")
    from rag.llm.local import stop_local_server

    pipe = Pipeline(Settings(data_dir=index_dir, answerer="local", llm_max_tokens=60))
    try:
        ans = pipe.answer(QUESTION)
        assert ans.answerer == "local" and ans.answer.strip()
        _assert_checked(ans)
    finally:
        stop_local_server()
