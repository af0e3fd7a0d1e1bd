"""Wrappers that let `compare` pace and time what it calls: a requests-per-minute limiter, a backend that
counts its own seconds, and a cropper that does the same.

The timers are what make the harness's overhead measurable: everything a run spends outside backend calls
and crop proposals is the harness's own cost (loading images, scoring, writing results).
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

__all__ = ["RateLimiter", "MeteredBackend", "TimedCropper"]


class RateLimiter:
    """At most `rpm` request starts per minute, spaced evenly, shared by every thread that calls `wait`."""

    def __init__(self, rpm: float | None, clock=time.monotonic, sleep=time.sleep):
        if rpm is not None and rpm <= 0:
            raise ValueError(f"rpm must be positive, got {rpm}")
        self.interval = 60.0 / rpm if rpm else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def wait(self) -> float:
        """Block until this request may start; returns the seconds waited."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        delay = start - now
        if delay > 0:
            self._sleep(delay)
        return delay


class MeteredBackend:
    """A backend that waits for the rate limiter and adds up the time its calls take.

    Everything else (provider, model, token-model hints) is read through from the wrapped backend, so
    the strategies count visual tokens exactly as they would on the backend itself.
    """

    def __init__(self, backend: Any, limiter: RateLimiter | None = None):
        self._backend = backend
        self._limiter = limiter or RateLimiter(None)
        self._lock = threading.Lock()
        self._local = threading.local()
        self.seconds = 0.0
        self.calls = 0
        self.waited = 0.0

    def thread_seconds(self) -> float:
        """Seconds spent in calls made from the current thread (for per-item accounting)."""
        return getattr(self._local, "seconds", 0.0)

    def generate(self, messages, tools=None, **options):
        waited = self._limiter.wait()
        started = time.perf_counter()
        try:
            return self._backend.generate(messages, tools, **options)
        finally:
            elapsed = time.perf_counter() - started
            self._local.seconds = self.thread_seconds() + elapsed
            with self._lock:
                self.seconds += elapsed
                self.calls += 1
                self.waited += waited

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_backend"], name)


class TimedCropper:
    """A cropper whose `propose` calls are timed and serialized (a torch policy is not re-entrant)."""

    def __init__(self, cropper: Any):
        self._cropper = cropper
        self._lock = threading.Lock()
        self._local = threading.local()
        self.seconds = 0.0

    @property
    def inner(self) -> Any:
        """The cropper being timed."""
        return self._cropper

    def thread_seconds(self) -> float:
        """Seconds spent proposing from the current thread."""
        return getattr(self._local, "seconds", 0.0)

    def propose(self, image, question, k=None, budget=None):
        return self._timed(self._cropper.propose, image, question, k=k, budget=budget)

    def _timed(self, method, *args, **kwargs):
        with self._lock:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                self.seconds += elapsed
                self._local.seconds = self.thread_seconds() + elapsed

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.__dict__["_cropper"], name)
        if name == "propose_more":  # present only when the inner cropper has it; timed like `propose`
            return functools.partial(self._timed, attr)
        return attr
