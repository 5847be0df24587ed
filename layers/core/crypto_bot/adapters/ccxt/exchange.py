"""The ccxt adapter: real venues (Binance, Bybit, Gemini, ...) behind the :class:`~crypto_bot.engine.ports.Exchange`.

Everything ccxt-shaped stops here. ccxt hands back floats, ``None`` and its own
exception classes; this module turns them into exact Decimals (always through
``str()``, never float arithmetic), :class:`~crypto_bot.domain.orders.ExchangeOrder` and
the :mod:`crypto_bot.domain.errors` hierarchy, translated by exception class.

Venues differ in how an order can be found again; the differences live in
:data:`_LOOKUPS`, keyed by ccxt class name (subclasses such as ``binanceus``
inherit their parent's entry):

* Binance: ccxt's ``fetch_order`` turns the unified ``clientOrderId`` param into
  ``origClientOrderId`` and drops ``orderId``, so one request finds an order by
  our client id.
* Bybit: ccxt's ``fetch_order`` sends ``orderId=None`` alongside ``orderLinkId``
  and needs an ``acknowledged`` flag, so orders are looked up in the open-order
  and order-history listings, filtered server-side by ``orderId`` or
  ``orderLinkId`` (Bybit's name for the client order id).
* Gemini: ccxt's ``fetch_order`` always sends ``order_id`` and ccxt cannot list
  closed orders, so the client-id lookup posts ``client_order_id`` to the
  order-status endpoint directly.
* Kraken: ``ClosedOrders`` answers 50 orders at a time, newest first, so an
  unfiltered search misses an order once 50 newer ones have closed on the
  account; the open and closed listings are filtered server-side by
  ``cl_ord_id`` (ccxt sends the unified ``clientOrderId`` param as it).
* Any other venue: ``fetch_order`` by id, and a client-id search through the
  open and closed order listings.

Placing an order is never retried here: a timeout leaves its outcome unknown,
and only the caller can decide to look the order up by client id first.

Resting stop-limits are supported where :data:`_STOP_LIMIT_PARAMS` names the ccxt param
that makes the venue's native stop-limit and ccxt's ``features`` agree: Binance (and its
subclasses, binanceus among them), whose ccxt class sends ``type=STOP_LOSS_LIMIT``.
"""

from __future__ import annotations

import contextlib
import copy
import decimal
import functools
import importlib
import importlib.metadata
import importlib.util
import re
import sys
import time
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

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
from crypto_bot.domain.markets import Market, Side, split_symbol
from crypto_bot.domain.money import ZERO, parse_decimal
from crypto_bot.domain.orders import Balance, ExchangeOrder, Fee, OrderStatus
from crypto_bot.engine.retry import RetryPolicy, call_with_retry

DEFAULT_RETRY: Final = RetryPolicy()

# ccxt's precision modes (ccxt.base.decimal_to_precision), copied so that reading a
# market does not import ccxt; a unit test checks they still match.
DECIMAL_PLACES: Final = 2
SIGNIFICANT_DIGITS: Final = 3
TICK_SIZE: Final = 4

_EXCHANGE_ID = re.compile(r"^[a-z][a-z0-9_]*$")
# Subpackages of ccxt that look like exchange ids but are not exchanges.
_NOT_EXCHANGES: Final = frozenset(
    {"abstract", "async_support", "base", "prediction", "pro", "protobuf", "static_dependencies", "test"}
)

# Market downloads of these venues include futures and options by default: several
# extra megabytes and requests per cold start for a spot-only bot. Caller options win.
_SPOT_ONLY_DEFAULTS: Final[Mapping[str, Mapping[str, Any]]] = {
    "binance": {"options": {"fetchMarkets": {"types": ["spot"]}}},
    "bybit": {"options": {"fetchMarkets": {"types": ["spot"]}}},
}

_CCXT_SIDES: Final[Mapping[Side, str]] = {Side.BUY: "buy", Side.SELL: "sell"}
_SIDES_FROM_CCXT: Final[Mapping[str, Side]] = {"buy": Side.BUY, "sell": Side.SELL}
_STATUSES: Final[Mapping[str, OrderStatus]] = {
    "open": OrderStatus.OPEN,
    # Binance's PENDING_CANCEL: the order can still fill until the venue confirms.
    "canceling": OrderStatus.OPEN,
    "closed": OrderStatus.CLOSED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
    "expired": OrderStatus.EXPIRED,
}

# ccxt error class name → ours, by what the error means for an order (ccxt/base/errors.py holds the
# hierarchy). Three kinds:
# * refused (permanent): the venue answered and did not act — InvalidOrder, InsufficientFunds, ...;
# * transient: worth retrying; for a placement every transient error may hide an accepted order, so
#   the workflow looks the order up by client id before it sends anything again;
# * outcome unknown (transient too): OperationFailed and its BadResponse/NullResponse/CancelPending are
#   what ccxt raises for Binance's "execution status unknown" codes (-1000, -1001, -1006), and
#   DuplicateOrderId says an order with our client id already exists: look it up.
# Checked top to bottom with isinstance, so every subclass comes before its ccxt parent
# (RateLimitExceeded and DDoSProtection are siblings under NetworkError; OnMaintenance is under
# ExchangeNotAvailable; NetworkError is under OperationFailed; OrderNotFound and DuplicateOrderId are
# under InvalidOrder; everything is under BaseError).
_ERROR_MAP: Final[tuple[tuple[str, type[ExchangeError]], ...]] = (
    ("RequestTimeout", RequestTimeout),
    ("RateLimitExceeded", RateLimited),
    ("DDoSProtection", RateLimited),
    ("OnMaintenance", ExchangeUnavailable),
    ("ExchangeNotAvailable", ExchangeUnavailable),
    ("NetworkError", ExchangeNetworkError),
    ("OperationFailed", OutcomeUnknown),
    ("InsufficientFunds", InsufficientFunds),
    ("OrderNotFound", OrderNotFound),
    ("DuplicateOrderId", OutcomeUnknown),
    ("InvalidOrder", InvalidOrder),
    ("AccountSuspended", AuthenticationFailed),
    ("PermissionDenied", AuthenticationFailed),
    ("AuthenticationError", AuthenticationFailed),
    ("BadSymbol", BadSymbol),
    ("NotSupported", UnsupportedExchange),
    ("BaseError", PermanentExchangeError),
)


# --------------------------------------------------------------------------- import


def _ccxt_package() -> types.ModuleType:
    """Return the ``ccxt`` package module, registering a bare one if none is imported yet."""
    existing = sys.modules.get("ccxt")
    if existing is not None:
        return existing
    spec = importlib.util.find_spec("ccxt")
    if spec is None or spec.submodule_search_locations is None:
        raise UnsupportedExchange("the ccxt package is not installed")
    package = types.ModuleType("ccxt")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__file__ = spec.origin
    package.__package__ = "ccxt"
    sys.modules["ccxt"] = package
    return package


def load_exchange_class(exchange_id: str) -> type:
    """Import the ccxt class of one exchange, without importing every other exchange.

    ``import ccxt`` runs ``ccxt/__init__.py``, which imports all ~100 exchange modules:
    about 1.9 s of Lambda cold start, against about 0.45 s for one module. Python only
    needs the *parent package object* in ``sys.modules`` to import a submodule, so when
    ccxt is not imported yet this registers a bare package instead: an empty
    ``types.ModuleType("ccxt")`` whose ``__path__``, ``__spec__`` and ``__file__`` come
    from ccxt's real import spec. ``ccxt.<id>`` and ``ccxt.base.*`` then import from the
    installed files as usual while ``ccxt/__init__.py`` never runs.

    The bare package stays registered for the life of the process, so a later
    ``import ccxt`` elsewhere gets it too, without the top-level names (``ccxt.Exchange``,
    ``ccxt.exchanges``); import submodules (``ccxt.base.errors``) instead. If the real
    package is already imported, its attributes are used directly.

    Raise :class:`UnsupportedExchange` naming the id if it is not a ccxt exchange.
    """
    if not isinstance(exchange_id, str) or not _EXCHANGE_ID.fullmatch(exchange_id) or exchange_id in _NOT_EXCHANGES:
        raise UnsupportedExchange(
            f"{exchange_id!r} is not a ccxt exchange id (expected a lowercase id such as 'binance')"
        )
    package = _ccxt_package()
    exchange_class: object
    if hasattr(package, "exchanges"):  # the real ccxt/__init__.py has run
        if exchange_id not in package.exchanges:
            raise UnsupportedExchange(f"ccxt has no exchange {exchange_id!r}")
        exchange_class = getattr(package, exchange_id, None)
    else:
        if importlib.util.find_spec(f"ccxt.{exchange_id}") is None:
            raise UnsupportedExchange(_missing_exchange(exchange_id, package))
        module = importlib.import_module(f"ccxt.{exchange_id}")
        exchange_class = getattr(module, exchange_id, None)
    base_class = importlib.import_module("ccxt.base.exchange").Exchange
    if not (isinstance(exchange_class, type) and issubclass(exchange_class, base_class)):
        raise UnsupportedExchange(f"ccxt module {exchange_id!r} does not define an exchange class {exchange_id!r}")
    return exchange_class


def _missing_exchange(exchange_id: str, package: types.ModuleType) -> str:
    # The Lambda layer ships one exchange's module (layers/build_layer.py) but keeps ccxt's RECORD,
    # which lists every module pip installed: an id listed there is a real exchange left out of the build.
    # (RECORD is read as text: importlib.metadata.files() leaves out the files that are missing.)
    try:
        record = importlib.metadata.distribution("ccxt").read_text("RECORD") or ""
    except importlib.metadata.PackageNotFoundError:
        record = ""
    if f"\nccxt/{exchange_id}.py," not in f"\n{record}":
        return f"ccxt has no exchange {exchange_id!r}"
    shipped = sorted(
        path.stem
        for folder in package.__path__
        for path in Path(folder).glob("*.py")
        if path.stem != "__init__" and (Path(folder) / "abstract" / path.name).exists()
    )
    return (
        f"ccxt's {exchange_id!r} exchange is not in this Lambda layer, which was built for "
        f"{', '.join(shipped) or 'no exchange'}: rebuild with make build EXCHANGE={exchange_id}"
    )


@functools.cache
def _ccxt_error_classes() -> tuple[tuple[type[BaseException], type[ExchangeError]], ...]:
    _ccxt_package()  # importing ccxt.base.errors must not run ccxt/__init__.py
    errors = importlib.import_module("ccxt.base.errors")
    return tuple((getattr(errors, name), ours) for name, ours in _ERROR_MAP)


def _ccxt_base_error() -> type[BaseException]:
    return _ccxt_error_classes()[-1][0]


def translate_error(error: BaseException) -> type[ExchangeError]:
    """Return the crypto_bot error class for a ccxt exception, chosen by its class alone."""
    for ccxt_class, ours in _ccxt_error_classes():
        if isinstance(error, ccxt_class):
            return ours
    raise TypeError(f"not a ccxt error: {type(error).__name__}")


# --------------------------------------------------------------------------- conversions


def _decimal(value: Any, what: str) -> Decimal:
    """Convert a ccxt number (float, int or str) to an exact Decimal via ``str()``."""
    if value is None or isinstance(value, bool):
        raise PermanentExchangeError(f"{what}: expected a number, got {value!r}")
    try:
        return parse_decimal(str(value))
    except ValueError as e:
        raise PermanentExchangeError(f"{what}: expected a number, got {value!r}") from e


def _optional_decimal(value: Any, what: str) -> Decimal | None:
    return None if value is None else _decimal(value, what)


def _step(precision: Any, precision_mode: int, what: str) -> Decimal:
    if precision is None:
        raise PermanentExchangeError(f"{what}: ccxt market has no precision")
    if precision_mode == TICK_SIZE:
        return _decimal(precision, what)
    if precision_mode == DECIMAL_PLACES:
        places = _decimal(precision, what)
        if places != places.to_integral_value():
            raise PermanentExchangeError(f"{what}: decimal places must be whole, got {precision!r}")
        return Decimal(1).scaleb(-int(places))
    if precision_mode == SIGNIFICANT_DIGITS:
        raise UnsupportedExchange(
            f"{what}: the venue states precision in significant digits, which has no fixed step; "
            "only tick-size and decimal-places venues are supported"
        )
    raise UnsupportedExchange(f"{what}: unknown ccxt precision mode {precision_mode!r}")


def market_from_ccxt(market: Mapping[str, Any], precision_mode: int) -> Market:
    """Convert a ccxt market structure into a :class:`Market` of exact decimals.

    ``precision_mode`` is the venue's ``precisionMode``: with TICK_SIZE the precision
    is the step itself, with DECIMAL_PLACES it is a number of places (2 → 0.01).
    SIGNIFICANT_DIGITS raises :class:`UnsupportedExchange`. Missing minimums and fees
    become zero.
    """
    symbol = market.get("symbol")
    if not isinstance(symbol, str):
        raise PermanentExchangeError(f"ccxt market has no symbol: {market.get('id')!r}")
    if market.get("spot") is False:
        raise BadSymbol(f"{symbol} is not a spot market")
    base, quote = market.get("base"), market.get("quote")
    if not (isinstance(base, str) and isinstance(quote, str)):
        base, quote = split_symbol(symbol)
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    amount_limits = limits.get("amount") or {}
    cost_limits = limits.get("cost") or {}
    try:
        return Market(
            symbol=symbol,
            base=base,
            quote=quote,
            amount_step=_step(precision.get("amount"), precision_mode, f"{symbol} amount precision"),
            price_step=_step(precision.get("price"), precision_mode, f"{symbol} price precision"),
            min_amount=_optional_decimal(amount_limits.get("min"), f"{symbol} minimum amount") or ZERO,
            min_cost=_optional_decimal(cost_limits.get("min"), f"{symbol} minimum cost") or ZERO,
            maker_fee=_optional_decimal(market.get("maker"), f"{symbol} maker fee") or ZERO,
            taker_fee=_optional_decimal(market.get("taker"), f"{symbol} taker fee") or ZERO,
        )
    except ValueError as e:
        raise PermanentExchangeError(f"ccxt market {symbol} is not usable: {e}") from e


@dataclass(frozen=True)
class SentOrder:
    """What we asked for; fills the gaps of a venue's bare create-order acknowledgement."""

    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    client_order_id: str
    stop_price: Decimal | None = None


def _fees(order: Mapping[str, Any], what: str) -> tuple[Fee, ...]:
    # ccxt puts the full list in ``fees`` (reduced by currency) and usually repeats a
    # single fee in ``fee``; count a ``fee`` only when the list does not hold it already.
    raw = [f for f in (order.get("fees") or []) if f]
    single = order.get("fee")
    if single and not any(_same_fee(single, f) for f in raw):
        raw.append(single)
    fees: list[Fee] = []
    for entry in raw:
        cost = _optional_decimal(entry.get("cost"), f"{what} fee cost")
        if cost is None or cost == 0:
            continue
        currency = entry.get("currency")
        if not isinstance(currency, str) or not currency:
            raise PermanentExchangeError(f"{what}: fee of {cost} has no currency")
        fees.append(Fee(cost=cost, currency=currency))
    return tuple(fees)


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    """Read an HTTP ``Retry-After`` in seconds (RFC 9110 §10.2.3); None when absent or an HTTP date."""
    for name, value in (headers or {}).items():
        if str(name).lower() == "retry-after":
            text = str(value).strip()
            return float(text) if text.isdigit() else None
    return None


def _reports_fees(order: Mapping[str, Any]) -> bool:
    """Say whether a ccxt order structure says anything about its fees (a reported zero counts)."""
    entries = [order.get("fee"), *(order.get("fees") or [])]
    return any(isinstance(e, Mapping) and e.get("cost") is not None for e in entries)


def _same_fee(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    # Compared as numbers: ccxt may give one fee's cost as the string "1.56000" and the same fee in the list
    # as the float 1.56 (Kraken), and counting both books the fee twice.
    if a.get("currency") != b.get("currency"):
        return False
    try:
        return parse_decimal(str(a.get("cost"))) == parse_decimal(str(b.get("cost")))
    except ValueError:
        return str(a.get("cost")) == str(b.get("cost"))


def order_from_ccxt(order: Mapping[str, Any], sent: SentOrder | None = None) -> ExchangeOrder:
    """Convert a ccxt order structure into an :class:`ExchangeOrder`.

    ``sent`` is the order as placed; it fills what a venue leaves out of its
    acknowledgement (Bybit returns only the ids), and an acknowledged order with no
    status counts as open. Unknown statuses and sides raise PermanentExchangeError.
    """
    order_id = order.get("id")
    if order_id is None or order_id == "":
        raise PermanentExchangeError(f"ccxt order has no id: {order.get('clientOrderId')!r}")
    what = f"order {order_id}"

    raw_status = order.get("status")
    if raw_status is None and sent is not None:
        status = OrderStatus.OPEN
    elif isinstance(raw_status, str) and raw_status in _STATUSES:
        status = _STATUSES[raw_status]
    else:
        raise PermanentExchangeError(f"{what}: unknown order status {raw_status!r}")

    raw_side = order.get("side")
    if raw_side is None and sent is not None:
        side = sent.side
    elif isinstance(raw_side, str) and raw_side in _SIDES_FROM_CCXT:
        side = _SIDES_FROM_CCXT[raw_side]
    else:
        raise PermanentExchangeError(f"{what}: unknown order side {raw_side!r}")

    symbol = order.get("symbol") or (sent.symbol if sent is not None else None)
    if not isinstance(symbol, str):
        raise PermanentExchangeError(f"{what}: no symbol")

    amount = _optional_decimal(order.get("amount"), f"{what} amount")
    if amount is None:
        if sent is None:
            raise PermanentExchangeError(f"{what}: no amount")
        amount = sent.amount
    price = _optional_decimal(order.get("price"), f"{what} price")
    average = _optional_decimal(order.get("average"), f"{what} average price")
    if price is None:
        # A market order is sent without a price (SentOrder.price 0): its average is the better guess.
        price = sent.price if sent is not None and sent.price else average
    if price is None and sent is not None:
        price = ZERO  # a bare acknowledgement of a market order: the fills tell the price later
    if price is None:
        raise PermanentExchangeError(f"{what}: no price")

    filled = _optional_decimal(order.get("filled"), f"{what} filled") or ZERO
    cost = _optional_decimal(order.get("cost"), f"{what} cost")
    if cost is None:
        cost = filled * (average or price)

    if status is OrderStatus.CLOSED and filled < amount:
        # ccxt reports Bybit's PartiallyFilledCanceled as "closed"; for us closed means
        # fully filled, and the unfilled rest of such an order is canceled.
        status = OrderStatus.CANCELED

    client_order_id = order.get("clientOrderId") or (sent.client_order_id if sent is not None else None)
    # ccxt reads Binance's stopPrice into ``triggerPrice`` (and the deprecated ``stopPrice``), 0 as None.
    stop_price = _optional_decimal(order.get("triggerPrice") or order.get("stopPrice"), f"{what} stop price")
    if stop_price is None and sent is not None:
        stop_price = sent.stop_price
    return ExchangeOrder(
        id=str(order_id),
        client_order_id=str(client_order_id) if client_order_id else None,
        symbol=symbol,
        side=side,
        amount=amount,
        price=price,
        status=status,
        filled=filled,
        cost=cost,
        fees=_fees(order, what),
        stop_price=stop_price,
        triggered=stop_price is not None and (filled > 0 or _working(order.get("info"))),
    )


def _working(info: Any) -> bool:
    """Say whether a venue's raw order says it is on the book (a stop that has triggered).

    ccxt's order structure has no such field, so Binance's own is read: ``isWorking`` in order queries and
    listings, else ``workingTime``, which is -1 until the order is on the book (binance-spot-api-docs
    rest-api.md, "Query order" and the order list responses; faqs/spot_glossary.md, ``workingTime``: "The time
    when the order started working on the order book"). A venue that says neither reads as not triggered.
    """
    if not isinstance(info, Mapping):
        return False
    working = info.get("isWorking")
    if isinstance(working, bool):
        return working
    working_time = _optional_decimal(info.get("workingTime"), "order workingTime")
    return working_time is not None and working_time > 0


def _plain(value: Decimal) -> str:
    # ccxt parses numbers from strings; "1E-5" would go through its float paths
    return format(value, "f")


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        elif isinstance(value, Mapping):
            merged[key] = _deep_merge({}, value)
        else:
            merged[key] = value
    return merged


# --------------------------------------------------------------------------- venues


@dataclass(frozen=True)
class _OrderLookup:
    """How one venue finds an order again (see the module docstring for why)."""

    by_id: Literal["fetch_order", "listings"] = "fetch_order"
    by_client_id: Literal["fetch_order", "gemini_status", "listings"] = "listings"
    # Server-side filters for the order listings; matches are checked locally anyway.
    listing_id_param: str | None = None
    listing_client_id_param: str | None = None


_LOOKUPS: Final[Mapping[str, _OrderLookup]] = {
    "binance": _OrderLookup(by_client_id="fetch_order"),
    "bybit": _OrderLookup(by_id="listings", listing_id_param="orderId", listing_client_id_param="orderLinkId"),
    "gemini": _OrderLookup(by_client_id="gemini_status"),
    # krakenfx/api-specs spot-rest: ClosedOrders "50 results are returned at a time, the most recent by
    # default"; OpenOrders and ClosedOrders take cl_ord_id, "Restrict results to given client order id".
    "kraken": _OrderLookup(listing_client_id_param="clientOrderId"),
}


# Refusals ccxt 4.5.90 leaves unclassified (a bare ExchangeError), mapped from the venue's documented error
# strings. Without them a refused placement would count as outcome unknown and be retried. Kraken: the
# error strings of its REST reference ("Errors", krakenfx/api-specs spot-rest).
_VENUE_REFUSALS: Final[Mapping[str, tuple[tuple[str, type[ExchangeError]], ...]]] = {
    "kraken": (
        ("EOrder:Cost minimum not met", InvalidOrder),
        ("EAPI:Invalid signature", AuthenticationFailed),
        ("EQuery:Unknown asset pair", BadSymbol),
    ),
}

# Venues whose order states the exact quote cost, where ccxt's own ``cost`` is filled × a rounded average
# computed in floats (Kraken: 0.08303419 at 61000 comes out as 5065.085599964103, not 5065.0856). Kraken's
# order info has ``cost``, "total cost (quote currency)" (Kraken REST reference, QueryOrders).
_VENUE_COST_FIELDS: Final[Mapping[str, str]] = {"kraken": "cost"}

# ccxt classes that say only "the venue answered with an error", not that it refused the order.
_UNCLASSIFIED: Final = frozenset({"ExchangeError", "BaseError"})

# Venues that answer a placement whose client id is taken with a generic refusal rather than a code of its
# own: the order with that id exists, so the placement is looked up, not given up. Binance: -2010
# NEW_ORDER_REJECTED with "Duplicate order sent." (binance-spot-api-docs errors.md, "Messages for -1010
# ERROR_MSG_RECEIVED, -2010 NEW_ORDER_REJECTED, and -2011 CANCEL_REJECTED"), which ccxt raises as InvalidOrder.
_DUPLICATE_CLIENT_ID: Final[Mapping[str, tuple[str, ...]]] = {"binance": ("Duplicate order sent.",)}

# The ccxt param that turns a unified 'limit' order into the venue's resting stop-limit. Binance: ccxt 4.5.90's
# binance.py create_order_request reads ``stopLossPrice`` (falling back to ``triggerPrice``/``stopPrice``) and,
# for a spot 'limit', sends ``type=STOP_LOSS_LIMIT`` with ``stopPrice`` and ``timeInForce=GTC``
# (binance-spot-api-docs rest-api.md, New order: STOP_LOSS_LIMIT takes timeInForce, quantity, price, stopPrice).
# ``stopLossPrice`` rather than ``triggerPrice``: it says the direction (a sell triggered by a fall) where a bare
# trigger needs a triggerDirection on some venues. Only venues whose mapping a test has seen reach the venue are
# listed: ccxt's features say Kraken and Bybit take it too, but nothing here has checked what they send.
_STOP_LIMIT_PARAMS: Final[Mapping[str, str]] = {"binance": "stopLossPrice"}


def _family[V](client: Any, table: Mapping[str, V]) -> V | None:
    for cls in type(client).__mro__:
        if cls.__name__ in table:
            return table[cls.__name__]
    return None


# --------------------------------------------------------------------------- adapter


class CcxtExchange:
    """The :class:`~crypto_bot.engine.ports.Exchange` port on top of one ccxt exchange instance.

    Read-only calls and cancels are retried on transient errors with ``retry``;
    placing an order is not. Credentials are handed to ccxt and kept out of
    ``repr()`` and of error messages.
    """

    def __init__(
        self,
        exchange_id: str,
        *,
        api_key: str | None = None,
        secret: str | None = None,
        password: str | None = None,
        sandbox: bool = False,
        options: Mapping[str, Any] | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        client: Any | None = None,
    ) -> None:
        self._id = exchange_id
        self._retry = retry
        self._sleep = sleep
        self._secrets = tuple(s for s in (api_key, secret, password) if s)
        self._sandbox = sandbox
        self._markets: Mapping[str, Any] | None = None
        credentials = {
            key: value
            for key, value in (("apiKey", api_key), ("secret", secret), ("password", password))
            if value is not None
        }
        if client is not None and options:
            raise ValueError("options configure a client built here; pass them to the injected client instead")
        if client is None:
            exchange_class = load_exchange_class(exchange_id)
            config = _deep_merge({"enableRateLimit": True}, _family_defaults(exchange_class))
            config = _deep_merge(config, options or {})
            config.update(credentials)
            client = self._call("create the client", lambda: exchange_class(config))
        else:
            for key, value in credentials.items():
                setattr(client, key, value)
        self._client: Any = client
        self._lookup = _family(client, _LOOKUPS) or _OrderLookup()
        if sandbox:
            self._enable_sandbox()

    def __repr__(self) -> str:
        return f"CcxtExchange({self._id!r}, sandbox={self._sandbox}, authenticated={bool(self._secrets)})"

    @property
    def name(self) -> str:
        return self._id

    @property
    def client(self) -> Any:
        """Return the underlying ccxt instance (for tests and diagnostics)."""
        return self._client

    # ----------------------------------------------------------------- markets

    def load_markets(self, symbols: Iterable[str]) -> Mapping[str, Market]:
        """Return the trading rules of the given symbols; BadSymbol if one is not listed."""
        raw = self._ensure_markets()
        mode = self._client.precisionMode
        result: dict[str, Market] = {}
        for symbol in symbols:
            market = raw.get(symbol)
            if market is None:
                raise BadSymbol(f"{self._id} does not list {symbol!r}")
            result[symbol] = market_from_ccxt(market, mode)
        return result

    def export_markets(self, symbols: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Return ccxt's own market structures of the given symbols, for a cache to store."""
        raw = self._ensure_markets()
        exported: dict[str, dict[str, Any]] = {}
        for symbol in symbols:
            market = raw.get(symbol)
            if market is None:
                raise BadSymbol(f"{self._id} does not list {symbol!r}")
            exported[symbol] = copy.deepcopy(dict(market))
        return exported

    def prime_markets(self, raw_markets: Mapping[str, Mapping[str, Any]]) -> None:
        """Feed cached ccxt market structures to ccxt so it skips the market download.

        The structures must be ccxt's own (see :meth:`export_markets`), including
        ``info``: some venues read it when placing orders (Binance checks
        ``info.orderTypes``).
        """
        for symbol, market in raw_markets.items():
            if not isinstance(market, Mapping) or "id" not in market or "symbol" not in market:
                raise PermanentExchangeError(f"cached market {symbol!r} is not a ccxt market structure")
        values = [copy.deepcopy(dict(market)) for market in raw_markets.values()]
        self._markets = self._call("prime markets", lambda: self._client.set_markets(values))

    # ----------------------------------------------------------------- reads

    def fetch_balances(self) -> Mapping[str, Balance]:
        """Return free and locked balances by asset; assets with nothing are left out."""
        raw = self._read("fetch_balance", lambda: self._client.fetch_balance())
        balances: dict[str, Balance] = {}
        for asset in raw.get("total") or {}:
            entry = raw.get(asset) or {}
            total = _optional_decimal(entry.get("total"), f"{asset} total balance")
            if total is None or total == 0:
                continue
            free = _optional_decimal(entry.get("free"), f"{asset} free balance")
            used = _optional_decimal(entry.get("used"), f"{asset} used balance")
            if free is None and used is None:
                raise PermanentExchangeError(f"{self._id} reports only a total for {asset}, not what is free")
            balances[asset] = Balance(
                free=free if free is not None else total - (used or ZERO),
                used=used if used is not None else total - (free or ZERO),
            )
        return balances

    def fetch_last_price(self, symbol: str) -> Decimal:
        """Return the last traded price of a symbol (the close if the venue has no last)."""

        def last() -> Decimal:
            ticker = self._call(f"fetch_ticker({symbol!r})", lambda: self._client.fetch_ticker(symbol))
            for key in ("last", "close"):
                price = _optional_decimal(ticker.get(key), f"{symbol} {key} price")
                if price is not None and price > 0:
                    return price
            # An empty ticker is usually a venue hiccup; retrying may give a price.
            raise ExchangeUnavailable(f"{self._id} returned no last or close price for {symbol}")

        return call_with_retry(last, self._retry, sleep=self._sleep)

    def fetch_order(self, order_id: str, symbol: str) -> ExchangeOrder:
        """Read an order by exchange id and symbol."""
        self._ensure_markets()
        if self._lookup.by_id == "listings":
            found = self._search_listings(
                symbol, self._lookup.listing_id_param, order_id, lambda o: str(o.get("id")) == order_id
            )
            if found is None:
                raise OrderNotFound(f"{self._id} has no order {order_id!r} on {symbol}")
            return found
        raw = self._read(f"fetch_order({order_id!r}, {symbol!r})", lambda: self._client.fetch_order(order_id, symbol))
        return self._with_fees(raw, symbol)

    def find_order_by_client_id(self, client_order_id: str, symbol: str) -> ExchangeOrder | None:
        """Find an order by our client order id, or None if the exchange never got it."""
        self._ensure_markets()
        what = f"find_order_by_client_id({client_order_id!r}, {symbol!r})"
        if self._lookup.by_client_id == "fetch_order":
            try:
                raw = self._read(what, lambda: self._client.fetch_order("", symbol, {"clientOrderId": client_order_id}))
            except OrderNotFound:
                return None
            return self._with_fees(raw, symbol)
        if self._lookup.by_client_id == "gemini_status":
            return self._gemini_status(client_order_id, symbol)
        return self._search_listings(
            symbol,
            self._lookup.listing_client_id_param,
            client_order_id,
            lambda o: o.get("clientOrderId") == client_order_id,
        )

    # ----------------------------------------------------------------- writes

    def create_limit_order(
        self, symbol: str, side: Side, amount: Decimal, price: Decimal, client_order_id: str
    ) -> ExchangeOrder:
        """Place a limit order; a timeout raises RequestTimeout and is not retried.

        Amount and price are formatted with ccxt's own precision helpers; if that
        changes them they were not at the market's precision and InvalidOrder is raised
        before anything is sent.
        """
        ccxt_side = _CCXT_SIDES.get(side)
        if ccxt_side is None:
            raise InvalidOrder(f"unknown order side {side!r}")
        self._ensure_markets()
        client = self._client
        amount_text = self._call("amount_to_precision", lambda: client.amount_to_precision(symbol, _plain(amount)))
        price_text = self._call("price_to_precision", lambda: client.price_to_precision(symbol, _plain(price)))
        if Decimal(amount_text) != amount or Decimal(price_text) != price:
            raise InvalidOrder(
                f"{symbol} {ccxt_side} {_plain(amount)} @ {_plain(price)} is not at the market's precision "
                f"({self._id} would send {amount_text} @ {price_text})"
            )
        params = {"clientOrderId": client_order_id}
        raw = self._place(
            f"create_order({symbol!r}, {ccxt_side!r}, client id {client_order_id!r})",
            lambda: client.create_order(symbol, "limit", ccxt_side, amount_text, price_text, params),
        )
        return order_from_ccxt(raw, SentOrder(symbol, side, amount, price, client_order_id))

    @property
    def supports_market_orders(self) -> bool:
        """Say whether ccxt can place market orders on this venue (``has["createMarketOrder"]``)."""
        return bool(self._client.has.get("createMarketOrder"))

    def create_market_order(self, symbol: str, side: Side, amount: Decimal, client_order_id: str) -> ExchangeOrder:
        """Place a market order (the stop-loss fallback); not retried, like a limit order.

        Raise UnsupportedExchange before sending anything if the venue has no market orders,
        and InvalidOrder if the amount is off the market's precision.
        """
        ccxt_side = _CCXT_SIDES.get(side)
        if ccxt_side is None:
            raise InvalidOrder(f"unknown order side {side!r}")
        if not self.supports_market_orders:
            raise UnsupportedExchange(f"{self._id} takes no market orders in ccxt")
        self._ensure_markets()
        client = self._client
        amount_text = self._call("amount_to_precision", lambda: client.amount_to_precision(symbol, _plain(amount)))
        if Decimal(amount_text) != amount:
            raise InvalidOrder(
                f"{symbol} market {ccxt_side} {_plain(amount)} is not at the market's precision "
                f"({self._id} would send {amount_text})"
            )
        params = {"clientOrderId": client_order_id}
        raw = self._place(
            f"create_order({symbol!r}, 'market', {ccxt_side!r}, client id {client_order_id!r})",
            lambda: client.create_order(symbol, "market", ccxt_side, amount_text, None, params),
        )
        return order_from_ccxt(raw, SentOrder(symbol, side, amount, ZERO, client_order_id))

    @property
    def supports_stop_orders(self) -> bool:
        """Say whether stop-limits rest on this venue: listed in ``_STOP_LIMIT_PARAMS`` and in ccxt's features."""
        param = _family(self._client, _STOP_LIMIT_PARAMS)
        features = getattr(self._client, "features", None) or {}
        create_order = (features.get("spot") or {}).get("createOrder") or {}
        return param is not None and bool(create_order.get(param))

    def create_stop_order(
        self, symbol: str, amount: Decimal, stop_price: Decimal, limit_price: Decimal, client_order_id: str
    ) -> ExchangeOrder:
        """Place a sell stop-limit resting on the venue; not retried, like a limit order.

        Raise UnsupportedExchange before sending anything where the venue has no supported stop-limit, and
        InvalidOrder if the amount or a price is off the market's precision.
        """
        param = _family(self._client, _STOP_LIMIT_PARAMS)
        if param is None or not self.supports_stop_orders:
            raise UnsupportedExchange(f"{self._id} takes no resting stop-limit orders through this adapter")
        self._ensure_markets()
        client = self._client
        amount_text = self._call("amount_to_precision", lambda: client.amount_to_precision(symbol, _plain(amount)))
        stop_text = self._call("price_to_precision", lambda: client.price_to_precision(symbol, _plain(stop_price)))
        limit_text = self._call("price_to_precision", lambda: client.price_to_precision(symbol, _plain(limit_price)))
        if Decimal(amount_text) != amount or Decimal(stop_text) != stop_price or Decimal(limit_text) != limit_price:
            raise InvalidOrder(
                f"{symbol} stop sell {_plain(amount)} stop {_plain(stop_price)} limit {_plain(limit_price)} is not at "
                f"the market's precision ({self._id} would send {amount_text} stop {stop_text} limit {limit_text})"
            )
        params = {"clientOrderId": client_order_id, param: stop_text}
        raw = self._place(
            f"create_order({symbol!r}, 'limit', 'sell', {param} {stop_text}, client id {client_order_id!r})",
            lambda: client.create_order(symbol, "limit", "sell", amount_text, limit_text, params),
        )
        return order_from_ccxt(raw, SentOrder(symbol, Side.SELL, amount, limit_price, client_order_id, stop_price))

    def cancel_order(self, order_id: str, symbol: str) -> ExchangeOrder:
        """Cancel an order and return its state read after the cancel (it may have filled)."""
        self._ensure_markets()
        # OrderNotFound: already filled or canceled (or an earlier, timed-out attempt of
        # this very cancel went through); the read below says which.
        with contextlib.suppress(OrderNotFound):
            self._read(f"cancel_order({order_id!r}, {symbol!r})", lambda: self._client.cancel_order(order_id, symbol))
        return self.fetch_order(order_id, symbol)

    # ----------------------------------------------------------------- internals

    def _enable_sandbox(self) -> None:
        message = f"{self._id} has no sandbox (testnet) in ccxt; run without sandbox or use the paper exchange"
        # ccxt's base describe() has urls["test"] = None, so for a venue without a
        # sandbox set_sandbox_mode fails with a TypeError instead of NotSupported.
        if not (self._client.urls or {}).get("test"):
            raise UnsupportedExchange(message)
        try:
            self._call("enable the sandbox", lambda: self._client.set_sandbox_mode(True))
        except UnsupportedExchange as e:
            raise UnsupportedExchange(message) from e

    def _ensure_markets(self) -> Mapping[str, Any]:
        if self._markets is None:
            self._markets = self._read("load_markets", lambda: self._client.load_markets())
        return self._markets

    def _call[T](self, what: str, fn: Callable[[], T]) -> T:
        """Run one ccxt call and translate its errors into ours."""
        try:
            # ccxt's precision helpers set ROUND_HALF_UP and trap Underflow on the
            # thread's decimal context; keep that out of the rest of the program.
            with decimal.localcontext():
                return fn()
        except _ccxt_base_error() as e:
            message = self._scrub(f"{what} failed on {self._id}: {e}")
            # The ccxt error stays attached as __cause__; scrub it too (some venues
            # echo the request URL, which may carry the API key).
            e.args = tuple(self._scrub(str(a)) for a in e.args)
            ours = translate_error(e)
            if type(e).__name__ in _UNCLASSIFIED:
                ours = next((c for text, c in _family(self._client, _VENUE_REFUSALS) or () if text in str(e)), ours)
            error = ours(message)
            if isinstance(error, RateLimited):
                error.retry_after = _retry_after(getattr(self._client, "last_response_headers", None))
            raise error from e

    def _read[T](self, what: str, fn: Callable[[], T]) -> T:
        return call_with_retry(lambda: self._call(what, fn), self._retry, sleep=self._sleep)

    def _place[T](self, what: str, fn: Callable[[], T]) -> T:
        """Send an order once; an answer that does not say the venue refused it leaves its outcome unknown."""
        try:
            return self._call(what, fn)
        except ExchangeUnavailable as e:
            # What ccxt raises for an HTTP 5xx, which Binance documents as "execution status UNKNOWN"
            # (binance-spot-api-docs rest-api.md, "HTTP Return Codes").
            raise OutcomeUnknown(f"{e} (the venue failed while handling the order: it may exist)") from e
        except PermanentExchangeError as e:
            vendor = type(e.__cause__).__name__
            if type(e) is PermanentExchangeError and vendor == "BadRequest":
                # The venue parsed the order and refused its arguments (Binance -1013 filters, -1102 a missing
                # parameter; Kraken "EGeneral:Invalid arguments").
                raise InvalidOrder(str(e)) from e
            if type(e) is PermanentExchangeError and vendor in _UNCLASSIFIED:
                # The venue's code is one ccxt does not classify. Nothing says the order was refused, and
                # treating it as refused loses an order that may have filled.
                raise OutcomeUnknown(f"{e} (an unclassified venue error: the order may exist)") from e
            if any(text in str(e) for text in _family(self._client, _DUPLICATE_CLIENT_ID) or ()):
                raise OutcomeUnknown(f"{e} (an order with this client id exists: look it up)") from e
            raise  # a specific refusal: InvalidOrder, BadRequest, InsufficientFunds, AuthenticationFailed, ...

    def _with_fees(self, raw: Mapping[str, Any], symbol: str) -> ExchangeOrder:
        """Convert an order read, completing its fees from the order's trades where the read has none.

        Binance's order query (GET /api/v3/order) carries no commission at all; only the account's trades
        (GET /api/v3/myTrades?orderId=...) do (binance-spot-api-docs rest-api.md, "Query order" and
        "Account trade list"). Booking such a read as it is would drop a commission charged in the base
        asset, and the ledger would hold coins the account does not.
        """
        order = order_from_ccxt(raw)
        exact = _family(self._client, _VENUE_COST_FIELDS)
        info = raw.get("info")
        if exact is not None and isinstance(info, Mapping) and info.get(exact) is not None:
            order = replace(order, cost=_decimal(info[exact], f"order {order.id} {exact}"))
        if order.filled <= 0 or _reports_fees(raw):
            return order
        client = self._client
        what = f"trades of order {order.id} on {symbol}"
        fetch: Callable[[], Sequence[Mapping[str, Any]]]
        if client.has.get("fetchOrderTrades"):
            fetch = functools.partial(client.fetch_order_trades, order.id, symbol)
        elif client.has.get("fetchMyTrades"):
            # Filtered here too: not every venue filters its trade list by order server-side (Gemini does not).
            fetch = functools.partial(client.fetch_my_trades, symbol, None, None, {"orderId": order.id})
        else:
            return replace(order, fees_reported=False)

        def complete_trades() -> list[Mapping[str, Any]]:
            found = [t for t in self._call(what, fetch) if t.get("order") is None or str(t.get("order")) == order.id]
            traded = sum((_decimal(t.get("amount"), f"{what} amount") for t in found), ZERO)
            if traded < order.filled:
                # The trade history lags the order's state: read again rather than book a fill without
                # the fees its missing trades carry.
                raise ExchangeUnavailable(
                    f"{self._id} reports order {order.id} filled {_plain(order.filled)} but its trades only "
                    f"{_plain(traded)}; the trade history is not complete yet"
                )
            return found

        trades = call_with_retry(complete_trades, self._retry, sleep=self._sleep)
        fees: dict[str, Decimal] = {}
        for trade in trades:
            for fee in _fees(trade, what):
                fees[fee.currency] = fees.get(fee.currency, ZERO) + fee.cost
        return replace(order, fees=tuple(Fee(cost, currency) for currency, cost in sorted(fees.items())))

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _search_listings(
        self,
        symbol: str,
        filter_param: str | None,
        filter_value: str,
        matches: Callable[[Mapping[str, Any]], bool],
    ) -> ExchangeOrder | None:
        client = self._client
        params = {filter_param: filter_value} if filter_param else {}
        listings: list[tuple[str, Callable[[], Sequence[Mapping[str, Any]]]]] = [
            ("fetch_open_orders", lambda: client.fetch_open_orders(symbol, None, None, params))
        ]
        # Canceled orders may hold partial fills, so a listing of filled orders alone
        # could miss an order that exists.
        closed = _closed_listing(client)
        if closed is None:
            raise UnsupportedExchange(
                f"{self._id} cannot list closed orders in ccxt, so an order cannot be found by client id"
            )
        listings.append((closed, lambda: getattr(client, closed)(symbol, None, None, params)))
        for name, fetch in listings:
            orders = self._read(f"{name}({symbol!r}, {filter_value!r})", fetch)
            found = [o for o in orders if matches(o) and o.get("symbol") in (None, symbol)]
            if found:
                return self._with_fees(found[-1], symbol)
        return None

    def _gemini_status(self, client_order_id: str, symbol: str) -> ExchangeOrder | None:
        client = self._client
        request = {"client_order_id": client_order_id, "include_trades": False}
        try:
            response = self._read(
                f"order status of client id {client_order_id!r}", lambda: client.privatePostV1OrderStatus(request)
            )
        except OrderNotFound:
            return None
        # Gemini does not enforce unique client ids, so the answer may be a list.
        raw_orders = response if isinstance(response, list) else [response]
        parsed = self._call("parse the order status", lambda: client.parse_orders(raw_orders, client.market(symbol)))
        found = [o for o in parsed if o.get("clientOrderId") == client_order_id and o.get("symbol") == symbol]
        return self._with_fees(found[-1], symbol) if found else None


def _closed_listing(client: Any) -> str | None:
    has = client.has
    for capability, method in (
        ("fetchCanceledAndClosedOrders", "fetch_canceled_and_closed_orders"),
        ("fetchOrders", "fetch_orders"),
        ("fetchClosedOrders", "fetch_closed_orders"),
    ):
        if has.get(capability):
            return method
    return None


def _family_defaults(exchange_class: type) -> Mapping[str, Any]:
    # Exact class only: binanceusdm subclasses binance but trades futures.
    return _SPOT_ONLY_DEFAULTS.get(exchange_class.__name__, {})
