from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from crypto_bot.adapters.paper.exchange import default_market
from crypto_bot.domain.allocation import (
    PlanContext,
    SignalStatus,
    net_signals,
    plan_entries,
    plan_exits,
    precedence_order,
    size_entries,
)
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.domain.ledger import Ledger
from crypto_bot.domain.markets import Side
from crypto_bot.domain.orders import Purpose
from crypto_bot.domain.signals import Signal, dedupe_key

T0 = datetime(2024, 8, 10, 2, 0, tzinfo=UTC)


def signal(strategy: str, action: str, minute: int = 0, comment: str = "x") -> Signal:
    side = Side(action)
    moment = T0 + timedelta(minutes=minute)
    return Signal(
        strategy=strategy,
        ticker=strategy,
        action=side,
        time=moment,
        price=D(100),
        comment=comment,
        order_id=None,
        market_position=None,
        contracts=None,
        interval=None,
        is_stop_loss=False,
        dedupe_key=dedupe_key(strategy, side, moment, D(100), comment, None),
        payload={},
    )


def statuses(signals: list[Signal], is_long: dict[str, bool]) -> list[tuple[SignalStatus, str]]:
    return [(o.status, o.reason) for o in net_signals(signals, is_long).outcomes]


def test_buy_when_long_is_ignored_and_does_not_stop_other_signals() -> None:
    netting = net_signals([signal("A", "buy"), signal("B", "buy", 1)], {"A": True})
    assert netting.entries == ("B",)
    assert netting.outcomes[0].status is SignalStatus.IGNORED
    assert netting.outcomes[0].reason == "the strategy is already long: nothing to buy"
    assert netting.outcomes[1].status is SignalStatus.PLANNED


def test_sell_when_flat_is_ignored_and_later_orders_still_run() -> None:
    # The seed aborted every later order after a sell-while-flat.
    netting = net_signals([signal("A", "sell"), signal("B", "buy", 1)], {})
    assert netting.entries == ("B",)
    assert netting.outcomes[0].reason == "the strategy is already flat: nothing to sell"


def test_repeated_buy_does_not_double_the_position() -> None:
    netting = net_signals([signal("A", "buy"), signal("A", "buy", 1)], {})
    assert netting.entries == ("A",)
    assert [o.status for o in netting.outcomes] == [SignalStatus.PLANNED, SignalStatus.IGNORED]


def test_entry_and_exit_in_one_cycle_net_out() -> None:
    netting = net_signals([signal("A", "buy"), signal("A", "sell", 1)], {})
    assert netting.entries == ()
    assert netting.exits == ()
    assert all(o.reason.startswith("netted out") for o in netting.outcomes)


def test_signals_are_applied_in_time_order_not_arrival_order() -> None:
    netting = net_signals([signal("A", "sell", 5), signal("A", "buy", 1)], {})
    assert netting.entries == ()  # buy at :01 then sell at :05 → flat


def test_last_of_three_flips_decides() -> None:
    signals = [signal("A", "buy"), signal("A", "sell", 1), signal("A", "buy", 2)]
    netting = net_signals(signals, {})
    assert netting.entries == ("A",)
    assert netting.deciding["A"] == (signals[2].dedupe_key,)
    assert [o.status for o in netting.outcomes] == [SignalStatus.IGNORED, SignalStatus.IGNORED, SignalStatus.PLANNED]


def test_precedence_is_highest_percentage_then_alphabetical() -> None:
    config = StrategyConfig.from_mapping(
        {
            "ETH": {"exchange_symbol": "ETH/USD", "base_asset": "ETH", "percentage": "0.3"},
            "BTC": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.3"},
            "SOL": {"exchange_symbol": "SOL/USD", "base_asset": "SOL", "percentage": "0.1"},
        },
        "USD",
    )
    assert [s.key for s in precedence_order(list(config.strategies.values()))] == ["BTC", "ETH", "SOL"]


CONFIG = StrategyConfig.from_mapping(
    {
        "BTCUSD": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.2"},
        "ETHUSD": {"exchange_symbol": "ETH/USD", "base_asset": "ETH", "percentage": "0.25"},
        "SOLUSD": {"exchange_symbol": "SOL/USD", "base_asset": "SOL", "percentage": "0.5"},
    },
    "USD",
)
MARKETS = {s: default_market(s) for s in CONFIG.symbols()}
PRICES = {"BTC/USD": D(60000), "ETH/USD": D(3000), "SOL/USD": D(150)}


def context(ledger: Ledger, cash: D, free: dict[str, D] | None = None) -> PlanContext:
    return PlanContext(
        cycle_id="c1",
        config=CONFIG,
        ledger=ledger,
        free={"USD": cash, **(free or {})},
        total_quote=cash,
        markets=MARKETS,
        prices=PRICES,
        increment=D(0),
    )


def holding(ledger: Ledger, key: str, amount: str, cost: str) -> None:
    ledger.apply_fill(CONFIG[key], Side.BUY, order_id="x", filled=D(amount), cost=D(cost), fees=(), at=T0)


def test_boost_gives_the_precedence_strategy_the_idle_capital() -> None:
    plan = plan_entries(ExecutionMode.BOOST, ["BTCUSD"], context(Ledger(), D(10000)))
    assert plan.precedence == "BTCUSD"
    assert plan.idle_share == D("0.75")
    assert plan.targets == {"BTCUSD": D("9500.00")}


def test_boost_sells_down_active_strategy_to_its_target() -> None:
    ledger = Ledger()
    holding(ledger, "BTCUSD", "0.15833333", "9499.9998")
    ctx = context(ledger, D("500.0002"), {"BTC": D("0.15833333")})
    plan = plan_entries(ExecutionMode.BOOST, ["ETHUSD"], ctx)
    assert plan.account_value == D("10000")
    assert plan.precedence == "ETHUSD"
    assert plan.targets == {"ETHUSD": D("7500.00"), "BTCUSD": D("2000.0")}
    (sell_down,) = plan.sell_downs.intents
    assert sell_down.purpose is Purpose.SELL_DOWN
    # 0.15833333 × (9499.9998 − 2000) / 9499.9998 = 0.124999997… → truncated to the lot
    assert sell_down.amount == D("0.12499999")


def test_boost_never_tops_up_an_active_strategy_below_target() -> None:
    ledger = Ledger()
    holding(ledger, "SOLUSD", "10", "1500")  # SOL holds 15% of a 10,000 account, target 50%+
    plan = plan_entries(ExecutionMode.BOOST, ["BTCUSD"], context(ledger, D(8500), {"SOL": D(10)}))
    assert plan.sell_downs.intents == ()
    assert plan.entries == ("BTCUSD",)
    assert plan.targets["BTCUSD"] == D("2000.0")


def test_boost_skips_dust_sell_downs_below_half_a_percent_of_the_account() -> None:
    ledger = Ledger()
    holding(ledger, "BTCUSD", "0.0335", "2010")  # 10 over its 2,000 target: 0.1% of V
    plan = plan_entries(ExecutionMode.BOOST, ["ETHUSD"], context(ledger, D(7990), {"BTC": D("0.0335")}))
    assert plan.sell_downs.intents == ()
    (skipped,) = plan.sell_downs.skipped
    assert "below 0.5% of the account value" in skipped.reason


def test_multi_buys_each_entry_its_percentage_of_v_and_leaves_actives_alone() -> None:
    ledger = Ledger()
    holding(ledger, "BTCUSD", "0.15833333", "9499.9998")
    plan = plan_entries(ExecutionMode.MULTI, ["ETHUSD"], context(ledger, D("500.0002")))
    assert plan.sell_downs.intents == ()
    assert plan.targets == {"ETHUSD": D("2500.00")}
    sized = size_entries(plan, context(ledger, D("500.0002")))
    # Only 500 of cash is free: the buy is capped by the balance, never overdrawn.
    (intent,) = sized.intents
    assert intent.amount * intent.limit_price <= D("500.0002")


def test_entries_buy_precedence_last_so_it_absorbs_a_shortfall() -> None:
    plan = plan_entries(ExecutionMode.BOOST, ["SOLUSD", "BTCUSD"], context(Ledger(), D(10000)))
    assert plan.entries == ("BTCUSD", "SOLUSD")


def test_exits_sell_the_ledger_amount_capped_by_free_balance_shared_by_asset() -> None:
    config = StrategyConfig.from_mapping(
        {
            "FAST": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.3"},
            "SLOW": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.3"},
        },
        "USD",
    )
    ledger = Ledger()
    for key in ("FAST", "SLOW"):
        ledger.apply_fill(config[key], Side.BUY, order_id="x", filled=D("0.1"), cost=D(6000), fees=(), at=T0)
    ctx = PlanContext(
        cycle_id="c",
        config=config,
        ledger=ledger,
        free={"BTC": D("0.15")},  # someone moved 0.05 BTC away
        total_quote=D(0),
        markets={"BTC/USD": default_market("BTC/USD")},
        prices={"BTC/USD": D(60000)},
        increment=D("0.001"),
    )
    plan = plan_exits(["FAST", "SLOW"], ctx)
    assert [(i.strategy, i.amount) for i in plan.intents] == [("FAST", D("0.1")), ("SLOW", D("0.05"))]
    assert all(i.limit_price == D("59940.00") for i in plan.intents)


def test_intent_ids_are_stable_for_the_same_cycle_and_strategy() -> None:
    first = plan_entries(ExecutionMode.MULTI, ["BTCUSD"], context(Ledger(), D(10000)))
    again = plan_entries(ExecutionMode.MULTI, ["BTCUSD"], context(Ledger(), D(10000)))
    a = size_entries(first, context(Ledger(), D(10000))).intents[0]
    b = size_entries(again, context(Ledger(), D(10000))).intents[0]
    assert a.intent_id == b.intent_id
    assert a.client_order_id() != a.client_order_id(1)
    assert len(a.client_order_id(9)) <= 36


@pytest.mark.parametrize("mode", list(ExecutionMode))
def test_no_entries_means_no_plan(mode: ExecutionMode) -> None:
    plan = plan_entries(mode, [], context(Ledger(), D(10000)))
    assert plan.entries == ()
    assert plan.sell_downs.intents == ()
