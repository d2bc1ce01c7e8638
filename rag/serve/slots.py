"""Answer slots for the servers (the chat, /api, /v1, MCP): extractive answers and LLM answers each have a pool of
their own, so an instant extractive answer never waits behind slow LLM ones, and a request whose caller goes away
stops its LLM call at once and frees its slot.

The work runs in worker threads (the pipeline blocks); waiting for a slot holds no thread. A caller is "gone" when
the task awaiting the work is cancelled: Starlette cancels a streaming response whose client hung up, an MCP server
cancels a request its client cancelled, and ui/ cancels on a disconnect it watches for.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

import anyio

from rag.llm.guard import Cancel, cancelling
from rag.settings import Settings

T = TypeVar("T")
_END = object()


class AnswerSlots:
    """RAG_CONCURRENCY slots for extractive answers and RAG_LLM_CONCURRENCY for LLM ones, shared by every interface
    of one server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._extractive = anyio.CapacityLimiter(settings.concurrency)
        self._llm = anyio.CapacityLimiter(settings.llm_concurrency)

    def limiter(self, answerer: str | None) -> anyio.CapacityLimiter:
        """The pool of an answerer (None: the server's default)."""
        return self._extractive if (answerer or self.settings.answerer) == "extractive" else self._llm

    async def run(self, answerer: str | None, fn: Callable[[], T]) -> T:
        """fn() in a worker thread within the answerer's slots."""
        async with self.limiter(answerer):
            return await in_thread(fn, Cancel())

    async def stream(self, answerer: str | None, events: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        """The items of a blocking iterator (made by events() once a slot is free), each step in a worker thread,
        holding the slot until it ends or is closed."""
        cancel = Cancel()
        async with self.limiter(answerer):
            iterator = events()
            try:
                while (item := await in_thread(lambda: next(iterator, _END), cancel)) is not _END:
                    yield item  # type: ignore[misc]
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()


async def in_thread(fn: Callable[[], T], cancel: Cancel) -> T:
    """fn() in a worker thread under `cancel`. If the awaiting task is cancelled, fn's LLM calls are stopped
    (cancel.cancel()) and this returns, re-raising the cancellation, once fn has (its slot is held till then)."""
    done = threading.Event()

    def work() -> T:
        try:
            with cancelling(cancel):
                return fn()
        finally:
            done.set()

    try:
        return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        cancel.cancel()
        with anyio.CancelScope(shield=True):
            while not done.is_set():
                await anyio.sleep(0.02)
        raise
