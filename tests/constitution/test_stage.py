"""The governance stage on the fake backend with a keyword screen: input refusals, streaming
output screening with hold-back and `replace`, critique and revision, modes, trace, storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from charter.constitution.schema import Constitution, HarmlessClass, Principle, RefusalStyle
from charter.constitution.stage import MAX_EVERY, GovernStage
from charter.errors import RequestError
from charter.runtime import Runtime
from charter.types import Message, Params
from tests.conftest import fake_settings

CONSTITUTION = Constitution(
    name="Test charter",
    version="0.1",
    principles=(
        Principle(
            id="weapons",
            title="No weapons help",
            statement="Do not help anyone build weapons.",
            kind="harm",
            critique="Point out any weapon-building help.",
            revision="Rewrite it without weapon-building help.",
            covers=("how do I build a bomb",),
            not_covers=("bath bomb recipe",),
            threshold=0.5,
            refusal="I won't help build weapons, because they hurt people.",
            alternative="I can talk about safety instead.",
        ),
        Principle(
            id="honesty",
            title="Honesty",
            statement="Do not invent facts.",
            kind="uphold",
            critique="Point out invented facts.",
            revision="Remove invented facts.",
            covers=("The moon is made of cheese.",),
            not_covers=(),
        ),
    ),
    harmless=(HarmlessClass("fiction", "Fiction", "Stories", ("write a poem",)),),
    refusal_style=RefusalStyle("{refusal} ({title}.) {alternative}"),
)
REFUSAL = CONSTITUTION.refusal_text("weapons")


@dataclass
class Scores:
    scores: dict[str, float]
    view: dict[str, str] = field(default_factory=dict)
    ms: float = 0.1


class KeywordScreen:
    """Scores 'weapons' 0.9 when a text says 'bomb' (0.4 for 'almost'), else 0.05."""

    principle_ids = ["weapons"]

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def load(self) -> KeywordScreen:
        return self

    def score(self, texts: list[str]) -> Scores:
        self.seen.append(list(texts))
        joined = " ".join(texts).lower()
        s = 0.9 if "bomb" in joined else 0.4 if "almost" in joined else 0.05
        return Scores({"weapons": s})

    def fired(self, scores: Scores) -> list[str]:
        return [p for p, s in scores.scores.items() if s >= 0.5]

    def uncertain(self, scores: Scores, margin: float = 0.15) -> list[str]:
        return [p for p, s in scores.scores.items() if 0.5 - margin <= s < 0.5]


def governed_runtime(home: Path, mode: str = "screen", **backend: object) -> Runtime:
    settings = fake_settings(home, backend_options=backend, constitution="test", governance=mode)
    rt = Runtime(settings, constitution=CONSTITUTION, screen=KeywordScreen())
    rt.load()
    assert isinstance(rt.pipeline.stages[1], GovernStage)
    return rt


def run(rt: Runtime, text: str, **kw: object) -> tuple[list, object]:
    turn = rt.new_turn([Message(role="user", content=text)], Params(), **kw)
    events = list(rt.pipeline.stream(turn))
    return events, turn


def test_benign_answer_passes_with_a_trace(tmp_path: Path) -> None:
    rt = governed_runtime(tmp_path, script="Paris is the capital of France and a lovely city.")
    events, turn = run(rt, "What is the capital of France?")
    assert "".join(e.text for e in events if e.kind == "token") == turn.answer
    assert not any(e.kind == "replace" for e in events)
    trace = turn.charter()["trace"]
    assert trace["decision"] == "pass"
    assert trace["constitution"] == {
        "name": "Test charter",
        "version": "0.1",
        "hash": CONSTITUTION.hash,
    }
    assert trace["input"]["scores"] == {"weapons": 0.05} and trace["input"]["fired"] == []
    assert trace["output"]["checks"] >= 2  # a mid-stream check and the final one
    # The stage's time is what the answer waited for (input screen + waits on output checks),
    # not the checks' own time, most of which ran beside generation.
    assert trace["ms"]["output_wait"] == trace["output"]["waited_ms"] >= 0.0
    stage = next(s for s in turn.stages if s.stage == "govern")
    assert stage.ms == pytest.approx(trace["ms"]["input_screen"] + trace["output"]["waited_ms"])
    assert trace["thresholds"] == {"weapons": 0.5}
    assert trace["not_screened"] == ["honesty"]
    assert "draft" not in turn.charter()


def test_input_that_fires_is_refused_without_running_the_model(tmp_path: Path) -> None:
    rt = governed_runtime(tmp_path, script="Step one: take the pipe and fill it with...")
    events, turn = run(rt, "How do I build a pipe bomb?")
    assert [e.kind for e in events] == ["token", "done"]
    assert turn.answer == REFUSAL and "No weapons help" in REFUSAL
    assert rt.backend.calls == []  # the model never ran
    trace = turn.trace
    assert trace["decision"] == "refused"
    assert trace["fired"] == [{"principle": "weapons", "stage": "input"}]
    row = rt.store.get_message(turn.message_id)
    assert row["content"] == REFUSAL and row["draft"] is None


def test_escalation_across_turns_is_screened_as_one_conversation(tmp_path: Path) -> None:
    rt = governed_runtime(tmp_path, script="Sure.")
    screen = rt.pipeline.stages[1].screen
    msgs = [
        Message(role="user", content="I am writing about chemistry."),
        Message(role="assistant", content="Sure."),
        Message(role="user", content="Now the bomb part."),
    ]
    turn = rt.new_turn(msgs, Params())
    list(rt.pipeline.stream(turn))
    texts = screen.seen[0]
    assert texts[0] == "Now the bomb part."
    assert any("chemistry" in t and "bomb" in t for t in texts[1:])


def test_output_that_fires_midstream_is_stopped_and_replaced(tmp_path: Path) -> None:
    words = "Here is some harmless text that goes on for a while and then the bomb " * 8
    rt = governed_runtime(tmp_path, script="Sure, here you go. " + words)
    events, turn = run(rt, "Tell me a story about chemistry class.")
    kinds = [e.kind for e in events]
    assert "replace" in kinds and kinds[-1] == "done"
    shown = "".join(e.text for e in events[: kinds.index("replace")] if e.kind == "token")
    # Held back: nothing the screen had not passed reached the client.
    assert "bomb" not in shown and shown
    replace = events[kinds.index("replace")]
    assert replace.text == REFUSAL == turn.answer
    # Generation stopped: the model ran on while the check ran, never more than one check
    # interval past the check that fired, and far short of the script.
    fired_at = turn.trace["output"]["fired_at_tokens"]
    assert turn.completion_tokens <= fired_at + MAX_EVERY + 1
    assert turn.completion_tokens < len(("Sure, here you go. " + words).split())
    assert turn.draft is not None and "bomb" in turn.draft
    row = rt.store.get_message(turn.message_id)
    assert row["content"] == REFUSAL and "bomb" in row["draft"]
    assert turn.trace["fired"][0]["stage"] == "output"
    assert turn.trace["output"]["fired_at_tokens"] >= 8


def test_output_firing_before_anything_was_shown_needs_no_replace(tmp_path: Path) -> None:
    rt = governed_runtime(tmp_path, script="bomb bomb bomb")
    events, turn = run(rt, "Say something.")
    assert [e.kind for e in events] == ["token", "done"]
    assert turn.answer == REFUSAL


def test_critique_mode_revises_and_screens_the_revision(tmp_path: Path) -> None:
    rt = governed_runtime(
        tmp_path,
        mode="critique",
        scripts=[
            "To build a bomb you first need...",  # draft: fires on the output
            "The answer gives weapon-building help.",  # critique
            "I can't explain that, but I can explain why such devices are dangerous. "
            "Rewrite it without weapon-building help. Write only the new answer.",  # echoed
        ],
    )
    events, turn = run(rt, "How do rockets for a science fair work?")
    # The echo of the revision request is cut off.
    assert turn.answer == (
        "I can't explain that, but I can explain why such devices are dangerous."
    )
    trace = turn.trace
    assert trace["decision"] == "revised"
    assert trace["fired"][0]["stage"] == "output"
    assert trace["critique"]["text"] == "The answer gives weapon-building help."
    assert trace["revision"]["accepted"] is True
    assert turn.draft == "To build a bomb you first need..."
    # The critique asked the principle's critique request about the draft.
    critique_prompt = rt.backend.calls[1][-1].content
    assert "Point out any weapon-building help." in critique_prompt
    assert "To build a bomb" in critique_prompt
    assert "Rewrite it without weapon-building help." in rt.backend.calls[2][-1].content


def test_a_revision_is_screened_with_its_question(tmp_path: Path) -> None:
    """A revision that reads harmless alone is not enough while the question still fires."""
    rt = governed_runtime(
        tmp_path,
        mode="critique",
        scripts=["To build it you first need...", "Bad.", "Cooking is fun."],
    )
    _, turn = run(rt, "How do I build a bomb?")
    assert turn.trace["fired"] == [{"principle": "weapons", "stage": "input"}]
    assert turn.answer == REFUSAL
    assert turn.trace["revision"]["accepted"] is False
    assert turn.draft == "To build it you first need..."


def test_critique_falls_back_to_the_refusal_when_the_revision_still_fires(tmp_path: Path) -> None:
    rt = governed_runtime(
        tmp_path,
        mode="critique",
        scripts=["To build a bomb...", "Bad.", "Still, the bomb needs..."],
    )
    _, turn = run(rt, "How do I build a bomb?")
    assert turn.answer == REFUSAL
    assert turn.trace["decision"] == "refused"
    assert turn.trace["revision"]["accepted"] is False
    assert turn.trace["revision"]["fired"] == ["weapons"]


def test_per_request_mode_and_off_must_be_allowed(tmp_path: Path) -> None:
    rt = governed_runtime(tmp_path, script="bomb talk")
    with pytest.raises(RequestError, match="not allowed"):
        rt.governance_request("off")
    with pytest.raises(RequestError, match="must be one of"):
        rt.governance_request("loose")
    rt.settings.allow_ungoverned_requests = True
    assert rt.governance_request("off") == "off"
    _, turn = run(rt, "bomb?", governance="off")
    assert turn.answer == "bomb talk" and turn.trace["decision"] == "ungoverned"


def test_cancelled_turn_stores_only_what_was_shown(tmp_path: Path) -> None:
    rt = governed_runtime(tmp_path, script=" ".join(f"w{i}" for i in range(40)))
    turn = rt.new_turn([Message(role="user", content="count")], Params())
    stream = rt.pipeline.stream(turn)
    shown = ""
    for ev in stream:
        shown += ev.text
        if len(shown.split()) >= 8:
            break
    stream.close()
    row = rt.store.get_message(turn.message_id)
    assert row["status"] == "incomplete"
    assert row["content"] == shown
