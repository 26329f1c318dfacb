"""The HTTP API in-process on the scripted backend: protocol, conversations, bad input, auth.

Every kind of bad input the core issue names gets an OpenAI-style error with a 4xx status.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from charter.runtime import Runtime
from charter.server import create_app
from tests.conftest import fake_settings


def make_client(home: Path, **settings: object) -> TestClient:
    return TestClient(create_app(Runtime(fake_settings(home, **settings))))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path) as c:
        yield c


def chat(**kw: object) -> dict:
    return {"model": "charter", "messages": [{"role": "user", "content": "Hi"}], **kw}


def sse_events(text: str) -> list[dict]:
    lines = [ln[6:] for ln in text.splitlines() if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(x) for x in lines[:-1]]


def assert_error(
    r, status: int, *, param: str | None = None, contains: str = "", code: str | None = None
) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"] and contains in err["message"]
    if param is not None:
        assert err["param"] == param
    if code is not None:
        assert err["code"] == code
    return err


def test_non_stream_completion_has_usage_and_charter(client: TestClient) -> None:
    r = client.post("/v1/chat/completions", json=chat())
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello there, friend."}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 3
    ch = body["charter"]
    assert ch["model"] == "fake" and ch["message_id"].startswith("msg_")
    assert body["id"] == f"chatcmpl-{ch['message_id']}"
    assert set(ch["timings"]) == {"queued_ms", "ttft_ms", "total_ms", "tokens_per_second"}
    assert [s["stage"] for s in ch["stages"]] == ["store", "self_knowledge", "generate"]


def test_stream_sends_chunks_then_charter_in_last_chunk(client: TestClient) -> None:
    r = client.post("/v1/chat/completions", json=chat(stream=True))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    assert text == "Hello there, friend."
    assert all("charter" not in e for e in events[:-1])
    last = events[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["charter"]["conversation_id"].startswith("conv_")
    assert r.headers["x-charter-conversation-id"] == last["charter"]["conversation_id"]
    assert r.headers["x-charter-message-id"] == last["charter"]["message_id"]
    assert last["usage"]["total_tokens"] > 0


def test_sampling_params_and_logprobs(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions",
        json=chat(
            max_tokens=2,
            temperature=0,
            top_p=0.5,
            seed=3,
            stop=["zzz"],
            logprobs=True,
            top_logprobs=1,
        ),
    )
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "Hello there,"
    assert body["choices"][0]["finish_reason"] == "length"
    lps = body["choices"][0]["logprobs"]["content"]
    assert [x["token"] for x in lps] == ["Hello", " there,"]


def test_models_lists_model_and_alias(client: TestClient) -> None:
    ids = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert ids == ["fake", "charter"]


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    client.post("/v1/chat/completions", json=chat())
    client.post("/v1/chat/completions", json={"model": "charter"})
    text = client.get("/metrics").text
    assert (
        'charter_requests_total{endpoint="/v1/chat/completions",method="POST",status="200"}'
        " 1.0" in text
    )
    assert 'status="400"} 1.0' in text
    assert "charter_time_to_first_token_seconds_count 1.0" in text
    assert "charter_inter_token_latency_seconds_count 2.0" in text
    assert "charter_generated_tokens_total 3.0" in text
    assert "charter_queue_depth 0.0" in text


def test_conversations_crud_and_server_side_history(client: TestClient) -> None:
    conv = client.post("/v1/conversations", json={"title": "Plans"}).json()
    assert conv["title"] == "Plans" and conv["message_count"] == 0
    r = client.post("/v1/chat/completions", json=chat(conversation_id=conv["id"]))
    assert r.json()["charter"]["conversation_id"] == conv["id"]
    client.post("/v1/chat/completions", json=chat(conversation_id=conv["id"]))
    got = client.get(f"/v1/conversations/{conv['id']}").json()
    assert [m["role"] for m in got["messages"]] == ["user", "assistant"] * 2
    assert got["messages"][1]["status"] == "complete"
    assert got["messages"][1]["charter"]["message_id"] == got["messages"][1]["id"]
    listed = client.get("/v1/conversations").json()["data"]
    assert listed[0]["id"] == conv["id"] and listed[0]["message_count"] == 4
    renamed = client.patch(f"/v1/conversations/{conv['id']}", json={"title": "New"}).json()
    assert renamed["title"] == "New"
    assert client.delete(f"/v1/conversations/{conv['id']}").json()["deleted"] is True
    assert_error(client.get(f"/v1/conversations/{conv['id']}"), 404)
    assert_error(client.delete(f"/v1/conversations/{conv['id']}"), 404)


# -- bad input: each kind gets its own error ---------------------------------------------


def test_malformed_json(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions",
        content=b'{"model": "charter", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert_error(r, 400, contains="not valid JSON", code="invalid_json")


def test_body_not_an_object(client: TestClient) -> None:
    assert_error(client.post("/v1/chat/completions", json=[1, 2]), 400, contains="JSON object")


def test_empty_body(client: TestClient) -> None:
    assert_error(client.post("/v1/chat/completions", content=b""), 400, contains="empty")


@pytest.mark.parametrize(
    "field,value,param",
    [
        ("temperature", "hot", "temperature"),
        ("temperature", 3.5, "temperature"),
        ("max_tokens", 0, "max_tokens"),
        ("max_tokens", "ten", "max_tokens"),
        ("stream", "maybe", "stream"),
        ("messages", "hello", "messages"),
        ("n", 2, "n"),
        ("top_logprobs", 50, "top_logprobs"),
        ("tools", [], "tools"),
    ],
)
def test_wrong_types_and_values(client: TestClient, field: str, value: object, param: str) -> None:
    assert_error(client.post("/v1/chat/completions", json=chat(**{field: value})), 400, param=param)


def test_missing_model(client: TestClient) -> None:
    body = chat()
    del body["model"]
    assert_error(client.post("/v1/chat/completions", json=body), 400, param="model")


def test_unknown_model(client: TestClient) -> None:
    assert_error(
        client.post("/v1/chat/completions", json=chat(model="gpt-9")),
        404,
        param="model",
        code="model_not_found",
        contains="gpt-9",
    )


def test_empty_messages(client: TestClient) -> None:
    assert_error(client.post("/v1/chat/completions", json=chat(messages=[])), 400, param="messages")


def test_unknown_role(client: TestClient) -> None:
    body = chat(messages=[{"role": "wizard", "content": "hi"}])
    assert_error(
        client.post("/v1/chat/completions", json=body),
        400,
        param="messages.0.role",
        contains="unknown role 'wizard'",
    )


def test_prompt_longer_than_context_states_both_numbers(tmp_path: Path) -> None:
    with make_client(tmp_path, backend_options={"context_size": 50}) as c:
        body = chat(messages=[{"role": "user", "content": "word " * 100}])
        err = assert_error(
            c.post("/v1/chat/completions", json=body),
            400,
            code="context_length_exceeded",
            param="messages",
        )
        assert "105 tokens" in err["message"] and "context is 50" in err["message"]
        # Streaming requests are refused the same way, before any 200 is sent.
        body["stream"] = True
        assert_error(c.post("/v1/chat/completions", json=body), 400, code="context_length_exceeded")
        # Nothing half-stored.
        assert c.get("/v1/conversations").json()["data"] == []


def test_invalid_utf8(client: TestClient) -> None:
    raw = b'{"model": "charter", "messages": [{"role": "user", "content": "\xff\xfe"}]}'
    assert_error(
        client.post("/v1/chat/completions", content=raw), 400, code="invalid_utf8", contains="UTF-8"
    )


def test_unpaired_surrogate_escape(client: TestClient) -> None:
    raw = b'{"model": "charter", "messages": [{"role": "user", "content": "\\ud800"}]}'
    assert_error(
        client.post("/v1/chat/completions", content=raw),
        400,
        param="messages.0.content",
        contains="surrogate",
    )


def test_oversized_body(tmp_path: Path) -> None:
    with make_client(tmp_path, max_body_bytes=2048) as c:
        big = chat(messages=[{"role": "user", "content": "x" * 5000}])
        assert_error(
            c.post("/v1/chat/completions", json=big), 413, code="payload_too_large", contains="2048"
        )

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
            yield b'{"model": "charter", "messages": [{"role": "user", "content": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}]}'

        assert_error(c.post("/v1/chat/completions", content=chunks()), 413)


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    assert_error(client.get("/v1/nothing"), 404)
    assert_error(client.get("/v1/chat/completions"), 405)
    assert_error(client.get("/v1/conversations?limit=abc"), 400, param="query.limit")


def test_bad_conversation_id(client: TestClient) -> None:
    assert_error(
        client.post("/v1/chat/completions", json=chat(conversation_id="conv_x")),
        404,
        param="conversation_id",
    )
    assert_error(client.patch("/v1/conversations/conv_x", json={"title": "t"}), 404)
    assert_error(client.patch("/v1/conversations/conv_x", json={"title": ""}), 400, param="title")


# -- keys and rate limits ----------------------------------------------------------------


def test_api_keys_required_when_configured(tmp_path: Path) -> None:
    with make_client(tmp_path, require_keys=True, rate_limit_per_minute=2) as c:
        store = c.app.state.runtime.store
        _, secret = store.create_key("ci")
        assert_error(
            c.post("/v1/chat/completions", json=chat()),
            401,
            code="invalid_api_key",
            contains="Authorization",
        )
        assert_error(
            c.post(
                "/v1/chat/completions", json=chat(), headers={"Authorization": "Bearer ck-wrong"}
            ),
            401,
            contains="invalid",
        )
        assert_error(c.get("/v1/conversations", headers={"Authorization": "Basic x"}), 401)
        ok = {"Authorization": f"Bearer {secret}"}
        assert c.post("/v1/chat/completions", json=chat(), headers=ok).status_code == 200
        assert c.get("/v1/models", headers=ok).status_code == 200
        # Third request within the minute: over the per-key limit of 2.
        r = c.get("/v1/models", headers=ok)
        assert_error(r, 429, code="rate_limit_exceeded")
        assert int(r.headers["Retry-After"]) >= 1
        # Health and the page stay open (no secrets there).
        assert c.get("/health").status_code == 200
        store.revoke_key("ci")
        assert_error(c.get("/v1/models", headers=ok), 401)
