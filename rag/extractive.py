"""The extractive answerer: picks the passage sentences that answer, groups them per paper, cites each."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rag.text import content_words, numbers, split_sentences
from rag.types import Paper, Sentence, Source

# Words that shape a question but say nothing about its topic.
QUESTION_WORDS = frozenset(
    """what which who whom whose how why when where does do did is are was were paper papers say says said
    tell describe describes main idea ideas propose proposes proposed authors author study studies work
    much many please explain summarize summary give about according system systems approach method
    compare comparison differ difference differences between versus vs report reported reports
    key contribution contributions achieve achieves large big fast long small size used""".split()
)
_QUANTITY = re.compile(r"\b(how (much|many|fast|large|big)|faster|speed-?up|by what|percent|percentage|times|"
                       r"improv\w*|reduc\w*|ratio|number of|size)\b", re.IGNORECASE)
_INTRO_CUE = re.compile(r"\b(we (propose|present|introduce|design|build|develop)|this paper (proposes|introduces|"
                        r"presents)|introduces|is a (module|system|framework|dataset))\b", re.IGNORECASE)
_SUFFIXES = ("ations", "ation", "ings", "ing", "ers", "er", "ies", "ied", "es", "ed", "ly", "s")


def stem(word: str) -> str:
    """A crude suffix-stripping stem: sharding/shards/sharded -> shard."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def focus_terms(question: str, names: list[str]) -> list[str]:
    """The question's topic words: content words minus question words and the named papers' names."""
    name_words = {w for n in names for w in content_words(n)} | {stem(w) for n in names for w in content_words(n)}
    out = []
    for w in content_words(question):
        if w in QUESTION_WORDS or w in name_words or stem(w) in name_words:
            continue
        out.append(stem(w))
    return list(dict.fromkeys(out))


@dataclass
class Candidate:
    """One sentence of one retrieved passage, with its score."""

    source: Source
    start: int
    end: int
    text: str
    abstract_pos: int
    score: float = 0.0
    follows: bool = False
    dense: float = 0.0
    lexical: float = 0.0


def candidates(sources: list[Source]) -> list[Candidate]:
    """Sentences of all sources, each kept once (overlapping chunks repeat sentences)."""
    seen: set[tuple[str, int]] = set()
    out: list[Candidate] = []
    for src in sources:
        for a, b in split_sentences(src.text):
            key = (src.paper_id, src.start + a)
            if key in seen:
                continue
            seen.add(key)
            out.append(Candidate(source=src, start=a, end=b, text=src.text[a:b], abstract_pos=src.start + a))
    return out


def score_candidates(question: str, cands: list[Candidate], qvec: np.ndarray, embed: Callable[[list[str]], np.ndarray],
                     idf: dict[str, float], named: list[str], papers: dict[str, Paper]) -> None:
    """Score sentences: dense similarity to the question, weighted question-term overlap, number and name bonuses."""
    if not cands:
        return
    names = [a for pid in named if pid in papers for a in [*papers[pid].aliases, papers[pid].title]]
    terms = focus_terms(question, names)
    weights = {t: idf.get(t, 1.0) for t in terms}
    total = sum(weights.values()) or 1.0
    wants_number = bool(_QUANTITY.search(question))
    about_paper = bool(named) and not terms  # "What is X?": lead with the sentence that introduces X
    vecs = embed([c.text for c in cands])
    for c, v in zip(cands, vecs, strict=True):
        c.dense = float(np.dot(v, qvec))
        stems = {stem(w) for w in content_words(c.text)}
        c.lexical = sum(w for t, w in weights.items() if t in stems) / total if terms else 0.0
        bonus = 0.0
        if wants_number and any(re.search(r"\d", n) for n in numbers(c.text)):
            bonus += 0.12
        if c.source.paper_id in named:
            bonus += 0.08
            if about_paper and _INTRO_CUE.search(c.text):
                bonus += 0.2
        c.score = 0.6 * c.dense + 0.4 * c.lexical + bonus


def idf_table(texts: list[str]) -> dict[str, float]:
    """Smoothed inverse document frequency of stemmed content words over passages."""
    df: dict[str, int] = {}
    for t in texts:
        for w in {stem(w) for w in content_words(t)}:
            df[w] = df.get(w, 0) + 1
    n = len(texts) or 1
    return {w: math.log(1 + n / c) for w, c in df.items()}


def _similar(a: str, b: str) -> bool:
    """Near-duplicate sentences (overlapping chunks, repeated claims)."""
    wa, wb = set(content_words(a)), set(content_words(b))
    return bool(wa and wb) and len(wa & wb) / len(wa | wb) > 0.6


def select(cands: list[Candidate], max_sentences: int, named: list[str], per_paper: int = 3,
           relative: float = 0.7) -> list[Candidate]:
    """The best sentence, then others close to it in score; restricted to a single named paper when there is one."""
    pool = [c for c in cands if c.source.paper_id in named] if len(named) == 1 else list(cands)
    pool = pool or list(cands)
    ranked = sorted(pool, key=lambda c: -c.score)
    if not ranked:
        return []
    chosen: list[Candidate] = [ranked[0]]
    # "This is achieved using two key mechanisms." needs the sentences that name them, right after it.
    for c in _continuation(ranked[0], cands):
        c.follows = True
        chosen.append(c)
    for c in ranked[1:]:
        if len(chosen) >= max_sentences or c.score < relative * ranked[0].score:
            break
        if c in chosen or sum(1 for x in chosen if x.source.paper_id == c.source.paper_id) >= per_paper:
            continue
        if any(_similar(c.text, x.text) for x in chosen):
            continue
        chosen.append(c)
    return chosen


_CATAPHORA = re.compile(r"(:\s*$|\b(two|three|four|several|following|key) (key )?(mechanisms|methods|techniques|"
                        r"components|stages|steps|ideas|contributions|parts)\b|\bas follows\b)", re.IGNORECASE)


_COUNT = {"two": 2, "three": 3, "four": 4, "several": 2, "following": 2, "key": 2}


def _continuation(lead: Candidate, cands: list[Candidate]) -> list[Candidate]:
    """The next sentences of the same paper when the lead announces a list ("two key mechanisms") or is too short."""
    m = _CATAPHORA.search(lead.text)
    if not m and len(lead.text.split()) >= 9:
        return []
    n = _COUNT.get((m.group(2) or "key").lower(), 1) if m and m.group(2) else 1
    after = sorted((c for c in cands if c.source.paper_id == lead.source.paper_id and c.abstract_pos > lead.abstract_pos),
                   key=lambda c: c.abstract_pos)
    return after[:n]


def paper_label(paper_id: str, papers: dict[str, Paper], title: str) -> str:
    """A short name for a paper: its first one-word alias, else its title."""
    paper = papers.get(paper_id)
    aliases = paper.aliases if paper else []
    short = next((a for a in aliases if a.lower().replace(" ", "-") == paper_id), None)
    short = short or next((a for a in aliases if len(a.split()) == 1), None)
    return short or title


def compose(chosen: list[Candidate], papers: dict[str, Paper]) -> tuple[str, list[Sentence]]:
    """Markdown answer text and its cited sentences: grouped per paper, best paper and best sentence first."""
    groups: dict[str, list[Candidate]] = {}
    for c in chosen:
        groups.setdefault(c.source.paper_id, []).append(c)
    sentences: list[Sentence] = []
    blocks: list[str] = []
    for pid, group in groups.items():
        lead = group[0]
        rest = [c for c in group[1:] if c.follows] + sorted((c for c in group[1:] if not c.follows),
                                                            key=lambda c: c.abstract_pos)
        parts = []
        for c in [lead, *rest]:
            sentences.append(Sentence(text=c.text, citations=[c.source.n], supported=True,
                                      spans=[(c.source.n, c.start, c.end)]))
            parts.append(f"{c.text} [{c.source.n}]")
        title = group[0].source.title
        label = paper_label(pid, papers, title)
        head = f"**{label}** (*{title}*)" if label != title else f"*{title}*"
        blocks.append(f"{head}: " + " ".join(parts))
    if len(blocks) == 1:
        return blocks[0], sentences
    return "\n".join(f"- {b}" for b in blocks), sentences


_CUES = {
    "problem": re.compile(r"\b(challeng\w*|bottleneck\w*|suffer\w*|struggl\w*|however|limit\w*|ill-suited|"
                          r"inefficien\w*|problem\w*|difficult\w*|costly|insufficient|impractical|lack\w*|hinder\w*)\b",
                          re.IGNORECASE),
    "approach": re.compile(r"\b(we (propose|present|introduce|design|build|develop)|introduces?|propos\w*|"
                           r"key idea|technique|framework|mechanism|algorithm|architecture|consists?)\b", re.IGNORECASE),
    "result": re.compile(r"(\d+(\.\d+)?\s*(x|×|%|times)|\b(outperform\w*|achiev\w*|improv\w*|speed-?up\w*|"
                         r"reduc\w*|surpass\w*|experiments? show\w*|results? show\w*|evaluation\w*))\b",
                         re.IGNORECASE),
}
_MEASURED = re.compile(r"\d+(\.\d+)?\s*(x|×|%|times)\b", re.IGNORECASE)
COMPARE_COLUMNS = ("problem", "approach", "result")
MAX_CELL_CHARS = 260


def _trim(text: str) -> str:
    """Shorten a long sentence at a clause boundary, keeping a verbatim prefix (still checkable)."""
    if len(text) <= MAX_CELL_CHARS:
        return text
    cut = max(text.rfind(sep, 0, MAX_CELL_CHARS) for sep in (", ", "; ", " - ", " and "))
    return (text[:cut] if cut > 80 else text[:MAX_CELL_CHARS].rsplit(" ", 1)[0]) + " …"


def compare_table(per_paper: dict[str, list[Candidate]], papers: dict[str, Paper]) -> tuple[str, list[Sentence]]:
    """A Markdown table, one row per paper (problem, approach, reported result), every cell cited."""
    header = "| Paper | Problem | Approach | Reported result |\n|---|---|---|---|"
    rows, sentences = [header], []
    for pid, cands in per_paper.items():
        if not cands:
            continue
        used: set[int] = set()
        cells = []
        for col in COMPARE_COLUMNS:
            cue = _CUES[col]
            # A reported result with a number ("1.70x", "36.5%") beats a vague one ("increases in all cases").
            scored = sorted(
                (c for c in cands if id(c) not in used),
                key=lambda c: (not cue.search(c.text), col == "result" and not _MEASURED.search(c.text),
                               -c.score, c.abstract_pos),
            )
            pick = next((c for c in scored if cue.search(c.text)), None)
            if pick is None:
                cells.append("not stated")
                continue
            used.add(id(pick))
            text = _trim(pick.text).replace("|", "/")
            sentences.append(Sentence(text=text, citations=[pick.source.n], supported=True,
                                      spans=[(pick.source.n, pick.start, pick.end)]))
            cells.append(f"{text} [{pick.source.n}]")
        title = cands[0].source.title
        rows.append(f"| **{paper_label(pid, papers, title)}** ({title}) | " + " | ".join(cells) + " |")
    return "\n".join(rows), sentences
