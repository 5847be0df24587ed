"""The ccxt adapter against the real ccxt exchange classes, offline.

Each venue's HTTP layer (ccxt's ``fetch``) is replaced by :class:`FakeVenue`, which
answers with recorded-shaped venue JSON from ``tests/fixtures/ccxt/`` and runs ccxt's
own ``handle_errors`` on it, so ccxt's real request building, signing, parsing and
error mapping all run. Sockets are disabled, so a request that escapes the fake fails.
"""

from __future__ import annotations

import decimal
import functools
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

# urllib3 (under ccxt's requests) opens a socket to probe IPv6 support when first
# imported; import it at collection so the probe does not trip pytest-socket in a test.
import urllib3  # noqa: F401
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crypto_bot.adapters.ccxt import exchange as ccxt_exchange
from crypto_bot.adapters.ccxt.exchange import (
    DECIMAL_PLACES,
    DEFAULT_RETRY,
    SIGNIFICANT_DIGITS,
    TICK_SIZE,
    CcxtExchange,
    SentOrder,
    load_exchange_class,
    market_from_ccxt,
    order_from_ccxt,
    translate_error,
)
from crypto_bot.domain.errors import (
    AuthenticationFailed,
    BadSymbol,
    ExchangeError,
    ExchangeNetworkError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    OutcomeUnknown,
    PermanentExchangeError,
    RateLimited,
    RequestTimeout,
    UnsupportedExchange,
)
from crypto_bot.domain.markets import Market, Side
from crypto_bot.domain.orders import Balance, ExchangeOrder, Fee, OrderStatus
from crypto_bot.engine.ports import Exchange
from crypto_bot.engine.retry import NO_RETRY, RetryPolicy

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ccxt"

# Gemini refuses keys without "account" (ccxt checks it before signing).
API_KEY = "account-TESTKEY-7f3a9c"
SECRET = "TESTSECRET-9b2e4d"
PASSWORD = "TESTPASS-c81d"
CID = "cb0123456789abcdef01234567a0"


def ccxt_errors() -> Any:
    # Through the adapter, so the bare-package import is what the tests exercise too.
    load_exchange_class("binance")
    return sys.modules["ccxt.base.errors"]


@functools.cache
def venue_data(venue: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{venue}.json").read_text(encoding="utf-8"))
    return data


# --------------------------------------------------------------------------- the fake HTTP layer


@dataclass(frozen=True)
class HttpReply:
    """A non-2xx (or error-carrying) venue answer: ccxt's own error handling turns it into an exception."""

    status: int
    body: Any


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    body: str | None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.url).query).items()}

    def form(self) -> dict[str, str]:
        """Return the body's fields, whether the venue sends a form or JSON."""
        assert self.body is not None
        if self.body.startswith("{"):
            return {k: v for k, v in json.loads(self.body).items()}
        return {k: v[-1] for k, v in parse_qs(self.body).items()}


Reply = Any  # JSON value, HttpReply, or a ccxt exception instance to raise


@dataclass
class FakeVenue:
    """Stand-in for ccxt's ``fetch(url, method, headers, body)`` on one exchange instance."""

    client: Any
    routes: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    sent: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client.fetch = self

    def on(self, method: str, path: str, *replies: Reply) -> None:
        """Answer ``method path`` with the replies in turn; the last one repeats."""
        self.routes[(method, path)] = list(replies)

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.sent if r.method == method and r.path == path)

    def last(self, method: str, path: str) -> Request:
        return [r for r in self.sent if r.method == method and r.path == path][-1]

    def __call__(self, url: str, method: str = "GET", headers: Any = None, body: str | None = None) -> Any:
        request = Request(method, url, body)
        self.sent.append(request)
        replies = self.routes.get((method, request.path))
        if replies is None:
            raise AssertionError(f"unexpected request {method} {url}")
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if isinstance(reply, BaseException):
            raise reply
        status, payload = (reply.status, reply.body) if isinstance(reply, HttpReply) else (200, reply)
        text = payload if isinstance(payload, str) else json.dumps(payload)
        parsed = None if isinstance(payload, str) else payload
        # What ccxt's real fetch does with an answer: the venue's error mapping first,
        # then the generic HTTP status mapping.
        self.client.handle_errors(status, "reason", url, method, {}, text, parsed, headers, body)
        if status >= 400:
            self.client.handle_http_status_code(status, "reason", url, method, text)
            raise AssertionError(f"ccxt did not raise for HTTP {status}")
        return payload


@dataclass
class Venue:
    exchange: CcxtExchange
    http: FakeVenue
    sleeps: list[float]

    @property
    def data(self) -> dict[str, Any]:
        return venue_data(self.exchange.name)


def _market_routes(name: str, http: FakeVenue) -> None:
    data = venue_data(name)
    if name == "binance":
        http.on("GET", "/api/v3/exchangeInfo", data["exchange_info"])
        http.on("GET", "/sapi/v1/capital/config/getall", [])  # currencies: not needed by the bot
        http.on("GET", "/sapi/v1/margin/allPairs", [])
        http.on("GET", "/sapi/v1/margin/isolated/allPairs", [])
    elif name == "bybit":
        http.on("GET", "/v5/market/instruments-info", data["instruments_info"])
        http.on("GET", "/v5/asset/coin/query-info", data["coin_query_info"])
        # ccxt asks once whether the account is a unified trading account
        http.on("GET", "/v5/user/query-api", data["query_api"])
        http.on("GET", "/v5/account/info", data["account_info"])
    elif name == "gemini":
        http.on("GET", "/", data["web_page"])
        http.on("GET", "/v1/symbols", data["symbols"])
    else:
        raise AssertionError(name)


def make_venue(name: str, *, retry: RetryPolicy = DEFAULT_RETRY, **kwargs: Any) -> Venue:
    sleeps: list[float] = []
    exchange = CcxtExchange(
        name,
        api_key=API_KEY,
        secret=SECRET,
        options={"enableRateLimit": False},  # ccxt's throttle would really sleep
        retry=retry,
        sleep=sleeps.append,
        **kwargs,
    )
    http = FakeVenue(exchange.client)
    _market_routes(name, http)
    return Venue(exchange, http, sleeps)


@pytest.fixture
def binance() -> Venue:
    return make_venue("binance")


@pytest.fixture
def bybit() -> Venue:
    return make_venue("bybit")


@pytest.fixture
def gemini() -> Venue:
    return make_venue("gemini")


# --------------------------------------------------------------------------- load_exchange_class


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, check=False
    )


def test_load_exchange_class_imports_only_the_chosen_exchange_module() -> None:
    result = _run_python(
        """
        import sys
        from crypto_bot.adapters.ccxt.exchange import load_exchange_class
        assert "ccxt" not in sys.modules, "importing the adapter must not import ccxt"
        cls = load_exchange_class("binance")
        exchanges = sorted(
            m for m in sys.modules
            if m.startswith("ccxt.") and m.count(".") == 1 and m not in ("ccxt.base", "ccxt.abstract")
        )
        assert exchanges == ["ccxt.binance"], exchanges
        assert "ccxt.bybit" not in sys.modules
        assert "ccxt.async_support" not in sys.modules
        assert not hasattr(sys.modules["ccxt"], "exchanges"), "ccxt/__init__.py ran"
        instance = cls({"apiKey": "k", "secret": "s"})
        assert instance.id == "binance"
        assert instance.amount_to_precision is not None
        from crypto_bot.adapters.ccxt.exchange import translate_error
        import ccxt.base.errors as errors
        assert translate_error(errors.OrderNotFound("x")).__name__ == "OrderNotFound"
        assert "ccxt.bybit" not in sys.modules
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_load_exchange_class_uses_the_real_package_when_it_is_already_imported() -> None:
    result = _run_python(
        """
        import ccxt
        from crypto_bot.adapters.ccxt.exchange import load_exchange_class
        assert load_exchange_class("kraken") is ccxt.kraken
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_load_exchange_class_returns_a_working_class() -> None:
    cls = load_exchange_class("bybit")
    instance = cls({"enableRateLimit": False})
    assert cls.__name__ == "bybit"
    assert instance.id == "bybit"
    assert instance.precisionMode == TICK_SIZE


@pytest.mark.parametrize(
    "exchange_id",
    ["Binance", "not_an_exchange", "base", "pro", "async_support", "static_dependencies", "abstract", "test", "1inch"]
    + ["", "binance.py", "../binance", "binance us"],
)
def test_load_exchange_class_rejects_ids_that_are_not_ccxt_exchanges(exchange_id: str) -> None:
    with pytest.raises(UnsupportedExchange) as info:
        load_exchange_class(exchange_id)
    assert repr(exchange_id) in str(info.value)


def test_precision_mode_constants_match_ccxt() -> None:
    load_exchange_class("binance")
    precision = sys.modules["ccxt.base.decimal_to_precision"]
    assert (DECIMAL_PLACES, SIGNIFICANT_DIGITS, TICK_SIZE) == (
        precision.DECIMAL_PLACES,
        precision.SIGNIFICANT_DIGITS,
        precision.TICK_SIZE,
    )


# --------------------------------------------------------------------------- construction


def test_client_defaults_enable_the_rate_limiter_and_spot_only_market_download() -> None:
    exchange = CcxtExchange("binance")
    assert exchange.client.enableRateLimit is True
    assert exchange.client.options["fetchMarkets"]["types"] == ["spot"]


def test_options_are_deep_merged_into_the_ccxt_defaults() -> None:
    exchange = CcxtExchange(
        "binance",
        options={
            "options": {"recvWindow": 5000, "fetchMarkets": {"types": ["spot", "linear"]}},
            "urls": {"api": {"public": "https://binance.example/api/v3"}},
        },
    )
    client = exchange.client
    assert client.options["recvWindow"] == 5000
    assert client.options["fetchMarkets"]["types"] == ["spot", "linear"]
    assert client.options["defaultType"] == "spot"  # a ccxt default the merge kept
    assert client.urls["api"]["public"] == "https://binance.example/api/v3"
    assert client.urls["api"]["private"] == "https://api.binance.com/api/v3"


def test_an_injected_client_is_used_as_given_with_the_credentials_applied() -> None:
    client = load_exchange_class("gemini")({"enableRateLimit": False})
    exchange = CcxtExchange("gemini", api_key=API_KEY, secret=SECRET, client=client)
    assert exchange.client is client
    assert (client.apiKey, client.secret) == (API_KEY, SECRET)
    assert exchange.name == "gemini"


def test_sandbox_switches_the_client_to_the_venue_testnet() -> None:
    exchange = CcxtExchange("binance", sandbox=True)
    assert exchange.client.urls["api"]["public"] == "https://testnet.binance.vision/api/v3"


def test_sandbox_on_a_venue_without_one_raises_unsupported_exchange() -> None:
    with pytest.raises(UnsupportedExchange, match=r"kraken has no sandbox"):
        CcxtExchange("kraken", sandbox=True)


def test_repr_hides_the_credentials() -> None:
    exchange = CcxtExchange("bybit", api_key=API_KEY, secret=SECRET, password=PASSWORD)
    text = repr(exchange) + str(exchange)
    assert "bybit" in text
    for secret in (API_KEY, SECRET, PASSWORD):
        assert secret not in text


def test_error_messages_hide_the_credentials(binance: Venue) -> None:
    errors = ccxt_errors()
    leak = f"binance GET https://api.binance.com/api/v3/account?apiKey={API_KEY}&secret={SECRET}"
    binance.http.on("GET", "/api/v3/account", errors.ExchangeError(leak))
    with pytest.raises(PermanentExchangeError) as info:
        binance.exchange.fetch_balances()
    for text in (str(info.value), str(info.value.__cause__)):
        assert API_KEY not in text
        assert SECRET not in text
        assert "apiKey=***" in text


def test_the_adapter_satisfies_the_exchange_port(binance: Venue) -> None:
    port: Exchange = binance.exchange
    assert port.name == "binance"


# --------------------------------------------------------------------------- markets


def spot(
    symbol: str, amount_step: str, price_step: str, min_amount: str, min_cost: str, maker: str, taker: str
) -> Market:
    base, quote = symbol.split("/")
    steps = (Decimal(amount_step), Decimal(price_step))
    return Market(symbol, base, quote, *steps, Decimal(min_amount), Decimal(min_cost), Decimal(maker), Decimal(taker))


VENUE_MARKETS = [
    # venue, spot(symbol, amount step, tick, min amount, min cost, maker fee, taker fee)
    ("binance", spot("BTC/USDT", "0.00001", "0.01", "0.00001", "5", "0.001", "0.001")),
    ("binance", spot("ETH/BTC", "0.0001", "0.00001", "0.0001", "0.0001", "0.001", "0.001")),
    ("bybit", spot("BTC/USDT", "0.000001", "0.01", "0.000048", "1", "0.001", "0.001")),
    ("bybit", spot("BTC/EUR", "0.0001", "0.5", "0.0002", "5", "0.001", "0.001")),
    ("gemini", spot("BTC/USD", "0.00000001", "0.01", "0.00001", "0", "0.002", "0.004")),
    ("gemini", spot("ETH/USD", "0.000001", "0.01", "0.001", "0", "0.002", "0.004")),
]


@pytest.mark.parametrize(("venue", "expected"), VENUE_MARKETS, ids=lambda p: getattr(p, "symbol", p))
def test_load_markets_converts_each_venue_market_into_exact_decimals(venue: str, expected: Market) -> None:
    exchange = make_venue(venue).exchange
    assert exchange.load_markets([expected.symbol]) == {expected.symbol: expected}


def test_load_markets_downloads_the_markets_once(binance: Venue) -> None:
    binance.exchange.load_markets(["BTC/USDT"])
    binance.exchange.load_markets(["ETH/BTC"])
    assert binance.http.count("GET", "/api/v3/exchangeInfo") == 1


def test_load_markets_retries_a_transient_failure_of_the_download(binance: Venue) -> None:
    binance.http.on(
        "GET", "/api/v3/exchangeInfo", ccxt_errors().NetworkError("reset"), venue_data("binance")["exchange_info"]
    )
    assert binance.exchange.load_markets(["BTC/USDT"])["BTC/USDT"].price_step == Decimal("0.01")
    assert binance.http.count("GET", "/api/v3/exchangeInfo") == 2
    assert binance.sleeps == [0.5]


def test_load_markets_names_an_unlisted_symbol(binance: Venue) -> None:
    with pytest.raises(BadSymbol, match=r"binance does not list 'DOGE/EUR'"):
        binance.exchange.load_markets(["BTC/USDT", "DOGE/EUR"])


def test_primed_markets_avoid_the_market_download(bybit: Venue) -> None:
    cached = bybit.exchange.export_markets(["BTC/USDT", "BTC/EUR"])
    json.dumps(cached)  # a cache must be able to store them

    fresh = CcxtExchange("bybit", options={"enableRateLimit": False})
    http = FakeVenue(fresh.client)  # no routes: any request fails the test
    fresh.prime_markets(json.loads(json.dumps(cached)))

    assert fresh.load_markets(["BTC/USDT", "BTC/EUR"]) == bybit.exchange.load_markets(["BTC/USDT", "BTC/EUR"])
    assert http.sent == []


def test_primed_binance_markets_can_place_orders() -> None:
    source = make_venue("binance")
    cached = source.exchange.export_markets(["BTC/USDT"])
    fresh = CcxtExchange("binance", api_key=API_KEY, secret=SECRET, options={"enableRateLimit": False})
    http = FakeVenue(fresh.client)
    http.on("POST", "/api/v3/order", venue_data("binance")["order_new_filled"])
    fresh.prime_markets(cached)

    order = fresh.create_limit_order("BTC/USDT", Side.BUY, Decimal("0.00123"), Decimal("65000.01"), CID)

    assert order.status is OrderStatus.CLOSED
    assert [r.path for r in http.sent] == ["/api/v3/order"]


def test_prime_markets_refuses_structures_that_are_not_ccxt_markets() -> None:
    exchange = CcxtExchange("binance")
    with pytest.raises(PermanentExchangeError, match=r"'BTC/USDT' is not a ccxt market structure"):
        exchange.prime_markets({"BTC/USDT": {"symbol": "BTC/USDT"}})


def _ccxt_market(precision: dict[str, Any], **extra: Any) -> dict[str, Any]:
    market: dict[str, Any] = {
        "id": "BTCUSD",
        "symbol": "BTC/USD",
        "base": "BTC",
        "quote": "USD",
        "spot": True,
        "precision": precision,
        "limits": {"amount": {"min": None, "max": None}, "cost": {"min": None, "max": None}},
        "maker": None,
        "taker": None,
    }
    market.update(extra)
    return market


def test_market_from_ccxt_reads_decimal_places_as_a_power_of_ten_step() -> None:
    market = market_from_ccxt(_ccxt_market({"amount": 8, "price": 2.0}), DECIMAL_PLACES)
    assert (market.amount_step, market.price_step) == (Decimal("0.00000001"), Decimal("0.01"))


def test_market_from_ccxt_reads_negative_decimal_places_as_a_step_above_one() -> None:
    market = market_from_ccxt(_ccxt_market({"amount": 0, "price": -1}), DECIMAL_PLACES)
    assert (market.amount_step, market.price_step) == (Decimal("1"), Decimal("10"))


def test_market_from_ccxt_refuses_fractional_decimal_places() -> None:
    with pytest.raises(PermanentExchangeError, match=r"decimal places must be whole"):
        market_from_ccxt(_ccxt_market({"amount": 2.5, "price": 2}), DECIMAL_PLACES)


def test_market_from_ccxt_refuses_significant_digits() -> None:
    with pytest.raises(UnsupportedExchange, match=r"BTC/USD amount precision: .*significant digits"):
        market_from_ccxt(_ccxt_market({"amount": 5, "price": 5}), SIGNIFICANT_DIGITS)


def test_load_markets_on_a_significant_digits_venue_raises_unsupported_exchange() -> None:
    exchange = CcxtExchange("bithumb", options={"enableRateLimit": False})
    exchange.prime_markets({"BTC/KRW": _ccxt_market({"amount": 4, "price": 4}, id="BTC_KRW", symbol="BTC/KRW")})
    with pytest.raises(UnsupportedExchange, match=r"significant digits"):
        exchange.load_markets(["BTC/KRW"])


def test_market_from_ccxt_converts_floats_through_their_text() -> None:
    market = market_from_ccxt(_ccxt_market({"amount": 0.1, "price": 0.3}, maker=0.0002, taker=0.0007), TICK_SIZE)
    assert (market.amount_step, market.price_step) == (Decimal("0.1"), Decimal("0.3"))
    assert (market.maker_fee, market.taker_fee) == (Decimal("0.0002"), Decimal("0.0007"))


def test_market_from_ccxt_treats_missing_minimums_and_fees_as_zero() -> None:
    market = market_from_ccxt(_ccxt_market({"amount": 1e-8, "price": 0.01}, limits={}), TICK_SIZE)
    assert (market.min_amount, market.min_cost, market.maker_fee, market.taker_fee) == (0, 0, 0, 0)


def test_market_from_ccxt_refuses_a_market_without_precision() -> None:
    with pytest.raises(PermanentExchangeError, match=r"BTC/USD price precision: ccxt market has no precision"):
        market_from_ccxt(_ccxt_market({"amount": 1e-8, "price": None}), TICK_SIZE)


def test_market_from_ccxt_refuses_a_derivatives_market() -> None:
    with pytest.raises(BadSymbol, match=r"BTC/USD is not a spot market"):
        market_from_ccxt(_ccxt_market({"amount": 1, "price": 1}, spot=False), TICK_SIZE)


# --------------------------------------------------------------------------- precision agreement


@functools.cache
def _loaded(venue: str) -> CcxtExchange:
    exchange = make_venue(venue).exchange
    exchange.load_markets([])
    return exchange


@functools.cache
def _decimal_places_exchange() -> CcxtExchange:
    # No venue in ccxt 4.5 still uses DECIMAL_PLACES, but ccxt lets a client be
    # configured with it, and older or custom venues may; 4 places of amount, whole won.
    exchange = CcxtExchange("binance", options={"enableRateLimit": False, "precisionMode": DECIMAL_PLACES})
    exchange.prime_markets(
        {"BTC/KRW": _ccxt_market({"amount": 4, "price": 0}, id="BTCKRW", symbol="BTC/KRW", quote="KRW")}
    )
    assert exchange.client.precisionMode == DECIMAL_PLACES
    return exchange


PRECISION_CASES = [
    ("binance", "BTC/USDT"),
    ("binance", "ETH/BTC"),
    ("bybit", "BTC/USDT"),
    ("bybit", "BTC/EUR"),
    ("gemini", "BTC/USD"),
    ("gemini", "ETH/USD"),
    ("decimal-places", "BTC/KRW"),
]


def _exchange_for(venue: str) -> CcxtExchange:
    return _decimal_places_exchange() if venue == "decimal-places" else _loaded(venue)


def _ccxt_formats(fn: Callable[[str, str], str], symbol: str, value: Decimal) -> Decimal:
    errors = ccxt_errors()
    with decimal.localcontext():
        try:
            return Decimal(fn(symbol, format(value, "f")))
        except errors.InvalidOrder:  # ccxt refuses a value that rounds to zero
            return Decimal(0)


positive = st.decimals(min_value=Decimal("0"), max_value=Decimal("200000"), places=9, allow_nan=False)


@pytest.mark.parametrize(("venue", "symbol"), PRECISION_CASES)
@settings(max_examples=200, deadline=None)
@given(amount=positive)
@example(amount=Decimal("0.000015"))
@example(amount=Decimal("0.00001"))
@example(amount=Decimal("1.99999999"))
def test_market_amount_precision_agrees_with_ccxt(venue: str, symbol: str, amount: Decimal) -> None:
    exchange = _exchange_for(venue)
    market = exchange.load_markets([symbol])[symbol]
    assert market.amount_to_precision(amount) == _ccxt_formats(exchange.client.amount_to_precision, symbol, amount)


@pytest.mark.parametrize(("venue", "symbol"), PRECISION_CASES)
@settings(max_examples=200, deadline=None)
@given(price=positive)
@example(price=Decimal("64000.25"))
@example(price=Decimal("64000.75"))
@example(price=Decimal("64000.24"))
@example(price=Decimal("0.005"))
def test_market_price_precision_agrees_with_ccxt(venue: str, symbol: str, price: Decimal) -> None:
    exchange = _exchange_for(venue)
    market = exchange.load_markets([symbol])[symbol]
    assert market.price_to_precision(price) == _ccxt_formats(exchange.client.price_to_precision, symbol, price)


def test_half_tick_prices_round_half_up_on_the_half_tick_market() -> None:
    market = _loaded("bybit").load_markets(["BTC/EUR"])["BTC/EUR"]
    assert market.price_to_precision(Decimal("64000.25")) == Decimal("64000.5")
    assert market.price_to_precision(Decimal("64000.24")) == Decimal("64000.0")


# --------------------------------------------------------------------------- balances and prices


@pytest.mark.parametrize(
    ("venue", "method", "path", "key", "expected"),
    [
        ("binance", "GET", "/api/v3/account", "account",
         {"BTC": Balance(Decimal("0.015"), Decimal("0.001")), "USDT": Balance(Decimal("1234.56"), Decimal("100"))}),
        ("bybit", "GET", "/v5/account/wallet-balance", "wallet_balance",
         {"BTC": Balance(Decimal("0.015"), Decimal("0.001")), "USDT": Balance(Decimal("200"), Decimal("50"))}),
        ("gemini", "POST", "/v1/balances", "balances",
         {"BTC": Balance(Decimal("0.02"), Decimal("0.0005")), "USD": Balance(Decimal("1400.25"), Decimal("100"))}),
    ],
)  # fmt: skip
def test_fetch_balances_reports_free_and_locked_and_skips_empty_assets(
    venue: str, method: str, path: str, key: str, expected: dict[str, Balance]
) -> None:
    v = make_venue(venue)
    v.http.on(method, path, venue_data(venue)[key])
    assert v.exchange.fetch_balances() == expected


@pytest.mark.parametrize(
    ("venue", "symbol", "path", "key", "expected"),
    [
        ("binance", "BTC/USDT", "/api/v3/ticker/24hr", "ticker_24hr", Decimal("65012.34")),
        ("bybit", "BTC/USDT", "/v5/market/tickers", "tickers", Decimal("65010.5")),
        ("gemini", "BTC/USD", "/v1/pubticker/btcusd", "pubticker", Decimal("65000.15")),
    ],
)
def test_fetch_last_price_returns_the_last_trade(
    venue: str, symbol: str, path: str, key: str, expected: Decimal
) -> None:
    v = make_venue(venue)
    v.http.on("GET", path, venue_data(venue)[key])
    assert v.exchange.fetch_last_price(symbol) == expected


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"free": None, "used": 0.1, "total": 0.5}, Balance(Decimal("0.4"), Decimal("0.1"))),
        ({"free": 0.5, "used": None, "total": 0.5}, Balance(Decimal("0.5"), Decimal("0"))),
    ],
)
def test_fetch_balances_derives_a_missing_free_or_used_from_the_total(
    binance: Venue, entry: dict[str, Any], expected: Balance
) -> None:
    binance.exchange.client.fetch_balance = lambda params=None: {"total": {"BTC": 0.5}, "BTC": entry}
    assert binance.exchange.fetch_balances() == {"BTC": expected}


def test_fetch_balances_refuses_a_venue_that_reports_only_totals(binance: Venue) -> None:
    only_total = {"total": {"BTC": 0.5}, "BTC": {"free": None, "used": None, "total": 0.5}}
    binance.exchange.client.fetch_balance = lambda params=None: only_total
    with pytest.raises(PermanentExchangeError, match=r"binance reports only a total for BTC"):
        binance.exchange.fetch_balances()


def test_fetch_last_price_without_last_or_close_is_a_transient_error_retried() -> None:
    v = make_venue("binance", retry=RetryPolicy(attempts=3))
    # ccxt derives a close from open + change, so a ticker without a price lacks all of them
    gone = ("lastPrice", "priceChange", "priceChangePercent", "openPrice")
    ticker = {k: val for k, val in venue_data("binance")["ticker_24hr"].items() if k not in gone}
    v.http.on("GET", "/api/v3/ticker/24hr", ticker)
    with pytest.raises(ExchangeUnavailable, match=r"binance returned no last or close price for BTC/USDT"):
        v.exchange.fetch_last_price("BTC/USDT")
    assert v.http.count("GET", "/api/v3/ticker/24hr") == 3


# --------------------------------------------------------------------------- placing orders


def test_create_limit_order_on_binance_sends_the_client_id_and_precise_strings(binance: Venue) -> None:
    binance.http.on("POST", "/api/v3/order", binance.data["order_new_filled"])

    order = binance.exchange.create_limit_order("BTC/USDT", Side.BUY, Decimal("0.00123"), Decimal("65000.01"), CID)

    sent = binance.http.last("POST", "/api/v3/order").form()
    assert sent["newClientOrderId"] == CID
    assert (sent["quantity"], sent["price"]) == ("0.00123", "65000.01")
    assert (sent["side"], sent["type"], sent["timeInForce"]) == ("BUY", "LIMIT", "GTC")
    assert order == ExchangeOrder(
        id="28457123",
        client_order_id=CID,
        symbol="BTC/USDT",
        side=Side.BUY,
        amount=Decimal("0.00123"),
        price=Decimal("65000.01"),
        status=OrderStatus.CLOSED,
        filled=Decimal("0.00123"),
        cost=Decimal("79.9500123"),
        fees=(Fee(Decimal("0.00000123"), "BTC"),),
    )


def test_create_limit_order_on_bybit_sends_the_order_link_id_and_fills_the_bare_ack(bybit: Venue) -> None:
    bybit.http.on("POST", "/v5/order/create", bybit.data["order_create"])

    order = bybit.exchange.create_limit_order("BTC/USDT", Side.BUY, Decimal("0.002"), Decimal("64000"), CID)

    sent = bybit.http.last("POST", "/v5/order/create").form()
    assert sent["orderLinkId"] == CID
    assert (sent["qty"], sent["price"]) == ("0.002", "64000")
    assert (sent["side"], sent["orderType"], sent["category"]) == ("Buy", "Limit", "spot")
    assert order == ExchangeOrder(
        id="1321003749386327552",
        client_order_id=CID,
        symbol="BTC/USDT",
        side=Side.BUY,
        amount=Decimal("0.002"),
        price=Decimal("64000"),
        status=OrderStatus.OPEN,
    )


def test_create_limit_order_on_a_half_tick_market_sends_the_half_tick_price(bybit: Venue) -> None:
    bybit.http.on("POST", "/v5/order/create", bybit.data["order_create"])

    bybit.exchange.create_limit_order("BTC/EUR", Side.SELL, Decimal("0.0123"), Decimal("59000.5"), CID)

    sent = bybit.http.last("POST", "/v5/order/create").form()
    assert (sent["symbol"], sent["side"], sent["qty"], sent["price"]) == ("BTCEUR", "Sell", "0.0123", "59000.5")


def test_create_limit_order_on_gemini_sends_the_client_order_id(gemini: Venue) -> None:
    gemini.http.on("POST", "/v1/order/new", gemini.data["order_new"])

    order = gemini.exchange.create_limit_order("BTC/USD", Side.BUY, Decimal("0.00123"), Decimal("64000"), CID)

    sent = gemini.http.last("POST", "/v1/order/new").form()
    assert sent["client_order_id"] == CID
    assert (sent["symbol"], sent["amount"], sent["price"], sent["type"]) == (
        "btcusd",
        "0.00123",
        "64000",
        "exchange limit",
    )
    assert order == ExchangeOrder(
        id="106028543717",
        client_order_id=CID,
        symbol="BTC/USD",
        side=Side.BUY,
        amount=Decimal("0.00123"),
        price=Decimal("64000"),
        status=OrderStatus.OPEN,
    )


@pytest.mark.parametrize(
    ("amount", "price"),
    [(Decimal("0.000123456"), Decimal("65000.01")), (Decimal("0.00123"), Decimal("65000.015"))],
)
def test_create_limit_order_refuses_values_off_the_market_precision(
    binance: Venue, amount: Decimal, price: Decimal
) -> None:
    with pytest.raises(InvalidOrder, match=r"not at the market's precision"):
        binance.exchange.create_limit_order("BTC/USDT", Side.BUY, amount, price, CID)
    assert binance.http.count("POST", "/api/v3/order") == 0


def test_create_limit_order_on_an_unlisted_symbol_raises_bad_symbol(binance: Venue) -> None:
    with pytest.raises(BadSymbol, match=r"DOGE/EUR"):
        binance.exchange.create_limit_order("DOGE/EUR", Side.BUY, Decimal("10"), Decimal("0.1"), CID)
    assert binance.http.count("POST", "/api/v3/order") == 0


def test_create_limit_order_refuses_an_unknown_side(binance: Venue) -> None:
    with pytest.raises(InvalidOrder, match=r"unknown order side 'hold'"):
        binance.exchange.create_limit_order("BTC/USDT", "hold", Decimal("0.001"), Decimal("65000"), CID)  # type: ignore[arg-type]
    assert binance.http.count("POST", "/api/v3/order") == 0


def test_create_limit_order_is_not_retried_when_the_outcome_is_unknown(binance: Venue) -> None:
    errors = ccxt_errors()
    binance.http.on("POST", "/api/v3/order", errors.RequestTimeout("binance POST https://api.binance.com/api/v3/order"))

    with pytest.raises(RequestTimeout) as info:
        binance.exchange.create_limit_order("BTC/USDT", Side.BUY, Decimal("0.00123"), Decimal("65000.01"), CID)

    assert isinstance(info.value.__cause__, errors.RequestTimeout)
    assert binance.http.count("POST", "/api/v3/order") == 1
    assert binance.sleeps == []


def test_create_limit_order_is_not_retried_on_a_rate_limit_either(binance: Venue) -> None:
    binance.http.on("POST", "/api/v3/order", HttpReply(**binance.data["errors"]["too_many_requests"]))
    with pytest.raises(RateLimited):
        binance.exchange.create_limit_order("BTC/USDT", Side.BUY, Decimal("0.00123"), Decimal("65000.01"), CID)
    assert binance.http.count("POST", "/api/v3/order") == 1


def test_the_decimal_context_is_left_as_it_was(binance: Venue) -> None:
    binance.http.on("POST", "/api/v3/order", binance.data["order_new_filled"])
    with decimal.localcontext() as context:
        context.rounding = decimal.ROUND_HALF_EVEN
        context.traps[decimal.Underflow] = False
        binance.exchange.create_limit_order("BTC/USDT", Side.BUY, Decimal("0.00123"), Decimal("65000.01"), CID)
        # ccxt's precision helpers set ROUND_HALF_UP and trap Underflow on the current context
        assert decimal.getcontext().rounding == decimal.ROUND_HALF_EVEN
        assert not decimal.getcontext().traps[decimal.Underflow]


# --------------------------------------------------------------------------- reading and retries


def test_fetch_order_retries_transient_errors_with_backoff() -> None:
    v = make_venue("binance", retry=RetryPolicy(attempts=4))
    errors = ccxt_errors()
    v.http.on(
        "GET",
        "/api/v3/order",
        errors.NetworkError("connection reset"),
        HttpReply(**v.data["errors"]["too_many_requests"]),
        v.data["order_open"],
    )

    order = v.exchange.fetch_order("28457124", "BTC/USDT")

    assert (order.id, order.status, order.amount, order.price) == (
        "28457124",
        OrderStatus.OPEN,
        Decimal("0.002"),
        Decimal("64000"),
    )
    assert v.http.last("GET", "/api/v3/order").query["orderId"] == "28457124"
    assert v.http.count("GET", "/api/v3/order") == 3
    assert v.sleeps == [0.5, 1.0]


def test_fetch_order_gives_up_after_the_last_attempt() -> None:
    v = make_venue("binance", retry=RetryPolicy(attempts=3))
    v.http.on("GET", "/api/v3/order", ccxt_errors().NetworkError("connection reset"))
    with pytest.raises(ExchangeNetworkError):
        v.exchange.fetch_order("28457124", "BTC/USDT")
    assert v.http.count("GET", "/api/v3/order") == 3
    assert v.sleeps == [0.5, 1.0]


def test_fetch_order_does_not_retry_a_permanent_error(binance: Venue) -> None:
    binance.http.on("GET", "/api/v3/order", HttpReply(**binance.data["errors"]["order_does_not_exist"]))
    with pytest.raises(OrderNotFound, match=r"fetch_order\('28457199', 'BTC/USDT'\) failed on binance"):
        binance.exchange.fetch_order("28457199", "BTC/USDT")
    assert binance.http.count("GET", "/api/v3/order") == 1
    assert binance.sleeps == []


def test_fetch_order_on_bybit_looks_in_the_open_then_the_closed_orders(bybit: Venue) -> None:
    bybit.http.on("GET", "/v5/order/realtime", bybit.data["orders_empty"])
    bybit.http.on("GET", "/v5/order/history", bybit.data["orders_history_canceled_partial"])

    order = bybit.exchange.fetch_order("1321003749386327552", "BTC/USDT")

    assert bybit.http.last("GET", "/v5/order/realtime").query["orderId"] == "1321003749386327552"
    assert bybit.http.last("GET", "/v5/order/history").query["orderId"] == "1321003749386327552"
    # ccxt calls PartiallyFilledCanceled "closed"; the unfilled rest was canceled.
    assert order == ExchangeOrder(
        id="1321003749386327552",
        client_order_id=CID,
        symbol="BTC/USDT",
        side=Side.BUY,
        amount=Decimal("0.002"),
        price=Decimal("64000"),
        status=OrderStatus.CANCELED,
        filled=Decimal("0.0005"),
        cost=Decimal("32"),
        fees=(Fee(Decimal("0.0000005"), "BTC"),),
    )


def test_fetch_order_on_bybit_stops_at_the_open_orders_when_found(bybit: Venue) -> None:
    bybit.http.on("GET", "/v5/order/realtime", bybit.data["orders_open"])
    order = bybit.exchange.fetch_order("1321003749386327552", "BTC/USDT")
    assert (order.status, order.filled) == (OrderStatus.OPEN, Decimal("0"))
    assert bybit.http.count("GET", "/v5/order/history") == 0


def test_fetch_order_on_bybit_raises_order_not_found_when_neither_listing_has_it(bybit: Venue) -> None:
    bybit.http.on("GET", "/v5/order/realtime", bybit.data["orders_empty"])
    bybit.http.on("GET", "/v5/order/history", bybit.data["orders_empty"])
    with pytest.raises(OrderNotFound, match=r"bybit has no order '42' on BTC/USDT"):
        bybit.exchange.fetch_order("42", "BTC/USDT")


def test_fetch_order_on_gemini_posts_the_order_id(gemini: Venue) -> None:
    gemini.http.on("POST", "/v1/order/status", gemini.data["order_filled"])
    gemini.http.on("POST", "/v1/mytrades", gemini.data["my_trades"])
    order = gemini.exchange.fetch_order("106028543717", "BTC/USD")
    assert gemini.http.last("POST", "/v1/order/status").form()["order_id"] == "106028543717"
    assert (order.status, order.filled, order.cost) == (OrderStatus.CLOSED, Decimal("0.00123"), Decimal("78.72"))
    # Gemini's order status has no fee; its trades do, and only this order's trade counts.
    assert order.fees == (Fee(Decimal("0.27552"), "USD"),)


def test_a_binance_order_read_gets_its_commission_from_the_orders_trades(binance: Venue) -> None:
    binance.http.on("GET", "/api/v3/order", binance.data["order_query_filled"])
    binance.http.on("GET", "/api/v3/myTrades", binance.data["my_trades_28457123"])

    order = binance.exchange.fetch_order("28457123", "BTC/USDT")

    assert binance.http.last("GET", "/api/v3/myTrades").query["orderId"] == "28457123"
    assert order.fees == (Fee(Decimal("0.00000123"), "BTC"),)
    assert order.fees_reported


def test_an_open_order_with_nothing_filled_reads_no_trades(binance: Venue) -> None:
    binance.http.on("GET", "/api/v3/order", binance.data["order_open"])
    order = binance.exchange.fetch_order("28457124", "BTC/USDT")
    assert order.filled == 0
    assert binance.http.count("GET", "/api/v3/myTrades") == 0


def test_trades_that_lag_the_order_are_read_again_not_booked_short(binance: Venue) -> None:
    binance.http.on("GET", "/api/v3/order", binance.data["order_query_filled"])
    trades = binance.data["my_trades_28457123"]
    binance.http.on("GET", "/api/v3/myTrades", trades[:1], trades)

    order = binance.exchange.fetch_order("28457123", "BTC/USDT")

    assert binance.http.count("GET", "/api/v3/myTrades") == 2
    assert order.fees == (Fee(Decimal("0.00000123"), "BTC"),)


def test_a_venue_without_fees_or_trades_says_the_fees_are_unreported(binance: Venue) -> None:
    client = binance.exchange.client
    client.has = dict(client.has, fetchOrderTrades=False, fetchMyTrades=False)
    binance.http.on("GET", "/api/v3/order", binance.data["order_query_filled"])

    order = binance.exchange.fetch_order("28457123", "BTC/USDT")

    assert (order.fees, order.fees_reported) == ((), False)


# --------------------------------------------------------------------------- cancel


def test_cancel_order_returns_the_state_read_after_the_cancel(binance: Venue) -> None:
    binance.http.on("DELETE", "/api/v3/order", binance.data["cancel_response"])
    binance.http.on("GET", "/api/v3/order", binance.data["order_partially_filled_then_canceled"])
    binance.http.on("GET", "/api/v3/myTrades", binance.data["my_trades_28457124"])

    order = binance.exchange.cancel_order("28457124", "BTC/USDT")

    assert [r.method for r in binance.http.sent if r.path == "/api/v3/order"] == ["DELETE", "GET"]
    assert binance.http.last("DELETE", "/api/v3/order").query["orderId"] == "28457124"
    assert (order.status, order.filled, order.cost) == (OrderStatus.CANCELED, Decimal("0.0005"), Decimal("32"))


def test_cancel_order_of_an_order_that_filled_meanwhile_returns_it_filled(binance: Venue) -> None:
    binance.http.on("DELETE", "/api/v3/order", HttpReply(**binance.data["errors"]["unknown_order_sent"]))
    binance.http.on("GET", "/api/v3/order", binance.data["order_query_filled"])
    binance.http.on("GET", "/api/v3/myTrades", binance.data["my_trades_28457123"])

    order = binance.exchange.cancel_order("28457123", "BTC/USDT")

    assert (order.status, order.filled) == (OrderStatus.CLOSED, Decimal("0.00123"))
    assert binance.http.count("DELETE", "/api/v3/order") == 1


def test_cancel_order_of_an_unknown_order_raises_order_not_found(binance: Venue) -> None:
    binance.http.on("DELETE", "/api/v3/order", HttpReply(**binance.data["errors"]["unknown_order_sent"]))
    binance.http.on("GET", "/api/v3/order", HttpReply(**binance.data["errors"]["order_does_not_exist"]))
    with pytest.raises(OrderNotFound):
        binance.exchange.cancel_order("1", "BTC/USDT")


def test_cancel_order_retries_a_transient_error(binance: Venue) -> None:
    binance.http.on(
        "DELETE", "/api/v3/order", ccxt_errors().ExchangeNotAvailable("503"), binance.data["cancel_response"]
    )
    binance.http.on("GET", "/api/v3/order", binance.data["order_partially_filled_then_canceled"])
    binance.http.on("GET", "/api/v3/myTrades", binance.data["my_trades_28457124"])
    assert binance.exchange.cancel_order("28457124", "BTC/USDT").status is OrderStatus.CANCELED
    assert binance.http.count("DELETE", "/api/v3/order") == 2
    assert binance.sleeps == [0.5]


def test_cancel_order_on_bybit_rereads_the_order_from_the_listings(bybit: Venue) -> None:
    bybit.http.on("POST", "/v5/order/cancel", bybit.data["order_cancel"])
    bybit.http.on("GET", "/v5/order/realtime", bybit.data["orders_empty"])
    bybit.http.on("GET", "/v5/order/history", bybit.data["orders_history_canceled_partial"])

    order = bybit.exchange.cancel_order("1321003749386327552", "BTC/USDT")

    assert bybit.http.last("POST", "/v5/order/cancel").form()["orderId"] == "1321003749386327552"
    assert (order.status, order.filled) == (OrderStatus.CANCELED, Decimal("0.0005"))


# --------------------------------------------------------------------------- find by client id


def test_find_order_by_client_id_on_binance_queries_the_orig_client_order_id(binance: Venue) -> None:
    binance.http.on("GET", "/api/v3/order", binance.data["order_open"])

    order = binance.exchange.find_order_by_client_id("cb0123456789abcdef01234567a1", "BTC/USDT")

    query = binance.http.last("GET", "/api/v3/order").query
    assert query["origClientOrderId"] == "cb0123456789abcdef01234567a1"
    assert "orderId" not in query
    assert order is not None
    assert (order.id, order.client_order_id) == ("28457124", "cb0123456789abcdef01234567a1")


def test_find_order_by_client_id_on_binance_returns_none_when_the_order_does_not_exist(binance: Venue) -> None:
    binance.http.on("GET", "/api/v3/order", HttpReply(**binance.data["errors"]["order_does_not_exist"]))
    assert binance.exchange.find_order_by_client_id(CID, "BTC/USDT") is None
    assert binance.http.count("GET", "/api/v3/order") == 1


def test_find_order_by_client_id_on_bybit_filters_both_listings_by_order_link_id(bybit: Venue) -> None:
    bybit.http.on("GET", "/v5/order/realtime", bybit.data["orders_empty"])
    bybit.http.on("GET", "/v5/order/history", bybit.data["orders_history_canceled_partial"])

    order = bybit.exchange.find_order_by_client_id(CID, "BTC/USDT")

    assert bybit.http.last("GET", "/v5/order/realtime").query["orderLinkId"] == CID
    assert bybit.http.last("GET", "/v5/order/history").query["orderLinkId"] == CID
    assert order is not None
    assert (order.id, order.status, order.filled) == ("1321003749386327552", OrderStatus.CANCELED, Decimal("0.0005"))


def test_find_order_by_client_id_on_bybit_returns_none_when_no_listing_has_it(bybit: Venue) -> None:
    bybit.http.on("GET", "/v5/order/realtime", bybit.data["orders_empty"])
    bybit.http.on("GET", "/v5/order/history", bybit.data["orders_empty"])
    assert bybit.exchange.find_order_by_client_id("cbunknown", "BTC/USDT") is None
    assert bybit.http.count("GET", "/v5/order/history") == 1


def test_find_order_by_client_id_on_bybit_ignores_orders_with_another_client_id(bybit: Venue) -> None:
    # If the venue ignored the filter, a different order must not be taken for ours.
    bybit.http.on("GET", "/v5/order/realtime", bybit.data["orders_open"])
    bybit.http.on("GET", "/v5/order/history", bybit.data["orders_history_canceled_partial"])
    assert bybit.exchange.find_order_by_client_id("cbsomeoneelse", "BTC/USDT") is None


def test_find_order_by_client_id_on_gemini_posts_the_client_order_id(gemini: Venue) -> None:
    gemini.http.on("POST", "/v1/order/status", [gemini.data["order_filled"]])
    gemini.http.on("POST", "/v1/mytrades", gemini.data["my_trades"])

    order = gemini.exchange.find_order_by_client_id(CID, "BTC/USD")

    sent = gemini.http.last("POST", "/v1/order/status").form()
    assert sent["client_order_id"] == CID
    assert "order_id" not in sent
    assert order is not None
    assert (order.id, order.status, order.filled) == ("106028543717", OrderStatus.CLOSED, Decimal("0.00123"))


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(HttpReply(**venue_data("gemini")["errors"]["order_not_found"]), id="order-not-found"),
        pytest.param([], id="empty-list"),
    ],
)
def test_find_order_by_client_id_on_gemini_returns_none_when_not_found(gemini: Venue, reply: Any) -> None:
    gemini.http.on("POST", "/v1/order/status", reply)
    assert gemini.exchange.find_order_by_client_id(CID, "BTC/USD") is None


def test_find_order_by_client_id_on_gemini_ignores_the_same_client_id_on_another_symbol(gemini: Venue) -> None:
    other = dict(gemini.data["order_filled"], symbol="ethusd")
    gemini.http.on("POST", "/v1/order/status", [other])
    assert gemini.exchange.find_order_by_client_id(CID, "BTC/USD") is None


def test_find_order_by_client_id_refuses_a_venue_that_cannot_list_closed_orders() -> None:
    exchange = CcxtExchange("kraken", options={"enableRateLimit": False})
    exchange.prime_markets({"BTC/USD": _ccxt_market({"amount": 1e-8, "price": 0.1}, id="XXBTZUSD")})
    client = exchange.client
    client.has = dict(client.has, fetchOrders=False, fetchClosedOrders=False, fetchCanceledAndClosedOrders=False)
    with pytest.raises(UnsupportedExchange, match=r"kraken cannot list closed orders"):
        exchange.find_order_by_client_id(CID, "BTC/USD")


# --------------------------------------------------------------------------- error translation

# Every class in ccxt's error hierarchy (ccxt/base/errors.py), by what it means for an order: refused
# (permanent), transient, or outcome unknown (transient: a placement is looked up before anything else).
ERROR_CLASSES = [
    ("BaseError", PermanentExchangeError),
    ("ExchangeError", PermanentExchangeError),
    ("AuthenticationError", AuthenticationFailed),
    ("PermissionDenied", AuthenticationFailed),
    ("AccountNotEnabled", AuthenticationFailed),
    ("AccountSuspended", AuthenticationFailed),
    ("ArgumentsRequired", PermanentExchangeError),
    ("BadRequest", PermanentExchangeError),
    ("BadSymbol", BadSymbol),
    ("OperationRejected", PermanentExchangeError),
    ("NoChange", PermanentExchangeError),
    ("MarginModeAlreadySet", PermanentExchangeError),
    ("MarketClosed", PermanentExchangeError),
    ("ManualInteractionNeeded", PermanentExchangeError),
    ("RestrictedLocation", PermanentExchangeError),
    ("InsufficientFunds", InsufficientFunds),
    ("InvalidAddress", PermanentExchangeError),
    ("AddressPending", PermanentExchangeError),
    ("InvalidOrder", InvalidOrder),
    ("OrderNotFound", OrderNotFound),
    ("OrderNotCached", InvalidOrder),
    ("OrderImmediatelyFillable", InvalidOrder),
    ("OrderNotFillable", InvalidOrder),
    ("DuplicateOrderId", OutcomeUnknown),
    ("ContractUnavailable", InvalidOrder),
    ("NotSupported", UnsupportedExchange),
    ("InvalidProxySettings", PermanentExchangeError),
    ("ExchangeClosedByUser", PermanentExchangeError),
    ("OperationFailed", OutcomeUnknown),
    ("NetworkError", ExchangeNetworkError),
    ("DDoSProtection", RateLimited),
    ("RateLimitExceeded", RateLimited),
    ("ExchangeNotAvailable", ExchangeUnavailable),
    ("OnMaintenance", ExchangeUnavailable),
    ("InvalidNonce", ExchangeNetworkError),
    ("ChecksumError", ExchangeNetworkError),
    ("RequestTimeout", RequestTimeout),
    ("BadResponse", OutcomeUnknown),
    ("NullResponse", OutcomeUnknown),
    ("CancelPending", OutcomeUnknown),
    ("UnsubscribeError", PermanentExchangeError),
]


def _hierarchy_names(tree: dict[str, Any]) -> set[str]:
    return set(tree) | {name for subtree in tree.values() for name in _hierarchy_names(subtree)}


def test_every_ccxt_error_class_is_classified() -> None:
    assert _hierarchy_names(ccxt_errors().error_hierarchy) == {name for name, _ in ERROR_CLASSES}


# What a placement that raised each ccxt class means: an answer that is not a specific refusal may hide an
# accepted order, so a bare ExchangeError (a venue code ccxt does not classify) counts as outcome unknown.
PLACEMENT_OUTCOMES = [
    (
        name,
        OutcomeUnknown
        if name in ("ExchangeError", "BaseError") or expected is ExchangeUnavailable
        else InvalidOrder
        if name == "BadRequest"
        else expected,
    )
    for name, expected in ERROR_CLASSES
]


def test_binance_duplicate_order_sent_on_placement_is_looked_up_not_given_up(binance: Venue) -> None:
    raised = ccxt_errors().InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}')
    binance.http.on("POST", "/api/v3/order", raised)
    with pytest.raises(OutcomeUnknown):
        binance.exchange.create_limit_order("BTC/USDT", Side.BUY, Decimal("0.00123"), Decimal("65000.01"), CID)


@pytest.mark.parametrize(("ccxt_name", "expected"), PLACEMENT_OUTCOMES)
def test_every_ccxt_error_out_of_create_order_is_refused_transient_or_unknown(
    binance: Venue, ccxt_name: str, expected: type[ExchangeError]
) -> None:
    raised = getattr(ccxt_errors(), ccxt_name)("binance says no")
    binance.http.on("POST", "/api/v3/order", raised)

    with pytest.raises(ExchangeError) as info:
        binance.exchange.create_limit_order("BTC/USDT", Side.BUY, Decimal("0.00123"), Decimal("65000.01"), CID)

    assert type(info.value) is expected
    # Refused means permanent; everything else leaves the placement to be looked up by client id.
    assert info.value.transient is not issubclass(expected, PermanentExchangeError)
    assert binance.http.count("POST", "/api/v3/order") == 1


@pytest.mark.parametrize(("ccxt_name", "expected"), ERROR_CLASSES)
def test_ccxt_errors_are_translated_by_class(ccxt_name: str, expected: type[ExchangeError]) -> None:
    v = make_venue("binance", retry=NO_RETRY)
    raised = getattr(ccxt_errors(), ccxt_name)("binance says no")
    v.http.on("GET", "/api/v3/account", raised)

    with pytest.raises(ExchangeError) as info:
        v.exchange.fetch_balances()

    assert type(info.value) is expected
    assert info.value.__cause__ is raised
    assert str(info.value) == "fetch_balance failed on binance: binance says no"


def test_translation_ignores_the_message_text() -> None:
    errors = ccxt_errors()
    assert translate_error(errors.ExchangeError("Order does not exist")) is PermanentExchangeError
    assert translate_error(errors.InvalidOrder("request timeout")) is InvalidOrder


def test_translation_refuses_errors_that_are_not_ccxt_errors() -> None:
    with pytest.raises(TypeError, match=r"not a ccxt error: KeyError"):
        translate_error(KeyError("x"))


def test_error_map_lists_every_subclass_before_its_parent() -> None:
    errors = ccxt_errors()
    classes = [getattr(errors, name) for name, _ in ccxt_exchange._ERROR_MAP]
    for i, earlier in enumerate(classes):
        for later in classes[i + 1 :]:
            assert not issubclass(later, earlier), f"{later.__name__} is shadowed by {earlier.__name__}"


@dataclass(frozen=True)
class VenueFailure:
    venue: str
    method: str
    path: str
    error: str
    call: Callable[[CcxtExchange], object]
    expected: type[ExchangeError]


def _buy(symbol: str, amount: str, price: str) -> Callable[[CcxtExchange], object]:
    return lambda ex: ex.create_limit_order(symbol, Side.BUY, Decimal(amount), Decimal(price), CID)


VENUE_FAILURES = [
    VenueFailure("binance", "GET", "/api/v3/order", "order_does_not_exist",
                 lambda ex: ex.fetch_order("1", "BTC/USDT"), OrderNotFound),
    VenueFailure("binance", "POST", "/api/v3/order", "insufficient_balance",
                 _buy("BTC/USDT", "0.00123", "65000.01"), InsufficientFunds),
    VenueFailure("binance", "POST", "/api/v3/order", "lot_size", _buy("BTC/USDT", "0.00123", "65000.01"), InvalidOrder),
    VenueFailure("binance", "GET", "/api/v3/order", "invalid_symbol",
                 lambda ex: ex.fetch_order("1", "BTC/USDT"), BadSymbol),
    VenueFailure("binance", "GET", "/api/v3/account", "invalid_api_key",
                 lambda ex: ex.fetch_balances(), AuthenticationFailed),
    VenueFailure("binance", "GET", "/api/v3/account", "too_many_requests",
                 lambda ex: ex.fetch_balances(), RateLimited),
    VenueFailure("binance", "GET", "/api/v3/account", "maintenance",
                 lambda ex: ex.fetch_balances(), ExchangeUnavailable),
    VenueFailure("binance", "GET", "/api/v3/account", "internal_error",
                 lambda ex: ex.fetch_balances(), OutcomeUnknown),
    VenueFailure("bybit", "POST", "/v5/order/create", "insufficient_balance",
                 _buy("BTC/USDT", "0.002", "64000"), InsufficientFunds),
    VenueFailure("bybit", "POST", "/v5/order/create", "invalid_symbol",
                 _buy("BTC/USDT", "0.002", "64000"), InvalidOrder),
    VenueFailure("bybit", "GET", "/v5/account/wallet-balance", "too_many_requests",
                 lambda ex: ex.fetch_balances(), RateLimited),
    VenueFailure("bybit", "GET", "/v5/account/wallet-balance", "invalid_api_key",
                 lambda ex: ex.fetch_balances(), AuthenticationFailed),
    VenueFailure("gemini", "POST", "/v1/order/status", "order_not_found",
                 lambda ex: ex.fetch_order("106028543718", "BTC/USD"), OrderNotFound),
    VenueFailure("gemini", "POST", "/v1/order/new", "insufficient_funds",
                 _buy("BTC/USD", "100", "64000"), InsufficientFunds),
    VenueFailure("gemini", "POST", "/v1/balances", "rate_limit", lambda ex: ex.fetch_balances(), RateLimited),
    VenueFailure("gemini", "POST", "/v1/balances", "invalid_signature",
                 lambda ex: ex.fetch_balances(), AuthenticationFailed),
    VenueFailure("gemini", "POST", "/v1/balances", "maintenance", lambda ex: ex.fetch_balances(), ExchangeUnavailable),
]  # fmt: skip


@pytest.mark.parametrize("case", VENUE_FAILURES, ids=lambda c: f"{c.venue}-{c.error}")
def test_venue_error_payloads_become_our_errors(case: VenueFailure) -> None:
    v = make_venue(case.venue, retry=NO_RETRY)
    v.http.on(case.method, case.path, HttpReply(**v.data["errors"][case.error]))
    with pytest.raises(ExchangeError) as info:
        case.call(v.exchange)
    assert type(info.value) is case.expected
    assert info.value.__cause__ is not None


# --------------------------------------------------------------------------- order conversion


def _ccxt_order(**fields: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "id": "7",
        "clientOrderId": CID,
        "symbol": "BTC/USDT",
        "side": "sell",
        "status": "open",
        "amount": 0.5,
        "price": 60000.5,
        "average": None,
        "filled": 0.0,
        "cost": None,
        "fee": None,
        "fees": [],
    }
    order.update(fields)
    return order


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("open", OrderStatus.OPEN),
        ("canceling", OrderStatus.OPEN),
        ("closed", OrderStatus.CLOSED),
        ("canceled", OrderStatus.CANCELED),
        ("cancelled", OrderStatus.CANCELED),
        ("rejected", OrderStatus.REJECTED),
        ("expired", OrderStatus.EXPIRED),
    ],
)
def test_order_statuses_are_mapped_explicitly(status: str, expected: OrderStatus) -> None:
    filled = 0.5 if status == "closed" else 0.0
    assert order_from_ccxt(_ccxt_order(status=status, filled=filled)).status is expected


@pytest.mark.parametrize("status", ["pending", "partially_filled", None])
def test_an_unknown_order_status_is_an_error(status: str | None) -> None:
    with pytest.raises(PermanentExchangeError, match=rf"order 7: unknown order status {status!r}"):
        order_from_ccxt(_ccxt_order(status=status))


def test_an_unknown_order_side_is_an_error() -> None:
    with pytest.raises(PermanentExchangeError, match=r"order 7: unknown order side 'short'"):
        order_from_ccxt(_ccxt_order(side="short"))


def test_a_closed_order_that_is_not_fully_filled_counts_as_canceled() -> None:
    order = order_from_ccxt(_ccxt_order(status="closed", filled=0.2))
    assert (order.status, order.filled, order.remaining) == (OrderStatus.CANCELED, Decimal("0.2"), Decimal("0.3"))


def test_order_numbers_are_converted_through_their_text() -> None:
    order = order_from_ccxt(_ccxt_order(amount=0.1, price=0.3, filled=0.1, cost=0.03, status="closed"))
    assert (order.amount, order.price, order.filled, order.cost) == (
        Decimal("0.1"),
        Decimal("0.3"),
        Decimal("0.1"),
        Decimal("0.03"),
    )


@pytest.mark.parametrize(
    ("average", "expected_cost"),
    [(None, Decimal("12000.1")), (60010.0, Decimal("12002.0"))],
)
def test_a_missing_cost_is_filled_times_the_average_or_the_price(average: float | None, expected_cost: Decimal) -> None:
    order = order_from_ccxt(_ccxt_order(filled=0.2, average=average, cost=None))
    assert order.cost == expected_cost


def test_fees_come_from_fee_and_fees_without_double_counting() -> None:
    order = order_from_ccxt(
        _ccxt_order(
            fee={"cost": 0.0001, "currency": "BTC"},
            fees=[
                {"cost": 0.0001, "currency": "BTC"},
                {"cost": 0.25, "currency": "BNB"},
                {"cost": None, "currency": "USDT"},
                {"cost": 0.0, "currency": "USDT"},
            ],
        )
    )
    assert order.fees == (Fee(Decimal("0.0001"), "BTC"), Fee(Decimal("0.25"), "BNB"))


def test_a_fee_missing_from_the_list_is_added() -> None:
    order = order_from_ccxt(_ccxt_order(fee={"cost": 1.5, "currency": "USDT"}, fees=[{"cost": 0.1, "currency": "BNB"}]))
    assert order.fees == (Fee(Decimal("0.1"), "BNB"), Fee(Decimal("1.5"), "USDT"))


def test_a_fee_without_currency_is_an_error() -> None:
    with pytest.raises(PermanentExchangeError, match=r"order 7: fee of 0.5 has no currency"):
        order_from_ccxt(_ccxt_order(fee={"cost": 0.5, "currency": None}))


def test_a_bare_acknowledgement_is_completed_from_the_order_as_sent() -> None:
    sent = SentOrder("BTC/USDT", Side.SELL, Decimal("0.5"), Decimal("60000.5"), CID)
    order = order_from_ccxt({"id": "9", "clientOrderId": None, "symbol": None, "status": None, "side": None}, sent)
    assert order == ExchangeOrder("9", CID, "BTC/USDT", Side.SELL, Decimal("0.5"), Decimal("60000.5"), OrderStatus.OPEN)


def test_an_order_without_id_is_an_error() -> None:
    with pytest.raises(PermanentExchangeError, match=r"ccxt order has no id"):
        order_from_ccxt(_ccxt_order(id=None))
