"""The benchmark's smoke run: every stage measured (or skipped with a reason), JSON and Markdown written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import bench

# Measured even in a smoke run; local-model and UI stages are skipped there (each with a note).
CORE = ["query_embedding", "ingest_total", "ingest_embed_rate", "ingest_store_rate", "cold_start", "answer_total",
        "retrieval_in_chain", "extractive_cold", "extractive_warm", "chain_overhead",
        *(f"{kind}@{size}" for size in ("abstracts", bench.SMOKE_SIZE)
          for kind in ("corpus_load", "retrieval_vector", "retrieval_bm25", "retrieval_fused", "recall5")),
        f"store_build@{bench.SMOKE_SIZE}", f"peak_rss@{bench.SMOKE_SIZE}", f"scale_load@{bench.SMOKE_SIZE}",
        f"scale_first@{bench.SMOKE_SIZE}", f"scale_answer@{bench.SMOKE_SIZE}"]
SKIPPABLE = {"first_run", "launch_ready", "ui_first_1", "ui_first_4", "local_load", "local_prompt_tokens",
             "local_ttft", "local_first_words", "reading_warm", "reading_first_text", "reading_time",
             "reading_overhead", "reading_tokens", "reading_answer", "writer_answer", "writer_words"}


def _numbers(arm: dict) -> list[float]:
    return [v for k, v in arm.items() if k != "n"]


@pytest.mark.slow
def test_smoke_run_reports_every_stage(tmp_path: Path) -> None:
    data = bench.run(out=tmp_path / "out", sizes=[10_000, 100_000], smoke=True, include_local=True,
                     cache_dir=tmp_path / "cache")

    saved = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert saved["meta"]["mode"] == "smoke" and saved["meta"]["sizes"] == [bench.SMOKE_SIZE]
    stages = {s["id"]: s for s in saved["stages"]}
    assert not [s for s in stages.values() if s["status"] == "error"], [s["note"] for s in stages.values()]
    for sid in CORE:
        assert stages[sid]["status"] == "ok", sid
    for stage in stages.values():
        if stage["status"] == "skipped":
            assert stage["id"] in SKIPPABLE and stage["note"], stage
            continue
        assert "ours" in stage["arms"], stage["id"]
        for arm, values in stage["arms"].items():
            nums = _numbers(values)
            assert nums and all(isinstance(v, (int, float)) and math.isfinite(v) for v in nums), (stage["id"], arm)
    for sid in ("query_embedding", f"retrieval_fused@{bench.SMOKE_SIZE}", "cold_start", "ingest_total"):
        assert set(stages[sid]["arms"]) == set(bench.ARMS), sid
        assert stages[sid]["ratios"]["ours/naive"] is not None, sid
    assert 0.0 <= stages[f"recall5@{bench.SMOKE_SIZE}"]["arms"]["ours"]["value"] <= 1.0
    assert {t["stage"] for t in saved["targets"]} >= {"cold_start", "ingest_total", "query_embedding"}
    assert data["targets"] == saved["targets"]

    md = (tmp_path / "out" / "bench.md").read_text()
    assert "| Stage | ours | naive | floor | ours÷naive | ours÷floor | target |" in md
    assert "## Targets" in md
    for stage in stages.values():
        assert stage["title"] in md
    assert (tmp_path / "cache").is_dir()  # synthetic corpus and store cached for reruns


def test_only_names_known_sections(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown section reading: choose from query embedding"):
        bench.run(out=tmp_path / "out", sizes=[], smoke=True, only=["reading"])
