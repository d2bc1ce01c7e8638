"""The chat's answers as Gradio streams them: within the answer slots (rag.serve.slots), with heartbeats.

Gradio notices a client that left (tab closed, network gone) only between two updates of a streaming event, then
closes the event's generator. An LLM answer may send nothing for a long while, so the chat yields an empty update
(`None` here) every HEARTBEAT_S: Gradio then closes the generator, which stops the answer and its LLM call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")
HEARTBEAT_S = 1.0
_END = object()


async def with_heartbeats(items: AsyncIterator[T], seconds: float = HEARTBEAT_S) -> AsyncIterator[T | None]:
    """items, with None whenever `seconds` pass without one; closing this stops items (and what feeds them)."""
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for item in items:
                await queue.put(item)
        except Exception as exc:  # raised to the consumer below
            await queue.put(exc)
        await queue.put(_END)

    task = asyncio.create_task(pump())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), seconds)
            except TimeoutError:
                yield None
                continue
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            yield item  # type: ignore[misc]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
