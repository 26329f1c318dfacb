"""A scripted backend that replays given text word by word: for tests and demos, never users.

It honours max_tokens, stop strings, context size and cancellation like a real engine, so the
pipeline, server and page can be tested quickly and deterministically.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

from pydantic import Field

from charter.backends.base import Backend, BackendOptions
from charter.errors import ContextOverflowError
from charter.types import Event, Message, Params

_PIECE = re.compile(r"\s*\S+|\s+")


class FakeOptions(BackendOptions):
    script: str = "Hello! I am the scripted test backend."
    #: Seconds to sleep before each token (to test streaming, stop and queueing).
    delay: float = Field(default=0.0, ge=0.0, le=10.0)
    context_size: int = Field(default=2048, ge=8)
    #: When true, answer with the last user message instead of the script.
    echo: bool = False
    #: Scripts for successive calls (call n gets scripts[n], the last one repeats); `script`
    #: when empty. Tests of stages that call the model more than once (critique, revision).
    scripts: list[str] = Field(default_factory=list)


class FakeBackend(Backend):
    name = "fake"
    Options = FakeOptions
    supports_logprobs = True

    def __init__(self, options: FakeOptions):
        super().__init__(options)
        self.options: FakeOptions = options
        self.calls: list[list[Message]] = []

    @staticmethod
    def count_tokens(text: str) -> int:
        return len(_PIECE.findall(text))

    def prompt_tokens(self, messages: list[Message]) -> int:
        return sum(self.count_tokens(m.content) + 4 for m in messages)

    @property
    def model_id(self) -> str:
        return "fake"

    def info(self) -> dict:
        return {**super().info(), "parameter_count": 0, "context_size": self.options.context_size}

    def stream(self, messages: list[Message], params: Params) -> Iterator[Event]:
        self.calls.append(list(messages))
        n_prompt = self.prompt_tokens(messages)
        ctx = self.options.context_size
        if n_prompt >= ctx or (params.max_tokens and n_prompt + params.max_tokens > ctx):
            raise ContextOverflowError(n_prompt, ctx, max_tokens=params.max_tokens)
        text = self.options.script
        if self.options.scripts:
            text = self.options.scripts[min(len(self.calls), len(self.options.scripts)) - 1]
        if self.options.echo:
            text = next((m.content for m in reversed(messages) if m.role == "user"), "")
        limit = params.token_limit(ctx - n_prompt)
        produced, answer, finish = 0, "", "stop"
        for piece in _PIECE.findall(text):
            if produced >= limit:
                finish = "length"
                break
            candidate = answer + piece
            hit = next((s for s in params.stop if s in candidate), None)
            if hit:
                piece = candidate[: candidate.index(hit)][len(answer) :]
                if piece:
                    produced += 1
                    yield Event("token", text=piece)
                break
            if self.options.delay:
                time.sleep(self.options.delay)
            answer = candidate
            produced += 1
            lp = None
            if params.logprobs:
                # A made-up but well-formed distribution: every third word is a guess.
                logprob = -1.6 if produced % 3 == 0 else -0.05
                top = [{"token": piece, "logprob": logprob, "bytes": list(piece.encode())}]
                top += [
                    {"token": f" alt{k}", "logprob": logprob - k, "bytes": []}
                    for k in range(1, params.top_logprobs)
                ]
                lp = {
                    "token": piece,
                    "logprob": logprob,
                    "bytes": list(piece.encode()),
                    "entropy": 1.2 if produced % 3 == 0 else 0.2,
                    "top_logprobs": top[: params.top_logprobs],
                }
            yield Event("token", text=piece, logprobs=lp)
        usage = {
            "prompt_tokens": n_prompt,
            "completion_tokens": produced,
            "total_tokens": n_prompt + produced,
        }
        yield Event("done", finish_reason=finish, usage=usage)
