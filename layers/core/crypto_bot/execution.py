"""Execution: place one order intent idempotently, wait for fills, chase, and book fills.

The same functions serve the in-process engine (replay, demo) and the per-order
Lambdas of the deployed workflow, so there is one definition of "placing an order".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import partial

from crypto_bot.config import Strategy
from crypto_bot.errors import ExchangeError, PermanentExchangeError, TransientExchangeError
from crypto_bot.ledger import Ledger
from crypto_bot.markets import Market, Side
from crypto_bot.money import ZERO, plain
from crypto_bot.orders import ExchangeOrder, Fee, OrderIntent, OrderStatus, Purpose
from crypto_bot.ports import Exchange
from crypto_bot.retry import RetryPolicy, call_with_retry
from crypto_bot.sizing import affordable_amount, limit_price


@dataclass(frozen=True)
class SettlePolicy:
    """How long to wait for fills and how hard to chase an unfilled order."""

    fill_checks: int = 3  # fill checks before an open order is cancelled and chased
    check_interval: float = 1.0  # seconds between fill checks
    max_reprice_attempts: int = 2  # re-placements after the first placement
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class ResultStatus(StrEnum):
    FILLED = "filled"
    PARTIALLY_FILLED = "partially_filled"
    UNFILLED = "unfilled"  # cancelled with nothing filled, after every chase attempt
    FAILED = "failed"  # the exchange refused it, or could not be reached
    SKIPPED = "skipped"  # never sent: below the market minimum or nothing to cover it


@dataclass
class OrderResult:
    """What became of one intent: every exchange order placed for it, and the totals."""

    strategy: str
    symbol: str
    side: Side
    purpose: Purpose
    amount: Decimal  # what the intent asked for
    limit_price: Decimal
    status: ResultStatus
    reason: str = ""
    intent: OrderIntent | None = None
    orders: list[ExchangeOrder] = field(default_factory=list)
    filled: Decimal = ZERO
    cost: Decimal = ZERO
    fees: list[Fee] = field(default_factory=list)

    def fee_total(self, currency: str) -> Decimal:
        return sum((f.cost for f in self.fees if f.currency == currency), ZERO)


def place_intent(
    exchange: Exchange,
    intent: OrderIntent,
    *,
    attempt: int,
    amount: Decimal,
    price: Decimal,
    retry: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> ExchangeOrder:
    """Place one attempt of an intent at most once, whatever the network does.

    The client order id is derived from the intent id and the attempt number. After a
    transient error the outcome is unknown (the exchange may have accepted the order
    before the connection dropped), so the order is looked up by client id before it
    is sent again.
    """
    client_order_id = intent.client_order_id(attempt)
    unknown_outcome = False

    def send() -> ExchangeOrder:
        nonlocal unknown_outcome
        if unknown_outcome:
            existing = exchange.find_order_by_client_id(client_order_id, intent.symbol)
            if existing is not None:
                return existing
        try:
            return exchange.create_limit_order(intent.symbol, intent.side, amount, price, client_order_id)
        except TransientExchangeError:
            unknown_outcome = True
            raise

    return call_with_retry(send, retry, sleep=sleep)


class FillBook:
    """Books each newly observed fill of an order into the ledger exactly once."""

    def __init__(self, ledger: Ledger, strategy: Strategy, clock: Callable[[], datetime]) -> None:
        self.ledger = ledger
        self.strategy = strategy
        self.clock = clock
        self._seen: dict[str, ExchangeOrder] = {}

    def observe(self, order: ExchangeOrder, result: OrderResult) -> None:
        before = self._seen.get(order.id)
        filled = order.filled - (before.filled if before else ZERO)
        cost = order.cost - (before.cost if before else ZERO)
        fees = []
        for currency in sorted({f.currency for f in order.fees}):
            delta = order.fee_in(currency) - (before.fee_in(currency) if before else ZERO)
            if delta:
                fees.append(Fee(delta, currency))
        self._seen[order.id] = order
        if filled <= 0 and not fees:
            return
        self.ledger.apply_fill(
            self.strategy, order.side, order_id=order.id, filled=filled, cost=cost, fees=fees, at=self.clock()
        )
        result.filled += filled
        result.cost += cost
        result.fees.extend(fees)


def execute_intent(
    exchange: Exchange,
    intent: OrderIntent,
    *,
    strategy: Strategy,
    market: Market,
    ledger: Ledger,
    increment: Decimal,
    policy: SettlePolicy,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None] = time.sleep,
) -> OrderResult:
    """Place an intent, wait for fills, chase the unfilled rest, and book every fill.

    Each chase cancels the open order (re-reading it afterwards, since a fill can race
    the cancel) and re-places the remainder at a fresh price with a wider increment.
    """
    result = OrderResult(
        strategy=intent.strategy,
        symbol=intent.symbol,
        side=intent.side,
        purpose=intent.purpose,
        amount=intent.amount,
        limit_price=intent.limit_price,
        status=ResultStatus.UNFILLED,
        intent=intent,
    )
    book = FillBook(ledger, strategy, clock)
    amount, price = intent.amount, intent.limit_price
    failed = False
    for attempt in range(policy.max_reprice_attempts + 1):
        try:
            order = place_intent(
                exchange, intent, attempt=attempt, amount=amount, price=price, retry=policy.retry, sleep=sleep
            )
            book.observe(order, result)
            checks = 0
            while order.status is OrderStatus.OPEN and checks < policy.fill_checks:
                sleep(policy.check_interval)
                order = call_with_retry(
                    partial(exchange.fetch_order, order.id, intent.symbol), policy.retry, sleep=sleep
                )
                book.observe(order, result)
                checks += 1
            if order.status is OrderStatus.OPEN:
                order = call_with_retry(
                    partial(exchange.cancel_order, order.id, intent.symbol), policy.retry, sleep=sleep
                )
                book.observe(order, result)
        except ExchangeError as e:
            kind = "refused" if isinstance(e, PermanentExchangeError) else "unreachable"
            result.reason = f"exchange {kind} on attempt {attempt + 1}: {type(e).__name__}: {e}"
            failed = True
            break
        result.orders.append(order)
        if order.status is OrderStatus.REJECTED:
            result.reason = f"order {order.id} rejected by the exchange"
            failed = True
            break
        remaining = intent.amount - result.filled
        if remaining <= 0:
            result.reason = ""
            break
        if attempt == policy.max_reprice_attempts:
            result.reason = (
                f"{plain(remaining)} {market.base} unfilled after {attempt + 1} placements; remainder cancelled"
            )
            break
        try:
            last = call_with_retry(partial(exchange.fetch_last_price, intent.symbol), policy.retry, sleep=sleep)
            price = limit_price(last, intent.side, increment * (attempt + 2), market)
            amount = market.amount_to_precision(remaining)
            if intent.side is Side.BUY:
                # Funds locked by the cancelled order are free again; re-check what they cover.
                quote = exchange.fetch_balances().get(market.quote)
                amount = min(amount, affordable_amount(quote.free if quote else ZERO, price, market))
            reason = market.below_minimum(amount, price)
        except ExchangeError as e:
            result.reason = f"could not re-price the remainder: {type(e).__name__}: {e}"
            failed = True
            break
        if reason is not None:
            result.reason = f"remainder {plain(remaining)} {market.base} not re-placed: {reason}"
            break

    if result.filled >= intent.amount:
        result.status = ResultStatus.FILLED
    elif result.filled > 0:
        result.status = ResultStatus.PARTIALLY_FILLED
    else:
        result.status = ResultStatus.FAILED if failed else ResultStatus.UNFILLED
    return result
