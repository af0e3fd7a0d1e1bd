"""The proxy's counters, exposed at `GET /metrics` in the Prometheus text format."""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["Metrics"]

#: Upper bounds (seconds) of the latency histogram's buckets.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """Requests by kind, errors by status, visual tokens used and saved, and a latency histogram."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.errors: Counter[int] = Counter()
        self.visual_tokens = 0
        self.visual_tokens_saved = 0
        self.in_flight = 0
        self.lingering = 0  # timed-out requests whose worker thread still runs (their slot stays taken)
        self._buckets = [0] * len(BUCKETS)
        self._latency_sum = 0.0
        self._latency_count = 0

    def request(self, kind: str) -> None:
        with self._lock:
            self.requests[kind] += 1

    def error(self, status: int) -> None:
        with self._lock:
            self.errors[status] += 1

    def lingering_done(self) -> None:
        """A timed-out request's last thread ended and its slot came free."""
        with self._lock:
            self.lingering -= 1

    def tokens(self, used: int, full: int) -> None:
        with self._lock:
            self.visual_tokens += used
            self.visual_tokens_saved += max(0, full - used)

    def latency(self, seconds: float) -> None:
        with self._lock:
            self._latency_sum += seconds
            self._latency_count += 1
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self._buckets[i] += 1

    def render(self) -> str:
        """The Prometheus exposition text."""
        with self._lock:
            lines = ["# HELP cropper_requests_total Chat completion requests, by kind (zoomed or passthrough).",
                     "# TYPE cropper_requests_total counter"]
            lines += [f'cropper_requests_total{{kind="{k}"}} {v}' for k, v in sorted(self.requests.items())]
            lines += ["# HELP cropper_errors_total Error responses, by HTTP status.", "# TYPE cropper_errors_total counter"]
            lines += [f'cropper_errors_total{{status="{k}"}} {v}' for k, v in sorted(self.errors.items())]
            lines += ["# HELP cropper_visual_tokens_total Visual tokens sent upstream for zoomed requests.",
                      "# TYPE cropper_visual_tokens_total counter", f"cropper_visual_tokens_total {self.visual_tokens}",
                      "# HELP cropper_visual_tokens_saved_total Visual tokens the full images would have cost beyond those sent.",
                      "# TYPE cropper_visual_tokens_saved_total counter",
                      f"cropper_visual_tokens_saved_total {self.visual_tokens_saved}",
                      "# HELP cropper_in_flight Requests being answered now.", "# TYPE cropper_in_flight gauge",
                      f"cropper_in_flight {self.in_flight}",
                      "# HELP cropper_lingering_requests Timed-out requests still holding their slot while their "
                      "work ends.", "# TYPE cropper_lingering_requests gauge",
                      f"cropper_lingering_requests {self.lingering}",
                      "# HELP cropper_request_seconds Latency of chat completion requests.",
                      "# TYPE cropper_request_seconds histogram"]
            lines += [f'cropper_request_seconds_bucket{{le="{b}"}} {n}' for b, n in zip(BUCKETS, self._buckets, strict=True)]
            lines += [f'cropper_request_seconds_bucket{{le="+Inf"}} {self._latency_count}',
                      f"cropper_request_seconds_sum {self._latency_sum:.6f}",
                      f"cropper_request_seconds_count {self._latency_count}"]
        return "\n".join(lines) + "\n"
