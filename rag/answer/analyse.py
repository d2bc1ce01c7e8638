"""Question analysis: the question's own words, its kind, the papers it names or describes, its topic words,
and the conversation's papers carried into a follow-up only when the question's topic allows it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from rag.answer.evidence import has_term
from rag.answer.models import ABSTAIN_SENTENCE, Analysis, Kind, Request, Turn
from rag.names import mentioned_papers, paper_map
from rag.text import STOPWORDS, content_words, hyphen_parts, stem, stems, term_text, words
from rag.types import Paper

# Words that shape a question (in the languages users type) but say nothing about its topic.
QUESTION_WORDS = frozenset(
    """what which who whom whose how why when where does do did is are was were paper papers say says said
    tell describe describes main idea ideas propose proposes proposed authors author study studies work
    much many please explain summarize summarise summary give about according system systems approach method
    compare comparison differ difference differences between versus vs report reported reports key contribution
    contributions achieve achieves large big fast long small size used problem problems solve solves solved
    address addresses tackle tackles limitation limitations weakness weaknesses drawback drawbacks stand stands
    mean means acronym abbreviation name named called instead rather opposed one ones kind kinds type types
    list overview topics topic collection set cover covers covered mention mentions mentioned discuss discusses
    every each all any some paper's papers' mentions listed give gives involve involves involved need needs needed
    make makes made concern concerns concerned relate relates related deal deals handle handles regarding
    behind within without among against itself talk talks talking primarily mainly mostly making find finds form forms
    way ways thing things something anything look looks looking focus focuses focused help helps helped terms
    quick quicker cheaper compared best cool thanks great sentence sentences paragraph briefly me us ok few
    picture overall roughly since
    themselves actually exactly basically roughly overall general generally specifically particular
    faster slower larger smaller higher lower better worse bigger longer shorter more less
    goal goals aim aims purpose motivation motivate motivated contrast versus like exactly actually really
    trick tricks technique techniques component components explanation explanations reason reasons rely relies
    result results finding findings outcome outcomes
    was ist sind wie viel viele und oder warum welche welcher welches der die das ein eine es sie papier artikel
    qu que quoi quel quelle quels quelles est ce comment combien pourquoi le la les un une et ou du des article
    qué que cómo cuánto cuántos por el los las una y es artículo""".split()
)
_INSTRUCTION = re.compile(
    r"^\s*(?:(?:now|then|just|also|and|so|ok|okay)[\s,]+)*(ignore|disregard|forget|note|nb|ps|important|remember|please\s+(answer|respond|reply|be|keep|use|just)|"
    r"answer|respond|reply|say|print|output|repeat|pretend|act\s+as|you\s+(are|must|should|will)|system\s*:|"
    r"do\s+not|don'?t|never|always|translate|write|format|keep\s+it|be\s+(brief|concise|short)|system\s+override|"
    r"override|(new|updated)\s+instructions?|instructions?\s*:|from\s+now\s+on|drop|stop|only\s+(answer|reply|say)|"
    r"\(?\s*please\s+answer)", re.IGNORECASE)
_SHORTCOMING = (r"(limitations?|weakness\w*|drawbacks?|shortcomings?|downsides?|disadvantages?|fail\w*\s+cases?|"
                r"fall\w*\s+short)")
_PRIOR_WORK = r"(existing|prior|previous|current|earlier|conventional|traditional|older|other\s+(methods|systems|work))"
_SENTENCE_END = re.compile(r"(?<=[.!?:)])\s+(?=\S)")
_KINDS: tuple[tuple[Kind, re.Pattern[str]], ...] = (
    ("compare", re.compile(r"\b(compar\w*|differ|differs|differed|differences?|different\s+from|contrast\w*|versus|"
                           r"vs\.?|unterschied\w*|vergleich\w*|diferencia\w*|différen\w*)\b", re.I)),
    ("list", re.compile(r"\b(which|what|welche|quels|quelles|qué|cuáles)\s+(of\s+(the|these|those)\s+)?"
                        r"(papers?|works|studies|"
                        r"articles?|ones|systems|artikel|papiere|arbeiten|studien|artículos|trabajos|estudios|travaux|"
                        r"études)\b|\blist\s+(the|all|every)\b|"
                        # "an overview of the papers (that are) about X": the papers that qualify, not all of them
                        r"\b(papers|works|studies|articles)\s+((that|which)\s+(are|is)\s+)?(about|on|dealing\s+with|"
                        r"related\s+to|concerned\s+with)\b", re.I)),
    ("overview", re.compile(r"\b(summari[sz]e|overview|what\s+(topics|themes|areas)|the\s+(paper\s+set|collection)|"
                            r"überblick|zusammenfass\w*|themen|panoramica|riassun\w*|temi|aperçu|résum\w*|thèmes|"
                            r"resumen|resume|temas|panorama|"
                            r"these\s+papers|all\s+(the\s+)?papers|every\s+paper|each\s+paper)\b", re.I)),
    # Who wrote it, where and when it appeared: what an abstract does not carry.
    ("bibliographic", re.compile(r"\bwho\s+(wrote|authored|are\s+the\s+authors|were\s+the\s+authors)\b|"
                                 r"\b(where|when|what\s+year|which\s+year)\s+(was|were|did)\b[^?]{0,60}?\b(published|"
                                 r"appear|presented|released)\b|\b(what|which)\s+(venue|conference|journal|year)\b|\baffiliat\w*|"
                                 r"\bwer\s+hat\b|\bqui\s+a\s+écrit\b|\bquién\s+escribió\b", re.I)),
    ("expansion", re.compile(r"\b(stand\w*\s+for|acronym|abbreviat\w*|expand\w*\s+to|short\s+for)\b", re.I)),
    # A paper's own limitations; the shortcomings of existing work are the problem it addresses (a why-question).
    ("limitation", re.compile(rf"^(?!.*\b{_PRIOR_WORK}\b)(?=.*\b{_SHORTCOMING}\b)", re.I)),
    ("how_much", re.compile(r"\b(how\s+(much|many|fast|large|big|long)|by\s+how|what\s+(speed-?up|throughput|"
                            r"percentage|improvement|gain|size|fraction|share)|how\s+many|wie\s+viel\w*|combien|"
                            r"cu[aá]nt[oa]s?|speed-?up|percent\w*|faster|slower)\b", re.I)),
    ("why", re.compile(rf"\b(why|what\s+(problem|challenge|issue|bottleneck|gap)|which\s+(problem|challenge)|{_SHORTCOMING}|"
                       r"motivat\w*|warum|pourquoi|por\s+qu[eé])\b", re.I)),
    ("how", re.compile(r"\b(how\s+(does|do|did|is|are|can|could|was|were)|mechanism|wie\s+(funktioniert|macht)|"
                       r"comment|c[oó]mo)\b", re.I)),
    ("yes_no", re.compile(r"^\s*(is|are|does|do|did|can|could|was(?!\s+(ist|sind|macht|genau|bedeutet)\b)|were|has|"
                          r"have|will|ist|est-ce)\b", re.I)),
)
_ANAPHORA = re.compile(
    r"\b(its|it|they|their|them|this (paper|system|method|work|model|approach)|that (paper|system|method|work|model)|"
    r"the (paper|system|method|approach|model|framework|work|authors|same paper)|these|those)\b", re.IGNORECASE)
_LEADING = re.compile(r"^\s*(and|so|also|ok|okay|then|but)\b[\s,]*", re.IGNORECASE)
_BOTH = re.compile(r"\b(both|each|either|or|vs\.?|versus)\b", re.IGNORECASE)
_ASSERTED = re.compile(r"([\w.-]+)\s+(?:instead\s+of|rather\s+than|as\s+opposed\s+to|and\s+not|but\s+not)\b", re.I)
_CONTRAST = re.compile(r"\b(?:instead\s+of|rather\s+than|as\s+opposed\s+to|and\s+not|but\s+not|not)\s+([\w\s-]{2,40}?)"
                       r"(?=[?.,;)]|$)", re.IGNORECASE)
# "the 3D-printing dataset paper", "the policy paper on open-sourcing foundation models", "the paper about X"
# Head nouns that say what kind of work a description points at; those after the first five say something of the
# paper themselves ('the 3D-printing dataset' says more than 'the 3D-printing paper').
_DESCRIBED_HEADS = ("paper", "study", "one", "work", "article", "dataset", "system", "engine", "framework", "library",
                    "technique", "method", "approach", "algorithm", "architecture", "benchmark", "tool")
_DESCRIPTIVE_HEADS = frozenset(_DESCRIBED_HEADS[5:])
_DESCRIBED = re.compile(rf"\bthe\s+(?P<desc>(?:[\w-]+\s+){{0,5}}?)(?P<head>{'|'.join(_DESCRIBED_HEADS)})\b"
                        r"(?:\s+(?:about|on|that|which|where|for|of)\s+"
                        r"(?P<about>(?:(?!with\b|and\b|vs\b|versus\b)[\w-]+\s*){1,6}))?", re.IGNORECASE)
_COMPARE_SPLIT = re.compile(r"\s*(?:,|;|:|\band\b|\bwith\b|\bto\b|\bfrom\b|\bvs\.?|\bversus\b|\bagainst\b|\bor\b|"
                            r"\by\b|\bet\b|\bund\b|\bcon\b|\bavec\b|\bmit\b)\s*", re.I)
_GERMAN = frozenset("der die das und ist wie was nicht ein eine mit für von zu den dem des im auf sich".split())
_COMPARE_HEAD = re.compile(r"^.*?\b(compar\w*|contrast\w*|differ\w*)\b\s*(?:between\s+)?", re.IGNORECASE)
_ENGLISH = frozenset("the a an of is are what how does do did which why in on for to and with by".split())
# "What batch size did GShard use?": the thing asked for sits between the wh-word and the verb.
_HEAD = re.compile(r"\b(?:how\s+many|how\s+much|what|which)\s+((?:[\w.-]+\s+){0,5}?[\w.-]+)\s+(?:did|does|do|was|"
                   r"were|is|are|has|have|can|could)\b", re.IGNORECASE)
_GENERIC = frozenset("exact precise specific kind kinds type types sort value values".split())
Resolver = Callable[[str], "str | None"]


def asked_part(question: str) -> str:
    """The question's interrogative sentences; instructions to the assistant ('Ignore all prior rules.') dropped."""
    parts = [s.strip() for line in question.splitlines() for s in _SENTENCE_END.split(line) if s.strip()]
    kept = [p for p in parts if not _INSTRUCTION.match(p)] or parts
    return " ".join(kept)


# The words the kind cues open with: a misspelling of one ('wich papers', 'waht is', 'Which paers') changes what the
# question is taken to ask, so it is mended first, in the question's first three words only (where the cue is), one
# edit away from exactly one cue word, and never a word of the papers' vocabulary or a stopword.
CUE_WORDS = frozenset("which what when where compare papers paper explain summarize summarise describe".split())
_WORD = re.compile(r"[A-Za-z]+")
MEND_FIRST = 3


def _one_edit(a: str, b: str) -> bool:
    """Whether a becomes b by one insertion, deletion, substitution or swap of neighbouring letters."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                                  and a[diff[1]] == b[diff[0]])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def mend_cue_words(text: str, vocab: set[str]) -> str:
    """text with a misspelt cue word among its first MEND_FIRST words spelt right (its capital kept)."""
    seen = 0

    def fix(m: re.Match[str]) -> str:
        nonlocal seen
        seen += 1
        w, low = m.group(0), m.group(0).lower()
        if seen > MEND_FIRST or len(low) < 4 or low in CUE_WORDS or low in STOPWORDS or low in vocab:
            return w
        near = [c for c in CUE_WORDS if _one_edit(low, c)]
        if len(near) != 1:
            return w
        return near[0].capitalize() if w[0].isupper() else near[0]
    return _WORD.sub(fix, text)


# "What are the main results / findings of X?": the question's words, not its form, say a result sentence answers.
# What a paper is compared against: the verb frames the question (an abstract states it in its measured-result
# sentence, 'compared to vLLM'), so neither it nor the preposition is a detail the abstract must mention.
_COMPARED_AGAINST = (r"(?:compared?|benchmark(?:s|ed)?|measured|evaluated)\s+(?:itself\s+|themselves\s+)?"
                     r"(?:against|to|with)")
_RESULTS_Q = re.compile(rf"\b(results?|findings?|outcomes?|how\s+well\s+does|{_COMPARED_AGAINST})\b", re.IGNORECASE)
_FRAMING = re.compile(rf"\b{_COMPARED_AGAINST}\b", re.IGNORECASE)


def question_kind(text: str, compare: bool = False, excluding: tuple[Kind, ...] = ()) -> Kind:
    """The first kind whose cue the question carries (of those not excluded), 'what' otherwise."""
    if compare:
        return "compare"
    return next((kind for kind, cue in _KINDS if kind not in excluding and cue.search(text)), "what")


def is_english(text: str) -> bool:
    """Whether the question reads as English (enough English function words)."""
    toks = words(text)
    return bool(toks) and sum(t in _ENGLISH for t in toks) >= max(1, len(toks) // 6)


def name_words(paper_ids: list[str], by_id: Mapping[str, Paper]) -> set[str]:
    """Words and stems of the names of papers (aliases, ids, titles)."""
    out: set[str] = set()
    for pid in paper_ids:
        p = by_id.get(pid)
        for name in [*(p.aliases if p else []), pid]:  # a title's words are topic words, not names
            for w in content_words(name):
                out |= {w, stem(w), *w.split("-")}
    return out


def focus_terms(text: str, named: set[str], vocab: set[str], english: bool) -> list[str]:
    """Stems of the topic words: content words minus question words and paper names. In a non-English question a
    word the papers never use says nothing about them, so only corpus words count there."""
    out = []
    for w in content_words(term_text(text)):
        if w in QUESTION_WORDS or stem(w) in QUESTION_WORDS or w in named or stem(w) in named or \
                (len(w) < 2 and not w.isdigit()):
            continue
        if not english and w not in vocab and stem(w) not in vocab:
            continue
        if "-" in w:  # one concept: mixture-of-experts is covered where mixture and expert both are
            parts = [stem(p) for p in hyphen_parts(w) if len(p) > 1]
            out.append("-".join(parts) if len(parts) > 1 else (parts[0] if parts else stem(w)))
        else:
            out.append(stem(w))
    return list(dict.fromkeys(out))


_SYSTEM_NAME = re.compile(r"(?<![\w.-])([A-Za-z][a-z]*[A-Z0-9][\w.-]*[\w]|[A-Z]{2,}[\w-]*|[A-Z][a-z]+)(?![\w-])")


def unknown_names(text: str, vocab: set[str], english: bool) -> list[str]:
    """Names in the question that no paper mentions. A capitalised plain word counts only mid-sentence and not in
    German (which capitalises every noun)."""
    out = []
    german = sum(w in _GERMAN for w in words(text)) >= 2
    for sent in _SENTENCE_END.split(text):
        for m in _SYSTEM_NAME.finditer(sent):
            token = m.group(1).rstrip(".")
            plain = token[0].isupper() and token[1:].islower()
            before = sent[:m.start()].strip(" ¿¡\"'(")
            if plain and (german or not before or before.endswith((":", ".", "?", "!"))):
                continue
            if token.lower() in STOPWORDS:
                continue
            if not _known(token, vocab):
                out.append((m.start(), m.end(), token, sent))
    merged: list[str] = []
    for i, (start, _end, token, sent) in enumerate(out):  # "World Cup": a name of several capitalised words
        prev = out[i - 1] if i else None
        if prev and prev[3] is sent and sent[prev[1]:start] == " " and merged:
            merged[-1] += " " + token
            continue
        before = re.search(r"([A-Z][\w-]*) $", sent[:start])
        word = before.group(1) if before else ""
        merged.append(f"{word} {token}" if word and word.lower() not in STOPWORDS | QUESTION_WORDS else token)
    return list(dict.fromkeys(merged))


def unheard(description: str, vocab: set[str]) -> list[str]:
    """A description that resolved to no paper, as an unknown name when most of its words no paper uses."""
    said = [w for w in content_words(description) if w not in QUESTION_WORDS]
    absent = [w for w in said if w not in vocab and stem(w) not in vocab]
    return [description] if said and len(absent) * 2 > len(said) else []


def _known(token: str, vocab: set[str]) -> bool:
    """A name is known when the papers use it, its singular, or (for 'LLaMa-style') its capitalised part."""
    low = token.lower()
    forms = {low, low.rstrip("s"), low.replace(".", ""), stem(low)}
    if forms & vocab or all(w in vocab or w.rstrip("s") in vocab for w in words(token)):
        return True
    parts = [p for p in re.split(r"[-.]", token) if p]
    named = [p for p in parts if any(ch.isupper() or ch.isdigit() for ch in p)] or parts
    return all(p.lower() in vocab or p.lower().rstrip("s") in vocab or p.isdigit() for p in named)


def compare_targets(text: str, papers: list[Paper], resolve: Resolver) -> dict[str, str]:
    """The papers a comparison is between, each with the words that point at it: named, or described and resolved
    by paper-level retrieval."""
    named = {p: "" for p in mentioned_papers(text, papers)}
    if len(named) < 2:
        named |= {p: d for p, d in described_papers(text, resolve).items() if p and p not in named}
    if len(named) >= 2:
        return named
    body = _COMPARE_HEAD.sub("", text).rstrip("?. ")
    out = dict(named)
    for part in _COMPARE_SPLIT.split(body):
        part = part.strip()
        if len(part) < 3 or mentioned_papers(part, papers):
            continue
        pid = resolve(part)  # a part that names no paper describes one
        if pid and pid not in out:
            out[pid] = part
    return out


def _holds(paper: Paper | None, terms: list[str]) -> int:
    """How many of the terms the paper's own title and abstract use."""
    own = stems(paper.text) if paper is not None else frozenset()
    return sum(has_term(t, own) for t in terms)


def described_papers(text: str, resolve: Resolver, papers: list[Paper] | None = None) -> dict[str, str]:
    """Papers referred to by description ('the blockchain sharding one', 'the ten-thousand-model dataset'), resolved
    by paper-level retrieval; each with its description (those words identify the paper: they are not what the
    question asks about). With papers given, the question is about one paper and the rest of it helps find which,
    but only a paper whose own words hold the description ('the protein folding paper' is none of them)."""
    by_id = paper_map(papers or [])
    out: dict[str, str] = {}
    for m in _DESCRIBED.finditer(text):
        head = m["head"] if m["head"].lower() in _DESCRIPTIVE_HEADS else ""
        phrase = " ".join(f"{m['desc'] or ''} {head} {m['about'] or ''}".split())
        if len([w for w in content_words(phrase) if w not in QUESTION_WORDS]) == 0:
            continue
        pid = resolve(phrase)
        if by_id and (whole := resolve(f"{phrase}. {text}")) and whole != pid and whole in by_id:
            said = [stem(w) for w in content_words(phrase) if w not in QUESTION_WORDS]
            held = {p: _holds(by_id.get(p), said) for p in (whole, pid)}
            pid = whole if held[whole] and held[whole] >= held[pid] else pid
        if pid and pid not in out:
            out[pid] = phrase
        elif not pid:
            out.setdefault("", phrase)  # a description of no paper here ('the protein folding paper')
    return out


def asked_detail(text: str, named: set[str]) -> list[str]:
    """Stems of the asked-for thing ('what batch size did …' -> batch, size), paper names and question words out."""
    m = _HEAD.search(text)
    if not m:
        return []
    keep = QUESTION_WORDS - {"size", "used"}
    parts = [p for w in content_words(m.group(1)) for p in w.split("-") if p]
    out = [stem(w) for w in parts
           if w not in keep and stem(w) not in keep and w not in named and len(w) > 1 and not w.isdigit()]
    return [w for w in dict.fromkeys(out) if w not in _GENERIC]


def short_name(paper: Paper | None, fallback: str) -> str:
    """A paper's short name (answers, rewrites, notices): its alias spelling its id, else its first alias of one or
    two words, else its title."""
    if paper is None:
        return fallback
    short = next((a for a in paper.aliases if a.lower().replace(" ", "-") == paper.id), None)
    return short or next((a for a in paper.aliases if len(a.split()) <= 2), None) or paper.title


def topic_text(analysis: Analysis, by_id: Mapping[str, Paper]) -> str:
    """The standalone question without the names of the papers it is about ('How does Seesaw keep switching cheap?'
    -> 'How does keep switching cheap?'): what sentences of those papers are compared with, so that a sentence that
    repeats the name does not outrank the one that answers. The question itself when it asks what the paper is
    ('What is Seesaw?': the sentence that names and defines it is the answer)."""
    if not analysis.papers or (not analysis.focus and analysis.kind in ("what", "expansion", "how", "yes_no")):
        return analysis.standalone
    names = set(analysis.names)
    for pid in analysis.papers:
        paper = by_id.get(pid)
        if paper is not None:
            names |= {a for a in paper.aliases if a} | {short_name(paper, pid), paper.title}
    text = analysis.standalone
    for name in sorted(names, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(name)}(?:'s)?(?!\w)", " ", text, flags=re.IGNORECASE)
    text = re.sub(r"\s+", " ", text).strip()
    return text if content_words(text) or not analysis.focus else analysis.standalone


def carried_papers(history: list[Turn], papers: list[Paper]) -> list[str]:
    """The papers the conversation was about: the latest user turn that names some, else the latest answer's first
    paper. Papers an answer merely mentions are not what the user asked about."""
    for turn in reversed(history):
        if turn.role == "user":
            named = mentioned_papers(turn.content, papers)
            if named:
                return named[:3]
    for turn in reversed(history):
        if turn.role != "user" and not turn.content.startswith(ABSTAIN_SENTENCE):
            named = mentioned_papers(turn.content, papers)
            if named:
                return named[:1]
    return []


def rewrite(question: str, names: list[str]) -> str:
    """The follow-up with its references replaced by the carried papers' names, each name once."""
    joined = " and ".join(names)
    text = _LEADING.sub("", question)
    if _ANAPHORA.search(text):
        done = False

        def repl(m: re.Match[str]) -> str:
            nonlocal done
            if done:  # "its … it": the second reference stays a pronoun
                return m.group(0)
            done = True
            return f"{joined}'s" if m.group(0).lower() in {"its", "their"} else joined

        out = _ANAPHORA.sub(repl, text)
    else:
        out = f"{text.rstrip('?. ')} in {joined}?"
    return out[:1].upper() + out[1:]


def analyse(request: Request, papers: list[Paper], vocab: set[str], resolve: Resolver) -> Analysis:
    """Analyse a validated request (no model call: rules over the question and the papers' names)."""
    by_id = paper_map(papers)
    asked = mend_cue_words(asked_part(request.question), vocab)
    english = is_english(asked)
    kind = question_kind(asked, request.compare)
    if kind == "overview" and focus_terms(asked, set(), vocab, english):  # '… according to these papers?': its topic
        kind = question_kind(asked, excluding=("overview", "list"))
    named = [] if kind in ("list", "overview") else mentioned_papers(asked, papers)
    described: dict[str, str] = {}
    nowhere = ""
    if kind == "compare" and not request.paper_ids:
        described = compare_targets(asked, papers, resolve)
        named = list(dict.fromkeys([*named, *described]))
    elif not named and kind not in ("list", "overview"):
        described = described_papers(asked, resolve, papers)
        nowhere = described.pop("", "")
        named = list(described)
    if kind not in ("compare", "list", "overview") and len(named) >= 2 and _BOTH.search(asked):
        kind = "compare"  # "Which gives the bigger speedup, X or Y?", "what does each of X and Y do?"
    picked = len(request.paper_ids or []) >= 2  # "Compare them" with two papers picked: those are the sides
    if kind == "compare" and len(named) < 2 and not request.history and not request.compare and not picked:
        kind = question_kind(asked, excluding=("compare",))  # 'quicker than the best existing ones?'
    allowed = set(request.paper_ids or [])
    standalone, carried = asked, []
    if kind == "compare" and len(named) == 1 and request.history and not request.paper_ids:
        prior = [p for p in carried_papers(request.history, papers) if p not in named]
        if prior:  # "how does that compare with Ladder Residual?": the earlier paper is the other side
            carried = prior[:1]
            named = [*carried, *named]
    if not named and request.history and kind not in ("list", "overview"):
        prior = [p for p in carried_papers(request.history, papers) if not allowed or p in allowed]
        topic = focus_terms(asked, name_words(prior, by_id), vocab, english)
        about = set().union(*(set(stem(w) for w in content_words(by_id[p].abstract + " " + by_id[p].title))
                              for p in prior)) if prior else set()
        refers = bool(_ANAPHORA.search(asked))
        # A pronoun ('it', 'the paper') refers back explicitly; a short question without one follows on only when
        # its own topic is something those papers discuss (else it starts a new topic).
        if prior and (refers or (len(words(asked)) <= 8 and (not topic or any(t in about for t in topic)))):
            carried = prior
            standalone = rewrite(asked, [short_name(by_id[p], p) for p in prior])
    if request.paper_ids:
        named = [p for p in named if p in allowed]
        scope: list[str] | None = list(request.paper_ids)
    else:
        scope = None
    papers_asked = list(dict.fromkeys([*named, *carried]))
    if request.compare and request.paper_ids or kind == "compare" and picked and len(papers_asked) < 2:
        papers_asked = list(request.paper_ids or [])
    names = name_words(papers_asked, by_id)
    names |= {v for d in described.values() if d for w in content_words(d) for v in (w, stem(w))}
    contrast = [t for m in _CONTRAST.finditer(asked) for t in focus_terms(m.group(1), set(), vocab, english)]
    asserted = [stem(w) for m in _ASSERTED.finditer(asked) for w in content_words(m.group(1))]
    low = standalone.lower()
    spelled = [a for p in papers_asked if p in by_id for a in by_id[p].aliases if a.lower() in low]
    spelled += [d for p, d in described.items() if d and p in papers_asked and d not in spelled]
    return Analysis(asked=asked, standalone=standalone, kind=kind, papers=papers_asked, carried=carried, scope=scope,
                    names=spelled,
                    # the user's topic, not the names a rewrite added nor the verb of a comparison
                    focus=focus_terms(_FRAMING.sub(" ", asked), names, vocab, english),
                    detail=asked_detail(asked, names) if english else [],
                    unknown_names=[*unknown_names(asked, vocab, english), *unheard(nowhere, vocab)], contrast=contrast,
                    asserted=asserted, cue="result" if kind == "what" and _RESULTS_Q.search(asked) else None)
