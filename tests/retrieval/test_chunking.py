"""Chunking: exact offsets, sizes, sentence overlap, and chunks that stay inside a section."""

from __future__ import annotations

import random

import pytest

from charter.retrieval.chunking import chunk_document, chunk_text, count_words
from charter.retrieval.documents import Document, Section, extract_html, extract_markdown


def sentences(n: int, words: int = 9, start: int = 0) -> list[str]:
    return [
        " ".join(f"w{i}x{j}" for j in range(words - 1)).capitalize() + f" end{i}."
        for i in range(start, start + n)
    ]


def assert_exact(doc: Document) -> None:
    for c in chunk_document(doc):
        assert doc.text[c.start : c.end] == c.text


def test_offsets_are_exact_over_messy_text() -> None:
    rng = random.Random(7)
    pieces = ["Word.", "e.g. this", "Dr. Who", "line\n", "\n\n", "  ", "\t", "中文字。", "? ", "x!"]
    for _ in range(50):
        text = "".join(rng.choice(pieces) + rng.choice(["", " ", "\n"]) for _ in range(300))
        for max_words in (3, 20, 200):
            doc = Document("d", "t", text, [Section(0, len(text))], "", None)
            chunks = chunk_document(doc, max_words)
            assert all(text[c.start : c.end] == c.text for c in chunks)
            assert all(c.text == c.text.strip() and c.text for c in chunks)
            assert all(c.words <= max_words for c in chunks)
            # Nothing but whitespace is lost between consecutive chunks.
            ends = [0] + [c.end for c in chunks]
            starts = [c.start for c in chunks] + [len(text)]
            assert all(not text[e:s].strip() for e, s in zip(ends, starts, strict=True) if e < s)


def test_short_text_is_one_chunk() -> None:
    (chunk,) = chunk_text("  One sentence. Another one.\n")
    assert (chunk.text, chunk.start, chunk.end, chunk.words) == (
        "One sentence. Another one.",
        2,
        28,
        4,
    )


def test_packs_whole_sentences_with_one_or_two_overlapping() -> None:
    text = " ".join(sentences(40))  # 40 sentences of 9 words: 360 words
    chunks = chunk_text(text, max_words=100)
    assert len(chunks) >= 4
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.text.endswith(".") and b.text.endswith(".")  # whole sentences
        assert b.start < a.end  # they overlap ...
        overlap = text[b.start : a.end]
        assert overlap.count(".") in (1, 2)  # ... by one or two sentences
        assert count_words(overlap) <= 25  # ... within a quarter of the size
        assert a.words <= 100 and b.words <= 100
    assert chunks[0].start == 0 and chunks[-1].end == len(text)


def test_no_overlap_when_asked() -> None:
    chunks = chunk_text(" ".join(sentences(20)), max_words=30, overlap_sentences=0)
    assert all(b.start > a.end for a, b in zip(chunks, chunks[1:], strict=False))


def test_paragraphs_are_kept_whole_when_they_fit() -> None:
    para = " ".join(sentences(3))
    text = "\n\n".join([para] * 4)  # 4 paragraphs of 27 words
    chunks = chunk_text(text, max_words=60, overlap_sentences=0)
    assert [c.text for c in chunks] == [f"{para}\n\n{para}"] * 2


def test_abbreviations_and_initials_do_not_end_sentences() -> None:
    text = "See e.g. the manual by J. R. Smith and Dr. Jones. Next sentence here."
    chunks = chunk_text(text, max_words=11, overlap_sentences=0)
    assert [c.text for c in chunks] == [
        "See e.g. the manual by J. R. Smith and Dr. Jones.",
        "Next sentence here.",
    ]


def test_a_sentence_longer_than_a_chunk_is_cut_at_words() -> None:
    text = " ".join(f"w{i}" for i in range(25))
    chunks = chunk_text(text, max_words=10, overlap_sentences=0)
    assert [c.words for c in chunks] == [10, 10, 5]
    assert chunks[1].text == " ".join(f"w{i}" for i in range(10, 20))


def test_cjk_characters_count_as_words() -> None:
    assert count_words("这是一个测试 ok then") == 8
    chunks = chunk_text("这是一个测试。" * 10, max_words=14, overlap_sentences=0)
    assert [c.text for c in chunks] == ["这是一个测试。这是一个测试。"] * 5


def test_chunks_stay_inside_sections_and_carry_their_heading() -> None:
    md = "# Title\n\n" + " ".join(sentences(3)) + "\n\n## Part two\n\n" + " ".join(sentences(3))
    title, text, sections = extract_markdown(md)
    doc = Document("d", title, text, sections, "", None)
    chunks = chunk_document(doc, max_words=200)
    assert [(c.heading, c.text.split("\n")[0]) for c in chunks] == [
        ("Title", "# Title"),
        ("Part two", "## Part two"),
    ]
    assert_exact(doc)


def test_html_chunks_are_exact_too() -> None:
    title, text, sections = extract_html(
        "<h1>A</h1><p>" + " ".join(sentences(30)) + "</p><h2>B</h2><p>tail.</p>"
    )
    doc = Document("d", title, text, sections, "", None)
    chunks = chunk_document(doc, max_words=50)
    assert {c.heading for c in chunks} == {"A", "B"}
    assert_exact(doc)


def test_pages_are_kept() -> None:
    text = "page one.\n\npage two."
    doc = Document("d", "t", text, [Section(0, 9, None, 1), Section(11, 20, None, 2)], "", None)
    assert [(c.page, c.text) for c in chunk_document(doc)] == [(1, "page one."), (2, "page two.")]


def test_max_words_must_be_positive() -> None:
    with pytest.raises(ValueError):
        chunk_text("x", max_words=0)
