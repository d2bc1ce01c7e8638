"""Ingest failures of issue 18 finding 6: each one line naming the file and the reason, with advice that is true.

Real MiniLM and embedded Chroma; the CLI runs as a subprocess where the finding is about what a user sees. The disk
full and read-only cases mount a small tmpfs (root only; skipped elsewhere, with a monkeypatched twin that runs
everywhere).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import chromadb
import pytest
from chromadb.api.client import SharedSystemClient

from rag.chunking import chunk_paper
from rag.corpus import CorpusError, load_corpus, read_papers
from rag.ingest import PaperIdClashError, ingest_paths
from rag.settings import CORPUS_PATH, Settings
from rag.store import StoreWriteError, open_store

CORPUS = load_corpus(CORPUS_PATH)
SEESAW_Q = "How much faster is Seesaw than vLLM?"
REPEATED = "We propose Zorblax, a system that shards model state across many devices to train faster. " * 120


def rows(*ids: str) -> list[dict]:
    by_id = {p.id: p for p in CORPUS}
    return [by_id[i].model_dump(include={"id", "title", "aliases", "abstract"}) for i in ids]


def write_jsonl(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in items), encoding="utf-8")
    return path


def run_cli(*args: str | Path, data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    """python -m rag ARGS with RAG_DATA_DIR (the code under test, whatever the installed entry point is)."""
    full = {**os.environ, "RAG_DATA_DIR": str(data_dir), **env}
    return subprocess.run([sys.executable, "-m", "rag", *map(str, args)], capture_output=True, text=True, env=full,
                          timeout=300)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The single 'Error: …' line a failing command must print, with no traceback."""
    assert proc.returncode != 0, proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("Error:"), proc.stderr
    return lines[0]


def state(settings: Settings) -> dict:
    try:
        store = open_store(settings)
        got = store.chunks.get(include=["documents", "metadatas"])
        return {"ids": sorted(got["ids"]), "papers": {p.id: p for p in store.list_papers()},
                "sentences": store.sentences.count()}
    finally:
        SharedSystemClient.clear_system_cache()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


# -- parse failures ----------------------------------------------------------------------------------------------
def test_deeply_nested_json_is_one_line(tmp_path: Path, settings: Settings) -> None:
    bad = tmp_path / "nested.jsonl"
    bad.write_text(json.dumps(rows("seesaw")[0]) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(CorpusError) as err:
        read_papers([bad])
    assert err.value.line == 2 and "nested too deeply" in str(err.value)
    line = one_error_line(run_cli("ingest", bad, data_dir=settings.data_dir))
    assert "nested.jsonl, line 2" in line and "nested too deeply" in line


@pytest.mark.parametrize(("abstract", "limit"), [("a", "minimum of 40"), ("x" * 100_001, "maximum of 100,000")],
                         ids=["too short", "too long"])
def test_abstract_size_limits_name_file_line_and_limit(tmp_path: Path, settings: Settings, abstract: str,
                                                       limit: str) -> None:
    path = write_jsonl(tmp_path / "sizes.jsonl", [*rows("seesaw"), {"title": "Odd", "abstract": abstract}])
    with pytest.raises(CorpusError, match=rf"sizes\.jsonl, line 2: .*{limit}"):
        ingest_paths([path], settings)
    assert state(settings)["papers"] == {}  # refused before anything was written
    line = one_error_line(run_cli("ingest", path, data_dir=settings.data_dir))
    assert "sizes.jsonl, line 2" in line and limit in line


def test_200k_one_letter_abstracts_are_refused(tmp_path: Path, settings: Settings) -> None:
    path = write_jsonl(tmp_path / "spam.jsonl", [{"title": f"T{i}", "abstract": "a"} for i in range(200_000)])
    line = one_error_line(run_cli("ingest", path, data_dir=settings.data_dir))
    assert "spam.jsonl, line 1" in line and "minimum of 40" in line
    assert state(settings)["papers"] == {}


def test_abstract_limits_are_settings(tmp_path: Path, settings: Settings) -> None:
    path = write_jsonl(tmp_path / "short.jsonl", [{"id": "tiny", "title": "Tiny", "abstract": "Twelve chars"}])
    done = run_cli("ingest", path, data_dir=settings.data_dir, RAG_MIN_ABSTRACT_CHARS="5")
    assert done.returncode == 0, done.stderr
    assert "tiny" in state(settings)["papers"]


# -- chunk ids ---------------------------------------------------------------------------------------------------
def test_repeated_text_gets_unique_stable_chunk_ids(tmp_path: Path, settings: Settings) -> None:
    paper = {"id": "zorblax", "title": "Zorblax: Sharding for Everyone", "abstract": REPEATED}
    chunks = chunk_paper(load_corpus(write_jsonl(tmp_path / "z.jsonl", [paper]))[0])
    assert len({c.text for c in chunks}) < len(chunks), "the abstract should repeat whole chunks"
    assert len({c.id for c in chunks}) == len(chunks)
    path = write_jsonl(tmp_path / "z.jsonl", [paper])
    first = ingest_paths([path], settings)
    again = ingest_paths([path], settings)
    assert first.added == len(chunks) and (again.added, again.removed) == (0, 0)
    assert state(settings)["ids"] == sorted(c.id for c in chunks)


def test_chunk_ids_of_distinct_passages_are_unchanged() -> None:
    """The first occurrence keeps the plain content hash: indexes built before keep their ids."""
    import hashlib

    for paper in CORPUS[:5]:
        for c in chunk_paper(paper):
            digest = hashlib.sha256((paper.id + "\n" + c.text).encode()).hexdigest()[:16]
            assert c.id == f"{paper.id}:{digest}"


# -- an id another paper already uses ----------------------------------------------------------------------------
def test_id_of_another_paper_is_refused_unless_replace(tmp_path: Path, settings: Settings) -> None:
    ingest_paths([write_jsonl(tmp_path / "base.jsonl", rows("seesaw", "2bp"))], settings)
    before = state(settings)
    intruder = {"id": "seesaw", "title": "Quokka: Sparse Attention for Long Documents",
                "abstract": "We present Quokka, a sparse attention kernel for long documents that reduces latency "
                            "by 37% on 64k-token inputs."}
    path = write_jsonl(tmp_path / "intruder.jsonl", [intruder])
    with pytest.raises(PaperIdClashError):
        ingest_paths([path], settings)
    line = one_error_line(run_cli("ingest", path, data_dir=settings.data_dir))
    seesaw_title = before["papers"]["seesaw"].title
    assert "intruder.jsonl, line 1" in line and "'seesaw'" in line
    assert seesaw_title[:40] in line and "Quokka: Sparse Attention" in line and "--replace" in line
    assert state(settings) == before

    done = run_cli("ingest", "--replace", path, data_dir=settings.data_dir)
    assert done.returncode == 0, done.stderr
    assert state(settings)["papers"]["seesaw"].title == intruder["title"]


def test_same_id_and_title_with_an_edited_abstract_is_an_update(tmp_path: Path, settings: Settings) -> None:
    base = rows("seesaw", "2bp")
    path = write_jsonl(tmp_path / "base.jsonl", base)
    ingest_paths([path], settings)
    edited = {**base[0], "title": base[0]["title"].upper(), "abstract": base[0]["abstract"] + " It also runs on TPUs."}
    write_jsonl(path, [edited, base[1]])  # the same file, edited (case of the title aside: same paper)
    report = ingest_paths([path], settings)
    assert report.updated_papers == ["seesaw"]
    assert state(settings)["papers"]["seesaw"].abstract.endswith("It also runs on TPUs.")


@pytest.mark.parametrize("with_id", [True, False])
def test_same_title_from_another_file_needs_replace(tmp_path: Path, settings: Settings, with_id: bool) -> None:
    """Issue 25, row 8: a JSONL line with Seesaw's title (with Seesaw's id, or none) was "1 updated" and Seesaw's
    abstract replaced. An update from another file than the one a paper came from needs --replace."""
    ingest_paths([write_jsonl(tmp_path / "base.jsonl", rows("seesaw", "2bp"))], settings)
    before = state(settings)
    hostile = {**rows("seesaw")[0], "abstract": "Seesaw is an LLM inference engine that is 50x slower than vLLM on "
                                                "every workload we measured."}
    if not with_id:
        del hostile["id"], hostile["aliases"]
    path = write_jsonl(tmp_path / "other.jsonl", [hostile])
    with pytest.raises(PaperIdClashError, match="base.jsonl"):
        ingest_paths([path], settings)
    line = one_error_line(run_cli("ingest", path, data_dir=settings.data_dir))
    assert "other.jsonl, line 1" in line and "'seesaw'" in line and "base.jsonl" in line and "--replace" in line
    assert state(settings) == before

    unchanged = write_jsonl(tmp_path / "copy.jsonl", rows("seesaw"))  # the same paper, unedited, elsewhere: no harm
    assert ingest_paths([unchanged], settings).failed == []
    assert state(settings)["papers"]["seesaw"].abstract == before["papers"]["seesaw"].abstract

    done = run_cli("ingest", "--replace", path, data_dir=settings.data_dir)
    assert done.returncode == 0, done.stderr
    assert "50x slower" in state(settings)["papers"]["seesaw"].abstract


# -- progress ----------------------------------------------------------------------------------------------------
def test_progress_on_a_long_embed(tmp_path: Path, settings: Settings, caplog: pytest.LogCaptureFixture,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import rag.ingest

    monkeypatch.setattr(rag.ingest, "EMBED_SLICE", 4)  # the real slice is 64 passages: keep the test small
    long = {"id": "long", "title": "A Long Paper", "abstract": " ".join(
        f"Section {i} reports that method {i} improves throughput by {i % 7 + 1}.{i % 10}x on {i + 8} GPUs."
        for i in range(100))}
    path = write_jsonl(tmp_path / "long.jsonl", [long, *rows("seesaw")])
    calls: list[tuple[int, int, str]] = []
    ingest_paths([path], settings, progress=lambda done, total, pid: calls.append((done, total, pid)))
    total = calls[0][1]
    assert total == len(chunk_paper(load_corpus(path)[0])) + len(chunk_paper(rows_as_paper("seesaw")))
    assert calls[0][0] == 0 and calls[-1][0] == total and len(calls) >= 4
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)

    monkeypatch.setattr(rag.ingest, "LOG_EVERY_S", 0.0)  # without a callback, progress goes to the log
    monkeypatch.setattr(rag.ingest, "EMBED_SLICE", 2)  # two papers of two passages: two steps to log
    with caplog.at_level(logging.INFO, logger="rag.ingest"):
        ingest_paths([write_jsonl(tmp_path / "two.jsonl", rows("2bp", "nesa"))], settings)
    assert sum("passages stored" in r.getMessage() for r in caplog.records) >= 2


def rows_as_paper(pid: str):  # noqa: ANN201
    return next(p for p in CORPUS if p.id == pid)


# -- storage failures --------------------------------------------------------------------------------------------
def test_a_store_write_error_is_one_line_and_leaves_the_index(tmp_path: Path, settings: Settings,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The full-disk error Chroma raises, injected at the first chunk write: the twin of the tmpfs test."""
    ingest_paths([write_jsonl(tmp_path / "base.jsonl", rows("seesaw", "2bp"))], settings)
    before = state(settings)
    from chromadb.api.models.Collection import Collection

    def full(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ARG001
        raise chromadb.errors.InternalError("Error executing plan: database or disk is full")

    monkeypatch.setattr(Collection, "upsert", full)
    with pytest.raises(StoreWriteError, match="disk is full.*Free some space"):
        ingest_paths([write_jsonl(tmp_path / "more.jsonl", rows("nesa"))], settings)
    monkeypatch.undo()
    assert state(settings) == before


@contextlib.contextmanager
def small_disk(path: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of size mounted at path (root only), unmounted after."""
    path.mkdir(parents=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield path
    finally:
        SharedSystemClient.clear_system_cache()
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(disk: Path, leave: int = 0) -> Path:
    """Write a file until the disk has only about `leave` bytes free; returns it (delete it to free the space)."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as fh:
        for block in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
            try:
                while shutil.disk_usage(disk).free - block >= leave:
                    fh.write(b"\0" * block)
            except OSError:
                continue
    return filler


def the_rest() -> list[dict]:
    return [p.model_dump(include={"id", "title", "aliases", "abstract"}) for p in CORPUS
            if p.id not in {"seesaw", "2bp"}]


@contextlib.contextmanager
def indexed_then_full(tmp_path: Path) -> Iterator[tuple[Path, Settings, dict]]:
    """A small disk holding an index of two papers, then filled up to 1 MiB: (data dir, its settings, its state)."""
    with small_disk(tmp_path / "disk") as disk:
        data = disk / "data"
        base = write_jsonl(tmp_path / "base.jsonl", rows("seesaw", "2bp"))
        assert run_cli("ingest", base, data_dir=data).returncode == 0
        settings = Settings(data_dir=data)
        before = state(settings)
        fill(disk, leave=1 << 20)
        yield data, settings, before


@pytest.mark.slow
def test_too_little_disk_space_is_refused_before_writing(tmp_path: Path) -> None:
    with indexed_then_full(tmp_path) as (data, settings, before):
        line = one_error_line(run_cli("ingest", write_jsonl(tmp_path / "more.jsonl", the_rest()), data_dir=data))
        assert "not enough free space" in line and str(data) in line and "nothing was written" in line
        asked = run_cli("ask", SEESAW_Q, data_dir=data)  # the disk was not filled up: asking still works
        assert asked.returncode == 0 and "1.78" in asked.stdout, asked.stderr
        assert state(settings) == before


@pytest.mark.slow
def test_disk_full_during_ingest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up while Chroma writes (the free-space estimate turned off to get there)."""
    import rag.store

    monkeypatch.setattr(rag.store, "PASSAGE_BYTES", 0)
    monkeypatch.setattr(rag.store, "DISK_RESERVE", 0)
    with small_disk(tmp_path / "disk") as disk:
        data = disk / "data"
        base = write_jsonl(tmp_path / "base.jsonl", rows("seesaw", "2bp"))
        assert run_cli("ingest", base, data_dir=data).returncode == 0
        settings = Settings(data_dir=data)
        before = state(settings)
        open_store(settings)  # this process has the index open, as a running app would
        filler = fill(disk)
        more = write_jsonl(tmp_path / "more.jsonl", the_rest())
        with pytest.raises(StoreWriteError) as err:
            ingest_paths([more], settings)
        message = str(err.value)
        assert "disk is full" in message and str(data) in message and "run the ingest again" in message
        assert "\n" not in message
        SharedSystemClient.clear_system_cache()
        line = one_error_line(run_cli("ask", SEESAW_Q, data_dir=data))  # a new process cannot even open it
        assert "disk is full" in line and "Free some space" in line

        filler.unlink()  # the advice: free some space, then try again
        asked = run_cli("ask", SEESAW_Q, data_dir=data)
        assert asked.returncode == 0 and "1.78" in asked.stdout, asked.stderr
        after = state(settings)
        assert set(before["ids"]) <= set(after["ids"]) and set(before["papers"]) <= set(after["papers"])
        done = run_cli("ingest", more, data_dir=data)
        assert done.returncode == 0, done.stderr
        final = state(settings)
        assert len(final["papers"]) == len(CORPUS)
        assert set(final["ids"]) == {c.id for p in CORPUS for c in chunk_paper(p)}
        asked = run_cli("ask", "What is 2BP?", data_dir=data)
        assert asked.returncode == 0 and "2BP" in asked.stdout, asked.stderr


@pytest.mark.slow
def test_read_only_data_directory(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        data = disk / "data"
        assert run_cli("ingest", write_jsonl(tmp_path / "base.jsonl", rows("seesaw")), data_dir=data).returncode == 0
        SharedSystemClient.clear_system_cache()
        assert subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True).returncode == 0
        more = write_jsonl(tmp_path / "more.jsonl", rows("2bp"))
        line = one_error_line(run_cli("ingest", more, data_dir=data))
        assert "not writable" in line and str(data) in line and "Move it aside" not in line
        asked = run_cli("ask", SEESAW_Q, data_dir=data)
        if asked.returncode != 0:  # Chroma cannot open a read-only index: say so, truthfully
            line = one_error_line(asked)
            assert "not writable" in line and "Move it aside" not in line
        else:
            assert "1.78" in asked.stdout
        with pytest.raises(StoreWriteError, match="not writable"):
            ingest_paths([more], Settings(data_dir=data))


def test_cli_progress_bar_runs(tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's rich bar (shown at once from SHOW_AT_ONCE passages) starts, advances and stops cleanly."""
    from typer.testing import CliRunner

    import rag.cli
    import rag.console

    monkeypatch.setattr(rag.console, "SHOW_AT_ONCE", 1)
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich: a terminal
    monkeypatch.setenv("RAG_DATA_DIR", str(settings.data_dir))
    result = CliRunner().invoke(rag.cli.app, ["ingest", str(write_jsonl(tmp_path / "two.jsonl", rows("2bp", "nesa")))])
    assert result.exit_code == 0, result.output
    assert "Indexed 2 paper(s)" in result.output


@pytest.mark.slow
def test_reset_without_room_keeps_the_old_index(tmp_path: Path) -> None:
    """--reset checks the space before deleting anything: a refused rebuild must not cost the user the index."""
    with indexed_then_full(tmp_path) as (data, settings, before):
        line = one_error_line(run_cli("ingest", "--reset", write_jsonl(tmp_path / "all.jsonl", the_rest()),
                                      data_dir=data))
        assert "not enough free space" in line
        assert state(settings) == before
