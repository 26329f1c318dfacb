"""Charter in front of a real second server: llama-cpp-python's own OpenAI server, started
here on a free port, stands in for vLLM / SGLang / Ollama on another machine."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from charter.backends.openai_upstream import OpenAIUpstreamBackend, OpenAIUpstreamOptions
from charter.errors import BackendError, UpstreamError
from charter.models import embedded_model_path
from charter.types import Message, Params
from tests.conftest import fake_env, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]")
    port = free_port()
    log = tmp_path_factory.mktemp("upstream") / "llama-server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(embedded_model_path()),
                "--port",
                str(port),
                "--n_ctx",
                "512",
                "--n_threads",
                "2",
                "--model_alias",
                "smol-upstream",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not up:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_backend_streams_from_upstream(upstream: str) -> None:
    b = OpenAIUpstreamBackend(OpenAIUpstreamOptions(base_url=upstream))
    b.load()
    assert b.model_id == "smol-upstream"
    assert b.info()["parameter_count"] is None  # not ours to guess
    evs = list(
        b.stream([Message(role="user", content="Say hi.")], Params(max_tokens=8, temperature=0))
    )
    assert evs[-1].kind == "done" and evs[-1].finish_reason in ("stop", "length")
    assert "".join(e.text for e in evs[:-1]).strip()
    b.close()


def test_upstream_failing_inside_its_stream_is_an_error_not_an_empty_answer(upstream: str) -> None:
    # llama_cpp.server answers an over-long streaming prompt with 200 and an empty stream.
    b = OpenAIUpstreamBackend(OpenAIUpstreamOptions(base_url=upstream))
    with pytest.raises(BackendError) as err:
        list(b.stream([Message(role="user", content="word " * 2000)], Params()))
    assert "without [DONE]" in err.value.message and err.value.status == 502
    b.close()


def test_upstream_4xx_stays_a_4xx(start_server) -> None:
    # Another Charter (scripted backend, tiny context) is a strict upstream: it refuses
    # before streaming, with an OpenAI error body that must come through intact.
    other = start_server(env=fake_env(context_size=40), home=None)
    b = OpenAIUpstreamBackend(OpenAIUpstreamOptions(base_url=f"{other.url}/v1"))
    with pytest.raises(UpstreamError) as err:
        list(b.stream([Message(role="user", content="word " * 100)], Params()))
    assert err.value.status == 400 and err.value.code == "context_length_exceeded"
    assert "context is 40" in err.value.message
    b.close()


def test_unreachable_upstream_is_a_backend_error() -> None:
    b = OpenAIUpstreamBackend(
        OpenAIUpstreamOptions(base_url=f"http://127.0.0.1:{free_port()}/v1", timeout=2)
    )
    with pytest.raises(BackendError) as err:
        b.load()
    assert "unreachable" in err.value.message
    b.close()


def test_charter_serve_in_front_of_upstream(upstream: str, start_server, tmp_path: Path) -> None:
    srv = start_server(
        env={
            "CHARTER_BACKEND": "openai",
            "CHARTER_BACKEND_OPTIONS": json.dumps({"base_url": upstream}),
        }
    )
    client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="x", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["smol-upstream", "charter"]
    r = client.chat.completions.create(
        model="charter", max_tokens=8, temperature=0, messages=[{"role": "user", "content": "Hi"}]
    )
    assert r.choices[0].message.content
    generate = r.model_extra["charter"]["stages"][-1]
    assert (generate["stage"], generate["backend"]) == ("generate", "openai")
    chunks = list(
        client.chat.completions.create(
            model="charter",
            max_tokens=8,
            temperature=0,
            stream=True,
            messages=[{"role": "user", "content": "Hi"}],
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].model_extra["charter"]["conversation_id"]
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(
            model="charter", messages=[{"role": "user", "content": "word " * 2000}]
        )
    assert err.value.status_code == 502 and "upstream" in err.value.message
