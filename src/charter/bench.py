"""Load-test any OpenAI-compatible chat endpoint, the way `vllm bench serve` does.

`charter bench` and the scripts in benchmarks/ call `run_bench`; numbers in docs/benchmarks.md
come from here, so the same measurement works against Charter, llama.cpp's server or vLLM.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from charter.errors import BackendError

SEED = 1234
_INSTRUCTION = "Write a very long and detailed story about a lighthouse keeper and a storm."
# Short common words are one token each in every BPE vocabulary we care about, so the filler
# lands close to the asked-for prompt length without loading a tokenizer.
_FILLER = "The old keeper climbs the stairs to light the lamp for the ships at sea ."


def build_prompt(prompt_tokens: int = 50, request_number: int | None = None) -> str:
    """The synthetic prompt: about `prompt_tokens` words, the same for the same arguments.

    It asks for a long story so that the model usually spends all of `max_tokens`. With
    `request_number`, the prompt opens with it (same length), so that no two requests of a
    run share more than the chat template's prefix and no server can skip the prompt by
    reusing the KV cache of the previous one.
    """
    words = _INSTRUCTION.split()
    if request_number is not None:
        words = ["Request", f"{request_number}:", *words]
    filler = _FILLER.split()
    i = 0
    while len(words) < prompt_tokens:
        words.append(filler[i % len(filler)])
        i += 1
    return " ".join(words[: max(prompt_tokens, len(_INSTRUCTION.split()) + 2)])


# --- statistics -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation, as numpy's default; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(seconds: Iterable[float]) -> dict[str, float | None]:
    """Mean, p50, p90 and p99 of durations given in seconds, returned in milliseconds."""
    ms = [s * 1000.0 for s in seconds]
    out: dict[str, float | None] = {"mean": statistics.fmean(ms) if ms else None}
    for q in (50, 90, 99):
        value = percentile(ms, q)
        out[f"p{q}"] = None if value is None else round(value, 3)
    if out["mean"] is not None:
        out["mean"] = round(out["mean"], 3)
    return out


# --- SSE ------------------------------------------------------------------------------------

DONE = "[DONE]"


class MalformedStream(ValueError):
    """A `data:` line that is neither JSON nor `[DONE]`."""


def parse_sse_line(line: str) -> dict | str | None:
    """One line of an SSE stream: the JSON payload of a `data:` line, `DONE`, or None.

    Blank lines, comments (`: ping`) and other fields (`event:`, `id:`) give None.
    Raises MalformedStream for a `data:` line that is not JSON or `[DONE]`.
    """
    line = line.rstrip("\r\n")
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == DONE:
        return DONE
    try:
        payload = json.loads(data)
    except json.JSONDecodeError as exc:
        raise MalformedStream(f"malformed SSE data: {data[:80]!r}") from exc
    if not isinstance(payload, dict):
        raise MalformedStream(f"malformed SSE data: {data[:80]!r}")
    return payload


@dataclass
class RequestResult:
    """What one streamed request measured. Times are seconds from sending the request."""

    ok: bool = False
    error: str | None = None
    ttft: float | None = None
    e2e: float | None = None
    itl: list[float] = field(default_factory=list)
    output_tokens: int = 0
    tokens_source: str | None = None  # "usage" or "chunks"
    prompt_tokens: int | None = None
    finish_reason: str | None = None
    saw_done: bool = False

    @property
    def tpot(self) -> float | None:
        if not self.ok or self.ttft is None or self.e2e is None or self.output_tokens < 2:
            return None
        return (self.e2e - self.ttft) / (self.output_tokens - 1)

    @property
    def complete(self) -> bool:
        return self.ok and self.saw_done and self.finish_reason is not None


class StreamTracker:
    """Folds SSE payloads of one response into a RequestResult, timing content chunks."""

    def __init__(self, start: float):
        self.start = start
        self.result = RequestResult()
        self.content_chunks = 0
        self.last_token_at: float | None = None

    def feed(self, payload: dict | str, now: float) -> None:
        r = self.result
        if not isinstance(payload, dict):  # the only other value parse_sse_line gives is DONE
            r.saw_done = True
            return
        if "error" in payload:
            err = payload["error"]
            message = err.get("message") if isinstance(err, dict) else err
            raise MalformedStream(f"error event in stream: {str(message)[:120]}")
        usage = payload.get("usage")
        if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
            r.output_tokens = int(usage["completion_tokens"])
            r.tokens_source = "usage"
            if usage.get("prompt_tokens") is not None:
                r.prompt_tokens = int(usage["prompt_tokens"])
        for choice in payload.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.content_chunks += 1
                if r.ttft is None:
                    r.ttft = now - self.start
                else:
                    r.itl.append(now - self.last_token_at)
                self.last_token_at = now
            if choice.get("finish_reason"):
                r.finish_reason = choice["finish_reason"]

    def finish(self, now: float) -> RequestResult:
        r = self.result
        r.e2e = now - self.start
        if r.tokens_source is None:
            r.output_tokens = self.content_chunks
            r.tokens_source = "chunks"
        if not r.saw_done:
            r.error = "stream ended without [DONE]"
        elif r.ttft is None:
            r.error = "stream carried no content"
        else:
            r.ok = True
        return r


def chat_body(model: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    """The request body every benchmark request sends."""
    return {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0,
        "max_tokens": max_tokens,
        "seed": SEED,
    }


async def measure_request(client: httpx.AsyncClient, url: str, body: dict) -> RequestResult:
    """Send one streaming chat completion and time it. Never raises: failures are recorded."""
    start = time.perf_counter()
    tracker = StreamTracker(start)
    try:
        async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as resp:
            if resp.status_code != 200:
                text = (await resp.aread()).decode("utf-8", "replace")
                return RequestResult(
                    error=f"HTTP {resp.status_code}: {' '.join(text.split())[:160]}",
                    e2e=time.perf_counter() - start,
                )
            async for line in resp.aiter_lines():
                payload = parse_sse_line(line)
                if payload is not None:
                    tracker.feed(payload, time.perf_counter())
    except MalformedStream as exc:
        return RequestResult(error=str(exc), e2e=time.perf_counter() - start)
    except httpx.HTTPError as exc:
        reason = str(exc) or "no detail"
        return RequestResult(
            error=f"{type(exc).__name__}: {reason}"[:200], e2e=time.perf_counter() - start
        )
    return tracker.finish(time.perf_counter())


# --- the run --------------------------------------------------------------------------------


async def _run_level(
    client: httpx.AsyncClient, url: str, bodies: Iterator[dict], concurrency: int, total: int
) -> tuple[list[RequestResult], float]:
    """A closed loop: `concurrency` workers, each sending the next request when one ends."""
    remaining = itertools.islice(bodies, total)
    results: list[RequestResult] = []

    async def worker() -> None:
        for body in remaining:
            results.append(await measure_request(client, url, body))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results, time.perf_counter() - start


def level_summary(concurrency: int, results: list[RequestResult], duration: float) -> dict:
    """The per-level figures: latency percentiles in ms, throughputs, counts, and failures."""
    good = [r for r in results if r.ok]
    out_tokens = sum(r.output_tokens for r in good)
    sources = sorted({r.tokens_source for r in good if r.tokens_source})
    errors: dict[str, int] = {}
    for r in results:
        if not r.ok:
            errors[r.error or "unknown"] = errors.get(r.error or "unknown", 0) + 1
    prompt_tokens = [r.prompt_tokens for r in good if r.prompt_tokens is not None]
    return {
        "concurrency": concurrency,
        "requests": len(results),
        "completed": len(good),
        "failed": len(results) - len(good),
        "errors": errors,
        "all_streams_complete": bool(results) and all(r.complete for r in results),
        "duration_s": round(duration, 4),
        "request_throughput": round(len(good) / duration, 4) if duration > 0 else None,
        "output_throughput": round(out_tokens / duration, 3) if duration > 0 else None,
        "total_output_tokens": out_tokens,
        "mean_output_tokens": round(out_tokens / len(good), 2) if good else None,
        "mean_prompt_tokens": round(statistics.fmean(prompt_tokens), 1) if prompt_tokens else None,
        "tokens_source": "+".join(sources) or None,
        "ttft_ms": summarize(r.ttft for r in good if r.ttft is not None),
        "tpot_ms": summarize(t for r in good if (t := r.tpot) is not None),
        "itl_ms": summarize(x for r in good for x in r.itl),
        "e2e_ms": summarize(r.e2e for r in good if r.e2e is not None),
    }


async def _resolve_model(client: httpx.AsyncClient, url: str, model: str | None) -> str:
    try:
        resp = await client.get(f"{url}/v1/models")
    except httpx.HTTPError as exc:
        raise BackendError(f"{url} does not answer: {type(exc).__name__}: {exc}") from exc
    if model is not None:
        return model
    try:
        resp.raise_for_status()
        return resp.json()["data"][0]["id"]
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise BackendError(
            f"{url}/v1/models gave no model id (HTTP {resp.status_code}); pass a model name"
        ) from exc


async def _run(
    url: str,
    model: str | None,
    concurrencies: Sequence[int],
    requests_per_level: int,
    prompt_tokens: int,
    max_tokens: int,
    api_key: str | None,
    timeout: float,
    progress: Callable[[str], None],
    distinct_prompts: bool,
) -> dict:
    load_before = os.getloadavg()[0]
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(
        max_connections=max(concurrencies) + 2, max_keepalive_connections=max(concurrencies) + 2
    )
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(timeout), limits=limits, headers=headers
    ) as client:
        model = await _resolve_model(client, url, model)

        def body_for(n: int) -> dict:
            prompt = build_prompt(prompt_tokens, n if distinct_prompts else None)
            return chat_body(model, prompt, max_tokens)

        bodies = map(body_for, itertools.count())
        body = next(bodies)
        # One untimed request first, as vllm does: it warms caches and tells a wrong model
        # name or key apart from a slow server before any number is recorded.
        warm = await measure_request(client, url, body)
        progress(f"warm-up: {'ok' if warm.ok else 'FAILED: ' + str(warm.error)}")
        levels = []
        for concurrency in concurrencies:
            total = max(requests_per_level, concurrency)
            progress(f"concurrency {concurrency}: {total} requests")
            results, duration = await _run_level(client, url, bodies, concurrency, total)
            level = level_summary(concurrency, results, duration)
            levels.append(level)
            progress(
                f"concurrency {concurrency}: {level['completed']} ok, "
                f"{level['failed']} failed in {duration:.2f}s"
            )
    return {
        "settings": {
            "url": url,
            "model": model,
            "concurrencies": list(concurrencies),
            "requests_per_level": requests_per_level,
            "prompt_tokens": prompt_tokens,
            "max_tokens": max_tokens,
            "temperature": 0,
            "seed": SEED,
            "timeout_s": timeout,
            "distinct_prompts": distinct_prompts,
            "prompt": body["messages"][0]["content"],
        },
        "environment": {
            "platform": platform.platform(),
            "machine": platform.machine(),
            "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(),
            # Other work on the machine skews every figure; keep the evidence with them.
            "loadavg_1m_before": round(load_before, 2),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "warmup": {k: v for k, v in asdict(warm).items() if k != "itl"},
        "levels": levels,
    }


def run_bench(
    url: str,
    *,
    model: str | None = None,
    concurrencies: Sequence[int] = (1, 2, 4, 8),
    requests_per_level: int = 8,
    prompt_tokens: int = 50,
    max_tokens: int = 64,
    api_key: str | None = None,
    timeout: float = 120.0,
    progress: Callable[[str], None] | None = None,
    distinct_prompts: bool = True,
) -> dict:
    """Benchmark `url` (the server root, without /v1) at each concurrency; return the results.

    Each level runs max(requests_per_level, concurrency) streaming chat completions with
    exactly `concurrency` in flight. Each prompt opens with its request number unless
    `distinct_prompts` is False; then every request repeats the warm-up's prompt and a
    server that reuses the previous prompt's KV cache shows its cached TTFT.

    The returned dict is JSON-serialisable: "settings", "environment", "warmup" and
    "levels" (one dict per concurrency; see `level_summary`).
    Failed requests are counted per level with their reason, never raised.

    Raises BackendError if the URL does not answer at all, or if `model` is None and
    `{url}/v1/models` names none.
    """
    if not concurrencies or any(c < 1 for c in concurrencies):
        raise ValueError("concurrencies must be positive integers")
    return asyncio.run(
        _run(
            url.rstrip("/"),
            model,
            concurrencies,
            requests_per_level,
            prompt_tokens,
            max_tokens,
            api_key,
            timeout,
            progress or (lambda _msg: None),
            distinct_prompts,
        )
    )


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(result: dict) -> str:
    """A fixed-width table of `run_bench`'s result, one row per concurrency level."""
    s = result["settings"]
    lines = [
        f"{s['url']}  model={s['model']}  prompt~{s['prompt_tokens']} tok  "
        f"max_tokens={s['max_tokens']}",
    ]
    columns = [
        ("conc", 5),
        ("ok", 4),
        ("fail", 5),
        ("req/s", 7),
        ("tok/s", 8),
        ("TTFT p50", 9),
        ("TTFT p99", 9),
        ("TPOT p50", 9),
        ("ITL p50", 8),
        ("ITL p99", 8),
        ("e2e p50", 8),
        ("e2e p99", 8),
        ("done", 5),
    ]
    lines.append(" ".join(name.rjust(width) for name, width in columns))
    for lv in result["levels"]:
        row = [
            str(lv["concurrency"]),
            str(lv["completed"]),
            str(lv["failed"]),
            _fmt(lv["request_throughput"], 2),
            _fmt(lv["output_throughput"]),
            _fmt(lv["ttft_ms"]["p50"]),
            _fmt(lv["ttft_ms"]["p99"]),
            _fmt(lv["tpot_ms"]["p50"]),
            _fmt(lv["itl_ms"]["p50"]),
            _fmt(lv["itl_ms"]["p99"]),
            _fmt(lv["e2e_ms"]["p50"], 0),
            _fmt(lv["e2e_ms"]["p99"], 0),
            "yes" if lv["all_streams_complete"] else "no",
        ]
        lines.append(
            " ".join(cell.rjust(width) for cell, (_, width) in zip(row, columns, strict=True))
        )
    lines.append("latencies in ms; tok/s = output tokens per second over the level")
    for lv in result["levels"]:
        for reason, count in lv["errors"].items():
            lines.append(f"  conc {lv['concurrency']}: {count} x {reason}")
    return "\n".join(lines)
