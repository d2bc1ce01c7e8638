"""Reference-manager exports: BibTeX and RIS (Zotero, Mendeley, JabRef) in, BibTeX out."""

from __future__ import annotations

import logging
import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlparse

import bibtexparser
import rispy
from bibtexparser.middlewares import LatexDecodingMiddleware, NormalizeFieldKeys, SeparateCoAuthors, SplitNameParts
from bibtexparser.model import DuplicateBlockKeyBlock, DuplicateFieldKeyBlock, Entry, ParsingFailedBlock
from pydantic import BaseModel, Field
from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

from rag.bib_export import cite_key, to_bibtex
from rag.corpus import CorpusError
from rag.types import Paper

log = logging.getLogger(__name__)

__all__ = ["BibEntry", "BibRead", "Skipped", "cite_key", "read_bibtex", "read_ris", "to_bibtex"]

# Fields whose text is a path or identifier, not LaTeX: a % in a URL is not a comment, a \ in a path is no macro.
_VERBATIM = ("url", "doi", "eprint", "file")
_PREPRINT_TYPES = {"misc", "unpublished", "online", "preprint", "techreport", "report"}
_ARXIV_ID = r"(\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?"
_ARXIV_URL = re.compile(r"arxiv\.org/(?:abs|pdf|html)/" + _ARXIV_ID, re.IGNORECASE)
_ARXIV_JOURNAL = re.compile(r"^arxiv\s+preprint\s+(?:arxiv:)?\s*" + _ARXIV_ID, re.IGNORECASE)
_ARXIV_DOI = re.compile(r"^10\.48550/arxiv\." + _ARXIV_ID + "$", re.IGNORECASE)
_YEAR = re.compile(r"(?<!\d)(1[5-9]\d\d|2\d\d\d)(?!\d)")
_DOI_PREFIX = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.IGNORECASE)
_RIS_START = re.compile(r"^TY  -")


class BibEntry(BaseModel):
    """One paper read from an export, with the PDF attached to it when one was found."""

    paper: Paper
    pdf: Path | None = Field(default=None, description="The attached PDF, resolved; None if none usable.")
    line: int = Field(default=0, description="1-based line where the entry starts.")
    note: str = Field(default="", description="Why an attachment the entry names was not used ('' when none was).")


class Skipped(BaseModel):
    """An entry of an export that was not read, with where it is and why."""

    path: str
    line: int = Field(description="1-based line where the entry starts.")
    key: str = Field(description="The entry's citation key (BibTeX) or ID (RIS); '' when it has none.")
    reason: str


class BibRead(BaseModel):
    """What reading one export gave: the papers, and the entries left out."""

    papers: list[BibEntry] = Field(default_factory=list)
    skipped: list[Skipped] = Field(default_factory=list)


def _read_text(path: Path) -> str:
    """The file's text: UTF-8 (BOM allowed), else latin-1, which old BibTeX tools write."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(path, 0, f"cannot read the file ({exc.strerror or exc})") from None
    if b"\x00" in data:
        raise CorpusError(path, 1, "a binary file, not a text export")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        log.warning("%s is not UTF-8 (first bad byte on line %d); reading it as latin-1", path, line)
        return data.decode("latin-1")


def _clean(text: str) -> str:
    """Single-spaced, stripped text (non-breaking spaces and newlines included)."""
    return " ".join(text.split())


def _year(*values: str) -> int | None:
    """The first plausible four-digit year in the values."""
    for value in values:
        if m := _YEAR.search(value or ""):
            return int(m.group(1))
    return None


def _doi(value: str) -> str:
    """A bare DOI (10.x/y) from a DOI, a doi: or a doi.org URL."""
    return _DOI_PREFIX.sub("", value.strip()).strip()


def _arxiv(
    *, eprint: str = "", prefix: str = "", url: str = "", journal: str = "", doi: str = "", volume: str = ""
) -> str:
    """The arXiv id (without version) from whichever of these fields names one."""
    if eprint and (prefix.lower() == "arxiv" or not prefix) and (m := re.fullmatch(_ARXIV_ID, eprint.strip())):
        return m.group(1)
    for pattern, value in ((_ARXIV_URL, url), (_ARXIV_JOURNAL, journal), (_ARXIV_DOI, doi)):
        if value and (m := pattern.search(value.strip())):
            return m.group(1)
    # DBLP and Semantic Scholar: journal = {CoRR} or {ArXiv}, volume = {abs/2301.00001}
    if journal.lower() in {"corr", "arxiv"} and (m := re.fullmatch(r"abs/" + _ARXIV_ID, volume.strip())):
        return m.group(1)
    return ""


def _verbatim(value: str) -> str:
    """A URL or identifier with BibTeX escapes (\\_, \\%, {\\_}, $\\sim$) undone and braces removed."""
    value = value.replace("$\\sim$", "~")
    value = re.sub(r"\\([_%&#$~{}])", r"\1", value)
    return _clean(value.replace("{", "").replace("}", ""))


def _attachment_paths(value: str) -> list[str]:
    """The PDF paths in a file field: Zotero 'desc:path:mime', JabRef ':path:PDF', Mendeley ':C$\\backslash$:/x:pdf'."""
    value = value.replace("$\\backslash$", "\\")
    paths = []
    for item in re.split(r"(?<!\\);", value):
        parts = re.split(r"(?<!\\):", item)
        kind = ""
        if len(parts) >= 3:
            path, kind = ":".join(parts[1:-1]), parts[-1]
        elif len(parts) == 2 and len(parts[0].strip()) > 1:  # "path:type" (a one-letter head is a drive, C:/…)
            path, kind = parts
        else:
            path = item
        path = re.sub(r"\\(.)", r"\1", path).replace("{", "").replace("}", "").strip()
        if path and (path.lower().endswith(".pdf") or "pdf" in kind.lower()):
            paths.append(path)
    return paths


def _resolve_pdf(paths: list[str], base: Path, where: str) -> tuple[Path | None, str]:
    """The first attachment that is a file inside base (the export's own folder), symlinks resolved, and a one-line
    note when one was refused or missing. An attachment outside base (absolute, `file://`, `../`, or a symlink out)
    is refused before anything is looked up, so the note never tells whether a file exists outside base."""
    notes = []
    for raw in paths:
        candidate = Path(unquote(urlparse(raw).path)) if raw.lower().startswith("file:") else Path(raw)
        resolved = (candidate if candidate.is_absolute() else base / candidate).resolve()
        if not resolved.is_relative_to(base):
            log.warning("%s: attachment %s is outside %s; not used", where, raw, base)
            notes.append(f"attachment {candidate.name} is not in the export's folder; added without it")
            continue
        if resolved.is_file():
            return resolved, ""
        log.warning("%s: attachment %s not found; reading the entry without its PDF", where, raw)
        notes.append(f"attachment {candidate.name} not found beside the export; added without it")
    return None, notes[0] if notes else ""


def _paper_or_skip(
    fields: dict[str, str], authors: list[str], where: tuple[Path, int, str], kind: str
) -> Paper | Skipped:
    """A Paper from decoded fields, or why the entry is skipped."""
    path, line, key = where
    title, abstract = _clean(fields.get("title", "")), _clean(fields.get("abstract", ""))
    if not title:
        return Skipped(path=str(path), line=line, key=key, reason="no title")
    if not abstract:
        return Skipped(path=str(path), line=line, key=key, reason="no abstract")
    return Paper(
        id="",
        title=title,
        abstract=abstract,
        kind=kind,
        source=f"{path.name}:{line}",
        authors=authors,
        year=_year(fields.get("year", ""), fields.get("date", "")),
        venue=_clean(fields.get("venue", "")),
        doi=_doi(fields.get("doi", "")),
        arxiv=fields.get("arxiv", ""),
        url=fields.get("url", ""),
    )


@cache
def _latex_decoder() -> LatexNodes2Text:
    """LaTeX to text: accents, escapes and macros decoded, braces dropped, math made plain text."""
    context = get_default_latex_context_db()
    macros = [
        MacroTextSpec("url", simplify_repl="%s"),
        MacroTextSpec("href", discard=True),  # pylatexenc's own \href spec fails: its parser gives it no arguments
        MacroTextSpec("textasciicircum", simplify_repl="^"),
    ]
    macros += [MacroTextSpec(name, simplify_repl=name) for name in ("LaTeX", "TeX", "BibTeX", "LaTeXe")]
    # Font switches pylatexenc knows take an argument but would discard along with it.
    macros += [MacroTextSpec(name, discard=False) for name in ("texttt", "textsf", "textup", "textmd", "mbox")]
    context.add_context_category("paperchat-bib", prepend=True, macros=macros)
    return LatexNodes2Text(latex_context=context, keep_braced_groups=False, math_mode="text")


def _failed_reason(block: ParsingFailedBlock) -> str:
    """Why bibtexparser could not read a block, in one line."""
    if isinstance(block, DuplicateBlockKeyBlock):
        first = block.previous_block.start_line
        return f"duplicate key {block.key!r} (first used on line {first + 1})" if first is not None else "duplicate key"
    if isinstance(block, DuplicateFieldKeyBlock):
        return f"the same field twice: {', '.join(sorted(block.duplicate_keys))}"
    error = block.error
    detail = getattr(error, "abort_reason", "") or str(error) or type(error).__name__
    return f"unreadable BibTeX: {_clean(detail)}"


def _failed_key(block: ParsingFailedBlock) -> str:
    """The citation key of a block bibtexparser could not read, if it can be seen."""
    if isinstance(block.ignore_error_block, Entry):
        return block.ignore_error_block.key
    m = re.match(r"\s*@\s*\w+\s*[{(]\s*([^,\s{}()=]+)\s*,", block.raw or "")
    return m.group(1) if m else ""


def _bib_fields(entry: Entry, verbatim: dict[str, str]) -> dict[str, str]:
    """The Paper-relevant fields of a decoded entry (title, abstract, year, venue, doi, arxiv, url)."""
    got = {k: _clean(str(f.value)) for k, f in entry.fields_dict.items() if isinstance(f.value, str)}
    journal = got.get("journal") or got.get("journaltitle") or ""
    arxiv = _arxiv(
        eprint=verbatim.get("eprint", ""),
        prefix=got.get("archiveprefix") or got.get("eprinttype", ""),
        url=verbatim.get("url", ""),
        journal=journal,
        doi=_doi(verbatim.get("doi", "")),
        volume=got.get("volume", ""),
    )
    if _ARXIV_JOURNAL.match(journal):
        journal = "arXiv"
    venue = journal or got.get("booktitle", "")
    if not venue and (entry.entry_type.lower() in _PREPRINT_TYPES or arxiv):
        venue = got.get("publisher", "")
    return {
        "title": got.get("title", ""),
        "abstract": got.get("abstract", ""),
        "year": got.get("year", ""),
        "date": got.get("date", ""),
        "venue": venue,
        "doi": verbatim.get("doi", ""),
        "arxiv": arxiv,
        "url": verbatim.get("url", ""),
    }


def _bib_authors(entry: Entry) -> list[str]:
    """'First von Last Jr' for each author, LaTeX decoded; 'and others' dropped."""
    field = entry.fields_dict.get("author")
    if field is None or not isinstance(field.value, list):
        return []
    names = [_clean(_latex_decoder().latex_to_text(n.merge_first_name_first)) for n in field.value]
    return [n for n in names if n and n.lower() != "others"]


def read_bibtex(path: Path) -> BibRead:
    """Read a BibTeX export: papers with abstracts, and each entry left out with its line and reason."""
    path = Path(path)
    text = _read_text(path)
    library = bibtexparser.parse_string(
        text, append_middleware=[NormalizeFieldKeys(), SeparateCoAuthors(), SplitNameParts()]
    )
    if not library.entries and not library.failed_blocks:
        raise CorpusError(path, 1, "no BibTeX entries found (expected @article{key, …} blocks)")
    verbatim = {
        e.start_line: {k: _verbatim(str(e[k])) if k != "file" else str(e[k]) for k in _VERBATIM if k in e}
        for e in library.entries
    }
    library = LatexDecodingMiddleware(decoder=_latex_decoder()).transform(library)
    base = path.parent.resolve()
    read = BibRead()
    for block in library.blocks:
        line = (block.start_line or 0) + 1
        if isinstance(block, ParsingFailedBlock):
            reason = _failed_reason(block)
            log.warning("%s, line %d: skipped: %s", path, line, reason)
            read.skipped.append(Skipped(path=str(path), line=line, key=_failed_key(block), reason=reason))
        elif isinstance(block, Entry):
            raw = verbatim.get(block.start_line, {})
            fields = _bib_fields(block, raw)
            got = _paper_or_skip(fields, _bib_authors(block), (path, line, block.key), "bibtex")
            if isinstance(got, Skipped):
                read.skipped.append(got)
                continue
            pdf, note = (_resolve_pdf(_attachment_paths(raw["file"]), base, f"{path.name}:{line}") if "file" in raw
                         else (None, ""))
            read.papers.append(BibEntry(paper=got, pdf=pdf, line=line, note=f"{block.key}: {note}" if note else ""))
    log.info("%s: %d papers read, %d entries skipped", path, len(read.papers), len(read.skipped))
    return read


class _RisParser(rispy.RisParser):
    """rispy's RIS parser that also reads the four-letter FILE tag some exporters write."""

    def parse_line(self, line: str) -> tuple[str, str] | tuple[None, str]:
        """FILE lines as a tag; every other line as rispy reads it."""
        if line.startswith("FILE  -"):
            return ("FILE", line[7:].strip())
        return super().parse_line(line)


def _ris_records(text: str) -> list[tuple[int, str]]:
    """Each record's text with the 1-based line of its TY tag (rispy gives no line numbers)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _RIS_START.match(line)]
    if not starts:
        return []
    ends = starts[1:] + [len(lines)]
    return [(s + 1, "\n".join(lines[s:e])) for s, e in zip(starts, ends, strict=True)]


def _first(record: dict, *keys: str) -> str:
    """The first non-empty value among the record's keys (the first item of a list value)."""
    for key in keys:
        value = record.get(key)
        if isinstance(value, list):
            value = next((v for v in value if v and v.strip()), "")
        if value and value.strip():
            return value.strip()
    return ""


def _ris_name(name: str) -> str:
    """'Last, First[, Jr]' as 'First Last Jr'."""
    parts = [p.strip() for p in name.split(",")]
    if len(parts) == 1:
        return _clean(name)
    last, first, *rest = parts
    return _clean(" ".join([first, last, *rest]))


def _ris_entry(record: dict, where: tuple[Path, int, str], base: Path) -> BibEntry | Skipped:
    """A BibEntry from one rispy record, or why it is skipped."""
    path, line, _ = where
    urls = [u for u in record.get("urls", []) if u and not u.lower().startswith("file:")]
    doi = _doi(_first(record, "doi"))
    # JF is the full journal name, JO often an abbreviation; rispy has no name for BT (book title).
    journal = _first(record, "alternate_title3", "journal_name", "secondary_title") or _first(
        record.get("unknown_tag", {}), "BT"
    )
    fields = {
        "title": _first(record, "title", "primary_title"),
        "abstract": _first(record, "abstract", "notes_abstract"),
        "year": " ".join(_first(record, k) for k in ("year", "publication_year", "date")),
        "venue": "arXiv" if _ARXIV_JOURNAL.match(journal) else journal,
        "doi": doi,
        "arxiv": next((a for u in urls if (a := _arxiv(url=u))), "") or _arxiv(journal=journal, doi=doi),
        "url": urls[0] if urls else "",
    }
    authors = [_ris_name(a) for a in record.get("authors") or record.get("first_authors") or [] if a.strip()]
    got = _paper_or_skip(fields, authors, where, "ris")
    if isinstance(got, Skipped):
        return got
    files = record.get("file_attachments1", []) + record.get("unknown_tag", {}).get("FILE", [])
    paths = [p.strip() for f in files for p in f.split(";") if p.strip().lower().endswith(".pdf")]
    pdf, note = _resolve_pdf(paths, base, f"{path.name}:{line}")
    return BibEntry(paper=got, pdf=pdf, line=line, note=f"{where[2]}: {note}" if note and where[2] else note)


def read_ris(path: Path) -> BibRead:
    """Read a RIS export: papers with abstracts, and each record left out with its line and reason."""
    path = Path(path)
    records = _ris_records(_read_text(path))
    if not records:
        raise CorpusError(path, 1, "no RIS records found (expected lines such as 'TY  - JOUR')")
    base = path.parent.resolve()
    read = BibRead()
    list_tags = [*rispy.LIST_TYPE_TAGS, "L1"]
    for line, chunk in records:
        parsed = rispy.loads(chunk, implementation=_RisParser, list_tags=list_tags)
        key = next((m.group(1).strip() for m in re.finditer(r"^ID  - (.*)$", chunk, re.MULTILINE)), "")
        if not parsed:
            read.skipped.append(Skipped(path=str(path), line=line, key=key, reason="no end of record ('ER  -')"))
            continue
        got = _ris_entry(parsed[0], (path, line, key), base)
        (read.skipped if isinstance(got, Skipped) else read.papers).append(got)
    log.info("%s: %d papers read, %d records skipped", path, len(read.papers), len(read.skipped))
    return read
