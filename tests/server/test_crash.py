"""kill -9 mid-stream, restart, read the conversation back: nothing said is lost."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import ServerProcess, fake_env

pytestmark = pytest.mark.slow


def test_kill_9_mid_stream_keeps_question_and_partial_answer(tmp_path) -> None:
    script = " ".join(f"word{i}" for i in range(300))
    home = tmp_path / "home"
    env = fake_env(script=script, delay=0.02)
    srv = ServerProcess(home, env=env).start()
    question = "Please tell me everything."
    streamed = []
    try:
        with httpx.stream(
            "POST",
            f"{srv.url}/v1/chat/completions",
            timeout=30,
            json={
                "model": "charter",
                "stream": True,
                "messages": [{"role": "user", "content": question}],
            },
        ) as r:
            for line in r.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    ev = json.loads(line[6:])
                    delta = ev["choices"][0]["delta"].get("content")
                    if delta:
                        streamed.append(delta)
                if len(streamed) >= 60:  # > 1 s of streaming: past a checkpoint
                    srv.kill9()
                    break
    except httpx.HTTPError:
        pass
    assert srv.proc is not None and srv.proc.returncode == -9

    restarted = ServerProcess(home, env=env, port=srv.port).start()
    try:
        convs = httpx.get(f"{restarted.url}/v1/conversations").json()["data"]
        assert len(convs) == 1
        msgs = httpx.get(f"{restarted.url}/v1/conversations/{convs[0]['id']}").json()["messages"]
        assert msgs[0]["role"] == "user" and msgs[0]["content"] == question
        answer = msgs[1]
        assert answer["role"] == "assistant"
        assert answer["status"] == "incomplete"
        assert answer["finish_reason"] == "interrupted"
        # At least what was checkpointed (every 0.5 s) survived, and it is a true prefix.
        assert len(answer["content"].split()) >= 10
        assert script.startswith(answer["content"])
        assert "".join(streamed).startswith(answer["content"])
        # The conversation goes on after the crash.
        r = httpx.post(
            f"{restarted.url}/v1/chat/completions",
            timeout=30,
            json={
                "model": "charter",
                "conversation_id": convs[0]["id"],
                "max_tokens": 3,
                "messages": [{"role": "user", "content": "go on"}],
            },
        )
        assert r.status_code == 200
    finally:
        restarted.stop()
