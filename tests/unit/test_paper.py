from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from crypto_bot.adapters.paper.exchange import CsvPrices, PaperExchange, default_market, load_markets_file
from crypto_bot.domain.errors import BadSymbol, ConfigError, InsufficientFunds, InvalidOrder, OrderNotFound
from crypto_bot.domain.markets import Side
from crypto_bot.domain.orders import OrderStatus
from crypto_bot.domain.signals import parse_time


@pytest.fixture
def paper() -> PaperExchange:
    exchange = PaperExchange(balances={"USD": D(1000)}, markets={"BTC/USD": default_market("BTC/USD", D("0.002"))})
    exchange.set_price("BTC/USD", D(50000))
    return exchange


def test_non_marketable_order_rests_and_locks_funds(paper: PaperExchange) -> None:
    order = paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D("49000"), "c1")
    assert order.status is OrderStatus.OPEN
    usd = paper.fetch_balances()["USD"]
    assert usd.used == D("490") * D("1.002")
    assert usd.free + usd.used == D(1000)


def test_resting_buy_fills_at_its_limit_as_maker_when_price_crosses(paper: PaperExchange) -> None:
    order = paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D("49000"), "c1")
    (filled,) = paper.set_price("BTC/USD", D(48500))
    assert filled.id == order.id
    assert filled.cost == D("490.00")
    assert paper.fetch_balances()["BTC"].free == D("0.01")
    assert paper.fetch_balances()["USD"].total == D(1000) - D("490") - D("0.98")


def test_cancel_releases_the_locked_funds(paper: PaperExchange) -> None:
    order = paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D("49000"), "c1")
    assert paper.cancel_order(order.id, "BTC/USD").status is OrderStatus.CANCELED
    assert paper.fetch_balances()["USD"].free == D(1000)


def test_order_the_balance_cannot_cover_is_refused(paper: PaperExchange) -> None:
    with pytest.raises(InsufficientFunds, match="needs 1002 USD but only 1000 USD is free"):
        paper.create_limit_order("BTC/USD", Side.BUY, D("0.02"), D("50000"), "c1")


@pytest.mark.parametrize(
    ("amount", "price", "message"),
    [
        (D("0.000000001"), D("50000"), "not a multiple of the lot size"),
        (D("0.01"), D("50000.001"), "not on the tick grid"),
        (D("0.00001"), D("50000"), "below the market minimum 1 USD"),
    ],
)
def test_precision_and_minimums_are_enforced(paper: PaperExchange, amount: D, price: D, message: str) -> None:
    with pytest.raises(InvalidOrder, match=message):
        paper.create_limit_order("BTC/USD", Side.BUY, amount, price, "c1")


def test_client_order_ids_are_unique(paper: PaperExchange) -> None:
    paper.create_limit_order("BTC/USD", Side.BUY, D("0.001"), D("49000"), "c1")
    with pytest.raises(InvalidOrder, match="duplicate client order id c1"):
        paper.create_limit_order("BTC/USD", Side.BUY, D("0.001"), D("49000"), "c1")
    found = paper.find_order_by_client_id("c1", "BTC/USD")
    assert found is not None
    assert found.client_order_id == "c1"
    assert paper.find_order_by_client_id("nope", "BTC/USD") is None


def test_unknown_symbol_and_order_are_errors(paper: PaperExchange) -> None:
    with pytest.raises(BadSymbol):
        paper.create_limit_order("DOGE/USD", Side.BUY, D(1), D(1), "c1")
    with pytest.raises(OrderNotFound):
        paper.fetch_order("paper-999", "BTC/USD")


def test_received_asset_fee_mode_charges_buys_in_base(paper: PaperExchange) -> None:
    paper.fee_mode = "received"
    order = paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D("50100"), "c1")
    assert order.fees[0].currency == "BTC"
    assert paper.fetch_balances()["BTC"].free == D("0.01") - D("0.00002")
    sell = paper.create_limit_order("BTC/USD", Side.SELL, D("0.009"), D("49900"), "c2")
    assert sell.fees[0].currency == "USD"


def test_equity_values_every_asset_at_the_last_price(paper: PaperExchange) -> None:
    paper.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D("50100"), "c1")
    paper.set_price("BTC/USD", D(60000))
    assert paper.equity("USD") == D(1000) - D("500") - D("1.000") + D("600")


def test_markets_file_overrides_defaults(tmp_path: Path) -> None:
    path = tmp_path / "markets.json"
    path.write_text('{"BTC/USD": {"amount_step": "0.0001", "min_cost": 10}}')
    market = load_markets_file(path, fee=D("0.001"))["BTC/USD"]
    assert market.amount_step == D("0.0001")
    assert market.min_cost == D(10)
    assert market.taker_fee == D("0.001")
    path.write_text('{"BTC/USD": {"lot": 1}}')
    with pytest.raises(ConfigError, match="unknown fields"):
        load_markets_file(path)


def test_csv_prices_give_the_last_price_at_or_before_a_time(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    path.write_text("time,symbol,price\n2024-08-10T00:00:00Z,BTC/USD,100\n2024-08-10T08:00:00Z,BTC/USD,110\n")
    prices = CsvPrices(path)
    assert prices.at("BTC/USD", parse_time("2024-08-10T07:59:59Z")) == D(100)
    assert prices.at("BTC/USD", parse_time("2024-08-10T08:00:00Z")) == D(110)
    assert prices.at("BTC/USD", parse_time("2024-08-09T00:00:00Z")) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("when,symbol,price\n", "missing columns"),
        ("time,symbol,price\nyesterday,BTC/USD,1\n", "line 2"),
        ("time,symbol,price\n2024-08-10T00:00:00Z,BTC/USD,-1\n", "price must be positive"),
    ],
)
def test_bad_price_files_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "prices.csv"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        CsvPrices(path)


def test_price_feed_makes_a_live_dry_run_and_fills_crossed_orders() -> None:
    quotes = iter([D(50000), D(48000)])
    exchange = PaperExchange(
        balances={"USD": D(1000)},
        markets={"BTC/USD": default_market("BTC/USD")},
        price_feed=lambda symbol: next(quotes),
    )
    assert exchange.fetch_last_price("BTC/USD") == D(50000)
    order = exchange.create_limit_order("BTC/USD", Side.BUY, D("0.01"), D("49000"), "c1")
    assert order.status is OrderStatus.OPEN
    assert exchange.fetch_last_price("BTC/USD") == D(48000)
    assert exchange.fetch_order(order.id, "BTC/USD").status is OrderStatus.CLOSED


def test_injected_faults_fire_once_per_count(paper: PaperExchange) -> None:
    from crypto_bot.adapters.paper.exchange import Fault
    from crypto_bot.domain.errors import RateLimited

    paper.faults.append(Fault("fetch_balances", RateLimited("429"), times=2))
    for _ in range(2):
        with pytest.raises(RateLimited):
            paper.fetch_balances()
    assert paper.fetch_balances()["USD"].free == D(1000)
    assert paper.calls["fetch_balances"] == 3
