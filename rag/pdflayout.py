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
    chars: list[tuple[str, float, float, float, float, float, int]] = []
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


def _run(chars: list[tuple[str, float, float, float, float, float, int]]) -> Line:
    """One Line from its characters: the box of the largest characters, the most common font."""
    real = [c for c in chars if c[0] != " "]
    size = Counter(round(c[5], 1) for c in real).most_common(1)[0][0]
    weight = Counter(c[6] for c in real).most_common(1)[0][0]
    big = max(c[5] for c in real)
    core = [c for c in real if c[5] >= big - 0.1]
    return Line(text="".join(c[0] for c in chars), x0=min(c[1] for c in real), x1=max(c[2] for c in real),
                bottom=min(c[3] for c in core), top=max(c[4] for c in core), size=size, weight=weight)


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
        text += (" " if run.x0 - prev.x1 > 0.15 * run.size else "") + run.text
    main = max(row, key=lambda r: len(r.text))
    return Line(text=text, x0=row[0].x0, x1=max(r.x1 for r in row), bottom=main.bottom, top=main.top,
                size=main.size, weight=main.weight, page=main.page, column=main.column)


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
