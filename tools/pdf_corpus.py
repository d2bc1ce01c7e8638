"""Measure the PDF reader on the test corpus with ground truth (tests/data/pdfcorpus), per layout.

    python tools/pdf_corpus.py [--repeat 3] [--against REV] [--json OUT] [--only NAME ...]

For every NAME.pdf with its NAME.json truth (and the real paper in ../shared when it is there) it reads the PDF with
rag.pdf.read_pdf and scores: the title (exact, after Unicode, quote and space normalisation), the author list
(exact), the year, the abstract (word-level similarity to the truth; right at >= ABSTRACT_RIGHT), the card's "what
it does" sentence (rag.collection.summary_sentence: the same as the truth's abstract gives), and the body's reading
order against the truth's paragraphs, found by word 5-grams that occur once in the truth:
  order     pairs of paragraphs read in the wrong order (by the median position of their 5-grams);
  interleaved  pairs of paragraphs (or a paragraph and a footnote/caption) whose text alternates at least
            A-B-A-B: lines of two columns read across instead of down (a run is 7 words or more in a row);
  split     paragraphs whose text is cut by other text (a footnote or a caption in the middle is counted here);
  lost      share of the truth's words (paragraphs, footnotes, captions) not found in the body;
  dup       share of the truth's words found more than once (the abstract repeated in the body counts);
  noise     running headers and the like read into the body.
pages/s is the corpus's pages over the best of --repeat reads of each PDF, against PDFium's own text extraction in
the same run (the yardstick that makes a figure comparable across busy machines); --against REV reads the corpus
with rag/pdf.py and rag/pdflayout.py as they were at that git revision too, in the same run.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import re
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from itertools import pairwise
from pathlib import Path
from statistics import median

from pydantic import BaseModel, Field

from rag.collection import summary_sentence
from rag.types import Paper

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "pdfcorpus"
GRAM = 5  # words per shingle
ABSTRACT_RIGHT = 0.95  # word-level similarity at which an abstract counts as right

Reader = Callable[[Path], object]  # a read_pdf: path -> rag.types.Paper


class Truth(BaseModel):
    """What a corpus PDF holds (NAME.json beside NAME.pdf; see tests/data/pdfcorpus/make_corpus.py)."""

    layout: str
    features: list[str] = Field(default_factory=list)
    title: str
    authors: list[str]
    year: int | None = None
    abstract: str
    paragraphs: list[str] = Field(default_factory=list)
    headings: list[str] = Field(default_factory=list)
    floats: list[str] = Field(default_factory=list, description="Captions and footnotes: anywhere, once.")
    noise: list[str] = Field(default_factory=list, description="Text that must not be in the body.")
    pdf: str = Field(default="", description="Where the PDF is when it is not NAME.pdf beside the truth.")


class Score(BaseModel):
    """How one read of one PDF compares with its truth."""

    name: str
    layout: str
    pages: int = 0
    seconds: float = 0.0
    error: str = ""
    title: str = ""
    title_ok: bool = False
    authors_ok: bool = False
    year: int | None = None
    year_ok: bool = False
    abstract_similarity: float = 0.0
    abstract_ok: bool = False
    card_ok: bool = False
    paragraphs: int = 0
    order: int = 0
    interleaved: int = 0
    split: int = 0
    lost: float = 0.0
    dup: float = 0.0
    noise: int = 0


class Row(BaseModel):
    """The scores of one layout (or of the whole corpus) summed up."""

    layout: str
    papers: int
    title: float
    authors: float
    year: float
    abstract: float
    similarity: float
    card: float
    order: int
    interleaved: int
    split: int
    lost: float
    dup: float
    noise: int
    errors: int
    pages_per_s: float


def corpus(folder: Path = CORPUS, only: Iterable[str] = ()) -> list[tuple[str, Path, Truth]]:
    """(name, pdf, truth) of every paper in the corpus whose PDF is here (the real paper only with ../shared)."""
    out = []
    for path in sorted(folder.glob("*.json")):
        truth = Truth.model_validate_json(path.read_text(encoding="utf-8"))
        pdf = (path.parent / truth.pdf).resolve() if truth.pdf else path.with_suffix(".pdf")
        if pdf.is_file() and (not only or path.stem in only):
            out.append((path.stem, pdf, truth))
    return out


def words(text: str) -> list[str]:
    """Lower-case word tokens of a text (punctuation, quotes and dashes aside)."""
    return re.findall(r"\w+", unicodedata.normalize("NFKC", text).lower())


def same_text(a: str, b: str) -> bool:
    """Whether two titles or names are the same once Unicode forms, quotes, dashes and spacing are set aside."""

    def norm(s: str) -> str:
        s = unicodedata.normalize("NFKC", s).translate(str.maketrans("‘’“”‐‑–", "''\"\"---"))
        return " ".join(s.split())

    return norm(a) == norm(b)


def similarity(got: str, want: str) -> float:
    """Word-level similarity of two texts (difflib's ratio over their words)."""
    return difflib.SequenceMatcher(None, words(got), words(want), autojunk=False).ratio()


def reading_order(body: str, truth: Truth) -> dict[str, float]:
    """order, interleaved, split, lost and dup of a body against the truth's paragraphs (see the module doc)."""
    items = [("p", i, words(t)) for i, t in enumerate(truth.paragraphs)]
    items += [("f", i, words(t)) for i, t in enumerate(truth.floats)]
    items.append(("a", 0, words(truth.abstract)))
    grams = Counter(tuple(w[k:k + GRAM]) for _, _, w in items for k in range(len(w) - GRAM + 1))
    owner = {tuple(w[k:k + GRAM]): (kind, i, k) for kind, i, w in items for k in range(len(w) - GRAM + 1)
             if grams[tuple(w[k:k + GRAM])] == 1}
    text = words(body)
    hits = [(k, *owner[g]) for k in range(len(text) - GRAM + 1) if (g := tuple(text[k:k + GRAM])) in owner]
    seen = Counter((kind, i, k) for _, kind, i, k in hits)
    total = lost = dup = 0
    for kind, i, w in items:
        found: dict[int, int] = {}  # word offset -> the most times a 5-gram holding it was found
        for k in range(len(w) - GRAM + 1):
            if grams[tuple(w[k:k + GRAM])] == 1:
                for x in range(k, k + GRAM):
                    found[x] = max(found.get(x, 0), seen[(kind, i, k)])
        if kind == "a":  # the abstract is read apart: any of it in the body is duplicated
            dup += sum(1 for n in found.values() if n)
            continue
        total += len(found)
        lost += sum(1 for n in found.values() if not n)
        dup += sum(1 for n in found.values() if n > 1)
    # runs of consecutive hits in one paragraph; a lone 5-gram (a phrase the generated text repeats, met across
    # a paragraph boundary) is no evidence of order
    counted_runs: list[list] = []
    for _, kind, i, _ in hits:
        if kind == "a":
            continue
        if counted_runs and counted_runs[-1][0] == (kind, i):
            counted_runs[-1][1] += 1
        else:
            counted_runs.append([(kind, i), 1])
    runs: list[tuple[str, int]] = []
    for label, n in counted_runs:
        if n >= 3 and (not runs or runs[-1] != label):
            runs.append(label)
    split = sum(1 for n in Counter(r for r in runs if r[0] == "p").values() if n > 1)
    interleaved = 0
    labels = sorted(set(runs))
    for a in range(len(labels)):
        for b in range(a + 1, len(labels)):
            if labels[a][0] == labels[b][0] == "f":
                continue
            pair = [r for r in runs if r in (labels[a], labels[b])]
            switches = sum(1 for x, y in pairwise(pair) if x != y)
            interleaved += switches >= 3
    where = defaultdict(list)
    for k, kind, i, _ in hits:
        if kind == "p":
            where[i].append(k)
    middle = {i: median(ks) for i, ks in where.items()}
    found = sorted(middle)
    order = sum(1 for x in range(len(found)) for y in range(x + 1, len(found)) if middle[found[x]] > middle[found[y]])
    return {"order": order, "interleaved": interleaved, "split": split,
            "lost": lost / total if total else 0.0, "dup": dup / total if total else 0.0}


def score(name: str, truth: Truth, paper: object | None, error: str = "") -> Score:
    """One read scored against its truth (paper: a rag.types.Paper, or None when reading failed)."""
    out = Score(name=name, layout=truth.layout, paragraphs=len(truth.paragraphs), error=error)
    if paper is None:
        out.lost = 1.0 if truth.paragraphs else 0.0
        return out
    body = paper.body.text if paper.body else ""  # type: ignore[attr-defined]
    out.pages = paper.pages  # type: ignore[attr-defined]
    out.title = paper.title  # type: ignore[attr-defined]
    out.title_ok = same_text(paper.title, truth.title)  # type: ignore[attr-defined]
    got = paper.authors  # type: ignore[attr-defined]
    out.authors_ok = len(got) == len(truth.authors) and all(map(same_text, got, truth.authors))
    out.year = getattr(paper, "year", None)
    out.year_ok = out.year == truth.year
    out.abstract_similarity = similarity(paper.abstract, truth.abstract)  # type: ignore[attr-defined]
    out.abstract_ok = out.abstract_similarity >= ABSTRACT_RIGHT
    want = Paper(id="truth", title=truth.title, abstract=truth.abstract)
    out.card_ok = words(summary_sentence(paper)) == words(summary_sentence(want))  # type: ignore[arg-type]
    if truth.paragraphs:
        for key, value in reading_order(body, truth).items():
            setattr(out, key, value)
    flat = " ".join(body.split())
    out.noise = sum(flat.count(" ".join(n.split())) for n in truth.noise if n.strip())
    return out


def measure(papers: list[tuple[str, Path, Truth]], reader: Reader, repeat: int = 1) -> list[Score]:
    """Every paper read (the fastest of `repeat` reads counts) and scored."""
    from rag.corpus import CorpusError

    scores = []
    for name, pdf, truth in papers:
        best, paper, error = float("inf"), None, ""
        for _ in range(repeat):
            start = time.perf_counter()
            try:
                paper = reader(pdf)
            except CorpusError as e:
                error = str(e)
            best = min(best, time.perf_counter() - start)
        got = score(name, truth, paper, error)
        got.seconds = best
        scores.append(got)
    return scores


def pdfium_pages_per_s(papers: list[tuple[str, Path, Truth]], repeat: int = 1) -> float:
    """PDFium's own text extraction (every page's text, in its order) over the corpus: the yardstick."""
    import pypdfium2 as pdfium

    pages = seconds = 0.0
    for _, pdf, _ in papers:
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            doc = pdfium.PdfDocument(pdf)
            n = len(doc)
            for i in range(n):
                page = doc[i]
                textpage = page.get_textpage()
                textpage.get_text_range()
                textpage.close()
                page.close()
            doc.close()
            best = min(best, time.perf_counter() - start)
        pages += n
        seconds += best
    return pages / seconds


def rows(scores: list[Score]) -> list[Row]:
    """One row per layout, then one for all."""
    groups: dict[str, list[Score]] = defaultdict(list)
    for s in scores:
        groups[s.layout].append(s)
    groups = {**dict(sorted(groups.items())), "all": scores}
    out = []
    for layout, group in groups.items():
        n = len(group)
        seconds = sum(s.seconds for s in group)
        out.append(Row(
            layout=layout, papers=n, title=sum(s.title_ok for s in group) / n,
            authors=sum(s.authors_ok for s in group) / n, year=sum(s.year_ok for s in group) / n,
            abstract=sum(s.abstract_ok for s in group) / n,
            similarity=sum(s.abstract_similarity for s in group) / n, card=sum(s.card_ok for s in group) / n,
            order=sum(s.order for s in group), interleaved=sum(s.interleaved for s in group),
            split=sum(s.split for s in group), lost=sum(s.lost for s in group) / n, dup=sum(s.dup for s in group) / n,
            noise=sum(s.noise for s in group), errors=sum(bool(s.error) for s in group),
            pages_per_s=sum(s.pages for s in group) / seconds if seconds else 0.0))
    return out


def table(rows_: list[Row]) -> str:
    """The rows as a Markdown table."""
    head = ("| layout | papers | title | authors | year | abstract (mean sim.) | card | order | interleaved | split | "
            "lost | dup | noise | errors | pages/s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows_:
        lines.append(
            f"| {r.layout} | {r.papers} | {r.title:.0%} | {r.authors:.0%} | {r.year:.0%} | {r.abstract:.0%} "
            f"({r.similarity:.3f}) | {r.card:.0%} | {r.order} | {r.interleaved} | {r.split} | {r.lost:.1%} | {r.dup:.1%} | {r.noise} "
            f"| {r.errors} | {r.pages_per_s:.0f} |")
    return "\n".join(lines)


def reader_at(revision: str) -> Reader:
    """read_pdf as rag/pdf.py and rag/pdflayout.py were at a git revision, imported under another name."""
    folder = Path(tempfile.mkdtemp(prefix="pdf-baseline-"))
    package = folder / "pdf_baseline"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module in ("pdf", "pdflayout"):
        source = subprocess.run(["git", "show", f"{revision}:rag/{module}.py"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout
        (package / f"{module}.py").write_text(source.replace("from rag.pdflayout", "from pdf_baseline.pdflayout"))
    sys.path.insert(0, str(folder))
    return importlib.import_module("pdf_baseline.pdf").read_pdf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--repeat", type=int, default=3, help="reads per PDF; the fastest counts")
    parser.add_argument("--against", help="also measure rag/pdf*.py as they were at this git revision")
    parser.add_argument("--json", type=Path, help="write every paper's scores here")
    parser.add_argument("--only", nargs="*", default=[], help="these papers only (NAME of NAME.pdf)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every paper's scores")
    args = parser.parse_args()
    from rag.pdf import read_pdf

    papers = corpus(args.corpus, args.only)
    yardstick = pdfium_pages_per_s(papers, args.repeat)
    readers: dict[str, Reader] = {}
    if args.against:
        readers[f"rag.pdf at {args.against}"] = reader_at(args.against)
    readers["rag.pdf"] = read_pdf
    report = {}
    for label, reader in readers.items():
        scores = measure(papers, reader, args.repeat)
        summary = rows(scores)
        print(f"\n{label}: {len(papers)} PDFs; PDFium's own text extraction reads {yardstick:.0f} pages/s, this "
              f"reader {summary[-1].pages_per_s / yardstick:.2f} of that\n")
        print(table(summary))
        if args.verbose:
            for s in scores:
                print(s.model_dump_json(exclude={"layout"}))
        report[label] = {"yardstick_pages_per_s": yardstick, "rows": [r.model_dump() for r in summary],
                         "papers": [s.model_dump() for s in scores]}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
