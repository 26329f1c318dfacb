"""Runs a turn's (blocking) event stream in its own thread and hands events to asyncio.

llama.cpp blocks while it computes, so each turn iterates in a worker thread; the event loop
stays free for other clients. Cancelling sets the turn's flag: the worker stops within a token
and closes the pipeline in its own thread, so every stage cleans up where it ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from starlette.requests import Request

from charter.types import Event, Turn

_END = object()


class ClientGone(Exception):
    """The HTTP client disconnected before the answer was complete."""


class TurnThread:
    def __init__(self, events: Iterator[Event], turn: Turn):
        self.turn = turn
        self._events = events
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._thread = threading.Thread(target=self._work, name="charter-turn", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone (server shutting down)
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def _work(self) -> None:
        events = self._events
        try:
            for ev in events:
                self._put(ev)
                if self.turn.cancelled.is_set():
                    break
        except BaseException as exc:  # handed to the request that owns the turn
            self._put(exc)
        finally:
            try:
                close = getattr(events, "close", None)
                if close is not None:
                    close()
            except BaseException as exc:
                self._put(exc)
            self._put(_END)

    def cancel(self) -> None:
        self.turn.cancelled.set()

    async def next(self, request: Request | None = None) -> Event | None:
        """The next event, None at the end; re-raises the turn's error.

        With `request`, checks for a client disconnect while waiting (queued or slow model)
        and raises ClientGone after cancelling the turn.
        """
        while True:
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout=0.25)
                break
            except TimeoutError:
                if request is not None and await request.is_disconnected():
                    self.cancel()
                    raise ClientGone() from None
        if item is _END:
            return None
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, Event)
        return item
