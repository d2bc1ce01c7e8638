"""rag.collection (paper cards, figures split into metric/value/baseline, checked example questions) and the
stream and notice fixes of issue 13 (prompt tags split over deltas; the notice counts the sentences marked)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.answer.generate import strip_prompt_tags
from rag.answer.verify import flagged, not_backed
from rag.collection import (
    ExampleCache,
    Result,
    candidate_questions,
    comparable,
    figure_of,
    paper_card,
    reported_results,
)
from rag.types import Answer, Paper, Sentence, Source

ROOT = Path(__file__).resolve().parent.parent
PAPERS = {p["id"]: Paper(**p) for p in map(json.loads, (ROOT / "corpus" / "papers.jsonl").open(encoding="utf-8"))}


@pytest.mark.parametrize(("sentence", "value", "metric", "baseline", "qualifier", "claim", "setting"), [
    (("Our evaluation demonstrates that Seesaw achieves a throughput increase of up to 1.78x (1.36x on average) "
      "compared to vLLM, the most widely used state-of-the-art LLM inference engine."), "1.78x", "throughput", "vLLM",
     "up to", "throughput increase of up to 1.78x (1.36x on average)", ""),
    (("Using 2BP, we were able to achieve a 1.70x increase in throughput compared to traditional methods when "
      "training a LLaMa-like transformer with 7 billion parameters across 4 GPUs."), "1.70x", "throughput",
     "traditional methods", "", "1.70x increase in throughput",
     "training a LLaMa-like transformer with 7 billion parameters across 4 GPUs"),
    # the baseline before the figure, the setting beside it
    (("We evaluate MoEShard against DeepSpeed on encoder-based architectures, demonstrating speedups of up to "
      "6.4times in time to first token (TTFT)."), "6.4x", "time to first token", "DeepSpeed", "up to",
     "up to 6.4times in time to first token", "on encoder-based architectures"),
    ("PaRO significantly improves training throughput by 1.19x-2.50x compared to the SOTA method.", "1.19x-2.50x",
     "training throughput", "SOTA method", "", "training throughput by 1.19x-2.50x", ""),
    ("It reaches 30% higher accuracy on AIME 2024.", "30%", "accuracy", "", "", "30% higher accuracy", "on AIME 2024"),
    # the value beside a word of gain wins over an earlier one further from it; 'over 8 devices' is no baseline
    (("Notably, with Qwen2.5-Math-Instruct, a teacher model sharing only about 6% of its vocabulary with TinyLlama, "
      "VocAgnoLM achieves a 46% performance improvement compared to naive continual pretraining."), "46%", "",
     "naive continual pretraining", "", "46% performance improvement", ""),
    (("For a Transformer model with 70B parameters, applying Ladder Residual to all its layers can achieve 30% "
      "end-to-end wall clock speed up at inference time with TP sharding over 8 devices."), "30%", "speedup", "", "",
     "30% end-to-end wall clock speed up", "at inference time with TP sharding over 8 devices"),
])
def test_figure_is_split_into_metric_value_baseline(sentence: str, value: str, metric: str, baseline: str,
                                                    qualifier: str, claim: str, setting: str) -> None:
    fig = figure_of(sentence)
    assert fig is not None
    assert (fig.value, fig.metric, fig.baseline, fig.qualifier) == (value, metric, baseline, qualifier)
    assert (fig.claim, fig.setting) == (claim, setting)
    assert claim in sentence and setting in sentence and baseline in sentence  # slices of the sentence as written


@pytest.mark.parametrize("sentence", ["We train on 144 000 episodes.", "GShard scales to 600 billion parameters.",
                                      "The model has 14 B parameters and 4 GPUs."])
def test_no_figure_without_a_factor_or_percentage_of_gain(sentence: str) -> None:
    assert figure_of(sentence) is None


def test_paper_cards_say_what_each_paper_does() -> None:
    seesaw = paper_card(PAPERS["seesaw"])
    assert seesaw.name == "Seesaw" and "we present Seesaw" in seesaw.summary
    assert seesaw.figure is not None and seesaw.figure.value == "1.78x" and seesaw.figure.baseline == "vLLM"
    assert paper_card(PAPERS["2bp"]).summary == "This paper introduces 2-stage backpropagation (2BP)."
    assert paper_card(PAPERS["nesa"]).figure is None
    for paper in PAPERS.values():  # every card's sentence is the abstract's own
        assert paper_card(paper).summary in paper.abstract


def test_candidate_questions_only_name_indexed_papers() -> None:
    questions = candidate_questions([paper_card(p) for p in PAPERS.values()])
    assert questions[0] == "By how much does Seesaw beat vLLM?" and "Compare Seesaw and 2BP" in questions
    assert not any("Chinchilla" in q for q in questions)


def _answer(abstained: bool) -> Answer:
    return Answer(question="q", standalone_question="q", answer="a", abstained=abstained, answerer="extractive")


def test_examples_keep_answerable_ones_and_are_cached_per_generation(tmp_path: Path) -> None:
    cards = [paper_card(p) for p in PAPERS.values()]
    asked: list[str] = []

    def answers(q: str) -> Answer:
        asked.append(q)
        return _answer(abstained=q.startswith("Compare"))

    cache = ExampleCache(tmp_path / "examples.json")
    got = cache.get("gen-1", cards, answers, n=3)
    assert len(got) == 3 and not any(q.startswith("Compare") for q in got)
    count = len(asked)
    assert cache.get("gen-1", cards, answers, n=3) == got and len(asked) == count  # memory
    assert ExampleCache(tmp_path / "examples.json").get("gen-1", cards, answers, n=3) == got  # disk
    assert len(asked) == count
    ExampleCache(tmp_path / "examples.json").get("gen-2", cards, answers, n=3)  # a new index: checked again
    assert len(asked) > count


def _source(n: int, pid: str, text: str) -> Source:
    return Source(n=n, paper_id=pid, title=PAPERS[pid].title, chunk_id=f"{pid}-{n}", text=text, score=0.1)


def test_reported_results_and_when_they_compare() -> None:
    seesaw = _source(1, "seesaw", PAPERS["seesaw"].abstract)
    twobp = _source(2, "2bp", PAPERS["2bp"].abstract)
    nesa = _source(3, "nesa", PAPERS["nesa"].abstract)
    ans = _answer(False).model_copy(update={"sources": [seesaw, twobp, nesa], "paper_ids": ["seesaw", "2bp", "nesa"],
                                            "sentences": [Sentence(text="x", citations=[2])]})
    found = reported_results(ans, {"seesaw": "Seesaw", "2bp": "2BP"})
    assert [(r.name, r.n, r.figure.value) for r in found] == [("Seesaw", 1, "1.78x"), ("2BP", 2, "1.70x")]
    assert len(comparable(found)) == 2
    percent = Result(paper_id="x", name="X", n=9, figure=figure_of("It reaches 30% higher accuracy."))
    assert comparable([found[0], percent]) == []  # a factor and a percentage do not share a chart


def test_split_passage_tag_never_reaches_the_stream() -> None:
    deltas = ["Seesaw is fast [1].", " </pass", "age>", " It re-shards.", " <", "passage n=\"2\">", "x", "<b>y"]
    out = list(strip_prompt_tags(iter(deltas)))
    assert "".join(out) == "Seesaw is fast [1].  It re-shards. x<b>y"
    assert not any("<" in d and "pass" in d for d in out) and not any(d.endswith("</pass") for d in out)


def test_notice_counts_the_sentences_it_marks() -> None:
    src = _source(1, "seesaw", PAPERS["seesaw"].abstract)
    quote = "Our evaluation demonstrates that Seesaw achieves a throughput increase of up to 1.78x"
    sentences = [Sentence(text=quote + ".", citations=[], supported=False),  # a verbatim quote: not marked
                 Sentence(text="Seesaw runs on the moon.", citations=[1], supported=False),
                 Sentence(text="Seesaw is cheap.", citations=[1], supported=False),
                 Sentence(text="Seesaw re-shards the model.", citations=[1], supported=True)]
    ans = _answer(False).model_copy(update={"sources": [src], "sentences": sentences})
    assert [s.text for s in flagged(ans)] == ["Seesaw runs on the moon.", "Seesaw is cheap."]
    assert "2 of 4 sentences are not supported" in not_backed("local", ans, 0)
