"""The per-strategy position ledger: the source of truth for what each strategy holds.

Positions are updated from actual fills only. Several strategies may hold the same
base asset; the ledger keeps them apart, and :meth:`Ledger.drift` compares their sum
with what the exchange says the account holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from crypto_bot.domain.config import Strategy
from crypto_bot.domain.markets import Market, Side
from crypto_bot.domain.money import ZERO
from crypto_bot.domain.orders import Balance, Fee


@dataclass(frozen=True)
class RestingStop:
    """A strategy's protective stop resting on the venue, and how much of it the ledger has booked.

    ``filled``, ``cost`` and ``fees`` are what is booked already, so reading the order again books only
    the difference, however often it is read.
    """

    order_id: str
    client_order_id: str
    amount: Decimal
    stop_price: Decimal
    limit_price: Decimal
    placed_at: datetime
    filled: Decimal = ZERO
    cost: Decimal = ZERO
    fees: tuple[Fee, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "client_order_id": self.client_order_id,
            "amount": str(self.amount),
            "stop_price": str(self.stop_price),
            "limit_price": str(self.limit_price),
            "placed_at": self.placed_at.isoformat(),
            "filled": str(self.filled),
            "cost": str(self.cost),
            "fees": [{"cost": str(f.cost), "currency": f.currency} for f in self.fees],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RestingStop:
        return cls(
            order_id=str(data["order_id"]),
            client_order_id=str(data["client_order_id"]),
            amount=Decimal(str(data["amount"])),
            stop_price=Decimal(str(data["stop_price"])),
            limit_price=Decimal(str(data["limit_price"])),
            placed_at=datetime.fromisoformat(str(data["placed_at"])),
            filled=Decimal(str(data.get("filled", "0"))),
            cost=Decimal(str(data.get("cost", "0"))),
            fees=tuple(Fee(Decimal(str(f["cost"])), str(f["currency"])) for f in data.get("fees") or ()),
        )


@dataclass(frozen=True)
class Position:
    """What one strategy holds. ``cost_basis`` is the quote spent on it, fees included."""

    strategy: str
    symbol: str
    base: str
    quote: str
    amount: Decimal = ZERO
    cost_basis: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    opened_at: datetime | None = None
    # The time of the newest alert a cycle has taken for this strategy: an older one arriving later is out of
    # order (a buy delivered after the stop loss that followed it) and must not trade.
    decided_through: datetime | None = None
    # The protective stop resting on the venue for this position (crypto_bot.engine.stops), if any.
    stop: RestingStop | None = None
    # When a protective stop closed the position: a later stop-loss alert for the same trade is told so.
    stopped_at: datetime | None = None
    # The price this trade's protective stop triggers at: kept while the stop is lifted for a sell-down, so the
    # stop placed again for what is left keeps it. A buy from flat (a new trade) forgets it.
    stop_level: Decimal | None = None

    @property
    def is_long(self) -> bool:
        return self.amount > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "symbol": self.symbol,
            "base": self.base,
            "quote": self.quote,
            "amount": str(self.amount),
            "cost_basis": str(self.cost_basis),
            "realized_pnl": str(self.realized_pnl),
            "opened_at": self.opened_at.isoformat() if self.opened_at else None,
            "decided_through": self.decided_through.isoformat() if self.decided_through else None,
            # Only positions that have them carry these, so every other position item keeps its shape.
            **({"stop": self.stop.to_dict()} if self.stop else {}),
            **({"stopped_at": self.stopped_at.isoformat()} if self.stopped_at else {}),
            **({"stop_level": str(self.stop_level)} if self.stop_level is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Position:
        opened = data.get("opened_at")
        decided = data.get("decided_through")
        return cls(
            strategy=str(data["strategy"]),
            symbol=str(data["symbol"]),
            base=str(data["base"]),
            quote=str(data["quote"]),
            amount=Decimal(str(data["amount"])),
            cost_basis=Decimal(str(data["cost_basis"])),
            realized_pnl=Decimal(str(data["realized_pnl"])),
            opened_at=datetime.fromisoformat(opened) if opened else None,
            decided_through=datetime.fromisoformat(decided) if decided else None,
            stop=RestingStop.from_dict(data["stop"]) if data.get("stop") else None,
            stopped_at=datetime.fromisoformat(str(data["stopped_at"])) if data.get("stopped_at") else None,
            stop_level=Decimal(str(data["stop_level"])) if data.get("stop_level") is not None else None,
        )


@dataclass(frozen=True)
class LedgerEntry:
    """The audit record of one fill (or part of one) booked against a strategy."""

    strategy: str
    side: Side
    order_id: str
    base_delta: Decimal  # change of the strategy's amount
    cost_delta: Decimal  # change of its cost basis
    realized_pnl: Decimal
    fees: tuple[Fee, ...]
    at: datetime
    note: str = ""


@dataclass
class Ledger:
    """All positions, plus unsellable dust per asset left behind by closed positions."""

    positions: dict[str, Position] = field(default_factory=dict)
    dust: dict[str, Decimal] = field(default_factory=dict)
    entries: list[LedgerEntry] = field(default_factory=list)

    def position(self, strategy: Strategy) -> Position:
        """Return the strategy's position, flat if it never traded."""
        existing = self.positions.get(strategy.key)
        if existing is not None:
            return existing
        return Position(strategy=strategy.key, symbol=strategy.symbol, base=strategy.base, quote=strategy.quote)

    def long_positions(self) -> list[Position]:
        return sorted((p for p in self.positions.values() if p.is_long), key=lambda p: p.strategy)

    def invested_cost_basis(self) -> Decimal:
        return sum((p.cost_basis for p in self.positions.values() if p.is_long), ZERO)

    def apply_fill(
        self,
        strategy: Strategy,
        side: Side,
        *,
        order_id: str,
        filled: Decimal,
        cost: Decimal,
        fees: Iterable[Fee],
        at: datetime,
        note: str = "",
    ) -> LedgerEntry:
        """Book a fill (a delta: the newly filled amount and its quote cost).

        A fee in the base asset changes the amount received or given; a fee in the
        quote changes the cash; a fee in a third currency (e.g. BNB) is recorded in
        the entry but cannot be valued here, so it is left out of the cost basis.
        """
        if filled < 0 or cost < 0:
            raise ValueError(f"fill deltas must not be negative (filled={filled}, cost={cost})")
        fees = tuple(fees)
        base_fee = sum((f.cost for f in fees if f.currency == strategy.base), ZERO)
        quote_fee = sum((f.cost for f in fees if f.currency == strategy.quote), ZERO)
        position = self.position(strategy)
        if side is Side.BUY:
            base_delta = filled - base_fee
            cost_delta = cost + quote_fee
            realized = ZERO
            updated = replace(
                position,
                amount=position.amount + base_delta,
                cost_basis=position.cost_basis + cost_delta,
                opened_at=position.opened_at or at,
                stopped_at=None,
                stop_level=position.stop_level if position.is_long else None,
            )
        else:
            leaving = filled + base_fee
            if leaving > position.amount:
                excess = f"sold {leaving} but the ledger held {position.amount}; the excess shows as drift"
                note = f"{note}; {excess}" if note else excess
                leaving = position.amount
            fraction = leaving / position.amount if position.amount else ZERO
            removed = position.cost_basis * fraction
            proceeds = cost - quote_fee
            realized = proceeds - removed
            base_delta = -leaving
            cost_delta = -removed
            amount = position.amount - leaving
            updated = replace(
                position,
                amount=amount,
                cost_basis=position.cost_basis - removed if amount else ZERO,
                realized_pnl=position.realized_pnl + realized,
                opened_at=position.opened_at if amount else None,
            )
        self.positions[strategy.key] = updated
        entry = LedgerEntry(
            strategy=strategy.key,
            side=side,
            order_id=order_id,
            base_delta=base_delta,
            cost_delta=cost_delta,
            realized_pnl=realized,
            fees=fees,
            at=at,
            note=note,
        )
        self.entries.append(entry)
        return entry

    def sweep_dust(self, strategy: Strategy, market: Market) -> Decimal:
        """Close a position whose remainder cannot be sold (below lot size or minimum).

        The remainder moves to the per-asset dust bucket so the drift check still
        balances, and its cost basis is realized as a loss. Return the dust moved.
        """
        position = self.position(strategy)
        remainder = position.amount
        sellable = market.amount_to_precision(remainder)
        if remainder <= 0 or (sellable > 0 and sellable >= market.min_amount):
            return ZERO
        self.dust[position.base] = self.dust.get(position.base, ZERO) + remainder
        self.positions[strategy.key] = replace(
            position,
            amount=ZERO,
            cost_basis=ZERO,
            realized_pnl=position.realized_pnl - position.cost_basis,
            opened_at=None,
        )
        return remainder

    def amounts_by_asset(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = dict(self.dust)
        for p in self.positions.values():
            if p.amount:
                totals[p.base] = totals.get(p.base, ZERO) + p.amount
        return totals

    def drift(self, balances: Mapping[str, Balance]) -> dict[str, Decimal]:
        """Exchange balance minus ledger amount, per base asset the ledger knows.

        Zero means the ledger and the account agree; positive means the account
        holds more than the strategies own (e.g. a manual deposit).
        """
        assets = {p.base for p in self.positions.values()} | set(self.dust)
        held = self.amounts_by_asset()
        return {asset: balances.get(asset, Balance()).total - held.get(asset, ZERO) for asset in sorted(assets)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "positions": {k: p.to_dict() for k, p in sorted(self.positions.items())},
            "dust": {k: str(v) for k, v in sorted(self.dust.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ledger:
        return cls(
            positions={k: Position.from_dict(v) for k, v in data.get("positions", {}).items()},
            dust={k: Decimal(str(v)) for k, v in data.get("dust", {}).items()},
        )
