"""The collection as the page shows it: a searchable card per paper (short name, title, the sentence saying what it
does, its headline figure) with Ask / Compare / Only-this-paper actions the page script turns into events."""

from __future__ import annotations

from rag.collection import Figure, PaperCard, paper_card
from rag.types import Paper

from .render import esc
from .sources import byline


def figure_html(figure: Figure | None) -> str:
    """'1.78x throughput · vs vLLM' as a small badge, or nothing."""
    if figure is None:
        return ""
    parts = [f"<b>{esc(figure.value)}</b>", esc(figure.metric) if figure.metric else ""]
    versus = f'<span class="pc-vs">vs {esc(figure.baseline)}</span>' if figure.baseline else ""
    qual = f"{esc(figure.qualifier)} " if figure.qualifier and figure.qualifier != "on average" else ""
    return f'<div class="pc-fig" title="{esc(figure.sentence)}">{qual}{" ".join(p for p in parts if p)} {versus}</div>'


def card_html(card: PaperCard, paper: Paper, with_abstract: bool) -> str:
    """One paper card with its actions."""
    by = byline(paper)
    search = " ".join([card.name, card.title, " ".join(paper.aliases), card.summary]).lower()
    abstract = (f'<details class="pc-paper"><summary>Abstract</summary><div class="pc-passage">{esc(paper.abstract)}'
                "</div></details>") if with_abstract else ""
    name = (f'<div class="pc-card-name">{esc(card.name)}</div>' if card.name != card.title else "")
    return (f'<div class="pc-card" data-id="{esc(card.paper_id)}" data-search="{esc(search)}">{name}'
            f'<div class="pc-card-title">{esc(card.title)}</div>'
            + (f'<div class="pc-src-meta">{esc(by)}</div>' if by else "")
            + f'<div class="pc-card-sum">“{esc(card.summary)}” <span class="pc-cite-abs">— abstract</span></div>'
            f"{figure_html(card.figure)}{abstract}"
            f'<div class="pc-acts"><button type="button" class="pc-act" data-act="ask" data-id="{esc(card.paper_id)}">'
            f'Ask</button><button type="button" class="pc-act" data-act="compare" data-id="{esc(card.paper_id)}">'
            f'Compare</button><button type="button" class="pc-act" data-act="scope" data-id="{esc(card.paper_id)}">'
            "Only this paper</button></div></div>")


def collection_html(papers: list[Paper], with_abstract: bool = False, intro: str = "") -> str:
    """Every paper as a card, with a search box filtering them as you type."""
    cards = "".join(card_html(paper_card(p), p, with_abstract) for p in papers)
    count = f"{len(papers)} paper{'s' if len(papers) != 1 else ''}"
    return (f'<div class="pc-collection">{intro}<input type="search" class="pc-filter" '
            f'placeholder="Search the {count} by name, title or topic…" aria-label="Search the papers">'
            f'<div class="pc-cards">{cards}</div><div class="pc-none" hidden>No paper matches.</div></div>')


def header_html(papers: list[Paper]) -> str:
    """The page header: what the app is and how many papers it holds."""
    count = f"{len(papers)} research paper{'s' if len(papers) != 1 else ''}"
    # the page script shows "Log out" when a login is in use (Gradio's /logout ends the session)
    return (f'<div id="pc-header"><h1>paperchat</h1><div class="pc-sub">Ask about {count}. Every claim '
            'is cited to the passage it comes from.</div><a id="pc-logout" href="logout" hidden>Log out</a></div>')


def landing_html(papers: list[Paper]) -> str:
    """The first view: what the collection holds, searchable, each paper one click from a question."""
    intro = ('<div class="pc-land-intro"><b>What these papers hold.</b> <span class="pc-land-more">Each card quotes '
             "what the paper does and its headline figure, from its abstract. </span><b>Ask</b> about a paper, "
             "add it to a <b>comparison</b>, or search <b>only this paper</b>.</div>")
    return collection_html(papers, intro=intro)
