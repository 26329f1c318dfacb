"""The model a data stage talks to: any Charter backend, called from a pool of workers.

`Engine.complete` writes text; `Engine.choice_logprobs` reads the log-probabilities of the
first answer token (AI feedback). A local backend runs one request at a time (its
`capacity`); an OpenAI-compatible upstream gets up to `concurrency` at once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

from charter.backends import backend_class
from charter.errors import ConfigError
from charter.train.config import BackendSection
from charter.types import Message, Params

T = TypeVar("T")
R = TypeVar("R")


class Engine:
    def __init__(self, section: BackendSection, base_model: Path | None):
        cls = backend_class(section.backend)
        options = dict(section.options)
        if section.backend in ("llamacpp", "transformers") and "model_path" not in options:
            options["model_path"] = base_model
        self.backend = cls(cls.parse_options(options))
        self.concurrency = max(1, min(section.concurrency, int(self.backend.capacity or 1)))
        if section.backend == "openai":
            self.concurrency = section.concurrency
        self._lock = threading.Semaphore(self.concurrency)
        self.describe = f"{section.backend}:{_model_label(section, base_model)}"

    def load(self) -> Engine:
        self.backend.load()
        return self

    def close(self) -> None:
        self.backend.close()

    def complete(
        self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float, seed: int
    ) -> str:
        params = Params(max_tokens=max_tokens, temperature=temperature, seed=seed)
        parts: list[str] = []
        msgs = [Message(**m) for m in messages]
        with self._lock, closing(self.backend.stream(msgs, params)) as stream:
            for ev in stream:
                if ev.kind == "token":
                    parts.append(ev.text)
        return "".join(parts).strip()

    def choice_logprobs(
        self, messages: list[dict[str, str]], choices: tuple[str, ...], *, top: int = 20
    ) -> dict[str, float | None]:
        """log p(choice) for each choice letter at the first generated token: the top
        `top` candidates whose text, stripped of spaces and brackets, is the letter, summed in
        probability space. None when no candidate for a letter is among the top ones."""
        if not self.backend.supports_logprobs:
            raise ConfigError(f"backend {self.backend.name!r} gives no log-probabilities")
        params = Params(max_tokens=1, temperature=0.0, seed=0, logprobs=True, top_logprobs=top)
        msgs = [Message(**m) for m in messages]
        tops: list[dict[str, Any]] = []
        with self._lock, closing(self.backend.stream(msgs, params)) as stream:
            for ev in stream:
                if ev.kind == "token" and ev.logprobs and not tops:
                    tops = list(ev.logprobs.get("top_logprobs") or [])
        out: dict[str, float | None] = {}
        for c in choices:
            ps = [
                math.exp(t["logprob"])
                for t in tops
                if t["token"].strip().strip("()[]:.").strip().upper() == c
            ]
            out[c] = math.log(sum(ps)) if ps else None
        return out

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[T, R]]:
        """(item, fn(item)) as they finish, `concurrency` at a time (order not kept)."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            pending: dict[Future[R], T] = {}
            it = iter(items)
            for item in it:
                pending[pool.submit(fn, item)] = item
                if len(pending) >= self.concurrency * 2:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    item = pending.pop(fut)
                    yield item, fut.result()
                for item in it:
                    pending[pool.submit(fn, item)] = item
                    if len(pending) >= self.concurrency * 2:
                        break


def _model_label(section: BackendSection, base_model: Path | None) -> str:
    o = section.options
    if section.backend == "openai":
        return f"{o.get('model') or 'first-listed'}@{o.get('base_url', '?')}"
    path = o.get("model_path") or base_model
    return Path(path).name if path else "embedded"
