"""Read a research-paper PDF into a Paper: title, authors, year, abstract, DOI and a paged, sectioned body.

The library is pypdfium2 (PDFium; Apache-2.0 / BSD-3), chosen by measuring (tools/pdf_compare.py, best of 2 runs,
2 shared cores; tools/pdf_corpus.py on the corpus of tests/data/pdfcorpus):

    41-page paper               pages/s  hyphen breaks left  ligatures  title  abstract  sentences whole
    pypdfium2 5.15 raw text       287        109 (marked)        0       yes     yes        2/2
    pypdf 7.1 extract_text          8        109                 0       yes     yes        2/2
    pdfplumber 0.11 (not a dep)     4        108                 0       yes     yes        1/2
    pdfminer.six 2026 (not a dep)   5        109                 0       yes     yes        2/2
    rag.pdf on pypdfium2           56          0                 0       yes     yes        2/2

    corpus (32 typeset papers + the 41-page one)   pages/s  paragraph pairs out of order  interleaved  lost
    pdfminer.six layout analysis (extract_text)        16                62                    2        3 %
    rag.pdf on pypdfium2                               50                 0                    0      0.1 %

PDFium alone gives the characters with their boxes, font sizes and weights, and marks the hyphens it sees at line
ends; rag.pdflayout orders the lines itself, so that two columns read one after the other whatever order the content
stream drew them in (the gutter found page by page, and for page 1, under a title block and author blocks, taken
from the pages that show it). Superscript citation markers ("molecules.¹²⁷ The") are dropped by their geometry (a
smaller font on a raised baseline, rag.pdflayout.without_markers), not by a pattern over the text, so "512 GPUs"
and "Figure 3" stay; exponents read "10^6". Captions, a table's cells, a figure's labels and footnotes that a float
or a column's foot puts between the halves of a sentence ("pre-" | "Figure 2: …" | "diction") are moved after the
paragraph; page 1's publisher notices are dropped. The title is page 1's topmost block in larger type (the metadata's
Title only when it agrees, or when page 1 has no such block), the year the one page 1 states (else the file's
CreationDate). PDFium is not thread-safe: every call into it holds one lock; read_pdf runs it in a child process
(rag.pdfworker) so that a decompression bomb costs one line, not the app.
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path

from rag.corpus import CorpusError
from rag.pdflayout import LEADING_MARK, SPACING_ACCENTS, Line, PageText, drop_margins, glued, order_pages, page_text
from rag.settings import Settings
from rag.types import Body, Paper

logger = logging.getLogger(__name__)

MIN_ABSTRACT = 100  # characters: less than this is not an abstract
_FALLBACK_ABSTRACT = 300  # without an "Abstract" heading, the first paragraph at least this long
_PDFIUM = threading.Lock()

# "Abstract" alone, "Abstract. We …", "Abstract—We …" or "ABSTRACT We …"
_ABSTRACT = re.compile(r"^\s*(?:(?i:abstract|summary)\s*(?:[.:—–-]\s*|$)|ABSTRACT\s+)(.*)$")
_AFTER_ABSTRACT = re.compile(
    r"(?i)^\s*((keywords|key\s+words|index\s+terms|ccs\s+concepts|acm\s+reference|general\s+terms)\b"
    r"|(\d+\.?\s+|[IVX]+\.\s+)?introduction\b)"
)
_REFERENCES = re.compile(
    r"(?i)^\s*(\d+\.?\s*|[IVX]+\.\s*)?(references|bibliography|literature\s+cited|works\s+cited|reference\s+list)\s*$"
)
_NUMBERED = re.compile(r"^(\d{1,2}(\.\d{1,2}){0,3}\.?|[IVX]{1,5}\.)\s+[A-Z][^\s]")
_SENTENCE_END = re.compile(r"[.!?:][\"”’')\]]*(\s+[\d,–-]+)?$")  # "end." or "end. 12" (a citation), not "0.92"
_BULLET = re.compile(r"^[•◦▪‣∙●○■]")
_CAPTION = re.compile(r"^((Figure|Fig\.|Table|Scheme|Algorithm|Listing)\s*[A-Z]?\d+[:.|]|TABLE\s+[IVXLC]+\b)")
_NOTICE = re.compile(r"(?i)permission to make digital|acm reference format|copyright held by|publication rights licensed")
_SMALL_NOTICE = re.compile(r"(?i)©|\bcopyright\b|\bISBN\b|\$\d+\.\d\d|\bconference on\b|\bproceedings of\b"
                           r"|correspondence to|\bPMLR\b|under review|\blicen[cs]e")
_FOOTNOTE = re.compile(r"^\s*([\d∗*†‡§¶]{1,3}\s*)[A-Z]")
_DOI = re.compile(r"\b(10\.\d{4,9}/[^\s\"<>]+)")
_AFFILIATION = re.compile(
    r"(?i)(universit|institut|department|dept\.|laborator|college|school|faculty|centre|center|inc\.|corp"
    r"|gmbh|ltd|research|academy|hospital|@|e-?mail|\b\d{4,6}\b)"
)
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?"
_YEAR = re.compile(
    r"(?:©|\(c\)|copyright)\s*(?:©\s*)?((?:19|20)\d\d)"  # © 2024, Copyright 2024, (c) 2024
    r"|\barXiv:(\d\d)[01]\d\.\d{4,5}"  # arXiv:2403.01234 (its first two digits are the year's)
    rf"|\b\d{{1,2}}\s+{_MONTH}\s+((?:19|20)\d\d)\b|\b{_MONTH}\s+\d{{1,2}},?\s+((?:19|20)\d\d)\b"  # dates
    r"|\(\s*[A-Z][\w&-]*(?:\s+[A-Z][\w&-]*)*\s+((?:19|20)\d\d)\s*\)"  # (NeurIPS 2024)
    r"|\b(?:Proceedings|Proc\.|Conference|Symposium|Workshop|Journal|Transactions|PMLR)\b[^.]{0,120}?"
    r"\b((?:19|20)\d\d)\b"  # Proceedings of … 2024
    r"|\b[A-Z][A-Za-z]+\s?['’](\d\d)\b",  # SoCC '24
    re.IGNORECASE,
)
_THIS_YEAR = datetime.date.today().year
_NOT_TITLE_LINE = re.compile(r"@|\barxiv\b|\bpreprint\b|\bunder review\b|^\s*(vol\.|volume|doi)\b", re.IGNORECASE)
_MARKS = re.compile(r"[†‡§¶∗*#⋆♯∥⊥♣♦♥♠∗]|(?<=[a-z])\d+(,\d+)*")  # affiliation marks after a name
_NAME_WORD = re.compile(r"[^\W\d_][\w'’.-]*")
_PARTICLES = frozenset("van von de der den da di del la le du dos bin".split())
_NOT_TITLE = re.compile(r"(?i)^(untitled|microsoft\s+(word|powerpoint)|title|document\d*|slide|presentation)\b"
                        r"|\.(docx?|tex|dvi|pdf|ps|indd|rtf|odt|pages)$|^[\w\-.]+$")
_ACCENTED = re.compile(r"([¨´ˆ˜¸˚ˇ˘˙`])([A-Za-z])")


@dataclass(frozen=True, slots=True)
class _Style:
    """What body text looks like in this document: its font, its line pitch, its column edges and its words."""

    size: float
    weight: int
    pitch: float
    edges: dict[tuple[int, int], tuple[float, float]]
    measure: float  # the usual width of a full line of body text
    words: frozenset[str]
    compounds: frozenset[str]


def read_pdf(path: Path, references: bool = False, settings: Settings | None = None) -> Paper:
    """The Paper in a PDF file: title, abstract, authors, year, DOI and its body up to the references (or with them).

    Read in a child process held to the settings' memory and time limits, after its compressed streams were
    counted against the caps (rag.pdfworker): a damaged or hostile file costs a CorpusError, never the app.
    """
    from rag.pdfworker import Limits, read_in_child

    path = Path(path)
    _check_file(path)
    return read_in_child(path, references, Limits.of(settings or Settings()))


def extract_paper(path: Path, references: bool = False) -> Paper:
    """read_pdf's work in this process, without its limits (for the child process and for measuring)."""
    path = Path(path)
    _check_file(path)
    with _PDFIUM:
        texts, meta = _extract(path)
    pages = order_pages(texts)
    if sum(len(x.text.strip()) for lines in pages for x in lines) < 20:
        raise CorpusError(path, 0, "has no text layer (a scanned PDF?); run OCR on it first")
    for x in (x for lines in pages for x in lines):
        x.text = clean(x.text)
    first_page = " ".join(x.text for x in pages[0]) if pages else ""
    title, title_lines = _title(pages[0] if pages else [], texts[0].height if texts else 0.0, meta.get("Title", ""))
    printed = title or " ".join(x.text for x in title_lines)
    lines = [x for page in drop_margins(pages, [t.height for t in texts], printed) for x in page]
    style = _style(lines)
    title = title or _join(title_lines, style)
    start = next((i + 1 for i, x in enumerate(lines) if x is title_lines[-1]), 0) if title_lines else 0
    abstract, end = _abstract(lines, start, style)
    if len(abstract) < MIN_ABSTRACT:
        raise CorpusError(path, 0, "has a text layer but no abstract-length text was found in it")
    authors = _authors(lines[start:end], style) or parse_authors([meta.get("Author", "")])
    doi = _DOI.search(first_page)
    return Paper(
        id="",
        title=" ".join(title.split()) or path.stem,
        abstract=abstract,
        kind="pdf",
        source=path.name,
        pages=len(pages),
        authors=authors,
        year=year_of(f"{first_page} {texts[0].side if texts else ''}", meta),
        doi=doi.group(1).rstrip(".,;)]") if doi else "",
        body=_body(lines[end:], style, references),
    )


def year_of(text: str, meta: dict[str, str]) -> int | None:
    """The year a paper states on its first page (a copyright line, its venue, an arXiv identifier or a date), else
    the year its PDF was made (metadata CreationDate); None when neither gives one."""
    found: Counter[int] = Counter()
    for m in _YEAR.finditer(text):
        digits = next(g for g in m.groups() if g)
        year = int(digits) if len(digits) == 4 else 2000 + int(digits)
        if 1950 <= year <= _THIS_YEAR + 1:
            found[year] += 1
    if found:
        return max(found, key=lambda y: (found[y], y))
    made = re.match(r"(?:D:)?((?:19|20)\d\d)", meta.get("CreationDate", "") or meta.get("ModDate", ""))
    return int(made.group(1)) if made and 1950 <= int(made.group(1)) <= _THIS_YEAR + 1 else None


def _check_file(path: Path) -> None:
    """Raise CorpusError unless path is a readable file that starts and ends like a PDF."""
    try:
        with path.open("rb") as f:
            head = f.read(1024)
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 2048))
            tail = f.read()
    except OSError as e:
        raise CorpusError(path, 0, f"cannot be read ({e.strerror or e})") from None
    if b"%PDF-" not in head:
        raise CorpusError(path, 0, "is not a PDF (no %PDF- header)")
    if b"%%EOF" not in tail:
        raise CorpusError(path, 0, "is truncated or corrupt (no %%EOF end marker)")


def _extract(path: Path) -> tuple[list[PageText], dict[str, str]]:
    """Every page's text runs and the document metadata (PDFium calls only)."""
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as e:
        if "password" in str(e).lower():
            raise CorpusError(path, 0, "is encrypted; it cannot be read without its password") from None
        raise CorpusError(path, 0, f"is corrupt or not a PDF ({_reason(e)})") from None
    try:
        pages = []
        for i in range(len(doc)):
            page = doc[i]
            textpage = page.get_textpage()
            try:
                pages.append(page_text(textpage, i + 1, page.get_height()))
            finally:
                textpage.close()
                page.close()
        return pages, {k: str(v) for k, v in doc.get_metadata_dict().items()}
    except Exception as e:  # PDFium fails in many ways on damaged files; none should reach the user as a traceback
        logger.debug("PDFium failed on %s", path, exc_info=True)
        raise CorpusError(path, 0, f"is corrupt ({_reason(e)})") from None
    finally:
        doc.close()


def _reason(error: Exception) -> str:
    """PDFium's own words for an error, one line."""
    text = str(error).strip().rstrip(".")
    match = re.search(r"PDFium: ([^)]+)", text)
    return (match.group(1) if match else text or type(error).__name__).lower()


def clean(text: str) -> str:
    """Text with ligatures and compatibility forms unfolded (NFKC), spacing accents composed, controls removed."""
    text = _ACCENTED.sub(lambda m: unicodedata.normalize("NFC", m.group(2) + SPACING_ACCENTS[m.group(1)]), text)
    text = unicodedata.normalize("NFKC", text)
    return "".join(c for c in text if c.isprintable() or c == " ").replace("\u00ad", "")


def looks_like_title(text: str) -> bool:
    """Whether PDF metadata's Title is a real title (not empty, a file name, 'Microsoft Word - …' or an id)."""
    text = " ".join(text.split())
    letters = sum(c.isalpha() for c in text)
    return 8 <= len(text) <= 300 and letters >= 0.6 * len(text.replace(" ", "")) and not _NOT_TITLE.search(text)


def _style(lines: list[Line]) -> _Style:
    """The body font (the size and weight most characters have), the usual line pitch, column edges, the words."""
    size_chars: dict[float, int] = {}
    weight_chars: dict[int, int] = {}
    for x in lines:
        size_chars[x.size] = size_chars.get(x.size, 0) + len(x.text)
        weight_chars[x.weight] = weight_chars.get(x.weight, 0) + len(x.text)
    size = max(size_chars, key=size_chars.__getitem__) if lines else 10.0
    weight = max(weight_chars, key=weight_chars.__getitem__) if lines else 400
    body = [x for x in lines if abs(x.size - size) < 0.5]
    pitches = sorted(a.top - b.top for a, b in pairwise(body)
                     if a.page == b.page and a.column == b.column and 0 < a.top - b.top < 3 * size)
    edges: dict[tuple[int, int], tuple[float, float]] = {}
    for x in body:
        left, right = edges.get((x.page, x.column), (x.x0, x.x1))
        edges[(x.page, x.column)] = (min(left, x.x0), max(right, x.x1))
    widths = sorted(x.x1 - x.x0 for x in body)
    words, compounds = _vocabulary(lines)
    return _Style(size, weight, pitches[len(pitches) // 2] if pitches else 1.2 * size, edges,
                  widths[len(widths) // 2] if widths else 0.0, words, compounds)


def _vocabulary(lines: list[Line]) -> tuple[frozenset[str], frozenset[str]]:
    """The document's words and hyphenated compounds, leaving out the halves of words broken at line ends."""
    words: set[str] = set()
    compounds: set[str] = set()
    for i, line in enumerate(lines):
        tokens = line.text.split()
        if tokens and tokens[-1].endswith("-"):
            tokens = tokens[:-1]
        if i and lines[i - 1].text.endswith("-"):
            tokens = tokens[1:]
        for word in re.findall(r"[^\W\d_]+(?:-[^\W\d_]+)*", " ".join(tokens).lower()):
            words.update(word.split("-"))
            if "-" in word:  # and its pairs: "state-" + "of-the-art" keeps its hyphen
                parts = word.split("-")
                compounds.update([word, *(f"{a}-{b}" for a, b in pairwise(parts))])
    return frozenset(words), frozenset(compounds)


def keep_hyphen(left: str, right: str, words: frozenset[str], compounds: frozenset[str]) -> bool:
    """Whether a hyphen ending the line after `left` belongs to the word (state-of-the-art) or only broke it."""
    stem = left.removesuffix("-")
    head = re.search(r"[^\W\d_]+$", stem)
    tail = re.match(r"[^\W\d_]+", right)
    if not head or not tail or "-" in stem[: head.start()]:
        return True  # "COVID-19", a compound already: "state-of-the-art"
    a, b = head.group().lower(), tail.group().lower()
    if f"{a}-{b}" in compounds:
        return True
    if a + b in words:
        return False
    if tail.group()[0].isupper():
        return True  # "Vassilev-Galindo"
    return min(len(a), len(b)) >= 3 and a in words and b in words


def _join(lines: list[Line], style: _Style) -> str:
    """Lines joined into one paragraph: hyphens at line ends resolved, spaces single."""
    text = ""
    for line in lines:
        piece = line.text.strip()
        if text.endswith("-") and piece:
            left = text.split()[-1] if text.split() else ""
            text = text if keep_hyphen(left, piece, style.words, style.compounds) else text[:-1]
            text += piece
        elif text and LEADING_MARK.match(piece):
            text = glued(text, piece)
        else:
            text += (" " if text else "") + piece
    return " ".join(text.split())


def is_heading(line: Line, style: _Style) -> bool:
    """Whether a line is a section heading: short, unpunctuated, and larger, bolder, numbered or capitalised."""
    text = line.text.strip()
    words = text.split()
    if not 1 <= len(words) <= 12 or len(text) > 100 or text[-1] in ".,;" or not any(c.isalpha() for c in text):
        return False
    if _REFERENCES.match(text):
        return True
    left, right = style.edges.get((line.page, line.column), (line.x0, line.x1))
    short = line.x1 - line.x0 < 0.7 * (right - left)
    if line.size >= 1.12 * style.size:
        return short or len(words) <= 6
    if not short:
        return False
    letters = [c for c in text if c.isalpha()]
    return (line.weight >= style.weight + 150 or bool(_NUMBERED.match(text))
            or (len(letters) >= 4 and all(c.isupper() for c in letters) and len(words) <= 6))


def _title(page: list[Line], height: float, meta: str) -> tuple[str, list[Line]]:
    """The metadata's Title when it is the title ("" when page 1's lines are to be joined) and the lines printing the
    title on page 1: its title block, the Title only when page 1 agrees (or, with no title block on page 1, when the
    Title looks like one); a template's or a file's name is not."""
    block = _title_block(page, height)
    if block:
        return (" ".join(meta.split()) if _words(meta) == _words(" ".join(x.text for x in block)) else ""), block
    if looks_like_title(meta):
        return " ".join(meta.split()), _lines_of(page, meta)
    first = next((x for x in page if len(x.text.split()) >= 3 and not _ABSTRACT.match(x.text)), None)
    return "", [first] if first else []


def _title_block(page: list[Line], height: float) -> list[Line]:
    """The title on page 1: the topmost block of lines in type clearly larger than the body's in its upper part.

    The topmost, not the largest: a teaser figure under the byline may hold a phrase in larger type still. A block
    is consecutive lines of one size; lines that are no title (the Abstract heading, an email, a date, a preprint
    notice) are passed over.
    """
    size = _body_size(page)
    top = [x for x in page if x.top >= 0.4 * height and sum(c.isalpha() for c in x.text) >= 2
           and not _ABSTRACT.match(x.text) and not _NOT_TITLE_LINE.search(x.text)]
    if not top:
        return []
    biggest = max(x.size for x in top)
    if biggest < 1.15 * size:
        return []
    big = [x for x in top if x.size >= max(1.15 * size, 0.6 * biggest)]
    first = max(big, key=lambda x: x.top)
    block = [first]
    for x in page[page.index(first) + 1:]:
        if abs(x.size - first.size) > 0.5 or block[-1].bottom - x.top > 1.2 * first.size:
            break
        block.append(x)
        if len(block) == 4:
            break
    return block


def _body_size(lines: list[Line]) -> float:
    """The font size most characters of these lines have."""
    chars: Counter[float] = Counter()
    for x in lines:
        chars[x.size] += len(x.text)
    return chars.most_common(1)[0][0] if chars else 10.0


def _words(text: str) -> list[str]:
    """A text's words, case and punctuation aside (to compare titles)."""
    return re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold())


def _lines_of(page: list[Line], title: str) -> list[Line]:
    """The consecutive lines on page 1 that print the given title ([] when it is not printed there)."""
    words = " ".join(_words(title))
    block: list[Line] = []
    for line in page:
        text = " ".join(_words(line.text))
        if len(text) >= 4 and text in words:
            block.append(line)
        elif block:
            break
    return block


def _abstract(lines: list[Line], start: int, style: _Style) -> tuple[str, int]:
    """The abstract and the index of the line after it: under an Abstract heading, else the first long paragraph."""
    for i in range(start, len(lines)):
        if lines[i].page > 2:
            break
        match = _ABSTRACT.match(lines[i].text)
        if not match:
            continue
        first = replace(lines[i], text=match.group(1))
        size = next((x.size for x in lines[i + 1: i + 3] if x.text.strip()), style.size)
        end = i + 1
        while end < len(lines) and not _ends_abstract(lines[end], size, style):
            end += 1
        return _join([first, *lines[i + 1: end]], style), end
    for a, b in _paragraphs(lines, start, style):
        text = _join(lines[a:b], style)
        if len(text) >= _FALLBACK_ABSTRACT and not is_heading(lines[a], style):
            return text, b
    return "", start


def _ends_abstract(line: Line, size: float, style: _Style) -> bool:
    """Whether a line after the abstract's start is past its end: a heading, keywords, or another font size."""
    return bool(_AFTER_ABSTRACT.match(line.text)) or is_heading(line, style) or abs(line.size - size) > 0.15 * size


def _paragraphs(lines: list[Line], start: int, style: _Style) -> list[tuple[int, int]]:
    """(start, end) index ranges of the paragraphs (a heading is one) from lines[start] on."""
    out: list[tuple[int, int]] = []
    begin = start
    for i in range(start + 1, len(lines)):
        prev, line = lines[i - 1], lines[i]
        # a caption stays with its figure: it ends where its page or column does
        moved = (prev.page, prev.column) != (line.page, line.column) and bool(_CAPTION.match(lines[begin].text))
        if moved or _breaks(prev, line, style):
            out.append((begin, i))
            begin = i
    if begin < len(lines):
        out.append((begin, len(lines)))
    return out


def _breaks(prev: Line, line: Line, style: _Style) -> bool:
    """Whether a new paragraph starts at line: a heading, a bullet, a wider gap, an indent or a short last line."""
    if is_heading(line, style) or is_heading(prev, style) or _BULLET.match(line.text) or _CAPTION.match(line.text):
        return True
    if abs(prev.size - line.size) > 0.15 * style.size:  # a footnote, a caption, a quotation in another font
        return True
    same = prev.page == line.page and prev.column == line.column
    below = prev.page == line.page and (same or 0 in (prev.column, line.column))  # not into the next column
    if below and prev.top - line.top > 1.45 * style.pitch:
        return True
    if not _SENTENCE_END.search(prev.text.rstrip()):
        return False
    left, right = style.edges.get((line.page, line.column), (line.x0, line.x1))
    prev_right = style.edges.get((prev.page, prev.column), (prev.x0, prev.x1))[1]
    return line.x0 > left + 0.7 * line.size or prev.x1 < prev_right - 2 * prev.size


def _authors(head: list[Line], style: _Style) -> list[str]:
    """The authors named between the title and the abstract: the lines in the byline's font (the first line that
    is no affiliation sets it), blocks side by side taken one by one, affiliations and emails passed over. A line
    continues the one before when that one ends in 'and' or a comma, or does not read as names by itself."""
    first = next((x for x in head if not _AFFILIATION.search(x.text) and not _ABSTRACT.match(x.text)), None)
    if first is None:
        return []
    groups: list[list[str]] = []
    for line in head:
        if _ABSTRACT.match(line.text):
            break
        if abs(line.size - first.size) > 0.3 or line.weight != first.weight:
            continue
        for part in line.parts or (line.text,):
            if _AFFILIATION.search(part):
                groups.append([])
                continue
            last = _MARKS.sub("", groups[-1][-1]).rstrip() if groups and groups[-1] else ""
            if last and not line.parts and (last.endswith((",", " and", "&")) or re.match(r"(and|&|,)\b", part)
                                            or not parse_authors(groups[-1])):
                groups[-1].append(part)
            else:
                groups.append([part])
    return list(dict.fromkeys(name for group in groups for name in parse_authors(group)))


def parse_authors(lines: list[str]) -> list[str]:
    """Author names from a byline ('A. Smith,† B. Jones1 and C. Lee'); [] unless every part reads as a name."""
    text = _MARKS.sub(" ", " ".join(lines))
    parts = [" ".join(p.split()).strip(" ,") for p in re.split(r",|;|&|\band\b", text)]
    names = [p for p in parts if p]
    if not names or len(names) > 50 or not all(map(_is_name, names)):
        return []
    return names


def _is_name(text: str) -> bool:
    """Whether a text reads as a person's name: two to five capitalised words (particles such as 'van' aside)."""
    words = text.split()
    return 2 <= len(words) <= 5 and all(
        _NAME_WORD.fullmatch(w) and (w[0].isupper() or w in _PARTICLES) for w in words) and words[-1][0].isupper()


def _body(lines: list[Line], style: _Style, references: bool) -> Body:
    """The text after the abstract as paragraphs, with where each page and section starts; references optional."""
    stop = next((i for i, x in enumerate(lines) if _REFERENCES.match(x.text) and is_heading(x, style)), len(lines))
    if not references:
        lines = lines[:stop]
    text = ""
    page_starts: list[int] = []
    sections: list[tuple[int, str]] = []
    pages_seen = lines[0].page - 1 if lines else 0
    for paragraph in _floats_after([lines[a:b] for a, b in _paragraphs(lines, 0, style)], style):
        for k, line in enumerate(paragraph):
            piece = " ".join(line.text.split())
            if not k:
                text = text.rstrip() + "\n\n" if text else text
            elif text.endswith("-") and piece and not keep_hyphen(text.split()[-1], piece, style.words,
                                                                  style.compounds):
                text = text[:-1]
            elif text.endswith("-") and piece:
                pass
            elif text and LEADING_MARK.match(piece):  # "… et al." + "." (a marker dropped between them): no space
                piece = piece[1:] if text.endswith(piece[0]) else piece
            elif text:
                text += " "
            while pages_seen < line.page:
                page_starts.append(len(text))
                pages_seen += 1
            if is_heading(line, style):
                sections.append((len(text), piece))
            text += piece
    first_page = lines[0].page if lines else 1
    return Body(text=text, page_starts=page_starts, first_page=first_page, sections=sections)


def _floats_after(paragraphs: list[list[Line]], style: _Style) -> list[list[Line]]:
    """Paragraphs with what interrupts a paragraph mid-sentence moved after its end: captions with the figure's or
    table's own text, and footnotes; page 1's boilerplate (copyright, licence, venue notes) dropped.

    A figure set at the top of the next column puts its labels, its caption (and a table its cells) between "pre-"
    and "diction"; a footnote at the foot of a column does the same. When the paragraph before them ends without a
    sentence's end and the text after them is body text that starts flush (not a new paragraph's indent, heading
    or caption), that text continues the paragraph. Text that is no body text (another font, short lines, off the
    column's edge) is moved only along with a caption or a footnote, so an equation stays where it is. The page map
    stays ascending, so a moved float is counted on the page where the paragraph it interrupted ends.
    """
    paragraphs = [p for p in paragraphs if not _boilerplate(p, style)]
    out: list[list[Line]] = []
    held: list[list[Line]] = []  # captions and footnotes (with their float's text) waiting for the paragraph's end
    pending: list[list[Line]] = []  # float-like text after an unfinished paragraph, not yet known to be a float's
    for i, paragraph in enumerate(paragraphs):
        following = paragraphs[i + 1] if i + 1 < len(paragraphs) else None
        waiting = bool(held or pending) or bool(out and _unfinished(out[-1], style))
        if waiting and (_CAPTION.match(paragraph[0].text) or _footnote(paragraph, following, style)):
            held += pending + [paragraph]
            pending = []
        elif waiting and not _continues(paragraph, style) and _float_text(paragraph, style):
            pending.append(paragraph)
        else:
            if held and _continues(paragraph, style):
                out[-1] = out[-1] + paragraph
                out += held + pending
            else:
                out += held + pending + [paragraph]
            held, pending = [], []
    return out + held + pending


def _boilerplate(paragraph: list[Line], style: _Style) -> bool:
    """Whether a paragraph of page 1 is a publisher's notice: a copyright or licence line, the venue, the ACM
    reference format (in small type unless the words say so unmistakably)."""
    if paragraph[0].page != 1:
        return False
    text = " ".join(x.text for x in paragraph)
    small = all(x.size < 0.95 * style.size for x in paragraph)
    return bool(_NOTICE.search(text) or (small and _SMALL_NOTICE.search(text)))


def _footnote(paragraph: list[Line], following: list[Line] | None, style: _Style) -> bool:
    """Whether a paragraph is a footnote: in small type, starting with its mark, last in its column."""
    last = paragraph[-1]
    at_foot = following is None or (following[0].page, following[0].column) != (last.page, last.column)
    return at_foot and all(x.size < 0.92 * style.size for x in paragraph) and bool(_FOOTNOTE.match(paragraph[0].text))


def _float_text(paragraph: list[Line], style: _Style) -> bool:
    """Whether a paragraph looks like a figure's or a table's text rather than body text: another font or lines
    shorter than the body's full lines, and not a finished sentence in the body font."""
    first = paragraph[0]
    if is_heading(first, style) or _BULLET.match(first.text):
        return False
    body_font = all(abs(x.size - style.size) < 0.15 * style.size for x in paragraph)
    if body_font and _SENTENCE_END.search(paragraph[-1].text.rstrip()):
        return False
    return not body_font or all(x.x1 - x.x0 < 0.85 * style.measure for x in paragraph)


def _unfinished(paragraph: list[Line], style: _Style) -> bool:
    """Whether a body paragraph stops mid-sentence (no end punctuation, or a hyphen) or on a full line (a
    paragraph's last line rarely reaches the column's edge: a float or the column's end cut it there)."""
    first, end = paragraph[0], paragraph[-1]
    last = end.text.rstrip()
    if is_heading(first, style) or _CAPTION.match(first.text) or not last:
        return False
    full = end.x1 - end.x0 >= 0.95 * style.measure and abs(end.size - style.size) < 0.15 * style.size
    return last.endswith("-") or not _SENTENCE_END.search(last) or full


def _continues(paragraph: list[Line], style: _Style) -> bool:
    """Whether a paragraph can be the rest of an interrupted one: body text starting flush at its column's edge."""
    first = paragraph[0]
    if is_heading(first, style) or _CAPTION.match(first.text) or _BULLET.match(first.text):
        return False
    left = style.edges.get((first.page, first.column), (first.x0, first.x1))[0]
    return first.x0 <= left + 0.7 * first.size and abs(first.size - style.size) < 0.15 * style.size
