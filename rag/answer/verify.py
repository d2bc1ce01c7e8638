"""Verification: every sentence checked against the passages it cites; the typed Answer assembled.

`grounded` is true only when no citation was fabricated, the prompt's canary did not leak and every sentence is
supported; an LLM answer that fails the check is shown with the extractive evidence beside it.
"""

from __future__ import annotations

from rag.answer.compose import abstention
from rag.answer.generate import CANARY, sanitize
from rag.answer.models import ABSTAIN_SENTENCE, Draft, State
from rag.citations import check_citations
from rag.support import support_multi
from rag.types import Answer, ReadingSummary, Sentence, Source


def _checked(sentences: list[Sentence], state: State) -> list[Sentence]:
    """The composer's sentences with their support flag set by the check, not assumed."""
    by_n = {s.n: s for s in state.retrieved.sources} if state.retrieved else {}
    out = []
    for s in sentences:
        cited = [by_n[n].text for n in s.citations if n in by_n]
        supported = bool(cited) and len(cited) == len(s.citations) and support_multi(s.text, cited).supported
        out.append(s.model_copy(update={"supported": supported}))
    return out


def quoted(sentence: str, sources: list[Source]) -> bool:
    """True when a sentence is a word-for-word quote of one of the passages (shown unmarked: the reader can see it
    in the passage, even when the model did not cite it)."""
    body = sentence.strip().rstrip(". ")
    return len(body) > 20 and any(body in s.text for s in sources)


def flagged(answer: Answer) -> list[Sentence]:
    """The sentences shown as unsupported: not backed by what they cite, and not a quote of a passage."""
    return [s for s in answer.sentences if not s.supported and not quoted(s.text, answer.sources)]


def not_backed(answerer: str, answer: Answer, fabricated: int) -> str:
    """The notice over an LLM answer that fails the check, counting exactly the sentences marked in it."""
    marked = len(flagged(answer))
    parts = []
    if marked:
        parts.append(f"{marked} of {len(answer.sentences)} sentence{'s' if len(answer.sentences) != 1 else ''} "
                     f"{'is' if marked == 1 else 'are'} not supported by the passages cited (marked)")
    uncited = sum(not s.citations for s in answer.sentences)
    if uncited and not marked:
        parts.append(f"{uncited} of {len(answer.sentences)} sentences cite no passage")
    if fabricated:
        parts.append(f"{fabricated} citation(s) pointed to passages that do not exist and were removed")
    why = "; ".join(parts) or "its sentences could not be checked against the passages"
    return f"This {answerer} answer is not backed by its citations: {why}. The extractive evidence is shown below."


def summary(state: State) -> ReadingSummary | None:
    """What the reading model judged, for the Answer (None when it did not read)."""
    r = state.reading
    if r is None:
        return None
    return ReadingSummary(model=r.model, closed=r.closed, papers={j.paper_id: j.p for j in r.read if j.p is not None},
                          unread=r.stats.unread, cached=r.stats.cached, prefill_tokens=r.stats.prefill_tokens,
                          read_ms=r.stats.wall_ms, llama_ms=r.stats.llama_ms)


def withheld_notice(state: State) -> str:
    """One sentence naming the passages that instruct the reader, left out of the answer."""
    assert state.retrieved is not None
    titles = {s.n: s.title for s in state.retrieved.sources}
    found = list(dict.fromkeys((titles.get(w.n, w.paper_id), w.text) for w in state.retrieved.withheld))
    listed = "; ".join(f"“{text[:160]}” in {title}" for title, text in found[:3])
    return (f"Left out of this answer: {'a sentence' if len(found) == 1 else 'sentences'} in the papers that tell "
            f"the reader to do something ({listed}); treat such text with suspicion.")


def declined(text: str) -> bool:
    """Whether an LLM's reply is the abstention sentence (its first words say the papers do not say)."""
    return ABSTAIN_SENTENCE.lower() in text.lower()[:200]


def verify(state: State, draft: Draft, evidence: Draft | None = None) -> Answer:
    """Check citations and assemble the Answer (evidence: the extractive draft shown beside a failing LLM answer)."""
    assert state.analysis is not None and state.retrieved is not None and state.decision is not None
    leaked = CANARY in draft.text
    text = sanitize(draft.text)
    sources = state.retrieved.sources
    decision = state.decision
    abstained = decision.action == "abstain" or (draft.answerer != "extractive" and declined(text))
    answer = Answer(question=state.request.question, standalone_question=state.analysis.standalone, answer=text,
                    abstained=abstained, answerer=draft.answerer, sources=sources, notice=draft.notice,
                    paper_ids=state.retrieved.ranking, reading=summary(state))
    if abstained:
        answer.closest_papers = answer.paper_ids[:3]
        answer.answer = text if text.startswith(ABSTAIN_SENTENCE) else abstention(state.retrieved, ABSTAIN_SENTENCE)
        answer.notice = answer.notice or decision.reason or "The language model found no answer in the passages."
        answer.grounded = not leaked
        return answer
    if decision.action == "correct_premise":
        answer.notice = " ".join(x for x in (decision.reason, answer.notice) if x)
    if state.retrieved.withheld:
        answer.notice = " ".join(x for x in (answer.notice, withheld_notice(state)) if x)
    if draft.sentences is not None:
        answer.sentences = _checked(draft.sentences, state)
        fabricated = 0
    else:
        checked = check_citations(text, sources, attribute=[x.n for x in decision.allowed(sources)])
        answer.answer, answer.sentences, answer.removed_citations = checked.text, checked.sentences, checked.removed
        fabricated = checked.fabricated
    unsupported = sum(not s.supported for s in answer.sentences)
    answer.grounded = bool(answer.sentences) and not leaked and fabricated == 0 and unsupported == 0
    if draft.answerer != "extractive" and not answer.grounded:
        answer.notice = " ".join(x for x in (answer.notice, not_backed(draft.answerer, answer, fabricated)) if x)
        answer.evidence = evidence.text if evidence is not None else ""
    return answer
