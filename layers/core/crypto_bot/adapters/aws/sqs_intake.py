"""Drain an SQS queue into the store: persist first, delete after."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from crypto_bot.adapters.aws.errors import translate_errors
from crypto_bot.domain.allocation import SignalStatus
from crypto_bot.domain.errors import MISSING, FieldProblem, StoreError
from crypto_bot.engine.records import SignalRecord
from crypto_bot.engine.workflow import MAX_ALERT_CHARS

BATCH = 10  # the SQS maximum per ReceiveMessage
# Long polling: a short poll samples only some SQS servers and can answer "empty" while
# messages wait, which would hold an alert back a whole timeframe. A long poll asks every
# server and returns as soon as something is there, so it costs time only when the queue
# really is empty: once per drain.
WAIT_SECONDS = 1


# The message attributes the webhook's mapping template (template.yaml) sets on a delivery it refused but records.
REFUSED_ATTRIBUTE: Final = "refused"
SIZE_ATTRIBUTE: Final = "characters"
# What each refusal means, worded as the core words an alert's problems: the field, then what is wrong with it.
_REFUSALS: Final = {
    "too_large": "is {characters} characters; an alert may have {limit}: refused at the webhook (answered 413), "
    "which kept its first 200",
}


@dataclass(frozen=True)
class Refusal:
    """A delivery the webhook refused and sent on as a record instead of the alert (``refused=<why>``)."""

    why: str
    characters: int | None

    @classmethod
    def from_attributes(cls, attributes: Mapping[str, Any]) -> Refusal | None:
        """Read a refusal from a message's attributes (boto3's or Lambda's shape), None for an alert."""
        why, size = _string(attributes.get(REFUSED_ATTRIBUTE)), _string(attributes.get(SIZE_ATTRIBUTE))
        if why is None:
            return None
        return cls(why, int(size) if size is not None and size.isdigit() else None)

    def problem(self) -> FieldProblem:
        """Word the refusal as the core words an alert's problem."""
        wording = _REFUSALS.get(self.why)
        if wording is None:
            return FieldProblem("body", MISSING, f"was refused at the webhook ({self.why})")
        return FieldProblem("body", MISSING, wording.format(characters=self.characters, limit=MAX_ALERT_CHARS))

    def record(
        self, excerpt: str, message_id: str, received_at: datetime, queued_at: datetime | None = None
    ) -> SignalRecord:
        """Return the rejected signal that records the refused delivery (one per delivery: keyed by message id)."""
        return SignalRecord(
            key=f"refused-{message_id}",
            status=SignalStatus.REJECTED,
            received_at=received_at,
            payload=excerpt,
            reason=str(self.problem()),
            message_id=message_id,
            queued_at=queued_at,
        )


def sent_at(attributes: object) -> datetime | None:
    """Read SQS's ``SentTimestamp`` (epoch milliseconds, a string) from a message's system attributes.

    The attribute is when SQS accepted the message, which is when the webhook's integration sent it: the
    time the alert was received. ReceiveMessage returns it under ``Attributes`` when asked for it, and Lambda
    and EventBridge Pipes deliver it under ``attributes`` (AWS SQS API Reference, ReceiveMessage,
    MessageSystemAttributeNames). None when absent or not a number.
    """
    if not isinstance(attributes, Mapping):
        return None
    stamp = attributes.get("SentTimestamp")
    if not isinstance(stamp, str) or not stamp.isdigit():
        return None
    return datetime.fromtimestamp(int(stamp) / 1000, UTC)


def _string(attribute: object) -> str | None:
    if not isinstance(attribute, Mapping):
        return None
    value = attribute.get("StringValue", attribute.get("stringValue"))
    return value if isinstance(value, str) else None


@dataclass
class DrainResult:
    received: int = 0
    deleted: int = 0
    batches: int = 0
    failed: list[str] = field(default_factory=list)  # "message id: error" of messages left in the queue


def drain_queue(
    sqs: Any,
    queue_url: str,
    handle: Callable[[str, str, datetime | None], None],
    *,
    refused: Callable[[str, str, Refusal, datetime | None], None] | None = None,
    max_messages: int = 1000,
    wait_seconds: int = WAIT_SECONDS,
) -> DrainResult:
    """Receive messages in batches of 10 until the queue is empty or ``max_messages`` were read.

    ``handle(body, message_id, queued_at)`` must persist the message (or its rejection), and
    ``refused(body, message_id, refusal, queued_at)`` the record of a delivery the webhook refused
    (without it, such a record goes to ``handle`` as any body); only messages they
    returned from are deleted. A message whose handling raised stays in the
    queue, becomes visible again after the visibility timeout, and goes to the DLQ after
    its maxReceiveCount: it never blocks the rest of its batch. A store outage is not the
    message's fault, so it propagates: a transient one (StoreUnavailable) is retried by the step,
    a permanent one (StoreError: access denied, no such queue) fails it.
    """
    result = DrainResult()
    while result.received < max_messages:
        with translate_errors("receive from the signals queue"):
            answer = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=min(BATCH, max_messages - result.received),
                WaitTimeSeconds=wait_seconds,
                MessageAttributeNames=[REFUSED_ATTRIBUTE, SIZE_ATTRIBUTE],
                MessageSystemAttributeNames=["SentTimestamp"],
            )
        messages = answer.get("Messages", [])
        result.batches += 1
        if not messages:
            break
        done: list[dict[str, str]] = []
        for message in messages:
            result.received += 1
            try:
                refusal = Refusal.from_attributes(message.get("MessageAttributes") or {})
                queued_at = sent_at(message.get("Attributes"))
                if refusal is not None and refused is not None:
                    refused(message["Body"], message["MessageId"], refusal, queued_at)
                else:
                    handle(message["Body"], message["MessageId"], queued_at)
            except StoreError:
                raise
            except Exception as e:  # poison isolation: recorded here, left in the queue for the DLQ
                result.failed.append(f"{message['MessageId']}: {type(e).__name__}: {e}")
                continue
            done.append({"Id": str(len(done)), "ReceiptHandle": message["ReceiptHandle"]})
        if done:
            # Persisted already: should the delete fail, a redelivery is harmless, the dedupe key absorbs it.
            with translate_errors("delete collected messages from the signals queue"):
                response = sqs.delete_message_batch(QueueUrl=queue_url, Entries=done)
            result.deleted += len(response.get("Successful", []))
    return result
