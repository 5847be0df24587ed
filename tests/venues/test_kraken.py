"""Kraken, the USD venue: the bot as production runs it against the emulator of tests/venues/kraken.py.

The real ccxt ``kraken`` class signs, sends and parses every request; the emulator answers
as Kraken documents. Money values are exact: the venue books each fill at four decimals
(ZUSD's record-keeping precision), so every expected figure below is worked out in its
comment from the fill price, the volume and Kraken's starter-tier fees (taker 0.26 %,
maker 0.16 %).
"""

from __future__ import annotations

import http.client
import json
from decimal import Decimal as D
from urllib.parse import urlsplit

import pytest

from crypto_bot.adapters.ccxt.exchange import CcxtExchange
from crypto_bot.domain.allocation import SignalStatus
from crypto_bot.domain.config import StrategyConfig
from crypto_bot.domain.errors import (
    AuthenticationFailed,
    BadSymbol,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    PermanentExchangeError,
    RateLimited,
    TransientExchangeError,
)
from crypto_bot.domain.ledger import Position
from crypto_bot.domain.markets import Side
from crypto_bot.domain.orders import Fee, OrderStatus
from crypto_bot.engine.records import IntentStatus
from tests.venues.conftest import Bot, Clock, alert
from tests.venues.http import Fault, Response, VenueServer
from tests.venues.invariants import check_after_scenario
from tests.venues.kraken import (
    ADD_ORDER,
    API_RATE_LIMITED,
    CLOSED_ORDERS,
    INTERNAL_ERROR,
    OPEN_ORDERS,
    ORDER_RATE_LIMITED,
    QUERY_ORDERS,
    SERVICE_BUSY,
    SERVICE_UNAVAILABLE,
    TICKER,
    KrakenVenue,
    Order,
    connect,
    error,
    gateway_error,
)

CONFIG = StrategyConfig.from_mapping(
    {"BTCUSD": {"exchange_symbol": "BTC/USD", "base_asset": "BTC", "percentage": "0.5"}}, "USD"
)
SYMBOL = "BTC/USD"
# A client id Kraken accepts (a short UUID: 32 hex digits), for the adapter tests that are about something else.
CLIENT_ID = "cb0123456789abcdef0123456789a000"


@pytest.fixture
def bot(kraken: CcxtExchange, clock: Clock) -> Bot:
    return Bot(kraken, CONFIG, clock)


def settle(bot: Bot, venue: KrakenVenue) -> None:
    check_after_scenario(bot.store, venue, CONFIG)


def position(bot: Bot) -> Position:
    return bot.store.load_ledger().position(CONFIG["BTCUSD"])


def cycle_orders(venue: KrakenVenue, bot: Bot) -> list[Order]:
    """The venue's orders of the last cycle's intents, in the order they were accepted."""
    ids = {r.intent.client_order_id(n) for r in bot.cycles[-1].results for n in range(r.attempt + 1)}
    return [o for o in venue.orders.values() if o.cl_ord_id in ids]


# --------------------------------------------------------------------------- the venue as documented


def test_private_calls_are_refused_without_the_documented_signature(
    kraken_server: VenueServer, kraken_venue: KrakenVenue, clock: Clock
) -> None:
    other_secret = "c2VjcmV0" * 11  # valid base64, not the account's secret  # pragma: allowlist secret
    exchange = connect(kraken_server, kraken_venue, sleep=clock.sleep, secret=other_secret)
    with pytest.raises(ExchangeError):
        exchange.fetch_balances()
    assert "EAPI:Invalid signature" in exchange.client.last_http_response
    assert kraken_server.log[-1] == ("POST /0/private/BalanceEx", 200)  # Kraken errors come with HTTP 200


def test_an_unknown_key_is_an_authentication_failure(
    kraken_server: VenueServer, kraken_venue: KrakenVenue, clock: Clock
) -> None:
    exchange = connect(kraken_server, kraken_venue, sleep=clock.sleep, api_key="someone-else")
    with pytest.raises(AuthenticationFailed):
        exchange.fetch_balances()
    assert "EAPI:Invalid key" in exchange.client.last_http_response


def test_a_nonce_that_does_not_increase_is_refused(kraken: CcxtExchange, kraken_server: VenueServer) -> None:
    client = kraken.client
    signed = client.sign("Balance", ["private"], "POST", {})

    def send() -> dict[str, object]:
        url = urlsplit(signed["url"])
        connection = http.client.HTTPConnection(url.netloc, timeout=5)
        try:
            connection.request("POST", url.path, body=signed["body"], headers=signed["headers"])
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()

    first = send()
    assert first["error"] == []
    assert send() == {"error": ["EAPI:Invalid nonce"]}  # the very same signed request, replayed


def test_markets_carry_krakens_pair_rules(kraken: CcxtExchange) -> None:
    market = kraken.load_markets([SYMBOL])[SYMBOL]
    # XXBTZUSD: lot_decimals 8, pair_decimals 1, ordermin 0.0001 XBT, costmin 0.5 USD, fees 0.26 / 0.16 %.
    assert (market.base, market.quote) == ("BTC", "USD")
    assert (market.amount_step, market.price_step) == (D("1E-8"), D("0.1"))
    assert (market.min_amount, market.min_cost) == (D("0.0001"), D("0.5"))
    assert (market.taker_fee, market.maker_fee) == (D("0.0026"), D("0.0016"))


def test_balances_report_what_open_orders_hold(kraken: CcxtExchange, kraken_venue: KrakenVenue) -> None:
    kraken_venue.balances["XXBT"] = D("0.5")
    resting = kraken.create_limit_order(SYMBOL, Side.BUY, D("0.01"), D("50000.0"), CLIENT_ID)
    # A buy holds its cost at its limit plus the taker fee: 0.01 x 50000 x 1.0026 = 501.3 USD.
    balances = kraken.fetch_balances()
    assert (balances["USD"].free, balances["USD"].used) == (D("9498.7"), D("501.3"))
    assert (balances["BTC"].free, balances["BTC"].used) == (D("0.5"), D("0"))
    assert kraken.fetch_order(resting.id, SYMBOL).status is OrderStatus.OPEN


def test_an_order_is_found_by_client_id_behind_fifty_newer_closed_orders(
    kraken: CcxtExchange, kraken_venue: KrakenVenue
) -> None:
    placed = kraken.create_limit_order(SYMBOL, Side.BUY, D("0.001"), D("60060.0"), CLIENT_ID)
    # Other activity on the account (a person, another bot): ClosedOrders answers 50 at a time, newest first.
    for n in range(50):
        kraken.create_limit_order(SYMBOL, Side.BUY, D("0.0001"), D("60060.0"), f"manual-{n}")
    found = kraken.find_order_by_client_id(CLIENT_ID, SYMBOL)
    assert found is not None
    assert (found.id, found.status, found.filled) == (placed.id, OrderStatus.CLOSED, D("0.001"))


def test_the_bots_client_order_ids_are_in_a_format_kraken_accepts(bot: Bot, kraken_venue: KrakenVenue) -> None:
    # Kraken takes a cl_ord_id that is a UUID (36 chars with dashes, or 32 hex digits) or free text of at
    # most 18 characters (krakenfx/api-specs spot-rest AddOrder). The bot's ids are its own; whatever their
    # shape, the venue must accept the first attempt of an ordinary entry.
    report = bot.cycle([alert("BTCUSD", "buy", "60000", at=bot.clock())])
    (entry,) = report.results
    assert entry.status is IntentStatus.FILLED, entry.reason
    assert [o.cl_ord_id for o in kraken_venue.orders.values()] == [entry.intent.client_order_id(0)]


def test_trades_report_each_fill_with_its_fee_in_the_quote(kraken: CcxtExchange, kraken_venue: KrakenVenue) -> None:
    kraken_venue.partial_fills(D("0.5"))
    placed = kraken.create_limit_order(SYMBOL, Side.BUY, D("0.002"), D("60060.0"), CLIENT_ID)
    kraken_venue.set_price("XBTUSD", D("60060.0"))  # the resting half fills at its limit, as maker
    # Taker half: 0.001 x 60000 = 60, fee 0.156; maker half: 0.001 x 60060 = 60.06, fee 0.0960960 -> 0.0961.
    expected = [(placed.id, "maker", D("60.06"), D("0.0961"), "USD"), (placed.id, "taker", D("60"), D("0.156"), "USD")]
    trade_ids = kraken_venue.orders[placed.id].trade_ids
    history = kraken.client.fetch_my_trades(SYMBOL)  # TradesHistory
    by_order = kraken.client.fetch_order_trades(placed.id, SYMBOL, None, None, {"trades": trade_ids})  # QueryTrades
    for trades in (history, by_order):
        seen = [
            (t["order"], t["takerOrMaker"], D(str(t["cost"])), D(str(t["fee"]["cost"])), t["fee"]["currency"])
            for t in trades
        ]
        assert sorted(seen) == expected
    order = kraken.fetch_order(placed.id, SYMBOL)
    assert (order.status, order.filled, order.fee_in("USD")) == (OrderStatus.CLOSED, D("0.002"), D("0.2521"))


def test_cancelling_a_filled_order_reads_its_final_state(kraken: CcxtExchange) -> None:
    filled = kraken.create_limit_order(SYMBOL, Side.BUY, D("0.001"), D("60060.0"), CLIENT_ID)
    # CancelOrder answers EOrder:Unknown order for an order that is no longer open; the adapter reads it.
    after = kraken.cancel_order(filled.id, SYMBOL)
    assert (after.status, after.filled, after.cost) == (OrderStatus.CLOSED, D("0.001"), D("60"))


# --------------------------------------------------------------------------- documented errors, by class


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # Refusals: the venue answered and did not act.
        ("EOrder:Insufficient funds", InsufficientFunds),
        ("EOrder:Order minimum not met", InvalidOrder),
        ("EOrder:Cost minimum not met", InvalidOrder),
        ("EGeneral:Invalid arguments", InvalidOrder),
        ("EGeneral:Invalid arguments:price", InvalidOrder),
        ("EGeneral:Invalid arguments:volume", InvalidOrder),
        ("EQuery:Unknown asset pair", BadSymbol),
        ("EAPI:Invalid key", AuthenticationFailed),
        ("EAPI:Invalid signature", AuthenticationFailed),
        ("EGeneral:Permission denied", AuthenticationFailed),
    ],
)
def test_a_documented_refusal_of_an_order_is_permanent(
    kraken: CcxtExchange, kraken_server: VenueServer, message: str, expected: type[PermanentExchangeError]
) -> None:
    kraken.load_markets([SYMBOL])
    kraken_server.arm(Fault(ADD_ORDER, "before", response=error(message)))
    with pytest.raises(expected) as raised:
        kraken.create_limit_order(SYMBOL, Side.BUY, D("0.001"), D("60060.0"), CLIENT_ID)
    assert not raised.value.transient
    assert kraken_server.calls(ADD_ORDER) == 1


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (API_RATE_LIMITED, RateLimited),
        (ORDER_RATE_LIMITED, RateLimited),
        (error("EGeneral:Temporary lockout"), RateLimited),
        (error("EAPI:Invalid nonce"), TransientExchangeError),
        (SERVICE_UNAVAILABLE, TransientExchangeError),
        (SERVICE_BUSY, TransientExchangeError),
        (INTERNAL_ERROR, TransientExchangeError),
        (gateway_error(502), TransientExchangeError),
        (gateway_error(500), TransientExchangeError),
        (gateway_error(520), TransientExchangeError),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
def test_a_placement_that_may_succeed_later_is_transient_and_sent_once(
    kraken: CcxtExchange, kraken_server: VenueServer, response: Response, expected: type[ExchangeError]
) -> None:
    kraken.load_markets([SYMBOL])
    kraken_server.arm(Fault(ADD_ORDER, "before", response=response))
    with pytest.raises(expected) as raised:
        kraken.create_limit_order(SYMBOL, Side.BUY, D("0.001"), D("60060.0"), CLIENT_ID)
    assert raised.value.transient
    assert kraken_server.calls(ADD_ORDER) == 1  # the adapter never re-sends an order itself


def test_a_rate_limited_read_is_retried_by_the_adapter(
    kraken: CcxtExchange, kraken_server: VenueServer, clock: Clock
) -> None:
    placed = kraken.create_limit_order(SYMBOL, Side.BUY, D("0.001"), D("60060.0"), CLIENT_ID)
    kraken_server.arm(Fault(QUERY_ORDERS, "before", response=API_RATE_LIMITED, times=2))
    assert kraken.fetch_order(placed.id, SYMBOL).status is OrderStatus.CLOSED
    assert kraken_server.calls(QUERY_ORDERS) == 3
    assert clock.sleeps == [0.5, 1.0]  # the adapter's backoff, on the test's clock


def test_an_unknown_pair_is_a_bad_symbol(kraken: CcxtExchange, kraken_server: VenueServer) -> None:
    kraken.load_markets([SYMBOL])
    kraken_server.arm(Fault(TICKER, "before", response=error("EQuery:Unknown asset pair")))
    with pytest.raises(BadSymbol):
        kraken.fetch_last_price(SYMBOL)


# --------------------------------------------------------------------------- scenarios


def test_buy_exit_buy_books_krakens_quote_fees_and_buys_again(bot: Bot, kraken_venue: KrakenVenue) -> None:
    # 1. Buy at 60000: half of 10000 USD, limit 60060.0, sized for the taker fee:
    #    5000 / (60060 x 1.0026) = 0.08303419 BTC; filled at the last price 60000 as taker:
    #    cost 4982.0514, fee 4982.0514 x 0.26 % = 12.95333364 -> 12.9533 USD.
    report = bot.cycle([alert("BTCUSD", "buy", "60000", at=bot.clock())])
    (buy,) = report.results
    assert (buy.status, buy.filled, buy.cost, buy.fees) == (
        IntentStatus.FILLED,
        D("0.08303419"),
        D("4982.0514"),
        [Fee(D("12.9533"), "USD")],
    )
    assert (position(bot).amount, position(bot).cost_basis) == (D("0.08303419"), D("4995.0047"))
    assert kraken_venue.total_balances() == {"BTC": D("0.08303419"), "USD": D("5004.9953")}
    settle(bot, kraken_venue)

    # 2. Exit at 61000: the whole 0.08303419 BTC, filled at 61000 as taker: cost 5065.08559 -> 5065.0856,
    #    fee 13.16922256 -> 13.1692; proceeds 5051.9164 less the cost basis 4995.0047 = 56.9117 realized.
    kraken_venue.set_price("XBTUSD", D(61000))
    report = bot.cycle([alert("BTCUSD", "sell", "61000", at=bot.clock())])
    (sell,) = report.results
    assert (sell.status, sell.filled, sell.cost, sell.fees) == (
        IntentStatus.FILLED,
        D("0.08303419"),
        D("5065.0856"),
        [Fee(D("13.1692"), "USD")],
    )
    assert (position(bot).amount, position(bot).realized_pnl) == (D(0), D("56.9117"))
    assert kraken_venue.total_balances() == {"BTC": D(0), "USD": D("10056.9117")}
    settle(bot, kraken_venue)

    # 3. Buy again at 59000: the strategy is flat, so the buy trades (it is not "ignored: already long").
    #    Half of 10056.9117 = 5028.45585 / (59059 x 1.0026) = 0.08492212 BTC at 59000: cost 5010.40508 ->
    #    5010.4051, fee 13.02705326 -> 13.0271.
    kraken_venue.set_price("XBTUSD", D(59000))
    report = bot.cycle([alert("BTCUSD", "buy", "59000", at=bot.clock())])
    (again,) = report.results
    assert [(s.status, s.reason) for s in report.outcomes] == [
        (SignalStatus.FILLED, "buy 0.08492212 of 0.08492212 BTC/USD filled")
    ]
    assert (again.filled, again.cost, again.fees) == (D("0.08492212"), D("5010.4051"), [Fee(D("13.0271"), "USD")])
    assert (position(bot).amount, position(bot).cost_basis) == (D("0.08492212"), D("5023.4322"))
    assert kraken_venue.total_balances() == {"BTC": D("0.08492212"), "USD": D("5033.4795")}
    settle(bot, kraken_venue)


def test_a_partial_fill_is_booked_then_the_rest_is_chased(bot: Bot, kraken_venue: KrakenVenue) -> None:
    kraken_venue.partial_fills(D("0.4"))
    report = bot.cycle([alert("BTCUSD", "buy", "60000", at=bot.clock())])
    (entry,) = report.results
    first, chase = cycle_orders(kraken_venue, bot)
    # Attempt 1 fills 40 % of 0.08303419 = 0.03321367 BTC at 60000 (cost 1992.8202, fee 5.18133252 -> 5.1813)
    # and rests; it is cancelled and the remaining 0.04982052 BTC is re-placed at 60000 x 1.002 = 60120.0,
    # which fills at 60000: cost 2989.2312, fee 7.77200112 -> 7.7720.
    assert (first.status, first.vol_exec, first.cost, first.fee) == (
        "canceled",
        D("0.03321367"),
        D("1992.8202"),
        D("5.1813"),
    )
    assert (chase.limit, chase.vol, chase.status, chase.cost, chase.fee) == (
        D("60120.0"),
        D("0.04982052"),
        "closed",
        D("2989.2312"),
        D("7.7720"),
    )
    assert (entry.status, entry.attempt, entry.filled, entry.cost) == (
        IntentStatus.FILLED,
        1,
        D("0.08303419"),
        D("4982.0514"),
    )
    assert sorted(entry.fees, key=lambda f: f.cost) == [Fee(D("5.1813"), "USD"), Fee(D("7.7720"), "USD")]
    assert position(bot).cost_basis == D("4995.0047")  # 4982.0514 + 5.1813 + 7.7720
    settle(bot, kraken_venue)


def test_a_timeout_after_kraken_accepted_is_found_by_client_id_and_placed_once(
    bot: Bot, kraken_venue: KrakenVenue, kraken_server: VenueServer
) -> None:
    # Kraken takes the order, then the answer never comes (ccxt gives up after 1.5 s).
    kraken_server.arm(Fault(ADD_ORDER, "drop_after", delay=2.0))
    report = bot.cycle([alert("BTCUSD", "buy", "60000", at=bot.clock())])
    (entry,) = report.results
    assert kraken_server.calls(ADD_ORDER) == 1
    assert kraken_server.calls(CLOSED_ORDERS) >= 1  # looked up before anything was sent again
    assert (entry.status, entry.filled, entry.fees) == (
        IntentStatus.FILLED,
        D("0.08303419"),
        [Fee(D("12.9533"), "USD")],
    )
    assert len(kraken_venue.orders) == 1
    settle(bot, kraken_venue)


@pytest.mark.parametrize(
    "answer",
    [gateway_error(502), gateway_error(500), INTERNAL_ERROR, SERVICE_UNAVAILABLE, SERVICE_BUSY],
    ids=["http-502", "http-500", "internal-error", "service-unavailable", "service-busy"],
)
def test_an_unknown_outcome_after_accept_is_looked_up_booked_and_not_resent(
    bot: Bot, kraken_venue: KrakenVenue, kraken_server: VenueServer, answer: Response
) -> None:
    kraken_server.arm(Fault(ADD_ORDER, "after", response=answer))
    report = bot.cycle([alert("BTCUSD", "buy", "60000", at=bot.clock())])
    (entry,) = report.results
    assert kraken_server.calls(ADD_ORDER) == 1
    assert kraken_server.calls(OPEN_ORDERS) + kraken_server.calls(CLOSED_ORDERS) >= 1
    assert (entry.status, entry.filled, entry.cost, entry.fees) == (
        IntentStatus.FILLED,
        D("0.08303419"),
        D("4982.0514"),
        [Fee(D("12.9533"), "USD")],
    )
    settle(bot, kraken_venue)


@pytest.mark.parametrize("refusal", [ORDER_RATE_LIMITED, API_RATE_LIMITED], ids=["order-counter", "api-counter"])
def test_a_rate_limited_placement_is_retried_and_one_order_placed(
    bot: Bot, kraken_venue: KrakenVenue, kraken_server: VenueServer, refusal: Response
) -> None:
    kraken_server.arm(Fault(ADD_ORDER, "before", response=refusal))
    report = bot.cycle([alert("BTCUSD", "buy", "60000", at=bot.clock())])
    (entry,) = report.results
    assert kraken_server.calls(ADD_ORDER) == 2  # refused once (Kraken did nothing), then accepted
    assert len(kraken_venue.orders) == 1
    assert (entry.status, entry.filled) == (IntentStatus.FILLED, D("0.08303419"))
    assert 0.5 in bot.clock.sleeps  # Step Functions' retry interval, waited on the test's clock
    settle(bot, kraken_venue)


@pytest.mark.parametrize(
    ("usd", "price", "reason"),
    [
        # 5 USD buys 5 / (60060 x 1.0026) = 0.00008303 BTC, under ordermin 0.0001.
        ("10", "60000", "entry not sent: amount 0.00008303 is below the market minimum 0.0001 BTC"),
        # 0.5 USD at 4000 buys 0.5 / (4004 x 1.0026) = 0.00012455 BTC (over ordermin) costing
        # 0.00012455 x 4004 = 0.4986982 USD, under costmin 0.5.
        ("1", "4000", "entry not sent: cost 0.4986982 USD is below the market minimum 0.5 USD"),
    ],
    ids=["ordermin", "costmin"],
)
def test_an_entry_below_krakens_minimums_is_skipped_with_the_reason(
    bot: Bot, kraken_venue: KrakenVenue, kraken_server: VenueServer, usd: str, price: str, reason: str
) -> None:
    kraken_venue.balances["ZUSD"] = D(usd)
    kraken_venue.set_price("XBTUSD", D(price))
    report = bot.cycle([alert("BTCUSD", "buy", price, at=bot.clock())])
    (entry,) = report.results
    assert (entry.status, entry.reason) == (IntentStatus.SKIPPED, reason)
    assert [(s.status, s.reason) for s in report.outcomes] == [(SignalStatus.IGNORED, reason)]
    assert kraken_server.calls(ADD_ORDER) == 0
    settle(bot, kraken_venue)


def test_a_stop_loss_whose_limit_sells_rest_falls_back_to_a_market_order(bot: Bot, kraken_venue: KrakenVenue) -> None:
    bot.cycle([alert("BTCUSD", "buy", "60000", at=bot.clock())])
    # The price gaps down and the book empties: limit sells find no buyer and rest until cancelled.
    kraken_venue.set_price("XBTUSD", D(57000))
    kraken_venue.thin_book = True
    stop = alert("BTCUSD", "sell", "57000", at=bot.clock(), comment="Stop loss")
    report = bot.cycle([stop], urgent=True)
    (exit_,) = report.results
    limits, market = cycle_orders(kraken_venue, bot)[:3], cycle_orders(kraken_venue, bot)[3]
    # Limits at 57000 x (1 - 0.001 n) for n = 1, 2, 3, each cancelled unfilled; then a market sell of the
    # whole 0.08303419 BTC at 57000: cost 4732.94883 -> 4732.9488, fee 12.30566688 -> 12.3057.
    assert [(o.limit, o.status, o.vol_exec) for o in limits] == [
        (D("56943.0"), "canceled", D(0)),
        (D("56886.0"), "canceled", D(0)),
        (D("56829.0"), "canceled", D(0)),
    ]
    assert (market.ordertype, market.status, market.vol_exec, market.cost, market.fee) == (
        "market",
        "closed",
        D("0.08303419"),
        D("4732.9488"),
        D("12.3057"),
    )
    assert (exit_.status, exit_.reason) == (
        IntentStatus.FILLED,
        "fell back to a market order after 3 limit attempts",
    )
    assert exit_.fees == [Fee(D("12.3057"), "USD")]
    # Proceeds 4732.9488 - 12.3057 = 4720.6431 against the cost basis 4995.0047: a loss of 274.3616.
    assert (position(bot).amount, position(bot).realized_pnl) == (D(0), D("-274.3616"))
    settle(bot, kraken_venue)
