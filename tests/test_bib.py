"""Reference-manager exports: BibTeX and RIS read by the real parsers, PDFs attached, BibTeX written back."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import bibtexparser
import pytest

from rag.bib import BibRead, cite_key, read_bibtex, read_ris, to_bibtex
from rag.corpus import CorpusError
from rag.types import Paper

DATA = Path(__file__).parent / "data" / "bib"
PDF = (DATA / "files" / "paper.pdf").resolve()
ABSTRACT = (
    "We study a question that matters for retrieval over research papers and report results on several public "
    "benchmarks, with ablations of every component and a discussion of where the method fails and why."
)


def _by_title(read: BibRead, start: str):
    """The one entry of read whose title starts with start."""
    found = [e for e in read.papers if e.paper.title.startswith(start)]
    assert len(found) == 1, [e.paper.title for e in read.papers]
    return found[0]


def _bib(tmp_path: Path, body: str, name: str = "export.bib") -> Path:
    """A .bib file in tmp_path holding body."""
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def _one(tmp_path: Path, fields: str, entry_type: str = "article") -> Paper:
    """The single paper read from an entry with these extra fields (title and abstract given unless overridden)."""
    base = {"title": "{A Title}", "abstract": "{" + ABSTRACT + "}"}
    for field in re.split(r"\n(?=\s*\w+\s*=)", fields.strip()):
        name, value = field.split("=", 1)
        base[name.strip().lower()] = value.strip()
    body = f"@{entry_type}{{k1,\n" + ",\n".join(f"  {k} = {v}" for k, v in base.items()) + "\n}\n"
    read = read_bibtex(_bib(tmp_path, body))
    assert not read.skipped, read.skipped
    (entry,) = read.papers
    return entry.paper


@pytest.fixture(scope="module")
def zotero() -> BibRead:
    """The Zotero fixture through read_bibtex."""
    return read_bibtex(DATA / "zotero.bib")


@pytest.fixture(scope="module")
def mendeley() -> BibRead:
    """The Mendeley RIS fixture through read_ris."""
    return read_ris(DATA / "mendeley.ris")


# --- LaTeX decoding -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("latex", "text"),
    [
        (r"M{\"u}ller", "Müller"),
        (r"M\"uller", "Müller"),
        (r"M\"{u}ller", "Müller"),
        (r"{\"U}ber", "Über"),
        (r"R\&D", "R&D"),
        (r"caf{\'e}", "café"),
        (r"caf\'{e}", "café"),
        (r"Fran\c{c}ois", "François"),
        (r"Fran{\c c}ois", "François"),
        (r"Stra{\ss}e", "Straße"),
        (r"{\O}stergaard", "Østergaard"),
        (r"\o{}re", "øre"),
        (r"{\aa}r", "år"),
        (r"\v{S}koda", "Škoda"),
        (r"Espa\~na", "España"),
        (r"h\^otel", "hôtel"),
        (r"d\`a", "dà"),
        (r"Garc{\'\i}a", "García"),
        (r"{\L}{\'o}d{\'z}", "Łódź"),
        (r"{BERT} and {{GPT}}", "BERT and GPT"),
        (r"{{A}} {Study}", "A Study"),
        (r"the \textit{italic} word", "the italic word"),
        (r"\emph{emphasised} word", "emphasised word"),
        (r"\textbf{bold} word", "bold word"),
        (r"\texttt{mono} word", "mono word"),
        (r"\textsc{Small} caps", "Small caps"),
        (r"$\alpha$-helix", "α-helix"),
        (r"$k$-nearest", "k-nearest"),
        (r"$O(n^2)$ time", "O(n^2) time"),
        (r"pages 1--10", "pages 1–10"),
        (r"a---b", "a—b"),
        (r"5\% more", "5% more"),
        (r"\$5 bills", "$5 bills"),
        (r"issue \#3", "issue #3"),
        (r"snake\_case", "snake_case"),
        (r"non~breaking", "non breaking"),
        (r"\LaTeX{} tables", "LaTeX tables"),
        ("two\n    lines   spaced", "two lines spaced"),
        (r"``quoted''", "“quoted”"),
        (r"\url{https://x.org}", "https://x.org"),
    ],
)
def test_latex_in_titles_is_decoded(tmp_path, latex, text):
    assert _one(tmp_path, f"title = {{{latex}}}").title == text


@pytest.mark.parametrize(
    ("field", "latex", "attr", "value"),
    [
        ("abstract", "{" + ABSTRACT + r" It costs 5\% of {\"u}ber \textit{baselines}.}", "abstract",
         ABSTRACT + " It costs 5% of über baselines."),
        ("author", r"{M{\"u}ller, J{\"o}rg and {\O}stergaard, Nils}", "authors", ["Jörg Müller", "Nils Østergaard"]),
        ("journal", r"{Zeitschrift f{\"u}r Physik \& Chemie}", "venue", "Zeitschrift für Physik & Chemie"),
        ("booktitle", r"{Proceedings of {{ICML}}}", "venue", "Proceedings of ICML"),
    ],
)
def test_latex_is_decoded_in_every_field(tmp_path, field, latex, attr, value):
    assert getattr(_one(tmp_path, f"{field} = {latex}"), attr) == value


def test_abstracts_and_titles_end_single_spaced(zotero):
    for entry in zotero.papers:
        for text in (entry.paper.title, entry.paper.abstract):
            assert text == " ".join(text.split()), text
            assert "\xa0" not in text and "{" not in text and "\\" not in text


# --- authors --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("author", "names"),
    [
        ("{Doe, Jane}", ["Jane Doe"]),
        ("{Jane Doe}", ["Jane Doe"]),
        ("{Doe, Jane and Roe, Richard}", ["Jane Doe", "Richard Roe"]),
        ("{Jane Doe and Richard Roe and others}", ["Jane Doe", "Richard Roe"]),
        ("{van der Berg, Anna}", ["Anna van der Berg"]),
        ("{Anna van der Berg}", ["Anna van der Berg"]),
        ("{Smith, Jr., John}", ["John Smith Jr."]),
        ("{{OpenAI}}", ["OpenAI"]),
        ("{{Research and Development Group}}", ["Research and Development Group"]),
        ("{White, Andrew D. and Schwaller, Philippe}", ["Andrew D. White", "Philippe Schwaller"]),
        ("{Doe,\n    Jane and\n    Roe, Richard}", ["Jane Doe", "Richard Roe"]),
    ],
)
def test_authors_become_first_last(tmp_path, author, names):
    assert _one(tmp_path, f"author = {author}").authors == names


# --- the Zotero fixture ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "attr", "value"),
    [
        ("GraphMoE", "title",
         "GraphMoE: Sparse Mixture-of-Experts for Graph Neural Networks & Molecular Property Prediction"),
        ("GraphMoE", "authors", ["Jörg Müller", "María García", "Léa François"]),
        ("GraphMoE", "year", 2021),
        ("GraphMoE", "venue", "Journal of Chemical Theory and Computation"),
        ("GraphMoE", "doi", "10.1021/acs.jctc.1c00042"),
        ("GraphMoE", "url", "https://pubs.acs.org/doi/10.1021/acs.jctc.1c00042"),
        ("GraphMoE", "arxiv", ""),
        ("GraphMoE", "kind", "bibtex"),
        ("GraphMoE", "source", "zotero.bib:3"),
        ("GraphMoE", "id", ""),
        ("Retrieval-Augmented", "title",
         "Retrieval-Augmented Generation for Scientific Question Answering: "
         "A Study of Schrödinger-Style Failure Modes"),
        ("Retrieval-Augmented", "authors", ["Kai Schröder", "Nils Østergaard", "Émilie Dupont"]),
        ("Retrieval-Augmented", "venue", "Proceedings of the 40th International Conference on Machine Learning"),
        ("Retrieval-Augmented", "source", "zotero.bib:25"),
        ("Tiny Transformers", "venue", "arXiv"),
        ("Tiny Transformers", "arxiv", "2305.12345"),
        ("Tiny Transformers", "doi", "10.48550/arXiv.2305.12345"),
        ("Tiny Transformers", "url", "http://arxiv.org/abs/2305.12345"),
        ("Tiny Transformers", "year", 2023),
        ("Tiny Transformers", "source", "zotero.bib:40"),
        ("Revisiting", "title", "Revisiting k-Nearest-Neighbour Language Models with äccented Datastores"),
        ("Revisiting", "authors", ["Anna van der Berg", "John Smith Jr.", "OpenAI"]),
        ("Revisiting", "arxiv", "2201.04242"),
        ("Revisiting", "venue", "arXiv"),
        ("Sparse Attention", "venue", "Journal of Machine Learning Research"),  # through @string
        ("Sparse Attention", "source", "zotero.bib:80"),
    ],
)
def test_zotero_fields_are_mapped(zotero, title, attr, value):
    assert getattr(_by_title(zotero, title).paper, attr) == value


def test_zotero_abstract_is_decoded_and_long_enough(zotero):
    abstract = _by_title(zotero, "GraphMoE").paper.abstract
    assert "reduces the mean absolute error by 12% over dense" in abstract
    assert abstract.endswith("such as α-amino acids and aromatic rings.")
    assert all(len(e.paper.abstract) >= 200 and len(e.paper.abstract.split()) >= 30 for e in zotero.papers)


def test_zotero_entry_without_abstract_is_reported_not_dropped(zotero):
    assert len(zotero.papers) == 5
    assert [(s.line, s.key, s.reason) for s in zotero.skipped] == [(60, "lindqvist2019notes", "no abstract")]
    assert zotero.skipped[0].path == str(DATA / "zotero.bib")


def test_zotero_pdf_attachment_is_resolved_and_missing_one_refused(zotero, caplog):
    assert _by_title(zotero, "GraphMoE").pdf == PDF
    assert _by_title(zotero, "Retrieval-Augmented").pdf is None
    assert all(e.pdf is None for e in zotero.papers if not e.paper.title.startswith("GraphMoE"))
    with caplog.at_level(logging.WARNING, logger="rag.bib"):
        read_bibtex(DATA / "zotero.bib")
    assert "zotero.bib:25: attachment files/missing.pdf not found" in caplog.text


# --- skipped entries, duplicates, malformed and foreign files --------------------------------------------------


def test_malformed_entry_is_reported_with_its_line_and_the_good_ones_read():
    read = read_bibtex(DATA / "malformed.bib")
    assert [e.paper.title for e in read.papers] == [
        "Gradient Checkpointing Revisited for Very Deep Transformers",
        "Quantised Key-Value Caches for Long-Context Inference",
    ]
    assert [e.paper.source for e in read.papers] == ["malformed.bib:1", "malformed.bib:19"]
    ((skipped),) = read.skipped
    assert (skipped.line, skipped.key) == (12, "broken2021")
    assert skipped.reason.startswith("unreadable BibTeX")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("@article{a, abstract = {" + ABSTRACT + "}}\n", [(1, "a", "no title")]),
        ("@article{a, title = {T}, abstract = {}}\n", [(1, "a", "no abstract")]),
        ("@article{a, title = {T}, abstract = {  {}  }}\n", [(1, "a", "no abstract")]),
        ("\n\n@misc{b, title = {T}}\n", [(3, "b", "no abstract")]),
        ("@article{a, title = {T}, abstract = {" + ABSTRACT + "}}\n@misc{a, title = {U}, abstract = {" + ABSTRACT
         + "}}\n", [(2, "a", "duplicate key 'a' (first used on line 1)")]),
        ("@article{a, title = {T}, abstract = {" + ABSTRACT + "}}\n\n@misc{c title = {U}}\n",
         [(3, "", "unreadable BibTeX: Expected comma after entry key, but found =")]),
        ("@article{a, title = {T}, abstract = {" + ABSTRACT + "}}\n@misc{d, title = {U}\n", [(2, "d", None)]),
        ("@article{e, title = {T}, title = {U}, abstract = {" + ABSTRACT + "}}\n",
         [(1, "e", "the same field twice: title")]),
        ("@article{f, title = {T}, author = {Doe, Jane, Jr, Extra}, abstract = {" + ABSTRACT + "}}\n",
         [(1, "f", "unreadable BibTeX: Cannot split the following name `Doe, Jane, Jr, Extra` into parts: "
           "Too many commas")]),
    ],
)
def test_entries_left_out_are_reported_with_line_key_and_reason(tmp_path, body, expected):
    read = read_bibtex(_bib(tmp_path, body))
    got = [(s.line, s.key, s.reason if expected[i][2] is not None else None) for i, s in enumerate(read.skipped)]
    assert got == expected
    assert len(read.papers) + len(read.skipped) == body.count("@")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("just some notes, no entries at all\n", "no BibTeX entries"),
        ("", "no BibTeX entries"),
        ("% only a comment\n@comment{nothing here}\n", "no BibTeX entries"),
        ((DATA / "mendeley.ris").read_text(encoding="utf-8"), "no BibTeX entries"),
    ],
)
def test_a_file_that_is_not_bibtex_is_a_corpus_error(tmp_path, content, message):
    with pytest.raises(CorpusError, match=message) as info:
        read_bibtex(_bib(tmp_path, content))
    assert info.value.line == 1


@pytest.mark.parametrize("reader", [read_bibtex, read_ris])
def test_binary_and_missing_files_are_corpus_errors(tmp_path, reader):
    with pytest.raises(CorpusError, match="binary"):
        reader(PDF)
    with pytest.raises(CorpusError, match="cannot read"):
        reader(tmp_path / "absent.bib")


# --- encodings ------------------------------------------------------------------------------------------------


def test_latin1_jabref_export_is_read_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="rag.bib"):
        read = read_bibtex(DATA / "jabref_latin1.bib")
    assert "not UTF-8" in caplog.text and "latin-1" in caplog.text
    koenig, nunez = read.papers
    assert koenig.paper.title == "Über die Stabilität verteilter Regelkreise mit Paketverlusten"
    assert koenig.paper.authors == ["Jürgen König", "Karl Åström"]
    assert koenig.paper.venue == "at – Automatisierungstechnik"
    assert "übertragen" in koenig.paper.abstract and "fünf Prozent" in koenig.paper.abstract
    assert nunez.paper.title == "Déjà Vu: Caching Intermediate Results in Iterative Dataflow Jobs"
    assert nunez.paper.authors == ["José Núñez", "Ayse Çelik"]
    assert (koenig.pdf, nunez.pdf) == (None, PDF)  # ":paper.pdf:PDF" is missing, ":files/paper.pdf:PDF" is there
    assert not read.skipped


def test_utf8_with_bom_and_no_warning(tmp_path, caplog):
    path = tmp_path / "bom.bib"
    path.write_bytes(("@article{k, title = {Ünïcode}, abstract = {" + ABSTRACT + "}}").encode("utf-8-sig"))
    with caplog.at_level(logging.WARNING, logger="rag.bib"):
        (entry,) = read_bibtex(path).papers
    assert entry.paper.title == "Ünïcode"
    assert "latin-1" not in caplog.text


# --- identifiers ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "entry_type", "arxiv"),
    [
        ("eprint = {2305.12345}\narchiveprefix = {arXiv}", "misc", "2305.12345"),
        ("eprint = {2305.12345v3}\narchivePrefix = {arXiv}", "misc", "2305.12345"),
        ("eprint = {2305.12345}\neprinttype = {arxiv}", "online", "2305.12345"),
        ("eprint = {hep-th/9901001}\narchiveprefix = {arXiv}", "misc", "hep-th/9901001"),
        ("eprint = {2305.12345}", "misc", "2305.12345"),
        ("eprint = {hal-01234567}\narchiveprefix = {HAL}", "misc", ""),
        ("eprint = {2305.12345}\narchiveprefix = {HAL}", "misc", ""),
        ("url = {https://arxiv.org/abs/2104.08821}", "misc", "2104.08821"),
        ("url = {https://arxiv.org/pdf/2104.08821v2.pdf}", "misc", "2104.08821"),
        ("url = {https://www.nature.com/articles/s41586-021-03819-2}", "article", ""),
        ("journal = {arXiv preprint arXiv:2201.04242}", "article", "2201.04242"),
        ("journal = {ArXiv preprint 2201.04242}", "article", "2201.04242"),
        ("journal = {CoRR}\nvolume = {abs/1810.04805}", "article", "1810.04805"),
        ("journal = {ArXiv}\nvolume = {abs/2004.05150}", "article", "2004.05150"),
        ("doi = {10.48550/arXiv.2106.09685}", "misc", "2106.09685"),
        ("doi = {10.1038/nature14539}", "article", ""),
    ],
)
def test_arxiv_id_is_found_wherever_an_export_puts_it(tmp_path, fields, entry_type, arxiv):
    assert _one(tmp_path, fields, entry_type).arxiv == arxiv


@pytest.mark.parametrize(
    ("fields", "attr", "value"),
    [
        ("doi = {10.1000/xyz_123}", "doi", "10.1000/xyz_123"),
        (r"doi = {10.1000/xyz\_123}", "doi", "10.1000/xyz_123"),
        ("doi = {https://doi.org/10.1000/abc}", "doi", "10.1000/abc"),
        ("doi = {doi:10.1000/abc}", "doi", "10.1000/abc"),
        ("url = {https://example.org/a%20b_c?x=1&y=2}", "url", "https://example.org/a%20b_c?x=1&y=2"),
        (r"url = {https://example.org/a\_b\%20}", "url", "https://example.org/a_b%20"),
        (r"url = {http://example.org/{\_}x$\sim$y}", "url", "http://example.org/_x~y"),
        ("year = {2021}", "year", 2021),
        ("year = 2021", "year", 2021),
        ("date = {2019-05-01}", "year", 2019),
        ("year = {in press}", "year", None),
        ("journal = {Nature}", "venue", "Nature"),
        ("journaltitle = {Nature Methods}", "venue", "Nature Methods"),
        ("booktitle = {Proceedings of NeurIPS}", "venue", "Proceedings of NeurIPS"),
        ("publisher = {Springer}", "venue", ""),  # a publisher is a venue only for preprints
        ("journal = {arXiv preprint arXiv:2201.04242}", "venue", "arXiv"),
    ],
)
def test_identifiers_years_and_venues(tmp_path, fields, attr, value):
    assert getattr(_one(tmp_path, fields), attr) == value


@pytest.mark.parametrize(
    ("entry_type", "venue"), [("misc", "arXiv"), ("unpublished", "arXiv"), ("book", ""), ("article", "")]
)
def test_publisher_is_the_venue_of_preprints_only(tmp_path, entry_type, venue):
    assert _one(tmp_path, "publisher = {arXiv}", entry_type).venue == venue


# --- file attachments -----------------------------------------------------------------------------------------


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    """An export folder with files/a.pdf, files/my_paper.pdf and a snapshot, a PDF outside it, a symlink out."""
    export = tmp_path / "export"
    (export / "files" / "sub").mkdir(parents=True)
    for name in ("files/a.pdf", "files/my_paper.pdf", "files/sub/b c.pdf"):
        (export / name).write_bytes(PDF.read_bytes())
    (export / "files" / "snap.html").write_text("<html></html>")
    (tmp_path / "outside.pdf").write_bytes(PDF.read_bytes())
    (export / "files" / "link.pdf").symlink_to(tmp_path / "outside.pdf")
    return export


@pytest.mark.parametrize(
    ("file_field", "expected"),
    [
        ("Full Text PDF:files/a.pdf:application/pdf", "files/a.pdf"),  # Zotero
        (":files/a.pdf:PDF", "files/a.pdf"),  # JabRef
        ("files/a.pdf", "files/a.pdf"),  # Better BibTeX, plain path
        ("files/sub/b c.pdf", "files/sub/b c.pdf"),
        ("Snapshot:files/snap.html:text/html;Full Text PDF:files/a.pdf:application/pdf", "files/a.pdf"),
        ("Full Text PDF:files/gone.pdf:application/pdf;Other:files/my_paper.pdf:application/pdf", "files/my_paper.pdf"),
        (r":files/my{\_}paper.pdf:pdf", "files/my_paper.pdf"),  # Mendeley escapes underscores
        ("Snapshot:files/snap.html:text/html", None),  # no PDF among the attachments
        ("Full Text PDF:files/gone.pdf:application/pdf", None),  # missing
        ("Full Text PDF:../outside.pdf:application/pdf", None),  # exists, but outside the export's tree
        ("Full Text PDF:files/../../outside.pdf:application/pdf", None),
        ("Full Text PDF:files/link.pdf:application/pdf", None),  # a symlink that leads out
        (r":C$\backslash$:/Users/me/Documents/Mendeley Desktop/x.pdf:pdf", None),  # a Windows path, not here
        ("Full Text PDF:files:application/pdf", None),  # a folder, not a file
    ],
)
def test_file_field_attachments(export_dir, file_field, expected):
    body = "@article{k, title = {T}, abstract = {" + ABSTRACT + "},\n  file = {" + file_field + "}}\n"
    (entry,) = read_bibtex(_bib(export_dir, body)).papers
    assert entry.pdf == (None if expected is None else (export_dir / expected).resolve())


@pytest.mark.parametrize("style", ["absolute", "mendeley", "file-uri", "passwd"])
def test_attachments_outside_the_export_are_refused_without_saying_whether_they_exist(export_dir, style):
    """A reference file must not read any PDF on the machine (issue 25, row 1): an absolute path, Mendeley's form
    without the leading slash and a file:// URI outside the export's folder are refused before they are looked up,
    with the same note whether or not the file exists."""
    outside = (export_dir.parent / "outside.pdf").resolve()
    value = {"absolute": f"Full Text PDF:{outside}:application/pdf", "mendeley": f":{str(outside)[1:]}:pdf",
             "file-uri": f"Full Text PDF:{outside.as_uri()}:application/pdf", "passwd": ":/etc/passwd:PDF"}[style]
    missing = value.replace("outside.pdf", "nowhere.pdf").replace("passwd", "no-such-file")
    notes = []
    for field in (value, missing):
        body = "@article{k, title = {T}, abstract = {" + ABSTRACT + "},\n  file = {" + field + "}}\n"
        (entry,) = read_bibtex(_bib(export_dir, body)).papers
        assert entry.pdf is None
        notes.append(entry.note.replace("nowhere", "outside").replace("no-such-file", "passwd"))
    assert notes[0] == notes[1] and str(export_dir.parent) not in notes[0]  # the same words whether it exists or not
    # Mendeley's form without the leading slash is a path inside the export (where it is not found): no fallback to /
    assert ("not found beside the export" if style == "mendeley" else "not in the export's folder") in notes[0]


def test_an_attachment_inside_the_export_by_absolute_path_is_used(export_dir):
    inside = (export_dir / "files" / "a.pdf").resolve()
    body = "@article{k, title = {T}, abstract = {" + ABSTRACT + "},\n  file = {Full Text PDF:" + str(inside) + ":application/pdf}}\n"
    (entry,) = read_bibtex(_bib(export_dir, body)).papers
    assert entry.pdf == inside and entry.note == ""


def test_ris_file_uri_outside_the_export_is_refused(export_dir):
    outside = (export_dir.parent / "outside.pdf").resolve()
    path = export_dir / "export.ris"
    path.write_text(f"TY  - JOUR\nID  - r1\nTI  - T\nAB  - {ABSTRACT}\nL1  - {outside.as_uri()}\nER  - \n", encoding="utf-8")
    (entry,) = read_ris(path).papers
    assert entry.pdf is None and entry.note == "r1: attachment outside.pdf is not in the export's folder; added without it"


def test_ingest_reports_a_refused_attachment_and_indexes_nothing_of_it(export_dir, tmp_path):
    """Through the ingest: the entry is added from its abstract, the outside PDF's text is not indexed, and the
    report has one line for it."""
    from rag.files import read_batch

    secret = tmp_path / "secret.pdf"
    secret.write_bytes(PDF.read_bytes())
    body = ("@article{k, title = {A Title Long Enough}, abstract = {" + ABSTRACT + "},\n  file = {Full Text PDF:"
            + str(secret) + ":application/pdf}}\n")
    batch = read_batch([_bib(export_dir, body)])
    (paper,) = batch.papers
    assert paper.body is None and not batch.failed
    assert not batch.skipped and [str(p) for p in batch.notes] == [f"{export_dir / 'export.bib'}, line 1: k: attachment secret.pdf is not "
                                               "in the export's folder; added without it"]


@pytest.mark.parametrize(
    ("value", "log"),
    [("Full Text PDF:../outside.pdf:application/pdf", "outside"), (":files/gone.pdf:PDF", "not found")],
)
def test_refused_attachments_are_logged(export_dir, caplog, value, log):
    body = "@article{k, title = {T}, abstract = {" + ABSTRACT + "},\n  file = {" + value + "}}\n"
    with caplog.at_level(logging.WARNING, logger="rag.bib"):
        read_bibtex(_bib(export_dir, body))
    assert log in caplog.text and "export.bib:1" in caplog.text


# --- RIS --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "attr", "value"),
    [
        ("Explaining", "title", "Explaining Molecular Property Predictions with Counterfactuals & Descriptors"),
        ("Explaining", "authors", ["Geemi P. Wellawatte", "Philippe Schwaller", "Andrew D. White"]),
        ("Explaining", "year", 2023),
        ("Explaining", "venue", "Journal of Chemical Theory and Computation"),
        ("Explaining", "doi", "10.1021/acs.jctc.2c01235"),
        ("Explaining", "url", "https://pubs.acs.org/doi/10.1021/acs.jctc.2c01235"),
        ("Explaining", "kind", "ris"),
        ("Explaining", "source", "mendeley.ris:1"),
        ("Chunking", "title", "Chunking Strategies for Retrieval over Long Scientific PDFs"),  # T1
        ("Chunking", "authors", ["Ingrid Ødegård", "Piotr Kowalski"]),  # A1
        ("Chunking", "year", 2024),  # Y1 2024///
        ("Chunking", "venue",
         "Proceedings of the 62nd Annual Meeting of the Association for Computational Linguistics"),
        ("Chunking", "arxiv", "2403.01234"),
        ("Chunking", "source", "mendeley.ris:24"),
    ],
)
def test_ris_fields_are_mapped(mendeley, title, attr, value):
    assert getattr(_by_title(mendeley, title).paper, attr) == value


def test_ris_abstracts_are_single_spaced_and_n2_is_read(mendeley):
    chunking = _by_title(mendeley, "Chunking").paper.abstract
    assert chunking.startswith("Retrieval over scientific papers usually starts by cutting each PDF into passages")
    assert "the cut matters more" in chunking and "  " not in chunking


def test_ris_record_without_abstract_is_reported(mendeley):
    assert [(s.line, s.key, s.reason) for s in mendeley.skipped] == [(39, "Brown2022", "no abstract")]


def test_ris_attachments(mendeley, caplog):
    assert _by_title(mendeley, "Explaining").pdf == PDF  # L1
    assert _by_title(mendeley, "Chunking").pdf is None  # FILE pointing at a missing file
    with caplog.at_level(logging.WARNING, logger="rag.bib"):
        read_ris(DATA / "mendeley.ris")
    assert "mendeley.ris:24: attachment files/missing.pdf not found" in caplog.text


def _ris(tmp_path: Path, *records: str) -> Path:
    """A .ris file of these records (each the tag lines between TY and ER)."""
    path = tmp_path / "export.ris"
    path.write_text("".join(f"TY  - JOUR\n{r.strip()}\nER  - \n\n" for r in records), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("tags", "attr", "value"),
    [
        ("TI  - Main title\nT1  - Primary", "title", "Main title"),
        ("T1  - Primary only", "title", "Primary only"),
        ("AU  - Doe, Jane\nAU  - Roe, R.", "authors", ["Jane Doe", "R. Roe"]),
        ("A1  - Doe, Jane", "authors", ["Jane Doe"]),
        ("AU  - Smith, John, Jr.", "authors", ["John Smith Jr."]),
        ("AU  - Plato", "authors", ["Plato"]),
        ("PY  - 2020", "year", 2020),
        ("Y1  - 2018/05/01/", "year", 2018),
        ("DA  - 2017/02/03", "year", 2017),
        ("JO  - Nature", "venue", "Nature"),
        ("T2  - Proceedings of X", "venue", "Proceedings of X"),
        ("JF  - Journal Full\nJO  - J. Abbr.", "venue", "Journal Full"),
        ("BT  - A Book Title", "venue", "A Book Title"),
        ("JO  - arXiv preprint arXiv:2101.00001", "arxiv", "2101.00001"),
        ("DO  - 10.1000/abc", "doi", "10.1000/abc"),
        ("DO  - https://doi.org/10.1000/abc", "doi", "10.1000/abc"),
        ("UR  - https://example.org/p", "url", "https://example.org/p"),
        ("UR  - https://arxiv.org/abs/2101.00002v2", "arxiv", "2101.00002"),
        ("UR  - file:///tmp/x.pdf\nUR  - https://example.org/p", "url", "https://example.org/p"),
    ],
)
def test_ris_tags_are_mapped(tmp_path, tags, attr, value):
    titled = tags.startswith(("TI", "T1"))
    record = f"{tags}\nAB  - {ABSTRACT}" if titled else f"TI  - A Title\nAB  - {ABSTRACT}\n{tags}"
    (entry,) = read_ris(_ris(tmp_path, record)).papers
    assert getattr(entry.paper, attr) == value


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("L1  - files/a.pdf", "files/a.pdf"),
        ("FILE  - files/a.pdf", "files/a.pdf"),
        ("L1  - files/gone.pdf\nL1  - files/my_paper.pdf", "files/my_paper.pdf"),
        ("L1  - files/gone.pdf; files/a.pdf", "files/a.pdf"),
        ("L1  - ../outside.pdf", None),
        ("L1  - files/snap.html", None),
    ],
)
def test_ris_attachments_resolved_or_refused(export_dir, tag, expected):
    path = export_dir / "export.ris"
    path.write_text(f"TY  - JOUR\nTI  - T\nAB  - {ABSTRACT}\n{tag}\nER  - \n", encoding="utf-8")
    (entry,) = read_ris(path).papers
    assert entry.pdf == (None if expected is None else (export_dir / expected).resolve())


def test_ris_file_uri_attachment(export_dir):
    uri = (export_dir / "files" / "sub" / "b c.pdf").resolve().as_uri()  # file:///…/b%20c.pdf
    path = export_dir / "export.ris"
    path.write_text(f"TY  - JOUR\nTI  - T\nAB  - {ABSTRACT}\nL1  - {uri}\nER  - \n", encoding="utf-8")
    (entry,) = read_ris(path).papers
    assert entry.pdf == (export_dir / "files" / "sub" / "b c.pdf").resolve()


def test_ris_record_without_end_tag_is_reported_and_others_read(tmp_path):
    path = tmp_path / "cut.ris"
    path.write_text(
        f"TY  - JOUR\nTI  - First\nAB  - {ABSTRACT}\nER  - \n\n"
        f"TY  - JOUR\nID  - cut1\nTI  - Cut off\nAB  - {ABSTRACT}\n",
        encoding="utf-8",
    )
    read = read_ris(path)
    assert [e.paper.title for e in read.papers] == ["First"]
    assert [(s.line, s.key, s.reason) for s in read.skipped] == [(6, "cut1", "no end of record ('ER  -')")]


def test_ris_record_without_title_is_reported(tmp_path):
    read = read_ris(_ris(tmp_path, f"AB  - {ABSTRACT}\nID  - nt"))
    assert [(s.line, s.key, s.reason) for s in read.skipped] == [(1, "nt", "no title")]


@pytest.mark.parametrize("content", ["", "not a RIS file\n", (DATA / "zotero.bib").read_text(encoding="utf-8")])
def test_a_file_that_is_not_ris_is_a_corpus_error(tmp_path, content):
    path = tmp_path / "x.ris"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError, match="no RIS records"):
        read_ris(path)


def test_latin1_ris_is_read(tmp_path, caplog):
    path = tmp_path / "old.ris"
    record = f"TY  - JOUR\nTI  - Über Straßen\nAU  - Müller, Jörg\nAB  - {ABSTRACT}\nER  - \n"
    path.write_bytes(record.encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="rag.bib"):
        (entry,) = read_ris(path).papers
    assert (entry.paper.title, entry.paper.authors) == ("Über Straßen", ["Jörg Müller"])
    assert "latin-1" in caplog.text


# --- BibTeX out -------------------------------------------------------------------------------------------------


def _paper(**kw) -> Paper:
    """A paper with an abstract and whatever else is given."""
    return Paper(**{"id": "p", "title": "A Title", "abstract": ABSTRACT, **kw})


@pytest.mark.parametrize(
    "title",
    [
        "R&D at 5% of the cost",
        "snake_case names and #hashtags",
        "Pricing in $ and € for {braces} and } unbalanced {",
        "Über Müller's Straße: déjà vu in Łódź",
        "BERT, LoRA and GPT-4o: all-caps and CamelCase",
        "O(n^2) attention ~ roughly quadratic",
        "A back\\slash and \\LaTeX written literally",
        "Dashes -- double --- and triple",
        "``Quoted'' text with 'single' quotes and ?` !`",
        "α-decay and k-NN with ∑ and →",
        "100% of {BERT} and {{x}}",
        "Tabs\tand  spaces",
    ],
)
def test_to_bibtex_round_trips_tricky_titles(tmp_path, title):
    paper = _paper(title=" ".join(title.split()), abstract=f"{ABSTRACT} It also says: {' '.join(title.split())}.")
    (entry,) = read_bibtex(_bib(tmp_path, to_bibtex([paper]))).papers
    assert entry.paper.title == paper.title
    assert entry.paper.abstract == paper.abstract


@pytest.mark.parametrize(
    "authors",
    [
        ["Jörg Müller", "Léa François"],
        ["Anna van der Berg", "Ludwig van Beethoven"],
        ["John Smith Jr.", "Martin Luther King III"],
        ["OpenAI"],
        ["Research and Development Group", "Jane Doe"],
        ["Ana O'Neil & Co"],
        ["Geemi P. Wellawatte", "Andrew D. White"],
    ],
)
def test_to_bibtex_round_trips_authors(tmp_path, authors):
    (entry,) = read_bibtex(_bib(tmp_path, to_bibtex([_paper(authors=authors)]))).papers
    assert entry.paper.authors == authors


@pytest.mark.parametrize(
    "paper",
    [
        _paper(venue="Journal of Chemical Theory & Computation", year=2023, doi="10.1021/acs.jctc.2c01235"),
        _paper(venue="arXiv", arxiv="2305.12345", year=2023, url="https://arxiv.org/abs/2305.12345"),
        _paper(arxiv="2305.12345"),
        _paper(url="https://example.org/a%20b_c?x=1&y=2#frag", doi="10.1000/xyz_123"),
        _paper(venue="Proceedings of ICML 2024", year=2024),
    ],
)
def test_to_bibtex_round_trips_metadata(tmp_path, paper):
    (entry,) = read_bibtex(_bib(tmp_path, to_bibtex([paper]))).papers
    fields = ("title", "abstract", "authors", "year", "venue", "doi", "arxiv", "url")
    assert {f: getattr(entry.paper, f) for f in fields} == {f: getattr(paper, f) for f in fields}


def test_to_bibtex_round_trips_the_fixtures(tmp_path, zotero, mendeley):
    papers = [e.paper for e in zotero.papers + mendeley.papers]
    again = read_bibtex(_bib(tmp_path, to_bibtex(papers))).papers
    fields = ("title", "abstract", "authors", "year", "venue", "doi", "arxiv", "url")
    assert [[getattr(e.paper, f) for f in fields] for e in again] == [[getattr(p, f) for f in fields] for p in papers]


def test_to_bibtex_types_fields_and_escapes():
    text = to_bibtex(
        [
            _paper(title="R&D: 5% of $x_1$ #1", authors=["Geemi P. Wellawatte"], year=2023, venue="J. Chem & Phys",
                   doi="10.1/x", arxiv="2301.00001", url="https://x.org/a"),
            _paper(title="Preprint", venue="arXiv"),
            _paper(title="Bare"),
        ]
    )
    library = bibtexparser.parse_string(text)
    assert not library.failed_blocks
    first, preprint, bare = library.entries
    assert (first.entry_type, preprint.entry_type, bare.entry_type) == ("article", "misc", "misc")
    assert [f.key for f in first.fields] == [
        "title", "author", "year", "journal", "doi", "eprint", "archivePrefix", "url", "abstract"]
    assert first["title"] == r"{R\&D:} 5\% of \$x\_1\$ \#1"
    assert first["journal"] == r"J. Chem \& Phys"
    assert (first["eprint"], first["archivePrefix"]) == ("2301.00001", "arXiv")
    assert preprint["publisher"] == "arXiv" and "journal" not in preprint
    assert [f.key for f in bare.fields] == ["title", "abstract"]


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("Jane Doe", "Jane Doe"),
        ("John Smith Jr.", "Smith, Jr., John"),  # else BibTeX takes "Jr." for the last name
        ("Martin Luther King III", "King, III, Martin Luther"),
        ("Research and Development Group", "{Research and Development Group}"),
        ("Doe, Jane", "{Doe, Jane}"),
        ("R&D Team", r"R\&D Team"),
    ],
)
def test_to_bibtex_author_names(name, written):
    assert bibtexparser.parse_string(to_bibtex([_paper(authors=[name, "X Y"])])).entries[0]["author"] == (
        f"{written} and X Y"
    )


def test_to_bibtex_protects_capitals_in_titles():
    library = bibtexparser.parse_string(to_bibtex([_paper(title="Fine-tuning BERT with LoRA on GPUs")]))
    assert library.entries[0]["title"] == "Fine-tuning {BERT} with {LoRA} on {GPUs}"


@pytest.mark.parametrize(
    ("paper", "key"),
    [
        (_paper(title="A Perspective on Explanations of Molecular Prediction Models",
                authors=["Geemi P. Wellawatte", "Philippe Schwaller"], year=2023), "wellawatte2023perspective"),
        (_paper(title="The Über-Model", authors=["Jörg Müller"], year=2021), "muller2021uber"),
        (_paper(title="On the Use of X", authors=["Anna van der Berg"], year=2020), "berg2020use"),
        (_paper(title="Dreams", authors=["Martin Luther King Jr."], year=1963), "king1963dreams"),
        (_paper(title="GPT-4 Technical Report", authors=["OpenAI"], year=2023), "openai2023gpt"),
        (_paper(title="Untitled Work"), "anonuntitled"),
        (_paper(title="The Of And", authors=["Doe"]), "doepaper"),
    ],
)
def test_cite_keys(paper, key):
    assert cite_key(paper) == key


def test_to_bibtex_keys_are_deduplicated():
    same = _paper(title="Attention Is All You Need", authors=["Ashish Vaswani"], year=2017)
    keys = [e.key for e in bibtexparser.parse_string(to_bibtex([same] * 4)).entries]
    assert keys == ["vaswani2017attention", "vaswani2017attentiona", "vaswani2017attentionb", "vaswani2017attentionc"]


def test_to_bibtex_of_nothing_is_empty():
    assert to_bibtex([]).strip() == ""
