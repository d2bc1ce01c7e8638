"""The README's command examples run as written on the bundled papers (issue 27, item 14: they used GraphMoE, which is
not bundled: `ask … --bibtex` printed nothing and exited 0, `remove graphmoe` failed)."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from conftest import ROOT
from test_cli import run_cli

pytestmark = pytest.mark.slow
SKIP = {"chat", "mcp", "eval", "ingest"}  # servers, a long evaluation, the user's own files


def examples() -> list[list[str]]:
    """The `paperchat …` lines of the README's Use section that need nothing but the bundled papers."""
    section = (ROOT / "README.md").read_text().split("\n## Use\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert block
    found = []
    for line in block[1].splitlines():
        args = shlex.split(line, comments=True)
        if args and args[0] == "paperchat" and args[1] not in SKIP and '...' not in args:
            found.append(args[1:])
    return found


def test_the_use_examples_run_on_the_bundled_papers(index_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(index_dir, data)  # `remove` is among them
    ran = []
    for args in examples():
        proc = run_cli(*args, env={"RAG_DATA_DIR": str(data)})
        assert proc.returncode == 0 and proc.stdout.strip(), (args, proc.stderr)
        assert "Traceback" not in proc.stderr and "do not say" not in proc.stdout, (args, proc.stdout)
        ran.append(args[0])
    assert {"papers", "search", "ask", "remove"} <= set(ran), ran


def test_bibtex_of_an_abstention_says_why_and_fails(index_dir: Path) -> None:
    proc = run_cli("ask", "Who wrote GraphMoE?", "--bibtex", env={"RAG_DATA_DIR": str(index_dir)})
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and proc.stdout == ""
    assert len(lines) == 2 and "do not give authors" in lines[0]  # the abstention notice, as a plain ask shows it
    assert lines[1] == "Error: the answer cites no paper, so there is no BibTeX to print."
    cited = run_cli("ask", "What is Seesaw?", "--bibtex", env={"RAG_DATA_DIR": str(index_dir)})
    assert cited.returncode == 0 and cited.stdout.startswith("@") and "Seesaw" in cited.stdout
