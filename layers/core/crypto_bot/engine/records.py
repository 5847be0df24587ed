"""The records the workflow persists between steps: signals, cycles and order intents, with their phases.

Records are plain dataclasses with a dict form (decimals as strings, times as ISO-8601), so every store
adapter keeps exactly the same shape. The port is :class:`crypto_bot.engine.ports.Store`; the adapters are
:mod:`crypto_bot.adapters.memory` and :mod:`crypto_bot.adapters.aws.dynamodb_store`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from crypto_bot.domain.allocation import SignalStatus
from crypto_bot.domain.markets import Side
from crypto_bot.domain.money import ZERO
from crypto_bot.domain.orders import ExchangeOrder, Fee, OrderIntent, OrderStatus, Purpose


class Phase(StrEnum):
    """The trading phases of a cycle, in order. Each one settles before the next plans."""

    EXITS = "exits"
    SELL_DOWNS = "sell_downs"
    ENTRIES = "entries"

    def next(self) -> Phase | None:
        order = list(Phase)
        index = order.index(self)
        return order[index + 1] if index + 1 < len(order) else None


class IntentStatus(StrEnum):
    PLANNED = "planned"  # decided, not sent yet
    PLACING = "placing"  # a placement was started: its outcome may be unknown
    OPEN = "open"  # an order is working on the exchange
    FILLED = "filled"
    PARTIALLY_FILLED = "partially_filled"  # done: the rest was cancelled after the last chase
    UNFILLED = "unfilled"  # done: nothing filled after every chase
    FAILED = "failed"  # the exchange refused it, or could not be reached
    SKIPPED = "skipped"  # never sent (below the market minimum, nothing to cover it)

    @property
    def is_done(self) -> bool:
        return self not in (IntentStatus.PLANNED, IntentStatus.PLACING, IntentStatus.OPEN)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _time(text: object) -> datetime | None:
    return datetime.fromisoformat(str(text)) if text else None


def order_to_dict(order: ExchangeOrder) -> dict[str, Any]:
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
        "fees": [{"cost": str(f.cost), "currency": f.currency} for f in order.fees],
        # Only stop orders carry the stop's fields, so the records of every other order keep their shape.
        **({} if order.stop_price is None else {"stop_price": str(order.stop_price), "triggered": order.triggered}),
    }


def order_from_dict(data: Mapping[str, Any]) -> ExchangeOrder:
    return ExchangeOrder(
        id=str(data["id"]),
        client_order_id=data.get("client_order_id"),
        symbol=str(data["symbol"]),
        side=Side(data["side"]),
        amount=Decimal(str(data["amount"])),
        price=Decimal(str(data["price"])),
        status=OrderStatus(data["status"]),
        filled=Decimal(str(data["filled"])),
        cost=Decimal(str(data["cost"])),
        fees=tuple(Fee(Decimal(str(f["cost"])), str(f["currency"])) for f in data.get("fees", [])),
        stop_price=None if data.get("stop_price") is None else Decimal(str(data["stop_price"])),
        triggered=data.get("triggered") is True,
    )


def intent_to_dict(intent: OrderIntent) -> dict[str, Any]:
    return {
        "intent_id": intent.intent_id,
        "cycle_id": intent.cycle_id,
        "strategy": intent.strategy,
        "symbol": intent.symbol,
        "side": intent.side.value,
        "purpose": intent.purpose.value,
        "amount": str(intent.amount),
        "limit_price": str(intent.limit_price),
        "notional": str(intent.notional),
        "signal_keys": list(intent.signal_keys),
        "reference_price": str(intent.reference_price),
    }


def intent_from_dict(data: Mapping[str, Any]) -> OrderIntent:
    return OrderIntent(
        intent_id=str(data["intent_id"]),
        cycle_id=str(data["cycle_id"]),
        strategy=str(data["strategy"]),
        symbol=str(data["symbol"]),
        side=Side(data["side"]),
        purpose=Purpose(data["purpose"]),
        amount=Decimal(str(data["amount"])),
        limit_price=Decimal(str(data["limit_price"])),
        notional=Decimal(str(data["notional"])),
        signal_keys=tuple(data.get("signal_keys", ())),
        reference_price=Decimal(str(data.get("reference_price", "0"))),
    )


@dataclass
class SignalRecord:
    """One received alert and its life: received → planned → ordered → a terminal status."""

    key: str  # the dedupe key; for a rejected body, a hash of the body
    status: SignalStatus
    received_at: datetime
    payload: Mapping[str, Any] | str  # the alert as received (a string when it was not JSON)
    strategy: str = ""
    action: str = ""
    time: datetime | None = None
    is_stop_loss: bool = False
    reason: str = ""
    cycle_id: str | None = None
    message_id: str | None = None
    # When the webhook put the alert in the queue (SQS's SentTimestamp), which is when it was received;
    # ``received_at`` is when a cycle's Collect stored it. None where no queue said (older records, direct input).
    queued_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status.value,
            "received_at": _iso(self.received_at),
            "queued_at": _iso(self.queued_at),
            "payload": self.payload,
            "strategy": self.strategy,
            "action": self.action,
            "time": _iso(self.time),
            "is_stop_loss": self.is_stop_loss,
            "reason": self.reason,
            "cycle_id": self.cycle_id,
            "message_id": self.message_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignalRecord:
        received = _time(data["received_at"])
        if received is None:
            raise ValueError(f"signal {data.get('key')} has no received_at")
        return cls(
            key=str(data["key"]),
            status=SignalStatus(data["status"]),
            received_at=received,
            payload=data["payload"],
            strategy=str(data.get("strategy", "")),
            action=str(data.get("action", "")),
            time=_time(data.get("time")),
            is_stop_loss=bool(data.get("is_stop_loss", False)),
            reason=str(data.get("reason", "")),
            cycle_id=data.get("cycle_id"),
            message_id=data.get("message_id"),
            queued_at=_time(data.get("queued_at")),
        )


def arrival_order(record: SignalRecord) -> tuple[datetime, datetime, datetime, str]:
    """Order pending signals as the cycle nets them: by the alert's time, then by when each arrived.

    Alerts of one bar carry the same time (TradingView's ``{{time}}`` is the bar's), and a strategy that exits and
    re-enters in one bar sends both. Their arrival decides which came first: the time the webhook queued each
    (``queued_at``), else the time it was stored. Ordering them by their dedupe key, a hash, turned an exit and a
    re-entry into a re-entry (ignored: already long) and then an exit, which sold a position the strategy kept.
    """
    return (record.time or record.received_at, record.queued_at or record.received_at, record.received_at, record.key)


@dataclass
class IntentRecord:
    """An order intent and everything placed for it, attempt by attempt."""

    intent: OrderIntent
    phase: Phase
    status: IntentStatus = IntentStatus.PLANNED
    attempt: int = 0  # the current placement attempt; chases increase it
    amount: Decimal = ZERO  # of the current attempt
    price: Decimal = ZERO  # of the current attempt
    placed_at: datetime | None = None  # of the current attempt
    orders: list[ExchangeOrder] = field(default_factory=list)  # last seen state of each attempt's order
    filled: Decimal = ZERO
    cost: Decimal = ZERO
    fees: list[Fee] = field(default_factory=list)
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.amount:
            self.amount = self.intent.amount
        if not self.price:
            self.price = self.intent.limit_price

    @property
    def strategy(self) -> str:
        return self.intent.strategy

    @property
    def symbol(self) -> str:
        return self.intent.symbol

    @property
    def side(self) -> Side:
        return self.intent.side

    @property
    def purpose(self) -> Purpose:
        return self.intent.purpose

    def fee_total(self, currency: str) -> Decimal:
        return sum((f.cost for f in self.fees if f.currency == currency), ZERO)

    @property
    def slippage_bps(self) -> Decimal | None:
        """How much worse than the planned last price the fills were, in basis points.

        Positive is worse (paid more on a buy, got less on a sell); None without fills.
        """
        reference = self.intent.reference_price
        if not self.filled or reference <= 0:
            return None
        average = self.cost / self.filled
        worse = average - reference if self.intent.side is Side.BUY else reference - average
        return worse / reference * 10000

    @property
    def current_order(self) -> ExchangeOrder | None:
        expected = self.intent.client_order_id(self.attempt)
        for order in self.orders:
            if order.client_order_id == expected:
                return order
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "intent": intent_to_dict(self.intent),
            "phase": self.phase.value,
            "status": self.status.value,
            "attempt": self.attempt,
            "amount": str(self.amount),
            "price": str(self.price),
            "placed_at": _iso(self.placed_at),
            "orders": [order_to_dict(o) for o in self.orders],
            "filled": str(self.filled),
            "cost": str(self.cost),
            "fees": [{"cost": str(f.cost), "currency": f.currency} for f in self.fees],
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IntentRecord:
        return cls(
            intent=intent_from_dict(data["intent"]),
            phase=Phase(data["phase"]),
            status=IntentStatus(data["status"]),
            attempt=int(data["attempt"]),
            amount=Decimal(str(data["amount"])),
            price=Decimal(str(data["price"])),
            placed_at=_time(data.get("placed_at")),
            orders=[order_from_dict(o) for o in data.get("orders", [])],
            filled=Decimal(str(data["filled"])),
            cost=Decimal(str(data["cost"])),
            fees=[Fee(Decimal(str(f["cost"])), str(f["currency"])) for f in data.get("fees", [])],
            reason=str(data.get("reason", "")),
        )


@dataclass
class CycleRecord:
    """One cycle: which signals it took, what it decided per phase, and how it ended."""

    cycle_id: str
    at: datetime
    urgent: bool
    status: str = "running"  # running | done | failed
    signal_keys: list[str] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)
    entries: list[str] = field(default_factory=list)
    deciding: dict[str, list[str]] = field(default_factory=dict)
    planned_phases: list[str] = field(default_factory=list)
    account_value: Decimal | None = None
    precedence: str | None = None
    idle_share: Decimal | None = None
    targets: dict[str, Decimal] = field(default_factory=dict)
    entry_order: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    # What happened to the protective stops while the cycle ran (crypto_bot.engine.stops), by strategy.
    stops: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, Decimal):
                value = str(value)
            elif f.name == "targets":
                value = {k: str(v) for k, v in value.items()}
            data[f.name] = copy.deepcopy(value)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CycleRecord:
        at = _time(data["at"])
        if at is None:
            raise ValueError(f"cycle {data.get('cycle_id')} has no time")
        account_value = data.get("account_value")
        idle = data.get("idle_share")
        return cls(
            cycle_id=str(data["cycle_id"]),
            at=at,
            urgent=bool(data["urgent"]),
            status=str(data.get("status", "running")),
            signal_keys=list(data.get("signal_keys", [])),
            exits=list(data.get("exits", [])),
            entries=list(data.get("entries", [])),
            deciding={k: list(v) for k, v in data.get("deciding", {}).items()},
            planned_phases=list(data.get("planned_phases", [])),
            account_value=Decimal(str(account_value)) if account_value is not None else None,
            precedence=data.get("precedence"),
            idle_share=Decimal(str(idle)) if idle is not None else None,
            targets={k: Decimal(str(v)) for k, v in data.get("targets", {}).items()},
            entry_order=list(data.get("entry_order", [])),
            summary=dict(data.get("summary", {})),
            error=str(data.get("error", "")),
            stops={str(k): str(v) for k, v in (data.get("stops") or {}).items()},
        )
