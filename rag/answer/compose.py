"""Extractive composition: answers built from the papers' own sentences, each cited, led by the one that answers.

One path per kind of answer: prose (lead sentence first, a number first for how-much, a sentence that depends on
the one before it brings it along), a list (one cited line per qualifying paper), an overview (one line per paper),
and a comparison table (each cell picked by what its column asks for, and cut to the part of its sentence that
fills it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from rag.answer.analyse import short_name
from rag.answer.evidence import BACKGROUND, CUES, DEPENDENT, MEASURED, has_term
from rag.answer.models import Analysis, Decision, Draft, Evidence, Retrieved
from rag.figures import figure_of
from rag.support import support_multi
from rag.text import CITATION, citation_group, citation_numbers, content_words, stem, stems
from rag.types import Paper, Sentence

COMPARE_COLUMNS = ("problem", "approach", "result")
OVERVIEW_INTRO_BONUS = 0.1
_QUANTITY = re.compile(r"\bhow\s+(much|many|large|big|fast)\b|\b(number|amount|size|count)\s+of\b", re.IGNORECASE)
_LINK = re.compile(r"https?://|\bgithub\b|\bcode (is|will be) (available|released)\b", re.IGNORECASE)
MAX_CELL_CHARS = 260
RELATIVE = 0.55  # a further sentence of the lead's paper joins when it scores at least this share of the lead's
RELATIVE_OTHER = 0.85  # … and a sentence of another paper only when nearly as good
# First-person openings of abstract sentences and their third-person form ({name} is the paper's short name).
_VOICE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(?:In this (?:paper|work),?\s+)?[Ww]e (propose|present|introduce|design|build|develop|devise|"
                r"employ|use|find|show|demonstrate|evaluate|test|study|analy[sz]e|conduct|observe|train|"
                r"implement|integrate|explore|argue|rethink|refer|achieve|make|offer)\b"), r"{name} \1s"),
    (re.compile(r"^(?:In this (?:paper|work),?\s+)?[Ww]e (also|further|first|then) (\w+)\b"), r"{name} \1 \2s"),
    (re.compile(r"^Our (evaluation|results|experiments|insight|framework|training pipeline|approach|system)\b"),
     r"{name}'s \1"),
    (re.compile(r"^This paper (proposes|introduces|presents|offers|investigates|has developed)\b"), r"{name} \1"),
)
_ES_VERBS = re.compile(r"\b(\w+(?:sh|ch|ss|x|z))s\b")


_INTRO_APPOSITIVE = re.compile(r"^(?:In this (?:paper|work),?\s+)?[Ww]e (?:propose|present|introduce|design|build|"
                               r"develop)\s+(?P<name>[^,]{2,80}?),\s+(?P<rest>an?\s.*)$", re.DOTALL)


def third_person(text: str, name: str, passage: str) -> str:
    """The paper's voice turned to the third person (the verbatim sentence stays in the source): 'we present
    Seesaw, an LLM inference engine …' -> 'Seesaw is an LLM inference engine …', 'We propose X' -> 'Seesaw proposes
    X' when the name is in the cited passage, else 'The authors propose X'; any other we/our/us -> the authors."""
    bare = _CONNECTIVE.sub("", text)  # "Therefore, we propose WISE …": the connective links to a sentence not shown
    bare = bare[:1].upper() + bare[1:]
    voiced = _lead_voice(bare, name, passage)
    if voiced != bare and voiced.startswith(name):  # "Datarus makes our data available": the system's own
        voiced = _OWN_LATER.sub(lambda m: {"our": "its", "ours": "its", "us": "it"}[m.group(1).lower()], voiced)
    return _authors(voiced)


_FIRST_PERSON = re.compile(r"\b(we|our|ours|us)\b", re.IGNORECASE)
_PLAIN = {"we": "the authors", "our": "the authors'", "ours": "the authors'", "us": "the authors"}


_LATER = {"we": "they", "our": "their", "ours": "theirs", "us": "them"}
_OWN_LATER = re.compile(r"\b(our|ours|us)\b", re.IGNORECASE)


def _authors(text: str) -> str:
    """Every remaining first-person pronoun in the third person: the first as 'the authors' ('… stages, we can
    reduce …' -> '… stages, the authors can reduce …'; plural, so the verb still agrees), later ones as they/their
    ('We make our data available' -> 'The authors make their data available')."""
    named = [bool(re.search(r"\bthe authors\b", text, re.IGNORECASE))]

    def swap(m: re.Match[str]) -> str:
        word = m.group(1).lower()
        out = _LATER[word] if named[0] else _PLAIN[word]
        named[0] = True
        return out[:1].upper() + out[1:] if m.start() == 0 else out
    return _FIRST_PERSON.sub(swap, text)


def _lead_voice(text: str, name: str, passage: str) -> str:
    """The opening forms with the paper's name: introductions, 'We also …', 'Our evaluation …', 'This paper …'."""
    m = _INTRO_APPOSITIVE.match(text)
    if m and name.lower() in m.group("name").lower():
        return f"{m.group('name')} is {m.group('rest')}"
    for pattern, template in _VOICE:
        m = pattern.match(text)
        if not m:
            continue
        after = text[m.end():].lstrip().lower()
        if name.lower() not in passage.lower() or after.startswith(name.lower()):
            if template.startswith("{name} \\1s"):
                return "The authors " + text[m.start(1):]
            return text
        out = m.expand(template.replace("{name}", name.replace("\\", "")))
        out = _ES_VERBS.sub(r"\1es", out).replace("studys", "studies")
        return out + text[m.end():]
    return text


def _sentence(e: Evidence, shown: str | None = None) -> Sentence:
    """The cited answer sentence for a piece of evidence (spans point at the verbatim text in its source)."""
    return Sentence(text=shown or e.text, citations=[e.n], supported=True, spans=[(e.n, e.start, e.end)])


_EARLY_ANAPHOR = re.compile(r"^(?:\S+\s+){0,3}?(this|these|such|those)\b(?!\s+(paper|work|study)\b)", re.IGNORECASE)


def refers_back(text: str) -> bool:
    """Whether a sentence depends on the one before it: 'To do so, …', 'These approaches …', 'We achieve this …'."""
    return bool(DEPENDENT.match(text) or _EARLY_ANAPHOR.match(text))


def _before(e: Evidence, ev: list[Evidence]) -> Evidence | None:
    """The sentence just before e in the same paper, when the retrieved passages hold it."""
    prior = [c for c in ev if c.paper_id == e.paper_id and c.pos < e.pos]
    return max(prior, key=lambda c: c.pos) if prior else None


def _after(e: Evidence, ev: list[Evidence], n: int) -> list[Evidence]:
    """The next n sentences of the same paper (a lead that announces 'two key mechanisms' needs them)."""
    return sorted((c for c in ev if c.paper_id == e.paper_id and c.pos > e.pos), key=lambda c: c.pos)[:n]


_ANNOUNCES = re.compile(r"(:\s*$|\b(two|three|four|several|following) (key )?(mechanisms|methods|techniques|"
                        r"components|stages|steps|ideas|contributions|parts)\b)", re.IGNORECASE)
_COUNT = {"two": 2, "three": 3, "four": 4, "several": 2, "following": 2}


def _similar(a: str, b: str) -> bool:
    """Near-duplicate sentences (overlapping chunks, repeated claims)."""
    wa, wb = set(content_words(a)), set(content_words(b))
    return bool(wa and wb) and len(wa & wb) / len(wa | wb) > 0.6


def select(analysis: Analysis, ev: list[Evidence], max_sentences: int,
           said: frozenset[str] = frozenset()) -> list[Evidence]:
    """The lead (a measured figure first for how-much), its context, then close runners-up; a question naming
    several papers gets each paper's own lead. said: the words of the conversation's previous answer, whose
    sentences are not repeated as support (the lead may be: it is the answer)."""
    named = [p for p in analysis.papers if any(c.paper_id == p for c in ev)]
    if len(named) >= 2:
        per = max(1, max_sentences // len(named))
        one = analysis.model_copy(update={"papers": []})
        return [c for p in named for c in select(one, [c for c in ev if c.paper_id == p], per, said)]
    pool = [c for c in ev if c.paper_id in analysis.papers] or list(ev)
    ranked = sorted(pool, key=lambda c: -c.score)
    if not ranked:
        return []
    lead = ranked[0]
    if said and _MORE.search(analysis.asked):  # "tell me more": the paper's sentences the last answer left out
        fresh = [c for c in ranked if c.paper_id == lead.paper_id and not _already_said(c.text, said)]
        if fresh:
            return sorted(fresh[:max_sentences], key=lambda c: c.pos)
    if said and _already_said(lead.text, said):  # a follow-up: what the previous answer did not say, if close
        lead = next((c for c in ranked if not _already_said(c.text, said) and c.score >= RELATIVE * lead.score), lead)
    if analysis.contrast:  # "X instead of Y": the sentence about Y corrects the premise
        lead = next((c for c in ranked if any(t in stems(c.text) for t in analysis.contrast)), lead)
    if (analysis.kind == "how_much" or analysis.cue == "result") and not MEASURED.search(lead.text):  # a figure
        close = 0.75 if analysis.kind == "how_much" else 0.5  # a question about results: its measured one
        lead = next((c for c in ranked[:4] if MEASURED.search(c.text) and c.paper_id == lead.paper_id
                     and c.score >= close * lead.score), lead)
    chosen = [lead]
    prior = _before(lead, ev) if refers_back(lead.text) and not _CONNECTIVE.match(lead.text) else None
    if prior is not None:
        chosen.insert(0, prior)
    m = _ANNOUNCES.search(lead.text)
    if m or len(lead.text.split()) < 9:
        chosen += [c for c in _after(lead, ev, _COUNT.get((m.group(2) or "").lower(), 1) if m else 1)
                   if c not in chosen]
    else:  # "We achieve this through …": the next sentence elaborates the lead
        chosen += [c for c in _after(lead, ev, 1) if refers_back(c.text) and c not in chosen]
    for c in ranked:  # the runners-up (the best may have given way to a figure or a correction)
        if len(chosen) >= max_sentences or c.score < RELATIVE * lead.score:
            break
        if c.paper_id != lead.paper_id and c.score < RELATIVE_OTHER * lead.score:
            continue
        if c in chosen or any(_similar(c.text, x.text) for x in chosen) or _already_said(c.text, said):
            continue
        if refers_back(c.text) and _before(c, ev) not in chosen:
            continue  # it would need the sentence before it, which is not in the answer
        chosen.append(c)
    return chosen


_MORE = re.compile(r"\b(tell me more|more (about|on|details?)|what else|anything else|elaborate|go on|continue|"
                   r"in more detail|further details?)\b", re.IGNORECASE)


def _already_said(text: str, said: frozenset[str]) -> bool:
    """Whether a sentence (or most of its words) was in the previous answer of the conversation."""
    words = content_words(text)
    return bool(said and words) and sum(w in said for w in words) / len(words) > 0.8


def prose(analysis: Analysis, retrieved: Retrieved, by_id: Mapping[str, Paper], max_sentences: int,
          said: str = "") -> Draft:
    """A cited answer in prose: the answering sentence first; one paragraph per paper when several answer."""
    chosen = select(analysis, retrieved.evidence, max_sentences, frozenset(content_words(said)))
    groups: dict[str, list[Evidence]] = {}
    for c in chosen:
        groups.setdefault(c.paper_id, []).append(c)
    text_by_n = {s.n: s.text for s in retrieved.sources}
    sentences: list[Sentence] = []
    blocks = []
    for pid, group in groups.items():
        lead, *rest = group  # the lead (or the sentence it depends on) first, the rest in reading order
        ordered = [lead, *sorted(rest, key=lambda c: c.pos)]
        name = short_name(by_id.get(pid), pid)
        parts = []
        for c in ordered:
            shown = third_person(c.text, name, text_by_n.get(c.n, ""))
            sentences.append(_sentence(c, shown))
            parts.append(f"{shown} [{c.n}]")
        blocks.append((name, " ".join(parts)))
    if len(blocks) == 1:
        return Draft(text=blocks[0][1], answerer="extractive", sentences=sentences)
    return Draft(text="\n".join(f"- **{name}**: {body}" for name, body in blocks), answerer="extractive",
                 sentences=sentences)


def paper_list(decision: Decision, retrieved: Retrieved, by_id: Mapping[str, Paper], total: int) -> Draft:
    """One cited line per qualifying paper, best first."""
    sentences: list[Sentence] = []
    lines = []
    text_by_n = {s.n: s.text for s in retrieved.sources}
    for pid in decision.qualifying:
        best = max((e for e in retrieved.evidence if e.paper_id == pid), key=lambda e: e.score)
        name = short_name(by_id.get(pid), pid)
        shown = third_person(best.text, name, text_by_n.get(best.n, ""))
        sentences.append(_sentence(best, shown))
        lines.append(f"- **{name}**: {shown} [{best.n}]")
    head = f"{len(lines)} of the {total} papers:" if len(lines) > 1 else f"One of the {total} papers:"
    return Draft(text=head + "\n" + "\n".join(lines), answerer="extractive", sentences=sentences)


def overview(retrieved: Retrieved, by_id: Mapping[str, Paper], total: int) -> Draft:
    """One line per paper: the sentence that says what it contributes."""
    sentences: list[Sentence] = []
    lines = []
    text_by_n = {s.n: s.text for s in retrieved.sources}
    for pid in retrieved.ranking:
        mine = [e for e in retrieved.evidence if e.paper_id == pid]
        if not mine:
            continue
        # The sentence closest to the paper's title that stands alone, an introduction ('we present …') first.
        alone = [e for e in mine if not refers_back(e.text) and not _LINK.search(e.text)] or mine
        pick = max(alone, key=lambda e: e.score + (OVERVIEW_INTRO_BONUS if CUES["intro"].search(e.text) else 0.0))
        name = short_name(by_id.get(pid), pid)
        shown = third_person(_trim(pick.text), name, text_by_n.get(pick.n, ""))
        sentences.append(_sentence(pick, shown))
        lines.append(f"- **{name}**: {shown} [{pick.n}]")
    more = f" (showing {len(lines)})" if len(lines) < total else ""
    return Draft(text=f"The {total} papers, one line each{more}:\n" + "\n".join(lines), answerer="extractive",
                 sentences=sentences)


def _trim(text: str) -> str:
    """Shorten a long sentence at a clause boundary, keeping a verbatim prefix (still checkable)."""
    if len(text) <= MAX_CELL_CHARS:
        return text
    cut = max(text.rfind(sep, 0, MAX_CELL_CHARS) for sep in (", ", "; ", " - ", " and "))
    return (text[:cut] if cut > 80 else text[:MAX_CELL_CHARS].rsplit(" ", 1)[0]) + " …"


_CONNECTIVE = re.compile(r"^(however|therefore|thus|moreover|furthermore|in this (paper|work)|to address this "
                         r"problem|to improve [^,]{0,80}|specifically|additionally),\s*", re.IGNORECASE)


def aspect_label(analysis: Analysis, by_id: Mapping[str, Paper]) -> str:
    """The question's own words for what a comparison is about ('in terms of how much data they collected' -> 'data
    collected'); words of the compared papers' titles describe the papers, not the aspect."""
    titles = {stem(w) for p in analysis.papers if p in by_id for w in content_words(by_id[p].title)}
    focus = set(analysis.focus) - titles
    said = [w for w in re.findall(r"[\w.-]*\w", analysis.asked) if stem(w.lower()) in focus]
    return " ".join(dict.fromkeys(said))[:60]


# -- a comparison table: one row per paper, each cell a short verbatim part of the sentence it cites ----------------
CELL_CHARS = 130  # a cell is a clause of its sentence, not the whole sentence
# Openings that say who speaks rather than what: the cell keeps what follows ('We present Seesaw, an LLM inference
# engine …' -> 'an LLM inference engine …'; 'Our results highlight the potential …' -> 'the potential …').
_SPEAKER = re.compile(r"^(?:(?:in this (?:paper|work),?\s+)?we|this (?:paper|work|study|article))\s+(?:also\s+|further\s+)?"
                      r"(?:propose|present|introduce|design|build|develop|devise|describe|offer|use|employ|leverage|"
                      r"apply|achieve this|do this|demonstrate|show|find)s?\s+(?:that\s+)?", re.IGNORECASE)
_FINDING = re.compile(r"^(?:our|the|these)\s+(?:evaluation|results?|experiments?|analysis|findings?|experimental "
                      r"results)\s+(?:also\s+)?(?:demonstrates?|shows?|highlights?|reveals?|finds?|indicates?|"
                      r"suggests?|confirms?)\s+(?:that\s+)?", re.IGNORECASE)
_TROUBLE = re.compile(CUES["problem"].pattern + r"|\b(imbalanc\w*|fluctuat\w*|overheads?|slow\w*|straggl\w*|"
                      r"unsafe|expensive)\b", re.IGNORECASE)
_CLAUSE_START = re.compile(r"[,;:]\s+(?:(?:but|while|whereas|because|as|which|that)\s+)?|"
                           r"\s+(?:but|while|whereas|because|as|which|that)\s+")
_OPENER = re.compile(r"^(?:(?:to (?:overcome|address|tackle|solve|mitigate) [^,]{3,60}|first|second|finally|inspired "
                     r"by [^,]{3,120}|motivated by [^,]{3,120}),\s+)", re.IGNORECASE)
_DETERMINER = re.compile(r"\b(?:a|an|the|this|these|such|its|their)\s", re.IGNORECASE)
_CLIP_AT = (", ", "; ", " - ", " and ", " that ", " which ", " to ", " by ", " with ", " for ")


def _clip(text: str, limit: int = CELL_CHARS) -> str:
    """At most limit characters of text, cut at a clause boundary (else a word) and marked ' …'; no final stop."""
    text = text.strip().rstrip(".").strip()
    if len(text) <= limit:
        return text
    cut = max(text.rfind(sep, 0, limit) for sep in _CLIP_AT)
    return (text[:cut] if cut >= 50 else text[:limit].rsplit(" ", 1)[0]).rstrip(" ,;") + " …"


def _lead_out(text: str, name: str) -> str:
    """The sentence without its connective and its speaker ('Therefore, we propose X, a …' -> 'X, a …'), and without
    the paper's own name before an apposition or 'is' ('Seesaw, an LLM inference engine …' -> 'an LLM inference
    engine …'): a suffix of the sentence, so still its own words."""
    text = _OPENER.sub("", _CONNECTIVE.sub("", text))
    for lead in (_SPEAKER, _FINDING):
        text = lead.sub("", text, count=1)
    named = re.match(rf"{re.escape(name)}(?:-[\w.]+)?(?:,\s+|\s+is\s+(?=an?\s|the\s))", text, re.IGNORECASE)
    return text[named.end():] if named and len(text) - named.end() > 20 else text


def _problem_cell(text: str) -> str:
    """The clause of a sentence that states the problem: the sentence when short, its opening when that already names
    the trouble, else the clause around the trouble ('a single static parallelization strategy insufficient for …')."""
    text = _CONNECTIVE.sub("", text).strip()
    opening = _clip(text)
    trouble = _TROUBLE.search(text)
    if trouble is None or len(text.rstrip(".")) <= CELL_CHARS or _TROUBLE.search(opening.rstrip(" …")):
        return opening
    start = max((m.end() for m in _CLAUSE_START.finditer(text, 0, trouble.start())), default=0)
    if trouble.start() - start > 70:  # a long subject: start at the noun phrase before the trouble word
        near = [m.start() for m in _DETERMINER.finditer(text, max(start, trouble.start() - 60), trouble.start())]
        start = near[0] if near else start
    return _clip(text[start:])


def _text_cell(col: str, text: str, name: str) -> str:
    """The short verbatim cell of a column's sentence."""
    if col == "problem":
        return _problem_cell(text)
    return _clip(_lead_out(text, name))


def _column_rank(col: str, c: Evidence) -> tuple:
    """How well a sentence fills a column: its cue, then (results) a measured figure, then no background, score."""
    cue = CUES[col]
    background = bool(BACKGROUND.search(c.text)) and col != "problem"
    return (not cue.search(c.text), col == "result" and figure_of(c.text) is None,
            col == "result" and not MEASURED.search(c.text), background,
            col == "problem" and (c.pos > 400 or bool(CUES["intro"].search(c.text))), -c.score, c.pos)


def _name_in(paper: Paper | None, name: str, passage: str) -> str:
    """The paper's name as the cited passage writes it ('Datarus' where the short name is 'Datarus-R1')."""
    if paper is None or name.lower() in passage.lower():
        return name
    return next((a for a in sorted(paper.aliases, key=len) if a and a.lower() in passage.lower()), name)


def _row_name(paper: Paper | None, pid: str) -> str:
    """A paper's name in a table row: its short name in bold (its title up to a colon when it has none), then the
    rest of its title ('**Seesaw** (High-throughput LLM Inference via Model Re-sharding)'): the title says what the
    paper is about, once, without repeating the name."""
    name = short_name(paper, pid)
    if paper is None:
        return f"**{name}**"
    if name == paper.title:
        name = name.split(":")[0].strip()
    head, colon, rest = paper.title.partition(":")
    rest = rest.strip() if colon and head.strip().lower() == name.lower() else paper.title
    return f"**{name}**" + (f" ({rest.replace('|', '/')})" if rest and rest.lower() != name.lower() else "")


def _capital(text: str) -> str:
    """A cell's first letter in capitals when its first word is plain lower case ('a single …', never 'vLLM')."""
    first = text.split(" ", 1)[0]
    return text[:1].upper() + text[1:] if first.isalpha() and first.islower() else text


def _cell(e: Evidence, *parts: str, sentences: list[Sentence], passage: str, capital: bool = True) -> str | None:
    """A cited cell quoting part of e's sentence, the first of parts that the support check accepts on its own (a
    bare 'FlashAttention-2' reads to it as a claim about another system; 'over FlashAttention-2' does not)."""
    for part in parts:
        shown = part.replace("|", "/")
        shown = _capital(shown) if capital else shown
        if shown and support_multi(shown.rstrip(" …"), [passage]).supported:
            sentences.append(_sentence(e, shown.rstrip(" …")))
            return f"{shown} [{e.n}]"
    return None


NONE = "—"  # a cell with nothing to say (no figure, so no baseline)


def compare_table(analysis: Analysis, retrieved: Retrieved, by_id: Mapping[str, Paper]) -> Draft:
    """A Markdown table, one row per paper: problem, approach, result, and for a reported figure its baseline and
    setting (plus the question's own aspect when it names one: 'in terms of how much they collected'). Each cell is
    a short part of the sentence it cites, so the table says each thing once."""
    aspect = aspect_label(analysis, by_id)
    terms = [stem(w.lower()) for w in aspect.split()]
    quantity = bool(_QUANTITY.search(analysis.asked))
    rows: list[tuple[str, dict[str, str]]] = []
    sentences: list[Sentence] = []
    leads: list[Sentence] = []  # with an aspect: each paper's sentence on it, above the table (the answer first)
    lead_lines: list[str] = []
    passages = {s.n: s.text for s in retrieved.sources}
    for pid in analysis.papers:
        cands = [c for c in retrieved.evidence if c.paper_id == pid]
        if not cands:
            continue
        used: set[int] = set()
        cells: dict[str, str] = {}
        name = short_name(by_id.get(pid), pid)
        # approach first: an introduction ('We present …') also reads as a problem ('… a problem solver')
        for col in ("approach", "result", "problem"):
            scored = sorted((c for c in cands if c.pos not in used), key=lambda c: _column_rank(col, c))
            pick = next((c for c in scored if CUES[col].search(c.text) and not DEPENDENT.match(c.text)), None)
            pick = pick or next((c for c in scored if CUES[col].search(c.text)), None)
            if pick is None:
                cells[col] = "not stated"
                continue
            used.add(pick.pos)
            cite = {"sentences": sentences, "passage": passages.get(pick.n, pick.text)}
            fig = figure_of(pick.text) if col == "result" else None
            short = _text_cell(col, pick.text, _name_in(by_id.get(pid), name, pick.text))
            claim = _cell(pick, fig.claim, **cite) if fig is not None and fig.claim else None
            if claim is not None:
                assert fig is not None
                cells[col] = claim
                cells["baseline"] = _cell(pick, fig.baseline, fig.versus, **cite, capital=False) or NONE
                cells["setting"] = _cell(pick, fig.setting, **cite, capital=False) or NONE
            else:
                cells[col] = _cell(pick, short, _clip(_CONNECTIVE.sub("", pick.text)), **cite) or "not stated"
        if aspect:  # the paper's sentence on what the question asks about (a figure when it asks how much), whole
            pick = max(cands, key=lambda c: (sum(has_term(t, stems(c.text)) for t in terms),
                                             quantity and bool(MEASURED.search(c.text)), c.topical))
            shown = third_person(pick.text, _name_in(by_id.get(pid), name, pick.text), passages.get(pick.n, ""))
            leads.append(_sentence(pick, shown))
            lead_lines.append(f"- **{name.split(':')[0].strip()}**: {shown} [{pick.n}]")
        rows.append((_row_name(by_id.get(pid), pid), cells))
    columns = [("problem", "Problem"), ("approach", "Approach"), ("result", "Reported result")]
    # a baseline or setting column only when some paper states one
    columns += [(k, label) for k, label in (("baseline", "Baseline"), ("setting", "Setting"))
                if any(cells.get(k, NONE) != NONE for _, cells in rows)]
    lines = ["| Paper | " + " | ".join(label for _, label in columns) + " |", "|" + "---|" * (len(columns) + 1)]
    lines += [f"| {name} | " + " | ".join(cells.get(k, NONE) for k, _ in columns) + " |" for name, cells in rows]
    if lead_lines:
        lines = [*lead_lines, "", *lines]
    return Draft(text="\n".join(lines), answerer="extractive", sentences=leads + sentences)


def abstention(retrieved: Retrieved, sentinel: str) -> str:
    """The sentinel and the nearest papers (the reason goes in the notice)."""
    titles = [s.title for s in {s.paper_id: s for s in retrieved.sources}.values()][:3]
    closest = f" Closest: {'; '.join(titles)}." if titles else ""
    return f"{sentinel}{closest}"


def compose(analysis: Analysis, decision: Decision, retrieved: Retrieved, by_id: Mapping[str, Paper],
            max_sentences: int, said: str = "") -> Draft:
    """The extractive draft for an answering decision (citing only the papers the decision lets it cite)."""
    total = len(by_id)
    if decision.answering:
        keep = set(decision.answering)
        retrieved = retrieved.model_copy(update={"evidence": [e for e in retrieved.evidence if e.paper_id in keep]})
    if analysis.kind == "overview":
        return overview(retrieved, by_id, total)
    if analysis.kind == "compare" and len(analysis.papers) >= 2:
        return compare_table(analysis, retrieved, by_id)
    if analysis.kind == "list" and decision.qualifying:
        return paper_list(decision, retrieved, by_id, total)
    return prose(analysis, retrieved, by_id, max_sentences, said)


def number_by_citation(retrieved: Retrieved, draft: Draft) -> tuple[Retrieved, Draft]:
    """The sources renumbered in the order the draft first cites them, from [1] (the uncited after them, in retrieval
    order), and the draft's markers, citations and spans with them: a reader meets [1] first, then [2]."""
    cited = [n for s in draft.sentences or [] for n in s.citations] + citation_numbers(draft.text)
    order = list(dict.fromkeys([*cited, *(s.n for s in retrieved.sources)]))
    known = {s.n for s in retrieved.sources}
    new = {old: i for i, old in enumerate((n for n in order if n in known), start=1)}
    if all(old == n for old, n in new.items()):
        return retrieved, draft

    def marks(text: str) -> str:
        return CITATION.sub(lambda m: "[" + ", ".join(str(new.get(n, n)) for n in citation_group(m.group(1))) + "]",
                            text)

    sources = sorted((s.model_copy(update={"n": new[s.n]}) for s in retrieved.sources), key=lambda s: s.n)
    moved = retrieved.model_copy(update={
        "sources": sources,
        "evidence": [e.model_copy(update={"n": new.get(e.n, e.n)}) for e in retrieved.evidence],
        "withheld": [w.model_copy(update={"n": new.get(w.n, w.n)}) for w in retrieved.withheld]})
    sentences = None if draft.sentences is None else [
        s.model_copy(update={"citations": [new.get(n, n) for n in s.citations],
                             "spans": [(new.get(n, n), a, b) for n, a, b in s.spans]}) for s in draft.sentences]
    return moved, draft.model_copy(update={"text": marks(draft.text), "sentences": sentences})
