"""Resting stop-limits on the emulated Binance spot venue: STOP_LOSS_LIMIT as the docs describe it.

Two layers, as in test_binance.py: the emulator against binance-spot-api-docs over raw signed HTTP, then
the production adapter (``CcxtExchange`` over ccxt's real binance class) placing, reading, finding and
cancelling a stop through it.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from crypto_bot.adapters.ccxt.exchange import CcxtExchange
from crypto_bot.domain.errors import InvalidOrder, UnsupportedExchange
from crypto_bot.domain.orders import Fee, OrderStatus
from tests.venues.binance import Balance, Binance, CommissionRates
from tests.venues.http import VenueServer
from tests.venues.test_binance import CID, ORDER, limit, signed

SYMBOL = "BTC/USDT"


def stop_loss_limit(quantity: str, stop_price: str, price: str, **extra: str) -> dict[str, str]:
    """Return the parameters of a BTCUSDT STOP_LOSS_LIMIT SELL (rest-api.md, New order)."""
    order = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "STOP_LOSS_LIMIT",
        "timeInForce": "GTC",
        "quantity": quantity,
        "stopPrice": stop_price,
        "price": price,
    }
    return order | extra


@pytest.fixture
def holder(binance_venue: Binance) -> Binance:
    """The venue with 0.1 BTC on the account, maker 0.075 % and taker 0.1 %, so a fill's role shows in its fee."""
    binance_venue.rates = CommissionRates(maker=D("0.00075"), taker=D("0.001"))
    binance_venue.deposit("BTC", D("0.1"))
    return binance_venue


# --------------------------------------------------------------------------- the emulator against the docs


def test_a_stop_loss_limit_rests_new_and_not_working_with_its_base_locked(
    holder: Binance, binance_server: VenueServer
) -> None:
    status, ack = signed(binance_server, "POST", "/api/v3/order", **stop_loss_limit("0.01", "59000", "58900"))
    # rest-api.md, New order: "MARKET and LIMIT order types default to FULL, all other orders default to ACK".
    assert (status, set(ack)) == (200, {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"})
    assert holder.balances["BTC"] == Balance(free=D("0.09"), locked=D("0.01"))
    _, read = signed(binance_server, "GET", "/api/v3/order", symbol="BTCUSDT", orderId=str(ack["orderId"]))
    assert {k: read[k] for k in ("status", "type", "side", "stopPrice", "price", "isWorking", "workingTime")} == {
        "status": "NEW",
        "type": "STOP_LOSS_LIMIT",
        "side": "SELL",
        "stopPrice": "59000.00000000",
        "price": "58900.00000000",
        "isWorking": False,
        "workingTime": -1,
    }
    _, opened = signed(binance_server, "GET", "/api/v3/openOrders", symbol="BTCUSDT")
    assert [o["orderId"] for o in opened] == [ack["orderId"]]
    _, full = signed(
        binance_server, "POST", "/api/v3/order", **stop_loss_limit("0.01", "59000", "58900", newOrderRespType="FULL")
    )
    assert (full["status"], full["stopPrice"], full["workingTime"], full["fills"]) == (
        "NEW",
        "59000.00000000",
        -1,
        [],
    )


def test_a_stop_triggers_when_a_trade_reaches_it_and_its_limit_takes_the_bid(
    holder: Binance, binance_server: VenueServer
) -> None:
    _, ack = signed(binance_server, "POST", "/api/v3/order", **stop_loss_limit("0.01", "59000", "58900"))
    holder.set_price("BTCUSDT", D("59000.01"))
    holder.set_book("BTCUSDT", bid=D(58000), ask=D(59500))  # the touch moving without a trade triggers nothing
    assert holder.orders[0].status == "NEW"
    assert holder.orders[0].triggered_at is None
    holder.set_price("BTCUSDT", D(59000))
    _, read = signed(binance_server, "GET", "/api/v3/order", symbol="BTCUSDT", orderId=str(ack["orderId"]))
    assert (read["status"], read["executedQty"], read["cummulativeQuoteQty"], read["isWorking"]) == (
        "FILLED",
        "0.01000000",
        "590.00000000",
        True,
    )
    assert read["workingTime"] > 0
    _, trades = signed(binance_server, "GET", "/api/v3/myTrades", symbol="BTCUSDT")
    # The triggered limit entered the book as a new order and took the bid: a taker's commission.
    assert [(t["price"], t["qty"], t["commission"], t["commissionAsset"], t["isMaker"]) for t in trades] == [
        ("59000.00000000", "0.01000000", "0.59000000", "USDT", False)
    ]
    assert holder.total_balances() == {"BTC": D("0.09"), "USDT": D("589.41")}


def test_a_gap_below_the_limit_leaves_the_triggered_limit_working_until_the_price_returns(
    holder: Binance, binance_server: VenueServer
) -> None:
    signed(binance_server, "POST", "/api/v3/order", **stop_loss_limit("0.01", "59000", "58900"))
    holder.set_price("BTCUSDT", D(58000))
    _, [working] = signed(binance_server, "GET", "/api/v3/openOrders", symbol="BTCUSDT")
    assert (working["status"], working["isWorking"], working["executedQty"]) == ("NEW", True, "0.00000000")
    assert holder.balances["BTC"].locked == D("0.01")
    holder.set_price("BTCUSDT", D(58950))  # crosses the resting limit: it fills at its limit, as maker
    _, trades = signed(binance_server, "GET", "/api/v3/myTrades", symbol="BTCUSDT")
    assert [(t["price"], t["commission"], t["isMaker"]) for t in trades] == [("58900.00000000", "0.44175000", True)]


@pytest.mark.parametrize("stop_price", ["60000", "60100"], ids=["at-the-last-price", "above-it"])
def test_a_stop_the_last_price_already_meets_is_refused_with_minus_2010(
    holder: Binance, binance_server: VenueServer, stop_price: str
) -> None:
    # errors.md, messages of -2010: "Order would trigger immediately." (ccxt also knows the older wording,
    # "Stop price would trigger immediately.").
    assert signed(binance_server, "POST", "/api/v3/order", **stop_loss_limit("0.01", stop_price, "58900")) == (
        400,
        {"code": -2010, "msg": "Order would trigger immediately."},
    )
    assert holder.orders == []
    assert holder.balances["BTC"] == Balance(free=D("0.1"))


@pytest.mark.parametrize(
    ("order", "answer"),
    [
        (stop_loss_limit("0.01", "59000.005", "58900"), (-1013, "Filter failure: PRICE_FILTER")),
        (stop_loss_limit("0.01", "0.001", "58900"), (-1013, "Filter failure: PRICE_FILTER")),
        (stop_loss_limit("0.0000001", "59000", "58900"), (-1013, "Filter failure: LOT_SIZE")),
        (stop_loss_limit("0.00001", "59000", "58900"), (-1013, "Filter failure: NOTIONAL")),
        (
            {k: v for k, v in stop_loss_limit("0.01", "59000", "58900").items() if k != "stopPrice"},
            (-1102, "Mandatory parameter 'stopPrice' was not sent, was empty/null, or malformed."),
        ),
        (stop_loss_limit("1", "59000", "58900"), (-2010, "Account has insufficient balance for requested action.")),
    ],
    ids=["stop-off-tick", "stop-below-min-price", "step", "notional", "no-stop-price", "balance"],
)
def test_a_stop_is_checked_against_the_filters_its_stop_price_included(
    holder: Binance, binance_server: VenueServer, order: dict[str, str], answer: tuple[int, str]
) -> None:
    # filters.md, PRICE_FILTER: "minPrice defines the minimum price/stopPrice allowed"; likewise tickSize.
    code, msg = answer
    assert signed(binance_server, "POST", "/api/v3/order", **order) == (400, {"code": code, "msg": msg})
    assert holder.orders == []


def test_a_cancel_before_the_trigger_releases_the_base_and_a_canceled_stop_never_triggers(
    holder: Binance, binance_server: VenueServer
) -> None:
    _, ack = signed(binance_server, "POST", "/api/v3/order", **stop_loss_limit("0.01", "59000", "58900"))
    status, canceled = signed(binance_server, "DELETE", "/api/v3/order", symbol="BTCUSDT", orderId=str(ack["orderId"]))
    assert (status, canceled["status"], canceled["stopPrice"]) == (200, "CANCELED", "59000.00000000")
    assert holder.balances["BTC"] == Balance(free=D("0.1"))
    holder.set_price("BTCUSDT", D(58000))
    assert holder.trades == []


def test_a_triggered_stop_and_a_resting_limit_both_fill_on_one_fall(
    holder: Binance, binance_server: VenueServer
) -> None:
    holder.deposit("USDT", D(1000))
    signed(binance_server, "POST", "/api/v3/order", **limit("BUY", "0.01", "59000"))
    signed(binance_server, "POST", "/api/v3/order", **stop_loss_limit("0.01", "59000", "58900"))
    holder.set_price("BTCUSDT", D(59000))
    assert [(o.type, o.status) for o in holder.orders] == [("LIMIT", "FILLED"), ("STOP_LOSS_LIMIT", "FILLED")]


# --------------------------------------------------------------------------- the adapter against the emulator


def test_ccxt_exchange_places_a_real_stop_loss_limit_reads_it_back_and_sees_it_fill(
    holder: Binance, binance: CcxtExchange
) -> None:
    assert binance.supports_stop_orders is True
    placed = binance.create_stop_order(SYMBOL, D("0.01"), D("59000"), D("58900"), CID)
    [venue_order] = holder.orders
    # What ccxt sent for the unified 'limit' with stopLossPrice: Binance's native stop-limit.
    assert (venue_order.type, venue_order.side, venue_order.stop_price, venue_order.price) == (
        "STOP_LOSS_LIMIT",
        "SELL",
        D(59000),
        D(58900),
    )
    assert venue_order.client_order_id == CID
    assert (placed.status, placed.stop_price, placed.price, placed.triggered) == (
        OrderStatus.OPEN,
        D(59000),
        D(58900),
        False,
    )
    read = binance.fetch_order(placed.id, SYMBOL)
    assert (read.status, read.stop_price, read.triggered, read.filled) == (OrderStatus.OPEN, D(59000), False, D(0))
    assert binance.fetch_balances()["BTC"].used == D("0.01")
    found = binance.find_order_by_client_id(CID, SYMBOL)
    assert found is not None
    assert (found.id, found.stop_price, found.triggered) == (placed.id, D(59000), False)

    holder.set_price("BTCUSDT", D(59000))
    filled = binance.fetch_order(placed.id, SYMBOL)
    assert (filled.status, filled.filled, filled.cost, filled.triggered, filled.stop_price) == (
        OrderStatus.CLOSED,
        D("0.01"),
        D(590),
        True,
        D(59000),
    )
    # GET /api/v3/order carries no commission: the taker's 0.1 % comes from the order's trades.
    assert filled.fees == (Fee(D("0.59"), "USDT"),)
    # The race the engine must handle: a cancel of a stop that already filled answers with the filled order.
    assert binance.cancel_order(placed.id, SYMBOL) == filled


def test_ccxt_exchange_reads_a_triggered_stop_whose_limit_rests_as_triggered(
    holder: Binance, binance: CcxtExchange
) -> None:
    placed = binance.create_stop_order(SYMBOL, D("0.01"), D("59000"), D("58900"), CID)
    holder.set_price("BTCUSDT", D(58000))
    read = binance.fetch_order(placed.id, SYMBOL)
    assert (read.status, read.triggered, read.filled) == (OrderStatus.OPEN, True, D(0))


def test_ccxt_exchange_cancels_an_untriggered_stop_and_the_base_is_free_again(
    holder: Binance, binance: CcxtExchange
) -> None:
    placed = binance.create_stop_order(SYMBOL, D("0.01"), D("59000"), D("58900"), CID)
    canceled = binance.cancel_order(placed.id, SYMBOL)
    assert (canceled.status, canceled.filled, canceled.triggered, canceled.stop_price) == (
        OrderStatus.CANCELED,
        D(0),
        False,
        D(59000),
    )
    assert binance.fetch_balances()["BTC"].free == D("0.1")


def test_ccxt_exchange_reads_a_stop_that_would_trigger_immediately_as_invalid_order(
    holder: Binance, binance: CcxtExchange
) -> None:
    with pytest.raises(InvalidOrder, match=r"stopLossPrice 60000, .*Order would trigger immediately\."):
        binance.create_stop_order(SYMBOL, D("0.01"), D("60000.00"), D("59900"), CID)
    assert holder.orders == []


def test_ccxt_exchange_refuses_a_stop_off_the_tick_grid_before_sending_it(
    holder: Binance, binance: CcxtExchange, binance_server: VenueServer
) -> None:
    with pytest.raises(InvalidOrder, match=r"stop 59000\.001 limit 58900 is not at the market's precision"):
        binance.create_stop_order(SYMBOL, D("0.01"), D("59000.001"), D("58900"), CID)
    assert binance_server.calls(ORDER) == 0


def test_ccxt_exchange_takes_no_stop_orders_on_kraken_and_sends_nothing(
    kraken: CcxtExchange, kraken_server: VenueServer
) -> None:
    # ccxt's features list Kraken's stopLossPrice, but no test here has checked what ccxt sends for it.
    assert kraken.supports_stop_orders is False
    with pytest.raises(UnsupportedExchange, match="kraken takes no resting stop-limit orders"):
        kraken.create_stop_order("BTC/USD", D("0.01"), D("59000"), D("58900"), CID)
    assert kraken_server.log == []
