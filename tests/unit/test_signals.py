from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from crypto_bot.domain.config import StrategyConfig
from crypto_bot.domain.errors import FieldProblem, SignalRejected
from crypto_bot.domain.markets import Side
from crypto_bot.domain.signals import Desired, is_stop_loss_comment, parse_signal


def alert(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "time": "2024-08-10T02:30:02Z",
        "ticker": "BTCUSD",
        "order_action": "buy",
        "order_price": "67656.77",
        "order_comment": "long",
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not ...}


@pytest.fixture
def config() -> StrategyConfig:
    return StrategyConfig.from_mapping(
        {
            "BTCUSD": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.5"},
            "ETHUSD": {"exchange_symbol": "ETH/USD", "base_asset": "ETH", "percentage": "0.3"},
            "OFF": {"exchange_symbol": "SOL/USD", "base_asset": "SOL", "percentage": "0"},
        },
        "USD",
    )


def rejection(payload: object, config: StrategyConfig) -> str:
    with pytest.raises(SignalRejected) as info:
        parse_signal(payload, config)
    return str(info.value)


def test_seed_payload_is_accepted_with_exact_price_and_utc_time(config: StrategyConfig) -> None:
    signal = parse_signal(alert(), config)
    assert signal.strategy == "BTCUSD"
    assert signal.action is Side.BUY
    assert signal.price == Decimal("67656.77")
    assert signal.time == datetime(2024, 8, 10, 2, 30, 2, tzinfo=UTC)
    assert signal.desired is Desired.LONG
    assert not signal.is_stop_loss


def test_numeric_price_is_parsed_exactly_not_as_binary_float(config: StrategyConfig) -> None:
    assert parse_signal(alert(order_price=0.1), config).price == Decimal("0.1")


def test_strategy_field_overrides_ticker_as_the_key(config: StrategyConfig) -> None:
    signal = parse_signal(alert(ticker="BTCUSDT", strategy="ETHUSD"), config)
    assert signal.strategy == "ETHUSD"
    assert signal.ticker == "BTCUSDT"


def test_action_is_case_insensitive(config: StrategyConfig) -> None:
    assert parse_signal(alert(order_action="SELL"), config).action is Side.SELL


def test_unknown_extra_fields_are_kept(config: StrategyConfig) -> None:
    signal = parse_signal(alert(exchange="COINBASE", note="x"), config)
    assert signal.payload["exchange"] == "COINBASE"


def test_time_offset_is_normalized_to_utc(config: StrategyConfig) -> None:
    signal = parse_signal(alert(time="2024-08-10T04:30:02+02:00"), config)
    assert signal.time == datetime(2024, 8, 10, 2, 30, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("time", ..., "time: is required"),
        ("time", "  ", "time: is required"),
        ("time", "yesterday", "time: is not an ISO-8601 time"),
        ("time", "2024-08-10T02:30:02", "time: has no timezone"),
        ("ticker", ..., "ticker: is required"),
        ("ticker", "", "ticker: must not be blank"),
        ("order_action", "hold", "order_action: must be buy or sell (got 'hold')"),
        ("order_action", ..., "order_action: is required"),
        ("order_price", "abc", "order_price: is not a number (got 'abc')"),
        ("order_price", "{{strategy.order.price}}", "order_price: is not a number"),
        ("order_price", "-5", "order_price: must be greater than zero (got '-5')"),
        ("order_price", 0, "order_price: must be greater than zero (got 0)"),
        ("order_price", "NaN", "order_price: is not a finite number"),
        ("order_price", "Infinity", "order_price: is not a finite number"),
        ("order_price", True, "order_price: a boolean is not a number"),
        ("order_comment", ..., "order_comment: is required"),
        ("ticker", "DOGEUSD", "ticker: is not a configured strategy (known: BTCUSD, ETHUSD, OFF) (got 'DOGEUSD')"),
        ("ticker", "OFF", "ticker: is disabled (its percentage is 0) (got 'OFF')"),
        ("market_position", "short", "market_position: must be long or flat"),
        ("ticker", ["BTCUSD"], "ticker: must be a string"),
    ],
)
def test_each_bad_field_gets_a_specific_error_naming_field_and_value(
    config: StrategyConfig, field: str, value: object, expected: str
) -> None:
    assert expected in rejection(alert(**{field: value}), config)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("-0.1"), "-0.1"),  # not Decimal('-0.1')
        (Decimal("1E+12"), "1E+12"),
        (-0.1, "-0.1"),
        (0, "0"),
        ("hold", "'hold'"),
        ("it's", "'it's'"),  # single quotes always, where repr would switch to double ones
        ("a\nb", "'a\\nb'"),  # a control character stays escaped: the reason is one line
        (True, "true"),
        (None, "null"),
        ("x" * 100, "'" + "x" * 76 + "..."),
    ],
)
def test_a_rejected_value_is_shown_as_the_trader_wrote_it(value: object, shown: str) -> None:
    assert str(FieldProblem("order_price", value, "is wrong")) == f"order_price: is wrong (got {shown})"


def test_every_problem_is_reported_at_once(config: StrategyConfig) -> None:
    with pytest.raises(SignalRejected) as info:
        parse_signal(alert(order_action="hold", order_price="x", time="bad"), config)
    assert {p.field for p in info.value.problems} == {"order_action", "order_price", "time"}


def test_non_object_body_is_rejected(config: StrategyConfig) -> None:
    assert "body: must be a JSON object" in rejection(["not", "an", "object"], config)


@pytest.mark.parametrize("comment", ["Stop loss", "stop_loss", "StopLoss", "STOP", "trail stop hit", "SL: stop-out"])
def test_stop_words_are_stop_losses(comment: str) -> None:
    assert is_stop_loss_comment(comment)


@pytest.mark.parametrize("comment", ["nonstop", "long", "exit", "unstoppable", "_stop", "estop"])
def test_words_that_merely_contain_stop_are_not_stop_losses(comment: str) -> None:
    assert not is_stop_loss_comment(comment)


def test_sell_with_stop_comment_is_a_stop_loss(config: StrategyConfig) -> None:
    assert parse_signal(alert(order_action="sell", order_comment="Stop loss"), config).is_stop_loss


def test_buy_with_stop_comment_is_rejected(config: StrategyConfig) -> None:
    assert "only a sell can be a stop loss" in rejection(alert(order_comment="stop entry"), config)


def test_stop_pattern_is_configurable(config: StrategyConfig) -> None:
    payload = alert(order_action="sell", order_comment="SL hit")
    assert not parse_signal(payload, config).is_stop_loss
    assert parse_signal(payload, config, stop_loss_regex=re.compile(r"\bSL\b")).is_stop_loss


def test_market_position_sets_the_desired_state(config: StrategyConfig) -> None:
    signal = parse_signal(alert(order_action="buy", market_position="flat"), config)
    assert signal.desired is Desired.FLAT


def test_identical_deliveries_share_a_dedupe_key(config: StrategyConfig) -> None:
    first = parse_signal(alert(), config)
    again = parse_signal(alert(order_price="67656.770", time="2024-08-10T02:30:02+00:00"), config)
    assert first.dedupe_key == again.dedupe_key


@pytest.mark.parametrize(
    "change",
    [
        {"order_action": "sell"},
        {"order_price": "67656.78"},
        {"time": "2024-08-10T02:30:03Z"},
        {"order_comment": "long 2"},
        {"order_id": "L2"},
        {"ticker": "ETHUSD"},
    ],
)
def test_any_identity_change_changes_the_dedupe_key(config: StrategyConfig, change: dict[str, str]) -> None:
    assert parse_signal(alert(), config).dedupe_key != parse_signal(alert(**change), config).dedupe_key
