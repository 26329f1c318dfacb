"""The constitution through the HTTP API (in-process, fake backend, keyword screen): the
`replace` chunk, `charter.trace`, `charter.governance`, and the operator-only admin API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from charter.runtime import Runtime
from charter.server import create_app
from tests.constitution.test_stage import REFUSAL, governed_runtime

ADMIN = "a" * 32
HARMFUL_TAIL = "Sure, here you go. " + "some words that pass the screen and then the bomb " * 3


def client_for(rt: Runtime) -> TestClient:
    return TestClient(create_app(rt))


def sse(text: str) -> list[dict]:
    lines = [ln[6:] for ln in text.splitlines() if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(x) for x in lines[:-1]]


def ask(c: TestClient, text: str, **kw: object):
    body = {"model": "charter", "messages": [{"role": "user", "content": text}], **kw}
    return c.post("/v1/chat/completions", json=body)


def test_stream_sends_a_replace_chunk_and_the_final_message_is_governed(tmp_path: Path) -> None:
    rt = governed_runtime(tmp_path, script=HARMFUL_TAIL)
    with client_for(rt) as c:
        r = ask(c, "story please", stream=True)
        assert r.status_code == 200
        chunks = sse(r.text)
    texts = [ch["choices"][0]["delta"].get("content", "") for ch in chunks]
    replace_at = next(i for i, ch in enumerate(chunks) if "replace" in ch.get("charter", {}))
    replace = chunks[replace_at]
    assert replace["choices"][0]["delta"] == {}
    assert replace["charter"]["replace"] == {"content": REFUSAL, "principle": "weapons"}
    assert "bomb" not in "".join(texts)  # only screened text was ever streamed
    assert all(t == "" for t in texts[replace_at:])
    final = chunks[-1]["charter"]
    assert final["trace"]["decision"] == "refused" and "draft" not in final
    conv = c.get(f"/v1/conversations/{final['conversation_id']}").json()
    assert conv["messages"][-1]["content"] == REFUSAL
    assert "draft" not in conv["messages"][-1]


def test_non_streaming_answer_is_the_governed_text(tmp_path: Path) -> None:
    rt = governed_runtime(tmp_path, script=HARMFUL_TAIL)
    with client_for(rt) as c:
        body = ask(c, "story please").json()
    assert body["choices"][0]["message"]["content"] == REFUSAL
    assert body["charter"]["trace"]["fired"][0]["principle"] == "weapons"


@pytest.mark.parametrize(
    ("value", "code"),
    [("off", "governance_off_not_allowed"), ("strict", "invalid_governance"), (3, None)],
)
def test_bad_governance_option_is_a_400(tmp_path: Path, value: object, code: str | None) -> None:
    rt = governed_runtime(tmp_path, script="hi")
    with client_for(rt) as c:
        r = ask(c, "hi", charter={"governance": value})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"].startswith("charter.governance")
    if code:
        assert err["code"] == code


def test_per_request_screen_mode(tmp_path: Path) -> None:
    rt = governed_runtime(tmp_path, mode="critique", script="fine answer here")
    with client_for(rt) as c:
        body = ask(c, "hello", charter={"governance": "screen"}).json()
    assert body["charter"]["trace"]["mode"] == "screen"


def test_admin_api_shows_the_draft_only_to_the_operator(tmp_path: Path) -> None:
    rt = governed_runtime(tmp_path, script=HARMFUL_TAIL)
    with client_for(rt) as c:
        mid = ask(c, "story please").json()["charter"]["message_id"]
        off = c.get(f"/v1/admin/messages/{mid}")
        assert off.status_code == 403 and off.json()["error"]["type"] == "permission_error"
        rt.settings.admin_key = ADMIN
        assert c.get(f"/v1/admin/messages/{mid}").status_code == 401
        bad = c.get(f"/v1/admin/messages/{mid}", headers={"Authorization": "Bearer wrong"})
        assert bad.status_code == 401
        r = c.get(f"/v1/admin/messages/{mid}", headers={"Authorization": f"Bearer {ADMIN}"})
        assert r.status_code == 200
        detail = r.json()
        assert detail["content"] == REFUSAL and "bomb" in detail["draft"]
        assert detail["charter"]["trace"]["decision"] == "refused"
        missing = c.get("/v1/admin/messages/msg_nope", headers={"Authorization": f"Bearer {ADMIN}"})
        assert missing.status_code == 404
