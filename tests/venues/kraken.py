"""Kraken spot REST, emulated from Kraken's documentation: the lane's USD venue.

Why Kraken (and not Coinbase Advanced Trade) as the USD venue: of the two it is the
one that differs from Binance on the most axes a trading bot depends on, so it catches
what a Binance-shaped adapter takes for granted:

* errors come in a JSON ``error`` array of strings with HTTP 200, rate limits included
  (``EAPI:Rate limit exceeded``, ``EOrder:Rate limit exceeded``), not as HTTP 4xx codes
  and 429/418 (Coinbase uses HTTP statuses like Binance);
* authentication is a strictly increasing nonce per key and ``API-Sign`` =
  HMAC-SHA512 over the URI path and SHA256(nonce + POST body), not a timestamp
  window (Binance ``recvWindow``, Coinbase JWT);
* orders are found by their ``txid`` alone, without a symbol (``QueryOrders``,
  ``OpenOrders``, ``ClosedOrders``); ``AddOrder`` answers only the txid and a
  one-line description, never the order's state;
* the fee is on the order itself (``fee``, in the quote currency) instead of only in
  the trades as on Binance;
* client ids are a ``cl_ord_id`` of a restricted format (a UUID, or free text of at
  most 18 characters) unique only among *open* orders, or a numeric ``userref``;
* minimums are ``ordermin`` (base) and ``costmin`` (quote) per pair, and assets have
  X/Z-prefixed ids (``XXBT``, ``ZUSD``) that ccxt renames (``BTC``, ``USD``).

Sources, cited where each behaviour is modelled:

* [spec] Kraken's OpenAPI spec of the spot REST API, github.com/krakenfx/api-specs,
  ``spot-rest/`` (commit 86715cf, 2025-09-05): request and response shapes, the
  ``cl_ord_id`` formats, ``oflags``, the 50-result pages of ``ClosedOrders`` and
  ``TradesHistory``.
* [errors] docs.kraken.com/api/docs/guides/spot-errors and
  support.kraken.com/hc/en-us/articles/360001491786 (API error messages).
* [auth] docs.kraken.com/api/docs/guides/spot-rest-auth (the ``API-Sign`` algorithm).
* [clordid] docs.kraken.com/api/docs/guides/spot-clordid.
* [ccxt] ccxt 4.5.90 ``ccxt/kraken.py``: what the real client sends and parses, and the
  error strings it maps (its ``exceptions`` table records strings Kraken answers but
  does not document, such as ``EGeneral:Invalid arguments:price``).

Where the documents are silent the emulator says so and picks the plainest reading.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import random
import string
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final, Literal

from crypto_bot.adapters.ccxt.exchange import CcxtExchange
from crypto_bot.engine.retry import RetryPolicy
from tests.venues.http import Handler, Request, Response, VenueServer

ZERO: Final = Decimal(0)
HUNDRED: Final = Decimal(100)

# Every route the emulator serves, by Kraken's method name ([spec] paths).
TIME = "GET /0/public/Time"
ASSETS = "GET /0/public/Assets"
ASSET_PAIRS = "GET /0/public/AssetPairs"
TICKER = "GET /0/public/Ticker"
BALANCE = "POST /0/private/Balance"
BALANCE_EX = "POST /0/private/BalanceEx"
ADD_ORDER = "POST /0/private/AddOrder"
CANCEL_ORDER = "POST /0/private/CancelOrder"
QUERY_ORDERS = "POST /0/private/QueryOrders"
OPEN_ORDERS = "POST /0/private/OpenOrders"
CLOSED_ORDERS = "POST /0/private/ClosedOrders"
QUERY_TRADES = "POST /0/private/QueryTrades"
TRADES_HISTORY = "POST /0/private/TradesHistory"

PAGE_SIZE: Final = (
    50  # [spec] ClosedOrders, TradesHistory: "50 results are returned at a time, the most recent by default"
)
MAX_TXIDS: Final = 20  # [spec] QueryOrders, QueryTrades: "20 maximum"
FREE_TEXT_CL_ORD_ID: Final = 18  # [spec] AddOrder cl_ord_id: "Free format ascii text up to 18 characters"
INT32: Final = range(-(2**31), 2**31)  # [spec] AddOrder userref: "type: integer, format: int32"

DEFAULT_API_KEY: Final = "emulated-kraken-key"
# Kraken hands out the private key base64-encoded and signs with its decoded bytes [auth].
DEFAULT_SECRET: Final = base64.b64encode(hashlib.sha512(b"emulated kraken secret").digest()).decode()


def error(message: str) -> Response:
    """Answer a Kraken error as Kraken does: HTTP 200, the message in the ``error`` array [errors]."""
    return Response(200, {"error": [message]})


def gateway_error(status: int = 502) -> Response:
    """Answer as the network edge in front of Kraken does when the API behind it fails: an HTML page.

    Kraken's API error article [errors] lists Cloudflare (networking) errors separately from its own
    ``E...`` strings; whether the order reached the matching engine is then unknown.
    """
    page = f"<html><head><title>{status}</title></head><body>{status} error</body></html>"
    return Response(status, page.encode(), headers={})


# Faults a test arms with VenueServer.arm; each is what Kraken documents for the case [errors].
API_RATE_LIMITED: Final = error("EAPI:Rate limit exceeded")  # the private-call counter
ORDER_RATE_LIMITED: Final = error("EOrder:Rate limit exceeded")  # the separate add/cancel counter
SERVICE_UNAVAILABLE: Final = error("EService:Unavailable")  # "the matching engine or API is offline"
SERVICE_BUSY: Final = error("EService:Busy")
INTERNAL_ERROR: Final = error("EGeneral:Internal error")


class KrakenError(Exception):
    """A request Kraken refuses; the message is the string it puts in ``error``."""


# --------------------------------------------------------------------------- reference data


@dataclass(frozen=True)
class Asset:
    """One entry of ``GET /0/public/Assets`` [spec schemas/objects/public/assets/info.yaml]."""

    id: str  # Kraken's asset id: XXBT, ZUSD
    altname: str  # XBT, USD
    code: str  # what ccxt calls it (kraken.py commonCurrencies: XBT -> BTC), as the bot's ledger does
    decimals: int  # "decimal places for record keeping amounts of this asset"
    display_decimals: int

    def to_json(self) -> dict[str, Any]:
        return {
            "aclass": "currency",
            "altname": self.altname,
            "decimals": self.decimals,
            "display_decimals": self.display_decimals,
            "status": "enabled",
        }


@dataclass(frozen=True)
class Pair:
    """One entry of ``GET /0/public/AssetPairs`` [spec schemas/objects/public/assets/pairs.yaml]."""

    id: str
    altname: str
    wsname: str
    base: Asset
    quote: Asset
    pair_decimals: int  # price decimals; ccxt takes the price precision from it
    lot_decimals: int  # volume decimals; ccxt takes the amount precision from it
    cost_decimals: int  # decimals of costs and fees as reported
    ordermin: Decimal  # minimum volume, base asset
    costmin: Decimal  # minimum cost, quote asset
    tick_size: Decimal
    taker_fees: tuple[tuple[int, Decimal], ...]  # ``fees``: [volume, percent] tiers
    maker_fees: tuple[tuple[int, Decimal], ...]  # ``fees_maker``
    status: str = "online"

    @property
    def taker_rate(self) -> Decimal:
        """The fee of the first volume tier (an account with no 30-day volume), as a fraction."""
        return self.taker_fees[0][1] / HUNDRED

    @property
    def maker_rate(self) -> Decimal:
        return self.maker_fees[0][1] / HUNDRED

    def to_json(self) -> dict[str, Any]:
        return {
            "altname": self.altname,
            "wsname": self.wsname,
            "aclass_base": "currency",
            "base": self.base.id,
            "aclass_quote": "currency",
            "quote": self.quote.id,
            "lot": "unit",
            "cost_decimals": self.cost_decimals,
            "pair_decimals": self.pair_decimals,
            "lot_decimals": self.lot_decimals,
            "lot_multiplier": 1,
            "leverage_buy": [2, 3, 4, 5],
            "leverage_sell": [2, 3, 4, 5],
            "fees": [[volume, float(rate)] for volume, rate in self.taker_fees],
            "fees_maker": [[volume, float(rate)] for volume, rate in self.maker_fees],
            "fee_volume_currency": "ZUSD",
            "margin_call": 80,
            "margin_stop": 40,
            "ordermin": str(self.ordermin),
            "costmin": str(self.costmin),
            "tick_size": str(self.tick_size),
            "status": self.status,
        }

    def price_text(self, price: Decimal) -> str:
        return f"{price:.{self.pair_decimals}f}"

    def volume_text(self, volume: Decimal) -> str:
        return f"{volume:.{self.lot_decimals}f}"

    def cost_text(self, cost: Decimal) -> str:
        return f"{cost:.{self.cost_decimals}f}"


XBT: Final = Asset("XXBT", "XBT", "BTC", decimals=10, display_decimals=5)
USD: Final = Asset("ZUSD", "USD", "USD", decimals=4, display_decimals=2)
# [spec] examples/responses/public/assets/pairs.yaml, entry XXBTZUSD, with its fee schedule.
XBTUSD: Final = Pair(
    id="XXBTZUSD",
    altname="XBTUSD",
    wsname="XBT/USD",
    base=XBT,
    quote=USD,
    pair_decimals=1,
    lot_decimals=8,
    cost_decimals=5,
    ordermin=Decimal("0.0001"),
    costmin=Decimal("0.5"),
    tick_size=Decimal("0.1"),
    taker_fees=tuple(
        (v, Decimal(p))
        for v, p in (
            (0, "0.26"),
            (50000, "0.24"),
            (100000, "0.22"),
            (250000, "0.2"),
            (500000, "0.18"),
            (1000000, "0.16"),
            (2500000, "0.14"),
            (5000000, "0.12"),
            (10000000, "0.1"),
        )
    ),
    maker_fees=tuple(
        (v, Decimal(p))
        for v, p in (
            (0, "0.16"),
            (50000, "0.14"),
            (100000, "0.12"),
            (250000, "0.1"),
            (500000, "0.08"),
            (1000000, "0.06"),
            (2500000, "0.04"),
            (5000000, "0.02"),
            (10000000, "0"),
        )
    ),
)


# --------------------------------------------------------------------------- orders and trades


Side = Literal["buy", "sell"]
OrderType = Literal["limit", "market"]
_SIDES: Final[Mapping[str, Side]] = {"buy": "buy", "sell": "sell"}
_ORDER_TYPES: Final[Mapping[str, OrderType]] = {"limit": "limit", "market": "market"}


@dataclass
class Trade:
    """One fill, as ``QueryTrades`` and ``TradesHistory`` report it [spec schemas/objects/user/trades/trade.yaml]."""

    txid: str
    order_txid: str
    pair: Pair
    time: float
    side: Side
    ordertype: OrderType
    price: Decimal
    vol: Decimal
    cost: Decimal
    fee: Decimal
    maker: bool
    trade_id: int

    def to_json(self) -> dict[str, Any]:
        pair = self.pair
        return {
            "ordertxid": self.order_txid,
            "postxid": "TKH2SE-M7IF5-CFI7LT",  # a position id; spot trades open none, the field is always there
            "pair": pair.id,
            "time": self.time,
            "type": self.side,
            "ordertype": self.ordertype,
            "price": pair.cost_text(self.price),
            "cost": pair.cost_text(self.cost),
            "fee": pair.cost_text(self.fee),  # [spec] trade.fee: "Total fee (quote currency)"
            "vol": pair.volume_text(self.vol),
            "margin": pair.cost_text(ZERO),
            "leverage": "0",
            "misc": "",
            "trade_id": self.trade_id,
            "maker": self.maker,
        }


@dataclass
class Order:
    """One order and what happened to it [spec schemas/objects/user/orders/closed.yaml]."""

    txid: str
    pair: Pair
    side: Side
    ordertype: OrderType
    vol: Decimal
    limit: Decimal | None  # None for a market order
    cl_ord_id: str | None
    userref: int | None
    oflags: str
    opentm: float
    status: Literal["open", "closed", "canceled"] = "open"
    vol_exec: Decimal = ZERO
    cost: Decimal = ZERO
    fee: Decimal = ZERO
    closetm: float | None = None
    reason: str | None = None
    trade_ids: list[str] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.vol - self.vol_exec

    def held(self) -> tuple[Asset, Decimal]:
        """What the rest of this order keeps on hold (``BalanceEx`` ``hold_trade``).

        Kraken documents ``hold_trade`` only as the "total held amount"; a buy is taken to hold its
        cost at its limit plus the taker fee on it (the most it can be charged), a sell its volume.
        """
        if self.status != "open":
            return self.pair.base, ZERO
        if self.side == "sell":
            return self.pair.base, self.remaining
        assert self.limit is not None  # a market order never rests
        return self.pair.quote, self.remaining * self.limit * (1 + self.pair.taker_rate)

    def description(self) -> str:
        """The one-line ``descr.order`` Kraken writes ([spec] AddOrder example "buy 1.45 XBTUSD @ limit 27500.0")."""
        pair = self.pair
        where = "market" if self.limit is None else f"limit {pair.price_text(self.limit)}"
        return f"{self.side} {pair.volume_text(self.vol)} {pair.altname} @ {where}"

    def to_json(self, *, trades: bool) -> dict[str, Any]:
        pair = self.pair
        average = (self.cost / self.vol_exec) if self.vol_exec else ZERO
        entry: dict[str, Any] = {
            "refid": None,
            "userref": self.userref,
            "cl_ord_id": self.cl_ord_id,
            "status": self.status,
            "opentm": self.opentm,
            "starttm": 0,
            "expiretm": 0,
            "descr": {
                "pair": pair.altname,
                "type": self.side,
                "ordertype": self.ordertype,
                "price": "0" if self.limit is None else pair.price_text(self.limit),
                "price2": "0",
                "leverage": "none",
                "order": self.description(),
                "close": "",
            },
            "vol": pair.volume_text(self.vol),
            "vol_exec": pair.volume_text(self.vol_exec),
            "cost": pair.cost_text(self.cost),
            # [spec] order.fee: "Total fee (quote currency)". The oflags description says fcib (fee in base) is
            # the default when selling, but the fee field of orders and trades is documented in the quote, and
            # Kraken's own example orders and the answers ccxt records (kraken.py parse_order, fetch_order) report
            # "fciq" on unflagged sells too: the fee is charged and reported in the quote.
            "fee": pair.cost_text(self.fee),
            "price": pair.cost_text(average.quantize(Decimal(1).scaleb(-pair.cost_decimals), ROUND_HALF_UP)),
            "stopprice": pair.cost_text(ZERO),
            "limitprice": pair.cost_text(ZERO),
            "misc": "partial" if self.vol_exec and self.remaining else "",
            "oflags": self.oflags,
        }
        if self.status != "open":
            entry["closetm"] = self.closetm
            entry["reason"] = self.reason
        if trades and self.trade_ids:
            entry["trades"] = list(self.trade_ids)
        return entry


def _valid_cl_ord_id(value: str) -> bool:
    """Say whether a ``cl_ord_id`` has one of the three documented formats [spec AddOrder]."""
    hexdigits = set(string.hexdigits)
    if len(value) == 36:  # "Long UUID: 32 hex characters separated with 4 dashes"
        groups = value.split("-")
        return [len(g) for g in groups] == [8, 4, 4, 4, 12] and all(set(g) <= hexdigits for g in groups)
    if len(value) == 32 and set(value) <= hexdigits:  # "Short UUID: 32 hex characters with no dashes"
        return True
    return 0 < len(value) <= FREE_TEXT_CL_ORD_ID and value.isascii() and value.isprintable()


# --------------------------------------------------------------------------- the venue


class KrakenVenue:
    """The state of one Kraken account, served through :meth:`routes`.

    Matching: a marketable limit order fills at once at the last price, as taker; any
    other rests with its funds held until :meth:`set_price` moves the price across it, and
    then fills at its limit, as maker. A market order fills at once at the last price.
    Switches model an inconvenient book: :meth:`partial_fills` (the next marketable limit
    orders fill only a fraction and rest the rest) and ``thin_book`` (marketable limit
    orders find no counterparty and rest).
    """

    def __init__(
        self,
        balances: Mapping[str, Decimal],
        *,
        pairs: Iterable[Pair] = (XBTUSD,),
        prices: Mapping[str, Decimal] | None = None,
        api_key: str = DEFAULT_API_KEY,
        secret: str = DEFAULT_SECRET,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key = api_key
        self.secret = secret
        self.pairs: dict[str, Pair] = {p.id: p for p in pairs}
        self.assets: dict[str, Asset] = {}
        for pair in self.pairs.values():
            self.assets.setdefault(pair.base.id, pair.base)
            self.assets.setdefault(pair.quote.id, pair.quote)
        unknown = set(balances) - set(self.assets)
        if unknown:
            raise ValueError(f"balances of assets no pair trades: {sorted(unknown)}")
        self.balances: dict[str, Decimal] = {a: Decimal(balances.get(a, ZERO)) for a in self.assets}
        self.last: dict[str, Decimal] = {p.id: Decimal(60000) for p in self.pairs.values()}
        for name, price in (prices or {}).items():
            self.last[self._pair(name).id] = price
        self.orders: dict[str, Order] = {}  # by txid, in the order they were accepted
        self.trades: dict[str, Trade] = {}
        self.thin_book = False
        self._partial: list[Decimal] = []  # fill fractions of the next marketable limit orders
        self._last_nonce: dict[str, int] = {}
        self._clock = clock
        self._ids = random.Random(20240810)  # deterministic txids
        self._trade_numbers = itertools.count(68230622)
        self._lock = threading.RLock()

    # ----------------------------------------------------------------- what a test controls

    def set_price(self, pair: str, price: Decimal) -> None:
        """Move the last price; resting orders it crosses fill at their limit, as makers."""
        with self._lock:
            p = self._pair(pair)
            self.last[p.id] = price
            for order in list(self.orders.values()):
                if order.status == "open" and order.pair is p and self._crosses(order, price):
                    assert order.limit is not None
                    self._fill(order, order.remaining, order.limit, maker=True)

    def partial_fills(self, fraction: Decimal, *, orders: int = 1) -> None:
        """Make the next ``orders`` marketable limit orders fill only ``fraction`` at once; the rest rests."""
        if not ZERO < fraction < 1:
            raise ValueError(f"a partial fill is a fraction strictly between 0 and 1, got {fraction}")
        self._partial.extend([fraction] * orders)

    # ----------------------------------------------------------------- what the invariants read

    def total_balances(self) -> dict[str, Decimal]:
        """Return each asset's balance, held funds included, by the code ccxt and the bot use (BTC, USD)."""
        with self._lock:
            return {self.assets[a].code: amount for a, amount in self.balances.items()}

    def placed_client_order_ids(self) -> list[str | None]:
        """Return the ``cl_ord_id`` of every order accepted, one entry per order."""
        with self._lock:
            return [o.cl_ord_id for o in self.orders.values()]

    def open_client_order_ids(self) -> list[str | None]:
        with self._lock:
            return [o.cl_ord_id for o in self.orders.values() if o.status == "open"]

    def held(self, asset: str) -> Decimal:
        """Return what open orders hold of an asset (by Kraken id), as ``hold_trade`` reports it."""
        with self._lock:
            return sum((amount for o in self.orders.values() for a, amount in [o.held()] if a.id == asset), ZERO)

    # ----------------------------------------------------------------- HTTP

    def routes(self) -> dict[str, Handler]:
        """Return the emulator's routes for :class:`tests.venues.http.VenueServer`."""
        public: dict[str, Callable[[Mapping[str, str]], Any]] = {
            TIME: self._time,
            ASSETS: self._assets,
            ASSET_PAIRS: self._asset_pairs,
            TICKER: self._ticker,
        }
        private: dict[str, Callable[[Mapping[str, str]], Any]] = {
            BALANCE: self._balance,
            BALANCE_EX: self._balance_ex,
            ADD_ORDER: self._add_order,
            CANCEL_ORDER: self._cancel_order,
            QUERY_ORDERS: self._query_orders,
            OPEN_ORDERS: self._open_orders,
            CLOSED_ORDERS: self._closed_orders,
            QUERY_TRADES: self._query_trades,
            TRADES_HISTORY: self._trades_history,
        }
        routes: dict[str, Handler] = {route: self._serve_public(fn) for route, fn in public.items()}
        routes.update({route: self._serve_private(fn) for route, fn in private.items()})
        return routes

    def _serve_public(self, fn: Callable[[Mapping[str, str]], Any]) -> Handler:
        def handle(request: Request) -> Response:
            with self._lock:
                try:
                    return Response(200, {"error": [], "result": fn(request.params)})
                except KrakenError as e:
                    return error(str(e))

        return handle

    def _serve_private(self, fn: Callable[[Mapping[str, str]], Any]) -> Handler:
        def handle(request: Request) -> Response:
            with self._lock:
                try:
                    self._authenticate(request)
                    return Response(200, {"error": [], "result": fn(request.params)})
                except KrakenError as e:
                    return error(str(e))

        return handle

    def _authenticate(self, request: Request) -> None:
        """Check key, signature and nonce, in that order, as [auth] describes them."""
        if request.headers.get("api-key") != self.api_key:
            raise KrakenError("EAPI:Invalid key")
        nonce_text = request.params.get("nonce", "")
        # API-Sign = base64(HMAC-SHA512(base64-decoded secret, URI path + SHA256(nonce + POST data))) [auth].
        digest = hashlib.sha256(nonce_text.encode() + request.body).digest()
        expected = base64.b64encode(
            hmac.new(base64.b64decode(self.secret), request.path.encode() + digest, hashlib.sha512).digest()
        ).decode()
        if not hmac.compare_digest(request.headers.get("api-sign", ""), expected):
            raise KrakenError("EAPI:Invalid signature")
        # "The nonce submitted is less than or equal to the last accepted nonce for this API key" [errors].
        if not nonce_text.isdigit() or int(nonce_text) <= self._last_nonce.get(self.api_key, -1):
            raise KrakenError("EAPI:Invalid nonce")
        self._last_nonce[self.api_key] = int(nonce_text)

    # ----------------------------------------------------------------- public endpoints

    def _time(self, params: Mapping[str, str]) -> dict[str, Any]:
        now = self._clock()
        return {"unixtime": int(now), "rfc1123": time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(now))}

    def _assets(self, params: Mapping[str, str]) -> dict[str, Any]:
        return {a.id: a.to_json() for a in self.assets.values()}

    def _asset_pairs(self, params: Mapping[str, str]) -> dict[str, Any]:
        wanted = [self._pair(name) for name in params["pair"].split(",")] if params.get("pair") else self.pairs.values()
        return {p.id: p.to_json() for p in wanted}

    def _ticker(self, params: Mapping[str, str]) -> dict[str, Any]:
        wanted = [self._pair(name) for name in params["pair"].split(",")] if params.get("pair") else self.pairs.values()
        result: dict[str, Any] = {}
        for p in wanted:
            last = p.cost_text(self.last[p.id])
            # [spec] examples/responses/public/ticker.yaml: a ask, b bid, c last trade, v volume, p vwap,
            # t trades, l low, h high, o open; the book here is one price deep.
            result[p.id] = {
                "a": [last, "1", "1.000"],
                "b": [last, "1", "1.000"],
                "c": [last, "0.00100000"],
                "v": ["10.00000000", "10.00000000"],
                "p": [last, last],
                "t": [10, 10],
                "l": [last, last],
                "h": [last, last],
                "o": last,
            }
        return result

    # ----------------------------------------------------------------- account

    def _balance(self, params: Mapping[str, str]) -> dict[str, str]:
        return {a: f"{amount:.{self.assets[a].decimals}f}" for a, amount in self.balances.items()}

    def _balance_ex(self, params: Mapping[str, str]) -> dict[str, dict[str, str]]:
        # ccxt's fetch_balance reads BalanceEx: used = hold_trade, total = balance (kraken.py parse_balance).
        return {
            a: {
                "balance": f"{amount:.{self.assets[a].decimals}f}",
                "hold_trade": f"{self.held(a):.{self.assets[a].decimals}f}",
            }
            for a, amount in self.balances.items()
        }

    # ----------------------------------------------------------------- trading

    def _add_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        pair = self._pair(params.get("pair", ""))
        side = _SIDES.get(params.get("type", ""))
        ordertype = _ORDER_TYPES.get(params.get("ordertype", ""))
        if side is None:
            raise KrakenError("EGeneral:Invalid arguments:type")
        if ordertype is None:
            # Stops, take-profits, icebergs and trailing orders exist on Kraken; the bot sends none of them.
            raise KrakenError("EGeneral:Invalid arguments:ordertype")
        volume = self._decimal(params.get("volume"), "volume")
        if volume <= 0 or volume != volume.quantize(Decimal(1).scaleb(-pair.lot_decimals), ROUND_DOWN):
            raise KrakenError("EGeneral:Invalid arguments:volume")  # [ccxt] broad ":Invalid arguments:volume"
        limit: Decimal | None = None
        if ordertype == "limit":
            limit = self._decimal(params.get("price"), "price")
            if limit <= 0 or limit % pair.tick_size:
                raise KrakenError("EGeneral:Invalid arguments:price")  # [ccxt] exact "EGeneral:Invalid arguments:price"
        cl_ord_id, userref = self._client_ids(params)
        # [spec] oflags: fcib/fciq are mutually exclusive; the bot sends none, and unflagged orders report fciq.
        oflags = params.get("oflags") or "fciq"
        if pair.status != "online":
            raise KrakenError(f"EService:Market in {pair.status} mode")
        price = limit if limit is not None else self.last[pair.id]
        if volume < pair.ordermin:
            raise KrakenError("EOrder:Order minimum not met")  # [errors] below the pair's ordermin
        if volume * price < pair.costmin:
            raise KrakenError("EOrder:Cost minimum not met")  # [errors] below the pair's costmin
        if cl_ord_id is not None and any(o.cl_ord_id == cl_ord_id and o.status == "open" for o in self.orders.values()):
            # [clordid] "Kraken verifies cl_ord_id uniqueness across open orders for each client"; the error
            # string is not documented.
            raise KrakenError("EGeneral:Invalid arguments:cl_ord_id")
        self._check_funds(pair, side, volume, price)
        order = Order(
            txid=self._txid("O"),
            pair=pair,
            side=side,
            ordertype=ordertype,
            vol=volume,
            limit=limit,
            cl_ord_id=cl_ord_id,
            userref=userref,
            oflags=oflags,
            opentm=self._clock(),
        )
        self.orders[order.txid] = order
        self._match(order)
        # [spec] AddOrder answers only the description and the txids, never the order's state.
        return {"descr": {"order": order.description()}, "txid": [order.txid]}

    def _client_ids(self, params: Mapping[str, str]) -> tuple[str | None, int | None]:
        cl_ord_id = params.get("cl_ord_id") or None
        raw_userref = params.get("userref")
        if cl_ord_id is not None and raw_userref is not None:
            # [spec] cl_ord_id and userref: "This field is mutually exclusive with" the other.
            raise KrakenError("EGeneral:Invalid arguments")
        if cl_ord_id is not None and not _valid_cl_ord_id(cl_ord_id):
            # [spec] AddOrder cl_ord_id: a long UUID, a short UUID (32 hex) or free text of up to 18 ascii
            # characters; Kraken does not document the string of this refusal.
            raise KrakenError("EGeneral:Invalid arguments:cl_ord_id")
        userref: int | None = None
        if raw_userref is not None:
            try:
                userref = int(raw_userref)
            except ValueError:
                raise KrakenError("EGeneral:Invalid arguments:userref") from None
            if userref not in INT32:
                raise KrakenError("EGeneral:Invalid arguments:userref")
        return cl_ord_id, userref

    def _check_funds(self, pair: Pair, side: Side, volume: Decimal, price: Decimal) -> None:
        if side == "buy":
            needed, asset = volume * price * (1 + pair.taker_rate), pair.quote
        else:
            needed, asset = volume, pair.base
        if self.balances[asset.id] - self.held(asset.id) < needed:
            raise KrakenError("EOrder:Insufficient funds")

    def _match(self, order: Order) -> None:
        last = self.last[order.pair.id]
        if order.limit is None:
            self._fill(order, order.vol, last, maker=False)
            return
        if self.thin_book or not self._crosses(order, last):
            return  # rests until set_price crosses it
        volume = order.vol
        if self._partial:
            step = Decimal(1).scaleb(-order.pair.lot_decimals)
            volume = (order.vol * self._partial.pop(0)).quantize(step, ROUND_DOWN)
        if volume > 0:
            self._fill(order, volume, last, maker=False)

    @staticmethod
    def _crosses(order: Order, price: Decimal) -> bool:
        assert order.limit is not None
        return price <= order.limit if order.side == "buy" else price >= order.limit

    def _fill(self, order: Order, volume: Decimal, price: Decimal, *, maker: bool) -> None:
        pair = order.pair
        # Record keeping is at the asset's decimals ([spec] Assets "decimals"); the rounding mode of costs
        # and fees is not documented, half-up is assumed. What is reported is what is booked.
        quantum = Decimal(1).scaleb(-pair.quote.decimals)
        cost = (volume * price).quantize(quantum, ROUND_HALF_UP)
        fee = (cost * (pair.maker_rate if maker else pair.taker_rate)).quantize(quantum, ROUND_HALF_UP)
        if order.side == "buy":
            self.balances[pair.quote.id] -= cost + fee
            self.balances[pair.base.id] += volume
        else:
            self.balances[pair.base.id] -= volume
            self.balances[pair.quote.id] += cost - fee
        trade = Trade(
            txid=self._txid("T"),
            order_txid=order.txid,
            pair=pair,
            time=self._clock(),
            side=order.side,
            ordertype=order.ordertype,
            price=price,
            vol=volume,
            cost=cost,
            fee=fee,
            maker=maker,
            trade_id=next(self._trade_numbers),
        )
        self.trades[trade.txid] = trade
        order.trade_ids.append(trade.txid)
        order.vol_exec += volume
        order.cost += cost
        order.fee += fee
        if order.remaining == 0:
            order.status, order.closetm = "closed", self._clock()

    def _cancel_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        # [spec] CancelOrder: txid is a Kraken order id or a userref; or cl_ord_id.
        if params.get("cl_ord_id"):
            targets = [o for o in self.orders.values() if o.cl_ord_id == params["cl_ord_id"]]
        elif params.get("txid"):
            txid = params["txid"]
            targets = [o for o in self.orders.values() if o.txid == txid or str(o.userref) == txid]
        else:
            raise KrakenError("EGeneral:Invalid arguments")
        targets = [o for o in targets if o.status == "open"]
        if not targets:
            # Cancelling an order that is closed or unknown answers EOrder:Unknown order; ccxt's cancel_order
            # turns that string into OrderNotFound ([ccxt] kraken.py cancel_order).
            raise KrakenError("EOrder:Unknown order")
        for order in targets:
            order.status, order.closetm, order.reason = "canceled", self._clock(), "User requested"
        return {"count": len(targets)}

    # ----------------------------------------------------------------- order and trade queries

    def _query_orders(self, params: Mapping[str, str]) -> dict[str, Any]:
        txids = [t for t in params.get("txid", "").split(",") if t]
        if not txids or len(txids) > MAX_TXIDS:
            raise KrakenError("EGeneral:Invalid arguments")
        unknown = [t for t in txids if t not in self.orders]
        if unknown:
            # Not documented for an unknown txid; Kraken answers EOrder:Invalid order ([ccxt] broad
            # ":Invalid order"), which ccxt raises as InvalidOrder.
            raise KrakenError("EOrder:Invalid order")
        orders = [self.orders[t] for t in txids]
        userref = params.get("userref")
        if userref is not None:
            orders = [o for o in orders if str(o.userref) == userref]
        trades = _flag(params.get("trades"))
        return {o.txid: o.to_json(trades=trades) for o in orders}

    def _selected(self, params: Mapping[str, str], orders: Iterable[Order]) -> list[Order]:
        """Apply the documented ``userref`` and ``cl_ord_id`` filters of OpenOrders and ClosedOrders [spec]."""
        selected = list(orders)
        if params.get("userref") is not None:
            selected = [o for o in selected if str(o.userref) == params["userref"]]
        if params.get("cl_ord_id"):
            selected = [o for o in selected if o.cl_ord_id == params["cl_ord_id"]]
        return selected

    def _open_orders(self, params: Mapping[str, str]) -> dict[str, Any]:
        trades = _flag(params.get("trades"))
        opened = self._selected(params, (o for o in self.orders.values() if o.status == "open"))
        return {"open": {o.txid: o.to_json(trades=trades) for o in opened}}

    def _closed_orders(self, params: Mapping[str, str]) -> dict[str, Any]:
        trades = _flag(params.get("trades"))
        closed = self._selected(params, (o for o in self.orders.values() if o.status != "open"))
        start, end = params.get("start"), params.get("end")
        if start:
            closed = [o for o in closed if (o.closetm or 0) > float(start)]
        if end:
            closed = [o for o in closed if (o.closetm or 0) <= float(end)]
        closed.sort(key=lambda o: o.closetm or 0, reverse=True)  # "the most recent by default"
        offset = int(params.get("ofs") or 0)
        page = closed[offset : offset + PAGE_SIZE]
        return {"closed": {o.txid: o.to_json(trades=trades) for o in page}, "count": len(closed)}

    def _query_trades(self, params: Mapping[str, str]) -> dict[str, Any]:
        txids = [t for t in params.get("txid", "").split(",") if t]
        if not txids or len(txids) > MAX_TXIDS or any(t not in self.trades for t in txids):
            raise KrakenError("EGeneral:Invalid arguments")
        return {t: self.trades[t].to_json() for t in txids}

    def _trades_history(self, params: Mapping[str, str]) -> dict[str, Any]:
        trades = sorted(self.trades.values(), key=lambda t: t.time, reverse=True)
        if params.get("start"):
            trades = [t for t in trades if t.time > float(params["start"])]
        if params.get("end"):
            trades = [t for t in trades if t.time <= float(params["end"])]
        offset = int(params.get("ofs") or 0)
        page = trades[offset : offset + PAGE_SIZE]
        return {"trades": {t.txid: t.to_json() for t in page}, "count": len(trades)}

    # ----------------------------------------------------------------- helpers

    def _pair(self, name: str) -> Pair:
        """Find a pair by its id or altname ([spec] AddOrder pair: "Asset pair id or altname")."""
        for pair in self.pairs.values():
            if name in (pair.id, pair.altname):
                return pair
        raise KrakenError("EQuery:Unknown asset pair")

    @staticmethod
    def _decimal(value: str | None, name: str) -> Decimal:
        try:
            number = Decimal(value or "")
        except InvalidOperation:
            raise KrakenError(f"EGeneral:Invalid arguments:{name}") from None
        if not number.is_finite():
            raise KrakenError(f"EGeneral:Invalid arguments:{name}")
        return number

    def _txid(self, prefix: str) -> str:
        # Kraken's ids look like OQCLML-BW3P3-BUCMWZ (orders) and TCCCTY-WE2O6-P3NB37 (trades).
        alphabet = string.ascii_uppercase + string.digits
        parts = ["".join(self._ids.choices(alphabet, k=n)) for n in (5, 5, 6)]
        return f"{prefix}{parts[0]}-{parts[1]}-{parts[2]}"


def _flag(value: str | None) -> bool:
    # ccxt sends Python booleans through urlencode ("trades=True"); Kraken documents a boolean.
    return (value or "").lower() == "true"


# --------------------------------------------------------------------------- the adapter under test

# Fast enough for a test, slow enough to show a retry: the adapter's own read retries.
READ_RETRY: Final = RetryPolicy(attempts=4, base_delay=0.5)


def connect(
    server: VenueServer,
    venue: KrakenVenue,
    *,
    sleep: Callable[[float], None],
    timeout_ms: int = 1500,
    api_key: str | None = None,
    secret: str | None = None,
) -> CcxtExchange:
    """Return the production adapter over ccxt's real ``kraken`` class, pointed at the emulator.

    Only the URLs, ccxt's request timeout and its client-side pacing change: ccxt paces
    Kraken's private calls ``rateLimit`` (1000 ms) x their cost (3) apart, which would
    make one cycle take minutes here; pacing is not what these tests are about.
    """
    return CcxtExchange(
        "kraken",
        api_key=api_key if api_key is not None else venue.api_key,
        secret=secret if secret is not None else venue.secret,
        options={
            "urls": {"api": {"public": server.url, "private": server.url}},
            "timeout": timeout_ms,
            "rateLimit": 1,
        },
        retry=READ_RETRY,
        sleep=sleep,
    )


def orders_by_client_id(venue: KrakenVenue) -> dict[str | None, list[Order]]:
    """Group the venue's orders by client order id (for assertions)."""
    grouped: dict[str | None, list[Order]] = {}
    for order in venue.orders.values():
        grouped.setdefault(order.cl_ord_id, []).append(order)
    return grouped


def venue_orders(venue: KrakenVenue) -> Sequence[Order]:
    """Return the venue's orders in the order they were accepted."""
    return list(venue.orders.values())
