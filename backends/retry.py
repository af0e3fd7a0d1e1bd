"""The one retry policy every HTTP backend uses (tenacity), sync and async.

Retried: HTTP 429, 408 (request timeout) and 5xx, connection errors and timeouts. Never retried: any other
4xx (a bad request stays bad), nor anything the server marks `x-should-retry: false`. The wait is
exponential backoff with jitter, unless the server said how long to wait (`retry-after-ms`, or
`Retry-After` in seconds or as an HTTP date), which is honoured up to a cap.

The SDK clients we build run with `max_retries=0` so this is the single policy: two stacked policies
would multiply the attempts and ignore each other's waits.

The policy is SDK-agnostic: it reads `status_code` and `response.headers` off the exception (both SDKs'
`APIStatusError` carry them) and treats the exception types a backend names in `transient` (its SDK's
connection/timeout errors) as retryable.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import tenacity

from .base import BackendError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Statuses worth another attempt: rate limit, request timeout, and server-side failures.
RETRY_STATUSES = frozenset({408, 429})


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an SDK error carries (`status_code`), or None."""
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def headers_of(exc: BaseException) -> Mapping[str, str] | None:
    """The response headers an SDK error carries (`exc.response.headers`), or None."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return headers if headers is not None and hasattr(headers, "get") else None


def retry_after_seconds(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, from `retry-after-ms` or `Retry-After`; None if absent or unparsable.

    `Retry-After` may be a number of seconds or an HTTP date (RFC 9110); a date in the past gives 0.
    Header lookup is case-insensitive when `headers` is (httpx headers are); plain dicts are searched
    case-insensitively too.
    """
    if headers is None:
        return None
    ms = _header(headers, "retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
            if math.isfinite(value):
                return max(value, 0.0)
        except ValueError:
            pass
    raw = _header(headers, "retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
        return max(value, 0.0) if math.isfinite(value) else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None and isinstance(headers, dict):
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try a request and how long to wait in between.

    - `max_attempts`: total tries, the first included (so `max_retries + 1`).
    - `base_wait`, `max_wait`: exponential backoff `base_wait * 2**(n-1)`, capped at `max_wait`, with
      "equal jitter" (a random wait between half and all of it) so many clients do not retry in lockstep.
    - `max_retry_after`: cap on a server-requested wait, so a misbehaving server cannot park us for hours.
    - `transient`: exception types that are always retryable (the SDK's connection and timeout errors).
    - `name`: a label for the log lines ("openai", "anthropic").

    Tests set tiny waits (`base_wait=0.01`); Retry-After still applies then, as it should.
    """

    max_attempts: int = 5
    base_wait: float = 1.0
    max_wait: float = 30.0
    max_retry_after: float = 60.0
    transient: tuple[type[BaseException], ...] = field(default=(TimeoutError, ConnectionError))
    name: str = "request"

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_wait < 0 or self.max_wait < 0:
            raise ValueError("waits must be non-negative")

    @classmethod
    def from_options(
        cls, max_retries: int, retry_wait: tuple[float, float], transient: tuple[type[BaseException], ...], name: str
    ) -> RetryPolicy:
        """Build from the backends' constructor arguments (`max_retries`, `retry_wait=(base, max)`)."""
        base, cap = retry_wait
        return cls(max_attempts=max_retries + 1, base_wait=base, max_wait=cap,
                   transient=tuple(transient) + (TimeoutError, ConnectionError), name=name)

    def is_retryable(self, exc: BaseException) -> bool:
        """True for 429/408/5xx statuses and for the transient (connection/timeout) exception types.

        A server that answers `x-should-retry: false` (OpenAI and Anthropic send it) is believed.
        """
        status = status_of(exc)
        headers = headers_of(exc)
        if headers is not None and str(_header(headers, "x-should-retry") or "").lower() == "false":
            return False
        if status is not None:
            return status in RETRY_STATUSES or status >= 500
        return isinstance(exc, self.transient)

    def backoff(self, attempt: int) -> float:
        """The jittered exponential wait after failed attempt number `attempt` (1-based)."""
        ceiling = min(self.max_wait, self.base_wait * (2 ** max(attempt - 1, 0)))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def wait_for(self, exc: BaseException | None, attempt: int) -> float:
        """Seconds to wait before the next attempt: the server's Retry-After if given, else `backoff`."""
        server = retry_after_seconds(headers_of(exc)) if exc is not None else None
        if server is not None:
            return min(server, self.max_retry_after)
        return self.backoff(attempt)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return self.wait_for(exc, state.attempt_number)

    def _log(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        status = status_of(exc) if exc is not None else None
        # Only the type and status: an SDK message may quote the request, which we keep out of logs.
        cause = f"status {status}" if status is not None else type(exc).__name__
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning("%s: %s; retrying in %.2fs (attempt %d of %d)", self.name, cause, wait,
                    state.attempt_number + 1, self.max_attempts)

    def _kwargs(self) -> dict[str, Any]:
        return dict(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception(self.is_retryable),
            before_sleep=self._log,
            reraise=True,  # callers see the SDK's own exception, not tenacity.RetryError
        )

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call `fn(*args, **kwargs)` under this policy; the last exception propagates when it gives up.

        The propagated exception carries the number of attempts made (see `attempts_made`).
        """
        retrying = tenacity.Retrying(**self._kwargs())
        try:
            return retrying(fn, *args, **kwargs)
        except Exception as exc:
            exc._retry_attempts = retrying.statistics.get("attempt_number", 1)  # type: ignore[attr-defined]
            raise

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await `fn(*args, **kwargs)` under this policy (async sleeps, so the event loop keeps running)."""
        retrying = tenacity.AsyncRetrying(**self._kwargs())

        # A real coroutine function: tenacity only awaits those, and SDK methods are often sync wrappers
        # returning a coroutine (decorators hide the `async def`).
        async def attempt() -> T:
            return await fn(*args, **kwargs)

        try:
            return await retrying(attempt)
        except Exception as exc:
            exc._retry_attempts = retrying.statistics.get("attempt_number", 1)  # type: ignore[attr-defined]
            raise


def attempts_made(exc: BaseException) -> int:
    """How many attempts `RetryPolicy.call`/`acall` made before `exc` propagated (1 if unknown)."""
    return int(getattr(exc, "_retry_attempts", 1))


def as_backend_error(exc: BaseException, name: str, secrets: tuple[str | None, ...] = ()) -> BackendError:
    """Turn an SDK failure into a `BackendError` with its status and a short message.

    Every string in `secrets` (the API key) is masked, in case a server or proxy echoed it back.
    """
    status = status_of(exc)
    detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    detail = detail if len(detail) <= 600 else detail[:600] + "..."
    attempts = attempts_made(exc)
    text = f"{name} request failed"
    text += f" with status {status}" if status is not None else f" ({type(exc).__name__})"
    text += f": {detail}"
    if attempts > 1:
        text += f" (gave up after {attempts} attempts)"
    return BackendError(redact(text, secrets), status=status)


def redact(text: str, secrets: tuple[str | None, ...]) -> str:
    """`text` with every non-trivial secret replaced by `***`."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
