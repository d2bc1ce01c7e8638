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
from rag.types import Answer, Sentence


def _checked(sentences: list[Sentence], state: State) -> list[Sentence]:
    """The composer's sentences with their support flag set by the check, not assumed."""
    by_n = {s.n: s for s in state.retrieved.sources} if state.retrieved else {}
    out = []
    for s in sentences:
        cited = [by_n[n].text for n in s.citations if n in by_n]
        supported = bool(cited) and len(cited) == len(s.citations) and support_multi(s.text, cited).supported
        out.append(s.model_copy(update={"supported": supported}))
    return out


def verify(state: State, draft: Draft, evidence: Draft | None = None) -> Answer:
    """Check citations and assemble the Answer (evidence: the extractive draft shown beside a failing LLM answer)."""
    assert state.analysis is not None and state.retrieved is not None and state.decision is not None
    leaked = CANARY in draft.text
    text = sanitize(draft.text)
    sources = state.retrieved.sources
    decision = state.decision
    abstained = decision.action == "abstain" or (draft.answerer != "extractive" and
                                                 ABSTAIN_SENTENCE.lower() in text.lower()[:200])
    answer = Answer(question=state.request.question, standalone_question=state.analysis.standalone, answer=text,
                    abstained=abstained, answerer=draft.answerer, sources=sources, notice=draft.notice,
                    paper_ids=state.retrieved.ranking)
    if abstained:
        answer.closest_papers = answer.paper_ids[:3]
        answer.answer = text if text.startswith(ABSTAIN_SENTENCE) else abstention(state.retrieved, ABSTAIN_SENTENCE)
        answer.notice = answer.notice or decision.reason or "The language model found no answer in the passages."
        answer.grounded = not leaked
        return answer
    if decision.action == "correct_premise":
        answer.notice = " ".join(x for x in (decision.reason, answer.notice) if x)
    if draft.sentences is not None:
        answer.sentences = _checked(draft.sentences, state)
        fabricated = 0
    else:
        checked = check_citations(text, sources)
        answer.answer, answer.sentences, answer.removed_citations = checked.text, checked.sentences, checked.removed
        fabricated = checked.fabricated
    unsupported = sum(not s.supported for s in answer.sentences)
    answer.grounded = bool(answer.sentences) and not leaked and fabricated == 0 and unsupported == 0
    if draft.answerer != "extractive" and not answer.grounded:
        answer.notice = " ".join(x for x in (answer.notice, (
            f"This {draft.answerer} answer is not backed by its citations: {unsupported} of "
            f"{len(answer.sentences)} sentences unsupported, {fabricated} citation(s) to passages that do not exist. "
            "The extractive evidence is shown below.")) if x)
        answer.evidence = evidence.text if evidence is not None else ""
    return answer
