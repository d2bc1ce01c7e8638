"""The paper parsers: the seed page's quirks, JSONL, Markdown, malformed input, ids and aliases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.corpus import CorpusError, load_corpus, parse_page, read_file, read_papers
from rag.settings import CORPUS_PATH

SEED = Path(__file__).resolve().parents[2] / "shared" / "seed" / "000_5a2a3546f97cb5e1.txt"
ABSTRACT = "We propose Zorblax, a system that shards models across many devices. " * 3


# The seed page's chrome: two lines of the site's banner, and its "Subscribe" button glued to the first title.
CHROME = "Get trending papers in your email inbox once a day!\nGet trending papers in your email inbox!\nSubscribe"


def rebuilt_seed() -> str:
    """The seed page rebuilt from the committed corpus: its chrome, then a title line and an abstract line per paper
    (byte for byte the real page, checked below where ../shared is; so the parser's quirks are tested anywhere)."""
    return CHROME + "".join(f"{p.title}\n{p.abstract}\n" for p in load_corpus(CORPUS_PATH))


@pytest.fixture(scope="module")
def seed_papers(tmp_path_factory: pytest.TempPathFactory):
    """The seed page parsed by the real parser (the committed corpus must match it)."""
    page = tmp_path_factory.mktemp("seed") / SEED.name
    page.write_text(rebuilt_seed(), encoding="utf-8")
    return read_papers([page])


@pytest.mark.skipif(not SEED.exists(), reason="../shared/seed is not here (the rebuilt page stands in)")
def test_the_rebuilt_seed_is_the_real_one():
    assert rebuilt_seed() == SEED.read_text(encoding="utf-8")


def test_seed_has_21_papers_and_skips_chrome(seed_papers):
    assert len(seed_papers) == 21
    assert not any("trending papers" in p.title.lower() for p in seed_papers)


def test_subscribe_prefix_is_stripped(seed_papers):
    assert seed_papers[0].title.startswith("Datarus-R1:")


def test_committed_corpus_matches_the_parser(seed_papers):
    committed = load_corpus(CORPUS_PATH)
    assert [(p.id, p.title, p.aliases, p.abstract) for p in committed] == [
        (p.id, p.title, p.aliases, p.abstract) for p in seed_papers]


@pytest.mark.parametrize(("pid", "alias"), [
    ("seesaw", "Seesaw"), ("2bp", "2BP"), ("moeshard", "MoEShard"), ("internevo", "Buff"),
    ("hecate", "Hecate"), ("hecate", "FSSDP"), ("gshard", "GShard"), ("wise", "WISE"),
    ("s2-attention", "S2-Attention"), ("s2-attention", "DKernel"), ("ladder-residual", "Ladder Residual"),
    ("paro", "PaRO"), ("paro", "HO-Ring"), ("mergelock", "MergeLock"), ("thingi10k", "Thingi10K"),
    ("vocagnolm", "VocAgnoLM"), ("nesa", "Nesa"), ("datarus-r1", "Datarus"), ("d2d", "D2D"),
    ("universal-checkpointing", "Universal Checkpointing"),
])
def test_ids_and_aliases_are_derived(seed_papers, pid, alias):
    by_id = {p.id: p for p in seed_papers}
    assert pid in by_id, sorted(by_id)
    assert alias in by_id[pid].aliases


def test_no_generic_acronym_becomes_an_alias(seed_papers):
    aliases = {a for p in seed_papers for a in p.aliases}
    assert not aliases & {"LLM", "LLMs", "MoE", "GPU", "DNNs", "3D", "CoT", "Ladder"}


def test_ids_are_unique_and_readable(seed_papers):
    ids = [p.id for p in seed_papers]
    assert len(set(ids)) == len(ids)
    assert all(pid == pid.lower() and " " not in pid for pid in ids)


PAGE = "Get trending papers in your email inbox!\nSubscribeZorblax: Sharding\n" + ABSTRACT + "\n"


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("Title only\n", 1, "no papers"),
    ("Zorblax: Sharding\n" + ABSTRACT + "\nSecond title\n", 3, "no abstract"),
    ("Zorblax: Sharding\nshort line\n", 1, "no papers"),
    ("Zorblax: Sharding\n" + ABSTRACT + "\nQuux: Title\nshort line\nAnother: title\n" + ABSTRACT, 4, "abstract"),
    ("", 1, "no papers"),
])
def test_malformed_pages_name_the_line(text, line, fragment):
    with pytest.raises(CorpusError) as err:
        parse_page(text, "x.txt")
    assert err.value.line == line and "x.txt" in str(err.value)
    assert fragment in str(err.value)


def test_page_format_with_chrome_and_subscribe():
    [(title, abstract, line)] = parse_page(PAGE, "p.txt")
    assert (title, line) == ("Zorblax: Sharding", 2)
    assert abstract.startswith("We propose Zorblax")


def test_jsonl_and_markdown(tmp_path):
    good = tmp_path / "a.jsonl"
    good.write_text(json.dumps({"id": "zorb", "title": "Zorblax", "abstract": ABSTRACT}) + "\n")
    md = tmp_path / "b.md"
    md.write_text("# Quuxform: Fast Things\n\n" + ABSTRACT.replace("Zorblax", "Quuxform") + "\n")
    papers = read_papers([good, md])
    assert [p.id for p in papers] == ["zorb", "quuxform"]
    assert "Quuxform" in papers[1].aliases


@pytest.mark.parametrize(("content", "line", "fragment"), [
    ('{"id": "a", "title": "T", "abstract": "x"}\n{broken\n', 2, "invalid JSON"),
    ('{"id": "a", "title": "T"}\n', 1, "abstract"),
    ('["not", "an", "object"]\n', 1, "JSON object"),
    ('{"id": "Bad Id", "title": "T", "abstract": "some text"}\n', 1, "id"),
])
def test_malformed_jsonl(tmp_path, content, line, fragment):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(CorpusError) as err:
        read_file(path)
    assert err.value.line == line and fragment in str(err.value) and "bad.jsonl" in str(err.value)


def test_markdown_without_heading_and_binary_file(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("no heading here\n" + ABSTRACT)
    with pytest.raises(CorpusError, match="heading"):
        read_file(md)
    binary = tmp_path / "y.txt"
    binary.write_bytes(b"Title\n\xff\xfe\x00garbage")
    with pytest.raises(CorpusError, match="UTF-8") as err:
        read_file(binary)
    assert err.value.line == 2
