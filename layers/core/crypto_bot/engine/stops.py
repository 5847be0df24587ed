"""Protective stops: a sell stop-limit resting on the venue for each long strategy that asks for one.

A strategy asks with ``"protective_stop": {"percent": "0.05"}`` in strategy_config.json (a stop 5% below the
position's average cost) or with an entry alert's ``stop_price``. The stop lives on the exchange, so a late or
lost webhook, an AWS outage or a bug here cannot leave the position unprotected. Its life, in the cycle:

* **check** (every cycle, scheduled or urgent, before it nets its signals): read each resting stop and book what
  it filled as that strategy's exit, "protective stop filled on the exchange". A stop-loss alert for the same
  trade that arrives later finds the strategy flat and is ignored with that reason.
* **lift** (before any sell of the strategy: exit, sell-down, flatten): cancel the stop and book what filled
  before the cancel (the cancel returns the order as it is after it), so a stop that triggered in the race is
  booked once and never sold twice.
* **protect** (when the cycle finishes): place the stop for exactly the strategy's ledger amount, or resize it
  after a partial fill or a sell-down. The client order id is derived from the cycle, the strategy and the
  amount, and looked up before placing, so a placement whose answer was lost is found, never sent twice.

A resting stop locks its base amount on the venue: exits are sized from the free balance after the lift, and
the drift check compares totals (free and locked), so a stop's coins are the strategy's, not missing coins.
Each booking is saved with the position it changes (one ledger item), so reading an order again books only the
difference.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Final

from crypto_bot.domain.config import Strategy, StrategyConfig
from crypto_bot.domain.errors import ExchangeError, OrderNotFound, PermanentExchangeError
from crypto_bot.domain.ledger import Ledger, RestingStop
from crypto_bot.domain.markets import Market, Side
from crypto_bot.domain.money import ONE, ZERO, plain
from crypto_bot.domain.orders import ExchangeOrder, Fee
from crypto_bot.engine.ports import Exchange

STOP_FILLED: Final = "protective stop filled on the exchange"
# A stop-limit's limit sits this far below its trigger, so that a fast fall still fills it; past that it rests
# on the book as any limit order does (Binance spot STOP_LOSS_LIMIT: "price" is the limit, "stopPrice" the
# trigger; binance-spot-api-docs, rest-api.md, New order).
LIMIT_BELOW_STOP: Final = Decimal("0.01")


def stop_client_id(cycle_id: str, key: str, amount: Decimal) -> str:
    """Derive a stop's client order id: 32 hex-like characters, as the chase's ids (every venue takes them)."""
    digest = hashlib.sha256(f"{cycle_id}|protective-stop|{key}|{plain(amount)}".encode()).hexdigest()
    return f"cb{digest[:24]}s00000"


@dataclass
class StopKeeper:
    """Check, lift and place the protective stops of one account's strategies."""

    exchange: Exchange
    config: StrategyConfig
    markets: Callable[[], Mapping[str, Market]]
    clock: Callable[[], datetime]
    read: Callable[[Callable[[], ExchangeOrder]], ExchangeOrder]  # the workflow's retried read

    def wanted(self) -> bool:
        """Say whether any strategy may have a stop (configured, or resting from an alert's stop_price)."""
        return any(s.protective_stop is not None for s in self.config.strategies.values())

    def check(self, ledger: Ledger) -> dict[str, str]:
        """Read every resting stop and book what it filled; return a note per strategy whose stop filled.

        A read that fails is noted and the stop is left as it is: it must never hold a cycle's exits up.
        """
        notes: dict[str, str] = {}
        for key, strategy, stop in self._resting(ledger):
            try:
                order = self.read(partial(self.exchange.fetch_order, stop.order_id, strategy.symbol))
            except ExchangeError as e:
                notes[key] = f"protective stop not read: {type(e).__name__}: {e}"
                continue
            note = self._book(ledger, strategy, order)
            if note:
                notes[key] = note
        return notes

    def lift(self, ledger: Ledger, keys: Iterable[str]) -> dict[str, str]:
        """Cancel the stops of strategies about to sell; book what each filled before its cancel.

        An error other than "no such order" propagates: selling while the stop still rests would sell the
        coins twice (the venue refuses it for funds at best), so the step is retried instead.
        """
        notes: dict[str, str] = {}
        for key in sorted(set(keys)):
            strategy = self.config.get(key)
            stop = ledger.position(strategy).stop if strategy is not None else None
            if strategy is None or stop is None:
                continue
            try:
                order = self.exchange.cancel_order(stop.order_id, strategy.symbol)
            except OrderNotFound:
                # Gone already (filled, expired or cancelled by hand): its last state says which.
                order = self.read(partial(self.exchange.fetch_order, stop.order_id, strategy.symbol))
            note = self._book(ledger, strategy, order, lifted=True)
            notes[key] = note or "protective stop cancelled before selling"
        return notes

    def protect(self, ledger: Ledger, cycle_id: str, alert_stops: Mapping[str, Decimal]) -> dict[str, str]:
        """Place or resize each long strategy's stop to its ledger amount; return a note per strategy touched.

        ``alert_stops`` are the stop prices this cycle's entry alerts gave (``stop_price``); otherwise a new stop
        is the configured share below the position's average cost, and a resized one keeps its price.
        """
        notes: dict[str, str] = {}
        for key, strategy in sorted(self.config.strategies.items()):
            position = ledger.position(strategy)
            stop = position.stop
            if not position.is_long:
                continue
            price = stop.stop_price if stop else (position.stop_level or alert_stops.get(key))
            if price is None and strategy.protective_stop is not None:
                price = position.cost_basis / position.amount * (ONE - strategy.protective_stop)
            if price is None:
                continue
            market = self.markets()[strategy.symbol]
            amount = market.amount_to_precision(position.amount)
            if stop is not None and stop.amount - stop.filled == amount:
                continue
            if not self.exchange.supports_stop_orders:
                notes[key] = f"protective stop not placed: {self.exchange.name} has no stop orders here"
                continue
            try:
                if stop is not None:
                    # Resized after a partial fill or a sell-down: the old one goes first.
                    self.lift(ledger, [key])
                    position = ledger.position(strategy)
                    if not position.is_long:
                        notes[key] = STOP_FILLED
                        continue
                    amount = market.amount_to_precision(position.amount)
                notes[key] = self._place(ledger, strategy, market, cycle_id, amount, price)
            except ExchangeError as e:
                notes[key] = f"protective stop not placed: {type(e).__name__}: {e}; the next cycle tries again"
        return notes

    # -- internals -----------------------------------------------------------------------------------

    def _resting(self, ledger: Ledger) -> list[tuple[str, Strategy, RestingStop]]:
        return [(k, s, stop) for k, s in sorted(self.config.strategies.items()) if (stop := ledger.position(s).stop)]

    def _place(
        self, ledger: Ledger, strategy: Strategy, market: Market, cycle_id: str, amount: Decimal, price: Decimal
    ) -> str:
        stop_price = market.price_to_precision(price)
        limit_price = market.price_to_precision(stop_price * (ONE - LIMIT_BELOW_STOP))
        too_small = market.below_minimum(amount, limit_price)
        if too_small is not None:
            return f"protective stop not placed: {too_small}"
        client_id = stop_client_id(cycle_id, strategy.key, amount)
        # Looked up first: a placement whose answer was lost (a timeout, a crash before the ledger was saved) is
        # found by its client id instead of being sent again.
        order = self.exchange.find_order_by_client_id(client_id, strategy.symbol)
        if order is None:
            try:
                order = self.exchange.create_stop_order(strategy.symbol, amount, stop_price, limit_price, client_id)
            except PermanentExchangeError as e:
                return f"protective stop not placed: the exchange refused it: {type(e).__name__}: {e}"
            except ExchangeError:
                order = self.exchange.find_order_by_client_id(client_id, strategy.symbol)
                if order is None:
                    raise
        position = ledger.position(strategy)
        placed = RestingStop(order.id, client_id, amount, stop_price, limit_price, self.clock())
        ledger.positions[strategy.key] = replace(position, stop=placed, stop_level=stop_price)
        self._book(ledger, strategy, order)
        return f"protective stop placed: sell {plain(amount)} if the price falls to {plain(stop_price)}"

    def _book(self, ledger: Ledger, strategy: Strategy, order: ExchangeOrder, *, lifted: bool = False) -> str:
        """Book what the stop filled since the last booking; drop it from the position once it is done."""
        position = ledger.position(strategy)
        stop = position.stop
        if stop is None:
            return ""
        filled, cost = order.filled - stop.filled, order.cost - stop.cost
        fees = [
            Fee(delta, currency)
            for currency in sorted({f.currency for f in order.fees})
            if (delta := order.fee_in(currency) - sum((f.cost for f in stop.fees if f.currency == currency), ZERO))
        ]
        note = ""
        now = self.clock()
        if filled > 0:
            ledger.apply_fill(
                strategy, Side.SELL, order_id=order.id, filled=filled, cost=cost, fees=fees, at=now, note=STOP_FILLED
            )
            note = f"{STOP_FILLED}: sold {plain(order.filled)} at {plain(order.cost / order.filled)}"
        done = lifted or order.status.is_final
        if done and filled > 0 and ledger.position(strategy).is_long:
            # What the stop could not sell (below the lot: a buy's commission in the base asset leaves such a
            # remainder) is dust, as after an exit: the strategy is flat, not long a few satoshi.
            ledger.sweep_dust(strategy, self.markets()[strategy.symbol])
        position = ledger.position(strategy)
        booked = replace(stop, filled=order.filled, cost=order.cost, fees=order.fees)
        if done and position.is_long and not lifted:
            # Ended on the venue with coins still held (cancelled by hand, expired, or filled only in part):
            # finalize places a new stop for what is left, and the trader is told the gap.
            ended = note or f"protective stop {order.status.value} on the exchange"
            note = f"{ended}; {plain(position.amount)} left unprotected until the cycle places a new stop for it"
        stopped = now if (filled > 0 and not position.is_long) else position.stopped_at
        ledger.positions[strategy.key] = replace(position, stop=None if done else booked, stopped_at=stopped)
        return note
