"""Start a trade cycle on a deployed stack and follow its execution history state by state."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crypto_bot_tools.ops.render import escape

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["follow_execution", "start_cycle"]


def start_cycle(sfn: Any, state_machine_arn: str, *, now: datetime | None = None) -> str:
    """Start a manual trade cycle now (input ``{"trigger": "manual"}``) and return the execution ARN."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    # Unique per call and readable in the console; Collect names the cycle manual-<this>.
    name = f"ops-{moment:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    answer = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps({"trigger": "manual"}))
    return str(answer["executionArn"])


def follow_execution(
    sfn: Any,
    execution_arn: str,
    console: Console,
    *,
    poll: float = 1.0,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Print each state the execution enters and leaves, with timing, until it stops.

    Return describe_execution's answer (status "RUNNING" if ``timeout`` seconds passed first).
    """
    seen = 0
    entered: dict[str, list[datetime]] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    with console.status("starting…") as progress:
        while True:
            description: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
            started: datetime = description["startDate"]
            # Read the history after the status, so a finished execution's last events are printed.
            for event in _history(sfn, execution_arn):
                if int(event["id"]) <= seen:
                    continue
                seen = int(event["id"])
                at: datetime = event["timestamp"]
                elapsed = (at - started).total_seconds()
                kind = str(event["type"])
                if kind.endswith("StateEntered"):
                    name = str(event["stateEnteredEventDetails"]["name"])
                    entered.setdefault(name, []).append(at)
                    console.print(f"{elapsed:7.2f}s  → {escape(name)}", highlight=False)
                    progress.update(f"{name}…")
                elif kind.endswith("StateExited"):
                    name = str(event["stateExitedEventDetails"]["name"])
                    # Map iterations enter the same state several times: pair them first in, first out.
                    starts = entered.get(name) or [at]
                    took = (at - starts.pop(0)).total_seconds()
                    console.print(f"{elapsed:7.2f}s  ✓ {escape(name)} ({took:.2f}s)", highlight=False)
                else:
                    failure = _failure_text(event)
                    if failure is not None:
                        console.print(f"{elapsed:7.2f}s  [red]✗ {escape(kind)}: {escape(failure)}[/]", highlight=False)
            if description["status"] != "RUNNING":
                return description
            if deadline is not None and time.monotonic() > deadline:
                return description
            sleep(poll)


def _history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    token = None
    while True:
        request: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        if token:
            request["nextToken"] = token
        page = sfn.get_execution_history(**request)
        events.extend(page["events"])
        token = page.get("nextToken")
        if not token:
            return events


def _failure_text(event: Mapping[str, Any]) -> str | None:
    for key, details in event.items():
        if key.endswith("EventDetails") and isinstance(details, Mapping) and "error" in details:
            cause = str(details.get("cause") or "")
            try:
                parsed = json.loads(cause) if cause.startswith("{") else None
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, Mapping) and "errorMessage" in parsed:
                cause = str(parsed["errorMessage"])
            text = f"{details['error']}: {cause}" if cause else str(details["error"])
            return text if len(text) <= 300 else text[:297] + "..."
    return None
