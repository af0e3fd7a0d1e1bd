"""Who gets served now: the concurrency gate, the decoded-pixel budget, and the slot a request holds.

A request holds its slot until every worker thread it started has ended, not just until its client got an
answer: a thread cannot be killed, so a request that timed out (504) keeps its place until its work is done.
Otherwise the proxy would start new work while the old runs on, and threads and memory would grow without
bound under a slow upstream (issue 26: six timed-out requests had grown the threads from 3 to 14).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

__all__ = ["AdmissionError", "Gate", "PixelBudget", "Slot"]


class AdmissionError(Exception):
    """A request that cannot be admitted: `status` 429 (busy: retry), 413 (too large ever) or 504 (waited too long)."""

    def __init__(self, status: int, message: str, code: str, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.retry_after = status, message, code, retry_after


class Gate:
    """At most `limit` requests answered at once and `queue` waiting; beyond that, 429 at once.

    Waiting counts against the request's timeout: a request still queued at its deadline gets 504.
    """

    def __init__(self, limit: int, queue: int):
        self.limit, self.queue = limit, queue
        self.active = 0
        self._waiters: deque[asyncio.Future] = deque()

    @property
    def waiting(self) -> int:
        """Requests queued now."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    async def acquire(self, timeout: float) -> None:
        """Take a slot, waiting at most `timeout` seconds in the queue."""
        if self.active < self.limit and not self.waiting:
            self.active += 1
            return
        if self.waiting >= self.queue:
            raise AdmissionError(429, "the proxy is at capacity; retry shortly", "proxy_saturated", retry_after=1)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, max(0.0, timeout))
        except asyncio.TimeoutError:
            raise AdmissionError(504, f"no slot came free within the request's {timeout:g}s timeout", "timeout") from None
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted just as the caller gave up: hand the slot on
            raise

    def release(self) -> None:
        """Give the slot back, or hand it straight to the first request still waiting."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on: `active` stays the same
                return
        self.active -= 1


class PixelBudget:
    """Decoded pixels held by all requests at once (an RGB pixel is 3 bytes in memory).

    A request that needs more than the whole budget gets 413; one that would overdraw it now gets 429 with
    Retry-After: decoding it anyway is how four 99 MP PNGs took a server from 1.5 GB to 3.8 GB.
    """

    def __init__(self, total: int):
        self.total = total
        self.held = 0

    def take(self, pixels: int) -> None:
        """Reserve `pixels` (AdmissionError when they do not fit)."""
        if pixels > self.total:
            raise AdmissionError(413, f"the request's images hold {pixels:,} pixels, over this proxy's decoding "
                                 f"budget of {self.total:,} (--max-decoded-mpixels)", "images_too_large")
        if self.held + pixels > self.total:
            raise AdmissionError(429, f"the proxy is decoding {self.held:,} pixels for other requests; this one "
                                 f"needs {pixels:,} of the {self.total:,} budget: retry shortly", "pixel_budget",
                                 retry_after=1)
        self.held += pixels

    def give_back(self, pixels: int) -> None:
        """Return `pixels` reserved with `take`."""
        self.held -= pixels


class Slot:
    """What one request holds (a gate slot, reserved pixels) until its client is answered AND its threads end."""

    def __init__(self, gate: Gate, budget: PixelBudget):
        self._gate, self._budget = gate, budget
        self.pixels = 0
        self._running = 0
        self._finished = False
        self._released = False
        self.on_release: Callable[[], None] | None = None

    def take_pixels(self, pixels: int) -> None:
        """Reserve decoded pixels for this request (returned with the slot)."""
        self._budget.take(pixels)
        self.pixels += pixels

    def track(self, future: asyncio.Future) -> None:
        """Keep the slot until `future` (a worker thread's) is done, whether or not anyone still awaits it."""
        self._running += 1
        future.add_done_callback(self._thread_done)

    def _thread_done(self, _future: asyncio.Future) -> None:
        self._running -= 1
        self._maybe_release()

    def finish(self) -> None:
        """The client has its answer; the slot goes back once no thread of the request runs."""
        self._finished = True
        self._maybe_release()

    @property
    def lingering(self) -> bool:
        """True while the client was answered but a thread of the request still runs (a timed-out one)."""
        return self._finished and not self._released

    def _maybe_release(self) -> None:
        if self._finished and self._running == 0 and not self._released:
            self._released = True
            self._budget.give_back(self.pixels)
            self._gate.release()
            if self.on_release is not None:
                self.on_release()
