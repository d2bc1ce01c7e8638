"""The answer chain (LCEL): condense -> retrieve -> abstain? -> compose -> check citations -> Answer."""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.runnables import Runnable, RunnableLambda, RunnablePassthrough

from rag import extractive
from rag.citations import check_citations
from rag.extractive import Candidate
from rag.ingest import IngestReport, ensure_index, ingest_paths
from rag.prompts import load_prompt
from rag.retrieve import Index, make_retriever, mentioned_papers, to_sources
from rag.settings import Settings
from rag.text import count_tokens, words
from rag.types import Answer, Paper, Source

log = logging.getLogger(__name__)

ABSTAIN_SENTENCE = "The papers here do not say."
ANSWERERS = ("extractive", "openai", "local")
_COMPARE = re.compile(r"\b(compar\w*|differ\w*|difference|versus|vs\.?|contrast\w*)\b", re.IGNORECASE)
_ANAPHORA = re.compile(
    r"\b(its|it|they|their|them|this (paper|system|method|work|model)|that (paper|system|method|work|model)|"
    r"the (paper|system|method|approach|model|framework|work|authors))\b", re.IGNORECASE)
_LEADING = re.compile(r"^\s*(and|so|also|ok|okay|then|but)\b[\s,]*", re.IGNORECASE)
_NAME_LIKE = re.compile(r"(?<![\w-])([A-Z][a-z]*[A-Z0-9][\w-]*|[A-Z]{2,}[\w-]*|[A-Z][a-z]+)(?![\w-])")
_BAD_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CANARY = f"CANARY-{secrets.token_hex(6)}"


_MD_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_MD_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(\s*[a-zA-Z][\w+.-]*:[^)]*\)")


def sanitize(text: str) -> str:
    """Answer text safe to render: the canary redacted, Markdown images dropped, outside links made plain text."""
    return _MD_LINK.sub(r"\1", _MD_IMAGE.sub("", text.replace(_CANARY, "[removed]")))


def _redact_canary(deltas: Iterator[str]) -> Iterator[str]:
    """Stream deltas with the canary removed, holding back a tail that could be the canary's beginning."""
    pending = ""
    for delta in deltas:
        pending = (pending + delta).replace(_CANARY, "[removed]")
        keep = next((k for k in range(min(len(pending), len(_CANARY) - 1), 0, -1) if _CANARY.startswith(pending[-k:])), 0)
        if len(pending) > keep:
            yield pending[: len(pending) - keep]
            pending = pending[len(pending) - keep:]
    if pending:
        yield pending


class QuestionError(ValueError):
    """The question cannot be answered as given (empty, too long, not text)."""


def validate_question(question: object, settings: Settings) -> str:
    """The stripped question, or QuestionError with a message a user can act on."""
    if not isinstance(question, str):
        raise QuestionError("The question must be text.")
    try:
        question.encode("utf-8")
    except UnicodeEncodeError:
        raise QuestionError("The question contains invalid characters (broken Unicode); please retype it.") from None
    if "\x00" in question or _BAD_CHARS.search(question):
        raise QuestionError("The question contains control characters (such as NUL bytes); please remove them.")
    question = unicodedata.normalize("NFC", question).strip()
    if not question:
        raise QuestionError("Please type a question.")
    if len(question) > settings.max_question_chars:
        raise QuestionError(f"The question is {len(question):,} characters long; the limit is "
                            f"{settings.max_question_chars:,}. Please shorten it.")
    if not any(ch.isalnum() for ch in question):
        raise QuestionError("The question has no words in it.")
    return question


def _label(paper: Paper) -> str:
    """How a follow-up rewrite names a paper."""
    return next((a for a in paper.aliases if len(a.split()) <= 2), paper.title)


def condense(question: str, history: list[dict[str, str]], papers: list[Paper]) -> tuple[str, list[str]]:
    """Rewrite a follow-up into a standalone question by carrying the papers of the previous turns (no LLM)."""
    if not history or mentioned_papers(question, papers):
        return question, []
    carried: list[str] = []
    for turn in reversed(history):
        if str(turn.get("content", "")).startswith(ABSTAIN_SENTENCE):
            continue  # an abstention's "Closest: …" list is not what the conversation was about
        carried = mentioned_papers(str(turn.get("content", "")), papers)
        if carried:
            break
    if not carried:
        return question, []
    has_anaphora = bool(_ANAPHORA.search(question))
    if not has_anaphora and len(words(question)) > 8:
        return question, []
    by_id = {p.id: p for p in papers}
    names = " and ".join(_label(by_id[pid]) for pid in carried[:3])
    text = _LEADING.sub("", question)

    def repl(m: re.Match[str]) -> str:
        word = m.group(0).lower()
        return f"{names}'s" if word in {"its", "their"} else names

    rewritten = _ANAPHORA.sub(repl, text) if has_anaphora else f"{text.rstrip('?')} in {names}?"
    return rewritten[:1].upper() + rewritten[1:], carried


# "What batch size did GShard use?": the thing asked for sits between the wh-word and the verb.
_HEAD = re.compile(r"\b(?:how many|what|which)\s+((?:[\w-]+\s+){0,3}?[\w-]+)\s+(?:did|does|do|was|were|is|are|has|have)\b",
                   re.IGNORECASE)


def missing_head_words(question: str, text: str) -> list[str]:
    """Words of the asked-for thing ('batch size', 'learning rate') that the text lacks, if most are missing."""
    m = _HEAD.search(question)
    if not m:
        return []
    head = [w for w in words(m.group(1)) if w not in extractive.QUESTION_WORDS and len(w) > 1 and not w.isdigit()]
    head = [w for w in head if w not in {"of", "the", "a", "an", "exact", "precise", "specific"}]
    if not head:
        return []
    have = {extractive.stem(w)[:5] for t in words(text) for w in [t, *t.split("-")]}
    missing = [w for w in head if not any(extractive.stem(p)[:5] in have for p in [w, *w.split("-")] if p)]
    return missing if len(missing) * 2 > len(head) else []


def _known_name(token: str, vocab: set[str]) -> bool:
    """Whether the papers use a name: 'LLaMa-style' counts as known when 'LLaMa' is (its capitalised part)."""
    if all(w in vocab for w in words(token)):
        return True
    parts = [p for p in token.split("-") if p]
    named = [p for p in parts if any(ch.isupper() or ch.isdigit() for ch in p)] or parts
    return all(all(w in vocab for w in words(p)) for p in named)


class Pipeline:
    """The whole question-answering pipeline over one index; thread-safe; nothing is loaded until first use."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._index: Index | None = None
        self._lock = threading.Lock()
        self._sent_cache: dict[str, np.ndarray] = {}
        self._idf: tuple[int, dict[str, float], set[str]] | None = None
        self.chain = self.build_chain()

    # -- index -----------------------------------------------------------------------------------------------
    @property
    def index(self) -> Index:
        """The index, built from the corpus on first use."""
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = Index(ensure_index(self.settings), self.settings)
        return self._index

    def papers(self) -> list[Paper]:
        """Every indexed paper."""
        return self.index.corpus().papers

    def ingest(self, paths: list[Path], reset: bool = False) -> IngestReport:
        """Add papers from files, then refresh the in-memory retrieval view."""
        report = ingest_paths(paths, self.settings, reset=reset)
        self._index = None
        return report

    def _vocab(self) -> tuple[dict[str, float], set[str]]:
        """IDF table and vocabulary of the indexed passages (recomputed when the index changes)."""
        corpus = self.index.corpus()
        if self._idf is None or self._idf[0] != corpus.count:
            texts = [f"{m['title']} {t}" for m, t in zip(corpus.metas, corpus.texts, strict=True)]
            vocab = {w for t in texts for w in words(t)} | {w for p in corpus.papers for a in p.aliases for w in words(a)}
            vocab |= {part for w in list(vocab) if "-" in w for part in w.split("-")}
            self._idf = (corpus.count, extractive.idf_table(texts), vocab)
        return self._idf[1], self._idf[2]

    def _embed_sentences(self, texts: list[str]) -> np.ndarray:
        """Sentence vectors, cached: the same passage sentences come back question after question."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._sent_cache]
        if missing:
            for t, v in zip(missing, self.index.embedder.encode(missing), strict=True):
                self._sent_cache[t] = v
        return np.stack([self._sent_cache[t] for t in texts])

    # -- chain steps ---------------------------------------------------------------------------------------------
    def _condense(self, state: dict[str, Any]) -> dict[str, Any]:
        """Standalone question and the papers carried over from history (an LLM helps only where rules cannot)."""
        history, papers = state.get("history") or [], self.papers()
        standalone, carried = condense(state["question"], history, papers)
        answerer = state.get("answerer") or self.settings.answerer
        if history and not carried and answerer != "extractive" and not mentioned_papers(standalone, papers):
            standalone = self._llm_condense(state["question"], history, answerer) or standalone
        return {"standalone": standalone, "carried": carried}

    def _llm_condense(self, question: str, history: list[dict[str, str]], answerer: str) -> str | None:
        """The LLM's rewrite of a follow-up, accepted only if it names a paper of the index; None otherwise."""
        from rag.llm import complete

        turns = "\n".join(f"{t['role']}: {t['content'][:500]}" for t in history[-4:])
        try:
            reply = complete(self._chat_model(answerer), load_prompt("condense").messages(history=turns, question=question))
        except Exception as exc:  # condensing is an optimisation: the answer step reports LLM failures
            log.info("LLM condense failed: %s", exc)
            return None
        line = next((ln.strip() for ln in reply.splitlines() if ln.strip()), "")[: self.settings.max_question_chars]
        return line if mentioned_papers(line, self.papers()) else None

    def _chat_model(self, answerer: str) -> Any:
        """The chat model of an LLM answerer (the local llama.cpp server for 'local')."""
        from rag.llm import chat_model, get_local_server

        if answerer == "local":
            server = get_local_server(self.settings)
            return chat_model(self.settings, base_url=server.base_url, model=server.model)
        return chat_model(self.settings)

    def _retrieve(self, state: dict[str, Any]) -> dict[str, Any]:
        """Passages for the standalone question; per named paper for comparisons."""
        q = state["condensed"]["standalone"]
        retriever = make_retriever(self.index, self.settings, paper_ids=state.get("paper_ids"),
                                   mode=state.get("retrieval"), k=state.get("k"))
        papers = self.papers()
        named = mentioned_papers(q, papers)
        chosen = list(state.get("paper_ids") or [])
        compare_ids = named if len(named) >= 2 else chosen
        is_compare = bool(state.get("compare")) or (len(compare_ids) >= 2 and bool(_COMPARE.search(q)))
        qvec = retriever.embed(q)  # once per question: retrieval, abstention and sentence scoring share it
        if is_compare and len(compare_ids) >= 2:
            docs: list[Document] = []
            for pid in compare_ids[:5]:
                docs.extend(retriever.search(q, paper_ids=[pid], k=3, qvec=qvec, mentioned=named))
            return {"docs": docs, "named": compare_ids[:5], "compare": True, "ranking": self._ranking(docs),
                    "qvec": qvec}
        docs = retriever.search(q, qvec=qvec, mentioned=named)
        return {"docs": docs, "named": named, "compare": False, "ranking": self._ranking(docs), "qvec": qvec}

    @staticmethod
    def _ranking(docs: list[Document]) -> list[str]:
        """Unique paper ids in retrieval order."""
        return list(dict.fromkeys(d.metadata["paper_id"] for d in docs))

    def _decide(self, state: dict[str, Any]) -> dict[str, Any]:
        """Score candidate sentences and decide whether the papers answer the question at all."""
        q = state["condensed"]["standalone"]
        found = state["found"]
        sources = to_sources(found["docs"])
        cands = extractive.candidates(sources)
        idf, vocab = self._vocab()
        by_id = {p.id: p for p in self.papers()}
        extractive.score_candidates(q, cands, found["qvec"], self._embed_sentences, idf, found["named"], by_id)
        reason = self._abstain_reason(q, cands, found, vocab, idf, by_id)
        return {"sources": sources, "cands": cands, "abstain": reason}

    def _abstain_reason(self, q: str, cands: list[Candidate], found: dict[str, Any], vocab: set[str],
                        idf: dict[str, float], by_id: dict[str, Paper]) -> str:
        """Why to abstain ('' to answer): nothing retrieved, an unknown name, or no sentence close enough."""
        if not cands:
            return "nothing retrieved"
        if found["compare"]:
            return ""
        tokens = [m.group(1) for m in _NAME_LIKE.finditer(q) if m.start() > 0]
        unknown = [t for t in tokens if not _known_name(t, vocab)]
        if unknown:
            return f"the papers never mention {', '.join(unknown)}"
        best = max(c.score for c in cands)
        names = [a for pid in found["named"] for a in [*by_id[pid].aliases, by_id[pid].title]]
        if found["named"] and not extractive.focus_terms(q, names):
            return ""  # "What is X?" / "What does the X paper propose?": the paper itself is the topic
        if best < self.settings.abstain_threshold:
            return f"no passage is close enough (best score {best:.2f})"
        if found["named"]:
            text = " ".join(by_id[pid].abstract for pid in found["named"])
            missing = missing_head_words(q, text)
            if missing:
                return f"the named paper's abstract does not give the {' '.join(missing)}"
        return ""

    def _extractive(self, state: dict[str, Any]) -> tuple[str, list[Any]]:
        """The extractive answer or comparison table."""
        cands: list[Candidate] = state["decision"]["cands"]
        by_id = {p.id: p for p in self.papers()}
        if state["found"]["compare"]:
            per_paper = {pid: [c for c in cands if c.source.paper_id == pid] for pid in state["found"]["named"]}
            return extractive.compare_table(per_paper, by_id)
        chosen = extractive.select(cands, self.settings.max_answer_sentences, state["found"]["named"])
        return extractive.compose(chosen, by_id)

    def _abstention(self, state: dict[str, Any]) -> str:
        """The sentinel plus the nearest papers."""
        titles = [s.title for s in {s.paper_id: s for s in state["decision"]["sources"]}.values()][:3]
        return f"{ABSTAIN_SENTENCE} Closest: {'; '.join(titles)}." if titles else ABSTAIN_SENTENCE

    def _compose(self, state: dict[str, Any]) -> dict[str, Any]:
        """Compose the answer text (non-streaming): abstention, extractive, or LLM with extractive fallback."""
        if state["decision"]["abstain"]:
            return {"text": self._abstention(state), "answerer": "extractive"}
        answerer = state.get("answerer") or self.settings.answerer
        if answerer == "extractive":
            return {"text": self._extractive(state)[0], "answerer": "extractive"}
        chunks = []
        try:
            for delta in self._llm_stream(state, answerer):
                chunks.append(delta)
        except Exception as exc:  # every LLM failure becomes a notice plus the extractive answer
            return self._llm_failed(state, answerer, exc)
        return {"text": "".join(chunks), "answerer": answerer}

    def _llm_failed(self, state: dict[str, Any], answerer: str, exc: BaseException) -> dict[str, Any]:
        """A friendly notice and the extractive answer when the LLM cannot answer."""
        from rag.llm import friendly_error

        err = friendly_error(exc)
        log.warning("LLM answerer %s failed: %s", answerer, err)
        return {"text": self._extractive(state)[0], "answerer": "extractive",
                "notice": f"{err} Showing the extractive answer instead."}

    def _llm_messages(self, state: dict[str, Any], answerer: str) -> list[tuple[str, str]]:
        """Prompt messages with passages delimited as data, numbered, within the token budget."""
        budget = self.settings.local_prompt_token_budget if answerer == "local" else self.settings.prompt_token_budget
        blocks, used = [], 0
        for s in state["decision"]["sources"]:
            block = f'<passage n="{s.n}" paper="{s.title}">\n{s.text}\n</passage>'
            cost = count_tokens(block)
            if blocks and used + cost > budget:
                break
            blocks.append(block)
            used += cost
        passages = "\n".join(blocks)
        q = state["condensed"]["standalone"]
        if state["found"]["compare"]:
            names = ", ".join(s.title for s in {s.paper_id: s for s in state["decision"]["sources"]}.values())
            return load_prompt("compare").messages(passages=passages, question=q, papers=names,
                                                   abstain=ABSTAIN_SENTENCE, canary=_CANARY)
        return load_prompt("answer").messages(passages=passages, question=q, abstain=ABSTAIN_SENTENCE,
                                              max_sentences=self.settings.max_answer_sentences, canary=_CANARY)

    def _llm_stream(self, state: dict[str, Any], answerer: str) -> Iterator[str]:
        """Text deltas from the OpenAI-compatible model (the local llama.cpp server for 'local')."""
        from rag.llm import stream_text

        yield from stream_text(self._chat_model(answerer), self._llm_messages(state, answerer))

    def _check(self, state: dict[str, Any]) -> Answer:
        """Check citations and assemble the typed Answer."""
        comp = state["composed"]
        leaked = _CANARY in comp["text"]
        text: str = sanitize(comp["text"])  # before the text is copied into sentences or an abstention
        sources: list[Source] = state["decision"]["sources"]
        abstained = bool(state["decision"]["abstain"]) or ABSTAIN_SENTENCE.lower() in text.lower()
        answer = Answer(question=state["question"], standalone_question=state["condensed"]["standalone"],
                        answer=text, abstained=abstained, answerer=comp["answerer"], sources=sources,
                        notice=comp.get("notice", ""), paper_ids=state["found"]["ranking"], grounded=not leaked)
        if abstained:
            answer.closest_papers = answer.paper_ids[:3]
            answer.answer = text if text.startswith(ABSTAIN_SENTENCE) else self._abstention(state)
            answer.notice = answer.notice or str(state["decision"]["abstain"] or "")
            return answer
        checked = check_citations(text, sources)
        answer.answer, answer.sentences = checked.text, checked.sentences
        answer.removed_citations = checked.removed
        if comp["answerer"] != "extractive" and not checked.grounded:
            answer.grounded = False
            answer.notice = (f"This {comp['answerer']} answer is not backed by its citations: "
                             f"{len(checked.sentences) - checked.supported} of {len(checked.sentences)} sentences "
                             f"unsupported, {checked.fabricated} citation(s) to passages that do not exist. "
                             "The extractive evidence is shown below.")
            answer.evidence = self._extractive(state)[0]
        return answer

    # -- LCEL ------------------------------------------------------------------------------------------------------
    def build_prepare(self) -> Runnable:
        """condense -> retrieve -> decide, as named LCEL steps."""
        return (
            RunnablePassthrough.assign(condensed=RunnableLambda(self._condense).with_config(run_name="condense"))
            | RunnablePassthrough.assign(found=RunnableLambda(self._retrieve).with_config(run_name="retrieve"))
            | RunnablePassthrough.assign(decision=RunnableLambda(self._decide).with_config(run_name="abstain"))
        )

    def build_chain(self) -> Runnable:
        """The full answer chain: prepare -> compose -> check."""
        return (
            self.build_prepare()
            | RunnablePassthrough.assign(composed=RunnableLambda(self._compose).with_config(run_name="compose"))
            | RunnableLambda(self._check).with_config(run_name="check")
        )

    def _inputs(self, question: str, history: list[dict[str, str]] | None, answerer: str | None,
                paper_ids: list[str] | None, k: int | None, retrieval: str | None, compare: bool) -> dict[str, Any]:
        """Validated chain inputs."""
        question = validate_question(question, self.settings)
        if answerer is not None and answerer not in ANSWERERS:
            raise QuestionError(f"Unknown answerer {answerer!r}; choose one of {', '.join(ANSWERERS)}.")
        known = {p.id for p in self.papers()}
        unknown = [p for p in paper_ids or [] if p not in known]
        if unknown:
            raise QuestionError(f"Unknown paper id(s): {', '.join(unknown)}. See 'paperchat papers'.")
        history = [{"role": str(t.get("role", "")), "content": str(t.get("content", ""))[:4000]}
                   for t in (history or [])][-8:]
        return {"question": question, "history": history, "answerer": answerer, "paper_ids": paper_ids or None,
                "k": k, "retrieval": retrieval, "compare": compare}

    def answer(self, question: str, history: list[dict[str, str]] | None = None, answerer: str | None = None,
               paper_ids: list[str] | None = None, k: int | None = None, retrieval: str | None = None,
               compare: bool = False) -> Answer:
        """Answer one question (with optional conversation history) through the LCEL chain."""
        t0 = time.perf_counter()
        answer: Answer = self.chain.invoke(self._inputs(question, history, answerer, paper_ids, k, retrieval, compare))
        answer.timings_ms["total"] = round((time.perf_counter() - t0) * 1000, 1)
        return answer

    def stream(self, question: str, history: list[dict[str, str]] | None = None, answerer: str | None = None,
               paper_ids: list[str] | None = None, k: int | None = None, retrieval: str | None = None,
               compare: bool = False) -> Iterator[tuple[str, Any]]:
        """Yield ('standalone', str), ('sources', [Source]), ('text', delta)…, then ('answer', Answer)."""
        t0 = time.perf_counter()
        state = self.build_prepare().invoke(self._inputs(question, history, answerer, paper_ids, k, retrieval, compare))
        t_prep = time.perf_counter()
        yield "standalone", state["condensed"]["standalone"]
        yield "sources", state["decision"]["sources"]
        chosen = state.get("answerer") or self.settings.answerer
        first_token = None
        if state["decision"]["abstain"] or chosen == "extractive":
            composed = self._compose(state)
            first_token = time.perf_counter()
            yield "text", composed["text"]
        else:
            parts: list[str] = []
            try:
                def raw() -> Iterator[str]:
                    for delta in self._llm_stream(state, chosen):
                        parts.append(delta)
                        yield delta

                for delta in _redact_canary(raw()):
                    first_token = first_token or time.perf_counter()
                    yield "text", delta
                composed = {"text": "".join(parts), "answerer": chosen}
            except Exception as exc:
                composed = self._llm_failed(state, chosen, exc)
                first_token = first_token or time.perf_counter()
                yield "reset", composed["notice"]
                yield "text", composed["text"]
        state["composed"] = composed
        answer = self._check(state)
        end = time.perf_counter()
        answer.timings_ms.update(prepare=round((t_prep - t0) * 1000, 1),
                                 first_text=round(((first_token or end) - t0) * 1000, 1),
                                 total=round((end - t0) * 1000, 1))
        yield "answer", answer
