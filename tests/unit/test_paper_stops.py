"""The paper exchange's resting sell stop-limits, modelled on Binance's STOP_LOSS_LIMIT.

Placement locks the base as a resting sell limit does; nothing fills while the last price stays above the
stop; a fall to the stop puts the limit on the book as a new order (taker at the last price when
marketable, else resting at its limit); a stop at or above the last price is refused, as Binance refuses it
(binance-spot-api-docs errors.md, -2010 "Order would trigger immediately.").
"""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal as D

import pytest

from crypto_bot.adapters.paper.exchange import Fault, PaperExchange, default_market
from crypto_bot.domain.errors import InvalidOrder, RequestTimeout, UnsupportedExchange
from crypto_bot.domain.markets import Side
from crypto_bot.domain.orders import Balance, ExchangeOrder, Fee, OrderStatus
from crypto_bot.engine.records import order_from_dict, order_to_dict

SYMBOL = "BTC/USD"
MAKER, TAKER = D("0.001"), D("0.002")


def exchange(fee_mode: str = "quote") -> PaperExchange:
    """An account holding 1 BTC and 100 USD; BTC/USD trades at 60000 with 0.1 % maker and 0.2 % taker fees."""
    paper = PaperExchange(
        balances={"BTC": D(1), "USD": D(100)},
        markets={SYMBOL: replace(default_market(SYMBOL), maker_fee=MAKER, taker_fee=TAKER)},
        fee_mode=fee_mode,  # type: ignore[arg-type]
    )
    paper.set_price(SYMBOL, D(60000))
    return paper


def stop(
    paper: PaperExchange, *, stop_price: str = "59000", limit: str = "58900", cid: str = "cb-stop"
) -> ExchangeOrder:
    return paper.create_stop_order(SYMBOL, D("0.5"), D(stop_price), D(limit), cid)


def test_a_stop_rests_untriggered_with_its_base_locked_like_a_resting_sell_limit() -> None:
    paper = exchange()
    placed = stop(paper)
    assert (placed.status, placed.side, placed.stop_price, placed.price, placed.triggered) == (
        OrderStatus.OPEN,
        Side.SELL,
        D(59000),
        D(58900),
        False,
    )
    assert paper.fetch_balances()["BTC"] == Balance(free=D("0.5"), used=D("0.5"))
    limit = exchange()
    limit.create_limit_order(SYMBOL, Side.SELL, D("0.5"), D(61000), "cb-limit")
    assert limit.fetch_balances() == paper.fetch_balances()
    assert paper.open_orders() == [placed]


def test_a_stop_does_not_fill_while_the_price_stays_above_it() -> None:
    paper = exchange()
    placed = stop(paper)
    # Above the stop, and even above the limit (a resting sell limit at 58900 would fill at 59500).
    assert paper.set_price(SYMBOL, D("59000.01")) == []
    assert paper.set_price(SYMBOL, D(59500)) == []
    assert paper.fetch_order(placed.id, SYMBOL) == placed
    with pytest.raises(InvalidOrder, match="is a stop at 59000 not triggered yet"):
        paper.fill_resting(placed.id)


def test_a_fall_to_the_stop_triggers_it_and_the_limit_takes_at_the_last_price_with_the_taker_fee() -> None:
    paper = exchange()
    placed = stop(paper)
    [filled] = paper.set_price(SYMBOL, D(59000))
    assert filled.id == placed.id
    assert (filled.status, filled.triggered, filled.filled, filled.cost) == (
        OrderStatus.CLOSED,
        True,
        D("0.5"),
        D(29500),
    )
    assert filled.fees == (Fee(D("59.000"), "USD"),)  # 29500 × 0.2 %: the triggered limit took liquidity
    assert paper.fetch_balances() == {"BTC": Balance(free=D("0.5")), "USD": Balance(free=D("29541.000"))}


def test_a_fee_in_the_received_asset_is_charged_in_the_quote_on_the_triggered_sell() -> None:
    paper = exchange("received")
    stop(paper)
    [filled] = paper.set_price(SYMBOL, D(58950))
    assert (filled.cost, filled.fees) == (D("29475"), (Fee(D("58.950"), "USD"),))


def test_a_gap_below_the_limit_triggers_the_stop_and_leaves_its_limit_resting_until_the_price_returns() -> None:
    paper = exchange()
    placed = stop(paper)
    assert paper.set_price(SYMBOL, D(58000)) == []
    triggered = paper.fetch_order(placed.id, SYMBOL)
    assert (triggered.status, triggered.triggered, triggered.filled) == (OrderStatus.OPEN, True, D(0))
    assert paper.fetch_balances()["BTC"] == Balance(free=D("0.5"), used=D("0.5"))
    # Now an ordinary resting sell limit: it fills at its limit, as a maker, when the price comes back up.
    [filled] = paper.set_price(SYMBOL, D(58900))
    assert (filled.status, filled.cost, filled.fees) == (OrderStatus.CLOSED, D(29450), (Fee(D("29.450"), "USD"),))


def test_a_cancel_before_the_trigger_releases_the_lock() -> None:
    paper = exchange()
    placed = stop(paper)
    canceled = paper.cancel_order(placed.id, SYMBOL)
    assert (canceled.status, canceled.filled, canceled.triggered) == (OrderStatus.CANCELED, D(0), False)
    assert paper.fetch_balances() == {"BTC": Balance(free=D(1)), "USD": Balance(free=D(100))}
    assert paper.set_price(SYMBOL, D(58000)) == []  # a canceled stop never triggers


def test_a_cancel_after_the_stop_triggered_and_filled_returns_the_filled_order() -> None:
    # The race the engine must handle: it cancels a stop the market has already filled.
    paper = exchange()
    placed = stop(paper)
    paper.set_price(SYMBOL, D(59000))
    canceled = paper.cancel_order(placed.id, SYMBOL)
    assert (canceled.status, canceled.filled, canceled.triggered) == (OrderStatus.CLOSED, D("0.5"), True)
    assert paper.fetch_balances()["BTC"] == Balance(free=D("0.5"))


@pytest.mark.parametrize("stop_price", ["60000", "60000.01"], ids=["at-the-last-price", "above-it"])
def test_a_stop_that_would_trigger_immediately_is_refused_naming_both_prices(stop_price: str) -> None:
    paper = exchange()
    message = f"stop price {stop_price} is at or above the last price 60000 of BTC/USD: .*would trigger immediately"
    with pytest.raises(InvalidOrder, match=message):
        stop(paper, stop_price=stop_price)
    assert paper.orders() == []
    assert paper.fetch_balances()["BTC"] == Balance(free=D(1))


def test_a_stop_is_checked_as_a_sell_limit_is() -> None:
    paper = exchange()
    with pytest.raises(InvalidOrder, match=r"stop price 59000.001 is not a positive price on the tick grid 0.01"):
        stop(paper, stop_price="59000.001")
    with pytest.raises(InvalidOrder, match=r"limit price 58900.001 is not a positive price on the tick grid 0.01"):
        stop(paper, limit="58900.001")
    with pytest.raises(InvalidOrder, match="below the market minimum"):
        paper.create_stop_order(SYMBOL, D("0.00001"), D(59000), D(58900), "cb-tiny")
    stop(paper)
    with pytest.raises(InvalidOrder, match="duplicate client order id cb-stop"):
        stop(paper)
    with pytest.raises(InvalidOrder, match="duplicate client order id cb-stop"):
        paper.create_limit_order(SYMBOL, Side.SELL, D("0.1"), D(61000), "cb-stop")
    assert len(paper.orders()) == 1


def test_a_stop_is_found_by_client_id() -> None:
    paper = exchange()
    placed = stop(paper)
    assert paper.find_order_by_client_id("cb-stop", SYMBOL) == placed
    assert paper.find_order_by_client_id("cb-stop", "ETH/USD") is None


def test_a_venue_without_stops_refuses_before_anything_is_placed() -> None:
    paper = exchange()
    paper.supports_stop_orders = False
    with pytest.raises(UnsupportedExchange, match="paper takes no stop orders"):
        stop(paper)
    assert paper.orders() == []


def test_a_timeout_after_the_venue_accepted_leaves_the_stop_resting_for_the_lookup() -> None:
    paper = exchange()
    paper.faults.append(Fault("create_stop_order", RequestTimeout("timed out"), after_effect=True))
    with pytest.raises(RequestTimeout):
        stop(paper)
    found = paper.find_order_by_client_id("cb-stop", SYMBOL)
    assert found is not None
    assert (found.status, found.stop_price) == (OrderStatus.OPEN, D(59000))


def test_resting_and_triggered_stops_survive_the_state_round_trip() -> None:
    paper = exchange()
    untriggered = stop(paper)
    paper.balances["BTC"] += D(1)
    gapped = stop(paper, stop_price="59500", limit="59400", cid="cb-gapped")
    paper.set_price(SYMBOL, D("59300"))  # triggers the second stop only; its limit rests above the price
    restored = PaperExchange.from_state(json.loads(json.dumps(paper.to_state())))
    assert restored.to_state() == paper.to_state()
    assert restored.open_orders() == paper.open_orders()
    assert [(o.stop_price, o.triggered) for o in restored.open_orders()] == [(D(59000), False), (D(59500), True)]
    for account in (paper, restored):
        [filled] = account.set_price(SYMBOL, D(58990))  # the untriggered stop now triggers and takes
        assert (filled.id, filled.cost) == (untriggered.id, D(29495))
        [rest] = account.set_price(SYMBOL, D(59400))
        assert (rest.id, rest.status) == (gapped.id, OrderStatus.CLOSED)
    assert restored.to_state() == paper.to_state()


def test_a_state_written_before_stops_existed_still_loads() -> None:
    paper = exchange()
    paper.create_limit_order(SYMBOL, Side.SELL, D("0.5"), D(61000), "cb-limit")
    state = paper.to_state()
    for order in state["orders"]:
        del order["stop_price"], order["triggered"]
    [order] = PaperExchange.from_state(state).open_orders()
    assert (order.stop_price, order.triggered, order.price) == (None, False, D(61000))


def test_a_stop_orders_record_round_trips_and_an_ordinary_orders_record_keeps_its_shape() -> None:
    paper = exchange()
    placed = stop(paper)
    paper.set_price(SYMBOL, D(59000))
    filled = paper.fetch_order(placed.id, SYMBOL)
    assert order_from_dict(json.loads(json.dumps(order_to_dict(filled)))) == filled
    assert order_to_dict(filled)["stop_price"] == "59000"
    limit = paper.create_limit_order(SYMBOL, Side.SELL, D("0.1"), D(61000), "cb-limit")
    assert "stop_price" not in order_to_dict(limit)
    assert order_from_dict(order_to_dict(limit)) == limit
