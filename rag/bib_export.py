"""Papers as BibTeX: keys, escaping and entries that read back through rag.bib.read_bibtex unchanged."""

from __future__ import annotations

import itertools
import re
import string
import unicodedata

import bibtexparser
from bibtexparser.library import Library
from bibtexparser.model import Entry, Field
from bibtexparser.writer import BibtexFormat

from rag.text import TITLE_STOPWORDS
from rag.types import Paper

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_SPECIAL_RE = re.compile("|".join(re.escape(c) for c in _SPECIAL))
# Character pairs TeX (and the LaTeX decoder) turn into one glyph: -- –, `` “, '' ”, ?` ¿, !` ¡.
_LIGATURE = re.compile(r"-(?=-)|[`'](?=[`'])|[?!](?=`)")
_NAME_SUFFIXES = {"jr", "jr.", "sr", "sr.", "ii", "iii", "iv"}


def escape(text: str) -> str:
    """Text as a BibTeX value: LaTeX special characters escaped, ligature pairs broken with {}."""
    escaped = _SPECIAL_RE.sub(lambda m: _SPECIAL[m.group(0)], text)
    return _LIGATURE.sub(lambda m: m.group(0) + "{}", escaped)


def _title(title: str) -> str:
    """An escaped title with each word that has a capital after its first letter braced ({BERT}, {LoRA})."""
    return " ".join("{" + escape(w) + "}" if re.search(r".[A-Z]", w) else escape(w) for w in title.split())


def _author(name: str) -> str:
    """One author as BibTeX: 'Last, Jr., First' if it ends in Jr. or III; braced whole if a comma or 'and' is in it."""
    if "," in name or re.search(r"\sand\s", name, re.IGNORECASE):
        return "{" + escape(name) + "}"
    tokens = name.split()
    if len(tokens) > 2 and tokens[-1].lower() in _NAME_SUFFIXES:
        return f"{escape(tokens[-2])}, {escape(tokens[-1])}, {escape(' '.join(tokens[:-2]))}"
    return escape(name)


def _ascii_word(text: str) -> str:
    """Lower-case ASCII letters and digits of text (accents folded: Müller -> muller)."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", folded.lower())


def cite_key(paper: Paper) -> str:
    """A citation key like wellawatte2023perspective: first author's last name, year, first title content word."""
    last = ""
    if paper.authors:
        tokens = paper.authors[0].split()
        while len(tokens) > 1 and tokens[-1].lower().rstrip(",") in _NAME_SUFFIXES:
            tokens.pop()
        last = _ascii_word(tokens[-1]) if tokens else ""
    words = [_ascii_word(w) for w in re.split(r"[\s\-–—:/]+", paper.title)]
    word = next((w for w in words if w and w not in TITLE_STOPWORDS), "")
    return f"{last or 'anon'}{paper.year or ''}{word or 'paper'}"


def _unique(key: str, taken: set[str]) -> str:
    """key, or key with the first free suffix a, b, … z, aa, ab, … when it is taken."""
    suffixes = ("".join(p) for n in itertools.count(1) for p in itertools.product(string.ascii_lowercase, repeat=n))
    candidate = key
    while candidate in taken:
        candidate = key + next(suffixes)
    taken.add(candidate)
    return candidate


def _verbatim(value: str) -> str:
    """A URL or DOI as written (BibTeX keeps it verbatim); only braces, which would unbalance it, encoded."""
    return value.replace("{", "%7B").replace("}", "%7D")


def _entry(paper: Paper, key: str) -> Entry:
    """One paper as a bibtexparser Entry with escaped values."""
    arxiv_venue = paper.venue.strip().lower() == "arxiv"
    fields = [Field("title", _title(paper.title))]
    if paper.authors:
        fields.append(Field("author", " and ".join(_author(a) for a in paper.authors)))
    if paper.year:
        fields.append(Field("year", str(paper.year)))
    if paper.venue and not arxiv_venue:
        fields.append(Field("journal", escape(paper.venue)))
    elif arxiv_venue:
        fields.append(Field("publisher", "arXiv"))
    if paper.doi:
        fields.append(Field("doi", _verbatim(paper.doi)))
    if paper.arxiv:
        fields += [Field("eprint", _verbatim(paper.arxiv)), Field("archivePrefix", "arXiv")]
    if paper.url:
        fields.append(Field("url", _verbatim(paper.url)))
    fields.append(Field("abstract", escape(paper.abstract)))
    return Entry("article" if paper.venue and not arxiv_venue else "misc", key, fields)


def to_bibtex(papers: list[Paper]) -> str:
    """The papers as a BibTeX string: @article when the venue is known, else @misc; keys made unique."""
    taken: set[str] = set()
    library = Library([_entry(p, _unique(cite_key(p), taken)) for p in papers])
    layout = BibtexFormat()
    layout.indent = "  "
    layout.block_separator = "\n"
    return bibtexparser.write_string(library, bibtex_format=layout)
