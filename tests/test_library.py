"""The library: folders of mixed files, added/updated/unchanged by content, removal, the listing, paged bodies.

Real MiniLM and real embedded Chroma; the CLI runs as a subprocess where a user would type it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chromadb.api.client import SharedSystemClient

from rag.answer import Pipeline
from rag.chunking import chunk_paper
from rag.files import collect, read_batch
from rag.ingest import NotIndexedError, ingest_papers, ingest_paths, remove_papers
from rag.serve.service import PaperService
from rag.settings import Settings
from rag.store import open_store
from rag.types import Body, Paper
from tests.test_ingest_safety import pick, run_cli, write_jsonl


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def folder(tmp_path: Path) -> Path:
    """A folder as a user keeps one: JSONL, Markdown, a two-line page in a subfolder, and files to ignore."""
    root = tmp_path / "papers"
    (root / "sub").mkdir(parents=True)
    write_jsonl(root / "two.jsonl", pick("seesaw", "2bp"))
    nesa = pick("nesa")[0]
    (root / "nesa.md").write_text(f"# {nesa.title}\n\n{nesa.abstract}\n", encoding="utf-8")
    ladder = pick("ladder-residual")[0]
    (root / "sub" / "page.txt").write_text(f"{ladder.title}\n{ladder.abstract}\n", encoding="utf-8")
    (root / "notes.docx").write_bytes(b"PK\x03\x04 not a paper")  # unknown kind: not looked at
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.jsonl").write_text("not json\n")  # hidden: not looked at
    return root


def test_collect_walks_folders_and_names_what_is_missing(tmp_path: Path) -> None:
    root = folder(tmp_path)
    files, problems = collect([root, tmp_path / "nowhere.pdf", tmp_path / "papers" / "notes.docx"])
    assert [f.name for f in files] == ["nesa.md", "page.txt", "two.jsonl", "notes.docx"]  # named: read anyway
    assert len(problems) == 1 and problems[0].path.endswith("nowhere.pdf") and "no such file" in problems[0].reason
    (tmp_path / "empty").mkdir()
    _, problems = collect([tmp_path / "empty"])
    assert "no paper files in this folder" in problems[0].reason


def test_batch_reports_a_bad_file_and_reads_the_rest(tmp_path: Path) -> None:
    root = folder(tmp_path)
    (root / "broken.jsonl").write_text('{"title": "A", "abstract": \n', encoding="utf-8")
    batch = read_batch([root])
    assert {p.kind for p in batch.papers} == {"jsonl", "markdown", "page"}
    assert len(batch.papers) == 4 and batch.files == 4
    assert [(Path(f.path).name, f.line) for f in batch.failed] == [("broken.jsonl", 1)]
    assert "invalid JSON" in batch.failed[0].reason


@pytest.mark.slow
def test_folder_ingest_is_idempotent_and_an_edit_is_an_update(tmp_path: Path, settings: Settings) -> None:
    root = folder(tmp_path)
    env = {"RAG_DATA_DIR": str(settings.data_dir)}
    first = run_cli("ingest", root, env=env)
    assert first.returncode == 0, first.stderr
    assert "Indexed 4 paper(s): 4 added, 0 updated, 0 unchanged" in first.stdout
    again = ingest_paths([root], settings)
    assert (len(again.new_papers), len(again.updated_papers), len(again.same_papers)) == (0, 0, 4)
    assert again.added == again.removed == 0
    nesa = pick("nesa")[0]
    (root / "nesa.md").write_text(f"# {nesa.title}\n\n{nesa.abstract} We also release the code.\n", encoding="utf-8")
    edited = ingest_paths([root], settings)
    assert edited.updated_papers == ["nesa"] and len(edited.same_papers) == 3 and edited.removed >= 1
    store = open_store(settings)
    records = {r.paper.id: r for r in store.records()}
    assert records["nesa"].paper.abstract.endswith("We also release the code.")
    assert records["nesa"].paper.added and records["nesa"].paper.digest
    texts = store.chunks.get(where={"paper_id": "nesa"}, include=["documents"])["documents"]
    assert sum("release the code" in t for t in texts) >= 1 and records["nesa"].chunks == len(texts)
    SharedSystemClient.clear_system_cache()


@pytest.mark.slow
def test_papers_lists_kind_source_passages_and_date(tmp_path: Path, settings: Settings) -> None:
    ingest_paths([folder(tmp_path)], settings)
    env = {"RAG_DATA_DIR": str(settings.data_dir)}
    shown = run_cli("papers", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    rows = {r["id"]: r for r in json.loads(shown.stdout)}
    assert rows["nesa"]["kind"] == "markdown" and rows["nesa"]["source"] == "nesa.md"
    assert rows["seesaw"]["kind"] == "jsonl" and rows["seesaw"]["source"] == "two.jsonl:1"
    assert rows["ladder-residual"]["kind"] == "page" and rows["ladder-residual"]["source"] == "page.txt:1"
    assert all(r["chunks"] >= 1 and r["added"].startswith("20") for r in rows.values())
    table = run_cli("papers", env=env)
    assert "markdown" in table.stdout and "nesa.md" in table.stdout and "passages" in table.stdout


@pytest.mark.slow
def test_remove_takes_a_paper_out_and_a_running_pipeline_follows(tmp_path: Path, settings: Settings) -> None:
    ingest_paths([write_jsonl(tmp_path / "p.jsonl", pick("seesaw", "2bp", "nesa"))], settings)
    running = Pipeline(settings)
    assert not running.answer("How much faster is Seesaw than vLLM?").abstained
    gone = run_cli("remove", "seesaw", env={"RAG_DATA_DIR": str(settings.data_dir)})
    assert gone.returncode == 0, gone.stderr
    assert "Removed 1 paper(s)" in gone.stdout
    running.index.invalidate()  # the stamp check's interval, skipped: the next question reads the new generation
    assert {p.id for p in running.papers()} == {"2bp", "nesa"}
    assert running.answer("How much faster is Seesaw than vLLM?").abstained
    store = open_store(settings)
    assert store.chunks.get(where={"paper_id": "seesaw"}, include=[])["ids"] == []
    assert store.sentences is not None and store.sentences.get(where={"paper_id": "seesaw"}, include=[])["ids"] == []
    SharedSystemClient.clear_system_cache()
    with pytest.raises(NotIndexedError, match="'nope'"):
        remove_papers(["nope"], settings)
    unknown = run_cli("remove", "nope", env={"RAG_DATA_DIR": str(settings.data_dir)})
    assert unknown.returncode == 1 and "paperchat papers" in unknown.stderr and "Traceback" not in unknown.stderr


BODY_PAGES = [
    "1 Introduction\nAccelerator clusters are scheduled by hand today. Operators move jobs between racks when a "
    "deadline slips, and the placement rarely survives the next failure.",
    "2 Method\nThe Quill scheduler packs jobs by predicted memory pressure. It measures the pressure of each job "
    "during a short warm-up run and stores the profile with the job.",
    "3 Results\nOn a 512-accelerator cluster, Quill cut the median queueing delay from 41 minutes to 9 minutes. "
    "The gain held across three months of production traces.",
]


def paged_paper() -> Paper:
    """A paper with a body over pages 3–5 (first_page=3) and a heading per page, as a PDF reader gives it."""
    text, starts, sections = "", [], []
    for page in BODY_PAGES:
        starts.append(len(text))
        heading, _, prose = page.partition("\n")
        sections.append((len(text), heading))
        filler = " ".join(f"Paragraph {n} of this page discusses {heading.split()[-1].lower()} in general terms, "
                          f"without any figure." for n in range(1, 9))
        text += f"{prose} {filler}  "
    return Paper(id="quill", title="Quill: Pressure-Aware Job Placement for Accelerator Clusters", kind="pdf",
                 abstract="Quill places training jobs on accelerator clusters by their predicted memory pressure, "
                          "which it profiles in a short warm-up run. It reduces queueing delay in production.",
                 pages=5, body=Body(text=text.strip(), page_starts=starts, first_page=3, sections=sections))


def test_body_chunks_carry_pages_and_sections() -> None:
    chunks = chunk_paper(paged_paper(), chunk_tokens=40, overlap=0)
    abstract = [c for c in chunks if not c.page]
    body = [c for c in chunks if c.page]
    assert abstract and body and [c.index for c in chunks] == list(range(len(chunks)))
    median = next(c for c in body if "median queueing delay" in c.text)
    assert (median.page, median.section) == (5, "3 Results")
    warmup = next(c for c in body if "warm-up run and stores" in c.text)
    assert warmup.page == 4 and warmup.section == "2 Method"
    assert all(c.page <= c.page_end for c in body)


@pytest.mark.slow
def test_a_fact_from_the_body_is_answered_with_its_page(tmp_path: Path, settings: Settings) -> None:
    store = open_store(settings)
    ingest_papers([paged_paper(), *pick("seesaw", "2bp")], settings, store)
    SharedSystemClient.clear_system_cache()
    service = PaperService(Pipeline(settings))
    hits = service.search("median queueing delay on the 512-accelerator cluster", k=3)
    assert hits[0].paper_id == "quill" and hits[0].page <= 5 <= hits[0].page_end
    ans = service.ask("By how much did Quill cut the median queueing delay?")
    assert not ans.abstained and "9 minutes" in ans.answer
    cited = {n for s in ans.sentences for n in s.citations}
    assert any(s.n in cited and s.page for s in ans.sources)
    shown = run_cli("ask", "By how much did Quill cut the median queueing delay?",
                    env={"RAG_DATA_DIR": str(settings.data_dir)})
    assert "(quill, p. 5)" in shown.stdout, shown.stdout


# -- PDFs and reference-manager exports through ingest ------------------------------------------------------------
DATA = Path(__file__).resolve().parent / "data"
REAL_PDF = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "pdf" / "molecular-explanations-perspective.pdf"


def mixed_folder(tmp_path: Path) -> Path:
    """A user's folder: a good PDF, three bad ones, a Zotero export with its attachments, a Mendeley RIS."""
    import shutil

    root = tmp_path / "mine"
    shutil.copytree(DATA / "bib", root / "refs")
    for name in ("two-column.pdf", "image-only.pdf", "encrypted.pdf", "truncated.pdf"):
        shutil.copy(DATA / "pdf" / name, root / name)
    for extra in ("malformed.bib", "jabref_latin1.bib"):
        (root / "refs" / extra).unlink()
    return root


@pytest.mark.slow
def test_a_folder_of_pdfs_and_exports_names_each_bad_file_and_keeps_the_rest(tmp_path: Path,
                                                                             settings: Settings) -> None:
    from rag.pdf import read_pdf

    env = {"RAG_DATA_DIR": str(settings.data_dir)}
    done = run_cli("ingest", mixed_folder(tmp_path), env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    failed = {Path(ln.split(": ", 2)[1]).name: ln for ln in done.stderr.splitlines() if ln.startswith("Failed: ")}
    assert set(failed) == {"image-only.pdf", "encrypted.pdf", "truncated.pdf", "paper.pdf"}, done.stderr
    assert "no text layer" in failed["image-only.pdf"] and "encrypted" in failed["encrypted.pdf"]
    assert "truncated" in failed["truncated.pdf"]
    skipped = [ln for ln in done.stderr.splitlines() if ln.startswith("Skipped: ")]
    assert any("zotero.bib, line 60" in ln and "no abstract" in ln for ln in skipped), skipped
    assert any("mendeley.ris, line 39" in ln and "no abstract" in ln for ln in skipped), skipped
    assert "Indexed 8 paper(s): 8 added" in done.stdout and "4 failed, 2 skipped" in done.stdout
    rows = {r["id"]: r for r in json.loads(run_cli("papers", "--json", env=env).stdout)}
    pdf = next(r for r in rows.values() if r["kind"] == "pdf")
    assert pdf["title"] == "Reading Two Columns Without Interleaving Their Lines" and pdf["pages"] == 3
    assert pdf["authors"] == ["Ada Lovelace", "Alan Turing", "Grace Hopper"] and pdf["chunks"] >= 3
    assert sum(r["kind"] == "bibtex" for r in rows.values()) == 5 and sum(r["kind"] == "ris" for r in rows.values()) == 2
    graphmoe = rows["graphmoe"]
    assert graphmoe["authors"][0] == "Jörg Müller" and graphmoe["year"] == 2021 and graphmoe["venue"]
    # A fact only the body holds is answered from it, cited to the page the reader puts that sentence on.
    body = read_pdf(DATA / "pdf" / "two-column.pdf").body
    assert body is not None
    page = body.page_at(body.text.index("Headers and footers repeat on every page"))
    shown = run_cli("ask", "What happens to headers and footers before the text is joined into paragraphs?",
                    env=env)
    assert "dropped" in shown.stdout and f", p. {page})" in shown.stdout, shown.stdout
    # The cited references export as BibTeX that reads back with the entry's own metadata.
    from rag.bib import read_bibtex

    bib = run_cli("ask", "What does GraphMoE do?", "--bibtex", env=env)
    assert bib.returncode == 0, bib.stderr
    (tmp_path / "cited.bib").write_text(bib.stdout, encoding="utf-8")
    back = read_bibtex(tmp_path / "cited.bib").papers
    assert [e.paper.title for e in back] == [graphmoe["title"]]
    assert back[0].paper.authors == graphmoe["authors"] and back[0].paper.year == 2021
    # Who wrote it is not in any passage, but the library record knows: said, without a made-up citation.
    who = json.loads(run_cli("ask", "Who wrote GraphMoE?", "--json", env=env).stdout)
    assert who["abstained"] and "Jörg Müller" in who["notice"] and "2021" in who["notice"]
    # Again: nothing re-read into the index, the same files fail the same way.
    again = run_cli("ingest", tmp_path / "mine", env=env)
    assert "0 added, 0 updated, 8 unchanged, 4 failed" in again.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("pdf", "title", "pages", "author"), [
    pytest.param(DATA / "pdf" / "review.pdf", "A Short Perspective on Explaining Molecular Property Predictions", 6,
                 "Ada B. Lovelace", id="fixture"),
    pytest.param(REAL_PDF, "A Perspective on Explanations of Molecular Prediction Models", 41, "Geemi P. Wellawatte",
                 id="real", marks=pytest.mark.skipif(not REAL_PDF.exists(),
                                                     reason="../shared/testdata is not here (the fixture stands in)")),
])
def test_a_review_fact_from_the_body_cites_the_right_page(tmp_path: Path, settings: Settings, pdf: Path, title: str,
                                                          pages: int, author: str) -> None:
    import pypdfium2

    env = {"RAG_DATA_DIR": str(settings.data_dir)}
    done = run_cli("ingest", pdf, env=env)
    assert done.returncode == 0, done.stderr
    paper = json.loads(run_cli("papers", "--json", env=env).stdout)[0]
    assert paper["title"] == title and paper["pages"] == pages and paper["authors"][0] == author
    got = json.loads(run_cli("ask", "Which database was used to train the RNN model for solubility prediction?",
                             "--json", env=env).stdout)
    assert not got["abstained"] and "AqSolDB" in got["answer"]
    first = got["sentences"][0]
    source = next(s for s in got["sources"] if s["n"] == first["citations"][0])
    assert source["page"] and "AqSolDB" in source["text"]
    doc = pypdfium2.PdfDocument(str(pdf))
    try:  # the page it cites holds the sentence when that page is read on its own
        page_text = doc[source["page"] - 1].get_textpage().get_text_range()
    finally:
        doc.close()
    assert "AqSolDB curated database" in " ".join(page_text.split())
    assert "References" not in {s["section"] for s in got["sources"]}
