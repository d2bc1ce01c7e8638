"""Write the PDF fixtures of tests/test_pdf.py (run once; the PDFs are committed): python make_fixtures.py [DIR]."""

from __future__ import annotations

import io
import logging
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("pdf")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.textpath import text_to_path  # noqa: E402

logger = logging.getLogger(__name__)

WIDTH, HEIGHT = 612.0, 792.0  # US Letter, points
BODY, PITCH = 9.0, 12.0
LEFT_X, RIGHT_X, COLUMN_CHARS = 72.0, 318.0, 40
HEADER = "Fixture Preprint Series - Column Reading Test"
TITLE = ["Reading Two Columns Without", "Interleaving Their Lines"]
AUTHORS = "Ada Lovelace, Alan Turing and Grace Hopper"
AFFILIATION = "Department of Computing, Example University, Springfield"
DOI = "DOI: 10.5555/fixture.2024.017"
ABSTRACT = (
    "We describe a small generated paper that checks how a PDF reader orders text. It has a title, an author line, "
    "this abstract, numbered sections in two columns, a running header on every page and page numbers in its "
    "footer. A reader that mixes the columns, keeps the header or reads the references as body text fails its tests."
)
# The body: (heading or None, paragraph). "|" forces a line break there (to put a hyphen at a line end);
# "^{3,4}" is set as a superscript (a smaller font on a raised baseline), as citation markers and exponents are.
SECTIONS: list[tuple[str, list[str]]] = [
    ("1 Introduction", [
        "The left column carries a sentence that runs across three printed lines so that any reader mixing "
        "the two columns would cut it into pieces. Papers are usually set this way and readers must cope.",
        "The right column is drawn in the same rows as the left one, so the content stream alternates between "
        "the columns line by line. Only a reader that looks at where each line sits can put them back in order.",
    ]),
    ("2 Method", [
        "We measure the conver-|gence of the reader on many layouts and report an efﬁcient way to find the "
        "gutter between columns. The final rule is simple and needs no training data at all.",
        "Our reader is compared with a state-of-the-|art extractor on the same pages. Both read the same "
        "characters, but only one of them keeps every sentence whole when the columns share their rows.",
        "Headers and footers repeat on every page and carry no content, so they are dropped before the text "
        "is joined into paragraphs. Page numbers at the bottom of each page go the same way.",
    ]),
    ("3 Results", [
        "The reader keeps every sentence of this paper intact across the line breaks of its columns. "
        "Hyphenated words at line ends are joined again, while real compounds keep their hyphen.",
        "This sentence is printed on the second page of the generated paper and nowhere else. "
        "Its page number must come out as two when the body is mapped back to its pages.",
        "A further paragraph pads the second page so that the end of the paper moves on to the third page, "
        "where the conclusion and the references are printed after the last of the results.",
        "Figures and tables are absent from this fixture because they would only add noise to the checks "
        "and the point here is the order of the text and the removal of the margins.",
    ]),
    ("4 Conclusion", [
        "Reading columns in order is a matter of finding the gutter and reading each side from top to bottom "
        "before moving on to the next band of the page. Nothing else is needed for papers set like this one, "
        "although pages with figures that span both columns split the page into more bands.",
        "Earlier readers were tested on 512 pages^{3,4} and two layouts,^{5–7} as in Table 2 of the "
        "survey.^{8} Each of those pages holds about 10^{4} characters.",
        "The closing sentence of the body sits on the third page just before the list of references begins.",
    ]),
]
SUPERSCRIPT = re.compile(r"\^\{([^}]*)\}")
REFERENCES = [
    "[1] A. Author. A reference title that must not be in the body. Journal of Tests, 2020.",
    "[2] B. Writer. Another cited work on reading order. Proceedings of Examples, 2021.",
]


def wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap at width characters; a '|' in a word breaks the line after its first part."""
    lines, line = [], ""
    for word in text.split():
        head, _, tail = word.partition("|")
        if line and len(line) + 1 + len(head) > width:
            lines.append(line)
            line = ""
        line = f"{line} {head}".strip()
        if tail:
            lines.append(line)
            line = tail
    return lines + [line] if line else lines


def superscripts(fig: plt.Figure, x: float, y: float, text: str, size: float) -> None:
    """Draw a line whose ^{…} parts are superscripts: 0.7 of the size, the baseline raised by 0.35 of it."""
    for i, part in enumerate(SUPERSCRIPT.split(text)):  # odd parts are the superscripts
        small = size * 0.7 if i % 2 else size
        if part:
            fig.text(x / WIDTH, (y + (0.35 * size if i % 2 else 0)) / HEIGHT, part, fontsize=small)
            x += text_to_path.get_text_width_height_descent(part, FontProperties(size=small), ismath=False)[0]


def column_paper(path: Path) -> None:
    """Fixture 1: a three-page two-column paper whose columns are drawn row by row (interleaved in the stream)."""
    pages: list[list[tuple[float, float, str, float]]] = [[], [], []]  # (x, y, text, size)
    page1 = pages[0]
    page1 += [(WIDTH / 2, 700 - 24 * i, t, 18) for i, t in enumerate(TITLE)]
    page1 += [(WIDTH / 2, 640, AUTHORS, 11), (WIDTH / 2, 625, AFFILIATION, 9),
              (WIDTH / 2, 612, DOI, 8), (WIDTH / 2, 585, "Abstract", 11)]
    abstract = wrap(ABSTRACT, 86)
    page1 += [(LEFT_X, 568 - PITCH * i, t, BODY) for i, t in enumerate(abstract)]
    # (page, x, top, bottom) of each column in reading order: short columns, so that the text fills three pages
    slots = [(0, LEFT_X, 515.0, 380.0), (0, RIGHT_X, 515.0, 380.0), (1, LEFT_X, 730.0, 520.0),
             (1, RIGHT_X, 730.0, 520.0), (2, LEFT_X, 730.0, 100.0), (2, RIGHT_X, 730.0, 100.0)]
    slot, y = 0, slots[0][2]

    def put(text: str, size: float, indent: float = 0.0, space: float = 0.0) -> None:
        nonlocal slot, y
        if y - space < slots[slot][3]:
            slot += 1
            y = slots[slot][2]
        elif y != slots[slot][2]:
            y -= space
        page, x = slots[slot][:2]
        pages[page].append((x + indent, y, text, size))
        y -= PITCH

    for heading, paragraphs in SECTIONS:
        put(heading, 10.5, space=8)
        for paragraph in paragraphs:
            for i, line in enumerate(wrap(paragraph, COLUMN_CHARS)):
                put(line, BODY, indent=0.0 if i else 12.0)
    put("References", 10.5, space=8)
    for ref in REFERENCES:
        for i, line in enumerate(wrap(ref, COLUMN_CHARS)):
            put(line, BODY, indent=10.0 if i else 0.0)
    with PdfPages(path, metadata={"CreationDate": None, "Creator": "make_fixtures.py"}) as pdf:
        for number, items in enumerate(pages, 1):
            fig = plt.figure(figsize=(WIDTH / 72, HEIGHT / 72))
            fig.text(LEFT_X / WIDTH, 760 / HEIGHT, HEADER, fontsize=8)
            for x, y, text, size in sorted(items, key=lambda item: (-item[1], item[0])):
                if SUPERSCRIPT.search(text):
                    superscripts(fig, x, y, text, size)
                else:
                    fig.text(x / WIDTH, y / HEIGHT, text, fontsize=size, ha="center" if x == WIDTH / 2 else "left")
            fig.text(0.5, 40 / HEIGHT, str(number), fontsize=8, ha="center")
            pdf.savefig(fig)
            plt.close(fig)


# Fixture 5: a review set the way the real paper in ../shared/testdata is (one column, symbols after the authors'
# names, an "Abstract" heading, unnumbered section headings, superscript citations everywhere, a figure page that
# interrupts a paragraph mid-word, a sentence running across a page break, numbered "(n)" references), so the
# behaviours its tests check are tested in any checkout. Each page: (kind, text) items, drawn top down.
REVIEW_TITLE = ["A Short Perspective on Explaining", "Molecular Property Predictions"]
REVIEW_AUTHORS = "Ada B. Lovelace,^{†} Alan M. Turing,^{‡} Grace B. Hopper,^{‡} and Rosalind E. Franklin^{∗,‡}"
REVIEW_AFFILIATIONS = ["†Department of Chemistry, Example University, Springfield 12345, USA",
                       "‡Department of Chemical Engineering, Example University, Springfield 12345, USA",
                       "E-mail: franklin@example.edu"]
REVIEW_ABSTRACT = (
    "Chemists can be wary of deep learning models in decision making because “black-box” models do not say why they "
    "predict what they predict. Explainable artificial intelligence offers tools that interpret such models and "
    "their predictions. We review the principles of explanation in chemistry and the methods for creating and "
    "evaluating explanations, then show counterfactuals and descriptor explanations at work on solubility."
)
REVIEW_PAGES: list[list[tuple[str, str]]] = [
    [("heading", "Introduction"),
     ("para", "Deep learning models predict molecular properties well, yet few of them explain a prediction in "
              "terms a chemist can check.^{1,2} An explanation is useful when it points at a structure a chemist "
              "could change. Accuracy and interpretability are two attractive characteristics of DL models.^{3}")],
    [("para", "Arrieta et al.^{14} distinguish that interpretability is a passive characteristic of a model, while "
              "explainability is an active one that a method adds after training. Several reviews have argued "
              "about what makes an explanation good for science.^{4–6}"),
     ("heading", "Theory"),
     ("para", "Gradient based explanations have been widely used to interpret chemistry predictions.^{15} Class "
              "activation maps (CAM), gradCAM, smoothGrad,,^{65} and integrated gradients are examples of this "
              "method. The definition of an ex-|planation are debated among practitioners of black-|box model "
              "interpretability, and no single explanation suits every question."),
     ("subheading", "Self-explaining models"),
     ("para", "A self-explaining model is built so that its parameters carry meaning on their own. Ribeiro "
              "et al.^{35} proposed a surrogate model method that aims to provide sparse/succinct explanations "
              "that")],
    [("flush", "have high fidelity to the original model. Such surrogates are fitted around one prediction and are "
               "read instead of the model itself.^{36}"),
     ("para", "Counterfactuals come from mathematics and philosophy.^{91–94} According to Woodward and "
              "Hitchcock^{92}, a counterfactual is an example that changes the outcome with the smallest change "
              "to the input, as studied by Rao et al.^{70}. They compared several search strategies."),
     ("heading", "Applications"),
     ("subheading", "Solubility prediction"),
     ("para", "In our previous works,^{9,10} we implemented and trained an RNN model in Keras to predict "
              "solubilities (log molarity) of small molecules. The AqSolDB curated database^{137} was used to "
              "train the RNN model. Descriptor explanations then show how substructures are contributing to the "
              "pre-")],
    [("figure", "Figure 2: Descriptor explanations of the solubility model. Republished from Ref.^{9} with "
                "permission.")],
    [("flush", "diction. For example, we see that adding acidic groups raises the predicted solubility of most "
               "molecules.^{127} The scent-structure relationship is not very well understood, so the same "
               "analysis is harder for scent."),
     ("heading", "Discussion"),
     ("para", "Choosing among the plethora of XAI methods described here is still an open question. Each method "
              "answers a different question about a model, and a chemist should ask which question matters."),
     ("heading", "Conclusion and outlook"),
     ("para", "Explanations make deep learning models easier to trust and to learn from. A two-step process of "
              "fitting a black-box model and explaining its predictions can uncover structure-property "
              "relationships.")],
    [("heading", "References"),
     ("ref", "(1) Choudhary, K.; DeCost, B.; Chen, C. Recent advances in deep learning for materials. npj "
             "Computational Materials 2022, 8, 1-26."),
     ("ref", "(2) Keith, J. A.; Vassilev-Galindo, V. Combining machine learning and computational chemistry. "
             "Chemical Reviews 2021, 121, 9816-9872."),
     ("ref", "(3) Stumpfe, D.; Bajorath, J. Exploring activity cliffs in medicinal chemistry. Journal of Medicinal "
             "Chemistry 2012, 55, 2932-2942.")],
]


def review_paper(path: Path) -> None:
    """Fixture 5: REVIEW_PAGES as a six-page, one-column PDF with a running header and page numbers."""
    width, left, size, pitch = 92, LEFT_X, 10.0, 14.0
    with PdfPages(path, metadata={"CreationDate": None, "Creator": "make_fixtures.py"}) as pdf:
        for number, items in enumerate(REVIEW_PAGES, 1):
            fig = plt.figure(figsize=(WIDTH / 72, HEIGHT / 72))
            fig.text(LEFT_X / WIDTH, 760 / HEIGHT, "Short Perspective Preprint", fontsize=8)
            y = 720.0
            if number == 1:
                for line in REVIEW_TITLE:
                    fig.text(0.5, y / HEIGHT, line, fontsize=18, ha="center")
                    y -= 24
                y -= 6
                superscripts(fig, 120, y, REVIEW_AUTHORS, 11)
                y -= 22
                for line in REVIEW_AFFILIATIONS:
                    fig.text(left / WIDTH, y / HEIGHT, line, fontsize=9)
                    y -= 12
                y -= 16
                fig.text(0.5, y / HEIGHT, "Abstract", fontsize=12, ha="center")
                y -= 20
                for line in wrap(REVIEW_ABSTRACT, width):
                    fig.text(left / WIDTH, y / HEIGHT, line, fontsize=size)
                    y -= pitch
                y -= 16
            for kind, text in items:
                if kind in ("heading", "subheading"):
                    y -= 10
                    fig.text(left / WIDTH, y / HEIGHT, text, fontsize=13 if kind == "heading" else 11.5)
                    y -= 20
                elif kind == "figure":
                    fig.figimage(np.random.default_rng(1).integers(0, 255, (24, 40)), xo=260, yo=440, cmap="gray",
                                 resize=False)
                    y = 390.0
                    for line in wrap(text, 100):
                        superscripts(fig, left, y, line, 9)
                        y -= 12
                else:
                    indent = 0.0 if kind in ("flush", "ref") else 14.0
                    for i, line in enumerate(wrap(text, width)):
                        superscripts(fig, left + (indent if i == 0 else (12.0 if kind == "ref" else 0.0)), y,
                                     line, size)
                        y -= pitch
                    y -= 4
            fig.text(0.5, 40 / HEIGHT, str(number), fontsize=9, ha="center")
            pdf.savefig(fig)
            plt.close(fig)


def single_column(path: Path) -> None:
    """A one-page note: its title only in the metadata's Title (page 1 has no larger font), no Abstract heading."""
    text = (
        "This note has no abstract heading, so its first substantial paragraph stands in for the abstract. "
        "It is long enough to count as one: a reader should take these sentences, joined into a single "
        "paragraph, as the summary of the note and start the body after them. The rest is a short body that "
        "follows this paragraph and adds a sentence of its own."
    )
    body = "A second paragraph forms the body of the note and says nothing more of interest to anyone."
    with PdfPages(path, metadata={"CreationDate": None, "Title": "A Single Column Note on Abstract Fallbacks"}) as pdf:
        fig = plt.figure(figsize=(WIDTH / 72, HEIGHT / 72))
        fig.text(LEFT_X / WIDTH, 720 / HEIGHT, "Short note", fontsize=BODY)
        y = 690.0
        for i, line in enumerate(wrap(text, 86) + [""] + wrap(body, 86)):
            fig.text((LEFT_X + (12 if i == 0 else 0)) / WIDTH, y / HEIGHT, line, fontsize=BODY)
            y -= PITCH
        pdf.savefig(fig)
        plt.close(fig)


def image_only(path: Path) -> None:
    """Fixture 2: a page holding only an image (what a scan without OCR looks like)."""
    fig = plt.figure(figsize=(WIDTH / 72, HEIGHT / 72))
    fig.figimage(np.random.default_rng(0).integers(0, 255, (40, 30)), xo=100, yo=400, cmap="gray", resize=False)
    fig.savefig(path, metadata={"CreationDate": None})
    plt.close(fig)


def short_text(path: Path) -> None:
    """A page with a text layer but nothing abstract-length on it."""
    fig = plt.figure(figsize=(WIDTH / 72, HEIGHT / 72))
    fig.text(0.3, 0.5, "Figure 1: a caption and nothing else", fontsize=BODY)
    fig.savefig(path, metadata={"CreationDate": None})
    plt.close(fig)


def encrypted(source: Path, path: Path) -> None:
    """Fixture 3: fixture 1 encrypted with a user password (random salts: the bytes differ on every run)."""
    from pypdf import PdfReader, PdfWriter  # only this fixture needs it

    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    path.write_bytes(buffer.getvalue())


def main(out: Path) -> None:
    """Write every fixture into out."""
    plt.rcParams.update({"pdf.fonttype": 42, "pdf.compression": 9})
    out.mkdir(parents=True, exist_ok=True)
    column_paper(out / "two-column.pdf")
    review_paper(out / "review.pdf")
    single_column(out / "single-column.pdf")
    image_only(out / "image-only.pdf")
    short_text(out / "short-text.pdf")
    encrypted(out / "two-column.pdf", out / "encrypted.pdf")
    data = (out / "two-column.pdf").read_bytes()
    (out / "truncated.pdf").write_bytes(data[: len(data) // 2])  # fixture 4
    for p in sorted(out.glob("*.pdf")):
        logger.info("%s: %d bytes", p.name, p.stat().st_size)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
