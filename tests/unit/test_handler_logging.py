"""Every log line of a step carries its cycle's id as Powertools' correlation_id (crypto_bot.entrypoints.handler)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest

from crypto_bot.entrypoints import handler
from crypto_bot_tools.local.lambdas import LambdaContext
from tests.support.environment import template_environment

SERVICES = itertools.count()
COUNTS = {"received": 0, "rejected": 0, "duplicates": 0}  # what collect's metrics read


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    values = template_environment(
        TABLE_NAME="t", PAPER_TRADING="true", PAPER_PRICES="alerts", PAPER_MARKETS="permissive"
    )
    # A service of its own per test: Powertools keeps one logger per service, writing where it was first made.
    values |= {"POWERTOOLS_SERVICE_NAME": f"logging-test-{next(SERVICES)}", "POWERTOOLS_TRACE_DISABLED": "true"}
    values |= {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def log_lines(text: str) -> list[dict[str, Any]]:
    return [line for line in map(json.loads, text.splitlines()) if "message" in line]


def run_step(
    monkeypatch: pytest.MonkeyPatch, step: str, event: dict[str, Any], result: dict[str, Any]
) -> dict[str, Any]:
    def fake(event: Any, app: Any) -> dict[str, Any]:
        return result

    run: Callable[[Any, Any], Any] = fake
    monkeypatch.setitem(handler.STEPS, step, run)
    context = LambdaContext(f"{step}-fn", f"arn:aws:lambda:us-east-1:1:function:{step}", 256, "request-1", 30)
    answer: dict[str, Any] = handler.step_handler(step)(event, context)  # type: ignore[arg-type]
    return answer


@pytest.mark.parametrize(
    ("step", "event", "result"),
    [
        ("place_order", {"cycle_id": "scheduled-e1", "intent_id": "i1"}, {"intent_id": "i1", "status": "open"}),
        ("reconcile", {"cycle_id": "scheduled-e1", "phase": "exits", "execution_id": "arn"}, {"working": 0}),
        ("finalize", {"failed_state": {"cycle": {"cycle_id": "scheduled-e1"}}, "execution_name": "e1"}, {}),
        ("collect", {"input": {"cycle": {"cycle_id": "scheduled-e1"}}, "execution_name": "e1"}, {}),
    ],
    ids=["place_order", "reconcile", "finalize-after-a-catch", "collect-after-a-lock-wait"],
)
def test_a_steps_log_lines_carry_the_cycle_id_of_its_event(
    environment: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    step: str,
    event: dict[str, Any],
    result: dict[str, Any],
) -> None:
    run_step(monkeypatch, step, event, {"cycle_id": "scheduled-e1", **COUNTS} if step == "collect" else result)

    lines = log_lines(capsys.readouterr().out)
    assert [line["message"] for line in lines] == [f"{step} done"]
    assert {line["correlation_id"] for line in lines} == {"scheduled-e1"}


def test_a_fresh_collect_logs_the_cycle_it_opened(
    environment: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    event = {"input": {"trigger": "schedule"}, "execution_name": "e2", "started_at": "2024-08-10T08:01:00+00:00"}
    run_step(monkeypatch, "collect", event, {"cycle_id": "scheduled-e2", **COUNTS})

    [line] = log_lines(capsys.readouterr().out)
    assert (line["message"], line["correlation_id"]) == ("collect done", "scheduled-e2")
