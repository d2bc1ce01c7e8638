"""Ingest at scale: a `paperchat ingest` killed with SIGKILL part-way is finished by a rerun that embeds only what
the killed run had not stored, and the CLI shows passages done/total, the rate and the time left.

Real MiniLM and embedded Chroma; the CLI runs as a subprocess (its stderr is a pipe: the line-per-tenth progress).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chromadb.api.client import SharedSystemClient

from rag.chunking import chunk_paper
from rag.corpus import read_papers
from rag.ingest import sentence_rows
from rag.settings import Settings
from rag.store import get_all, open_store

PAPERS = 270  # one passage each: above the CLI's show-at-once threshold (256 passages)
WORDS = ("pipeline parallel batch gradient tensor memory throughput latency kernel cache scheduler token decoding "
         "speculative quantization attention sparse expert routing shard replica optimizer").split()
PROGRESS = re.compile(r"^Indexing: (\d+)/(\d+) passages \((\d+)%\), ([\d.]+)/s(?:, about (\w+) left)?$")
SUMMARY = re.compile(r"(\d+) passage\(s\) embedded, (\d+) sentence vector\(s\)")


def synthetic_papers(path: Path, n: int = PAPERS, seed: int = 7) -> Path:
    """n small distinct papers (three sentences each) as JSONL."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            sentences = [f"{' '.join(rng.choice(WORDS) for _ in range(10)).capitalize()} in system {i}-{k}."
                         for k in range(3)]
            f.write(json.dumps({"id": f"syn-{i:03d}", "title": f"Synthetic study {i} of {rng.choice(WORDS)}",
                                "abstract": " ".join(sentences)}) + "\n")
    return path


def cli(*args: str | Path, data_dir: Path, **env: str) -> subprocess.Popen:
    """python -m rag ARGS in a child process, stdout and stderr piped (not a terminal)."""
    return subprocess.Popen([sys.executable, "-m", "rag", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RAG_DATA_DIR": str(data_dir), **env})


def index_state(settings: Settings) -> dict:
    """Chunk and sentence ids, the passages stored per paper and the paper records' passage counts."""
    try:
        store = open_store(settings)
        chunks = get_all(store.chunks, ["metadatas"])
        per_paper: dict[str, int] = {}
        for m in chunks["metadatas"]:
            per_paper[str(m["paper_id"])] = per_paper.get(str(m["paper_id"]), 0) + 1
        return {"chunks": set(chunks["ids"]), "sentences": set(get_all(store.sentences, [])["ids"]),
                "per_paper": per_paper, "records": {r.paper.id: r.chunks for r in store.records()}}
    finally:  # no open handle while a subprocess writes
        SharedSystemClient.clear_system_cache()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.mark.slow
def test_a_killed_ingest_is_finished_by_a_rerun_that_embeds_only_the_rest(settings: Settings, tmp_path: Path) -> None:
    path = synthetic_papers(tmp_path / "papers.jsonl")
    papers = read_papers([path])
    chunks = [c for p in papers for c in chunk_paper(p, settings.chunk_tokens, settings.chunk_overlap)]
    want_chunks = {c.id for c in chunks}
    want_sentences = {row[0] for row in sentence_rows(chunks)}
    assert len(want_chunks) >= 256

    proc = cli("ingest", path, data_dir=settings.data_dir)
    seen = []
    for line in proc.stderr:  # type: ignore[union-attr]
        seen.append(line)
        if (m := PROGRESS.match(line.strip())) and int(m[3]) >= 20:
            time.sleep(random.uniform(0.0, 1.5))  # land anywhere in the next batch: embedding, upserts, records
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)

    killed = index_state(settings)
    assert 0 < len(killed["chunks"]) < len(want_chunks), "the kill came too late (or too early) to test anything"
    # chunks are written before their paper's record: a record only for a paper whose passages are all stored
    assert all(killed["per_paper"].get(pid, 0) == n for pid, n in killed["records"].items())

    rerun = cli("ingest", path, data_dir=settings.data_dir)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert f"{len(killed['chunks'])}/{len(want_chunks)} passages already stored, resuming" in err
    got = SUMMARY.search(out)
    assert got, out
    assert int(got[1]) == len(want_chunks - killed["chunks"])  # embedded now: exactly what the killed run had not
    assert int(got[2]) == len(want_sentences - killed["sentences"])

    final = index_state(settings)
    assert final["chunks"] == want_chunks and final["sentences"] == want_sentences
    assert final["records"] == {p.id: 1 for p in papers} == final["per_paper"]


@pytest.mark.slow
def test_ingest_progress_without_a_terminal_shows_done_total_rate_and_time_left(settings: Settings,
                                                                                tmp_path: Path) -> None:
    path = synthetic_papers(tmp_path / "papers.jsonl", seed=8)
    proc = cli("ingest", path, data_dir=settings.data_dir)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    view = [line for line in err.splitlines() if line.startswith("Preparing search: ")]  # the view, if it is slow
    lines = [PROGRESS.match(line) for line in err.splitlines() if line not in view]
    assert lines and all(lines), err  # nothing else on stderr
    done = [int(m[1]) for m in lines]  # type: ignore[index]
    assert done == sorted(done) and len(done) >= 5 and {int(m[2]) for m in lines} == {PAPERS}  # type: ignore[index]
    assert all(float(m[4]) > 0 for m in lines)  # type: ignore[index]
    assert f"{PAPERS} passage(s) embedded" in out

    again = cli("ingest", path, data_dir=settings.data_dir)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0 and err == "", err  # all stored: no progress lines, no 'resuming'
    assert f"0 passage(s) embedded, 0 sentence vector(s), 0 stale removed, {PAPERS} already stored" in out


@pytest.mark.slow
def test_ingest_progress_on_a_terminal_is_a_bar_with_rate_and_time_left(settings: Settings, tmp_path: Path) -> None:
    path = synthetic_papers(tmp_path / "papers.jsonl", seed=9)
    proc = cli("ingest", path, data_dir=settings.data_dir, FORCE_COLOR="1", COLUMNS="160")  # rich: a terminal
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", err)
    assert "Indexing" in plain and not PROGRESS.search(plain)  # the bar, not the lines
    assert re.search(rf"\b\d+/{PAPERS} passages +\d+\.\d/s +\d+:\d\d:\d\d", plain), plain[-2000:]
    assert f"{PAPERS} passage(s) embedded" in out
