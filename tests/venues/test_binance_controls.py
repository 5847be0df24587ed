"""The kill switch and the drawdown guard through whole cycles on the emulated Binance spot venue (issue 14 §2-3).

The production adapter over ccxt's real binance class; the operator's commands are the core's, as
``crypto-bot pause`` writes them (crypto_bot.domain.controls through change_controls). Every cycle ends with
the scenario invariants (tests/venues/invariants.py).
"""

from __future__ import annotations

from decimal import Decimal as D
from functools import partial
from typing import Any

import pytest

from crypto_bot.adapters.ccxt.exchange import CcxtExchange
from crypto_bot.domain.config import StrategyConfig
from crypto_bot.domain.controls import pause, request_flatten, resume
from crypto_bot.engine.workflow import change_controls
from tests.venues.binance import Binance
from tests.venues.conftest import Bot, Clock, alert
from tests.venues.invariants import check_after_scenario

STRATEGIES = {
    "BTCUSDT": {"exchange_symbol": "BTC/USDT", "base_asset": "BTC", "percentage": "0.4"},
    "ETHUSDT": {"exchange_symbol": "ETH/USDT", "base_asset": "ETH", "percentage": "0.4"},
}
PRICES = {"BTCUSDT": "60000", "ETHUSDT": "3000"}


def bot_for(config: StrategyConfig, venue: Binance, exchange: CcxtExchange, clock: Clock) -> Bot:
    venue.deposit("USDT", D(10000))
    return Bot(exchange, config, clock)


def cycle(bot: Bot, venue: Binance, *alerts: tuple[str, ...], urgent: bool = False) -> Any:
    """Run one cycle of (ticker, action[, comment]) alerts and check every invariant after it."""
    sent = [alert(a[0], a[1], PRICES[a[0]], at=bot.clock(), comment=a[2] if len(a) > 2 else "") for a in alerts]
    report = bot.cycle(sent, urgent=urgent)
    check_after_scenario(bot.store, venue, bot.config)
    return report


def operator(bot: Bot, command: Any, **arguments: Any) -> None:
    change_controls(bot.store, partial(command, by="alice", at=bot.clock(), **arguments))


@pytest.fixture
def bot(binance_venue: Binance, binance: CcxtExchange, clock: Clock) -> Bot:
    return bot_for(StrategyConfig.from_mapping(STRATEGIES, "USDT"), binance_venue, binance, clock)


def test_a_paused_account_ignores_an_entry_and_still_sells_a_stop_loss(bot: Bot, binance_venue: Binance) -> None:
    cycle(bot, binance_venue, ("BTCUSDT", "buy"))
    operator(bot, pause, reason="maintenance")
    report = cycle(bot, binance_venue, ("ETHUSDT", "buy"), ("BTCUSDT", "sell", "Stop loss"))
    outcomes = {s.strategy: (s.status.value, s.reason) for s in report.outcomes}
    assert outcomes["ETHUSDT"] == ("ignored", "paused by the operator (alice: maintenance)")
    assert outcomes["BTCUSDT"][0] == "filled"
    assert [(o.symbol, o.side) for o in binance_venue.orders] == [("BTCUSDT", "BUY"), ("BTCUSDT", "SELL")]


def test_flatten_sells_every_position_on_the_venue_and_leaves_the_account_paused(
    bot: Bot, binance_venue: Binance
) -> None:
    cycle(bot, binance_venue, ("BTCUSDT", "buy"), ("ETHUSDT", "buy"))
    operator(bot, request_flatten, reason="")
    report = cycle(bot, binance_venue)
    assert sorted((r.intent.strategy, r.intent.purpose.value) for r in report.results) == [
        ("BTCUSDT", "exit"),
        ("ETHUSDT", "exit"),
    ]
    assert bot.store.load_ledger().long_positions() == []
    assert bot.store.get_controls().paused is not None
    later = cycle(bot, binance_venue, ("BTCUSDT", "buy"))
    assert [s.status.value for s in later.outcomes] == ["ignored"]


def test_the_account_drawdown_guard_trips_on_the_venues_prices_and_resume_releases_it(
    binance_venue: Binance, binance: CcxtExchange, clock: Clock
) -> None:
    config = StrategyConfig.from_mapping({**STRATEGIES, "guards": {"account_drawdown": "0.1"}}, "USDT")
    bot = bot_for(config, binance_venue, binance, clock)
    cycle(bot, binance_venue, ("BTCUSDT", "buy"), ("ETHUSDT", "buy"))
    binance_venue.set_price("BTCUSDT", D(45000))  # BTC and ETH -25%: 80% of the account, so equity about -20%
    binance_venue.set_price("ETHUSDT", D(2250))
    report = cycle(bot, binance_venue)
    trip = bot.store.get_controls().account_trip
    assert trip is not None
    assert "* tripped" in report.cycle.summary["controls"]
    cycle(bot, binance_venue, ("BTCUSDT", "sell"))
    held = cycle(bot, binance_venue, ("BTCUSDT", "buy"))
    assert [(s.status.value, s.reason) for s in held.outcomes] == [("ignored", trip.reason)]
    operator(bot, resume)
    resumed = cycle(bot, binance_venue, ("BTCUSDT", "buy"))
    assert [s.status.value for s in resumed.outcomes] == ["filled"]
    assert bot.store.get_controls().account_trip is None
