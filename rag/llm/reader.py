"""The reading model: closed questions (does this passage answer the question? yes or no) asked of a local GGUF model
in a child process (rag.llm.reader_worker), answered as log-probabilities, cached by what was asked.

`Reader.judge(asks, deadline)` returns, for each ask, the model's probability of its first option (None for the asks
it could not read before the deadline: the rules decide those). One thread owns the worker and takes jobs in order;
a job whose caller gave up before it started is dropped, one that started finishes and is cached, so the same
question is answered from the cache next time. Judgments are kept in a SQLite file beside the index, keyed by the
model's identity and the exact prompt.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import hashlib
import json
import logging
import math
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from pydantic import BaseModel, Field

from rag.llm import LLMError
from rag.proc import stop_process
from rag.settings import Settings

log = logging.getLogger(__name__)

START_TIMEOUT = 180.0
ITEM_TIMEOUT = 60.0  # more seconds a reply may take per passage in the request (a new 500-token abstract on two busy
                     # cores prefills at ~10 tokens/s); a worker that says nothing for longer is stopped
CACHE_ROWS = 200_000
BATCH = 4  # asks per request to the worker: the deadline is checked between requests
READER_CTX = 2048  # tokens: the instructions, one abstract (read up to ~550 tokens) and the question


class Ask(BaseModel):
    """One closed question: the instructions, the passage (kept in the worker's cache), the question about it."""

    system: str
    doc: str
    query: str
    options: tuple[str, ...] = ("Yes", "No")

    def key(self, model_id: str) -> str:
        blob = json.dumps([model_id, self.system, self.doc, self.query, self.options], ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()


class ReadStats(BaseModel):
    """What one judge() call cost: asks answered from the cache, asks read by the model, and the model's time."""

    asked: int = 0
    cached: int = 0
    read: int = 0
    unread: int = Field(0, description="Asks not read before the deadline (the rules decided them).")
    prefill_tokens: int = 0
    wall_ms: float = 0.0
    worker_ms: float = Field(0.0, description="Time inside the worker for the asks read (tokenising, restoring "
                                              "cached passages, prefilling).")
    llama_ms: float = Field(0.0, description="llama.cpp's own prefill time for the same tokens: the floor.")

    def add(self, other: ReadStats) -> None:
        for name in type(self).model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def distribution(logprobs: list[float]) -> list[float]:
    """The options' probabilities among themselves (a softmax over their log-probabilities)."""
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    total = sum(weights)
    return [w / total for w in weights]


class _Worker:
    """The child process and the pipe to it (used by one thread at a time)."""

    def __init__(self, model: Path, threads: int, ctx: int) -> None:
        self.model, self.threads, self.ctx = model, threads, ctx
        self.proc: subprocess.Popen[str] | None = None
        self.replies: queue.Queue[str | None] = queue.Queue()
        self._n = 0

    def start(self) -> None:
        env = dict(os.environ)
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep instead of spinning on shared cores
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rag.llm.reader_worker", "--model", str(self.model), "--threads", str(self.threads),
             "--ctx", str(self.ctx)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, bufsize=1)
        self.replies = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc, self.replies), daemon=True,
                         name="reader-replies").start()
        first = self._reply(START_TIMEOUT)
        if "error" in first:
            self.stop()
            raise LLMError(f"The reading model {self.model.name} could not be loaded: {first['error']}")
        log.info("reading model %s ready (context %s)", self.model.name, first.get("n_ctx"))

    @staticmethod
    def _pump(proc: subprocess.Popen[str], replies: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            replies.put(line)
        replies.put(None)

    def _reply(self, timeout: float) -> dict:
        try:
            line = self.replies.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise LLMError(f"The reading model did not answer within {timeout:.0f} s.") from None
        if line is None:
            code = self.proc.poll() if self.proc else None
            self.proc = None
            raise LLMError(f"The reading model's process ended (exit code {code}).")
        return json.loads(line)

    def request(self, asks: list[Ask], warm: bool = False) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        assert self.proc is not None and self.proc.stdin is not None
        self._n += 1
        self.proc.stdin.write(json.dumps({"id": self._n, "items": [
            {"system": a.system, "doc": a.doc, "query": a.query, "options": [] if warm else list(a.options)}
            for a in asks]}, ensure_ascii=False) + "\n")
        self.proc.stdin.flush()
        reply = self._reply(START_TIMEOUT + ITEM_TIMEOUT * len(asks))
        if "error" in reply:
            raise LLMError(f"The reading model failed: {reply['error']}")
        return reply

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc, 5)


class _Cache:
    """Judgments on disk (SQLite), shared by every process on the data directory; bounded in rows."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.memory: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._db() as db:
                db.execute("CREATE TABLE IF NOT EXISTS judgments (key TEXT PRIMARY KEY, logprobs TEXT, at REAL)")

    def _db(self) -> sqlite3.Connection:
        assert self.path is not None
        return sqlite3.connect(self.path, timeout=5)

    def get(self, keys: list[str]) -> dict[str, list[float]]:
        found = {k: self.memory[k] for k in keys if k in self.memory}
        rest = [k for k in keys if k not in found]
        if rest and self.path is not None:
            try:
                with self._db() as db:
                    for k, v in db.execute(f"SELECT key, logprobs FROM judgments WHERE key IN "
                                           f"({','.join('?' * len(rest))})", rest):
                        found[k] = self.memory[k] = json.loads(v)
            except sqlite3.Error as exc:  # a cache that cannot be read costs time, never an answer
                log.warning("reader cache %s unreadable: %s", self.path, exc)
        return found

    def put(self, values: dict[str, list[float]]) -> None:
        self.memory.update(values)
        if self.path is None or not values:
            return
        try:
            with self.lock, self._db() as db:
                now = time.time()
                db.executemany("INSERT OR REPLACE INTO judgments VALUES (?, ?, ?)",
                               [(k, json.dumps(v), now) for k, v in values.items()])
                (rows,) = db.execute("SELECT COUNT(*) FROM judgments").fetchone()
                if rows > CACHE_ROWS:
                    db.execute("DELETE FROM judgments WHERE key IN (SELECT key FROM judgments ORDER BY at LIMIT ?)",
                               (rows - CACHE_ROWS,))
        except sqlite3.Error as exc:
            log.warning("reader cache %s not written: %s", self.path, exc)


def model_identity(path: Path, sha256: str | None = None) -> str:
    """What judgments are cached under: the model's checksum when known, else its path, size and time."""
    if sha256:
        return sha256[:16]
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


class Reader:
    """Closed questions to the reading model, cached; thread-safe."""

    def __init__(self, model: Path, identity: str, threads: int, ctx: int, cache_path: Path | None) -> None:
        self.model, self.identity = model, identity
        self._worker = _Worker(model, threads, ctx)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="reader")
        self._cache = _Cache(cache_path)
        atexit.register(self.close)

    def judge(self, asks: list[Ask], deadline: float | None = None) -> tuple[list[float | None], ReadStats]:
        """P(first option) for each ask (None where unread at the deadline, a time.monotonic() value), and the cost."""
        dists, stats = self.choose(asks, deadline)
        return [d[0] if d is not None else None for d in dists], stats

    def choose(self, asks: list[Ask], deadline: float | None = None) -> tuple[list[list[float] | None], ReadStats]:
        """Each ask's options' probabilities (None where unread at the deadline, a time.monotonic() value), and the
        cost."""
        t0 = time.perf_counter()
        stats = ReadStats(asked=len(asks))
        keys = [a.key(self.identity) for a in asks]
        known = self._cache.get(list(dict.fromkeys(keys)))
        stats.cached = sum(k in known for k in keys)
        todo = [i for i, k in enumerate(keys) if k not in known]
        # Asks on one passage go together (its cached state is restored once); batches keep the deadline checkable.
        todo.sort(key=lambda i: (asks[i].system, asks[i].doc))
        batches = [todo[i:i + BATCH] for i in range(0, len(todo), BATCH)]
        futures = [self._pool.submit(self._read, [asks[i] for i in b], [keys[i] for i in b]) for b in batches]
        for fut in futures:
            left = None if deadline is None else deadline - time.monotonic()
            try:
                reply, got = fut.result(timeout=None if left is None else max(left, 0.0))
            except concurrent.futures.TimeoutError:
                break
            except LLMError as exc:
                log.warning("%s", exc)
                break
            known.update(got)
            stats.read += len(got)
            stats.prefill_tokens += reply.get("prefill_tokens", 0)
            stats.worker_ms += reply.get("wall_ms", 0.0)
            stats.llama_ms += reply.get("llama_ms", 0.0)
        for fut in futures:
            fut.cancel()  # not started: nobody waits for it any more
        out = [distribution(known[k]) if k in known else None for k in keys]
        stats.unread = sum(p is None for p in out)
        stats.wall_ms = round((time.perf_counter() - t0) * 1000, 1)
        return out, stats

    def _read(self, asks: list[Ask], keys: list[str]) -> tuple[dict, dict[str, list[float]]]:
        reply = self._worker.request(asks)
        got = dict(zip(keys, reply["logprobs"], strict=True))
        self._cache.put(got)
        return reply, got

    def warm(self, asks: list[Ask]) -> concurrent.futures.Future:
        """Start the worker and read these asks' passages into its cache, in the background (a first question then
        waits for neither); returns the job's future."""
        def run() -> None:
            try:
                for i in range(0, len(asks), BATCH):
                    self._worker.request(asks[i:i + BATCH], warm=True)
            except LLMError as exc:  # reading ahead saves time; a question will say what is wrong with the model
                log.warning("reading ahead stopped: %s", exc)

        return self._pool.submit(run)

    def close(self) -> None:
        """Stop the worker process."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._worker.stop()
        atexit.unregister(self.close)


def make_reader(settings: Settings) -> Reader | None:
    """The reading model the settings ask for: None with RAG_READER=off, or with 'auto' when none is installed;
    LLMError with one sentence with 'on' when it is missing or not a model."""
    from rag.llm.models import KNOWN, installed, llama_cpp_installed, resolve_model

    if settings.reader == "off":
        return None
    if not llama_cpp_installed():  # a model file without llama.cpp to run it
        if settings.reader == "on":
            raise LLMError("The reading model needs llama-cpp-python: pip install 'paperchat[local]'.")
        log.info("llama-cpp-python is not installed; the rules decide")
        return None
    name = settings.reader_model
    spec = KNOWN.get(name)
    if settings.reader == "auto" and spec is not None and not installed(spec) and \
            not (settings.model_dir / spec.file).is_file():
        log.info("no reading model installed (%s); the rules decide", name)
        return None
    try:
        path = resolve_model(name, settings.model_dir)
    except LLMError:
        if settings.reader == "on":
            raise
        log.warning("the reading model %s is not usable; the rules decide", name, exc_info=True)
        return None
    identity = model_identity(path, spec.sha256 if spec else None)
    threads = settings.reader_threads or os.cpu_count() or 1
    return Reader(path, identity, threads, READER_CTX, settings.data_dir / "reader-cache.sqlite")
