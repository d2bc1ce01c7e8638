"""Time paperchat's start-up against the floor measured in the same run (issue 17, item 5).

    RAG_DATA_DIR=<an index> python tools/startup_times.py [--runs 5] [--paperchat "python -m rag"]

Each command runs in a fresh process, interleaved, --runs times; the minimum is reported (the machine's
noise only ever adds time). The floors are what no implementation can avoid: the bare interpreter, typer
rendering help, and for `ask` the imports a cited answer needs (Chroma, LCEL, onnxruntime, tokenizers,
numpy, bm25s, pydantic-settings) plus opening the index, loading the embedding model and embedding
the question, with no framework code of ours.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time

ASK_IMPORTS = ("import typer, pydantic_settings, chromadb, numpy, onnxruntime, tokenizers, bm25s; "
               "from langchain_core.runnables import RunnableLambda; from langchain_core.retrievers import BaseRetriever")
ASK_WORK = ASK_IMPORTS + """
import os, chromadb
from rag.embeddings import MiniLMEmbeddings
client = chromadb.PersistentClient(path=os.path.join(os.environ["RAG_DATA_DIR"], "chroma"),
                                   settings=chromadb.config.Settings(anonymized_telemetry=False))
col = client.get_collection("paperchat")
col.query(query_embeddings=[MiniLMEmbeddings().embed_query("What is 2BP?")], n_results=6)
"""


def _time(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    """Print a table of min/median seconds per command and ours ÷ floor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--paperchat", default=f"{sys.executable} -m rag", help="How to run paperchat.")
    args = parser.parse_args()
    if "RAG_DATA_DIR" not in os.environ:
        sys.exit("set RAG_DATA_DIR to a directory holding an index (paperchat ingest)")
    ours = shlex.split(args.paperchat)
    py = [sys.executable]
    commands = {
        "python -c pass": [*py, "-c", "pass"],
        "floor: import typer (help)": [*py, "-c", "import typer, typer.rich_utils"],
        "paperchat --help": [*ours, "--help"],
        "import chromadb": [*py, "-c", "import chromadb"],
        "import gradio": [*py, "-c", "import gradio"],
        "floor: ask imports": [*py, "-c", ASK_IMPORTS],
        "floor: ask imports + open + embed + query": [*py, "-c", ASK_WORK],
        "paperchat ask": [*ours, "ask", "What is 2BP?"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    _time(commands["paperchat ask"])  # warm the page cache once; every measured run is then a cold process
    for _ in range(args.runs):
        for name, cmd in commands.items():
            times[name].append(_time(cmd))
    best = {name: min(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"{name:<44} min {min(t):5.2f} s   median {statistics.median(t):5.2f} s")
    print(f"--help ÷ typer floor: {best['paperchat --help'] / best['floor: import typer (help)']:.2f}")
    print(f"ask ÷ ask floor (imports + work): {best['paperchat ask'] / best['floor: ask imports + open + embed + query']:.2f}")


if __name__ == "__main__":
    main()
