"""Citation marks in answers: what counts as a mark, what is removed, which sentence a mark
cites, and post-hoc attribution."""

from __future__ import annotations

import pytest

from charter.retrieval.citations import (
    attribute,
    find_marks,
    format_sources,
    overlap,
    resolve,
    sentences,
)


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("Old [1].", [(1,)]),
        ("Old [1, 2].", [(1, 2)]),
        ("Old [1,2] and new [3].", [(1, 2), (3,)]),
        ("Old [1][2].", [(1,), (2,)]),
        ("Old [1-3].", [(1, 2, 3)]),
        ("Old [1–2].", [(1, 2)]),
        ("Old [Source 2].", [(2,)]),
        ("Old [sources 1 and 2].", [(1, 2)]),
        ("Old [ 4 ].", [(4,)]),
    ],
)
def test_marks_are_recognised(text: str, numbers: list[tuple[int, ...]]) -> None:
    assert [m.numbers for m in find_marks(text)] == numbers


@pytest.mark.parametrize(
    "text",
    [
        "Index arr[1] of the list.",
        "A [link](https://example.com/1) and [1](https://x.org).",
        "Code `x[1]` inline.",
        "```\nrows[2] = [3]\n```",
        "Words in brackets [see above] are not marks.",
        "Nested [[1]] is not one either.",
    ],
)
def test_non_marks_are_left_alone(text: str) -> None:
    assert find_marks(text) == []
    assert resolve(text, {1, 2, 3}).text == text


def test_invalid_marks_are_removed_with_their_space_and_listed() -> None:
    res = resolve("It opened in 1887 [1]. It is long [9]. Both [1, 9]. Then [2][7] end.", {1, 2})
    assert res.text == "It opened in 1887 [1]. It is long. Both [1]. Then [2] end."
    assert res.cited == [1, 2]
    assert res.dropped == [
        {"mark": "[9]", "n": 9},
        {"mark": "[1, 9]", "n": 9},
        {"mark": "[7]", "n": 7},
    ]


def test_marks_are_rewritten_canonically() -> None:
    res = resolve("A [Source 2]. B [1,2]. C [2-3].", {1, 2, 3})
    assert res.text == "A [2]. B [1, 2]. C [2, 3]."
    assert res.cited == [2, 1, 3]
    assert res.dropped == []


def test_a_mark_at_line_start_takes_the_space_after_it() -> None:
    assert resolve("Intro.\n[9] Next line.", {1}).text == "Intro.\nNext line."
    assert resolve("[9] First.", {1}).text == "First."


def test_no_sources_means_every_mark_goes() -> None:
    res = resolve("A [1]. B [2].", set())
    assert res.text == "A. B."
    assert [d["n"] for d in res.dropped] == [1, 2]


def test_each_mark_belongs_to_the_sentence_it_ends() -> None:
    text = "It opened in 1887 [1]. It is 40 m long. [2] It is red [1][3].\nA list item [2]"
    assert [(s.text, s.numbers) for s in sentences(text)] == [
        ("It opened in 1887.", (1,)),
        ("It is 40 m long.", (2,)),
        ("It is red.", (1, 3)),
        ("A list item", (2,)),
    ]


def test_overlap_counts_content_words() -> None:
    passage = "The Marrow Bridge opened to traffic in 1887, spanning the river Kelm."
    assert overlap("The bridge opened in 1887.", passage) == 1.0
    assert overlap("The bridge is painted blue.", passage) == pytest.approx(1 / 3)
    assert overlap("It is.", passage) == 0.0


def test_attribution_marks_only_uncited_sentences_that_repeat_one_passage() -> None:
    passages = {
        1: "The Marrow Bridge opened to traffic in 1887, spanning the river Kelm.",
        2: "Honey bees dance to show the hive where flowers are.",
    }
    text = (
        "The Marrow Bridge opened in 1887 over the Kelm. Bees dance to show where flowers "
        "are [1]. I hope this helps you today. Honey bees dance for the hive."
    )
    out, added = attribute(text, passages)
    assert out == (
        "The Marrow Bridge opened in 1887 over the Kelm [1]. Bees dance to show where flowers "
        "are [1]. I hope this helps you today. Honey bees dance for the hive [2]."
    )
    assert [a["n"] for a in added] == [1, 2]
    assert added[0]["sentence"] == "The Marrow Bridge opened in 1887 over the Kelm."
    assert added[0]["overlap"] == 1.0


def test_attribution_refuses_a_sentence_whose_numbers_differ() -> None:
    passages = {1: "The tower is 31 metres tall and was lit in 1853."}
    assert attribute("The tower is 31.5 metres tall.", passages) == (
        "The tower is 31.5 metres tall.",
        [],
    )
    assert attribute("The tower was lit in 1835 and is tall.", passages)[1] == []
    out, added = attribute("The tower is 31 metres tall.", passages)
    assert out == "The tower is 31 metres tall [1]." and added[0]["n"] == 1


def test_attribution_needs_enough_words_and_overlap() -> None:
    passages = {1: "The Marrow Bridge opened to traffic in 1887."}
    assert attribute("Bridge 1887.", passages) == ("Bridge 1887.", [])
    text = "The tower was finished in 1901 by masons from Ulm."
    assert attribute(text, passages) == (text, [])
    assert attribute(text, {}) == (text, [])


def test_format_sources_for_a_terminal() -> None:
    lines = format_sources(
        [
            {"n": 1, "title": "Guide", "doc_id": "/d/guide.pdf", "page": 3, "start": 10, "end": 90},
            {"n": 2, "title": "", "doc_id": "corpus:7", "page": None, "start": 0, "end": 5},
        ]
    )
    assert lines == [
        "[1] Guide (/d/guide.pdf, page 3, characters 10–90)",
        "[2] Untitled (corpus:7, characters 0–5)",
    ]
