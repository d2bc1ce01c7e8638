"""Fit the answer/abstain rule's thresholds on the tune questions; report them on the test split.

    python tools/fit_decision.py [--out fitted.json] [--reader]

With --reader, the questions are read by the reading model (every candidate, no time budget; the judgments are
cached beside the index, so a second fit reads nothing) and its thresholds are fitted too, after the rules' own.

Tune questions: corpus/questions.jsonl (the public set) and the 'tune' splits of the blind sets (rag.settings.BLIND_SETS:
corpus/questions-dev.jsonl, -fresh.jsonl … -fresh5.jsonl, each written by an author who never saw the answering
code). The 'test' split is never used to choose anything: it is only scored, once, with the chosen thresholds.
The objective per question: the decision is right (abstain exactly when expected); for list questions, the
qualifying papers are the gold ones (Jaccard); for any other answer, the papers it cites (the reader's choice, else
the extractive answer's) are every gold one and none outside gold and ok. Ties go to the thresholds closest to the
current defaults.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from pathlib import Path

from rag.answer import Pipeline
from rag.answer.compose import compose
from rag.answer.decide import DecisionParams, decide, reconsider
from rag.answer.models import Decision, State
from rag.eval.questions import Question, load_questions
from rag.settings import BLIND_SETS, QUESTIONS_PATH, Settings

# Two independent groups: list questions use only the list thresholds, every other question only the rest.
GRIDS = (
    {"min_score": [0.15, 0.2, 0.25, 0.3, 0.35], "paper_coverage": [0.2, 0.3, 0.4, 0.5, 0.6],
     "weak_score": [0.3, 0.35, 0.4, 0.45, 0.5, 0.55], "detail_dense": [0.5, 0.55, 0.6, 0.65, 0.7, 1.0]},
    {"list_score": [0.3, 0.34, 0.38, 0.42, 0.46, 0.5, 0.54], "list_coverage": [0.2, 0.3, 0.45, 0.6, 0.75, 0.9],
     "list_ratio": [0.6, 0.7, 0.8, 0.9, 1.0]},
)
READER_GRIDS = (  # fitted after the rules' thresholds, on the same questions read by the reading model
    {"read_yes": [0.8, 0.85, 0.9, 0.93, 0.96, 0.98, 1.01], "read_no": [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5],
     "read_keep": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]},
    {"read_list": [0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.01],
     "read_list_rules": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 1.01]},
    {"read_mention": [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 1.01]},
)


def _score(q: Question, state: State, pipe: Pipeline, params: DecisionParams) -> float:
    """1 for a right decision (list questions: Jaccard of qualifying vs gold papers), else 0."""
    t = pipe.engine.tables()
    d = decide(state.analysis, state.retrieved, t.by_id, t.vocab, t.idf, params, t.names)  # type: ignore[arg-type]
    if state.reading is not None:
        d = reconsider(d, state.analysis, state.reading, t.by_id, params)  # type: ignore[arg-type]
    if q.expect_abstain or d.action == "abstain":
        return float(q.expect_abstain == (d.action == "abstain"))
    gold = set(q.gold_papers)
    if state.analysis is not None and state.analysis.kind == "list":
        got = set(d.qualifying)
        return len(got & gold) / len(got | gold) if got | gold else 1.0
    # the papers the answer cites (the reader's, else those of the rules' passages): every gold one, none outside
    # gold and ok
    got = set(d.answering) or _cited(state, d, pipe)
    return float(gold <= got <= gold | set(q.ok_papers)) if got else 1.0


_CITED: dict[tuple[str, str], set[str]] = {}  # a grid search meets the same decision of a question many times


def _cited(state: State, d: Decision, pipe: Pipeline) -> set[str]:
    """The papers the extractive answer cites for this decision."""
    key = (state.request.model_dump_json(), d.model_dump_json())
    if key not in _CITED:
        _CITED[key] = _compose_cited(state, d, pipe)
    return _CITED[key]


def _compose_cited(state: State, d: Decision, pipe: Pipeline) -> set[str]:
    t, r = pipe.engine.tables(), state.retrieved
    assert state.analysis is not None and r is not None
    draft = compose(state.analysis, d, r, t.by_id, pipe.settings.max_answer_sentences)
    by_n = {s.n: s.paper_id for s in r.sources}
    return {by_n[n] for s in draft.sentences or [] for n in s.citations if n in by_n}


def fit(grids: tuple[dict[str, list[float]], ...], questions: list[Question], states: dict[str, State],
        pipe: Pipeline, start: DecisionParams | None = None) -> DecisionParams:
    """Grid-search each grid in turn (the others' values fixed) for the best total score on the questions; a grid of
    list thresholds is scored on the list questions only, any other on the rest; ties go to the values closest to the
    defaults."""
    default = DecisionParams()
    best = start or default
    for grid in grids:
        lists = "list_score" in grid or "read_list" in grid
        group = [q for q in questions if (states[q.id].analysis.kind == "list") == lists]  # type: ignore[union-attr]
        candidates = [best.model_copy(update=dict(zip(grid, values, strict=True)))
                      for values in itertools.product(*grid.values())]

        def key(p: DecisionParams, g: list[Question] = group, gr: dict = grid) -> tuple[float, float]:
            return (sum(_score(q, states[q.id], pipe, p) for q in g),
                    -sum(abs(getattr(p, k) - getattr(default, k)) for k in gr))

        best = max(candidates, key=key)
    return best


def main() -> None:
    """Grid-search the thresholds on the tune questions and print the fit and the test-split score."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the fitted thresholds as JSON here")
    parser.add_argument("--reader", action="store_true", help="read with the reading model and fit its thresholds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    dev = [q for path in BLIND_SETS for q in load_questions(path)]
    tune = load_questions(QUESTIONS_PATH) + [q for q in dev if q.split == "tune"]
    test = [q for q in dev if q.split == "test"]
    settings = Settings(reader="on", reader_budget=600) if args.reader else Settings(reader="off")
    pipe = Pipeline(settings)
    read = {q.id: pipe.prepare(q.question, history=q.history) for q in tune + test}
    rules = {k: s.model_copy(update={"reading": None}) for k, s in read.items()}  # the same questions, unread
    default = DecisionParams()

    def total(qs: list[Question], params: DecisionParams, prepared: dict[str, State] = read) -> float:
        return sum(_score(q, prepared[q.id], pipe, params) for q in qs)

    # The rules' thresholds are fitted on the questions unread (the rules must stand alone: RAG_READER=off, or no
    # model installed), then the reader's on the questions read, with the rules' fixed.
    best = fit(GRIDS, tune, rules, pipe)
    if args.reader:
        best = fit(READER_GRIDS, tune, read, pipe, best)
    report = {
        "fitted": best.model_dump(), "default": default.model_dump(),
        "tune": {"n": len(tune), "rules, default": total(tune, default, rules), "rules": total(tune, best, rules)},
        "test": {"n": len(test), "rules, default": total(test, default, rules), "rules": total(test, best, rules)},
    }
    if args.reader:
        for split, qs in (("tune", tune), ("test", test)):
            report[split].update({"read, default": total(qs, default), "read": total(qs, best)})
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    logging.getLogger(__name__).warning("%s", text)


if __name__ == "__main__":
    main()
