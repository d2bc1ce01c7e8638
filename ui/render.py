"""Turn rag Answers into safe display text: every piece of passage or model text is HTML-escaped first."""

from __future__ import annotations

import html
import re

from rag.answer import ABSTAIN_SENTENCE
from rag.answer.verify import flagged
from rag.text import CITATION, citation_group, citation_numbers
from rag.types import Answer, Paper

_TARGET = r"\((?:[^()\s]|\([^()]*\))*(?:\s+\"[^\"]*\")?\)?"  # a link target, with one level of nested parentheses
_IMAGE = re.compile(r"!\[[^\]]*\](" + _TARGET + r"|\[[^\]]*\])")
_LINK = re.compile(r"\[([^\]]*)\]" + _TARGET)
_REF_DEF = re.compile(r"^\s*\[[^\]]+\]:\s*\S+.*$", re.MULTILINE)
_SCHEME = re.compile(r"\b(https?|ftp|javascript|data|vbscript|file|mailto)(:)", re.IGNORECASE)
_WWW = re.compile(r"\bwww\.", re.IGNORECASE)
ABSTAIN_HEAD = "Not in these papers"


def esc(text: object) -> str:
    """HTML-escape anything (quotes included)."""
    return html.escape(str(text), quote=True)


def clean_model_text(text: str) -> str:
    """Model or passage text made safe for the chat's Markdown renderer.

    Images are dropped, links become their plain text, raw HTML is escaped, and bare URLs are defused so the
    renderer cannot turn them into links or requests.
    """
    text = _IMAGE.sub("", text)
    text = _LINK.sub(lambda m: m.group(1), text)
    text = _REF_DEF.sub("", text)
    text = esc(text)
    text = _SCHEME.sub(lambda m: m.group(1) + "&#58;", text)
    text = _WWW.sub("www&#46;", text).replace("@", "&#64;")
    return text


def anchor(turn: int, n: int) -> str:
    """The element id of source n of a turn; citation links point here (local anchors only)."""
    return f"src-{turn}-{n}"


def link_citations(text: str, turn: int, known: set[int] | None = None) -> str:
    """Replace [n] markers in already-escaped text by in-page Markdown links to the source cards.

    Markdown rather than HTML so a message copied from the chat reads as Markdown: "[[1]](#src-0-1)".
    """

    def link(n: int) -> str:
        return f"[{n}]" if known is not None and n not in known else f"[[{n}]](#{anchor(turn, n)})"

    def repl(m: re.Match[str]) -> str:
        nums = citation_group(m.group(1))
        if len(nums) == 1 and known is not None and nums[0] not in known:
            return m.group(0)
        return "".join(link(n) for n in nums)

    return CITATION.sub(repl, text)


def unsupported(answer: Answer) -> list[str]:
    """Sentences the citation check found unsupported (a verbatim quote of a passage counts as supported); the
    answer's notice counts exactly these."""
    return [s.text for s in flagged(answer)]


def _locate(sentence: str, body: str) -> tuple[int, int] | None:
    """Where a checked sentence sits in the answer text (the check drops citation markers from its copy)."""
    tokens = sentence.split()
    if not tokens:
        return None
    found = re.search(r"(?:\s|\[\d+\])*".join(re.escape(t) for t in tokens), body)
    return (found.start(), found.end()) if found else None


# A comparison row's first cell: '| **Seesaw** (High-throughput LLM Inference via Model Re-sharding) |'
_ROW_TITLE = re.compile(r"^\| \*\*([^*|]+)\*\* \(([^|]+)\) \|", re.MULTILINE)


def _row_title(m: re.Match[str]) -> str:
    """The paper's name in bold over the rest of its title in small grey type, so the table's first column reads as
    a name and its cells stay short (the CLI and the APIs keep the plain Markdown)."""
    return f'| **{m.group(1)}**<br><span class="pc-row-title">{m.group(2)}</span> |'


def answer_markdown(text: str, turn: int, answer: Answer | None = None) -> str:
    """The chat bubble for an answer (partial while streaming, final with support marks when answer is given)."""
    body = clean_model_text(text)
    if answer is not None:
        for sent in unsupported(answer):
            found = _locate(clean_model_text(sent), body)
            if found:
                a, b = found
                body = (f'{body[:a]}<span class="pc-unsup" title="Not supported by the cited passage">{body[a:b]}'
                        f'</span><sup class="pc-unsup-flag">unsupported</sup>{body[b:]}')
    known = {s.n for s in answer.sources} if answer is not None else None
    return link_citations(_ROW_TITLE.sub(_row_title, body), turn, known)


def caption(standalone: str, question: str) -> str:
    """A small caption naming the rewritten question when it differs from what was typed."""
    if not standalone or standalone.strip().lower() == question.strip().lower():
        return ""
    return (f'<span class="pc-caption">Searched for: <em>{esc(standalone)}</em> <a class="pc-reask" '
            'href="#pc-question" title="Put this question in the box to edit it and ask again">edit</a></span>\n\n')


def notice(text: str) -> str:
    """A visible notice (LLM fell back, answer not grounded …)."""
    return f'<div class="pc-notice">{esc(text)}</div>\n\n' if text else ""


def limited(answer: Answer, scope: list[str] | None, papers: dict[str, Paper]) -> str:
    """After a decline, that the search was limited to the papers the user chose, and how to widen it ('' else)."""
    named = [label(papers[p]) for p in scope or [] if p in papers]
    if not answer.abstained or not named:
        return ""
    which = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
    return (f"The search was limited to {which}: clear the paper filter below the question to search all "
            f"{len(papers)} papers.")


def abstention(answer: Answer, papers: dict[str, Paper]) -> str:
    """An abstention, styled as one, with the nearest papers listed."""
    closest = "".join(f"<li>{esc(papers[p].title)}</li>" for p in answer.closest_papers if p in papers)
    why = f'<div class="pc-why">Why: {esc(answer.notice)}</div>' if answer.notice else ""
    near = f'<div class="pc-near">Closest papers:</div><ul>{closest}</ul>' if closest else ""
    return (f'<div class="pc-abstain"><div class="pc-abstain-head">{ABSTAIN_HEAD}</div>'
            f"<div>{esc(ABSTAIN_SENTENCE)}</div>{why}{near}</div>")


def final_message(answer: Answer, turn: int, papers: dict[str, Paper]) -> str:
    """The complete chat bubble for a finished answer."""
    head = caption(answer.standalone_question, answer.question)
    if answer.abstained:
        return head + abstention(answer, papers)
    body = notice(answer.notice) + answer_markdown(answer.answer, turn, answer)
    if answer.evidence:
        body += "\n\n**Extractive evidence**\n\n" + answer_markdown(answer.evidence, turn, None)
    return head + body


def cited_numbers(answer: Answer) -> list[int]:
    """Source numbers the answer text cites, in order of first citation."""
    known = {s.n for s in answer.sources}
    found = citation_numbers(answer.answer + "\n" + answer.evidence)
    return [n for n in dict.fromkeys(found) if n in known]


def sources_html(answer: Answer | None, turn: int, papers: dict[str, Paper]) -> str:
    """The sources panel for one answer (ui.sources renders it)."""
    from .sources import sources_html as panel

    return panel(answer, turn, papers)


def export_markdown(answer: Answer) -> str:
    """One answer as a Markdown document with its references (passages quoted)."""
    lines = [f"# {answer.question}", ""]
    if answer.standalone_question and answer.standalone_question != answer.question:
        lines += [f"*Searched for: {answer.standalone_question}*", ""]
    if answer.notice:
        lines += [f"> Note: {answer.notice}", ""]
    lines += [answer.answer, ""]
    if answer.evidence:
        lines += ["## Extractive evidence", "", answer.evidence, ""]
    cited = cited_numbers(answer)
    if cited:
        lines += ["## References", ""]
        by_n = {s.n: s for s in answer.sources}
        for n in cited:
            s = by_n[n]
            quote = " ".join(s.text.split())
            page = f", {s.page_label}" if s.page else ""  # the quote is the whole passage
            lines += [f"[{n}] {s.title}{page}", "", f"> {quote}", ""]
    lines.append(f"*Answered by paperchat ({answer.answerer}).*")
    return "\n".join(lines) + "\n"


def label(paper: Paper) -> str:
    """A short name for a paper: its first short alias, else its title."""
    return next((a for a in paper.aliases if len(a.split()) <= 3), paper.title)


def ask_about(paper: Paper) -> str:
    """What a paper's Ask asks: 'What is Seesaw?'; of a paper known only by its title, what the paper is about (not
    'What is A Perspective on Explanations of Molecular Prediction Models?')."""
    name = label(paper)
    return f"What is {name}?" if name != paper.title else f"What is the paper “{paper.title}” about?"


def choice(paper: Paper) -> str:
    """How a paper is listed in pickers: its short name, then its title unless the title starts with it."""
    name = label(paper)
    return paper.title if paper.title.lower().startswith(name.lower()) else f"{name} — {paper.title}"
