"""Citations in an answer: find its `[n]` marks, remove the ones that name no source, tie each
mark to the sentence it ends, and optionally mark uncited sentences that repeat one passage.

Recognised marks: `[1]`, `[1, 2]`, `[1][2]`, `[1-3]`, `[Source 1]`; not `arr[1]`, a markdown
link `[1](...)`, or anything inside code. Kept marks are written back as `[1]` / `[1, 2]`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_SEP = r"\s*(?:,|;|–|-|and)\s*(?:sources?\s*)?"
_MARK = re.compile(
    rf"(?<![\w\[])\[\s*(?:sources?\s*)?(\d{{1,3}}(?:{_SEP}\d{{1,3}})*)\s*\](?!\()",
    re.IGNORECASE,
)
_RANGE = re.compile(r"(\d+)\s*[–-]\s*(?:sources?\s*)?(\d+)", re.IGNORECASE)
_CODE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?(?:^ {0,3}\1[^\n]*$|\Z)|`[^`\n]*`", re.S | re.M)
# A sentence ends at . ! ? (maybe closing quotes or brackets) before a space, or at a newline.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)]*[ \t]+|\n+")
_WORD = re.compile(r"\w+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?])")
_STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being
    it its this that these those there their they them he she his her we our you your i me my
    not no do does did has have had will would can could should may might must shall so than
    then also into over under about after before between during which who whom whose what when
    where why how all any each both more most other some such only own same very just""".split()  # noqa: SIM905
)


@dataclass(frozen=True)
class Mark:
    """A citation mark at `text[start:end]` naming `numbers` (in the order written)."""

    start: int
    end: int
    numbers: tuple[int, ...]
    raw: str


@dataclass
class Resolution:
    """An answer with its marks checked against the sources that exist."""

    text: str
    #: Source numbers cited, in the order first cited.
    cited: list[int] = field(default_factory=list)
    #: Marks (or numbers inside a mark) naming no source: {"mark": "[9]", "n": 9}.
    dropped: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Sentence:
    """A sentence of an answer (marks taken out) and the source numbers its marks cite."""

    text: str
    numbers: tuple[int, ...]


def _numbers(group: str) -> tuple[int, ...]:
    out: list[int] = []
    for part in re.split(r"\s*(?:,|;|and)\s*", group, flags=re.IGNORECASE):
        part = re.sub(r"(?i)sources?\s*", "", part).strip()
        r = _RANGE.fullmatch(part)
        if r:
            a, b = int(r.group(1)), int(r.group(2))
            out.extend(range(a, b + 1) if 0 <= b - a <= 20 else (a, b))
        elif part.isdigit():
            out.append(int(part))
    return tuple(out)


def _code_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _CODE.finditer(text)]


def find_marks(text: str) -> list[Mark]:
    """Every citation mark in `text`, in order (marks inside code are not citations)."""
    code = _code_spans(text)
    out = []
    for m in _MARK.finditer(text):
        if any(a <= m.start() < b for a, b in code):
            continue
        out.append(Mark(m.start(), m.end(), _numbers(m.group(1)), m.group(0)))
    return out


def canonical(numbers: Iterable[int]) -> str:
    """`[1]` or `[1, 2]`."""
    return "[" + ", ".join(str(n) for n in numbers) + "]"


def resolve(text: str, valid: Iterable[int]) -> Resolution:
    """Check every mark in `text` against the source numbers in `valid`.

    Numbers naming no source are taken out of their mark; a mark left empty is removed with
    the space before it ("It is old [9]." becomes "It is old."). Returns the cleaned text,
    the numbers cited (first-cited order) and what was dropped.
    """
    known = set(valid)
    res = Resolution(text="")
    out = ""
    last = 0
    for mark in find_marks(text):
        keep: list[int] = []
        for n in mark.numbers:
            if n not in known:
                res.dropped.append({"mark": mark.raw, "n": n})
            elif n not in keep:
                keep.append(n)
        out += text[last : mark.start]
        last = mark.end
        if keep:
            out += canonical(keep)
            res.cited.extend(n for n in keep if n not in res.cited)
            continue
        stripped = out.rstrip(" \t")
        if not stripped or stripped.endswith("\n"):
            # The mark began its line: drop the space after it instead.
            while last < len(text) and text[last] in " \t":
                last += 1
        else:
            out = stripped
    res.text = out + text[last:]
    return res


def _units(text: str) -> list[tuple[int, int, str, list[int]]]:
    """(start, end, sentence without marks, numbers cited) per sentence outside code."""
    marks = find_marks(text)
    code = _code_spans(text)
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if m.start() > start:
            spans.append((start, m.start()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    units: list[tuple[int, int, str, list[int]]] = []
    for a, b in spans:
        if any(ca <= a < cb for ca, cb in code):
            continue
        plain, numbers, pos = "", [], a
        for m in (m for m in marks if a <= m.start < b):
            plain += text[pos : m.start]
            pos = m.end
            # A mark before any word ("It is old. [1]") ends the previous sentence.
            target = units[-1][3] if units and not _WORD.search(plain) else numbers
            target.extend(n for n in m.numbers if n not in target)
        sentence = _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join((plain + text[pos:b]).split()))
        if _WORD.search(sentence):
            units.append((a, b, sentence, numbers))
    return units


def sentences(text: str) -> list[Sentence]:
    """The sentences of `text` (marks taken out) with the numbers cited at their end."""
    return [Sentence(s, tuple(n)) for _a, _b, s, n in _units(text)]


# -- lexical support -------------------------------------------------------------------------
def content_words(text: str) -> set[str]:
    """Lower-cased words of `text` without stopwords, crudely singularised."""
    out = set()
    for w in _WORD.findall(text.lower()):
        if w in _STOPWORDS or (len(w) < 2 and not w.isdigit()):
            continue
        if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.add(w)
    return out


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def numbers_agree(sentence: str, passage: str) -> bool:
    """True when every number in the sentence (1887, 31.5, 1,400) is also in the passage:
    word overlap cannot tell "31 metres" from "31.5 metres", this can."""
    found = {n.replace(",", "") for n in _NUMBER.findall(passage)}
    return all(n.replace(",", "") in found for n in _NUMBER.findall(sentence))


def overlap(sentence: str, passage: str) -> float:
    """Share of the sentence's content words that occur in the passage (0 when it has none)."""
    words = content_words(sentence)
    if not words:
        return 0.0
    return len(words & content_words(passage)) / len(words)


def attribute(
    text: str, passages: dict[int, str], *, min_overlap: float = 0.8, min_words: int = 4
) -> tuple[str, list[dict[str, Any]]]:
    """Post-hoc attribution: each sentence without a mark whose content words mostly
    (`min_overlap`) occur in one passage, and whose numbers all occur in it, gets that
    passage's mark before its full stop.

    Sentences with fewer than `min_words` content words are left alone (too little to tell).
    At 0.6 a third of the marks SmolLM2 would get went on sentences that reuse a passage's
    words to say something else ("closed on Mondays and on weekends"); 0.8 keeps most of
    the faithful ones (benchmarks/citation_precision.py).
    Ties go to the lower number (the better-ranked passage). Returns the new text and
    {"n", "sentence", "overlap"} for each mark added.
    """
    if not passages:
        return text, []
    words = {n: content_words(p) for n, p in passages.items()}
    inserts: list[tuple[int, str]] = []
    added: list[dict[str, Any]] = []
    for a, b, sentence, numbers in _units(text):
        sw = content_words(sentence)
        if numbers or len(sw) < min_words:
            continue
        best_n, best = None, 0.0
        for n in sorted(words):
            score = len(sw & words[n]) / len(sw)
            if score > best and numbers_agree(sentence, passages[n]):
                best_n, best = n, score
        if best_n is None or best < min_overlap:
            continue
        end = a + len(text[a:b].rstrip())
        while end > a and text[end - 1] in ".!?\"'”’)":
            end -= 1
        inserts.append((end, f" {canonical([best_n])}"))
        added.append({"n": best_n, "sentence": sentence, "overlap": round(best, 3)})
    for pos, mark in reversed(inserts):
        text = text[:pos] + mark + text[pos:]
    return text, added


# -- showing them ----------------------------------------------------------------------------
def where(citation: dict[str, Any]) -> str:
    """`/docs/a.pdf, page 3, characters 120–560` for a citation (or source) entry."""
    parts = [str(citation.get("doc_id") or citation.get("origin") or "")]
    if citation.get("page"):
        parts.append(f"page {citation['page']}")
    if citation.get("start") is not None and citation.get("end") is not None:
        parts.append(f"characters {citation['start']}–{citation['end']}")
    return ", ".join(p for p in parts if p)


def format_sources(citations: list[dict[str, Any]]) -> list[str]:
    """One line per cited source, for a terminal: `[1] Title (path, page 3, ...)`."""
    return [f"[{c['n']}] {c.get('title') or 'Untitled'} ({where(c)})" for c in citations]
