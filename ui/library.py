"""Adding papers from the browser: uploaded files are copied into the data directory's uploads folder and ingested,
with progress and a result per file; the pickers and paper list follow at once."""

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
        """Ingest uploaded files; (result HTML, cleared upload box)."""
        if not files:
            return '<div class="pc-caption">Choose PDF, BibTeX, RIS, JSONL or Markdown files first.</div>', gr.skip()
        try:
            paths = self.keep(files)
            progress(0, desc="Reading the files…")

            def step(done: int, total: int, pid: str) -> None:
                if total:
                    progress((done, total), desc=f"Indexing {pid}" if pid else "Indexing", unit="passages")

            report = self.pipeline.ingest(paths, progress=step)
        except (ValueError, StoreError) as exc:  # bad files, id clashes, limits; storage and the writer lock
            return _error(str(exc)), gr.skip()
        except Exception:
            log.exception("adding %d uploaded files failed", len(files))
            return _error("Something went wrong while adding the files. Please try again."), gr.skip()
        return results_html(report), None


def _path(f: Any) -> str:
    """The local path of an uploaded file (Gradio gives a path string or a FileData-like object)."""
    return str(getattr(f, "path", None) or getattr(f, "name", None) or f)


def _error(message: str) -> str:
    return f'<div class="pc-upload-result pc-upload-error" role="alert">{esc(message)}</div>'


def _row(o: FileOutcome) -> str:
    """One file's line in the result table."""
    done = [f"{len(ids)} {what}" for what, ids in (("added", o.added), ("updated", o.updated),
                                                    ("unchanged", o.unchanged)) if ids]
    ids = ", ".join(o.added + o.updated + o.unchanged)
    notes = "".join(f'<div class="pc-upload-fail">{esc(x)}</div>' for x in o.failed) + "".join(
        f'<div class="pc-upload-skip">skipped {esc(x)}</div>' for x in o.skipped) + "".join(
        f'<div class="pc-upload-skip">{esc(x)}</div>' for x in o.notes)
    state = "failed" if o.failed and not done else "ok"
    papers = f' <span class="pc-caption">({esc(ids)})</span>' if ids else ""
    return (f'<tr class="pc-upload-{state}"><td>{esc(o.file)}</td><td>{esc(", ".join(done) or "failed")}{papers}'
            f"{notes}</td></tr>")


def results_html(report: IngestReport) -> str:
    """The per-file results of an ingest, with its one-line summary."""
    rows = "".join(_row(o) for o in report.outcomes())
    return (f'<div class="pc-upload-result" role="status"><p>{esc(report.summary())}</p>'
            f'<table><thead><tr><th>File</th><th>Result</th></tr></thead><tbody>{rows}</tbody></table></div>')
