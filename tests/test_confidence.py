"""The confidence summary in the trace, computed from per-token log-probabilities."""

from __future__ import annotations

import math

from charter.confidence import summarize
from charter.runtime import Runtime
from charter.types import Message, Params


def entry(p: float, entropy: float = 0.5) -> dict:
    return {"logprob": math.log(p), "entropy": entropy}


def test_nothing_to_summarise() -> None:
    assert summarize([]) is None


def test_mean_min_and_weak_spans_weakest_first() -> None:
    tokens = [
        (0, "The", entry(0.9)),
        (3, " cat", entry(0.2, 2.0)),
        (7, " sat", entry(0.4)),
        (11, " on", entry(0.95)),
        (14, " Zorb", entry(0.05, 3.0)),
        (19, ".", entry(0.99)),
    ]
    s = summarize(tokens)
    assert s is not None
    assert s["tokens"] == 6
    assert s["mean_prob"] == round((0.9 + 0.2 + 0.4 + 0.95 + 0.05 + 0.99) / 6, 4)
    assert s["min_prob"] == 0.05
    assert s["mean_entropy"] == round((0.5 * 4 + 2.0 + 3.0) / 6, 4)
    assert s["least_certain"] == [
        {"text": " Zorb", "offset": 14, "min_prob": 0.05},
        {"text": " cat sat", "offset": 3, "min_prob": 0.2},
    ]


def test_confident_answer_still_names_its_weakest_token() -> None:
    s = summarize([(0, "Yes", entry(0.97)), (3, ".", entry(0.8))])
    assert s is not None
    assert s["least_certain"] == [{"text": ".", "offset": 3, "min_prob": 0.8}]


def test_trace_carries_confidence_only_when_logprobs_were_asked(fake_runtime: Runtime) -> None:
    msgs = [Message(role="user", content="hi")]
    plain = fake_runtime.pipeline.run(fake_runtime.new_turn(msgs))
    assert "confidence" not in plain.charter()
    turn = fake_runtime.pipeline.run(
        fake_runtime.new_turn(msgs, Params(logprobs=True, top_logprobs=2))
    )
    conf = turn.charter()["confidence"]
    assert conf["tokens"] == 3
    # the scripted backend makes every third word a guess (p = e^-1.6)
    assert conf["least_certain"][0] == {
        "text": " friend.",
        "offset": 12,
        "min_prob": round(math.exp(-1.6), 4),
    }
    stored = fake_runtime.store.get_conversation(turn.conversation_id)["messages"][-1]
    assert '"confidence"' in stored["charter"]
