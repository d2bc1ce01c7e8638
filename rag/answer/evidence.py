"""Sentence evidence: every sentence of the retrieved passages, scored against the question.

score = 0.6 * dense similarity (MiniLM, sentence vs question) + 0.4 * lexical coverage (IDF-weighted share of the
question's topic words the sentence contains) + a bonus when the sentence is the kind of evidence the question asks
for (a number for how-much, a problem statement for why, an introduction for what-is, a mechanism for how) and when
it comes from a paper the question names. The same score serves abstention, sentence choice, lists and tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from rag.answer.models import Analysis, Evidence, Kind
from rag.text import FAMILY_PREFIX, same_word_family, split_sentences, stems
from rag.types import Source

SentenceVectors = Callable[[list[tuple[str, int, int]]], np.ndarray]

CUES: dict[str, re.Pattern[str]] = {
    "problem": re.compile(r"\b(challeng\w*|bottleneck\w*|suffer\w*|struggl\w*|however|limit\w*|ill-suited|"
                          r"inefficien\w*|problem\w*|difficult\w*|costly|insufficient|impractical|lack\w*|hinder\w*|"
                          r"unsafe|insecur\w*|concern\w*|risk\w*|mismatch\w*|neither|need\w*|requires?)\b", re.I),
    "approach": re.compile(r"\b(we (propose|present|introduce|design|build|develop|devise|employ|use)|"
                           r"this paper (proposes|introduces|presents|offers|investigates)|introduces|"
                           r"is an? (module|system|framework|dataset|technique|engine|approach|mechanism)|"
                           r"key (idea|insight)|consists? of|by (splitting|using|fusing)|through)\b", re.I),
    "result": re.compile(r"(\d+(\.\d+)?\s*(x|×|%|times)|\b(outperform\w*|achiev\w*|improv\w*|speed-?up\w*|"
                         r"reduc\w*|surpass\w*|experiments? (show|demonstrat)\w*|results? (show|find|highlight)\w*|"
                         r"evaluation\w* (show|demonstrat|reveal)\w*|comparable|on-par|degrade\w*)\b)", re.I),
    "intro": re.compile(r"\b(we (propose|present|introduce|design|build|develop)|this paper (proposes|introduces|"
                        r"presents|investigates|offers)|introduces|is an? (module|system|framework|dataset|technique|"
                        r"engine)|in this (paper|work), we)\b", re.I),
    "number": re.compile(r"\d"),
    "limitation": re.compile(r"\b(limitations?|cannot|can ?not|fails? to|does not|do not|is limited|only works|"
                             r"restricted to|at the cost of|trade-?off)\b", re.I),
}
MEASURED = re.compile(r"\d+(\.\d+)?\s*((x|×|times)\b|%)|\b\d[\d,. ]*\s*(billion|million|models|datasets|episodes|"
                      r"parameters|gpus|devices|accelerators|languages|days|tokens)\b", re.I)
BACKGROUND = re.compile(r"^(recently|existing|prior|previous|traditional|conventional|various|most existing|"
                        r"while prior|in the conventional)\b|\bhave been proposed\b", re.I)
DEPENDENT = re.compile(r"^(this|these|that|those|it|its|they|their|such|to do so|to address this|to this end|then|"
                       r"thus|therefore|hence|as a result|in addition|additionally|furthermore|moreover|second|"
                       r"third|finally|specifically|consequently|in contrast|in such a case)\b"
                       r"(?!\s+(paper|work|study|article)\b)", re.I)  # "This paper introduces …" stands alone
KIND_CUE: dict[Kind, str] = {"how_much": "number", "why": "problem", "what": "intro", "how": "approach",
                             "limitation": "limitation"}
KIND_BONUS = 0.12
NAMED_BONUS = 0.08


def candidates(sources: list[Source]) -> list[Evidence]:
    """Sentences of all sources, each kept once (overlapping chunks repeat sentences)."""
    seen: set[tuple[str, int]] = set()
    out: list[Evidence] = []
    for src in sources:
        for a, b in split_sentences(src.text):
            key = (src.paper_id, src.start + a)
            if key in seen:
                continue
            seen.add(key)
            out.append(Evidence(n=src.n, paper_id=src.paper_id, start=a, end=b, pos=src.start + a, text=src.text[a:b]))
    return out


def has_term(term: str, have: set[str]) -> bool:
    """Whether a topic stem is among have (a compound 'mixture-of-expert' only when all its parts are), or shares a
    word family with one."""
    if term in have:
        return True
    if "-" in term:
        return all(has_term(p, have) for p in term.split("-"))
    return len(term) >= FAMILY_PREFIX and any(same_word_family(term, h) for h in have)


def coverage(terms: list[str], text: str, idf: dict[str, float]) -> float:
    """IDF-weighted share of terms that text contains (stem match); a term no passage contains weighs 1."""
    if not terms:
        return 0.0
    have = stems(text)
    weights = {t: max(idf.get(p, 1.0) for p in t.split("-")) for t in terms}  # a compound weighs as its rarest part
    return sum(w for t, w in weights.items() if has_term(t, have)) / (sum(weights.values()) or 1.0)


def score(analysis: Analysis, sources: list[Source], qvec: np.ndarray, vectors: SentenceVectors,
          idf: dict[str, float], topic_vec: np.ndarray | None = None) -> list[Evidence]:
    """The scored sentences of the sources, in source order. dense is the closer of the sentence to the question
    and to its topic without the papers' names (topic_vec), so a sentence that answers without repeating the name
    is not outranked by one that only names the paper."""
    cands = candidates(sources)
    if not cands:
        return []
    chunk_of = {s.n: s.chunk_id for s in sources}
    vecs = vectors([(chunk_of[c.n], c.start, c.end) for c in cands])
    cue = CUES.get(analysis.cue or KIND_CUE.get(analysis.kind, ""), None)
    about_paper = bool(analysis.papers) and not analysis.focus
    defines = [re.compile(rf"\(\s*{re.escape(n)}\s*\)|^{re.escape(n)}\s+(is|are)\b|\b(propose|introduce|present|design|"
                          rf"build)\w*\s+(\w+\s+){{0,6}}{re.escape(n)}\b", re.IGNORECASE)
               for n in analysis.names] if analysis.kind in ("what", "expansion") else []
    # An abstract states its problem before its contribution: for 'what problem does X solve?' a problem sentence
    # ahead of the paper's introduction ('we propose …') is the problem, one after it a detail of the solution.
    intro_at = {c.paper_id: c.pos for c in reversed(cands) if CUES["intro"].search(c.text)} \
        if analysis.kind == "why" and about_paper else {}
    for c, v in zip(cands, vecs, strict=True):
        c.topical = float(np.dot(v, qvec if topic_vec is None else topic_vec))
        # A question about nothing but its paper ('What problem does X solve?'): the name says nothing of which
        # sentence answers, so only the nameless similarity counts.
        c.dense = c.topical if about_paper and topic_vec is not None else max(float(np.dot(v, qvec)), c.topical)
        c.lexical = coverage(analysis.focus, c.text, idf)
        bonus = 0.0
        if cue is not None and cue.search(c.text) and (analysis.kind != "what" or about_paper or analysis.cue):
            bonus += KIND_BONUS if analysis.kind != "how_much" or MEASURED.search(c.text) else KIND_BONUS / 2
        if c.paper_id in analysis.papers:
            bonus += NAMED_BONUS
        if cue is not None and c.pos < intro_at.get(c.paper_id, -1) and cue.search(c.text):
            bonus += KIND_BONUS
        if any(d.search(c.text) for d in defines):  # where the name the question uses is defined
            bonus += KIND_BONUS
        if BACKGROUND.search(c.text):
            bonus -= 0.04
        c.score = round(0.6 * c.dense + 0.4 * c.lexical + bonus, 4)
    return cands
