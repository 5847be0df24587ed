"""Protective stops through whole cycles on the emulated Binance spot venue (issue 14 §1).

The production adapter (``CcxtExchange`` over ccxt's real binance class) places a real ``STOP_LOSS_LIMIT`` after
each entry, the workflow cancels it before its strategy sells and books it when it filled between cycles. The
emulator follows binance-spot-api-docs (tests/venues/binance.py; its stops: tests/venues/test_binance_stops.py).
Every cycle ends with the scenario invariants: the ledger equals the venue's totals (a resting stop's locked
coins included), no order twice, nothing working but the stops the ledger owns, every signal settled.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from crypto_bot.adapters.ccxt.exchange import CcxtExchange
from crypto_bot.domain.config import StrategyConfig
from crypto_bot.engine.stops import STOP_FILLED
from tests.venues.binance import Binance
from tests.venues.conftest import Bot, Clock, alert
from tests.venues.invariants import check_after_scenario

CONFIG = StrategyConfig.from_mapping(
    {
        "BTCUSDT": {
            "exchange_symbol": "BTC/USDT",
            "base_asset": "BTC",
            "percentage": "0.5",
            "protective_stop": {"percent": "0.05"},
        }
    },
    "USDT",
)


@pytest.fixture
def bot(binance_venue: Binance, binance: CcxtExchange, clock: Clock) -> Bot:
    binance_venue.deposit("USDT", D(10000))
    return Bot(binance, CONFIG, clock)


def cycle(bot: Bot, venue: Binance, action: str = "", *, comment: str = "", urgent: bool = False) -> Any:
    alerts = [alert("BTCUSDT", action, "60000", at=bot.clock(), comment=comment)] if action else []
    report = bot.cycle(alerts, urgent=urgent)
    check_after_scenario(bot.store, venue, CONFIG)
    return report


def stops(venue: Binance) -> list[Any]:
    return [o for o in venue.orders if o.type == "STOP_LOSS_LIMIT"]


def test_an_entry_places_a_stop_loss_limit_for_the_ledger_amount_and_an_exit_cancels_it_first(
    bot: Bot, binance_venue: Binance
) -> None:
    cycle(bot, binance_venue, "buy")
    position = bot.store.load_ledger().position(CONFIG["BTCUSDT"])
    (stop,) = stops(binance_venue)
    # 5% below the average cost, on the tick.
    # The ledger holds the buy's BTC after its commission; the stop sells it all, to the lot (0.00001 BTC).
    assert (stop.status, stop.side, stop.orig_qty) == ("NEW", "SELL", D("0.08307"))
    assert position.amount == D("0.08307684")
    assert stop.stop_price == (position.cost_basis / position.amount * D("0.95")).quantize(D("0.01"))
    assert binance_venue.balances["BTC"].locked == D("0.08307")

    report = cycle(bot, binance_venue, "sell")
    assert stops(binance_venue)[0].status == "CANCELED"
    (exit_,) = report.results
    assert exit_.filled == D("0.08307")
    # The cancel came before the sell: the venue saw them in this order.
    kinds = [(o.type, o.side) for o in binance_venue.orders]
    assert kinds == [("LIMIT", "BUY"), ("STOP_LOSS_LIMIT", "SELL"), ("LIMIT", "SELL")]


def test_a_stop_that_triggers_between_cycles_is_booked_once_as_the_exit(bot: Bot, binance_venue: Binance) -> None:
    cycle(bot, binance_venue, "buy")
    (stop,) = stops(binance_venue)
    # A trade below the stop and above its limit: the stop triggers, its limit takes the bid and fills.
    binance_venue.set_price("BTCUSDT", stop.stop_price - D(10))
    assert stops(binance_venue)[0].status == "FILLED"

    report = cycle(bot, binance_venue, "sell", comment="Stop loss", urgent=True)
    assert report.results == []
    (signal,) = report.outcomes
    assert signal.status.value == "ignored"
    assert signal.reason.startswith(STOP_FILLED)
    ledger = bot.store.load_ledger()
    assert ledger.position(CONFIG["BTCUSDT"]).amount == 0
    # Below the lot, what the stop could not sell is the asset's dust, as after an exit.
    assert ledger.dust == {"BTC": D("0.00000684")}
    assert [o.type for o in binance_venue.orders] == ["LIMIT", "STOP_LOSS_LIMIT"]  # nothing sold twice


def test_a_stop_that_fills_in_the_race_with_the_exits_cancel_is_looked_up_and_booked_once(
    bot: Bot, binance_venue: Binance, binance: CcxtExchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stop fills after the cycle's check read it resting and before the exit cancels it. Binance answers the
    # cancel of a filled order with -2011 "Unknown order sent." (errors.md), which ccxt raises as OrderNotFound:
    # the order is read again, and its fill is booked as the exit; nothing is sold twice.
    cycle(bot, binance_venue, "buy")
    (stop,) = stops(binance_venue)
    real_cancel = binance.cancel_order

    def cancel_after_the_fall(order_id: str, symbol: str) -> Any:
        binance_venue.set_price("BTCUSDT", stop.stop_price - D(10))
        return real_cancel(order_id, symbol)

    monkeypatch.setattr(binance, "cancel_order", cancel_after_the_fall)
    report = cycle(bot, binance_venue, "sell")
    assert stops(binance_venue)[0].status == "FILLED"
    assert [o.type for o in binance_venue.orders] == ["LIMIT", "STOP_LOSS_LIMIT"]
    assert report.cycle.stops["BTCUSDT"].startswith(STOP_FILLED)
    assert bot.store.load_ledger().position(CONFIG["BTCUSDT"]).amount == 0
