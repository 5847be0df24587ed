"""The store port: what the workflow persists between steps, and an in-memory store.

Records are plain dataclasses with a dict form (decimals as strings, times as ISO-8601)
so every adapter stores exactly the same shape. The DynamoDB adapter lives in
:mod:`crypto_bot.aws.dynamodb_store`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from crypto_bot.allocation import SignalStatus
from crypto_bot.ledger import Ledger
from crypto_bot.markets import Side
from crypto_bot.money import ZERO
from crypto_bot.orders import ExchangeOrder, Fee, OrderIntent, OrderStatus, Purpose


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status.value,
            "received_at": _iso(self.received_at),
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
        )


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
        )


class Store(Protocol):
    """Persistence for signals, cycles, intents and the ledger."""

    def add_signal(self, record: SignalRecord) -> bool:
        """Insert a signal unless its key exists; return False for a duplicate."""
        ...

    def get_signal(self, key: str) -> SignalRecord | None: ...

    def put_signal(self, record: SignalRecord) -> None:
        """Overwrite a signal (status changes)."""
        ...

    def pending_signals(self) -> list[SignalRecord]:
        """Signals received and not yet taken by a cycle, oldest first."""
        ...

    def recent_signals(self, limit: int = 100) -> list[SignalRecord]: ...

    def get_cycle(self, cycle_id: str) -> CycleRecord | None: ...

    def put_cycle(self, record: CycleRecord) -> None: ...

    def get_intent(self, cycle_id: str, intent_id: str) -> IntentRecord | None: ...

    def put_intent(self, record: IntentRecord) -> None: ...

    def intents(self, cycle_id: str) -> list[IntentRecord]: ...

    def load_ledger(self) -> Ledger: ...

    def save_ledger(self, ledger: Ledger) -> None:
        """Persist the positions and dust, and append the ledger's new entries to the audit trail."""
        ...

    def book(self, record: IntentRecord, ledger: Ledger) -> None:
        """Persist an intent together with the ledger changes its fills caused, atomically.

        The intent's stored order states say which fills are booked; if they were written
        without the ledger (or the other way round) a crash in between would lose a fill
        or book it twice.
        """
        ...


class MemoryStore:
    """A store in a few dicts: for the in-process engine, replay, and tests.

    Records are copied in and out through their dict form, so callers cannot mutate
    stored state by accident, exactly as with a database.
    """

    def __init__(self) -> None:
        self._signals: dict[str, dict[str, Any]] = {}
        self._cycles: dict[str, dict[str, Any]] = {}
        self._intents: dict[tuple[str, str], dict[str, Any]] = {}
        self._ledger: dict[str, Any] = {"positions": {}, "dust": {}}
        self.audit: list[Any] = []

    def add_signal(self, record: SignalRecord) -> bool:
        if record.key in self._signals:
            return False
        self._signals[record.key] = record.to_dict()
        return True

    def get_signal(self, key: str) -> SignalRecord | None:
        data = self._signals.get(key)
        return SignalRecord.from_dict(data) if data else None

    def put_signal(self, record: SignalRecord) -> None:
        self._signals[record.key] = record.to_dict()

    def pending_signals(self) -> list[SignalRecord]:
        pending = [SignalRecord.from_dict(d) for d in self._signals.values() if d["status"] == "received"]
        return sorted(pending, key=lambda r: (r.time or r.received_at, r.received_at, r.key))

    def recent_signals(self, limit: int = 100) -> list[SignalRecord]:
        records = sorted((SignalRecord.from_dict(d) for d in self._signals.values()), key=lambda r: r.received_at)
        return records[-limit:]

    def get_cycle(self, cycle_id: str) -> CycleRecord | None:
        data = self._cycles.get(cycle_id)
        return CycleRecord.from_dict(data) if data else None

    def put_cycle(self, record: CycleRecord) -> None:
        self._cycles[record.cycle_id] = record.to_dict()

    def get_intent(self, cycle_id: str, intent_id: str) -> IntentRecord | None:
        data = self._intents.get((cycle_id, intent_id))
        return IntentRecord.from_dict(data) if data else None

    def put_intent(self, record: IntentRecord) -> None:
        self._intents[(record.intent.cycle_id, record.intent.intent_id)] = record.to_dict()

    def intents(self, cycle_id: str) -> list[IntentRecord]:
        return [IntentRecord.from_dict(d) for (c, _), d in self._intents.items() if c == cycle_id]

    def load_ledger(self) -> Ledger:
        return Ledger.from_dict(self._ledger)

    def save_ledger(self, ledger: Ledger) -> None:
        self._ledger = ledger.to_dict()
        self.audit.extend(ledger.entries)
        ledger.entries.clear()

    def book(self, record: IntentRecord, ledger: Ledger) -> None:
        self.put_intent(record)
        self.save_ledger(ledger)
