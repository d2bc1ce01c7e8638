"""Soak: 40 gradio_client users on the real chat app over a `chroma run` server while `paperchat ingest` adds papers.

Issue 18: "Keep the load test and run a 60 s soak with 40 users while an ingest runs against the Chroma server,
with 0 errors". Everything is a real process on 127.0.0.1: the Chroma server, the chat app (`python -m rag chat`
with RAG_CHROMA_URL) and two ingests from another process partway through (3 new papers, then one abstract edited).
Each user asks a rotating set of ordinary questions and waits for its answer before asking the next (closed loop,
as a person does). Errors: any exception (including "Queue is full"), a "Something went wrong" answer, an empty
answer, or a traceback in the app's log. After each ingest the same running app must answer about the new paper
citing it. Figures (answers, p50/p95, RSS before/after, ingest durations) go to the log, the assertion messages
and soak.json in the test's tmp dir.

PAPERCHAT_SOAK_SECONDS sets the soak length (default 60; 30 when CI is not set), PAPERCHAT_SOAK_USERS the users
(default 40), PAPERCHAT_SOAK_THINK the seconds a user waits between answer and next question (default 0).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT

from rag.proc import free_port, stop_process, wait_http
from rag.settings import QUESTIONS_PATH

log = logging.getLogger("soak")
pytestmark = pytest.mark.slow

USERS = int(os.environ.get("PAPERCHAT_SOAK_USERS", "40"))
SECONDS = float(os.environ.get("PAPERCHAT_SOAK_SECONDS", "60" if os.environ.get("CI") else "30"))
THINK = float(os.environ.get("PAPERCHAT_SOAK_THINK", "0"))
REQUEST_TIMEOUT = 120.0  # one answer; a longer wait counts as an error
GENERIC = "Something went wrong"
CHROMA = Path(sys.executable).with_name("chroma")

# Ordinary questions: the test set's single-turn, answerable ones (every 3rd, so ~20 in rotation).
QUESTIONS = [q for q in (json.loads(line) for line in QUESTIONS_PATH.read_text().splitlines() if line.strip())
             if not q["history"] and not q["expect_abstain"]][::3]

NEW_PAPERS = [
    {"id": "kestrel", "title": "Kestrel: Draft Trees for Speculative Decoding on Edge GPUs", "aliases": ["Kestrel"],
     "abstract": "We present Kestrel, a speculative decoding system that grows draft trees sized to the memory of "
                 "edge GPUs. On a Jetson Orin, Kestrel speeds up decoding by 2.6x over autoregressive decoding "
                 "for 7B models while producing identical outputs."},
    {"id": "marmot", "title": "Marmot: Delta Compression of Checkpoints for Elastic Training", "aliases": ["Marmot"],
     "abstract": "Marmot stores training checkpoints as compressed deltas against the previous checkpoint. "
                 "Marmot reduces checkpoint storage by 71% and restart time by 3.4x on elastic clusters of "
                 "spot instances, with no change to the training loop."},
    {"id": "ternlog", "title": "TernLog: Learned Partitions for Billion-Scale Vector Search", "aliases": ["TernLog"],
     "abstract": "TernLog learns the partitions of an inverted-file vector index from the query log. TernLog "
                 "cuts the number of probed partitions by 45% at equal recall on a billion-vector benchmark "
                 "and needs a single retraining per week."},
]
KESTREL_Q = "How much does Kestrel speed up decoding?"
FIRST_FACT, EDITED_FACT = "2.6x", "3.1x"
VISIBLE_WITHIN = 20.0  # seconds after an ingest by which the running app must answer about the new paper


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (psutil when installed, else /proc/<pid>/status VmRSS)."""
    try:
        import psutil

        return round(psutil.Process(pid).memory_info().rss / 2**20, 1)
    except ImportError:
        match = re.search(r"^VmRSS:\s+(\d+)\s+kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
        return round(int(match.group(1)) / 1024, 1) if match else float("nan")


def start(stack: ExitStack, args: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start a long-lived process with its output in log_path; stopped when the stack closes (even on failure)."""
    out = stack.enter_context(open(log_path, "w"))  # noqa: SIM115 - closed by the stack after the process stops
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    stack.callback(stop_process, proc, 10)
    return proc


def ingest(env: dict[str, str], paths: list[Path], timeout: float = 300) -> tuple[float, str, str]:
    """Run `python -m rag ingest` in another process; returns (wall seconds, its summary line, what went wrong)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "rag", "ingest", *map(str, paths)], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out, err = "", f"did not finish within {timeout} s"
    finally:
        stop_process(proc, 10)
    failed = "" if proc.returncode == 0 and "Traceback" not in err else f"exit {proc.returncode}: {err[-2000:]}"
    lines = out.strip().splitlines()
    return time.perf_counter() - t0, lines[-1] if lines else "", failed


def cited(answer: dict) -> set[str]:
    """Papers the answer's sentences cite."""
    by_n = {s["n"]: s["paper_id"] for s in answer["sources"]}
    return {by_n[n] for s in answer["sentences"] for n in s["citations"] if n in by_n}


def problem(answer: Any) -> str | None:
    """Why an /ask reply counts as an error, or None when it is a proper answer."""
    if not isinstance(answer, dict) or not isinstance(answer.get("answer"), str):
        return f"not an answer: {str(answer)[:200]}"
    if not answer["answer"].strip():
        return "empty answer"
    if GENERIC in answer["answer"] or GENERIC in answer.get("notice", ""):
        return f"generic error: {answer['answer'][:200]}"
    return None


@dataclass
class Tally:
    """What the users saw, shared by their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    abstained: int = 0
    off_gold: int = 0
    per_user: dict[int, int] = field(default_factory=dict)

    def add(self, user: int, seconds: float, question: dict, answer: Any = None, error: str | None = None) -> None:
        with self.lock:
            error = error or problem(answer)
            if error:
                self.errors.append(f"user {user}, {question['id']} {question['question']!r}: {error}")
                return
            self.latencies.append(seconds)
            self.per_user[user] = self.per_user.get(user, 0) + 1
            self.abstained += bool(answer["abstained"])
            self.off_gold += not set(question["gold_papers"]) & {s["paper_id"] for s in answer["sources"]}


def user(i: int, url: str, tally: Tally, ready: threading.Barrier, go: threading.Event, end: threading.Event) -> None:
    """One person: own client, questions in rotation from a random start, each asked after the last is answered."""
    from gradio_client import Client

    try:
        client = Client(url, verbose=False, httpx_kwargs={"timeout": REQUEST_TIMEOUT})
    except Exception as exc:  # noqa: BLE001 - a user who cannot connect is an error, not a crash of the test
        with tally.lock:
            tally.errors.append(f"user {i}: cannot connect: {type(exc).__name__}: {exc}")
        client = None
    try:
        ready.wait(timeout=300)
    except threading.BrokenBarrierError:
        return
    if client is None:
        return
    go.wait(timeout=300)
    n = random.Random(i).randrange(len(QUESTIONS))
    while not end.is_set():
        q = QUESTIONS[n % len(QUESTIONS)]
        n += 1
        t0 = time.perf_counter()
        try:
            job = client.submit(q["question"], None, "extractive", None, None, False, api_name="/ask")
            answer = job.result(timeout=REQUEST_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
            tally.add(i, time.perf_counter() - t0, q, error=f"{type(exc).__name__}: {exc}")
        else:
            tally.add(i, time.perf_counter() - t0, q, answer)
        if THINK:
            end.wait(THINK)
    client.close()


def ask_until(client: Any, question: str, fact: str, paper: str, within: float,
              errors: list[str]) -> tuple[float, int, dict]:
    """Ask through the running app until the answer states fact citing paper (or `within` runs out); returns the
    seconds until it did (each ask waits its turn in the app's queue behind the users), the asks and the answer."""
    t0 = time.perf_counter()
    answer: dict = {"answer": ""}
    asks = 0
    while time.perf_counter() - t0 < within:
        asks += 1
        try:
            answer = client.predict(question, None, "extractive", None, None, False, api_name="/ask")
        except Exception as exc:  # noqa: BLE001 - counted with the users' errors
            errors.append(f"probe {question!r}: {type(exc).__name__}: {exc}")
        else:
            if problem(answer):
                errors.append(f"probe {question!r}: {problem(answer)}")
            elif fact in answer["answer"] and paper in cited(answer):
                return time.perf_counter() - t0, asks, answer
        time.sleep(0.5)
    return float("inf"), asks, answer


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    """Every process the test starts is stopped here, whatever happened."""
    with ExitStack() as s:
        yield s


def test_soak_40_users_while_ingesting(stack: ExitStack, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from gradio_client import Client

    caplog.set_level(logging.INFO, logger="soak")

    assert 8 <= len(QUESTIONS) <= 40, len(QUESTIONS)
    chroma_port, app_port = free_port(), free_port()
    chroma_url, app_url = f"http://127.0.0.1:{chroma_port}", f"http://127.0.0.1:{app_port}/"
    env = {**os.environ, "RAG_CHROMA_URL": chroma_url, "RAG_DATA_DIR": str(tmp_path / "data"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    chroma = start(stack, [str(CHROMA), "run", "--path", str(tmp_path / "db"), "--host", "127.0.0.1",
                           "--port", str(chroma_port)], tmp_path / "chroma.log", env)
    wait_http(f"{chroma_url}/api/v2/heartbeat", proc=chroma)

    t0 = time.perf_counter()
    corpus_s, corpus_line, failed = ingest(env, [])  # the bundled corpus into the server
    assert not failed, f"ingest of the bundled corpus failed: {failed}"
    log.info("soak: bundled corpus ingested in %.1f s: %s", corpus_s, corpus_line)

    app_log = tmp_path / "app.log"
    app = start(stack, [sys.executable, "-m", "rag", "chat", "--port", str(app_port)], app_log, env)
    wait_http(app_url, timeout=180, proc=app)
    app_ready_s = time.perf_counter() - t0
    probe = Client(app_url, verbose=False, httpx_kwargs={"timeout": REQUEST_TIMEOUT})
    stack.callback(probe.close)
    baseline = probe.predict(KESTREL_Q, None, "extractive", None, None, False, api_name="/ask")
    assert "kestrel" not in cited(baseline) and FIRST_FACT not in baseline["answer"]  # not indexed yet
    time.sleep(3)  # let the app's background warm-up finish before measuring memory
    rss_before = {"app_mb": rss_mb(app.pid), "chroma_mb": rss_mb(chroma.pid)}

    path = tmp_path / "new-papers.jsonl"  # ingested, then edited and ingested again (only its own file updates it)
    kestrel = {**NEW_PAPERS[0], "abstract": NEW_PAPERS[0]["abstract"].replace(FIRST_FACT, EDITED_FACT)}
    first = "".join(json.dumps(p) + "\n" for p in NEW_PAPERS)
    edited = "".join(json.dumps(p) + "\n" for p in [kestrel, *NEW_PAPERS[1:]])

    tally = Tally()
    ready, go, end = threading.Barrier(USERS + 1), threading.Event(), threading.Event()
    threads = [threading.Thread(target=user, args=(i, app_url, tally, ready, go, end), daemon=True,
                                name=f"soak-user-{i}") for i in range(USERS)]
    stack.callback(end.set)  # on any failure below the users stop asking
    for t in threads:
        t.start()
    ready.wait(timeout=300)
    soak_t0 = time.perf_counter()
    go.set()

    ingests: list[dict] = []
    probe_errors: list[str] = []
    for at, text, fact in ((0.1, first, FIRST_FACT), (0.5, edited, EDITED_FACT)):  # the 2nd waits for the 1st
        end.wait(max(0.0, soak_t0 + at * SECONDS - time.perf_counter()))
        path.write_text(text)
        started = time.perf_counter() - soak_t0
        seconds, line, failed = ingest(env, [path])
        visible, asks, answer = ask_until(probe, KESTREL_Q, fact, "kestrel", VISIBLE_WITHIN, probe_errors)
        own = re.search(r"\(([\d.]+)s\)\.?$", line)  # the ingest's own timing, without process start-up
        ingests.append({"file": path.name, "started_at_s": round(started, 1), "seconds": round(seconds, 2),
                        "indexing_s": float(own.group(1)) if own else None, "summary": line, "failed": failed,
                        "visible_after_s": round(visible, 2), "asks_until_visible": asks,
                        "answer": answer["answer"][:300]})
        log.info("soak: ingest %s at %.1f s took %.1f s (%s); new fact visible after %.1f s", path.name, started,
                 seconds, line, visible)
    end.wait(max(0.0, soak_t0 + SECONDS - time.perf_counter()))
    end.set()
    for t in threads:
        t.join(timeout=REQUEST_TIMEOUT + 10)
    soak_s = time.perf_counter() - soak_t0
    alive = [t.name for t in threads if t.is_alive()]
    rss_after = {"app_mb": rss_mb(app.pid), "chroma_mb": rss_mb(chroma.pid)}
    after_edit: dict = {"answer": "", "sources": [], "sentences": []}
    listed: dict[str, dict] = {}
    try:  # the same running app, after both ingests: the edited abstract, every new paper listed
        after_edit = probe.predict(KESTREL_Q, None, "extractive", None, None, False, api_name="/ask")
        listed = {p["id"]: p for p in probe.predict(api_name="/papers")}
    except Exception as exc:  # noqa: BLE001 - reported with the figures below
        probe_errors.append(f"final probe: {type(exc).__name__}: {exc}")
    app_text = app_log.read_text(errors="replace")

    lat = sorted(tally.latencies)
    report = {
        "users": USERS, "seconds": round(soak_s, 1), "think_s": THINK, "questions_in_rotation": len(QUESTIONS),
        "answers": len(lat), "errors": len(tally.errors), "answers_per_s": round(len(lat) / soak_s, 2),
        "p50_s": round(statistics.median(lat), 3) if lat else None,
        "p95_s": round(lat[int(0.95 * (len(lat) - 1))], 3) if lat else None,
        "max_s": round(lat[-1], 3) if lat else None,
        "min_answers_per_user": min((tally.per_user.get(i, 0) for i in range(USERS)), default=0),
        "abstained": tally.abstained, "off_gold_paper": tally.off_gold,
        "rss_before": rss_before, "rss_after": rss_after,
        "corpus_ingest_s": round(corpus_s, 1), "app_ready_s": round(app_ready_s, 1), "ingests": ingests,
        "papers_listed": len(listed), "app_log_tracebacks": app_text.count("Traceback"), "users_still_running": alive,
        "probe_errors": probe_errors[:10], "first_errors": tally.errors[:10],
    }
    out = tmp_path / "soak.json"
    out.write_text(json.dumps(report, indent=2))
    log.info("soak: %s", json.dumps(report))
    log.info("soak: figures written to %s", out)
    print(f"\nsoak: {json.dumps(report)}\nsoak: figures in {out}")

    assert not tally.errors and not probe_errors, f"{len(tally.errors) + len(probe_errors)} error(s): {report}"
    assert not any(ing["failed"] for ing in ingests), f"an ingest failed: {report}"
    assert not alive, f"users did not finish: {report}"
    assert "Traceback" not in app_text, f"the app logged a traceback: {app_text[-3000:]} {report}"
    assert lat and min(tally.per_user.get(i, 0) for i in range(USERS)) >= 1, f"a user got no answer: {report}"
    for ing in ingests:
        assert ing["visible_after_s"] <= VISIBLE_WITHIN, f"the running app did not answer about the new paper: {ing}"
    edited_answer = after_edit["answer"]
    assert EDITED_FACT in edited_answer and FIRST_FACT not in edited_answer, (edited_answer, report)
    assert "kestrel" in cited(after_edit), (edited_answer, report)
    assert {p["id"] for p in NEW_PAPERS} <= set(listed), (sorted(listed), report)
    assert EDITED_FACT in listed["kestrel"]["abstract"], (listed["kestrel"], report)
