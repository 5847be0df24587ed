"""EventBridge as the template wires it, which moto does not run: the pipe and the cycle schedule.

* :class:`Pipe`: a message on a pipe's source queue (the urgent queue) starts an execution at once,
  with the batch of SQS records as input, and is deleted after the start.
* :class:`Scheduler`: an execution with the schedule's input at each firing time of the template's
  expression (or of ``--schedule``/``--cycle-every``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from crypto_bot_tools.local.log import stamp
from crypto_bot_tools.local.schedule import Schedule

__all__ = ["Pipe", "Scheduler", "StartExecution"]

StartExecution = Callable[[Any, str], Any]
"""Start an execution of the trade-cycle state machine: ``(input, trigger)``."""


class Pipe:
    """The template's pipes from a queue to the state machine."""

    def __init__(
        self,
        template: Mapping[str, Any],
        stack: Any,
        queues: Mapping[str, str],
        state_machine: str,
        start: StartExecution,
        log: Callable[[str], None],
    ) -> None:
        self.stack = stack
        self.start = start
        self.log = log
        self.sources = _pipe_sources(template, queues, state_machine)
        self._wakeup = threading.Event()

    def wake(self, logical_id: str) -> None:
        """Read the queue ``logical_id`` now if it is a pipe's source (a message was just sent to it)."""
        if logical_id in self.sources:
            self._wakeup.set()

    def run(self, stop: threading.Event) -> None:
        """Deliver each batch from the source queues until ``stop`` is set (and :meth:`wake_all` called)."""
        sqs = self.stack.client("sqs")
        while not stop.is_set():
            self._wakeup.wait(timeout=1.0)
            self._wakeup.clear()
            for logical_id, batch_size in self.sources.items():
                url = self.stack.resource(logical_id)
                while not stop.is_set():
                    try:
                        received = sqs.receive_message(
                            QueueUrl=url,
                            MaxNumberOfMessages=batch_size,
                            AttributeNames=["All"],
                            MessageAttributeNames=["All"],
                        )
                    except Exception as e:  # logged, and the pipe polls again: it must outlive one bad call
                        self.log(f"{stamp()} pipe: cannot read {logical_id} ({type(e).__name__}: {e})")
                        break
                    messages = received.get("Messages", [])
                    if not messages:
                        break
                    self._deliver(logical_id, messages)

    def wake_all(self) -> None:
        """Wake the loop without a message, so that it sees it must stop."""
        self._wakeup.set()

    def _deliver(self, logical_id: str, messages: list[dict[str, Any]]) -> None:
        sqs = self.stack.client("sqs")
        arn = sqs.get_queue_attributes(QueueUrl=self.stack.resource(logical_id), AttributeNames=["QueueArn"])
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                # The shape Lambda and EventBridge Pipes deliver an SQS message attribute in.
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value.get("DataType"),
                    }
                    for name, value in m.get("MessageAttributes", {}).items()
                },
                "md5OfBody": m.get("MD5OfBody"),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn["Attributes"]["QueueArn"],
                "awsRegion": self.stack.region,
            }
            for m in messages
        ]
        try:
            self.start(records, "urgent")
        except Exception as e:  # a store or botocore error: logged, and the message is not deleted
            # Left on the queue, as the pipe leaves it: visible again after the visibility timeout,
            # and in the dead-letter queue after maxReceiveCount tries.
            self.log(f"{stamp()} pipe: could not start an execution ({type(e).__name__}: {e}); it stays queued")
            return
        sqs.delete_message_batch(
            QueueUrl=self.stack.resource(logical_id),
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )


class Scheduler:
    """The cycle schedule: an execution with the schedule's input at each firing time."""

    def __init__(
        self,
        template: Mapping[str, Any],
        schedule: Schedule,
        state_machine: str,
        start: StartExecution,
        log: Callable[[str], None],
    ) -> None:
        self.schedule = schedule
        self.start = start
        self.log = log
        self.input = _schedule_input(template, state_machine)

    def run(self, stop: threading.Event) -> None:
        """Start the executions as they fall due, until ``stop`` is set."""
        moment = datetime.now(UTC)
        while not stop.is_set():
            due = self.schedule.next_after(moment)
            if due is None:
                return
            if stop.wait(timeout=max(0.0, (due - datetime.now(UTC)).total_seconds())):
                return
            moment = due
            try:
                self.start(self.input, "schedule")
            except Exception as e:  # a failed start must not stop the schedule; it is logged
                self.log(f"{stamp()} schedule: could not start an execution ({type(e).__name__}: {e})")


def _pipe_sources(template: Mapping[str, Any], queues: Mapping[str, str], state_machine: str) -> dict[str, int]:
    """Read the template's pipes from a queue to the state machine: source queue -> batch size."""
    sources: dict[str, int] = {}
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::Pipes::Pipe":
            continue
        p = resource.get("Properties") or {}
        source, target = p.get("Source"), p.get("Target")
        if not (isinstance(source, dict) and "Fn::GetAtt" in source and target == {"Ref": state_machine}):
            continue
        queue = str(source["Fn::GetAtt"][0])
        if queue in queues:
            batch = ((p.get("SourceParameters") or {}).get("SqsQueueParameters") or {}).get("BatchSize", 10)
            sources[queue] = int(batch)
    return sources


def _schedule_input(template: Mapping[str, Any], state_machine: str) -> Any:
    machine = template["Resources"][state_machine].get("Properties") or {}
    for event in (machine.get("Events") or {}).values():
        if event.get("Type") in ("ScheduleV2", "Schedule"):
            text = (event.get("Properties") or {}).get("Input")
            return json.loads(text) if isinstance(text, str) else {"trigger": "schedule"}
    return {"trigger": "schedule"}
