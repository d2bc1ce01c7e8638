"""`python -m bench`: benchmark every stage against a naive LangChain baseline and a no-framework floor."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@cli.command()
def main(
    out: Annotated[Path, typer.Option(metavar="DIR", help="Directory for bench.json and bench.md.")] = Path("bench-out"),
    sizes: Annotated[str, typer.Option(
        metavar="N,N", help="Synthetic corpus sizes in chunks, comma-separated.")] = "10000,100000",
    smoke: Annotated[bool, typer.Option("--smoke", help="Tiny sizes and few repeats (CI).")] = False,
    local: Annotated[bool, typer.Option("--local/--no-local", help="Include the local llama.cpp model.")] = True,
    only: Annotated[str, typer.Option(
        metavar="SECTION,…", help="Only these sections (query embedding, cold start, answer, retrieval, chat UI, "
                                  "local model, reading model), comma-separated; the ingest they need always runs.")] = "",
) -> None:
    """Benchmark every stage; writes bench.json and bench.md and echoes the table (needs the [bench] extra)."""
    from bench.runner import run

    run(out=out, sizes=[int(x) for x in sizes.split(",") if x.strip()], smoke=smoke, include_local=local,
        only=[x.strip() for x in only.split(",") if x.strip()] or None)


cli()
