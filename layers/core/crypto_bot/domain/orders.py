"""Orders: what the engine intends to trade, and what the exchange says happened."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from crypto_bot.domain.markets import Side
from crypto_bot.domain.money import ZERO


class Purpose(StrEnum):
    """Why an order exists; also the phase of the cycle it belongs to."""

    EXIT = "exit"  # a strategy went flat: sell its whole ledger amount
    SELL_DOWN = "sell_down"  # boost: an active strategy above its target gives capital back
    ENTRY = "entry"  # a strategy went long: buy its allocation


class OrderStatus(StrEnum):
    """An exchange order's state, normalized from the venue's vocabulary."""

    OPEN = "open"
    CLOSED = "closed"  # fully filled
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self is not OrderStatus.OPEN


@dataclass(frozen=True)
class Fee:
    cost: Decimal
    currency: str


@dataclass(frozen=True)
class Balance:
    free: Decimal = ZERO
    used: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.free + self.used


@dataclass(frozen=True)
class ExchangeOrder:
    """An order as the exchange reports it, in exact decimals."""

    id: str
    client_order_id: str | None
    symbol: str
    side: Side
    amount: Decimal
    price: Decimal
    status: OrderStatus
    filled: Decimal = ZERO
    cost: Decimal = ZERO  # quote spent or received by the fills, fees excluded
    fees: tuple[Fee, ...] = ()
    # False when the venue said nothing about the fees of these fills, neither on the order nor in its
    # trades: ``fees`` is then empty because nothing is known, not because nothing was charged.
    fees_reported: bool = True
    # A stop order's trigger: it rests off the book until the last price reaches ``stop_price``, then the
    # venue places its limit at ``price``. None for every other order.
    stop_price: Decimal | None = None
    # True once the venue has put a stop order's limit on the book (a fill implies it); False for an
    # untriggered stop and for every other order.
    triggered: bool = False

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled

    @property
    def average(self) -> Decimal | None:
        return self.cost / self.filled if self.filled else None

    def fee_in(self, currency: str) -> Decimal:
        return sum((f.cost for f in self.fees if f.currency == currency), ZERO)


@dataclass(frozen=True)
class OrderIntent:
    """One order the engine means to place. Its id makes placement idempotent.

    For buys ``amount`` is already sized from the notional and the free balance.
    """

    intent_id: str
    cycle_id: str
    strategy: str
    symbol: str
    side: Side
    purpose: Purpose
    amount: Decimal
    limit_price: Decimal
    notional: Decimal
    signal_keys: tuple[str, ...] = field(default=())
    reference_price: Decimal = ZERO  # the last price the plan saw; slippage is measured against it

    def client_order_id(self, attempt: int = 0) -> str:
        """Derive the exchange client order id; attempt N is a chase re-placement.

        32 hex digits ("cb", 24 of the intent id, "a", the attempt in 5 digits), so that every major venue
        accepts it: Binance takes up to 36 characters, and Kraken's ``cl_ord_id`` only a UUID, 32 hex digits
        or free text of at most 18 characters (Kraken's AddOrder reference).
        """
        if not 0 <= attempt <= 99999:
            raise ValueError(f"attempt {attempt} does not fit the client order id's 5 digits")
        return f"cb{self.intent_id[:24]}a{attempt:05d}"


def intent_id(cycle_id: str, purpose: Purpose, strategy: str) -> str:
    """Derive a stable intent id: the same cycle, purpose and strategy give the same id."""
    return hashlib.sha256(f"{cycle_id}|{purpose.value}|{strategy}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Skipped:
    """An order the engine decided not to send, with the reason."""

    strategy: str
    symbol: str
    side: Side
    purpose: Purpose
    reason: str
    amount: Decimal = ZERO
    limit_price: Decimal = ZERO
