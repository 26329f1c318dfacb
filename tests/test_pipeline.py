"""The turn pipeline on the scripted backend: storage, history, cancellation, queueing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from charter.errors import ContextOverflowError, NotFoundError, RateLimitError
from charter.pipeline import Cancelled, Scheduler
from charter.runtime import Runtime
from charter.types import Message, Params
from tests.conftest import fake_settings


def user(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


def test_turn_streams_answer_and_stores_both_messages(fake_runtime: Runtime) -> None:
    turn = fake_runtime.new_turn(user("Hi"))
    tokens = [ev.text for ev in fake_runtime.pipeline.stream(turn) if ev.kind == "token"]
    assert "".join(tokens) == "Hello there, friend."
    assert turn.finish_reason == "stop"
    conv = fake_runtime.store.get_conversation(turn.conversation_id)
    assert [(m["role"], m["content"], m["status"]) for m in conv["messages"]] == [
        ("user", "Hi", "complete"),
        ("assistant", "Hello there, friend.", "complete"),
    ]
    charter = turn.charter()
    assert charter["message_id"] == conv["messages"][1]["id"]
    assert [s["stage"] for s in charter["stages"]] == ["store", "self_knowledge", "generate"]
    assert charter["timings"]["ttft_ms"] is not None
    assert conv["title"] == "Hi"


def test_conversation_history_is_sent_to_the_model(fake_runtime: Runtime) -> None:
    first = fake_runtime.pipeline.run(fake_runtime.new_turn(user("one")))
    second = fake_runtime.new_turn(user("two"), conversation_id=first.conversation_id)
    fake_runtime.pipeline.run(second)
    sent = fake_runtime.backend.calls[-1]
    assert [(m.role, m.content) for m in sent] == [
        ("user", "one"),
        ("assistant", "Hello there, friend."),
        ("user", "two"),
    ]


def test_unknown_conversation_is_not_found(fake_runtime: Runtime) -> None:
    with pytest.raises(NotFoundError):
        fake_runtime.pipeline.run(fake_runtime.new_turn(user("x"), conversation_id="conv_nope"))


def test_closing_the_stream_marks_answer_incomplete(tmp_path: Path) -> None:
    rt = Runtime(fake_settings(tmp_path, backend_options={"script": "a b c d e f g h"}))
    turn = rt.new_turn(user("go"))
    events = rt.pipeline.stream(turn)
    got = [next(events).text for _ in range(3)]
    events.close()
    msg = rt.store.get_conversation(turn.conversation_id)["messages"][-1]
    assert msg["status"] == "incomplete"
    assert msg["content"] == "".join(got) == "a b c"
    assert msg["finish_reason"] == "cancelled"
    # The backend stopped: nothing past the third token was produced.
    assert turn.completion_tokens == 3


def test_rejected_request_leaves_nothing_stored(tmp_path: Path) -> None:
    rt = Runtime(fake_settings(tmp_path, backend_options={"context_size": 10}))
    turn = rt.new_turn(user("many words " * 20))
    with pytest.raises(ContextOverflowError) as err:
        rt.pipeline.run(turn)
    assert "context is 10" in str(err.value)
    assert rt.store.list_conversations() == []


def test_rejected_request_in_existing_conversation_keeps_history(fake_runtime: Runtime) -> None:
    first = fake_runtime.pipeline.run(fake_runtime.new_turn(user("one")))
    turn = fake_runtime.new_turn(
        user("two"), Params(max_tokens=10_000), conversation_id=first.conversation_id
    )
    with pytest.raises(ContextOverflowError):
        fake_runtime.pipeline.run(turn)
    msgs = fake_runtime.store.get_conversation(first.conversation_id)["messages"]
    assert [m["content"] for m in msgs] == ["one", "Hello there, friend."]


def test_default_max_tokens_caps_answer_without_error(tmp_path: Path) -> None:
    rt = Runtime(
        fake_settings(tmp_path, default_max_tokens=3, backend_options={"script": "a b c d e"})
    )
    turn = rt.pipeline.run(rt.new_turn(user("go")))
    assert turn.answer == "a b c" and turn.finish_reason == "length"
    assert turn.usage["completion_tokens"] == 3


def test_stop_sequences_end_the_answer(fake_runtime: Runtime) -> None:
    turn = fake_runtime.pipeline.run(fake_runtime.new_turn(user("x"), Params(stop=["friend"])))
    assert turn.answer == "Hello there, "


def test_scheduler_serves_waiters_in_arrival_order() -> None:
    sched = Scheduler(capacity=1, limit=10)
    order: list[int] = []
    gate = threading.Event()

    def worker(i: int) -> None:
        with sched.slot():
            order.append(i)
            if i == 0:
                gate.wait(5)

    threads = [threading.Thread(target=worker, args=(0,))]
    threads[0].start()
    while sched.active == 0:
        time.sleep(0.001)
    for i in range(1, 6):
        t = threading.Thread(target=worker, args=(i,))
        t.start()
        threads.append(t)
        while sched.waiting < i:  # make arrival order unambiguous
            time.sleep(0.001)
    gate.set()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4, 5]


def test_scheduler_rejects_past_queue_limit_with_retry_after() -> None:
    sched = Scheduler(capacity=1, limit=1)
    release = threading.Event()

    def hold() -> None:
        with sched.slot():
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    waiter = threading.Thread(target=hold)
    while sched.active == 0:
        time.sleep(0.001)
    waiter.start()
    while sched.waiting == 0:
        time.sleep(0.001)
    with pytest.raises(RateLimitError) as err, sched.slot():
        pass
    assert err.value.retry_after >= 1 and err.value.code == "queue_full"
    release.set()
    holder.join(5)
    waiter.join(5)
    assert sched.active == 0 and sched.waiting == 0


def test_cancelled_waiter_leaves_the_queue() -> None:
    sched = Scheduler(capacity=1, limit=5)
    release, cancel = threading.Event(), threading.Event()
    outcome: list[str] = []

    def hold() -> None:
        with sched.slot():
            release.wait(5)

    def wait_cancelled() -> None:
        try:
            with sched.slot(cancel):
                outcome.append("ran")
        except Cancelled:
            outcome.append("cancelled")

    h = threading.Thread(target=hold)
    h.start()
    while sched.active == 0:
        time.sleep(0.001)
    w = threading.Thread(target=wait_cancelled)
    w.start()
    while sched.waiting == 0:
        time.sleep(0.001)
    cancel.set()
    w.join(5)
    assert outcome == ["cancelled"] and sched.waiting == 0
    release.set()
    h.join(5)


def test_recover_marks_generating_answers_incomplete(fake_runtime: Runtime) -> None:
    store = fake_runtime.store
    conv = store.create_conversation("t")
    store.add_messages(
        conv["id"],
        [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "half", "status": "generating"},
        ],
    )
    assert store.recover() == 1
    msgs = store.get_conversation(conv["id"])["messages"]
    assert msgs[-1]["status"] == "incomplete" and msgs[-1]["content"] == "half"
