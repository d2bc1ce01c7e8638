"""Conversations saved in the browser (gr.BrowserState): the answers of each, so a reload or tomorrow's visit finds
them again. Plain data in, plain data out; the store is a dict {"active": id, "convs": [Conversation dicts]}."""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from rag.types import Answer

log = logging.getLogger(__name__)

MAX_CONVERSATIONS = 30  # oldest dropped first: localStorage holds a few MB
MAX_TURNS = 40
EMPTY: dict[str, Any] = {"active": "", "convs": []}
# The browser sends the store as it holds it when an event is sent, so the save after an answer and a thumb clicked as
# the answer shows can each carry a store without the other's change. They run one after the other (this queue group),
# each writes the answer's turns, and the thumbs are also kept on the server (Marks, a gr.State read when the event
# runs) for the save to put back.
SAVING: dict[str, Any] = {"concurrency_id": "pc-store", "concurrency_limit": 1}
Marks = dict[str, dict[int, str | None]]  # conversation id ('' before its first save) -> turn -> thumb


def mark(marks: Marks | None, conv_id: str, turn: int, value: str | None) -> Marks:
    """The marks with one thumb more."""
    marks = dict(marks or {})
    marks[conv_id] = {**marks.get(conv_id, {}), turn: value}
    return marks


def named(marks: Marks | None, conv_id: str) -> Marks:
    """The marks with those of a conversation not yet saved ('') moved to the id its first save gave it."""
    marks = dict(marks or {})
    if "" in marks:
        marks[conv_id] = {**marks.pop(""), **marks.get(conv_id, {})}
    return marks


class Conversation(BaseModel):
    """One saved conversation: its answers, oldest first."""

    id: str
    title: str
    updated: float = Field(description="Unix time of the last answer.")
    turns: list[Answer] = Field(default_factory=list)
    feedback: list[str | None] = Field(default_factory=list, description="Per turn, the 👍/👎/flag chosen (or None).")


def new_id() -> str:
    """A fresh conversation id."""
    return uuid.uuid4().hex[:12]


def load(store: dict | None) -> list[Conversation]:
    """The saved conversations, newest first (anything unreadable is dropped, not fatal)."""
    out = []
    for raw in (store or {}).get("convs", []) if isinstance(store, dict) else []:
        try:
            out.append(Conversation.model_validate(raw))
        except ValidationError:
            log.info("dropped an unreadable saved conversation")
    return sorted(out, key=lambda c: c.updated, reverse=True)


def dump(convs: list[Conversation], active: str) -> dict[str, Any]:
    """The store for a list of conversations (timings left out: nobody reads them back)."""
    kept = sorted(convs, key=lambda c: c.updated, reverse=True)[:MAX_CONVERSATIONS]
    return {"active": active,
            "convs": [c.model_dump(mode="json", exclude={"turns": {"__all__": {"timings_ms"}}}) for c in kept]}


def save(store: dict | None, conv_id: str, turns: list[Answer],
         marks: Mapping[int, str | None] | None = None) -> dict[str, Any]:
    """The store with this conversation's turns saved, their feedback kept, and the thumbs the server has seen for
    it (marks: turn -> choice) over what the store says: the browser may have sent the store before a thumb of it
    landed. A conversation without turns is not kept."""
    convs = load(store)
    prior = next((c for c in convs if c.id == conv_id), None)
    convs = [c for c in convs if c.id != conv_id]
    if turns:
        title = " ".join(turns[0].question.split())[:80]
        feedback = ((prior.feedback if prior else []) + [None] * len(turns))[: len(turns)]
        for turn, value in (marks or {}).items():
            if 0 <= turn < len(turns):
                feedback[turn] = value
        kept = turns[-MAX_TURNS:]
        convs.append(Conversation(id=conv_id, title=title, updated=time.time(), turns=kept,
                                  feedback=feedback[len(turns) - len(kept):]))
    return dump(convs, conv_id if turns else "")


def feedback(store: dict | None, conv_id: str, turns: int) -> list[str | None]:
    """The feedback of each turn of a conversation, as the chat shows it."""
    found = find(store, conv_id)
    return ((found.feedback if found else []) + [None] * turns)[:turns]


def delete(store: dict | None, conv_id: str) -> dict[str, Any]:
    """The store without this conversation."""
    return dump([c for c in load(store) if c.id != conv_id], "")


def restore(store: dict | None, conv: Conversation) -> dict[str, Any]:
    """The store with a deleted conversation back, as the open one."""
    return dump([*(c for c in load(store) if c.id != conv.id), conv], conv.id)


def find(store: dict | None, conv_id: str) -> Conversation | None:
    """One saved conversation by id."""
    return next((c for c in load(store) if c.id == conv_id), None)


def active(store: dict | None) -> Conversation | None:
    """The conversation the browser had open."""
    return find(store, (store or {}).get("active", "") if isinstance(store, dict) else "")


def choices(store: dict | None) -> list[tuple[str, str]]:
    """(label, id) for the list of past conversations, newest first."""
    out = []
    for c in load(store):
        when = time.strftime("%d %b %H:%M", time.localtime(c.updated))
        n = len(c.turns)
        out.append((f"{c.title} · {n} question{'s' if n != 1 else ''} · {when}", c.id))
    return out


def browser_secret(data_dir: Path) -> str:
    """The key the browser's saved conversations are encrypted with, kept in the data dir so they survive a
    restart of the server (a random one per start would make yesterday's conversation unreadable)."""
    path = data_dir / "browser-state.key"
    try:
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
        data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(24)
        path.write_text(key, encoding="utf-8")
        path.chmod(0o600)
        return key
    except OSError:
        log.warning("could not keep the browser-state key in %s; saved chats last until restart", data_dir)
        return secrets.token_urlsafe(24)
