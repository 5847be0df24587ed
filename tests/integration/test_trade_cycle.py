"""The trade cycle executed for real: template.yaml's resources under moto, the real
state machine definition, and the real handlers against a paper exchange."""

from __future__ import annotations

import json
from decimal import ROUND_DOWN
from decimal import Decimal as D
from typing import Any

import pytest

from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore
from crypto_bot.adapters.aws.paper_state import PaperStateStore
from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.domain.errors import InsufficientFunds, RateLimited
from crypto_bot.engine.records import IntentStatus
from crypto_bot_tools.cycle import equity_and_positions
from crypto_bot_tools.local.stack import LocalStack, local_stack
from crypto_bot_tools.local.template import load_template
from crypto_bot_tools.replay import ReplayOptions, replay
from tests.conftest import ROOT, AlertClock, load_event, paper_environment

README_ALERTS: list[dict[str, Any]] = load_event("alerts/readme_example.jsonl")
STEPS = [README_ALERTS[0:1], README_ALERTS[1:2], README_ALERTS[2:4], README_ALERTS[4:6], README_ALERTS[6:8]]
CONFIG = StrategyConfig.load(ROOT / "strategy_config.json", "USD")
INCREMENT = D(str(load_template(ROOT / "template.yaml")["Parameters"]["IncrementPct"]["Default"]))
# The README's BTC buy alone: the 9500 USD boost gives it, at a limit IncrementPct above 60000,
# rounded down to the paper lot of 1e-8.
BTC_BOUGHT = D("0.15817515")
assert (D(9500) / (60000 * (1 + INCREMENT))).quantize(D("1e-8"), rounding=ROUND_DOWN) == BTC_BOUGHT


def environment() -> dict[str, str]:
    return paper_environment()


@pytest.fixture
def stack_factory() -> Any:
    def start(mode: ExecutionMode = ExecutionMode.BOOST, **parameters: str) -> Any:
        return local_stack(
            ROOT / "template.yaml",
            parameters={"ExecutionStrategy": mode.value, **parameters},
            # ASL Wait states take whole seconds, so the deployed 15 s fill check and 20 s lock wait cannot
            # be scaled like the Retry intervals (1/100, as in the fault suite); 0 s keeps the loops' logic
            # (FILL_TIMEOUT_SECONDS=0 ends a chase attempt at its first check). MaxLockWaits 3: a held lock gives up
            # sooner.
            substitution_overrides={"ReconcileWaitSeconds": "0", "LockWaitSeconds": "0", "MaxLockWaits": "3"},
            environment=environment(),
            retry_interval_scale=0.01,
        )

    return start


def queue_alert(stack: LocalStack, payload: dict[str, Any], queue: str = "SignalsQueue") -> str:
    """Queue an alert as the webhook does; date it with an AlertClock first (the template's expiry is on)."""
    answer = stack.client("sqs").send_message(QueueUrl=stack.resource(queue), MessageBody=json.dumps(payload))
    return str(answer["MessageId"])


def run(stack: LocalStack, execution_input: Any, name: str | None = None) -> dict[str, Any]:
    arn = stack.start_execution("TradeCycleStateMachine", execution_input, name=name)
    result = stack.wait_for_execution(arn, timeout=120)
    assert result["status"] == "SUCCEEDED", json.dumps(result.get("history", [])[-3:], default=str)[:3000]
    return result


def portfolio(stack: LocalStack) -> tuple[D, D, dict[str, D]]:
    store = DynamoDBStore(stack.resource("Table"), stack.client("dynamodb"))
    state, _version = PaperStateStore(stack.resource("Table"), stack.client("dynamodb")).load()
    assert state is not None
    paper = PaperExchange.from_state(state)
    cash, equity, positions = equity_and_positions(CONFIG, store.load_ledger(), paper.fetch_balances(), paper.prices)
    return cash, equity, {k: p.amount for k, p in positions.items()}


@pytest.mark.parametrize("mode", list(ExecutionMode))
def test_readme_scenario_through_the_executed_state_machine_matches_replay(
    stack_factory: Any, mode: ExecutionMode
) -> None:
    # Fee 0: the permissive paper markets (paper_environment) charge none. Replay keeps the README's dates,
    # which put each step in its own bar; the stack gets each step dated now, so the expiry lets it through.
    options = ReplayOptions(mode=mode, fee=D(0), increment=INCREMENT)
    expected = replay(README_ALERTS, CONFIG, options).cycles
    dated = AlertClock()
    with stack_factory(mode) as stack:
        for step, (alerts, cycle) in enumerate(zip(STEPS, expected, strict=True)):
            for alert in dated(alerts):
                queue_alert(stack, alert)
            run(stack, {"trigger": "manual"}, name=f"step-{step}")
            cash, equity, amounts = portfolio(stack)
            assert amounts == {k: p.amount for k, p in cycle.positions.items()}, f"step {step + 1}"
            assert cash == cycle.cash
            assert equity == cycle.equity


def test_stop_loss_runs_at_once_through_the_urgent_input(stack_factory: Any) -> None:
    dated = AlertClock()
    with stack_factory() as stack:
        queue_alert(stack, dated(README_ALERTS[0:1])[0])
        run(stack, {"trigger": "manual"})
        (stop,) = dated([{**README_ALERTS[2], "order_comment": "Stop loss", "order_price": "57000"}])
        # What the pipe delivers: a batch of SQS records from the urgent queue.
        record = {"messageId": "m-stop-1", "body": json.dumps(stop)}
        result = run(stack, [record], name="urgent-1")
        cash, _equity, amounts = portfolio(stack)
        assert amounts == {}
        # Bought at the last price (the limit, IncrementPct above it, was marketable), sold at the stop's 57000.
        assert cash == D(10000) - BTC_BOUGHT * 60000 + BTC_BOUGHT * 57000
        assert json.loads(result["output"])["status"] == "done"


def test_empty_cycle_is_three_states_and_takes_no_lock(stack_factory: Any) -> None:
    with stack_factory() as stack:
        result = run(stack, {"trigger": "schedule"})
        entered = [e for e in result["history"] if e["type"].endswith("StateEntered")]
        assert [e["stateEnteredEventDetails"]["name"] for e in entered] == [
            "Collect",
            "HasPendingSignals",
            "NothingToDo",
        ]
        lock = stack.client("dynamodb").get_item(
            TableName=stack.resource("Table"), Key={"pk": {"S": "LOCK"}, "sk": {"S": "CYCLE"}}
        )
        assert "Item" not in lock


def test_transient_exchange_error_is_retried_by_the_state_machine(
    stack_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = PaperExchange.create_limit_order
    calls: list[str] = []

    def flaky(self: PaperExchange, *args: Any, **kwargs: Any) -> Any:
        calls.append("create")
        if len(calls) == 1:
            raise RateLimited("429 Too Many Requests")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PaperExchange, "create_limit_order", flaky)
    with stack_factory() as stack:
        queue_alert(stack, AlertClock()(README_ALERTS[0:1])[0])
        result = run(stack, {"trigger": "manual"})
        failures = [e for e in result["history"] if e["type"] == "TaskFailed"]
        # Every transient error reaches the state machine as TransientError; its class is in the cause.
        details = [e["taskFailedEventDetails"] for e in failures]
        assert [d["error"] for d in details] == ["TransientError"]
        assert json.loads(details[0]["cause"])["errorMessage"] == "RateLimited: 429 Too Many Requests"
        assert calls == ["create", "create"]
        assert portfolio(stack)[2] == {"BTCUSD": BTC_BOUGHT}


def test_permanent_exchange_error_is_recorded_on_the_order_and_the_signal(
    stack_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broke(self: PaperExchange, *args: Any, **kwargs: Any) -> Any:
        raise InsufficientFunds("account has 0 USD")

    monkeypatch.setattr(PaperExchange, "create_limit_order", broke)
    with stack_factory() as stack:
        queue_alert(stack, AlertClock()(README_ALERTS[0:1])[0])
        result = run(stack, {"trigger": "manual"}, name="broke")
        store = DynamoDBStore(stack.resource("Table"), stack.client("dynamodb"))
        (intent,) = store.intents("manual-broke")
        assert intent.status is IntentStatus.FAILED
        assert "InsufficientFunds: account has 0 USD" in intent.reason
        (signal,) = store.recent_signals()
        assert signal.status.value == "failed"
        assert "InsufficientFunds" in signal.reason
        assert json.loads(result["output"])["orders"] == {"failed": 1}


def lock_item(owner: str, lease_until: str) -> dict[str, Any]:
    return {"pk": {"S": "LOCK"}, "sk": {"S": "CYCLE"}, "owner": {"S": owner}, "lease_until": {"S": lease_until}}


def test_a_lock_whose_lease_expired_is_taken_over(stack_factory: Any) -> None:
    with stack_factory() as stack:
        crashed = "arn:aws:states:us-east-1:123456789012:execution:TradeCycle:crashed"
        stack.client("dynamodb").put_item(
            TableName=stack.resource("Table"), Item=lock_item(crashed, "2020-01-01T00:00:00.000000Z")
        )
        queue_alert(stack, AlertClock()(README_ALERTS[0:1])[0])
        run(stack, {"trigger": "manual"})
        assert portfolio(stack)[2] == {"BTCUSD": BTC_BOUGHT}


def test_a_live_lock_makes_the_cycle_wait_then_give_up_with_its_alerts_stored(stack_factory: Any) -> None:
    with stack_factory() as stack:
        holder = "arn:aws:states:us-east-1:123456789012:execution:TradeCycle:running"
        stack.client("dynamodb").put_item(
            TableName=stack.resource("Table"), Item=lock_item(holder, "2999-01-01T00:00:00.000000Z")
        )
        queue_alert(stack, AlertClock()(README_ALERTS[0:1])[0])
        arn = stack.start_execution("TradeCycleStateMachine", {"trigger": "manual"})
        result = stack.wait_for_execution(arn, timeout=120)
        assert result["status"] == "FAILED"
        names = [e["stateEnteredEventDetails"]["name"] for e in result["history"] if e["type"].endswith("StateEntered")]
        assert names.count("WaitForLock") == 3  # MaxLockWaits in these tests
        assert "PlanPhase" not in names
        store = DynamoDBStore(stack.resource("Table"), stack.client("dynamodb"))
        assert [s.status.value for s in store.pending_signals()] == ["received"]


def test_rerunning_a_finished_execution_name_never_trades_twice(stack_factory: Any) -> None:
    (alert,) = AlertClock()(README_ALERTS[0:1])
    with stack_factory() as stack:
        queue_alert(stack, alert)
        run(stack, {"trigger": "manual"}, name="once")
        # The same alert delivered again (TradingView resends on 5xx) is absorbed by the dedupe key.
        queue_alert(stack, alert)
        run(stack, {"trigger": "manual"}, name="twice")
        state, _ = PaperStateStore(stack.resource("Table"), stack.client("dynamodb")).load()
        assert state is not None
        assert len(PaperExchange.from_state(state).orders()) == 1
