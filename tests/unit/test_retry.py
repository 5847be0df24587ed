"""The one retry loop: backoff on transient errors, and a venue's Retry-After respected."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from crypto_bot.domain.errors import InvalidOrder, RateLimited, TransientExchangeError
from crypto_bot.engine.retry import RetryPolicy, call_with_retry


def failing(errors: list[Exception]) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "ok"

    return calls, fn


def limited(retry_after: float | None) -> RateLimited:
    error = RateLimited("429")
    error.retry_after = retry_after
    return error


def test_transient_errors_are_retried_with_exponential_backoff() -> None:
    sleeps: list[float] = []
    calls, fn = failing([TransientExchangeError("a"), TransientExchangeError("b")])
    assert call_with_retry(fn, RetryPolicy(attempts=3), sleep=sleeps.append) == "ok"
    assert (len(calls), sleeps) == (3, [0.5, 1.0])


def test_a_permanent_error_is_not_retried() -> None:
    sleeps: list[float] = []
    calls, fn = failing([InvalidOrder("no")])
    with pytest.raises(InvalidOrder):
        call_with_retry(fn, RetryPolicy(), sleep=sleeps.append)
    assert (len(calls), sleeps) == (1, [])


def test_a_retry_waits_at_least_as_long_as_the_venues_retry_after() -> None:
    sleeps: list[float] = []
    _calls, fn = failing([limited(30), limited(None)])
    call_with_retry(fn, RetryPolicy(), sleep=sleeps.append)
    assert sleeps == [30, 1.0]


def test_a_retry_after_longer_than_the_policy_allows_is_handed_to_the_caller() -> None:
    sleeps: list[float] = []
    calls, fn = failing([limited(61)])
    with pytest.raises(RateLimited):
        call_with_retry(fn, RetryPolicy(max_retry_after=60), sleep=sleeps.append)
    assert (len(calls), sleeps) == (1, [])
