"""Questions about the assistant itself are answered from its model file, as a cited source."""

from __future__ import annotations

import pytest

from charter.models import embedded_model_path
from charter.runtime import Runtime
from charter.self_knowledge import is_about_self, model_facts
from charter.types import Message


@pytest.mark.parametrize(
    "text",
    [
        "How many parameters do you have?",
        "What model are you?",
        "what hardware do you run on",
        "How big is your context window?",
        "Who made you?",
        "Are you quantized?",
    ],
)
def test_questions_about_the_assistant(text: str) -> None:
    assert is_about_self(text)


@pytest.mark.parametrize(
    "text",
    [
        "How many parameters does GPT-3 have?",
        "Explain the transformer architecture.",
        "Thank you!",
        "What is the capital of France?",
    ],
)
def test_other_questions(text: str) -> None:
    assert not is_about_self(text)


def test_facts_for_the_embedded_model_come_from_its_header() -> None:
    info = {
        "id": "SmolLM2-135M-Instruct.Q4_1",
        "backend": "llamacpp",
        "path": str(embedded_model_path()),
        "context_size": 4096,
        "n_gpu_layers": 0,
    }
    src = model_facts(info)
    assert src.origin == "self" and src.id == "1"
    for fact in (
        "134,515,008",
        "30 layers",
        "9 attention heads",
        "3 key-value heads",
        "49,152 tokens",
        "8,192 tokens",
        "Q4_1",
        "4,096 tokens",
        "CPU",
    ):
        assert fact in src.text, fact


def test_upstream_model_size_is_stated_as_unknown() -> None:
    src = model_facts(
        {
            "id": "big-one",
            "backend": "openai",
            "base_url": "http://gpu:8000/v1",
            "parameter_count": None,
            "context_size": None,
        }
    )
    assert "does not know your parameter count" in src.text
    assert "You have" not in src.text  # no size, no architecture: nothing guessed


def test_stage_gives_facts_only_to_questions_about_itself(fake_runtime: Runtime) -> None:
    rt = fake_runtime
    plain = rt.pipeline.run(rt.new_turn([Message(role="user", content="Tell me a joke")]))
    assert rt.backend.calls[-1][0].role == "user"
    assert "sources" not in plain.charter()
    stage = next(s for s in plain.charter()["stages"] if s["stage"] == "self_knowledge")
    assert stage["matched"] is False

    turn = rt.new_turn(
        [
            Message(role="system", content="Be brief."),
            Message(role="user", content="How many parameters do you have?"),
        ]
    )
    rt.pipeline.run(turn)
    sent = rt.backend.calls[-1]
    assert sent[0].role == "system"
    assert sent[0].content.startswith("Source [1]") and sent[0].content.endswith("Be brief.")
    charter = turn.charter()
    assert charter["sources"][0]["origin"] == "self"
    assert "'fake'" in charter["sources"][0]["text"]
    # The injected facts are context, not part of the stored conversation.
    stored = rt.store.get_conversation(turn.conversation_id)["messages"]
    assert [m["role"] for m in stored] == ["system", "user", "assistant"]
    assert stored[0]["content"] == "Be brief."


@pytest.mark.slow
def test_real_model_answers_its_size_from_the_facts(real_server) -> None:
    import httpx

    r = httpx.post(
        f"{real_server.url}/v1/chat/completions",
        timeout=300,  # a loaded 2-core box can stall the real model for a minute
        json={
            "model": "charter",
            "temperature": 0,
            "max_tokens": 40,
            "messages": [{"role": "user", "content": "How many parameters do you have?"}],
        },
    )
    body = r.json()
    assert "134" in body["choices"][0]["message"]["content"]
    assert "134,515,008" in body["charter"]["sources"][0]["text"]
