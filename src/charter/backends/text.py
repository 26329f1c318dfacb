"""Turning generated token bytes into text, shared by every in-process backend.

Whole UTF-8 characters only, stop strings honoured without ever emitting part of one, and
several tokens' log-probabilities merged when they leave as one piece of text.
"""

from __future__ import annotations

import codecs


def merge_logprobs(entries: list[dict]) -> dict:
    """One event may carry several tokens (held back while a stop string was possible)."""
    if len(entries) == 1:
        return entries[0]
    raw = [b for e in entries for b in e["bytes"]]
    return {
        "token": bytes(raw).decode("utf-8", errors="replace"),
        "logprob": sum(e["logprob"] for e in entries),
        "bytes": raw,
        # Conditional entropies add along a sequence (chain rule).
        "entropy": sum(e.get("entropy", 0.0) for e in entries),
        "top_logprobs": entries[-1]["top_logprobs"],
    }


class TextAssembler:
    """Turns token bytes into text safely: whole UTF-8 characters only, and text that might
    be the start of a stop string is held back until it is known not to be one."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.held = ""

    def push(self, data: bytes) -> tuple[str, bool]:
        """Add bytes; return (text safe to emit now, whether a stop string was reached)."""
        self.held += self.decoder.decode(data)
        for stop in self.stops:
            at = self.held.find(stop)
            if at >= 0:
                out, self.held = self.held[:at], ""
                return out, True
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.held)), keep, -1):
                if self.held.endswith(stop[:n]):
                    keep = n
                    break
        cut = len(self.held) - keep
        out, self.held = self.held[:cut], self.held[cut:]
        return out, False

    def flush(self) -> str:
        out, self.held = self.held + self.decoder.decode(b"", final=True), ""
        return out
