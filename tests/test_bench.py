"""Tests for charter.bench: statistics, SSE parsing, and whole runs against a scripted server.

The scripted server is a real uvicorn on a free 127.0.0.1 port, streaming canned chunks with
small delays, so the timings and failure accounting are checked end to end.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from charter.bench import (
    DONE,
    MalformedStream,
    StreamTracker,
    build_prompt,
    format_table,
    level_summary,
    parse_sse_line,
    percentile,
    run_bench,
    summarize,
)
from charter.errors import BackendError

# --- statistics -----------------------------------------------------------------------------


def test_percentile_interpolates_like_numpy():
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 100) == 4.0
    assert percentile(values, 90) == pytest.approx(3.7)
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_summarize_reports_milliseconds():
    stats = summarize([0.010, 0.020, 0.030])
    assert stats == {"mean": 20.0, "p50": 20.0, "p90": 28.0, "p99": 29.8}
    assert summarize([]) == {"mean": None, "p50": None, "p90": None, "p99": None}


def test_prompt_is_deterministic_and_sized():
    prompt = build_prompt(50)
    assert prompt == build_prompt(50)
    assert len(prompt.split()) == 50
    assert "story" in prompt
    assert len(build_prompt(200).split()) == 200
    numbered = build_prompt(50, 17)
    assert numbered.startswith("Request 17: ") and len(numbered.split()) == 50
    assert numbered != build_prompt(50, 18)


# --- SSE ------------------------------------------------------------------------------------


def test_parse_sse_line():
    assert parse_sse_line('data: {"a": 1}') == {"a": 1}
    assert parse_sse_line('data:{"a": 1}\r\n') == {"a": 1}
    assert parse_sse_line("data: [DONE]") == DONE
    assert parse_sse_line("") is None
    assert parse_sse_line(": ping - 2024-01-01") is None
    assert parse_sse_line("event: message") is None
    with pytest.raises(MalformedStream, match="malformed"):
        parse_sse_line("data: {not json")
    with pytest.raises(MalformedStream):
        parse_sse_line("data: [1, 2]")


def chunk(content=None, finish=None, usage=None, role=None) -> dict:
    delta = {}
    if role:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    body: dict = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        body = {"choices": [], "usage": usage}
    return body


def test_tracker_times_content_chunks_and_prefers_usage():
    t = StreamTracker(start=100.0)
    t.feed(chunk(role="assistant", content=""), 100.05)  # role-only chunk: not a token
    t.feed(chunk(content="Once"), 100.2)
    t.feed(chunk(content=" upon"), 100.3)
    t.feed(chunk(content=" a"), 100.45)
    t.feed(chunk(finish="length"), 100.46)
    t.feed(chunk(usage={"prompt_tokens": 51, "completion_tokens": 4}), 100.47)
    t.feed(DONE, 100.48)
    r = t.finish(100.5)
    assert r.ok and r.complete
    assert r.ttft == pytest.approx(0.2)
    assert r.itl == pytest.approx([0.1, 0.15])
    assert r.e2e == pytest.approx(0.5)
    assert (r.output_tokens, r.tokens_source, r.prompt_tokens) == (4, "usage", 51)
    assert r.tpot == pytest.approx(0.3 / 3)
    assert r.finish_reason == "length"


def test_tracker_counts_chunks_without_usage_and_flags_cut_streams():
    t = StreamTracker(start=0.0)
    t.feed(chunk(content="a"), 0.1)
    t.feed(chunk(content="b"), 0.2)
    r = t.finish(0.3)
    assert not r.ok and r.error == "stream ended without [DONE]"
    assert (r.output_tokens, r.tokens_source) == (2, "chunks")

    t = StreamTracker(start=0.0)
    t.feed(chunk(content="a"), 0.1)
    t.feed(DONE, 0.2)
    r = t.finish(0.2)
    assert r.ok and not r.complete  # [DONE] but no finish_reason


def test_tracker_rejects_error_events():
    t = StreamTracker(start=0.0)
    with pytest.raises(MalformedStream, match="boom"):
        t.feed({"error": {"message": "boom"}}, 0.1)


def test_level_summary_counts_and_throughput():
    ok = StreamTracker(0.0)
    for i, text in enumerate("abcd"):
        ok.feed(chunk(content=text), 0.1 * (i + 1))
    ok.feed(chunk(finish="stop"), 0.45)
    ok.feed(DONE, 0.45)
    good = ok.finish(0.5)
    bad = StreamTracker(0.0).finish(0.1)
    level = level_summary(2, [good, bad], duration=2.0)
    assert (level["requests"], level["completed"], level["failed"]) == (2, 1, 1)
    assert level["errors"] == {"stream ended without [DONE]": 1}
    assert level["output_throughput"] == 2.0
    assert level["request_throughput"] == 0.5
    assert level["ttft_ms"]["p50"] == pytest.approx(100.0)
    assert level["itl_ms"]["mean"] == pytest.approx(100.0)
    assert level["all_streams_complete"] is False
    json.dumps(level)


# --- whole runs against a scripted server ---------------------------------------------------

TOKENS = ["Once", " upon", " a", " time", " there"]
FIRST_DELAY = 0.03
TOKEN_DELAY = 0.01


def make_app(fail_odd: bool = False, usage: bool = True) -> tuple[Starlette, list[dict]]:
    """A fake OpenAI server. With fail_odd, every odd-numbered request (the warm-up is 0)
    fails in turn with a 500, a stream cut before [DONE], and malformed SSE."""
    bodies: list[dict] = []
    failures = ["status", "cut", "malformed"]

    async def models(_: Request):
        return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def chat(request: Request):
        body = await request.json()
        n = len(bodies)
        bodies.append(body)
        failure = failures[(n // 2) % 3] if fail_odd and n % 2 == 1 else None
        if failure == "status":
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=500)

        async def stream():
            def sse(obj):
                return f"data: {json.dumps(obj)}\n\n"

            yield sse(chunk(role="assistant", content=""))
            await asyncio.sleep(FIRST_DELAY)
            for i, token in enumerate(TOKENS):
                if i:
                    await asyncio.sleep(TOKEN_DELAY)
                yield sse(chunk(content=token))
                if failure == "cut" and i == 2:
                    return
                if failure == "malformed" and i == 2:
                    yield "data: {oops\n\n"
            yield sse(chunk(finish="length"))
            if usage:
                yield sse(chunk(usage={"prompt_tokens": 50, "completion_tokens": len(TOKENS)}))
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    routes = [Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"])]
    return Starlette(routes=routes), bodies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve() -> Iterator:
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app) -> str:
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=5)


def test_run_bench_measures_a_streaming_server(serve):
    app, bodies = make_app()
    url = serve(app)
    messages: list[str] = []
    result = run_bench(
        url, concurrencies=(1, 2), requests_per_level=2, max_tokens=5, progress=messages.append
    )

    assert result["settings"]["model"] == "fake-model"  # taken from /v1/models
    assert len(bodies) == 1 + 2 + 2  # warm-up, then two levels of two
    sent = bodies[0]
    assert sent["stream"] is True and sent["temperature"] == 0 and sent["max_tokens"] == 5
    assert sent["stream_options"] == {"include_usage": True}
    prompts = [b["messages"][0]["content"] for b in bodies]
    assert prompts == [build_prompt(50, n) for n in range(5)]  # distinct: no cached prefix
    assert all({**b, "messages": None} == {**sent, "messages": None} for b in bodies)
    assert result["settings"]["distinct_prompts"] is True
    assert result["warmup"]["ok"] is True

    assert [lv["concurrency"] for lv in result["levels"]] == [1, 2]
    for lv in result["levels"]:
        assert (lv["requests"], lv["completed"], lv["failed"]) == (2, 2, 0)
        assert lv["all_streams_complete"] is True
        assert lv["tokens_source"] == "usage"
        assert lv["total_output_tokens"] == 2 * len(TOKENS)
        assert lv["mean_prompt_tokens"] == 50
        assert FIRST_DELAY * 1000 <= lv["ttft_ms"]["p50"] < lv["e2e_ms"]["p50"]
        assert lv["ttft_ms"]["p99"] < lv["e2e_ms"]["p99"]
        assert lv["itl_ms"]["p50"] >= TOKEN_DELAY * 1000 * 0.9
        assert lv["tpot_ms"]["mean"] >= TOKEN_DELAY * 1000 * 0.9
        assert lv["output_throughput"] > 0 and lv["request_throughput"] > 0
    # Two in flight take about half as long as one after the other.
    c1, c2 = result["levels"]
    assert c2["duration_s"] < c1["duration_s"] * 0.85
    assert any("concurrency 2" in m for m in messages)

    json.dumps(result)
    table = format_table(result)
    assert "fake-model" in table and "TTFT p50" in table
    assert len(table.splitlines()) == 2 + 2 + 1


def test_run_bench_counts_chunks_without_usage(serve):
    app, bodies = make_app(usage=False)
    result = run_bench(
        serve(app), model="given", concurrencies=(1,), requests_per_level=2, distinct_prompts=False
    )
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]
    assert bodies[0]["messages"][0]["content"] == build_prompt(50)
    (lv,) = result["levels"]
    assert result["settings"]["model"] == "given"
    assert lv["tokens_source"] == "chunks"
    assert lv["total_output_tokens"] == 2 * len(TOKENS)


def test_run_bench_counts_failures_with_reasons(serve):
    app, bodies = make_app(fail_odd=True)
    result = run_bench(serve(app), concurrencies=(1, 2), requests_per_level=4)

    assert len(bodies) == 1 + 4 + 4
    assert result["warmup"]["ok"] is True
    levels = result["levels"]
    assert sum(lv["completed"] for lv in levels) == 4
    assert sum(lv["failed"] for lv in levels) == 4
    for lv in levels:
        assert lv["completed"] + lv["failed"] == 4
        assert lv["all_streams_complete"] is False
        assert lv["total_output_tokens"] == lv["completed"] * len(TOKENS)
    reasons: dict[str, int] = {}
    for lv in levels:
        for reason, count in lv["errors"].items():
            reasons[reason] = reasons.get(reason, 0) + count
    assert sum(reasons.values()) == 4
    assert any(r.startswith("HTTP 500") and "overloaded" in r for r in reasons)
    assert reasons.get("stream ended without [DONE]") == 1
    assert any(r.startswith("malformed SSE") for r in reasons)
    assert "x HTTP 500" in format_table(result)


def test_unreachable_url_raises_backend_error():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendError, match=url.replace(".", r"\.")) as info:
        run_bench(url, concurrencies=(1,), requests_per_level=1, timeout=2)
    assert "\n" not in str(info.value)
