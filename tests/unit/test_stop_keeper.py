"""The protective-stop keeper alone (crypto_bot.engine.stops.StopKeeper), on the paper exchange with faults.

The whole-cycle behaviour is in tests/unit/test_protective_stops.py; here each path of check, lift and protect
is driven on its own: fees booked in parts, read and placement failures, lookups after an unknown outcome,
the loops' later strategies, and the exact notes the cycle summary shows.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from crypto_bot.adapters.paper.exchange import Fault, PaperExchange
from crypto_bot.domain.config import StrategyConfig
from crypto_bot.domain.errors import ExchangeNetworkError, InvalidOrder, OrderNotFound, RequestTimeout
from crypto_bot.domain.ledger import Ledger
from crypto_bot.domain.markets import Market, Side
from crypto_bot.domain.orders import Fee, OrderStatus
from crypto_bot.engine.stops import LIMIT_BELOW_STOP, STOP_FILLED, StopKeeper, stop_client_id

AT = datetime(2026, 12, 1, 8, 1, tzinfo=UTC)
MARKET = Market("BTC/USDT", "BTC", "USDT", amount_step=D("0.00001"), price_step=D("0.01"), min_amount=D("0.0001"))
PLAIN = {"exchange_symbol": "BTC/USDT", "base_asset": "BTC", "percentage": "0.3"}
STOPPED = {**PLAIN, "protective_stop": {"percent": "0.05"}}
# AAAUSDT sorts before BTCUSDT: a loop that stopped at its first strategy would never reach the second.
CONFIG = StrategyConfig.from_mapping({"AAAUSDT": PLAIN, "BTCUSDT": STOPPED}, "USDT")


def keeper(exchange: PaperExchange) -> StopKeeper:
    return StopKeeper(exchange, CONFIG, lambda: {"BTC/USDT": MARKET}, lambda: AT, lambda read: read())


def account(fee: str = "0.001") -> tuple[PaperExchange, Ledger]:
    """0.1 BTC bought at 60,000 with its quote fee: the ledger's BTCUSDT position and the paper balance agree."""
    exchange = PaperExchange(
        balances={"USDT": D(1000), "BTC": D("0.1")},
        markets={"BTC/USDT": replace(MARKET, maker_fee=D(fee), taker_fee=D(fee))},
        prices={"BTC/USDT": D(60000)},
    )
    ledger = Ledger()
    ledger.apply_fill(CONFIG["BTCUSDT"], Side.BUY, order_id="entry", filled=D("0.1"), cost=D(6000),
                      fees=[Fee(D(6), "USDT")], at=AT)  # fmt: skip
    return exchange, ledger


def placed(exchange: PaperExchange, ledger: Ledger) -> dict[str, str]:
    return keeper(exchange).protect(ledger, "c1", {})


def test_a_stop_is_placed_at_the_configured_share_below_the_average_cost_fees_included() -> None:
    exchange, ledger = account()
    notes = placed(exchange, ledger)
    stop = ledger.position(CONFIG["BTCUSDT"]).stop
    assert stop is not None
    # (6000 + 6) / 0.1 = 60,060 a coin; 5% below: 57,057; the limit 1% below that, on the tick.
    assert (stop.amount, stop.stop_price, stop.limit_price) == (D("0.1"), D("57057.00"), D("56486.43"))
    assert stop.limit_price == MARKET.price_to_precision(stop.stop_price * (1 - LIMIT_BELOW_STOP))
    assert stop.client_order_id == stop_client_id("c1", "BTCUSDT", D("0.1"))
    assert len(stop.client_order_id) == 32
    assert stop.client_order_id.startswith("cb")
    assert stop.client_order_id.endswith("s00000")
    assert notes == {"BTCUSDT": "protective stop placed: sell 0.1 if the price falls to 57057"}
    assert ledger.position(CONFIG["BTCUSDT"]).stop_level == D("57057.00")


def test_an_alerts_stop_price_wins_for_a_new_stop_and_a_placed_one_is_left_alone() -> None:
    exchange, ledger = account()
    keeper(exchange).protect(ledger, "c1", {"BTCUSDT": D("55000")})
    stop = ledger.position(CONFIG["BTCUSDT"]).stop
    assert stop is not None
    assert stop.stop_price == D(55000)
    assert keeper(exchange).protect(ledger, "c2", {"BTCUSDT": D("50000")}) == {}
    assert len(exchange.orders()) == 1


def test_a_stop_filled_in_two_parts_books_each_part_and_its_fee_once() -> None:
    exchange, ledger = account()
    placed(exchange, ledger)
    exchange.partial_fill_ratio = D("0.5")
    exchange.set_price("BTC/USDT", D(56900))
    first = keeper(exchange).check(ledger)
    assert first == {"BTCUSDT": f"{STOP_FILLED}: sold 0.05 at 56900"}
    assert keeper(exchange).check(ledger) == {}  # read again: nothing new, nothing booked
    exchange.set_price("BTC/USDT", D(57000))  # the rest, resting at its limit (56,486.43), fills there
    second = keeper(exchange).check(ledger)
    assert second == {"BTCUSDT": f"{STOP_FILLED}: sold 0.1 at 56693.215"}
    position = ledger.position(CONFIG["BTCUSDT"])
    assert (position.amount, position.stop, position.stopped_at) == (0, None, AT)
    # Each part's quote fee (0.1%) once: the ledger's realized P&L is the account's.
    sold = [e for e in ledger.entries if e.order_id != "entry"]
    assert [e.fees for e in sold] == [(Fee(D("2.845"), "USDT"),), (Fee(D("2.8243215"), "USDT"),)]
    assert position.realized_pnl == D("0.05") * 56900 + D("0.05") * D("56486.43") - D("2.845") - D("2.8243215") - 6006


def test_a_partly_filled_stop_that_ends_leaves_the_rest_long_and_says_it_is_unprotected() -> None:
    exchange, ledger = account(fee="0")
    placed(exchange, ledger)
    exchange.partial_fill_ratio = D("0.5")
    exchange.set_price("BTC/USDT", D(56900))
    stop = ledger.position(CONFIG["BTCUSDT"]).stop
    assert stop is not None
    exchange.cancel_order(stop.order_id, "BTC/USDT")  # cancelled by hand on the venue, half filled
    notes = keeper(exchange).check(ledger)
    assert notes == {
        "BTCUSDT": f"{STOP_FILLED}: sold 0.05 at 56900; 0.05 left unprotected until the cycle places a new stop for it"
    }
    position = ledger.position(CONFIG["BTCUSDT"])
    assert (position.amount, position.stop, position.stopped_at) == (D("0.05"), None, None)
    # While the price is below the stop's level, no stop can rest there: the venue refuses it, and the note says
    # the rest is unprotected. Once the price is back above, the next protect places one for what is left.
    assert placed(exchange, ledger)["BTCUSDT"].startswith("protective stop not placed: the exchange refused it: ")
    exchange.set_price("BTC/USDT", D(57500))
    placed(exchange, ledger)
    again = ledger.position(CONFIG["BTCUSDT"]).stop
    assert again is not None
    assert (again.amount, again.stop_price) == (D("0.05"), D("57057.00"))


def test_what_a_filled_stop_could_not_sell_below_the_lot_is_dust_and_the_strategy_is_flat() -> None:
    exchange, ledger = account(fee="0")
    ledger.apply_fill(CONFIG["BTCUSDT"], Side.BUY, order_id="e2", filled=D("0.000004"), cost=D("0.24"), fees=(), at=AT)
    exchange.balances["BTC"] += D("0.000004")
    placed(exchange, ledger)  # 0.100004 rounds to 0.1 at the 0.00001 lot
    exchange.set_price("BTC/USDT", D(56900))
    keeper(exchange).check(ledger)
    position = ledger.position(CONFIG["BTCUSDT"])
    assert (position.amount, position.stopped_at) == (0, AT)
    assert ledger.dust == {"BTC": D("0.000004")}


def test_a_read_that_fails_is_noted_and_the_later_strategies_are_still_read() -> None:
    exchange, ledger = account()
    two = replace(CONFIG["BTCUSDT"], key="AAAUSDT")
    ledger.apply_fill(two, Side.BUY, order_id="e2", filled=D("0.1"), cost=D(6000), fees=(), at=AT)
    exchange.balances["BTC"] += D("0.1")
    config = StrategyConfig.from_mapping({"AAAUSDT": STOPPED, "BTCUSDT": STOPPED}, "USDT")
    kept = StopKeeper(exchange, config, lambda: {"BTC/USDT": MARKET}, lambda: AT, lambda read: read())
    kept.protect(ledger, "c1", {})
    exchange.set_price("BTC/USDT", D(56900))  # both stops fill
    exchange.faults.append(Fault("fetch_order", ExchangeNetworkError("connection reset")))
    notes = kept.check(ledger)
    assert notes["AAAUSDT"] == "protective stop not read: ExchangeNetworkError: connection reset"
    assert notes["BTCUSDT"].startswith(STOP_FILLED)
    assert ledger.position(config["AAAUSDT"]).stop is not None  # left as it was, for the next cycle


def test_lift_cancels_only_the_strategies_asked_and_reaches_past_one_without_a_stop() -> None:
    exchange, ledger = account()
    placed(exchange, ledger)
    notes = keeper(exchange).lift(ledger, ["AAAUSDT", "BTCUSDT", "NOTASTRATEGY"])
    assert notes == {"BTCUSDT": "protective stop cancelled before selling"}
    assert exchange.orders()[0].status is OrderStatus.CANCELED
    assert ledger.position(CONFIG["BTCUSDT"]).stop is None
    assert ledger.position(CONFIG["BTCUSDT"]).amount == D("0.1")


def test_lift_of_a_stop_the_venue_no_longer_knows_reads_it_and_books_its_fill() -> None:
    exchange, ledger = account(fee="0")
    placed(exchange, ledger)
    exchange.set_price("BTC/USDT", D(56900))
    exchange.faults.append(Fault("cancel_order", OrderNotFound("Unknown order sent.")))
    notes = keeper(exchange).lift(ledger, ["BTCUSDT"])
    assert notes == {"BTCUSDT": f"{STOP_FILLED}: sold 0.1 at 56900"}
    assert ledger.position(CONFIG["BTCUSDT"]).amount == 0


def test_a_stop_whose_placement_timed_out_after_the_venue_took_it_is_found_and_kept_once() -> None:
    exchange, ledger = account()
    exchange.faults.append(Fault("create_stop_order", RequestTimeout("timed out"), after_effect=True))
    notes = placed(exchange, ledger)
    assert notes["BTCUSDT"].startswith("protective stop placed")
    assert len(exchange.orders()) == 1
    stop = ledger.position(CONFIG["BTCUSDT"]).stop
    assert stop is not None
    assert stop.order_id == exchange.orders()[0].id


def test_a_placement_that_failed_before_the_venue_took_it_is_noted_for_the_next_cycle() -> None:
    exchange, ledger = account()
    exchange.faults.append(Fault("create_stop_order", ExchangeNetworkError("connection reset")))
    notes = placed(exchange, ledger)
    assert notes == {
        "BTCUSDT": "protective stop not placed: ExchangeNetworkError: connection reset; the next cycle tries again"
    }
    assert exchange.orders() == []
    assert ledger.position(CONFIG["BTCUSDT"]).stop is None


def test_a_refused_placement_is_noted_with_the_venues_reason() -> None:
    exchange, ledger = account()
    exchange.faults.append(Fault("create_stop_order", InvalidOrder("Order would trigger immediately.")))
    assert placed(exchange, ledger) == {
        "BTCUSDT": "protective stop not placed: the exchange refused it: InvalidOrder: Order would trigger immediately."
    }


def test_a_stop_too_small_for_the_market_is_not_sent() -> None:
    exchange, ledger = account()
    small = replace(ledger.position(CONFIG["BTCUSDT"]), amount=D("0.00005"), cost_basis=D(3))
    ledger.positions["BTCUSDT"] = small
    notes = placed(exchange, ledger)
    assert notes == {"BTCUSDT": "protective stop not placed: amount 0.00005 is below the market minimum 0.0001 BTC"}
    assert exchange.orders() == []


def test_a_stop_whose_position_changed_otherwise_is_replaced_for_the_new_amount_at_its_price() -> None:
    exchange, ledger = account(fee="0")
    placed(exchange, ledger)
    old = ledger.position(CONFIG["BTCUSDT"]).stop
    assert old is not None
    grown = replace(ledger.position(CONFIG["BTCUSDT"]), amount=D("0.15"))
    ledger.positions["BTCUSDT"] = grown
    exchange.balances["BTC"] += D("0.05")
    notes = keeper(exchange).protect(ledger, "c2", {})
    new = ledger.position(CONFIG["BTCUSDT"]).stop
    assert new is not None
    assert (new.amount, new.stop_price) == (D("0.15"), D("57057.00"))
    assert exchange.fetch_order(old.order_id, "BTC/USDT").status is OrderStatus.CANCELED
    assert notes == {"BTCUSDT": "protective stop placed: sell 0.15 if the price falls to 57057"}


def test_a_venue_without_stop_orders_is_told_and_sent_nothing() -> None:
    exchange, ledger = account()
    exchange.supports_stop_orders = False
    assert placed(exchange, ledger) == {"BTCUSDT": "protective stop not placed: paper has no stop orders here"}
    assert exchange.orders() == []


@pytest.mark.parametrize("percent", [None])
def test_a_strategy_without_a_stop_gets_none(percent: None) -> None:
    exchange, ledger = account()
    config = StrategyConfig.from_mapping({"BTCUSDT": PLAIN}, "USDT")
    kept = StopKeeper(exchange, config, lambda: {"BTC/USDT": MARKET}, lambda: AT, lambda read: read())
    assert not kept.wanted()
    assert kept.protect(ledger, "c1", {}) == {}
    assert keeper(exchange).wanted()


def test_a_stop_cancelled_on_the_venue_without_a_fill_is_dropped_and_the_gap_told() -> None:
    exchange, ledger = account()
    placed(exchange, ledger)
    stop = ledger.position(CONFIG["BTCUSDT"]).stop
    assert stop is not None
    exchange.cancel_order(stop.order_id, "BTC/USDT")  # by hand, on the venue
    assert keeper(exchange).check(ledger) == {
        "BTCUSDT": "protective stop canceled on the exchange; 0.1 left unprotected until the cycle places a new stop "
        "for it"
    }
    position = ledger.position(CONFIG["BTCUSDT"])
    assert (position.amount, position.stop, position.stopped_at) == (D("0.1"), None, None)


def test_a_stop_is_placed_from_an_average_cost_that_is_not_a_whole_number() -> None:
    exchange, ledger = account(fee="0")
    ledger.positions["BTCUSDT"] = replace(ledger.position(CONFIG["BTCUSDT"]), cost_basis=D("6000.05"))
    placed(exchange, ledger)
    stop = ledger.position(CONFIG["BTCUSDT"]).stop
    assert stop is not None
    assert stop.stop_price == D("57000.48")  # 60,000.5 a coin, 5% below: 57,000.475, to the tick


def test_a_stop_larger_than_the_position_is_replaced_by_one_for_what_is_held() -> None:
    exchange, ledger = account(fee="0")
    placed(exchange, ledger)
    ledger.positions["BTCUSDT"] = replace(ledger.position(CONFIG["BTCUSDT"]), amount=D("0.06"))
    keeper(exchange).protect(ledger, "c2", {})
    stop = ledger.position(CONFIG["BTCUSDT"]).stop
    assert stop is not None
    assert stop.amount == D("0.06")


def test_protect_reaches_the_later_strategies_past_each_one_it_leaves_alone() -> None:
    # AAAUSDT sorts first: long without a stop asked for, then long with its stop already in place; BTCUSDT,
    # after it, still gets its stop.
    exchange, ledger = account()
    config = StrategyConfig.from_mapping({"AAAUSDT": PLAIN, "BTCUSDT": STOPPED}, "USDT")
    aaa = replace(config["BTCUSDT"], key="AAAUSDT", protective_stop=None)
    ledger.apply_fill(aaa, Side.BUY, order_id="e2", filled=D("0.01"), cost=D(600), fees=(), at=AT)
    exchange.balances["BTC"] += D("0.01")
    assert set(placed(exchange, ledger)) == {"BTCUSDT"}
    assert ledger.position(CONFIG["AAAUSDT"]).stop is None
    both = StrategyConfig.from_mapping({"AAAUSDT": STOPPED, "BTCUSDT": STOPPED}, "USDT")
    kept = StopKeeper(exchange, both, lambda: {"BTC/USDT": MARKET}, lambda: AT, lambda read: read())
    kept.protect(ledger, "c2", {})  # AAAUSDT gets one; BTCUSDT's is in place and left alone
    ledger.positions["BTCUSDT"] = replace(ledger.position(both["BTCUSDT"]), stop=None)
    assert set(kept.protect(ledger, "c3", {})) == {"BTCUSDT"}


def test_a_stops_fees_are_matched_by_currency_value_not_identity() -> None:
    # Fee currencies parsed from a venue's JSON are equal strings, not the same objects as the booked ones.
    exchange, ledger = account()
    placed(exchange, ledger)
    exchange.partial_fill_ratio = D("0.5")
    exchange.set_price("BTC/USDT", D(56900))
    keeper(exchange).check(ledger)
    stop = ledger.position(CONFIG["BTCUSDT"]).stop
    assert stop is not None
    usdt = "".join(["US", "DT"])
    ledger.positions["BTCUSDT"] = replace(
        ledger.position(CONFIG["BTCUSDT"]), stop=replace(stop, fees=tuple(Fee(f.cost, usdt) for f in stop.fees))
    )
    exchange.set_price("BTC/USDT", D(57000))
    keeper(exchange).check(ledger)
    sold = [e for e in ledger.entries if e.order_id != "entry"]
    assert [e.fees for e in sold] == [(Fee(D("2.845"), "USDT"),), (Fee(D("2.8243215"), "USDT"),)]
