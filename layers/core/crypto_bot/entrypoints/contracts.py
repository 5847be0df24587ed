"""What each step takes from the state machine and gives back to it: the steps' side of the ASL's contract.

statemachine/trade_cycle.asl.json builds each step's input in its ``Parameters.Payload`` (or a Map's
``ItemSelector``) and reads the result through ``ResultSelector`` paths (``$.Payload.cycle_id``). Nothing in
Step Functions checks those names against the Lambda: a renamed key simply reads as missing at run time.
tests/unit/test_step_contracts.py walks the definition and checks every such name against these types.

Only ids, counts and short strings cross, so a state stays far below Step Functions' 256 KB payload limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NotRequired, TypedDict


class CollectInput(TypedDict):
    input: Any
    """The execution's input: ``{"trigger": ...}``, the urgent queue's batch from the pipe (a list of SQS
    records), or, when the cycle waited for the lock, the state itself (``{"cycle": ...}``)."""
    execution_name: str
    started_at: str
    """The execution's start, ISO-8601."""


class CollectResult(TypedDict):
    cycle_id: str
    at: str
    """The cycle's time, ISO-8601: the bar it trades for a scheduled cycle, else the execution's start."""
    urgent: bool
    pending: int
    """Signals waiting for this cycle."""
    run: bool
    """Whether the cycle has work: pending signals, an operator's flatten, or on a schedule drawdown guards to
    mark. False ends the execution without taking the lock."""
    phase: str
    """The first phase, always ``exits``."""
    received: int
    rejected: int
    duplicates: int
    unprocessable: list[str]
    """``"message id: error"`` of each message left in the queue for its dead-letter queue."""
    now: str
    lease_until: str
    """Both in the lock's fixed-width UTC format (crypto_bot.adapters.aws.lock.lease_time)."""
    lock_waits: int
    """How often this execution has waited for the lock so far."""


class PlanInput(TypedDict):
    cycle_id: str
    at: str
    urgent: bool
    phase: str
    execution_id: NotRequired[str]
    """The lock's owner, whose lease is renewed; absent, the lease is not checked (in-process runs)."""


class PlanResult(TypedDict):
    phase: str
    intent_ids: list[str]
    """The Map places each of these."""
    count: int
    next_phase: str
    """The phase after this one, or ``done``."""


class PlaceOrderInput(TypedDict):
    cycle_id: str
    intent_id: str


class PlaceOrderResult(TypedDict):
    intent_id: str
    status: str
    """The intent's status after the placement (``open``: it is on the book)."""


class ReconcileInput(TypedDict):
    cycle_id: str
    phase: str
    execution_id: NotRequired[str]


class ReconcileResult(TypedDict):
    working: int
    """Orders of the phase still working; 0 settles the phase."""


class FinalizeInput(TypedDict, total=False):
    """Either the cycle to close, or (from a Catch) the state that failed and the execution's name."""

    cycle_id: str
    failed_state: Mapping[str, Any]
    execution_name: str


class FinalizeResult(TypedDict):
    """The cycle's summary, which is also the execution's output."""

    cycle_id: str | None
    """None: the cycle failed before it opened."""
    status: str
    """``done`` or ``failed``."""
    signals: NotRequired[dict[str, int]]
    orders: NotRequired[dict[str, int]]
    notes: NotRequired[dict[str, str]]
    traded: NotRequired[dict[str, str]]
    slippage_bps: NotRequired[dict[str, str]]
    drift: NotRequired[dict[str, str]]


CONTRACTS: Final[Mapping[str, tuple[type[Any], type[Any]]]] = {
    "collect": (CollectInput, CollectResult),
    "plan": (PlanInput, PlanResult),
    "place_order": (PlaceOrderInput, PlaceOrderResult),
    "reconcile": (ReconcileInput, ReconcileResult),
    "finalize": (FinalizeInput, FinalizeResult),
}
"""Each step's (input, result) types, by the step's name (its function's folder, functions/<step>/)."""
