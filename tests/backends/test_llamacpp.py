"""The llama.cpp backend on the real embedded model, and its text assembly on crafted bytes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from charter.backends.llamacpp import LlamaCppBackend, LlamaCppOptions
from charter.backends.text import TextAssembler
from charter.errors import ContextOverflowError, ModelFileError
from charter.types import Message, Params


def test_text_assembler_holds_partial_utf8_and_stop_prefixes() -> None:
    t = TextAssembler(["STOP"])
    euro = "€".encode()
    assert t.push(euro[:2]) == ("", False)  # half a character: nothing yet
    assert t.push(euro[2:] + b" ok S") == ("€ ok ", False)  # "S" may start STOP
    assert t.push(b"T") == ("", False)
    assert t.push(b"ONE") == ("STONE", False)  # it was not a stop after all
    assert t.push(b" then STOP and more") == (" then ", True)


def test_text_assembler_flush_returns_held_text() -> None:
    t = TextAssembler(["<|end|>"])
    assert t.push(b"a <|e") == ("a ", False)
    assert t.flush() == "<|e"


@pytest.fixture(scope="module")
def backend() -> LlamaCppBackend:
    b = LlamaCppBackend(LlamaCppOptions(n_ctx=256, n_threads=2))
    b.load()
    yield b
    b.close()


def ask(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


@pytest.mark.slow
def test_streams_tokens_then_done_with_exact_usage(backend: LlamaCppBackend) -> None:
    events = list(backend.stream(ask("Name three fruits."), Params(max_tokens=12, temperature=0)))
    assert events[-1].kind == "done" and all(e.kind == "token" for e in events[:-1])
    usage = events[-1].usage
    prompt, _ = backend.encode(ask("Name three fruits."))
    assert usage["prompt_tokens"] == len(prompt)
    assert 1 <= usage["completion_tokens"] <= 12
    if events[-1].finish_reason == "length":
        assert usage["completion_tokens"] == 12
    text = "".join(e.text for e in events[:-1])
    assert text.strip()


@pytest.mark.slow
def test_greedy_is_deterministic_and_seed_repeats(backend: LlamaCppBackend) -> None:
    def run(**kw: object) -> str:
        evs = backend.stream(ask("Tell me about owls."), Params(max_tokens=15, **kw))
        return "".join(e.text for e in evs if e.kind == "token")

    assert run(temperature=0) == run(temperature=0)
    assert run(temperature=1.0, seed=42) == run(temperature=1.0, seed=42)


@pytest.mark.slow
def test_context_overflow_is_refused_with_both_numbers(backend: LlamaCppBackend) -> None:
    with pytest.raises(ContextOverflowError) as err:
        next(backend.stream(ask("apple " * 400), Params()))
    assert err.value.context_size == 256 and err.value.prompt_tokens > 256
    with pytest.raises(ContextOverflowError):
        next(backend.stream(ask("hi"), Params(max_tokens=250)))


@pytest.mark.slow
def test_logprobs_are_a_distribution(backend: LlamaCppBackend) -> None:
    evs = [
        e
        for e in backend.stream(
            ask("Say hello."), Params(max_tokens=4, temperature=0, logprobs=True, top_logprobs=5)
        )
        if e.kind == "token"
    ]
    assert evs
    for e in evs:
        lp = e.logprobs
        assert lp is not None and lp["logprob"] <= 0
        tops = [t["logprob"] for t in lp["top_logprobs"]]
        assert len(tops) == 5 and tops == sorted(tops, reverse=True)
        # Greedy: the chosen token is the most likely one.
        assert lp["logprob"] == pytest.approx(tops[0], abs=1e-5)
        # Entropy of a distribution over 49,152 tokens: between 0 and ln(49152).
        assert 0.0 <= lp["entropy"] <= math.log(49152)


@pytest.mark.slow
def test_closing_the_stream_leaves_the_model_usable(backend: LlamaCppBackend) -> None:
    stream = backend.stream(ask("Write a long story."), Params(max_tokens=100))
    next(stream)
    stream.close()
    evs = list(backend.stream(ask("Hi"), Params(max_tokens=3, temperature=0)))
    assert evs[-1].kind == "done"


def test_missing_and_corrupt_model_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as err:
        LlamaCppBackend(LlamaCppOptions(model_path=tmp_path / "none.gguf")).load()
    assert "none.gguf" in str(err.value) and "\n" not in str(err.value)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 20)
    with pytest.raises(ModelFileError) as err:
        LlamaCppBackend(LlamaCppOptions(model_path=bad)).load()
    assert "bad.gguf" in str(err.value) and "\n" not in str(err.value)
