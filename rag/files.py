"""Reading a batch of paper files: folders walked, each file read by its kind (PDF, BibTeX, RIS, JSONL, Markdown,
two-line page), a bad file reported with its reason while the rest of the batch is read."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, Field

from rag.corpus import CorpusError, check_abstract_sizes, finalize, origin_of, read_file
from rag.settings import Settings
from rag.types import Paper

log = logging.getLogger(__name__)

KINDS = {".pdf": "pdf", ".bib": "bibtex", ".ris": "ris", ".jsonl": "jsonl", ".md": "markdown", ".markdown": "markdown",
         ".txt": "page"}
"""The kinds of file a folder is searched for, by suffix. A file named explicitly is read whatever its suffix
(anything unknown as a two-line page)."""


class Problem(BaseModel):
    """A file, or one entry of it, that could not be ingested, and why (one line)."""

    path: str
    line: int = 0
    reason: str

    def __str__(self) -> str:
        return f"{self.path}, line {self.line}: {self.reason}" if self.line else f"{self.path}: {self.reason}"


class Batch(BaseModel):
    """What a set of paths held: the papers read, files that failed, entries skipped (no abstract…)."""

    papers: list[Paper] = Field(default_factory=list)
    failed: list[Problem] = Field(default_factory=list)
    skipped: list[Problem] = Field(default_factory=list)
    notes: list[Problem] = Field(default_factory=list, description="Papers added without part of what their entry "
                                                                   "named (an attachment refused or not found).")
    files: int = 0


def collect(paths: Iterable[Path]) -> tuple[list[Path], list[Problem]]:
    """Files to read: named files as given, folders walked (sorted; hidden entries and unknown kinds left out)."""
    files: list[Path] = []
    missing: list[Problem] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in KINDS
                           and not any(part.startswith(".") for part in f.relative_to(path).parts))
            if not found:
                missing.append(Problem(path=str(path), reason=f"no paper files in this folder (looked for "
                                                               f"{', '.join(sorted(KINDS))})"))
            files += found
        elif path.is_file():
            files.append(path)
        else:
            missing.append(Problem(path=str(path), reason="no such file or folder"))
    return list(dict.fromkeys(f.resolve() for f in files)), missing


def _problem(exc: CorpusError) -> Problem:
    """A reader's error as a Problem (its message without the 'file, line N:' prefix)."""
    return Problem(path=exc.path, line=exc.line, reason=exc.reason)


def kind_of(path: Path) -> str:
    """The reader a file goes to, by suffix (a two-line page when unknown)."""
    return KINDS.get(path.suffix.lower(), "page")


def read_batch(paths: Iterable[Path], existing: Iterable[Paper] = (),
               abstract_chars: tuple[int, int] | None = None, settings: Settings | None = None) -> Batch:
    """Read every file; each failure is recorded and the others still read. Papers come back finalized (ids and
    aliases derived across the batch and the papers already indexed)."""
    files, missing = collect(paths)
    batch = Batch(failed=missing, files=len(files))
    attached: dict[Path, Paper | None] = {}  # PDFs entries point at: read once, with them, not again on their own
    read: list[tuple[Path, list[Paper]]] = []
    for path in [f for f in files if kind_of(f) in ("bibtex", "ris")] + [f for f in files if kind_of(f) not in
                                                                            ("bibtex", "ris")]:
        if path in attached:
            continue
        try:
            papers = _read(path, batch, attached, abstract_chars, settings)
        except CorpusError as exc:
            batch.failed.append(_problem(exc))
            log.info("skipping %s", exc)
            continue
        read.append((path, [p.model_copy(update={"origin": origin_of(path)}) for p in papers]))
    order = {f: i for i, f in enumerate(files)}  # papers in the order their files were named
    papers = [p for _, found in sorted(read, key=lambda r: order[r[0]]) for p in found]
    batch.papers = finalize(_merge_same_titles(papers), existing)
    return batch


def _read(path: Path, batch: Batch, attached: dict[Path, Paper | None], abstract_chars: tuple[int, int] | None,
          settings: Settings | None = None) -> list[Paper]:
    """The papers of one file (raises CorpusError when the file as a whole cannot be read)."""
    kind = kind_of(path)
    if kind == "pdf":
        from rag.pdf import read_pdf

        papers = [read_pdf(path, settings=settings)]
    elif kind in ("bibtex", "ris"):
        return _read_references(path, kind, batch, attached, abstract_chars, settings)
    else:
        papers = [p.model_copy(update={"kind": kind}) for p in read_file(path)]
    if abstract_chars:
        check_abstract_sizes(papers, *abstract_chars)
    return papers


def _read_references(path: Path, kind: str, batch: Batch, attached: dict[Path, Paper | None],
                     abstract_chars: tuple[int, int] | None, settings: Settings | None = None) -> list[Paper]:
    """A reference manager's export: entries without an abstract are reported, a linked PDF adds its full text."""
    from rag.bib import read_bibtex, read_ris
    from rag.pdf import read_pdf

    got = read_bibtex(path) if kind == "bibtex" else read_ris(path)
    batch.skipped += [Problem(path=s.path, line=s.line, reason=f"{s.key}: {s.reason}" if s.key else s.reason)
                      for s in got.skipped]
    papers: list[Paper] = []
    for entry in got.papers:
        paper = entry.paper
        if entry.note:  # an attachment outside the export's folder, or missing: the entry is kept without it
            batch.notes.append(Problem(path=str(path), line=entry.line, reason=entry.note))
        if abstract_chars:
            try:
                check_abstract_sizes([paper], *abstract_chars)
            except CorpusError as exc:
                batch.skipped.append(_problem(exc))
                continue
        if entry.pdf is not None:
            pdf_path = entry.pdf.resolve()
            if pdf_path not in attached:
                try:
                    attached[pdf_path] = read_pdf(pdf_path, settings=settings)
                except CorpusError as exc:  # the entry's own abstract and metadata are still worth having
                    attached[pdf_path] = None
                    batch.failed.append(_problem(exc))
            pdf = attached[pdf_path]
            if pdf is not None:
                paper = paper.model_copy(update={"body": pdf.body, "pages": pdf.pages})
        papers.append(paper)
    return papers


def _title_key(title: str) -> str:
    """A title compared across files: case, spacing and punctuation aside."""
    return "".join(ch for ch in title.casefold() if ch.isalnum())


def _merge_same_titles(papers: list[Paper]) -> list[Paper]:
    """One paper per title: a PDF and a reference-manager entry of the same paper become one (the entry's
    metadata and abstract, the PDF's full text and pages). Papers from other kinds of file stay as they are."""
    out: list[Paper] = []
    seen: dict[str, int] = {}
    for paper in papers:
        key = _title_key(paper.title)
        i = seen.get(key)
        if i is None or not ({out[i].kind, paper.kind} & {"pdf"}) or out[i].kind == paper.kind:
            seen.setdefault(key, len(out))
            out.append(paper)
            continue
        entry, pdf = (out[i], paper) if paper.kind == "pdf" else (paper, out[i])
        out[i] = entry.model_copy(update={"body": entry.body or pdf.body, "pages": entry.pages or pdf.pages})
    return out


def digest(paper: Paper) -> str:
    """A hash of everything indexed about a paper: the same digest means nothing to re-embed or rewrite."""
    fields = paper.model_dump(exclude={"id", "aliases", "source", "added", "digest", "body"})
    body = paper.body.model_dump() if paper.body else None
    return hashlib.sha256(json.dumps([fields, body], sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]
