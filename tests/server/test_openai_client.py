"""The official `openai` SDK against a real `charter serve` on the embedded model."""

from __future__ import annotations

import openai
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(real_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{real_server.url}/v1", api_key="unused", max_retries=0)


def test_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list().data]
    assert ids == ["SmolLM2-135M-Instruct.Q4_1", "charter"]


def test_non_stream(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="charter",
        max_tokens=16,
        temperature=0,
        seed=1,
        messages=[{"role": "user", "content": "Name a color."}],
    )
    answer = r.choices[0].message.content
    assert answer and answer.strip()
    assert r.usage is not None and 0 < r.usage.completion_tokens <= 16
    assert r.usage.prompt_tokens > 5
    charter = r.model_extra["charter"]
    assert charter["parameter_count"] == 134_515_008
    assert charter["timings"]["ttft_ms"] > 0


def test_stream_matches_non_stream_at_temperature_zero(client: openai.OpenAI) -> None:
    kw = {
        "model": "charter",
        "max_tokens": 20,
        "temperature": 0,
        "seed": 7,
        "messages": [{"role": "user", "content": "Count from one to five."}],
    }
    whole = client.chat.completions.create(**kw).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, **kw))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == whole
    last = chunks[-1]
    assert last.choices[0].finish_reason in ("stop", "length")
    assert last.model_extra["charter"]["message_id"].startswith("msg_")


def test_logprobs(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(
        model="charter",
        max_tokens=5,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
        messages=[{"role": "user", "content": "Say yes."}],
    )
    content = r.choices[0].logprobs.content
    assert content and len(content) >= 1
    first = content[0]
    assert first.logprob <= 0 and len(first.top_logprobs) == 3
    assert "".join(t.token for t in content) == r.choices[0].message.content


def test_errors_surface_as_sdk_exceptions(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="charter", messages=[{"role": "user", "content": "hello " * 3000}]
        )
    assert err.value.code == "context_length_exceeded"
    assert "context is 2048" in err.value.message
