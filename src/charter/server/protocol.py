"""The OpenAI chat-completions protocol as Charter speaks it: request models and responses.

Requests are validated here, at the boundary. Charter's extension fields: `conversation_id`
lets a client keep the history server-side and send only the new messages; `charter` holds
per-request options (`{"retrieval": {"collection": "handbook", "k": 4}}`).
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from charter.errors import PayloadTooLargeError, RequestError
from charter.store.feedback import MAX_BETTER_CHARS, MAX_NOTE_CHARS, MAX_REVIEWER_CHARS
from charter.types import Message, Params, Turn


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def to_message(self) -> Message:
        text = (
            self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        )
        return Message(role="system" if self.role == "developer" else self.role, content=text)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class RetrievalOptionsIn(BaseModel):
    """`charter.retrieval`: answer from a document collection. `true`/`false` are accepted
    as `{"enabled": true}`/`{"enabled": false}`; naming a collection turns it on."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    collection: str | None = Field(default=None, min_length=1, max_length=200)
    k: int | None = Field(default=None, ge=1, le=20)


class CharterOptionsIn(BaseModel):
    """The `charter` object of a request: Charter's own per-request options."""

    model_config = ConfigDict(extra="forbid")
    retrieval: RetrievalOptionsIn | None = None
    #: The constitution's mode for this request: "screen", "critique" or "off" (off only
    #: where the server allows it).
    governance: str | None = Field(default=None, max_length=20)

    @field_validator("retrieval", mode="before")
    @classmethod
    def _flag(cls, v: Any) -> Any:
        return {"enabled": v} if isinstance(v, bool) else v


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    n: int = Field(default=1, ge=1, le=1, description="Only one choice is generated.")
    user: str | None = None
    #: Charter extension: append `messages` to this stored conversation.
    conversation_id: str | None = None
    #: Charter extension: per-request options (retrieval).
    charter: CharterOptionsIn | None = None

    def retrieval_options(self) -> dict[str, Any]:
        """Keyword arguments for `Runtime.retrieval_request` (empty: the settings decide)."""
        r = self.charter.retrieval if self.charter else None
        if r is None:
            return {}
        return {"collection": r.collection, "k": r.k, "enabled": r.enabled}

    def chat_messages(self) -> list[Message]:
        out = []
        for i, m in enumerate(self.messages):
            try:
                out.append(m.to_message())
            except ValidationError as exc:
                raise _validation_error(exc, prefix=f"messages.{i}") from None
        return out

    def params(self) -> Params:
        given = {
            "max_tokens": self.max_completion_tokens or self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": [self.stop] if isinstance(self.stop, str) else self.stop,
            "seed": self.seed,
            "logprobs": self.logprobs,
            "top_logprobs": self.top_logprobs,
            "presence_penalty": self.presence_penalty,
            "frequency_penalty": self.frequency_penalty,
        }
        try:
            return Params(**{k: v for k, v in given.items() if v is not None})
        except ValidationError as exc:
            raise _validation_error(exc) from None


class TitleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)


class NewConversationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(default="New chat", min_length=1, max_length=200)


class FeedbackIn(BaseModel):
    """A label on an answer: up or down, and optionally a better answer and a note."""

    model_config = ConfigDict(extra="forbid")
    rating: Literal["up", "down"]
    #: The reviewer's better answer (refused, never cut, over MAX_BETTER_CHARS).
    better: str | None = Field(default=None, max_length=MAX_BETTER_CHARS)
    #: Who labels; default: the API key's name, else "anonymous".
    reviewer: str | None = Field(default=None, max_length=MAX_REVIEWER_CHARS)
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)

    @field_validator("better")
    @classmethod
    def _better_has_text(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("the better answer is empty; leave it out to give only a rating")
        return v

    @field_validator("reviewer")
    @classmethod
    def _reviewer_is_a_name(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = v.strip()
        if not v:
            raise ValueError("the reviewer is empty; leave it out to use the default")
        if any(not ch.isprintable() for ch in v):
            raise ValueError("the reviewer must be printable text, without control characters")
        return v

    @field_validator("note")
    @classmethod
    def _blank_note_is_none(cls, v: str | None) -> str | None:
        return v if v is not None and v.strip() else None


async def read_json(request: Request, model: type[BaseModel], limit: int) -> Any:
    """Read, decode and validate a JSON body. Every failure is a RequestError (4xx)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body is {declared} bytes; the limit is {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLargeError(f"request body is over the limit of {limit} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(
            f"request body is not valid UTF-8 (bad byte at offset {exc.start})", code="invalid_utf8"
        ) from None
    if not text.strip():
        raise RequestError("request body is empty; send a JSON object", code="invalid_json")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise RequestError("request body must be a JSON object", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc) from None


def _validation_error(exc: ValidationError, prefix: str = "") -> RequestError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"] if p not in ("function-after",))
    if prefix and not loc.startswith(prefix):
        loc = f"{prefix}.{loc}" if loc else prefix
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unrecognized parameter (not supported by Charter)"
    elif err["type"] == "value_error":
        msg = msg.removeprefix("Value error, ")
    elif err["type"] == "literal_error" and loc.endswith("role"):
        msg = f"unknown role {err.get('input')!r}; expected system, developer, user or assistant"
    return RequestError(f"{loc}: {msg}" if loc else msg, param=loc or None, code="invalid_value")


# -- responses ---------------------------------------------------------------------------


def completion_id(turn: Turn) -> str:
    return f"chatcmpl-{turn.message_id or 'none'}"


def completion_response(turn: Turn, logprobs: list[dict] | None) -> dict[str, Any]:
    """The non-streaming `chat.completion` object, with Charter's `charter` object."""
    return {
        "id": completion_id(turn),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": turn.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": turn.answer},
                "logprobs": {"content": logprobs} if logprobs is not None else None,
                "finish_reason": turn.finish_reason,
            }
        ],
        "usage": turn.usage,
        "charter": turn.charter(),
    }


def chunk(
    turn: Turn,
    delta: dict[str, Any],
    *,
    finish_reason: str | None = None,
    logprobs: dict | None = None,
    final: bool = False,
) -> dict[str, Any]:
    """One `chat.completion.chunk`; the final one carries usage and the `charter` object."""
    out: dict[str, Any] = {
        "id": completion_id(turn),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": turn.model,
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "finish_reason": finish_reason,
                "logprobs": {"content": [logprobs]} if logprobs else None,
            }
        ],
    }
    if final:
        out["usage"] = turn.usage
        out["charter"] = turn.charter()
    return out


def replace_chunk(turn: Turn, text: str) -> dict[str, Any]:
    """The chunk that tells a client to swap the text it has for the governed answer.

    Its delta is empty, so a client that does not know the event keeps only text that passed
    the output screen; `charter.replace.content` is the whole governed answer, and the final
    chunk's `charter.trace` says why."""
    out = chunk(turn, {})
    fired = (turn.trace or {}).get("fired") or [{}]
    out["charter"] = {
        "replace": {"content": text, "principle": fired[0].get("principle")},
    }
    return out


def message_out(row: dict[str, Any], feedback: dict[str, Any] | None = None) -> dict[str, Any]:
    """A stored message as the conversations API returns it; answers carry `feedback`, the
    summary of their labels, when it is given."""
    out = {
        "id": row["id"],
        "role": row["role"],
        "content": row["content"],
        "status": row["status"],
        "finish_reason": row["finish_reason"],
        "error": row["error"],
        "created_at": int(row["created_at"]),
        "charter": json.loads(row["charter"]) if row["charter"] else None,
    }
    if feedback is not None and row["role"] == "assistant":
        out["feedback"] = feedback
    return out


def feedback_out(row: dict[str, Any]) -> dict[str, Any]:
    """One reviewer's label as the feedback API returns it."""
    return {
        "id": row["id"],
        "object": "feedback",
        "message_id": row["message_id"],
        "reviewer": row["reviewer"],
        "rating": row["rating"],
        "better": row["better"],
        "note": row["note"],
        "created_at": int(row["created_at"]),
        "updated_at": int(row["updated_at"]),
    }


def conversation_out(
    conv: dict[str, Any], feedback: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A conversation; `feedback` (message id -> label summary) adds one to each answer."""
    out = {
        "id": conv["id"],
        "object": "conversation",
        "title": conv["title"],
        "source": conv["source"],
        "created_at": int(conv["created_at"]),
        "updated_at": int(conv["updated_at"]),
        "message_count": conv.get("message_count", 0),
    }
    if "messages" in conv:
        out["messages"] = [
            message_out(m, None if feedback is None else feedback.get(m["id"]))
            for m in conv["messages"]
        ]
    return out
