"""TradingView alerts: validation, stop-loss detection and the dedupe key."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from crypto_bot.domain.config import DEFAULT_STOP_LOSS_PATTERN, StrategyConfig
from crypto_bot.domain.errors import MISSING, FieldProblem, SignalRejected
from crypto_bot.domain.markets import Side
from crypto_bot.domain.money import parse_decimal

REQUIRED_FIELDS = ("time", "ticker", "order_action", "order_price", "order_comment")
OPTIONAL_FIELDS = ("strategy", "order_id", "market_position", "contracts", "interval")
# Decimal exponents (Decimal.adjusted) a price or a number of contracts may have: far beyond any real market.
MIN_MAGNITUDE = -18
MAX_MAGNITUDE = 18
DEFAULT_STOP_LOSS_REGEX = re.compile(DEFAULT_STOP_LOSS_PATTERN, re.IGNORECASE)
# {"test": true} marks an alert as a test (crypto-bot verify sends one through the webhook): recorded, never traded.
TEST_FIELD = "test"


class Desired(StrEnum):
    """Where a strategy wants to be after an alert. Spot only: long or flat."""

    LONG = "long"
    FLAT = "flat"


@dataclass(frozen=True)
class Signal:
    """A validated alert. ``payload`` keeps the original, unknown fields included."""

    strategy: str
    ticker: str
    action: Side
    time: datetime
    price: Decimal
    comment: str
    order_id: str | None
    market_position: Desired | None
    contracts: Decimal | None
    interval: str | None
    is_stop_loss: bool
    dedupe_key: str
    payload: Mapping[str, Any] = field(compare=False, repr=False)
    stop_price: Decimal | None = None  # an entry's protective stop, when the alert gives one

    @property
    def desired(self) -> Desired:
        """The state this alert asks for: ``market_position`` when given, else by action."""
        if self.market_position is not None:
            return self.market_position
        return Desired.LONG if self.action is Side.BUY else Desired.FLAT


def parse_time(value: object) -> datetime:
    """Parse an ISO-8601 time that carries a timezone; return it in UTC."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 string such as 2024-08-10T02:30:02Z")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError("is not an ISO-8601 time such as 2024-08-10T02:30:02Z") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("has no timezone; add Z or an offset such as +00:00")
    return moment.astimezone(UTC)


def is_stop_loss_comment(comment: str, pattern: re.Pattern[str] = DEFAULT_STOP_LOSS_REGEX) -> bool:
    """Say whether an ``order_comment`` marks a stop loss (default: a word starting with "stop")."""
    return pattern.search(comment) is not None


def is_test_alert(payload: object) -> bool:
    """Say whether an alert is marked as a test: a JSON object whose ``test`` field is ``true``."""
    return isinstance(payload, Mapping) and payload.get(TEST_FIELD) is True


def dedupe_key(strategy: str, action: Side, time: datetime, price: Decimal, comment: str, order_id: str | None) -> str:
    """Hash the normalized identity of an alert; two identical deliveries hash the same."""
    identity = [
        strategy,
        action.value,
        time.astimezone(UTC).isoformat(),
        format(price.normalize(), "f"),
        comment.strip(),
        order_id or "",
    ]
    return hashlib.sha256(json.dumps(identity, ensure_ascii=False).encode()).hexdigest()


def parse_signal(
    payload: object,
    config: StrategyConfig,
    *,
    stop_loss_regex: re.Pattern[str] = DEFAULT_STOP_LOSS_REGEX,
) -> Signal:
    """Validate one webhook payload against the strategy config.

    Raise :class:`SignalRejected` carrying every problem found, each naming the field
    and the offending value.
    """
    if not isinstance(payload, Mapping):
        raise SignalRejected([FieldProblem("body", payload, "must be a JSON object")])
    problems: list[FieldProblem] = []
    ticker = _text(payload, "ticker", problems, required=True)
    action_text = _text(payload, "order_action", problems, required=True)
    comment = _text(payload, "order_comment", problems, required=True)
    strategy_key = _text(payload, "strategy", problems, required=False) or ticker
    order_id = _text(payload, "order_id", problems, required=False)
    interval = _text(payload, "interval", problems, required=False)
    position_text = _text(payload, "market_position", problems, required=False)

    action = _enum_field(payload, "order_action", action_text, Side, "must be buy or sell", problems)
    position = _enum_field(
        payload, "market_position", position_text, Desired, "must be long or flat (spot cannot short)", problems
    )
    moment = _time_field(payload, problems)
    price = _positive_decimal(payload, "order_price", problems, required=True)
    contracts = _positive_decimal(payload, "contracts", problems, required=False)
    # An entry's protective stop, placed on the venue when it fills (crypto_bot.engine.stops).
    stop_price = _positive_decimal(payload, "stop_price", problems, required=False)
    if stop_price is not None and (action is not Side.BUY or (price is not None and stop_price >= price)):
        problems.append(FieldProblem("stop_price", payload.get("stop_price"), "must be below order_price, on a buy"))
    if strategy_key is not None:
        _check_strategy(payload, strategy_key, config, problems)
    stop = comment is not None and is_stop_loss_comment(comment, stop_loss_regex)
    if stop and action is Side.BUY:
        problems.append(FieldProblem("order_comment", comment, "marks a stop loss, but only a sell can be a stop loss"))

    if (
        problems
        or strategy_key is None
        or ticker is None
        or action is None
        or moment is None
        or price is None
        or comment is None
    ):
        raise SignalRejected(problems)
    return Signal(
        strategy=strategy_key,
        ticker=ticker,
        action=action,
        time=moment,
        price=price,
        comment=comment,
        order_id=order_id,
        market_position=position,
        contracts=contracts,
        interval=interval,
        is_stop_loss=stop,
        dedupe_key=dedupe_key(strategy_key, action, moment, price, comment, order_id),
        payload=dict(payload),
        stop_price=stop_price,
    )


def _text(payload: Mapping[str, Any], name: str, problems: list[FieldProblem], *, required: bool) -> str | None:
    value = payload.get(name, MISSING)
    if value is MISSING or value is None:
        if required:
            problems.append(FieldProblem(name, MISSING, "is required"))
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        problems.append(FieldProblem(name, value, "must be a string"))
        return None
    result = str(value).strip()
    if not result:
        if required:
            problems.append(FieldProblem(name, value, "must not be blank"))
        return None
    return result


def _enum_field[E: StrEnum](
    payload: Mapping[str, Any],
    name: str,
    text: str | None,
    enum: type[E],
    message: str,
    problems: list[FieldProblem],
) -> E | None:
    if text is None:
        return None
    try:
        return enum(text.lower())
    except ValueError:
        problems.append(FieldProblem(name, payload[name], message))
        return None


def _time_field(payload: Mapping[str, Any], problems: list[FieldProblem]) -> datetime | None:
    raw = payload.get("time", MISSING)
    if raw is MISSING or raw is None or (isinstance(raw, str) and not raw.strip()):
        problems.append(FieldProblem("time", raw, "is required"))
        return None
    try:
        return parse_time(raw)
    except ValueError as e:
        problems.append(FieldProblem("time", raw, str(e)))
        return None


def _check_strategy(payload: Mapping[str, Any], key: str, config: StrategyConfig, problems: list[FieldProblem]) -> None:
    strategy = config.get(key)
    field_name = "strategy" if payload.get("strategy") else "ticker"
    if strategy is None:
        known = ", ".join(sorted(config.strategies)) or "none"
        problems.append(FieldProblem(field_name, key, f"is not a configured strategy (known: {known})"))
    elif not strategy.enabled:
        problems.append(FieldProblem(field_name, key, "is disabled (its percentage is 0)"))


def _positive_decimal(
    payload: Mapping[str, Any], name: str, problems: list[FieldProblem], *, required: bool
) -> Decimal | None:
    raw = payload.get(name, MISSING)
    if raw is MISSING or raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            problems.append(FieldProblem(name, raw, "is required"))
        return None
    try:
        value = parse_decimal(raw)
    except ValueError as e:
        problems.append(FieldProblem(name, raw, f"is {e}" if str(e).startswith("not") else str(e)))
        return None
    if value <= 0:
        problems.append(FieldProblem(name, raw, "must be greater than zero"))
        return None
    if not MIN_MAGNITUDE <= value.adjusted() <= MAX_MAGNITUDE:
        # Found by the webhook fuzzer (tests/e2e/test_abuse.py): "1e999999" is a finite Decimal, became the paper
        # price, and every later report died turning it into a million-digit number. No price or amount is near this.
        problems.append(FieldProblem(name, raw, f"is out of range (1e{MIN_MAGNITUDE} to 1e{MAX_MAGNITUDE + 1})"))
        return None
    return value
