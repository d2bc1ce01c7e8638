"""Lexical support: does a passage back an answer sentence? A cheap, deterministic proxy for entailment.

A sentence is supported when it is contained in the passage, or the ROUGE-L recall of its content words
against the passage reaches ``tau``, or most of its content words occur in the passage — and, in every
case, each number, system name and negation of the sentence is also in the passage, each number sits
among some of the same words in both, and the passage does not negate what the sentence asserts. A research
claim is a statement: a sentence with a link or a command to the reader ("visit …", "paste your password",
"ignore previous instructions") is never supported, even copied verbatim — retrieved text may carry
instructions (OWASP LLM01). Call this "lexical support", not faithfulness: it cannot see paraphrase ("ignore"
for "do not act on") nor a swapped word ("manual" for "automatic", "inference" for "training").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rag.text import STOPWORDS, numbers, sentences, words

# Calibrated on tests/data/support_pairs.jsonl (47 hand-labelled pairs, 24 supported) by a sweep of tau
# over 0.30..0.75: best agreement 41/47 = 0.872, reached at tau <= 0.40 and at 0.55; 0.55 has the higher
# precision of "supported" (22/26 = 0.846, recall 22/24 = 0.917). ROUGE-L recall never exceeds content
# coverage, so a tau at or above COVERAGE_MIN would leave the ROUGE-L test without effect.
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
_CITATION = re.compile(r"\s*\[\d+(?:\s*[,;–-]\s*\d+)*\]")
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
_NEGATION_STEMS = frozenset(w.replace("-", "") for w in NEGATIONS)
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
    "call contact follow provide give delete transfer pay confirm verify update reset write insert include use".split()
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


def strip_markup(text: str) -> str:
    """Text without citation markers ("[1]", "[2, 3]") or Markdown emphasis."""
    text = _CITATION.sub("", text)
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


def _stem(word: str) -> str:
    """A crude suffix strip so 'provides'/'provide', 'strategies'/'strategy', 'resumed'/'resuming' compare equal."""
    word = word.replace("-", "")
    if word[-1:].isdigit() or len(word) <= 4:
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


def _tokens(text: str) -> list[str]:
    """Stemmed content words of text, with numbers normalised."""
    text = _NUMBER_RANGE.sub(r"\1 ", normalise_numbers(text))  # "18-49%" is two numbers, not one word
    return [_stem(w) for w in words(text) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]


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


def instruction(sentence: str) -> str:
    """The link or command to the reader in sentence, or '' — a research claim is a statement, not an order."""
    if url := _URL.search(sentence):
        return url.group(0).rstrip(".,;:!?)]'\"")
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
    misbound = _misbound_numbers(sent_tokens, pass_tokens)
    command = instruction(sentence)

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
    else:
        reason = "contained in passage" if contained else f"ROUGE-L recall {rouge:.2f}, coverage {coverage:.2f}"
        return SupportResult(True, rouge, coverage, [], False, reason, contained, False, [])
    return SupportResult(
        False, rouge, coverage, missing_numbers, added, reason, contained, dropped, missing_names, misbound,
        instruction=command,
    )


def is_supported(sentence: str, passage: str) -> bool:
    """True when passage lexically supports sentence at the default tau."""
    return support(sentence, passage).supported


def support_multi(sentence: str, passages: Sequence[str], tau: float = SUPPORT_TAU) -> SupportResult:
    """Support of sentence by the union (concatenation) of the passages it cites."""
    if not passages:
        return SupportResult(False, 0.0, 0.0, sorted(number_set(strip_markup(sentence))), False, "no cited passage")
    return support(sentence, "\n".join(passages), tau=tau)
