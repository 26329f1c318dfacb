"""The turn: one line of stages that every entry point drives (CLI, server, later evals).

Stages nest like middleware, listed outer to inner: each does its before-work, pulls events
from the stages inside it (passing on or transforming them), then does its after-work.
`generate` is innermost. So the drawn line

    store(commit user message) -> [screen input -> retrieve ->] generate
        -> [screen output -> critique ->] store(commit answer + trace)

is the list `[StoreStage, ..., GenerateStage]`. A switched-off stage is simply not in the
list. Everything is lazy: closing the event stream (client gone, Ctrl-C) closes every stage
from the outside in, so generation stops and the store marks the answer incomplete.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Protocol

from charter.backends.base import Backend
from charter.errors import RateLimitError, RequestError
from charter.store import Store
from charter.types import Event, Message, StageRecord, Turn

#: How often a streaming answer is written to the store, so a crash loses at most this much.
CHECKPOINT_SECONDS = 0.5


class Cancelled(Exception):
    """The turn's client went away while it was waiting for the model."""


class Stage(Protocol):
    name: str

    def run(self, turn: Turn, inner: Iterator[Event]) -> Iterator[Event]:
        """Do before-work, pass on (or transform) `inner`'s events, do after-work."""
        ...


class Scheduler:
    """Fair FIFO access to a backend that serves `capacity` streams at once.

    Waiters are served strictly in arrival order. More than `limit` waiting requests get a
    RateLimitError (429) with a Retry-After estimated from recent turn durations.
    """

    def __init__(self, capacity: int, limit: int):
        self.capacity = capacity
        self.limit = limit
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self._active = 0
        self._avg_seconds = 2.0

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def active(self) -> int:
        return self._active

    @contextmanager
    def slot(self, cancelled: threading.Event | None = None) -> Iterator[None]:
        ticket = object()
        with self._cond:
            if len(self._queue) >= self.limit and self._active >= self.capacity:
                retry = max(1.0, self._avg_seconds * (len(self._queue) + 1) / self.capacity)
                raise RateLimitError(
                    f"the model's queue is full ({len(self._queue)} requests waiting); retry later",
                    retry_after=round(retry),
                    code="queue_full",
                )
            self._queue.append(ticket)
            try:
                while self._queue[0] is not ticket or self._active >= self.capacity:
                    if cancelled is not None and cancelled.is_set():
                        raise Cancelled()
                    self._cond.wait(timeout=0.1)
            except BaseException:
                self._queue.remove(ticket)
                self._cond.notify_all()
                raise
            self._queue.popleft()
            self._active += 1
            self._cond.notify_all()
        started = time.perf_counter()
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._avg_seconds = 0.8 * self._avg_seconds + 0.2 * (time.perf_counter() - started)
                self._cond.notify_all()


class GenerateStage:
    """Waits for the model (FIFO), then streams the backend's answer into the turn."""

    name = "generate"

    def __init__(self, backend: Backend, scheduler: Scheduler, default_max_tokens: int):
        self.backend = backend
        self.scheduler = scheduler
        self.default_max_tokens = default_max_tokens

    def run(self, turn: Turn, inner: Iterator[Event]) -> Iterator[Event]:
        yield from inner
        params = turn.params
        if params.max_tokens is None and params.default_max_tokens is None:
            params = params.model_copy(update={"default_max_tokens": self.default_max_tokens})
        with self.scheduler.slot(turn.cancelled):
            turn.t_dequeued = time.perf_counter()
            record = StageRecord(self.name, 0.0, {"backend": self.backend.name})
            turn.stages.append(record)
            with closing(self.backend.stream(turn.messages, params)) as stream:
                for ev in stream:
                    if ev.kind == "token":
                        if turn.t_first_token is None:
                            turn.t_first_token = time.perf_counter()
                        turn.completion_tokens += 1
                        if ev.logprobs is not None:
                            turn.token_logprobs.append((len(turn.answer), ev.text, ev.logprobs))
                        turn.answer += ev.text
                    else:
                        turn.finish_reason = ev.finish_reason
                        turn.usage = ev.usage or {}
                    record.ms = (time.perf_counter() - turn.t_dequeued) * 1000
                    yield ev
                    if turn.cancelled.is_set():
                        turn.finish_reason = "cancelled"
                        return


class StoreStage:
    """Commits the user's message before generation and the answer (with its trace) after.

    While the answer streams it is checkpointed, so a crash leaves it stored and marked
    incomplete (startup recovery flips 'generating' to 'incomplete'). A request rejected
    before any token (bad input, queue full) leaves nothing behind: the client still has it.
    """

    name = "store"

    def __init__(self, store: Store):
        self.store = store

    def run(self, turn: Turn, inner: Iterator[Event]) -> Iterator[Event]:
        t0 = time.perf_counter()
        created_conversation = None
        if turn.conversation_id is None:
            first_user = next((m.content for m in turn.messages if m.role == "user"), "")
            created_conversation = self.store.create_conversation(
                _title(first_user), source=turn.source
            )["id"]
            turn.conversation_id = created_conversation
            history: list[Message] = []
        else:
            conv = self.store.get_conversation(turn.conversation_id)
            history = [
                Message(role=m["role"], content=m["content"])
                for m in conv["messages"]
                if m["content"] or m["role"] != "assistant"
            ]
        new = turn.messages
        turn.messages = history + new
        ids = self.store.add_messages(
            turn.conversation_id,
            [m.model_dump() for m in new]
            + [{"role": "assistant", "content": "", "status": "generating"}],
        )
        turn.user_message_id = ids[-2] if len(ids) > 1 else None
        turn.message_id = ids[-1]
        before_ms = (time.perf_counter() - t0) * 1000

        got_token = False
        last_checkpoint = time.monotonic()
        # What the client has been sent: checkpoints store this, never text that a stage
        # inside (the constitution's output screen) still holds back.
        shown = ""
        try:
            for ev in inner:
                if ev.kind == "done":
                    record = StageRecord(self.name, before_ms)
                    turn.stages.insert(0, record)
                    t1 = time.perf_counter()
                    self._save(turn, "complete")
                    record.ms += (time.perf_counter() - t1) * 1000
                    yield ev
                    continue
                got_token = True
                shown = ev.text if ev.kind == "replace" else shown + ev.text
                if time.monotonic() - last_checkpoint > CHECKPOINT_SECONDS:
                    self.store.update_message(turn.message_id, content=shown)
                    last_checkpoint = time.monotonic()
                yield ev
            if turn.finish_reason == "cancelled":
                self._save(turn, "incomplete", content=shown)
        except (RequestError, Cancelled) as exc:
            if not got_token:
                self._forget(turn, ids, created_conversation)
                raise
            self._save(turn, "incomplete", error=str(exc), content=shown)
            raise
        except GeneratorExit:
            turn.finish_reason = "cancelled"
            self._save(turn, "incomplete", content=shown)
            raise
        except BaseException as exc:
            self._save(turn, "incomplete", error=str(exc) or type(exc).__name__, content=shown)
            raise

    def _save(
        self, turn: Turn, status: str, error: str | None = None, content: str | None = None
    ) -> None:
        """Store the answer: the whole (governed) answer when complete, else `content`, what
        the client was shown."""
        turn.t_end = time.perf_counter()
        self.store.update_message(
            turn.message_id,
            content=turn.answer if content is None else content,
            status=status,
            finish_reason=turn.finish_reason,
            error=error,
            charter=json.dumps(turn.charter()),
            draft=turn.draft,
        )

    def _forget(self, turn: Turn, ids: list[str], created_conversation: str | None) -> None:
        if created_conversation is not None:
            self.store.delete_conversation(created_conversation)
            turn.conversation_id = None
        else:
            self.store.delete_messages(ids)
        turn.message_id = None


class Pipeline:
    """The ordered stages (outer to inner) that turn a request into an answer."""

    def __init__(self, stages: list[Stage]):
        self.stages = stages

    def stream(self, turn: Turn) -> Iterator[Event]:
        """Run the turn; yields token events then one `done`. Close it to cancel."""
        events: Iterator[Event] = iter(())
        chain = []
        for stage in reversed(self.stages):
            events = stage.run(turn, events)
            chain.append(events)
        try:
            yield from events
        finally:
            # Outermost first, so each stage sees its inner stream closed after itself.
            for gen in reversed(chain):
                close = getattr(gen, "close", None)
                if close is not None:
                    close()

    def run(self, turn: Turn, on_token: Callable[[Event], None] | None = None) -> Turn:
        """Run the turn to the end (calling `on_token` with token and replace events)."""
        for ev in self.stream(turn):
            if on_token is not None and ev.kind in ("token", "replace"):
                on_token(ev)
        return turn


def _title(text: str, limit: int = 60) -> str:
    line = " ".join(text.split())
    if not line:
        return "New chat"
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
