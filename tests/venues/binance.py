"""Binance spot, as its public REST documentation describes it, small enough to read.

Every behaviour names the document it follows; paths are in
github.com/binance/binance-spot-api-docs (read at a5e0bc3, 2026-07-21):

* ``rest-api.md``: endpoints, request security (``X-MBX-APIKEY``, HMAC-SHA256
  ``signature`` over the query string concatenated with the body), timing security
  (``timestamp``, ``recvWindow`` default 5000, max 60000), HTTP codes (429/418 with
  ``Retry-After``; 5XX means the execution status is unknown);
* ``errors.md``: codes and messages (-1013 ``Filter failure: <FILTER>``, -2010
  ``Duplicate order sent.`` / ``Account has insufficient balance for requested action.``,
  -2011 and -2013 for unknown orders, -1102, -1021, -1022, -2014, -2015);
* ``filters.md``: ``PRICE_FILTER``, ``LOT_SIZE``, ``MARKET_LOT_SIZE``, ``NOTIONAL`` and
  the older ``MIN_NOTIONAL``, in their ``/exchangeInfo`` shapes;
* ``faqs/commission_faq.md``: commission is the *received* amount (the base on a buy,
  the quote on a sell) times the sum of the rates (maker or taker, plus buyer or seller),
  taken from what is received unless BNB pays it.

The inconvenient behaviours are the point and are modelled: ``GET /api/v3/order``
carries no commission (only ``newOrderRespType=FULL`` fills and ``GET
/api/v3/myTrades`` do); a client order id is unique only among *open* orders; a
cancel of an order that is no longer open is -2011.

The book is one price level a side: marketable orders take the best ask (buys) or
bid (sells) as taker, at once; others rest with their funds locked until
:meth:`Binance.set_price` moves the market across them, then fill at their limit as
maker. Simplifications, chosen so that tests stay exact: the liquidity at the touch is
unlimited unless :meth:`Binance.partial_fills` is armed; market orders' notional is
checked at the last price (the docs' average price with ``avgPriceMins`` 0); tax and
special commissions are zero; BNB never pays commission (an account without the BNB
fee option, which is the case the bot's ledger must get right).

``STOP_LOSS_LIMIT`` orders (rest-api.md, New order: ``timeInForce``, ``quantity``, ``price``,
``stopPrice``) rest off the book with their funds locked, ``NEW`` with ``isWorking`` false and
``workingTime`` -1 (the pending orders of rest-api.md's order list responses), until a trade at
:meth:`Binance.set_price` reaches the stop: a SELL triggers on "market price <= stop price", a BUY
on ">=" (faqs/trailing-stop-faq.md, "What kind of price changes will trigger my trailing stop
order?"). The limit then enters the book as a new LIMIT order would, and ``workingTime`` is the
trigger's time (faqs/spot_glossary.md: "The time when the order started working on the order
book"). A stop the last price already meets is refused with -2010 "Order would trigger
immediately." (errors.md, messages of -2010; rest-api.md: a STOP_LOSS SELL's price is "below
market price"). ``PRICE_FILTER`` applies to ``stopPrice`` as to ``price`` (filters.md);
``trailingDelta`` and the other algo types are not modelled.

The sapi endpoints ccxt calls while loading markets with credentials (coins, cross
and isolated margin pairs) are served too, in the shapes of developers.binance.com
(``wallet/capital/all-coins-info``; ``margin_trading/market-data``), because a real
user of the adapter, which sets no ccxt options but the spot market types, sees them.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal
from urllib.parse import parse_qsl

from tests.venues.http import Handler, Request, Response

ZERO = Decimal(0)
EIGHT_PLACES = Decimal("0.00000001")  # baseAssetPrecision / *CommissionPrecision 8 (rest-api.md, exchangeInfo)

# The example HMAC key pair of rest-api.md ("SIGNED Endpoint Examples for POST /api/v3/order").
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"  # pragma: allowlist secret
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"  # pragma: allowlist secret

DEFAULT_RECV_WINDOW_MS = 5000  # rest-api.md, Timing security: "it defaults to 5000 milliseconds"
MAX_RECV_WINDOW_MS = 60000  # rest-api.md, Timing security: "Maximum recvWindow is 60000 milliseconds"

Side = Literal["BUY", "SELL"]
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")  # enums.md, Order status: the ones that can still trade


class BinanceError(Exception):
    """A documented error answer: HTTP status, Binance code and message (errors.md)."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{code} {msg}")
        self.status, self.code, self.msg = status, code, msg

    def response(self) -> Response:
        return Response(self.status, {"code": self.code, "msg": self.msg})


def _bad_request(code: int, msg: str) -> BinanceError:
    # rest-api.md, HTTP Return Codes: "HTTP 4XX return codes are used for malformed requests"; the docs name no
    # status per code, so every refusal is a 400 (ccxt maps Binance errors by code, before the status).
    return BinanceError(400, code, msg)


def _mandatory(name: str) -> BinanceError:
    return _bad_request(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _filter_failure(name: str) -> BinanceError:
    return _bad_request(-1013, f"Filter failure: {name}")


def _rejected(msg: str) -> BinanceError:
    return _bad_request(-2010, msg)


def _fmt(value: Decimal) -> str:
    """Format an amount as Binance does: a string with 8 decimals."""
    return f"{value:.8f}"


# --------------------------------------------------------------------------- canned fault answers


def too_many_requests(retry_after: int = 1) -> Response:
    """Answer 429 with ``Retry-After`` (rest-api.md, IP Limits; errors.md -1003)."""
    msg = (
        "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API."
    )
    return Response(429, {"code": -1003, "msg": msg}, {"Retry-After": str(retry_after)})


def ip_banned(retry_after: int = 120) -> Response:
    """Answer 418, the automated IP ban after ignored 429s; bans last from 2 minutes to 3 days (rest-api.md)."""
    until = int(time.time() * 1000) + retry_after * 1000
    msg = (
        f"Way too much request weight used; IP banned until {until}. "
        "Please use WebSocket Streams for live updates to avoid bans."
    )
    return Response(418, {"code": -1003, "msg": msg}, {"Retry-After": str(retry_after)})


# errors.md, 10xx: the codes that say the execution status is unknown.
UNKNOWN_OUTCOME_MESSAGES: Mapping[int, str] = {
    -1000: "An unknown error occurred while processing the request.",
    -1001: "Internal error; unable to process your request. Please try again.",
    -1006: "An unexpected response was received from the message bus. Execution status unknown.",
    -1007: "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
}


def server_error(code: int = -1000, status: int = 500) -> Response:
    """Answer a 5XX: "the execution status is UNKNOWN and could have been a success" (rest-api.md)."""
    return Response(status, {"code": code, "msg": UNKNOWN_OUTCOME_MESSAGES[code]})


# --------------------------------------------------------------------------- venue state


@dataclass(frozen=True)
class SymbolRules:
    """One spot symbol's trading rules, served as filters.md's filter objects."""

    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal
    min_price: Decimal = Decimal("0.01")
    max_price: Decimal = Decimal(1000000)
    max_qty: Decimal = Decimal(9000)
    market_max_qty: Decimal = Decimal(100)
    max_notional: Decimal = Decimal(9000000)
    # BTCUSDT lists NOTIONAL today; MIN_NOTIONAL is the older filter some symbols still carry (filters.md has both).
    notional_filter: Literal["NOTIONAL", "MIN_NOTIONAL"] = "NOTIONAL"

    @property
    def symbol(self) -> str:
        return self.base + self.quote

    def filters(self) -> list[dict[str, Any]]:
        """Return the symbol's filters in their /exchangeInfo format (filters.md)."""
        notional: dict[str, Any]
        if self.notional_filter == "NOTIONAL":
            notional = {
                "filterType": "NOTIONAL",
                "minNotional": _fmt(self.min_notional),
                "applyMinToMarket": True,
                "maxNotional": _fmt(self.max_notional),
                "applyMaxToMarket": False,
                "avgPriceMins": 0,
            }
        else:
            notional = {
                "filterType": "MIN_NOTIONAL",
                "minNotional": _fmt(self.min_notional),
                "applyToMarket": True,
                "avgPriceMins": 0,
            }
        return [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": _fmt(self.min_price),
                "maxPrice": _fmt(self.max_price),
                "tickSize": _fmt(self.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": _fmt(self.min_qty),
                "maxQty": _fmt(self.max_qty),
                "stepSize": _fmt(self.step_size),
            },
            notional,
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": _fmt(self.min_qty),
                "maxQty": _fmt(self.market_max_qty),
                "stepSize": _fmt(self.step_size),
            },
        ]


BTCUSDT = SymbolRules(
    "BTC",
    "USDT",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.00001"),
    min_qty=Decimal("0.00001"),
    min_notional=Decimal(5),
)
ETHUSDT = SymbolRules(
    "ETH",
    "USDT",
    tick_size=Decimal("0.01"),
    step_size=Decimal("0.0001"),
    min_qty=Decimal("0.0001"),
    min_notional=Decimal(5),
    notional_filter="MIN_NOTIONAL",
)


@dataclass(frozen=True)
class CommissionRates:
    """The account's standard commission rates, as ``GET /api/v3/account`` reports them."""

    maker: Decimal = Decimal("0.001")
    taker: Decimal = Decimal("0.001")
    buyer: Decimal = ZERO
    seller: Decimal = ZERO


@dataclass
class Book:
    """The best bid and ask (one level, unlimited size) and the last trade price of a symbol."""

    last: Decimal
    bid: Decimal
    ask: Decimal


@dataclass
class Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: Side
    type: Literal["LIMIT", "MARKET", "STOP_LOSS_LIMIT"]
    price: Decimal  # 0 for a MARKET order, as Binance reports it
    orig_qty: Decimal
    time: int
    executed_qty: Decimal = ZERO
    cumulative_quote_qty: Decimal = ZERO
    status: str = "NEW"
    update_time: int = 0
    # Quote locked for a resting buy (its remaining qty at its limit) or base for a resting sell.
    locked: Decimal = ZERO
    stop_price: Decimal | None = None  # a STOP_LOSS_LIMIT's stopPrice
    triggered_at: int | None = None  # when a STOP_LOSS_LIMIT's stop was reached and its limit went on the book

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def working_time(self) -> int:
        """The order's ``workingTime``: -1 for a stop not triggered yet, as an order list's pending orders show."""
        if self.stop_price is None:
            return self.time
        return -1 if self.triggered_at is None else self.triggered_at

    @property
    def is_working(self) -> bool:
        return self.working_time != -1

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty


@dataclass(frozen=True)
class Trade:
    trade_id: int
    order_id: int
    symbol: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool


@dataclass
class Balance:
    free: Decimal = ZERO
    locked: Decimal = ZERO


@dataclass
class Binance:
    """The venue: balances, symbols, books, orders and trades, behind Binance's REST routes."""

    balances: dict[str, Balance] = field(default_factory=dict)
    rules: dict[str, SymbolRules] = field(default_factory=lambda: {r.symbol: r for r in (BTCUSDT, ETHUSDT)})
    rates: CommissionRates = field(default_factory=CommissionRates)
    books: dict[str, Book] = field(default_factory=dict)
    orders: list[Order] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    api_key: str = API_KEY
    secret: str = SECRET
    clock_skew_ms: int = 0  # server time minus real time: a skewed client clock, for -1021
    _partial: list[Decimal] = field(default_factory=list)  # fill fractions for the next marketable limit orders
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    _trade_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(5000))
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # ----------------------------------------------------------------- test controls

    def deposit(self, asset: str, amount: Decimal) -> None:
        """Credit ``amount`` of ``asset`` as free balance."""
        with self._lock:
            self.balances.setdefault(asset, Balance()).free += amount

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Trade the market to ``price``: last, bid and ask move there, and resting orders it crosses fill as maker."""
        with self._lock:
            book = self.books[symbol] = Book(last=price, bid=price, ask=price)
            for order in [o for o in self.orders if o.symbol == symbol and o.is_open and o.type != "MARKET"]:
                if not order.is_working:
                    if order.stop_price is not None and _stop_reached(order.side, order.stop_price, price):
                        order.triggered_at = order.update_time = self._now()
                        self._enter_book(order, book)
                    continue
                crossed = order.price >= price if order.side == "BUY" else order.price <= price
                if crossed:
                    self._fill(order, order.remaining, order.price, maker=True)

    def set_book(self, symbol: str, *, bid: Decimal, ask: Decimal) -> None:
        """Move the touch without a trade (the last price stays): e.g. bids vanish under a falling market."""
        with self._lock:
            book = self.books[symbol]
            book.bid, book.ask = bid, ask

    def partial_fills(self, *fractions: Decimal) -> None:
        """Make the next marketable limit orders fill only these fractions at once; their rest rests."""
        with self._lock:
            self._partial.extend(fractions)

    def total_balances(self) -> dict[str, Decimal]:
        """Return free plus locked by asset (the invariants' view of the account)."""
        with self._lock:
            return {asset: b.free + b.locked for asset, b in self.balances.items()}

    def placed_client_order_ids(self) -> list[str | None]:
        with self._lock:
            return [o.client_order_id for o in self.orders]

    def open_client_order_ids(self) -> list[str | None]:
        with self._lock:
            return [o.client_order_id for o in self.orders if o.is_open]

    def order_by_client_id(self, client_order_id: str) -> Order:
        """Return the latest order with this client id (a test helper; raises if none)."""
        with self._lock:
            return next(o for o in reversed(self.orders) if o.client_order_id == client_order_id)

    # ----------------------------------------------------------------- routes

    def routes(self) -> dict[str, Handler]:
        """Return the REST routes, each answering as the docs say (errors included)."""
        public: dict[str, Callable[[dict[str, str]], Any]] = {
            "GET /api/v3/ping": lambda _p: {},
            "GET /api/v3/time": lambda _p: {"serverTime": self._now()},
            "GET /api/v3/exchangeInfo": self._exchange_info,
            "GET /api/v3/ticker/24hr": self._ticker_24hr,
            "GET /api/v3/ticker/price": self._ticker_price,
        }
        signed: dict[str, Callable[[dict[str, str]], Any]] = {
            "GET /api/v3/account": self._account,
            "POST /api/v3/order": self._new_order,
            "GET /api/v3/order": self._query_order,
            "DELETE /api/v3/order": self._cancel_order,
            "GET /api/v3/openOrders": self._open_orders,
            "GET /api/v3/allOrders": self._all_orders,
            "GET /api/v3/myTrades": self._my_trades,
            "GET /sapi/v1/capital/config/getall": self._coins,
            "GET /sapi/v1/margin/allPairs": self._margin_pairs,
            "GET /sapi/v1/margin/isolated/allPairs": self._margin_pairs,
        }
        routes: dict[str, Handler] = {}
        for route, action in public.items():
            routes[route] = self._serve(action, signed=False)
        for route, action in signed.items():
            routes[route] = self._serve(action, signed=True)
        return routes

    def _serve(self, action: Callable[[dict[str, str]], Any], *, signed: bool) -> Handler:
        def handle(request: Request) -> Response:
            try:
                params = _params(request)
                if signed:
                    self._authenticate(request, params)
                with self._lock:
                    return Response(200, action(params))
            except BinanceError as e:
                return e.response()

        return handle

    # ----------------------------------------------------------------- security

    def _authenticate(self, request: Request, params: Mapping[str, str]) -> None:
        """Check the API key, the signature and the timing, in that order (rest-api.md, Request Security)."""
        key = request.headers.get("x-mbx-apikey", "")
        if not key:
            # errors.md names -2014 for a malformed key without defining the format; only an absent one is modelled.
            raise BinanceError(401, -2014, "API-key format invalid.")
        if not hmac.compare_digest(key, self.api_key):
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        payload, signature = _signature_payload(request)
        if signature is None:
            raise _mandatory("signature")
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        # rest-api.md, Signature Case Sensitivity: HMAC signatures are not case-sensitive.
        if not hmac.compare_digest(signature.lower(), expected):
            raise _bad_request(-1022, "Signature for this request is not valid.")
        timestamp = _integer(params, "timestamp")
        recv_window = Decimal(params.get("recvWindow") or DEFAULT_RECV_WINDOW_MS)
        if recv_window > MAX_RECV_WINDOW_MS:
            raise _bad_request(
                -1102, f"'recvWindow' contains unexpected value. Cannot be greater than {MAX_RECV_WINDOW_MS}."
            )
        server_time = self._now()
        # rest-api.md, Timing security: timestamp < serverTime + 1 s and serverTime - timestamp <= recvWindow.
        if timestamp >= server_time + 1000:
            raise _bad_request(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if server_time - timestamp > recv_window:
            raise _bad_request(-1021, "Timestamp for this request is outside of the recvWindow.")

    def _now(self) -> int:
        return int(time.time() * 1000) + self.clock_skew_ms

    # ----------------------------------------------------------------- market data

    def _exchange_info(self, params: Mapping[str, str]) -> dict[str, Any]:
        wanted = list(self.rules)
        if params.get("symbol"):
            wanted = [params["symbol"]]
        elif params.get("symbols"):
            wanted = [s.strip().strip('"') for s in params["symbols"].strip("[]").split(",")]
        for symbol in wanted:
            self._rules(symbol)
        return {
            "timezone": "UTC",
            "serverTime": self._now(),
            # enums.md, Rate limiters: the documented examples' limits.
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 1, "limit": 10},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": [self._symbol_info(self.rules[s]) for s in wanted],
        }

    @staticmethod
    def _symbol_info(rules: SymbolRules) -> dict[str, Any]:
        return {
            "symbol": rules.symbol,
            "status": "TRADING",
            "baseAsset": rules.base,
            "baseAssetPrecision": 8,
            "quoteAsset": rules.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": [
                "LIMIT",
                "LIMIT_MAKER",
                "MARKET",
                "STOP_LOSS",
                "STOP_LOSS_LIMIT",
                "TAKE_PROFIT",
                "TAKE_PROFIT_LIMIT",
            ],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "amendAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": True,
            "filters": rules.filters(),
            "permissions": [],
            "permissionSets": [["SPOT", "MARGIN"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }

    def _ticker_24hr(self, params: Mapping[str, str]) -> Any:
        if params.get("symbol"):
            return self._ticker(params["symbol"])
        return [self._ticker(s) for s in self.books]

    def _ticker(self, symbol: str) -> dict[str, Any]:
        self._rules(symbol)
        book = self._book(symbol)
        now = self._now()
        # rest-api.md, 24hr ticker (FULL): a quiet day at the last price; the bot reads lastPrice only.
        return {
            "symbol": symbol,
            "priceChange": _fmt(ZERO),
            "priceChangePercent": "0.000",
            "weightedAvgPrice": _fmt(book.last),
            "prevClosePrice": _fmt(book.last),
            "lastPrice": _fmt(book.last),
            "lastQty": _fmt(ZERO),
            "bidPrice": _fmt(book.bid),
            "bidQty": _fmt(Decimal(1)),
            "askPrice": _fmt(book.ask),
            "askQty": _fmt(Decimal(1)),
            "openPrice": _fmt(book.last),
            "highPrice": _fmt(book.last),
            "lowPrice": _fmt(book.last),
            "volume": _fmt(ZERO),
            "quoteVolume": _fmt(ZERO),
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": -1,
            "lastId": -1,
            "count": 0,
        }

    def _ticker_price(self, params: Mapping[str, str]) -> Any:
        if params.get("symbol"):
            self._rules(params["symbol"])
            return {"symbol": params["symbol"], "price": _fmt(self._book(params["symbol"]).last)}
        return [{"symbol": s, "price": _fmt(b.last)} for s, b in self.books.items()]

    # ----------------------------------------------------------------- account

    def _account(self, params: Mapping[str, str]) -> dict[str, Any]:
        omit_zero = params.get("omitZeroBalances") == "true"
        rates = self.rates
        return {
            # rest-api.md, Account information: the integer fields are the rates in basis points.
            "makerCommission": int(rates.maker * 10000),
            "takerCommission": int(rates.taker * 10000),
            "buyerCommission": int(rates.buyer * 10000),
            "sellerCommission": int(rates.seller * 10000),
            "commissionRates": {
                "maker": _fmt(rates.maker),
                "taker": _fmt(rates.taker),
                "buyer": _fmt(rates.buyer),
                "seller": _fmt(rates.seller),
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self._now(),
            "accountType": "SPOT",
            # A real account lists every asset the venue has, held or not, unless omitZeroBalances says otherwise.
            "balances": [
                {"asset": asset, "free": _fmt(b.free), "locked": _fmt(b.locked)}
                for asset, b in ((a, self.balances.get(a, Balance())) for a in self._assets())
                if not (omit_zero and b.free == 0 and b.locked == 0)
            ],
            "permissions": ["SPOT"],
            "uid": 354937868,
        }

    def _coins(self, _params: Mapping[str, str]) -> list[dict[str, Any]]:
        # developers.binance.com/docs/wallet/capital/all-coins-info: one entry per coin, one network each here.
        coins = []
        for asset in self._assets():
            balance = self.balances.get(asset, Balance())
            network = {
                "network": asset,
                "coin": asset,
                "withdrawIntegerMultiple": "0.00000001",
                "isDefault": True,
                "depositEnable": True,
                "withdrawEnable": True,
                "name": asset,
                "withdrawFee": "0.0001",
                "withdrawMin": "0.001",
                "withdrawMax": "9999999",
                "minConfirm": 1,
                "unLockConfirm": 2,
            }
            coins.append(
                {
                    "coin": asset,
                    "depositAllEnable": True,
                    "withdrawAllEnable": True,
                    "name": asset,
                    "free": _fmt(balance.free),
                    "locked": _fmt(balance.locked),
                    "freeze": "0",
                    "withdrawing": "0",
                    "ipoing": "0",
                    "ipoable": "0",
                    "storage": "0",
                    "isLegalMoney": False,
                    "trading": True,
                    "networkList": [network],
                }
            )
        return coins

    def _margin_pairs(self, _params: Mapping[str, str]) -> list[dict[str, Any]]:
        # developers.binance.com margin_trading/market-data, Get All Cross (and Isolated) Margin Pairs.
        return [
            {
                "id": 351637150141315861 + n,
                "symbol": r.symbol,
                "base": r.base,
                "quote": r.quote,
                "isMarginTrade": True,
                "isBuyAllowed": True,
                "isSellAllowed": True,
            }
            for n, r in enumerate(self.rules.values())
        ]

    # ----------------------------------------------------------------- orders

    def _new_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        """POST /api/v3/order (rest-api.md, New order): LIMIT (GTC) and MARKET by quantity."""
        symbol = _required(params, "symbol")
        rules = self._rules(symbol)
        side = _required(params, "side")
        if side not in ("BUY", "SELL"):
            raise _bad_request(-1117, "Invalid side.")
        order_type = _required(params, "type")
        if order_type not in ("LIMIT", "MARKET", "STOP_LOSS_LIMIT"):
            # Only the types the bot sends are modelled; others are refused the documented way.
            raise _bad_request(-1116, "Invalid orderType.")
        quantity = _decimal(params, "quantity")  # every type needs it here (quoteOrderQty is not modelled)
        price = ZERO
        if order_type != "MARKET":
            if _required(params, "timeInForce") != "GTC":
                raise _bad_request(-1115, "Invalid timeInForce.")
            price = _decimal(params, "price")
        # trailingDelta, the documented alternative to stopPrice, is not modelled: stopPrice is mandatory here.
        stop_price = _decimal(params, "stopPrice") if order_type == "STOP_LOSS_LIMIT" else None
        # "MARKET and LIMIT order types default to FULL, all other orders default to ACK."
        response_type = params.get("newOrderRespType") or ("ACK" if order_type == "STOP_LOSS_LIMIT" else "FULL")
        if response_type not in ("ACK", "RESULT", "FULL"):
            raise _bad_request(-1130, "Data sent for parameter 'newOrderRespType' is not valid.")
        book = self._book(symbol)
        self._check_filters(rules, order_type, quantity, price or book.last, stop_price)
        client_order_id = params.get("newClientOrderId") or f"emu{next(self._ids)}"
        # rest-api.md, newClientOrderId: "A unique id among open orders."
        if any(o.client_order_id == client_order_id and o.is_open for o in self.orders):
            raise _rejected("Duplicate order sent.")
        self._check_funds(rules, side, order_type, quantity, price, book)
        if stop_price is not None and _stop_reached(side, stop_price, book.last):
            raise _rejected("Order would trigger immediately.")
        now = self._now()
        order = Order(
            order_id=next(self._ids),
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,  # type: ignore[arg-type]
            type=order_type,  # type: ignore[arg-type]
            price=price,
            orig_qty=quantity,
            time=now,
            update_time=now,
            stop_price=stop_price,
        )
        self.orders.append(order)
        first_trade = len(self.trades)
        if order_type == "MARKET":
            self._fill(order, quantity, book.ask if side == "BUY" else book.bid, maker=False)
        else:
            self._lock_funds(rules, order)
            if order.is_working:
                self._enter_book(order, book)
        answer: dict[str, Any] = {
            "symbol": symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "transactTime": now,
        }
        if response_type == "ACK":
            return answer
        answer.update(self._order_fields(order, with_time=False))
        answer["workingTime"] = order.working_time
        if response_type == "FULL":
            answer["fills"] = [
                {
                    "price": _fmt(t.price),
                    "qty": _fmt(t.qty),
                    "commission": _fmt(t.commission),
                    "commissionAsset": t.commission_asset,
                    "tradeId": t.trade_id,
                }
                for t in self.trades[first_trade:]
            ]
        return answer

    def _enter_book(self, order: Order, book: Book) -> None:
        """Put a LIMIT (or a triggered stop's limit) on the book: marketable, it takes the touch at once."""
        rules = self.rules[order.symbol]
        marketable = order.price >= book.ask if order.side == "BUY" else order.price <= book.bid
        if marketable:
            fraction = self._partial.pop(0) if self._partial else Decimal(1)
            qty = (order.remaining * fraction).quantize(rules.step_size, ROUND_DOWN)
            if qty > 0:
                self._fill(order, qty, book.ask if order.side == "BUY" else book.bid, maker=False)

    def _check_filters(
        self, rules: SymbolRules, order_type: str, quantity: Decimal, price: Decimal, stop_price: Decimal | None = None
    ) -> None:
        """Apply the symbol's filters (filters.md) in the order they are listed."""
        limit = order_type != "MARKET"
        # PRICE_FILTER: "minPrice defines the minimum price/stopPrice allowed", and so for maxPrice and tickSize.
        for checked in (price, stop_price) if limit else ():
            if checked is not None and (
                checked < rules.min_price or checked > rules.max_price or checked % rules.tick_size
            ):
                raise _filter_failure("PRICE_FILTER")
        if quantity < rules.min_qty or quantity > rules.max_qty or quantity % rules.step_size:
            raise _filter_failure("LOT_SIZE")
        notional = price * quantity
        # Both filters apply to MARKET orders here (applyMinToMarket / applyToMarket true), at the last price.
        if rules.notional_filter == "NOTIONAL" and notional < rules.min_notional:
            raise _filter_failure("NOTIONAL")
        if rules.notional_filter == "NOTIONAL" and limit and notional > rules.max_notional:
            raise _filter_failure("NOTIONAL")  # applyMaxToMarket is false
        if rules.notional_filter == "MIN_NOTIONAL" and notional < rules.min_notional:
            raise _filter_failure("MIN_NOTIONAL")
        if order_type == "MARKET" and (quantity > rules.market_max_qty or quantity % rules.step_size):
            raise _filter_failure("MARKET_LOT_SIZE")

    def _check_funds(
        self, rules: SymbolRules, side: str, order_type: str, quantity: Decimal, price: Decimal, book: Book
    ) -> None:
        if side == "BUY":
            needed, asset = quantity * (book.ask if order_type == "MARKET" else price), rules.quote
        else:
            needed, asset = quantity, rules.base
        if self.balances.get(asset, Balance()).free < needed:
            raise _rejected("Account has insufficient balance for requested action.")

    def _lock_funds(self, rules: SymbolRules, order: Order) -> None:
        asset, amount = (
            (rules.quote, order.orig_qty * order.price) if order.side == "BUY" else (rules.base, order.orig_qty)
        )
        balance = self.balances.setdefault(asset, Balance())
        balance.free -= amount
        balance.locked += amount
        order.locked = amount

    def _fill(self, order: Order, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        """Trade ``qty`` of an order at ``price`` and settle both legs, commission from what is received."""
        rules = self.rules[order.symbol]
        base = self.balances.setdefault(rules.base, Balance())
        quote = self.balances.setdefault(rules.quote, Balance())
        quote_qty = qty * price
        rate = self.rates.maker if maker else self.rates.taker
        if order.side == "BUY":
            # commission_faq.md: "For orders on the BUY side, the received amount would be quantity."
            commission = (qty * (rate + self.rates.buyer)).quantize(EIGHT_PLACES, ROUND_DOWN)
            commission_asset = rules.base
            if order.type != "MARKET":
                release = qty * order.price  # what this part locked at the limit; a better price refunds the rest
                order.locked -= release
                quote.locked -= release
                quote.free += release - quote_qty
            else:
                quote.free -= quote_qty
            base.free += qty - commission
        else:
            # "Since this order is on the SELL side, the received amount is the notional value."
            commission = (quote_qty * (rate + self.rates.seller)).quantize(EIGHT_PLACES, ROUND_DOWN)
            commission_asset = rules.quote
            if order.type != "MARKET":
                order.locked -= qty
                base.locked -= qty
            else:
                base.free -= qty
            quote.free += quote_qty - commission
        order.executed_qty += qty
        order.cumulative_quote_qty += quote_qty
        order.status = "FILLED" if order.remaining == 0 else "PARTIALLY_FILLED"
        order.update_time = self._now()
        self.trades.append(
            Trade(
                trade_id=next(self._trade_ids),
                order_id=order.order_id,
                symbol=order.symbol,
                price=price,
                qty=qty,
                commission=commission,
                commission_asset=commission_asset,
                time=order.update_time,
                is_buyer=order.side == "BUY",
                is_maker=maker,
            )
        )

    def _query_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GET /api/v3/order (rest-api.md, Query order): the order's state, and no commission."""
        order = self._find(params, unknown=lambda: _bad_request(-2013, "Order does not exist."))
        return self._order_fields(order, with_time=True)

    def _cancel_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        """DELETE /api/v3/order (rest-api.md, Cancel order); an order no longer open is unknown to it (-2011)."""
        order = self._find(params, unknown=lambda: _bad_request(-2011, "Unknown order sent."))
        if not order.is_open:
            raise _bad_request(-2011, "Unknown order sent.")
        rules = self.rules[order.symbol]
        asset = rules.quote if order.side == "BUY" else rules.base
        balance = self.balances[asset]
        balance.locked -= order.locked
        balance.free += order.locked
        order.locked = ZERO
        order.status = "CANCELED"
        order.update_time = self._now()
        answer: dict[str, Any] = {"origClientOrderId": order.client_order_id, "transactTime": order.update_time}
        answer.update(self._order_fields(order, with_time=False))
        # The cancel's response names the cancel itself by clientOrderId ("Used to uniquely identify this cancel").
        answer["clientOrderId"] = params.get("newClientOrderId") or f"cancel{next(self._ids)}"
        return answer

    def _find(self, params: Mapping[str, str], *, unknown: Callable[[], BinanceError]) -> Order:
        symbol = _required(params, "symbol")
        self._rules(symbol)
        order_id, client_id = params.get("orderId"), params.get("origClientOrderId")
        if not order_id and not client_id:
            raise _bad_request(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        candidates = [o for o in self.orders if o.symbol == symbol]
        if order_id:
            found = next((o for o in candidates if str(o.order_id) == order_id), None)
            # "If both orderId and origClientOrderId are provided, the orderId is searched first, then the
            # origClientOrderId from that result is checked against that order."
            if found is None or (client_id and found.client_order_id != client_id):
                raise unknown()
            return found
        # A client id may have been reused once its earlier order closed: the latest order holds it.
        found = next((o for o in reversed(candidates) if o.client_order_id == client_id), None)
        if found is None:
            raise unknown()
        return found

    def _open_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        symbol = params.get("symbol")
        if symbol:
            self._rules(symbol)
        return [self._order_fields(o, with_time=True) for o in self.orders if o.is_open and symbol in (None, o.symbol)]

    def _all_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        symbol = _required(params, "symbol")
        self._rules(symbol)
        orders = [o for o in self.orders if o.symbol == symbol]
        if params.get("orderId"):
            # "If orderId is set, it will get orders >= that orderId. Otherwise most recent orders are returned."
            orders = [o for o in orders if o.order_id >= _integer(params, "orderId")]
            return [self._order_fields(o, with_time=True) for o in orders[: _limit(params)]]
        return [self._order_fields(o, with_time=True) for o in orders[-_limit(params) :]]

    def _my_trades(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """GET /api/v3/myTrades (rest-api.md, Account trade list): the fills, with their commission."""
        symbol = _required(params, "symbol")
        self._rules(symbol)
        trades = [t for t in self.trades if t.symbol == symbol]
        if params.get("orderId"):
            trades = [t for t in trades if t.order_id == _integer(params, "orderId")]
        if params.get("fromId"):
            trades = [t for t in trades if t.trade_id >= _integer(params, "fromId")]
            trades = trades[: _limit(params)]
        else:
            trades = trades[-_limit(params) :]
        return [
            {
                "symbol": t.symbol,
                "id": t.trade_id,
                "orderId": t.order_id,
                "orderListId": -1,
                "price": _fmt(t.price),
                "qty": _fmt(t.qty),
                "quoteQty": _fmt(t.qty * t.price),
                "commission": _fmt(t.commission),
                "commissionAsset": t.commission_asset,
                "time": t.time,
                "isBuyer": t.is_buyer,
                "isMaker": t.is_maker,
                "isBestMatch": True,
            }
            for t in trades
        ]

    @staticmethod
    def _order_fields(order: Order, *, with_time: bool) -> dict[str, Any]:
        """Return an order as Query order shows it (rest-api.md); no commission field exists in it."""
        fields: dict[str, Any] = {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "price": _fmt(order.price),
            "origQty": _fmt(order.orig_qty),
            "executedQty": _fmt(order.executed_qty),
            "origQuoteOrderQty": _fmt(ZERO),
            "cummulativeQuoteQty": _fmt(order.cumulative_quote_qty),
            "status": order.status,
            "timeInForce": "GTC",
            "type": order.type,
            "side": order.side,
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }
        if order.stop_price is not None:
            # rest-api.md, Conditional fields in Order Responses: stopPrice "Appears for ... STOP_LOSS_LIMIT".
            fields["stopPrice"] = _fmt(order.stop_price)
        if with_time:
            fields.update(
                {
                    "stopPrice": _fmt(order.stop_price or ZERO),
                    "icebergQty": _fmt(ZERO),
                    "time": order.time,
                    "updateTime": order.update_time,
                    "isWorking": order.is_working,
                    "workingTime": order.working_time,
                }
            )
        return fields

    # ----------------------------------------------------------------- lookups

    def _assets(self) -> list[str]:
        listed = {r.base for r in self.rules.values()} | {r.quote for r in self.rules.values()}
        return sorted(listed | set(self.balances))

    def _rules(self, symbol: str) -> SymbolRules:
        rules = self.rules.get(symbol)
        if rules is None:
            raise _bad_request(-1121, "Invalid symbol.")
        return rules

    def _book(self, symbol: str) -> Book:
        book = self.books.get(symbol)
        if book is None:
            raise AssertionError(f"the test set no price for {symbol}: call set_price first")
        return book


# --------------------------------------------------------------------------- request parsing


def _params(request: Request) -> dict[str, str]:
    """Merge body and query parameters; "the query string parameter will be used" when both have one (rest-api.md)."""
    params = dict(parse_qsl(request.body.decode(), keep_blank_values=True)) if request.body else {}
    params.update(parse_qsl(request.query, keep_blank_values=True))
    return params


def _signature_payload(request: Request) -> tuple[str, str | None]:
    """Split the signed payload (query string + body, the ``signature`` parameter taken out) from the signature."""
    signature: str | None = None
    parts = []
    for raw in (request.query, request.body.decode()):
        kept = []
        for pair in raw.split("&") if raw else []:
            name, _, value = pair.partition("=")
            if name == "signature":
                signature = value
            else:
                kept.append(pair)
        parts.append("&".join(kept))
    return "".join(parts), signature


def _stop_reached(side: str, stop_price: Decimal, last: Decimal) -> bool:
    """Say whether a trade at ``last`` meets a stop (faqs/trailing-stop-faq.md: SELL "market price <= stop price")."""
    return last <= stop_price if side == "SELL" else last >= stop_price


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise _mandatory(name)
    return value


def _decimal(params: Mapping[str, str], name: str) -> Decimal:
    text = _required(params, name)
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise _mandatory(name) from None
    if not value.is_finite() or value <= 0:
        raise _mandatory(name)
    return value


def _integer(params: Mapping[str, str], name: str) -> int:
    text = _required(params, name)
    if not text.isdigit():
        raise _mandatory(name)
    return int(text)


def _limit(params: Mapping[str, str]) -> int:
    # rest-api.md, allOrders / myTrades: "Default: 500; Maximum: 1000."
    return min(int(params["limit"]), 1000) if params.get("limit", "").isdigit() else 500


def ccxt_options(url: str, *, timeout_ms: int = 1500) -> dict[str, Any]:
    """Return the ``CcxtExchange`` options that point ccxt's binance class at an emulator at ``url``.

    Every API family ccxt knows is pointed here, so a call the emulator does not serve is a
    404 on 127.0.0.1 rather than a request to the real venue.
    """
    families = {
        "public": "/api/v3",
        "private": "/api/v3",
        "v1": "/api/v1",
        "sapi": "/sapi/v1",
        "sapiV2": "/sapi/v2",
        "sapiV3": "/sapi/v3",
        "sapiV4": "/sapi/v4",
    }
    for name in (
        "dapiPublic",
        "dapiPrivate",
        "dapiPrivateV2",
        "dapiData",
        "eapiPublic",
        "eapiPrivate",
        "fapiPublic",
        "fapiPublicV2",
        "fapiPublicV3",
        "fapiPrivate",
        "fapiPrivateV2",
        "fapiPrivateV3",
        "fapiData",
        "papi",
        "papiV2",
    ):
        families[name] = f"/unserved/{name}"
    return {
        "urls": {"api": {name: url + path for name, path in families.items()}},
        "timeout": timeout_ms,
        # ccxt's own throttle spaces requests by endpoint weight (an account read waits about a second); the
        # emulator counts no weight, so the waits would change no outcome and only slow the lane down.
        "enableRateLimit": False,
    }
