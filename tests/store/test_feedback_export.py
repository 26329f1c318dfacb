"""Human feedback in the store and its export as preference pairs (TRL's DPO format), through
the library and through `charter feedback export | list` (in-process, one-line errors)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from charter.cli import main
from charter.config import load_settings
from charter.store import Store
from charter.store.feedback import ExportSummary, export_pairs

QUESTION = "What is the capital of France?"
LONG = "Paris is the capital of France, a country in western Europe with a long history."


@pytest.fixture
def store(_isolated_home: Path) -> Iterator[Store]:
    """The store the CLI reads: CHARTER_HOME/charter.db of this test's home."""
    s = Store(load_settings().db_path)
    yield s
    s.close()


def converse(store: Store, *turns: tuple[str, str], system: str | None = None) -> list[str]:
    """A stored conversation of (question, answer) turns; returns the answers' ids."""
    conv = store.create_conversation()
    if system:
        store.add_messages(conv["id"], [{"role": "system", "content": system}])
    answers = []
    for question, answer in turns:
        ids = store.add_messages(
            conv["id"],
            [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
        )
        answers.append(ids[-1])
    return answers


def label(store: Store, message_id: str, reviewer: str, rating: str, better: str | None = None):
    return store.add_feedback(message_id, reviewer=reviewer, rating=rating, better=better)


def export(store: Store, **kw: object) -> tuple[list[dict], ExportSummary]:
    summary = ExportSummary()
    pairs = list(export_pairs(store, summary=summary, **kw))
    # What the CLI writes, one JSON a line, must survive the trip.
    assert [json.loads(json.dumps(p)) for p in pairs] == pairs
    return pairs, summary


# --- the library -------------------------------------------------------------------------------


def test_better_answer_gives_a_pair_in_dpo_format(store: Store) -> None:
    first, _ = converse(store, (QUESTION, LONG), ("And Italy?", "Rome."), system="Be brief.")
    label(store, first, "alice", "down", better="Paris.")
    pairs, summary = export(store)
    assert len(pairs) == 1
    pair = pairs[0]
    assert pair.pop("pair_id").startswith(f"{first}:")
    assert pair == {
        "prompt": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": QUESTION},
        ],
        "chosen": [{"role": "assistant", "content": "Paris."}],
        "rejected": [{"role": "assistant", "content": LONG}],
        "source": "human",
        "kind": "better_answer",
        "message_id": first,
        "chosen_message_id": None,
        "reviewers": ["alice"],
        "agreement": 1.0,
    }
    assert (summary.messages, summary.labels, summary.pairs, summary.better_pairs) == (1, 1, 1, 1)
    assert summary.disagreements == [] and summary.held_back == 0


def test_prompt_is_the_conversation_before_the_answer(store: Store) -> None:
    conv = store.create_conversation()
    store.add_messages(
        conv["id"],
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Tell me a story"},
            # An answer stopped before its first word: the pipeline leaves it out too.
            {"role": "assistant", "content": "", "status": "incomplete"},
            {"role": "user", "content": "A short one"},
        ],
    )
    answer = store.add_messages(conv["id"], [{"role": "assistant", "content": "Once, a cat."}])[0]
    store.add_messages(conv["id"], [{"role": "user", "content": "After the answer"}])
    label(store, answer, "alice", "up", better="Once upon a time, a cat slept.")
    (pair,), _ = export(store)
    assert pair["prompt"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Tell me a story"},
        {"role": "user", "content": "A short one"},
    ]
    assert pair["rejected"][0]["content"] == "Once, a cat."


def test_down_without_a_better_answer_gives_no_pair(store: Store) -> None:
    (answer,) = converse(store, (QUESTION, LONG))
    label(store, answer, "alice", "down")
    label(store, answer, "bob", "down")
    pairs, summary = export(store, min_agreement=0.0)
    assert pairs == []
    assert summary.unpaired_downs == 1
    assert any("down-rated answer(s) gave no pair" in line for line in summary.lines())


def test_up_rated_answer_to_the_same_prompt_is_chosen_over_a_down_rated_one(
    store: Store,
) -> None:
    (good,) = converse(store, (QUESTION, "Paris."))
    (bad,) = converse(store, (QUESTION, "Lyon, I think."))
    (other,) = converse(store, ("What is the capital of Spain?", "Madrid."))
    label(store, good, "alice", "up")
    label(store, bad, "bob", "down")
    label(store, other, "carol", "up")
    pairs, summary = export(store)
    assert len(pairs) == 1
    pair = pairs[0]
    assert pair["kind"] == "ranked"
    assert pair["prompt"] == [{"role": "user", "content": QUESTION}]
    assert pair["chosen"] == [{"role": "assistant", "content": "Paris."}]
    assert pair["rejected"] == [{"role": "assistant", "content": "Lyon, I think."}]
    assert (pair["message_id"], pair["chosen_message_id"]) == (bad, good)
    assert pair["reviewers"] == ["alice", "bob"] and pair["agreement"] == 1.0
    assert (summary.ranked_pairs, summary.unpaired_downs) == (1, 0)


def test_disagreement_is_kept_and_held_back_unless_asked_for(store: Store) -> None:
    (answer,) = converse(store, (QUESTION, LONG))
    label(store, answer, "alice", "down", better="Paris.")
    label(store, answer, "bob", "up")

    pairs, summary = export(store)
    assert pairs == []
    assert summary.held_back == 1 and summary.disagreements == [answer]
    assert any("held back" in line for line in summary.lines())
    assert {lb["reviewer"]: lb["rating"] for lb in store.list_feedback(answer)} == {
        "alice": "down",
        "bob": "up",
    }

    pairs, summary = export(store, min_agreement=0.5)
    assert [(p["chosen"][0]["content"], p["agreement"]) for p in pairs] == [("Paris.", 0.5)]
    assert pairs[0]["reviewers"] == ["alice", "bob"]
    assert summary.held_back == 0 and summary.disagreements == [answer]
    assert export(store, min_agreement=0.6)[0] == []


def test_each_distinct_better_answer_is_its_own_pair(store: Store) -> None:
    (answer,) = converse(store, (QUESTION, LONG))
    label(store, answer, "alice", "down", better="Paris.")
    label(store, answer, "bob", "down", better="The capital is Paris.")
    label(store, answer, "carol", "down", better="Paris.")
    pairs, _ = export(store)
    assert sorted(p["chosen"][0]["content"] for p in pairs) == ["Paris.", "The capital is Paris."]
    assert len({p["pair_id"] for p in pairs}) == 2
    assert all(p["reviewers"] == ["alice", "bob", "carol"] for p in pairs)
    # The ids do not change from one export to the next.
    assert [p["pair_id"] for p in export(store)[0]] == [p["pair_id"] for p in pairs]


def test_better_answer_that_changes_nothing_is_skipped(store: Store) -> None:
    (answer,) = converse(store, (QUESTION, "Paris."))
    label(store, answer, "alice", "down", better="  Paris.\n")
    pairs, summary = export(store)
    assert pairs == [] and summary.skipped == 1


def test_export_follows_a_reviewer_who_changed_their_mind(store: Store) -> None:
    (answer,) = converse(store, (QUESTION, LONG))
    _, created = label(store, answer, "alice", "down", better="Paris.")
    assert created
    row, created = label(store, answer, "alice", "up")
    assert not created and row["better"] is None
    pairs, summary = export(store)
    assert pairs == [] and summary.labels == 1


def test_labels_go_with_their_conversation(store: Store) -> None:
    (answer,) = converse(store, (QUESTION, LONG))
    label(store, answer, "alice", "down", better="Paris.")
    conversation_id = store.get_message(answer)["conversation_id"]
    store.delete_conversation(conversation_id)
    assert list(store.iter_feedback()) == []


# --- the CLI ------------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["feedback", *args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("charter: error:"), err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def disagreement(store: Store) -> str:
    """One answer: alice wrote a better one, bob liked it as it was. Also one agreed pair."""
    (answer,) = converse(store, (QUESTION, LONG))
    label(store, answer, "alice", "down", better="Paris.")
    label(store, answer, "bob", "up")
    (agreed,) = converse(store, ("2 + 2?", "5"))
    label(store, agreed, "alice", "down", better="4")
    return answer


def test_cli_export_writes_agreed_pairs_and_reports_the_rest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, disagreement: str
) -> None:
    out = tmp_path / "pairs.jsonl"
    code, stdout, err = run(capsys, "export", "--out", str(out))
    assert code == 0, err
    pairs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [("4", "5")]
    assert stdout == ""
    assert "1 pair(s) held back for disagreement" in err
    assert f"1 answer(s) where reviewers disagree: {disagreement}" in err
    assert f"wrote 1 pair(s) to {out}" in err
    assert not list(tmp_path.glob(".*.partial"))


def test_cli_export_include_disagreements(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, disagreement: str
) -> None:
    out = tmp_path / "all.jsonl"
    code, _, err = run(capsys, "export", "--out", str(out), "--include-disagreements")
    assert code == 0, err
    pairs = {p["message_id"]: p for p in map(json.loads, out.read_text().splitlines())}
    assert len(pairs) == 2
    assert pairs[disagreement]["agreement"] == 0.5
    assert pairs[disagreement]["reviewers"] == ["alice", "bob"]
    assert "held back" not in err

    # A floor above the disagreement's figure keeps it out, even when included.
    code, _, err = run(
        capsys,
        "export",
        "--out",
        str(out),
        "--force",
        "--include-disagreements",
        "--min-agreement",
        "0.75",
    )
    assert code == 0, err
    assert [json.loads(x)["message_id"] for x in out.read_text().splitlines()] != [disagreement]
    assert len(out.read_text().splitlines()) == 1


def test_cli_export_refuses_an_existing_file_unless_forced(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, disagreement: str
) -> None:
    out = tmp_path / "pairs.jsonl"
    out.write_text("keep me\n")
    code, _, err = run(capsys, "export", "--out", str(out))
    assert_one_line_error(code, err, str(out), "--force")
    assert out.read_text() == "keep me\n"

    code, _, err = run(capsys, "export", "--out", str(out), "--force")
    assert code == 0, err
    assert json.loads(out.read_text().splitlines()[0])["source"] == "human"


def test_cli_export_without_a_store_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "export", "--out", str(tmp_path / "pairs.jsonl"))
    assert_one_line_error(code, err, "no Charter database", "charter.db")
    assert not (tmp_path / "pairs.jsonl").exists()
    code, _, err = run(capsys, "list", "--db", str(tmp_path / "elsewhere.db"))
    assert_one_line_error(code, err, "elsewhere.db")


def test_cli_export_to_a_bad_path_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, disagreement: str
) -> None:
    code, _, err = run(capsys, "export", "--out", str(tmp_path / "no-such-dir" / "p.jsonl"))
    assert_one_line_error(code, err, "does not exist")
    code, _, err = run(capsys, "export", "--out", str(tmp_path))
    assert_one_line_error(code, err, "is a directory")


def test_cli_list_shows_every_reviewer(
    capsys: pytest.CaptureFixture[str], disagreement: str
) -> None:
    code, out, err = run(capsys, "list")
    assert code == 0, err
    assert f"{disagreement}  (" in out and "up 1  down 1  reviewers disagree" in out
    assert "better: Paris." in out and "better: 4" in out

    code, out, _ = run(capsys, "list", "--message", disagreement, "--json")
    assert code == 0
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["message_id"] == disagreement and row["content"] == LONG
    assert [lb["reviewer"] for lb in row["labels"]] == ["alice", "bob"]
    assert row["summary"]["disagreement"] is True

    code, _, err = run(capsys, "list", "--message", "msg_nope")
    assert_one_line_error(code, err, "msg_nope")


def test_cli_list_with_nothing_labelled(capsys: pytest.CaptureFixture[str], store: Store) -> None:
    converse(store, (QUESTION, LONG))
    code, out, err = run(capsys, "list")
    assert code == 0 and out == "" and "no feedback yet" in err
