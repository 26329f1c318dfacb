"""Answers about the assistant itself come from its model file, not from its imagination.

When a question is about the assistant (its size, model, architecture, hardware), the facts
Charter read from the running model's headers are given to the turn as a source: put in front
of the model as a system message, and listed under `charter.sources` in the trace.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from charter.types import Event, Message, Source, StageRecord, Turn

_ABOUT_YOU = re.compile(r"\b(you|your|yourself|u)\b", re.IGNORECASE)
_TOPIC = re.compile(
    r"\b(parameters?|params?|size|big|large|small|model|architecture|layers?|context|"
    r"tokens?|memory|ram|vram|gpu|cpu|hardware|run(ning)? on|quanti[sz]\w*|weights?|"
    r"trained|made|built|created|who are|what are|version|llm|neural)\b",
    re.IGNORECASE,
)


def is_about_self(text: str) -> bool:
    """True when `text` asks about the assistant itself (its model, size, hardware...)."""
    return bool(_ABOUT_YOU.search(text) and _TOPIC.search(text))


def _count(n: int) -> str:
    from charter.models import format_count

    return f"{n:,} ({format_count(n)})"


def model_facts(info: dict[str, Any]) -> Source:
    """The facts about the running model, as a source. Only what Charter measured or read:
    for a model behind an upstream server, its size is stated as unknown."""
    facts: list[str] = [f"You are the model {info['id']!r}."]
    path = info.get("path")
    if path:
        from charter.errors import ModelFileError
        from charter.models.inspect import inspect_model

        try:
            report = inspect_model(path)
        except ModelFileError:
            report = None
        if report is not None:
            a = report.arch
            facts.append(
                f"You have {_count(report.parameters)} parameters, counted exactly from the "
                f"tensors in your {report.format.upper()} file."
            )
            if report.active_parameters and report.active_parameters != report.parameters:
                facts.append(f"Per token, {_count(report.active_parameters)} are active.")
            shape = [
                f"{a.family} architecture" if a.family else None,
                f"{a.layers} layers" if a.layers else None,
                f"hidden size {a.hidden}" if a.hidden else None,
                f"{a.heads} attention heads" if a.heads else None,
                f"{a.kv_heads} key-value heads" if a.kv_heads else None,
                f"a vocabulary of {a.vocab:,} tokens" if a.vocab else None,
                f"a trained context of {a.context_length:,} tokens" if a.context_length else None,
            ]
            facts.append("You have " + ", ".join(s for s in shape if s) + ".")
            if report.stored_bytes:
                facts.append(
                    f"Your weights are stored as {report.file_type or 'mixed types'}: "
                    f"{report.stored_bytes / 1e6:.1f} MB, {report.bits_per_weight:.2f} bits "
                    "per weight."
                )
    elif info.get("backend") == "openai":
        facts.append(
            f"You run on an upstream server ({info.get('base_url')}); Charter does not know "
            "your parameter count or architecture."
        )
    if info.get("context_size"):
        facts.append(f"Charter runs you with a context window of {info['context_size']:,} tokens.")
    if info.get("backend") == "llamacpp":
        where = (
            f"with {info['n_gpu_layers']} layers offloaded to a GPU"
            if info.get("n_gpu_layers")
            else f"on this machine's CPU ({os.cpu_count()} cores)"
        )
        facts.append(f"You run in llama.cpp {where}, served by Charter.")
    facts.append(
        "When asked about yourself, answer only from these facts, cite them as [1], and say "
        "you do not know anything they do not state."
    )
    return Source(
        id="1",
        title="Facts about this model, read from its file by Charter (charter inspect)",
        text=" ".join(facts),
        origin="self",
    )


class SelfKnowledgeStage:
    """Gives the model the facts about itself when the question is about itself."""

    name = "self_knowledge"

    def __init__(self, facts: Callable[[], Source]):
        self.facts = facts

    def run(self, turn: Turn, inner: Iterator[Event]) -> Iterator[Event]:
        t0 = time.perf_counter()
        question = next((m.content for m in reversed(turn.messages) if m.role == "user"), "")
        matched = is_about_self(question)
        if matched:
            source = self.facts()
            turn.sources.append(source)
            preamble = f"Source [{source.id}] ({source.title}): {source.text}"
            msgs = turn.messages
            if msgs and msgs[0].role == "system":
                msgs = [
                    Message(role="system", content=f"{preamble}\n\n{msgs[0].content}"),
                    *msgs[1:],
                ]
            else:
                msgs = [Message(role="system", content=preamble), *msgs]
            turn.messages = msgs
        turn.stages.append(
            StageRecord(self.name, (time.perf_counter() - t0) * 1000, {"matched": matched})
        )
        yield from inner
