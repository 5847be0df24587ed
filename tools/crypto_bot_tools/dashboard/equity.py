"""Equity over time, from the cycle records: the cash and holdings after each cycle, marked to market.

The account after each cycle is found backwards from the account now (cash and ledger positions), undoing
each later cycle's fills (cost and fees, from its intents), so it needs no starting cash, which a live
account has not recorded anywhere. Each holding is valued at the last price known when the cycle ran: the
price of the last alert for its strategy that a cycle up to then collected (what the paper exchange
trades at), else its last fill. A point whose holding has no known price has no equity: it is not drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from crypto_bot.domain.markets import split_symbol
from crypto_bot.domain.money import ZERO
from crypto_bot.domain.orders import Side
from crypto_bot_tools.ops.rows import CycleRow, Holdings, SignalRow

__all__ = ["EquityPoint", "equity_series"]


@dataclass(frozen=True)
class EquityPoint:
    """The account before the first cycle shown (``kind`` "start"), right after a cycle ("cycle"), or "now"."""

    at: datetime
    kind: str
    cycle_id: str | None  # the cycle a "cycle" point follows
    cash: Decimal
    holdings: Mapping[str, Decimal]  # amount per symbol
    equity: Decimal | None  # None: a holding had no known price
    trades: tuple[str, ...] = ()  # what the cycle's orders filled: "buy 0.1 BTC/USDT (entry)"


def equity_series(
    cycles: Sequence[CycleRow], signals: Sequence[SignalRow], now: Holdings, at: datetime
) -> list[EquityPoint]:
    """Return the account after each cycle of ``cycles`` (oldest first), then ``at`` (now) when its equity is
    known; [] when the cash now is not."""
    if now.cash is None:
        return []
    # A local stack with no position names no quote currency: its orders' symbols do.
    quote = now.quote or next((split_symbol(r.intent.symbol)[1] for row in cycles for r in row.intents), "")
    cash = now.cash
    held: dict[str, Decimal] = {}
    for position in now.positions:
        held[position.symbol] = held.get(position.symbol, ZERO) + position.amount
    held_now = {symbol: amount for symbol, amount in held.items() if amount}
    after: list[tuple[Decimal, dict[str, Decimal]]] = []
    for row in reversed(cycles):
        after.append((cash, dict(held)))
        change, moves = _cycle_change(row, quote)
        cash -= change
        for symbol, amount in moves.items():
            held[symbol] = held.get(symbol, ZERO) - amount
    after.reverse()
    prices = _prices_after_each(cycles, signals)
    points = []
    if cycles:
        # What the first cycle started from: its holdings (none, for a new account) at no price known yet.
        before = {symbol: amount for symbol, amount in held.items() if amount}
        start = EquityPoint(cycles[0].record.at, "start", None, cash, before, _value(cash, before, {}))
        points.append(start)
    for row, (cash_then, held_then), known in zip(cycles, after, prices, strict=True):
        holdings = {symbol: amount for symbol, amount in held_then.items() if amount}
        value = _value(cash_then, holdings, known)
        trades = tuple(
            f"{r.intent.side.value} {r.filled.normalize():f} {r.intent.symbol} ({r.intent.purpose.value})"
            for r in row.intents
            if r.filled
        )
        points.append(EquityPoint(row.record.at, "cycle", row.record.cycle_id, cash_then, holdings, value, trades))
    if now.equity is not None:
        latest = max([p.at for p in points], default=at)
        points.append(EquityPoint(max(at, latest), "now", None, now.cash, held_now, now.equity))
    return points


def _cycle_change(row: CycleRow, quote: str) -> tuple[Decimal, dict[str, Decimal]]:
    """What the cycle's fills changed: the quote cash, and the amount held of each symbol."""
    cash = ZERO
    moves: dict[str, Decimal] = {}
    for record in row.intents:
        symbol = record.intent.symbol
        base = split_symbol(symbol)[0]
        sign = 1 if record.intent.side is Side.BUY else -1
        cash -= sign * record.cost
        moves[symbol] = moves.get(symbol, ZERO) + sign * record.filled
        for fee in record.fees:
            if fee.currency == quote:
                cash -= fee.cost
            elif fee.currency == base:
                moves[symbol] -= fee.cost
    return cash, moves


def _prices_after_each(cycles: Sequence[CycleRow], signals: Sequence[SignalRow]) -> list[dict[str, Decimal]]:
    """The last price known of each symbol when each cycle ended: its collected alerts', else its fills'."""
    symbols = {r.intent.strategy: r.intent.symbol for row in cycles for r in row.intents}
    by_key = {s.dedupe_key: s for s in signals}
    alerts: dict[str, Decimal] = {}
    fills: dict[str, Decimal] = {}
    known = []
    for row in cycles:
        collected = [by_key[k] for k in row.record.signal_keys if k in by_key]
        for signal in sorted(collected, key=lambda s: (s.time or s.received_at, s.dedupe_key)):
            price = _price(signal.price)
            symbol = symbols.get(signal.strategy)
            if price is not None and symbol is not None and signal.status != "rejected":
                alerts[symbol] = price
        for record in row.intents:
            if record.filled:
                fills[record.intent.symbol] = record.cost / record.filled
        known.append({**fills, **alerts})
    return known


def _price(text: str) -> Decimal | None:
    try:
        price = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return price if price.is_finite() and price > 0 else None


def _value(cash: Decimal, holdings: Mapping[str, Decimal], prices: Mapping[str, Decimal]) -> Decimal | None:
    if any(symbol not in prices for symbol in holdings):
        return None
    return cash + sum((amount * prices[symbol] for symbol, amount in holdings.items()), ZERO)
