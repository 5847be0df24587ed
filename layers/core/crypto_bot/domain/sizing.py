"""Order pricing and sizing: marketable limit prices and amounts the balance can cover."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from crypto_bot.domain.markets import Market, Side
from crypto_bot.domain.money import ONE, ZERO


def limit_price(last: Decimal, side: Side, increment: Decimal, market: Market) -> Decimal:
    """Price a limit order like a market order: last × (1 ± increment), on the tick grid."""
    if last <= 0:
        raise ValueError(f"{market.symbol}: last price must be positive, got {last}")
    factor = ONE + increment if side is Side.BUY else ONE - increment
    price = market.price_to_precision(last * factor)
    if price <= 0:
        raise ValueError(f"{market.symbol}: price {last} × {factor} rounds to zero at tick {market.price_step}")
    return price


@dataclass(frozen=True)
class Sized:
    """The amount to send, or why nothing can be sent."""

    amount: Decimal
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def buy_cost_with_fee(amount: Decimal, price: Decimal, market: Market) -> Decimal:
    """The most quote a buy can consume: its cost plus the taker fee on it."""
    return amount * price * (ONE + market.taker_fee)


def size_buy(notional: Decimal, price: Decimal, free_quote: Decimal, market: Market) -> Sized:
    """Size a buy whose cost plus taker fee spends at most ``notional`` and at most ``free_quote``.

    The fee comes out of the strategy's own allocation, so its cost basis (fees
    included) never exceeds its target.
    """
    if notional <= 0:
        return Sized(ZERO, f"nothing to buy: notional {notional}")
    per_unit = price * (ONE + market.taker_fee)
    wanted = notional / per_unit
    affordable = max(free_quote, ZERO) / per_unit
    amount = market.amount_to_precision(min(wanted, affordable))
    reason = market.below_minimum(amount, price)
    if reason and affordable < wanted:
        reason = f"{reason} (free {market.quote} {free_quote} covers only {affordable:.8f} {market.base})"
    return Sized(amount if reason is None else ZERO, reason)


def affordable_amount(free_quote: Decimal, price: Decimal, market: Market) -> Decimal:
    """The largest lot-size amount whose cost plus taker fee fits ``free_quote``."""
    return market.amount_to_precision(max(free_quote, ZERO) / (price * (ONE + market.taker_fee)))


def size_sell(wanted: Decimal, free_base: Decimal, price: Decimal, market: Market) -> Sized:
    """Size a sell of ``wanted`` base, capped by the free balance and truncated to the lot size."""
    amount = market.amount_to_precision(min(wanted, max(free_base, ZERO)))
    reason = market.below_minimum(amount, price)
    if reason and free_base < wanted:
        reason = f"{reason} (free {market.base} is only {free_base})"
    return Sized(amount if reason is None else ZERO, reason)
