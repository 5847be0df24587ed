"""Signal expiry as deployed: the template's MaxSignalAgeMinutes, through the executed state machine.

The alerts are dated a minute before the wall clock (the webhook refuses alerts from the future),
and the cycle's clock is set to that time plus the age under test, so the boundary is hit to the second.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore
from crypto_bot.engine.records import SignalStatus
from crypto_bot.entrypoints import bootstrap as bootstrap_module
from crypto_bot_tools.local.stack import LocalStack, local_stack
from crypto_bot_tools.local.template import load_template
from tests.conftest import ROOT, load_event, paper_environment

BTC_BUY: dict[str, Any] = load_event("alerts/readme_example.jsonl")[0]
MAX_AGE = timedelta(minutes=int(load_template(ROOT / "template.yaml")["Parameters"]["MaxSignalAgeMinutes"]["Default"]))


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    with local_stack(
        ROOT / "template.yaml",
        # ASL Wait states take whole seconds, so the deployed 15 s fill check and 20 s lock wait cannot
        # be scaled like the Retry intervals (1/100, as in the fault suite); 0 s keeps the loops' logic
        # (FILL_TIMEOUT_SECONDS=0 ends a chase attempt at its first check). MaxLockWaits 3: a held lock gives up
        # sooner.
        substitution_overrides={"ReconcileWaitSeconds": "0", "LockWaitSeconds": "0", "MaxLockWaits": "3"},
        environment=paper_environment(),
        retry_interval_scale=0.01,
    ) as stack:
        yield stack


def cycle_clock_at(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    """Make the workflow's clock (App.session's datetime.now) read ``moment``; intake keeps the real one."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Frozen:
            return cls.fromtimestamp(moment.timestamp(), tz)

    monkeypatch.setattr(bootstrap_module, "datetime", Frozen)


def run_cycle(stack: LocalStack, alert: dict[str, Any]) -> tuple[SignalStatus, str, dict[str, Any]]:
    stack.client("sqs").send_message(QueueUrl=stack.resource("SignalsQueue"), MessageBody=json.dumps(alert))
    arn = stack.start_execution("TradeCycleStateMachine", {"trigger": "manual"})
    result = stack.wait_for_execution(arn, timeout=120)
    assert result["status"] == "SUCCEEDED", json.dumps(result["history"][-3:], default=str)[:3000]
    (signal,) = DynamoDBStore(stack.resource("Table"), stack.client("dynamodb")).recent_signals()
    return signal.status, signal.reason, json.loads(result["output"])


def test_the_template_expires_signals_after_one_8h_bar_and_five_minutes() -> None:
    assert timedelta(hours=8, minutes=5) == MAX_AGE


@pytest.mark.parametrize(
    ("age", "status"),
    [
        (MAX_AGE - timedelta(seconds=1), SignalStatus.FILLED),
        (MAX_AGE, SignalStatus.FILLED),  # as old as allowed is not older than allowed
        (MAX_AGE + timedelta(seconds=1), SignalStatus.EXPIRED),
    ],
    ids=["just-under", "at", "just-over"],
)
def test_a_signal_trades_up_to_the_age_limit_and_expires_past_it(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, age: timedelta, status: SignalStatus
) -> None:
    sent = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    alert = {**BTC_BUY, "time": sent.strftime("%Y-%m-%dT%H:%M:%SZ")}
    cycle_clock_at(monkeypatch, sent + age)

    got, reason, output = run_cycle(stack, alert)

    assert got is status
    if status is SignalStatus.EXPIRED:
        assert reason == "expired: 8h05m01s old, more than the allowed 8h05m"
        assert output["orders"] == {}
    else:
        assert output["orders"] == {"filled": 1}


def test_a_readme_alert_sent_with_its_2024_date_expires_and_trades_nothing(stack: LocalStack) -> None:
    got, reason, output = run_cycle(stack, BTC_BUY)

    assert got is SignalStatus.EXPIRED
    assert reason.startswith("expired: ")
    assert output["orders"] == {}
