"""Decode speed of the llama.cpp backend with and without logprobs (top 5 + entropy).

Runs the two modes alternately so drift in the machine's speed hits both alike.
Usage: .venv/bin/python benchmarks/logprobs_cost.py [--runs 6]
"""

from __future__ import annotations

import argparse
import statistics
import time

from charter.backends.llamacpp import LlamaCppBackend, LlamaCppOptions
from charter.types import Message, Params


def decode_speed(backend: LlamaCppBackend, logprobs: bool) -> float:
    """Tokens per second after the first token, for one 64-token greedy answer."""
    msgs = [Message(role="user", content="Write a long story about a lighthouse keeper.")]
    params = Params(
        max_tokens=64, temperature=0, logprobs=logprobs, top_logprobs=5 if logprobs else 0
    )
    first, n = None, 0
    for ev in backend.stream(msgs, params):
        if ev.kind == "token":
            n += 1
            first = first or time.perf_counter()
    return (n - 1) / (time.perf_counter() - first)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=6)
    runs = ap.parse_args().runs
    backend = LlamaCppBackend(LlamaCppOptions(n_threads=2))
    backend.load()
    speeds: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(runs):
        for lp in (False, True):
            speeds[lp].append(decode_speed(backend, lp))
    for lp, label in ((False, "plain"), (True, "logprobs")):
        values = [round(x, 1) for x in speeds[lp]]
        print(f"{label:9} median {statistics.median(speeds[lp]):.1f} tok/s  {values}")


if __name__ == "__main__":
    main()
