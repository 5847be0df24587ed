"""The trade cycle executed for real: template.yaml's resources under moto, the real
state machine definition, and the real handlers against a paper exchange.

Each test starts a fresh stack (``stack_factory``, tests/integration/conftest.py) and drives it through the
shared harness (tests/support/harness.py), as the fault suite and the benchmark do."""

from __future__ import annotations

import json
from decimal import ROUND_DOWN
from decimal import Decimal as D
from typing import Any

import pytest

from crypto_bot.adapters.paper.exchange import PaperExchange
from crypto_bot.domain.config import ExecutionMode, StrategyConfig
from crypto_bot.domain.errors import InsufficientFunds, RateLimited
from crypto_bot.engine.records import IntentStatus
from crypto_bot_tools.local.template import load_template
from crypto_bot_tools.replay import ReplayOptions, replay
from tests.conftest import ROOT, AlertClock, load_event

README_ALERTS: list[dict[str, Any]] = load_event("alerts/readme_example.jsonl")
STEPS = [README_ALERTS[0:1], README_ALERTS[1:2], README_ALERTS[2:4], README_ALERTS[4:6], README_ALERTS[6:8]]
CONFIG = StrategyConfig.load(ROOT / "strategy_config.json", "USDT")
INCREMENT = D(str(load_template(ROOT / "template.yaml")["Parameters"]["IncrementPct"]["Default"]))
# The README's BTC buy alone: the 9500 USDT boost gives it, at a limit IncrementPct above 60000,
# rounded down to the paper lot of 1e-8.
BTC_BOUGHT = D("0.15817515")
assert (D(9500) / (60000 * (1 + INCREMENT))).quantize(D("1e-8"), rounding=ROUND_DOWN) == BTC_BOUGHT


@pytest.mark.parametrize("mode", list(ExecutionMode))
def test_readme_scenario_through_the_executed_state_machine_matches_replay(
    stack_factory: Any, mode: ExecutionMode
) -> None:
    # Fee 0: the permissive paper markets (paper_environment) charge none. Replay keeps the README's dates,
    # which put each step in its own bar; the pipeline gets each step dated now, so the expiry lets it through.
    options = ReplayOptions(mode=mode, fee=D(0), increment=INCREMENT)
    expected = replay(README_ALERTS, CONFIG, options).cycles
    dated = AlertClock()
    with stack_factory(mode) as pipeline:
        for step, (alerts, cycle) in enumerate(zip(STEPS, expected, strict=True)):
            for alert in dated(alerts):
                pipeline.send(alert)
            pipeline.run(name=f"step-{step}")
            cash, equity, amounts = pipeline.portfolio(CONFIG)
            assert amounts == {k: p.amount for k, p in cycle.positions.items()}, f"step {step + 1}"
            assert cash == cycle.cash
            assert equity == cycle.equity


def test_stop_loss_runs_at_once_through_the_urgent_input(stack_factory: Any) -> None:
    dated = AlertClock()
    with stack_factory() as pipeline:
        pipeline.send(dated(README_ALERTS[0:1])[0])
        pipeline.run()
        (stop,) = dated([{**README_ALERTS[2], "order_comment": "Stop loss", "order_price": "57000"}])
        # What the pipe delivers: a batch of SQS records from the urgent queue.
        result = pipeline.urgent(stop, "m-stop-1", name="urgent-1")
        cash, _equity, amounts = pipeline.portfolio(CONFIG)
        assert amounts == {}
        # Bought at the last price (the limit, IncrementPct above it, was marketable), sold at the stop's 57000.
        assert cash == D(10000) - BTC_BOUGHT * 60000 + BTC_BOUGHT * 57000
        assert json.loads(result["output"])["status"] == "done"


def test_empty_cycle_is_three_states_and_takes_no_lock(stack_factory: Any) -> None:
    with stack_factory() as pipeline:
        result = pipeline.run({"trigger": "schedule"})
        entered = [e for e in result["history"] if e["type"].endswith("StateEntered")]
        assert [e["stateEnteredEventDetails"]["name"] for e in entered] == [
            "Collect",
            "HasPendingSignals",
            "NothingToDo",
        ]
        assert not pipeline.lock_held()


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
    with stack_factory() as pipeline:
        pipeline.send(AlertClock()(README_ALERTS[0:1])[0])
        result = pipeline.run()
        failures = [e for e in result["history"] if e["type"] == "TaskFailed"]
        # Every transient error reaches the state machine as TransientError; its class is in the cause.
        details = [e["taskFailedEventDetails"] for e in failures]
        assert [d["error"] for d in details] == ["TransientError"]
        assert json.loads(details[0]["cause"])["errorMessage"] == "RateLimited: 429 Too Many Requests"
        assert calls == ["create", "create"]
        assert pipeline.portfolio(CONFIG)[2] == {"BTCUSDT": BTC_BOUGHT}


def test_permanent_exchange_error_is_recorded_on_the_order_and_the_signal(
    stack_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broke(self: PaperExchange, *args: Any, **kwargs: Any) -> Any:
        raise InsufficientFunds("account has 0 USDT")

    monkeypatch.setattr(PaperExchange, "create_limit_order", broke)
    with stack_factory() as pipeline:
        pipeline.send(AlertClock()(README_ALERTS[0:1])[0])
        result = pipeline.run(name="broke")
        store = pipeline.store
        (intent,) = store.intents("manual-broke")
        assert intent.status is IntentStatus.FAILED
        assert "InsufficientFunds: account has 0 USDT" in intent.reason
        (signal,) = store.recent_signals()
        assert signal.status.value == "failed"
        assert "InsufficientFunds" in signal.reason
        assert json.loads(result["output"])["orders"] == {"failed": 1}


def test_a_lock_whose_lease_expired_is_taken_over(stack_factory: Any) -> None:
    with stack_factory() as pipeline:
        crashed = "arn:aws:states:us-east-1:123456789012:execution:TradeCycle:crashed"
        pipeline.put_lock(crashed, "2020-01-01T00:00:00.000000Z")
        pipeline.send(AlertClock()(README_ALERTS[0:1])[0])
        pipeline.run()
        assert pipeline.portfolio(CONFIG)[2] == {"BTCUSDT": BTC_BOUGHT}


def test_a_live_lock_makes_the_cycle_wait_then_give_up_with_its_alerts_stored(stack_factory: Any) -> None:
    with stack_factory() as pipeline:
        holder = "arn:aws:states:us-east-1:123456789012:execution:TradeCycle:running"
        pipeline.put_lock(holder, "2999-01-01T00:00:00.000000Z")
        pipeline.send(AlertClock()(README_ALERTS[0:1])[0])
        result = pipeline.run(expect="FAILED")
        names = [e["stateEnteredEventDetails"]["name"] for e in result["history"] if e["type"].endswith("StateEntered")]
        assert names.count("WaitForLock") == 3  # MaxLockWaits in these tests
        assert "PlanPhase" not in names
        assert [s.status.value for s in pipeline.store.pending_signals()] == ["received"]


def test_rerunning_a_finished_execution_name_never_trades_twice(stack_factory: Any) -> None:
    (alert,) = AlertClock()(README_ALERTS[0:1])
    with stack_factory() as pipeline:
        pipeline.send(alert)
        pipeline.run(name="once")
        # The same alert delivered again (TradingView resends on 5xx) is absorbed by the dedupe key.
        pipeline.send(alert)
        pipeline.run(name="twice")
        assert len(pipeline.paper().orders()) == 1
