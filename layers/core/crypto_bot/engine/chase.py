"""Order chasing: place an intent's order, and re-place what stays unfilled at a wider price.

An intent is worked in *attempts*, numbered from 0. Attempt ``n`` is sent under the client
order id ``intent.client_order_id(n)``, so a placement whose answer was lost is found on the
exchange by that id before anything is sent again. An attempt still open after the fill
timeout is cancelled and its remainder re-placed as the next attempt, priced from a fresh last
price with one more increment of width; after ``max_reprice_attempts`` chases the remainder is
given up. A stop-loss sell is the exception: its remainder falls back to a market order, the
attempt after the last limit attempt, where the venue takes market orders.

The fills an attempt brings are booked by the caller's ``book`` (the ledger's side of the
cycle, :mod:`crypto_bot.engine.workflow`); this module decides only what to send next.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

from crypto_bot.domain.errors import PermanentExchangeError
from crypto_bot.domain.ledger import Ledger
from crypto_bot.domain.markets import Market, Side
from crypto_bot.domain.money import ZERO, plain
from crypto_bot.domain.orders import Balance, ExchangeOrder, OrderStatus
from crypto_bot.domain.sizing import affordable_amount, limit_price
from crypto_bot.engine.ports import Exchange, Store
from crypto_bot.engine.records import IntentRecord, IntentStatus
from crypto_bot.engine.retry import RetryPolicy, call_with_retry

Book = Callable[[IntentRecord, ExchangeOrder, Ledger], None]
"""Book what an order read shows beyond the intent's stored state of it, into the ledger."""
Remember = Callable[[IntentRecord, ExchangeOrder], None]
"""Store an order's state on the intent without booking it."""


@dataclass(frozen=True)
class ChaseRules:
    """How long an attempt may rest, how much wider each chase prices, and how many chases there are."""

    increment: Decimal
    fill_timeout: timedelta
    max_reprice_attempts: int

    def is_market_attempt(self, record: IntentRecord) -> bool:
        """Say whether the record's attempt is the market-order fallback.

        The attempts after the last limit attempt are the fallback; deriving it from the attempt
        number keeps a ``placing`` record re-sendable as the same kind of order.
        """
        return record.attempt > self.max_reprice_attempts

    def fallback_note(self) -> str:
        """Word the market-order fallback for an intent's reason."""
        return f"fell back to a market order after {self.max_reprice_attempts + 1} limit attempts"


@dataclass
class OrderChase:
    """Place and re-place one intent's orders on one exchange, writing each step to the store."""

    store: Store
    exchange: Exchange
    rules: ChaseRules
    markets: Callable[[], Mapping[str, Market]]
    book: Book
    remember: Remember
    clock: Callable[[], datetime]
    retry: RetryPolicy
    sleep: Callable[[float], None]

    def place(self, record: IntentRecord, ledger: Ledger | None = None) -> None:
        """Send the record's current attempt at most once, looking it up first if a send may have reached the venue.

        A transient error propagates with the record stored as ``placing``; a permanent one
        marks it failed (or partially filled). With a ``ledger`` (during reconcile) the record
        may carry fills booked into it but not yet stored, so every write carries the ledger too.
        """

        def save() -> None:
            if ledger is None:
                self.store.put_intent(record)
            else:
                self.store.book(record, ledger)

        intent = record.intent
        client_order_id = intent.client_order_id(record.attempt)
        market_order = self.rules.is_market_attempt(record)
        order: ExchangeOrder | None = None
        if record.status is IntentStatus.PLACING:
            order = self.exchange.find_order_by_client_id(client_order_id, intent.symbol)
        if order is None:
            record.status = IntentStatus.PLACING
            save()
            try:
                if market_order:
                    order = self.exchange.create_market_order(
                        intent.symbol, intent.side, record.amount, client_order_id
                    )
                else:
                    order = self.exchange.create_limit_order(
                        intent.symbol, intent.side, record.amount, record.price, client_order_id
                    )
            except PermanentExchangeError as e:
                record.status = IntentStatus.FAILED if not record.filled else IntentStatus.PARTIALLY_FILLED
                refused = f"exchange refused attempt {record.attempt + 1}: {type(e).__name__}: {e}"
                record.reason = f"{self.rules.fallback_note()}, but the {refused}" if market_order else refused
                save()
                return
        # Stored order states are what the ledger has booked; fills are booked by reconcile.
        self.remember(record, replace(order, filled=ZERO, cost=ZERO, fees=()))
        record.status = IntentStatus.OPEN
        record.placed_at = self.clock()
        save()

    def advance(self, record: IntentRecord, ledger: Ledger, *, stop_loss: bool = False) -> None:
        """Move one working intent on: place it, book its fills, and cancel and chase an attempt left resting."""
        if record.status in (IntentStatus.PLANNED, IntentStatus.PLACING):
            self.place(record, ledger)
            if record.status is not IntentStatus.OPEN:
                return
        order = record.current_order
        if order is None:
            raise ValueError(f"intent {record.intent.intent_id} is open without an order")
        symbol = record.intent.symbol
        fresh = self._read(partial(self.exchange.fetch_order, order.id, symbol))
        self.book(record, fresh, ledger)
        if fresh.status is OrderStatus.OPEN:
            if record.placed_at and self.clock() - record.placed_at < self.rules.fill_timeout:
                return
            # The cancel answers with the order as it is afterwards: a fill may have raced it.
            fresh = self._read(partial(self.exchange.cancel_order, order.id, symbol))
            self.book(record, fresh, ledger)
        if fresh.status is OrderStatus.REJECTED and not record.filled:
            record.status, record.reason = IntentStatus.FAILED, f"order {fresh.id} was rejected by the exchange"
            return
        self._after_attempt(record, ledger, stop_loss=stop_loss)

    def _after_attempt(self, record: IntentRecord, ledger: Ledger, *, stop_loss: bool = False) -> None:
        intent = record.intent
        market = self.markets()[intent.symbol]
        remaining = intent.amount - record.filled
        market_attempt = self.rules.is_market_attempt(record)
        if remaining <= 0:
            # A fill that needed the market-order fallback keeps saying so.
            record.status = IntentStatus.FILLED
            record.reason = self.rules.fallback_note() if market_attempt else ""
            return
        if market_attempt:
            _give_up(record, f"{self.rules.fallback_note()}; {plain(remaining)} {market.base} still unfilled")
            return
        if record.attempt >= self.rules.max_reprice_attempts:
            unfilled = f"{plain(remaining)} {market.base} unfilled after {record.attempt + 1} placements"
            if stop_loss and intent.side is Side.SELL:
                self._fall_back_to_market(record, ledger, unfilled)
            else:
                _give_up(record, unfilled)
            return
        last = self._read(partial(self.exchange.fetch_last_price, intent.symbol))
        price = limit_price(last, intent.side, self.rules.increment * (record.attempt + 2), market)
        amount = market.amount_to_precision(remaining)
        if intent.side is Side.BUY:
            # The cancelled order's funds are free again; re-check what they cover at the new price.
            quote = self._read(self.exchange.fetch_balances).get(market.quote, Balance())
            amount = min(amount, affordable_amount(quote.free, price, market))
        reason = market.below_minimum(amount, price)
        if reason is not None:
            _give_up(record, f"remainder {plain(remaining)} {market.base} not re-placed: {reason}")
            return
        record.attempt += 1
        record.amount, record.price = amount, price
        record.status, record.placed_at = IntentStatus.PLANNED, None
        self.place(record, ledger)

    def _fall_back_to_market(self, record: IntentRecord, ledger: Ledger, unfilled: str) -> None:
        """Sell a stop loss's remainder at market once the limit chases are spent, where the venue allows."""
        market = self.markets()[record.intent.symbol]
        if not self.exchange.supports_market_orders:
            _give_up(record, f"{unfilled}; {self.exchange.name} takes no market orders to fall back to")
            return
        amount = market.amount_to_precision(record.intent.amount - record.filled)
        last = self._read(partial(self.exchange.fetch_last_price, record.intent.symbol))
        reason = market.below_minimum(amount, last)
        if reason is not None:
            _give_up(record, f"{unfilled}; no market-order fallback: {reason}")
            return
        record.attempt = self.rules.max_reprice_attempts + 1
        record.amount, record.price = amount, last  # the price is only the reference a market order had
        record.status, record.placed_at = IntentStatus.PLANNED, None
        record.reason = self.rules.fallback_note()
        self.place(record, ledger)

    def _read[T](self, fn: Callable[[], T]) -> T:
        return call_with_retry(fn, self.retry, sleep=self.sleep)


def _give_up(record: IntentRecord, reason: str) -> None:
    record.status = IntentStatus.PARTIALLY_FILLED if record.filled else IntentStatus.UNFILLED
    record.reason = reason + "; the remainder was cancelled"
