"""The wheel: exactly our packages, with the prompts and the bundled corpus, and it answers from outside a
checkout (issue 17, item 1).

The build copies the checkout (so no build/ folder is left behind and a stale one cannot leak into the wheel).
The installed-wheel run uses `pip install --no-deps --target`, this venv supplying the dependencies: `python -S`
with the target and this venv's site-packages on PYTHONPATH, so no .pth file runs and an editable install of the
checkout cannot leak in. .ci/run also installs the wheel with its dependencies into a fresh venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow

IGNORED = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                 "eval-out", "bench-out", ".bench-cache", ".paperchat")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src") / "paperchat"
    shutil.copytree(ROOT, src, symlinks=True, ignore=IGNORED)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out),
                    str(src)], check=True, timeout=300)
    (found,) = out.glob("paperchat-*.whl")
    return found


def test_wheel_holds_our_packages_and_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"rag", "paperchat_ui"}, tops
    for prompt in (ROOT / "prompts").glob("*.md"):
        assert f"rag/data/prompts/{prompt.name}" in names
    for data in ("papers.jsonl", "questions.jsonl", "questions-dev.jsonl", "questions-fresh.jsonl",
                 "questions-fresh2.jsonl", "questions-fresh3.jsonl"):
        assert f"rag/data/corpus/{data}" in names
    # every package of the checkout is in pyproject's explicit package list (ui/ installs as paperchat_ui)
    for init in [*ROOT.glob("rag/**/__init__.py"), *ROOT.glob("ui/**/__init__.py")]:
        package = init.parent.relative_to(ROOT).as_posix()
        installed = "paperchat_ui" + package[2:] if package.split("/")[0] == "ui" else package
        assert f"{installed}/__init__.py" in names, f"{package} is missing from the wheel (pyproject packages)"
    assert (zipfile.ZipFile(wheel).read("rag/data/corpus/papers.jsonl")
            == (ROOT / "corpus" / "papers.jsonl").read_bytes())


def installed_env(target: Path, cwd: Path) -> dict[str, str]:
    """The installed wheel, then the dependencies; no checkout, no .pth (python -S), no RAG_ settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(PYTHONPATH=os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]]),
               RAG_DATA_DIR=str(cwd / "data"), HF_HUB_OFFLINE="1", PYTHONSAFEPATH="1")
    return env


def run_installed(target: Path, cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """`python -m rag ARGS` from the installed wheel, in cwd."""
    return subprocess.run([sys.executable, "-S", "-m", "rag", *args], cwd=cwd, env=installed_env(target, cwd),
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_installed_wheel_answers_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, timeout=300)
    work = tmp_path / "empty"
    work.mkdir()
    assert sorted(p.name for p in target.iterdir() if p.suffix != ".dist-info") == ["bin", "paperchat_ui", "rag"]
    where = subprocess.run(
        [sys.executable, "-S", "-c", ("import rag, rag.settings as s, rag.cli, paperchat_ui; print(rag.__file__); "
                                      "print(s.PROMPTS_DIR); print(s.CORPUS_PATH); print(rag.cli._ui_app().__file__)")],
        cwd=work, env=installed_env(target, work), capture_output=True, text=True, check=True, timeout=120)
    assert all(line.startswith(str(target)) for line in where.stdout.splitlines()), where.stdout

    ask = run_installed(target, work, "ask", "What is 2BP?")
    assert ask.returncode == 0, ask.stderr
    assert "2BP" in ask.stdout and "Sources:" in ask.stdout
    evaluated = run_installed(target, work, "eval", "--limit", "3", "--out", str(work / "eval"))
    assert evaluated.returncode == 0, evaluated.stderr
    assert (work / "eval" / "report.html").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["data", "eval"]  # nothing written next to the cwd else
