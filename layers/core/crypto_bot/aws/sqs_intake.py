"""Drain an SQS queue into the store: persist first, delete after."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from crypto_bot.errors import StoreError, StoreUnavailable

BATCH = 10  # the SQS maximum per ReceiveMessage
# Long polling: a short poll samples only some SQS servers and can answer "empty" while
# messages wait, which would hold an alert back a whole timeframe. A long poll asks every
# server and returns as soon as something is there, so it costs time only when the queue
# really is empty: once per drain.
WAIT_SECONDS = 1


@dataclass
class DrainResult:
    received: int = 0
    deleted: int = 0
    batches: int = 0
    failed: list[str] = field(default_factory=list)  # "message id: error" of messages left in the queue


def drain_queue(
    sqs: Any,
    queue_url: str,
    handle: Callable[[str, str], None],
    *,
    max_messages: int = 1000,
    wait_seconds: int = WAIT_SECONDS,
) -> DrainResult:
    """Receive messages in batches of 10 until the queue is empty or ``max_messages`` were read.

    ``handle(body, message_id)`` must persist the message (or its rejection); only
    messages it returned from are deleted. A message whose handling raised stays in the
    queue, becomes visible again after the visibility timeout, and goes to the DLQ after
    its maxReceiveCount: it never blocks the rest of its batch. A store outage is not the
    message's fault, so it propagates and the step is retried.
    """
    result = DrainResult()
    while result.received < max_messages:
        try:
            answer = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=min(BATCH, max_messages - result.received),
                WaitTimeSeconds=wait_seconds,
            )
        except (ClientError, BotoCoreError) as e:
            raise StoreUnavailable(f"cannot receive from the signals queue: {type(e).__name__}") from e
        messages = answer.get("Messages", [])
        result.batches += 1
        if not messages:
            break
        done: list[dict[str, str]] = []
        for message in messages:
            result.received += 1
            try:
                handle(message["Body"], message["MessageId"])
            except StoreError:
                raise
            except Exception as e:  # poison isolation: recorded here, left in the queue for the DLQ
                result.failed.append(f"{message['MessageId']}: {type(e).__name__}: {e}")
                continue
            done.append({"Id": str(len(done)), "ReceiptHandle": message["ReceiptHandle"]})
        if done:
            try:
                response = sqs.delete_message_batch(QueueUrl=queue_url, Entries=done)
            except (ClientError, BotoCoreError) as e:
                # Persisted already: a redelivery is harmless, the dedupe key absorbs it.
                raise StoreUnavailable(f"cannot delete collected messages: {type(e).__name__}") from e
            result.deleted += len(response.get("Successful", []))
    return result
