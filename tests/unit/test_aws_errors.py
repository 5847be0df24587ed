"""The one botocore translator (crypto_bot.adapters.aws.errors) and every adapter that calls AWS through it.

moto answers few of these codes, so the errors are scripted with botocore's Stubber, in the shapes the API
references document: ``Error.Code`` and the HTTP status of each operation's Errors section, and for a cancelled
transaction one ``CancellationReasons`` entry per item ("None" for an item without error).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.stub import Stubber

from crypto_bot.adapters.aws.dynamodb_store import DynamoDBStore
from crypto_bot.adapters.aws.errors import (
    PERMANENT_CODES,
    TRANSIENT_CODES,
    ConditionFailed,
    ErrorKind,
    classify,
    translate,
)
from crypto_bot.adapters.aws.lock import renew_lease
from crypto_bot.adapters.aws.notify import publish
from crypto_bot.adapters.aws.sqs_intake import drain_queue
from crypto_bot.domain.errors import StoreError, StoreUnavailable
from crypto_bot.domain.ledger import Ledger
from crypto_bot.domain.markets import Side
from crypto_bot.domain.orders import OrderIntent, Purpose
from crypto_bot.engine.records import IntentRecord, Phase

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/signals"
TOPIC = "arn:aws:sns:us-east-1:123456789012:notifications"


def client_error(code: str, status: int = 400, operation: str = "GetItem", **fields: Any) -> ClientError:
    """Build a ClientError as botocore parses one: the code and message under Error, modeled members beside it."""
    response: Any = {
        "Error": {"Code": code, "Message": f"{code} message"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    response.update(fields)
    return ClientError(response, operation)


def cancelled(*reasons: str) -> ClientError:
    return client_error(
        "TransactionCanceledException",
        operation="TransactWriteItems",
        CancellationReasons=[{"Code": r} if r == "None" else {"Code": r, "Message": f"{r} message"} for r in reasons],
    )


def aws_client(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture
def dynamodb() -> Iterator[tuple[Any, Stubber]]:
    client = aws_client("dynamodb")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


# -- the table of codes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(TRANSIENT_CODES))
def test_a_documented_transient_code_is_store_unavailable(code: str) -> None:
    error = translate(client_error(code), "get x")

    assert type(error) is StoreUnavailable
    assert str(error) == f"get x: {code}: {code} message"


@pytest.mark.parametrize("code", sorted(PERMANENT_CODES))
def test_a_documented_permanent_code_is_a_permanent_store_error(code: str) -> None:
    assert type(translate(client_error(code), "get x")) is StoreError


def test_no_code_is_both_transient_and_permanent() -> None:
    assert not TRANSIENT_CODES & PERMANENT_CODES


@pytest.mark.parametrize(("status", "kind"), [(500, ErrorKind.TRANSIENT), (503, ErrorKind.TRANSIENT),
                                              (429, ErrorKind.TRANSIENT), (400, ErrorKind.PERMANENT),
                                              (403, ErrorKind.PERMANENT)])  # fmt: skip
def test_an_undocumented_code_is_judged_by_its_http_status(status: int, kind: ErrorKind) -> None:
    assert classify(client_error("SomethingNew", status)) is kind


def test_a_failed_condition_is_its_own_answer() -> None:
    error = translate(client_error("ConditionalCheckFailedException", operation="PutItem"), "put x")

    assert type(error) is ConditionFailed
    assert isinstance(error, StoreError)


@pytest.mark.parametrize(
    ("error", "translated"),
    [
        (EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com"), StoreUnavailable),
        (ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com"), StoreUnavailable),
        (NoCredentialsError(), StoreError),
    ],
    ids=["connection", "read-timeout", "no-credentials"],
)
def test_network_failures_are_transient_and_a_missing_credential_is_not(error: BotoCoreError, translated: type) -> None:
    assert type(translate(error, "get x")) is translated


# -- a cancelled transaction, by its reasons (DynamoDB API Reference, TransactionCanceledException) -----------------


@pytest.mark.parametrize(
    ("reasons", "translated"),
    [
        (("None", "TransactionConflict"), StoreUnavailable),
        (("ThrottlingError", "None"), StoreUnavailable),
        (("ProvisionedThroughputExceeded",), StoreUnavailable),
        (("TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"), StoreUnavailable),
        (("None", "ConditionalCheckFailed"), ConditionFailed),
        (("TransactionConflict", "ConditionalCheckFailed"), ConditionFailed),
        (("ValidationError", "None"), StoreError),
        (("ItemCollectionSizeLimitExceeded",), StoreError),
        (("ThrottlingError", "ValidationError"), StoreError),  # the validation error comes back on every retry
        (("None", "None"), StoreError),
        ((), StoreError),
    ],
)
def test_a_cancelled_transaction_is_as_transient_as_its_reasons(reasons: tuple[str, ...], translated: type) -> None:
    assert type(translate(cancelled(*reasons), "book i1")) is translated


def intent_record() -> IntentRecord:
    intent = OrderIntent(
        intent_id="i1",
        cycle_id="c1",
        strategy="BTCUSD",
        symbol="BTC/USD",
        side=Side.BUY,
        purpose=Purpose.ENTRY,
        amount=Decimal("0.1"),
        limit_price=Decimal("64000"),
        notional=Decimal("6400"),
    )
    return IntentRecord(intent=intent, phase=Phase.ENTRIES)


@pytest.mark.parametrize(
    ("reason", "translated"),
    [("TransactionConflict", StoreUnavailable), ("ThrottlingError", StoreUnavailable),
     ("ProvisionedThroughputExceeded", StoreUnavailable), ("ConditionalCheckFailed", ConditionFailed),
     ("ValidationError", StoreError)],
)  # fmt: skip
def test_book_retries_a_transaction_cancelled_by_a_conflict_or_throttling_only(
    dynamodb: tuple[Any, Stubber], reason: str, translated: type
) -> None:
    client, stubber = dynamodb
    store = DynamoDBStore("t", client, clock=lambda: NOW)
    stubber.add_response("query", {"Items": []})  # the stored positions
    stubber.add_response("query", {"Items": []})  # the stored dust
    stubber.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        service_message="Transaction cancelled, please refer cancellation reasons for specific reasons [None]",
        modeled_fields={"CancellationReasons": [{"Code": reason, "Message": f"{reason} message"}]},
    )

    with pytest.raises(StoreError) as raised:
        store.book(intent_record(), Ledger())

    assert type(raised.value) is translated
    assert str(raised.value).startswith("book intent i1 in t: TransactionCanceledException: Transaction cancelled")


# -- the adapters: each calls AWS through the translator -------------------------------------------------------------

LEASE = timedelta(minutes=5)


@pytest.mark.parametrize(
    ("code", "status", "translated"),
    [("AccessDeniedException", 400, StoreError), ("ResourceNotFoundException", 400, StoreError),
     ("ValidationException", 400, StoreError), ("ThrottlingException", 400, StoreUnavailable),
     ("ProvisionedThroughputExceededException", 400, StoreUnavailable), ("InternalServerError", 500, StoreUnavailable)],
)  # fmt: skip
def test_renewing_the_lease_retries_only_transient_errors(
    dynamodb: tuple[Any, Stubber], code: str, status: int, translated: type
) -> None:
    client, stubber = dynamodb
    stubber.add_client_error("update_item", service_error_code=code, http_status_code=status)

    with pytest.raises(StoreError, match=f"renew the cycle lock in t: {code}") as raised:
        renew_lease(client, "t", "me", NOW, LEASE)

    assert type(raised.value) is translated


def test_a_lease_someone_else_holds_is_not_renewed(dynamodb: tuple[Any, Stubber]) -> None:
    client, stubber = dynamodb
    stubber.add_client_error("update_item", service_error_code="ConditionalCheckFailedException")

    assert renew_lease(client, "t", "me", NOW, LEASE) is False


@pytest.fixture
def sqs() -> Iterator[tuple[Any, Stubber]]:
    client = aws_client("sqs")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status", "translated"),
    [("AccessDenied", 403, StoreError), ("QueueDoesNotExist", 400, StoreError),
     ("AWS.SimpleQueueService.NonExistentQueue", 400, StoreError), ("KmsAccessDenied", 400, StoreError),
     ("RequestThrottled", 400, StoreUnavailable), ("KmsThrottled", 400, StoreUnavailable),
     ("InternalFailure", 500, StoreUnavailable)],
)  # fmt: skip
def test_draining_the_queue_retries_only_transient_receive_errors(
    sqs: tuple[Any, Stubber], code: str, status: int, translated: type
) -> None:
    client, stubber = sqs
    stubber.add_client_error("receive_message", service_error_code=code, http_status_code=status)

    with pytest.raises(StoreError, match=f"receive from the signals queue: {code}") as raised:
        drain_queue(client, QUEUE, lambda body, message_id, _at: None, wait_seconds=0)

    assert type(raised.value) is translated


@pytest.mark.parametrize(("code", "translated"), [("AccessDenied", StoreError), ("RequestThrottled", StoreUnavailable)])
def test_a_failed_delete_after_storing_is_translated_too(sqs: tuple[Any, Stubber], code: str, translated: type) -> None:
    client, stubber = sqs
    message = {"MessageId": "m1", "ReceiptHandle": "r1", "Body": "{}"}
    stubber.add_response("receive_message", {"Messages": [message]})
    stubber.add_client_error("delete_message_batch", service_error_code=code)
    stored: list[str] = []

    with pytest.raises(StoreError, match=f"delete collected messages from the signals queue: {code}") as raised:
        drain_queue(client, QUEUE, lambda body, message_id, _at: stored.append(message_id), wait_seconds=0)

    assert type(raised.value) is translated
    assert stored == ["m1"]


@pytest.mark.parametrize(
    ("code", "status", "translated"),
    [("AuthorizationError", 403, StoreError), ("NotFound", 404, StoreError), ("InvalidParameter", 400, StoreError),
     ("Throttled", 429, StoreUnavailable), ("KMSThrottling", 400, StoreUnavailable),
     ("InternalError", 500, StoreUnavailable)],
)  # fmt: skip
def test_publishing_the_summary_retries_only_transient_errors(code: str, status: int, translated: type) -> None:
    client = aws_client("sns")
    with Stubber(client) as stubber:
        stubber.add_client_error("publish", service_error_code=code, http_status_code=status)

        with pytest.raises(StoreError, match=f"publish to {TOPIC}: {code}") as raised:
            publish(client, TOPIC, "subject", "body")

    assert type(raised.value) is translated
