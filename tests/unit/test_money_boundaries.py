"""Fees and boundaries of the money-critical core, pinned to exact decimals.

Each test here kills a bug that once survived the whole suite when planted on purpose
(the table is in docs/reliability.md, "Planted bugs"): a fee dropped where the 2% cushion
hid it, a base-asset fee on a sell, a dust loss never realized, and every ``<`` that could
become ``<=`` at a market minimum, a dust threshold or a limit price.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.allocation import (
    EntryPlan,
    Plan,
    PlanContext,
    SignalStatus,
    net_signals,
    plan_entries,
    plan_exits,
    size_entries,
)
from crypto_bot.domain.config import ExecutionMode, Strategy, StrategyConfig
from crypto_bot.domain.errors import InsufficientFunds
from crypto_bot.domain.ledger import Ledger, LedgerEntry, Position
from crypto_bot.domain.markets import Market, Side, split_symbol
from crypto_bot.domain.money import plain
from crypto_bot.domain.orders import Fee, OrderStatus
from crypto_bot.domain.signals import Desired, Signal, dedupe_key
from crypto_bot.domain.sizing import Sized, affordable_amount, buy_cost_with_fee, limit_price, size_buy, size_sell

T0 = datetime(2024, 8, 10, 8, 1, tzinfo=UTC)
BTC = Strategy(key="BTCUSD", symbol="BTC/USD", base="BTC", quote="USD", percentage=D("0.2"))


def market(symbol: str = "BTC/USD", **overrides: D) -> Market:
    base, quote = symbol.split("/")
    values = {
        "amount_step": D("0.001"),
        "price_step": D("0.01"),
        "min_amount": D("0.01"),
        "min_cost": D("10"),
        "maker_fee": D("0.001"),
        "taker_fee": D("0.002"),
    }
    values.update(overrides)
    return Market(symbol=symbol, base=base, quote=quote, **values)


# -- fees ----------------------------------------------------------------------------


def test_buy_cost_with_fee_adds_the_taker_fee_to_the_cost() -> None:
    assert buy_cost_with_fee(D("2"), D("100"), market()) == D("200.400")


def test_second_entry_is_capped_by_the_cash_the_first_left_after_its_fee() -> None:
    # Both buys want 1010 (10 units at 100 plus a 1% fee); 1515 is free. The first spends 1010
    # with its fee, leaving 505: the second can afford 5 units, not the 5.09 that 515 would buy.
    config = StrategyConfig.from_mapping(
        {
            "AAA": {"exchange_symbol": "AAA/USD", "base_asset": "AAA", "percentage": "0.3"},
            "BBB": {"exchange_symbol": "BBB/USD", "base_asset": "BBB", "percentage": "0.3"},
        },
        "USD",
    )
    markets = {s: market(s, amount_step=D("0.01"), taker_fee=D("0.01"), min_cost=D(1)) for s in config.symbols()}
    ctx = PlanContext(
        cycle_id="c1",
        config=config,
        ledger=Ledger(),
        free={"USD": D(1515)},
        total_quote=D(1515),
        markets=markets,
        prices={"AAA/USD": D(100), "BBB/USD": D(100)},
        increment=D(0),
    )
    plan = EntryPlan(
        ExecutionMode.MULTI, D(1515), None, D(0), {"AAA": D(1010), "BBB": D(1010)}, ("AAA", "BBB"), Plan((), ())
    )
    sized = size_entries(plan, ctx)
    assert [(i.strategy, i.amount) for i in sized.intents] == [("AAA", D("10.00")), ("BBB", D("5.00"))]


def test_sell_with_a_base_asset_fee_gives_up_the_fee_too() -> None:
    ledger = Ledger()
    ledger.apply_fill(BTC, Side.BUY, order_id="b", filled=D("1"), cost=D("60000"), fees=(), at=T0)
    entry = ledger.apply_fill(
        BTC, Side.SELL, order_id="s", filled=D("0.5"), cost=D("30000"), fees=(Fee(D("0.001"), "BTC"),), at=T0
    )
    position = ledger.position(BTC)
    assert position.amount == D("0.499")
    # 0.501 of the 1 BTC left the position, and so did that share of its cost basis.
    assert position.cost_basis == D("29940.000")
    assert entry.realized_pnl == D("-60.000")
    assert position.realized_pnl == D("-60.000")


def test_paper_sell_with_base_fees_leaves_the_ledger_equal_to_the_venue() -> None:
    paper = PaperExchange(balances={"USD": D(1000)}, markets={"BTC/USD": market()}, fee_mode="base")
    paper.set_price("BTC/USD", D(50000))
    ledger = Ledger()
    for side, amount, client_id in ((Side.BUY, D("0.015"), "b"), (Side.SELL, D("0.01"), "s")):
        order = paper.create_limit_order("BTC/USD", side, amount, D(50000), client_id)
        ledger.apply_fill(BTC, side, order_id=order.id, filled=order.filled, cost=order.cost, fees=order.fees, at=T0)
    # Bought 0.015 less a 0.2% taker fee in BTC (0.00003); sold 0.01 plus 0.00002 of fee in BTC.
    assert ledger.position(BTC).amount == D("0.00495")
    assert ledger.drift(paper.fetch_balances()) == {"BTC": D(0)}
    assert paper.fetch_balances()["USD"].total == D("750")


def test_paper_base_fee_sell_needs_the_fee_in_the_base_asset() -> None:
    paper = PaperExchange(balances={"BTC": D("0.01")}, markets={"BTC/USD": market()}, fee_mode="base")
    paper.set_price("BTC/USD", D(50000))
    with pytest.raises(InsufficientFunds, match=r"needs 0\.01002 BTC"):
        paper.create_limit_order("BTC/USD", Side.SELL, D("0.01"), D(50000), "s")


def test_dust_sweep_realizes_the_remainder_cost_basis_as_a_loss() -> None:
    ledger = Ledger()
    ledger.apply_fill(BTC, Side.BUY, order_id="b", filled=D("0.005"), cost=D("300"), fees=(), at=T0)
    assert ledger.sweep_dust(BTC, market()) == D("0.005")
    position = ledger.position(BTC)
    assert (position.amount, position.cost_basis, position.realized_pnl) == (D(0), D(0), D("-300"))
    assert ledger.dust == {"BTC": D("0.005")}


# -- boundaries ----------------------------------------------------------------------


def test_an_order_of_exactly_the_minimum_amount_is_allowed() -> None:
    assert market(min_cost=D(0)).below_minimum(D("0.01"), D(1)) is None
    assert market(min_cost=D(0)).below_minimum(D("0.009"), D(1)) == "amount 0.009 is below the market minimum 0.01 BTC"


def test_an_order_of_exactly_the_minimum_cost_is_allowed() -> None:
    assert market().below_minimum(D("0.1"), D(100)) is None
    assert market().below_minimum(D("0.099"), D(100)) == "cost 9.9 USD is below the market minimum 10 USD"


def test_a_remainder_of_exactly_the_minimum_amount_is_sold_not_swept() -> None:
    ledger = Ledger()
    ledger.apply_fill(BTC, Side.BUY, order_id="b", filled=D("0.01"), cost=D("600"), fees=(), at=T0)
    assert ledger.sweep_dust(BTC, market()) == D(0)
    assert ledger.position(BTC).amount == D("0.01")
    assert ledger.dust == {}


@pytest.mark.parametrize(("side", "limit"), [(Side.BUY, D(49000)), (Side.SELL, D(51000))])
def test_a_resting_order_fills_as_maker_when_the_price_touches_its_limit(side: Side, limit: D) -> None:
    paper = PaperExchange(balances={"USD": D(1000), "BTC": D(1)}, markets={"BTC/USD": market()})
    paper.set_price("BTC/USD", D(50000))
    order = paper.create_limit_order("BTC/USD", side, D("0.01"), limit, "c")
    assert order.status is OrderStatus.OPEN
    (filled,) = paper.set_price("BTC/USD", limit)
    assert filled.status is OrderStatus.CLOSED
    assert filled.fees == (Fee(D("0.01") * limit * D("0.001"), "USD"),)


@pytest.mark.parametrize("side", list(Side))
def test_a_limit_at_the_last_price_is_marketable_and_fills_as_taker(side: Side) -> None:
    paper = PaperExchange(balances={"USD": D(1000), "BTC": D(1)}, markets={"BTC/USD": market()})
    paper.set_price("BTC/USD", D(50000))
    order = paper.create_limit_order("BTC/USD", side, D("0.01"), D(50000), "c")
    assert order.status is OrderStatus.CLOSED
    assert order.fees == (Fee(D("1.000"), "USD"),)


def test_a_resting_buy_reserves_the_larger_of_the_maker_and_taker_fees() -> None:
    paper = PaperExchange(balances={"USD": D(1000)}, markets={"BTC/USD": market()})
    paper.set_price("BTC/USD", D(50000))
    paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D(49000), "c")
    assert paper.fetch_balances()["USD"].used == D("490.980")


def test_a_buy_the_smaller_fee_would_cover_is_refused_for_want_of_the_larger() -> None:
    # 490 × 1.001 = 490.49 covers the maker fee only; the order could still fill as taker.
    paper = PaperExchange(balances={"USD": D("490.49")}, markets={"BTC/USD": market()})
    paper.set_price("BTC/USD", D(50000))
    with pytest.raises(InsufficientFunds):
        paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D(49000), "c")


# -- sizing and market rules at their edges (survivors of `make mutate`) -------------------


def test_affordable_amount_is_the_largest_lot_whose_cost_and_fee_fit() -> None:
    # 2 × 50 × 1.003 = 100.30 exactly: 2 fits, 2.001 would not.
    assert affordable_amount(D("100.30"), D(50), market(taker_fee=D("0.003"))) == D("2.000")
    assert affordable_amount(D("100.29"), D(50), market(taker_fee=D("0.003"))) == D("1.999")
    assert affordable_amount(D("-5"), D(50), market()) == D(0)


@pytest.mark.parametrize(
    ("free", "suffix"),
    [(D("0.005"), " (free BTC is only 0.005)"), (D("0.009"), ""), (D("1"), "")],
)
def test_a_sell_below_the_minimum_says_the_free_balance_only_when_it_capped_the_sell(free: D, suffix: str) -> None:
    sized = size_sell(D("0.009"), free, D(100), market(min_cost=D(0)))
    assert sized.amount == D(0)
    assert sized.reason == f"amount {plain(min(free, D('0.009')))} is below the market minimum 0.01 BTC{suffix}"


def test_a_buy_below_the_minimum_blames_the_free_cash_only_when_it_capped_the_buy() -> None:
    # 0.009 × 100 × 1.002 = 0.9018: wanted and affordable are the same amount, so the cash is not to blame.
    sized = size_buy(D("0.9018"), D(100), D("0.9018"), market(min_cost=D(0)))
    assert sized.reason == "amount 0.009 is below the market minimum 0.01 BTC"
    capped = size_buy(D("10"), D(100), D("0.9018"), market(min_cost=D(0)))
    assert capped.reason == (
        "amount 0.009 is below the market minimum 0.01 BTC (free USD 0.9018 covers only 0.00900000 BTC)"
    )


@pytest.mark.parametrize("notional", [D(0), D(-1)])
def test_a_buy_of_no_positive_notional_is_not_sized(notional: D) -> None:
    assert size_buy(notional, D(100), D(1000), market()) == Sized(D(0), f"nothing to buy: notional {notional}")


def test_a_buy_of_a_small_positive_notional_is_sized() -> None:
    assert size_buy(D("0.5"), D("0.1"), D(1000), market(min_cost=D(0), min_amount=D(0))).amount == D("4.990")


@pytest.mark.parametrize("last", [D(0), D(-1)])
def test_a_limit_price_needs_a_positive_last_price(last: D) -> None:
    with pytest.raises(ValueError, match="last price must be positive"):
        limit_price(last, Side.BUY, D(0), market())


@pytest.mark.parametrize(("last", "side", "increment"), [(D("0.001"), Side.BUY, D(0)), (D(1), Side.SELL, D(2))])
def test_a_limit_price_that_rounds_to_zero_or_below_is_refused(last: D, side: Side, increment: D) -> None:
    with pytest.raises(ValueError, match="rounds to zero"):
        limit_price(last, side, increment, market(price_step=D("0.5")))


def test_a_limit_price_of_one_tick_or_one_unit_is_allowed() -> None:
    assert limit_price(D("0.5"), Side.BUY, D(0), market()) == D("0.50")
    assert limit_price(D(1), Side.SELL, D(0), market()) == D("1.00")


def test_sizes_and_markets_are_immutable() -> None:
    with pytest.raises(FrozenInstanceError):
        market().taker_fee = D(0)  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        Sized(D(1)).amount = D(2)  # type: ignore[misc]


@pytest.mark.parametrize("field", ["amount_step", "price_step"])
@pytest.mark.parametrize("value", [D(0), D("-0.01")])
def test_a_market_needs_positive_steps(field: str, value: D) -> None:
    with pytest.raises(ValueError, match=f"{field} must be positive"):
        replace(market(), **{field: value})  # type: ignore[arg-type]  # the field is a Decimal one


@pytest.mark.parametrize("field", ["min_amount", "min_cost", "maker_fee", "taker_fee"])
def test_a_market_refuses_negative_minimums_and_fees(field: str) -> None:
    with pytest.raises(ValueError, match=f"{field} must not be negative"):
        replace(market(), **{field: D("-0.001")})  # type: ignore[arg-type]  # the field is a Decimal one


def test_a_negative_amount_rounds_to_nothing() -> None:
    assert market().below_minimum(D("-0.01"), D(100)) == "amount -0.01 rounds to nothing at lot size 0.001"


@pytest.mark.parametrize(
    ("symbol", "parts"), [("BTC/USD", ("BTC", "USD")), ("BTC/USDT:USDT", ("BTC", "USDT")), ("A:B/C", ("A", ""))]
)
def test_split_symbol_reads_base_and_quote_before_any_settle_currency(symbol: str, parts: tuple[str, str]) -> None:
    if parts[1]:
        assert split_symbol(symbol) == parts
    else:
        with pytest.raises(ValueError, match="is not of the form BASE/QUOTE"):
            split_symbol(symbol)


@pytest.mark.parametrize("symbol", ["BTC", "A/B/C", "/USD", "BTC/", "/"])
def test_split_symbol_refuses_anything_but_one_base_and_one_quote(symbol: str) -> None:
    with pytest.raises(ValueError, match="is not of the form BASE/QUOTE"):
        split_symbol(symbol)


# -- the ledger at its edges (survivors of `make mutate`) ----------------------------------


def _fill(
    ledger: Ledger, side: Side, filled: str, cost: str, fees: tuple[Fee, ...] = (), note: str = ""
) -> LedgerEntry:
    return ledger.apply_fill(BTC, side, order_id="o", filled=D(filled), cost=D(cost), fees=fees, at=T0, note=note)


@pytest.mark.parametrize(("amount", "long"), [(D(0), False), (D("0.5"), True), (D("-0.001"), False)])
def test_a_position_is_long_only_while_it_holds_a_positive_amount(amount: D, long: bool) -> None:
    assert Position("BTCUSD", "BTC/USD", "BTC", "USD", amount=amount).is_long is long


def test_positions_and_ledger_entries_are_immutable() -> None:
    ledger = Ledger()
    entry = _fill(ledger, Side.BUY, "0.1", "6000")
    with pytest.raises(FrozenInstanceError):
        entry.note = "x"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        ledger.position(BTC).amount = D(1)  # type: ignore[misc]


@pytest.mark.parametrize(("filled", "cost"), [("-1", "10"), ("-0.5", "10"), ("0.1", "-1"), ("0.1", "-0.5")])
def test_a_fill_delta_must_not_be_negative(filled: str, cost: str) -> None:
    with pytest.raises(ValueError, match="fill deltas must not be negative"):
        _fill(Ledger(), Side.BUY, filled, cost)


def test_small_and_fee_only_fill_deltas_are_booked() -> None:
    ledger = Ledger()
    _fill(ledger, Side.BUY, "0.5", "0.5")
    _fill(ledger, Side.BUY, "0", "0", (Fee(D("0.25"), "USD"),))  # a fee reported after the fill
    position = ledger.position(BTC)
    assert (position.amount, position.cost_basis) == (D("0.5"), D("0.75"))


@pytest.mark.parametrize("currency", ["BNB", "USDT", "ZZZ"])
def test_a_fee_in_a_third_currency_changes_neither_amount_nor_cost_basis(currency: str) -> None:
    ledger = Ledger()
    _fill(ledger, Side.BUY, "0.2", "12000", (Fee(D("0.01"), currency),))
    entry = _fill(ledger, Side.SELL, "0.1", "6500", (Fee(D("0.01"), currency),))
    position = ledger.position(BTC)
    assert (position.amount, position.cost_basis, entry.realized_pnl) == (D("0.1"), D("6000"), D("500"))


def test_a_sell_books_negative_deltas_for_what_left_the_position() -> None:
    ledger = Ledger()
    _fill(ledger, Side.BUY, "0.2", "12000")
    entry = _fill(ledger, Side.SELL, "0.05", "3200")
    assert (entry.base_delta, entry.cost_delta, entry.realized_pnl, entry.note) == (
        D("-0.05"),
        D("-3000.00"),
        D("200.00"),
        "",
    )


def test_selling_exactly_the_whole_position_closes_it_without_a_drift_note() -> None:
    ledger = Ledger()
    _fill(ledger, Side.BUY, "0.1", "6000")
    entry = _fill(ledger, Side.SELL, "0.1", "6100", note="exit")
    assert entry.note == "exit"
    assert (ledger.position(BTC).amount, ledger.position(BTC).cost_basis) == (D(0), D(0))


@pytest.mark.parametrize(
    ("note", "expected"),
    [
        ("", "sold 0.15 but the ledger held 0.1; the excess shows as drift"),
        ("exit", "exit; sold 0.15 but the ledger held 0.1; the excess shows as drift"),
    ],
)
def test_selling_more_than_the_ledger_holds_closes_the_position_and_notes_the_excess(note: str, expected: str) -> None:
    ledger = Ledger()
    _fill(ledger, Side.BUY, "0.1", "6000")
    entry = _fill(ledger, Side.SELL, "0.15", "9000", note=note)
    assert entry.note == expected
    assert (entry.base_delta, entry.realized_pnl) == (D("-0.1"), D("3000"))
    assert (ledger.position(BTC).amount, ledger.position(BTC).cost_basis) == (D(0), D(0))


def test_sweeping_a_flat_or_negative_position_moves_nothing() -> None:
    ledger = Ledger(positions={"BTCUSD": Position("BTCUSD", "BTC/USD", "BTC", "USD", amount=D("-0.001"))})
    assert ledger.sweep_dust(BTC, market()) == D(0)
    assert ledger.dust == {}
    flat = Ledger()
    assert flat.sweep_dust(BTC, market()) == D(0)
    assert (flat.dust, flat.positions) == ({}, {})


def test_a_remainder_under_one_lot_is_swept_even_without_a_minimum_amount() -> None:
    ledger = Ledger()
    _fill(ledger, Side.BUY, "0.0005", "30")
    assert ledger.sweep_dust(BTC, market(min_amount=D(0))) == D("0.0005")
    assert ledger.dust == {"BTC": D("0.0005")}


def test_a_sellable_remainder_of_half_a_unit_is_not_swept() -> None:
    ledger = Ledger()
    _fill(ledger, Side.BUY, "0.5", "30000")
    assert ledger.sweep_dust(BTC, market()) == D(0)
    assert ledger.position(BTC).amount == D("0.5")


# -- allocation at its edges (survivors of `make mutate`) ----------------------------------

_PAIR = StrategyConfig.from_mapping(
    {
        "AAA": {"exchange_symbol": "AAA/USD", "base_asset": "AAA", "percentage": "0.25"},
        "BBB": {"exchange_symbol": "BBB/USD", "base_asset": "BBB", "percentage": "0.2"},
    },
    "USD",
)


def _pair_context(ledger: Ledger, cash: D, free: dict[str, D]) -> PlanContext:
    markets = {s: market(s, amount_step=D("0.001"), min_amount=D("0.001"), min_cost=D(1)) for s in _PAIR.symbols()}
    return PlanContext(
        cycle_id="c1",
        config=_PAIR,
        ledger=ledger,
        free={"USD": cash, **free},
        total_quote=cash,
        markets=markets,
        prices={"AAA/USD": D(1000), "BBB/USD": D(50000)},
        increment=D(0),
    )


def test_a_sell_down_of_exactly_half_a_percent_of_the_account_is_sent() -> None:
    # V = 7,950 + 2,050 = 10,000; BBB's target is 2,000, so it sells 0.041 × 50 / 2,050 = 0.001 BBB: 50, exactly 0.5%.
    ledger = Ledger()
    ledger.apply_fill(_PAIR["BBB"], Side.BUY, order_id="b", filled=D("0.041"), cost=D(2050), fees=(), at=T0)
    plan = plan_entries(ExecutionMode.BOOST, ["AAA"], _pair_context(ledger, D(7950), {"BBB": D("0.041")}))
    assert [(i.strategy, i.amount, i.notional) for i in plan.sell_downs.intents] == [("BBB", D("0.001"), D("50.000"))]


def test_an_active_strategy_exactly_at_its_target_is_neither_sold_down_nor_skipped() -> None:
    ledger = Ledger()
    ledger.apply_fill(_PAIR["BBB"], Side.BUY, order_id="b", filled=D("0.04"), cost=D(2000), fees=(), at=T0)
    plan = plan_entries(ExecutionMode.BOOST, ["AAA"], _pair_context(ledger, D(8000), {"BBB": D("0.04")}))
    assert (plan.sell_downs.intents, plan.sell_downs.skipped) == ((), ())


def test_an_exit_too_small_to_send_does_not_stop_the_next_exit() -> None:
    ledger = Ledger()
    ledger.apply_fill(_PAIR["AAA"], Side.BUY, order_id="a", filled=D("0.0005"), cost=D("0.5"), fees=(), at=T0)
    ledger.apply_fill(_PAIR["BBB"], Side.BUY, order_id="b", filled=D("0.01"), cost=D(500), fees=(), at=T0)
    ctx = _pair_context(ledger, D(0), {"AAA": D("0.0005"), "BBB": D("0.01")})
    plan = plan_exits(["AAA", "BBB"], ctx)
    assert [s.strategy for s in plan.skipped] == ["AAA"]
    assert [(i.strategy, i.amount, i.notional) for i in plan.intents] == [("BBB", D("0.010"), D("500.000"))]


def test_an_entry_too_small_to_send_does_not_stop_the_next_entry() -> None:
    plan = EntryPlan(
        ExecutionMode.MULTI, D(1000), None, D(0), {"AAA": D("0.5"), "BBB": D(100)}, ("AAA", "BBB"), Plan((), ())
    )
    sized = size_entries(plan, _pair_context(Ledger(), D(1000), {}))
    assert [s.strategy for s in sized.skipped] == ["AAA"]
    assert [(i.strategy, i.amount) for i in sized.intents] == [("BBB", D("0.001"))]


def _signal(action: str, minute: int, market_position: str | None = None) -> Signal:
    side, moment = Side(action), T0 + timedelta(minutes=minute)
    return Signal(
        strategy="AAA",
        ticker="AAA",
        action=side,
        time=moment,
        price=D(100),
        comment="x",
        order_id=None,
        market_position=Desired(market_position) if market_position else None,
        contracts=None,
        interval=None,
        is_stop_loss=False,
        dedupe_key=dedupe_key("AAA", side, moment, D(100), "x", None),
        payload={},
    )


def test_a_flip_and_back_records_why_each_signal_traded_nothing() -> None:
    netting = net_signals([_signal("buy", 0), _signal("sell", 1)], {})
    assert [(o.status, o.reason) for o in netting.outcomes] == [
        (SignalStatus.IGNORED, "netted out: a later signal in the same cycle reversed it"),
        (SignalStatus.IGNORED, "netted out: it reverses this cycle's earlier signals, so the strategy stays flat"),
    ]


@pytest.mark.parametrize(
    ("action", "position", "long", "reason"),
    [
        (
            "sell",
            "long",
            True,
            'partial exits are not supported: this sell leaves market_position "long"; a full exit is "flat"',
        ),
        (
            "buy",
            "flat",
            False,
            'a buy that leaves market_position "flat" closes a short, and spot trading has no shorts',
        ),
        ("buy", None, True, "the strategy is already long: nothing to buy"),
        ("sell", None, False, "the strategy is already flat: nothing to sell"),
    ],
)
def test_a_signal_asking_for_the_current_state_says_why_it_trades_nothing(
    action: str, position: str | None, long: bool, reason: str
) -> None:
    (outcome,) = net_signals([_signal(action, 0, position)], {"AAA": long}).outcomes
    assert (outcome.status, outcome.reason) == (SignalStatus.IGNORED, reason)


def test_plans_and_outcomes_are_immutable() -> None:
    plan = Plan((), ())
    with pytest.raises(FrozenInstanceError):
        plan.intents = ()  # type: ignore[misc]
    ctx = _pair_context(Ledger(), D(0), {})
    with pytest.raises(FrozenInstanceError):
        ctx.increment = D(1)  # type: ignore[misc]
    entry_plan = plan_entries(ExecutionMode.MULTI, [], ctx)
    with pytest.raises(FrozenInstanceError):
        entry_plan.precedence = "AAA"  # type: ignore[misc]
    (outcome,) = net_signals([_signal("buy", 0)], {}).outcomes
    with pytest.raises(FrozenInstanceError):
        outcome.reason = ""  # type: ignore[misc]


def test_signal_statuses_say_which_are_terminal() -> None:
    assert [s for s in SignalStatus if s.is_terminal] == [
        SignalStatus.FILLED,
        SignalStatus.REJECTED,
        SignalStatus.EXPIRED,
        SignalStatus.IGNORED,
        SignalStatus.FAILED,
    ]
    assert SignalStatus.PLANNED.is_terminal is False


def test_a_netting_is_immutable() -> None:
    netting = net_signals([_signal("buy", 0)], {})
    with pytest.raises(FrozenInstanceError):
        netting.exits = ()  # type: ignore[misc]


def test_a_sell_of_a_long_strategy_is_an_exit() -> None:
    netting = net_signals([_signal("sell", 0)], {"AAA": True})
    assert (netting.exits, netting.entries) == (("AAA",), ())
    assert [o.status for o in netting.outcomes] == [SignalStatus.PLANNED]


def test_signals_at_the_same_instant_apply_in_arrival_order() -> None:
    # From flat, a sell then a buy at one instant: the sell asks for nothing, the buy enters.
    netting = net_signals([_signal("sell", 0), _signal("buy", 0)], {})
    assert netting.entries == ("AAA",)
    assert [o.status for o in netting.outcomes] == [SignalStatus.IGNORED, SignalStatus.PLANNED]


def test_four_flips_that_end_where_they_started_blame_only_the_last_for_the_netting() -> None:
    signals = [_signal("buy", 0), _signal("sell", 1), _signal("buy", 2), _signal("sell", 3)]
    netting = net_signals(signals, {})
    later = "netted out: a later signal in the same cycle reversed it"
    assert [o.reason for o in netting.outcomes] == [
        later,
        later,
        later,
        "netted out: it reverses this cycle's earlier signals, so the strategy stays flat",
    ]


# Two strategies trading one base asset, and a third entering with precedence (it takes the boost).
_SHARED = StrategyConfig.from_mapping(
    {
        "X1": {"exchange_symbol": "AAA/USD", "base_asset": "AAA", "percentage": "0.1"},
        "X2": {"exchange_symbol": "AAA/USD", "base_asset": "AAA", "percentage": "0.1"},
        "NEW": {"exchange_symbol": "BBB/USD", "base_asset": "BBB", "percentage": "0.3"},
    },
    "USD",
)


def _shared_context(holdings: dict[str, tuple[D, D]], cash: D, free_aaa: D) -> PlanContext:
    ledger = Ledger()
    for key, (amount, cost) in holdings.items():
        ledger.apply_fill(_SHARED[key], Side.BUY, order_id=key, filled=amount, cost=cost, fees=(), at=T0)
    markets = {s: market(s, amount_step=D("0.001"), min_amount=D("0.001"), min_cost=D(1)) for s in _SHARED.symbols()}
    return PlanContext(
        cycle_id="c1",
        config=_SHARED,
        ledger=ledger,
        free={"USD": cash, "AAA": free_aaa},
        total_quote=cash,
        markets=markets,
        prices={"AAA/USD": D(100), "BBB/USD": D(100)},
        increment=D(0),
    )


def test_exits_sharing_a_base_asset_each_get_what_the_earlier_ones_left() -> None:
    ctx = _shared_context({"X1": (D(1), D(100)), "X2": (D(2), D(200))}, D(0), D(3))
    plan = plan_exits(["X1", "X2"], ctx)
    assert [(i.strategy, i.amount) for i in plan.intents] == [("X1", D("1.000")), ("X2", D("2.000"))]
    assert plan.skipped == ()


def test_sell_downs_sharing_a_base_asset_are_capped_by_what_the_earlier_ones_left() -> None:
    # V = 400 + 200 + 400 = 1,000, so each target is 100: X1 wants to sell 1 AAA and X2 3 AAA,
    # but only 2.5 AAA are free, and X1's 1 leaves X2 with 1.5.
    ctx = _shared_context({"X1": (D(2), D(200)), "X2": (D(4), D(400))}, D(400), D("2.5"))
    plan = plan_entries(ExecutionMode.BOOST, ["NEW"], ctx)
    assert [(i.strategy, i.amount) for i in plan.sell_downs.intents] == [("X1", D("1.000")), ("X2", D("1.500"))]
    assert plan.sell_downs.skipped == ()


def test_an_active_strategy_below_its_target_is_left_alone_and_does_not_stop_the_next_sell_down() -> None:
    # V = 750 + 50 + 200 = 1,000: X1 holds 50 of its 100 target, X2 200, so X2 sells 1 AAA.
    ctx = _shared_context({"X1": (D("0.5"), D(50)), "X2": (D(2), D(200))}, D(750), D("2.5"))
    plan = plan_entries(ExecutionMode.BOOST, ["NEW"], ctx)
    assert [(i.strategy, i.amount) for i in plan.sell_downs.intents] == [("X2", D("1.000"))]
    assert plan.sell_downs.skipped == ()


def test_a_skipped_dust_sell_down_does_not_stop_the_next_sell_down() -> None:
    # V = 699 + 101 + 200 = 1,000: X1's 1 over target is below the 5 (0.5%) worth a sell-down.
    ctx = _shared_context({"X1": (D("1.01"), D(101)), "X2": (D(2), D(200))}, D(699), D("3.01"))
    plan = plan_entries(ExecutionMode.BOOST, ["NEW"], ctx)
    assert [s.strategy for s in plan.sell_downs.skipped] == ["X1"]
    assert [(i.strategy, i.amount) for i in plan.sell_downs.intents] == [("X2", D("1.000"))]
