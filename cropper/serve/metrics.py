"""The proxy's counters, exposed at `GET /metrics` by `prometheus-client` (the Prometheus text format).

Each `Metrics` has a registry of its own, so several proxies in one process (tests, an embedding app)
do not share or clash over counters.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics"]

#: Upper bounds (seconds) of the latency histogram's buckets.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: The media type of `Metrics.render()`.
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """Requests by kind, errors by status, visual tokens used and saved, requests in flight and lingering,
    and a latency histogram."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("cropper_requests", "Chat completion requests, by kind (zoomed or passthrough).",
                                ["kind"], registry=self.registry)
        self.errors = Counter("cropper_errors", "Error responses, by HTTP status.", ["status"], registry=self.registry)
        self.visual_tokens = Counter("cropper_visual_tokens", "Visual tokens sent upstream for zoomed requests.",
                                     registry=self.registry)
        self.visual_tokens_saved = Counter("cropper_visual_tokens_saved",
                                           "Visual tokens the full images would have cost beyond those sent.",
                                           registry=self.registry)
        self.in_flight = Gauge("cropper_in_flight", "Requests being answered now.", registry=self.registry)
        self.lingering = Gauge("cropper_lingering_requests",
                               "Timed-out requests still holding their slot while their work ends.",
                               registry=self.registry)
        self.latency_seconds = Histogram("cropper_request_seconds", "Latency of chat completion requests.",
                                         buckets=BUCKETS, registry=self.registry)

    def request(self, kind: str) -> None:
        """Count one request of `kind` ("zoomed" or "passthrough")."""
        self.requests.labels(kind=kind).inc()

    def error(self, status: int) -> None:
        """Count one error response with HTTP `status`."""
        self.errors.labels(status=str(status)).inc()

    def tokens(self, used: int, full: int) -> None:
        """Count the visual tokens a zoomed request sent (`used`) and those the full images would have cost."""
        self.visual_tokens.inc(used)
        self.visual_tokens_saved.inc(max(0, full - used))

    def latency(self, seconds: float) -> None:
        """Observe one request's latency."""
        self.latency_seconds.observe(seconds)

    def render(self) -> str:
        """The Prometheus exposition text."""
        return generate_latest(self.registry).decode("utf-8")
