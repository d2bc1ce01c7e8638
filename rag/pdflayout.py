"""Lines of PDF pages in reading order from PDFium's characters: columns one after the other, margins dropped."""

from __future__ import annotations

import ctypes
import math
import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pypdfium2.raw as pdfium_c

_GAP_EM = 0.8  # a horizontal jump wider than this (in font sizes) ends a run of text: another column or region
_MARGIN = 0.12  # fraction of the page height at the top and the bottom where running headers and footers sit
_PAGE_NUMBER = re.compile(r"(?i)^(page\s*)?[\divxlc]{1,5}(\s*(of|/)\s*\d{1,4})?$")
# Superscripts: a font at most _SMALL of the line's, its box's middle _RAISED of the line's size above the line's.
# The loose box spans the font's descent to its ascent, so a smaller character on the line's own baseline has its
# middle lower than the line's, not higher: a higher middle means a raised baseline.
_SMALL, _RAISED = 0.8, 0.15
_MARKER = re.compile(r"[\d,–-]*\d[\d,–-]*")  # what a superscript citation is made of: 14  9,100  91–94  60,66-70
_REF = re.compile(r"(?i)\brefs?\.?\s*$")  # "Ref. 9", "refs 3,4": a reference number that is part of the sentence
_EXPONENT = re.compile(r"[\d\-−+]+")  # 10^6, 10^-3
LEADING_MARK = re.compile(r"^[,.;:](\s|$)")  # a line or run starting with the punctuation of the text before it
_CLOSING = frozenset(",.;:!?)]}”’'\"")  # no space before these where a marker was dropped

Char = tuple[str, float, float, float, float, float, int]  # text, left, right, bottom, top, font size, weight


@dataclass(slots=True)
class Line:
    """One line of text on a page, its box in PDF points (y grows upwards) and its dominant font."""

    text: str
    x0: float
    x1: float
    bottom: float
    top: float
    size: float
    weight: int
    page: int = 0
    column: int = 0  # 0 spans the page (or the page has one column), 1 left column, 2 right column

    @property
    def mid(self) -> float:
        """Vertical centre of the line's box."""
        return (self.bottom + self.top) / 2


def page_lines(textpage: object, page: int) -> list[Line]:
    """The lines of one PDFium text page in reading order (textpage: a pypdfium2 PdfTextPage)."""
    runs = _runs(textpage.raw)  # type: ignore[attr-defined]
    gutter = _gutter(runs)
    for run in runs:
        run.page = page
        if gutter:
            run.column = 1 if run.x1 <= gutter[0] + 1 else 2 if run.x0 >= gutter[1] - 1 else 0
    return _order(runs)


def _runs(raw: object) -> list[Line]:
    """Runs of characters on one baseline, split where PDFium breaks a line or the text jumps sideways."""
    count = pdfium_c.FPDFText_CountChars(raw)
    box = pdfium_c.FS_RECTF()
    runs: list[Line] = []
    chars: list[Char] = []
    space = False

    def flush() -> None:
        if chars:
            runs.append(_run(chars))
            chars.clear()

    for i in range(count):
        code = pdfium_c.FPDFText_GetUnicode(raw, i)
        ch = chr(code) if 0 < code < 0x110000 else ""
        if ch in ("\r", "\n"):
            flush()
            continue
        if not ch or ch.isspace():
            space = bool(chars)
            continue
        angle = pdfium_c.FPDFText_GetCharAngle(raw, i)
        if 0.05 < angle < 2 * math.pi - 0.05:  # rotated text: arXiv side stamps, axis labels
            continue
        pdfium_c.FPDFText_GetLooseCharBox(raw, i, ctypes.byref(box))
        size = pdfium_c.FPDFText_GetFontSize(raw, i)
        if chars:
            _, _, last_x1, low, high, last_size, _ = chars[-1]
            mid = (box.bottom + box.top) / 2
            if not low <= mid <= high or box.left > last_x1 + _GAP_EM * max(size, last_size) or box.right < chars[0][1]:
                flush()
                space = False
        if space:
            chars.append((" ", box.left, box.left, box.bottom, box.top, size, 0))
            space = False
        hyphen = bool(pdfium_c.FPDFText_IsHyphen(raw, i))  # a hyphen PDFium saw at a line end: the line ends here
        chars.append(("-" if hyphen else ch, box.left, box.right, box.bottom, box.top, size,
                      pdfium_c.FPDFText_GetFontWeight(raw, i)))
        if hyphen:
            flush()
    flush()
    return runs


def _run(chars: list[Char]) -> Line:
    """One Line from its characters: the box of the largest characters, the most common font."""
    real = [c for c in chars if c[0] != " "]
    size = Counter(round(c[5], 1) for c in real).most_common(1)[0][0]
    if len(real) > 1 and min(c[5] for c in real) <= _SMALL * size:
        chars = without_markers(chars, size)
        real = [c for c in chars if c[0] != " "]
    weight = Counter(c[6] for c in real).most_common(1)[0][0]
    big = max(c[5] for c in real)
    core = [c for c in real if c[5] >= big - 0.1]
    return Line(text="".join(c[0] for c in chars), x0=min(c[1] for c in real), x1=max(c[2] for c in real),
                bottom=min(c[3] for c in core), top=max(c[4] for c in core), size=size, weight=weight)


def without_markers(chars: list[Char], size: float) -> list[Char]:
    """Characters without superscript citation markers ("molecules.¹²⁷ The" -> "molecules. The"); exponents stay.

    A superscript is smaller than the run's most common font and raised (see _SMALL). It is a citation marker when
    it holds only digits, commas and dashes and follows a word or punctuation; after a number it is an exponent,
    written 10^6; anything else (†, ′, "th", a fraction's numerator after "=") is left as it is.
    size is the line's own font size (the most common among its characters).
    """
    mids = sorted((c[3] + c[4]) / 2 for c in chars if c[0] != " " and abs(c[5] - size) < 0.1)
    mid = mids[len(mids) // 2]
    sup = [c[0] != " " and c[5] <= _SMALL * size and (c[3] + c[4]) / 2 >= mid + _RAISED * size for c in chars]
    out: list[Char] = []
    i = 0
    while i < len(chars):
        if not sup[i]:
            out.append(chars[i])
            i += 1
            continue
        j = i  # the superscript run: chars[i:j], spaces inside it included
        while j < len(chars) and (sup[j] or (chars[j][0] == " " and j + 1 < len(chars) and sup[j + 1])):
            j += 1
        text = "".join(c[0] for c in chars[i:j] if c[0] != " ")
        words = "".join(c[0] for c in out).rstrip()
        before = words[-1:]
        variable = bool(re.search(r"(^|[^\w])[^\W\d_]$", words))  # R², x²: a one-letter word
        if before.isdigit() or (variable and _EXPONENT.fullmatch(text)):
            if _EXPONENT.fullmatch(text):
                out.append(("^", chars[i][1], chars[i][1], *chars[i][3:]))
            out += chars[i:j]
        elif _MARKER.fullmatch(text) and _REF.search(words):  # "Republished from Ref.⁹": the number is the text
            if out and out[-1][0] != " ":
                out.append((" ", chars[i][1], chars[i][1], *chars[i][3:]))
            out += chars[i:j]
        elif _MARKER.fullmatch(text) and before and (before.isalpha() or before in _CLOSING):
            while out and out[-1][0] == " ":
                out.pop()
            while j < len(chars) and chars[j][0] == " ":
                j += 1
            after = chars[j][0] if j < len(chars) else ""
            if before in ",;." and after == before:  # "X,¹², and", "Rao et al.⁷⁰.": the paper's mark kept once
                j += 1
                while j < len(chars) and chars[j][0] == " ":
                    j += 1
            elif before in ",;" and len(out) >= 2 and out[-2][0] == before:
                out.pop()  # "smoothGrad,,⁶⁵ and": a comma doubled next to the marker
            if j < len(chars) and chars[j][0] not in _CLOSING:
                out.append((" ", chars[j][1], chars[j][1], *chars[j][3:]))
        else:
            out += chars[i:j]
        i = j
    return out


def _gutter(runs: list[Line]) -> tuple[float, float] | None:
    """The x-range between two text columns, when the page has two: a band in the middle few runs cross."""
    wide = [r for r in runs if len(r.text) >= 3]
    if len(wide) < 8:
        return None
    lo, hi = min(r.x0 for r in wide), max(r.x1 for r in wide)
    cover = np.zeros(int(hi - lo) + 2, dtype=int)
    for r in wide:
        cover[int(r.x0 - lo)] += 1
        cover[int(r.x1 - lo) + 1] -= 1
    cover = np.cumsum(cover)
    a, b = int(0.3 * (hi - lo)), int(0.7 * (hi - lo))
    least = int(cover[a:b].min())
    at = a + int(np.argmin(cover[a:b]))
    start, end = at, at
    while start > a and cover[start - 1] == least:
        start -= 1
    while end < b and cover[end + 1] == least:
        end += 1
    left = sum(r.x1 <= lo + start + 1 for r in wide)
    right = sum(r.x0 >= lo + end - 1 for r in wide)
    if end - start < 4 or min(left, right) < 4 or least > left + right:  # one column: most runs cross the middle
        return None
    return lo + start, lo + end


def _order(runs: list[Line]) -> list[Line]:
    """Runs merged into lines, read top to bottom; between page-wide lines, the left column before the right."""
    runs = sorted((r for r in runs if r.text.strip()), key=lambda r: -r.top)
    out: list[Line] = []
    band: dict[int, list[Line]] = {1: [], 2: []}
    for run in runs:
        if run.column:
            band[run.column].append(run)
            continue
        out += _rows(band[1]) + _rows(band[2])
        band = {1: [], 2: []}
        out.append(run)
    out += _rows(band[1]) + _rows(band[2])
    return _rows(out, keep_order=True)


def _rows(runs: list[Line], keep_order: bool = False) -> list[Line]:
    """Runs on the same row (each one's centre inside the other's box) merged left to right into one line."""
    rows: list[list[Line]] = []
    for run in runs if keep_order else sorted(runs, key=lambda r: -r.top):
        last = rows[-1][0] if rows else None
        same_row = last and (last.bottom <= run.mid <= last.top or run.bottom <= last.mid <= run.top)
        if last and same_row and last.column == run.column:
            rows[-1].append(run)
        else:
            rows.append([run])
    return [_merge(row) for row in rows]


def _merge(row: list[Line]) -> Line:
    """One line from runs on one row."""
    if len(row) == 1:
        return row[0]
    row = sorted(row, key=lambda r: r.x0)
    text = row[0].text
    for prev, run in pairwise(row):
        if LEADING_MARK.match(run.text):
            text = glued(text, run.text)
        else:
            text += (" " if run.x0 - prev.x1 > 0.15 * run.size else "") + run.text
    main = max(row, key=lambda r: len(r.text))
    return Line(text=text, x0=row[0].x0, x1=max(r.x1 for r in row), bottom=main.bottom, top=main.top,
                size=main.size, weight=main.weight, page=main.page, column=main.column)


def glued(text: str, piece: str) -> str:
    """text and a piece starting with its punctuation ("et al." and "." once a marker between them is gone)."""
    return text + (piece[1:] if text.endswith(piece[0]) else piece)


def drop_margins(pages: list[list[Line]], heights: list[float]) -> list[list[Line]]:
    """Pages without running headers and footers: page numbers and lines repeating in the margins of many pages."""

    def key(line: Line) -> str:
        return re.sub(r"\d+", "#", " ".join(line.text.lower().split()))

    def in_margin(line: Line, height: float) -> bool:
        return line.bottom > (1 - _MARGIN) * height or line.top < _MARGIN * height

    margins = [{key(x) for x in lines if in_margin(x, h)} for lines, h in zip(pages, heights, strict=True)]
    seen = Counter(k for keys in margins for k in keys)
    repeat = max(2, round(0.3 * len(pages)))
    return [
        [x for x in lines if not (in_margin(x, h) and (_PAGE_NUMBER.match(x.text.strip()) or seen[key(x)] >= repeat))]
        for lines, h in zip(pages, heights, strict=True)
    ]
