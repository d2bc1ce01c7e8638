"""rag.llm against a real llama.cpp server, a dead port and raw-socket servers that misbehave."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_server import FaultServer, Flood, Reply, Status, Trickle
from llm_fixtures import dead_llm_url, llama_server  # noqa: F401

from rag.llm.chat import DEFAULT_MAX_CHARS, chat_model, complete, stream_text
from rag.llm.errors import LLMDeadlineExceeded, LLMError, LLMTruncated, friendly_error
from rag.llm.guard import Deadline
from rag.llm.local import LocalServer, default_gguf, get_local_server, stop_local_server
from rag.settings import Settings, get_settings

SECRET = "sk-test-secret-123"
QUESTION = [("system", "You are a concise assistant."), ("human", "Name three colours of the rainbow.")]


def _settings(**overrides: object) -> Settings:
    """Settings with a recognisable secret key, so tests can check it never leaks."""
    return get_settings(llm_api_key=SECRET, llm_model="local", **overrides)


def _port_is_free(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def raw_server(reply: bytes | None, close_after: float = 0.0) -> Iterator[str]:
    """A socket server that answers every request with raw bytes (None: never answers); yields its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)
            conn.recv(65536)
            if reply is not None:
                conn.sendall(reply)
                time.sleep(close_after)
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()
        for conn in held:
            conn.close()


def _http(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    """A raw HTTP/1.1 response."""
    head = f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    return head.encode() + body


def _error_of(settings: Settings, base_url: str, stream: bool = False) -> LLMError:
    """The friendly error a request to base_url ends in."""
    llm = chat_model(settings, base_url=base_url)
    with pytest.raises(Exception) as info:
        if stream:
            list(llm.stream(QUESTION))
        else:
            llm.invoke(QUESTION)
    return friendly_error(info.value)


# --- the real llama.cpp server ---------------------------------------------------------------


def test_default_gguf_is_the_packaged_smollm2() -> None:
    path = default_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000


def test_invoke_returns_text(llama_server: LocalServer) -> None:
    llm = chat_model(_settings(llm_max_tokens=48), base_url=llama_server.base_url, model=llama_server.model)
    reply = llm.invoke(QUESTION)
    assert isinstance(reply.content, str) and reply.content.strip()
    assert complete(llm, QUESTION).strip()


def test_stream_yields_several_chunks(llama_server: LocalServer) -> None:
    llm = chat_model(_settings(llm_max_tokens=48), base_url=llama_server.base_url, model=llama_server.model)
    chunks = [chunk.content for chunk in llm.stream(QUESTION)]
    assert len([c for c in chunks if c]) >= 2
    assert "".join(chunks).strip()
    assert "".join(stream_text(llm, QUESTION)).strip()


def test_max_tokens_reaches_llama_cpp(llama_server: LocalServer) -> None:
    """llama.cpp ignores max_completion_tokens; chat_model must also send max_tokens."""
    llm = chat_model(_settings(llm_max_tokens=16), base_url=llama_server.base_url, model=llama_server.model)
    reply = llm.invoke([("human", "Write a very long story about a dragon who learns to read.")])
    assert reply.usage_metadata is not None
    assert 0 < reply.usage_metadata["output_tokens"] <= 16
    assert reply.response_metadata.get("finish_reason") == "length"


def test_concurrent_streams_both_finish(llama_server: LocalServer) -> None:
    """A second request queues instead of silently ending the first stream."""
    llm = chat_model(_settings(llm_max_tokens=32), base_url=llama_server.base_url, model=llama_server.model)
    answers: dict[str, str] = {}

    def ask(topic: str, delay: float) -> None:
        time.sleep(delay)
        answers[topic] = "".join(stream_text(llm, [("human", f"Write a long story about a {topic}.")]))

    threads = [threading.Thread(target=ask, args=(topic, delay)) for topic, delay in (("dragon", 0), ("robot", 0.3))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert set(answers) == {"dragon", "robot"}
    assert all(text.strip() for text in answers.values())


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_server_runs_with_the_intended_flags(llama_server: LocalServer) -> None:
    cmdline = Path(f"/proc/{llama_server.pid}/cmdline").read_bytes().split(b"\0")
    environ = Path(f"/proc/{llama_server.pid}/environ").read_bytes().split(b"\0")
    for flag, value in ((b"--model_alias", b"local"), (b"--interrupt_requests", b"False"), (b"--logits_all", b"False")):
        assert cmdline[cmdline.index(flag) + 1] == value
    assert cmdline[cmdline.index(b"--n_threads") + 1] == cmdline[cmdline.index(b"--n_threads_batch") + 1]
    assert any(var.startswith(b"OMP_WAIT_POLICY=") for var in environ)


def test_stop_ends_the_process_and_frees_the_port() -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    server = LocalServer(default_gguf(), ctx=512).start()
    pid, port, log_path = server.pid, server.port, server.log_path
    assert server.running and pid is not None and port is not None and log_path is not None
    server.stop()
    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert _port_is_free(port)
    assert not log_path.exists()
    server.stop()  # idempotent


def test_get_local_server_is_shared() -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    settings = get_settings(local_ctx=512, local_threads=1)
    try:
        first = get_local_server(settings)
        assert get_local_server(settings) is first
        assert first.running and first.threads == 1
        assert complete(chat_model(_settings(llm_max_tokens=16), first.base_url, first.model), QUESTION)
    finally:
        stop_local_server()
    assert not first.running


def test_broken_model_file_reports_the_log(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"not a gguf file")
    started = time.monotonic()
    with pytest.raises(LLMError, match="exited") as info:
        LocalServer(bogus, ctx=512, start_timeout=60).start()
    assert "Server log" in str(info.value)
    assert time.monotonic() - started < 60


# --- endpoints that fail ---------------------------------------------------------------------


def test_dead_endpoint_is_friendly_and_quick(dead_llm_url: str) -> None:
    started = time.monotonic()
    error = _error_of(_settings(llm_timeout=2, llm_max_retries=0), dead_llm_url)
    assert time.monotonic() - started < 5
    assert isinstance(error, LLMError)
    assert str(error) == f"The language model at {dead_llm_url} is unreachable (connection refused)."
    assert "sk-" not in str(error)


def test_dead_endpoint_through_helpers(dead_llm_url: str) -> None:
    llm = chat_model(_settings(llm_timeout=2, llm_max_retries=0), base_url=dead_llm_url)
    with pytest.raises(LLMError, match="unreachable"):
        complete(llm, QUESTION)
    with pytest.raises(LLMError, match="unreachable"):
        list(stream_text(llm, QUESTION))


def test_silent_endpoint_times_out() -> None:
    with raw_server(None) as url:
        started = time.monotonic()
        error = _error_of(_settings(llm_timeout=1, llm_max_retries=0), url)
    assert time.monotonic() - started < 5
    assert str(error) == f"The language model at {url} did not answer within 1 s."


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        ("500 Internal Server Error", b'{"error": {"message": "boom"}}', "returned HTTP 500."),
        ("503 Service Unavailable", b"", "returned HTTP 503."),
        ("401 Unauthorized", b'{"error": {"message": "Incorrect API key provided: sk-test-***123"}}', "API key"),
        ("404 Not Found", b'{"error": {"message": "no such model"}}', "HTTP 404"),
        ("429 Too Many Requests", b"{}", "HTTP 429"),
        ("400 Bad Request", b'{"error": {"message": "bad thing with sk-test-secret-123"}}', "HTTP 400: bad thing"),
    ],
)
def test_http_errors_name_the_status(status: str, body: bytes, expected: str) -> None:
    with raw_server(_http(status, body)) as url:
        error = _error_of(_settings(llm_timeout=5, llm_max_retries=0), url)
    assert str(error).startswith(f"The language model at {url} ")
    assert expected in str(error)
    assert "sk-" not in str(error)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html>hello</html>", "text/html"),
        (b"{not json", "application/json"),
        (b'{"foo": 1}', "application/json"),
        (b'{"choices": "x"}', "application/json"),
    ],
)
def test_malformed_response(body: bytes, content_type: str) -> None:
    with raw_server(_http("200 OK", body, content_type)) as url:
        llm = chat_model(_settings(llm_timeout=5, llm_max_retries=0), base_url=url)
        with pytest.raises(LLMError) as info:
            complete(llm, QUESTION)
    assert str(info.value) == f"The language model at {url} sent a response that is not a valid OpenAI chat completion."


def test_empty_answer() -> None:
    body = (
        b'{"id": "1", "object": "chat.completion", "created": 1, "model": "m", "choices": [{"index": 0,'
        b' "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}]}'
    )
    with raw_server(_http("200 OK", body)) as url:
        llm = chat_model(_settings(llm_timeout=5, llm_max_retries=0), base_url=url)
        with pytest.raises(LLMError, match="returned an empty answer"):
            complete(llm, QUESTION)


def _sse(*events: bytes) -> bytes:
    """A chunked text/event-stream response carrying the events, without the final zero chunk."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    return head + b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)


_CHUNK = (
    b'data: {"id": "1", "object": "chat.completion.chunk", "created": 1, "model": "m",'
    b' "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}]}\n\n'
)


def test_stream_cut_mid_answer() -> None:
    with raw_server(_sse(_CHUNK, _CHUNK), close_after=0.1) as url:
        llm = chat_model(_settings(llm_timeout=5, llm_max_retries=0), base_url=url)
        received: list[str] = []
        with pytest.raises(LLMError, match="stopped sending before the answer was complete") as info:
            received.extend(stream_text(llm, QUESTION))
    assert received == ["Hel", "Hel"]
    assert url in str(info.value) and "sk-" not in str(info.value)


def test_stream_ended_without_finish_reason() -> None:
    """llama.cpp's interrupted streams end cleanly with [DONE] but no finish_reason."""
    with raw_server(_sse(_CHUNK, b"data: [DONE]\n\n", b"")) as url:
        llm = chat_model(_settings(llm_timeout=5, llm_max_retries=0), base_url=url)
        with pytest.raises(LLMError, match="stopped sending"):
            list(stream_text(llm, QUESTION))


def test_friendly_error_keeps_llm_errors() -> None:
    error = LLMError("already friendly")
    assert friendly_error(error) is error


# --- limits of our own: the answer deadline and the character cap ----------------------------------------------


def _rss_mb() -> float:
    """This process's resident memory now, in MB (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


@pytest.fixture
def fault() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def _model(fault: FaultServer, **overrides: object) -> object:
    return chat_model(_settings(llm_timeout=30, llm_max_retries=2, **overrides), base_url=fault.url)


def _threads_settle(limit: int, timeout: float = 5.0) -> bool:
    """Whether the thread count falls back to limit (threads of other tests' clients may still be winding down)."""
    end = time.monotonic() + timeout
    while threading.active_count() > limit and time.monotonic() < end:
        time.sleep(0.05)
    return threading.active_count() <= limit


@pytest.mark.parametrize("headers", [False, True], ids=["body", "headers"])
@pytest.mark.parametrize("streaming", [True, False], ids=["sse", "json"])
def test_trickle_stops_at_the_deadline(fault: FaultServer, streaming: bool, headers: bool) -> None:
    """1 byte/s never trips a 30 s per-read timeout; the 2 s answer deadline still ends the call, and its socket."""
    fault.script(Trickle(headers=headers))
    llm = _model(fault)
    threads = threading.active_count()
    started = time.monotonic()
    with pytest.raises(LLMDeadlineExceeded) as info:
        if streaming:
            list(stream_text(llm, QUESTION, deadline=Deadline.after(2)))
        else:
            complete(llm, QUESTION, deadline=Deadline.after(2))
    elapsed = time.monotonic() - started
    assert elapsed < 2 + 2, f"stopped after {elapsed:.1f} s"
    assert str(info.value) == f"The language model at {fault.url} did not finish within 2 s."
    assert friendly_error(info.value) is info.value and info.value.seconds == 2
    assert len(fault.requests) == 1  # not retried
    assert fault.wait_idle(3), "the trickling connection was left open"
    assert _threads_settle(threads), "a thread was left running"


def test_one_deadline_spans_two_calls(fault: FaultServer) -> None:
    """condense + answer share one deadline: once the first call used it up, the second sends nothing."""
    fault.script(Trickle())
    llm = _model(fault)
    deadline = Deadline.after(1.5)
    started = time.monotonic()
    with pytest.raises(LLMDeadlineExceeded):
        complete(llm, QUESTION, deadline=deadline)
    with pytest.raises(LLMDeadlineExceeded, match="within 1.5 s"):
        list(stream_text(llm, QUESTION, deadline=deadline))
    assert time.monotonic() - started < 1.5 + 2
    assert len(fault.requests) == 1


def test_plain_float_deadline_and_a_reply_in_time(fault: FaultServer) -> None:
    fault.script(Reply(text="Fine [1]."), Reply(text="Fine [1]."))
    llm = _model(fault)
    assert "".join(stream_text(llm, QUESTION, deadline=time.monotonic() + 10)) == "Fine [1]."
    assert complete(llm, QUESTION, deadline=time.monotonic() + 10) == "Fine [1]."
    with pytest.raises(LLMDeadlineExceeded, match=r"did not finish before the answer deadline\.$"):
        complete(llm, QUESTION, deadline=time.monotonic() - 1)
    assert len(fault.requests) == 2  # a deadline already passed sends nothing


def test_retry_after_past_the_deadline_is_not_slept(fault: FaultServer) -> None:
    fault.script(Status(429, headers={"Retry-After": "30"}), Reply())
    started = time.monotonic()
    with pytest.raises(LLMError, match="HTTP 429"):
        complete(_model(fault), QUESTION, deadline=Deadline.after(5))
    assert time.monotonic() - started < 3 and len(fault.requests) == 1


@pytest.mark.parametrize("one_event", [False, True], ids=["many events", "one endless event"])
def test_stream_flood_stops_at_the_cap(fault: FaultServer, one_event: bool) -> None:
    cap = 5_000
    fault.script(Flood(one_event=one_event))
    rss = _rss_mb()
    received: list[str] = []
    started = time.monotonic()
    with pytest.raises(LLMTruncated) as info:
        received.extend(stream_text(_model(fault), QUESTION, max_chars=cap))
    text = "".join(received)
    assert len(text) <= cap and text == info.value.text
    if not one_event:
        assert len(text) == cap and text.startswith("flood flood")
    assert str(info.value) == "The model's reply was cut at 5,000 characters."
    assert time.monotonic() - started < 10
    assert fault.wait_idle(3), "the flood was still being read"
    assert fault.bytes_sent < 50_000_000
    assert _rss_mb() - rss < 100, f"RSS grew {_rss_mb() - rss:.0f} MB"


def test_json_flood_is_not_read_past_its_budget(fault: FaultServer) -> None:
    fault.script(Flood())
    rss = _rss_mb()
    with pytest.raises(LLMTruncated) as info:
        complete(_model(fault), QUESTION, max_chars=5_000)
    assert info.value.text == "" and info.value.limit == 5_000
    assert fault.wait_idle(3)
    assert _rss_mb() - rss < 100, f"RSS grew {_rss_mb() - rss:.0f} MB"


def test_long_json_reply_is_cut_to_the_cap(fault: FaultServer) -> None:
    fault.script(Reply(text="word " * 2_000))
    with pytest.raises(LLMTruncated) as info:
        complete(_model(fault), QUESTION, max_chars=1_000)
    assert info.value.text == ("word " * 2_000)[:1_000]


def test_reply_of_exactly_the_cap_is_whole(fault: FaultServer) -> None:
    fault.script(Reply(text="a" * 1_000, chunks=7))
    assert "".join(stream_text(_model(fault), QUESTION, max_chars=1_000)) == "a" * 1_000


def test_default_cap_is_the_setting() -> None:
    assert DEFAULT_MAX_CHARS == Settings().llm_max_chars == 20_000
    assert Settings().answer_timeout == 60
