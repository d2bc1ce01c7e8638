"""Language models: `chat` (the chat-model factory and bounded calls), `errors` (messages users can act on),
`guard` (deadline and byte budget under the HTTP client), `local` (the llama.cpp server).

Import from the submodule: importing this package imports none of them (the extractive path needs no LLM). The
exceptions live here, so the reading model's modules (models, reader) raise them without importing the OpenAI client.
"""

from __future__ import annotations


class LLMError(RuntimeError):
    """The language model cannot be reached or gave no usable answer; the message says why, without secrets."""


class LLMDeadlineExceeded(LLMError):
    """The answer deadline passed before the model finished (stream_text has yielded what came before).

    `seconds`: the budget of a `Deadline`, else how long this call ran.
    """

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


class LLMTruncated(LLMError):
    """The reply reached the character cap; `text` is what was kept (stream_text has already yielded it all)."""

    def __init__(self, limit: int, text: str) -> None:
        super().__init__(f"The model's reply was cut at {limit:,} characters.")
        self.limit, self.text = limit, text

