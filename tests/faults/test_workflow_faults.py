"""Workflow faults during real cycles: Lambda steps crashing, store races, redeliveries, concurrent cycles."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import pytest

from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore
from crypto_bot.adapters.aws.paper_state import PaperStateStore
from crypto_bot.domain.errors import StoreConflict, StoreUnavailable
from crypto_bot.engine.records import IntentStatus
from crypto_bot.engine.workflow import Workflow
from crypto_bot.entrypoints import handler
from tests.faults.harness import BTC_BUY, BTC_STOP, ETH_BUY, ETH_SELL, Case, FaultKind, check_invariants

# What the Lambda service reports when a function's sandbox dies under it; the state machine retries it.
LambdaServiceException = type("Lambda.ServiceException", (RuntimeError,), {})
STEPS = ["collect", "plan", "place_order", "reconcile", "finalize"]


def crash_step(monkeypatch: pytest.MonkeyPatch, case: Case, step: str, when: str, error: type[Exception]) -> None:
    """Make one invocation of a step's Lambda crash before it does anything, or after it did its work."""
    original = handler.STEPS[step]

    def crashing(event: Any, runtime: Any) -> dict[str, Any]:
        if case.faults == 0:
            if when == "after":
                original(event, runtime)
            case.fault(FaultKind.RAISED, f"step {step}", f"{error.__name__} {when} its work")
            raise error(f"{step} crashed {when} its work")
        return original(event, runtime)

    # Handlers bind their step when their module is imported, at the stack's first invocation.
    monkeypatch.setitem(handler.STEPS, step, crashing)


def crash_once(monkeypatch: pytest.MonkeyPatch, case: Case, owner: Any, method: str, *, skip: int = 0) -> None:
    """Make ``owner.method`` fail once, with a store outage, after ``skip`` calls went through."""
    original: Callable[..., Any] = getattr(owner, method)
    calls = [0]

    def failing(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == skip + 1:
            case.fault(FaultKind.RAISED, f"{owner.__name__}.{method}", "StoreUnavailable: throttled")
            raise StoreUnavailable(f"{method} throttled")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, method, failing)


def two_entries(case: Case) -> None:
    case.send(BTC_BUY)
    case.send(ETH_BUY)


def visible_at_once(case: Case) -> None:
    """Let an SQS message whose collector crashed be delivered again at once (its visibility timeout ran out)."""
    case.stack.client("sqs").set_queue_attributes(
        QueueUrl=case.stack.resource("SignalsQueue"), Attributes={"VisibilityTimeout": "0"}
    )


# --------------------------------------------------------------------------- Lambda crashes


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("step", STEPS)
def test_step_crashing_once_is_retried_without_trading_twice(
    case: Case, monkeypatch: pytest.MonkeyPatch, step: str, when: str
) -> None:
    visible_at_once(case)
    crash_step(monkeypatch, case, step, when, LambdaServiceException)
    two_entries(case)
    case.run(name="run")
    assert case.faults == 1
    intents = case.store.intents("manual-run")
    assert sorted(i.status for i in intents) == [IntentStatus.FILLED, IntentStatus.FILLED]
    assert len(case.paper().orders()) == 2
    check_invariants(case)


@pytest.mark.parametrize(
    ("owner", "method", "skip"),
    [
        # collect: the second alert's write. The deployed paper session drops the failed attempt's state (the
        # first alert's price), so the retry must price the first alert again although it is now a duplicate.
        pytest.param(DynamoDBStore, "add_signal", 1, id="collect"),
        (DynamoDBStore, "put_intent", 1),  # plan: between two intents
        (Workflow, "place", 0),  # place: the Map's first placement
        (DynamoDBStore, "book", 1),  # reconcile: between booking two intents
        (DynamoDBStore, "put_signal", 3),  # finalize: between two signals' outcomes (open_cycle wrote two)
    ],
    ids=["collect", "plan", "place", "reconcile", "finalize"],
)
def test_step_crashing_during_its_work_is_resumed_without_trading_twice(
    case: Case, monkeypatch: pytest.MonkeyPatch, owner: Any, method: str, skip: int
) -> None:
    visible_at_once(case)
    crash_once(monkeypatch, case, owner, method, skip=skip)
    two_entries(case)
    case.run(name="run")
    assert case.faults == 1
    assert sorted(i.status for i in case.store.intents("manual-run")) == [IntentStatus.FILLED] * 2
    check_invariants(case)


@pytest.mark.parametrize("step", ["plan", "reconcile", "finalize"])
def test_step_crashing_for_good_fails_the_cycle_settles_its_orders_and_notifies(
    case: Case, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    # Not a retried error: the Catch records the failure. Orders already on the exchange are settled then.
    crash_step(monkeypatch, case, step, "after", RuntimeError)
    two_entries(case)
    case.run(name="run", expect="FAILED")
    (cycle,) = case.cycles()
    assert f"RuntimeError: {step} crashed after its work" in cycle.error
    assert any("FAILED" in m for m in case.notifications())
    check_invariants(case, failed_cycles=1)


# --------------------------------------------------------------------------- store races and redelivery


def test_paper_account_write_conflict_is_retried_on_fresh_state(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    original = PaperStateStore.save

    def racing(self: PaperStateStore, state: dict[str, Any], expected_version: int) -> int:
        if expected_version > 0 and case.faults == 0:
            # Another Lambda saved the account first: the condition check fails.
            case.fault(FaultKind.RAISED, "PaperStateStore.save", "StoreConflict: the paper state changed")
            raise StoreConflict("the paper state changed since it was loaded")
        return original(self, state, expected_version)

    monkeypatch.setattr(PaperStateStore, "save", racing)
    two_entries(case)
    case.run(name="run")
    assert case.faults == 1
    check_invariants(case)


def test_lock_taken_by_another_cycle_is_waited_for_then_acquired(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    table, dynamodb = case.stack.resource("Table"), case.stack.client("dynamodb")
    key = {"pk": {"S": "LOCK"}, "sk": {"S": "CYCLE"}}
    dynamodb.put_item(TableName=table, Item={**key, "owner": {"S": "other"}, "lease_until": {"S": "2999-01-01"}})
    original = handler.STEPS["collect"]

    def release_on_second_look(event: Any, runtime: Any) -> dict[str, Any]:
        if isinstance(event.get("input"), dict) and "cycle" in event["input"]:
            # Collect runs again only after AcquireLock was refused: the other cycle finishes now.
            dynamodb.delete_item(TableName=table, Key=key)
        return original(event, runtime)

    monkeypatch.setitem(handler.STEPS, "collect", release_on_second_look)
    case.send(BTC_BUY)
    result = case.run(name="run")
    case.lock_refusals(result["history"])
    assert case.faults == 1
    names = [e["stateEnteredEventDetails"]["name"] for e in result["history"] if e["type"].endswith("StateEntered")]
    assert names.count("WaitForLock") == 1
    check_invariants(case)


@pytest.mark.parametrize("deliveries", [2, 4])
def test_alert_delivered_several_times_is_one_signal_and_one_order(case: Case, deliveries: int) -> None:
    case.send(BTC_BUY, times=deliveries)  # TradingView resends after a 5xx; SQS delivers at least once
    case.run(name="run")
    assert case.redeliveries == deliveries - 1
    # One signal trades; each further delivery is recorded ignored under its own message id.
    signals = case.store.recent_signals()
    copies = [s for s in signals if s.key.startswith("duplicate-")]
    assert len(signals) - len(copies) == 1
    assert [s.status.value for s in copies] == ["ignored"] * (deliveries - 1)
    assert len({s.message_id for s in signals}) == deliveries
    assert len(case.paper().orders()) == 1
    check_invariants(case)


def test_urgent_batch_delivered_twice_sells_once(case: Case) -> None:
    case.send(BTC_BUY)
    case.run(name="entry")
    case.urgent(BTC_STOP, "m-stop", name="stop-1")
    case.urgent(BTC_STOP, "m-stop", name="stop-2")  # the pipe redelivers the same record
    assert len([o for o in case.paper().orders() if o.side.value == "sell"]) == 1
    assert case.store.get_cycle("urgent-stop-2") is None or not case.store.intents("urgent-stop-2")
    check_invariants(case)


def test_alert_resent_after_its_position_changed_trades_nothing(case: Case) -> None:
    # TradingView's {{time}} is the bar's, so a stop loss hit inside the entry's own bar carries the entry's
    # time: the stop does not make the entry older than what decided the strategy, and only the store's
    # dedupe stands between the late copy of the entry and a second buy.
    stop_in_the_same_bar = {**BTC_STOP, "time": BTC_BUY["time"]}
    case.send(BTC_BUY)
    case.run(name="entry")
    case.urgent(stop_in_the_same_bar, "m-stop", name="stop")  # flat again
    case.send(BTC_BUY)  # the entry's alert, delivered again a cycle later
    case.run(name="later")
    assert [(o.symbol, o.side.value) for o in case.paper().orders()] == [("BTC/USDT", "buy"), ("BTC/USDT", "sell")]
    assert case.redeliveries == 1
    assert not case.store.intents("manual-later")
    (entry,) = [s for s in case.store.recent_signals() if s.payload == BTC_BUY and not s.key.startswith("duplicate-")]
    (copy,) = [s for s in case.store.recent_signals() if s.key.startswith("duplicate-")]
    assert copy.status.value == "ignored"
    assert copy.reason.split()[4] == entry.message_id
    assert (entry.status.value, entry.cycle_id) == ("filled", "manual-entry")
    check_invariants(case)


def test_rerunning_an_execution_name_never_trades_twice(case: Case) -> None:
    case.send(BTC_BUY)
    case.run(name="once")
    case.send(BTC_BUY)
    case.run(name="twice")
    assert len(case.paper().orders()) == 1
    check_invariants(case)


# --------------------------------------------------------------------------- concurrency and the lock


@pytest.mark.parametrize("case", [{"LockWaitSeconds": "1", "MaxLockWaits": "60"}], indirect=True)
def test_concurrent_scheduled_and_urgent_cycles_never_trade_at_the_same_time(case: Case) -> None:
    case.send(BTC_BUY)
    case.run(name="entry")
    case.send(ETH_BUY)
    case.sent.append(BTC_STOP)
    urgent_record = {"messageId": "m-stop", "body": json.dumps(BTC_STOP)}
    arns = [
        case.stack.start_execution("TradeCycleStateMachine", {"trigger": "manual"}, name="scheduled"),
        # The pipe's input is a list of SQS records; start_execution is typed for the usual object input.
        case.stack.start_execution("TradeCycleStateMachine", cast(Any, [urgent_record]), name="urgent"),
    ]
    results = [case.stack.wait_for_execution(arn, timeout=120) for arn in arns]
    for result in results:
        case.lock_refusals(result["history"])
    assert [r["status"] for r in results] == ["SUCCEEDED", "SUCCEEDED"]
    # Whichever collects first may take the stop loss too; either way each trade happens once.
    assert sorted((o.symbol, o.side.value) for o in case.paper().orders()) == [
        ("BTC/USDT", "buy"),
        ("BTC/USDT", "sell"),
        ("ETH/USDT", "buy"),
    ]
    spans = [span for r in results if (span := lock_span(r["history"])) is not None]
    assert spans, "no execution took the lock"
    if len(spans) == 2:
        (a_start, a_end), (b_start, b_end) = spans
        assert a_end < b_start or b_end < a_start, f"cycles held the lock at the same time: {spans}"
    for cycle in case.cycles():
        placed = [i.placed_at for i in case.store.intents(cycle.cycle_id) if i.placed_at is not None]
        assert all(p > cycle.at or cycle.cycle_id == "manual-entry" for p in placed)
    check_invariants(case)


def lock_span(history: list[dict[str, Any]]) -> tuple[datetime, datetime] | None:
    """Return when an execution held the cycle lock: from planning to releasing it."""
    entered = [e["timestamp"] for e in history if e.get("stateEnteredEventDetails", {}).get("name") == "PlanPhase"]
    released = [e["timestamp"] for e in history if e.get("stateExitedEventDetails", {}).get("name") == "ReleaseLock"]
    return (min(entered), max(released)) if entered and released else None


def test_lock_of_a_dead_execution_expires_and_the_next_cycle_proceeds(case: Case) -> None:
    dead = "arn:aws:states:us-east-1:123456789012:execution:TradeCycle:crashed"
    case.stack.client("dynamodb").put_item(
        TableName=case.stack.resource("Table"),
        Item={
            "pk": {"S": "LOCK"},
            "sk": {"S": "CYCLE"},
            "owner": {"S": dead},
            "lease_until": {"S": "2020-01-01T00:00:00.000000Z"},
        },
    )
    case.send(BTC_BUY)
    case.send(ETH_SELL)  # nothing to sell: ignored, with its reason
    case.run(name="run")
    assert [i.status for i in case.store.intents("manual-run")] == [IntentStatus.FILLED]
    assert isinstance(case.store.get_cycle("manual-run").at, datetime)  # type: ignore[union-attr]
    check_invariants(case)
