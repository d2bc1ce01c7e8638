"""Reported figures in abstract sentences ('a throughput increase of up to 1.78x … compared to vLLM'): the value and
its metric, qualifier, baseline and setting. The parts a table shows (claim, baseline, setting) are slices of the
sentence as written, so a cell quoting one stays checkable against the sentence it cites."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

# A figure a paper reports: "1.78x", "6.4times", "30%", "1.19x-2.50x" (the upper end of a range is the headline).
_VALUE = re.compile(r"(?<![\w.])(?:(?P<low>\d+(?:\.\d+)?)\s*(?:x|×|%)?\s*[-–]\s*)?(?P<num>\d+(?:\.\d+)?)\s*"
                    r"(?P<unit>x|×|%|times|-fold)(?![\w])", re.IGNORECASE)
_QUALIFIER = re.compile(r"\b(up to|by up to|as much as|on average|at least|nearly|over|about|around)\s*$", re.IGNORECASE)
_BASELINE = re.compile(r"\b(?:compared (?:over|to|with)|relative to|versus|vs\.?|over|than|against)\s+"
                       r"(?P<base>(?:the\s+)?[^,;.()]{2,60}?)(?=\s*(?:[,;.()]|\bwhen\b|\bon\b|\bwhile\b|\bacross\b|"
                       r"\bin\b|\band (?:achieves|consistently|demonstrates)\b|$))", re.IGNORECASE)
_METRICS = ("time to first token", "training throughput", "throughput", "speedup", "speed-up", "speed up", "latency",
            "accuracy",
            "memory", "tokens per solution", "fewer tokens", "training time", "communication", "cost", "energy",
            "perplexity", "MFU", "bandwidth", "efficiency")
_GAINS = re.compile(r"\b(speed-?ups?|faster|increase|improve\w*|higher|reduc\w*|fewer|lower|gains?|outperform\w*|"
                    r"better|achiev\w*)\b", re.IGNORECASE)
# Where a figure was measured: "when training a LLaMa-like transformer …", "on AIME 2024/2025", "across 4 GPUs".
_SETTING = re.compile(r"^\s*(?:(?:when|while)\s+(?=\w+ing\b)|(?=(?:on|at|across|using|with|for|in)\s))"
                      r"(?P<setting>[^,;()]{6,110}?)\s*(?=[,;()]|\.(?:\s|$)|\bwhile\b|\band (?:achiev|reduc|"
                      r"improv|consistently|demonstrat)|$)", re.IGNORECASE)
_PAREN = re.compile(r"^\s*\([^()]{1,40}\)")  # "(1.36x on average)" right after the value
_LINK_WORDS = re.compile(r"^\s*(?:increase|improvement|speed-?ups?|reduction|gains?|higher|lower|fewer|faster|more|"
                         r"less|better)?\s*(?:in|of|by)?\s*$", re.IGNORECASE)  # between a metric and its value
_MODIFIERS = re.compile(r"^[\w\s-]{0,30}$")  # between a value and its metric: '25.3X wall-clock attention speed-up'
_GAIN_NOUN = re.compile(r"^(?:\s+[\w-]+){0,2}?\s+(?:improvement|increase|speed-?up|reduction|gain)s?\b", re.IGNORECASE)
_NEAR, _FAR = 30, 60  # characters around a value searched for a word of gain (the nearer one wins)


class Figure(BaseModel):
    """One reported result, split into its parts where the sentence gives them."""

    value: str = Field(description="As written: '1.78x', '30%', '1.19x-2.50x'.")
    number: float = Field(description="The headline number (the upper end of a range), for charts.")
    unit: str = Field(description="'x' (a factor) or '%'.")
    metric: str = ""
    baseline: str = ""
    qualifier: str = Field(default="", description="'up to', 'on average' …")
    sentence: str = Field(description="The sentence of the abstract it comes from.")
    claim: str = Field(default="", description="The words of the sentence stating the figure with its metric: "
                                               "'throughput increase of up to 1.78x (1.36x on average)'.")
    versus: str = Field(default="", description="The baseline with the words that make it one: 'compared to vLLM'.")
    setting: str = Field(default="", description="Where it was measured, as the sentence says it: 'training a "
                                                 "LLaMa-like transformer with 7 billion parameters across 4 GPUs'.")


def _metric_span(sentence: str, start: int, end: int) -> tuple[str, int, int] | None:
    """The measured quantity nearest the figure ('throughput', 'time to first token') and where it is."""
    low = sentence.lower()
    # nearest, a longer name winning over the one it contains ('training throughput' over 'throughput')
    found = [(min(abs(i + len(m) - start), abs(i - end)), -len(m), m, i) for m in _METRICS
             for i in [low.find(m.lower())] if i >= 0]
    if not found:
        return None
    _, _, metric, at = min(found)
    return ("speedup" if metric in ("speed-up", "speed up") else metric), at, at + len(metric)


def _claim(sentence: str, start: int, end: int, qualifier: re.Match[str] | None,
           metric: tuple[str, int, int] | None) -> tuple[int, int]:
    """Where the figure's claim sits: its qualifier, the value with a parenthesis right after it, and its metric when
    only linking words stand between them ('a 1.70x increase in throughput', 'throughput increase of up to 1.78x')."""
    a = qualifier.start(1) if qualifier else start
    paren = _PAREN.match(sentence[end:])
    b = end + paren.end() if paren else end
    if metric is not None:
        _, m_start, m_end = metric
        if m_end <= a and _LINK_WORDS.match(sentence[m_end:a]) and a - m_end <= 30:
            a = m_start
        elif m_start >= b and _MODIFIERS.match(sentence[b:m_start]):
            return a, m_end
    noun = _GAIN_NOUN.match(sentence[b:])  # no metric beside it: '46% performance improvement'
    return a, b + noun.end() if noun else b


def figure_of(sentence: str) -> Figure | None:
    """The reported figure of a sentence (a factor or a percentage beside a word of gain), split into parts."""
    values = list(_VALUE.finditer(sentence))
    near = [m for m in values if _GAINS.search(sentence[max(0, m.start() - _NEAR): m.end() + _NEAR])]
    for m in near or [m for m in values if _GAINS.search(sentence[max(0, m.start() - _FAR): m.end() + _FAR])]:
        unit = "%" if m.group("unit") == "%" else "x"
        value = re.sub(r"\s*(times|-fold|×|X)$", "x", m.group(0).strip(), flags=re.IGNORECASE)
        qual = _QUALIFIER.search(sentence[:m.start()])
        metric = _metric_span(sentence, *m.span())
        a, b = _claim(sentence, m.start(), m.end(), qual, metric)
        # the baseline after the figure ('… compared to vLLM'), else before it ('We evaluate X against DeepSpeed …')
        base = _BASELINE.search(sentence, b) or next(
            (x for x in _BASELINE.finditer(sentence[:a]) if not _VALUE.search(x.group("base"))), None)
        if base is not None and base.group("base").strip()[:1].isdigit():  # 'over 8 devices' is no baseline
            base = None
        baseline = re.sub(r"^the\s+", "", base.group("base").strip(), flags=re.IGNORECASE) if base else ""
        after = max(b, metric[2] if metric and metric[1] >= b else b, base.end() if base and base.start() >= b else b)
        where = _SETTING.match(sentence[after:]) or (_SETTING.match(sentence[base.end():a]) if base and
                                                     base.end() <= a else None)
        setting = where.group("setting").strip() if where else ""
        return Figure(value=value, number=float(m.group("num")), unit=unit, metric=metric[0] if metric else "",
                      baseline=baseline, qualifier=qual.group(1).lower() if qual else "", sentence=sentence.strip(),
                      claim=sentence[a:b].strip(), versus=base.group(0).strip() if base else "", setting=setting)
    return None
