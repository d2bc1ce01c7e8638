"""The command line's surface: help without misleading metavars, choices and defaults, --version, one-line
errors, and a start that imports nothing heavy (issue 17, items 5 and 6)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

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


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m rag ARGS` in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "rag", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, "COLUMNS": "80", **(env or {})}, check=False)


@pytest.mark.parametrize(("args", "env", "message", "code"), [
    (["ask", "x", "-k", "0"], {}, "-k must be at least 1, not 0.", 2),
    (["ask", "x", "-k", "-1"], {}, "-k must be at least 1, not -1.", 2),
    (["ask", "x", "-k", "100"], {}, "-k must be at most 50, not 100.", 2),
    (["search", "x", "-k", "0"], {}, "-k must be at least 1, not 0.", 2),
    (["ask", "x", "-k", "many"], {}, "-k must be a whole number, not 'many'.", 2),
    (["ask", "x", "--answerer", "gpt"], {}, "--answerer must be one of extractive, openai or local, not 'gpt'.", 2),
    (["chat", "--port", "70000"], {}, "--port must be at most 65535, not 70000.", 2),
    (["ask", "x"], {"RAG_PORT": "abc"}, "RAG_PORT must be a whole number, not 'abc'.", 1),
    (["search", "x"], {"RAG_TOP_K": "0"}, "RAG_TOP_K must be at least 1, not '0'.", 1),
    (["ask", "x"], {"RAG_ANSWERER": "gpt"}, "RAG_ANSWERER must be one of extractive, openai or local, not 'gpt'.", 1),
])
def test_bad_values_name_the_option_or_variable(args: list[str], env: dict[str, str], message: str,
                                                code: int) -> None:
    proc = run_cli(*args, env=env)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code and proc.stdout == "", proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"Error: {message}"), proc.stderr
    assert "Value error" not in proc.stderr and "Input should" not in proc.stderr


def test_usage_line_and_help_paragraphs() -> None:
    usage = help_text("ask")
    assert "ask [OPTIONS] QUESTION " in usage and "{QUESTION}" not in usage
    assert "ingest [OPTIONS] [PATH]... " in help_text("ingest")
    for command in COMMANDS:
        result = CliRunner().invoke(cli.app, [command, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"},
                                    terminal_width=80)
        lines = result.output.split("╭")[0].splitlines()  # usage and description, before the panels
        paragraphs = "\n".join(line.strip() for line in lines).split("\n\n")
        for paragraph in paragraphs:
            rows = [r for r in paragraph.splitlines() if r]
            short = [r for r in rows[:-1] if len(r) < 60]  # a row ended early: a source line break kept
            assert not short, f"`paperchat {command} --help` wraps raggedly:\n{result.output}"


@pytest.mark.slow
def test_search_honours_top_k_and_verbose_ask_logs(index_dir: Path) -> None:
    env = {"RAG_DATA_DIR": str(index_dir)}
    rows = json.loads(run_cli("search", "What is 2BP?", "--json", env={**env, "RAG_TOP_K": "2"}).stdout)
    assert len(rows) == 2
    assert len(json.loads(run_cli("search", "What is 2BP?", "--json", "-k", "3", env=env).stdout)) == 3
    proc = run_cli("-v", "ask", "What is 2BP?", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "passage [1] 2bp" in proc.stderr and "extractive answered citing [" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_sources_quote_the_cited_sentence(index_dir: Path) -> None:
    """Two passages of one paper are told apart by the sentence each is cited for (issue 27, item 10)."""
    env = {"RAG_DATA_DIR": str(index_dir)}
    shown = run_cli("ask", "What is 2BP?", env=env).stdout
    got = json.loads(run_cli("ask", "What is 2BP?", "--json", env=env).stdout)
    listing = shown.split("\nSources:\n")[1]
    entries = re.split(r"\n(?=\[\d+\] )", listing.strip())
    cited = sorted({n for s in got["sentences"] for n in s["citations"]})
    assert len(entries) == len(cited) >= 2 and len({s["paper_id"] for s in got["sources"] if s["n"] in cited}) == 1
    quotes = []
    for entry, n in zip(entries, cited, strict=True):
        head, _, quote = entry.partition("\n")
        source = next(s for s in got["sources"] if s["n"] == n)
        assert head == f"[{n}] {source['title']} ({source['paper_id']})"
        quote = " ".join(quote.split()).strip("“”")
        assert quote and quote in " ".join(source["text"].split())
        quotes.append(quote)
    assert len(set(quotes)) == len(quotes)


@pytest.mark.slow
def test_comparison_table_is_drawn_not_raw_markdown(index_dir: Path) -> None:
    proc = run_cli("ask", "Compare Seesaw and 2BP", env={"RAG_DATA_DIR": str(index_dir), "COLUMNS": "120"})
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.split("\nSources:\n")[0]
    assert not [line for line in table.splitlines() if line.lstrip().startswith("|")], table
    assert "---" not in table and "**" not in table
    header = next(line for line in table.splitlines() if "Paper" in line)
    assert header.split() == ["Paper", "Problem", "Approach", "Reported", "result", "Baseline", "Setting"]
    assert "1.78x" in table and "1.70x" in table and "1.36x" in table and "vLLM" in table  # cells wrap, not cut


@pytest.mark.parametrize(("line", "cells"), [
    ("| a | b |", ["a", "b"]), ("  | **Seesaw** (x) | 1.78x [1] |  ", ["**Seesaw** (x)", "1.78x [1]"]),
    ("| a \\| b | c |", ["a | b", "c"]), ("|---|:---:|", []), ("| -- | -- |", []),
    ("plain text", None), ("|", None), ("a | b", None),
])
def test_table_cells(line: str, cells: list[str] | None) -> None:
    from rag.text import table_cells

    assert table_cells(line) == cells


def test_a_bad_search_query_is_said_before_the_index_is_opened(tmp_path: Path) -> None:
    proc = run_cli("search", " ", env={"RAG_DATA_DIR": str(tmp_path / "data")})
    assert proc.returncode == 1 and proc.stderr.splitlines() == ["Error: Please type a question."]
    assert not (tmp_path / "data").exists()
