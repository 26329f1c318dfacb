"""Prometheus metrics for /metrics: requests by status, latency histograms, queue depth."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, queue_depth: Callable[[], int], active: Callable[[], int]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "charter_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.ttft = Histogram(
            "charter_time_to_first_token_seconds",
            "Time from request to first token",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "charter_inter_token_latency_seconds",
            "Time between consecutive tokens of one answer",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "charter_request_duration_seconds",
            "Time from request to last token",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("charter_generated_tokens", "Tokens generated", registry=r)
        self.prompt_tokens = Counter("charter_prompt_tokens", "Prompt tokens processed", registry=r)
        Gauge("charter_queue_depth", "Requests waiting for the model", registry=r).set_function(
            queue_depth
        )
        Gauge("charter_active_generations", "Answers being generated now", registry=r).set_function(
            active
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
