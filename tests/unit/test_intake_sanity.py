"""Alerts that are well formed but cannot be true here are refused at intake, with the field and the value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from crypto_bot.adapters.memory import MemoryStore
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.allocation import SignalStatus
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.domain.timeframe import Timeframe, tradingview_interval_seconds
from crypto_bot.engine.workflow import Intake, Workflow, WorkflowSettings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CONFIG = StrategyConfig.from_mapping(
    {"BTCUSD": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.5"}}, "USD"
)


def receive(payload: dict[str, Any], *, timeframe: str | None = "8h") -> Intake:
    settings = WorkflowSettings(
        mode=ExecutionMode.BOOST,
        increment=D("0.001"),
        timeframe=Timeframe.parse(timeframe) if timeframe else None,
    )
    wf = Workflow(MemoryStore(), PaperExchange(balances={"USD": D(1000)}), CONFIG, settings, lambda: NOW)
    return wf.receive(payload)


def alert(**fields: str) -> dict[str, str]:
    base = {"time": "2026-12-01T12:00:00Z", "ticker": "BTCUSD", "order_action": "buy", "order_price": "60000",
            "order_comment": "long"}  # fmt: skip
    return {**base, **fields}


@pytest.mark.parametrize(
    ("ahead", "refused"),
    [(timedelta(minutes=2), False), (timedelta(minutes=2, seconds=1), True), (timedelta(days=1500), True)],
    ids=["at-the-skew", "just-over", "years-ahead"],
)
def test_an_alert_dated_beyond_the_clock_skew_is_refused(ahead: timedelta, refused: bool) -> None:
    moment = (NOW + ahead).strftime("%Y-%m-%dT%H:%M:%SZ")
    intake = receive(alert(time=moment))
    assert (intake.record.status is SignalStatus.REJECTED) is refused
    if refused and ahead < timedelta(hours=1):
        assert intake.record.reason == (
            f"time: is 2m01s ahead of the clock (2026-12-01T12:00:00Z); at most 2m of clock skew is accepted "
            f"(got '{moment}')"
        )


def test_an_alert_from_another_charts_interval_is_refused_naming_both() -> None:
    intake = receive(alert(interval="60"))
    assert intake.record.status is SignalStatus.REJECTED
    assert intake.record.reason == (
        "interval: is another chart's timeframe: this stack trades the 8h timeframe "
        "(480 in TradingView's {{interval}}) (got '60')"
    )


@pytest.mark.parametrize(("interval", "timeframe"), [("480", "8h"), ("60", "1h"), ("1D", "1d"), ("D", "1d")])
def test_an_alert_from_the_stacks_interval_is_accepted(interval: str, timeframe: str) -> None:
    assert receive(alert(interval=interval), timeframe=timeframe).record.status is SignalStatus.RECEIVED


def test_an_unfilled_interval_placeholder_is_refused() -> None:
    intake = receive(alert(interval="{{interval}}"))
    assert intake.record.status is SignalStatus.REJECTED
    assert "interval: is not a TradingView interval" in intake.record.reason


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1", 60), ("480", 28800), ("30S", 30), ("D", 86400), ("2D", 172800), ("1W", 604800), ("1M", None), ("x", None),
     ("0", None), ("", None)],
)  # fmt: skip
def test_tradingview_intervals_are_read_as_documented(text: str, seconds: int | None) -> None:
    assert tradingview_interval_seconds(text) == seconds
