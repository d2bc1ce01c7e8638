"""The paperchat command line: ingest, papers, search, ask, chat, eval."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from rag.settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="paperchat: cited answers about research papers, offline by default.")
log = logging.getLogger("rag")


def _fail(message: str, code: int = 1) -> None:
    """Print one clear line to stderr and exit non-zero (no traceback)."""
    typer.secho(f"Error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _settings(**overrides: object) -> Settings:
    """Settings from the environment plus command-line overrides."""
    from pydantic import ValidationError

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        _fail(f"invalid setting: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
        raise  # unreachable


def _guard(fn):  # type: ignore[no-untyped-def]
    """Turn the library's expected errors into one-line messages."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        from rag.answer import QuestionError
        from rag.corpus import CorpusError
        from rag.embeddings import EmbeddingError
        from rag.prompts import PromptError
        from rag.store import StoreError

        try:
            return fn(*args, **kwargs)
        except (QuestionError, CorpusError, StoreError, EmbeddingError, PromptError, ValueError) as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")] = False) -> None:
    """Configure logging."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("bm25s", "httpx", "chromadb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


PROGRESS_BAR_MIN = 256  # passages: below this an ingest takes a few seconds and a bar would only flicker


@app.command()
@_guard
def ingest(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Paper files: two-line page, .jsonl or .md.")] = None,
    reset: Annotated[bool, typer.Option("--reset", help="Delete the index first.")] = False,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Let a paper replace an indexed paper that has its id but another title.")] = False,
) -> None:
    """Index papers (the bundled corpus when no PATH is given); idempotent.

    A paper with the id and title of an indexed one updates it; the same id with another title is refused
    unless --replace is given.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from rag.ingest import ingest_paths

    settings = _settings()
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("passages"),
                   TimeRemainingColumn(), transient=True, console=Console(stderr=True))
    task = None

    def progress(done: int, total: int, pid: str) -> None:
        nonlocal task
        if task is None and total >= PROGRESS_BAR_MIN:
            bar.start()
            task = bar.add_task("Indexing", total=total)
        if task is not None:
            bar.update(task, completed=done, description=f"Indexing {pid}" if pid else "Indexing")

    try:
        report = ingest_paths(list(paths or []), settings, reset=reset, progress=progress, replace=replace)
    finally:
        bar.stop()
    typer.echo(f"Indexed {report.papers} paper(s): {report.added} new chunk(s), {report.removed} stale removed, "
               f"{report.unchanged} unchanged ({report.seconds:.1f}s).")


@app.command()
@_guard
def papers(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the indexed papers."""
    from rag.answer import Pipeline

    found = Pipeline(_settings()).papers()
    if as_json:
        typer.echo(json.dumps([{"id": p.id, "title": p.title, "aliases": p.aliases} for p in found], indent=2))
        return
    for p in found:
        typer.echo(f"{p.id:<32} {p.title}")


@app.command()
@_guard
def search(
    question: str,
    k: Annotated[int, typer.Option("-k", help="Number of passages.")] = 6,
    paper: Annotated[Optional[list[str]], typer.Option("--paper", help="Restrict to paper id(s).")] = None,
    retrieval: Annotated[Optional[str], typer.Option(help="hybrid or dense.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the passages retrieval finds for a question."""
    from rag.answer import Pipeline, validate_question
    from rag.retrieve import make_retriever

    settings = _settings(retrieval=retrieval)
    question = validate_question(question, settings)
    pipe = Pipeline(settings)
    known = {p.id for p in pipe.papers()}
    if paper and set(paper) - known:
        _fail(f"unknown paper id(s): {', '.join(sorted(set(paper) - known))}")
    docs = make_retriever(pipe.index, settings, paper_ids=paper, k=k).search(question)
    rows = [{"rank": d.metadata["rank"], "paper_id": d.metadata["paper_id"], "title": d.metadata["title"],
             "chunk_id": d.metadata["chunk_id"], "text": d.page_content, "score": d.metadata["score"]} for d in docs]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for r in rows:
        typer.echo(f"{r['rank']}. [{r['paper_id']}] {r['title']}  (score {r['score']:.4f})\n   {r['text'][:300]}\n")


@app.command()
@_guard
def ask(
    question: str,
    answerer: Annotated[Optional[str], typer.Option(help="extractive, openai or local.")] = None,
    paper: Annotated[Optional[list[str]], typer.Option("--paper", help="Restrict to paper id(s).")] = None,
    k: Annotated[Optional[int], typer.Option("-k", help="Number of passages.")] = None,
    retrieval: Annotated[Optional[str], typer.Option(help="hybrid or dense.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Answer a question with citations."""
    from rag.answer import Pipeline

    settings = _settings(retrieval=retrieval)
    ans = Pipeline(settings).answer(question, answerer=answerer, paper_ids=paper, k=k)
    if as_json:
        keys = {"question", "standalone_question", "answer", "abstained", "answerer", "sources", "sentences",
                "timings_ms", "grounded", "notice", "evidence", "closest_papers"}
        typer.echo(json.dumps(ans.model_dump(include=keys), indent=2, ensure_ascii=False))
        return
    if ans.notice:
        typer.secho(ans.notice, fg=typer.colors.YELLOW, err=True)
    typer.echo(ans.answer)
    if ans.evidence:
        typer.echo("\nExtractive evidence:\n" + ans.evidence)
    cited = {n for s in ans.sentences for n in s.citations}
    if cited:
        typer.echo("\nSources:")
        for s in ans.sources:
            if s.n in cited:
                typer.echo(f"[{s.n}] {s.title} ({s.paper_id})")


@app.command()
@_guard
def chat(
    host: Annotated[Optional[str], typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port to listen on.")] = None,
    share: Annotated[bool, typer.Option("--share", help="Create a public share link.")] = False,
) -> None:
    """Start the web chat (builds the index on first run)."""
    from ui.app import launch

    launch(_settings(host=host, port=port, share=share or None))


@app.command()
@_guard
def bench(
    out: Annotated[Path, typer.Option(help="Directory for bench.json and bench.md.")] = Path("bench-out"),
    sizes: Annotated[str, typer.Option(help="Synthetic corpus sizes in chunks, comma-separated.")] = "10000,100000",
    smoke: Annotated[bool, typer.Option("--smoke", help="Tiny sizes and few repeats (CI).")] = False,
    local: Annotated[bool, typer.Option("--local/--no-local", help="Include the local llama.cpp model.")] = True,
) -> None:
    """Benchmark every stage against a naive LangChain baseline and a no-framework floor."""
    from rag.bench import run

    run(out=out, sizes=[int(x) for x in sizes.split(",") if x.strip()], smoke=smoke, include_local=local)


@app.command("eval")
@_guard
def eval_(
    questions: Annotated[Optional[Path], typer.Option(help="Question set JSONL.")] = None,
    answerer: Annotated[Optional[list[str]], typer.Option(help="Answerer(s) to evaluate.")] = None,
    retrieval: Annotated[Optional[list[str]], typer.Option(help="Retrieval mode(s): hybrid, dense.")] = None,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("eval-out"),
    baseline: Annotated[Optional[Path], typer.Option(help="A previous --out directory to diff against.")] = None,
    minimum: Annotated[Optional[list[str]], typer.Option("--min", help="METRIC=VALUE gate (repeatable).")] = None,
    thresholds: Annotated[Optional[Path], typer.Option(help="JSON/TOML file of METRIC=VALUE gates.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N questions.")] = None,
    split: Annotated[Optional[str], typer.Option(help="Only questions of this split: tune or test.")] = None,
) -> None:
    """Run the question set through the chat's chain and write results, summary and report."""
    from rag.answer import Pipeline
    from rag.evaluate import check_thresholds, evaluate, load_questions, parse_thresholds, write_outputs
    from rag.settings import QUESTIONS_PATH

    gates = parse_thresholds(minimum or [], thresholds)
    qs = [q for q in load_questions(questions or QUESTIONS_PATH) if split is None or q.split == split][:limit]
    if not qs:
        raise typer.BadParameter(f"no questions{f' in split {split!r}' if split else ''}.")
    pipe = Pipeline(_settings())
    runs = []
    for mode in retrieval or ["hybrid"]:
        for name in answerer or [pipe.settings.answerer]:
            def answer_one(q, name=name, mode=mode):  # type: ignore[no-untyped-def]
                return pipe.answer(q.question, history=q.history, answerer=name, retrieval=mode)

            runs.append(evaluate(qs, answer_one, label=f"{name}/{mode}"))
    summary = write_outputs(runs, out, baseline)
    for label, metrics in summary["runs"].items():
        shown = ", ".join(f"{k}={metrics[k]['value']:.3f}" for k in
                          ("hit@1", "hit@5", "fact_recall", "accuracy", "strict_accuracy", "abstain_recall", "false_abstain_rate",
                           "citation_validity", "alce_citation_recall") if metrics.get(k, {}).get("value") is not None)
        typer.echo(f"{label}: {shown}")
    typer.echo(f"Report: {out / 'report.html'}")
    violations = check_thresholds(summary, gates) if gates else []
    for v in violations:
        typer.secho(f"Below threshold: {v}", err=True, fg=typer.colors.RED)
    if violations:
        raise typer.Exit(1)


@app.command("build-corpus")
@_guard
def build_corpus(
    page: Annotated[Path, typer.Argument(help="A two-line page of papers (title line, abstract line).")],
    out: Annotated[Path, typer.Option(help="Corpus JSONL to write.")] = Path("corpus/papers.jsonl"),
) -> None:
    """Turn a paper page into the corpus JSONL, deriving ids and aliases."""
    from rag.corpus import read_papers, write_corpus

    found = read_papers([page])
    write_corpus(found, out)
    typer.echo(f"Wrote {len(found)} papers to {out}")


def main() -> None:
    """Console-script entry point."""
    app()
