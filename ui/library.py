"""Adding papers from the browser: uploaded files are copied into the data directory's uploads folder and ingested,
with one progress bar and, per file, what the user got ("Added *Title* — 41 pages, searchable now") or why not, in
the file's own name (never a path on the server); the pickers and paper list follow at once."""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import gradio as gr

from rag.answer import Pipeline
from rag.files import KINDS
from rag.ingest import FileOutcome, IngestReport
from rag.settings import Settings
from rag.store import StoreError
from rag.types import Paper

from .render import esc

log = logging.getLogger(__name__)

UPLOAD_TYPES = sorted(KINDS)
"""The file kinds the upload area takes (the suffixes a folder ingest reads)."""


def uploads_dir(settings: Settings) -> Path:
    """Where uploaded paper files are kept: inside the data directory, nowhere else."""
    return Path(settings.data_dir).resolve() / "uploads"


_OURS: set[str] = set()  # GRADIO_TEMP_DIR values this module set (a user's own value is never replaced)


def use_gradio_cache(folder: Path) -> None:
    """Point Gradio's upload and download cache at folder (inside the data directory), so uploads are never written
    outside it. Gradio's blocks read GRADIO_TEMP_DIR when built and its file route checks it on every download, so
    it stays set for the process. A GRADIO_TEMP_DIR the user set wins."""
    current = os.environ.get("GRADIO_TEMP_DIR")
    if current and current not in _OURS:
        return
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    _OURS.add(str(folder))


MAX_NAME = 120


def safe_name(name: str) -> str:
    """A file name that cannot leave its folder: the last path part, unusual characters replaced, never hidden, at
    most MAX_NAME characters, its suffix kept ('..pdf' is 'upload.pdf': the suffix says which reader takes it)."""
    base = re.sub(r"[^\w.+-]+", "_", re.split(r"[\\/]", name)[-1])
    suffix = Path(base).suffix[:16]
    stem = base[: len(base) - len(Path(base).suffix)].lstrip(".") or "upload"
    return stem[: MAX_NAME - len(suffix)] + suffix


class LibraryHandlers:
    """The upload event: files in, per-file results out."""

    def __init__(self, pipeline: Pipeline, settings: Settings) -> None:
        self.pipeline, self.settings = pipeline, settings

    def keep(self, files: list[Any]) -> list[Path]:
        """Copy uploaded files into a folder of their own under the uploads folder (names made safe, suffixes
        checked); returns the copies. One folder per upload: a reference file's attachments must lie beside it, so
        an uploaded .bib can reach the PDFs uploaded with it and nothing else (not another upload's files)."""
        if len(files) > self.settings.max_upload_files:
            raise ValueError(f"{len(files)} files at once; at most {self.settings.max_upload_files} are accepted.")
        size = sum(Path(_path(f)).stat().st_size for f in files)
        if size > self.settings.max_upload_bytes:
            raise ValueError(f"the files are {size:,} bytes in all; at most {self.settings.max_upload_bytes:,} are "
                             "accepted (RAG_MAX_UPLOAD_BYTES).")
        names: list[str] = []
        for f in files:  # two files of one name (from two folders) are both kept
            name = safe_name(getattr(f, "orig_name", None) or Path(_path(f)).name)
            stem, suffix, n = name[: len(name) - len(Path(name).suffix)], Path(name).suffix, 1
            while name in names:
                n += 1
                name = f"{stem}-{n}{suffix}"
            names.append(name)
        bad = [n for n in names if Path(n).suffix.lower() not in KINDS]
        if bad:  # checked before anything is copied
            raise ValueError(f"{', '.join(bad)}: not a paper file (accepted: {', '.join(UPLOAD_TYPES)}).")
        folder = uploads_dir(self.settings) / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        folder.mkdir(parents=True, exist_ok=True)
        kept: list[Path] = []
        for f, name in zip(files, names, strict=True):
            dest = (folder / name).resolve()
            if dest.parent != folder.resolve():  # cannot happen after safe_name; never write outside the data dir
                raise ValueError(f"{name}: not a valid file name.")
            shutil.copyfile(Path(_path(f)), dest)
            kept.append(dest)
        return kept

    def add(self, files: list[Any] | None, progress: gr.Progress = gr.Progress()) -> tuple[str, Any]:  # noqa: B008
        """Ingest uploaded files; (what happened, in the user's words; the upload box, cleared: a file that was
        refused does not stay selected, and the result lists every file)."""
        if not files:
            return '<div class="pc-caption">Choose PDF, BibTeX, RIS, JSONL or Markdown files first.</div>', gr.skip()
        paths: list[Path] = []
        try:
            paths = self.keep(files)
            progress(0, desc="Reading the files…")

            def step(done: int, total: int, _pid: str) -> None:
                if total:
                    progress((done, total), desc="Adding to the library", unit="passages")

            report = self.pipeline.ingest(paths, progress=step)
        except (ValueError, StoreError) as exc:  # bad files, id clashes, limits; storage and the writer lock
            return _error(plain(str(exc), paths, uploads_dir(self.settings))), None
        except Exception:
            log.exception("adding %d uploaded files failed", len(files))
            return _error("Something went wrong while adding the files. Please try again."), None
        return results_html(report, {p.id: p for p in self.pipeline.papers()}), None


def _path(f: Any) -> str:
    """The local path of an uploaded file (Gradio gives a path string or a FileData-like object)."""
    return str(getattr(f, "path", None) or getattr(f, "name", None) or f)


def plain(message: str, paths: list[Path], folder: Path) -> str:
    """A message about uploaded files with the server's paths reduced to the file names the user chose."""
    for path in paths:
        message = message.replace(str(path), path.name)
    return re.sub(re.escape(str(folder)) + r"[^\s,:;]*/", "", message)


def _error(message: str) -> str:
    return f'<div class="pc-upload-result pc-upload-error" role="alert">{esc(message)}</div>'


def _got(paper: Paper | None, pid: str) -> str:
    """'<i>Title</i> — 41 pages' (the page count for a PDF)."""
    title = f"<i>{esc(paper.title if paper else pid)}</i>"
    pages = paper.pages if paper else 0
    return f"{title} — {pages} page{'s' if pages != 1 else ''}" if pages else title


def _why(file: str, reason: str) -> str:
    """'scan.pdf has no text layer …' for a reason that reads as a predicate, else 'file: reason'."""
    joined = f"{file} {reason}" if re.match(r"(is|has|was|does|cannot|could|contains|looks)\b", reason) \
        else f"{file}: {reason}"
    return esc(joined.rstrip(".") + ".")


def _lines(o: FileOutcome, papers: dict[str, Paper]) -> list[str]:
    """What one file gave, one line per paper or problem."""
    out = [f'<li class="pc-upload-ok">Added {_got(papers.get(p), p)}, searchable now.</li>' for p in o.added]
    out += [f'<li class="pc-upload-ok">Updated {_got(papers.get(p), p)}, searchable now.</li>' for p in o.updated]
    out += [f'<li class="pc-upload-same">{_got(papers.get(p), p)} was already in the library.</li>'
            for p in o.unchanged]
    out += [f'<li class="pc-upload-failed">Not added: {_why(o.file, x)}</li>' for x in o.failed]
    out += [f'<li class="pc-upload-skip">Skipped: {_why(o.file, x)}</li>' for x in o.skipped]
    out += [f'<li class="pc-upload-skip">Note: {_why(o.file, x)}</li>' for x in o.notes]
    return out


def results_html(report: IngestReport, papers: dict[str, Paper]) -> str:
    """What an upload gave the user: each paper added (its title and pages) and each file that could not be, why."""
    outcomes = report.outcomes()
    added = len(report.new_papers) + len(report.updated_papers)
    failed = sum(bool(o.failed) and not (o.added or o.updated or o.unchanged) for o in outcomes)
    head = [f"{added} paper{'s' if added != 1 else ''} added" if added else "No new paper added",
            f"{failed} file{'s' if failed != 1 else ''} could not be read" if failed else ""]
    items = "".join(line for o in outcomes for line in _lines(o, papers))
    return (f'<div class="pc-upload-result" role="status"><p><b>{esc("; ".join(h for h in head if h))}.</b></p>'
            f"<ul>{items}</ul></div>")
