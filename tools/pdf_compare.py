"""Compare PDF text extraction libraries on speed and text quality (the measurement behind rag/pdf.py's choice).

    python tools/pdf_compare.py [PDF ...] [--repeat 3]

Without arguments it reads the generated two-column fixture and, when ../shared is there, the real 41-page paper;
for those the known title, abstract and column-spanning sentences are checked. For each library on each PDF it
prints pages/s (best of --repeat runs) and: hyphenated line breaks left in the text (a hyphen or PDFium's hyphen
marker before a line break and a lower-case letter, or "conver- gence" in one line), ligature characters left
(U+FB00-FB06), running-header lines left, whether the title and abstract are found, and how many of the sentences
that span the lines of one column are found whole (fewer: the columns interleave). pdfplumber and pdfminer.six are
measured only when they are importable (they are not dependencies), pypdf too.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "pdf" / "two-column.pdf"
REAL = ROOT.parent / "shared" / "testdata" / "pdf" / "molecular-explanations-perspective.pdf"


class Known(BaseModel):
    """What a PDF is known to hold, to score an extraction of it."""

    title: str = ""
    abstract: str = ""
    header: str = ""
    sentences: list[str] = []


KNOWN = {
    FIXTURE.name: Known(
        title="Reading Two Columns Without Interleaving Their Lines",
        abstract="We describe a small generated paper that checks how a PDF reader orders text. It has a title, an "
                 "author line, this abstract, numbered sections in two columns, a running header on every page and "
                 "page numbers in its footer. A reader that mixes the columns, keeps the header or reads the "
                 "references as body text fails its tests.",
        header="Fixture Preprint Series - Column Reading Test",
        sentences=[
            "The left column carries a sentence that runs across three printed lines so that any reader mixing the "
            "two columns would cut it into pieces.",
            "The right column is drawn in the same rows as the left one, so the content stream alternates between "
            "the columns line by line.",
            "We measure the convergence of the reader on many layouts and report an efficient way to find the gutter "
            "between columns.",
        ],
    ),
    REAL.name: Known(
        title="A Perspective on Explanations of Molecular Prediction Models",
        abstract="Chemists can be skeptical in using deep learning (DL) in decision making, due to the lack of "
                 "interpretability in “black-box” models. Explainable artificial intelligence (XAI) is a branch of AI "
                 "which addresses this drawback by providing tools to interpret DL models and their predictions.",
        sentences=[
            "Gradient based explanations have been widely used to interpret chemistry predictions.",
            "Choosing among the plethora of XAI methods described here is still an open question.",
        ],
    ),
}


def pypdfium2_text(path: Path) -> tuple[str, int]:
    """PDFium's own text of every page, in its order."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(path)
    try:
        return "\n".join(doc[i].get_textpage().get_text_range() for i in range(len(doc))), len(doc)
    finally:
        doc.close()


def pypdf_text(path: Path) -> tuple[str, int]:
    """pypdf's extract_text of every page."""
    from pypdf import PdfReader

    reader = PdfReader(path)
    return "\n".join(page.extract_text() for page in reader.pages), len(reader.pages)


def pdfplumber_text(path: Path) -> tuple[str, int]:
    """pdfplumber's (pdfminer.six) extract_text of every page."""
    import pdfplumber

    with pdfplumber.open(path) as pdf:
        return "\n".join(page.extract_text() or "" for page in pdf.pages), len(pdf.pages)


def pdfminer_text(path: Path) -> tuple[str, int]:
    """pdfminer.six's extract_text with its layout analysis (LAParams defaults) of every page."""
    from pdfminer.high_level import extract_pages, extract_text

    return extract_text(path), sum(1 for _ in extract_pages(path, laparams=None))


def rag_pdf_text(path: Path) -> tuple[str, int]:
    """rag.pdf.read_pdf (pypdfium2 characters, own layout): title, abstract and body."""
    from rag.pdf import read_pdf

    paper = read_pdf(path)
    body = paper.body.text if paper.body else ""
    return f"{paper.title}\n{paper.abstract}\n{body}", paper.pages


def libraries() -> dict[str, Callable[[Path], tuple[str, int]]]:
    """The extractors to compare: those of the libraries installed, and rag.pdf."""
    candidates = {"pypdfium2 (raw text)": ("pypdfium2", pypdfium2_text), "pypdf extract_text": ("pypdf", pypdf_text),
                  "pdfplumber extract_text": ("pdfplumber", pdfplumber_text),
                  "pdfminer.six extract_text": ("pdfminer", pdfminer_text)}
    out = {name: extract for name, (module, extract) in candidates.items() if importlib.util.find_spec(module)}
    out["rag.pdf read_pdf (pypdfium2)"] = rag_pdf_text
    return out


def _flat(text: str) -> str:
    """Text as one line, PDFium's hyphen markers and broken words at line ends joined: for finding known text."""
    text = re.sub(r"[\ufffe\x02]\s*", "", text)
    text = re.sub(r"(?<=[a-z])-\s*\n\s*(?=[a-z])", "", text)
    return " ".join(text.split())


def score(text: str, pages: int, seconds: float, known: Known) -> dict[str, str]:
    """The quality indicators of one extraction."""
    flat = _flat(text)
    broken = len(re.findall(r"[a-z][-\ufffe\x02]\s*\n\s*[a-z]|[a-z][\ufffe\x02][a-z]|[a-z]- [a-z]", text))
    row = {"pages/s": f"{pages / seconds:.1f}", "hyphen breaks": str(broken),
           "ligatures": str(sum("\ufb00" <= c <= "\ufb06" for c in text))}
    if known.header:
        row["header lines"] = str(text.count(known.header))
    if known.title:
        row["title"] = "yes" if known.title in flat else "no"
    if known.abstract:
        row["abstract"] = "yes" if known.abstract in flat else "no"
    if known.sentences:
        row["sentences whole"] = f"{sum(s in flat for s in known.sentences)}/{len(known.sentences)}"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdfs", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=3, help="runs per library and PDF; the fastest counts")
    args = parser.parse_args()
    pdfs = args.pdfs or [p for p in (FIXTURE, REAL) if p.is_file()]
    for pdf in pdfs:
        known = KNOWN.get(pdf.name, Known())
        print(f"\n{pdf.name}")
        rows = {}
        for name, extract in libraries().items():
            best = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                text, pages = extract(pdf)
                best = min(best, time.perf_counter() - start)
            rows[name] = score(text, pages, best, known)
        columns = list(next(iter(rows.values())))
        print("| library | " + " | ".join(columns) + " |")
        print("|---" * (len(columns) + 1) + "|")
        for name, row in rows.items():
            print(f"| {name} | " + " | ".join(row[c] for c in columns) + " |")


if __name__ == "__main__":
    main()
