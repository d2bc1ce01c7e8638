"""Typeset the PDF test corpus with real layout engines and write the truth beside each PDF.

    python tests/data/pdfcorpus/make_corpus.py [OUT_DIR]      (default: this folder)

Needs Debian's TeX Live (texlive-latex-extra texlive-publishers texlive-science texlive-fonts-extra
texlive-plain-generic), LibreOffice Writer (libreoffice-writer-nogui) and Ghostscript; CI does not: it reads the
committed PDFs. Every paper takes its title and abstract from corpus/papers.jsonl and a body generated from a fixed
seed, so a rerun typesets the same text (the PDFs' bytes differ only where the engines stamp ids).

For each NAME.pdf, NAME.json holds the truth: layout, title, authors, year, abstract, the body's paragraphs in
reading order (headings, display equations and text inside figures left out), the floats (captions, footnotes:
text that must be somewhere but whose place is free) and the noise (running headers and the like that must not
be read as body text). The layouts: IEEEtran conference, ACM acmart sigconf, a NeurIPS-like single column and an
ICML-like two-column variant, Springer LNCS, arXiv preprints with line numbers (one and two columns) and
Word-made papers (.docx written here, converted by LibreOffice); several papers add a float spanning both
columns, footnotes, running headers, equations and titles broken over two lines.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SEEDS = HERE.parents[2] / "corpus" / "papers.jsonl"
DISTIL_ABOVE = 100_000  # bytes: a bigger PDF (Libertine's Type 1 fonts) is distilled by Ghostscript, as IEEE's
# PDF eXpress and many publishers' pipelines do; the text layer stays, the fonts become compact CFF subsets

PEOPLE = [
    "Ada Lovelace", "Alan Turing", "Grace Hopper", "Zoë Brennan", "José Álvarez", "Wei Chen", "Priya Raman",
    "Jürgen Schmid", "Ana María López", "Oluwaseun Adeyemi", "Mikko Virtanen", "Sophie Laurent",
    "Hiroshi Tanaka", "Ingrid Nilsson", "Rafael Costa", "Fatima Benali", "Liam O'Connor", "Elena Petrova",
    "Kwame Mensah", "Marta Kowalska", "Arjun Mehta", "Chloé Dubois", "Yuki Sato", "Lars van der Berg",
]
PLACES = [
    ("Department of Computer Science", "Example University", "Springfield", "USA", "example.edu"),
    ("School of Informatics", "University of Northfield", "Northfield", "UK", "northfield.ac.uk"),
    ("Institute for Machine Learning", "Technische Hochschule Sonnenberg", "Sonnenberg", "Germany", "th-sonnenberg.de"),
    ("Systems Research Group", "Lakeside Institute of Technology", "Lakeside", "Canada", "lit.ca"),
    ("AI Lab", "Harbor Computing Inc.", "Harbor City", "Japan", "harbor.co.jp"),
]

# The generated body: sentences from templates, words chosen so that TeX meets ligatures (fi, fl, ff, ffi) and
# long words it must hyphenate in a narrow column.
NOUNS = ["throughput", "latency", "memory footprint", "communication volume", "accuracy", "workflow", "buffer pool",
         "coefficient matrix", "profiler", "scheduler", "parallelization strategy", "synchronization barrier",
         "checkpoint", "gradient", "activation", "optimizer state", "interconnect", "offloading policy",
         "heterogeneous cluster", "implementation", "characterization", "configuration space", "benchmark suite",
         "dataflow graph", "tokenizer", "fine-tuning recipe", "attention kernel", "workload", "baseline"]
ADJS = ["efficient", "sufficient", "difficult", "affine", "flexible", "first-order", "fine-grained", "offline",
        "state-of-the-art", "straightforward", "unexpected", "asynchronous", "hierarchical", "distributed",
        "memory-efficient", "well-understood", "significant", "reproducible", "representative", "specific"]
VERBS = ["reduces", "increases", "stabilizes", "dominates", "determines", "influences", "affects", "reflects",
         "overlaps with", "limits", "simplifies", "characterizes", "outperforms", "amplifies", "offsets"]
THINGS = ["the pipeline", "each worker", "the cluster", "our prototype", "the baseline system", "the model",
          "the training loop", "every microbatch", "the inference server", "the profiling run", "the data loader"]
TEMPLATES = [
    "The {adj} {noun} of {thing} {verb} the {noun2} in most of the configurations we examined.",
    "In practice, {thing} {verb} the {noun} far more than the {adj} {noun2} would suggest.",
    "We observe that the {noun} {verb} the {noun2} once {thing} exceeds {n} {unit}.",
    "This effect is {adj} to quantify, because the {noun} and the {noun2} interact through {thing}.",
    "Table {t} lists the {noun} for {thing}, together with the {adj} {noun2} measured on the same hardware.",
    "A {adj} alternative would be to fix the {noun} in advance, but this {verb} the {noun2} of {thing}.",
    "Our analysis of the {noun} shows that {thing} {verb} the {noun2} by roughly {p} percent.",
    "Previous work [{c}] treated the {noun} as a fixed cost, whereas we model it as part of the {adj} {noun2}.",
    "When the {noun} is {adj}, {thing} rarely waits for the {noun2}, which keeps the utilization high.",
    "The remaining {noun} is spread over {n} {unit}, so the {adj} {noun2} is amortized across {thing}.",
    "For completeness, we also report the {noun} of {thing} under an {adj} {noun2} in the appendix.",
    "These measurements confirm that the {noun} {verb} the {noun2} independently of the {adj} setting.",
    "We therefore schedule the {noun} before the {noun2}, which {verb} the idle time of {thing}.",
    "Unlike earlier designs [{c}], {thing} does not require an {adj} {noun} to reach a stable {noun2}.",
]
UNITS = ["nodes", "GPUs", "layers", "microbatches", "requests", "gigabytes", "workers", "sequences"]
SECTIONS = ["Introduction", "Background and Motivation", "System Design", "Implementation", "Evaluation",
            "Related Work", "Discussion", "Conclusion"]
KEYWORDS = ["distributed training", "large language models", "parallelism", "systems for machine learning",
            "inference", "memory efficiency"]


@dataclass
class Item:
    """One piece of the body: a heading, a paragraph, a display equation, or a float (caption, footnote)."""

    kind: str  # heading, paragraph, equation, caption, footnote
    text: str
    footnote: str = ""  # a footnote whose marker ends this paragraph's first sentence
    wide: bool = False  # a float spanning both columns
    table: bool = True  # a table (else a figure drawn with TikZ)


@dataclass
class Spec:
    """One paper of the corpus: its layout, its seed paper and the features it exercises."""

    name: str
    layout: str
    seed: str
    year: int
    authors: list[str]
    places: list[int]  # each author's affiliation (index into PLACES)
    sections: int = 5
    wide: bool = False
    footnotes: bool = False
    equation: bool = False
    break_title: bool = False  # force the title over two lines
    metadata_title: str = ""  # the PDF metadata's Title: "" none (as most LaTeX papers), "=" the real title
    teaser: str = ""  # acmart: a teaser figure with this phrase in type larger than the title
    creation_year: int | None = None  # the CreationDate's year when it is not `year`
    features: list[str] = field(default_factory=list)


def seeds() -> dict[str, dict]:
    """The seed papers: id -> {title, abstract}."""
    with SEEDS.open(encoding="utf-8") as f:
        return {d["id"]: d for d in map(json.loads, f)}


def sentence(rng: random.Random) -> str:
    """One generated sentence."""
    nouns = rng.sample(NOUNS, 2)
    adj = rng.choice(ADJS)
    text = rng.choice(TEMPLATES).format(
        adj=adj, noun=nouns[0], noun2=nouns[1], verb=rng.choice(VERBS), thing=rng.choice(THINGS),
        n=rng.choice([4, 8, 16, 32, 64, 128, 256]), unit=rng.choice(UNITS), t=rng.randint(1, 3),
        p=rng.choice([5, 12, 18, 23, 31, 40]), c=rng.randint(1, 9))
    text = re.sub(r"\ban ([^aeiou])", r"a \1", text)
    text = re.sub(r"\ba ([aeiou])", r"an \1", text)
    return text[0].upper() + text[1:]


def body(spec: Spec, rng: random.Random) -> list[Item]:
    """The body of one paper: numbered sections of paragraphs, with the spec's equation, floats and footnotes."""
    items: list[Item] = []
    names = [SECTIONS[0], *rng.sample(SECTIONS[1:-1], spec.sections - 2), SECTIONS[-1]]
    for s, name in enumerate(names):
        items.append(Item("heading", name))
        for p in range(rng.randint(2, 3)):
            text = " ".join(sentence(rng) for _ in range(rng.randint(3, 6)))
            note = ""
            if spec.footnotes and s in (1, 3) and p == 0:
                note = f"The {rng.choice(ADJS)} {rng.choice(NOUNS)} is measured with the same {rng.choice(NOUNS)} " \
                       f"in every run."
            items.append(Item("paragraph", text, footnote=note))
            if spec.equation and s == 2 and p == 0:
                items.append(Item("equation", "T = \\sum_{i=1}^{n} \\frac{c_i}{b_i} + \\lambda \\, m"))
                items.append(Item("paragraph", "where " + sentence(rng)[0].lower() + sentence(rng)[1:] + " "
                                  + sentence(rng)))
        if s == 1:
            caption = f"{rng.choice(NOUNS).capitalize()} and {rng.choice(NOUNS)} of {rng.choice(THINGS)} on " \
                      f"{rng.choice([8, 16, 64])} {rng.choice(UNITS)}."
            items.append(Item("caption", caption, wide=spec.wide, table=rng.random() < 0.5))
    return items


# ---------------------------------------------------------------------------------------------------- LaTeX

def tex(text: str) -> str:
    """Plain text as LaTeX source."""
    text = text.replace("\\", "\\textbackslash{}")
    for a, b in (("%", "\\%"), ("&", "\\&"), ("#", "\\#"), ("_", "\\_"), ("$", "\\$"), ("<", "\\textless{}"),
                 (">", "\\textgreater{}"), ("~", "\\textasciitilde{}")):
        text = text.replace(a, b)
    text = re.sub(r'"([^"]*)"', r"``\1''", text)
    return text


def cite(text: str) -> str:
    """Plain text with its [n] references as \\cite{rn}."""
    return re.sub(r"\[(\d)\]", r"\\cite{r\1}", tex(text))


def float_tex(item: Item, n: int, layout: str) -> str:
    """A table or a TikZ figure with the item's caption; a wide one spans both columns (table* / figure*)."""
    star = "*" if item.wide else ""
    where = "[t]"
    if item.table:
        rows = "\\\\\n".join(f"{name} & {1.1 + 0.37 * i:.2f} & {12 + 7 * i} & {0.5 + 0.21 * i:.2f}"
                             for i, name in enumerate(["Baseline", "Sharded", "Ours"]))
        cols = "lrrr" if not item.wide else "lrrrrr"
        if item.wide:
            rows = "\\\\\n".join(f"{name} & {1.1 + 0.37 * i:.2f} & {12 + 7 * i} & {0.5 + 0.21 * i:.2f} & "
                                 f"{3 + i} & {40 - 6 * i}" for i, name in enumerate(["Baseline", "Sharded", "Ours"]))
        head = "System & Speedup & GB & Loss" + (" & Nodes & Hours" if item.wide else "")
        inner = f"\\begin{{tabular}}{{{cols}}}\n\\hline\n{head}\\\\\n\\hline\n{rows}\\\\\n\\hline\n\\end{{tabular}}"
        return (f"\\begin{{table{star}}}{where}\n\\centering\n\\caption{{{tex(item.text)}}}\n{inner}\n"
                f"\\end{{table{star}}}\n")
    width = "14cm" if item.wide else "6.5cm"
    inner = (f"\\begin{{tikzpicture}}\\draw (0,0) rectangle ({width[:-2]},2.2);"
             "\\node at (1.4,1.1) {Loader}; \\node at (3.2,1.1) {Workers}; \\draw[->] (2,1.1) -- (2.5,1.1);"
             f"\\draw (0.3,0.3) -- ({float(width[:-2]) - 0.3},1.9);\\end{{tikzpicture}}")
    return (f"\\begin{{figure{star}}}{where}\n\\centering\n{inner}\n\\caption{{{tex(item.text)}}}\n"
            f"\\end{{figure{star}}}\n")


def body_tex(items: list[Item], layout: str) -> str:
    """The body as LaTeX: sections, paragraphs (footnotes after their first sentence), equations, floats."""
    out: list[str] = []
    floats = 0
    for item in items:
        if item.kind == "heading":
            out.append(f"\\section{{{item.text}}}\n")
        elif item.kind == "paragraph":
            text = cite(item.text)
            if item.footnote:
                first, rest = text.split(". ", 1)
                text = f"{first}.\\footnote{{{tex(item.footnote)}}} {rest}"
            out.append(("\\noindent " if item.text.startswith("where ") else "") + text + "\n\n")
        elif item.kind == "equation":
            out.append(f"\\begin{{equation}}\n{item.text}\n\\end{{equation}}\n")
        elif item.kind == "caption":
            floats += 1
            out.append(float_tex(item, floats, layout))
    refs = "\n".join(f"\\bibitem{{r{i}}} {PEOPLE[i]}. A study of {NOUNS[i]}. In Proc. of a Workshop, {2010 + i}."
                     for i in range(1, 10))
    out.append(f"\\begin{{thebibliography}}{{9}}\n{refs}\n\\end{{thebibliography}}\n")
    return "".join(out)


def ordinal(n: int) -> str:
    """21 -> '21st', 33 -> '33rd', 38 -> '38th'."""
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def mailbox(name: str) -> str:
    """An author's email name: the surname in ASCII ('López' -> 'lopez', "O'Connor" -> 'oconnor')."""
    plain = unicodedata.normalize("NFKD", name.split()[-1]).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", plain.lower())


def initials(name: str) -> str:
    """'Ada Lovelace' -> 'A. Lovelace'."""
    *first, last = name.split(" ") if " van " not in name else [name.split(" van ")[0], "van " + name.split(" van ")[1]]
    return " ".join(f"{w[0]}." for w in first) + " " + last


def title_tex(spec: Spec, title: str) -> str:
    """The title as LaTeX, broken after its colon (or half-way) when the spec asks for two lines."""
    if not spec.break_title:
        return tex(title)
    if ": " in title:
        head, tail = title.split(": ", 1)
        return f"{tex(head)}:\\\\ {tex(tail)}"
    words = title.split()
    return f"{tex(' '.join(words[: len(words) // 2]))}\\\\ {tex(' '.join(words[len(words) // 2:]))}"


def hyper(spec: Spec, title: str) -> str:
    """hyperref with the metadata Title the spec asks for (the real title unless it says otherwise)."""
    meta = title if spec.metadata_title == "=" else spec.metadata_title
    if not meta:
        return "\\usepackage[hidelinks]{hyperref}\n"
    return f"\\usepackage[hidelinks,pdftitle={{{tex(meta)}}},pdfauthor={{{', '.join(spec.authors)}}}]{{hyperref}}\n"


def ieee(spec: Spec, title: str, abstract: str, items: list[Item]) -> tuple[str, list[str]]:
    """IEEEtran conference: a full-width title block, the bold abstract in the left column, a copyright line."""
    blocks = "\n\\and\n".join(
        f"\\IEEEauthorblockN{{{tex(a)}}}\n\\IEEEauthorblockA{{\\textit{{{PLACES[p][0]}}}\\\\\n"
        f"\\textit{{{PLACES[p][1]}}}\\\\\n{PLACES[p][2]}, {PLACES[p][3]}\\\\\n"
        f"{mailbox(a)}@{PLACES[p][4]}}}"
        for a, p in zip(spec.authors, spec.places, strict=True))
    doc = (
        "\\documentclass[conference]{IEEEtran}\n\\IEEEoverridecommandlockouts\n"
        "\\usepackage{cite}\n\\usepackage{amsmath,amssymb}\n\\usepackage{tikz}\n"
        + (hyper(spec, title) if spec.metadata_title else "") +  # IEEE's template loads no hyperref
        "\\begin{document}\n"
        f"\\title{{{title_tex(spec, title)}}}\n\\author{{{blocks}}}\n\\maketitle\n"
        "\\begingroup\\renewcommand\\thefootnote{}\\footnotetext{979-8-3503-1234-5/"
        f"{spec.year % 100}/\\$31.00~\\copyright{spec.year} IEEE}}\\addtocounter{{footnote}}{{-1}}\\endgroup\n"
        f"\\begin{{abstract}}\n{tex(abstract)}\n\\end{{abstract}}\n"
        f"\\begin{{IEEEkeywords}}\n{', '.join(KEYWORDS[:4])}\n\\end{{IEEEkeywords}}\n"
        + body_tex(items, "ieee") + "\\end{document}\n")
    return doc, [f"©{spec.year} IEEE"]


def acm(spec: Spec, title: str, abstract: str, items: list[Item]) -> tuple[str, list[str]]:
    """ACM acmart sigconf: authors with affiliations and emails, ABSTRACT, CCS concepts, the reference format."""
    authors = "\n".join(
        f"\\author{{{tex(a)}}}\n\\affiliation{{\\institution{{{PLACES[p][1]}}}\\city{{{PLACES[p][2]}}}"
        f"\\country{{{PLACES[p][3]}}}}}\n\\email{{{mailbox(a)}@{PLACES[p][4]}}}"
        for a, p in zip(spec.authors, spec.places, strict=True))
    teaser = ""
    if spec.teaser:
        teaser = ("\\begin{teaserfigure}\\centering\\begin{tikzpicture}\\draw[rounded corners] (0,0) rectangle "
                  f"(16,2.4);\\node at (8,1.2) {{\\Huge\\bfseries {spec.teaser}}};\\end{{tikzpicture}}"
                  "\\caption{An overview of the system and where it sits in a user's workflow.}"
                  "\\end{teaserfigure}\n")
    short = title.split(":")[0] if ":" in title else " ".join(title.split()[:4])
    doc = (
        "\\documentclass[sigconf]{acmart}\n\\usepackage{tikz}\n"
        f"\\copyrightyear{{{spec.year}}}\n\\acmYear{{{spec.year}}}\n\\setcopyright{{acmlicensed}}\n"
        f"\\acmConference[SoCC '{spec.year % 100}]{{ACM Symposium on Cloud Computing}}{{November 20--22, "
        f"{spec.year}}}{{Redmond, WA, USA}}\n\\acmDOI{{10.1145/3698038.{3698000 + spec.sections * 17}}}\n"
        f"\\acmISBN{{979-8-4007-1286-9/{spec.year % 100}/11}}\n"
        "\\begin{document}\n"
        f"\\title[{tex(short)}]{{{title_tex(spec, title)}}}\n{authors}\n"
        f"\\begin{{abstract}}\n{tex(abstract)}\n\\end{{abstract}}\n"
        "\\ccsdesc[500]{Computing methodologies~Machine learning}\n"
        "\\ccsdesc[300]{Computer systems organization~Cloud computing}\n"
        f"\\keywords{{{', '.join(KEYWORDS[1:5])}}}\n{teaser}\\maketitle\n"
        f"\\hypersetup{{pdftitle={{{tex(title if spec.metadata_title == '=' else spec.metadata_title)}}}}}\n"
        + body_tex(items, "acm") + "\\end{document}\n")
    return doc, [short, "Permission to make digital or hard copies"]


AND = "\\And"
NEURIPS_PREAMBLE = r"""
\usepackage[letterpaper,textwidth=5.5in,textheight=9in,top=1in,headheight=12pt,headsep=25pt]{geometry}
\usepackage{times}
\usepackage{amsmath,amssymb}
\usepackage{tikz}
\usepackage{natbib}
\setcitestyle{numbers,square}
\makeatletter
\renewcommand{\@maketitle}{\vbox{\hsize\textwidth\linewidth\hsize\vskip 0.1in\hrule height 4pt\vskip 0.25in
  \centering{\LARGE\bf \@title\par}\vskip 0.29in\hrule height 1pt\vskip 0.09in
  \def\And{\end{tabular}\hfil\linebreak[0]\hfil\begin{tabular}[t]{c}\bf\ignorespaces}
  \begin{tabular}[t]{c}\bf\@author\end{tabular}\vskip 0.3in}}
\renewenvironment{abstract}{\vskip .075in\centerline{\large\bf Abstract}\vspace{0.5ex}\begin{quote}}{\par\end{quote}
  \vskip 1ex}
\makeatother
"""


def author_tabulars(spec: Spec, sep: str) -> str:
    """Authors as NeurIPS prints them: name, affiliation, city and email in a block, blocks side by side."""
    return f"\n{sep}\n".join(
        f"{tex(a)}\\\\\n\\mdseries {PLACES[p][1]}\\\\\n{PLACES[p][2]}, {PLACES[p][3]}\\\\\n"
        f"\\texttt{{{mailbox(a)}@{PLACES[p][4]}}}"
        for a, p in zip(spec.authors, spec.places, strict=True))


def neurips(spec: Spec, title: str, abstract: str, items: list[Item]) -> tuple[str, list[str]]:
    """A NeurIPS-like single column: the title between rules, author blocks, an indented abstract, the venue
    in a footnote on page 1, a running header on the later pages."""
    venue = f"{ordinal(spec.year - 1986)} Conference on Neural Information Processing Systems (NeurIPS {spec.year})."
    doc = (
        "\\documentclass[10pt]{article}\n" + NEURIPS_PREAMBLE + hyper(spec, title) +
        "\\usepackage{fancyhdr}\n\\pagestyle{fancy}\\fancyhf{}\\renewcommand{\\headrulewidth}{0pt}\n"
        "\\fancyfoot[C]{\\thepage}\n"
        f"\\title{{{title_tex(spec, title)}}}\n\\author{{{author_tabulars(spec, AND)}}}\n"
        "\\begin{document}\n\\maketitle\\thispagestyle{plain}\n"
        f"\\begingroup\\renewcommand\\thefootnote{{}}\\footnotetext{{{venue}}}\\addtocounter{{footnote}}{{-1}}"
        "\\endgroup\n"
        f"\\begin{{abstract}}\n{tex(abstract)}\n\\end{{abstract}}\n"
        + body_tex(items, "neurips") + "\\end{document}\n")
    return doc, [venue]


def icml(spec: Spec, title: str, abstract: str, items: list[Item]) -> tuple[str, list[str]]:
    """An ICML-like two-column paper: a full-width title and byline, the abstract under a centred heading in the
    left column, affiliations and the venue in a footnote, a running header with the short title."""
    marks = {p: i + 1 for i, p in enumerate(dict.fromkeys(spec.places))}
    byline = " \\quad ".join(f"{tex(a)}\\textsuperscript{{{marks[p]}}}"
                             for a, p in zip(spec.authors, spec.places, strict=True))
    places = " ".join(f"\\textsuperscript{{{m}}}{PLACES[p][0]}, {PLACES[p][1]}, {PLACES[p][2]}, {PLACES[p][3]}."
                      for p, m in marks.items())
    first = spec.authors[0]
    email = f"{mailbox(first)}@{PLACES[spec.places[0]][4]}"
    venue = (f"Proceedings of the {ordinal(spec.year - 1983)} International Conference on Machine Learning, Vienna, Austria. "
             f"PMLR 235, {spec.year}. Copyright {spec.year} by the author(s).")
    short = title.split(":")[0] if ":" in title else " ".join(title.split()[:5])
    doc = (
        "\\documentclass[twocolumn,10pt]{article}\n"
        "\\usepackage[letterpaper,textwidth=6.75in,textheight=9in,top=1in,columnsep=0.25in,headsep=0.2in]"
        "{geometry}\n\\usepackage{times}\n\\usepackage{amsmath,amssymb,tikz}\n\\usepackage[numbers,square]{natbib}\n"
        + hyper(spec, title) +
        "\\usepackage{fancyhdr}\n\\pagestyle{fancy}\\fancyhf{}\n"
        f"\\fancyhead[C]{{\\small\\bfseries {tex(short)}}}\\fancyfoot[C]{{\\thepage}}\n"
        "\\renewenvironment{abstract}{\\centerline{\\large\\bf Abstract}\\vspace{0.5ex}\\begin{quote}\\small}"
        "{\\par\\end{quote}}\n"
        "\\begin{document}\n"
        "\\twocolumn[{\\centering\\vspace*{0.1in}\\hrule height 1pt\\vskip 0.25in"
        f"{{\\Large\\bfseries {title_tex(spec, title)}\\par}}\\vskip 0.25in\\hrule height 1pt\\vskip 0.2in"
        f"{{\\bfseries {byline}\\par}}\\vskip 0.3in}}]\n\\thispagestyle{{plain}}\n"
        f"\\begingroup\\renewcommand\\thefootnote{{}}\\footnotetext{{{places} Correspondence to: {tex(first)} "
        f"<\\texttt{{{email}}}>.\\par {venue}}}\\addtocounter{{footnote}}{{-1}}\\endgroup\n"
        f"\\begin{{abstract}}\n{tex(abstract)}\n\\end{{abstract}}\n"
        + body_tex(items, "icml") + "\\end{document}\n")
    return doc, [short, f"Copyright {spec.year} by the author(s)."]


def lncs(spec: Spec, title: str, abstract: str, items: list[Item]) -> tuple[str, list[str]]:
    """Springer LNCS: numbered institutes, emails, 'Abstract.' run in, keywords, running heads."""
    marks = {p: i + 1 for i, p in enumerate(dict.fromkeys(spec.places))}
    authors = " \\and ".join(f"{tex(a)}\\inst{{{marks[p]}}}" for a, p in zip(spec.authors, spec.places, strict=True))
    institutes = " \\and ".join(
        f"{PLACES[p][1]}, {PLACES[p][2]}, {PLACES[p][3]}\\\\\n\\email{{"
        + ", ".join(mailbox(a) + "@" + PLACES[p][4]
                    for a, q in zip(spec.authors, spec.places, strict=True) if q == p) + "}"
        for p in marks)
    running = f"{initials(spec.authors[0])} et al." if len(spec.authors) > 2 else \
        " and ".join(initials(a) for a in spec.authors)
    short = title.split(":")[0] if ":" in title else title
    keywords = " \\and ".join(KEYWORDS[:3])
    doc = (
        "\\documentclass[runningheads]{llncs}\n\\usepackage[T1]{fontenc}\n\\usepackage{amsmath,tikz}\n"
        + hyper(spec, title) + "\\begin{document}\n"
        f"\\title{{{title_tex(spec, title)}}}\n\\titlerunning{{{tex(short)}}}\n\\author{{{authors}}}\n"
        f"\\authorrunning{{{tex(running)}}}\n\\institute{{{institutes}}}\n\\maketitle\n"
        f"\\begin{{abstract}}\n{tex(abstract)}\n\n\\keywords{{{keywords}}}\n\\end{{abstract}}\n"
        + body_tex(items, "lncs") + "\\end{document}\n")
    return doc, [short, running]


def arxiv(spec: Spec, title: str, abstract: str, items: list[Item], two: bool = False) -> tuple[str, list[str]]:
    """An arXiv preprint: article class with line numbers, authblk byline, a date, a 'Preprint' header and the
    identifier stamped sideways in the left margin as arXiv does."""
    marks = {p: i + 1 for i, p in enumerate(dict.fromkeys(spec.places))}
    authors = "\n".join(f"\\author[{marks[p]}]{{{tex(a)}}}" for a, p in zip(spec.authors, spec.places, strict=True))
    affils = "\n".join(f"\\affil[{m}]{{{PLACES[p][0]}, {PLACES[p][1]}, {PLACES[p][3]}}}" for p, m in marks.items())
    emails = ", ".join(f"{mailbox(a)}@{PLACES[p][4]}"
                       for a, p in zip(spec.authors, spec.places, strict=True))
    month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][spec.sections + 2]
    number = spec.sections + 3
    stamp = (f"arXiv:{spec.year % 100}{number:02d}.{10000 + 317 * spec.sections + len(title)}v2  [cs.LG]  "
             f"{number + 7} {month} {spec.year}")
    doc = (
        f"\\documentclass[{'twocolumn,' if two else ''}10pt]{{article}}\n"
        "\\usepackage[margin=1in]{geometry}\n\\usepackage{lineno}\n\\usepackage{authblk}\n"
        "\\usepackage{amsmath,amssymb,tikz,xcolor,graphicx,eso-pic}\n"
        + hyper(spec, title) +
        "\\usepackage{fancyhdr}\n\\pagestyle{fancy}\\fancyhf{}\\fancyhead[L]{\\small Preprint. Under review.}"
        "\\fancyfoot[C]{\\thepage}\n"
        f"\\title{{{title_tex(spec, title)}}}\n{authors}\n{affils}\n"
        f"\\date{{{['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'][spec.sections + 2]} "
        f"{number}, {spec.year}}}\n"
        "\\begin{document}\n"
        + STAMP.replace("@STAMP@", stamp)
        + ("\\twocolumn[\\begin{@twocolumnfalse}\\maketitle\\thispagestyle{fancy}\n"
           f"\\begin{{center}}\\texttt{{{emails}}}\\end{{center}}\n"
           f"\\begin{{abstract}}\n{tex(abstract)}\n\\end{{abstract}}\\vspace{{1em}}\\end{{@twocolumnfalse}}]\n"
           if two else
           "\\maketitle\\thispagestyle{fancy}\n"
           f"\\begin{{center}}\\texttt{{{emails}}}\\end{{center}}\n"
           f"\\begin{{abstract}}\n{tex(abstract)}\n\\end{{abstract}}\n")
        + "\\linenumbers\n" + body_tex(items, "arxiv") + "\\end{document}\n")
    return doc, ["Preprint. Under review."]


STAMP = ("\\AddToShipoutPictureBG*{\\AtPageLowerLeft{\\put(18,250){\\rotatebox{90}{\\fontsize{20}{22}"
         "\\selectfont\\textcolor{gray}{@STAMP@}}}}}\n")


LAYOUTS = {"ieee": ieee, "acm": acm, "neurips": neurips, "icml": icml, "lncs": lncs, "arxiv": arxiv,
           "arxiv2": lambda *a: arxiv(*a, two=True)}


def typeset(spec: Spec, source: str, out: Path) -> None:
    """pdflatex twice (for the references) in a scratch folder; the PDF is distilled when it came out big."""
    epoch = str(int(__import__("datetime").datetime(spec.creation_year or spec.year, 6, 1).timestamp()))
    env = {**os.environ, "SOURCE_DATE_EPOCH": epoch, "FORCE_SOURCE_DATE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "paper.tex").write_text(source, encoding="utf-8")
        for _ in range(2):
            run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp,
                                 env=env, capture_output=True, text=True, errors="replace", check=False)
            if run.returncode:
                raise RuntimeError(f"{spec.name}: pdflatex failed:\n{run.stdout[-3000:]}")
        pdf = Path(tmp) / "paper.pdf"
        if pdf.stat().st_size > DISTIL_ABOVE:
            distilled = Path(tmp) / "distilled.pdf"
            subprocess.run(["gs", "-q", "-dNOPAUSE", "-dBATCH", "-sDEVICE=pdfwrite", "-dCompatibilityLevel=1.5",
                            "-o", str(distilled), str(pdf)], check=True, env=env)
            spec.features.append("distilled")
            pdf = distilled
        shutil.copyfile(pdf, out)


# ---------------------------------------------------------------------------------------------------- Word

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _para(text: str, size: int = 20, bold: bool = False, center: bool = False, indent: bool = False,
          italic: bool = False, after: int = 0, keep: bool = False) -> str:
    """One w:p (size in half-points)."""
    jc = "center" if center else "both"
    ind = '<w:ind w:firstLine="288"/>' if indent else ""
    ppr = f'<w:pPr>{"<w:keepNext/>" if keep else ""}<w:spacing w:after="{after}"/>{ind}<w:jc w:val="{jc}"/></w:pPr>'
    rpr = f'<w:rPr>{"<w:b/>" if bold else ""}{"<w:i/>" if italic else ""}<w:sz w:val="{size}"/></w:rPr>'
    return f'<w:p>{ppr}<w:r>{rpr}<w:t xml:space="preserve">{_esc(text)}</w:t></w:r></w:p>'


def word(spec: Spec, title: str, abstract: str, items: list[Item], out: Path) -> None:
    """A Word-made paper: a .docx written here (title block in one column, the rest in two when the spec is
    'word2'), converted to PDF by LibreOffice; its metadata Title is whatever the template left there."""
    two = spec.layout == "word2"
    paras = [_para(title, 40 if not two else 48, bold=not two, center=True, after=240),
             _para(", ".join(spec.authors), 22, center=True, after=60)]
    for p in dict.fromkeys(spec.places):
        paras.append(_para(f"{PLACES[p][1]}, {PLACES[p][2]}, {PLACES[p][3]}", 18, italic=True, center=True))
    paras.append(_para(", ".join(f"{mailbox(a)}@{PLACES[p][4]}"
                                 for a, p in zip(spec.authors, spec.places, strict=True)), 18, center=True, after=240))
    paras.append(_para(f"Proceedings of the Workshop on Efficient Systems, {spec.year}", 16, center=True, after=240))
    cols = '<w:cols w:num="2" w:space="432"/>' if two else '<w:cols w:num="1"/>'
    page = ('<w:pgSz w:w="12240" w:h="15840"/><w:pgMar w:top="1080" w:right="1080" w:bottom="1080" '
            'w:left="1080" w:header="720" w:footer="720" w:gutter="0"/>')
    if two:
        paras.append(_para("Abstract", 20, bold=True, center=True, after=120))
        paras.append(_para(abstract, 18, bold=False, after=240))
        # the title block is a one-column section; the abstract and the body are in two columns
        paras.insert(len(paras) - 2, f'<w:p><w:pPr><w:sectPr><w:type w:val="continuous"/>{page}<w:cols w:num="1"/>'
                     '</w:sectPr></w:pPr></w:p>')
    else:
        paras.append(_para("Abstract", 22, bold=True, after=120))
        paras.append(_para(abstract, 20, after=240))
    n = 0
    for item in items:
        if item.kind == "heading":
            n += 1
            paras.append(_para(f"{n}. {item.text}", 22 if not two else 20, bold=True, after=120, keep=True))
        elif item.kind == "paragraph":
            paras.append(_para(item.text, 20 if not two else 19, indent=True, after=80))
        elif item.kind == "caption":
            paras.append(_para(f"Table {n}. {item.text}", 16, center=True, after=160))
    paras.append(_para("References", 22, bold=True, after=120))
    paras += [_para(f"[{i}] {PEOPLE[i]}. A study of {NOUNS[i]}. In Proc. of a Workshop, {2010 + i}.", 16)
              for i in range(1, 6)]
    document = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document {W}><w:body>'
                + "".join(paras) + f'<w:sectPr><w:type w:val="continuous"/>{page}{cols}</w:sectPr></w:body>'
                "</w:document>")
    meta = title if spec.metadata_title == "=" else spec.metadata_title
    core = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><cp:coreProperties '
            'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f"<dc:title>{_esc(meta)}</dc:title><dc:creator>{_esc(spec.authors[0])}</dc:creator>"
            f'<dcterms:created xsi:type="dcterms:W3CDTF">{spec.creation_year or spec.year}-05-01T10:00:00Z'
            "</dcterms:created></cp:coreProperties>")
    with tempfile.TemporaryDirectory() as tmp:
        docx = Path(tmp) / "paper.docx"
        with zipfile.ZipFile(docx, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("[Content_Types].xml",
                       '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
                       'package/2006/content-types"><Default Extension="rels" ContentType="application/'
                       'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType='
                       '"application/xml"/><Override PartName="/word/document.xml" ContentType="application/'
                       'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/><Override '
                       'PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.'
                       'core-properties+xml"/></Types>')
            z.writestr("_rels/.rels",
                       '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.'
                       'org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.'
                       'openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/'
                       'document.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/'
                       '2006/relationships/metadata/core-properties" Target="docProps/core.xml"/></Relationships>')
            z.writestr("word/document.xml", document)
            z.writestr("docProps/core.xml", core)
        subprocess.run(["soffice", "--headless", f"-env:UserInstallation=file://{tmp}/lo", "--convert-to", "pdf",
                        "--outdir", tmp, str(docx)], check=True, capture_output=True, timeout=300)
        shutil.copyfile(Path(tmp) / "paper.pdf", out)


# ---------------------------------------------------------------------------------------------------- corpus

def specs(ids: list[str]) -> list[Spec]:
    """The corpus: every layout several times, each paper a seed abstract, some authors and its features."""
    rng = random.Random(26)
    plan = [  # layout, count, features for the i-th paper of that layout
        ("ieee", 5, [{"break_title": True}, {"wide": True, "footnotes": True}, {"equation": True},
                     {"metadata_title": "Paper Title (use style: paper title)"}, {"wide": True, "equation": True}]),
        ("acm", 4, [{"teaser": "Paper Search"}, {"wide": True, "footnotes": True, "metadata_title": "="},
                    {"break_title": True, "metadata_title": "="}, {"equation": True, "metadata_title": "="}]),
        ("neurips", 4, [{"footnotes": True}, {"break_title": True, "equation": True},
                        {"metadata_title": "="}, {}]),
        ("icml", 4, [{"wide": True}, {"footnotes": True, "equation": True, "metadata_title": "="}, {"break_title": True}, {"wide": True}]),
        ("lncs", 4, [{}, {"footnotes": True}, {"equation": True, "break_title": True}, {"creation_year": 2025}]),
        ("arxiv", 3, [{"footnotes": True}, {"equation": True}, {"metadata_title": "main.tex"}]),
        ("arxiv2", 3, [{"wide": True}, {"break_title": True}, {"footnotes": True}]),
        ("word", 2, [{"metadata_title": "Microsoft Word - final_v3.docx"},
                     {"creation_year": 2024, "metadata_title": "="}]),
        ("word2", 3, [{"metadata_title": "Paper Title (use style: paper title)"}, {"metadata_title": "="},
                      {"metadata_title": "Draft"}]),
    ]
    out: list[Spec] = []
    k = 0
    for layout, count, features in plan:
        for i in range(count):
            n = rng.randint(2, 5) if layout not in ("word", "word2") else rng.randint(2, 3)
            authors = rng.sample(PEOPLE, n)
            places = [rng.randrange(len(PLACES)) for _ in authors]
            spec = Spec(name=f"{layout}-{i + 1}", layout=layout, seed=ids[k % len(ids)], year=rng.choice(
                [2019, 2021, 2022, 2023, 2024]), authors=authors, places=places, sections=rng.randint(5, 7),
                **features[i])
            spec.features = [f for f, v in features[i].items() if v]
            out.append(spec)
            k += 1
    return out


def truth(spec: Spec, paper: dict, items: list[Item], noise: list[str]) -> dict:
    """What a reader must find in the PDF."""
    year = spec.year
    if spec.layout in ("lncs",):  # LNCS prints no year on its pages: the metadata's is all there is
        year = spec.creation_year or spec.year
    return {
        "layout": spec.layout, "features": spec.features, "seed": spec.seed,
        "title": paper["title"], "authors": spec.authors, "year": year, "abstract": paper["abstract"],
        "paragraphs": [x.text for x in items if x.kind == "paragraph"],
        "headings": [x.text for x in items if x.kind == "heading"],
        "floats": [x.text for x in items if x.kind == "caption"] + [x.footnote for x in items if x.footnote],
        "noise": noise,
    }


def main(out: Path, only: list[str]) -> None:
    """Typeset every paper of the corpus (or those named) into out, each with its truth."""
    papers = seeds()
    for spec in specs(sorted(papers)):
        if only and spec.name not in only:
            continue
        paper = papers[spec.seed]
        items = body(spec, random.Random(spec.name))
        if spec.layout in ("word", "word2"):
            word(spec, paper["title"], paper["abstract"], items, out / f"{spec.name}.pdf")
            noise: list[str] = []
        else:
            source, noise = LAYOUTS[spec.layout](spec, paper["title"], paper["abstract"], items)
            typeset(spec, source, out / f"{spec.name}.pdf")
        record = truth(spec, paper, items, noise)
        (out / f"{spec.name}.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n",
                                               encoding="utf-8")
        logger.info("%s: %d bytes (%s)", spec.name, (out / f"{spec.name}.pdf").stat().st_size,
                    ", ".join(spec.features) or "plain")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = sys.argv[1:]
    target = Path(args.pop(0)) if args and not re.fullmatch(r"[a-z0-9]+-\d+", args[0]) else HERE
    target.mkdir(parents=True, exist_ok=True)
    main(target, args)
