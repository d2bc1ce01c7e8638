"""Pipeline: the public entry point over one index: answer(), stream(), papers(), ingest()."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda

from rag.answer.chain import Engine, create_chain, create_prepare, stream_events, timed
from rag.answer.models import Question, State
from rag.answer.read import ReaderSlot
from rag.answer.request import build_request
from rag.ingest import IngestReport, Progress, ensure_index, ingest_paths, remove_papers
from rag.retrieve import Index
from rag.settings import Settings
from rag.store import PaperRecord
from rag.types import Answer, Paper

_T = TypeVar("_T")


class Pipeline:
    """Question answering over one index; thread-safe; nothing is loaded until first use. Dependencies passed in
    (tests pass fakes): chat_model, the LangChain chat model of the LLM answerers (else made from the settings or the
    local llama.cpp server); reader, the reading model (else the installed one the settings name); view_progress,
    told how a view build goes (the CLI shows a bar)."""

    def __init__(self, settings: Settings | None = None, chat_model: Any = None,
                 view_progress: Progress | None = None, reader: Any = None) -> None:
        self.settings = settings or Settings()
        self._chat_model = chat_model
        self.reader = ReaderSlot(self.settings, reader)
        self._view_progress = view_progress
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The stages' dependencies, the index built from the corpus on first use."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    index = Index(ensure_index(self.settings), self.settings, progress=self._view_progress)
                    self._engine = Engine(index, self.settings, self.chat_model, reader=self.reader)
        return self._engine

    @property
    def index(self) -> Index:
        """The retrieval index."""
        return self.engine.index

    def chat_model(self, answerer: str) -> Any:
        """The chat model of an LLM answerer: the one passed in, else one made from the settings."""
        from rag.llm.chat import answerer_model  # the OpenAI client is imported only when an LLM answers

        return self._chat_model if self._chat_model is not None else answerer_model(self.settings, answerer)

    def papers(self) -> list[Paper]:
        """Every indexed paper."""
        return self.engine.tables().papers

    def open(self) -> None:
        """Open the index until it is ready to answer (building it from the corpus on first use), then take one
        question through analysis, retrieval and decision offline: the first real question pays no first-use cost."""
        self.engine.index.open()
        self.prepare("How much memory does the method save?", answerer="extractive", reader=False)
        self.reader.warm(self.papers())  # the reading model reads the abstracts ahead, in the background

    def records(self) -> list[PaperRecord]:
        """Every indexed paper with its passage count and order, read from the index."""
        return self.engine.index.store.records()

    def ingest(self, paths: list[Path], reset: bool = False, replace: bool = False,
               progress: Progress | None = None) -> IngestReport:
        """Add papers from files and folders (replace: let a paper take over another paper's id); the retrieval view
        follows the index's generation stamp, in this process and in every other one."""
        return self._wrote(ingest_paths(paths, self.settings, reset=reset, replace=replace, progress=progress))

    def remove(self, paper_ids: list[str]) -> int:
        """Remove papers by id; returns the passages removed."""
        return self._wrote(remove_papers(paper_ids, self.settings))

    def _wrote(self, result: _T) -> _T:
        """This process changed the index: the view reloads on the next question, without waiting for the check."""
        if self._engine is not None:
            self._engine.index.invalidate()
        return result

    def _state(self, question: str, **options: Any) -> State:
        """The chain's input: a validated request."""
        return State(request=build_request(question, self.settings, lambda: {p.id for p in self.papers()}, **options))

    def _question_state(self, question: Question | dict | str) -> State:
        """The chain's input from the Runnable's: a Question, a dict of its fields, or the question text."""
        q = Question(question=question) if isinstance(question, str) else Question.model_validate(question)
        return self._state(q.question, **q.model_dump(exclude={"question"}))

    def runnable(self) -> Runnable[Question, Answer]:
        """The answer chain as a LangChain Runnable: a Question (or its dict, or the text) in, the Answer out.

        It composes like any Runnable (`|`, `.with_config`, `.batch`, `.astream_events`); callbacks see the named
        steps request/analyse/retrieve/decide/compose/verify. The text streams as one piece: for the answer growing
        word by word use stream().
        """
        return (RunnableLambda(self._question_state).with_config(run_name="request")
                | create_chain(self.engine)).with_types(input_type=Question,  # type: ignore[return-value]
                                                        output_type=Answer).with_config(run_name="paperchat")

    def prepare(self, question: str, config: RunnableConfig | None = None, **options: Any) -> State:
        """The state after analyse, retrieve and decide (what an LLM would be prompted with, and why)."""
        state = self._state(question, **options)  # validated before anything is loaded
        return create_prepare(self.engine).invoke(state, config=config)

    def answer(self, question: str, config: RunnableConfig | None = None, **options: Any) -> Answer:
        """Answer one question. Options: history, answerer, paper_ids, k, retrieval, compare.

        config: a LangChain RunnableConfig (callbacks see the named steps analyse/retrieve/decide/compose/verify).
        """
        t0 = time.perf_counter()
        state = self._state(question, **options)  # validated before anything is loaded
        answer: Answer = create_chain(self.engine).invoke(state, config=config)
        answer.timings_ms["total"] = timed(t0)
        return answer

    def stream(self, question: str, preliminary: bool = False, **options: Any) -> Iterator[tuple[str, Any]]:
        """Yield ('standalone', str), ('sources', [Source]), ('text', delta)… ('reset', notice)?, ('answer', Answer).
        preliminary: the rules' extractive text first, replaced (a 'reset') if the reading model changes it."""
        yield from stream_events(self._state(question, **options), self.engine, preliminary)
