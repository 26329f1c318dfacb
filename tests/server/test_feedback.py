"""The feedback API in-process on the scripted backend: labels, reviewers, bad input.

Several reviewers may label one answer; a reviewer who changes their mind replaces only
their own label; every kind of bad input is an OpenAI-style error with a 4xx status.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from charter.store.feedback import MAX_BETTER_CHARS, MAX_NOTE_CHARS
from tests.server.test_api import assert_error, make_client

ANSWER = "Hello there, friend."


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path) as c:
        yield c


def ask(client: TestClient, question: str = "Hi", **kw: object) -> dict:
    """Ask a question; return the answer's `charter` object (message and conversation ids)."""
    body = {"model": "charter", "messages": [{"role": "user", "content": question}], **kw}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    return r.json()["charter"]


@pytest.fixture
def answer(client: TestClient) -> dict:
    return ask(client)


def url(message_id: str) -> str:
    return f"/v1/messages/{message_id}/feedback"


def post(client: TestClient, message_id: str, **body: object):
    return client.post(url(message_id), json=body)


def labels_by_reviewer(client: TestClient, message_id: str) -> dict[str, dict]:
    r = client.get(url(message_id))
    assert r.status_code == 200, r.text
    return {lb["reviewer"]: lb for lb in r.json()["data"]}


# --- what is stored and returned ---------------------------------------------------------------


def test_thumbs_up_is_stored_and_listed(client: TestClient, answer: dict) -> None:
    mid = answer["message_id"]
    r = post(client, mid, rating="up", note="clear and kind")
    assert r.status_code == 201, r.text
    label = r.json()
    assert label["object"] == "feedback" and label["id"].startswith("fb_")
    assert label["message_id"] == mid
    assert label["reviewer"] == "anonymous"  # keys are off on loopback
    assert (label["rating"], label["better"], label["note"]) == ("up", None, "clear and kind")
    assert label["summary"] == {
        "up": 1,
        "down": 0,
        "better": 0,
        "reviewers": ["anonymous"],
        "disagreement": False,
        "mine": {"rating": "up", "better": None, "note": "clear and kind"},
    }

    listed = client.get(url(mid)).json()
    assert listed["object"] == "list" and listed["message_id"] == mid
    assert listed["reviewer"] == "anonymous"
    assert [lb["id"] for lb in listed["data"]] == [label["id"]]
    assert listed["summary"] == label["summary"]


def test_better_answer_is_stored_whole(client: TestClient, answer: dict) -> None:
    better = "Hi! " + "x" * (MAX_BETTER_CHARS - 4)  # exactly the maximum
    r = post(client, answer["message_id"], rating="down", better=better)
    assert r.status_code == 201, r.text
    stored = labels_by_reviewer(client, answer["message_id"])["anonymous"]
    assert stored["better"] == better and len(stored["better"]) == MAX_BETTER_CHARS
    assert r.json()["summary"]["better"] == 1


def test_conversation_messages_carry_the_feedback_summary(client: TestClient) -> None:
    first = ask(client, "First question")
    second = ask(client, "Second question", conversation_id=first["conversation_id"])
    post(client, second["message_id"], rating="down", better="A better second answer.")
    post(client, second["message_id"], rating="up", reviewer="alice")

    conv = client.get(f"/v1/conversations/{first['conversation_id']}").json()
    roles = [m["role"] for m in conv["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert all("feedback" not in m for m in conv["messages"] if m["role"] == "user")
    unlabelled, labelled = conv["messages"][1], conv["messages"][3]
    assert unlabelled["feedback"] == {
        "up": 0,
        "down": 0,
        "better": 0,
        "reviewers": [],
        "disagreement": False,
        "mine": None,
    }
    assert labelled["id"] == second["message_id"]
    assert labelled["feedback"]["reviewers"] == ["alice", "anonymous"]
    assert labelled["feedback"]["disagreement"] is True
    # "mine" is the caller's own label (here the anonymous reviewer's), not alice's.
    assert labelled["feedback"]["mine"] == {
        "rating": "down",
        "better": "A better second answer.",
        "note": None,
    }


def test_several_reviewers_keep_their_own_labels(client: TestClient, answer: dict) -> None:
    mid = answer["message_id"]
    assert post(client, mid, rating="up", reviewer="alice").status_code == 201
    assert post(client, mid, rating="down", reviewer="bob", better="Hi.").status_code == 201
    r = post(client, mid, rating="up", reviewer="carol")
    assert r.status_code == 201
    summary = r.json()["summary"]
    assert (summary["up"], summary["down"], summary["better"]) == (2, 1, 1)
    assert summary["reviewers"] == ["alice", "bob", "carol"]
    assert summary["disagreement"] is True
    assert summary["mine"]["rating"] == "up"  # carol's, who sent this one
    labels = labels_by_reviewer(client, mid)
    assert {r: lb["rating"] for r, lb in labels.items()} == {
        "alice": "up",
        "bob": "down",
        "carol": "up",
    }
    assert labels["bob"]["better"] == "Hi." and labels["alice"]["better"] is None


def test_reviewer_changing_their_mind_replaces_only_their_label(
    client: TestClient, answer: dict
) -> None:
    mid = answer["message_id"]
    first = post(client, mid, rating="up", reviewer="alice").json()
    post(client, mid, rating="up", reviewer="bob", note="fine")
    bob_before = labels_by_reviewer(client, mid)["bob"]

    r = post(client, mid, rating="down", reviewer="alice", better="Hello.")
    assert r.status_code == 200, r.text  # an update, not a new label
    changed = r.json()
    assert changed["id"] == first["id"]
    assert changed["created_at"] == first["created_at"]
    assert (changed["rating"], changed["better"]) == ("down", "Hello.")

    labels = labels_by_reviewer(client, mid)
    assert len(labels) == 2
    assert labels["bob"] == bob_before
    assert labels["alice"]["rating"] == "down"
    assert changed["summary"]["disagreement"] is True

    # A later label replaces the whole label: leaving the better answer out clears it.
    r = post(client, mid, rating="up", reviewer="alice")
    assert r.status_code == 200
    assert labels_by_reviewer(client, mid)["alice"]["better"] is None
    assert r.json()["summary"]["disagreement"] is False


def test_labels_on_an_incomplete_answer_are_accepted(client: TestClient) -> None:
    store = client.app.state.runtime.store
    conv = store.create_conversation()
    _, mid = store.add_messages(
        conv["id"],
        [
            {"role": "user", "content": "Count to ten"},
            {"role": "assistant", "content": "one two", "status": "incomplete"},
        ],
    )
    assert post(client, mid, rating="down").status_code == 201


def test_deleting_a_conversation_deletes_its_labels(client: TestClient, answer: dict) -> None:
    post(client, answer["message_id"], rating="up")
    r = client.delete(f"/v1/conversations/{answer['conversation_id']}")
    assert r.status_code == 200, r.text
    assert_error(client.get(url(answer["message_id"])), 404, param="message_id")
    assert list(client.app.state.runtime.store.iter_feedback()) == []


def test_feedback_requests_are_counted_in_metrics(client: TestClient, answer: dict) -> None:
    post(client, answer["message_id"], rating="up")
    post(client, answer["message_id"], rating="sideways")
    text = client.get("/metrics").text
    assert 'endpoint="/v1/messages",method="POST",status="201"} 1.0' in text
    assert 'endpoint="/v1/messages",method="POST",status="400"} 1.0' in text


# --- reviewers and API keys --------------------------------------------------------------------


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A server that requires keys, and the headers of two keys named alice and bob."""
    with make_client(tmp_path, require_keys=True) as c:
        store = c.app.state.runtime.store
        headers = {}
        for name in ("alice", "bob"):
            _, secret = store.create_key(name)
            headers[name] = {"Authorization": f"Bearer {secret}"}
        yield c, headers


def test_with_keys_the_reviewer_is_the_key_name(keyed) -> None:
    client, headers = keyed
    mid = client.post(
        "/v1/chat/completions",
        json={"model": "charter", "messages": [{"role": "user", "content": "Hi"}]},
        headers=headers["alice"],
    ).json()["charter"]["message_id"]
    r = client.post(url(mid), json={"rating": "up"}, headers=headers["alice"])
    assert r.status_code == 201, r.text
    assert r.json()["reviewer"] == "alice"
    # Naming a reviewer files the label under the key: alice cannot write as bob.
    r = client.post(url(mid), json={"rating": "down", "reviewer": "bob"}, headers=headers["alice"])
    assert r.json()["reviewer"] == "alice/bob"
    r = client.post(url(mid), json={"rating": "down"}, headers=headers["bob"])
    assert r.json()["reviewer"] == "bob"
    labels = client.get(url(mid), headers=headers["alice"]).json()
    assert {lb["reviewer"]: lb["rating"] for lb in labels["data"]} == {
        "alice": "up",
        "alice/bob": "down",
        "bob": "down",
    }
    assert labels["reviewer"] == "alice"
    assert labels["summary"]["mine"]["rating"] == "up"
    # The store remembers which key sent each label.
    rows = client.app.state.runtime.store.list_feedback(mid)
    by_reviewer = {row["reviewer"]: row["api_key_id"] for row in rows}
    assert by_reviewer["alice"] == by_reviewer["alice/bob"] != by_reviewer["bob"]
    assert by_reviewer["bob"].startswith("key_")


def test_with_keys_a_label_without_a_key_is_refused(keyed) -> None:
    client, _ = keyed
    assert_error(client.post(url("msg_any"), json={"rating": "up"}), 401, contains="API key")
    assert_error(client.get(url("msg_any")), 401, contains="API key")


# --- bad input: each one a 4xx with an OpenAI-style error ---------------------------------------


def test_unknown_message_is_404(client: TestClient) -> None:
    err = assert_error(
        post(client, "msg_nope", rating="up"), 404, param="message_id", contains="msg_nope"
    )
    assert err["type"] == "not_found_error"


def test_listing_an_unknown_message_is_404(client: TestClient) -> None:
    assert_error(client.get(url("msg_nope")), 404, param="message_id", code="not_found")


def test_feedback_on_a_user_message_is_400(client: TestClient, answer: dict) -> None:
    conv = client.get(f"/v1/conversations/{answer['conversation_id']}").json()
    user_id = conv["messages"][0]["id"]
    err = assert_error(
        post(client, user_id, rating="up"),
        400,
        param="message_id",
        code="not_an_answer",
        contains="user message",
    )
    assert err["type"] == "invalid_request_error"
    assert client.get(url(user_id)).json()["data"] == []


def test_feedback_on_an_answer_still_generating_is_409(client: TestClient) -> None:
    store = client.app.state.runtime.store
    conv = store.create_conversation()
    _, mid = store.add_messages(
        conv["id"],
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "", "status": "generating"},
        ],
    )
    assert_error(post(client, mid, rating="up"), 409, param="message_id", code="conflict")
    assert store.list_feedback(mid) == []


@pytest.mark.parametrize("rating", ["meh", "UP", "", None, 1, True, ["up"]])
def test_invalid_rating_is_400(client: TestClient, answer: dict, rating: object) -> None:
    err = assert_error(
        post(client, answer["message_id"], rating=rating),
        400,
        param="rating",
        code="invalid_value",
    )
    assert err["type"] == "invalid_request_error"
    assert "'up' or 'down'" in err["message"]


def test_missing_rating_is_400(client: TestClient, answer: dict) -> None:
    assert_error(
        post(client, answer["message_id"], better="Something better."),
        400,
        param="rating",
        contains="required",
    )


@pytest.mark.parametrize("better", ["", "   \n\t "])
def test_empty_better_answer_is_400(client: TestClient, answer: dict, better: str) -> None:
    assert_error(
        post(client, answer["message_id"], rating="down", better=better),
        400,
        param="better",
        contains="empty",
    )
    assert labels_by_reviewer(client, answer["message_id"]) == {}


def test_overlong_better_answer_is_400_not_truncated(client: TestClient, answer: dict) -> None:
    r = post(client, answer["message_id"], rating="down", better="y" * (MAX_BETTER_CHARS + 1))
    assert_error(r, 400, param="better", contains=f"{MAX_BETTER_CHARS}")
    assert labels_by_reviewer(client, answer["message_id"]) == {}


def test_better_answer_that_is_not_text_is_400(client: TestClient, answer: dict) -> None:
    assert_error(post(client, answer["message_id"], rating="down", better=42), 400, param="better")


def test_overlong_note_is_400(client: TestClient, answer: dict) -> None:
    r = post(client, answer["message_id"], rating="up", note="n" * (MAX_NOTE_CHARS + 1))
    assert_error(r, 400, param="note")


@pytest.mark.parametrize("reviewer", ["", "   ", "bad\nname", "r" * 101])
def test_bad_reviewer_is_400(client: TestClient, answer: dict, reviewer: str) -> None:
    assert_error(post(client, answer["message_id"], rating="up", reviewer=reviewer), 400)
    assert labels_by_reviewer(client, answer["message_id"]) == {}


def test_unknown_field_is_400(client: TestClient, answer: dict) -> None:
    r = post(client, answer["message_id"], rating="up", score=5)
    assert_error(r, 400, param="score", contains="unrecognized parameter")


@pytest.mark.parametrize(
    "body",
    ['{"rating": "up"', "rating=up", "", "   ", '"up"', '["up"]', b'{"rating": "\xff"}'],
    ids=["truncated", "form", "empty", "blank", "string", "array", "not-utf8"],
)
def test_malformed_json_is_400(client: TestClient, answer: dict, body: str | bytes) -> None:
    r = client.post(
        url(answer["message_id"]), content=body, headers={"Content-Type": "application/json"}
    )
    err = assert_error(r, 400)
    assert err["code"] in ("invalid_json", "invalid_utf8")
    assert labels_by_reviewer(client, answer["message_id"]) == {}


def test_body_over_the_server_limit_is_413(tmp_path: Path) -> None:
    with make_client(tmp_path, max_body_bytes=2048) as client:
        mid = ask(client)["message_id"]
        r = post(client, mid, rating="down", better="z" * 4000)
        assert_error(r, 413, code="payload_too_large")


def test_a_label_counts_once_against_the_rate_limit(tmp_path: Path) -> None:
    with make_client(tmp_path, require_keys=True, rate_limit_per_minute=3) as client:
        _, secret = client.app.state.runtime.store.create_key("alice")
        headers = {"Authorization": f"Bearer {secret}"}
        codes = [client.get(url("msg_x"), headers=headers).status_code for _ in range(4)]
        assert codes == [404, 404, 404, 429]
