"""Key facts as people write them and as the question set stores them (regex alternatives), and the facts an answer
suggests: the numbers and names of the sentences it cites."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from rag.eval.questions import Category
from rag.text import content_words
from rag.types import Answer

_NUMBER_UNIT = re.compile(r"^(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>x|×|times|-fold|%)$", re.IGNORECASE)
_X = r"\s*(?:x|×|times)"
# a figure ("1.78x", "30%", "4 GPUs", "7B") or a name (vLLM, LLaMA, 2BP, ZeRO-3): what an answer must keep
_FIGURE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s*(?:x|×|%|times|-fold|\s?[KMBT]\b|\s(?:GPUs?|tokens|nodes|layers)\b)"
                     r"|(?<![\w.])\d+\.\d+(?![\w.])", re.IGNORECASE)
_NAME = re.compile(r"(?<![\w-])(?:[A-Z][a-z]+[A-Z][\w-]*|[A-Z]{2,}[\w-]*|\d+[A-Z][\w-]*|[a-z]+[A-Z][\w-]*)(?![\w-])")
_RAW = "re:"
_GENERIC = {"llm", "llms", "gpu", "gpus", "cpu", "cpus", "ai", "ml", "nlp", "api", "moe", "sota", "dnn", "dnns"}


def fact_pattern(text: str) -> str:
    """The regex of a fact written as plain text: '1.78x' also matches '1.78 ×' and '1.78 times', spaces are any
    whitespace, everything else literal (case is ignored when matching). 're:PATTERN' is taken as a regex."""
    text = text.strip()
    if text.startswith(_RAW):
        return text[len(_RAW):].strip()
    m = _NUMBER_UNIT.match(text)
    if m:
        num = re.escape(m.group("num"))
        return num + (r"\s*%" if m.group("unit") == "%" else _X)
    return r"\s+".join(re.escape(part) for part in text.split())


def fact_text(pattern: str) -> str:
    """The plain text a pattern of fact_pattern came from, else 're:PATTERN'."""
    guess = pattern.replace(_X, "x").replace(r"\s*%", "%").replace(r"\s+", " ")
    guess = re.sub(r"\\(.)", r"\1", guess)
    return guess if fact_pattern(guess) == pattern else _RAW + pattern


def parse_facts(text: str) -> list[list[str]]:
    """Facts from a form: one fact per line, alternatives separated by ' | '; each as its regex."""
    facts = []
    for line in text.splitlines():
        alternatives = [fact_pattern(a) for a in line.split(" | ") if a.strip()]
        if alternatives:
            facts.append(alternatives)
    return facts


def format_facts(facts: Sequence[Sequence[str]]) -> str:
    """Facts for a form: the inverse of parse_facts."""
    return "\n".join(" | ".join(fact_text(p) for p in alternatives) for alternatives in facts)


def suggest_facts(answer: Answer, limit: int = 6, question: str = "") -> list[str]:
    """Numbers and names in the sentences the answer cites (its supported sentences first), each once; none the
    question already says. Without either, the longest words of the first cited sentence that the question lacks
    (an answer about a problem has no figure, but 'imbalanced' or 'utilization' still tell it apart)."""
    cited = [s.text for s in answer.sentences if s.citations]
    texts = cited or ([answer.answer] if not answer.abstained else [])
    asked = {w.lower() for w in re.findall(r"[\w.-]+", question)}
    found: list[str] = []
    for text in texts:
        found += [m.group(0).strip() for m in _FIGURE.finditer(text)]
        found += [m.group(0) for m in _NAME.finditer(text) if m.group(0).lower() not in _GENERIC]
    seen: dict[str, str] = {}
    for fact in found:
        if fact.lower() not in asked:
            seen.setdefault(fact.lower(), fact)
    if not seen and texts:
        words = [w for w in content_words(texts[0]) if w.isalpha() and len(w) > 6 and w.lower() not in asked]
        seen = {w.lower(): w for w in sorted(dict.fromkeys(words), key=len, reverse=True)[:2]}
    return list(seen.values())[:limit]


def cited_papers(answer: Answer) -> list[str]:
    """The papers the answer's sentences cite, in order of first citation."""
    by_n = {s.n: s.paper_id for s in answer.sources}
    return list(dict.fromkeys(by_n[n] for s in answer.sentences for n in s.citations if n in by_n))


def guess_category(question: str, papers: Iterable[str], history: Sequence[object], abstain: bool) -> Category:
    """The question-set category a saved question most likely belongs to."""
    if abstain:
        return "unanswerable"
    if history:
        return "followup"
    if re.match(r"\s*compare\b", question, re.IGNORECASE) or re.search(r"\bvs\.?\b|\bversus\b", question):
        return "compare"
    return "multi" if len(list(papers)) > 1 else "factoid"
