"""Markets: what an exchange allows for one symbol (precision, minimums, fees)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from crypto_bot.domain.money import ZERO, floor_to_step, plain, round_to_step


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


@dataclass(frozen=True)
class Market:
    """Trading rules of one spot market, in exact decimals.

    ``amount_step`` and ``price_step`` are the lot size and tick size. Exchanges that
    state precision as decimal places are converted at the adapter (2 places → 0.01).
    """

    symbol: str
    base: str
    quote: str
    amount_step: Decimal
    price_step: Decimal
    min_amount: Decimal = ZERO
    min_cost: Decimal = ZERO
    maker_fee: Decimal = ZERO
    taker_fee: Decimal = ZERO

    def __post_init__(self) -> None:
        for name in ("amount_step", "price_step"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{self.symbol}: {name} must be positive, got {getattr(self, name)}")
        for name in ("min_amount", "min_cost", "maker_fee", "taker_fee"):
            if getattr(self, name) < 0:
                raise ValueError(f"{self.symbol}: {name} must not be negative, got {getattr(self, name)}")

    def amount_to_precision(self, amount: Decimal) -> Decimal:
        """Truncate an amount to the lot size; an order never exceeds what was asked."""
        return floor_to_step(amount, self.amount_step)

    def price_to_precision(self, price: Decimal) -> Decimal:
        """Round a price to the nearest tick (handles ticks like 0.5, not just powers of ten)."""
        return round_to_step(price, self.price_step)

    def below_minimum(self, amount: Decimal, price: Decimal) -> str | None:
        """Say why an order of ``amount`` at ``price`` is below this market's minimums, or None."""
        if amount <= 0:
            return f"amount {plain(amount)} rounds to nothing at lot size {plain(self.amount_step)}"
        if amount < self.min_amount:
            return f"amount {plain(amount)} is below the market minimum {plain(self.min_amount)} {self.base}"
        cost = amount * price
        if cost < self.min_cost:
            return f"cost {plain(cost)} {self.quote} is below the market minimum {plain(self.min_cost)} {self.quote}"
        return None


def split_symbol(symbol: str) -> tuple[str, str]:
    """Split ``BASE/QUOTE`` (optionally ``BASE/QUOTE:SETTLE``) into base and quote."""
    spot = symbol.split(":", 1)[0]
    parts = spot.split("/")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ValueError(f"symbol {symbol!r} is not of the form BASE/QUOTE")
    return parts[0], parts[1]
