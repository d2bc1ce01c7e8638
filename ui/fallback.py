"""Remembering that an LLM answerer failed: for a while the chat answers extractively at once and says why, instead of
waiting for the same failure (about 10 s against a server that is not there) on every question. Choosing the answerer
again in Settings tries it at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rag.types import Answer

RETRY_AFTER_S = 60.0
FELL_BACK = " Showing the extractive answer"  # how the chain's notice of a fallback goes on after the error


class LLMMemory:
    """Which LLM answerers failed lately, and why (shared by every session of one app)."""

    def __init__(self, retry_after_s: float = RETRY_AFTER_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_after_s, self.clock = retry_after_s, clock
        self._down: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def route(self, answerer: str) -> tuple[str, str]:
        """(the answerer to ask, the notice saying why it is not the one chosen, or '')."""
        with self._lock:
            failed = self._down.get(answerer)
            if failed is None:
                return answerer, ""
            age = self.clock() - failed[0]
            if age >= self.retry_after_s:
                del self._down[answerer]
                return answerer, ""
        left = max(1, round(self.retry_after_s - age))
        return "extractive", (f"{failed[1]} That was {round(age)} s ago: {answerer} is tried again in {left} s, or "
                              "when you choose it again in Settings. Showing the extractive answer.")

    def learn(self, asked: str, answer: Answer) -> None:
        """Remember a failure of the answerer asked for (the chain fell back to the extractive answer), forget it
        after a success."""
        if asked == "extractive" or answer.abstained:
            return
        with self._lock:
            if answer.answerer == "extractive" and FELL_BACK in answer.notice:
                self._down[asked] = (self.clock(), answer.notice.split(FELL_BACK)[0].strip())
            elif answer.answerer == asked:
                self._down.pop(asked, None)

    def forget(self, *_: object) -> None:
        """Try every answerer again at the next question."""
        with self._lock:
            self._down.clear()
