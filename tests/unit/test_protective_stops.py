"""Protective stops resting on the venue, through whole cycles of the workflow on the paper exchange (issue 14 §1).

The paper exchange triggers a resting stop when its price reaches the stop (tests/unit/test_paper_stops.py);
the workflow places one after each entry, cancels it before any sell of its strategy, and books one that filled
between cycles as that strategy's exit. The executed state machine and the emulated Binance venue run the same
code: tests/integration/test_protective_stops_cycle.py. After every cycle the ledger equals the balances,
locked amounts included.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from crypto_bot.adapters.memory import MemoryStore
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.domain.orders import OrderStatus
from crypto_bot.domain.signals import parse_signal
from crypto_bot.domain.timeframe import Timeframe
from crypto_bot.engine.retry import NO_RETRY
from crypto_bot.engine.stops import STOP_FILLED
from crypto_bot.engine.workflow import Workflow, WorkflowSettings
from crypto_bot_tools.cycle import CycleReport, Engine

START = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
BAR = timedelta(hours=8)
FIVE_PERCENT = {"percent": "0.05"}


class Account:
    def __init__(self, strategies: Mapping[str, Mapping[str, Any]], mode: ExecutionMode = ExecutionMode.MULTI) -> None:
        self.config = StrategyConfig.from_mapping(dict(strategies), "USDT")
        self.exchange = PaperExchange(balances={"USDT": D(10000)}, prices={"BTC/USDT": D(60000), "ETH/USDT": D(3000)})
        self.store = MemoryStore()
        self.now = START
        settings = WorkflowSettings(
            mode=mode, increment=D("0.001"), fill_timeout=timedelta(0), timeframe=Timeframe.parse("8h")
        )
        self.workflow = Workflow(self.store, self.exchange, self.config, settings, lambda: self.now)
        self.engine = Engine(self.workflow, check_interval=0, place_retry=NO_RETRY, sleep=lambda _s: None)
        self.cycles = 0

    def alert(self, ticker: str, action: str, *, comment: str = "", **extra: str) -> dict[str, str]:
        price = self.exchange.prices[self.config[ticker].symbol]
        return {
            "time": self.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ticker": ticker,
            "order_action": action,
            "order_price": str(price),
            "order_comment": comment or ("long" if action == "buy" else "exit"),
            **extra,
        }

    def cycle(self, *alerts: dict[str, str], urgent: bool = False) -> CycleReport:
        signals = [parse_signal(a, self.config) for a in alerts]
        self.cycles += 1
        report = self.engine.run_cycle(signals, cycle_id=f"c{self.cycles}", at=self.now, urgent=urgent)
        self.now += BAR
        assert_ledger_is_the_account(self)
        return report

    def position(self, key: str) -> Any:
        return self.store.load_ledger().position(self.config[key])

    def stops(self) -> list[Any]:
        return [o for o in self.exchange.orders() if o.stop_price is not None]


def assert_ledger_is_the_account(account: Account) -> None:
    balances = account.exchange.fetch_balances()
    for asset, amount in account.store.load_ledger().amounts_by_asset().items():
        assert balances[asset].total == amount, asset


BTC = {"exchange_symbol": "BTC/USDT", "base_asset": "BTC", "percentage": "0.4", "protective_stop": FIVE_PERCENT}
ETH = {"exchange_symbol": "ETH/USDT", "base_asset": "ETH", "percentage": "0.4"}


def test_an_entry_places_a_stop_for_exactly_its_ledger_amount_below_its_average_cost() -> None:
    account = Account({"BTCUSDT": BTC, "ETHUSDT": ETH})
    report = account.cycle(account.alert("BTCUSDT", "buy"), account.alert("ETHUSDT", "buy"))

    position = account.position("BTCUSDT")
    (stop,) = account.stops()
    assert stop.status is OrderStatus.OPEN
    assert stop.amount == position.amount
    average = position.cost_basis / position.amount
    assert stop.stop_price == (average * D("0.95")).quantize(D("0.01"))
    assert position.stop is not None
    assert position.stop.order_id == stop.id
    # The stop locks the coins it would sell: none of them is free, all of them are the strategy's.
    balance = account.exchange.fetch_balances()["BTC"]
    assert (balance.free, balance.used) == (D(0), position.amount)
    # ETHUSDT asked for no stop and gets none.
    assert account.position("ETHUSDT").stop is None
    assert report.cycle.summary["notes"]["BTCUSDT protective stop"].startswith("protective stop placed: sell ")


def test_an_alerts_stop_price_places_the_stop_there() -> None:
    account = Account({"BTCUSDT": BTC, "ETHUSDT": ETH})
    account.cycle(account.alert("ETHUSDT", "buy", stop_price="2800"))
    (stop,) = account.stops()
    assert (stop.symbol, stop.stop_price) == ("ETH/USDT", D(2800))


def test_an_exit_cancels_the_stop_first_and_sells_the_whole_position() -> None:
    account = Account({"BTCUSDT": BTC, "ETHUSDT": ETH})
    account.cycle(account.alert("BTCUSDT", "buy"))
    amount = account.position("BTCUSDT").amount

    report = account.cycle(account.alert("BTCUSDT", "sell"))

    (stop,) = account.stops()
    assert stop.status is OrderStatus.CANCELED
    assert stop.filled == 0
    (exit_,) = report.results
    assert (exit_.intent.purpose.value, exit_.filled) == ("exit", amount)
    assert account.position("BTCUSDT").amount == 0
    assert account.position("BTCUSDT").stop is None
    assert report.cycle.stops == {"BTCUSDT": "protective stop cancelled before selling"}


def test_a_stop_that_fills_between_cycles_is_booked_once_as_the_exit_and_the_late_stop_alert_is_ignored() -> None:
    account = Account({"BTCUSDT": BTC, "ETHUSDT": ETH})
    account.cycle(account.alert("BTCUSDT", "buy"))
    amount = account.position("BTCUSDT").amount
    cash_before = account.exchange.fetch_balances()["USDT"].total

    # Through the stop (57,000) but above its limit (1% below it): the stop triggers and its limit fills.
    account.exchange.set_price("BTC/USDT", D(56800))

    report = account.cycle(account.alert("BTCUSDT", "sell", comment="Stop loss"), urgent=True)
    position = account.position("BTCUSDT")
    assert (position.amount, position.stop, position.cost_basis) == (0, None, 0)
    assert position.stopped_at is not None
    (stop,) = account.stops()
    assert (stop.status, stop.filled) == (OrderStatus.CLOSED, amount)
    assert account.exchange.fetch_balances()["USDT"].total == cash_before + stop.cost
    # The TradingView stop-loss alert of the same trade sells nothing more.
    assert report.results == []
    (signal,) = report.outcomes
    assert signal.status.value == "ignored"
    assert signal.reason.startswith(f"{STOP_FILLED} at ")
    assert report.cycle.stops["BTCUSDT"].startswith(f"{STOP_FILLED}: sold {amount} at ")
    # Booked once: another cycle reads nothing more, and the audit trail has one entry for the stop.
    account.cycle()
    entries = [e for e in account.store.audit if e.order_id == stop.id]
    assert len(entries) == 1
    assert entries[0].base_delta == -amount


def test_a_stop_that_fills_in_the_race_with_an_exit_is_booked_once_and_never_sold_twice() -> None:
    account = Account({"BTCUSDT": BTC, "ETHUSDT": ETH})
    account.cycle(account.alert("BTCUSDT", "buy"))
    amount = account.position("BTCUSDT").amount
    # The stop fills after the cycle opened (its check saw it resting) and before the exit's cancel.
    real_cancel = account.exchange.cancel_order

    def cancel_after_the_fall(order_id: str, symbol: str) -> Any:
        account.exchange.set_price("BTC/USDT", D(56800))
        return real_cancel(order_id, symbol)

    account.exchange.cancel_order = cancel_after_the_fall  # type: ignore[method-assign]
    report = account.cycle(account.alert("BTCUSDT", "sell"))

    (stop,) = account.stops()
    assert (stop.status, stop.filled) == (OrderStatus.CLOSED, amount)
    assert [o.side.value for o in account.exchange.orders() if o.stop_price is None] == ["buy"]  # no sell sent
    assert account.position("BTCUSDT").amount == 0
    assert report.cycle.stops["BTCUSDT"].startswith(STOP_FILLED)


def test_two_strategies_on_one_asset_each_keep_their_own_stop() -> None:
    slow = {**BTC, "percentage": "0.3"}
    fast = {**BTC, "percentage": "0.3", "protective_stop": {"percent": "0.02"}}
    account = Account({"BTCSLOW": slow, "BTCFAST": fast})
    account.cycle(account.alert("BTCSLOW", "buy"), account.alert("BTCFAST", "buy"))
    stops = {o.id: o for o in account.stops()}
    assert len(stops) == 2
    for key in ("BTCSLOW", "BTCFAST"):
        position = account.position(key)
        assert stops[position.stop.order_id].amount == position.amount

    # The price falls through the fast strategy's stop only.
    account.exchange.set_price("BTC/USDT", D(58500))
    account.cycle()
    assert account.position("BTCFAST").amount == 0
    assert account.position("BTCSLOW").stop is not None
    # The slow one exits by its alert: its own stop is cancelled, the coins it owns are sold, nothing else.
    slow_amount = account.position("BTCSLOW").amount
    report = account.cycle(account.alert("BTCSLOW", "sell"))
    assert [r.filled for r in report.results] == [slow_amount]
    assert "BTC" not in account.exchange.fetch_balances()


def test_a_price_that_gaps_below_the_stops_limit_leaves_it_resting_and_the_exit_alert_sells() -> None:
    # A stop-limit is no market order: a fall through its limit triggers it, and its limit rests on the book
    # unfilled. The strategy is still long; its exit alert cancels the triggered stop and sells at the market.
    account = Account({"BTCUSDT": BTC, "ETHUSDT": ETH})
    account.cycle(account.alert("BTCUSDT", "buy"))
    amount = account.position("BTCUSDT").amount
    account.exchange.set_price("BTC/USDT", D(50000))
    (stop,) = account.stops()
    assert (stop.triggered, stop.filled) == (True, 0)
    report = account.cycle(account.alert("BTCUSDT", "sell", comment="Stop loss"), urgent=True)
    assert [r.filled for r in report.results] == [amount]
    assert account.stops()[0].status is OrderStatus.CANCELED
    assert account.position("BTCUSDT").amount == 0


def test_a_venue_without_stop_orders_is_told_in_the_notes_and_nothing_is_sent() -> None:
    account = Account({"BTCUSDT": BTC, "ETHUSDT": ETH})
    account.exchange.supports_stop_orders = False
    report = account.cycle(account.alert("BTCUSDT", "buy"))
    assert account.stops() == []
    assert report.cycle.stops == {"BTCUSDT": "protective stop not placed: paper has no stop orders here"}


def test_a_bad_protective_stop_or_stop_price_names_the_field_and_the_value() -> None:
    from crypto_bot.domain.errors import ConfigError, SignalRejected

    with pytest.raises(ConfigError) as config:
        StrategyConfig.from_mapping({"BTCUSDT": {**BTC, "protective_stop": {"percent": "5"}}}, "USDT")
    assert "['BTCUSDT'].protective_stop.percent: must be in (0, 1) (0.05 means 5%) (got '5')" in str(config.value)
    account = Account({"BTCUSDT": BTC})
    with pytest.raises(SignalRejected) as alert:
        parse_signal(account.alert("BTCUSDT", "buy", stop_price="61000"), account.config)
    assert str(alert.value.problems[0]) == "stop_price: must be below order_price, on a buy (got '61000')"


def test_a_stop_that_fills_in_parts_is_booked_part_by_part_never_twice() -> None:
    account = Account({"BTCUSDT": BTC, "ETHUSDT": ETH})
    account.cycle(account.alert("BTCUSDT", "buy"))
    amount = account.position("BTCUSDT").amount
    account.exchange.partial_fill_ratio = D("0.5")  # a marketable order fills half at once, the rest rests
    account.exchange.set_price("BTC/USDT", D(56800))
    account.cycle()
    half = account.position("BTCUSDT")
    assert half.stop is not None
    assert 0 < half.amount < amount
    assert half.amount == amount - half.stop.filled
    account.cycle()  # read again, nothing new: nothing booked
    assert account.position("BTCUSDT") == half
    account.exchange.set_price("BTC/USDT", D(57200))  # back above the resting limit: the rest fills
    account.cycle()
    assert account.position("BTCUSDT").amount == 0
    assert len([e for e in account.store.audit if e.order_id == half.stop.order_id]) == 2


@pytest.mark.parametrize("asked", ["config", "alert"])
def test_a_sell_down_lifts_the_stop_and_the_cycle_places_one_for_what_is_left(asked: str) -> None:
    # Boost: BTCUSDT enters alone and takes ETHUSDT's idle share; when ETHUSDT enters, BTCUSDT (the precedence
    # strategy by key, at equal percentages) is sold down to its own 40%, and its stop follows it at its price,
    # whether the config or the entry alert set it.
    btc = BTC if asked == "config" else {k: v for k, v in BTC.items() if k != "protective_stop"}
    account = Account({"BTCUSDT": btc, "ETHUSDT": ETH}, ExecutionMode.BOOST)
    extra = {} if asked == "config" else {"stop_price": "55555"}
    account.cycle(account.alert("BTCUSDT", "buy", **extra))
    before = account.position("BTCUSDT")
    report = account.cycle(account.alert("ETHUSDT", "buy"))
    assert [r.intent.purpose.value for r in report.results] == ["sell_down", "entry"]
    after = account.position("BTCUSDT")
    assert after.amount < before.amount
    assert after.stop is not None
    assert before.stop is not None
    assert after.stop.order_id != before.stop.order_id
    assert after.stop.amount == after.amount
    assert after.stop.stop_price == before.stop.stop_price  # a resized stop keeps its price
    by_id = {o.id: o for o in account.stops()}
    assert by_id[before.stop.order_id].status is OrderStatus.CANCELED
    assert by_id[after.stop.order_id].status is OrderStatus.OPEN
