"""The paper exchange: a real dry-run venue with balances, markets, fees and matching.

It implements the same :class:`crypto_bot.engine.ports.Exchange` port as the ccxt adapter
and enforces what a real venue enforces: precision, minimums, funds (locked while an
order rests) and unique client order ids. Marketable limit orders fill at the current
price as takers; others rest and fill at their limit, as makers, once the price
crosses. Partial fills and fault modes exist so tests can exercise the reconcile path.

Sell stop-limits follow Binance's STOP_LOSS_LIMIT (binance-spot-api-docs): the order rests
untriggered with its base locked, and a stop at or above the last price is refused because
it "would trigger immediately" (errors.md, -2010 messages; rest-api.md, New order: a
STOP_LOSS SELL's price is "below market price"). Once the last price falls to the stop
(faqs/trailing-stop-faq.md: STOP_LOSS_LIMIT SELL triggers on "market price <= stop price")
its limit enters the book as a new limit order would: marketable, it fills at once at the
last price as a taker; otherwise it rests at its limit and fills as a maker.
"""

from __future__ import annotations

import csv
import itertools
import json
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from crypto_bot.domain.errors import (
    BadSymbol,
    ConfigError,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    UnsupportedExchange,
)
from crypto_bot.domain.markets import Market, Side, split_symbol
from crypto_bot.domain.money import ONE, ZERO, parse_decimal, plain
from crypto_bot.domain.orders import Balance, ExchangeOrder, Fee, OrderStatus
from crypto_bot.domain.signals import parse_time

DEFAULT_AMOUNT_STEP = Decimal("0.00000001")
DEFAULT_PRICE_STEP = Decimal("0.01")
DEFAULT_MIN_COST = Decimal("1")


def default_market(symbol: str, fee: Decimal = ZERO) -> Market:
    """A permissive spot market: 1e-8 lots, 0.01 ticks, 1 quote minimum order."""
    base, quote = split_symbol(symbol)
    return Market(
        symbol=symbol,
        base=base,
        quote=quote,
        amount_step=DEFAULT_AMOUNT_STEP,
        price_step=DEFAULT_PRICE_STEP,
        min_amount=DEFAULT_AMOUNT_STEP,
        min_cost=DEFAULT_MIN_COST,
        maker_fee=fee,
        taker_fee=fee,
    )


_MARKET_FIELDS = {"amount_step", "price_step", "min_amount", "min_cost", "maker_fee", "taker_fee"}


def load_markets_file(path: str | Path, fee: Decimal = ZERO) -> dict[str, Market]:
    """Read paper market overrides: ``{"BTC/USD": {"amount_step": "0.0001", ...}}``.

    Fields not given keep the defaults of :func:`default_market` (with ``fee``).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except OSError as e:
        raise ConfigError(f"cannot read markets file {path}: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON at line {e.lineno}: {e.msg}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected an object keyed by symbol")
    markets: dict[str, Market] = {}
    for symbol, spec in data.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{path}: [{symbol!r}] must be an object of {', '.join(sorted(_MARKET_FIELDS))}")
        unknown = set(spec) - _MARKET_FIELDS
        if unknown:
            raise ConfigError(f"{path}: [{symbol!r}] has unknown fields {sorted(unknown)}")
        try:
            values: dict[str, Any] = {str(k): parse_decimal(v) for k, v in spec.items()}
            markets[symbol] = replace(default_market(symbol, fee), **values)
        except ValueError as e:
            raise ConfigError(f"{path}: [{symbol!r}]: {e}") from e
    return markets


@dataclass
class _PaperOrder:
    id: str
    client_order_id: str
    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    status: OrderStatus = OrderStatus.OPEN
    filled: Decimal = ZERO
    cost: Decimal = ZERO
    fee: Decimal = ZERO
    fee_currency: str = ""
    locked: Decimal = ZERO  # funds still reserved for the unfilled part
    created_at: datetime | None = None
    stop_price: Decimal | None = None  # a stop-limit's trigger; None for every other order
    triggered: bool = False  # a stop-limit's limit is on the book

    @property
    def resting_stop(self) -> bool:
        """Say whether this is a stop order still waiting for its trigger (off the book, not matched)."""
        return self.stop_price is not None and not self.triggered and self.status is OrderStatus.OPEN

    def snapshot(self) -> ExchangeOrder:
        fees = (Fee(self.fee, self.fee_currency),) if self.fee_currency else ()
        return ExchangeOrder(
            id=self.id,
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            amount=self.amount,
            price=self.price,
            status=self.status,
            filled=self.filled,
            cost=self.cost,
            fees=fees,
            stop_price=self.stop_price,
            triggered=self.triggered,
        )


Operation = Literal[
    "create_limit_order",
    "create_market_order",
    "create_stop_order",
    "fetch_order",
    "cancel_order",
    "fetch_balances",
    "fetch_last_price",
    "find_order",
]


@dataclass
class Fault:
    """An injected failure: ``error`` is raised by the next ``operation`` call.

    With ``after_effect`` the operation takes effect first and *then* raises, like a
    timeout after the exchange accepted an order.
    """

    operation: Operation
    error: ExchangeError
    after_effect: bool = False
    times: int = 1


@dataclass
class PaperExchange:
    """An in-memory exchange. State lives in the object; :meth:`to_state` and :meth:`from_state` persist it."""

    balances: dict[str, Decimal]
    markets: dict[str, Market] = field(default_factory=dict)
    prices: dict[str, Decimal] = field(default_factory=dict)
    # "quote": every fee is charged in the quote currency; "received": in the asset
    # received (base on buys, quote on sells), as Binance does without BNB; "base": in the
    # base asset on both sides, a sell's fee taken on top of the amount sold (so the ledger's
    # base-fee sell path is exercised, which no other mode reaches).
    fee_mode: Literal["quote", "received", "base"] = "quote"
    partial_fill_ratio: Decimal | None = None  # marketable orders fill only this share at once
    default_fee: Decimal = ZERO
    # Where prices come from when asked: None means explicit set_price() updates only
    # (alert prices, a CSV); a function such as a ccxt exchange's public ticker makes
    # this a live dry run. A price read through the feed also fills crossed orders.
    price_feed: Callable[[str], Decimal] | None = None
    name: str = "paper"
    # Some venues (and some markets) take no market orders; tests turn this off to check the fallback's absence.
    supports_market_orders: bool = True
    # Likewise for resting stop-limits (Kraken, Bybit and most venues here have none the adapter supports).
    supports_stop_orders: bool = True
    faults: list[Fault] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    _orders: dict[str, _PaperOrder] = field(default_factory=dict)
    _by_client_id: dict[str, str] = field(default_factory=dict)
    _locked: dict[str, Decimal] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # -- the Exchange port -------------------------------------------------------

    def load_markets(self, symbols: Iterable[str]) -> Mapping[str, Market]:
        self._call("load_markets")
        result = {}
        for symbol in symbols:
            if symbol not in self.markets:
                self.markets[symbol] = default_market(symbol, self.default_fee)
            result[symbol] = self.markets[symbol]
        return result

    def fetch_balances(self) -> Mapping[str, Balance]:
        fault = self._call("fetch_balances")
        if fault is not None:
            raise fault.error
        assets = set(self.balances) | set(self._locked)
        return {
            a: Balance(free=self.balances.get(a, ZERO), used=self._locked.get(a, ZERO))
            for a in sorted(assets)
            if self.balances.get(a, ZERO) or self._locked.get(a, ZERO)
        }

    def fetch_last_price(self, symbol: str) -> Decimal:
        fault = self._call("fetch_last_price")
        if fault is not None:
            raise fault.error
        if self.price_feed is not None:
            self.set_price(symbol, self.price_feed(symbol))
        return self._price(symbol)

    def create_limit_order(
        self, symbol: str, side: Side, amount: Decimal, price: Decimal, client_order_id: str
    ) -> ExchangeOrder:
        fault = self._call("create_limit_order")
        if fault is not None and not fault.after_effect:
            raise fault.error
        market = self._market(symbol)
        if market.price_to_precision(price) != price:
            raise InvalidOrder(f"price {price} is not on the tick grid {market.price_step}")
        order = self._open(market, side, amount, price, client_order_id)
        last = self.prices.get(symbol)
        if last is not None and self._marketable(order, last):
            ratio = self.partial_fill_ratio
            portion = amount if ratio is None else market.amount_to_precision(amount * ratio)
            self._fill(order, portion, last, taker=True)
        if fault is not None:
            raise fault.error
        return order.snapshot()

    def create_market_order(self, symbol: str, side: Side, amount: Decimal, client_order_id: str) -> ExchangeOrder:
        """Fill ``amount`` at once at the last price, as a taker; funds and minimums are checked as for a limit."""
        fault = self._call("create_market_order")
        if fault is not None and not fault.after_effect:
            raise fault.error
        if not self.supports_market_orders:
            raise UnsupportedExchange(f"{self.name} takes no market orders")
        market = self._market(symbol)
        last = self._price(symbol)
        order = self._open(market, side, amount, last, client_order_id)
        self._fill(order, amount, last, taker=True)
        if fault is not None:
            raise fault.error
        return order.snapshot()

    def create_stop_order(
        self, symbol: str, amount: Decimal, stop_price: Decimal, limit_price: Decimal, client_order_id: str
    ) -> ExchangeOrder:
        """Rest a sell stop-limit off the book, its base locked as a resting sell limit's is (module docstring)."""
        fault = self._call("create_stop_order")
        if fault is not None and not fault.after_effect:
            raise fault.error
        if not self.supports_stop_orders:
            raise UnsupportedExchange(f"{self.name} takes no stop orders")
        market = self._market(symbol)
        for what, price in (("stop price", stop_price), ("limit price", limit_price)):
            if price <= 0 or market.price_to_precision(price) != price:
                raise InvalidOrder(f"{what} {price} is not a positive price on the tick grid {market.price_step}")
        last = self._price(symbol)
        if stop_price >= last:
            raise InvalidOrder(
                f"stop price {plain(stop_price)} is at or above the last price {plain(last)} of {symbol}: "
                'the sell stop would trigger immediately (Binance -2010 "Order would trigger immediately.")'
            )
        order = self._open(market, Side.SELL, amount, limit_price, client_order_id)
        order.stop_price = stop_price
        if fault is not None:
            raise fault.error
        return order.snapshot()

    def fetch_order(self, order_id: str, symbol: str) -> ExchangeOrder:
        fault = self._call("fetch_order")
        if fault is not None:
            raise fault.error
        return self._order(order_id, symbol).snapshot()

    def cancel_order(self, order_id: str, symbol: str) -> ExchangeOrder:
        fault = self._call("cancel_order")
        if fault is not None and not fault.after_effect:
            raise fault.error
        order = self._order(order_id, symbol)
        if order.status is OrderStatus.OPEN:
            self._release(order)
            order.status = OrderStatus.CANCELED
        if fault is not None:
            raise fault.error
        return order.snapshot()

    def find_order_by_client_id(self, client_order_id: str, symbol: str) -> ExchangeOrder | None:
        fault = self._call("find_order")
        if fault is not None:
            raise fault.error
        order_id = self._by_client_id.get(client_order_id)
        if order_id is None or self._orders[order_id].symbol != symbol:
            return None
        return self._orders[order_id].snapshot()

    def _open(self, market: Market, side: Side, amount: Decimal, price: Decimal, client_order_id: str) -> _PaperOrder:
        """Check an order as a venue would, reserve its funds and book it as open."""
        if client_order_id in self._by_client_id:
            raise InvalidOrder(f"duplicate client order id {client_order_id}")
        if market.amount_to_precision(amount) != amount:
            raise InvalidOrder(f"amount {amount} is not a multiple of the lot size {market.amount_step}")
        reason = market.below_minimum(amount, price)
        if reason:
            raise InvalidOrder(reason)
        asset, need = self._reservation(market, side, amount, price)
        free = self.balances.get(asset, ZERO)
        if need > free:
            raise InsufficientFunds(f"order needs {plain(need)} {asset} but only {plain(free)} {asset} is free")
        order = _PaperOrder(
            id=f"paper-{next(self._ids)}",
            client_order_id=client_order_id,
            symbol=market.symbol,
            side=side,
            amount=amount,
            price=price,
            locked=need,
        )
        self._move(asset, -need, locked=need)
        self._orders[order.id] = order
        self._by_client_id[client_order_id] = order.id
        return order

    # -- market data and matching ------------------------------------------------

    def set_price(self, symbol: str, price: Decimal) -> list[ExchangeOrder]:
        """Move the last price of a symbol and fill the resting orders it crosses."""
        if price <= 0:
            raise ValueError(f"{symbol}: price must be positive, got {price}")
        self.prices[symbol] = price
        filled = []
        for order in list(self._orders.values()):
            if order.symbol != symbol or order.status is not OrderStatus.OPEN:
                continue
            if order.resting_stop:
                if order.stop_price is not None and price <= order.stop_price:
                    self._trigger(order, price)
                    if order.filled:
                        filled.append(order.snapshot())
            elif self._crossed(order, price):
                self._fill(order, order.amount - order.filled, order.price, taker=False)
                filled.append(order.snapshot())
        return filled

    def open_orders(self) -> list[ExchangeOrder]:
        return [o.snapshot() for o in self._orders.values() if o.status is OrderStatus.OPEN]

    def orders(self) -> list[ExchangeOrder]:
        return [o.snapshot() for o in self._orders.values()]

    def fill_resting(self, order_id: str, amount: Decimal | None = None) -> ExchangeOrder:
        """Fill (part of) a resting order at its limit, as the market would (for tests and demos)."""
        order = self._orders[order_id]
        if order.status is not OrderStatus.OPEN:
            raise InvalidOrder(f"order {order_id} is {order.status.value}, not open")
        if order.resting_stop:
            raise InvalidOrder(f"order {order_id} is a stop at {plain(order.stop_price or ZERO)} not triggered yet")
        unfilled = order.amount - order.filled
        if amount is not None and amount > unfilled:
            raise InvalidOrder(
                f"cannot fill {plain(amount)} of order {order_id}: only {plain(unfilled)} of it is unfilled"
            )
        self._fill(order, unfilled if amount is None else amount, order.price, taker=False)
        return order.snapshot()

    def equity(self, quote: str) -> Decimal:
        """Value of every balance, free and locked, in ``quote`` at the last prices."""
        total = ZERO
        for asset, balance in self.fetch_balances().items():
            if asset == quote:
                total += balance.total
            else:
                total += balance.total * self._price(f"{asset}/{quote}")
        return total

    # -- persistence ------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Return the account as JSON-ready data (decimals as strings) that :meth:`from_state` restores.

        Only the venue's state is included: balances, locked funds, markets, prices, orders
        with the client-id index and the id counter, and the fee settings. The price feed,
        injected faults and call counts belong to the process, not the account.
        """
        # Reading an itertools.count consumes a value: put an equivalent counter back.
        next_id = next(self._ids)
        self._ids = itertools.count(next_id)
        return {
            "format": PAPER_STATE_FORMAT,
            "balances": {asset: str(amount) for asset, amount in self.balances.items()},
            "locked": {asset: str(amount) for asset, amount in self._locked.items()},
            "markets": {symbol: _market_to_state(market) for symbol, market in self.markets.items()},
            "prices": {symbol: str(price) for symbol, price in self.prices.items()},
            "fee_mode": self.fee_mode,
            "partial_fill_ratio": None if self.partial_fill_ratio is None else str(self.partial_fill_ratio),
            "default_fee": str(self.default_fee),
            # A list, not a map: matching walks the orders in the order they were placed.
            "orders": [_order_to_state(order) for order in self._orders.values()],
            "client_ids": dict(self._by_client_id),
            "next_id": next_id,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], **kwargs: Any) -> PaperExchange:
        """Rebuild an exchange from :meth:`to_state` data; ``kwargs`` set the rest (``price_feed``, ``name``...)."""
        if state.get("format") != PAPER_STATE_FORMAT:
            raise ValueError(f"paper state format {state.get('format')!r} is not {PAPER_STATE_FORMAT}")
        ratio = state.get("partial_fill_ratio")
        fee_mode = state["fee_mode"]
        if fee_mode not in ("quote", "received", "base"):
            raise ValueError(f"paper state has an unknown fee_mode {fee_mode!r}")
        orders = [_order_from_state(o) for o in state.get("orders", [])]
        return cls(
            balances={asset: Decimal(str(amount)) for asset, amount in state.get("balances", {}).items()},
            markets={symbol: _market_from_state(m) for symbol, m in state.get("markets", {}).items()},
            prices={symbol: Decimal(str(price)) for symbol, price in state.get("prices", {}).items()},
            fee_mode=fee_mode,
            partial_fill_ratio=None if ratio is None else Decimal(str(ratio)),
            default_fee=Decimal(str(state.get("default_fee", "0"))),
            _orders={order.id: order for order in orders},
            _by_client_id={str(k): str(v) for k, v in state.get("client_ids", {}).items()},
            _locked={asset: Decimal(str(amount)) for asset, amount in state.get("locked", {}).items()},
            _ids=itertools.count(int(state.get("next_id", 1))),
            **kwargs,
        )

    # -- internals ------------------------------------------------------------------

    def _call(self, operation: str) -> Fault | None:
        self.calls[operation] = self.calls.get(operation, 0) + 1
        for fault in self.faults:
            if fault.operation == operation and fault.times > 0:
                fault.times -= 1
                if fault.times == 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _market(self, symbol: str) -> Market:
        if symbol not in self.markets:
            raise BadSymbol(f"paper exchange has no market {symbol}; load_markets first")
        return self.markets[symbol]

    def _price(self, symbol: str) -> Decimal:
        if symbol not in self.prices:
            raise BadSymbol(f"paper exchange has no price for {symbol} yet")
        return self.prices[symbol]

    def _order(self, order_id: str, symbol: str) -> _PaperOrder:
        order = self._orders.get(order_id)
        if order is None or order.symbol != symbol:
            raise OrderNotFound(f"no order {order_id} on {symbol}")
        return order

    def _fee_rate(self, market: Market, taker: bool) -> Decimal:
        return market.taker_fee if taker else market.maker_fee

    def _reservation(self, market: Market, side: Side, amount: Decimal, price: Decimal) -> tuple[str, Decimal]:
        if side is Side.BUY:
            fee = max(market.taker_fee, market.maker_fee) if self.fee_mode == "quote" else ZERO
            return market.quote, amount * price * (ONE + fee)
        fee = max(market.taker_fee, market.maker_fee) if self.fee_mode == "base" else ZERO
        return market.base, amount * (ONE + fee)

    def _trigger(self, order: _PaperOrder, last: Decimal) -> None:
        """Put a triggered stop's limit on the book as a new limit order: marketable, it takes at once."""
        order.triggered = True
        if self._marketable(order, last):
            market = self.markets[order.symbol]
            ratio = self.partial_fill_ratio
            remaining = order.amount - order.filled
            portion = remaining if ratio is None else market.amount_to_precision(remaining * ratio)
            self._fill(order, portion, last, taker=True)

    @staticmethod
    def _marketable(order: _PaperOrder, last: Decimal) -> bool:
        return order.price >= last if order.side is Side.BUY else order.price <= last

    @staticmethod
    def _crossed(order: _PaperOrder, last: Decimal) -> bool:
        return last <= order.price if order.side is Side.BUY else last >= order.price

    def _move(self, asset: str, delta: Decimal, *, locked: Decimal = ZERO) -> None:
        self.balances[asset] = self.balances.get(asset, ZERO) + delta
        if locked:
            self._locked[asset] = self._locked.get(asset, ZERO) + locked

    def _fill(self, order: _PaperOrder, amount: Decimal, price: Decimal, *, taker: bool) -> None:
        if amount <= 0:
            return
        market = self.markets[order.symbol]
        cost = amount * price
        rate = self._fee_rate(market, taker)
        if order.side is Side.BUY:
            reserved = order.locked * amount / (order.amount - order.filled)
            self._locked[market.quote] -= reserved
            order.locked -= reserved
            if self.fee_mode == "quote":
                fee, fee_currency = cost * rate, market.quote
                self._move(market.quote, reserved - cost - fee)
                self._move(market.base, amount)
            else:
                fee, fee_currency = amount * rate, market.base
                self._move(market.quote, reserved - cost)
                self._move(market.base, amount - fee)
        elif self.fee_mode == "base":
            reserved = order.locked * amount / (order.amount - order.filled)
            self._locked[market.base] -= reserved
            order.locked -= reserved
            fee, fee_currency = amount * rate, market.base
            self._move(market.base, reserved - amount - fee)
            self._move(market.quote, cost)
        else:
            self._locked[market.base] -= amount
            order.locked -= amount
            fee, fee_currency = cost * rate, market.quote
            self._move(market.quote, cost - fee)
        order.filled += amount
        order.cost += cost
        order.fee += fee
        order.fee_currency = fee_currency
        if order.filled >= order.amount:
            order.status = OrderStatus.CLOSED
            self._release(order)

    def _release(self, order: _PaperOrder) -> None:
        if order.locked:
            market = self.markets[order.symbol]
            asset = market.quote if order.side is Side.BUY else market.base
            self._locked[asset] -= order.locked
            self._move(asset, order.locked)
            order.locked = ZERO


PAPER_STATE_FORMAT = 1
"""The version of :meth:`PaperExchange.to_state`'s layout; bump it when the layout changes."""


def _market_to_state(market: Market) -> dict[str, str]:
    return {
        "symbol": market.symbol,
        "base": market.base,
        "quote": market.quote,
        "amount_step": str(market.amount_step),
        "price_step": str(market.price_step),
        "min_amount": str(market.min_amount),
        "min_cost": str(market.min_cost),
        "maker_fee": str(market.maker_fee),
        "taker_fee": str(market.taker_fee),
    }


def _market_from_state(data: Mapping[str, Any]) -> Market:
    return Market(
        symbol=str(data["symbol"]),
        base=str(data["base"]),
        quote=str(data["quote"]),
        amount_step=Decimal(str(data["amount_step"])),
        price_step=Decimal(str(data["price_step"])),
        min_amount=Decimal(str(data["min_amount"])),
        min_cost=Decimal(str(data["min_cost"])),
        maker_fee=Decimal(str(data["maker_fee"])),
        taker_fee=Decimal(str(data["taker_fee"])),
    )


def _order_to_state(order: _PaperOrder) -> dict[str, Any]:
    return {
        "id": order.id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "amount": str(order.amount),
        "price": str(order.price),
        "status": order.status.value,
        "filled": str(order.filled),
        "cost": str(order.cost),
        "fee": str(order.fee),
        "fee_currency": order.fee_currency,
        "locked": str(order.locked),
        "created_at": order.created_at.isoformat() if order.created_at else None,
        "stop_price": None if order.stop_price is None else str(order.stop_price),
        "triggered": order.triggered,
    }


def _order_from_state(data: Mapping[str, Any]) -> _PaperOrder:
    created = data.get("created_at")
    # Absent from states written before stop orders existed. Added to format 1 rather than bumping it, so
    # such states still load; a reader older than the stops would take a resting stop for a plain sell limit.
    stop = data.get("stop_price")
    return _PaperOrder(
        id=str(data["id"]),
        client_order_id=str(data["client_order_id"]),
        symbol=str(data["symbol"]),
        side=Side(data["side"]),
        amount=Decimal(str(data["amount"])),
        price=Decimal(str(data["price"])),
        status=OrderStatus(data["status"]),
        filled=Decimal(str(data["filled"])),
        cost=Decimal(str(data["cost"])),
        fee=Decimal(str(data["fee"])),
        fee_currency=str(data["fee_currency"]),
        locked=Decimal(str(data["locked"])),
        created_at=datetime.fromisoformat(created) if created else None,
        stop_price=None if stop is None else Decimal(str(stop)),
        triggered=data.get("triggered") is True,
    )


class CsvPrices:
    """A price history from a CSV of ``time,symbol,price``: the last price at or before a time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        series: dict[str, list[tuple[datetime, Decimal]]] = {}
        try:
            handle = self.path.open(newline="", encoding="utf-8-sig")
        except OSError as e:
            raise ConfigError(f"cannot read prices file {self.path}: {e.strerror}") from e
        with handle:
            reader = csv.DictReader(handle)
            missing = {"time", "symbol", "price"} - set(reader.fieldnames or [])
            if missing:
                raise ConfigError(
                    f"{self.path}: missing columns {sorted(missing)}; expected time,symbol,price "
                    f"(found {reader.fieldnames})"
                )
            for line, row in enumerate(reader, start=2):
                try:
                    moment = parse_time(row["time"])
                    price = parse_decimal(row["price"])
                except ValueError as e:
                    raise ConfigError(f"{self.path}: line {line}: {e} (row {dict(row)})") from e
                if price <= 0:
                    raise ConfigError(f"{self.path}: line {line}: price must be positive, got {row['price']!r}")
                series.setdefault(row["symbol"].strip(), []).append((moment, price))
        for points in series.values():
            points.sort(key=lambda p: p[0])
        self._series = series
        self._times = {symbol: [p[0] for p in points] for symbol, points in series.items()}

    def symbols(self) -> list[str]:
        return sorted(self._series)

    def at(self, symbol: str, moment: datetime) -> Decimal | None:
        """Return the last price of ``symbol`` at or before ``moment``, or None."""
        points = self._series.get(symbol)
        if not points:
            return None
        index = bisect_right(self._times[symbol], moment)
        return points[index - 1][1] if index else None

    def moments(self) -> list[datetime]:
        return sorted({p[0] for points in self._series.values() for p in points})

    def between(
        self, symbols: Iterable[str], after: datetime | None, until: datetime
    ) -> list[tuple[datetime, str, Decimal]]:
        """Return every price of ``symbols`` after ``after`` (None: from the start) up to ``until``, in time order.

        Replay walks it between cycles, so a resting order (a protective stop) sees each price the market passed
        through, not only the one at the next cycle.
        """
        points = [
            (moment, symbol, price)
            for symbol in symbols
            for moment, price in self._series.get(symbol, [])
            if (after is None or moment > after) and moment <= until
        ]
        return sorted(points, key=lambda point: (point[0], point[1]))
