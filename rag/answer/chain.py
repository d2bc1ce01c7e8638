"""The answer chain: analyse -> retrieve -> decide -> read -> reconsider -> compose -> verify, named LCEL steps over a
typed State (read and reconsider only with a reading model).

`create_chain(engine)` wires the stages; `compose_events(state, engine)` is the one compose path, drained by the
chain's compose step for `answer()` and iterated by `stream()`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.runnables import Runnable, RunnableLambda

from rag.answer import compose as composer
from rag.answer import generate
from rag.answer.analyse import analyse, topic_text
from rag.answer.decide import DecisionParams, decide, reconsider
from rag.answer.evidence import coverage, score
from rag.answer.models import ABSTAIN_SENTENCE, Draft, Evidence, Retrieved, State, Withheld
from rag.answer.read import read
from rag.answer.verify import declined, verify
from rag.names import mentioned_papers
from rag.retrieve import Index, make_retriever, to_sources
from rag.settings import Settings
from rag.support import instruction, mask_links
from rag.text import content_words, stem
from rag.types import Paper
from rag.view import View

log = logging.getLogger(__name__)
OVERVIEW_MAX_PAPERS = 30
RESOLVE_MIN_SIMILARITY = 0.3  # a description resolves to a paper only when its best passage is at least this close


@dataclass
class Tables:
    """Per-corpus tables of one index view (read from the view, which derived them when it was built)."""

    view: View
    papers: list[Paper]
    by_id: Mapping[str, Paper]  # with each paper's full text, read when it is looked up
    vocab: frozenset[str]
    idf: dict[str, float]
    title_vecs: dict[str, np.ndarray] = field(default_factory=dict)
    names: frozenset[str] = frozenset()


@dataclass
class Engine:
    """What the stages need: the index, the settings, the chat model for LLM answerers (passed in), and caches."""

    index: Index
    settings: Settings
    chat_model: Callable[[str], Any]
    params: DecisionParams | None = None
    reader: Callable[[bool | None], Any] = lambda wanted: None  # the reading model (None: the rules decide)
    _tables: Tables | None = None

    def tables(self) -> Tables:
        """The per-corpus tables of the current index view."""
        view = self.index.view()
        if self._tables is None or self._tables.view is not view:
            self._tables = Tables(view, view.papers, view.papers.by_id, view.vocab, view.idf, names=view.names)
        return self._tables

    def title_vector(self, paper: Paper) -> np.ndarray:
        """The embedded title of a paper (cached per corpus view): what an overview line should be closest to."""
        t = self.tables()
        if paper.id not in t.title_vecs:
            t.title_vecs[paper.id] = np.asarray(self.index.embedder.embed_query(paper.title), dtype=np.float32)
        return t.title_vecs[paper.id]

    def sentence_vectors(self, keys: list[tuple[str, int, int]]) -> np.ndarray:
        """Sentence vectors, computed at ingest and read from the index (no embedding for a new question)."""
        return self.index.sentence_vectors(keys)

    def resolve(self, phrase: str) -> str | None:
        """The paper a description points at ('the 3D-printing dataset paper'), by paper-level retrieval."""
        docs = make_retriever(self.index, self.settings).search(phrase, k=1, mentioned=[])
        if not docs:
            return None
        t = self.tables()
        terms = [stem(w) for w in content_words(phrase) if len(w) >= 4 and w in t.vocab]
        close = float(docs[0].metadata.get("similarity", 0.0)) >= RESOLVE_MIN_SIMILARITY
        # Or its rare words are the passage's (a description in another language: 'basado en blockchain').
        if close or (terms and coverage(terms, docs[0].page_content, t.idf) >= 0.5):
            return str(docs[0].metadata["paper_id"])
        return None


def analyse_step(state: State, engine: Engine) -> State:
    """What is asked, about which papers (an LLM helps condense a follow-up only where the rules cannot)."""
    t = engine.tables()
    a = analyse(state.request, t.papers, t.vocab, engine.resolve)
    req = state.request
    if req.history and not a.papers and req.answerer != "extractive" and a.kind not in ("list", "overview"):
        try:
            line = generate.complete(engine.chat_model(req.answerer), generate.condense_messages(a.asked, req.history),
                                     req, engine.settings.llm_max_chars)
            line = next((ln.strip() for ln in line.splitlines() if ln.strip()), "")
            line = line[: engine.settings.max_question_chars]
            named = mentioned_papers(line, t.papers)
            if named:
                a = a.model_copy(update={"standalone": line, "papers": named, "carried": named})
        except Exception as exc:  # condensing is an optimisation: the answer step reports LLM failures
            log.info("LLM condense failed: %s", exc)
    return state.model_copy(update={"analysis": a})


def retrieve_step(state: State, engine: Engine) -> State:
    """Passages for the question: per paper for comparisons and overviews, wider for lists; sentences scored."""
    a, req, t = state.analysis, state.request, engine.tables()
    assert a is not None
    retriever = make_retriever(engine.index, engine.settings, paper_ids=a.scope, mode=req.retrieval, k=req.k)
    if a.kind == "overview":  # each paper's sentences, scored by how close they are to its own title
        chosen = [p for p in t.papers if not a.scope or p.id in a.scope][:OVERVIEW_MAX_PAPERS]
        sources = to_sources([d for p in chosen for d in retriever.search(p.title, paper_ids=[p.id], k=3,
                                                                           mentioned=[])])
        evidence = [e for p in chosen for e in score(a, [s for s in sources if s.paper_id == p.id],
                                                     engine.title_vector(p), engine.sentence_vectors, t.idf)]
    else:
        topic = topic_text(a, t.by_id)  # sentences are compared with the question minus the papers' names as well
        if topic == a.standalone:
            qvec, tvec = retriever.embed(a.standalone), None
        else:  # one model call for both
            qvec, tvec = np.asarray(engine.index.embedder.embed_documents([a.standalone, topic]), dtype=np.float32)
        if a.kind == "compare" and len(a.papers) >= 2:
            docs = [d for pid in a.papers[:5] for d in retriever.search(a.standalone, paper_ids=[pid], k=3,
                                                                        qvec=qvec, mentioned=a.papers)]
        elif a.kind == "list":
            retriever.per_paper_cap = 2
            docs = retriever.search(a.standalone, k=engine.settings.fetch_k, qvec=qvec, mentioned=a.papers)
        else:
            docs = retriever.search(a.standalone, qvec=qvec, mentioned=a.papers)
        sources = to_sources(docs)
        evidence = score(a, sources, qvec, engine.sentence_vectors, t.idf, tvec)
    ranking = list(dict.fromkeys(s.paper_id for s in sources))
    evidence, withheld = withhold_instructions(evidence)
    return state.model_copy(update={"retrieved": Retrieved(sources=sources, ranking=ranking, evidence=evidence,
                                                           withheld=withheld)})


def withhold_instructions(evidence: list[Evidence]) -> tuple[list[Evidence], list[Withheld]]:
    """The evidence without the sentences that instruct the reader ("visit … and paste your password"): a passage
    may carry one (OWASP LLM01), and no answer may lead with it or repeat it; each is reported instead."""
    kept, withheld = [], []
    for e in evidence:
        if instruction(e.text):
            withheld.append(Withheld(n=e.n, paper_id=e.paper_id, text=mask_links(e.text)))
        else:
            kept.append(e)
    return kept, withheld


def decide_step(state: State, engine: Engine) -> State:
    """Answer, abstain, or correct the premise, by the rules."""
    t = engine.tables()
    assert state.analysis is not None and state.retrieved is not None
    decision = decide(state.analysis, state.retrieved, t.by_id, t.vocab, t.idf, _params(engine), t.names)
    return state.model_copy(update={"decision": decision})


def read_step(state: State, engine: Engine) -> State:
    """The reading model reads the candidate papers (when one is installed and the request does not turn it off),
    and whether the named papers say the words the rules found missing, when that is why they abstain."""
    reader = engine.reader(state.request.reader)
    if reader is None:
        return state
    assert state.analysis is not None and state.retrieved is not None and state.decision is not None
    reading = read(state.analysis, state.retrieved, engine.tables().by_id, reader, engine.settings.reader_budget,
                   state.decision.unmentioned)
    return state.model_copy(update={"reading": reading})


def reconsider_step(state: State, engine: Engine) -> State:
    """The rules' decision with what the reading model read."""
    if state.reading is None:
        return state
    assert state.analysis is not None and state.decision is not None
    decision = reconsider(state.decision, state.analysis, state.reading, engine.tables().by_id, _params(engine))
    return state.model_copy(update={"decision": decision})


def _params(engine: Engine) -> DecisionParams:
    return engine.params or DecisionParams(min_score=engine.settings.abstain_threshold)


def compose_events(state: State, engine: Engine) -> Iterator[tuple[str, Any]]:
    """('text', delta)… and ('reset', notice) when an LLM fails mid-way, then ('draft', State with its drafts)."""
    a, r, d, req = state.analysis, state.retrieved, state.decision, state.request
    assert a is not None and r is not None and d is not None
    if d.action == "abstain":
        text = composer.abstention(r, ABSTAIN_SENTENCE)
        yield "sources", r.sources
        yield "text", text
        yield "draft", state.model_copy(update={"draft": Draft(text=text, answerer="extractive")})
        return
    said = next((t.content for t in reversed(req.history) if t.role == "assistant"), "")
    extractive = composer.compose(a, d, r, engine.tables().by_id, engine.settings.max_answer_sentences, said)
    r, extractive = composer.number_by_citation(r, extractive)  # [1] is what the answer cites first
    state = state.model_copy(update={"retrieved": r})
    yield "sources", r.sources
    if req.answerer == "extractive":
        yield "text", extractive.text
        yield "draft", state.model_copy(update={"draft": extractive})
        return
    s = engine.settings
    budget = s.local_prompt_token_budget if req.answerer == "local" else s.prompt_token_budget
    parts: list[str] = []
    try:
        prompt = generate.messages(a, d.allowed(r.sources), budget, s.max_answer_sentences)
        for delta in generate.stream(engine.chat_model(req.answerer), prompt, req, s.llm_max_chars):
            parts.append(delta)
            yield "text", delta
        draft = Draft(text="".join(parts), answerer=req.answerer)
    except Exception as exc:  # every LLM failure becomes a notice plus the extractive answer, but a cut reply
        from rag.llm.errors import LLMTruncated, friendly_error

        if isinstance(exc, LLMTruncated):  # keeps what came: it is checked like any answer, with the notice
            draft = Draft(text="".join(parts), answerer=req.answerer, notice=str(exc))
        else:
            err = friendly_error(exc)
            log.warning("LLM answerer %s failed: %s", req.answerer, err)
            draft = extractive.model_copy(update={"notice": f"{err} Showing the extractive answer instead."})
            yield "reset", draft.notice
            yield "text", draft.text
    if draft.answerer != "extractive" and declined(draft.text):
        # Whether to answer is the decision's (the rules and the reading model found a passage that answers); a
        # writer that declines it anyway is shown as what it is, with the extractive answer from the same passages.
        draft = extractive.model_copy(update={"notice": DECLINED.format(name=req.answerer)})
        yield "reset", draft.notice
        yield "text", draft.text
    yield "draft", state.model_copy(update={"draft": draft, "extractive": extractive})


DECLINED = ("The {name} model found no answer in the passages, which were judged to answer the question; "
            "this is the extractive answer from them.")


def _drain(state: State, engine: Engine) -> State:
    """The compose step of the chain: run compose_events to its draft."""
    return next(v for k, v in compose_events(state, engine) if k == "draft")


def _verify(state: State) -> Any:
    """The verify step: the checked Answer."""
    assert state.draft is not None
    return verify(state, state.draft, state.extractive)


def create_prepare(engine: Engine) -> Runnable:
    """analyse -> retrieve -> decide -> read -> reconsider, as named LCEL steps."""
    return (RunnableLambda(lambda s: analyse_step(s, engine)).with_config(run_name="analyse")
            | RunnableLambda(lambda s: retrieve_step(s, engine)).with_config(run_name="retrieve")
            | RunnableLambda(lambda s: decide_step(s, engine)).with_config(run_name="decide")
            | RunnableLambda(lambda s: read_step(s, engine)).with_config(run_name="read")
            | RunnableLambda(lambda s: reconsider_step(s, engine)).with_config(run_name="reconsider"))


def create_chain(engine: Engine) -> Runnable:
    """The full chain: prepare -> compose -> verify (input: State with its Request; output: Answer)."""
    return (create_prepare(engine)
            | RunnableLambda(lambda s: _drain(s, engine)).with_config(run_name="compose")
            | RunnableLambda(_verify).with_config(run_name="verify"))


def timed(t0: float) -> float:
    """Milliseconds since t0."""
    return round((time.perf_counter() - t0) * 1000, 1)


def stream_events(state: State, engine: Engine, preliminary: bool = False) -> Iterator[tuple[str, Any]]:
    """The answer as events: ('standalone', str), ('sources', [Source]), ('text', delta)… ('reset', notice)?,
    ('answer', Answer). preliminary (the web chat): with a reading model and the extractive answerer, the rules'
    answer is shown at once and the read one replaces it when it differs (a 'reset' with no notice)."""
    t0 = time.perf_counter()
    req = state.request
    revise = preliminary and req.answerer == "extractive" and engine.reader(req.reader) is not None
    rules_only = state.model_copy(update={"request": req.model_copy(update={"reader": False})}) if revise else state
    state = create_prepare(engine).invoke(rules_only)
    prepared, first = timed(t0), None
    yield "standalone", state.analysis.standalone  # type: ignore[union-attr]
    for kind, value in compose_events(state, engine):
        if kind == "draft":
            state = value
        elif kind == "sources":
            yield kind, value
        else:
            first = first or timed(t0)
            yield kind, value
    if revise:
        read = reconsider_step(read_step(state.model_copy(update={"request": req}), engine), engine)
        revised = _drain(read, engine)  # its sources may be numbered otherwise: the answer carries them
        assert revised.draft is not None and state.draft is not None
        if revised.draft.text != state.draft.text:
            yield "reset", ""
            yield "text", revised.draft.text
        state = revised
    answer = verify(state, state.draft, state.extractive)
    answer.timings_ms.update(prepare=prepared, first_text=first or timed(t0), total=timed(t0))
    yield "answer", answer
