"""Structure-aware chunking: sections (headings, PDF pages), then paragraphs, then sentences,
packed into chunks of about `max_words` words that overlap by a sentence or two.

A chunk never crosses a section, so its heading and page are exact, and it is always a
span of the document's text: `doc.text[chunk.start:chunk.end] == chunk.text`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from charter.retrieval.documents import Document, Section

DEFAULT_MAX_WORDS = 200
#: The overlap: at most this many trailing sentences of a chunk start the next one ...
DEFAULT_OVERLAP_SENTENCES = 2
#: ... and at most this share of max_words.
OVERLAP_SHARE = 0.25

# A "word" for sizing: a run of non-space characters, or one CJK character (those scripts
# put no spaces between words; one character is about one token).
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_LINE_BREAK = re.compile(r"\n\s*")
# A sentence ends at . ! ? (or CJK 。！？), maybe closing quotes/brackets, then space.
_SENTENCE_END = re.compile(r"(?:[.!?]+[\"'”’)\]]*\s+|[。！？]\s*)")
_ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "mr", "mrs", "ms", "dr", "prof", "fig", "figs", "eq", "eqs", "vs", "cf"}
    | {"al", "st", "jr", "sr", "ref", "refs", "vol", "pp", "approx", "dept", "inc", "ltd", "co"}
    | {"no", "nos", "ch", "sec"}
)


@dataclass(frozen=True)
class Chunk:
    """A span of a document's text, with the section it lies in."""

    start: int
    end: int
    text: str
    heading: str | None
    page: int | None
    words: int


def count_words(text: str) -> int:
    return len(_WORD.findall(text))


def chunk_document(
    doc: Document,
    max_words: int = DEFAULT_MAX_WORDS,
    overlap_sentences: int = DEFAULT_OVERLAP_SENTENCES,
) -> list[Chunk]:
    """The document's chunks, in order. Sizes are approximate: a chunk holds whole sentences
    up to `max_words` words; only a single longer sentence is cut, at word boundaries."""
    if max_words < 1:
        raise ValueError("max_words must be at least 1")
    chunks = []
    for section in doc.sections:
        units = _units(doc.text, section.start, section.end, max_words)
        for group in _pack(units, max_words, overlap_sentences):
            start, end = group[0][0], group[-1][1]
            chunks.append(
                Chunk(
                    start,
                    end,
                    doc.text[start:end],
                    section.heading,
                    section.page,
                    sum(u[2] for u in group),
                )
            )
    return chunks


def chunk_text(text: str, max_words: int = DEFAULT_MAX_WORDS, **kw: int) -> list[Chunk]:
    """Chunks of a bare string (one section, no heading)."""
    doc = Document("", "", text, [Section(0, len(text))], "", None)
    return chunk_document(doc, max_words, **kw)


Unit = tuple[int, int, int]  # (start, end, words)


def _units(text: str, start: int, end: int, max_words: int) -> list[Unit]:
    """Sentences of the span (whitespace trimmed); a sentence over max_words is cut at line
    breaks, then into runs of max_words words."""
    units: list[Unit] = []
    for p_start, p_end in _split(text, start, end, _PARAGRAPH_BREAK):
        for s_start, s_end in _sentences(text, p_start, p_end):
            words = count_words(text[s_start:s_end])
            if words <= max_words:
                units.append((s_start, s_end, words))
                continue
            for l_start, l_end in _split(text, s_start, s_end, _LINE_BREAK):
                units.extend(_word_windows(text, l_start, l_end, max_words))
    return units


def _split(text: str, start: int, end: int, sep: re.Pattern[str]) -> list[tuple[int, int]]:
    """Non-blank pieces of text[start:end] between matches of `sep`, whitespace trimmed."""
    pieces, pos = [], start
    for m in sep.finditer(text, start, end):
        pieces.append((pos, m.start()))
        pos = m.end()
    pieces.append((pos, end))
    return [t for t in (_trim(text, a, b) for a, b in pieces) if t[0] < t[1]]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    pieces, pos = [], start
    for m in _SENTENCE_END.finditer(text, start, end):
        if m.end() >= end:
            break
        if text[m.start()] == "." and _is_abbreviation(text, pos, m.start()):
            continue
        pieces.append((pos, m.end()))
        pos = m.end()
    pieces.append((pos, end))
    return [t for t in (_trim(text, a, b) for a, b in pieces) if t[0] < t[1]]


def _is_abbreviation(text: str, sentence_start: int, dot: int) -> bool:
    """Whether the word before this period is an abbreviation or an initial ("J. Smith")."""
    word_start = dot
    while word_start > sentence_start and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start:dot].lower().lstrip("(\"'")
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _word_windows(text: str, start: int, end: int, max_words: int) -> list[Unit]:
    spans = [(m.start(), m.end()) for m in _WORD.finditer(text, start, end)]
    return [
        (spans[i][0], spans[min(i + max_words, len(spans)) - 1][1], min(max_words, len(spans) - i))
        for i in range(0, len(spans), max_words)
    ]


def _pack(units: list[Unit], max_words: int, overlap_sentences: int) -> list[list[Unit]]:
    """Greedy: add units while they fit; each new chunk starts with the previous chunk's last
    sentences (at most `overlap_sentences`, at most OVERLAP_SHARE of max_words) when they
    fit beside the next unit. Every chunk holds at least one unit the previous did not."""
    groups: list[list[Unit]] = []
    current: list[Unit] = []
    size = 0
    budget = int(max_words * OVERLAP_SHARE)
    for unit in units:
        if current and size + unit[2] > max_words:
            groups.append(current)
            tail: list[Unit] = []
            for u in reversed(current[-overlap_sentences:] if overlap_sentences else []):
                if sum(t[2] for t in tail) + u[2] > budget:
                    break
                tail.insert(0, u)
            while tail and sum(t[2] for t in tail) + unit[2] > max_words:
                tail.pop(0)
            current, size = tail, sum(t[2] for t in tail)
        current.append(unit)
        size += unit[2]
    if current:
        groups.append(current)
    return groups
