"""The one translator of botocore errors, for every AWS call the layer makes (DynamoDB, SQS, SNS).

Each error becomes one of three answers; the handlers raise the transient one as TransientError, the name the
state machine's Retry lists:

* :class:`~crypto_bot.domain.errors.StoreUnavailable` (*transient*): throttling, a server
  error (HTTP 5xx), a transaction that collided with another, a connection that failed or
  timed out. The same request may succeed later, so the step is retried with backoff.
* :class:`ConditionFailed` (*a conflict*, permanent): a write's ConditionExpression did not
  hold, alone or inside a transaction. Callers turn it into their documented answer (a
  duplicate signal, a lock held by someone else, a paper account saved meanwhile).
* :class:`~crypto_bot.domain.errors.StoreError` (*permanent*): everything else, above all
  access denied, validation errors and missing tables or queues. Retrying cannot help, so the
  cycle records the failure and notifies instead of retrying until its budget is spent.

The codes come from the "Errors" section of each operation in the AWS API references the
layer calls (DynamoDB GetItem, PutItem, UpdateItem, Query, BatchGetItem, BatchWriteItem,
TransactWriteItems; SQS ReceiveMessage, DeleteMessageBatch; SNS Publish), from the "Common
Errors" page those references share, and from the DynamoDB Developer Guide's "Error handling
with DynamoDB". botocore ships the same references as its service models
(``botocore/data/<service>/*/service-2.json``); its standard retry mode
(``botocore/retries/standard.py``) retries the same throttling codes and 5xx statuses before
an error reaches this module. A code not listed is permanent: unknown means not known to be
safe to repeat, and the message names the code for whoever reads the notification.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from crypto_bot.domain.errors import StoreError, StoreUnavailable

__all__ = [
    "PERMANENT_CODES",
    "TRANSACTION_RETRYABLE_REASONS",
    "TRANSIENT_CODES",
    "ConditionFailed",
    "ErrorKind",
    "classify",
    "translate",
    "translate_errors",
]


class ConditionFailed(StoreError):
    """A write's ConditionExpression did not hold; callers turn it into their documented answer."""


class ErrorKind(StrEnum):
    """What a botocore error means for the caller."""

    TRANSIENT = "transient"
    CONDITION_FAILED = "condition_failed"
    PERMANENT = "permanent"


TRANSIENT_CODES: Final = frozenset(
    {
        # DynamoDB API Reference, the operations' Errors: the request rate or the account's quota was exceeded.
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",  # HTTP 500
        # PutItem/UpdateItem on an item a transaction is writing ("an ongoing transaction for the item").
        "TransactionConflictException",
        # TransactWriteItems: "the transaction with the given request token is already in progress"; the API
        # reference recommends retrying it, which completes the transaction.
        "TransactionInProgressException",
        # Global tables: the item is being written by a request in another Region at the same time.
        "ReplicatedWriteConflictException",
        # SQS API Reference, ReceiveMessage and DeleteMessageBatch Errors.
        "RequestThrottled",
        "KmsThrottled",
        # ReceiveMessage: the queue's in-flight limit is reached; it clears as messages are deleted or reappear.
        "OverLimit",
        # SNS API Reference, Publish Errors (KMSThrottling), and SNS's 429 code (ThrottledException).
        "KMSThrottling",
        "Throttled",
        "InternalError",  # HTTP 500
        # Common Errors, shared by every service (Throttling is the Query protocol's spelling).
        "Throttling",
        "InternalFailure",  # HTTP 500
        "ServiceUnavailable",  # HTTP 503
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
"""Error codes after which the same request may succeed later."""

PERMANENT_CODES: Final = frozenset(
    {
        # DynamoDB API Reference and the Developer Guide's error table ("OK to retry? No").
        "AccessDeniedException",
        "ValidationException",
        "ResourceNotFoundException",
        "ItemCollectionSizeLimitExceededException",
        "IdempotentParameterMismatchException",  # a request token reused with another payload: a bug
        "UnrecognizedClientException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "SerializationException",
        # SQS API Reference (the JSON protocol's codes, and the legacy code boto3 may surface for a missing queue).
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
        "InvalidAddress",
        "InvalidSecurity",
        "UnsupportedOperation",
        "KmsAccessDenied",
        "KmsDisabled",
        "KmsInvalidKeyUsage",
        "KmsInvalidState",
        "KmsNotFound",
        "KmsOptInRequired",
        "EmptyBatchRequest",
        "TooManyEntriesInBatchRequest",
        "BatchEntryIdsNotDistinct",
        "InvalidBatchEntryId",
        # SNS API Reference, Publish Errors.
        "AuthorizationError",
        "InvalidParameter",
        "ParameterValueInvalid",
        "NotFound",
        "KMSAccessDenied",
        "KMSDisabled",
        "KMSInvalidState",
        "KMSNotFound",
        "KMSOptInRequired",
        # Common Errors.
        "AccessDenied",
        "InvalidClientTokenId",
        "NotAuthorized",
        "ExpiredToken",
        "ExpiredTokenException",
        "MissingParameter",
        "InvalidParameterValue",
        "InvalidParameterCombination",
        "ValidationError",
        "OptInRequired",
    }
)
"""Error codes retrying cannot cure. Listed to document them; any code in neither set is permanent too."""

CONDITION_CODE: Final = "ConditionalCheckFailedException"
TRANSACTION_CANCELED: Final = "TransactionCanceledException"

TRANSACTION_RETRYABLE_REASONS: Final = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)
"""The cancellation reasons of a TransactWriteItems that may succeed when sent again.

DynamoDB API Reference, TransactionCanceledException: one reason per item of the request, in
order, ``None`` for an item that had no error. ``ConditionalCheckFailed`` is a real conflict,
and ``ValidationError`` and ``ItemCollectionSizeLimitExceeded`` fail again on every retry.
"""
_NO_REASON: Final = "None"


def classify(error: ClientError) -> ErrorKind:
    """Say whether a botocore ClientError is transient, a failed condition, or permanent."""
    response: Mapping[str, Any] = error.response
    code = str(response.get("Error", {}).get("Code", ""))
    if code == CONDITION_CODE:
        return ErrorKind.CONDITION_FAILED
    if code == TRANSACTION_CANCELED:
        return _classify_cancellation(response)
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    # 429 is HTTP's "too many requests"; 5xx is the service's own failure.
    if code in TRANSIENT_CODES or status >= 500 or status == 429:
        return ErrorKind.TRANSIENT
    return ErrorKind.PERMANENT


def _classify_cancellation(response: Mapping[str, Any]) -> ErrorKind:
    reasons = {str(r.get("Code")) for r in response.get("CancellationReasons") or [] if isinstance(r, Mapping)}
    reasons.discard(_NO_REASON)
    if "ConditionalCheckFailed" in reasons:
        return ErrorKind.CONDITION_FAILED
    if reasons and reasons <= TRANSACTION_RETRYABLE_REASONS:
        return ErrorKind.TRANSIENT
    # A validation error, a too-large item collection, a reason not documented, or no reasons at all.
    return ErrorKind.PERMANENT


def translate(error: BotoCoreError | ClientError, action: str) -> StoreError:
    """Return the project's error for a botocore error raised while doing ``action``; the caller raises it from it."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code", ""))
        message = f"{action}: {code or 'error'}: {details.get('Message', '')}".rstrip(": ")
        kind = classify(error)
        if kind is ErrorKind.CONDITION_FAILED:
            return ConditionFailed(message)
        if kind is ErrorKind.TRANSIENT:
            return StoreUnavailable(message)
        return StoreError(message)
    if isinstance(error, BotoConnectionError | HTTPClientError):
        # Connection refused, reset or timed out (botocore's standard retry mode treats these as transient too).
        return StoreUnavailable(f"{action}: {type(error).__name__}: {error}")
    # No credentials, no region, a parameter botocore refuses before sending: the same call fails again.
    return StoreError(f"{action}: {type(error).__name__}: {error}")


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Translate the botocore errors raised in the block into the project's store errors."""
    try:
        yield
    except (ClientError, BotoCoreError) as e:
        raise translate(e, action) from e
