"""Key-fact patterns, compiled by RE2: matching takes time linear in the text, whatever the pattern.

A question set may come from anyone (an upload, the "Add to test set" form): under Python's backtracking `re` a
fact such as `(\\w*\\W*)*#` pins a core for ever, and with it the web server. RE2 has no lookaround or
backreferences; a pattern that uses them is refused with one sentence when the set is read.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import re2

MAX_PATTERN_CHARS = 1000
MAX_PROGRAM_BYTES = 1 << 20  # RE2's memory for one compiled pattern: a huge counted repetition is refused


@functools.cache
def _options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    options.max_mem = MAX_PROGRAM_BYTES
    return options


# Python's escapes that RE2 spells otherwise: \uXXXX and \UXXXXXXXX are \x{…}, \Z is \z (after an even run of
# backslashes, so an escaped backslash followed by 'u' stays as it is).
_PY_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\(?:u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(Z))")


def _re2_syntax(pattern: str) -> str:
    """The pattern with Python-only escapes in RE2's spelling."""
    return _PY_ESCAPE.sub(lambda m: m.group(1) + ("\\z" if m.group(4) else f"\\x{{{m.group(2) or m.group(3)}}}"),
                          pattern)


@functools.lru_cache(maxsize=4096)
def compile_fact(pattern: str) -> Any:
    """The case-insensitive RE2 regex of a fact; ValueError with a one-sentence reason when RE2 cannot take it."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"fact regex is {len(pattern):,} characters long; at most {MAX_PATTERN_CHARS:,} are accepted")
    try:
        return re2.compile(_re2_syntax(pattern), _options())
    except Exception as exc:  # re2.error: the reason comes as bytes
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        hint = (" (lookahead, lookbehind and backreferences are not supported)"
                if "perl operator" in reason or re.search(r"escape sequence: \\\d", reason) else "")
        raise ValueError(f"fact regex {pattern!r} cannot be used: {reason}{hint}") from None


def fact_matches(pattern: str, text: str) -> bool:
    """Whether the fact's pattern occurs in text (case ignored)."""
    return compile_fact(pattern).search(text) is not None
