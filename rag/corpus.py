"""Reading papers: the two-line page format, JSONL and Markdown, with ids and aliases derived by code."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from rag.text import TITLE_STOPWORDS
from rag.types import Paper

MAX_TITLE_CHARS = 300
MIN_ABSTRACT_CHARS = 80
# A "name-like" token: a word with internal capitals or digits (MoEShard, 2BP, S2-Attention, HO-Ring).
_NAME_TOKEN = re.compile(r"(?<![\w-])([A-Za-z0-9]+(?:-[A-Za-z0-9]+)*)(?![\w-])")
_PHRASE = r"([A-Z0-9][\w-]*(?:\s+[A-Z][\w-]*)*)"
_INTRO = re.compile(
    r"\b(?:[Ww]e\s+(?:propose|present|introduce|design|build|develop|call|name)|introduces|proposes|called|named|"
    r"dubbed)\s+(?:a\s+|an\s+|the\s+)?" + _PHRASE
)
_SUBJECT_INTRO = re.compile(r"(?:^|[.]\s+)([A-Z][\w-]+)\s+introduces\b")
_ACRONYM = re.compile(r"\(([A-Za-z0-9-]*[A-Z][A-Za-z0-9-]*)\)")
_CHROME = re.compile(r"^Subscribe(?=[A-Z0-9])")
MAX_TITLE_NAME_WORDS = 3

class CorpusError(ValueError):
    """A paper file that cannot be read, with the file and line to fix."""

    def __init__(self, path: str | Path, line: int, message: str) -> None:
        self.path, self.line, self.reason = str(path), line, message
        super().__init__(f"{path}, line {line}: {message}" if line else f"{path}: {message}")


def slugify(text: str, max_words: int = 3) -> str:
    """Lower-case, hyphen-joined slug of the first content words of text."""
    words = [w for w in re.split(r"[^a-z0-9-]+", text.lower().replace("'", "")) if w.strip("-")]
    content = [w.strip("-") for w in words if w not in TITLE_STOPWORDS]
    return "-".join(content[:max_words]) or "paper"


def _is_name(token: str) -> bool:
    """True for a CamelCase or digit-bearing system name (MoEShard, S2-Attention), not a plain acronym."""
    if len(token) < 2 or not any(c.isupper() for c in token):
        return False
    if re.fullmatch(r"[A-Z0-9]+s?", token):  # LLM, GPU, DNNs, 3D: acronyms, not names
        return False
    return any(c.isupper() for c in token[1:]) or any(c.isdigit() for c in token)


def _title_name(title: str) -> str | None:
    """The system name before a title's colon ("Seesaw: …"), if it is short enough to be one."""
    head, sep, _ = title.partition(":")
    if sep and 1 <= len(head.split()) <= MAX_TITLE_NAME_WORDS:
        return head.strip()
    return None


def _common_noun(before: str, acronym: str) -> bool:
    """True when an acronym abbreviates the lower-case words before it ('deep learning (DL)', 'Explainable
    artificial intelligence (XAI)' at a sentence start): a common noun, not the name of one paper's system."""
    letters = [c for c in acronym if c.isalpha()]
    found = re.findall(r"[\w-]+", before)[-len(letters):] if letters else []
    if len(found) != len(letters) or any(w[0].isupper() for w in found[1:]):
        return False
    initials = "".join(w[0] for w in found).lower()
    return initials == "".join(letters).lower() or initials[1:] == "".join(letters[1:]).lower() and len(letters) > 2


def _introduced(abstract: str) -> list[str]:
    """Names the abstract introduces: 'we propose X', 'X introduces', acronyms defined and reused."""
    found = [m.group(1) for m in _INTRO.finditer(abstract)]
    found += [m.group(1) for m in _SUBJECT_INTRO.finditer(abstract)]
    for m in _ACRONYM.finditer(abstract):
        acronym = m.group(1)
        # "(S2) Attention" is how a paper spells "S2-Attention"; keep the joined form when the text uses it.
        follow = re.match(r"\s+([A-Z][a-z]+)", abstract[m.end():])
        if follow and f"{acronym}-{follow.group(1)}" in abstract:
            found.append(f"{acronym}-{follow.group(1)}")
        plural = re.fullmatch(r"[A-Z]+s", acronym)  # "(DNNs)" abbreviates a common noun
        if not plural and not _common_noun(abstract[: m.start()], acronym) and len(re.findall(rf"(?<![\w-]){re.escape(acronym)}(?![\w-])", abstract)) >= 2:
            found.append(acronym)
    return [f.strip("-.,") for f in found if any(c.isupper() for c in f)]


def derive_aliases(papers: list[tuple[str, str]]) -> list[list[str]]:
    """Aliases per (title, abstract): the title's name, introduced names and repeated CamelCase names."""
    texts = [f"{t} {a}".lower() for t, a in papers]
    result: list[list[str]] = []
    for i, (title, abstract) in enumerate(papers):
        counts = Counter(m.group(1) for m in _NAME_TOKEN.finditer(abstract))
        candidates = [n for n in [_title_name(title)] if n] + _introduced(abstract)
        # "Datarus-R1" is plain "Datarus" in its abstract: drop a version suffix when the text does too.
        heads = [re.sub(r"(-[A-Za-z]*\d[\w]*)+$", "", c) for c in candidates]
        candidates += [h for h, c in zip(heads, candidates, strict=True) if h != c and counts[h] >= 2]
        candidates += [tok for tok, c in counts.most_common() if c >= 2 and _is_name(tok)]
        aliases: list[str] = []
        for cand in candidates:
            key = cand.lower()
            if key in {a.lower() for a in aliases} or key in TITLE_STOPWORDS:
                continue
            pattern = re.compile(rf"(?<![\w-]){re.escape(key)}(?![\w-])")
            if any(pattern.search(t) for j, t in enumerate(texts) if j != i):
                continue  # a name other papers use too cannot identify this one
            aliases.append(cand)
        result.append(aliases)
    return result


def derive_id(title: str, abstract: str, aliases: list[str], taken: set[str]) -> str:
    """A stable readable id: a one-word title name, else the abstract's most used name, else a title slug."""
    name = _title_name(title)
    if name and len(name.split()) == 1:
        base = slugify(name, max_words=1)
    else:
        usage = {a: len(re.findall(rf"(?<![\w-]){re.escape(a)}", abstract)) for a in aliases if a != name}
        best = max(usage, key=lambda a: (usage[a], -aliases.index(a)), default=None)
        if best and len(best.split()) == 1:
            base = slugify(best, max_words=1)
        elif name:
            base = slugify(name)
        else:
            base = slugify(title)
    pid, n = base, 2
    while pid in taken:
        pid, n = f"{base}-{n}", n + 1
    return pid


def _clean_title(line: str) -> str:
    """Drop page chrome glued to a title, such as a 'Subscribe' button label."""
    return _CHROME.sub("", line.strip())


def parse_page(text: str, path: str | Path = "<page>") -> list[tuple[str, str, int]]:
    """Parse the two-line page format into (title, abstract, line) triples; chrome lines are skipped."""
    lines = [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), start=1) if ln.strip()]
    if not any(_looks_like_abstract(ln) for _, ln in lines):
        raise CorpusError(path, 1, "no papers found (expected a title line followed by an abstract line)")
    # Leading lines not followed by an abstract-length line are page chrome ("Get trending papers …").
    start = 0
    while start < len(lines) - 1 and not _looks_like_abstract(lines[start + 1][1]):
        start += 1
    body = lines[start:]
    if not body:
        raise CorpusError(path, 1, "no papers found (expected a title line followed by an abstract line)")
    pairs: list[tuple[str, str, int]] = []
    for i in range(0, len(body), 2):
        n, title = body[i]
        if i + 1 >= len(body):
            raise CorpusError(path, n, f"title {title[:60]!r} has no abstract line after it")
        an, abstract = body[i + 1]
        if len(title) > MAX_TITLE_CHARS or _looks_like_abstract(title) and not _looks_like_abstract(abstract):
            raise CorpusError(path, n, "expected a title line but found an abstract-length line")
        if not _looks_like_abstract(abstract):
            raise CorpusError(path, an, f"expected the abstract of {title[:60]!r} but found a short line")
        pairs.append((_clean_title(title), abstract, n))
    return pairs


def _looks_like_abstract(line: str) -> bool:
    """Abstract lines are long prose; titles and chrome are short."""
    return len(line) >= MIN_ABSTRACT_CHARS and len(line.split()) >= 12


def parse_jsonl(text: str, path: str | Path = "<jsonl>") -> list[Paper]:
    """Parse JSONL lines of {id, title, abstract[, aliases]}."""
    papers: list[Paper] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(path, n, f"invalid JSON ({exc.msg})") from None
        except RecursionError:  # json recurses once per nesting level: '[[[[…' deep enough exhausts the stack
            raise CorpusError(path, n, "invalid JSON (nested too deeply; expected one flat object per line)") from None
        if not isinstance(row, dict):
            raise CorpusError(path, n, "each line must be a JSON object")
        missing = [k for k in ("title", "abstract") if not str(row.get(k) or "").strip()]
        if missing:
            raise CorpusError(path, n, f"missing field(s): {', '.join(missing)}")
        pid = str(row.get("id") or "").strip()
        if pid and not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", pid):
            raise CorpusError(path, n, f"id {pid!r} must be lower-case letters, digits, '.', '_' or '-'")
        aliases = row.get("aliases") or []
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise CorpusError(path, n, "aliases must be a list of strings")
        papers.append(Paper(id=pid, title=str(row["title"]).strip(), abstract=str(row["abstract"]).strip(),
                            aliases=aliases, source=f"{Path(path).name}:{n}"))
    return papers


def parse_markdown(text: str, path: str | Path = "<markdown>") -> Paper:
    """Parse a Markdown file: a '# Title' heading, then the abstract as the body."""
    lines = text.splitlines()
    for n, line in enumerate(lines, start=1):
        if line.strip():
            if not line.startswith("# "):
                raise CorpusError(path, n, "a Markdown paper must start with a '# Title' heading")
            title = line[2:].strip()
            body = " ".join(ln.strip() for ln in lines[n:] if ln.strip() and not ln.startswith("#"))
            if len(body) < 20:
                raise CorpusError(path, n, f"paper {title[:60]!r} has no abstract text below its heading")
            return Paper(id="", title=title, abstract=re.sub(r"\s+", " ", body), source=Path(path).name)
    raise CorpusError(path, 1, "empty file")


def read_file(path: Path) -> list[Paper]:
    """Read one paper file by its kind: .jsonl, .md, or a two-line page (anything else)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise CorpusError(path, line, "not UTF-8 text") from None
    except OSError as exc:
        raise CorpusError(path, 0, f"cannot read file ({exc.strerror})") from None
    if path.suffix == ".jsonl":
        return parse_jsonl(text, path)
    if path.suffix in {".md", ".markdown"}:
        return [parse_markdown(text, path)]
    return [Paper(id="", title=t, abstract=a, source=f"{path.name}:{n}") for t, a, n in parse_page(text, path)]


def finalize(papers: list[Paper], existing: Iterable[Paper] = ()) -> list[Paper]:
    """Fill in missing aliases and ids, derived from all papers so aliases stay distinctive."""
    existing = list(existing)
    # A paper being re-ingested must not compete with its own indexed copy for its names.
    new_titles, new_ids = {p.title.lower() for p in papers}, {p.id for p in papers if p.id}
    others = [p for p in existing if p.title.lower() not in new_titles and p.id not in new_ids]
    derived = derive_aliases([(p.title, p.abstract) for p in others + papers])[len(others):]
    taken = {p.id for p in existing if p.id} | {p.id for p in papers if p.id}
    by_title = {p.title.lower(): p.id for p in existing}
    out: list[Paper] = []
    for paper, aliases in zip(papers, derived, strict=True):
        aliases = paper.aliases or aliases
        pid = paper.id or by_title.get(paper.title.lower()) or derive_id(paper.title, paper.abstract, aliases, taken)
        taken.add(pid)
        out.append(paper.model_copy(update={"id": pid, "aliases": aliases}))
    return out


def source_location(paper: Paper) -> tuple[str, int]:
    """(file, line) a paper was read from, from its 'name:line' source (line 0 when unknown)."""
    where, _, line = paper.source.rpartition(":")
    if line.isdigit():
        return where or "<input>", int(line)
    return paper.source or "<input>", 0


def check_abstract_sizes(papers: Iterable[Paper], min_chars: int, max_chars: int) -> None:
    """Refuse the first abstract shorter than min_chars or longer than max_chars, naming its file and line."""
    for paper in papers:
        size = len(paper.abstract)
        if min_chars <= size <= max_chars:
            continue
        where, line = source_location(paper)
        if size < min_chars:
            raise CorpusError(where, line, f"the abstract of {paper.title[:60]!r} is {size:,} character(s) long, "
                                           f"shorter than the minimum of {min_chars:,} (RAG_MIN_ABSTRACT_CHARS)")
        raise CorpusError(where, line, f"the abstract of {paper.title[:60]!r} is {size:,} characters long, longer "
                                       f"than the maximum of {max_chars:,} (RAG_MAX_ABSTRACT_CHARS); split it into "
                                       f"several papers or raise the limit")


def read_papers(paths: Iterable[Path], existing: Iterable[Paper] = (),
                abstract_chars: tuple[int, int] | None = None) -> list[Paper]:
    """Read every file (all must parse) and return finalized papers; raises CorpusError on the first bad one.

    With abstract_chars=(min, max), an abstract outside those sizes is refused before anything else is derived.
    """
    papers: list[Paper] = []
    for path in paths:
        found = read_file(Path(path))
        if abstract_chars:
            check_abstract_sizes(found, *abstract_chars)
        papers.extend(found)
    return finalize(papers, existing)


def load_corpus(path: Path) -> list[Paper]:
    """Load the committed corpus JSONL (ids and aliases already present)."""
    key = origin_of(path)
    return [p.model_copy(update={"origin": key}) for p in parse_jsonl(path.read_text(encoding="utf-8"), path)]


def origin_of(path: Path) -> str:
    """The private key of the file a paper is read from: its resolved path, hashed (a record never shows where the
    server keeps its files, yet tells whether an update comes from the file the paper came from)."""
    return hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:16]


def write_corpus(papers: list[Paper], path: Path) -> None:
    """Write papers as human-readable JSONL."""
    with path.open("w", encoding="utf-8") as fh:
        for p in papers:
            fh.write(json.dumps({"id": p.id, "title": p.title, "aliases": p.aliases, "abstract": p.abstract},
                                ensure_ascii=False) + "\n")
