"""The persisted retrieval view (issue 14): built once per index generation, loaded (not rebuilt) on open, never used
when it does not match the index, and the name index that replaced the per-question scan over every paper."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import bm25s
import numpy as np
import pytest

from rag.answer import Pipeline
from rag.corpus import load_corpus
from rag.ingest import ingest_paths
from rag.names import NameIndex, PaperList, title_words
from rag.retrieve import Index, make_retriever
from rag.settings import CORPUS_PATH, QUESTIONS_PATH, Settings
from rag.store import open_store
from rag.terms import bm25_tokens
from rag.text import content_words
from rag.types import Paper
from rag.view import KEEP, ViewManifest, view_root

HERE = Path(__file__).resolve().parent
CORPUS = load_corpus(CORPUS_PATH)
QUESTIONS = [json.loads(line)["question"] for p in sorted(QUESTIONS_PATH.parent.glob("questions*.jsonl"))
             for line in p.read_text().splitlines() if line.strip()]
NEW = {"id": "zebrafold", "title": "ZebraFold: Pipeline-Parallel Protein Folding on Commodity GPUs",
       "aliases": ["ZebraFold"], "abstract": "We present ZebraFold, a pipeline-parallel system for training protein "
       "folding models on commodity GPUs, reaching a 2.7x training speedup over a data-parallel baseline."}


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _rows(n: int) -> list[dict]:
    return [p.model_dump(include={"id", "title", "aliases", "abstract"}) for p in CORPUS[:n]]


def _views(settings: Settings) -> list[Path]:
    return sorted(p for p in view_root(settings).iterdir() if p.is_dir() and not p.name.startswith("."))


def _built(caplog: pytest.LogCaptureFixture) -> int:
    return sum("built the retrieval view" in r.getMessage() for r in caplog.records)


@pytest.fixture
def indexed(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data", view_check_seconds=0)
    ingest_paths([_jsonl(tmp_path / "base.jsonl", _rows(8))], settings)
    return settings


def test_ingest_saves_the_view_and_a_new_process_loads_it_without_deriving_anything(
        indexed: Settings, caplog: pytest.LogCaptureFixture) -> None:
    [folder] = _views(indexed)
    manifest = ViewManifest.model_validate_json((folder / "manifest.json").read_text())
    store = open_store(indexed)
    assert manifest.generation == store.generation() and manifest.count == store.chunks.count() > 0
    caplog.set_level(logging.INFO, logger="rag.view")
    index = Index(store, indexed)
    view = index.view()
    assert _built(caplog) == 0 and view.folder == folder
    assert [p.id for p in view.papers] == [p.id for p in CORPUS[:8]]
    assert make_retriever(index, indexed).search("What is 2BP?")[0].metadata["paper_id"] == "2bp"
    # Every passage's text and metadata come back from the memory-mapped records exactly as Chroma holds them.
    got = store.chunks.get(include=["documents", "metadatas"])
    for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True):
        assert view.row(view.pos[cid]) == (doc, dict(meta))


def test_a_write_gives_a_new_view_and_old_ones_are_pruned(indexed: Settings, tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    index = Index(open_store(indexed), indexed)
    first = index.view()
    caplog.set_level(logging.INFO, logger="rag.view")
    for i in range(KEEP + 1):
        paper = {**NEW, "id": f"zebrafold-{i}", "aliases": [f"ZebraFold{i}"]}
        ingest_paths([_jsonl(tmp_path / f"new{i}.jsonl", [paper])], Settings(data_dir=indexed.data_dir))
    assert _built(caplog) == KEEP + 1  # each ingest saved its generation's view
    view = index.view()
    assert view is not first and view.generation == open_store(indexed).generation()
    assert _built(caplog) == KEEP + 1  # the running index loaded the saved one
    assert "zebrafold-2" in [p.id for p in view.papers]
    assert len(_views(indexed)) == KEEP and view.folder in _views(indexed)
    assert first.row(0)  # a view a process still holds stays readable after its folder is pruned


@pytest.mark.parametrize("damage", ["truncate-rows", "count", "generation", "format", "garbage-manifest",
                                    "missing-bm25"])
def test_a_view_that_does_not_match_the_index_is_rebuilt_not_used(indexed: Settings, damage: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    [folder] = _views(indexed)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    count = manifest["count"]
    if damage == "truncate-rows":
        rows = folder / "rows.jsonl"
        rows.write_bytes(rows.read_bytes()[:100])
        idx = np.load(folder / "rows.jsonl.idx.npy")
        np.save(folder / "rows.jsonl.idx.npy", idx[:3])
    elif damage == "garbage-manifest":
        manifest_path.write_text("{not json")
    elif damage == "missing-bm25":
        shutil.rmtree(folder / "bm25")
    else:
        manifest.update({"count": manifest["count"] + 1} if damage == "count" else
                        {"generation": manifest["generation"] + "x"} if damage == "generation" else {"format": 0})
        manifest_path.write_text(json.dumps(manifest))
    caplog.set_level(logging.INFO, logger="rag.view")
    pipe = Pipeline(indexed)
    ans = pipe.answer("How much faster is 2BP?")
    assert _built(caplog) == 1 and any("rebuilding the retrieval view" in r.getMessage() for r in caplog.records)
    assert not ans.abstained and "2bp" in {s.paper_id for s in ans.sources} and any(s.citations for s in ans.sentences)
    rebuilt = ViewManifest.model_validate_json(manifest_path.read_text())
    assert rebuilt.generation == open_store(indexed).generation() and rebuilt.count == count


def test_a_view_copied_from_another_generation_is_refused(indexed: Settings, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    [old] = _views(indexed)
    saved = tmp_path / "old-view"
    shutil.copytree(old, saved)
    ingest_paths([_jsonl(tmp_path / "new.jsonl", [NEW])], Settings(data_dir=indexed.data_dir))
    [current] = [v for v in _views(indexed) if v.name != old.name]
    shutil.rmtree(current)
    shutil.copytree(saved, current)  # the old generation's files under the new generation's name
    caplog.set_level(logging.INFO, logger="rag.view")
    view = Index(open_store(indexed), indexed).view()
    assert _built(caplog) == 1 and "zebrafold" in [p.id for p in view.papers]


def test_the_bm25_index_loaded_from_disk_ranks_as_a_fresh_one(indexed: Settings) -> None:
    view = Index(open_store(indexed), indexed).view()
    fresh = bm25s.BM25()
    fresh.index([bm25_tokens(f"{view.row(i)[1]['title']} {view.row(i)[0]}") for i in range(view.count)],
                show_progress=False)
    assert isinstance(view.bm25.scores["data"], np.memmap)  # memory-mapped, not read into memory
    for q in QUESTIONS[:40]:
        tokens = bm25_tokens(q)
        if tokens:
            assert np.allclose(view.bm25.get_scores(tokens), fresh.get_scores(tokens))


def test_paper_filter_and_top_k_over_the_candidates_match_a_full_sort(indexed: Settings) -> None:
    index = Index(open_store(indexed), indexed)
    retriever, view = make_retriever(index, indexed), index.view()
    allowed = {"2bp", "seesaw", "gshard"}
    for q in QUESTIONS[:40]:
        tokens = bm25_tokens(q)
        if not tokens:
            continue
        scores = view.bm25.get_scores(tokens)
        mask = np.array([view.row(i)[1]["paper_id"] in allowed for i in range(view.count)])
        for fetch, sub in ((30, None), (5, allowed), (view.count + 5, None)):
            s = np.where(mask, scores, 0.0) if sub else scores
            expected = [view.ids[i] for i in np.argsort(-s, kind="stable")[:fetch] if s[i] > 0]
            got = retriever.keyword(q, fetch, sub, view)
            assert [s[view.pos[c]] for c in got] == [s[view.pos[c]] for c in expected]  # same scores, same order
            assert set(got) == set(expected) or len({s[view.pos[c]] for c in got}) < len(got)  # ties aside


def _mentioned_by_scanning(question: str, papers: list[Paper]) -> list[str]:
    """The scan over every paper that NameIndex replaced (kept here as the reference)."""
    q = question.lower()
    q_words = set(content_words(question))
    hits, by_title = [], []
    for p in papers:
        names = [*p.aliases, p.id] + ([p.id.replace("-", " ")] if "-" in p.id else [])
        positions = [m.start() for n in names if len(n) >= 2
                     for m in [re.search(rf"(?<![\w-]){re.escape(n.lower())}(?![\w])", q)] if m]
        if positions:
            hits.append((min(positions), p.id))
            continue
        tw = title_words(p.title)
        if len(tw) >= 2 and len(tw & q_words) >= max(2, int(0.6 * len(tw))):
            by_title.append(p.id)
    return [pid for _, pid in sorted(hits)] or by_title


def test_the_name_index_names_exactly_the_papers_a_scan_of_every_paper_names() -> None:
    odd = Paper(id="x-ray", title="(Re)Thinking X-Ray Sharding for Models", aliases=["(Re)Think", "X.Ray-2", "Ω-Net"],
                abstract="An abstract long enough to be a paper about x-ray sharding and more words here.")
    papers = [*CORPUS, odd]
    index = NameIndex(papers)
    questions = [*QUESTIONS, *(f"Compare {a} with {b.title}" for a, b in zip(
        [a for p in CORPUS for a in p.aliases], reversed(CORPUS), strict=False)),
        "What does (re)think say about x.ray-2 and ω-net?", "x ray vs X-Ray vs xray", "re-seesaw? seesaw-like?",
        "thinking x-ray sharding", "2BP2BP 2bp, GShard's gshard-"]
    for q in questions:
        assert index.mentioned(q) == _mentioned_by_scanning(q, papers), q
    assert PaperList(papers).names.mentioned("How does Seesaw work?") == ["seesaw"]


def test_a_pdf_body_is_read_when_its_paper_is_looked_up_not_held_in_the_paper_list(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    report = ingest_paths([HERE / "data" / "pdf" / "two-column.pdf"], settings)
    pid = report.paper_ids[0]
    view = Index(open_store(settings), settings).view()
    [listed] = [p for p in view.papers if p.id == pid]
    assert listed.body is None
    full = view.papers.by_id[pid]
    assert full.body is not None and len(full.body.text) > len(listed.abstract)


def test_a_missing_view_is_built_once_with_its_progress_reported(indexed: Settings) -> None:
    shutil.rmtree(view_root(indexed))
    calls: list[tuple[int, int, str]] = []
    pipe = Pipeline(indexed, view_progress=lambda done, total, what: calls.append((done, total, what)))
    pipe.open()
    count = open_store(indexed).chunks.count()
    phases = list(dict.fromkeys(what for _, _, what in calls))
    assert phases == ["sentence vectors", "passages", "words"]
    passages = [done for done, total, what in calls if what == "passages"]
    assert passages == sorted(passages) and passages[-1] == count and calls[-1] == (count, count, "words")
    calls.clear()
    Pipeline(indexed, view_progress=lambda *a: calls.append(a)).open()
    assert calls == []  # saved: loaded, not built again


def test_the_cli_reports_a_view_build_in_lines_without_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from rag.console import Progress

    progress = Progress("Preparing search", unit=None, rate=False)
    assert not progress.console.is_terminal  # pytest's capture is not a terminal
    for done in range(0, 1001, 50):
        progress(done, 1000, "passages")
    progress(40, 40, "words")  # done as soon as it starts: nothing to show
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 11 and err[0] == "Preparing search: 50/1000 passages (5%)"
    assert err[-1] == "Preparing search: 1000/1000 passages (100%)"


def test_opening_reads_the_hot_files_ahead_and_warms_the_stages_without_asking_the_llm(
        indexed: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from tests.llm_fixtures import FakeChatModel

    advised: list[tuple[str, int]] = []
    real = os.posix_fadvise

    def recording(fd: int, offset: int, length: int, advice: int) -> None:
        advised.append((os.readlink(f"/proc/self/fd/{fd}"), advice))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", recording)
    model = FakeChatModel(replies=["unused"], prompts=[])
    pipe = Pipeline(indexed.model_copy(update={"answerer": "openai"}), chat_model=model)
    pipe.open()
    view = pipe.index.view()
    view.prefetch().join(10)
    names = {str(p.relative_to(view.folder)) for p in view.hot_files()}
    assert names == {"bm25/data.csc.index.npy", "bm25/indices.csc.index.npy", "vectors.npy", "rows.jsonl",
                     "sentences.npy"}  # every file a question reads at random, under today's names (the records'
    # offsets are loaded whole at open)
    assert {(str(p), os.POSIX_FADV_WILLNEED) for p in view.hot_files()} <= set(advised)
    assert model.prompts == []  # the warm-up question ran analysis, retrieval and decision only
    shutil.rmtree(view.folder)
    gone = view.prefetch()
    gone.join(10)
    assert not gone.is_alive()  # a pruned view has nothing to read ahead, and that is no error


def test_rows_are_read_by_number_exactly_as_saved_without_mapping_the_file(tmp_path: Path) -> None:
    from rag.view import Rows

    rng = np.random.default_rng(7)
    matrix = rng.standard_normal((40_000, 384)).astype(np.float32)  # 61 MB, like 40k sentence vectors
    np.save(tmp_path / "m.npy", matrix)
    rows = Rows(tmp_path / "m.npy")
    assert len(rows) == 40_000 and rows.shape == (40_000, 384)
    pick = [5, 3, 4, 39_999, 0, 3, 6]  # out of order, repeated, runs of neighbours
    assert np.array_equal(rows[pick], matrix[pick])
    assert rows[[]].shape == (0, 384)
    with pytest.raises(IndexError):
        rows[[40_000]]
    with (tmp_path / "m.npy").open("rb") as f:  # the whole file in the page cache, as after prefetch
        while f.read(1 << 24):
            pass

    def file_backed_mb() -> int:
        status = Path("/proc/self/status")
        return next(int(line.split()[1]) // 1024 for line in status.read_text().splitlines()
                    if line.startswith("RssFile"))

    if not Path("/proc/self/status").exists():
        return
    before = file_backed_mb()
    random_rows = rng.choice(40_000, size=2_000, replace=False)
    assert np.array_equal(rows[random_rows], matrix[random_rows])
    assert file_backed_mb() - before < 8  # a memory map of it grows by most of the file's 61 MB here
