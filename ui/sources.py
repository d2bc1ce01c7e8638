"""Sources for people: cards naming the paper (authors, year, page where known) with the cited sentence highlighted,
internals (ids, offsets, scores) behind a "details" toggle; the per-answer pieces the page script reads (the cited
sentence of each [n] for its popover, a reference list for copying) and the mobile sources drawer."""

from __future__ import annotations

from urllib.parse import quote

from rag.types import Answer, Paper, Source

from .render import anchor, cited_numbers, esc

EMPTY = ('<div class="pc-empty">Sources appear here: every passage an answer cites, with the cited sentence '
         "highlighted. Hover or tap a <span class='pc-cite'>[n]</span> marker to read it; click it to jump here.</div>")


def highlight(source: Source, answer: Answer) -> str:
    """The passage, escaped, with the evidence of the answer's sentences wrapped in <mark>."""
    out, pos = [], 0
    for a, b in answer.cited_spans(source.n):
        out.append(esc(source.text[pos:a]))
        out.append(f'<mark class="pc-hl">{esc(source.text[a:b])}</mark>')
        pos = b
    out.append(esc(source.text[pos:]))
    return "".join(out)


def byline(paper: Paper | None) -> str:
    """'Authors · year' where known ('' for the seed corpus, which has neither); the DOI is linked beside it."""
    if paper is None:
        return ""
    names = paper.authors
    who = (names[0] + " et al.") if len(names) > 2 else " and ".join(names)
    return " · ".join(x for x in (who, str(paper.year) if paper.year else "") if x)


def card(source: Source, answer: Answer, turn: int, papers: dict[str, Paper], cited: bool, prefix: str = "") -> str:
    """One source card: number, paper, byline and page, the passage with the cited sentence highlighted, internals
    behind "details", and a link back to where the answer cites it."""
    cls = "pc-src" if cited else "pc-src pc-src-uncited"
    paper = papers.get(source.paper_id)
    meta = " · ".join(x for x in (byline(paper), answer.cited_pages(source.n), source.section) if x)
    doi = paper.doi if paper is not None else ""
    link = (f'{" · " if meta else ""}<a href="https://doi.org/{quote(doi, safe="/:.;()-_")}" target="_blank" '
            f'rel="noopener noreferrer">doi:{esc(doi)}</a>') if doi else ""
    meta_html = f'<div class="pc-src-meta">{esc(meta)}{link}</div>' if meta or link else ""
    back = f'<a class="pc-back" href="#{prefix}{anchor(turn, source.n)}">↩ back to the answer</a>' if cited else ""
    return (f'<div class="{cls}" id="{prefix}{anchor(turn, source.n)}">'
            f'<div class="pc-src-head"><span class="pc-n">{source.n}</span>'
            f'<span class="pc-src-title">{esc(source.title)}</span></div>{meta_html}'
            f'<div class="pc-passage">{highlight(source, answer)}</div>'
            f'<div class="pc-src-foot">{back}<details class="pc-details"><summary>details</summary>'
            f"paper id {esc(source.paper_id)} · characters {source.start}–{source.end} · retrieval score "
            f"{source.score:.3f}</details></div></div>")


def sources_html(answer: Answer | None, turn: int, papers: dict[str, Paper]) -> str:
    """The sources panel for one answer: cited passages first, then the rest of what was retrieved. (An abstention's
    closest papers are listed once, in the answer itself.)"""
    if answer is None:
        return EMPTY
    return f'<div class="pc-src-for">Sources for: <em>{esc(answer.question)}</em></div>' + cards(answer, turn, papers)


def cards(answer: Answer, turn: int, papers: dict[str, Paper], prefix: str = "") -> str:
    """The cards of one answer, cited first; the uncited ones folded (in the drawer, an answer citing nothing
    shows them at once: the drawer is their fold)."""
    order = cited_numbers(answer)
    by_n = {s.n: s for s in answer.sources}
    parts = [card(by_n[n], answer, turn, papers, True, prefix) for n in order]
    rest = [s for s in answer.sources if s.n not in order]
    if rest:
        label = "Retrieved passages" if not order else f"Also retrieved, not cited ({len(rest)})"
        body = "".join(card(s, answer, turn, papers, False, prefix) for s in rest)
        parts.append(body if prefix and not order else
                     f'<details class="pc-rest"{" open" if not order else ""}><summary>{label}</summary>{body}'
                     "</details>")
    return "".join(parts)


def drawer(answer: Answer, turn: int, papers: dict[str, Paper]) -> str:
    """The sources folded under an answer (shown on narrow screens, where the side panel sits far below). After an
    abstention it holds the passages that were searched, so the reader can see why none answered."""
    if not answer.sources:
        return ""
    cited = cited_numbers(answer)
    label = (f"Passages searched ({len(answer.sources)})" if answer.abstained
             else f"Sources ({len(cited) or len(answer.sources)})")
    return (f'\n\n<details class="pc-drawer"><summary>{label}</summary>'
            f"{cards(answer, turn, papers, prefix='m-')}</details>")


def tips(answer: Answer, turn: int) -> str:
    """Hidden per-citation text the page script shows in a popover: '[n] Paper — the cited sentence'."""
    by_n = {s.n: s for s in answer.sources}
    # ids, not data-* attributes: the chat's HTML sanitizer keeps ids and drops data attributes.
    items = "".join(f'<span id="tip-{anchor(turn, n)}"><b>{esc(by_n[n].title)}</b><i>'
                    f"{esc(answer.cited_sentence(n))}</i></span>" for n in cited_numbers(answer))
    return f'<div class="pc-tips">{items}</div>' if items else ""


def references(answer: Answer) -> str:
    """Hidden plain-text reference list appended when a message is copied."""
    by_n = {s.n: s for s in answer.sources}
    lines = []
    for n in cited_numbers(answer):
        s = by_n[n]
        where = f", {answer.cited_pages(n)}" if s.page else ""
        lines.append(f"<span>[{n}] {esc(s.title)}{where}: “{esc(answer.cited_sentence(n))}”</span>")
    return f'<div class="pc-refs">{"".join(lines)}</div>' if lines else ""
