"""Benchmark every stage of the shipped pipeline ("ours") against a naive LangChain stack and a no-framework floor.

One process, arms interleaved query by query, warm-ups first, fixed seeds; cold starts, the chat server and the
peak-memory runs are subprocesses. Writes bench.json and bench.md and echoes the Markdown table.

Arms:
  ours   Pipeline with default settings (MiniLM unpadded, Chroma HNSW + bm25s fused by RRF, extractive answerer).
  naive  LangChain Chroma + BM25Retriever (rank_bm25) + EnsembleRetriever, a k=4 stuff prompt, LlamaCpp defaults.
         Chroma's default embedder downloads its ONNX model at run time (impossible offline), so it is emulated
         faithfully: our ONNX MiniLM with every input padded to 256 tokens, as Chroma's embedder does.
  floor  exact numpy search, bm25s, raw onnxruntime and raw llama.cpp: the least work for the same job.

A developer tool, not part of the shipped package: run it from a checkout with `python -m bench` (needs the
`[bench]` extra). It uses rag's public API only: stages are timed through the answer chain's named steps (a
LangChain callback handler), never by patching the library or Chroma.

Only the standard library is imported at module level: `python -m bench.runner <child> <json>` runs the cold-start
and memory children, and the floor's cold start must not pay for LangChain's imports.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
SEED = 0
GEN_VERSION = 1  # bump when the synthetic corpus recipe changes (invalidates .bench-cache)
SMOKE_SIZE = 500
N_CLUSTERS = 200
NOISE_SIGMA = 0.03  # per-dimension noise: |noise| ~ 0.59, so cos(vector, its centre) ~ 0.86
CHUNKS_PER_PAPER = 40  # full-text-like papers: 100k chunks ~ 2,500 papers
PAD_LENGTH = 256  # Chroma's default embedder pads (and truncates) every input to 256 tokens
NAIVE_K = 4  # LangChain's as_retriever() and BM25Retriever default k, and the stuff prompt's passages
ARMS = ("ours", "naive", "floor")
ABSTRACTS = "abstracts"


# -- what to measure ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How much to measure: the full run or the CI smoke run."""

    questions: int
    reading_questions: int
    warmup: int
    budget_s: float  # per arm and stage, once min_samples are in
    min_samples: int
    ingest_repeats: int
    cold_repeats: int
    child_answers: int
    local_questions: int
    local_budget_s: float
    ui_launches: int
    ui_requests: int


FULL = Plan(questions=30, reading_questions=12, warmup=3, budget_s=12.0, min_samples=5, ingest_repeats=3, cold_repeats=3, child_answers=4,
            local_questions=2, local_budget_s=60.0, ui_launches=2, ui_requests=4)
SMOKE = Plan(questions=4, reading_questions=0, warmup=1, budget_s=1.0, min_samples=3, ingest_repeats=1, cold_repeats=1, child_answers=2,
             local_questions=0, local_budget_s=0.0, ui_launches=0, ui_requests=0)


@dataclass
class Stage:
    """One row of the report: a number per arm, in one unit (latencies as p50/p95, the rest as one value)."""

    id: str
    title: str
    unit: str
    arms: dict[str, dict[str, float]] = field(default_factory=dict)
    status: str = "ok"
    note: str = ""

    def value(self, arm: str) -> float | None:
        """The arm's headline number: p50 for latencies, else its value."""
        got = self.arms.get(arm)
        if not got:
            return None
        return got.get("p50", got.get("value"))

    def ratio(self, other: str) -> float | None:
        """ours ÷ other, when both exist and other is not zero."""
        a, b = self.value("ours"), self.value(other)
        return round(a / b, 4) if a is not None and b else None

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with the ratios."""
        return {**asdict(self), "ratios": {"ours/naive": self.ratio("naive"), "ours/floor": self.ratio("floor")}}


@dataclass(frozen=True)
class Target:
    """A goal for the shipped configuration."""

    label: str
    stage: str
    limit: float
    unit: str


def _targets(largest: int | str) -> list[Target]:
    """The issue's targets; the scale ones apply at the largest corpus measured."""
    at = f"{largest:,} chunks" if isinstance(largest, int) else largest
    return [
        Target("cold start to first extractive answer", "cold_start", 3.0, "s"),
        Target(f"open the index until ready to search at {at}", f"scale_load@{largest}", 3.0, "s"),
        Target(f"first question after opening at {at}", f"scale_first@{largest}", 0.5, "s"),
        Target(f"hybrid retrieval p50 at {at}", f"retrieval_fused@{largest}", 15.0, "ms"),
        Target(f"recall@5 of Chroma HNSW vs exact at {at}", f"recall5@{largest}", 0.95, "≥"),
        Target("query embedding", "query_embedding", 10.0, "ms"),
        Target("extractive answer after retrieval (sentence cache cold)", "extractive_cold", 100.0, "ms"),
        Target("warm answer to a new question (question to checked text)", "answer_total", 50.0, "ms"),
        Target("local-model time to first token", "local_ttft", 2.0, "s"),
        Target("extractive text first, with the reading model on", "reading_first_text", 1.0, "s"),
        Target("reading decisions per question (1.5B)", "reading_time", 5.0, "s"),
        Target("reading time within 1.3× of llama.cpp's own prefill (ours ÷ floor)", "reading_overhead", 1.3, "×"),
        Target(f"peak RSS at {at}", f"peak_rss@{largest}", 800.0, "MB"),
        Target("ingest of the 21 abstracts", "ingest_total", 5.0, "s"),
    ]


class Report:
    """Stages in the order measured, plus run metadata and notes."""

    def __init__(self) -> None:
        self.stages: dict[str, Stage] = {}
        self.meta: dict[str, Any] = {}
        self.notes: list[str] = []

    def add(self, stage: Stage) -> Stage:
        """Record a stage and say what it measured."""
        self.stages[stage.id] = stage
        shown = ", ".join(f"{a} {_fmt(stage, a)}" for a in ARMS if a in stage.arms) or stage.status
        _say(f"  {stage.title}: {shown}" + (f"  [{stage.note}]" if stage.status != "ok" else ""))
        return stage

    def skip(self, sid: str, title: str, unit: str, note: str) -> None:
        """Record a stage that was not measured, and why."""
        self.add(Stage(sid, title, unit, status="skipped", note=note))


# -- small helpers -----------------------------------------------------------------------------------------------


def _say(message: str) -> None:
    """Progress on stderr (the benchmark is a CLI command; stdout gets the table)."""
    import typer

    typer.echo(message, err=True)


def _summary(samples: list[float], scale: float = 1.0) -> dict[str, float]:
    """p50, p95, mean and count of samples, multiplied by scale (1000: seconds to ms)."""
    import numpy as np

    arr = np.asarray(samples, dtype=float) * scale
    return {"p50": round(float(np.percentile(arr, 50)), 4), "p95": round(float(np.percentile(arr, 95)), 4),
            "mean": round(float(arr.mean()), 4), "n": len(samples)}


def _one(value: float, digits: int = 4) -> dict[str, float]:
    """A single measured value."""
    return {"value": round(float(value), digits)}


def _rss_mb() -> float:
    """Peak resident set size of this process so far, in MB.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork+exec, so a child of a big parent would report the
    parent's peak.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _calibrate() -> dict[str, float]:
    """How fast this CPU is right now (other processes share it): a pure-Python loop and a numpy matmul."""
    import numpy as np

    t = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i
    loop = time.perf_counter() - t
    a = np.random.default_rng(SEED).random((512, 512), dtype=np.float32)
    t = time.perf_counter()
    for _ in range(20):
        a @ a
    return {"python_loop_ms": round(loop * 1000, 1), "matmul_512_x20_ms": round((time.perf_counter() - t) * 1000, 1)}


def _rotate(items: list[str], i: int) -> list[str]:
    """items rotated by i, so no arm always runs first."""
    i %= len(items)
    return items[i:] + items[:i]


def _interleave(fns: dict[str, Callable[[Any], Any]], inputs: list[Any], plan: Plan, *,
                budget_s: float | None = None) -> dict[str, list[float]]:
    """Seconds per call for each arm, arms interleaved per input (rotating order), after plan.warmup calls each."""
    budget = plan.budget_s if budget_s is None else budget_s
    arms = list(fns)
    for x in inputs[: plan.warmup]:
        for arm in arms:
            fns[arm](x)
    samples: dict[str, list[float]] = {a: [] for a in arms}
    spent = dict.fromkeys(arms, 0.0)
    for i, x in enumerate(inputs):
        active = [a for a in _rotate(arms, i) if len(samples[a]) < plan.min_samples or spent[a] < budget]
        if not active:
            break
        for arm in active:
            t = time.perf_counter()
            fns[arm](x)
            dt = time.perf_counter() - t
            samples[arm].append(dt)
            spent[arm] += dt
    return samples


def timed_embeddings(inner: Any) -> Any:
    """LangChain Embeddings that add up the seconds the wrapped embedder spends (`.spent`), delegating to it."""
    from langchain_core.embeddings import Embeddings

    class Timed(Embeddings):
        """The wrapped embedder, with a stopwatch."""

        def __init__(self) -> None:
            self.spent = 0.0

        def _time(self, fn: Callable[[Any], Any], arg: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(arg)
            finally:
                self.spent += time.perf_counter() - t

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return self._time(inner.embed_documents, texts)

        def embed_query(self, text: str) -> list[float]:
            return self._time(inner.embed_query, text)

    return Timed()


def _shipped(**overrides: Any) -> Any:
    """Default Settings with overrides, ignoring RAG_* variables and .env (the shipped configuration). The reading
    model is off unless a stage asks for it: the extractive rows time the rules' answer, which is also the chat's
    first text when reading is on; stage_reading times the reading itself."""
    from rag.settings import Settings

    overrides.setdefault("reader", "off")
    return Settings(_env_file=None, _env_prefix="PAPERCHAT_BENCH_IGNORED_", **overrides)  # type: ignore[call-arg]


def _child_env(**extra: str) -> dict[str, str]:
    """The environment for subprocesses: no RAG_* or API keys from the caller, offline, fixed hash seed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") and k != "OPENAI_API_KEY"}
    env.update(HF_HUB_OFFLINE="1", PYTHONHASHSEED=str(SEED), GRADIO_ANALYTICS_ENABLED="False", RAG_READER="off")
    env.update(extra)
    return env


def _paperchat() -> list[str]:
    """The installed console script, or `python -m rag`."""
    script = Path(sys.executable).with_name("paperchat")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "rag"]


def _run_child(name: str, args: dict[str, Any], env: dict[str, str], timeout: float = 900.0) -> dict[str, Any]:
    """Run `python -m bench.runner name args` and return the JSON it prints last."""
    proc = subprocess.run([sys.executable, "-m", "bench.runner", name, json.dumps(args)], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"bench child {name!r} exited with code {proc.returncode}:\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _wait_idle(pid: int | None, timeout: float = 60.0) -> None:
    """Wait until process pid stops using CPU (a server finishing a generation nobody reads any more)."""
    stat = Path(f"/proc/{pid}/stat")
    if pid is None or not stat.is_file():
        return

    def cpu() -> float:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    deadline = time.monotonic() + timeout
    last = cpu()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu()
        if now - last < 0.05:
            return
        last = now


def _version(package: str) -> str | None:
    """Installed version of a distribution, without importing it."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


# -- embedders ---------------------------------------------------------------------------------------------------


class RawMiniLM:
    """The floor's embedder: onnxruntime and tokenizers only, one query unpadded, documents padded per batch."""

    def __init__(self, model: str, tokenizer: str) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(tokenizer)
        self.tokenizer.enable_truncation(max_length=PAD_LENGTH)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch: int = 32) -> Any:
        """Normalised vectors, batches padded to their longest text."""
        import numpy as np

        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        out = []
        for start in range(0, len(texts), batch):
            enc = self.tokenizer.encode_batch(texts[start : start + batch])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
            w = mask[..., None].astype(np.float32)
            pooled = (hidden * w).sum(axis=1) / np.clip(w.sum(axis=1), 1e-9, None)
            out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.concatenate(out).astype(np.float32)

    def embed(self, text: str) -> Any:
        """One query vector."""
        return self.encode([text])[0]


def padded_embeddings() -> Any:
    """Chroma's default embedder, emulated: our ONNX MiniLM with every input padded to 256 tokens."""
    from rag.embeddings import MiniLMEmbeddings

    return MiniLMEmbeddings(pad_to=PAD_LENGTH)


def lookup_embeddings(table: dict[str, list[float]], fallback: Any) -> Any:
    """Embeddings answering known queries from a table, so retrieval is timed without query embedding."""
    from langchain_core.embeddings import Embeddings

    class Lookup(Embeddings):
        """Precomputed query vectors."""

        name, dim = fallback.name, fallback.dim

        def embed_query(self, text: str) -> list[float]:
            return table[text] if text in table else fallback.embed_query(text)

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return fallback.embed_documents(texts)

        def encode(self, texts: list[str]) -> Any:
            return fallback.encode(texts)

    return Lookup()


# -- the floor ---------------------------------------------------------------------------------------------------


def _floor_tokens(texts: list[str]) -> list[list[str]]:
    """bm25s's own tokenizer with English stopwords."""
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)  # type: ignore[return-value]


class Floor:
    """Exact numpy search and bm25s over vectors and texts in memory, fused by RRF: no framework."""

    def __init__(self, ids: list[str], texts: list[str], vectors: Any, fetch: int = 30, rrf_k: int = 60) -> None:
        import bm25s

        self.ids, self.texts, self.vectors = ids, texts, vectors
        self.fetch, self.rrf_k = min(fetch, len(ids)), rrf_k
        self.bm25 = bm25s.BM25()
        self.bm25.index(_floor_tokens(texts), show_progress=False)

    @classmethod
    def load(cls, folder: Path) -> Floor:
        """From vectors.npy and chunks.json."""
        import numpy as np

        data = json.loads((folder / "chunks.json").read_text())
        return cls(data["ids"], data["texts"], np.load(folder / "vectors.npy"))

    def vector(self, qvec: Any) -> list[int]:
        """Row numbers of the nearest vectors, best first."""
        import numpy as np

        sims = self.vectors @ qvec
        top = np.argpartition(-sims, self.fetch - 1)[: self.fetch]
        return top[np.argsort(-sims[top])].tolist()

    def keyword(self, query: str) -> list[int]:
        """Row numbers by BM25, best first (zero scores dropped)."""
        tokens = _floor_tokens([query])[0]
        if not tokens:
            return []
        docs, scores = self.bm25.retrieve([tokens], k=self.fetch, show_progress=False)
        return [int(d) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]

    def fused(self, query: str, qvec: Any, k: int = 6) -> list[int]:
        """Reciprocal-rank fusion of both lists."""
        score: dict[int, float] = {}
        for ranked in (self.vector(qvec), self.keyword(query)):
            for rank, row in enumerate(ranked):
                score[row] = score.get(row, 0.0) + 1.0 / (self.rrf_k + rank + 1)
        return sorted(score, key=lambda r: -score[r])[:k]


# -- the naive arm -----------------------------------------------------------------------------------------------


class Naive:
    """What a LangChain tutorial builds: Chroma + BM25Retriever (rank_bm25) in an EnsembleRetriever."""

    def __init__(self, vectorstore: Any) -> None:
        from langchain_classic.retrievers import EnsembleRetriever
        from langchain_community.retrievers import BM25Retriever
        from langchain_core.documents import Document

        from rag.store import get_all

        self.vectorstore = vectorstore
        t = time.perf_counter()
        # Chroma.get() of every record in one call fails past 32,766 rows (SQLite's variable limit): read in pages
        # through the public limit/offset, as ours does.
        got = get_all(vectorstore, ["documents", "metadatas"])
        docs = [Document(page_content=text, metadata=meta or {}, id=cid)
                for cid, text, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True)]
        self.bm25 = BM25Retriever.from_documents(docs)
        self.ensemble = EnsembleRetriever(retrievers=[self.bm25, vectorstore.as_retriever()], weights=[0.5, 0.5])
        self.load_s = time.perf_counter() - t


def _naive_vectorstore(embedding: Any, *, directory: Path | None = None, client: Any = None,
                       collection: str = "naive") -> Any:
    """LangChain's Chroma over a persisted directory or an open client, with LangChain's defaults."""
    from langchain_chroma import Chroma

    if client is not None:
        return Chroma(client=client, collection_name=collection, embedding_function=embedding)
    return Chroma(persist_directory=str(directory), collection_name=collection, embedding_function=embedding)


def _stuff_prompt() -> Any:
    """LangChain's classic 'stuff' question-answering prompt."""
    from langchain_classic.chains.question_answering.stuff_prompt import PROMPT

    return PROMPT


# -- the synthetic corpora ---------------------------------------------------------------------------------------


def _corpus_hash() -> str:
    """Fingerprint of the bundled corpus (the synthetic corpora are built from it)."""
    from rag.settings import CORPUS_PATH

    return hashlib.sha256(CORPUS_PATH.read_bytes()).hexdigest()[:10]


def synthetic_corpus(n: int, cache: Path, papers: list[Any], embedder: Any) -> Path:
    """A cached folder of n real-looking chunks: recombined abstract sentences, clustered MiniLM-like vectors.

    Vectors are real MiniLM vectors of abstract sentences, mixed pairwise into 200 cluster centres, each chunk its
    centre plus small Gaussian noise, normalised; the chunk's text starts from the centre's sentence.
    """
    folder = cache / f"synth-v{GEN_VERSION}-seed{SEED}-{_corpus_hash()}-n{n}"
    if (folder / "done").is_file():
        return folder
    import numpy as np

    from rag.corpus import slugify
    from rag.text import sentences

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(SEED)
    sents = [(i, s) for i, p in enumerate(papers) for s in sentences(p.abstract)]
    by_paper: dict[int, list[int]] = {}
    for j, (i, _) in enumerate(sents):
        by_paper.setdefault(i, []).append(j)
    svec = embedder.encode([s for _, s in sents])
    anchors = [c if c < len(sents) else int(rng.integers(len(sents))) for c in range(N_CLUSTERS)]
    centres = np.stack([0.85 * svec[a] + 0.15 * svec[int(rng.integers(len(sents)))] for a in anchors])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    cluster = rng.integers(N_CLUSTERS, size=n)
    vectors = centres[cluster] + rng.normal(0.0, NOISE_SIGMA, size=(n, centres.shape[1]))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    texts = []
    for c in cluster:
        anchor = anchors[int(c)]
        own = by_paper[sents[anchor][0]]
        rest = [int(rng.choice(own)) if rng.random() < 0.5 else int(rng.integers(len(sents)))
                for _ in range(int(rng.integers(2, 5)))]
        texts.append(" ".join(sents[j][1] for j in dict.fromkeys([anchor, *rest])))
    vocab = sorted({w.strip(":,.()") for p in papers for w in p.title.split() if len(w.strip(":,.()")) > 2})
    n_papers = (n + CHUNKS_PER_PAPER - 1) // CHUNKS_PER_PAPER
    syn_papers = []
    for k in range(n_papers):
        title = " ".join(str(w) for w in rng.choice(vocab, size=int(rng.integers(6, 11)), replace=False))
        syn_papers.append({"id": f"{slugify(title, 2)}-{k}", "title": title,
                           "aliases": [f"{title.split()[0].capitalize()}{k}"]})
    paper_of = [j // CHUNKS_PER_PAPER for j in range(n)]
    ids = [f"{syn_papers[paper_of[j]]['id']}:{j:016x}" for j in range(n)]
    np.save(folder / "vectors.npy", vectors)
    (folder / "synth.json").write_text(json.dumps({"ids": ids, "texts": texts, "paper_of": paper_of,
                                                   "papers": syn_papers}))
    (folder / "chunks.json").write_text(json.dumps(  # the floor's view: title + text, like ours' BM25
        {"ids": ids, "texts": [f"{syn_papers[paper_of[j]]['title']}\n{texts[j]}" for j in range(n)]}))
    (folder / "done").write_text(json.dumps({"n": n, "papers": n_papers}))
    return folder


def _store_for(synth: Path, n: int, cache: Path, env: dict[str, str]) -> tuple[Path, dict[str, Any]]:
    """A cached Chroma index (ours' layout) of a synthetic corpus, built in a child process on first use."""
    chroma = _version("chromadb")
    folder = cache / f"store-{synth.name}-chroma{chroma}"
    marker = folder / "bench-complete.json"
    if marker.is_file():
        return folder, {**json.loads(marker.read_text()), "cached": True}
    shutil.rmtree(folder, ignore_errors=True)
    _say(f"  building the {n:,}-chunk Chroma index (cached in {folder}; slow the first time)")
    got = _run_child("build-store", {"synth": str(synth), "store": str(folder)}, env, timeout=3600)
    marker.write_text(json.dumps(got))
    return folder, {**got, "cached": False}


def _with_sentences(folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """Add the sentence vectors ingest stores (what a real index holds) to a cached synthetic index, once."""
    marker = folder / "bench-sentences.json"
    if marker.is_file():
        return {**json.loads(marker.read_text()), "cached": True}
    _say(f"  storing the sentence vectors of {folder.name} (once; slow the first time)")
    got = _run_child("add-sentences", {"store": str(folder)}, env, timeout=7200)
    marker.write_text(json.dumps(got))
    return {**got, "cached": False}


# -- stages ------------------------------------------------------------------------------------------------------


@dataclass
class Ctx:
    """Everything the stages share."""

    plan: Plan
    smoke: bool
    tmp: Path
    cache: Path
    env: dict[str, str]
    papers: list[Any]
    questions: list[str]
    qvecs: dict[str, list[float]]
    ours_emb: Any
    padded: Any
    raw: RawMiniLM
    model_files: tuple[str, str]
    ours_dir: Path | None = None
    naive_dir: Path | None = None
    floor_dir: Path | None = None


def stage_query_embedding(ctx: Ctx, rep: Report) -> None:
    """One question to one vector: ours unpadded, naive padded to 256 tokens, floor raw onnxruntime."""
    fns = {"ours": ctx.ours_emb.embed_query, "naive": ctx.padded.embed_query, "floor": ctx.raw.embed}
    got = _interleave(fns, ctx.questions, ctx.plan)
    rep.add(Stage("query_embedding", "Query embedding", "ms", {a: _summary(s, 1000) for a, s in got.items()},
                  note="naive = our int8 ONNX MiniLM padded to 256 tokens (Chroma's default embedder, emulated "
                       "offline; the real one is fp32 and slower still)"))


def stage_ingest(ctx: Ctx, rep: Report) -> None:
    """The 21 abstracts into a fresh index: total wall time, embedding and storage throughput."""
    import numpy as np
    from langchain_core.documents import Document

    from rag.chunking import chunk_paper, embedding_text
    from rag.ingest import ingest_paths

    settings = _shipped()
    chunks = [c for p in ctx.papers for c in chunk_paper(p, settings.chunk_tokens, settings.chunk_overlap)]
    docs = [Document(page_content=c.text, metadata={"paper_id": c.paper_id, "title": c.title}) for c in chunks]

    def ours(i: int) -> tuple[float, float, int]:
        folder = ctx.tmp / f"ours-{i}"
        t = time.perf_counter()
        report = ingest_paths([], _shipped(data_dir=folder))
        total = time.perf_counter() - t
        ctx.ours_dir = folder
        return total, report.embed_seconds, report.added

    def naive(i: int) -> tuple[float, float, int]:
        from langchain_chroma import Chroma

        folder = ctx.tmp / f"naive-{i}"
        timed = timed_embeddings(ctx.padded)
        t = time.perf_counter()
        Chroma.from_documents(docs, timed, persist_directory=str(folder), collection_name="naive")
        total = time.perf_counter() - t
        ctx.naive_dir = folder
        return total, timed.spent, len(docs)

    def floor(i: int) -> tuple[float, float, int]:
        folder = ctx.tmp / f"floor-{i}"
        folder.mkdir(parents=True, exist_ok=True)
        texts = [embedding_text(c) for c in chunks]
        t = time.perf_counter()
        vectors = ctx.raw.encode(texts)
        embed = time.perf_counter() - t
        np.save(folder / "vectors.npy", vectors)
        (folder / "chunks.json").write_text(json.dumps({"ids": [c.id for c in chunks], "texts": texts}))
        Floor([c.id for c in chunks], texts, vectors)
        total = time.perf_counter() - t
        ctx.floor_dir = folder
        return total, embed, len(chunks)

    fns = {"ours": ours, "naive": naive, "floor": floor}
    runs: dict[str, list[tuple[float, float, int]]] = {a: [] for a in ARMS}
    for i in range(ctx.plan.ingest_repeats):
        for arm in _rotate(list(ARMS), i):
            runs[arm].append(fns[arm](i))
    rep.add(Stage("ingest_total", f"Ingest the {len(ctx.papers)} abstracts ({len(chunks)} chunks), wall", "s",
                  {a: _summary([r[0] for r in runs[a]]) for a in ARMS},
                  note="ours also embeds and stores one record per paper; floor 'storage' = np.save + JSON + bm25s"))
    rep.add(Stage("ingest_embed_rate", "Ingest: embedding throughput", "chunks/s",
                  {a: _one(np.median([r[2] / r[1] for r in runs[a]]), 1) for a in ARMS}))
    rep.add(Stage("ingest_store_rate", "Ingest: storage throughput (everything but embedding)", "chunks/s",
                  {a: _one(np.median([r[2] / max(r[0] - r[1], 1e-9) for r in runs[a]]), 1) for a in ARMS}))


def stage_cold_start(ctx: Ctx, rep: Report) -> None:
    """A new process to its first answer (ours) or first passages (naive, floor), index already built."""
    q = ctx.questions[0]
    env_ours = _child_env(RAG_DATA_DIR=str(ctx.ours_dir), RAG_ANSWERER="extractive")
    cmds = {
        "ours": ([*_paperchat(), "ask", q], env_ours),
        "naive": ([sys.executable, "-m", "bench.runner", "naive-cold",
                   json.dumps({"dir": str(ctx.naive_dir), "question": q})], ctx.env),
        "floor": ([sys.executable, "-m", "bench.runner", "floor-cold",
                   json.dumps({"dir": str(ctx.floor_dir), "question": q, "model": ctx.model_files[0],
                               "tokenizer": ctx.model_files[1]})], ctx.env),
    }

    def launch(arm: str) -> float:
        cmd, env = cmds[arm]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False)
        dt = time.perf_counter() - t
        if proc.returncode != 0 or not proc.stdout.strip():
            raise RuntimeError(f"{arm} cold start failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        return dt

    if not ctx.smoke:
        for arm in ARMS:  # warm the OS file cache: we measure a returning user's start, not a first boot
            launch(arm)
    got: dict[str, list[float]] = {a: [] for a in ARMS}
    for i in range(ctx.plan.cold_repeats):
        for arm in _rotate(list(ARMS), i):
            got[arm].append(launch(arm))
    breakdown = ""
    if not ctx.smoke:
        parts = _run_child("ours-cold", {"question": q}, env_ours)
        breakdown = (f"ours in-process: imports {parts['import_s']:.2f} s, open index + load corpus "
                     f"{parts['index_s']:.2f} s, first answer (loads MiniLM) {parts['answer_s']:.2f} s")
        rep.meta["cold_start_breakdown"] = parts
    rep.add(Stage("cold_start", "Cold start: new process to first answer (naive/floor: first passages)", "s",
                  {a: _summary(s) for a, s in got.items()},
                  note=("`paperchat ask` vs a LangChain script vs a numpy/bm25s script; naive and floor stop at "
                        "retrieved passages (they have no extractive answerer). " + breakdown).strip()))
    if ctx.smoke:
        rep.skip("first_run", "First `paperchat ask` on a fresh install (builds the index)", "s", "smoke run")
        return
    fresh = ctx.tmp / "first-run"
    t = time.perf_counter()
    proc = subprocess.run([*_paperchat(), "ask", q], capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env=_child_env(RAG_DATA_DIR=str(fresh), RAG_ANSWERER="extractive"), check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"first run failed: {proc.stderr.strip()[-500:]}")
    rep.add(Stage("first_run", "First `paperchat ask` on a fresh install (builds the index)", "s",
                  {"ours": _one(time.perf_counter() - t, 3)}))


class StepTimer(BaseCallbackHandler):
    """A LangChain callback handler adding up the seconds each named chain step takes (public API only)."""

    STEPS = ("analyse", "retrieve", "decide", "compose", "verify")

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self._open: dict[Any, tuple[str, float]] = {}

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: Any, name: str | None = None,
                       **kwargs: Any) -> None:
        if name in self.STEPS:
            self._open[run_id] = (name, time.perf_counter())

    def on_chain_end(self, outputs: Any, *, run_id: Any, **kwargs: Any) -> None:
        if run_id in self._open:
            name, t = self._open.pop(run_id)
            self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - t

    on_chain_error = on_chain_end  # type: ignore[assignment]


def stage_answer(ctx: Ctx, rep: Report) -> None:
    """Whole answers over the abstracts: extractive time after retrieval, chain overhead, total."""
    from langchain_core.language_models import FakeListLLM
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough

    from rag.answer import Pipeline

    pipe = Pipeline(_shipped(data_dir=ctx.ours_dir))
    timer = StepTimer()
    naive = Naive(_naive_vectorstore(ctx.padded, directory=ctx.naive_dir))
    floor = Floor.load(ctx.floor_dir)  # type: ignore[arg-type]
    prompt = _stuff_prompt()
    fake = FakeListLLM(responses=["I don't know."])
    spent: dict[str, float] = {}

    def timed(name: str, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def inner(x: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(x)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
        return inner

    chain = ({"context": RunnableLambda(timed("retrieve", lambda q: naive.ensemble.invoke(q)[:NAIVE_K]))
              | (lambda docs: "\n\n".join(d.page_content for d in docs)), "question": RunnablePassthrough()}
             | prompt | RunnableLambda(timed("llm", fake.invoke)) | StrOutputParser())

    def floor_answer(q: str) -> str:
        rows = floor.fused(q, ctx.raw.embed(q))
        return prompt.format(context="\n\n".join(floor.texts[r] for r in rows), question=q)

    rows: dict[str, list[float]] = {k: [] for k in ("ours_total", "ours_parts", "ours_retrieve", "ours_cold",
                                                    "ours_warm", "naive_total", "naive_retrieve", "naive_llm",
                                                    "floor_total")}

    def ours(q: str) -> None:
        for first in (True, False):  # a new question (sentence vectors come from the index), then the same again
            timer.spent = {}
            t = time.perf_counter()
            pipe.answer(q, config={"callbacks": [timer]})
            total = time.perf_counter() - t
            spent = timer.spent
            after = sum(spent.get(k, 0.0) for k in ("decide", "compose", "verify"))
            rows["ours_cold" if first else "ours_warm"].append(after)
            if first:
                rows["ours_total"].append(total)
                rows["ours_parts"].append(total - sum(spent.values()))
                rows["ours_retrieve"].append(spent.get("retrieve", 0.0) + spent.get("analyse", 0.0))

    def naive_fn(q: str) -> None:
        spent.clear()
        t = time.perf_counter()
        chain.invoke(q)
        total = time.perf_counter() - t
        rows["naive_total"].append(total)
        rows["naive_retrieve"].append(spent["retrieve"])
        rows["naive_llm"].append(spent["llm"])

    def floor_fn(q: str) -> None:
        t = time.perf_counter()
        floor_answer(q)
        rows["floor_total"].append(time.perf_counter() - t)

    fns = {"ours": ours, "naive": naive_fn, "floor": floor_fn}
    for q in ctx.questions[: ctx.plan.warmup]:
        for fn in fns.values():
            fn(q)
    for v in rows.values():
        v.clear()
    for i, q in enumerate(ctx.questions):
        for arm in _rotate(list(ARMS), i):
            fns[arm](q)
    naive_overhead = [t - r - m for t, r, m in zip(rows["naive_total"], rows["naive_retrieve"], rows["naive_llm"],
                                                   strict=True)]
    rep.add(Stage("answer_total", "Answer, question to text (naive: ensemble + stuff prompt + instant fake LLM)",
                  "ms", {"ours": _summary(rows["ours_total"], 1000), "naive": _summary(rows["naive_total"], 1000),
                         "floor": _summary(rows["floor_total"], 1000)},
                  note="ours = full extractive answer with citations checked; naive/floor stop at the prompt"))
    rep.add(Stage("retrieval_in_chain", "Retrieval inside the answer, incl. query embedding", "ms",
                  {"ours": _summary(rows["ours_retrieve"], 1000), "naive": _summary(rows["naive_retrieve"], 1000)}))
    rep.add(Stage("extractive_cold", "Extractive answer after retrieval (sentence cache cold)", "ms",
                  {"ours": _summary(rows["ours_cold"], 1000)},
                  note="decide + compose + check: re-embeds the query, embeds passage sentences, scores, cites"))
    rep.add(Stage("extractive_warm", "Extractive answer after retrieval (sentence cache warm)", "ms",
                  {"ours": _summary(rows["ours_warm"], 1000)}))
    rep.add(Stage("chain_overhead", "Chain overhead (total minus its steps)", "ms",
                  {"ours": _summary(rows["ours_parts"], 1000), "naive": _summary(naive_overhead, 1000),
                   "floor": {"p50": 0.0, "p95": 0.0, "mean": 0.0, "n": len(rows["floor_total"])}},
                  note="ours: LCEL + input validation; naive: LCEL + prompt formatting; floor has no framework"))


Search = Callable[[Any, int], list[list[str]]]  # query vectors, k -> the ids found for each


def _chroma_search(collection: Any) -> Search:
    """A Chroma collection's approximate top-k ids."""
    return lambda queries, k: collection.query(query_embeddings=queries, n_results=k, include=[])["ids"]


def _vectorstore_search(vectorstore: Any) -> Search:
    """A LangChain vector store's top-k ids, one query at a time."""
    return lambda queries, k: [[d.id for d in vectorstore.similarity_search_by_vector(q.tolist(), k=k)]
                               for q in queries]


def _recall(search: Search, ids: list[str], vectors: Any, queries: Any, k: int) -> float:
    """Mean overlap of a search's top-k with the exact top-k."""
    import numpy as np

    k = min(k, len(ids))
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :k]
    got = search(queries, k)
    return float(np.mean([len(set(g) & {ids[j] for j in e}) / k for g, e in zip(got, exact, strict=True)]))


def stage_retrieval(ctx: Ctx, rep: Report, size: int | str) -> None:
    """Vector, BM25 and fused retrieval at one corpus size (query vectors precomputed), plus recall@5."""
    import numpy as np

    from rag.retrieve import Index, make_retriever
    from rag.store import open_store
    from rag.view import read_through

    lookup = lookup_embeddings(ctx.qvecs, ctx.ours_emb)
    if size == ABSTRACTS:
        settings = _shipped(data_dir=ctx.ours_dir)
        store = open_store(settings)
        got = store.chunks.get(include=["embeddings"])
        ids, vectors = list(got["ids"]), np.asarray(got["embeddings"], dtype=np.float32)
        floor_dir, naive_vs = ctx.floor_dir, _naive_vectorstore(lookup, directory=ctx.naive_dir)
        label = f"{len(ids)} chunks (the abstracts)"
    else:
        n = int(size)
        synth = synthetic_corpus(n, ctx.cache, ctx.papers, ctx.ours_emb)
        folder, build = _store_for(synth, n, ctx.cache, ctx.env)
        sentences = _with_sentences(folder, ctx.env)
        rep.add(Stage(f"store_build@{n}", f"Chroma insert of {n:,} precomputed vectors (ours' store)",
                      "chunks/s", {"ours": _one(n / build["seconds"], 1)},
                      note=f"{build['seconds']:.0f} s" + (", from an earlier run (cached)" if build["cached"] else "")
                           + f"; plus {sentences['sentences']:,} sentence vectors in {sentences['seconds']:.0f} s"))
        settings = _shipped(data_dir=folder)
        store = open_store(settings)
        stage_view_build(ctx, rep, n, store, folder)
        stage_scale(ctx, rep, n, folder, synth)
        ids = json.loads((synth / "chunks.json").read_text())["ids"]
        vectors = np.load(synth / "vectors.npy")
        floor_dir, naive_vs = synth, _naive_vectorstore(lookup, client=store.client, collection=store.chunks.name)
        label = f"{n:,} chunks"
    index = Index(store, settings, embedder=lookup)
    t = time.perf_counter()
    view = index.view()
    ours_load = time.perf_counter() - t
    # Per-query latency is a steady state: a running server has the view's files in the page cache, as the floor
    # holds its arrays in memory. (The scale stage above dropped them from the cache for its cold starts.)
    read_through(view.hot_files())
    retriever = make_retriever(index, settings)
    fetch = min(settings.fetch_k, view.count)
    naive = Naive(naive_vs)
    t = time.perf_counter()
    floor = Floor.load(floor_dir)  # type: ignore[arg-type]
    floor_load = time.perf_counter() - t
    rep.add(Stage(f"corpus_load@{size}", f"Retrieval view load at {label}", "s",
                  {"ours": _one(ours_load, 3), "naive": _one(naive.load_s, 3), "floor": _one(floor_load, 3)},
                  note="ours: Index.view() (the saved view: ids, papers, tables, memory-mapped bm25s index and "
                       "records); naive: vectorstore.get() paged + BM25Retriever.from_documents; floor: np.load + "
                       "bm25s index"))
    qv = {q: np.asarray(v, dtype=np.float32) for q, v in ctx.qvecs.items()}
    stages = {
        "vector": {"ours": lambda q: retriever.dense(qv[q], fetch),
                   "naive": lambda q: naive_vs.similarity_search_by_vector(ctx.qvecs[q], k=NAIVE_K),
                   "floor": lambda q: floor.vector(qv[q])},
        "bm25": {"ours": lambda q: retriever.keyword(q, fetch, view=view),
                 "naive": lambda q: naive.bm25.invoke(q), "floor": lambda q: floor.keyword(q)},
        "fused": {"ours": lambda q: retriever.search(q), "naive": lambda q: naive.ensemble.invoke(q),
                  "floor": lambda q: floor.fused(q, qv[q])},
    }
    titles = {"vector": "Vector search", "bm25": "BM25 search", "fused": "Hybrid retrieval (fused)"}
    for name, fns in stages.items():
        got_s = _interleave(fns, ctx.questions, ctx.plan)
        rep.add(Stage(f"retrieval_{name}@{size}", f"{titles[name]} at {label}", "ms",
                      {a: _summary(s, 1000) for a, s in got_s.items()},
                      note=(f"query pre-embedded; ours fetches {fetch} per retriever, naive k={NAIVE_K}, floor "
                            f"{fetch}" if name == "vector" else
                            "rank_bm25 scores every document in Python" if name == "bm25" else
                            "ours: dense + BM25 + RRF + named-paper check + per-paper cap + similarities; the view's "
                            "files in the page cache (steady state), as the floor's arrays are in memory")))
    queries = np.stack([qv[q] for q in ctx.qvecs])
    r5 = _recall(_chroma_search(store.chunks), ids, vectors, queries, 5)
    r30 = _recall(_chroma_search(store.chunks), ids, vectors, queries, settings.fetch_k)
    naive_r5 = r5 if size != ABSTRACTS else _recall(_vectorstore_search(naive_vs), *_ids_vectors(naive_vs), queries, 5)
    rep.add(Stage(f"recall5@{size}", f"Recall@5 of Chroma HNSW vs exact search at {label}", "recall",
                  {"ours": _one(r5), "naive": _one(naive_r5), "floor": _one(1.0)},
                  note=f"{len(queries)} question vectors; recall@{settings.fetch_k} (what ours fuses) = {r30:.3f}"
                       + ("; naive shares ours' HNSW index at this size" if size != ABSTRACTS else "")))
    gc.collect()


def _disk_mb(folder: Path) -> float:
    """Megabytes of the files under folder."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def stage_view_build(ctx: Ctx, rep: Report, n: int, store: Any, folder: Path) -> None:
    """Deriving the retrieval view (once per index generation, at ingest): timed into a scratch folder; the index's
    own view is then loaded or, on a first run, built in place for the stages that follow."""
    from rag.view import open_view, view_root

    stamp = store.generation()
    scratch = ctx.tmp / f"views-{n}"
    t = time.perf_counter()
    open_view(store, _shipped(data_dir=folder, view_dir=scratch), stamp)
    seconds = time.perf_counter() - t
    shutil.rmtree(scratch, ignore_errors=True)
    open_view(store, _shipped(data_dir=folder), stamp)
    views = view_root(_shipped(data_dir=folder))
    rep.add(Stage(f"view_build@{n}", f"Derive and save the retrieval view of {n:,} chunks (once, at ingest)", "s",
                  {"ours": _one(seconds, 2)},
                  note="read every passage from Chroma, tokenize, IDF/vocabulary/names, bm25s index, records; "
                       "naive and floor rebuild their equivalent on every start (see the open row)"))
    rep.add(Stage(f"disk@{n}", f"Disk: Chroma index + retrieval view at {n:,} chunks", "MB",
                  {"ours": _one(_disk_mb(folder / "chroma") + _disk_mb(views), 1)},
                  note=f"Chroma {_disk_mb(folder / 'chroma'):,.0f} MB (incl. sentence vectors), view "
                       f"{_disk_mb(views):,.0f} MB"))


def project(rep: Report, sizes: list[int], target: int = 1_000_000) -> list[dict[str, Any]]:
    """How each scale figure grows: the log-log slope between the two largest sizes measured, and its value at target
    chunks on that slope (an estimate, not a measurement)."""
    import math

    out = []
    if len(sizes) < 2:
        return out
    a, b = sizes[-2], sizes[-1]
    for key, title in (("scale_load", "open until ready"), ("scale_first", "first question"),
                       ("scale_answer", "later questions"), ("peak_rss", "peak RSS"), ("disk", "disk"),
                       ("view_build", "derive the view"), ("retrieval_fused", "hybrid retrieval p50"),
                       ("corpus_load", "retrieval view load")):
        sa, sb = rep.stages.get(f"{key}@{a}"), rep.stages.get(f"{key}@{b}")
        va, vb = (sa.value("ours") if sa else None), (sb.value("ours") if sb else None)
        if not va or not vb or va <= 0 or vb <= 0:
            continue
        slope = math.log(vb / va) / math.log(b / a)
        out.append({"figure": title, "unit": sb.unit, f"at {a:,}": round(va, 4), f"at {b:,}": round(vb, 4),
                    "slope": round(slope, 2), f"at {target:,} (projected)": round(vb * (target / b) ** slope, 3)})
    return out


def _ids_vectors(vectorstore: Any) -> tuple[list[str], Any]:
    """Ids and stored vectors of a LangChain Chroma vector store."""
    import numpy as np

    from rag.store import get_all

    got = get_all(vectorstore, ["embeddings"])
    return list(got["ids"]), np.asarray(got["embeddings"], dtype=np.float32)


def _drop_page_cache(folder: Path) -> None:
    """Drop the kernel's cached pages of every file under folder (clean pages that no process maps), so that a
    child's load and first question read from disk as after a reboot."""
    from rag.view import advise

    advise([p for p in folder.rglob("*") if p.is_file()], "DONTNEED")


def stage_scale(ctx: Ctx, rep: Report, n: int, store: Path, synth: Path) -> None:
    """Fresh processes over the largest index: time to load it, to answer, and peak memory, per arm."""
    qs = ctx.questions[: ctx.plan.child_answers]

    def child(name: str, args: dict[str, Any]) -> dict[str, Any]:
        _drop_page_cache(Path(args.get("store") or args["synth"]))  # each arm starts cold, as after a reboot
        return _run_child(name, args, ctx.env)

    got = {
        "ours": child("ours-scale", {"store": str(store), "questions": qs}),
        "naive": child("naive-scale", {"store": str(store), "questions": qs}),
        "floor": child("floor-scale", {"synth": str(synth), "questions": qs, "model": ctx.model_files[0],
                                       "tokenizer": ctx.model_files[1]}),
    }
    rep.meta[f"scale@{n}"] = got
    rep.add(Stage(f"peak_rss@{n}", f"Peak RSS, fresh process answering at {n:,} chunks", "MB",
                  {a: _one(g["rss_mb"], 1) for a, g in got.items()},
                  note="ours: Pipeline (extractive) incl. MiniLM; naive: Chroma + rank_bm25 + padded MiniLM; "
                       "floor: vectors + bm25s + MiniLM"))
    rep.add(Stage(f"scale_load@{n}", f"Open the {n:,}-chunk index until ready to search", "s",
                  {a: _one(g["load_s"], 3) for a, g in got.items()},
                  note="every arm with its files dropped from the page cache first (a cold start); "
                       "ours: Pipeline.open() (saved view, MiniLM session, Chroma's HNSW index); naive: Chroma + "
                       "BM25Retriever over every document; floor: np.load + bm25s index + MiniLM session"))
    rep.add(Stage(f"scale_first@{n}", f"First question after load at {n:,} chunks", "s",
                  {a: _one(g["answers_s"][0], 3) for a, g in got.items()},
                  note="ours: whole extractive answer; naive/floor: retrieval incl. query embedding"))
    rep.add(Stage(f"scale_answer@{n}", f"Later questions at {n:,} chunks", "s",
                  {a: _summary(g["answers_s"][1:] or g["answers_s"]) for a, g in got.items()}))


def stage_local(ctx: Ctx, rep: Report, include_local: bool) -> None:
    """Prompt size and time to first token of the local answerer's model (Qwen2.5-Coder-1.5B when installed, else
    SmolLM2): ours vs LangChain LlamaCpp vs raw llama.cpp."""
    ids = [("local_load", "Local model: load / server start", "s"),
           ("local_prompt_tokens", "Local model: prompt tokens", "tokens"),
           ("local_ttft", "Local model: time to first token after retrieval", "s"),
           ("local_first_words", "Local model: question to first words", "s")]
    from rag.llm.models import llama_cpp_installed

    reason = ("smoke run" if ctx.smoke else "--no-local" if not include_local
              else "llama_cpp is not installed (pip install -e '.[local]')"
              if not llama_cpp_installed() else "")
    if reason:
        for sid, title, unit in ids:
            rep.skip(sid, title, unit, reason)
        return
    from langchain_community.llms import LlamaCpp
    from llama_cpp import Llama

    from rag.llm.local import get_local_server, local_model_path, stop_local_server

    settings = _shipped(data_dir=ctx.ours_dir, answerer="local", reader="off")
    gguf = str(local_model_path(settings))
    from rag.answer import Pipeline

    pipe = Pipeline(settings)
    naive = Naive(_naive_vectorstore(ctx.padded, directory=ctx.naive_dir))
    prompt = _stuff_prompt()
    vocab = Llama(gguf, vocab_only=True, verbose=False)
    threads = settings.local_threads or os.cpu_count() or 1
    loads: dict[str, float] = {}
    t = time.perf_counter()
    server = get_local_server(settings)
    loads["ours"] = time.perf_counter() - t
    t = time.perf_counter()
    raw = Llama(gguf, n_ctx=settings.local_ctx, n_threads=threads, n_threads_batch=threads, seed=SEED, verbose=False)
    loads["floor"] = time.perf_counter() - t
    t = time.perf_counter()
    chain_llm = LlamaCpp(model_path=gguf, n_ctx=settings.local_ctx, seed=SEED, verbose=False)  # type: ignore[call-arg]
    loads["naive"] = time.perf_counter() - t

    def chatml_tokens(messages: list[tuple[str, str]]) -> int:
        text = "".join(f"<|im_start|>{r}\n{c}<|im_end|>\n" for r, c in messages) + "<|im_start|>assistant\n"
        return len(vocab.tokenize(text.encode(), add_bos=False, special=True))

    def ours_messages(q: str) -> list[tuple[str, str]]:
        from rag.answer import generate

        state = pipe.prepare(q, answerer="local")
        return generate.messages(state.analysis, state.retrieved.sources, settings.local_prompt_token_budget,
                                 settings.max_answer_sentences)

    res: dict[str, dict[str, list[float]]] = {a: {"tokens": [], "ttft": [], "first": []} for a in ARMS}

    def ours(q: str) -> None:
        t0 = time.perf_counter()
        stream = pipe.stream(q, answerer="local")
        t1 = t0
        for kind, value in stream:
            if kind == "sources":
                t1 = time.perf_counter()
            elif kind == "reset":
                raise RuntimeError(f"the local answerer failed and fell back to extractive: {value}")
            elif kind == "text":
                break  # the first words: closing the stream closes the HTTP request, and the server stops
        t2 = time.perf_counter()
        stream.close()
        _wait_idle(server.pid)  # in case the server keeps generating for the closed request
        res["ours"]["ttft"].append(t2 - t1)
        res["ours"]["first"].append(t2 - t0)
        res["ours"]["tokens"].append(chatml_tokens(ours_messages(q)))

    def floor(q: str) -> None:
        t0 = time.perf_counter()
        messages = ours_messages(q)
        t1 = time.perf_counter()
        stream = raw.create_chat_completion([{"role": r, "content": c} for r, c in messages], stream=True,
                                            max_tokens=settings.llm_max_tokens, temperature=0)
        for chunk in stream:
            if chunk["choices"][0]["delta"].get("content"):  # type: ignore[index]
                break
        t2 = time.perf_counter()
        res["floor"]["ttft"].append(t2 - t1)
        res["floor"]["first"].append(t2 - t0)
        res["floor"]["tokens"].append(chatml_tokens(messages))

    def naive_fn(q: str) -> None:
        t0 = time.perf_counter()
        docs = naive.ensemble.invoke(q)[:NAIVE_K]
        text = prompt.format(context="\n\n".join(d.page_content for d in docs), question=q)
        t1 = time.perf_counter()
        for chunk in chain_llm.stream(text):
            if chunk:
                break
        t2 = time.perf_counter()
        res["naive"]["ttft"].append(t2 - t1)
        res["naive"]["first"].append(t2 - t0)
        res["naive"]["tokens"].append(len(chain_llm.client.tokenize(text.encode())))

    fns = {"ours": ours, "naive": naive_fn, "floor": floor}
    try:
        ours(ctx.questions[-1])  # warm-up: server, prompt prefix cache (naive is not warmed: each call is slow)
        floor(ctx.questions[-1])
        for v in res.values():
            for lst in v.values():
                lst.clear()
        spent = dict.fromkeys(ARMS, 0.0)
        for i, q in enumerate(ctx.questions[: ctx.plan.local_questions]):
            for arm in _rotate(list(ARMS), i):
                if i and spent[arm] > ctx.plan.local_budget_s:
                    continue
                t = time.perf_counter()
                fns[arm](q)
                spent[arm] += time.perf_counter() - t
    finally:
        stop_local_server()
        del raw, chain_llm
        gc.collect()
    rep.add(Stage("local_load", "Local model: load (ours: start the llama.cpp server)", "s",
                  {a: _one(v, 3) for a, v in loads.items()}))
    rep.add(Stage("local_prompt_tokens", "Local model: prompt tokens", "tokens",
                  {a: _summary(r["tokens"]) for a, r in res.items()},
                  note=f"ours: passages within local_prompt_token_budget={settings.local_prompt_token_budget} + "
                       f"system prompt; naive: {NAIVE_K} passages in LangChain's stuff prompt; floor = ours' prompt"))
    rep.add(Stage("local_ttft", "Local model: time to first token after retrieval", "s",
                  {a: _summary(r["ttft"]) for a, r in res.items()},
                  note=f"ours: llama.cpp server + ChatOpenAI stream ({threads} threads); naive: LangChain LlamaCpp "
                       "defaults (n_batch=8, n_threads=cores//2; n_ctx raised to fit the prompt); floor: in-process "
                       "llama_cpp.Llama, same prompt as ours"))
    rep.add(Stage("local_first_words", "Local model: question to first words", "s",
                  {a: _summary(r["first"]) for a, r in res.items()}))


def stage_reading(ctx: Ctx, rep: Report, include_local: bool) -> None:
    """The reading model per question: the extractive text first (rules), then the reading decisions, their time
    beside llama.cpp's own prefill of the same tokens (the floor), tokens prefilled; and the LLM writer with it."""
    ids = [("reading_warm", "Reading model: start and read the 21 abstracts ahead (once, in the background)", "s"),
           ("reading_first_text", "Reading on: question to the first (rules') extractive text", "s"),
           ("reading_time", "Reading decisions per question (ours: wall; floor: llama.cpp's prefill)", "s"),
           ("reading_overhead", "Reading time ÷ llama.cpp's own prefill of the same tokens", "×"),
           ("reading_tokens", "Reading: tokens prefilled per question", "tokens"),
           ("reading_answer", "Reading on: question to the checked answer", "s"),
           ("writer_answer", "LLM writer (local 1.5B) with the reader: question to the checked answer", "s"),
           ("writer_words", "LLM writer: words in its checked answer", "words")]
    from rag.llm.models import DEFAULT_READER, KNOWN, installed

    reason = ("smoke run" if ctx.smoke else "--no-local" if not include_local
              else "the reading model is not installed (pip install -e '.[local]')"
              if not installed(KNOWN[DEFAULT_READER]) else "")
    if reason:
        for sid, title, unit in ids:
            rep.skip(sid, title, unit, reason)
        return
    from rag.answer import Pipeline
    from rag.llm.local import stop_local_server

    settings = _shipped(data_dir=ctx.tmp / "reading", reader="on", answerer="extractive")
    pipe = Pipeline(settings)
    t = time.perf_counter()
    pipe.reader.warm(pipe.papers()).result()
    warm = time.perf_counter() - t
    first, read, floor, tokens, total, writer, generated = [], [], [], [], [], [], []
    questions = ctx.questions[: ctx.plan.reading_questions]
    for q in questions:  # new questions against a new judgment cache: every decision is read
        t0 = time.perf_counter()
        answer = None
        for kind, value in pipe.stream(q, preliminary=True):
            if kind == "text" and not first[len(total):]:
                first.append(time.perf_counter() - t0)
            elif kind == "answer":
                answer = value
        total.append(time.perf_counter() - t0)
        r = answer.reading if answer is not None else None
        if r is not None and r.prefill_tokens:
            read.append(r.read_ms / 1000)
            floor.append(r.llama_ms / 1000)
            tokens.append(float(r.prefill_tokens))
    try:
        for q in questions[: max(2, ctx.plan.local_questions)]:
            t0 = time.perf_counter()
            answer = pipe.answer(q, answerer="local")
            writer.append(time.perf_counter() - t0)
            generated.append(float(len(answer.answer.split())))
    finally:
        stop_local_server()
        pipe.reader().close()
    ratios = [a / b for a, b in zip(read, floor, strict=True) if b]
    rep.add(Stage("reading_warm", ids[0][1], "s", {"ours": _one(warm, 2)}))
    rep.add(Stage("reading_first_text", ids[1][1], "s", {"ours": _summary(first)}))
    rep.add(Stage("reading_time", ids[2][1], "s", {"ours": _summary(read), "floor": _summary(floor)},
                  note=f"{len(read)} of {len(questions)} questions read (the others are overviews, comparisons "
                       "or bibliographic, which the rules decide); RAG_READER_BUDGET=5 s"))
    rep.add(Stage("reading_overhead", ids[3][1], "×", {"ours": _summary(ratios)}))
    rep.add(Stage("reading_tokens", ids[4][1], "tokens", {"ours": _summary(tokens)}))
    rep.add(Stage("reading_answer", ids[5][1], "s", {"ours": _summary(total)}))
    rep.add(Stage("writer_answer", ids[6][1], "s", {"ours": _summary(writer)},
                  note="the writer gets the passages of the papers the reader kept; its text is checked sentence by "
                       "sentence. Time to its first token vs llama.cpp's floor: the local-model rows"))
    rep.add(Stage("writer_words", ids[7][1], "words", {"ours": _summary(generated)}))


def stage_ui(ctx: Ctx, rep: Report) -> None:
    """`paperchat chat` until it serves HTTP 200, then /ask through gradio_client for 1 and 4 users."""
    ids = [("launch_ready", "Chat server: launch to HTTP 200", "s"),
           ("ui_first_1", "UI: first chunk, 1 user (gradio_client /ask)", "s"),
           ("ui_first_4", "UI: first chunk, 4 concurrent users (gradio_client /ask)", "s")]
    reason = "smoke run" if ctx.smoke else "" if importlib.util.find_spec("gradio_client") else "no gradio_client"
    if reason:
        for sid, title, unit in ids:
            rep.skip(sid, title, unit, reason)
        return
    from rag.proc import ProcessExited, free_port, stop_process, wait_http

    env = _child_env(RAG_DATA_DIR=str(ctx.ours_dir), RAG_ANSWERER="extractive")
    launches: list[float] = []
    single: list[float] = []
    multi: list[float] = []
    for i in range(ctx.plan.ui_launches):
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        logfile = open(ctx.tmp / f"chat-{i}.log", "wb")  # noqa: SIM115 - closed in finally
        t = time.perf_counter()
        proc = subprocess.Popen([*_paperchat(), "chat", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                cwd=ROOT, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            try:
                wait_http(url, 180, proc=proc, status=200, interval=0.05)
            except ProcessExited as exc:
                tail = (ctx.tmp / f"chat-{i}.log").read_text(errors="replace")[-500:]
                raise RuntimeError(f"paperchat chat exited with code {exc.returncode}: {tail}") from None
            launches.append(time.perf_counter() - t)
            if i == ctx.plan.ui_launches - 1:
                single, multi = _ui_clients(url, ctx.questions, ctx.plan.ui_requests)
        finally:
            stop_process(proc, 15)
            logfile.close()
    rep.add(Stage("launch_ready", "Chat server: launch to HTTP 200", "s", {"ours": _summary(launches)},
                  note="includes building the pipeline and one warm-up answer before serving"))
    note = "/ask is the public API and returns the whole answer (the streaming chat handler is private)"
    rep.add(Stage("ui_first_1", "UI: first chunk, 1 user (gradio_client /ask)", "s", {"ours": _summary(single)},
                  note=note))
    rep.add(Stage("ui_first_4", "UI: first chunk, 4 concurrent users (gradio_client /ask)", "s",
                  {"ours": _summary(multi)}, note=note))


def _ui_clients(url: str, questions: list[str], per_user: int) -> tuple[list[float], list[float]]:
    """Seconds per /ask request for one user, then for four users at once."""
    from gradio_client import Client

    clients = [Client(url, verbose=False, download_files=False, analytics_enabled=False) for _ in range(4)]

    def ask(client: Any, q: str) -> float:
        t = time.perf_counter()
        client.predict(q, api_name="/ask")
        return time.perf_counter() - t

    ask(clients[0], questions[-1])  # warm-up
    single = [ask(clients[0], q) for q in questions[:per_user]]
    multi: list[float] = []
    lock, barrier = threading.Lock(), threading.Barrier(4)

    def user(k: int) -> None:
        barrier.wait()
        for j in range(per_user):
            dt = ask(clients[k], questions[(k * per_user + j) % len(questions)])
            with lock:
                multi.append(dt)

    threads = [threading.Thread(target=user, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for c in clients:
        with contextlib.suppress(Exception):
            c.close()
    return single, multi


# -- the report --------------------------------------------------------------------------------------------------


def _fmt(stage: Stage, arm: str) -> str:
    """A stage's number for one arm, with its unit."""
    got = stage.arms.get(arm)
    if not got:
        return "—"
    if "p50" in got:
        digits = 2 if stage.unit == "s" else 1 if stage.unit == "ms" else 0
        if stage.unit == "tokens" or got.get("n", 0) <= 1:
            return f"{got['p50']:,.{digits}f} {stage.unit}"
        return f"{got['p50']:,.{digits}f} {stage.unit} (p95 {got['p95']:,.{digits}f})"
    value = got["value"]
    if stage.unit == "recall":
        return f"{value:.3f}"
    digits = 2 if stage.unit == "s" else 0
    return f"{value:,.{digits}f} {stage.unit}"


def _fmt_ratio(r: float | None) -> str:
    """×0.12 style, or a dash."""
    return "—" if r is None else f"×{r:.3g}"


def evaluate_targets(rep: Report) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it was met."""
    out = []
    for t in _targets(rep.meta["largest_size"]):
        stage = rep.stages.get(t.stage)
        value = stage.value("ours") if stage and stage.status == "ok" else None
        met = None if value is None else (value >= t.limit if t.unit == "≥" else value <= t.limit)
        out.append({"target": t.label, "stage": t.stage, "limit": t.limit, "unit": t.unit, "value": value,
                    "met": met, "note": "" if value is not None else (stage.note if stage else "not measured")})
    return out


def to_markdown(rep: Report, targets: list[dict[str, Any]], growth: list[dict[str, Any]] | None = None) -> str:
    """The report as Markdown: one table of stages, one of targets, how the scale figures grow, then notes."""
    meta = rep.meta
    by_stage = {t["stage"]: t for t in targets}
    lines = ["# paperchat benchmark", "",
             f"{meta['mode']} run, {meta['cpus']} CPUs, load average {meta['loadavg_start']} at start and "
             f"{meta['loadavg_end']} at end, {meta['total_s']:.0f} s in all. CPU check (2M-step Python loop): "
             f"{meta['cpu_calibration_start']['python_loop_ms']:.0f} ms at start, "
             f"{meta['cpu_calibration_end']['python_loop_ms']:.0f} ms at end (lower is faster: compare runs by it). "
             "Ratios are ours ÷ arm: below 1 means ours takes less (for chunks/s and recall, above 1 means ours is "
             "higher).", "",
             "| Stage | ours | naive | floor | ours÷naive | ours÷floor | target |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for st in rep.stages.values():
        t = by_stage.get(st.id)
        goal = ""
        if t:
            sign = "≥" if t["unit"] == "≥" else "≤"
            unit = "" if t["unit"] == "≥" else f" {t['unit']}"
            goal = f"{sign} {t['limit']:g}{unit}: " + ("met" if t["met"] else "**missed**" if t["met"] is False
                                                       else "not measured")
        if st.status != "ok":
            lines.append(f"| {st.title} | *{st.status}: {st.note}* | | | | | {goal} |")
            continue
        lines.append(f"| {st.title} | {_fmt(st, 'ours')} | {_fmt(st, 'naive')} | {_fmt(st, 'floor')} | "
                     f"{_fmt_ratio(st.ratio('naive'))} | {_fmt_ratio(st.ratio('floor'))} | {goal} |")
    lines += ["", "## Targets (shipped configuration, 2 cores)", "", "| Target | measured | limit | result |",
              "|---|---:|---:|---|"]
    for t in targets:
        unit = "" if t["unit"] == "≥" else f" {t['unit']}"
        value = "—" if t["value"] is None else f"{t['value']:,.3g}{unit}"
        result = "met" if t["met"] else "**missed**" if t["met"] is False else f"not measured ({t['note']})"
        lines.append(f"| {t['target']} | {value} | {'≥' if t['unit'] == '≥' else '≤'} {t['limit']:g}{unit} | "
                     f"{result} |")
    if growth:
        cols = list(growth[0])
        lines += ["", "## Growth (ours; slope of log value vs log chunks between the two largest sizes)", "",
                  "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(f"{g[c]:,}" if isinstance(g[c], float | int) else str(g[c]) for c in cols) + " |"
                  for g in growth]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in rep.notes]
    lines += [f"- **{st.title}**: {st.note}" for st in rep.stages.values() if st.note and st.status == "ok"]
    return "\n".join(lines) + "\n"


# -- entry point -------------------------------------------------------------------------------------------------


def _load_questions(n: int) -> list[str]:
    """n single-turn questions from the evaluation set, in a fixed shuffled order."""
    from rag.settings import QUESTIONS_PATH

    rows = [json.loads(line) for line in QUESTIONS_PATH.read_text().splitlines() if line.strip()]
    qs = [r["question"] for r in rows if not r.get("history")]
    random.Random(SEED).shuffle(qs)
    return qs[:n]


def _section(rep: Report, name: str, fn: Callable[..., None], *args: Any) -> None:
    """Run one group of stages; a failure becomes an 'error' row instead of ending the run."""
    _say(f"[{name}]")
    t = time.perf_counter()
    try:
        fn(*args)
    except Exception as exc:
        log.exception("bench section %s failed", name)
        rep.add(Stage(f"error:{name}", f"{name} failed", "", status="error", note=f"{type(exc).__name__}: {exc}"))
    rep.meta["section_s"][name] = round(time.perf_counter() - t, 1)


SECTIONS = ("query embedding", "cold start", "answer", "retrieval", "chat UI", "local model", "reading model")


def run(out: Path, sizes: list[int], smoke: bool = False, include_local: bool = True,
        cache_dir: Path | None = None, only: list[str] | None = None) -> dict[str, Any]:
    """Run every stage (or only the named sections of SECTIONS; the ingest the others need always runs), write
    out/bench.json and out/bench.md, echo the table, and return the JSON data."""
    import numpy as np
    import typer

    from rag.corpus import load_corpus
    from rag.embeddings import get_embeddings, minilm_files

    unknown = sorted(set(only or ()) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown section {', '.join(unknown)}: choose from {', '.join(SECTIONS)}")
    t_start = time.perf_counter()
    plan = SMOKE if smoke else FULL
    sizes = [SMOKE_SIZE] if smoke else sorted({int(s) for s in sizes if int(s) > 0})
    out.mkdir(parents=True, exist_ok=True)
    cache = cache_dir or ROOT / ".bench-cache"
    cache.mkdir(parents=True, exist_ok=True)
    random.seed(SEED)
    np.random.seed(SEED)
    rep = Report()
    rep.meta.update(mode="smoke" if smoke else "full", sizes=sizes, largest_size=sizes[-1] if sizes else ABSTRACTS,
                    seed=SEED, cpus=os.cpu_count(), python=platform.python_version(), platform=platform.platform(),
                    loadavg_start=[round(x, 2) for x in os.getloadavg()], section_s={}, plan=asdict(plan),
                    synthetic={"clusters": N_CLUSTERS, "noise_sigma": NOISE_SIGMA,
                               "chunks_per_paper": CHUNKS_PER_PAPER, "generator": GEN_VERSION},
                    packages={p: _version(p) for p in ("chromadb", "langchain-core", "langchain-chroma",
                                                       "langchain-classic", "langchain-community", "rank-bm25",
                                                       "bm25s", "onnxruntime", "llama_cpp_python", "gradio")})
    rep.notes += [
        "naive embeds with our own int8 ONNX MiniLM padded to 256 tokens: Chroma's default embedding function "
        "would download its ONNX model at run time, which fails offline, so it is emulated faithfully.",
        "Synthetic corpora recombine abstract sentences; their vectors are real MiniLM sentence vectors mixed into "
        f"{N_CLUSTERS} cluster centres plus Gaussian noise (σ={NOISE_SIGMA}/dim), normalised; "
        f"{CHUNKS_PER_PAPER} chunks per synthetic paper. Vectors are inserted directly (not embedded).",
        "Retrieval rows use precomputed query vectors; query embedding is its own row. Arms run interleaved, "
        "query by query, after warm-ups, on the same questions from corpus/questions.jsonl.",
        "Every row but the 'Reading' and 'LLM writer' ones runs with the reading model off (RAG_READER=off): they "
        "time the rules' extractive answer, which the web chat also shows first when reading is on; the reading "
        "rows time what reading adds on top.",
    ]
    import bm25s  # noqa: F401 - imported first: it sets its own logger to DEBUG when imported

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    rep.meta["cpu_calibration_start"] = _calibrate()
    settings = _shipped()
    ours_emb = get_embeddings(settings)
    padded = padded_embeddings()
    model, tokenizer = (str(p) for p in minilm_files())
    papers = load_corpus(settings.corpus)
    questions = _load_questions(plan.questions)
    qvecs = {q: v.tolist() for q, v in zip(questions, ours_emb.encode(questions), strict=True)}
    with tempfile.TemporaryDirectory(prefix="paperchat-bench-") as tmp:
        ctx = Ctx(plan=plan, smoke=smoke, tmp=Path(tmp), cache=cache, env=_child_env(), papers=papers,
                  questions=questions, qvecs=qvecs, ours_emb=ours_emb, padded=padded,
                  raw=RawMiniLM(model, tokenizer), model_files=(model, tokenizer))
        def section(name: str, fn: Callable[..., None], *args: Any) -> None:
            if only is None or name.split(":")[0] in only:
                _section(rep, name, fn, *args)

        section("query embedding", stage_query_embedding, ctx, rep)
        _section(rep, "ingest", stage_ingest, ctx, rep)
        if ctx.ours_dir is None:
            raise RuntimeError("ingest failed, so nothing else can be measured; see the log")
        section("cold start", stage_cold_start, ctx, rep)
        section("answer", stage_answer, ctx, rep)
        section("retrieval: abstracts", stage_retrieval, ctx, rep, ABSTRACTS)
        section("chat UI", stage_ui, ctx, rep)
        section("local model", stage_local, ctx, rep, include_local)
        section("reading model", stage_reading, ctx, rep, include_local)
        for n in sizes:
            section(f"retrieval: {n:,}", stage_retrieval, ctx, rep, n)
    rep.meta.update(loadavg_end=[round(x, 2) for x in os.getloadavg()], total_s=round(time.perf_counter() - t_start, 1),
                    bench_process_peak_rss_mb=round(_rss_mb(), 1), cpu_calibration_end=_calibrate())
    targets = evaluate_targets(rep)
    growth = project(rep, sizes)
    data = {"meta": rep.meta, "notes": rep.notes, "stages": [s.to_dict() for s in rep.stages.values()],
            "targets": targets, "growth": growth}
    markdown = to_markdown(rep, targets, growth)
    (out / "bench.json").write_text(json.dumps(data, indent=2, ensure_ascii=False))
    (out / "bench.md").write_text(markdown)
    typer.echo(markdown)
    return data


# -- child processes (python -m bench.runner <name> <json>) ------------------------------------------------------


def _child_build_store(a: dict[str, Any]) -> dict[str, Any]:
    """Insert a synthetic corpus's vectors, texts and papers into a new index with ours' layout."""
    import numpy as np

    from rag.store import open_store

    synth = Path(a["synth"])
    data = json.loads((synth / "synth.json").read_text())
    vectors = np.load(synth / "vectors.npy")
    store = open_store(_shipped(data_dir=Path(a["store"])))
    papers, paper_of, texts = data["papers"], data["paper_of"], data["texts"]
    batch = min(5000, store.client.get_max_batch_size())
    t = time.perf_counter()
    for s in range(0, len(texts), batch):
        e = min(s + batch, len(texts))
        store.chunks.add(ids=data["ids"][s:e], embeddings=vectors[s:e], documents=texts[s:e],
                         metadatas=[{"paper_id": papers[paper_of[j]]["id"], "title": papers[paper_of[j]]["title"],
                                     "start": 0, "end": len(texts[j]), "index": j % CHUNKS_PER_PAPER}
                                    for j in range(s, e)])
    seconds = time.perf_counter() - t
    centre = np.zeros((len(papers), vectors.shape[1]), dtype=np.float32)
    np.add.at(centre, np.asarray(paper_of), vectors)
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    first = {}
    for j, p in enumerate(paper_of):
        first.setdefault(p, texts[j])
    for s in range(0, len(papers), batch):
        e = min(s + batch, len(papers))
        store.papers.add(ids=[p["id"] for p in papers[s:e]], embeddings=centre[s:e],
                         documents=[first[k] for k in range(s, e)],
                         metadatas=[{"title": papers[k]["title"], "aliases": json.dumps(papers[k]["aliases"]),
                                     "source": "synthetic", "order": k, "chunks": CHUNKS_PER_PAPER}
                                    for k in range(s, e)])
    return {"seconds": seconds, "chunks": len(texts), "papers": len(papers)}


def _child_add_sentences(a: dict[str, Any]) -> dict[str, Any]:
    """Store a synthetic index's sentence vectors as ingest does: each distinct sentence embedded once with MiniLM."""
    from rag.embeddings import get_embeddings
    from rag.ingest import sentence_rows, stored_chunks
    from rag.store import open_store

    settings = _shipped(data_dir=Path(a["store"]))
    store, embedder = open_store(settings), get_embeddings(settings)
    rows = sentence_rows(stored_chunks(store))
    texts = list(dict.fromkeys(text for _, _, text in rows))
    vecs = dict(zip(texts, embedder.encode(texts), strict=True))
    assert store.sentences is not None
    t = time.perf_counter()
    batch = min(5000, store.client.get_max_batch_size())
    for s in range(0, len(rows), batch):
        part = rows[s : s + batch]
        store.sentences.add(ids=[r[0] for r in part], embeddings=[vecs[r[2]] for r in part],  # type: ignore[arg-type]
                            metadatas=[r[1] for r in part])  # type: ignore[arg-type]
    return {"seconds": time.perf_counter() - t, "sentences": len(rows), "distinct": len(texts)}


def _child_ours_cold(a: dict[str, Any]) -> dict[str, Any]:
    """Where ours' cold start goes, inside one fresh process."""
    t0 = time.perf_counter()
    from rag.answer import Pipeline
    from rag.settings import Settings

    t1 = time.perf_counter()
    pipe = Pipeline(Settings())
    pipe.papers()
    t2 = time.perf_counter()
    pipe.answer(a["question"])
    t3 = time.perf_counter()
    return {"import_s": t1 - t0, "index_s": t2 - t1, "answer_s": t3 - t2}


def _child_naive_cold(a: dict[str, Any]) -> dict[str, Any]:
    """The naive stack from a fresh process to its first retrieved passages."""
    naive = Naive(_naive_vectorstore(padded_embeddings(), directory=Path(a["dir"])))
    return {"passages": len(naive.ensemble.invoke(a["question"]))}


def _child_floor_cold(a: dict[str, Any]) -> dict[str, Any]:
    """The floor from a fresh process to its first retrieved passages."""
    floor = Floor.load(Path(a["dir"]))
    raw = RawMiniLM(a["model"], a["tokenizer"])
    return {"passages": len(floor.fused(a["question"], raw.embed(a["question"])))}


def _timed_answers(fn: Callable[[str], Any], questions: list[str]) -> list[float]:
    """Seconds per question."""
    out = []
    for q in questions:
        t = time.perf_counter()
        fn(q)
        out.append(time.perf_counter() - t)
    return out


def _child_ours_scale(a: dict[str, Any]) -> dict[str, Any]:
    """Ours over a large index: load, answers, peak memory."""
    from rag.answer import Pipeline

    pipe = Pipeline(_shipped(data_dir=Path(a["store"])))
    t = time.perf_counter()
    pipe.open()
    load = time.perf_counter() - t
    answers = _timed_answers(pipe.answer, a["questions"])
    return {"load_s": load, "answers_s": answers, "rss_mb": _rss_mb()}


def _child_naive_scale(a: dict[str, Any]) -> dict[str, Any]:
    """The naive stack over a large index: load, retrievals, peak memory."""
    import langchain_chroma  # noqa: F401 - imports are the cold start's business, not the load's
    import langchain_classic.retrievers  # noqa: F401
    import langchain_community.retrievers  # noqa: F401

    t = time.perf_counter()
    naive = Naive(_naive_vectorstore(padded_embeddings(), directory=Path(a["store"]) / "chroma",
                                     collection="paperchat"))
    load = time.perf_counter() - t
    answers = _timed_answers(naive.ensemble.invoke, a["questions"])
    return {"load_s": load, "answers_s": answers, "rss_mb": _rss_mb()}


def _child_floor_scale(a: dict[str, Any]) -> dict[str, Any]:
    """The floor over a large corpus: load, retrievals, peak memory."""
    import bm25s  # noqa: F401 - imports are the cold start's business, not the load's
    import onnxruntime  # noqa: F401

    t = time.perf_counter()
    floor = Floor.load(Path(a["synth"]))
    raw = RawMiniLM(a["model"], a["tokenizer"])
    load = time.perf_counter() - t
    answers = _timed_answers(lambda q: floor.fused(q, raw.embed(q)), a["questions"])
    return {"load_s": load, "answers_s": answers, "rss_mb": _rss_mb()}


_CHILDREN: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "build-store": _child_build_store, "add-sentences": _child_add_sentences, "ours-cold": _child_ours_cold, "naive-cold": _child_naive_cold,
    "floor-cold": _child_floor_cold, "ours-scale": _child_ours_scale, "naive-scale": _child_naive_scale,
    "floor-scale": _child_floor_scale,
}

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print(json.dumps(_CHILDREN[sys.argv[1]](json.loads(sys.argv[2]))), flush=True)  # noqa: T201 - child protocol
