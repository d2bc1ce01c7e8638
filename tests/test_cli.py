"""The command line's surface: help without misleading metavars, choices and defaults, --version, one-line
errors, and a start that imports nothing heavy (issue 17, items 5 and 6)."""

from __future__ import annotations

import os
import subprocess
import sys
import typing

import pytest
from conftest import ROOT
from typer.testing import CliRunner

import rag
from rag import cli
from rag.answer import ANSWERERS
from rag.settings import Settings

COMMANDS = ["ingest", "papers", "search", "ask", "chat", "mcp", "eval", "build-corpus"]


def help_text(*args: str) -> str:
    result = CliRunner().invoke(cli.app, [*args, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_has_no_type_metavars(command: str | None) -> None:
    text = help_text(*([command] if command else []))
    for bad in ("<bool>", "<list[", "<str>", "<int>", "<path>", "<float>"):
        assert bad not in text, f"{bad} in `paperchat {command or ''} --help`:\n{text}"


def test_help_lists_choices_and_the_settings_defaults() -> None:
    fields = Settings.model_fields
    ask = help_text("ask")
    assert "<extractive|openai|local>" in ask and "<hybrid|dense>" in ask
    assert f"RAG_ANSWERER, else {fields['answerer'].default}" in ask
    assert f"RAG_RETRIEVAL, else {fields['retrieval'].default}" in ask
    assert f"RAG_TOP_K, else {fields['top_k'].default}" in ask
    chat = help_text("chat")
    assert f"RAG_HOST, else {fields['host'].default}" in chat and f"RAG_PORT, else {fields['port'].default}" in chat
    assert "<tune|test>" in help_text("eval")


def test_cli_choices_match_the_library() -> None:
    assert tuple(a.value for a in cli.AnswererName) == ANSWERERS
    assert [m.value for m in cli.RetrievalMode] == list(typing.get_args(Settings.model_fields["retrieval"].annotation))


def test_version() -> None:
    result = CliRunner().invoke(cli.app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"paperchat {rag.__version__}"


@pytest.mark.parametrize("args", [["ask"], ["nosuch"], ["ask", "x", "--answerer", "foo"], ["eval", "--limit", "x"]])
def test_usage_errors_are_one_line(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "rag", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, env={**os.environ, "COLUMNS": "80"}, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr


HEAVY = ("gradio", "chromadb", "langchain_core", "onnxruntime", "openai", "langchain_openai", "numpy")


def test_import_rag_and_cli_stay_light() -> None:
    code = f"import sys, rag, rag.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          check=True)
    assert proc.stdout.strip() == "", f"imported at `import rag.cli`: {proc.stdout}"


def test_help_imports_no_library_stage() -> None:
    code = ("import sys, runpy; sys.argv = ['paperchat', 'ask', '--help']\n"
            "try:\n    runpy.run_module('rag', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "heavy = ('rag.', 'pydantic_settings', 'chromadb', 'langchain')\n"
            "print(' '.join(m for m in sorted(sys.modules) if m.startswith(heavy)), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert proc.stderr.split() == ["rag.cli"], proc.stderr
