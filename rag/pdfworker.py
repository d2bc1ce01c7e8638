"""PDFs read where a decompression bomb cannot take the app down: a child process held to a memory limit and a
time limit, which first counts what the file's compressed streams decode to and refuses it past the caps.

A 1 MB PDF can hold a content stream that inflates to 1 GiB; PDFium decodes it whole and builds its objects, and
the reading process then grows by gigabytes (measured: 2.1 GB for 1 GiB of spaces, 15.7 GB and 75 s for 1 GiB of
text operators) or aborts when an allocation fails. So rag.pdf.read_pdf hands every PDF to one long-lived child
(`python -m rag.pdfworker`, started on first use, restarted after a failure), whose address space is capped
(RLIMIT_AS) and which is killed after its time limit. Before PDFium sees the file the child inflates each Flate
stream but images in 1 MB steps, keeping nothing, and refuses the file when one stream (a page's content, a form,
a font) or all of them together decode to more than the caps allow. A bomb thus costs the app a one-line error
and a restarted child; the parent's memory does not grow.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import resource
import select
import signal
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from rag.corpus import CorpusError
from rag.types import Paper

logger = logging.getLogger(__name__)

_MB = 1024 * 1024
_OUT_OF_MEMORY = 3  # the child's exit code after a MemoryError in Python (PDFium aborts instead)
_STEP = _MB  # bytes inflated at a time while counting
_STREAM = re.compile(rb"(?<!end)stream\r?\n")
_LENGTH = re.compile(rb"/Length\s+(\d+)(\s+\d+\s+R)?")


@dataclass(frozen=True)
class Limits:
    """What reading one PDF may cost (Settings.pdf_*)."""

    memory_mb: int = 1024
    timeout: float = 120.0
    max_stream_mb: int = 100
    max_decoded_mb: int = 1000

    @classmethod
    def of(cls, settings: object) -> Limits:
        """The limits a Settings object gives."""
        return cls(memory_mb=settings.pdf_memory_mb, timeout=settings.pdf_timeout,  # type: ignore[attr-defined]
                   max_stream_mb=settings.pdf_max_stream_mb,  # type: ignore[attr-defined]
                   max_decoded_mb=settings.pdf_max_decoded_mb)  # type: ignore[attr-defined]


def check_streams(path: Path, limits: Limits) -> None:
    """Raise CorpusError when a Flate stream of the file (images aside) decodes to more than max_stream_mb, or all of
    them to more than max_decoded_mb. Streams are inflated 1 MB at a time and nothing is kept."""
    data = path.read_bytes()
    total = 0
    for match in _STREAM.finditer(data):
        start = match.end()
        head = data[max(0, match.start() - 2048): match.start()]
        head = head[head.rfind(b"obj") + 3:] if b"obj" in head else head
        if b"/FlateDecode" not in head or b"/Image" in head:
            continue
        length = _LENGTH.search(head)
        if length and not length.group(2):
            body = memoryview(data)[start: start + int(length.group(1))]
        else:
            end = data.find(b"endstream", start)
            body = memoryview(data)[start: end if end >= 0 else len(data)]
        size = _inflated_size(body, limits.max_stream_mb * _MB)
        if size > limits.max_stream_mb * _MB:
            raise CorpusError(path, 0, f"has a compressed stream that decodes to more than {limits.max_stream_mb} MB "
                                       "(a decompression bomb?); not read")
        total += size
        if total > limits.max_decoded_mb * _MB:
            raise CorpusError(path, 0, f"has compressed streams that decode to more than {limits.max_decoded_mb} MB "
                                       "in all (a decompression bomb?); not read")


def _inflated_size(data: memoryview, cap: int) -> int:
    """How many bytes a zlib stream inflates to, counted up to just past cap (a damaged stream: what came out)."""
    inflater = zlib.decompressobj()
    size = 0
    pending = bytes(data[:_STEP])
    offset = _STEP
    try:
        while size <= cap:
            out = inflater.decompress(pending, _STEP)
            size += len(out)
            pending = inflater.unconsumed_tail
            if not pending:
                if offset >= len(data) or inflater.eof:
                    break
                pending = bytes(data[offset: offset + _STEP])
                offset += _STEP
    except zlib.error:
        pass
    return size


class _Worker:
    """One child process reading PDFs, one at a time, under given limits."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.memory_mb = 0
        self.lock = threading.Lock()

    def read(self, path: Path, references: bool, limits: Limits) -> Paper:
        with self.lock:
            if self.proc is None or self.proc.poll() is not None or self.memory_mb != limits.memory_mb:
                self._start(limits.memory_mb)
            assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
            request = {"path": str(path.resolve()), "references": references, "max_stream_mb": limits.max_stream_mb,
                       "max_decoded_mb": limits.max_decoded_mb}
            try:
                self.proc.stdin.write(json.dumps(request).encode() + b"\n")
                self.proc.stdin.flush()
                line = self._reply(limits.timeout)
            except TimeoutError:
                self.stop()
                raise CorpusError(path, 0, f"took longer than {limits.timeout:g} s to read; not read") from None
            except OSError:
                line = b""
            if not line:  # the child died: PDFium aborts when an allocation fails under the memory limit
                code = self.stop()
                logger.info("PDF reader exited with %s on %s", code, path)
                raise CorpusError(path, 0, _death(code, limits))
        reply = json.loads(line)
        if "error" in reply:
            raise CorpusError(path, 0, reply["error"])
        return Paper.model_validate(reply["paper"])

    def _reply(self, timeout: float) -> bytes:
        """The child's next line, or TimeoutError."""
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        fd = self.proc.stdout.fileno()
        while not buffer.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    return b""
                buffer += chunk
        return buffer

    def _start(self, memory_mb: int) -> None:
        self.stop()
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
        self.proc = subprocess.Popen([sys.executable, "-m", "rag.pdfworker", str(memory_mb)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self.memory_mb = memory_mb

    def stop(self) -> int | None:
        """End the child (it was started here); its exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream:
                stream.close()
        return proc.returncode


def _death(code: int | None, limits: Limits) -> str:
    """What a child's exit code says about the file it was reading."""
    if code in (_OUT_OF_MEMORY, -signal.SIGABRT, -signal.SIGKILL):
        return f"needs more than {limits.memory_mb} MB of memory to read (a decompression bomb?); not read"
    if code in (-signal.SIGSEGV, -signal.SIGBUS):
        return "is corrupt (the PDF reader crashed on it); not read"
    return f"could not be read (the PDF reader stopped with code {code})"


_WORKER = _Worker()
atexit.register(_WORKER.stop)


def read_in_child(path: Path, references: bool, limits: Limits) -> Paper:
    """rag.pdf.extract_paper run in the child process under the limits."""
    return _WORKER.read(path, references, limits)


def main() -> None:
    """The child: cap the address space, then read one request per line on stdin, answer one line on stdout."""
    memory = int(sys.argv[1]) * _MB
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing but replies on the reply stream
    from rag.pdf import extract_paper

    for line in sys.stdin.buffer:
        request = json.loads(line)
        path = Path(request["path"])
        try:
            check_streams(path, Limits(max_stream_mb=request["max_stream_mb"],
                                       max_decoded_mb=request["max_decoded_mb"]))
            reply = {"paper": extract_paper(path, references=request["references"]).model_dump(mode="json")}
        except CorpusError as e:
            reply = {"error": e.reason}
        except MemoryError:
            out.close()
            os._exit(_OUT_OF_MEMORY)
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
