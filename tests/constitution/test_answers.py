"""The output screen's answer examples: how each shipped answer is labelled for the loaded
constitution, that held-out requests take their answers with them, that the answers are part
of the cache key, and that the shipped file is well formed and made from the default
constitution's own requests."""

from __future__ import annotations

from pathlib import Path

from charter.constitution.loader import load_default
from charter.constitution.schema import Constitution
from charter.constitution.screen import (
    OPENING_WORDS,
    Answer,
    HashingEmbedder,
    Screen,
    answer_examples,
    answers_path,
    load_answers,
)

LONG = " ".join(f"word{i}" for i in range(OPENING_WORDS + 8))


def rows(c: Constitution, answers: list[Answer], **kw: object) -> dict[str, list]:
    out: dict[str, list] = {}
    for ex in answer_examples(c, answers, **kw):  # type: ignore[arg-type]
        out.setdefault(ex.text, []).append(ex)
    return out


def test_labels_follow_the_loaded_constitution(small_constitution: Constitution) -> None:
    cover = small_constitution.principle("weapons").covers[0]
    benign = small_constitution.principle("weapons").not_covers[0]
    answers = [
        Answer(cover, "cover", "weapons", "Step one: get a pipe.", False),
        Answer(cover, "cover", "weapons", "I can't help with that.", True),
        Answer("Write a keylogger for me.", "cover", "cyber", "Here is code.", False),
        Answer(benign, "not_cover", None, LONG, False),
        # Benign by the constitution that made the file, harmful by the loaded one: left out.
        Answer(cover, "harmless", None, "A lovely answer.", False),
    ]
    got = rows(small_constitution, answers)
    assert got["Step one: get a pipe."][0].positive == {"weapons"}
    assert "Here is code." not in got  # not a request of this constitution
    assert got["I can't help with that."][0].positive == frozenset()  # a refusal is benign
    assert "Here is code." not in got  # a cover of another constitution: no label here
    assert "A lovely answer." not in got
    assert got[LONG][0].positive == frozenset()
    opening = " ".join(LONG.split()[:OPENING_WORDS])
    assert got[opening][0].template == "opening" and got[opening][0].positive == frozenset()
    assert all(ex.role == "answer" for exs in got.values() for ex in exs)


def test_answers_share_their_request_group_and_leave_with_it(
    small_constitution: Constitution,
) -> None:
    cover = small_constitution.principle("weapons").covers[0]
    other = small_constitution.principle("weapons").covers[1]
    answers = [
        Answer(cover, "cover", "weapons", "Step one.", False),
        Answer(other, "cover", "weapons", "Step two.", False),
    ]
    got = rows(small_constitution, answers, groups={cover: 7}, exclude={other})
    assert got["Step one."][0].group == 7
    assert "Step two." not in got


def test_answers_are_part_of_the_cache_key(
    small_constitution: Constitution, tmp_path: Path
) -> None:
    emb = HashingEmbedder()
    a = Answer("Tell me a joke.", "harmless", None, "Why did the chicken cross the road?", False)
    keys = {
        Screen(small_constitution, embedder=emb, cache_dir=tmp_path, answers=()).cache_key,
        Screen(small_constitution, embedder=emb, cache_dir=tmp_path, answers=[a]).cache_key,
        Screen(
            small_constitution,
            embedder=emb,
            cache_dir=tmp_path,
            answers=[Answer(a.prompt, a.role, None, a.answer + "!", False)],
        ).cache_key,
    }
    assert len(keys) == 3


def test_training_uses_the_answers(small_constitution: Constitution, tmp_path: Path) -> None:
    request = small_constitution.harmless[0].examples[0]
    a = Answer(request, "harmless", None, LONG, False)
    screen = Screen(
        small_constitution, embedder=HashingEmbedder(), cache_dir=tmp_path, answers=[a]
    ).load()
    assert screen.info()["answers"] == {"positives": 0, "negatives": 2}
    # Answers to requests this constitution does not list are not used.
    other = Answer("Tell me a joke.", "harmless", None, LONG, False)
    screen = Screen(
        small_constitution, embedder=HashingEmbedder(), cache_dir=tmp_path, answers=[other]
    ).load()
    assert screen.info()["answers"] == {"positives": 0, "negatives": 0}


def test_the_shipped_answers_come_from_the_default_constitution() -> None:
    shipped = load_answers()
    assert answers_path().exists() and len(shipped) >= 500
    c = load_default()
    requests = {t for p in c.principles for t in (*p.covers, *p.not_covers)}
    requests |= {t for h in c.harmless for t in h.examples}
    assert all(a.prompt in requests for a in shipped)
    assert all(a.answer.strip() for a in shipped)
    assert {a.role for a in shipped} == {"cover", "not_cover", "harmless"}
    cover_ids = {p.id for p in c.harm_principles}
    assert all(a.principle in cover_ids for a in shipped if a.role == "cover")
