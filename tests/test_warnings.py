"""A test run shows the warnings that are ours to act on, not ~420 of Gradio's and the benchmark stack's every time
(issue 27, item 14). The filters are pyproject.toml's, targeted by message and module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PROBE = """
import warnings


def test_probe():
    from gradio.queueing import Queue

    Queue._get_df([{"a": 1.0, "b": None}])  # what Gradio's queue runs for its stats on every event
    import langchain_community.retrievers  # noqa: F401 - the benchmark's naive arm
    warnings.warn("ours", DeprecationWarning, stacklevel=1)  # anything else still shows
"""


def test_third_party_deprecations_are_filtered_and_ours_are_not(tmp_path: Path) -> None:
    (tmp_path / "test_probe.py").write_text(PROBE)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
                           str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), str(tmp_path / "test_probe.py")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    out = proc.stdout
    assert proc.returncode == 0, out
    assert "1 passed, 1 warning" in out and "DeprecationWarning: ours" in out, out
    assert "Pandas4Warning" not in out and "langchain-community" not in out, out
