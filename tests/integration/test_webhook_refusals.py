"""A delivery the webhook refused but recorded: from its SQS message (moto) to a rejected signal with its reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from crypto_bot.adapters.aws.sqs_intake import Refusal, drain_queue
from crypto_bot.adapters.memory import MemoryStore
from crypto_bot.engine.workflow import MAX_ALERT_CHARS

RECEIVED = datetime(2024, 8, 10, 2, 31, tzinfo=UTC)


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # pragma: allowlist secret (moto's fake credentials)
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("sqs")


def send_refusal(sqs: Any, url: str, excerpt: str, characters: int) -> str:
    """Send what the mapping template sends for a body over the limit (a one-entry SendMessageBatch)."""
    answer = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {
                "Id": "refused",
                "MessageBody": excerpt,
                "MessageAttributes": {
                    "request_id": {"DataType": "String", "StringValue": "req-1"},
                    "refused": {"DataType": "String", "StringValue": "too_large"},
                    "characters": {"DataType": "Number", "StringValue": str(characters)},
                },
            }
        ],
    )
    return str(answer["Successful"][0]["MessageId"])


def test_a_refused_delivery_is_stored_as_a_rejected_signal_with_its_size_and_its_start(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="signals")["QueueUrl"]
    message_id = send_refusal(sqs, url, '{"order_comment": "xxxx', 300_012)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"n": 1}))
    store = MemoryStore()
    alerts: list[str] = []

    def refused(excerpt: str, delivery: str, refusal: Refusal, _queued_at: datetime | None) -> None:
        store.add_signal(refusal.record(excerpt, delivery, RECEIVED, _queued_at))

    result = drain_queue(sqs, url, lambda body, _id, _at: alerts.append(body), refused=refused, wait_seconds=0)

    assert (result.received, result.deleted, result.failed) == (2, 2, [])
    assert alerts == ['{"n": 1}']
    [record] = store.recent_signals()
    assert record.to_dict() == {
        "key": f"refused-{message_id}",
        "status": "rejected",
        "received_at": RECEIVED.isoformat(),
        "payload": '{"order_comment": "xxxx',
        "strategy": "",
        "action": "",
        "time": None,
        "is_stop_loss": False,
        "reason": f"body: is 300012 characters; an alert may have {MAX_ALERT_CHARS}: refused at the webhook "
        "(answered 413), which kept its first 200",
        "cycle_id": None,
        "message_id": message_id,
        "queued_at": record.queued_at.isoformat() if record.queued_at else "missing",
    }
    assert record.queued_at is not None
    assert record.queued_at <= datetime.now(UTC)


def test_without_a_refusal_handler_the_record_is_handled_as_any_body(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="signals")["QueueUrl"]
    send_refusal(sqs, url, "xyz", 70_000)
    bodies: list[str] = []

    drain_queue(sqs, url, lambda body, _id, _at: bodies.append(body), wait_seconds=0)

    assert bodies == ["xyz"]


def test_a_refusal_reads_lambdas_attribute_shape_too() -> None:
    pipe_shape = {"refused": {"stringValue": "too_large", "dataType": "String"}, "characters": {"stringValue": "9"}}

    assert Refusal.from_attributes(pipe_shape) == Refusal("too_large", 9)
    assert Refusal.from_attributes({"request_id": {"StringValue": "r"}}) is None
    assert str(Refusal("new_kind", None).problem()) == "body: was refused at the webhook (new_kind)"
