"""Corpus term statistics, computed once per index generation: the vocabulary the papers use, the IDF of their
stemmed words, the names they use, and the tokens BM25 indexes."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from rag.text import content_words, hyphen_parts, stem, stems, words


def bm25_tokens(text: str) -> list[str]:
    """BM25 tokens: content words, hyphen parts kept too (re-sharding finds resharding and sharding)."""
    toks = []
    for w in content_words(text):
        toks.append(w)
        if "-" in w:
            toks.extend(hyphen_parts(w))
            toks.append(w.replace("-", ""))
    return toks


def vocabulary(passage_words: set[str], aliases: Iterable[str]) -> set[str]:
    """Every word the passages (passage_words: rag.text.words of each) and the papers' aliases use, with the parts of
    hyphenated and dotted words."""
    vocab = passage_words | {w for a in aliases for w in words(a)}
    vocab |= {part for w in list(vocab) if "-" in w or "." in w for part in w.replace(".", "-").split("-")}
    return vocab


class DocumentFrequency:
    """Counts, text by text, in how many texts each stemmed content word occurs (fed one passage at a time)."""

    def __init__(self) -> None:
        self.df: dict[str, int] = {}
        self.n = 0

    def add(self, text: str) -> None:
        """Count one text."""
        self.n += 1
        for w in stems(text):  # the same terms coverage() matches, hyphen parts included
            self.df[w] = self.df.get(w, 0) + 1

    def idf(self) -> dict[str, float]:
        """Smoothed inverse document frequency of every word counted."""
        n = self.n or 1
        return {w: math.log(1 + n / c) for w, c in self.df.items()}


def idf_table(texts: Iterable[str]) -> dict[str, float]:
    """Smoothed inverse document frequency of stemmed content words over passages."""
    counts = DocumentFrequency()
    for t in texts:
        counts.add(t)
    return counts.idf()


_NAME_LIKE = re.compile(r"\b(?=[\w.-]*(?:[a-z][A-Z]|[A-Z]{2}|[A-Za-z]\d|\d[A-Za-z]))[A-Za-z][\w.-]*\w")
NAME_MAX_SHARE = 1 / 3  # a name used by more of the papers (LLM, GPU) is a common term with synonyms, not a name


def name_terms(texts: list[str]) -> frozenset[str]:
    """Stems of the names the papers use (vLLM, LLaMa-like, FlashAttention-2, GPT-4: mixed case or letters with
    digits; not all-capital acronyms) in at most a third of the texts (one text per paper): a question that names
    one asks about exactly the papers that use it."""
    df: dict[str, int] = {}
    for text in texts:
        mine: set[str] = set()
        for m in _NAME_LIKE.finditer(text):
            token = m.group(0)
            if re.fullmatch(r"[A-Z]+s?", token):  # LLM(s), GPU(s), KV: acronyms the papers also spell out
                continue
            mine.add(stem(token.lower()))
            mine.update(stem(p.lower()) for p in re.split(r"[-.]", token)  # 'LLaMa' of 'LLaMa-like', not 'like'
                        if p[:1].isupper() and not p.isdigit())
        for t in mine:
            df[t] = df.get(t, 0) + 1
    return frozenset(t for t, n in df.items() if n <= max(1, NAME_MAX_SHARE * len(texts)))
