"""The shared retry policy, without any server: what is retried, how long it waits, how it gives up."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from backends.base import BackendError
from backends.retry import RetryPolicy, as_backend_error, attempts_made, retry_after_seconds


class StatusError(Exception):
    """Shaped like the SDKs' APIStatusError: `status_code` and `response.headers`."""

    def __init__(self, status: int, headers: dict[str, str] | None = None, message: str = "boom"):
        super().__init__(message)
        self.status_code = status
        self.message = message
        self.response = type("Response", (), {"headers": headers or {}})()


class Flaky:
    """Raises the given exceptions in turn, then returns "done"."""

    def __init__(self, *errors: BaseException):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


FAST = RetryPolicy(max_attempts=4, base_wait=0.001, max_wait=0.002)


def test_retry_after_forms():
    assert retry_after_seconds({"Retry-After": "3"}) == 3.0
    assert retry_after_seconds({"retry-after": "0.5"}) == 0.5
    # The millisecond header wins: it is the more precise of the two.
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    now = time.time()
    future = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds({"Retry-After": future}, now=now) == pytest.approx(30, abs=1.5)
    past = email.utils.formatdate(now - 300, usegmt=True)
    assert retry_after_seconds({"Retry-After": past}, now=now) == 0.0
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None
    assert retry_after_seconds(None) is None


def test_what_is_retryable():
    policy = RetryPolicy(transient=(OSError,))
    assert policy.is_retryable(StatusError(429))
    assert policy.is_retryable(StatusError(408))
    assert policy.is_retryable(StatusError(500))
    assert policy.is_retryable(StatusError(529))
    for status in (400, 401, 403, 404, 409, 422):
        assert not policy.is_retryable(StatusError(status)), status
    assert not policy.is_retryable(StatusError(503, {"x-should-retry": "false"}))
    assert policy.is_retryable(OSError("reset"))
    assert not policy.is_retryable(ValueError("bad input"))


def test_backoff_is_jittered_exponential_and_capped():
    policy = RetryPolicy(base_wait=1.0, max_wait=5.0)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (10, 5.0)]:
        waits = [policy.backoff(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1  # jitter: not all the same


def test_server_wait_wins_but_is_capped():
    policy = RetryPolicy(base_wait=0.001, max_wait=0.001, max_retry_after=60.0)
    assert policy.wait_for(StatusError(429, {"Retry-After": "2"}), attempt=1) == 2.0
    assert policy.wait_for(StatusError(429, {"Retry-After": "3600"}), attempt=1) == 60.0
    assert policy.wait_for(StatusError(503), attempt=1) <= 0.001


def test_call_retries_until_success():
    fn = Flaky(StatusError(429), StatusError(502), ConnectionError("reset"))
    assert FAST.call(fn) == "done"
    assert fn.calls == 4


def test_call_never_retries_client_errors():
    fn = Flaky(StatusError(400))
    with pytest.raises(StatusError) as info:
        FAST.call(fn)
    assert fn.calls == 1
    assert attempts_made(info.value) == 1


def test_call_gives_up_after_max_attempts():
    fn = Flaky(*[StatusError(500) for _ in range(10)])
    with pytest.raises(StatusError) as info:
        FAST.call(fn)
    assert fn.calls == 4
    assert attempts_made(info.value) == 4


def test_call_sleeps_what_the_server_asked():
    fn = Flaky(StatusError(429, {"retry-after-ms": "120"}))
    start = time.monotonic()
    assert FAST.call(fn) == "done"
    assert 0.11 <= time.monotonic() - start < 1.0


def test_acall_retries_and_awaits():
    calls = []

    async def fn(x):
        calls.append(x)
        if len(calls) < 3:
            raise StatusError(503)
        return x * 2

    assert asyncio.run(FAST.acall(fn, 21)) == 42
    assert calls == [21, 21, 21]


def test_acall_gives_up_on_client_error():
    async def fn():
        raise StatusError(404)

    with pytest.raises(StatusError):
        asyncio.run(FAST.acall(fn))


def test_backend_error_carries_status_and_masks_secrets():
    secret = "sk-very-secret-123456"
    exc = StatusError(401, message=f"Incorrect API key provided: {secret}")
    exc._retry_attempts = 3
    err = as_backend_error(exc, "openai", (secret,))
    assert isinstance(err, BackendError)
    assert err.status == 401
    assert secret not in str(err)
    assert "***" in str(err) and "openai" in str(err) and "3 attempts" in str(err)


def test_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
