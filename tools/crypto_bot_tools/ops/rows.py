"""What every source answers and every command shows: signals, positions, executions, a cycle's end."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from crypto_bot.domain.controls import Controls
from crypto_bot.domain.money import to_json_number
from crypto_bot.engine.records import CycleRecord, IntentRecord

__all__ = [
    "CycleOutcome",
    "CycleRow",
    "ExecutionPath",
    "ExecutionRow",
    "Holdings",
    "PositionRow",
    "SignalRow",
    "StateVisit",
    "alert_field",
    "console_url",
    "iso",
]


def iso(moment: datetime) -> str:
    """Write a moment as ISO 8601 in UTC with a ``Z``, as every part of the project does."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def console_url(region: str, execution_arn: str) -> str:
    """Return the Step Functions console page of an execution."""
    return f"https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"


@dataclass(frozen=True)
class SignalRow:
    """One signal as the ``signals`` command shows it (the shape of ``/_local/state``'s signals).

    ``queued_at`` is when the webhook queued the alert (SQS's SentTimestamp), the time it was received; None
    for records stored before it was kept. ``received_at`` is when a cycle's Collect stored the alert; ``time``
    is the alert's own time. ``ticker`` and ``price`` are the alert's ``ticker`` and ``order_price`` as sent, so a
    rejected alert, which has no strategy, still shows what it was for ("" when its body was not JSON).
    """

    id: str
    strategy: str
    action: str
    status: str
    reason: str
    dedupe_key: str
    received_at: datetime
    time: datetime | None = None
    ticker: str = ""
    price: str = ""
    queued_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "strategy": self.strategy,
            "ticker": self.ticker,
            "action": self.action,
            "price": self.price,
            "time": iso(self.time) if self.time else None,
            "status": self.status,
            "reason": self.reason,
            "dedupe_key": self.dedupe_key,
            "received_at": iso(self.received_at),
            "queued_at": iso(self.queued_at) if self.queued_at else None,
        }


def alert_field(payload: object, name: str) -> str:
    """Read one field of a stored alert as text: "" when the alert was no JSON object or lacks it."""
    if not isinstance(payload, Mapping):
        return ""
    value = payload.get(name)
    return "" if value is None or isinstance(value, Mapping | list) else str(value)


@dataclass(frozen=True)
class PositionRow:
    """One strategy's holding; value and weight are None when prices or balances were not read."""

    strategy: str
    symbol: str
    amount: Decimal
    cost_basis: Decimal
    value: Decimal | None
    weight: Decimal | None


@dataclass
class Holdings:
    """The ledger valued and checked against the account; None marks what was not read."""

    quote: str
    positions: list[PositionRow]
    cash: Decimal | None
    equity: Decimal | None
    balances: dict[str, Decimal] | None  # total per asset
    ledger: dict[str, Decimal]  # ledger amount per base asset, dust included
    drift: dict[str, Decimal] | None  # balance minus ledger, per asset the ledger knows
    notes: list[str] = field(default_factory=list)
    controls: Controls | None = None  # the kill switch and guards; None when the source did not read them

    def to_json(self) -> dict[str, Any]:
        shown = {} if self.controls is None else {"controls": self.controls.to_dict()}
        return {
            "positions": {
                p.strategy: {
                    "symbol": p.symbol,
                    "amount": to_json_number(p.amount),
                    "cost_basis": to_json_number(p.cost_basis),
                    "value": _json_or_none(p.value),
                    "weight": _json_or_none(p.weight),
                }
                for p in self.positions
            },
            "cash": _json_or_none(self.cash),
            "equity": _json_or_none(self.equity),
            "balances": None if self.balances is None else {k: to_json_number(v) for k, v in self.balances.items()},
            "drift": None if self.drift is None else {k: to_json_number(v) for k, v in self.drift.items()},
            **shown,
        }


@dataclass(frozen=True)
class ExecutionRow:
    """One execution of the trade-cycle state machine."""

    name: str
    status: str
    started: datetime | None
    stopped: datetime | None
    arn: str
    url: str
    transitions: int | None = None  # local executions only

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "started": iso(self.started) if self.started else None,
            "stopped": iso(self.stopped) if self.stopped else None,
            "arn": self.arn,
            "url": self.url,
            "transitions": self.transitions,
        }


@dataclass(frozen=True)
class StateVisit:
    """One state an execution entered; its times are None where the source does not know them (local)."""

    name: str
    entered: datetime | None = None
    exited: datetime | None = None


@dataclass(frozen=True)
class ExecutionPath:
    """The states an execution entered, in order, and the cycle it opened (None before Collect ended)."""

    name: str
    states: list[StateVisit]
    cycle_id: str | None
    error: str = ""  # the execution's error and cause, when it failed


@dataclass(frozen=True)
class CycleRow:
    """One cycle record with its intents: each order it placed, attempt by attempt (fills, fees, chases)."""

    record: CycleRecord
    intents: list[IntentRecord]


@dataclass(frozen=True)
class CycleOutcome:
    """How far the ``cycle`` command saw the execution it started go.

    ``status`` is the execution's status, "RUNNING" when it was not followed to its end.
    """

    status: str
    summary: Mapping[str, Any] = field(default_factory=dict)
    took: float | None = None
    followed: bool = True
    interrupted: bool = False  # Ctrl-C while following: the execution goes on

    @property
    def finished(self) -> bool:
        """Say whether the execution was seen to its end, so that its summary can be shown."""
        return self.followed and not self.interrupted and self.status.upper() != "RUNNING"

    @property
    def exit_code(self) -> int:
        """Return the command's exit code: 0 only for a succeeded execution, or one merely started."""
        if self.interrupted:
            return 130
        if not self.followed:
            return 0
        return 0 if self.status.upper() == "SUCCEEDED" else 1


def _json_or_none(value: Decimal | None) -> int | float | None:
    return None if value is None else to_json_number(value)
