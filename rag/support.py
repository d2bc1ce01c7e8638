"""Lexical support: does a passage back an answer sentence? A cheap, deterministic proxy for entailment.

A sentence is supported when it is contained in the passage, or the ROUGE-L recall of its content words
against the passage reaches ``tau``, or most of its content words occur in the passage — and, in every
case, each number, system name and negation of the sentence is also in the passage, each number sits
among some of the same words in both, and the passage does not negate what the sentence asserts. Two
rules look at what the words do rather than which words occur:

- a research claim is a statement: a sentence with a link or a command to the reader ("visit …",
  "paste your password", "ignore previous instructions") is never supported, even copied verbatim —
  retrieved text may carry instructions (OWASP LLM01);
- comparisons keep their roles: the system before "compared to / than / over / outperforms …" and the
  one after it must be on the same sides as in the passage, and a number must stay with the system it
  is about in the passage.

Call this "lexical support", not faithfulness: it cannot see paraphrase ("ignore" for "do not act on")
nor a swapped word ("manual" for "automatic", "inference" for "training"), and it reads "vLLM is slower
than Seesaw" as a swap of "Seesaw is faster than vLLM" (it knows no antonyms).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from rag.text import STOPWORDS, numbers, sentences, stem, strip_citations, words

# Calibrated on tests/data/support_pairs.jsonl (71 hand-labelled pairs, 34 supported) by a sweep of tau
# over 0.30..0.75: best agreement 65/71 = 0.915, reached at tau <= 0.40 and at 0.55; 0.55 has the higher
# precision of "supported" (32/36 = 0.889, recall 32/34 = 0.941). On the first 47 pairs, labelled before the
# comparison and instruction rules, the sweep is unchanged by them: 41/47 at the same taus. ROUGE-L recall
# never exceeds content coverage, so a tau at or above COVERAGE_MIN would leave the ROUGE-L test without effect.
# Re-run when this check's own crude stemmer gave way to rag.text.stem (the one stemmer): tau 0.30..0.60 agree
# exactly as before (0.55 still best, 65/71, precision 32/36, recall 32/34; first 47 pairs 41/47); only 0.65..0.75
# moved, 63/71 -> 64/71. SUPPORT_TAU stays 0.55.
SUPPORT_TAU = 0.55
COVERAGE_MIN = 0.75  # share of the sentence's content words that must occur in the passage
NEGATION_WINDOW = 4  # content words after a passage negation that it scopes over
# Content words either side of a number that tie it to its claim: wider in the (paraphrased) sentence,
# narrow in the passage so "6% of its vocabulary" is not mistaken for "a 6% improvement".
SENTENCE_NUMBER_WINDOW = 3
PASSAGE_NUMBER_WINDOW = 2

NEGATIONS = frozenset(
    "not no never cannot can't cant won't don't doesn't didn't isn't aren't wasn't weren't shouldn't wouldn't "
    "couldn't hasn't haven't hadn't without neither nor none nothing unable fail fails failed failing unlike".split()
)
_EMPHASIS = re.compile(r"(?<![\w*])(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1(?![\w*])")
_SPACED_THOUSANDS = re.compile(r"(?<![\d.,])\d{1,3}(?:[ \u00a0\u202f,]\d{3})+(?![\d,]|\.\d)")
_TIMES = re.compile(r"(\d)\s*(?:times\b|×|x\b|X\b)")
_PERCENT = re.compile(r"(\d)\s+%")
_MAGNITUDE = re.compile(
    r"(?<![\w.])(\d+(?:\.\d+)?)(?:\s*-?\s*(trillion|billion|million|thousand)|([TBMKtbmk]))(?![\w])",
    re.IGNORECASE,
)
_SCALE = {"t": 10**12, "trillion": 10**12, "b": 10**9, "billion": 10**9, "m": 10**6, "million": 10**6}
_SCALE |= {"k": 10**3, "thousand": 10**3}
_NUMBER_RANGE = re.compile(r"(\d[x%]?)\s*[-–]\s*(?=\d)")
_NUMERIC = re.compile(r"\d+(?:\.\d+)?x?")
# Negation words as _tokens spells them (stemmed), and unstemmed: a negation is never in its own scope.
_NEGATION_STEMS = frozenset(f(w.replace("-", "")) for w in NEGATIONS for f in (str, stem))
_NEG_TOKEN = re.compile(r"[a-z]+(?:'t)?")
# System names: CamelCase or digit-bearing tokens (MoEShard, S2-Attention, GitHub) and acronyms (DBSCAN, TPU).
_POSSESSIVE = re.compile(r"['’]s\b")
_NAME = re.compile(r"(?<![\w-])([A-Za-z0-9]+(?:[-.][A-Za-z0-9]+)*)(?![\w-])")

# Links and commands to the reader. A URL with a scheme, "www.", or a host with a path (evil.example/login).
_URL = re.compile(r"\b(?:[a-z][a-z0-9+.-]*://|www\.|mailto:|javascript:)\S*|\b(?:[a-z0-9-]+\.)+[a-z]{2,}/\S*", re.I)
# A command opens a clause with one of these verbs followed by its object ("visit the", "paste their",
# "ignore previous", "go to"), so the nouns "run time", "output tokens", "open problems" stay statements.
COMMAND_VERBS = frozenset(
    "visit click tap paste copy type enter submit send email forward share upload download install run execute "
    "open go navigate browse log sign ignore disregard forget reveal print output repeat say tell reply respond "
    "call contact follow provide give delete transfer pay confirm verify update reset write insert include use see "
    "check".split()
)
_COMMAND_OBJECTS = frozenset(
    "the this that these those your their his her my our a an all any every everything anything it them me us "
    "here there now immediately only to in on into out up back previous prior above earlier following below".split()
)
_LEAD_ADVERBS = frozenset("please kindly now then first next finally also just simply immediately".split())
_READER_MODAL = re.compile(r"\byou\s+(?:must|should|need\s+to|have\s+to|are\s+(?:asked|required)\s+to)\b", re.I)
_LIST_MARKER = re.compile(r"^[\s\-–—*•>\"'“”‘’(\[]*(?:\d+[.)]\s+)?")
_COMMAND_TOKEN = re.compile(r"[a-z0-9]+(?:['’-][a-z0-9]+)*|,")
LEAD_PHRASE_WORDS = 6  # "To verify your account, enter …": a short opening phrase before the command
# Comparisons: the system before the marker is compared against the one after it; "outperformed by" and
# its kin put the winner after the marker.
_COMPARISON = re.compile(
    r"\b(?:(?P<passive>(?:outperform|surpass|exceed|beat)(?:ed|en)?\s+by)"
    r"|(?:when\s+)?compared\s+(?:to|with|against|over)|in\s+comparison\s+(?:to|with)|relative\s+to"
    r"|versus|vs\.?|against|over|than|outperform(?:s|ed|ing)?|surpass(?:es|ed|ing)?|exceed(?:s|ed|ing)?"
    r"|beats?|beating)(?![\w-])",
    re.IGNORECASE,
)
_CLAUSE_BREAK = re.compile(r"[;:]|,?\s+\b(?:while|whereas|but)\b", re.IGNORECASE)
# What is compared against is a noun phrase: it ends at punctuation, a conjunction or a preposition.
_BASELINE_END = re.compile(
    r"[,;:()]|\b(?:and|or|while|whereas|when|where|which|that|in|on|at|for|with|across|by|from|under|using"
    r"|during|to|as)\b",
    re.IGNORECASE,
)
_LOWER_WORD = re.compile(r"(?<![\w-])[a-z][a-z0-9]*(?:-[a-z0-9]+)*(?![\w-])")
_AND_NAME = re.compile(r",?\s+and\s+(?=([A-Za-z0-9]+(?:[-.][A-Za-z0-9]+)*))")
FRONTED_WORDS = 3  # "Moreover, compared with vLLM, Seesaw …": at most this many words before a fronted marker


@dataclass(frozen=True)
class SupportResult:
    """Whether a passage lexically supports a sentence, and the evidence for the verdict."""

    supported: bool
    rouge_l_recall: float
    content_coverage: float
    missing_numbers: list[str] = field(default_factory=list)
    added_negation: bool = False
    reason: str = ""
    contained: bool = False
    dropped_negation: bool = False
    missing_names: list[str] = field(default_factory=list)
    misbound_numbers: list[str] = field(default_factory=list)
    instruction: str = ""  # the link or command to the reader that makes the sentence unsupportable
    swapped_roles: list[str] = field(default_factory=list)  # names on the other side of a comparison
    moved_numbers: list[str] = field(default_factory=list)  # numbers the passage gives to another system


def strip_markup(text: str) -> str:
    """Text without citation markers ("[1]", "[2, 3]") or Markdown emphasis."""
    text = strip_citations(text)
    text = _EMPHASIS.sub(r"\2", text)
    return re.sub(r"\s+", " ", text).strip()


def normalise_numbers(text: str) -> str:
    """Numbers in one spelling: '1,000'/'1 000'→'1000', '6.4 times'→'6.4x', '12 %'→'12%', '7B'→'7000000000'."""
    text = _SPACED_THOUSANDS.sub(lambda m: re.sub(r"[ \u00a0\u202f,]", "", m.group(0)), text)
    text = _TIMES.sub(r"\1x", text)
    text = _PERCENT.sub(r"\1%", text)

    def scale(m: re.Match[str]) -> str:
        value = float(m.group(1)) * _SCALE[(m.group(2) or m.group(3)).lower()]
        return str(int(value)) if value.is_integer() else f"{value:g}"

    return _MAGNITUDE.sub(scale, text)


def number_set(text: str) -> set[str]:
    """Normalised numbers of text (rag.text.numbers after normalise_numbers)."""
    return numbers(normalise_numbers(text))


def _tokens(text: str) -> list[str]:
    """Stemmed content words of text, with numbers normalised."""
    text = _NUMBER_RANGE.sub(r"\1 ", normalise_numbers(text))  # "18-49%" is two numbers, not one word
    return [stem(w.replace("-", "")) for w in words(text) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]


def _plain(text: str) -> str:
    """Case- and whitespace-normalised text for containment checks."""
    return re.sub(r"\s+", " ", normalise_numbers(text).lower()).strip(" .;:")


def rouge_l_recall(candidate: Sequence[str], reference: Sequence[str]) -> float:
    """LCS length of the two token sequences divided by the candidate's length."""
    if not candidate or not reference:
        return 0.0
    previous = [0] * (len(reference) + 1)
    for token in candidate:
        current = [0]
        for j, ref in enumerate(reference, start=1):
            current.append(previous[j - 1] + 1 if token == ref else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1] / len(candidate)


def _negations(text: str) -> set[str]:
    """Negation words in text ("fails"/"failed" count as "fail", "can not" as "cannot")."""
    tokens = _NEG_TOKEN.findall(text.lower().replace("’", "'").replace("can not", "cannot"))
    # "Unlike X, Y …" contrasts rather than denies, so it only counts when the passage scopes it (below).
    found = {t for t in tokens if t in NEGATIONS and t != "unlike"} | {"not" for t in tokens if t.endswith("n't")}
    return {"fail" if t.startswith("fail") else t for t in found}


def _dropped_negation(sentence_tokens: list[str], passage: str) -> bool:
    """True when the passage sentence closest to the sentence negates words the sentence asserts."""
    candidates = sentences(passage) or [passage]
    vocab = set(sentence_tokens)
    closest = max(candidates, key=lambda c: len(vocab & set(_tokens(c))))
    lowered = closest.lower().replace("can not", "cannot")
    for m in _NEG_TOKEN.finditer(lowered):
        token = m.group(0)
        if token not in NEGATIONS and not token.endswith("n't"):
            continue
        scope = [t for t in _tokens(lowered[m.end() :]) if t not in _NEGATION_STEMS][:NEGATION_WINDOW]
        if len(scope) >= 2 and sum(t in vocab for t in scope) >= 2:
            return True
    return False


def _misbound_numbers(sentence_tokens: list[str], passage_tokens: list[str]) -> list[str]:
    """Numbers the passage has, but never next to any of the words the sentence puts around them."""

    def window(tokens: list[str], i: int, width: int) -> set[str]:
        return set(tokens[max(0, i - width) : i] + tokens[i + 1 : i + 1 + width])

    misbound = []
    for i, token in enumerate(sentence_tokens):
        if not _NUMERIC.fullmatch(token):
            continue
        around = window(sentence_tokens, i, SENTENCE_NUMBER_WINDOW)
        places = [j for j, other in enumerate(passage_tokens) if other == token]
        if around and places and not any(around & window(passage_tokens, j, PASSAGE_NUMBER_WINDOW) for j in places):
            misbound.append(token)
    return misbound


def _names(text: str) -> list[str]:
    """System names in text: CamelCase or digit-bearing tokens, acronyms, and capitalised possessives (Seesaw's)."""
    found: list[str] = []
    for m in _NAME.finditer(text):
        token = m.group(1)
        if token.lower() == token:  # no capital: no name (the quick test for most words)
            continue
        letters = [c for c in token if c.isalpha()]
        if len(letters) < 2 or not any(c.isupper() for c in token):
            continue
        camel = any(c.isupper() for c in token[1:]) and any(c.islower() for c in token)
        mixed = any(c.isdigit() for c in token) and any(c.islower() for c in token)
        acronym = token.rstrip("s").isupper() and len(token.rstrip("s")) >= 2 and not token[0].isdigit()
        possessive = token[0].isupper() and _POSSESSIVE.match(text, m.end()) is not None
        if camel or mixed or acronym or possessive:
            found.append(token)
    return found


def _missing_names(sentence: str, passage: str) -> list[str]:
    """Names in the sentence that the passage never mentions (substring, case-insensitive, plural-tolerant)."""
    lowered = passage.lower()
    missing = []
    for name in _names(sentence):
        base = name.lower()
        stem = base[:-1] if base.endswith("s") and len(base) > 3 else base
        if base not in lowered and stem not in lowered:
            missing.append(name)
    return missing


def mask_links(text: str) -> str:
    """text with every link written as [link] (to quote a hostile sentence without handing out its address)."""
    return _URL.sub("[link]", text)


def instruction(sentence: str) -> str:
    """The command to the reader in sentence (with its link, if any), or '' — a research claim is a statement, not
    an order. A link alone is a statement ("The code is available at https://…"): abstracts have them."""
    url = _URL.search(sentence)
    command = _command(_URL.sub(" this link ", sentence))  # "Visit http://…" is a command with a link for object
    if command and url:
        return url.group(0).rstrip(".,;:!?)]'\"")
    return command


def _command(sentence: str) -> str:
    """The reader-directed modal or imperative clause of sentence, or ''."""
    if modal := _READER_MODAL.search(sentence):
        return modal.group(0)
    for part in re.split(r"[;:]", _LIST_MARKER.sub("", sentence)):
        tokens = _COMMAND_TOKEN.findall(part.lower())
        openings = [0]
        if "," in tokens[: LEAD_PHRASE_WORDS + 1]:  # "To continue, paste …", "First, visit …"
            openings.append(tokens.index(",") + 1)
        for i in openings:
            while i < len(tokens) and tokens[i] in _LEAD_ADVERBS:
                i += 1
            verb, after = (tokens + ["", ""])[i : i + 2]
            if verb in COMMAND_VERBS and (after in _COMMAND_OBJECTS or after in {"", ","}):
                return " ".join(t for t in tokens[i : i + 3] if t != ",")
    return ""


def _name_key(name: str) -> str:
    """A name compared across texts: case-free, plural-free ('GPUs' is 'GPU')."""
    key = name.lower()
    return key[:-1] if key.endswith("s") and len(key) > 3 else key


@lru_cache(maxsize=512)
def _systems(passage: str) -> frozenset[str]:
    """Keys of the names a passage uses: system names, and capitalised words it never writes in lower case."""
    keys = {_name_key(n) for n in _names(passage)}
    lower = set(_LOWER_WORD.findall(passage))  # "Evaluation …" is no name when "our evaluation" occurs too
    keys |= {
        _name_key(m.group(1))
        for m in _NAME.finditer(passage)
        if m.group(1)[0].isupper() and m.group(1).lower() not in STOPWORDS and m.group(1).lower() not in lower
    }
    return frozenset(keys)


@dataclass(frozen=True)
class _Frame:
    """One claim of a clause: the systems it is about, the systems they are compared against, its numbers."""

    subject: frozenset[str]
    baseline: frozenset[str]
    numbers: frozenset[str]
    compares: bool


def _clause_frames(clause: str, systems: frozenset[str]) -> list[_Frame]:
    """The claims of one clause, one per comparison marker ("compared to", "than", "outperforms" …)."""

    def named(text: str) -> frozenset[str]:  # names carry a capital: "vLLM", "Seesaw", "S2-Attention"
        tokens = (m.group(1) for m in _NAME.finditer(text))
        return frozenset(k for t in tokens if t.lower() != t and (k := _name_key(t)) in systems)

    markers = list(_COMPARISON.finditer(clause))
    if not markers:
        return [_Frame(named(clause), frozenset(), frozenset(numbers(clause)), False)]
    frames: list[_Frame] = []
    start = 0
    for i, m in enumerate(markers):
        if m.start() < start:
            continue
        last = i + 1 == len(markers)
        before, after = clause[start : m.start()], clause[m.end() : markers[i + 1].start() if not last else None]
        end = _BASELINE_END.search(after)
        cut = end.start() if end else len(after)
        fronted = (
            end is not None and after[cut] == "," and len(words(before)) <= FRONTED_WORDS
            and not named(before) and not numbers(before)
        )
        if fronted:  # "Compared with vLLM, Seesaw achieves …"
            subject, baseline, rest, start = after[cut + 1 :], after[:cut], "", m.end() + len(after)
        else:  # what follows the baseline opens the next claim, or ends this one
            subject, baseline, rest, start = before, after[:cut], after[cut:] if last else "", m.end() + cut
        if m.group("passive"):  # "vLLM is outperformed by Seesaw"
            subject, baseline = baseline, subject
        found = numbers(" ".join((subject, baseline, rest)))
        frames.append(_Frame(named(subject), named(baseline), frozenset(found), True))
    return frames


@lru_cache(maxsize=1024)
def _frames(text: str, systems: frozenset[str]) -> tuple[_Frame, ...]:
    """The claims of every clause of text (cached: one passage is checked against every answer sentence)."""
    text = normalise_numbers(text)  # once, so the clauses' numbers are number_set's
    return tuple(
        frame
        for sent in sentences(text) or [text]
        for clause in _CLAUSE_BREAK.split(sent)
        for part in _split_at_and(clause, systems)
        for frame in _clause_frames(part, systems)
    )


def _split_at_and(clause: str, systems: frozenset[str]) -> list[str]:
    """Clause parts at each "and" that opens a claim about another system ("… 3.54x and MoEShard up to 6.4x")."""
    parts, start = [], 0
    for m in _AND_NAME.finditer(clause):
        if _name_key(m.group(1)) in systems:
            parts.append(clause[start : m.start()])
            start = m.end()
    return [*parts, clause[start:]]


def _swapped_roles(claims: Sequence[_Frame], passage_claims: Sequence[_Frame]) -> list[str]:
    """Names a comparison of the sentence puts on the other side than every passage comparison naming them."""
    swapped: set[str] = set()
    comparisons = [p for p in passage_claims if p.compares]
    for f in claims:
        named = f.subject | f.baseline
        related = [p for p in comparisons if named & (p.subject | p.baseline)] if f.compares else []
        conflicts = [(f.subject & p.baseline) | (f.baseline & p.subject) for p in related]
        if related and all(conflicts):
            swapped.update(*conflicts)
    return sorted(swapped)


def _moved_numbers(claims: Sequence[_Frame], passage_claims: Sequence[_Frame]) -> list[str]:
    """Numbers the sentence gives its subject that the passage gives only to other systems."""
    moved: set[str] = set()
    for f in claims:
        for number in f.numbers if f.subject else ():
            holders = [p for p in passage_claims if number in p.numbers and p.subject]
            if holders and not any(f.subject & p.subject for p in holders):
                moved.add(number)
    return sorted(moved)


def _compared_numbers(claims: Sequence[_Frame], passage_claims: Sequence[_Frame]) -> set[str]:
    """Numbers of a sentence comparison that the passage states for the same two sides (its claim, in other words)."""
    return {
        number.rstrip("%")  # as _tokens spells them
        for f in claims
        if f.subject and f.baseline
        for p in passage_claims
        if f.subject & p.subject and f.baseline & p.baseline
        for number in f.numbers & p.numbers
    }


def support(sentence: str, passage: str, tau: float = SUPPORT_TAU) -> SupportResult:
    """Check whether passage lexically supports sentence (see the module docstring for the rule)."""
    sentence = strip_markup(sentence)
    passage = strip_markup(passage)
    sent_tokens = _tokens(sentence)
    pass_tokens = _tokens(passage)
    passage_vocab = set(pass_tokens)
    contained = bool(_plain(sentence)) and _plain(sentence) in _plain(passage)
    rouge = rouge_l_recall(sent_tokens, pass_tokens)
    coverage = sum(t in passage_vocab for t in sent_tokens) / len(sent_tokens) if sent_tokens else 0.0
    missing_numbers = sorted(number_set(sentence) - number_set(passage))
    added = bool(_negations(sentence) - _negations(passage))
    negated = any(t in NEGATIONS or t.endswith("n't") for t in _NEG_TOKEN.findall(sentence.lower()))
    dropped = not negated and _dropped_negation(sent_tokens, passage)
    missing_names = _missing_names(sentence, passage)
    systems = _systems(passage)
    claims, passage_claims = _frames(sentence, systems), _frames(passage, systems)
    # A number is about the same claim when it sits among the same words, or compares the same two systems.
    compared = _compared_numbers(claims, passage_claims)
    misbound = [n for n in _misbound_numbers(sent_tokens, pass_tokens) if n not in compared]
    command = instruction(sentence)
    swapped = _swapped_roles(claims, passage_claims)
    moved = _moved_numbers(claims, passage_claims)

    if command:
        where = "copied from a passage" if contained else "in the sentence"
        reason = f"instruction or link {where}: {command}"
    elif not (contained or rouge >= tau or coverage >= COVERAGE_MIN):
        reason = f"low overlap: ROUGE-L recall {rouge:.2f} < {tau:.2f}, coverage {coverage:.2f} < {COVERAGE_MIN:.2f}"
    elif missing_numbers:
        reason = f"numbers not in passage: {', '.join(missing_numbers)}"
    elif added:
        reason = f"negation not in passage: {', '.join(sorted(_negations(sentence) - _negations(passage)))}"
    elif dropped:
        reason = "passage negates what the sentence asserts"
    elif misbound:
        reason = f"numbers in passage but about something else: {', '.join(misbound)}"
    elif missing_names:
        reason = f"names not in passage: {', '.join(missing_names)}"
    elif swapped:
        reason = f"comparison roles swapped against the passage: {', '.join(swapped)}"
    elif moved:
        reason = f"numbers the passage gives to another system: {', '.join(moved)}"
    else:
        reason = "contained in passage" if contained else f"ROUGE-L recall {rouge:.2f}, coverage {coverage:.2f}"
        return SupportResult(True, rouge, coverage, [], False, reason, contained, False, [])
    return SupportResult(
        False, rouge, coverage, missing_numbers, added, reason, contained, dropped, missing_names, misbound,
        instruction=command, swapped_roles=swapped, moved_numbers=moved,
    )


def is_supported(sentence: str, passage: str) -> bool:
    """True when passage lexically supports sentence at the default tau."""
    return support(sentence, passage).supported


def support_multi(sentence: str, passages: Sequence[str], tau: float = SUPPORT_TAU) -> SupportResult:
    """Support of sentence by the union (concatenation) of the passages it cites."""
    if not passages:
        return SupportResult(False, 0.0, 0.0, sorted(number_set(strip_markup(sentence))), False, "no cited passage")
    return support(sentence, "\n".join(passages), tau=tau)
