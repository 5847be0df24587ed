"""The paper exchange to the last unit: reservations, partial fills, fees by mode, state round trips, faults.

Each test pins one rule a real venue enforces (or one contract of the persisted paper state) with exact
figures, so that a change to the rule changes a number here. They were written against the survivors of
``make mutate`` on ``adapters/paper/exchange.py`` (docs/reliability.md): the broader tests in test_paper.py
check totals, which several wrong reservations leave unchanged (a wrong split between free and used funds
still sums to the right total).
"""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path

import pytest

from crypto_bot.adapters.paper.exchange import (
    CsvPrices,
    Fault,
    PaperExchange,
    default_market,
    load_markets_file,
)
from crypto_bot.domain.errors import (
    ConfigError,
    InvalidOrder,
    OrderNotFound,
    RateLimited,
    RequestTimeout,
    UnsupportedExchange,
)
from crypto_bot.domain.markets import Market, Side
from crypto_bot.domain.orders import Fee, OrderStatus
from crypto_bot.domain.signals import parse_time

MAKER, TAKER = D("0.001"), D("0.002")


def fresh(text: str) -> str:
    """The same text as a new string object, as JSON or a network read produces: ``is`` on it is False."""
    return "".join(list(text))


def market(symbol: str = "BTC/USD", *, maker: D = MAKER, taker: D = TAKER) -> Market:
    return replace(default_market(symbol), maker_fee=maker, taker_fee=taker)


def exchange(fee_mode: str = "quote", **balances: D) -> PaperExchange:
    paper = PaperExchange(
        balances=dict(balances) or {"USD": D(1000)},
        markets={"BTC/USD": market(), "ETH/USD": market("ETH/USD")},
        fee_mode=fee_mode,  # type: ignore[arg-type]
    )
    paper.set_price("BTC/USD", D(50000))
    paper.set_price("ETH/USD", D(2000))
    return paper


def balance(paper: PaperExchange, asset: str) -> tuple[D, D]:
    found = paper.fetch_balances().get(asset)
    return (found.free, found.used) if found else (D(0), D(0))


# -- markets files -------------------------------------------------------------------------------------


def test_a_missing_markets_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read markets file"):
        load_markets_file(tmp_path / "absent.json")


def test_a_markets_file_that_is_not_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "markets.json"
    path.write_text('{\n"BTC/USD": {,}\n}')
    with pytest.raises(ConfigError, match="not valid JSON at line 2"):
        load_markets_file(path)


def test_a_markets_file_value_that_is_not_a_number_names_the_symbol(tmp_path: Path) -> None:
    path = tmp_path / "markets.json"
    path.write_text('{"BTC/USD": {"min_cost": true}}')
    with pytest.raises(ConfigError, match=r"\['BTC/USD'\]"):
        load_markets_file(path)


# -- placing ------------------------------------------------------------------------------------------


def test_a_price_just_below_a_tick_that_rounds_up_is_refused() -> None:
    paper = exchange()
    with pytest.raises(InvalidOrder, match="not on the tick grid"):
        paper.create_limit_order("BTC/USD", Side.BUY, D("0.001"), D("49000.006"), "c1")


def test_an_order_needing_exactly_the_free_balance_is_accepted() -> None:
    paper = PaperExchange(balances={"USD": D(1000)}, markets={"BTC/USD": default_market("BTC/USD")})
    paper.set_price("BTC/USD", D(60000))
    order = paper.create_limit_order("BTC/USD", Side.BUY, D("0.02"), D(50000), "c1")
    assert order.status is OrderStatus.OPEN
    assert balance(paper, "USD") == (D(0), D(1000))


def test_a_market_order_is_taken_by_default_and_pays_the_taker_fee() -> None:
    paper = exchange()
    order = paper.create_market_order("BTC/USD", Side.BUY, D("0.01"), "m1")
    assert order.status is OrderStatus.CLOSED
    assert order.fees == (Fee(D("500.00") * TAKER, "USD"),)
    assert balance(paper, "USD") == (D(1000) - D(500) - D("1.00"), D(0))


def test_a_venue_without_market_orders_refuses_one() -> None:
    paper = exchange()
    paper.supports_market_orders = False
    with pytest.raises(UnsupportedExchange, match="takes no market orders"):
        paper.create_market_order("BTC/USD", Side.BUY, D("0.01"), "m1")
    assert paper.orders() == []


def test_a_market_order_fault_before_the_effect_places_nothing() -> None:
    paper = exchange()
    paper.faults.append(Fault("create_market_order", RateLimited("429")))
    with pytest.raises(RateLimited):
        paper.create_market_order("BTC/USD", Side.BUY, D("0.01"), "m1")
    assert paper.orders() == []
    assert paper.find_order_by_client_id("m1", "BTC/USD") is None


def test_a_market_order_fault_after_the_effect_fills_and_then_raises() -> None:
    paper = exchange()
    paper.faults.append(Fault("create_market_order", RequestTimeout("lost answer"), after_effect=True))
    with pytest.raises(RequestTimeout):
        paper.create_market_order("BTC/USD", Side.BUY, D("0.01"), "m1")
    found = paper.find_order_by_client_id("m1", "BTC/USD")
    assert found is not None
    assert found.status is OrderStatus.CLOSED
    assert balance(paper, "BTC") == (D("0.01"), D(0))


def test_a_market_order_with_no_fault_raises_nothing_and_a_later_one_is_untouched() -> None:
    paper = exchange()
    paper.faults.append(Fault("cancel_order", RateLimited("429")))
    assert paper.create_market_order("BTC/USD", Side.BUY, D("0.001"), "m1").status is OrderStatus.CLOSED
    assert len(paper.faults) == 1


def test_a_cancel_fault_before_the_effect_leaves_the_order_open() -> None:
    paper = exchange()
    order = paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D(49000), "c1")
    paper.faults.append(Fault("cancel_order", RateLimited("429")))
    with pytest.raises(RateLimited):
        paper.cancel_order(order.id, "BTC/USD")
    assert paper.fetch_order(order.id, "BTC/USD").status is OrderStatus.OPEN


# -- lookups ------------------------------------------------------------------------------------------


def test_a_client_id_is_found_only_on_its_own_symbol() -> None:
    paper = exchange()
    paper.create_limit_order("BTC/USD", Side.BUY, D("0.001"), D(49000), "c1")
    assert paper.find_order_by_client_id("c1", "ETH/USD") is None
    assert paper.find_order_by_client_id("c1", "AAA/USD") is None
    found = paper.find_order_by_client_id("c1", fresh("BTC/USD"))
    assert found is not None
    assert found.client_order_id == "c1"


def test_an_order_id_is_found_only_on_its_own_symbol() -> None:
    paper = exchange()
    order = paper.create_limit_order("BTC/USD", Side.BUY, D("0.001"), D(49000), "c1")
    for other in ("ETH/USD", "AAA/USD"):
        with pytest.raises(OrderNotFound):
            paper.fetch_order(order.id, other)
    assert paper.fetch_order(order.id, fresh("BTC/USD")).id == order.id


def test_open_orders_lists_the_open_ones_only() -> None:
    paper = exchange()
    resting = paper.create_limit_order("BTC/USD", Side.BUY, D("0.001"), D(49000), "c1")
    paper.create_limit_order("BTC/USD", Side.BUY, D("0.001"), D(51000), "c2")  # marketable: closed at once
    canceled = paper.create_limit_order("BTC/USD", Side.BUY, D("0.001"), D(48000), "c3")
    paper.cancel_order(canceled.id, "BTC/USD")
    assert [o.id for o in paper.open_orders()] == [resting.id]


# -- prices and matching ------------------------------------------------------------------------------


@pytest.mark.parametrize("price", [D(0), D(-1), D("-0.5")])
def test_a_price_that_is_not_positive_is_refused(price: D) -> None:
    with pytest.raises(ValueError, match="price must be positive"):
        exchange().set_price("BTC/USD", price)


def test_a_price_below_one_is_a_price() -> None:
    paper = exchange()
    paper.set_price("BTC/USD", D("0.5"))
    assert paper.fetch_last_price("BTC/USD") == D("0.5")


def test_a_price_move_fills_only_that_symbols_resting_orders() -> None:
    paper = exchange()
    btc = paper.create_limit_order("BTC/USD", Side.BUY, D("0.001"), D(49000), "c1")
    eth = paper.create_limit_order("ETH/USD", Side.BUY, D("0.01"), D(1900), "c2")
    assert [o.id for o in paper.set_price("ETH/USD", D(1800))] == [eth.id]
    assert paper.fetch_order(btc.id, "BTC/USD").status is OrderStatus.OPEN
    eth_sell = paper.create_limit_order("ETH/USD", Side.SELL, D("0.01"), D(2500), "c3")
    assert [o.id for o in paper.set_price(fresh("BTC/USD"), D(48000))] == [btc.id]
    assert paper.fetch_order(eth_sell.id, "ETH/USD").status is OrderStatus.OPEN


def test_a_canceled_order_is_not_filled_when_the_price_crosses_its_limit() -> None:
    paper = exchange()
    order = paper.create_limit_order("BTC/USD", Side.BUY, D("0.001"), D(49000), "c1")
    paper.cancel_order(order.id, "BTC/USD")
    assert paper.set_price("BTC/USD", D(40000)) == []
    assert paper.fetch_order(order.id, "BTC/USD").filled == D(0)
    assert balance(paper, "USD") == (D(1000), D(0))


def test_a_resting_sell_fills_when_the_price_rises_past_its_limit_and_not_before() -> None:
    paper = exchange(BTC=D("0.01"))
    order = paper.create_limit_order("BTC/USD", Side.SELL, D("0.01"), D(51000), "s1")
    assert paper.set_price("BTC/USD", D(50999)) == []
    (filled,) = paper.set_price("BTC/USD", D(51500))
    assert filled.id == order.id
    assert filled.cost == D(510)
    assert filled.fees == (Fee(D(510) * MAKER, "USD"),)
    assert balance(paper, "USD") == (D(510) - D("0.51"), D(0))
    assert balance(paper, "BTC") == (D(0), D(0))


def test_a_cancelled_resting_sell_returns_the_base_asset() -> None:
    paper = exchange(USD=D(0), BTC=D("0.01"))
    order = paper.create_limit_order("BTC/USD", Side.SELL, D("0.01"), D(51000), "s1")
    assert balance(paper, "BTC") == (D(0), D("0.01"))
    paper.cancel_order(order.id, "BTC/USD")
    assert balance(paper, "BTC") == (D("0.01"), D(0))
    assert balance(paper, "USD") == (D(0), D(0))


def test_a_marketable_buy_far_above_the_price_gets_the_unspent_reservation_back() -> None:
    """Reserved at a limit more than twice the last price, filled at the last price: the difference comes back."""
    paper = exchange("received", USD=D(2000))
    paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D(120000), "c1")
    assert balance(paper, "USD") == (D(2000) - D(500), D(0))
    assert balance(paper, "BTC") == (D("0.01") - D("0.01") * TAKER, D(0))


# -- partial fills and reservations -------------------------------------------------------------------


def test_a_resting_buy_releases_its_reservation_in_proportion_as_it_fills() -> None:
    paper = exchange()
    order = paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D(49000), "c1")
    reserved = D(490) * (1 + TAKER)
    assert balance(paper, "USD") == (D(1000) - reserved, reserved)
    paper.fill_resting(order.id, D("0.004"))
    # 40% filled: 40% of the reservation released, the cost and the maker fee paid out of it.
    assert balance(paper, "USD") == (
        D(1000) - reserved + reserved * D("0.4") - D(196) - D(196) * MAKER,
        reserved * D("0.6"),
    )
    assert paper.fetch_order(order.id, "BTC/USD").status is OrderStatus.OPEN
    paper.fill_resting(order.id, D("0.003"))
    assert balance(paper, "USD")[1] == reserved * D("0.3")
    assert paper.fetch_order(order.id, "BTC/USD").status is OrderStatus.OPEN
    paper.fill_resting(order.id)  # the rest
    done = paper.fetch_order(order.id, "BTC/USD")
    assert done.status is OrderStatus.CLOSED
    assert done.filled == D("0.01")
    assert done.cost == D(490)
    assert done.fees == (Fee(D(490) * MAKER, "USD"),)
    assert balance(paper, "USD") == (D(1000) - D(490) - D("0.49"), D(0))
    assert balance(paper, "BTC") == (D("0.01"), D(0))


def test_a_resting_sell_in_base_fee_mode_releases_its_reservation_in_proportion() -> None:
    paper = exchange("base", BTC=D(1))
    order = paper.create_limit_order("BTC/USD", Side.SELL, D("0.5"), D(51000), "s1")
    reserved = D("0.5") * (1 + TAKER)
    assert balance(paper, "BTC") == (D(1) - reserved, reserved)
    paper.fill_resting(order.id, D("0.2"))
    # 40% sold: 40% of the reservation released, the amount sold and the maker fee paid out of it.
    assert balance(paper, "BTC") == (
        D(1) - reserved + reserved * D("0.4") - D("0.2") - D("0.2") * MAKER,
        reserved * D("0.6"),
    )
    paper.fill_resting(order.id, D("0.1"))
    assert balance(paper, "BTC")[1] == reserved * D("0.4")
    paper.fill_resting(order.id)
    assert balance(paper, "BTC") == (D(1) - D("0.5") - D("0.5") * MAKER, D(0))
    assert balance(paper, "USD") == (D(25500), D(0))


def test_a_partly_filled_resting_order_fills_its_remainder_when_the_price_crosses() -> None:
    paper = exchange()
    order = paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D(49000), "c1")
    paper.fill_resting(order.id, D("0.004"))
    (filled,) = paper.set_price("BTC/USD", D(48000))
    assert filled.filled == D("0.01")
    assert filled.cost == D(490)
    assert filled.status is OrderStatus.CLOSED
    assert balance(paper, "BTC") == (D("0.01"), D(0))


def test_filling_nothing_changes_nothing() -> None:
    paper = exchange()
    order = paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D(49000), "c1")
    after = paper.fill_resting(order.id, D(0))
    assert after.filled == D(0)
    assert after.fees == ()
    assert after.status is OrderStatus.OPEN


def test_a_closed_order_cannot_be_filled_again() -> None:
    paper = exchange()
    order = paper.create_limit_order("BTC/USD", Side.BUY, D("0.001"), D(51000), "c1")
    assert order.status is OrderStatus.CLOSED
    with pytest.raises(InvalidOrder, match="is closed, not open"):
        paper.fill_resting(order.id, D("0.001"))


def test_fill_resting_refuses_more_than_the_order_has_left() -> None:
    paper = exchange()
    order = paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D(49000), "c1")
    paper.fill_resting(order.id, D("0.004"))
    with pytest.raises(InvalidOrder, match="only 0.006 of it is unfilled"):
        paper.fill_resting(order.id, D("0.007"))
    assert paper.fetch_order(order.id, "BTC/USD").filled == D("0.004")


# -- reservations by fee mode -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fee_mode", "side", "asset", "reserved"),
    [
        ("quote", Side.BUY, "USD", D(490) * (1 + TAKER)),  # the larger of the two fees, on top
        ("received", Side.BUY, "USD", D(490)),  # the fee comes out of the base received
        ("base", Side.BUY, "USD", D(490)),
        ("quote", Side.SELL, "BTC", D("0.01")),  # the fee comes out of the quote received
        ("received", Side.SELL, "BTC", D("0.01")),
        ("base", Side.SELL, "BTC", D("0.01") * (1 + TAKER)),  # the fee is taken on top, in base
    ],
)
def test_each_fee_mode_reserves_what_its_fees_need(fee_mode: str, side: Side, asset: str, reserved: D) -> None:
    paper = exchange(fee_mode, USD=D(1000), BTC=D(1))
    price = D(49000) if side is Side.BUY else D(51000)  # resting either way
    paper.create_limit_order("BTC/USD", side, D("0.01"), price, "c1")
    assert balance(paper, asset)[1] == reserved


@pytest.mark.parametrize("fee_mode", ["quote", "received", "base"])
def test_each_fee_mode_survives_a_json_round_trip_of_the_state(fee_mode: str) -> None:
    """The persisted state is JSON: the fee mode read back is an equal string, not the same object."""
    paper = exchange(fee_mode, USD=D(1000), BTC=D(1))
    restored = PaperExchange.from_state(json.loads(json.dumps(paper.to_state())))
    twin = exchange(fee_mode, USD=D(1000), BTC=D(1))
    for account in (restored, twin):
        account.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D(49000), "b1")
        account.create_limit_order("BTC/USD", Side.SELL, D("0.01"), D(51000), "s1")
        account.create_limit_order("BTC/USD", Side.BUY, D("0.001"), D(50100), "b2")
        account.create_limit_order("BTC/USD", Side.SELL, D("0.001"), D(49900), "s2")
    assert restored.fetch_balances() == twin.fetch_balances()
    assert [o.fees for o in restored.orders()] == [o.fees for o in twin.orders()]


def test_a_quote_mode_sell_pays_its_fee_in_quote_out_of_the_proceeds() -> None:
    paper = exchange(USD=D(0), BTC=D("0.01"))
    order = paper.create_limit_order("BTC/USD", Side.SELL, D("0.01"), D(49900), "s1")
    assert order.fees == (Fee(D(500) * TAKER, "USD"),)
    assert balance(paper, "USD") == (D(500) - D(1), D(0))


def test_a_quote_mode_buy_filled_as_maker_returns_the_unused_taker_reservation() -> None:
    paper = exchange()
    order = paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D(49000), "c1")
    paper.set_price("BTC/USD", D(48000))
    assert paper.fetch_order(order.id, "BTC/USD").fees == (Fee(D(490) * MAKER, "USD"),)
    assert balance(paper, "USD") == (D(1000) - D(490) - D("0.49"), D(0))


def test_a_base_mode_sell_filled_as_maker_returns_the_unused_taker_reservation() -> None:
    paper = exchange("base", BTC=D(1))
    order = paper.create_limit_order("BTC/USD", Side.SELL, D("0.5"), D(51000), "s1")
    paper.set_price("BTC/USD", D(52000))
    assert paper.fetch_order(order.id, "BTC/USD").fees == (Fee(D("0.5") * MAKER, "BTC"),)
    assert balance(paper, "BTC") == (D("0.5") - D("0.0005"), D(0))


# -- equity ---------------------------------------------------------------------------------------------


def test_equity_counts_an_asset_named_after_the_quote_at_its_price() -> None:
    """``ZEC`` sorts after ``USD``: equity must compare asset names for equality, not order."""
    paper = PaperExchange(balances={"USD": D(100), "ZEC": D(2)}, markets={"ZEC/USD": default_market("ZEC/USD")})
    paper.set_price("ZEC/USD", D(30))
    assert paper.equity("USD") == D(160)
    assert paper.equity(fresh("USD")) == D(160)


# -- faults ---------------------------------------------------------------------------------------------


def test_a_fault_is_removed_once_spent() -> None:
    paper = exchange()
    paper.faults.append(Fault(fresh("fetch_balances"), RateLimited("429"), times=2))  # type: ignore[arg-type]
    for _ in range(2):
        with pytest.raises(RateLimited):
            paper.fetch_balances()
    assert paper.faults == []
    assert balance(paper, "USD") == (D(1000), D(0))


def test_a_fault_with_no_times_left_never_fires() -> None:
    paper = exchange()
    paper.faults.append(Fault("fetch_balances", RateLimited("429"), times=0))
    assert balance(paper, "USD") == (D(1000), D(0))


# -- the persisted state ----------------------------------------------------------------------------------


def test_the_state_round_trips_orders_ratios_and_the_id_counter() -> None:
    paper = exchange()
    paper.partial_fill_ratio = D("0.5")
    resting = paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D(49000), "c1")
    state = json.loads(json.dumps(paper.to_state()))
    restored = PaperExchange.from_state(state, name="restored")
    assert restored.name == "restored"
    assert restored.partial_fill_ratio == D("0.5")
    assert restored.fetch_balances() == paper.fetch_balances()
    assert restored.fetch_order(resting.id, "BTC/USD") == resting
    half = restored.create_limit_order("BTC/USD", Side.BUY, D("0.002"), D(50100), "c2")
    assert half.id == "paper-2"
    assert half.filled == D("0.001")


def test_a_state_without_a_ratio_restores_none() -> None:
    restored = PaperExchange.from_state(json.loads(json.dumps(exchange().to_state())))
    assert restored.partial_fill_ratio is None


def test_a_state_written_by_the_first_format_still_loads() -> None:
    """States already stored in DynamoDB are format 1: a new release must read them as they are."""
    state = {
        "format": 1,
        "balances": {"USD": "990"},
        "locked": {"USD": "10"},
        "markets": {},
        "prices": {},
        "fee_mode": "quote",
        "partial_fill_ratio": None,
        "default_fee": "0",
        "orders": [],
        "client_ids": {},
    }
    restored = PaperExchange.from_state(state)
    assert restored.balances == {"USD": D(990)}
    assert restored.to_state()["next_id"] == 1


@pytest.mark.parametrize("version", [None, 0, 2, "1"])
def test_a_state_of_another_format_is_refused(version: object) -> None:
    state = exchange().to_state()
    state["format"] = version
    with pytest.raises(ValueError, match="paper state format"):
        PaperExchange.from_state(state)


def test_a_state_with_an_unknown_fee_mode_is_refused() -> None:
    state = exchange().to_state()
    state["fee_mode"] = "bnb"
    with pytest.raises(ValueError, match="unknown fee_mode 'bnb'"):
        PaperExchange.from_state(state)


# -- price files ------------------------------------------------------------------------------------------


def test_a_missing_prices_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read prices file"):
        CsvPrices(tmp_path / "absent.csv")


def test_a_prices_file_may_have_more_columns_and_rows_in_any_order(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(
        "time,symbol,price,volume\n"
        "2024-08-10T02:00:00Z,BTC/USD,90,1\n"
        "2024-08-10T00:00:00Z,BTC/USD,120,1\n"
        "2024-08-10T01:00:00Z,BTC/USD,100,1\n"
        "2024-08-10T03:00:00Z,BTC/USD,110,1\n"
    )
    prices = CsvPrices(path)
    at = [prices.at("BTC/USD", parse_time(f"2024-08-10T0{hour}:30:00Z")) for hour in range(4)]
    assert at == [D(120), D(100), D(90), D(110)]
    assert prices.moments() == [parse_time(f"2024-08-10T0{hour}:00:00Z") for hour in range(4)]


@pytest.mark.parametrize("price", ["0", "-0.5"])
def test_a_prices_file_price_that_is_not_positive_is_refused(tmp_path: Path, price: str) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(f"time,symbol,price\n2024-08-10T00:00:00Z,BTC/USD,{price}\n")
    with pytest.raises(ConfigError, match="price must be positive"):
        CsvPrices(path)


def test_a_prices_file_price_below_one_is_a_price(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text("time,symbol,price\n2024-08-10T00:00:00Z,DOGE/USD,0.1\n")
    assert CsvPrices(path).at("DOGE/USD", parse_time("2024-08-10T00:00:00Z")) == D("0.1")


def test_fill_resting_takes_exactly_the_remainder() -> None:
    paper = exchange()
    order = paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D(49000), "c1")
    paper.fill_resting(order.id, D("0.004"))
    done = paper.fill_resting(order.id, D("0.006"))
    assert done.status is OrderStatus.CLOSED
    assert done.filled == D("0.01")


def test_a_negative_fill_is_no_fill() -> None:
    paper = exchange()
    order = paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D(49000), "c1")
    before = paper.fetch_balances()
    after = paper.fill_resting(order.id, D("-0.004"))
    assert after.filled == D(0)
    assert after.fees == ()
    assert paper.fetch_balances() == before


def test_a_quote_mode_buy_far_above_the_price_gets_the_unspent_reservation_back() -> None:
    """Reserved at more than twice the last price with the taker fee on top, filled at the last price."""
    paper = exchange(USD=D(2000))
    order = paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D(120000), "c1")
    assert order.fees == (Fee(D(500) * TAKER, "USD"),)
    assert balance(paper, "USD") == (D(2000) - D(500) - D(1), D(0))
    assert balance(paper, "BTC") == (D("0.01"), D(0))
