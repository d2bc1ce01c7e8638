"""rag.pdf: PDF papers read into Paper records, on generated fixtures and (when ../shared is there, as an extra)
the real paper the review fixture is modelled on."""

from __future__ import annotations

import os
import shutil
import threading
import time
import zlib
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from rag.collection import summary_sentence
from rag.corpus import CorpusError
from rag.pdf import clean, keep_hyphen, looks_like_title, parse_authors, read_pdf, year_of
from rag.pdflayout import ligatures, without_markers
from rag.settings import Settings
from rag.types import Paper

DATA = Path(__file__).parent / "data" / "pdf"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "pdf"
REAL = SHARED / "molecular-explanations-perspective.pdf"
needs_real = pytest.mark.skipif(not REAL.is_file(), reason="../shared/testdata is not here (the fixture stands in)")

ABSTRACT = (
    "We describe a small generated paper that checks how a PDF reader orders text. It has a title, an author line, "
    "this abstract, numbered sections in two columns, a running header on every page and page numbers in its "
    "footer. A reader that mixes the columns, keeps the header or reads the references as body text fails its tests."
)

@cache
def paper(name: str, references: bool = False) -> Paper:
    """A fixture read once per test session."""
    return read_pdf(DATA / name, references=references)


def test_two_column_front_matter() -> None:
    p = paper("two-column.pdf")
    assert (p.id, p.kind, p.source, p.pages) == ("", "pdf", "two-column.pdf", 3)
    assert p.title == "Reading Two Columns Without Interleaving Their Lines"
    assert p.authors == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
    assert p.doi == "10.5555/fixture.2024.017"
    assert p.abstract == ABSTRACT


@pytest.mark.parametrize("text", [
    # spans three lines of the left column, whose rows the stream interleaves with the right column's
    "The left column carries a sentence that runs across three printed lines so that any reader mixing the two "
    "columns would cut it into pieces.",
    "The right column is drawn in the same rows as the left one, so the content stream alternates between the "
    "columns line by line.",
    "We measure the convergence of the reader",  # "conver-" ends a line: the broken word is joined
    "compared with a state-of-the-art extractor",  # the line ends after "the-": a compound keeps its hyphen
    "report an efficient way",  # drawn with the ﬁ ligature
    "only one of them keeps every sentence whole when the columns share their rows.",  # across the page break
    "their rows.\n\nHeaders and footers repeat",  # a paragraph continued across the page break, then a new one
])
def test_two_column_body_has(text: str) -> None:
    assert text in paper("two-column.pdf").body.text


def test_two_column_superscript_citations_dropped_numbers_kept() -> None:
    body = paper("two-column.pdf").body
    # drawn as "512 pages^{3,4} and two layouts,^{5–7} as in Table 2 of the survey.^{8} … about 10^{4} characters."
    sentence = ("Earlier readers were tested on 512 pages and two layouts, as in Table 2 of the survey. Each of those "
                "pages holds about 10^4 characters.")
    assert sentence in body.text
    assert body.page_at(body.text.find(sentence)) == 3
    assert not [x for x in ("3,4", "5–7", "survey.8", "pages3", "  ", " ,", " .") if x in body.text]


def _chars(*parts: tuple[str, bool]) -> list[tuple[str, float, float, float, float, float, int]]:
    """Characters of a 10 pt line set left to right, a part marked True a 7 pt superscript raised 3.5 pt."""
    out, x = [], 72.0
    for text, sup in parts:
        size, rise = (7.0, 3.5) if sup else (10.0, 0.0)
        for ch in text:
            out.append((ch, x, x + 0.5 * size, 98.0 + rise, 98.0 + rise + size, size, 400))
            x += 0.5 * size
    return out


@pytest.mark.parametrize(("parts", "text"), [
    ((("molecules.", False), ("127", True), (" The data", False)), "molecules. The data"),
    ((("Arrieta et al. ", False), ("14", True), (" show", False)), "Arrieta et al. show"),
    ((("Hitchcock ", False), ("92", True), (", a", False)), "Hitchcock, a"),
    ((("smoothGrad,,", False), ("65", True), (" and", False)), "smoothGrad, and"),  # the comma doubled once
    ((("Rao et al.", False), ("70", True), (". They", False)), "Rao et al. They"),
    ((("philosophy.", False), ("91–94", True), (" According", False)), "philosophy. According"),
    ((("works,", False), ("9,10", True), (" we", False)), "works, we"),
    ((("from Ref.", False), ("9", True), (" with", False)), "from Ref. 9 with"),  # the number is the sentence's
    ((("about 10", False), ("6", True), (" atoms", False)), "about 10^6 atoms"),  # an exponent
    ((("with 10", False), ("-3", True), (" error", False)), "with 10^-3 error"),
    ((("an R", False), ("2", True), (" of 0.9", False)), "an R^2 of 0.9"),  # a one-letter variable's exponent
    ((("White", False), ("∗,‡", True), (" and", False)), "White∗,‡ and"),  # not a citation: left as it is
    ((("the i", False), ("th", True), (" feature", False)), "the ith feature"),
    ((("= ", False), ("1", True), (" M", False)), "= 1 M"),  # a numerator after an operator
    ((("on 512 GPUs", False),), "on 512 GPUs"),
])
def test_without_markers(parts: tuple[tuple[str, bool], ...], text: str) -> None:
    assert "".join(c[0] for c in without_markers(_chars(*parts), 10.0)) == text


@pytest.mark.parametrize("text", [
    "Fixture Preprint Series",  # running header
    "must not be in the body",  # references
    "References",
    "conver-",
    "conver gence",
    "\ufb01",
    "Abstract",
    "We describe a small generated paper",  # the abstract is not repeated in the body
])
def test_two_column_body_lacks(text: str) -> None:
    assert text not in paper("two-column.pdf").body.text


def test_two_column_body_has_no_page_numbers() -> None:
    paragraphs = paper("two-column.pdf").body.text.split("\n\n")
    assert not [p for p in paragraphs if p.strip().isdigit()]
    assert not [p for p in paragraphs if p[-2:].strip().isdigit()]


@pytest.mark.parametrize(("text", "page"), [
    ("The left column carries a sentence", 1),
    ("We measure the convergence", 1),  # right column of page 1
    ("the columns share their rows.", 2),
    ("This sentence is printed on the second page", 2),
    ("A further paragraph pads the second page", 2),  # right column of page 2
    ("both columns split the page into more bands.", 3),
    ("The closing sentence of the body sits on the third page", 3),
])
def test_two_column_pages(text: str, page: int) -> None:
    body = paper("two-column.pdf").body
    assert body.text.count(text) == 1
    assert body.page_at(body.text.find(text)) == page


def test_two_column_page_map() -> None:
    body = paper("two-column.pdf").body
    assert body.first_page == 1
    assert len(body.page_starts) == 3 and body.page_starts[0] == 0 and body.page_starts == sorted(body.page_starts)


def test_two_column_sections() -> None:
    body = paper("two-column.pdf").body
    assert [h for _, h in body.sections] == ["1 Introduction", "2 Method", "3 Results", "4 Conclusion"]
    assert all(body.text[offset:].startswith(heading) for offset, heading in body.sections)
    assert body.section_at(body.text.find("convergence")) == "2 Method"
    assert body.section_at(body.text.find("The closing sentence")) == "4 Conclusion"


def test_references_kept_when_asked() -> None:
    body = paper("two-column.pdf", references=True).body
    assert body.sections[-1][1] == "References"
    refs = body.text[body.sections[-1][0]:]
    assert "A reference title that must not be in the body" in refs and "Another cited work on reading order" in refs
    assert body.page_at(body.text.find("Another cited work")) == 3
    assert body.text.startswith(paper("two-column.pdf").body.text)


def test_single_column_metadata_title_and_first_paragraph_abstract() -> None:
    p = paper("single-column.pdf")
    assert p.title == "A Single Column Note on Abstract Fallbacks"
    assert p.abstract.startswith("This note has no abstract heading, so its first substantial paragraph")
    assert p.abstract.endswith("adds a sentence of its own.") and "\n" not in p.abstract
    assert p.body.text == "A second paragraph forms the body of the note and says nothing more of interest to anyone."
    assert p.authors == []


def _not_pdf(tmp: Path) -> Path:
    (tmp / "notes.pdf").write_text("These are notes in plain text, saved with the wrong name.\n")
    return tmp / "notes.pdf"


def _empty(tmp: Path) -> Path:
    (tmp / "empty.pdf").write_bytes(b"")
    return tmp / "empty.pdf"


def _missing(tmp: Path) -> Path:
    return tmp / "missing.pdf"


def _scrambled(tmp: Path) -> Path:
    data = (DATA / "two-column.pdf").read_bytes()
    (tmp / "scrambled.pdf").write_bytes(data[:9] + bytes(b ^ 0x5A for b in data[9:-64]) + data[-64:])
    return tmp / "scrambled.pdf"


def _directory(tmp: Path) -> Path:
    (tmp / "folder.pdf").mkdir()
    return tmp / "folder.pdf"


@pytest.mark.parametrize(("make", "reason"), [
    (lambda tmp: shutil.copy(DATA / "image-only.pdf", tmp), "has no text layer (a scanned PDF?); run OCR on it first"),
    (lambda tmp: shutil.copy(DATA / "encrypted.pdf", tmp), "is encrypted; it cannot be read without its password"),
    (lambda tmp: shutil.copy(DATA / "truncated.pdf", tmp), "is truncated or corrupt (no %%EOF end marker)"),
    (lambda tmp: shutil.copy(DATA / "short-text.pdf", tmp), "has a text layer but no abstract-length text was found"),
    (_not_pdf, "is not a PDF (no %PDF- header)"),
    (_empty, "is not a PDF (no %PDF- header)"),
    (_missing, "cannot be read"),
    (_directory, "cannot be read"),
    (_scrambled, "is corrupt or not a PDF"),
])
def test_unreadable_pdfs_raise_corpus_error(tmp_path: Path, make, reason: str) -> None:
    path = Path(make(tmp_path))
    with pytest.raises(CorpusError) as caught:
        read_pdf(path)
    assert caught.value.path == str(path) and caught.value.line == 0
    assert reason in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.__cause__ is None  # no library exception chained into what the user sees


WORDS = frozenset("solubility the black box state of art high throughput layer wise some thing something".split())
COMPOUNDS = frozenset({"black-box", "layer-wise"})


@pytest.mark.parametrize(("left", "right", "keep"), [
    ("solubil-", "ity,", False),  # the joined word occurs in the paper
    ("pre-", "dictions", False),  # neither half is a word: a break made by hyphenation
    ("conver-", "gence", False),
    ("ex-", "perts", False),  # a two-letter half is no word of its own
    ("black-", "box", True),  # the compound occurs in the paper
    ("layer-", "wise", True),
    ("high-", "throughput", True),  # both halves are words of the paper
    ("some-", "thing", False),  # …unless the joined word is one too
    ("state-of-the-", "art", True),  # already a compound before the break
    ("COVID-", "19", True),
    ("Vassilev-", "Galindo", True),  # a capital after the break
    ("(", "x", True),
])
def test_keep_hyphen(left: str, right: str, keep: bool) -> None:
    assert keep_hyphen(left, right, WORDS, COMPOUNDS) is keep


@pytest.mark.parametrize(("title", "real"), [
    ("A Perspective on Explanations of Molecular Prediction Models", True),
    ("Attention Is All You Need", True),
    ("", False),
    ("untitled", False),
    ("Microsoft Word - draft3.docx", False),
    ("paper_final_v2.pdf", False),
    ("main.tex", False),
    ("arXiv:2301.01234v2", False),
    ("1234 5678 9012", False),
    ("Title", False),
])
def test_looks_like_title(title: str, real: bool) -> None:
    assert looks_like_title(title) is real


@pytest.mark.parametrize(("byline", "names"), [
    (["Geemi P. Wellawatte,† Heta A. Gandhi,‡ Aditi Seshadri,‡ and Andrew D. White∗,‡"],
     ["Geemi P. Wellawatte", "Heta A. Gandhi", "Aditi Seshadri", "Andrew D. White"]),
    (["Ada Lovelace1, Alan Turing2,3 & Grace Hopper1"], ["Ada Lovelace", "Alan Turing", "Grace Hopper"]),
    (["Ludwig van Beethoven and Jean-Luc Picard"], ["Ludwig van Beethoven", "Jean-Luc Picard"]),
    (["José Álvarez, Zoë Brennan and Liam O’Connor"], ["José Álvarez", "Zoë Brennan", "Liam O’Connor"]),
    (["Ada Lovelace,", "Alan Turing"], ["Ada Lovelace", "Alan Turing"]),
    (["We study the reading of columns"], []),  # a sentence, not names
    (["University of Rochester, Rochester, NY"], []),
    ([""], []),
])
def test_parse_authors(byline: list[str], names: list[str]) -> None:
    assert parse_authors(byline) == names


@pytest.mark.parametrize(("text", "meta", "year"), [
    ("979-8-3503-1234-5/21/$31.00 ©2021 IEEE", {}, 2021),
    ("© 2024 Copyright held by the owner/author(s).", {"CreationDate": "D:20250101"}, 2024),  # printed wins
    ("38th Conference on Neural Information Processing Systems (NeurIPS 2024).", {}, 2024),
    ("Proceedings of the 41st International Conference on Machine Learning, Vienna. PMLR 235, 2024.", {}, 2024),
    ("arXiv:2409.11962v2 [cs.LG] 16 Sep 2024", {}, 2024),
    ("Preprint, March 5, 2022", {}, 2022),
    ("SoCC '23, November 20-22, Redmond", {}, 2023),
    ("Since 2017 transformers [3] have", {"CreationDate": "D:20230201212829Z"}, 2023),  # a year in prose: not it
    ("no year here", {}, None),
    ("© 1066 the Conqueror", {}, None),
])
def test_year_of(text: str, meta: dict[str, str], year: int | None) -> None:
    assert year_of(text, meta) == year


P = 0xF0000  # a ligature code's placeholder: P + 32 * font + code (rag.pdflayout)


@pytest.mark.parametrize(("text", "table"), [
    # Libertine's order (fi ffi ff fl ffl at 1B-1F), read from the words they make
    (f"e{chr(P + 0x1D)}ect {chr(P + 0x1B)}rst coe{chr(P + 0x1C)}cient work{chr(P + 0x1E)}ow o{chr(P + 0x1F)}ine",
     {0x1D: "ff", 0x1B: "fi", 0x1C: "ffi", 0x1E: "fl", 0x1F: "ffl"}),
    # T1's order in another font of the same file: each font is read on its own
    (f"e{chr(P + 32 + 0x1B)}ect {chr(P + 32 + 0x1C)}rst e{chr(P + 0x1D)}ect",
     {32 + 0x1B: "ff", 32 + 0x1C: "fi", 0x1D: "ff"}),
    (f"x{chr(P + 0x1B)}y", {0x1B: ""}),  # no word tells: dropped
])
def test_ligatures(text: str, table: dict[int, str]) -> None:
    assert ligatures(text) == {chr(P + k): v for k, v in table.items()}


@pytest.mark.parametrize(("raw", "cleaned"), [
    ("eﬃcient ﬁnal ﬂow oﬀ ﬀ baﬄe", "efficient final flow off ff baffle"),
    ("M¨uller and Cs´anyi", "Müller and Csányi"),
    ("soft\u00adhyphen", "softhyphen"),
    ("a\x02b", "ab"),
    ("x²", "x2"),
])
def test_clean(raw: str, cleaned: str) -> None:
    assert clean(raw) == cleaned


# -- a review paper, read end to end: the generated review.pdf everywhere, the real 41-page paper of
# ../shared/testdata as an extra when it is there (the fixture is set the way that paper is: see make_fixtures.py)
@dataclass(frozen=True)
class Review:
    """A review paper and what reading it must give."""

    path: Path
    title: str
    authors: list[str]
    pages: int
    abstract: str
    first_headings: list[str]
    headings: set[str]
    first_reference: str
    last_reference: tuple[str, int]  # its text and page
    page_sentences: list[str]  # each found on the page PDFium finds it on, read alone
    across: tuple[str, tuple[int, int], str, str]  # a sentence over a page break, its pages, a fragment of each page
    prose: list[str]  # phrases the body must hold as clean prose
    superscripts: list[tuple[str, int]]  # sentences whose superscript citations are dropped, and their pages
    captions: list[tuple[str, str, str, tuple[int, int]]]  # a paragraph interrupted by a figure, continued after it


REVIEW = Review(
    path=DATA / "review.pdf", title="A Short Perspective on Explaining Molecular Property Predictions",
    authors=["Ada B. Lovelace", "Alan M. Turing", "Grace B. Hopper", "Rosalind E. Franklin"], pages=6,
    abstract=(
        "Chemists can be wary of deep learning models in decision making because “black-box” models do not say why "
        "they predict what they predict. Explainable artificial intelligence offers tools that interpret such models "
        "and their predictions. We review the principles of explanation in chemistry and the methods for creating and "
        "evaluating explanations, then show counterfactuals and descriptor explanations at work on solubility."),
    first_headings=["Introduction", "Theory", "Self-explaining models"],
    headings={"Applications", "Solubility prediction", "Discussion", "Conclusion and outlook"},
    first_reference="(1) Choudhary, K.; DeCost, B.;", last_reference=("(3) Stumpfe, D.; Bajorath, J.", 6),
    page_sentences=["Gradient based explanations have been widely used to interpret chemistry predictions.",
                    "The scent-structure relationship is not very well understood,",
                    "Choosing among the plethora of XAI methods described here is still an open question.",
                    "Accuracy and interpretability are two attractive characteristics of DL models."],
    across=("Ribeiro et al. proposed a surrogate model method that aims to provide sparse/succinct explanations that "
            "have high fidelity to the original model.", (2, 3), "Ribeiro et al.35 proposed",
            "have high fidelity to the original model."),
    prose=["how substructures are contributing to the prediction"],
    superscripts=[
        ("In our previous works, we implemented and trained an RNN model in Keras to predict solubilities (log "
         "molarity) of small molecules. The AqSolDB curated database was used to train the RNN model.", 3),
        ("Arrieta et al. distinguish that interpretability is a passive characteristic of a model", 2),
        ("mathematics and philosophy. According to Woodward and Hitchcock, a counterfactual is an example", 3),
        ("Class activation maps (CAM), gradCAM, smoothGrad, and integrated gradients are examples of this method.", 2),
        ("by Rao et al. They compared", 3),  # "al.⁷⁰." keeps one period
        # a superscript that is the sentence's own reference number; the caption, moved after the paragraph the
        # figure page interrupts, counts on the page where that paragraph ends
        ("Republished from Ref. 9 with permission", 5)],
    captions=[("how substructures are contributing to the prediction.", "For example, we see that adding acidic",
               "Figure 2: Descriptor explanations", (3, 5))],
)
REAL_REVIEW = replace(  # the headings, the first reference and the sentences the fixture copies stay as they are
    REVIEW, path=REAL, title="A Perspective on Explanations of Molecular Prediction Models",
    authors=["Geemi P. Wellawatte", "Heta A. Gandhi", "Aditi Seshadri", "Andrew D. White"], pages=41,
    abstract=(
        "Chemists can be skeptical in using deep learning (DL) in decision making, due to the lack of interpretability "
        "in “black-box” models. Explainable artificial intelligence (XAI) is a branch of AI which addresses this "
        "drawback by providing tools to interpret DL models and their predictions. We review the principles of XAI in "
        "the domain of chemistry and emerging methods for creating and evaluating explanations. Then we focus on "
        "methods developed by our group and their applications in predicting solubility, blood-brain barrier "
        "permeability, and the scent of molecules. We show that XAI methods like chemical counterfactuals and "
        "descriptor explanations can explain DL predictions while giving insight into structure-property "
        "relationships. Finally, we discuss how a two-step process of developing a black-box model and explaining "
        "predictions can uncover structure-property relationships."),
    last_reference=("(149) Stumpfe, D.; Bajorath, J.", 41),
    across=(REVIEW.across[0], (5, 6), "Ribeiro et al. 35 proposed",
            "fidelity to the original model."),  # its superscript citation (35) dropped
    prose=["solubility from structure for example"],
    superscripts=[(REVIEW.superscripts[0][0], 16), (REVIEW.superscripts[1][0], 3), (REVIEW.superscripts[2][0], 11),
                  (REVIEW.superscripts[3][0], 7), (REVIEW.superscripts[4][0], 8), (REVIEW.superscripts[5][0], 16)],
    captions=[  # page 16 ends "…the pre-", page 17 is a figure and its caption, page 18 goes on "diction. …"
        ("how substructures are contributing to the prediction.", "For example, we see that adding acidic",
         "Figure 2: Descriptor explanations", (16, 18)),
        ("often associated with", "the ‘fruity’ scent. There are some exceptions", "Figure 4: Descriptor explanations",
         (18, 20))],
)
REVIEWS = [pytest.param(REVIEW, id="fixture"), pytest.param(REAL_REVIEW, id="real", marks=needs_real)]


def each(field: str) -> list[Any]:
    """(review, item) parameters for every item of a list field of every review (the real one's marked)."""
    return [pytest.param(r.values[0], item, id=f"{r.id}-{i}", marks=r.marks)
            for r in REVIEWS for i, item in enumerate(getattr(r.values[0], field))]


@cache
def read(path: Path, references: bool = False) -> Paper:
    """A review read once per test session."""
    return read_pdf(path, references=references)


@pytest.mark.parametrize("review", REVIEWS)
def test_review_front_matter(review: Review) -> None:
    p = read(review.path)
    assert (p.title, p.authors, p.pages, p.kind, p.source) == (review.title, review.authors, review.pages, "pdf",
                                                               review.path.name)
    assert p.abstract == review.abstract


@pytest.mark.parametrize("review", REVIEWS)
def test_review_sections_and_references(review: Review) -> None:
    body = read(review.path).body
    headings = [h for _, h in body.sections]
    assert headings[:3] == review.first_headings and review.headings <= set(headings)
    assert review.first_reference not in body.text and "References" not in headings
    full = read(review.path, references=True).body
    assert full.sections[-1][1] == "References" and review.first_reference in full.text
    last, page = review.last_reference
    assert full.page_at(full.text.find(last)) == page


def _page_alone(path: Path, fragment: str) -> list[int]:
    """The pages whose own text (PDFium, that page only) holds fragment."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(path)
    try:
        return [i + 1 for i in range(len(doc)) if fragment in " ".join(doc[i].get_textpage().get_text_range().split())]
    finally:
        doc.close()


@pytest.mark.parametrize(("review", "sentence"), each("page_sentences"))
def test_review_page_of_sentence(review: Review, sentence: str) -> None:
    body = read(review.path).body
    at = body.text.find(sentence)
    assert at >= 0
    assert [body.page_at(at)] == _page_alone(review.path, sentence)


@pytest.mark.parametrize("review", REVIEWS)
def test_review_sentence_across_a_page_break(review: Review) -> None:
    body = read(review.path).body
    sentence, (first, second), on_first, on_second = review.across
    at = body.text.find(sentence)
    assert at >= 0
    assert (body.page_at(at), body.page_at(at + len(sentence) - 1)) == (first, second)
    assert _page_alone(review.path, on_first) == [first] and _page_alone(review.path, on_second) == [second]


@pytest.mark.parametrize("review", REVIEWS)
def test_review_body_is_clean_prose(review: Review) -> None:
    text = read(review.path).body.text
    assert all(phrase in text for phrase in review.prose) and "\ufffe" not in text and "\x02" not in text
    assert "ex- planation" not in text and "explanation are debated" in text  # "ex-" + "planation" joined
    assert "black-box model interpretability" in text  # "black-" + "box": a compound keeps its hyphen
    assert not [p for p in text.split("\n\n") if p.strip().isdigit()]  # page numbers dropped
    assert text.count("\n\n\n") == 0


@pytest.mark.parametrize(("review", "case"), each("superscripts"))
def test_review_superscript_citations_dropped(review: Review, case: tuple[str, int]) -> None:
    sentence, page = case
    body = read(review.path).body
    at = body.text.find(sentence)
    assert at >= 0
    assert body.page_at(at) == page


@pytest.mark.parametrize("review", REVIEWS)
def test_review_no_marker_artefacts(review: Review) -> None:
    text = read(review.path).body.text
    assert not [x for x in ("  ", " ,", " .", ",,", "al..", "127 The", "database 137") if x in text]


@pytest.mark.parametrize(("review", "case"), each("captions"))
def test_review_paragraph_continues_across_a_caption(review: Review, case: tuple[str, str, str, tuple[int, int]]) -> None:
    before, after, caption, pages = case
    body = read(review.path).body
    at = body.text.find(f"{before} {after}")
    assert at >= 0
    paragraph_end = body.text.find("\n\n", at)
    assert body.text[paragraph_end + 2:].startswith(caption)  # the caption follows the paragraph it interrupted
    assert (body.page_at(at), body.page_at(body.text.find(after, at))) == pages


# Decompression bombs (issue 25, row 4): a PDF is read in a child process under a memory limit, after its compressed
# streams were counted against caps per stream and per document; the parent never decodes them.

def _pdf_with_streams(*streams: bytes) -> bytes:
    """A one-page PDF whose content is the given deflated streams, the first a line of text."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
               b"/Contents [" + b" ".join(b"%d 0 R" % (5 + i) for i in range(len(streams))) + b"] >>",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    objects += [b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(s) + s + b"\nendstream" for s in streams]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _deflated(chunk: bytes, times: int) -> bytes:
    """chunk repeated `times` times, deflated piece by piece (never held whole)."""
    inflater = zlib.compressobj(6)
    return b"".join(inflater.compress(chunk) for _ in range(times)) + inflater.flush()


TEXT = zlib.compress(b"BT /F1 12 Tf 72 720 Td (A page of text) Tj ET")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_deflate_bomb_is_one_line_and_the_parent_stays_small(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.pdf"
    bomb.write_bytes(_pdf_with_streams(TEXT, _deflated(b" " * 2**24, 64)))  # 1 GiB of spaces in ~1 MB
    assert bomb.stat().st_size < 1.2 * 2**20
    start, peak, done = _rss_mb(), [0.0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with pytest.raises(CorpusError) as caught:
            read_pdf(bomb)
    finally:
        done.set()
        sampler.join()
    assert str(caught.value) == (f"{bomb}: has a compressed stream that decodes to more than 100 MB (a decompression "
                                 "bomb?); not read")
    assert peak[0] - start < 50  # MB: PDFium read it whole in the parent before (RSS 577 MB -> 2.7 GB)
    assert read_pdf(DATA / "two-column.pdf").title == "Reading Two Columns Without Interleaving Their Lines"


def test_a_bomb_under_the_caps_meets_the_memory_limit(tmp_path: Path) -> None:
    bomb = tmp_path / "ops.pdf"  # 80 MB of text operators: PDFium's objects for them outgrow 256 MB
    bomb.write_bytes(_pdf_with_streams(TEXT, _deflated(b"BT /F1 12 Tf 72 720 Td (x) Tj ET\n" * 2**15, 75)))
    limited = Settings(pdf_memory_mb=256)
    with pytest.raises(CorpusError) as caught:
        read_pdf(bomb, settings=limited)
    assert caught.value.reason == "needs more than 256 MB of memory to read (a decompression bomb?); not read"
    assert read_pdf(DATA / "two-column.pdf", settings=limited).authors  # a new child reads the next file


def test_the_decoded_bytes_of_a_document_are_capped(tmp_path: Path) -> None:
    many = tmp_path / "many.pdf"
    many.write_bytes(_pdf_with_streams(TEXT, *[_deflated(b" " * 2**18, 3)] * 4))  # 4 streams of 768 KB
    with pytest.raises(CorpusError) as caught:
        read_pdf(many, settings=Settings(pdf_max_stream_mb=1, pdf_max_decoded_mb=2))
    assert caught.value.reason == ("has compressed streams that decode to more than 2 MB in all (a decompression "
                                   "bomb?); not read")


def test_a_pdf_that_takes_too_long_is_given_up() -> None:
    with pytest.raises(CorpusError) as caught:
        read_pdf(DATA / "two-column.pdf", settings=Settings(pdf_timeout=0.001))
    assert caught.value.reason == "took longer than 0.001 s to read; not read"
    assert read_pdf(DATA / "two-column.pdf").pages == 3


@needs_real
def test_real_paper_year_and_card() -> None:
    """The real paper's year comes from the PDF (page 1 states none; the file was made on 2023-02-01), and its card
    says what the paper does (its review sentence), not its background."""
    p = read(REAL)
    assert p.year == 2023
    assert summary_sentence(p) == ("We review the principles of XAI in the domain of chemistry and emerging "
                                   "methods for creating and evaluating explanations.")
