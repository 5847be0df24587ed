"""The kill switch and the guards, through whole cycles of the workflow on a paper exchange (issue 14 §2, §3).

Each test runs the workflow's steps in the deployed order (crypto_bot_tools.cycle.Engine) with a clock the test
moves, so that bars and cooldowns can pass. The executed state machine runs the same code:
tests/integration/test_controls_cycle.py. After every test the ledger equals the balances.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from functools import partial
from typing import Any

import pytest

from crypto_bot.adapters.memory import MemoryStore
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.domain.controls import Controls, pause, request_flatten, resume
from crypto_bot.domain.signals import parse_signal
from crypto_bot.domain.timeframe import Timeframe
from crypto_bot.engine.retry import NO_RETRY
from crypto_bot.engine.workflow import Workflow, WorkflowSettings, change_controls
from crypto_bot_tools.cycle import CycleReport, Engine

START = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
BAR = timedelta(hours=8)
STRATEGIES = {
    "BTCUSDT": {"exchange_symbol": "BTC/USDT", "base_asset": "BTC", "percentage": "0.4"},
    "ETHUSDT": {"exchange_symbol": "ETH/USDT", "base_asset": "ETH", "percentage": "0.4"},
}
PRICES = {"BTC/USDT": D(60000), "ETH/USDT": D(3000)}


class Account:
    """One paper account and its workflow, with a clock that moves a bar at a time."""

    def __init__(self, guards: Mapping[str, Any] | None = None) -> None:
        data: dict[str, Any] = dict(STRATEGIES)
        if guards is not None:
            data["guards"] = dict(guards)
        self.config = StrategyConfig.from_mapping(data, "USDT")
        self.exchange = PaperExchange(balances={"USDT": D(10000)}, prices=dict(PRICES))
        self.store = MemoryStore()
        self.now = START
        settings = WorkflowSettings(
            mode=ExecutionMode.MULTI, increment=D("0.001"), fill_timeout=timedelta(0), timeframe=Timeframe.parse("8h")
        )
        self.workflow = Workflow(self.store, self.exchange, self.config, settings, lambda: self.now)
        self.engine = Engine(self.workflow, check_interval=0, place_retry=NO_RETRY, sleep=lambda _s: None)
        self.cycles = 0

    def alert(self, ticker: str, action: str, *, comment: str = "", at: datetime | None = None) -> dict[str, str]:
        symbol = self.config[ticker].symbol
        return {
            "time": (at or self.now).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ticker": ticker,
            "order_action": action,
            "order_price": str(self.exchange.prices[symbol]),
            "order_comment": comment or ("long" if action == "buy" else "exit"),
            "market_position": "long" if action == "buy" else "flat",
        }

    def cycle(self, *alerts: dict[str, str], urgent: bool = False) -> CycleReport:
        """Run one cycle of these alerts at the current time, then move the clock a bar on."""
        signals = [parse_signal(a, self.config) for a in alerts]
        self.cycles += 1
        report = self.engine.run_cycle(signals, cycle_id=f"c{self.cycles}", at=self.now, urgent=urgent)
        self.now += BAR
        assert_ledger_is_the_account(self)
        return report

    def amounts(self) -> dict[str, D]:
        return {p.strategy: p.amount for p in self.store.load_ledger().long_positions()}

    def controls(self) -> Controls:
        return self.store.get_controls()

    def operator(self, command: Any, **arguments: Any) -> Controls:
        return change_controls(self.store, partial(command, by="alice", at=self.now, **arguments))


def assert_ledger_is_the_account(account: Account) -> None:
    balances = account.exchange.fetch_balances()
    held = account.store.load_ledger().amounts_by_asset()
    for asset, amount in held.items():
        assert balances[asset].total == amount, asset


def outcome(report: CycleReport, ticker: str) -> tuple[str, str]:
    (signal,) = [s for s in report.outcomes if s.strategy == ticker]
    return signal.status.value, signal.reason


# -- the kill switch ---------------------------------------------------------------------------------------


def test_a_paused_account_ignores_entries_but_runs_a_stop_loss() -> None:
    account = Account()
    account.cycle(account.alert("BTCUSDT", "buy"))
    account.operator(pause, reason="news at 14:00")

    report = account.cycle(account.alert("ETHUSDT", "buy"), account.alert("BTCUSDT", "sell", comment="Stop loss"))

    assert outcome(report, "ETHUSDT") == ("ignored", "paused by the operator (alice: news at 14:00)")
    assert outcome(report, "BTCUSDT")[0] == "filled"
    assert account.amounts() == {}
    assert [o.side.value for o in account.exchange.orders()] == ["buy", "sell"]


def test_a_paused_strategy_holds_only_its_own_entries_and_resume_lets_them_in() -> None:
    account = Account()
    account.operator(pause, reason="", strategy="ETHUSDT")
    report = account.cycle(account.alert("ETHUSDT", "buy"), account.alert("BTCUSDT", "buy"))
    assert outcome(report, "ETHUSDT") == ("ignored", "paused by the operator (alice)")
    assert set(account.amounts()) == {"BTCUSDT"}

    account.operator(resume, strategy="ETHUSDT")
    account.cycle(account.alert("ETHUSDT", "buy"))
    assert set(account.amounts()) == {"BTCUSDT", "ETHUSDT"}
    assert [(e.scope, e.what) for e in account.controls().events] == [("ETHUSDT", "paused"), ("ETHUSDT", "resumed")]


def test_flatten_sells_every_position_without_a_signal_and_leaves_the_account_paused() -> None:
    account = Account()
    account.cycle(account.alert("BTCUSDT", "buy"), account.alert("ETHUSDT", "buy"))
    assert set(account.amounts()) == {"BTCUSDT", "ETHUSDT"}
    account.operator(request_flatten, reason="going on holiday")

    report = account.cycle()

    assert sorted(r.intent.strategy for r in report.results) == ["BTCUSDT", "ETHUSDT"]
    assert {r.intent.purpose.value for r in report.results} == {"exit"}
    assert account.amounts() == {}
    controls = account.controls()
    assert controls.flatten is None
    assert controls.paused is not None
    assert controls.paused.reason == "paused by the operator (alice: going on holiday)"
    assert [e.what for e in controls.events] == ["paused", "flatten requested", "flattened"]
    # Paused afterwards: the next entry is ignored, and a second cycle sells nothing more.
    later = account.cycle(account.alert("BTCUSDT", "buy"))
    assert outcome(later, "BTCUSDT")[0] == "ignored"
    assert later.results == []


def test_flatten_of_one_strategy_sells_only_it_and_pauses_only_it() -> None:
    account = Account()
    account.cycle(account.alert("BTCUSDT", "buy"), account.alert("ETHUSDT", "buy"))
    account.operator(request_flatten, reason="", strategy="ETHUSDT")
    account.cycle()
    assert set(account.amounts()) == {"BTCUSDT"}
    controls = account.controls()
    assert controls.paused is None
    assert set(controls.paused_strategies) == {"ETHUSDT"}


def test_a_pause_written_while_a_cycle_runs_is_not_lost() -> None:
    # The operator pauses between the cycle's read of the controls and its write (a cooldown starting):
    # the cycle's write conflicts, reads again and keeps the pause.
    account = Account(guards={"cooldown_bars": 1})
    account.cycle(account.alert("BTCUSDT", "buy"))
    real_put = account.store.put_controls
    paused_once: list[bool] = []

    def put_after_a_pause(controls: Controls) -> Controls:
        if not paused_once:
            paused_once.append(True)
            real_put(pause(account.store.get_controls(), by="bob", reason="meanwhile", at=account.now))
        return real_put(controls)

    account.store.put_controls = put_after_a_pause  # type: ignore[method-assign]
    account.cycle(account.alert("BTCUSDT", "sell", comment="Stop loss"))
    controls = account.controls()
    assert controls.paused is not None
    assert controls.paused.by == "bob"
    assert set(controls.cooldowns) == {"BTCUSDT"}


# -- guards ------------------------------------------------------------------------------------------------


def test_the_account_drawdown_guard_trips_below_its_limit_holds_entries_and_resume_releases_it() -> None:
    account = Account(guards={"account_drawdown": "0.10"})
    account.cycle(account.alert("BTCUSDT", "buy"), account.alert("ETHUSDT", "buy"))
    peak = account.controls().peak_equity
    assert peak is not None
    # BTC and ETH fall 20%: 80% of the account is in them, so equity falls about 16%.
    for symbol, price in PRICES.items():
        account.exchange.set_price(symbol, price * D("0.8"))
    report = account.cycle()
    assert "* tripped" in report.cycle.summary["controls"]
    trip = account.controls().account_trip
    assert trip is not None
    assert trip.reason.startswith("account drawdown guard: equity ")
    assert "(the limit is 10.00%)" in trip.reason

    # Exits still run; entries are held.
    held = account.cycle(account.alert("BTCUSDT", "sell"), account.alert("ETHUSDT", "sell"))
    assert outcome(held, "BTCUSDT")[0] == "filled"
    entry = account.cycle(account.alert("BTCUSDT", "buy"))
    assert outcome(entry, "BTCUSDT") == ("ignored", trip.reason)

    account.operator(resume)
    assert account.controls().account_trip is None
    account.cycle(account.alert("BTCUSDT", "buy"))
    assert set(account.amounts()) == {"BTCUSDT"}
    # Its peak restarted from the equity after resuming, so the loss already taken does not trip it again.
    assert account.controls().account_trip is None
    assert [e.what for e in account.controls().events] == ["tripped", "released", "resumed"]


def test_the_account_drawdown_guard_does_not_trip_at_its_limit() -> None:
    account = Account(guards={"account_drawdown": "0.5"})
    account.cycle(account.alert("BTCUSDT", "buy"))
    account.exchange.set_price("BTC/USDT", D(60000) * D("0.9"))
    account.cycle()
    assert account.controls().account_trip is None


def test_the_strategy_drawdown_guard_holds_only_the_losing_strategy() -> None:
    # BTC falls 30%: BTCUSDT loses about 30% of its 40% share; ETHUSDT is untouched.
    account = Account(guards={"strategy_drawdown": "0.2"})
    account.cycle(account.alert("BTCUSDT", "buy"), account.alert("ETHUSDT", "buy"))
    account.exchange.set_price("BTC/USDT", D(42000))
    account.cycle()
    controls = account.controls()
    assert set(controls.strategy_trips) == {"BTCUSDT"}
    assert controls.account_trip is None
    account.cycle(account.alert("BTCUSDT", "sell"), account.alert("ETHUSDT", "sell"))
    report = account.cycle(account.alert("BTCUSDT", "buy"), account.alert("ETHUSDT", "buy"))
    assert outcome(report, "BTCUSDT") == ("ignored", controls.strategy_trips["BTCUSDT"].reason)
    assert outcome(report, "ETHUSDT")[0] == "filled"


def test_a_cooldown_after_a_stop_loss_ignores_entries_for_n_bars_then_releases_itself() -> None:
    account = Account(guards={"cooldown_bars": 2})
    account.cycle(account.alert("BTCUSDT", "buy"))
    stop_time = account.now
    account.cycle(account.alert("BTCUSDT", "sell", comment="Stop loss"), urgent=True)
    cooldown = account.controls().cooldowns["BTCUSDT"]
    assert cooldown.at == stop_time + 2 * BAR

    first = account.cycle(account.alert("BTCUSDT", "buy"))  # one bar after the stop
    assert outcome(first, "BTCUSDT") == ("ignored", cooldown.reason)
    assert account.amounts() == {}
    account.cycle()  # two bars after: the cooldown ends at this cycle
    assert account.controls().cooldowns == {}
    later = account.cycle(account.alert("BTCUSDT", "buy"))
    assert outcome(later, "BTCUSDT")[0] == "filled"
    assert [(e.scope, e.what) for e in account.controls().events] == [("BTCUSDT", "tripped"), ("BTCUSDT", "released")]


def test_a_stop_loss_without_a_cooldown_configured_holds_nothing() -> None:
    account = Account()
    account.cycle(account.alert("BTCUSDT", "buy"))
    account.cycle(account.alert("BTCUSDT", "sell", comment="Stop loss"), urgent=True)
    report = account.cycle(account.alert("BTCUSDT", "buy"))
    assert outcome(report, "BTCUSDT")[0] == "filled"
    assert account.controls() == Controls()


@pytest.mark.parametrize(
    ("guards", "problem"),
    [
        ({"account_drawdown": "1.5"}, "guards.account_drawdown: must be a fraction in (0, 1) (0.15 means 15%)"),
        ({"cooldown_bars": 0}, "guards.cooldown_bars: must be a whole number of bars, 1 or more (got 0)"),
        ({"max_loss": "0.1"}, "guards.max_loss: is not a known guard"),
    ],
)
def test_a_bad_guard_is_refused_naming_the_field_and_the_value(guards: dict[str, Any], problem: str) -> None:
    from crypto_bot.domain.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        StrategyConfig.from_mapping({**STRATEGIES, "guards": guards}, "USDT")
    assert problem in str(refused.value)
