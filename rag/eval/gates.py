"""CI gates: METRIC=VALUE thresholds (from flags or a JSON/TOML file) checked against a summary."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from pathlib import Path

from rag.eval.metrics import METRICS


def _split_key(key: str) -> tuple[str | None, str]:
    """('label', 'metric') from 'label:metric', (None, 'metric') from 'metric'; ValueError on unknown metric."""
    label, sep, metric = key.strip().rpartition(":")
    metric = metric.strip()
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r} in threshold {key!r}; known metrics: {', '.join(METRICS)}.")
    return (label.strip() or None) if sep else None, metric


def parse_thresholds(items: Sequence[str] = (), file: str | Path | None = None) -> dict[str, float]:
    """Thresholds from a JSON/TOML file ({metric: value} or {thresholds: {...}}) then METRIC=VALUE items."""
    thresholds: dict[str, object] = {}
    if file is not None:
        path = Path(file)
        text = path.read_text(encoding="utf-8")
        try:
            data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"Cannot read thresholds from {path}: {exc}") from exc
        data = data.get("thresholds", data) if isinstance(data, dict) else data
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a table of metric = value thresholds.")
        thresholds.update(data)
    for item in items:
        key, sep, value = item.rpartition("=")
        if not sep or not key.strip():
            raise ValueError(f"Threshold {item!r} must look like METRIC=VALUE, e.g. hit@5=0.8.")
        thresholds[key.strip()] = value.strip()
    parsed: dict[str, float] = {}
    for key, raw in thresholds.items():
        _split_key(key)
        try:
            parsed[key] = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Threshold {key!r} needs a number, got {raw!r}.") from exc
    return parsed


def check_thresholds(summary: dict, thresholds: dict[str, float]) -> list[str]:
    """Violations of thresholds ('metric' applies to the first run, 'label:metric' to that run)."""
    runs: dict[str, dict] = summary["runs"]
    if not runs:
        raise ValueError("The summary holds no runs to check.")
    first = next(iter(runs))
    violations: list[str] = []
    for key, limit in thresholds.items():
        label, name = _split_key(key)
        label = label or first
        if label not in runs:
            raise ValueError(f"Threshold {key!r} names run {label!r}; runs: {', '.join(runs)}.")
        metric: dict = runs[label].get(name) or {}
        value = metric.get("value")
        if value is None:
            violations.append(f"{label}:{name} has no value (nothing to count), threshold {limit:g}")
            continue
        lower_is_better = METRICS[name][1]
        if (value > limit) if lower_is_better else (value < limit):
            count = f" ({metric['k']:g}/{metric['n']})" if metric.get("kind") == "rate" else ""
            word = "above the maximum" if lower_is_better else "below the minimum"
            violations.append(f"{label}:{name} = {value:.3f}{count} is {word} {limit:g}")
    return violations
