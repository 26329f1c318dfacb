"""API keys and per-key rate limits for the HTTP API.

Keys are required whenever the server listens beyond loopback (unless --insecure), or when
CHARTER_REQUIRE_KEYS is set; they are stored hashed and sent as `Authorization: Bearer`.
"""

from __future__ import annotations

import threading
import time

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from charter.errors import AuthenticationError, RateLimitError


class RateLimiter:
    """A token bucket per key: `per_minute` requests, refilled continuously."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        if self.per_minute <= 0:
            return
        rate = self.per_minute / 60.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                retry = max(1, round((1.0 - tokens) / rate + 0.5))
                raise RateLimitError(
                    f"rate limit of {self.per_minute} requests per minute exceeded for this "
                    "API key",
                    retry_after=retry,
                )
            self._buckets[key] = (tokens - 1.0, now)


async def authorize(request: Request) -> str | None:
    """FastAPI dependency: the caller's key id, or None when keys are not required."""
    state = request.app.state
    if not state.runtime.settings.keys_required:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationError(
            "missing API key: send 'Authorization: Bearer <key>' "
            "(create one with: charter keys create NAME)"
        )
    key_id = await run_in_threadpool(state.runtime.store.verify_key, secret.strip())
    if key_id is None:
        raise AuthenticationError("invalid or revoked API key")
    state.rate_limiter.check(key_id)
    return key_id
