"""What scripts reach through Gradio's API (ask, papers), plus the small helpers the app needs."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr

from rag.answer import Pipeline, QuestionError
from rag.bib_export import to_bibtex
from rag.serve import service
from rag.serve.slots import AnswerSlots
from rag.settings import Settings
from rag.store import StoreError
from rag.types import Answer, Paper

from . import render

log = logging.getLogger(__name__)

GENERIC_ERROR = "Something went wrong while answering. Please try again."
EXPORT_MAX_AGE_S = 3600


def parse_auth(auth: str | None) -> list[tuple[str, str]] | None:
    """'user:pass[,user2:pass2]' as Gradio's list of (user, password) pairs; None when unset."""
    if not auth or not auth.strip():
        return None
    pairs = []
    for item in auth.split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise ValueError("RAG_AUTH must look like 'user:password' (several separated by commas).")
        pairs.append((user, password))
    return pairs


def _export_dir() -> Path:
    """A fresh temp dir for one export (Gradio serves its own copy); ours are dropped after an hour."""
    base = Path(tempfile.gettempdir()) / "paperchat-exports"
    base.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - EXPORT_MAX_AGE_S
    for old in base.iterdir():  # exports are copied into Gradio's cache at once; drop ours after a while
        if old.is_dir() and old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=base))


def write_export(answer: Answer) -> Path:
    """Write one answer as Markdown into a fresh temp dir (Gradio serves its own copy); returns the file path."""
    path = _export_dir() / "paperchat-answer.md"
    path.write_text(render.export_markdown(answer), encoding="utf-8")
    return path


def write_references(turns: list[Answer], papers: dict[str, Paper]) -> Path | None:
    """Write the papers a conversation's answers cite as BibTeX (in order of first citation); None if none."""
    cited = [answer_source.paper_id for a in turns for n in render.cited_numbers(a)
             for answer_source in a.sources if answer_source.n == n]
    chosen = [papers[pid] for pid in dict.fromkeys(cited) if pid in papers]
    if not chosen:
        return None
    path = _export_dir() / "paperchat-references.bib"
    path.write_text(to_bibtex(chosen), encoding="utf-8")
    return path


def _json_list(value: Any, what: str) -> list[Any]:
    """A list given as a list, a JSON string, or (for ids) a comma-separated string."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise gr.Error(f"{what} is not valid JSON.") from None
        else:
            value = [v.strip() for v in text.split(",") if v.strip()]
    if not isinstance(value, list):
        raise gr.Error(f"{what} must be a list.")
    return value


def check_history(turns: list[Any], settings: Settings) -> None:
    """gr.Error unless history is a list of messages within the configured caps (count, each, in all)."""
    try:
        service.check_history(turns, settings)
    except QuestionError as exc:
        raise gr.Error(str(exc), print_exception=False) from None


class ScriptAPI:
    """The pipeline as plain-data API endpoints; user errors become gr.Error with their message (slots: the answer
    slots, shared with the chat)."""

    def __init__(self, pipeline: Pipeline, settings: Settings | None = None, slots: AnswerSlots | None = None) -> None:
        self.pipeline = pipeline
        self.settings = settings or pipeline.settings
        self.slots = slots or AnswerSlots(self.settings)

    async def ask(self, question: str, history: list | str | None = None, answerer: str | None = None,
                  paper_ids: list | str | None = None, k: int | None = None, compare: bool = False) -> dict:
        """Answer a question. history: [{"role", "content"}, …] (or its JSON); paper_ids: ids to search in;
        k: passages (0 = default); compare: force a comparison table. Returns the Answer as a dict."""
        turns = _json_list(history, "history")
        check_history(turns, self.settings)
        ids = [str(p) for p in _json_list(paper_ids, "paper_ids")]
        try:
            k_value = int(k) if k else None
        except (TypeError, ValueError):
            raise gr.Error("k must be a whole number.") from None
        if k_value is not None and not 1 <= k_value <= 50:
            raise gr.Error("k must be between 1 and 50.")
        try:
            answer = await self.slots.run(answerer or None, lambda: self.pipeline.answer(
                question if isinstance(question, str) else "", history=turns, answerer=answerer or None,
                paper_ids=ids or None, k=k_value, compare=bool(compare)))
        except QuestionError as exc:
            raise gr.Error(render.esc(exc), print_exception=False) from None
        except StoreError:
            log.exception("index unavailable")
            raise gr.Error("The paper index is unavailable right now.", print_exception=False) from None
        except Exception:
            log.exception("answering %r failed", question)
            raise gr.Error(GENERIC_ERROR, print_exception=False) from None
        return answer.model_dump(mode="json")

    def papers(self) -> list[dict]:
        """Every indexed paper: id, title, aliases, abstract."""
        try:
            return [p.model_dump(include={"id", "title", "aliases", "abstract"}) for p in self.pipeline.papers()]
        except Exception:
            log.exception("listing papers failed")
            raise gr.Error("The paper index is unavailable right now.", print_exception=False) from None
