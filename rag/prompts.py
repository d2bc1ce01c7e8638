"""Prompt files in prompts/: loaded by name, their placeholders checked against what the code fills in."""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from rag.settings import PROMPTS_DIR

SEPARATOR = "\n===\n"

# The placeholders each prompt must use: a prompt missing one, or adding an unknown one, fails to load.
EXPECTED: dict[str, frozenset[str]] = {
    "answer": frozenset({"passages", "question", "abstain", "max_sentences", "canary"}),
    "compare": frozenset({"passages", "question", "papers", "abstain", "canary"}),
    "condense": frozenset({"history", "question"}),
    "read": frozenset({"title", "passage", "question", "ask"}),
}


class PromptError(ValueError):
    """A prompt file is missing or its placeholders do not match the code."""


@dataclass(frozen=True)
class Prompt:
    """A system message and a user template, each with {placeholders}; a third part, when the file has one, is the
    end of the user message kept apart (the reading prompt: the passage, whose model state is cached, then the
    question about it)."""

    name: str
    system: str
    user: str
    query: str = ""

    @property
    def variables(self) -> frozenset[str]:
        """The placeholders used in either part."""
        return frozenset(f for part in (self.system, self.user, self.query)
                         for _, f, _, _ in string.Formatter().parse(part) if f)

    def messages(self, **values: object) -> list[tuple[str, str]]:
        """(role, content) messages with the placeholders filled; raises PromptError on a missing value."""
        missing = self.variables - values.keys()
        if missing:
            raise PromptError(f"prompt {self.name!r} needs values for: {', '.join(sorted(missing))}")
        return [("system", self.system.format(**values)), ("user", self.user.format(**values))]


@lru_cache(maxsize=None)
def load_prompt(name: str, directory: Path = PROMPTS_DIR) -> Prompt:
    """Load prompts/<name>.md and check its placeholders."""
    path = directory / f"{name}.md"
    if not path.is_file():
        raise PromptError(f"prompt file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if SEPARATOR not in text:
        raise PromptError(f"{path}: expected a system part and a user part separated by a line '==='")
    system, user, *rest = text.split(SEPARATOR, 2)
    prompt = Prompt(name=name, system=system.strip(), user=user.strip(), query=rest[0].strip() if rest else "")
    try:
        found = prompt.variables
    except ValueError as exc:
        raise PromptError(f"{path}: malformed placeholder ({exc})") from None
    expected = EXPECTED.get(name)
    if expected is not None and found != expected:
        raise PromptError(f"{path}: placeholders {sorted(found)} do not match the expected {sorted(expected)}")
    return prompt


def prompt_names(directory: Path = PROMPTS_DIR) -> list[str]:
    """Names of every prompt file."""
    return sorted(p.stem for p in directory.glob("*.md"))
