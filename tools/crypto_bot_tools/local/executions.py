"""Executions of the trade-cycle state machine: started, watched to their end, and described.

What ``POST /_local/cycle`` and ``GET /_local/executions/ID`` answer: an execution's status, the states
it entered, its summary (the execution's output) and, once it ended, its cycle as replay shows it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from crypto_bot_tools.local.log import stamp

__all__ = ["CYCLE_TIMEOUT", "STATE_MACHINE", "Execution", "Executions", "iso"]

STATE_MACHINE: Final = "TradeCycleStateMachine"
CYCLE_TIMEOUT: Final = 600.0


def iso(moment: Any) -> str | None:
    """Write a moment as ISO 8601 in UTC with a ``Z``; None for anything that is not a datetime."""
    if not isinstance(moment, datetime):
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Execution:
    """An execution the server started, and what it found when it ended."""

    arn: str
    name: str
    trigger: str
    started: float
    done: threading.Event = field(default_factory=threading.Event)
    detail: dict[str, Any] | None = None


class Executions:
    """Start executions, watch each to its end on a thread of its own, and describe any of them."""

    def __init__(
        self,
        stack: Any,
        *,
        before_start: Callable[[], None],
        cycle_json: Callable[[str], dict[str, Any] | None],
        log: Callable[[str], None],
    ) -> None:
        """``before_start`` runs before each start; ``cycle_json`` shapes a finished cycle by its id."""
        self.stack = stack
        self.before_start = before_start
        self.cycle_json = cycle_json
        self.log = log
        self._started: dict[str, Execution] = {}
        self._lock = threading.Lock()

    def start(self, execution_input: Any, trigger: str) -> Execution:
        """Start an execution of the trade-cycle state machine and watch it to its end."""
        self.before_start()
        # Collect names the cycle "<kind>-<execution name>", so the name itself need not say the trigger.
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        arn = self.stack.start_execution(STATE_MACHINE, execution_input, name=name)
        execution = Execution(arn=arn, name=name, trigger=trigger, started=time.monotonic())
        with self._lock:
            self._started[name] = execution
        threading.Thread(target=self._watch, args=(execution,), name=f"local-watch-{name}", daemon=True).start()
        return execution

    def run(self, trigger: str = "manual", timeout: float = CYCLE_TIMEOUT) -> dict[str, Any]:
        """Start an execution and return its detail once it has finished."""
        execution = self.start({"trigger": trigger}, trigger)
        if not execution.done.wait(timeout):
            raise TimeoutError(f"execution {execution.name} still running after {timeout} s")
        return execution.detail or {}

    def detail(self, name: str) -> dict[str, Any] | None:
        """Return an execution's detail: final once it ended, with the transitions so far while it runs."""
        with self._lock:
            known = self._started.get(name)
        if known is not None and known.detail is not None:
            return known.detail
        arn = known.arn if known else self._arn(name)
        if arn is None:
            return None
        return self._describe(arn, trigger=known.trigger if known else "external", with_cycle=False)

    def wait_for(self, name: str, timeout: float = CYCLE_TIMEOUT) -> dict[str, Any] | None:
        """Wait for an execution the server started to finish; return its detail."""
        with self._lock:
            known = self._started.get(name)
        if known is None:
            return self.detail(name)
        known.done.wait(timeout)
        return known.detail

    def listed(self) -> list[dict[str, Any]]:
        """Return every execution of the state machine, oldest first, as ``/_local/state`` lists them."""
        sfn = self.stack.client("stepfunctions")
        found: list[dict[str, Any]] = []
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=self.stack.resource(STATE_MACHINE)):
            found += page["executions"]
        result = []
        for item in sorted(found, key=lambda e: e["startDate"]):
            detail = self.detail(item["name"]) or {}
            result.append(
                {
                    "id": item["name"],
                    "status": detail.get("status", item["status"]),
                    "transitions": detail.get("transitions", []),
                    "trigger": detail.get("trigger", "external"),
                    "cycle_id": detail.get("cycle_id"),
                    "started_at": iso(item["startDate"]),
                    "arn": item["executionArn"],
                }
            )
        return result

    def _arn(self, name: str) -> str | None:
        from botocore.exceptions import ClientError

        machine = self.stack.resource(STATE_MACHINE)
        arn = f"{machine.replace(':stateMachine:', ':execution:')}:{name}"
        try:
            self.stack.client("stepfunctions").describe_execution(executionArn=arn)
        except ClientError:  # an unknown name is an answer: there is no such execution
            return None
        return arn

    def _watch(self, execution: Execution) -> None:
        try:
            self.stack.wait_for_execution(execution.arn, timeout=CYCLE_TIMEOUT)
            execution.detail = self._describe(execution.arn, trigger=execution.trigger, with_cycle=True)
        except Exception as e:  # the watcher reports, it must not die silently
            execution.detail = {"id": execution.name, "arn": execution.arn, "status": "UNKNOWN", "error": str(e)}
        finally:
            execution.done.set()
        detail = execution.detail
        elapsed = time.monotonic() - execution.started
        cycle = detail.get("cycle") or {}
        orders = [o for o in cycle.get("orders", []) if o.get("filled")]
        equity = cycle.get("equity")
        tail = f"{len(orders)} orders filled, equity {equity}" if cycle else "nothing to do"
        if detail.get("status") != "SUCCEEDED":
            tail = f"{detail.get('error', '')}: {detail.get('cause', '')}"[:300]
        status = detail.get("status")
        self.log(f"{stamp()} cycle {execution.name} ({execution.trigger}) {status} in {elapsed:.1f} s: {tail}")

    def _describe(self, arn: str, *, trigger: str, with_cycle: bool) -> dict[str, Any]:
        sfn = self.stack.client("stepfunctions")
        description = sfn.describe_execution(executionArn=arn)
        history: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = sfn.get_execution_history(executionArn=arn, **({"nextToken": token} if token else {}))
            history.extend(page["events"])
            token = page.get("nextToken")
            if not token:
                break
        transitions = [
            e["stateEnteredEventDetails"]["name"] for e in history if str(e["type"]).endswith("StateEntered")
        ]
        cycle_id = _cycle_id(history)
        output = description.get("output")
        detail: dict[str, Any] = {
            "id": description["name"],
            "arn": arn,
            "trigger": trigger,
            "status": description["status"],
            "transitions": transitions,
            "started_at": iso(description.get("startDate")),
            "stopped_at": iso(description.get("stopDate")),
            "cycle_id": cycle_id,
            "summary": json.loads(output) if output else None,
        }
        failed = next((e for e in reversed(history) if e["type"] == "ExecutionFailed"), None)
        if failed is not None:
            details = failed.get("executionFailedEventDetails", {})
            detail["error"], detail["cause"] = details.get("error", ""), details.get("cause", "")
        if with_cycle:
            detail["cycle"] = self.cycle_json(cycle_id) if cycle_id else None
            detail["urgent"] = bool(detail["cycle"] and trigger == "urgent")
        return detail


def _cycle_id(history: Sequence[Mapping[str, Any]]) -> str | None:
    """Read the cycle id from Collect's output (the first state: every execution that opened a cycle has it)."""
    for event in history:
        details = event.get("stateExitedEventDetails")
        if details and details.get("name") == "Collect":
            try:
                output = json.loads(details.get("output") or "{}")
            except ValueError:
                return None
            cycle = output.get("cycle") if isinstance(output, dict) else None
            return str(cycle["cycle_id"]) if isinstance(cycle, dict) and "cycle_id" in cycle else None
    return None
