"""A real `charter serve` process on the scripted backend: fair queueing, no stream cancels
another, a client disconnect frees the model within a few tokens, 429 past the queue limit."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from tests.conftest import fake_env

pytestmark = pytest.mark.slow

WORDS = " ".join(f"w{i}" for i in range(40))


def body(**kw: object) -> dict:
    return {
        "model": "charter",
        "messages": [{"role": "user", "content": "go"}],
        "stream": True,
        **kw,
    }


async def stream_text(client: httpx.AsyncClient, url: str, started: list[float]) -> str:
    text = []
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body()) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                ev = json.loads(line[6:])
                delta = ev["choices"][0]["delta"].get("content")
                if delta:
                    if not text:
                        started.append(time.monotonic())
                    text.append(delta)
    return "".join(text)


def test_concurrent_streams_all_complete_in_fifo_order(start_server) -> None:
    srv = start_server(env=fake_env(script=WORDS, delay=0.01))

    async def main() -> tuple[list[str], list[list[float]]]:
        async with httpx.AsyncClient(timeout=60) as client:
            starts: list[list[float]] = [[] for _ in range(4)]
            tasks = []
            for i in range(4):
                tasks.append(asyncio.create_task(stream_text(client, srv.url, starts[i])))
                await asyncio.sleep(0.05)  # a clear arrival order
            return await asyncio.gather(*tasks), starts

    texts, starts = asyncio.run(main())
    assert texts == [WORDS] * 4  # no stream was cut by another
    first_tokens = [s[0] for s in starts]
    assert first_tokens == sorted(first_tokens)  # served in arrival order


def test_disconnect_stops_generation_and_frees_the_model(start_server) -> None:
    long_script = " ".join(f"t{i}" for i in range(400))
    srv = start_server(env=fake_env(script=long_script, delay=0.02))
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{srv.url}/v1/chat/completions", json=body()) as r:
            seen = 0
            for line in r.iter_lines():
                if '"content": "' in line and '"role"' not in line:
                    seen += 1
                if seen >= 5:
                    break
        # The response is closed: the server must notice and stop within a few tokens.
        conv_id = None
        deadline = time.monotonic() + 10
        msg = None
        while time.monotonic() < deadline:
            convs = client.get(f"{srv.url}/v1/conversations").json()["data"]
            conv_id = convs[0]["id"]
            msg = client.get(f"{srv.url}/v1/conversations/{conv_id}").json()["messages"][-1]
            if msg["status"] != "generating":
                break
            time.sleep(0.05)
        assert msg is not None and msg["status"] == "incomplete"
        produced = len(msg["content"].split())
        assert 5 <= produced <= 20, produced
        # The model is free: the next request is not queued behind a ghost.
        t0 = time.monotonic()
        r = client.post(f"{srv.url}/v1/chat/completions", json=body(stream=False, max_tokens=2))
        assert r.status_code == 200
        assert r.json()["charter"]["timings"]["queued_ms"] < 500
        assert time.monotonic() - t0 < 5


def test_queue_limit_answers_429_with_retry_after(start_server) -> None:
    srv = start_server(env={**fake_env(script=WORDS, delay=0.05), "CHARTER_QUEUE_LIMIT": "1"})

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:

            def post() -> asyncio.Task:
                return asyncio.create_task(
                    client.post(f"{srv.url}/v1/chat/completions", json=body(stream=False))
                )

            running = post()
            await asyncio.sleep(0.3)
            waiting = post()
            await asyncio.sleep(0.3)
            rejected = await client.post(f"{srv.url}/v1/chat/completions", json=body(stream=False))
            return [await running, await waiting, rejected]

    running, waiting, rejected = asyncio.run(main())
    assert running.status_code == 200 and waiting.status_code == 200
    assert waiting.json()["charter"]["timings"]["queued_ms"] > 500
    assert rejected.status_code == 429
    assert rejected.json()["error"]["code"] == "queue_full"
    assert int(rejected.headers["Retry-After"]) >= 1
    metrics = httpx.get(f"{srv.url}/metrics").text
    assert 'status="429"} 1.0' in metrics
