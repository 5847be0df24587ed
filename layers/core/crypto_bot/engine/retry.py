"""Retry transient exchange errors with exponential backoff, in one place."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from crypto_bot.domain.errors import TransientExchangeError


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry. Delays: base, base×factor, ... capped."""

    attempts: int = 4
    base_delay: float = 0.5
    factor: float = 2.0
    max_delay: float = 8.0
    # The longest wait a venue's Retry-After may ask for before this caller gives the retry up to its own
    # caller instead (a Lambda should not sleep through its timeout; Step Functions retries later).
    max_retry_after: float = 60.0

    def delay(self, retry_number: int) -> float:
        return float(min(self.base_delay * self.factor**retry_number, self.max_delay))


NO_RETRY = RetryPolicy(attempts=1)


def call_with_retry[T](
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, TransientExchangeError], None] | None = None,
) -> T:
    """Call ``fn``; on a transient error wait and call again, up to ``policy.attempts`` calls.

    Permanent errors and anything else propagate at once. The last transient error
    propagates when the attempts run out.
    """
    if policy.attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {policy.attempts}")
    for attempt in range(policy.attempts):
        try:
            return fn()
        except TransientExchangeError as e:
            # Retrying before the venue's Retry-After is what turns a 429 into a ban (Binance: HTTP 418,
            # "from 2 minutes to 3 days", binance-spot-api-docs rest-api.md "LIMITS").
            asked = e.retry_after or 0.0
            if attempt + 1 >= policy.attempts or asked > policy.max_retry_after:
                raise
            if on_retry is not None:
                on_retry(attempt + 1, e)
            sleep(max(policy.delay(attempt), asked))
    raise AssertionError("unreachable")  # pragma: no cover
