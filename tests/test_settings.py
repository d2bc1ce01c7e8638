"""Settings: five groups mixed into one model, every field still a flat RAG_ variable, the README table generated."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from rag.settings import GROUPS, RetrievalSettings, Settings, markdown_table

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- settings:start -->\n", "<!-- settings:end -->\n"


def _other_value(name: str) -> tuple[str, Any]:
    """A valid raw environment value for a field that differs from its default, and the value it should parse to."""
    field = Settings.model_fields[name]
    default = field.get_default(call_default_factory=True)
    if typing.get_origin(field.annotation) is typing.Literal:
        other = next(v for v in typing.get_args(field.annotation) if v != default)
        return other, other
    kind = next(a for a in typing.get_args(field.annotation) or [field.annotation] if a is not type(None))
    if kind is bool:
        return "true", True
    if kind is int:
        return str((default or 0) + 1), (default or 0) + 1
    if kind is float:
        return str(default * 2), default * 2
    if kind is Path:
        return "/tmp/elsewhere", Path("/tmp/elsewhere")
    if name == "chroma_url":  # checked to be an address
        return "http://chroma.example:8000", "http://chroma.example:8000"
    return "x-" + str(default or ""), "x-" + str(default or "")


def test_every_field_is_in_exactly_one_group() -> None:
    grouped = [name for cls in GROUPS for name in cls.model_fields]
    assert sorted(grouped) == sorted(Settings.model_fields) and len(grouped) == len(set(grouped))


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_field_is_still_a_flat_rag_variable(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    raw, expected = _other_value(name)
    monkeypatch.setenv(f"RAG_{name.upper()}", raw)
    value = getattr(Settings(_env_file=None), name)  # type: ignore[call-arg]
    assert (value.get_secret_value() if isinstance(value, SecretStr) else value) == expected


def test_a_group_is_a_typed_view() -> None:
    settings = Settings(_env_file=None, top_k=9)  # type: ignore[call-arg]
    assert settings.group(RetrievalSettings) == RetrievalSettings(top_k=9)


def test_the_readme_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.split(START, 1)[1].split(END, 1)[0] == markdown_table(), \
        "README settings drifted: run `python tools/settings_table.py --write`"
