"""Lines of PDF pages in reading order from PDFium's characters: columns one after the other, margins dropped."""

from __future__ import annotations

import ctypes
import math
import re
import unicodedata
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import pairwise
from statistics import median

import numpy as np
import pypdfium2.raw as pdfium_c

_BLOCK_EM = 1.5  # runs of one row further apart than this (in font sizes) are blocks side by side
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
# A TeX font embedded without a ToUnicode map (a distilled PDF) gives its ligatures as the control codes of their
# slots, 0x0B-0x0F (OT1) or 0x1B-0x1F (T1, and Libertine's own encodings, each in another order). Which code is
# which ligature is read from the words they make: the stems below hold ff, fi, fl, ffi and ffl in common words.
_LIGATURE_CODES = frozenset([*range(0x0B, 0x10), *range(0x1B, 0x20)])
_LIGATURES = ("ff", "fi", "fl", "ffi", "ffl")
_LIGATURE_STEMS = re.compile(
    r"effic|effect|effort|afford|affect|affin|differ|offer|offic|offset|offload|offlin|suffic|suffix|buffer|stuff|"
    r"staff|traffic|coeffic|diffic|diffus|shuffl|baffl|waffl|fine|first|fix|field|figur|final|find|file|filter|fit|"
    r"fica|fied|fies|fier|fying|specif|signif|benefit|profil|defin|config|confid|conflict|flow|flex|fluc|flu|flat|"
    r"flag|float|flo|flip|reflect|influen|inflat|confl|infl|fl[aeiou]", re.IGNORECASE)
_PLACEHOLDER = 0xF0000  # private use plane 15: a ligature code's placeholder is _PLACEHOLDER + 32 * font + code
_TEX_WORD = re.compile(r"[^\W\d_]*[\U000F0000-\U000FFFFF][\w\U000F0000-\U000FFFFF]*")
# Accents TeX sets as characters of their own (OT1 fonts): put on the letter they sit on.
SPACING_ACCENTS = {"¨": "\u0308", "´": "\u0301", "ˆ": "\u0302", "˜": "\u0303", "¸": "\u0327", "˚": "\u030a",
                    "ˇ": "\u030c", "˘": "\u0306", "˙": "\u0307", "`": "\u0300", "¯": "\u0304"}
_ACCENTS = frozenset(SPACING_ACCENTS)
_HYPHENS = frozenset([0x02, 0x2D, 0xAD, 0x2010, 0x2011, 0xFFFE])


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
    parts: tuple[str, ...] = ()  # the texts of blocks set side by side on this row (authors), when there are some

    @property
    def mid(self) -> float:
        """Vertical centre of the line's box."""
        return (self.bottom + self.top) / 2


@dataclass(slots=True)
class PageText:
    """One page as PDFium gives it: runs of text (not yet in reading order), sideways text, the page's height."""

    runs: list[Line]
    side: str  # rotated text: arXiv's identifier stamp, axis labels
    height: float


def page_text(textpage: object, page: int, height: float) -> PageText:
    """The runs of one PDFium text page (textpage: a pypdfium2 PdfTextPage), line numbers in the margin dropped."""
    runs, side = _runs(textpage.raw)  # type: ignore[attr-defined]
    for run in runs:
        run.page = page
    return PageText(runs=_without_line_numbers(runs), side=side, height=height)


def order_pages(pages: list[PageText]) -> list[list[Line]]:
    """Every page's lines in reading order: columns found page by page and across the document, then read."""
    runs = [r for p in pages for r in p.runs if _TEX_WORD.search(r.text)]
    if runs:
        table = str.maketrans(ligatures(" ".join(r.text for r in runs)))
        for r in runs:
            r.text = r.text.translate(table)
    return [_order(p.runs, gutter) for p, gutter in zip(pages, gutters(pages), strict=True)]


def _runs(raw: object) -> tuple[list[Line], str]:
    """Runs of characters on one baseline, split where PDFium breaks a line or the text jumps sideways; and the
    page's rotated text. Accents that TeX draws as characters of their own are put on their letters."""
    count = pdfium_c.FPDFText_CountChars(raw)
    box = pdfium_c.FS_RECTF()
    groups: list[list[Char]] = []
    chars: list[Char] = []
    accents: list[Char] = []
    side: list[str] = []
    fonts: dict[int, int] = {}
    space = broke = False

    def flush() -> None:
        nonlocal chars
        if chars:
            groups.append(chars)
            chars = []

    unicode, angle_of, loose_box = pdfium_c.FPDFText_GetUnicode, pdfium_c.FPDFText_GetCharAngle, \
        pdfium_c.FPDFText_GetLooseCharBox
    font_size, font_weight, box_ref = pdfium_c.FPDFText_GetFontSize, pdfium_c.FPDFText_GetFontWeight, ctypes.byref(box)
    for i in range(count):
        code = unicode(raw, i)
        ch = chr(code) if 0 < code < 0x110000 else ""
        if code in _LIGATURE_CODES and (code != 0x0D or not pdfium_c.FPDFText_IsGenerated(raw, i)):
            ch = _ligature_code(raw, i, code, fonts)  # a TeX font's ligature without a ToUnicode map: see ligatures()
        elif ch in ("\r", "\n"):  # PDFium's line break: taken where the next character is not on with this line
            broke = bool(chars)
            continue
        elif not ch or ch.isspace():
            space = bool(chars)
            continue
        angle = angle_of(raw, i)
        if 0.05 < angle < 2 * math.pi - 0.05:  # rotated text: arXiv side stamps, axis labels
            side.append(ch)
            continue
        loose_box(raw, i, box_ref)
        left, right, bottom, top = box.left, box.right, box.bottom, box.top
        size = font_size(raw, i)
        if ch in _ACCENTS:  # the glyph's own box: where the accent sits, above (a cedilla: under) its letter
            edges = ctypes.c_double(), ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
            pdfium_c.FPDFText_GetCharBox(raw, i, *map(ctypes.byref, edges))
            accents.append((ch, *(e.value for e in edges), size, 0))
            continue
        if chars:
            _, _, last_x1, low, high, last_size, _ = chars[-1]
            mid = (bottom + top) / 2
            if (not low <= mid <= high or left > last_x1 + _GAP_EM * max(size, last_size)
                    or right < chars[0][1] or (broke and left < last_x1 - 0.5 * size)):
                flush()
                space = False
            elif broke and left > last_x1 + 0.15 * size:
                space = True
        broke = False
        if space:
            chars.append((" ", left, left, bottom, top, size, 0))
            space = False
        # a hyphen PDFium saw at a line end (it may give it as U+0002 or U+FFFE): the line ends here
        hyphen = code in _HYPHENS and bool(pdfium_c.FPDFText_IsHyphen(raw, i))
        chars.append(("-" if hyphen else ch, left, right, bottom, top, size, font_weight(raw, i)))
        if hyphen:
            flush()
    flush()
    if accents:
        groups += _accented(groups, accents)
    return [_run(g) for g in groups], "".join(side)


def _ligature_code(raw: object, i: int, code: int, fonts: dict[int, int]) -> str:
    """A placeholder for a TeX ligature's code: a private-use character that tells its font and its code."""
    font = pdfium_c.FPDFTextObj_GetFont(pdfium_c.FPDFText_GetTextObject(raw, i))
    key = ctypes.cast(font, ctypes.c_void_p).value or 0
    if key not in fonts:  # the font's name, the same on every page: its placeholders are read together
        name = ctypes.create_string_buffer(256)
        pdfium_c.FPDFFont_GetBaseFontName(font, name, 256)
        fonts[key] = zlib.crc32(name.value) % 2048
    return chr(_PLACEHOLDER + fonts[key] * 32 + code)


def ligatures(text: str) -> dict[str, str]:
    """Which ligature each placeholder of a text stands for (font by font: each may order its slots its own way):
    the assignment under which most words holding them read as common words; those no word tells about go."""
    votes: Counter[tuple[str, str]] = Counter()
    codes: set[str] = set()
    for word in _TEX_WORD.findall(text):
        for code in {c for c in word if ord(c) >= _PLACEHOLDER}:
            codes.add(code)
            at = word.index(code)
            for ligature in _LIGATURES:
                decoded = word[:at] + ligature + word[at + 1:]
                if any(m.start() <= at < m.end() for m in _LIGATURE_STEMS.finditer(decoded)):
                    votes[(code, ligature)] += 1
    table = dict.fromkeys(codes, "")
    taken: set[tuple[int, str]] = set()
    for (code, ligature), _ in votes.most_common():
        font = (ord(code) - _PLACEHOLDER) // 32
        if not table[code] and (font, ligature) not in taken:
            table[code] = ligature
            taken.add((font, ligature))
    return table


def _accented(groups: list[list[Char]], accents: list[Char]) -> list[list[Char]]:
    """Spacing accents composed in place with the letter they sit on (the accent's glyph box, its middle inside
    the letter's line box or just over it); those on no letter are returned as runs of their own."""
    alone = []
    boxes = [(min(c[3] for c in g), max(c[4] for c in g), g[0][1], g[-1][2]) for g in groups]
    for accent in accents:
        mark, left, right, bottom, top, size, _ = accent
        centre, middle = (left + right) / 2, (bottom + top) / 2
        best: tuple[float, int, int] | None = None
        for g, (low, high, x0, x1) in enumerate(boxes):
            if not (x0 <= centre <= x1 and low <= middle <= high + 0.3 * size):
                continue
            for k, c in enumerate(groups[g]):
                if c[1] <= centre <= c[2] and c[0].isalpha() and c[3] <= middle <= c[4] + 0.3 * c[5]:
                    distance = abs(middle - (c[3] + c[4]) / 2)
                    if best is None or distance < best[0]:
                        best = (distance, g, k)
        if best is None:
            alone.append([accent])
            continue
        _, g, k = best
        c = groups[g][k]
        letter = {"ı": "i", "ȷ": "j"}.get(c[0], c[0])  # TeX puts an accent on a dotless i
        groups[g][k] = (unicodedata.normalize("NFC", letter + SPACING_ACCENTS[mark]), *c[1:])
    return alone


def _run(chars: list[Char]) -> Line:
    """One Line from its characters: the box of the largest characters, the most common font."""
    real = [c for c in chars if c[0] != " "]
    _, lefts, rights, bottoms, tops, sizes, weights = zip(*real, strict=True)
    small, big = min(sizes), max(sizes)
    size = round(big, 1) if big - small < 0.05 else Counter(round(x, 1) for x in sizes).most_common(1)[0][0]
    if len(real) > 1 and small <= _SMALL * size:
        chars = without_markers(chars, size)
        real = [c for c in chars if c[0] != " "]
        _, lefts, rights, bottoms, tops, sizes, weights = zip(*real, strict=True)
        big = max(sizes)
    weight = weights[0] if min(weights) == max(weights) else Counter(weights).most_common(1)[0][0]
    if big - min(sizes) < 0.1:
        bottom, top = min(bottoms), max(tops)
    else:
        core = [c for c in real if c[5] >= big - 0.1]
        bottom, top = min(c[3] for c in core), max(c[4] for c in core)
    return Line(text="".join(c[0] for c in chars), x0=min(lefts), x1=max(rights), bottom=bottom, top=top,
                size=size, weight=weight)


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


def _without_line_numbers(runs: list[Line]) -> list[Line]:
    """Runs without the line numbers of a review copy (lineno): numbers alone on their run, aligned one under the
    other at the same right edge, counting up down the page."""
    ladders: dict[int, list[Line]] = defaultdict(list)
    for r in runs:
        if r.text.isdigit() and len(r.text) <= 4:
            ladders[round(r.x1 / 3)].append(r)
    drop: set[int] = set()
    for edge in list(ladders):
        ladder = sorted(ladders[edge] + ladders.get(edge + 1, []), key=lambda r: -r.top)
        if len(ladder) < 5:
            continue
        values = [int(r.text) for r in ladder]
        if sum(b > a for a, b in pairwise(values)) >= 0.8 * (len(values) - 1):
            drop.update(id(r) for r in ladder)
    return [r for r in runs if id(r) not in drop] if drop else runs


def gutters(pages: list[PageText]) -> list[tuple[float, float] | None]:
    """Each page's gutter between two columns, or None. A page where none shows by itself (page 1, with a title
    block and author blocks over the columns) takes the one most pages share, when that one fits it."""
    own = [_gutter(p.runs) for p in pages]
    found = [g for g in own if g]
    if not found:
        return own
    shared = (median(g[0] for g in found), median(g[1] for g in found))
    return [g if g else shared if _fits(p.runs, shared) else None for p, g in zip(pages, own, strict=True)]


def _fits(runs: list[Line], gutter: tuple[float, float]) -> bool:
    """Whether a page's runs are in two columns on either side of the gutter (a few may cross it)."""
    slack = _slack(gutter)
    text = [r for r in runs if len(r.text) >= 3]
    left = sum(r.x1 <= gutter[0] + slack for r in text)
    right = sum(r.x0 >= gutter[1] - slack for r in text)
    return min(left, right) >= 4 and len(text) - left - right <= 0.5 * min(left, right)


def _slack(gutter: tuple[float, float]) -> float:
    """How far a column's line may reach into the gutter (a hyphen or a period set into the margin)."""
    return max(1.0, 0.25 * (gutter[1] - gutter[0]))


def _gutter(runs: list[Line]) -> tuple[float, float] | None:
    """The x-range between two text columns, when the page has two: a band in the middle few runs cross.

    Runs wider than most of the text (a title, an abstract or a caption across the page) are left out; when the
    band no run crosses is too narrow (an author block reaching into the gutter of page 1), a band a few runs cross
    is taken. A table's columns on a page in one column may pass for a gutter: lines across it are read as rows.
    """
    text = [r for r in runs if len(r.text) >= 3]
    if len(text) < 8:
        return None
    lo, hi = min(r.x0 for r in text), max(r.x1 for r in text)
    narrow = [r for r in text if r.x1 - r.x0 < 0.6 * (hi - lo)]
    if len(narrow) < 8:
        return None
    cover = np.zeros(int(hi - lo) + 2, dtype=int)
    for r in narrow:
        cover[int(r.x0 - lo)] += 1
        cover[int(r.x1 - lo) + 1] -= 1
    cover = np.cumsum(cover)
    a, b = int(0.3 * (hi - lo)), int(0.7 * (hi - lo))
    least = int(cover[a:b].min())
    at = a + int(np.argmin(cover[a:b]))
    for tolerance in (0, 2):
        start, end = at, at
        while start > a and cover[start - 1] <= least + tolerance:
            start -= 1
        while end < b and cover[end + 1] <= least + tolerance:
            end += 1
        if end - start >= 4:
            break
    left = sum(r.x1 <= lo + start + 1 for r in narrow)
    right = sum(r.x0 >= lo + end - 1 for r in narrow)
    if end - start < 4 or min(left, right) < 4 or least > 0.5 * min(left, right):  # one column
        return None
    return lo + start, lo + end


def _order(runs: list[Line], gutter: tuple[float, float] | None = None) -> list[Line]:
    """Runs merged into lines, read top to bottom; between page-wide lines, the left column before the right.

    A row holding a run across the gutter is read across, as one page-wide line: a title, a caption or a table
    over both columns, and front matter set as a grid (author blocks side by side, one reaching into the gutter).
    """
    runs = sorted((r for r in runs if r.text.strip()), key=lambda r: -r.top)
    if gutter:
        slack = _slack(gutter)
        for r in runs:
            r.column = 1 if r.x1 <= gutter[0] + slack else 2 if r.x0 >= gutter[1] - slack else 0
        if runs and runs[0].page == 1:
            _front_matter(runs, gutter)
        row: list[Line] = []
        for r in [*runs, None]:
            if r is not None and row and (row[0].bottom <= r.mid <= row[0].top or r.bottom <= row[0].mid <= r.top):
                row.append(r)
                continue
            if len(row) > 1 and any(x.column == 0 for x in row):
                for x in row:
                    x.column = 0
            row = [r] if r is not None else []
    else:
        for r in runs:
            r.column = 0
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


def _front_matter(runs: list[Line], gutter: tuple[float, float]) -> None:
    """On page 1, blocks above both columns' text (authors side by side, one over each column) are read across:
    short runs in both columns above the first line as wide as its column, on either side."""
    starts = []
    for column in (1, 2):
        inside = [r for r in runs if r.column == column]
        if not inside:
            return
        width = max(r.x1 - r.x0 for r in inside)
        starts.append(max((r.top for r in inside if r.x1 - r.x0 >= 0.7 * width), default=0.0))
    top = max(starts)
    above = [r for r in runs if r.column and r.bottom > top]
    if {r.column for r in above} == {1, 2}:
        for r in above:
            r.column = 0


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
    """One line from runs on one row; runs far apart (blocks side by side) are also kept as its parts."""
    if len(row) == 1:
        return row[0]
    row = sorted(row, key=lambda r: r.x0)
    text = row[0].text
    parts = [row[0].text]
    for prev, run in pairwise(row):
        if LEADING_MARK.match(run.text):
            text = glued(text, run.text)
            parts[-1] = glued(parts[-1], run.text)
            continue
        text += (" " if run.x0 - prev.x1 > 0.15 * run.size else "") + run.text
        if run.x0 - prev.x1 > _BLOCK_EM * run.size:
            parts.append(run.text)
        else:
            parts[-1] += (" " if run.x0 - prev.x1 > 0.15 * run.size else "") + run.text
    main = max(row, key=lambda r: len(r.text))
    return Line(text=text, x0=row[0].x0, x1=max(r.x1 for r in row), bottom=main.bottom, top=main.top,
                size=main.size, weight=main.weight, page=main.page, column=main.column,
                parts=tuple(parts) if len(parts) > 1 else ())


def glued(text: str, piece: str) -> str:
    """text and a piece starting with its punctuation ("et al." and "." once a marker between them is gone)."""
    return text + (piece[1:] if text.endswith(piece[0]) else piece)


def drop_margins(pages: list[list[Line]], heights: list[float], title: str = "") -> list[list[Line]]:
    """Pages without running headers and footers: page numbers, and the lines in a page's margins or on its top or
    bottom row that repeat on many pages or, after page 1, print the title's words or 'et al.' (a running head)."""

    def key(line: Line) -> str:
        return re.sub(r"\d+", "#", " ".join(line.text.lower().split()))

    def edges(lines: list[Line], height: float) -> list[Line]:
        if not lines:
            return []
        high, low = max(x.top for x in lines), min(x.bottom for x in lines)
        return [x for x in lines if x.bottom > (1 - _MARGIN) * height or x.top < _MARGIN * height
                or x.top >= high - 2 or x.bottom <= low + 2]

    named = " ".join(re.findall(r"\w+", title.lower()))

    def running_head(line: Line) -> bool:
        words = re.findall(r"[^\W\d_]+", line.text.lower())
        # "Wellawatte et al." or "Short Title": a few words; a sentence citing "Arrieta et al." is prose
        return bool(words) and len(words) <= 12 and (
            ("et al" in " ".join(words) and len(words) <= 8) or (len(words) >= 2 and f" {' '.join(words)} " in f" {named} "))

    margins = [edges(lines, h) for lines, h in zip(pages, heights, strict=True)]
    seen = Counter(k for lines in margins for k in {key(x) for x in lines})
    repeat = max(2, round(0.3 * len(pages)))
    out = []
    for number, (lines, edge) in enumerate(zip(pages, margins, strict=True), 1):
        drop = {id(x) for x in edge if _PAGE_NUMBER.match(x.text.strip()) or seen[key(x)] >= repeat
                or (number > 1 and running_head(x))}
        out.append([x for x in lines if id(x) not in drop])
    return out
