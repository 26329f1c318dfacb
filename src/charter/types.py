"""The few value types every part of Charter speaks: messages, sampling params, events, turns.

A `Turn` is the one object the pipeline's stages read and write; `Event`s are what a turn
emits to its client while it runs (tokens now; citations, replacements and traces later).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str

    @field_validator("content")
    @classmethod
    def _encodable(cls, v: str) -> str:
        # JSON may smuggle in lone surrogates ("\ud800"): valid JSON, not valid UTF-8 text.
        try:
            v.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"text is not valid Unicode (unpaired surrogate at {exc.start})"
            ) from None
        return v


class Params(BaseModel):
    """Sampling parameters, validated once at the boundary and passed to every backend."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list, max_length=8)
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = Field(default=0, ge=0, le=20)
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    #: Used when max_tokens is None: an answer-length cap bounded by the context left,
    #: never an error (unlike an explicit max_tokens that cannot fit).
    default_max_tokens: int | None = Field(default=None, ge=1)

    def token_limit(self, context_left: int) -> int:
        """How many tokens to generate at most, given the context left after the prompt."""
        if self.max_tokens is not None:
            return min(self.max_tokens, context_left)
        return min(self.default_max_tokens or context_left, context_left)


EventKind = Literal["token", "replace", "done"]


@dataclass(slots=True)
class Event:
    """One thing a turn emits.

    kind="token": `text` is the next piece of the answer; `logprobs` is the OpenAI-style
    `{"token", "logprob", "bytes", "top_logprobs"}` entry when the caller asked for it.
    kind="replace": `text` is the whole governed answer; it replaces every token text sent
    so far (the constitution stopped the answer and replaced it: a refusal or a revision).
    kind="done": `finish_reason` is "stop", "length" or "cancelled"; `usage` holds token counts.
    """

    kind: EventKind
    text: str = ""
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None
    usage: dict[str, int] | None = None


@dataclass(frozen=True)
class Source:
    """Something the answer may draw on and cite: facts about the model, a document passage.

    For a passage, `doc_id` is the file path or corpus id, `start`/`end` the character span of
    `text` in the document's extracted text, `page` its PDF page and `score` its retrieval
    score (the dense cosine similarity to the question, when dense search found it).
    """

    id: str
    title: str
    text: str
    #: Where it came from: "self" (the model's own file) or "retrieval" (a document passage).
    origin: str
    doc_id: str | None = None
    page: int | None = None
    start: int | None = None
    end: int | None = None
    score: float | None = None
    chunk_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "text": self.text,
            "origin": self.origin,
        }
        if self.origin != "self":
            out.update(
                doc_id=self.doc_id,
                page=self.page,
                start=self.start,
                end=self.end,
                score=self.score,
                chunk_id=self.chunk_id,
            )
        return out


@dataclass(frozen=True)
class RetrievalRequest:
    """A turn's resolved retrieval options: search `collection` for the best `k` passages."""

    collection: str
    k: int


@dataclass
class StageRecord:
    """What one stage of a turn cost (and, in later stages, what it saw and decided)."""

    stage: str
    ms: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Turn:
    """One request/answer exchange as it flows through the pipeline."""

    messages: list[Message]
    params: Params
    conversation_id: str | None = None
    source: str = "api"
    # Filled in by stages:
    user_message_id: str | None = None
    message_id: str | None = None
    answer: str = ""
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    model: str = ""
    parameter_count: int | None = None
    stages: list[StageRecord] = field(default_factory=list)
    # perf_counter() marks, turned into the timings object by `timings()`.
    t_start: float = field(default_factory=time.perf_counter)
    t_dequeued: float | None = None
    t_first_token: float | None = None
    t_end: float | None = None
    completion_tokens: int = 0
    sources: list[Source] = field(default_factory=list)
    #: Set when the turn answers from documents (API `charter.retrieval`, CLI --collection).
    retrieval: RetrievalRequest | None = None
    #: The cited sources, in the order first cited (set by the retrieval stage after the answer).
    citations: list[dict[str, Any]] = field(default_factory=list)
    #: The answer after citation checks; differs from the streamed text when a mark was removed.
    final_text: str | None = None
    #: (char offset, text, logprobs entry) per emitted token, when logprobs were asked for.
    token_logprobs: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    #: The governance mode the request asked for (None: the server's setting).
    governance: str | None = None
    #: What the constitution saw and decided (the governance stage); `charter.trace`.
    trace: dict[str, Any] | None = None
    #: The model's original draft when the constitution replaced the answer (operators only:
    #: stored, never sent to the client).
    draft: str | None = None
    #: Set by whoever drives the turn when its client goes away; stages stop soon after.
    cancelled: threading.Event = field(default_factory=threading.Event)

    def timings(self) -> dict[str, float | None]:
        """Milliseconds from the turn's start: queued, time to first token, total; and tok/s."""

        def ms(t: float | None) -> float | None:
            return None if t is None else round((t - self.t_start) * 1000, 1)

        end = self.t_end or time.perf_counter()
        tps = None
        if self.t_first_token is not None and self.completion_tokens > 1:
            decode_s = end - self.t_first_token
            if decode_s > 0:
                tps = round((self.completion_tokens - 1) / decode_s, 1)
        return {
            "queued_ms": ms(self.t_dequeued) if self.t_dequeued else 0.0,
            "ttft_ms": ms(self.t_first_token),
            "total_ms": ms(end),
            "tokens_per_second": tps,
        }

    def charter(self) -> dict[str, Any]:
        """The `charter` object every response carries."""
        from charter.confidence import summarize

        out = {
            "message_id": self.message_id,
            "conversation_id": self.conversation_id,
            "model": self.model,
            "parameter_count": self.parameter_count,
            "finish_reason": self.finish_reason,
            "timings": self.timings(),
            "stages": [{"stage": s.stage, "ms": round(s.ms, 1), **s.detail} for s in self.stages],
        }
        if self.sources:
            out["sources"] = [s.to_dict() for s in self.sources]
        if self.retrieval is not None:
            out["citations"] = self.citations
            if self.final_text is not None:
                out["final_text"] = self.final_text
        if self.trace is not None:
            out["trace"] = self.trace
        confidence = summarize(self.token_logprobs)
        if confidence is not None:
            out["confidence"] = confidence
        return out
