"""The evaluation's outputs: results.jsonl, summary.json (with a diff against a baseline), report.md/.html."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from rag.eval.metrics import METRICS, Metric, recall_curve
from rag.eval.render import write_reports
from rag.eval.run import RunResult
from rag.support import SUPPORT_TAU

log = logging.getLogger(__name__)


def _dump(metrics: dict[str, Metric]) -> dict[str, dict[str, object]]:
    """Metrics as plain JSON-ready dicts."""
    return {name: metric.model_dump() for name, metric in metrics.items()}


def baseline_diff(runs: dict[str, dict[str, dict]], baseline: dict) -> dict[str, dict[str, dict[str, float]]]:
    """Per run and metric: baseline value, current value and delta (same label, or the baseline's only run)."""
    base_runs: dict[str, dict] = baseline.get("runs", {})
    diff: dict[str, dict[str, dict[str, float]]] = {}
    for label, metrics in runs.items():
        base = base_runs.get(label) or (next(iter(base_runs.values())) if len(base_runs) == 1 else None)
        if base is None:
            continue
        diff[label] = {
            name: {"baseline": base[name]["value"], "now": m["value"], "delta": m["value"] - base[name]["value"]}
            for name, m in metrics.items()
            if name in base and m["value"] is not None and base[name].get("value") is not None
        }
    return diff


def build_summary(runs: Sequence[RunResult], baseline: dict | None = None) -> dict:
    """The summary.json document: metrics per run and category, failures, curves and the baseline diff."""
    metrics = {run.label: _dump(run.metrics) for run in runs}
    return {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "questions": len(runs[0].rows) if runs else 0,
        "support_tau": SUPPORT_TAU,
        "metrics_info": {name: {"description": d, "lower_is_better": low} for name, (d, low) in METRICS.items()},
        "runs": metrics,
        "per_category": {run.label: {c: _dump(m) for c, m in run.per_category.items()} for run in runs},
        "failures": {run.label: run.failures for run in runs},
        "curves": {run.label: recall_curve(run.rows) for run in runs},
        "baseline_diff": baseline_diff(metrics, baseline) if baseline is not None else None,
    }


def write_outputs(runs: Sequence[RunResult], out_dir: str | Path, baseline_dir: str | Path | None = None) -> dict:
    """Write results.jsonl, summary.json, report.md and report.html into out_dir; return the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    baseline = None
    if baseline_dir is not None:
        path = Path(baseline_dir) / "summary.json"
        if not path.is_file():
            raise FileNotFoundError(f"No baseline summary at {path}; run the evaluation there first.")
        baseline = json.loads(path.read_text(encoding="utf-8"))
    rows = [{"run": run.label, **row.model_dump()} for run in runs for row in run.rows]
    with (out / "results.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    summary = build_summary(runs, baseline)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_reports(out, summary, rows)
    log.info("wrote %s", out)
    return summary
