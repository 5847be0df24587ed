"""The project's error hierarchy.

Vendor errors (ccxt, botocore) are translated into these classes at the adapter
boundary, always with ``raise ... from e``. Every exchange error says whether it is
*transient* (worth retrying with backoff) or *permanent* (record, notify, move on).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar


class CryptoBotError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(CryptoBotError):
    """A strategy config file or a setting is missing or invalid."""


@dataclass(frozen=True)
class FieldProblem:
    """One problem with one field of an input, with the offending value."""

    field: str
    value: Any
    message: str

    def __str__(self) -> str:
        if self.value is _MISSING:
            return f"{self.field}: {self.message}"
        return f"{self.field}: {self.message} (got {_show(self.value)})"


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()
MISSING: Any = _MISSING
"""Marker for a field that is absent, so messages do not print a bogus value."""


def _show(value: Any) -> str:
    """Show a value as the trader wrote it: numbers plainly, text in single quotes, JSON's true/false/null."""
    text = _as_written(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _as_written(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, Decimal | int | float):
        try:
            # str keeps an exponent (1E+12) where there is one, so a huge number stays short.
            return str(value)
        except ValueError:  # an int beyond Python's 4300-digit conversion limit
            return "a number of more than 4300 digits"
    if isinstance(value, str):
        # Single quotes always (repr switches to double quotes around a '); control characters stay escaped,
        # so a message is one line and shows what was really sent.
        shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
        return f"'{shown}'"
    return repr(value)


class InputError(CryptoBotError):
    """An input (alert, config entry, CSV row) failed validation.

    It carries every problem found, not just the first, so one round trip fixes all.
    """

    def __init__(self, what: str, problems: list[FieldProblem] | tuple[FieldProblem, ...]) -> None:
        self.what = what
        self.problems: tuple[FieldProblem, ...] = tuple(problems)
        super().__init__(f"{what}: " + "; ".join(str(p) for p in self.problems))


class SignalRejected(InputError):
    """A webhook alert was rejected; ``problems`` says why, field by field."""

    def __init__(self, problems: list[FieldProblem] | tuple[FieldProblem, ...]) -> None:
        super().__init__("invalid alert", problems)


class ExchangeError(CryptoBotError):
    """An exchange call failed. ``transient`` says whether a retry may succeed."""

    transient: ClassVar[bool] = False


class TransientExchangeError(ExchangeError):
    """Worth retrying with backoff: the same call may succeed later.

    ``retry_after`` is how long the venue asked us to wait, in seconds (an HTTP ``Retry-After``), if it said.
    """

    transient: ClassVar[bool] = True
    retry_after: float | None = None


class ExchangeNetworkError(TransientExchangeError):
    """The request did not get a usable answer (connection reset, DNS, 5xx)."""


class OutcomeUnknown(ExchangeNetworkError):
    """The venue may or may not have executed the request: an HTTP 5xx, a lost or garbled answer.

    Binance documents this for HTTP 5xx and for codes -1000, -1001, -1006 and -1007 ("execution status
    unknown", binance-spot-api-docs rest-api.md "HTTP Return Codes" and errors.md). Retrying a *read* is safe;
    after a *placement* that raised this, the order must be looked up by its client id before anything else,
    exactly as after a timeout.
    """


class RequestTimeout(OutcomeUnknown):
    """No answer in time. The request *may* have been executed: look before re-sending."""


class RateLimited(TransientExchangeError):
    """The exchange throttled us (HTTP 429 or its own rate-limit code)."""


class ExchangeUnavailable(TransientExchangeError):
    """The exchange is down or in maintenance."""


class PermanentExchangeError(ExchangeError):
    """Retrying the same call will fail the same way: record it and notify."""


class InsufficientFunds(PermanentExchangeError):
    """The account balance cannot cover the order."""


class InvalidOrder(PermanentExchangeError):
    """The exchange refused the order's parameters (precision, minimums, price band)."""


class AuthenticationFailed(PermanentExchangeError):
    """The API key is wrong, expired, or lacks the trade permission."""


class BadSymbol(PermanentExchangeError):
    """The exchange does not list this market."""


class OrderNotFound(PermanentExchangeError):
    """No order with that id exists on the exchange."""


class UnsupportedExchange(PermanentExchangeError):
    """The exchange id is not one ccxt knows, or lacks a feature we need."""


class StoreError(CryptoBotError):
    """The store (DynamoDB) failed in a way the caller cannot fix."""


class StoreUnavailable(StoreError):
    """The store throttled us or had a server error: retry with backoff."""


class StoreConflict(StoreError):
    """Someone else changed the record since we read it (optimistic locking): re-run the step."""


class LockLost(CryptoBotError):
    """The cycle's lock lease expired and another cycle took it: stop before trading."""
