"""The trade-cycle steps as the state machine calls them: event in, small dict out.

Each function takes the decoded Lambda event and the :class:`~crypto_bot.entrypoints.bootstrap.App`,
calls the workflow, and returns only ids and counts, so payloads between states stay far
below Step Functions' 256 KB limit whatever the number of signals. What each returns is
typed in :mod:`crypto_bot.entrypoints.contracts`, the state machine's side of the contract.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from crypto_bot.adapters.aws.lock import lease_time
from crypto_bot.adapters.aws.sqs_intake import sent_at
from crypto_bot.domain.allocation import SignalStatus
from crypto_bot.domain.errors import ConfigError, FieldProblem, InputError, LockLost
from crypto_bot.domain.money import parse_decimal
from crypto_bot.domain.price_band import price_jump_problem
from crypto_bot.engine.notices import cycle_message, worth_notifying
from crypto_bot.engine.ports import AlertPricedMarket, Refused
from crypto_bot.engine.records import Phase, SignalRecord
from crypto_bot.engine.workflow import Workflow, cycle_signals
from crypto_bot.entrypoints.bootstrap import App
from crypto_bot.entrypoints.contracts import (
    CollectInput,
    CollectResult,
    FinalizeInput,
    FinalizeResult,
    PlaceOrderInput,
    PlaceOrderResult,
    PlanInput,
    PlanResult,
    ReconcileInput,
    ReconcileResult,
)


def _time(value: object, what: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise InputError("invalid event", [FieldProblem(what, value, "is not an ISO-8601 time")]) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def collect(event: CollectInput, app: App) -> CollectResult:
    """Persist queued alerts, then say which cycle runs and how many signals wait for it.

    The execution input is ``{"trigger": "schedule"|"manual"}``, or the batch an
    EventBridge Pipe delivers from the urgent queue (a list of SQS records), or, when
    the cycle waited for the lock, the state itself (``{"cycle": {...}}``).
    """
    if app.alert_queue is None:
        raise ConfigError("SIGNALS_QUEUE_URL is required by the collect step but not set")
    now = datetime.now(UTC)
    started = _time(event["started_at"], "started_at")
    name = str(event["execution_name"])
    source = event.get("input")
    waiting = source.get("cycle") if isinstance(source, Mapping) else None
    if isinstance(waiting, Mapping):
        urgent, scheduled = bool(waiting["urgent"]), str(waiting["cycle_id"]).startswith("scheduled-")
        lock_waits = int(waiting.get("lock_waits", 0)) + 1
    else:
        urgent = isinstance(source, list) or (isinstance(source, Mapping) and source.get("trigger") == "urgent")
        scheduled, lock_waits = _scheduled(source), 0
    received = rejected = duplicates = 0
    with app.session(clock=lambda: datetime.now(UTC)) as session:
        wf = session.workflow

        def take(body: str, message_id: str, queued_at: datetime | None = None) -> None:
            nonlocal received, rejected, duplicates
            intake = wf.receive(body, message_id=message_id, queued_at=queued_at)
            # A resent copy of an alert still waiting for its cycle prices again (the same price): a Collect that
            # crashed after storing it lost the price with the failed attempt's paper state. Once a cycle took the
            # alert its status is no longer `received`, and an old copy sets no stale price.
            if session.alert_prices is not None:
                _price_from_alert(wf, session.alert_prices, intake.record, app.settings.max_price_jump)
            duplicates += intake.duplicate
            rejected += intake.record.status.value == "rejected"
            received += 1

        def refuse(excerpt: str, message_id: str, refusal: Refused, queued_at: datetime | None = None) -> None:
            # A delivery the webhook refused (too large) but sent on as a record: stored as a rejected signal.
            nonlocal received, rejected, duplicates
            duplicates += not wf.store.add_signal(refusal.record(excerpt, message_id, wf.clock(), queued_at))
            rejected += 1
            received += 1

        # The pipe's records (Lambda's SQS event shape) carry SentTimestamp under "attributes".
        if isinstance(source, list):
            for record in source:
                take(str(record["body"]), str(record["messageId"]), sent_at(record.get("attributes")))
        elif isinstance(source, Mapping) and isinstance(source.get("messages"), list):
            for record in source["messages"]:
                take(str(record["body"]), str(record["messageId"]), sent_at(record.get("attributes")))
        # An urgent cycle drains the signals queue too: an entry still queued when its strategy's stop loss
        # arrives must be decided with that stop (netted out), not left for the next cycle to buy.
        unprocessable = app.alert_queue(take, refused=refuse).failed
        pending = cycle_signals(wf.store.pending_signals(), urgent=urgent)
        # Work besides signals: a flatten the operator asked for, and on a schedule the drawdown guards, which
        # mark the account to market even when no alert came (so a trip is told when it happens).
        guards = wf.config.guards
        marking = scheduled and (guards.account_drawdown is not None or guards.strategy_drawdown is not None)
        run = bool(pending) or wf.store.get_controls().flatten is not None or marking
    at = app.settings.schedule.tick_at_or_before(started) if scheduled else started
    kind = "urgent" if urgent else ("scheduled" if scheduled else "manual")
    # The execution name makes the id unique per execution yet stable across a redrive,
    # which keeps the same name: a schedule that fires twice opens two cycles, and the
    # second finds nothing pending.
    cycle_id = f"{kind}-{name}"
    return {
        "cycle_id": cycle_id,
        "at": at.isoformat(),
        "urgent": urgent,
        "pending": len(pending),
        "run": run,
        "phase": Phase.EXITS.value,
        "received": received,
        "rejected": rejected,
        "duplicates": duplicates,
        "unprocessable": unprocessable,
        "now": lease_time(now),
        "lease_until": lease_time(now + app.settings.lock_lease),
        "lock_waits": lock_waits,
    }


def _scheduled(source: object) -> bool:
    return isinstance(source, Mapping) and source.get("trigger") == "schedule"


def _price_from_alert(wf: Workflow, market: AlertPricedMarket, record: SignalRecord, max_jump: Decimal) -> None:
    # With PAPER_PRICES=alerts the paper market's price is the last alert price seen. Only an accepted alert sets
    # it: one refused for its time or its interval is not a market price either. A price too far from the last
    # known one (crypto_bot.domain.price_band) refuses the alert instead, so a mistyped 1e12 neither prices the account
    # nor trades; the first price of a symbol has nothing to compare with and is taken.
    payload = record.payload
    if record.status is not SignalStatus.RECEIVED or not isinstance(payload, Mapping):
        return
    strategy = wf.config.get(record.strategy)
    if strategy is None:
        return
    try:
        price = parse_decimal(payload.get("order_price"))
    except ValueError:
        return
    if price <= 0:
        return
    shown = payload.get("order_price")
    problem = price_jump_problem(shown, price, strategy.symbol, market.prices.get(strategy.symbol), max_jump)
    if problem is not None:
        record.status, record.reason = SignalStatus.REJECTED, str(problem)
        wf.store.put_signal(record)
        return
    market.load_markets([strategy.symbol])
    market.set_price(strategy.symbol, price)


def _renew(event: PlanInput | ReconcileInput, app: App) -> None:
    owner = event.get("execution_id")
    if owner and not app.renew_lease(str(owner), datetime.now(UTC)):
        raise LockLost(f"execution {owner} no longer holds the cycle lock; stopping before it trades")


def plan(event: PlanInput, app: App) -> PlanResult:
    """Open the cycle on its first phase, then plan the phase; return the intent ids to place."""
    _renew(event, app)
    cycle_id = str(event["cycle_id"])
    phase = Phase(event["phase"])
    with app.session() as session:
        wf = session.workflow
        if phase is Phase.EXITS:
            wf.open_cycle(cycle_id, _time(event["at"], "at"), urgent=bool(event["urgent"]))
        intent_ids = wf.plan(cycle_id, phase)
    following = phase.next()
    return {
        "phase": phase.value,
        "intent_ids": intent_ids,
        "count": len(intent_ids),
        "next_phase": following.value if following else "done",
    }


def place_order(event: PlaceOrderInput, app: App) -> PlaceOrderResult:
    """Send one intent's current attempt at most once."""
    with app.session() as session:
        record = session.workflow.place(str(event["cycle_id"]), str(event["intent_id"]))
    return {"intent_id": record.intent.intent_id, "status": record.status.value}


def reconcile(event: ReconcileInput, app: App) -> ReconcileResult:
    """Advance every working order of the phase; return how many still work."""
    _renew(event, app)
    with app.session() as session:
        working = session.workflow.reconcile(
            str(event["cycle_id"]), Phase(event["phase"]), budget=app.settings.reconcile_budget
        )
    return {"working": working}


def finalize(event: FinalizeInput, app: App) -> FinalizeResult:
    """Close the cycle (or record its failure), then notify."""
    if app.notifier is None:
        raise ConfigError("NOTIFICATIONS_TOPIC_ARN is required by the finalize step but not set")
    failed_state = event.get("failed_state")
    error = ""
    cycle_id = event.get("cycle_id")
    if isinstance(failed_state, Mapping):
        # A Catch either stored the error under "error" or (Collect's) replaced the state with it.
        error = _error_text(failed_state.get("error") or (failed_state if "Error" in failed_state else None))
        cycle = failed_state.get("cycle")
        cycle_id = cycle.get("cycle_id") if isinstance(cycle, Mapping) else None
    record = None
    if cycle_id and app.store.get_cycle(str(cycle_id)) is not None:
        with app.session() as session:
            record = session.workflow.finalize(str(cycle_id), error=error)
    if record is not None:
        subject, message = cycle_message(record)
    else:
        subject = "crypto-bot cycle FAILED before it opened"
        message = f"execution {event.get('execution_name')}: {error or 'unknown error'}"
    if record is None or worth_notifying(record):
        app.notifier(subject, message)
    summary = record.summary if record is not None else {}
    # The summary's keys are the engine's (Workflow.finalize); FinalizeResult names the ones the state machine may read.
    return cast(FinalizeResult, {"cycle_id": cycle_id, "status": record.status if record else "failed", **summary})


def _error_text(error: object) -> str:
    if isinstance(error, Mapping):
        cause = error.get("Cause", "")
        try:
            detail = json.loads(cause) if isinstance(cause, str) else cause
        except json.JSONDecodeError:
            detail = cause
        if isinstance(detail, Mapping):
            cause = f"{detail.get('errorType', '')}: {detail.get('errorMessage', '')}"
        return f"{error.get('Error', 'error')}: {cause}"[:1000]
    return str(error or "")[:1000]


def metrics_of(step: str, result: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The EMF metrics a step's result reports: counts the dashboards and alarms use."""
    if step == "collect":
        return [
            ("SignalsReceived", result["received"]),
            ("SignalsRejected", result["rejected"]),
            ("SignalsDuplicate", result["duplicates"]),
        ]
    if step == "plan":
        return [("OrdersPlanned", result["count"])]
    if step == "reconcile":
        return [("OrdersWorking", result["working"])]
    if step == "place_order":
        return [("OrdersPlaced" if result["status"] == "open" else "OrdersNotPlaced", 1)]
    if step == "finalize":
        orders = result.get("orders", {})
        return [
            ("OrdersFilled", orders.get("filled", 0) + orders.get("partially_filled", 0)),
            ("OrdersFailed", orders.get("failed", 0) + orders.get("unfilled", 0)),
            ("CyclesFailed", 1 if result.get("status") == "failed" else 0),
        ] + [("SlippageBps", float(value)) for value in result.get("slippage_bps", {}).values()]
    raise ValueError(f"unknown step {step!r}")
